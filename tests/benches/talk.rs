//! Talk time's cost on the device (issue 17), printed as a table; not a test. Run with
//! `scripts/bench-talk.sh`.
//!
//! The real capture service records 720p30 with two microphones, with talk time on and off, in
//! alternating rounds; the difference in its CPU is what the detector and its two branches cost
//! (goal: under 2 % of one core). Peak RSS is each run's own process.

use lessonlens_e2e::procstat::{cpu_seconds, peak_rss_mb};
use lessonlens_e2e::{capture_json, wait_for, Server};
use std::time::Duration;

const DEVICE: &str = "[video]\nwidth = 1280\nheight = 720\nbitrate_kbps = 2500\n\
                      [room_audio]\nsource = \"test\"\n";

fn main() {
    let seconds: u64 = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let rounds: usize = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let server = Server::start(&lessonlens_e2e::web_dir());
    server.add_user("alice", "alice-password", "teacher");
    assert_eq!(server.set_device_code("alice", "2468"), 200);
    let device = server.add_device("room-12");
    let mut cost: Vec<(bool, f64, f64)> = Vec::new();
    for round in 0..rounds * 2 {
        let talk = round % 2 == 0;
        let dir = tempfile::tempdir().unwrap();
        let (service, config, _) = server.capture_service(
            dir.path(),
            &device,
            &format!("{DEVICE}[talk]\nenabled = {talk}\n"),
        );
        wait_for(&config, "start-up checks", Duration::from_secs(30), |s| {
            s["checks"].as_array().is_some_and(|c| !c.is_empty())
        });
        capture_json(&config, &["record", "start", "--code"], "2468\n");
        wait_for(&config, "recording", Duration::from_secs(30), |s| {
            s["state"] == "recording"
        });
        std::thread::sleep(Duration::from_secs(5));
        let pid = service.id();
        let before = cpu_seconds(pid);
        std::thread::sleep(Duration::from_secs(seconds));
        let used = cpu_seconds(pid) - before;
        let rss = peak_rss_mb(pid);
        capture_json(&config, &["record", "stop"], "");
        eprintln!(
            "round {round}: talk {talk}: {:.1} % of one core, peak RSS {rss:.1} MB",
            used / seconds as f64 * 100.0
        );
        cost.push((talk, used / seconds as f64 * 100.0, rss));
    }
    let mean = |talk: bool, f: fn(&(bool, f64, f64)) -> f64| {
        let v: Vec<f64> = cost.iter().filter(|c| c.0 == talk).map(f).collect();
        v.iter().sum::<f64>() / v.len() as f64
    };
    let (cpu_on, cpu_off) = (mean(true, |c| c.1), mean(false, |c| c.1));
    let (rss_on, rss_off) = (mean(true, |c| c.2), mean(false, |c| c.2));
    println!("| measure (720p30, two microphones, {rounds} rounds of {seconds} s each) | talk time off | talk time on | difference | goal |");
    println!("|---|---|---|---|---|");
    println!(
        "| capture CPU, % of one core | {cpu_off:.1} | {cpu_on:.1} | {:+.1} | detector < 2 |",
        cpu_on - cpu_off
    );
    println!(
        "| capture peak RSS, MB | {rss_off:.1} | {rss_on:.1} | {:+.1} | |",
        rss_on - rss_off
    );
}
