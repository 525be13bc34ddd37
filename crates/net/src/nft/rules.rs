//! The number of rules of one nftables chain, from a netlink dump (`NFT_MSG_GETRULE`, filtered by
//! table and chain): what `nft list chain` would show, without nft (1.0.6) first loading every
//! set and map of the table with their elements, which at 10,000 Services costs over a second
//! and hundreds of MiB per look.

use std::io;

use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_NETFILTER};

const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFT_MSG_NEWRULE: u16 = 6;
const NFT_MSG_GETRULE: u16 = 7;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_DUMP: u16 = 0x300;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NFTA_RULE_TABLE: u16 = 1;
const NFTA_RULE_CHAIN: u16 = 2;
const NFPROTO_INET: u8 = 1;
const HEADER: usize = 16;

/// The dump request: a netlink header, the nfnetlink header, the table and chain names.
fn request(table: &str, chain: &str) -> Vec<u8> {
    let mut body = vec![NFPROTO_INET, 0, 0, 0];
    for (kind, name) in [(NFTA_RULE_TABLE, table), (NFTA_RULE_CHAIN, chain)] {
        let len = 4 + name.len() + 1;
        body.extend_from_slice(&(len as u16).to_ne_bytes());
        body.extend_from_slice(&kind.to_ne_bytes());
        body.extend_from_slice(name.as_bytes());
        body.push(0);
        body.resize(body.len().next_multiple_of(4), 0);
    }
    let mut message = Vec::with_capacity(HEADER + body.len());
    message.extend_from_slice(&((HEADER + body.len()) as u32).to_ne_bytes());
    message.extend_from_slice(&((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETRULE).to_ne_bytes());
    message.extend_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    message.extend_from_slice(&1u32.to_ne_bytes());
    message.extend_from_slice(&0u32.to_ne_bytes());
    message.extend_from_slice(&body);
    message
}

/// What one datagram of the answer says.
#[derive(Debug, PartialEq, Eq)]
enum Part {
    /// More rules follow: this many in this datagram.
    Rules(usize),
    /// The end, with this many rules in this last datagram.
    Done(usize),
}

/// Reads the netlink messages of one datagram.
fn parse(mut datagram: &[u8]) -> io::Result<Part> {
    let mut rules = 0;
    while datagram.len() >= HEADER {
        let len = u32::from_ne_bytes(datagram[0..4].try_into().expect("4 bytes")) as usize;
        let kind = u16::from_ne_bytes(datagram[4..6].try_into().expect("2 bytes"));
        if len < HEADER || len > datagram.len() {
            return Err(io::Error::other("a malformed netlink answer"));
        }
        match kind {
            NLMSG_DONE => return Ok(Part::Done(rules)),
            NLMSG_ERROR => {
                let errno = datagram
                    .get(HEADER..HEADER + 4)
                    .map(|b| i32::from_ne_bytes(b.try_into().expect("4 bytes")))
                    .unwrap_or(0);
                if errno == -libc_enoent() {
                    return Ok(Part::Done(rules));
                }
                if errno != 0 {
                    return Err(io::Error::from_raw_os_error(-errno));
                }
            }
            k if k == (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWRULE => rules += 1,
            _ => {}
        }
        datagram = &datagram[len.next_multiple_of(4).min(datagram.len())..];
    }
    Ok(Part::Rules(rules))
}

const fn libc_enoent() -> i32 {
    2
}

/// The number of rules of chain `chain` of table `inet table` in the calling thread's network
/// namespace (0 when the table or the chain does not exist).
pub(crate) fn count(table: &str, chain: &str) -> io::Result<usize> {
    let mut socket = Socket::new(NETLINK_NETFILTER)?;
    socket.bind_auto()?;
    socket.connect(&SocketAddr::new(0, 0))?;
    socket.send(&request(table, chain), 0)?;
    let mut rules = 0;
    loop {
        let (datagram, _) = socket.recv_from_full()?;
        match parse(&datagram)? {
            Part::Rules(n) => rules += n,
            Part::Done(n) => return Ok(rules + n),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(kind: u16, payload: &[u8]) -> Vec<u8> {
        let mut m = Vec::new();
        m.extend_from_slice(&((HEADER + payload.len()) as u32).to_ne_bytes());
        m.extend_from_slice(&kind.to_ne_bytes());
        m.extend_from_slice(&[0; 10]);
        m.extend_from_slice(payload);
        m
    }

    #[test]
    fn the_request_names_the_table_and_chain_padded() {
        let r = request("t", "nat-prerouting");
        assert_eq!(r.len() % 4, 0);
        assert_eq!(
            u32::from_ne_bytes(r[0..4].try_into().unwrap()) as usize,
            r.len()
        );
        assert!(r.windows(15).any(|w| w == b"nat-prerouting\0"));
    }

    #[test]
    fn rules_are_counted_until_done_and_a_missing_table_is_none() {
        let rule = message((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWRULE, &[0; 8]);
        let mut datagram = [rule.clone(), rule.clone()].concat();
        assert_eq!(parse(&datagram).unwrap(), Part::Rules(2));
        datagram.extend(message(NLMSG_DONE, &[0; 4]));
        assert_eq!(parse(&datagram).unwrap(), Part::Done(2));
        let enoent = message(NLMSG_ERROR, &(-2i32).to_ne_bytes());
        assert_eq!(parse(&enoent).unwrap(), Part::Done(0));
        let eperm = message(NLMSG_ERROR, &(-1i32).to_ne_bytes());
        assert!(parse(&eperm).is_err());
        assert!(parse(&[8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]).is_err());
    }
}
