//! The ledger's clock (SPEC §3.14): a command that can append entries
//! refuses an as-of date earlier than the latest one an earlier write
//! recorded (the clock never runs backwards, so an expired hold never comes
//! back) or later than today's UTC date plus one day (a typo must never
//! close a quarter that is still running). Read-only commands accept any
//! as-of date.

use crate::error::{Error, Result};
use crate::period::{format_date, parse_date};
use chrono::NaiveDate;
use rusqlite::{Connection, OptionalExtension};

/// The environment variable that replaces today's UTC date, for tests and
/// replays (`QLEDGER_TODAY=YYYY-MM-DD`).
pub const TODAY_ENV: &str = "QLEDGER_TODAY";

/// Every entry kind that records the as-of date of the command that wrote
/// it, and the column holding it. The rows of an import are covered by
/// their batch.
pub const AS_OF_COLUMNS: &[(&str, &str)] = &[
    ("ledger_settings", "created_on"),
    ("import_batch", "imported_on"),
    ("hold", "reserved_on"),
    ("hold_release", "released_on"),
    ("remittance_payment", "recorded_on"),
    ("period_close", "closed_on"),
    ("payment_reversal", "reversed_on"),
    ("policy_withdrawal", "withdrawn_on"),
    ("screening_clearance", "cleared_on"),
    ("token_event", "event_on"),
];

/// Today's date: `QLEDGER_TODAY` if set, else today's UTC date.
pub fn today() -> Result<NaiveDate> {
    match std::env::var(TODAY_ENV) {
        Ok(text) => {
            parse_date(text.trim()).map_err(|why| Error::BadInput(format!("{TODAY_ENV}: {why}")))
        }
        Err(std::env::VarError::NotPresent) => Ok(chrono::Utc::now().date_naive()),
        Err(std::env::VarError::NotUnicode(_)) => Err(Error::BadInput(format!(
            "{TODAY_ENV} is not a date (YYYY-MM-DD)"
        ))),
    }
}

/// The as-of date of the latest write: per kind, the date its newest entry
/// records (the clock never runs backwards, so the newest is the latest).
pub fn latest_write_as_of(conn: &Connection) -> Result<Option<NaiveDate>> {
    let mut latest: Option<NaiveDate> = None;
    for (table, column) in AS_OF_COLUMNS {
        let text: Option<String> = conn
            .prepare_cached(&format!(
                "SELECT {column} FROM {table} ORDER BY seq DESC LIMIT 1"
            ))?
            .query_row([], |row| row.get(0))
            .optional()?;
        if let Some(text) = text {
            let date = parse_date(&text).map_err(|why| {
                Error::Integrity(format!("{table}.{column} of its newest entry: {why}"))
            })?;
            latest = latest.max(Some(date));
        }
    }
    Ok(latest)
}

/// Refuses (bad input) an as-of date a write may not use: after today
/// plus one day, or before the latest write's.
pub fn check_write_as_of(conn: &Connection, as_of: NaiveDate) -> Result<()> {
    check_not_ahead(as_of)?;
    if let Some(latest) = latest_write_as_of(conn)? {
        if as_of < latest {
            return Err(Error::BadInput(format!(
                "--as-of {} is before {}, the as-of date of the latest write: the ledger's clock never runs backwards",
                format_date(as_of),
                format_date(latest)
            )));
        }
    }
    Ok(())
}

/// Refuses an as-of date after today plus one day.
pub fn check_not_ahead(as_of: NaiveDate) -> Result<()> {
    let today = today()?;
    let limit = today.succ_opt().unwrap_or(today);
    if as_of > limit {
        return Err(Error::BadInput(format!(
            "--as-of {} is after {} (today {} plus one day): a write may not run ahead of the real date",
            format_date(as_of),
            format_date(limit),
            format_date(today)
        )));
    }
    Ok(())
}
