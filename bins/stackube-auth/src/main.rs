//! `stackube-auth`: Keystone authentication for kube-apiserver: a TokenReview webhook that turns Keystone tokens into Kubernetes users and groups.
//!
//! Not implemented yet: the binary only answers `--help` and `--version` (see the README's
//! component status).

use clap::Parser;

/// Keystone authentication for kube-apiserver: a TokenReview webhook that turns Keystone tokens into Kubernetes users and groups.
#[derive(Parser, Debug)]
#[command(name = "stackube-auth", version, about)]
struct Args {}

fn main() -> anyhow::Result<()> {
    let _args = Args::parse();
    anyhow::bail!("stackube-auth is not implemented yet; see the component status in the README")
}
