//! IPv4 networks as tenants' Networks use them.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use ipnet::Ipv4Net;

/// An IPv4 network in CIDR notation with no host bits set (`10.244.0.0/16`, not
/// `10.244.0.1/16`), between /8 and /30 so that it has room for a gateway and pods.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Ipv4Cidr(Ipv4Net);

/// Shortest prefix a tenant network may have.
pub const MIN_PREFIX: u8 = 8;
/// Longest prefix a tenant network may have (a /30 has two host addresses).
pub const MAX_PREFIX: u8 = 30;

impl Ipv4Cidr {
    /// `addr/prefix`, refusing host bits and prefixes outside /8../30.
    pub fn new(addr: Ipv4Addr, prefix: u8) -> Result<Ipv4Cidr, String> {
        let net =
            Ipv4Net::new(addr, prefix).map_err(|_| format!("/{prefix} is not a prefix length"))?;
        if !(MIN_PREFIX..=MAX_PREFIX).contains(&prefix) {
            return Err(format!(
                "prefix /{prefix} is outside /{MIN_PREFIX}../{MAX_PREFIX}"
            ));
        }
        if net.network() != addr {
            return Err(format!(
                "{addr}/{prefix} has host bits set; did you mean {}/{prefix}?",
                net.network()
            ));
        }
        Ok(Ipv4Cidr(net))
    }

    /// The network address.
    pub fn network(&self) -> Ipv4Addr {
        self.0.network()
    }

    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.0.prefix_len()
    }

    /// Whether `addr` is inside the network (network and broadcast addresses included).
    pub fn contains(&self, addr: Ipv4Addr) -> bool {
        self.0.contains(&addr)
    }

    /// The `n`th address after the network address, if it is a host address.
    pub fn nth_host(&self, n: u32) -> Option<Ipv4Addr> {
        let addr = u32::from(self.network()).checked_add(n)?;
        let addr = Ipv4Addr::from(addr);
        (n > 0 && self.contains(addr) && addr != self.0.broadcast()).then_some(addr)
    }

    /// Checks that `gateway` can be this network's gateway: a host address inside it.
    pub fn check_gateway(&self, gateway: Ipv4Addr) -> Result<(), String> {
        if !self.contains(gateway) {
            return Err(format!("{gateway} is not inside {self}"));
        }
        if gateway == self.network() || gateway == self.0.broadcast() {
            return Err(format!(
                "{gateway} is the network or broadcast address of {self}"
            ));
        }
        Ok(())
    }
}

impl FromStr for Ipv4Cidr {
    type Err = String;

    fn from_str(text: &str) -> Result<Ipv4Cidr, String> {
        let (addr, prefix) = text
            .split_once('/')
            .ok_or_else(|| "not in CIDR notation (address/prefix)".to_owned())?;
        let addr: Ipv4Addr = addr
            .parse()
            .map_err(|_| format!("`{addr}` is not an IPv4 address"))?;
        let prefix: u8 = prefix
            .parse()
            .map_err(|_| format!("`{prefix}` is not a prefix length"))?;
        Ipv4Cidr::new(addr, prefix)
    }
}

impl fmt::Display for Ipv4Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network(), self.prefix())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parsing_accepts_networks_and_explains_refusals() {
        let ok = [
            "10.244.0.0/16",
            "192.168.1.0/24",
            "10.0.0.0/8",
            "10.1.2.4/30",
        ];
        for text in ok {
            assert_eq!(text.parse::<Ipv4Cidr>().unwrap().to_string(), text);
        }
        let bad = [
            ("10.244.0.1/16", "host bits set; did you mean 10.244.0.0/16"),
            ("10.244.0.0", "CIDR notation"),
            ("10.244.0.0/33", "prefix"),
            ("10.0.0.0/7", "outside /8../30"),
            ("10.0.0.0/31", "outside /8../30"),
            ("fd00::/64", "not an IPv4 address"),
            ("10.244.0.0/x", "not a prefix length"),
        ];
        for (text, want) in bad {
            let err = text.parse::<Ipv4Cidr>().unwrap_err();
            assert!(err.contains(want), "{text}: {err}");
        }
    }

    #[test]
    fn gateways_must_be_host_addresses_inside() {
        let cidr: Ipv4Cidr = "10.244.0.0/16".parse().unwrap();
        assert!(cidr.check_gateway(Ipv4Addr::new(10, 244, 0, 1)).is_ok());
        assert!(cidr.check_gateway(Ipv4Addr::new(10, 244, 255, 254)).is_ok());
        assert!(cidr.check_gateway(Ipv4Addr::new(10, 244, 0, 0)).is_err());
        assert!(
            cidr.check_gateway(Ipv4Addr::new(10, 244, 255, 255))
                .is_err()
        );
        assert!(cidr.check_gateway(Ipv4Addr::new(10, 245, 0, 1)).is_err());
        assert_eq!(cidr.nth_host(1), Some(Ipv4Addr::new(10, 244, 0, 1)));
        assert_eq!(cidr.nth_host(0), None);
        assert_eq!(cidr.nth_host(65535), None);
    }

    proptest! {
        #[test]
        fn display_and_parse_round_trip(addr: u32, prefix in MIN_PREFIX..=MAX_PREFIX) {
            let net = Ipv4Net::new(Ipv4Addr::from(addr), prefix).unwrap().trunc();
            let cidr = Ipv4Cidr::new(net.network(), prefix).unwrap();
            prop_assert_eq!(cidr.to_string().parse::<Ipv4Cidr>().unwrap(), cidr);
            let first = cidr.nth_host(1).unwrap();
            prop_assert!(cidr.check_gateway(first).is_ok());
        }
    }
}
