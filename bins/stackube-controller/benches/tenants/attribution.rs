//! The controller's JSON log: OpenStack calls and Tenant reconciliations by the reconcile
//! trigger kube-runtime recorded (own object changed, owned Namespace/Network changed,
//! requeue), for the creation and the deletion of a run.

use std::collections::BTreeMap;
use std::path::Path;

use chrono::{DateTime, Utc};
use serde_json::Value;

/// Which part of the run a log line belongs to.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub(crate) enum Phase {
    Create,
    Delete,
}

/// (phase, controller, trigger) → (OpenStack calls by "operation outcome", Tenant reconciles).
pub(crate) type Attribution = BTreeMap<(Phase, String, String), (BTreeMap<String, u64>, u64)>;

/// The reconcile trigger kube-runtime recorded, shortened.
fn trigger(reason: &str) -> String {
    if let Some(object) = reason.strip_prefix("related object updated: ") {
        let kind = object.split('.').next().unwrap_or(object);
        return format!("owned {kind} changed");
    }
    match reason {
        "object updated" => "own object changed".into(),
        "reconciler requested retry" => "requeue (reconciler)".into(),
        "error policy requested retry" => "requeue (error policy)".into(),
        other => other.into(),
    }
}

/// Reads `log`: lines from `create_at` on are the creation's, from `delete_at` on the
/// deletion's.
pub(crate) fn attribute(
    log: &Path,
    create_at: DateTime<Utc>,
    delete_at: DateTime<Utc>,
) -> Attribution {
    let mut out = Attribution::new();
    let text = std::fs::read_to_string(log).unwrap_or_default();
    for line in text.lines() {
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let message = v["message"].as_str().unwrap_or_default();
        if message != "openstack call" && message != "tenant reconciled" {
            continue;
        }
        let Some(at) = v["timestamp"]
            .as_str()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc))
        else {
            continue;
        };
        let phase = if at < create_at {
            continue;
        } else if at < delete_at {
            Phase::Create
        } else {
            Phase::Delete
        };
        let span = v["spans"]
            .as_array()
            .and_then(|spans| spans.iter().find(|s| s["name"] == "reconciling object"));
        let (controller, why) = match span {
            None => ("-".to_owned(), "outside reconciliation".to_owned()),
            Some(s) => {
                let object = s["object.ref"].as_str().unwrap_or_default();
                let controller = object.split('.').next().unwrap_or("?").to_owned();
                (
                    controller,
                    trigger(s["object.reason"].as_str().unwrap_or("?")),
                )
            }
        };
        let entry = out.entry((phase, controller, why)).or_default();
        if message == "tenant reconciled" {
            entry.1 += 1;
        } else {
            let op = format!(
                "{} {}",
                v["operation"].as_str().unwrap_or("?"),
                v["outcome"].as_str().unwrap_or("?")
            );
            *entry.0.entry(op).or_insert(0) += 1;
        }
    }
    out
}
