//! Reporting periods (`YYYY-MM` or `YYYY-Qn`) and strict dates.

use chrono::{Datelike, NaiveDate};
use std::fmt;

/// The kind of reporting period a ledger uses, chosen once at `init`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PeriodKind {
    /// Calendar months, ids `YYYY-MM`.
    Month,
    /// Calendar quarters, ids `YYYY-Qn` (the default).
    Quarter,
}

impl PeriodKind {
    /// The name stored in the ledger settings and shown in `init` output.
    pub fn name(self) -> &'static str {
        match self {
            PeriodKind::Month => "month",
            PeriodKind::Quarter => "quarter",
        }
    }

    /// Parses `month` or `quarter` (case-insensitive).
    pub fn parse(text: &str) -> Result<PeriodKind, String> {
        match text.to_ascii_lowercase().as_str() {
            "month" => Ok(PeriodKind::Month),
            "quarter" => Ok(PeriodKind::Quarter),
            _ => Err(format!("'{text}' is not a period kind (month or quarter)")),
        }
    }
}

/// One reporting period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Period {
    /// Calendar year.
    pub year: i32,
    /// Month 1–12 or quarter 1–4, depending on `kind`.
    pub index: u32,
    /// Month or quarter.
    pub kind: PeriodKind,
}

impl Period {
    /// The period of kind `kind` that contains `date`.
    pub fn of(kind: PeriodKind, date: NaiveDate) -> Period {
        let index = match kind {
            PeriodKind::Month => date.month(),
            PeriodKind::Quarter => (date.month() - 1) / 3 + 1,
        };
        Period {
            year: date.year(),
            index,
            kind,
        }
    }

    /// Parses a period id of the ledger's kind; one of the other kind or
    /// form is bad input.
    pub fn parse(kind: PeriodKind, text: &str) -> Result<Period, String> {
        let wrong = || {
            format!(
                "'{text}' is not a {} period id ({})",
                kind.name(),
                match kind {
                    PeriodKind::Month => "YYYY-MM, like 2026-03",
                    PeriodKind::Quarter => "YYYY-Qn, like 2026-Q1",
                }
            )
        };
        let bytes = text.as_bytes();
        if bytes.len() < 7 || bytes[4] != b'-' || !bytes[..4].iter().all(u8::is_ascii_digit) {
            return Err(wrong());
        }
        let year: i32 = text[..4].parse().map_err(|_| wrong())?;
        let rest = &text[5..];
        let index = match kind {
            PeriodKind::Month => {
                if rest.len() != 2 || !rest.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(wrong());
                }
                let month: u32 = rest.parse().map_err(|_| wrong())?;
                if !(1..=12).contains(&month) {
                    return Err(wrong());
                }
                month
            }
            PeriodKind::Quarter => {
                let quarter = rest.strip_prefix('Q').ok_or_else(wrong)?;
                if quarter.len() != 1 {
                    return Err(wrong());
                }
                let quarter: u32 = quarter.parse().map_err(|_| wrong())?;
                if !(1..=4).contains(&quarter) {
                    return Err(wrong());
                }
                quarter
            }
        };
        if year < 1 {
            return Err(wrong());
        }
        Ok(Period { year, index, kind })
    }

    /// First day of the period.
    pub fn first_day(self) -> NaiveDate {
        let month = match self.kind {
            PeriodKind::Month => self.index,
            PeriodKind::Quarter => (self.index - 1) * 3 + 1,
        };
        NaiveDate::from_ymd_opt(self.year, month, 1).expect("valid period start")
    }

    /// Last day of the period.
    pub fn last_day(self) -> NaiveDate {
        self.next()
            .first_day()
            .pred_opt()
            .expect("valid period end")
    }

    /// The period right after this one.
    pub fn next(self) -> Period {
        let count = match self.kind {
            PeriodKind::Month => 12,
            PeriodKind::Quarter => 4,
        };
        if self.index == count {
            Period {
                year: self.year + 1,
                index: 1,
                kind: self.kind,
            }
        } else {
            Period {
                index: self.index + 1,
                ..self
            }
        }
    }

    /// Whether `date` falls inside the period.
    pub fn contains(self, date: NaiveDate) -> bool {
        Period::of(self.kind, date) == self
    }
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            PeriodKind::Month => write!(f, "{:04}-{:02}", self.year, self.index),
            PeriodKind::Quarter => write!(f, "{:04}-Q{}", self.year, self.index),
        }
    }
}

/// Parses a strict `YYYY-MM-DD` date that exists.
pub fn parse_date(text: &str) -> Result<NaiveDate, String> {
    let bytes = text.as_bytes();
    let form_ok = bytes.len() == 10
        && bytes[4] == b'-'
        && bytes[7] == b'-'
        && bytes
            .iter()
            .enumerate()
            .all(|(i, b)| i == 4 || i == 7 || b.is_ascii_digit());
    if !form_ok {
        return Err(format!("'{text}' is not a date (YYYY-MM-DD)"));
    }
    let year: i32 = text[..4]
        .parse()
        .map_err(|_| format!("'{text}' is not a date"))?;
    let month: u32 = text[5..7]
        .parse()
        .map_err(|_| format!("'{text}' is not a date"))?;
    let day: u32 = text[8..]
        .parse()
        .map_err(|_| format!("'{text}' is not a date"))?;
    NaiveDate::from_ymd_opt(year, month, day)
        .filter(|_| year >= 1)
        .ok_or_else(|| format!("'{text}' is not a date that exists"))
}

/// A date as the ten ASCII bytes `YYYY-MM-DD` (years 1 to 9999).
pub fn date_text(date: NaiveDate) -> [u8; 10] {
    let (year, month, day) = (date.year() as u32, date.month(), date.day());
    debug_assert!((1..=9999).contains(&year));
    let digit = |value: u32| b'0' + (value % 10) as u8;
    [
        digit(year / 1000),
        digit(year / 100),
        digit(year / 10),
        digit(year),
        b'-',
        digit(month / 10),
        digit(month),
        b'-',
        digit(day / 10),
        digit(day),
    ]
}

/// Formats a date as `YYYY-MM-DD`.
pub fn format_date(date: NaiveDate) -> String {
    String::from_utf8(date_text(date).to_vec()).expect("ASCII")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(text: &str) -> NaiveDate {
        parse_date(text).unwrap()
    }

    #[test]
    fn dates_are_strict() {
        assert_eq!(d("2026-02-28").to_string(), "2026-02-28");
        assert!(parse_date("2024-02-29").is_ok());
        for bad in [
            "2026-02-29",
            "2026-13-01",
            "2026-00-10",
            "2026-1-01",
            "26-01-01",
            "2026/01/01",
            "2026-01-01 ",
            "",
            "2026-01-32",
            "0000-01-01",
            "+026-01-01",
        ] {
            assert!(parse_date(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn date_text_matches_chrono() {
        for text in [
            "0001-01-01",
            "2026-02-28",
            "2024-02-29",
            "9999-12-31",
            "1999-10-09",
        ] {
            assert_eq!(format_date(d(text)), text);
            assert_eq!(format_date(d(text)), d(text).format("%Y-%m-%d").to_string());
        }
    }

    #[test]
    fn quarter_edges() {
        let q = PeriodKind::Quarter;
        assert_eq!(Period::of(q, d("2026-03-31")).to_string(), "2026-Q1");
        assert_eq!(Period::of(q, d("2026-04-01")).to_string(), "2026-Q2");
        assert_eq!(Period::of(q, d("2026-12-31")).to_string(), "2026-Q4");
        let q4 = Period::parse(q, "2026-Q4").unwrap();
        assert_eq!(q4.first_day(), d("2026-10-01"));
        assert_eq!(q4.last_day(), d("2026-12-31"));
        assert_eq!(q4.next().to_string(), "2027-Q1");
        assert!(q4.contains(d("2026-12-31")));
        assert!(!q4.contains(d("2027-01-01")));
    }

    #[test]
    fn month_edges() {
        let m = PeriodKind::Month;
        let feb = Period::parse(m, "2024-02").unwrap();
        assert_eq!(feb.last_day(), d("2024-02-29"));
        assert_eq!(
            Period::parse(m, "2026-12").unwrap().next().to_string(),
            "2027-01"
        );
    }

    #[test]
    fn period_ids_of_the_wrong_kind_or_form_are_refused() {
        assert!(Period::parse(PeriodKind::Quarter, "2026-03").is_err());
        assert!(Period::parse(PeriodKind::Month, "2026-Q1").is_err());
        for bad in [
            "2026-Q5", "2026-Q0", "2026-q1", "2026-Q12", "2026Q1", "26-Q1",
        ] {
            assert!(Period::parse(PeriodKind::Quarter, bad).is_err(), "{bad}");
        }
        for bad in ["2026-13", "2026-00", "2026-1", "2026-001"] {
            assert!(Period::parse(PeriodKind::Month, bad).is_err(), "{bad}");
        }
    }
}
