//! Rule `customer` (SPEC §3.2): an approved customer in the restricted group.

use super::{Facts, Refusal, Shipment};
use crate::error::{Result, Rule};
use crate::period::format_date;
use crate::records::customers::CustomerStatus;
use crate::records::policy::PolicyVersion;

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
