//! `stackube-csi flexvolume-install`: what the stackube-csi-node DaemonSet's init container
//! does on each node, so that the seed's pods find their driver: this binary copied to
//! `<plugin dir>/cinder~flexvolume_driver/flexvolume_driver` (the kubelet watches the directory
//! and probes new drivers), and beside it a `cinder.conf` in the seed's format, made from the
//! shared configuration and the Ceph keyring. An operator's own `/etc/kubernetes/cinder.conf`
//! is not touched, and is what the driver reads first.

use std::path::PathBuf;

use anyhow::{Context as _, anyhow};
use stackube_model::config::CsiConfig;
use stackube_model::config::Secret;
use stackube_model::config::cinder_conf::{CinderConf, RbdKeyring};

use super::mount::write_private;
use super::{DRIVER_DIR, DRIVER_FILE};

/// `stackube-csi flexvolume-install`.
#[derive(clap::Args, Debug)]
pub struct InstallArgs {
    /// The kubelet's FlexVolume plugin directory (as this container sees it).
    #[arg(
        long,
        default_value = "/usr/libexec/kubernetes/kubelet-plugins/volume/exec"
    )]
    pub plugin_dir: PathBuf,
    /// Directory of the mounted ConfigMap (the seed's keys); default: STACKUBE_* variables.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// The keyring of the Ceph user Cinder's connection info names: its key goes into
    /// `[RBD] keyring`.
    #[arg(long, default_value = "/etc/ceph/ceph.client.cinder.keyring")]
    pub keyring: PathBuf,
}

/// Installs the driver and its `cinder.conf`.
pub fn install(args: &InstallArgs) -> anyhow::Result<()> {
    let config: CsiConfig = stackube_kube::config_map::load_config(args.config.as_deref())
        .context("invalid configuration")?;
    let keyring = std::fs::read_to_string(&args.keyring)
        .with_context(|| format!("--keyring: reading {}", args.keyring.display()))?;
    let key = keyring_key(&keyring).ok_or_else(|| {
        anyhow!(
            "--keyring: {} holds no `key = ...` line",
            args.keyring.display()
        )
    })?;
    let conf = CinderConf {
        cloud: config.cloud,
        keyring: RbdKeyring::Key(Secret::new(key)),
    };
    let dir = args.plugin_dir.join(DRIVER_DIR);
    write_private(&dir.join("cinder.conf"), &conf.render())?;
    let exe = std::env::current_exe().context("finding this program")?;
    let tmp = dir.join(format!(".{DRIVER_FILE}.new"));
    std::fs::copy(&exe, &tmp).with_context(|| format!("copying to {}", tmp.display()))?;
    let target = dir.join(DRIVER_FILE);
    std::fs::rename(&tmp, &target).with_context(|| format!("renaming to {}", target.display()))?;
    tracing::info!(driver = %target.display(), "installed the FlexVolume driver");
    Ok(())
}

/// The key of a Ceph keyring file (`key = AQ...`, the first one).
fn keyring_key(text: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let (name, value) = line.split_once('=')?;
        (name.trim() == "key").then(|| value.trim().to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_is_read_from_a_ceph_keyring() {
        let keyring =
            "[client.cinder]\n\tkey = AQBzc2VjcmV0a2V5Cg==\n\tcaps mon = \"profile rbd\"\n";
        assert_eq!(
            keyring_key(keyring).as_deref(),
            Some("AQBzc2VjcmV0a2V5Cg==")
        );
        assert_eq!(keyring_key("[client.cinder]\n"), None);
    }
}
