//! `kubestack`: CNI plugin: puts each pod on its tenant's Neutron network (Neutron port, veth into Open vSwitch br-int, IP, MAC, routes and MTU in the pod's network namespace).
//!
//! Not implemented yet: the binary only answers `--help` and `--version` (see the README's
//! component status).

use clap::Parser;

/// CNI plugin: puts each pod on its tenant's Neutron network (Neutron port, veth into Open vSwitch br-int, IP, MAC, routes and MTU in the pod's network namespace).
#[derive(Parser, Debug)]
#[command(name = "kubestack", version, about)]
struct Args {}

fn main() -> anyhow::Result<()> {
    let _args = Args::parse();
    anyhow::bail!("kubestack is not implemented yet; see the component status in the README")
}
