//! The cluster domain (`cluster.local`) as a zone: its origin, the names in it, and the SOA and
//! NS records resolvers expect at its apex.

use std::net::Ipv4Addr;

use hickory_proto::rr::rdata::{NS, SOA};
use hickory_proto::rr::{Name, RData, Record};

/// `dns-version.<zone>`'s answer: the version of the Kubernetes DNS specification served.
pub const SCHEMA_VERSION: &str = "1.1.0";

/// The cluster domain could not be a zone.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("`{domain}` is not a DNS name: {why}")]
pub struct ZoneError {
    /// The domain given.
    pub domain: String,
    /// Why.
    pub why: String,
}

/// The cluster domain and how it is answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Zone {
    origin: Name,
    /// Its labels, lowercase, leftmost first.
    labels: Vec<Vec<u8>>,
    /// The cluster DNS address (`ns.dns.<zone>`).
    pub dns_address: Ipv4Addr,
    /// TTL of every record of the zone, and of its negative answers.
    pub ttl: u32,
}

impl Zone {
    /// The zone of `domain` (`cluster.local`), answered at `dns_address` with records of `ttl`
    /// seconds.
    pub fn new(domain: &str, dns_address: Ipv4Addr, ttl: u32) -> Result<Zone, ZoneError> {
        let error = |why: String| ZoneError {
            domain: domain.to_owned(),
            why,
        };
        let mut origin = Name::from_ascii(domain)
            .map_err(|e| error(e.to_string()))?
            .to_lowercase();
        origin.set_fqdn(true);
        if origin.is_root() {
            return Err(error("the root cannot be the cluster domain".into()));
        }
        let labels = origin.iter().map(<[u8]>::to_vec).collect();
        Ok(Zone {
            origin,
            labels,
            dns_address,
            ttl,
        })
    }

    /// The zone's apex, fully qualified, lowercase.
    pub fn origin(&self) -> &Name {
        &self.origin
    }

    /// The labels of `name` below the apex, nearest to it first, lowercase
    /// (`nginx.test.svc.cluster.local.` → `svc`, `test`, `nginx`); `None` when `name` is not in
    /// the zone. A label that is not UTF-8 is kept with replacement characters: it cannot match
    /// any Kubernetes name.
    pub fn relative(&self, name: &Name) -> Option<Vec<String>> {
        let labels: Vec<&[u8]> = name.iter().collect();
        let below = labels.len().checked_sub(self.labels.len())?;
        let in_zone = labels[below..]
            .iter()
            .zip(&self.labels)
            .all(|(a, b)| a.eq_ignore_ascii_case(b));
        if !in_zone {
            return None;
        }
        Some(
            labels[..below]
                .iter()
                .rev()
                .map(|l| String::from_utf8_lossy(&l.to_ascii_lowercase()).into_owned())
                .collect(),
        )
    }

    /// `labels` (leftmost first) under the apex: `["nginx", "test", "svc"]` →
    /// `nginx.test.svc.cluster.local.`; `None` when they do not make a name.
    pub fn name(&self, labels: &[&str]) -> Option<Name> {
        let mut name = Name::from_labels(labels.iter().map(|l| l.as_bytes())).ok()?;
        name.set_fqdn(false);
        name.append_name(&self.origin).ok()
    }

    /// `ns.dns.<zone>`: the zone's name server, whose address is the cluster DNS address.
    pub fn ns_name(&self) -> Name {
        self.name(&["ns", "dns"])
            .expect("ns.dns. under a valid zone is a valid name")
    }

    /// The zone's SOA record, with `serial`.
    pub fn soa(&self, serial: u32) -> Record {
        let rname = self
            .name(&["hostmaster"])
            .expect("hostmaster. under a valid zone is a valid name");
        let soa = SOA::new(
            self.ns_name(),
            rname,
            serial,
            7200,
            1800,
            86400,
            // The negative caching TTL (RFC 2308): as short as the records'.
            self.ttl,
        );
        Record::from_rdata(self.origin.clone(), self.ttl, RData::SOA(soa))
    }

    /// The zone's NS record.
    pub fn ns(&self) -> Record {
        Record::from_rdata(self.origin.clone(), self.ttl, RData::NS(NS(self.ns_name())))
    }
}
