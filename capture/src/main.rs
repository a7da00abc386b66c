//! `lessonlens-capture`: wires the config and the CLI to the library; see `lib.rs` for the parts.

use clap::{Parser, Subcommand};
use lessonlens_capture::config::Config;
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
    /// Record a lesson until SIGINT/SIGTERM (or --seconds), then upload it.
    Record {
        /// The teacher's username on the school server; the recording is sealed to their key.
        #[arg(long)]
        teacher: String,
        /// Stop after this many seconds of media.
        #[arg(long)]
        seconds: Option<f64>,
        /// Seconds to keep uploading after the stop before leaving the rest in the spool.
        #[arg(long, default_value_t = 120)]
        drain_seconds: u64,
    },
    /// Print the GStreamer pipeline this config builds, in gst-launch-1.0 syntax.
    Pipeline,
    /// Upload whatever the spool holds, then exit.
    Drain {
        #[arg(long, default_value_t = 120)]
        drain_seconds: u64,
    },
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let config = Config::load(&cli.config)?;
    match cli.command {
        Command::Record {
            teacher,
            seconds,
            drain_seconds,
        } => {
            let stop = Arc::new(AtomicBool::new(false));
            // SIGINT/SIGTERM end the recording cleanly (EOS), keeping the last partial segment; a
            // second one exits at once (what is spooled stays for the next start).
            for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
                signal_hook::flag::register_conditional_shutdown(sig, 130, stop.clone())?;
                signal_hook::flag::register(sig, stop.clone())?;
            }
            let opts = RecordOptions {
                teacher,
                duration: seconds.map(Duration::from_secs_f64),
                drain_for: Duration::from_secs(drain_seconds),
            };
            let report = recorder::record(&config, &opts, stop)?;
            println!("{}", serde_json::to_string(&report)?);
        }
        Command::Pipeline => println!("{}", lessonlens_capture::pipeline::describe_for(&config)?),
        Command::Drain { drain_seconds } => {
            recorder::drain(&config, Duration::from_secs(drain_seconds))?
        }
    }
    Ok(())
}
