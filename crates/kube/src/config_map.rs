//! Reading Stackube's configuration, the seed's `stackube-config` ConfigMap keys, shared by
//! every component: from a file or a mounted ConfigMap directory, overridden by
//! `STACKUBE_<KEY>` environment variables, validated by the binary's own configuration type
//! ([`FromKeys`], which names the offending key).

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context as _, bail};
use stackube_model::config::{FromKeys, KNOWN_KEYS};

/// The environment variable that overrides `key` (`auth-url` → `STACKUBE_AUTH_URL`).
pub fn env_var(key: &str) -> String {
    format!("STACKUBE_{}", key.to_uppercase().replace('-', "_"))
}

/// Reads the raw keys from `path` (when given) and the environment.
///
/// `path` may be a directory (a ConfigMap mounted as a volume: one file per key; files whose
/// names start with `.` are the kubelet's bookkeeping and skipped), a YAML map of keys, or a
/// ConfigMap manifest (its `data`), such as the seed's `stackube-configmap.yaml`.
pub fn read_raw(
    path: Option<&Path>,
    env: impl Fn(&str) -> Option<String>,
) -> anyhow::Result<BTreeMap<String, String>> {
    let mut map = BTreeMap::new();
    if let Some(path) = path {
        if path.is_dir() {
            for entry in std::fs::read_dir(path).with_context(|| {
                format!("cannot read configuration directory {}", path.display())
            })? {
                let entry = entry?;
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.starts_with('.') || !entry.path().is_file() {
                    continue;
                }
                let value = std::fs::read_to_string(entry.path())
                    .with_context(|| format!("cannot read configuration key file {name}"))?;
                map.insert(name, value.trim_end_matches(['\n', '\r']).to_owned());
            }
        } else {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read configuration file {}", path.display()))?;
            map = parse_yaml(&text)
                .with_context(|| format!("configuration file {}", path.display()))?;
        }
    }
    for key in KNOWN_KEYS {
        if let Some(value) = env(&env_var(key)) {
            map.insert(key.to_owned(), value);
        }
    }
    Ok(map)
}

/// A YAML map of keys, or a ConfigMap manifest.
fn parse_yaml(text: &str) -> anyhow::Result<BTreeMap<String, String>> {
    let doc: serde_json::Value = serde_saphyr::from_str(text).context("not valid YAML")?;
    let map = match doc.get("kind").and_then(|k| k.as_str()) {
        Some("ConfigMap") => doc.get("data").cloned().unwrap_or_default(),
        Some(other) => {
            bail!("a {other} is not a configuration (expected a map of keys or a ConfigMap)")
        }
        None => doc,
    };
    let serde_json::Value::Object(map) = map else {
        bail!("expected a map of configuration keys");
    };
    map.into_iter()
        .map(|(key, value)| {
            let value = match value {
                serde_json::Value::String(s) => s,
                serde_json::Value::Number(n) => n.to_string(),
                serde_json::Value::Bool(b) => b.to_string(),
                _ => bail!("configuration key `{key}` must be a string"),
            };
            Ok((key, value))
        })
        .collect()
}

/// Reads and validates the configuration of type `T` (the calling binary's).
pub fn load_config<T: FromKeys>(path: Option<&Path>) -> anyhow::Result<T> {
    let raw = read_raw(path, |var| std::env::var(var).ok())?;
    Ok(T::from_map(&raw)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED_CONFIGMAP: &str = r#"kind: ConfigMap
apiVersion: v1
metadata:
  name: stackube-config
  namespace: kube-system
data:
  auth-url: "https://192.168.128.66/identity_admin/v3"
  username: "admin"
  password: "admin"
  tenant-name: "admin"
  region: "RegionOne"
  ext-net-id: "550e8400-e29b-41d4-a716-446655440000"
  plugin-name: "ovs"
  integration-bridge: "br-int"
  user-cidr: "10.244.0.0/16"
  user-gateway: "10.244.0.1"
  kubernetes-host: "192.168.0.33"
  kubernetes-port: "6443"
"#;

    fn temp_dir() -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "stackube-config-test-{}-{}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_configmap_manifest_a_mounted_directory_and_the_environment_agree() {
        let dir = temp_dir();
        let manifest = dir.join("stackube-configmap.yaml");
        std::fs::write(&manifest, SEED_CONFIGMAP).unwrap();
        let from_manifest = read_raw(Some(&manifest), |_| None).unwrap();

        // The same ConfigMap as the kubelet mounts it.
        let mounted = dir.join("mounted");
        std::fs::create_dir_all(mounted.join("..2026_11_21")).unwrap();
        for (key, value) in &from_manifest {
            std::fs::write(mounted.join(key), format!("{value}\n")).unwrap();
        }
        let from_dir = read_raw(Some(&mounted), |_| None).unwrap();
        assert_eq!(from_manifest, from_dir);
        let config = stackube_model::config::ControllerConfig::from_map(&from_dir).unwrap();
        assert_eq!(
            config.ext_net_id.as_str(),
            "550e8400-e29b-41d4-a716-446655440000"
        );

        // The environment overrides the file.
        let overridden = read_raw(Some(&manifest), |var| {
            (var == "STACKUBE_USER_CIDR").then(|| "10.10.0.0/16".to_owned())
        })
        .unwrap();
        assert_eq!(overridden["user-cidr"], "10.10.0.0/16");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn bad_files_are_explained() {
        let dir = temp_dir();
        let cases = [
            ("kind: Deployment\n", "a Deployment is not a configuration"),
            ("- a\n- b\n", "expected a map"),
            ("auth-url: [1, 2]\n", "`auth-url` must be a string"),
        ];
        for (text, want) in cases {
            let file = dir.join("c.yaml");
            std::fs::write(&file, text).unwrap();
            let err = format!("{:#}", read_raw(Some(&file), |_| None).unwrap_err());
            assert!(err.contains(want), "{text}: {err}");
        }
        let err = format!(
            "{:#}",
            read_raw(Some(&dir.join("missing.yaml")), |_| None).unwrap_err()
        );
        assert!(err.contains("missing.yaml"), "{err}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn env_names() {
        assert_eq!(env_var("auth-url"), "STACKUBE_AUTH_URL");
        assert_eq!(env_var("ext-net-id"), "STACKUBE_EXT_NET_ID");
    }
}
