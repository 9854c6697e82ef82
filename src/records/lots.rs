//! Third-party lab results per lot (SPEC §3.3).

use crate::error::{Error, Result, RowProblem};
use crate::input::csv::{ColumnSpec, Row};
use crate::input::reference_import::{check, ReferenceRow};
use crate::input::values::{parse_chip, parse_choice, parse_identifier, parse_text, parse_units};
use crate::period::{format_date, parse_date};
use crate::store::entry::{EntryKind, LOT_EVENT};
use chrono::NaiveDate;
use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension};
use std::collections::HashMap;

/// A lab's verdict on a lot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LabResult {
    /// Cleared, with a capacity of `units`.
    Pass,
    /// Not cleared.
    Fail,
    /// An earlier pass withdrawn.
    Revoked,
}

impl LabResult {
    /// The stored name.
    pub fn name(self) -> &'static str {
        match self {
            LabResult::Pass => "pass",
            LabResult::Fail => "fail",
            LabResult::Revoked => "revoked",
        }
    }

    fn parse_stored(text: &str) -> Option<LabResult> {
        match text {
            "pass" => Some(LabResult::Pass),
            "fail" => Some(LabResult::Fail),
            "revoked" => Some(LabResult::Revoked),
            _ => None,
        }
    }
}

/// One lab event of one lot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LotEvent {
    /// Case-sensitive identifier.
    pub lot_id: String,
    /// The chip, fixed by the lot's first event.
    pub chip: String,
    /// Units the event covers (the capacity, for a pass).
    pub units: i64,
    /// The testing lab.
    pub lab: String,
    /// The lab's certificate.
    pub certificate_id: String,
    /// Pass, fail or revoked.
    pub result: LabResult,
    /// The date it takes effect.
    pub effective_date: NaiveDate,
}

/// The file's columns (SPEC §4).
pub const COLUMNS: &[ColumnSpec] = &[
    ColumnSpec {
        name: "lot_id",
        required: true,
    },
    ColumnSpec {
        name: "chip",
        required: true,
    },
    ColumnSpec {
        name: "units",
        required: true,
    },
    ColumnSpec {
        name: "lab",
        required: true,
    },
    ColumnSpec {
        name: "certificate_id",
        required: true,
    },
    ColumnSpec {
        name: "result",
        required: true,
    },
    ColumnSpec {
        name: "effective_date",
        required: true,
    },
];

const SELECT_COLUMNS: &str = "lot_id, chip, units, lab, certificate_id, result, effective_date";

type Stored = (String, String, i64, String, String, String, String);

fn from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Stored> {
    row.try_into()
}

fn from_stored(stored: Stored) -> Result<LotEvent> {
    let (lot_id, chip, units, lab, certificate_id, result, date) = stored;
    let corrupt =
        |what: String| Error::Integrity(format!("stored event of lot {lot_id} is corrupt: {what}"));
    Ok(LotEvent {
        result: LabResult::parse_stored(&result)
            .ok_or_else(|| corrupt(format!("result '{result}'")))?,
        effective_date: parse_date(&date).map_err(corrupt)?,
        lot_id,
        chip,
        units,
        lab,
        certificate_id,
    })
}

/// A lot's state on a date: cleared and its capacity (SPEC §3.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LotState {
    /// The lot's chip.
    pub chip: String,
    /// Whether its latest event on or before the date is a pass.
    pub cleared: bool,
    /// Units of its latest pass on or before the date (0 if none).
    pub capacity_units: i64,
    /// The latest event on or before the date, if any.
    pub latest: Option<LotEvent>,
}

/// Every lot event with its entry number, in entry order (`verify`'s replay).
pub fn all_with_seq(conn: &Connection) -> Result<Vec<(i64, LotEvent)>> {
    let sql = format!("SELECT {SELECT_COLUMNS}, seq FROM lot_event ORDER BY seq");
    super::all_with_seq(conn, &sql, 7, from_row, from_stored)
}

/// Every event of one lot, in the order they were recorded.
pub fn events_of(conn: &Connection, lot_id: &str) -> Result<Vec<LotEvent>> {
    let stored = conn
        .prepare_cached(&format!(
            "SELECT {SELECT_COLUMNS} FROM lot_event WHERE lot_id = ?1 ORDER BY seq"
        ))?
        .query_map([lot_id], from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    stored.into_iter().map(from_stored).collect()
}

/// The lot's state on `date` from its events (in recorded order, the
/// first fixing the chip); `None` when there are no events.
pub fn state_from_events(events: &[LotEvent], date: NaiveDate) -> Option<LotState> {
    let first = events.first()?;
    let mut latest: Option<&LotEvent> = None;
    let mut latest_pass: Option<&LotEvent> = None;
    for event in events.iter().filter(|e| e.effective_date <= date) {
        if latest.is_none_or(|l| event.effective_date > l.effective_date) {
            latest = Some(event);
        }
        if event.result == LabResult::Pass
            && latest_pass.is_none_or(|p| event.effective_date > p.effective_date)
        {
            latest_pass = Some(event);
        }
    }
    Some(LotState {
        chip: first.chip.clone(),
        cleared: latest.is_some_and(|e| e.result == LabResult::Pass),
        capacity_units: latest_pass.map_or(0, |e| e.units),
        latest: latest.cloned(),
    })
}

/// The lot's state on `date`; `None` if the lot has no events at all.
pub fn state_on(conn: &Connection, lot_id: &str, date: NaiveDate) -> Result<Option<LotState>> {
    Ok(state_from_events(&events_of(conn, lot_id)?, date))
}

/// The chip of the lot's first recorded event.
pub fn first_chip(conn: &Connection, lot_id: &str) -> Result<Option<String>> {
    Ok(conn
        .prepare_cached("SELECT chip FROM lot_event WHERE lot_id = ?1 ORDER BY seq LIMIT 1")?
        .query_row([lot_id], |row| row.get(0))
        .optional()?)
}

impl ReferenceRow for LotEvent {
    /// Lot id -> chip of events accepted earlier in this file.
    type Context = HashMap<String, String>;
    const KIND: EntryKind = LOT_EVENT;
    const FILE_KIND: &'static str = "lots";
    const COLUMNS: &'static [ColumnSpec] = COLUMNS;
    const DATE_COLUMN: &'static str = "effective_date";

    fn parse(row: &Row<'_>, problems: &mut Vec<RowProblem>) -> Option<LotEvent> {
        let line = row.line;
        let lot_id = check(problems, line, "lot_id", parse_identifier(row.get(0)));
        let chip = check(problems, line, "chip", parse_chip(row.get(1)));
        let units = check(problems, line, "units", parse_units(row.get(2)));
        let lab = check(problems, line, "lab", parse_text(row.get(3), true));
        let certificate_id = check(
            problems,
            line,
            "certificate_id",
            parse_identifier(row.get(4)),
        );
        let result = check(
            problems,
            line,
            "result",
            parse_choice(row.get(5), &["pass", "fail", "revoked"]),
        );
        let effective_date = check(problems, line, "effective_date", parse_date(row.get(6)));
        Some(LotEvent {
            lot_id: lot_id?,
            chip: chip?,
            units: units?,
            lab: lab?,
            certificate_id: certificate_id?,
            result: LabResult::parse_stored(result?).expect("choice is a result"),
            effective_date: effective_date?,
        })
    }

    fn identity(&self) -> (String, NaiveDate) {
        (self.lot_id.clone(), self.effective_date)
    }

    fn load_recorded(conn: &Connection, identity: &(String, NaiveDate)) -> Result<Option<Self>> {
        let stored = conn
            .prepare_cached(&format!(
                "SELECT {SELECT_COLUMNS} FROM lot_event WHERE lot_id = ?1 AND effective_date = ?2"
            ))?
            .query_row((&identity.0, format_date(identity.1)), from_row)
            .optional()?;
        stored.map(from_stored).transpose()
    }

    fn check(
        &self,
        conn: &Connection,
        chips_in_file: &mut HashMap<String, String>,
        _as_of: NaiveDate,
    ) -> Result<Option<(&'static str, String)>> {
        let fixed = match first_chip(conn, &self.lot_id)? {
            Some(chip) => Some(chip),
            None => chips_in_file.get(&self.lot_id).cloned(),
        };
        match fixed {
            Some(chip) if chip != self.chip => Ok(Some((
                "chip",
                format!(
                    "lot {} is a lot of {chip} (fixed by its first event), not {}",
                    self.lot_id, self.chip
                ),
            ))),
            Some(_) => Ok(None),
            None => {
                chips_in_file.insert(self.lot_id.clone(), self.chip.clone());
                Ok(None)
            }
        }
    }

    fn values(&self) -> Vec<Value> {
        vec![
            Value::Text(self.lot_id.clone()),
            Value::Text(self.chip.clone()),
            Value::Integer(self.units),
            Value::Text(self.lab.clone()),
            Value::Text(self.certificate_id.clone()),
            Value::Text(self.result.name().to_string()),
            Value::Text(format_date(self.effective_date)),
        ]
    }
}
