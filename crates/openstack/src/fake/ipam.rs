//! Neutron's address management, as far as the fake needs it: CIDR parsing, default gateways
//! and allocation pools, and the first free address of a subnet.
//!
//! Addresses are handled as `u128` so that IPv4 and IPv6 share one code path.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::network::AllocationPool;

/// A parsed CIDR.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Cidr {
    base: u128,
    prefix: u8,
    v6: bool,
}

/// Why a CIDR was refused.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum CidrError {
    /// Not `address/prefix`.
    Malformed,
    /// Host bits are set; the network address is the recommended spelling.
    HostBits(String),
}

impl Cidr {
    /// Parses `a.b.c.d/len` or `x::/len`; host bits must be zero (Neutron refuses
    /// `10.0.0.1/24`, recommending `10.0.0.0/24`).
    pub(super) fn parse(text: &str) -> Result<Cidr, CidrError> {
        let (addr, prefix) = text.split_once('/').ok_or(CidrError::Malformed)?;
        let addr: IpAddr = addr.parse().map_err(|_| CidrError::Malformed)?;
        let prefix: u8 = prefix.parse().map_err(|_| CidrError::Malformed)?;
        let v6 = addr.is_ipv6();
        if prefix > if v6 { 128 } else { 32 } {
            return Err(CidrError::Malformed);
        }
        let value = to_u128(addr);
        let cidr = Cidr {
            base: value,
            prefix,
            v6,
        };
        let base = value & cidr.mask();
        if base != value {
            let fixed = Cidr { base, ..cidr };
            return Err(CidrError::HostBits(fixed.to_string()));
        }
        Ok(cidr)
    }

    /// 4 or 6.
    pub(super) fn ip_version(&self) -> u8 {
        if self.v6 { 6 } else { 4 }
    }

    fn bits(&self) -> u32 {
        if self.v6 { 128 } else { 32 }
    }

    fn mask(&self) -> u128 {
        let host = self.bits() - u32::from(self.prefix);
        let all = if self.v6 {
            u128::MAX
        } else {
            u128::from(u32::MAX)
        };
        if host >= 128 {
            0
        } else {
            all & !((1u128 << host) - 1)
        }
    }

    fn last(&self) -> u128 {
        let all = if self.v6 {
            u128::MAX
        } else {
            u128::from(u32::MAX)
        };
        self.base | (all & !self.mask())
    }

    /// Whether `addr` is in the CIDR.
    pub(super) fn contains(&self, addr: IpAddr) -> bool {
        addr.is_ipv6() == self.v6 && to_u128(addr) & self.mask() == self.base
    }

    /// Whether two CIDRs share an address.
    pub(super) fn overlaps(&self, other: &Cidr) -> bool {
        self.v6 == other.v6 && self.base <= other.last() && other.base <= self.last()
    }

    /// The first host address, Neutron's default gateway.
    pub(super) fn default_gateway(&self) -> IpAddr {
        self.ip(self.base.saturating_add(1))
    }

    /// The usable host addresses: without the network address, and for IPv4 without the
    /// broadcast address.
    fn hosts(&self) -> (u128, u128) {
        let last = if self.v6 {
            self.last()
        } else {
            self.last().saturating_sub(1)
        };
        (self.base.saturating_add(1), last)
    }

    /// Neutron's default allocation pools: the hosts minus the gateway.
    pub(super) fn default_pools(&self, gateway: Option<IpAddr>) -> Vec<AllocationPool> {
        let (first, last) = self.hosts();
        let mut ranges = Vec::new();
        match gateway.map(to_u128).filter(|g| (first..=last).contains(g)) {
            Some(g) => {
                if g > first {
                    ranges.push((first, g - 1));
                }
                if g < last {
                    ranges.push((g + 1, last));
                }
            }
            None => ranges.push((first, last)),
        }
        ranges
            .into_iter()
            .filter(|(a, b)| a <= b)
            .map(|(a, b)| AllocationPool {
                start: self.ip(a),
                end: self.ip(b),
            })
            .collect()
    }

    /// The first address of `pools` that is a host of the CIDR, not the gateway and not in
    /// `used`.
    pub(super) fn first_free(
        &self,
        pools: &[AllocationPool],
        gateway: Option<IpAddr>,
        used: &BTreeSet<IpAddr>,
    ) -> Option<IpAddr> {
        let (first, last) = self.hosts();
        let gateway = gateway.map(to_u128);
        pools.iter().find_map(|pool| {
            let start = to_u128(pool.start).max(first);
            let end = to_u128(pool.end).min(last);
            (start..=end)
                .filter(|a| Some(*a) != gateway)
                .map(|a| self.ip(a))
                .find(|ip| !used.contains(ip))
        })
    }

    fn ip(&self, value: u128) -> IpAddr {
        if self.v6 {
            IpAddr::V6(Ipv6Addr::from(value))
        } else {
            let v4 = u32::try_from(value).unwrap_or(u32::MAX);
            IpAddr::V4(Ipv4Addr::from(v4))
        }
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.ip(self.base), self.prefix)
    }
}

fn to_u128(addr: IpAddr) -> u128 {
    match addr {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn cidrs_parse_or_say_why_not() {
        let cases = [
            ("10.0.0.0/24", Ok(4)),
            ("fd00::/64", Ok(6)),
            ("0.0.0.0/0", Ok(4)),
            (
                "10.0.0.1/24",
                Err(CidrError::HostBits("10.0.0.0/24".into())),
            ),
            ("10.0.0.0", Err(CidrError::Malformed)),
            ("10.0.0.0/33", Err(CidrError::Malformed)),
            ("nonsense/8", Err(CidrError::Malformed)),
        ];
        for (text, want) in cases {
            assert_eq!(Cidr::parse(text).map(|c| c.ip_version()), want, "{text}");
        }
    }

    #[test]
    fn membership_and_overlap() {
        let a = Cidr::parse("10.0.0.0/24").unwrap();
        let b = Cidr::parse("10.0.0.128/25").unwrap();
        let c = Cidr::parse("10.0.1.0/24").unwrap();
        assert!(a.contains(ip("10.0.0.255")));
        assert!(!a.contains(ip("10.0.1.0")));
        assert!(!a.contains(ip("::1")));
        assert!(a.overlaps(&b) && b.overlaps(&a));
        assert!(!a.overlaps(&c));
        assert!(
            Cidr::parse("0.0.0.0/0")
                .unwrap()
                .contains(ip("192.168.1.1"))
        );
    }

    #[test]
    fn default_pools_leave_out_network_gateway_and_broadcast() {
        let cidr = Cidr::parse("10.0.0.0/24").unwrap();
        let pools = cidr.default_pools(Some(ip("10.0.0.1")));
        assert_eq!(
            pools,
            vec![AllocationPool {
                start: ip("10.0.0.2"),
                end: ip("10.0.0.254")
            }]
        );
        let split = cidr.default_pools(Some(ip("10.0.0.100")));
        assert_eq!(split.len(), 2);
        assert_eq!(split[0].end, ip("10.0.0.99"));
        assert_eq!(split[1].start, ip("10.0.0.101"));
        let none = cidr.default_pools(None);
        assert_eq!(none[0].start, ip("10.0.0.1"));
    }

    #[test]
    fn the_first_free_address_skips_used_ones_until_the_pool_is_exhausted() {
        let cidr = Cidr::parse("10.0.0.0/29").unwrap();
        let gateway = Some(ip("10.0.0.1"));
        let pools = cidr.default_pools(gateway);
        let mut used = BTreeSet::new();
        let mut got = Vec::new();
        while let Some(next) = cidr.first_free(&pools, gateway, &used) {
            used.insert(next);
            got.push(next.to_string());
        }
        assert_eq!(
            got,
            ["10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6"]
        );
        let v6 = Cidr::parse("fd00::/64").unwrap();
        let first = v6.first_free(&v6.default_pools(None), None, &BTreeSet::new());
        assert_eq!(first, Some(ip("fd00::1")));
    }
}
