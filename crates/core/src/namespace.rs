//! The labels of a tenant's namespace: whose it is (the Tenant, its Keystone project), the
//! RuntimeClass its pods run in (read by deploy/admission.yaml's admission policies), the Pod
//! Security Standard enforced there (read by Pod Security Admission), and, while the tenant's
//! project is disabled in Keystone, that the tenant is locked out (read by deploy/admission.yaml,
//! which then refuses new pods).
//!
//! # Guarantees
//! - A namespace is current only when it carries every label with the value wanted: a label
//!   removed or edited by hand makes the reconciler apply them again.
//! - The suspension label is the controller's alone: present when the tenant is not locked out,
//!   the namespace is not current, and applying the labels removes it.
//! - Other labels of others (a cluster admin's own) are neither wanted nor checked.

use std::collections::BTreeMap;

use stackube_model::crd::{
    PROJECT_LABEL, PodSecurityLevel, RUNTIME_CLASS_LABEL, SUSPENDED_LABEL, TENANT_LABEL, TenantSpec,
};

use crate::tenant::Access;

/// Pod Security Admission's label: the level it enforces in the namespace.
pub const PSA_ENFORCE: &str = "pod-security.kubernetes.io/enforce";
/// The version of the standard it enforces.
pub const PSA_ENFORCE_VERSION: &str = "pod-security.kubernetes.io/enforce-version";
/// The level it warns about (a user's `kubectl` shows what a pod would break).
pub const PSA_WARN: &str = "pod-security.kubernetes.io/warn";

/// What a tenant's pods may be and run in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodPolicy {
    /// The RuntimeClass of every pod.
    pub runtime_class: String,
    /// The Pod Security Standard enforced.
    pub pod_security: PodSecurityLevel,
}

impl PodPolicy {
    /// The policy `spec` asks for; `default_runtime_class` (the controller's configuration) when
    /// it names no RuntimeClass.
    pub fn of(spec: &TenantSpec, default_runtime_class: &str) -> PodPolicy {
        PodPolicy {
            runtime_class: spec
                .runtime_class_name
                .clone()
                .unwrap_or_else(|| default_runtime_class.to_owned()),
            pod_security: spec.pod_security.unwrap_or_default(),
        }
    }
}

/// The labels of tenant `tenant`'s namespace, whose project is `project`, with `access`.
pub fn tenant_labels(
    tenant: &str,
    project: &str,
    policy: &PodPolicy,
    access: Access,
) -> BTreeMap<String, String> {
    let level = policy.pod_security.as_str();
    let suspended = (access == Access::Suspended).then_some((SUSPENDED_LABEL, "true"));
    [
        (TENANT_LABEL, tenant),
        (PROJECT_LABEL, project),
        (RUNTIME_CLASS_LABEL, policy.runtime_class.as_str()),
        (PSA_ENFORCE, level),
        (PSA_ENFORCE_VERSION, "latest"),
        (PSA_WARN, level),
    ]
    .into_iter()
    .chain(suspended)
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// Whether `have` carries every label of `want`, with its value, and the suspension label only
/// if `want` has it.
pub fn is_current(have: &BTreeMap<String, String>, want: &BTreeMap<String, String>) -> bool {
    want.iter().all(|(k, v)| have.get(k) == Some(v))
        && (want.contains_key(SUSPENDED_LABEL) || !have.contains_key(SUSPENDED_LABEL))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(runtime: Option<&str>, level: Option<PodSecurityLevel>) -> TenantSpec {
        TenantSpec {
            runtime_class_name: runtime.map(str::to_owned),
            pod_security: level,
            ..TenantSpec::default()
        }
    }

    #[test]
    fn policy_from_the_spec_or_the_defaults() {
        let cases = [
            (spec(None, None), "gvisor", PodSecurityLevel::Baseline),
            (spec(Some("runc"), None), "runc", PodSecurityLevel::Baseline),
            (
                spec(None, Some(PodSecurityLevel::Restricted)),
                "gvisor",
                PodSecurityLevel::Restricted,
            ),
            (
                spec(Some("kata"), Some(PodSecurityLevel::Privileged)),
                "kata",
                PodSecurityLevel::Privileged,
            ),
        ];
        for (spec, runtime, level) in cases {
            let policy = PodPolicy::of(&spec, "gvisor");
            assert_eq!(policy.runtime_class, runtime, "{spec:?}");
            assert_eq!(policy.pod_security, level, "{spec:?}");
        }
    }

    #[test]
    fn labels_name_tenant_project_runtime_and_level() {
        let policy = PodPolicy::of(&spec(None, None), "gvisor");
        let labels = tenant_labels("t1", "p1", &policy, Access::Granted);
        assert_eq!(labels[TENANT_LABEL], "t1");
        assert_eq!(labels[PROJECT_LABEL], "p1");
        assert_eq!(labels[RUNTIME_CLASS_LABEL], "gvisor");
        assert_eq!(labels[PSA_ENFORCE], "baseline");
        assert_eq!(labels[PSA_WARN], "baseline");
        assert_eq!(labels[PSA_ENFORCE_VERSION], "latest");
        assert!(!labels.contains_key(SUSPENDED_LABEL));
        let suspended = tenant_labels("t1", "p1", &policy, Access::Suspended);
        assert_eq!(suspended[SUSPENDED_LABEL], "true");
        let mut without = suspended.clone();
        without.remove(SUSPENDED_LABEL);
        assert_eq!(without, labels, "suspension changes nothing else");
    }

    #[test]
    fn suspension_is_current_only_as_wanted() {
        let policy = PodPolicy::of(&spec(None, None), "gvisor");
        let granted = tenant_labels("t1", "p1", &policy, Access::Granted);
        let suspended = tenant_labels("t1", "p1", &policy, Access::Suspended);
        let cases = [
            ("granted, not labelled", &granted, &granted, true),
            ("suspended, labelled", &suspended, &suspended, true),
            (
                "project disabled: the label is missing",
                &granted,
                &suspended,
                false,
            ),
            (
                "project enabled again: the label is left",
                &suspended,
                &granted,
                false,
            ),
        ];
        for (case, have, want, current) in cases {
            assert_eq!(is_current(have, want), current, "{case}");
        }
        let mut edited = suspended.clone();
        edited.insert(SUSPENDED_LABEL.into(), "false".into());
        assert!(!is_current(&edited, &suspended), "a label edited by hand");
    }

    #[test]
    fn current_only_with_every_label_as_wanted() {
        let want = tenant_labels(
            "t1",
            "p1",
            &PodPolicy::of(&spec(None, None), "gvisor"),
            Access::Granted,
        );
        let mut have = want.clone();
        have.insert("team".into(), "a".into());
        assert!(
            is_current(&have, &want),
            "a label of someone else's is ignored"
        );
        let cases: [(&str, Option<&str>); 4] = [
            (PSA_ENFORCE, Some("privileged")),
            (PSA_ENFORCE, None),
            (RUNTIME_CLASS_LABEL, Some("runc")),
            (PROJECT_LABEL, Some("p2")),
        ];
        for (key, value) in cases {
            let mut edited = want.clone();
            match value {
                Some(v) => edited.insert(key.into(), v.into()),
                None => edited.remove(key),
            };
            assert!(!is_current(&edited, &want), "{key} = {value:?}");
        }
    }
}
