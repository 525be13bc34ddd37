//! The fewest OpenStack calls that create, and delete, one Tenant (with a username and password,
//! as the seed's `test-tenant.yaml`) idempotently, for what the controller does at this commit
//! (`tenant/apply.rs`, `network/apply.rs`, `tenant/cleanup.rs`, `network/cleanup.rs`,
//! `purge.rs`). Once-per-process calls (the `member` role lookup, the probe whether Neutron
//! takes tags in a create call) are not per tenant and not in these lists.

/// One operation of a minimal set.
pub(crate) struct Minimal {
    pub(crate) service: &'static str,
    pub(crate) operation: &'static str,
    pub(crate) calls: u32,
}

const fn m(service: &'static str, operation: &'static str, calls: u32) -> Minimal {
    Minimal {
        service,
        operation,
        calls,
    }
}

/// Creation.
pub(crate) const CREATE: &[Minimal] = &[
    // The project by name: a retried creation must find the project it made.
    m("identity", "list_projects", 1),
    m("identity", "create_project", 1),
    // The user by name, for the same reason.
    m("identity", "list_users", 1),
    m("identity", "create_user", 1),
    // The `member` role on the project.
    m("identity", "grant_project_role", 1),
    // The network by name (its subnet is only listed when the network already exists).
    m("network", "list_networks", 1),
    m("network", "create_network", 1),
    m("network", "create_subnet", 1),
    // The router by name (its interfaces are only listed when it already exists).
    m("network", "list_routers", 1),
    // With its external gateway in the same call.
    m("network", "create_router", 1),
    m("network", "add_router_interface", 1),
    // Network, subnet and router (Neutron Zed refuses tags in a create call), and the project's
    // `default` security group once the Network is Active.
    m("network", "replace_tags", 4),
    // The project's `default` security group, which Neutron made with its first network.
    m("network", "list_security_groups", 1),
];

/// Deletion: the Network's finalizer (the namespace's deletion waits for it), then the Tenant's.
pub(crate) const DELETE: &[Minimal] = &[
    // Network finalizer: the network, subnet and router by name, then by project in the purge
    // (which finds only the default security group once the Network's finalizer is done).
    m("network", "list_networks", 2),
    m("network", "list_subnets", 2),
    m("network", "list_routers", 2),
    // The router's interfaces (which one is on the subnet), the ports left on the network, and
    // the project's ports in the purge.
    m("network", "list_ports", 3),
    m("network", "remove_router_interface", 1),
    m("network", "delete_router", 1),
    m("network", "delete_subnet", 1),
    m("network", "delete_network", 1),
    // Purge: the project's floating IPs and security groups (with the listings above: the six
    // listings by project; no per-network interface listing, its networks are gone by then).
    m("network", "list_floating_ips", 1),
    m("network", "list_security_groups", 1),
    // The `default` group Neutron made for the project.
    m("network", "delete_security_group", 1),
    // Tenant finalizer: the project recorded in the status (still ours?), the user by name.
    m("identity", "get_project", 1),
    m("identity", "list_users", 1),
    m("identity", "delete_user", 1),
    m("identity", "delete_project", 1),
];

/// All calls of a set.
pub(crate) fn total(set: &[Minimal]) -> u32 {
    set.iter().map(|m| m.calls).sum()
}

/// The calls of `service` `operation` in a set (outcome `ok`).
pub(crate) fn of(set: &[Minimal], service: &str, operation: &str) -> u32 {
    set.iter()
        .filter(|m| m.service == service && m.operation == operation)
        .map(|m| m.calls)
        .sum()
}
