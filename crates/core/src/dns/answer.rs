//! The answer to one question, from the cluster's records as one view sees them: the
//! Kubernetes DNS specification (kubernetes/dns `docs/specification.md`, schema 1.1.0), and the
//! DNS rules around it (RFC 1034 names and empty non-terminals, RFC 2308 negative answers).
//!
//! Names in the cluster domain (`<zone>`):
//!
//! | name | records |
//! |---|---|
//! | `<zone>` | SOA, NS (`ns.dns.<zone>`, whose A is the cluster DNS address) |
//! | `dns-version.<zone>` | TXT `1.1.0` |
//! | `<service>.<ns>.svc.<zone>` | A/AAAA of its cluster IPs; of a headless Service, of each ready endpoint (no ready endpoint: the name does not exist); CNAME of an ExternalName Service, followed |
//! | `<hostname>.<service>.<ns>.svc.<zone>` | a headless Service's ready endpoints of that _hostname_ (`hostname`, or the address with dashes): `hostname.subdomain` of pods |
//! | `_<port>._<proto>.<service>.<ns>.svc.<zone>` | SRV of a named port: the Service's name and port, or each ready endpoint's name and port for a headless one; their addresses as additional records |
//! | `<a-b-c-d>.<ns>.pod.<zone>` | A (AAAA for dashed IPv6) of a pod of `<ns>` with that address |
//! | `<ns>.svc.<zone>`, `<ns>.pod.<zone>`, `svc.<zone>`, `pod.<zone>`, `dns.<zone>` | none (they exist: NODATA) |
//!
//! `<d>.<c>.<b>.<a>.in-addr.arpa` (and `ip6.arpa`) answer PTR for a cluster IP (the Service),
//! else for a headless Service's ready endpoint (its `<hostname>.<service>…`), else for a pod
//! (`<a-b-c-d>.<ns>.pod.<zone>`). Any other name is forwarded upstream, with the CNAMEs that led
//! to it.
//!
//! # Guarantees
//! - A name of a namespace the view does not see (another tenant's) gets exactly the answer of
//!   a name that does not exist: NXDOMAIN with the same SOA, in the zone; forwarded, like an
//!   unknown address, in the reverse zones. Nothing of it is in any section of any answer.
//! - A name that exists without records of the type asked is NODATA (NOERROR, no answer,
//!   SOA); a name that does not exist, with nothing below it, is NXDOMAIN (RFC 8020): a
//!   headless Service without ready endpoints has no names at all.
//! - ExternalName CNAMEs are followed in the same view (at most 8); a loop is SERVFAIL.
//! - Lookups ignore case; the answers' owner is the question's name as asked.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use hickory_proto::op::{Query, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, CNAME, PTR, SRV, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};

use super::index::{Index, Owner};
use super::records::{ServiceKind, dashed, undashed};
use super::view::View;
use super::zone::{SCHEMA_VERSION, Zone};

/// How many CNAMEs (ExternalName Services) a chain may have.
pub const MAX_ALIASES: usize = 8;

/// How a question is answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resolution {
    /// From the cluster's records.
    Answer(Answer),
    /// Not the cluster's: ask the upstreams `question`, and put `prefix` (the CNAMEs of
    /// ExternalName Services that led there) before their answer.
    Forward {
        /// What to ask.
        question: Query,
        /// Records to put first in the answer section.
        prefix: Vec<Record>,
    },
}

/// An answer from the cluster's records.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Answer {
    /// NOERROR, NXDOMAIN, or SERVFAIL (a CNAME loop).
    pub rcode: ResponseCode,
    /// Whether the zone's data answers (the AA bit).
    pub authoritative: bool,
    /// The answer section.
    pub answers: Vec<Record>,
    /// The authority section: the SOA of a negative answer.
    pub authorities: Vec<Record>,
    /// The additional section: addresses of SRV targets and of the name server.
    pub additionals: Vec<Record>,
}

/// Answers `query` from `index` as `view` sees it.
pub fn resolve(index: &Index, view: &View, zone: &Zone, query: &Query) -> Resolution {
    Lookup { index, view, zone }.resolve(query.name(), query.query_type(), Vec::new())
}

/// The SOA serial `view` gets: the time of the last change of what it sees (never of what
/// other views see: that would tell a tenant when another one changed something).
pub fn serial(index: &Index, view: &View) -> u32 {
    let namespaces = view
        .namespaces()
        .filter_map(|ns| index.namespace_changed(ns));
    let exposed = view
        .exposed()
        .filter_map(|(ns, name)| index.service_changed(ns, name));
    namespaces.chain(exposed).fold(view.since, u32::max)
}

/// What one name has, for the type asked.
enum Node {
    /// The name does not exist.
    Missing,
    /// The name exists; these are its records of the type asked (none: NODATA).
    Records {
        answers: Vec<Record>,
        additionals: Vec<Record>,
    },
    /// The name is an alias of this one.
    Alias(Name),
}

impl Node {
    fn empty() -> Node {
        Node::Records {
            answers: Vec::new(),
            additionals: Vec::new(),
        }
    }

    fn of(answers: Vec<Record>) -> Node {
        Node::Records {
            answers,
            additionals: Vec::new(),
        }
    }
}

struct Lookup<'a> {
    index: &'a Index,
    view: &'a View,
    zone: &'a Zone,
}

/// Whether a question of type `asked` gets records of type `have`.
fn want(asked: RecordType, have: RecordType) -> bool {
    asked == have || asked == RecordType::ANY
}

impl Lookup<'_> {
    fn resolve(&self, qname: &Name, qtype: RecordType, mut prefix: Vec<Record>) -> Resolution {
        let Some(relative) = self.zone.relative(qname) else {
            if let Some(ip) = reverse_address(qname) {
                let targets = self.ptr_targets(ip);
                if !targets.is_empty() {
                    if want(qtype, RecordType::PTR) {
                        prefix.extend(targets.into_iter().map(|t| {
                            Record::from_rdata(qname.clone(), self.zone.ttl, RData::PTR(PTR(t)))
                        }));
                    }
                    return Resolution::Answer(Answer {
                        authoritative: true,
                        answers: prefix,
                        ..Answer::default()
                    });
                }
            }
            return Resolution::Forward {
                question: Query::query(qname.clone(), qtype),
                prefix,
            };
        };
        let labels: Vec<&str> = relative.iter().map(String::as_str).collect();
        match self.node(qname, &labels, qtype) {
            Node::Missing => self.negative(ResponseCode::NXDomain, prefix),
            Node::Records { answers, .. } if answers.is_empty() => {
                self.negative(ResponseCode::NoError, prefix)
            }
            Node::Records {
                answers,
                additionals,
            } => {
                prefix.extend(answers);
                Resolution::Answer(Answer {
                    rcode: ResponseCode::NoError,
                    authoritative: true,
                    answers: prefix,
                    authorities: Vec::new(),
                    additionals,
                })
            }
            Node::Alias(target) => {
                prefix.push(Record::from_rdata(
                    qname.clone(),
                    self.zone.ttl,
                    RData::CNAME(CNAME(target.clone())),
                ));
                if want(qtype, RecordType::CNAME) {
                    return Resolution::Answer(Answer {
                        authoritative: true,
                        answers: prefix,
                        ..Answer::default()
                    });
                }
                if prefix.len() > MAX_ALIASES {
                    return Resolution::Answer(Answer {
                        rcode: ResponseCode::ServFail,
                        ..Answer::default()
                    });
                }
                self.resolve(&target, qtype, prefix)
            }
        }
    }

    /// NXDOMAIN or NODATA, with the zone's SOA for negative caching.
    fn negative(&self, rcode: ResponseCode, answers: Vec<Record>) -> Resolution {
        Resolution::Answer(Answer {
            rcode,
            authoritative: true,
            answers,
            authorities: vec![self.zone.soa(serial(self.index, self.view))],
            additionals: Vec::new(),
        })
    }

    /// The name `qname`, whose labels below the zone are `labels` (nearest first).
    fn node(&self, qname: &Name, labels: &[&str], qtype: RecordType) -> Node {
        match *labels {
            [] => self.apex(qtype),
            ["dns-version"] => {
                let mut answers = Vec::new();
                if want(qtype, RecordType::TXT) {
                    answers.push(Record::from_rdata(
                        qname.clone(),
                        self.zone.ttl,
                        RData::TXT(TXT::new(vec![SCHEMA_VERSION.to_owned()])),
                    ));
                }
                Node::of(answers)
            }
            ["dns"] | ["svc"] | ["pod"] => Node::empty(),
            ["dns", "ns"] => {
                Node::of(self.addresses(qname, [IpAddr::V4(self.zone.dns_address)], qtype))
            }
            ["svc", ns] => {
                let seen = self.view.sees_namespace(ns)
                    || self
                        .view
                        .exposed_in(ns)
                        .any(|name| self.service_exists(ns, name));
                if seen { Node::empty() } else { Node::Missing }
            }
            ["svc", ns, service] => self.service(qname, ns, service, qtype),
            ["svc", ns, service, label] => match label.strip_prefix('_') {
                Some(protocol) => {
                    if self.srv_targets(ns, service, protocol, None).is_empty() {
                        Node::Missing
                    } else {
                        Node::empty()
                    }
                }
                None => self.endpoint(qname, ns, service, label, qtype),
            },
            ["svc", ns, service, protocol, port] => {
                match (protocol.strip_prefix('_'), port.strip_prefix('_')) {
                    (Some(protocol), Some(port)) => {
                        self.srv(qname, ns, service, protocol, port, qtype)
                    }
                    _ => Node::Missing,
                }
            }
            ["pod", ns] => {
                if self.view.sees_namespace(ns) {
                    Node::empty()
                } else {
                    Node::Missing
                }
            }
            ["pod", ns, address] => match undashed(address) {
                Some(ip) if self.view.sees_namespace(ns) && self.index.has_pod_ip(ns, ip) => {
                    Node::of(self.addresses(qname, [ip], qtype))
                }
                _ => Node::Missing,
            },
            _ => Node::Missing,
        }
    }

    fn apex(&self, qtype: RecordType) -> Node {
        let mut answers = Vec::new();
        let mut additionals = Vec::new();
        if want(qtype, RecordType::SOA) {
            answers.push(self.zone.soa(serial(self.index, self.view)));
        }
        if want(qtype, RecordType::NS) {
            answers.push(self.zone.ns());
            additionals.extend(self.addresses(
                &self.zone.ns_name(),
                [IpAddr::V4(self.zone.dns_address)],
                RecordType::ANY,
            ));
        }
        Node::Records {
            answers,
            additionals,
        }
    }

    /// Whether Service `ns/name` has names in this view.
    fn service_exists(&self, ns: &str, name: &str) -> bool {
        if !self.view.sees_service(ns, name) {
            return false;
        }
        match self.index.service(ns, name).map(|s| &s.kind) {
            None => false,
            Some(ServiceKind::Headless) => !self.index.endpoints(ns, name).is_empty(),
            Some(ServiceKind::ClusterIp(_) | ServiceKind::ExternalName(_)) => true,
        }
    }

    fn service(&self, qname: &Name, ns: &str, name: &str, qtype: RecordType) -> Node {
        if !self.service_exists(ns, name) {
            return Node::Missing;
        }
        match self.index.service(ns, name).map(|s| &s.kind) {
            Some(ServiceKind::ClusterIp(ips)) => {
                Node::of(self.addresses(qname, ips.iter().copied(), qtype))
            }
            Some(ServiceKind::Headless) => {
                let ips: Vec<IpAddr> = self
                    .index
                    .endpoints(ns, name)
                    .iter()
                    .map(|e| e.ip)
                    .collect();
                Node::of(self.addresses(qname, ips, qtype))
            }
            Some(ServiceKind::ExternalName(target)) => match Name::from_ascii(&**target) {
                Ok(mut target) => {
                    target.set_fqdn(true);
                    Node::Alias(target)
                }
                Err(_) => Node::empty(),
            },
            None => Node::Missing,
        }
    }

    /// `<hostname>.<service>.<ns>.svc.<zone>`: a headless Service's ready endpoints of that
    /// _hostname_.
    fn endpoint(
        &self,
        qname: &Name,
        ns: &str,
        service: &str,
        host: &str,
        qtype: RecordType,
    ) -> Node {
        if !self.view.sees_service(ns, service)
            || !matches!(
                self.index.service(ns, service).map(|s| &s.kind),
                Some(ServiceKind::Headless)
            )
        {
            return Node::Missing;
        }
        let ips: Vec<IpAddr> = self
            .index
            .endpoints(ns, service)
            .iter()
            .filter(|e| e.name() == host)
            .map(|e| e.ip)
            .collect();
        if ips.is_empty() {
            return Node::Missing;
        }
        Node::of(self.addresses(qname, ips, qtype))
    }

    /// The SRV targets of port `port` (any named port when `None`) over `protocol` (`tcp`) of
    /// Service `ns/service`: (port number, target labels below the zone, its addresses).
    fn srv_targets(
        &self,
        ns: &str,
        service: &str,
        protocol: &str,
        port: Option<&str>,
    ) -> Vec<(u16, Vec<String>, Vec<IpAddr>)> {
        if !self.service_exists(ns, service) {
            return Vec::new();
        }
        let matches = |p: &super::records::Port| {
            p.protocol.keyword() == protocol && port.is_none_or(|name| *p.name == *name)
        };
        let mut targets: Vec<(u16, Vec<String>, Vec<IpAddr>)> = Vec::new();
        match self.index.service(ns, service).map(|s| &s.kind) {
            Some(ServiceKind::ClusterIp(ips)) => {
                let record = self.index.service(ns, service).expect("looked up above");
                for p in record.ports.iter().filter(|p| matches(p)) {
                    let labels = vec![service.to_owned(), ns.to_owned(), "svc".to_owned()];
                    targets.push((p.port, labels, ips.to_vec()));
                }
            }
            Some(ServiceKind::Headless) => {
                for (ports, endpoints) in self.index.slices_of(ns, service) {
                    for p in ports.iter().filter(|p| matches(p)) {
                        for e in endpoints {
                            let labels = vec![
                                e.name(),
                                service.to_owned(),
                                ns.to_owned(),
                                "svc".to_owned(),
                            ];
                            targets.push((p.port, labels, vec![e.ip]));
                        }
                    }
                }
            }
            Some(ServiceKind::ExternalName(_)) | None => {}
        }
        targets.sort();
        targets.dedup_by(|a, b| a.0 == b.0 && a.1 == b.1);
        targets
    }

    fn srv(
        &self,
        qname: &Name,
        ns: &str,
        service: &str,
        protocol: &str,
        port: &str,
        qtype: RecordType,
    ) -> Node {
        let targets = self.srv_targets(ns, service, protocol, Some(port));
        if targets.is_empty() {
            return Node::Missing;
        }
        if !want(qtype, RecordType::SRV) {
            return Node::empty();
        }
        let weight = u16::try_from(100 / targets.len()).unwrap_or(1).max(1);
        let mut answers = Vec::new();
        let mut additionals = Vec::new();
        for (number, labels, ips) in targets {
            let labels: Vec<&str> = labels.iter().map(String::as_str).collect();
            let Some(target) = self.zone.name(&labels) else {
                continue;
            };
            answers.push(Record::from_rdata(
                qname.clone(),
                self.zone.ttl,
                RData::SRV(SRV::new(0, weight, number, target.clone())),
            ));
            for record in self.addresses(&target, ips, RecordType::ANY) {
                if !additionals.contains(&record) {
                    additionals.push(record);
                }
            }
        }
        Node::Records {
            answers,
            additionals,
        }
    }

    /// A and AAAA records of `ips` named `name`, those `qtype` asks for.
    fn addresses(
        &self,
        name: &Name,
        ips: impl IntoIterator<Item = IpAddr>,
        qtype: RecordType,
    ) -> Vec<Record> {
        ips.into_iter()
            .filter_map(|ip| match ip {
                IpAddr::V4(v4) if want(qtype, RecordType::A) => Some(RData::A(A(v4))),
                IpAddr::V6(v6) if want(qtype, RecordType::AAAA) => Some(RData::AAAA(AAAA(v6))),
                _ => None,
            })
            .map(|data| Record::from_rdata(name.clone(), self.zone.ttl, data))
            .collect()
    }

    /// The names of `ip` in this view: its Service, else its headless endpoints' names, else
    /// its pods'.
    fn ptr_targets(&self, ip: IpAddr) -> Vec<Name> {
        let owners = self.index.owners(ip);
        let mut services = Vec::new();
        let mut endpoints = Vec::new();
        let mut pods = Vec::new();
        for owner in owners {
            match owner {
                Owner::Service(ns, name) => {
                    let has = matches!(
                        self.index.service(ns, name).map(|s| &s.kind),
                        Some(ServiceKind::ClusterIp(ips)) if ips.contains(&ip)
                    );
                    if has && self.view.sees_service(ns, name) {
                        services.extend(self.zone.name(&[name, ns, "svc"]));
                    }
                }
                Owner::Slice(ns, slice) => {
                    let Some(record) = self.index.slice(ns, slice) else {
                        continue;
                    };
                    let service = &*record.service;
                    let headless = matches!(
                        self.index.service(ns, service).map(|s| &s.kind),
                        Some(ServiceKind::Headless)
                    );
                    if !headless || !self.view.sees_service(ns, service) {
                        continue;
                    }
                    for e in record.endpoints.iter().filter(|e| e.ip == ip) {
                        endpoints.extend(self.zone.name(&[&e.name(), service, ns, "svc"]));
                    }
                }
                Owner::Pod(ns, _) => {
                    if self.view.sees_namespace(ns) {
                        pods.extend(self.zone.name(&[&dashed(ip), ns, "pod"]));
                    }
                }
            }
        }
        let mut names = if !services.is_empty() {
            services
        } else if !endpoints.is_empty() {
            endpoints
        } else {
            pods
        };
        names.sort();
        names.dedup();
        names
    }
}

/// The address a reverse name (`5.0.244.10.in-addr.arpa.`, or 32 nibbles of `ip6.arpa.`)
/// stands for, if it is a whole one.
pub fn reverse_address(name: &Name) -> Option<IpAddr> {
    let labels: Vec<String> = name
        .iter()
        .map(|l| String::from_utf8_lossy(l).to_ascii_lowercase())
        .collect();
    match labels.as_slice() {
        [d, c, b, a, arpa, root] if arpa == "in-addr" && root == "arpa" => {
            let octet = |s: &str| -> Option<u8> {
                let canonical = !s.is_empty() && (s == "0" || !s.starts_with('0'));
                canonical.then(|| s.parse().ok()).flatten()
            };
            Some(IpAddr::V4(Ipv4Addr::new(
                octet(a)?,
                octet(b)?,
                octet(c)?,
                octet(d)?,
            )))
        }
        [nibbles @ .., ip6, root] if nibbles.len() == 32 && ip6 == "ip6" && root == "arpa" => {
            let mut value: u128 = 0;
            for nibble in nibbles.iter().rev() {
                let digit = match nibble.as_bytes() {
                    [c] => char::from(*c).to_digit(16)?,
                    _ => return None,
                };
                value = (value << 4) | u128::from(digit);
            }
            Some(IpAddr::V6(Ipv6Addr::from(value)))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests;
