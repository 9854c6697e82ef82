//! `LedgerFacts`: what the rules know, read from SQLite and overlaid with
//! the effect of the rows an import has applied so far. The overlay is
//! written to the derived tables once, at the end (`flush_derived`), so
//! the per-row cost is a few hash-map updates, not SQL.

use crate::error::{Error, Result};
use crate::money::{Ratio, Usd};
use crate::period::{format_date, parse_date, Period};
use crate::records::customers::{self, CustomerEvent};
use crate::records::lots::{self, LotEvent, LotState};
use crate::records::policy;
use crate::records::screening::{self, Hit};
use crate::records::supply::{self, SupplyAttestation};
use crate::rules::{
    hold_is_active, hold_remaining_units, ActiveHold, ChipPolicy, Facts, LotCommitted, Window,
    WindowUnits,
};
use crate::store::ledger::{MarketGroup, Settings};
use chrono::NaiveDate;
use rusqlite::{Connection, OptionalExtension};
use std::collections::{BTreeMap, BTreeSet};

/// FxHash maps: the import looks these up per row, with keys no outsider chooses.
type HashMap<K, V> = rustc_hash::FxHashMap<K, V>;
use std::rc::Rc;

/// Net units of one chip on one day, by market group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DayUnits {
    /// US.
    pub us_net: i64,
    /// Restricted group.
    pub restricted_net: i64,
    /// Everything else.
    pub other_net: i64,
}

impl DayUnits {
    fn add(&mut self, group: MarketGroup, units: i64) {
        match group {
            MarketGroup::Us => self.us_net += units,
            MarketGroup::Restricted => self.restricted_net += units,
            MarketGroup::Other => self.other_net += units,
        }
    }
}

/// A recorded row's effect on the facts.
#[derive(Debug, Clone, Copy)]
pub struct Applied<'a> {
    /// Chip.
    pub chip: &'a str,
    /// The row's own date.
    pub date: NaiveDate,
    /// Its market's group.
    pub group: MarketGroup,
    /// Units, negative for a return.
    pub signed_units: i64,
    /// The lot it names (counted for restricted rows only).
    pub lot_id: Option<&'a str>,
    /// The hold it drew and the units drawn.
    pub draw: Option<(i64, i64)>,
    /// For restricted rows: the rate of the original sale's date and the
    /// amount (`units × unit price`).
    pub revenue: Option<(Ratio, Usd)>,
}

/// Facts over one connection, with an in-memory overlay.
pub struct LedgerFacts<'conn> {
    conn: &'conn Connection,
    settings: Settings,
    closed: BTreeSet<Period>,
    policies: HashMap<String, Rc<ChipPolicy>>,
    customers: HashMap<String, Rc<Vec<CustomerEvent>>>,
    lots: HashMap<String, Rc<Vec<LotEvent>>>,
    /// Lot -> net shipped (recorded plus applied here).
    lot_shipped: HashMap<String, i64>,
    /// What was applied here (to flush to the derived tables).
    deltas: Deltas,
    /// The ledger clock.
    as_of: NaiveDate,
    /// Holds this import drew from: seq -> (the hold as found, units drawn here).
    draws: HashMap<i64, (ActiveHold, i64)>,
    /// Lot -> remaining units of active holds naming it (recorded, less draws here).
    lot_held: HashMap<String, i64>,
    /// chip -> windows asked for so far, with their current units.
    windows: HashMap<String, Vec<(Window, WindowUnits)>>,
    /// Reference facts of the newer rules (supply, screening).
    screening: ScreeningFacts,
}

/// A customer's hits in one snapshot under one name: (snapshot, name, hits).
type SeenHits = (NaiveDate, String, Rc<[Hit]>);

/// Supply attestations and screening hits looked up so far.
#[derive(Default, Clone)]
struct ScreeningFacts {
    /// chip -> period -> its attestations, oldest first.
    supply: HashMap<String, HashMap<Period, Vec<Rc<SupplyAttestation>>>>,
    /// Dates of the recorded snapshots, oldest first (read once).
    snapshots: Option<Vec<NaiveDate>>,
    /// customer -> (snapshot, its name then, hits): looked up by `&str`,
    /// so the nightly import allocates nothing per row once seen.
    hits: HashMap<String, Vec<SeenHits>>,
}

/// What a `LedgerFacts` looked up, kept for the next one while the ledger
/// and the clock stay as they were (see `desk::Desk`).
#[derive(Default)]
pub struct FactsCache {
    closed: Option<BTreeSet<Period>>,
    policies: HashMap<String, Rc<ChipPolicy>>,
    customers: HashMap<String, Rc<Vec<CustomerEvent>>>,
    lots: HashMap<String, Rc<Vec<LotEvent>>>,
    lot_shipped: HashMap<String, i64>,
    lot_held: HashMap<String, i64>,
    windows: HashMap<String, Vec<(Window, WindowUnits)>>,
    screening: ScreeningFacts,
}

impl<'conn> LedgerFacts<'conn> {
    /// Facts as they stand in `conn`, on the ledger clock `as_of`.
    pub fn new(
        conn: &'conn Connection,
        settings: Settings,
        as_of: NaiveDate,
    ) -> Result<LedgerFacts<'conn>> {
        LedgerFacts::with_cache(conn, settings, as_of, FactsCache::default())
    }

    /// Facts that start from what an earlier `LedgerFacts` looked up. The
    /// caller guarantees the ledger (its data version) and `as_of` have not
    /// changed since.
    pub fn with_cache(
        conn: &'conn Connection,
        settings: Settings,
        as_of: NaiveDate,
        cache: FactsCache,
    ) -> Result<LedgerFacts<'conn>> {
        let closed = match cache.closed {
            Some(closed) => closed,
            None => closed_periods(conn, &settings)?,
        };
        Ok(LedgerFacts {
            conn,
            settings,
            closed,
            policies: cache.policies,
            customers: cache.customers,
            lots: cache.lots,
            lot_shipped: cache.lot_shipped,
            deltas: Deltas::default(),
            as_of,
            draws: HashMap::default(),
            lot_held: cache.lot_held,
            windows: cache.windows,
            screening: cache.screening,
        })
    }

    /// What these facts looked up, for reuse. Only for facts that applied
    /// nothing (a check), so the cache holds the ledger as recorded.
    pub fn into_cache(self) -> FactsCache {
        assert!(
            self.deltas == Deltas::default() && self.draws.is_empty(),
            "only unmodified facts are cached"
        );
        FactsCache {
            closed: Some(self.closed),
            policies: self.policies,
            customers: self.customers,
            lots: self.lots,
            lot_shipped: self.lot_shipped,
            lot_held: self.lot_held,
            windows: self.windows,
            screening: self.screening,
        }
    }

    /// The connection the facts read.
    pub fn conn(&self) -> &'conn Connection {
        self.conn
    }

    /// Applies a recorded sale (positive units) or return (negative) of
    /// `chip` on `date`: window totals, lot usage, and the hold it drew.
    pub fn apply(&mut self, row: Applied<'_>) -> Result<()> {
        let Applied {
            chip,
            date,
            group,
            signed_units,
            lot_id,
            draw,
            revenue,
        } = row;
        self.apply_units(chip, date, group, signed_units);
        let period = Period::of(self.settings.period_kind, date);
        self.deltas.periods.insert(period);
        if group == MarketGroup::Restricted {
            // amount = units × unit price, at the rate of the sale's date.
            let revenue = revenue.expect("restricted rows carry their revenue");
            self.apply_restricted(chip, period, signed_units, lot_id, revenue)?;
        }
        if let Some((hold_seq, drawn)) = draw {
            self.apply_draw(hold_seq, drawn)?;
        }
        Ok(())
    }

    /// The day's units of the chip and the cached windows holding the day.
    fn apply_units(&mut self, chip: &str, date: NaiveDate, group: MarketGroup, signed_units: i64) {
        match self.deltas.days.get_mut(chip) {
            Some(days) => days.entry(date).or_default().add(group, signed_units),
            None => {
                let mut units = DayUnits::default();
                units.add(group, signed_units);
                self.deltas
                    .days
                    .insert(chip.to_string(), BTreeMap::from([(date, units)]));
            }
        }
        let Some(windows) = self.windows.get_mut(chip) else {
            return;
        };
        for (window, units) in windows.iter_mut() {
            if window.contains(date) {
                match group {
                    MarketGroup::Us => units.us_net += signed_units,
                    MarketGroup::Restricted => units.restricted_net += signed_units,
                    MarketGroup::Other => {}
                }
            }
        }
    }

    /// A restricted row's lot units and revenue (sales and returns summed apart).
    fn apply_restricted(
        &mut self,
        chip: &str,
        period: Period,
        signed_units: i64,
        lot_id: Option<&str>,
        (rate, amount): (Ratio, Usd),
    ) -> Result<()> {
        if let Some(lot_id) = lot_id {
            let shipped = self.shipped_of(lot_id)?;
            self.lot_shipped
                .insert(lot_id.to_string(), shipped + signed_units);
            // Look up by &str; allocate a key only for a new lot.
            if !self.deltas.lots.contains_key(lot_id) {
                self.deltas.lots.insert(lot_id.to_string(), BTreeMap::new());
            }
            let periods = self.deltas.lots.get_mut(lot_id).expect("inserted above");
            *periods.entry(period).or_default() += signed_units;
        }
        if !self.deltas.revenue.contains_key(chip) {
            self.deltas
                .revenue
                .insert(chip.to_string(), BTreeMap::new());
        }
        let sums = self
            .deltas
            .revenue
            .get_mut(chip)
            .expect("inserted above")
            .entry((period, rate))
            .or_default();
        if signed_units >= 0 {
            sums.0 = sums.0.checked_add(amount).ok_or_else(overflow)?;
        } else {
            sums.1 = sums.1.checked_add(amount).ok_or_else(overflow)?;
        }
        Ok(())
    }

    /// `drawn` units of hold `hold_seq` move from held to sold.
    fn apply_draw(&mut self, hold_seq: i64, drawn: i64) -> Result<()> {
        // Drawn holds were found through `active_hold`.
        let (hold, drawn_before) = self
            .draws
            .get_mut(&hold_seq)
            .ok_or_else(|| Error::Integrity(format!("hold {hold_seq} was not looked up")))?;
        assert!(
            drawn >= 1 && drawn <= hold.remaining() - *drawn_before,
            "draw within the hold"
        );
        *drawn_before += drawn;
        let (hold_chip, planned, hold_lot) =
            (hold.chip.clone(), hold.planned_date, hold.lot_id.clone());
        *self
            .deltas
            .held
            .entry((
                hold_chip.clone(),
                planned,
                hold.expires_on,
                hold_lot.clone().unwrap_or_default(),
            ))
            .or_default() -= drawn;
        if let Some(windows) = self.windows.get_mut(&hold_chip) {
            for (window, units) in windows.iter_mut() {
                if window.contains(planned) {
                    units.held -= drawn;
                }
            }
        }
        if let Some(held) = hold_lot.and_then(|lot| self.lot_held.get_mut(&lot)) {
            *held -= drawn;
        }
        Ok(())
    }

    fn shipped_of(&mut self, lot_id: &str) -> Result<i64> {
        if let Some(shipped) = self.lot_shipped.get(lot_id) {
            return Ok(*shipped);
        }
        let recorded: i64 = self
            .conn
            .prepare_cached("SELECT coalesce(sum(shipped_net_units), 0) FROM derived_lot_units WHERE lot_id = ?1")?
            .query_row([lot_id], |row| row.get(0))?;
        self.lot_shipped.insert(lot_id.to_string(), recorded);
        Ok(recorded)
    }

    /// Hands over what was applied, to be flushed (possibly through
    /// another connection: the writer's).
    pub fn take_deltas(&mut self) -> Deltas {
        std::mem::take(&mut self.deltas)
    }
}

/// (period, rate) -> (restricted sales, restricted returns) of one chip.
type RevenueByRate = BTreeMap<(Period, Ratio), (Usd, Usd)>;

/// A derived revenue row: (chip, period, rate) and (sales, returns).
type RevenueRow = ((String, Period, String), (Usd, Usd));

fn overflow() -> Error {
    Error::BadInput(
        "the amounts exceed the ledger's arithmetic (more than 10^34 dollars)".to_string(),
    )
}

/// What an import applied: per-day and per-lot net units, revenue.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Deltas {
    /// chip -> day -> net units by group.
    days: HashMap<String, BTreeMap<NaiveDate, DayUnits>>,
    /// Lot -> period -> net restricted units shipped.
    lots: HashMap<String, BTreeMap<Period, i64>>,
    /// Chip -> (period, rate) -> (restricted sales, restricted returns).
    revenue: HashMap<String, RevenueByRate>,
    /// Periods of the rows applied.
    periods: BTreeSet<Period>,
    /// Units drawn from holds, as negative changes to `derived_held_units`.
    held: BTreeMap<HeldKey, i64>,
}

/// A `derived_held_units` key: chip, planned date, expiry, lot ('' for none).
type HeldKey = (String, NaiveDate, NaiveDate, String);

/// Adds `delta_units` to the units held under one key of
/// `derived_held_units` (a hold made, drawn from or released), in the
/// writer's transaction; the row goes when it reaches 0.
pub fn add_held_units(
    conn: &Connection,
    chip: &str,
    planned_date: NaiveDate,
    expires_on: NaiveDate,
    lot_id: Option<&str>,
    delta_units: i64,
) -> Result<()> {
    let key = (
        chip,
        format_date(planned_date),
        format_date(expires_on),
        lot_id.unwrap_or(""),
    );
    let stored: i64 = conn
        .prepare_cached(
            "SELECT held_units FROM derived_held_units \
             WHERE chip = ?1 AND planned_date = ?2 AND expires_on = ?3 AND lot_id = ?4",
        )?
        .query_row(key.clone(), |row| row.get(0))
        .optional()?
        .unwrap_or(0);
    let held_units = stored.checked_add(delta_units).filter(|units| *units >= 0).ok_or_else(|| {
        Error::Integrity(format!(
            "derived_held_units for {key:?} holds {stored} units and cannot change by {delta_units}; run qledger verify"
        ))
    })?;
    if held_units == 0 {
        conn.prepare_cached(
            "DELETE FROM derived_held_units \
             WHERE chip = ?1 AND planned_date = ?2 AND expires_on = ?3 AND lot_id = ?4",
        )?
        .execute(key)?;
    } else {
        conn.prepare_cached(
            "INSERT INTO derived_held_units (chip, planned_date, expires_on, lot_id, held_units) \
             VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (chip, planned_date, expires_on, lot_id) \
             DO UPDATE SET held_units = excluded.held_units",
        )?
        .execute((key.0, key.1, key.2, key.3, held_units))?;
    }
    Ok(())
}

impl Deltas {
    /// Adds them to the derived tables, in the writer's transaction;
    /// `batch_seq` is the import batch entry the rows belong to.
    pub fn flush(self, conn: &Connection, batch_seq: i64) -> Result<()> {
        self.flush_daily(conn)?;
        self.flush_lots(conn)?;
        self.flush_revenue(conn)?;
        let mut batch = conn.prepare_cached(
            "INSERT OR IGNORE INTO derived_batch_periods (batch_seq, period) VALUES (?1, ?2)",
        )?;
        for period in &self.periods {
            batch.execute((batch_seq, period.to_string()))?;
        }
        for ((chip, planned_date, expires_on, lot_id), delta_units) in &self.held {
            let lot_id = (!lot_id.is_empty()).then_some(lot_id.as_str());
            add_held_units(conn, chip, *planned_date, *expires_on, lot_id, *delta_units)?;
        }
        Ok(())
    }

    /// Adds the days' units to `derived_daily_units`, chip by chip.
    fn flush_daily(&self, conn: &Connection) -> Result<()> {
        let mut daily = conn.prepare_cached(
            "INSERT INTO derived_daily_units (chip, day, us_net_units, restricted_net_units, other_net_units) \
             VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (chip, day) DO UPDATE SET \
             us_net_units = us_net_units + excluded.us_net_units, \
             restricted_net_units = restricted_net_units + excluded.restricted_net_units, \
             other_net_units = other_net_units + excluded.other_net_units",
        )?;
        let mut chips: Vec<_> = self.days.iter().collect();
        chips.sort_by(|a, b| a.0.cmp(b.0));
        for (chip, days) in chips {
            for (day, units) in days {
                daily.execute((
                    chip,
                    format_date(*day),
                    units.us_net,
                    units.restricted_net,
                    units.other_net,
                ))?;
            }
        }
        Ok(())
    }

    /// Adds the lots' shipped units to `derived_lot_units`.
    fn flush_lots(&self, conn: &Connection) -> Result<()> {
        let mut lots = conn.prepare_cached(
            "INSERT INTO derived_lot_units (lot_id, period, shipped_net_units) VALUES (?1, ?2, ?3) \
             ON CONFLICT (lot_id, period) DO UPDATE SET shipped_net_units = shipped_net_units + excluded.shipped_net_units",
        )?;
        let mut deltas: Vec<_> = self.lots.iter().collect();
        deltas.sort();
        for (lot_id, periods) in deltas {
            for (period, units) in periods {
                lots.execute((lot_id, period.to_string(), units))?;
            }
        }
        Ok(())
    }

    /// Adds the revenue to `derived_period_revenue`.
    fn flush_revenue(&self, conn: &Connection) -> Result<()> {
        // Exact sums beyond 64 bits: read, add in Rust, write back.
        let mut revenue: Vec<RevenueRow> = self
            .revenue
            .iter()
            .flat_map(|(chip, sums)| {
                sums.iter().map(move |((period, rate), sums)| {
                    ((chip.clone(), *period, rate.to_string()), *sums)
                })
            })
            .collect();
        revenue.sort_by(|a, b| a.0.cmp(&b.0));
        for ((chip, period, rate), (sales, returns)) in revenue {
            let period = period.to_string();
            let stored: Option<(String, String)> = conn
                .prepare_cached(
                    "SELECT sales_usd_e4, returns_usd_e4 FROM derived_period_revenue \
                     WHERE chip = ?1 AND period = ?2 AND remittance_rate = ?3",
                )?
                .query_row((&chip, &period, &rate), |row| {
                    Ok((row.get(0)?, row.get(1)?))
                })
                .optional()?;
            let (old_sales, old_returns) = match stored {
                Some((s, r)) => (parse_e4(&s)?, parse_e4(&r)?),
                None => (0, 0),
            };
            let new_sales = old_sales.checked_add(sales.e4).ok_or_else(overflow)?;
            let new_returns = old_returns.checked_add(returns.e4).ok_or_else(overflow)?;
            conn.prepare_cached(
                "INSERT INTO derived_period_revenue (chip, period, remittance_rate, sales_usd_e4, returns_usd_e4) \
                 VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (chip, period, remittance_rate) DO UPDATE SET \
                 sales_usd_e4 = excluded.sales_usd_e4, returns_usd_e4 = excluded.returns_usd_e4",
            )?
            .execute((&chip, &period, &rate, new_sales.to_string(), new_returns.to_string()))?;
        }
        Ok(())
    }
}

/// A row of `derived_held_units`: chip, planned date, expiry, lot ('' for none).
pub type HeldRowKey = (String, String, String, String);

/// What `derived_held_units` must hold, computed from the hold, release
/// and sale entries (`rules::hold_remaining_units` per hold, summed per
/// row key, rows of 0 left out). `verify` compares the table with it; the
/// upgrade from schema version 1 fills the new table from it.
pub fn held_units_from_entries(
    conn: &Connection,
) -> Result<std::collections::HashMap<HeldRowKey, i64>> {
    let mut held: std::collections::HashMap<HeldRowKey, i64> = std::collections::HashMap::new();
    let mut statement = conn.prepare(
        "SELECT h.chip, h.planned_date, h.expires_on, coalesce(h.lot_id, ''), h.units, \
                (SELECT coalesce(sum(s.drawn_units), 0) FROM sale AS s WHERE s.hold_seq = h.seq), \
                EXISTS (SELECT 1 FROM hold_release AS r WHERE r.hold_seq = h.seq) \
         FROM hold AS h",
    )?;
    let mut rows = statement.query([])?;
    while let Some(row) = rows.next()? {
        let remaining = hold_remaining_units(row.get(4)?, row.get(5)?, row.get(6)?);
        if remaining > 0 {
            let key: HeldRowKey = (row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?);
            let sum = held.entry(key).or_default();
            *sum = sum.checked_add(remaining).ok_or_else(overflow)?;
        }
    }
    Ok(held)
}

/// Parses an exact integer amount stored as decimal text.
pub fn parse_e4(text: &str) -> Result<i128> {
    text.parse()
        .map_err(|_| Error::Integrity(format!("stored amount '{text}' is not an integer")))
}

/// The closed periods.
pub fn closed_periods(conn: &Connection, settings: &Settings) -> Result<BTreeSet<Period>> {
    let texts: Vec<String> = conn
        .prepare_cached("SELECT period FROM period_close")?
        .query_map([], |row| row.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    texts
        .iter()
        .map(|text| Period::parse(settings.period_kind, text).map_err(Error::Integrity))
        .collect()
}

/// The periods of `window` that are not closed, as date ranges (closing a
/// period ends its holds).
fn open_ranges(
    window: Window,
    settings: &Settings,
    closed: &BTreeSet<Period>,
) -> Vec<(NaiveDate, NaiveDate)> {
    let mut ranges: Vec<(NaiveDate, NaiveDate)> = Vec::new();
    let mut period = Period::of(settings.period_kind, window.start);
    loop {
        let start = period.first_day().max(window.start);
        let end = period.last_day().min(window.end);
        if !closed.contains(&period) {
            match ranges.last_mut() {
                Some(last) if last.1.succ_opt() == Some(start) => last.1 = end,
                _ => ranges.push((start, end)),
            }
        }
        if period.last_day() >= window.end {
            break;
        }
        period = period.next();
    }
    ranges
}

/// The active hold of `order_ref`, if any (SPEC §3.6: at most one).
pub fn active_hold_of_order(
    conn: &Connection,
    settings: &Settings,
    closed: &BTreeSet<Period>,
    as_of: NaiveDate,
    order_ref: &str,
) -> Result<Option<ActiveHold>> {
    // Simple statements, the release and drawn units asked per hold found:
    // a `reserve` for a new order (the usual case) prepares only the first,
    // where one statement with both as subqueries cost four times as much
    // to prepare in a fresh process.
    type Stored = (
        i64,
        String,
        String,
        Option<String>,
        Option<String>,
        i64,
        String,
        String,
    );
    let stored: Vec<Stored> = conn
        .prepare_cached(
            "SELECT seq, chip, market, customer_id, lot_id, units, planned_date, expires_on \
             FROM hold WHERE order_ref = ?1 AND expires_on > ?2 ORDER BY seq",
        )?
        .query_map((order_ref, format_date(as_of)), |row| Stored::try_from(row))?
        .collect::<rusqlite::Result<_>>()?;
    let mut holds = Vec::new();
    for (seq, chip, market, customer_id, lot_id, units, planned, expires) in stored {
        let planned_date = parse_date(&planned).map_err(Error::Integrity)?;
        let expires_on = parse_date(&expires).map_err(Error::Integrity)?;
        let period_closed = closed.contains(&Period::of(settings.period_kind, planned_date));
        if period_closed {
            continue; // saves the two lookups below
        }
        let released = conn
            .prepare_cached("SELECT 1 FROM hold_release WHERE hold_seq = ?1")?
            .exists([seq])?;
        let drawn: i64 = conn
            .prepare_cached("SELECT coalesce(sum(drawn_units), 0) FROM sale WHERE hold_seq = ?1")?
            .query_row([seq], |row| row.get(0))?;
        let remaining = hold_remaining_units(units, drawn, released);
        if !hold_is_active(remaining, expires_on, as_of, period_closed) {
            continue;
        }
        holds.push(ActiveHold {
            seq,
            order_ref: order_ref.to_string(),
            chip,
            market,
            customer_id,
            lot_id,
            units,
            drawn,
            planned_date,
            expires_on,
        });
    }
    debug_assert!(holds.len() <= 1, "one active hold per order");
    Ok(holds.into_iter().next())
}

impl Facts for LedgerFacts<'_> {
    fn settings(&self) -> &Settings {
        &self.settings
    }

    fn is_closed(&mut self, period: Period) -> Result<bool> {
        Ok(self.closed.contains(&period))
    }

    fn chip_policy(&mut self, chip: &str) -> Result<Rc<ChipPolicy>> {
        if let Some(policy) = self.policies.get(chip) {
            return Ok(Rc::clone(policy));
        }
        let policy = Rc::new(ChipPolicy {
            versions: policy::versions_of(self.conn, chip)?,
        });
        self.policies.insert(chip.to_string(), Rc::clone(&policy));
        Ok(policy)
    }

    fn customer_on(&mut self, customer_id: &str, date: NaiveDate) -> Result<Option<CustomerEvent>> {
        if !self.customers.contains_key(customer_id) {
            let events = customers::events_of(self.conn, customer_id)?;
            self.customers
                .insert(customer_id.to_string(), Rc::new(events));
        }
        Ok(customers::latest_on(&self.customers[customer_id], date).cloned())
    }

    fn lot_on(&mut self, lot_id: &str, date: NaiveDate) -> Result<Option<LotState>> {
        if !self.lots.contains_key(lot_id) {
            let events = lots::events_of(self.conn, lot_id)?;
            self.lots.insert(lot_id.to_string(), Rc::new(events));
        }
        Ok(lots::state_from_events(&self.lots[lot_id], date))
    }

    fn lot_committed(&mut self, lot_id: &str) -> Result<LotCommitted> {
        let shipped_net = self.shipped_of(lot_id)?;
        let held = match self.lot_held.get(lot_id) {
            Some(held) => *held,
            None => {
                let mut held = 0;
                // Closed periods end holds: count only holds planned in open ones.
                let periods: Vec<String> = self.closed.iter().map(|p| p.to_string()).collect();
                let rows: Vec<(String, i64)> = self
                    .conn
                    .prepare_cached(
                        "SELECT planned_date, sum(held_units) FROM derived_held_units \
                         WHERE lot_id = ?2 AND expires_on > ?1 GROUP BY planned_date",
                    )?
                    .query_map((format_date(self.as_of), lot_id), |row| {
                        Ok((row.get(0)?, row.get(1)?))
                    })?
                    .collect::<rusqlite::Result<_>>()?;
                for (planned, remaining) in rows {
                    let planned = parse_date(&planned).map_err(Error::Integrity)?;
                    let period = Period::of(self.settings.period_kind, planned).to_string();
                    if !periods.contains(&period) {
                        held += remaining;
                    }
                }
                for (hold, drawn) in self.draws.values() {
                    if hold.lot_id.as_deref() == Some(lot_id) {
                        held -= drawn;
                    }
                }
                self.lot_held.insert(lot_id.to_string(), held);
                held
            }
        };
        Ok(LotCommitted { shipped_net, held })
    }

    fn window_units(&mut self, chip: &str, window: Window) -> Result<WindowUnits> {
        if let Some(found) = self
            .windows
            .get(chip)
            .and_then(|windows| windows.iter().find(|(w, _)| *w == window))
        {
            return Ok(found.1);
        }
        let (us_net, restricted_net): (i64, i64) = self
            .conn
            .prepare_cached(
                "SELECT coalesce(sum(us_net_units), 0), coalesce(sum(restricted_net_units), 0) \
                 FROM derived_daily_units WHERE chip = ?1 AND day BETWEEN ?2 AND ?3",
            )?
            .query_row(
                (chip, format_date(window.start), format_date(window.end)),
                |row| Ok((row.get(0)?, row.get(1)?)),
            )?;
        let mut units = WindowUnits {
            us_net,
            restricted_net,
            held: 0,
        };
        if let Some(days) = self.deltas.days.get(chip) {
            for (_, delta) in days.range(window.start..=window.end) {
                units.us_net += delta.us_net;
                units.restricted_net += delta.restricted_net;
            }
        }
        for (start, end) in open_ranges(window, &self.settings, &self.closed) {
            units.held += self
                .conn
                .prepare_cached(
                    "SELECT coalesce(sum(held_units), 0) FROM derived_held_units \
                     WHERE chip = ?1 AND planned_date BETWEEN ?2 AND ?3 AND expires_on > ?4",
                )?
                .query_row(
                    (
                        chip,
                        format_date(start),
                        format_date(end),
                        format_date(self.as_of),
                    ),
                    |row| row.get::<_, i64>(0),
                )?;
        }
        for (hold, drawn) in self.draws.values() {
            if hold.chip == chip && window.contains(hold.planned_date) {
                units.held -= drawn;
            }
        }
        self.windows
            .entry(chip.to_string())
            .or_default()
            .push((window, units));
        Ok(units)
    }

    fn active_hold(&mut self, order_ref: &str) -> Result<Option<ActiveHold>> {
        // A hold this import looked up already: as it was found, plus what
        // the import drew from it since. (Asking SQLite again would count
        // those draws twice on the careful path, whose sales are in the
        // same transaction, and not on the fast path, which reads its own
        // snapshot.)
        if let Some((hold, drawn_here)) = self
            .draws
            .values()
            .find(|(hold, _)| hold.order_ref == order_ref)
        {
            let mut found = hold.clone();
            found.drawn += drawn_here;
            return Ok((found.remaining() > 0).then_some(found));
        }
        let Some(found) = active_hold_of_order(
            self.conn,
            &self.settings,
            &self.closed,
            self.as_of,
            order_ref,
        )?
        else {
            return Ok(None);
        };
        self.draws.insert(found.seq, (found.clone(), 0));
        Ok((found.remaining() > 0).then_some(found))
    }

    fn supply_on(&mut self, chip: &str, date: NaiveDate) -> Result<Option<Rc<SupplyAttestation>>> {
        let period = Period::of(self.settings.period_kind, date);
        let known = self
            .screening
            .supply
            .get(chip)
            .is_some_and(|periods| periods.contains_key(&period));
        if !known {
            let all = supply::all_of(self.conn, chip, period)?;
            self.screening
                .supply
                .entry(chip.to_string())
                .or_default()
                .insert(period, all.into_iter().map(Rc::new).collect());
        }
        let all = &self.screening.supply[chip][&period];
        let after = all.partition_point(|a| a.attested_on <= date);
        Ok(after.checked_sub(1).map(|index| Rc::clone(&all[index])))
    }

    fn screening_hits(&mut self, customer_id: &str, date: NaiveDate) -> Result<Rc<[Hit]>> {
        if self.screening.snapshots.is_none() {
            self.screening.snapshots = Some(screening::snapshot_dates(self.conn)?);
        }
        let snapshots = self.screening.snapshots.as_deref().unwrap_or_default();
        let after = snapshots.partition_point(|from| *from <= date);
        let Some(snapshot) = after.checked_sub(1).map(|index| snapshots[index]) else {
            return Ok(Rc::from(Vec::new())); // before the first snapshot nobody is listed
        };
        let Some(event) = self.customer_on(customer_id, date)? else {
            return Ok(Rc::from(Vec::new())); // no name on the date
        };
        if let Some(seen) = self.screening.hits.get(customer_id) {
            if let Some((_, _, hits)) = seen
                .iter()
                .find(|(from, name, _)| *from == snapshot && *name == event.name)
            {
                return Ok(Rc::clone(hits));
            }
        }
        let hits: Rc<[Hit]> = Rc::from(screening::hits_of(
            self.conn,
            customer_id,
            &event.name,
            snapshot,
        )?);
        self.screening
            .hits
            .entry(customer_id.to_string())
            .or_default()
            .push((snapshot, event.name, Rc::clone(&hits)));
        Ok(hits)
    }
}
