//! `lessonlens-server user ...` and `roster-import`: accounts at the server's console.

use super::{any_user, audit, open};
use anyhow::{bail, Context};
use clap::Subcommand;
use lessonlens_server::config::Config;
use lessonlens_server::domain::clock;
use lessonlens_server::domain::people::Role;
use lessonlens_server::store::accounts::{self};
use lessonlens_server::{ops::offboarding, store::retention, store::roster};
use std::path::Path;

#[derive(Subcommand)]
pub enum UserCommand {
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

/// Runs one `user` command.
pub fn run(config: Config, cmd: UserCommand) -> anyhow::Result<()> {
    match cmd {
        UserCommand::Add {
            username,
            display_name,
            roles,
        } => {
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
                let pk = o.vault.create_key(id, clock::now())?;
                eprintln!("teacher key {} created", pk.fingerprint());
            }
            audit(&o, "user-add", &user.audit_id)?;
            println!("user {username} added (id {id})");
            Ok(())
        }
        UserCommand::SetPassword { username } => {
            let mut line = zeroize::Zeroizing::new(String::new());
            std::io::stdin().read_line(&mut line)?;
            let hash = accounts::hash_password(line.trim_end_matches(['\r', '\n']))?;
            let o = open(config)?;
            let user = any_user(&o, &username)?;
            // Set at the console by whoever runs the server: from now on the account's password
            // is not the web admins' to replace (no invitation can be made for it).
            accounts::set_own_password(&o.conn, user.id, &hash)?;
            accounts::end_all_sessions(&o.conn, user.id)?;
            audit(&o, "set-password", &user.audit_id)?;
            println!("password set for {username}; their other sessions ended");
            Ok(())
        }
        UserCommand::Invite { username } => {
            let o = open(config)?;
            let user = accounts::find_user(&o.conn, &username)?
                .with_context(|| format!("no enabled account called {username:?}"))?;
            if accounts::own_password(&o.conn, user.id)? {
                bail!("{username} has chosen their own password, so no invitation can be made for them; if they forgot it, they use their recovery code on the sign-in page");
            }
            let token = accounts::create_invite(&o.conn, user.id, clock::now())?;
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
        UserCommand::ResetSecondFactor { username } => {
            let o = open(config)?;
            let user = any_user(&o, &username)?;
            let removed = o.vault.totp_remove(user.id)?;
            accounts::end_all_sessions(&o.conn, user.id)?;
            audit(&o, "second-factor-reset", &user.audit_id)?;
            if removed {
                println!("two-step sign-in turned off for {username}; their sessions ended");
            } else {
                println!("{username} had no two-step sign-in; their sessions ended");
            }
            Ok(())
        }
        UserCommand::Disable { username } => {
            let o = open(config)?;
            let user = any_user(&o, &username)?;
            accounts::disable_in(&o.conn, user.id)?;
            audit(&o, "user-disable", &user.audit_id)?;
            println!("{username} disabled; their sessions ended");
            Ok(())
        }
        UserCommand::Enable { username } => {
            let o = open(config)?;
            let user = any_user(&o, &username)?;
            if accounts::is_leaving(&o.conn, user.id)? {
                bail!(
                    "{username} is marked as leaving: run `user cancel-offboard {username}` first"
                );
            }
            accounts::enable_in(&o.conn, user.id)?;
            audit(&o, "user-enable", &user.audit_id)?;
            println!("{username} enabled");
            Ok(())
        }
        UserCommand::Offboard {
            username,
            grace_days,
        } => {
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
                clock::now(),
            )?;
            println!(
            "{username} is disabled and will be deleted at {} (Unix {at}); cancel with `user cancel-offboard`",
            time::OffsetDateTime::from_unix_timestamp(at)?
        );
            Ok(())
        }
        UserCommand::CancelOffboard { username } => {
            let o = open(config)?;
            let user = any_user(&o, &username)?;
            offboarding::cancel(&o.conn, &o.vault.audit_key(), "cli", &user)?;
            println!("the deletion of {username} is cancelled; the account stays disabled until `user enable`");
            Ok(())
        }
    }
}

/// `roster-import FILE [--apply] [--skip-bad-lines]`: the staff list from the MIS.
pub fn roster_import(
    config: Config,
    file: &Path,
    apply: bool,
    skip_bad_lines: bool,
) -> anyhow::Result<()> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let (rows, errors) = lessonlens_server::domain::roster::parse(&text);
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
            o.vault.create_key(id, clock::now())?;
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
