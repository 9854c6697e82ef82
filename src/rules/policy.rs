//! Rule `policy` (SPEC §3.1): the version in force, and whether it
//! allows restricted sales.

use super::cap::Window;
use super::{Refusal, Shipment};
use crate::error::Rule;
use crate::period::{format_date, Period, PeriodKind};
use crate::records::policy::Cap;
use crate::records::policy::{CapWindow, PolicyVersion};
use chrono::NaiveDate;

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

    /// The remittance rate in force on `date` (SPEC §3.7): that of the
    /// version in force, or 0 with none (a recorded violation).
    pub fn rate_on(&self, date: NaiveDate) -> crate::money::Ratio {
        self.in_force(date)
            .map_or_else(crate::money::Ratio::zero, |v| v.remittance_rate)
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
