//! Tests of the fake Neutron: the shared setup and the implicit `default` security group here,
//! the rest by topic in the submodules.

mod deletion;
mod filters;
mod ports;
mod routers;
mod security;

use std::net::IpAddr;
use std::sync::Arc;

use stackube_model::{NetworkId, PortId, ProjectId, RouterId, SecurityGroupId, SubnetId};

use crate::error::ErrorKind;
use crate::fake::FakeCloud;
use crate::identity::NewProject;
use crate::network::*;
use crate::observe::Service;

/// A cloud with one tenant project, and Neutron.
struct Env {
    cloud: FakeCloud,
    net: Arc<dyn Networking>,
    project: ProjectId,
}

async fn env() -> Env {
    let cloud = FakeCloud::new();
    let project = cloud
        .identity()
        .create_project(&NewProject {
            name: "tenant".into(),
            ..NewProject::default()
        })
        .await
        .unwrap()
        .id;
    Env {
        net: cloud.networking(),
        cloud,
        project,
    }
}

impl Env {
    /// A network of the tenant with one IPv4 subnet.
    async fn network(&self, name: &str, cidr: &str) -> (Network, Subnet) {
        let network = self
            .net
            .create_network(&NewNetwork {
                name: name.into(),
                project_id: Some(self.project.clone()),
                tags: vec!["stackube".into(), format!("net={name}")],
                ..NewNetwork::default()
            })
            .await
            .unwrap();
        let subnet = self
            .net
            .create_subnet(&NewSubnet {
                project_id: Some(self.project.clone()),
                ..NewSubnet::ipv4(network.id.clone(), format!("{name}-subnet"), cidr)
            })
            .await
            .unwrap();
        (network, subnet)
    }

    async fn port(&self, network: &NetworkId, name: &str) -> Port {
        self.net
            .create_port(&NewPort {
                project_id: Some(self.project.clone()),
                device_owner: Some("compute:kubestack".into()),
                device_id: Some(format!("container-{name}")),
                ..NewPort::new(network.clone(), name)
            })
            .await
            .unwrap()
    }

    async fn router(&self, name: &str) -> Router {
        self.net
            .create_router(&NewRouter {
                name: name.into(),
                project_id: Some(self.project.clone()),
                ..NewRouter::default()
            })
            .await
            .unwrap()
    }

    fn default_group(&self, project: &ProjectId) -> Option<SecurityGroup> {
        self.cloud
            .state()
            .security_groups
            .values()
            .find(|g| g.name == "default" && g.project_id.as_ref() == Some(project))
            .cloned()
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// A rule's shape, without its id.
type Shape = (Direction, Ethertype, Option<SecurityGroupId>);

fn shapes(rules: &[SecurityGroupRule]) -> Vec<Shape> {
    let mut shapes: Vec<Shape> = rules
        .iter()
        .map(|r| {
            assert_eq!(r.protocol, None);
            assert_eq!(r.remote_ip_prefix, None);
            assert_eq!((r.port_range_min, r.port_range_max), (None, None));
            (r.direction, r.ethertype, r.remote_group_id.clone())
        })
        .collect();
    shapes.sort_by_key(|(d, e, _)| (*d == Direction::Ingress, *e == Ethertype::IPv6));
    shapes
}

#[tokio::test]
async fn the_first_network_of_a_project_creates_its_default_group_exactly_once() {
    let env = env().await;
    assert!(env.default_group(&env.project).is_none());
    let (network, subnet) = env.network("a", "10.0.0.0/24").await;
    let group = env.default_group(&env.project).expect("default group");
    assert_eq!(group.description, "Default security group");
    assert!(group.tags.is_empty());
    let me = Some(group.id.clone());
    assert_eq!(
        shapes(&group.rules),
        vec![
            (Direction::Egress, Ethertype::IPv4, None),
            (Direction::Egress, Ethertype::IPv6, None),
            (Direction::Ingress, Ethertype::IPv4, me.clone()),
            (Direction::Ingress, Ethertype::IPv6, me),
        ]
    );
    assert!(
        group
            .rules
            .iter()
            .all(|r| r.security_group_id == group.id && r.project_id.as_ref() == Some(&env.project))
    );
    let listed = env
        .net
        .list_security_group_rules(&SecurityGroupRuleFilter {
            security_group_id: Some(group.id.clone()),
            ..SecurityGroupRuleFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(listed, group.rules);

    env.network("b", "10.0.1.0/24").await;
    let port = env.port(&network.id, "p").await;
    assert_eq!(port.security_group_ids, vec![group.id.clone()]);
    let defaults = env
        .net
        .list_security_groups(&SecurityGroupFilter {
            name: Some("default".into()),
            ..SecurityGroupFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(defaults.len(), 1, "one default group per project");

    // Tearing the tenant's network down leaves the default group behind (the leak).
    env.net.delete_port(&port.id).await.unwrap();
    env.net.delete_subnet(&subnet.id).await.unwrap();
    let networks = env
        .net
        .list_networks(&NetworkFilter {
            project_id: Some(env.project.clone()),
            ..NetworkFilter::default()
        })
        .await
        .unwrap();
    for n in networks {
        env.net.delete_network(&n.id).await.unwrap();
    }
    assert_eq!(
        env.cloud.state().project_resources(&env.project),
        vec![format!("security_group {}", group.id)]
    );
}

#[tokio::test]
async fn ports_and_groups_create_the_default_group_too_but_neutrons_own_ports_do_not() {
    let env = env().await;
    let admin = env.cloud.admin_project();
    // An operator's external network, made in the admin project.
    let (ext, _) = env
        .cloud
        .state()
        .add_external_network("public", "172.24.4.0/24");
    let admin_default = env.default_group(&admin).expect("admin's default group");

    // A port created without a project is the admin project's, with its default group.
    let port = env
        .net
        .create_port(&NewPort::new(ext.clone(), "admin-port"))
        .await
        .unwrap();
    assert_eq!(port.project_id.as_ref(), Some(&admin));
    assert_eq!(port.security_group_ids, vec![admin_default.id.clone()]);

    // Neutron's own ports neither get nor create a default group.
    let other = ProjectId::new("other-project");
    let trusted = env
        .net
        .create_port(&NewPort {
            project_id: Some(other.clone()),
            device_owner: Some("network:dhcp".into()),
            ..NewPort::new(ext.clone(), "dhcp")
        })
        .await
        .unwrap();
    assert!(trusted.security_group_ids.is_empty());
    let unsecured = env
        .net
        .create_port(&NewPort {
            project_id: Some(other.clone()),
            port_security_enabled: Some(false),
            ..NewPort::new(ext.clone(), "unsecured")
        })
        .await
        .unwrap();
    assert!(unsecured.security_group_ids.is_empty());
    assert!(env.default_group(&other).is_none());

    // An ordinary port does.
    let port = env
        .net
        .create_port(&NewPort {
            project_id: Some(other.clone()),
            ..NewPort::new(ext.clone(), "vm")
        })
        .await
        .unwrap();
    let default = env.default_group(&other).expect("created by the port");
    assert_eq!(port.security_group_ids, vec![default.id]);

    // So does a new group, which itself gets only the two egress rules.
    let group = env
        .net
        .create_security_group(&NewSecurityGroup {
            name: "pods".into(),
            project_id: Some(env.project.clone()),
            ..NewSecurityGroup::default()
        })
        .await
        .unwrap();
    assert!(env.default_group(&env.project).is_some());
    assert_eq!(
        shapes(&group.rules),
        vec![
            (Direction::Egress, Ethertype::IPv4, None),
            (Direction::Egress, Ethertype::IPv6, None),
        ]
    );
    let err = env
        .net
        .create_security_group(&NewSecurityGroup {
            name: "default".into(),
            ..NewSecurityGroup::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict);
}
