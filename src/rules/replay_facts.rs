//! `ReplayFacts`: the facts of a ledger rebuilt in memory entry by entry,
//! for `verify`'s replay (SPEC §3.15 item 5). The rules judge each entry
//! against exactly the entries before it, through the same `Facts` trait
//! the import and the order desk use; only where the facts come from
//! differs (here: what the replay applied so far; there: SQLite).

use super::{
    hold_is_active, hold_remaining_units, ActiveHold, ChipPolicy, Facts, LotCommitted, Window,
    WindowUnits,
};
use crate::error::Result;
use crate::period::Period;
use crate::records::customers::{self, CustomerEvent};
use crate::records::lots::{self, LotEvent, LotState};
use crate::records::policy::PolicyVersion;
use crate::records::screening::{normalise, Hit};
use crate::records::supply::SupplyAttestation;
use crate::store::ledger::{MarketGroup, Settings};
use chrono::NaiveDate;
use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

/// A hold as the replay knows it.
#[derive(Debug, Clone)]
pub struct ReplayHold {
    /// The hold, with the units drawn so far.
    pub hold: ActiveHold,
    /// Released by `release`.
    pub released: bool,
}

impl ReplayHold {
    /// Units still held (SPEC §3.6).
    pub fn remaining(&self) -> i64 {
        hold_remaining_units(self.hold.units, self.hold.drawn, self.released)
    }
}

/// One snapshot's names: N(name) -> (list, entry id, listed name).
type SnapshotNames = HashMap<String, Vec<(String, String, String)>>;

/// The facts of the entries replayed so far, on the clock `as_of`.
pub struct ReplayFacts {
    settings: Settings,
    /// The as-of date of the command being replayed.
    pub as_of: NaiveDate,
    closed: BTreeSet<Period>,
    /// chip -> (version entry, version), not withdrawn, in entry order.
    versions: HashMap<String, Vec<(i64, PolicyVersion)>>,
    policies: HashMap<String, Rc<ChipPolicy>>,
    /// Every chip any version named (withdrawn ones too).
    pub known_chips: HashSet<String>,
    customers: HashMap<String, Vec<CustomerEvent>>,
    lots: HashMap<String, Vec<LotEvent>>,
    lot_shipped: HashMap<String, i64>,
    /// lot -> period -> net restricted units dated in it (named even at 0).
    lot_period_shipped: HashMap<String, BTreeMap<Period, i64>>,
    /// Every hold, by entry.
    pub holds: BTreeMap<i64, ReplayHold>,
    holds_of_order: HashMap<String, Vec<i64>>,
    /// chip -> holds that may still hold units (ended ones are pruned).
    live_holds: HashMap<String, Vec<i64>>,
    days: HashMap<String, BTreeMap<NaiveDate, (i64, i64)>>,
    windows: HashMap<String, Vec<(Window, i64, i64)>>,
    /// chip -> the latest date of a sale, return or hold.
    pub last_activity: HashMap<String, NaiveDate>,
    supply: HashMap<String, HashMap<Period, Vec<Rc<SupplyAttestation>>>>,
    snapshots: BTreeMap<NaiveDate, SnapshotNames>,
    clearances: HashSet<(String, String, String)>,
}

impl ReplayFacts {
    /// Facts of a ledger holding only its settings.
    pub fn new(settings: Settings, as_of: NaiveDate) -> ReplayFacts {
        ReplayFacts {
            settings,
            as_of,
            closed: BTreeSet::new(),
            versions: HashMap::default(),
            policies: HashMap::default(),
            known_chips: HashSet::default(),
            customers: HashMap::default(),
            lots: HashMap::default(),
            lot_shipped: HashMap::default(),
            lot_period_shipped: HashMap::default(),
            holds: BTreeMap::new(),
            holds_of_order: HashMap::default(),
            live_holds: HashMap::default(),
            days: HashMap::default(),
            windows: HashMap::default(),
            last_activity: HashMap::default(),
            supply: HashMap::default(),
            snapshots: BTreeMap::new(),
            clearances: HashSet::default(),
        }
    }

    /// A policy version recorded.
    pub fn add_version(&mut self, seq: i64, version: PolicyVersion) {
        self.known_chips.insert(version.chip.clone());
        self.policies.remove(&version.chip);
        let versions = self.versions.entry(version.chip.clone()).or_default();
        versions.push((seq, version));
    }

    /// The version recorded as entry `seq`, if it is not withdrawn.
    pub fn version(&self, chip: &str, seq: i64) -> Option<&PolicyVersion> {
        self.versions
            .get(chip)?
            .iter()
            .find(|(at, _)| *at == seq)
            .map(|(_, version)| version)
    }

    /// A version withdrawn: ignored by every rule from now on.
    pub fn withdraw(&mut self, chip: &str, seq: i64) {
        if let Some(versions) = self.versions.get_mut(chip) {
            versions.retain(|(at, _)| *at != seq);
        }
        self.policies.remove(chip);
    }

    /// A customer event recorded.
    pub fn add_customer_event(&mut self, event: CustomerEvent) {
        let events = self.customers.entry(event.customer_id.clone()).or_default();
        let at = events.partition_point(|e| e.effective_date <= event.effective_date);
        events.insert(at, event);
    }

    /// Whether the customer has any event recorded.
    pub fn knows_customer(&self, customer_id: &str) -> bool {
        self.customers.contains_key(customer_id)
    }

    /// A lot event recorded.
    pub fn add_lot_event(&mut self, event: LotEvent) {
        self.lots
            .entry(event.lot_id.clone())
            .or_default()
            .push(event);
    }

    /// An attestation recorded.
    pub fn add_supply(&mut self, attestation: SupplyAttestation, period: Period) {
        let all = self
            .supply
            .entry(attestation.chip.clone())
            .or_default()
            .entry(period)
            .or_default();
        let at = all.partition_point(|a| a.attested_on <= attestation.attested_on);
        all.insert(at, Rc::new(attestation));
    }

    /// A snapshot in force from `effective_from` with these rows:
    /// (list, entry id, name, alt names).
    pub fn add_snapshot(
        &mut self,
        effective_from: NaiveDate,
        rows: &[crate::records::screening::ListedParty],
    ) {
        let mut names: SnapshotNames = HashMap::default();
        for party in rows {
            for (key, listed) in crate::records::screening::name_keys(party) {
                names.entry(key).or_default().push((
                    party.list.clone(),
                    party.entry_id.clone(),
                    listed,
                ));
            }
        }
        self.snapshots.insert(effective_from, names);
    }

    /// Whether the snapshot in force on `date` lists (`list`, `entry_id`).
    pub fn lists_entry(&self, date: NaiveDate, list: &str, entry_id: &str) -> bool {
        self.snapshots
            .range(..=date)
            .next_back()
            .is_some_and(|(_, names)| {
                names
                    .values()
                    .flatten()
                    .any(|(l, e, _)| l == list && e == entry_id)
            })
    }

    /// A clearance recorded; whether it is new.
    pub fn add_clearance(&mut self, customer_id: &str, list: &str, entry_id: &str) -> bool {
        self.clearances.insert((
            customer_id.to_string(),
            list.to_string(),
            entry_id.to_string(),
        ))
    }

    /// A period closed: its holds end.
    pub fn close(&mut self, period: Period) {
        self.closed.insert(period);
    }

    /// A hold recorded.
    pub fn add_hold(&mut self, hold: ActiveHold) {
        self.note_activity(&hold.chip, hold.planned_date);
        self.holds_of_order
            .entry(hold.order_ref.clone())
            .or_default()
            .push(hold.seq);
        self.live_holds
            .entry(hold.chip.clone())
            .or_default()
            .push(hold.seq);
        self.holds.insert(
            hold.seq,
            ReplayHold {
                hold,
                released: false,
            },
        );
    }

    /// Whether a hold is active now (SPEC §3.6).
    pub fn is_active(&self, hold: &ReplayHold) -> bool {
        let period = Period::of(self.settings.period_kind, hold.hold.planned_date);
        hold_is_active(
            hold.remaining(),
            hold.hold.expires_on,
            self.as_of,
            self.closed.contains(&period),
        )
    }

    /// A recorded sale (positive units) or return (negative) applied: the
    /// day's units, the lot's shipped units, the hold it drew.
    pub fn apply_sale(
        &mut self,
        chip: &str,
        date: NaiveDate,
        group: MarketGroup,
        signed_units: i64,
        lot_id: Option<&str>,
        draw: Option<(i64, i64)>,
    ) {
        self.note_activity(chip, date);
        let (us, restricted) = match group {
            MarketGroup::Us => (signed_units, 0),
            MarketGroup::Restricted => (0, signed_units),
            MarketGroup::Other => (0, 0),
        };
        // Look up by `&str`; allocate a key only for a new chip or lot.
        if !self.days.contains_key(chip) {
            self.days.insert(chip.to_string(), BTreeMap::new());
        }
        if let Some(days) = self.days.get_mut(chip) {
            let day = days.entry(date).or_default();
            day.0 += us;
            day.1 += restricted;
        }
        if let Some(windows) = self.windows.get_mut(chip) {
            for (window, window_us, window_restricted) in windows.iter_mut() {
                if window.contains(date) {
                    *window_us += us;
                    *window_restricted += restricted;
                }
            }
        }
        if group == MarketGroup::Restricted {
            if let Some(lot_id) = lot_id {
                match self.lot_shipped.get_mut(lot_id) {
                    Some(shipped) => *shipped += signed_units,
                    None => {
                        self.lot_shipped.insert(lot_id.to_string(), signed_units);
                    }
                }
                let period = Period::of(self.settings.period_kind, date);
                if !self.lot_period_shipped.contains_key(lot_id) {
                    self.lot_period_shipped
                        .insert(lot_id.to_string(), BTreeMap::new());
                }
                if let Some(periods) = self.lot_period_shipped.get_mut(lot_id) {
                    *periods.entry(period).or_default() += signed_units;
                }
            }
        }
        if let Some((hold_seq, drawn)) = draw {
            if let Some(hold) = self.holds.get_mut(&hold_seq) {
                hold.hold.drawn += drawn;
            }
        }
    }

    /// A lot's events so far, in entry order.
    pub fn lot_events(&self, lot_id: &str) -> &[LotEvent] {
        self.lots.get(lot_id).map_or(&[][..], Vec::as_slice)
    }

    /// Net restricted units of a lot dated in `period` or before.
    pub fn lot_shipped_through(&self, lot_id: &str, period: Period) -> i64 {
        self.lot_period_shipped.get(lot_id).map_or(0, |periods| {
            periods.range(..=period).map(|(_, units)| units).sum()
        })
    }

    /// The chips a period's report lists (SPEC §5): with a version in
    /// force during it, or any sale or return dated in it, or units held
    /// in it now.
    pub fn chips_named_in(&mut self, period: Period) -> Result<BTreeSet<String>> {
        let mut named: BTreeSet<String> = self
            .versions
            .iter()
            .filter(|(_, versions)| {
                versions
                    .iter()
                    .any(|(_, v)| v.effective_from <= period.last_day())
            })
            .map(|(chip, _)| chip.clone())
            .collect();
        for (chip, days) in &self.days {
            if days
                .range(period.first_day()..=period.last_day())
                .next()
                .is_some()
            {
                named.insert(chip.clone());
            }
        }
        let with_holds: Vec<String> = self.live_holds.keys().cloned().collect();
        for chip in with_holds {
            if self.window_units(&chip, Window::of_period(period))?.held > 0 {
                named.insert(chip);
            }
        }
        Ok(named)
    }

    /// The lots a period's report names: by a restricted sale or return
    /// dated in it, or by a hold planned in it.
    pub fn lots_named_in(&self, period: Period) -> BTreeSet<String> {
        let mut named: BTreeSet<String> = self
            .lot_period_shipped
            .iter()
            .filter(|(_, periods)| periods.contains_key(&period))
            .map(|(lot, _)| lot.clone())
            .collect();
        for hold in self.holds.values() {
            if let Some(lot) = &hold.hold.lot_id {
                if period.contains(hold.hold.planned_date) {
                    named.insert(lot.clone());
                }
            }
        }
        named
    }

    fn note_activity(&mut self, chip: &str, date: NaiveDate) {
        match self.last_activity.get_mut(chip) {
            Some(latest) => *latest = (*latest).max(date),
            None => {
                self.last_activity.insert(chip.to_string(), date);
            }
        }
    }

    /// Units held now by active holds of `chip` for which `counts` is true;
    /// prunes holds that can never hold units again (the clock only moves
    /// forward in a replay).
    fn held_units(&mut self, chip: &str, counts: impl Fn(&ActiveHold) -> bool) -> i64 {
        let Some(live) = self.live_holds.get(chip) else {
            return 0;
        };
        let mut held = 0;
        let mut ended = Vec::new();
        for seq in live {
            let Some(hold) = self.holds.get(seq) else {
                continue;
            };
            if self.is_active(hold) {
                if counts(&hold.hold) {
                    held += hold.remaining();
                }
            } else {
                ended.push(*seq);
            }
        }
        if !ended.is_empty() {
            if let Some(live) = self.live_holds.get_mut(chip) {
                live.retain(|seq| !ended.contains(seq));
            }
        }
        held
    }
}

impl Facts for ReplayFacts {
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
        let mut versions: Vec<PolicyVersion> = self
            .versions
            .get(chip)
            .map(|all| all.iter().map(|(_, v)| v.clone()).collect())
            .unwrap_or_default();
        versions.sort_by_key(|v| v.effective_from);
        let policy = Rc::new(ChipPolicy { versions });
        self.policies.insert(chip.to_string(), Rc::clone(&policy));
        Ok(policy)
    }

    fn customer_on(&mut self, customer_id: &str, date: NaiveDate) -> Result<Option<CustomerEvent>> {
        Ok(self
            .customers
            .get(customer_id)
            .and_then(|events| customers::latest_on(events, date))
            .cloned())
    }

    fn lot_on(&mut self, lot_id: &str, date: NaiveDate) -> Result<Option<LotState>> {
        Ok(self
            .lots
            .get(lot_id)
            .and_then(|events| lots::state_from_events(events, date)))
    }

    fn lot_committed(&mut self, lot_id: &str) -> Result<LotCommitted> {
        let shipped_net = self.lot_shipped.get(lot_id).copied().unwrap_or(0);
        // Read only (pruning is `held_units`'): no allocation per row.
        let held = self
            .live_holds
            .values()
            .flatten()
            .filter_map(|seq| self.holds.get(seq))
            .filter(|hold| hold.hold.lot_id.as_deref() == Some(lot_id) && self.is_active(hold))
            .map(ReplayHold::remaining)
            .sum();
        Ok(LotCommitted { shipped_net, held })
    }

    fn window_units(&mut self, chip: &str, window: Window) -> Result<WindowUnits> {
        let cached = self
            .windows
            .get(chip)
            .and_then(|all| all.iter().find(|(w, _, _)| *w == window))
            .map(|(_, us, restricted)| (*us, *restricted));
        let (us_net, restricted_net) = match cached {
            Some(found) => found,
            None => {
                let (mut us, mut restricted) = (0, 0);
                if let Some(days) = self.days.get(chip) {
                    for (_, (day_us, day_restricted)) in days.range(window.start..=window.end) {
                        us += day_us;
                        restricted += day_restricted;
                    }
                }
                self.windows
                    .entry(chip.to_string())
                    .or_default()
                    .push((window, us, restricted));
                (us, restricted)
            }
        };
        let held = self.held_units(chip, |hold| window.contains(hold.planned_date));
        Ok(WindowUnits {
            us_net,
            restricted_net,
            held,
        })
    }

    fn active_hold(&mut self, order_ref: &str) -> Result<Option<ActiveHold>> {
        let Some(seqs) = self.holds_of_order.get(order_ref) else {
            return Ok(None);
        };
        Ok(seqs
            .iter()
            .filter_map(|seq| self.holds.get(seq))
            .find(|hold| self.is_active(hold))
            .map(|hold| hold.hold.clone()))
    }

    fn supply_on(&mut self, chip: &str, date: NaiveDate) -> Result<Option<Rc<SupplyAttestation>>> {
        let period = Period::of(self.settings.period_kind, date);
        let Some(all) = self
            .supply
            .get(chip)
            .and_then(|periods| periods.get(&period))
        else {
            return Ok(None);
        };
        let after = all.partition_point(|a| a.attested_on <= date);
        Ok(after.checked_sub(1).map(|index| Rc::clone(&all[index])))
    }

    fn screening_hits(&mut self, customer_id: &str, date: NaiveDate) -> Result<Rc<[Hit]>> {
        let Some((_, names)) = self.snapshots.range(..=date).next_back() else {
            return Ok(Rc::from(Vec::new()));
        };
        let Some(event) = self
            .customers
            .get(customer_id)
            .and_then(|events| customers::latest_on(events, date))
        else {
            return Ok(Rc::from(Vec::new()));
        };
        let key = normalise(&event.name);
        let mut hits: Vec<Hit> = Vec::new();
        for (list, entry_id, listed_name) in names.get(&key).map_or(&[][..], Vec::as_slice) {
            if hits
                .iter()
                .any(|h| &h.list == list && &h.entry_id == entry_id)
            {
                continue;
            }
            let cleared = self.clearances.contains(&(
                customer_id.to_string(),
                list.clone(),
                entry_id.clone(),
            ));
            hits.push(Hit {
                list: list.clone(),
                entry_id: entry_id.clone(),
                listed_name: listed_name.clone(),
                cleared,
            });
        }
        Ok(Rc::from(hits))
    }
}
