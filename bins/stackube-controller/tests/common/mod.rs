//! Shared harness of the controller's integration tests: the real test environment, the real
//! controller binary as a child process, and checks against Keystone, Neutron and kube-apiserver.
//!
//! Every test file is its own test binary and cargo runs binaries one after another; tests in one
//! file take [`serial`] because each starts a controller, and two controllers would contend for
//! the one leader lease (or, with different leases, for the same Tenants).

#![allow(dead_code, unreachable_pub)] // each test binary uses a different part of the harness

use std::collections::HashSet;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DeleteParams, PostParams};
use kube::{Client, CustomResourceExt, ResourceExt};
use stackube_core::ownership::{CLUSTER_TAG, OWNER_TAG, description_owner};
use stackube_model::ProjectId;
use stackube_model::crd::{Network, NetworkState, Tenant, TenantSpec};
use stackube_openstack::identity::{ProjectFilter, UserFilter};
use stackube_openstack::network::{
    FloatingIpFilter, NetworkFilter, PortFilter, RouterFilter, SecurityGroupFilter, SubnetFilter,
};
use stackube_openstack::{Credentials, OpenStack};
use stackube_testenv::TestEnv;
use tokio::sync::{Mutex, MutexGuard};

/// The `cluster-name` every test controller uses (the devbox's controller uses `stackube`).
pub const CLUSTER: &str = "stackube-test";

static SERIAL: Mutex<()> = Mutex::const_new(());

/// Holds the right to run a controller; take it first in every test of a file.
pub async fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().await
}

/// The environment's clients.
pub struct Env {
    /// Settings of `.testenv/env`.
    pub env: &'static TestEnv,
    /// kube-apiserver, as cluster admin.
    pub client: Client,
    /// OpenStack, as cloud admin.
    pub os: OpenStack,
}

/// Connects to the test environment and installs the CRDs.
pub async fn env() -> Env {
    let env = TestEnv::get();
    let client = stackube_kube::client(Some(&env.kubeconfig))
        .await
        .expect("kube client");
    for crd in [Tenant::crd(), Network::crd()] {
        stackube_kube::apply_crd(&client, &crd, Duration::from_secs(30))
            .await
            .expect("CRD installed");
    }
    let os = OpenStack::connect(&admin_credentials(env))
        .await
        .expect("OpenStack admin connection");
    Env { env, client, os }
}

/// The cloud admin's credentials.
pub fn admin_credentials(env: &TestEnv) -> Credentials {
    Credentials {
        auth_url: env.os_auth_url.clone(),
        username: env.os_username.clone(),
        password: env.os_password.clone().into(),
        project_name: env.os_project_name.clone(),
        project_id: None,
        user_domain_name: env.os_user_domain_name.clone(),
        project_domain_name: env.os_project_domain_name.clone(),
        region: Some(env.os_region_name.clone()),
    }
}

/// The controller configuration for the test environment (a YAML map of the seed's keys).
pub fn config_yaml(env: &TestEnv, extra: &[(&str, &str)]) -> String {
    env.config_yaml(CLUSTER, extra)
}

fn scratch_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "stackube-controller-test-{}-{}",
        std::process::id(),
        rand::random::<u32>()
    ));
    std::fs::create_dir_all(&dir).expect("scratch directory");
    dir
}

fn free_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
}

/// A `stackube-controller` process.
pub struct Controller {
    child: Option<Child>,
    /// Its /metrics address.
    pub metrics: SocketAddr,
    /// Its log (stderr).
    pub log: PathBuf,
    identity: String,
    config: PathBuf,
    kubeconfig: PathBuf,
}

impl Controller {
    /// Starts the controller with the test configuration (`extra` keys override it). The same
    /// `identity` after a kill takes the lease back at once, as a restarted pod would.
    pub fn start(env: &TestEnv, identity: &str, extra: &[(&str, &str)]) -> Controller {
        Controller::start_as(env, identity, &env.kubeconfig, extra)
    }

    /// [`Controller::start`] with another identity towards kube-apiserver (a ServiceAccount's
    /// kubeconfig, say).
    pub fn start_as(
        env: &TestEnv,
        identity: &str,
        kubeconfig: &std::path::Path,
        extra: &[(&str, &str)],
    ) -> Controller {
        let dir = scratch_dir();
        let config = dir.join("stackube.yaml");
        std::fs::write(&config, config_yaml(env, extra)).expect("config written");
        Controller::spawn(
            identity,
            kubeconfig.to_path_buf(),
            config,
            dir.join("controller.log"),
        )
    }

    fn spawn(identity: &str, kubeconfig: PathBuf, config: PathBuf, log: PathBuf) -> Controller {
        let metrics = free_port();
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_stackube-controller"))
            .arg("--config")
            .arg(&config)
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .arg("--metrics-addr")
            .arg(metrics.to_string())
            .arg("--identity")
            .arg(identity)
            .env("RUST_LOG", "info,stackube_controller=debug")
            .env_remove("STACKUBE_CONFIG")
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .expect("controller started");
        Controller {
            child: Some(child),
            metrics,
            log,
            identity: identity.to_owned(),
            config,
            kubeconfig,
        }
    }

    /// SIGKILL: no chance to clean up, as in a node failure.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills the process and starts it again with the same identity and configuration (`_env`
    /// only proves the environment is there).
    pub fn restart(&mut self, _env: &TestEnv) {
        self.kill();
        let next = Controller::spawn(
            &self.identity,
            self.kubeconfig.clone(),
            self.config.clone(),
            self.log.clone(),
        );
        *self = next;
    }

    /// The process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// GET /metrics (empty while the endpoint is not up).
    pub fn metrics_text(&self) -> String {
        http_get(self.metrics, "/metrics").unwrap_or_default()
    }

    /// Whether this replica holds the leader lease.
    pub fn is_leading(&self) -> bool {
        self.metrics_text()
            .lines()
            .any(|l| l.trim() == "stackube_controller_leader 1")
    }

    /// Waits until it leads.
    pub async fn wait_leading(&self) {
        wait_for(
            "the controller to lead",
            Duration::from_secs(60),
            || async { self.is_leading().then_some(()) },
        )
        .await;
    }

    /// Its log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        self.kill();
    }
}

fn http_get(addr: SocketAddr, path: &str) -> Option<String> {
    stackube_testenv::http_get(addr, path).map(|(_, body)| body)
}

/// Polls `f` every 250 ms until it returns `Some`, or panics naming `what` after `timeout`.
/// The timeout is a failure bound, not a performance assertion: durations are benchmarked.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = f().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// A Tenant named `name`.
pub fn tenant(name: &str, spec: TenantSpec) -> Tenant {
    Tenant::new(name, spec)
}

/// Creates a Tenant.
pub async fn create_tenant(client: &Client, tenant: &Tenant) -> Tenant {
    Api::<Tenant>::all(client.clone())
        .create(&PostParams::default(), tenant)
        .await
        .expect("tenant created")
}

/// Waits until the Tenant is Ready and returns it.
pub async fn wait_ready(client: &Client, name: &str, timeout: Duration) -> Tenant {
    let api = Api::<Tenant>::all(client.clone());
    wait_for(&format!("tenant {name} to be Ready"), timeout, || async {
        let t = api.get_opt(name).await.ok()??;
        let ready = t
            .status
            .as_ref()?
            .conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True");
        ready.then_some(t)
    })
    .await
}

/// The Tenant's condition `type_`, if set.
pub fn condition(tenant: &Tenant, type_: &str) -> Option<(String, String, String)> {
    tenant
        .status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}

/// Deletes the Tenant (if present) and waits until it is gone.
pub async fn delete_tenant(client: &Client, name: &str, timeout: Duration) {
    let api = Api::<Tenant>::all(client.clone());
    match api.delete(name, &DeleteParams::default()).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 404 => return,
        Err(e) => panic!("deleting tenant {name}: {e}"),
    }
    wait_for(&format!("tenant {name} to be deleted"), timeout, || async {
        api.get_opt(name).await.ok()?.is_none().then_some(())
    })
    .await;
}

/// The Network `<ns>/<name>`, once Active.
pub async fn wait_network_active(
    client: &Client,
    ns: &str,
    name: &str,
    timeout: Duration,
) -> Network {
    let api = Api::<Network>::namespaced(client.clone(), ns);
    wait_for(
        &format!("Network {ns}/{name} to be Active"),
        timeout,
        || async {
            let n = api.get_opt(name).await.ok()??;
            (n.status.as_ref()?.state == Some(NetworkState::Active)).then_some(n)
        },
    )
    .await
}

/// Whether namespace `name` exists.
pub async fn namespace_exists(client: &Client, name: &str) -> bool {
    Api::<Namespace>::all(client.clone())
        .get_opt(name)
        .await
        .expect("namespace readable")
        .is_some()
}

/// Everything in OpenStack still owned (by tag or description) by one of `uids` in the test
/// cluster: `kind name/id` lines; empty when nothing leaked.
pub async fn tagged(os: &OpenStack, uids: &HashSet<String>) -> Vec<String> {
    assert!(
        !uids.is_empty(),
        "a leak check against no owner proves nothing"
    );
    let neutron = os.networking();
    let identity = os.identity();
    let cluster = vec![format!("{CLUSTER_TAG}{CLUSTER}")];
    let owned = |tags: &[String]| {
        tags.iter()
            .filter_map(|t| t.strip_prefix(OWNER_TAG))
            .any(|uid| uids.contains(uid))
    };
    let described =
        |d: &str| description_owner(d, CLUSTER).is_some_and(|(_, uid)| uids.contains(uid));
    let mut found = Vec::new();
    for n in neutron
        .list_networks(&NetworkFilter::default())
        .await
        .expect("networks")
    {
        if owned(&n.tags) || described(&n.description) {
            found.push(format!("network {}/{}", n.name, n.id));
        }
    }
    for s in neutron
        .list_subnets(&SubnetFilter::default())
        .await
        .expect("subnets")
    {
        if owned(&s.tags) || described(&s.description) {
            found.push(format!("subnet {}/{}", s.name, s.id));
        }
    }
    for r in neutron
        .list_routers(&RouterFilter::default())
        .await
        .expect("routers")
    {
        if owned(&r.tags) || described(&r.description) {
            found.push(format!("router {}/{}", r.name, r.id));
        }
    }
    for p in neutron
        .list_ports(&PortFilter {
            tags: cluster.clone(),
            ..Default::default()
        })
        .await
        .expect("ports")
    {
        if owned(&p.tags) {
            found.push(format!("port {}/{}", p.name, p.id));
        }
    }
    for g in neutron
        .list_security_groups(&SecurityGroupFilter {
            tags: cluster.clone(),
            ..Default::default()
        })
        .await
        .expect("security groups")
    {
        if owned(&g.tags) {
            found.push(format!("security group {}/{}", g.name, g.id));
        }
    }
    for p in identity
        .list_projects(&ProjectFilter::default())
        .await
        .expect("projects")
    {
        if owned(&p.tags) || described(&p.description) {
            found.push(format!("project {}/{}", p.name, p.id));
        }
    }
    for u in identity
        .list_users(&UserFilter::default())
        .await
        .expect("users")
    {
        if described(&u.description) {
            found.push(format!("user {}/{}", u.name, u.id));
        }
    }
    found
}

/// Everything Neutron holds for one of `projects`, tagged or not (what Neutron made for a
/// project unasked, such as its `default` security group, included): `kind name/id` lines.
pub async fn project_resources(os: &OpenStack, projects: &HashSet<ProjectId>) -> Vec<String> {
    let neutron = os.networking();
    let mut found = Vec::new();
    for project in projects {
        let by = Some(project.clone());
        for n in neutron
            .list_networks(&NetworkFilter {
                project_id: by.clone(),
                ..Default::default()
            })
            .await
            .expect("networks")
        {
            found.push(format!("network {}/{} of project {project}", n.name, n.id));
        }
        for s in neutron
            .list_subnets(&SubnetFilter {
                project_id: by.clone(),
                ..Default::default()
            })
            .await
            .expect("subnets")
        {
            found.push(format!("subnet {}/{} of project {project}", s.name, s.id));
        }
        for r in neutron
            .list_routers(&RouterFilter {
                project_id: by.clone(),
                ..Default::default()
            })
            .await
            .expect("routers")
        {
            found.push(format!("router {}/{} of project {project}", r.name, r.id));
        }
        for p in neutron
            .list_ports(&PortFilter {
                project_id: by.clone(),
                ..Default::default()
            })
            .await
            .expect("ports")
        {
            found.push(format!("port {}/{} of project {project}", p.name, p.id));
        }
        for g in neutron
            .list_security_groups(&SecurityGroupFilter {
                project_id: by.clone(),
                ..Default::default()
            })
            .await
            .expect("security groups")
        {
            found.push(format!(
                "security group {}/{} of project {project}",
                g.name, g.id
            ));
        }
        for f in neutron
            .list_floating_ips(&FloatingIpFilter {
                project_id: by.clone(),
                ..Default::default()
            })
            .await
            .expect("floating IPs")
        {
            found.push(format!(
                "floating IP {}/{} of project {project}",
                f.floating_ip_address, f.id
            ));
        }
    }
    found
}

/// What Tenants owned, read before they are deleted, for the leak check [`leftovers`].
#[derive(Clone, Debug, Default)]
pub struct Owners {
    /// The uids of the Tenants and of their default Networks.
    pub uids: HashSet<String>,
    /// The Keystone projects Stackube made for them (not adopted ones).
    pub projects: HashSet<ProjectId>,
}

impl Owners {
    /// Adds `other`'s.
    pub fn extend(&mut self, other: Owners) {
        self.uids.extend(other.uids);
        self.projects.extend(other.projects);
    }
}

/// What Tenant `tenant` and its default Network own. Panics when either cannot be read, or
/// lacks what the leak check needs: a leak check must never compare against nothing.
pub async fn owners(client: &Client, tenant: &str) -> Owners {
    let t = Api::<Tenant>::all(client.clone())
        .get(tenant)
        .await
        .unwrap_or_else(|e| panic!("reading Tenant {tenant} for the leak check: {e}"));
    let n = Api::<Network>::namespaced(client.clone(), tenant)
        .get(tenant)
        .await
        .unwrap_or_else(|e| panic!("reading Network {tenant}/{tenant} for the leak check: {e}"));
    let mut owners = Owners::default();
    owners.uids.insert(t.uid().expect("the Tenant has a uid"));
    owners.uids.insert(n.uid().expect("the Network has a uid"));
    if t.spec.tenant_id.is_none() {
        let project = t
            .status
            .as_ref()
            .and_then(|s| s.project_id.clone())
            .unwrap_or_else(|| panic!("Tenant {tenant} has no status.projectID yet"));
        owners.projects.insert(ProjectId::new(project));
    }
    owners
}

/// Everything left of `owners` after their deletion: what carries their tags or descriptions,
/// and anything Neutron still holds for their projects. Empty when nothing leaked.
pub async fn leftovers(os: &OpenStack, owners: &Owners) -> Vec<String> {
    let mut found = tagged(os, &owners.uids).await;
    found.extend(project_resources(os, &owners.projects).await);
    found
}

/// Runs `kubectl` of the environment; returns (success, stdout+stderr).
pub fn kubectl(env: &TestEnv, args: &[&str], stdin: Option<&str>) -> (bool, String) {
    let mut command = env.kubectl();
    command.args(args);
    stackube_testenv::run_command(command, stdin)
}

/// The repository root.
pub fn repo_root() -> PathBuf {
    stackube_testenv::workspace_root()
}

/// Whether process `pid` is running: it exists and is neither a zombie nor dead.
pub fn process_running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        // `pid (comm) state ...`: comm may hold spaces and parentheses, the state follows the
        // last `) `.
        stat.rsplit_once(") ")
            .and_then(|(_, rest)| rest.chars().next())
            .is_some_and(|state| !matches!(state, 'Z' | 'X' | 'x'))
    })
}

impl Controller {
    /// Whether its process is still running (not exited, not a zombie).
    pub fn is_running(&self) -> bool {
        self.pid().is_some_and(process_running)
    }

    /// Its identity in the leader Lease.
    pub fn identity(&self) -> &str {
        &self.identity
    }
}

#[allow(unused_imports)] // not every test binary uses both
pub use stackube_testenv::{metric_value, testenv_command};

/// The Network's condition `type_`, if set: (status, reason, message).
pub fn network_condition(network: &Network, type_: &str) -> Option<(String, String, String)> {
    network
        .status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}

/// Whatever Neutron and Keystone hold under the names a Tenant `tenant` (with its default
/// Network, and `username` if it has one) gives them — owned by anyone: `kind name/id` lines.
pub async fn named_resources(os: &OpenStack, tenant: &str, username: Option<&str>) -> Vec<String> {
    let neutron = os.networking();
    let identity = os.identity();
    // The seed's names, spelled out rather than taken from the code under test.
    let network_name = format!("kube-{tenant}-{tenant}");
    let subnet_name = format!("kube-{tenant}-{tenant}-subnet");
    let router_name = format!("kube-{tenant}-{tenant}");
    let group_name = format!("kube-{tenant}-{tenant}");
    let mut found = Vec::new();
    for n in neutron
        .list_networks(&NetworkFilter {
            name: Some(network_name),
            ..Default::default()
        })
        .await
        .expect("networks")
    {
        found.push(format!("network {}/{}", n.name, n.id));
    }
    for s in neutron
        .list_subnets(&SubnetFilter {
            name: Some(subnet_name),
            ..Default::default()
        })
        .await
        .expect("subnets")
    {
        found.push(format!("subnet {}/{}", s.name, s.id));
    }
    for r in neutron
        .list_routers(&RouterFilter {
            name: Some(router_name),
            ..Default::default()
        })
        .await
        .expect("routers")
    {
        found.push(format!("router {}/{}", r.name, r.id));
    }
    for g in neutron
        .list_security_groups(&SecurityGroupFilter {
            name: Some(group_name),
            ..Default::default()
        })
        .await
        .expect("security groups")
    {
        found.push(format!("security group {}/{}", g.name, g.id));
    }
    for p in identity
        .list_projects(&ProjectFilter {
            name: Some(tenant.to_owned()),
            ..Default::default()
        })
        .await
        .expect("projects")
    {
        found.push(format!("project {}/{}", p.name, p.id));
    }
    if let Some(username) = username {
        for u in identity
            .list_users(&UserFilter {
                name: Some(username.to_owned()),
                ..Default::default()
            })
            .await
            .expect("users")
        {
            found.push(format!("user {}/{}", u.name, u.id));
        }
    }
    found
}
