//! Fault injection for [`super::FakeCloud`]: make chosen calls fail, time out, or find their
//! service down.
//!
//! Faults are named by operation (the trait method's name, e.g. `create_port`, as in
//! [`crate::Call::operation`]) and counted from the moment they are set: `fail_nth("x", 3, ..)`
//! fails the third call of `x` made after it, whatever happened before.
//!
//! # Guarantees
//! A call that a fault fails has been recorded in the call log and has changed no state.
//! When several faults apply to one call, the first of these wins: the service is down, a
//! `fail_nth`/`fail_from` rule, a `hang`.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use crate::error::ErrorKind;
use crate::observe::{Call, Service};

/// The faults to inject into a [`super::FakeCloud`]'s calls; see the module documentation.
///
/// All methods take `&self` (the faults sit behind a lock) so that a test can change them
/// while the code under test holds the cloud.
#[derive(Debug, Default)]
pub struct Faults {
    rules: Mutex<Rules>,
}

#[derive(Debug, Default)]
struct Rules {
    /// Calls seen per operation since the cloud was made.
    seen: HashMap<String, usize>,
    fail: Vec<FailRule>,
    /// Per operation, the durations the next calls hang for, one call each.
    hangs: HashMap<String, VecDeque<Duration>>,
    down: HashSet<Service>,
    connect_fails: bool,
}

#[derive(Debug)]
struct FailRule {
    operation: String,
    /// The value of `seen[operation]` at which the rule fires.
    at: usize,
    kind: ErrorKind,
    /// Whether every later call fails too (`fail_from`).
    sticky: bool,
}

/// What to do with a call.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Verdict {
    /// Carry on.
    Proceed,
    /// Fail at once with this kind and message.
    Fail(ErrorKind, String),
    /// Sleep this long, then fail `Unavailable`.
    Hang(Duration),
}

impl Faults {
    /// The `n`-th call of `operation` from now (1-based: `1` is the next one) fails with an
    /// error of `kind`, without changing state. Other calls are not affected.
    ///
    /// # Panics
    /// When `n` is 0.
    pub fn fail_nth(&self, operation: &str, n: usize, kind: ErrorKind) {
        self.add_rule(operation, n, kind, false);
    }

    /// The `n`-th call of `operation` from now and every later one fail with `kind`, until
    /// [`Faults::clear`].
    ///
    /// # Panics
    /// When `n` is 0.
    pub fn fail_from(&self, operation: &str, n: usize, kind: ErrorKind) {
        self.add_rule(operation, n, kind, true);
    }

    /// The next call of `operation` sleeps for `duration` (`tokio::time::sleep`, so a test with
    /// paused time does not wait) and then fails `Unavailable` ("timed out") without changing
    /// state. Each `hang` makes one more call hang.
    pub fn hang(&self, operation: &str, duration: Duration) {
        self.rules()
            .hangs
            .entry(operation.to_owned())
            .or_default()
            .push_back(duration);
    }

    /// While `down`, every call of `service` fails `Unavailable`.
    pub fn service_down(&self, service: Service, down: bool) {
        let mut rules = self.rules();
        if down {
            rules.down.insert(service);
        } else {
            rules.down.remove(&service);
        }
    }

    /// While `fails`, [`crate::Services`]' methods of the fake fail as if Keystone refused the
    /// connection.
    pub fn connect_fails(&self, fails: bool) {
        self.rules().connect_fails = fails;
    }

    /// Removes every fault; the calls already made keep counting.
    pub fn clear(&self) {
        let mut rules = self.rules();
        rules.fail.clear();
        rules.hangs.clear();
        rules.down.clear();
        rules.connect_fails = false;
    }

    pub(super) fn connecting_fails(&self) -> bool {
        self.rules().connect_fails
    }

    /// Counts `call` and decides its fate.
    pub(super) fn check(&self, call: &Call) -> Verdict {
        let mut rules = self.rules();
        let seen = {
            let seen = rules.seen.entry(call.operation.to_owned()).or_default();
            *seen += 1;
            *seen
        };
        if rules.down.contains(&call.service) {
            return Verdict::Fail(
                ErrorKind::Unavailable,
                format!("{} is down (injected)", call.service),
            );
        }
        let fired = rules.fail.iter().position(|r| {
            r.operation == call.operation && (r.at == seen || r.sticky && seen > r.at)
        });
        if let Some(index) = fired {
            let kind = rules.fail[index].kind;
            if !rules.fail[index].sticky {
                rules.fail.remove(index);
            }
            return Verdict::Fail(kind, format!("injected {kind} on call {seen}"));
        }
        if let Some(queue) = rules.hangs.get_mut(call.operation)
            && let Some(duration) = queue.pop_front()
        {
            return Verdict::Hang(duration);
        }
        Verdict::Proceed
    }

    fn add_rule(&self, operation: &str, n: usize, kind: ErrorKind, sticky: bool) {
        assert!(n >= 1, "calls are counted from 1; {operation} n = 0");
        let mut rules = self.rules();
        let seen = rules.seen.get(operation).copied().unwrap_or(0);
        rules.fail.push(FailRule {
            operation: operation.to_owned(),
            at: seen + n,
            kind,
            sticky,
        });
    }

    fn rules(&self) -> std::sync::MutexGuard<'_, Rules> {
        super::lock(&self.rules)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(operation: &'static str) -> Call {
        Call::new(Service::Network, operation)
    }

    fn fails(v: &Verdict) -> Option<ErrorKind> {
        match v {
            Verdict::Fail(kind, _) => Some(*kind),
            _ => None,
        }
    }

    /// The fate of the next `n` calls of `op`, `None` meaning it proceeds.
    fn run(faults: &Faults, op: &'static str, n: usize) -> Vec<Option<ErrorKind>> {
        (0..n).map(|_| fails(&faults.check(&call(op)))).collect()
    }

    #[test]
    fn rules_fire_on_the_calls_they_name() {
        use ErrorKind::*;
        type Setup = fn(&Faults);
        let cases: [(&str, Setup, Vec<Option<ErrorKind>>); 6] = [
            ("nothing set", |_| {}, vec![None, None, None, None]),
            (
                "third call",
                |f| f.fail_nth("op", 3, Conflict),
                vec![None, None, Some(Conflict), None],
            ),
            (
                "first call",
                |f| f.fail_nth("op", 1, NotFound),
                vec![Some(NotFound), None, None, None],
            ),
            (
                "from the second on",
                |f| f.fail_from("op", 2, Unavailable),
                vec![
                    None,
                    Some(Unavailable),
                    Some(Unavailable),
                    Some(Unavailable),
                ],
            ),
            (
                "two rules",
                |f| {
                    f.fail_nth("op", 1, Invalid);
                    f.fail_nth("op", 3, Other);
                },
                vec![Some(Invalid), None, Some(Other), None],
            ),
            (
                "another operation",
                |f| f.fail_from("other", 1, Other),
                vec![None, None, None, None],
            ),
        ];
        for (name, setup, want) in cases {
            let faults = Faults::default();
            setup(&faults);
            assert_eq!(run(&faults, "op", 4), want, "{name}");
        }
    }

    #[test]
    fn calls_are_counted_from_when_the_rule_is_set() {
        let faults = Faults::default();
        run(&faults, "op", 5);
        faults.fail_nth("op", 2, ErrorKind::Conflict);
        assert_eq!(
            run(&faults, "op", 3),
            vec![None, Some(ErrorKind::Conflict), None]
        );
    }

    #[test]
    fn a_down_service_fails_all_its_calls_until_up() {
        let faults = Faults::default();
        faults.service_down(Service::Network, true);
        assert_eq!(
            fails(&faults.check(&call("a"))),
            Some(ErrorKind::Unavailable)
        );
        let keystone = Call::new(Service::Identity, "a");
        assert_eq!(faults.check(&keystone), Verdict::Proceed);
        faults.service_down(Service::Network, false);
        assert_eq!(faults.check(&call("a")), Verdict::Proceed);
    }

    #[test]
    fn hangs_apply_once_each() {
        let faults = Faults::default();
        faults.hang("op", Duration::from_secs(1));
        faults.hang("op", Duration::from_secs(2));
        assert_eq!(
            faults.check(&call("op")),
            Verdict::Hang(Duration::from_secs(1))
        );
        assert_eq!(faults.check(&call("other")), Verdict::Proceed);
        assert_eq!(
            faults.check(&call("op")),
            Verdict::Hang(Duration::from_secs(2))
        );
        assert_eq!(faults.check(&call("op")), Verdict::Proceed);
    }

    #[test]
    fn clear_removes_every_fault() {
        let faults = Faults::default();
        faults.fail_from("op", 1, ErrorKind::Other);
        faults.hang("op", Duration::from_secs(1));
        faults.service_down(Service::Network, true);
        faults.connect_fails(true);
        faults.clear();
        assert_eq!(run(&faults, "op", 2), vec![None, None]);
        assert!(!faults.connecting_fails());
    }

    #[test]
    #[should_panic(expected = "counted from 1")]
    fn the_zeroth_call_is_refused() {
        Faults::default().fail_nth("op", 0, ErrorKind::Other);
    }
}
