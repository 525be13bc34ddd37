//! `stackube-csi`: Cinder volumes for Kubernetes. The driver lives in the library; this only
//! parses flags and runs it, or answers the kubelet's FlexVolume call.

use clap::Parser;

fn main() -> anyhow::Result<()> {
    let argv: Vec<String> = std::env::args().collect();
    if let Some(call) = stackube_csi::flex::flex_argv(&argv) {
        std::process::exit(stackube_csi::flex::main(call));
    }
    let args = stackube_csi::Args::parse();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(stackube_csi::run(args))
}
