//! The repository layer: every query the API runs, one module per resource. Object-level
//! authorization lives here, inside the queries (a scope argument), never after them.

pub mod agencies;
pub mod refresh_tokens;
pub mod users;

use diesel::result::{DatabaseErrorKind, Error};

/// True when the error is a unique-constraint violation (both engines report it alike).
pub fn is_unique_violation(e: &Error) -> bool {
    matches!(
        e,
        Error::DatabaseError(DatabaseErrorKind::UniqueViolation, _)
    )
}

/// A new time-ordered id: UUIDv7 strings sort by creation time, so `ORDER BY id DESC` is
/// "newest first" and keyset pagination needs no second column.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}
