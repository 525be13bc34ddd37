//! stackube-proxy's rulesets on the real kernel and Debian's nft: a network namespace made for
//! the test, a full sync and updates applied by `Nft` (so the text core renders is what nft
//! 1.0.6 accepts), the dispatch chain's rules counted over netlink (and found gone after a flush
//! by hand), a refused transaction that changes nothing, and conntrack asked to delete entries.

use std::net::{Ipv4Addr, SocketAddrV4};

use stackube_core::proxy::conntrack::StaleEntries;
use stackube_core::proxy::nft::{self, Command as Nft};
use stackube_core::proxy::{Backend, Frontend, FrontendSpec, Protocol, TableSpec};
use stackube_net::nft::{Nft as Real, Ruleset};

mod common;

use common::Netns;

const TABLE: &str = "stackube-proxy";

fn spec(endpoints: &[u8], affinity: Option<u32>) -> TableSpec {
    let mut spec = TableSpec::new(["10.96.0.0/12".parse().expect("cidr")]);
    for (port, protocol) in [
        (80, Protocol::Tcp),
        (53, Protocol::Udp),
        (9000, Protocol::Sctp),
    ] {
        spec.insert(
            Frontend {
                ip: Ipv4Addr::new(10, 96, 0, 10),
                protocol,
                port,
            },
            FrontendSpec {
                comment: format!("test/web:{port}"),
                backend: Backend::new(
                    endpoints
                        .iter()
                        .map(|e| SocketAddrV4::new(Ipv4Addr::new(10, 244, 0, *e), 8080)),
                    affinity,
                ),
            },
        );
    }
    spec
}

#[tokio::test]
async fn rulesets_apply_on_the_real_nft_and_a_flush_by_hand_is_seen() {
    let ns = Netns::new();
    let real = Real::default();
    assert!(real.netns_exists(&ns.path()));
    assert_eq!(
        real.count_rules(&ns.path(), TABLE, "nat-prerouting")
            .await
            .unwrap(),
        0
    );

    // A full sync, then updates through every kind of change.
    let steps = [
        spec(&[5, 6, 7], None),
        spec(&[], None),
        spec(&[6, 8], None),
        spec(&[6, 8], Some(60)),
        spec(&[8, 9], Some(60)),
        spec(&[8, 9], Some(30)),
        spec(&[1], None),
    ];
    real.apply(&ns.path(), &nft::full(TABLE, &steps[0]))
        .await
        .expect("a full sync");
    for pair in steps.windows(2) {
        real.apply(&ns.path(), &nft::update(TABLE, &pair[0], &pair[1]))
            .await
            .unwrap_or_else(|e| panic!("an update to {:?}: {e}", pair[1]));
    }
    let listed = ns.nft(&["list", "table", "inet", TABLE]);
    assert!(listed.contains("10.244.0.1 . 8080"), "{listed}");
    assert!(!listed.contains("10.244.0.9 . 8080"), "{listed}");
    assert_eq!(
        real.count_rules(&ns.path(), TABLE, "nat-prerouting")
            .await
            .unwrap(),
        1
    );

    // A refused transaction (an element of a map that does not exist) changes nothing.
    let refused = [Nft::DeleteElements {
        table: TABLE.into(),
        set: "no-such-map".into(),
        keys: vec!["10.96.0.10 . tcp . 80".into()],
    }];
    let error = real
        .apply(&ns.path(), &refused)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("no-such-map") || error.contains("No such file"),
        "{error}"
    );
    assert_eq!(ns.nft(&["list", "table", "inet", TABLE]), listed);

    // Flushed by hand: the dispatch rule is gone, and the count says so.
    ns.nft(&["flush", "table", "inet", TABLE]);
    assert_eq!(
        real.count_rules(&ns.path(), TABLE, "nat-prerouting")
            .await
            .unwrap(),
        0
    );
    ns.nft(&["delete", "table", "inet", TABLE]);
    assert_eq!(
        real.count_rules(&ns.path(), TABLE, "nat-prerouting")
            .await
            .unwrap(),
        0
    );

    // Nothing to delete is not an error.
    let stale = [StaleEntries::Endpoint {
        frontend: Frontend {
            ip: Ipv4Addr::new(10, 96, 0, 10),
            protocol: Protocol::Udp,
            port: 53,
        },
        endpoint: SocketAddrV4::new(Ipv4Addr::new(10, 244, 0, 5), 8080),
    }];
    assert_eq!(real.delete_entries(&ns.path(), &stale).await.unwrap(), 0);
}

#[tokio::test]
async fn a_full_sync_of_thousands_of_elements_streams_in_one_transaction() {
    let ns = Netns::new();
    let real = Real::default();
    // 1,500 frontends × 2 endpoints: several `add element` batches per map.
    let mut big = TableSpec::new(["10.96.0.0/12".parse().expect("cidr")]);
    for n in 0..1_500u32 {
        let endpoints =
            (0..2u32).map(|e| SocketAddrV4::new(Ipv4Addr::from(0x0af4_0000 + n * 2 + e), 8080));
        big.insert(
            Frontend {
                ip: Ipv4Addr::from(0x0a60_0000 + n),
                protocol: Protocol::Tcp,
                port: 80,
            },
            FrontendSpec {
                comment: format!("test/s{n}"),
                backend: Backend::new(endpoints, None),
            },
        );
    }
    real.apply_streamed(&ns.path(), &mut nft::full_lazy(TABLE, &big))
        .await
        .expect("a streamed full sync");
    let listed = ns.nft(&["list", "map", "inet", TABLE, "endpoints-2"]);
    assert_eq!(listed.matches(". 8080").count(), 3_000, "every slot");
    // A streamed transaction that nft refuses at its end changes nothing either.
    let small = spec(&[5], None);
    let mut refused = nft::full_lazy(TABLE, &small).chain([Nft::DeleteElements {
        table: TABLE.into(),
        set: "no-such-map".into(),
        keys: vec!["10.96.0.10 . tcp . 80".into()],
    }]);
    real.apply_streamed(&ns.path(), &mut refused)
        .await
        .expect_err("refused");
    let after = ns.nft(&["list", "map", "inet", TABLE, "endpoints-2"]);
    assert_eq!(after, listed);
}
