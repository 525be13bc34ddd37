//! `stackube-csi`: Cinder volumes for Kubernetes: CSI controller and node plugin, and the seed's cinder/flexvolume_driver.
//!
//! Not implemented yet: the binary only answers `--help` and `--version` (see the README's
//! component status).

use clap::Parser;

/// Cinder volumes for Kubernetes: CSI controller and node plugin, and the seed's cinder/flexvolume_driver.
#[derive(Parser, Debug)]
#[command(name = "stackube-csi", version, about)]
struct Args {}

fn main() -> anyhow::Result<()> {
    let _args = Args::parse();
    anyhow::bail!("stackube-csi is not implemented yet; see the component status in the README")
}
