//! The rules (SPEC §3.1–3.6): policy, customer, lot, cap, closed, order.
//! ONE place: the nightly import, `check` and `reserve` all call
//! `judge_restricted`, and every US return goes through `judge_us_return`.
//! What the rules need to know about the ledger comes through `Facts`.

use crate::customers::{CustomerEvent, CustomerStatus};
use crate::error::{Result, Rule};
use crate::ledger::Settings;
use crate::lots::LotState;
use crate::money::Ratio;
use crate::period::{format_date, Period, PeriodKind};
use crate::policy::{Cap, CapWindow, PolicyVersion};
use chrono::NaiveDate;
use std::rc::Rc;

/// An inclusive range of dates whose units count together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Window {
    /// First day.
    pub start: NaiveDate,
    /// Last day.
    pub end: NaiveDate,
}

impl Window {
    /// Whether `date` is inside.
    pub fn contains(&self, date: NaiveDate) -> bool {
        self.start <= date && date <= self.end
    }

    /// The window of a whole period.
    pub fn of_period(period: Period) -> Window {
        Window {
            start: period.first_day(),
            end: period.last_day(),
        }
    }
}

/// Every policy version of one chip, ordered by `effective_from`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChipPolicy {
    /// The versions, oldest first.
    pub versions: Vec<PolicyVersion>,
}

impl ChipPolicy {
    /// Versions grouped per chip, in the order given (`policy::all_versions`
    /// orders them by chip, then date, as each `ChipPolicy` needs).
    pub fn per_chip(versions: Vec<PolicyVersion>) -> Vec<(String, ChipPolicy)> {
        let mut grouped: Vec<(String, ChipPolicy)> = Vec::new();
        for version in versions {
            match grouped.last_mut() {
                Some((chip, policy)) if *chip == version.chip => policy.versions.push(version),
                _ => grouped.push((
                    version.chip.clone(),
                    ChipPolicy {
                        versions: vec![version],
                    },
                )),
            }
        }
        grouped
    }

    /// Index of the version in force on `date`.
    fn index_on(&self, date: NaiveDate) -> Option<usize> {
        let after = self.versions.partition_point(|v| v.effective_from <= date);
        after.checked_sub(1)
    }

    /// The version in force on `date`: the latest with `effective_from <= date`.
    pub fn in_force(&self, date: NaiveDate) -> Option<&PolicyVersion> {
        self.index_on(date).map(|index| &self.versions[index])
    }

    /// The cap in force on `date` and its window (SPEC §3.4), if capped.
    pub fn cap_on(&self, date: NaiveDate, kind: PeriodKind) -> Option<(Cap, Window)> {
        let index = self.index_on(date)?;
        let cap = self.versions[index].cap?;
        let period = Period::of(kind, date);
        let window = match cap.cap_window {
            CapWindow::Period => Window::of_period(period),
            CapWindow::Cumulative => {
                // Walk back through the unbroken run of capped versions.
                let mut first = index;
                while first > 0 && self.versions[first - 1].cap.is_some() {
                    first -= 1;
                }
                Window {
                    start: self.versions[first].effective_from,
                    end: period.last_day(),
                }
            }
        };
        Some((cap, window))
    }
}

/// Units in a window: net US, net restricted, and active holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WindowUnits {
    /// US sales minus returns dated in the window.
    pub us_net: i64,
    /// Restricted sales minus returns dated in the window.
    pub restricted_net: i64,
    /// Remaining units of active holds planned in the window.
    pub held: i64,
}

/// An active quota hold (SPEC §3.6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveHold {
    /// Its entry.
    pub seq: i64,
    /// The order it holds headroom for.
    pub order_ref: String,
    /// Chip.
    pub chip: String,
    /// Restricted market.
    pub market: String,
    /// Customer, if named.
    pub customer_id: Option<String>,
    /// Lot, if named.
    pub lot_id: Option<String>,
    /// Units reserved.
    pub units: i64,
    /// Units drawn down by sales so far.
    pub drawn: i64,
    /// Planned shipment date (its period is the hold's period).
    pub planned_date: NaiveDate,
    /// First day on which it is no longer active.
    pub expires_on: NaiveDate,
}

/// Units a hold still holds (SPEC §3.6): its units less what sales drew
/// from it, or none once released. The one definition used by the order
/// lookup, `derived_held_units` (kept current per write, rebuilt by the v1
/// upgrade, recomputed by `verify`).
pub fn hold_remaining_units(units: i64, drawn_units: i64, released: bool) -> i64 {
    if released {
        0
    } else {
        (units - drawn_units).max(0)
    }
}

/// Whether a hold with `remaining_units` is active on `as_of` (SPEC §3.6):
/// units still held, not expired (`as_of < expires_on`), and its period not
/// closed (a close ends its holds). Reads of `derived_held_units` apply the
/// same two date conditions to its rows in SQL (`expires_on > as_of`, and
/// only planned dates in open periods).
pub fn hold_is_active(
    remaining_units: i64,
    expires_on: NaiveDate,
    as_of: NaiveDate,
    period_closed: bool,
) -> bool {
    remaining_units > 0 && as_of < expires_on && !period_closed
}

impl ActiveHold {
    /// Units still held.
    pub fn remaining(&self) -> i64 {
        self.units - self.drawn
    }
}

/// A lot's commitments: net shipped and still held.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LotCommitted {
    /// Restricted sales naming the lot, net of returns.
    pub shipped_net: i64,
    /// Remaining units of active holds naming the lot.
    pub held: i64,
}

/// What the rules need to know about the ledger. Implemented over SQLite
/// plus the in-memory effect of rows already applied in an import.
pub trait Facts {
    /// The ledger settings.
    fn settings(&self) -> &Settings;
    /// Whether `period` is closed.
    fn is_closed(&mut self, period: Period) -> Result<bool>;
    /// Every version of `chip` (possibly none).
    fn chip_policy(&mut self, chip: &str) -> Result<Rc<ChipPolicy>>;
    /// The customer's latest event dated on or before `date`.
    fn customer_on(&mut self, customer_id: &str, date: NaiveDate) -> Result<Option<CustomerEvent>>;
    /// The lot's state on `date`; `None` when the lot has no events.
    fn lot_on(&mut self, lot_id: &str, date: NaiveDate) -> Result<Option<LotState>>;
    /// The lot's shipped and held units now.
    fn lot_committed(&mut self, lot_id: &str) -> Result<LotCommitted>;
    /// Units of `chip` in `window`.
    fn window_units(&mut self, chip: &str, window: Window) -> Result<WindowUnits>;
    /// The active hold of `order_ref`, if any.
    fn active_hold(&mut self, order_ref: &str) -> Result<Option<ActiveHold>>;
}

/// A restricted-market shipment to judge: a sale, or a planned one (hold/check).
#[derive(Debug, Clone, Copy)]
pub struct Shipment<'a> {
    /// Sale or planned date.
    pub date: NaiveDate,
    /// Chip, upper-case.
    pub chip: &'a str,
    /// Market, upper-case (in the restricted group).
    pub market: &'a str,
    /// Customer, if named.
    pub customer_id: Option<&'a str>,
    /// Lot, if named.
    pub lot_id: Option<&'a str>,
    /// Units.
    pub units: i64,
    /// Order reference, if any.
    pub order_ref: Option<&'a str>,
}

/// Whether the shipment is a sale (draws holds) or a request for a hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// A sale being recorded: draws down a matching active hold.
    Sale,
    /// A `check` or `reserve`: one active hold per order (rule `order`).
    Hold,
}

/// The cap window's figures before the shipment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CapFigures {
    /// The window (the period's, when no cap is in force).
    pub window: Window,
    /// Units in it.
    pub units: WindowUnits,
    /// The cap in force, if any.
    pub cap: Option<Cap>,
    /// `floor(cap_ratio × max(us_net, 0))`, if capped.
    pub limit: Option<i64>,
}

impl CapFigures {
    /// `limit − restricted − held`, if capped (negative when over).
    pub fn headroom(&self) -> Option<i64> {
        self.limit
            .map(|limit| limit - self.units.restricted_net - self.units.held)
    }
}

/// The outcome of judging a shipment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// Every rule that refused it, with a message (empty: allowed).
    pub refusals: Vec<(Rule, String)>,
    /// The hold a sale draws from and how many units (sales only).
    pub draw: Option<Draw>,
    /// The cap window's figures before the shipment.
    pub figures: CapFigures,
}

/// `floor(ratio × max(us_net, 0))`.
pub fn cap_limit(cap_ratio: Ratio, us_net: i64) -> i64 {
    cap_ratio.floor_mul_units(us_net.max(0))
}

/// The cap figures of `chip` on `date` (the period's when uncapped).
pub fn figures_on(facts: &mut dyn Facts, chip: &str, date: NaiveDate) -> Result<CapFigures> {
    let kind = facts.settings().period_kind;
    let policy = facts.chip_policy(chip)?;
    Ok(match policy.cap_on(date, kind) {
        Some((cap, window)) => {
            let units = facts.window_units(chip, window)?;
            CapFigures {
                window,
                units,
                cap: Some(cap),
                limit: Some(cap_limit(cap.cap_ratio, units.us_net)),
            }
        }
        None => {
            let window = Window::of_period(Period::of(kind, date));
            CapFigures {
                window,
                units: facts.window_units(chip, window)?,
                cap: None,
                limit: None,
            }
        }
    })
}

/// A chip's standing on the cap (SPEC §5 `report`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Within its cap.
    Ok,
    /// The cap window's restricted net units are over the limit.
    Breach,
    /// Restricted sales allowed, no cap.
    Uncapped,
    /// No version in force, or restricted sales not allowed.
    Forbidden,
}

impl Status {
    /// The JSON name.
    pub fn name(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Breach => "breach",
            Status::Uncapped => "uncapped",
            Status::Forbidden => "forbidden",
        }
    }
}

/// A chip's status under `version` (the one in force on the date the
/// figures are for): holds never make a breach, shipped units do.
pub fn cap_status(version: Option<&PolicyVersion>, figures: &CapFigures) -> Status {
    match version {
        Some(v) if v.restricted_allowed => match figures.limit {
            Some(limit) if figures.units.restricted_net > limit => Status::Breach,
            Some(_) => Status::Ok,
            None => Status::Uncapped,
        },
        _ => Status::Forbidden,
    }
}

/// A rule's refusal: the rule and why, in words a compliance officer can act on.
pub type Refusal = (Rule, String);

/// The active hold a sale draws from, and the units it draws.
pub type Draw = (ActiveHold, i64);

/// Judges a restricted-market shipment: every rule a restricted sale on
/// its date would face (SPEC §3.1–3.4, §3.6, §3.8), each one function
/// below, named after its rule. All failures are listed, not just the first.
pub fn judge_restricted(
    facts: &mut dyn Facts,
    shipment: &Shipment<'_>,
    purpose: Purpose,
) -> Result<Verdict> {
    let policy = facts.chip_policy(shipment.chip)?;
    let version = policy.in_force(shipment.date);
    let mut refusals = Vec::new();
    refusals.extend(rule_closed(facts, shipment)?);
    refusals.extend(rule_policy(shipment, version));
    let (order_refusal, draw) = rule_order(facts, shipment, purpose)?;
    refusals.extend(order_refusal);
    refusals.extend(rule_customer(facts, shipment, version)?);
    refusals.extend(rule_lot(facts, shipment, version, draw.as_ref())?);
    let figures = figures_on(facts, shipment.chip, shipment.date)?;
    let drawn_units = draw.as_ref().map_or(0, |(_, drawn)| *drawn);
    refusals.extend(rule_cap(shipment, &figures, drawn_units));
    Ok(Verdict {
        refusals,
        draw,
        figures,
    })
}

/// Rule `closed` (SPEC §3.8): nothing may be dated in a closed period.
pub fn rule_closed(facts: &mut dyn Facts, shipment: &Shipment<'_>) -> Result<Option<Refusal>> {
    let period = Period::of(facts.settings().period_kind, shipment.date);
    Ok(facts
        .is_closed(period)?
        .then(|| (Rule::Closed, format!("period {period} is closed"))))
}

/// Rule `policy` (SPEC §3.1): a version in force on the date that allows
/// restricted sales.
pub fn rule_policy(shipment: &Shipment<'_>, version: Option<&PolicyVersion>) -> Option<Refusal> {
    match version {
        None => Some((
            Rule::Policy,
            format!(
                "no policy version of {} is in force on {}",
                shipment.chip,
                format_date(shipment.date)
            ),
        )),
        Some(v) if !v.restricted_allowed => Some((
            Rule::Policy,
            format!(
                "{} may not be sold to restricted markets (policy in force from {}: {})",
                shipment.chip,
                format_date(v.effective_from),
                v.source
            ),
        )),
        Some(_) => None,
    }
}

/// Rule `order` (SPEC §3.6): a hold request for an order with an active
/// hold is refused. A sale instead draws down its order's active hold when
/// that hold matches it (chip, period, and customer and lot where named);
/// returns the hold and the units drawn.
pub fn rule_order(
    facts: &mut dyn Facts,
    shipment: &Shipment<'_>,
    purpose: Purpose,
) -> Result<(Option<Refusal>, Option<Draw>)> {
    let Some(order_ref) = shipment.order_ref else {
        return Ok((None, None));
    };
    let Some(hold) = facts.active_hold(order_ref)? else {
        return Ok((None, None));
    };
    if purpose == Purpose::Hold {
        let refusal = format!(
            "order {order_ref} already has an active hold of {} units (entry {}, expires on {})",
            hold.remaining(),
            hold.seq,
            format_date(hold.expires_on)
        );
        return Ok((Some((Rule::Order, refusal)), None));
    }
    let kind = facts.settings().period_kind;
    let matches = hold.chip == shipment.chip
        && Period::of(kind, hold.planned_date) == Period::of(kind, shipment.date)
        && hold
            .customer_id
            .as_deref()
            .is_none_or(|c| Some(c) == shipment.customer_id)
        && hold
            .lot_id
            .as_deref()
            .is_none_or(|l| Some(l) == shipment.lot_id);
    if !matches {
        return Ok((None, None));
    }
    let drawn = shipment.units.min(hold.remaining());
    Ok((None, Some((hold, drawn))))
}

/// Rule `customer` (SPEC §3.2): where the policy requires approval, a
/// named customer approved on the date, in the restricted group.
pub fn rule_customer(
    facts: &mut dyn Facts,
    shipment: &Shipment<'_>,
    version: Option<&PolicyVersion>,
) -> Result<Option<Refusal>> {
    if !version.is_some_and(|v| v.customer_approval_required) {
        return Ok(None);
    }
    let Some(customer_id) = shipment.customer_id else {
        return Ok(Some((
            Rule::Customer,
            format!(
                "{} requires an approved customer; none is named",
                shipment.chip
            ),
        )));
    };
    let day = format_date(shipment.date);
    let why = match facts.customer_on(customer_id, shipment.date)? {
        None => format!("customer {customer_id} is not approved on {day} (no approval on record)"),
        Some(event) if event.status == CustomerStatus::Revoked => format!(
            "customer {customer_id}'s approval was revoked on {}",
            format_date(event.effective_date)
        ),
        Some(event) => {
            let restricted = &facts.settings().restricted_markets;
            if restricted.contains(&event.country) {
                return Ok(None);
            }
            format!(
                "customer {customer_id} is approved in {}, which is not in the restricted group ({})",
                event.country,
                restricted.join(",")
            )
        }
    };
    Ok(Some((Rule::Customer, why)))
}

/// Rule `lot` (SPEC §3.3): a named lot is always checked (exists, same
/// chip, cleared on the date, capacity not exceeded by shipped plus held
/// units); where the policy requires a lab test, a lot must be named.
/// `draw` is the hold a sale draws from: its units already count for its lot.
pub fn rule_lot(
    facts: &mut dyn Facts,
    shipment: &Shipment<'_>,
    version: Option<&PolicyVersion>,
    draw: Option<&Draw>,
) -> Result<Option<Refusal>> {
    let Some(lot_id) = shipment.lot_id else {
        let required = version.is_some_and(|v| v.lab_test_required);
        return Ok(required.then(|| {
            let why = format!(
                "{} requires a lot cleared by a third-party lab; none is named",
                shipment.chip
            );
            (Rule::Lot, why)
        }));
    };
    let day = format_date(shipment.date);
    let why = match facts.lot_on(lot_id, shipment.date)? {
        None => format!("lot {lot_id} has no lab results on record"),
        Some(state) if state.chip != shipment.chip => format!(
            "lot {lot_id} is a lot of {}, not {}",
            state.chip, shipment.chip
        ),
        Some(state) if !state.cleared => match &state.latest {
            None => format!("lot {lot_id} has no lab result on or before {day}"),
            Some(event) => format!(
                "lot {lot_id} is not cleared on {day} (latest lab result: {} on {})",
                event.result.name(),
                format_date(event.effective_date)
            ),
        },
        Some(state) => {
            let held_for_lot = match draw {
                Some((hold, drawn)) if hold.lot_id.as_deref() == Some(lot_id) => *drawn,
                _ => 0,
            };
            let committed = facts.lot_committed(lot_id)?;
            let held = committed.held - held_for_lot;
            if committed.shipped_net + held + shipment.units <= state.capacity_units {
                return Ok(None);
            }
            format!(
                "lot {lot_id} would exceed its lab-approved {} units: {} shipped, {held} held, {} more requested",
                state.capacity_units, committed.shipped_net, shipment.units
            )
        }
    };
    Ok(Some((Rule::Lot, why)))
}

/// Rule `cap` (SPEC §3.4): restricted net units plus held units in the
/// cap window may not pass the limit. Units drawn from a hold are counted
/// already (`drawn_units`) and not checked again.
pub fn rule_cap(
    shipment: &Shipment<'_>,
    figures: &CapFigures,
    drawn_units: i64,
) -> Option<Refusal> {
    let (cap, limit) = (figures.cap?, figures.limit?);
    let beyond_hold = shipment.units - drawn_units;
    let after = figures.units.restricted_net + figures.units.held + beyond_hold;
    if beyond_hold <= 0 || after <= limit {
        return None;
    }
    Some((
        Rule::Cap,
        format!(
            "{} restricted units in {}..{} would reach {} ({} shipped, {} held, {} more) over the limit of {} ({} of {} US units)",
            shipment.chip,
            format_date(figures.window.start),
            format_date(figures.window.end),
            after,
            figures.units.restricted_net,
            figures.units.held,
            beyond_hold,
            limit,
            cap.cap_ratio,
            figures.units.us_net
        ),
    ))
}

/// Judges a US return of `units` of `chip` on `date`: refused (rule `cap`)
/// if it would put shipped restricted units over the limit, unless they
/// already were (SPEC §3.4).
pub fn judge_us_return(
    facts: &mut dyn Facts,
    chip: &str,
    date: NaiveDate,
    units: i64,
) -> Result<Option<String>> {
    let figures = figures_on(facts, chip, date)?;
    let (Some(cap), Some(limit_before)) = (figures.cap, figures.limit) else {
        return Ok(None);
    };
    let limit_after = cap_limit(cap.cap_ratio, figures.units.us_net - units);
    let restricted = figures.units.restricted_net;
    if restricted > limit_after && restricted <= limit_before {
        return Ok(Some(format!(
            "returning {units} US units of {chip} would lower the limit for {}..{} to {limit_after}, below the {restricted} restricted units already shipped",
            format_date(figures.window.start),
            format_date(figures.window.end)
        )));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::period::parse_date;

    fn d(text: &str) -> NaiveDate {
        parse_date(text).unwrap()
    }

    fn version(from: &str, cap: Option<(&str, CapWindow)>) -> PolicyVersion {
        PolicyVersion {
            chip: "H200".into(),
            effective_from: d(from),
            restricted_allowed: true,
            cap: cap.map(|(ratio, window)| Cap {
                cap_ratio: Ratio::parse(ratio).unwrap(),
                cap_window: window,
            }),
            remittance_rate: Ratio::parse("0.25").unwrap(),
            lab_test_required: false,
            customer_approval_required: false,
            source: "test".into(),
        }
    }

    #[test]
    fn versions_group_per_chip_in_date_order() {
        let of = |chip: &str, from: &str| PolicyVersion {
            chip: chip.into(),
            ..version(from, None)
        };
        let grouped = ChipPolicy::per_chip(vec![
            of("B200", "2026-01-01"),
            of("H200", "2026-01-15"),
            of("H200", "2026-04-01"),
        ]);
        let summary: Vec<(String, Vec<NaiveDate>)> = grouped
            .into_iter()
            .map(|(chip, policy)| {
                let dates = policy.versions.iter().map(|v| v.effective_from).collect();
                (chip, dates)
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                ("B200".to_string(), vec![d("2026-01-01")]),
                ("H200".to_string(), vec![d("2026-01-15"), d("2026-04-01")]),
            ]
        );
        assert!(ChipPolicy::per_chip(Vec::new()).is_empty());
    }

    #[test]
    fn version_in_force_edges() {
        let policy = ChipPolicy {
            versions: vec![version("2026-01-15", None), version("2026-04-01", None)],
        };
        assert!(policy.in_force(d("2026-01-14")).is_none());
        assert_eq!(
            policy.in_force(d("2026-01-15")).unwrap().effective_from,
            d("2026-01-15")
        );
        assert_eq!(
            policy.in_force(d("2026-03-31")).unwrap().effective_from,
            d("2026-01-15")
        );
        assert_eq!(
            policy.in_force(d("2026-04-01")).unwrap().effective_from,
            d("2026-04-01")
        );
    }

    #[test]
    fn period_window_is_the_whole_period() {
        let policy = ChipPolicy {
            versions: vec![version("2026-01-15", Some(("0.5", CapWindow::Period)))],
        };
        let (_, window) = policy.cap_on(d("2026-02-01"), PeriodKind::Quarter).unwrap();
        assert_eq!(
            window,
            Window {
                start: d("2026-01-01"),
                end: d("2026-03-31")
            }
        );
        let (_, window) = policy.cap_on(d("2026-02-01"), PeriodKind::Month).unwrap();
        assert_eq!(
            window,
            Window {
                start: d("2026-02-01"),
                end: d("2026-02-28")
            }
        );
        assert!(policy
            .cap_on(d("2026-01-14"), PeriodKind::Quarter)
            .is_none());
    }

    #[test]
    fn cumulative_window_runs_back_through_capped_versions_only() {
        let policy = ChipPolicy {
            versions: vec![
                version("2025-06-01", Some(("0.5", CapWindow::Period))),
                version("2025-09-01", None),
                version("2026-01-15", Some(("0.5", CapWindow::Period))),
                version("2026-04-10", Some(("0.4", CapWindow::Cumulative))),
            ],
        };
        let (cap, window) = policy.cap_on(d("2026-05-20"), PeriodKind::Quarter).unwrap();
        assert_eq!(cap.cap_ratio.to_string(), "0.4");
        assert_eq!(
            window,
            Window {
                start: d("2026-01-15"),
                end: d("2026-06-30")
            }
        );
        // Uncapped version in force: no cap.
        assert!(policy
            .cap_on(d("2025-10-01"), PeriodKind::Quarter)
            .is_none());
    }

    #[test]
    fn a_hold_is_active_until_its_expiry_day_drawn_in_full_released_or_closed() {
        assert_eq!(hold_remaining_units(10, 4, false), 6);
        assert_eq!(hold_remaining_units(10, 10, false), 0);
        assert_eq!(hold_remaining_units(10, 4, true), 0);
        let expires = d("2026-03-15");
        assert!(hold_is_active(6, expires, d("2026-03-14"), false));
        assert!(
            !hold_is_active(6, expires, d("2026-03-15"), false),
            "expires on the day"
        );
        assert!(
            !hold_is_active(0, expires, d("2026-03-14"), false),
            "drawn or released"
        );
        assert!(
            !hold_is_active(6, expires, d("2026-03-14"), true),
            "its period closed"
        );
    }

    #[test]
    fn status_is_breach_only_over_the_limit_from_shipped_units() {
        let capped = version("2026-01-01", Some(("0.5", CapWindow::Period)));
        let figures = |restricted_net: i64, held: i64, limit: Option<i64>| CapFigures {
            window: Window::of_period(Period::of(PeriodKind::Quarter, d("2026-02-01"))),
            units: WindowUnits {
                us_net: 200,
                restricted_net,
                held,
            },
            cap: capped.cap,
            limit,
        };
        assert_eq!(
            cap_status(Some(&capped), &figures(100, 0, Some(100))),
            Status::Ok
        );
        assert_eq!(
            cap_status(Some(&capped), &figures(101, 0, Some(100))),
            Status::Breach
        );
        assert_eq!(
            cap_status(Some(&capped), &figures(90, 50, Some(100))),
            Status::Ok,
            "holds never breach"
        );
        assert_eq!(
            cap_status(Some(&capped), &figures(5, 0, None)),
            Status::Uncapped
        );
        let forbidden = PolicyVersion {
            restricted_allowed: false,
            ..capped.clone()
        };
        assert_eq!(
            cap_status(Some(&forbidden), &figures(0, 0, Some(100))),
            Status::Forbidden
        );
        assert_eq!(cap_status(None, &figures(0, 0, None)), Status::Forbidden);
    }

    #[test]
    fn limit_floors_and_ignores_negative_us_units() {
        let half = Ratio::parse("0.5").unwrap();
        assert_eq!(cap_limit(half, 1001), 500);
        assert_eq!(cap_limit(half, -40), 0);
        assert_eq!(cap_limit(half, 0), 0);
    }
}
