//! The CNI wire format (spec 1.0 and 1.1): the runtime's environment and stdin in, a result or an
//! error on stdout. Parsing is by hand so that every refusal names the variable or field.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The spec versions kubestack speaks (`VERSION` lists them).
pub const SUPPORTED_VERSIONS: [&str; 2] = ["1.0.0", "1.1.0"];

/// Well-known CNI error codes.
pub mod code {
    /// Incompatible CNI version.
    pub const INCOMPATIBLE_VERSION: u32 = 1;
    /// Unsupported field in the network configuration.
    pub const UNSUPPORTED_FIELD: u32 = 2;
    /// Container unknown or does not exist.
    pub const UNKNOWN_CONTAINER: u32 = 3;
    /// Invalid necessary environment variables.
    pub const INVALID_ENVIRONMENT: u32 = 4;
    /// I/O failure.
    pub const IO_FAILURE: u32 = 5;
    /// Failed to decode content.
    pub const DECODING_FAILURE: u32 = 6;
    /// Invalid network configuration.
    pub const INVALID_NETWORK_CONFIG: u32 = 7;
    /// Try again later.
    pub const TRY_AGAIN_LATER: u32 = 11;
    /// The plugin is not available (STATUS).
    pub const PLUGIN_NOT_AVAILABLE: u32 = 50;
    /// (kubestack) The pod's interface is not as the result said (CHECK).
    pub const INTERFACE_MISMATCH: u32 = 100;
    /// (kubestack) OpenStack refused or failed.
    pub const OPENSTACK: u32 = 101;
    /// (kubestack) Node networking (netlink, Open vSwitch) failed.
    pub const NODE_NETWORKING: u32 = 102;
    /// (kubestack) The pod's namespace is no tenant's and the cluster network is off
    /// (`cluster-network: none`): the pod gets no network.
    pub const NO_NETWORK: u32 = 103;
}

/// A CNI error: what the plugin prints (and exits non-zero with).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{msg} (code {code})")]
pub struct CniError {
    /// The spec version of the answer.
    #[serde(rename = "cniVersion")]
    pub cni_version: String,
    /// A well-known code (< 100) or kubestack's (≥ 100).
    pub code: u32,
    /// What went wrong, naming the variable, field or resource.
    pub msg: String,
    /// More detail.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub details: String,
}

impl CniError {
    /// An error with `code` and `msg`.
    pub fn new(code: u32, msg: impl Into<String>) -> Self {
        Self {
            cni_version: SUPPORTED_VERSIONS[SUPPORTED_VERSIONS.len() - 1].to_owned(),
            code,
            msg: msg.into(),
            details: String::new(),
        }
    }

    /// With `details`.
    pub fn details(mut self, details: impl Into<String>) -> Self {
        self.details = details.into();
        self
    }

    /// Answered in spec version `version`.
    pub fn version(mut self, version: &str) -> Self {
        self.cni_version = version.to_owned();
        self
    }
}

/// The CNI command.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Command {
    /// Attach.
    Add,
    /// Detach.
    Del,
    /// Verify.
    Check,
    /// Is the plugin ready for ADDs.
    Status,
    /// Remove what belongs to no valid attachment.
    Gc,
    /// Supported versions.
    Version,
}

impl Command {
    fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "ADD" => Self::Add,
            "DEL" => Self::Del,
            "CHECK" => Self::Check,
            "STATUS" => Self::Status,
            "GC" => Self::Gc,
            "VERSION" => Self::Version,
            _ => return None,
        })
    }
}

/// The Kubernetes pod of an attachment, from `CNI_ARGS`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodRef {
    /// `K8S_POD_NAMESPACE`.
    pub namespace: String,
    /// `K8S_POD_NAME`.
    pub name: String,
    /// `K8S_POD_UID` (empty if the runtime does not pass it).
    #[serde(default)]
    pub uid: String,
}

/// One invocation: the environment and the network configuration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Invocation {
    /// `CNI_COMMAND`.
    pub command: Command,
    /// `CNI_CONTAINERID` (not for STATUS, GC, VERSION).
    pub container_id: String,
    /// `CNI_NETNS` (ADD, CHECK; optional for DEL).
    pub netns: Option<String>,
    /// `CNI_IFNAME`.
    pub if_name: String,
    /// The pod, from `CNI_ARGS` (ADD; optional for DEL).
    pub pod: Option<PodRef>,
    /// The network configuration's `cniVersion`.
    pub cni_version: String,
    /// The network configuration's `name`.
    pub network_name: String,
    /// `prevResult` (CHECK).
    pub prev_result: Option<Value>,
    /// `cni.dev/valid-attachments` (GC): (container id, interface name).
    pub valid_attachments: Vec<(String, String)>,
    /// Where the node daemon listens (`daemonSocket`, default [`DEFAULT_SOCKET`]).
    pub daemon_socket: String,
}

/// Where the node daemon listens unless the network configuration says `daemonSocket`.
pub const DEFAULT_SOCKET: &str = "/run/stackube/kubestack.sock";

/// Parses `CNI_ARGS` (`K=V;K=V`).
pub fn parse_args(text: &str) -> Result<BTreeMap<String, String>, CniError> {
    let mut args = BTreeMap::new();
    for pair in text.split(';').filter(|p| !p.is_empty()) {
        let Some((k, v)) = pair.split_once('=') else {
            return Err(CniError::new(
                code::INVALID_ENVIRONMENT,
                format!("CNI_ARGS: {pair:?} is not KEY=VALUE"),
            ));
        };
        args.insert(k.to_owned(), v.to_owned());
    }
    Ok(args)
}

/// Parses one invocation from the environment (`var`) and stdin.
pub fn parse(var: impl Fn(&str) -> Option<String>, stdin: &[u8]) -> Result<Invocation, CniError> {
    let env = |name: &str| var(name).filter(|v| !v.is_empty());
    let command_text = env("CNI_COMMAND")
        .ok_or_else(|| CniError::new(code::INVALID_ENVIRONMENT, "CNI_COMMAND is not set"))?;
    let command = Command::parse(&command_text).ok_or_else(|| {
        CniError::new(
            code::INVALID_ENVIRONMENT,
            format!("CNI_COMMAND: {command_text:?} is not ADD, DEL, CHECK, STATUS, GC or VERSION"),
        )
    })?;
    let mut invocation = Invocation {
        command,
        container_id: String::new(),
        netns: None,
        if_name: String::new(),
        pod: None,
        cni_version: SUPPORTED_VERSIONS[SUPPORTED_VERSIONS.len() - 1].to_owned(),
        network_name: String::new(),
        prev_result: None,
        valid_attachments: Vec::new(),
        daemon_socket: DEFAULT_SOCKET.to_owned(),
    };
    if command == Command::Version {
        return Ok(invocation);
    }

    // The network configuration.
    let config: Value = serde_json::from_slice(stdin).map_err(|e| {
        CniError::new(
            code::DECODING_FAILURE,
            format!("the network configuration on stdin is not JSON: {e}"),
        )
    })?;
    let config = config.as_object().ok_or_else(|| {
        CniError::new(
            code::DECODING_FAILURE,
            "the network configuration is not a JSON object",
        )
    })?;
    let string = |field: &str| -> Result<Option<String>, CniError> {
        match config.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(CniError::new(
                code::INVALID_NETWORK_CONFIG,
                format!("network configuration: {field} is not a string"),
            )),
        }
    };
    let version = string("cniVersion")?.ok_or_else(|| {
        CniError::new(
            code::INVALID_NETWORK_CONFIG,
            "network configuration: cniVersion is missing",
        )
    })?;
    if !SUPPORTED_VERSIONS.contains(&version.as_str()) {
        return Err(CniError::new(
            code::INCOMPATIBLE_VERSION,
            format!(
                "network configuration: cniVersion {version:?} is not one of {SUPPORTED_VERSIONS:?}"
            ),
        ));
    }
    invocation.cni_version = version.clone();
    let with_version = |e: CniError| e.version(&version);
    invocation.network_name = string("name").map_err(with_version)?.ok_or_else(|| {
        with_version(CniError::new(
            code::INVALID_NETWORK_CONFIG,
            "network configuration: name is missing",
        ))
    })?;
    match string("type").map_err(with_version)?.as_deref() {
        Some("kubestack") => {}
        Some(other) => {
            return Err(with_version(CniError::new(
                code::INVALID_NETWORK_CONFIG,
                format!("network configuration: type is {other:?}, this plugin is \"kubestack\""),
            )));
        }
        None => {
            return Err(with_version(CniError::new(
                code::INVALID_NETWORK_CONFIG,
                "network configuration: type is missing",
            )));
        }
    }
    if let Some(socket) = string("daemonSocket").map_err(with_version)? {
        invocation.daemon_socket = socket;
    }
    invocation.prev_result = config.get("prevResult").cloned();

    match command {
        Command::Status | Command::Version => return Ok(invocation),
        Command::Gc => {
            if let Some(list) = config.get("cni.dev/valid-attachments") {
                let items = list.as_array().ok_or_else(|| {
                    with_version(CniError::new(
                        code::INVALID_NETWORK_CONFIG,
                        "network configuration: cni.dev/valid-attachments is not a list",
                    ))
                })?;
                for item in items {
                    let id = item.get("containerID").and_then(Value::as_str);
                    let ifname = item.get("ifname").and_then(Value::as_str);
                    match (id, ifname) {
                        (Some(id), Some(ifname)) => invocation
                            .valid_attachments
                            .push((id.to_owned(), ifname.to_owned())),
                        _ => {
                            return Err(with_version(CniError::new(
                                code::INVALID_NETWORK_CONFIG,
                                "network configuration: cni.dev/valid-attachments entries need containerID and ifname",
                            )));
                        }
                    }
                }
            }
            return Ok(invocation);
        }
        Command::Add | Command::Del | Command::Check => {}
    }

    invocation.container_id = env("CNI_CONTAINERID").ok_or_else(|| {
        with_version(CniError::new(
            code::INVALID_ENVIRONMENT,
            "CNI_CONTAINERID is not set",
        ))
    })?;
    invocation.if_name = env("CNI_IFNAME").ok_or_else(|| {
        with_version(CniError::new(
            code::INVALID_ENVIRONMENT,
            "CNI_IFNAME is not set",
        ))
    })?;
    if invocation.if_name.len() > 15 || invocation.if_name.contains(['/', ' ']) {
        return Err(with_version(CniError::new(
            code::INVALID_ENVIRONMENT,
            format!(
                "CNI_IFNAME: {:?} is not a valid interface name",
                invocation.if_name
            ),
        )));
    }
    invocation.netns = env("CNI_NETNS");
    if invocation.netns.is_none() && command != Command::Del {
        return Err(with_version(CniError::new(
            code::INVALID_ENVIRONMENT,
            "CNI_NETNS is not set",
        )));
    }
    let args = parse_args(&env("CNI_ARGS").unwrap_or_default()).map_err(with_version)?;
    match (args.get("K8S_POD_NAMESPACE"), args.get("K8S_POD_NAME")) {
        (Some(namespace), Some(name)) if !namespace.is_empty() && !name.is_empty() => {
            invocation.pod = Some(PodRef {
                namespace: namespace.clone(),
                name: name.clone(),
                uid: args.get("K8S_POD_UID").cloned().unwrap_or_default(),
            });
        }
        _ if command == Command::Add => {
            return Err(with_version(CniError::new(
                code::INVALID_ENVIRONMENT,
                "CNI_ARGS: K8S_POD_NAMESPACE and K8S_POD_NAME are needed (the runtime is not a Kubernetes CRI runtime?)",
            )));
        }
        _ => {}
    }
    if command == Command::Check && invocation.prev_result.is_none() {
        return Err(with_version(CniError::new(
            code::INVALID_NETWORK_CONFIG,
            "network configuration: prevResult is missing (CHECK needs it)",
        )));
    }
    Ok(invocation)
}

/// The answer to `VERSION`.
pub fn version_answer(requested: Option<&str>) -> Value {
    serde_json::json!({
        "cniVersion": requested.filter(|v| SUPPORTED_VERSIONS.contains(v)).unwrap_or(SUPPORTED_VERSIONS[SUPPORTED_VERSIONS.len() - 1]),
        "supportedVersions": SUPPORTED_VERSIONS,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |k: &str| map.get(k).cloned()
    }

    const CONF: &str = r#"{"cniVersion":"1.0.0","name":"stackube","type":"kubestack"}"#;
    const ADD: [(&str, &str); 5] = [
        ("CNI_COMMAND", "ADD"),
        ("CNI_CONTAINERID", "c1"),
        ("CNI_NETNS", "/var/run/netns/cni-1"),
        ("CNI_IFNAME", "eth0"),
        (
            "CNI_ARGS",
            "IgnoreUnknown=1;K8S_POD_NAMESPACE=a;K8S_POD_NAME=web-0;K8S_POD_UID=u1",
        ),
    ];

    #[test]
    fn an_add_parses_with_its_pod() {
        let invocation = parse(env(&ADD), CONF.as_bytes()).unwrap();
        assert_eq!(invocation.command, Command::Add);
        assert_eq!(invocation.container_id, "c1");
        assert_eq!(invocation.netns.as_deref(), Some("/var/run/netns/cni-1"));
        assert_eq!(
            invocation.pod,
            Some(PodRef {
                namespace: "a".into(),
                name: "web-0".into(),
                uid: "u1".into()
            })
        );
        assert_eq!(invocation.daemon_socket, DEFAULT_SOCKET);
    }

    #[test]
    fn bad_environment_or_configuration_names_the_problem_with_a_code() {
        let without = |key: &str| -> Vec<(&str, &str)> {
            ADD.iter().copied().filter(|(k, _)| *k != key).collect()
        };
        type Case<'a> = (Vec<(&'a str, &'a str)>, &'a str, u32, &'a str);
        let cases: Vec<Case<'_>> = vec![
            (
                without("CNI_COMMAND"),
                CONF,
                code::INVALID_ENVIRONMENT,
                "CNI_COMMAND is not set",
            ),
            (
                without("CNI_CONTAINERID"),
                CONF,
                code::INVALID_ENVIRONMENT,
                "CNI_CONTAINERID",
            ),
            (
                without("CNI_NETNS"),
                CONF,
                code::INVALID_ENVIRONMENT,
                "CNI_NETNS",
            ),
            (
                without("CNI_IFNAME"),
                CONF,
                code::INVALID_ENVIRONMENT,
                "CNI_IFNAME",
            ),
            (
                without("CNI_ARGS"),
                CONF,
                code::INVALID_ENVIRONMENT,
                "K8S_POD_NAMESPACE",
            ),
            (ADD.to_vec(), "not json", code::DECODING_FAILURE, "not JSON"),
            (
                ADD.to_vec(),
                r#"{"name":"x","type":"kubestack"}"#,
                code::INVALID_NETWORK_CONFIG,
                "cniVersion is missing",
            ),
            (
                ADD.to_vec(),
                r#"{"cniVersion":"0.3.1","name":"x","type":"kubestack"}"#,
                code::INCOMPATIBLE_VERSION,
                "0.3.1",
            ),
            (
                ADD.to_vec(),
                r#"{"cniVersion":"1.0.0","type":"kubestack"}"#,
                code::INVALID_NETWORK_CONFIG,
                "name is missing",
            ),
            (
                ADD.to_vec(),
                r#"{"cniVersion":"1.0.0","name":"x","type":"bridge"}"#,
                code::INVALID_NETWORK_CONFIG,
                "type is \"bridge\"",
            ),
            (
                ADD.to_vec(),
                r#"{"cniVersion":"1.0.0","name":7,"type":"kubestack"}"#,
                code::INVALID_NETWORK_CONFIG,
                "name is not a string",
            ),
        ];
        for (vars, conf, expected_code, expected) in cases {
            let err = parse(env(&vars), conf.as_bytes()).unwrap_err();
            assert_eq!(err.code, expected_code, "{err}");
            assert!(err.msg.contains(expected), "{} lacks {expected:?}", err.msg);
        }
        let mut bad_command = ADD.to_vec();
        bad_command[0] = ("CNI_COMMAND", "ATTACH");
        assert!(
            parse(env(&bad_command), CONF.as_bytes())
                .unwrap_err()
                .msg
                .contains("ATTACH")
        );
        let mut bad_args = ADD.to_vec();
        bad_args[4] = ("CNI_ARGS", "K8S_POD_NAMESPACE");
        assert!(
            parse(env(&bad_args), CONF.as_bytes())
                .unwrap_err()
                .msg
                .contains("KEY=VALUE")
        );
    }

    #[test]
    fn del_needs_neither_netns_nor_pod_and_version_needs_nothing() {
        let del = [
            ("CNI_COMMAND", "DEL"),
            ("CNI_CONTAINERID", "c1"),
            ("CNI_IFNAME", "eth0"),
        ];
        let invocation = parse(env(&del), CONF.as_bytes()).unwrap();
        assert_eq!((invocation.netns, invocation.pod), (None, None));
        let version = parse(env(&[("CNI_COMMAND", "VERSION")]), b"").unwrap();
        assert_eq!(version.command, Command::Version);
        let answer = version_answer(Some("1.0.0"));
        assert_eq!(
            answer["supportedVersions"],
            serde_json::json!(["1.0.0", "1.1.0"])
        );
    }

    #[test]
    fn gc_reads_the_valid_attachments() {
        let conf = r#"{"cniVersion":"1.1.0","name":"x","type":"kubestack",
            "cni.dev/valid-attachments":[{"containerID":"c1","ifname":"eth0"}]}"#;
        let invocation = parse(env(&[("CNI_COMMAND", "GC")]), conf.as_bytes()).unwrap();
        assert_eq!(
            invocation.valid_attachments,
            vec![("c1".to_owned(), "eth0".to_owned())]
        );
        let bad = r#"{"cniVersion":"1.1.0","name":"x","type":"kubestack","cni.dev/valid-attachments":[{"x":1}]}"#;
        assert!(parse(env(&[("CNI_COMMAND", "GC")]), bad.as_bytes()).is_err());
    }

    #[test]
    fn check_needs_the_previous_result() {
        let mut check = ADD.to_vec();
        check[0] = ("CNI_COMMAND", "CHECK");
        let err = parse(env(&check), CONF.as_bytes()).unwrap_err();
        assert!(err.msg.contains("prevResult"), "{err}");
    }
}
