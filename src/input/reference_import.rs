//! What every CSV import shares: opening the file, the summary it answers
//! with (SPEC §5 import JSON), and the import batch entry.

use crate::error::{Error, Result, RowProblem};
use crate::input::csv::{ColumnSpec, HeaderError, RowRead, TableReader};
use crate::period::format_date;
use crate::store::entry::IMPORT_BATCH;
use crate::store::ledger::Appender;
use chrono::NaiveDate;
use rusqlite::types::Value;
use std::collections::BTreeSet;
use std::fs::File;
use std::io::BufReader;
use std::path::Path;

/// Most problems an import keeps for its JSON `errors` (SPEC §5); the rest
/// are counted in `errors_omitted` (and were streamed to the sink).
pub const ERRORS_KEPT_MAX: usize = 10_000;

/// Where problems go as they are found (the CLI: stderr, as
/// `FILE:LINE: column: message`), so memory does not grow with them.
type ProblemSink = Box<dyn Fn(&str, &RowProblem) + Send + Sync>;
static PROBLEM_SINK: std::sync::RwLock<Option<ProblemSink>> = std::sync::RwLock::new(None);

/// Streams every problem any import finds to `sink`, with the file's label.
pub fn set_problem_sink(sink: ProblemSink) {
    if let Ok(mut slot) = PROBLEM_SINK.write() {
        *slot = Some(sink);
    }
}

fn emit_problem(file: &str, problem: &RowProblem) {
    if let Ok(slot) = PROBLEM_SINK.read() {
        if let Some(sink) = slot.as_ref() {
            sink(file, problem);
        }
    }
}

/// Most data rows a reference file (policy, customers, lots, supply,
/// screening) may hold.
pub const REFERENCE_ROWS_MAX: u64 = 1_000_000;

/// The outcome of one import, as SPEC §5 shapes it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportSummary {
    /// The file as named on the command line.
    pub file: String,
    /// SHA-256 of the file's bytes, lower-case hex (empty if unread).
    pub sha256: String,
    /// Data rows read (blank lines and the header excluded).
    pub rows: u64,
    /// Entries inserted for rows (0 when an atomic import refuses).
    pub inserted: u64,
    /// Rows equal to recorded ones (or to earlier rows of the file).
    pub duplicates: u64,
    /// Rows refused or malformed.
    pub rejected: u64,
    /// Every problem, in line order.
    pub errors: Vec<RowProblem>,
    /// Rows recorded under `--accept-violations`, when that mode is on.
    pub accepted_violations: Option<u64>,
    /// `--dry-run`: nothing was written; the figures are what would be.
    pub dry_run: bool,
    /// The file itself was refused (its header): no row was read.
    pub file_level: bool,
    /// Problems found beyond the first `ERRORS_KEPT_MAX`.
    pub errors_omitted: u64,
    /// Rows with at least one problem (counted as they are found).
    pub problem_rows: u64,
    /// Rows with a malformed value (counted as they are found).
    pub malformed_rows: u64,
}

/// `1 row`, `2 rows`.
pub fn plural(count: u64, one: &str, many: &str) -> String {
    format!("{count} {}", if count == 1 { one } else { many })
}

impl ImportSummary {
    /// Whether any problem is a malformed row (exit 2) rather than a refusal.
    pub fn has_malformed(&self) -> bool {
        self.malformed_rows > 0 || self.errors.iter().any(|problem| problem.rule.is_none())
    }

    /// Adds the problems of one row (all at once): streamed to the sink,
    /// kept for the JSON up to `ERRORS_KEPT_MAX`, counted.
    pub fn add_row_problems(&mut self, problems: Vec<RowProblem>) {
        if problems.is_empty() {
            return;
        }
        self.problem_rows += 1;
        if problems.iter().any(|problem| problem.rule.is_none()) {
            self.malformed_rows += 1;
        }
        for problem in problems {
            self.add_problem(problem);
        }
    }

    /// Adds one problem that is not a row's (a file-level one).
    pub fn add_problem(&mut self, problem: RowProblem) {
        emit_problem(&self.file, &problem);
        if self.errors.len() < ERRORS_KEPT_MAX {
            self.errors.push(problem);
        } else {
            self.errors_omitted += 1;
        }
    }

    /// Counts the rows with problems as `rejected` and sorts the problems kept.
    pub fn settle_problems(&mut self) {
        self.errors.sort_by_key(|problem| problem.line);
        let lines: BTreeSet<u64> = self.errors.iter().map(|p| p.line).collect();
        self.rejected = if self.file_level {
            0
        } else {
            self.problem_rows.max(lines.len() as u64)
        };
    }
}

/// Opens `path` as a table with `specs`. On a header problem returns the
/// summary to report (with the file's hash) as `Err(Ok(summary))`; on an
/// unreadable file `Err(Err(error))`.
pub fn open_table(
    path: &Path,
    file_label: &str,
    specs: &'static [ColumnSpec],
) -> std::result::Result<TableReader<BufReader<File>>, std::result::Result<Box<ImportSummary>, Error>>
{
    refuse_non_regular(path, file_label).map_err(Err)?;
    let file = File::open(path)
        .map_err(|err| Err(Error::BadInput(format!("cannot read {file_label}: {err}"))))?;
    match TableReader::open(BufReader::with_capacity(1 << 16, file), specs) {
        Ok(table) => Ok(table),
        Err(HeaderError::Io(err)) => Err(Err(Error::BadInput(format!(
            "cannot read {file_label}: {err}"
        )))),
        Err(HeaderError::Problems(problems)) => {
            let sha256 = sha256_of_file(path).map_err(Err)?;
            let mut summary = ImportSummary {
                file: file_label.to_string(),
                sha256,
                ..ImportSummary::default()
            };
            // A header problem is about the file, not a row (SPEC §5).
            summary.file_level = true;
            if let Some(hint) = another_kind(path, specs) {
                summary.add_problem(RowProblem::malformed(1, "header", hint));
            }
            for problem in problems {
                summary.add_problem(problem);
            }
            summary.settle_problems();
            Err(Ok(Box::new(summary)))
        }
    }
}

/// When a file's header has every required column of another kind of
/// file, which command imports it: a sales file given to `policy import`
/// gets "this looks like a sales file".
fn another_kind(path: &Path, specs: &[ColumnSpec]) -> Option<String> {
    use std::io::{BufRead, Read};
    let mut first = String::new();
    let file = File::open(path).ok()?;
    BufReader::new(file.take(1 << 16))
        .read_line(&mut first)
        .ok()?;
    let names: Vec<String> = first
        .trim_start_matches('\u{feff}')
        .split(',')
        .map(|name| name.trim().trim_matches('"').to_ascii_lowercase())
        .collect();
    let kinds: [(&[ColumnSpec], &str, &str); 6] = [
        (crate::records::sales::COLUMNS, "sales", "qledger import"),
        (
            crate::records::policy::COLUMNS,
            "policy",
            "qledger policy import",
        ),
        (
            crate::records::customers::COLUMNS,
            "customers",
            "qledger customers import",
        ),
        (crate::records::lots::COLUMNS, "lots", "qledger lots import"),
        (
            crate::records::supply::COLUMNS,
            "supply",
            "qledger supply import",
        ),
        (
            crate::records::screening::COLUMNS,
            "screening list",
            "qledger screening import",
        ),
    ];
    kinds
        .iter()
        .filter(|(columns, _, _)| !std::ptr::eq(*columns, specs))
        .find(|(columns, _, _)| {
            columns
                .iter()
                .filter(|spec| spec.required)
                .all(|spec| names.iter().any(|name| name == spec.name))
        })
        .map(|(_, kind, command)| {
            format!("this looks like a {kind} file: import it with `{command}`")
        })
}

/// Refuses an input that is not a regular file (SPEC §5): a FIFO would
/// block and `/dev/zero` never end, and an import reads its file twice.
pub fn refuse_non_regular(path: &Path, file_label: &str) -> Result<()> {
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_file() => Ok(()),
        Ok(_) => Err(Error::BadInput(format!(
            "{file_label} is not a regular file (a pipe, device or directory); qledger imports files"
        ))),
        Err(err) => Err(Error::BadInput(format!("cannot read {file_label}: {err}"))),
    }
}

/// SHA-256 of a whole file, hex.
pub fn sha256_of_file(path: &Path) -> Result<String> {
    use sha2::{Digest, Sha256};
    let mut file = File::open(path)
        .map_err(|err| Error::BadInput(format!("cannot read {}: {err}", path.display())))?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher)
        .map_err(|err| Error::Environment(format!("cannot read {}: {err}", path.display())))?;
    Ok(hex::encode(hasher.finalize()))
}

/// Reads every row of a reference table, parsing each with `parse_row`;
/// returns the parsed rows (with their lines) and the summary so far.
pub fn read_reference_rows<T>(
    path: &Path,
    file_label: &str,
    specs: &'static [ColumnSpec],
    mut parse_row: impl FnMut(&crate::input::csv::Row<'_>, &mut Vec<RowProblem>) -> Option<T>,
) -> Result<(Vec<(u64, T)>, ImportSummary)> {
    let mut table = match open_table(path, file_label, specs) {
        Ok(table) => table,
        Err(Ok(summary)) => return Ok((Vec::new(), *summary)),
        Err(Err(error)) => return Err(error),
    };
    let mut parsed = Vec::new();
    let mut summary = ImportSummary {
        file: file_label.to_string(),
        ..ImportSummary::default()
    };
    loop {
        match table.next_row() {
            Ok(None) => break,
            Ok(Some(row)) => {
                summary.rows += 1;
                if summary.rows > REFERENCE_ROWS_MAX {
                    summary.add_problem(RowProblem::malformed(
                        row.line,
                        "row",
                        format!("a reference file may hold at most {REFERENCE_ROWS_MAX} rows"),
                    ));
                    break;
                }
                let mut problems = Vec::new();
                if let Some(value) = parse_row(&row, &mut problems) {
                    if problems.is_empty() {
                        parsed.push((row.line, value));
                    }
                }
                summary.add_row_problems(problems);
            }
            Err(RowRead::Problems(problems)) => {
                summary.rows += 1;
                summary.add_row_problems(problems);
            }
            Err(RowRead::Io(err)) => {
                return Err(Error::BadInput(format!("cannot read {file_label}: {err}")))
            }
        }
    }
    let (sha256, _) = table
        .finish()
        .map_err(|err| Error::BadInput(format!("cannot read {file_label}: {err}")))?;
    summary.sha256 = sha256;
    Ok((parsed, summary))
}

/// Appends the import batch entry for the entries `from..=to` (SPEC §5).
pub fn append_batch(
    appender: &mut Appender<'_>,
    file_kind: &str,
    summary: &ImportSummary,
    entries_from: i64,
    as_of: NaiveDate,
) -> Result<i64> {
    let entries_to = appender.next_seq() - 1;
    debug_assert!(
        entries_to >= entries_from,
        "a batch covers at least one entry"
    );
    appender.append(
        &IMPORT_BATCH,
        &[
            Value::Text(file_kind.to_string()),
            Value::Text(summary.file.clone()),
            Value::Text(summary.sha256.clone()),
            Value::Integer(summary.rows as i64),
            Value::Integer(entries_from),
            Value::Integer(entries_to),
            Value::Text(format_date(as_of)),
        ],
    )
}

/// Turns a value parser's message into a problem for `column` at `line`.
pub fn check<T>(
    problems: &mut Vec<RowProblem>,
    line: u64,
    column: &str,
    result: std::result::Result<T, String>,
) -> Option<T> {
    match result {
        Ok(value) => Some(value),
        Err(message) => {
            problems.push(RowProblem::malformed(line, column, message));
            None
        }
    }
}

/// A kind of reference row (policy version, customer event, lot event):
/// identified by a key and a date, duplicate if identical, conflict if not.
pub trait ReferenceRow: Clone + PartialEq + Sized {
    /// Per-import state the rules need (e.g. a lot's chip seen earlier in the file).
    type Context: Default;
    /// The entry kind rows become.
    const KIND: crate::store::entry::EntryKind;
    /// `file_kind` of the import batch.
    const FILE_KIND: &'static str;
    /// The file's columns.
    const COLUMNS: &'static [ColumnSpec];
    /// The column named in duplicate-conflict messages.
    const DATE_COLUMN: &'static str;

    /// Parses one row, pushing every problem.
    fn parse(row: &crate::input::csv::Row<'_>, problems: &mut Vec<RowProblem>) -> Option<Self>;
    /// The identity: (id, date); two rows with one identity are one event.
    fn identity(&self) -> (String, NaiveDate);
    /// The recorded row with this identity, if any.
    fn load_recorded(
        conn: &rusqlite::Connection,
        identity: &(String, NaiveDate),
    ) -> Result<Option<Self>>;
    /// The rules beyond identity, on the import's as-of date; returns a
    /// problem (column, message) if broken.
    fn check(
        &self,
        conn: &rusqlite::Connection,
        context: &mut Self::Context,
        as_of: NaiveDate,
    ) -> Result<Option<(&'static str, String)>>;
    /// The entry's column values, in `KIND.columns` order.
    fn values(&self) -> Vec<Value>;
}

/// Imports a reference file atomically: any problem is bad input and
/// nothing is written; identical rows are duplicates and append nothing.
pub fn import_reference<T: ReferenceRow>(
    ledger: &mut crate::store::ledger::Ledger,
    path: &Path,
    file_label: &str,
    as_of: NaiveDate,
) -> Result<ImportSummary> {
    let (parsed, mut summary) = read_reference_rows(path, file_label, T::COLUMNS, T::parse)?;
    if summary.sha256.is_empty() {
        // Header problems: nothing else to check.
        return Ok(summary);
    }
    let summary = ledger.write(as_of, |appender| {
        let mut seen: std::collections::HashMap<(String, NaiveDate), (u64, T)> =
            std::collections::HashMap::new();
        let mut context = T::Context::default();
        let mut pending = Vec::new();
        for (line, row) in parsed {
            let identity = row.identity();
            if let Some((first_line, earlier)) = seen.get(&identity) {
                if *earlier == row {
                    summary.duplicates += 1;
                } else {
                    summary.add_row_problems(vec![RowProblem::malformed(
                        line,
                        T::DATE_COLUMN,
                        format!(
                            "conflicts with line {first_line}: {} already has a different event on {}",
                            identity.0, identity.1
                        ),
                    )]);
                }
                continue;
            }
            if let Some(recorded) = T::load_recorded(appender.conn(), &identity)? {
                if recorded == row {
                    summary.duplicates += 1;
                } else {
                    summary.add_row_problems(vec![RowProblem::malformed(
                        line,
                        T::DATE_COLUMN,
                        format!(
                            "conflicts with the recorded entry: {} already has a different event on {} (corrections are new events on a new date)",
                            identity.0, identity.1
                        ),
                    )]);
                }
                continue;
            }
            if let Some((column, message)) = row.check(appender.conn(), &mut context, as_of)? {
                summary.add_row_problems(vec![RowProblem::malformed(line, column, message)]);
                continue;
            }
            seen.insert(identity, (line, row.clone()));
            pending.push(row);
        }
        summary.settle_problems();
        if !summary.errors.is_empty() || pending.is_empty() {
            return Ok((summary, false));
        }
        let entries_from = appender.next_seq();
        for row in &pending {
            appender.append(&T::KIND, &row.values())?;
        }
        summary.inserted = pending.len() as u64;
        append_batch(appender, T::FILE_KIND, &summary, entries_from, as_of)?;
        Ok((summary, true))
    })?;
    Ok(summary)
}

impl ImportSummary {
    /// The SPEC §5 import JSON object.
    pub fn to_json(&self) -> serde_json::Value {
        let mut object = serde_json::json!({
            "file": self.file,
            "sha256": self.sha256,
            "rows": self.rows,
            "inserted": self.inserted,
            "duplicates": self.duplicates,
            "rejected": self.rejected,
            "errors": self.errors.iter().map(|problem| serde_json::json!({
                "line": problem.line,
                "column": problem.column,
                "rule": problem.rule.map(|rule| rule.name()),
                "message": problem.message,
            })).collect::<Vec<_>>(),
        });
        if let Some(accepted) = self.accepted_violations {
            object["accepted_violations"] = serde_json::json!(accepted);
        }
        if self.errors_omitted > 0 {
            object["errors_omitted"] = serde_json::json!(self.errors_omitted);
        }
        if self.dry_run {
            object["dry_run"] = serde_json::json!(true);
        }
        object
    }

    /// One human line: `FILE: N rows, N inserted, N duplicates, N rejected`.
    pub fn to_text(&self) -> String {
        if self.file_level {
            return format!(
                "{}: not imported: the file itself was refused (see the problems above)",
                self.file
            );
        }
        let inserted = if self.dry_run {
            "would insert"
        } else {
            "inserted"
        };
        let mut text = format!(
            "{}: {}, {} {inserted}, {}, {} rejected",
            self.file,
            plural(self.rows, "row", "rows"),
            self.inserted,
            plural(self.duplicates, "duplicate", "duplicates"),
            self.rejected
        );
        if let Some(accepted) = self.accepted_violations {
            text.push_str(&format!(", {accepted} recorded as accepted violations"));
        }
        text
    }
}
