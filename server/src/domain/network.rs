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

/// Whom a failed guess is counted against: the address, or for IPv6 its /64 network, which one
/// machine can fill with as many addresses as it likes.
pub fn guess_source(ip: std::net::IpAddr) -> std::net::IpAddr {
    match ip {
        std::net::IpAddr::V6(v6) => {
            let mut octets = v6.octets();
            octets[8..].fill(0);
            std::net::IpAddr::V6(octets.into())
        }
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_ipv6_network_counts_as_one_source() {
        let a = super::guess_source("2001:db8:1:2::17".parse().unwrap());
        let b = super::guess_source("2001:db8:1:2:ffff::9".parse().unwrap());
        let other = super::guess_source("2001:db8:1:3::17".parse().unwrap());
        assert_eq!(a, b);
        assert_ne!(a, other);
        let v4: std::net::IpAddr = "192.168.1.20".parse().unwrap();
        assert_eq!(super::guess_source(v4), v4);
    }
}
