//! In-memory [`Links`], [`Switch`] and [`Ruleset`] for unit tests of the node daemons' flows,
//! with fault injection: "the 2nd `create_pod_link` from now fails". They record every call, and
//! model what the flows rely on: a pod interface needs its namespace, a parked end must exist to
//! be adopted, deleting a veth's host end removes the whole pair, a bridge port keeps its marks,
//! an nftables transaction applies whole or not at all and is refused as nft refuses it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;

use crate::links::Links;
use crate::ovs::{BridgePort, CONTAINER_KEY, IFACE_ID_KEY, Marks, Switch};
use crate::veth::{PodLink, PodLinkState};
use crate::{NetError, Result};

mod ruleset;

pub use ruleset::FakeRuleset;

/// Planned failures of a fake, by operation name (the trait method's name).
#[derive(Debug, Default)]
struct Plan {
    /// Operation → countdowns: a call fails when its countdown reaches zero.
    failing: BTreeMap<String, Vec<usize>>,
    calls: Vec<String>,
}

impl Plan {
    /// Makes the `n`-th next call (1-based) of `op` fail.
    fn fail_nth(&mut self, op: &str, n: usize) {
        self.failing.entry(op.to_owned()).or_default().push(n);
    }

    /// Records a call of `op` and says whether it must fail.
    fn call(&mut self, op: &str, detail: &str) -> Result<()> {
        self.calls.push(format!("{op} {detail}"));
        let Some(countdowns) = self.failing.get_mut(op) else {
            return Ok(());
        };
        let mut fail = false;
        countdowns.retain_mut(|n| {
            *n -= 1;
            let due = *n == 0;
            fail |= due;
            !due
        });
        if fail {
            Err(NetError::Other(format!(
                "injected failure of {op} {detail}"
            )))
        } else {
            Ok(())
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// What [`FakeLinks`] holds.
#[derive(Debug, Default)]
pub struct LinkState {
    /// Network namespaces that exist.
    pub netns: BTreeSet<PathBuf>,
    /// Host-namespace veth ends: name → its peer's name (a parked end, or `netns:ifname`).
    pub host: BTreeMap<String, String>,
    /// Interfaces inside pods, by (namespace, name).
    pub pods: BTreeMap<(PathBuf, String), PodLinkState>,
}

/// An in-memory [`Links`].
#[derive(Debug, Default)]
pub struct FakeLinks {
    state: Mutex<LinkState>,
    plan: Mutex<Plan>,
}

impl FakeLinks {
    /// Empty: no namespaces, no links.
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes the network namespace `path` exist.
    pub fn add_netns(&self, path: impl Into<PathBuf>) {
        lock(&self.state).netns.insert(path.into());
    }

    /// The `n`-th next call (1-based) of operation `op` fails.
    pub fn fail_nth(&self, op: &str, n: usize) {
        lock(&self.plan).fail_nth(op, n);
    }

    /// Every call so far: `operation detail`.
    pub fn calls(&self) -> Vec<String> {
        lock(&self.plan).calls.clone()
    }

    /// The state, to seed or check.
    pub fn state(&self) -> MutexGuard<'_, LinkState> {
        lock(&self.state)
    }

    fn pod_end(link: &PodLink) -> PodLinkState {
        PodLinkState {
            mac: Some(link.mac),
            addresses: vec![link.address],
            up: true,
        }
    }
}

#[async_trait]
impl Links for FakeLinks {
    async fn create_pod_link(&self, link: &PodLink) -> Result<()> {
        lock(&self.plan).call("create_pod_link", &link.host_name)?;
        let mut state = lock(&self.state);
        if !state.netns.contains(&link.netns) {
            return Err(NetError::NoNetns(link.netns.display().to_string()));
        }
        let key = (link.netns.clone(), link.if_name.clone());
        if state.host.contains_key(&link.host_name) || state.pods.contains_key(&key) {
            return Err(NetError::Other(format!("{} exists", link.host_name)));
        }
        state.host.insert(
            link.host_name.clone(),
            format!("{}:{}", link.netns.display(), link.if_name),
        );
        state.pods.insert(key, Self::pod_end(link));
        Ok(())
    }

    async fn create_parked(
        &self,
        host_name: &str,
        parked_name: &str,
        _mac: [u8; 6],
        _mtu: u32,
    ) -> Result<()> {
        lock(&self.plan).call("create_parked", host_name)?;
        let mut state = lock(&self.state);
        if state.host.contains_key(host_name) || state.host.contains_key(parked_name) {
            return Err(NetError::Other(format!("{host_name} exists")));
        }
        state
            .host
            .insert(host_name.to_owned(), parked_name.to_owned());
        state
            .host
            .insert(parked_name.to_owned(), host_name.to_owned());
        Ok(())
    }

    async fn adopt_parked(&self, parked_name: &str, link: &PodLink) -> Result<()> {
        lock(&self.plan).call("adopt_parked", parked_name)?;
        let mut state = lock(&self.state);
        if !state.netns.contains(&link.netns) {
            return Err(NetError::NoNetns(link.netns.display().to_string()));
        }
        let key = (link.netns.clone(), link.if_name.clone());
        if state.pods.contains_key(&key) {
            return Err(NetError::Other(format!(
                "{} exists in {}",
                link.if_name,
                link.netns.display()
            )));
        }
        let host_end = state
            .host
            .remove(parked_name)
            .ok_or_else(|| NetError::Other(format!("parked link {parked_name} does not exist")))?;
        state.host.insert(
            host_end,
            format!("{}:{}", link.netns.display(), link.if_name),
        );
        state.pods.insert(key, Self::pod_end(link));
        Ok(())
    }

    async fn delete(&self, name: &str) -> Result<()> {
        lock(&self.plan).call("delete", name)?;
        let mut state = lock(&self.state);
        if let Some(peer) = state.host.remove(name) {
            state.host.remove(&peer);
            if let Some((netns, if_name)) = peer.rsplit_once(':') {
                state
                    .pods
                    .remove(&(PathBuf::from(netns), if_name.to_owned()));
            }
        }
        Ok(())
    }

    async fn exists(&self, name: &str) -> Result<bool> {
        lock(&self.plan).call("exists", name)?;
        Ok(lock(&self.state).host.contains_key(name))
    }

    async fn inspect(&self, netns: &Path, if_name: &str) -> Result<Option<PodLinkState>> {
        lock(&self.plan).call("inspect", if_name)?;
        let state = lock(&self.state);
        if !state.netns.contains(netns) {
            return Err(NetError::NoNetns(netns.display().to_string()));
        }
        Ok(state
            .pods
            .get(&(netns.to_owned(), if_name.to_owned()))
            .cloned())
    }
}

/// An in-memory [`Switch`]: ports by name with their `external_ids`.
#[derive(Debug, Default)]
pub struct FakeSwitch {
    ports: Mutex<BTreeMap<String, BTreeMap<String, String>>>,
    plan: Mutex<Plan>,
}

impl FakeSwitch {
    /// An empty bridge.
    pub fn new() -> Self {
        Self::default()
    }

    /// The `n`-th next call (1-based) of operation `op` fails.
    pub fn fail_nth(&self, op: &str, n: usize) {
        lock(&self.plan).fail_nth(op, n);
    }

    /// Every call so far: `operation port`.
    pub fn calls(&self) -> Vec<String> {
        lock(&self.plan).calls.clone()
    }

    /// The ports and their `external_ids`, to seed or check.
    pub fn ports(&self) -> MutexGuard<'_, BTreeMap<String, BTreeMap<String, String>>> {
        lock(&self.ports)
    }
}

#[async_trait]
impl Switch for FakeSwitch {
    async fn add_port(&self, port: &str, iface_id: &str, mac: &str, marks: &Marks) -> Result<()> {
        lock(&self.plan).call("add_port", port)?;
        let mut ports = lock(&self.ports);
        let ids = ports.entry(port.to_owned()).or_default();
        ids.insert(IFACE_ID_KEY.to_owned(), iface_id.to_owned());
        ids.insert("attached-mac".to_owned(), mac.to_owned());
        for (k, v) in marks {
            ids.insert((*k).to_owned(), v.clone());
        }
        Ok(())
    }

    async fn mark(&self, port: &str, marks: &Marks) -> Result<()> {
        lock(&self.plan).call("mark", port)?;
        let mut ports = lock(&self.ports);
        let ids = ports.get_mut(port).ok_or_else(|| NetError::Command {
            command: format!("ovs-vsctl set Interface {port}"),
            message: format!("no row \"{port}\" in table Interface"),
        })?;
        for (k, v) in marks {
            ids.insert((*k).to_owned(), v.clone());
        }
        Ok(())
    }

    async fn del_port(&self, port: &str) -> Result<()> {
        lock(&self.plan).call("del_port", port)?;
        lock(&self.ports).remove(port);
        Ok(())
    }

    async fn stackube_ports(&self) -> Result<Vec<BridgePort>> {
        lock(&self.plan).call("stackube_ports", "")?;
        Ok(lock(&self.ports)
            .iter()
            .filter(|(_, ids)| ids.contains_key(CONTAINER_KEY))
            .map(|(name, ids)| BridgePort {
                name: name.clone(),
                external_ids: ids.clone(),
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(netns: &str) -> PodLink {
        PodLink {
            netns: PathBuf::from(netns),
            if_name: "eth0".into(),
            host_name: "tapabc".into(),
            mac: [0xfa, 0x16, 0x3e, 0, 0, 1],
            mtu: 1450,
            address: "10.0.0.5/24".parse().expect("a CIDR"),
            gateway: None,
        }
    }

    #[tokio::test]
    async fn pod_links_need_their_namespace_and_deleting_the_host_end_removes_the_pair() {
        let links = FakeLinks::new();
        let err = links.create_pod_link(&link("/ns/a")).await.unwrap_err();
        assert!(matches!(err, NetError::NoNetns(_)), "{err}");
        links.add_netns("/ns/a");
        links.create_pod_link(&link("/ns/a")).await.unwrap();
        assert!(
            links
                .inspect(Path::new("/ns/a"), "eth0")
                .await
                .unwrap()
                .is_some()
        );
        links.delete("tapabc").await.unwrap();
        assert!(
            links
                .inspect(Path::new("/ns/a"), "eth0")
                .await
                .unwrap()
                .is_none()
        );
        assert!(!links.exists("tapabc").await.unwrap());
    }

    #[tokio::test]
    async fn a_parked_end_is_adopted_once_and_injected_failures_fire_on_the_nth_call() {
        let links = FakeLinks::new();
        links.add_netns("/ns/a");
        links.add_netns("/ns/b");
        links
            .create_parked("tapabc", "pkabc", [0; 6], 1450)
            .await
            .unwrap();
        links.adopt_parked("pkabc", &link("/ns/a")).await.unwrap();
        assert!(links.adopt_parked("pkabc", &link("/ns/b")).await.is_err());
        links.fail_nth("exists", 2);
        assert!(links.exists("tapabc").await.unwrap());
        assert!(links.exists("tapabc").await.is_err());
        assert!(links.exists("tapabc").await.is_ok());
    }

    #[tokio::test]
    async fn bridge_ports_keep_their_marks_and_only_marked_ones_are_listed() {
        let switch = FakeSwitch::new();
        switch
            .add_port(
                "tap1",
                "p1",
                "fa:16:3e:00:00:01",
                &vec![(CONTAINER_KEY, "pool".into())],
            )
            .await
            .unwrap();
        switch
            .add_port("tap2", "p2", "m", &Vec::new())
            .await
            .unwrap();
        switch
            .mark("tap1", &vec![(CONTAINER_KEY, "c1".into())])
            .await
            .unwrap();
        let listed = switch.stackube_ports().await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].external_ids[CONTAINER_KEY], "c1");
        assert_eq!(listed[0].external_ids[IFACE_ID_KEY], "p1");
        assert!(switch.mark("tap9", &Vec::new()).await.is_err());
    }
}
