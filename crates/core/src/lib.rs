//! Stackube's pure logic.
//!
//! Everything here is a function of its inputs: naming of OpenStack resources, and (as the
//! components grow) the plans reconcilers carry out, RBAC objects, nftables rulesets and DNS
//! answers. No tokio, no HTTP, no netlink: that keeps this crate fast to test with tables of
//! cases, and keeps every side effect in an adapter.

pub mod naming;
