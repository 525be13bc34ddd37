//! The objects of a ClientIP-affinity frontend, kube-proxy's way: per endpoint, a set of the
//! clients it had lately (`timeout` after their last new connection) and a chain that records
//! the client and DNATs to the endpoint; per frontend, a chain that sends known clients to their
//! endpoint and new ones to one at random.

use std::net::SocketAddrV4;

use super::names::{affinity_chain, affinity_set, endpoint_chain};
use super::parts::Parts;
use super::{Command, KeyType, SetDef, SetFlag};
use crate::proxy::table::Frontend;

impl Parts<'_> {
    /// The set and chain of one endpoint of an affinity frontend.
    pub(super) fn affinity_endpoint(
        &self,
        frontend: &Frontend,
        timeout: u32,
        endpoint: &SocketAddrV4,
    ) -> Vec<Command> {
        let set = affinity_set(frontend, endpoint);
        let chain = endpoint_chain(frontend, endpoint);
        vec![
            Command::AddSet {
                table: self.table(),
                set: SetDef {
                    name: set.clone(),
                    map: false,
                    key: KeyType::Type("ipv4_addr".into()),
                    flags: vec![SetFlag::Dynamic, SetFlag::Timeout],
                    timeout: Some(timeout),
                    // Filled by the packet path: a hash that grows.
                    size: None,
                },
            },
            self.chain(&chain, None),
            self.rule(&chain, format!("update @{set} {{ ip saddr }}")),
            self.rule(
                &chain,
                format!("meta l4proto {} dnat ip to {endpoint}", frontend.protocol),
            ),
        ]
    }

    /// Deletes the chain and set of one endpoint of an affinity frontend (the chain first: its
    /// rule refers to the set).
    pub(super) fn delete_affinity_endpoint(
        &self,
        frontend: &Frontend,
        endpoint: &SocketAddrV4,
    ) -> Vec<Command> {
        vec![
            self.delete_chain(endpoint_chain(frontend, endpoint)),
            self.delete_set(affinity_set(frontend, endpoint), false),
        ]
    }

    /// The rules of an affinity frontend's chain: known clients to their endpoint, new ones to
    /// one at random.
    pub(super) fn affinity_rules(
        &self,
        frontend: &Frontend,
        endpoints: &[SocketAddrV4],
    ) -> Vec<Command> {
        let chain = affinity_chain(frontend);
        let mut rules: Vec<Command> = endpoints
            .iter()
            .map(|endpoint| {
                self.rule(
                    &chain,
                    format!(
                        "ip saddr @{} goto {}",
                        affinity_set(frontend, endpoint),
                        endpoint_chain(frontend, endpoint)
                    ),
                )
            })
            .collect();
        let choices: Vec<String> = endpoints
            .iter()
            .enumerate()
            .map(|(slot, e)| format!("{slot} : goto {}", endpoint_chain(frontend, e)))
            .collect();
        rules.push(self.rule(
            &chain,
            format!(
                "numgen random mod {} vmap {{ {} }}",
                endpoints.len(),
                choices.join(", ")
            ),
        ));
        rules
    }

    /// Everything of an affinity frontend but its `services` element.
    pub(super) fn affinity(
        &self,
        frontend: &Frontend,
        timeout: u32,
        endpoints: &[SocketAddrV4],
    ) -> Vec<Command> {
        let mut commands: Vec<Command> = endpoints
            .iter()
            .flat_map(|e| self.affinity_endpoint(frontend, timeout, e))
            .collect();
        commands.push(self.chain(&affinity_chain(frontend), None));
        commands.extend(self.affinity_rules(frontend, endpoints));
        commands
    }

    /// Deletes everything of an affinity frontend, once its `services` element is gone.
    pub(super) fn delete_affinity(
        &self,
        frontend: &Frontend,
        endpoints: &[SocketAddrV4],
    ) -> Vec<Command> {
        let mut commands = vec![self.delete_chain(affinity_chain(frontend))];
        commands.extend(
            endpoints
                .iter()
                .flat_map(|e| self.delete_affinity_endpoint(frontend, e)),
        );
        commands
    }
}
