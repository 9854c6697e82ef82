//! `verify`'s replay (SPEC §3.15 item 5): every entry, in order, judged
//! again against the entries before it and the as-of date of the command
//! that wrote it, by the rules module itself (`rules::judge_restricted`,
//! `rules::judge_return`, `rules::closed_refusal`, `hold_is_active` …) over
//! `rules::replay_facts::ReplayFacts`. A sale or return must pass every
//! rule or be marked accepted with exactly the rules it broke, and draw
//! exactly the hold the rules say; a hold must pass every rule; a release,
//! payment, reversal, withdrawal, clearance must have been allowed then.

use crate::error::{Error, Result, Rule};
use crate::period::{format_date, parse_date, Period};
use crate::records::sales::{RawSale, SaleKind, SaleRow, SALE_CONTENT_COLUMNS};
use crate::records::screening::ListedParty;
use crate::rules::replay_facts::ReplayFacts;
use crate::rules::{self, ActiveHold, Facts, Purpose, Refusal, Shipment};
use crate::store::ledger::{MarketGroup, Settings};
use chrono::NaiveDate;
use rusqlite::types::ValueRef;
use rusqlite::Connection;
use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};

/// The first entry that was not lawful when appended, and why.
pub type Fault = (i64, String);

/// One entry other than a sale, as the replay needs it.
enum Act {
    Version(crate::records::policy::PolicyVersion),
    Withdrawal {
        version_seq: i64,
        chip: String,
        effective_from: NaiveDate,
        on: NaiveDate,
    },
    Customer(crate::records::customers::CustomerEvent),
    Lot(crate::records::lots::LotEvent),
    Hold {
        hold: ActiveHold,
        reserved_on: NaiveDate,
    },
    Release {
        hold_seq: i64,
        order_ref: String,
        released_units: i64,
        on: NaiveDate,
    },
    Payment {
        period: String,
        reference: String,
        paid_on: NaiveDate,
        on: NaiveDate,
    },
    Reversal {
        payment_seq: i64,
        period: String,
        reference: String,
    },
    Close {
        period: Period,
        closed_on: NaiveDate,
        figures: String,
    },
    Supply(crate::records::supply::SupplyAttestation),
    Snapshot {
        effective_from: NaiveDate,
    },
    Token {
        issued: bool,
        name: String,
        expires_on: Option<NaiveDate>,
        on: NaiveDate,
    },
    Clearance {
        customer_id: String,
        list: String,
        entry_id: String,
        on: NaiveDate,
    },
}

/// What the replay knows before it starts: every act but the sales, the
/// import batches' ranges and as-of dates, and the late entries.
struct Plan {
    acts: Vec<(i64, Act)>,
    /// (entries_from, entries_to, imported_on), by entries_from.
    batches: Vec<(i64, i64, NaiveDate)>,
    /// sale seq -> the close it came after.
    late: HashMap<i64, i64>,
    /// close seq -> period.
    closes: HashMap<i64, Period>,
}

/// Replays every entry of `conn`; the first unlawful one, if any.
pub fn replay(conn: &Connection, settings: &Settings) -> Result<Option<Fault>> {
    let plan = plan(conn, settings)?;
    let created_on: String = conn.query_row(
        "SELECT created_on FROM ledger_settings WHERE seq = 1",
        [],
        |row| row.get(0),
    )?;
    let mut facts = ReplayFacts::new(settings.clone(), date(&created_on)?);
    let mut replay = Replay {
        conn,
        settings,
        facts: &mut facts,
        plan: &plan,
        payments: HashMap::default(),
        reversed: HashSet::default(),
        returned: HashMap::default(),
        tokens: HashMap::default(),
    };
    let mut statement = conn.prepare(&format!(
        "SELECT seq, {SALE_CONTENT_COLUMNS}, hold_seq, drawn_units, accepted_rules FROM sale ORDER BY seq"
    ))?;
    let mut sales = statement.query([])?;
    let mut acts = plan.acts.iter().peekable();
    loop {
        let sale = sales.next()?;
        let sale_seq = match sale {
            Some(row) => Some(row.get::<_, i64>(0)?),
            None => None,
        };
        while let Some((seq, act)) = acts.next_if(|(seq, _)| sale_seq.is_none_or(|s| *seq < s)) {
            if let Some(why) = replay.act(*seq, act)? {
                return Ok(Some((*seq, why)));
            }
        }
        let Some(row) = sale else { break };
        let seq = sale_seq.expect("read above");
        // Most sales are US or other-market sales: judged from borrowed
        // values, without building the row.
        match replay.plain_sale(seq, row)? {
            Some(None) => continue,
            Some(Some(why)) => return Ok(Some((seq, why))),
            None => {}
        }
        let stored = StoredSale {
            row: RawSale::read(row, 1)?.into_row()?,
            hold_seq: row.get(12)?,
            drawn_units: row.get(13)?,
            accepted_rules: row.get(14)?,
        };
        if let Some(why) = replay.sale(seq, &stored)? {
            return Ok(Some((seq, why)));
        }
    }
    Ok(None)
}

fn date(text: &str) -> Result<NaiveDate> {
    parse_date(text).map_err(Error::Integrity)
}

/// A sale entry: its row and what the import decided about it.
struct StoredSale {
    row: SaleRow,
    hold_seq: Option<i64>,
    drawn_units: Option<i64>,
    accepted_rules: Option<String>,
}

struct Replay<'a> {
    conn: &'a Connection,
    settings: &'a Settings,
    facts: &'a mut ReplayFacts,
    plan: &'a Plan,
    /// payment seq -> (period, reference).
    payments: HashMap<i64, (String, String)>,
    reversed: HashSet<i64>,
    /// sale record_id -> units returned so far.
    returned: HashMap<String, i64>,
    /// Token name -> expiry of its working token.
    tokens: HashMap<String, Option<NaiveDate>>,
}

impl Replay<'_> {
    /// The import batch holding entry `seq` and its as-of date.
    fn batch_of(&self, seq: i64) -> Option<NaiveDate> {
        let batches = &self.plan.batches;
        let at = batches.partition_point(|(from, _, _)| *from <= seq);
        let (_, to, on) = batches.get(at.checked_sub(1)?)?;
        (seq <= *to).then_some(*on)
    }

    /// A US or other-market sale (SPEC §3.4: only `closed` applies to it),
    /// read from `row` without allocating; `None` for any other row.
    fn plain_sale(&mut self, seq: i64, row: &rusqlite::Row<'_>) -> Result<Option<Option<String>>> {
        let text = |index: usize| -> Result<&str> {
            row.get_ref(index)?
                .as_str()
                .map_err(|_| Error::Integrity(format!("entry {seq}: a sale's text is not text")))
        };
        let (kind, market) = (text(2)?, text(5)?);
        let group = self.settings.market_group(market);
        let decided = row.get_ref(12)? != ValueRef::Null || row.get_ref(14)? != ValueRef::Null;
        if kind != "sale" || group == MarketGroup::Restricted || decided {
            return Ok(None);
        }
        let late = !self.plan.late.is_empty() && self.plan.late.contains_key(&seq);
        let Some(as_of) = self.batch_of(seq) else {
            return Ok(None); // the full path says so, naming the row
        };
        self.facts.as_of = as_of;
        let (chip, sale_date) = (text(4)?, date(text(3)?)?);
        let closed = self
            .facts
            .is_closed(Period::of(self.settings.period_kind, sale_date))?;
        if !self.facts.known_chips.contains(chip) || closed || late {
            return Ok(None);
        }
        let units: i64 = row.get(7)?;
        self.facts
            .apply_sale(chip, sale_date, group, units, None, None);
        Ok(Some(None))
    }

    fn sale(&mut self, seq: i64, stored: &StoredSale) -> Result<Option<String>> {
        let Some(as_of) = self.batch_of(seq) else {
            return Ok(Some(format!(
                "sale {} belongs to no import batch",
                stored.row.record_id
            )));
        };
        self.facts.as_of = as_of;
        let row = &stored.row;
        if !self.facts.known_chips.contains(&row.chip) {
            return Ok(Some(format!(
                "{} names chip {}, which no policy version names",
                row.record_id, row.chip
            )));
        }
        let late = self.plan.late.get(&seq).copied();
        let group = self.settings.market_group(&row.market);
        let (mut refusals, draw) = match (row.kind, group) {
            (SaleKind::Return, _) => (self.return_refusals(seq, row)?, None),
            (SaleKind::Sale, MarketGroup::Restricted) => {
                let verdict =
                    rules::judge_restricted(self.facts, &Shipment::of_sale(row), Purpose::Sale)?;
                let draw = verdict.draw.map(|(hold, drawn)| (hold.seq, drawn));
                (verdict.refusals, draw)
            }
            (SaleKind::Sale, _) => (
                rules::closed_refusal(self.facts, self.settings, row.sale_date)?
                    .into_iter()
                    .collect(),
                None,
            ),
        };
        if let Some(why) = self.late_fault(row, late, &mut refusals)? {
            return Ok(Some(why));
        }
        if let Some(why) = accepted_fault(row, &refusals, stored.accepted_rules.as_deref()) {
            return Ok(Some(why));
        }
        let stored_draw = stored.hold_seq.zip(stored.drawn_units);
        if stored_draw != draw {
            return Ok(Some(format!(
                "{} records drawing {stored_draw:?} (hold, units) from holds, but the rules draw {draw:?}",
                row.record_id
            )));
        }
        let signed = if row.kind == SaleKind::Return {
            -row.units
        } else {
            row.units
        };
        if let Some(reverses) = &row.reverses {
            *self.returned.entry(reverses.clone()).or_default() += row.units;
        }
        self.facts.apply_sale(
            &row.chip,
            row.sale_date,
            group,
            signed,
            row.lot_id.as_deref(),
            draw,
        );
        Ok(None)
    }

    /// A late entry faces every rule but `closed`, and its period must be
    /// closed (by the close it names); any other row must not be refused
    /// by `closed`.
    fn late_fault(
        &mut self,
        row: &SaleRow,
        late: Option<i64>,
        refusals: &mut Vec<Refusal>,
    ) -> Result<Option<String>> {
        let period = Period::of(self.settings.period_kind, row.sale_date);
        let Some(close_seq) = late else {
            return Ok(None);
        };
        if self.plan.closes.get(&close_seq) != Some(&period) || !self.facts.is_closed(period)? {
            return Ok(Some(format!(
                "{} is marked a late entry after close {close_seq}, but that close is not of its period {period}",
                row.record_id
            )));
        }
        refusals.retain(|(rule, _)| *rule != Rule::Closed);
        Ok(None)
    }

    fn return_refusals(&mut self, seq: i64, row: &SaleRow) -> Result<Vec<Refusal>> {
        let Some(reverses) = row.reverses.as_deref() else {
            return Ok(vec![(Rule::Return, "names no sale".to_string())]);
        };
        let sale = crate::records::sales::recorded(self.conn, reverses)?
            .filter(|recorded| recorded.seq < seq)
            .map(|recorded| recorded.row);
        let returned = self.returned.get(reverses).copied().unwrap_or(0);
        // `late` is applied by `late_fault`, like for sales.
        rules::judge_return(
            self.facts,
            self.settings,
            row,
            sale.as_ref(),
            returned,
            false,
        )
    }
}

/// The rules a row broke must be exactly those it was accepted for, and
/// only ones `--accept-violations` may accept.
fn accepted_fault(row: &SaleRow, refusals: &[Refusal], accepted: Option<&str>) -> Option<String> {
    let acceptable = refusals.iter().all(|(rule, _)| rule.acceptable());
    let expected = rules::accepted_rules_text(refusals);
    if expected.as_deref() == accepted && acceptable {
        return None;
    }
    let why: Vec<String> = refusals
        .iter()
        .map(|(rule, message)| format!("{message} (rule {rule})"))
        .collect();
    Some(match accepted {
        None => format!("{} breaks the rules: {}", row.record_id, why.join("; ")),
        Some(rules) => format!(
            "{} is recorded as accepted for '{rules}', but it broke {}",
            row.record_id,
            if why.is_empty() {
                "no rule".to_string()
            } else {
                why.join("; ")
            }
        ),
    })
}

impl Replay<'_> {
    /// Replays one act (every entry kind but a sale); why it was not
    /// allowed, if it was not.
    fn act(&mut self, seq: i64, act: &Act) -> Result<Option<String>> {
        match act {
            Act::Version(version) => self.facts.add_version(seq, version.clone()),
            Act::Customer(event) => self.facts.add_customer_event(event.clone()),
            Act::Lot(event) => self.facts.add_lot_event(event.clone()),
            Act::Supply(attestation) => {
                let period = Period::parse(self.settings.period_kind, &attestation.period)
                    .map_err(Error::Integrity)?;
                self.facts.add_supply(attestation.clone(), period);
            }
            Act::Snapshot { effective_from } => {
                let rows: Vec<ListedParty> =
                    crate::records::screening::snapshot_rows(self.conn, *effective_from)?
                        .into_iter()
                        .map(|(_, party)| party)
                        .collect();
                self.facts.add_snapshot(*effective_from, &rows);
            }
            Act::Close {
                period,
                closed_on,
                figures,
            } => {
                let fault = self.sealed_fault(*period, *closed_on, figures)?;
                self.facts.close(*period);
                return Ok(fault);
            }
            Act::Hold { hold, reserved_on } => return self.hold(hold, *reserved_on),
            Act::Release {
                hold_seq,
                order_ref,
                released_units,
                on,
            } => return Ok(self.release(*hold_seq, order_ref, *released_units, *on)),
            Act::Withdrawal {
                version_seq,
                chip,
                effective_from,
                on,
            } => return Ok(self.withdrawal(*version_seq, chip, *effective_from, *on)),
            Act::Payment {
                period,
                reference,
                paid_on,
                on,
            } => return Ok(self.payment(seq, period, reference, *paid_on, *on)),
            Act::Reversal {
                payment_seq,
                period,
                reference,
            } => return Ok(self.reversal(*payment_seq, period, reference)),
            Act::Clearance {
                customer_id,
                list,
                entry_id,
                on,
            } => return Ok(self.clearance(customer_id, list, entry_id, *on)),
            Act::Token {
                issued,
                name,
                expires_on,
                on,
            } => return Ok(self.token(*issued, name, *expires_on, *on)),
        }
        Ok(None)
    }

    /// The sealed figures that reach beyond the period (SPEC §3.15 item 4):
    /// each chip's held units, cap, limit, headroom and status, and each
    /// lot's line, as the entries before the close give them on its date.
    /// (`report::check_sealed` compares the period's own figures.)
    fn sealed_fault(
        &mut self,
        period: Period,
        closed_on: NaiveDate,
        figures: &str,
    ) -> Result<Option<String>> {
        let Ok(sealed) = serde_json::from_str::<serde_json::Value>(figures) else {
            return Ok(Some(format!("the sealed figures of {period} are not JSON")));
        };
        self.facts.as_of = closed_on;
        let reference = crate::report::reference_date(period, closed_on);
        let chips = sealed["chips"].as_array().map_or(&[][..], Vec::as_slice);
        let listed: Vec<&str> = chips
            .iter()
            .map(|c| c["chip"].as_str().unwrap_or_default())
            .collect();
        let named = self.facts.chips_named_in(period)?;
        if !listed.iter().copied().eq(named.iter().map(String::as_str)) {
            return Ok(Some(format!(
                "the sealed chips of {period} are {listed:?}, but the entries before the close give {named:?}"
            )));
        }
        for chip in chips {
            let name = chip["chip"].as_str().unwrap_or_default();
            let given = crate::report::cap_fields(self.facts, name, period, reference)?.to_json();
            for (key, value) in given.as_object().into_iter().flatten() {
                if chip[key.as_str()] != *value {
                    return Ok(Some(format!(
                        "the sealed {key} of {name} in {period} is {}, but the entries before the close give {value}",
                        chip[key.as_str()]
                    )));
                }
            }
        }
        let sealed_lots: Vec<&serde_json::Value> = sealed["lots"]
            .as_array()
            .map_or(Vec::new(), |lots| lots.iter().collect());
        let named = self.facts.lots_named_in(period);
        let listed: std::collections::BTreeSet<String> = sealed_lots
            .iter()
            .filter_map(|lot| lot["lot_id"].as_str().map(str::to_string))
            .collect();
        if listed != named || listed.len() != sealed_lots.len() {
            return Ok(Some(format!(
                "the sealed lots of {period} are {listed:?}, but the entries before the close name {named:?}"
            )));
        }
        for lot in sealed_lots {
            let lot_id = lot["lot_id"].as_str().unwrap_or_default();
            let shipped = self.facts.lot_shipped_through(lot_id, period);
            let given = crate::report::lot_figure(
                lot_id.to_string(),
                self.facts.lot_events(lot_id),
                period,
                shipped,
            )
            .to_json();
            if *lot != given {
                return Ok(Some(format!(
                    "the sealed line of lot {lot_id} in {period} is {lot}, but the entries before the close give {given}"
                )));
            }
        }
        Ok(None)
    }

    /// A hold: `reserve` for a restricted market, planned on or after its
    /// as-of date, expiring after it, passing every rule then.
    fn hold(&mut self, hold: &ActiveHold, reserved_on: NaiveDate) -> Result<Option<String>> {
        self.facts.as_of = reserved_on;
        let order = &hold.order_ref;
        if self.settings.market_group(&hold.market) != MarketGroup::Restricted {
            return Ok(Some(format!(
                "hold of {order} is for {}, not a restricted market",
                hold.market
            )));
        }
        if hold.planned_date < reserved_on || hold.expires_on <= reserved_on {
            return Ok(Some(format!(
                "hold of {order} reserved on {} is planned for {} and expires on {}",
                format_date(reserved_on),
                format_date(hold.planned_date),
                format_date(hold.expires_on)
            )));
        }
        if !self.facts.known_chips.contains(&hold.chip) {
            return Ok(Some(format!(
                "hold of {order} names chip {}, which no policy version names",
                hold.chip
            )));
        }
        let shipment = Shipment {
            date: hold.planned_date,
            chip: &hold.chip,
            market: &hold.market,
            customer_id: hold.customer_id.as_deref(),
            lot_id: hold.lot_id.as_deref(),
            units: hold.units,
            order_ref: Some(order),
        };
        let verdict = rules::judge_restricted(self.facts, &shipment, Purpose::Hold)?;
        if !verdict.refusals.is_empty() {
            let why: Vec<String> = verdict
                .refusals
                .iter()
                .map(|(rule, message)| format!("{message} (rule {rule})"))
                .collect();
            return Ok(Some(format!(
                "hold of {order} breaks the rules: {}",
                why.join("; ")
            )));
        }
        self.facts.add_hold(hold.clone());
        Ok(None)
    }

    /// A release ends an active hold, for exactly the units it still held.
    fn release(
        &mut self,
        hold_seq: i64,
        order_ref: &str,
        units: i64,
        on: NaiveDate,
    ) -> Option<String> {
        self.facts.as_of = on;
        let Some(hold) = self.facts.holds.get(&hold_seq) else {
            return Some(format!(
                "release of {order_ref} names entry {hold_seq}, which is not a hold"
            ));
        };
        if hold.hold.order_ref != order_ref
            || !self.facts.is_active(hold)
            || hold.remaining() != units
        {
            return Some(format!(
                "release of {order_ref} on {}: hold {hold_seq} of {} was not active with {units} units \
                 (it held {} then)",
                format_date(on),
                hold.hold.order_ref,
                if self.facts.is_active(hold) { hold.remaining() } else { 0 }
            ));
        }
        if let Some(hold) = self.facts.holds.get_mut(&hold_seq) {
            hold.released = true;
        }
        None
    }

    /// A withdrawal: of a version in force later than its as-of date, with
    /// no sale, return or hold of the chip dated on or after it.
    fn withdrawal(
        &mut self,
        version_seq: i64,
        chip: &str,
        from: NaiveDate,
        on: NaiveDate,
    ) -> Option<String> {
        let matches = self
            .facts
            .version(chip, version_seq)
            .is_some_and(|version| version.effective_from == from);
        let used = self
            .facts
            .last_activity
            .get(chip)
            .is_some_and(|last| *last >= from);
        if !matches || from <= on || used {
            return Some(format!(
                "withdrawal of the {chip} version from {} on {} was not allowed \
                 (no such version in force, already in effect, or already used)",
                format_date(from),
                format_date(on)
            ));
        }
        self.facts.withdraw(chip, version_seq);
        None
    }

    fn payment(
        &mut self,
        seq: i64,
        period: &str,
        reference: &str,
        paid_on: NaiveDate,
        on: NaiveDate,
    ) -> Option<String> {
        let reused = self
            .payments
            .values()
            .any(|(p, r)| p == period && r == reference);
        if reused || paid_on > on {
            return Some(format!(
                "payment {reference} of {period}: its reference was used before in the period, \
                 or it was paid after it was recorded"
            ));
        }
        self.payments
            .insert(seq, (period.to_string(), reference.to_string()));
        None
    }

    fn reversal(&mut self, payment_seq: i64, period: &str, reference: &str) -> Option<String> {
        let same = self
            .payments
            .get(&payment_seq)
            .is_some_and(|(p, r)| p == period && r == reference);
        if !same || !self.reversed.insert(payment_seq) {
            return Some(format!(
                "reversal of payment {reference} of {period}: entry {payment_seq} is not that payment, \
                 or it was already reversed"
            ));
        }
        None
    }

    /// A token issued while no token of its name works, expiring after its
    /// date; a revocation of a token that works.
    fn token(
        &mut self,
        issued: bool,
        name: &str,
        expires_on: Option<NaiveDate>,
        on: NaiveDate,
    ) -> Option<String> {
        let works = |expiry: &Option<NaiveDate>| expiry.is_none_or(|e| on < e);
        let working = self.tokens.get(name).is_some_and(works);
        if issued {
            if working || expires_on.is_some_and(|e| e <= on) {
                return Some(format!(
                    "token {name} issued on {} while one of that name worked, or expiring at once",
                    format_date(on)
                ));
            }
            self.tokens.insert(name.to_string(), expires_on);
        } else {
            if !working {
                return Some(format!(
                    "revocation of token {name} on {}: no such token worked",
                    format_date(on)
                ));
            }
            self.tokens.remove(name);
        }
        None
    }

    fn clearance(
        &mut self,
        customer_id: &str,
        list: &str,
        entry_id: &str,
        on: NaiveDate,
    ) -> Option<String> {
        let allowed =
            self.facts.knows_customer(customer_id) && self.facts.lists_entry(on, list, entry_id);
        if !allowed || !self.facts.add_clearance(customer_id, list, entry_id) {
            return Some(format!(
                "clearance of {customer_id} for {list} entry {entry_id} on {}: no such customer, \
                 no such entry in force, or already cleared",
                format_date(on)
            ));
        }
        None
    }
}

/// Reads every entry but the sales (few, beside millions of sales) in
/// entry order, and the import batches and late entries.
fn plan(conn: &Connection, settings: &Settings) -> Result<Plan> {
    let mut acts: Vec<(i64, Act)> = Vec::new();
    for (seq, version) in crate::records::policy::all_with_seq(conn)? {
        acts.push((seq, Act::Version(version)));
    }
    for (seq, event) in crate::records::customers::all_with_seq(conn)? {
        acts.push((seq, Act::Customer(event)));
    }
    for (seq, event) in crate::records::lots::all_with_seq(conn)? {
        acts.push((seq, Act::Lot(event)));
    }
    for (seq, attestation) in crate::records::supply::all_with_seq(conn)? {
        acts.push((seq, Act::Supply(attestation)));
    }
    read_holds(conn, &mut acts)?;
    read_other_acts(conn, settings, &mut acts)?;
    acts.sort_by_key(|(seq, _)| *seq);
    let mut closes = HashMap::default();
    for (seq, act) in &acts {
        if let Act::Close { period, .. } = act {
            closes.insert(*seq, *period);
        }
    }
    let mut batches = Vec::new();
    let mut statement = conn.prepare(
        "SELECT entries_from, entries_to, imported_on FROM import_batch WHERE file_kind = 'sales' ORDER BY entries_from",
    )?;
    let mut rows = statement.query([])?;
    while let Some(row) = rows.next()? {
        batches.push((row.get(0)?, row.get(1)?, date(&row.get::<_, String>(2)?)?));
    }
    let late = conn
        .prepare("SELECT sale_seq, close_seq FROM late_entry")?
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(Plan {
        acts,
        batches,
        late,
        closes,
    })
}

fn read_holds(conn: &Connection, acts: &mut Vec<(i64, Act)>) -> Result<()> {
    let mut statement = conn.prepare(
        "SELECT seq, order_ref, chip, market, customer_id, lot_id, units, planned_date, reserved_on, expires_on FROM hold",
    )?;
    let mut rows = statement.query([])?;
    while let Some(row) = rows.next()? {
        let seq: i64 = row.get(0)?;
        let hold = ActiveHold {
            seq,
            order_ref: row.get(1)?,
            chip: row.get(2)?,
            market: row.get(3)?,
            customer_id: row.get(4)?,
            lot_id: row.get(5)?,
            units: row.get(6)?,
            drawn: 0,
            planned_date: date(&row.get::<_, String>(7)?)?,
            expires_on: date(&row.get::<_, String>(9)?)?,
        };
        let reserved_on = date(&row.get::<_, String>(8)?)?;
        acts.push((seq, Act::Hold { hold, reserved_on }));
    }
    Ok(())
}

/// The acts of the smaller kinds: releases, payments and reversals,
/// withdrawals, closes, snapshots and clearances.
fn read_other_acts(
    conn: &Connection,
    settings: &Settings,
    acts: &mut Vec<(i64, Act)>,
) -> Result<()> {
    read_order_and_money_acts(conn, acts)?;
    read_register_acts(conn, settings, acts)
}

/// Five text columns of every row `sql` selects (seq first).
type Row5 = (i64, String, String, String, String);

fn read_rows(conn: &Connection, sql: &str) -> Result<Vec<Row5>> {
    Ok(conn
        .prepare(sql)?
        .query_map([], |row| row.try_into())?
        .collect::<rusqlite::Result<_>>()?)
}

/// A whole number entry `seq` stores as text (read with CAST).
fn stored_integer(seq: i64, text: &str) -> Result<i64> {
    text.parse::<i64>()
        .map_err(|_| Error::Integrity(format!("entry {seq}: '{text}' is not a number")))
}

/// Releases, payments and payment reversals.
fn read_order_and_money_acts(conn: &Connection, acts: &mut Vec<(i64, Act)>) -> Result<()> {
    for (seq, hold_seq, order_ref, units, on) in read_rows(
        conn,
        "SELECT seq, CAST(hold_seq AS TEXT), order_ref, CAST(released_units AS TEXT), released_on FROM hold_release",
    )? {
        let hold_seq = stored_integer(seq, &hold_seq)?;
        let released_units = stored_integer(seq, &units)?;
        let on = date(&on)?;
        let release = Act::Release { hold_seq, order_ref, released_units, on };
        acts.push((seq, release));
    }
    for (seq, period, paid_on, reference, on) in read_rows(
        conn,
        "SELECT seq, period, paid_on, reference, recorded_on FROM remittance_payment",
    )? {
        let (paid_on, on) = (date(&paid_on)?, date(&on)?);
        acts.push((
            seq,
            Act::Payment {
                period,
                reference,
                paid_on,
                on,
            },
        ));
    }
    for (seq, payment_seq, period, reference, _) in read_rows(
        conn,
        "SELECT seq, CAST(payment_seq AS TEXT), period, reference, reversed_on FROM payment_reversal",
    )? {
        let payment_seq = stored_integer(seq, &payment_seq)?;
        acts.push((seq, Act::Reversal { payment_seq, period, reference }));
    }
    Ok(())
}

/// Policy withdrawals, closes, screening snapshots and clearances, token events.
fn read_register_acts(
    conn: &Connection,
    settings: &Settings,
    acts: &mut Vec<(i64, Act)>,
) -> Result<()> {
    for (seq, version_seq, chip, from, on) in read_rows(
        conn,
        "SELECT seq, CAST(version_seq AS TEXT), chip, effective_from, withdrawn_on FROM policy_withdrawal",
    )? {
        let version_seq = stored_integer(seq, &version_seq)?;
        let (effective_from, on) = (date(&from)?, date(&on)?);
        acts.push((seq, Act::Withdrawal { version_seq, chip, effective_from, on }));
    }
    let closes = "SELECT seq, period, closed_on, figures, '' FROM period_close";
    for (seq, period, closed_on, figures, _) in read_rows(conn, closes)? {
        let period = Period::parse(settings.period_kind, &period).map_err(Error::Integrity)?;
        let closed_on = date(&closed_on)?;
        acts.push((
            seq,
            Act::Close {
                period,
                closed_on,
                figures,
            },
        ));
    }
    let snapshots = "SELECT seq, effective_from, '', '', '' FROM screening_snapshot";
    for (seq, from, _, _, _) in read_rows(conn, snapshots)? {
        acts.push((
            seq,
            Act::Snapshot {
                effective_from: date(&from)?,
            },
        ));
    }
    let tokens = "SELECT seq, event, name, coalesce(expires_on, ''), event_on FROM token_event";
    for (seq, event, name, expires, on) in read_rows(conn, tokens)? {
        let expires_on = Some(expires)
            .filter(|e| !e.is_empty())
            .map(|e| date(&e))
            .transpose()?;
        let issued = event == "issued";
        acts.push((
            seq,
            Act::Token {
                issued,
                name,
                expires_on,
                on: date(&on)?,
            },
        ));
    }
    let clearances = "SELECT seq, customer_id, list, entry_id, cleared_on FROM screening_clearance";
    for (seq, customer_id, list, entry_id, on) in read_rows(conn, clearances)? {
        let on = date(&on)?;
        acts.push((
            seq,
            Act::Clearance {
                customer_id,
                list,
                entry_id,
                on,
            },
        ));
    }
    Ok(())
}
