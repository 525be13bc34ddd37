//! What a pod's Neutron port says about its pod: the same whether the port was made for the
//! pod (the slow path) or handed to it from the pool.

use super::PodName;
use crate::naming;
use crate::ownership::{Owner, OwnerKind};

/// The identity of a pod's port in Neutron.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodPort {
    /// `kube-<namespace>-<pod>`.
    pub name: String,
    /// The CNI container id (what DEL and GC look ports up by).
    pub device_id: String,
    /// Tags and description name the pod.
    pub owner: Owner,
}

/// The port of container `container` of pod `pod` in cluster `cluster`. The owner uid is the
/// pod's, or the container's when the runtime did not pass the pod's uid.
///
/// `pod` is `None` only when finishing a hand-over recorded by an older daemon that did not
/// write the pod down: the port is then named after the container, never `kube--`.
pub fn pod_port(cluster: &str, pod: Option<&PodName>, container: &str) -> PodPort {
    let (name, display, uid) = match pod {
        Some(pod) => (
            naming::port_name(&pod.namespace, &pod.name),
            format!("{}/{}", pod.namespace, pod.name),
            if pod.uid.is_empty() {
                container.to_owned()
            } else {
                pod.uid.clone()
            },
        ),
        None => (
            format!("{}-container-{container}", naming::PREFIX),
            format!("container {container}"),
            container.to_owned(),
        ),
    };
    PodPort {
        name,
        device_id: container.to_owned(),
        owner: Owner {
            cluster: cluster.to_owned(),
            kind: OwnerKind::Pod,
            display,
            uid,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pods_port_is_named_and_owned_after_its_pod() {
        let pod = PodName {
            namespace: "demo".into(),
            name: "web-1".into(),
            uid: "u-1".into(),
        };
        let cases = [
            (Some(pod.clone()), "kube-demo-web-1", "u-1", "demo/web-1"),
            (
                Some(PodName {
                    uid: String::new(),
                    ..pod
                }),
                "kube-demo-web-1",
                "c-1",
                "demo/web-1",
            ),
            (None, "kube-container-c-1", "c-1", "container c-1"),
        ];
        for (pod, name, uid, display) in cases {
            let got = pod_port("stackube", pod.as_ref(), "c-1");
            assert_eq!(got.name, name);
            assert_eq!(got.device_id, "c-1");
            assert_eq!(got.owner.uid, uid);
            assert_eq!(got.owner.display, display);
            assert_eq!(got.owner.kind, OwnerKind::Pod);
            assert!(!got.name.contains("--"), "{}", got.name);
        }
    }
}
