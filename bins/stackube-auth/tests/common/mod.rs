//! Fixtures shared by the stackube-auth tests and the `stackube` login tests (which include
//! this file by path): Keystone users in projects, their tenant namespaces with the RoleBindings
//! the controller makes, tokens, and `kubectl` as someone else.

#![allow(dead_code, unreachable_pub)]

use std::path::Path;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use stackube_openstack::identity::{NewProject, NewUser};
use stackube_openstack::tokens::{DomainSelector, KeystoneTokens, Selector, UserCredentials};
use stackube_openstack::{Credentials, OpenStack};
use stackube_testenv::{TestEnv, run_command, unique_name};

/// Serializes the tests of one binary: they share the webhook address kube-apiserver calls.
pub async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    LOCK.lock().await
}

/// The cloud admin's OpenStack connection.
pub async fn admin(env: &TestEnv) -> OpenStack {
    OpenStack::connect(&Credentials {
        auth_url: env.os_auth_url.clone(),
        username: env.os_username.clone(),
        password: env.os_password.clone().into(),
        project_name: env.os_project_name.clone(),
        project_id: None,
        user_domain_name: env.os_user_domain_name.clone(),
        project_domain_name: env.os_project_domain_name.clone(),
        region: Some(env.os_region_name.clone()),
    })
    .await
    .expect("OpenStack admin connection")
}

/// A Keystone project and a user holding `role` on it, with the tenant namespace (same name)
/// and the RoleBindings `stackube-controller` gives a tenant (`stackube_core::identity`).
#[derive(Debug)]
pub struct TenantUser {
    pub name: String,
    pub project_id: String,
    pub user_id: String,
    pub password: SecretString,
    /// Set by [`TenantUser::delete`]; otherwise (a test that failed before it) dropping deletes.
    deleted: bool,
}

impl TenantUser {
    pub async fn create(env: &TestEnv, os: &OpenStack, prefix: &str, role: &str) -> TenantUser {
        let name = unique_name(prefix);
        let identity = os.identity();
        let project = identity
            .create_project(&NewProject {
                name: name.clone(),
                description: Some("stackube-auth test".into()),
                ..Default::default()
            })
            .await
            .expect("project created");
        let password = SecretString::from(format!("pw-{}", unique_name("x")));
        let user = identity
            .create_user(&NewUser {
                name: name.clone(),
                password: password.clone(),
                domain_id: None,
                default_project_id: Some(project.id.clone()),
                description: Some("stackube-auth test".into()),
            })
            .await
            .expect("user created");
        let role = identity.find_role(role).await.expect("role exists");
        identity
            .grant_project_role(&project.id, &user.id, &role.id)
            .await
            .expect("role granted");
        let tenant = TenantUser {
            name,
            project_id: project.id.to_string(),
            user_id: user.id.to_string(),
            password,
            deleted: false,
        };
        tenant.create_namespace(env);
        tenant
    }

    fn create_namespace(&self, env: &TestEnv) {
        let labels = std::collections::BTreeMap::new();
        let mut docs = vec![serde_json::json!({
            "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": self.name},
        })];
        for binding in stackube_core::identity::tenant_role_bindings(
            &self.name,
            &self.project_id,
            &labels,
            stackube_core::tenant::Access::Granted,
        ) {
            let mut value = serde_json::to_value(&binding).expect("binding serializes");
            value["apiVersion"] = "rbac.authorization.k8s.io/v1".into();
            value["kind"] = "RoleBinding".into();
            docs.push(value);
        }
        let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": docs});
        let (ok, out) = kubectl_admin(env, &["apply", "-f", "-"], Some(&list.to_string()));
        assert!(ok, "namespace and RoleBindings of {}: {out}", self.name);
    }

    /// The `OS_*` variables a tenant would have.
    pub fn os_env(&self, env: &TestEnv) -> Vec<(String, String)> {
        [
            ("OS_AUTH_URL", env.os_auth_url.as_str()),
            ("OS_USERNAME", self.name.as_str()),
            ("OS_PASSWORD", self.password.expose_secret()),
            ("OS_PROJECT_NAME", self.name.as_str()),
            ("OS_USER_DOMAIN_NAME", "Default"),
            ("OS_PROJECT_DOMAIN_NAME", "Default"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }

    /// A project-scoped token.
    pub async fn token(&self, env: &TestEnv) -> String {
        issue(env, &self.name, &self.password, &self.name).await
    }

    /// The user's credentials, scoped to its project.
    pub fn credentials(&self) -> UserCredentials {
        credentials(&self.name, &self.password, &self.name)
    }

    /// Deletes the namespace, user and project.
    pub async fn delete(mut self, env: &TestEnv, os: &OpenStack) {
        remove(env, os, &self.name, &self.user_id, &self.project_id).await;
        self.deleted = true;
    }
}

impl Drop for TenantUser {
    /// A test that failed before [`TenantUser::delete`] leaves nothing either. From a thread of
    /// its own: this may run inside the test's runtime, which cannot block on a future.
    fn drop(&mut self) {
        if self.deleted {
            return;
        }
        let (name, user, project) = (
            self.name.clone(),
            self.user_id.clone(),
            self.project_id.clone(),
        );
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            runtime.block_on(async {
                let env = TestEnv::get();
                remove(env, &admin(env).await, &name, &user, &project).await;
            });
        })
        .join();
    }
}

/// Deletes the namespace `name`, the user and the project.
async fn remove(env: &TestEnv, os: &OpenStack, name: &str, user: &str, project: &str) {
    let _ = kubectl_admin(
        env,
        &[
            "delete",
            "namespace",
            name,
            "--ignore-not-found",
            "--wait=false",
        ],
        None,
    );
    let identity = os.identity();
    let _ = identity.delete_user(&user.to_owned().into()).await;
    let _ = identity.delete_project(&project.to_owned().into()).await;
}

/// The password credentials of `user` on `project` (both by name, in the Default domain).
pub fn credentials(user: &str, password: &SecretString, project: &str) -> UserCredentials {
    UserCredentials::Password {
        user: Selector::Name {
            name: user.into(),
            domain: DomainSelector::Name("Default".into()),
        },
        password: password.clone(),
        project: Selector::Name {
            name: project.into(),
            domain: DomainSelector::Name("Default".into()),
        },
    }
}

/// A token for `user` on `project` (both by name, in the Default domain).
pub async fn issue(env: &TestEnv, user: &str, password: &SecretString, project: &str) -> String {
    let keystone = KeystoneTokens::new(&env.os_auth_url, Duration::from_secs(30), None)
        .expect("Keystone client");
    let issued = keystone
        .issue(&credentials(user, password, project))
        .await
        .expect("token issued");
    issued.token.expose_secret().to_owned()
}

/// The cloud admin's token (admin role on the admin project).
pub async fn admin_token(env: &TestEnv) -> String {
    issue(
        env,
        &env.os_username,
        &SecretString::from(env.os_password.clone()),
        &env.os_project_name,
    )
    .await
}

/// `kubectl` as the environment's admin (client certificate).
pub fn kubectl_admin(env: &TestEnv, args: &[&str], stdin: Option<&str>) -> (bool, String) {
    let mut command = env.kubectl();
    command.args(args);
    run_command(command, stdin)
}

/// `kubectl` with nothing but a bearer token: no kubeconfig user, no client certificate.
pub fn kubectl_with_token(env: &TestEnv, token: &str, args: &[&str]) -> (bool, String) {
    let mut command = env.kubectl();
    command.env_remove("KUBECONFIG").args([
        "--kubeconfig=/dev/null",
        "--server=https://127.0.0.1:6443",
        &format!("--certificate-authority={}", env.k8s_ca_file.display()),
        &format!("--token={token}"),
    ]);
    command.args(args);
    run_command(command, None)
}

/// `kubectl` with kubeconfig `kubeconfig` and exactly the environment variables `vars` (and
/// `PATH`): what a tenant's shell holds.
pub fn kubectl_as(
    env: &TestEnv,
    kubeconfig: &Path,
    vars: &[(String, String)],
    args: &[&str],
) -> (bool, String) {
    kubectl_as_in(env, kubeconfig, vars, args, None)
}

/// [`kubectl_as`] with `stdin` (`create -f -`).
pub fn kubectl_as_in(
    env: &TestEnv,
    kubeconfig: &Path,
    vars: &[(String, String)],
    args: &[&str],
    stdin: Option<&str>,
) -> (bool, String) {
    let mut command = env.kubectl();
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        // kubectl keeps its discovery cache under $HOME: beside the kubeconfig, not in the
        // working directory.
        .env("HOME", kubeconfig.parent().unwrap_or(Path::new("/tmp")))
        .envs(vars.iter().map(|(k, v)| (k, v)))
        .arg(format!("--kubeconfig={}", kubeconfig.display()))
        .args(args);
    run_command(command, stdin)
}

/// The flags that run stackube-auth where the test environment's kube-apiserver calls it, with
/// its metrics on `metrics_addr`.
pub fn webhook_args(env: &TestEnv, metrics_addr: std::net::SocketAddr) -> Vec<String> {
    vec![
        format!("--listen={}", env.auth_listen),
        format!("--tls-cert-file={}", env.auth_tls_cert_file.display()),
        format!(
            "--tls-private-key-file={}",
            env.auth_tls_private_key_file.display()
        ),
        format!("--client-ca-file={}", env.auth_client_ca_file.display()),
        format!("--keystone-url={}", env.os_auth_url),
        format!("--metrics-addr={metrics_addr}"),
    ]
}

/// A free loopback port.
pub fn free_port() -> std::net::SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
}

/// Whether kubectl's output says 401 (the token did not authenticate).
pub fn unauthorized(out: &str) -> bool {
    out.contains("Unauthorized") || out.contains("must be logged in")
}

/// Whether kubectl's output says 403 (authenticated, not allowed).
pub fn forbidden(out: &str) -> bool {
    out.contains("Forbidden") || out.contains("forbidden")
}
