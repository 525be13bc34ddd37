//! Names of the OpenStack resources Stackube creates.
//!
//! Names are how an operator recognises Stackube's resources in `openstack network list`, and
//! they follow the original Stackube: `kube-<namespace>-<name>`. Names are *not* how ownership is
//! decided: Kubernetes names may contain `-`, so `kube-a-b-c` is ambiguous between namespace `a`
//! with name `b-c` and namespace `a-b` with name `c`. Ownership is carried by tags.

/// Prefix of every OpenStack resource name Stackube creates.
pub const PREFIX: &str = "kube";

/// Name of the Neutron network (and its router) backing `Network` `<namespace>/<name>`.
pub fn network_name(namespace: &str, name: &str) -> String {
    format!("{PREFIX}-{namespace}-{name}")
}

/// Name of the router of `Network` `<namespace>/<name>`: the same as the network's.
pub fn router_name(namespace: &str, name: &str) -> String {
    network_name(namespace, name)
}

/// Name of the subnet of `Network` `<namespace>/<name>`.
pub fn subnet_name(namespace: &str, name: &str) -> String {
    format!("{}-subnet", network_name(namespace, name))
}

/// Name of the Neutron port of pod `<namespace>/<pod>`.
pub fn port_name(namespace: &str, pod: &str) -> String {
    format!("{PREFIX}-{namespace}-{pod}")
}

/// Name of the VIP port of LoadBalancer Service `<namespace>/<service>`: the port its floating
/// IP is associated with.
pub fn load_balancer_port_name(namespace: &str, service: &str) -> String {
    format!("{PREFIX}-{namespace}-{service}-lb")
}

/// Name of a port kubestack keeps ready in node `node`'s pool (until a pod takes it and it is
/// renamed with [`port_name`]).
pub fn pool_port_name(node: &str) -> String {
    format!("{PREFIX}-pool-{node}")
}

/// `device_id` of the ports in node `node`'s pool: never a container id, so that no CNI command
/// for a container mistakes a pooled port for its own.
pub fn pool_device_id(node: &str) -> String {
    format!("{POOL_DEVICE_PREFIX}{node}")
}

/// Prefix of [`pool_device_id`].
pub const POOL_DEVICE_PREFIX: &str = "kubestack-pool:";

/// Linux interface names are at most 15 bytes.
const IFNAME_MAX: usize = 15;

/// The host end of a pod's veth for Neutron port `port_id`: `tap` and the first 11 characters of
/// the id, as Nova names them, so that operators recognise it.
pub fn host_link_name(port_id: &str) -> String {
    link_name("tap", port_id)
}

/// The other end of a pooled port's veth while it waits in the host's namespace for a pod:
/// `pk` and 11 characters of the port id.
pub fn parked_link_name(port_id: &str) -> String {
    link_name("pk", port_id)
}

fn link_name(prefix: &str, port_id: &str) -> String {
    let room = IFNAME_MAX - prefix.len();
    let id: String = port_id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .take(room.min(11))
        .collect();
    format!("{prefix}{id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_original_convention() {
        let cases = [
            (network_name("test", "test"), "kube-test-test"),
            (router_name("test", "test"), "kube-test-test"),
            (subnet_name("test", "test"), "kube-test-test-subnet"),
            (port_name("demo", "nginx-7d9f"), "kube-demo-nginx-7d9f"),
            (pool_port_name("node-1"), "kube-pool-node-1"),
            (load_balancer_port_name("shop", "web"), "kube-shop-web-lb"),
            (pool_device_id("node-1"), "kubestack-pool:node-1"),
            (
                host_link_name("3f9c2a1e-7b4d-4c2a-9e1f-0a1b2c3d4e5f"),
                "tap3f9c2a1e-7b",
            ),
            (
                parked_link_name("3f9c2a1e-7b4d-4c2a-9e1f-0a1b2c3d4e5f"),
                "pk3f9c2a1e-7b",
            ),
            // Whatever an id holds, the name stays a valid interface name.
            (host_link_name("a/b c:d"), "tapabcd"),
        ];
        for (got, want) in cases {
            assert_eq!(got, want);
        }
    }

    #[test]
    fn link_names_fit_the_kernel_limit() {
        let long = "x".repeat(64);
        assert!(host_link_name(&long).len() <= IFNAME_MAX);
        assert!(parked_link_name(&long).len() <= IFNAME_MAX);
    }
}
