//! Any bytes, as a query arriving on tenant a's socket: no panic, a reply within the
//! transport's size, nothing of tenant b in it; and a forwarded question's replies (none, or
//! the same bytes as the upstream's) hold to the same.

#![no_main]

mod world;

use hickory_proto::op::Message;
use libfuzzer_sys::fuzz_target;
use stackube_core::dns::message::MAX_UDP_PAYLOAD;
use stackube_core::dns::{Handled, Transport, handle};
use world::{WORLD, assert_nothing_of_b};

fuzz_target!(|data: &[u8]| {
    let world = &*WORLD;
    for (transport, limit) in [
        (Transport::Udp, usize::from(MAX_UDP_PAYLOAD)),
        (Transport::Tcp, 65_535),
    ] {
        match handle(&world.index, &world.view, &world.zone, data, transport) {
            Handled::Reply(reply) => {
                assert!(reply.bytes.len() >= 12 && reply.bytes.len() <= limit);
                if let Ok(message) = Message::from_vec(&reply.bytes) {
                    assert_nothing_of_b(&message);
                }
            }
            Handled::Forward(pending) => {
                let _ = pending.upstream_query(7);
                let none = pending.clone().reply(None);
                assert!(none.bytes.len() <= limit);
                if let Ok(upstream) =
                    pending.upstream_reply(u16::from_be_bytes([data[0], data[1]]), data)
                {
                    let reply = pending.reply(Some(&upstream));
                    assert!(reply.bytes.len() <= limit);
                }
            }
            Handled::Drop(_) => {}
        }
    }
});
