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
    let mut rows = Vec::new();
    for hold in stored_holds(conn, as_of, order)? {
        let date = |text: &str| parse_date(text).map_err(Error::Integrity);
        let (planned_date, expires_on) = (date(&hold.planned)?, date(&hold.expires)?);
        let remaining = hold_remaining_units(hold.units, hold.drawn, hold.released >= 0);
        let period_closed = closed.contains(&Period::of(settings.period_kind, planned_date));
        let active = hold_is_active(remaining, expires_on, as_of, period_closed);
        if active_only && !active {
            continue;
        }
        rows.push(vec![
            json!(hold.order_ref),
            json!(hold.chip),
            json!(hold.market),
            json!(hold.customer),
            json!(hold.lot),
            json!(hold.units),
            json!(hold.planned),
            json!(hold.reserved),
            json!(hold.expires),
            json!(active),
            json!(if active { remaining } else { 0 }),
            json!(hold.drawn),
            json!(hold.released.max(0)),
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

/// A hold as stored, with the units drawn from it and released of it.
struct StoredHold {
    order_ref: String,
    chip: String,
    market: String,
    customer: Option<String>,
    lot: Option<String>,
    units: i64,
    planned: String,
    reserved: String,
    expires: String,
    drawn: i64,
    /// Units its release ended, or −1 when it was not released by the as-of date.
    released: i64,
}

/// The holds reserved on or before `as_of` (of `order` only, if given), in entry order.
fn stored_holds(
    conn: &Connection,
    as_of: NaiveDate,
    order: Option<&str>,
) -> Result<Vec<StoredHold>> {
    let holds = conn
        .prepare_cached(
            "SELECT h.order_ref, h.chip, h.market, h.customer_id, h.lot_id, h.units, h.planned_date, \
                    h.reserved_on, h.expires_on, \
                    (SELECT coalesce(sum(s.drawn_units), 0) FROM sale AS s WHERE s.hold_seq = h.seq), \
                    coalesce((SELECT r.released_units FROM hold_release AS r WHERE r.hold_seq = h.seq \
                              AND r.released_on <= ?1), -1) \
             FROM hold AS h WHERE h.reserved_on <= ?1 AND (?2 IS NULL OR h.order_ref = ?2) ORDER BY h.seq",
        )?
        .query_map((format_date(as_of), order), |row| {
            Ok(StoredHold {
                order_ref: row.get(0)?,
                chip: row.get(1)?,
                market: row.get(2)?,
                customer: row.get(3)?,
                lot: row.get(4)?,
                units: row.get(5)?,
                planned: row.get(6)?,
                reserved: row.get(7)?,
                expires: row.get(8)?,
                drawn: row.get(9)?,
                released: row.get(10)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok(holds)
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

/// Customers with an event on or before `as_of`, each in its state then
/// (`approved`, `revoked`, or `expired` once its KYC review lapsed), in the
/// order they were first recorded.
pub fn customers(conn: &Connection, as_of: NaiveDate, only: Option<&str>) -> Result<Listing> {
    let ids = first_recorded(conn, "customer_event", "customer_id", only)?;
    let mut rows = Vec::new();
    for id in ids {
        let events = crate::records::customers::events_of(conn, &id)?;
        let Some(state) = crate::records::customers::latest_on(&events, as_of) else {
            continue;
        };
        let status = if crate::rules::kyc_lapsed_on(state, as_of) {
            "expired"
        } else {
            state.status.name()
        };
        rows.push(vec![
            json!(state.customer_id),
            json!(state.name),
            json!(state.country),
            json!(status),
            json!(format_date(state.effective_date)),
            state
                .kyc_expires_on
                .map_or(Value::Null, |date| json!(format_date(date))),
            state
                .end_use_certificate
                .as_ref()
                .map_or(Value::Null, |text| json!(text)),
        ]);
    }
    Ok(Listing {
        name: "customers",
        columns: &[
            "customer_id",
            "name",
            "country",
            "status",
            "effective_date",
            "kyc_expires_on",
            "end_use_certificate",
        ],
        rows,
    })
}

/// Lots with an event on or before `as_of`, each in its state then, with
/// its units shipped (net) and held (active holds), in the order first
/// recorded. Figures come from the rules' facts, as `check` sees them.
pub fn lots(
    conn: &Connection,
    settings: &Settings,
    as_of: NaiveDate,
    only: Option<&str>,
) -> Result<Listing> {
    use crate::rules::Facts;
    let mut facts = crate::rules::facts::LedgerFacts::new(conn, settings.clone(), as_of)?;
    let ids = first_recorded(conn, "lot_event", "lot_id", only)?;
    let mut rows = Vec::new();
    for id in ids {
        let events = crate::records::lots::events_of(conn, &id)?;
        let Some(state) = crate::records::lots::state_from_events(&events, as_of) else {
            continue;
        };
        let Some(latest) = &state.latest else {
            continue; // no event on or before the as-of date
        };
        let committed = facts.lot_committed(&id)?;
        rows.push(vec![
            json!(id),
            json!(state.chip),
            json!(latest.result.name()),
            json!(state.capacity_units),
            json!(committed.shipped_net),
            json!(committed.held),
            json!(latest.lab),
            json!(latest.certificate_id),
            json!(format_date(latest.effective_date)),
        ]);
    }
    Ok(Listing {
        name: "lots",
        columns: &[
            "lot_id",
            "chip",
            "status",
            "units_approved",
            "units_shipped",
            "units_held",
            "lab",
            "certificate_id",
            "effective_date",
        ],
        rows,
    })
}

/// The ids of `table`'s `column` in the order first recorded (one id when
/// `only` names it; bad input if it was never recorded).
fn first_recorded(
    conn: &Connection,
    table: &str,
    column: &str,
    only: Option<&str>,
) -> Result<Vec<String>> {
    let ids: Vec<String> = conn
        .prepare(&format!(
            "SELECT {column} FROM {table} WHERE ?1 IS NULL OR {column} = ?1 \
             GROUP BY {column} ORDER BY min(seq)"
        ))?
        .query_map([only], |row| row.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    if let (Some(only), true) = (only, ids.is_empty()) {
        return Err(Error::BadInput(format!("{only} is not recorded ({table})")));
    }
    Ok(ids)
}

/// Every sale and return dated in `period` (on or before `as_of`), with
/// its stored fields, money as exact decimal strings (SPEC §9).
pub fn sales(
    conn: &Connection,
    period: Period,
    as_of: NaiveDate,
    chip: Option<&str>,
    market: Option<&str>,
) -> Result<Listing> {
    let last = period.last_day().min(as_of);
    let mut statement = conn.prepare_cached(
        "SELECT record_id, kind, sale_date, chip, market, customer_id, units, unit_price_usd_e4, \
                lot_id, order_ref, reverses, hold_seq, drawn_units, accepted_rules, accepted_reason \
         FROM sale WHERE sale_date BETWEEN ?1 AND ?2 AND (?3 IS NULL OR chip = ?3) \
         AND (?4 IS NULL OR market = ?4) ORDER BY seq",
    )?;
    let mut rows = Vec::new();
    let mut cursor = statement.query((
        format_date(period.first_day()),
        format_date(last),
        chip,
        market,
    ))?;
    while let Some(row) = cursor.next()? {
        let mut values = Vec::with_capacity(15);
        for index in 0..15 {
            let value = match row.get_ref(index)? {
                rusqlite::types::ValueRef::Null => Value::Null,
                rusqlite::types::ValueRef::Integer(n) if index == 7 => {
                    json!(crate::money::Usd::from_e4(i128::from(n)).to_string())
                }
                rusqlite::types::ValueRef::Integer(n) => json!(n),
                rusqlite::types::ValueRef::Text(text) => json!(String::from_utf8_lossy(text)),
                _ => {
                    return Err(Error::Integrity(
                        "a sale holds a value of another type".into(),
                    ))
                }
            };
            values.push(value);
        }
        rows.push(values);
    }
    Ok(Listing {
        name: "sales",
        columns: &[
            "record_id",
            "kind",
            "sale_date",
            "chip",
            "market",
            "customer_id",
            "units",
            "unit_price_usd",
            "lot_id",
            "order_ref",
            "reverses",
            "hold_seq",
            "drawn_units",
            "accepted_rules",
            "accepted_reason",
        ],
        rows,
    })
}
