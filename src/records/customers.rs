//! Customer approvals and revocations (SPEC §3.2).

use crate::error::{Error, Result, RowProblem};
use crate::input::csv::{ColumnSpec, Row};
use crate::input::reference_import::{check, ReferenceRow};
use crate::input::values::{parse_choice, parse_identifier, parse_market, parse_text};
use crate::period::{format_date, parse_date};
use crate::store::entry::{EntryKind, CUSTOMER_EVENT};
use chrono::NaiveDate;
use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension};

/// Whether a customer event approves or revokes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CustomerStatus {
    /// Passed KYC and security checks; promised no military end use.
    Approved,
    /// No longer approved.
    Revoked,
}

impl CustomerStatus {
    /// The stored name.
    pub fn name(self) -> &'static str {
        match self {
            CustomerStatus::Approved => "approved",
            CustomerStatus::Revoked => "revoked",
        }
    }
}

/// One customer event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomerEvent {
    /// Case-sensitive identifier.
    pub customer_id: String,
    /// Legal name.
    pub name: String,
    /// Country of the customer, upper-case.
    pub country: String,
    /// Approved or revoked.
    pub status: CustomerStatus,
    /// The date it takes effect.
    pub effective_date: NaiveDate,
    /// Licence or case reference (may be empty).
    pub reference: String,
    /// An approval lapses on this date (KYC review due), if set.
    pub kyc_expires_on: Option<NaiveDate>,
    /// The reference of the signed no-military-end-use certificate, if any
    /// (an empty field is none).
    pub end_use_certificate: Option<String>,
}

/// The file's columns (SPEC §4).
pub const COLUMNS: &[ColumnSpec] = &[
    ColumnSpec {
        name: "customer_id",
        required: true,
    },
    ColumnSpec {
        name: "name",
        required: true,
    },
    ColumnSpec {
        name: "country",
        required: true,
    },
    ColumnSpec {
        name: "status",
        required: true,
    },
    ColumnSpec {
        name: "effective_date",
        required: true,
    },
    ColumnSpec {
        name: "reference",
        required: true,
    },
    ColumnSpec {
        name: "kyc_expires_on",
        required: false,
    },
    ColumnSpec {
        name: "end_use_certificate",
        required: false,
    },
];

const SELECT_COLUMNS: &str =
    "customer_id, name, country, status, effective_date, reference, kyc_expires_on, end_use_certificate";

type Stored = ([String; 6], Option<String>, Option<String>);

fn from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Stored> {
    Ok((
        [
            row.get(0)?,
            row.get(1)?,
            row.get(2)?,
            row.get(3)?,
            row.get(4)?,
            row.get(5)?,
        ],
        row.get(6)?,
        row.get(7)?,
    ))
}

fn from_stored(stored: Stored) -> Result<CustomerEvent> {
    let ([customer_id, name, country, status, date, reference], kyc, certificate) = stored;
    let corrupt = |what: String| {
        Error::Integrity(format!(
            "stored event of customer {customer_id} is corrupt: {what}"
        ))
    };
    Ok(CustomerEvent {
        status: match status.as_str() {
            "approved" => CustomerStatus::Approved,
            "revoked" => CustomerStatus::Revoked,
            other => return Err(corrupt(format!("status '{other}'"))),
        },
        effective_date: parse_date(&date).map_err(corrupt)?,
        kyc_expires_on: kyc
            .as_deref()
            .map(parse_date)
            .transpose()
            .map_err(corrupt)?,
        end_use_certificate: certificate,
        customer_id,
        name,
        country,
        reference,
    })
}

/// Every customer event with its entry number, in entry order (`verify`'s replay).
pub fn all_with_seq(conn: &Connection) -> Result<Vec<(i64, CustomerEvent)>> {
    let sql = format!("SELECT {SELECT_COLUMNS}, seq FROM customer_event ORDER BY seq");
    super::all_with_seq(conn, &sql, 8, from_row, from_stored)
}

/// Every event of one customer, oldest first.
pub fn events_of(conn: &Connection, customer_id: &str) -> Result<Vec<CustomerEvent>> {
    let stored = conn
        .prepare_cached(&format!(
            "SELECT {SELECT_COLUMNS} FROM customer_event WHERE customer_id = ?1 ORDER BY effective_date"
        ))?
        .query_map([customer_id], from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    stored.into_iter().map(from_stored).collect()
}

/// The latest of `events` (oldest first) dated on or before `date`.
pub fn latest_on(events: &[CustomerEvent], date: NaiveDate) -> Option<&CustomerEvent> {
    let after = events.partition_point(|event| event.effective_date <= date);
    after.checked_sub(1).map(|index| &events[index])
}

/// The customer's latest event dated on or before `date`, if any.
pub fn state_on(
    conn: &Connection,
    customer_id: &str,
    date: NaiveDate,
) -> Result<Option<CustomerEvent>> {
    Ok(latest_on(&events_of(conn, customer_id)?, date).cloned())
}

impl ReferenceRow for CustomerEvent {
    type Context = ();
    const KIND: EntryKind = CUSTOMER_EVENT;
    const FILE_KIND: &'static str = "customers";
    const COLUMNS: &'static [ColumnSpec] = COLUMNS;
    const DATE_COLUMN: &'static str = "effective_date";

    fn parse(row: &Row<'_>, problems: &mut Vec<RowProblem>) -> Option<CustomerEvent> {
        let line = row.line;
        let customer_id = check(problems, line, "customer_id", parse_identifier(row.get(0)));
        let name = check(problems, line, "name", parse_text(row.get(1), true));
        let country = check(problems, line, "country", parse_market(row.get(2)));
        let status = check(
            problems,
            line,
            "status",
            parse_choice(row.get(3), &["approved", "revoked"]),
        );
        let effective_date = check(problems, line, "effective_date", parse_date(row.get(4)));
        let reference = check(problems, line, "reference", parse_text(row.get(5), false));
        let kyc_expires_on = match row.get(6) {
            "" => Some(None),
            text => check(problems, line, "kyc_expires_on", parse_date(text)).map(Some),
        };
        let end_use_certificate = check(
            problems,
            line,
            "end_use_certificate",
            parse_text(row.get(7), false),
        )
        .map(|text| Some(text).filter(|text| !text.is_empty()));
        if let (Some(Some(expires)), Some(date), Some(status)) =
            (kyc_expires_on, effective_date, status)
        {
            if status != "approved" {
                problems.push(RowProblem::malformed(
                    line,
                    "kyc_expires_on",
                    "is for approved events only (a revocation does not lapse)",
                ));
            } else if expires <= date {
                problems.push(RowProblem::malformed(
                    line,
                    "kyc_expires_on",
                    format!(
                        "{} is not after effective_date {} (a KYC review lapses after it is approved)",
                        format_date(expires),
                        format_date(date)
                    ),
                ));
            }
        }
        Some(CustomerEvent {
            customer_id: customer_id?,
            name: name?,
            country: country?,
            status: if status? == "approved" {
                CustomerStatus::Approved
            } else {
                CustomerStatus::Revoked
            },
            effective_date: effective_date?,
            reference: reference?,
            kyc_expires_on: kyc_expires_on?,
            end_use_certificate: end_use_certificate?,
        })
    }

    fn identity(&self) -> (String, NaiveDate) {
        (self.customer_id.clone(), self.effective_date)
    }

    fn load_recorded(conn: &Connection, identity: &(String, NaiveDate)) -> Result<Option<Self>> {
        let stored = conn
            .prepare_cached(&format!(
                "SELECT {SELECT_COLUMNS} FROM customer_event WHERE customer_id = ?1 AND effective_date = ?2"
            ))?
            .query_row((&identity.0, format_date(identity.1)), from_row)
            .optional()?;
        stored.map(from_stored).transpose()
    }

    fn check(
        &self,
        _conn: &Connection,
        _context: &mut (),
        _as_of: NaiveDate,
    ) -> Result<Option<(&'static str, String)>> {
        Ok(None)
    }

    fn values(&self) -> Vec<Value> {
        vec![
            Value::Text(self.customer_id.clone()),
            Value::Text(self.name.clone()),
            Value::Text(self.country.clone()),
            Value::Text(self.status.name().to_string()),
            Value::Text(format_date(self.effective_date)),
            Value::Text(self.reference.clone()),
            self.kyc_expires_on
                .map_or(Value::Null, |date| Value::Text(format_date(date))),
            self.end_use_certificate
                .clone()
                .map_or(Value::Null, Value::Text),
        ]
    }
}
