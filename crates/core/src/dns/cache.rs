//! The forwarder's cache: upstream answers by view and question, for as long as their TTLs
//! say, bounded in entries (least recently used goes first) and in size per entry.
//!
//! # Guarantees
//! - Keys include the view: a tenant never gets an answer another tenant's query put in the
//!   cache, nor learns from a TTL that another tenant asked (the cost: one upstream query per
//!   tenant per name and TTL).
//! - A positive answer lives for the smallest TTL of its answer records; a negative one
//!   (NXDOMAIN, NODATA) for its SOA's TTL or MINIMUM, the smaller (RFC 2308 §5), and not at all
//!   without an SOA. Both are capped ([`MAX_TTL`], [`MAX_NEGATIVE_TTL`]). SERVFAIL, REFUSED and
//!   truncated answers are not cached.
//! - A hit's records carry their TTLs minus the time spent in the cache: a client never keeps
//!   a record longer than the upstream said.
//! - At most `capacity` entries, each at most [`MAX_ENTRY_BYTES`] on the wire.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Instant;

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{DNSClass, RData, RecordType};

/// The longest a positive answer is kept, whatever its TTL.
pub const MAX_TTL: u32 = 3600;
/// The longest a negative answer is kept (RFC 2308 suggests one to three hours at most).
pub const MAX_NEGATIVE_TTL: u32 = 1800;
/// The largest answer kept, on the wire.
pub const MAX_ENTRY_BYTES: usize = 4096;

/// A cached question: the view asking, and the question (name in lowercase).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Key {
    view: Arc<str>,
    name: Box<str>,
    qtype: RecordType,
    qclass: DNSClass,
}

impl Key {
    /// The key of `question` asked from `view`.
    pub fn new(view: &Arc<str>, question: &Query) -> Key {
        Key {
            view: view.clone(),
            name: question.name().to_lowercase().to_ascii().into(),
            qtype: question.query_type(),
            qclass: question.query_class(),
        }
    }
}

#[derive(Clone, Debug)]
struct Slot {
    reply: Message,
    stored: Instant,
    ttl: u32,
    used: u64,
}

/// The cache.
#[derive(Clone, Debug)]
pub struct Cache {
    capacity: usize,
    slots: HashMap<Key, Slot>,
    /// Keys by last use.
    recency: BTreeMap<u64, Key>,
    clock: u64,
}

impl Cache {
    /// A cache of at most `capacity` answers (0: nothing is cached).
    pub fn new(capacity: usize) -> Cache {
        Cache {
            capacity,
            slots: HashMap::new(),
            recency: BTreeMap::new(),
            clock: 0,
        }
    }

    /// How many answers it holds.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The answer to `key`, if one is cached and alive at `now`, with its TTLs lowered by its
    /// time in the cache.
    pub fn get(&mut self, key: &Key, now: Instant) -> Option<Message> {
        let slot = self.slots.get_mut(key)?;
        let age =
            u32::try_from(now.saturating_duration_since(slot.stored).as_secs()).unwrap_or(u32::MAX);
        if age >= slot.ttl {
            let used = slot.used;
            self.slots.remove(key);
            self.recency.remove(&used);
            return None;
        }
        self.clock += 1;
        self.recency.remove(&slot.used);
        slot.used = self.clock;
        self.recency.insert(self.clock, key.clone());
        let mut reply = slot.reply.clone();
        for record in reply
            .answers
            .iter_mut()
            .chain(reply.authorities.iter_mut())
            .chain(reply.additionals.iter_mut())
        {
            record.ttl = record.ttl.saturating_sub(age);
        }
        Some(reply)
    }

    /// Keeps `reply` (`size` bytes on the wire) for `key` as long as [`lifetime`] says, if it
    /// says so; evicts the least recently used answer when full. Returns whether it was kept.
    pub fn insert(&mut self, key: Key, reply: &Message, size: usize, now: Instant) -> bool {
        if self.capacity == 0 || size > MAX_ENTRY_BYTES {
            return false;
        }
        let Some(ttl) = lifetime(reply) else {
            return false;
        };
        if let Some(old) = self.slots.remove(&key) {
            self.recency.remove(&old.used);
        }
        while self.slots.len() >= self.capacity {
            let Some((_, oldest)) = self.recency.pop_first() else {
                break;
            };
            self.slots.remove(&oldest);
        }
        self.clock += 1;
        let mut kept = Message::new(0, MessageType::Response, OpCode::Query);
        kept.metadata.response_code = reply.metadata.response_code;
        kept.answers = reply.answers.clone();
        kept.authorities = reply.authorities.clone();
        kept.additionals = reply.additionals.clone();
        self.recency.insert(self.clock, key.clone());
        self.slots.insert(
            key,
            Slot {
                reply: kept,
                stored: now,
                ttl,
                used: self.clock,
            },
        );
        true
    }
}

/// How long an upstream `reply` may be cached, in seconds (RFC 2308); `None`: not at all.
pub fn lifetime(reply: &Message) -> Option<u32> {
    if reply.metadata.truncation {
        return None;
    }
    let rcode = reply.metadata.response_code;
    let ttl = match rcode {
        ResponseCode::NoError if !reply.answers.is_empty() => reply
            .answers
            .iter()
            .map(|r| r.ttl)
            .min()
            .map(|t| t.min(MAX_TTL)),
        ResponseCode::NoError | ResponseCode::NXDomain => reply
            .authorities
            .iter()
            .find_map(|r| match &r.data {
                RData::SOA(soa) => Some(r.ttl.min(soa.minimum)),
                _ => None,
            })
            .map(|t| t.min(MAX_NEGATIVE_TTL)),
        _ => None,
    };
    ttl.filter(|t| *t > 0)
}

#[cfg(test)]
mod tests;
