//! Effective-dated policy versions (SPEC §3.1): import, lookup, display.

use crate::error::{Error, Result, RowProblem};
use crate::input::csv::{ColumnSpec, Row};
use crate::input::reference_import::{check, ReferenceRow};
use crate::input::values::{parse_bool, parse_chip, parse_choice, parse_text};
use crate::money::Ratio;
use crate::period::{format_date, parse_date, Period};
use crate::store::entry::{EntryKind, POLICY_VERSION};
use chrono::NaiveDate;
use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension};

/// How the units of a cap window are gathered (SPEC §3.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CapWindow {
    /// The reporting period of the date being checked.
    Period,
    /// From the start of the unbroken run of capped versions.
    Cumulative,
}

impl CapWindow {
    /// The stored and displayed name.
    pub fn name(self) -> &'static str {
        match self {
            CapWindow::Period => "period",
            CapWindow::Cumulative => "cumulative",
        }
    }
}

/// A volume cap: ratio and window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cap {
    /// Restricted units at most this share of US units.
    pub cap_ratio: Ratio,
    /// Which dates count together.
    pub cap_window: CapWindow,
}

/// One policy version of one chip.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyVersion {
    /// Chip code, upper-case.
    pub chip: String,
    /// First day the version is in force.
    pub effective_from: NaiveDate,
    /// May the chip be sold to the restricted group at all.
    pub restricted_allowed: bool,
    /// The cap, if any.
    pub cap: Option<Cap>,
    /// Share of restricted net revenue owed.
    pub remittance_rate: Ratio,
    /// Restricted sales must name a lab-cleared lot.
    pub lab_test_required: bool,
    /// Restricted sales must name an approved customer.
    pub customer_approval_required: bool,
    /// Citation.
    pub source: String,
    /// Restricted rows need a sufficient US-supply attestation (SPEC §3.10).
    pub us_supply_attestation_required: bool,
    /// The customer's approval must carry a no-military-end-use
    /// certificate (SPEC §3.2; only where approval is required).
    pub end_use_certificate_required: bool,
}

/// The file's columns (SPEC §4).
pub const COLUMNS: &[ColumnSpec] = &[
    ColumnSpec {
        name: "chip",
        required: true,
    },
    ColumnSpec {
        name: "effective_from",
        required: true,
    },
    ColumnSpec {
        name: "restricted_allowed",
        required: true,
    },
    ColumnSpec {
        name: "cap_ratio",
        required: true,
    },
    ColumnSpec {
        name: "cap_window",
        required: true,
    },
    ColumnSpec {
        name: "remittance_rate",
        required: true,
    },
    ColumnSpec {
        name: "lab_test_required",
        required: true,
    },
    ColumnSpec {
        name: "customer_approval_required",
        required: true,
    },
    ColumnSpec {
        name: "source",
        required: true,
    },
    ColumnSpec {
        name: "us_supply_attestation_required",
        required: false,
    },
    ColumnSpec {
        name: "end_use_certificate_required",
        required: false,
    },
];

/// A policy_version row as stored.
type StoredVersion = (
    String,
    String,
    bool,
    Option<String>,
    Option<String>,
    String,
    bool,
    bool,
    String,
    Option<bool>,
    Option<bool>,
);

const SELECT_COLUMNS: &str = "chip, effective_from, restricted_allowed, cap_ratio, cap_window, \
     remittance_rate, lab_test_required, customer_approval_required, source, \
     us_supply_attestation_required, end_use_certificate_required";

/// The condition that leaves out withdrawn versions (SPEC §3.1): every rule
/// and report reads versions through it.
const NOT_WITHDRAWN: &str = "NOT EXISTS (SELECT 1 FROM policy_withdrawal AS w \
     WHERE w.version_seq = policy_version.seq)";

impl PolicyVersion {
    fn from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<StoredVersion> {
        row.try_into()
    }

    /// Rebuilds a version from stored text, checking it re-parses (an
    /// invariant on read: anything else means the file was tampered with).
    fn from_stored(stored: StoredVersion) -> Result<PolicyVersion> {
        let (chip, from, allowed, ratio, window, rate, lab, approval, source, supply, certificate) =
            stored;
        let corrupt = |what: String| {
            Error::Integrity(format!(
                "stored policy version of {chip} is corrupt: {what}"
            ))
        };
        let effective_from = parse_date(&from).map_err(corrupt)?;
        let cap = match (ratio, window) {
            (Some(ratio), Some(window)) => Some(Cap {
                cap_ratio: Ratio::parse(&ratio).map_err(corrupt)?,
                cap_window: match window.as_str() {
                    "period" => CapWindow::Period,
                    "cumulative" => CapWindow::Cumulative,
                    other => return Err(corrupt(format!("cap_window '{other}'"))),
                },
            }),
            (None, None) => None,
            _ => return Err(corrupt("cap_ratio without cap_window".to_string())),
        };
        Ok(PolicyVersion {
            remittance_rate: Ratio::parse(&rate).map_err(corrupt)?,
            chip,
            effective_from,
            restricted_allowed: allowed,
            cap,
            lab_test_required: lab,
            customer_approval_required: approval,
            source,
            // NULL: a version recorded before schema 4, when neither existed.
            us_supply_attestation_required: supply.unwrap_or(false),
            end_use_certificate_required: certificate.unwrap_or(false),
        })
    }
}

/// Every recorded version, ordered by chip and date.
pub fn all_versions(conn: &Connection) -> Result<Vec<PolicyVersion>> {
    let mut statement = conn.prepare_cached(&format!(
        "SELECT {SELECT_COLUMNS} FROM policy_version WHERE {NOT_WITHDRAWN} ORDER BY chip, effective_from"
    ))?;
    let stored = statement
        .query_map([], PolicyVersion::from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    stored.into_iter().map(PolicyVersion::from_stored).collect()
}

/// Every recorded version (withdrawn ones too) with its entry number, in
/// entry order (`verify`'s replay).
pub fn all_with_seq(conn: &Connection) -> Result<Vec<(i64, PolicyVersion)>> {
    let sql = format!("SELECT {SELECT_COLUMNS}, seq FROM policy_version ORDER BY seq");
    super::all_with_seq(
        conn,
        &sql,
        11,
        PolicyVersion::from_row,
        PolicyVersion::from_stored,
    )
}

/// Every recorded version with whether it was withdrawn, in entry order
/// (`policy show`).
pub fn versions_for_show(conn: &Connection) -> Result<Vec<(PolicyVersion, bool)>> {
    let mut statement = conn.prepare_cached(&format!(
        "SELECT {SELECT_COLUMNS}, NOT {NOT_WITHDRAWN} FROM policy_version ORDER BY chip, effective_from, seq"
    ))?;
    let stored = statement
        .query_map([], |row| {
            Ok((PolicyVersion::from_row(row)?, row.get::<_, bool>(11)?))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    stored
        .into_iter()
        .map(|(version, withdrawn)| Ok((PolicyVersion::from_stored(version)?, withdrawn)))
        .collect()
}

/// What `policy withdraw` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Withdrawn {
    /// The chip.
    pub chip: String,
    /// The withdrawn version's date.
    pub effective_from: NaiveDate,
}

/// `qledger policy withdraw` (SPEC §3.1): withdraws the version of `chip`
/// from `effective_from`, allowed only while that date is after the as-of
/// date and no sale, return or hold of the chip is dated on or after it.
pub fn withdraw(
    ledger: &mut crate::store::ledger::Ledger,
    chip: &str,
    effective_from: NaiveDate,
    reason: &str,
    as_of: NaiveDate,
) -> Result<Withdrawn> {
    let day = format_date(effective_from);
    if effective_from <= as_of {
        return Err(Error::BadInput(format!(
            "the version of {chip} from {day} took effect on or before the as-of date {}: \
             only a version not yet in force may be withdrawn (record a new version instead)",
            format_date(as_of)
        )));
    }
    ledger.write(as_of, |appender| {
        let conn = appender.conn();
        let seq = version_to_withdraw(conn, chip, &day)?;
        if let Some(last) = last_activity_date(conn, chip)? {
            if last >= effective_from {
                return Err(Error::BadInput(format!(
                    "{chip} has a sale, return or hold dated {} under the version from {day}; \
                     it can no longer be withdrawn",
                    format_date(last)
                )));
            }
        }
        appender.append(
            &crate::store::entry::POLICY_WITHDRAWAL,
            &[
                rusqlite::types::Value::Integer(seq),
                rusqlite::types::Value::Text(chip.to_string()),
                rusqlite::types::Value::Text(day.clone()),
                rusqlite::types::Value::Text(reason.to_string()),
                rusqlite::types::Value::Text(format_date(as_of)),
            ],
        )?;
        let withdrawn = Withdrawn {
            chip: chip.to_string(),
            effective_from,
        };
        Ok((withdrawn, true))
    })
}

/// The entry of the version of `chip` from `day` not yet withdrawn.
fn version_to_withdraw(conn: &Connection, chip: &str, day: &str) -> Result<i64> {
    let versions: Vec<(i64, bool)> = conn
        .prepare_cached(&format!(
            "SELECT seq, NOT {NOT_WITHDRAWN} FROM policy_version \
             WHERE chip = ?1 AND effective_from = ?2 ORDER BY seq"
        ))?
        .query_map((chip, day), |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    match versions.iter().find(|(_, withdrawn)| !withdrawn) {
        Some((seq, _)) => Ok(*seq),
        None if versions.is_empty() => Err(Error::BadInput(format!(
            "no policy version of {chip} takes effect on {day}; `qledger policy show` lists them"
        ))),
        None => Err(Error::BadInput(format!(
            "the version of {chip} from {day} is already withdrawn"
        ))),
    }
}

/// The chips any policy version names (SPEC §2: a chip is known once
/// classified; a withdrawn version still makes its chip known). A sale or
/// return of any other chip is malformed, so a typo never opens a product.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KnownChips(std::collections::BTreeSet<String>);

impl KnownChips {
    /// The chips named by the policy versions recorded in `conn`.
    pub fn load(conn: &Connection) -> Result<KnownChips> {
        let chips = conn
            .prepare_cached("SELECT DISTINCT chip FROM policy_version")?
            .query_map([], |row| row.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        Ok(KnownChips(chips))
    }

    /// Whether one chip is known, by one indexed lookup (the order desk asks
    /// for one chip per request); the whole list is read only to name it in
    /// the message when it is not.
    pub fn check_one(conn: &Connection, chip: &str) -> Result<std::result::Result<(), String>> {
        let known = conn
            .prepare_cached("SELECT 1 FROM policy_version WHERE chip = ?1 LIMIT 1")?
            .exists([chip])?;
        if known {
            return Ok(Ok(()));
        }
        Ok(KnownChips::load(conn)?.check(chip.to_string()).map(|_| ()))
    }

    /// `chip` (upper-case) if known; else the message naming the known chips.
    pub fn check(&self, chip: String) -> std::result::Result<String, String> {
        if self.0.contains(&chip) {
            return Ok(chip);
        }
        let known: Vec<&str> = self.0.iter().map(String::as_str).collect();
        Err(if known.is_empty() {
            format!("unknown chip {chip}: no policy version names any chip yet (import the policy first)")
        } else {
            format!("unknown chip {chip} (known chips: {})", known.join(", "))
        })
    }
}

/// Every version of one chip, oldest first.
pub fn versions_of(conn: &Connection, chip: &str) -> Result<Vec<PolicyVersion>> {
    let stored = conn
        .prepare_cached(&format!(
            "SELECT {SELECT_COLUMNS} FROM policy_version WHERE chip = ?1 AND {NOT_WITHDRAWN} \
             ORDER BY effective_from"
        ))?
        .query_map([chip], PolicyVersion::from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    stored.into_iter().map(PolicyVersion::from_stored).collect()
}

/// The version of `chip` in force on `date`: the latest with
/// `effective_from <= date`.
pub fn version_in_force(
    conn: &Connection,
    chip: &str,
    date: NaiveDate,
) -> Result<Option<PolicyVersion>> {
    let stored = conn
        .prepare_cached(&format!(
            "SELECT {SELECT_COLUMNS} FROM policy_version WHERE chip = ?1 AND effective_from <= ?2 \
             AND {NOT_WITHDRAWN} ORDER BY effective_from DESC LIMIT 1"
        ))?
        .query_row((chip, format_date(date)), PolicyVersion::from_row)
        .optional()?;
    stored.map(PolicyVersion::from_stored).transpose()
}

/// The latest date of any sale, return or hold of `chip` (a new version
/// must take effect after it). Sales come from the derived daily totals.
pub fn last_activity_date(conn: &Connection, chip: &str) -> Result<Option<NaiveDate>> {
    let latest: Option<String> = conn
        .prepare_cached(
            "SELECT max(d) FROM (SELECT max(day) AS d FROM derived_daily_units WHERE chip = ?1 \
             UNION ALL SELECT max(planned_date) FROM hold WHERE chip = ?1)",
        )?
        .query_row([chip], |row| row.get(0))?;
    latest
        .map(|text| parse_date(&text).map_err(Error::Integrity))
        .transpose()
}

/// The last day of the latest closed period, if any period is closed.
pub fn last_closed_day(
    conn: &Connection,
    kind: crate::period::PeriodKind,
) -> Result<Option<NaiveDate>> {
    let periods: Vec<String> = conn
        .prepare_cached("SELECT period FROM period_close")?
        .query_map([], |row| row.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let mut latest = None;
    for text in periods {
        let period = Period::parse(kind, &text).map_err(Error::Integrity)?;
        latest = latest.max(Some(period.last_day()));
    }
    Ok(latest)
}

/// Per-import context: the ledger's period kind, looked up once.
#[derive(Default)]
pub struct PolicyContext {
    last_closed_day: Option<Option<NaiveDate>>,
}

/// The `cap_ratio` and `cap_window` columns: `Some(None)` for no cap (the
/// window is then ignored); a window is required with a ratio.
fn parse_cap(row: &Row<'_>, problems: &mut Vec<RowProblem>) -> Option<Option<Cap>> {
    let line = row.line;
    let cap_ratio_text = row.get(3);
    if cap_ratio_text.is_empty() {
        return Some(None);
    }
    let cap_ratio = check(problems, line, "cap_ratio", Ratio::parse(cap_ratio_text));
    let cap_window = if row.get(4).is_empty() {
        let message = "is required when cap_ratio is given (period or cumulative)";
        problems.push(RowProblem::malformed(line, "cap_window", message));
        None
    } else {
        let choice = parse_choice(row.get(4), &["period", "cumulative"]);
        check(problems, line, "cap_window", choice).map(|name| {
            if name == "period" {
                CapWindow::Period
            } else {
                CapWindow::Cumulative
            }
        })
    };
    Some(Some(Cap {
        cap_ratio: cap_ratio?,
        cap_window: cap_window?,
    }))
}

impl ReferenceRow for PolicyVersion {
    type Context = PolicyContext;
    const KIND: EntryKind = POLICY_VERSION;
    const FILE_KIND: &'static str = "policy";
    const COLUMNS: &'static [ColumnSpec] = COLUMNS;
    const DATE_COLUMN: &'static str = "effective_from";

    fn parse(row: &Row<'_>, problems: &mut Vec<RowProblem>) -> Option<PolicyVersion> {
        let line = row.line;
        let chip = check(problems, line, "chip", parse_chip(row.get(0)));
        let effective_from = check(problems, line, "effective_from", parse_date(row.get(1)));
        let restricted_allowed =
            check(problems, line, "restricted_allowed", parse_bool(row.get(2)));
        let cap = parse_cap(row, problems);
        let remittance_rate = if row.get(5).is_empty() {
            problems.push(RowProblem::malformed(
                line,
                "remittance_rate",
                "is required (a rate in [0,1], 0 for none)",
            ));
            None
        } else {
            check(problems, line, "remittance_rate", Ratio::parse(row.get(5)))
        };
        let lab = check(problems, line, "lab_test_required", parse_bool(row.get(6)));
        let approval = check(
            problems,
            line,
            "customer_approval_required",
            parse_bool(row.get(7)),
        );
        let source = check(problems, line, "source", parse_text(row.get(8), true));
        let optional_flag = |index: usize, column: &str, problems: &mut Vec<RowProblem>| {
            let text = row.get(index);
            if text.is_empty() {
                Some(false) // absent column or empty field: the default
            } else {
                check(problems, line, column, parse_bool(text))
            }
        };
        let supply = optional_flag(9, "us_supply_attestation_required", problems);
        let certificate = optional_flag(10, "end_use_certificate_required", problems);
        Some(PolicyVersion {
            chip: chip?,
            effective_from: effective_from?,
            restricted_allowed: restricted_allowed?,
            cap: cap?,
            remittance_rate: remittance_rate?,
            lab_test_required: lab?,
            customer_approval_required: approval?,
            source: source?,
            us_supply_attestation_required: supply?,
            end_use_certificate_required: certificate?,
        })
    }

    fn identity(&self) -> (String, NaiveDate) {
        (self.chip.clone(), self.effective_from)
    }

    fn load_recorded(conn: &Connection, identity: &(String, NaiveDate)) -> Result<Option<Self>> {
        let stored = conn
            .prepare_cached(&format!(
                "SELECT {SELECT_COLUMNS} FROM policy_version WHERE chip = ?1 AND effective_from = ?2 \
                 AND {NOT_WITHDRAWN}"
            ))?
            .query_row((&identity.0, format_date(identity.1)), PolicyVersion::from_row)
            .optional()?;
        stored.map(PolicyVersion::from_stored).transpose()
    }

    fn check(
        &self,
        conn: &Connection,
        context: &mut PolicyContext,
        _as_of: NaiveDate,
    ) -> Result<Option<(&'static str, String)>> {
        if let Some(last) = last_activity_date(conn, &self.chip)? {
            if self.effective_from <= last {
                return Ok(Some((
                    "effective_from",
                    format!(
                        "{} has a sale, return or hold recorded on {}; a new version must take effect after it (rules are never applied retroactively)",
                        self.chip,
                        format_date(last)
                    ),
                )));
            }
        }
        if context.last_closed_day.is_none() {
            let kind = crate::store::ledger::read_settings(conn)?.period_kind;
            context.last_closed_day = Some(last_closed_day(conn, kind)?);
        }
        if let Some(Some(closed)) = context.last_closed_day {
            if self.effective_from <= closed {
                return Ok(Some((
                    "effective_from",
                    format!(
                        "periods are closed through {}; a new version must take effect after every closed period",
                        format_date(closed)
                    ),
                )));
            }
        }
        Ok(None)
    }

    fn values(&self) -> Vec<Value> {
        vec![
            Value::Text(self.chip.clone()),
            Value::Text(format_date(self.effective_from)),
            Value::Integer(self.restricted_allowed as i64),
            self.cap
                .map_or(Value::Null, |cap| Value::Text(cap.cap_ratio.to_string())),
            self.cap.map_or(Value::Null, |cap| {
                Value::Text(cap.cap_window.name().to_string())
            }),
            Value::Text(self.remittance_rate.to_string()),
            Value::Integer(self.lab_test_required as i64),
            Value::Integer(self.customer_approval_required as i64),
            Value::Text(self.source.clone()),
            Value::Integer(self.us_supply_attestation_required as i64),
            Value::Integer(self.end_use_certificate_required as i64),
        ]
    }
}
