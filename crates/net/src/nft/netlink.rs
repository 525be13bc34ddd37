//! nf_tables over netlink without nft: messages written into one buffer ([`Writer`]), a batch
//! sent as one transaction and its acknowledgements read ([`send_batch`]), a dump read
//! ([`dump`]) and the attributes of an answer ([`attributes`]).
//!
//! The kernel applies the messages between `NFNL_MSG_BATCH_BEGIN` and `NFNL_MSG_BATCH_END` of
//! one `sendmsg` as one transaction: all or none.

use std::io;
use std::time::Duration;

use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_NETFILTER};
use nix::sys::socket::{setsockopt, sockopt};
use nix::sys::time::TimeVal;

pub(crate) const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFNL_MSG_BATCH_BEGIN: u16 = 16;
const NFNL_MSG_BATCH_END: u16 = 17;
pub(crate) const NFT_MSG_NEWCHAIN: u16 = 3;
pub(crate) const NFT_MSG_GETCHAIN: u16 = 4;
pub(crate) const NFT_MSG_DELCHAIN: u16 = 5;
pub(crate) const NFT_MSG_NEWRULE: u16 = 6;
pub(crate) const NFT_MSG_GETRULE: u16 = 7;
pub(crate) const NFT_MSG_DELRULE: u16 = 8;
pub(crate) const NFT_MSG_NEWSET: u16 = 9;
pub(crate) const NFT_MSG_GETSET: u16 = 10;
pub(crate) const NFT_MSG_DELSET: u16 = 11;
pub(crate) const NFT_MSG_NEWSETELEM: u16 = 12;
pub(crate) const NFT_MSG_DELSETELEM: u16 = 14;
pub(crate) const NFTA_RULE_TABLE: u16 = 1;
pub(crate) const NFTA_RULE_CHAIN: u16 = 2;
pub(crate) const NLM_F_REQUEST: u16 = 0x1;
pub(crate) const NLM_F_ACK: u16 = 0x4;
pub(crate) const NLM_F_DUMP: u16 = 0x300;
pub(crate) const NLM_F_CREATE: u16 = 0x400;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLA_F_NESTED: u16 = 0x8000;
pub(crate) const NFPROTO_INET: u8 = 1;
const HEADER: usize = 16;
const ENOENT: i32 = 2;
/// How long the kernel may take to answer a batch or a dump datagram.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

/// Messages written one after another into one buffer.
#[derive(Default)]
pub(crate) struct Writer {
    pub(crate) buf: Vec<u8>,
    seq: u32,
    nests: Vec<usize>,
}

impl Writer {
    /// Starts a message of netlink type `kind`; returns its sequence number.
    fn start(&mut self, kind: u16, flags: u16, family: u8, res_id: u16) -> u32 {
        self.seq += 1;
        self.nests.push(self.buf.len());
        self.buf.extend_from_slice(&[0; 4]);
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        self.buf.extend_from_slice(&flags.to_ne_bytes());
        self.buf.extend_from_slice(&self.seq.to_ne_bytes());
        self.buf.extend_from_slice(&0u32.to_ne_bytes());
        self.buf.extend_from_slice(&[family, 0]);
        self.buf.extend_from_slice(&res_id.to_be_bytes());
        self.seq
    }

    /// Starts an nf_tables message of family `inet`; returns its sequence number.
    pub(crate) fn message(&mut self, kind: u16, flags: u16) -> u32 {
        self.start((NFNL_SUBSYS_NFTABLES << 8) | kind, flags, NFPROTO_INET, 0)
    }

    /// Ends the message started last.
    pub(crate) fn end(&mut self) {
        let start = self.nests.pop().expect("a message was started");
        let len = (self.buf.len() - start) as u32;
        self.buf[start..start + 4].copy_from_slice(&len.to_ne_bytes());
    }

    /// Starts a batch.
    pub(crate) fn begin_batch(&mut self) {
        self.start(NFNL_MSG_BATCH_BEGIN, NLM_F_REQUEST, 0, NFNL_SUBSYS_NFTABLES);
        self.end();
    }

    /// Ends a batch.
    pub(crate) fn end_batch(&mut self) {
        self.start(NFNL_MSG_BATCH_END, NLM_F_REQUEST, 0, NFNL_SUBSYS_NFTABLES);
        self.end();
    }

    /// An attribute holding `data`, padded.
    pub(crate) fn attr(&mut self, kind: u16, data: &[u8]) {
        self.buf
            .extend_from_slice(&((4 + data.len()) as u16).to_ne_bytes());
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        self.buf.extend_from_slice(data);
        self.buf.resize(self.buf.len().next_multiple_of(4), 0);
    }

    /// A string attribute (NUL-terminated).
    pub(crate) fn attr_str(&mut self, kind: u16, value: &str) {
        self.buf
            .extend_from_slice(&((5 + value.len()) as u16).to_ne_bytes());
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        self.buf.extend_from_slice(value.as_bytes());
        self.buf.push(0);
        self.buf.resize(self.buf.len().next_multiple_of(4), 0);
    }

    /// Starts a nested attribute.
    pub(crate) fn nest(&mut self, kind: u16) {
        self.nests.push(self.buf.len());
        self.buf.extend_from_slice(&[0, 0]);
        self.buf
            .extend_from_slice(&(kind | NLA_F_NESTED).to_ne_bytes());
    }

    /// Ends the nested attribute started last.
    pub(crate) fn unnest(&mut self) {
        let start = self.nests.pop().expect("a nest was started");
        let len = u16::try_from(self.buf.len() - start).expect("a nest under 64 KiB");
        self.buf[start..start + 2].copy_from_slice(&len.to_ne_bytes());
    }

    /// Bytes written since `start`.
    pub(crate) fn since(&self, start: usize) -> usize {
        self.buf.len() - start
    }
}

/// A netlink socket for nf_tables in the calling thread's network namespace, its send buffer
/// at least `send_buffer` bytes and its receive buffer at least `receive_buffer` (root may raise
/// both past `wmem_max`/`rmem_max`: a batch is one datagram, and the kernel queues one
/// acknowledgement per message before the first is read).
fn socket(send_buffer: usize, receive_buffer: usize) -> io::Result<Socket> {
    let mut socket = Socket::new(NETLINK_NETFILTER)?;
    socket.bind_auto()?;
    socket.connect(&SocketAddr::new(0, 0))?;
    let timeout = TimeVal::new(ANSWER_TIMEOUT.as_secs() as i64, 0);
    setsockopt(&socket, sockopt::ReceiveTimeout, &timeout)?;
    if send_buffer > 0 {
        setsockopt(&socket, sockopt::SndBufForce, &send_buffer)?;
    }
    if receive_buffer > 0 {
        setsockopt(&socket, sockopt::RcvBufForce, &receive_buffer)?;
    }
    Ok(socket)
}

/// Receive buffer per acknowledged message: an acknowledgement's socket buffer takes under
/// 1 KiB.
const ACK_BUFFER: usize = 1024;

/// The messages of one datagram: (type, sequence number, payload after the netlink header).
fn messages(mut datagram: &[u8]) -> io::Result<Vec<(u16, u32, &[u8])>> {
    let mut out = Vec::new();
    while datagram.len() >= HEADER {
        let len = u32::from_ne_bytes(datagram[0..4].try_into().expect("4 bytes")) as usize;
        if len < HEADER || len > datagram.len() {
            return Err(io::Error::other("a malformed netlink answer"));
        }
        let kind = u16::from_ne_bytes(datagram[4..6].try_into().expect("2 bytes"));
        let seq = u32::from_ne_bytes(datagram[8..12].try_into().expect("4 bytes"));
        out.push((kind, seq, &datagram[HEADER..len]));
        datagram = &datagram[len.next_multiple_of(4).min(datagram.len())..];
    }
    Ok(out)
}

/// The error an `NLMSG_ERROR` payload carries (0: an acknowledgement).
fn errno(payload: &[u8]) -> i32 {
    payload
        .get(0..4)
        .map(|b| -i32::from_ne_bytes(b.try_into().expect("4 bytes")))
        .unwrap_or(0)
}

/// Sends the batch `writer` holds and waits for the acknowledgement of every message that
/// asked for one; the first error is returned with the sequence number of its message.
pub(crate) fn send_batch(writer: &Writer, acked: &[u32]) -> Result<(), (Option<u32>, io::Error)> {
    let receive = (acked.len() * ACK_BUFFER).max(256 * 1024);
    let socket = socket(writer.buf.len() + 64 * 1024, receive).map_err(|e| (None, e))?;
    socket.send(&writer.buf, 0).map_err(|e| (None, e))?;
    let mut waiting: std::collections::BTreeSet<u32> = acked.iter().copied().collect();
    let mut failed = None;
    while !waiting.is_empty() {
        let (datagram, _) = match socket.recv_from_full() {
            Ok(answer) => answer,
            // No answer in time: after an error the kernel may not acknowledge the rest.
            Err(e) => return Err(failed.unwrap_or((None, e))),
        };
        for (kind, seq, payload) in messages(&datagram).map_err(|e| (None, e))? {
            if kind != NLMSG_ERROR {
                continue;
            }
            waiting.remove(&seq);
            let errno = errno(payload);
            if errno != 0 && failed.is_none() {
                failed = Some((Some(seq), io::Error::from_raw_os_error(errno)));
            }
        }
    }
    failed.map_or(Ok(()), Err)
}

/// The payloads (after the nfgenmsg header) of the answers of type `answer` to the dump
/// request `writer` holds; none when the kernel says the table does not exist.
pub(crate) fn dump(writer: &Writer, answer: u16) -> io::Result<Vec<Vec<u8>>> {
    let socket = socket(0, 0)?;
    socket.send(&writer.buf, 0)?;
    let mut out = Vec::new();
    loop {
        let (datagram, _) = socket.recv_from_full()?;
        if dump_part(&datagram, answer, &mut out)? {
            return Ok(out);
        }
    }
}

/// Adds the answers of type `answer` in one datagram of a dump to `out`; whether the dump
/// ended (done, or the table does not exist: then `out` is emptied).
fn dump_part(datagram: &[u8], answer: u16, out: &mut Vec<Vec<u8>>) -> io::Result<bool> {
    for (kind, _, payload) in messages(datagram)? {
        match kind {
            NLMSG_DONE => return Ok(true),
            NLMSG_ERROR => match errno(payload) {
                0 => {}
                ENOENT => {
                    out.clear();
                    return Ok(true);
                }
                e => return Err(io::Error::from_raw_os_error(e)),
            },
            k if k == (NFNL_SUBSYS_NFTABLES << 8) | answer => {
                out.push(payload.get(4..).unwrap_or_default().to_vec());
            }
            _ => {}
        }
    }
    Ok(false)
}

/// The top-level attributes of an answer's payload: (type without flags, data).
pub(crate) fn attributes(mut payload: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    while payload.len() >= 4 {
        let len = u16::from_ne_bytes([payload[0], payload[1]]) as usize;
        let kind = u16::from_ne_bytes([payload[2], payload[3]]) & 0x3fff;
        if len < 4 || len > payload.len() {
            break;
        }
        out.push((kind, &payload[4..len]));
        payload = &payload[len.next_multiple_of(4).min(payload.len())..];
    }
    out
}

/// A string attribute's text (without its NUL).
pub(crate) fn text(data: &[u8]) -> String {
    let end = data.iter().position(|b| *b == 0).unwrap_or(data.len());
    String::from_utf8_lossy(&data[..end]).into_owned()
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
    fn a_message_names_its_attributes_padded_and_says_its_length() {
        let mut w = Writer::default();
        w.message(NFT_MSG_GETRULE, NLM_F_REQUEST | NLM_F_DUMP);
        w.attr_str(1, "t");
        w.attr_str(2, "nat-prerouting");
        w.end();
        let r = &w.buf;
        assert_eq!(r.len() % 4, 0);
        assert_eq!(
            u32::from_ne_bytes(r[0..4].try_into().unwrap()) as usize,
            r.len()
        );
        assert!(r.windows(15).any(|w| w == b"nat-prerouting\0"));
    }

    #[test]
    fn answers_are_collected_until_done_and_a_missing_table_is_none() {
        let rule = message((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWRULE, &[0; 8]);
        let mut out = Vec::new();
        let mut datagram = [rule.clone(), rule.clone()].concat();
        assert!(!dump_part(&datagram, NFT_MSG_NEWRULE, &mut out).unwrap());
        assert_eq!(out.len(), 2);
        datagram.extend(message(NLMSG_DONE, &[0; 4]));
        let mut out = Vec::new();
        assert!(dump_part(&datagram, NFT_MSG_NEWRULE, &mut out).unwrap());
        assert_eq!(out.len(), 2);
        let enoent = message(NLMSG_ERROR, &(-2i32).to_ne_bytes());
        assert!(dump_part(&enoent, NFT_MSG_NEWRULE, &mut out).unwrap());
        assert!(out.is_empty());
        let eperm = message(NLMSG_ERROR, &(-1i32).to_ne_bytes());
        assert!(dump_part(&eperm, NFT_MSG_NEWRULE, &mut out).is_err());
        let malformed = [8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        assert!(dump_part(&malformed, NFT_MSG_NEWRULE, &mut out).is_err());
    }
}
