//! Shared kube-rs glue for Stackube's components.
//!
//! Every component that talks to kube-apiserver builds its client here, so TLS, timeouts and
//! kubeconfig handling are the same everywhere. CRD installation lives here too: the controller
//! installs its CRDs at start-up and tests install theirs, and both must wait until the apiserver
//! serves the new resource (its `Established` condition) before using it.
//!
//! With the `fake` feature, `fake::FakeApiServer` is an in-memory kube-apiserver whose
//! [`kube::Client`] unit tests of reconcilers use instead of a cluster.

pub mod config_map;
#[cfg(feature = "fake")]
pub mod fake;
pub mod list_watch;
pub mod protobuf;

use std::path::Path;
use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::wait::{await_condition, conditions};
use kube::{Client, Config};

/// Field manager name for everything Stackube applies server-side.
pub const FIELD_MANAGER: &str = "stackube";

/// What can go wrong while setting up Kubernetes access.
#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    /// The kubeconfig could not be read or parsed.
    #[error("cannot read kubeconfig {path}")]
    Kubeconfig {
        /// The kubeconfig file.
        path: String,
        /// Why.
        #[source]
        source: kube::config::KubeconfigError,
    },
    /// No usable in-cluster or `$KUBECONFIG` configuration.
    #[error("no Kubernetes configuration (neither in-cluster nor $KUBECONFIG)")]
    Infer(#[source] kube::config::InferConfigError),
    /// The client could not be built from the configuration.
    #[error("cannot build a Kubernetes client")]
    Client(#[source] kube::Error),
    /// A call to kube-apiserver failed.
    #[error("kube-apiserver refused {what}")]
    Api {
        /// What was attempted.
        what: String,
        /// The apiserver's answer.
        #[source]
        source: kube::Error,
    },
    /// Watching an object for a condition failed.
    #[error("watching {what} failed")]
    Watch {
        /// What was watched.
        what: String,
        /// Why.
        #[source]
        source: kube::runtime::wait::Error,
    },
    /// A condition was not reached in time.
    #[error("timed out after {0:?} waiting for {1}")]
    Timeout(Duration, String),
}

/// Installs the process-wide TLS crypto provider (aws-lc-rs, the one the whole workspace uses).
/// Safe to call more than once.
pub fn install_crypto_provider() {
    // An Err only means a provider is installed already, which is what we want.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// A client for the cluster: from `kubeconfig` when given, otherwise inferred (in-cluster service
/// account, then `$KUBECONFIG`, then `~/.kube/config`).
pub async fn client(kubeconfig: Option<&Path>) -> Result<Client, KubeError> {
    install_crypto_provider();
    let config = match kubeconfig {
        Some(path) => {
            let kubeconfig_error = |source| KubeError::Kubeconfig {
                path: path.display().to_string(),
                source,
            };
            let kc = Kubeconfig::read_from(path).map_err(kubeconfig_error)?;
            Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
                .await
                .map_err(kubeconfig_error)?
        }
        None => Config::infer().await.map_err(KubeError::Infer)?,
    };
    Client::try_from(config).map_err(KubeError::Client)
}

/// Server-side applies `crd` and waits until kube-apiserver serves it.
///
/// # Guarantees
/// Idempotent: applying an unchanged CRD is a no-op on the server. On return the resource can be
/// used; on a timeout the CRD may exist but not be established yet.
pub async fn apply_crd(
    client: &Client,
    crd: &CustomResourceDefinition,
    timeout: Duration,
) -> Result<(), KubeError> {
    let name = crd.metadata.name.clone().unwrap_or_default();
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    api.patch(
        &name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(crd),
    )
    .await
    .map_err(|source| KubeError::Api {
        what: format!("applying CustomResourceDefinition {name}"),
        source,
    })?;
    let established = await_condition(api, &name, conditions::is_crd_established());
    match tokio::time::timeout(timeout, established).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(source)) => Err(KubeError::Watch {
            what: format!("CustomResourceDefinition {name}"),
            source,
        }),
        Err(_) => Err(KubeError::Timeout(
            timeout,
            format!("CRD {name} to be established"),
        )),
    }
}

/// Waits until `name` is gone from `api` (after a delete with finalizers, for instance).
pub async fn await_deleted<K>(api: Api<K>, name: &str, timeout: Duration) -> Result<(), KubeError>
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
{
    let uid = match api.get_opt(name).await {
        Ok(Some(obj)) => obj.meta().uid.clone().unwrap_or_default(),
        Ok(None) => return Ok(()),
        Err(source) => {
            return Err(KubeError::Api {
                what: format!("reading {name}"),
                source,
            });
        }
    };
    let gone = await_condition(api, name, conditions::is_deleted(&uid));
    match tokio::time::timeout(timeout, gone).await {
        Ok(_) => Ok(()),
        Err(_) => Err(KubeError::Timeout(timeout, format!("{name} to be deleted"))),
    }
}
