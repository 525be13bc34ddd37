//! Hard multi-tenancy on the devbox, as `deploy/` installs it (issue 14's runtime and Pod
//! Security parts): a tenant's pods run in its RuntimeClass whoever creates them (a user, a
//! Deployment), a pod naming another is refused with the tenant's named, and kube-system's pods
//! keep runc; Pod Security Admission refuses a tenant user's hostNetwork, privileged and
//! hostPath pods, and the user cannot relabel the namespace.
//!
//! The sandbox is checked from inside the pod: gVisor's kernel answers `/proc/version` with its
//! own text, not the host's. The positive control is a second tenant that takes the
//! configuration's default RuntimeClass (`runc` on the devbox): its pod, on the same node, read
//! the same way, sees the host's kernel. Each refusal has its
//! control too: the same user, the same command, a pod that asks for nothing forbidden.

mod cluster;
#[path = "../../stackube-auth/tests/common/mod.rs"]
mod common;

use cluster::{Devbox, k, k_create_tenant, k_in, k_until, network_active, tenant_kubeconfig};
use common::*;
use stackube_testenv::{TestEnv, unique_name};

/// A pod of busybox that sleeps, with `extra` spliced into its spec (YAML, indented by 2).
fn sleeper(namespace: &str, name: &str, extra: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: {namespace}\nspec:\n{extra}  containers:\n  - name: sleeper\n    image: busybox\n    command: [sleep, '3600']\n"
    )
}

/// The pod's RuntimeClass and the kernel its container sees, once it is Ready.
fn runtime_and_kernel(env: &TestEnv, namespace: &str, pod: &str) -> (String, String) {
    k(
        env,
        &[
            "-n",
            namespace,
            "wait",
            "--for=condition=Ready",
            &format!("pod/{pod}"),
            "--timeout=180s",
        ],
    );
    let class = k(
        env,
        &[
            "-n",
            namespace,
            "get",
            "pod",
            pod,
            "-o",
            "jsonpath={.spec.runtimeClassName}",
        ],
    );
    let kernel = k(
        env,
        &["-n", namespace, "exec", pod, "--", "cat", "/proc/version"],
    );
    (class.trim().to_owned(), kernel.trim().to_owned())
}

/// `kubectl create -f -` of `yaml` as the tenant user of `login`.
fn create_as(
    env: &TestEnv,
    login: &(std::path::PathBuf, Vec<(String, String)>),
    yaml: &str,
) -> (bool, String) {
    kubectl_as_in(env, &login.0, &login.1, &["create", "-f", "-"], Some(yaml))
}

#[test]
fn a_tenants_pods_run_in_its_runtime_and_within_its_pod_security() {
    let env = TestEnv::get();
    let sandboxed = unique_name("rt-gvisor");
    let plain = unique_name("rt-runc");
    let _devbox = Devbox::up(
        env,
        "runtimes-up.log",
        Vec::new(),
        vec![sandboxed.clone(), plain.clone()],
    );
    // The devbox's default-runtime-class is runc (hack/devbox says why): the gVisor tenant names
    // its class, the control tenant takes the default.
    k_in(
        env,
        &["create", "-f", "-"],
        &format!(
            "apiVersion: stackube.kubernetes.io/v1\nkind: Tenant\nmetadata:\n  name: {sandboxed}\nspec:\n  username: {sandboxed}\n  password: pw-{sandboxed}\n  runtimeClassName: gvisor\n"
        ),
    );
    k_create_tenant(env, &plain);
    network_active(env, &sandboxed);
    network_active(env, &plain);
    let labels = k(
        env,
        &[
            "get",
            "namespace",
            &sandboxed,
            "-o",
            "jsonpath={.metadata.labels}",
        ],
    );
    for label in [
        r#""stackube.kubernetes.io/runtime-class":"gvisor""#,
        r#""pod-security.kubernetes.io/enforce":"baseline""#,
    ] {
        assert!(labels.contains(label), "namespace {sandboxed}: {labels}");
    }

    // A pod that names no RuntimeClass gets the tenant's, and runs in gVisor; the control, in the
    // runc tenant, sees the host's kernel through the same check.
    let host = std::fs::read_to_string("/proc/version").expect("the host's /proc/version");
    k_in(
        env,
        &["create", "-f", "-"],
        &sleeper(&sandboxed, "sleeper", ""),
    );
    k_in(env, &["create", "-f", "-"], &sleeper(&plain, "sleeper", ""));
    let (class, kernel) = runtime_and_kernel(env, &plain, "sleeper");
    assert_eq!(class, "runc", "the runc tenant's pod");
    assert_eq!(
        kernel,
        host.trim(),
        "the runc tenant's pod sees the host's kernel"
    );
    let (class, kernel) = runtime_and_kernel(env, &sandboxed, "sleeper");
    assert_eq!(class, "gvisor", "a pod that named no RuntimeClass");
    assert_ne!(
        kernel,
        host.trim(),
        "the pod sees the host's kernel: not sandboxed"
    );
    assert!(!kernel.is_empty(), "no /proc/version in the sandbox");

    // A pod naming another RuntimeClass is refused, with the tenant's named.
    let (ok, out) = kubectl_admin(
        env,
        &["create", "-f", "-"],
        Some(&sleeper(&sandboxed, "escape", "  runtimeClassName: runc\n")),
    );
    assert!(
        !ok && out.contains("RuntimeClass gvisor") && out.contains("runc is refused"),
        "a pod naming runc in {sandboxed}: {out}"
    );

    // A Deployment's pods (made by the ReplicaSet controller) get it too.
    k(
        env,
        &[
            "-n",
            &sandboxed,
            "create",
            "deployment",
            "web",
            "--image=busybox",
            "--",
            "sleep",
            "3600",
        ],
    );
    k_until(
        env,
        &[
            "-n",
            &sandboxed,
            "get",
            "pods",
            "-l",
            "app=web",
            "-o",
            "jsonpath={.items[*].spec.runtimeClassName}",
        ],
        "the Deployment's pod, in gvisor",
        |o| o.trim() == "gvisor",
    );

    // kube-system's pods (Stackube's own) are left to the node's default, runc.
    let system = k(
        env,
        &[
            "-n",
            "kube-system",
            "get",
            "pods",
            "-l",
            "app.kubernetes.io/part-of=stackube",
            "-o",
            "jsonpath={range .items[*]}{.metadata.name}={.spec.runtimeClassName};{end}",
        ],
    );
    assert!(system.contains("stackube-controller"), "{system}");
    assert!(
        system
            .split(';')
            .filter(|p| !p.is_empty())
            .all(|p| p.ends_with('=')),
        "kube-system pods with a RuntimeClass: {system}"
    );

    // Pod Security (baseline), for the tenant's own user: host access refused, a plain pod
    // admitted (the control: the refusals are not a lack of permission).
    let login = tenant_kubeconfig(env, &sandboxed, &format!("pw-{sandboxed}"));
    let (ok, out) = create_as(env, &login, &sleeper(&sandboxed, "mine", ""));
    assert!(ok, "the tenant user's plain pod: {out}");
    let forbidden = [
        ("hostNetwork", "  hostNetwork: true\n"),
        ("privileged", ""),
        (
            "hostPath",
            "  volumes:\n  - name: root\n    hostPath: {path: /}\n",
        ),
    ];
    for (what, extra) in forbidden {
        let mut yaml = sleeper(&sandboxed, &format!("host-{}", what.to_lowercase()), extra);
        if what == "privileged" {
            yaml.push_str("    securityContext: {privileged: true}\n");
        }
        let (ok, out) = create_as(env, &login, &yaml);
        assert!(
            !ok && out.contains("violates PodSecurity") && out.contains(what),
            "the tenant user's {what} pod: {out}"
        );
    }
    let (ok, out) = kubectl_as(
        env,
        &login.0,
        &login.1,
        &[
            "label",
            "namespace",
            &sandboxed,
            "pod-security.kubernetes.io/enforce=privileged",
            "--overwrite",
        ],
    );
    assert!(
        !ok && out.contains("forbidden"),
        "the tenant user relabelling its namespace: {out}"
    );
    let (ok, out) = kubectl_as(env, &login.0, &login.1, &["get", "namespace", &sandboxed]);
    assert!(
        ok,
        "the tenant user reads its namespace (the control): {out}"
    );
}
