//! The `stackube` command line, as a library so that tests drive it.

pub mod login;

use std::path::Path;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;
use stackube_model::crd::{Network, Tenant};

/// Stackube's CRDs with the file name each is kept under in `deploy/crds/`.
pub fn crds() -> [(&'static str, CustomResourceDefinition); 2] {
    [
        ("tenants.yaml", Tenant::crd()),
        ("networks.yaml", Network::crd()),
    ]
}

/// A CRD as the YAML document kept in `deploy/crds/`.
pub fn crd_yaml(crd: &CustomResourceDefinition) -> anyhow::Result<String> {
    let yaml = serde_saphyr::to_string(crd)?;
    Ok(format!(
        "# Generated from the Rust types by `stackube crds --out-dir deploy/crds`: do not edit.\n{yaml}"
    ))
}

/// Writes every CRD into `dir` (`stackube crds --out-dir`), or prints them as one YAML stream.
pub fn write_crds(dir: Option<&Path>) -> anyhow::Result<()> {
    for (file, crd) in crds() {
        let yaml = crd_yaml(&crd)?;
        match dir {
            Some(dir) => std::fs::write(dir.join(file), yaml)?,
            None => print!("---\n{yaml}"),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `deploy/crds/` must be what the types generate: run
    /// `cargo run -p stackube -- crds --out-dir deploy/crds` after changing them.
    #[test]
    fn deploy_crds_are_up_to_date() {
        // The run-time value: a test binary reused from another checkout (shared target dir)
        // must read this checkout's files.
        let package = std::env::var("CARGO_MANIFEST_DIR").expect("run by cargo test");
        let dir = Path::new(&package).join("../../deploy/crds");
        for (file, crd) in crds() {
            let committed = std::fs::read_to_string(dir.join(file)).unwrap_or_default();
            assert!(
                committed == crd_yaml(&crd).unwrap(),
                "deploy/crds/{file} is stale: run `cargo run -p stackube -- crds --out-dir deploy/crds`"
            );
        }
    }

    #[test]
    fn crds_carry_the_approval_annotation_and_the_seed_names() {
        let [(_, tenant), (_, network)] = crds();
        assert_eq!(
            tenant.metadata.name.as_deref(),
            Some("tenants.stackube.kubernetes.io")
        );
        assert_eq!(tenant.spec.scope, "Cluster");
        assert_eq!(network.spec.scope, "Namespaced");
        for crd in [tenant, network] {
            let annotations = crd.metadata.annotations.unwrap_or_default();
            assert!(annotations.contains_key("api-approved.kubernetes.io"));
        }
    }
}
