//! `stackube-proxy`: Service proxy: programs each tenant's ClusterIP Services with nftables inside that tenant's Neutron router namespace (replaces kube-proxy).
//!
//! Not implemented yet: the binary only answers `--help` and `--version` (see the README's
//! component status).

use clap::Parser;

/// Service proxy: programs each tenant's ClusterIP Services with nftables inside that tenant's Neutron router namespace (replaces kube-proxy).
#[derive(Parser, Debug)]
#[command(name = "stackube-proxy", version, about)]
struct Args {}

fn main() -> anyhow::Result<()> {
    let _args = Args::parse();
    anyhow::bail!("stackube-proxy is not implemented yet; see the component status in the README")
}
