//! Bad Tenant and Network specs are refused by the real kube-apiserver, from the CRDs' schema,
//! with a message that names the field; and bad configuration stops the controller at start-up
//! with a message that names the key.

mod common;

use std::process::Command;

use common::*;
use stackube_testenv::TestEnv;

fn refused(env: &TestEnv, yaml: &str) -> String {
    let (ok, out) = kubectl(env, &["create", "-f", "-"], Some(yaml));
    assert!(
        !ok,
        "accepted, but should have been refused:\n{yaml}\n{out}"
    );
    out
}

#[tokio::test]
async fn invalid_tenants_are_refused_with_the_field_named() {
    let Env { env, .. } = env().await;
    let cases = [
        (
            "metadata: {name: Not_A_Label}\nspec: {}",
            "metadata.name must be a DNS label",
        ),
        (
            "metadata: {name: kube-system}\nspec: {}",
            "must not be a reserved namespace",
        ),
        (
            "metadata: {name: st-v1}\nspec: {password: x}",
            "spec.username needs exactly one of spec.password or spec.passwordSecretRef",
        ),
        (
            "metadata: {name: st-v2}\nspec: {username: u}",
            "spec.username needs exactly one of spec.password or spec.passwordSecretRef",
        ),
        (
            "metadata: {name: st-v3}\nspec: {username: u, password: x, passwordSecretRef: {namespace: \"ns\", name: \"s\"}}",
            "spec.password and spec.passwordSecretRef are mutually exclusive",
        ),
        (
            "metadata: {name: st-v4}\nspec: {username: \"has space\", password: x}",
            "spec.username must be 1 to 64",
        ),
        (
            "metadata: {name: st-v5}\nspec: {tenantID: \"a/b\"}",
            "spec.tenantID must be a Keystone project id",
        ),
    ];
    for (body, want) in cases {
        let yaml = format!("apiVersion: stackube.kubernetes.io/v1\nkind: Tenant\n{body}\n");
        let out = refused(env, &yaml);
        assert!(out.contains(want), "{body}: expected `{want}` in:\n{out}");
    }
}

#[tokio::test]
async fn invalid_networks_are_refused_with_the_field_named() {
    let Env { env, .. } = env().await;
    let cases = [
        (
            "{cidr: 10.244.0.0/16, gateway: 10.245.0.1}",
            "spec.gateway: Invalid value",
            "spec.gateway must be inside spec.cidr",
        ),
        (
            "{cidr: 10.244.0.0/33, gateway: 10.244.0.1}",
            "spec.cidr: Invalid value",
            "spec.cidr must be an IPv4 CIDR",
        ),
        (
            "{cidr: banana, gateway: 10.244.0.1}",
            "spec.cidr: Invalid value",
            "spec.cidr must be an IPv4 CIDR",
        ),
        (
            "{cidr: 10.244.0.1/16, gateway: 10.244.0.2}",
            "spec.cidr: Invalid value",
            "no host bits set",
        ),
        (
            "{cidr: 10.244.0.0/16, gateway: 10.244.0.0}",
            "spec.gateway: Invalid value",
            "must not be the network address",
        ),
        (
            "{cidr: \"fd00::/64\", gateway: \"fd00::1\"}",
            "spec.cidr: Invalid value",
            "IPv4",
        ),
        (
            "{cidr: 10.244.0.0/16, gateway: 10.244.0.1, networkID: nope}",
            "spec.networkID: Invalid value",
            "must be a Neutron network id",
        ),
        ("{cidr: 10.244.0.0/16}", "spec.gateway: Required value", ""),
    ];
    for (spec, field, want) in cases {
        let yaml = format!(
            "apiVersion: stackube.kubernetes.io/v1\nkind: Network\nmetadata: {{name: st-bad, namespace: default}}\nspec: {spec}\n"
        );
        let out = refused(env, &yaml);
        assert!(
            out.contains(field) && out.contains(want),
            "{spec}: expected `{field}` and `{want}` in:\n{out}"
        );
    }
}

#[tokio::test]
async fn network_cidr_gateway_and_id_are_immutable() {
    let Env { env, .. } = env().await;
    let name = stackube_testenv::unique_name("immutable");
    let yaml = format!(
        "apiVersion: stackube.kubernetes.io/v1\nkind: Network\nmetadata: {{name: {name}, namespace: default}}\nspec: {{cidr: 10.244.0.0/16, gateway: 10.244.0.1}}\n"
    );
    let (ok, out) = kubectl(env, &["create", "-f", "-"], Some(&yaml));
    assert!(ok, "{out}");
    let patches = [
        (
            r#"{"spec":{"cidr":"10.245.0.0/16","gateway":"10.245.0.1"}}"#,
            "spec.cidr is immutable",
        ),
        (
            r#"{"spec":{"networkID":"550e8400-e29b-41d4-a716-446655440000"}}"#,
            "spec.networkID is immutable",
        ),
    ];
    for (patch, want) in patches {
        let (ok, out) = kubectl(
            env,
            &[
                "-n", "default", "patch", "network", &name, "--type", "merge", "-p", patch,
            ],
            None,
        );
        assert!(
            !ok && out.contains(want),
            "{patch}: expected `{want}` in:\n{out}"
        );
    }
    // No controller runs in this test, so nothing holds a finalizer on it.
    let (ok, out) = kubectl(env, &["-n", "default", "delete", "network", &name], None);
    assert!(ok, "{out}");
}

fn start_with(config: &str) -> (bool, String) {
    let dir = std::env::temp_dir().join(format!("stackube-config-{}", rand::random::<u32>()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("config.yaml");
    std::fs::write(&file, config).expect("config");
    // Only the file configures it: `STACKUBE_<KEY>` variables (the test environment's env file
    // exports some) would override its keys.
    let mut command = Command::new(env!("CARGO_BIN_EXE_stackube-controller"));
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("STACKUBE_") {
            command.env_remove(key);
        }
    }
    let out = command
        .arg("--config")
        .arg(&file)
        .env("KUBECONFIG", "/nonexistent")
        .output()
        .expect("controller runs");
    std::fs::remove_dir_all(dir).expect("cleanup");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bad_configuration_stops_start_up_naming_the_key() {
    let good = "auth-url: http://127.0.0.1:5000/v3\nusername: admin\npassword: s3cret-v4lue\ntenant-name: admin\next-net-id: 550e8400-e29b-41d4-a716-446655440000\n";
    let cases = [
        (
            good.replace("ext-net-id: 550e8400-e29b-41d4-a716-446655440000\n", ""),
            "`ext-net-id` is required",
        ),
        (format!("{good}user-cidr: 10.244.0.0/33\n"), "`user-cidr`"),
        (format!("{good}user-gateway: 10.1.0.1\n"), "`user-gateway`"),
        (
            format!("{good}usr-cidr: 10.0.0.0/8\n"),
            "unknown configuration key `usr-cidr`",
        ),
        (
            good.replace("http://127.0.0.1:5000/v3", "http://127.0.0.1:5000/v2.0"),
            "v2.0",
        ),
    ];
    for (config, want) in cases {
        let (ok, stderr) = start_with(&config);
        assert!(!ok, "started with a bad configuration:\n{config}");
        assert!(stderr.contains(want), "expected `{want}` in:\n{stderr}");
        assert!(
            !stderr.contains("s3cret-v4lue"),
            "the password was printed:\n{stderr}"
        );
    }
}
