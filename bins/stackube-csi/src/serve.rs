//! Serving gRPC on a unix socket, as the kubelet and the CSI sidecars expect.

use std::future::Future;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use tokio::net::UnixListener;
use tokio_stream::wrappers::UnixListenerStream;
use tonic::transport::server::Router;

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

/// Serves `router` on the socket `path` until `shutdown` completes. A socket left by an earlier
/// process is replaced; the socket is removed at the end.
pub async fn serve(
    router: Router,
    path: &Path,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
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
    let listener =
        UnixListener::bind(path).with_context(|| format!("binding {}", path.display()))?;
    tracing::info!(socket = %path.display(), "serving CSI");
    let served = router
        .serve_with_incoming_shutdown(UnixListenerStream::new(listener), shutdown)
        .await;
    let _ = std::fs::remove_file(path);
    served.context("serving gRPC")
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
