//! What every benchmark shares: nearest-rank percentiles, the median of repeated runs with its
//! spread, run orders that alternate the contenders (or interleave sizes across rounds), the
//! number of runs asked for (`STACKUBE_BENCH_RUNS`, `STACKUBE_BENCH_QUICK`), a reader of the
//! Prometheus text a component under test exposes, and the provenance line (date, machine,
//! commit) each section of `docs/benchmarks.md` records.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// Nearest-rank percentile (`p` in 0..=1) of `values` (sorted or not); zero when empty.
pub fn percentile(values: &[Duration], p: f64) -> Duration {
    let mut sorted = values.to_vec();
    sorted.sort();
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The median of repeated runs' figures, with the smallest and largest of them.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Spread {
    /// The median (of an even count: the lower middle one, a figure that was measured).
    pub median: f64,
    /// The smallest.
    pub min: f64,
    /// The largest.
    pub max: f64,
}

impl Spread {
    /// Of `values` (one per run); `None` when there are none.
    pub fn of(values: &[f64]) -> Option<Spread> {
        let mut sorted: Vec<f64> = values.iter().copied().filter(|v| !v.is_nan()).collect();
        sorted.sort_by(f64::total_cmp);
        let median = *sorted.get((sorted.len().checked_sub(1)?) / 2)?;
        Some(Spread {
            median,
            min: sorted[0],
            max: sorted[sorted.len() - 1],
        })
    }

    /// `median (min–max)` with `unit` and `decimals`.
    pub fn show(&self, decimals: usize, unit: &str) -> String {
        format!(
            "{:.d$}{unit} ({:.d$}–{:.d$})",
            self.median,
            self.min,
            self.max,
            d = decimals
        )
    }
}

/// `runs` rounds over `items`, each round in the items' order: `(round, item)`, so that repeated
/// runs of one item are spread over the whole benchmark (1, 20, 50, 1, 20, 50, …) instead of
/// following one another.
pub fn interleaved<T: Clone>(runs: usize, items: &[T]) -> Vec<(usize, T)> {
    (0..runs)
        .flat_map(|round| items.iter().map(move |item| (round, item.clone())))
        .collect()
}

/// The order in which `runs` rounds of two contenders go: A B, B A, A B, … so that neither
/// always runs first (on a warming or cooling machine).
pub fn alternated(runs: usize) -> Vec<[usize; 2]> {
    (0..runs)
        .map(|i| if i % 2 == 0 { [0, 1] } else { [1, 0] })
        .collect()
}

/// Whether `STACKUBE_BENCH_QUICK` asks for a quick check (set, not empty, not `0`): a single
/// smaller run whose figures are printed and not recorded.
pub fn quick() -> bool {
    std::env::var("STACKUBE_BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// The number of runs `STACKUBE_BENCH_RUNS` asks for, `default` when it is not set.
pub fn runs_from_env(default: usize) -> Result<usize, String> {
    parse_runs(
        std::env::var("STACKUBE_BENCH_RUNS").ok().as_deref(),
        default,
    )
}

fn parse_runs(value: Option<&str>, default: usize) -> Result<usize, String> {
    match value.map(str::trim) {
        None | Some("") => Ok(default),
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| *n >= 1)
            .ok_or_else(|| format!("STACKUBE_BENCH_RUNS={v}: not a number of runs ≥ 1")),
    }
}

/// One sample of a Prometheus text exposition.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// The series name (`…_total`, `…_bucket`, `…_sum`, …).
    pub name: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Its value.
    pub value: f64,
}

/// A Prometheus (or OpenMetrics) text exposition, as a component's `/metrics` answers it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Exposition {
    /// Every sample, in the order given.
    pub samples: Vec<Sample>,
}

impl Exposition {
    /// Reads `text`; lines that are comments or not samples are skipped.
    pub fn parse(text: &str) -> Exposition {
        let samples = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .filter_map(parse_sample)
            .collect();
        Exposition { samples }
    }

    /// The sum of the samples `name` whose labels include all of `with`.
    pub fn value(&self, name: &str, with: &[(&str, &str)]) -> f64 {
        self.samples
            .iter()
            .filter(|s| {
                s.name == name
                    && with
                        .iter()
                        .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|s| s.value)
            .sum()
    }

    /// The samples `name`, summed by the values of the labels `keys` (a missing label is "").
    pub fn by(&self, name: &str, keys: &[&str]) -> BTreeMap<Vec<String>, f64> {
        let mut out = BTreeMap::new();
        for s in self.samples.iter().filter(|s| s.name == name) {
            let key = keys
                .iter()
                .map(|k| s.labels.get(*k).cloned().unwrap_or_default())
                .collect();
            *out.entry(key).or_insert(0.0) += s.value;
        }
        out
    }
}

/// `name{labels} value [timestamp]`; label values may hold escaped quotes and commas.
fn parse_sample(line: &str) -> Option<Sample> {
    let (name, labels, rest) = match line.find('{') {
        Some(open) if line[..open].find(' ').is_none() => {
            let (labels, rest) = parse_labels(&line[open + 1..])?;
            (line[..open].to_owned(), labels, rest)
        }
        _ => {
            let (name, rest) = line.split_once(' ')?;
            (name.to_owned(), BTreeMap::new(), rest)
        }
    };
    let value = rest.split_whitespace().next()?.parse::<f64>().ok()?;
    Some(Sample {
        name,
        labels,
        value,
    })
}

/// The labels up to the closing `}`, and what follows it.
fn parse_labels(text: &str) -> Option<(BTreeMap<String, String>, &str)> {
    let mut labels = BTreeMap::new();
    let mut rest = text;
    loop {
        rest = rest.trim_start_matches([',', ' ']);
        if let Some(after) = rest.strip_prefix('}') {
            return Some((labels, after));
        }
        let (key, after) = rest.split_once("=\"")?;
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next()? {
                (i, '"') => break i,
                (_, '\\') => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    c => value.push(c),
                },
                (_, c) => value.push(c),
            }
        };
        labels.insert(key.trim().to_owned(), value);
        rest = &after[end + 1..];
    }
}

/// `after - before` by key, keeping only what grew (counters of a window).
pub fn delta(
    after: &BTreeMap<Vec<String>, f64>,
    before: &BTreeMap<Vec<String>, f64>,
) -> BTreeMap<Vec<String>, f64> {
    after
        .iter()
        .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0.0)))
        .filter(|(_, v)| *v > 0.0)
        .collect()
}

/// `GET /metrics` of the endpoint at `addr`; `None` while it does not answer.
pub fn scrape(addr: SocketAddr) -> Option<Exposition> {
    let (head, body) = crate::http_get(addr, "/metrics")?;
    head.starts_with("HTTP/1.1 200")
        .then(|| Exposition::parse(&body))
}

fn command_output(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// The machine: CPU count and model, memory, kernel.
pub fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")?
                .split_once(':')
                .map(|x| x.1.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_kib: f64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0.0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|k| k.trim().to_owned())
        .unwrap_or_else(|_| "unknown".into());
    format!(
        "{cpus} CPUs ({model}), {:.1} GiB RAM, Linux {kernel}",
        mem_kib / 1024.0 / 1024.0
    )
}

/// The commit of the workspace at `root`, and which of `paths` (the sources of what is
/// measured) differ from it.
pub fn commit(root: &Path, paths: &[&str]) -> String {
    let root = root.to_str().unwrap_or(".");
    let head = command_output("git", &["-C", root, "rev-parse", "--short", "HEAD"])
        .unwrap_or_else(|| "unknown".into());
    let changed: Vec<&str> = paths
        .iter()
        .copied()
        .filter(|path| {
            !Command::new("git")
                .args(["-C", root, "diff", "--quiet", "HEAD", "--", path])
                .status()
                .is_ok_and(|s| s.success())
        })
        .collect();
    with_changes(&head, &changed)
}

fn with_changes(head: &str, changed: &[&str]) -> String {
    if changed.is_empty() {
        head.to_owned()
    } else {
        format!("{head} + uncommitted changes to {}", changed.join(", "))
    }
}

/// The provenance line of a section: when, where, which commit, how many runs.
pub fn provenance(commit: &str, runs: usize) -> String {
    provenance_ordered(commit, runs, "order alternated")
}

/// [`provenance`], saying how the runs were ordered (`order`, e.g. "sizes interleaved").
pub fn provenance_ordered(commit: &str, runs: usize, order: &str) -> String {
    provenance_line(&chrono_like_now(), &machine(), commit, runs, order)
}

fn provenance_line(date: &str, machine: &str, commit: &str, runs: usize, order: &str) -> String {
    let runs = if runs == 1 {
        "1 run (a quick check: no spread)".to_owned()
    } else {
        format!("{runs} runs, {order}, medians reported with the range of the runs in parentheses")
    };
    format!("Run {date} on {machine}; commit {commit}; {runs}.")
}

/// UTC now as `YYYY-MM-DD HH:MM UTC`, from `date` (this crate carries no time library).
fn chrono_like_now() -> String {
    command_output("date", &["-u", "+%Y-%m-%d %H:%M UTC"]).unwrap_or_else(|| "unknown".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let ms = |v: u64| Duration::from_millis(v);
        let values: Vec<Duration> = (1..=10).rev().map(ms).collect();
        assert_eq!(percentile(&values, 0.5), ms(5));
        assert_eq!(percentile(&values, 0.99), ms(10));
        assert_eq!(percentile(&values, 0.0), ms(1));
        assert_eq!(percentile(&[], 0.5), Duration::ZERO);
    }

    #[test]
    fn the_median_is_a_measured_figure_and_the_spread_its_range() {
        let s = Spread::of(&[3.0, 1.0, 2.0]).expect("three runs");
        assert_eq!((s.median, s.min, s.max), (2.0, 1.0, 3.0));
        let even = Spread::of(&[4.0, 1.0, 3.0, 2.0]).expect("four runs");
        assert_eq!(even.median, 2.0);
        assert_eq!(Spread::of(&[]), None);
        assert_eq!(s.show(1, " ms"), "2.0 ms (1.0–3.0)");
    }

    #[test]
    fn runs_alternate_who_goes_first() {
        assert_eq!(alternated(3), vec![[0, 1], [1, 0], [0, 1]]);
    }

    #[test]
    fn sizes_are_interleaved_across_rounds() {
        assert_eq!(
            interleaved(2, &[1, 20, 50]),
            vec![(0, 1), (0, 20), (0, 50), (1, 1), (1, 20), (1, 50)]
        );
        assert!(interleaved(0, &[1]).is_empty());
    }

    #[test]
    fn runs_come_from_the_variable_or_the_default() {
        assert_eq!(parse_runs(None, 3), Ok(3));
        assert_eq!(parse_runs(Some(""), 3), Ok(3));
        assert_eq!(parse_runs(Some(" 1 "), 3), Ok(1));
        assert!(parse_runs(Some("0"), 3).is_err());
        assert!(parse_runs(Some("three"), 3).is_err());
    }

    #[test]
    fn expositions_are_read_with_labels_and_summed() {
        let text = "# HELP x_total calls\n\
            # TYPE x_total counter\n\
            x_total{service=\"network\",operation=\"list_ports\",outcome=\"ok\"} 3\n\
            x_total{service=\"network\",operation=\"list_ports\",outcome=\"conflict\"} 1\n\
            x_total{service=\"identity\",operation=\"a,\\\"b\\\"\",outcome=\"ok\"} 2 1700000000\n\
            leader 1\n\
            # EOF\n\
            not a sample\n";
        let m = Exposition::parse(text);
        assert_eq!(m.samples.len(), 4);
        assert_eq!(m.value("x_total", &[("operation", "list_ports")]), 4.0);
        assert_eq!(m.value("x_total", &[("operation", "a,\"b\"")]), 2.0);
        assert_eq!(m.value("leader", &[]), 1.0);
        assert_eq!(m.value("missing", &[]), 0.0);
        let by = m.by("x_total", &["service"]);
        assert_eq!(by.get(&vec!["network".to_owned()]), Some(&4.0));
        assert_eq!(by.get(&vec!["identity".to_owned()]), Some(&2.0));
    }

    #[test]
    fn deltas_keep_what_grew() {
        let key = |k: &str| vec![k.to_owned()];
        let before = BTreeMap::from([(key("a"), 1.0), (key("b"), 2.0)]);
        let after = BTreeMap::from([(key("a"), 4.0), (key("b"), 2.0), (key("c"), 1.0)]);
        let d = delta(&after, &before);
        assert_eq!(d, BTreeMap::from([(key("a"), 3.0), (key("c"), 1.0)]));
    }

    #[test]
    fn the_commit_names_only_the_sources_that_changed() {
        assert_eq!(with_changes("abc1234", &[]), "abc1234");
        assert_eq!(
            with_changes("abc1234", &["crates/net/src", "Cargo.lock"]),
            "abc1234 + uncommitted changes to crates/net/src, Cargo.lock"
        );
    }

    #[test]
    fn the_provenance_line_says_when_where_what_and_how_many() {
        let line = provenance_line(
            "2026-12-01 20:00 UTC",
            "2 CPUs (x)",
            "abc1234",
            3,
            "sizes interleaved",
        );
        assert_eq!(
            line,
            "Run 2026-12-01 20:00 UTC on 2 CPUs (x); commit abc1234; 3 runs, sizes interleaved, \
             medians reported with the range of the runs in parentheses."
        );
        assert!(provenance_line("d", "m", "c", 1, "o").contains("1 run (a quick check"));
    }
}
