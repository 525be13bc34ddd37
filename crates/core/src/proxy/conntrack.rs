//! The connection tracking entries a change of a router's table leaves stale, for the daemon to
//! delete in that router's namespace.
//!
//! TCP connections end, and a new one goes through the new rules. UDP and SCTP "connections"
//! are conntrack entries that each packet refreshes: a client that keeps sending to a frontend
//! would keep going to an endpoint that is gone, or keep hitting what was there before the
//! frontend had endpoints (a floating IP's placeholder, a reject), for as long as it sends.
//!
//! # Guarantees
//! - Only UDP and SCTP frontends have entries cleared.
//! - An endpoint that served a frontend and no longer does (removed, or the frontend gone or
//!   rejecting) has its entries of that frontend cleared: original destination the frontend,
//!   reply source the endpoint. Entries of endpoints that remain are kept.
//! - A frontend that had no endpoint (rejecting, or absent) and now has some has all its entries
//!   cleared: original destination the frontend.
//! - The result is sorted, and empty when nothing changed.

use std::collections::BTreeSet;
use std::net::SocketAddrV4;

use super::table::{Backend, Frontend, TableSpec};

/// Entries to delete.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum StaleEntries {
    /// Every entry whose original destination is the frontend (address, protocol, port).
    Frontend(Frontend),
    /// Entries whose original destination is the frontend and whose reply source is the
    /// endpoint (address and port).
    Endpoint {
        /// The frontend.
        frontend: Frontend,
        /// The endpoint that no longer serves it.
        endpoint: SocketAddrV4,
    },
}

/// The entries going from `old` to `new` leaves stale.
pub fn stale_entries(old: &TableSpec, new: &TableSpec) -> Vec<StaleEntries> {
    let frontends: BTreeSet<&Frontend> = old
        .frontends()
        .keys()
        .chain(new.frontends().keys())
        .collect();
    stale_entries_of(old, new, frontends)
}

/// [`stale_entries`], looking only at `frontends` (those that may differ between `old` and
/// `new`): O(those frontends).
pub fn stale_entries_of<'a>(
    old: &TableSpec,
    new: &TableSpec,
    frontends: impl IntoIterator<Item = &'a Frontend>,
) -> Vec<StaleEntries> {
    let mut stale = Vec::new();
    for frontend in frontends {
        if !frontend.protocol.needs_conntrack_cleanup() {
            continue;
        }
        let before = old.get(frontend).map(|s| &s.backend);
        let after = new.get(frontend).map(|s| &s.backend);
        let after_endpoints = after.map(Backend::endpoints).unwrap_or_default();
        stale.extend(
            before
                .map(Backend::endpoints)
                .unwrap_or_default()
                .iter()
                .filter(|e| !after_endpoints.contains(e))
                .map(|endpoint| StaleEntries::Endpoint {
                    frontend: *frontend,
                    endpoint: *endpoint,
                }),
        );
        let serves = after.is_some_and(|b| *b != Backend::Reject);
        let served_before = before.is_some_and(|b| *b != Backend::Reject);
        if serves && !served_before {
            stale.push(StaleEntries::Frontend(*frontend));
        }
    }
    stale.sort_unstable();
    stale.dedup();
    stale
}

#[cfg(test)]
mod tests;
