//! Late entries (SPEC §3.12) and the sealed report of a closed period: a
//! closed period shows what its close sealed, plus a `late` section over
//! the entries recorded after it with `import --late`.

use super::{ChipFigures, ImportFigures, LotFigures, Status, Violation};
use crate::error::{Error, Result};
use crate::money::{remittance_cents, Ratio, Usd};
use crate::period::{parse_date, Period};
use crate::records::policy::{self, CapWindow};
use crate::rules::ChipPolicy;
use crate::store::ledger::{MarketGroup, Settings};
use rusqlite::Connection;
use serde_json::Value as Json;
use std::collections::BTreeMap;

/// One late entry: a sale or return recorded after its period's close.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LateRow {
    /// The sale entry.
    pub seq: i64,
    /// Its record id.
    pub record_id: String,
    /// Chip.
    pub chip: String,
    /// Its market's group.
    pub group: MarketGroup,
    /// Units, negative for a return.
    pub signed_units: i64,
    /// `units × unit price`, negative for a return.
    pub signed_amount_e4: i128,
    /// The remittance rate in force on the original sale's date (0 without a version).
    pub rate: Ratio,
    /// Why it was recorded late.
    pub reason: String,
}

/// The late entries of `period`, in entry order.
pub fn late_rows(conn: &Connection, settings: &Settings, period: Period) -> Result<Vec<LateRow>> {
    type Stored = (
        i64,
        String,
        String,
        String,
        String,
        i64,
        i64,
        String,
        String,
    );
    let stored: Vec<Stored> = conn
        .prepare_cached(
            "SELECT s.seq, s.record_id, s.kind, s.chip, s.market, s.units, s.unit_price_usd_e4, \
                    coalesce((SELECT o.sale_date FROM sale AS o WHERE o.record_id = s.reverses), s.sale_date), \
                    l.reason \
             FROM late_entry AS l JOIN sale AS s ON s.seq = l.sale_seq \
             WHERE l.period = ?1 ORDER BY l.seq",
        )?
        .query_map([period.to_string()], |row| Stored::try_from(row))?
        .collect::<rusqlite::Result<_>>()?;
    let mut policies: BTreeMap<String, ChipPolicy> = BTreeMap::new();
    let mut rows = Vec::with_capacity(stored.len());
    for (seq, record_id, kind, chip, market, units, price_e4, original, reason) in stored {
        let original = parse_date(&original).map_err(Error::Integrity)?;
        if !policies.contains_key(&chip) {
            let versions = policy::versions_of(conn, &chip)?;
            policies.insert(chip.clone(), ChipPolicy { versions });
        }
        let rate = policies[&chip].rate_on(original);
        let sign = if kind == "return" { -1 } else { 1 };
        rows.push(LateRow {
            seq,
            record_id,
            group: settings.market_group(&market),
            chip,
            signed_units: sign * units,
            signed_amount_e4: i128::from(sign) * i128::from(units) * i128::from(price_e4),
            rate,
            reason,
        });
    }
    Ok(rows)
}

/// The `late` section of a closed period's report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LateFigures {
    /// How many late entries.
    pub entries: i64,
    /// Restricted units, net of returns.
    pub restricted_units: i64,
    /// Restricted revenue, net of returns, exact.
    pub restricted_revenue: Usd,
    /// The sum over chips of each chip's late due, rounded as in §3.7.
    pub remittance_due: Usd,
    /// Each late entry's record id and reason.
    pub records: Vec<(String, String)>,
}

/// Restricted amounts of late rows per chip, by rate: what §3.7 rounds.
pub fn restricted_parts(rows: &[LateRow]) -> BTreeMap<String, Vec<(Ratio, i128)>> {
    let mut parts: BTreeMap<String, Vec<(Ratio, i128)>> = BTreeMap::new();
    for row in rows.iter().filter(|r| r.group == MarketGroup::Restricted) {
        parts
            .entry(row.chip.clone())
            .or_default()
            .push((row.rate, row.signed_amount_e4));
    }
    parts
}

/// Sums the late rows into the `late` section.
pub fn late_figures(rows: &[LateRow]) -> Result<LateFigures> {
    let restricted = rows.iter().filter(|r| r.group == MarketGroup::Restricted);
    let mut due = Usd::ZERO;
    for (chip, parts) in restricted_parts(rows) {
        let chip_due = remittance_cents(&parts)
            .ok_or_else(|| Error::Integrity(format!("late remittance of {chip} out of range")))?;
        due = due
            .checked_add(chip_due)
            .ok_or_else(|| Error::Integrity("late remittance out of range".to_string()))?;
    }
    Ok(LateFigures {
        entries: rows.len() as i64,
        restricted_units: restricted.clone().map(|r| r.signed_units).sum(),
        restricted_revenue: Usd::from_e4(restricted.map(|r| r.signed_amount_e4).sum()),
        remittance_due: due,
        records: rows
            .iter()
            .map(|r| (r.record_id.clone(), r.reason.clone()))
            .collect(),
    })
}

/// The figures a close sealed, read back from its canonical JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    /// Per chip.
    pub chips: Vec<ChipFigures>,
    /// The period's remittance due.
    pub due: Usd,
    /// Lots.
    pub lots: Vec<LotFigures>,
    /// Violations.
    pub violations: Vec<Violation>,
    /// Imports.
    pub imports: Vec<ImportFigures>,
}

/// The sealed figures of `period`'s close, or `None` if it is open.
pub fn sealed_of(conn: &Connection, period: Period) -> Result<Option<Sealed>> {
    use rusqlite::OptionalExtension;
    let figures: Option<(i64, String)> = conn
        .prepare_cached("SELECT seq, figures FROM period_close WHERE period = ?1")?
        .query_row([period.to_string()], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()?;
    let Some((seq, figures)) = figures else {
        return Ok(None);
    };
    let corrupt = |why: String| {
        Error::Integrity(format!(
            "the sealed figures of {period} (entry {seq}) cannot be read ({why}); run qledger verify"
        ))
    };
    let json: Json = serde_json::from_str(&figures).map_err(|err| corrupt(err.to_string()))?;
    parse_sealed(&json).map_err(corrupt).map(Some)
}

fn parse_sealed(json: &Json) -> std::result::Result<Sealed, String> {
    let list = |key: &str| json[key].as_array().ok_or_else(|| format!("no {key}"));
    Ok(Sealed {
        chips: list("chips")?
            .iter()
            .map(chip_of)
            .collect::<std::result::Result<_, _>>()?,
        due: money(&json["due_usd"])?,
        lots: list("lots")?
            .iter()
            .map(lot_of)
            .collect::<std::result::Result<_, _>>()?,
        violations: list("violations")?
            .iter()
            .map(violation_of)
            .collect::<std::result::Result<_, _>>()?,
        imports: list("imports")?
            .iter()
            .map(import_of)
            .collect::<std::result::Result<_, _>>()?,
    })
}

fn text(json: &Json) -> std::result::Result<String, String> {
    json.as_str()
        .map(str::to_string)
        .ok_or_else(|| format!("{json} is not text"))
}

fn count(json: &Json) -> std::result::Result<i64, String> {
    json.as_i64()
        .ok_or_else(|| format!("{json} is not a count"))
}

/// Exact money as the report writes it (a sign allowed).
fn money(json: &Json) -> std::result::Result<Usd, String> {
    let text = text(json)?;
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.as_str()),
    };
    let amount = Usd::parse(digits, i128::MAX / 10_000)?;
    Ok(if negative {
        Usd::from_e4(-amount.e4)
    } else {
        amount
    })
}

fn chip_of(json: &Json) -> std::result::Result<ChipFigures, String> {
    let optional_count = |key: &str| match &json[key] {
        Json::Null => Ok(None),
        other => count(other).map(Some),
    };
    let status = match text(&json["status"])?.as_str() {
        "ok" => Status::Ok,
        "breach" => Status::Breach,
        "uncapped" => Status::Uncapped,
        "forbidden" => Status::Forbidden,
        other => return Err(format!("status '{other}'")),
    };
    Ok(ChipFigures {
        chip: text(&json["chip"])?,
        us_units: count(&json["us_units"])?,
        restricted_units: count(&json["restricted_units"])?,
        reserved_units: count(&json["reserved_units"])?,
        cap_ratio: match &json["cap_ratio"] {
            Json::Null => None,
            other => Some(Ratio::parse(&text(other)?)?),
        },
        cap_window: match json["cap_window"].as_str() {
            None => None,
            Some("period") => Some(CapWindow::Period),
            Some("cumulative") => Some(CapWindow::Cumulative),
            Some(other) => return Err(format!("cap_window '{other}'")),
        },
        limit: optional_count("limit")?,
        headroom: optional_count("headroom")?,
        status,
        restricted_revenue: money(&json["restricted_revenue_usd"])?,
        remittance_due: money(&json["remittance_due_usd"])?,
    })
}

fn lot_of(json: &Json) -> std::result::Result<LotFigures, String> {
    Ok(LotFigures {
        lot_id: text(&json["lot_id"])?,
        chip: text(&json["chip"])?,
        certificate_id: text(&json["certificate_id"])?,
        lab: text(&json["lab"])?,
        units_approved: count(&json["units_approved"])?,
        units_shipped: count(&json["units_shipped"])?,
    })
}

fn violation_of(json: &Json) -> std::result::Result<Violation, String> {
    let rules = json["rules"].as_array().ok_or("no rules")?;
    Ok(Violation {
        record_id: text(&json["record_id"])?,
        rules: rules
            .iter()
            .map(text)
            .collect::<std::result::Result<_, _>>()?,
        reason: text(&json["reason"])?,
    })
}

fn import_of(json: &Json) -> std::result::Result<ImportFigures, String> {
    Ok(ImportFigures {
        file: text(&json["file"])?,
        sha256: text(&json["sha256"])?,
        rows: count(&json["rows"])?,
        entries_from: count(&json["entries_from"])?,
        entries_to: count(&json["entries_to"])?,
    })
}
