//! [`Networking`] over Neutron v2.0.
//!
//! Tags at creation: Neutron only accepts `tags` in a creation body where its `tag-creation`
//! support exists (newer than some deployments we run on). The adapter learns per resource type
//! which applies: it first sends the tags with the creation; if Neutron rejects the attribute
//! (HTTP 400 naming `tags`) it remembers that and from then on creates without tags and sets
//! them with `PUT /v2.0/<resource>/<id>/tags` right after. When that second request fails, the
//! new resource is deleted again (best effort), so callers never get an untagged resource back.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use stackube_model::{
    FloatingIpId, NetworkId, PortId, RouterId, SecurityGroupId, SecurityGroupRuleId, SubnetId,
};

use super::request::segment;
use super::{OpenStack, Request};
use crate::error::{ErrorKind, OpenStackError, Result};
use crate::network::{
    Direction, ExternalGateway, FloatingIp, FloatingIpFilter, Network, NetworkFilter, Networking,
    NewFloatingIp, NewNetwork, NewPort, NewRouter, NewSecurityGroup, NewSecurityGroupRule,
    NewSubnet, Port, PortFilter, PortUpdate, Router, RouterFilter, RouterInterface, SecurityGroup,
    SecurityGroupFilter, SecurityGroupRule, SecurityGroupRuleFilter, Subnet, SubnetFilter,
    SubnetGateway, TaggedResource,
};
use crate::observe::{Call, Service};

fn call(operation: &'static str) -> Call {
    Call::new(Service::Network, operation)
}

/// Whether Neutron takes `tags` in the creation body of a resource type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TagMode {
    /// Not tried yet.
    Unknown,
    /// Tags go in the creation body.
    InBody,
    /// Tags are set with a second request.
    AfterCreate,
}

/// What the adapter learnt about tags at creation, per collection (`networks`, `ports`, ...).
#[derive(Debug, Default)]
pub(crate) struct TagSupport {
    modes: Mutex<HashMap<&'static str, TagMode>>,
}

impl TagSupport {
    fn get(&self, collection: &'static str) -> TagMode {
        let modes = self.modes.lock().unwrap_or_else(|e| e.into_inner());
        modes.get(collection).copied().unwrap_or(TagMode::Unknown)
    }

    fn set(&self, collection: &'static str, mode: TagMode) {
        let mut modes = self.modes.lock().unwrap_or_else(|e| e.into_inner());
        if modes.insert(collection, mode) != Some(mode) {
            tracing::debug!(collection, ?mode, "neutron tags at creation");
        }
    }
}

/// A Neutron resource type that carries tags.
trait Tagged: DeserializeOwned {
    /// URL collection, e.g. `security-groups`.
    const COLLECTION: &'static str;
    /// JSON key of one resource, e.g. `security_group`.
    const KEY: &'static str;
    fn resource(&self) -> TaggedResource;
    fn tags(&self) -> &[String];
    fn set_tags(&mut self, tags: Vec<String>);
}

macro_rules! tagged {
    ($ty:ty, $collection:literal, $key:literal, $variant:ident) => {
        impl Tagged for $ty {
            const COLLECTION: &'static str = $collection;
            const KEY: &'static str = $key;
            fn resource(&self) -> TaggedResource {
                TaggedResource::$variant(self.id.clone())
            }
            fn tags(&self) -> &[String] {
                &self.tags
            }
            fn set_tags(&mut self, tags: Vec<String>) {
                self.tags = tags;
            }
        }
    };
}

tagged!(Network, "networks", "network", Network);
tagged!(Subnet, "subnets", "subnet", Subnet);
tagged!(Router, "routers", "router", Router);
tagged!(Port, "ports", "port", Port);
tagged!(
    SecurityGroup,
    "security-groups",
    "security_group",
    SecurityGroup
);
tagged!(FloatingIp, "floatingips", "floatingip", FloatingIp);

/// Serializes a creation request to the JSON object that goes under the resource key.
fn to_object(call: &Call, request: &impl Serialize) -> Result<serde_json::Map<String, Value>> {
    match serde_json::to_value(request) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(OpenStackError::unexpected(
            call.clone(),
            "request is not a json object",
            None,
        )),
        Err(e) => Err(OpenStackError::unexpected(
            call.clone(),
            "cannot serialize the request",
            Some(Box::new(e)),
        )),
    }
}

fn subnet_body(call: &Call, subnet: &NewSubnet) -> Result<serde_json::Map<String, Value>> {
    let mut body = to_object(call, subnet)?;
    match &subnet.gateway {
        SubnetGateway::Default => {}
        SubnetGateway::Ip(ip) => {
            body.insert("gateway_ip".into(), json!(ip));
        }
        SubnetGateway::None => {
            body.insert("gateway_ip".into(), Value::Null);
        }
    }
    Ok(body)
}

fn is_router_interface(device_owner: &str) -> bool {
    matches!(
        device_owner,
        "network:router_interface"
            | "network:router_interface_distributed"
            | "network:ha_router_replicated_interface"
    )
}

impl OpenStack {
    /// Creates a tagged resource; see the module documentation for how the tags get there.
    async fn create_tagged<T: Tagged>(
        &self,
        call: Call,
        body: serde_json::Map<String, Value>,
        tags: &[String],
    ) -> Result<T> {
        let support = &self.inner.tag_support;
        if tags.is_empty() {
            return self.post_new(call, body).await;
        }
        let mode = support.get(T::COLLECTION);
        if mode != TagMode::AfterCreate {
            let mut tagged_body = body.clone();
            tagged_body.insert("tags".into(), json!(tags));
            match self.post_new::<T>(call.clone(), tagged_body).await {
                Ok(created) if tags.iter().all(|t| created.tags().contains(t)) => {
                    support.set(T::COLLECTION, TagMode::InBody);
                    return Ok(created);
                }
                Ok(created) => {
                    // Accepted but not applied: tag it the other way.
                    support.set(T::COLLECTION, TagMode::AfterCreate);
                    return self.tag_after_create(created, tags).await;
                }
                // Neutron without tag-creation: "Attribute 'tags' not allowed in POST".
                Err(OpenStackError::Invalid { message, .. })
                    if mode == TagMode::Unknown && message.contains("tags") =>
                {
                    support.set(T::COLLECTION, TagMode::AfterCreate);
                }
                Err(e) => return Err(e),
            }
        }
        let created: T = self.post_new(call, body).await?;
        self.tag_after_create(created, tags).await
    }

    /// POSTs a creation and decodes the new resource. Should the answer not decode, the
    /// resource it names is deleted again rather than left behind unseen.
    async fn post_new<T: Tagged>(
        &self,
        call: Call,
        body: serde_json::Map<String, Value>,
    ) -> Result<T> {
        let req = Request::post(
            call.clone(),
            T::COLLECTION.to_owned(),
            json!({ T::KEY: body }),
        );
        let raw = self.inner.send(req).await?;
        match super::request::decode::<T>(&call, &raw, T::KEY) {
            Ok(created) => Ok(created),
            Err(e) => {
                let id = serde_json::from_slice::<Value>(&raw)
                    .ok()
                    .and_then(|v| v[T::KEY]["id"].as_str().map(str::to_owned));
                if let Some(id) = id {
                    self.discard(T::COLLECTION, &id).await;
                }
                Err(e)
            }
        }
    }

    /// Sets `tags` on a just-created resource, deleting it again if that fails.
    async fn tag_after_create<T: Tagged>(&self, mut created: T, tags: &[String]) -> Result<T> {
        let resource = created.resource();
        match self.replace_tags(&resource, tags).await {
            Ok(now) => {
                created.set_tags(now);
                Ok(created)
            }
            Err(e) => {
                self.discard(resource.collection(), resource.id()).await;
                Err(e)
            }
        }
    }

    /// Best-effort delete of a resource the caller will never hear about.
    async fn discard(&self, collection: &'static str, id: &str) {
        let undo = Request::delete(
            call("discard_incomplete").with_resource(id),
            format!("{collection}/{}", segment(id)),
        );
        if let Err(error) = self.inner.execute(undo, true).await {
            tracing::warn!(
                collection,
                id,
                %error,
                "cannot delete a half-created resource; it is left behind"
            );
        }
    }

    async fn get_one<T: Tagged>(&self, operation: &'static str, id: &str) -> Result<T> {
        let req = Request::get(
            call(operation).with_resource(id),
            format!("{}/{}", T::COLLECTION, segment(id)),
        );
        self.inner.fetch(req, T::KEY).await
    }

    async fn delete_one(&self, operation: &'static str, collection: &str, id: &str) -> Result<()> {
        let req = Request::delete(
            call(operation).with_resource(id),
            format!("{collection}/{}", segment(id)),
        );
        self.inner.execute(req, true).await
    }

    async fn update_one<T: Tagged>(
        &self,
        operation: &'static str,
        id: &str,
        body: Value,
    ) -> Result<T> {
        let req = Request::put(
            call(operation).with_resource(id),
            format!("{}/{}", T::COLLECTION, segment(id)),
            Some(json!({ T::KEY: body })),
        );
        self.inner.fetch(req, T::KEY).await
    }

    /// Lists resources of one collection (items under `key`) carrying all of `tags` and at
    /// least one of `tags_any`.
    ///
    /// Neutron 21 (Zed) answers 500 to a query with both `tags` and `tags-any`: each joins its
    /// tags table under the same name ("Not unique table/alias: 'tags'"). When both are asked
    /// for, only `tags` (the ownership tags, usually the narrower set) goes to Neutron and
    /// `tags-any` is applied to the answer.
    async fn list_tagged<T: Tagged>(
        &self,
        req: Request,
        key: &str,
        tags: &[String],
        tags_any: &[String],
    ) -> Result<Vec<T>> {
        let req = req.query_tags(tags);
        if tags.is_empty() || tags_any.is_empty() {
            return self
                .inner
                .fetch_all(req.query_tags_any(tags_any), key)
                .await;
        }
        let mut found: Vec<T> = self.inner.fetch_all(req, key).await?;
        found.retain(|item| item.tags().iter().any(|t| tags_any.contains(t)));
        Ok(found)
    }

    /// The router's existing interface on `subnet`, if any.
    async fn find_router_interface(
        &self,
        router: &RouterId,
        subnet: &SubnetId,
    ) -> Result<Option<RouterInterface>> {
        let ports = self
            .list_ports(&PortFilter {
                device_id: Some(router.to_string()),
                ..PortFilter::default()
            })
            .await?;
        Ok(ports
            .into_iter()
            .filter(|p| is_router_interface(&p.device_owner))
            .find(|p| p.fixed_ips.iter().any(|ip| &ip.subnet_id == subnet))
            .map(|p| RouterInterface {
                router_id: router.clone(),
                subnet_id: subnet.clone(),
                port_id: p.id,
            }))
    }
}

#[async_trait]
impl Networking for OpenStack {
    async fn create_network(&self, network: &NewNetwork) -> Result<Network> {
        let call = call("create_network").with_resource(&network.name);
        let body = to_object(&call, network)?;
        self.create_tagged(call, body, &network.tags).await
    }

    async fn get_network(&self, id: &NetworkId) -> Result<Network> {
        self.get_one("get_network", id.as_str()).await
    }

    async fn list_networks(&self, filter: &NetworkFilter) -> Result<Vec<Network>> {
        let req = Request::get(call("list_networks"), "networks".into())
            .query_opt("name", filter.name.clone())
            .query_opt(
                "project_id",
                filter.project_id.as_ref().map(|p| p.to_string()),
            )
            .query_opt("router:external", filter.external.map(|e| e.to_string()));
        self.list_tagged(req, "networks", &filter.tags, &filter.tags_any)
            .await
    }

    async fn delete_network(&self, id: &NetworkId) -> Result<()> {
        self.delete_one("delete_network", "networks", id.as_str())
            .await
    }

    async fn create_subnet(&self, subnet: &NewSubnet) -> Result<Subnet> {
        let call = call("create_subnet").with_resource(&subnet.name);
        let body = subnet_body(&call, subnet)?;
        self.create_tagged(call, body, &subnet.tags).await
    }

    async fn get_subnet(&self, id: &SubnetId) -> Result<Subnet> {
        self.get_one("get_subnet", id.as_str()).await
    }

    async fn list_subnets(&self, filter: &SubnetFilter) -> Result<Vec<Subnet>> {
        let req = Request::get(call("list_subnets"), "subnets".into())
            .query_opt("name", filter.name.clone())
            .query_opt(
                "network_id",
                filter.network_id.as_ref().map(|n| n.to_string()),
            )
            .query_opt(
                "project_id",
                filter.project_id.as_ref().map(|p| p.to_string()),
            );
        self.list_tagged(req, "subnets", &filter.tags, &filter.tags_any)
            .await
    }

    async fn delete_subnet(&self, id: &SubnetId) -> Result<()> {
        self.delete_one("delete_subnet", "subnets", id.as_str())
            .await
    }

    async fn create_router(&self, router: &NewRouter) -> Result<Router> {
        let call = call("create_router").with_resource(&router.name);
        let body = to_object(&call, router)?;
        self.create_tagged(call, body, &router.tags).await
    }

    async fn get_router(&self, id: &RouterId) -> Result<Router> {
        self.get_one("get_router", id.as_str()).await
    }

    async fn list_routers(&self, filter: &RouterFilter) -> Result<Vec<Router>> {
        let req = Request::get(call("list_routers"), "routers".into())
            .query_opt("name", filter.name.clone())
            .query_opt(
                "project_id",
                filter.project_id.as_ref().map(|p| p.to_string()),
            );
        self.list_tagged(req, "routers", &filter.tags, &filter.tags_any)
            .await
    }

    async fn delete_router(&self, id: &RouterId) -> Result<()> {
        self.delete_one("delete_router", "routers", id.as_str())
            .await
    }

    async fn set_router_gateway(
        &self,
        id: &RouterId,
        gateway: Option<&ExternalGateway>,
    ) -> Result<Router> {
        let info = match gateway {
            Some(gateway) => json!(gateway),
            None => json!({}),
        };
        self.update_one(
            "set_router_gateway",
            id.as_str(),
            json!({ "external_gateway_info": info }),
        )
        .await
    }

    async fn add_router_interface(
        &self,
        router: &RouterId,
        subnet: &SubnetId,
    ) -> Result<RouterInterface> {
        let req = Request::put(
            call("add_router_interface").with_resource(router),
            format!("routers/{}/add_router_interface", segment(router.as_str())),
            Some(json!({ "subnet_id": subnet })),
        );
        let call = req.call.clone();
        match self.inner.send(req).await {
            Ok(body) => {
                let value: Value = serde_json::from_slice(&body).map_err(|e| {
                    OpenStackError::unexpected(
                        call.clone(),
                        "response is not json",
                        Some(Box::new(e)),
                    )
                })?;
                serde_json::from_value(value).map_err(|e| {
                    OpenStackError::unexpected(
                        call,
                        "unexpected router interface",
                        Some(Box::new(e)),
                    )
                })
            }
            // Neutron refuses a second interface on the same subnet (400, or 409 for some
            // plugins); a retrying caller wants the one that exists.
            Err(e) if matches!(e.kind(), ErrorKind::Invalid | ErrorKind::Conflict) => {
                match self.find_router_interface(router, subnet).await? {
                    Some(existing) => Ok(existing),
                    None => Err(e),
                }
            }
            Err(e) => Err(e),
        }
    }

    async fn remove_router_interface(&self, router: &RouterId, subnet: &SubnetId) -> Result<()> {
        let req = Request::put(
            call("remove_router_interface").with_resource(router),
            format!(
                "routers/{}/remove_router_interface",
                segment(router.as_str())
            ),
            Some(json!({ "subnet_id": subnet })),
        );
        self.inner.execute(req, true).await
    }

    async fn create_port(&self, port: &NewPort) -> Result<Port> {
        let call = call("create_port").with_resource(&port.name);
        let body = to_object(&call, port)?;
        self.create_tagged(call, body, &port.tags).await
    }

    async fn get_port(&self, id: &PortId) -> Result<Port> {
        self.get_one("get_port", id.as_str()).await
    }

    async fn list_ports(&self, filter: &PortFilter) -> Result<Vec<Port>> {
        let req = Request::get(call("list_ports"), "ports".into())
            .query_opt("name", filter.name.clone())
            .query_opt(
                "network_id",
                filter.network_id.as_ref().map(|n| n.to_string()),
            )
            .query_opt("device_id", filter.device_id.clone())
            .query_opt("device_owner", filter.device_owner.clone())
            .query_opt("binding:host_id", filter.binding_host_id.clone())
            .query_opt(
                "project_id",
                filter.project_id.as_ref().map(|p| p.to_string()),
            );
        self.list_tagged(req, "ports", &filter.tags, &filter.tags_any)
            .await
    }

    async fn update_port(&self, id: &PortId, update: &PortUpdate) -> Result<Port> {
        let call_ = call("update_port").with_resource(id);
        let body = Value::Object(to_object(&call_, update)?);
        self.update_one("update_port", id.as_str(), body).await
    }

    async fn delete_port(&self, id: &PortId) -> Result<()> {
        self.delete_one("delete_port", "ports", id.as_str()).await
    }

    async fn create_security_group(&self, group: &NewSecurityGroup) -> Result<SecurityGroup> {
        let call = call("create_security_group").with_resource(&group.name);
        let body = to_object(&call, group)?;
        self.create_tagged(call, body, &group.tags).await
    }

    async fn get_security_group(&self, id: &SecurityGroupId) -> Result<SecurityGroup> {
        self.get_one("get_security_group", id.as_str()).await
    }

    async fn list_security_groups(
        &self,
        filter: &SecurityGroupFilter,
    ) -> Result<Vec<SecurityGroup>> {
        // Not `project_id=` in the query: Neutron answers such a listing by first creating the
        // project's `default` group when it has none, even for a project that no longer exists
        // (a leak check would make the leak it looks for). The project is filtered here.
        let req = Request::get(call("list_security_groups"), "security-groups".into())
            .query_opt("name", filter.name.clone())
            .query_tags(&filter.tags);
        let groups: Vec<SecurityGroup> = self.inner.fetch_all(req, "security_groups").await?;
        Ok(match &filter.project_id {
            None => groups,
            Some(project) => groups
                .into_iter()
                .filter(|g| g.project_id.as_ref() == Some(project))
                .collect(),
        })
    }

    async fn delete_security_group(&self, id: &SecurityGroupId) -> Result<()> {
        self.delete_one("delete_security_group", "security-groups", id.as_str())
            .await
    }

    async fn create_security_group_rule(
        &self,
        rule: &NewSecurityGroupRule,
    ) -> Result<SecurityGroupRule> {
        let call = call("create_security_group_rule").with_resource(&rule.security_group_id);
        let body = to_object(&call, rule)?;
        let req = Request::post(
            call,
            "security-group-rules".into(),
            json!({ "security_group_rule": body }),
        );
        match self.inner.fetch(req, "security_group_rule").await {
            Err(e) if e.kind() == ErrorKind::Conflict => {
                // "Security group rule already exists": hand back the existing one.
                let existing = self
                    .list_security_group_rules(&SecurityGroupRuleFilter {
                        security_group_id: Some(rule.security_group_id.clone()),
                        direction: Some(rule.direction),
                    })
                    .await?;
                existing.into_iter().find(|r| rule.matches(r)).ok_or(e)
            }
            other => other,
        }
    }

    async fn list_security_group_rules(
        &self,
        filter: &SecurityGroupRuleFilter,
    ) -> Result<Vec<SecurityGroupRule>> {
        let direction = filter.direction.map(|d| match d {
            Direction::Ingress => "ingress",
            Direction::Egress => "egress",
        });
        let req = Request::get(
            call("list_security_group_rules"),
            "security-group-rules".into(),
        )
        .query_opt(
            "security_group_id",
            filter.security_group_id.as_ref().map(|s| s.to_string()),
        )
        .query_opt("direction", direction);
        self.inner.fetch_all(req, "security_group_rules").await
    }

    async fn delete_security_group_rule(&self, id: &SecurityGroupRuleId) -> Result<()> {
        self.delete_one(
            "delete_security_group_rule",
            "security-group-rules",
            id.as_str(),
        )
        .await
    }

    async fn create_floating_ip(&self, floating_ip: &NewFloatingIp) -> Result<FloatingIp> {
        let call = call("create_floating_ip").with_resource(&floating_ip.floating_network_id);
        let body = to_object(&call, floating_ip)?;
        self.create_tagged(call, body, &floating_ip.tags).await
    }

    async fn get_floating_ip(&self, id: &FloatingIpId) -> Result<FloatingIp> {
        self.get_one("get_floating_ip", id.as_str()).await
    }

    async fn list_floating_ips(&self, filter: &FloatingIpFilter) -> Result<Vec<FloatingIp>> {
        let req = Request::get(call("list_floating_ips"), "floatingips".into())
            .query_opt(
                "floating_network_id",
                filter.floating_network_id.as_ref().map(|n| n.to_string()),
            )
            .query_opt("port_id", filter.port_id.as_ref().map(|p| p.to_string()))
            .query_opt(
                "floating_ip_address",
                filter.floating_ip_address.map(|a| a.to_string()),
            )
            .query_opt(
                "project_id",
                filter.project_id.as_ref().map(|p| p.to_string()),
            )
            .query_tags(&filter.tags);
        self.inner.fetch_all(req, "floatingips").await
    }

    async fn set_floating_ip_port(
        &self,
        id: &FloatingIpId,
        port: Option<&PortId>,
    ) -> Result<FloatingIp> {
        self.update_one(
            "set_floating_ip_port",
            id.as_str(),
            json!({ "port_id": port }),
        )
        .await
    }

    async fn delete_floating_ip(&self, id: &FloatingIpId) -> Result<()> {
        self.delete_one("delete_floating_ip", "floatingips", id.as_str())
            .await
    }

    async fn replace_tags(
        &self,
        resource: &TaggedResource,
        tags: &[String],
    ) -> Result<Vec<String>> {
        let req = Request::put(
            call("replace_tags").with_resource(resource.id()),
            format!("{}/{}/tags", resource.collection(), segment(resource.id())),
            Some(json!({ "tags": tags })),
        );
        self.inner.fetch(req, "tags").await
    }

    async fn add_tag(&self, resource: &TaggedResource, tag: &str) -> Result<()> {
        let req = Request::put(
            call("add_tag").with_resource(resource.id()),
            format!(
                "{}/{}/tags/{}",
                resource.collection(),
                segment(resource.id()),
                segment(tag)
            ),
            None,
        );
        self.inner.execute(req, false).await
    }

    async fn remove_tag(&self, resource: &TaggedResource, tag: &str) -> Result<()> {
        let req = Request::delete(
            call("remove_tag").with_resource(resource.id()),
            format!(
                "{}/{}/tags/{}",
                resource.collection(),
                segment(resource.id()),
                segment(tag)
            ),
        );
        self.inner.execute(req, true).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::{Ethertype, ProviderNetwork};
    use std::net::{IpAddr, Ipv4Addr};

    #[test]
    fn creation_bodies_use_neutron_field_names() {
        let call = call("create_port");
        let port = NewPort {
            binding_host_id: Some("node-1".into()),
            device_owner: Some("compute:kubernetes".into()),
            security_group_ids: Some(vec![SecurityGroupId::new("sg")]),
            tags: vec!["t".into()],
            description: Some("stackube pod port".into()),
            ..NewPort::new(NetworkId::new("n"), "p")
        };
        let body = to_object(&call, &port).unwrap();
        assert_eq!(body["description"], "stackube pod port");
        assert_eq!(body["binding:host_id"], "node-1");
        assert_eq!(body["security_groups"], json!(["sg"]));
        assert_eq!(body["network_id"], "n");
        assert!(
            !body.contains_key("tags"),
            "tags are added by create_tagged"
        );
        assert!(!body.contains_key("mac_address"));
        let body = to_object(&call, &NewPort::new(NetworkId::new("n"), "p")).unwrap();
        assert!(!body.contains_key("description"), "unset is left out");

        let network = NewNetwork {
            name: "n".into(),
            external: Some(true),
            provider: Some(ProviderNetwork {
                network_type: "flat".into(),
                physical_network: Some("physnet1".into()),
                segmentation_id: None,
            }),
            ..NewNetwork::default()
        };
        let body = to_object(&call, &network).unwrap();
        assert_eq!(body["router:external"], true);
        assert_eq!(body["provider:network_type"], "flat");
        assert_eq!(body["provider:physical_network"], "physnet1");
        assert!(!body.contains_key("provider:segmentation_id"));
    }

    #[test]
    fn descriptions_go_in_creation_bodies() {
        let call = call("create");
        let description = Some("stackube".to_owned());
        let subnet = NewSubnet {
            description: description.clone(),
            ..NewSubnet::ipv4(NetworkId::new("n"), "s", "10.0.0.0/24")
        };
        let router = NewRouter {
            description: description.clone(),
            ..NewRouter::default()
        };
        let network = NewNetwork {
            description,
            ..NewNetwork::default()
        };
        assert_eq!(
            subnet_body(&call, &subnet).unwrap()["description"],
            "stackube"
        );
        assert_eq!(
            to_object(&call, &router).unwrap()["description"],
            "stackube"
        );
        assert_eq!(
            to_object(&call, &network).unwrap()["description"],
            "stackube"
        );
        let unset = NewRouter::default();
        assert!(
            !to_object(&call, &unset)
                .unwrap()
                .contains_key("description")
        );
    }

    #[test]
    fn null_or_missing_descriptions_decode_as_empty() {
        for description in [json!(null), json!("d")] {
            let want = description.as_str().unwrap_or("");
            let network: Network =
                serde_json::from_value(json!({"id": "n", "description": description})).unwrap();
            assert_eq!(network.description, want);
            let subnet: Subnet = serde_json::from_value(json!({
                "id": "s", "network_id": "n", "cidr": "10.0.0.0/24", "ip_version": 4,
                "description": description
            }))
            .unwrap();
            assert_eq!(subnet.description, want);
            let router: Router =
                serde_json::from_value(json!({"id": "r", "description": description})).unwrap();
            assert_eq!(router.description, want);
            let port: Port = serde_json::from_value(json!({
                "id": "p", "network_id": "n", "mac_address": "fa:16:3e:00:00:01",
                "description": description
            }))
            .unwrap();
            assert_eq!(port.description, want);
        }
        let network: Network = serde_json::from_value(json!({"id": "n"})).unwrap();
        assert_eq!(network.description, "");
    }

    #[test]
    fn subnet_gateway_is_default_an_address_or_null() {
        let call = call("create_subnet");
        let mut subnet = NewSubnet::ipv4(NetworkId::new("n"), "s", "10.0.0.0/24");
        assert!(
            !subnet_body(&call, &subnet)
                .unwrap()
                .contains_key("gateway_ip")
        );
        subnet.gateway = SubnetGateway::None;
        assert_eq!(
            subnet_body(&call, &subnet).unwrap()["gateway_ip"],
            Value::Null
        );
        subnet.gateway = SubnetGateway::Ip(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 254)));
        assert_eq!(
            subnet_body(&call, &subnet).unwrap()["gateway_ip"],
            "10.0.0.254"
        );
    }

    #[test]
    fn rule_matching_ignores_protocol_case_and_ids() {
        let request = NewSecurityGroupRule {
            security_group_id: SecurityGroupId::new("sg"),
            direction: Direction::Ingress,
            ethertype: Ethertype::IPv4,
            protocol: Some("TCP".into()),
            port_range_min: Some(80),
            port_range_max: Some(80),
            remote_ip_prefix: Some("0.0.0.0/0".into()),
            remote_group_id: None,
            description: None,
            project_id: None,
        };
        let existing: SecurityGroupRule = serde_json::from_value(json!({
            "id": "r", "security_group_id": "sg", "direction": "ingress", "ethertype": "IPv4",
            "protocol": "tcp", "port_range_min": 80, "port_range_max": 80,
            "remote_ip_prefix": "0.0.0.0/0", "remote_group_id": null, "description": "",
            "project_id": "p"
        }))
        .unwrap();
        assert!(request.matches(&existing));
        let other_port = NewSecurityGroupRule {
            port_range_min: Some(81),
            port_range_max: Some(81),
            ..request.clone()
        };
        assert!(!other_port.matches(&existing));
    }

    #[test]
    fn ports_decode_binding_fields() {
        let port: Port = serde_json::from_value(json!({
            "id": "p", "name": "", "network_id": "n", "project_id": "t",
            "mac_address": "fa:16:3e:00:00:01",
            "fixed_ips": [{"subnet_id": "s", "ip_address": "10.0.0.5"}],
            "status": "DOWN", "admin_state_up": true, "device_id": "d",
            "device_owner": "compute:kubernetes", "binding:host_id": "node-1",
            "binding:vif_type": "ovs", "binding:vnic_type": "normal",
            "binding:vif_details": {"bridge_name": "br-int"}, "binding:profile": {},
            "security_groups": ["sg"], "port_security_enabled": true, "tags": ["a"],
            "extra_dhcp_opts": []
        }))
        .unwrap();
        assert_eq!(port.binding_host_id, "node-1");
        assert_eq!(port.binding_vif_type, "ovs");
        assert_eq!(port.security_group_ids, vec![SecurityGroupId::new("sg")]);
        assert_eq!(port.fixed_ips[0].ip_address.to_string(), "10.0.0.5");
    }
}
