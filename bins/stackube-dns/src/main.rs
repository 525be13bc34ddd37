//! `stackube-dns`: Per-tenant cluster DNS: answers the cluster DNS address inside each tenant's router namespace with only that tenant's records.
//!
//! Not implemented yet: the binary only answers `--help` and `--version` (see the README's
//! component status).

use clap::Parser;

/// Per-tenant cluster DNS: answers the cluster DNS address inside each tenant's router namespace with only that tenant's records.
#[derive(Parser, Debug)]
#[command(name = "stackube-dns", version, about)]
struct Args {}

fn main() -> anyhow::Result<()> {
    let _args = Args::parse();
    anyhow::bail!("stackube-dns is not implemented yet; see the component status in the README")
}
