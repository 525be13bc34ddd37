//! The second transaction of a full sync ([`stackube_core::proxy::nft::raw`]) as one netlink
//! batch: each set or map flushed and filled, then the leftovers of an earlier table deleted
//! (every leftover chain's rules first, so that none still refers to another, then the chains,
//! then the sets); and the table's chains (with their rule counts) and sets, read before the
//! first transaction.

use std::collections::BTreeMap;
use std::io;

use stackube_core::proxy::nft::raw::{Fill, RawData, RawElement};

use super::netlink::{
    NFT_MSG_DELCHAIN, NFT_MSG_DELRULE, NFT_MSG_DELSET, NFT_MSG_DELSETELEM, NFT_MSG_GETCHAIN,
    NFT_MSG_GETRULE, NFT_MSG_GETSET, NFT_MSG_NEWCHAIN, NFT_MSG_NEWRULE, NFT_MSG_NEWSET,
    NFT_MSG_NEWSETELEM, NFTA_RULE_CHAIN, NFTA_RULE_TABLE, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP,
    NLM_F_REQUEST, Writer, attributes, dump, send_batch, text,
};

const NFTA_SET_ELEM_LIST_TABLE: u16 = 1;
const NFTA_SET_ELEM_LIST_SET: u16 = 2;
const NFTA_SET_ELEM_LIST_ELEMENTS: u16 = 3;
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_SET_ELEM_KEY: u16 = 1;
const NFTA_SET_ELEM_DATA: u16 = 2;
const NFTA_SET_ELEM_USERDATA: u16 = 6;
const NFTA_DATA_VALUE: u16 = 1;
const NFTA_DATA_VERDICT: u16 = 2;
const NFTA_VERDICT_CODE: u16 = 1;
const NFTA_VERDICT_CHAIN: u16 = 2;
const NFT_GOTO: i32 = -4;
/// nft's user data type of an element's comment.
const NFTNL_UDATA_SET_ELEM_COMMENT: u8 = 0;
const NFTA_CHAIN_TABLE: u16 = 1;
const NFTA_CHAIN_NAME: u16 = 3;
const NFTA_SET_TABLE: u16 = 1;
const NFTA_SET_NAME: u16 = 2;
const NFTA_SET_FLAGS: u16 = 3;
const NFTA_SET_DESC: u16 = 9;
const NFTA_SET_DESC_SIZE: u16 = 1;
const NFT_SET_ANONYMOUS: u32 = 0x1;
/// Bytes of elements in one message: its element list is one attribute, under 64 KiB.
const ELEMENT_BYTES: usize = 60 * 1024;

/// A batch ready to send, with what each message does (for errors).
pub(crate) struct Batch {
    writer: Writer,
    what: BTreeMap<u32, String>,
}

impl Batch {
    /// Its size in bytes.
    pub(crate) fn len(&self) -> usize {
        self.writer.buf.len()
    }

    /// Sends it: `Err` says which message failed and why.
    pub(crate) fn send(&self) -> Result<(), String> {
        let acked: Vec<u32> = self.what.keys().copied().collect();
        send_batch(&self.writer, &acked).map_err(|(seq, e)| match seq {
            Some(seq) => format!("{}: {e}", self.what[&seq]),
            None => format!("netlink: {e}"),
        })
    }

    /// A message of `kind` with only a table's and an object's name: `what <name>`.
    fn named(&mut self, kind: u16, what: &str, table: (u16, &str), name: (u16, &str)) {
        self.message(kind, false, format!("{what} {}", name.1));
        self.writer.attr_str(table.0, table.1);
        self.writer.attr_str(name.0, name.1);
        self.writer.end();
    }

    fn message(&mut self, kind: u16, create: bool, what: String) {
        let flags = NLM_F_REQUEST | NLM_F_ACK | if create { NLM_F_CREATE } else { 0 };
        let seq = self.writer.message(kind, flags);
        self.what.insert(seq, what);
    }
}

/// The batch that fills `fills` in table `inet table` and deletes `chains` and `sets`.
pub(crate) fn batch(
    table: &str,
    fills: Vec<Fill<'_>>,
    chains: &[String],
    sets: &[String],
) -> Batch {
    let mut b = Batch {
        writer: Writer::default(),
        what: BTreeMap::new(),
    };
    b.writer.begin_batch();
    for fill in fills {
        b.message(NFT_MSG_DELSETELEM, false, format!("flush set {}", fill.set));
        set_names(&mut b.writer, table, &fill.set);
        b.writer.end();
        let mut elements = fill.elements.peekable();
        while elements.peek().is_some() {
            let what = format!("add elements to set {}", fill.set);
            b.message(NFT_MSG_NEWSETELEM, true, what);
            set_names(&mut b.writer, table, &fill.set);
            b.writer.nest(NFTA_SET_ELEM_LIST_ELEMENTS);
            let start = b.writer.buf.len();
            while b.writer.since(start) < ELEMENT_BYTES {
                let Some(element) = elements.next() else {
                    break;
                };
                write_element(&mut b.writer, &element);
            }
            b.writer.unnest();
            b.writer.end();
        }
    }
    for chain in chains {
        b.named(
            NFT_MSG_DELRULE,
            "flush chain",
            (NFTA_RULE_TABLE, table),
            (NFTA_RULE_CHAIN, chain),
        );
    }
    for chain in chains {
        b.named(
            NFT_MSG_DELCHAIN,
            "delete chain",
            (NFTA_CHAIN_TABLE, table),
            (NFTA_CHAIN_NAME, chain),
        );
    }
    for set in sets {
        b.named(
            NFT_MSG_DELSET,
            "delete set",
            (NFTA_SET_TABLE, table),
            (NFTA_SET_NAME, set),
        );
    }
    b.writer.end_batch();
    b
}

fn set_names(writer: &mut Writer, table: &str, set: &str) {
    writer.attr_str(NFTA_SET_ELEM_LIST_TABLE, table);
    writer.attr_str(NFTA_SET_ELEM_LIST_SET, set);
}

fn write_element(writer: &mut Writer, element: &RawElement) {
    writer.nest(NFTA_LIST_ELEM);
    writer.nest(NFTA_SET_ELEM_KEY);
    writer.attr(NFTA_DATA_VALUE, &element.key);
    writer.unnest();
    if let Some(data) = &element.data {
        writer.nest(NFTA_SET_ELEM_DATA);
        match data {
            RawData::Value(value) => writer.attr(NFTA_DATA_VALUE, value),
            RawData::Goto(chain) => {
                writer.nest(NFTA_DATA_VERDICT);
                writer.attr(NFTA_VERDICT_CODE, &NFT_GOTO.to_be_bytes());
                writer.attr_str(NFTA_VERDICT_CHAIN, chain);
                writer.unnest();
            }
        }
        writer.unnest();
    }
    if let Some(comment) = &element.comment {
        // As libnftnl writes it: type, length (with the NUL), the text and a NUL.
        let mut udata = vec![NFTNL_UDATA_SET_ELEM_COMMENT, (comment.len() + 1) as u8];
        udata.extend_from_slice(comment.as_bytes());
        udata.push(0);
        writer.attr(NFTA_SET_ELEM_USERDATA, &udata);
    }
    writer.unnest();
}

/// The table's chains with how many rules each has, and its named sets with their sizes
/// (`None`: made without one).
pub(crate) type Inventory = (BTreeMap<String, usize>, BTreeMap<String, Option<u32>>);

/// The answers to a dump of `kind` objects of table `inet table` (none when it does not
/// exist): the attributes of each, with the table's attribute checked.
fn dump_of(table: &str, kind: u16, answer: u16, table_attr: u16) -> io::Result<Vec<Vec<u8>>> {
    let mut request = Writer::default();
    request.message(kind, NLM_F_REQUEST | NLM_F_DUMP);
    request.attr_str(table_attr, table);
    request.end();
    let answers = dump(&request, answer)?;
    Ok(answers
        .into_iter()
        .filter(|payload| {
            attributes(payload)
                .iter()
                .any(|(k, v)| *k == table_attr && text(v) == table)
        })
        .collect())
}

/// A set's size (`NFTA_SET_DESC`'s `NFTA_SET_DESC_SIZE`), `None` when it has none.
fn size(payload: &[u8]) -> Option<u32> {
    let (_, desc) = attributes(payload)
        .into_iter()
        .find(|(k, _)| *k == NFTA_SET_DESC)?;
    let (_, size) = attributes(desc)
        .into_iter()
        .find(|(k, _)| *k == NFTA_SET_DESC_SIZE)?;
    let size = u32::from_be_bytes(size.get(0..4)?.try_into().ok()?);
    (size > 0).then_some(size)
}

/// The string attribute `kind` of an answer.
fn name(payload: &[u8], kind: u16) -> Option<String> {
    attributes(payload)
        .into_iter()
        .find(|(k, _)| *k == kind)
        .map(|(_, v)| text(v))
}

/// The chains (with their rule counts) and the named sets of table `inet table` in the calling
/// thread's network namespace (none when it does not exist).
pub(crate) fn inventory(table: &str) -> io::Result<Inventory> {
    let mut chains: BTreeMap<String, usize> =
        dump_of(table, NFT_MSG_GETCHAIN, NFT_MSG_NEWCHAIN, NFTA_CHAIN_TABLE)?
            .iter()
            .filter_map(|p| name(p, NFTA_CHAIN_NAME))
            .map(|chain| (chain, 0))
            .collect();
    for rule in dump_of(table, NFT_MSG_GETRULE, NFT_MSG_NEWRULE, NFTA_RULE_TABLE)? {
        if let Some(count) = name(&rule, NFTA_RULE_CHAIN).and_then(|c| chains.get_mut(&c)) {
            *count += 1;
        }
    }
    let sets = dump_of(table, NFT_MSG_GETSET, NFT_MSG_NEWSET, NFTA_SET_TABLE)?
        .iter()
        .filter(|payload| {
            let flags = attributes(payload)
                .into_iter()
                .find(|(k, _)| *k == NFTA_SET_FLAGS);
            !flags.is_some_and(|(_, v)| {
                v.get(0..4).is_some_and(|f| {
                    u32::from_be_bytes(f.try_into().expect("4 bytes")) & NFT_SET_ANONYMOUS != 0
                })
            })
        })
        .filter_map(|p| Some((name(p, NFTA_SET_NAME)?, size(p))))
        .collect();
    Ok((chains, sets))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A netlink attribute, padded.
    fn nla(kind: u16, data: &[u8]) -> Vec<u8> {
        let mut a = Vec::new();
        a.extend_from_slice(&((4 + data.len()) as u16).to_ne_bytes());
        a.extend_from_slice(&kind.to_ne_bytes());
        a.extend_from_slice(data);
        a.resize(a.len().next_multiple_of(4), 0);
        a
    }

    #[test]
    fn a_sets_size_is_read_from_its_nested_description() {
        // The kernel's numbers (linux/netfilter/nf_tables.h), not the constants under test:
        // NFTA_SET_NAME 2, NFTA_SET_DESC 9 (nested), NFTA_SET_DESC_SIZE 1.
        let name = nla(2, b"services\0");
        let described = |size: u32| {
            let desc = nla(1, &size.to_be_bytes());
            [name.clone(), nla(9 | 0x8000, &desc)].concat()
        };
        assert_eq!(size(&described(2048)), Some(2048));
        assert_eq!(size(&described(0)), None, "no size");
        assert_eq!(size(&name), None, "no description");
        assert_eq!(size(&nla(9 | 0x8000, &[1, 2])), None, "cut short");
    }
}
