//! The names of the table's objects and the nft text of keys and values.
//!
//! `reject`, `fwd` and `postrouting` are nft keywords, so no object is named that bare. Names
//! may hold dots and dashes (`affinity-10.96.0.7-tcp-80`); the longest,
//! `endpoint-255.255.255.255-sctp-65535-255.255.255.255-65535`, is far below nft's 256.

use std::net::SocketAddrV4;

use crate::proxy::table::Frontend;

/// Every frontend address.
pub(super) const SERVICE_ADDRESSES: &str = "service-addresses";
/// Frontends with endpoints: frontend to `goto endpoints-<N>` or `goto affinity-<id>`.
pub(super) const SERVICES: &str = "services";
/// Frontends with no endpoint: frontend to `goto reject-chain`.
pub(super) const NO_ENDPOINTS: &str = "no-endpoints";
/// TCP reset, or ICMP port unreachable.
pub(super) const REJECT_CHAIN: &str = "reject-chain";
/// The DNAT base chain.
pub(super) const NAT_PREROUTING: &str = "nat-prerouting";
/// The reject base chain.
pub(super) const FILTER_FORWARD: &str = "filter-forward";
/// The masquerade base chain.
pub(super) const NAT_POSTROUTING: &str = "nat-postrouting";

/// nft's limit on a comment's length, in bytes.
const COMMENT_MAX: usize = 128;

/// The map and the chain of the frontends with `n` endpoints: `endpoints-<n>`.
pub fn bucket(n: usize) -> String {
    format!("endpoints-{n}")
}

/// The chain a ClientIP-affinity frontend goes to: `affinity-10.96.0.7-tcp-80`.
pub fn affinity_chain(frontend: &Frontend) -> String {
    format!("affinity-{}", frontend_id(frontend))
}

/// The set of the clients of `endpoint` behind an affinity frontend:
/// `affinity-10.96.0.7-tcp-80-10.244.0.5-8080`.
pub fn affinity_set(frontend: &Frontend, endpoint: &SocketAddrV4) -> String {
    format!(
        "affinity-{}-{}",
        frontend_id(frontend),
        endpoint_id(endpoint)
    )
}

/// The chain that records a client of `endpoint` and DNATs to it:
/// `endpoint-10.96.0.7-tcp-80-10.244.0.5-8080`.
pub fn endpoint_chain(frontend: &Frontend, endpoint: &SocketAddrV4) -> String {
    format!(
        "endpoint-{}-{}",
        frontend_id(frontend),
        endpoint_id(endpoint)
    )
}

fn frontend_id(frontend: &Frontend) -> String {
    format!("{}-{}-{}", frontend.ip, frontend.protocol, frontend.port)
}

fn endpoint_id(endpoint: &SocketAddrV4) -> String {
    format!("{}-{}", endpoint.ip(), endpoint.port())
}

/// A frontend as a key of `services` and `no-endpoints`: `10.96.0.5 . tcp . 80`.
pub(super) fn frontend_key(frontend: &Frontend) -> String {
    format!(
        "{} . {} . {}",
        frontend.ip, frontend.protocol, frontend.port
    )
}

/// Slot `slot` of a frontend, a key of its bucket: `10.96.0.5 . tcp . 80 . 0`.
pub(super) fn slot_key(frontend: &Frontend, slot: usize) -> String {
    format!("{} . {slot}", frontend_key(frontend))
}

/// An endpoint as a bucket's value: `10.244.0.5 . 8080`.
pub(super) fn endpoint_value(endpoint: &SocketAddrV4) -> String {
    format!("{} . {}", endpoint.ip(), endpoint.port())
}

/// `comment` as nft takes it: no `"`, at most 128 bytes.
pub(super) fn comment(comment: &str) -> String {
    let mut out = String::with_capacity(comment.len().min(COMMENT_MAX));
    for c in comment.chars().map(|c| if c == '"' { '\'' } else { c }) {
        if out.len() + c.len_utf8() > COMMENT_MAX {
            break;
        }
        out.push(c);
    }
    out
}
