//! gRPC status codes for what goes wrong: the CSI spec says which code each failure gets, and
//! the CO retries or gives up on the code.

use stackube_core::volume::{CapacityError, ParamsError};
use stackube_openstack::{ErrorKind, OpenStackError};
use tonic::{Code, Status};

/// A required field that is empty: `INVALID_ARGUMENT`, naming it.
pub(crate) fn required(field: &str) -> Status {
    Status::invalid_argument(format!("{field}: required"))
}

/// A Cinder failure, by its kind. `NotFound` and `Invalid` are usually answered before they
/// get here with the code the spec gives for that call; what is left is mapped generically.
pub(crate) fn cinder(e: &OpenStackError) -> Status {
    let code = match e.kind() {
        ErrorKind::NotFound => Code::NotFound,
        ErrorKind::Conflict => Code::Aborted,
        ErrorKind::Unauthorized => Code::PermissionDenied,
        ErrorKind::Unavailable => Code::Unavailable,
        ErrorKind::Invalid => Code::FailedPrecondition,
        ErrorKind::Other => Code::Internal,
    };
    Status::new(code, e.to_string())
}

/// A capacity range that cannot be met.
pub(crate) fn capacity(e: &CapacityError) -> Status {
    match e {
        CapacityError::OutOfRange { .. } => Status::out_of_range(e.to_string()),
        CapacityError::Negative { .. } | CapacityError::LimitBelowRequired { .. } => {
            Status::invalid_argument(e.to_string())
        }
    }
}

/// StorageClass parameters that are refused.
pub(crate) fn params(e: &ParamsError) -> Status {
    Status::invalid_argument(e.to_string())
}
