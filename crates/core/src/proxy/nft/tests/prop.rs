//! Updates and full syncs agree, whatever the specs.

use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use proptest::sample::{select, subsequence};

use stackube_model::net::Ipv4Cidr;

use super::*;

/// A few addresses, protocols and ports, so that random specs share frontends.
fn frontends() -> impl Strategy<Value = Frontend> {
    const IPS: &[&str] = &[
        "10.96.0.1",
        "10.96.0.2",
        "10.96.0.3",
        "172.24.4.10",
        "172.24.4.11",
    ];
    const PROTOCOLS: &[Protocol] = &[Protocol::Tcp, Protocol::Udp, Protocol::Sctp];
    (select(IPS), select(PROTOCOLS), select(&[53u16, 80][..]))
        .prop_map(|(ip, protocol, port)| frontend(ip, protocol, port))
}

/// 0 to 4 endpoints among a few, random or with affinity (of one of two timeouts).
fn entries() -> impl Strategy<Value = FrontendSpec> {
    let endpoint = (1u8..7, select(&[53u16, 8080][..]))
        .prop_map(|(last, port)| SocketAddrV4::new(Ipv4Addr::new(10, 244, 0, last), port));
    let affinity = proptest::option::of(select(&[60u32, 10_800][..]));
    let comment = select(&["a/x:http", "b/y"][..]);
    (vec(endpoint, 0..5), affinity, comment).prop_map(|(endpoints, affinity, comment)| {
        FrontendSpec {
            comment: comment.to_owned(),
            backend: Backend::new(endpoints, affinity),
        }
    })
}

fn specs() -> impl Strategy<Value = TableSpec> {
    let cidrs: Vec<Ipv4Cidr> = ["10.96.0.0/12", "10.100.0.0/16"]
        .iter()
        .map(|c| c.parse().expect("a CIDR"))
        .collect();
    (
        btree_map(frontends(), entries(), 0..8),
        subsequence(cidrs, 0..=2),
    )
        .prop_map(|(frontends, cidrs)| {
            let mut spec = TableSpec::new(cidrs);
            for (frontend, entry) in frontends {
                spec.insert(frontend, entry);
            }
            spec
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Starting from a full sync, any sequence of updates leaves what a full sync of the last
    /// spec makes; nft (the model) never refuses one; an update between equal specs is empty.
    #[test]
    fn updates_end_where_a_full_sync_would(steps in vec(specs(), 2..5)) {
        let mut model = model_of(&steps[0]);
        for pair in steps.windows(2) {
            let commands = update(T, &pair[0], &pair[1]);
            if let Err(refused) = model.apply(&commands) {
                return Err(TestCaseError::fail(format!("{refused}\n{}", transaction(&commands))));
            }
            prop_assert!(update(T, &pair[1], &pair[1]).is_empty());
        }
        let last = steps.last().expect("at least two steps");
        prop_assert_eq!(model.dump(), model_of(last).dump());
    }

    /// Told of frontends that did not change besides those that did, an update is the same.
    #[test]
    fn naming_unchanged_frontends_changes_nothing(old in specs(), new in specs()) {
        let every: std::collections::BTreeSet<Frontend> =
            old.frontends().keys().chain(new.frontends().keys()).copied().collect();
        prop_assert_eq!(update_frontends(T, &old, &new, &every), update(T, &old, &new));
    }

    /// A full sync over any table leaves the same as one on an empty ruleset.
    #[test]
    fn a_full_sync_replaces_whatever_was_there(old in specs(), new in specs()) {
        let mut model = model_of(&old);
        model.apply(&full(T, &new)).map_err(|r| TestCaseError::fail(r.to_string()))?;
        prop_assert_eq!(model, model_of(&new));
    }
}
