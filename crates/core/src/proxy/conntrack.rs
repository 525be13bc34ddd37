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
    let mut stale = Vec::new();
    for (frontend, before) in old.frontends() {
        if !frontend.protocol.needs_conntrack_cleanup() {
            continue;
        }
        let after = new
            .get(frontend)
            .map(|s| s.backend.endpoints())
            .unwrap_or_default();
        stale.extend(
            before
                .backend
                .endpoints()
                .iter()
                .filter(|e| !after.contains(e))
                .map(|endpoint| StaleEntries::Endpoint {
                    frontend: *frontend,
                    endpoint: *endpoint,
                }),
        );
    }
    for (frontend, after) in new.frontends() {
        if !frontend.protocol.needs_conntrack_cleanup() || after.backend == Backend::Reject {
            continue;
        }
        let served_before = old
            .get(frontend)
            .is_some_and(|s| s.backend != Backend::Reject);
        if !served_before {
            stale.push(StaleEntries::Frontend(*frontend));
        }
    }
    stale.sort_unstable();
    stale
}

#[cfg(test)]
mod tests;
