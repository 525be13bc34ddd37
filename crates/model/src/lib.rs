//! Stackube's shared vocabulary: the identifiers of OpenStack and Kubernetes objects that cross
//! crate boundaries, and (as the components grow) the CRD and configuration types.
//!
//! This crate does no I/O and depends on no runtime: `core`, the adapters and the binaries all
//! build on it.

pub mod ids;

pub use ids::{
    AttachmentId, FloatingIpId, NetworkId, PortId, ProjectId, RoleId, RouterId, SecurityGroupId,
    SecurityGroupRuleId, SubnetId, UserId, VolumeId,
};
