//! The elements of the table's sets and maps: which set each goes to, and what a frontend has.

use std::net::{Ipv4Addr, SocketAddrV4};

use super::names::{
    NO_ENDPOINTS, REJECT_CHAIN, SERVICE_ADDRESSES, SERVICES, affinity_chain, bucket, comment,
    endpoint_value, frontend_key, slot_key,
};
use super::{Element, Value};
use crate::proxy::table::{Backend, Frontend, FrontendSpec};

/// The sets and maps elements go to, in the order their commands are emitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum SetId {
    /// `service-addresses`.
    ServiceAddresses,
    /// `services`.
    Services,
    /// `no-endpoints`.
    NoEndpoints,
    /// `endpoints-<N>`.
    Bucket(usize),
}

impl SetId {
    pub(super) fn name(self) -> String {
        match self {
            SetId::ServiceAddresses => SERVICE_ADDRESSES.to_owned(),
            SetId::Services => SERVICES.to_owned(),
            SetId::NoEndpoints => NO_ENDPOINTS.to_owned(),
            SetId::Bucket(n) => bucket(n),
        }
    }
}

/// The bucket a frontend's backend uses, if any.
pub(super) fn bucket_of(spec: &FrontendSpec) -> Option<usize> {
    match &spec.backend {
        Backend::Random(endpoints) => Some(endpoints.len()),
        Backend::Reject | Backend::Affinity { .. } => None,
    }
}

/// A frontend's elements in `services` or `no-endpoints`, and in its bucket (not its address:
/// several frontends share that element of `service-addresses`).
pub(super) fn elements(frontend: &Frontend, spec: &FrontendSpec) -> Vec<(SetId, Element)> {
    let mut elements = vec![verdict(frontend, spec)];
    if let Backend::Random(endpoints) = &spec.backend {
        let n = endpoints.len();
        elements.extend(slots(frontend, endpoints).map(|e| (SetId::Bucket(n), e)));
    }
    elements
}

/// A frontend's element in `services` (it has endpoints) or `no-endpoints`.
pub(super) fn verdict(frontend: &Frontend, spec: &FrontendSpec) -> (SetId, Element) {
    let (set, chain) = match &spec.backend {
        Backend::Reject => (SetId::NoEndpoints, REJECT_CHAIN.to_owned()),
        Backend::Affinity { .. } => (SetId::Services, affinity_chain(frontend)),
        Backend::Random(endpoints) => (SetId::Services, bucket(endpoints.len())),
    };
    let element = Element {
        key: frontend_key(frontend),
        value: Some(Value::Goto(chain)),
        comment: Some(comment(&spec.comment)),
    };
    (set, element)
}

/// A random backend's elements in its bucket: slot → endpoint.
pub(super) fn slots<'a>(
    frontend: &'a Frontend,
    endpoints: &'a [SocketAddrV4],
) -> impl Iterator<Item = Element> + 'a {
    endpoints
        .iter()
        .enumerate()
        .map(move |(slot, endpoint)| Entry::Slot(frontend, slot, endpoint).text())
}

/// A `service-addresses` element.
pub(super) fn address_element(ip: Ipv4Addr) -> Element {
    Element {
        key: ip.to_string(),
        value: None,
        comment: None,
    }
}

/// One element of a full sync, before it is written as nft text ([`Entry::text`]) or in the
/// kernel's layout ([`Entry::raw`](super::raw)).
#[derive(Clone, Copy, Debug)]
pub(super) enum Entry<'a> {
    /// An address of `service-addresses`.
    Address(Ipv4Addr),
    /// A frontend's element in `services` or `no-endpoints`.
    Verdict(&'a Frontend, &'a FrontendSpec),
    /// Slot `n` of a random frontend's bucket, and its endpoint.
    Slot(&'a Frontend, usize, &'a SocketAddrV4),
}

impl Entry<'_> {
    /// The element as nft text.
    pub(super) fn text(self) -> Element {
        match self {
            Entry::Address(ip) => address_element(ip),
            Entry::Verdict(frontend, spec) => verdict(frontend, spec).1,
            Entry::Slot(frontend, slot, endpoint) => Element {
                key: slot_key(frontend, slot),
                value: Some(Value::Data(endpoint_value(endpoint))),
                comment: None,
            },
        }
    }
}
