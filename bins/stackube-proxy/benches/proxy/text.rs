//! The benchmark's pure helpers, reading what the kernel and the contenders print: the IPv4
//! addresses of an `nft list` output, a process's CPU time, parent and memory from `/proc`, and
//! numbers as the report writes them. Unit-tested by `tests/bench_helpers.rs` (the benchmark
//! itself has no test harness).

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::time::Duration;

/// Every IPv4 address in `text` (an `nft list map` output).
pub(crate) fn addresses(text: &str) -> BTreeSet<Ipv4Addr> {
    text.split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .filter_map(|w| w.parse().ok())
        .collect()
}

/// utime + stime + cutime + cstime of a `/proc/<pid>/stat` line (fields 14–17, counted after
/// the command name in parentheses, which may hold spaces and parentheses), in clock ticks of
/// 10 ms.
pub(crate) fn cpu_of(stat: &str) -> Option<Duration> {
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    // The first field after `)` is field 3 (the state).
    let ticks: u64 = (14..=17)
        .map(|f| fields.get(f - 3)?.parse::<u64>().ok())
        .sum::<Option<u64>>()?;
    Some(Duration::from_millis(ticks * 10))
}

/// The parent process id of a `/proc/<pid>/stat` line (field 4).
pub(crate) fn ppid_of(stat: &str) -> Option<u32> {
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// The value of `field` (`VmRSS:`) of a `/proc/<pid>/status`, in KiB; 0 when absent.
pub(crate) fn kib(status: &str, field: &str) -> u64 {
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// `10,000`.
pub(crate) fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
