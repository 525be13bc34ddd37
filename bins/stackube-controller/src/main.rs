//! `stackube-controller`: Tenant and Network controller: Keystone projects and users, namespaces and RBAC, Neutron networks, subnets and routers, and garbage collection of anything Stackube created in OpenStack.
//!
//! Not implemented yet: the binary only answers `--help` and `--version` (see the README's
//! component status).

use clap::Parser;

/// Tenant and Network controller: Keystone projects and users, namespaces and RBAC, Neutron networks, subnets and routers, and garbage collection of anything Stackube created in OpenStack.
#[derive(Parser, Debug)]
#[command(name = "stackube-controller", version, about)]
struct Args {}

fn main() -> anyhow::Result<()> {
    let _args = Args::parse();
    anyhow::bail!(
        "stackube-controller is not implemented yet; see the component status in the README"
    )
}
