//! `lessonlens-server`: parses the command line and hands each command to its module in `cli/`;
//! see `lib.rs` for the parts of the server.

mod cli;

use clap::{Parser, Subcommand};
use cli::device::DeviceCommand;
use cli::retention::{ReceiptCommand, RecordingCommand, RetentionCommand};
use cli::user::UserCommand;
use lessonlens_server::config::Config;
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "lessonlens-server",
    version,
    about = "The lessonlens school server"
)]
struct Cli {
    /// Server config file (see config/server.example.toml).
    #[arg(
        long,
        env = "LESSONLENS_SERVER_CONFIG",
        default_value = "/etc/lessonlens/server.toml"
    )]
    config: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve,
    /// Manage user accounts.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage classroom devices.
    #[command(subcommand)]
    Device(DeviceCommand),
    /// Check that no audit entry was altered or removed (exit status 1 if one was).
    AuditVerify,
    /// Subject access: write everything held about a person (account, lessons with their videos,
    /// comments, audit entries) to a new ZIP file (mode 0600), for a formal request.
    Export {
        username: String,
        #[arg(long)]
        out: PathBuf,
    },
    /// Copy both databases, consistently, into a new folder while the server runs. Blobs are
    /// referenced, not copied: back up `data_dir/blobs` (or the bucket) with your file backup.
    Backup { dest: PathBuf },
    /// Put a backup's databases back (stop the server first). Keys shredded since the backup was
    /// taken are shredded again, and their teachers are deleted at the next sweep.
    Restore { src: PathBuf },
    /// The retention policy and the sweeper.
    #[command(subcommand)]
    Retention(RetentionCommand),
    /// Holds on recordings (pause retention, e.g. for a safeguarding review).
    #[command(subcommand)]
    Recording(RecordingCommand),
    /// Deletion receipts: list, show, verify.
    #[command(subcommand)]
    Receipt(ReceiptCommand),
    /// Import the staff list exported by the school's MIS (CSV: name, email, staff id, role).
    /// Without --apply, only shows what would change.
    RosterImport {
        file: PathBuf,
        /// Make the changes (adds, renames). Nobody is ever deleted by an import: staff missing
        /// from the roster are listed as "leaving?" for `user offboard`.
        #[arg(long)]
        apply: bool,
        /// Apply the good lines even though some lines are bad.
        #[arg(long)]
        skip_bad_lines: bool,
    },
}

fn main() -> anyhow::Result<()> {
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
        Command::Serve => cli::serve::serve(lessonlens_server::store::open(config)?),
        Command::User(cmd) => cli::user::run(config, cmd),
        Command::RosterImport {
            file,
            apply,
            skip_bad_lines,
        } => cli::user::roster_import(config, &file, apply, skip_bad_lines),
        Command::Device(cmd) => cli::device::run(config, cmd),
        Command::Retention(cmd) => cli::retention::run(config, cmd),
        Command::Recording(cmd) => cli::retention::recording(config, cmd),
        Command::Receipt(cmd) => cli::retention::receipt(config, cmd),
        Command::Export { username, out } => cli::data::export(config, &username, &out),
        Command::Backup { dest } => cli::data::backup(config, &dest),
        Command::Restore { src } => cli::data::restore(config, &src),
        Command::AuditVerify => cli::data::audit_verify(config),
    }
}
