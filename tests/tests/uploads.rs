//! The uploader's bounded concurrency: after an outage, a full spool is sent with at most
//! `upload_concurrency` uploads at a time (and really that many), and everything arrives.
//!
//! The device reaches the server through a TCP relay in this test, which counts the connections
//! open at once and can cut the network (refuse and drop every connection).

use lessonlens_e2e::{run_with_stdin, Server};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Default)]
struct Relay {
    up: AtomicBool,
    open: AtomicUsize,
    most_open: AtomicUsize,
    streams: Mutex<Vec<TcpStream>>,
}

impl Relay {
    /// Relays 127.0.0.1:(returned port) to `target` while `up`.
    fn start(target: u16) -> (Arc<Relay>, u16) {
        let relay = Arc::new(Relay::default());
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let r = relay.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                if !r.up.load(Ordering::Acquire) {
                    continue; // dropped: the network is down
                }
                let server = TcpStream::connect(("127.0.0.1", target)).unwrap();
                let now = r.open.fetch_add(1, Ordering::AcqRel) + 1;
                r.most_open.fetch_max(now, Ordering::AcqRel);
                r.streams
                    .lock()
                    .unwrap()
                    .extend([client.try_clone().unwrap(), server.try_clone().unwrap()]);
                let r2 = r.clone();
                std::thread::spawn(move || {
                    let a = std::thread::spawn({
                        let (c, s) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                        move || pipe(c, s)
                    });
                    pipe(server, client);
                    let _ = a.join();
                    r2.open.fetch_sub(1, Ordering::AcqRel);
                });
            }
        });
        (relay, port)
    }

    /// Cuts the network: new connections are dropped, open ones are closed.
    fn down(&self) {
        self.up.store(false, Ordering::Release);
        for s in self.streams.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

fn pipe(mut from: TcpStream, mut to: TcpStream) {
    let mut buf = [0u8; 16384];
    while let Ok(n) = from.read(&mut buf) {
        if n == 0 || to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

fn capture(config: &Path, args: &[&str]) -> std::process::Output {
    run_with_stdin("lessonlens-capture", config, args, "")
}

#[test]
fn a_full_spool_drains_with_bounded_concurrency() {
    let server = Server::start(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../web"));
    server.add_user("alice", "alice-password", "teacher");
    let enrolled = server.add_device("room-1");
    let (relay, port) = Relay::start(server.device_port);
    relay.up.store(true, Ordering::Release);
    let device = tempfile::tempdir().unwrap();
    let config = server.capture_config(
        device.path(),
        &enrolled,
        "upload_concurrency = 3\n[video]\nwidth = 320\nheight = 180\nbitrate_kbps = 500\n",
    );
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace(&server.device_url(), &format!("https://127.0.0.1:{port}"));
    std::fs::write(&config, text).unwrap();

    // Record while the network is cut right after the start: everything stays in the spool.
    let recorder = std::thread::spawn({
        let config = config.clone();
        move || {
            capture(
                &config,
                &[
                    "record",
                    "once",
                    "--teacher",
                    "alice",
                    "--seconds",
                    "12",
                    "--drain-seconds",
                    "0",
                ],
            )
        }
    });
    let spool = device.path().join("spool");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while std::fs::read_dir(&spool).map_or(0, |d| d.count()) < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "the recording did not begin"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    relay.down();
    let out = recorder.join().unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("record once: {}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(report["uploaded"], false, "{report}");
    let rec = report["recording"].as_str().unwrap().to_string();
    let waiting = std::fs::read_dir(spool.join(&rec))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "seg")
        })
        .count();
    assert!(waiting >= 6, "only {waiting} segments spooled");

    // The network is back: the drain uses three connections, no more, and sends everything.
    relay.most_open.store(0, Ordering::Release);
    relay.up.store(true, Ordering::Release);
    let out = capture(&config, &["drain", "--drain-seconds", "60"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(relay.most_open.load(Ordering::Acquire), 3);
    let (stored, clean) = server.segments_and_clean_stop(&rec);
    assert_eq!(stored as usize, waiting);
    assert!(clean, "the recording stopped cleanly and is complete");
    assert!(
        !spool.join(&rec).exists(),
        "the spool is empty once acknowledged"
    );
}
