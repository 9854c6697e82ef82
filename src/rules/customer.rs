//! Rule `customer` (SPEC §3.2): an approved customer in the restricted
//! group, whose KYC review has not lapsed and, where the policy asks, who
//! certified no military end use.

use super::{Facts, Refusal, Shipment};
use crate::error::{Result, Rule};
use crate::period::format_date;
use crate::records::customers::{CustomerEvent, CustomerStatus};
use crate::records::policy::PolicyVersion;
use chrono::NaiveDate;

/// Whether the KYC review of the customer's `event` has lapsed on `date`
/// (SPEC §3.2: on and after `kyc_expires_on`, until a newer approval).
/// The rule, `screening check` and the customers listing all ask this.
pub fn kyc_lapsed_on(event: &CustomerEvent, date: NaiveDate) -> bool {
    event.kyc_expires_on.is_some_and(|lapse| lapse <= date)
}

/// Rule `customer` (SPEC §3.2): where the policy requires approval, a
/// named customer approved on the date (its KYC review not lapsed), in the
/// restricted group, with a no-military-end-use certificate where the
/// policy requires one.
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
        Some(event)
            if event
                .kyc_expires_on
                .is_some_and(|lapse| lapse <= shipment.date) =>
        {
            format!(
                "customer {customer_id} is not approved on {day}: its KYC review expired on {} \
                 (approved {}; a renewed approval is a new event)",
                format_date(event.kyc_expires_on.unwrap_or(shipment.date)),
                format_date(event.effective_date)
            )
        }
        Some(event) => {
            let restricted = &facts.settings().restricted_markets;
            if !restricted.contains(&event.country) {
                format!(
                    "customer {customer_id} is approved in {}, which is not in the restricted group ({})",
                    event.country,
                    restricted.join(",")
                )
            } else if version.is_some_and(|v| v.end_use_certificate_required)
                && event.end_use_certificate.is_none()
            {
                format!(
                    "customer {customer_id} has no no-military-end-use certificate on its approval of {} \
                     ({} requires one from {})",
                    format_date(event.effective_date),
                    shipment.chip,
                    version.map_or(day.clone(), |v| format_date(v.effective_from))
                )
            } else {
                return Ok(None);
            }
        }
    };
    Ok(Some((Rule::Customer, why)))
}
