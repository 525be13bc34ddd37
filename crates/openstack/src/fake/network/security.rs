//! Security groups and rules of the fake Neutron, with the implicit `default` group.
//!
//! Like Neutron, the first network, port (of a non-`network:*` owner with port security, and
//! no groups asked for) or security group created in a project first creates that project's
//! group `default` ("Default security group"): egress to anywhere over IPv4 and IPv6, ingress
//! over IPv4 and IPv6 from members of the group itself. Nothing deletes it but an explicit
//! `delete_security_group`; a tenant's cleanup that forgets it leaks it, as on a real cloud.
//! Every other new group gets the two egress rules only.

use stackube_model::{ProjectId, SecurityGroupId, SecurityGroupRuleId};

use super::super::ipam::{Cidr, CidrError};
use super::{checked_tags, not_found};
use crate::error::{ErrorKind, Result};
use crate::fake::error;
use crate::fake::state::FakeState;
use crate::network::{
    Direction, Ethertype, NewSecurityGroup, NewSecurityGroupRule, SecurityGroup, SecurityGroupRule,
};
use crate::observe::Call;

/// The name of the group Neutron makes in every project.
pub(super) const DEFAULT_GROUP: &str = "default";

impl FakeState {
    /// The project's `default` group, created (with its four rules) if it does not exist.
    pub(super) fn ensure_default_security_group(&mut self, project: &ProjectId) -> SecurityGroupId {
        if let Some(group) = self
            .security_groups
            .values()
            .find(|g| g.name == DEFAULT_GROUP && g.project_id.as_ref() == Some(project))
        {
            return group.id.clone();
        }
        let id = SecurityGroupId::new(self.uuid());
        let mut rules = Vec::new();
        for ethertype in [Ethertype::IPv4, Ethertype::IPv6] {
            rules.push(self.plain_rule(&id, project, Direction::Ingress, ethertype, Some(&id)));
            rules.push(self.plain_rule(&id, project, Direction::Egress, ethertype, None));
        }
        let group = SecurityGroup {
            id: id.clone(),
            name: DEFAULT_GROUP.to_owned(),
            description: "Default security group".to_owned(),
            project_id: Some(project.clone()),
            rules,
            tags: Vec::new(),
        };
        self.security_groups.insert(id.clone(), group);
        id
    }

    /// A rule for any protocol and port, from anywhere or from `remote_group`.
    fn plain_rule(
        &mut self,
        group: &SecurityGroupId,
        project: &ProjectId,
        direction: Direction,
        ethertype: Ethertype,
        remote_group: Option<&SecurityGroupId>,
    ) -> SecurityGroupRule {
        SecurityGroupRule {
            id: SecurityGroupRuleId::new(self.uuid()),
            security_group_id: group.clone(),
            direction,
            ethertype,
            protocol: None,
            port_range_min: None,
            port_range_max: None,
            remote_ip_prefix: None,
            remote_group_id: remote_group.cloned(),
            description: String::new(),
            project_id: Some(project.clone()),
        }
    }

    pub(super) fn create_security_group(
        &mut self,
        c: &Call,
        new: &NewSecurityGroup,
    ) -> Result<SecurityGroup> {
        let tags = checked_tags(c, &new.tags)?;
        if new.name == DEFAULT_GROUP {
            return Err(error(
                ErrorKind::Conflict,
                c,
                "default security group already exists",
            ));
        }
        let project = self.project_or_admin(new.project_id.as_ref());
        self.ensure_default_security_group(&project);
        let id = SecurityGroupId::new(self.uuid());
        let rules = [Ethertype::IPv4, Ethertype::IPv6]
            .into_iter()
            .map(|e| self.plain_rule(&id, &project, Direction::Egress, e, None))
            .collect();
        let group = SecurityGroup {
            id: id.clone(),
            name: new.name.clone(),
            description: new.description.clone().unwrap_or_default(),
            project_id: Some(project),
            rules,
            tags,
        };
        self.security_groups.insert(id, group.clone());
        Ok(group)
    }

    pub(super) fn delete_security_group(&mut self, c: &Call, id: &SecurityGroupId) -> Result<()> {
        if !self.security_groups.contains_key(id) {
            return Ok(());
        }
        if let Some(port) = self
            .ports
            .values()
            .find(|p| p.security_group_ids.contains(id))
        {
            return Err(error(
                ErrorKind::Conflict,
                c,
                format!("security group {id} in use: port {}", port.id),
            ));
        }
        self.security_groups.remove(id);
        // Rules allowing traffic from the group go with it (a foreign key with ON DELETE
        // CASCADE in Neutron).
        for group in self.security_groups.values_mut() {
            group
                .rules
                .retain(|r| r.remote_group_id.as_ref() != Some(id));
        }
        Ok(())
    }

    pub(super) fn create_security_group_rule(
        &mut self,
        c: &Call,
        new: &NewSecurityGroupRule,
    ) -> Result<SecurityGroupRule> {
        let group = self
            .security_groups
            .get(&new.security_group_id)
            .ok_or_else(|| not_found(c, "security group", &new.security_group_id))?;
        if let Some(existing) = group.rules.iter().find(|r| new.matches(r)) {
            return Ok(existing.clone());
        }
        check_rule(c, new)?;
        if let Some(remote) = &new.remote_group_id
            && !self.security_groups.contains_key(remote)
        {
            return Err(not_found(c, "security group", remote));
        }
        let rule = SecurityGroupRule {
            id: SecurityGroupRuleId::new(self.uuid()),
            security_group_id: new.security_group_id.clone(),
            direction: new.direction,
            ethertype: new.ethertype,
            protocol: new.protocol.clone(),
            port_range_min: new.port_range_min,
            port_range_max: new.port_range_max,
            remote_ip_prefix: new.remote_ip_prefix.clone(),
            remote_group_id: new.remote_group_id.clone(),
            description: new.description.clone().unwrap_or_default(),
            project_id: Some(self.project_or_admin(new.project_id.as_ref())),
        };
        if let Some(group) = self.security_groups.get_mut(&new.security_group_id) {
            group.rules.push(rule.clone());
        }
        Ok(rule)
    }
}

/// Neutron's checks of a rule on its own.
fn check_rule(c: &Call, new: &NewSecurityGroupRule) -> Result<()> {
    let invalid = |message: String| Err(error(ErrorKind::Invalid, c, message));
    let has_ports = new.port_range_min.is_some() || new.port_range_max.is_some();
    if has_ports && new.protocol.is_none() {
        return invalid("must also specify protocol if port range is given".to_owned());
    }
    let ported = new.protocol.as_deref().is_some_and(|p| {
        ["tcp", "udp", "sctp", "6", "17", "132"].contains(&p.to_lowercase().as_str())
    });
    if ported
        && let (Some(min), Some(max)) = (new.port_range_min, new.port_range_max)
        && min > max
    {
        return invalid(format!(
            "port_range_min {min} is greater than port_range_max {max}"
        ));
    }
    if new.remote_ip_prefix.is_some() && new.remote_group_id.is_some() {
        return invalid("only remote_ip_prefix or remote_group_id may be provided".to_owned());
    }
    if let Some(prefix) = &new.remote_ip_prefix {
        let version = match Cidr::parse(prefix) {
            Ok(cidr) => cidr.ip_version(),
            // Neutron accepts host bits in a remote prefix.
            Err(CidrError::HostBits(fixed)) => {
                Cidr::parse(&fixed).map(|c| c.ip_version()).unwrap_or(0)
            }
            Err(CidrError::Malformed) => return invalid(format!("{prefix:?} is not a cidr")),
        };
        let want = match new.ethertype {
            Ethertype::IPv4 => 4,
            Ethertype::IPv6 => 6,
        };
        if version != want {
            return invalid(format!(
                "conflicting value ethertype {:?} for cidr {prefix}",
                new.ethertype
            ));
        }
    }
    Ok(())
}
