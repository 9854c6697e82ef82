//! The cap (SPEC §3.4): windows, the limit, the figures of a window,
//! a chip's status, and rule `cap` for restricted rows and US returns.

use super::{Facts, Refusal, Shipment};
use crate::error::{Result, Rule};
use crate::money::Ratio;
use crate::period::{format_date, Period};
use crate::records::policy::{Cap, PolicyVersion};
use chrono::NaiveDate;

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
pub fn rule_cap_on_us_return(
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
