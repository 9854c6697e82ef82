//! `qledger verify`: recompute the whole chain and the derived totals.
//!
//! Every entry stores its hash, so the chain splits into independent
//! ranges: a range starting at entry `lo` is checked from the stored hash
//! of entry `lo − 1`, which the range before it checks in turn. Two
//! threads (one per core), each with its own read connection, take chunks
//! in turn; both snapshots are made to hold the same head.

use crate::error::{Error, Result};
use crate::money::Ratio;
use crate::period::{Period, PeriodKind};
use crate::rules::ChipPolicy;
use crate::store::entry::{self, EntryKind, Hash, ALL_KINDS, GENESIS_HASH, LEDGER_SETTINGS, SALE};
use crate::store::ledger::{read_head, ChainHead};
use fallible_streaming_iterator::FallibleStreamingIterator;
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OptionalExtension};
use std::collections::{BTreeSet, HashMap};
use std::path::Path;

/// Most hashed columns of any entry kind.
const COLUMNS_MAX: usize = 16;

/// At most this many chunks.
const CHUNKS_MAX: i64 = 4_096;

/// How `verify` splits the chain between its two threads. The defaults
/// are what `qledger verify` uses; tests pass small numbers to check the
/// chunked path on small ledgers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chunking {
    /// Below this many entries one thread checks everything.
    pub parallel_entries_min: i64,
    /// Entries per chunk of a parallel verify.
    pub chunk_entries: i64,
}

impl Default for Chunking {
    fn default() -> Chunking {
        Chunking {
            parallel_entries_min: 200_000,
            // About a tenth of a second of work.
            chunk_entries: 250_000,
        }
    }
}

/// An earlier chain head the ledger must extend (SPEC §3.15 item 6): a
/// digest `N:HEX` kept by an auditor, or a signed checkpoint's head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Anchor {
    /// Entries and hash at that point.
    pub head: ChainHead,
    /// Where it comes from, for messages ("the digest N:HEX", "checkpoint FILE …").
    pub source: String,
}

impl Anchor {
    /// A digest as `qledger digest` prints it.
    pub fn digest(head: ChainHead) -> Anchor {
        Anchor {
            source: format!("the digest {}", head.digest_text()),
            head,
        }
    }
}

/// What `verify` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// Entries read.
    pub entries: i64,
    /// Head hash (recomputed; equal to the stored one when `ok`).
    pub head: Hash,
    /// The first entry that does not check out, if any.
    pub first_bad_entry: Option<i64>,
    /// What is wrong, when something is.
    pub message: Option<String>,
}

impl VerifyReport {
    /// Whether everything checked out.
    pub fn ok(&self) -> bool {
        self.first_bad_entry.is_none() && self.message.is_none()
    }
}

/// What the derived totals depend on besides the sale rows, read once.
struct Context {
    restricted: Vec<String>,
    period_kind: PeriodKind,
    /// Every chip's policy versions (rates by date).
    policies: HashMap<String, ChipPolicy>,
    /// Sales import batches: (entries_from, entries_to, batch seq), by entries_from.
    batches: Vec<(i64, i64, i64)>,
    /// The as-of date of each sales batch, by batch seq.
    imported_on: HashMap<i64, String>,
}

impl Context {
    fn read(conn: &Connection) -> Result<Context> {
        let settings = crate::store::ledger::read_settings(conn).ok();
        let policies: HashMap<String, ChipPolicy> =
            ChipPolicy::per_chip(crate::records::policy::all_versions(conn).unwrap_or_default())
                .into_iter()
                .collect();
        let stored: Vec<(i64, i64, i64, String)> = conn
            .prepare("SELECT entries_from, entries_to, seq, imported_on FROM import_batch WHERE file_kind = 'sales' ORDER BY entries_from")?
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)))?
            .collect::<rusqlite::Result<_>>()?;
        let batches = stored.iter().map(|(f, t, b, _)| (*f, *t, *b)).collect();
        let imported_on = stored.into_iter().map(|(_, _, b, on)| (b, on)).collect();
        Ok(Context {
            restricted: restricted_markets(conn)?,
            period_kind: settings.map_or(PeriodKind::Quarter, |s| s.period_kind),
            policies,
            batches,
            imported_on,
        })
    }

    /// Why a sale entry was not written by an import as recorded (SPEC
    /// §3.15 item 5): it lies in no sales batch's entry range, or is dated
    /// after its batch's as-of date.
    fn sale_outside_its_batch(&self, seq: i64, sale_date: ValueRef<'_>) -> Option<String> {
        let Some((_, _, batch)) = self.batch_of(seq) else {
            return Some(format!(
                "sale entry {seq} lies in no import batch's entry range: no import wrote it"
            ));
        };
        let imported_on = self.imported_on.get(&batch)?;
        let date = sale_date.as_str().ok()?;
        (date > imported_on.as_str()).then(|| {
            format!(
                "sale entry {seq} is dated {date}, after the as-of date {imported_on} of its import (entry {batch})"
            )
        })
    }

    fn rate_on(&self, chip: &str, date: chrono::NaiveDate) -> Ratio {
        self.policies
            .get(chip)
            .map_or_else(Ratio::zero, |policy| policy.rate_on(date))
    }

    /// The sales import batch holding entry `seq`: (entries_from, entries_to, batch seq).
    fn batch_of(&self, seq: i64) -> Option<(i64, i64, i64)> {
        let index = self
            .batches
            .partition_point(|(from, _, _)| *from <= seq)
            .checked_sub(1)?;
        let (from, to, batch) = self.batches[index];
        (from <= seq && seq <= to).then_some((from, to, batch))
    }
}

/// Sales and returns, in ten-thousandths of a dollar.
type SalesReturns = (i128, i128);

/// `derived_period_revenue` as a map: (chip, period, rate) -> (sales, returns).
type RevenueTable = HashMap<(String, String, String), SalesReturns>;

/// The running totals of one chip. Verify adds millions of sales, so the
/// hot path compares bytes with what the chip's previous sale had and
/// touches a map only when the day changes.
#[derive(Debug, Default)]
struct ChipSums {
    chip: String,
    /// Day -> net units by group (US, restricted, other).
    daily: HashMap<String, [i64; 3]>,
    /// (period, rate) -> (sales, returns); a handful per chip.
    revenue: Vec<((Period, Ratio), SalesReturns)>,
    /// The day of this chip's previous sale, its units not yet in `daily`,
    /// its period and the remittance rate in force on it.
    current: Option<CurrentDay>,
}

#[derive(Debug)]
struct CurrentDay {
    day: String,
    units: [i64; 3],
    period: Period,
    rate: Ratio,
}

impl ChipSums {
    /// The day `day` (`YYYY-MM-DD` bytes) being summed; a new day settles
    /// the one before.
    fn current_day(&mut self, day: &[u8], context: &Context) -> Result<&mut CurrentDay> {
        if self
            .current
            .as_ref()
            .is_some_and(|current| current.day.as_bytes() == day)
        {
            return Ok(self.current.as_mut().expect("just seen"));
        }
        self.settle();
        let day = text_of(ValueRef::Text(day), "sale_date")?;
        let date = crate::period::parse_date(day).map_err(Error::Integrity)?;
        Ok(self.current.insert(CurrentDay {
            day: day.to_string(),
            units: [0; 3],
            period: Period::of(context.period_kind, date),
            rate: context.rate_on(&self.chip, date),
        }))
    }

    fn settle(&mut self) {
        if let Some(current) = self.current.take() {
            let entry = self.daily.entry(current.day).or_default();
            for (total, units) in entry.iter_mut().zip(current.units) {
                *total += units;
            }
        }
    }

    fn add_revenue(&mut self, key: (Period, Ratio), sales: i128, returns: i128) {
        match self.revenue.iter_mut().rev().find(|(k, _)| *k == key) {
            Some((_, sums)) => {
                sums.0 += sales;
                sums.1 += returns;
            }
            None => self.revenue.push((key, (sales, returns))),
        }
    }
}

/// The derived tables as the entries give them.
#[derive(Debug, Default)]
struct DerivedFromEntries {
    /// One per chip, in order of first sale (few chips: searched linearly).
    chips: Vec<ChipSums>,
    /// The chip of the previous sale (an index into `chips`).
    last_chip: usize,
    /// Lot -> period -> net restricted units.
    lots: HashMap<String, HashMap<Period, i64>>,
    /// (period, batch seq).
    batch_periods: BTreeSet<(Period, i64)>,
    /// The import batch of the previous sale: (entries_from, entries_to, batch seq).
    last_batch: Option<(i64, i64, i64)>,
    /// The (period, batch) of the previous sale, already in `batch_periods`.
    last_batch_period: Option<(Period, i64)>,
}

fn bytes_of<'a>(value: ValueRef<'a>, column: &str) -> Result<&'a [u8]> {
    match value {
        ValueRef::Text(bytes) => Ok(bytes),
        _ => Err(Error::Integrity(format!(
            "sale column {column} is not text"
        ))),
    }
}

fn text_of<'a>(value: ValueRef<'a>, column: &str) -> Result<&'a str> {
    std::str::from_utf8(bytes_of(value, column)?)
        .map_err(|_| Error::Integrity(format!("sale column {column} is not UTF-8")))
}

fn integer_of(value: ValueRef<'_>, column: &str) -> Result<i64> {
    match value {
        ValueRef::Integer(number) => Ok(number),
        _ => Err(Error::Integrity(format!(
            "sale column {column} is not an integer"
        ))),
    }
}

impl DerivedFromEntries {
    /// The index of `chip` in `chips`, added if new.
    fn chip_index(&mut self, chip: &[u8]) -> Result<usize> {
        if self.chips.get(self.last_chip).map(|c| c.chip.as_bytes()) == Some(chip) {
            return Ok(self.last_chip);
        }
        let index = match self.chips.iter().position(|c| c.chip.as_bytes() == chip) {
            Some(index) => index,
            None => {
                let chip = text_of(ValueRef::Text(chip), "chip")?.to_string();
                self.chips.push(ChipSums {
                    chip,
                    ..ChipSums::default()
                });
                self.chips.len() - 1
            }
        };
        self.last_chip = index;
        Ok(index)
    }

    /// Adds sale entry `seq` given its column values (`entry::SALE` order).
    fn add_sale(
        &mut self,
        conn: &Connection,
        seq: i64,
        values: &[ValueRef<'_>],
        context: &Context,
    ) -> Result<()> {
        let units = integer_of(values[6], "units")?;
        let is_return = bytes_of(values[1], "kind")? == b"return";
        let signed = if is_return { -units } else { units };
        let market = bytes_of(values[4], "market")?;
        let group = if market == b"US" {
            0
        } else if context.restricted.iter().any(|m| m.as_bytes() == market) {
            1
        } else {
            2
        };
        let index = self.chip_index(bytes_of(values[3], "chip")?)?;
        let day = bytes_of(values[2], "sale_date")?;
        let current = self.chips[index].current_day(day, context)?;
        current.units[group] += signed;
        let (period, sale_day_rate) = (current.period, current.rate);
        if let Some(batch) = self.batch_of(seq, context) {
            if self.last_batch_period != Some((period, batch)) {
                self.batch_periods.insert((period, batch));
                self.last_batch_period = Some((period, batch));
            }
        }
        if group != 1 {
            return Ok(());
        }
        if let ValueRef::Text(lot) = values[8] {
            let lot = text_of(ValueRef::Text(lot), "lot_id")?;
            let periods = match self.lots.get_mut(lot) {
                Some(periods) => periods,
                None => self.lots.entry(lot.to_string()).or_default(),
            };
            *periods.entry(period).or_default() += signed;
        }
        // Revenue at the rate in force on the original sale's date.
        let rate = if is_return {
            let reverses = text_of(values[10], "reverses")?;
            let sale = crate::records::sales::recorded(conn, reverses)?.ok_or_else(|| {
                Error::Integrity(format!(
                    "return entry {seq} reverses {reverses}, which is not recorded"
                ))
            })?;
            context.rate_on(&self.chips[index].chip, sale.row.sale_date)
        } else {
            sale_day_rate
        };
        let amount = i128::from(units) * i128::from(integer_of(values[7], "unit_price_usd_e4")?);
        let (sales, returns) = if is_return { (0, amount) } else { (amount, 0) };
        self.chips[index].add_revenue((period, rate), sales, returns);
        Ok(())
    }

    /// The sales import batch that holds entry `seq`, if any; sales come
    /// in runs of one batch, so the previous answer is tried first.
    fn batch_of(&mut self, seq: i64, context: &Context) -> Option<i64> {
        if let Some((from, to, batch)) = self.last_batch {
            if from <= seq && seq <= to {
                return Some(batch);
            }
        }
        let found = context.batch_of(seq)?;
        self.last_batch = Some(found);
        Some(found.2)
    }

    fn settle_pending(&mut self) {
        for sums in &mut self.chips {
            sums.settle();
        }
    }

    fn merge(&mut self, mut other: DerivedFromEntries) {
        self.settle_pending();
        other.settle_pending();
        for theirs in other.chips {
            let index = match self.chips.iter().position(|c| c.chip == theirs.chip) {
                Some(index) => index,
                None => {
                    self.chips.push(ChipSums {
                        chip: theirs.chip.clone(),
                        ..ChipSums::default()
                    });
                    self.chips.len() - 1
                }
            };
            let mine = &mut self.chips[index];
            for (day, units) in theirs.daily {
                let entry = mine.daily.entry(day).or_default();
                for group in 0..3 {
                    entry[group] += units[group];
                }
            }
            for (key, (sales, returns)) in theirs.revenue {
                mine.add_revenue(key, sales, returns);
            }
        }
        for (lot, periods) in other.lots {
            let mine = self.lots.entry(lot).or_default();
            for (period, units) in periods {
                *mine.entry(period).or_default() += units;
            }
        }
        self.batch_periods.extend(other.batch_periods);
    }

    /// Compares with the stored derived tables; a message for the first difference.
    fn compare_with_stored(&mut self, conn: &Connection) -> Result<Option<String>> {
        self.settle_pending();
        type Compare = fn(&DerivedFromEntries, &Connection) -> Result<Option<String>>;
        // In this order, stopping at the first difference.
        let compares: [Compare; 6] = [
            Self::compare_daily,
            Self::compare_lots,
            Self::compare_revenue,
            |_, conn| compare_held_units(conn),
            |_, conn| compare_screening_names(conn),
            Self::compare_batches,
        ];
        for compare in compares {
            if let Some(message) = compare(self, conn)? {
                return Ok(Some(message));
            }
        }
        Ok(None)
    }

    /// `derived_daily_units` against the sales.
    fn compare_daily(&self, conn: &Connection) -> Result<Option<String>> {
        let mut stored: HashMap<(String, String), [i64; 3]> = HashMap::new();
        let mut statement = conn.prepare(
            "SELECT chip, day, us_net_units, restricted_net_units, other_net_units FROM derived_daily_units",
        )?;
        let mut rows = statement.query([])?;
        while let Some(row) = rows.next()? {
            let units = [row.get(2)?, row.get(3)?, row.get(4)?];
            stored.insert((row.get(0)?, row.get(1)?), units);
        }
        let computed: HashMap<(String, String), [i64; 3]> = self
            .chips
            .iter()
            .flat_map(|sums| {
                sums.daily
                    .iter()
                    .map(move |(day, units)| ((sums.chip.clone(), day.clone()), *units))
            })
            .collect();
        Ok(first_difference("derived_daily_units", &stored, &computed))
    }

    /// `derived_lot_units` against the restricted sales naming lots.
    fn compare_lots(&self, conn: &Connection) -> Result<Option<String>> {
        let mut stored: HashMap<(String, String), i64> = HashMap::new();
        let mut statement =
            conn.prepare("SELECT lot_id, period, shipped_net_units FROM derived_lot_units")?;
        let mut rows = statement.query([])?;
        while let Some(row) = rows.next()? {
            stored.insert((row.get(0)?, row.get(1)?), row.get(2)?);
        }
        let computed: HashMap<(String, String), i64> = self
            .lots
            .iter()
            .flat_map(|(lot, periods)| {
                periods
                    .iter()
                    .map(move |(p, units)| ((lot.clone(), p.to_string()), *units))
            })
            .collect();
        Ok(first_difference("derived_lot_units", &stored, &computed))
    }

    /// `derived_period_revenue` against the restricted sales and returns.
    fn compare_revenue(&self, conn: &Connection) -> Result<Option<String>> {
        let mut stored: RevenueTable = HashMap::new();
        let mut statement = conn.prepare(
            "SELECT chip, period, remittance_rate, sales_usd_e4, returns_usd_e4 FROM derived_period_revenue",
        )?;
        let mut rows = statement.query([])?;
        while let Some(row) = rows.next()? {
            let sales = crate::rules::facts::parse_e4(&row.get::<_, String>(3)?)?;
            let returns = crate::rules::facts::parse_e4(&row.get::<_, String>(4)?)?;
            stored.insert((row.get(0)?, row.get(1)?, row.get(2)?), (sales, returns));
        }
        let computed: RevenueTable = self
            .chips
            .iter()
            .flat_map(|chip| {
                chip.revenue.iter().map(move |((p, rate), sums)| {
                    ((chip.chip.clone(), p.to_string(), rate.to_string()), *sums)
                })
            })
            .collect();
        Ok(first_difference(
            "derived_period_revenue",
            &stored,
            &computed,
        ))
    }

    /// `derived_batch_periods` against the import batches.
    fn compare_batches(&self, conn: &Connection) -> Result<Option<String>> {
        let stored: BTreeSet<(String, i64)> = conn
            .prepare("SELECT period, batch_seq FROM derived_batch_periods")?
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        let computed: BTreeSet<(String, i64)> = self
            .batch_periods
            .iter()
            .map(|(p, batch)| (p.to_string(), *batch))
            .collect();
        if stored == computed {
            return Ok(None);
        }
        let difference: Vec<_> = stored.symmetric_difference(&computed).take(3).collect();
        Ok(Some(format!(
            "derived_batch_periods disagrees with the entries about (period, batch) {difference:?}"
        )))
    }
}

/// `derived_held_units` against the hold, hold_release and sale entries:
/// per hold, its units less what sales drew, or nothing once released.
fn compare_held_units(conn: &Connection) -> Result<Option<String>> {
    type Key = crate::rules::facts::HeldRowKey;
    let computed = crate::rules::facts::held_units_from_entries(conn)?;
    let mut stored: HashMap<Key, i64> = HashMap::new();
    let mut statement = conn.prepare(
        "SELECT chip, planned_date, expires_on, lot_id, held_units FROM derived_held_units",
    )?;
    let mut rows = statement.query([])?;
    while let Some(row) = rows.next()? {
        let key: Key = (row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?);
        let held_units: i64 = row.get(4)?;
        if held_units == 0 {
            // Rows are deleted at 0; one left behind was not written by qledger.
            return Ok(Some(format!(
                "derived_held_units for {key:?} says 0: such rows are deleted"
            )));
        }
        stored.insert(key, held_units);
    }
    Ok(first_difference("derived_held_units", &stored, &computed))
}

/// `derived_screening_names` against the screening entries: N(name) of
/// every name and alt name (SPEC §3.11).
fn compare_screening_names(conn: &Connection) -> Result<Option<String>> {
    let computed = crate::records::screening::names_from_entries(conn)?;
    let stored: BTreeSet<(String, String, i64, String)> = conn
        .prepare(
            "SELECT effective_from, name_key, entry_seq, listed_name FROM derived_screening_names",
        )?
        .query_map([], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
        })?
        .collect::<rusqlite::Result<_>>()?;
    if stored == computed {
        return Ok(None);
    }
    let difference: Vec<_> = stored.symmetric_difference(&computed).take(3).collect();
    Ok(Some(format!(
        "derived_screening_names disagrees with the screening entries about {difference:?}"
    )))
}

/// The first key whose values differ between a stored derived table and
/// what the entries give (absent counts as zero).
fn first_difference<K, V>(
    table: &str,
    stored: &HashMap<K, V>,
    computed: &HashMap<K, V>,
) -> Option<String>
where
    K: Ord + std::hash::Hash + std::fmt::Debug,
    V: Default + PartialEq + std::fmt::Debug + Copy,
{
    let keys: BTreeSet<&K> = stored.keys().chain(computed.keys()).collect();
    for key in keys {
        let stored_value = stored.get(key).copied().unwrap_or_default();
        let computed_value = computed.get(key).copied().unwrap_or_default();
        if stored_value != computed_value {
            return Some(format!(
                "{table} for {key:?} says {stored_value:?} but the entries give {computed_value:?}"
            ));
        }
    }
    None
}

/// The outcome of checking one range of entries.
struct RangeCheck {
    /// Seq and hash of the last entry checked.
    last: ChainHead,
    /// The first bad entry and why, if any.
    bad: Option<(i64, String)>,
    /// The first sale not written by its import as recorded: reported only
    /// once the whole chain checks out (a changed batch entry later in the
    /// chain would otherwise be blamed on the sales before it).
    act: Option<(i64, String)>,
    derived: DerivedFromEntries,
}

struct Cursor<'stmt> {
    kind: &'static EntryKind,
    index: usize,
    rows: rusqlite::Rows<'stmt>,
    seq: Option<i64>,
}

impl Cursor<'_> {
    fn advance(&mut self) -> Result<()> {
        self.seq = match self.rows.next()? {
            Some(row) => Some(row.get(0)?),
            None => None,
        };
        Ok(())
    }
}

/// Checks entries `lo..=hi`, starting from `previous` (the hash of entry lo − 1).
fn check_range(
    conn: &Connection,
    lo: i64,
    hi: i64,
    previous: Hash,
    anchors: &[Anchor],
    context: &Context,
) -> Result<RangeCheck> {
    let sale_index = kind_index(SALE.table);
    let mut statements = range_statements(conn)?;
    let mut cursors = open_cursors(&mut statements, lo, hi)?;
    let mut check = RangeCheck::after(ChainHead {
        entries: lo - 1,
        hash: previous,
    });
    let mut buffer = Vec::with_capacity(512);
    let mut expected_seq = lo;
    // The cursor that held the previous entry: most entries follow one of the same kind.
    let mut hint = sale_index;
    loop {
        let index = match next_cursor(&cursors, hint, expected_seq) {
            Ok(Some(index)) => index,
            Ok(None) => break,
            Err(bad) => return Ok(check.faulted(bad)),
        };
        hint = index;
        let cursor = &mut cursors[index];
        let seq = cursor.seq.expect("cursor with a row");
        if let Some(bad) = misplaced(cursor, seq, expected_seq) {
            return Ok(check.faulted(bad));
        }
        let row = cursor.rows.get().expect("cursor stands on a row");
        let mut values = [ValueRef::Null; COLUMNS_MAX];
        let hash = match entry_hash(
            row,
            cursor.kind,
            seq,
            &check.last.hash,
            &mut buffer,
            &mut values,
        )? {
            Ok(hash) => hash,
            Err(bad) => return Ok(check.faulted(bad)),
        };
        if let Some(bad) = anchor_mismatch(anchors, seq, &hash) {
            return Ok(check.faulted(bad));
        }
        if cursor.index == sale_index {
            let sale = &values[..cursor.kind.columns.len()];
            if let Some(bad) = check.note_sale(conn, seq, sale, context)? {
                return Ok(check.faulted(bad));
            }
        }
        check.last = ChainHead { entries: seq, hash };
        expected_seq += 1;
        cursor.advance()?;
    }
    if expected_seq != hi + 1 {
        return Ok(check.faulted((expected_seq, format!("entry {expected_seq} is missing"))));
    }
    Ok(check)
}

impl RangeCheck {
    /// Nothing checked yet after `last`.
    fn after(last: ChainHead) -> RangeCheck {
        RangeCheck {
            last,
            bad: None,
            act: None,
            derived: DerivedFromEntries::default(),
        }
    }

    /// The range with its first fault.
    fn faulted(mut self, bad: (i64, String)) -> RangeCheck {
        self.bad = Some(bad);
        self
    }

    /// Counts sale entry `seq` (its `values`) in the derived figures and
    /// notes whether its import batch recorded it; an unreadable sale is
    /// the range's fault.
    fn note_sale(
        &mut self,
        conn: &Connection,
        seq: i64,
        values: &[ValueRef<'_>],
        context: &Context,
    ) -> Result<Option<(i64, String)>> {
        if self.act.is_none() {
            self.act = context
                .sale_outside_its_batch(seq, values[2])
                .map(|message| (seq, message));
        }
        match self.derived.add_sale(conn, seq, values, context) {
            // Reported in chain order: an earlier chunk may hold the
            // changed entry that made this one unreadable.
            Err(Error::Integrity(message)) => Ok(Some((seq, message))),
            Err(err) => Err(err),
            Ok(()) => Ok(None),
        }
    }
}

/// One cursor per statement over entries `lo..=hi`, each on its first row.
fn open_cursors<'stmt>(
    statements: &'stmt mut [(&'static EntryKind, rusqlite::Statement<'_>)],
    lo: i64,
    hi: i64,
) -> Result<Vec<Cursor<'stmt>>> {
    let mut cursors = Vec::with_capacity(statements.len());
    for (index, (kind, statement)) in statements.iter_mut().enumerate() {
        let mut cursor = Cursor {
            kind,
            index,
            rows: statement.query((lo, hi))?,
            seq: None,
        };
        cursor.advance()?;
        cursors.push(cursor);
    }
    Ok(cursors)
}

/// The position of the entry kind stored in `table` in `ALL_KINDS`.
fn kind_index(table: &str) -> usize {
    ALL_KINDS
        .iter()
        .position(|kind| kind.table == table)
        .expect("registered")
}

/// One statement per entry kind, reading its entries of a seq range in order.
fn range_statements(
    conn: &Connection,
) -> Result<Vec<(&'static EntryKind, rusqlite::Statement<'_>)>> {
    let mut statements = Vec::with_capacity(ALL_KINDS.len());
    for kind in ALL_KINDS {
        let trailing: String = kind.trailing().map(|name| format!(", {name}")).collect();
        let sql = format!(
            "SELECT seq, {}, hash{trailing} FROM {} WHERE seq BETWEEN ?1 AND ?2 ORDER BY seq",
            kind.columns.join(", "),
            kind.table
        );
        statements.push((kind, conn.prepare(&sql)?));
    }
    Ok(statements)
}

/// The cursor that holds the next entry: `hint` when it holds
/// `expected_seq`, else the one with the lowest seq (`None`: all done).
/// An entry found in two tables is bad.
fn next_cursor(
    cursors: &[Cursor<'_>],
    hint: usize,
    expected_seq: i64,
) -> std::result::Result<Option<usize>, (i64, String)> {
    if cursors[hint].seq == Some(expected_seq) {
        return Ok(Some(hint));
    }
    let mut best: Option<usize> = None;
    for (index, cursor) in cursors.iter().enumerate() {
        let Some(seq) = cursor.seq else { continue };
        match best {
            Some(b) if cursors[b].seq == Some(seq) => {
                let tables = (cursors[b].kind.table, cursor.kind.table);
                let message = format!(
                    "entry {seq} appears twice (in {} and {})",
                    tables.0, tables.1
                );
                return Err((seq, message));
            }
            Some(b) if cursors[b].seq.unwrap_or(i64::MAX) < seq => {}
            _ => best = Some(index),
        }
    }
    Ok(best)
}

/// Why entry `seq`, next in the chain, is out of place (a gap, a repeat,
/// ledger settings anywhere but entry 1), if it is.
fn misplaced(cursor: &Cursor<'_>, seq: i64, expected_seq: i64) -> Option<(i64, String)> {
    if seq != expected_seq {
        let message = if seq > expected_seq {
            format!("entry {expected_seq} is missing (the next entry found is {seq})")
        } else {
            format!("entry {seq} is out of sequence")
        };
        return Some((expected_seq, message));
    }
    let is_settings = cursor.kind.table == LEDGER_SETTINGS.table;
    if (seq == 1) != is_settings {
        let message = format!(
            "entry {seq} is a {} entry; only entry 1 holds the ledger settings",
            cursor.kind.table
        );
        return Some((seq, message));
    }
    None
}

/// The chain hash of entry `seq` (its canonical bytes after `previous`),
/// its values left in `values`; `Err` when the stored hash differs.
fn entry_hash<'row>(
    row: &'row rusqlite::Row<'_>,
    kind: &EntryKind,
    seq: i64,
    previous: &Hash,
    buffer: &mut Vec<u8>,
    values: &mut [ValueRef<'row>; COLUMNS_MAX],
) -> Result<std::result::Result<Hash, (i64, String)>> {
    let column_count = kind.columns.len();
    entry::canonical_start(buffer, seq, kind);
    for (column, value) in values.iter_mut().enumerate().take(column_count) {
        *value = row.get_ref(column + 1)?;
        entry::encode_value(buffer, *value);
    }
    let trailing_count = kind.trailing_count();
    if trailing_count > 0 {
        let mut trailing = [ValueRef::Null; 4];
        for (index, value) in trailing.iter_mut().enumerate().take(trailing_count) {
            *value = row.get_ref(column_count + 2 + index)?;
        }
        entry::encode_trailing(buffer, kind, &trailing[..trailing_count]);
    }
    let hash = entry::chain_hash(previous, buffer);
    if row.get_ref(column_count + 1)?.as_blob().ok() == Some(hash.as_slice()) {
        return Ok(Ok(hash));
    }
    Ok(Err((
        seq,
        format!(
            "entry {seq} ({}) does not match its hash: it, or the hash stored with it, was changed after it was written",
            kind.table
        ),
    )))
}

/// Which anchor (digest or checkpoint) disagrees with entry `seq`'s hash.
fn anchor_mismatch(anchors: &[Anchor], seq: i64, hash: &Hash) -> Option<(i64, String)> {
    let anchor = anchors
        .iter()
        .find(|anchor| anchor.head.entries == seq && anchor.head.hash != *hash)?;
    Some((
        seq,
        format!(
            "the chain does not match {}: entries up to {seq} were rewritten since it was taken",
            anchor.source
        ),
    ))
}

/// Chunks of the chain `1..=entries`, in order: at least 2, at most
/// `CHUNKS_MAX`, of about `chunk_entries` each.
fn chunk_bounds(entries: i64, chunking: &Chunking) -> Vec<(i64, i64)> {
    let chunk_entries = chunking.chunk_entries.max(1);
    let chunk_count = (entries / chunk_entries).clamp(2, CHUNKS_MAX);
    (0..chunk_count)
        .map(|k| {
            let lo = entries * k / chunk_count + 1;
            let hi = entries * (k + 1) / chunk_count;
            (lo, hi)
        })
        .collect()
}

/// Checks the chunks on two threads, one per core (`first` here and the
/// first helper), taken in turn so both stay busy to the end even when one
/// core is slower (shared machines), while the second helper replays the
/// rules on its own snapshot of the same head. The ranges in chain order,
/// and the replay's answer (it counts only if everything else holds).
fn check_in_parallel(
    first: &Connection,
    [second, third]: [Connection; 2],
    bounds: &[(i64, i64)],
    anchors: &[Anchor],
    context: &Context,
) -> Result<(Vec<RangeCheck>, Result<Option<crate::store::replay::Fault>>)> {
    let next_chunk = std::sync::atomic::AtomicUsize::new(0);
    let work = |conn: &Connection| -> Result<Vec<(usize, RangeCheck)>> {
        let mut done = Vec::new();
        loop {
            let k = next_chunk.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let Some(&(lo, hi)) = bounds.get(k) else {
                return Ok(done);
            };
            done.push((k, check_chunk(conn, lo, hi, anchors, context)?));
        }
    };
    let (mine, theirs, replayed) = std::thread::scope(|scope| {
        let work = &work;
        let helper = scope.spawn(move || work(&second));
        let replayer = scope.spawn(move || {
            let settings = crate::store::ledger::read_settings(&third)?;
            crate::store::replay::replay(&third, &settings)
        });
        let mine = work(first);
        let theirs = helper
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        let replayed = replayer
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (mine, theirs, replayed)
    });
    let mut ranges: Vec<(usize, RangeCheck)> = mine?;
    ranges.extend(theirs?);
    ranges.sort_by_key(|(k, _)| *k);
    debug_assert_eq!(ranges.len(), bounds.len(), "every chunk checked once");
    Ok((
        ranges.into_iter().map(|(_, range)| range).collect(),
        replayed,
    ))
}

/// Checks chunk `lo..=hi` from the stored hash of entry lo − 1 (which the
/// chunk before checks in turn).
fn check_chunk(
    conn: &Connection,
    lo: i64,
    hi: i64,
    anchors: &[Anchor],
    context: &Context,
) -> Result<RangeCheck> {
    let previous = if lo == 1 {
        Some(GENESIS_HASH)
    } else {
        stored_hash(conn, lo - 1)?
    };
    match previous {
        Some(previous) => check_range(conn, lo, hi, previous, anchors, context),
        // The chunk before reports the missing entry.
        None => {
            let start = ChainHead {
                entries: lo - 1,
                hash: GENESIS_HASH,
            };
            let bad = (lo - 1, format!("entry {} is missing", lo - 1));
            Ok(RangeCheck::after(start).faulted(bad))
        }
    }
}

/// The stored hash of entry `seq`.
fn stored_hash(conn: &Connection, seq: i64) -> Result<Option<Hash>> {
    for kind in ALL_KINDS {
        let stored: Option<Vec<u8>> = conn
            .prepare_cached(&format!("SELECT hash FROM {} WHERE seq = ?1", kind.table))?
            .query_row([seq], |row| row.get(0))
            .optional()?;
        if let Some(bytes) = stored {
            return Ok(bytes.as_slice().try_into().ok());
        }
    }
    Ok(None)
}

/// The restricted markets as entry 1 records them (empty if unreadable:
/// entry 1 is then reported bad by the range that checks it).
fn restricted_markets(conn: &Connection) -> Result<Vec<String>> {
    let markets: Option<String> = conn
        .query_row(
            "SELECT restricted_markets FROM ledger_settings ORDER BY seq LIMIT 1",
            [],
            |row| row.get(0),
        )
        .optional()?;
    Ok(markets.map_or_else(Vec::new, |m| m.split(',').map(str::to_string).collect()))
}

fn bad_report(check: &RangeCheck, seq: i64, message: String) -> VerifyReport {
    VerifyReport {
        entries: check.last.entries,
        head: check.last.hash,
        first_bad_entry: Some(seq),
        message: Some(message),
    }
}

/// A connection for a whole-file scan, in a read transaction.
fn reading_connection(path: &Path) -> Result<Connection> {
    let conn = crate::store::ledger::open_connection_as(path, crate::store::ledger::Access::Read)?;
    conn.execute_batch("BEGIN DEFERRED")?;
    Ok(conn)
}

/// Verifies the ledger at `path`: every seq from 1 to the head present
/// exactly once, entry 1 the settings, every stored hash equal to the
/// recomputed one, the hash at `digest.entries` equal to `digest.hash` when
/// given, and the derived tables equal to what the entries give.
pub fn verify_ledger(path: &Path, anchors: &[Anchor]) -> Result<VerifyReport> {
    verify_ledger_chunked(path, anchors, Chunking::default())
}

/// [`verify_ledger`] with the chain split as `chunking` says.
pub fn verify_ledger_chunked(
    path: &Path,
    anchors: &[Anchor],
    chunking: Chunking,
) -> Result<VerifyReport> {
    for _attempt in 0..3 {
        let first = reading_connection(path)?;
        // The schema first: reading the chain depends on its columns.
        if let Some(message) = crate::store::schema::first_difference(&first)? {
            return Ok(fault_report(ChainHead::GENESIS, None, message));
        }
        let head = read_head(&first)?;
        let parallel_min = chunking.parallel_entries_min.max(2);
        if head.entries < parallel_min {
            return finish(
                &first,
                head,
                vec![check_range(
                    &first,
                    1,
                    head.entries,
                    GENESIS_HASH,
                    anchors,
                    &Context::read(&first)?,
                )?],
                anchors,
                None,
            );
        }
        let second = reading_connection(path)?;
        let third = reading_connection(path)?;
        if read_head(&second)? != head || read_head(&third)? != head {
            continue; // a writer committed in between: take the snapshots again
        }
        let context = Context::read(&first)?;
        crate::trace::phase("verify", "snapshots");
        let bounds = chunk_bounds(head.entries, &chunking);
        let helpers = [second, third];
        let (ranges, replayed) = check_in_parallel(&first, helpers, &bounds, anchors, &context)?;
        crate::trace::phase("verify", "chain checked");
        let finished = finish(&first, head, ranges, anchors, Some(replayed));
        crate::trace::phase("verify", "derived tables compared");
        return finished;
    }
    Err(Error::Environment(
        "the ledger kept changing while verify took its snapshots; run verify again".to_string(),
    ))
}

/// The acts of commands (SPEC §3.15 item 5): the as-of dates of the entries
/// written by this version (those recording their actor) never run
/// backwards, and every close names the chain head just before it and was
/// made after its period's last day. Returns the first entry at fault.
fn check_acts(
    conn: &Connection,
    settings: &crate::store::ledger::Settings,
) -> Result<Option<(i64, String)>> {
    let mut acts: Vec<(i64, String, &str)> = Vec::new();
    for (table, column) in crate::store::clock::AS_OF_COLUMNS {
        let kind = ALL_KINDS.iter().find(|k| k.table == *table);
        if !kind.is_some_and(|k| k.records_actor) {
            continue;
        }
        let mut statement = conn.prepare(&format!(
            "SELECT seq, {column} FROM {table} WHERE actor IS NOT NULL"
        ))?;
        let rows = statement.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?;
        for row in rows {
            let (seq, as_of) = row?;
            acts.push((seq, as_of, table));
        }
    }
    acts.sort();
    for pair in acts.windows(2) {
        let ((_, earlier, _), (seq, as_of, table)) = (&pair[0], &pair[1]);
        if as_of < earlier {
            return Ok(Some((
                *seq,
                format!(
                    "entry {seq} ({table}) was written as of {as_of}, before the as-of date {earlier} of an earlier write: the ledger's clock ran backwards"
                ),
            )));
        }
    }
    let closes: Vec<(i64, String, String, i64, String)> = conn
        .prepare(
            "SELECT seq, period, closed_on, head_entries, head_hash FROM period_close ORDER BY seq",
        )?
        .query_map([], |row| row.try_into())?
        .collect::<rusqlite::Result<_>>()?;
    for (seq, period, closed_on, head_entries, head_hash) in closes {
        let before = stored_hash(conn, seq - 1)?.map(hex::encode);
        if head_entries != seq - 1 || before.as_deref() != Some(head_hash.as_str()) {
            return Ok(Some((
                seq,
                format!(
                    "the close of {period} (entry {seq}) names the head {head_entries}:{head_hash}, not the chain just before it"
                ),
            )));
        }
        let over = Period::parse(settings.period_kind, &period)
            .ok()
            .zip(crate::period::parse_date(&closed_on).ok())
            .is_some_and(|(p, on)| on > p.last_day());
        if !over {
            return Ok(Some((
                seq,
                format!("the close of {period} (entry {seq}) is dated {closed_on}, before the period was over"),
            )));
        }
    }
    Ok(None)
}

fn finish(
    conn: &Connection,
    head: ChainHead,
    ranges: Vec<RangeCheck>,
    anchors: &[Anchor],
    replayed: Option<Result<Option<crate::store::replay::Fault>>>,
) -> Result<VerifyReport> {
    if head.entries == 0 {
        let message = "the ledger has no entries".to_string();
        return Ok(fault_report(ChainHead::GENESIS, Some(1), message));
    }
    if let Some((seq, message)) = row_outside_chain(conn)? {
        return Ok(fault_report(head, Some(seq), message));
    }
    let mut derived = DerivedFromEntries::default();
    let mut last = ChainHead::GENESIS;
    assert!(ALL_KINDS
        .iter()
        .all(|kind| kind.columns.len() <= COLUMNS_MAX && kind.trailing_count() <= 4));
    let mut ranges_act = Vec::new();
    for range in ranges {
        if let Some((seq, message)) = &range.bad {
            return Ok(bad_report(&range, *seq, message.clone()));
        }
        last = range.last;
        ranges_act.push(range.act);
        derived.merge(range.derived);
    }
    debug_assert_eq!(last, head, "the checked chain ends at the stored head");
    if let Some(anchor) = anchors.iter().find(|a| a.head.entries > last.entries) {
        let message = format!(
            "{} names entry {} but the ledger holds only {} entries: entries were removed",
            anchor.source, anchor.head.entries, last.entries
        );
        return Ok(fault_report(last, Some(last.entries + 1), message));
    }
    if let Some((seq, message)) = ranges_act.into_iter().flatten().next() {
        return Ok(fault_report(last, Some(seq), message));
    }
    if let Some(message) = derived.compare_with_stored(conn)? {
        return Ok(fault_report(last, None, message));
    }
    if let Some((seq, message)) = lawful_and_sealed(conn, replayed)? {
        return Ok(fault_report(last, Some(seq), message));
    }
    Ok(VerifyReport {
        entries: last.entries,
        head: last.hash,
        first_bad_entry: None,
        message: None,
    })
}

/// A failed verification of the chain up to `last`.
fn fault_report(last: ChainHead, first_bad_entry: Option<i64>, message: String) -> VerifyReport {
    VerifyReport {
        entries: last.entries,
        head: last.hash,
        first_bad_entry,
        message: Some(message),
    }
}

/// A row numbered below 1, which would sit outside every range checked.
fn row_outside_chain(conn: &Connection) -> Result<Option<(i64, String)>> {
    for kind in ALL_KINDS {
        let outside: Option<i64> = conn.query_row(
            &format!("SELECT min(seq) FROM {} WHERE seq < 1", kind.table),
            [],
            |row| row.get(0),
        )?;
        if let Some(seq) = outside {
            let message = format!(
                "{} holds a row numbered {seq}, outside the chain (entries are numbered from 1)",
                kind.table
            );
            return Ok(Some((seq, message)));
        }
    }
    Ok(None)
}

/// SPEC §3.15 items 4 and 5, once the chain and derived tables hold: the
/// acts, the rule replay (`replayed` when it ran beside the chain check)
/// and every sealed period. The first fault.
fn lawful_and_sealed(
    conn: &Connection,
    replayed: Option<Result<Option<crate::store::replay::Fault>>>,
) -> Result<Option<(i64, String)>> {
    let settings = crate::store::ledger::read_settings(conn)?;
    if let Some(fault) = check_acts(conn, &settings)? {
        return Ok(Some(fault));
    }
    let replayed = match replayed {
        Some(replayed) => replayed?,
        None => crate::store::replay::replay(conn, &settings)?,
    };
    crate::trace::phase("verify", "rules replayed");
    if let Some((seq, message)) = replayed {
        let message = format!("entry {seq} was not lawful when it was appended: {message}");
        return Ok(Some((seq, message)));
    }
    crate::report::check_sealed(conn, &settings)
}
