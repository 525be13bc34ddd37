//! What can go wrong when talking to OpenStack, sorted into the few kinds a caller acts on.
//!
//! Every failure is an [`OpenStackError`] whose variant is its [`ErrorKind`]: a reconciler
//! matches `NotFound` ("already gone, carry on"), `Conflict` ("someone else holds it, look
//! again"), `Unauthorized` (configuration or role problem, tell a person), `Unavailable` (retry
//! with backoff) and `Invalid` (our request is wrong, do not retry). Each error names the
//! [`Call`] that failed (service, operation and resource id where known) so that a log line is
//! enough to find the request. Messages never contain tokens or passwords: the only text taken
//! from a response is the service's own error message.

use std::fmt;

use crate::observe::Call;

/// A boxed underlying cause (transport error, SDK error).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Shorthand for results of this crate.
pub type Result<T, E = OpenStackError> = std::result::Result<T, E>;

/// The kind of an [`OpenStackError`], for matching and for metric labels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The resource does not exist (HTTP 404).
    NotFound,
    /// The request conflicts with the resource's current state (HTTP 409, 412).
    Conflict,
    /// The credentials were rejected or lack a role (HTTP 401, 403).
    Unauthorized,
    /// The service could not be reached or is overloaded (connection refused, timeouts, HTTP
    /// 429, 502, 503, 504).
    Unavailable,
    /// The service rejected the request as malformed (HTTP 400, 413, 422).
    Invalid,
    /// Anything else: HTTP 500, unexpected responses, missing catalog entries.
    Other,
}

impl ErrorKind {
    /// The kind an HTTP error status maps to.
    pub fn from_status(status: u16) -> ErrorKind {
        match status {
            404 => ErrorKind::NotFound,
            409 | 412 => ErrorKind::Conflict,
            401 | 403 => ErrorKind::Unauthorized,
            429 | 502 | 503 | 504 => ErrorKind::Unavailable,
            400 | 413 | 422 => ErrorKind::Invalid,
            _ => ErrorKind::Other,
        }
    }

    /// A short snake_case name, stable for metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::NotFound => "not_found",
            ErrorKind::Conflict => "conflict",
            ErrorKind::Unauthorized => "unauthorized",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Invalid => "invalid",
            ErrorKind::Other => "other",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed OpenStack call.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenStackError {
    /// The resource does not exist.
    #[error("{call}: not found")]
    NotFound {
        /// The failed call.
        call: Call,
        /// The service's error message.
        message: String,
    },
    /// The request conflicts with the resource's current state.
    #[error("{call}: conflict: {message}")]
    Conflict {
        /// The failed call.
        call: Call,
        /// HTTP status (409 or 412).
        status: u16,
        /// The service's error message.
        message: String,
    },
    /// The credentials were rejected, or the user lacks a role for the call.
    #[error("{call}: not authorized (http {status}): {message}")]
    Unauthorized {
        /// The failed call.
        call: Call,
        /// HTTP status (401 or 403).
        status: u16,
        /// The service's error message.
        message: String,
    },
    /// The service could not be reached, timed out, or answered 429/502/503/504.
    #[error("{call}: service unavailable: {reason}")]
    Unavailable {
        /// The failed call.
        call: Call,
        /// What happened, e.g. `http 503` or `connection failed`.
        reason: String,
        /// The transport error, when there was one.
        #[source]
        source: Option<BoxError>,
    },
    /// The service rejected the request as malformed.
    #[error("{call}: invalid request (http {status}): {message}")]
    Invalid {
        /// The failed call.
        call: Call,
        /// HTTP status (400, 413 or 422).
        status: u16,
        /// The service's error message.
        message: String,
    },
    /// Any other failure.
    #[error("{call}: {message}")]
    Other {
        /// The failed call.
        call: Call,
        /// HTTP status, when the service answered.
        status: Option<u16>,
        /// What went wrong.
        message: String,
        /// The underlying error, when there was one.
        #[source]
        source: Option<BoxError>,
    },
}

impl OpenStackError {
    /// The error's kind.
    pub fn kind(&self) -> ErrorKind {
        match self {
            OpenStackError::NotFound { .. } => ErrorKind::NotFound,
            OpenStackError::Conflict { .. } => ErrorKind::Conflict,
            OpenStackError::Unauthorized { .. } => ErrorKind::Unauthorized,
            OpenStackError::Unavailable { .. } => ErrorKind::Unavailable,
            OpenStackError::Invalid { .. } => ErrorKind::Invalid,
            OpenStackError::Other { .. } => ErrorKind::Other,
        }
    }

    /// Whether the same call may succeed if simply repeated later (with backoff): only
    /// [`ErrorKind::Unavailable`]. Conflicts usually clear up too, but only after the caller
    /// looks at the resource again, so they are not "retryable" in this sense.
    pub fn is_retryable(&self) -> bool {
        self.kind() == ErrorKind::Unavailable
    }

    /// Whether this is [`ErrorKind::NotFound`].
    pub fn is_not_found(&self) -> bool {
        self.kind() == ErrorKind::NotFound
    }

    /// The call that failed.
    pub fn call(&self) -> &Call {
        match self {
            OpenStackError::NotFound { call, .. }
            | OpenStackError::Conflict { call, .. }
            | OpenStackError::Unauthorized { call, .. }
            | OpenStackError::Unavailable { call, .. }
            | OpenStackError::Invalid { call, .. }
            | OpenStackError::Other { call, .. } => call,
        }
    }

    /// The HTTP status of the response, when the service answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            OpenStackError::NotFound { .. } => Some(404),
            OpenStackError::Conflict { status, .. }
            | OpenStackError::Unauthorized { status, .. }
            | OpenStackError::Invalid { status, .. } => Some(*status),
            OpenStackError::Unavailable { reason, .. } => reason
                .strip_prefix("http ")
                .and_then(|s| s.parse::<u16>().ok()),
            OpenStackError::Other { status, .. } => *status,
        }
    }

    /// The error for an HTTP error response with status `status` and body `body`.
    pub(crate) fn from_response(call: Call, status: u16, body: &[u8]) -> OpenStackError {
        let message = error_message(body);
        match ErrorKind::from_status(status) {
            ErrorKind::NotFound => OpenStackError::NotFound { call, message },
            ErrorKind::Conflict => OpenStackError::Conflict {
                call,
                status,
                message,
            },
            ErrorKind::Unauthorized => OpenStackError::Unauthorized {
                call,
                status,
                message,
            },
            ErrorKind::Unavailable => OpenStackError::Unavailable {
                call,
                reason: format!("http {status}"),
                source: None,
            },
            ErrorKind::Invalid => OpenStackError::Invalid {
                call,
                status,
                message,
            },
            ErrorKind::Other => OpenStackError::Other {
                call,
                status: Some(status),
                message: format!("unexpected http {status}: {message}"),
                source: None,
            },
        }
    }

    /// This error with every occurrence of `secret` in its message replaced by `[REDACTED]`.
    ///
    /// For calls whose request carries a password: the only response text an error keeps is the
    /// service's message, and no service is known to echo a password there, but a validation
    /// message quoting the rejected value would otherwise carry it into logs.
    pub(crate) fn without_secret(self, secret: &str) -> Self {
        if secret.is_empty() {
            return self;
        }
        let scrub = |text: String| {
            if text.contains(secret) {
                text.replace(secret, "[REDACTED]")
            } else {
                text
            }
        };
        match self {
            OpenStackError::NotFound { call, message } => OpenStackError::NotFound {
                call,
                message: scrub(message),
            },
            OpenStackError::Conflict {
                call,
                status,
                message,
            } => OpenStackError::Conflict {
                call,
                status,
                message: scrub(message),
            },
            OpenStackError::Unauthorized {
                call,
                status,
                message,
            } => OpenStackError::Unauthorized {
                call,
                status,
                message: scrub(message),
            },
            OpenStackError::Unavailable {
                call,
                reason,
                source,
            } => OpenStackError::Unavailable {
                call,
                reason: scrub(reason),
                source,
            },
            OpenStackError::Invalid {
                call,
                status,
                message,
            } => OpenStackError::Invalid {
                call,
                status,
                message: scrub(message),
            },
            OpenStackError::Other {
                call,
                status,
                message,
                source,
            } => OpenStackError::Other {
                call,
                status,
                message: scrub(message),
                source,
            },
        }
    }

    /// The error for a response that arrived but could not be understood.
    pub(crate) fn unexpected(
        call: Call,
        what: impl Into<String>,
        source: Option<BoxError>,
    ) -> Self {
        OpenStackError::Other {
            call,
            status: None,
            message: what.into(),
            source,
        }
    }
}

/// How long an error message taken from a response body may be.
const MAX_MESSAGE: usize = 300;

/// The human-readable message of an OpenStack error body.
///
/// The services wrap it differently: Keystone `{"error": {"message": ..}}`, Neutron
/// `{"NeutronError": {"message": ..}}`, Cinder `{"itemNotFound": {"message": ..}}`, some plain
/// `{"message": ..}`, and webob answers with HTML or plain text. Falls back to the first line of
/// the body, shortened.
pub(crate) fn error_message(body: &[u8]) -> String {
    let from_json = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            let direct = v.get("message").and_then(|m| m.as_str());
            let nested = || {
                v.as_object()?
                    .values()
                    .find_map(|inner| inner.get("message").and_then(|m| m.as_str()))
            };
            let plain_error = || v.get("error").and_then(|e| e.as_str());
            direct
                .or_else(nested)
                .or_else(plain_error)
                .map(str::to_owned)
        });
    let text = match from_json {
        Some(message) => message,
        None => String::from_utf8_lossy(body)
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with('<'))
            .unwrap_or("")
            .to_owned(),
    };
    let text = text.trim();
    if text.is_empty() {
        return "no error message".to_owned();
    }
    if text.chars().count() > MAX_MESSAGE {
        let cut: String = text.chars().take(MAX_MESSAGE).collect();
        return format!("{cut}…");
    }
    text.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::Service;

    fn call() -> Call {
        Call::new(Service::Network, "get_network").with_resource("net-1")
    }

    #[test]
    fn http_status_maps_to_kind() {
        let cases = [
            (400, ErrorKind::Invalid),
            (401, ErrorKind::Unauthorized),
            (403, ErrorKind::Unauthorized),
            (404, ErrorKind::NotFound),
            (409, ErrorKind::Conflict),
            (412, ErrorKind::Conflict),
            (413, ErrorKind::Invalid),
            (429, ErrorKind::Unavailable),
            (500, ErrorKind::Other),
            (501, ErrorKind::Other),
            (502, ErrorKind::Unavailable),
            (503, ErrorKind::Unavailable),
            (504, ErrorKind::Unavailable),
            (418, ErrorKind::Other),
        ];
        for (status, kind) in cases {
            assert_eq!(ErrorKind::from_status(status), kind, "status {status}");
            let err = OpenStackError::from_response(call(), status, b"");
            assert_eq!(err.kind(), kind, "status {status}");
            assert_eq!(err.status(), Some(status), "status {status}");
            assert_eq!(
                err.is_retryable(),
                kind == ErrorKind::Unavailable,
                "status {status}"
            );
        }
    }

    #[test]
    fn messages_are_extracted_from_each_services_error_body() {
        let cases: [(&[u8], &str); 7] = [
            (
                br#"{"NeutronError": {"type": "NetworkNotFound", "message": "Network n could not be found.", "detail": ""}}"#,
                "Network n could not be found.",
            ),
            (
                br#"{"error": {"code": 401, "message": "The request you have made requires authentication.", "title": "Unauthorized"}}"#,
                "The request you have made requires authentication.",
            ),
            (
                br#"{"itemNotFound": {"code": 404, "message": "Volume v could not be found."}}"#,
                "Volume v could not be found.",
            ),
            (br#"{"message": "plain"}"#, "plain"),
            (br#"{"error": "flat"}"#, "flat"),
            (
                b"<html>\n<head><title>404</title></head>\n 404 Not Found\n",
                "404 Not Found",
            ),
            (b"", "no error message"),
        ];
        for (body, want) in cases {
            assert_eq!(error_message(body), want);
        }
    }

    #[test]
    fn long_messages_are_shortened() {
        let body = format!(r#"{{"message": "{}"}}"#, "x".repeat(1000));
        let msg = error_message(body.as_bytes());
        assert!(msg.chars().count() <= MAX_MESSAGE + 1);
    }

    #[test]
    fn secrets_are_scrubbed_from_service_messages() {
        let body =
            br#"{"error": {"message": "Invalid input for field 'password': 'hunter2' is bad"}}"#;
        for status in [400, 401, 404, 409, 500] {
            let err = OpenStackError::from_response(call(), status, body).without_secret("hunter2");
            assert!(!err.to_string().contains("hunter2"), "{err}");
            assert!(!format!("{err:?}").contains("hunter2"), "{err:?}");
            assert_eq!(err.status(), Some(status));
        }
        let err = OpenStackError::from_response(call(), 400, body).without_secret("");
        assert!(err.to_string().contains("'hunter2' is bad"), "{err}");
    }

    #[test]
    fn display_names_the_call_and_is_lowercase() {
        let err = OpenStackError::from_response(
            call(),
            409,
            br#"{"NeutronError": {"message": "Unable to complete operation"}}"#,
        );
        assert_eq!(
            err.to_string(),
            "network get_network net-1: conflict: Unable to complete operation"
        );
        let err = OpenStackError::from_response(call(), 503, b"");
        assert_eq!(
            err.to_string(),
            "network get_network net-1: service unavailable: http 503"
        );
        assert_eq!(err.status(), Some(503));
    }
}
