//! `stackube-dns`: each tenant's cluster DNS, answered inside the tenant's Neutron router
//! namespace. See the library for how.

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    stackube_dns::run(stackube_dns::Args::parse()).await
}
