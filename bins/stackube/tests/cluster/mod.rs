//! What the devbox's end-to-end tests share: `hack/devbox up` run, and undone whatever way the
//! test ends; `kubectl` as the cluster admin; tenants made and waited for.

#![allow(dead_code, unreachable_pub)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use stackube_testenv::{TestEnv, workspace_root};

use crate::common::kubectl_admin;

/// The devbox, up for one test. When the test ends, however it ends: its pods (`namespace`,
/// `name`) and its tenants deleted (while the devbox's controllers still run to clean them up),
/// then the devbox's workloads.
pub struct Devbox<'a> {
    pub env: &'a TestEnv,
    pub pods: Vec<(String, String)>,
    pub tenants: Vec<String>,
}

impl<'a> Devbox<'a> {
    /// Runs `hack/devbox up` (its output in `.testenv/<log>`) and returns the guard, or panics
    /// with the output. The guard exists before the assertion, so a half-made devbox goes too.
    pub fn up(
        env: &'a TestEnv,
        log: &str,
        pods: Vec<(String, String)>,
        tenants: Vec<String>,
    ) -> Devbox<'a> {
        let root = workspace_root();
        let log = root.join(".testenv").join(log);
        let up = Command::new(root.join("hack/devbox"))
            .arg("up")
            .stdout(std::fs::File::create(&log).expect("log"))
            .stderr(Stdio::from(
                std::fs::File::options()
                    .append(true)
                    .open(&log)
                    .expect("log"),
            ))
            .status()
            .expect("hack/devbox runs");
        let devbox = Devbox { env, pods, tenants };
        assert!(
            up.success(),
            "hack/devbox up failed:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        devbox
    }
}

impl Drop for Devbox<'_> {
    fn drop(&mut self) {
        for (namespace, pod) in &self.pods {
            let _ = kubectl_admin(
                self.env,
                &[
                    "-n",
                    namespace,
                    "delete",
                    "pod",
                    pod,
                    "--ignore-not-found",
                    "--wait=true",
                ],
                None,
            );
        }
        let mut args = vec![
            "delete",
            "tenant",
            "--ignore-not-found",
            "--wait=true",
            "--timeout=300s",
        ];
        args.extend(self.tenants.iter().map(String::as_str));
        if !self.tenants.is_empty() {
            let _ = kubectl_admin(self.env, &args, None);
        }
        // deploy/'s workloads, which the other tests' own controller and daemons must not meet.
        if let Err(e) = stackube_testenv::devbox::take_workloads_down(self.env) {
            eprintln!("taking the devbox's workloads down: {e}");
        }
    }
}

/// `kubectl` as the admin; its output, or a panic that shows it.
pub fn k(env: &TestEnv, args: &[&str]) -> String {
    let (ok, out) = kubectl_admin(env, args, None);
    assert!(ok, "kubectl {}: {out}", args.join(" "));
    out
}

/// `kubectl` as the admin with `stdin` (`create -f -`); its output, or a panic that shows it.
pub fn k_in(env: &TestEnv, args: &[&str], stdin: &str) -> String {
    let (ok, out) = kubectl_admin(env, args, Some(stdin));
    assert!(ok, "kubectl {}: {out}\n{stdin}", args.join(" "));
    out
}

/// `kubectl` arguments for `-n ns run -i --rm name --image=busybox --restart=Never -- cmd...`:
/// a busybox pod that runs `cmd`, attached, and goes.
pub fn busybox<'a>(ns: &'a str, name: &'a str, cmd: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "-n",
        ns,
        "run",
        "-i",
        "--rm",
        name,
        "--image=busybox",
        "--restart=Never",
        "--",
    ];
    args.extend(cmd);
    args
}

/// Polls `kubectl args` until its output satisfies `done` (three minutes at most).
pub fn k_until(env: &TestEnv, args: &[&str], what: &str, done: impl Fn(&str) -> bool) -> String {
    let started = Instant::now();
    loop {
        let (ok, out) = kubectl_admin(env, args, None);
        if ok && done(&out) {
            return out;
        }
        assert!(
            started.elapsed() < Duration::from_secs(180),
            "{what}: kubectl {} says {out}",
            args.join(" ")
        );
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// Waits until the Network of tenant `ns` is Active (its namespace may not exist yet).
pub fn network_active(env: &TestEnv, ns: &str) {
    k_until(
        env,
        &[
            "-n",
            ns,
            "get",
            "network",
            ns,
            "-o",
            "jsonpath={.status.state}",
        ],
        &format!("Network {ns}/{ns} Active"),
        |o| o == "Active",
    );
}

/// Creates the Tenant `name` (user `name`, password `pw-name`).
pub fn k_create_tenant(env: &TestEnv, name: &str) {
    let yaml = format!(
        "apiVersion: stackube.kubernetes.io/v1\nkind: Tenant\nmetadata:\n  name: {name}\nspec:\n  username: {name}\n  password: pw-{name}\n"
    );
    let (ok, out) = kubectl_admin(env, &["create", "-f", "-"], Some(&yaml));
    assert!(ok, "tenant {name}: {out}");
}

/// A kubeconfig for tenant `tenant`'s Keystone user (`stackube kubeconfig`, in a scratch
/// directory), with the `OS_*` variables its shell holds: what [`kubectl_as`] takes.
///
/// [`kubectl_as`]: crate::common::kubectl_as
pub fn tenant_kubeconfig(
    env: &TestEnv,
    tenant: &str,
    password: &str,
) -> (std::path::PathBuf, Vec<(String, String)>) {
    let dir = std::env::temp_dir().join(stackube_testenv::unique_name("kubeconfig"));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    let kubeconfig = dir.join(format!("{tenant}.kubeconfig"));
    let vars: Vec<(String, String)> = [
        ("OS_AUTH_URL", env.os_auth_url.as_str()),
        ("OS_USERNAME", tenant),
        ("OS_PASSWORD", password),
        ("OS_PROJECT_NAME", tenant),
        ("OS_USER_DOMAIN_NAME", "Default"),
        ("OS_PROJECT_DOMAIN_NAME", "Default"),
    ]
    .into_iter()
    .map(|(a, b)| (a.to_owned(), b.to_owned()))
    .collect();
    let out = Command::new(env!("CARGO_BIN_EXE_stackube"))
        .envs(vars.iter().map(|(a, b)| (a, b)))
        .args([
            "kubeconfig",
            "--kubeconfig",
            &kubeconfig.display().to_string(),
            "--server=https://127.0.0.1:6443",
        ])
        .arg(format!(
            "--certificate-authority={}",
            env.k8s_ca_file.display()
        ))
        .output()
        .expect("stackube kubeconfig");
    assert!(
        out.status.success(),
        "stackube kubeconfig: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (kubeconfig, vars)
}
