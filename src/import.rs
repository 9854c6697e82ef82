//! The nightly sales import (SPEC §3.4–3.5, §3.8–3.9, §4, §5).
//!
//! The file is read in passes, so memory does not grow with it:
//! 1. every row in file order: its form, then duplicates and conflicts
//!    (against the ledger and earlier rows, before any rule);
//! 2. US and other-market sales (applied first, SPEC §3.4);
//! 3. restricted sales in file order, judged by `rules::judge_restricted`;
//! 4. returns in file order.
//!
//! A refused row does not count for the rows after it. All of it happens in
//! one write transaction; an atomic import with any problem rolls back.

use crate::csvin::{Row, RowRead, TableReader};
use crate::entry::SALE;
use crate::error::{Error, Result, RowProblem, Rule};
use crate::facts::LedgerFacts;
use crate::imports::{append_batch, open_table, ImportSummary};
use crate::ledger::{Appender, Ledger, MarketGroup, Settings};
use crate::money::Usd;
use crate::period::{format_date, Period};
use crate::rules::{self, Purpose, Shipment};
use crate::sales::{self, SaleEntry, SaleKind, SaleRow};
use chrono::NaiveDate;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::BufReader;
use std::path::Path;

/// Most data rows one sales file may hold.
pub const SALES_ROWS_MAX: usize = 100_000_000;

/// How to run an import.
#[derive(Debug, Clone)]
pub struct SalesImportOptions {
    /// The ledger clock.
    pub as_of: NaiveDate,
    /// Check everything, write nothing.
    pub dry_run: bool,
    /// Commit the good rows and reject the others (else atomic).
    pub partial: bool,
    /// `--accept-violations --reason`: record rows refused only by policy,
    /// customer, lot or cap, marked with this reason.
    pub accept_reason: Option<String>,
}

/// A row that was not recorded: its fields as written and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reject {
    /// Line the record starts on.
    pub line: u64,
    /// The record's fields as written (lossy UTF-8).
    pub fields: Vec<String>,
    /// Every problem, as messages.
    pub errors: Vec<String>,
}

/// The outcome of a sales import.
#[derive(Debug, Clone, Default)]
pub struct SalesImport {
    /// The SPEC §5 summary.
    pub summary: ImportSummary,
    /// The file's header as written (for the rejects file).
    pub header: Vec<String>,
    /// Rejected rows in line order.
    pub rejects: Vec<Reject>,
    /// Whether anything was committed.
    pub committed: bool,
    /// The file itself was unusable (unreadable header): exit 2 in every mode.
    pub file_level: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Malformed,
    Duplicate,
    UsOrOther,
    Restricted,
    Return,
}

/// The column a refusal by `rule` is reported in.
fn rule_column(rule: Rule) -> &'static str {
    match rule {
        Rule::Closed => "sale_date",
        Rule::Policy => "chip",
        Rule::Customer => "customer_id",
        Rule::Lot => "lot_id",
        Rule::Cap => "units",
        Rule::Order => "order_ref",
        Rule::Return => "reverses",
    }
}

/// Rules `--accept-violations` may record a row despite.
fn acceptable(rule: Rule) -> bool {
    matches!(rule, Rule::Policy | Rule::Customer | Rule::Lot | Rule::Cap)
}

/// A row, or what made it unreadable.
type RowOrProblems<'a> = std::result::Result<Row<'a>, Vec<RowProblem>>;

/// One pass over the file.
struct Pass {
    table: TableReader<BufReader<File>>,
    index: usize,
}

impl Pass {
    fn open(
        path: &Path,
        label: &str,
    ) -> std::result::Result<Pass, std::result::Result<ImportSummary, Error>> {
        Ok(Pass {
            table: open_table(path, label, sales::COLUMNS)?,
            index: 0,
        })
    }

    fn reopen(path: &Path, label: &str) -> Result<Pass> {
        Pass::open(path, label).map_err(|err| match err {
            Ok(_) => Error::Environment(format!("{label} changed while it was being imported")),
            Err(err) => err,
        })
    }

    /// The next row: its index and the row or its syntax problems.
    fn next(&mut self, label: &str) -> Result<Option<(usize, RowOrProblems<'_>)>> {
        let index = self.index;
        match self.table.next_row() {
            Ok(None) => Ok(None),
            Ok(Some(row)) => {
                self.index += 1;
                Ok(Some((index, Ok(row))))
            }
            Err(RowRead::Problems(problems)) => {
                self.index += 1;
                Ok(Some((index, Err(problems))))
            }
            Err(RowRead::Io(err)) => Err(Error::BadInput(format!("cannot read {label}: {err}"))),
        }
    }

    fn finish(self, label: &str) -> Result<String> {
        let (sha256, _) = self
            .table
            .finish()
            .map_err(|err| Error::BadInput(format!("cannot read {label}: {err}")))?;
        Ok(sha256)
    }
}

/// Collects problems and rejected rows.
#[derive(Default)]
struct Problems {
    list: Vec<RowProblem>,
    rejects: BTreeMap<u64, Reject>,
}

impl Problems {
    fn reject(&mut self, line: u64, fields: Vec<String>, problems: Vec<RowProblem>) {
        let entry = self.rejects.entry(line).or_insert_with(|| Reject {
            line,
            fields,
            errors: Vec::new(),
        });
        for problem in &problems {
            entry
                .errors
                .push(format!("{}: {}", problem.column, problem.message));
        }
        self.list.extend(problems);
    }
}

/// Imports a sales file (SPEC §5 `qledger import`).
pub fn import_sales(
    ledger: &mut Ledger,
    path: &Path,
    label: &str,
    options: &SalesImportOptions,
) -> Result<SalesImport> {
    let mut first = match Pass::open(path, label) {
        Ok(pass) => pass,
        Err(Ok(summary)) => {
            return Ok(SalesImport {
                summary,
                file_level: true,
                ..SalesImport::default()
            })
        }
        Err(Err(err)) => return Err(err),
    };
    let header = first.table.header_original().to_vec();
    let settings = ledger.settings().clone();
    ledger.write(|appender| {
        let mut run = Run {
            appender,
            settings: &settings,
            options,
            label,
            problems: Problems::default(),
            statuses: Vec::new(),
            summary: ImportSummary {
                file: label.to_string(),
                accepted_violations: options.accept_reason.as_ref().map(|_| 0),
                ..ImportSummary::default()
            },
        };
        run.classify(&mut first)?;
        let sha256 = first.finish(label)?;
        run.summary.sha256 = sha256.clone();
        let mut facts = LedgerFacts::new(run.appender.conn(), settings.clone(), options.as_of)?;
        let entries_from = run.appender.next_seq();
        for status in [Status::UsOrOther, Status::Restricted, Status::Return] {
            let mut pass = Pass::reopen(path, label)?;
            run.apply_pass(&mut pass, status, &mut facts)?;
            if pass.finish(label)? != sha256 {
                return Err(Error::Environment(format!(
                    "{label} changed while it was being imported; nothing was written"
                )));
            }
        }
        let Run {
            appender,
            problems,
            mut summary,
            ..
        } = run;
        summary.errors = problems.list;
        summary.settle_problems();
        let refused = !summary.errors.is_empty() && !options.partial;
        if refused {
            summary.inserted = 0;
            if let Some(accepted) = summary.accepted_violations.as_mut() {
                *accepted = 0;
            }
        }
        let commit = !refused && !options.dry_run && summary.inserted > 0;
        if commit {
            append_batch(appender, "sales", &summary, entries_from, options.as_of)?;
            facts.flush_derived()?;
        }
        Ok((
            SalesImport {
                summary,
                header,
                rejects: problems.rejects.into_values().collect(),
                committed: commit,
                file_level: false,
            },
            commit,
        ))
    })
}

struct Run<'a, 'conn> {
    appender: &'a mut Appender<'conn>,
    settings: &'a Settings,
    options: &'a SalesImportOptions,
    label: &'a str,
    problems: Problems,
    statuses: Vec<Status>,
    summary: ImportSummary,
}

impl Run<'_, '_> {
    /// Pass 1: forms, duplicates and conflicts, in file order.
    fn classify(&mut self, pass: &mut Pass) -> Result<()> {
        let conn = self.appender.conn();
        conn.execute_batch(
            "CREATE TEMP TABLE IF NOT EXISTS import_seen (record_id TEXT PRIMARY KEY, line INTEGER NOT NULL, \
             kind TEXT, sale_date TEXT, chip TEXT, market TEXT, customer_id TEXT, units INTEGER, \
             price_e4 INTEGER, lot_id TEXT, order_ref TEXT, reverses TEXT); DELETE FROM temp.import_seen;",
        )?;
        while let Some((index, read)) = pass.next(self.label)? {
            self.summary.rows += 1;
            if index >= SALES_ROWS_MAX {
                return Err(Error::BadInput(format!(
                    "{}: more than {SALES_ROWS_MAX} rows; split the file",
                    self.label
                )));
            }
            let mut row_problems = Vec::new();
            let (line, parsed) = match read {
                Ok(row) => (
                    row.line,
                    SaleRow::parse(&row, self.settings, self.options.as_of, &mut row_problems),
                ),
                Err(problems) => {
                    row_problems = problems;
                    (row_problems[0].line, None)
                }
            };
            let status = match parsed {
                Some(row) if row_problems.is_empty() => {
                    self.duplicate_status(line, &row, &mut row_problems)?
                }
                _ => Status::Malformed,
            };
            if !row_problems.is_empty() {
                self.problems
                    .reject(line, pass.table.last_raw_fields(), row_problems);
            }
            self.statuses.push(status);
        }
        Ok(())
    }

    fn duplicate_status(
        &mut self,
        line: u64,
        row: &SaleRow,
        problems: &mut Vec<RowProblem>,
    ) -> Result<Status> {
        let conn = self.appender.conn();
        if let Some(recorded) = sales::recorded(conn, &row.record_id)? {
            if row.same_content(&recorded.row) {
                self.summary.duplicates += 1;
                return Ok(Status::Duplicate);
            }
            problems.push(RowProblem::malformed(
                line,
                "record_id",
                format!(
                    "{} is already recorded (entry {}) with other content; a correction is a return, never an edit",
                    row.record_id, recorded.seq
                ),
            ));
            return Ok(Status::Malformed);
        }
        if let Some((earlier_line, earlier)) = seen_in_file(conn, &row.record_id)? {
            if row.same_content(&earlier) {
                self.summary.duplicates += 1;
                return Ok(Status::Duplicate);
            }
            problems.push(RowProblem::malformed(
                line,
                "record_id",
                format!(
                    "{} conflicts with line {earlier_line}: same record_id, other content",
                    row.record_id
                ),
            ));
            return Ok(Status::Malformed);
        }
        remember_in_file(conn, line, row)?;
        Ok(match (row.kind, self.settings.market_group(&row.market)) {
            (SaleKind::Return, _) => Status::Return,
            (SaleKind::Sale, MarketGroup::Restricted) => Status::Restricted,
            (SaleKind::Sale, _) => Status::UsOrOther,
        })
    }

    /// Passes 2–4: applies the rows of one status in file order.
    fn apply_pass(
        &mut self,
        pass: &mut Pass,
        wanted: Status,
        facts: &mut LedgerFacts<'_>,
    ) -> Result<()> {
        while let Some((index, read)) = pass.next(self.label)? {
            if self.statuses.get(index) != Some(&wanted) {
                continue;
            }
            let (line, row) = match read {
                Ok(row) => {
                    let line = row.line;
                    let mut ignored = Vec::new();
                    SaleRow::parse(&row, self.settings, self.options.as_of, &mut ignored)
                        .filter(|_| ignored.is_empty())
                        .map(|parsed| (line, parsed))
                        .ok_or_else(|| {
                            Error::Environment(format!(
                                "{} changed while it was being imported",
                                self.label
                            ))
                        })?
                }
                Err(_) => {
                    return Err(Error::Environment(format!(
                        "{} changed while it was being imported",
                        self.label
                    )))
                }
            };
            let refusals = match wanted {
                Status::UsOrOther => self.apply_plain_sale(&row, facts)?,
                Status::Restricted => self.apply_restricted_sale(&row, facts)?,
                Status::Return => self.apply_return(row, facts)?,
                Status::Malformed | Status::Duplicate => unreachable!("only applicable rows"),
            };
            if !refusals.is_empty() {
                let problems = refusals
                    .into_iter()
                    .map(|(rule, message)| RowProblem {
                        line,
                        column: rule_column(rule).to_string(),
                        rule: Some(rule),
                        message,
                    })
                    .collect();
                self.problems
                    .reject(line, pass.table.last_raw_fields(), problems);
            }
        }
        Ok(())
    }

    fn closed_refusal(
        &self,
        facts: &mut LedgerFacts<'_>,
        date: NaiveDate,
    ) -> Result<Option<(Rule, String)>> {
        use crate::rules::Facts;
        let period = Period::of(self.settings.period_kind, date);
        Ok(facts
            .is_closed(period)?
            .then(|| (Rule::Closed, format!("period {period} is closed"))))
    }

    fn record(&mut self, entry: SaleEntry<'_>) -> Result<()> {
        self.appender.append(&SALE, &entry.values())?;
        self.summary.inserted += 1;
        if entry.accepted.is_some() {
            *self.summary.accepted_violations.get_or_insert(0) += 1;
        }
        Ok(())
    }

    fn apply_plain_sale(
        &mut self,
        row: &SaleRow,
        facts: &mut LedgerFacts<'_>,
    ) -> Result<Vec<(Rule, String)>> {
        if let Some(refusal) = self.closed_refusal(facts, row.sale_date)? {
            return Ok(vec![refusal]);
        }
        self.record(SaleEntry {
            row,
            draw: None,
            accepted: None,
        })?;
        let group = self.settings.market_group(&row.market);
        facts.apply(
            &row.chip,
            row.sale_date,
            group,
            row.units,
            row.lot_id.as_deref(),
            None,
        )?;
        Ok(Vec::new())
    }

    fn apply_restricted_sale(
        &mut self,
        row: &SaleRow,
        facts: &mut LedgerFacts<'_>,
    ) -> Result<Vec<(Rule, String)>> {
        let shipment = Shipment {
            date: row.sale_date,
            chip: &row.chip,
            market: &row.market,
            customer_id: row.customer_id.as_deref(),
            lot_id: row.lot_id.as_deref(),
            units: row.units,
            order_ref: row.order_ref.as_deref(),
        };
        let verdict = rules::judge_restricted(facts, &shipment, Purpose::Sale)?;
        let accepted = match (&self.options.accept_reason, verdict.refusals.is_empty()) {
            (_, true) => None,
            (Some(reason), false) if verdict.refusals.iter().all(|(rule, _)| acceptable(*rule)) => {
                let mut names: Vec<&str> = verdict
                    .refusals
                    .iter()
                    .map(|(rule, _)| rule.name())
                    .collect();
                names.sort_unstable();
                names.dedup();
                Some((names.join(","), reason.as_str()))
            }
            _ => return Ok(verdict.refusals),
        };
        let draw = verdict
            .draw
            .as_ref()
            .map(|(hold, drawn)| (hold.seq, *drawn));
        self.record(SaleEntry {
            row,
            draw,
            accepted,
        })?;
        facts.apply(
            &row.chip,
            row.sale_date,
            MarketGroup::Restricted,
            row.units,
            row.lot_id.as_deref(),
            draw,
        )?;
        Ok(Vec::new())
    }

    fn apply_return(
        &mut self,
        mut row: SaleRow,
        facts: &mut LedgerFacts<'_>,
    ) -> Result<Vec<(Rule, String)>> {
        let reverses = row.reverses.clone().expect("a return names its sale");
        let mut refusals = Vec::new();
        let conn = self.appender.conn();
        let sale = sales::recorded(conn, &reverses)?.filter(|s| s.row.kind == SaleKind::Sale);
        let Some(sale) = sale else {
            refusals.push((
                Rule::Return,
                format!("reverses {reverses}, which is not a recorded sale"),
            ));
            if let Some(closed) = self.closed_refusal(facts, row.sale_date)? {
                refusals.push(closed);
            }
            return Ok(refusals);
        };
        let sale = sale.row;
        let mut mismatch = |what: &str, ours: String, theirs: String| {
            refusals.push((
                Rule::Return,
                format!("{what} {ours} differs from sale {reverses}'s {theirs}"),
            ));
        };
        let show = |value: &Option<String>| value.clone().unwrap_or_else(|| "(none)".to_string());
        if row.chip != sale.chip {
            mismatch("chip", row.chip.clone(), sale.chip.clone());
        }
        if row.market != sale.market {
            mismatch("market", row.market.clone(), sale.market.clone());
        }
        if row.customer_id != sale.customer_id {
            mismatch("customer", show(&row.customer_id), show(&sale.customer_id));
        }
        if let Some(price) = row.unit_price {
            if Some(price) != sale.unit_price {
                mismatch(
                    "unit price",
                    price.to_string(),
                    sale.unit_price.unwrap_or(Usd::ZERO).to_string(),
                );
            }
        }
        if row.lot_id.is_some() && row.lot_id != sale.lot_id {
            mismatch("lot", show(&row.lot_id), show(&sale.lot_id));
        }
        if row.sale_date < sale.sale_date {
            refusals.push((
                Rule::Return,
                format!(
                    "is dated {}, before sale {reverses} ({})",
                    format_date(row.sale_date),
                    format_date(sale.sale_date)
                ),
            ));
        }
        let returned = sales::returned_units(conn, &reverses)?;
        if returned + row.units > sale.units {
            refusals.push((
                Rule::Return,
                format!(
                    "would return {} units of sale {reverses}, which sold {} ({returned} already returned)",
                    row.units, sale.units
                ),
            ));
        }
        if let Some(closed) = self.closed_refusal(facts, row.sale_date)? {
            refusals.push(closed);
        }
        let group = self.settings.market_group(&row.market);
        if refusals.is_empty() && group == MarketGroup::Us {
            if let Some(message) =
                rules::judge_us_return(facts, &row.chip, row.sale_date, row.units)?
            {
                refusals.push((Rule::Cap, message));
            }
        }
        let accepted = match (&self.options.accept_reason, refusals.is_empty()) {
            (_, true) => None,
            (Some(reason), false) if refusals.iter().all(|(rule, _)| acceptable(*rule)) => {
                Some(("cap".to_string(), reason.as_str()))
            }
            _ => return Ok(refusals),
        };
        row.unit_price = sale.unit_price;
        row.lot_id = sale.lot_id.clone();
        self.record(SaleEntry {
            row: &row,
            draw: None,
            accepted,
        })?;
        facts.apply(
            &row.chip,
            row.sale_date,
            group,
            -row.units,
            row.lot_id.as_deref(),
            None,
        )?;
        Ok(Vec::new())
    }
}

fn seen_in_file(conn: &rusqlite::Connection, record_id: &str) -> Result<Option<(u64, SaleRow)>> {
    use rusqlite::OptionalExtension;
    type Stored = (
        i64,
        String,
        String,
        String,
        String,
        Option<String>,
        i64,
        Option<i64>,
        Option<String>,
        Option<String>,
        Option<String>,
    );
    let stored: Option<Stored> = conn
        .prepare_cached(
            "SELECT line, kind, sale_date, chip, market, customer_id, units, price_e4, lot_id, order_ref, reverses \
             FROM temp.import_seen WHERE record_id = ?1",
        )?
        .query_row([record_id], |r| {
            Ok((
                r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?,
                r.get(6)?, r.get(7)?, r.get(8)?, r.get(9)?, r.get(10)?,
            ))
        })
        .optional()?;
    Ok(stored.map(
        |(
            line,
            kind,
            date,
            chip,
            market,
            customer_id,
            units,
            price,
            lot_id,
            order_ref,
            reverses,
        )| {
            (
                line as u64,
                SaleRow {
                    record_id: record_id.to_string(),
                    kind: if kind == "sale" {
                        SaleKind::Sale
                    } else {
                        SaleKind::Return
                    },
                    sale_date: crate::period::parse_date(&date).expect("stored by this import"),
                    chip,
                    market,
                    customer_id,
                    units,
                    unit_price: price.map(|p| Usd::from_e4(p as i128)),
                    lot_id,
                    order_ref,
                    reverses,
                },
            )
        },
    ))
}

fn remember_in_file(conn: &rusqlite::Connection, line: u64, row: &SaleRow) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO temp.import_seen (record_id, line, kind, sale_date, chip, market, customer_id, units, \
         price_e4, lot_id, order_ref, reverses) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
    )?
    .execute(rusqlite::params![
        row.record_id,
        line as i64,
        row.kind.name(),
        format_date(row.sale_date),
        row.chip,
        row.market,
        row.customer_id,
        row.units,
        row.unit_price.map(|p| p.e4 as i64),
        row.lot_id,
        row.order_ref,
        row.reverses,
    ])?;
    Ok(())
}

/// Writes the rejects file: the original columns, then `line` and `error`.
pub fn write_rejects(path: &Path, outcome: &SalesImport) -> Result<()> {
    let write = || -> std::result::Result<(), csv::Error> {
        let mut writer = csv::Writer::from_path(path)?;
        let mut header = outcome.header.clone();
        header.push("line".to_string());
        header.push("error".to_string());
        writer.write_record(&header)?;
        for reject in &outcome.rejects {
            let mut record = reject.fields.clone();
            // A record of the wrong width is written as it was read.
            record.push(reject.line.to_string());
            record.push(reject.errors.join("; "));
            writer.write_record(&record)?;
        }
        writer.flush()?;
        Ok(())
    };
    write().map_err(|err| Error::Environment(format!("cannot write {}: {err}", path.display())))
}
