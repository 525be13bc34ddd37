//! stackube-proxy's rulesets on the real kernel and Debian's nft: a network namespace made for
//! the test, a full sync and updates applied by `Nft` (so the text core renders is what nft
//! 1.0.6 accepts), the dispatch chain's rules counted over netlink (and found gone after a flush
//! by hand), a refused transaction that changes nothing, and conntrack asked to delete entries.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::PathBuf;
use std::process::Command;

use stackube_core::proxy::conntrack::StaleEntries;
use stackube_core::proxy::nft::{self, Command as Nft};
use stackube_core::proxy::{Backend, Frontend, FrontendSpec, Protocol, TableSpec};
use stackube_net::nft::{Nft as Real, Ruleset};

const TABLE: &str = "stackube-proxy";

/// A named network namespace, deleted on drop.
struct Netns(String);

impl Netns {
    fn new() -> Netns {
        let name = format!("stackube-nft-{}", std::process::id());
        let status = Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .expect("ip runs");
        assert!(status.success(), "ip netns add {name}");
        Netns(name)
    }

    fn path(&self) -> PathBuf {
        PathBuf::from(format!("/run/netns/{}", self.0))
    }

    fn nft(&self, args: &[&str]) -> String {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.0, "nft"])
            .args(args)
            .output()
            .expect("nft runs");
        assert!(out.status.success(), "nft {args:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

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
