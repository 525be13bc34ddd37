//! Node networking for `kubestack` (and later `stackube-proxy` and `stackube-dns`): network
//! namespaces entered only on dedicated OS threads (never on a tokio worker, whose other tasks
//! would silently run in the wrong namespace), netlink for veths, addresses and routes, Open
//! vSwitch ports with the `external_ids` the Neutron agent wires, and atomic nftables
//! transactions.
//!
//! Empty until the CNI issue: the foundation only fixes where this code lives.
