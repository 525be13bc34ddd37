//! The network namespaces of one run, all the benchmark's own (never a real router, never the
//! host's): the *router* the proxy programs, a *client* and a *server*, each joined to the router
//! by a veth pair, as a tenant's pods are joined to its router.
//!
//! ```text
//!  client 10.244.1.2/24 ── eth0 ═ rc 10.244.1.1/24 ─ router ─ rs 10.244.2.1/24 ═ eth0 ── server
//!    default via 10.244.1.1          (ip_forward on)              10.244.2.10-19/24, default via .1
//! ```
//!
//! Each namespace is persisted as a file of the run's directory (`unshare --net=<file>`, a bind
//! mount of its nsfs inode), so nothing appears in `/run/netns` where Neutron's agents, the devbox
//! and other tests look. The router's file is `routers/qrouter-<router id>`: stackube-proxy's
//! `--netns-dir` is `routers/`. Commands run inside with `nsenter --net=<file>`.
//!
//! # Guarantees
//! - Dropping a [`Topology`] unmounts its namespaces (the kernel frees them, and their veths, once
//!   no process is left inside) and removes the files; a run that crashed before is cleaned up by
//!   [`remove_leftovers`].

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, bail};
use stackube_testenv::run_command;

use crate::PREFIX;
use crate::objects::ENDPOINTS;

/// The client's address, and the router's on its side.
pub(crate) const CLIENT: Ipv4Addr = Ipv4Addr::new(10, 244, 1, 2);
const ROUTER_CLIENT_SIDE: Ipv4Addr = Ipv4Addr::new(10, 244, 1, 1);
const ROUTER_SERVER_SIDE: Ipv4Addr = Ipv4Addr::new(10, 244, 2, 1);

/// The server's addresses: the endpoints of the data path's Service (one server answers on all).
pub(crate) fn server_addresses() -> Vec<Ipv4Addr> {
    (0..ENDPOINTS)
        .map(|i| Ipv4Addr::new(10, 244, 2, 10 + u8::try_from(i).expect("few endpoints")))
        .collect()
}

/// The namespaces of one run.
pub(crate) struct Topology {
    /// The run's directory.
    pub(crate) dir: PathBuf,
    /// What stackube-proxy's `--netns-dir` points at.
    pub(crate) routers: PathBuf,
    /// The router's namespace (`routers/qrouter-<id>`).
    pub(crate) router: PathBuf,
    pub(crate) client: PathBuf,
    pub(crate) server: PathBuf,
}

/// `nsenter --net=<netns> <args>`, checked.
pub(crate) fn nsenter(netns: &Path, args: &[&str], stdin: Option<&str>) -> anyhow::Result<String> {
    let mut command = Command::new("nsenter");
    command.arg(format!("--net={}", netns.display())).args(args);
    let (ok, out) = run_command(command, stdin);
    if !ok {
        bail!(
            "nsenter --net={} {}: {out}",
            netns.display(),
            args.join(" ")
        );
    }
    Ok(out)
}

/// A new network namespace persisted at `file`.
fn persist(file: &Path) -> anyhow::Result<()> {
    std::fs::write(file, b"").with_context(|| format!("creating {}", file.display()))?;
    let mut unshare = Command::new("unshare");
    unshare.arg(format!("--net={}", file.display())).arg("true");
    let (ok, out) = run_command(unshare, None);
    if !ok {
        bail!("unshare --net={}: {out}", file.display());
    }
    Ok(())
}

fn unmount(file: &Path) {
    let mut umount = Command::new("umount");
    umount.arg(file);
    let (ok, out) = run_command(umount, None);
    if !ok && file.exists() {
        eprintln!("cleanup: umount {}: {out}", file.display());
    }
}

impl Topology {
    /// Makes the namespaces in `dir` and wires them.
    pub(crate) fn create(dir: &Path, router_id: &str) -> anyhow::Result<Topology> {
        let routers = dir.join("routers");
        std::fs::create_dir_all(&routers)?;
        let topology = Topology {
            dir: dir.to_owned(),
            router: routers.join(format!("qrouter-{router_id}")),
            client: dir.join("client"),
            server: dir.join("server"),
            routers,
        };
        // From here on, a failure unmounts what was made (Drop).
        for netns in [&topology.router, &topology.client, &topology.server] {
            persist(netns)?;
        }
        let (client, server) = (
            topology.client.display().to_string(),
            topology.server.display().to_string(),
        );
        let router = format!(
            "link set lo up\n\
             link add rc type veth peer name eth0 netns {client}\n\
             link add rs type veth peer name eth0 netns {server}\n\
             addr add {ROUTER_CLIENT_SIDE}/24 dev rc\n\
             addr add {ROUTER_SERVER_SIDE}/24 dev rs\n\
             link set rc up\n\
             link set rs up\n"
        );
        nsenter(&topology.router, &["ip", "-batch", "-"], Some(&router))?;
        nsenter(
            &topology.router,
            &["sysctl", "-qw", "net.ipv4.ip_forward=1"],
            None,
        )?;
        let client = format!(
            "link set lo up\n\
             addr add {CLIENT}/24 dev eth0\n\
             link set eth0 up\n\
             route add default via {ROUTER_CLIENT_SIDE}\n"
        );
        nsenter(&topology.client, &["ip", "-batch", "-"], Some(&client))?;
        let mut server = String::from("link set lo up\n");
        for address in server_addresses() {
            server.push_str(&format!("addr add {address}/24 dev eth0\n"));
        }
        server.push_str(&format!(
            "link set eth0 up\nroute add default via {ROUTER_SERVER_SIDE}\n"
        ));
        nsenter(&topology.server, &["ip", "-batch", "-"], Some(&server))?;
        Ok(topology)
    }

    /// Forgets the router's connection tracking entries (between data-path phases, so that each
    /// starts with an empty table).
    pub(crate) fn flush_conntrack(&self) {
        // `conntrack -F` exits 1 with nothing to flush on some versions: not a failure.
        let _ = nsenter(&self.router, &["conntrack", "-F"], None);
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        for netns in [&self.router, &self.client, &self.server] {
            if netns.exists() {
                unmount(netns);
                let _ = std::fs::remove_file(netns);
            }
        }
    }
}

/// Unmounts the namespaces a crashed run left under the temporary directory.
pub(crate) fn remove_leftovers() {
    let root = std::env::temp_dir().join(format!("st-{PREFIX}-"));
    let root = root.display().to_string();
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    for mount_point in mounts
        .lines()
        .filter_map(|l| l.split_whitespace().nth(4))
        .filter(|p| p.starts_with(&root))
    {
        eprintln!("unmounting {mount_point}, which an earlier run left");
        unmount(Path::new(mount_point));
    }
}
