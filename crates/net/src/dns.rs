//! stackube-dns's sockets inside router namespaces: the cluster DNS address on the namespace's
//! `lo`, and a UDP socket and a TCP listener bound to it.
//!
//! A socket belongs for life to the network namespace of the thread that made it, so both are
//! made on a thread that entered the namespace ([`netns::run_in`]) and handed back, ready for
//! the caller's runtime (non-blocking). The namespace lives on while a socket of it is open:
//! closing them when the router goes is the caller's job ([`DnsSockets::netns_id`] tells a
//! namespace made again under the same name from the old one).
//!
//! [`RouterSockets`] is the real thing; `FakeDnsSockets` (feature `fake`) binds loopback
//! sockets of the host instead and keeps the addresses in memory.

use std::net::{IpAddr, Ipv4Addr, SocketAddrV4, TcpListener, UdpSocket};
use std::os::unix::fs::MetadataExt as _;
use std::path::Path;

use async_trait::async_trait;
use futures::TryStreamExt as _;
use rtnetlink::packet_route::address::{AddressAttribute, AddressMessage};

use crate::{NetError, Result, netns, veth};

/// The bound sockets of one namespace.
#[derive(Debug)]
pub struct Listeners {
    /// UDP, non-blocking.
    pub udp: UdpSocket,
    /// TCP, listening, non-blocking.
    pub tcp: TcpListener,
}

/// One network namespace (its nsfs device and inode): a namespace deleted and made again
/// under the same path is another.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct NetnsId {
    dev: u64,
    ino: u64,
}

/// The sockets stackube-dns serves, one pair per router namespace.
#[async_trait]
pub trait DnsSockets: Send + Sync {
    /// Which namespace is at `netns` now; `None` when there is none.
    fn netns_id(&self, netns: &Path) -> Option<NetnsId>;
    /// Puts `address`'s IP on `lo` of the namespace at `netns` (if missing) and binds a UDP
    /// socket and a TCP listener to `address` there.
    async fn open(&self, netns: &Path, address: SocketAddrV4) -> Result<Listeners>;
    /// Puts `ip`/32 on `lo` of the namespace at `netns` if it is not there; returns whether
    /// it had to.
    async fn ensure_address(&self, netns: &Path, ip: Ipv4Addr) -> Result<bool>;
    /// Removes `ip`/32 from `lo` of the namespace at `netns`; a missing one is fine.
    async fn remove_address(&self, netns: &Path, ip: Ipv4Addr) -> Result<()>;
}

/// [`DnsSockets`] in real namespaces.
#[derive(Clone, Copy, Debug, Default)]
pub struct RouterSockets;

/// The addresses `ip`/32 on `lo` of the handle's namespace, as netlink messages.
async fn lo_addresses(
    handle: &rtnetlink::Handle,
    ip: Ipv4Addr,
) -> Result<(u32, Vec<AddressMessage>)> {
    let lo = veth::find(handle, "lo")
        .await?
        .ok_or_else(|| NetError::Other("the namespace has no lo".into()))?;
    let index = lo.header.index;
    let mut found = Vec::new();
    let mut stream = handle
        .address()
        .get()
        .set_link_index_filter(index)
        .execute();
    while let Some(message) = stream
        .try_next()
        .await
        .map_err(|source| NetError::Netlink {
            what: "listing the addresses of lo".into(),
            source,
        })?
    {
        let ours = message.header.prefix_len == 32
            && message
                .attributes
                .iter()
                .any(|a| matches!(a, AddressAttribute::Address(IpAddr::V4(a)) if *a == ip));
        if ours {
            found.push(message);
        }
    }
    Ok((index, found))
}

async fn ensure(handle: rtnetlink::Handle, ip: Ipv4Addr) -> Result<bool> {
    let (index, found) = lo_addresses(&handle, ip).await?;
    if !found.is_empty() {
        return Ok(false);
    }
    match handle
        .address()
        .add(index, IpAddr::V4(ip), 32)
        .execute()
        .await
    {
        Ok(()) => Ok(true),
        Err(rtnetlink::Error::NetlinkError(e))
            if e.code.is_some_and(|c| c.get() == -nix::libc::EEXIST) =>
        {
            Ok(false)
        }
        Err(source) => Err(NetError::Netlink {
            what: format!("adding {ip}/32 to lo"),
            source,
        }),
    }
}

#[async_trait]
impl DnsSockets for RouterSockets {
    fn netns_id(&self, netns: &Path) -> Option<NetnsId> {
        let metadata = std::fs::metadata(netns).ok()?;
        Some(NetnsId {
            dev: metadata.dev(),
            ino: metadata.ino(),
        })
    }

    async fn open(&self, netns: &Path, address: SocketAddrV4) -> Result<Listeners> {
        self.ensure_address(netns, *address.ip()).await?;
        let path = netns.to_owned();
        tokio::task::spawn_blocking(move || {
            netns::run_in(&path, move || {
                let failed = |what: &'static str| {
                    move |e: std::io::Error| NetError::Other(format!("{what} {address}: {e}"))
                };
                let udp = UdpSocket::bind(address).map_err(failed("binding UDP"))?;
                udp.set_nonblocking(true)
                    .map_err(failed("non-blocking UDP"))?;
                let tcp = TcpListener::bind(address).map_err(failed("binding TCP"))?;
                tcp.set_nonblocking(true)
                    .map_err(failed("non-blocking TCP"))?;
                Ok(Listeners { udp, tcp })
            })
        })
        .await
        .map_err(|e| NetError::Other(format!("network namespace task: {e}")))?
    }

    async fn ensure_address(&self, netns: &Path, ip: Ipv4Addr) -> Result<bool> {
        netns::netlink_in(netns, move |handle| ensure(handle, ip)).await
    }

    async fn remove_address(&self, netns: &Path, ip: Ipv4Addr) -> Result<()> {
        netns::netlink_in(netns, move |handle| async move {
            let (_, found) = lo_addresses(&handle, ip).await?;
            for message in found {
                match handle.address().del(message).execute().await {
                    Ok(()) => {}
                    Err(rtnetlink::Error::NetlinkError(e))
                        if e.code.is_some_and(|c| c.get() == -nix::libc::EADDRNOTAVAIL) => {}
                    Err(source) => {
                        return Err(NetError::Netlink {
                            what: format!("removing {ip}/32 from lo"),
                            source,
                        });
                    }
                }
            }
            Ok(())
        })
        .await
    }
}

#[cfg(feature = "fake")]
pub use fake::FakeDnsSockets;

#[cfg(feature = "fake")]
mod fake {
    use std::collections::{BTreeMap, BTreeSet};
    use std::path::PathBuf;
    use std::sync::Mutex;

    use super::*;

    #[derive(Debug, Default)]
    struct State {
        /// Namespaces by path, with their inode.
        namespaces: BTreeMap<PathBuf, u64>,
        next_inode: u64,
        addresses: BTreeSet<(PathBuf, Ipv4Addr)>,
        failing: BTreeSet<PathBuf>,
        opened: Vec<PathBuf>,
    }

    /// [`DnsSockets`] in memory: namespaces are paths the test adds and removes; `open` binds
    /// UDP and TCP on 127.0.0.1, on ports of the kernel's choosing.
    #[derive(Debug, Default)]
    pub struct FakeDnsSockets {
        state: Mutex<State>,
    }

    impl FakeDnsSockets {
        fn state(&self) -> std::sync::MutexGuard<'_, State> {
            self.state.lock().unwrap_or_else(|e| e.into_inner())
        }

        /// Makes a namespace at `netns` (again: a new one, if there was one).
        pub fn add_netns(&self, netns: &Path) {
            let mut state = self.state();
            state.next_inode += 1;
            let inode = state.next_inode;
            state.namespaces.insert(netns.to_owned(), inode);
            let path = netns.to_owned();
            state.addresses.retain(|(p, _)| *p != path);
        }

        /// Deletes the namespace at `netns`, with its addresses.
        pub fn remove_netns(&self, netns: &Path) {
            let mut state = self.state();
            state.namespaces.remove(netns);
            state.addresses.retain(|(p, _)| p != netns);
        }

        /// Removes an address behind the daemon's back.
        pub fn drop_address(&self, netns: &Path, ip: Ipv4Addr) {
            self.state().addresses.remove(&(netns.to_owned(), ip));
        }

        /// Whether `ip` is on the namespace's `lo`.
        pub fn has_address(&self, netns: &Path, ip: Ipv4Addr) -> bool {
            self.state().addresses.contains(&(netns.to_owned(), ip))
        }

        /// Makes `open` fail in `netns` (or work again).
        pub fn fail_open(&self, netns: &Path, fail: bool) {
            let mut state = self.state();
            if fail {
                state.failing.insert(netns.to_owned());
            } else {
                state.failing.remove(netns);
            }
        }

        /// The namespaces opened so far, in order.
        pub fn opened(&self) -> Vec<PathBuf> {
            self.state().opened.clone()
        }
    }

    #[async_trait]
    impl DnsSockets for FakeDnsSockets {
        fn netns_id(&self, netns: &Path) -> Option<NetnsId> {
            self.state()
                .namespaces
                .get(netns)
                .map(|ino| NetnsId { dev: 0, ino: *ino })
        }

        async fn open(&self, netns: &Path, address: SocketAddrV4) -> Result<Listeners> {
            {
                let mut state = self.state();
                if !state.namespaces.contains_key(netns) {
                    return Err(NetError::NoNetns(netns.display().to_string()));
                }
                if state.failing.contains(netns) {
                    return Err(NetError::Other(format!(
                        "binding {address}: injected failure"
                    )));
                }
                state.addresses.insert((netns.to_owned(), *address.ip()));
                state.opened.push(netns.to_owned());
            }
            let io = |e: std::io::Error| NetError::Other(e.to_string());
            let udp = UdpSocket::bind("127.0.0.1:0").map_err(io)?;
            udp.set_nonblocking(true).map_err(io)?;
            let tcp = TcpListener::bind("127.0.0.1:0").map_err(io)?;
            tcp.set_nonblocking(true).map_err(io)?;
            Ok(Listeners { udp, tcp })
        }

        async fn ensure_address(&self, netns: &Path, ip: Ipv4Addr) -> Result<bool> {
            let mut state = self.state();
            if !state.namespaces.contains_key(netns) {
                return Err(NetError::NoNetns(netns.display().to_string()));
            }
            Ok(state.addresses.insert((netns.to_owned(), ip)))
        }

        async fn remove_address(&self, netns: &Path, ip: Ipv4Addr) -> Result<()> {
            self.state().addresses.remove(&(netns.to_owned(), ip));
            Ok(())
        }
    }
}
