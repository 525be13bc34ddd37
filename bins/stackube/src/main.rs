//! `stackube`: the Stackube command line.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// The Stackube command line: CRD generation (and, as it grows, devbox, configuration checks,
/// tenant helpers and kubectl login).
#[derive(Parser, Debug)]
#[command(name = "stackube", version, about)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print Stackube's CustomResourceDefinitions (Tenant, Network) as YAML, generated from the
    /// Rust types, or write them into a directory.
    Crds {
        /// Write `tenants.yaml` and `networks.yaml` into this directory instead of printing.
        #[arg(long)]
        out_dir: Option<PathBuf>,
    },
}

fn main() -> anyhow::Result<()> {
    match Args::parse().command {
        Command::Crds { out_dir } => stackube::write_crds(out_dir.as_deref()),
    }
}
