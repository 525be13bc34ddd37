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
        ];
        for (got, want) in cases {
            assert_eq!(got, want);
        }
    }
}
