//! Access to the real test environment that `hack/testenv up` starts: Keystone, Neutron with its
//! agents on Open vSwitch, Cinder on Ceph, etcd and kube-apiserver.
//!
//! Integration tests call [`TestEnv::get`] first. It reads the settings `hack/testenv up` wrote to
//! `.testenv/env` and **panics** with the command that starts the environment when they are
//! missing: an integration test without its environment fails, it never skips and passes.
//!
//! The process environment is deliberately *not* consulted: a developer's shell with a real
//! cloud's `OS_*` variables must never point the tests (which create and delete resources) at it.

pub mod bench;
pub mod devbox;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::OnceLock;

use rand::Rng;

/// What to tell a person whose test environment is missing.
pub const HOW_TO_START: &str =
    "start the test environment with `hack/testenv up` (or run the whole suite with `hack/test`)";

/// The settings of a running test environment.
#[derive(Clone, Debug)]
pub struct TestEnv {
    /// Admin kubeconfig of the test kube-apiserver.
    pub kubeconfig: PathBuf,
    /// Keystone v3 URL.
    pub os_auth_url: String,
    /// Cloud admin user name.
    pub os_username: String,
    /// Cloud admin password (a throw-away test credential).
    pub os_password: String,
    /// Project the admin user is scoped to.
    pub os_project_name: String,
    /// Domain of the admin user.
    pub os_user_domain_name: String,
    /// Domain of the admin project.
    pub os_project_domain_name: String,
    /// Region of the catalog endpoints.
    pub os_region_name: String,
    /// Id of the external (provider, flat) Neutron network routers are gatewayed to.
    pub ext_net_id: String,
    /// CA of kube-apiserver (and of the webhook's serving certificate).
    pub k8s_ca_file: PathBuf,
    /// Where kube-apiserver expects stackube-auth (`127.0.0.1:8443`).
    pub auth_listen: String,
    /// stackube-auth's serving certificate.
    pub auth_tls_cert_file: PathBuf,
    /// Its private key.
    pub auth_tls_private_key_file: PathBuf,
    /// The CA of kube-apiserver's webhook client certificate.
    pub auth_client_ca_file: PathBuf,
    /// crictl's configuration (the environment's containerd).
    pub cri_config_file: PathBuf,
    /// Where crictl is.
    pub node_bin_dir: PathBuf,
    /// Where containerd looks for CNI plugins.
    pub cni_bin_dir: PathBuf,
    /// Where containerd looks for the CNI configuration.
    pub cni_conf_dir: PathBuf,
    /// The cgroup parent pod sandboxes get (so that `hack/testenv down` finds them).
    pub pod_cgroup_parent: String,
    /// The cluster's node: the name its kubelet registered (`kubectl get node`).
    pub node_name: String,
    /// Where the node's containerd (the kubelet's, not crictl's) looks for the CNI configuration.
    pub node_cni_conf_dir: PathBuf,
    /// The node's containerd socket (the kubelet's runtime).
    pub node_containerd_address: PathBuf,
    /// The node's kubelet's FlexVolume plugin directory.
    pub node_flex_dir: PathBuf,
    /// The pod sandbox's image, which both runtimes pull at start (`registry.k8s.io/pause`).
    pub pause_image: String,
    /// The local registry every image comes from (`host:port`).
    pub registry: String,
    /// Where the environment's Kubernetes binaries (`kubectl`, …) are: the first entry of the
    /// `PATH` the env file sets.
    pub bin_dir: Option<PathBuf>,
}

impl TestEnv {
    /// The running environment's settings.
    ///
    /// # Panics
    /// When the environment's settings are missing or incomplete, with a message that says how to
    /// start the environment.
    pub fn get() -> &'static TestEnv {
        static ENV: OnceLock<Result<TestEnv, String>> = OnceLock::new();
        match ENV.get_or_init(Self::load) {
            Ok(env) => env,
            Err(why) => panic!("test environment unavailable: {why}; {HOW_TO_START}"),
        }
    }

    /// Reads the settings from `.testenv/env` (see [`env_file`]).
    pub fn load() -> Result<TestEnv, String> {
        let file = env_file();
        let vars = match std::fs::read_to_string(&file) {
            Ok(text) => parse_env_file(&text),
            Err(e) => return Err(format!("cannot read {}: {e}", file.display())),
        };
        let var = |key: &str| -> Result<String, String> {
            vars.get(key)
                .filter(|v| !v.is_empty())
                .cloned()
                .ok_or_else(|| format!("{} does not define {key}", file.display()))
        };
        let env = TestEnv {
            kubeconfig: PathBuf::from(var("KUBECONFIG")?),
            os_auth_url: var("OS_AUTH_URL")?,
            os_username: var("OS_USERNAME")?,
            os_password: var("OS_PASSWORD")?,
            os_project_name: var("OS_PROJECT_NAME")?,
            os_user_domain_name: var("OS_USER_DOMAIN_NAME")?,
            os_project_domain_name: var("OS_PROJECT_DOMAIN_NAME")?,
            os_region_name: var("OS_REGION_NAME")?,
            ext_net_id: var("STACKUBE_EXT_NET_ID")?,
            k8s_ca_file: PathBuf::from(var("STACKUBE_K8S_CA_FILE")?),
            auth_listen: var("STACKUBE_AUTH_LISTEN")?,
            auth_tls_cert_file: PathBuf::from(var("STACKUBE_AUTH_TLS_CERT_FILE")?),
            auth_tls_private_key_file: PathBuf::from(var("STACKUBE_AUTH_TLS_PRIVATE_KEY_FILE")?),
            auth_client_ca_file: PathBuf::from(var("STACKUBE_AUTH_CLIENT_CA_FILE")?),
            cri_config_file: PathBuf::from(var("CRI_CONFIG_FILE")?),
            node_bin_dir: PathBuf::from(var("STACKUBE_NODE_BIN_DIR")?),
            cni_bin_dir: PathBuf::from(var("STACKUBE_CNI_BIN_DIR")?),
            cni_conf_dir: PathBuf::from(var("STACKUBE_CNI_CONF_DIR")?),
            pod_cgroup_parent: var("STACKUBE_POD_CGROUP_PARENT")?,
            node_name: var("STACKUBE_NODE_NAME")?,
            node_cni_conf_dir: PathBuf::from(var("STACKUBE_NODE_CNI_CONF_DIR")?),
            node_containerd_address: PathBuf::from(var("STACKUBE_NODE_CONTAINERD_ADDRESS")?),
            node_flex_dir: PathBuf::from(var("STACKUBE_NODE_FLEX_DIR")?),
            pause_image: var("STACKUBE_PAUSE_IMAGE")?,
            registry: var("STACKUBE_REGISTRY")?,
            bin_dir: vars
                .get("PATH")
                .and_then(|p| p.split(':').next())
                .filter(|d| !d.is_empty() && !d.starts_with('$'))
                .map(PathBuf::from),
        };
        if !env.kubeconfig.is_file() {
            return Err(format!(
                "kubeconfig {} does not exist",
                env.kubeconfig.display()
            ));
        }
        Ok(env)
    }
}

impl TestEnv {
    /// This environment's cloud, as the components' configuration reads it.
    pub fn cloud_config(&self) -> stackube_model::config::CloudConfig {
        stackube_model::config::CloudConfig {
            auth_url: self.os_auth_url.clone(),
            username: self.os_username.clone(),
            password: stackube_model::config::Secret::new(self.os_password.clone()),
            tenant_name: self.os_project_name.clone(),
            region: Some(self.os_region_name.clone()),
            user_domain_name: self.os_user_domain_name.clone(),
            project_domain_name: self.os_project_domain_name.clone(),
        }
    }

    /// The seed's configuration keys for this environment's cloud, as a YAML map, with
    /// `cluster-name` `cluster` and the `extra` keys added or replaced.
    pub fn config_yaml(&self, cluster: &str, extra: &[(&str, &str)]) -> String {
        let mut lines = vec![
            format!("auth-url: \"{}\"", self.os_auth_url),
            format!("username: \"{}\"", self.os_username),
            format!("password: \"{}\"", self.os_password),
            format!("tenant-name: \"{}\"", self.os_project_name),
            format!("region: \"{}\"", self.os_region_name),
            format!("ext-net-id: \"{}\"", self.ext_net_id),
            format!("cluster-name: \"{cluster}\""),
        ];
        for (key, value) in extra {
            lines.retain(|l| !l.starts_with(&format!("{key}:")));
            lines.push(format!("{key}: \"{value}\""));
        }
        lines.join("\n") + "\n"
    }

    /// A `crictl` command talking to the environment's containerd.
    pub fn crictl(&self) -> std::process::Command {
        let mut command = std::process::Command::new(self.node_bin_dir.join("crictl"));
        command.env("CRI_CONFIG_FILE", &self.cri_config_file);
        command
    }

    /// A `crictl` command talking to the node's containerd (the kubelet's runtime).
    pub fn node_crictl(&self) -> std::process::Command {
        let endpoint = format!("unix://{}", self.node_containerd_address.display());
        let mut command = std::process::Command::new(self.node_bin_dir.join("crictl"));
        command.args([
            "--runtime-endpoint",
            &endpoint,
            "--image-endpoint",
            &endpoint,
        ]);
        command
    }

    /// A `kubectl` command of the environment, with its `KUBECONFIG`.
    pub fn kubectl(&self) -> std::process::Command {
        let kubectl = self
            .bin_dir
            .as_ref()
            .map(|d| d.join("kubectl"))
            .unwrap_or_else(|| PathBuf::from("kubectl"));
        let mut command = std::process::Command::new(kubectl);
        command.env("KUBECONFIG", &self.kubeconfig);
        command
    }
}

/// Where `hack/testenv up` writes its settings: `<workspace>/.testenv/env`, or
/// `$STACKUBE_TESTENV_FILE`.
pub fn env_file() -> PathBuf {
    if let Some(path) = std::env::var_os("STACKUBE_TESTENV_FILE") {
        return PathBuf::from(path);
    }
    workspace_root().join(".testenv").join("env")
}

/// The workspace root: the nearest ancestor of the package under test that holds `Cargo.lock`.
///
/// The package directory is taken from `CARGO_MANIFEST_DIR` at *run* time (cargo sets it for
/// tests, benches and `cargo run`). The compile-time value is only a fallback: cargo does not
/// rebuild when the same sources move, so with a shared `CARGO_TARGET_DIR` (as CI keeps) a binary
/// built in another checkout would otherwise read that checkout's files.
pub fn workspace_root() -> PathBuf {
    let package = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    package
        .ancestors()
        .find(|dir| dir.join("Cargo.lock").is_file())
        .unwrap_or(&package)
        .to_path_buf()
}

/// Parses the `export KEY="value"` lines `hack/testenv` writes (shell-quoted with double quotes,
/// no expansions). Other lines are ignored.
pub fn parse_env_file(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter_map(|line| {
            let line = line.trim();
            let line = line.strip_prefix("export ").unwrap_or(line);
            let (key, value) = line.split_once('=')?;
            if key.is_empty() || key.starts_with('#') || key.contains(' ') {
                return None;
            }
            let value = value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
                .unwrap_or(value);
            Some((key.to_owned(), value.to_owned()))
        })
        .collect()
}

/// A name for a test resource: `st-<prefix>-<8 random lowercase alphanumerics>`, so that tests
/// run in parallel (and reruns after a crash) never collide, and leftovers are recognisable.
pub fn unique_name(prefix: &str) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    let suffix: String = (0..8)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect();
    format!("st-{prefix}-{suffix}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_file_lines_are_parsed_and_unquoted() {
        let text = "# written by hack/testenv\nexport OS_AUTH_URL=\"http://127.0.0.1:5000/v3\"\nexport OS_REGION_NAME='RegionOne'\nPLAIN=x\nexport PATH=\"/a:$PATH\"\nnot a line\n";
        let vars = parse_env_file(text);
        assert_eq!(vars["OS_AUTH_URL"], "http://127.0.0.1:5000/v3");
        assert_eq!(vars["OS_REGION_NAME"], "RegionOne");
        assert_eq!(vars["PLAIN"], "x");
        assert!(!vars.contains_key("# written by hack/testenv"));
        assert!(!vars.contains_key("not a line"));
    }

    #[test]
    fn unique_names_differ_and_are_dns_labels() {
        let a = unique_name("net");
        let b = unique_name("net");
        assert_ne!(a, b);
        assert!(a.starts_with("st-net-"));
        assert!(
            a.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        );
    }
}

/// Runs `hack/testenv <args>`; returns (success, stdout+stderr).
pub fn testenv_command(args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new(workspace_root().join("hack/testenv"))
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("hack/testenv runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Services of the test environment stopped for a test (`hack/testenv stop`). They are started
/// again by [`Outage::end`] or, should the test fail first, on drop: the shared environment never
/// stays without them.
#[derive(Debug)]
pub struct Outage {
    services: Vec<&'static str>,
    down: bool,
}

impl Outage {
    /// `hack/testenv stop <services>`.
    ///
    /// # Panics
    /// When the services cannot be stopped.
    pub fn start(services: &[&'static str]) -> Outage {
        // Down from before the stop is attempted: a half-done stop is restored too.
        let outage = Outage {
            services: services.to_vec(),
            down: true,
        };
        let mut args = vec!["stop"];
        args.extend(services);
        let (ok, out) = testenv_command(&args);
        assert!(ok, "hack/testenv stop {services:?}: {out}");
        eprintln!("stopped {services:?}");
        outage
    }

    /// `hack/testenv up`: starts what is stopped and waits until it is ready.
    ///
    /// # Panics
    /// When the environment does not come back.
    pub fn end(&mut self) {
        self.down = false;
        let started = std::time::Instant::now();
        let (ok, out) = testenv_command(&["up"]);
        assert!(
            ok,
            "hack/testenv up (bringing {:?} back): {out}",
            self.services
        );
        eprintln!(
            "started {:?} again: hack/testenv up took {:?}",
            self.services,
            started.elapsed()
        );
    }
}

impl Drop for Outage {
    fn drop(&mut self) {
        if self.down {
            let (ok, out) = testenv_command(&["up"]);
            if !ok {
                eprintln!(
                    "restoring {:?} failed: hack/testenv up: {out}",
                    self.services
                );
            }
        }
    }
}

/// `GET path` on the HTTP/1.1 endpoint at `addr` (a metrics or health endpoint on loopback):
/// the response's status line and headers, and its body. `None` when nothing answers.
pub fn http_get(addr: std::net::SocketAddr, path: &str) -> Option<(String, String)> {
    use std::io::{Read as _, Write as _};
    let mut stream =
        std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(2)).ok()?;
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    Some((head.to_owned(), body.to_owned()))
}

/// The value of the sample `series` (`name{labels}` exactly as exported) in /metrics text.
pub fn metric_value(metrics: &str, series: &str) -> Option<f64> {
    metrics.lines().find_map(|line| {
        line.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

/// Replaces (or appends) the section headed `heading` (a `## ` line) of `docs/benchmarks.md`
/// with `section` (which starts with that heading); other sections are left as they are.
pub fn write_benchmark_section(heading: &str, section: &str) -> std::io::Result<PathBuf> {
    let path = workspace_root().join("docs/benchmarks.md");
    let old = std::fs::read_to_string(&path).unwrap_or_else(|_| {
        "# Benchmarks\n\nRecorded results of the benchmarks; each section is rewritten by the \
         benchmark named in it.\n"
            .to_owned()
    });
    std::fs::write(&path, replace_section(&old, heading, section))?;
    Ok(path)
}

fn replace_section(old: &str, heading: &str, section: &str) -> String {
    let mut before = String::new();
    let mut after = String::new();
    let mut state = 0; // 0: before the section, 1: inside it, 2: after it
    for line in old.split_inclusive('\n') {
        match state {
            0 if line.trim_end() == heading => state = 1,
            0 => before.push_str(line),
            1 if line.starts_with("## ") => {
                state = 2;
                after.push_str(line);
            }
            1 => {}
            _ => after.push_str(line),
        }
    }
    let mut text = before.trim_end().to_owned();
    text.push_str("\n\n");
    text.push_str(section.trim_end());
    text.push('\n');
    if !after.is_empty() {
        text.push('\n');
        text.push_str(&after);
    }
    text
}

#[cfg(test)]
mod section_tests {
    use super::replace_section;

    #[test]
    fn a_section_is_replaced_in_place_or_appended() {
        let doc = "# B\n\nintro\n\n## a\nold a\n\n## b\nkeep b\n";
        assert_eq!(
            replace_section(doc, "## a", "## a\nnew a\n"),
            "# B\n\nintro\n\n## a\nnew a\n\n## b\nkeep b\n"
        );
        assert_eq!(
            replace_section(doc, "## c", "## c\nc\n"),
            "# B\n\nintro\n\n## a\nold a\n\n## b\nkeep b\n\n## c\nc\n"
        );
    }
}

/// Runs `command` (with `stdin` written to it, if given) to completion; returns (success,
/// stdout+stderr).
///
/// # Panics
/// When the command cannot be started.
pub fn run_command(mut command: std::process::Command, stdin: Option<&str>) -> (bool, String) {
    use std::io::Write as _;
    use std::process::Stdio;
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    command.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    let mut child = command
        .spawn()
        .unwrap_or_else(|e| panic!("{command:?} does not start: {e}"));
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(input.as_bytes()).expect("stdin written");
    }
    let out = child.wait_with_output().expect("the command finished");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}
