//! `kubestack`: run by the container runtime (with `CNI_COMMAND` set) it is the CNI plugin;
//! `kubestack daemon` is the node daemon.

use std::io::Read as _;

use clap::Parser;

fn main() -> anyhow::Result<()> {
    if std::env::var_os("CNI_COMMAND").is_some() {
        let mut stdin = Vec::new();
        // An unreadable stdin is parsed as empty and refused with a message.
        let _ = std::io::stdin().read_to_end(&mut stdin);
        let outcome = kubestack::plugin::run(|k| std::env::var(k).ok(), &stdin);
        print!("{}", outcome.stdout);
        std::process::exit(outcome.code);
    }
    let args = kubestack::Args::parse();
    let runtime = tokio::runtime::Runtime::new()?;
    match args.command {
        kubestack::DaemonCommand::Daemon(daemon) => runtime.block_on(kubestack::run_daemon(daemon)),
    }
}
