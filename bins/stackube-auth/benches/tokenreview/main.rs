//! Benchmark (not a test): what a cluster sees of stackube-auth and of cloud-provider-openstack's
//! k8s-keystone-auth, like for like, against the test environment's real Keystone.
//!
//!     flock /tmp/stackube-itest.lock cargo bench -p stackube-auth --bench tokenreview
//!
//! Two setups, the same load in each:
//! - **behind kube-apiserver, with its webhook cache** ([`apiserver`]): as users run them; a
//!   second kube-apiserver, started afresh for every run (cold cache), in front of the webhook;
//!   the load is `POST …/selfsubjectreviews` with bearer tokens;
//! - **each webhook alone, without a cache**: stackube-auth with `--cache-size 0`,
//!   k8s-keystone-auth as it is (it has none); TokenReviews posted to the webhook.
//!
//! The load ([`load`]): sequential requests with one repeated token, sequential requests with
//! never-seen tokens (one each), and 16 concurrent clients with the repeated token for a
//! fixed time; then the webhook's resident memory. The tokens are issued before each round of
//! measurements, a fresh set for every run of every webhook, so that none profits from another's
//! lookups. Keystone's access log ([`access_log`]) gives the Keystone requests per review.
//!
//! Runs alternate (ours, peer, peer, ours, …) in this one process; the report ([`report`])
//! gives the median of the runs and their range, and replaces this benchmark's section of
//! `docs/benchmarks.md`. `STACKUBE_BENCH_QUICK=1` makes a short single run that only prints
//! its section; `STACKUBE_BENCH_RUNS=<n>` sets the number of runs (default 3).

mod access_log;
mod apiserver;
#[path = "../../tests/common/mod.rs"]
mod common;
mod load;
mod prose;
mod provenance;
mod report;
mod webhooks;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use stackube_testenv::{HOW_TO_START, TestEnv, unique_name};

use crate::access_log::{AccessLog, Requests};
use crate::apiserver::Apiserver;
use crate::load::Target;
use crate::webhooks::{Memory, PeerBinary, Server, Webhook};

/// The section of docs/benchmarks.md this benchmark owns.
const SECTION: &str = "## stackube-auth: TokenReview latency, throughput and memory";
/// Tokens issued at once beforehand (Keystone has two uwsgi processes here).
const ISSUING: usize = 4;

/// How much load, how many runs.
#[derive(Clone, Debug)]
pub(crate) struct Plan {
    /// Only print the section.
    pub(crate) quick: bool,
    /// Runs per webhook and setup.
    pub(crate) runs: usize,
    /// Sequential requests with the repeated token, per setup (answered from kube-apiserver's
    /// cache behind it, each a Keystone round trip alone, hence fewer).
    pub(crate) repeated_apiserver: usize,
    pub(crate) repeated_alone: usize,
    /// Never-seen tokens per run.
    pub(crate) fresh: usize,
    /// Concurrent clients at saturation, and for how long.
    pub(crate) clients: usize,
    pub(crate) saturation: Duration,
}

impl Plan {
    fn from_env() -> anyhow::Result<Plan> {
        let quick = stackube_testenv::bench::quick();
        let runs = stackube_testenv::bench::runs_from_env(if quick { 1 } else { 3 })
            .map_err(anyhow::Error::msg)?;
        let (repeated_apiserver, repeated_alone, fresh, saturation) = if quick {
            (200, 30, 8, 3)
        } else {
            (2000, 200, 60, 10)
        };
        Ok(Plan {
            quick,
            runs,
            repeated_apiserver,
            repeated_alone,
            fresh,
            clients: 16,
            saturation: Duration::from_secs(saturation),
        })
    }
}

/// Where the webhook sits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Setup {
    /// Behind a kube-apiserver with its webhook cache; stackube-auth with its default cache.
    Apiserver,
    /// Alone, reviews posted to it; stackube-auth with `--cache-size 0`.
    Alone,
}

/// The Keystone requests of each phase of a run.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Phases {
    pub(crate) repeated: Requests,
    pub(crate) fresh: Requests,
    pub(crate) saturation: Requests,
}

/// One run of one webhook in one setup.
#[derive(Clone, Debug)]
pub(crate) struct Run {
    /// Latencies, sorted.
    pub(crate) repeated: Vec<Duration>,
    pub(crate) fresh: Vec<Duration>,
    /// Requests completed at saturation, and per second.
    pub(crate) saturation_requests: u64,
    pub(crate) per_second: f64,
    pub(crate) memory: Memory,
    pub(crate) keystone: Phases,
}

/// The runs of every webhook in every setup.
pub(crate) type Results = HashMap<(Setup, Webhook), Vec<Run>>;

/// The tokens of one run.
struct Tokens {
    repeated: String,
    fresh: Vec<String>,
}

/// What every measurement needs.
struct Bench<'a> {
    env: &'a TestEnv,
    plan: &'a Plan,
    peer: &'a PeerBinary,
    user: String,
    user_id: String,
    ca: Vec<u8>,
    scratch: PathBuf,
    etcd_prefix: String,
    keystone_log: AccessLog,
}

impl Bench<'_> {
    async fn measure(
        &self,
        setup: Setup,
        webhook: Webhook,
        name: &str,
        tokens: &Tokens,
    ) -> anyhow::Result<Run> {
        let plan = self.plan;
        let client = load::client(&self.ca, plan.clients)?;
        let cache_size = (setup == Setup::Alone).then_some(0);
        let mut server = Server::start(webhook, self.env, self.peer, cache_size)?;
        server.wait_listening().await?;
        let (apiserver, target, repeated) = match setup {
            Setup::Apiserver => {
                let apiserver = Apiserver::start(
                    self.env,
                    &self.scratch,
                    name,
                    &self.etcd_prefix,
                    &server.url,
                    &client,
                )
                .await?;
                let url = apiserver.url.clone();
                let target = Target::Apiserver {
                    url,
                    user: self.user.clone(),
                };
                (Some(apiserver), target, plan.repeated_apiserver)
            }
            Setup::Alone => {
                let url = server.url.clone();
                let target = Target::Webhook {
                    url,
                    user: self.user.clone(),
                };
                (None, target, plan.repeated_alone)
            }
        };
        load::warm_up(
            &client,
            &target,
            &tokens.repeated,
            Duration::from_secs(60),
            20,
        )
        .await?;

        let mark = self.settled_mark().await;
        let repeated = load::sequential(
            &client,
            &target,
            std::iter::repeat_n(tokens.repeated.as_str(), repeated),
        )
        .await?;
        let repeated_keystone = self.settled_since(mark).await;

        let mark = self.settled_mark().await;
        let fresh =
            load::sequential(&client, &target, tokens.fresh.iter().map(String::as_str)).await?;
        let fresh_keystone = self.settled_since(mark).await;

        let mark = self.settled_mark().await;
        let (count, took) = load::saturate(
            &client,
            &target,
            &tokens.repeated,
            plan.clients,
            plan.saturation,
        )
        .await?;
        let saturation_keystone = self.settled_since(mark).await;

        let memory = server.memory();
        drop(apiserver);
        drop(server);
        Ok(Run {
            repeated,
            fresh,
            saturation_requests: count,
            per_second: count as f64 / took.as_secs_f64(),
            memory,
            keystone: Phases {
                repeated: repeated_keystone,
                fresh: fresh_keystone,
                saturation: saturation_keystone,
            },
        })
    }

    /// Where Keystone's log ends once the previous phase's last requests have reached it
    /// (uwsgi writes a request's line after answering it).
    async fn settled_mark(&self) -> u64 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        self.keystone_log.mark()
    }

    /// The Keystone requests since `mark`, once the last ones have reached the log.
    async fn settled_since(&self, mark: u64) -> Requests {
        tokio::time::sleep(Duration::from_millis(500)).await;
        self.keystone_log.since(mark, &self.user_id)
    }
}

/// The order of the webhooks in round `round`: ours first in even rounds, so that over the
/// runs each goes first as often (ours, peer, peer, ours, ours, peer, …).
fn order(round: usize) -> [Webhook; 2] {
    if round.is_multiple_of(2) {
        [Webhook::Ours, Webhook::Peer]
    } else {
        [Webhook::Peer, Webhook::Ours]
    }
}

const SETUPS: [Setup; 2] = [Setup::Apiserver, Setup::Alone];

/// Issues the tokens of one round (every webhook in every setup), `ISSUING` at a time, before
/// the round's first measurement: a token lives an hour, longer than a round, not necessarily
/// than the whole benchmark on a busy machine.
async fn issue_round(
    env: &TestEnv,
    tenant: &Arc<common::TenantUser>,
    plan: &Plan,
) -> anyhow::Result<HashMap<(Setup, Webhook), Tokens>> {
    let slots: Vec<(Setup, Webhook)> = SETUPS
        .iter()
        .flat_map(|s| [(*s, Webhook::Ours), (*s, Webhook::Peer)])
        .collect();
    let count = slots.len() * (1 + plan.fresh);
    eprintln!("issuing {count} tokens");
    let permits = Arc::new(tokio::sync::Semaphore::new(ISSUING));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..count {
        let (env, tenant, permits) = (env.clone(), tenant.clone(), permits.clone());
        tasks.spawn(async move {
            let _permit = permits.acquire().await;
            (i, tenant.token(&env).await)
        });
    }
    let mut issued = vec![String::new(); count];
    while let Some(done) = tasks.join_next().await {
        let (i, token) = done?;
        issued[i] = token;
    }
    let mut issued = issued.into_iter();
    let mut tokens = HashMap::new();
    for slot in slots {
        let repeated = issued.next().context("too few tokens")?;
        let fresh = issued.by_ref().take(plan.fresh).collect();
        tokens.insert(slot, Tokens { repeated, fresh });
    }
    Ok(tokens)
}

async fn run_all(bench: &Bench<'_>, tenant: &Arc<common::TenantUser>) -> anyhow::Result<Results> {
    let mut results = Results::new();
    for round in 0..bench.plan.runs {
        let tokens = issue_round(bench.env, tenant, bench.plan).await?;
        for setup in SETUPS {
            for webhook in order(round) {
                let name = format!("{setup:?}-{}-{round}", webhook.name()).to_lowercase();
                eprintln!("run {}: {} ({setup:?})", round + 1, webhook.name());
                let run = bench
                    .measure(setup, webhook, &name, &tokens[&(setup, webhook)])
                    .await
                    .with_context(|| format!("run {name}"))?;
                // Each run's own figures, for whoever wonders what the medians hide.
                eprintln!(
                    "  p50 repeated {:.2} ms, never-seen {:.2} ms; {:.1}/s at saturation; \
                     Keystone requests per never-seen request {:.2}; {} KiB resident",
                    stackube_testenv::bench::percentile(&run.repeated, 0.5).as_secs_f64() * 1000.0,
                    stackube_testenv::bench::percentile(&run.fresh, 0.5).as_secs_f64() * 1000.0,
                    run.per_second,
                    run.keystone.fresh.total() as f64 / run.fresh.len().max(1) as f64,
                    run.memory.rss_kib,
                );
                results.entry((setup, webhook)).or_default().push(run);
            }
        }
    }
    Ok(results)
}

/// The test environment's root (`/var/lib/stackube-testenv`): above its kubeconfig's `k8s/`.
fn testenv_root(env: &TestEnv) -> Option<&Path> {
    env.kubeconfig.parent()?.parent()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let plan = Plan::from_env()?;
    let env = match TestEnv::load() {
        Ok(env) => env,
        Err(why) => bail!("test environment unavailable: {why}; {HOW_TO_START}"),
    };
    let started = provenance::Start::now(&env);
    let peer = webhooks::build_peer()?;
    let scratch = std::env::temp_dir().join(unique_name("bench-auth"));
    std::fs::create_dir_all(&scratch)?;
    let os = common::admin(&env).await;
    // A tenant-like user whose tokens the webhooks review.
    let tenant = Arc::new(common::TenantUser::create(&env, &os, "bench-auth", "member").await);
    let bench = Bench {
        env: &env,
        plan: &plan,
        peer: &peer,
        user: tenant.name.clone(),
        user_id: tenant.user_id.clone(),
        ca: std::fs::read(&env.k8s_ca_file)?,
        etcd_prefix: format!("/{}", unique_name("bench-auth")),
        scratch: scratch.clone(),
        keystone_log: AccessLog::under(testenv_root(&env)),
    };
    let results = run_all(&bench, &tenant).await;

    // Still shared: the last holder's drop deletes it.
    if let Ok(tenant) = Arc::try_unwrap(tenant) {
        tenant.delete(&env, &os).await;
    }
    match apiserver::delete_etcd_prefix(&load::client(&bench.ca, 1)?, &bench.etcd_prefix).await {
        Ok(keys) => eprintln!("deleted {keys} etcd keys under {}", bench.etcd_prefix),
        Err(e) => eprintln!(
            "warning: etcd prefix {} not deleted: {e:#}",
            bench.etcd_prefix
        ),
    }
    let results = match results {
        Ok(results) => results,
        Err(e) => bail!("{e:#} (kube-apiserver logs in {})", scratch.display()),
    };
    let _ = std::fs::remove_dir_all(&scratch);

    let section = report::render(&report::Context {
        plan: &plan,
        start: &started,
        end_load: provenance::load_average(),
        peer_version: &peer.version,
        keystone_log: bench.keystone_log.available(),
        results: &results,
    });
    println!("{section}");
    if plan.quick {
        eprintln!("quick mode: docs/benchmarks.md not written");
    } else {
        let path = stackube_testenv::write_benchmark_section(SECTION, &section)?;
        eprintln!("written to {}", path.display());
    }
    Ok(())
}
