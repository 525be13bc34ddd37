//! Benchmark (not a test): TokenReview latency, throughput and memory of stackube-auth, side by
//! side with cloud-provider-openstack's `k8s-keystone-auth` on the same machine, against the
//! same real Keystone of the test environment.
//!
//!     flock /tmp/stackube-itest.lock cargo bench -p stackube-auth --bench tokenreview
//!
//! Both webhooks serve HTTPS with the same certificate on loopback; the load comes from this
//! process (HTTP/1.1, kept-alive connections). For each webhook:
//! - *cached*: one token reviewed again and again, one request at a time (stackube-auth answers
//!   from its cache; k8s-keystone-auth has no cache and asks Keystone every time);
//! - *uncached*: tokens it has never seen, one review each (a token set per webhook, so that
//!   neither profits from the other's Keystone lookups);
//! - *saturation*: the cached token from many concurrent clients for a fixed time;
//! - memory: resident set after the run, and its peak.
//!
//! k8s-keystone-auth is built from the Go module proxy by `hack/lib/peers-build.sh` (cached).
//! The figures replace this benchmark's section of `docs/benchmarks.md`.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde_json::{Value, json};
use stackube_testenv::{HOW_TO_START, TestEnv, workspace_root};

#[path = "../tests/common/mod.rs"]
mod common;

/// The section of docs/benchmarks.md this benchmark owns.
const SECTION: &str = "## stackube-auth: TokenReview latency, throughput and memory";
/// Reviews of the cached token, one at a time: stackube-auth answers them from its cache;
/// k8s-keystone-auth asks Keystone each time (~0.1 s each here), so it gets fewer.
const CACHED_REVIEWS: usize = 3000;
const CACHED_REVIEWS_PEER: usize = 400;
/// Never-seen tokens per webhook.
const UNCACHED_REVIEWS: usize = 60;
/// Concurrent clients at saturation, and for how long.
const CLIENTS: usize = 16;
const SATURATION: Duration = Duration::from_secs(10);
/// Goals of the issue.
const GOAL_CACHED_P99: Duration = Duration::from_millis(2);

/// A webhook under test.
struct Server {
    name: &'static str,
    child: Child,
    url: String,
}

impl Server {
    fn memory_kib(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_stackube_auth(env: &TestEnv) -> anyhow::Result<Server> {
    let listen = common::free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_stackube-auth"))
        .args([
            format!("--listen={listen}"),
            format!("--tls-cert-file={}", env.auth_tls_cert_file.display()),
            format!(
                "--tls-private-key-file={}",
                env.auth_tls_private_key_file.display()
            ),
            format!("--keystone-url={}", env.os_auth_url),
            format!("--metrics-addr={}", common::free_port()),
        ])
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting stackube-auth")?;
    Ok(Server {
        name: "stackube-auth",
        child,
        url: format!("https://{listen}/tokenreview"),
    })
}

fn start_k8s_keystone_auth(env: &TestEnv) -> anyhow::Result<(Server, String)> {
    let build = Command::new(workspace_root().join("hack/lib/peers-build.sh"))
        .arg("k8s-keystone-auth")
        .stderr(Stdio::inherit())
        .output()
        .context("hack/lib/peers-build.sh")?;
    if !build.status.success() {
        bail!("building k8s-keystone-auth failed (see above)");
    }
    let binary = String::from_utf8(build.stdout)?.trim().to_owned();
    let version = binary.rsplit('-').next().unwrap_or_default().to_owned();
    let listen = common::free_port();
    let child = Command::new(&binary)
        .args([
            format!("--listen={listen}"),
            format!("--tls-cert-file={}", env.auth_tls_cert_file.display()),
            format!(
                "--tls-private-key-file={}",
                env.auth_tls_private_key_file.display()
            ),
            format!("--keystone-url={}", env.os_auth_url),
            format!("--kubeconfig={}", env.kubeconfig.display()),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting k8s-keystone-auth")?;
    Ok((
        Server {
            name: "k8s-keystone-auth",
            child,
            url: format!("https://{listen}/webhook"),
        },
        version,
    ))
}

/// One review (v1beta1: what k8s-keystone-auth understands); errors unless authenticated.
async fn review(client: &reqwest::Client, url: &str, token: &str) -> anyhow::Result<Duration> {
    let body = json!({"apiVersion": "authentication.k8s.io/v1beta1", "kind": "TokenReview",
        "spec": {"token": token}})
    .to_string();
    let started = Instant::now();
    let response = client
        .post(url)
        .header("Content-Type", "application/json")
        .body(body)
        .send()
        .await?;
    let answer: Value = response.json().await?;
    let elapsed = started.elapsed();
    if answer["status"]["authenticated"] != json!(true) {
        bail!("{url}: not authenticated: {answer}");
    }
    Ok(elapsed)
}

async fn wait_serving(
    client: &reqwest::Client,
    server: &Server,
    token: &str,
) -> anyhow::Result<()> {
    let started = Instant::now();
    loop {
        match review(client, &server.url, token).await {
            Ok(_) => return Ok(()),
            Err(e) if started.elapsed() > Duration::from_secs(30) => {
                bail!("{} does not answer: {e}", server.name)
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

#[derive(Debug, Default)]
struct Figures {
    cached: Vec<Duration>,
    uncached: Vec<Duration>,
    per_second: f64,
    rss_kib: u64,
    peak_kib: u64,
    anon_kib: u64,
}

async fn measure(
    client: &reqwest::Client,
    server: &Server,
    cached_token: &str,
    cached_reviews: usize,
    fresh_tokens: &[String],
) -> anyhow::Result<Figures> {
    let mut figures = Figures::default();
    wait_serving(client, server, cached_token).await?;
    for _ in 0..20 {
        review(client, &server.url, cached_token).await?;
    }
    for _ in 0..cached_reviews {
        figures
            .cached
            .push(review(client, &server.url, cached_token).await?);
    }
    for token in fresh_tokens {
        figures
            .uncached
            .push(review(client, &server.url, token).await?);
    }
    let done = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        let (client, url, token) = (client.clone(), server.url.clone(), cached_token.to_owned());
        let (done, count) = (done.clone(), count.clone());
        clients.push(tokio::spawn(async move {
            while !done.load(Ordering::Relaxed) {
                review(&client, &url, &token).await?;
                count.fetch_add(1, Ordering::Relaxed);
            }
            anyhow::Ok(())
        }));
    }
    tokio::time::sleep(SATURATION).await;
    done.store(true, Ordering::Relaxed);
    for c in clients {
        c.await??;
    }
    figures.per_second = count.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64();
    figures.rss_kib = server.memory_kib("VmRSS:");
    figures.peak_kib = server.memory_kib("VmHWM:");
    figures.anon_kib = server.memory_kib("RssAnon:");
    figures.cached.sort();
    figures.uncached.sort();
    Ok(figures)
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

fn report(ours: &Figures, peer: &Figures, peer_version: &str) -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let date = chrono::Utc::now().format("%Y-%m-%d");
    let p = |f: &Figures, cached: bool, q: f64| {
        percentile(if cached { &f.cached } else { &f.uncached }, q)
    };
    let ratio_rps = ours.per_second / peer.per_second.max(f64::MIN_POSITIVE);
    let ratio_rss = ours.rss_kib as f64 / peer.rss_kib.max(1) as f64;
    let met = |ok: bool| if ok { "met" } else { "**not met**" };
    let mut s = String::new();
    s.push_str(&format!("{SECTION}\n\n"));
    s.push_str(&format!(
        "Run {date} by `cargo bench -p stackube-auth --bench tokenreview` on this machine \
         ({cores} cores), against the test environment's Keystone (Fernet tokens, uwsgi), both \
         webhooks on loopback with the same TLS certificate, the load from the bench process \
         (HTTP/1.1, kept-alive). stackube-auth is the release build; k8s-keystone-auth is \
         cloud-provider-openstack {peer_version}, built from the Go module proxy.\n\n"
    ));
    s.push_str(&format!(
        "| | stackube-auth | k8s-keystone-auth {peer_version} | goal |\n|---|---|---|---|\n"
    ));
    s.push_str(&format!(
        "| cached token, p50 ({CACHED_REVIEWS} and {CACHED_REVIEWS_PEER} sequential reviews) | {} | {} | |\n",
        ms(p(ours, true, 0.5)),
        ms(p(peer, true, 0.5))
    ));
    s.push_str(&format!(
        "| cached token, p99 | {} | {} | ≤ {} ({}) |\n",
        ms(p(ours, true, 0.99)),
        ms(p(peer, true, 0.99)),
        ms(GOAL_CACHED_P99),
        met(p(ours, true, 0.99) <= GOAL_CACHED_P99)
    ));
    s.push_str(&format!(
        "| never-seen token, p50 ({UNCACHED_REVIEWS} tokens each) | {} | {} | |\n",
        ms(p(ours, false, 0.5)),
        ms(p(peer, false, 0.5))
    ));
    s.push_str(&format!(
        "| never-seen token, p99 | {} | {} | |\n",
        ms(p(ours, false, 0.99)),
        ms(p(peer, false, 0.99))
    ));
    s.push_str(&format!(
        "| reviews/s at saturation (cached token, {CLIENTS} clients, {} s) | {:.0} | {:.0} | ≥ 3× ({:.1}×, {}) |\n",
        SATURATION.as_secs(),
        ours.per_second,
        peer.per_second,
        ratio_rps,
        met(ratio_rps >= 3.0)
    ));
    s.push_str(&format!(
        "| resident memory after the run (peak; anonymous) | {} ({}; {}) | {} ({}; {}) | ≤ ⅓ ({:.2}, {}) |\n\n",
        mib(ours.rss_kib),
        mib(ours.peak_kib),
        mib(ours.anon_kib),
        mib(peer.rss_kib),
        mib(peer.peak_kib),
        mib(peer.anon_kib),
        ratio_rss,
        met(ratio_rss <= 1.0 / 3.0)
    ));
    s.push_str(
        "How to read it: k8s-keystone-auth keeps no token cache (kube-apiserver's own cache is \
         meant to absorb repeats), so its \"cached\" row is Keystone round trips like its \
         never-seen one, and its throughput is Keystone's. An uncached review costs \
         stackube-auth one Keystone request (the token validating itself) and k8s-keystone-auth \
         two (the token, then the user's groups). Keystone (uwsgi, Fernet) takes most of \
         those milliseconds on this machine. The load generator shares the two cores with both \
         webhooks and Keystone.\n",
    );
    s
}

async fn issue_tokens(env: &TestEnv, tenant: &common::TenantUser, n: usize) -> Vec<String> {
    let mut tokens = Vec::with_capacity(n);
    for _ in 0..n {
        tokens.push(tenant.token(env).await);
    }
    tokens
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let env = match TestEnv::load() {
        Ok(env) => env,
        Err(why) => bail!("test environment unavailable: {why}; {HOW_TO_START}"),
    };
    let os = common::admin(&env).await;
    // A tenant-like user whose tokens the webhooks review.
    let tenant = common::TenantUser::create(&env, &os, "bench-auth", "member").await;

    let result = async {
        eprintln!("issuing {} tokens", 1 + 2 * UNCACHED_REVIEWS);
        let cached = tenant.token(&env).await;
        let fresh_ours = issue_tokens(&env, &tenant, UNCACHED_REVIEWS).await;
        let fresh_peer = issue_tokens(&env, &tenant, UNCACHED_REVIEWS).await;

        let ca = std::fs::read(&env.k8s_ca_file)?;
        let client = reqwest::Client::builder()
            .tls_certs_only(reqwest::Certificate::from_pem_bundle(&ca)?)
            .pool_max_idle_per_host(CLIENTS * 2)
            .build()?;

        let ours_server = start_stackube_auth(&env)?;
        eprintln!("measuring stackube-auth");
        let ours = measure(&client, &ours_server, &cached, CACHED_REVIEWS, &fresh_ours).await?;
        drop(ours_server);
        let (peer_server, peer_version) = start_k8s_keystone_auth(&env)?;
        eprintln!("measuring k8s-keystone-auth {peer_version}");
        let peer = measure(
            &client,
            &peer_server,
            &cached,
            CACHED_REVIEWS_PEER,
            &fresh_peer,
        )
        .await?;
        drop(peer_server);
        anyhow::Ok(report(&ours, &peer, &peer_version))
    }
    .await;

    tenant.delete(&env, &os).await;
    let section = result?;
    println!("{section}");
    let path = stackube_testenv::write_benchmark_section(SECTION, &section)?;
    eprintln!("written to {}", path.display());
    Ok(())
}
