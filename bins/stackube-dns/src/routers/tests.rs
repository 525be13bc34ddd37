//! The routers' lifecycle and their servers, on loopback sockets ([`FakeDnsSockets`]): each
//! socket answers from its own view, routers come and go with their namespaces, a lost
//! address comes back, and external names go to an upstream (a small one in this process)
//! through the cache.

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::sync::RwLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use hickory_proto::op::{Message, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::{A, SOA};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use stackube_core::dns::records::{Endpoint, ServiceKind, ServiceRecord, SliceRecord};
use stackube_core::dns::{Index, Zone};
use stackube_model::config::ServiceName;
use stackube_net::dns::FakeDnsSockets;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpStream, UdpSocket};

use super::*;
use crate::forward::Forwarder;
use crate::metrics::Metrics;
use crate::server::Limits;

const DIR: &str = "/run/netns-test";
const CLUSTER_DNS: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(10, 96, 0, 10), 53);

fn netns(router: &str) -> PathBuf {
    Path::new(DIR).join(format!("qrouter-{router}"))
}

/// Tenants a (`web` 10.96.0.20, `many`: 100 endpoints) and b (`web` 10.96.0.30).
fn index() -> Index {
    let mut index = Index::new();
    let cluster_ip = |ip: [u8; 4]| ServiceRecord {
        kind: ServiceKind::ClusterIp(vec![IpAddr::from(ip)].into()),
        ports: Box::new([]),
    };
    index.set_service("a", "web", Some(cluster_ip([10, 96, 0, 20])), 1);
    index.set_service("b", "web", Some(cluster_ip([10, 96, 0, 30])), 1);
    index.set_service(
        "a",
        "many",
        Some(ServiceRecord {
            kind: ServiceKind::Headless,
            ports: Box::new([]),
        }),
        1,
    );
    index.set_slice(
        "a",
        "many-1",
        Some(SliceRecord {
            service: "many".into(),
            endpoints: (0..100u8)
                .map(|i| Endpoint {
                    ip: IpAddr::V4(Ipv4Addr::new(10, 244, 1, i)),
                    hostname: None,
                })
                .collect(),
            ports: Box::new([]),
        }),
        1,
    );
    index
}

fn view(namespace: &str) -> View {
    let mut view = View::new(
        [namespace],
        &[ServiceName {
            namespace: "default".into(),
            name: "kubernetes".into(),
        }],
    );
    view.networks.insert(format!("{namespace}/{namespace}"));
    view
}

fn routers(sockets: &Arc<FakeDnsSockets>, upstreams: Vec<SocketAddr>) -> Routers {
    let metrics = Metrics::unregistered();
    let shared = Arc::new(Shared {
        index: Arc::new(RwLock::new(index())),
        zone: Zone::new("cluster.local", *CLUSTER_DNS.ip(), 5).expect("a zone"),
        forwarder: Forwarder::new(upstreams, Duration::from_millis(500), 100, metrics.clone()),
        metrics,
        limits: Limits {
            max_inflight: 10,
            max_tcp_connections: 10,
            tcp_idle: Duration::from_secs(2),
        },
    });
    Routers::new(sockets.clone(), DIR.into(), CLUSTER_DNS, shared)
}

fn desired(routers: &[(&str, &str)]) -> BTreeMap<String, View> {
    routers
        .iter()
        .map(|(router, ns)| ((*router).to_owned(), view(ns)))
        .collect()
}

fn query(name: &str, qtype: RecordType) -> Vec<u8> {
    let mut message = Message::query();
    message.metadata.id = 99;
    message.metadata.recursion_desired = true;
    message.add_query(Query::query(Name::from_ascii(name).expect("a name"), qtype));
    message.to_vec().expect("encodes")
}

/// The reply to `name` over UDP from `server`; `None` if none within a second.
async fn ask_udp(server: SocketAddr, name: &str, qtype: RecordType) -> Option<Message> {
    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("a socket");
    socket
        .send_to(&query(name, qtype), server)
        .await
        .expect("sent");
    let mut buffer = vec![0u8; 65_535];
    let (n, _) = tokio::time::timeout(Duration::from_secs(1), socket.recv_from(&mut buffer))
        .await
        .ok()?
        .ok()?;
    Some(Message::from_vec(&buffer[..n]).expect("the reply parses"))
}

async fn ask_tcp(server: SocketAddr, name: &str, qtype: RecordType) -> Message {
    let mut stream = TcpStream::connect(server).await.expect("connected");
    let packet = query(name, qtype);
    let mut framed = (packet.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(&packet);
    stream.write_all(&framed).await.expect("sent");
    let mut length = [0u8; 2];
    stream.read_exact(&mut length).await.expect("a length");
    let mut reply = vec![0u8; usize::from(u16::from_be_bytes(length))];
    stream.read_exact(&mut reply).await.expect("a reply");
    Message::from_vec(&reply).expect("the reply parses")
}

fn addresses(message: &Message) -> Vec<String> {
    message.answers.iter().map(|r| r.data.to_string()).collect()
}

#[tokio::test]
async fn each_routers_sockets_answer_from_its_own_view() {
    let sockets = Arc::new(FakeDnsSockets::default());
    sockets.add_netns(&netns("ra"));
    sockets.add_netns(&netns("rb"));
    let mut routers = routers(&sockets, Vec::new());
    let outcome = routers.sync(&desired(&[("ra", "a"), ("rb", "b")])).await;
    assert_eq!(outcome.opened, ["ra", "rb"]);
    assert!(sockets.has_address(&netns("ra"), *CLUSTER_DNS.ip()));
    let (a_udp, a_tcp) = routers.bound("ra").expect("ra served");
    let (b_udp, _) = routers.bound("rb").expect("rb served");

    let from_a = ask_udp(a_udp, "web.a.svc.cluster.local.", RecordType::A)
        .await
        .expect("a reply");
    assert_eq!(addresses(&from_a), ["10.96.0.20"]);
    let from_b = ask_udp(b_udp, "web.a.svc.cluster.local.", RecordType::A)
        .await
        .expect("a reply");
    assert_eq!(from_b.metadata.response_code, ResponseCode::NXDomain);
    let own_b = ask_udp(b_udp, "web.b.svc.cluster.local.", RecordType::A)
        .await
        .expect("a reply");
    assert_eq!(addresses(&own_b), ["10.96.0.30"]);

    // Too large for UDP: truncated; whole over TCP.
    let udp = ask_udp(a_udp, "many.a.svc.cluster.local.", RecordType::A)
        .await
        .expect("a reply");
    assert!(udp.metadata.truncation && udp.answers.len() < 100);
    let tcp = ask_tcp(a_tcp, "many.a.svc.cluster.local.", RecordType::A).await;
    assert!(!tcp.metadata.truncation);
    assert_eq!(tcp.answers.len(), 100);

    // A view that changes is used at once, on the same sockets.
    routers.sync(&desired(&[("ra", "b"), ("rb", "b")])).await;
    let moved = ask_udp(a_udp, "web.b.svc.cluster.local.", RecordType::A)
        .await
        .expect("a reply");
    assert_eq!(addresses(&moved), ["10.96.0.30"]);
}

#[tokio::test]
async fn routers_come_and_go_with_their_namespaces_and_networks() {
    let sockets = Arc::new(FakeDnsSockets::default());
    let mut routers = routers(&sockets, Vec::new());
    let want = desired(&[("ra", "a"), ("rb", "b")]);

    // Only ra's namespace is on this node: it alone is served, and that is all there is to do.
    sockets.add_netns(&netns("ra"));
    let outcome = routers.sync(&want).await;
    assert_eq!(outcome.opened, ["ra"]);
    assert!(routers.is_ready(&want));

    // rb's appears (the L3 agent scheduled it here).
    sockets.add_netns(&netns("rb"));
    assert!(!routers.is_ready(&want));
    assert_eq!(routers.sync(&want).await.opened, ["rb"]);
    assert!(routers.is_ready(&want));

    // A router that cannot be served is retried, and the node is not ready meanwhile.
    sockets.add_netns(&netns("rc"));
    sockets.fail_open(&netns("rc"), true);
    let with_c = desired(&[("ra", "a"), ("rb", "b"), ("rc", "c")]);
    let outcome = routers.sync(&with_c).await;
    assert_eq!(outcome.failed.len(), 1, "{outcome:?}");
    assert!(!routers.is_ready(&with_c));
    sockets.fail_open(&netns("rc"), false);
    assert_eq!(routers.sync(&with_c).await.opened, ["rc"]);

    // rb's namespace goes: its sockets close.
    let (b_udp, _) = routers.bound("rb").expect("rb served");
    sockets.remove_netns(&netns("rb"));
    assert_eq!(routers.sync(&with_c).await.closed, ["rb"]);
    assert!(
        ask_udp(b_udp, "web.b.svc.cluster.local.", RecordType::A)
            .await
            .is_none()
    );

    // ra's namespace is made again: the new one is served.
    sockets.add_netns(&netns("ra"));
    assert_eq!(routers.sync(&with_c).await.opened, ["ra"]);
    assert_eq!(
        sockets
            .opened()
            .iter()
            .filter(|p| **p == netns("ra"))
            .count(),
        2
    );

    // rc's Network goes: not served, and the address leaves its lo.
    assert!(sockets.has_address(&netns("rc"), *CLUSTER_DNS.ip()));
    let outcome = routers.sync(&desired(&[("ra", "a")])).await;
    assert_eq!(outcome.closed, ["rc"]);
    assert!(!sockets.has_address(&netns("rc"), *CLUSTER_DNS.ip()));
    assert_eq!(routers.served().collect::<Vec<_>>(), ["ra"]);

    routers.close_all().await;
    assert!(!sockets.has_address(&netns("ra"), *CLUSTER_DNS.ip()));
}

#[tokio::test]
async fn an_address_lost_from_lo_is_put_back() {
    let sockets = Arc::new(FakeDnsSockets::default());
    sockets.add_netns(&netns("ra"));
    let mut routers = routers(&sockets, Vec::new());
    routers.sync(&desired(&[("ra", "a")])).await;
    assert_eq!(routers.check_drift().await, 0);
    sockets.drop_address(&netns("ra"), *CLUSTER_DNS.ip());
    assert_eq!(routers.check_drift().await, 1);
    assert!(sockets.has_address(&netns("ra"), *CLUSTER_DNS.ip()));
}

/// A DNS server on loopback: `www.example.com` A 192.0.2.1 (TTL 60), NXDOMAIN with an SOA
/// (TTL 30) for any other name; counts the queries it gets.
struct Upstream {
    addr: SocketAddr,
    queries: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Upstream {
    async fn start() -> Upstream {
        let socket = UdpSocket::bind("127.0.0.1:0").await.expect("a socket");
        let addr = socket.local_addr().expect("an address");
        let queries = Arc::new(AtomicUsize::new(0));
        let counted = queries.clone();
        let task = tokio::spawn(async move {
            let mut buffer = vec![0u8; 4096];
            while let Ok((n, peer)) = socket.recv_from(&mut buffer).await {
                counted.fetch_add(1, Ordering::SeqCst);
                let Ok(request) = Message::from_vec(&buffer[..n]) else {
                    continue;
                };
                let mut reply = Message::response(request.metadata.id, OpCode::Query);
                reply.add_queries(request.queries.clone());
                let name = request.queries[0].name().clone();
                if name.to_ascii() == "www.example.com." {
                    reply.add_answer(Record::from_rdata(
                        name,
                        60,
                        RData::A(A(Ipv4Addr::new(192, 0, 2, 1))),
                    ));
                } else {
                    reply.metadata.response_code = ResponseCode::NXDomain;
                    let soa = SOA::new(
                        Name::from_ascii("ns.example.").expect("a name"),
                        Name::from_ascii("hostmaster.example.").expect("a name"),
                        1,
                        1,
                        1,
                        1,
                        30,
                    );
                    reply.add_authority(Record::from_rdata(
                        Name::from_ascii("example.").expect("a name"),
                        30,
                        RData::SOA(soa),
                    ));
                }
                let _ = socket
                    .send_to(&reply.to_vec().expect("encodes"), peer)
                    .await;
            }
        });
        Upstream {
            addr,
            queries,
            task,
        }
    }

    fn queries(&self) -> usize {
        self.queries.load(Ordering::SeqCst)
    }
}

#[tokio::test]
async fn external_names_go_upstream_through_a_cache_of_each_view() {
    let upstream = Upstream::start().await;
    let sockets = Arc::new(FakeDnsSockets::default());
    sockets.add_netns(&netns("ra"));
    sockets.add_netns(&netns("rb"));
    let mut routers = routers(&sockets, vec![upstream.addr]);
    routers.sync(&desired(&[("ra", "a"), ("rb", "b")])).await;
    let (a_udp, a_tcp) = routers.bound("ra").expect("ra served");
    let (b_udp, _) = routers.bound("rb").expect("rb served");

    let first = ask_udp(a_udp, "www.example.com.", RecordType::A)
        .await
        .expect("a reply");
    assert_eq!(addresses(&first), ["192.0.2.1"]);
    assert!(first.metadata.recursion_available && !first.metadata.authoritative);
    assert_eq!(upstream.queries(), 1);
    let cached = ask_tcp(a_tcp, "WWW.example.com.", RecordType::A).await;
    assert_eq!(addresses(&cached), ["192.0.2.1"]);
    assert_eq!(
        upstream.queries(),
        1,
        "the second answer came from the cache"
    );
    let other_view = ask_udp(b_udp, "www.example.com.", RecordType::A)
        .await
        .expect("a reply");
    assert_eq!(addresses(&other_view), ["192.0.2.1"]);
    assert_eq!(
        upstream.queries(),
        2,
        "another tenant does not share a's cache"
    );

    // Negative answers are cached too (RFC 2308).
    for _ in 0..2 {
        let missing = ask_udp(a_udp, "nowhere.example.", RecordType::A)
            .await
            .expect("a reply");
        assert_eq!(missing.metadata.response_code, ResponseCode::NXDomain);
    }
    assert_eq!(upstream.queries(), 3);

    // No upstream: a clear SERVFAIL, at once (the port is closed).
    upstream.task.abort();
    let _ = upstream.task.await;
    let unanswered = ask_udp(a_udp, "new.example.", RecordType::A)
        .await
        .expect("a reply");
    assert_eq!(unanswered.metadata.response_code, ResponseCode::ServFail);
    // What the cache holds still answers.
    let still = ask_udp(a_udp, "www.example.com.", RecordType::A)
        .await
        .expect("a reply");
    assert_eq!(addresses(&still), ["192.0.2.1"]);
}
