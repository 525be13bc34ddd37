//! The devbox's workloads (deploy/, as `hack/devbox up` applies it), and taking them down as the
//! end-to-end tests and the benchmarks leave the environment: the other tests' own controllers
//! and daemons must not meet them.

use crate::{TestEnv, run_command};

/// `hack/devbox`'s `WORKLOADS`, the snapshot controller (a pod-network pod) first.
pub const WORKLOADS: [&str; 8] = [
    "deployment/snapshot-controller",
    "deployment/stackube-controller",
    "daemonset/stackube-auth",
    "daemonset/kubestack",
    "daemonset/stackube-proxy",
    "daemonset/stackube-dns",
    "deployment/stackube-csi-controller",
    "daemonset/stackube-csi-node",
];

/// Deletes the devbox's workloads and waits until their pods are gone. The snapshot controller
/// goes first and to its end (a foreground deletion waits for its pod), while kubestack still
/// tears its pod network down: with kubestack gone, its pod would stay Terminating for ever.
///
/// # Errors
/// The `kubectl` command that failed, with its output.
pub fn take_workloads_down(env: &TestEnv) -> Result<(), String> {
    let kubectl = |args: &[&str]| -> Result<(), String> {
        let mut command = env.kubectl();
        command.args(args);
        let (ok, out) = run_command(command, None);
        // With no pod left to wait for, `wait` says so and fails.
        if ok || out.contains("no matching resources") {
            Ok(())
        } else {
            Err(format!("kubectl {}: {out}", args.join(" ")))
        }
    };
    let delete = [
        "-n",
        "kube-system",
        "delete",
        "--ignore-not-found",
        "--wait=true",
        "--timeout=180s",
    ];
    let (first, rest) = WORKLOADS.split_at(1);
    let mut foreground = delete.to_vec();
    foreground.push("--cascade=foreground");
    foreground.extend(first);
    kubectl(&foreground)?;
    kubectl(&[&delete[..], rest].concat())?;
    kubectl(&[
        "-n",
        "kube-system",
        "wait",
        "--for=delete",
        "pod",
        "-l",
        "app.kubernetes.io/part-of=stackube",
        "--timeout=120s",
    ])
}
