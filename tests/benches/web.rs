//! Web app benchmarks (issue 5), printed as a table; not a test. Run with `scripts/bench-web.sh`.
//!
//! - Time to first frame after pressing play on loopback, over 20 page loads (goal: p50 <= 500 ms),
//!   on a 20 s 720p lesson recorded by the real capture binary.
//! - Weight of the recording page: the bytes of the page, its JS and CSS as served (no
//!   compression), besides hls.js (goal: <= 250 KB).

use lessonlens_e2e::{record_once, Server};
use std::path::Path;

fn main() {
    let web = Path::new(env!("CARGO_MANIFEST_DIR")).join("../web");
    let server = Server::start(&web);
    server.add_user("alice", "alice-password", "teacher");
    let device = server.add_device("room-1");
    let dir = tempfile::tempdir().unwrap();
    let config = server.capture_config(
        dir.path(),
        &device,
        "[video]\nwidth = 1280\nheight = 720\nbitrate_kbps = 2500\n",
    );
    let report = record_once(&config, "alice", "20");
    let rec = report["recording"].as_str().unwrap();
    let (stdout, _) = server.browser_script(
        "bench_first_frame.mjs",
        "bench",
        &[
            ("LL_RECORDING", rec),
            ("LL_USER", "alice:alice-password"),
            ("LL_RUNS", "20"),
        ],
    );
    let result: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    let mut times: Vec<f64> = result["times_ms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_f64().unwrap())
        .collect();
    times.sort_by(f64::total_cmp);
    let pct = |p: f64| times[((times.len() - 1) as f64 * p).round() as usize];

    let agent = server.agent();
    let size = |path: &str| {
        let mut body = Vec::new();
        std::io::Read::read_to_end(
            &mut agent
                .get(&format!("{}{path}", server.url()))
                .call()
                .unwrap()
                .into_reader(),
            &mut body,
        )
        .unwrap();
        body.len()
    };
    let page: Vec<(&str, usize)> = [
        "/",
        "/app.js",
        "/js/account.js",
        "/js/admin.js",
        "/js/api.js",
        "/js/dom.js",
        "/js/format.js",
        "/js/library.js",
        "/js/recording.js",
        "/js/state.js",
        "/style.css",
        "/favicon.svg",
    ]
    .iter()
    .map(|p| (*p, size(p)))
    .collect();
    let total: usize = page.iter().map(|(_, s)| s).sum();

    println!("| measure | value | goal |");
    println!("|---|---|---|");
    println!(
        "| time to first frame, p50 of {} | {:.0} ms | <= 500 ms |",
        times.len(),
        pct(0.5)
    );
    println!("| time to first frame, p90 | {:.0} ms | |", pct(0.9));
    println!(
        "| time to first frame, min / max | {:.0} / {:.0} ms | |",
        times[0],
        times[times.len() - 1]
    );
    for (path, bytes) in &page {
        println!("| {path} | {:.1} KB | |", *bytes as f64 / 1000.0);
    }
    println!(
        "| recording page besides hls.js | {:.1} KB | <= 250 KB |",
        total as f64 / 1000.0
    );
    println!(
        "| /vendor/hls.min.js | {:.1} KB | |",
        size("/vendor/hls.min.js") as f64 / 1000.0
    );
}
