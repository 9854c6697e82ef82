//! Listings (SPEC §5, §9): holds and payments as tables, JSON and CSV, for
//! the order desk and the compliance officer. Items are those with a state
//! on the as-of date (an event dated on or before it), in entry order.

use crate::error::{Error, Result};
use crate::period::{format_date, parse_date, Period};
use crate::rules::facts::closed_periods;
use crate::rules::{hold_is_active, hold_remaining_units};
use crate::store::ledger::Settings;
use chrono::NaiveDate;
use rusqlite::Connection;
use serde_json::{json, Value};

/// A listing: its name (the JSON key), its columns, one row per item.
#[derive(Debug, Clone, PartialEq)]
pub struct Listing {
    /// `holds`, `payments`, …
    pub name: &'static str,
    /// The field names, in order.
    pub columns: &'static [&'static str],
    /// One value per column per item.
    pub rows: Vec<Vec<Value>>,
}

impl Listing {
    /// `{"<name>": [{field: value, …}, …]}`.
    pub fn to_json(&self) -> Value {
        let items: Vec<Value> = self
            .rows
            .iter()
            .map(|row| {
                let object: serde_json::Map<String, Value> = self
                    .columns
                    .iter()
                    .zip(row)
                    .map(|(column, value)| (column.to_string(), value.clone()))
                    .collect();
                Value::Object(object)
            })
            .collect();
        json!({ self.name: items })
    }

    /// The same fields as CSV columns (absent values empty).
    pub fn to_csv(&self) -> Result<String> {
        let mut writer = csv::Writer::from_writer(Vec::new());
        let csv_error = |err: csv::Error| Error::Environment(format!("cannot write CSV: {err}"));
        writer.write_record(self.columns).map_err(csv_error)?;
        for row in &self.rows {
            writer
                .write_record(row.iter().map(plain))
                .map_err(csv_error)?;
        }
        let bytes = writer
            .into_inner()
            .map_err(|err| Error::Environment(format!("cannot write CSV: {err}")))?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// A table for people: numbers right-aligned, with thousands separators.
    pub fn to_table(&self) -> String {
        use comfy_table::{presets::UTF8_FULL_CONDENSED, CellAlignment, Table};
        let mut table = Table::new();
        table
            .load_preset(UTF8_FULL_CONDENSED)
            .set_header(self.columns.to_vec());
        for row in &self.rows {
            table.add_row(row.iter().map(|value| match value {
                Value::Number(n) => super::grouped_units(n.as_i64().unwrap_or(0)),
                other => plain(other),
            }));
        }
        for (index, _) in self.columns.iter().enumerate() {
            let numeric = self.rows.iter().any(|row| row[index].is_number());
            if let (true, Some(column)) = (numeric, table.column_mut(index)) {
                column.set_cell_alignment(CellAlignment::Right);
            }
        }
        let count = self.rows.len();
        format!(
            "{table}\n{count} {}\n",
            if count == 1 { "item" } else { "items" }
        )
    }
}

/// A value as plain text: strings as they are, absent as empty.
fn plain(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// The holds with a state on `as_of` (reserved on or before it), every one
/// or only the active ones, of every order or of one (SPEC §9).
pub fn holds(
    conn: &Connection,
    settings: &Settings,
    as_of: NaiveDate,
    active_only: bool,
    order: Option<&str>,
) -> Result<Listing> {
    if let Some(order) = order {
        let ever = conn
            .prepare_cached("SELECT 1 FROM hold WHERE order_ref = ?1")?
            .exists([order])?;
        if !ever {
            return Err(Error::BadInput(format!(
                "--order {order}: no hold was ever made for it"
            )));
        }
    }
    let closed = closed_periods(conn, settings)?;
    type Stored = (
        String,
        String,
        String,
        Option<String>,
        Option<String>,
        i64,
        String,
        String,
        String,
        i64,
        i64,
    );
    let stored: Vec<Stored> = conn
        .prepare_cached(
            "SELECT h.order_ref, h.chip, h.market, h.customer_id, h.lot_id, h.units, h.planned_date, \
                    h.reserved_on, h.expires_on, \
                    (SELECT coalesce(sum(s.drawn_units), 0) FROM sale AS s WHERE s.hold_seq = h.seq), \
                    coalesce((SELECT r.released_units FROM hold_release AS r WHERE r.hold_seq = h.seq \
                              AND r.released_on <= ?1), -1) \
             FROM hold AS h WHERE h.reserved_on <= ?1 AND (?2 IS NULL OR h.order_ref = ?2) ORDER BY h.seq",
        )?
        .query_map((format_date(as_of), order), |row| Stored::try_from(row))?
        .collect::<rusqlite::Result<_>>()?;
    let mut rows = Vec::new();
    for (
        order_ref,
        chip,
        market,
        customer,
        lot,
        units,
        planned,
        reserved,
        expires,
        drawn,
        released,
    ) in stored
    {
        let date = |text: &str| parse_date(text).map_err(Error::Integrity);
        let (planned_date, expires_on) = (date(&planned)?, date(&expires)?);
        let remaining = hold_remaining_units(units, drawn, released >= 0);
        let period_closed = closed.contains(&Period::of(settings.period_kind, planned_date));
        let active = hold_is_active(remaining, expires_on, as_of, period_closed);
        if active_only && !active {
            continue;
        }
        rows.push(vec![
            json!(order_ref),
            json!(chip),
            json!(market),
            json!(customer),
            json!(lot),
            json!(units),
            json!(planned),
            json!(reserved),
            json!(expires),
            json!(active),
            json!(if active { remaining } else { 0 }),
            json!(drawn),
            json!(released.max(0)),
        ]);
    }
    Ok(Listing {
        name: "holds",
        columns: &[
            "order_ref",
            "chip",
            "market",
            "customer_id",
            "lot_id",
            "units",
            "planned_date",
            "reserved_on",
            "expires_on",
            "active",
            "held_units",
            "drawn_units",
            "released_units",
        ],
        rows,
    })
}

/// The payments recorded on or before `as_of`, of one period or all (SPEC §9).
pub fn payments(conn: &Connection, as_of: NaiveDate, period: Option<Period>) -> Result<Listing> {
    let period = period.map(|p| p.to_string());
    let mut rows = Vec::new();
    for payment in super::payments::payments(conn, period.as_deref())? {
        if payment.recorded_on > as_of {
            continue;
        }
        rows.push(vec![
            json!(payment.period),
            json!(payment.reference),
            json!(payment.amount.to_string()),
            json!(format_date(payment.paid_on)),
            json!(format_date(payment.recorded_on)),
            json!(payment.reversal_reason.is_some()),
            json!(payment.reversal_reason),
        ]);
    }
    Ok(Listing {
        name: "payments",
        columns: &[
            "period",
            "reference",
            "amount_usd",
            "paid_on",
            "recorded_on",
            "reversed",
            "reversal_reason",
        ],
        rows,
    })
}
