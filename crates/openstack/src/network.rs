//! Neutron: networks, subnets, routers, ports, security groups, floating IPs and their tags.
//!
//! Every resource type here carries Neutron tags. Stackube marks what it creates with tags (the
//! owning tenant, the Kubernetes object) and finds it again by listing with a tag filter, so the
//! creation methods take the tags with the rest of the request; see [`Networking::create_network`]
//! for when they become visible.

use std::net::IpAddr;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use stackube_model::{
    FloatingIpId, NetworkId, PortId, ProjectId, RouterId, SecurityGroupId, SecurityGroupRuleId,
    SubnetId,
};

use crate::error::Result;

/// A Neutron network.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Network {
    /// Network id.
    pub id: NetworkId,
    /// Name (not unique).
    #[serde(default, deserialize_with = "crate::serde_util::nullable")]
    pub name: String,
    /// Free-form description; empty when there is none (Neutron may send `null`).
    #[serde(default, deserialize_with = "crate::serde_util::nullable")]
    pub description: String,
    /// Owning project.
    #[serde(default)]
    pub project_id: Option<ProjectId>,
    /// `ACTIVE`, `DOWN`, `BUILD` or `ERROR`.
    #[serde(default, deserialize_with = "crate::serde_util::nullable")]
    pub status: String,
    /// Administrative state.
    #[serde(default, deserialize_with = "crate::serde_util::nullable")]
    pub admin_state_up: bool,
    /// Whether other projects may use it.
    #[serde(default, deserialize_with = "crate::serde_util::nullable")]
    pub shared: bool,
    /// Whether it is an external network routers can gateway to.
    #[serde(
        rename = "router:external",
        default,
        deserialize_with = "crate::serde_util::nullable"
    )]
    pub external: bool,
    /// MTU.
    #[serde(default)]
    pub mtu: Option<u32>,
    /// Ids of its subnets.
    #[serde(default, deserialize_with = "crate::serde_util::nullable")]
    pub subnets: Vec<SubnetId>,
    /// Neutron tags.
    #[serde(default, deserialize_with = "crate::serde_util::nullable")]
    pub tags: Vec<String>,
    /// Segmentation type (`vxlan`, `vlan`, `flat`); admin only.
    #[serde(rename = "provider:network_type", default)]
    pub network_type: Option<String>,
    /// Segmentation id (VNI or VLAN id); admin only.
    #[serde(rename = "provider:segmentation_id", default)]
    pub segmentation_id: Option<u32>,
}

/// Provider attributes of a network to create (admin only).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ProviderNetwork {
    /// `flat`, `vlan`, `vxlan`, ...
    #[serde(rename = "provider:network_type")]
    pub network_type: String,
    /// Physical network name for `flat` and `vlan`.
    #[serde(
        rename = "provider:physical_network",
        skip_serializing_if = "Option::is_none"
    )]
    pub physical_network: Option<String>,
    /// VLAN id or VNI; `None` lets Neutron allocate one.
    #[serde(
        rename = "provider:segmentation_id",
        skip_serializing_if = "Option::is_none"
    )]
    pub segmentation_id: Option<u32>,
}

/// A network to create.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct NewNetwork {
    /// Name.
    pub name: String,
    /// Owning project; `None` is the caller's project.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project_id: Option<ProjectId>,
    /// Free-form description. It is part of the creation request, so unlike tags on a Neutron
    /// without tag-creation it is there from the moment the resource exists.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Administrative state; `None` is up.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin_state_up: Option<bool>,
    /// MTU; `None` lets Neutron pick.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    /// Default for its ports' port security.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port_security_enabled: Option<bool>,
    /// Whether other projects may use it (admin only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shared: Option<bool>,
    /// Whether it is external (admin only).
    #[serde(rename = "router:external", skip_serializing_if = "Option::is_none")]
    pub external: Option<bool>,
    /// Provider attributes (admin only).
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub provider: Option<ProviderNetwork>,
    /// Neutron tags.
    #[serde(skip)]
    pub tags: Vec<String>,
}

/// Filters for [`Networking::list_networks`]; unset fields do not filter.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NetworkFilter {
    /// Exact name.
    pub name: Option<String>,
    /// Owning project.
    pub project_id: Option<ProjectId>,
    /// Networks carrying all of these tags (Neutron's `tags=a,b`).
    pub tags: Vec<String>,
    /// Networks carrying at least one of these tags (Neutron's `tags-any=a,b`); combined with
    /// the other fields, including `tags`, by "and".
    pub tags_any: Vec<String>,
    /// Only external (or only internal) networks.
    pub external: Option<bool>,
}

/// An address range a subnet allocates from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllocationPool {
    /// First address.
    pub start: IpAddr,
    /// Last address.
    pub end: IpAddr,
}

/// A Neutron subnet.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subnet {
    /// Subnet id.
    pub id: SubnetId,
    /// Name.
    #[serde(default, deserialize_with = "crate::serde_util::nullable")]
    pub name: String,
    /// Free-form description; empty when there is none (Neutron may send `null`).
    #[serde(default, deserialize_with = "crate::serde_util::nullable")]
    pub description: String,
    /// Its network.
    pub network_id: NetworkId,
    /// Owning project.
    #[serde(default)]
    pub project_id: Option<ProjectId>,
    /// CIDR, e.g. `10.10.0.0/24`.
    pub cidr: String,
    /// 4 or 6.
    pub ip_version: u8,
    /// Gateway address; `None` when the subnet has no gateway.
    #[serde(default)]
    pub gateway_ip: Option<IpAddr>,
    /// Whether Neutron serves DHCP on it.
    #[serde(default, deserialize_with = "crate::serde_util::nullable")]
    pub enable_dhcp: bool,
    /// DNS servers handed out by DHCP.
    #[serde(default, deserialize_with = "crate::serde_util::nullable")]
    pub dns_nameservers: Vec<String>,
    /// Address ranges Neutron allocates from.
    #[serde(default, deserialize_with = "crate::serde_util::nullable")]
    pub allocation_pools: Vec<AllocationPool>,
    /// Neutron tags.
    #[serde(default, deserialize_with = "crate::serde_util::nullable")]
    pub tags: Vec<String>,
}

/// The gateway of a subnet to create.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum SubnetGateway {
    /// Neutron's choice: the first address of the CIDR.
    #[default]
    Default,
    /// This address.
    Ip(IpAddr),
    /// No gateway.
    None,
}

/// A subnet to create.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NewSubnet {
    /// Its network.
    pub network_id: NetworkId,
    /// Name.
    pub name: String,
    /// Free-form description. It is part of the creation request, so unlike tags on a Neutron
    /// without tag-creation it is there from the moment the resource exists.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// CIDR, e.g. `10.10.0.0/24`.
    pub cidr: String,
    /// 4 or 6.
    pub ip_version: u8,
    /// Gateway.
    #[serde(skip)]
    pub gateway: SubnetGateway,
    /// Whether Neutron serves DHCP; `None` is Neutron's default (yes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enable_dhcp: Option<bool>,
    /// DNS servers handed out by DHCP.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dns_nameservers: Vec<String>,
    /// Address ranges to allocate from; empty is the whole CIDR minus the gateway.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub allocation_pools: Vec<AllocationPool>,
    /// Owning project; `None` is the caller's project.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project_id: Option<ProjectId>,
    /// Neutron tags.
    #[serde(skip)]
    pub tags: Vec<String>,
}

impl NewSubnet {
    /// An IPv4 subnet with Neutron's defaults.
    pub fn ipv4(network_id: NetworkId, name: impl Into<String>, cidr: impl Into<String>) -> Self {
        NewSubnet {
            network_id,
            name: name.into(),
            description: None,
            cidr: cidr.into(),
            ip_version: 4,
            gateway: SubnetGateway::Default,
            enable_dhcp: None,
            dns_nameservers: Vec::new(),
            allocation_pools: Vec::new(),
            project_id: None,
            tags: Vec::new(),
        }
    }
}

/// Filters for [`Networking::list_subnets`]; unset fields do not filter.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SubnetFilter {
    /// Exact name.
    pub name: Option<String>,
    /// Subnets of this network.
    pub network_id: Option<NetworkId>,
    /// Owning project.
    pub project_id: Option<ProjectId>,
    /// Subnets carrying all of these tags (Neutron's `tags=a,b`).
    pub tags: Vec<String>,
    /// Subnets carrying at least one of these tags (Neutron's `tags-any=a,b`); combined with
    /// the other fields, including `tags`, by "and".
    pub tags_any: Vec<String>,
}

/// A fixed IP of a port (or of a router gateway).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FixedIp {
    /// The subnet the address is from.
    pub subnet_id: SubnetId,
    /// The address.
    pub ip_address: IpAddr,
}

/// A fixed IP to ask for: a subnet, an address, or both.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct FixedIpRequest {
    /// Allocate from this subnet.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subnet_id: Option<SubnetId>,
    /// This exact address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip_address: Option<IpAddr>,
}

/// A router's gateway to an external network, as Neutron reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExternalGatewayInfo {
    /// The external network.
    pub network_id: NetworkId,
    /// Whether the router SNATs outgoing traffic.
    #[serde(default, deserialize_with = "crate::serde_util::nullable")]
    pub enable_snat: bool,
    /// The router's addresses on the external network.
    #[serde(default, deserialize_with = "crate::serde_util::nullable")]
    pub external_fixed_ips: Vec<FixedIp>,
}

/// A gateway to set on a router.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ExternalGateway {
    /// The external network.
    pub network_id: NetworkId,
    /// Whether to SNAT outgoing traffic; `None` is Neutron's default (yes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enable_snat: Option<bool>,
    /// Specific external addresses; empty lets Neutron pick.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub external_fixed_ips: Vec<FixedIpRequest>,
}

impl ExternalGateway {
    /// A gateway to `network_id` with Neutron's defaults.
    pub fn to(network_id: NetworkId) -> Self {
        ExternalGateway {
            network_id,
            enable_snat: None,
            external_fixed_ips: Vec::new(),
        }
    }
}

/// A Neutron router.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Router {
    /// Router id.
    pub id: RouterId,
    /// Name.
    #[serde(default, deserialize_with = "crate::serde_util::nullable")]
    pub name: String,
    /// Free-form description; empty when there is none (Neutron may send `null`).
    #[serde(default, deserialize_with = "crate::serde_util::nullable")]
    pub description: String,
    /// Owning project.
    #[serde(default)]
    pub project_id: Option<ProjectId>,
    /// `ACTIVE`, `DOWN`, ...
    #[serde(default, deserialize_with = "crate::serde_util::nullable")]
    pub status: String,
    /// Administrative state.
    #[serde(default, deserialize_with = "crate::serde_util::nullable")]
    pub admin_state_up: bool,
    /// Its external gateway, if set.
    #[serde(default)]
    pub external_gateway_info: Option<ExternalGatewayInfo>,
    /// Neutron tags.
    #[serde(default, deserialize_with = "crate::serde_util::nullable")]
    pub tags: Vec<String>,
}

/// A router to create.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct NewRouter {
    /// Name.
    pub name: String,
    /// Free-form description. It is part of the creation request, so unlike tags on a Neutron
    /// without tag-creation it is there from the moment the resource exists.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Owning project; `None` is the caller's project.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project_id: Option<ProjectId>,
    /// Gateway to set at creation.
    #[serde(
        rename = "external_gateway_info",
        skip_serializing_if = "Option::is_none"
    )]
    pub external_gateway: Option<ExternalGateway>,
    /// Administrative state; `None` is up.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin_state_up: Option<bool>,
    /// Neutron tags.
    #[serde(skip)]
    pub tags: Vec<String>,
}

/// Filters for [`Networking::list_routers`]; unset fields do not filter.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RouterFilter {
    /// Exact name.
    pub name: Option<String>,
    /// Owning project.
    pub project_id: Option<ProjectId>,
    /// Routers carrying all of these tags (Neutron's `tags=a,b`).
    pub tags: Vec<String>,
    /// Routers carrying at least one of these tags (Neutron's `tags-any=a,b`); combined with
    /// the other fields, including `tags`, by "and".
    pub tags_any: Vec<String>,
}

/// A router's interface on a subnet.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouterInterface {
    /// The router.
    #[serde(rename = "id")]
    pub router_id: RouterId,
    /// The subnet.
    pub subnet_id: SubnetId,
    /// The router's port on the subnet (device_owner `network:router_interface`).
    pub port_id: PortId,
}

/// A Neutron port.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Port {
    /// Port id.
    pub id: PortId,
    /// Name.
    #[serde(default, deserialize_with = "crate::serde_util::nullable")]
    pub name: String,
    /// Free-form description; empty when there is none (Neutron may send `null`).
    #[serde(default, deserialize_with = "crate::serde_util::nullable")]
    pub description: String,
    /// Its network.
    pub network_id: NetworkId,
    /// Owning project.
    #[serde(default)]
    pub project_id: Option<ProjectId>,
    /// MAC address.
    pub mac_address: String,
    /// Its addresses.
    #[serde(default, deserialize_with = "crate::serde_util::nullable")]
    pub fixed_ips: Vec<FixedIp>,
    /// `ACTIVE`, `DOWN`, `BUILD` or `ERROR`.
    #[serde(default, deserialize_with = "crate::serde_util::nullable")]
    pub status: String,
    /// Administrative state.
    #[serde(default, deserialize_with = "crate::serde_util::nullable")]
    pub admin_state_up: bool,
    /// What uses the port (a pod, a router).
    #[serde(default, deserialize_with = "crate::serde_util::nullable")]
    pub device_id: String,
    /// The kind of user, e.g. `compute:kubernetes` or `network:router_interface`.
    #[serde(default, deserialize_with = "crate::serde_util::nullable")]
    pub device_owner: String,
    /// The host the port is bound to (`binding:host_id`); admin only.
    #[serde(
        rename = "binding:host_id",
        default,
        deserialize_with = "crate::serde_util::nullable"
    )]
    pub binding_host_id: String,
    /// The binding's VIF type (`ovs`, `unbound`, `binding_failed`); admin only.
    #[serde(
        rename = "binding:vif_type",
        default,
        deserialize_with = "crate::serde_util::nullable"
    )]
    pub binding_vif_type: String,
    /// The binding's VNIC type (`normal`); admin only.
    #[serde(
        rename = "binding:vnic_type",
        default,
        deserialize_with = "crate::serde_util::nullable"
    )]
    pub binding_vnic_type: String,
    /// The binding's VIF details (bridge name, ...); admin only.
    #[serde(rename = "binding:vif_details", default)]
    pub binding_vif_details: serde_json::Value,
    /// The binding profile; admin only.
    #[serde(rename = "binding:profile", default)]
    pub binding_profile: serde_json::Value,
    /// Its security groups.
    #[serde(
        rename = "security_groups",
        default,
        deserialize_with = "crate::serde_util::nullable"
    )]
    pub security_group_ids: Vec<SecurityGroupId>,
    /// Whether port security (anti-spoofing, security groups) applies.
    #[serde(default)]
    pub port_security_enabled: Option<bool>,
    /// Neutron tags.
    #[serde(default, deserialize_with = "crate::serde_util::nullable")]
    pub tags: Vec<String>,
}

/// A port to create; start from [`NewPort::new`].
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct NewPort {
    /// Its network.
    pub network_id: NetworkId,
    /// Name.
    pub name: String,
    /// Free-form description. It is part of the creation request, so unlike tags on a Neutron
    /// without tag-creation it is there from the moment the resource exists.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Owning project; `None` is the caller's project.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project_id: Option<ProjectId>,
    /// Addresses to ask for; `None` lets Neutron allocate one from each subnet.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fixed_ips: Option<Vec<FixedIpRequest>>,
    /// MAC address; `None` lets Neutron generate one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mac_address: Option<String>,
    /// What uses the port.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    /// The kind of user.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_owner: Option<String>,
    /// The host to bind the port to (admin only).
    #[serde(rename = "binding:host_id", skip_serializing_if = "Option::is_none")]
    pub binding_host_id: Option<String>,
    /// The VNIC type (admin only); `None` is `normal`.
    #[serde(rename = "binding:vnic_type", skip_serializing_if = "Option::is_none")]
    pub binding_vnic_type: Option<String>,
    /// The binding profile (admin only).
    #[serde(rename = "binding:profile", skip_serializing_if = "Option::is_none")]
    pub binding_profile: Option<serde_json::Value>,
    /// Security groups; `None` is the project's `default` group.
    #[serde(rename = "security_groups", skip_serializing_if = "Option::is_none")]
    pub security_group_ids: Option<Vec<SecurityGroupId>>,
    /// Whether port security applies; `None` follows the network.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port_security_enabled: Option<bool>,
    /// Administrative state; `None` is up.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin_state_up: Option<bool>,
    /// Neutron tags.
    #[serde(skip)]
    pub tags: Vec<String>,
}

impl NewPort {
    /// A port on `network_id` with Neutron's defaults for everything else.
    pub fn new(network_id: NetworkId, name: impl Into<String>) -> Self {
        NewPort {
            network_id,
            name: name.into(),
            description: None,
            project_id: None,
            fixed_ips: None,
            mac_address: None,
            device_id: None,
            device_owner: None,
            binding_host_id: None,
            binding_vnic_type: None,
            binding_profile: None,
            security_group_ids: None,
            port_security_enabled: None,
            admin_state_up: None,
            tags: Vec::new(),
        }
    }
}

/// Changes to a port; `None` fields are left alone.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct PortUpdate {
    /// New name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// New description.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// New device id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    /// New device owner.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_owner: Option<String>,
    /// New binding host; `Some("")` unbinds (the way to repair a `binding_failed` port is to
    /// unbind and bind again).
    #[serde(rename = "binding:host_id", skip_serializing_if = "Option::is_none")]
    pub binding_host_id: Option<String>,
    /// New binding profile.
    #[serde(rename = "binding:profile", skip_serializing_if = "Option::is_none")]
    pub binding_profile: Option<serde_json::Value>,
    /// New security groups.
    #[serde(rename = "security_groups", skip_serializing_if = "Option::is_none")]
    pub security_group_ids: Option<Vec<SecurityGroupId>>,
    /// New administrative state.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin_state_up: Option<bool>,
}

/// Filters for [`Networking::list_ports`]; unset fields do not filter.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PortFilter {
    /// Exact name.
    pub name: Option<String>,
    /// Ports on this network.
    pub network_id: Option<NetworkId>,
    /// Ports of this device.
    pub device_id: Option<String>,
    /// Ports with this device owner.
    pub device_owner: Option<String>,
    /// Ports bound to this host.
    pub binding_host_id: Option<String>,
    /// Owning project.
    pub project_id: Option<ProjectId>,
    /// Ports carrying all of these tags (Neutron's `tags=a,b`).
    pub tags: Vec<String>,
    /// Ports carrying at least one of these tags (Neutron's `tags-any=a,b`); combined with
    /// the other fields, including `tags`, by "and".
    pub tags_any: Vec<String>,
}

/// Traffic direction of a security group rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Into the port.
    Ingress,
    /// Out of the port.
    Egress,
}

/// IP version of a security group rule.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Ethertype {
    /// IPv4.
    #[default]
    IPv4,
    /// IPv6.
    IPv6,
}

/// A Neutron security group rule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecurityGroupRule {
    /// Rule id.
    pub id: SecurityGroupRuleId,
    /// Its group.
    pub security_group_id: SecurityGroupId,
    /// Direction.
    pub direction: Direction,
    /// IP version.
    pub ethertype: Ethertype,
    /// `tcp`, `udp`, `icmp`, a number, or `None` for any.
    #[serde(default)]
    pub protocol: Option<String>,
    /// First port (or ICMP type).
    #[serde(default)]
    pub port_range_min: Option<u16>,
    /// Last port (or ICMP code).
    #[serde(default)]
    pub port_range_max: Option<u16>,
    /// Remote CIDR.
    #[serde(default)]
    pub remote_ip_prefix: Option<String>,
    /// Remote security group.
    #[serde(default)]
    pub remote_group_id: Option<SecurityGroupId>,
    /// Free-form description.
    #[serde(default, deserialize_with = "crate::serde_util::nullable")]
    pub description: String,
    /// Owning project.
    #[serde(default)]
    pub project_id: Option<ProjectId>,
}

/// A security group rule to create.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NewSecurityGroupRule {
    /// Its group.
    pub security_group_id: SecurityGroupId,
    /// Direction.
    pub direction: Direction,
    /// IP version.
    pub ethertype: Ethertype,
    /// `tcp`, `udp`, `icmp`, or `None` for any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    /// First port (or ICMP type).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port_range_min: Option<u16>,
    /// Last port (or ICMP code).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port_range_max: Option<u16>,
    /// Remote CIDR.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote_ip_prefix: Option<String>,
    /// Remote security group.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote_group_id: Option<SecurityGroupId>,
    /// Free-form description.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Owning project; `None` is the caller's project.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project_id: Option<ProjectId>,
}

impl NewSecurityGroupRule {
    /// Whether `rule` is the rule this request would create (same group, direction, ethertype,
    /// protocol, ports and remote).
    pub fn matches(&self, rule: &SecurityGroupRule) -> bool {
        let same_protocol = match (&self.protocol, &rule.protocol) {
            (None, None) => true,
            (Some(a), Some(b)) => a.eq_ignore_ascii_case(b),
            _ => false,
        };
        self.security_group_id == rule.security_group_id
            && self.direction == rule.direction
            && self.ethertype == rule.ethertype
            && same_protocol
            && self.port_range_min == rule.port_range_min
            && self.port_range_max == rule.port_range_max
            && self.remote_ip_prefix == rule.remote_ip_prefix
            && self.remote_group_id == rule.remote_group_id
    }
}

/// Filters for [`Networking::list_security_group_rules`]; unset fields do not filter.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SecurityGroupRuleFilter {
    /// Rules of this group.
    pub security_group_id: Option<SecurityGroupId>,
    /// Rules of this direction.
    pub direction: Option<Direction>,
}

/// A Neutron security group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecurityGroup {
    /// Group id.
    pub id: SecurityGroupId,
    /// Name.
    #[serde(default, deserialize_with = "crate::serde_util::nullable")]
    pub name: String,
    /// Free-form description.
    #[serde(default, deserialize_with = "crate::serde_util::nullable")]
    pub description: String,
    /// Owning project.
    #[serde(default)]
    pub project_id: Option<ProjectId>,
    /// Its rules (Neutron adds two egress rules to every new group).
    #[serde(
        rename = "security_group_rules",
        default,
        deserialize_with = "crate::serde_util::nullable"
    )]
    pub rules: Vec<SecurityGroupRule>,
    /// Neutron tags.
    #[serde(default, deserialize_with = "crate::serde_util::nullable")]
    pub tags: Vec<String>,
}

/// A security group to create.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct NewSecurityGroup {
    /// Name.
    pub name: String,
    /// Free-form description.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Owning project; `None` is the caller's project.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project_id: Option<ProjectId>,
    /// Neutron tags.
    #[serde(skip)]
    pub tags: Vec<String>,
}

/// Filters for [`Networking::list_security_groups`]; unset fields do not filter.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SecurityGroupFilter {
    /// Exact name.
    pub name: Option<String>,
    /// Owning project.
    pub project_id: Option<ProjectId>,
    /// Groups carrying all of these tags.
    pub tags: Vec<String>,
}

/// A Neutron floating IP.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FloatingIp {
    /// Floating IP id.
    pub id: FloatingIpId,
    /// The external address.
    pub floating_ip_address: IpAddr,
    /// The external network it is from.
    pub floating_network_id: NetworkId,
    /// The port it forwards to, if associated.
    #[serde(default)]
    pub port_id: Option<PortId>,
    /// The port's address it forwards to, if associated.
    #[serde(default)]
    pub fixed_ip_address: Option<IpAddr>,
    /// The router doing the NAT, if associated.
    #[serde(default)]
    pub router_id: Option<RouterId>,
    /// `ACTIVE`, `DOWN` or `ERROR`.
    #[serde(default, deserialize_with = "crate::serde_util::nullable")]
    pub status: String,
    /// Owning project.
    #[serde(default)]
    pub project_id: Option<ProjectId>,
    /// Free-form description.
    #[serde(default, deserialize_with = "crate::serde_util::nullable")]
    pub description: String,
    /// Neutron tags.
    #[serde(default, deserialize_with = "crate::serde_util::nullable")]
    pub tags: Vec<String>,
}

/// A floating IP to create; start from [`NewFloatingIp::new`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NewFloatingIp {
    /// The external network to allocate from.
    pub floating_network_id: NetworkId,
    /// Allocate from this subnet of the external network.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subnet_id: Option<SubnetId>,
    /// This exact external address (admin only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub floating_ip_address: Option<IpAddr>,
    /// Associate with this port right away.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port_id: Option<PortId>,
    /// The port's address to forward to, when it has several.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fixed_ip_address: Option<IpAddr>,
    /// Owning project; `None` is the caller's project.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project_id: Option<ProjectId>,
    /// Free-form description.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Neutron tags.
    #[serde(skip)]
    pub tags: Vec<String>,
}

impl NewFloatingIp {
    /// A floating IP from `floating_network_id`, not associated.
    pub fn new(floating_network_id: NetworkId) -> Self {
        NewFloatingIp {
            floating_network_id,
            subnet_id: None,
            floating_ip_address: None,
            port_id: None,
            fixed_ip_address: None,
            project_id: None,
            description: None,
            tags: Vec::new(),
        }
    }
}

/// Filters for [`Networking::list_floating_ips`]; unset fields do not filter.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FloatingIpFilter {
    /// From this external network.
    pub floating_network_id: Option<NetworkId>,
    /// Associated with this port.
    pub port_id: Option<PortId>,
    /// With this external address.
    pub floating_ip_address: Option<IpAddr>,
    /// Owning project.
    pub project_id: Option<ProjectId>,
    /// Floating IPs carrying all of these tags.
    pub tags: Vec<String>,
}

/// A Neutron resource that carries tags.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum TaggedResource {
    /// A network.
    Network(NetworkId),
    /// A subnet.
    Subnet(SubnetId),
    /// A router.
    Router(RouterId),
    /// A port.
    Port(PortId),
    /// A security group.
    SecurityGroup(SecurityGroupId),
    /// A floating IP.
    FloatingIp(FloatingIpId),
}

impl TaggedResource {
    /// The URL collection name (`networks`, `floatingips`, ...).
    pub fn collection(&self) -> &'static str {
        match self {
            TaggedResource::Network(_) => "networks",
            TaggedResource::Subnet(_) => "subnets",
            TaggedResource::Router(_) => "routers",
            TaggedResource::Port(_) => "ports",
            TaggedResource::SecurityGroup(_) => "security-groups",
            TaggedResource::FloatingIp(_) => "floatingips",
        }
    }

    /// The resource id.
    pub fn id(&self) -> &str {
        match self {
            TaggedResource::Network(id) => id.as_str(),
            TaggedResource::Subnet(id) => id.as_str(),
            TaggedResource::Router(id) => id.as_str(),
            TaggedResource::Port(id) => id.as_str(),
            TaggedResource::SecurityGroup(id) => id.as_str(),
            TaggedResource::FloatingIp(id) => id.as_str(),
        }
    }
}

/// Neutron, as Stackube uses it.
///
/// # Guarantees
/// Creations with tags: the returned resource carries the requested tags. Whether they were
/// sent in the creation request or set right after it is described at
/// [`Networking::create_network`]; the same holds for every `create_*` here.
#[async_trait]
pub trait Networking: Send + Sync {
    /// Creates a network.
    ///
    /// # Guarantees
    /// Not idempotent (Neutron names are not unique): a retrying caller lists by its ownership
    /// tags first. Tags: see the crate documentation, "Neutron tags"; when Neutron does not
    /// take tags at creation, the adapter sets them immediately after, and if that fails it
    /// deletes the new resource again before returning the error, so an untagged (unfindable)
    /// resource is left behind only if the process dies between the two requests. The
    /// description, by contrast, is always part of the creation request: a caller that writes a
    /// recognisable description can find such a leftover by it.
    async fn create_network(&self, network: &NewNetwork) -> Result<Network>;
    /// The network with this id, or `NotFound`.
    async fn get_network(&self, id: &NetworkId) -> Result<Network>;
    /// Networks matching `filter`.
    async fn list_networks(&self, filter: &NetworkFilter) -> Result<Vec<Network>>;
    /// Deletes a network.
    ///
    /// # Guarantees
    /// Returns `Ok` when the network does not exist. `Conflict` while ports other than
    /// Neutron's own (DHCP) are still on it.
    async fn delete_network(&self, id: &NetworkId) -> Result<()>;

    /// Creates a subnet. Tags as for [`Networking::create_network`].
    async fn create_subnet(&self, subnet: &NewSubnet) -> Result<Subnet>;
    /// The subnet with this id, or `NotFound`.
    async fn get_subnet(&self, id: &SubnetId) -> Result<Subnet>;
    /// Subnets matching `filter`.
    async fn list_subnets(&self, filter: &SubnetFilter) -> Result<Vec<Subnet>>;
    /// Deletes a subnet.
    ///
    /// # Guarantees
    /// Returns `Ok` when the subnet does not exist. `Conflict` while ports use it.
    async fn delete_subnet(&self, id: &SubnetId) -> Result<()>;

    /// Creates a router. Tags as for [`Networking::create_network`].
    async fn create_router(&self, router: &NewRouter) -> Result<Router>;
    /// The router with this id, or `NotFound`.
    async fn get_router(&self, id: &RouterId) -> Result<Router>;
    /// Routers matching `filter`.
    async fn list_routers(&self, filter: &RouterFilter) -> Result<Vec<Router>>;
    /// Deletes a router.
    ///
    /// # Guarantees
    /// Returns `Ok` when the router does not exist. `Conflict` while it has interfaces.
    async fn delete_router(&self, id: &RouterId) -> Result<()>;
    /// Sets (`Some`) or clears (`None`) the router's external gateway.
    ///
    /// # Guarantees
    /// Idempotent: setting the gateway it already has, or clearing an absent one, is `Ok`.
    async fn set_router_gateway(
        &self,
        id: &RouterId,
        gateway: Option<&ExternalGateway>,
    ) -> Result<Router>;
    /// Attaches the router to `subnet` (on the subnet's gateway address).
    ///
    /// # Guarantees
    /// Idempotent: when the router already has an interface on the subnet, that interface is
    /// returned.
    async fn add_router_interface(
        &self,
        router: &RouterId,
        subnet: &SubnetId,
    ) -> Result<RouterInterface>;
    /// Detaches the router from `subnet`.
    ///
    /// # Guarantees
    /// Returns `Ok` when there is no such interface, or no such router.
    async fn remove_router_interface(&self, router: &RouterId, subnet: &SubnetId) -> Result<()>;

    /// Creates a port. Tags as for [`Networking::create_network`].
    async fn create_port(&self, port: &NewPort) -> Result<Port>;
    /// The port with this id, or `NotFound`.
    async fn get_port(&self, id: &PortId) -> Result<Port>;
    /// Ports matching `filter`.
    async fn list_ports(&self, filter: &PortFilter) -> Result<Vec<Port>>;
    /// Changes a port.
    async fn update_port(&self, id: &PortId, update: &PortUpdate) -> Result<Port>;
    /// Deletes a port.
    ///
    /// # Guarantees
    /// Returns `Ok` when the port does not exist.
    async fn delete_port(&self, id: &PortId) -> Result<()>;

    /// Creates a security group (Neutron adds its default egress rules). Tags as for
    /// [`Networking::create_network`].
    async fn create_security_group(&self, group: &NewSecurityGroup) -> Result<SecurityGroup>;
    /// The security group with this id, or `NotFound`.
    async fn get_security_group(&self, id: &SecurityGroupId) -> Result<SecurityGroup>;
    /// Security groups matching `filter`.
    ///
    /// # Guarantees
    /// Listing creates nothing. (Neutron, asked for a project's groups, first creates that
    /// project's `default` group if it has none, even for a deleted project; the adapter
    /// therefore filters by project itself.)
    async fn list_security_groups(
        &self,
        filter: &SecurityGroupFilter,
    ) -> Result<Vec<SecurityGroup>>;
    /// Deletes a security group.
    ///
    /// # Guarantees
    /// Returns `Ok` when the group does not exist. `Conflict` while ports use it.
    async fn delete_security_group(&self, id: &SecurityGroupId) -> Result<()>;

    /// Creates a security group rule.
    ///
    /// # Guarantees
    /// Idempotent: when an identical rule exists (Neutron answers `409`), that rule is returned.
    async fn create_security_group_rule(
        &self,
        rule: &NewSecurityGroupRule,
    ) -> Result<SecurityGroupRule>;
    /// Security group rules matching `filter`.
    async fn list_security_group_rules(
        &self,
        filter: &SecurityGroupRuleFilter,
    ) -> Result<Vec<SecurityGroupRule>>;
    /// Deletes a security group rule.
    ///
    /// # Guarantees
    /// Returns `Ok` when the rule does not exist.
    async fn delete_security_group_rule(&self, id: &SecurityGroupRuleId) -> Result<()>;

    /// Allocates a floating IP. Tags as for [`Networking::create_network`].
    async fn create_floating_ip(&self, floating_ip: &NewFloatingIp) -> Result<FloatingIp>;
    /// The floating IP with this id, or `NotFound`.
    async fn get_floating_ip(&self, id: &FloatingIpId) -> Result<FloatingIp>;
    /// Floating IPs matching `filter`.
    async fn list_floating_ips(&self, filter: &FloatingIpFilter) -> Result<Vec<FloatingIp>>;
    /// Associates the floating IP with `port` (`Some`) or dissociates it (`None`).
    ///
    /// # Guarantees
    /// Idempotent.
    async fn set_floating_ip_port(
        &self,
        id: &FloatingIpId,
        port: Option<&PortId>,
    ) -> Result<FloatingIp>;
    /// Releases a floating IP.
    ///
    /// # Guarantees
    /// Returns `Ok` when the floating IP does not exist.
    async fn delete_floating_ip(&self, id: &FloatingIpId) -> Result<()>;

    /// Replaces all tags of `resource` with `tags`; returns the tags it now has.
    ///
    /// # Guarantees
    /// Idempotent.
    async fn replace_tags(&self, resource: &TaggedResource, tags: &[String])
    -> Result<Vec<String>>;
    /// Adds one tag to `resource`.
    ///
    /// # Guarantees
    /// Idempotent: adding a tag it already has is `Ok`.
    async fn add_tag(&self, resource: &TaggedResource, tag: &str) -> Result<()>;
    /// Removes one tag from `resource`.
    ///
    /// # Guarantees
    /// Returns `Ok` when the resource does not have the tag, or does not exist.
    async fn remove_tag(&self, resource: &TaggedResource, tag: &str) -> Result<()>;
}
