//! `lessonlens-server device ...`: enrolment codes, the list, revoking.

use super::{audit, open};
use anyhow::{bail, Context};
use clap::Subcommand;
use lessonlens_server::config::Config;
use lessonlens_server::domain::clock;
use lessonlens_server::{store::devices, store::tls};

#[derive(Subcommand)]
pub enum DeviceCommand {
    /// Make a one-time enrollment code for a device (valid 10 minutes). On the device, run
    /// `lessonlens-capture enroll` with the code and the CA fingerprint this prints. The name may
    /// be an enrolled device's, which then enrols again (e.g. after its certificate expired).
    Enroll { name: String },
    /// List devices: last seen, certificate expiry, revoked.
    List,
    /// Revoke a device: its certificates stop working at once (e.g. a stolen or retired device).
    Revoke { name: String },
}

/// Runs one `device` command.
pub fn run(config: Config, cmd: DeviceCommand) -> anyhow::Result<()> {
    match cmd {
        DeviceCommand::Revoke { name } => {
            let o = open(config)?;
            if !devices::revoke(&o.conn, &name)? {
                bail!("no device called {name:?}");
            }
            audit(&o, "device-revoke", &name)?;
            println!("device {name} revoked");
            Ok(())
        }
        DeviceCommand::Enroll { name } => {
            let o = open(config)?;
            let ca = tls::SchoolCa::load(&o.config.tls_dir(), o.vault.tls_seal()).context(
                "the school CA does not exist yet; start the server once (`serve`) to make it",
            )?;
            let code = devices::create_code(&o.conn, &name, clock::now())?;
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
        DeviceCommand::List => {
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
