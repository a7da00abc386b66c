//! `lessonlens-server`: wires the CLI and config to the library; see `lib.rs` for the parts.

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use lessonlens_server::accounts::{self, Role};
use lessonlens_server::app::{self, AppState};
use lessonlens_server::config::Config;
use lessonlens_server::vault::{MasterKey, Vault};
use lessonlens_server::{backup, db, devices, offboarding, retention, roster, tls};
use rusqlite::OptionalExtension;
use std::os::unix::fs::OpenOptionsExt;
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

#[derive(Subcommand)]
enum RetentionCommand {
    /// Print the policy.
    Show,
    /// Change the policy; options left out keep their value.
    Set {
        /// Delete recordings this many days after they were made.
        #[arg(long)]
        keep_days: Option<u32>,
        /// Delete never-shared recordings after this many days (0: no such rule).
        #[arg(long)]
        unshared_days: Option<u32>,
        /// Days between marking a teacher as leaving and deleting their data.
        #[arg(long)]
        grace_days: Option<u32>,
    },
    /// Run the sweeper once (the server also runs it every `sweep_interval_minutes`).
    Run {
        /// Act as if it were this Unix time (for audits of "what would be due", and tests).
        #[arg(long)]
        now: Option<i64>,
    },
}

#[derive(Subcommand)]
enum RecordingCommand {
    /// Hold a recording: retention will not delete it until the hold is released.
    Hold {
        id: String,
        #[arg(long)]
        reason: String,
    },
    /// Release a hold.
    Release { id: String },
}

#[derive(Subcommand)]
enum ReceiptCommand {
    /// List the deletion receipts (id and time).
    List,
    /// Print one receipt (JSON), e.g. to hand to the DPO.
    Show { id: String },
    /// Verify a receipt file: exit status 0 if genuine, 1 if altered or signed by another key.
    Verify {
        file: PathBuf,
        /// The school server's receipt key (hex), as printed by `receipt public-key`; without it,
        /// this server's own key is used.
        #[arg(long)]
        public_key: Option<String>,
    },
    /// Print the public key receipts are signed with (give it to the DPO with the receipts).
    PublicKey,
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
    /// Set someone's password (read from standard input), e.g. the first one after a roster import.
    SetPassword { username: String },
    /// Turn off a person's two-step sign-in (a lost phone) and end their sessions.
    ResetSecondFactor { username: String },
    /// Print an invitation link (valid 7 days) with which the person chooses their own password.
    Invite { username: String },
    /// Disable an account now: its sessions end and its device code stops working.
    Disable { username: String },
    /// Enable a disabled account again.
    Enable { username: String },
    /// Mark someone as leaving: disabled now, everything of theirs deleted after the grace period
    /// (the policy's, unless given; 0 deletes at the next sweep), with a signed receipt.
    Offboard {
        username: String,
        #[arg(long)]
        grace_days: Option<u32>,
    },
    /// Cancel a pending offboarding (the account stays disabled until enabled).
    CancelOffboard { username: String },
}

#[derive(Subcommand)]
enum DeviceCommand {
    /// Make a one-time enrollment code for a device (valid 10 minutes). On the device, run
    /// `lessonlens-capture enroll` with the code and the CA fingerprint this prints. The name may
    /// be an enrolled device's, which then enrols again (e.g. after its certificate expired).
    Enroll { name: String },
    /// List devices: last seen, certificate expiry, revoked.
    List,
    /// Revoke a device: its certificates stop working at once (e.g. a stolen or retired device).
    Revoke { name: String },
}

struct Opened {
    config: Config,
    conn: rusqlite::Connection,
    vault: Vault,
    /// The account that holds lessons recorded offline until they are claimed.
    unassigned: i64,
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
    let (vault, _) =
        Vault::open(&config.vault_path(), master)?.with_shred_log(&config.shred_log_path())?;
    // The school's unassigned key, which devices seal to while the server is unreachable.
    let unassigned = accounts::ensure_unassigned(&conn)?;
    if vault.public_key(unassigned)?.is_none() {
        vault.create_key(unassigned, accounts::now())?;
    }
    Ok(Opened {
        config,
        conn,
        vault,
        unassigned,
    })
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
            audit(&o, "user-add", &user.audit_id)?;
            println!("user {username} added (id {id})");
            Ok(())
        }
        Command::User(UserCommand::SetPassword { username }) => {
            let mut line = zeroize::Zeroizing::new(String::new());
            std::io::stdin().read_line(&mut line)?;
            let hash = accounts::hash_password(line.trim_end_matches(['\r', '\n']))?;
            let o = open(config)?;
            let user = any_user(&o, &username)?;
            // Set at the console by whoever runs the server: from now on the account's password
            // is not the web admins' to replace (no invitation can be made for it).
            o.conn.execute(
                "UPDATE users SET password_hash = ?1, own_password = 1 WHERE id = ?2",
                rusqlite::params![hash, user.id],
            )?;
            o.conn
                .execute("DELETE FROM sessions WHERE user_id = ?1", [user.id])?;
            o.conn
                .execute("DELETE FROM invites WHERE user_id = ?1", [user.id])?;
            audit(&o, "set-password", &user.audit_id)?;
            println!("password set for {username}; their other sessions ended");
            Ok(())
        }
        Command::User(UserCommand::Invite { username }) => {
            let o = open(config)?;
            let user = accounts::find_user(&o.conn, &username)?
                .with_context(|| format!("no enabled account called {username:?}"))?;
            if accounts::own_password(&o.conn, user.id)? {
                bail!("{username} has chosen their own password, so no invitation can be made for them; if they forgot it, they use their recovery code on the sign-in page");
            }
            let token = accounts::create_invite(&o.conn, user.id, accounts::now())?;
            audit(&o, "invite", &user.audit_id)?;
            let host = o
                .config
                .hostnames
                .first()
                .map_or("localhost", String::as_str);
            println!(
                "invitation for {username} (valid {} days, once): https://{host}:{}/#/invite/{}",
                accounts::INVITE_DAYS,
                o.config.listen.port(),
                &*token
            );
            Ok(())
        }
        Command::User(UserCommand::ResetSecondFactor { username }) => {
            let o = open(config)?;
            let user = any_user(&o, &username)?;
            let removed = o.vault.totp_remove(user.id)?;
            o.conn
                .execute("DELETE FROM sessions WHERE user_id = ?1", [user.id])?;
            audit(&o, "second-factor-reset", &user.audit_id)?;
            if removed {
                println!("two-step sign-in turned off for {username}; their sessions ended");
            } else {
                println!("{username} had no two-step sign-in; their sessions ended");
            }
            Ok(())
        }
        Command::RosterImport {
            file,
            apply,
            skip_bad_lines,
        } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let (rows, errors) = roster::parse(&text);
            for e in &errors {
                eprintln!("line {}: {}", e.line, e.message);
            }
            let o = open(config)?;
            let plan = roster::plan(&o.conn, &rows)?;
            println!("{}", serde_json::to_string_pretty(&plan)?);
            if !apply {
                println!("dry run: nothing changed; run again with --apply to make these changes");
                return Ok(());
            }
            for e in &plan.clashes {
                eprintln!("line {}: {}", e.line, e.message);
            }
            let bad = errors.len() + plan.clashes.len();
            if bad > 0 && !skip_bad_lines {
                bail!(
                    "{} bad line(s) (listed above): nothing was changed. Fix the file, or run with \
                     --skip-bad-lines to apply the good lines only",
                    bad
                );
            }
            let created = roster::apply(&o.conn, &o.vault.audit_key(), "cli", &plan)?;
            for (id, teacher) in created {
                if teacher {
                    o.vault.create_key(id, accounts::now())?;
                }
            }
            println!(
                "applied: {} added, {} renamed, {} linked; {} listed as leaving? (confirm each with `user offboard`)",
                plan.add.len(),
                plan.rename.len(),
                plan.link.len(),
                plan.leaving.len()
            );
            Ok(())
        }
        Command::User(UserCommand::Disable { username }) => {
            let o = open(config)?;
            let user = any_user(&o, &username)?;
            accounts::disable_in(&o.conn, user.id)?;
            audit(&o, "user-disable", &user.audit_id)?;
            println!("{username} disabled; their sessions ended");
            Ok(())
        }
        Command::User(UserCommand::Enable { username }) => {
            let o = open(config)?;
            let user = any_user(&o, &username)?;
            if accounts::is_leaving(&o.conn, user.id)? {
                bail!(
                    "{username} is marked as leaving: run `user cancel-offboard {username}` first"
                );
            }
            o.conn
                .execute("UPDATE users SET disabled = 0 WHERE id = ?1", [user.id])?;
            audit(&o, "user-enable", &user.audit_id)?;
            println!("{username} enabled");
            Ok(())
        }
        Command::User(UserCommand::Offboard {
            username,
            grace_days,
        }) => {
            let o = open(config)?;
            let user = any_user(&o, &username)?;
            let grace = match grace_days {
                Some(g) => g,
                None => retention::load_policy(&o.conn)?.grace_days,
            };
            let fp = o.vault.fingerprint(user.id)?;
            let at = offboarding::mark_leaving(
                &o.conn,
                &o.vault.audit_key(),
                "cli",
                &user,
                fp,
                grace,
                accounts::now(),
            )?;
            println!(
                "{username} is disabled and will be deleted at {} (Unix {at}); cancel with `user cancel-offboard`",
                time::OffsetDateTime::from_unix_timestamp(at)?
            );
            Ok(())
        }
        Command::User(UserCommand::CancelOffboard { username }) => {
            let o = open(config)?;
            let user = any_user(&o, &username)?;
            offboarding::cancel(&o.conn, &o.vault.audit_key(), "cli", &user)?;
            println!("the deletion of {username} is cancelled; the account stays disabled until `user enable`");
            Ok(())
        }
        Command::Retention(RetentionCommand::Show) => {
            let o = open(config)?;
            println!(
                "{}",
                serde_json::to_string_pretty(&retention::load_policy(&o.conn)?)?
            );
            Ok(())
        }
        Command::Retention(RetentionCommand::Set {
            keep_days,
            unshared_days,
            grace_days,
        }) => {
            let o = open(config)?;
            let mut p = retention::load_policy(&o.conn)?;
            p.keep_days = keep_days.unwrap_or(p.keep_days);
            p.grace_days = grace_days.unwrap_or(p.grace_days);
            if let Some(d) = unshared_days {
                p.unshared_days = (d > 0).then_some(d);
            }
            p.validate().map_err(anyhow::Error::msg)?;
            retention::save_policy(&o.conn, &p)?;
            audit(&o, "retention-policy", &serde_json::to_string(&p)?)?;
            println!("{}", serde_json::to_string_pretty(&p)?);
            Ok(())
        }
        Command::Retention(RetentionCommand::Run { now }) => {
            let o = open(config)?;
            let blobs = lessonlens_server::blobs::open(&o.config)?;
            let swept = retention::sweep(
                &o.conn,
                &o.vault,
                blobs.as_ref(),
                &o.vault.audit_key(),
                now.unwrap_or_else(accounts::now),
            )?;
            println!("{}", serde_json::to_string(&swept)?);
            Ok(())
        }
        Command::Recording(cmd) => {
            let o = open(config)?;
            let (id, reason) = match &cmd {
                RecordingCommand::Hold { id, reason } => (id, Some(reason.as_str())),
                RecordingCommand::Release { id } => (id, None),
            };
            if !retention::set_hold(&o.conn, &o.vault.audit_key(), "cli", id, reason)? {
                bail!("no recording {id}");
            }
            println!("{}", if reason.is_some() { "held" } else { "released" });
            Ok(())
        }
        Command::Receipt(ReceiptCommand::List) => {
            let o = open(config)?;
            let mut stmt = o
                .conn
                .prepare("SELECT id, created_at FROM deletion_receipts ORDER BY created_at")?;
            let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
            for row in rows {
                let (id, at) = row?;
                println!("{id}\t{}", time::OffsetDateTime::from_unix_timestamp(at)?);
            }
            Ok(())
        }
        Command::Receipt(ReceiptCommand::Show { id }) => {
            let o = open(config)?;
            let text: String = o
                .conn
                .query_row(
                    "SELECT receipt FROM deletion_receipts WHERE id = ?1",
                    [&id],
                    |r| r.get(0),
                )
                .optional()?
                .with_context(|| format!("no receipt {id}"))?;
            println!("{text}");
            Ok(())
        }
        Command::Receipt(ReceiptCommand::PublicKey) => {
            let o = open(config)?;
            println!(
                "{}",
                hex::encode(o.vault.receipt_signing_key().verifying_key().as_bytes())
            );
            Ok(())
        }
        Command::Receipt(ReceiptCommand::Verify { file, public_key }) => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let key = match public_key {
                Some(h) => {
                    let bytes: [u8; 32] = hex::decode(h.trim())
                        .ok()
                        .and_then(|b| b.try_into().ok())
                        .context("--public-key must be 64 hex digits")?;
                    ed25519_dalek::VerifyingKey::from_bytes(&bytes)?
                }
                None => open(config)?.vault.receipt_signing_key().verifying_key(),
            };
            match offboarding::verify(&text, &key) {
                Ok(r) => {
                    println!(
                        "genuine: receipt {} for {}: {} recordings, {} segments, {} bytes deleted, key {} shredded, finished {}",
                        r.receipt_id,
                        r.subject,
                        r.recordings,
                        r.segments,
                        r.bytes,
                        r.key_fingerprint.as_deref().unwrap_or("(none)"),
                        time::OffsetDateTime::from_unix_timestamp(r.finished_at)?
                    );
                    Ok(())
                }
                Err(e) => {
                    eprintln!("NOT VALID: {e}");
                    std::process::exit(1);
                }
            }
        }
        Command::Export { username, out } => {
            let o = open(config)?;
            let user = any_user(&o, &username)?;
            let file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&out)
                .with_context(|| {
                    format!("cannot create {} (it must not exist yet)", out.display())
                })?;
            let blobs = lessonlens_server::blobs::open(&o.config)?;
            audit(&o, "subject-access-export", &user.audit_id)?;
            let Opened { conn, vault, .. } = o;
            let (db, vault) = (std::sync::Mutex::new(conn), std::sync::Mutex::new(vault));
            lessonlens_server::export::write_archive(
                &db,
                &vault,
                blobs.as_ref(),
                &user,
                accounts::now(),
                std::io::BufWriter::new(&file),
            )?;
            file.sync_all()?;
            println!("everything held about {username} is in {}", out.display());
            Ok(())
        }
        Command::Backup { dest } => {
            let o = open(config)?;
            let info = backup::backup(&o.conn, &o.vault, &dest, accounts::now())?;
            audit(&o, "backup", "")?;
            println!(
                "backup written to {}: both databases; {} blobs ({} bytes) referenced in {}",
                dest.display(),
                info.blobs,
                info.blob_bytes,
                o.config.storage_place()
            );
            Ok(())
        }
        Command::Restore { src } => {
            let log = config.shred_log_path();
            let master = || MasterKey::load_or_create(&config.master_key_file);
            if !config.master_key_file.exists() {
                bail!(
                    "the master key {} is missing: restore it from its own backup first",
                    config.master_key_file.display()
                );
            }
            // The current vault's shreds go into the shred list before it is moved aside.
            if config.vault_path().exists() {
                drop(Vault::open(&config.vault_path(), master()?)?.with_shred_log(&log)?);
            }
            let restored = backup::restore(
                &src,
                &config.data_dir,
                |path| Vault::open(path, master()?)?.with_shred_log(&log),
                |v| v.audit_key(),
                accounts::now(),
            )?;
            if let Some(p) = &restored.previous {
                println!("the databases it replaced are in {}", p.display());
            }
            println!(
                "restored the backup of {} (Unix); {} teacher key(s) deleted since were shredded again{}",
                restored.info.created_at,
                restored.shredded_again.len(),
                if restored.shredded_again.is_empty() {
                    String::new()
                } else {
                    format!(
                        " ({}); their accounts are deleted at the next sweep",
                        restored.shredded_again.join(", ")
                    )
                }
            );
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
            if !devices::revoke(&o.conn, &name)? {
                bail!("no device called {name:?}");
            }
            audit(&o, "device-revoke", &name)?;
            println!("device {name} revoked");
            Ok(())
        }
        Command::Device(DeviceCommand::Enroll { name }) => {
            let o = open(config)?;
            let ca = tls::SchoolCa::load(&o.config.tls_dir(), o.vault.tls_seal()).context(
                "the school CA does not exist yet; start the server once (`serve`) to make it",
            )?;
            let code = devices::create_code(&o.conn, &name, accounts::now())?;
            audit(&o, "device-enroll-code", &name)?;
            println!("enrollment code for {name}: {}", &*code);
            println!("school CA fingerprint (SHA-256) {}", ca.fingerprint);
            println!(
                "valid for {} minutes, once; on the device run:\n  lessonlens-capture enroll --url https://<this server>:{} --code {} --ca-sha256 {}",
                devices::CODE_SECONDS / 60,
                o.config.listen.port(),
                &*code,
                ca.fingerprint
            );
            Ok(())
        }
        Command::Device(DeviceCommand::List) => {
            let o = open(config)?;
            let fmt = |t: Option<i64>| {
                t.and_then(|t| time::OffsetDateTime::from_unix_timestamp(t).ok())
                    .map_or("-".to_string(), |t| t.to_string())
            };
            for d in devices::list(&o.conn)? {
                println!(
                    "{}\tlast seen {}\tcertificate until {}{}",
                    d.name,
                    fmt(d.last_seen),
                    fmt(d.certificate_expires),
                    if d.revoked { "\tREVOKED" } else { "" }
                );
            }
            Ok(())
        }
    }
}

fn any_user(o: &Opened, username: &str) -> anyhow::Result<accounts::User> {
    let user = accounts::find_any_user(&o.conn, username)?
        .with_context(|| format!("no user called {username:?}"))?;
    if user.id == o.unassigned {
        bail!("{username} holds the lessons recorded offline until their teachers claim them; it is not a person's account");
    }
    Ok(user)
}

fn audit(o: &Opened, action: &str, target: &str) -> anyhow::Result<()> {
    lessonlens_server::audit::record(&o.conn, &o.vault.audit_key(), "cli", action, target)?;
    Ok(())
}

fn serve(o: Opened) -> anyhow::Result<()> {
    // A teacher left without a key (the key is made after the account's commit, in another
    // file) gets one now, so a device can always record for them. Not someone leaving: their
    // key may have been shredded on purpose.
    let teachers: Vec<i64> = o
        .conn
        .prepare(
            "SELECT id FROM users WHERE (',' || roles || ',') LIKE '%,teacher,%'
             AND id NOT IN (SELECT user_id FROM leaving)",
        )?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    for id in teachers {
        if o.vault.public_key(id)?.is_none() {
            tracing::warn!(user = id, "a teacher had no key; making one");
            o.vault.create_key(id, accounts::now())?;
        }
    }
    let (tls, ca) = tls::load_or_create(
        &o.config.tls_dir(),
        &o.config.hostnames,
        accounts::now(),
        o.vault.tls_seal(),
    )?;
    let bind = |a: std::net::SocketAddr| {
        std::net::TcpListener::bind(a).with_context(|| format!("cannot listen on {a} (in use?)"))
    };
    let listeners = app::Listeners {
        web: bind(o.config.listen)?,
        device: bind(o.config.device_listen)?,
    };
    let addr = listeners.web.local_addr()?;
    let device_addr = listeners.device.local_addr()?;
    let blobs = lessonlens_server::blobs::open(&o.config)?;
    // Finish removing the files of deletions a crash interrupted.
    let swept = lessonlens_server::deletion::sweep_blobs(&o.conn, blobs.as_ref())?;
    if swept > 0 {
        tracing::info!(
            swept,
            "finished removing the files of interrupted deletions"
        );
    }
    let fingerprint = ca.fingerprint.clone();
    let state = Arc::new(AppState::new(
        o.config,
        o.conn,
        o.vault,
        blobs,
        ca,
        o.unassigned,
    ));
    // Machine-readable lines on stdout: tests and scripts read the addresses and the fingerprint.
    println!("listening on https://{addr}");
    println!("device API (mutual TLS) on https://{device_addr}");
    println!("school CA fingerprint (SHA-256) {fingerprint}");
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
            let every = std::time::Duration::from_secs(
                u64::from(state.config.sweep_interval_minutes.max(1)) * 60,
            );
            tokio::spawn(retention::run_periodically(state.clone(), every));
            app::run(listeners, state, &tls, shutdown).await
        })
}
