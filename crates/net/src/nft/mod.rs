//! nftables and connection tracking inside a network namespace (a tenant router's
//! `qrouter-<id>`), through Debian's `nft` and `conntrack`, the way kube-proxy drives `nft`:
//! text transactions on `nft -f -`, each atomic in the kernel.
//!
//! [`Ruleset`] is the trait stackube-proxy uses; [`Nft`] implements it with the programs,
//! started on a thread that joined the namespace (a process inherits its creator thread's
//! network namespace), and [`FakeRuleset`](crate::fake::FakeRuleset) in memory.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command as Process, Stdio};

use async_trait::async_trait;
use stackube_core::proxy::TableSpec;
use stackube_core::proxy::conntrack::StaleEntries;
use stackube_core::proxy::nft::{self, Command, raw};
use tokio::sync::mpsc;

use crate::{NetError, Result, netns};

mod netlink;
mod replace;
mod rules;

/// A namespace's nftables, as stackube-proxy uses it.
#[async_trait]
pub trait Ruleset: Send + Sync {
    /// Whether the network namespace at `netns` exists (a router's: it is hosted on this node).
    fn netns_exists(&self, netns: &Path) -> bool;
    /// Applies `commands` as one transaction in the namespace at `netns`: all of them or, on an
    /// error, none.
    async fn apply(&self, netns: &Path, commands: &[Command]) -> Result<()>;
    /// [`Ruleset::apply`] of the commands `commands` yields, read as they are sent (a full
    /// sync's at 10,000 Services are over 100 commands of 1,000 elements: they are never all
    /// held at once). By default, collected and applied.
    async fn apply_streamed(
        &self,
        netns: &Path,
        commands: &mut (dyn Iterator<Item = Command> + Send),
    ) -> Result<()> {
        let commands: Vec<Command> = commands.collect();
        self.apply(netns, &commands).await
    }
    /// Replaces table `inet table` in the namespace at `netns` with `spec`'s (a full sync). By
    /// default, [`nft::full_lazy`]'s commands applied as one transaction.
    async fn full_sync(&self, netns: &Path, table: &str, spec: &TableSpec) -> Result<()> {
        self.apply_streamed(netns, &mut nft::full_lazy(table, spec))
            .await
    }
    /// How many rules chain `chain` of table `inet table` has (0 when the table or the chain does
    /// not exist).
    async fn count_rules(&self, netns: &Path, table: &str, chain: &str) -> Result<usize>;
    /// Deletes the connection tracking entries `entries` describes; returns how many went.
    async fn delete_entries(&self, netns: &Path, entries: &[StaleEntries]) -> Result<usize>;
}

/// [`Ruleset`] with the `nft` and `conntrack` programs.
#[derive(Clone, Debug)]
pub struct Nft {
    /// The `nft` program.
    pub nft: PathBuf,
    /// The `conntrack` program.
    pub conntrack: PathBuf,
}

impl Default for Nft {
    fn default() -> Self {
        Nft {
            nft: "nft".into(),
            conntrack: "conntrack".into(),
        }
    }
}

impl Nft {
    /// Step 2 of a full sync: one netlink batch flushing and filling every set and map of
    /// `replace`, then deleting the chains and sets of an earlier table the new one lacks.
    async fn fill(
        &self,
        netns: &Path,
        table: &str,
        replace: &raw::Replace<'_>,
        chains: &[String],
        sets: &[String],
    ) -> Result<()> {
        let batch = replace::batch(table, replace.fills(), chains, sets);
        let size = batch.len();
        in_netns(
            netns,
            move || batch.send().map_err(std::io::Error::other),
            || format!("the elements of table inet {table} ({size} bytes) were refused"),
        )
        .await
    }
}

/// What a program printed and how it ended.
struct Output {
    success: bool,
    stderr: String,
}

/// Runs `program args` in the namespace at `netns` with `input` on its standard input.
async fn run_in(netns: &Path, program: &Path, args: Vec<String>, input: String) -> Result<Output> {
    let (tx, rx) = mpsc::channel(1);
    // The receiver is waiting or gone (the program could not start): either way, nothing to do.
    let _ = tx.send(input).await;
    drop(tx);
    run_streamed(netns, program, args, rx).await
}

/// Text sent to a program at a time.
const CHUNK: usize = 64 * 1024;

/// Runs `program args` in the namespace at `netns`, writing what `input` receives on its
/// standard input until the sender is dropped.
async fn run_streamed(
    netns: &Path,
    program: &Path,
    args: Vec<String>,
    mut input: mpsc::Receiver<String>,
) -> Result<Output> {
    let (path, program) = (netns.to_owned(), program.to_owned());
    tokio::task::spawn_blocking(move || {
        netns::run_in(&path, move || {
            let shown = format!("{} {}", program.display(), args.join(" "));
            let failed = |e: std::io::Error| NetError::Command {
                command: shown.clone(),
                message: e.to_string(),
            };
            let mut child = Process::new(&program)
                .args(&args)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .map_err(failed)?;
            if let Some(mut stdin) = child.stdin.take() {
                while let Some(text) = input.blocking_recv() {
                    // A program that stopped reading has failed: its output says why.
                    if stdin.write_all(text.as_bytes()).is_err() {
                        break;
                    }
                }
            }
            drop(input);
            let output = child.wait_with_output().map_err(failed)?;
            Ok(Output {
                success: output.status.success(),
                stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            })
        })
    })
    .await
    .map_err(|e| NetError::Other(format!("namespace task: {e}")))?
}

/// Sends the text of `commands` to `tx` in chunks of about [`CHUNK`] bytes, as it is made.
async fn send_text(commands: &mut (dyn Iterator<Item = Command> + Send), tx: mpsc::Sender<String>) {
    let mut chunk = String::with_capacity(CHUNK);
    for command in commands {
        let _ = writeln!(chunk, "{command}");
        if chunk.len() >= CHUNK {
            let full = std::mem::replace(&mut chunk, String::with_capacity(CHUNK));
            if tx.send(full).await.is_err() {
                return;
            }
        }
    }
    if !chunk.is_empty() {
        let _ = tx.send(chunk).await;
    }
}

/// Runs `work` on a thread in the namespace at `netns`; its error is told after `context`.
async fn in_netns<T: Send + 'static>(
    netns: &Path,
    work: impl FnOnce() -> std::io::Result<T> + Send + 'static,
    context: impl FnOnce() -> String,
) -> Result<T> {
    let path = netns.to_owned();
    let shown = path.display().to_string();
    let result = tokio::task::spawn_blocking(move || {
        netns::run_in(&path, move || {
            work().map_err(|e| NetError::Other(e.to_string()))
        })
    })
    .await
    .map_err(|e| NetError::Other(format!("namespace task: {e}")))?;
    result.map_err(|e| match e {
        NetError::Other(message) => NetError::Other(format!("{} in {shown}: {message}", context())),
        other => other,
    })
}

/// The `conntrack -D` arguments of `entries`.
fn conntrack_args(entries: &StaleEntries) -> Vec<String> {
    let frontend = match entries {
        StaleEntries::Frontend(frontend) | StaleEntries::Endpoint { frontend, .. } => frontend,
    };
    let mut args = vec![
        "-D".to_owned(),
        "-p".to_owned(),
        frontend.protocol.keyword().to_owned(),
        "--orig-dst".to_owned(),
        frontend.ip.to_string(),
        "--dport".to_owned(),
        frontend.port.to_string(),
    ];
    if let StaleEntries::Endpoint { endpoint, .. } = entries {
        args.extend([
            "--reply-src".to_owned(),
            endpoint.ip().to_string(),
            "--reply-port-src".to_owned(),
            endpoint.port().to_string(),
        ]);
    }
    args
}

/// How many entries `conntrack -D` says it deleted.
fn deleted_count(stderr: &str) -> usize {
    stderr
        .lines()
        .find_map(|l| l.strip_suffix(" flow entries have been deleted."))
        .and_then(|n| n.rsplit(' ').next()?.trim().parse().ok())
        .unwrap_or(0)
}

#[async_trait]
impl Ruleset for Nft {
    fn netns_exists(&self, netns: &Path) -> bool {
        netns.exists()
    }

    async fn apply(&self, netns: &Path, commands: &[Command]) -> Result<()> {
        if commands.is_empty() {
            return Ok(());
        }
        self.apply_streamed(netns, &mut commands.iter().cloned())
            .await
    }

    async fn apply_streamed(
        &self,
        netns: &Path,
        commands: &mut (dyn Iterator<Item = Command> + Send),
    ) -> Result<()> {
        let (tx, rx) = mpsc::channel(2);
        let args = vec!["-f".into(), "-".into()];
        let (output, ()) = tokio::join!(
            run_streamed(netns, &self.nft, args, rx),
            send_text(commands, tx)
        );
        let output = output?;
        if output.success {
            return Ok(());
        }
        Err(NetError::Command {
            command: format!("{} -f - (in {})", self.nft.display(), netns.display()),
            message: output.stderr.trim().to_owned(),
        })
    }

    /// The objects through `nft`, the elements through netlink: [`raw`]'s two transactions.
    async fn full_sync(&self, netns: &Path, table: &str, spec: &TableSpec) -> Result<()> {
        let replace = raw::replace(table, spec);
        let name = table.to_owned();
        let (chains, sets) = in_netns(
            netns,
            move || replace::inventory(&name),
            || format!("cannot read the chains and sets of table inet {table}"),
        )
        .await?;
        let kept = match replace.objects(&chains, &sets) {
            Some(objects) => match self.apply(netns, &objects).await {
                Ok(()) => true,
                Err(e) => {
                    tracing::warn!(
                        netns = %netns.display(), table, error = %e,
                        "the table cannot be kept as it is; making it afresh"
                    );
                    false
                }
            },
            None => false,
        };
        if kept {
            let names: BTreeSet<String> = sets.into_keys().collect();
            let (chains, sets) = raw::leftovers(&replace, &chains, &names);
            match self.fill(netns, table, &replace, &chains, &sets).await {
                Ok(()) => return Ok(()),
                // Whatever refused the elements over the kept objects (a set that filled up
                // since it was read, say), a table made afresh takes them: retrying the same
                // would fail the same way.
                Err(e) => tracing::warn!(
                    netns = %netns.display(), table, error = %e,
                    "the kept table cannot take its elements; making it afresh"
                ),
            }
        }
        self.apply(netns, &replace.fresh_objects()).await?;
        self.fill(netns, table, &replace, &[], &[]).await
    }

    async fn count_rules(&self, netns: &Path, table: &str, chain: &str) -> Result<usize> {
        let (t, c) = (table.to_owned(), chain.to_owned());
        in_netns(
            netns,
            move || rules::count(&t, &c),
            || format!("cannot read chain {chain} of table inet {table}"),
        )
        .await
    }

    async fn delete_entries(&self, netns: &Path, entries: &[StaleEntries]) -> Result<usize> {
        let mut deleted = 0;
        for entry in entries {
            let args = conntrack_args(entry);
            let output = run_in(netns, &self.conntrack, args.clone(), String::new()).await?;
            // conntrack exits 1 when nothing matched: that is not an error here.
            if !output.success && !output.stderr.contains("0 flow entries have been deleted") {
                return Err(NetError::Command {
                    command: format!(
                        "{} {} (in {})",
                        self.conntrack.display(),
                        args.join(" "),
                        netns.display()
                    ),
                    message: output.stderr.trim().to_owned(),
                });
            }
            deleted += deleted_count(&output.stderr);
        }
        Ok(deleted)
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, SocketAddrV4};

    use stackube_core::proxy::{Frontend, Protocol};

    use super::*;

    #[test]
    fn conntrack_is_asked_for_the_frontend_and_the_endpoint_that_went() {
        let frontend = Frontend {
            ip: Ipv4Addr::new(10, 96, 0, 10),
            protocol: Protocol::Udp,
            port: 53,
        };
        assert_eq!(
            conntrack_args(&StaleEntries::Frontend(frontend)).join(" "),
            "-D -p udp --orig-dst 10.96.0.10 --dport 53"
        );
        let endpoint = SocketAddrV4::new(Ipv4Addr::new(10, 244, 0, 5), 5353);
        assert_eq!(
            conntrack_args(&StaleEntries::Endpoint { frontend, endpoint }).join(" "),
            "-D -p udp --orig-dst 10.96.0.10 --dport 53 --reply-src 10.244.0.5 --reply-port-src 5353"
        );
    }

    #[test]
    fn the_deleted_count_is_read_from_conntracks_summary() {
        let stderr = "conntrack v1.4.7 (conntrack-tools): 2 flow entries have been deleted.\n";
        assert_eq!(deleted_count(stderr), 2);
        assert_eq!(deleted_count("nothing useful"), 0);
    }
}
