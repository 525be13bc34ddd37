//! Packets in, packets out: parsing, EDNS, truncation, errors, forwarded replies, and any bytes
//! at all (property-tested).

use std::net::{IpAddr, Ipv4Addr};

use hickory_proto::op::Message;
use hickory_proto::rr::rdata::{A, SOA};
use hickory_proto::rr::{Name, RData};
use proptest::prelude::*;
use stackube_model::config::ServiceName;

use super::*;
use crate::dns::records::{Endpoint, PodRecord, ServiceKind, ServiceRecord, SliceRecord};

fn zone() -> Zone {
    Zone::new("cluster.local", Ipv4Addr::new(10, 96, 0, 10), 5).expect("a zone")
}

/// Tenant a: `web` (10.96.0.20), `many` (headless, 100 endpoints), `ext` (ExternalName);
/// tenant b: `secret` (10.97.0.1) and a pod 10.245.0.1.
fn world() -> Index {
    let mut index = Index::new();
    let cluster_ip = |ip: [u8; 4]| ServiceRecord {
        kind: ServiceKind::ClusterIp(vec![IpAddr::from(ip)].into()),
        ports: Box::new([]),
    };
    index.set_service("a", "web", Some(cluster_ip([10, 96, 0, 20])), 1);
    index.set_service(
        "a",
        "many",
        Some(ServiceRecord {
            kind: ServiceKind::Headless,
            ports: Box::new([]),
        }),
        1,
    );
    index.set_slice(
        "a",
        "many-1",
        Some(SliceRecord {
            service: "many".into(),
            endpoints: (0..100u8)
                .map(|i| Endpoint {
                    ip: IpAddr::V4(Ipv4Addr::new(10, 244, 1, i)),
                    hostname: None,
                })
                .collect(),
            ports: Box::new([]),
        }),
        1,
    );
    index.set_service(
        "a",
        "ext",
        Some(ServiceRecord {
            kind: ServiceKind::ExternalName("www.example.com".into()),
            ports: Box::new([]),
        }),
        1,
    );
    index.set_service("b", "secret", Some(cluster_ip([10, 97, 0, 1])), 1);
    index.set_pod(
        "b",
        "p",
        Some(PodRecord {
            ips: vec![IpAddr::V4(Ipv4Addr::new(10, 245, 0, 1))].into(),
        }),
        1,
    );
    index
}

fn view_a() -> View {
    View::new(
        ["a"],
        &[ServiceName {
            namespace: "default".into(),
            name: "kubernetes".into(),
        }],
    )
}

/// A query for `name`/`qtype` with id 4242, RD set, and EDNS with `payload` when given.
fn query(name: &str, qtype: RecordType, payload: Option<u16>) -> Vec<u8> {
    let mut message = Message::query();
    message.metadata.id = 4242;
    message.metadata.recursion_desired = true;
    message.add_query(Query::query(Name::from_ascii(name).expect("a name"), qtype));
    if let Some(payload) = payload {
        let mut edns = Edns::new();
        edns.set_max_payload(payload);
        message.set_edns(edns);
    }
    message.to_vec().expect("a query encodes")
}

fn handled(packet: &[u8], transport: Transport) -> Handled {
    handle(&world(), &view_a(), &zone(), packet, transport)
}

fn reply(packet: &[u8], transport: Transport) -> (Reply, Message) {
    match handled(packet, transport) {
        Handled::Reply(reply) => {
            let message = Message::from_vec(&reply.bytes).expect("the reply parses");
            (reply, message)
        }
        other => panic!("no reply: {other:?}"),
    }
}

#[test]
fn a_query_gets_an_authoritative_answer_under_its_id_and_question() {
    let (reply, message) = reply(
        &query("Web.A.svc.cluster.local.", RecordType::A, None),
        Transport::Udp,
    );
    assert_eq!(message.metadata.id, 4242);
    assert_eq!(message.metadata.message_type, MessageType::Response);
    assert!(message.metadata.authoritative);
    assert!(message.metadata.recursion_desired && message.metadata.recursion_available);
    assert_eq!(
        message.queries[0].name().to_ascii(),
        "Web.A.svc.cluster.local."
    );
    assert_eq!(message.answers.len(), 1);
    assert_eq!(
        message.answers[0].data,
        RData::A(A(Ipv4Addr::new(10, 96, 0, 20)))
    );
    assert_eq!(message.edns, None, "no OPT to a query without one");
    assert_eq!(
        reply.summary,
        Summary {
            qtype: Some(RecordType::A),
            rcode: ResponseCode::NoError,
            truncated: false
        }
    );
}

#[test]
fn edns_is_answered_with_our_payload_size_and_version_0() {
    let (_, message) = reply(
        &query("web.a.svc.cluster.local.", RecordType::A, Some(4096)),
        Transport::Udp,
    );
    let edns = message.edns.expect("an OPT record back");
    assert_eq!(edns.max_payload(), MAX_UDP_PAYLOAD);
    assert_eq!(edns.version(), 0);
    assert!(!edns.flags().dnssec_ok);

    let mut unknown_version = Message::from_vec(&query(
        "web.a.svc.cluster.local.",
        RecordType::A,
        Some(1232),
    ))
    .expect("parses");
    unknown_version
        .edns
        .as_mut()
        .expect("an OPT")
        .set_version(1);
    let (reply, message) = reply(&unknown_version.to_vec().expect("encodes"), Transport::Udp);
    assert_eq!(reply.summary.rcode, ResponseCode::BADVERS);
    // 16 is BADVERS with an OPT record (BADSIG to a decoder that cannot tell).
    assert_eq!(u16::from(message.metadata.response_code), 16);
    assert!(message.edns.is_some());
    assert!(message.answers.is_empty());
}

#[test]
fn a_reply_too_large_for_udp_is_truncated_and_whole_over_tcp() {
    let name = "many.a.svc.cluster.local.";
    let cases = [
        (None, Transport::Udp, 512, true),
        (Some(1232), Transport::Udp, 1232, true),
        (Some(400), Transport::Udp, 512, true),
        (Some(4096), Transport::Tcp, 65_535, false),
        (None, Transport::Tcp, 65_535, false),
    ];
    for (payload, transport, limit, truncated) in cases {
        let (reply, message) = reply(&query(name, RecordType::A, payload), transport);
        let what = format!("{payload:?} over {transport:?}");
        assert!(
            reply.bytes.len() <= limit,
            "{what}: {} bytes",
            reply.bytes.len()
        );
        assert_eq!(message.metadata.truncation, truncated, "{what}");
        assert_eq!(reply.summary.truncated, truncated, "{what}");
        if truncated {
            assert!(
                !message.answers.is_empty() && message.answers.len() < 100,
                "{what}: as many answers as fit, {}",
                message.answers.len()
            );
        } else {
            assert_eq!(message.answers.len(), 100, "{what}");
        }
    }
}

#[test]
fn malformed_and_unexpected_messages_get_errors_or_nothing() {
    let good = query("web.a.svc.cluster.local.", RecordType::A, None);
    assert!(matches!(
        handled(&good[..11], Transport::Udp),
        Handled::Drop(Dropped::TooShort)
    ));
    let mut response = good.clone();
    response[2] |= 0x80;
    assert!(matches!(
        handled(&response, Transport::Udp),
        Handled::Drop(Dropped::NotAQuery)
    ));

    let rcode_of = |packet: &[u8]| match handled(packet, Transport::Udp) {
        Handled::Reply(reply) => {
            assert_eq!(&reply.bytes[..2], &packet[..2], "the query's id");
            assert_ne!(reply.bytes[2] & 0x80, 0, "QR set");
            reply.summary.rcode
        }
        other => panic!("no reply: {other:?}"),
    };
    let mut cut = good.clone();
    cut.truncate(20);
    assert_eq!(
        rcode_of(&cut),
        ResponseCode::FormErr,
        "a question cut short"
    );
    let mut notify = good.clone();
    notify[2] |= 4 << 3;
    assert_eq!(rcode_of(&notify), ResponseCode::NotImp, "NOTIFY");
    let mut two = Message::from_vec(&good).expect("parses");
    two.add_query(Query::query(
        Name::from_ascii("web.a.svc.cluster.local.").expect("a name"),
        RecordType::AAAA,
    ));
    assert_eq!(
        rcode_of(&two.to_vec().expect("encodes")),
        ResponseCode::FormErr
    );
    let mut chaos = Message::from_vec(&good).expect("parses");
    chaos.queries[0].set_query_class(DNSClass::CH);
    assert_eq!(
        rcode_of(&chaos.to_vec().expect("encodes")),
        ResponseCode::Refused
    );
    assert_eq!(
        rcode_of(&query("cluster.local.", RecordType::AXFR, None)),
        ResponseCode::Refused
    );
    let mut extra_opt = Message::from_vec(&query("x.", RecordType::A, Some(1232))).expect("parses");
    // Two OPT records: FORMERR (RFC 6891).
    let opt = Record::from(extra_opt.edns.as_ref().expect("an OPT"));
    extra_opt.additionals.push(opt);
    assert_eq!(
        rcode_of(&extra_opt.to_vec().expect("encodes")),
        ResponseCode::FormErr
    );
}

#[test]
fn forwarded_questions_are_checked_and_relayed_under_the_clients_id() {
    let Handled::Forward(pending) = handled(
        &query("WWW.example.com.", RecordType::A, Some(1232)),
        Transport::Udp,
    ) else {
        panic!("not forwarded");
    };
    // The upstream query: our id, recursion desired, EDNS.
    let upstream = Message::from_vec(&pending.upstream_query(7)).expect("parses");
    assert_eq!(upstream.metadata.id, 7);
    assert!(upstream.metadata.recursion_desired);
    assert_eq!(upstream.queries, vec![pending.question().clone()]);
    assert!(upstream.edns.is_some());

    let answer = |id: u16, name: &str, qr: bool| -> Vec<u8> {
        let mut message = Message::response(id, OpCode::Query);
        if !qr {
            message.metadata.message_type = MessageType::Query;
        }
        let name = Name::from_ascii(name).expect("a name");
        message.add_query(Query::query(name.clone(), RecordType::A));
        message.add_answer(Record::from_rdata(
            name,
            300,
            RData::A(A(Ipv4Addr::new(192, 0, 2, 1))),
        ));
        message.to_vec().expect("encodes")
    };
    assert_eq!(pending.upstream_reply(7, b"junk"), Err(Rejected::Malformed));
    assert_eq!(
        pending.upstream_reply(7, &answer(8, "www.example.com.", true)),
        Err(Rejected::NotTheReply),
        "another id"
    );
    assert_eq!(
        pending.upstream_reply(7, &answer(7, "www.example.org.", true)),
        Err(Rejected::NotTheReply),
        "another question"
    );
    assert_eq!(
        pending.upstream_reply(7, &answer(7, "www.example.com.", false)),
        Err(Rejected::NotTheReply),
        "a query"
    );
    let upstream = pending
        .upstream_reply(7, &answer(7, "www.EXAMPLE.com.", true))
        .expect("the reply, whatever its case");

    let reply = pending.reply(Some(&upstream));
    let message = Message::from_vec(&reply.bytes).expect("parses");
    assert_eq!(message.metadata.id, 4242);
    assert_eq!(message.queries[0].name().to_ascii(), "WWW.example.com.");
    assert!(!message.metadata.authoritative);
    assert!(message.metadata.recursion_available);
    assert_eq!(message.answers.len(), 1);
    assert_eq!(reply.summary.rcode, ResponseCode::NoError);
}

#[test]
fn no_upstream_is_a_clear_servfail() {
    for payload in [None, Some(1232)] {
        let Handled::Forward(pending) = handled(
            &query("www.example.com.", RecordType::A, payload),
            Transport::Udp,
        ) else {
            panic!("not forwarded");
        };
        let reply = pending.reply(None);
        let message = Message::from_vec(&reply.bytes).expect("parses");
        assert_eq!(message.metadata.response_code, ResponseCode::ServFail);
        assert_eq!(reply.summary.rcode, ResponseCode::ServFail);
        match (payload, message.edns) {
            (None, None) => {}
            (Some(_), Some(edns)) => {
                let option = edns
                    .options()
                    .as_ref()
                    .iter()
                    .find(|(code, _)| u16::from(*code) == EDE_OPTION)
                    .map(|(_, option)| option.clone())
                    .expect("an extended DNS error");
                let EdnsOption::Unknown(_, data) = option else {
                    panic!("{option:?}");
                };
                assert_eq!(u16::from_be_bytes([data[0], data[1]]), 22);
                assert_eq!(&data[2..], b"no upstream answered");
            }
            (payload, edns) => panic!("{payload:?}: {edns:?}"),
        }
    }
}

#[test]
fn an_external_names_cname_comes_before_the_upstreams_answer_even_nxdomain() {
    let Handled::Forward(pending) = handled(
        &query("ext.a.svc.cluster.local.", RecordType::A, None),
        Transport::Udp,
    ) else {
        panic!("not forwarded");
    };
    assert_eq!(pending.question().name().to_ascii(), "www.example.com.");
    let mut upstream = Message::response(1, OpCode::Query);
    upstream.metadata.response_code = ResponseCode::NXDomain;
    upstream.add_query(pending.question().clone());
    let soa = SOA::new(
        Name::from_ascii("ns.example.com.").expect("a name"),
        Name::from_ascii("hostmaster.example.com.").expect("a name"),
        1,
        1,
        1,
        1,
        60,
    );
    upstream.add_authority(Record::from_rdata(
        Name::from_ascii("example.com.").expect("a name"),
        60,
        RData::SOA(soa),
    ));
    let reply = pending.reply(Some(&upstream));
    let message = Message::from_vec(&reply.bytes).expect("parses");
    assert_eq!(message.metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(message.answers.len(), 1);
    assert_eq!(message.answers[0].record_type(), RecordType::CNAME);
    assert_eq!(message.authorities.len(), 1);
}

/// Whether any record of `message` holds tenant b's data.
fn holds_b(message: &Message) -> bool {
    message.all_sections().any(|r| {
        let text = format!("{} {}", r.name, r.data);
        text.contains("10.97.") || text.contains("10.245.") || text.contains(".b.")
    })
}

/// Any bytes: no panic, replies within the transport's size, nothing of tenant b.
fn check(packet: &[u8]) -> Result<(), TestCaseError> {
    for transport in [Transport::Udp, Transport::Tcp] {
        match handled(packet, transport) {
            Handled::Reply(reply) => {
                // 512 bytes over UDP, unless the query (if it parses) has EDNS.
                let limit = match transport {
                    Transport::Udp => Message::from_vec(packet)
                        .ok()
                        .and_then(|m| m.edns)
                        .map_or(512, |e| {
                            usize::from(e.max_payload().clamp(512, MAX_UDP_PAYLOAD))
                        }),
                    Transport::Tcp => 65_535,
                };
                prop_assert!(reply.bytes.len() <= limit && reply.bytes.len() >= 12);
                if let Ok(message) = Message::from_vec(&reply.bytes) {
                    prop_assert!(!holds_b(&message), "{:?}", message);
                }
            }
            Handled::Forward(pending) => {
                let reply = pending.reply(None);
                prop_assert!(!reply.bytes.is_empty());
            }
            Handled::Drop(_) => {}
        }
    }
    Ok(())
}

proptest! {
    #[test]
    fn any_bytes_at_all(packet in prop::collection::vec(any::<u8>(), 0..600)) {
        check(&packet)?;
    }

    #[test]
    fn queries_with_bytes_flipped(
        name in prop::sample::select(vec![
            "web.a.svc.cluster.local.", "secret.b.svc.cluster.local.",
            "1.0.97.10.in-addr.arpa.", "1.0.245.10.in-addr.arpa.",
            "10-245-0-1.b.pod.cluster.local.", "many.a.svc.cluster.local.",
            "ext.a.svc.cluster.local.",
        ]),
        qtype in prop::sample::select(vec![RecordType::A, RecordType::PTR, RecordType::ANY]),
        edns in prop::option::of(0u16..5000),
        flips in prop::collection::vec((any::<usize>(), any::<u8>()), 0..6),
    ) {
        let mut packet = query(name, qtype, edns);
        check(&packet)?;
        for (at, value) in flips {
            let at = at % packet.len();
            packet[at] ^= value;
        }
        check(&packet)?;
    }
}
