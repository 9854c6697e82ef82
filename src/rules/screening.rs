//! Rule `screening` (SPEC §3.11): no party on a restricted-party list.

use super::{Facts, Refusal, Shipment};
use crate::error::{Result, Rule};
use crate::period::format_date;

/// Rule `screening` (SPEC §3.11): a shipment naming a customer whose name
/// on its date is a hit in the snapshot in force then is refused, whatever
/// the policy flags, unless a clearance for that customer and that entry
/// is recorded. Potential matches are never refused.
pub fn rule_screening(facts: &mut dyn Facts, shipment: &Shipment<'_>) -> Result<Option<Refusal>> {
    let Some(customer_id) = shipment.customer_id else {
        return Ok(None);
    };
    let hits = facts.screening_hits(customer_id, shipment.date)?;
    let Some(hit) = hits.iter().find(|hit| !hit.cleared) else {
        return Ok(None);
    };
    Ok(Some((
        Rule::Screening,
        format!(
            "customer {customer_id} matches {} entry {} ('{}') on {}; \
             a compliance officer may clear a false positive with `qledger screening clear`",
            hit.list,
            hit.entry_id,
            hit.listed_name,
            format_date(shipment.date)
        ),
    )))
}
