//! Unit tests of the proxy benchmark's pure helpers (`benches/proxy/text.rs`): what it reads of
//! `nft monitor`, `nft list` and `/proc`. Here, because the benchmark has no test harness (and
//! tests beside its code would never run); `cargo test -p stackube-proxy --test bench_helpers`
//! needs no environment.

// What only the benchmark calls is dead code here.
#[allow(dead_code)]
#[path = "../benches/proxy/text.rs"]
mod text;

use std::time::Duration;

use text::{addresses, cpu_of, kib, thousands};

#[test]
fn addresses_are_read_from_a_map_listing() {
    let listing = "table inet stackube-proxy {\n\tmap services {\n\t\telements = { 10.96.0.1 . tcp . 443 : goto endpoints-1,\n\t\t\t     10.96.12.7 . tcp . 80 : goto endpoints-10 }\n\t}\n}\n";
    let found = addresses(listing);
    assert_eq!(
        found.into_iter().map(|a| a.to_string()).collect::<Vec<_>>(),
        vec!["10.96.0.1", "10.96.12.7"]
    );
}

#[test]
fn cpu_time_counts_the_process_and_its_children() {
    // Fields 14–17 (utime stime cutime cstime) = 7 + 3 + 20 + 5 ticks; the name holds a space
    // and a parenthesis.
    let stat =
        "4242 (kube proxy)) S 1 4242 4242 0 -1 4194560 100 0 0 0 7 3 20 5 20 0 12 0 100 1000 50";
    assert_eq!(cpu_of(stat), Some(Duration::from_millis(350)));
    assert_eq!(cpu_of("4242 (x) S 1"), None);
}

#[test]
fn memory_fields_are_read_in_kib() {
    let status = "Name:\tkube-proxy\nVmHWM:\t  76412 kB\nVmRSS:\t  74600 kB\n";
    assert_eq!(kib(status, "VmRSS:"), 74600);
    assert_eq!(kib(status, "VmHWM:"), 76412);
    assert_eq!(kib(status, "VmSwap:"), 0);
}

#[test]
fn sizes_are_written_with_thousands_separators() {
    assert_eq!(thousands(200), "200");
    assert_eq!(thousands(1_000), "1,000");
    assert_eq!(thousands(10_000), "10,000");
    assert_eq!(thousands(1_234_567), "1,234,567");
}

#[test]
fn the_parent_is_read_after_the_command_name() {
    let stat = "4243 (nft) S 4242 4243 4242 0 -1 4194560 100 0 0 0 7 3 0 0 20 0 1 0 100 1000 50";
    assert_eq!(text::ppid_of(stat), Some(4242));
    assert_eq!(text::ppid_of("4243 (a) b) S x"), None);
}
