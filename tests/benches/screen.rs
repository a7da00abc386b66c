//! Device screen benchmarks (issue 15), printed as a table; not a test. Run with
//! `scripts/bench-screen.sh`.
//!
//! - Time from pressing Start (with a correct code) to "Recording" on the screen, over 10 starts
//!   (goal: p95 <= 3 s, bounded by the first 2 s segment).
//! - Meter latency: from the test tone's volume going up (in this process, over `shm`) to the
//!   meter on the screen crossing -20 dB, over 10 changes (goal: <= 200 ms).
//! - The capture service's CPU and peak RSS while recording 720p with the screen open (meter and
//!   preview running) against the same recording without it (goal: <= +5 % CPU, <= +10 MB RSS).

use gst::prelude::*;
use lessonlens_e2e::procstat::{cpu_seconds, peak_rss_mb};
use lessonlens_e2e::{capture_json, Server};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const VIDEO: &str = "[video]\nwidth = 1280\nheight = 720\nbitrate_kbps = 2500\n";

fn node(script_env: &[(&str, &str)], server: &Server) -> std::process::Child {
    Command::new(lessonlens_e2e::browser::node())
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../web/tests/bench_screen.mjs"))
        .env("LL_URL", format!("{}/", server.url()))
        .env("LL_SERVER_CERT", server.data_dir().join("tls/server.pem"))
        .env(
            "LL_SCREENSHOTS",
            std::env::temp_dir().join("lessonlens-bench-shots"),
        )
        .env("LL_TIME_LIMIT_S", "900")
        .envs(script_env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap()
}

fn now_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
        * 1000.0
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn wait_recording(config: &Path) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while capture_json(config, &["status"], "")["state"] != "recording" {
        assert!(Instant::now() < deadline, "never recording");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn main() {
    let seconds: u64 = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(45);
    let rounds: usize = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2);
    let web = Path::new(env!("CARGO_MANIFEST_DIR")).join("../web");
    let server = Server::start(&web);
    server.add_user("alice", "alice-password", "teacher");
    assert_eq!(server.set_device_code("alice", "2468"), 200);
    let device = server.add_device("room-12");

    // 1. Start to "Recording".
    let mut starts: Vec<f64> = {
        let dir = tempfile::tempdir().unwrap();
        let (_service, _, port) = server.capture_service(dir.path(), &device, VIDEO);
        let (out, _) = server.browser_script(
            "bench_screen.mjs",
            "bench-screen",
            &[
                ("LL_DEVICE", &format!("http://127.0.0.1:{port}/")),
                ("LL_CODE", "2468"),
                ("LL_BENCH", "start"),
                ("LL_RUNS", "10"),
            ],
        );
        let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
        v["times_ms"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_f64().unwrap())
            .collect()
    };
    starts.sort_by(f64::total_cmp);

    // 2. Meter latency: the tone's volume is set here, and the page notes when the meter moves.
    let mut latencies: Vec<f64> = {
        gst::init().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("mic.sock");
        let tone =
            gst::parse::launch(&lessonlens_e2e::media::shared_source("tone", &socket)).unwrap();
        tone.set_state(gst::State::Playing).unwrap();
        let volume = tone
            .downcast_ref::<gst::Bin>()
            .unwrap()
            .by_name("tone")
            .unwrap();
        while !socket.exists() {
            std::thread::sleep(Duration::from_millis(50));
        }
        let (_service, _, port) = server.capture_service(
            dir.path(),
            &device,
            &format!(
                "{VIDEO}[audio]\nsource = \"shm\"\ndevice = \"{}\"\n",
                socket.display()
            ),
        );
        let mut browser = node(
            &[
                ("LL_DEVICE", &format!("http://127.0.0.1:{port}/")),
                ("LL_CODE", "2468"),
                ("LL_BENCH", "meter"),
            ],
            &server,
        );
        let mut lines = BufReader::new(browser.stdout.take().unwrap()).lines();
        assert_eq!(lines.next().unwrap().unwrap(), "ready");
        let mut raised = Vec::new();
        for _ in 0..10 {
            volume.set_property("volume", 0.005f64);
            std::thread::sleep(Duration::from_millis(1500));
            raised.push(now_ms());
            volume.set_property("volume", 0.5f64);
            std::thread::sleep(Duration::from_millis(1500));
        }
        writeln!(browser.stdin.take().unwrap(), "done").unwrap();
        let v: serde_json::Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
        browser.wait().unwrap();
        tone.set_state(gst::State::Null).unwrap();
        let crossings: Vec<f64> = v["crossings_ms"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_f64().unwrap())
            .collect();
        raised
            .iter()
            .filter_map(|r| crossings.iter().find(|c| *c >= r).map(|c| c - r))
            .collect()
    };
    latencies.sort_by(f64::total_cmp);

    // 3. The service's cost with the screen open and without, alternating.
    let mut cost: Vec<(bool, f64, f64)> = Vec::new();
    for round in 0..rounds * 2 {
        let with_screen = round % 2 == 1;
        let dir = tempfile::tempdir().unwrap();
        let (service, config, port) = server.capture_service(dir.path(), &device, VIDEO);
        let pid = service.0.id();
        capture_json(&config, &["record", "start", "--code"], "2468\n");
        wait_recording(&config);
        let browser = with_screen.then(|| {
            let mut b = node(
                &[
                    ("LL_DEVICE", &format!("http://127.0.0.1:{port}/")),
                    ("LL_CODE", "2468"),
                    ("LL_BENCH", "open"),
                    ("LL_SECONDS", &(seconds + 5).to_string()),
                ],
                &server,
            );
            let mut lines = BufReader::new(b.stdout.take().unwrap()).lines();
            assert_eq!(lines.next().unwrap().unwrap(), "ready");
            b
        });
        let before = cpu_seconds(pid);
        std::thread::sleep(Duration::from_secs(seconds));
        let used = cpu_seconds(pid) - before;
        let rss = peak_rss_mb(pid);
        capture_json(&config, &["record", "stop"], "");
        if let Some(mut b) = browser {
            let _ = b.kill();
            let _ = b.wait();
        }
        cost.push((with_screen, used * 60.0 / seconds as f64, rss));
    }
    let mean = |screen: bool, f: fn(&(bool, f64, f64)) -> f64| {
        let v: Vec<f64> = cost.iter().filter(|c| c.0 == screen).map(f).collect();
        v.iter().sum::<f64>() / v.len() as f64
    };
    let (cpu_without, cpu_with) = (mean(false, |c| c.1), mean(true, |c| c.1));
    let (rss_without, rss_with) = (mean(false, |c| c.2), mean(true, |c| c.2));

    println!("| measure | value | goal |");
    println!("|---|---|---|");
    println!(
        "| Start to \"Recording\", p50 / p95 of {} | {:.0} / {:.0} ms | p95 <= 3000 ms |",
        starts.len(),
        pct(&starts, 0.5),
        pct(&starts, 0.95)
    );
    println!(
        "| meter latency, p50 / max of {} | {:.0} / {:.0} ms | <= 200 ms |",
        latencies.len(),
        pct(&latencies, 0.5),
        latencies[latencies.len() - 1]
    );
    println!(
        "| capture CPU while recording 720p, without / with the screen ({rounds} rounds of {seconds} s) | {cpu_without:.1} / {cpu_with:.1} CPU-s per min ({:+.1} %) | <= +5 % |",
        (cpu_with / cpu_without - 1.0) * 100.0
    );
    println!(
        "| capture peak RSS, without / with the screen | {rss_without:.1} / {rss_with:.1} MB ({:+.1} MB) | <= +10 MB |",
        rss_with - rss_without
    );
}
