//! CSI capacity ranges in Cinder's unit, whole GiB.

/// One GiB in bytes.
pub const GIB: i64 = 1 << 30;

/// Why a capacity range cannot be met; each names the field it is about.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CapacityError {
    /// A negative byte count (`INVALID_ARGUMENT`).
    #[error("capacity_range.{field} is negative ({bytes})")]
    Negative {
        /// `required_bytes` or `limit_bytes`.
        field: &'static str,
        /// Its value.
        bytes: i64,
    },
    /// The limit is below what is required (`INVALID_ARGUMENT`).
    #[error("capacity_range.limit_bytes ({limit}) is below required_bytes ({required})")]
    LimitBelowRequired {
        /// `required_bytes`.
        required: i64,
        /// `limit_bytes`.
        limit: i64,
    },
    /// Whole GiB cannot fit: the smallest size at or above what is required exceeds the
    /// limit (`OUT_OF_RANGE`).
    #[error(
        "capacity_range.limit_bytes ({limit}) is below {gib} GiB, the smallest size Cinder can \
         make of required_bytes ({required})"
    )]
    OutOfRange {
        /// `required_bytes`.
        required: i64,
        /// `limit_bytes`.
        limit: i64,
        /// The size it would take.
        gib: u64,
    },
}

/// The volume size, in GiB, for a CSI capacity range (`0` is "unset", as in the spec): the
/// required bytes rounded up to whole GiB, at least `minimum` GiB (a source snapshot's or
/// volume's size, or 1), and never above the limit.
pub fn size_gib(required: i64, limit: i64, minimum: u64) -> Result<u64, CapacityError> {
    for (field, bytes) in [("required_bytes", required), ("limit_bytes", limit)] {
        if bytes < 0 {
            return Err(CapacityError::Negative { field, bytes });
        }
    }
    if limit > 0 && limit < required {
        return Err(CapacityError::LimitBelowRequired { required, limit });
    }
    // Not negative (checked above), so the unsigned division is exact.
    let rounded = (required as u64).div_ceil(GIB as u64);
    let gib = rounded.max(minimum).max(1);
    let fits = limit == 0 || gib.saturating_mul(GIB as u64) <= limit as u64;
    if !fits {
        return Err(CapacityError::OutOfRange {
            required,
            limit,
            gib,
        });
    }
    Ok(gib)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_round_up_to_whole_gib_within_the_limit() {
        /// Case, required, limit, minimum GiB, the size or the error's variant.
        type Case = (&'static str, i64, i64, u64, Result<u64, &'static str>);
        let cases: &[Case] = &[
            ("unset: 1 GiB", 0, 0, 1, Ok(1)),
            ("exactly 1 GiB", GIB, 0, 1, Ok(1)),
            ("a byte over 1 GiB", GIB + 1, 0, 1, Ok(2)),
            ("a little", 1, 0, 1, Ok(1)),
            ("exact range", 2 * GIB, 2 * GIB, 1, Ok(2)),
            ("only a limit", 0, 5 * GIB, 1, Ok(1)),
            ("the source is bigger", GIB, 0, 3, Ok(3)),
            ("the source fits the limit", 0, 3 * GIB, 3, Ok(3)),
            (
                "rounding passes the limit",
                GIB + 1,
                GIB + 2,
                1,
                Err("OutOfRange"),
            ),
            ("a limit under 1 GiB", 0, GIB - 1, 1, Err("OutOfRange")),
            (
                "the source passes the limit",
                0,
                2 * GIB,
                3,
                Err("OutOfRange"),
            ),
            (
                "limit below required",
                2 * GIB,
                GIB,
                1,
                Err("LimitBelowRequired"),
            ),
            ("negative required", -1, 0, 1, Err("Negative")),
            ("negative limit", 0, -1, 1, Err("Negative")),
        ];
        for (case, required, limit, minimum, want) in cases {
            let got = size_gib(*required, *limit, *minimum).map_err(|e| match e {
                CapacityError::Negative { .. } => "Negative",
                CapacityError::LimitBelowRequired { .. } => "LimitBelowRequired",
                CapacityError::OutOfRange { .. } => "OutOfRange",
            });
            assert_eq!(got, *want, "{case}");
        }
    }

    #[test]
    fn errors_name_the_field() {
        let e = size_gib(-5, 0, 1).unwrap_err().to_string();
        assert!(e.contains("capacity_range.required_bytes"), "{e}");
        let e = size_gib(GIB + 1, GIB + 2, 1).unwrap_err().to_string();
        assert!(
            e.contains("capacity_range.limit_bytes") && e.contains("2 GiB"),
            "{e}"
        );
    }
}
