//! THE rules module (SPEC §3): one file per rule family, one named
//! function per rule (`rule_policy`, `rule_customer`, `rule_lot`,
//! `rule_cap`, `rule_closed`, `rule_order`, `rule_supply`,
//! `rule_screening`), composed by
//! `judge_restricted`. The nightly import, `check`, `reserve` and the report
//! all call these; what the rules need to know about the ledger comes
//! through `Facts` (`facts::LedgerFacts` over SQLite).

pub mod cap;
pub mod closed;
pub mod customer;
pub mod facts;
pub mod lot;
pub mod order;
pub mod policy;
pub mod replay_facts;
pub mod returns;
pub mod screening;
pub mod supply;

pub use cap::{
    cap_limit, cap_status, figures_on, rule_cap, rule_cap_on_us_return, CapFigures, Status, Window,
    WindowUnits,
};
pub use closed::rule_closed;
pub use customer::{kyc_lapsed_on, rule_customer};
pub use lot::{rule_lot, LotCommitted};
pub use order::{hold_is_active, hold_remaining_units, is_retry_of, rule_order, ActiveHold};
pub use policy::{rule_policy, ChipPolicy};
pub use returns::{closed_refusal, judge_return, rule_return};
pub use screening::rule_screening;
pub use supply::rule_supply;

use crate::error::{Result, Rule};
use crate::period::Period;
use crate::records::customers::CustomerEvent;
use crate::records::lots::LotState;
use crate::records::screening::Hit;
use crate::records::supply::SupplyAttestation;
use crate::store::ledger::Settings;
use chrono::NaiveDate;
use std::rc::Rc;

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
    /// The latest US-supply attestation of `chip` for the period of `date`
    /// attested on or before `date` (SPEC §3.10).
    fn supply_on(&mut self, chip: &str, date: NaiveDate) -> Result<Option<Rc<SupplyAttestation>>>;
    /// The screening hits of the customer's name on `date` in the snapshot
    /// in force then, with whether each is cleared (SPEC §3.11).
    fn screening_hits(&mut self, customer_id: &str, date: NaiveDate) -> Result<Rc<[Hit]>>;
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

impl<'a> Shipment<'a> {
    /// A recorded or imported sale as a shipment on its own date.
    pub fn of_sale(row: &'a crate::records::sales::SaleRow) -> Shipment<'a> {
        Shipment {
            date: row.sale_date,
            chip: &row.chip,
            market: &row.market,
            customer_id: row.customer_id.as_deref(),
            lot_id: row.lot_id.as_deref(),
            units: row.units,
            order_ref: row.order_ref.as_deref(),
        }
    }
}

/// Whether the shipment is a sale (draws holds) or a request for a hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// A sale being recorded: draws down a matching active hold.
    Sale,
    /// A `check` or `reserve`: one active hold per order (rule `order`).
    Hold,
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

/// A rule's refusal: the rule and why, in words a compliance officer can act on.
pub type Refusal = (Rule, String);

/// The `accepted_rules` a row refused by `refusals` is recorded with:
/// the distinct rule names, sorted, joined by `,`; `None` for no refusal.
/// The import writes it and `verify`'s replay expects it.
pub fn accepted_rules_text(refusals: &[Refusal]) -> Option<String> {
    let mut names: Vec<&str> = refusals.iter().map(|(rule, _)| rule.name()).collect();
    names.sort_unstable();
    names.dedup();
    (!names.is_empty()).then(|| names.join(","))
}

/// The active hold a sale draws from, and the units it draws.
pub type Draw = (ActiveHold, i64);

/// Judges a restricted-market shipment: every rule a restricted sale on
/// its date would face (SPEC §3.1–3.4, §3.6, §3.8, §3.10, §3.11), each one function
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
    refusals.extend(rule_screening(facts, shipment)?);
    refusals.extend(rule_supply(facts, shipment, version)?);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::money::Ratio;
    use crate::period::{parse_date, PeriodKind};
    use crate::records::policy::{Cap, CapWindow, PolicyVersion};

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
            us_supply_attestation_required: false,
            end_use_certificate_required: false,
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
