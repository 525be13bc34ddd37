//! Open vSwitch ports on the integration bridge, through `ovs-vsctl` (one atomic OVSDB
//! transaction per call, as ovn-kubernetes does). The Neutron OVS agent wires a port whose
//! Interface carries `external_ids:iface-id=<neutron port id>`, `attached-mac` and
//! `iface-status=active`; Stackube adds its own marks (`stackube-container`, the CNI container
//! id, and the pod's keys beside it), so that garbage collection can tell its ports apart from
//! everything else on the bridge. OVSDB is persistent: a mark written in the same transaction as
//! a change is the durable record of that change.
//!
//! [`Switch`] is the trait the node daemon uses; [`Bridge`] implements it with `ovs-vsctl`, and
//! [`FakeSwitch`](crate::fake::FakeSwitch) in memory.

use std::collections::BTreeMap;

use async_trait::async_trait;

use crate::{NetError, Result};

/// The `external_ids` key with the CNI container id of the pod a port belongs to.
pub const CONTAINER_KEY: &str = "stackube-container";
/// The `external_ids` key with the namespace of the pod a port belongs to.
pub const POD_NAMESPACE_KEY: &str = "stackube-pod-namespace";
/// The `external_ids` key with the name of the pod a port belongs to.
pub const POD_NAME_KEY: &str = "stackube-pod-name";
/// The `external_ids` key with the uid of the pod a port belongs to.
pub const POD_UID_KEY: &str = "stackube-pod-uid";
/// The `external_ids` key Neutron's agent wires by: the Neutron port id.
pub const IFACE_ID_KEY: &str = "iface-id";

/// Stackube's marks on a bridge port (`external_ids` keys and values), written together.
pub type Marks = Vec<(&'static str, String)>;

/// The integration bridge, as the node daemon uses it.
#[async_trait]
pub trait Switch: Send + Sync {
    /// Adds (or updates) port `port` for Neutron port `iface_id` with MAC `mac`, with `marks`,
    /// and waits until ovs-vswitchd has it.
    async fn add_port(&self, port: &str, iface_id: &str, mac: &str, marks: &Marks) -> Result<()>;
    /// Sets `marks` on the existing port `port` in one transaction, without waiting for
    /// ovs-vswitchd (it does not act on Stackube's keys).
    async fn mark(&self, port: &str, marks: &Marks) -> Result<()>;
    /// Removes port `port`; a missing port is fine.
    async fn del_port(&self, port: &str) -> Result<()>;
    /// The ports whose Interface carries [`CONTAINER_KEY`].
    async fn stackube_ports(&self) -> Result<Vec<BridgePort>>;
}

/// The integration bridge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bridge {
    /// Its name (`br-int`).
    pub name: String,
}

/// A Stackube port on the bridge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BridgePort {
    /// The port's (and interface's) name: the veth's host end.
    pub name: String,
    /// The Interface's `external_ids`.
    pub external_ids: BTreeMap<String, String>,
}

async fn vsctl(args: &[String]) -> Result<String> {
    let output = tokio::process::Command::new("ovs-vsctl")
        .arg("--timeout=10")
        .args(args)
        .output()
        .await
        .map_err(|e| NetError::Command {
            command: "ovs-vsctl".into(),
            message: format!("cannot run: {e}"),
        })?;
    if output.status.success() {
        return Ok(String::from_utf8_lossy(&output.stdout).into_owned());
    }
    Err(NetError::Command {
        command: format!("ovs-vsctl {}", args.join(" ")),
        message: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
    })
}

impl Bridge {
    /// The bridge named `name`.
    pub fn new(name: impl Into<String>) -> Self {
        Self { name: name.into() }
    }
}

fn set_marks(marks: &Marks) -> impl Iterator<Item = String> + '_ {
    marks.iter().map(|(k, v)| format!("external_ids:{k}={v}"))
}

#[async_trait]
impl Switch for Bridge {
    async fn add_port(&self, port: &str, iface_id: &str, mac: &str, marks: &Marks) -> Result<()> {
        let args: Vec<String> = [
            "--may-exist",
            "add-port",
            &self.name,
            port,
            "--",
            "set",
            "Interface",
            port,
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .chain([
            format!("external_ids:{IFACE_ID_KEY}={iface_id}"),
            format!("external_ids:attached-mac={mac}"),
            "external_ids:iface-status=active".to_owned(),
        ])
        .chain(set_marks(marks))
        .collect();
        vsctl(&args).await.map(|_| ())
    }

    async fn mark(&self, port: &str, marks: &Marks) -> Result<()> {
        let args: Vec<String> = ["--no-wait", "set", "Interface", port]
            .iter()
            .map(|s| (*s).to_owned())
            .chain(set_marks(marks))
            .collect();
        vsctl(&args).await.map(|_| ())
    }

    async fn del_port(&self, port: &str) -> Result<()> {
        let args: Vec<String> = ["--if-exists", "del-port", &self.name, port]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        vsctl(&args).await.map(|_| ())
    }

    async fn stackube_ports(&self) -> Result<Vec<BridgePort>> {
        let args: Vec<String> = [
            "--format=json",
            "--columns=name,external_ids",
            "find",
            "Interface",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .chain([format!("external_ids:{CONTAINER_KEY}!=\"\"")])
        .collect();
        let text = vsctl(&args).await?;
        parse_find(&text)
    }
}

/// Parses `ovs-vsctl --format=json --columns=name,external_ids find Interface …`.
fn parse_find(text: &str) -> Result<Vec<BridgePort>> {
    let bad = |why: &str| NetError::Other(format!("ovs-vsctl find answered {why}: {text}"));
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|_| bad("something that is not JSON"))?;
    let rows = value["data"].as_array().ok_or_else(|| bad("no data"))?;
    let mut ports = Vec::new();
    for row in rows {
        let name = row[0].as_str().ok_or_else(|| bad("a row without a name"))?;
        // external_ids: ["map", [[k, v], ...]]
        let mut external_ids = BTreeMap::new();
        if let Some(pairs) = row[1][1].as_array() {
            for pair in pairs {
                if let (Some(k), Some(v)) = (pair[0].as_str(), pair[1].as_str()) {
                    external_ids.insert(k.to_owned(), v.to_owned());
                }
            }
        }
        ports.push(BridgePort {
            name: name.to_owned(),
            external_ids,
        });
    }
    Ok(ports)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn find_output_parses_into_ports_with_their_ids() {
        let text = r#"{"data":[["tap1234567890a",["map",[["attached-mac","fa:16:3e:00:00:01"],["iface-id","p1"],["stackube-container","c1"]]]]],"headings":["name","external_ids"]}"#;
        let ports = parse_find(text).unwrap();
        assert_eq!(ports.len(), 1);
        assert_eq!(ports[0].name, "tap1234567890a");
        assert_eq!(ports[0].external_ids[CONTAINER_KEY], "c1");
        assert_eq!(ports[0].external_ids["iface-id"], "p1");
        assert!(parse_find("nope").is_err());
        assert_eq!(parse_find(r#"{"data":[],"headings":[]}"#).unwrap(), vec![]);
    }
}
