//! Typical updates, as text. Each is also checked on the model: it applies to what the old
//! spec's full sync made and leaves what the new spec's full sync makes.

use super::*;

fn web_with(backend: Backend) -> TableSpec {
    spec(&[(web(), "test/web:http", backend)])
}

fn sticky_with(backend: Backend) -> TableSpec {
    spec(&[(sticky(), "test/sticky", backend)])
}

#[test]
fn scaling_3_to_0_rejects_then_scaling_to_2_serves_again() {
    let three = web_with(random(&[1, 2, 3]));
    let zero = web_with(Backend::Reject);
    let two = web_with(random(&[1, 2]));
    let to_zero = r#"
        delete element inet stackube-proxy services { 10.96.0.5 . tcp . 80 }
        add element inet stackube-proxy no-endpoints { 10.96.0.5 . tcp . 80 comment "test/web:http" : goto reject-chain }
        delete chain inet stackube-proxy endpoints-3
        delete map inet stackube-proxy endpoints-3
    "#;
    assert_eq!(checked_update(&three, &zero), lines(to_zero));
    let to_two = r#"
        add map inet stackube-proxy endpoints-2 { typeof ip daddr . meta l4proto . th dport . numgen random mod 2 : ip daddr . th dport; size 1024; }
        add chain inet stackube-proxy endpoints-2
        add rule inet stackube-proxy endpoints-2 dnat ip to ip daddr . meta l4proto . th dport . numgen random mod 2 map @endpoints-2
        delete element inet stackube-proxy no-endpoints { 10.96.0.5 . tcp . 80 }
        add element inet stackube-proxy services { 10.96.0.5 . tcp . 80 comment "test/web:http" : goto endpoints-2 }
        add element inet stackube-proxy endpoints-2 { 10.96.0.5 . tcp . 80 . 0 : 10.244.0.1 . 8080, 10.96.0.5 . tcp . 80 . 1 : 10.244.0.2 . 8080 }
    "#;
    assert_eq!(checked_update(&zero, &two), lines(to_two));
}

#[test]
fn a_replaced_endpoint_rewrites_only_its_slot() {
    let want = "
        delete element inet stackube-proxy endpoints-2 { 10.96.0.5 . tcp . 80 . 1 }
        add element inet stackube-proxy endpoints-2 { 10.96.0.5 . tcp . 80 . 1 : 10.244.0.3 . 8080 }
    ";
    let got = checked_update(&web_with(random(&[1, 2])), &web_with(random(&[1, 3])));
    assert_eq!(got, lines(want));
}

#[test]
fn a_new_service_adds_its_bucket_and_elements_and_nothing_else() {
    let old = web_with(random(&[1, 2]));
    let new = spec(&[
        (web(), "test/web:http", random(&[1, 2])),
        (dns(), "kube-system/dns:dns", random(&[4, 5, 6])),
    ]);
    let want = r#"
        add map inet stackube-proxy endpoints-3 { typeof ip daddr . meta l4proto . th dport . numgen random mod 3 : ip daddr . th dport; size 1024; }
        add chain inet stackube-proxy endpoints-3
        add rule inet stackube-proxy endpoints-3 dnat ip to ip daddr . meta l4proto . th dport . numgen random mod 3 map @endpoints-3
        add element inet stackube-proxy service-addresses { 10.96.0.10 }
        add element inet stackube-proxy services { 10.96.0.10 . udp . 53 comment "kube-system/dns:dns" : goto endpoints-3 }
        add element inet stackube-proxy endpoints-3 { 10.96.0.10 . udp . 53 . 0 : 10.244.0.4 . 8080, 10.96.0.10 . udp . 53 . 1 : 10.244.0.5 . 8080, 10.96.0.10 . udp . 53 . 2 : 10.244.0.6 . 8080 }
    "#;
    assert_eq!(checked_update(&old, &new), lines(want));
}

#[test]
fn deleted_services_take_their_elements_and_objects_along_once_unreferenced() {
    let old = spec(&[
        (web(), "test/web:http", random(&[1, 2])),
        (sticky(), "test/sticky", affinity(60, &[7])),
    ]);
    let want = "
        delete element inet stackube-proxy service-addresses { 10.96.0.5, 10.96.0.7 }
        delete element inet stackube-proxy services { 10.96.0.5 . tcp . 80, 10.96.0.7 . tcp . 80 }
        delete chain inet stackube-proxy affinity-10.96.0.7-tcp-80
        delete chain inet stackube-proxy endpoint-10.96.0.7-tcp-80-10.244.0.7-8080
        delete set inet stackube-proxy affinity-10.96.0.7-tcp-80-10.244.0.7-8080
        delete chain inet stackube-proxy endpoints-2
        delete map inet stackube-proxy endpoints-2
    ";
    assert_eq!(checked_update(&old, &spec(&[])), lines(want));
}

#[test]
fn a_removed_affinity_endpoint_goes_while_clients_of_the_others_stay() {
    let want = "
        flush chain inet stackube-proxy affinity-10.96.0.7-tcp-80
        add rule inet stackube-proxy affinity-10.96.0.7-tcp-80 ip saddr @affinity-10.96.0.7-tcp-80-10.244.0.8-8080 goto endpoint-10.96.0.7-tcp-80-10.244.0.8-8080
        add rule inet stackube-proxy affinity-10.96.0.7-tcp-80 numgen random mod 1 vmap { 0 : goto endpoint-10.96.0.7-tcp-80-10.244.0.8-8080 }
        delete chain inet stackube-proxy endpoint-10.96.0.7-tcp-80-10.244.0.7-8080
        delete set inet stackube-proxy affinity-10.96.0.7-tcp-80-10.244.0.7-8080
    ";
    let old = sticky_with(affinity(60, &[7, 8]));
    let got = checked_update(&old, &sticky_with(affinity(60, &[8])));
    assert_eq!(got, lines(want));
}

#[test]
fn an_added_affinity_endpoint_exists_before_the_chain_goes_to_it() {
    let want = "
        add set inet stackube-proxy affinity-10.96.0.7-tcp-80-10.244.0.8-8080 { type ipv4_addr; flags dynamic,timeout; timeout 60s; }
        add chain inet stackube-proxy endpoint-10.96.0.7-tcp-80-10.244.0.8-8080
        add rule inet stackube-proxy endpoint-10.96.0.7-tcp-80-10.244.0.8-8080 update @affinity-10.96.0.7-tcp-80-10.244.0.8-8080 { ip saddr }
        add rule inet stackube-proxy endpoint-10.96.0.7-tcp-80-10.244.0.8-8080 meta l4proto tcp dnat ip to 10.244.0.8:8080
        flush chain inet stackube-proxy affinity-10.96.0.7-tcp-80
        add rule inet stackube-proxy affinity-10.96.0.7-tcp-80 ip saddr @affinity-10.96.0.7-tcp-80-10.244.0.7-8080 goto endpoint-10.96.0.7-tcp-80-10.244.0.7-8080
        add rule inet stackube-proxy affinity-10.96.0.7-tcp-80 ip saddr @affinity-10.96.0.7-tcp-80-10.244.0.8-8080 goto endpoint-10.96.0.7-tcp-80-10.244.0.8-8080
        add rule inet stackube-proxy affinity-10.96.0.7-tcp-80 numgen random mod 2 vmap { 0 : goto endpoint-10.96.0.7-tcp-80-10.244.0.7-8080, 1 : goto endpoint-10.96.0.7-tcp-80-10.244.0.8-8080 }
    ";
    let old = sticky_with(affinity(60, &[7]));
    let got = checked_update(&old, &sticky_with(affinity(60, &[7, 8])));
    assert_eq!(got, lines(want));
}

#[test]
fn a_changed_affinity_timeout_recreates_the_sets() {
    let want = "
        flush chain inet stackube-proxy affinity-10.96.0.7-tcp-80
        delete chain inet stackube-proxy endpoint-10.96.0.7-tcp-80-10.244.0.7-8080
        delete set inet stackube-proxy affinity-10.96.0.7-tcp-80-10.244.0.7-8080
        add set inet stackube-proxy affinity-10.96.0.7-tcp-80-10.244.0.7-8080 { type ipv4_addr; flags dynamic,timeout; timeout 600s; }
        add chain inet stackube-proxy endpoint-10.96.0.7-tcp-80-10.244.0.7-8080
        add rule inet stackube-proxy endpoint-10.96.0.7-tcp-80-10.244.0.7-8080 update @affinity-10.96.0.7-tcp-80-10.244.0.7-8080 { ip saddr }
        add rule inet stackube-proxy endpoint-10.96.0.7-tcp-80-10.244.0.7-8080 meta l4proto tcp dnat ip to 10.244.0.7:8080
        add rule inet stackube-proxy affinity-10.96.0.7-tcp-80 ip saddr @affinity-10.96.0.7-tcp-80-10.244.0.7-8080 goto endpoint-10.96.0.7-tcp-80-10.244.0.7-8080
        add rule inet stackube-proxy affinity-10.96.0.7-tcp-80 numgen random mod 1 vmap { 0 : goto endpoint-10.96.0.7-tcp-80-10.244.0.7-8080 }
    ";
    let old = sticky_with(affinity(60, &[7]));
    let got = checked_update(&old, &sticky_with(affinity(600, &[7])));
    assert_eq!(got, lines(want));
}

#[test]
fn a_load_balancer_ip_added_shares_the_backend() {
    let old = web_with(random(&[1, 2]));
    let new = spec(&[
        (web(), "test/web:http", random(&[1, 2])),
        (lb(), "test/web:http", random(&[1, 2])),
    ]);
    let want = r#"
        add element inet stackube-proxy service-addresses { 172.24.4.10 }
        add element inet stackube-proxy services { 172.24.4.10 . tcp . 80 comment "test/web:http" : goto endpoints-2 }
        add element inet stackube-proxy endpoints-2 { 172.24.4.10 . tcp . 80 . 0 : 10.244.0.1 . 8080, 172.24.4.10 . tcp . 80 . 1 : 10.244.0.2 . 8080 }
    "#;
    assert_eq!(checked_update(&old, &new), lines(want));
}

#[test]
fn new_service_cidrs_rewrite_the_forward_chain() {
    let old = web_with(random(&[1]));
    let mut new = TableSpec::new(["10.96.0.0/16".parse().expect("a CIDR")]);
    for (frontend, entry) in old.frontends() {
        new.insert(*frontend, entry.clone());
    }
    let want = "
        flush chain inet stackube-proxy filter-forward
        add rule inet stackube-proxy filter-forward ct state new ct original ip daddr . meta l4proto . th dport vmap @no-endpoints
        add rule inet stackube-proxy filter-forward ct state new ip daddr 10.96.0.0/16 goto reject-chain
    ";
    assert_eq!(checked_update(&old, &new), lines(want));
}

#[test]
fn an_unchanged_table_needs_nothing_and_a_new_comment_one_element() {
    let old = web_with(random(&[1, 2]));
    assert_eq!(update(T, &old, &old), []);
    let renamed = spec(&[(web(), "test/www:http", random(&[1, 2]))]);
    let want = r#"
        delete element inet stackube-proxy services { 10.96.0.5 . tcp . 80 }
        add element inet stackube-proxy services { 10.96.0.5 . tcp . 80 comment "test/www:http" : goto endpoints-2 }
    "#;
    assert_eq!(checked_update(&old, &renamed), lines(want));
}
