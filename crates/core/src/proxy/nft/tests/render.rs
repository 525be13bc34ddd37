use std::collections::BTreeMap;

use super::*;

#[test]
fn a_full_sync_replaces_the_table_in_one_transaction() {
    let spec = spec(&[
        (web(), "test/web:http", random(&[6, 5])),
        (lb(), "test/web:http", random(&[5, 6])),
        (dns(), "kube-system/dns:dns", Backend::Reject),
        (sticky(), "test/sticky", affinity(10_800, &[7])),
    ]);
    let want = r#"
        add table inet stackube-proxy { comment "stackube-proxy: Services of this router; rewritten on sync"; }
        delete table inet stackube-proxy
        add table inet stackube-proxy { comment "stackube-proxy: Services of this router; rewritten on sync"; }
        add set inet stackube-proxy service-addresses { type ipv4_addr; size 1024; }
        add map inet stackube-proxy services { type ipv4_addr . inet_proto . inet_service : verdict; size 1024; }
        add map inet stackube-proxy no-endpoints { type ipv4_addr . inet_proto . inet_service : verdict; size 1024; }
        add chain inet stackube-proxy reject-chain
        add rule inet stackube-proxy reject-chain meta l4proto tcp reject with tcp reset
        add rule inet stackube-proxy reject-chain reject
        add map inet stackube-proxy endpoints-2 { typeof ip daddr . meta l4proto . th dport . numgen random mod 2 : ip daddr . th dport; size 1024; }
        add chain inet stackube-proxy endpoints-2
        add rule inet stackube-proxy endpoints-2 dnat ip to ip daddr . meta l4proto . th dport . numgen random mod 2 map @endpoints-2
        add set inet stackube-proxy affinity-10.96.0.7-tcp-80-10.244.0.7-8080 { type ipv4_addr; flags dynamic,timeout; timeout 10800s; }
        add chain inet stackube-proxy endpoint-10.96.0.7-tcp-80-10.244.0.7-8080
        add rule inet stackube-proxy endpoint-10.96.0.7-tcp-80-10.244.0.7-8080 update @affinity-10.96.0.7-tcp-80-10.244.0.7-8080 { ip saddr }
        add rule inet stackube-proxy endpoint-10.96.0.7-tcp-80-10.244.0.7-8080 meta l4proto tcp dnat ip to 10.244.0.7:8080
        add chain inet stackube-proxy affinity-10.96.0.7-tcp-80
        add rule inet stackube-proxy affinity-10.96.0.7-tcp-80 ip saddr @affinity-10.96.0.7-tcp-80-10.244.0.7-8080 goto endpoint-10.96.0.7-tcp-80-10.244.0.7-8080
        add rule inet stackube-proxy affinity-10.96.0.7-tcp-80 numgen random mod 1 vmap { 0 : goto endpoint-10.96.0.7-tcp-80-10.244.0.7-8080 }
        add chain inet stackube-proxy nat-prerouting { type nat hook prerouting priority dstnat - 10; policy accept; }
        add rule inet stackube-proxy nat-prerouting ip daddr . meta l4proto . th dport vmap @services
        add chain inet stackube-proxy filter-forward { type filter hook forward priority filter - 10; policy accept; }
        add rule inet stackube-proxy filter-forward ct state new ct original ip daddr . meta l4proto . th dport vmap @no-endpoints
        add rule inet stackube-proxy filter-forward ct state new ip daddr 10.96.0.0/12 goto reject-chain
        add chain inet stackube-proxy nat-postrouting { type nat hook postrouting priority srcnat - 10; policy accept; }
        add rule inet stackube-proxy nat-postrouting ct status dnat ct original ip daddr @service-addresses masquerade
        add element inet stackube-proxy service-addresses { 10.96.0.5, 10.96.0.7, 10.96.0.10, 172.24.4.10 }
        add element inet stackube-proxy services { 10.96.0.5 . tcp . 80 comment "test/web:http" : goto endpoints-2, 10.96.0.7 . tcp . 80 comment "test/sticky" : goto affinity-10.96.0.7-tcp-80, 172.24.4.10 . tcp . 80 comment "test/web:http" : goto endpoints-2 }
        add element inet stackube-proxy no-endpoints { 10.96.0.10 . udp . 53 comment "kube-system/dns:dns" : goto reject-chain }
        add element inet stackube-proxy endpoints-2 { 10.96.0.5 . tcp . 80 . 0 : 10.244.0.5 . 8080, 10.96.0.5 . tcp . 80 . 1 : 10.244.0.6 . 8080, 172.24.4.10 . tcp . 80 . 0 : 10.244.0.5 . 8080, 172.24.4.10 . tcp . 80 . 1 : 10.244.0.6 . 8080 }
    "#;
    assert_eq!(transaction(&full(T, &spec)), lines(want));
}

#[test]
fn an_empty_table_still_rejects_the_service_cidrs() {
    let spec = TableSpec::new([
        "10.96.0.0/16".parse().expect("a CIDR"),
        "10.100.0.0/16".parse().expect("a CIDR"),
    ]);
    let text = transaction(&full(T, &spec));
    assert!(!text.contains("add element"), "{text}");
    assert!(!text.contains("endpoints-"), "{text}");
    let forward: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("add rule inet stackube-proxy filter-forward"))
        .collect();
    assert_eq!(
        forward,
        [
            "add rule inet stackube-proxy filter-forward ct state new ct original ip daddr . meta l4proto . th dport vmap @no-endpoints",
            "add rule inet stackube-proxy filter-forward ct state new ip daddr 10.96.0.0/16 goto reject-chain",
            "add rule inet stackube-proxy filter-forward ct state new ip daddr 10.100.0.0/16 goto reject-chain",
        ]
    );
    model_of(&spec);
}

#[test]
fn comments_are_cut_to_what_nft_takes() {
    let long = format!("{}/{}:{}", "n".repeat(63), "s".repeat(63), "p".repeat(15));
    let spec = spec(&[(dns(), &format!("a \"quoted\" {long}"), Backend::Reject)]);
    let commands = full(T, &spec);
    let Some(Command::AddElements { elements, .. }) = commands.last() else {
        panic!("the last command adds elements: {commands:?}");
    };
    let comment = elements[0].comment.as_deref().expect("a comment");
    assert_eq!(comment.len(), 128);
    assert!(comment.starts_with("a 'quoted' nnn"), "{comment}");
}

#[test]
fn a_transaction_is_one_command_per_line() {
    let commands = [
        Command::FlushChain {
            table: "t".into(),
            name: "c".into(),
        },
        Command::DeleteElements {
            table: "t".into(),
            set: "s".into(),
            keys: vec!["10.0.0.1".into(), "10.0.0.2".into()],
        },
        Command::DeleteSet {
            table: "t".into(),
            name: "m".into(),
            map: true,
        },
    ];
    assert_eq!(
        transaction(&commands),
        "flush chain inet t c\ndelete element inet t s { 10.0.0.1, 10.0.0.2 }\ndelete map inet t m\n"
    );
    assert_eq!(transaction(&[]), "");
}

#[test]
fn a_filled_set_holds_twice_its_elements_rounded_up_to_a_power_of_two() {
    for (elements, size) in [
        (0, MIN_SET_SIZE),
        (512, 1024),
        (513, 2048),
        (10_000, 32_768),
        (100_000, 262_144),
        (usize::MAX, u32::MAX),
    ] {
        assert_eq!(capacity(elements), size, "{elements} elements");
    }
    // 600 frontends of 2 endpoints and 600 addresses: the bucket holds 1,200 elements.
    let frontends: Vec<(Frontend, &str, Backend)> = (0..600u32)
        .map(|i| {
            let ip = Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 96, 1, 0)) + i);
            let frontend = Frontend {
                ip,
                protocol: Protocol::Tcp,
                port: 80,
            };
            (frontend, "test/web:http", random(&[5, 6]))
        })
        .collect();
    let sizes: BTreeMap<String, Option<u32>> = full("stackube-proxy", &spec(&frontends))
        .into_iter()
        .filter_map(|command| match command {
            Command::AddSet { set, .. } => Some((set.name, set.size)),
            _ => None,
        })
        .collect();
    assert_eq!(
        sizes,
        BTreeMap::from([
            ("service-addresses".to_owned(), Some(2048)),
            ("services".to_owned(), Some(2048)),
            ("no-endpoints".to_owned(), Some(2048)),
            ("endpoints-2".to_owned(), Some(4096)),
        ])
    );
}
