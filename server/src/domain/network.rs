//! Network rules shared by the config's defaults and the sign-in policy: which addresses count as
//! the school's own. Pure: no I/O.

/// Loopback and the private ranges a school network uses.
pub fn private_networks() -> Vec<ipnet::IpNet> {
    [
        "127.0.0.0/8",
        "::1/128",
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "fc00::/7",
    ]
    .iter()
    .map(|n| n.parse().expect("valid default network"))
    .collect()
}
