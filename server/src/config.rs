//! Server configuration: a TOML file (see `config/server.example.toml`), every setting documented
//! here once with its default.

use anyhow::{bail, Context};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address of the web app's HTTPS listener (and of device enrollment). Port 0 picks a free port; the chosen
    /// address is printed at start. Default `127.0.0.1:8443`.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Address of the device API's listener, which requires mutual TLS (a client certificate
    /// from the school CA, issued at enrollment). Port 0 picks a free port. Default
    /// `127.0.0.1:8444`.
    #[serde(default = "default_device_listen")]
    pub device_listen: SocketAddr,
    /// The school's time zone (an IANA name), for timetables and weekly bookings: "Tuesday
    /// 10:00" stays 10:00 across the clock changes. Default `Europe/London`.
    #[serde(default = "default_timezone")]
    pub timezone: String,
    /// How long a device certificate lasts, in days. Devices renew when half of it is left; one
    /// that is off for longer must enrol again with a new code. Default 14.
    #[serde(default = "default_device_cert_days")]
    pub device_cert_days: u32,
    /// Metadata database, blobs, CA and certificates live here. Holds ciphertext only.
    pub data_dir: PathBuf,
    /// 32-byte master key that wraps the key vault's entries. Must be mode 0600 and should live
    /// apart from `data_dir` (and from its backups). Created on first start if missing.
    pub master_key_file: PathBuf,
    /// The web app's files (`web/` in the source tree, with `npm ci` run in it for hls.js).
    #[serde(default = "default_web_dir")]
    pub web_dir: PathBuf,
    /// Names the server certificate is valid for (DNS names or IP addresses).
    #[serde(default = "default_hostnames")]
    pub hostnames: Vec<String>,
    /// How long a browser session lasts, in hours. Default 12.
    #[serde(default = "default_session_hours")]
    pub session_hours: u32,
    /// Networks allowed to reach the server at all (CIDR). Anyone else gets 403 before any handler
    /// runs. Default: loopback and the private ranges a school network uses (10/8, 172.16/12,
    /// 192.168/16, fc00::/7).
    #[serde(default = "default_allowed_networks")]
    pub allowed_networks: Vec<ipnet::IpNet>,
    /// Networks whose monitoring may read `/metrics` (CIDR; within `allowed_networks`). Default:
    /// this machine only (127.0.0.0/8 and ::1).
    #[serde(default = "default_metrics_networks")]
    pub metrics_networks: Vec<ipnet::IpNet>,
    /// Reverse proxies whose `X-Forwarded-For` is believed. Default: none, so the header is ignored.
    #[serde(default)]
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Largest segment upload accepted, in bytes. Default 64 MiB.
    #[serde(default = "default_max_segment_bytes")]
    pub max_segment_bytes: u64,
    /// Two-step sign-in policy: `[second_factor]` with `admins`, `off_site` (both default false)
    /// and `on_site_networks` (default: loopback and the private ranges).
    #[serde(default)]
    pub second_factor: crate::domain::second_factor::Policy,
    /// How often the retention sweeper runs (deleting recordings past the policy and finishing the
    /// deletion of teachers who left), in minutes. It also runs once at start. Default 60.
    #[serde(default = "default_sweep_interval_minutes")]
    pub sweep_interval_minutes: u32,
    /// Where sealed segments are kept: `[storage]` with `backend = "local"` (the default, the
    /// folder `data_dir/blobs`) or `backend = "s3"` and the settings of
    /// [`S3Config`].
    #[serde(default)]
    pub storage: Storage,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(tag = "backend", rename_all = "lowercase")]
pub enum Storage {
    #[default]
    Local,
    S3(S3Config),
}

fn default_listen() -> SocketAddr {
    "127.0.0.1:8443".parse().expect("valid default")
}
fn default_timezone() -> String {
    "Europe/London".into()
}

fn default_device_listen() -> SocketAddr {
    "127.0.0.1:8444".parse().expect("valid default")
}
fn default_device_cert_days() -> u32 {
    14
}
fn default_web_dir() -> PathBuf {
    "/usr/share/lessonlens/web".into()
}
fn default_hostnames() -> Vec<String> {
    vec!["localhost".into(), "127.0.0.1".into()]
}
fn default_metrics_networks() -> Vec<ipnet::IpNet> {
    vec![
        "127.0.0.0/8".parse().expect("a network"),
        "::1/128".parse().expect("a network"),
    ]
}
fn default_allowed_networks() -> Vec<ipnet::IpNet> {
    crate::domain::network::private_networks()
}

fn default_session_hours() -> u32 {
    12
}
fn default_sweep_interval_minutes() -> u32 {
    60
}
fn default_max_segment_bytes() -> u64 {
    64 * 1024 * 1024
}

impl Config {
    pub fn load(path: &Path) -> anyhow::Result<Config> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        let config: Config = toml::from_str(&text)
            .with_context(|| format!("config file {} is not valid", path.display()))?;
        config.validate()?;
        Ok(config)
    }

    /// The school's time zone (checked by [`Config::validate`]).
    pub fn time_zone(&self) -> anyhow::Result<jiff::tz::TimeZone> {
        jiff::tz::TimeZone::get(&self.timezone).with_context(|| {
            format!(
                "timezone {:?} is not a time zone name (such as \"Europe/London\")",
                self.timezone
            )
        })
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        self.time_zone()?;
        if self.hostnames.is_empty() {
            bail!("hostnames must name at least one DNS name or IP address for the certificate");
        }
        if !(1..=24 * 7).contains(&self.session_hours) {
            bail!("session_hours must be between 1 and 168");
        }
        if self.allowed_networks.is_empty() {
            bail!("allowed_networks is empty: nobody could reach the server");
        }
        if !(1..=397).contains(&self.device_cert_days) {
            bail!("device_cert_days must be between 1 and 397");
        }
        if self.device_listen == self.listen && self.listen.port() != 0 {
            bail!("device_listen must differ from listen: the device API has its own listener");
        }
        if self.max_segment_bytes < 1024 {
            bail!("max_segment_bytes is too small to hold a segment");
        }
        if let Storage::S3(s3) = &self.storage {
            s3.validate()?;
        }
        if self.master_key_file.starts_with(&self.data_dir) {
            tracing::warn!("master_key_file is inside data_dir: a backup of data_dir would carry the key that opens it");
        }
        Ok(())
    }

    pub fn db_path(&self) -> PathBuf {
        self.data_dir.join("lessonlens.db")
    }
    pub fn vault_path(&self) -> PathBuf {
        self.data_dir.join("vault.db")
    }
    /// Where the blobs are, for messages, without connecting to anything.
    pub fn storage_place(&self) -> String {
        match &self.storage {
            Storage::Local => format!("the folder {}", self.blob_dir().display()),
            Storage::S3(s3) => s3.place(),
        }
    }

    /// The blobs themselves (folder backend), or where uploads are staged (object storage).
    pub fn blob_dir(&self) -> PathBuf {
        match self.storage {
            Storage::Local => self.data_dir.join("blobs"),
            Storage::S3(_) => self.data_dir.join("staging"),
        }
    }
    pub fn tls_dir(&self) -> PathBuf {
        self.data_dir.join("tls")
    }
    /// The list of shredded keys, beside the master key and outside `data_dir`, so restoring an
    /// older `data_dir` cannot bring a key back.
    pub fn shred_log_path(&self) -> PathBuf {
        self.master_key_file.with_extension("shredded")
    }
}

/// `[storage]` with `backend = "s3"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Config {
    /// The object store's address, e.g. `https://s3.school.internal:9000`. Plain `http://` is
    /// accepted only on loopback (an object store on the same machine).
    pub endpoint: String,
    /// The bucket; it must exist.
    pub bucket: String,
    /// Default `us-east-1`, which most S3-compatible stores accept.
    #[serde(default = "default_region")]
    pub region: String,
    pub access_key_id: String,
    /// A file holding the secret access key, readable by the server's user only (mode 0600).
    pub secret_access_key_file: PathBuf,
    /// Keys start with this folder, so one bucket can serve several schools. Default: none.
    #[serde(default)]
    pub prefix: String,
}

fn default_region() -> String {
    "us-east-1".into()
}

impl S3Config {
    /// Where the blobs are, for messages.
    pub fn place(&self) -> String {
        format!("bucket {} at {}", self.bucket, self.endpoint)
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        let url = url::Url::parse(&self.endpoint)
            .with_context(|| format!("storage endpoint {:?} is not a URL", self.endpoint))?;
        let loopback = match url.host() {
            Some(url::Host::Ipv4(a)) => a.is_loopback(),
            Some(url::Host::Ipv6(a)) => a.is_loopback(),
            Some(url::Host::Domain(d)) => d == "localhost",
            None => bail!("storage endpoint {} names no host", self.endpoint),
        };
        match url.scheme() {
            "https" => {}
            "http" if loopback => {}
            "http" => bail!(
                "storage endpoint {} is plain http on the network: use https (plain http is \
                 accepted only for an object store on this machine)",
                self.endpoint
            ),
            other => bail!(
                "storage endpoint {} has scheme {other}; use https",
                self.endpoint
            ),
        }
        if self.bucket.is_empty() || self.access_key_id.is_empty() {
            bail!("[storage] needs bucket and access_key_id");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_validation() {
        let c: Config = toml::from_str("data_dir = \"/d\"\nmaster_key_file = \"/k\"\n").unwrap();
        c.validate().unwrap();
        assert_eq!(c.listen.port(), 8443);
        let c: Config =
            toml::from_str("data_dir = \"/d\"\nmaster_key_file = \"/k\"\nhostnames = []\n")
                .unwrap();
        assert!(c.validate().is_err());
        assert!(toml::from_str::<Config>(
            "data_dir = \"/d\"\nmaster_key_file = \"/k\"\ntypo = 1\n"
        )
        .is_err());
    }
}
