//! Typed identifiers for OpenStack resources.
//!
//! OpenStack hands out opaque string ids for everything; mixing a network id up with a subnet id
//! type-checks as a `String` and fails at run time as a 404. Each resource gets its own newtype so
//! that such mix-ups are compile errors. The ids are never parsed: Keystone ids are 32 hex digits,
//! Neutron and Cinder ids are UUIDs, and adopted resources may come from other tooling.

use std::fmt;

use serde::{Deserialize, Serialize};

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Wraps an id as returned by OpenStack.
            pub fn new(id: impl Into<String>) -> Self {
                Self(id.into())
            }

            /// The id as OpenStack spells it.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<String> for $name {
            fn from(id: String) -> Self {
                Self(id)
            }
        }

        impl From<&str> for $name {
            fn from(id: &str) -> Self {
                Self(id.to_owned())
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

id_type!(
    /// A Keystone project (tenant) id.
    ProjectId
);
id_type!(
    /// A Keystone user id.
    UserId
);
id_type!(
    /// A Keystone role id.
    RoleId
);
id_type!(
    /// A Neutron network id.
    NetworkId
);
id_type!(
    /// A Neutron subnet id.
    SubnetId
);
id_type!(
    /// A Neutron router id.
    RouterId
);
id_type!(
    /// A Neutron port id.
    PortId
);
id_type!(
    /// A Neutron security group id.
    SecurityGroupId
);
id_type!(
    /// A Neutron security group rule id.
    SecurityGroupRuleId
);
id_type!(
    /// A Neutron floating IP id.
    FloatingIpId
);
id_type!(
    /// A Cinder volume id.
    VolumeId
);
id_type!(
    /// A Cinder attachment id.
    AttachmentId
);
id_type!(
    /// A Cinder snapshot id.
    SnapshotId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_serialize_as_bare_strings() {
        let id = NetworkId::new("5f3c0d1e-0000-4000-8000-000000000001");
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, r#""5f3c0d1e-0000-4000-8000-000000000001""#);
        let back: NetworkId = serde_json::from_str(&json).unwrap();
        assert_eq!(back, id);
        assert_eq!(back.to_string(), "5f3c0d1e-0000-4000-8000-000000000001");
    }
}
