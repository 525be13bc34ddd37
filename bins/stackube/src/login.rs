//! kubectl login with Keystone credentials: `stackube credential` is a client-go exec credential
//! plugin that turns the usual `OS_*` variables (or a `clouds.yaml` entry) into a project-scoped
//! Keystone token, and `stackube kubeconfig` writes a kubeconfig entry that runs it.
//!
//! The password is never written anywhere: the kubeconfig entry records who to log in as
//! (auth URL, user, project, domains, or the clouds.yaml entry's name), and the plugin takes the
//! password from the environment kubectl runs in (`OS_PASSWORD`) or from `clouds.yaml`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, bail};
use secrecy::SecretString;
use serde_json::{Value, json};
use stackube_openstack::tokens::{
    DomainSelector, IssuedToken, KeystoneTokens, Selector, UserCredentials,
};

/// The exec credential API version answered when kubectl does not say which it wants.
pub const EXEC_API_VERSION: &str = "client.authentication.k8s.io/v1";

/// Where the Keystone settings come from: the names used in error messages.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Source {
    Env,
    Cloud(String),
}

impl Source {
    /// How to name setting `env` (`OS_PASSWORD`) / `key` (`password`) to the user.
    fn name(&self, env: &str, key: &str) -> String {
        match self {
            Source::Env => env.to_owned(),
            Source::Cloud(cloud) => {
                format!("{env} (or auth.{key} of cloud {cloud:?} in clouds.yaml)")
            }
        }
    }
}

/// Keystone settings, as `OS_*` variables or a `clouds.yaml` entry give them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeystoneSettings {
    /// `OS_AUTH_URL`.
    pub auth_url: Option<String>,
    /// `OS_USERNAME`.
    pub username: Option<String>,
    /// `OS_USER_ID`.
    pub user_id: Option<String>,
    /// `OS_PASSWORD`.
    pub password: Option<String>,
    /// `OS_PROJECT_NAME` (or the older `OS_TENANT_NAME`).
    pub project_name: Option<String>,
    /// `OS_PROJECT_ID` (or `OS_TENANT_ID`).
    pub project_id: Option<String>,
    /// `OS_USER_DOMAIN_NAME`.
    pub user_domain_name: Option<String>,
    /// `OS_USER_DOMAIN_ID`.
    pub user_domain_id: Option<String>,
    /// `OS_PROJECT_DOMAIN_NAME`.
    pub project_domain_name: Option<String>,
    /// `OS_PROJECT_DOMAIN_ID`.
    pub project_domain_id: Option<String>,
    /// `OS_APPLICATION_CREDENTIAL_ID`.
    pub application_credential_id: Option<String>,
    /// `OS_APPLICATION_CREDENTIAL_SECRET`.
    pub application_credential_secret: Option<String>,
    /// `OS_CACERT`.
    pub cacert: Option<String>,
}

/// `(OS_* variable, clouds.yaml auth key)` of each setting, in [`KeystoneSettings`] order.
const KEYS: [(&str, &str); 13] = [
    ("OS_AUTH_URL", "auth_url"),
    ("OS_USERNAME", "username"),
    ("OS_USER_ID", "user_id"),
    ("OS_PASSWORD", "password"),
    ("OS_PROJECT_NAME", "project_name"),
    ("OS_PROJECT_ID", "project_id"),
    ("OS_USER_DOMAIN_NAME", "user_domain_name"),
    ("OS_USER_DOMAIN_ID", "user_domain_id"),
    ("OS_PROJECT_DOMAIN_NAME", "project_domain_name"),
    ("OS_PROJECT_DOMAIN_ID", "project_domain_id"),
    ("OS_APPLICATION_CREDENTIAL_ID", "application_credential_id"),
    (
        "OS_APPLICATION_CREDENTIAL_SECRET",
        "application_credential_secret",
    ),
    ("OS_CACERT", "cacert"),
];

impl KeystoneSettings {
    fn fields_mut(&mut self) -> [&mut Option<String>; 13] {
        [
            &mut self.auth_url,
            &mut self.username,
            &mut self.user_id,
            &mut self.password,
            &mut self.project_name,
            &mut self.project_id,
            &mut self.user_domain_name,
            &mut self.user_domain_id,
            &mut self.project_domain_name,
            &mut self.project_domain_id,
            &mut self.application_credential_id,
            &mut self.application_credential_secret,
            &mut self.cacert,
        ]
    }

    /// The settings of the `OS_*` variables `var` gives (empty values count as unset).
    pub fn from_env(var: impl Fn(&str) -> Option<String>) -> Self {
        let mut settings = Self::default();
        for (field, (env, _)) in settings.fields_mut().into_iter().zip(KEYS) {
            *field = var(env).filter(|v| !v.is_empty());
        }
        settings.project_name = settings
            .project_name
            .or_else(|| var("OS_TENANT_NAME").filter(|v| !v.is_empty()));
        settings.project_id = settings
            .project_id
            .or_else(|| var("OS_TENANT_ID").filter(|v| !v.is_empty()));
        settings
    }

    /// The settings of cloud `cloud` in a `clouds.yaml` text.
    pub fn from_clouds_yaml(text: &str, cloud: &str) -> anyhow::Result<Self> {
        let document: Value = serde_saphyr::from_str(text).context("clouds.yaml does not parse")?;
        let Some(entry) = document.get("clouds").and_then(|c| c.get(cloud)) else {
            bail!("clouds.yaml has no cloud {cloud:?}");
        };
        let auth = entry.get("auth").cloned().unwrap_or(Value::Null);
        let mut settings = Self::default();
        for (field, (_, key)) in settings.fields_mut().into_iter().zip(KEYS) {
            let value = auth.get(key).or_else(|| entry.get(key));
            *field = match value {
                Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
                Some(Value::Number(n)) => Some(n.to_string()),
                _ => None,
            };
        }
        Ok(settings)
    }

    /// Fills what `self` lacks from `other`.
    pub fn or(mut self, other: &Self) -> Self {
        let mut other = other.clone();
        for (field, fallback) in self.fields_mut().into_iter().zip(other.fields_mut()) {
            if field.is_none() {
                *field = fallback.take();
            }
        }
        self
    }

    /// The credentials these settings describe, or which setting is missing.
    fn credentials(&self, source: &Source) -> anyhow::Result<UserCredentials> {
        if let (Some(id), Some(secret)) = (
            &self.application_credential_id,
            &self.application_credential_secret,
        ) {
            return Ok(UserCredentials::ApplicationCredential {
                id: id.clone(),
                secret: SecretString::from(secret.clone()),
            });
        }
        let domain = |id: &Option<String>, name: &Option<String>| match (id, name) {
            (Some(id), _) => DomainSelector::Id(id.clone()),
            (None, Some(name)) => DomainSelector::Name(name.clone()),
            // Keystone's default domain, as python-openstackclient assumes too.
            (None, None) => DomainSelector::Id("default".into()),
        };
        let user = match (&self.user_id, &self.username) {
            (Some(id), _) => Selector::Id(id.clone()),
            (None, Some(name)) => Selector::Name {
                name: name.clone(),
                domain: domain(&self.user_domain_id, &self.user_domain_name),
            },
            (None, None) => bail!("{} is not set", source.name("OS_USERNAME", "username")),
        };
        let project = match (&self.project_id, &self.project_name) {
            (Some(id), _) => Selector::Id(id.clone()),
            (None, Some(name)) => Selector::Name {
                name: name.clone(),
                domain: domain(&self.project_domain_id, &self.project_domain_name),
            },
            (None, None) => bail!(
                "{} is not set: a token for Kubernetes is scoped to your project",
                source.name("OS_PROJECT_NAME", "project_name")
            ),
        };
        let Some(password) = &self.password else {
            bail!("{} is not set", source.name("OS_PASSWORD", "password"));
        };
        Ok(UserCredentials::Password {
            user,
            password: SecretString::from(password.clone()),
            project,
        })
    }
}

/// Where `clouds.yaml` is looked for, in order (as openstacksdk does).
pub fn clouds_yaml_paths(var: impl Fn(&str) -> Option<String>) -> Vec<PathBuf> {
    let mut paths = Vec::new();
    if let Some(file) = var("OS_CLIENT_CONFIG_FILE") {
        paths.push(PathBuf::from(file));
    }
    paths.push(PathBuf::from("clouds.yaml"));
    let config_home = var("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| var("HOME").map(|h| Path::new(&h).join(".config")));
    if let Some(dir) = config_home {
        paths.push(dir.join("openstack/clouds.yaml"));
    }
    paths.push(PathBuf::from("/etc/openstack/clouds.yaml"));
    paths
}

/// The settings to log in with: cloud `cloud` of the first `clouds.yaml` found (with `OS_*`
/// variables filling what it lacks, such as a password kept out of the file), or the `OS_*`
/// variables alone.
fn resolve(
    cloud: Option<&str>,
    var: &impl Fn(&str) -> Option<String>,
) -> anyhow::Result<(KeystoneSettings, Source)> {
    let env = KeystoneSettings::from_env(var);
    let Some(cloud) = cloud else {
        return Ok((env, Source::Env));
    };
    let paths = clouds_yaml_paths(var);
    let Some(path) = paths.iter().find(|p| p.is_file()) else {
        bail!("cloud {cloud:?} asked for, but there is no clouds.yaml (looked at {paths:?})");
    };
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let settings = KeystoneSettings::from_clouds_yaml(&text, cloud)
        .with_context(|| path.display().to_string())?;
    Ok((settings.or(&env), Source::Cloud(cloud.to_owned())))
}

/// Gets a project-scoped token for the settings.
async fn token(settings: &KeystoneSettings, source: &Source) -> anyhow::Result<IssuedToken> {
    let Some(auth_url) = &settings.auth_url else {
        bail!("{} is not set", source.name("OS_AUTH_URL", "auth_url"));
    };
    let credentials = settings.credentials(source)?;
    let keystone = KeystoneTokens::new(
        auth_url,
        Duration::from_secs(30),
        settings.cacert.as_deref().map(Path::new),
    )?;
    Ok(keystone.issue(&credentials).await?)
}

/// The ExecCredential for a token: its value and when client-go should ask again (a minute
/// before Keystone's expiry).
pub fn exec_credential(
    api_version: &str,
    token: &str,
    expires_at: chrono::DateTime<chrono::Utc>,
) -> Value {
    let refresh_at = expires_at - chrono::Duration::seconds(60);
    json!({
        "apiVersion": api_version,
        "kind": "ExecCredential",
        "status": {
            "token": token,
            "expirationTimestamp": refresh_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        },
    })
}

/// The API version kubectl asks for in `KUBERNETES_EXEC_INFO` (default [`EXEC_API_VERSION`]).
pub fn requested_api_version(exec_info: Option<&str>) -> String {
    exec_info
        .and_then(|info| serde_json::from_str::<Value>(info).ok())
        .and_then(|info| info.get("apiVersion")?.as_str().map(str::to_owned))
        .unwrap_or_else(|| EXEC_API_VERSION.to_owned())
}

/// `stackube credential`: prints an ExecCredential for the Keystone user of the environment.
pub async fn credential(cloud: Option<&str>) -> anyhow::Result<String> {
    let var = |k: &str| std::env::var(k).ok();
    let (settings, source) = resolve(cloud, &var)?;
    let issued = token(&settings, &source)
        .await
        .context("cannot get a Keystone token for Kubernetes")?;
    let api_version = requested_api_version(var("KUBERNETES_EXEC_INFO").as_deref());
    use secrecy::ExposeSecret;
    Ok(exec_credential(
        &api_version,
        issued.token.expose_secret(),
        issued.identity.expires_at,
    )
    .to_string())
}

/// What `stackube kubeconfig` writes.
#[derive(Clone, Debug)]
pub struct KubeconfigEntry {
    /// The kubeconfig file.
    pub path: PathBuf,
    /// The cluster entry's name.
    pub cluster: String,
    /// kube-apiserver's URL (`None`: keep the existing cluster entry's).
    pub server: Option<String>,
    /// CA bundle of kube-apiserver (PEM file), embedded in the cluster entry.
    pub certificate_authority: Option<PathBuf>,
    /// The user entry's (and context's) name; default `<user>@<project>`.
    pub name: Option<String>,
    /// The context's namespace; default the project name (a tenant's namespace).
    pub namespace: Option<String>,
    /// The clouds.yaml entry the plugin logs in with (instead of `OS_*` variables).
    pub cloud: Option<String>,
    /// The plugin's command (default: this `stackube` binary).
    pub command: String,
    /// Make the new context the current one.
    pub switch: bool,
}

/// `stackube kubeconfig`: adds (or replaces) a cluster, a user that logs in with `stackube
/// credential`, and a context, keeping every other entry. Returns the context's name.
pub fn write_kubeconfig(
    entry: &KubeconfigEntry,
    var: impl Fn(&str) -> Option<String>,
) -> anyhow::Result<String> {
    let (settings, source) = resolve(entry.cloud.as_deref(), &var)?;
    let who = settings
        .username
        .clone()
        .or(settings.user_id.clone())
        .or(settings
            .application_credential_id
            .clone()
            .map(|id| format!("appcred-{id}")));
    let Some(who) = who else {
        bail!("{} is not set", source.name("OS_USERNAME", "username"));
    };
    let project = settings
        .project_name
        .clone()
        .or(settings.project_id.clone());
    let name = entry.name.clone().unwrap_or_else(|| match &project {
        Some(p) => format!("{who}@{p}"),
        None => who.clone(),
    });
    if settings.auth_url.is_none() {
        bail!("{} is not set", source.name("OS_AUTH_URL", "auth_url"));
    }

    let mut config: Value = match std::fs::read_to_string(&entry.path) {
        Ok(text) if !text.trim().is_empty() => serde_saphyr::from_str(&text)
            .with_context(|| format!("{} does not parse as a kubeconfig", entry.path.display()))?,
        Ok(_) => json!({}),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => json!({}),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", entry.path.display())),
    };
    if !config.is_object() {
        bail!(
            "{} is not a kubeconfig (not a mapping)",
            entry.path.display()
        );
    }
    config["apiVersion"] = json!("v1");
    config["kind"] = json!("Config");

    let mut cluster = find(&config, "clusters", &entry.cluster)
        .and_then(|c| c.get("cluster").cloned())
        .unwrap_or_else(|| json!({}));
    match &entry.server {
        Some(server) => cluster["server"] = json!(server),
        None if cluster.get("server").is_some() => {}
        None => bail!(
            "--server is needed: {} has no cluster {:?} yet",
            entry.path.display(),
            entry.cluster
        ),
    }
    if let Some(ca) = &entry.certificate_authority {
        use base64::Engine;
        let pem = std::fs::read(ca).with_context(|| format!("cannot read {}", ca.display()))?;
        if let Some(map) = cluster.as_object_mut() {
            map.remove("certificate-authority");
            map.remove("insecure-skip-tls-verify");
        }
        cluster["certificate-authority-data"] =
            json!(base64::engine::general_purpose::STANDARD.encode(pem));
    }
    upsert(&mut config, "clusters", &entry.cluster, "cluster", cluster);

    // Who to log in as, without the secrets: the plugin reads OS_PASSWORD (or clouds.yaml).
    let mut args = vec![json!("credential")];
    let mut env = Vec::new();
    match &entry.cloud {
        Some(cloud) => args.extend([json!("--os-cloud"), json!(cloud)]),
        None => {
            let mut recorded = settings.clone();
            recorded.password = None;
            recorded.application_credential_secret = None;
            for (value, (name, _)) in recorded.fields_mut().into_iter().zip(KEYS) {
                if let Some(value) = value.take() {
                    env.push(json!({ "name": name, "value": value }));
                }
            }
        }
    }
    let user = json!({ "exec": {
        "apiVersion": EXEC_API_VERSION,
        "command": entry.command,
        "args": args,
        "env": env,
        "interactiveMode": "Never",
        "provideClusterInfo": false,
        "installHint": "stackube credential logs in to Keystone: install the stackube CLI and set OS_PASSWORD (or use a clouds.yaml entry).",
    } });
    upsert(&mut config, "users", &name, "user", user);

    let mut context = json!({ "cluster": entry.cluster, "user": name });
    if let Some(namespace) = entry.namespace.clone().or(settings.project_name.clone()) {
        context["namespace"] = json!(namespace);
    }
    upsert(&mut config, "contexts", &name, "context", context);
    if entry.switch
        || config
            .get("current-context")
            .is_none_or(|c| c.as_str().unwrap_or("").is_empty())
    {
        config["current-context"] = json!(name);
    }

    let yaml = serde_saphyr::to_string(&config)?;
    write_private(&entry.path, &yaml)?;
    Ok(name)
}

fn find<'a>(config: &'a Value, list: &str, name: &str) -> Option<&'a Value> {
    config
        .get(list)?
        .as_array()?
        .iter()
        .find(|item| item.get("name").and_then(Value::as_str) == Some(name))
}

/// Puts `{name, <field>: value}` in list `list`, replacing an entry of the same name.
fn upsert(config: &mut Value, list: &str, name: &str, field: &str, value: Value) {
    let item = json!({ "name": name, field: value });
    if !config.get(list).is_some_and(Value::is_array) {
        config[list] = json!([]);
    }
    if let Some(items) = config[list].as_array_mut() {
        match items
            .iter_mut()
            .find(|i| i.get("name").and_then(Value::as_str) == Some(name))
        {
            Some(existing) => *existing = item,
            None => items.push(item),
        }
    }
}

/// Writes `text` to `path` atomically, readable by its owner only (it may hold other entries'
/// credentials).
fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let tmp = dir.join(format!(
        ".{}.stackube-{}",
        path.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("kubeconfig"),
        std::process::id()
    ));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// The kubeconfig `stackube kubeconfig` writes to by default: the first file of `KUBECONFIG`, or
/// `~/.kube/config`.
pub fn default_kubeconfig_path(var: impl Fn(&str) -> Option<String>) -> anyhow::Result<PathBuf> {
    if let Some(first) =
        var("KUBECONFIG").and_then(|k| k.split(':').find(|p| !p.is_empty()).map(PathBuf::from))
    {
        return Ok(first);
    }
    match var("HOME") {
        Some(home) => Ok(Path::new(&home).join(".kube/config")),
        None => bail!("neither KUBECONFIG nor HOME is set: give --kubeconfig"),
    }
}

/// `BTreeMap` view of a process environment, for tests.
#[doc(hidden)]
pub fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
    let map: BTreeMap<String, String> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    move |k: &str| map.get(k).cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TENANT: [(&str, &str); 5] = [
        ("OS_AUTH_URL", "http://127.0.0.1:5000/v3"),
        ("OS_USERNAME", "alice"),
        ("OS_PASSWORD", "s3cret-pw"),
        ("OS_PROJECT_NAME", "a"),
        ("OS_USER_DOMAIN_NAME", "Default"),
    ];

    #[test]
    fn env_settings_become_password_credentials_scoped_to_the_project() {
        let settings = KeystoneSettings::from_env(env_of(&TENANT));
        match settings.credentials(&Source::Env).unwrap() {
            UserCredentials::Password { user, project, .. } => {
                assert_eq!(
                    user,
                    Selector::Name {
                        name: "alice".into(),
                        domain: DomainSelector::Name("Default".into())
                    }
                );
                assert_eq!(
                    project,
                    Selector::Name {
                        name: "a".into(),
                        domain: DomainSelector::Id("default".into())
                    }
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_missing_setting_is_named() {
        for (missing, expected) in [
            ("OS_PASSWORD", "OS_PASSWORD is not set"),
            ("OS_USERNAME", "OS_USERNAME is not set"),
            ("OS_PROJECT_NAME", "OS_PROJECT_NAME is not set"),
        ] {
            let pairs: Vec<_> = TENANT
                .iter()
                .copied()
                .filter(|(k, _)| *k != missing)
                .collect();
            let settings = KeystoneSettings::from_env(env_of(&pairs));
            let err = settings.credentials(&Source::Env).unwrap_err().to_string();
            assert!(err.contains(expected), "{err}");
        }
        let err = KeystoneSettings::default()
            .credentials(&Source::Cloud("mine".into()))
            .unwrap_err()
            .to_string();
        assert!(err.contains("auth.username of cloud \"mine\""), "{err}");
    }

    #[test]
    fn clouds_yaml_entries_are_read_and_env_fills_the_password() {
        let yaml = "clouds:\n  mine:\n    auth:\n      auth_url: http://k:5000/v3\n      username: bob\n      project_name: b\n      user_domain_name: Default\n      project_domain_name: Default\n    region_name: RegionOne\n    cacert: /etc/ca.pem\n";
        let settings = KeystoneSettings::from_clouds_yaml(yaml, "mine").unwrap();
        assert_eq!(settings.username.as_deref(), Some("bob"));
        assert_eq!(settings.cacert.as_deref(), Some("/etc/ca.pem"));
        assert!(settings.password.is_none());
        let settings = settings.or(&KeystoneSettings::from_env(env_of(&[
            ("OS_PASSWORD", "pw"),
            ("OS_USERNAME", "other"),
        ])));
        assert_eq!(settings.password.as_deref(), Some("pw"));
        assert_eq!(
            settings.username.as_deref(),
            Some("bob"),
            "the cloud entry wins"
        );
        assert!(
            KeystoneSettings::from_clouds_yaml(yaml, "theirs")
                .unwrap_err()
                .to_string()
                .contains("no cloud \"theirs\"")
        );
    }

    #[test]
    fn the_exec_credential_refreshes_a_minute_before_expiry_in_the_asked_version() {
        let expires = chrono::DateTime::parse_from_rfc3339("2026-11-21T20:00:00Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        let version = requested_api_version(Some(
            r#"{"apiVersion":"client.authentication.k8s.io/v1beta1","kind":"ExecCredential","spec":{"interactive":false}}"#,
        ));
        let credential = exec_credential(&version, "tok", expires);
        assert_eq!(
            credential["apiVersion"],
            "client.authentication.k8s.io/v1beta1"
        );
        assert_eq!(credential["status"]["token"], "tok");
        assert_eq!(
            credential["status"]["expirationTimestamp"],
            "2026-11-21T19:59:00Z"
        );
        assert_eq!(requested_api_version(None), EXEC_API_VERSION);
    }

    #[test]
    fn kubeconfig_entries_are_added_without_secrets_and_others_are_kept() {
        let dir = std::env::temp_dir().join(format!("stackube-kubeconfig-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("config");
        let ca = dir.join("ca.crt");
        std::fs::write(
            &ca,
            "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        std::fs::write(
            &path,
            "apiVersion: v1\nkind: Config\nclusters:\n- name: other\n  cluster:\n    server: https://other:6443\nusers:\n- name: admin\n  user:\n    token: keep-me\ncontexts:\n- name: admin\n  context:\n    cluster: other\n    user: admin\ncurrent-context: admin\n",
        )
        .unwrap();
        let entry = KubeconfigEntry {
            path: path.clone(),
            cluster: "stackube".into(),
            server: Some("https://127.0.0.1:6443".into()),
            certificate_authority: Some(ca),
            name: None,
            namespace: None,
            cloud: None,
            command: "/usr/local/bin/stackube".into(),
            switch: true,
        };
        let context = write_kubeconfig(&entry, env_of(&TENANT)).unwrap();
        assert_eq!(context, "alice@a");
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            !text.contains("s3cret-pw"),
            "the password was written:\n{text}"
        );
        let config: Value = serde_saphyr::from_str(&text).unwrap();
        assert_eq!(config["current-context"], "alice@a");
        assert_eq!(
            find(&config, "users", "admin").unwrap()["user"]["token"],
            "keep-me"
        );
        assert_eq!(
            find(&config, "contexts", "alice@a").unwrap()["context"]["namespace"],
            "a"
        );
        let exec = &find(&config, "users", "alice@a").unwrap()["user"]["exec"];
        assert_eq!(exec["command"], "/usr/local/bin/stackube");
        assert_eq!(exec["args"], json!(["credential"]));
        let env = exec["env"].as_array().unwrap();
        assert!(env.contains(&json!({"name": "OS_USERNAME", "value": "alice"})));
        assert!(!env.iter().any(|e| e["name"] == "OS_PASSWORD"));
        let cluster = &find(&config, "clusters", "stackube").unwrap()["cluster"];
        assert_eq!(cluster["server"], "https://127.0.0.1:6443");
        assert!(
            cluster["certificate-authority-data"]
                .as_str()
                .unwrap()
                .starts_with("LS0t")
        );
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );

        // Again, for the same user: replaced, not duplicated.
        write_kubeconfig(&entry, env_of(&TENANT)).unwrap();
        let config: Value =
            serde_saphyr::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(config["users"].as_array().unwrap().len(), 2);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
