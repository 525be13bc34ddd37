//! Stackube's shared vocabulary: the `Tenant` and `Network` custom resources, the controller's
//! configuration, typed OpenStack identifiers, and IPv4 CIDRs.
//!
//! This crate does no I/O and depends on no runtime (kube only for its derive macros and core
//! types): `core`, the adapters and the binaries all build on it.

pub mod config;
pub mod crd;
pub mod ids;
pub mod net;

pub use ids::{
    AttachmentId, FloatingIpId, NetworkId, PortId, ProjectId, RoleId, RouterId, SecurityGroupId,
    SecurityGroupRuleId, SnapshotId, SubnetId, UserId, VolumeId,
};
