//! Returns (SPEC §3.4–3.5): rule `return` (a return matches its sale) and
//! everything else a return faces: its period's close and, for a US
//! return, the cap on what was shipped.

use super::{Facts, Refusal};
use crate::error::{Result, Rule};
use crate::money::Usd;
use crate::period::{format_date, Period};
use crate::records::sales::{SaleKind, SaleRow};
use crate::store::ledger::{MarketGroup, Settings};
use chrono::NaiveDate;

/// Rule `return` (SPEC §3.5): a return against the sale it names, given
/// the units of that sale already returned. (Closed periods and the US
/// return cap are `judge_return`'s.)
pub fn rule_return(row: &SaleRow, sale: Option<&SaleRow>, returned: i64) -> Vec<Refusal> {
    let Some(reverses) = row.reverses.as_deref() else {
        return vec![(Rule::Return, "names no sale in reverses".to_string())];
    };
    let Some(sale) = sale.filter(|sale| sale.kind == SaleKind::Sale) else {
        return vec![(
            Rule::Return,
            format!("reverses {reverses}, which is not a recorded sale"),
        )];
    };
    let mut refusals = Vec::new();
    let show = |value: &Option<String>| value.clone().unwrap_or_else(|| "(none)".to_string());
    let mut differs = |what: &str, ours: String, theirs: String| {
        refusals.push((
            Rule::Return,
            format!("{what} {ours} differs from sale {reverses}'s {theirs}"),
        ));
    };
    if row.chip != sale.chip {
        differs("chip", row.chip.clone(), sale.chip.clone());
    }
    if row.market != sale.market {
        differs("market", row.market.clone(), sale.market.clone());
    }
    if row.customer_id != sale.customer_id {
        differs("customer", show(&row.customer_id), show(&sale.customer_id));
    }
    if let Some(price) = row.unit_price {
        if Some(price) != sale.unit_price {
            differs(
                "unit price",
                price.to_string(),
                sale.unit_price.unwrap_or(Usd::ZERO).to_string(),
            );
        }
    }
    if row.lot_id.is_some() && row.lot_id != sale.lot_id {
        differs("lot", show(&row.lot_id), show(&sale.lot_id));
    }
    if row.sale_date < sale.sale_date {
        refusals.push((
            Rule::Return,
            format!(
                "is dated {}, before sale {reverses} ({})",
                format_date(row.sale_date),
                format_date(sale.sale_date)
            ),
        ));
    }
    if returned + row.units > sale.units {
        refusals.push((
            Rule::Return,
            format!(
                "would return {} units of sale {reverses}, which sold {} ({returned} already returned)",
                row.units, sale.units
            ),
        ));
    }
    refusals
}

/// Every refusal of a return: against its sale, its period's close
/// (unless it is a late entry), and for a US return the cap (SPEC
/// §3.4–3.5). Both import paths and `verify`'s replay call this.
pub fn judge_return(
    facts: &mut dyn Facts,
    settings: &Settings,
    row: &SaleRow,
    sale: Option<&SaleRow>,
    returned: i64,
    late: bool,
) -> Result<Vec<Refusal>> {
    let mut refusals = rule_return(row, sale, returned);
    if let Some(closed) = closed_refusal(facts, settings, row.sale_date)? {
        if !late {
            refusals.push(closed);
        }
    }
    if refusals.is_empty() && settings.market_group(&row.market) == MarketGroup::Us {
        if let Some(message) =
            super::rule_cap_on_us_return(facts, &row.chip, row.sale_date, row.units)?
        {
            refusals.push((Rule::Cap, message));
        }
    }
    Ok(refusals)
}

/// The `closed` refusal of a row dated `date` in a closed period (SPEC
/// §3.8), as the import states it.
pub fn closed_refusal(
    facts: &mut dyn Facts,
    settings: &Settings,
    date: NaiveDate,
) -> Result<Option<Refusal>> {
    let period = Period::of(settings.period_kind, date);
    Ok(facts
        .is_closed(period)?
        .then(|| (Rule::Closed, format!("period {period} is closed"))))
}
