//! Stackube's pure logic.
//!
//! Everything here is a function of its inputs: naming and ownership tags of OpenStack
//! resources, the plans reconcilers carry out (observe → **plan** → apply → report), status
//! conditions, the RBAC objects of a tenant, and (as the components grow) nftables rulesets and
//! DNS answers. No tokio, no HTTP, no netlink: that keeps this crate fast to test with tables
//! of cases, and keeps every side effect in an adapter.

pub mod cluster;
pub mod conditions;
pub mod dns;
pub mod identity;
pub mod kubestack;
pub mod loadbalancer;
pub mod namespace;
pub mod naming;
pub mod netpol;
pub mod network;
pub mod ownership;
pub mod project;
pub mod proxy;
pub mod tenant;
pub mod volume;
