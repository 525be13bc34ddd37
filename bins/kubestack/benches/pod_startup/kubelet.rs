//! The kubelet's own view of a phase: its `/metrics`, read through kube-apiserver's node proxy
//! before the phase's first create request and once its pods are all Ready, give the mean time
//! of its runtime calls (containerd's RunPodSandbox, which runs kubestack's ADD, CreateContainer,
//! StartContainer) and of its first sync of each pod.

use stackube_testenv::bench::Exposition;
use stackube_testenv::{TestEnv, run_command};

const RUNTIME_OPS: &str = "kubelet_runtime_operations_duration_seconds";
const POD_WORKER: &str = "kubelet_pod_worker_duration_seconds";

/// The node's kubelet's metrics now.
pub(crate) fn scrape(env: &TestEnv) -> anyhow::Result<Exposition> {
    let mut kubectl = env.kubectl();
    kubectl.args([
        "get",
        "--raw",
        &format!("/api/v1/nodes/{}/proxy/metrics", env.node_name),
    ]);
    let (ok, out) = run_command(kubectl, None);
    anyhow::ensure!(ok, "reading the kubelet's /metrics: {out}");
    Ok(Exposition::parse(&out))
}

/// Mean seconds per call of the kubelet between two scrapes (NaN where it made none).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Means {
    /// RunPodSandbox: the sandbox, and its network (the CNI ADD) in it.
    pub(crate) run_sandbox: f64,
    /// CreateContainer and StartContainer, one after the other.
    pub(crate) container: f64,
    /// The pod worker's first sync of a pod (`operation_type="create"`): sandbox, network and
    /// container made.
    pub(crate) first_sync: f64,
}

impl Means {
    /// Between `before` and `after`.
    pub(crate) fn between(before: &Exposition, after: &Exposition) -> Means {
        let mean = |name: &str, label: (&str, &str)| {
            let d = |suffix: &str| {
                let series = format!("{name}_{suffix}");
                after.value(&series, &[label]) - before.value(&series, &[label])
            };
            let count = d("count");
            if count > 0.0 {
                d("sum") / count
            } else {
                f64::NAN
            }
        };
        Means {
            run_sandbox: mean(RUNTIME_OPS, ("operation_type", "run_podsandbox")),
            container: mean(RUNTIME_OPS, ("operation_type", "create_container"))
                + mean(RUNTIME_OPS, ("operation_type", "start_container")),
            first_sync: mean(POD_WORKER, ("operation_type", "create")),
        }
    }
}
