//! Running code inside a network namespace.
//!
//! `setns(2)` changes the namespace of the calling *thread*. Doing it on a tokio worker would move
//! every task that worker runs afterwards, so it is only ever done on a dedicated OS thread that
//! ends with the work. A netlink socket opened there stays bound to that namespace, and a process
//! spawned there starts in it.

use std::fs::File;
use std::path::Path;

use nix::sched::{CloneFlags, setns};

use crate::{NetError, Result};

/// Runs `work` on a new OS thread that has joined the network namespace at `path` (a bind mount
/// such as `/var/run/netns/cni-…`, or `/proc/<pid>/ns/net`), and returns its result.
pub fn run_in<T, F>(path: &Path, work: F) -> Result<T>
where
    F: FnOnce() -> Result<T> + Send + 'static,
    T: Send + 'static,
{
    let file = File::open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => NetError::NoNetns(path.display().to_string()),
        _ => NetError::Other(format!(
            "cannot open network namespace {}: {e}",
            path.display()
        )),
    })?;
    let shown = path.display().to_string();
    std::thread::Builder::new()
        .name("netns".into())
        .spawn(move || {
            setns(&file, CloneFlags::CLONE_NEWNET).map_err(|e| {
                NetError::Other(format!("cannot enter network namespace {shown}: {e}"))
            })?;
            work()
        })
        .map_err(|e| NetError::Other(format!("cannot start a thread: {e}")))?
        .join()
        .map_err(|_| NetError::Other("the network namespace thread panicked".into()))?
}

/// Runs the async `work` (given a netlink handle of the namespace) in the network namespace at
/// `path`, on a dedicated thread with its own single-threaded runtime.
pub async fn netlink_in<T, F, Fut>(path: &Path, work: F) -> Result<T>
where
    F: FnOnce(rtnetlink::Handle) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<T>>,
    T: Send + 'static,
{
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || {
        run_in(&path, move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_io()
                .build()
                .map_err(|e| NetError::Other(format!("runtime: {e}")))?;
            runtime.block_on(async move {
                let (connection, handle, _) = rtnetlink::new_connection()
                    .map_err(|e| NetError::Other(format!("netlink socket: {e}")))?;
                let driver = tokio::spawn(connection);
                let result = work(handle).await;
                driver.abort();
                result
            })
        })
    })
    .await
    .map_err(|e| NetError::Other(format!("network namespace task: {e}")))?
}

/// A netlink handle of the calling thread's namespace (the host's, for the daemon), with its
/// connection driven on the current runtime.
pub fn host_netlink() -> Result<rtnetlink::Handle> {
    let (connection, handle, _) =
        rtnetlink::new_connection().map_err(|e| NetError::Other(format!("netlink socket: {e}")))?;
    tokio::spawn(connection);
    Ok(handle)
}
