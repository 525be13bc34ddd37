//! The node side of stackube-csi: RBD volumes mapped, formatted and mounted on the node, as
//! `stackube_core::volume::node` plans it, by the node's own tools ([`host`]).

pub mod host;
pub(crate) mod mountinfo;
mod service;

pub use service::{MAX_VOLUMES, NodeService, RegistrationService};

use std::path::Path;

use stackube_core::volume::node::{Access, NodeStep, StageError, stage_plan, unstage_plan};

use host::{HostError, Image, LinuxHost};

/// Why staging failed.
#[derive(Debug, thiserror::Error)]
pub enum StageFailure {
    /// The node holds something staging must not overwrite.
    #[error(transparent)]
    Refused(#[from] StageError),
    /// A tool failed.
    #[error(transparent)]
    Host(#[from] HostError),
    /// The plans did not converge (the node changes under us).
    #[error("staging did not converge after {0} rounds")]
    NoConvergence(usize),
}

/// Most rounds of observe → plan → act (a dead map, then map, then format and mount).
const ROUNDS: usize = 4;

/// Stages `image` at `staging`: observes the node, does what the plan says, and again until
/// nothing is left to do. The steps it took, in order.
pub async fn stage(
    host: &LinuxHost,
    image: &Image,
    staging: &Path,
    access: &Access,
) -> Result<Vec<NodeStep>, StageFailure> {
    let mut done = Vec::new();
    for _ in 0..ROUNDS {
        let observed = host.observe(image, staging).await?;
        let steps = stage_plan(&observed, access)?;
        if steps.is_empty() {
            return Ok(done);
        }
        for step in steps {
            host.step(image, staging, &step).await?;
            tracing::info!(volume = %image.volume_id, ?step, "stage step done");
            done.push(step);
        }
    }
    Err(StageFailure::NoConvergence(ROUNDS))
}

/// Unstages `image` from `staging`: everything staging made goes, also what appears while it
/// works (a loop device or a map an interrupted stage's orphaned tool makes late): observe,
/// plan, act, until nothing is left. The steps it took.
pub async fn unstage(
    host: &LinuxHost,
    image: &Image,
    staging: &Path,
) -> Result<Vec<NodeStep>, HostError> {
    let mut done = Vec::new();
    for _ in 0..ROUNDS {
        let observed = host.observe(image, staging).await?;
        let steps = unstage_plan(&observed);
        if steps.is_empty() {
            break;
        }
        for step in steps {
            host.step(image, staging, &step).await?;
            tracing::info!(volume = %image.volume_id, ?step, "unstage step done");
            done.push(step);
        }
    }
    Ok(done)
}
