//! Any bytes, as an upstream's reply to a forwarded question: checked, relayed within the
//! client's size, cached and read back, without a panic.

#![no_main]

mod world;

use std::sync::Arc;
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, Query};
use hickory_proto::rr::{Name, RecordType};
use libfuzzer_sys::fuzz_target;
use stackube_core::dns::cache::{Cache, Key, lifetime};
use stackube_core::dns::{Handled, Transport, handle};
use world::WORLD;

fuzz_target!(|data: &[u8]| {
    let world = &*WORLD;
    let mut query = Message::query();
    query.metadata.id = 1;
    query.add_query(Query::query(
        Name::from_ascii("www.example.com.").expect("a name"),
        RecordType::A,
    ));
    let packet = query.to_vec().expect("a query encodes");
    let Handled::Forward(pending) = handle(
        &world.index,
        &world.view,
        &world.zone,
        &packet,
        Transport::Udp,
    ) else {
        panic!("an external name is forwarded");
    };
    let id = data
        .get(..2)
        .map_or(0, |b| u16::from_be_bytes([b[0], b[1]]));
    let Ok(upstream) = pending.upstream_reply(id, data) else {
        return;
    };
    let _ = lifetime(&upstream);
    let mut cache = Cache::new(4);
    let now = Instant::now();
    let key = Key::new(&Arc::from("a"), pending.question());
    cache.insert(key.clone(), &upstream, data.len(), now);
    if let Some(cached) = cache.get(&key, now + Duration::from_secs(1)) {
        let reply = pending.clone().reply(Some(&cached));
        assert!(reply.bytes.len() <= 512);
    }
    let reply = pending.reply(Some(&upstream));
    assert!(reply.bytes.len() <= 512);
});
