//! kubectl login for tenants, end to end: `stackube kubeconfig` writes the entry, kubectl runs
//! `stackube credential` (this package's binary) for a Keystone token, the real kube-apiserver
//! asks stackube-auth (run here in-process, at the address kube-apiserver calls), and Kubernetes
//! RBAC decides with the RoleBindings the controller gives a tenant.

#[path = "../../stackube-auth/tests/common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use clap::Parser as _;
use common::*;
use stackube_testenv::{TestEnv, unique_name};

/// stackube-auth in this process, until dropped.
struct Webhook(tokio::task::JoinHandle<anyhow::Result<()>>);

impl Webhook {
    async fn start(env: &TestEnv) -> Webhook {
        // The address must be free: otherwise kube-apiserver would be talking to someone else.
        if let Err(e) = std::net::TcpListener::bind(&env.auth_listen) {
            panic!(
                "{} is taken ({e}): another stackube-auth runs (the devbox's? hack/test stops it)",
                env.auth_listen
            );
        }
        let mut argv = vec!["stackube-auth".to_owned()];
        argv.extend(webhook_args(env, free_port()));
        let args = stackube_auth::Args::try_parse_from(argv).expect("webhook flags");
        let task = tokio::spawn(stackube_auth::run(args));
        let started = Instant::now();
        while std::net::TcpStream::connect(&env.auth_listen).is_err() {
            assert!(
                !task.is_finished(),
                "stackube-auth stopped: {:?}",
                task.await
            );
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "stackube-auth not listening"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Webhook(task)
    }
}

impl Drop for Webhook {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// `stackube kubeconfig` for `vars`' user into `path`.
fn stackube_kubeconfig(env: &TestEnv, path: &Path, vars: &[(String, String)]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_stackube"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(vars.iter().map(|(k, v)| (k, v)))
        .args([
            "kubeconfig",
            "--kubeconfig",
            &path.display().to_string(),
            "--server=https://127.0.0.1:6443",
            "--certificate-authority",
            &env.k8s_ca_file.display().to_string(),
        ])
        .output()
        .expect("stackube runs");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(unique_name(name));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_log_in_with_keystone_and_see_only_their_namespace() {
    let _serial = serial().await;
    let env = TestEnv::get();
    let os = admin(env).await;
    let (ok, out) = kubectl_admin(
        env,
        &[
            "apply",
            "-f",
            &stackube_testenv::workspace_root()
                .join("deploy/auth/cloud-admin.yaml")
                .display()
                .to_string(),
        ],
        None,
    );
    assert!(ok, "deploy/auth/cloud-admin.yaml: {out}");
    let a = TenantUser::create(env, &os, "login-a", "member").await;
    let b = TenantUser::create(env, &os, "login-b", "member").await;
    let _webhook = Webhook::start(env).await;
    let dir = scratch("login");

    // Tenant a's user: a kubeconfig entry without the password in it.
    let kubeconfig = dir.join("a.kubeconfig");
    let vars = a.os_env(env);
    let (ok, out) = stackube_kubeconfig(env, &kubeconfig, &vars);
    assert!(ok, "stackube kubeconfig: {out}");
    let written = std::fs::read_to_string(&kubeconfig).expect("kubeconfig written");
    use secrecy::ExposeSecret as _;
    assert!(
        !written.contains(a.password.expose_secret()),
        "the password is in the kubeconfig"
    );

    let (ok, out) = kubectl_as(env, &kubeconfig, &vars, &["-n", &a.name, "get", "pods"]);
    assert!(ok, "tenant a in its namespace: {out}");
    let (ok, out) = kubectl_as(env, &kubeconfig, &vars, &["get", "pods"]);
    assert!(
        ok,
        "tenant a in the context's default namespace (its own): {out}"
    );
    let (ok, out) = kubectl_as(env, &kubeconfig, &vars, &["-n", &b.name, "get", "pods"]);
    assert!(
        !ok && forbidden(&out),
        "tenant a in tenant b's namespace: {out}"
    );
    let (ok, out) = kubectl_as(env, &kubeconfig, &vars, &["get", "nodes"]);
    assert!(!ok && forbidden(&out), "tenant a listing nodes: {out}");
    let (ok, out) = kubectl_as(env, &kubeconfig, &vars, &["auth", "whoami"]);
    assert!(ok && out.contains(&a.name), "whoami: {out}");

    // Without a password the plugin says which setting is missing.
    let no_password: Vec<_> = vars
        .iter()
        .filter(|(k, _)| k != "OS_PASSWORD")
        .cloned()
        .collect();
    let (ok, out) = kubectl_as(env, &kubeconfig, &no_password, &["get", "pods"]);
    assert!(!ok && out.contains("OS_PASSWORD is not set"), "{out}");
    // A wrong password: Keystone refuses, kubectl says so.
    let mut wrong = vars.clone();
    wrong
        .iter_mut()
        .filter(|(k, _)| k == "OS_PASSWORD")
        .for_each(|(_, v)| *v = "wrong".into());
    let (ok, out) = kubectl_as(env, &kubeconfig, &wrong, &["get", "pods"]);
    assert!(
        !ok && out.contains("Keystone refused the credentials"),
        "{out}"
    );

    // The cloud admin: everywhere.
    let admin_vars: Vec<(String, String)> = [
        ("OS_AUTH_URL", env.os_auth_url.as_str()),
        ("OS_USERNAME", env.os_username.as_str()),
        ("OS_PASSWORD", env.os_password.as_str()),
        ("OS_PROJECT_NAME", env.os_project_name.as_str()),
        ("OS_USER_DOMAIN_NAME", env.os_user_domain_name.as_str()),
        (
            "OS_PROJECT_DOMAIN_NAME",
            env.os_project_domain_name.as_str(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let admin_kubeconfig = dir.join("admin.kubeconfig");
    let (ok, out) = stackube_kubeconfig(env, &admin_kubeconfig, &admin_vars);
    assert!(ok, "stackube kubeconfig (admin): {out}");
    for args in [
        vec!["get", "nodes"],
        vec!["-n", &b.name, "get", "pods"],
        vec!["get", "namespaces"],
    ] {
        let (ok, out) = kubectl_as(env, &admin_kubeconfig, &admin_vars, &args);
        assert!(ok, "cloud admin {args:?}: {out}");
    }

    a.delete(env, &os).await;
    b.delete(env, &os).await;
    let _ = std::fs::remove_dir_all(&dir);
}
