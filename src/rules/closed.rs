//! Rule `closed` (SPEC §3.8): nothing may be dated in a closed period.

use super::{Facts, Refusal, Shipment};
use crate::error::{Result, Rule};
use crate::period::Period;

/// Rule `closed` (SPEC §3.8): nothing may be dated in a closed period.
pub fn rule_closed(facts: &mut dyn Facts, shipment: &Shipment<'_>) -> Result<Option<Refusal>> {
    let period = Period::of(facts.settings().period_kind, shipment.date);
    Ok(facts
        .is_closed(period)?
        .then(|| (Rule::Closed, format!("period {period} is closed"))))
}
