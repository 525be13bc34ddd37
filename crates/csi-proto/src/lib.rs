//! The gRPC APIs stackube-csi serves, generated at build time from vendored `.proto` files:
//!
//! - [`csi::v1`]: the Container Storage Interface, spec v1.14.0 (`proto/csi.proto`, from
//!   `github.com/container-storage-interface/spec@v1.14.0`). The CO and the sidecars speak
//!   it; stackube-csi implements the Identity, Controller and Node services' GA calls.
//! - [`pluginregistration`]: the kubelet's plugin registration API
//!   (`proto/pluginregistration.proto`, from `k8s.io/kubelet@v0.34.4`,
//!   `pkg/apis/pluginregistration/v1/api.proto`), which a node plugin serves on a socket in the
//!   kubelet's `plugins_registry` directory so that the kubelet finds it (what
//!   node-driver-registrar does for drivers written in Go).
//!
//! Both servers and clients are generated: the clients drive the tests.

/// The Container Storage Interface.
pub mod csi {
    /// CSI v1 (spec v1.14.0).
    #[allow(missing_docs, unreachable_pub, clippy::all, clippy::pedantic)]
    pub mod v1 {
        tonic::include_proto!("csi.v1");
    }
}

/// The kubelet's plugin registration API (package `pluginregistration`, served as v1).
#[allow(missing_docs, unreachable_pub, clippy::all, clippy::pedantic)]
pub mod pluginregistration {
    tonic::include_proto!("pluginregistration");
}
