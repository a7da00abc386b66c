//! Playback benchmark (issue 4), printed as a table; not a test. Run with
//! `scripts/bench-playback.sh`, which installs nginx and wrk.
//!
//! A 30 s 1080p lesson is recorded by the real capture binary into a release-built server. wrk
//! then asks for its media segments in turn (a Lua script walks through them) for 10 s with 16
//! connections: from the server, which reads each sealed segment, checks the session and the
//! viewer's right to watch, and decrypts it in memory; then from nginx serving the same
//! plaintext segments as files over TLS, with the same certificate on the same machine. That
//! pair runs 3 times, because this shared machine's speed drifts from minute to minute: each
//! round's ratio compares neighbours in time, and the median ratio is the result. Goal: the
//! server reaches >= 0.8x nginx's throughput.

use lessonlens_e2e::{record_once, web_dir, Server};
use std::path::Path;
use std::process::Command;

/// Server-then-nginx pairs; the median pair's ratio is the result.
const ROUNDS: usize = 3;

fn wrk(url: &str, script: &Path, cookie: Option<&str>) -> (f64, f64, String, String) {
    let mut cmd = Command::new("wrk");
    cmd.args(["-t2", "-c16", "-d10s", "--latency", "-s"])
        .arg(script);
    if let Some(c) = cookie {
        cmd.args(["-H", &format!("cookie: {c}")]);
    }
    let out = cmd
        .arg(url)
        .output()
        .expect("wrk (scripts/bench-playback.sh installs it)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && !text.contains("Non-2xx"),
        "wrk {url}: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(name))
            .unwrap_or_else(|| panic!("wrk printed no {name}: {text}"))
            .trim()
            .to_string()
    };
    let rps: f64 = field("Requests/sec:").parse().unwrap();
    let transfer = field("Transfer/sec:");
    let mb = if let Some(v) = transfer.strip_suffix("MB") {
        v.parse::<f64>().unwrap() * 1_048_576.0 / 1e6
    } else if let Some(v) = transfer.strip_suffix("GB") {
        v.parse::<f64>().unwrap() * 1_073_741_824.0 / 1e6
    } else {
        panic!("unexpected Transfer/sec {transfer}")
    };
    (rps, mb, field("50%"), field("99%"))
}

/// nginx's master, stopped gracefully on drop: killing it outright would leave its workers
/// running (and holding this process's stdout).
struct Nginx(std::process::Child);

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-QUIT", &self.0.id().to_string()])
            .status();
        let _ = self.0.wait();
    }
}

fn main() {
    let server = Server::start(&web_dir());
    server.add_user("alice", "alice-password", "teacher");
    let device = server.add_device("room-1");
    let dir = tempfile::tempdir().unwrap();
    let config = server.capture_config(dir.path(), &device, "");
    let report = record_once(&config, "alice", "30");
    let rec = report["recording"].as_str().unwrap().to_string();
    let agent = server.agent();
    let cookie = server.login(&agent, "alice", "alice-password");

    // The plaintext segments, as the server serves them, for nginx.
    let media: Vec<u32> = lessonlens_e2e::column(
        &server.db(),
        "SELECT idx FROM segments WHERE recording_id = ?1 AND idx > 0 AND idx < 4294967295 ORDER BY idx",
        [&rec],
    );
    let root = dir.path().join("www");
    let seg_dir = root.join(format!("api/recordings/{rec}/segments"));
    std::fs::create_dir_all(&seg_dir).unwrap();
    let mut total = 0;
    for i in &media {
        let res = agent
            .get(&format!(
                "{}/api/recordings/{rec}/segments/{i}",
                server.url()
            ))
            .set("cookie", &cookie)
            .call()
            .unwrap();
        let mut body = Vec::new();
        std::io::Read::read_to_end(&mut res.into_reader(), &mut body).unwrap();
        total += body.len();
        std::fs::write(seg_dir.join(i.to_string()), body).unwrap();
    }

    let tls = server.data_dir().join("tls");
    // The server's key rests sealed under the master key; nginx gets a plain copy in the
    // benchmark's own temp folder.
    let plain_key = dir.path().join("server.key");
    let master = lessonlens_server::store::vault::MasterKey::load_or_create(
        &server.dir.path().join("secrets/master.key"),
    )
    .unwrap();
    let pem = master
        .tls_seal()
        .open(
            "server.key",
            &std::fs::read(tls.join("server.key")).unwrap(),
        )
        .unwrap();
    std::fs::write(&plain_key, &*pem).unwrap();
    let nginx_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let conf = dir.path().join("nginx.conf");
    // /proc/self belongs to whoever runs this.
    let root_user =
        std::os::unix::fs::MetadataExt::uid(&std::fs::metadata("/proc/self").unwrap()) == 0;
    std::fs::write(
        &conf,
        format!(
            "daemon off;\nworker_processes auto;\npid {pid};\nerror_log {err} warn;\n{user}\
             events {{ worker_connections 1024; }}\n\
             http {{\n access_log off;\n sendfile on;\n keepalive_requests 100000;\n\
             client_body_temp_path {tmp}/body;\n proxy_temp_path {tmp}/proxy;\n\
             fastcgi_temp_path {tmp}/fastcgi;\n uwsgi_temp_path {tmp}/uwsgi;\n scgi_temp_path {tmp}/scgi;\n\
             server {{\n  listen 127.0.0.1:{nginx_port} ssl;\n  ssl_certificate {cert};\n  ssl_certificate_key {key};\n\
             root {root};\n  default_type video/mp4;\n }}\n}}\n",
            pid = dir.path().join("nginx.pid").display(),
            err = dir.path().join("nginx.err").display(),
            // As root, workers would drop to nobody, who cannot read this temp folder.
            user = if root_user { "user root;\n" } else { "" },
            cert = tls.join("server.pem").display(),
            key = plain_key.display(),
            root = root.display(),
            tmp = dir.path().display(),
        ),
    )
    .unwrap();
    let nginx = Command::new("/usr/sbin/nginx")
        .args(["-c"])
        .arg(&conf)
        .args(["-e", "stderr"])
        .spawn()
        .expect("nginx (scripts/bench-playback.sh installs it)");
    let _nginx = Nginx(nginx);
    std::thread::sleep(std::time::Duration::from_secs(1));

    let script = dir.path().join("walk.lua");
    let paths: Vec<String> = media
        .iter()
        .map(|i| format!("\"/api/recordings/{rec}/segments/{i}\""))
        .collect();
    std::fs::write(
        &script,
        format!(
            "local paths = {{{}}}\nlocal n = 0\nrequest = function()\n  n = n % #paths + 1\n  return wrk.format(\"GET\", paths[n])\nend\n",
            paths.join(", ")
        ),
    )
    .unwrap();

    println!(
        "Playback: {} media segments of a 30 s 1080p lesson ({:.1} MB plaintext), walked in turn by wrk -t2 -c16 for 10 s, TLS on loopback; server then nginx, {ROUNDS} rounds",
        media.len(),
        total as f64 / 1e6
    );
    println!();
    println!("| round | server req/s | server MB/s | server p50 / p99 | nginx req/s | nginx MB/s | nginx p50 / p99 | server / nginx |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    let mut ratios = Vec::new();
    for round in 1..=ROUNDS {
        let ours = wrk(&server.url(), &script, Some(&cookie));
        let theirs = wrk(&format!("https://127.0.0.1:{nginx_port}"), &script, None);
        let ratio = ours.1 / theirs.1;
        ratios.push(ratio);
        println!(
            "| {round} | {:.0} | {:.1} | {} / {} | {:.0} | {:.1} | {} / {} | {ratio:.2}x |",
            ours.0, ours.1, ours.2, ours.3, theirs.0, theirs.1, theirs.2, theirs.3
        );
    }
    ratios.sort_by(f64::total_cmp);
    println!();
    println!(
        "Server / nginx throughput, median of {ROUNDS} rounds: {:.2}x (goal >= 0.8x)",
        ratios[ROUNDS / 2]
    );
}
