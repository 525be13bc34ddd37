//! The syncer against an in-memory nftables per router namespace: what it applies, and how it
//! recovers from failures, drift and routers coming and going.

use std::net::{Ipv4Addr, SocketAddrV4};

use stackube_core::proxy::conntrack::StaleEntries;
use stackube_core::proxy::nft::model::NftModel;
use stackube_core::proxy::{Backend, Frontend, FrontendSpec, Protocol};
use stackube_net::fake::FakeRuleset;

use super::*;

const TABLE: &str = "stackube-proxy";

fn frontend(last: u8, protocol: Protocol) -> Frontend {
    Frontend {
        ip: Ipv4Addr::new(10, 96, 0, last),
        protocol,
        port: 53,
    }
}

fn endpoint(last: u8) -> SocketAddrV4 {
    SocketAddrV4::new(Ipv4Addr::new(10, 244, 0, last), 5353)
}

/// A table with `services` frontends 10.96.0.1.. over TCP and one UDP frontend 10.96.0.100
/// with `udp` endpoints.
fn spec(services: u8, udp: &[u8]) -> TableSpec {
    let mut spec = TableSpec::new(["10.96.0.0/12".parse().expect("cidr")]);
    for n in 1..=services {
        spec.insert(
            frontend(n, Protocol::Tcp),
            FrontendSpec {
                comment: format!("t/s{n}"),
                backend: Backend::new([endpoint(n)], None),
            },
        );
    }
    spec.insert(
        frontend(100, Protocol::Udp),
        FrontendSpec {
            comment: "t/dns".into(),
            backend: Backend::new(udp.iter().map(|n| endpoint(*n)), None),
        },
    );
    spec
}

fn desired(tables: &[(&str, TableSpec)]) -> BTreeMap<String, RouterTable> {
    tables
        .iter()
        .map(|(router, spec)| {
            (
                (*router).to_owned(),
                RouterTable {
                    network: format!("{router}/{router}"),
                    spec: spec.clone(),
                    conflicts: BTreeSet::new(),
                },
            )
        })
        .collect()
}

struct Rig {
    ruleset: Arc<FakeRuleset>,
    proxy: Proxy,
}

impl Rig {
    fn new(routers: &[&str]) -> Rig {
        let ruleset = Arc::new(FakeRuleset::new());
        let proxy = Proxy::new(
            ruleset.clone(),
            "/run/netns".into(),
            TABLE.into(),
            Metrics::unregistered(),
        );
        for router in routers {
            ruleset.add_netns(proxy.netns(router));
        }
        Rig { ruleset, proxy }
    }

    /// The router's nftables as the kernel would hold it.
    fn model(&self, router: &str) -> NftModel {
        self.ruleset
            .model(&self.proxy.netns(router))
            .expect("the namespace")
    }

    /// What a full sync of `spec` alone makes.
    fn fresh(spec: &TableSpec) -> NftModel {
        let mut model = NftModel::default();
        model.apply(&nft::full(TABLE, spec)).expect("a full sync");
        model
    }

    /// A sync told that anything may have changed in every router.
    async fn sync(&mut self, tables: &BTreeMap<String, RouterTable>) -> Outcome {
        let changes = tables
            .keys()
            .map(|router| (router.clone(), Changed::Whole))
            .collect();
        self.proxy.sync(tables, &changes).await
    }

    fn applies(&self) -> usize {
        self.ruleset
            .calls()
            .iter()
            .filter(|c| c.starts_with("apply "))
            .count()
    }
}

#[tokio::test]
async fn the_first_sync_is_full_and_then_only_changes_are_applied() {
    let mut rig = Rig::new(&["r1"]);
    let first = desired(&[("r1", spec(3, &[1]))]);
    let outcome = rig.sync(&first).await;
    assert_eq!(outcome.full, vec!["r1".to_owned()]);
    assert_eq!(rig.model("r1"), Rig::fresh(&first["r1"].spec));
    assert!(rig.proxy.is_synced(&first));

    // Nothing changed: nothing applied.
    let applies = rig.applies();
    assert_eq!(rig.sync(&first).await, Outcome::default());
    assert_eq!(rig.applies(), applies);

    let second = desired(&[("r1", spec(4, &[1]))]);
    let outcome = rig.sync(&second).await;
    assert_eq!(outcome.partial, vec!["r1".to_owned()]);
    assert_eq!(rig.model("r1"), Rig::fresh(&second["r1"].spec));
}

#[tokio::test]
async fn a_router_hosted_elsewhere_is_left_alone_and_synced_once_it_appears_here() {
    let mut rig = Rig::new(&["r1"]);
    let tables = desired(&[("r1", spec(1, &[])), ("r2", spec(2, &[]))]);
    let outcome = rig.sync(&tables).await;
    assert_eq!(outcome.full, vec!["r1".to_owned()]);
    assert!(rig.proxy.is_synced(&tables), "r2 is not this node's");
    rig.ruleset.add_netns(rig.proxy.netns("r2"));
    assert!(!rig.proxy.is_synced(&tables));
    let outcome = rig.sync(&tables).await;
    assert_eq!(outcome.full, vec!["r2".to_owned()]);
    assert_eq!(rig.model("r2"), Rig::fresh(&tables["r2"].spec));
}

#[tokio::test]
async fn a_failed_transaction_changes_nothing_and_the_next_sync_replaces_the_table_whole() {
    let mut rig = Rig::new(&["r1"]);
    rig.sync(&desired(&[("r1", spec(2, &[]))])).await;
    let before = rig.model("r1");
    let wanted = desired(&[("r1", spec(3, &[]))]);
    rig.ruleset.fail_nth("apply", 1);
    let outcome = rig.sync(&wanted).await;
    assert_eq!(outcome.failed.len(), 1, "{outcome:?}");
    assert_eq!(
        rig.model("r1"),
        before,
        "a refused transaction leaves the table"
    );
    assert!(!rig.proxy.is_synced(&wanted));
    let outcome = rig.sync(&wanted).await;
    assert_eq!(outcome.full, vec!["r1".to_owned()]);
    assert_eq!(rig.model("r1"), Rig::fresh(&wanted["r1"].spec));
}

#[tokio::test]
async fn a_table_flushed_by_hand_is_found_and_replaced() {
    let mut rig = Rig::new(&["r1", "r2"]);
    let tables = desired(&[("r1", spec(2, &[])), ("r2", spec(2, &[]))]);
    rig.sync(&tables).await;
    assert_eq!(rig.proxy.check_drift().await, 0, "nothing drifted yet");
    let netns = rig.proxy.netns("r1");
    rig.ruleset.tamper(
        &netns,
        &[Command::FlushChain {
            table: TABLE.into(),
            name: PROBE_CHAIN.into(),
        }],
    );
    assert_ne!(rig.model("r1"), Rig::fresh(&tables["r1"].spec));
    assert_eq!(rig.proxy.check_drift().await, 1);
    let outcome = rig.sync(&tables).await;
    assert_eq!(outcome.full, vec!["r1".to_owned()]);
    assert_eq!(rig.model("r1"), Rig::fresh(&tables["r1"].spec));
    // A deleted table too.
    rig.ruleset.tamper(
        &netns,
        &[Command::DeleteTable {
            table: TABLE.into(),
        }],
    );
    assert_eq!(rig.proxy.check_drift().await, 1);
    rig.sync(&tables).await;
    assert_eq!(rig.model("r1"), Rig::fresh(&tables["r1"].spec));
}

#[tokio::test]
async fn a_router_whose_network_is_gone_loses_its_table() {
    let mut rig = Rig::new(&["r1", "r2"]);
    rig.sync(&desired(&[("r1", spec(1, &[])), ("r2", spec(1, &[]))]))
        .await;
    rig.sync(&desired(&[("r1", spec(1, &[]))])).await;
    assert!(!rig.model("r2").has_table(TABLE));
    assert!(rig.model("r1").has_table(TABLE));
}

#[tokio::test]
async fn a_udp_endpoint_that_goes_has_its_conntrack_entries_deleted() {
    let mut rig = Rig::new(&["r1"]);
    rig.sync(&desired(&[("r1", spec(1, &[7, 8]))])).await;
    assert!(rig.ruleset.deleted_entries().is_empty());
    rig.sync(&desired(&[("r1", spec(1, &[8]))])).await;
    assert_eq!(
        rig.ruleset.deleted_entries(),
        vec![(
            rig.proxy.netns("r1"),
            StaleEntries::Endpoint {
                frontend: frontend(100, Protocol::Udp),
                endpoint: endpoint(7),
            }
        )]
    );
}

#[tokio::test]
async fn an_update_applies_only_the_frontends_named_and_ends_where_a_full_sync_would() {
    let mut rig = Rig::new(&["r1"]);
    let first = desired(&[("r1", spec(3, &[1, 2]))]);
    rig.sync(&first).await;
    let second = desired(&[("r1", spec(4, &[2]))]);
    let changed = [frontend(4, Protocol::Tcp), frontend(100, Protocol::Udp)];
    let changes = BTreeMap::from([(
        "r1".to_owned(),
        Changed::Frontends(changed.into_iter().collect()),
    )]);
    let outcome = rig.proxy.sync(&second, &changes).await;
    assert_eq!(outcome.partial, vec!["r1".to_owned()]);
    assert_eq!(rig.model("r1"), Rig::fresh(&second["r1"].spec));
    assert!(rig.proxy.is_synced(&second));
    // What it applied is what it now holds: nothing more to do, and the next change diffs
    // against it.
    let applies = rig.applies();
    assert_eq!(
        rig.proxy.sync(&second, &BTreeMap::new()).await,
        Outcome::default()
    );
    assert_eq!(rig.applies(), applies);
    let third = desired(&[("r1", spec(2, &[2]))]);
    let changes = BTreeMap::from([(
        "r1".to_owned(),
        Changed::Frontends((3..=4).map(|n| frontend(n, Protocol::Tcp)).collect()),
    )]);
    rig.proxy.sync(&third, &changes).await;
    assert_eq!(rig.model("r1"), Rig::fresh(&third["r1"].spec));
    assert_eq!(
        rig.ruleset.deleted_entries(),
        vec![(
            rig.proxy.netns("r1"),
            StaleEntries::Endpoint {
                frontend: frontend(100, Protocol::Udp),
                endpoint: endpoint(1),
            }
        )],
        "the UDP endpoint that went"
    );
}
