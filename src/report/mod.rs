//! Period reports (SPEC §3.7, §5 `report`), the figures `close` seals, and
//! `remit`. Every figure comes from the derived tables or small indexed
//! queries, never from a scan of the sales.

use crate::error::{Error, Result};
use crate::money::{remittance_cents, Ratio, Usd};
use crate::period::{format_date, parse_date, Period};
use crate::records::lots::{self, LabResult};
use crate::records::policy::{self, CapWindow};
use crate::rules::facts::{parse_e4, LedgerFacts};
use crate::rules::{cap_status, figures_on, Facts, Window};
use crate::store::entry::PERIOD_CLOSE;
use crate::store::ledger::{read_head, ChainHead, Ledger, MarketGroup, Settings};
use chrono::NaiveDate;
use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};

pub mod export;
pub mod history;
pub mod html;
pub mod late;
pub mod listings;
pub mod payments;
pub mod screening;

pub use crate::rules::Status;

/// One chip's figures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChipFigures {
    /// Chip.
    pub chip: String,
    /// US net units dated in the period.
    pub us_units: i64,
    /// Restricted net units dated in the period.
    pub restricted_units: i64,
    /// Units of active holds planned in the period.
    pub reserved_units: i64,
    /// Cap ratio of the version in force (see `report`).
    pub cap_ratio: Option<Ratio>,
    /// Its window.
    pub cap_window: Option<CapWindow>,
    /// Limit over the cap window.
    pub limit: Option<i64>,
    /// Limit minus the window's restricted and held units.
    pub headroom: Option<i64>,
    /// ok, breach, uncapped or forbidden.
    pub status: Status,
    /// Restricted revenue net of returns, exact.
    pub restricted_revenue: Usd,
    /// Remittance due, rounded to the cent (SPEC §3.7).
    pub remittance_due: Usd,
}

/// One lot named in the period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LotFigures {
    /// Lot.
    pub lot_id: String,
    /// Its chip.
    pub chip: String,
    /// Certificate of its latest pass (or latest result).
    pub certificate_id: String,
    /// The lab.
    pub lab: String,
    /// Capacity at the period's end (0 if never passed).
    pub units_approved: i64,
    /// Net restricted units shipped through the period's last day.
    pub units_shipped: i64,
}

impl LotFigures {
    /// The lot as the report JSON has it.
    pub fn to_json(&self) -> serde_json::Value {
        json!({
            "lot_id": self.lot_id, "chip": self.chip, "certificate_id": self.certificate_id,
            "lab": self.lab, "units_approved": self.units_approved, "units_shipped": self.units_shipped,
        })
    }
}

/// A row recorded with `--accept-violations`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The row.
    pub record_id: String,
    /// Rules it broke.
    pub rules: Vec<String>,
    /// Why it was recorded.
    pub reason: String,
}

/// An import batch that inserted entries dated in the period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportFigures {
    /// File name as given.
    pub file: String,
    /// SHA-256 of its bytes.
    pub sha256: String,
    /// Data rows.
    pub rows: i64,
    /// First entry it inserted.
    pub entries_from: i64,
    /// Last entry it inserted.
    pub entries_to: i64,
}

/// A period report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// Per chip: the latest US-supply attestation of the period attested on
    /// or before the reference date (SPEC §5 `supply`). Read live, never
    /// sealed: attestations of a closed period cannot be added.
    pub supply: BTreeMap<String, crate::records::supply::SupplyAttestation>,
    /// The period.
    pub period: Period,
    /// Whether it is closed.
    pub closed: bool,
    /// The ledger clock used.
    pub as_of: NaiveDate,
    /// The chain head the report was computed at.
    pub head: ChainHead,
    /// Per chip.
    pub chips: Vec<ChipFigures>,
    /// Sum of the chips' remittance due.
    pub due: Usd,
    /// Payments recorded for the period.
    pub paid: Usd,
    /// Lots named in the period.
    pub lots: Vec<LotFigures>,
    /// Rows recorded with accepted violations.
    pub violations: Vec<Violation>,
    /// Import batches with entries dated in the period.
    pub imports: Vec<ImportFigures>,
    /// For a closed period, its late entries (SPEC §3.12); `None` when open.
    pub late: Option<late::LateFigures>,
}

/// Money with at least two decimals (amounts owed and paid).
pub fn cents_text(amount: Usd) -> String {
    if amount.e4 % 100 == 0 {
        amount.to_cents_string()
    } else {
        amount.to_string()
    }
}

/// ASCII digits with a `,` between groups of three (`1234567` → `1,234,567`).
fn group_thousands(digits: &str) -> String {
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// Units with thousands separators (`12,500`, `-1,000`), for people.
pub fn grouped_units(units: i64) -> String {
    let out = group_thousands(&units.unsigned_abs().to_string());
    if units < 0 {
        format!("-{out}")
    } else {
        out
    }
}

/// Money with thousands separators and at least two decimals, for people.
pub fn grouped(amount: Usd) -> String {
    let text = cents_text(amount);
    let (sign, rest) = text
        .strip_prefix('-')
        .map_or(("", text.as_str()), |r| ("-", r));
    let (whole, fraction) = rest.split_once('.').unwrap_or((rest, ""));
    let out = group_thousands(whole);
    if fraction.is_empty() {
        format!("{sign}{out}")
    } else {
        format!("{sign}{out}.{fraction}")
    }
}

fn day(date: NaiveDate) -> String {
    format_date(date)
}

/// The report's reference date R (SPEC §5 `report`): the as-of date
/// clamped into the period. Its cap window gives `limit`, `headroom` and
/// `status`, so a report never shows another period's limit.
pub fn reference_date(period: Period, as_of: NaiveDate) -> NaiveDate {
    as_of.clamp(period.first_day(), period.last_day())
}

/// Computes the report of `period` as the ledger stands in `conn`, on the
/// ledger clock `as_of`. Cap figures come from the rules module
/// (`rules::figures_on`, `rules::cap_status`), as `check` gets them.
pub fn compute(
    conn: &Connection,
    settings: &Settings,
    period: Period,
    as_of: NaiveDate,
) -> Result<Report> {
    compute_as(conn, settings, period, as_of, None)
}

/// The chips a period's report lists (SPEC §5): every chip with a policy
/// version in force during the period, with sales or returns in it
/// (`activity`), or with units still held in it.
fn report_chips(
    conn: &Connection,
    facts: &mut LedgerFacts<'_>,
    period: Period,
    activity: BTreeSet<String>,
) -> Result<BTreeSet<String>> {
    let mut chips: BTreeSet<String> = policy::all_versions(conn)?
        .iter()
        .filter(|version| version.effective_from <= period.last_day())
        .map(|version| version.chip.clone())
        .collect();
    chips.extend(activity);
    let period_window = Window::of_period(period);
    for chip in chips_with_holds(conn, period)? {
        if facts.window_units(&chip, period_window)?.held > 0 {
            chips.insert(chip);
        }
    }
    Ok(chips)
}

/// [`compute`]; with `before_close`, the figures that only the period's
/// own entries give are those of the entries before that close entry: the
/// late entries recorded after it are left out (what `verify` compares
/// with the sealed figures).
fn compute_as(
    conn: &Connection,
    settings: &Settings,
    period: Period,
    as_of: NaiveDate,
    before_close: Option<i64>,
) -> Result<Report> {
    let mut facts = LedgerFacts::new(conn, settings.clone(), as_of)?;
    let closed = facts.is_closed(period)?;
    let reference = reference_date(period, as_of);
    let period_id = period.to_string();
    let mut units_by_chip = period_units(conn, period)?;
    let mut revenue_by_chip = period_revenue(conn, &period_id)?;
    if before_close.is_some() {
        let rows = late::late_rows(conn, settings, period)?;
        leave_out_late(&rows, &mut units_by_chip, &mut revenue_by_chip);
    }
    let mut activity: BTreeSet<String> = units_by_chip.keys().cloned().collect();
    activity.extend(revenue_by_chip.keys().cloned());
    let chips = report_chips(conn, &mut facts, period, activity)?;
    let mut figures = Vec::new();
    let mut due = Usd::ZERO;
    for chip in chips {
        let (us_units, restricted_units) = units_by_chip.get(&chip).copied().unwrap_or((0, 0));
        let parts = revenue_by_chip.get(&chip).cloned().unwrap_or_default();
        let restricted_revenue = Usd::from_e4(parts.iter().map(|(_, net)| net).sum());
        let remittance_due = remittance_cents(&parts)
            .ok_or_else(|| Error::Integrity(format!("remittance of {chip} out of range")))?;
        due = due
            .checked_add(remittance_due)
            .ok_or_else(|| Error::Integrity("remittance total out of range".to_string()))?;
        let cap = cap_fields(&mut facts, &chip, period, reference)?;
        figures.push(ChipFigures {
            reserved_units: cap.reserved_units,
            chip,
            us_units,
            restricted_units,
            cap_ratio: cap.cap_ratio,
            cap_window: cap.cap_window,
            limit: cap.limit,
            headroom: cap.headroom,
            status: cap.status,
            restricted_revenue,
            remittance_due,
        });
    }
    let paid = payments::paid_usd(conn, &period_id)?;
    Ok(Report {
        supply: supply_by_chip(conn, &figures, period, reference)?,
        period,
        closed,
        as_of,
        head: read_head(conn)?,
        chips: figures,
        due,
        paid,
        lots: lot_figures(conn, period)?,
        violations: violations(conn, period, before_close)?,
        imports: imports(conn, &period_id, before_close)?,
        late: None,
    })
}

/// The `supply` of each chip: its latest attestation for `period` attested
/// on or before `reference`.
fn supply_by_chip(
    conn: &Connection,
    chips: &[ChipFigures],
    period: Period,
    reference: NaiveDate,
) -> Result<BTreeMap<String, crate::records::supply::SupplyAttestation>> {
    use crate::records::supply;
    let mut found = BTreeMap::new();
    for chip in chips {
        let all = supply::all_of(conn, &chip.chip, period)?;
        if let Some(latest) = supply::latest_on(&all, reference) {
            found.insert(chip.chip.clone(), latest.clone());
        }
    }
    Ok(found)
}

/// A chip's cap fields in a period's report: held units of the period,
/// the cap in force on the reference date and its window's limit,
/// headroom and status (SPEC §5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapFields {
    /// Units of active holds planned in the period.
    pub reserved_units: i64,
    /// Cap ratio, when capped.
    pub cap_ratio: Option<Ratio>,
    /// Cap window, when capped.
    pub cap_window: Option<CapWindow>,
    /// Limit, when capped.
    pub limit: Option<i64>,
    /// Headroom, when capped.
    pub headroom: Option<i64>,
    /// ok, breach, uncapped or forbidden.
    pub status: Status,
}

impl CapFields {
    /// The fields as the report JSON has them.
    pub fn to_json(&self) -> serde_json::Value {
        json!({
            "reserved_units": self.reserved_units,
            "cap_ratio": self.cap_ratio.map(|r| r.to_string()),
            "cap_window": self.cap_window.map(|w| w.name()),
            "limit": self.limit,
            "headroom": self.headroom,
            "status": self.status.name(),
        })
    }
}

/// The cap fields of `chip` in `period`'s report on the reference date,
/// from the rules' figures (`figures_on`, `cap_status`). The report and
/// `verify`'s check of sealed closes both call this.
pub fn cap_fields(
    facts: &mut dyn Facts,
    chip: &str,
    period: Period,
    reference: NaiveDate,
) -> Result<CapFields> {
    let policy = facts.chip_policy(chip)?;
    let cap = figures_on(facts, chip, reference)?;
    let status = cap_status(policy.in_force(reference), &cap);
    let capped = status != Status::Forbidden && cap.cap.is_some();
    Ok(CapFields {
        reserved_units: facts.window_units(chip, Window::of_period(period))?.held,
        cap_ratio: cap.cap.filter(|_| capped).map(|c| c.cap_ratio),
        cap_window: cap.cap.filter(|_| capped).map(|c| c.cap_window),
        limit: cap.limit.filter(|_| capped),
        headroom: cap.headroom().filter(|_| capped),
        status,
    })
}

/// Takes the late rows' units and restricted amounts out of the period's.
fn leave_out_late(
    rows: &[late::LateRow],
    units_by_chip: &mut BTreeMap<String, (i64, i64)>,
    revenue_by_chip: &mut BTreeMap<String, Vec<(Ratio, i128)>>,
) {
    for row in rows {
        let units = units_by_chip.entry(row.chip.clone()).or_default();
        match row.group {
            MarketGroup::Us => units.0 -= row.signed_units,
            MarketGroup::Restricted => units.1 -= row.signed_units,
            MarketGroup::Other => {}
        }
    }
    for (chip, parts) in late::restricted_parts(rows) {
        let revenue = revenue_by_chip.entry(chip).or_default();
        revenue.extend(parts.into_iter().map(|(rate, amount)| (rate, -amount)));
    }
}

/// Net US and restricted units per chip dated in the period.
fn period_units(conn: &Connection, period: Period) -> Result<BTreeMap<String, (i64, i64)>> {
    let mut statement = conn.prepare_cached(
        "SELECT chip, sum(us_net_units), sum(restricted_net_units) FROM derived_daily_units \
         WHERE day BETWEEN ?1 AND ?2 GROUP BY chip",
    )?;
    let rows = statement.query_map((day(period.first_day()), day(period.last_day())), |row| {
        Ok((row.get::<_, String>(0)?, (row.get(1)?, row.get(2)?)))
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Restricted revenue net of returns per chip, by remittance rate, exact.
fn period_revenue(
    conn: &Connection,
    period_id: &str,
) -> Result<BTreeMap<String, Vec<(Ratio, i128)>>> {
    let mut statement = conn.prepare_cached(
        "SELECT chip, remittance_rate, sales_usd_e4, returns_usd_e4 FROM derived_period_revenue WHERE period = ?1",
    )?;
    let rows = statement.query_map([period_id], |row| {
        Ok((
            row.get::<_, String>(0)?,
            row.get::<_, String>(1)?,
            row.get::<_, String>(2)?,
            row.get::<_, String>(3)?,
        ))
    })?;
    let mut revenue: BTreeMap<String, Vec<(Ratio, i128)>> = BTreeMap::new();
    for row in rows {
        let (chip, rate, sales, returns) = row?;
        let rate = Ratio::parse(&rate).map_err(Error::Integrity)?;
        let net = parse_e4(&sales)?
            .checked_sub(parse_e4(&returns)?)
            .ok_or_else(|| Error::Integrity("revenue out of range".to_string()))?;
        revenue.entry(chip).or_default().push((rate, net));
    }
    Ok(revenue)
}

/// Chips with units still held by a hold planned in the period (whether
/// the hold is still active is for the rules module to say).
fn chips_with_holds(conn: &Connection, period: Period) -> Result<Vec<String>> {
    Ok(conn
        .prepare_cached(
            "SELECT DISTINCT chip FROM derived_held_units WHERE planned_date BETWEEN ?1 AND ?2",
        )?
        .query_map((day(period.first_day()), day(period.last_day())), |row| {
            row.get(0)
        })?
        .collect::<rusqlite::Result<_>>()?)
}

fn lot_figures(conn: &Connection, period: Period) -> Result<Vec<LotFigures>> {
    let period_id = period.to_string();
    let mut named: BTreeSet<String> = conn
        .prepare_cached("SELECT lot_id FROM derived_lot_units WHERE period = ?1")?
        .query_map([&period_id], |row| row.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    // Holds dated in the period name lots too (any hold, active or not).
    let hold_lots: Vec<String> = conn
        .prepare_cached("SELECT DISTINCT lot_id FROM hold WHERE lot_id IS NOT NULL AND planned_date BETWEEN ?1 AND ?2")?
        .query_map((day(period.first_day()), day(period.last_day())), |row| row.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    named.extend(hold_lots);
    let mut figures = Vec::new();
    for lot_id in named {
        let events = lots::events_of(conn, &lot_id)?;
        let shipped: i64 = conn
            .prepare_cached(
                "SELECT coalesce(sum(shipped_net_units), 0) FROM derived_lot_units WHERE lot_id = ?1 AND period <= ?2",
            )?
            .query_row((&lot_id, &period_id), |row| row.get(0))?;
        figures.push(lot_figure(lot_id, &events, period, shipped));
    }
    Ok(figures)
}

/// A lot's line in a period's report (SPEC §5): its capacity on the
/// period's last day, the certificate and lab of its latest pass then
/// (else its latest event), and `shipped` (net, through the period).
pub fn lot_figure(
    lot_id: String,
    events: &[lots::LotEvent],
    period: Period,
    shipped: i64,
) -> LotFigures {
    {
        let state = lots::state_from_events(events, period.last_day());
        let reference = events
            .iter()
            .filter(|e| e.effective_date <= period.last_day() && e.result == LabResult::Pass)
            .max_by_key(|e| e.effective_date)
            .or_else(|| {
                events
                    .iter()
                    .filter(|e| e.effective_date <= period.last_day())
                    .max_by_key(|e| e.effective_date)
            })
            .or(events.first());
        LotFigures {
            chip: state.as_ref().map_or_else(String::new, |s| s.chip.clone()),
            certificate_id: reference.map_or_else(String::new, |e| e.certificate_id.clone()),
            lab: reference.map_or_else(String::new, |e| e.lab.clone()),
            units_approved: state.map_or(0, |s| s.capacity_units),
            units_shipped: shipped,
            lot_id,
        }
    }
}

fn violations(conn: &Connection, period: Period, before: Option<i64>) -> Result<Vec<Violation>> {
    let (first, last) = (period.first_day(), period.last_day());
    let rows: Vec<(String, String, String)> = conn
        .prepare_cached(
            "SELECT record_id, accepted_rules, accepted_reason FROM sale \
             WHERE accepted_rules IS NOT NULL AND sale_date BETWEEN ?1 AND ?2 \
             AND (?3 IS NULL OR seq < ?3) ORDER BY seq",
        )?
        .query_map((day(first), day(last), before), |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?))
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok(rows
        .into_iter()
        .map(|(record_id, rules, reason)| Violation {
            record_id,
            rules: rules.split(',').map(str::to_string).collect(),
            reason,
        })
        .collect())
}

fn imports(conn: &Connection, period_id: &str, before: Option<i64>) -> Result<Vec<ImportFigures>> {
    let rows = conn
        .prepare_cached(
            "SELECT b.file_name, b.file_sha256, b.row_count, b.entries_from, b.entries_to \
             FROM derived_batch_periods AS d JOIN import_batch AS b ON b.seq = d.batch_seq \
             WHERE d.period = ?1 AND (?2 IS NULL OR b.seq < ?2) ORDER BY b.seq",
        )?
        .query_map((period_id, before), |row| {
            Ok(ImportFigures {
                file: row.get(0)?,
                sha256: row.get(1)?,
                rows: row.get(2)?,
                entries_from: row.get(3)?,
                entries_to: row.get(4)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok(rows)
}

impl Report {
    fn chips_json(&self) -> Vec<serde_json::Value> {
        self.chips
            .iter()
            .map(|c| {
                json!({
                    "chip": c.chip,
                    "us_units": c.us_units,
                    "restricted_units": c.restricted_units,
                    "reserved_units": c.reserved_units,
                    "cap_ratio": c.cap_ratio.map(|r| r.to_string()),
                    "cap_window": c.cap_window.map(|w| w.name()),
                    "limit": c.limit,
                    "headroom": c.headroom,
                    "status": c.status.name(),
                    "restricted_revenue_usd": c.restricted_revenue.to_string(),
                    "remittance_due_usd": c.remittance_due.to_cents_string(),
                })
            })
            .collect()
    }

    fn lots_json(&self) -> Vec<serde_json::Value> {
        self.lots.iter().map(|l| l.to_json()).collect()
    }

    fn violations_json(&self) -> Vec<serde_json::Value> {
        self.violations
            .iter()
            .map(|v| json!({"record_id": v.record_id, "rules": v.rules, "reason": v.reason}))
            .collect()
    }

    fn imports_json(&self) -> Vec<serde_json::Value> {
        self.imports
            .iter()
            .map(|i| {
                json!({"file": i.file, "sha256": i.sha256, "rows": i.rows,
                       "entries_from": i.entries_from, "entries_to": i.entries_to})
            })
            .collect()
    }

    /// Outstanding = due − paid (negative when overpaid).
    pub fn outstanding(&self) -> Usd {
        self.due.checked_sub(self.paid).expect("within range")
    }

    /// The SPEC §5 report JSON.
    pub fn to_json(&self) -> serde_json::Value {
        json!({
            "period": self.period.to_string(),
            "closed": self.closed,
            "as_of": format_date(self.as_of),
            "ledger": {"entries": self.head.entries, "head": self.head.hash_hex()},
            "chips": self.chips_json().into_iter().map(|mut chip| {
                let name = chip["chip"].as_str().unwrap_or_default().to_string();
                chip["supply"] = self.supply.get(&name).map_or(serde_json::Value::Null, |a| a.to_json());
                chip
            }).collect::<Vec<_>>(),
            "remittance": {
                "due_usd": self.due.to_cents_string(),
                "paid_usd": self.paid.to_string(),
                "outstanding_usd": cents_text(self.outstanding()),
            },
            "lots": self.lots_json(),
            "violations": self.violations_json(),
            "imports": self.imports_json(),
            "late": self.late.as_ref().map(|late| json!({
                "entries": late.entries,
                "restricted_units": late.restricted_units,
                "restricted_revenue_usd": late.restricted_revenue.to_string(),
                "remittance_due_usd": late.remittance_due.to_cents_string(),
                "records": late.records.iter().map(|(record_id, reason)| {
                    json!({"record_id": record_id, "reason": reason})
                }).collect::<Vec<_>>(),
            })),
        })
    }

    /// The figures `close` seals and `verify` recomputes: everything but
    /// the clock, the chain head, the closed flag and the payments (which
    /// may still be recorded after the close).
    pub fn sealed_json(&self) -> String {
        serde_json::to_string(&json!({
            "period": self.period.to_string(),
            "chips": self.chips_json(),
            "due_usd": self.due.to_cents_string(),
            "lots": self.lots_json(),
            "violations": self.violations_json(),
            "imports": self.imports_json(),
        }))
        .expect("JSON values serialise")
    }

    /// One CSV row per chip, for spreadsheets.
    pub fn to_csv(&self) -> String {
        let mut writer = csv::Writer::from_writer(Vec::new());
        writer
            .write_record([
                "period",
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
            ])
            .expect("in memory");
        let optional = |value: Option<i64>| value.map_or_else(String::new, |v| v.to_string());
        for c in &self.chips {
            writer
                .write_record([
                    self.period.to_string(),
                    c.chip.clone(),
                    c.us_units.to_string(),
                    c.restricted_units.to_string(),
                    c.reserved_units.to_string(),
                    c.cap_ratio.map_or_else(String::new, |r| r.to_string()),
                    c.cap_window
                        .map_or_else(String::new, |w| w.name().to_string()),
                    optional(c.limit),
                    optional(c.headroom),
                    c.status.name().to_string(),
                    c.restricted_revenue.to_string(),
                    c.remittance_due.to_cents_string(),
                ])
                .expect("in memory");
        }
        String::from_utf8(writer.into_inner().expect("in memory")).expect("UTF-8")
    }

    /// Aligned tables for people, with a totals row and the chain head.
    pub fn to_table(&self) -> String {
        let mut out = format!(
            "Period {} ({}), as of {}\n",
            self.period,
            if self.closed { "closed" } else { "open" },
            format_date(self.as_of)
        );
        out.push_str(&self.chips_table());
        out.push_str(&format!(
            "\nRemittance: due {} USD, paid {} USD, outstanding {} USD\n",
            grouped(self.due),
            grouped(self.paid),
            grouped(self.outstanding())
        ));
        self.push_supply(&mut out);
        self.push_lots(&mut out);
        self.push_violations_imports_late(&mut out);
        out.push_str(&format!(
            "\nComputed at chain head {}:{} (compare with `qledger digest`)\n",
            self.head.entries,
            self.head.hash_hex()
        ));
        out
    }

    /// The chips' figures with a TOTAL row.
    fn chips_table(&self) -> String {
        use comfy_table::{presets::UTF8_FULL_CONDENSED, CellAlignment, Table};
        let mut table = Table::new();
        table.load_preset(UTF8_FULL_CONDENSED).set_header([
            "chip",
            "US units",
            "restricted",
            "reserved",
            "cap",
            "window",
            "limit",
            "headroom",
            "status",
            "restricted revenue USD",
            "remittance due USD",
        ]);
        let number = |value: Option<i64>| value.map_or_else(|| "-".to_string(), grouped_units);
        let (mut us, mut restricted, mut reserved, mut revenue) = (0i64, 0i64, 0i64, Usd::ZERO);
        for c in &self.chips {
            us += c.us_units;
            restricted += c.restricted_units;
            reserved += c.reserved_units;
            revenue = revenue
                .checked_add(c.restricted_revenue)
                .expect("within range");
            table.add_row([
                c.chip.clone(),
                grouped_units(c.us_units),
                grouped_units(c.restricted_units),
                grouped_units(c.reserved_units),
                c.cap_ratio
                    .map_or_else(|| "-".to_string(), |r| r.to_string()),
                c.cap_window
                    .map_or_else(|| "-".to_string(), |w| w.name().to_string()),
                number(c.limit),
                number(c.headroom),
                // A breach must stand out to a reader scanning the table.
                match c.status {
                    Status::Breach => "BREACH: over limit".to_string(),
                    other => other.name().to_string(),
                },
                grouped(c.restricted_revenue),
                grouped(c.remittance_due),
            ]);
        }
        table.add_row([
            "TOTAL".to_string(),
            grouped_units(us),
            grouped_units(restricted),
            grouped_units(reserved),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
            grouped(revenue),
            grouped(self.due),
        ]);
        for column in [1, 2, 3, 6, 7, 9, 10] {
            if let Some(column) = table.column_mut(column) {
                column.set_cell_alignment(CellAlignment::Right);
            }
        }
        table.to_string()
    }

    /// The supply attestations, one line per chip.
    fn push_supply(&self, out: &mut String) {
        if self.supply.is_empty() {
            return;
        }
        out.push_str("\nUS supply (latest attestation of the period on the reference date)\n");
        for (chip, attestation) in &self.supply {
            out.push_str(&format!(
                "  {chip}: attested {} by {}: US inventory {} units, open US orders {} units: {}\n",
                format_date(attestation.attested_on),
                attestation.attested_by,
                grouped_units(attestation.us_inventory_units),
                grouped_units(attestation.us_open_orders_units),
                if attestation.sufficient() {
                    "sufficient"
                } else {
                    "INSUFFICIENT"
                }
            ));
        }
    }

    /// The lots named in the period, as a table.
    fn push_lots(&self, out: &mut String) {
        use comfy_table::{presets::UTF8_FULL_CONDENSED, CellAlignment, Table};
        if !self.lots.is_empty() {
            let mut lots = Table::new();
            lots.load_preset(UTF8_FULL_CONDENSED).set_header([
                "lot",
                "chip",
                "certificate",
                "lab",
                "units approved",
                "units shipped",
                "",
            ]);
            for l in &self.lots {
                let over = l.units_shipped > l.units_approved;
                lots.add_row([
                    l.lot_id.clone(),
                    l.chip.clone(),
                    l.certificate_id.clone(),
                    l.lab.clone(),
                    grouped_units(l.units_approved),
                    grouped_units(l.units_shipped),
                    if over { "OVER CAPACITY" } else { "" }.to_string(),
                ]);
            }
            for column in [4, 5] {
                if let Some(column) = lots.column_mut(column) {
                    column.set_cell_alignment(CellAlignment::Right);
                }
            }
            out.push_str(&format!("\nLots\n{lots}\n"));
        }
    }

    /// Recorded violations, imports and late entries, each where there are some.
    fn push_violations_imports_late(&self, out: &mut String) {
        if !self.violations.is_empty() {
            out.push_str("\nRecorded violations\n");
            for v in &self.violations {
                out.push_str(&format!(
                    "  {}: {} ({})\n",
                    v.record_id,
                    v.rules.join(","),
                    v.reason
                ));
            }
        }
        if !self.imports.is_empty() {
            out.push_str("\nImports\n");
            for i in &self.imports {
                out.push_str(&format!(
                    "  {} ({} rows, entries {}..{}) sha256 {}\n",
                    i.file, i.rows, i.entries_from, i.entries_to, i.sha256
                ));
            }
        }
        if let Some(late) = self.late.as_ref().filter(|late| late.entries > 0) {
            out.push_str(&format!(
                "\nLate entries after the close ({}): {} restricted units, revenue {} USD, \
                 remittance due {} USD (included in the due above; the chip figures are the sealed ones)\n",
                late.entries,
                late.restricted_units,
                grouped(late.restricted_revenue),
                grouped(late.remittance_due)
            ));
            for (record_id, reason) in &late.records {
                out.push_str(&format!("  {record_id}: {reason}\n"));
            }
        }
    }
}

/// `qledger report`: the report of `period` on `as_of`, in one read snapshot.
pub fn report(ledger: &Ledger, period: Period, as_of: NaiveDate) -> Result<Report> {
    let conn = ledger.conn();
    conn.execute_batch("BEGIN DEFERRED")?;
    let report = match late::sealed_of(conn, period) {
        Ok(Some(sealed)) => sealed_report(conn, ledger.settings(), period, as_of, sealed),
        Ok(None) => compute(conn, ledger.settings(), period, as_of),
        Err(err) => Err(err),
    };
    conn.execute_batch("COMMIT")?;
    report
}

/// A closed period's report (SPEC §9): the sealed figures, its late
/// entries, and the payments as they stand; the remittance due is the
/// sealed due plus the late entries' due, so the money owed is never lost.
fn sealed_report(
    conn: &Connection,
    settings: &Settings,
    period: Period,
    as_of: NaiveDate,
    sealed: late::Sealed,
) -> Result<Report> {
    let late = late::late_figures(&late::late_rows(conn, settings, period)?)?;
    let due = sealed
        .due
        .checked_add(late.remittance_due)
        .ok_or_else(|| Error::Integrity("remittance total out of range".to_string()))?;
    Ok(Report {
        supply: supply_by_chip(conn, &sealed.chips, period, reference_date(period, as_of))?,
        period,
        closed: true,
        as_of,
        head: read_head(conn)?,
        chips: sealed.chips,
        due,
        paid: payments::paid_usd(conn, &period.to_string())?,
        lots: sealed.lots,
        violations: sealed.violations,
        imports: sealed.imports,
        late: Some(late),
    })
}

/// What `close` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Closed {
    /// The period.
    pub period: Period,
    /// It was closed before (nothing written).
    pub already_closed: bool,
    /// The chain head after the close.
    pub head: ChainHead,
}

/// `qledger close`: seals a period that is over on `as_of`.
pub fn close(ledger: &mut Ledger, period: Period, as_of: NaiveDate) -> Result<Closed> {
    let settings = ledger.settings().clone();
    ledger.write(as_of, |appender| {
        let conn = appender.conn();
        let recorded: Option<i64> = conn
            .prepare_cached("SELECT seq FROM period_close WHERE period = ?1")?
            .query_row([period.to_string()], |row| row.get(0))
            .optional()?;
        if recorded.is_some() {
            return Ok((
                Closed {
                    period,
                    already_closed: true,
                    head: appender.head(),
                },
                false,
            ));
        }
        if period.last_day() >= as_of {
            return Err(Error::Refused(format!(
                "period {period} is not over on {}: it can be closed from {}",
                format_date(as_of),
                format_date(period.last_day().succ_opt().expect("a next day"))
            )));
        }
        let mut figures = compute(conn, &settings, period, as_of)?;
        figures.closed = true;
        let head = appender.head();
        appender.append(
            &PERIOD_CLOSE,
            &[
                Value::Text(period.to_string()),
                Value::Text(format_date(as_of)),
                Value::Text(figures.sealed_json()),
                Value::Integer(head.entries),
                Value::Text(head.hash_hex()),
            ],
        )?;
        Ok((
            Closed {
                period,
                already_closed: false,
                head: appender.head(),
            },
            true,
        ))
    })
}

/// The figures of a sealed report that only entries dated in its period
/// give, and that no later entry can change: per chip (with any) US and
/// restricted units, restricted revenue and remittance due; the total due;
/// the recorded violations; the import batches.
fn intrinsic(sealed: &serde_json::Value) -> serde_json::Value {
    let chips: Vec<serde_json::Value> = sealed["chips"]
        .as_array()
        .map(|chips| {
            chips
                .iter()
                .map(|c| {
                    json!({
                        "chip": c["chip"], "us_units": c["us_units"], "restricted_units": c["restricted_units"],
                        "restricted_revenue_usd": c["restricted_revenue_usd"],
                        "remittance_due_usd": c["remittance_due_usd"],
                    })
                })
                .filter(|c| {
                    !(c["us_units"] == 0
                        && c["restricted_units"] == 0
                        && c["restricted_revenue_usd"] == "0"
                        && c["remittance_due_usd"] == "0.00")
                })
                .collect()
        })
        .unwrap_or_default();
    json!({
        "period": sealed["period"], "chips": chips, "due_usd": sealed["due_usd"],
        "violations": sealed["violations"], "imports": sealed["imports"],
    })
}

/// Checks every sealed period (SPEC §3.8): the figures its entries give now
/// must equal the sealed ones. Figures that reach outside the period (lot
/// totals, cumulative windows, holds) are sealed as evidence but not
/// compared, since entries of other, still open periods may change them.
/// Returns the close entry and a message for the first difference.
pub fn check_sealed(conn: &Connection, settings: &Settings) -> Result<Option<(i64, String)>> {
    let closes: Vec<(i64, String, String, String)> = conn
        .prepare("SELECT seq, period, closed_on, figures FROM period_close ORDER BY seq")?
        .query_map([], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
        })?
        .collect::<rusqlite::Result<_>>()?;
    for (seq, period_id, closed_on, sealed) in closes {
        let Ok(period) = Period::parse(settings.period_kind, &period_id) else {
            return Ok(Some((
                seq,
                format!("close entry {seq} names '{period_id}', not a period of this ledger"),
            )));
        };
        let closed_on = parse_date(&closed_on).map_err(Error::Integrity)?;
        let Ok(sealed) = serde_json::from_str::<serde_json::Value>(&sealed) else {
            return Ok(Some((
                seq,
                format!("the sealed figures of {period} (entry {seq}) are not JSON"),
            )));
        };
        let before = compute_as(conn, settings, period, closed_on, Some(seq))?;
        let now: serde_json::Value = serde_json::from_str(&before.sealed_json()).expect("our JSON");
        if intrinsic(&now) != intrinsic(&sealed) {
            return Ok(Some((
                seq,
                format!(
                    "the sealed figures of {period} (entry {seq}) no longer equal what its entries give: sealed {}, now {}",
                    intrinsic(&sealed),
                    intrinsic(&now)
                ),
            )));
        }
    }
    Ok(None)
}
