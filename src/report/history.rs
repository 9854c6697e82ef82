//! `qledger history --from P --to P` (SPEC §5): every period's report from
//! one period to another (at most `PERIODS_MAX`), each exactly as `report`
//! gives it (sealed figures for closed periods, with their late entries).

use super::{report, Report};
use crate::error::{Error, Result};
use crate::period::{format_date, Period};
use crate::store::ledger::Ledger;
use chrono::NaiveDate;
use serde_json::json;

/// Most periods one history covers.
pub const PERIODS_MAX: usize = 120;

/// The reports of `from` through `to` on the clock `as_of`.
pub fn history(ledger: &Ledger, from: Period, to: Period, as_of: NaiveDate) -> Result<Vec<Report>> {
    if from > to {
        return Err(Error::BadInput(format!("--from {from} is after --to {to}")));
    }
    let mut periods = vec![from];
    while let Some(&last) = periods.last() {
        if last >= to {
            break;
        }
        if periods.len() >= PERIODS_MAX {
            return Err(Error::BadInput(format!(
                "{from} to {to} is more than {PERIODS_MAX} periods; ask for fewer"
            )));
        }
        periods.push(last.next());
    }
    periods
        .into_iter()
        .map(|period| report(ledger, period, as_of))
        .collect()
}

/// The SPEC §5 history JSON: `{"periods": [{"period", "closed", "chips",
/// "remittance"}]}`, each from the period's report JSON.
pub fn to_json(reports: &[Report]) -> serde_json::Value {
    let periods: Vec<serde_json::Value> = reports
        .iter()
        .map(|report| {
            let full = report.to_json();
            json!({
                "period": full["period"],
                "closed": full["closed"],
                "chips": full["chips"],
                "remittance": full["remittance"],
            })
        })
        .collect();
    json!({ "periods": periods })
}

/// The columns of the CSV and the table: one row per period and chip.
pub const COLUMNS: &[&str] = &[
    "period",
    "closed",
    "chip",
    "us_units",
    "restricted_units",
    "reserved_units",
    "cap_ratio",
    "cap_window",
    "limit",
    "headroom",
    "status",
    "restricted_revenue_usd",
    "remittance_due_usd",
    "period_due_usd",
    "period_paid_usd",
    "period_outstanding_usd",
];

/// One row per period and chip (a period without chips gets one row with
/// its remittance only), as text cells: money exact, absent values empty.
pub fn rows(reports: &[Report]) -> Vec<Vec<String>> {
    let cell = |value: &serde_json::Value| match value {
        serde_json::Value::Null => String::new(),
        serde_json::Value::String(text) => text.clone(),
        other => other.to_string(),
    };
    let mut rows = Vec::new();
    for report in reports {
        let full = report.to_json();
        let remittance = &full["remittance"];
        let period_cells = [
            cell(&remittance["due_usd"]),
            cell(&remittance["paid_usd"]),
            cell(&remittance["outstanding_usd"]),
        ];
        let chips = full["chips"].as_array().cloned().unwrap_or_default();
        if chips.is_empty() {
            let mut row = vec![cell(&full["period"]), cell(&full["closed"])];
            row.extend(std::iter::repeat_n(String::new(), COLUMNS.len() - 5));
            row.extend(period_cells.iter().cloned());
            rows.push(row);
        }
        for chip in chips {
            let mut row = vec![cell(&full["period"]), cell(&full["closed"])];
            for column in &COLUMNS[2..13] {
                row.push(cell(&chip[*column]));
            }
            row.extend(period_cells.iter().cloned());
            rows.push(row);
        }
    }
    rows
}

/// CSV with `COLUMNS`.
pub fn to_csv(reports: &[Report]) -> String {
    let mut writer = csv::Writer::from_writer(Vec::new());
    let mut write = || -> std::result::Result<(), csv::Error> {
        writer.write_record(COLUMNS)?;
        for row in rows(reports) {
            writer.write_record(&row)?;
        }
        writer.flush()?;
        Ok(())
    };
    let _ = write();
    String::from_utf8(writer.into_inner().unwrap_or_default()).unwrap_or_default()
}

/// A table for people, with the as-of date.
pub fn to_table(reports: &[Report], as_of: NaiveDate) -> String {
    use comfy_table::{presets::UTF8_FULL_CONDENSED, CellAlignment, Table};
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED).set_header([
        "period",
        "closed",
        "chip",
        "US units",
        "restricted",
        "reserved",
        "limit",
        "headroom",
        "status",
        "due USD",
        "period due USD",
        "paid USD",
        "outstanding USD",
    ]);
    for row in rows(reports) {
        let units = |text: &str| {
            text.parse::<i64>()
                .map_or_else(|_| text.to_string(), super::grouped_units)
        };
        let status = if row[10] == "breach" {
            "BREACH".to_string()
        } else {
            row[10].clone()
        };
        table.add_row([
            row[0].clone(),
            if row[1] == "true" { "closed" } else { "open" }.to_string(),
            row[2].clone(),
            units(&row[3]),
            units(&row[4]),
            units(&row[5]),
            units(&row[8]),
            units(&row[9]),
            status,
            row[12].clone(),
            row[13].clone(),
            row[14].clone(),
            row[15].clone(),
        ]);
    }
    for column in [3, 4, 5, 6, 7, 9, 10, 11, 12] {
        if let Some(column) = table.column_mut(column) {
            column.set_cell_alignment(CellAlignment::Right);
        }
    }
    format!("History as of {}\n{table}\n", format_date(as_of))
}
