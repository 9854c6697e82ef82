//! Rule `supply` (SPEC §3.10): US supply comes first.

use super::{Facts, Refusal, Shipment};
use crate::error::{Result, Rule};
use crate::period::{format_date, Period};
use crate::records::policy::PolicyVersion;

/// Rule `supply` (SPEC §3.10): where the policy in force requires it, the
/// latest attestation of the chip for the period of the shipment's date,
/// attested on or before that date, exists and is sufficient (US
/// inventory at least the open US orders).
pub fn rule_supply(
    facts: &mut dyn Facts,
    shipment: &Shipment<'_>,
    version: Option<&PolicyVersion>,
) -> Result<Option<Refusal>> {
    if !version.is_some_and(|v| v.us_supply_attestation_required) {
        return Ok(None);
    }
    let period = Period::of(facts.settings().period_kind, shipment.date);
    let day = format_date(shipment.date);
    let why = match facts.supply_on(shipment.chip, shipment.date)? {
        None => format!(
            "no US-supply attestation of {} for {period} is dated on or before {day} \
             (US supply must be attested before restricted shipments)",
            shipment.chip
        ),
        Some(attestation) if !attestation.sufficient() => format!(
            "the US-supply attestation of {} for {period} of {} is insufficient: \
             US inventory {} units is below open US orders {} units",
            shipment.chip,
            format_date(attestation.attested_on),
            attestation.us_inventory_units,
            attestation.us_open_orders_units
        ),
        Some(_) => return Ok(None),
    };
    Ok(Some((Rule::Supply, why)))
}
