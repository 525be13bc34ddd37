//! The daemon's flows against fakes of its adapters (Neutron, the bridge, the host's links, the
//! tenants' Networks): exact, fast, and with faults injected where the real services cannot be
//! made to fail on cue. The same flows run against the real services in `tests/`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;
use stackube_core::cluster;
use stackube_model::config::ClusterNetworkMode;
use stackube_model::crd::{
    Network, NetworkSpec, NetworkState, NetworkStatus, PROJECT_LABEL, TENANT_LABEL,
};
use stackube_model::{NetworkId, PortId, SecurityGroupId, SubnetId};
use stackube_net::fake::{FakeLinks, FakeSwitch};
use stackube_net::ovs::CONTAINER_KEY;
use stackube_openstack::fake::FakeCloud;
use stackube_openstack::network::{NewNetwork, NewSecurityGroup, NewSubnet, Port};
use stackube_openstack::{ErrorKind, Service};

use super::{Daemon, Parts, Settings, tenant};
use crate::cni::{Command, Invocation, PodRef};
use crate::metrics::Metrics;

const NS: &str = "tenant-a";
const NODE: &str = "node-1";

/// The Networks (by namespace and name) and the namespaces' labels, in memory.
#[derive(Default)]
struct FakeNetworks {
    networks: Mutex<BTreeMap<(String, String), Network>>,
    namespaces: Mutex<BTreeMap<String, BTreeMap<String, String>>>,
    policies: Mutex<Vec<k8s_openapi::api::networking::v1::NetworkPolicy>>,
    pods: Mutex<Vec<k8s_openapi::api::core::v1::Pod>>,
}

impl FakeNetworks {
    fn put(&self, network: Network) {
        let key = (
            network.metadata.namespace.clone().unwrap_or_default(),
            network.metadata.name.clone().unwrap_or_default(),
        );
        self.networks.lock().expect("lock").insert(key, network);
    }

    fn put_namespace(&self, name: &str, labels: &[(&str, &str)]) {
        let labels = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        self.namespaces
            .lock()
            .expect("lock")
            .insert(name.to_owned(), labels);
    }
}

#[async_trait]
impl tenant::Networks for FakeNetworks {
    async fn get(&self, namespace: &str, name: &str) -> Result<Option<Network>, String> {
        Ok(self
            .networks
            .lock()
            .expect("lock")
            .get(&(namespace.to_owned(), name.to_owned()))
            .cloned())
    }

    async fn namespace_labels(
        &self,
        name: &str,
    ) -> Result<Option<BTreeMap<String, String>>, String> {
        Ok(self.namespaces.lock().expect("lock").get(name).cloned())
    }

    async fn policies(
        &self,
        namespace: &str,
    ) -> Result<Vec<k8s_openapi::api::networking::v1::NetworkPolicy>, String> {
        let policies = self.policies.lock().expect("lock");
        Ok(policies
            .iter()
            .filter(|p| p.metadata.namespace.as_deref() == Some(namespace))
            .cloned()
            .collect())
    }

    async fn pod(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<k8s_openapi::api::core::v1::Pod>, String> {
        let pods = self.pods.lock().expect("lock");
        Ok(pods
            .iter()
            .find(|p| {
                p.metadata.namespace.as_deref() == Some(namespace)
                    && p.metadata.name.as_deref() == Some(name)
            })
            .cloned())
    }
}

/// A `Network` `<ns>/<name>` on `cidr` with status `state` and these Neutron ids.
fn network_object(
    ns: &str,
    name: &str,
    cidr: &str,
    state: NetworkState,
    ids: Option<(&NetworkId, &SubnetId)>,
) -> Network {
    let mut cr = Network::new(
        name,
        NetworkSpec {
            cidr: cidr.into(),
            gateway: cidr.replace(".0/16", ".1"),
            network_id: None,
        },
    );
    cr.metadata.namespace = Some(ns.into());
    cr.status = Some(NetworkStatus {
        state: Some(state),
        network_id: ids.map(|(n, _)| n.to_string()),
        subnet_id: ids.map(|(_, s)| s.to_string()),
        message: (state == NetworkState::Pending)
            .then(|| format!("namespace {ns} has no Keystone project yet")),
        ..Default::default()
    });
    cr
}

/// A node with one tenant network, on fakes.
struct Rig {
    cloud: FakeCloud,
    links: Arc<FakeLinks>,
    switch: Arc<FakeSwitch>,
    networks: Arc<FakeNetworks>,
    /// The tenant network's security group.
    group: SecurityGroupId,
}

impl Rig {
    async fn new() -> Rig {
        let cloud = FakeCloud::new();
        cloud.state().port_status_on_create = "ACTIVE".into();
        let tenant = cloud
            .identity()
            .create_project(&stackube_openstack::identity::NewProject {
                name: NS.into(),
                ..Default::default()
            })
            .await
            .expect("the tenant's project")
            .id;
        let group = cloud
            .networking()
            .create_security_group(&NewSecurityGroup {
                name: format!("kube-{NS}-{NS}"),
                project_id: Some(tenant.clone()),
                ..Default::default()
            })
            .await
            .expect("the network's security group")
            .id;
        let rig = Rig {
            cloud,
            links: Arc::new(FakeLinks::new()),
            switch: Arc::new(FakeSwitch::new()),
            networks: Arc::new(FakeNetworks::default()),
            group,
        };
        let ids = rig
            .neutron_network(
                &format!("kube-{NS}-{NS}"),
                "10.244.0.0/16",
                Some(tenant.clone()),
            )
            .await;
        let mut network = network_object(
            NS,
            NS,
            "10.244.0.0/16",
            NetworkState::Active,
            Some((&ids.0, &ids.1)),
        );
        if let Some(status) = network.status.as_mut() {
            status.security_group_id = Some(rig.group.to_string());
        }
        rig.networks.put(network);
        rig.networks
            .put_namespace(NS, &[(TENANT_LABEL, NS), (PROJECT_LABEL, tenant.as_str())]);
        rig
    }

    /// A Neutron network with an IPv4 subnet on `cidr`, in `project` (`None`: the admin's).
    async fn neutron_network(
        &self,
        name: &str,
        cidr: &str,
        project: Option<stackube_model::ProjectId>,
    ) -> (NetworkId, SubnetId) {
        let neutron = self.cloud.networking();
        let network = neutron
            .create_network(&NewNetwork {
                name: name.into(),
                project_id: project,
                ..Default::default()
            })
            .await
            .expect("network");
        let subnet = neutron
            .create_subnet(&NewSubnet::ipv4(network.id.clone(), "subnet", cidr))
            .await
            .expect("subnet");
        (network.id, subnet.id)
    }

    /// The cluster network, in the admin project, with its `Network` in `state`.
    async fn cluster_network(&self, state: NetworkState) -> NetworkId {
        let ids = self
            .neutron_network("kube-stackube-cluster-cluster", "10.246.0.0/16", None)
            .await;
        self.networks.put(network_object(
            cluster::NAMESPACE,
            cluster::NETWORK,
            "10.246.0.0/16",
            state,
            (state == NetworkState::Active).then_some((&ids.0, &ids.1)),
        ));
        ids.0
    }

    /// A daemon (a fresh process, as after a restart) on this node's fakes.
    fn daemon(&self, pool_size: usize) -> Arc<Daemon> {
        self.daemon_with(pool_size, ClusterNetworkMode::Cluster)
    }

    /// [`Rig::daemon`] with `cluster-network` `mode`.
    fn daemon_with(&self, pool_size: usize, mode: ClusterNetworkMode) -> Arc<Daemon> {
        Daemon::new(
            Settings {
                node: NODE.into(),
                cluster: "test".into(),
                active_timeout: Duration::from_millis(300),
                pool_size,
                retry_max: Duration::from_millis(20),
                cluster_network: mode,
            },
            Parts {
                cloud: Arc::new(self.cloud.clone()),
                networks: self.networks.clone(),
                links: self.links.clone(),
                switch: self.switch.clone(),
            },
            Metrics::unregistered(),
        )
    }

    /// A pod sandbox's namespace, and the ADD the runtime sends for it.
    fn pod(&self, name: &str) -> Invocation {
        let netns = format!("/run/netns/{name}");
        self.links.add_netns(&netns);
        Invocation {
            command: Command::Add,
            container_id: format!("c-{name}"),
            netns: Some(netns),
            if_name: "eth0".into(),
            pod: Some(PodRef {
                namespace: NS.into(),
                name: name.into(),
                uid: format!("uid-{name}"),
            }),
            cni_version: "1.1.0".into(),
            network_name: "stackube".into(),
            prev_result: None,
            valid_attachments: Vec::new(),
            daemon_socket: String::new(),
        }
    }

    fn ports(&self) -> Vec<Port> {
        self.cloud.state().ports.values().cloned().collect()
    }

    fn ports_of(&self, device_id: &str) -> Vec<Port> {
        self.ports()
            .into_iter()
            .filter(|p| p.device_id == device_id)
            .collect()
    }

    fn pool_ports(&self) -> BTreeSet<String> {
        self.ports_of(&format!("kubestack-pool:{NODE}"))
            .iter()
            .map(|p| p.id.to_string())
            .collect()
    }

    /// The bridge port marked with `container`: (name, Neutron port id).
    fn bridge_port(&self, container: &str) -> Option<(String, String)> {
        self.switch
            .ports()
            .iter()
            .find(|(_, ids)| ids.get(CONTAINER_KEY).map(String::as_str) == Some(container))
            .map(|(name, ids)| (name.clone(), ids["iface-id"].clone()))
    }

    fn pod_has_eth0(&self, add: &Invocation) -> bool {
        let netns = PathBuf::from(add.netns.clone().unwrap_or_default());
        self.links
            .state()
            .pods
            .contains_key(&(netns, "eth0".to_owned()))
    }
}

fn with(add: &Invocation, command: Command) -> Invocation {
    Invocation {
        command,
        ..add.clone()
    }
}

fn gc(valid: &[&Invocation]) -> Invocation {
    Invocation {
        command: Command::Gc,
        container_id: String::new(),
        netns: None,
        if_name: String::new(),
        pod: None,
        cni_version: "1.1.0".into(),
        network_name: "stackube".into(),
        prev_result: None,
        valid_attachments: valid
            .iter()
            .map(|i| (i.container_id.clone(), "eth0".to_owned()))
            .collect(),
        daemon_socket: String::new(),
    }
}

fn ip(result: &Value) -> String {
    result["ips"][0]["address"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// Polls `done` (a few seconds at most: the background tasks here run against fakes).
async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..300 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("never happened: {what}");
}

/// A daemon with a ready pool of `size` (recovered, refilled by a first pod `p0`).
async fn pooled(rig: &Rig, size: usize) -> (Arc<Daemon>, Invocation) {
    let daemon = rig.daemon(size);
    daemon.recover_pool().await.expect("recovery");
    let p0 = rig.pod("p0");
    daemon.handle(&p0).await.expect("the first ADD");
    eventually("the pool is full", || rig.pool_ports().len() == size).await;
    (daemon, p0)
}

#[tokio::test]
async fn pods_ports_pooled_or_not_are_in_their_networks_security_group() {
    let rig = Rig::new().await;
    let in_group = |ports: Vec<Port>| {
        assert!(!ports.is_empty(), "no port to look at");
        for port in ports {
            assert_eq!(port.security_group_ids, vec![rig.group.clone()], "{port:?}");
        }
    };
    let daemon = rig.daemon(0);
    let p1 = rig.pod("p1");
    daemon.handle(&p1).await.expect("an ADD without the pool");
    in_group(rig.ports_of("c-p1"));

    let (daemon, _) = pooled(&rig, 2).await;
    in_group(rig.ports_of(&format!("kubestack-pool:{NODE}")));
    let p2 = rig.pod("p2");
    daemon.handle(&p2).await.expect("a pooled ADD");
    eventually("p2's port is handed over", || {
        rig.ports_of("c-p2").len() == 1
    })
    .await;
    in_group(rig.ports_of("c-p2"));
}

#[tokio::test]
async fn a_failed_add_leaves_nothing_behind() {
    // (what fails, how) → the ADD fails, and no port, veth or bridge port of the pod is left.
    type Fault = fn(&Rig);
    let cases: [(&str, Fault); 5] = [
        ("the Neutron port cannot be created", |r| {
            r.cloud
                .faults()
                .fail_nth("create_port", 1, ErrorKind::Unavailable)
        }),
        ("the veth cannot be created", |r| {
            r.links.fail_nth("create_pod_link", 1)
        }),
        ("the bridge refuses the port", |r| {
            r.switch.fail_nth("add_port", 1)
        }),
        ("the port never becomes ACTIVE", |r| {
            r.cloud.state().port_status_on_create = "DOWN".into()
        }),
        ("Neutron goes away while waiting for ACTIVE", |r| {
            r.cloud
                .faults()
                .fail_from("get_port", 1, ErrorKind::Unavailable)
        }),
    ];
    for (name, fault) in cases {
        let rig = Rig::new().await;
        let daemon = rig.daemon(0);
        let add = rig.pod("web");
        fault(&rig);
        let err = daemon.handle(&add).await.expect_err(name);
        assert!(!err.msg.is_empty(), "{name}");
        rig.cloud.faults().clear();
        assert!(rig.ports_of("c-web").is_empty(), "{name}: a port is left");
        assert!(
            rig.switch.ports().is_empty(),
            "{name}: a bridge port is left"
        );
        assert!(rig.links.state().host.is_empty(), "{name}: a veth is left");
        assert!(!rig.pod_has_eth0(&add), "{name}: the pod has an eth0");
        // The runtime's retry then works.
        rig.cloud.state().port_status_on_create = "ACTIVE".into();
        daemon.handle(&add).await.expect("the retried ADD");
        assert_eq!(rig.ports_of("c-web").len(), 1, "{name}");
    }
}

#[tokio::test]
async fn a_retried_add_reuses_the_port_an_earlier_attempt_made() {
    let rig = Rig::new().await;
    let daemon = rig.daemon(0);
    let add = rig.pod("web");
    rig.switch.fail_nth("add_port", 1);
    daemon.handle(&add).await.expect_err("the first attempt");
    // The port of the failed attempt is deleted; a retry makes exactly one.
    daemon.handle(&add).await.expect("the retry");
    assert_eq!(rig.ports_of("c-web").len(), 1);
    assert_eq!(rig.cloud.count("create_port"), 2);
}

#[tokio::test]
async fn a_repeated_add_answers_the_same_attachment_and_takes_nothing() {
    for pool_size in [0, 2] {
        let rig = Rig::new().await;
        let (daemon, _) = pooled(&rig, pool_size).await;
        let add = rig.pod("web");
        let first = daemon.handle(&add).await.expect("ADD");
        let ports_before = rig.ports().len();
        let pool_before = rig.pool_ports();
        let creates = rig.cloud.count("create_port");
        let link_calls = rig.links.calls().len();
        let again = daemon.handle(&add).await.expect("the repeated ADD");
        assert_eq!(ip(&again), ip(&first), "pool {pool_size}");
        assert_eq!(again, first, "pool {pool_size}: the same result");
        assert_eq!(rig.ports().len(), ports_before, "pool {pool_size}");
        assert_eq!(
            rig.pool_ports(),
            pool_before,
            "pool {pool_size}: a pooled port was taken"
        );
        assert_eq!(rig.cloud.count("create_port"), creates, "pool {pool_size}");
        // Only the look into the pod's namespace: nothing was deleted or rebuilt.
        let new_calls: Vec<String> = rig.links.calls()[link_calls..].to_vec();
        assert_eq!(
            new_calls,
            vec!["inspect eth0".to_owned()],
            "pool {pool_size}"
        );
    }
}

#[tokio::test]
async fn gc_spares_a_ready_pool_and_a_pod_mid_hand_over_but_removes_real_leftovers() {
    let rig = Rig::new().await;
    let (daemon, p0) = pooled(&rig, 2).await;
    let pool = rig.pool_ports();
    // Neutron refuses the hand-over for now: the pod's port stays "pool" in Neutron.
    rig.cloud
        .faults()
        .fail_from("update_port", 1, ErrorKind::Unavailable);
    let web = rig.pod("web");
    daemon.handle(&web).await.expect("pooled ADD");
    let (_, web_port) = rig.bridge_port("c-web").expect("marked");
    assert!(pool.contains(&web_port), "served from the pool");
    // A real leftover: a container the runtime forgot, with its port and bridge port.
    let gone = rig.pod("gone");
    let daemon_without_pool = rig.daemon(0);
    daemon_without_pool.handle(&gone).await.expect("ADD");

    // The runtime lists p0 and web: the pool, web (mid-hand-over) and p0 stay; gone goes.
    daemon.handle(&gc(&[&p0, &web])).await.expect("GC");
    for id in &pool {
        assert!(
            rig.cloud
                .state()
                .ports
                .contains_key(&PortId::new(id.clone())),
            "GC deleted pooled port {id}"
        );
    }
    assert!(rig.pod_has_eth0(&web), "web lost its interface");
    assert!(rig.bridge_port("c-web").is_some());
    assert!(rig.ports_of("c-gone").is_empty(), "the leftover port stays");
    assert!(
        rig.bridge_port("c-gone").is_none(),
        "the leftover bridge port stays"
    );
    assert!(!rig.pod_has_eth0(&gone));

    // Even unlisted, a container whose hand-over is under way is busy, not garbage.
    daemon.handle(&gc(&[&p0])).await.expect("GC");
    assert!(
        rig.cloud
            .state()
            .ports
            .contains_key(&PortId::new(web_port.clone()))
    );

    // Once the runtime forgets it and nothing is under way, it goes, port and all.
    daemon.handle(&with(&web, Command::Del)).await.expect("DEL");
    assert!(!rig.cloud.state().ports.contains_key(&PortId::new(web_port)));
}

#[tokio::test]
async fn a_hand_over_outlasts_an_outage_and_a_restart_and_keeps_the_pods_name() {
    let rig = Rig::new().await;
    let (daemon, _) = pooled(&rig, 1).await;
    rig.cloud.faults().service_down(Service::Network, true);
    let web = rig.pod("web");
    let result = daemon
        .handle(&web)
        .await
        .expect("a pooled ADD needs no Neutron");
    assert!(ip(&result).starts_with("10.244."), "{result}");
    let (_, port) = rig.bridge_port("c-web").expect("marked");
    // The daemon dies (its hand-over with it); a new one starts while Neutron is still away.
    daemon.handovers.cancel("c-web");
    drop(daemon);
    let restarted = rig.daemon(1);
    let recovery = tokio::spawn(restarted.clone().recover_pool_until_done());
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        !recovery.is_finished(),
        "recovery cannot succeed without Neutron"
    );
    rig.cloud.faults().service_down(Service::Network, false);
    recovery.await.expect("recovery");
    eventually("the hand-over is finished", || {
        rig.ports_of("c-web").len() == 1 && restarted.handovers.is_empty()
    })
    .await;
    // The restarted daemon tops its pool up again (the port web took is web's now).
    eventually("the pool is refilled after the restart", || {
        rig.pool_ports().len() == 1 && restarted.pool.ready() == 1
    })
    .await;
    let port = rig.cloud.state().ports[&PortId::new(port)].clone();
    assert_eq!(port.name, format!("kube-{NS}-web"));
    assert!(
        port.tags.contains(&"stackube-owner=uid-web".to_owned()),
        "{:?}",
        port.tags
    );
    assert!(
        port.description.contains(&format!("Pod {NS}/web")),
        "{}",
        port.description
    );
}

#[tokio::test]
async fn a_del_right_after_a_pooled_add_does_not_wait_for_the_hand_over() {
    let rig = Rig::new().await;
    let (daemon, _) = pooled(&rig, 1).await;
    rig.cloud
        .faults()
        .hang("update_port", Duration::from_secs(600));
    let web = rig.pod("web");
    daemon.handle(&web).await.expect("pooled ADD");
    let (host_end, port) = rig.bridge_port("c-web").expect("marked");
    let del = tokio::time::timeout(
        Duration::from_secs(5),
        daemon.handle(&with(&web, Command::Del)),
    )
    .await
    .expect("DEL waited for the hand-over");
    del.expect("DEL");
    assert!(!rig.cloud.state().ports.contains_key(&PortId::new(port)));
    assert!(!rig.switch.ports().contains_key(&host_end));
    assert!(!rig.pod_has_eth0(&web));
    assert!(
        daemon.handovers.is_empty(),
        "the hand-over was not cancelled"
    );
}

#[tokio::test]
async fn recovery_keeps_the_pool_it_finds_and_makes_no_port_it_already_has() {
    let rig = Rig::new().await;
    let (daemon, _) = pooled(&rig, 2).await;
    let pool = rig.pool_ports();
    drop(daemon);
    let creates = rig.cloud.count("create_port");
    let restarted = rig.daemon(2);
    restarted.recover_pool().await.expect("recovery");
    let web = rig.pod("web");
    restarted.handle(&web).await.expect("ADD");
    let (_, port) = rig.bridge_port("c-web").expect("marked");
    assert!(pool.contains(&port), "served from the recovered pool");
    // Refilling makes one port (for the one taken), not a new pool.
    eventually("the port is handed over and the pool refilled", || {
        rig.ports_of("c-web").len() == 1 && rig.pool_ports().len() == 2
    })
    .await;
    assert_eq!(rig.cloud.count("create_port"), creates + 1);
}

/// `add` for a pod of namespace `namespace`.
fn in_namespace(add: &Invocation, namespace: &str) -> Invocation {
    let mut add = add.clone();
    add.pod.as_mut().expect("pod").namespace = namespace.into();
    add
}

#[tokio::test]
async fn a_pod_in_default_goes_on_the_cluster_network_in_the_admin_project() {
    for pool_size in [0, 2] {
        let rig = Rig::new().await;
        rig.networks
            .put_namespace("default", &[("kubernetes.io/metadata.name", "default")]);
        let cluster_net = rig.cluster_network(NetworkState::Active).await;
        let daemon = rig.daemon(pool_size);
        let add = in_namespace(&rig.pod("web"), "default");
        let result = daemon.handle(&add).await.expect("ADD");
        assert!(ip(&result).starts_with("10.246."), "{result}");
        assert_eq!(result["ips"][0]["gateway"], "10.246.0.1", "{result}");
        let (_, port_id) = rig.bridge_port("c-web").expect("plugged");
        let port = rig.cloud.state().ports[&PortId::new(port_id)].clone();
        assert_eq!(port.network_id, cluster_net, "pool {pool_size}");
        assert_eq!(
            port.project_id.as_ref(),
            Some(&rig.cloud.admin_project()),
            "pool {pool_size}: the port is the admin project's"
        );
        // The tenant's pods still go on the tenant's network.
        let tenant = daemon.handle(&rig.pod("app")).await.expect("tenant ADD");
        assert!(ip(&tenant).starts_with("10.244."), "{tenant}");
    }
}

#[tokio::test]
async fn a_pod_waits_for_its_network_with_a_message_that_says_which_and_starts_once_active() {
    // (namespace, labels, own Network, cluster Network) → try again later, naming the cause.
    type Case = (
        &'static str,
        &'static [(&'static str, &'static str)],
        Option<NetworkState>,
        Option<NetworkState>,
        &'static str,
    );
    let cases: [Case; 5] = [
        (
            "acme",
            &[(TENANT_LABEL, "acme")],
            Some(NetworkState::Pending),
            Some(NetworkState::Active),
            "the pod's Network acme/acme is not Active yet (Pending: namespace acme has no Keystone project yet)",
        ),
        (
            "acme",
            &[(TENANT_LABEL, "acme")],
            Some(NetworkState::Failed),
            None,
            "the pod's Network acme/acme is not Active yet (Failed)",
        ),
        (
            "acme",
            &[(TENANT_LABEL, "acme"), (PROJECT_LABEL, "p")],
            None,
            Some(NetworkState::Active),
            "namespace acme belongs to tenant acme, and its Network acme/acme does not exist yet",
        ),
        (
            "default",
            &[],
            None,
            Some(NetworkState::Pending),
            "the cluster Network stackube-cluster/cluster, which is not Active yet (Pending",
        ),
        (
            "default",
            &[],
            None,
            None,
            "the cluster Network stackube-cluster/cluster, which does not exist yet",
        ),
    ];
    for (namespace, labels, own, cluster_state, want) in cases {
        let rig = Rig::new().await;
        rig.networks.put_namespace(namespace, labels);
        if let Some(state) = cluster_state {
            rig.cluster_network(state).await;
        }
        if let Some(state) = own {
            rig.networks.put(network_object(
                namespace,
                namespace,
                "10.250.0.0/16",
                state,
                None,
            ));
        }
        let daemon = rig.daemon(2);
        let add = in_namespace(&rig.pod("web"), namespace);
        let err = daemon.handle(&add).await.expect_err(want);
        assert_eq!(err.code, crate::cni::code::TRY_AGAIN_LATER, "{want}");
        assert!(err.msg.contains(want), "{}", err.msg);
        assert!(
            rig.ports().iter().all(|p| p.device_id != "c-web"),
            "{want}: a port was made"
        );
        assert!(
            rig.switch.ports().is_empty(),
            "{want}: a bridge port was made"
        );
        assert!(!rig.pod_has_eth0(&add), "{want}");

        // Once the Network the message names is Active, the retried ADD puts the pod on it,
        // never on another.
        let (expected, cidr) = if own.is_some() || namespace != "default" {
            let ids = rig
                .neutron_network(
                    &format!("kube-{namespace}-{namespace}"),
                    "10.250.0.0/16",
                    None,
                )
                .await;
            rig.networks.put(network_object(
                namespace,
                namespace,
                "10.250.0.0/16",
                NetworkState::Active,
                Some((&ids.0, &ids.1)),
            ));
            (ids.0, "10.250.")
        } else {
            (rig.cluster_network(NetworkState::Active).await, "10.246.")
        };
        let result = daemon.handle(&add).await.expect("the retried ADD");
        assert!(ip(&result).starts_with(cidr), "{want}: {result}");
        let (_, port_id) = rig.bridge_port("c-web").expect("plugged");
        assert_eq!(
            rig.cloud.state().ports[&PortId::new(port_id)].network_id,
            expected,
            "{want}"
        );
    }
}

#[tokio::test]
async fn with_cluster_network_none_a_pod_of_no_tenant_is_refused_and_a_tenants_is_not() {
    let rig = Rig::new().await;
    rig.networks.put_namespace("default", &[]);
    // Even an Active cluster network left behind is not used.
    rig.cluster_network(NetworkState::Active).await;
    let daemon = rig.daemon_with(0, ClusterNetworkMode::None);
    let add = in_namespace(&rig.pod("web"), "default");
    let err = daemon.handle(&add).await.expect_err("refused");
    assert_eq!(err.code, crate::cni::code::NO_NETWORK);
    assert!(
        err.msg.contains(
            "namespace default is no tenant's (it has no Network default/default) and the cluster network is off (cluster-network: none)"
        ),
        "{}",
        err.msg
    );
    assert!(rig.ports().iter().all(|p| p.device_id != "c-web"));
    let tenant = daemon.handle(&rig.pod("app")).await.expect("tenant ADD");
    assert!(ip(&tenant).starts_with("10.244."), "{tenant}");
}

#[tokio::test]
async fn another_clusters_network_in_the_status_is_waited_out_not_used() {
    use stackube_openstack::network::TaggedResource;
    use tenant::Networks as _;
    let rig = Rig::new().await;
    let daemon = rig.daemon(0);
    let tag = |cluster: &str| vec!["stackube".to_owned(), format!("stackube-cluster={cluster}")];
    let network = NetworkId::new(
        rig.networks
            .get(NS, NS)
            .await
            .expect("the Network")
            .and_then(|n| n.status?.network_id)
            .expect("its status names a network"),
    );
    let neutron = rig.cloud.networking();
    let tagged = TaggedResource::Network(network.clone());
    neutron
        .replace_tags(&tagged, &tag("another"))
        .await
        .expect("tags");
    let add = rig.pod("web");
    let err = daemon
        .handle(&add)
        .await
        .expect_err("a network of another cluster");
    assert_eq!(err.code, crate::cni::code::TRY_AGAIN_LATER, "{err:?}");
    assert!(err.msg.contains("cluster another's"), "{}", err.msg);
    assert!(rig.ports_of("c-web").is_empty(), "a port was made");
    // This cluster's own network (the positive control): the retried ADD works.
    neutron
        .replace_tags(&tagged, &tag("test"))
        .await
        .expect("tags");
    daemon.handle(&add).await.expect("this cluster's network");
    assert_eq!(rig.ports_of("c-web").len(), 1);
}

#[tokio::test]
async fn a_pod_a_policy_isolates_gets_its_policy_groups_at_add_never_the_networks() {
    use stackube_core::netpol::plan::GroupKey;
    use stackube_core::netpol::sync::group_name;
    use stackube_core::ownership::{Owner, OwnerKind};

    let rig = Rig::new().await;
    let pod_object = |name: &str, app: &str| -> k8s_openapi::api::core::v1::Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "namespace": NS, "labels": {"app": app}},
            "spec": {"containers": [{"name": "c", "image": "nginx"}]},
        }))
        .expect("a pod")
    };
    {
        let mut pods = rig.networks.pods.lock().expect("lock");
        pods.push(pod_object("web", "web"));
        pods.push(pod_object("client", "client"));
    }
    rig.networks.policies.lock().expect("lock").push(
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "deny", "namespace": NS},
            "spec": {"podSelector": {"matchLabels": {"app": "web"}}, "policyTypes": ["Ingress"]},
        }))
        .expect("a policy"),
    );
    let daemon = rig.daemon(2);
    daemon.recover_pool().await.expect("recovery");

    // The controller has not made the isolated pods' group yet: try again later, no port.
    let web = rig.pod("web");
    let err = daemon
        .handle(&web)
        .await
        .expect_err("an isolated pod before its groups");
    assert_eq!(err.code, crate::cni::code::TRY_AGAIN_LATER, "{err:?}");
    assert!(rig.ports_of("c-web").is_empty());

    // Once it has, the port is made in the pod's groups: not the network's.
    let owner = Owner {
        cluster: "test".into(),
        kind: OwnerKind::Policy,
        display: format!("{NS}/{NS}"),
        uid: String::new(),
    };
    let mut made = Vec::new();
    for key in [GroupKey::Isolated, GroupKey::OpenEgress] {
        let group = rig
            .cloud
            .networking()
            .create_security_group(&NewSecurityGroup {
                name: group_name(&owner.display, &key),
                tags: owner.tags(),
                ..Default::default()
            })
            .await
            .expect("a policy group");
        made.push(group.id);
    }
    daemon.handle(&web).await.expect("the isolated pod's ADD");
    let ports = rig.ports_of("c-web");
    assert_eq!(ports.len(), 1);
    let mut groups = ports[0].security_group_ids.clone();
    groups.sort();
    made.sort();
    // The policy's own group is not made yet: the pod is allowed less until it is.
    assert_eq!(groups, made, "{ports:?}");
    assert!(!groups.contains(&rig.group));

    // The control: a pod no policy selects gets the network's group, from the pool.
    let client = rig.pod("client");
    daemon.handle(&client).await.expect("the client's ADD");
    let port = rig
        .ports()
        .into_iter()
        .find(|p| p.name.contains("client"))
        .expect("the client's port");
    assert_eq!(port.security_group_ids, vec![rig.group.clone()]);
}
