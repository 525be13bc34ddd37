//! One DNS message in, one out: the whole of what stackube-dns does with a packet, but for
//! the network and the upstreams. [`handle`] parses a query (any bytes at all), answers it from
//! the cluster's records as the socket's view sees them, or says what to forward; a
//! [`Pending`] forwarded question builds its reply from what an upstream answered (or from
//! nothing: SERVFAIL).
//!
//! # Guarantees
//! - No input panics, and every reply fits its transport: 512 bytes over UDP without EDNS, the
//!   client's EDNS payload size (at most [`MAX_UDP_PAYLOAD`]) with it, 65,535 over TCP. A reply
//!   too large loses its additional records first, then (with TC set, so the client retries
//!   over TCP) its authority records and the answers that do not fit.
//! - A message that is not a query (QR set), or shorter than a header, gets no reply (so two
//!   servers can never be made to answer each other). A query whose header is readable but the
//!   rest is not gets FORMERR; an opcode other than QUERY, NOTIMP; EDNS beyond version 0,
//!   BADVERS; a class other than IN (or ANY), REFUSED; zone transfers, REFUSED.
//! - A query with an OPT record gets one back (RFC 6891), never with the DO bit (no DNSSEC).
//! - A forwarded question's reply is checked against the question asked (id, QR, question):
//!   anything else is [`Rejected`]. The client gets the upstream's rcode and sections under
//!   its own id and question, after the CNAMEs of the cluster that led there; when no upstream
//!   answers, SERVFAIL with the extended error "No Reachable Authority" (RFC 8914) when the
//!   client speaks EDNS.

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::opt::EdnsOption;
use hickory_proto::rr::{DNSClass, Record, RecordType};

use super::answer::{Answer, Resolution, resolve};
use super::index::Index;
use super::view::View;
use super::zone::Zone;

/// The largest UDP reply, whatever the client's EDNS says: 1232 bytes, which fits any path's
/// MTU without fragmentation (DNS Flag Day 2020).
pub const MAX_UDP_PAYLOAD: u16 = 1232;
/// A UDP reply to a client without EDNS.
const PLAIN_UDP: usize = 512;
/// A TCP reply (two bytes of length).
const MAX_TCP: usize = 65_535;
/// RFC 8914 info code 22, "No Reachable Authority".
const EDE_NO_REACHABLE_AUTHORITY: u16 = 22;
/// RFC 8914's option code.
const EDE_OPTION: u16 = 15;

/// How the query came.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// UDP: the reply must fit the client's payload size.
    Udp,
    /// TCP.
    Tcp,
}

/// What a reply was, for metrics and logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Summary {
    /// The question's type, when there was one question.
    pub qtype: Option<RecordType>,
    /// The reply's rcode.
    pub rcode: ResponseCode,
    /// Whether the reply was truncated (TC).
    pub truncated: bool,
}

/// A reply to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    /// The message.
    pub bytes: Vec<u8>,
    /// What it is.
    pub summary: Summary,
}

/// Why a packet gets no reply at all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dropped {
    /// Shorter than a header.
    TooShort,
    /// A response (QR set), not a query.
    NotAQuery,
}

/// What to do with a packet.
#[derive(Debug)]
pub enum Handled {
    /// Send this.
    Reply(Reply),
    /// Ask the upstreams, then reply with [`Pending::reply`].
    Forward(Pending),
    /// Send nothing.
    Drop(Dropped),
}

/// Why an upstream's packet is not the reply to a forwarded question.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Rejected {
    /// It does not parse.
    #[error("malformed reply")]
    Malformed,
    /// Another id, not a response, or another question.
    #[error("not the reply to the question asked")]
    NotTheReply,
}

/// What a reply needs of the query.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Request {
    id: u16,
    recursion_desired: bool,
    checking_disabled: bool,
    query: Query,
    /// The client's EDNS payload size, when it sent an OPT record.
    edns: Option<u16>,
    transport: Transport,
}

impl Request {
    /// The largest reply the client takes.
    fn limit(&self) -> usize {
        match (self.transport, self.edns) {
            (Transport::Tcp, _) => MAX_TCP,
            (Transport::Udp, None) => PLAIN_UDP,
            (Transport::Udp, Some(size)) => usize::from(size.clamp(512, MAX_UDP_PAYLOAD)),
        }
    }

    /// A reply with the request's id, flags and question, and OPT if it had one.
    fn message(&self, rcode: ResponseCode) -> Message {
        let mut message = Message::response(self.id, OpCode::Query);
        message.metadata.recursion_desired = self.recursion_desired;
        message.metadata.checking_disabled = self.checking_disabled;
        message.metadata.recursion_available = true;
        message.metadata.response_code = rcode;
        message.add_query(self.query.clone());
        if self.edns.is_some() {
            let mut edns = Edns::new();
            edns.set_max_payload(MAX_UDP_PAYLOAD);
            message.set_edns(edns);
        }
        message
    }

    fn reply(&self, message: Message) -> Reply {
        let qtype = Some(self.query.query_type());
        let rcode = message.metadata.response_code;
        if let Some((bytes, truncated)) = encode(message, self.limit()) {
            return Reply {
                bytes,
                summary: Summary {
                    qtype,
                    rcode,
                    truncated,
                },
            };
        }
        // Records that cannot be written (a name made too long): SERVFAIL, which always can.
        let bytes = encode(self.message(ResponseCode::ServFail), self.limit())
            .map(|(bytes, _)| bytes)
            .unwrap_or_default();
        Reply {
            bytes,
            summary: Summary {
                qtype,
                rcode: ResponseCode::ServFail,
                truncated: false,
            },
        }
    }

    fn answer(&self, answer: Answer) -> Reply {
        let mut message = self.message(answer.rcode);
        message.metadata.authoritative = answer.authoritative;
        message.answers = answer.answers;
        message.authorities = answer.authorities;
        message.additionals = answer.additionals;
        self.reply(message)
    }
}

/// What `packet`, arrived over `transport` on a socket of `view`, gets.
pub fn handle(
    index: &Index,
    view: &View,
    zone: &Zone,
    packet: &[u8],
    transport: Transport,
) -> Handled {
    if packet.len() < 12 {
        return Handled::Drop(Dropped::TooShort);
    }
    if packet[2] & 0x80 != 0 {
        return Handled::Drop(Dropped::NotAQuery);
    }
    if (packet[2] >> 3) & 0x0f != 0 {
        return Handled::Reply(header_only(packet, ResponseCode::NotImp));
    }
    let Ok(message) = Message::from_vec(packet) else {
        return Handled::Reply(header_only(packet, ResponseCode::FormErr));
    };
    let [query] = message.queries.as_slice() else {
        return Handled::Reply(header_only(packet, ResponseCode::FormErr));
    };
    let request = Request {
        id: message.metadata.id,
        recursion_desired: message.metadata.recursion_desired,
        checking_disabled: message.metadata.checking_disabled,
        query: query.clone(),
        edns: message.edns.as_ref().map(Edns::max_payload),
        transport,
    };
    if message.edns.as_ref().is_some_and(|e| e.version() > 0) {
        return Handled::Reply(request.answer(Answer {
            rcode: ResponseCode::BADVERS,
            ..Answer::default()
        }));
    }
    let refuse = |rcode| {
        Handled::Reply(request.answer(Answer {
            rcode,
            ..Answer::default()
        }))
    };
    if !matches!(query.query_class(), DNSClass::IN | DNSClass::ANY) {
        return refuse(ResponseCode::Refused);
    }
    match query.query_type() {
        RecordType::OPT => return refuse(ResponseCode::FormErr),
        RecordType::AXFR | RecordType::IXFR => return refuse(ResponseCode::Refused),
        _ => {}
    }
    match resolve(index, view, zone, query) {
        Resolution::Answer(answer) => Handled::Reply(request.answer(answer)),
        Resolution::Forward { question, prefix } => Handled::Forward(Pending {
            request,
            question,
            prefix,
        }),
    }
}

/// A reply of a header only, with `rcode`, to a query that cannot be read: its id, opcode and
/// RD bit, from the raw bytes.
fn header_only(packet: &[u8], rcode: ResponseCode) -> Reply {
    let mut bytes = vec![0u8; 12];
    bytes[..2].copy_from_slice(&packet[..2]);
    bytes[2] = 0x80 | (packet[2] & 0x79);
    bytes[3] = rcode.low();
    Reply {
        bytes,
        summary: Summary {
            qtype: None,
            rcode,
            truncated: false,
        },
    }
}

/// `message` as bytes of at most `limit`, and whether it was truncated (TC); `None` when it
/// cannot be written at all.
fn encode(mut message: Message, limit: usize) -> Option<(Vec<u8>, bool)> {
    let fits = |m: &Message| m.to_vec().ok().filter(|b| b.len() <= limit);
    if let Some(bytes) = fits(&message) {
        return Some((bytes, message.metadata.truncation));
    }
    message.additionals.clear();
    if let Some(bytes) = fits(&message) {
        return Some((bytes, message.metadata.truncation));
    }
    message.metadata.truncation = true;
    message.authorities.clear();
    let answers = std::mem::take(&mut message.answers);
    // The most answers that fit (a few tries: binary search).
    let (mut fit, mut over) = (0, answers.len() + 1);
    while over - fit > 1 {
        let mid = (fit + over) / 2;
        message.answers = answers[..mid].to_vec();
        if fits(&message).is_some() {
            fit = mid;
        } else {
            over = mid;
        }
    }
    message.answers = answers[..fit].to_vec();
    fits(&message).map(|bytes| (bytes, true))
}

/// A question the cluster does not answer, on its way upstream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pending {
    request: Request,
    question: Query,
    prefix: Vec<Record>,
}

impl Pending {
    /// What to ask the upstreams (the client's question, or the target of an ExternalName
    /// Service's CNAME).
    pub fn question(&self) -> &Query {
        &self.question
    }

    /// How the client asked.
    pub fn transport(&self) -> Transport {
        self.request.transport
    }

    /// The query to send upstream, with `id`: recursion desired, EDNS with
    /// [`MAX_UDP_PAYLOAD`].
    pub fn upstream_query(&self, id: u16) -> Vec<u8> {
        let mut message = Message::query();
        message.metadata.id = id;
        message.metadata.recursion_desired = true;
        message.metadata.checking_disabled = self.request.checking_disabled;
        message.add_query(self.question.clone());
        let mut edns = Edns::new();
        edns.set_max_payload(MAX_UDP_PAYLOAD);
        message.set_edns(edns);
        message
            .to_vec()
            .expect("a query of one valid question always encodes")
    }

    /// `bytes`, checked to be the reply to [`Pending::upstream_query`] with `id`.
    pub fn upstream_reply(&self, id: u16, bytes: &[u8]) -> Result<Message, Rejected> {
        let message = Message::from_vec(bytes).map_err(|_| Rejected::Malformed)?;
        let same_question = match message.queries.as_slice() {
            [q] => {
                q.query_type() == self.question.query_type()
                    && q.query_class() == self.question.query_class()
                    && q.name() == self.question.name()
            }
            _ => false,
        };
        if message.metadata.id != id
            || message.metadata.message_type != MessageType::Response
            || !same_question
        {
            return Err(Rejected::NotTheReply);
        }
        Ok(message)
    }

    /// The client's reply: the CNAMEs that led upstream, then what `upstream` answered; or
    /// SERVFAIL when no upstream did (`None`).
    pub fn reply(self, upstream: Option<&Message>) -> Reply {
        let Some(upstream) = upstream else {
            let mut message = self.request.message(ResponseCode::ServFail);
            if let Some(edns) = message.edns.as_mut() {
                let text = "no upstream answered";
                let mut data = EDE_NO_REACHABLE_AUTHORITY.to_be_bytes().to_vec();
                data.extend_from_slice(text.as_bytes());
                edns.options_mut()
                    .insert(EdnsOption::Unknown(EDE_OPTION, data));
            }
            return self.request.reply(message);
        };
        let mut rcode = upstream.metadata.response_code;
        // An extended rcode means something between the upstream and us (its EDNS version),
        // not about the name.
        if rcode.high() > 0 {
            rcode = ResponseCode::ServFail;
        }
        let mut message = self.request.message(rcode);
        message.metadata.truncation = upstream.metadata.truncation;
        message.metadata.authentic_data = false;
        message.answers = self.prefix;
        message.answers.extend(upstream.answers.iter().cloned());
        message.authorities = upstream.authorities.clone();
        message.additionals = upstream.additionals.clone();
        self.request.reply(message)
    }
}

#[cfg(test)]
mod tests;
