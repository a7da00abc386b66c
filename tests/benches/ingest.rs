//! Ingest benchmark (issue 4), printed as a table; not a test. Run with `scripts/bench-ingest.sh`.
//!
//! N simulated classroom devices (N = 10, 50, 100; `LESSONLENS_BENCH_DEVICES` to change), each
//! enrolled with the real capture binary and holding its own client certificate, upload a 2 s
//! segment at 4 Mbit/s (1,000,000 bytes, sealed) every 2 s over mutual TLS on loopback to one
//! release-built server, for `LESSONLENS_BENCH_SECONDS` (default 30) per N. The devices' start
//! times are spread over the 2 s, as classrooms' are. Reported: the throughput the server
//! sustained against what was offered, receipt latency (request sent to receipt read) p50 / p95 /
//! max, how many uploads started late because the one before had not finished, the server's CPU
//! (percent of one core) and its largest RSS, sampled every 250 ms. Goal: 100 classrooms with p95
//! receipt latency <= 1 s.

use lessonlens_e2e::{new_recording_id, sealed_segment, web_dir, Server};
use sha2::{Digest, Sha256};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const SEGMENT: Duration = Duration::from_secs(2);
/// 4 Mbit/s for 2 s.
const SEGMENT_BYTES: usize = 1_000_000;

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.into())
}

/// utime + stime of `pid`, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command's closing parenthesis; utime and stime are the 12th and 13th.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

fn clock_ticks_per_second() -> f64 {
    let out = std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

struct Run {
    latencies_ms: Vec<f64>,
    late: usize,
    failed: usize,
    bytes: u64,
    elapsed: Duration,
}

/// Every device uploads one segment per 2 s for `seconds`.
fn run(
    server: &Server,
    devices: &[(ureq::Agent, lessonlens_proto::PublicKey)],
    seconds: u64,
) -> Run {
    let segments = (seconds / SEGMENT.as_secs()).max(1) as u32;
    let start = Instant::now() + Duration::from_millis(500);
    let n = devices.len() as u32;
    let results: Vec<(Vec<f64>, usize, usize, u64)> = std::thread::scope(|s| {
        let handles: Vec<_> = devices
            .iter()
            .enumerate()
            .map(|(k, (agent, pk))| {
                let base = server.device_url();
                s.spawn(move || {
                    let rec = new_recording_id();
                    let offset = SEGMENT * k as u32 / n;
                    let (mut lat, mut late, mut failed, mut bytes) = (Vec::new(), 0, 0, 0u64);
                    for index in 1..=segments {
                        let body = sealed_segment(pk, rec, index, index as u8, SEGMENT_BYTES);
                        let sha = hex::encode(Sha256::digest(&body));
                        // The moment the muxer would hand over this segment.
                        let due = start + offset + SEGMENT * index;
                        let now = Instant::now();
                        if now < due {
                            std::thread::sleep(due - now);
                        } else if now > due + SEGMENT {
                            late += 1;
                        }
                        let sent = Instant::now();
                        let res = agent
                            .put(&format!(
                                "{base}/api/device/v1/recordings/{rec}/segments/{index}"
                            ))
                            .set(lessonlens_proto::wire::SHA256_HEADER, &sha)
                            .send_bytes(&body);
                        // The receipt is read whole before the clock stops.
                        let receipt = res
                            .map_err(|e| e.to_string())
                            .and_then(|r| r.into_string().map_err(|e| e.to_string()));
                        match receipt {
                            Ok(_) => {
                                lat.push(sent.elapsed().as_secs_f64() * 1000.0);
                                bytes += body.len() as u64;
                            }
                            Err(e) => {
                                eprintln!("upload failed: {e}");
                                failed += 1;
                            }
                        }
                    }
                    (lat, late, failed, bytes)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut run = Run {
        latencies_ms: Vec::new(),
        late: 0,
        failed: 0,
        bytes: 0,
        elapsed: start.elapsed(),
    };
    for (lat, late, failed, bytes) in results {
        run.latencies_ms.extend(lat);
        run.late += late;
        run.failed += failed;
        run.bytes += bytes;
    }
    run.latencies_ms.sort_by(f64::total_cmp);
    run
}

fn main() {
    let counts: Vec<usize> = env_or("LESSONLENS_BENCH_DEVICES", "10,50,100")
        .split(',')
        .map(|n| n.trim().parse().expect("LESSONLENS_BENCH_DEVICES: numbers"))
        .collect();
    let seconds: u64 = env_or("LESSONLENS_BENCH_SECONDS", "30").parse().unwrap();
    let most = *counts.iter().max().unwrap();

    let server = Server::start(&web_dir());
    server.add_user("alice", "alice-password", "teacher");
    eprintln!("enrolling {most} devices with the capture binary...");
    let devices: Vec<_> = (0..most)
        .map(|i| {
            let device = server.add_device(&format!("room-{i}"));
            let agent = server.device_agent(&device);
            let pk = server.teacher_key(&agent, "alice");
            (agent, pk)
        })
        .collect();
    let pid = server.pid();
    let ticks = clock_ticks_per_second();

    println!("Ingest: 2 s segments of 1,000,000 bytes (4 Mbit/s) per device over mutual TLS on loopback, {seconds} s per run");
    println!();
    println!("| devices | offered MB/s | stored MB/s | p50 receipt | p95 receipt | max receipt | late starts | failed | server CPU | server RSS (max) |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for &n in &counts {
        let stop = Arc::new(AtomicBool::new(false));
        let sampler = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut max = 0;
                while !stop.load(Ordering::Relaxed) {
                    max = max.max(rss_kib(pid));
                    std::thread::sleep(Duration::from_millis(250));
                }
                max
            })
        };
        let cpu_before = cpu_ticks(pid);
        let r = run(&server, &devices[..n], seconds);
        let cpu = (cpu_ticks(pid) - cpu_before) as f64 / ticks / r.elapsed.as_secs_f64();
        stop.store(true, Ordering::Relaxed);
        let rss = sampler.join().unwrap();
        let mb = |b: f64| b / 1e6;
        println!(
            "| {n} | {:.1} | {:.1} | {:.0} ms | {:.0} ms | {:.0} ms | {} | {} | {:.0}% | {:.0} MB |",
            mb(n as f64 * SEGMENT_BYTES as f64 / SEGMENT.as_secs_f64()),
            mb(r.bytes as f64 / r.elapsed.as_secs_f64()),
            percentile(&r.latencies_ms, 0.5),
            percentile(&r.latencies_ms, 0.95),
            r.latencies_ms.last().copied().unwrap_or(f64::NAN),
            r.late,
            r.failed,
            cpu * 100.0,
            rss as f64 / 1024.0,
        );
    }
}
