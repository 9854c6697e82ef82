//! The nightly sales import (SPEC §3.4–3.5, §3.8–3.9, §4, §5).
//!
//! Rows are applied in the order SPEC §3.4 sets: every US and other-market
//! sale first, then restricted sales in file order, then returns in file
//! order; a refused row does not count for the rows after it. The file is
//! read in passes rather than held in memory whole (the fast path keeps
//! the restricted rows of its first pass within a bound, `kept_rows`).
//!
//! Two paths give the same answer:
//! - the **fast path** (the nightly case: every row new and allowed) runs
//!   on two threads: one parses, judges, encodes and hashes (reading the
//!   ledger through its own snapshot connection), the other inserts. It
//!   skips the per-row duplicate lookup and gives up at the first anomaly
//!   (a malformed or refused row, a `record_id` already recorded, a return
//!   whose sale it cannot find, too many returns to hold): the write
//!   transaction is rolled back and
//! - the **careful path** runs: one thread, duplicates and conflicts
//!   classified first in file order, every problem listed. It is the
//!   reference semantics; the fast path is an optimisation of it.
//!
//! Either way everything happens in one write transaction, and an atomic
//! import with any problem writes nothing.

use crate::error::{Error, Result, RowProblem, Rule};
use crate::input::csv::{Row, RowRead, TableReader};
use crate::input::kept_rows::KeptRows;
use crate::input::reference_import::{append_batch, open_table, ImportSummary};
use crate::money::{Ratio, Usd};
use crate::period::{format_date, Period};
use crate::records::policy::KnownChips;
use crate::records::sales::{self, SaleBatch, SaleKind, SaleRow};
use crate::rules::facts::{Applied, Deltas, LedgerFacts};
use crate::rules::{self, Facts, Purpose, Shipment};
use crate::store::ledger::{open_connection, Appender, ChainHead, Ledger, MarketGroup, Settings};
use chrono::NaiveDate;
use rustc_hash::FxHashMap as HashMap;
use std::fs::File;
use std::io::BufReader;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};

/// Most data rows one sales file may hold.
pub const SALES_ROWS_MAX: usize = 100_000_000;
/// Returns the fast path holds in memory until the sales are done; a file
/// with more takes the careful path (so memory stays bounded).
pub const RETURNS_HELD_MAX: usize = 100_000;

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
    /// Skip the fast path (tests and benchmarks compare both paths).
    pub careful_only: bool,
    /// Bytes of restricted sales and returns the fast path keeps between
    /// its passes (`kept_rows::KEPT_BYTES_MAX`); beyond them it reads the
    /// file a second time. Tests set 0 to take that way.
    pub kept_bytes_max: usize,
    /// `--late --reason`: record rows dated in closed periods as late
    /// entries (SPEC §3.12), marked with this reason.
    pub late_reason: Option<String>,
    /// `--rejects`: where the rejected rows go, written completely (and
    /// synced) before the import commits; if it cannot be, nothing is
    /// committed (SPEC §5).
    pub rejects_path: Option<std::path::PathBuf>,
}

/// A row that was not recorded: its fields as written and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reject {
    /// Line the record starts on.
    pub line: u64,
    /// The record's fields as written (lossy UTF-8).
    pub fields: Vec<String>,
    /// Every problem, as `column: message`.
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
    /// Which path produced the answer ("fast" or "careful"), for benchmarks.
    pub path_taken: &'static str,
}

/// Progress of a running import, readable from another thread.
#[derive(Debug, Default)]
pub struct Progress {
    /// Bytes of the file read by the current pass.
    pub bytes: AtomicU64,
    /// Passes started.
    pub pass: AtomicU64,
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
        Rule::Supply => "sale_date",
        Rule::Screening => "customer_id",
    }
}

/// What to do with a row given its refusals (SPEC §3.9).
enum Acceptance {
    /// No refusal.
    Clean,
    /// Refused only by acceptable rules, and violations are accepted:
    /// record it with these rule names.
    Accepted(String),
    /// Refused.
    Refused,
}

fn acceptance(refusals: &[(Rule, String)], accept_reason: Option<&str>) -> Acceptance {
    let Some(rules) = rules::accepted_rules_text(refusals) else {
        return Acceptance::Clean;
    };
    if accept_reason.is_none() || !refusals.iter().all(|(rule, _)| rule.acceptable()) {
        return Acceptance::Refused;
    }
    Acceptance::Accepted(rules)
}

/// Applies a recorded US or other-market sale to the facts (no lot, hold
/// or revenue counts for them). Both import paths call this.
fn apply_plain_sale(facts: &mut LedgerFacts<'_>, row: &SaleRow, group: MarketGroup) -> Result<()> {
    facts.apply(Applied {
        chip: &row.chip,
        date: row.sale_date,
        group,
        signed_units: row.units,
        lot_id: None,
        draw: None,
        revenue: None,
    })
}

/// What recording a restricted sale needs: the hold it draws (seq, units)
/// and the rules it is recorded despite (`--accept-violations`).
type Recordable = (Option<(i64, i64)>, Option<String>);

/// Judges a restricted sale (SPEC §3.1–3.4, §3.6, §3.9) and, when it is to
/// be recorded, applies it to the facts; otherwise returns its refusals.
/// Both import paths call this.
fn judge_restricted_sale(
    facts: &mut LedgerFacts<'_>,
    row: &SaleRow,
    accept_reason: Option<&str>,
    late: bool,
) -> Result<std::result::Result<Recordable, Vec<(Rule, String)>>> {
    let mut verdict = rules::judge_restricted(facts, &Shipment::of_sale(row), Purpose::Sale)?;
    if late {
        // A late entry faces every rule but `closed` (SPEC §3.12).
        verdict.refusals.retain(|(rule, _)| *rule != Rule::Closed);
    }
    let accepted = match acceptance(&verdict.refusals, accept_reason) {
        Acceptance::Clean => None,
        Acceptance::Accepted(rules) => Some(rules),
        Acceptance::Refused => return Ok(Err(verdict.refusals)),
    };
    let draw = verdict
        .draw
        .as_ref()
        .map(|(hold, drawn)| (hold.seq, *drawn));
    let earned = revenue(facts, row, row.sale_date)?;
    facts.apply(Applied {
        chip: &row.chip,
        date: row.sale_date,
        group: MarketGroup::Restricted,
        signed_units: row.units,
        lot_id: row.lot_id.as_deref(),
        draw,
        revenue: Some(earned),
    })?;
    Ok(Ok((draw, accepted)))
}

/// Fills a recorded return from its sale (price and lot) and applies it to
/// the facts, at the rate of the sale's date. Both import paths call this.
fn apply_return(
    facts: &mut LedgerFacts<'_>,
    row: &mut SaleRow,
    sale: &SaleRow,
    group: MarketGroup,
) -> Result<()> {
    row.unit_price = sale.unit_price;
    row.lot_id = sale.lot_id.clone();
    let earned = match group {
        MarketGroup::Restricted => Some(revenue(facts, row, sale.sale_date)?),
        _ => None,
    };
    facts.apply(Applied {
        chip: &row.chip,
        date: row.sale_date,
        group,
        signed_units: -row.units,
        lot_id: row.lot_id.as_deref(),
        draw: None,
        revenue: earned,
    })
}

/// A restricted row's revenue: the rate in force on `sale_date` (the
/// original sale's, for a return; 0 with no policy version) and the amount
/// `units × unit price`.
fn revenue(
    facts: &mut LedgerFacts<'_>,
    row: &SaleRow,
    sale_date: NaiveDate,
) -> Result<(Ratio, Usd)> {
    let rate = facts.chip_policy(&row.chip)?.rate_on(sale_date);
    let price = row.unit_price.expect("price known before applying");
    let amount = price
        .checked_mul_units(row.units as i128)
        .expect("units x price within 128 bits");
    Ok((rate, amount))
}

/// A row, or what made it unreadable.
type RowOrProblems<'a> = std::result::Result<Row<'a>, Vec<RowProblem>>;

/// One pass over the file.
struct Pass<'p> {
    table: TableReader<BufReader<File>>,
    index: usize,
    label: &'p str,
    progress: Option<&'p Progress>,
}

impl<'p> Pass<'p> {
    fn open(
        path: &Path,
        label: &'p str,
        progress: Option<&'p Progress>,
    ) -> std::result::Result<Pass<'p>, std::result::Result<Box<ImportSummary>, Error>> {
        if let Some(progress) = progress {
            progress.pass.fetch_add(1, Ordering::Relaxed);
            progress.bytes.store(0, Ordering::Relaxed);
        }
        Ok(Pass {
            table: open_table(path, label, sales::COLUMNS)?,
            index: 0,
            label,
            progress,
        })
    }

    fn reopen(path: &Path, label: &'p str, progress: Option<&'p Progress>) -> Result<Pass<'p>> {
        Pass::open(path, label, progress).map_err(|err| match err {
            Ok(_) => changed(label),
            Err(err) => err,
        })
    }

    /// The next row: its index and the row or its syntax problems.
    fn next(&mut self) -> Result<Option<(usize, RowOrProblems<'_>)>> {
        let index = self.index;
        if index >= SALES_ROWS_MAX {
            return Err(Error::BadInput(format!(
                "{}: more than {SALES_ROWS_MAX} rows; split the file",
                self.label
            )));
        }
        if let (Some(progress), 0) = (self.progress, index % 4096) {
            progress
                .bytes
                .store(self.table.bytes_read(), Ordering::Relaxed);
        }
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
            Err(RowRead::Io(err)) => Err(Error::BadInput(format!(
                "cannot read {}: {err}",
                self.label
            ))),
        }
    }

    /// Ends the pass; checks the file is the one the first pass read.
    fn finish(self, expected_sha256: Option<&str>) -> Result<String> {
        let label = self.label;
        let (sha256, _) = self
            .table
            .finish()
            .map_err(|err| Error::BadInput(format!("cannot read {label}: {err}")))?;
        if expected_sha256.is_some_and(|expected| expected != sha256) {
            return Err(changed(label));
        }
        Ok(sha256)
    }
}

fn trace(label: &str, phase: &str) {
    crate::trace::phase(label, phase);
}

fn changed(label: &str) -> Error {
    Error::Environment(format!(
        "{label} changed while it was being imported; nothing was written"
    ))
}

/// Imports a sales file (SPEC §5 `qledger import`).
pub fn import_sales(
    ledger: &mut Ledger,
    path: &Path,
    label: &str,
    options: &SalesImportOptions,
    progress: Option<&Progress>,
) -> Result<SalesImport> {
    let header = match Pass::open(path, label, None) {
        Ok(pass) => pass.table.header_original().to_vec(),
        Err(Ok(summary)) => {
            return Ok(SalesImport {
                summary: *summary,
                file_level: true,
                path_taken: "careful",
                ..SalesImport::default()
            })
        }
        Err(Err(err)) => return Err(err),
    };
    trace(label, "header");
    // Late entries are rare and marked one by one: the careful path records them.
    if !options.careful_only && options.late_reason.is_none() {
        if let Some(outcome) = fast_path(ledger, path, label, options, &header, progress)? {
            trace(label, "fast path committed");
            return Ok(outcome);
        }
    }
    trace(label, "fast path gave way to the careful path");
    let outcome = careful_path(ledger, path, label, options, header, progress);
    trace(label, "careful path committed");
    outcome
}

/// Commits (or not) what a path produced, with the batch entry and the
/// derived totals.
fn settle(
    appender: &mut Appender<'_>,
    mut summary: ImportSummary,
    deltas: Deltas,
    entries_from: i64,
    options: &SalesImportOptions,
) -> Result<(ImportSummary, bool)> {
    summary.settle_problems();
    summary.dry_run = options.dry_run;
    let refused = !summary.errors.is_empty() && !options.partial;
    if refused {
        summary.inserted = 0;
        if let Some(accepted) = summary.accepted_violations.as_mut() {
            *accepted = 0;
        }
    }
    let commit = !refused && !options.dry_run && summary.inserted > 0;
    if commit {
        let batch_seq = append_batch(appender, "sales", &summary, entries_from, options.as_of)?;
        deltas.flush(appender.conn(), batch_seq)?;
    }
    Ok((summary, commit))
}

/// What the fast path's parsing thread ends with.
enum Produced {
    /// Something needs the careful path.
    Fallback,
    /// Every row encoded and sent.
    Done {
        summary: Box<ImportSummary>,
        deltas: Deltas,
    },
}

fn fast_path(
    ledger: &mut Ledger,
    path: &Path,
    label: &str,
    options: &SalesImportOptions,
    header: &[String],
    progress: Option<&Progress>,
) -> Result<Option<SalesImport>> {
    let settings = ledger.settings().clone();
    let db_path = ledger.path().to_path_buf();
    ledger.write(options.as_of, |appender| {
        let head = appender.head();
        let entries_from = appender.next_seq();
        // The write lock is held: the snapshot this connection takes on
        // its first read is the ledger as this import starts.
        let reader = open_connection(&db_path)?;
        reader.execute_batch("BEGIN DEFERRED")?;
        let known_chips = KnownChips::load(&reader)?;
        let stop = AtomicBool::new(false);
        let (sender, receiver) = sync_channel::<ToWriter>(16);
        let (produced, written) = std::thread::scope(|scope| {
            let (settings, stop_flag) = (&settings, &stop);
            // The reader connection moves to the parsing thread.
            let producer = scope.spawn(move || {
                let mut producer = Producer {
                    settings,
                    known_chips: &known_chips,
                    options,
                    label,
                    progress,
                    sender,
                    stop: stop_flag,
                    batch: SaleBatch::new(),
                    head,
                };
                producer.run(&reader, path)
            });
            let written = write_all(appender, &receiver);
            stop.store(true, Ordering::Relaxed);
            drop(receiver); // unblocks a producer waiting to send
            let produced = producer
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            (produced, written)
        });
        let (summary, deltas) = match (produced?, written?) {
            (Produced::Done { summary, deltas }, true) => (*summary, deltas),
            _ => return Ok((None, false)),
        };
        trace(label, "fast path: every entry written");
        let (summary, commit) = settle(appender, summary, deltas, entries_from, options)?;
        trace(
            label,
            "fast path: batch entry and derived totals written; committing",
        );
        let outcome = SalesImport {
            summary,
            header: header.to_vec(),
            rejects: Vec::new(),
            committed: commit,
            file_level: false,
            path_taken: "fast",
        };
        write_rejects_before_commit(options, &outcome)?;
        Ok((Some(outcome), commit))
    })
}

/// What the fast path's parsing thread hands its writer.
enum ToWriter {
    /// Entries to insert.
    Sales(SaleBatch),
    /// Which sales these record_ids name, once the sales before are in.
    NamedSales(Vec<String>, SyncSender<Result<NamedSales>>),
}

/// Per record_id: the sale (recorded before or in this import) and the
/// units returned of it before this import.
type NamedSales = HashMap<String, (Option<SaleRow>, i64)>;

/// The fast path's writer: inserts every batch in order and answers
/// lookups. `Ok(false)`: an entry was already recorded (a duplicate), so
/// the careful path must run.
fn write_all(appender: &mut Appender<'_>, receiver: &Receiver<ToWriter>) -> Result<bool> {
    for message in receiver.iter() {
        match message {
            ToWriter::Sales(batch) => {
                if appender.insert_sales(&batch)?.is_some() {
                    return Ok(false);
                }
            }
            ToWriter::NamedSales(record_ids, reply) => {
                let mut named = NamedSales::default();
                let answer = record_ids.into_iter().try_for_each(|record_id| {
                    let sale = sales::recorded(appender.conn(), &record_id)?;
                    let returned = sales::returned_units(appender.conn(), &record_id)?;
                    named.insert(record_id, (sale.map(|sale| sale.row), returned));
                    Ok(())
                });
                // A parser that has stopped no longer listens.
                let _ = reply.send(answer.map(|()| named));
            }
        }
    }
    Ok(true)
}

/// The fast path's parsing thread.
struct Producer<'a> {
    settings: &'a Settings,
    known_chips: &'a KnownChips,
    options: &'a SalesImportOptions,
    label: &'a str,
    progress: Option<&'a Progress>,
    sender: SyncSender<ToWriter>,
    stop: &'a AtomicBool,
    batch: SaleBatch,
    head: ChainHead,
}

impl Producer<'_> {
    /// Whether a raw market value names a restricted market (case-insensitive).
    fn is_restricted_market(&self, market: &str) -> bool {
        self.settings
            .restricted_markets
            .iter()
            .any(|restricted| restricted.eq_ignore_ascii_case(market))
    }

    fn parse(&self, row: &Row<'_>) -> Option<SaleRow> {
        let mut problems = Vec::new();
        SaleRow::parse(
            row,
            self.settings,
            self.known_chips,
            self.options.as_of,
            &mut problems,
        )
        .filter(|_| problems.is_empty())
    }

    /// Encodes one entry; sends the batch when it is full. `false`: stop.
    fn emit(&mut self, row: &SaleRow, draw: Option<(i64, i64)>, accepted: Option<&str>) -> bool {
        let seq = self.head.entries + 1;
        let reason = self.options.accept_reason.as_deref().unwrap_or("");
        let hash = self.batch.push(
            seq,
            &self.head.hash,
            row,
            draw,
            accepted.map(|rules| (rules, reason)),
        );
        self.head = ChainHead { entries: seq, hash };
        if self.batch.rows.len() >= SaleBatch::ROWS {
            return self.flush();
        }
        true
    }

    fn flush(&mut self) -> bool {
        if self.batch.is_empty() {
            return true;
        }
        let full = std::mem::replace(&mut self.batch, SaleBatch::new());
        self.sender.send(ToWriter::Sales(full)).is_ok() && !self.stop.load(Ordering::Relaxed)
    }

    fn run(&mut self, reader: &rusqlite::Connection, path: &Path) -> Result<Produced> {
        let mut facts = LedgerFacts::new(reader, self.settings.clone(), self.options.as_of)?;
        let mut summary = ImportSummary {
            file: self.label.to_string(),
            accepted_violations: self.options.accept_reason.as_ref().map(|_| 0),
            ..ImportSummary::default()
        };
        let Some((sha256, kept)) = self.pass_one(&mut facts, &mut summary, path)? else {
            return Ok(Produced::Fallback);
        };
        trace(self.label, "fast pass 1 (US and other sales)");
        let Some(returns) = self.pass_two(&mut facts, &mut summary, path, &sha256, kept)? else {
            return Ok(Produced::Fallback);
        };
        trace(self.label, "fast pass 2 (restricted sales)");
        if !self.returns(&mut facts, returns, &mut summary)? || !self.flush() {
            return Ok(Produced::Fallback);
        }
        summary.sha256 = sha256;
        Ok(Produced::Done {
            summary: Box::new(summary),
            deltas: facts.take_deltas(),
        })
    }

    /// Pass 1: US and other-market sales count first; restricted sales and
    /// returns are kept for pass 2 while they fit. The file's SHA-256 and
    /// the kept rows (`None`: they did not fit); `None`: fall back.
    fn pass_one(
        &mut self,
        facts: &mut LedgerFacts<'_>,
        summary: &mut ImportSummary,
        path: &Path,
    ) -> Result<Option<(String, Option<KeptRows>)>> {
        let mut kept = Some(KeptRows::new(self.options.kept_bytes_max));
        let mut returns_count = 0usize;
        let mut pass = Pass::reopen(path, self.label, self.progress)?;
        while let Some((_, read)) = pass.next()? {
            let Ok(raw) = read else {
                return Ok(None);
            };
            let Some(row) = self.parse(&raw) else {
                return Ok(None);
            };
            summary.rows += 1;
            match (row.kind, self.settings.market_group(&row.market)) {
                (SaleKind::Return, _) | (SaleKind::Sale, MarketGroup::Restricted) => {
                    returns_count += usize::from(row.kind == SaleKind::Return);
                    if returns_count > RETURNS_HELD_MAX {
                        return Ok(None);
                    }
                    if kept.as_mut().is_some_and(|kept| !kept.keep(&raw)) {
                        kept = None; // too many: pass 2 reads the file again
                    }
                }
                (SaleKind::Sale, group) => {
                    // US and other-market sales need nothing but an open
                    // period: their entries go to the writer right away.
                    if rules::closed_refusal(facts, self.settings, row.sale_date)?.is_some() {
                        return Ok(None);
                    }
                    apply_plain_sale(facts, &row, group)?;
                    if !self.emit(&row, None, None) {
                        return Ok(None);
                    }
                    summary.inserted += 1;
                }
            }
        }
        Ok(Some((pass.finish(None)?, kept)))
    }

    /// Pass 2: restricted sales in file order, from the kept rows or from
    /// the file again (which must be the one pass 1 read). The returns,
    /// held for last; `None`: fall back.
    fn pass_two(
        &mut self,
        facts: &mut LedgerFacts<'_>,
        summary: &mut ImportSummary,
        path: &Path,
        sha256: &str,
        kept: Option<KeptRows>,
    ) -> Result<Option<Vec<SaleRow>>> {
        let mut returns: Vec<SaleRow> = Vec::new();
        if let Some(mut kept) = kept {
            for index in 0..kept.len() {
                // Pass 1 parsed these very values; the careful path would
                // judge a row that did not parse again.
                let Some(row) = self.parse(&kept.row(index)) else {
                    return Ok(None);
                };
                if !self.restricted_or_return(facts, row, &mut returns, summary)? {
                    return Ok(None);
                }
            }
            return Ok(Some(returns));
        }
        let mut pass = Pass::reopen(path, self.label, self.progress)?;
        while let Some((_, read)) = pass.next()? {
            let Ok(raw) = read else {
                return Err(changed(self.label));
            };
            // Only restricted sales and returns are parsed again.
            let is_return = raw.get(9).eq_ignore_ascii_case("return");
            if !is_return && !self.is_restricted_market(raw.get(3)) {
                continue;
            }
            let row = self.parse(&raw).ok_or_else(|| changed(self.label))?;
            if !self.restricted_or_return(facts, row, &mut returns, summary)? {
                return Ok(None);
            }
        }
        pass.finish(Some(sha256))?;
        Ok(Some(returns))
    }

    /// Pass 2's step: a restricted sale is judged and emitted, a return
    /// held for last. `false`: give way to the careful path.
    fn restricted_or_return(
        &mut self,
        facts: &mut LedgerFacts<'_>,
        row: SaleRow,
        returns: &mut Vec<SaleRow>,
        summary: &mut ImportSummary,
    ) -> Result<bool> {
        if row.kind == SaleKind::Return {
            returns.push(row);
            return Ok(true);
        }
        let accept_reason = self.options.accept_reason.as_deref();
        let Ok((draw, accepted)) = judge_restricted_sale(facts, &row, accept_reason, false)? else {
            return Ok(false);
        };
        if accepted.is_some() {
            *summary.accepted_violations.get_or_insert(0) += 1;
        }
        if !self.emit(&row, draw, accepted.as_deref()) {
            return Ok(false);
        }
        summary.inserted += 1;
        Ok(true)
    }

    /// Judges and emits the returns, in file order, once every sale is
    /// emitted. `false`: give way to the careful path.
    fn returns(
        &mut self,
        facts: &mut LedgerFacts<'_>,
        returns: Vec<SaleRow>,
        summary: &mut ImportSummary,
    ) -> Result<bool> {
        let Some(named) = self.named_sales(&returns)? else {
            return Ok(false);
        };
        let mut returned_here: HashMap<&str, i64> = HashMap::default();
        for mut row in returns {
            let reverses = row.reverses.as_deref().expect("a return names its sale");
            let Some((name, (Some(sale), returned_before))) = named.get_key_value(reverses) else {
                return Ok(false);
            };
            let already = returned_before + returned_here.get(name.as_str()).copied().unwrap_or(0);
            let refusals =
                rules::judge_return(facts, self.settings, &row, Some(sale), already, false)?;
            let accepted = match acceptance(&refusals, self.options.accept_reason.as_deref()) {
                Acceptance::Clean => None,
                Acceptance::Accepted(rules) => Some(rules),
                Acceptance::Refused => return Ok(false),
            };
            let group = self.settings.market_group(&row.market);
            apply_return(facts, &mut row, sale, group)?;
            *returned_here.entry(name.as_str()).or_default() += row.units;
            if accepted.is_some() {
                *summary.accepted_violations.get_or_insert(0) += 1;
            }
            if !self.emit(&row, None, accepted.as_deref()) {
                return Ok(false);
            }
            summary.inserted += 1;
        }
        Ok(true)
    }

    /// The sales the returns name, as the writer's transaction holds them
    /// once every sale of this file is in it (the sale may be recorded
    /// before or anywhere in this file), with the units returned before
    /// this file. `None`: the writer stopped.
    fn named_sales(&mut self, returns: &[SaleRow]) -> Result<Option<NamedSales>> {
        if returns.is_empty() {
            return Ok(Some(NamedSales::default()));
        }
        let mut record_ids: Vec<String> = returns
            .iter()
            .map(|row| row.reverses.clone().expect("a return names its sale"))
            .collect();
        record_ids.sort_unstable();
        record_ids.dedup();
        if !self.flush() {
            return Ok(None);
        }
        let (reply, answer) = sync_channel(1);
        if self
            .sender
            .send(ToWriter::NamedSales(record_ids, reply))
            .is_err()
        {
            return Ok(None);
        }
        match answer.recv() {
            Ok(named) => named.map(Some),
            Err(_) => Ok(None),
        }
    }
}

/// Collects rejected rows for `--rejects` (careful path) in a temporary
/// table on the import's connection (on disk, so memory does not grow with
/// them); the problems themselves go to the summary as they are found.
#[derive(Default)]
struct Problems {
    /// Only with `--rejects`: an atomic import keeps no row it refuses.
    keep_rejects: bool,
}

impl Problems {
    fn start(&self, conn: &rusqlite::Connection) -> Result<()> {
        if self.keep_rejects {
            conn.execute_batch(
                "CREATE TEMP TABLE IF NOT EXISTS import_rejects (line INTEGER PRIMARY KEY, \
                 fields TEXT NOT NULL, errors TEXT NOT NULL); DELETE FROM temp.import_rejects;",
            )?;
        }
        Ok(())
    }

    fn reject(
        &mut self,
        conn: &rusqlite::Connection,
        summary: &mut ImportSummary,
        line: u64,
        fields: Vec<String>,
        problems: Vec<RowProblem>,
    ) -> Result<()> {
        if self.keep_rejects {
            let errors: Vec<String> = problems
                .iter()
                .map(|problem| format!("{}: {}", problem.column, problem.message))
                .collect();
            let fields = serde_json::to_string(&fields).expect("strings serialise");
            conn.prepare_cached(
                "INSERT INTO temp.import_rejects (line, fields, errors) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (line) DO UPDATE SET errors = errors || '; ' || excluded.errors",
            )?
            .execute((line as i64, fields, errors.join("; ")))?;
        }
        summary.add_row_problems(problems);
        Ok(())
    }

    /// Writes the rejects file from the table, in line order.
    fn write(&self, conn: &rusqlite::Connection, path: &Path, header: &[String]) -> Result<()> {
        let mut statement =
            conn.prepare("SELECT line, fields, errors FROM temp.import_rejects ORDER BY line")?;
        let mut rows = statement.query([])?;
        let mut failed: Option<Error> = None;
        let mut next = || -> Option<Reject> {
            let row = match rows.next() {
                Ok(Some(row)) => row,
                Ok(None) => return None,
                Err(err) => {
                    failed = Some(err.into());
                    return None;
                }
            };
            let read = || -> Result<Reject> {
                let line: i64 = row.get(0)?;
                let fields: String = row.get(1)?;
                let errors: String = row.get(2)?;
                Ok(Reject {
                    line: line as u64,
                    fields: serde_json::from_str(&fields)
                        .map_err(|err| Error::Integrity(format!("a reject's fields: {err}")))?,
                    errors: vec![errors],
                })
            };
            match read() {
                Ok(reject) => Some(reject),
                Err(err) => {
                    failed = Some(err);
                    None
                }
            }
        };
        write_rejects_rows(path, header, std::iter::from_fn(&mut next))?;
        match failed {
            Some(err) => Err(err),
            None => Ok(()),
        }
    }
}

fn careful_path(
    ledger: &mut Ledger,
    path: &Path,
    label: &str,
    options: &SalesImportOptions,
    header: Vec<String>,
    progress: Option<&Progress>,
) -> Result<SalesImport> {
    let settings = ledger.settings().clone();
    ledger.write(options.as_of, |appender| {
        let entries_from = appender.next_seq();
        let known_chips = KnownChips::load(appender.conn())?;
        let mut careful = Careful {
            appender,
            settings: &settings,
            known_chips: &known_chips,
            options,
            label,
            late_marks: Vec::new(),
            problems: Problems {
                keep_rejects: options.rejects_path.is_some(),
            },
            statuses: Vec::new(),
            summary: ImportSummary {
                file: label.to_string(),
                accepted_violations: options.accept_reason.as_ref().map(|_| 0),
                ..ImportSummary::default()
            },
        };
        careful.problems.start(careful.appender.conn())?;
        let mut first = Pass::reopen(path, label, progress)?;
        careful.classify(&mut first)?;
        let sha256 = first.finish(None)?;
        careful.summary.sha256 = sha256.clone();
        let mut facts = LedgerFacts::new(careful.appender.conn(), settings.clone(), options.as_of)?;
        for status in [Status::UsOrOther, Status::Restricted, Status::Return] {
            let mut pass = Pass::reopen(path, label, progress)?;
            careful.apply_pass(&mut pass, status, &mut facts)?;
            pass.finish(Some(&sha256))?;
        }
        careful.append_late_marks()?;
        let Careful {
            appender,
            problems,
            summary,
            ..
        } = careful;
        let (summary, commit) = settle(
            appender,
            summary,
            facts.take_deltas(),
            entries_from,
            options,
        )?;
        let outcome = SalesImport {
            summary,
            header,
            rejects: Vec::new(),
            committed: commit,
            file_level: false,
            path_taken: "careful",
        };
        if let Some(path) = &options.rejects_path {
            problems.write(appender.conn(), path, &outcome.header)?;
        }
        Ok((outcome, commit))
    })
}

struct Careful<'a, 'conn> {
    appender: &'a mut Appender<'conn>,
    settings: &'a Settings,
    known_chips: &'a KnownChips,
    options: &'a SalesImportOptions,
    label: &'a str,
    /// Rows recorded as late entries: (sale entry, period, its close entry).
    late_marks: Vec<(i64, Period, i64)>,
    problems: Problems,
    statuses: Vec<Status>,
    summary: ImportSummary,
}

impl Careful<'_, '_> {
    /// Pass 1: forms, duplicates and conflicts, in file order.
    fn classify(&mut self, pass: &mut Pass<'_>) -> Result<()> {
        let conn = self.appender.conn();
        conn.execute_batch(
            "CREATE TEMP TABLE IF NOT EXISTS import_seen (record_id TEXT PRIMARY KEY, line INTEGER NOT NULL, \
             kind TEXT, sale_date TEXT, chip TEXT, market TEXT, customer_id TEXT, units INTEGER, \
             unit_price_usd_e4 INTEGER, lot_id TEXT, order_ref TEXT, reverses TEXT); DELETE FROM temp.import_seen;",
        )?;
        while let Some((_, read)) = pass.next()? {
            self.summary.rows += 1;
            let mut row_problems = Vec::new();
            let (line, parsed) = match read {
                Ok(row) => (
                    row.line,
                    SaleRow::parse(
                        &row,
                        self.settings,
                        self.known_chips,
                        self.options.as_of,
                        &mut row_problems,
                    ),
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
                self.problems.reject(
                    self.appender.conn(),
                    &mut self.summary,
                    line,
                    pass.table.last_raw_fields(),
                    row_problems,
                )?;
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
        pass: &mut Pass<'_>,
        wanted: Status,
        facts: &mut LedgerFacts<'_>,
    ) -> Result<()> {
        while let Some((index, read)) = pass.next()? {
            if self.statuses.get(index) != Some(&wanted) {
                continue;
            }
            let parsed = read.ok().and_then(|row| {
                let mut ignored = Vec::new();
                let line = row.line;
                SaleRow::parse(
                    &row,
                    self.settings,
                    self.known_chips,
                    self.options.as_of,
                    &mut ignored,
                )
                .filter(|_| ignored.is_empty())
                .map(|parsed| (line, parsed))
            });
            let Some((line, row)) = parsed else {
                return Err(changed(self.label));
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
                self.problems.reject(
                    self.appender.conn(),
                    &mut self.summary,
                    line,
                    pass.table.last_raw_fields(),
                    problems,
                )?;
            }
        }
        Ok(())
    }

    /// With `--late`, the period of `date` and its close entry when that
    /// period is closed: a row there is a late entry.
    fn late_close(
        &mut self,
        facts: &mut LedgerFacts<'_>,
        date: NaiveDate,
    ) -> Result<Option<(Period, i64)>> {
        if self.options.late_reason.is_none() {
            return Ok(None);
        }
        let period = Period::of(self.settings.period_kind, date);
        if !facts.is_closed(period)? {
            return Ok(None);
        }
        let close_seq: i64 = self
            .appender
            .conn()
            .prepare_cached("SELECT seq FROM period_close WHERE period = ?1")?
            .query_row([period.to_string()], |row| row.get(0))?;
        Ok(Some((period, close_seq)))
    }

    /// Appends the late-entry marks of the rows recorded late (SPEC §3.12).
    fn append_late_marks(&mut self) -> Result<()> {
        let reason = self.options.late_reason.clone().unwrap_or_default();
        for (sale_seq, period, close_seq) in std::mem::take(&mut self.late_marks) {
            self.appender.append(
                &crate::store::entry::LATE_ENTRY,
                &[
                    rusqlite::types::Value::Integer(sale_seq),
                    rusqlite::types::Value::Text(period.to_string()),
                    rusqlite::types::Value::Integer(close_seq),
                    rusqlite::types::Value::Text(reason.clone()),
                ],
            )?;
        }
        Ok(())
    }

    fn record(
        &mut self,
        row: &SaleRow,
        draw: Option<(i64, i64)>,
        accepted: Option<&str>,
        late: Option<(Period, i64)>,
    ) -> Result<()> {
        let head = self.appender.head();
        if let Some((period, close_seq)) = late {
            self.late_marks.push((head.entries + 1, period, close_seq));
        }
        let mut batch = SaleBatch::new();
        let reason = self.options.accept_reason.as_deref().unwrap_or("");
        batch.push(
            head.entries + 1,
            &head.hash,
            row,
            draw,
            accepted.map(|rules| (rules, reason)),
        );
        if self.appender.insert_sales(&batch)?.is_some() {
            // Duplicates were classified first under the write lock.
            return Err(Error::Integrity(format!(
                "record_id {} appeared in the ledger during the import",
                row.record_id
            )));
        }
        self.summary.inserted += 1;
        if accepted.is_some() {
            *self.summary.accepted_violations.get_or_insert(0) += 1;
        }
        Ok(())
    }

    fn apply_plain_sale(
        &mut self,
        row: &SaleRow,
        facts: &mut LedgerFacts<'_>,
    ) -> Result<Vec<(Rule, String)>> {
        let late = self.late_close(facts, row.sale_date)?;
        if late.is_none() {
            if let Some(refusal) = rules::closed_refusal(facts, self.settings, row.sale_date)? {
                return Ok(vec![refusal]);
            }
        }
        self.record(row, None, None, late)?;
        apply_plain_sale(facts, row, self.settings.market_group(&row.market))?;
        Ok(Vec::new())
    }

    fn apply_restricted_sale(
        &mut self,
        row: &SaleRow,
        facts: &mut LedgerFacts<'_>,
    ) -> Result<Vec<(Rule, String)>> {
        let late = self.late_close(facts, row.sale_date)?;
        let accept = self.options.accept_reason.as_deref();
        match judge_restricted_sale(facts, row, accept, late.is_some())? {
            Ok((draw, accepted)) => {
                self.record(row, draw, accepted.as_deref(), late)?;
                Ok(Vec::new())
            }
            Err(refusals) => Ok(refusals),
        }
    }

    fn apply_return(
        &mut self,
        mut row: SaleRow,
        facts: &mut LedgerFacts<'_>,
    ) -> Result<Vec<(Rule, String)>> {
        let reverses = row.reverses.clone().expect("a return names its sale");
        let conn = self.appender.conn();
        let sale = sales::recorded(conn, &reverses)?.map(|recorded| recorded.row);
        let returned = sales::returned_units(conn, &reverses)?;
        let late = self.late_close(facts, row.sale_date)?;
        let refusals = rules::judge_return(
            facts,
            self.settings,
            &row,
            sale.as_ref(),
            returned,
            late.is_some(),
        )?;
        let group = self.settings.market_group(&row.market);
        let accepted = match acceptance(&refusals, self.options.accept_reason.as_deref()) {
            Acceptance::Clean => None,
            Acceptance::Accepted(rules) => Some(rules),
            Acceptance::Refused => return Ok(refusals),
        };
        let sale = sale.expect("a return without refusals has its sale");
        apply_return(facts, &mut row, &sale, group)?;
        self.record(&row, None, accepted.as_deref(), late)?;
        Ok(Vec::new())
    }
}

fn seen_in_file(conn: &rusqlite::Connection, record_id: &str) -> Result<Option<(u64, SaleRow)>> {
    use rusqlite::OptionalExtension;
    let stored: Option<(i64, sales::RawSale)> = conn
        .prepare_cached(&format!(
            "SELECT line, {} FROM temp.import_seen WHERE record_id = ?1",
            sales::SALE_CONTENT_COLUMNS
        ))?
        .query_row([record_id], |row| {
            Ok((row.get(0)?, sales::RawSale::read(row, 1)?))
        })
        .optional()?;
    stored
        .map(|(line, raw)| Ok((line as u64, raw.into_row()?)))
        .transpose()
}

fn remember_in_file(conn: &rusqlite::Connection, line: u64, row: &SaleRow) -> Result<()> {
    conn.prepare_cached(&format!(
        "INSERT INTO temp.import_seen (line, {}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        sales::SALE_CONTENT_COLUMNS
    ))?
    .execute(rusqlite::params![
        line as i64,
        row.record_id,
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

/// Writes the rejects file, when one was asked for, inside the import's
/// write transaction: an error here rolls the import back.
fn write_rejects_before_commit(options: &SalesImportOptions, outcome: &SalesImport) -> Result<()> {
    match &options.rejects_path {
        Some(path) => write_rejects(path, outcome),
        None => Ok(()),
    }
}

/// Writes the rejects file: the original columns, then `line` and `error`.
pub fn write_rejects(path: &Path, outcome: &SalesImport) -> Result<()> {
    write_rejects_rows(path, &outcome.header, outcome.rejects.iter().cloned())
}

/// Writes a rejects file: the header, then each rejected row.
fn write_rejects_rows(
    path: &Path,
    header: &[String],
    rejects: impl Iterator<Item = Reject>,
) -> Result<()> {
    let write = || -> std::result::Result<(), csv::Error> {
        let mut writer = csv::WriterBuilder::new().flexible(true).from_path(path)?;
        let mut header = header.to_vec();
        header.push("line".to_string());
        header.push("error".to_string());
        writer.write_record(&header)?;
        for reject in rejects {
            let mut record = reject.fields.clone();
            // A record of the wrong width is written as it was read.
            record.push(reject.line.to_string());
            record.push(reject.errors.join("; "));
            writer.write_record(&record)?;
        }
        writer.flush()?;
        writer.get_ref().sync_all()?;
        Ok(())
    };
    write().map_err(|err| {
        Error::Environment(format!(
            "cannot write the rejects file {}: {err}; nothing was imported",
            path.display()
        ))
    })
}
