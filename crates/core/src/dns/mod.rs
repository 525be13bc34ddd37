//! The decisions of `stackube-dns`, the cluster DNS of every tenant: which records exist, which
//! of them one router's pods may see, and the message that answers a query. No sockets here:
//! the daemon reads packets and hands them to [`message::handle`].
//!
//! - [`records`]: Services, EndpointSlices and Pods as small records, converted once per change;
//! - [`index`]: all of them, once for the whole cluster, updated object by object;
//! - [`view`]: what one router's pods see (their namespaces, the exposed Services);
//! - [`zone`]: the cluster domain, its SOA and NS;
//! - [`answer`]: the records of one question in one view (the Kubernetes DNS specification);
//! - [`message`]: bytes in, bytes out: parsing, EDNS, truncation, errors, forwarded replies;
//! - [`cache`]: the forwarder's cache (TTLs, negative caching, bounded);
//! - [`resolv_conf`]: the node's name servers, the default upstreams.
//!
//! # Guarantees
//! - A query arriving on a router's socket is answered from that router's [`view::View`] only:
//!   a name of a namespace it does not see gets the answer of a name that does not exist, and
//!   no record of such a namespace is in any reply (property-tested in `answer` and
//!   `message`, fuzzed in `crates/core/fuzz`).
//! - No input makes [`message::handle`] panic or reply beyond its transport's size.

pub mod answer;
pub mod cache;
pub mod index;
pub mod message;
pub mod records;
pub mod resolv_conf;
pub mod view;
pub mod zone;

pub use index::Index;
pub use message::{Handled, Pending, Reply, Transport, handle};
pub use view::View;
pub use zone::Zone;
