//! Two-step sign-in: a time-based code (TOTP, RFC 6238: HMAC-SHA-1, 6 digits, 30 s steps, one
//! step of clock drift either way) from an authenticator app. The secret lives in the key vault,
//! wrapped by the master key; a code is accepted once only (the last step used is stored). The
//! school's policy may require it for admins and for anyone signing in from off site.

use crate::domain::people::{Role, User};
use rand_core::{OsRng, RngCore, TryRngCore};
use serde::Deserialize;
use std::net::IpAddr;
use totp_rs::{Builder, Totp};
use zeroize::Zeroizing;

/// A person's two-step sign-in secret, as the vault holds it.
pub struct TotpSecret {
    pub secret: Zeroizing<Vec<u8>>,
    /// False until the person proved their app has it by typing a code.
    pub confirmed: bool,
    /// The last time step a code was accepted for: no code is accepted twice.
    pub last_step: Option<u64>,
}

/// The school's policy (`[second_factor]` in the config).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Admins must use a second factor. Default false.
    #[serde(default)]
    pub admins: bool,
    /// Anyone signing in from outside `on_site_networks` must use a second factor. Default false.
    #[serde(default)]
    pub off_site: bool,
    /// The school's own networks (CIDR): sign-ins from anywhere else count as off site. Default:
    /// loopback and the private ranges.
    #[serde(default = "default_on_site")]
    pub on_site_networks: Vec<ipnet::IpNet>,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            admins: false,
            off_site: false,
            on_site_networks: default_on_site(),
        }
    }
}

fn default_on_site() -> Vec<ipnet::IpNet> {
    crate::domain::network::private_networks()
}

impl Policy {
    pub fn on_site(&self, ip: IpAddr) -> bool {
        self.on_site_networks.iter().any(|n| n.contains(&ip))
    }

    /// Whether `user`, signing in from `ip`, must give a second factor.
    pub fn required(&self, user: &User, ip: IpAddr) -> bool {
        (self.admins && user.has(Role::Admin)) || (self.off_site && !self.on_site(ip))
    }
}

/// What signing in with a password alone leads to, before any code is checked.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    /// No second factor set up, none required: signed in.
    SignedIn,
    /// A second factor is set up (or required and set up): a code must follow.
    NeedCode,
    /// Required but not set up, on site: a session that can only set it up.
    SetupOnly,
    /// Required but not set up, off site: refused (a password alone must not be enough to enrol
    /// a second factor from anywhere).
    Refused,
}

pub fn next(required: bool, set_up: bool, on_site: bool) -> Next {
    match (set_up, required, on_site) {
        (true, _, _) => Next::NeedCode,
        (false, false, _) => Next::SignedIn,
        (false, true, true) => Next::SetupOnly,
        (false, true, false) => Next::Refused,
    }
}

/// A fresh 160-bit secret (the RFC's recommendation).
pub fn new_secret() -> Zeroizing<Vec<u8>> {
    let mut s = Zeroizing::new(vec![0u8; 20]);
    OsRng.unwrap_err().fill_bytes(&mut s);
    s
}

fn totp(secret: &[u8], username: &str) -> Totp {
    Builder::new()
        .with_secret(secret)
        .with_issuer(Some("lessonlens"))
        .with_account_name(username.replace(':', "_"))
        .build()
        .expect("a 160-bit secret and 6 digits are valid")
}

/// The `otpauth://` address an authenticator app takes (also as the secret in base32, to type).
pub fn setup_details(secret: &[u8], username: &str) -> (String, String) {
    let t = totp(secret, username);
    (
        t.to_url().expect("account name is set"),
        t.secret().to_base32(),
    )
}

/// `text` as a QR code for the browser to draw on a canvas (so no image format is needed and
/// nothing inline for the CSP to allow): the side in modules, and '1' (dark) or '0' for each
/// module, row by row.
pub fn qr_modules(text: &str) -> (usize, String) {
    let code = qrcode::QrCode::new(text.as_bytes()).expect("an otpauth address fits in a QR code");
    let modules = code
        .to_colors()
        .iter()
        .map(|c| if *c == qrcode::Color::Dark { '1' } else { '0' })
        .collect();
    (code.width(), modules)
}

#[derive(Debug, PartialEq, Eq)]
pub enum Check {
    /// Good: the time step it was for, to record so it is not accepted again.
    Accepted(u64),
    Wrong,
    /// Right, but a code for this step (or a later one) was used already.
    Reused,
}

/// Checks `code` against `stored` at `now` (Unix seconds).
pub fn check(stored: &TotpSecret, username: &str, code: &str, now: u64) -> Check {
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    match totp(&stored.secret, username).check(&code, now) {
        None => Check::Wrong,
        Some(step) if stored.last_step.is_some_and(|last| step <= last) => Check::Reused,
        Some(step) => Check::Accepted(step),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_qr_code_is_a_whole_symbol_with_its_finder_patterns() {
        let (url, _) = setup_details(&new_secret(), "jsmith");
        let (side, modules) = qr_modules(&url);
        assert_eq!(
            (side - 17) % 4,
            0,
            "a QR symbol is 17 + 4 x version modules wide"
        );
        assert_eq!(modules.len(), side * side);
        let row = |r: usize| &modules[r * side..(r + 1) * side];
        // The finder patterns in three corners: a dark ring, a light ring, a dark 3x3 centre.
        for (r, pattern) in [
            (0, "1111111"),
            (1, "1000001"),
            (2, "1011101"),
            (6, "1111111"),
        ] {
            assert_eq!(&row(r)[..7], pattern, "top-left, row {r}");
            assert_eq!(&row(r)[side - 7..], pattern, "top-right, row {r}");
            assert_eq!(&row(side - 7 + r)[..7], pattern, "bottom-left, row {r}");
        }
        assert_ne!(qr_modules("otpauth://other").1, modules);
    }

    fn stored(last_step: Option<u64>) -> TotpSecret {
        TotpSecret {
            secret: Zeroizing::new(b"12345678901234567890".to_vec()),
            confirmed: true,
            last_step,
        }
    }

    #[test]
    fn rfc_6238_codes_are_accepted_once_within_a_step_of_drift() {
        // RFC 6238 appendix B: SHA-1 at T = 59 s gives 94287082 (8 digits); 6 digits: 287082.
        let s = stored(None);
        assert_eq!(check(&s, "a", "287082", 59), Check::Accepted(1));
        assert_eq!(check(&s, "a", "287 082", 59 + 30), Check::Accepted(1));
        assert_eq!(check(&s, "a", "287082", 59 + 60), Check::Wrong);
        assert_eq!(check(&s, "a", "000000", 59), Check::Wrong);
        assert_eq!(check(&stored(Some(1)), "a", "287082", 59), Check::Reused);
        assert_eq!(
            check(&stored(Some(0)), "a", "287082", 59),
            Check::Accepted(1)
        );
    }

    #[test]
    fn the_policy_decides_what_a_password_alone_leads_to() {
        let p = Policy {
            admins: true,
            off_site: true,
            on_site_networks: vec!["10.0.0.0/8".parse().unwrap()],
        };
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(p.on_site(ip("10.1.2.3")) && !p.on_site(ip("192.0.2.1")));
        assert_eq!(next(true, false, true), Next::SetupOnly);
        assert_eq!(next(true, false, false), Next::Refused);
        assert_eq!(next(false, true, false), Next::NeedCode);
        assert_eq!(next(false, false, false), Next::SignedIn);
        let (url, base32) = setup_details(&new_secret(), "jo:smith");
        assert!(
            url.starts_with("otpauth://totp/lessonlens:jo_smith?"),
            "{url}"
        );
        assert_eq!(base32.len(), 32);
    }
}
