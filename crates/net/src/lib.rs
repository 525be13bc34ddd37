//! Node networking for `kubestack`, `stackube-proxy` and `stackube-dns`: network
//! namespaces entered only on dedicated OS threads (never on a tokio worker, whose other tasks
//! would silently run in the wrong namespace), netlink for veths, addresses and routes, Open
//! vSwitch ports with the `external_ids` the Neutron agent wires, and nftables transactions and
//! connection tracking entries in a router's namespace.

pub mod dns;
#[cfg(feature = "fake")]
pub mod fake;
pub mod links;
pub mod netns;
pub mod nft;
pub mod ovs;
pub mod veth;

/// A node networking failure, naming what failed.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// The network namespace does not exist (any more).
    #[error("network namespace {0} does not exist")]
    NoNetns(String),
    /// A netlink request failed.
    #[error("{what}: {source}")]
    Netlink {
        /// What was being done.
        what: String,
        /// The kernel's answer.
        source: rtnetlink::Error,
    },
    /// A command (ovs-vsctl, ethtool) failed.
    #[error("{command}: {message}")]
    Command {
        /// The command line, without secrets (there are none in these).
        command: String,
        /// Its error output or the reason it did not run.
        message: String,
    },
    /// Anything else (thread, namespace entry, I/O).
    #[error("{0}")]
    Other(String),
}

/// Result of this crate.
pub type Result<T, E = NetError> = std::result::Result<T, E>;
