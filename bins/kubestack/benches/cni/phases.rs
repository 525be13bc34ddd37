//! One run of one mode (without or with the pool): a fresh node (controller, daemon, plugin
//! installed), then the phases, each timed as the runtime would see it:
//!
//! 1. sequential ADDs, then (once the hand-overs are done) sequential DELs;
//! 2. parallel ADDs, then parallel DELs;
//! 3. time to connectivity: from the start of an ADD to the first echo reply from the pod's
//!    gateway (its tenant router), pinged from inside the pod's namespace every 20 ms;
//! 4. (with the pool) a DEL right after each ADD answered;
//! 5. pod ready through containerd (`crictl runp`), then `crictl rmp`.
//!
//! With the pool, every phase starts once the pool holds enough ready ports for all its ADDs
//! and no hand-over is pending; the daemon's log says how many ADDs the pool served.
//! Without it, the run starts once the daemon has dropped the pool an earlier run left.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use stackube_openstack::OpenStack;
use stackube_testenv::bench::Exposition;
use stackube_testenv::{TestEnv, unique_name};

use crate::common::{Node, crictl, run_pod};
use crate::daemon::{self, Calls, Daemon};
use crate::plugin::{Made, Plugin, first_reply, netns_add, netns_del};
use crate::{Counts, Mode};

/// What one phase of ADDs measured beyond the times.
#[derive(Clone, Debug, Default)]
pub(crate) struct AddPhase {
    /// The plugin's wall time per ADD.
    pub(crate) add: Vec<Duration>,
    /// The daemon's own time per ADD (its log).
    pub(crate) daemon: Vec<Duration>,
    /// ADDs the pool served.
    pub(crate) from_pool: usize,
    /// The daemon's OpenStack calls from the first ADD until the hand-overs were done (the pool's
    /// refill included; with a DEL right after each ADD, the DELs' too).
    pub(crate) calls: Calls,
    /// How long the phase waited for the pool first.
    pub(crate) pool_wait: Duration,
}

/// What one run measured.
#[derive(Clone, Debug)]
pub(crate) struct Run {
    pub(crate) mode: Mode,
    pub(crate) sequential: AddPhase,
    pub(crate) del_sequential: Vec<Duration>,
    /// The daemon's OpenStack calls during the sequential DELs (the pool's refill included).
    pub(crate) del_sequential_calls: Calls,
    pub(crate) parallel: AddPhase,
    pub(crate) del_parallel: Vec<Duration>,
    /// ADD start to the first echo reply from the gateway.
    pub(crate) connectivity: Vec<Duration>,
    pub(crate) connectivity_adds: AddPhase,
    /// DEL right after the ADD answered (with the pool only).
    pub(crate) del_after_add: Vec<Duration>,
    pub(crate) del_after_add_adds: AddPhase,
    pub(crate) crictl: Vec<Duration>,
    /// With the pool: how long it took to fill before the first phase, and how many ports it
    /// lacked then (a new daemon keeps the ready ports an earlier one left).
    pub(crate) pool_fill: Option<(Duration, usize)>,
    /// The whole run, start of the node to its end.
    pub(crate) took: Duration,
}

struct Ctx<'a> {
    env: &'a TestEnv,
    node: &'a Node,
    daemon: Daemon,
    plugin: Plugin,
    mode: Mode,
    tag: String,
}

impl Ctx<'_> {
    fn ids(&self, what: &str, n: usize) -> Vec<String> {
        (0..n).map(|i| format!("{}-{what}{i}", self.tag)).collect()
    }

    /// Before a phase: `n` container ids (`what` and a number), their namespaces made, the wait
    /// for the pool ([`Ctx::ready_for`]) and the daemon's metrics before the first ADD.
    async fn start_phase(
        &self,
        made: &Made,
        what: &str,
        n: usize,
    ) -> anyhow::Result<(Vec<String>, Duration, Exposition)> {
        let ids = self.ids(what, n);
        for id in &ids {
            netns_add(made, id)?;
        }
        let wait = self.ready_for(ids.len()).await?;
        Ok((ids, wait, self.daemon.metrics()?))
    }

    /// Before a phase of `adds` ADDs: with the pool, until it can serve them all.
    async fn ready_for(&self, adds: usize) -> anyhow::Result<Duration> {
        match self.mode {
            Mode::Pooled => self.daemon.wait_pool(adds).await,
            Mode::Unpooled => Ok(Duration::ZERO),
        }
    }

    /// Completes an ADD phase's figures from the daemon's log and metrics.
    fn phase(
        &self,
        ids: &[String],
        add: Vec<Duration>,
        before: &Exposition,
        wait: Duration,
    ) -> anyhow::Result<AddPhase> {
        let log = self.node.daemon_log();
        Ok(AddPhase {
            add,
            daemon: daemon::logged_ms(&log, "Add", ids),
            from_pool: daemon::served_from_pool(&log, ids),
            calls: daemon::calls(before, &self.daemon.metrics()?),
            pool_wait: wait,
        })
    }
}

/// One run of `mode` on a fresh node; `os` is the cloud admin's connection.
pub(crate) async fn run(
    env: &TestEnv,
    os: &OpenStack,
    tenant: &str,
    mode: Mode,
    counts: &Counts,
    made: &Made,
) -> anyhow::Result<Run> {
    let started = Instant::now();
    let pool_flag = format!("--pool-size={}", counts.pool);
    let node = match mode {
        Mode::Pooled => Node::start_with(env, &[&pool_flag]).await,
        Mode::Unpooled => Node::start(env).await,
    };
    let ctx = Ctx {
        env,
        daemon: Daemon::find(&node.dir).await?,
        plugin: Plugin {
            socket: node.dir.join("kubestack.sock").display().to_string(),
            namespace: tenant.to_owned(),
        },
        node: &node,
        mode,
        tag: unique_name("b"),
    };
    let pool_fill = match mode {
        Mode::Unpooled => {
            let took = daemon::wait_no_pool(os).await?;
            eprintln!(
                "[{mode}] no pooled port left after {:.1} s",
                took.as_secs_f64()
            );
            None
        }
        Mode::Pooled => {
            let fill = Instant::now();
            let lacking = counts.pool.saturating_sub(ctx.daemon.pool_ready()?);
            // One ADD starts the pool of the tenant's network (a recovered pool refills itself).
            let warm = format!("{}-warm", ctx.tag);
            netns_add(made, &warm)?;
            ctx.plugin.add(made, &warm)?;
            ctx.plugin.del(made, &warm)?;
            netns_del(made, &warm);
            ctx.daemon.wait_pool(counts.pool).await?;
            let took = fill.elapsed();
            eprintln!(
                "[{mode}] pool of {} ready after {:.1} s ({lacking} ports made)",
                counts.pool,
                took.as_secs_f64()
            );
            Some((took, lacking))
        }
    };

    // 1. Sequential.
    let (ids, wait, before) = ctx.start_phase(made, "s", counts.sequential).await?;
    let mut add = Vec::new();
    for id in &ids {
        add.push(ctx.plugin.add(made, id)?.took);
    }
    ctx.daemon.wait_handovers().await?;
    let sequential = ctx.phase(&ids, add, &before, wait)?;
    let mut del_sequential = Vec::new();
    let before = ctx.daemon.metrics()?;
    for id in &ids {
        del_sequential.push(ctx.plugin.del(made, id)?);
        netns_del(made, id);
    }
    let del_sequential_calls = daemon::calls(&before, &ctx.daemon.metrics()?);
    eprintln!(
        "[{mode}] sequential done after {:.0} s",
        started.elapsed().as_secs_f64()
    );

    // 2. Parallel.
    let (ids, wait, before) = ctx.start_phase(made, "p", counts.parallel).await?;
    let add = parallel(&ctx.plugin, made, &ids, true)?;
    ctx.daemon.wait_handovers().await?;
    let parallel_adds = ctx.phase(&ids, add, &before, wait)?;
    let del_parallel = parallel(&ctx.plugin, made, &ids, false)?;
    for id in &ids {
        netns_del(made, id);
    }
    eprintln!(
        "[{mode}] parallel done after {:.0} s",
        started.elapsed().as_secs_f64()
    );

    // 3. Time to connectivity.
    let ids = ctx.ids("c", counts.connectivity);
    let wait = ctx.ready_for(ids.len()).await?;
    let before = ctx.daemon.metrics()?;
    let (mut add, mut connectivity) = (Vec::new(), Vec::new());
    for id in &ids {
        netns_add(made, id)?;
        let added = ctx.plugin.add(made, id)?;
        let gateway = added
            .gateway
            .with_context(|| format!("the ADD of {id} answered no gateway"))?;
        let reply = first_reply(id, &gateway)?;
        add.push(added.took);
        connectivity.push(reply.saturating_duration_since(added.started));
    }
    ctx.daemon.wait_handovers().await?;
    let connectivity_adds = ctx.phase(&ids, add, &before, wait)?;
    for id in &ids {
        ctx.plugin.del(made, id)?;
        netns_del(made, id);
    }
    eprintln!(
        "[{mode}] connectivity done after {:.0} s",
        started.elapsed().as_secs_f64()
    );

    // 4. A DEL right after a pooled ADD.
    let (mut del_after_add, mut del_after_add_adds) = (Vec::new(), AddPhase::default());
    if mode == Mode::Pooled {
        let (ids, wait, before) = ctx.start_phase(made, "d", counts.del_after_add).await?;
        let mut add = Vec::new();
        for id in &ids {
            add.push(ctx.plugin.add(made, id)?.took);
            del_after_add.push(ctx.plugin.del(made, id)?);
            netns_del(made, id);
        }
        del_after_add_adds = ctx.phase(&ids, add, &before, wait)?;
        eprintln!(
            "[{mode}] DEL after ADD done after {:.0} s",
            started.elapsed().as_secs_f64()
        );
    }

    // 5. Pod ready through containerd.
    ctx.ready_for(counts.crictl).await?;
    let mut crictl_ready = Vec::new();
    for i in 0..counts.crictl {
        let t0 = Instant::now();
        let pod = run_pod(ctx.env, &node.dir, tenant, &format!("{}-r{i}", ctx.tag));
        crictl_ready.push(t0.elapsed());
        let (ok, out) = crictl(ctx.env, &["rmp", "--force", &pod.id]);
        anyhow::ensure!(ok, "crictl rmp: {out}");
    }
    ctx.daemon.wait_handovers().await?;
    Ok(Run {
        mode,
        sequential,
        del_sequential,
        del_sequential_calls,
        parallel: parallel_adds,
        del_parallel,
        connectivity,
        connectivity_adds,
        del_after_add,
        del_after_add_adds,
        crictl: crictl_ready,
        pool_fill,
        took: started.elapsed(),
    })
}

/// ADD (or DEL) of every one of `ids` at once; their wall times.
fn parallel(
    plugin: &Plugin,
    made: &Made,
    ids: &[String],
    add: bool,
) -> anyhow::Result<Vec<Duration>> {
    std::thread::scope(|scope| {
        let handles: Vec<_> = ids
            .iter()
            .map(|id| {
                scope.spawn(move || {
                    if add {
                        plugin.add(made, id).map(|a| a.took)
                    } else {
                        plugin.del(made, id)
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .map_err(|_| anyhow::anyhow!("a plugin thread panicked"))?
            })
            .collect()
    })
}
