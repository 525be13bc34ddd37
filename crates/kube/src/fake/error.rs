//! Failures as kube-apiserver reports them: an HTTP status and a `Status` body, which kube-rs
//! turns into [`kube::Error::Api`].

use serde_json::{Value, json};

use super::path::Target;

/// A failed request: its HTTP status, `reason`, message and `details`.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct ApiError {
    pub(super) code: u16,
    pub(super) reason: &'static str,
    pub(super) message: String,
    pub(super) details: Option<Value>,
}

impl ApiError {
    fn new(code: u16, message: String) -> ApiError {
        ApiError {
            code,
            reason: reason_of(code),
            message,
            details: None,
        }
    }

    fn about(mut self, target: &Target, name: &str) -> ApiError {
        self.details = Some(json!({
            "name": name,
            "group": target.group,
            "kind": target.resource,
        }));
        self
    }

    /// 404: the object `name` does not exist.
    pub(super) fn not_found(target: &Target, name: &str) -> ApiError {
        ApiError::new(404, format!("{} {name:?} not found", target.qualified())).about(target, name)
    }

    /// 404: no resource is served at this path.
    pub(super) fn no_such_path(path: &str) -> ApiError {
        ApiError::new(
            404,
            format!("the server could not find the requested resource ({path})"),
        )
    }

    /// 409 `AlreadyExists`.
    pub(super) fn already_exists(target: &Target, name: &str) -> ApiError {
        ApiError {
            reason: "AlreadyExists",
            ..ApiError::new(
                409,
                format!("{} {name:?} already exists", target.qualified()),
            )
        }
        .about(target, name)
    }

    /// 409 `Conflict`: a precondition (`resourceVersion`, `uid`) does not hold.
    pub(super) fn conflict(target: &Target, name: &str, why: &str) -> ApiError {
        ApiError::new(
            409,
            format!(
                "Operation cannot be fulfilled on {} {name:?}: {why}",
                target.qualified()
            ),
        )
        .about(target, name)
    }

    /// 422 `Invalid`.
    pub(super) fn invalid(message: impl Into<String>) -> ApiError {
        ApiError::new(422, message.into())
    }

    /// 400 `BadRequest`.
    pub(super) fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(400, message.into())
    }

    /// 403 `Forbidden`.
    pub(super) fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(403, message.into())
    }

    /// 405 `MethodNotAllowed`.
    pub(super) fn method_not_allowed(message: impl Into<String>) -> ApiError {
        ApiError::new(405, message.into())
    }

    /// 415 `UnsupportedMediaType`.
    pub(super) fn unsupported_media_type(content_type: &str) -> ApiError {
        ApiError::new(
            415,
            format!("the body of the request was in an unknown format: {content_type}"),
        )
    }

    /// Any status, for fault injection.
    pub(super) fn injected(code: u16, request: &str) -> ApiError {
        ApiError::new(code, format!("injected fault: {code} for {request}"))
    }

    /// The `Status` object kube-apiserver answers with.
    pub(super) fn to_status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(details) = &self.details {
            status["details"] = details.clone();
        }
        status
    }
}

/// The `reason` kube-apiserver gives with an HTTP status.
fn reason_of(code: u16) -> &'static str {
    match code {
        400 => "BadRequest",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        405 => "MethodNotAllowed",
        406 => "NotAcceptable",
        409 => "Conflict",
        410 => "Expired",
        413 => "RequestEntityTooLarge",
        415 => "UnsupportedMediaType",
        422 => "Invalid",
        429 => "TooManyRequests",
        500 => "InternalError",
        503 => "ServiceUnavailable",
        504 => "Timeout",
        _ => "",
    }
}
