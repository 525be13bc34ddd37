//! Keystone's access log: the request lines uwsgi writes to the test environment's
//! `logs/keystone.log`, e.g.
//!
//! ```text
//! [pid: 9134|app: 0|req: 71/139] 127.0.0.1 () {26 vars in 484 bytes} [Tue Dec  1 19:04:30 2026] GET /v3/auth/tokens => generated 1248 bytes in 12 msecs (HTTP/1.1 200) 5 headers in 178 bytes (1 switches on core 0)
//! ```
//!
//! The benchmark counts what a phase added to it: how many Keystone requests each webhook made
//! per review, of which kind, and how long Keystone took for them. This is the measured side of
//! "stackube-auth asks Keystone once per review, k8s-keystone-auth twice". While the
//! benchmark runs it holds the machine's test lock, so no integration test adds requests; other
//! clients of Keystone may (their validations cannot be told from the webhooks'), so whatever
//! else Keystone served meanwhile is counted too, and reported.
//! Unit tests: `unit.rs`.

use std::io::{Read as _, Seek as _, SeekFrom};
use std::path::PathBuf;

/// Keystone requests of the kinds the webhooks make, and Keystone's time for them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Requests {
    /// `GET /v3/auth/tokens`: a token validated.
    pub(crate) validations: u64,
    /// `GET /v3/users/<id>/groups`: a user's groups listed.
    pub(crate) group_lists: u64,
    /// Keystone's time for the validations, ms.
    pub(crate) validation_ms: u64,
    /// Keystone's time for the group lists, ms.
    pub(crate) group_list_ms: u64,
    /// Any other request: another client's (the benchmark makes none while it measures).
    pub(crate) other: u64,
}

impl Requests {
    /// Both kinds.
    pub(crate) fn total(&self) -> u64 {
        self.validations + self.group_lists
    }

    /// Counts `line` if it is a request: a validation, a listing of `user_id`'s groups, or
    /// another.
    pub(crate) fn add_line(&mut self, line: &str, user_id: &str) {
        let Some((request, outcome)) = line.split_once(" => generated ") else {
            return;
        };
        let Some((_, request)) = request.rsplit_once("] ") else {
            return;
        };
        let Some((method, path)) = request.split_once(' ') else {
            return;
        };
        let path = path.split('?').next().unwrap_or_default();
        let ms = outcome
            .split_once(" in ")
            .and_then(|(_, rest)| rest.split_once(" msecs"))
            .and_then(|(n, _)| n.trim().parse().ok())
            .unwrap_or(0);
        if method == "GET" && path == "/v3/auth/tokens" {
            self.validations += 1;
            self.validation_ms += ms;
        } else if method == "GET" && path == format!("/v3/users/{user_id}/groups") {
            self.group_lists += 1;
            self.group_list_ms += ms;
        } else {
            self.other += 1;
        }
    }
}

/// The log file, if the environment has one where `hack/testenv` puts it.
#[derive(Clone, Debug)]
pub(crate) struct AccessLog {
    path: Option<PathBuf>,
}

impl AccessLog {
    /// `<testenv root>/logs/keystone.log`; `root` is the directory above the environment's
    /// `k8s/` (where its kubeconfig is).
    pub(crate) fn under(root: Option<&std::path::Path>) -> AccessLog {
        let path = root
            .map(|r| r.join("logs/keystone.log"))
            .filter(|p| p.is_file());
        AccessLog { path }
    }

    /// Whether requests can be counted.
    pub(crate) fn available(&self) -> bool {
        self.path.is_some()
    }

    /// Where the log ends now.
    pub(crate) fn mark(&self) -> u64 {
        self.path
            .as_ref()
            .and_then(|p| std::fs::metadata(p).ok())
            .map_or(0, |m| m.len())
    }

    /// The requests logged after `mark`; group lists count only for `user_id`.
    pub(crate) fn since(&self, mark: u64, user_id: &str) -> Requests {
        let mut requests = Requests::default();
        let Some(path) = &self.path else {
            return requests;
        };
        let mut text = String::new();
        if let Ok(mut file) = std::fs::File::open(path)
            && file.seek(SeekFrom::Start(mark)).is_ok()
        {
            // A partly written last line or odd bytes only cost that line.
            let mut bytes = Vec::new();
            let _ = file.read_to_end(&mut bytes);
            text = String::from_utf8_lossy(&bytes).into_owned();
        }
        for line in text.lines() {
            requests.add_line(line, user_id);
        }
        requests
    }
}
