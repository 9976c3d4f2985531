//! Timestamps read from SQLite's text without reading a format string for each value.
//!
//! SQLite keeps a `Timestamp` as text, which diesel parses by trying strftime formats in turn,
//! interpreting the format string anew for every value: over a quarter of decoding a case's
//! row, and two timestamps per row of the case list (bench/RESULTS.md). The rows read most
//! often take their timestamps through these types instead (`#[diesel(deserialize_as = ...)]`):
//! the layout diesel writes is parsed from items interpreted once, with chrono's own parser;
//! any other text goes to diesel as before, and so does PostgreSQL's binary value.

use std::sync::LazyLock;

use chrono::NaiveDateTime;
use chrono::format::{Item, Parsed, StrftimeItems};
use diesel::deserialize::{self, FromSql, FromSqlRow};
use diesel::sql_types::{Nullable, Timestamp};

use super::{MultiBackend, MultiRawValue};

/// The layout diesel writes a `NaiveDateTime` in on SQLite, and the first it tries to read.
const SQLITE_LAYOUT: &str = "%F %T%.f";

static SQLITE_ITEMS: LazyLock<Vec<Item<'static>>> = LazyLock::new(|| {
    StrftimeItems::new(SQLITE_LAYOUT)
        .parse()
        .expect("a valid strftime layout")
});

fn from_sqlite_text(text: &str) -> Option<NaiveDateTime> {
    let mut parsed = Parsed::new();
    chrono::format::parse(&mut parsed, text, SQLITE_ITEMS.iter()).ok()?;
    parsed.to_naive_datetime_with_offset(0).ok()
}

fn read(value: MultiRawValue<'_>) -> deserialize::Result<NaiveDateTime> {
    match value {
        MultiRawValue::Sqlite(mut raw) => match from_sqlite_text(raw.read_text()) {
            Some(t) => Ok(t),
            None => <NaiveDateTime as FromSql<Timestamp, diesel::sqlite::Sqlite>>::from_sql(raw),
        },
        other => other.from_sql::<NaiveDateTime, Timestamp>(),
    }
}

/// A `Timestamp` column, for `#[diesel(deserialize_as = StoredTimestamp)]`.
#[derive(FromSqlRow)]
pub struct StoredTimestamp(NaiveDateTime);

impl FromSql<Timestamp, MultiBackend> for StoredTimestamp {
    fn from_sql(value: MultiRawValue<'_>) -> deserialize::Result<Self> {
        read(value).map(StoredTimestamp)
    }
}

impl From<StoredTimestamp> for NaiveDateTime {
    fn from(t: StoredTimestamp) -> NaiveDateTime {
        t.0
    }
}

/// A `Nullable<Timestamp>` column, for `#[diesel(deserialize_as = StoredOptionalTimestamp)]`.
#[derive(FromSqlRow)]
pub struct StoredOptionalTimestamp(Option<NaiveDateTime>);

impl FromSql<Nullable<Timestamp>, MultiBackend> for StoredOptionalTimestamp {
    fn from_sql(value: MultiRawValue<'_>) -> deserialize::Result<Self> {
        read(value).map(|t| StoredOptionalTimestamp(Some(t)))
    }

    fn from_nullable_sql(value: Option<MultiRawValue<'_>>) -> deserialize::Result<Self> {
        match value {
            Some(value) => Self::from_sql(value),
            None => Ok(StoredOptionalTimestamp(None)),
        }
    }
}

impl From<StoredOptionalTimestamp> for Option<NaiveDateTime> {
    fn from(t: StoredOptionalTimestamp) -> Option<NaiveDateTime> {
        t.0
    }
}
