use std::net::Ipv4Addr;
use std::time::Duration;

use hickory_proto::rr::rdata::{A, SOA};
use hickory_proto::rr::{Name, Record};

use super::*;

fn name(text: &str) -> Name {
    Name::from_ascii(text).expect("a name")
}

fn question(text: &str) -> Query {
    Query::query(name(text), RecordType::A)
}

fn positive(ttls: &[u32]) -> Message {
    let mut message = Message::new(1, MessageType::Response, OpCode::Query);
    for ttl in ttls {
        message.add_answer(Record::from_rdata(
            name("www.example.com."),
            *ttl,
            RData::A(A(Ipv4Addr::new(192, 0, 2, 1))),
        ));
    }
    message
}

fn negative(rcode: ResponseCode, soa_ttl: u32, minimum: u32) -> Message {
    let mut message = Message::new(1, MessageType::Response, OpCode::Query);
    message.metadata.response_code = rcode;
    let soa = SOA::new(
        name("ns.example.com."),
        name("hostmaster.example.com."),
        1,
        7200,
        900,
        86400,
        minimum,
    );
    message.add_authority(Record::from_rdata(
        name("example.com."),
        soa_ttl,
        RData::SOA(soa),
    ));
    message
}

#[test]
fn lifetimes_follow_the_ttls_and_rfc_2308() {
    let mut truncated = positive(&[60]);
    truncated.metadata.truncation = true;
    let mut servfail = positive(&[60]);
    servfail.metadata.response_code = ResponseCode::ServFail;
    let mut nodata_without_soa = Message::new(1, MessageType::Response, OpCode::Query);
    nodata_without_soa.metadata.response_code = ResponseCode::NoError;
    let cases = [
        (
            "the smallest answer TTL",
            positive(&[300, 60, 600]),
            Some(60),
        ),
        ("capped", positive(&[86_400]), Some(MAX_TTL)),
        ("TTL 0: not kept", positive(&[0]), None),
        (
            "NXDOMAIN: SOA TTL",
            negative(ResponseCode::NXDomain, 30, 600),
            Some(30),
        ),
        (
            "NXDOMAIN: SOA MINIMUM",
            negative(ResponseCode::NXDomain, 600, 45),
            Some(45),
        ),
        ("NODATA", negative(ResponseCode::NoError, 600, 45), Some(45)),
        (
            "negative, capped",
            negative(ResponseCode::NXDomain, 86_400, 86_400),
            Some(MAX_NEGATIVE_TTL),
        ),
        ("negative without SOA", nodata_without_soa, None),
        ("SERVFAIL", servfail, None),
        ("REFUSED", negative(ResponseCode::Refused, 60, 60), None),
        ("truncated", truncated, None),
    ];
    for (what, message, want) in cases {
        assert_eq!(lifetime(&message), want, "{what}");
    }
}

#[test]
fn hits_age_and_expire() {
    let view: Arc<str> = "router-a".into();
    let key = Key::new(&view, &question("WWW.example.com."));
    let mut cache = Cache::new(10);
    let start = Instant::now();
    assert!(cache.insert(key.clone(), &positive(&[60]), 100, start));
    let hit = cache
        .get(
            &Key::new(&view, &question("www.example.COM.")),
            start + Duration::from_secs(25),
        )
        .expect("a hit, whatever the case");
    assert_eq!(
        hit.answers[0].ttl, 35,
        "the TTL minus the time in the cache"
    );
    assert!(cache.get(&key, start + Duration::from_secs(60)).is_none());
    assert!(cache.is_empty(), "expired entries go");

    assert!(cache.insert(
        key.clone(),
        &negative(ResponseCode::NXDomain, 30, 30),
        100,
        start
    ));
    let hit = cache
        .get(&key, start + Duration::from_secs(10))
        .expect("a negative hit");
    assert_eq!(hit.metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(hit.authorities[0].ttl, 20);
}

#[test]
fn views_never_share_entries() {
    let (a, b): (Arc<str>, Arc<str>) = ("router-a".into(), "router-b".into());
    let mut cache = Cache::new(10);
    let now = Instant::now();
    cache.insert(
        Key::new(&a, &question("x.example.")),
        &positive(&[60]),
        10,
        now,
    );
    assert!(
        cache
            .get(&Key::new(&b, &question("x.example.")), now)
            .is_none()
    );
    assert!(
        cache
            .get(&Key::new(&a, &question("x.example.")), now)
            .is_some()
    );
}

#[test]
fn it_is_bounded_and_evicts_the_least_recently_used() {
    let view: Arc<str> = "r".into();
    let key = |i: usize| Key::new(&view, &question(&format!("n{i}.example.")));
    let mut cache = Cache::new(3);
    let now = Instant::now();
    for i in 0..3 {
        cache.insert(key(i), &positive(&[60]), 10, now);
    }
    assert!(cache.get(&key(0), now).is_some(), "0 used last");
    cache.insert(key(3), &positive(&[60]), 10, now);
    assert_eq!(cache.len(), 3);
    assert!(
        cache.get(&key(1), now).is_none(),
        "1 was the least recently used"
    );
    assert!(cache.get(&key(0), now).is_some());
    assert!(cache.get(&key(3), now).is_some());
    assert!(
        !cache.insert(key(4), &positive(&[60]), MAX_ENTRY_BYTES + 1, now),
        "too large"
    );
    let mut off = Cache::new(0);
    assert!(
        !off.insert(key(0), &positive(&[60]), 10, now),
        "size 0: no cache"
    );
}
