//! US-supply attestations (SPEC §3.10): for one chip and one reporting
//! period, the units in US inventory and of open US orders, attested on a
//! date by a named officer. Key: (chip, period, `attested_on`).

use crate::error::{Error, Result, RowProblem};
use crate::input::csv::{ColumnSpec, Row};
use crate::input::reference_import::{check, ReferenceRow};
use crate::input::values::{parse_chip, parse_count, parse_text};
use crate::period::{format_date, parse_date, Period, PeriodKind};
use crate::records::policy::KnownChips;
use crate::store::entry::{EntryKind, SUPPLY_ATTESTATION};
use chrono::NaiveDate;
use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension};

/// Most characters of `attested_by` (SPEC §4).
pub const ATTESTED_BY_CHARS_MAX: usize = 128;

/// One attestation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SupplyAttestation {
    /// Chip, upper-case (a known chip).
    pub chip: String,
    /// The reporting period it is for, as written (`YYYY-MM` or `YYYY-Qn`).
    pub period: String,
    /// Units in US inventory.
    pub us_inventory_units: i64,
    /// Units of open US orders.
    pub us_open_orders_units: i64,
    /// The date it was attested.
    pub attested_on: NaiveDate,
    /// The officer who attested it.
    pub attested_by: String,
    /// Reference (may be empty).
    pub reference: String,
}

impl SupplyAttestation {
    /// Sufficient: US inventory covers open US orders (SPEC §3.10).
    pub fn sufficient(&self) -> bool {
        self.us_inventory_units >= self.us_open_orders_units
    }

    /// The report's `supply` object (SPEC §5).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "attested_on": format_date(self.attested_on),
            "attested_by": self.attested_by,
            "us_inventory_units": self.us_inventory_units,
            "us_open_orders_units": self.us_open_orders_units,
            "sufficient": self.sufficient(),
        })
    }
}

/// The file's columns (SPEC §4).
pub const COLUMNS: &[ColumnSpec] = &[
    ColumnSpec {
        name: "chip",
        required: true,
    },
    ColumnSpec {
        name: "period",
        required: true,
    },
    ColumnSpec {
        name: "us_inventory_units",
        required: true,
    },
    ColumnSpec {
        name: "us_open_orders_units",
        required: true,
    },
    ColumnSpec {
        name: "attested_on",
        required: true,
    },
    ColumnSpec {
        name: "attested_by",
        required: true,
    },
    ColumnSpec {
        name: "reference",
        required: true,
    },
];

const SELECT_COLUMNS: &str = "chip, period, us_inventory_units, us_open_orders_units, \
     attested_on, attested_by, reference";

type Stored = (String, String, i64, i64, String, String, String);

fn from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Stored> {
    row.try_into()
}

fn from_stored(stored: Stored) -> Result<SupplyAttestation> {
    let (
        chip,
        period,
        us_inventory_units,
        us_open_orders_units,
        attested_on,
        attested_by,
        reference,
    ) = stored;
    let attested_on = parse_date(&attested_on).map_err(|why| {
        Error::Integrity(format!(
            "stored supply attestation of {chip} {period} is corrupt: {why}"
        ))
    })?;
    Ok(SupplyAttestation {
        chip,
        period,
        us_inventory_units,
        us_open_orders_units,
        attested_on,
        attested_by,
        reference,
    })
}

/// Every attestation of `chip` for `period`, oldest `attested_on` first.
pub fn all_of(conn: &Connection, chip: &str, period: Period) -> Result<Vec<SupplyAttestation>> {
    let stored = conn
        .prepare_cached(&format!(
            "SELECT {SELECT_COLUMNS} FROM supply_attestation \
             WHERE chip = ?1 AND period = ?2 ORDER BY attested_on"
        ))?
        .query_map((chip, period.to_string()), from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    stored.into_iter().map(from_stored).collect()
}

/// The latest of `attestations` (oldest first) attested on or before
/// `date` (SPEC §3.10), if any.
pub fn latest_on(
    attestations: &[SupplyAttestation],
    date: NaiveDate,
) -> Option<&SupplyAttestation> {
    let after = attestations.partition_point(|a| a.attested_on <= date);
    after.checked_sub(1).map(|index| &attestations[index])
}

/// Every attestation with its entry number, in entry order (`verify`'s replay).
pub fn all_with_seq(conn: &Connection) -> Result<Vec<(i64, SupplyAttestation)>> {
    let sql = format!("SELECT {SELECT_COLUMNS}, seq FROM supply_attestation ORDER BY seq");
    super::all_with_seq(conn, &sql, 7, from_row, from_stored)
}

/// The period forms of either kind, for parsing before the ledger's kind is known.
fn parse_any_period(text: &str) -> std::result::Result<String, String> {
    Period::parse(PeriodKind::Quarter, text)
        .or_else(|_| Period::parse(PeriodKind::Month, text))
        .map(|period| period.to_string())
        .map_err(|_| format!("'{text}' is not a period id (YYYY-MM or YYYY-Qn)"))
}

/// Per-import context: the ledger's settings and known chips, read once.
#[derive(Default)]
pub struct SupplyContext {
    read: Option<(PeriodKind, KnownChips)>,
}

impl ReferenceRow for SupplyAttestation {
    type Context = SupplyContext;
    const KIND: EntryKind = SUPPLY_ATTESTATION;
    const FILE_KIND: &'static str = "supply";
    const COLUMNS: &'static [ColumnSpec] = COLUMNS;
    const DATE_COLUMN: &'static str = "attested_on";

    fn parse(row: &Row<'_>, problems: &mut Vec<RowProblem>) -> Option<SupplyAttestation> {
        let line = row.line;
        let chip = check(problems, line, "chip", parse_chip(row.get(0)));
        let period = check(problems, line, "period", parse_any_period(row.get(1)));
        let inventory = check(
            problems,
            line,
            "us_inventory_units",
            parse_count(row.get(2)),
        );
        let orders = check(
            problems,
            line,
            "us_open_orders_units",
            parse_count(row.get(3)),
        );
        let attested_on = check(problems, line, "attested_on", parse_date(row.get(4)));
        let attested_by = check(problems, line, "attested_by", parse_attested_by(row.get(5)));
        let reference = check(problems, line, "reference", parse_text(row.get(6), false));
        Some(SupplyAttestation {
            chip: chip?,
            period: period?,
            us_inventory_units: inventory?,
            us_open_orders_units: orders?,
            attested_on: attested_on?,
            attested_by: attested_by?,
            reference: reference?,
        })
    }

    fn identity(&self) -> (String, NaiveDate) {
        (format!("{} {}", self.chip, self.period), self.attested_on)
    }

    fn load_recorded(conn: &Connection, identity: &(String, NaiveDate)) -> Result<Option<Self>> {
        let (chip, period) = identity.0.split_once(' ').unwrap_or((&identity.0, ""));
        let stored = conn
            .prepare_cached(&format!(
                "SELECT {SELECT_COLUMNS} FROM supply_attestation \
                 WHERE chip = ?1 AND period = ?2 AND attested_on = ?3"
            ))?
            .query_row((chip, period, format_date(identity.1)), from_row)
            .optional()?;
        stored.map(from_stored).transpose()
    }

    fn check(
        &self,
        conn: &Connection,
        context: &mut SupplyContext,
        as_of: NaiveDate,
    ) -> Result<Option<(&'static str, String)>> {
        if context.read.is_none() {
            let kind = crate::store::ledger::read_settings(conn)?.period_kind;
            context.read = Some((kind, KnownChips::load(conn)?));
        }
        let (kind, known) = context.read.as_ref().expect("read above");
        if let Err(why) = known.check(self.chip.clone()) {
            return Ok(Some(("chip", why)));
        }
        let period = match Period::parse(*kind, &self.period) {
            Ok(period) => period,
            Err(why) => {
                return Ok(Some((
                    "period",
                    format!("{why}: this ledger reports by {}", kind.name()),
                )))
            }
        };
        let closed = conn
            .prepare_cached("SELECT 1 FROM period_close WHERE period = ?1")?
            .exists([period.to_string()])?;
        if closed {
            return Ok(Some((
                "period",
                format!("{period} is closed; an attestation is for an open period"),
            )));
        }
        if self.attested_on > as_of {
            return Ok(Some((
                "attested_on",
                format!(
                    "{} is after the as-of date {} (an attestation cannot be dated in the future)",
                    format_date(self.attested_on),
                    format_date(as_of)
                ),
            )));
        }
        Ok(None)
    }

    fn values(&self) -> Vec<Value> {
        vec![
            Value::Text(self.chip.clone()),
            Value::Text(self.period.clone()),
            Value::Integer(self.us_inventory_units),
            Value::Integer(self.us_open_orders_units),
            Value::Text(format_date(self.attested_on)),
            Value::Text(self.attested_by.clone()),
            Value::Text(self.reference.clone()),
        ]
    }
}

/// `attested_by`: 1–128 characters of free text.
fn parse_attested_by(text: &str) -> std::result::Result<String, String> {
    let chars = text.chars().count();
    if chars > ATTESTED_BY_CHARS_MAX {
        return Err(format!(
            "is {chars} characters long; at most {ATTESTED_BY_CHARS_MAX}"
        ));
    }
    parse_text(text, true)
}
