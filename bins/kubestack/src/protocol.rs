//! Between the plugin and the node daemon: one JSON line with the [`Invocation`], one JSON line
//! with the [`Response`], over the daemon's unix socket.
//!
//! [`Invocation`]: crate::cni::Invocation

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::cni::CniError;

/// The daemon's answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Response {
    /// Success: the CNI result to print (`null` for commands without output).
    Result(Value),
    /// Failure: the CNI error to print.
    Error(CniError),
}
