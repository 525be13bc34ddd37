//! `stackube`: The Stackube command line: devbox up/down/status, CRD generation, configuration checks, tenant helpers and kubectl login.
//!
//! Not implemented yet: the binary only answers `--help` and `--version` (see the README's
//! component status).

use clap::Parser;

/// The Stackube command line: devbox up/down/status, CRD generation, configuration checks, tenant helpers and kubectl login.
#[derive(Parser, Debug)]
#[command(name = "stackube", version, about)]
struct Args {}

fn main() -> anyhow::Result<()> {
    let _args = Args::parse();
    anyhow::bail!("stackube is not implemented yet; see the component status in the README")
}
