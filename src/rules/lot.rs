//! Rule `lot` (SPEC §3.3): a lab-cleared lot of the same chip, within its capacity.

use super::{Draw, Facts, Refusal, Shipment};
use crate::error::{Result, Rule};
use crate::period::format_date;
use crate::records::policy::PolicyVersion;

/// A lot's commitments: net shipped and still held.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LotCommitted {
    /// Restricted sales naming the lot, net of returns.
    pub shipped_net: i64,
    /// Remaining units of active holds naming the lot.
    pub held: i64,
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
