//! `stackube-csi`: Cinder volumes for Kubernetes. The driver lives in the library; this only
//! parses flags and runs it.

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    stackube_csi::run(stackube_csi::Args::parse()).await
}
