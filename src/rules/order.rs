//! Holds (SPEC §3.6): which hold is active, what it still holds, and
//! rule `order` (one active hold per order; a sale draws its order's hold).

use super::{Draw, Facts, Purpose, Refusal, Shipment};
use crate::error::{Result, Rule};
use crate::period::{format_date, Period};
use chrono::NaiveDate;

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

/// Whether `shipment` asks again for exactly `hold` (SPEC §3.6): the same
/// order, chip, market, units, planned date, customer and lot, with nothing
/// drawn yet. Such a `reserve` is a retry (say after a timeout): it appends
/// nothing and answers as the first one did.
pub fn is_retry_of(hold: &ActiveHold, shipment: &Shipment<'_>) -> bool {
    hold.drawn == 0
        && shipment.order_ref == Some(hold.order_ref.as_str())
        && shipment.chip == hold.chip
        && shipment.market == hold.market
        && shipment.units == hold.units
        && shipment.date == hold.planned_date
        && shipment.customer_id == hold.customer_id.as_deref()
        && shipment.lot_id == hold.lot_id.as_deref()
}

impl ActiveHold {
    /// Units still held.
    pub fn remaining(&self) -> i64 {
        self.units - self.drawn
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
