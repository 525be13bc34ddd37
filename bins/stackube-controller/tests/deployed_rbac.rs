//! `deploy/rbac.yaml` is enough: the controller, running as its ServiceAccount with exactly
//! those permissions, takes a Tenant through creation and deletion, and deletes and makes the
//! cluster network.

mod common;

use std::time::Duration;

use common::*;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::Api;
use stackube_core::cluster::{NAMESPACE, NETWORK};
use stackube_model::crd::TenantSpec;
use stackube_testenv::unique_name;

#[tokio::test]
async fn the_controller_works_with_the_deployed_rbac_only() {
    let _serial = serial().await;
    let Env { env, client, os } = env().await;
    let rbac = repo_root().join("deploy/rbac.yaml");
    let (ok, out) = kubectl(env, &["apply", "-f", rbac.to_str().expect("utf-8")], None);
    assert!(ok, "{out}");
    let token_secret = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: stackube-controller-token\n  namespace: kube-system\n  annotations:\n    kubernetes.io/service-account.name: stackube-controller\ntype: kubernetes.io/service-account-token\n";
    let (ok, out) = kubectl(env, &["apply", "-f", "-"], Some(token_secret));
    assert!(ok, "{out}");
    let secrets = Api::<Secret>::namespaced(client.clone(), "kube-system");
    let token = wait_for(
        "the ServiceAccount token",
        Duration::from_secs(60),
        || async {
            let secret = secrets.get_opt("stackube-controller-token").await.ok()??;
            let token = secret.data?.get("token")?.0.clone();
            String::from_utf8(token).ok().filter(|t| !t.is_empty())
        },
    )
    .await;
    let (_, server) = kubectl(
        env,
        &[
            "config",
            "view",
            "--minify",
            "-o",
            "jsonpath={.clusters[0].cluster.server}",
        ],
        None,
    );
    let (_, ca) = kubectl(
        env,
        &[
            "config",
            "view",
            "--minify",
            "--raw",
            "-o",
            "jsonpath={.clusters[0].cluster.certificate-authority-data}",
        ],
        None,
    );
    let kubeconfig =
        std::env::temp_dir().join(format!("stackube-sa-{}.kubeconfig", rand::random::<u32>()));
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: t\n  cluster:\n    server: {server}\n    certificate-authority-data: {ca}\nusers:\n- name: sa\n  user:\n    token: {token}\ncontexts:\n- name: sa@t\n  context: {{cluster: t, user: sa}}\ncurrent-context: sa@t\n"
        ),
    )
    .expect("kubeconfig");

    // The cluster network deleted (`none`), then made: both under the ServiceAccount.
    let cleaner = Controller::start_as(env, "rbac", &kubeconfig, &[("cluster-network", "none")]);
    cleaner.wait_leading().await;
    let namespaces = Api::<Namespace>::all(client.clone());
    wait_for(
        "the cluster network's namespace to be gone",
        Duration::from_secs(180),
        || async {
            namespaces
                .get_opt(NAMESPACE)
                .await
                .ok()?
                .is_none()
                .then_some(())
        },
    )
    .await;
    let cleaner_log = cleaner.log_text();
    drop(cleaner);
    let controller = Controller::start_as(env, "rbac", &kubeconfig, &[]);
    controller.wait_leading().await;
    wait_network_active(&client, NAMESPACE, NETWORK, Duration::from_secs(180)).await;
    let name = unique_name("rbac");
    create_tenant(
        &client,
        &tenant(
            &name,
            TenantSpec {
                username: Some(name.clone()),
                password: Some("rbac-password".into()),
                ..Default::default()
            },
        ),
    )
    .await;
    let ready = wait_ready(&client, &name, Duration::from_secs(90)).await;
    assert_eq!(
        condition(&ready, "RBACReady").map(|c| c.0),
        Some("True".into())
    );
    let uids = owners(&client, &name).await;
    delete_tenant(&client, &name, Duration::from_secs(120)).await;
    assert_eq!(leftovers(&os, &uids).await, Vec::<String>::new());
    let log = cleaner_log + &controller.log_text();
    // An RBAC denial reads `... is forbidden: User "system:serviceaccount:..." cannot ...`
    // (Events refused by a terminating namespace are a different, expected, refusal).
    assert!(
        !log.contains(r#"forbidden: User "system:serviceaccount:kube-system:stackube-controller""#),
        "a permission was missing:\n{log}"
    );
    std::fs::remove_file(kubeconfig).expect("cleanup");
}
