//! `stackube`: the Stackube command line.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// The Stackube command line: CRD generation, and kubectl login with Keystone credentials.
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
    /// kubectl's exec credential plugin: print an ExecCredential with a project-scoped Keystone
    /// token for the user of the `OS_*` variables (or of a clouds.yaml entry).
    Credential {
        /// Log in as this clouds.yaml entry instead of the `OS_*` variables.
        #[arg(long, env = "OS_CLOUD")]
        os_cloud: Option<String>,
    },
    /// Add a cluster, user and context to a kubeconfig for logging in to Kubernetes with your
    /// Keystone credentials (`OS_*` variables or a clouds.yaml entry). No password is written:
    /// `stackube credential` reads it from `OS_PASSWORD` (or clouds.yaml) when kubectl runs.
    Kubeconfig {
        /// kube-apiserver's URL (needed unless the cluster entry exists).
        #[arg(long)]
        server: Option<String>,
        /// kube-apiserver's CA bundle (PEM), embedded in the cluster entry.
        #[arg(long)]
        certificate_authority: Option<PathBuf>,
        /// The cluster entry's name.
        #[arg(long, default_value = "stackube")]
        cluster: String,
        /// The user and context entries' name (default `<user>@<project>`).
        #[arg(long)]
        name: Option<String>,
        /// The context's namespace (default: the project name, which is your tenant's namespace).
        #[arg(long)]
        namespace: Option<String>,
        /// Log in as this clouds.yaml entry instead of the `OS_*` variables.
        #[arg(long, env = "OS_CLOUD")]
        os_cloud: Option<String>,
        /// The kubeconfig to change (default: the first file of `KUBECONFIG`, or ~/.kube/config).
        #[arg(long)]
        kubeconfig: Option<PathBuf>,
        /// Keep the current context rather than switching to the new one.
        #[arg(long)]
        no_switch: bool,
    },
}

fn main() -> anyhow::Result<()> {
    match Args::parse().command {
        Command::Crds { out_dir } => stackube::write_crds(out_dir.as_deref()),
        Command::Credential { os_cloud } => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let credential = runtime.block_on(stackube::login::credential(os_cloud.as_deref()))?;
            println!("{credential}");
            Ok(())
        }
        Command::Kubeconfig {
            server,
            certificate_authority,
            cluster,
            name,
            namespace,
            os_cloud,
            kubeconfig,
            no_switch,
        } => {
            let var = |k: &str| std::env::var(k).ok();
            let path = match kubeconfig {
                Some(path) => path,
                None => stackube::login::default_kubeconfig_path(var)?,
            };
            let command = std::env::current_exe()?.display().to_string();
            let entry = stackube::login::KubeconfigEntry {
                path: path.clone(),
                cluster,
                server,
                certificate_authority,
                name,
                namespace,
                cloud: os_cloud,
                command,
                switch: !no_switch,
            };
            let context = stackube::login::write_kubeconfig(&entry, var)?;
            eprintln!(
                "{}: context {context:?} logs in with your Keystone credentials",
                path.display()
            );
            Ok(())
        }
    }
}
