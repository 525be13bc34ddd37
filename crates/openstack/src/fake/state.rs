//! The fake cloud's state: every Keystone, Neutron and Cinder resource, in plain maps.
//!
//! Tests seed and inspect it through [`super::FakeCloud::state`]. Maps are keyed by id and ids
//! are made from one counter, so iterating a map visits resources in creation order.
//! Relations are stored once and derived where Neutron derives them: a router's interfaces and
//! gateway are its ports (`device_id` = router id, `device_owner` `network:router_interface` or
//! `network:router_gateway`), a group's rules live only in [`SecurityGroup::rules`], a
//! network's subnet list is kept in step with [`FakeState::subnets`].

use std::collections::{BTreeMap, HashSet};

use secrecy::{ExposeSecret, SecretString};
use stackube_model::{
    AttachmentId, FloatingIpId, NetworkId, PortId, ProjectId, RoleId, RouterId, SecurityGroupId,
    SnapshotId, SubnetId, UserId, VolumeId,
};

use crate::block_storage::{Attachment, Connector, Snapshot, Volume};
use crate::identity::{Project, Role, RoleAssignment, User};
use crate::network::{FloatingIp, Network, Port, Router, SecurityGroup, Subnet};

/// Everything the fake cloud holds. Fields are public for seeding and assertions; keep
/// relations consistent when editing them directly (a port's `network_id` must exist, ...).
#[derive(Debug)]
pub struct FakeState {
    /// Keystone projects.
    pub projects: BTreeMap<ProjectId, Project>,
    /// Keystone users.
    pub users: BTreeMap<UserId, User>,
    /// Each user's current password.
    pub passwords: BTreeMap<UserId, SecretString>,
    /// Keystone roles (seeded: `admin`, `member`, `reader`).
    pub roles: BTreeMap<RoleId, Role>,
    /// Direct user-on-project role assignments. A `HashSet` because [`RoleAssignment`] is not
    /// `Ord`; [`crate::Identity::list_role_assignments`] sorts its answer.
    pub role_assignments: HashSet<RoleAssignment>,
    /// Neutron networks.
    pub networks: BTreeMap<NetworkId, Network>,
    /// Each network's default for its ports' port security (`true` when absent).
    pub network_port_security: BTreeMap<NetworkId, bool>,
    /// Neutron subnets.
    pub subnets: BTreeMap<SubnetId, Subnet>,
    /// Neutron routers.
    pub routers: BTreeMap<RouterId, Router>,
    /// Neutron ports, router interfaces and gateways included.
    pub ports: BTreeMap<PortId, Port>,
    /// Neutron security groups, with their rules.
    pub security_groups: BTreeMap<SecurityGroupId, SecurityGroup>,
    /// Neutron floating IPs.
    pub floating_ips: BTreeMap<FloatingIpId, FloatingIp>,
    /// Cinder volumes.
    pub volumes: BTreeMap<VolumeId, Volume>,
    /// Cinder attachments.
    pub attachments: BTreeMap<AttachmentId, Attachment>,
    /// The connector each attachment was created with, if any.
    pub connectors: BTreeMap<AttachmentId, Connector>,
    /// Cinder snapshots.
    pub snapshots: BTreeMap<SnapshotId, Snapshot>,
    /// The `status` of every port [`crate::Networking::create_port`] makes (default `DOWN`,
    /// what Neutron reports until an agent wires the port; tests of code that waits for
    /// `ACTIVE` set `ACTIVE`, or use [`FakeState::set_port_status`]).
    pub port_status_on_create: String,
    admin_project: ProjectId,
    next_id: u64,
}

/// The names of the roles a fresh Keystone has.
pub(super) const SEEDED_ROLES: [&str; 3] = ["admin", "member", "reader"];

impl Default for FakeState {
    fn default() -> Self {
        let mut state = FakeState {
            projects: BTreeMap::new(),
            users: BTreeMap::new(),
            passwords: BTreeMap::new(),
            roles: BTreeMap::new(),
            role_assignments: HashSet::new(),
            networks: BTreeMap::new(),
            network_port_security: BTreeMap::new(),
            subnets: BTreeMap::new(),
            routers: BTreeMap::new(),
            ports: BTreeMap::new(),
            security_groups: BTreeMap::new(),
            floating_ips: BTreeMap::new(),
            volumes: BTreeMap::new(),
            attachments: BTreeMap::new(),
            connectors: BTreeMap::new(),
            snapshots: BTreeMap::new(),
            port_status_on_create: "DOWN".to_owned(),
            admin_project: ProjectId::new(""),
            next_id: 0,
        };
        for name in SEEDED_ROLES {
            let id = RoleId::new(state.keystone_id());
            let role = Role {
                id: id.clone(),
                name: name.to_owned(),
            };
            state.roles.insert(id, role);
        }
        let admin = ProjectId::new(state.keystone_id());
        state.projects.insert(
            admin.clone(),
            Project {
                id: admin.clone(),
                name: "admin".to_owned(),
                domain_id: "default".to_owned(),
                description: "Bootstrap project for initializing the cloud.".to_owned(),
                enabled: true,
                tags: Vec::new(),
            },
        );
        state.admin_project = admin;
        state
    }
}

impl FakeState {
    /// The project calls with `project_id: None` act in.
    pub fn admin_project(&self) -> &ProjectId {
        &self.admin_project
    }

    /// Sets a port's status (what the OVS agent does once it wires the port); `false` when
    /// there is no such port.
    pub fn set_port_status(&mut self, id: &PortId, status: &str) -> bool {
        match self.ports.get_mut(id) {
            Some(port) => {
                port.status = status.to_owned();
                true
            }
            None => false,
        }
    }

    /// Every Neutron resource owned by `project`, as `"<kind> <id>"`, in the order networks,
    /// subnets, routers, ports, security groups, floating IPs (each in creation order). The
    /// kinds are `network`, `subnet`, `router`, `port`, `security_group`,
    /// `security_group_rule` and `floating_ip`; a rule is listed only when its group is not
    /// (rules go with their group). What is left here after a tenant's cleanup leaked, the
    /// implicit `default` security group included.
    pub fn project_resources(&self, project: &ProjectId) -> Vec<String> {
        let mine = |owner: &Option<ProjectId>| owner.as_ref() == Some(project);
        let mut found = Vec::new();
        found.extend(
            self.networks
                .values()
                .filter(|r| mine(&r.project_id))
                .map(|r| format!("network {}", r.id)),
        );
        found.extend(
            self.subnets
                .values()
                .filter(|r| mine(&r.project_id))
                .map(|r| format!("subnet {}", r.id)),
        );
        found.extend(
            self.routers
                .values()
                .filter(|r| mine(&r.project_id))
                .map(|r| format!("router {}", r.id)),
        );
        found.extend(
            self.ports
                .values()
                .filter(|r| mine(&r.project_id))
                .map(|r| format!("port {}", r.id)),
        );
        for group in self.security_groups.values() {
            if mine(&group.project_id) {
                found.push(format!("security_group {}", group.id));
            } else {
                found.extend(
                    group
                        .rules
                        .iter()
                        .filter(|r| mine(&r.project_id))
                        .map(|r| format!("security_group_rule {}", r.id)),
                );
            }
        }
        found.extend(
            self.floating_ips
                .values()
                .filter(|r| mine(&r.project_id))
                .map(|r| format!("floating_ip {}", r.id)),
        );
        found
    }

    /// Whether `user`'s password is `candidate`.
    pub fn password_is(&self, user: &UserId, candidate: &str) -> bool {
        self.passwords
            .get(user)
            .is_some_and(|p| p.expose_secret() == candidate)
    }

    /// `project`, or the admin project when `None`.
    pub(super) fn project_or_admin(&self, project: Option<&ProjectId>) -> ProjectId {
        project.unwrap_or(&self.admin_project).clone()
    }

    /// A fresh number, unique in this cloud.
    pub(super) fn next(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// A fresh Keystone-style id (32 hex digits).
    pub(super) fn keystone_id(&mut self) -> String {
        format!("{:032x}", self.next())
    }

    /// A fresh UUID-style id (Neutron, Cinder).
    pub(super) fn uuid(&mut self) -> String {
        let n = self.next();
        // The counter leads, as random UUIDs differ from their first characters on: callers
        // derive names from id prefixes (a port's `tap<first 11 characters>`).
        format!("{:08x}-0000-4000-8000-{:012x}", n & 0xffff_ffff, n)
    }
}

/// Whether `tags` has every tag of `all` and, unless `any` is empty, at least one of `any`.
pub(super) fn tags_match(tags: &[String], all: &[String], any: &[String]) -> bool {
    all.iter().all(|t| tags.contains(t)) && (any.is_empty() || any.iter().any(|t| tags.contains(t)))
}

/// Whether an optional filter field matches: unset matches everything.
pub(super) fn field<T: PartialEq + ?Sized>(filter: Option<&T>, value: &T) -> bool {
    filter.is_none_or(|want| want == value)
}

/// Whether an optional filter field matches an optional value: unset matches everything, set
/// matches only an equal value.
pub(super) fn opt_field<T: PartialEq>(filter: Option<&T>, value: Option<&T>) -> bool {
    filter.is_none_or(|want| value == Some(want))
}

/// `tags` without duplicates, in first-seen order (Neutron keeps a set).
pub(super) fn dedup(tags: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(tags.len());
    for tag in tags {
        if !out.contains(tag) {
            out.push(tag.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn tag_filters_are_all_of_and_any_of_combined_by_and() {
        let cases = [
            (vec!["a", "b"], vec![], vec![], true),
            (vec!["a", "b"], vec!["a"], vec![], true),
            (vec!["a", "b"], vec!["a", "b"], vec![], true),
            (vec!["a"], vec!["a", "b"], vec![], false),
            (vec!["a"], vec![], vec!["b", "a"], true),
            (vec!["a"], vec![], vec!["b", "c"], false),
            (vec!["a", "b"], vec!["a"], vec!["b"], true),
            (vec!["a", "b"], vec!["a"], vec!["c"], false),
            (vec![], vec![], vec!["a"], false),
        ];
        for (tags, all, any, want) in cases {
            assert_eq!(
                tags_match(&strings(&tags), &strings(&all), &strings(&any)),
                want,
                "{tags:?} all {all:?} any {any:?}"
            );
        }
    }

    #[test]
    fn a_fresh_state_has_keystones_bootstrap_resources_only() {
        let state = FakeState::default();
        let mut roles: Vec<_> = state.roles.values().map(|r| r.name.as_str()).collect();
        roles.sort();
        assert_eq!(roles, ["admin", "member", "reader"]);
        assert_eq!(state.projects.len(), 1);
        assert_eq!(state.projects[state.admin_project()].name, "admin");
        assert_eq!(state.admin_project().as_str().len(), 32);
        assert!(state.networks.is_empty() && state.security_groups.is_empty());
        assert!(state.project_resources(state.admin_project()).is_empty());
        assert_eq!(state.port_status_on_create, "DOWN");
    }

    #[test]
    fn ids_are_unique_and_shaped_like_the_services_ids() {
        let mut state = FakeState::default();
        let a = state.uuid();
        let b = state.uuid();
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(a.matches('-').count(), 4);
        assert!(a < b, "creation order is id order");
    }
}
