//! Remittance payments and their corrections (SPEC §3.7, §3.13): `remit`
//! is idempotent by (period, reference), `remit --reverse` appends a
//! reversal, and `paid_usd` counts the payments not reversed.

use crate::error::{Error, Result};
use crate::money::Usd;
use crate::period::{format_date, parse_date, Period};
use crate::store::entry::{PAYMENT_REVERSAL, REMITTANCE_PAYMENT};
use crate::store::ledger::Ledger;
use chrono::NaiveDate;
use rusqlite::types::Value;
use rusqlite::Connection;

/// A recorded payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payment {
    /// Its entry.
    pub seq: i64,
    /// The period it pays for.
    pub period: String,
    /// Its reference, unique in its period.
    pub reference: String,
    /// The amount.
    pub amount: Usd,
    /// When it was paid.
    pub paid_on: NaiveDate,
    /// The as-of date of the `remit` that recorded it.
    pub recorded_on: NaiveDate,
    /// The reversal's reason, if it was reversed.
    pub reversal_reason: Option<String>,
}

const PAYMENT_COLUMNS: &str = "p.seq, p.period, p.reference, p.amount_usd_e4, p.paid_on, \
     p.recorded_on, (SELECT r.reason FROM payment_reversal AS r WHERE r.payment_seq = p.seq)";

/// A payment's columns as stored: seq, period, reference, amount (e4),
/// paid on, recorded on, and the reversal's reason.
type StoredPayment = (i64, String, String, i64, String, String, Option<String>);

fn payment_of(row: &rusqlite::Row<'_>) -> rusqlite::Result<StoredPayment> {
    StoredPayment::try_from(row)
}

/// The payments of `period` (every period with `None`), in entry order.
pub fn payments(conn: &Connection, period: Option<&str>) -> Result<Vec<Payment>> {
    let sql = format!(
        "SELECT {PAYMENT_COLUMNS} FROM remittance_payment AS p \
         WHERE ?1 IS NULL OR p.period = ?1 ORDER BY p.seq"
    );
    let stored = conn
        .prepare_cached(&sql)?
        .query_map([period], payment_of)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    stored
        .into_iter()
        .map(
            |(seq, period, reference, amount_e4, paid_on, recorded_on, reason)| {
                let date = |text: &str| parse_date(text).map_err(Error::Integrity);
                Ok(Payment {
                    seq,
                    period,
                    reference,
                    amount: Usd::from_e4(i128::from(amount_e4)),
                    paid_on: date(&paid_on)?,
                    recorded_on: date(&recorded_on)?,
                    reversal_reason: reason,
                })
            },
        )
        .collect()
}

/// The period's payments not reversed, summed exactly (in Rust, not SQL).
pub fn paid_usd(conn: &Connection, period: &str) -> Result<Usd> {
    payments(conn, Some(period))?
        .iter()
        .filter(|payment| payment.reversal_reason.is_none())
        .try_fold(Usd::ZERO, |sum, payment| sum.checked_add(payment.amount))
        .ok_or_else(|| Error::Integrity(format!("the payments of {period} overflow")))
}

fn by_reference(conn: &Connection, period: Period, reference: &str) -> Result<Option<Payment>> {
    let period = period.to_string();
    Ok(payments(conn, Some(&period))?
        .into_iter()
        .find(|payment| payment.reference == reference))
}

/// What `remit` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Remitted {
    /// A new payment was recorded.
    Recorded,
    /// The same payment was recorded before: nothing appended.
    Duplicate,
}

/// `qledger remit` (SPEC §3.13): records a payment for `period` (open or
/// closed). The same period, reference, amount and paid-on date as a
/// recorded payment is a duplicate (a retried `remit` never pays twice);
/// the same period and reference with anything else is bad input, and so
/// is a reference whose payment was reversed.
pub fn remit(
    ledger: &mut Ledger,
    period: Period,
    amount: Usd,
    paid_on: NaiveDate,
    reference: &str,
    as_of: NaiveDate,
) -> Result<Remitted> {
    if amount.e4 <= 0 {
        return Err(Error::BadInput("--amount must be more than 0".to_string()));
    }
    if paid_on > as_of {
        return Err(Error::BadInput(format!(
            "--paid-on {} is after the as-of date {}",
            format_date(paid_on),
            format_date(as_of)
        )));
    }
    let amount_e4 = i64::try_from(amount.e4)
        .map_err(|_| Error::BadInput("--amount is too large".to_string()))?;
    ledger.write(as_of, |appender| {
        if let Some(recorded) = by_reference(appender.conn(), period, reference)? {
            return duplicate_or_conflict(&recorded, amount, paid_on).map(|r| (r, false));
        }
        appender.append(
            &REMITTANCE_PAYMENT,
            &[
                Value::Text(period.to_string()),
                Value::Integer(amount_e4),
                Value::Text(format_date(paid_on)),
                Value::Text(reference.to_string()),
                Value::Text(format_date(as_of)),
            ],
        )?;
        Ok((Remitted::Recorded, true))
    })
}

fn duplicate_or_conflict(recorded: &Payment, amount: Usd, paid_on: NaiveDate) -> Result<Remitted> {
    let what = format!(
        "payment '{}' of {} ({} USD paid on {}, recorded on {})",
        recorded.reference,
        recorded.period,
        recorded.amount,
        format_date(recorded.paid_on),
        format_date(recorded.recorded_on)
    );
    if let Some(reason) = &recorded.reversal_reason {
        return Err(Error::BadInput(format!(
            "{what} was reversed ({reason}); a reference is never used again in its period"
        )));
    }
    if recorded.amount == amount && recorded.paid_on == paid_on {
        return Ok(Remitted::Duplicate);
    }
    Err(Error::BadInput(format!(
        "{what} is already recorded with other figures; to correct it, reverse it \
         (remit --reverse) and record the payment under a new reference"
    )))
}

/// `qledger remit --reverse` (SPEC §3.13): appends a reversal of the
/// payment of `period` with `reference`; returns the reversed amount.
pub fn reverse(
    ledger: &mut Ledger,
    period: Period,
    reference: &str,
    reason: &str,
    as_of: NaiveDate,
) -> Result<Usd> {
    ledger.write(as_of, |appender| {
        let Some(payment) = by_reference(appender.conn(), period, reference)? else {
            return Err(Error::BadInput(format!(
                "no payment of {period} has the reference '{reference}'; `qledger payments` lists them"
            )));
        };
        if let Some(earlier) = &payment.reversal_reason {
            return Err(Error::BadInput(format!(
                "payment '{reference}' of {period} is already reversed ({earlier})"
            )));
        }
        appender.append(
            &PAYMENT_REVERSAL,
            &[
                Value::Integer(payment.seq),
                Value::Text(period.to_string()),
                Value::Text(reference.to_string()),
                Value::Text(reason.to_string()),
                Value::Text(format_date(as_of)),
            ],
        )?;
        Ok((payment.amount, true))
    })
}
