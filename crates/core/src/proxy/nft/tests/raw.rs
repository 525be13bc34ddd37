//! The two-transaction full sync: its objects keep a table as it is, its elements are laid out
//! as the kernel holds what nft writes, and what it leaves over is found.

use std::collections::{BTreeMap, BTreeSet};

use super::*;
use crate::proxy::nft::raw::{RawData, RawElement, leftovers, replace};

/// Frontends with a random backend of 2, an affinity backend and none.
fn mixed() -> TableSpec {
    spec(&[
        (web(), "default/web:http", random(&[1, 2])),
        (sticky(), "default/sticky", affinity(60, &[3, 4])),
        (dns(), "kube-system/dns:dns", Backend::Reject),
    ])
}

/// The rules each chain of `model`'s table has, `model` made by a full sync to `spec`.
fn rules(model: &NftModel, spec: &TableSpec) -> BTreeMap<String, usize> {
    let (chains, _) = replace(T, spec).names();
    chains
        .into_iter()
        .map(|c| {
            let n = model.chain_rules(T, &c).expect("the chain exists").len();
            (c, n)
        })
        .collect()
}

/// The sizes of the named sets of a table made by a full sync to `spec`.
fn made_sizes(spec: &TableSpec) -> BTreeMap<String, Option<u32>> {
    replace(T, spec)
        .fresh_objects()
        .into_iter()
        .filter_map(|command| match command {
            Command::AddSet { set, .. } => Some((set.name, set.size)),
            _ => None,
        })
        .collect()
}

/// The size each set of `commands` is added with.
fn added_sizes(commands: &[Command]) -> BTreeMap<String, Option<u32>> {
    commands
        .iter()
        .filter_map(|command| match command {
            Command::AddSet { set, .. } => Some((set.name.clone(), set.size)),
            _ => None,
        })
        .collect()
}

#[test]
fn a_kept_set_keeps_its_size_unless_its_elements_outgrew_it() {
    let spec = mixed();
    let rules = rules(&model_of(&spec), &spec);
    let made = made_sizes(&spec);
    assert_eq!(made["services"], Some(MIN_SET_SIZE), "read: {made:?}");
    // Larger than now needed, or none (an older proxy's table): added again as it is.
    let mut sizes = made.clone();
    sizes.insert("services".into(), Some(1 << 20));
    sizes.insert("endpoints-2".into(), None);
    let objects = replace(T, &spec).objects(&rules, &sizes).expect("kept");
    let added = added_sizes(&objects);
    assert_eq!(added["services"], Some(1 << 20));
    assert_eq!(added["endpoints-2"], None);
    assert_eq!(added["no-endpoints"], Some(MIN_SET_SIZE));
    // A set the table does not have yet gets the size of its elements.
    sizes.remove("no-endpoints");
    let objects = replace(T, &spec).objects(&rules, &sizes).expect("kept");
    assert_eq!(added_sizes(&objects)["no-endpoints"], Some(MIN_SET_SIZE));
    // Smaller than its elements (the web frontend's 2 slots): the table is made afresh.
    sizes.insert("endpoints-2".into(), Some(1));
    assert!(replace(T, &spec).objects(&rules, &sizes).is_none());
    sizes.insert("endpoints-2".into(), Some(2));
    assert!(replace(T, &spec).objects(&rules, &sizes).is_some());
}

#[test]
fn a_bucket_chain_without_its_one_rule_makes_the_table_afresh() {
    let spec = mixed();
    let mut rules = rules(&model_of(&spec), &spec);
    let sizes = made_sizes(&spec);
    assert!(replace(T, &spec).objects(&rules, &sizes).is_some());
    rules.insert("endpoints-2".into(), 0);
    assert!(replace(T, &spec).objects(&rules, &sizes).is_none());
}

/// The elements of `set` in the fills of `spec`'s full sync.
fn filled(spec: &TableSpec, set: &str) -> Vec<RawElement> {
    let fills = replace(T, spec).fills();
    let fill = fills
        .into_iter()
        .find(|f| f.set == set)
        .expect("the set is filled");
    fill.elements.collect()
}

#[test]
fn elements_are_laid_out_as_nft_writes_them() {
    // As `nft --debug=netlink` shows nft 1.0.6 writing `10.96.0.5 . tcp . 80 . 1 :
    // 10.244.0.2 . 8080` (one 32-bit register per field; the slot in host order).
    let mut slot_key = vec![10, 96, 0, 5, 6, 0, 0, 0, 0, 80, 0, 0];
    slot_key.extend_from_slice(&1u32.to_ne_bytes());
    let spec = mixed();
    let bucket = filled(&spec, "endpoints-2");
    assert_eq!(bucket.len(), 2);
    assert_eq!(
        bucket[1],
        RawElement {
            key: slot_key,
            data: Some(RawData::Value(vec![10, 244, 0, 2, 0x1f, 0x90, 0, 0])),
            comment: None,
        }
    );
    let services = filled(&spec, "services");
    assert_eq!(
        services
            .iter()
            .map(|e| (e.key.clone(), e.data.clone(), e.comment.as_deref()))
            .collect::<Vec<_>>(),
        vec![
            (
                vec![10, 96, 0, 5, 6, 0, 0, 0, 0, 80, 0, 0],
                Some(RawData::Goto("endpoints-2".into())),
                Some("default/web:http")
            ),
            (
                vec![10, 96, 0, 7, 6, 0, 0, 0, 0, 80, 0, 0],
                Some(RawData::Goto("affinity-10.96.0.7-tcp-80".into())),
                Some("default/sticky")
            ),
        ]
    );
    let rejected = filled(&spec, "no-endpoints");
    assert_eq!(
        rejected[0].key,
        vec![10, 96, 0, 10, 17, 0, 0, 0, 0, 53, 0, 0]
    );
    assert_eq!(rejected[0].data, Some(RawData::Goto("reject-chain".into())));
    let addresses: Vec<Vec<u8>> = filled(&spec, "service-addresses")
        .into_iter()
        .map(|e| e.key)
        .collect();
    assert_eq!(
        addresses,
        vec![vec![10, 96, 0, 5], vec![10, 96, 0, 7], vec![10, 96, 0, 10]]
    );
}

#[test]
fn the_fills_hold_what_the_text_full_sync_adds_set_by_set() {
    let spec = mixed();
    let mut text: Vec<(String, usize)> = Vec::new();
    for command in full(T, &spec) {
        if let Command::AddElements { set, elements, .. } = command {
            text.push((set, elements.len()));
        }
    }
    let raw: Vec<(String, usize)> = replace(T, &spec)
        .fills()
        .into_iter()
        .map(|f| (f.set, f.elements.count()))
        .filter(|(_, n)| *n > 0)
        .collect();
    assert_eq!(raw, text);
    // An empty set is still flushed: its old elements go.
    let names: Vec<String> = replace(T, &spec)
        .fills()
        .into_iter()
        .map(|f| f.set)
        .collect();
    assert_eq!(
        names,
        [
            "service-addresses",
            "services",
            "no-endpoints",
            "endpoints-2"
        ]
    );
}

#[test]
fn the_objects_keep_a_table_already_as_desired_unchanged() {
    let spec = mixed();
    let mut model = model_of(&spec);
    let before = model.dump();
    let objects = replace(T, &spec)
        .objects(&rules(&model, &spec), &made_sizes(&spec))
        .expect("kept");
    assert!(
        !objects
            .iter()
            .any(|c| matches!(c, Command::DeleteTable { .. }))
    );
    // The bucket's chain, with its one rule, is left alone.
    assert!(!objects.iter().any(|c| matches!(c,
        Command::FlushChain { name, .. } if name == "endpoints-2")));
    model
        .apply(&objects)
        .expect("the objects apply to the table as it is");
    assert_eq!(model.dump(), before);
}

#[test]
fn the_objects_make_an_empty_table_and_rewrite_every_chain_of_an_old_one() {
    let new = mixed();
    let mut empty = NftModel::default();
    let none = BTreeMap::new();
    let objects = replace(T, &new)
        .objects(&none, &BTreeMap::new())
        .expect("nothing to keep");
    empty.apply(&objects).expect("applies to nothing");
    let mut fresh = NftModel::default();
    fresh
        .apply(&replace(T, &new).fresh_objects())
        .expect("applies to nothing");
    assert_eq!(empty.dump(), fresh.dump());

    let old = spec(&[
        (web(), "default/web:http", random(&[1, 2, 3])),
        (sticky(), "default/sticky", affinity(60, &[5])),
    ]);
    let mut model = model_of(&old);
    let objects = replace(T, &new)
        .objects(&rules(&model, &old), &made_sizes(&old))
        .expect("kept");
    model.apply(&objects).expect("applies over the old table");
    let wanted = model_of(&new);
    let (chains, _) = replace(T, &new).names();
    for chain in &chains {
        assert_eq!(
            model.chain_rules(T, chain),
            wanted.chain_rules(T, chain),
            "chain {chain}"
        );
    }
}

#[test]
fn leftovers_are_the_old_tables_objects_the_new_one_has_not() {
    let new = spec(&[(web(), "default/web:http", random(&[1, 2]))]);
    let old_chains: BTreeMap<String, usize> = [
        "endpoints-2",
        "endpoints-3",
        "affinity-10.96.0.7-tcp-80",
        "endpoint-10.96.0.7-tcp-80-10.244.0.5-8080",
        "nat-prerouting",
        "reject-chain",
    ]
    .map(|c| (c.to_owned(), 1))
    .into();
    let old_sets: BTreeSet<String> = [
        "endpoints-2",
        "endpoints-3",
        "affinity-10.96.0.7-tcp-80-10.244.0.5-8080",
        "services",
    ]
    .map(String::from)
    .into();
    let (chains, sets) = leftovers(&replace(T, &new), &old_chains, &old_sets);
    assert_eq!(
        chains,
        [
            "affinity-10.96.0.7-tcp-80",
            "endpoint-10.96.0.7-tcp-80-10.244.0.5-8080",
            "endpoints-3"
        ]
    );
    assert_eq!(
        sets,
        ["affinity-10.96.0.7-tcp-80-10.244.0.5-8080", "endpoints-3"]
    );
}
