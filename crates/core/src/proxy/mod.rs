//! The decisions of `stackube-proxy`, Stackube's kube-proxy: which Services a tenant router
//! serves and how, as one nftables table per router namespace.
//!
//! A tenant's pods route through the tenant's Neutron router, whose namespace
//! (`qrouter-<router id>`) lives on the node of the L3 agent. The daemon picks the Services of
//! the namespaces behind a router; this module turns them into the router's table and the
//! commands that get the kernel there:
//! - [`service`]: a `Service` as [`ServiceInfo`] (or the reason it is not ours to program);
//! - [`endpoints`]: its `EndpointSlice`s as [`Endpoints`], and the ones traffic may go to;
//! - [`table`]: the desired state of one table, [`TableSpec`]: frontends to backends;
//! - [`nft`]: the commands of a full sync ([`nft::full`]) or of an update ([`nft::update`]),
//!   rendered as one `nft -f -` transaction, and [`nft::model`], an in-memory nftables that
//!   applies them the way the kernel does, for tests and fakes;
//! - [`conntrack`]: the UDP and SCTP connection tracking entries a change leaves stale;
//! - [`routers`]: which router serves which Services (its tenant's, and the exposed ones);
//! - [`desired`]: every router's table kept up to date object by object, and which frontends
//!   of which routers each change touched (what a sync applies).
//!
//! IPv4 only: tenant networks are IPv4, so IPv6 cluster IPs and endpoints are ignored.
//!
//! # The ruleset
//! ```text
//! table inet stackube-proxy
//!   set service-addresses        every frontend address (cluster IPs, load balancer IPs)
//!   map services                 address . protocol . port : goto endpoints-<N> | goto affinity-<id>
//!   map no-endpoints             address . protocol . port : goto reject-chain
//!   map + chain endpoints-<N>    one per endpoint count in use: dnat to the endpoint in slot
//!                                `numgen random mod N` of the frontend
//!   chain nat-prerouting         nat, prerouting, dstnat - 10: vmap @services
//!   chain filter-forward         filter, forward, filter - 10: new connections to a frontend
//!                                with no endpoint, or to a service CIDR address no frontend of
//!                                this table serves, go to reject-chain
//!   chain reject-chain           TCP reset, otherwise ICMP port unreachable
//!   chain nat-postrouting        nat, postrouting, srcnat - 10: masquerade what we DNATed
//!   affinity-<id>, endpoint-<id>-<endpoint>, set affinity-<id>-<endpoint>
//!                                ClientIP session affinity, the way kube-proxy does it
//! ```
//! `<id>` names a frontend, `10.96.0.7-tcp-80`; `<endpoint>` is `10.244.0.5-8080`.
//!
//! **Why the priorities.** A LoadBalancer address is a Neutron floating IP, which Neutron's own
//! nat PREROUTING chain (priority -100, iptables-nft) DNATs to a placeholder port. Only one DNAT
//! happens per connection, so ours runs first (`dstnat - 10`). For the same reason the
//! no-endpoints check matches the connection's *original* destination (`ct original ip daddr`):
//! a floating IP with no endpoint has been DNATed by Neutron by the time it is forwarded. The
//! service CIDR check matches the current destination, which our DNAT has already rewritten for
//! every frontend that has endpoints.
//!
//! **Why masquerade.** Clients and endpoints often share a subnet: without it an endpoint would
//! answer a client directly, bypassing the router and the reverse DNAT. Masquerading what we
//! DNATed (`ct status dnat`, original destination in `service-addresses`) sends the reply back
//! through the router.
//!
//! # Guarantees
//! - A full sync replaces the table in one transaction: `add table` (so the delete cannot fail),
//!   `delete table`, then the whole table, with one `add element` per set or map.
//! - An update touches only the elements, `endpoints-<N>` buckets and affinity chains of
//!   frontends that changed; an update between equal specs is empty. Objects are added before
//!   anything refers to them and deleted after the last reference to them is gone, so nft never
//!   refuses an update of a table that a full sync or earlier updates built.
//! - A frontend with no usable endpoint rejects at once: TCP reset, ICMP port unreachable
//!   otherwise; clients do not wait for a timeout.
//! - Traffic to a service CIDR address that no frontend of this table serves (another tenant's
//!   Service, a port the Service does not have) is rejected: it never leaves the router.
//! - A ClientIP-affinity client stays with its endpoint while that endpoint remains, across
//!   updates; a changed affinity timeout starts the frontend's affinity over.
//! - The same inputs render the same text: everything is sorted.

pub mod conntrack;
pub mod desired;
pub mod endpoints;
pub mod nft;
pub mod routers;
pub mod service;
pub mod table;

pub use endpoints::{Conditions, Endpoint, Endpoints, SliceInfo};
pub use service::{Ignored, Protocol, ServiceInfo, ServicePort};
pub use table::{Backend, Conflict, Frontend, FrontendSpec, ServiceRef, TableSpec};
