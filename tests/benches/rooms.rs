//! Rooms benchmarks (issue 16), printed as a table; not a test. Run with `scripts/bench-rooms.sh`.
//!
//! - Click to recording: `POST /api/rooms/{room}/start` (what the web app's Record button sends)
//!   until the device answers, which it does once its pipeline plays, with 100 other devices
//!   holding their channels open. 20 starts; goal p95 <= 2 s.
//! - The server's memory and CPU with 500 idle device channels open, against none: goal at most
//!   +64 MB RSS and under 2 % of one core (measured over 60 s).
//!
//! One address may hold 64 connections on the device listener, so the channels come from
//! several loopback addresses, as devices come from their own.

use lessonlens_e2e::procstat::{cpu_over, rss_mb};
use lessonlens_e2e::{capture_json, Device, Server};
use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

const VIDEO: &str = "[video]\nwidth = 1280\nheight = 720\nbitrate_kbps = 2500\n";
const OTHERS: usize = 100;
const IDLE: usize = 500;
const STARTS: usize = 20;

/// Opens `device`'s channel from loopback address `from` and keeps reading it in a thread.
fn open_channel(server: &Server, device: &Device, from: Ipv4Addr) {
    let tls = server.device_tls(device);
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket
        .bind(&SocketAddr::new(from.into(), 0).into())
        .unwrap();
    socket
        .connect(&SocketAddr::from(([127, 0, 0, 1], server.device_port())).into())
        .unwrap();
    let tcp: TcpStream = socket.into();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let conn = rustls::ClientConnection::new(tls, name).unwrap();
    let mut stream = rustls::StreamOwned::new(conn, tcp);
    write!(
        stream,
        "GET /api/device/v1/channel HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n"
    )
    .unwrap();
    stream.flush().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            if line.is_err() {
                return;
            }
        }
    });
}

/// The loopback address the `i`th channel comes from: 60 to an address.
fn source(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, 2 + (i / 60) as u8)
}

fn online(server: &Server, cookie: &str) -> usize {
    let (_, rooms) = server.call("GET", "/api/rooms", cookie, None);
    rooms
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["state"] != "offline")
        .count()
}

fn wait_online(server: &Server, cookie: &str, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while online(server, cookie) < n {
        assert!(
            Instant::now() < deadline,
            "only {} rooms online",
            online(server, cookie)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn main() {
    let server = Server::start(&lessonlens_e2e::web_dir());
    server.add_user("alice", "alice-password", "teacher");
    let alice = server.login(&server.agent(), "alice", "alice-password");
    let t0 = Instant::now();
    let devices: Vec<Device> = (1..=IDLE)
        .map(|i| server.add_device(&format!("room-{i}")))
        .collect();
    eprintln!(
        "enrolled {IDLE} devices in {:.0} s",
        t0.elapsed().as_secs_f64()
    );
    let pid = server.pid();
    // The server with nothing connected, after a moment's rest.
    std::thread::sleep(Duration::from_secs(5));
    let (rss_before, cpu_before) = (rss_mb(pid), cpu_over(pid, 30));

    // Click to recording, with 100 other channels open.
    let recorder = server.add_device("room-0");
    let home = tempfile::tempdir().unwrap();
    let (_service, config, _) = server.capture_service(home.path(), &recorder, VIDEO);
    for (i, d) in devices.iter().take(OTHERS).enumerate() {
        open_channel(&server, d, source(i));
    }
    wait_online(&server, &alice, OTHERS + 1);
    let mut took = Vec::new();
    for _ in 0..STARTS {
        let t = Instant::now();
        let (status, body) = server.call("POST", "/api/rooms/room-0/start", &alice, None);
        took.push(t.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(status, 200, "{body}");
        std::thread::sleep(Duration::from_secs(2));
        let (status, body) = server.call("POST", "/api/rooms/room-0/stop", &alice, None);
        assert_eq!(status, 200, "{body}");
        let deadline = Instant::now() + Duration::from_secs(30);
        while capture_json(&config, &["status"], "")["state"] != "idle" {
            assert!(Instant::now() < deadline, "never idle again");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    took.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let pct = |p: f64| took[((took.len() - 1) as f64 * p).round() as usize];
    drop(_service);

    // 500 idle channels.
    for (i, d) in devices.iter().enumerate().skip(OTHERS) {
        open_channel(&server, d, source(i));
    }
    wait_online(&server, &alice, IDLE);
    std::thread::sleep(Duration::from_secs(10));
    let (rss_after, cpu_after) = (rss_mb(pid), cpu_over(pid, 60));

    println!("| measure | value | goal |");
    println!("|---|---|---|");
    println!(
        "| click to recording (Record to the device's answer, pipeline playing), p50 / p95 of {STARTS}, {OTHERS} other channels open | {:.0} / {:.0} ms | p95 <= 2000 ms |",
        pct(0.5),
        pct(0.95)
    );
    println!(
        "| server RSS, no channels / {IDLE} idle channels | {rss_before:.1} / {rss_after:.1} MB (+{:.1} MB) | <= +64 MB |",
        rss_after - rss_before
    );
    println!(
        "| server CPU, no channels (30 s) / {IDLE} idle channels (60 s) | {cpu_before:.2} / {cpu_after:.2} % of one core | < 2 % |"
    );
}
