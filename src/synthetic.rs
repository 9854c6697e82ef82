//! Realistic, compliant synthetic data for tests and benchmarks: a policy,
//! approved customers, cleared lots, and nightly sales files (about 70% US,
//! restricted rows within the cap naming approved customers and cleared
//! lots, a few returns). Deterministic for a seed.

use chrono::{Duration, NaiveDate};
use std::io::{self, Write};

/// SplitMix64: a tiny deterministic generator (statistical quality is
/// plenty for test data; nothing here is security-relevant).
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator from a seed.
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..bound` (bound > 0).
    pub fn below(&mut self, bound: u64) -> u64 {
        self.next_u64() % bound
    }
}

/// Number of synthetic customers and lots per restricted chip.
pub const CUSTOMERS: usize = 50;
/// Lots per capped chip.
pub const LOTS_PER_CHIP: usize = 100;

/// The synthetic world's policy file.
pub fn policy_csv() -> String {
    "chip,effective_from,restricted_allowed,cap_ratio,cap_window,remittance_rate,lab_test_required,customer_approval_required,source\n\
     H200,2025-01-01,true,0.5,period,0.25,true,true,synthetic H200 rule\n\
     H20,2025-01-01,true,,,0.15,false,true,synthetic H20 rule\n\
     MI325X,2025-01-01,true,0.5,period,0.25,true,true,synthetic MI325X rule\n"
        .to_string()
}

/// The synthetic world's customers (all approved, in CN, HK and MO).
pub fn customers_csv() -> String {
    let mut text = "customer_id,name,country,status,effective_date,reference\n".to_string();
    for index in 0..CUSTOMERS {
        let country = ["CN", "HK", "MO"][index % 3];
        text.push_str(&format!(
            "CUST-{index:03},Synthetic Customer {index},{country},approved,2025-01-01,LIC-{index:05}\n"
        ));
    }
    text
}

/// The synthetic world's policy with every licence rule of Jan 2026 on for
/// the capped chips: US-supply attestations and end-use certificates.
pub fn licensed_policy_csv() -> String {
    "chip,effective_from,restricted_allowed,cap_ratio,cap_window,remittance_rate,lab_test_required,customer_approval_required,source,us_supply_attestation_required,end_use_certificate_required\n\
     H200,2025-01-01,true,0.5,period,0.25,true,true,synthetic H200 rule,true,true\n\
     H20,2025-01-01,true,,,0.15,false,true,synthetic H20 rule,false,false\n\
     MI325X,2025-01-01,true,0.5,period,0.25,true,true,synthetic MI325X rule,true,true\n"
        .to_string()
}

/// `customers_csv` with a KYC expiry no test reaches and an end-use
/// certificate on every approval.
pub fn licensed_customers_csv() -> String {
    let mut text = "customer_id,name,country,status,effective_date,reference,kyc_expires_on,end_use_certificate\n".to_string();
    for index in 0..CUSTOMERS {
        let country = ["CN", "HK", "MO"][index % 3];
        text.push_str(&format!(
            "CUST-{index:03},Synthetic Customer {index},{country},approved,2025-01-01,LIC-{index:05},2030-01-01,EUC-{index:05}\n"
        ));
    }
    text
}

/// Sufficient US-supply attestations of the capped chips for every quarter
/// of 2025 and 2026, attested on 2025-01-01.
pub fn supply_csv() -> String {
    let mut text =
        "chip,period,us_inventory_units,us_open_orders_units,attested_on,attested_by,reference\n"
            .to_string();
    for chip in ["H200", "MI325X"] {
        for year in [2025, 2026] {
            for quarter in 1..=4 {
                text.push_str(&format!(
                    "{chip},{year}-Q{quarter},1000000000,1,2025-01-01,Synthetic Officer,SUP-{year}-{quarter}\n"
                ));
            }
        }
    }
    text
}

/// A word of the synthetic name vocabulary: two or three syllables.
fn synthetic_word(random: &mut SplitMix64) -> String {
    const SYLLABLES: [&str; 24] = [
        "an", "bel", "cor", "dra", "en", "fal", "gor", "hel", "ix", "jun", "kor", "lum", "mar",
        "nor", "or", "pax", "quin", "ros", "sol", "tar", "ul", "vex", "wen", "zy",
    ];
    let count = 2 + random.below(2);
    (0..count)
        .map(|_| SYLLABLES[random.below(SYLLABLES.len() as u64) as usize])
        .collect()
}

/// A synthetic restricted-party list of `entries` rows (2–4 words per
/// name, a legal form on some, an alt name on a third), in the import
/// shape, and `customers` approved customers (KYC and certificate set) to
/// screen against it: one in a hundred bears a listed name (a hit), one in
/// a hundred its first two words (a potential match), the rest random
/// names. Returns (list CSV, customers CSV).
pub fn screening_world(entries: usize, customers: usize, seed: u64) -> (String, String) {
    let mut random = SplitMix64::new(seed);
    let mut list = "list,entry_id,name,alt_names,country\n".to_string();
    let mut names: Vec<Vec<String>> = Vec::with_capacity(entries);
    for index in 0..entries {
        let words = 2 + random.below(3);
        let name: Vec<String> = (0..words).map(|_| synthetic_word(&mut random)).collect();
        let suffix = ["", " Co., Ltd.", " Limited", " Holdings"][random.below(4) as usize];
        let alt = if index % 3 == 0 {
            format!("{} Trading", name[0])
        } else {
            String::new()
        };
        list.push_str(&format!(
            "Entity List,EL-{index:06},\"{}{suffix}\",{alt},CN\n",
            name.join(" ")
        ));
        names.push(name);
    }
    let mut people = "customer_id,name,country,status,effective_date,reference,kyc_expires_on,end_use_certificate\n".to_string();
    for index in 0..customers {
        let listed = &names[index % entries.max(1)];
        let name = match index % 100 {
            0 => listed.join(" "),
            1 => listed[..2].join(" "),
            _ => {
                let words = 2 + random.below(2);
                let name: Vec<String> = (0..words).map(|_| synthetic_word(&mut random)).collect();
                name.join(" ")
            }
        };
        people.push_str(&format!(
            "MC-{index:06},{name} Ltd.,CN,approved,2025-01-01,,2030-01-01,EUC-{index:06}\n"
        ));
    }
    (list, people)
}

/// The synthetic world's lots (all passed, with a capacity no test reaches).
pub fn lots_csv() -> String {
    let mut text = "lot_id,chip,units,lab,certificate_id,result,effective_date\n".to_string();
    for chip in ["H200", "MI325X"] {
        for index in 0..LOTS_PER_CHIP {
            text.push_str(&format!(
                "LOT-{chip}-{index:03},{chip},1000000000,Synthetic Test Lab,CERT-{chip}-{index:03},pass,2025-01-01\n"
            ));
        }
    }
    text
}

/// What sales file to write.
#[derive(Debug, Clone)]
pub struct SalesSpec {
    /// Data rows.
    pub rows: u64,
    /// Random seed.
    pub seed: u64,
    /// Record ids are `{prefix}{n:09}`, so files with other prefixes never collide.
    pub record_prefix: String,
    /// First sale date.
    pub first_day: NaiveDate,
    /// Dates spread over this many days (within one quarter keeps caps simple).
    pub days: u32,
    /// Dates in random order instead of ascending.
    pub shuffle_dates: bool,
}

/// The sales header.
pub const SALES_HEADER: &str =
    "record_id,sale_date,chip,market,customer_id,units,unit_price_usd,lot_id,order_ref,kind,reverses\n";

/// A synthetic sale's market, customer and lot, by `roll` (of 1000): 70%
/// US, 0.5% other markets, the rest restricted with a customer and (but
/// for the H20) a lot.
fn sale_party(random: &mut SplitMix64, roll: u64, chip: &str) -> (&'static str, String, String) {
    if roll < 700 {
        return ("US", String::new(), String::new());
    }
    if roll < 705 {
        let market = ["DE", "JP", "GB"][random.below(3) as usize];
        return (market, String::new(), String::new());
    }
    let customer_index = random.below(CUSTOMERS as u64);
    let market = ["CN", "HK", "MO"][random.below(3) as usize];
    let lot = if chip == "H20" {
        String::new()
    } else {
        format!("LOT-{chip}-{:03}", random.below(LOTS_PER_CHIP as u64))
    };
    (market, format!("CUST-{customer_index:03}"), lot)
}

/// Writes a compliant sales file: ~70% US, ~29.9% restricted (units drawn
/// like the US ones, so restricted stays near 0.43 of US, under the 0.5
/// cap), ~0.1% returns of earlier sales in the file, a few other markets.
pub fn write_sales(spec: &SalesSpec, out: &mut dyn Write) -> io::Result<()> {
    let mut random = SplitMix64::new(spec.seed);
    out.write_all(SALES_HEADER.as_bytes())?;
    // Recent sales a return may reverse: (index, date offset, chip, market, customer, units).
    let mut recent: Vec<(u64, u64, &str, &str, String)> = Vec::new();
    let mut line = String::with_capacity(160);
    for index in 0..spec.rows {
        let offset = if spec.shuffle_dates {
            random.below(spec.days as u64)
        } else {
            index * spec.days as u64 / spec.rows.max(1)
        };
        let date = spec.first_day + Duration::days(offset as i64);
        let roll = random.below(1000);
        line.clear();
        let id = format!("{}{index:09}", spec.record_prefix);
        if roll < 1 && !recent.is_empty() {
            // A return of one unit of a recent sale, dated on or after it.
            let (sale_index, sale_offset, chip, market, customer) =
                recent.swap_remove(random.below(recent.len() as u64) as usize);
            let return_date = spec.first_day + Duration::days(sale_offset.max(offset) as i64);
            line.push_str(&format!(
                "{id},{return_date},{chip},{market},{customer},1,,,,return,{}{sale_index:09}\n",
                spec.record_prefix
            ));
        } else {
            let chip = match random.below(10) {
                0 => "MI325X",
                1 => "H20",
                _ => "H200",
            };
            let units = 1 + random.below(100);
            let cents = random.below(100);
            let base = match chip {
                "H200" => 30_000 + random.below(3_000),
                "MI325X" => 17_000 + random.below(2_000),
                _ => 11_000 + random.below(1_500),
            };
            let (market, customer, lot) = sale_party(&mut random, roll, chip);
            line.push_str(&format!(
                "{id},{date},{chip},{market},{customer},{units},{base}.{cents:02},{lot},,sale,\n"
            ));
            if recent.len() < 64
                && random.below(50) == 0
                && market != "DE"
                && market != "JP"
                && market != "GB"
            {
                recent.push((index, offset, chip, market, customer));
            }
        }
        out.write_all(line.as_bytes())?;
    }
    Ok(())
}

/// Lots of the hard mix: `HARD_LOT_UNITS` units each, per capped chip.
pub const HARD_LOT_UNITS: u64 = 1_000;
/// How many hard-mix lots each capped chip gets (H200, MI325X).
const HARD_LOTS: [(&str, usize); 2] = [("H200", 15_000), ("MI325X", 2_500)];

/// The hard mix's lots: many lots of 1,000 units, all passed.
pub fn hard_mix_lots_csv() -> String {
    let mut text = "lot_id,chip,units,lab,certificate_id,result,effective_date\n".to_string();
    for (chip, count) in HARD_LOTS {
        for index in 0..count {
            text.push_str(&format!(
                "HLOT-{chip}-{index:05},{chip},{HARD_LOT_UNITS},Synthetic Test Lab,HCERT-{chip}-{index:05},pass,2025-01-01\n"
            ));
        }
    }
    text
}

/// Writes the hard mix: about 72% US sales and 28% CN/HK sales of the
/// capped chips (H200, MI325X) naming approved customers and lab-cleared
/// lots of 1,000 units, each lot filled before the next is named, so the
/// import judges thousands of distinct lots near their capacity. Dates
/// ascend over `spec.days` (`shuffle_dates` is ignored).
pub fn write_hard_mix(spec: &SalesSpec, out: &mut dyn Write) -> io::Result<()> {
    let mut random = SplitMix64::new(spec.seed);
    out.write_all(SALES_HEADER.as_bytes())?;
    // Per capped chip: (current lot index, units used in it).
    let mut lots = [(0usize, 0u64); 2];
    for index in 0..spec.rows {
        let offset = index * spec.days as u64 / spec.rows.max(1);
        let date = spec.first_day + Duration::days(offset as i64);
        let id = format!("{}{index:09}", spec.record_prefix);
        let units = 1 + random.below(100);
        let cents = random.below(100);
        let slot = if random.below(9) == 0 { 1 } else { 0 };
        let chip = HARD_LOTS[slot].0;
        let price = if slot == 0 { 30_000 } else { 17_000 } + random.below(2_000);
        let line = if random.below(100) < 72 {
            format!("{id},{date},{chip},US,,{units},{price}.{cents:02},,,sale,\n")
        } else {
            let (lot, used) = &mut lots[slot];
            if *used + units > HARD_LOT_UNITS {
                *lot += 1;
                *used = 0;
            }
            *used += units;
            let market = ["CN", "HK"][random.below(2) as usize];
            let customer = random.below(CUSTOMERS as u64);
            format!(
                "{id},{date},{chip},{market},CUST-{customer:03},{units},{price}.{cents:02},HLOT-{chip}-{:05},,sale,\n",
                *lot
            )
        };
        out.write_all(line.as_bytes())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_shaped() {
        let spec = SalesSpec {
            rows: 5000,
            seed: 7,
            record_prefix: "T".into(),
            first_day: NaiveDate::from_ymd_opt(2026, 1, 5).unwrap(),
            days: 60,
            shuffle_dates: false,
        };
        let mut a = Vec::new();
        let mut b = Vec::new();
        write_sales(&spec, &mut a).unwrap();
        write_sales(&spec, &mut b).unwrap();
        assert_eq!(a, b);
        let text = String::from_utf8(a).unwrap();
        assert_eq!(text.lines().count(), 5001);
        let us = text.lines().filter(|l| l.contains(",US,")).count();
        assert!((3300..3700).contains(&us), "about 70% US: {us}");
        assert!(text.lines().any(|l| l.contains(",return,")));
    }

    #[test]
    fn the_hard_mix_fills_lots_of_1000_units_in_turn() {
        let spec = SalesSpec {
            rows: 20_000,
            seed: 3,
            record_prefix: "H".into(),
            first_day: NaiveDate::from_ymd_opt(2026, 1, 1).unwrap(),
            days: 90,
            shuffle_dates: false,
        };
        let mut bytes = Vec::new();
        write_hard_mix(&spec, &mut bytes).unwrap();
        let text = String::from_utf8(bytes).unwrap();
        let restricted: Vec<&str> = text.lines().filter(|l| l.contains("HLOT-")).collect();
        let share = restricted.len() * 100 / 20_000;
        assert!((25..=31).contains(&share), "about 28% restricted: {share}%");
        let mut per_lot: std::collections::HashMap<&str, u64> = Default::default();
        for line in &restricted {
            let fields: Vec<&str> = line.split(',').collect();
            *per_lot.entry(fields[7]).or_default() += fields[5].parse::<u64>().unwrap();
        }
        assert!(per_lot.len() > 100, "many lots: {}", per_lot.len());
        assert!(per_lot.values().all(|units| *units <= HARD_LOT_UNITS));
    }
}
