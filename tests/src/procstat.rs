//! What a running process uses, read from `/proc`, for the benchmarks.

/// CPU seconds (user + system, all threads) process `pid` has used so far.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    (fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()) as f64 / 100.0
}

/// Process `pid`'s CPU, in % of one core, over the next `seconds`.
pub fn cpu_over(pid: u32, seconds: u64) -> f64 {
    let before = cpu_seconds(pid);
    std::thread::sleep(std::time::Duration::from_secs(seconds));
    (cpu_seconds(pid) - before) / seconds as f64 * 100.0
}

/// A `/proc/{pid}/status` figure in kB (`VmRSS`, `VmHWM`...), as MB.
fn status_mb(pid: u32, field: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .unwrap()
        .trim()
        .trim_end_matches(" kB")
        .trim()
        .parse::<f64>()
        .unwrap()
        / 1000.0
}

/// Process `pid`'s resident memory now, MB.
pub fn rss_mb(pid: u32) -> f64 {
    status_mb(pid, "VmRSS")
}

/// Process `pid`'s peak resident memory, MB.
pub fn peak_rss_mb(pid: u32) -> f64 {
    status_mb(pid, "VmHWM")
}
