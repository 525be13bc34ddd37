//! The objects both proxies program, made by the benchmark through the API: a tenant's namespace,
//! its `Network` (whose status the benchmark writes itself: Active, with made-up Neutron ids, so
//! no controller is needed), and N Services (ClusterIP, no selector, TCP 80) each with one
//! EndpointSlice of [`ENDPOINTS`] ready endpoints on port 8080.
//!
//! Service 0 is the data path's: its endpoints are the server's addresses in every run's topology
//! ([`crate::topology::server_addresses`]); it is never changed. The others' endpoints are
//! addresses nothing answers on (`10.128.0.0/10`), and a change gives one of them a new first
//! endpoint (`10.192.0.0/10`, never used twice), so that the new address names the change in
//! the kernel's nftables notifications.
//!
//! # Guarantees
//! - Everything lives in one namespace named `st-bench-proxy-…`, deleted at the end whatever
//!   happened (its Services and EndpointSlices first, many at a time: the namespace controller
//!   would delete 10,000 Services at its client's 20 requests per second); an earlier run's
//!   namespaces are deleted at the start.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use futures::{StreamExt as _, TryStreamExt as _};
use k8s_openapi::api::core::v1::{Namespace, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Api;
use kube::api::{DeleteParams, ObjectMeta, Patch, PatchParams, PostParams};
use rand::Rng as _;
use serde_json::json;
use stackube_model::crd::{Network, NetworkSpec, TENANT_LABEL};

use crate::PREFIX;

/// Ready endpoints per Service.
pub(crate) const ENDPOINTS: usize = 10;
/// Requests in flight while objects are made or deleted: what the apiserver here takes without
/// slowing down (its admin user is exempt from priority and fairness).
const CONCURRENCY: usize = 16;
/// Port of the Services, and of their endpoints.
pub(crate) const SERVICE_PORT: u16 = 80;
pub(crate) const ENDPOINT_PORT: u16 = 8080;
/// Who manages the benchmark's EndpointSlices (not the EndpointSlice controller).
const MANAGED_BY: &str = "stackube-bench";
/// The longest the namespace may take to go.
const DELETION_BOUND: Duration = Duration::from_secs(900);

/// The benchmark's objects, as they are now.
pub(crate) struct Objects {
    client: kube::Client,
    /// The tenant's namespace (and its Network's name).
    pub(crate) namespace: String,
    /// The made-up router id of its Network: stackube-proxy programs `qrouter-<id>`.
    pub(crate) router_id: String,
    /// ClusterIP of each Service, by index.
    cluster_ips: BTreeMap<usize, Ipv4Addr>,
    /// Changes made so far (each one's address is new).
    changes: u32,
}

fn name(index: usize) -> String {
    format!("svc-{index:05}")
}

fn made_up_uuid() -> String {
    let hex: String = {
        let mut rng = rand::rng();
        (0..32)
            .map(|_| char::from_digit(rng.random_range(0..16), 16).expect("a hex digit"))
            .collect()
    };
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// Endpoint `slot` of Service `index` as first made.
fn endpoint(index: usize, slot: usize) -> Ipv4Addr {
    if index == 0 {
        return crate::topology::server_addresses()[slot];
    }
    let offset = u32::try_from(index * 16 + slot).expect("fewer than 2^28 endpoints");
    Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 128, 0, 0)) + offset)
}

/// The address change `n` (from 1) gives an endpoint.
fn changed(n: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 192, 0, 0)) + n)
}

fn slice(index: usize, addresses: &[Ipv4Addr]) -> serde_json::Value {
    json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": name(index), "labels": {
            "kubernetes.io/service-name": name(index),
            "endpointslice.kubernetes.io/managed-by": MANAGED_BY,
        }},
        "addressType": "IPv4",
        "ports": [{"port": ENDPOINT_PORT, "protocol": "TCP"}],
        "endpoints": endpoints_json(addresses),
    })
}

fn endpoints_json(addresses: &[Ipv4Addr]) -> serde_json::Value {
    addresses
        .iter()
        .map(|a| json!({"addresses": [a.to_string()], "conditions": {"ready": true}}))
        .collect()
}

impl Objects {
    /// Makes the namespace, labelled as tenant `namespace`'s, and its Active Network.
    pub(crate) async fn create(client: kube::Client, namespace: String) -> anyhow::Result<Objects> {
        let namespaces: Api<Namespace> = Api::all(client.clone());
        let ns = Namespace {
            metadata: ObjectMeta {
                name: Some(namespace.clone()),
                labels: Some([(TENANT_LABEL.to_owned(), namespace.clone())].into()),
                ..Default::default()
            },
            ..Default::default()
        };
        namespaces
            .create(&PostParams::default(), &ns)
            .await
            .with_context(|| format!("creating namespace {namespace}"))?;
        let objects = Objects {
            client: client.clone(),
            namespace: namespace.clone(),
            router_id: made_up_uuid(),
            cluster_ips: BTreeMap::new(),
            changes: 0,
        };
        let networks: Api<Network> = Api::namespaced(client, &namespace);
        let network = Network::new(
            &namespace,
            NetworkSpec {
                cidr: "10.244.0.0/16".into(),
                gateway: "10.244.0.1".into(),
                network_id: None,
            },
        );
        networks
            .create(&PostParams::default(), &network)
            .await
            .context("creating the Network")?;
        let status = json!({"status": {
            "state": "Active",
            "networkID": made_up_uuid(),
            "subnetID": made_up_uuid(),
            "routerID": objects.router_id,
        }});
        networks
            .patch_status(&namespace, &PatchParams::default(), &Patch::Merge(&status))
            .await
            .context("writing the Network's status")?;
        Ok(objects)
    }

    /// Makes or deletes Services (and their slices) until there are `size`; returns how long
    /// that took.
    pub(crate) async fn resize(&mut self, size: usize) -> anyhow::Result<Duration> {
        let started = Instant::now();
        let have = self.cluster_ips.len();
        let services: Api<Service> = Api::namespaced(self.client.clone(), &self.namespace);
        let slices: Api<EndpointSlice> = Api::namespaced(self.client.clone(), &self.namespace);
        if size > have {
            let made: Vec<(usize, Ipv4Addr)> = futures::stream::iter(have..size)
                .map(|index| {
                    let (services, slices) = (services.clone(), slices.clone());
                    async move {
                        let ip = create_one(&services, &slices, index).await?;
                        Ok::<_, anyhow::Error>((index, ip))
                    }
                })
                .buffer_unordered(CONCURRENCY)
                .try_collect()
                .await?;
            self.cluster_ips.extend(made);
        } else {
            let gone: Vec<usize> = self.cluster_ips.range(size..).map(|(i, _)| *i).collect();
            futures::stream::iter(gone.iter().copied())
                .map(|index| {
                    let (services, slices) = (services.clone(), slices.clone());
                    async move { delete_one(&services, &slices, index).await }
                })
                .buffer_unordered(CONCURRENCY)
                .try_collect::<Vec<()>>()
                .await?;
            for index in gone {
                self.cluster_ips.remove(&index);
            }
        }
        Ok(started.elapsed())
    }

    /// The ClusterIP of Service `index`.
    pub(crate) fn cluster_ip(&self, index: usize) -> Ipv4Addr {
        self.cluster_ips[&index]
    }

    /// Every Service's ClusterIP.
    pub(crate) fn cluster_ips(&self) -> Vec<Ipv4Addr> {
        self.cluster_ips.values().copied().collect()
    }

    /// Gives Service `index` (not 0) a new first endpoint: returns the new address and when the
    /// request started.
    pub(crate) async fn change(&mut self, index: usize) -> anyhow::Result<(Ipv4Addr, Instant)> {
        assert_ne!(index, 0, "the data path's Service is never changed");
        self.changes += 1;
        let address = changed(self.changes);
        let mut addresses: Vec<Ipv4Addr> = (0..ENDPOINTS).map(|s| endpoint(index, s)).collect();
        addresses[0] = address;
        let patch = json!({"endpoints": endpoints_json(&addresses)});
        let slices: Api<EndpointSlice> = Api::namespaced(self.client.clone(), &self.namespace);
        let started = Instant::now();
        slices
            .patch(&name(index), &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .with_context(|| format!("changing EndpointSlice {}", name(index)))?;
        Ok((address, started))
    }

    /// Deletes everything (see the module's guarantees).
    pub(crate) async fn delete(&mut self) -> anyhow::Result<()> {
        let emptied = self.resize(0).await;
        let namespaces: Api<Namespace> = Api::all(self.client.clone());
        delete_namespace(&namespaces, &self.namespace).await?;
        emptied.map(|_| ())
    }
}

async fn create_one(
    services: &Api<Service>,
    slices: &Api<EndpointSlice>,
    index: usize,
) -> anyhow::Result<Ipv4Addr> {
    let service: Service = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": name(index)},
        "spec": {"type": "ClusterIP", "ports": [{
            "port": SERVICE_PORT, "protocol": "TCP", "targetPort": ENDPOINT_PORT,
        }]},
    }))?;
    let made = services
        .create(&PostParams::default(), &service)
        .await
        .with_context(|| format!("creating Service {}", name(index)))?;
    let ip = made
        .spec
        .and_then(|s| s.cluster_ip)
        .and_then(|ip| ip.parse::<Ipv4Addr>().ok())
        .with_context(|| format!("Service {} has no IPv4 ClusterIP", name(index)))?;
    let addresses: Vec<Ipv4Addr> = (0..ENDPOINTS).map(|s| endpoint(index, s)).collect();
    slices
        .create(
            &PostParams::default(),
            &serde_json::from_value(slice(index, &addresses))?,
        )
        .await
        .with_context(|| format!("creating EndpointSlice {}", name(index)))?;
    Ok(ip)
}

async fn delete_one(
    services: &Api<Service>,
    slices: &Api<EndpointSlice>,
    index: usize,
) -> anyhow::Result<()> {
    let gone = |e: &kube::Error| matches!(e, kube::Error::Api(s) if s.code == 404);
    for result in [
        services
            .delete(&name(index), &DeleteParams::default())
            .await
            .map(|_| ()),
        slices
            .delete(&name(index), &DeleteParams::default())
            .await
            .map(|_| ()),
    ] {
        match result {
            Err(e) if !gone(&e) => {
                return Err(e).with_context(|| format!("deleting {}", name(index)));
            }
            _ => {}
        }
    }
    Ok(())
}

/// Deletes namespace `name` and waits until it is gone.
async fn delete_namespace(namespaces: &Api<Namespace>, name: &str) -> anyhow::Result<()> {
    match namespaces.delete(name, &DeleteParams::default()).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 404 => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("deleting namespace {name}")),
    }
    let started = Instant::now();
    while namespaces.get_opt(name).await?.is_some() {
        if started.elapsed() > DELETION_BOUND {
            bail!("namespace {name} is still there {DELETION_BOUND:?} after its deletion");
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    Ok(())
}

/// Deletes the namespaces an earlier run left (their Services first, as [`Objects::delete`]).
pub(crate) async fn remove_leftovers(client: &kube::Client) -> anyhow::Result<()> {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let prefix = format!("st-{PREFIX}-");
    for ns in namespaces.list(&Default::default()).await?.items {
        let Some(name) = ns.metadata.name.filter(|n| n.starts_with(&prefix)) else {
            continue;
        };
        eprintln!("deleting namespace {name}, which an earlier run left");
        let services: Api<Service> = Api::namespaced(client.clone(), &name);
        let names: Vec<String> = services
            .list(&Default::default())
            .await?
            .items
            .into_iter()
            .filter_map(|s| s.metadata.name)
            .collect();
        futures::stream::iter(names)
            .map(|n| {
                let services = services.clone();
                async move {
                    services
                        .delete(&n, &DeleteParams::default())
                        .await
                        .map(|_| ())
                }
            })
            .buffer_unordered(CONCURRENCY)
            .collect::<Vec<_>>()
            .await;
        let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), &name);
        slices
            .delete_collection(&DeleteParams::default(), &Default::default())
            .await?;
        delete_namespace(&namespaces, &name).await?;
    }
    Ok(())
}
