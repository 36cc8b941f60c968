//! Address ranges: the trusted proxies whose `x-forwarded-for` is believed,
//! and the prefix IPv6 clients are throttled by. Pure, no I/O.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// An address range in CIDR notation (`10.0.0.0/8`, `::1/128`); a bare
/// address is a range of one. IPv4-mapped IPv6 addresses are matched as the
/// IPv4 address they carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Parses `ADDRESS[/PREFIX]`. Bits past the prefix must be zero
    /// (`10.0.0.1/8` is refused: it is more likely a typo than a range).
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let network: IpAddr = address
            .parse()
            .map_err(|_| format!("{text:?} is not an IP address or CIDR range"))?;
        let network = network.to_canonical();
        let max = max_prefix(network);
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{text:?}: the prefix length must be 0 to {max}"))?,
        };
        if truncate(network, prefix) != network {
            return Err(format!(
                "{text:?} has bits set past /{prefix}; write the network address"
            ));
        }
        Ok(Self { network, prefix })
    }

    /// Whether `ip` is inside this range.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        ip.is_ipv4() == self.network.is_ipv4() && truncate(ip, self.prefix) == self.network
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// Parses a comma-separated list of ranges; an empty text is an empty list.
pub fn parse_cidr_list(text: &str) -> Result<Vec<Cidr>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .map(Cidr::parse)
        .collect()
}

/// The proxies whose `x-forwarded-for` is believed (`--trusted-proxies`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedProxies(Vec<Cidr>);

impl TrustedProxies {
    /// Proxies in `ranges`; none trusts no proxy at all.
    pub fn new(ranges: Vec<Cidr>) -> Self {
        Self(ranges)
    }

    /// Whether `peer` is one of them.
    pub fn contains(&self, peer: IpAddr) -> bool {
        self.0.iter().any(|range| range.contains(peer))
    }

    /// The client's address: the last `x-forwarded-for` hop (`last_hop`)
    /// when `peer` is a trusted proxy, else the peer itself. The last hop is
    /// the one the proxy appended from its own connection; the hops before
    /// it are whatever the client wrote, so trusting them would let a client
    /// pick the address it is throttled and audited under. A forwarded
    /// address from any other peer is ignored altogether.
    pub fn client(&self, peer: Option<IpAddr>, last_hop: Option<IpAddr>) -> Option<IpAddr> {
        match peer.map(|ip| ip.to_canonical()) {
            Some(ip) if self.contains(ip) => last_hop.map(|ip| ip.to_canonical()).or(Some(ip)),
            other => other,
        }
    }
}

/// `ip` with every bit past the first `prefix` cleared (IPv4-mapped IPv6
/// addresses first become IPv4).
pub fn truncate(ip: IpAddr, prefix: u8) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V4(v4) => {
            let bits = u32::from(v4) & mask32(prefix);
            IpAddr::V4(Ipv4Addr::from(bits))
        }
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & mask128(prefix);
            IpAddr::V6(Ipv6Addr::from(bits))
        }
    }
}

fn max_prefix(ip: IpAddr) -> u8 {
    if ip.is_ipv4() { 32 } else { 128 }
}

fn mask32(prefix: u8) -> u32 {
    u32::MAX
        .checked_shl(32 - u32::from(prefix.min(32)))
        .unwrap_or(0)
}

fn mask128(prefix: u8) -> u128 {
    u128::MAX
        .checked_shl(128 - u32::from(prefix.min(128)))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn parses_ranges_and_single_addresses() {
        assert_eq!(
            Cidr::parse("127.0.0.0/8").unwrap().to_string(),
            "127.0.0.0/8"
        );
        assert_eq!(Cidr::parse(" ::1 ").unwrap().to_string(), "::1/128");
        assert_eq!(Cidr::parse("10.1.2.3").unwrap().to_string(), "10.1.2.3/32");
        assert_eq!(Cidr::parse("0.0.0.0/0").unwrap().to_string(), "0.0.0.0/0");
        assert_eq!(
            Cidr::parse("2001:db8::/32").unwrap().to_string(),
            "2001:db8::/32"
        );
        for bad in [
            "",
            "10.0.0.0/33",
            "::/129",
            "10.0.0.1/8",
            "10.0.0.0/-1",
            "10.0.0.0/",
            "localhost",
            "10.0.0.0/8/8",
        ] {
            assert!(Cidr::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn containment() {
        let loopback = Cidr::parse("127.0.0.0/8").unwrap();
        assert!(loopback.contains(ip("127.0.0.1")));
        assert!(loopback.contains(ip("127.255.0.6")));
        assert!(loopback.contains(ip("::ffff:127.0.0.1")), "IPv4-mapped");
        assert!(!loopback.contains(ip("128.0.0.1")));
        assert!(!loopback.contains(ip("::1")));
        let v6 = Cidr::parse("2001:db8:1::/48").unwrap();
        assert!(v6.contains(ip("2001:db8:1:ffff::1")));
        assert!(!v6.contains(ip("2001:db8:2::1")));
        assert!(!v6.contains(ip("10.0.0.1")));
        assert!(Cidr::parse("0.0.0.0/0").unwrap().contains(ip("8.8.8.8")));
        assert!(!Cidr::parse("0.0.0.0/0").unwrap().contains(ip("::2")));
        assert!(Cidr::parse("::/0").unwrap().contains(ip("2001:db8::1")));
    }

    #[test]
    fn lists() {
        let list = parse_cidr_list("127.0.0.0/8, ::1/128,,").unwrap();
        assert_eq!(list.len(), 2);
        assert!(parse_cidr_list("").unwrap().is_empty());
        assert!(parse_cidr_list("10.0.0.0/8, nope").is_err());
    }

    #[test]
    fn truncation() {
        assert_eq!(
            truncate(ip("2001:db8:1:2:3:4:5:6"), 64),
            ip("2001:db8:1:2::")
        );
        assert_eq!(truncate(ip("2001:db8::1"), 128), ip("2001:db8::1"));
        assert_eq!(truncate(ip("2001:db8::1"), 0), ip("::"));
        assert_eq!(truncate(ip("10.1.2.3"), 32), ip("10.1.2.3"));
        assert_eq!(truncate(ip("10.1.2.3"), 24), ip("10.1.2.0"));
        // An IPv4-mapped address is IPv4: a prefix past 32 keeps it whole.
        assert_eq!(truncate(ip("::ffff:10.1.2.3"), 64), ip("10.1.2.3"));
    }
}
