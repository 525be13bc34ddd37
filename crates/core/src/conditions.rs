//! Status conditions, `metav1.Condition`-style: one per part of a resource, plus `Ready`.

use stackube_model::crd::Condition;

/// A condition's new state, as a reconciler computes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    /// `Ready`, `ProjectReady`, ….
    pub type_: &'static str,
    /// `Some(true)`: True, `Some(false)`: False, `None`: Unknown.
    pub ok: Option<bool>,
    /// One CamelCase word.
    pub reason: String,
    /// A sentence for people (never a secret).
    pub message: String,
}

impl Status {
    /// A True condition.
    pub fn ok(type_: &'static str, reason: &str, message: impl Into<String>) -> Status {
        Status {
            type_,
            ok: Some(true),
            reason: reason.to_owned(),
            message: message.into(),
        }
    }

    /// A False condition.
    pub fn failed(type_: &'static str, reason: &str, message: impl Into<String>) -> Status {
        Status {
            type_,
            ok: Some(false),
            reason: reason.to_owned(),
            message: message.into(),
        }
    }

    /// An Unknown condition (not evaluated: an earlier part is not ready).
    pub fn unknown(type_: &'static str, reason: &str, message: impl Into<String>) -> Status {
        Status {
            type_,
            ok: None,
            reason: reason.to_owned(),
            message: message.into(),
        }
    }

    fn status_str(&self) -> &'static str {
        match self.ok {
            Some(true) => "True",
            Some(false) => "False",
            None => "Unknown",
        }
    }
}

/// Sets `new` in `conditions`: `lastTransitionTime` moves to `now` only when the status changes.
pub fn set(conditions: &mut Vec<Condition>, new: &Status, generation: Option<i64>, now: &str) {
    let status = new.status_str();
    match conditions.iter_mut().find(|c| c.type_ == new.type_) {
        Some(c) => {
            if c.status != status {
                c.status = status.to_owned();
                c.last_transition_time = now.to_owned();
            }
            c.reason.clone_from(&new.reason);
            c.message.clone_from(&new.message);
            c.observed_generation = generation;
        }
        None => conditions.push(Condition {
            type_: new.type_.to_owned(),
            status: status.to_owned(),
            reason: new.reason.clone(),
            message: new.message.clone(),
            observed_generation: generation,
            last_transition_time: now.to_owned(),
        }),
    }
}

/// The `Ready` condition summarising `parts`: True when all are, otherwise False with the
/// first part that is not (its reason and message).
pub fn ready(parts: &[Status]) -> Status {
    match parts.iter().find(|p| p.ok != Some(true)) {
        None => Status::ok("Ready", "Ready", "all parts are ready"),
        Some(p) => Status::failed("Ready", &p.reason, format!("{}: {}", p.type_, p.message)),
    }
}

/// Whether `conditions` hold a True `type_`.
pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    conditions
        .iter()
        .any(|c| c.type_ == type_ && c.status == "True")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transition_time_moves_only_when_the_status_changes() {
        let mut conditions = Vec::new();
        set(
            &mut conditions,
            &Status::failed("ProjectReady", "KeystoneUnavailable", "down"),
            Some(1),
            "t1",
        );
        set(
            &mut conditions,
            &Status::failed("ProjectReady", "KeystoneUnavailable", "still down"),
            Some(1),
            "t2",
        );
        assert_eq!(conditions.len(), 1);
        assert_eq!(conditions[0].last_transition_time, "t1");
        assert_eq!(conditions[0].message, "still down");
        set(
            &mut conditions,
            &Status::ok("ProjectReady", "Created", "project p"),
            Some(2),
            "t3",
        );
        assert_eq!(conditions[0].status, "True");
        assert_eq!(conditions[0].last_transition_time, "t3");
        assert_eq!(conditions[0].observed_generation, Some(2));
        assert!(is_true(&conditions, "ProjectReady"));
        assert!(!is_true(&conditions, "Ready"));
    }

    #[test]
    fn ready_names_the_first_part_that_is_not() {
        let parts = [
            Status::ok("ProjectReady", "Created", "p"),
            Status::failed("NetworkReady", "NeutronUnavailable", "neutron is down"),
            Status::unknown("RBACReady", "Waiting", "w"),
        ];
        let ready = ready(&parts);
        assert_eq!(ready.ok, Some(false));
        assert_eq!(ready.reason, "NeutronUnavailable");
        assert_eq!(ready.message, "NetworkReady: neutron is down");
        assert_eq!(super::ready(&parts[..1]).ok, Some(true));
    }
}
