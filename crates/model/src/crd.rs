//! The `Tenant` and `Network` custom resources (group `stackube.kubernetes.io`, version `v1`).
//!
//! The seed's YAML must keep working verbatim, so the field names are the original's
//! (`spec.username`, `spec.password`, `spec.tenantID`; `spec.cidr`, `spec.gateway`,
//! `spec.networkID`; `status.state`). Validation is part of the schema (CEL rules, checked by
//! kube-apiserver), so a bad spec is refused at `kubectl create` with a message that names the
//! field, before the controller ever sees it.
//!
//! New spec fields (a runtime class, the Pod Security level; later quotas) are optional fields of
//! `v1`, which keeps existing objects valid.

// False positive: KubeSchema expands each struct into a private shadow copy.
#![allow(unreachable_pub)]

use kube::CustomResource;
use kube::KubeSchema;
use serde::{Deserialize, Serialize};

/// The CRDs' API group. It sits under `kubernetes.io` for the seed's sake, which needs the
/// approval annotation below.
pub const GROUP: &str = "stackube.kubernetes.io";

/// Value of the `api-approved.kubernetes.io` annotation the apiserver demands for a group under
/// `kubernetes.io`.
pub const API_APPROVAL: &str =
    "unapproved, Stackube keeps the 2017 group stackube.kubernetes.io for compatibility";

/// Label on a tenant's namespace and its Network: the Tenant they belong to.
pub const TENANT_LABEL: &str = "stackube.kubernetes.io/tenant";

/// Label on a namespace whose Networks Stackube makes in Neutron: the Keystone project that owns
/// them (a tenant's, or the cloud admin's for the cluster network's namespace).
pub const PROJECT_LABEL: &str = "stackube.kubernetes.io/project-id";

/// Label on a tenant's namespace: the RuntimeClass its pods run in (deploy/admission.yaml gives it
/// to pods that name none and refuses pods that name another).
pub const RUNTIME_CLASS_LABEL: &str = "stackube.kubernetes.io/runtime-class";

/// Label on a tenant's namespace while its Keystone project is disabled: the tenant is locked
/// out, and deploy/admission.yaml refuses new pods there (value `"true"`). Only the controller
/// sets and removes it.
pub const SUSPENDED_LABEL: &str = "stackube.kubernetes.io/suspended";

/// Names the apiserver reserves or the cluster itself uses: no tenant may take them.
pub const RESERVED_NAMESPACES: [&str; 4] =
    ["default", "kube-system", "kube-public", "kube-node-lease"];

/// A tenant: one Keystone project, an optional Keystone user with the member role, a namespace
/// of the same name with RBAC for the project's members, and a default Network.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[kube(
    group = "stackube.kubernetes.io",
    version = "v1",
    kind = "Tenant",
    status = "TenantStatus",
    shortname = "tnt",
    annotation(
        "api-approved.kubernetes.io",
        "unapproved, Stackube keeps the 2017 group stackube.kubernetes.io for compatibility"
    ),
    printcolumn(name = "Project", type_ = "string", json_path = ".status.projectID"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].reason"
    ),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    validation = Rule::new("size(self.metadata.name) <= 63 && self.metadata.name.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')")
        .message("metadata.name must be a DNS label (lowercase letters, digits and '-', at most 63 characters): it names the tenant's namespace"),
    validation = Rule::new("!(self.metadata.name in ['default', 'kube-system', 'kube-public', 'kube-node-lease'])")
        .message("metadata.name must not be a reserved namespace (default, kube-system, kube-public, kube-node-lease)")
)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("!has(self.password) || !has(self.passwordSecretRef)")
        .message("spec.password and spec.passwordSecretRef are mutually exclusive")
        .field_path(".passwordSecretRef"),
    validation = Rule::new("has(self.username) == (has(self.password) || has(self.passwordSecretRef))")
        .message("spec.username needs exactly one of spec.password or spec.passwordSecretRef, and a password needs spec.username"),
    validation = Rule::new("has(oldSelf.username) == has(self.username) && (!has(self.username) || self.username == oldSelf.username)")
        .message("spec.username is immutable")
        .field_path(".username"),
    validation = Rule::new("has(oldSelf.tenantID) == has(self.tenantID) && (!has(self.tenantID) || self.tenantID == oldSelf.tenantID)")
        .message("spec.tenantID is immutable")
        .field_path(".tenantID")
)]
pub struct TenantSpec {
    /// Keystone user to create in the tenant's project, with the `member` role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("size(self) >= 1 && size(self) <= 64 && self.matches('^[A-Za-z0-9][A-Za-z0-9_.@-]*$')")
        .message("spec.username must be 1 to 64 letters, digits, '_', '.', '@' or '-', starting with a letter or digit"))]
    #[schemars(length(max = 64))]
    pub username: Option<String>,

    /// That user's password, in clear (the seed's form). Prefer `passwordSecretRef`: Stackube
    /// never writes a password anywhere, but whoever can read Tenants can read this field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("size(self) >= 1 && size(self) <= 4096")
        .message("spec.password must be 1 to 4096 characters"))]
    #[schemars(length(max = 4096))]
    pub password: Option<String>,

    /// That user's password, from a key of a Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_secret_ref: Option<SecretKeyRef>,

    /// Id of an existing Keystone project to adopt instead of creating one. An adopted project
    /// is never deleted by Stackube.
    #[serde(default, rename = "tenantID", skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.matches('^[A-Za-z0-9_-]{1,64}$')")
        .message("spec.tenantID must be a Keystone project id (letters, digits, '_' or '-', at most 64 characters)"))]
    #[schemars(length(max = 64))]
    pub tenant_id: Option<String>,

    /// The RuntimeClass every pod of the tenant's namespace runs in: given to a pod that names
    /// none, and a pod that names another is refused (deploy/admission.yaml). Default: the
    /// controller's `default-runtime-class`, the sandbox (`gvisor`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("size(self) <= 253 && self.matches('^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$')")
        .message("spec.runtimeClassName must be a RuntimeClass name (lowercase letters, digits, '-' and '.', at most 253 characters)"))]
    #[schemars(length(max = 253))]
    pub runtime_class_name: Option<String>,

    /// The Pod Security Standard enforced in the tenant's namespace (Pod Security Admission):
    /// `privileged`, `baseline` (the default) or `restricted`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_security: Option<PodSecurityLevel>,
}

/// A Pod Security Standard level.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum PodSecurityLevel {
    /// Unrestricted.
    Privileged,
    /// No known privilege escalation: no host namespaces, privileged containers or hostPath.
    #[default]
    Baseline,
    /// Hardened: baseline, and non-root, no privilege escalation, a restricted set of volumes.
    Restricted,
}

impl PodSecurityLevel {
    /// The level's name, as Pod Security Admission's labels take it.
    pub fn as_str(self) -> &'static str {
        match self {
            PodSecurityLevel::Privileged => "privileged",
            PodSecurityLevel::Baseline => "baseline",
            PodSecurityLevel::Restricted => "restricted",
        }
    }
}

/// A key of a Secret.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Namespace of the Secret.
    #[x_kube(validation = Rule::new("size(self) >= 1 && size(self) <= 63")
        .message("spec.passwordSecretRef.namespace must be a namespace name"))]
    #[schemars(length(max = 63))]
    pub namespace: String,
    /// Name of the Secret.
    #[x_kube(validation = Rule::new("size(self) >= 1 && size(self) <= 253")
        .message("spec.passwordSecretRef.name must be a Secret name"))]
    #[schemars(length(max = 253))]
    pub name: String,
    /// Key in the Secret's data (default `password`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub key: Option<String>,
}

impl SecretKeyRef {
    /// The key to read (default `password`).
    pub fn key(&self) -> &str {
        self.key.as_deref().unwrap_or("password")
    }
}

/// What the controller observed and did for a Tenant.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct TenantStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`, and one condition per part: `ProjectReady`, `UserReady`, `NamespaceReady`,
    /// `RBACReady`, `NetworkReady`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The Keystone project.
    #[serde(default, rename = "projectID", skip_serializing_if = "Option::is_none")]
    pub project_id: Option<String>,
    /// The Keystone user created for `spec.username`.
    #[serde(default, rename = "userID", skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// What the user's password was last set from: `<spec generation>/<Secret resourceVersion>`
    /// (`-` without a Secret). Never the password: only enough to notice that the spec or the
    /// Secret changed since, and set it again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_applied: Option<String>,
}

/// A Network: a Neutron network with a subnet and a router gatewayed to the external network,
/// or an adopted existing Neutron network.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[kube(
    group = "stackube.kubernetes.io",
    version = "v1",
    kind = "Network",
    namespaced,
    status = "NetworkStatus",
    shortname = "snet",
    annotation(
        "api-approved.kubernetes.io",
        "unapproved, Stackube keeps the 2017 group stackube.kubernetes.io for compatibility"
    ),
    printcolumn(name = "CIDR", type_ = "string", json_path = ".spec.cidr"),
    printcolumn(name = "Gateway", type_ = "string", json_path = ".spec.gateway"),
    printcolumn(name = "State", type_ = "string", json_path = ".status.state"),
    printcolumn(name = "Network ID", type_ = "string", json_path = ".status.networkID"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    validation = Rule::new("size(self.metadata.name) <= 63")
        .message("metadata.name must be at most 63 characters")
)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("!isCIDR(self.cidr) || !isIP(self.gateway) || cidr(self.cidr).containsIP(self.gateway)")
        .message("spec.gateway must be inside spec.cidr")
        .field_path(".gateway"),
    validation = Rule::new("!isCIDR(self.cidr) || !isIP(self.gateway) || string(cidr(self.cidr).ip()) != self.gateway")
        .message("spec.gateway must not be the network address of spec.cidr")
        .field_path(".gateway"),
    validation = Rule::new("self.cidr == oldSelf.cidr")
        .message("spec.cidr is immutable")
        .field_path(".cidr"),
    validation = Rule::new("self.gateway == oldSelf.gateway")
        .message("spec.gateway is immutable")
        .field_path(".gateway"),
    validation = Rule::new("(has(self.networkID) ? self.networkID : '') == (has(oldSelf.networkID) ? oldSelf.networkID : '')")
        .message("spec.networkID is immutable")
        .field_path(".networkID")
)]
pub struct NetworkSpec {
    /// IPv4 CIDR of the subnet, e.g. `10.244.0.0/16`. Tenants may all use the same one.
    #[x_kube(
        validation = Rule::new("isCIDR(self) && cidr(self).ip().family() == 4 && cidr(self).prefixLength() >= 8 && cidr(self).prefixLength() <= 30")
            .message("spec.cidr must be an IPv4 CIDR between /8 and /30, like 10.244.0.0/16"),
        validation = Rule::new("!isCIDR(self) || string(cidr(self).masked()) == self")
            .message("spec.cidr must have no host bits set (like 10.244.0.0/16, not 10.244.0.1/16)")
    )]
    #[schemars(length(max = 18))]
    pub cidr: String,
    /// Gateway address, inside `cidr` (normally its first address).
    #[x_kube(validation = Rule::new("isIP(self) && ip(self).family() == 4")
        .message("spec.gateway must be an IPv4 address, like 10.244.0.1"))]
    #[schemars(length(max = 15))]
    pub gateway: String,
    /// Id of an existing Neutron network to use instead of creating one; Stackube never deletes
    /// it. Empty means none (the seed's objects carry `networkID: ""`).
    #[serde(default, rename = "networkID", skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self == '' || self.matches('^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$')")
        .message("spec.networkID must be a Neutron network id (a UUID) or empty"))]
    #[schemars(length(max = 36))]
    pub network_id: Option<String>,
}

impl NetworkSpec {
    /// The adopted network's id, if any (`""` counts as none).
    pub fn adopted_network_id(&self) -> Option<&str> {
        self.network_id.as_deref().filter(|id| !id.is_empty())
    }
}

/// The seed's `status.state` values.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, schemars::JsonSchema)]
pub enum NetworkState {
    /// Being created (or waiting for its tenant's project).
    Pending,
    /// Network, subnet and router exist and are wired.
    Active,
    /// Something failed; `status.message` and the conditions say what.
    Failed,
    /// Being deleted.
    Terminating,
}

/// What the controller observed and did for a Network.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct NetworkStatus {
    /// The seed's summary: `Active` or `Failed` (and `Pending`, `Terminating`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<NetworkState>,
    /// Why it is not `Active`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`, plus `NetworkReady`, `SubnetReady`, `RouterReady`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The Neutron network.
    #[serde(default, rename = "networkID", skip_serializing_if = "Option::is_none")]
    pub network_id: Option<String>,
    /// Its subnet (not set for an adopted network).
    #[serde(default, rename = "subnetID", skip_serializing_if = "Option::is_none")]
    pub subnet_id: Option<String>,
    /// Its router (not set for an adopted network).
    #[serde(default, rename = "routerID", skip_serializing_if = "Option::is_none")]
    pub router_id: Option<String>,
    /// The security group pods' ports on it are put in (not set for an adopted network: its
    /// pods get the project's `default` group).
    #[serde(
        default,
        rename = "securityGroupID",
        skip_serializing_if = "Option::is_none"
    )]
    pub security_group_id: Option<String>,
}

/// A status condition, shaped like `metav1.Condition`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// `Ready`, `ProjectReady`, ….
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// One CamelCase word for machines.
    pub reason: String,
    /// A sentence for people.
    #[serde(default)]
    pub message: String,
    /// The generation the condition was computed for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// When `status` last changed (RFC 3339).
    pub last_transition_time: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Seed 001's `test-tenant.yaml`, verbatim.
    const SEED_TENANT: &str = r#"apiVersion: "stackube.kubernetes.io/v1"
kind: Tenant
metadata:
   name: test
spec:
   username: "test"
   password: "password"
"#;

    #[test]
    fn the_seed_tenant_parses() {
        let tenant: Tenant = serde_saphyr::from_str(SEED_TENANT).unwrap();
        assert_eq!(tenant.metadata.name.as_deref(), Some("test"));
        assert_eq!(tenant.spec.username.as_deref(), Some("test"));
        assert_eq!(tenant.spec.password.as_deref(), Some("password"));
        assert_eq!(tenant.spec.tenant_id, None);
    }

    #[test]
    fn the_seed_network_parses_and_empty_network_id_means_none() {
        let yaml = "apiVersion: stackube.kubernetes.io/v1\nkind: Network\nmetadata:\n  name: test\n  namespace: test\nspec:\n  cidr: 10.244.0.0/16\n  gateway: 10.244.0.1\n  networkID: \"\"\n";
        let network: Network = serde_saphyr::from_str(yaml).unwrap();
        assert_eq!(network.spec.cidr, "10.244.0.0/16");
        assert_eq!(network.spec.adopted_network_id(), None);
        let status = NetworkStatus {
            state: Some(NetworkState::Active),
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_value(&status).unwrap(),
            serde_json::json!({"state": "Active"})
        );
    }
}
