//! Before the runs and after them (whatever happened): what an earlier, failed run left is
//! removed, the benchmark's tenant is made, and at the end everything the benchmark made is
//! undone and checked gone.
//!
//! # Guarantees
//! - Undoing runs after a failure or a panic of the runs: a node without a pool is started (its
//!   daemon drops the node's pooled ports at start-up: Neutron port, bridge port, parked veth),
//!   every container still attached is DELeted, every namespace made is removed, the tenant is
//!   deleted by the node's controller (its network, with any port left on it), and a CNI GC
//!   removes what belongs to no sandbox containerd knows.
//! - Then Neutron holds no more pod ports, and `br-int` no more veths, than before the
//!   benchmark; if it does, the benchmark fails saying so.

use futures::FutureExt as _;
use kube::Api;
use serde_json::{Value, json};
use stackube_model::crd::Tenant;
use stackube_openstack::OpenStack;
use stackube_testenv::TestEnv;

use crate::common::{Baseline, Node, admin, create_tenants, delete_tenants, sandboxes};
use crate::daemon::wait_no_pool;
use crate::plugin::{Made, Plugin, netns_del};

/// Prefix of the benchmark's tenants (`unique_name("bench-cni")`): an earlier run's are deleted
/// at the start.
const TENANT_PREFIX: &str = "st-bench-cni-";

/// The state the benchmark starts from, and its tenant.
pub(crate) struct Setup {
    /// The cloud admin's connection.
    pub(crate) os: OpenStack,
    baseline: Baseline,
    /// The node whose controller makes the tenant.
    node: std::sync::Mutex<Option<Node>>,
}

/// A panic's message.
pub(crate) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_else(|| "a panic".into())
}

impl Setup {
    /// Removes what an earlier run left and records the baseline.
    pub(crate) async fn take(env: &TestEnv) -> anyhow::Result<Setup> {
        let os = admin(env).await;
        let node = Node::start(env).await;
        let dropped = wait_no_pool(&os).await?;
        eprintln!(
            "no pooled port of an earlier run left ({:.1} s)",
            dropped.as_secs_f64()
        );
        let client = stackube_kube::client(Some(&env.kubeconfig)).await?;
        let stale: Vec<String> = Api::<Tenant>::all(client.clone())
            .list(&Default::default())
            .await?
            .items
            .into_iter()
            .filter_map(|t| t.metadata.name)
            .filter(|n| n.starts_with(TENANT_PREFIX))
            .collect();
        if !stale.is_empty() {
            eprintln!(
                "deleting the tenants an earlier run left: {}",
                stale.join(", ")
            );
            let names: Vec<&str> = stale.iter().map(String::as_str).collect();
            delete_tenants(&client, &names).await;
        }
        let baseline = Baseline::take(env).await;
        Ok(Setup {
            os,
            baseline,
            node: std::sync::Mutex::new(Some(node)),
        })
    }

    /// Makes the benchmark's tenant and waits until it is Ready (a node's controller must run).
    pub(crate) async fn tenant(&self, tenant: &str) {
        create_tenants(&self.baseline.client, &[tenant]).await;
        let node = self.node.lock().unwrap_or_else(|e| e.into_inner()).take();
        drop(node);
    }

    /// Undoes what the benchmark made (see the module's guarantees).
    pub(crate) async fn undo(
        &self,
        env: &TestEnv,
        tenant: &str,
        made: &Made,
    ) -> anyhow::Result<()> {
        let undone = std::panic::AssertUnwindSafe(async {
            let setup_node = self.node.lock().unwrap_or_else(|e| e.into_inner()).take();
            drop(setup_node);
            let node = Node::start(env).await;
            wait_no_pool(&self.os).await?;
            let plugin = Plugin {
                socket: node.dir.join("kubestack.sock").display().to_string(),
                namespace: tenant.to_owned(),
            };
            for container in made.attached() {
                if let Err(e) = plugin.del(made, &container) {
                    eprintln!("cleanup: {e}");
                }
            }
            for netns in made.netns() {
                netns_del(made, &netns);
            }
            let client = &self.baseline.client;
            if Api::<Tenant>::all(client.clone())
                .get_opt(tenant)
                .await?
                .is_some()
            {
                delete_tenants(client, &[tenant]).await;
            }
            let mut gc = node.netconf();
            gc["cni.dev/valid-attachments"] = Value::Array(
                sandboxes(env)
                    .into_iter()
                    .map(|id| json!({"containerID": id, "ifname": "eth0"}))
                    .collect(),
            );
            let (ok, answer) = node.plugin(&[("CNI_COMMAND", "GC")], &gc);
            if !ok {
                eprintln!("cleanup: GC failed: {answer}");
            }
            drop(node);
            self.baseline.assert_clean().await;
            Ok::<(), anyhow::Error>(())
        })
        .catch_unwind()
        .await;
        let result = match undone {
            Ok(result) => result,
            Err(panic) => Err(anyhow::anyhow!("{}", panic_message(panic.as_ref()))),
        };
        if let Err(e) = &result {
            eprintln!("cleanup after the benchmark failed: {e:#}");
        }
        result
    }
}
