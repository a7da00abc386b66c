//! `lessonlens-server`: wires the CLI and config to the library; see `lib.rs` for the parts.

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use lessonlens_server::accounts::{self, Role};
use lessonlens_server::app::{self, AppState};
use lessonlens_server::blobs::LocalBlobs;
use lessonlens_server::config::Config;
use lessonlens_server::vault::{write_secret_file, MasterKey, Vault};
use lessonlens_server::{db, tls};
use std::path::PathBuf;
use std::sync::Arc;

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
}

#[derive(Subcommand)]
enum UserCommand {
    /// Add a user. The password is read from standard input (one line), never from arguments.
    Add {
        username: String,
        #[arg(long)]
        display_name: String,
        /// teacher, coach or admin; repeat for several.
        #[arg(long = "role", required = true)]
        roles: Vec<String>,
    },
    /// Set a teacher's device code (4-8 digits, read from standard input), typed on a classroom
    /// device to start a recording.
    SetCode { username: String },
}

#[derive(Subcommand)]
enum DeviceCommand {
    /// Register a device and write its token to a new file (mode 0600).
    Add {
        name: String,
        #[arg(long)]
        token_file: PathBuf,
    },
    /// Revoke a device: its token stops working at once (e.g. a stolen or retired device).
    Revoke { name: String },
}

struct Opened {
    config: Config,
    conn: rusqlite::Connection,
    vault: Vault,
}

fn open(config: Config) -> anyhow::Result<Opened> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create data_dir {}", config.data_dir.display()))?;
    if !config.master_key_file.exists() && config.vault_path().exists() {
        // A new master key would make every key in the vault unreadable.
        bail!(
            "master key file {} is missing but the key vault {} exists: restore the master key from \
             its backup (or, on a server with no teachers yet, remove the vault to start afresh)",
            config.master_key_file.display(),
            config.vault_path().display()
        );
    }
    let master = MasterKey::load_or_create(&config.master_key_file)?;
    let conn = db::open(&config.db_path())?;
    let vault = Vault::open(&config.vault_path(), master)?;
    Ok(Opened {
        config,
        conn,
        vault,
    })
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
        Command::Serve => serve(open(config)?),
        Command::User(UserCommand::Add {
            username,
            display_name,
            roles,
        }) => {
            let roles = roles
                .iter()
                .map(|r| {
                    Role::parse(r)
                        .with_context(|| format!("unknown role {r:?}: use teacher, coach or admin"))
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            let mut line = zeroize::Zeroizing::new(String::new());
            std::io::stdin().read_line(&mut line)?;
            let password = line.trim_end_matches(['\r', '\n']);
            let o = open(config)?;
            let id = accounts::add_user(&o.conn, &username, &display_name, password, &roles)?;
            let user = accounts::find_user(&o.conn, &username)?.context("the new user vanished")?;
            if roles.contains(&Role::Teacher) {
                let pk = o.vault.create_key(id, accounts::now())?;
                eprintln!("teacher key {} created", pk.fingerprint());
            }
            lessonlens_server::audit::record(
                &o.conn,
                &o.vault.audit_key(),
                "cli",
                "user-add",
                &user.audit_id,
            )?;
            println!("user {username} added (id {id})");
            Ok(())
        }
        Command::User(UserCommand::SetCode { username }) => {
            let mut line = zeroize::Zeroizing::new(String::new());
            std::io::stdin().read_line(&mut line)?;
            let code = line.trim();
            if !accounts::valid_code(code) {
                bail!("a device code is 4 to 8 digits");
            }
            let o = open(config)?;
            let user = accounts::find_user(&o.conn, &username)?
                .filter(|u| u.has(Role::Teacher))
                .with_context(|| format!("no enabled teacher called {username:?}"))?;
            accounts::set_code(&o.conn, user.id, &o.vault.code_tag(code))?;
            lessonlens_server::audit::record(
                &o.conn,
                &o.vault.audit_key(),
                "cli",
                "set-code",
                &user.audit_id,
            )?;
            println!("device code set for {username}");
            Ok(())
        }
        Command::AuditVerify => {
            let o = open(config)?;
            let v = lessonlens_server::audit::verify(&o.conn, &o.vault.audit_key())?;
            println!("audit log intact: {} chained entries", v.chained);
            Ok(())
        }
        Command::Device(DeviceCommand::Revoke { name }) => {
            let o = open(config)?;
            let n = o
                .conn
                .execute("UPDATE devices SET revoked = 1 WHERE name = ?1", [&name])?;
            if n == 0 {
                bail!("no device called {name:?}");
            }
            lessonlens_server::audit::record(
                &o.conn,
                &o.vault.audit_key(),
                "cli",
                "device-revoke",
                &name,
            )?;
            println!("device {name} revoked");
            Ok(())
        }
        Command::Device(DeviceCommand::Add { name, token_file }) => {
            let o = open(config)?;
            if token_file.exists() {
                bail!(
                    "{} already exists; choose another path so no token is overwritten",
                    token_file.display()
                );
            }
            let token = accounts::add_device(&o.conn, &name)?;
            write_secret_file(&token_file, token.as_bytes())?;
            lessonlens_server::audit::record(
                &o.conn,
                &o.vault.audit_key(),
                "cli",
                "device-add",
                &name,
            )?;
            println!(
                "device {name} added; its token is in {}",
                token_file.display()
            );
            Ok(())
        }
    }
}

fn serve(o: Opened) -> anyhow::Result<()> {
    let tls = tls::load_or_create(&o.config.tls_dir(), &o.config.hostnames)?;
    let listener = std::net::TcpListener::bind(o.config.listen)
        .with_context(|| format!("cannot listen on {} (in use?)", o.config.listen))?;
    let addr = listener.local_addr()?;
    let blobs = LocalBlobs::open(&o.config.blob_dir())?;
    // Finish removing the files of deletions a crash interrupted.
    let swept = lessonlens_server::deletion::sweep_blobs(&o.conn, &blobs)?;
    if swept > 0 {
        tracing::info!(
            swept,
            "finished removing the files of interrupted deletions"
        );
    }
    let state = Arc::new(AppState::new(o.config, o.conn, o.vault, blobs));
    // Machine-readable lines on stdout: tests and scripts read the address and the CA fingerprint.
    println!("listening on https://{addr}");
    println!("school CA fingerprint (SHA-256) {}", tls.ca_fingerprint);
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(async move {
            let shutdown = async {
                let mut term =
                    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                        .expect("SIGTERM handler");
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {},
                    _ = term.recv() => {},
                }
                tracing::info!("shutting down");
            };
            app::run(listener, state, tls.server_config, shutdown).await
        })
}
