//! `stackube-proxy`: each tenant's Services, programmed with nftables inside the tenant's
//! Neutron router namespace (replaces kube-proxy). See the library for how.

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    stackube_proxy::run(stackube_proxy::Args::parse()).await
}
