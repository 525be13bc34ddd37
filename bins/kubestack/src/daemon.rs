//! The node daemon: it holds the OpenStack session and a Kubernetes client, and does the work
//! of each CNI command the plugin hands it.
//!
//! ADD: the pod's namespace → its tenant `Network` (`<ns>/<ns>`, Active) → a Neutron port
//! `kube-<ns>-<pod>` on it, bound to this node (`binding:host_id`), owned by the pod
//! (`device_id` = the CNI container id, `device_owner` = `compute:kubestack`, Stackube's tags
//! with the pod's uid) → a veth whose pod end is the port (MAC, address, gateway, MTU) → the host
//! end on the integration bridge with `iface-id` → Neutron reports the port ACTIVE (bounded
//! wait) → the CNI result. Any failure undoes what this ADD created. A retried ADD reuses the
//! port it finds for the container.
//!
//! DEL: the container's ports (by `device_id`), their bridge ports and veths, then the Neutron
//! ports; anything already gone is fine. GC: the same for every container of this node that is
//! not in the runtime's list of valid attachments.

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ipnet::Ipv4Net;
use kube::Api;
use serde_json::{Value, json};
use stackube_core::ownership::{Owner, OwnerKind};
use stackube_model::ProjectId;
use stackube_model::crd::{Network, NetworkState};
use stackube_model::{NetworkId, PortId, SubnetId};
use stackube_net::ovs::{Bridge, CONTAINER_KEY};
use stackube_net::{NetError, veth};
use stackube_openstack::network::{NewPort, Port, PortFilter};
use stackube_openstack::{Cloud, ErrorKind, Networking, OpenStackError};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::Mutex;

use crate::cni::{CniError, Command, Invocation, code};
use crate::protocol::Response;

/// `device_owner` of pod ports.
pub const DEVICE_OWNER: &str = "compute:kubestack";
/// How long a tenant network's facts are reused.
const NETWORK_CACHE_TTL: Duration = Duration::from_secs(60);

/// The daemon's settings.
#[derive(Clone, Debug)]
pub struct Settings {
    /// This node's name: the Neutron agent's host (`binding:host_id`).
    pub node: String,
    /// The integration bridge (`integration-bridge`, `br-int`).
    pub bridge: String,
    /// `cluster-name`, for ownership tags.
    pub cluster: String,
    /// How long ADD waits for the port to become ACTIVE.
    pub active_timeout: Duration,
    /// Ports kept ready per tenant network used on this node (0: no pool).
    pub pool_size: usize,
}

/// `device_id` prefix of pooled ports: `kubestack-pool:<node>`.
pub const POOL_DEVICE_PREFIX: &str = "kubestack-pool:";
/// `external_ids:stackube-container` of pooled ports' bridge ports.
pub const POOL_CONTAINER: &str = "pool";

/// The parked end's name for a pooled port: `pk` and 11 characters of its id.
pub fn parked_link_name(port_id: &str) -> String {
    format!("pk{}", port_id.chars().take(11).collect::<String>())
}

/// A port of the pool: created, bound, plugged (its host end on the bridge) and ACTIVE, its
/// other end parked in the host's namespace.
#[derive(Clone, Debug)]
struct PoolPort {
    port: Port,
}

/// A tenant network's facts, as ADD needs them.
#[derive(Clone, Debug)]
struct TenantNet {
    network_id: NetworkId,
    project_id: Option<ProjectId>,
    cidr: Ipv4Net,
    gateway: Option<Ipv4Addr>,
    mtu: u32,
}

/// The daemon.
pub struct Daemon {
    settings: Settings,
    kube: kube::Client,
    cloud: Cloud,
    host: rtnetlink::Handle,
    bridge: Bridge,
    networks: Mutex<HashMap<String, (TenantNet, Instant)>>,
    /// One command at a time per container: a DEL that arrives while its ADD still runs (the
    /// runtime gave up on a plugin it killed) waits for it, rather than finding nothing to
    /// delete and letting the ADD finish into a leak.
    containers: std::sync::Mutex<HashMap<String, Arc<Mutex<()>>>>,
    /// Ready ports per tenant network.
    pool: Mutex<HashMap<NetworkId, Vec<PoolPort>>>,
    /// Networks whose pool is being refilled (one refill at a time per network).
    refilling: std::sync::Mutex<BTreeSet<NetworkId>>,
}

impl std::fmt::Debug for Daemon {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Daemon")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

fn openstack_error(what: &str, e: &OpenStackError) -> CniError {
    let code = if e.kind() == ErrorKind::Unavailable {
        code::TRY_AGAIN_LATER
    } else {
        code::OPENSTACK
    };
    CniError::new(code, format!("{what}: {e}"))
}

fn net_error(what: &str, e: &NetError) -> CniError {
    let code = match e {
        NetError::NoNetns(_) => code::UNKNOWN_CONTAINER,
        _ => code::NODE_NETWORKING,
    };
    CniError::new(code, format!("{what}: {e}"))
}

/// The pod interface `port` becomes on `net`: its address (with the subnet's prefix), MAC,
/// the network's MTU and gateway.
fn pod_link(
    port: &Port,
    net: &TenantNet,
    netns: &Path,
    if_name: &str,
) -> Result<veth::PodLink, CniError> {
    let ip = port
        .fixed_ips
        .iter()
        .find_map(|f| match f.ip_address {
            IpAddr::V4(ip) if net.cidr.contains(&ip) => Some(ip),
            _ => None,
        })
        .ok_or_else(|| {
            CniError::new(
                code::OPENSTACK,
                format!("port {} has no address in {}", port.id, net.cidr),
            )
        })?;
    let address = Ipv4Net::new(ip, net.cidr.prefix_len())
        .map_err(|e| CniError::new(code::OPENSTACK, format!("address {ip}: {e}")))?;
    let mac = veth::parse_mac(&port.mac_address).ok_or_else(|| {
        CniError::new(
            code::OPENSTACK,
            format!("port {} has MAC {:?}", port.id, port.mac_address),
        )
    })?;
    Ok(veth::PodLink {
        netns: netns.to_owned(),
        if_name: if_name.to_owned(),
        host_name: host_link_name(port.id.as_str()),
        mac,
        mtu: net.mtu,
        address,
        gateway: net.gateway,
    })
}

/// The host end's name for a port: `tap` and the first 11 characters of its id, as Nova names
/// them (15 bytes at most).
pub fn host_link_name(port_id: &str) -> String {
    format!("tap{}", port_id.chars().take(11).collect::<String>())
}

impl Daemon {
    /// A daemon with these parts.
    pub fn new(
        settings: Settings,
        kube: kube::Client,
        cloud: Cloud,
        host: rtnetlink::Handle,
    ) -> Self {
        let bridge = Bridge::new(settings.bridge.clone());
        Self {
            settings,
            kube,
            cloud,
            host,
            bridge,
            networks: Mutex::new(HashMap::new()),
            containers: std::sync::Mutex::new(HashMap::new()),
            pool: Mutex::new(HashMap::new()),
            refilling: std::sync::Mutex::new(BTreeSet::new()),
        }
    }

    /// The bridge's Stackube ports.
    async fn bridge_ports(&self) -> Result<Vec<stackube_net::ovs::BridgePort>, CniError> {
        self.bridge
            .stackube_ports()
            .await
            .map_err(|e| net_error("listing the bridge's pod ports", &e))
    }

    /// This node's pooled ports in Neutron.
    async fn pooled_ports(&self, networking: &dyn Networking) -> Result<Vec<Port>, CniError> {
        networking
            .list_ports(&PortFilter {
                device_id: Some(self.pool_device_id()),
                device_owner: Some(DEVICE_OWNER.to_owned()),
                binding_host_id: Some(self.settings.node.clone()),
                ..Default::default()
            })
            .await
            .map_err(|e| openstack_error("listing this node's pooled ports", &e))
    }

    fn pool_device_id(&self) -> String {
        format!("{POOL_DEVICE_PREFIX}{}", self.settings.node)
    }

    fn container_lock(&self, container_id: &str) -> Arc<Mutex<()>> {
        let mut containers = self.containers.lock().unwrap_or_else(|e| e.into_inner());
        // Forget locks nobody holds or waits for, so the map stays as small as the node's pods.
        containers.retain(|_, lock| Arc::strong_count(lock) > 1);
        containers
            .entry(container_id.to_owned())
            .or_default()
            .clone()
    }

    /// Serves the plugin on `socket` until the process ends.
    pub async fn serve(self: Arc<Self>, socket: &Path) -> anyhow::Result<()> {
        if let Some(dir) = socket.parent() {
            std::fs::create_dir_all(dir)?;
        }
        match std::fs::remove_file(socket) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
        let listener = UnixListener::bind(socket)?;
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o600))?;
        }
        tracing::info!(socket = %socket.display(), node = %self.settings.node, "serving the kubestack CNI plugin");
        loop {
            let (stream, _) = listener.accept().await?;
            let daemon = self.clone();
            tokio::spawn(async move { daemon.connection(stream).await });
        }
    }

    async fn connection(self: Arc<Self>, stream: UnixStream) {
        let (read, mut write) = stream.into_split();
        let mut line = String::new();
        if BufReader::new(read).read_line(&mut line).await.is_err() {
            return;
        }
        let response = match serde_json::from_str::<Invocation>(&line) {
            Ok(invocation) => match self.handle(&invocation).await {
                Ok(value) => Response::Result(value),
                Err(error) => Response::Error(error),
            },
            Err(e) => Response::Error(CniError::new(
                code::DECODING_FAILURE,
                format!("the daemon cannot read the plugin's request: {e}"),
            )),
        };
        let mut bytes = serde_json::to_vec(&response).unwrap_or_default();
        bytes.push(b'\n');
        let _ = write.write_all(&bytes).await;
    }

    /// Does one CNI command.
    pub async fn handle(self: &Arc<Self>, invocation: &Invocation) -> Result<Value, CniError> {
        let started = Instant::now();
        let lock = (!invocation.container_id.is_empty())
            .then(|| self.container_lock(&invocation.container_id));
        let mut guard = match lock {
            Some(lock) => Some(lock.lock_owned().await),
            None => None,
        };
        let result = match invocation.command {
            Command::Add => self.add(invocation, &mut guard).await,
            Command::Del => self
                .del(&invocation.container_id)
                .await
                .map(|()| Value::Null),
            Command::Check => self.check(invocation).await.map(|()| Value::Null),
            Command::Status => self.status().await.map(|()| Value::Null),
            Command::Gc => self.gc(invocation).await.map(|()| Value::Null),
            Command::Version => Ok(crate::cni::version_answer(Some(&invocation.cni_version))),
        };
        let pod = invocation
            .pod
            .as_ref()
            .map(|p| format!("{}/{}", p.namespace, p.name))
            .unwrap_or_default();
        match &result {
            Ok(_) => tracing::info!(
                command = ?invocation.command,
                container = %invocation.container_id,
                %pod,
                ms = started.elapsed().as_millis() as u64,
                "done"
            ),
            Err(e) => tracing::warn!(
                command = ?invocation.command,
                container = %invocation.container_id,
                %pod,
                code = e.code,
                error = %e.msg,
                "failed"
            ),
        }
        result.map_err(|e| e.version(&invocation.cni_version))
    }

    async fn networking(&self) -> Result<Arc<dyn Networking>, CniError> {
        self.cloud
            .networking()
            .await
            .map_err(|e| openstack_error("cannot connect to OpenStack", &e))
    }

    /// The tenant network of pods in `namespace`: its `Network` `<ns>/<ns>`.
    async fn tenant_network(&self, namespace: &str) -> Result<TenantNet, CniError> {
        if let Some((net, at)) = self.networks.lock().await.get(namespace)
            && at.elapsed() < NETWORK_CACHE_TTL
        {
            return Ok(net.clone());
        }
        let api: Api<Network> = Api::namespaced(self.kube.clone(), namespace);
        let network = api.get_opt(namespace).await.map_err(|e| {
            CniError::new(
                code::TRY_AGAIN_LATER,
                format!("cannot read Network {namespace}/{namespace}: {e}"),
            )
        })?;
        let Some(network) = network else {
            return Err(CniError::new(
                code::TRY_AGAIN_LATER,
                format!(
                    "namespace {namespace} has no Network {namespace}: it is not a tenant's \
                     namespace, or its tenant is still being created"
                ),
            ));
        };
        let status = network.status.unwrap_or_default();
        let (Some(NetworkState::Active), Some(network_id)) = (status.state, status.network_id)
        else {
            return Err(CniError::new(
                code::TRY_AGAIN_LATER,
                format!("Network {namespace}/{namespace} is not Active yet"),
            ));
        };
        let networking = self.networking().await?;
        let network_id = NetworkId::from(network_id);
        let neutron_network = networking
            .get_network(&network_id)
            .await
            .map_err(|e| openstack_error("reading the tenant network", &e))?;
        let subnet = match status.subnet_id {
            Some(id) => networking
                .get_subnet(&SubnetId::from(id))
                .await
                .map_err(|e| openstack_error("reading the tenant subnet", &e))?,
            None => {
                let subnets = networking
                    .list_subnets(&stackube_openstack::network::SubnetFilter {
                        network_id: Some(network_id.clone()),
                        ..Default::default()
                    })
                    .await
                    .map_err(|e| openstack_error("listing the tenant subnets", &e))?;
                subnets
                    .into_iter()
                    .find(|s| s.cidr.parse::<Ipv4Net>().is_ok())
                    .ok_or_else(|| {
                        CniError::new(
                            code::OPENSTACK,
                            format!("network {network_id} has no IPv4 subnet"),
                        )
                    })?
            }
        };
        let cidr: Ipv4Net = subnet.cidr.parse().map_err(|_| {
            CniError::new(
                code::OPENSTACK,
                format!("subnet {} has CIDR {:?}, not IPv4", subnet.id, subnet.cidr),
            )
        })?;
        let gateway = match subnet.gateway_ip {
            Some(IpAddr::V4(gateway)) => Some(gateway),
            _ => None,
        };
        let net = TenantNet {
            network_id,
            project_id: neutron_network.project_id.clone(),
            cidr,
            gateway,
            mtu: neutron_network.mtu.unwrap_or(1500),
        };
        self.networks
            .lock()
            .await
            .insert(namespace.to_owned(), (net.clone(), Instant::now()));
        Ok(net)
    }

    async fn container_ports(&self, container_id: &str) -> Result<Vec<Port>, CniError> {
        self.networking()
            .await?
            .list_ports(&PortFilter {
                device_id: Some(container_id.to_owned()),
                device_owner: Some(DEVICE_OWNER.to_owned()),
                ..Default::default()
            })
            .await
            .map_err(|e| openstack_error("listing the container's ports", &e))
    }

    async fn add(
        self: &Arc<Self>,
        invocation: &Invocation,
        guard: &mut Option<tokio::sync::OwnedMutexGuard<()>>,
    ) -> Result<Value, CniError> {
        let pod = invocation.pod.as_ref().ok_or_else(|| {
            CniError::new(code::INVALID_ENVIRONMENT, "CNI_ARGS: the pod is not named")
        })?;
        let netns = PathBuf::from(invocation.netns.as_deref().unwrap_or_default());
        let net = self.tenant_network(&pod.namespace).await?;
        if self.settings.pool_size > 0 {
            let result = self.add_from_pool(invocation, &net, &netns, guard).await;
            self.clone().refill(net.clone());
            if let Some(result) = result {
                return Ok(result);
            }
        }
        let networking = self.networking().await?;

        let existing = self.container_ports(&invocation.container_id).await?;
        let (port, created) = match existing
            .into_iter()
            .find(|p| p.network_id == net.network_id)
        {
            Some(port) => (port, false),
            None => {
                let owner = Owner {
                    cluster: self.settings.cluster.clone(),
                    kind: OwnerKind::Pod,
                    display: format!("{}/{}", pod.namespace, pod.name),
                    uid: if pod.uid.is_empty() {
                        invocation.container_id.clone()
                    } else {
                        pod.uid.clone()
                    },
                };
                let mut new = NewPort::new(
                    net.network_id.clone(),
                    format!("kube-{}-{}", pod.namespace, pod.name),
                );
                new.description = Some(owner.description());
                new.project_id = net.project_id.clone();
                new.device_id = Some(invocation.container_id.clone());
                new.device_owner = Some(DEVICE_OWNER.to_owned());
                new.binding_host_id = Some(self.settings.node.clone());
                new.tags = owner.tags();
                let port = networking
                    .create_port(&new)
                    .await
                    .map_err(|e| openstack_error("creating the pod's port", &e))?;
                (port, true)
            }
        };

        match self
            .plug(
                &port,
                &net,
                &netns,
                &invocation.if_name,
                &invocation.container_id,
            )
            .await
        {
            Ok(address) => Ok(self.result(invocation, &port, &net, address, &netns)),
            Err(error) => {
                self.unplug(&port).await;
                if created {
                    let _ = networking.delete_port(&port.id).await;
                }
                Err(error)
            }
        }
    }

    /// Puts `port`'s host end on the bridge, marked with `container`, and waits until Neutron
    /// has wired it.
    async fn attach_and_wait(
        &self,
        port: &Port,
        container: &str,
        what: &str,
    ) -> Result<(), CniError> {
        self.bridge
            .add_port(
                &host_link_name(port.id.as_str()),
                port.id.as_str(),
                &port.mac_address,
                container,
            )
            .await
            .map_err(|e| net_error(what, &e))?;
        self.wait_active(&port.id).await
    }

    /// Plumbs `port` into the pod and waits until Neutron has wired it.
    async fn plug(
        &self,
        port: &Port,
        net: &TenantNet,
        netns: &Path,
        if_name: &str,
        container_id: &str,
    ) -> Result<Ipv4Net, CniError> {
        let link = pod_link(port, net, netns, if_name)?;
        // A retried ADD may find the veth of an earlier attempt.
        veth::delete(&self.host, &link.host_name)
            .await
            .map_err(|e| net_error("removing an earlier attempt's veth", &e))?;
        veth::create(&self.host, &link)
            .await
            .map_err(|e| net_error("creating the pod's interface", &e))?;
        self.attach_and_wait(
            port,
            container_id,
            "attaching the pod to the integration bridge",
        )
        .await?;
        Ok(link.address)
    }

    async fn wait_active(&self, port_id: &PortId) -> Result<(), CniError> {
        let networking = self.networking().await?;
        let started = Instant::now();
        let mut delay = Duration::from_millis(50);
        loop {
            let port = networking
                .get_port(port_id)
                .await
                .map_err(|e| openstack_error("reading the pod's port", &e))?;
            if port.status == "ACTIVE" {
                return Ok(());
            }
            if started.elapsed() >= self.settings.active_timeout {
                return Err(CniError::new(
                    code::TRY_AGAIN_LATER,
                    format!(
                        "port {port_id} is still {} after {:?}: is the Open vSwitch agent of node {} alive?",
                        port.status, self.settings.active_timeout, self.settings.node
                    ),
                ));
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_millis(250));
        }
    }

    /// Removes the bridge port and veth named `name` (a veth's host end).
    async fn remove_host_end(&self, name: &str) -> Result<(), CniError> {
        self.bridge
            .del_port(name)
            .await
            .map_err(|e| net_error("removing a bridge port", &e))?;
        veth::delete(&self.host, name)
            .await
            .map_err(|e| net_error("removing a veth", &e))
    }

    /// Removes `port`'s bridge port and veth (not the Neutron port), logging what fails.
    async fn unplug(&self, port: &Port) {
        if let Err(e) = self
            .remove_host_end(&host_link_name(port.id.as_str()))
            .await
        {
            tracing::warn!(port = %port.id, error = %e.msg, "cannot unplug the port");
        }
    }

    fn result(
        &self,
        invocation: &Invocation,
        port: &Port,
        net: &TenantNet,
        address: Ipv4Net,
        netns: &Path,
    ) -> Value {
        let mut ip = json!({ "address": address.to_string(), "interface": 1 });
        let mut routes = Vec::new();
        if let Some(gateway) = net.gateway {
            ip["gateway"] = json!(gateway.to_string());
            routes.push(json!({ "dst": "0.0.0.0/0", "gw": gateway.to_string() }));
        }
        json!({
            "cniVersion": invocation.cni_version,
            "interfaces": [
                { "name": host_link_name(port.id.as_str()) },
                { "name": invocation.if_name, "mac": port.mac_address, "sandbox": netns.display().to_string() },
            ],
            "ips": [ip],
            "routes": routes,
            "dns": {},
        })
    }

    async fn del(&self, container_id: &str) -> Result<(), CniError> {
        let networking = self.networking().await?;
        for port in self.container_ports(container_id).await? {
            self.unplug(&port).await;
            networking
                .delete_port(&port.id)
                .await
                .map_err(|e| openstack_error("deleting the pod's port", &e))?;
        }
        // Bridge ports whose Neutron port is already gone.
        let ours = self.bridge_ports().await?;
        for port in ours
            .iter()
            .filter(|p| p.external_ids.get(CONTAINER_KEY).map(String::as_str) == Some(container_id))
        {
            self.remove_host_end(&port.name).await?;
        }
        Ok(())
    }

    async fn check(&self, invocation: &Invocation) -> Result<(), CniError> {
        let ports = self.container_ports(&invocation.container_id).await?;
        let Some(port) = ports.first() else {
            return Err(CniError::new(
                code::INTERFACE_MISMATCH,
                format!("container {} has no Neutron port", invocation.container_id),
            ));
        };
        if port.status != "ACTIVE" {
            return Err(CniError::new(
                code::INTERFACE_MISMATCH,
                format!("port {} is {}, not ACTIVE", port.id, port.status),
            ));
        }
        let netns = PathBuf::from(invocation.netns.as_deref().unwrap_or_default());
        let state = veth::inspect(&netns, &invocation.if_name)
            .await
            .map_err(|e| net_error("inspecting the pod's interface", &e))?
            .ok_or_else(|| {
                CniError::new(
                    code::INTERFACE_MISMATCH,
                    format!(
                        "{} does not exist in {}",
                        invocation.if_name,
                        netns.display()
                    ),
                )
            })?;
        if state.mac.map(|m| veth::format_mac(&m)).as_deref() != Some(port.mac_address.as_str()) {
            return Err(CniError::new(
                code::INTERFACE_MISMATCH,
                format!(
                    "{} does not have the port's MAC {}",
                    invocation.if_name, port.mac_address
                ),
            ));
        }
        for fixed in &port.fixed_ips {
            if let IpAddr::V4(ip) = fixed.ip_address
                && !state.addresses.iter().any(|a| a.addr() == ip)
            {
                return Err(CniError::new(
                    code::INTERFACE_MISMATCH,
                    format!("{} lacks the port's address {ip}", invocation.if_name),
                ));
            }
        }
        if !state.up {
            return Err(CniError::new(
                code::INTERFACE_MISMATCH,
                format!("{} is down", invocation.if_name),
            ));
        }
        Ok(())
    }

    /// ADD served from the pool: the parked end moves into the pod, the bridge port is marked
    /// with the container, and the result is answered at once. The Neutron port is renamed and
    /// re-owned (device_id, tags) afterwards, still under the container's lock, so a DEL that
    /// follows finds it. `None` when the pool has nothing ready (or a pooled port failed, which
    /// is then dropped).
    async fn add_from_pool(
        self: &Arc<Self>,
        invocation: &Invocation,
        net: &TenantNet,
        netns: &Path,
        guard: &mut Option<tokio::sync::OwnedMutexGuard<()>>,
    ) -> Option<Value> {
        let pooled = self.pool.lock().await.get_mut(&net.network_id)?.pop()?;
        let port = pooled.port;
        let plugged = async {
            let link = pod_link(&port, net, netns, &invocation.if_name).map_err(|e| e.msg)?;
            veth::adopt_parked(&self.host, &parked_link_name(port.id.as_str()), &link)
                .await
                .map_err(|e| e.to_string())?;
            self.bridge
                .mark_container(&link.host_name, &invocation.container_id)
                .await
                .map_err(|e| e.to_string())?;
            Ok::<_, String>(link.address)
        }
        .await;
        let address = match plugged {
            Ok(address) => address,
            Err(why) => {
                tracing::warn!(port = %port.id, error = %why, "a pooled port could not be used; dropping it");
                self.drop_pool_port(&port).await;
                return None;
            }
        };
        let result = self.result(invocation, &port, net, address, netns);
        tracing::info!(port = %port.id, container = %invocation.container_id, "ADD served from the pool");
        // The Neutron side follows, holding the container's lock.
        let held = guard.take();
        let daemon = self.clone();
        let pod = invocation.pod.clone().unwrap_or_default();
        let container = invocation.container_id.clone();
        tokio::spawn(async move {
            let _held = held;
            daemon.own_pooled_port(&port, &pod, &container).await;
        });
        Some(result)
    }

    /// Gives a pooled port to its pod in Neutron: device_id, name, tags.
    async fn own_pooled_port(&self, port: &Port, pod: &crate::cni::PodRef, container: &str) {
        let Ok(networking) = self.networking().await else {
            return;
        };
        let owner = Owner {
            cluster: self.settings.cluster.clone(),
            kind: OwnerKind::Pod,
            display: format!("{}/{}", pod.namespace, pod.name),
            uid: if pod.uid.is_empty() {
                container.to_owned()
            } else {
                pod.uid.clone()
            },
        };
        let update = stackube_openstack::network::PortUpdate {
            name: Some(format!("kube-{}-{}", pod.namespace, pod.name)),
            device_id: Some(container.to_owned()),
            ..Default::default()
        };
        for attempt in 0..5u32 {
            let done = async {
                networking.update_port(&port.id, &update).await?;
                networking
                    .replace_tags(
                        &stackube_openstack::network::TaggedResource::Port(port.id.clone()),
                        &owner.tags(),
                    )
                    .await
            }
            .await;
            match done {
                Ok(_) => return,
                Err(e) => {
                    tracing::warn!(port = %port.id, attempt, error = %e, "cannot give the pooled port to its pod yet");
                    tokio::time::sleep(Duration::from_millis(500 << attempt)).await;
                }
            }
        }
    }

    /// Removes a pooled port entirely (bridge port, veth, Neutron port).
    async fn drop_pool_port(&self, port: &Port) {
        self.unplug(port).await;
        let _ = veth::delete(&self.host, &parked_link_name(port.id.as_str())).await;
        if let Ok(networking) = self.networking().await {
            let _ = networking.delete_port(&port.id).await;
        }
    }

    /// Tops the pool of `net` up to `pool_size` in the background (one refill per network).
    fn refill(self: Arc<Self>, net: TenantNet) {
        {
            let mut refilling = self.refilling.lock().unwrap_or_else(|e| e.into_inner());
            if !refilling.insert(net.network_id.clone()) {
                return;
            }
        }
        tokio::spawn(async move {
            loop {
                let have = self
                    .pool
                    .lock()
                    .await
                    .get(&net.network_id)
                    .map_or(0, Vec::len);
                if have >= self.settings.pool_size {
                    break;
                }
                match self.new_pool_port(&net).await {
                    Ok(port) => self
                        .pool
                        .lock()
                        .await
                        .entry(net.network_id.clone())
                        .or_default()
                        .push(PoolPort { port }),
                    Err(e) => {
                        tracing::warn!(network = %net.network_id, error = %e.msg, "cannot refill the port pool");
                        break;
                    }
                }
            }
            self.refilling
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&net.network_id);
        });
    }

    /// Creates, plugs and waits for one pooled port of `net`.
    async fn new_pool_port(&self, net: &TenantNet) -> Result<Port, CniError> {
        let networking = self.networking().await?;
        let owner = Owner {
            cluster: self.settings.cluster.clone(),
            kind: OwnerKind::Pod,
            display: format!("pool of node {}", self.settings.node),
            uid: self.pool_device_id(),
        };
        let mut new = NewPort::new(
            net.network_id.clone(),
            format!("kube-pool-{}", self.settings.node),
        );
        new.description = Some(owner.description());
        new.project_id = net.project_id.clone();
        new.device_id = Some(self.pool_device_id());
        new.device_owner = Some(DEVICE_OWNER.to_owned());
        new.binding_host_id = Some(self.settings.node.clone());
        new.tags = owner.tags();
        let port = networking
            .create_port(&new)
            .await
            .map_err(|e| openstack_error("creating a pooled port", &e))?;
        let plugged = async {
            let mac = veth::parse_mac(&port.mac_address).ok_or_else(|| {
                CniError::new(
                    code::OPENSTACK,
                    format!("port {} has MAC {:?}", port.id, port.mac_address),
                )
            })?;
            let host_name = host_link_name(port.id.as_str());
            veth::create_parked(
                &self.host,
                &host_name,
                &parked_link_name(port.id.as_str()),
                mac,
                net.mtu,
            )
            .await
            .map_err(|e| net_error("creating a parked veth", &e))?;
            self.attach_and_wait(
                &port,
                POOL_CONTAINER,
                "attaching a pooled port to the bridge",
            )
            .await
        }
        .await;
        match plugged {
            Ok(()) => Ok(port),
            Err(e) => {
                self.drop_pool_port(&port).await;
                Err(e)
            }
        }
    }

    /// At start-up: takes back this node's pooled ports whose parked end and bridge port are
    /// still there (up to `pool_size` per network: a daemon started without a pool deletes
    /// them); finishes handing over those a crash left half-given to a pod; deletes the rest. Nothing is leaked, and nothing that is fine is recreated.
    pub async fn recover_pool(&self) -> Result<(), CniError> {
        let networking = self.networking().await?;
        let ports = self.pooled_ports(networking.as_ref()).await?;
        let bridge_ports = self.bridge_ports().await?;
        let (mut kept, mut given, mut dropped) = (0, 0, 0);
        for port in ports {
            let host_name = host_link_name(port.id.as_str());
            let marked = bridge_ports
                .iter()
                .find(|b| b.name == host_name)
                .and_then(|b| b.external_ids.get(CONTAINER_KEY).cloned());
            let parked = veth::find(&self.host, &parked_link_name(port.id.as_str()))
                .await
                .map_err(|e| net_error("looking for a parked veth", &e))?
                .is_some();
            match marked.as_deref() {
                Some(POOL_CONTAINER)
                    if parked
                        && port.status == "ACTIVE"
                        && self
                            .pool
                            .lock()
                            .await
                            .get(&port.network_id)
                            .map_or(0, Vec::len)
                            < self.settings.pool_size =>
                {
                    self.pool
                        .lock()
                        .await
                        .entry(port.network_id.clone())
                        .or_default()
                        .push(PoolPort { port });
                    kept += 1;
                }
                Some(container) if container != POOL_CONTAINER => {
                    // A pod has it; the crash came before Neutron was told.
                    let pod = crate::cni::PodRef::default();
                    self.own_pooled_port(&port, &pod, container).await;
                    given += 1;
                }
                _ => {
                    self.drop_pool_port(&port).await;
                    dropped += 1;
                }
            }
        }
        tracing::info!(kept, given, dropped, "pooled ports recovered");
        Ok(())
    }

    /// Forgets pooled ports Neutron no longer has (their network was deleted with its tenant),
    /// removing their bridge ports and veths.
    pub async fn prune_pool(&self) -> Result<(), CniError> {
        let networking = self.networking().await?;
        let alive: BTreeSet<String> = self
            .pooled_ports(networking.as_ref())
            .await?
            .into_iter()
            .map(|p| p.id.to_string())
            .collect();
        self.pool
            .lock()
            .await
            .values_mut()
            .for_each(|ports| ports.retain(|p| alive.contains(p.port.id.as_str())));
        let bridge_ports = self.bridge_ports().await?;
        for stale in bridge_ports.iter().filter(|b| {
            b.external_ids.get(CONTAINER_KEY).map(String::as_str) == Some(POOL_CONTAINER)
                && !b
                    .external_ids
                    .get("iface-id")
                    .is_some_and(|id| alive.contains(id))
        }) {
            let port_id = stale
                .external_ids
                .get("iface-id")
                .cloned()
                .unwrap_or_default();
            tracing::info!(port = %port_id, "pooled port gone from Neutron; removing its veth");
            self.remove_host_end(&stale.name).await?;
        }
        Ok(())
    }

    async fn status(&self) -> Result<(), CniError> {
        self.cloud.connect().await.map(|_| ()).map_err(|e| {
            CniError::new(
                code::PLUGIN_NOT_AVAILABLE,
                format!("cannot reach OpenStack: {e}"),
            )
        })
    }

    /// Removes the pod ports of this node whose container is not among the valid attachments.
    async fn gc(&self, invocation: &Invocation) -> Result<(), CniError> {
        let valid: BTreeSet<&str> = invocation
            .valid_attachments
            .iter()
            .map(|(c, _)| c.as_str())
            .collect();
        let mut stale: BTreeSet<String> = BTreeSet::new();
        let ports = self
            .networking()
            .await?
            .list_ports(&PortFilter {
                device_owner: Some(DEVICE_OWNER.to_owned()),
                binding_host_id: Some(self.settings.node.clone()),
                ..Default::default()
            })
            .await
            .map_err(|e| openstack_error("listing this node's pod ports", &e))?;
        stale.extend(
            ports
                .iter()
                .map(|p| p.device_id.clone())
                .filter(|c| !valid.contains(c.as_str())),
        );
        let bridge_ports = self.bridge_ports().await?;
        stale.extend(
            bridge_ports
                .iter()
                .filter_map(|p| p.external_ids.get(CONTAINER_KEY).cloned())
                .filter(|c| c != POOL_CONTAINER && !valid.contains(c.as_str())),
        );
        for container in &stale {
            tracing::info!(container = %container, "garbage: the runtime no longer knows this container");
            self.del(container).await?;
        }
        self.prune_pool().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_link_names_fit_the_kernel_limit() {
        let name = host_link_name("3f9c2a1e-7b4d-4c2a-9e1f-0a1b2c3d4e5f");
        assert_eq!(name, "tap3f9c2a1e-7b");
        assert!(name.len() <= 15);
    }
}
