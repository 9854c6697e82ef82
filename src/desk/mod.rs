//! The order desk (SPEC §3.6, §5): `check`, `reserve`, `release`.
//!
//! `check` reads; `reserve` runs the same judgement inside the write
//! transaction (`BEGIN IMMEDIATE`) that appends the hold, so two reservers,
//! or a reserver and an import, can never both take the last headroom or the
//! last lot units.

use crate::error::{Error, Result, Rule};
use crate::period::{format_date, Period};
use crate::records::policy::KnownChips;
use crate::rules::facts::{closed_periods, LedgerFacts};
use crate::rules::{self, ActiveHold, CapFigures, Facts, Purpose, Shipment};
use crate::store::entry::{HOLD, HOLD_RELEASE};
use crate::store::ledger::{Ledger, MarketGroup};
use chrono::{Datelike, Duration, NaiveDate};
use rusqlite::types::Value;
use rusqlite::OptionalExtension;

/// Default lifetime of a hold, in days (SPEC §3.6).
pub const TTL_DAYS_DEFAULT: i64 = 14;
/// Longest lifetime of a hold, in days (a limit on everything).
pub const TTL_DAYS_MAX: i64 = 3660;

/// A planned restricted shipment or a what-if for any market.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Chip, upper-case.
    pub chip: String,
    /// Market, upper-case.
    pub market: String,
    /// Units.
    pub units: i64,
    /// Planned shipment date.
    pub date: NaiveDate,
    /// Customer, if named.
    pub customer_id: Option<String>,
    /// Lot, if named.
    pub lot_id: Option<String>,
}

/// The answer to `check` or `reserve` (SPEC §5 JSON).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// Every rule passed.
    pub allowed: bool,
    /// The request.
    pub request: Request,
    /// The period of the planned date.
    pub period: Period,
    /// The cap window's figures before this request.
    pub figures: CapFigures,
    /// Every failed rule.
    pub reasons: Vec<(Rule, String)>,
    /// For an allowed `reserve`: the order and the first day the hold is no longer active.
    pub hold: Option<(String, NaiveDate)>,
    /// For `reserve` only: whether this was a retry of the order's active
    /// hold (nothing appended). `None` for `check`.
    pub already_held: Option<bool>,
}

impl Answer {
    /// The SPEC §5 JSON object.
    pub fn to_json(&self) -> serde_json::Value {
        let mut object = serde_json::json!({
            "allowed": self.allowed,
            "chip": self.request.chip,
            "market": self.request.market,
            "period": self.period.to_string(),
            "units": self.request.units,
            "us_units": self.figures.units.us_net,
            "restricted_units": self.figures.units.restricted_net,
            "reserved_units": self.figures.units.held,
            "cap_ratio": self.figures.cap.map(|cap| cap.cap_ratio.to_string()),
            "limit": self.figures.limit,
            "headroom": self.figures.headroom(),
            "reasons": self.reasons.iter().map(|(rule, message)| serde_json::json!({
                "rule": rule.name(),
                "message": message,
            })).collect::<Vec<_>>(),
        });
        if let Some((order_ref, expires_on)) = &self.hold {
            object["order_ref"] = serde_json::json!(order_ref);
            object["expires_on"] = serde_json::json!(format_date(*expires_on));
        }
        if let Some(already_held) = self.already_held {
            object["already_held"] = serde_json::json!(already_held);
        }
        object
    }

    /// Human lines: the verdict, the figures, every reason.
    pub fn to_text(&self) -> String {
        let figures = &self.figures;
        let mut text = format!(
            "{}: {} units of {} to {} on {} ({})\n",
            if self.allowed { "ALLOWED" } else { "REFUSED" },
            self.request.units,
            self.request.chip,
            self.request.market,
            format_date(self.request.date),
            self.period
        );
        text.push_str(&format!(
            "window {}..{}: US {} units, restricted {} shipped, {} reserved",
            format_date(figures.window.start),
            format_date(figures.window.end),
            figures.units.us_net,
            figures.units.restricted_net,
            figures.units.held
        ));
        match (figures.cap, figures.limit, figures.headroom()) {
            (Some(cap), Some(limit), Some(headroom)) => text.push_str(&format!(
                "; cap {} -> limit {limit}, headroom {headroom}\n",
                cap.cap_ratio
            )),
            _ => text.push_str("; no cap in force\n"),
        }
        if let Some((order_ref, expires_on)) = &self.hold {
            let already = if self.already_held == Some(true) {
                "already "
            } else {
                ""
            };
            text.push_str(&format!(
                "{already}held for order {order_ref} until {} (expires on that day)\n",
                format_date(*expires_on)
            ));
        }
        for (rule, message) in &self.reasons {
            text.push_str(&format!("  {rule}: {message}\n"));
        }
        text
    }
}

fn judge(
    facts: &mut LedgerFacts<'_>,
    request: &Request,
    order_ref: Option<&str>,
) -> Result<Answer> {
    let kind = facts.settings().period_kind;
    let period = Period::of(kind, request.date);
    // SPEC §9: a check or reserve of a chip no policy names is bad input.
    KnownChips::check_one(facts.conn(), &request.chip)?
        .map_err(|why| Error::BadInput(format!("--chip: {why}")))?;
    if facts.settings().market_group(&request.market) != MarketGroup::Restricted {
        // US and other markets are always allowed; report the figures.
        return Ok(Answer {
            allowed: true,
            request: request.clone(),
            period,
            figures: rules::figures_on(facts, &request.chip, request.date)?,
            reasons: Vec::new(),
            hold: None,
            already_held: None,
        });
    }
    let shipment = shipment_of(request, order_ref);
    let verdict = rules::judge_restricted(facts, &shipment, Purpose::Hold)?;
    Ok(Answer {
        allowed: verdict.refusals.is_empty(),
        request: request.clone(),
        period,
        figures: verdict.figures,
        reasons: verdict.refusals,
        hold: None,
        already_held: None,
    })
}

fn shipment_of<'a>(request: &'a Request, order_ref: Option<&'a str>) -> Shipment<'a> {
    Shipment {
        date: request.date,
        chip: &request.chip,
        market: &request.market,
        customer_id: request.customer_id.as_deref(),
        lot_id: request.lot_id.as_deref(),
        units: request.units,
        order_ref,
    }
}

/// The answer to a retried `reserve` (`rules::is_retry_of`): allowed, the
/// hold's order and expiry, the window's current figures (which count the
/// hold already), nothing appended.
fn retry_answer(
    facts: &mut LedgerFacts<'_>,
    request: &Request,
    order_ref: &str,
) -> Result<Option<Answer>> {
    let Some(hold) = facts.active_hold(order_ref)? else {
        return Ok(None);
    };
    if !rules::is_retry_of(&hold, &shipment_of(request, Some(order_ref))) {
        return Ok(None);
    }
    Ok(Some(Answer {
        allowed: true,
        request: request.clone(),
        period: Period::of(facts.settings().period_kind, request.date),
        figures: rules::figures_on(facts, &request.chip, request.date)?,
        reasons: Vec::new(),
        hold: Some((order_ref.to_string(), hold.expires_on)),
        already_held: Some(true),
    }))
}

/// `qledger check`: never writes.
pub fn check(ledger: &Ledger, request: &Request, as_of: NaiveDate) -> Result<Answer> {
    let conn = ledger.conn();
    conn.execute_batch("BEGIN DEFERRED")?;
    let answer = LedgerFacts::new(conn, ledger.settings().clone(), as_of)
        .and_then(|mut facts| judge(&mut facts, request, None));
    conn.execute_batch("COMMIT")?;
    answer
}

/// A long-lived order-desk handle (for a service answering many checks):
/// it keeps what it looked up (policies, customers, lots, window figures)
/// until the ledger changes (SQLite's `data_version`) or the clock does.
pub struct Desk {
    ledger: Ledger,
    cached: Option<(i64, NaiveDate, crate::rules::facts::FactsCache)>,
}

impl Desk {
    /// A desk over an open ledger.
    pub fn new(ledger: Ledger) -> Desk {
        Desk {
            ledger,
            cached: None,
        }
    }

    /// The ledger this desk reads.
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// `check`, answered from the cache while nothing was committed since.
    pub fn check(&mut self, request: &Request, as_of: NaiveDate) -> Result<Answer> {
        let conn = self.ledger.conn();
        conn.execute_batch("BEGIN DEFERRED")?;
        let answer = (|| {
            // Take the read snapshot first, then ask which version it is.
            conn.prepare_cached("SELECT seq FROM ledger_settings LIMIT 1")?
                .query_row([], |row| row.get::<_, i64>(0))?;
            let version: i64 = conn.query_row("PRAGMA data_version", [], |row| row.get(0))?;
            let cache = match self.cached.take() {
                Some((cached_version, cached_as_of, cache))
                    if cached_version == version && cached_as_of == as_of =>
                {
                    cache
                }
                _ => crate::rules::facts::FactsCache::default(),
            };
            let mut facts =
                LedgerFacts::with_cache(conn, self.ledger.settings().clone(), as_of, cache)?;
            let answer = judge(&mut facts, request, None)?;
            self.cached = Some((version, as_of, facts.into_cache()));
            Ok(answer)
        })();
        conn.execute_batch("COMMIT")?;
        answer
    }
}

/// `qledger reserve`: the checks of `check` and, if all pass, a hold of
/// `request.units` for `order_ref` until `as_of + ttl_days`, in one write
/// transaction.
pub fn reserve(
    ledger: &mut Ledger,
    order_ref: &str,
    request: &Request,
    ttl_days: i64,
    as_of: NaiveDate,
) -> Result<Answer> {
    let expires_on = hold_expiry(ledger.settings(), request, ttl_days, as_of)?;
    let settings = ledger.settings().clone();
    ledger.write(as_of, |appender| {
        let mut facts = LedgerFacts::new(appender.conn(), settings.clone(), as_of)?;
        crate::trace::phase("reserve", "facts");
        if let Some(answer) = retry_answer(&mut facts, request, order_ref)? {
            return Ok((answer, false));
        }
        let mut answer = judge(&mut facts, request, Some(order_ref))?;
        answer.already_held = Some(false);
        crate::trace::phase("reserve", "judge");
        if !answer.allowed {
            return Ok((answer, false));
        }
        let text = |s: &str| Value::Text(s.to_string());
        let optional = |s: &Option<String>| s.as_deref().map_or(Value::Null, text);
        appender.append(
            &HOLD,
            &[
                text(order_ref),
                text(&request.chip),
                text(&request.market),
                optional(&request.customer_id),
                optional(&request.lot_id),
                Value::Integer(request.units),
                Value::Text(format_date(request.date)),
                Value::Text(format_date(as_of)),
                Value::Text(format_date(expires_on)),
            ],
        )?;
        crate::trace::phase("reserve", "append");
        crate::rules::facts::add_held_units(
            appender.conn(),
            &request.chip,
            request.date,
            expires_on,
            request.lot_id.as_deref(),
            request.units,
        )?;
        answer.hold = Some((order_ref.to_string(), expires_on));
        Ok((answer, true))
    })
}

/// When a hold of `request` reserved on `as_of` would expire; bad input
/// for a market that is not restricted, a planned date before the as-of
/// date, or a TTL out of range (SPEC §5).
fn hold_expiry(
    settings: &crate::store::ledger::Settings,
    request: &Request,
    ttl_days: i64,
    as_of: NaiveDate,
) -> Result<NaiveDate> {
    if settings.market_group(&request.market) != MarketGroup::Restricted {
        return Err(Error::BadInput(format!(
            "--market {}: reserve is for restricted markets ({}) only",
            request.market,
            settings.restricted_markets.join(",")
        )));
    }
    if request.date < as_of {
        return Err(Error::BadInput(format!(
            "--date {} is before the as-of date {}: a hold is for a planned shipment",
            format_date(request.date),
            format_date(as_of)
        )));
    }
    if !(1..=TTL_DAYS_MAX).contains(&ttl_days) {
        return Err(Error::BadInput(format!(
            "--ttl-days {ttl_days}: a hold lasts from 1 to {TTL_DAYS_MAX} days"
        )));
    }
    as_of
        .checked_add_signed(Duration::days(ttl_days))
        .filter(|date| date.year() <= 9999)
        .ok_or_else(|| {
            Error::BadInput(format!(
                "--ttl-days {ttl_days}: the hold would expire after 9999-12-31"
            ))
        })
}

/// What `release` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Released {
    /// The order.
    pub order_ref: String,
    /// Units the release freed (0 when the hold had already ended).
    pub released_units: i64,
    /// The hold had already ended (released, expired, drawn, or its period closed).
    pub already_ended: bool,
}

/// `qledger release`: ends the active hold of `order_ref` early.
pub fn release(ledger: &mut Ledger, order_ref: &str, as_of: NaiveDate) -> Result<Released> {
    let settings = ledger.settings().clone();
    ledger.write(as_of, |appender| {
        let conn = appender.conn();
        let ever: Option<i64> = conn
            .prepare_cached("SELECT seq FROM hold WHERE order_ref = ?1 LIMIT 1")?
            .query_row([order_ref], |row| row.get(0))
            .optional()?;
        if ever.is_none() {
            return Err(Error::BadInput(format!(
                "order {order_ref} was never reserved; nothing to release"
            )));
        }
        let closed = closed_periods(conn, &settings)?;
        let active: Option<ActiveHold> =
            crate::rules::facts::active_hold_of_order(conn, &settings, &closed, as_of, order_ref)?;
        let Some(hold) = active else {
            return Ok((
                Released {
                    order_ref: order_ref.to_string(),
                    released_units: 0,
                    already_ended: true,
                },
                false,
            ));
        };
        appender.append(
            &HOLD_RELEASE,
            &[
                Value::Integer(hold.seq),
                Value::Text(order_ref.to_string()),
                Value::Integer(hold.remaining()),
                Value::Text(format_date(as_of)),
            ],
        )?;
        crate::trace::phase("release", "append");
        crate::rules::facts::add_held_units(
            appender.conn(),
            &hold.chip,
            hold.planned_date,
            hold.expires_on,
            hold.lot_id.as_deref(),
            -hold.remaining(),
        )?;
        Ok((
            Released {
                order_ref: order_ref.to_string(),
                released_units: hold.remaining(),
                already_ended: false,
            },
            true,
        ))
    })
}
