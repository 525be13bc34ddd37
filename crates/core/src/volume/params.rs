//! The parameters of a CreateVolume call: the StorageClass's `parameters`, plus what the
//! provisioner adds with `--extra-create-metadata`.

use std::collections::BTreeMap;

/// StorageClass key: the Cinder volume type (Cinder's default type when absent).
pub const VOLUME_TYPE: &str = "type";
/// StorageClass key: the Cinder availability zone (Cinder's default when absent).
pub const AVAILABILITY_ZONE: &str = "availability";
/// Added by the provisioner: the PVC's namespace, which says whose project the volume goes
/// in.
pub const PVC_NAMESPACE: &str = "csi.storage.k8s.io/pvc/namespace";
/// Added by the provisioner: the PVC's name.
pub const PVC_NAME: &str = "csi.storage.k8s.io/pvc/name";
/// Added by the provisioner: the PV's name.
pub const PV_NAME: &str = "csi.storage.k8s.io/pv/name";

/// The parameters, read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Parameters {
    /// `type`.
    pub volume_type: Option<String>,
    /// `availability`.
    pub availability_zone: Option<String>,
    /// The PVC's namespace, when the provisioner says.
    pub pvc_namespace: Option<String>,
    /// The PVC's name, when the provisioner says.
    pub pvc_name: Option<String>,
    /// The PV's name, when the provisioner says.
    pub pv_name: Option<String>,
}

/// A parameter Stackube does not know, or a known one with an empty value; it names the key.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParamsError {
    /// Not a key of stackube-csi.
    #[error(
        "parameters.{0}: unknown parameter (stackube-csi takes `type` and `availability`, and \
         the provisioner's csi.storage.k8s.io/pvc/name, pvc/namespace and pv/name)"
    )]
    Unknown(String),
    /// An empty value.
    #[error("parameters.{0}: empty")]
    Empty(String),
}

impl Parameters {
    /// Reads `parameters`; an unknown key is refused rather than ignored (a typo in a
    /// StorageClass would otherwise give volumes of the wrong type without a word).
    pub fn parse(parameters: &BTreeMap<String, String>) -> Result<Parameters, ParamsError> {
        let mut read = Parameters::default();
        for (key, value) in parameters {
            let slot = match key.as_str() {
                VOLUME_TYPE => &mut read.volume_type,
                AVAILABILITY_ZONE => &mut read.availability_zone,
                PVC_NAMESPACE => &mut read.pvc_namespace,
                PVC_NAME => &mut read.pvc_name,
                PV_NAME => &mut read.pv_name,
                _ => return Err(ParamsError::Unknown(key.clone())),
            };
            let value = value.trim();
            if value.is_empty() {
                return Err(ParamsError::Empty(key.clone()));
            }
            *slot = Some(value.to_owned());
        }
        Ok(read)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn known_keys_are_read_and_others_refused_by_name() {
        let read = Parameters::parse(&map(&[
            ("type", "ceph"),
            ("availability", "nova"),
            (PVC_NAMESPACE, "test"),
            (PVC_NAME, "data"),
            (PV_NAME, "pvc-1"),
        ]))
        .unwrap();
        assert_eq!(read.volume_type.as_deref(), Some("ceph"));
        assert_eq!(read.availability_zone.as_deref(), Some("nova"));
        assert_eq!(read.pvc_namespace.as_deref(), Some("test"));
        assert_eq!(read.pvc_name.as_deref(), Some("data"));
        assert_eq!(read.pv_name.as_deref(), Some("pvc-1"));
        assert_eq!(Parameters::parse(&map(&[])).unwrap(), Parameters::default());

        let e = Parameters::parse(&map(&[("volumeType", "ceph")]))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("parameters.volumeType: unknown"), "{e}");
        let e = Parameters::parse(&map(&[("type", " ")]))
            .unwrap_err()
            .to_string();
        assert_eq!(e, "parameters.type: empty");
    }
}
