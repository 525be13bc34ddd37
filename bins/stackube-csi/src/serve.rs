//! Serving gRPC on a unix socket, as the kubelet and the CSI sidecars expect.

use std::future::Future;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _, DuplexStream};
use tokio::net::{UnixListener, UnixStream};
use tokio_stream::wrappers::{ReceiverStream, UnixListenerStream};
use tonic::transport::server::Router;

use crate::authority::AuthorityFix;

/// The socket path of a CSI endpoint: `unix:///path` (the sidecars' and csi-sanity's form) or
/// a plain absolute path.
pub fn socket_path(endpoint: &str) -> anyhow::Result<PathBuf> {
    let path = endpoint.strip_prefix("unix://").unwrap_or(endpoint);
    anyhow::ensure!(
        path.starts_with('/'),
        "--endpoint: `{endpoint}` is not unix:///<absolute path> or an absolute path"
    );
    Ok(PathBuf::from(path))
}

/// The socket bound at `path`: its directory made, a socket an earlier process left replaced.
fn bind(path: &Path) -> anyhow::Result<UnixListener> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    match std::fs::remove_file(path) {
        Ok(()) => {
            tracing::info!(socket = %path.display(), "removed the socket of an earlier process")
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("removing {}", path.display())),
    }
    UnixListener::bind(path).with_context(|| format!("binding {}", path.display()))
}

/// Serves `router` on the socket `path` until `shutdown` completes. A socket left by an earlier
/// process is replaced; the socket is removed at the end.
pub async fn serve(
    router: Router,
    path: &Path,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let listener = bind(path)?;
    tracing::info!(socket = %path.display(), "serving CSI");
    let served = router
        .serve_with_incoming_shutdown(UnixListenerStream::new(listener), shutdown)
        .await;
    let _ = std::fs::remove_file(path);
    served.context("serving gRPC")
}

/// [`serve`], for the kubelet's plugin watcher: each connection's requests pass through
/// [`AuthorityFix`] (see [`crate::authority`]) on their way to `router`.
pub async fn serve_to_kubelet(
    router: Router,
    path: &Path,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let listener = bind(path)?;
    tracing::info!(socket = %path.display(), "serving CSI and the kubelet's registration");
    let (connections, incoming) = tokio::sync::mpsc::channel(16);
    let accept = tokio::spawn(async move {
        loop {
            let client = match listener.accept().await {
                Ok((client, _)) => client,
                Err(e) => {
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            };
            let (server, ours) = tokio::io::duplex(64 * 1024);
            tokio::spawn(pump(client, ours));
            if connections
                .send(Ok::<_, std::io::Error>(server))
                .await
                .is_err()
            {
                return;
            }
        }
    });
    let served = router
        .serve_with_incoming_shutdown(ReceiverStream::new(incoming), shutdown)
        .await;
    accept.abort();
    let _ = std::fs::remove_file(path);
    served.context("serving gRPC")
}

/// Carries one connection: the client's bytes through [`AuthorityFix`] to the server, the
/// server's back as they are, until either side closes.
async fn pump(client: UnixStream, server: DuplexStream) {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = tokio::io::split(server);
    let upstream = async {
        let mut fix = AuthorityFix::default();
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = client_read.read(&mut buf).await?;
            if n == 0 {
                return server_write.shutdown().await;
            }
            server_write.write_all(&fix.push(&buf[..n])).await?;
        }
    };
    let downstream = tokio::io::copy(&mut server_read, &mut client_write);
    let _: Result<_, std::io::Error> = tokio::try_join!(upstream, downstream);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_unix_urls_or_absolute_paths() {
        assert_eq!(
            socket_path("unix:///csi/csi.sock").unwrap(),
            PathBuf::from("/csi/csi.sock")
        );
        assert_eq!(
            socket_path("/run/csi.sock").unwrap(),
            PathBuf::from("/run/csi.sock")
        );
        for bad in ["csi.sock", "unix://csi.sock", "tcp://127.0.0.1:1"] {
            let e = socket_path(bad).unwrap_err().to_string();
            assert!(e.starts_with("--endpoint:"), "{bad}: {e}");
        }
    }
}
