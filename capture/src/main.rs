//! `lessonlens-capture`: wires the config and the CLI to the library; see `lib.rs` for the parts.

use anyhow::Context;
use clap::{Parser, Subcommand};
use lessonlens_capture::config::Config;
use lessonlens_capture::identity;
use lessonlens_capture::recorder::{self, RecordOptions};
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "lessonlens-capture",
    version,
    about = "Record a lesson, seal it, upload it to the school server"
)]
struct Cli {
    /// Device config file (see config/capture.example.toml).
    #[arg(
        long,
        env = "LESSONLENS_CAPTURE_CONFIG",
        default_value = "/etc/lessonlens/capture.toml"
    )]
    config: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the capture service: uploads all day, records when told to (control API).
    Run,
    /// Start or stop a recording on the running service, or record once without it.
    #[command(subcommand)]
    Record(Record),
    /// Show what the running service is doing.
    Status,
    /// Upload whatever the spool holds, then exit (without the service).
    Drain {
        #[arg(long, default_value_t = 120)]
        drain_seconds: u64,
    },
    /// Print the GStreamer pipeline this config builds, in gst-launch-1.0 syntax.
    Pipeline {
        /// Print instead the same capture without lessonlens' own work (poster frame, preview,
        /// meter, talk time, sealing), writing an MP4 to this file: the capture benchmark's
        /// baseline.
        #[arg(long)]
        bare: Option<std::path::PathBuf>,
    },
    /// Check that this device can record and upload: GStreamer elements, camera, microphone,
    /// spool disk, server and clock. Says what to install or change; exits 1 if anything fails.
    Doctor,
    /// Enrol this device with the school server, using a one-time code from an admin
    /// (`lessonlens-server device enroll NAME`, or the admin page). Reads the code from standard
    /// input if `--code` is not given.
    Enroll {
        /// The server's web address, e.g. https://lessonlens.school.lan:8443.
        #[arg(long)]
        url: String,
        #[arg(long)]
        code: Option<String>,
        /// The school CA's SHA-256 fingerprint, printed with the code.
        #[arg(long)]
        ca_sha256: String,
    },
    /// Renew the device certificate now (the service renews by itself at half its life).
    Renew,
}

#[derive(Subcommand)]
enum Record {
    /// Start recording for a teacher (through the running service).
    Start {
        /// The teacher's username on the school server; the recording is sealed to their key.
        #[arg(long, required_unless_present = "code", conflicts_with = "code")]
        teacher: Option<String>,
        /// Identify the teacher by their device code instead, read from standard input (so it
        /// never shows in the process list).
        #[arg(long)]
        code: bool,
    },
    /// Stop the running recording (through the running service).
    Stop,
    /// Privacy pause: record nothing until `resume` (the recording stays open).
    Pause,
    /// End a privacy pause.
    Resume,
    /// Record without the service until SIGINT/SIGTERM (or --seconds), then upload and exit.
    Once {
        #[arg(long)]
        teacher: String,
        /// Stop after this many seconds of media.
        #[arg(long)]
        seconds: Option<f64>,
        /// Seconds to keep uploading after the stop before leaving the rest in the spool.
        #[arg(long, default_value_t = 120)]
        drain_seconds: u64,
    },
}

/// Stops on SIGTERM/SIGINT; a second signal exits at once (what is spooled stays for next time).
fn stop_flag() -> anyhow::Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register_conditional_shutdown(sig, 130, stop.clone())?;
        signal_hook::flag::register(sig, stop.clone())?;
    }
    Ok(stop)
}

/// Calls the running service's control API and prints its JSON answer.
fn control(
    config: &Config,
    method: &str,
    path: &str,
    body: Option<serde_json::Value>,
) -> anyhow::Result<()> {
    let url = format!("http://{}{path}", config.control_addr);
    let req = ureq::request(method, &url).timeout(Duration::from_secs(30));
    let res = match body {
        Some(b) => req.send_json(b),
        None => req.call(),
    };
    match res {
        Ok(r) => {
            println!("{}", r.into_string()?);
            Ok(())
        }
        Err(ureq::Error::Status(_, r)) => {
            let v: serde_json::Value = r.into_json().unwrap_or_default();
            anyhow::bail!(
                "{}",
                v["error"]
                    .as_str()
                    .unwrap_or("the service refused the request")
            )
        }
        Err(e) => Err(e).with_context(|| {
            format!(
                "the capture service is not running on {} (start it with `lessonlens-capture run`)",
                config.control_addr
            )
        }),
    }
}

fn main() -> anyhow::Result<()> {
    // GStreamer's streaming threads each get a glibc malloc arena of their own (up to eight per
    // core), which holds memory the process has freed. Two arenas are plenty for one recording
    // and keep the service's memory close to the bare pipeline's, whatever its environment.
    // SAFETY: mallopt only sets an allocator parameter, before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
    // key=value fields on stderr; colours only on a terminal, and no timestamps under systemd
    // (journald stamps every line itself).
    let logs = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    if std::env::var_os("JOURNAL_STREAM").is_some() {
        logs.without_time().init();
    } else {
        logs.init();
    }
    let cli = Cli::parse();
    let config = Config::load(&cli.config)?;
    match cli.command {
        Command::Run => lessonlens_capture::service::run(config, stop_flag()?)?,
        Command::Record(Record::Start { teacher, code }) => {
            let body = match teacher {
                Some(t) if !code => serde_json::json!({ "teacher": t }),
                _ => {
                    let mut line = zeroize::Zeroizing::new(String::new());
                    std::io::stdin().read_line(&mut line)?;
                    serde_json::json!({ "code": line.trim() })
                }
            };
            control(&config, "POST", "/v1/record/start", Some(body))?
        }
        Command::Record(Record::Pause) => control(
            &config,
            "POST",
            "/v1/record/pause",
            Some(serde_json::json!({})),
        )?,
        Command::Record(Record::Resume) => control(
            &config,
            "POST",
            "/v1/record/resume",
            Some(serde_json::json!({})),
        )?,
        Command::Record(Record::Stop) => control(
            &config,
            "POST",
            "/v1/record/stop",
            Some(serde_json::json!({})),
        )?,
        Command::Status => control(&config, "GET", "/v1/status", None)?,
        Command::Record(Record::Once {
            teacher,
            seconds,
            drain_seconds,
        }) => {
            let opts = RecordOptions {
                teacher,
                duration: seconds.map(Duration::from_secs_f64),
                drain_for: Duration::from_secs(drain_seconds),
            };
            let report = recorder::record(&config, &opts, stop_flag()?)?;
            println!("{}", serde_json::to_string(&report)?);
        }
        Command::Drain { drain_seconds } => {
            recorder::drain(&config, Duration::from_secs(drain_seconds))?
        }
        Command::Pipeline { bare: None } => {
            println!("{}", lessonlens_capture::pipeline::describe_for(&config)?)
        }
        Command::Pipeline { bare: Some(file) } => {
            println!(
                "{}",
                lessonlens_capture::pipeline::describe_bare_for(&config, &file)?
            )
        }
        Command::Doctor => {
            let client = identity::Identity::load(&config.identity_dir)
                .ok()
                .and_then(|_| lessonlens_capture::upload::Client::new(&config).ok());
            let checks = lessonlens_capture::doctor::run(&config, client.as_ref());
            for c in &checks {
                println!(
                    "{:<4} {:<10} {}",
                    if c.ok { "ok" } else { "FAIL" },
                    c.name,
                    c.detail
                );
            }
            if checks.iter().any(|c| !c.ok) {
                std::process::exit(1);
            }
        }
        Command::Enroll {
            url,
            code,
            ca_sha256,
        } => {
            let code = match code {
                Some(c) => zeroize::Zeroizing::new(c),
                None => {
                    let mut line = zeroize::Zeroizing::new(String::new());
                    std::io::stdin().read_line(&mut line)?;
                    zeroize::Zeroizing::new(line.trim().to_string())
                }
            };
            let pin = identity::parse_fingerprint(&ca_sha256)?;
            let name = identity::enroll(&config.identity_dir, &url, &code, pin)?;
            println!(
                "enrolled as {name}; identity in {}",
                config.identity_dir.display()
            );
        }
        Command::Renew => {
            let client = lessonlens_capture::upload::Client::new(&config)?;
            let not_after = client.renew_if_due(true)?.expect("forced renewal");
            println!("certificate renewed; valid until {not_after} (Unix)");
        }
    }
    Ok(())
}
