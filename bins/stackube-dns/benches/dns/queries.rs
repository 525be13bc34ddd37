//! The query files dnsperf sends (one `name type` a line, sent in order, over and over):
//! - **existing**: the A record of every Service (`svc-NNNNN.<ns>.svc.cluster.local`);
//! - **non-existent**: as many names of Services that do not exist, in the same namespace;
//! - **search**: what a pod sends for a short external name (`ext-N.example.test`: fewer than
//!   `ndots:5` dots) through the search path of its resolv.conf, `<ns>.svc.cluster.local
//!   svc.cluster.local cluster.local` and the node's domain ([`NODE_DOMAIN`]), then the name
//!   itself: 5 queries, the first three answered NXDOMAIN from the cluster's records, the fourth
//!   NXDOMAIN from the upstream, the last an address from the upstream (both cached by the
//!   server after the first time: `tests/rig`'s upstream gives TTL 300).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The node's search domain a pod's resolv.conf ends with (RFC 9476's `.internal`-like private
/// name; the upstream answers NXDOMAIN for it).
pub(crate) const NODE_DOMAIN: &str = "node.internal";
/// Where the external names are: the zone the upstream has (`tests/rig`).
pub(crate) const EXTERNAL_ZONE: &str = "example.test";

/// Which query file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Kind {
    Existing,
    Missing,
    Search,
}

impl Kind {
    /// All, in the order they are measured and reported.
    pub(crate) const ALL: [Kind; 3] = [Kind::Existing, Kind::Missing, Kind::Search];

    /// Its name in the report.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::Existing => "existing names",
            Kind::Missing => "non-existent names",
            Kind::Search => "5-name search expansion",
        }
    }

    /// The share of NOERROR replies a correct server gives (the rest NXDOMAIN).
    pub(crate) fn noerror_share(self) -> f64 {
        match self {
            Kind::Existing => 1.0,
            Kind::Missing => 0.0,
            Kind::Search => 0.2,
        }
    }
}

/// The lines of file `kind` for `size` Services in `namespace` and `external` external names.
pub(crate) fn lines(kind: Kind, namespace: &str, size: usize, external: usize) -> String {
    let mut out = String::new();
    match kind {
        Kind::Existing => {
            for i in 0..size {
                out.push_str(&format!("svc-{i:05}.{namespace}.svc.cluster.local A\n"));
            }
        }
        Kind::Missing => {
            for i in 0..size {
                out.push_str(&format!("missing-{i:05}.{namespace}.svc.cluster.local A\n"));
            }
        }
        Kind::Search => {
            let search = [
                format!("{namespace}.svc.cluster.local."),
                "svc.cluster.local.".to_owned(),
                "cluster.local.".to_owned(),
                format!("{NODE_DOMAIN}."),
                String::new(),
            ];
            for i in 0..external {
                let name = format!("ext-{i:05}.{EXTERNAL_ZONE}.");
                for suffix in &search {
                    out.push_str(&format!("{name}{suffix} A\n"));
                }
            }
        }
    }
    out
}

/// Writes the three files in `dir`.
pub(crate) fn write(
    dir: &Path,
    namespace: &str,
    size: usize,
    external: usize,
) -> anyhow::Result<BTreeMap<Kind, PathBuf>> {
    let mut files = BTreeMap::new();
    for kind in Kind::ALL {
        let path = dir.join(format!("queries-{kind:?}.txt").to_lowercase());
        std::fs::write(&path, lines(kind, namespace, size, external))?;
        files.insert(kind, path);
    }
    Ok(files)
}
