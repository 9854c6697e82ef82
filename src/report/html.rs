//! `report --format html` (SPEC §8): one self-contained page (styles and
//! SVG charts inline; a Content-Security-Policy forbids every request)
//! drawn from the report's own JSON, so every number is the JSON's,
//! written with thousands separators. Templates are `maud`; chart
//! coordinates are integers.

use super::Report;
use crate::error::Result;
use crate::period::format_date;
use crate::rules::facts::LedgerFacts;
use crate::rules::{cap_limit, figures_on, Window};
use crate::store::ledger::Settings;
use chrono::NaiveDate;
use maud::{html, Markup, PreEscaped, DOCTYPE};
use rusqlite::Connection;
use serde_json::Value;

/// One capped chip's cap window, day by day, to the report's clock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapSeries {
    /// Chip.
    pub chip: String,
    /// The cap window of the report's reference date.
    pub window: Window,
    /// Per day of the window: (day, limit to date, restricted net units
    /// shipped to date).
    pub days: Vec<(NaiveDate, i64, i64)>,
    /// Units held now in the window (drawn on top of the last day shipped).
    pub held: i64,
}

/// The series of every capped chip of `report`, from the derived daily
/// units and the rules' own figures (`figures_on`, `cap_limit`).
pub fn cap_series(
    conn: &Connection,
    settings: &Settings,
    report: &Report,
) -> Result<Vec<CapSeries>> {
    let mut facts = LedgerFacts::new(conn, settings.clone(), report.as_of)?;
    let reference = super::reference_date(report.period, report.as_of);
    let mut all = Vec::new();
    for chip in report.chips.iter().filter(|chip| chip.limit.is_some()) {
        let figures = figures_on(&mut facts, &chip.chip, reference)?;
        let Some(cap) = figures.cap else { continue };
        let window = figures.window;
        let rows: Vec<(String, i64, i64)> = conn
            .prepare_cached(
                "SELECT day, us_net_units, restricted_net_units FROM derived_daily_units \
                 WHERE chip = ?1 AND day BETWEEN ?2 AND ?3 ORDER BY day",
            )?
            .query_map(
                (
                    &chip.chip,
                    format_date(window.start),
                    format_date(window.end),
                ),
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
            )?
            .collect::<rusqlite::Result<_>>()?;
        let mut days = Vec::new();
        let (mut us, mut restricted, mut next) = (0i64, 0i64, 0usize);
        let mut day = window.start;
        while day <= window.end && days.len() < 4_000 {
            let text = format_date(day);
            while next < rows.len() && rows[next].0 <= text {
                us += rows[next].1;
                restricted += rows[next].2;
                next += 1;
            }
            days.push((day, cap_limit(cap.cap_ratio, us), restricted));
            match day.succ_opt() {
                Some(following) => day = following,
                None => break,
            }
        }
        all.push(CapSeries {
            chip: chip.chip.clone(),
            window,
            days,
            held: figures.units.held,
        });
    }
    Ok(all)
}

/// Digits of a JSON number or decimal string with `,` between thousands:
/// `1234567.5` → `1,234,567.5`; anything else as it is.
pub fn thousands(value: &Value) -> String {
    let text = match value {
        Value::Number(number) => number.to_string(),
        Value::String(text) => text.clone(),
        Value::Null => return "–".to_string(),
        other => return other.to_string(),
    };
    let (sign, rest) = text
        .strip_prefix('-')
        .map_or(("", text.as_str()), |rest| ("-", rest));
    let (whole, fraction) = rest
        .split_once('.')
        .map_or((rest, None), |(w, f)| (w, Some(f)));
    if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) {
        return text;
    }
    let mut grouped = String::new();
    for (index, digit) in whole.chars().enumerate() {
        if index > 0 && (whole.len() - index) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    match fraction {
        Some(fraction) => format!("{sign}{grouped}.{fraction}"),
        None => format!("{sign}{grouped}"),
    }
}

const STYLE: &str = "
body { font-family: sans-serif; margin: 1.5em; color: #111; max-width: 60em; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 1.4em; }
table { border-collapse: collapse; width: 100%; font-size: 0.9em; }
th, td { border: 1px solid #999; padding: 0.2em 0.4em; text-align: left; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
.breach { background: #000; color: #fff; font-weight: bold; }
.status-closed { font-weight: bold; }
svg { display: block; margin: 0.5em 0; max-width: 100%; height: auto; }
.legend span { margin-right: 1.2em; }
@media print {
  @page { margin: 12mm; }
  body { margin: 0; max-width: none; font-size: 10pt; }
  table { page-break-inside: auto; }
  tr, svg { page-break-inside: avoid; }
  thead { display: table-header-group; }
}
";

/// The page: `json` is the report's JSON (the one source of every figure).
pub fn page(json: &Value, series: &[CapSeries]) -> String {
    let closed = json["closed"].as_bool().unwrap_or(false);
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta http-equiv="Content-Security-Policy"
                    content="default-src 'none'; style-src 'unsafe-inline'; img-src data:";
                title { "qledger report " (json["period"].as_str().unwrap_or_default()) }
                style { (PreEscaped(STYLE)) }
            }
            body {
                h1 { "Period " (json["period"].as_str().unwrap_or_default()) " — "
                    span class=(if closed { "status-closed" } else { "status-open" }) {
                        (if closed { "closed" } else { "open" })
                    }
                }
                p { "As of " (json["as_of"].as_str().unwrap_or_default())
                    "; chain head " (thousands(&json["ledger"]["entries"])) " entries, "
                    code { (json["ledger"]["head"].as_str().unwrap_or_default()) } }
                (remittance(&json["remittance"]))
                (chips(&json["chips"]))
                @for one in series { (chart(one, &json["chips"])) }
                (lots(&json["lots"]))
                (violations(&json["violations"]))
                (late(&json["late"]))
                (imports(&json["imports"]))
            }
        }
    };
    markup.into_string()
}

fn remittance(remittance: &Value) -> Markup {
    html! {
        h2 { "Remittance (USD)" }
        table { tbody {
            tr { th { "due" } td class="n" { (thousands(&remittance["due_usd"])) } }
            tr { th { "paid" } td class="n" { (thousands(&remittance["paid_usd"])) } }
            tr { th { "outstanding" } td class="n" { (thousands(&remittance["outstanding_usd"])) } }
        } }
    }
}

fn chips(chips: &Value) -> Markup {
    let list = chips.as_array().cloned().unwrap_or_default();
    html! {
        h2 { "Chips" }
        table {
            thead { tr { th { "chip" } th { "US units" } th { "restricted units" } th { "reserved" }
                th { "cap" } th { "window" } th { "limit" } th { "headroom" } th { "status" }
                th { "restricted revenue USD" } th { "remittance due USD" } th { "US supply" } } }
            tbody { @for chip in &list {
                @let breach = chip["status"] == "breach";
                tr class=(if breach { "breach" } else { "" }) {
                    td { (chip["chip"].as_str().unwrap_or_default()) }
                    td class="n" { (thousands(&chip["us_units"])) }
                    td class="n" { (thousands(&chip["restricted_units"])) }
                    td class="n" { (thousands(&chip["reserved_units"])) }
                    td { (thousands(&chip["cap_ratio"])) }
                    td { (chip["cap_window"].as_str().unwrap_or("–")) }
                    td class="n" { (thousands(&chip["limit"])) }
                    td class="n" { (thousands(&chip["headroom"])) }
                    td { (if breach { "BREACH" } else { chip["status"].as_str().unwrap_or_default() }) }
                    td class="n" { (thousands(&chip["restricted_revenue_usd"])) }
                    td class="n" { (thousands(&chip["remittance_due_usd"])) }
                    td { (supply(&chip["supply"])) }
                }
            } }
        }
    }
}

fn supply(supply: &Value) -> Markup {
    if supply.is_null() {
        return html! { "–" };
    }
    html! {
        (supply["attested_on"].as_str().unwrap_or_default()) ", "
        (supply["attested_by"].as_str().unwrap_or_default()) ": inventory "
        (thousands(&supply["us_inventory_units"])) ", open orders "
        (thousands(&supply["us_open_orders_units"]))
        (if supply["sufficient"] == true { " (sufficient)" } else { " (INSUFFICIENT)" })
    }
}

const CHART_WIDTH: i64 = 720;
const CHART_HEIGHT: i64 = 220;

/// The cap window's days: the limit, restricted units shipped, and shipped
/// plus held (on the last day), as SVG polylines on integer coordinates.
fn chart(series: &CapSeries, chips: &Value) -> Markup {
    let top = series
        .days
        .iter()
        .map(|(_, limit, shipped)| (*limit).max(*shipped))
        .max()
        .unwrap_or(0)
        .max(
            series
                .days
                .last()
                .map_or(0, |(_, _, shipped)| shipped + series.held),
        )
        .max(1);
    let count = series.days.len().max(2) as i64 - 1;
    let x = |index: usize| 40 + index as i64 * (CHART_WIDTH - 50) / count;
    let y = |value: i64| 10 + (CHART_HEIGHT - 40) - value.max(0) * (CHART_HEIGHT - 40) / top;
    let points = |pick: &dyn Fn(&(NaiveDate, i64, i64)) -> i64| -> String {
        series
            .days
            .iter()
            .enumerate()
            .map(|(index, day)| format!("{},{}", x(index), y(pick(day))))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let breach = chips
        .as_array()
        .into_iter()
        .flatten()
        .any(|chip| chip["chip"] == series.chip.as_str() && chip["status"] == "breach");
    let last = series.days.len().saturating_sub(1);
    let shipped_last = series.days.last().map_or(0, |(_, _, shipped)| *shipped);
    html! {
        h2 { "Cap of " (series.chip) ": " (format_date(series.window.start)) " to " (format_date(series.window.end))
            @if breach { " — BREACH" } }
        svg xmlns="http://www.w3.org/2000/svg" width=(CHART_WIDTH) height=(CHART_HEIGHT)
            viewBox=(format!("0 0 {CHART_WIDTH} {CHART_HEIGHT}")) role="img"
            aria-label=(format!("cap window of {}", series.chip)) {
            line x1="40" y1=(y(0)) x2=(CHART_WIDTH - 10) y2=(y(0)) stroke="#000" {}
            line x1="40" y1="10" x2="40" y2=(y(0)) stroke="#000" {}
            text x="2" y="18" font-size="10" { (thousands(&Value::from(top))) }
            text x="2" y=(y(0)) font-size="10" { "0" }
            polyline fill="none" stroke="#000" stroke-width="2" stroke-dasharray="6 3"
                points=(points(&|day| day.1)) {}
            polyline fill="none" stroke=(if breach { "#c00" } else { "#555" })
                stroke-width=(if breach { "4" } else { "2" }) points=(points(&|day| day.2)) {}
            circle cx=(x(last)) cy=(y(shipped_last + series.held)) r="4" fill="#888" stroke="#000" {}
            text x="44" y=(CHART_HEIGHT - 12) font-size="10" { (format_date(series.window.start)) }
            text x=(CHART_WIDTH - 80) y=(CHART_HEIGHT - 12) font-size="10" { (format_date(series.window.end)) }
        }
        p class="legend" {
            span { "dashed: limit (cap ratio × US net units to date)" }
            span { (if breach { "thick: restricted units shipped (over the limit)" } else { "solid: restricted units shipped" }) }
            span { "dot: shipped plus " (thousands(&Value::from(series.held))) " held" }
        }
    }
}

fn lots(lots: &Value) -> Markup {
    let list = lots.as_array().cloned().unwrap_or_default();
    html! {
        h2 { "Lots" }
        @if list.is_empty() { p { "No lot named in the period." } } @else {
            table {
                thead { tr { th { "lot" } th { "chip" } th { "certificate" } th { "lab" }
                    th { "units approved" } th { "units shipped" } th { "capacity used" } } }
                tbody { @for lot in &list {
                    @let approved = lot["units_approved"].as_i64().unwrap_or(0);
                    @let shipped = lot["units_shipped"].as_i64().unwrap_or(0);
                    @let over = shipped > approved;
                    tr class=(if over { "breach" } else { "" }) {
                        td { (lot["lot_id"].as_str().unwrap_or_default()) }
                        td { (lot["chip"].as_str().unwrap_or_default()) }
                        td { (lot["certificate_id"].as_str().unwrap_or_default()) }
                        td { (lot["lab"].as_str().unwrap_or_default()) }
                        td class="n" { (thousands(&lot["units_approved"])) }
                        td class="n" { (thousands(&lot["units_shipped"])) }
                        td { (bar(shipped, approved)) @if over { " OVER CAPACITY" } }
                    }
                } }
            }
        }
    }
}

/// A bar of `used` out of `capacity` units (full and black when over).
fn bar(used: i64, capacity: i64) -> Markup {
    let width = if capacity <= 0 {
        100
    } else {
        (used.max(0) * 100 / capacity).min(100)
    };
    html! {
        svg xmlns="http://www.w3.org/2000/svg" width="104" height="12" viewBox="0 0 104 12" {
            rect x="1" y="1" width="102" height="10" fill="#fff" stroke="#000" {}
            rect x="2" y="2" width=(width) height="8" fill=(if used > capacity { "#000" } else { "#777" }) {}
        }
    }
}

fn violations(violations: &Value) -> Markup {
    let list = violations.as_array().cloned().unwrap_or_default();
    html! {
        h2 { "Violations" }
        @if list.is_empty() { p { "None recorded." } } @else {
            table { thead { tr { th { "record" } th { "rules broken" } th { "reason" } } }
                tbody { @for violation in &list { tr class="breach" {
                    td { (violation["record_id"].as_str().unwrap_or_default()) }
                    td { (violation["rules"].as_array().map(|rules| rules.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", ")).unwrap_or_default()) }
                    td { (violation["reason"].as_str().unwrap_or_default()) }
                } } } }
        }
    }
}

fn late(late: &Value) -> Markup {
    if late.is_null() {
        return html! {};
    }
    let records = late["records"].as_array().cloned().unwrap_or_default();
    html! {
        h2 { "Late entries (after the close)" }
        p { (thousands(&late["entries"])) " entries, restricted units " (thousands(&late["restricted_units"]))
            ", restricted revenue " (thousands(&late["restricted_revenue_usd"])) " USD, remittance due "
            (thousands(&late["remittance_due_usd"])) " USD" }
        @if !records.is_empty() { ul { @for record in &records {
            li { (record["record_id"].as_str().unwrap_or_default()) ": " (record["reason"].as_str().unwrap_or_default()) }
        } } }
    }
}

fn imports(imports: &Value) -> Markup {
    let list = imports.as_array().cloned().unwrap_or_default();
    html! {
        h2 { "Imports" }
        @if list.is_empty() { p { "None." } } @else {
            table { thead { tr { th { "file" } th { "rows" } th { "entries" } th { "SHA-256" } } }
                tbody { @for import in &list { tr {
                    td { (import["file"].as_str().unwrap_or_default()) }
                    td class="n" { (thousands(&import["rows"])) }
                    td class="n" { (thousands(&import["entries_from"])) "–" (thousands(&import["entries_to"])) }
                    td { code { (import["sha256"].as_str().unwrap_or_default()) } }
                } } } }
        }
    }
}

/// `history --format html` (SPEC §8): the history JSON as one page: per
/// chip, restricted units against the limit period by period; remittance
/// due, paid and outstanding; every period open or closed, in a table.
pub fn history_page(json: &Value) -> String {
    let periods = json["periods"].as_array().cloned().unwrap_or_default();
    let mut chips: Vec<String> = Vec::new();
    for period in &periods {
        for chip in period["chips"].as_array().into_iter().flatten() {
            let name = chip["chip"].as_str().unwrap_or_default().to_string();
            if !chips.contains(&name) {
                chips.push(name);
            }
        }
    }
    let first = periods
        .first()
        .and_then(|p| p["period"].as_str())
        .unwrap_or_default();
    let last = periods
        .last()
        .and_then(|p| p["period"].as_str())
        .unwrap_or_default();
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta http-equiv="Content-Security-Policy"
                    content="default-src 'none'; style-src 'unsafe-inline'; img-src data:";
                title { "qledger history " (first) " to " (last) }
                style { (PreEscaped(STYLE)) }
            }
            body {
                h1 { "History " (first) " to " (last) }
                h2 { "Remittance by period (USD)" }
                table {
                    thead { tr { th { "period" } th { "status" } th { "due" } th { "paid" } th { "outstanding" } } }
                    tbody { @for period in &periods { tr {
                        td { (period["period"].as_str().unwrap_or_default()) }
                        td { (if period["closed"] == true { "closed" } else { "open" }) }
                        td class="n" { (thousands(&period["remittance"]["due_usd"])) }
                        td class="n" { (thousands(&period["remittance"]["paid_usd"])) }
                        td class="n" { (thousands(&period["remittance"]["outstanding_usd"])) }
                    } } }
                }
                @for chip in &chips { (chip_history(chip, &periods)) }
            }
        }
    };
    markup.into_string()
}

/// One chip across the periods: a table and a chart of restricted units
/// (a breach thick) against the limit.
fn chip_history(chip: &str, periods: &[Value]) -> Markup {
    let rows = chip_rows(chip, periods);
    let top = rows
        .iter()
        .map(|(_, c)| {
            c["restricted_units"]
                .as_i64()
                .unwrap_or(0)
                .max(c["limit"].as_i64().unwrap_or(0))
        })
        .max()
        .unwrap_or(0)
        .max(1);
    let count = rows.len().max(2) as i64 - 1;
    let x = |index: usize| 50 + index as i64 * (CHART_WIDTH - 100) / count;
    let y = |value: i64| 10 + (CHART_HEIGHT - 40) - value.max(0) * (CHART_HEIGHT - 40) / top;
    let line = |key: &str| -> String {
        rows.iter()
            .enumerate()
            .filter_map(|(index, (_, c))| c[key].as_i64().map(|v| format!("{},{}", x(index), y(v))))
            .collect::<Vec<_>>()
            .join(" ")
    };
    html! {
        h2 { (chip) }
        @if rows.iter().any(|(_, c)| c["limit"].is_i64()) {
            svg xmlns="http://www.w3.org/2000/svg" width=(CHART_WIDTH) height=(CHART_HEIGHT)
                viewBox=(format!("0 0 {CHART_WIDTH} {CHART_HEIGHT}")) role="img" {
                line x1="40" y1=(y(0)) x2=(CHART_WIDTH - 10) y2=(y(0)) stroke="#000" {}
                text x="2" y="18" font-size="10" { (thousands(&Value::from(top))) }
                polyline fill="none" stroke="#000" stroke-width="2" stroke-dasharray="6 3" points=(line("limit")) {}
                polyline fill="none" stroke="#555" stroke-width="2" points=(line("restricted_units")) {}
                @for (index, (period, c)) in rows.iter().enumerate() {
                    @let breach = c["status"] == "breach";
                    circle cx=(x(index)) cy=(y(c["restricted_units"].as_i64().unwrap_or(0)))
                        r=(if breach { "6" } else { "3" }) fill=(if breach { "#c00" } else { "#555" }) stroke="#000" {}
                    text x=(x(index)) y=(CHART_HEIGHT - 12) font-size="10" text-anchor="middle" { (period) }
                }
            }
            p class="legend" { span { "dashed: limit" } span { "solid: restricted units (large dot: breach)" } }
        }
        (history_table(&rows))
    }
}

/// Each period's figures of `chip` (periods where it has none left out).
fn chip_rows(chip: &str, periods: &[Value]) -> Vec<(String, Value)> {
    periods
        .iter()
        .filter_map(|period| {
            let figures = period["chips"]
                .as_array()?
                .iter()
                .find(|c| c["chip"] == chip)?
                .clone();
            Some((
                period["period"].as_str().unwrap_or_default().to_string(),
                figures,
            ))
        })
        .collect()
}

/// The table under a chip's history chart: one row per period.
fn history_table(rows: &[(String, Value)]) -> Markup {
    html! {
        table {
            thead { tr { th { "period" } th { "US units" } th { "restricted units" } th { "reserved" }
                th { "limit" } th { "headroom" } th { "status" } th { "remittance due USD" } } }
            tbody { @for (period, c) in rows {
                @let breach = c["status"] == "breach";
                tr class=(if breach { "breach" } else { "" }) {
                    td { (period) }
                    td class="n" { (thousands(&c["us_units"])) }
                    td class="n" { (thousands(&c["restricted_units"])) }
                    td class="n" { (thousands(&c["reserved_units"])) }
                    td class="n" { (thousands(&c["limit"])) }
                    td class="n" { (thousands(&c["headroom"])) }
                    td { (if breach { "BREACH" } else { c["status"].as_str().unwrap_or_default() }) }
                    td class="n" { (thousands(&c["remittance_due_usd"])) }
                }
            } }
        }
    }
}
