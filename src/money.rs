//! Exact money and ratios. No floating point: dollars are integer
//! ten-thousandths (`Usd`), ratios are `rust_decimal` values whose products
//! with money are computed exactly in `i128`.

use rust_decimal::Decimal;
use std::fmt;
use std::str::FromStr;

/// Fractional digits money may carry (SPEC §2).
pub const MONEY_SCALE: u32 = 4;
/// One dollar in ten-thousandths.
pub const USD_E4_PER_USD: i128 = 10_000;
/// The largest unit price accepted, in dollars (SPEC §2).
pub const UNIT_PRICE_MAX_USD: i128 = 1_000_000_000;
/// Fractional digits a ratio may carry once trailing zeros are dropped.
/// A deliberate limit so that every product below fits `i128` exactly.
pub const RATIO_SCALE_MAX: u32 = 18;

/// An exact amount of US dollars, stored as an integer count of 1/10,000 USD.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Usd {
    /// Ten-thousandths of a dollar.
    pub e4: i128,
}

impl Usd {
    /// Zero dollars.
    pub const ZERO: Usd = Usd { e4: 0 };

    /// From a count of ten-thousandths of a dollar.
    pub fn from_e4(e4: i128) -> Usd {
        Usd { e4 }
    }

    /// Parses `^[0-9]+(\.[0-9]{1,4})?$` (no sign, exponent or more than
    /// four decimals), at most `max_usd` dollars.
    pub fn parse(text: &str, max_usd: i128) -> Result<Usd, String> {
        let (whole, frac) = match text.split_once('.') {
            Some((whole, frac)) => (whole, Some(frac)),
            None => (text, None),
        };
        let digits_only = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !digits_only(whole) {
            return Err(format!(
                "'{text}' is not an amount in dollars (digits, optionally '.' and 1 to 4 decimals; no sign or exponent)"
            ));
        }
        if let Some(frac) = frac {
            if !digits_only(frac) {
                return Err(format!(
                    "'{text}' is not an amount in dollars (digits, optionally '.' and 1 to 4 decimals; no sign or exponent)"
                ));
            }
            if frac.len() > MONEY_SCALE as usize {
                return Err(format!("'{text}' has more than 4 decimals"));
            }
        }
        let whole_trimmed = whole.trim_start_matches('0');
        // 13 digits is far beyond any limit here: refuse before parsing so
        // nothing can wrap.
        if whole_trimmed.len() > 13 {
            return Err(format!("'{text}' is more than {max_usd} dollars"));
        }
        let whole_usd: i128 = if whole_trimmed.is_empty() {
            0
        } else {
            whole_trimmed
                .parse()
                .map_err(|_| format!("'{text}' is not a valid amount"))?
        };
        let mut frac_e4: i128 = 0;
        if let Some(frac) = frac {
            let mut padded = frac.to_string();
            while padded.len() < MONEY_SCALE as usize {
                padded.push('0');
            }
            frac_e4 = padded
                .parse()
                .map_err(|_| format!("'{text}' is not a valid amount"))?;
        }
        let e4 = whole_usd * USD_E4_PER_USD + frac_e4;
        if e4 > max_usd * USD_E4_PER_USD {
            return Err(format!("'{text}' is more than {max_usd} dollars"));
        }
        Ok(Usd { e4 })
    }

    /// Checked addition; `None` on overflow.
    pub fn checked_add(self, other: Usd) -> Option<Usd> {
        self.e4.checked_add(other.e4).map(Usd::from_e4)
    }

    /// Checked subtraction; `None` on overflow.
    pub fn checked_sub(self, other: Usd) -> Option<Usd> {
        self.e4.checked_sub(other.e4).map(Usd::from_e4)
    }

    /// `units × self`, exactly; `None` on overflow.
    pub fn checked_mul_units(self, units: i128) -> Option<Usd> {
        self.e4.checked_mul(units).map(Usd::from_e4)
    }

    /// Formats with exactly two decimals. Only for amounts already rounded
    /// to cents; panics in debug builds otherwise (an invariant, not input).
    pub fn to_cents_string(self) -> String {
        debug_assert_eq!(self.e4 % 100, 0, "amount not rounded to cents");
        let cents = self.e4 / 100;
        let sign = if cents < 0 { "-" } else { "" };
        let abs = cents.unsigned_abs();
        format!("{sign}{}.{:02}", abs / 100, abs % 100)
    }
}

impl fmt::Display for Usd {
    /// Exact, without trailing zeros: `1234.5`, `15000000`, `-0.0001`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.e4 < 0 { "-" } else { "" };
        let abs = self.e4.unsigned_abs();
        let whole = abs / USD_E4_PER_USD as u128;
        let frac = abs % USD_E4_PER_USD as u128;
        if frac == 0 {
            write!(f, "{sign}{whole}")
        } else {
            let frac_text = format!("{frac:04}");
            write!(f, "{sign}{whole}.{}", frac_text.trim_end_matches('0'))
        }
    }
}

/// A ratio or rate in [0, 1], exact (`cap_ratio`, `remittance_rate`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ratio(Decimal);

impl Ratio {
    /// Zero (the remittance rate of a row with no policy version in force).
    pub fn zero() -> Ratio {
        Ratio(Decimal::ZERO)
    }

    /// Parses `^[0-9]+(\.[0-9]+)?$` within [0,1]; trailing zeros are
    /// dropped, and at most 18 significant decimals remain.
    pub fn parse(text: &str) -> Result<Ratio, String> {
        let form_ok = {
            let (whole, frac) = match text.split_once('.') {
                Some((whole, frac)) => (whole, Some(frac)),
                None => (text, None),
            };
            let digits_only = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
            digits_only(whole) && frac.is_none_or(digits_only)
        };
        if !form_ok {
            return Err(format!(
                "'{text}' is not a ratio (digits with an optional '.', like 0.5; no sign, exponent or percent)"
            ));
        }
        // Drop leading zeros of the whole part and trailing zeros of the
        // fraction before handing it to Decimal, so long but exact inputs
        // such as 0.500000000000000000000000000000 are accepted.
        let (whole, frac) = match text.split_once('.') {
            Some((whole, frac)) => (whole, frac.trim_end_matches('0')),
            None => (text, ""),
        };
        let whole = whole.trim_start_matches('0');
        if whole.len() > 1 {
            return Err(format!("'{text}' is more than 1"));
        }
        if frac.len() > RATIO_SCALE_MAX as usize {
            return Err(format!(
                "'{text}' has more than {RATIO_SCALE_MAX} significant decimals"
            ));
        }
        let canonical = format!(
            "{}{}{}",
            if whole.is_empty() { "0" } else { whole },
            if frac.is_empty() { "" } else { "." },
            frac
        );
        let value = Decimal::from_str(&canonical)
            .map_err(|err| format!("'{text}' is not a ratio: {err}"))?
            .normalize();
        if value > Decimal::ONE {
            return Err(format!("'{text}' is more than 1"));
        }
        Ok(Ratio(value))
    }

    /// The numerator over `10^scale`.
    pub fn mantissa(self) -> i128 {
        self.0.mantissa()
    }

    /// Decimal places of the numerator.
    pub fn scale(self) -> u32 {
        self.0.scale()
    }

    /// `floor(self × units)` for non-negative `units`, exactly.
    pub fn floor_mul_units(self, units: i64) -> i64 {
        debug_assert!(units >= 0);
        let product = self.mantissa() * units as i128; // <= 1e18 × 9.2e18 fits i128
        let divisor = 10_i128.pow(self.scale());
        (product / divisor) as i64 // product/divisor <= units: fits i64
    }

    /// `amount × self`, rounded half away from zero to cents; `None` on overflow.
    pub fn mul_round_cents(self, amount: Usd) -> Option<Usd> {
        let product = amount.e4.checked_mul(self.mantissa())?;
        // product has scale 4 + s; bring it to scale 2 (cents).
        let divisor = 10_i128.checked_pow(self.scale() + 2)?;
        let cents = div_round_half_away(product, divisor);
        cents.checked_mul(100).map(Usd::from_e4)
    }
}

/// `round_half_away_from_zero(Σ amount × rate, 2)` for (rate, amount)
/// parts, computed exactly at a common scale (SPEC §3.7); `None` if the
/// products exceed 128 bits.
pub fn remittance_cents(parts: &[(Ratio, i128)]) -> Option<Usd> {
    let scale = parts
        .iter()
        .map(|(rate, _)| rate.scale())
        .max()
        .unwrap_or(0);
    let mut total: i128 = 0; // at scale 4 + `scale`
    for (rate, amount_e4) in parts {
        let factor = 10_i128.checked_pow(scale - rate.scale())?;
        let product = amount_e4
            .checked_mul(rate.mantissa())?
            .checked_mul(factor)?;
        total = total.checked_add(product)?;
    }
    let cents = div_round_half_away(total, 10_i128.checked_pow(scale + 2)?);
    cents.checked_mul(100).map(Usd::from_e4)
}

/// Integer division rounding half away from zero (divisor > 0).
pub fn div_round_half_away(numerator: i128, divisor: i128) -> i128 {
    debug_assert!(divisor > 0);
    let quotient = numerator / divisor;
    let remainder = numerator % divisor;
    if remainder.unsigned_abs() * 2 >= divisor.unsigned_abs() {
        quotient + numerator.signum()
    } else {
        quotient
    }
}

impl fmt::Display for Ratio {
    /// Normalised: `0.5`, `1`, `0`, `0.25`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_forms() {
        assert_eq!(Usd::parse("0", 10).unwrap().e4, 0);
        assert_eq!(Usd::parse("12.5", 100).unwrap().e4, 125_000);
        assert_eq!(Usd::parse("0.0001", 1).unwrap().e4, 1);
        assert_eq!(Usd::parse("007.1000", 10).unwrap().e4, 71_000);
        for bad in [
            "", "-1", "+1", "1e3", "1.", ".5", "1.23456", " 1", "1,000", "0x10", "١",
        ] {
            assert!(Usd::parse(bad, 10).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn money_limit_exact_and_one_over() {
        assert!(Usd::parse("1000000000", UNIT_PRICE_MAX_USD).is_ok());
        assert!(Usd::parse("1000000000.0000", UNIT_PRICE_MAX_USD).is_ok());
        assert!(Usd::parse("1000000000.0001", UNIT_PRICE_MAX_USD).is_err());
        assert!(Usd::parse("99999999999999999999999999", UNIT_PRICE_MAX_USD).is_err());
    }

    #[test]
    fn money_display_is_exact() {
        assert_eq!(Usd::from_e4(150_000_000_000).to_string(), "15000000");
        assert_eq!(Usd::from_e4(12_345_000).to_string(), "1234.5");
        assert_eq!(Usd::from_e4(-1).to_string(), "-0.0001");
        assert_eq!(Usd::from_e4(37_500_000_000).to_cents_string(), "3750000.00");
        assert_eq!(Usd::from_e4(-500).to_cents_string(), "-0.05");
    }

    #[test]
    fn ratio_forms() {
        assert_eq!(Ratio::parse("0.50").unwrap().to_string(), "0.5");
        assert_eq!(Ratio::parse("1").unwrap().to_string(), "1");
        assert_eq!(Ratio::parse("1.000").unwrap().to_string(), "1");
        assert_eq!(Ratio::parse("0").unwrap().to_string(), "0");
        assert_eq!(Ratio::zero(), Ratio::parse("0").unwrap());
        assert_eq!(Ratio::zero().to_string(), "0");
        assert_eq!(Ratio::parse("00.25").unwrap().to_string(), "0.25");
        assert!(Ratio::parse("0.500000000000000000000000000000000").is_ok());
        for bad in ["1.0001", "2", "-0.5", ".5", "0.", "50%", "5e-1", "", "10"] {
            assert!(Ratio::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert!(Ratio::parse("0.1234567890123456789").is_err());
    }

    #[test]
    fn cap_limit_floors() {
        let half = Ratio::parse("0.5").unwrap();
        assert_eq!(half.floor_mul_units(1001), 500);
        assert_eq!(half.floor_mul_units(0), 0);
        let third = Ratio::parse("0.333333333333333333").unwrap();
        assert_eq!(third.floor_mul_units(3), 0);
        assert_eq!(Ratio::parse("1").unwrap().floor_mul_units(7), 7);
    }

    #[test]
    fn remittance_sums_exactly_before_rounding_once() {
        let rate = |text: &str| Ratio::parse(text).unwrap();
        // 0.0001 × 0.25 three times: 0.000075 -> 0.00, not 3 × round(0.000025)
        assert_eq!(remittance_cents(&[(rate("0.25"), 3)]).unwrap().e4, 0);
        // 0.02 USD × 0.25 = 0.005 -> 0.01 (half away from zero)
        assert_eq!(remittance_cents(&[(rate("0.25"), 200)]).unwrap().e4, 100);
        assert_eq!(remittance_cents(&[(rate("0.25"), -200)]).unwrap().e4, -100);
        // mixed rates: 100 × 0.25 + 100 × 0.15 = 40
        assert_eq!(
            remittance_cents(&[(rate("0.25"), 1_000_000), (rate("0.15"), 1_000_000)])
                .unwrap()
                .e4,
            400_000
        );
        // different scales: 10 × 0.125 + 10 × 0.2 = 3.25
        assert_eq!(
            remittance_cents(&[(rate("0.125"), 100_000), (rate("0.2"), 100_000)])
                .unwrap()
                .e4,
            32_500
        );
        assert_eq!(remittance_cents(&[]).unwrap().e4, 0);
    }

    #[test]
    fn remittance_rounds_half_away_from_zero() {
        let quarter = Ratio::parse("0.25").unwrap();
        // 0.1 USD × 0.25 = 0.025 -> 0.03; -0.025 -> -0.03
        assert_eq!(
            quarter.mul_round_cents(Usd::from_e4(1_000)).unwrap().e4,
            300
        );
        assert_eq!(
            quarter.mul_round_cents(Usd::from_e4(-1_000)).unwrap().e4,
            -300
        );
        // 0.0996 × 0.25 = 0.0249 -> 0.02
        assert_eq!(quarter.mul_round_cents(Usd::from_e4(996)).unwrap().e4, 200);
        assert_eq!(div_round_half_away(5, 10), 1);
        assert_eq!(div_round_half_away(-5, 10), -1);
        assert_eq!(div_round_half_away(4, 10), 0);
    }
}
