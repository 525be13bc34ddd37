//! Serde helpers for OpenStack's JSON.

use serde::{Deserialize, Deserializer};

/// Deserializes `null` as the type's default. OpenStack sends `null` for many fields that are
/// usually strings, lists or booleans (a security group rule's `description`, a volume's
/// `name`), varying by release and by who created the resource.
pub(crate) fn nullable<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}
