//! The world both DNS targets answer from: tenant a (its namespace is the view) and tenant b,
//! whose data (10.97/16 cluster IPs, 10.245/16 pods, namespace `b`) must never appear in a
//! reply to a.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::LazyLock;

use hickory_proto::op::Message;
use stackube_core::dns::records::{
    Endpoint, PodRecord, Port, ServiceKind, ServiceRecord, SliceRecord,
};
use stackube_core::dns::{Index, View, Zone};
use stackube_core::proxy::Protocol;
use stackube_model::config::ServiceName;

pub struct World {
    pub index: Index,
    pub view: View,
    pub zone: Zone,
}

pub static WORLD: LazyLock<World> = LazyLock::new(|| {
    let mut index = Index::new();
    let ip = |a: u8, b: u8, c: u8, d: u8| IpAddr::V4(Ipv4Addr::new(a, b, c, d));
    let port = || Port {
        name: "http".into(),
        protocol: Protocol::Tcp,
        port: 80,
    };
    for (ns, svc_net, pod_net) in [("a", 96, 244), ("b", 97, 245)] {
        index.set_service(
            ns,
            "web",
            Some(ServiceRecord {
                kind: ServiceKind::ClusterIp(vec![ip(10, svc_net, 0, 1)].into()),
                ports: vec![port()].into(),
            }),
            1,
        );
        index.set_service(
            ns,
            "headless",
            Some(ServiceRecord {
                kind: ServiceKind::Headless,
                ports: vec![port()].into(),
            }),
            1,
        );
        index.set_slice(
            ns,
            "headless-1",
            Some(SliceRecord {
                service: "headless".into(),
                endpoints: (0..40u8)
                    .map(|i| Endpoint {
                        ip: ip(10, pod_net, 0, i),
                        hostname: (i % 2 == 0).then(|| format!("web-{i}").into()),
                    })
                    .collect(),
                ports: vec![port()].into(),
            }),
            1,
        );
        index.set_service(
            ns,
            "ext",
            Some(ServiceRecord {
                kind: ServiceKind::ExternalName(format!("web.{ns}.svc.cluster.local").into()),
                ports: Box::new([]),
            }),
            1,
        );
        index.set_pod(
            ns,
            "client",
            Some(PodRecord {
                ips: vec![ip(10, pod_net, 1, 1)].into(),
            }),
            1,
        );
    }
    let view = View::new(
        ["a"],
        &[ServiceName {
            namespace: "default".into(),
            name: "kubernetes".into(),
        }],
    );
    let zone = Zone::new("cluster.local", Ipv4Addr::new(10, 96, 0, 10), 5).expect("a zone");
    World { index, view, zone }
});

/// Panics if any record of `message` holds tenant b's data.
pub fn assert_nothing_of_b(message: &Message) {
    for record in message.all_sections() {
        let text = format!("{} {}", record.name, record.data);
        assert!(
            !(text.contains("10.97.")
                || text.contains("10.245.")
                || text.contains(".b.svc")
                || text.contains(".b.pod")),
            "tenant b leaked: {record}"
        );
    }
}
