//! A pod's interface: a veth pair whose pod end is created directly inside the pod's network
//! namespace (named `eth0`, with the Neutron port's MAC, address, default route and MTU) and
//! whose host end goes on the integration bridge.

use std::fs::File;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use futures::TryStreamExt;
use ipnet::Ipv4Net;
use rtnetlink::packet_route::address::AddressAttribute;
use rtnetlink::packet_route::link::{InfoData, InfoKind, InfoVeth, LinkAttribute, LinkMessage};
use rtnetlink::{Handle, LinkMessageBuilder, LinkUnspec, LinkVeth, RouteMessageBuilder};

use crate::{NetError, Result, netns};

/// What a pod's interface is made of.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodLink {
    /// The pod's network namespace.
    pub netns: PathBuf,
    /// The interface name inside it (`CNI_IFNAME`, usually `eth0`).
    pub if_name: String,
    /// The host end's name (at most 15 bytes).
    pub host_name: String,
    /// The Neutron port's MAC.
    pub mac: [u8; 6],
    /// The network's MTU.
    pub mtu: u32,
    /// The port's address, with the subnet's prefix length.
    pub address: Ipv4Net,
    /// The subnet's gateway (the tenant router), the default route.
    pub gateway: Option<Ipv4Addr>,
}

/// What is configured on a pod's interface now (for CNI `CHECK`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodLinkState {
    /// Its MAC.
    pub mac: Option<[u8; 6]>,
    /// Its IPv4 addresses.
    pub addresses: Vec<Ipv4Net>,
    /// Whether it is up.
    pub up: bool,
}

fn netlink(what: impl Into<String>) -> impl FnOnce(rtnetlink::Error) -> NetError {
    let what = what.into();
    move |source| NetError::Netlink { what, source }
}

/// Whether a netlink error means "no such device".
pub fn is_not_found(error: &rtnetlink::Error) -> bool {
    matches!(error, rtnetlink::Error::NetlinkError(m)
        if m.code.is_some_and(|c| c.get() == -nix::libc::ENODEV))
}

/// The link named `name` in `handle`'s namespace, if there is one.
pub async fn find(handle: &Handle, name: &str) -> Result<Option<LinkMessage>> {
    match handle
        .link()
        .get()
        .match_name(name.to_owned())
        .execute()
        .try_next()
        .await
    {
        Ok(link) => Ok(link),
        Err(e) if is_not_found(&e) => Ok(None),
        Err(e) => Err(NetError::Netlink {
            what: format!("looking up link {name}"),
            source: e,
        }),
    }
}

/// Creates the pod's interface: the veth pair (pod end straight into the pod's namespace), the
/// host end up, and inside the pod `lo` and the interface up with the address and the default
/// route. TX checksum offload is turned off on both ends: with Open vSwitch's userspace
/// datapath, TCP segments leaving a veth with partial checksums are dropped.
///
/// On failure, what was created is removed again.
pub async fn create(host: &Handle, link: &PodLink) -> Result<()> {
    let netns_file = File::open(&link.netns).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => NetError::NoNetns(link.netns.display().to_string()),
        _ => NetError::Other(format!("cannot open {}: {e}", link.netns.display())),
    })?;
    let peer = LinkMessageBuilder::<LinkUnspec>::new()
        .name(link.if_name.clone())
        .address(link.mac.to_vec())
        .mtu(link.mtu)
        .setns_by_fd(netns_file.as_raw_fd())
        .build();
    add_veth(
        host,
        &link.host_name,
        link.mtu,
        peer,
        format!(
            "creating veth {} with {} in {}",
            link.host_name,
            link.if_name,
            link.netns.display()
        ),
    )
    .await?;
    drop(netns_file);

    let result = async {
        configure_pod_end(link).await?;
        ethtool_tx_off(None, &link.host_name)?;
        Ok(())
    }
    .await;
    if result.is_err() {
        let _ = delete(host, &link.host_name).await;
    }
    result
}

/// Creates a veth whose host end `host_name` is up with `mtu`, and whose other end is `peer`.
async fn add_veth(
    host: &Handle,
    host_name: &str,
    mtu: u32,
    peer: LinkMessage,
    what: String,
) -> Result<()> {
    let veth = LinkMessageBuilder::<LinkVeth>::new_with_info_kind(InfoKind::Veth)
        .name(host_name.to_owned())
        .mtu(mtu)
        .up()
        .set_info_data(InfoData::Veth(InfoVeth::Peer(peer)))
        .build();
    host.link().add(veth).execute().await.map_err(netlink(what))
}

async fn configure_pod_end(link: &PodLink) -> Result<()> {
    configure_in_pod(link, true).await
}

async fn configure_pod_end_without_offload(link: &PodLink) -> Result<()> {
    configure_in_pod(link, false).await
}

async fn configure_in_pod(link: &PodLink, offload_off: bool) -> Result<()> {
    let link = link.clone();
    let netns = link.netns.clone();
    netns::netlink_in(&netns, move |handle| async move {
        let lo = find(&handle, "lo")
            .await?
            .ok_or_else(|| NetError::Other("the pod's network namespace has no lo".into()))?;
        handle
            .link()
            .set(LinkUnspec::new_with_index(lo.header.index).up().build())
            .execute()
            .await
            .map_err(netlink("setting lo up"))?;
        let eth = find(&handle, &link.if_name).await?.ok_or_else(|| {
            NetError::Other(format!("{} did not appear in the pod", link.if_name))
        })?;
        let index = eth.header.index;
        handle
            .address()
            .add(
                index,
                IpAddr::V4(link.address.addr()),
                link.address.prefix_len(),
            )
            .execute()
            .await
            .map_err(netlink(format!(
                "adding {} to {}",
                link.address, link.if_name
            )))?;
        handle
            .link()
            .set(LinkUnspec::new_with_index(index).up().build())
            .execute()
            .await
            .map_err(netlink(format!("setting {} up", link.if_name)))?;
        if let Some(gateway) = link.gateway {
            let route = RouteMessageBuilder::<Ipv4Addr>::new()
                .output_interface(index)
                .gateway(gateway)
                .build();
            handle
                .route()
                .add(route)
                .execute()
                .await
                .map_err(netlink(format!("adding the default route via {gateway}")))?;
        }
        if offload_off {
            ethtool_tx_off(Some(&link.netns), &link.if_name)?;
        }
        Ok(())
    })
    .await
}

/// `ethtool -K <dev> tx off`, in the calling thread's namespace (`netns` only names it in errors).
fn ethtool_tx_off(netns: Option<&Path>, dev: &str) -> Result<()> {
    let output = std::process::Command::new("ethtool")
        .args(["-K", dev, "tx", "off"])
        .output()
        .map_err(|e| NetError::Command {
            command: format!("ethtool -K {dev} tx off"),
            message: format!("cannot run: {e}"),
        })?;
    if output.status.success() {
        return Ok(());
    }
    Err(NetError::Command {
        command: match netns {
            Some(ns) => format!("ethtool -K {dev} tx off (in {})", ns.display()),
            None => format!("ethtool -K {dev} tx off"),
        },
        message: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
    })
}

/// Creates a *parked* veth pair for a pooled port: both ends in the host's namespace, the host
/// end `host_name` up (it goes on the integration bridge, where Neutron wires it), the other end
/// `parked_name` down, with the port's MAC and the network's MTU, waiting for a pod. TX checksum
/// offload is turned off on both ends now (the setting travels with the device).
pub async fn create_parked(
    host: &Handle,
    host_name: &str,
    parked_name: &str,
    mac: [u8; 6],
    mtu: u32,
) -> Result<()> {
    let peer = LinkMessageBuilder::<LinkUnspec>::new()
        .name(parked_name.to_owned())
        .address(mac.to_vec())
        .mtu(mtu)
        .build();
    add_veth(
        host,
        host_name,
        mtu,
        peer,
        format!("creating parked veth {host_name}/{parked_name}"),
    )
    .await?;
    let result = ethtool_tx_off(None, host_name).and_then(|()| ethtool_tx_off(None, parked_name));
    if result.is_err() {
        let _ = delete(host, host_name).await;
    }
    result
}

/// Moves the parked end `parked_name` into the pod's namespace as `link.if_name` (one netlink
/// request: namespace and name together) and configures it there as [`create`] does. The host
/// end, and so the Neutron port's wiring, is left untouched.
pub async fn adopt_parked(host: &Handle, parked_name: &str, link: &PodLink) -> Result<()> {
    let parked = find(host, parked_name)
        .await?
        .ok_or_else(|| NetError::Other(format!("parked link {parked_name} does not exist")))?;
    let netns_file = File::open(&link.netns).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => NetError::NoNetns(link.netns.display().to_string()),
        _ => NetError::Other(format!("cannot open {}: {e}", link.netns.display())),
    })?;
    host.link()
        .set(
            LinkUnspec::new_with_index(parked.header.index)
                .setns_by_fd(netns_file.as_raw_fd())
                .name(link.if_name.clone())
                .build(),
        )
        .execute()
        .await
        .map_err(netlink(format!(
            "moving {parked_name} into {} as {}",
            link.netns.display(),
            link.if_name
        )))?;
    drop(netns_file);
    configure_pod_end_without_offload(link).await
}

/// Deletes the link `name` (with a veth, both ends); a missing link is fine.
pub async fn delete(handle: &Handle, name: &str) -> Result<()> {
    let Some(link) = find(handle, name).await? else {
        return Ok(());
    };
    match handle.link().del(link.header.index).execute().await {
        Ok(()) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err(NetError::Netlink {
            what: format!("deleting link {name}"),
            source: e,
        }),
    }
}

/// The state of interface `if_name` in the namespace at `netns`; `None` if it does not exist.
pub async fn inspect(netns: &Path, if_name: &str) -> Result<Option<PodLinkState>> {
    let if_name = if_name.to_owned();
    netns::netlink_in(netns, move |handle| async move {
        let Some(link) = find(&handle, &if_name).await? else {
            return Ok(None);
        };
        let mac = link.attributes.iter().find_map(|a| match a {
            LinkAttribute::Address(bytes) if bytes.len() == 6 => {
                let mut mac = [0u8; 6];
                mac.copy_from_slice(bytes);
                Some(mac)
            }
            _ => None,
        });
        let up = link
            .header
            .flags
            .contains(rtnetlink::packet_route::link::LinkFlags::Up);
        let mut addresses = Vec::new();
        let mut stream = handle
            .address()
            .get()
            .set_link_index_filter(link.header.index)
            .execute();
        while let Some(message) = stream
            .try_next()
            .await
            .map_err(netlink(format!("listing the addresses of {if_name}")))?
        {
            for attribute in &message.attributes {
                if let AddressAttribute::Address(IpAddr::V4(ip)) = attribute
                    && let Ok(net) = Ipv4Net::new(*ip, message.header.prefix_len)
                {
                    addresses.push(net);
                }
            }
        }
        Ok(Some(PodLinkState { mac, addresses, up }))
    })
    .await
}

/// Formats a MAC as `fa:16:3e:…`.
pub fn format_mac(mac: &[u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Parses `fa:16:3e:…`.
pub fn parse_mac(text: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = text.split(':');
    for byte in &mut mac {
        *byte = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs_round_trip_and_bad_ones_are_refused() {
        let mac = parse_mac("fa:16:3e:01:ab:ff").unwrap();
        assert_eq!(mac, [0xfa, 0x16, 0x3e, 0x01, 0xab, 0xff]);
        assert_eq!(format_mac(&mac), "fa:16:3e:01:ab:ff");
        for bad in [
            "",
            "fa:16:3e:01:ab",
            "fa:16:3e:01:ab:ff:00",
            "zz:16:3e:01:ab:ff",
        ] {
            assert!(parse_mac(bad).is_none(), "{bad}");
        }
    }
}
