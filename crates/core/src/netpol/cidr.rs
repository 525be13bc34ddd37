//! An `ipBlock` as Neutron can hold it: security group rules only allow, so `cidr` with
//! `except` becomes the CIDRs that cover exactly `cidr` minus the excepted ones.

use ipnet::Ipv4Net;

/// The smallest set of CIDRs covering `cidr` and none of `except` (excepted blocks outside
/// `cidr` are ignored; overlapping ones are fine). Sorted.
pub fn minus(cidr: Ipv4Net, except: &[Ipv4Net]) -> Vec<Ipv4Net> {
    let cidr = cidr.trunc();
    let mut out = Vec::new();
    split(cidr, except, &mut out);
    out.sort();
    out
}

fn split(net: Ipv4Net, except: &[Ipv4Net], out: &mut Vec<Ipv4Net>) {
    if except.iter().any(|e| e.contains(&net)) {
        return;
    }
    if !except.iter().any(|e| net.contains(e)) {
        out.push(net);
        return;
    }
    // An excepted block lies strictly inside: each half separately.
    if let Ok(halves) = net.subnets(net.prefix_len() + 1) {
        for half in halves {
            split(half, except, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(list: &[&str]) -> Vec<Ipv4Net> {
        list.iter().map(|n| n.parse().expect("a CIDR")).collect()
    }

    #[test]
    fn a_block_minus_its_exceptions_is_covered_exactly() {
        let cases: [(&str, &[&str], &[&str]); 6] = [
            ("10.0.0.0/24", &[], &["10.0.0.0/24"]),
            ("10.0.0.0/24", &["10.0.0.0/25"], &["10.0.0.128/25"]),
            (
                "10.0.0.0/24",
                &["10.0.0.5/32"],
                &[
                    "10.0.0.0/30",
                    "10.0.0.4/32",
                    "10.0.0.6/31",
                    "10.0.0.8/29",
                    "10.0.0.16/28",
                    "10.0.0.32/27",
                    "10.0.0.64/26",
                    "10.0.0.128/25",
                ],
            ),
            ("10.0.0.0/24", &["10.0.0.0/16"], &[]),
            ("10.0.0.0/24", &["192.168.0.0/16"], &["10.0.0.0/24"]),
            (
                "10.0.0.7/24",
                &["10.0.0.0/25", "10.0.0.128/26"],
                &["10.0.0.192/26"],
            ),
        ];
        for (cidr, except, want) in cases {
            assert_eq!(
                minus(cidr.parse().unwrap(), &nets(except)),
                nets(want),
                "{cidr} except {except:?}"
            );
        }
    }

    proptest::proptest! {
        #[test]
        fn every_address_is_covered_iff_it_is_in_the_block_and_not_excepted(
            a in 0u32..=u32::MAX, len in 16u8..=28, e in 0u32..=u32::MAX, elen in 20u8..=32,
            probe in 0u32..4096,
        ) {
            let cidr = Ipv4Net::new(a.into(), len).unwrap().trunc();
            let except = Ipv4Net::new((u32::from(cidr.network()) | (e & !u32::from(cidr.netmask()))).into(), elen).unwrap().trunc();
            let covered = minus(cidr, &[except]);
            let ip: std::net::Ipv4Addr = (u32::from(cidr.network()).wrapping_add(probe % (1 << (32 - len)))).into();
            let want = cidr.contains(&ip) && !except.contains(&ip);
            proptest::prop_assert_eq!(covered.iter().any(|n| n.contains(&ip)), want);
        }
    }
}
