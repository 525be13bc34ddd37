//! What stackube-csi decides about Cinder volumes, apart from doing it: how many GiB a CSI
//! capacity range asks for ([`capacity`]), what the StorageClass parameters say
//! ([`params`]), whether a volume of the requested name already exists as asked, is being
//! made, failed, or conflicts ([`create`]) and likewise a snapshot ([`snapshot`]), and which
//! attachments a volume needs for a node ([`publish`]), and what staging or unstaging a volume
//! takes on a node, from where it is ([`node`]). The driver observes Cinder, asks these functions,
//! and carries out the answer; every answer is safe to repeat, which is what makes the CSI
//! calls idempotent across retries and crashes. The seed's FlexVolume driver
//! (`cinder/flexvolume_driver`) is read here too: its argv, options and replies ([`flex`]).
//!
//! # Ownership
//! Cinder volumes have no tags; Stackube's ownership goes in their metadata
//! ([`create::metadata`]): the cluster, the kind, and the CSI name (the PV name the
//! provisioner chose), by which a retried CreateVolume finds the volume it made before.

pub mod capacity;
pub mod create;
pub mod flex;
pub mod flex_plan;
pub mod gc;
pub mod node;
pub mod params;
pub mod publish;
pub mod snapshot;

pub use capacity::{CapacityError, GIB, size_gib};
pub use create::{CreateDecision, Existing, Source, Wanted, decide, metadata};
pub use flex::{FlexCall, FlexError, FlexOptions, FlexReply};
pub use params::{Parameters, ParamsError};
