use super::*;
use crate::proxy::nft::{ChainType, Hook, KeyType, PriorityBase, SetFlag};

const T: &str = "t";

fn add_set(name: &str, map: bool, timeout: Option<u32>) -> Command {
    let key = if map {
        "ipv4_addr : verdict"
    } else {
        "ipv4_addr"
    };
    Command::AddSet {
        table: T.into(),
        set: SetDef {
            name: name.into(),
            map,
            key: KeyType::Type(key.into()),
            flags: timeout
                .map(|_| vec![SetFlag::Dynamic, SetFlag::Timeout])
                .unwrap_or_default(),
            timeout,
            size: None,
        },
    }
}

/// [`add_set`] of a map with a size.
fn sized(name: &str, size: u32) -> Command {
    let mut command = add_set(name, true, None);
    if let Command::AddSet { set, .. } = &mut command {
        set.size = Some(size);
    }
    command
}

fn base(offset: i32) -> Option<BaseChain> {
    Some(BaseChain {
        chain_type: ChainType::Nat,
        hook: Hook::Prerouting,
        priority: PriorityBase::Dstnat,
        offset,
    })
}

fn add_chain(name: &str, base: Option<BaseChain>) -> Command {
    Command::AddChain {
        table: T.into(),
        name: name.into(),
        base,
    }
}

fn rule(chain: &str, rule: &str) -> Command {
    Command::AddRule {
        table: T.into(),
        chain: chain.into(),
        rule: rule.into(),
    }
}

fn element(key: &str, value: Option<Value>) -> Element {
    Element {
        key: key.into(),
        value,
        comment: None,
    }
}

fn add(set: &str, elements: Vec<Element>) -> Command {
    Command::AddElements {
        table: T.into(),
        set: set.into(),
        elements,
    }
}

fn delete(set: &str, key: &str) -> Command {
    Command::DeleteElements {
        table: T.into(),
        set: set.into(),
        keys: vec![key.into()],
    }
}

fn delete_chain(name: &str) -> Command {
    Command::DeleteChain {
        table: T.into(),
        name: name.into(),
    }
}

fn delete_set(name: &str, map: bool) -> Command {
    Command::DeleteSet {
        table: T.into(),
        name: name.into(),
        map,
    }
}

fn goto(chain: &str) -> Option<Value> {
    Some(Value::Goto(chain.into()))
}

/// Table `t`: base chain `pre` (vmap @vm), map `vm` with 10.0.0.1 going to chain `a`; chain `a`
/// records clients in set `clients` and goes to chain `b`; set `plain` holds 10.0.0.9.
fn base_model() -> NftModel {
    let mut model = NftModel::default();
    let commands = [
        Command::AddTable {
            table: T.into(),
            comment: Some("test".into()),
        },
        add_set("vm", true, None),
        add_set("clients", false, Some(60)),
        add_set("plain", false, None),
        add_chain("b", None),
        rule("b", "accept"),
        add_chain("a", None),
        rule("a", "update @clients { ip saddr }"),
        rule("a", "numgen random mod 1 vmap { 0 : goto b }"),
        add_chain("pre", base(-10)),
        rule("pre", "ip daddr vmap @vm"),
        add("vm", vec![element("10.0.0.1", goto("a"))]),
        add("plain", vec![element("10.0.0.9", None)]),
    ];
    model.apply(&commands).expect("the base model applies");
    model
}

#[test]
fn the_model_refuses_what_nft_refuses_and_changes_nothing_then() {
    let cases: Vec<(&str, Vec<Command>, Refusal)> = vec![
        (
            "an element into a missing map",
            vec![add("nomap", vec![element("10.0.0.2", goto("b"))])],
            Refusal::NoSuchSet("nomap".into()),
        ),
        (
            "deleting a missing element",
            vec![delete("plain", "10.0.0.2")],
            Refusal::NoSuchElement("10.0.0.2".into()),
        ),
        (
            "deleting an element twice in one transaction",
            vec![delete("plain", "10.0.0.9"), delete("plain", "10.0.0.9")],
            Refusal::NoSuchElement("10.0.0.9".into()),
        ),
        (
            "an existing key with another value",
            vec![add("vm", vec![element("10.0.0.1", goto("b"))])],
            Refusal::ElementExists("10.0.0.1".into()),
        ),
        (
            "a map element without a value",
            vec![add("vm", vec![element("10.0.0.2", None)])],
            Refusal::WrongElement("10.0.0.2".into()),
        ),
        (
            "a set element with a value",
            vec![add("plain", vec![element("10.0.0.2", goto("b"))])],
            Refusal::WrongElement("10.0.0.2".into()),
        ),
        (
            "an element going to a missing chain",
            vec![add("vm", vec![element("10.0.0.2", goto("nowhere"))])],
            Refusal::NoSuchChain("nowhere".into()),
        ),
        (
            "a rule going to a missing chain",
            vec![rule("b", "goto nowhere")],
            Refusal::NoSuchChain("nowhere".into()),
        ),
        (
            "a rule going to a base chain",
            vec![rule("b", "jump pre")],
            Refusal::GotoBaseChain("pre".into()),
        ),
        (
            "a rule naming a missing set",
            vec![rule("b", "ip saddr @nothing accept")],
            Refusal::NoSuchSet("nothing".into()),
        ),
        (
            "a rule in a missing chain",
            vec![rule("nochain", "accept")],
            Refusal::NoSuchChain("nochain".into()),
        ),
        (
            "deleting a chain an element goes to",
            vec![delete_chain("a")],
            Refusal::InUse("a".into()),
        ),
        (
            "deleting a chain a rule goes to (in an anonymous vmap)",
            vec![delete_chain("b")],
            Refusal::InUse("b".into()),
        ),
        (
            "deleting a set a rule names",
            vec![delete_set("clients", false)],
            Refusal::InUse("clients".into()),
        ),
        (
            "deleting a map a rule names",
            vec![delete_set("vm", true)],
            Refusal::InUse("vm".into()),
        ),
        (
            "deleting a set as a map",
            vec![delete_set("plain", true)],
            Refusal::NoSuchSet("plain".into()),
        ),
        (
            "flushing a missing chain",
            vec![Command::FlushChain {
                table: T.into(),
                name: "nochain".into(),
            }],
            Refusal::NoSuchChain("nochain".into()),
        ),
        (
            "re-adding a set with another timeout (nft 6.18 applies it, older kernels not)",
            vec![add_set("clients", false, Some(600))],
            Refusal::Exists("clients".into()),
        ),
        (
            "re-adding a map as a set",
            vec![add_set("vm", false, None)],
            Refusal::Exists("vm".into()),
        ),
        (
            "re-adding a base chain at another priority",
            vec![add_chain("pre", base(-20))],
            Refusal::Exists("pre".into()),
        ),
        (
            "anything in a missing table",
            vec![Command::DeleteTable {
                table: "other".into(),
            }],
            Refusal::NoSuchTable,
        ),
    ];
    for (name, commands, refusal) in cases {
        let mut model = base_model();
        // A good command first: refused transactions leave no trace of it either.
        let mut transaction = vec![add("plain", vec![element("10.0.0.8", None)])];
        transaction.extend(commands);
        let refused = model.apply(&transaction).expect_err(name);
        assert_eq!(refused.refusal, refusal, "{name}");
        assert_eq!(refused.index + 1, transaction.len(), "{name}");
        assert_eq!(model, base_model(), "{name}: the model changed");
    }
}

#[test]
fn adding_what_exists_changes_nothing_as_in_nft() {
    let mut model = base_model();
    let commands = [
        Command::AddTable {
            table: T.into(),
            comment: Some("another".into()),
        },
        add_set("vm", true, None),
        add_chain("pre", base(-10)),
        add_chain("pre", None),
        add_chain("b", None),
        add(
            "vm",
            vec![Element {
                comment: Some("new comment".into()),
                ..element("10.0.0.1", goto("a"))
            }],
        ),
        add("plain", vec![element("10.0.0.9", None)]),
        // The kernel keeps the size a set was made with.
        sized("vm", 4096),
    ];
    model.apply(&commands).expect("nft accepts these");
    assert_eq!(model, base_model());
}

#[test]
fn a_chain_goes_once_nothing_refers_to_it_even_with_rules_in_it() {
    let mut model = base_model();
    let commands = [
        delete("vm", "10.0.0.1"),
        delete_chain("a"),
        delete_set("clients", false),
        delete_chain("b"),
    ];
    model
        .apply(&commands)
        .expect("nothing refers to them any more");
    let dump = model.dump();
    assert!(
        !dump.contains("chain a") && !dump.contains("clients"),
        "{dump}"
    );
}

#[test]
fn the_dump_is_sorted_and_readable() {
    let want = r#"table inet t comment "test"
  set clients { type ipv4_addr; flags dynamic,timeout; timeout 60s; }
  set plain { type ipv4_addr; }
    10.0.0.9
  map vm { type ipv4_addr : verdict; }
    10.0.0.1 : goto a
  chain a
    update @clients { ip saddr }
    numgen random mod 1 vmap { 0 : goto b }
  chain b
    accept
  chain pre { type nat hook prerouting priority dstnat - 10; policy accept; }
    ip daddr vmap @vm
"#;
    assert_eq!(base_model().dump(), want);
    let mut gone = base_model();
    let delete_table = Command::DeleteTable { table: T.into() };
    gone.apply(&[delete_table]).expect("the table exists");
    assert!(!gone.has_table(T));
    assert_eq!(gone.dump(), "");
}
