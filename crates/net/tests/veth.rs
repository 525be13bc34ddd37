//! Pod interfaces on the real kernel: a network namespace made for the test (as root, which the
//! project's machines are), a veth created into it, configured, inspected and deleted.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::Command;

use stackube_net::netns;
use stackube_net::veth::{self, PodLink};

/// A named network namespace, deleted on drop.
struct Netns(String);

impl Netns {
    fn new(name: &str) -> Netns {
        let status = Command::new("ip")
            .args(["netns", "add", name])
            .status()
            .expect("ip runs");
        assert!(status.success(), "ip netns add {name}");
        Netns(name.to_owned())
    }

    fn path(&self) -> PathBuf {
        PathBuf::from(format!("/var/run/netns/{}", self.0))
    }

    fn ip(&self, args: &[&str]) -> String {
        let out = Command::new("ip")
            .arg("-n")
            .arg(&self.0)
            .args(args)
            .output()
            .expect("ip runs");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

#[tokio::test]
async fn a_pod_link_is_created_configured_inspected_and_deleted() {
    let suffix = std::process::id();
    let ns = Netns::new(&format!("stackube-veth-{suffix}"));
    let host_name = format!("stv{suffix}");
    let link = PodLink {
        netns: ns.path(),
        if_name: "eth0".into(),
        host_name: host_name.clone(),
        mac: [0xfa, 0x16, 0x3e, 0x12, 0x34, 0x56],
        mtu: 1400,
        address: "10.99.0.5/24".parse().unwrap(),
        gateway: Some(Ipv4Addr::new(10, 99, 0, 1)),
    };
    let host = netns::host_netlink().unwrap();
    veth::create(&host, &link).await.expect("created");

    let state = veth::inspect(&ns.path(), "eth0")
        .await
        .unwrap()
        .expect("eth0 exists");
    assert_eq!(state.mac, Some(link.mac));
    assert_eq!(state.addresses, vec![link.address]);
    assert!(state.up);
    assert!(
        ns.ip(&["route"]).contains("default via 10.99.0.1 dev eth0"),
        "{}",
        ns.ip(&["route"])
    );
    assert!(ns.ip(&["link", "show", "eth0"]).contains("mtu 1400"));
    assert!(ns.ip(&["link", "show", "lo"]).contains("UP"));
    assert!(veth::find(&host, &host_name).await.unwrap().is_some());

    veth::delete(&host, &host_name).await.expect("deleted");
    assert!(veth::find(&host, &host_name).await.unwrap().is_none());
    assert!(
        veth::inspect(&ns.path(), "eth0").await.unwrap().is_none(),
        "the pod end went too"
    );
    veth::delete(&host, &host_name)
        .await
        .expect("deleting again is fine");
}

#[tokio::test]
async fn a_missing_namespace_is_named_and_nothing_is_left() {
    let host = netns::host_netlink().unwrap();
    let link = PodLink {
        netns: PathBuf::from("/var/run/netns/stackube-does-not-exist"),
        if_name: "eth0".into(),
        host_name: format!("stx{}", std::process::id()),
        mac: [0xfa, 0x16, 0x3e, 0, 0, 1],
        mtu: 1500,
        address: "10.99.1.5/24".parse().unwrap(),
        gateway: None,
    };
    let err = veth::create(&host, &link).await.unwrap_err();
    assert!(err.to_string().contains("stackube-does-not-exist"), "{err}");
    assert!(veth::find(&host, &link.host_name).await.unwrap().is_none());
}

#[tokio::test]
async fn a_parked_veth_is_adopted_by_a_pod_with_its_mac_and_the_host_end_untouched() {
    let suffix = std::process::id();
    let ns = Netns::new(&format!("stackube-park-{suffix}"));
    let host = netns::host_netlink().unwrap();
    let (host_name, parked) = (format!("sth{suffix}"), format!("stp{suffix}"));
    let mac = [0xfa, 0x16, 0x3e, 0xab, 0xcd, 0xef];
    veth::create_parked(&host, &host_name, &parked, mac, 1450)
        .await
        .expect("parked");
    let host_index = veth::find(&host, &host_name)
        .await
        .unwrap()
        .expect("host end")
        .header
        .index;
    assert!(veth::find(&host, &parked).await.unwrap().is_some());

    let link = PodLink {
        netns: ns.path(),
        if_name: "eth0".into(),
        host_name: host_name.clone(),
        mac,
        mtu: 1450,
        address: "10.99.2.7/24".parse().unwrap(),
        gateway: Some(Ipv4Addr::new(10, 99, 2, 1)),
    };
    veth::adopt_parked(&host, &parked, &link)
        .await
        .expect("adopted");
    assert!(
        veth::find(&host, &parked).await.unwrap().is_none(),
        "the parked end left the host"
    );
    let still = veth::find(&host, &host_name)
        .await
        .unwrap()
        .expect("host end stays");
    assert_eq!(
        still.header.index, host_index,
        "the host end was not recreated"
    );
    let state = veth::inspect(&ns.path(), "eth0")
        .await
        .unwrap()
        .expect("eth0 in the pod");
    assert_eq!(state.mac, Some(mac));
    assert_eq!(state.addresses, vec![link.address]);
    assert!(ns.ip(&["route"]).contains("default via 10.99.2.1"));
    veth::delete(&host, &host_name).await.unwrap();
}
