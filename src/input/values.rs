//! Parsing of single CSV and command-line values (SPEC §2, §4). Every
//! function returns the normalised value or a message saying what is wrong.

/// Longest identifier (`record_id`, `customer_id`, `lot_id`, `order_ref`), in characters.
pub const IDENTIFIER_CHARS_MAX: usize = 64;
/// Longest chip code, in characters.
pub const CHIP_CHARS_MAX: usize = 64;
/// Longest free text (names, labs, sources, references, reasons), in characters.
pub const TEXT_CHARS_MAX: usize = 4096;
/// Fewest units on a row.
pub const UNITS_MIN: i64 = 1;
/// Most units on a row (SPEC §2).
pub const UNITS_MAX: i64 = 1_000_000_000;

/// An identifier: trimmed, 1–64 characters, case-sensitive, no control characters.
pub fn parse_identifier(text: &str) -> Result<String, String> {
    if text.is_empty() {
        return Err("is empty".to_string());
    }
    // ASCII (nearly every identifier): one byte per character, and no
    // format character is ASCII; the same checks, without decoding.
    if text.is_ascii() && text.len() <= IDENTIFIER_CHARS_MAX {
        if text.bytes().any(|b| b.is_ascii_control()) {
            return Err("contains a control character".to_string());
        }
        return Ok(text.to_string());
    }
    let chars = text.chars().count();
    if chars > IDENTIFIER_CHARS_MAX {
        return Err(format!(
            "is {chars} characters long; identifiers have at most {IDENTIFIER_CHARS_MAX}"
        ));
    }
    if text.chars().any(char::is_control) {
        return Err("contains a control character".to_string());
    }
    if let Some(invisible) = text.chars().find(|c| is_format_character(*c)) {
        return Err(format!(
            "contains the invisible format character U+{:04X}: it would make another identifier that looks the same",
            invisible as u32
        ));
    }
    Ok(text.to_string())
}

/// Unicode's format characters (general category Cf): zero-width spaces
/// and joiners, direction marks and overrides, the byte-order mark, soft
/// hyphens, tags. Invisible in print, so never part of an identifier.
pub fn is_format_character(c: char) -> bool {
    matches!(c as u32,
        0x00AD | 0x0600..=0x0605 | 0x061C | 0x06DD | 0x070F | 0x0890..=0x0891 | 0x08E2
        | 0x180E | 0x200B..=0x200F | 0x202A..=0x202E | 0x2060..=0x2064 | 0x2066..=0x206F
        | 0xFEFF | 0xFFF9..=0xFFFB | 0x110BD | 0x110CD | 0x13430..=0x1343F
        | 0x1BCA0..=0x1BCA3 | 0x1D173..=0x1D17A | 0xE0001 | 0xE0020..=0xE007F)
}

/// A chip code `[A-Z0-9][A-Z0-9._-]*`, case-insensitive, stored upper-case.
pub fn parse_chip(text: &str) -> Result<String, String> {
    let upper = text.to_ascii_uppercase();
    let bytes = upper.as_bytes();
    let form_ok = !bytes.is_empty()
        && bytes[0].is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if !form_ok {
        return Err(format!(
            "'{text}' is not a chip code (letters, digits, '.', '_' or '-', starting with a letter or digit)"
        ));
    }
    if bytes.len() > CHIP_CHARS_MAX {
        return Err(format!(
            "chip code is longer than {CHIP_CHARS_MAX} characters"
        ));
    }
    Ok(upper)
}

/// A market: two letters A–Z, case-insensitive, stored upper-case.
pub fn parse_market(text: &str) -> Result<String, String> {
    if text.len() == 2 && text.bytes().all(|b| b.is_ascii_alphabetic()) {
        Ok(text.to_ascii_uppercase())
    } else {
        Err(format!("'{text}' is not a two-letter country code"))
    }
}

/// Units: ASCII digits only, 1 to 1,000,000,000.
pub fn parse_units(text: &str) -> Result<i64, String> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "'{text}' is not a whole number of units (digits only)"
        ));
    }
    let significant = text.trim_start_matches('0');
    if significant.len() > 10 {
        return Err(format!("{text} is more than {UNITS_MAX} units"));
    }
    let units: i64 = if significant.is_empty() {
        0
    } else {
        significant
            .parse()
            .map_err(|_| format!("'{text}' is not a number"))?
    };
    if units < UNITS_MIN {
        return Err(format!("units must be at least {UNITS_MIN}"));
    }
    if units > UNITS_MAX {
        return Err(format!("{text} is more than {UNITS_MAX} units"));
    }
    Ok(units)
}

/// A count of units that may be zero (an attestation's inventory or open
/// orders): ASCII digits, 0 to 1,000,000,000.
pub fn parse_count(text: &str) -> Result<i64, String> {
    if text == "0" || (!text.is_empty() && text.bytes().all(|b| b == b'0')) {
        return Ok(0);
    }
    parse_units(text).map_err(|why| why.replace("units must be at least", "at least"))
}

/// A boolean: `true`/`false`/`yes`/`no`/`1`/`0`, case-insensitive.
pub fn parse_bool(text: &str) -> Result<bool, String> {
    match text.to_ascii_lowercase().as_str() {
        "true" | "yes" | "1" => Ok(true),
        "false" | "no" | "0" => Ok(false),
        _ => Err(format!(
            "'{text}' is not a boolean (true/false, yes/no, 1/0)"
        )),
    }
}

/// One of `choices` (lower-case), case-insensitive; returns the canonical choice.
pub fn parse_choice(text: &str, choices: &[&'static str]) -> Result<&'static str, String> {
    let lower = text.to_ascii_lowercase();
    choices
        .iter()
        .find(|choice| **choice == lower)
        .copied()
        .ok_or_else(|| format!("'{text}' is not one of {}", choices.join(", ")))
}

/// Free text: at most 4096 characters, no control characters other than
/// tab and line breaks. `required` refuses the empty string.
pub fn parse_text(text: &str, required: bool) -> Result<String, String> {
    if required && text.is_empty() {
        return Err("is required and empty".to_string());
    }
    let chars = text.chars().count();
    if chars > TEXT_CHARS_MAX {
        return Err(format!(
            "is {chars} characters long; at most {TEXT_CHARS_MAX}"
        ));
    }
    if text
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
    {
        return Err("contains a control character".to_string());
    }
    Ok(text.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_at_their_limits() {
        assert!(parse_identifier(&"x".repeat(64)).is_ok());
        assert!(parse_identifier(&"x".repeat(65)).is_err());
        assert!(
            parse_identifier(&"é".repeat(64)).is_ok(),
            "limit is in characters"
        );
        assert!(parse_identifier("").is_err());
        assert!(parse_identifier("a\u{0}b").is_err());
        assert_eq!(parse_identifier("Cust-1").unwrap(), "Cust-1");
    }

    #[test]
    fn chips_and_markets() {
        assert_eq!(parse_chip("h200").unwrap(), "H200");
        assert_eq!(parse_chip("mi308.x_1-a").unwrap(), "MI308.X_1-A");
        for bad in ["", "-H200", ".A", "H 200", "H200!", "Ä100"] {
            assert!(parse_chip(bad).is_err(), "{bad:?}");
        }
        assert_eq!(parse_market("cn").unwrap(), "CN");
        for bad in ["C", "CHN", "C1", "", "é1"] {
            assert!(parse_market(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn units_at_their_limits() {
        assert_eq!(parse_units("1").unwrap(), 1);
        assert_eq!(parse_units("1000000000").unwrap(), 1_000_000_000);
        assert_eq!(parse_units("0001").unwrap(), 1);
        for bad in [
            "0",
            "1000000001",
            "-1",
            "+1",
            "1.0",
            "1e3",
            "",
            " 1",
            "99999999999999999999999",
        ] {
            assert!(parse_units(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn booleans_and_choices() {
        for yes in ["true", "TRUE", "Yes", "1"] {
            assert!(parse_bool(yes).unwrap());
        }
        for no in ["false", "No", "0"] {
            assert!(!parse_bool(no).unwrap());
        }
        assert!(parse_bool("y").is_err());
        assert_eq!(parse_choice("PASS", &["pass", "fail"]).unwrap(), "pass");
        assert!(parse_choice("passed", &["pass", "fail"]).is_err());
    }
}
