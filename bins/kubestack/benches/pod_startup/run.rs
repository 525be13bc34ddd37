//! One run of one mode (without or with the pool): a fresh daemon for the node's kubelet (and a
//! controller), a first pod that warms both up, then the two phases, each a batch of pods made
//! through the API and timed from its create request to its first `Ready=True` on the watch:
//!
//! - **at once**: every create request sent together;
//! - **one at a time**: each pod created once the one before it was seen Ready.
//!
//! Before a phase, the previous one's pods are deleted, gone from the API, and their Neutron
//! ports gone; with the pool, the phase also waits until it holds a ready port for each of its
//! pods and no hand-over is pending. Without it, the run starts once the daemon has dropped the
//! pooled ports an earlier run left. A mode whose pods name a RuntimeClass first makes it the
//! tenant's ([`runtime_class::switch`]).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::bail;
use stackube_openstack::OpenStack;
use stackube_testenv::{TestEnv, unique_name};

use crate::cleanup::gc;
use crate::common::{Node, kubestack_ports};
use crate::daemon::{Daemon, served_from_pool, wait_no_pool};
use crate::kubelet::{self, Means};
use crate::runtime_class;
use crate::watch::{Milestone, Pods};
use crate::{Counts, Mode, Shape};

/// Failure bound for a phase's pods to be Ready, or gone, and their ports.
const BOUND: Duration = Duration::from_secs(900);
/// How long the pod ports left after a phase's pods are gone must stay the same before they
/// count as leaked: Neutron may still be creating ports for ADDs that timed out.
const SETTLE: Duration = Duration::from_secs(30);
/// How long the pool may stay short without growing before a pod restarts its refill.
const STALL: Duration = Duration::from_secs(60);
const POOL_READY: &str = "stackube_kubestack_pool_ready_ports";
const HANDOVERS: &str = "stackube_kubestack_handovers_pending";

/// What one phase measured.
#[derive(Clone, Debug)]
pub(crate) struct Phase {
    pub(crate) shape: Shape,
    /// Per pod, from the start of its create request to the first watch event showing it
    /// `Ready`.
    pub(crate) ready: Vec<Duration>,
    /// … showing it scheduled.
    pub(crate) scheduled: Vec<Duration>,
    /// … showing its containers running.
    pub(crate) started: Vec<Duration>,
    /// From the first create request to the last pod Ready.
    pub(crate) all_ready: Duration,
    /// The daemon's own time per ADD (its log), one per pod.
    pub(crate) cni_add: Vec<Duration>,
    /// The kubelet's mean times over the phase (its metrics).
    pub(crate) kubelet: Means,
    /// Pods whose ADD the pool served.
    pub(crate) from_pool: usize,
    /// ADDs of the phase's pods that failed (the kubelet made a new sandbox and tried again),
    /// and how many of them because an OpenStack request timed out.
    pub(crate) failed_adds: (usize, usize),
    /// Pod ports left in Neutron once the phase's pods were gone (and stayed, [`SETTLE`]): a CNI
    /// GC removed them.
    pub(crate) leaked: usize,
    /// How long the phase waited for the pool first.
    pub(crate) pool_wait: Duration,
    /// From the delete requests until the pods were gone from the API and their ports from
    /// Neutron.
    pub(crate) cleanup: Duration,
}

/// What one run measured.
#[derive(Clone, Debug)]
pub(crate) struct Run {
    pub(crate) mode: Mode,
    pub(crate) phases: Vec<Phase>,
    /// With the pool: how long it took to fill before the first phase, and how many ports it
    /// lacked then (a new daemon keeps the ready ports an earlier one left).
    pub(crate) pool_fill: Option<(Duration, usize)>,
    /// Milestones found by the list behind the watch, not by the watch.
    pub(crate) late: usize,
    /// Pods made to restart the pool's refill, outside the phases ([`STALL`]).
    pub(crate) nudges: usize,
    /// Refills of the pool that failed (the daemon's log), and how many of them because a
    /// request timed out.
    pub(crate) refill_failures: (usize, usize),
    /// The whole run.
    pub(crate) took: Duration,
}

impl Run {
    /// Its phase of `shape`.
    pub(crate) fn phase(&self, shape: Shape) -> Option<&Phase> {
        self.phases.iter().find(|p| p.shape == shape)
    }
}

struct Ctx<'a> {
    env: &'a TestEnv,
    os: &'a OpenStack,
    node: Node,
    daemon: Daemon,
    pods: Pods,
    tenant: &'a str,
    mode: Mode,
    tag: String,
    nudges: usize,
}

/// The pod ports in Neutron now (pooled ones left out: a pod's port is one no longer pooled).
async fn pod_ports(os: &OpenStack) -> BTreeSet<String> {
    kubestack_ports(os)
        .await
        .into_iter()
        .filter(|p| {
            !p.device_id
                .starts_with(kubestack::daemon::POOL_DEVICE_PREFIX)
        })
        .map(|p| p.id.to_string())
        .collect()
}

impl Ctx<'_> {
    /// With the pool: until it holds `pods` ready ports and no hand-over is pending; how long
    /// that took. A refill stops at its first failed OpenStack request and starts again only
    /// with the next ADD on the network (the daemon at this commit): when the pool has not grown
    /// for [`STALL`], a pod is made and deleted to restart it (counted in `nudges`).
    async fn ready_for(&mut self, pods: usize) -> anyhow::Result<Duration> {
        if !self.mode.pooled() {
            return Ok(Duration::ZERO);
        }
        let started = Instant::now();
        let (mut last, mut since) = (usize::MAX, Instant::now());
        loop {
            let m = self.daemon.metrics()?;
            let ready = m.value(POOL_READY, &[]) as usize;
            if ready >= pods && m.value(HANDOVERS, &[]) == 0.0 {
                return Ok(started.elapsed());
            }
            if ready != last {
                (last, since) = (ready, Instant::now());
            } else if ready < pods && since.elapsed() >= STALL {
                eprintln!(
                    "[{}] the pool has held {ready} ready ports for {:.0} s: a pod restarts \
                     its refill",
                    self.mode,
                    STALL.as_secs_f64()
                );
                self.nudges += 1;
                let nudge = vec![format!("{}-nudge{}", self.tag, self.nudges)];
                let before = pod_ports(self.os).await;
                self.pods.create(&nudge[0]).await?;
                self.pods.wait(&nudge, Milestone::Ready, BOUND).await?;
                self.remove(&nudge, &before).await?;
                since = Instant::now();
            }
            if started.elapsed() > BOUND {
                bail!("the pool has {ready} ready ports, not {pods}, after {BOUND:?}");
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Deletes `names` and waits until they are gone from the API and Neutron holds no more pod
    /// ports than `before`; how long that took, and how many ports a CNI GC had to remove: the
    /// ports left once the pods were gone that stayed unchanged for [`SETTLE`] (an ADD whose
    /// `create_port` timed out may see Neutron make its port after the pod's DEL looked for it).
    async fn remove(
        &mut self,
        names: &[String],
        before: &BTreeSet<String>,
    ) -> anyhow::Result<(Duration, usize)> {
        let started = Instant::now();
        self.pods.delete(names).await?;
        self.pods.wait(names, Milestone::Gone, BOUND).await?;
        let mut leaked = BTreeSet::new();
        let (mut last, mut since) = (BTreeSet::new(), Instant::now());
        loop {
            let extra: BTreeSet<String> = pod_ports(self.os)
                .await
                .difference(before)
                .cloned()
                .collect();
            if extra.is_empty() {
                return Ok((started.elapsed(), leaked.len()));
            }
            if extra != last {
                (last, since) = (extra, Instant::now());
            } else if since.elapsed() >= SETTLE {
                eprintln!(
                    "[{}] {} pod ports left {:.0} s after their pods were gone: CNI GC",
                    self.mode,
                    extra.len(),
                    SETTLE.as_secs_f64()
                );
                gc(self.env, &self.node);
                leaked.extend(extra);
                since = Instant::now();
            }
            if started.elapsed() > BOUND {
                bail!(
                    "{} pod ports still in Neutron {BOUND:?} after the pods were deleted: {:?}",
                    last.len(),
                    last
                );
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    /// One phase of `n` pods.
    async fn phase(&mut self, shape: Shape, n: usize) -> anyhow::Result<Phase> {
        let names: Vec<String> = (0..n)
            .map(|i| format!("{}-{}{i}", self.tag, shape.letter()))
            .collect();
        let pool_wait = self.ready_for(n).await?;
        let before = pod_ports(self.os).await;
        let metrics = kubelet::scrape(self.env)?;
        let created: Vec<Instant> = match shape {
            Shape::AtOnce => {
                let creates = names.iter().map(|name| self.pods.create(name));
                let created = futures::future::try_join_all(creates).await?;
                self.pods.wait(&names, Milestone::Ready, BOUND).await?;
                created
            }
            Shape::OneAtATime => {
                let mut created = Vec::new();
                for name in &names {
                    created.push(self.pods.create(name).await?);
                    self.pods
                        .wait(std::slice::from_ref(name), Milestone::Ready, BOUND)
                        .await?;
                }
                created
            }
        };
        let since = |m: Milestone| -> Vec<Duration> {
            names
                .iter()
                .zip(&created)
                .filter_map(|(name, t0)| {
                    Some(self.pods.at(name, m)?.saturating_duration_since(*t0))
                })
                .collect()
        };
        let first = created.iter().min().copied().unwrap_or_else(Instant::now);
        let last = names
            .iter()
            .filter_map(|name| self.pods.at(name, Milestone::Ready))
            .max()
            .unwrap_or(first);
        let (ready, scheduled, started) = (
            since(Milestone::Ready),
            since(Milestone::Scheduled),
            since(Milestone::Started),
        );
        let kubelet = Means::between(&metrics, &kubelet::scrape(self.env)?);
        let log = self.node.daemon_log();
        let adds = adds_of(&log, self.tenant, &names);
        let containers: Vec<String> = adds.iter().map(|(c, _)| c.clone()).collect();
        let from_pool = served_from_pool(&log, &containers);
        let failed_adds = failures_of(&log, self.tenant, &names);
        let (cleanup, leaked) = self.remove(&names, &before).await?;
        Ok(Phase {
            shape,
            ready,
            scheduled,
            started,
            all_ready: last.saturating_duration_since(first),
            cni_add: adds.into_iter().map(|(_, d)| d).collect(),
            kubelet,
            from_pool,
            failed_adds,
            leaked,
            pool_wait,
            cleanup,
        })
    }
}

/// The container and the daemon's time of each of `names`' first successful ADD (pods of
/// namespace `tenant`), from the `done` lines of the daemon's log.
fn adds_of(log: &str, tenant: &str, names: &[String]) -> Vec<(String, Duration)> {
    let mut found: Vec<(String, String, Duration)> = Vec::new();
    for line in log
        .lines()
        .filter(|l| l.contains(" done") && l.contains("command=Add"))
    {
        let field = |key: &str| {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(key))
                .map(|v| v.trim_matches('"').to_owned())
        };
        let (Some(pod), Some(container), Some(ms)) =
            (field("pod="), field("container="), field("ms="))
        else {
            continue;
        };
        let Some(name) = pod.strip_prefix(&format!("{tenant}/")) else {
            continue;
        };
        if !names.iter().any(|n| n == name) || found.iter().any(|(p, _, _)| p == name) {
            continue;
        }
        if let Ok(ms) = ms.parse::<u64>() {
            found.push((name.to_owned(), container, Duration::from_millis(ms)));
        }
    }
    found.into_iter().map(|(_, c, d)| (c, d)).collect()
}

/// One run of `mode` on a fresh daemon for the node's kubelet, its phases in `order`; `os` is
/// the cloud admin's connection, `client` the environment's Kubernetes client.
pub(crate) async fn run(
    env: &TestEnv,
    os: &OpenStack,
    client: &kube::Client,
    tenant: &str,
    mode: Mode,
    order: [Shape; 2],
    counts: &Counts,
) -> anyhow::Result<Run> {
    let started = Instant::now();
    let pool_flag = format!("--pool-size={}", counts.pool);
    let node = if mode.pooled() {
        Node::start_for_kubelet_with(env, &[&pool_flag]).await
    } else {
        Node::start_for_kubelet(env).await
    };
    let tag = unique_name("b");
    let mut ctx = Ctx {
        env,
        os,
        daemon: Daemon::find(&node.dir).await?,
        node,
        pods: Pods::watch(client, tenant, &tag, &env.pause_image, mode.runtime_class()).await?,
        tenant,
        mode,
        tag,
        nudges: 0,
    };
    if let Some(class) = mode.runtime_class() {
        // The run's controller (started with its daemon) relabels the tenant's namespace.
        let took = runtime_class::switch(client, tenant, class, &ctx.pods).await?;
        eprintln!(
            "[{mode}] the tenant's pods run in {class} after {:.1} s",
            took.as_secs_f64()
        );
    }
    if !mode.pooled() {
        let took = wait_no_pool(os).await?;
        eprintln!(
            "[{mode}] no pooled port left after {:.1} s",
            took.as_secs_f64()
        );
    }
    let lacking = if mode.pooled() {
        counts.pool.saturating_sub(ctx.daemon.pool_ready()?)
    } else {
        0
    };
    // A first pod: the daemon learns the tenant's network (and starts its pool), the kubelet
    // and containerd see this daemon's configuration.
    let fill = Instant::now();
    let warm = vec![format!("{}-warm", ctx.tag)];
    let before = pod_ports(os).await;
    ctx.pods.create(&warm[0]).await?;
    ctx.pods.wait(&warm, Milestone::Ready, BOUND).await?;
    ctx.remove(&warm, &before).await?;
    let pool_fill = match mode {
        Mode::Unpooled => None,
        Mode::Pooled | Mode::Runc | Mode::Gvisor => {
            ctx.ready_for(counts.pool).await?;
            let took = fill.elapsed();
            eprintln!(
                "[{mode}] pool of {} ready after {:.1} s ({lacking} ports made)",
                counts.pool,
                took.as_secs_f64()
            );
            Some((took, lacking))
        }
    };
    let mut phases = Vec::new();
    for shape in order {
        let phase = ctx.phase(shape, counts.pods).await?;
        eprintln!(
            "[{mode}] {} {shape}: Ready p50 {:.2} s, p99 {:.2} s, all {:.2} s; {} of {} from \
             the pool; {} failed ADDs; cleaned up in {:.0} s ({} ports leaked)",
            counts.pods,
            stackube_testenv::bench::percentile(&phase.ready, 0.5).as_secs_f64(),
            stackube_testenv::bench::percentile(&phase.ready, 0.99).as_secs_f64(),
            phase.all_ready.as_secs_f64(),
            phase.from_pool,
            phase.cni_add.len(),
            phase.failed_adds.0,
            phase.cleanup.as_secs_f64(),
            phase.leaked,
        );
        phases.push(phase);
    }
    ctx.daemon.wait_handovers().await?;
    let log = ctx.node.daemon_log();
    let refills: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("cannot refill the port pool"))
        .collect();
    let refill_failures = (
        refills.len(),
        refills.iter().filter(|l| l.contains("timed out")).count(),
    );
    Ok(Run {
        mode,
        phases,
        pool_fill,
        late: ctx.pods.late,
        nudges: ctx.nudges,
        refill_failures,
        took: started.elapsed(),
    })
}

/// How many ADDs of `names` (pods of namespace `tenant`) failed, and how many of those because
/// a request timed out, from the `failed` lines of the daemon's log.
fn failures_of(log: &str, tenant: &str, names: &[String]) -> (usize, usize) {
    let pods: BTreeSet<String> = names.iter().map(|n| format!("pod={tenant}/{n}")).collect();
    let failed: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(" failed") && l.contains("command=Add"))
        .filter(|l| l.split_whitespace().any(|w| pods.contains(w)))
        .collect();
    let timed_out = failed.iter().filter(|l| l.contains("timed out")).count();
    (failed.len(), timed_out)
}
