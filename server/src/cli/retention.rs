//! `lessonlens-server retention|recording|receipt ...`: the policy and the sweeper, holds, and
//! deletion receipts.

use super::{audit, open};
use anyhow::{bail, Context};
use clap::Subcommand;
use lessonlens_server::config::Config;
use lessonlens_server::domain::clock;
use lessonlens_server::{store::receipts, store::retention};
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum RetentionCommand {
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
pub enum RecordingCommand {
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
pub enum ReceiptCommand {
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

/// Runs one `retention` command.
pub fn run(config: Config, cmd: RetentionCommand) -> anyhow::Result<()> {
    match cmd {
        RetentionCommand::Show => {
            let o = open(config)?;
            println!(
                "{}",
                serde_json::to_string_pretty(&retention::load_policy(&o.conn)?)?
            );
            Ok(())
        }
        RetentionCommand::Set {
            keep_days,
            unshared_days,
            grace_days,
        } => {
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
        RetentionCommand::Run { now } => {
            let o = open(config)?;
            let blobs = lessonlens_server::store::blobs::open(&o.config)?;
            let swept = lessonlens_server::ops::sweep::sweep(
                &o.conn,
                &o.vault,
                blobs.as_ref(),
                &o.vault.audit_key(),
                now.unwrap_or_else(clock::now),
            )?;
            println!("{}", serde_json::to_string(&swept)?);
            Ok(())
        }
    }
}

/// Runs one `recording` command (holds).
pub fn recording(config: Config, cmd: RecordingCommand) -> anyhow::Result<()> {
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

/// Runs one `receipt` command.
pub fn receipt(config: Config, cmd: ReceiptCommand) -> anyhow::Result<()> {
    match cmd {
        ReceiptCommand::List => {
            let o = open(config)?;
            for (id, at) in receipts::list(&o.conn)? {
                println!("{id}\t{}", time::OffsetDateTime::from_unix_timestamp(at)?);
            }
            Ok(())
        }
        ReceiptCommand::Show { id } => {
            let o = open(config)?;
            let text = receipts::find(&o.conn, &id)?.with_context(|| format!("no receipt {id}"))?;
            println!("{text}");
            Ok(())
        }
        ReceiptCommand::PublicKey => {
            let o = open(config)?;
            println!(
                "{}",
                hex::encode(o.vault.receipt_signing_key().verifying_key().as_bytes())
            );
            Ok(())
        }
        ReceiptCommand::Verify { file, public_key } => {
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
            match lessonlens_server::domain::receipt::verify(&text, &key) {
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
    }
}
