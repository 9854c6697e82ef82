//! Restricted-party screening (SPEC §3.11): snapshots of a list (the
//! Consolidated Screening List or a company's own), the normalised name
//! N(s), hits and potential matches, and clearances.

use crate::error::{Error, Result, RowProblem};
use crate::input::csv::{ColumnSpec, Row};
use crate::input::reference_import::{append_batch, check, read_reference_rows, ImportSummary};
use crate::input::values::{parse_identifier, parse_text};
use crate::period::{format_date, parse_date};
use crate::store::entry::{SCREENING_CLEARANCE, SCREENING_ENTRY, SCREENING_SNAPSHOT};
use crate::store::ledger::{Appender, Ledger};
use chrono::NaiveDate;
use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::Path;
use unicode_general_category::{get_general_category, GeneralCategory};
use unicode_normalization::UnicodeNormalization;

/// Words N(s) drops (SPEC §3.11): legal forms and fillers.
pub const DROPPED_WORDS: &[&str] = &[
    "co",
    "company",
    "corp",
    "corporation",
    "inc",
    "incorporated",
    "ltd",
    "limited",
    "llc",
    "plc",
    "gmbh",
    "ag",
    "sa",
    "bv",
    "holding",
    "holdings",
    "group",
    "the",
];

/// Most characters of `list` (SPEC §4).
pub const LIST_CHARS_MAX: usize = 128;
/// Most characters of `name` (SPEC §4).
pub const NAME_CHARS_MAX: usize = 512;

/// The normalised name N(s) (SPEC §3.11): NFKC, lower-cased, every
/// character that is not a letter (category L) or digit (Nd) a space, the
/// dropped words removed, the rest joined by single spaces.
pub fn normalise(name: &str) -> String {
    let folded: String = name.nfkc().collect::<String>().to_lowercase();
    let spaced: String = folded
        .chars()
        .map(|c| if is_letter_or_digit(c) { c } else { ' ' })
        .collect();
    let kept: Vec<&str> = spaced
        .split(' ')
        .filter(|word| !word.is_empty() && !DROPPED_WORDS.contains(word))
        .collect();
    kept.join(" ")
}

fn is_letter_or_digit(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_alphanumeric();
    }
    matches!(
        get_general_category(c),
        GeneralCategory::UppercaseLetter
            | GeneralCategory::LowercaseLetter
            | GeneralCategory::TitlecaseLetter
            | GeneralCategory::ModifierLetter
            | GeneralCategory::OtherLetter
            | GeneralCategory::DecimalNumber
    )
}

/// One row of a list snapshot, as written (trimmed).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ListedParty {
    /// The list, e.g. `Entity List`.
    pub list: String,
    /// The entry's id within its list.
    pub entry_id: String,
    /// The listed name.
    pub name: String,
    /// Other names, `;`-separated (may be empty).
    pub alt_names: String,
    /// Two letters or empty.
    pub country: String,
}

impl ListedParty {
    /// The name and every alt name, as written, non-empty.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.name.as_str()).chain(
            self.alt_names
                .split(';')
                .map(str::trim)
                .filter(|name| !name.is_empty()),
        )
    }
}

/// The file's columns (SPEC §4).
pub const COLUMNS: &[ColumnSpec] = &[
    ColumnSpec {
        name: "list",
        required: true,
    },
    ColumnSpec {
        name: "entry_id",
        required: true,
    },
    ColumnSpec {
        name: "name",
        required: true,
    },
    ColumnSpec {
        name: "alt_names",
        required: true,
    },
    ColumnSpec {
        name: "country",
        required: true,
    },
];

fn parse_bounded(text: &str, chars_max: usize) -> std::result::Result<String, String> {
    let chars = text.chars().count();
    if chars > chars_max {
        return Err(format!("is {chars} characters long; at most {chars_max}"));
    }
    parse_text(text, true)
}

fn parse_country(text: &str) -> std::result::Result<String, String> {
    if text.is_empty() || (text.len() == 2 && text.bytes().all(|b| b.is_ascii_alphabetic())) {
        Ok(text.to_string())
    } else {
        Err(format!("'{text}' is not two letters (or empty)"))
    }
}

fn parse_row(row: &Row<'_>, problems: &mut Vec<RowProblem>) -> Option<ListedParty> {
    let line = row.line;
    let list = check(
        problems,
        line,
        "list",
        parse_bounded(row.get(0), LIST_CHARS_MAX),
    );
    let entry_id = check(problems, line, "entry_id", parse_identifier(row.get(1)));
    let name = check(
        problems,
        line,
        "name",
        parse_bounded(row.get(2), NAME_CHARS_MAX),
    );
    let alt_names = check(problems, line, "alt_names", parse_text(row.get(3), false));
    let country = check(problems, line, "country", parse_country(row.get(4)));
    Some(ListedParty {
        list: list?,
        entry_id: entry_id?,
        name: name?,
        alt_names: alt_names?,
        country: country?,
    })
}

/// The date of the latest recorded snapshot, if any.
pub fn latest_snapshot(conn: &Connection) -> Result<Option<NaiveDate>> {
    let text: Option<String> = conn
        .prepare_cached("SELECT max(effective_from) FROM screening_snapshot")?
        .query_row([], |row| row.get(0))?;
    text.map(|t| parse_date(&t).map_err(Error::Integrity))
        .transpose()
}

/// The dates of every recorded snapshot, oldest first.
pub fn snapshot_dates(conn: &Connection) -> Result<Vec<NaiveDate>> {
    let texts: Vec<String> = conn
        .prepare_cached("SELECT effective_from FROM screening_snapshot ORDER BY effective_from")?
        .query_map([], |row| row.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    texts
        .iter()
        .map(|t| parse_date(t).map_err(Error::Integrity))
        .collect()
}

/// The date of the snapshot in force on `date`, if any.
pub fn snapshot_on(conn: &Connection, date: NaiveDate) -> Result<Option<NaiveDate>> {
    let text: Option<String> = conn
        .prepare_cached(
            "SELECT max(effective_from) FROM screening_snapshot WHERE effective_from <= ?1",
        )?
        .query_row([format_date(date)], |row| row.get(0))?;
    text.map(|t| parse_date(&t).map_err(Error::Integrity))
        .transpose()
}

/// Every row of the snapshot from `effective_from`, with its entry seq.
pub fn snapshot_rows(
    conn: &Connection,
    effective_from: NaiveDate,
) -> Result<Vec<(i64, ListedParty)>> {
    let rows = conn
        .prepare_cached(
            "SELECT seq, list, entry_id, name, alt_names, country FROM screening_entry \
             WHERE effective_from = ?1 ORDER BY seq",
        )?
        .query_map([format_date(effective_from)], |row| {
            Ok((
                row.get(0)?,
                ListedParty {
                    list: row.get(1)?,
                    entry_id: row.get(2)?,
                    name: row.get(3)?,
                    alt_names: row.get(4)?,
                    country: row.get(5)?,
                },
            ))
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok(rows)
}

/// The `derived_screening_names` rows of one snapshot row: (N(name),
/// listed name) for its name and alt names, N not empty, each once.
pub fn name_keys(party: &ListedParty) -> BTreeSet<(String, String)> {
    party
        .names()
        .map(|name| (normalise(name), name.to_string()))
        .filter(|(key, _)| !key.is_empty())
        .collect()
}

/// Every `derived_screening_names` row the screening entries give:
/// (effective_from, name_key, entry_seq, listed_name). Used by `verify`.
pub fn names_from_entries(conn: &Connection) -> Result<BTreeSet<(String, String, i64, String)>> {
    let mut statement = conn.prepare(
        "SELECT seq, effective_from, list, entry_id, name, alt_names, country FROM screening_entry",
    )?;
    let mut rows = statement.query([])?;
    let mut names = BTreeSet::new();
    while let Some(row) = rows.next()? {
        let seq: i64 = row.get(0)?;
        let from: String = row.get(1)?;
        let party = ListedParty {
            list: row.get(2)?,
            entry_id: row.get(3)?,
            name: row.get(4)?,
            alt_names: row.get(5)?,
            country: row.get(6)?,
        };
        for (key, listed) in name_keys(&party) {
            names.insert((from.clone(), key, seq, listed));
        }
    }
    Ok(names)
}

/// `qledger screening import FILE [--effective D]` (SPEC §3.11): records a
/// full snapshot in force from `effective` (default: the as-of date).
/// Atomic; the identical snapshot again with the same date is a duplicate.
pub fn import_snapshot(
    ledger: &mut Ledger,
    path: &Path,
    file_label: &str,
    effective: Option<NaiveDate>,
    as_of: NaiveDate,
) -> Result<ImportSummary> {
    let effective = effective.unwrap_or(as_of);
    if effective > as_of {
        return Err(Error::BadInput(format!(
            "--effective {} is after the as-of date {}: a snapshot is in force from a date already reached",
            format_date(effective),
            format_date(as_of)
        )));
    }
    let (parsed, mut summary) = read_reference_rows(path, file_label, COLUMNS, parse_row)?;
    if summary.sha256.is_empty() {
        return Ok(summary); // header problems
    }
    refuse_repeated_entries(&parsed, &mut summary);
    summary.settle_problems();
    if !summary.errors.is_empty() {
        return Ok(summary);
    }
    ledger.write(as_of, |appender| {
        let parties: Vec<ListedParty> = parsed.into_iter().map(|(_, party)| party).collect();
        if let Some(latest) = latest_snapshot(appender.conn())? {
            if latest == effective {
                return same_date_snapshot(appender.conn(), effective, &parties, summary);
            }
            if latest > effective {
                return Err(Error::BadInput(format!(
                    "a snapshot is already in force from {}; a new one must take effect after it (not {})",
                    format_date(latest),
                    format_date(effective)
                )));
            }
        }
        append_snapshot(appender, effective, &parties, &mut summary)?;
        append_batch(appender, "screening", &summary, appender.first_seq(), as_of)?;
        Ok((summary, true))
    })
}

/// An `entry_id` is unique per `list` within the file.
fn refuse_repeated_entries(parsed: &[(u64, ListedParty)], summary: &mut ImportSummary) {
    let mut seen: HashMap<(&str, &str), u64> = HashMap::new();
    for (line, party) in parsed {
        let key = (party.list.as_str(), party.entry_id.as_str());
        if let Some(first) = seen.get(&key) {
            summary.add_row_problems(vec![RowProblem::malformed(
                *line,
                "entry_id",
                format!(
                    "{} of {} is already on line {first}; an entry id is unique per list",
                    party.entry_id, party.list
                ),
            )]);
        } else {
            seen.insert(key, *line);
        }
    }
}

/// A file for the date of the latest snapshot: a duplicate when its rows
/// equal the snapshot's (in any order), else bad input.
fn same_date_snapshot(
    conn: &Connection,
    effective: NaiveDate,
    parties: &[ListedParty],
    mut summary: ImportSummary,
) -> Result<(ImportSummary, bool)> {
    let recorded: HashSet<ListedParty> = snapshot_rows(conn, effective)?
        .into_iter()
        .map(|(_, party)| party)
        .collect();
    let given: HashSet<ListedParty> = parties.iter().cloned().collect();
    if recorded != given || given.len() != parties.len() {
        return Err(Error::BadInput(format!(
            "a different snapshot is already in force from {}; a new snapshot needs a later --effective date",
            format_date(effective)
        )));
    }
    summary.duplicates = summary.rows;
    Ok((summary, false))
}

fn append_snapshot(
    appender: &mut Appender<'_>,
    effective: NaiveDate,
    parties: &[ListedParty],
    summary: &mut ImportSummary,
) -> Result<()> {
    let day = format_date(effective);
    let mut names = Vec::new();
    for party in parties {
        let seq = appender.append(
            &SCREENING_ENTRY,
            &[
                Value::Text(day.clone()),
                Value::Text(party.list.clone()),
                Value::Text(party.entry_id.clone()),
                Value::Text(party.name.clone()),
                Value::Text(party.alt_names.clone()),
                Value::Text(party.country.clone()),
            ],
        )?;
        for (key, listed) in name_keys(party) {
            names.push((key, seq, listed));
        }
    }
    appender.append(
        &SCREENING_SNAPSHOT,
        &[
            Value::Text(day.clone()),
            Value::Integer(parties.len() as i64),
        ],
    )?;
    let mut insert = appender.conn().prepare_cached(
        "INSERT INTO derived_screening_names (effective_from, name_key, entry_seq, listed_name) \
         VALUES (?1, ?2, ?3, ?4)",
    )?;
    for (key, seq, listed) in names {
        insert.execute((&day, key, seq, listed))?;
    }
    summary.inserted = parties.len() as u64;
    Ok(())
}

/// One listed entry a customer's name matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    /// The list.
    pub list: String,
    /// The entry's id.
    pub entry_id: String,
    /// The name or alt name that matched, as written.
    pub listed_name: String,
    /// Whether a clearance for this customer and entry is recorded.
    pub cleared: bool,
}

/// The hits of `customer_id`, named `name` on the date, in the snapshot
/// from `snapshot` (SPEC §3.11): entries with a name or alt name whose
/// N equals N(`name`), one per entry, in entry order.
pub fn hits_of(
    conn: &Connection,
    customer_id: &str,
    name: &str,
    snapshot: NaiveDate,
) -> Result<Vec<Hit>> {
    let key = normalise(name);
    if key.is_empty() {
        return Ok(Vec::new());
    }
    let found: Vec<(String, String, String)> = conn
        .prepare_cached(
            "SELECT e.list, e.entry_id, min(d.listed_name) FROM derived_screening_names AS d \
             JOIN screening_entry AS e ON e.seq = d.entry_seq \
             WHERE d.effective_from = ?1 AND d.name_key = ?2 GROUP BY e.seq ORDER BY e.seq",
        )?
        .query_map((format_date(snapshot), &key), |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?))
        })?
        .collect::<rusqlite::Result<_>>()?;
    let mut hits = Vec::with_capacity(found.len());
    for (list, entry_id, listed_name) in found {
        let cleared = is_cleared(conn, customer_id, &list, &entry_id)?;
        hits.push(Hit {
            list,
            entry_id,
            listed_name,
            cleared,
        });
    }
    Ok(hits)
}

/// Whether a clearance of `customer_id` for (`list`, `entry_id`) is recorded.
pub fn is_cleared(
    conn: &Connection,
    customer_id: &str,
    list: &str,
    entry_id: &str,
) -> Result<bool> {
    Ok(conn
        .prepare_cached(
            "SELECT 1 FROM screening_clearance WHERE customer_id = ?1 AND list = ?2 AND entry_id = ?3",
        )?
        .exists((customer_id, list, entry_id))?)
}

/// What `screening clear` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clearance {
    /// The customer.
    pub customer_id: String,
    /// The list.
    pub list: String,
    /// The entry.
    pub entry_id: String,
    /// The officer's reason.
    pub reason: String,
    /// The pair was cleared before: nothing appended.
    pub already_cleared: bool,
}

/// `qledger screening clear` (SPEC §3.11): records that `customer_id` is
/// not the listed party (`list`, `entry_id`). The customer must exist and
/// the entry be in the snapshot in force on the as-of date.
pub fn clear(
    ledger: &mut Ledger,
    customer_id: &str,
    list: &str,
    entry_id: &str,
    reason: &str,
    as_of: NaiveDate,
) -> Result<Clearance> {
    ledger.write(as_of, |appender| {
        let conn = appender.conn();
        let known = conn
            .prepare_cached("SELECT 1 FROM customer_event WHERE customer_id = ?1")?
            .exists([customer_id])?;
        if !known {
            return Err(Error::BadInput(format!(
                "no customer {customer_id} is recorded; `qledger customers show` lists them"
            )));
        }
        let Some(snapshot) = snapshot_on(conn, as_of)? else {
            return Err(Error::BadInput(format!(
                "no screening snapshot is in force on {}; nothing to clear",
                format_date(as_of)
            )));
        };
        let listed = conn
            .prepare_cached(
                "SELECT 1 FROM screening_entry WHERE effective_from = ?1 AND list = ?2 AND entry_id = ?3",
            )?
            .exists((format_date(snapshot), list, entry_id))?;
        if !listed {
            return Err(Error::BadInput(format!(
                "the snapshot in force on {} (from {}) has no entry {entry_id} in list '{list}'",
                format_date(as_of),
                format_date(snapshot)
            )));
        }
        let mut clearance = Clearance {
            customer_id: customer_id.to_string(),
            list: list.to_string(),
            entry_id: entry_id.to_string(),
            reason: reason.to_string(),
            already_cleared: is_cleared(conn, customer_id, list, entry_id)?,
        };
        if clearance.already_cleared {
            clearance.reason = recorded_reason(conn, customer_id, list, entry_id)?;
            return Ok((clearance, false));
        }
        appender.append(
            &SCREENING_CLEARANCE,
            &[
                Value::Text(customer_id.to_string()),
                Value::Text(list.to_string()),
                Value::Text(entry_id.to_string()),
                Value::Text(reason.to_string()),
                Value::Text(format_date(as_of)),
            ],
        )?;
        Ok((clearance, true))
    })
}

fn recorded_reason(
    conn: &Connection,
    customer_id: &str,
    list: &str,
    entry_id: &str,
) -> Result<String> {
    Ok(conn
        .prepare_cached(
            "SELECT reason FROM screening_clearance WHERE customer_id = ?1 AND list = ?2 AND entry_id = ?3",
        )?
        .query_row((customer_id, list, entry_id), |row| row.get(0))
        .optional()?
        .unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalised_names_fold_case_punctuation_legal_forms_and_width() {
        assert_eq!(
            normalise("Gamma Data Services Co., Ltd."),
            "gamma data services"
        );
        assert_eq!(
            normalise("GAMMA DATA SERVICES LIMITED"),
            "gamma data services"
        );
        assert_eq!(
            normalise("The Gamma-Data  Services (Holdings) Group"),
            "gamma data services"
        );
        // Full-width letters are their ASCII forms under NFKC.
        assert_eq!(normalise("Ｇａｍｍａ Ｄａｔａ"), "gamma data");
        // Letters of any script are kept; other symbols become spaces.
        assert_eq!(normalise("北京 数据 有限公司"), "北京 数据 有限公司");
        assert_eq!(
            normalise("Ünïcode™ Systems®"),
            "ünïcodetm systems",
            "NFKC: ™ is TM"
        );
        // Only dropped words, or nothing: empty, and never a hit.
        assert_eq!(normalise("Co., Ltd."), "");
        assert_eq!(normalise(""), "");
        // A combining mark (category Mn) is not a letter.
        assert_eq!(normalise("a\u{0301}b"), "áb", "NFKC composes it first");
        assert_eq!(
            normalise("x\u{0327}\u{0301}y"),
            "x y",
            "no precomposed form: marks split"
        );
    }

    #[test]
    fn a_party_lists_its_name_and_alt_names_once_each() {
        let party = ListedParty {
            list: "Entity List".into(),
            entry_id: "EL-1".into(),
            name: "Gamma Data Services Co. Ltd.".into(),
            alt_names: " GAMMA DATA SERVICES LIMITED ; ;Gamma HK".into(),
            country: "CN".into(),
        };
        let keys: Vec<String> = name_keys(&party).into_iter().map(|(key, _)| key).collect();
        assert_eq!(
            keys,
            vec!["gamma data services", "gamma data services", "gamma hk"]
        );
    }
}
