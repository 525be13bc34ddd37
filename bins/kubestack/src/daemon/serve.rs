//! Serving the plugin: a unix socket, one JSON line in (the [`Invocation`]), one JSON line out
//! (the [`Response`]), and one command at a time per container.
//!
//! # Guarantees
//! - A request line longer than [`MAX_REQUEST`] bytes, or one that is not an invocation, is
//!   answered with a CNI error (code 6, decoding failure) naming the limit; nothing is done.
//! - Commands for one container run one after another, in arrival order: a DEL that arrives
//!   while its ADD still runs (the runtime gave up on a plugin it killed) waits for it, rather
//!   than finding nothing to delete and letting the ADD finish into a leak.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::Arc;

use tokio::io::{
    AsyncBufReadExt as _, AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _, BufReader,
};
use tokio::net::UnixListener;
use tokio::sync::{Mutex, OwnedMutexGuard};

use super::Daemon;
use crate::cni::{CniError, Invocation, code};
use crate::protocol::Response;

/// The longest request line the daemon reads. A CNI invocation is a few kilobytes (the network
/// configuration, and for CHECK its previous result); a megabyte leaves room for any real one.
pub const MAX_REQUEST: usize = 1 << 20;

/// One lock per container with a command in progress or waiting.
#[derive(Debug, Default)]
pub struct ContainerLocks {
    locks: std::sync::Mutex<HashMap<String, Arc<Mutex<()>>>>,
}

impl ContainerLocks {
    /// Waits for container `id`'s turn.
    pub async fn lock(&self, id: &str) -> OwnedMutexGuard<()> {
        let lock = {
            let mut locks = self.locks.lock().unwrap_or_else(|e| e.into_inner());
            // Forget locks nobody holds or waits for, so the map stays as small as the node's
            // pods.
            locks.retain(|_, lock| Arc::strong_count(lock) > 1);
            locks.entry(id.to_owned()).or_default().clone()
        };
        lock.lock_owned().await
    }

    /// Containers with a command in progress or waiting.
    pub fn held(&self) -> BTreeSet<String> {
        self.locks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|(_, lock)| Arc::strong_count(lock) > 1)
            .map(|(id, _)| id.clone())
            .collect()
    }
}

/// Reads one request line of at most [`MAX_REQUEST`] bytes.
pub async fn read_request(read: impl AsyncRead + Unpin) -> Result<Invocation, CniError> {
    let mut line = Vec::new();
    let mut limited = BufReader::new(read.take(MAX_REQUEST as u64 + 1));
    limited.read_until(b'\n', &mut line).await.map_err(|e| {
        CniError::new(
            code::IO_FAILURE,
            format!("the daemon cannot read the plugin's request: {e}"),
        )
    })?;
    if line.len() > MAX_REQUEST {
        return Err(CniError::new(
            code::DECODING_FAILURE,
            format!("the plugin's request is longer than {MAX_REQUEST} bytes"),
        ));
    }
    serde_json::from_slice::<Invocation>(&line).map_err(|e| {
        CniError::new(
            code::DECODING_FAILURE,
            format!("the daemon cannot read the plugin's request: {e}"),
        )
    })
}

impl Daemon {
    /// Serves the plugin on `socket` until the process ends.
    pub async fn serve(self: Arc<Self>, socket: &Path) -> anyhow::Result<()> {
        if let Some(dir) = socket.parent() {
            std::fs::create_dir_all(dir)?;
        }
        match std::fs::remove_file(socket) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
        let listener = UnixListener::bind(socket)?;
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o600))?;
        }
        tracing::info!(socket = %socket.display(), node = %self.settings.node, "serving the kubestack CNI plugin");
        loop {
            let (stream, _) = listener.accept().await?;
            let daemon = self.clone();
            tokio::spawn(async move {
                let (read, write) = stream.into_split();
                daemon.connection(read, write).await;
            });
        }
    }

    /// Answers one request.
    pub async fn connection(
        self: Arc<Self>,
        read: impl AsyncRead + Unpin,
        mut write: impl AsyncWrite + Unpin,
    ) {
        let response = match read_request(read).await {
            Ok(invocation) => match self.handle(&invocation).await {
                Ok(value) => Response::Result(value),
                Err(error) => Response::Error(error),
            },
            Err(error) => {
                tracing::warn!(error = %error.msg, "refused a request");
                Response::Error(error)
            }
        };
        let mut bytes = serde_json::to_vec(&response).unwrap_or_default();
        bytes.push(b'\n');
        let _ = write.write_all(&bytes).await;
        let _ = write.shutdown().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_oversized_request_is_refused_with_a_cni_error_naming_the_limit() {
        let big = vec![b'x'; MAX_REQUEST + 10];
        let err = read_request(&big[..]).await.unwrap_err();
        assert_eq!(err.code, code::DECODING_FAILURE);
        assert!(err.msg.contains("longer than 1048576 bytes"), "{}", err.msg);

        // Without a newline at all, the read still ends at the limit (it does not wait for
        // the rest of an endless line).
        let (mut client, server) = tokio::io::duplex(64 * 1024);
        let writer = tokio::spawn(async move {
            let chunk = vec![b'{'; 64 * 1024];
            for _ in 0..(MAX_REQUEST / chunk.len() + 2) {
                if client.write_all(&chunk).await.is_err() {
                    break;
                }
            }
            client
        });
        let err = read_request(server).await.unwrap_err();
        assert!(err.msg.contains("longer than"), "{}", err.msg);
        drop(writer);
    }

    #[tokio::test]
    async fn a_request_that_is_not_an_invocation_is_a_decoding_failure() {
        let err = read_request(&b"{\"command\":\"ADD\"}\n"[..])
            .await
            .unwrap_err();
        assert_eq!(err.code, code::DECODING_FAILURE);
        let err = read_request(&b"not json\n"[..]).await.unwrap_err();
        assert_eq!(err.code, code::DECODING_FAILURE);
    }

    #[tokio::test]
    async fn commands_of_one_container_wait_for_each_other_and_show_as_held() {
        let locks = Arc::new(ContainerLocks::default());
        let first = locks.lock("c1").await;
        assert_eq!(locks.held(), BTreeSet::from(["c1".to_owned()]));
        let waiting = {
            let locks = locks.clone();
            tokio::spawn(async move { drop(locks.lock("c1").await) })
        };
        tokio::task::yield_now().await;
        assert!(
            !waiting.is_finished(),
            "the second command ran beside the first"
        );
        let other = locks.lock("c2").await;
        drop(other);
        drop(first);
        waiting.await.unwrap();
        assert!(locks.held().is_empty());
    }
}
