//! Sales and returns (SPEC §3.5, §4): the row form, recorded-sale lookups
//! and the duplicate comparison.

use crate::error::{Error, Result, RowProblem};
use crate::input::csv::{ColumnSpec, Row};
use crate::input::reference_import::check;
use crate::input::values::{parse_chip, parse_choice, parse_identifier, parse_market, parse_units};
use crate::money::{Usd, UNIT_PRICE_MAX_USD};
use crate::period::{format_date, parse_date};
use crate::records::policy::KnownChips;
use crate::store::ledger::{MarketGroup, Settings};
use chrono::NaiveDate;
use rusqlite::{Connection, OptionalExtension};

/// The sales file's columns (SPEC §4).
pub const COLUMNS: &[ColumnSpec] = &[
    ColumnSpec {
        name: "record_id",
        required: true,
    },
    ColumnSpec {
        name: "sale_date",
        required: true,
    },
    ColumnSpec {
        name: "chip",
        required: true,
    },
    ColumnSpec {
        name: "market",
        required: true,
    },
    ColumnSpec {
        name: "customer_id",
        required: true,
    },
    ColumnSpec {
        name: "units",
        required: true,
    },
    ColumnSpec {
        name: "unit_price_usd",
        required: true,
    },
    ColumnSpec {
        name: "lot_id",
        required: false,
    },
    ColumnSpec {
        name: "order_ref",
        required: false,
    },
    ColumnSpec {
        name: "kind",
        required: false,
    },
    ColumnSpec {
        name: "reverses",
        required: false,
    },
];

/// Sale or return.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SaleKind {
    /// A sale.
    Sale,
    /// A return reversing (part of) a sale.
    Return,
}

impl SaleKind {
    /// The stored name.
    pub fn name(self) -> &'static str {
        match self {
            SaleKind::Sale => "sale",
            SaleKind::Return => "return",
        }
    }
}

/// One sales row, normalised; or a recorded sale entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaleRow {
    /// The idempotency key.
    pub record_id: String,
    /// Sale or return.
    pub kind: SaleKind,
    /// The date it counts on.
    pub sale_date: NaiveDate,
    /// Chip, upper-case.
    pub chip: String,
    /// Market, upper-case.
    pub market: String,
    /// Customer, if named.
    pub customer_id: Option<String>,
    /// Units, 1 to 1,000,000,000.
    pub units: i64,
    /// Price per unit; `None` only on a return that leaves it to its sale.
    pub unit_price: Option<Usd>,
    /// Lot, if named (a return may leave it to its sale).
    pub lot_id: Option<String>,
    /// Order reference, if any.
    pub order_ref: Option<String>,
    /// The sale a return reverses.
    pub reverses: Option<String>,
}

fn optional(text: &str) -> Option<&str> {
    (!text.is_empty()).then_some(text)
}

/// An optional identifier column: `Some(None)` when empty, `None` when
/// malformed (the problem pushed).
fn optional_identifier(
    problems: &mut Vec<RowProblem>,
    row: &Row<'_>,
    index: usize,
    column: &str,
) -> Option<Option<String>> {
    match optional(row.get(index)) {
        None => Some(None),
        Some(text) => check(problems, row.line, column, parse_identifier(text)).map(Some),
    }
}

/// A sale's date: it must exist and not be after the as-of date.
fn parse_sale_date(text: &str, as_of: NaiveDate) -> std::result::Result<NaiveDate, String> {
    let date = parse_date(text)?;
    if date > as_of {
        return Err(format!(
            "{text} is after the as-of date {} (a sale cannot be dated in the future)",
            format_date(as_of)
        ));
    }
    Ok(date)
}

/// The `kind` column: `sale` when empty.
fn parse_kind(problems: &mut Vec<RowProblem>, row: &Row<'_>) -> Option<SaleKind> {
    let Some(text) = optional(row.get(9)) else {
        return Some(SaleKind::Sale);
    };
    let kind = check(
        problems,
        row.line,
        "kind",
        parse_choice(text, &["sale", "return"]),
    )?;
    Some(if kind == "sale" {
        SaleKind::Sale
    } else {
        SaleKind::Return
    })
}

/// The `unit_price_usd` column: required on a sale, optional on a return.
fn parse_unit_price(
    problems: &mut Vec<RowProblem>,
    row: &Row<'_>,
    kind: Option<SaleKind>,
) -> Option<Option<Usd>> {
    match optional(row.get(6)) {
        None if kind == Some(SaleKind::Sale) => {
            let message = "is required on a sale";
            problems.push(RowProblem::malformed(row.line, "unit_price_usd", message));
            None
        }
        None => Some(None),
        Some(text) => {
            let price = Usd::parse(text, UNIT_PRICE_MAX_USD);
            check(problems, row.line, "unit_price_usd", price).map(Some)
        }
    }
}

/// The `reverses` column: required on a return, refused on a sale.
fn parse_reverses(
    problems: &mut Vec<RowProblem>,
    row: &Row<'_>,
    kind: Option<SaleKind>,
) -> Option<Option<String>> {
    let message = match (kind, optional(row.get(10))) {
        (Some(SaleKind::Sale), Some(_)) => {
            "is set on a sale; only a return (kind=return) reverses a sale"
        }
        (Some(SaleKind::Return), None) => {
            "is required on a return: the record_id of the sale it reverses"
        }
        _ => return optional_identifier(problems, row, 10, "reverses"),
    };
    problems.push(RowProblem::malformed(row.line, "reverses", message));
    None
}

impl SaleRow {
    /// Parses a sales row; every problem is pushed. `as_of` bounds the date.
    pub fn parse(
        row: &Row<'_>,
        settings: &Settings,
        known_chips: &KnownChips,
        as_of: NaiveDate,
        problems: &mut Vec<RowProblem>,
    ) -> Option<SaleRow> {
        let line = row.line;
        let record_id = check(problems, line, "record_id", parse_identifier(row.get(0)));
        let sale_date = parse_sale_date(row.get(1), as_of);
        let sale_date = check(problems, line, "sale_date", sale_date);
        let chip = parse_chip(row.get(2)).and_then(|chip| known_chips.check(chip));
        let chip = check(problems, line, "chip", chip);
        let market = check(problems, line, "market", parse_market(row.get(3)));
        let customer_id = optional_identifier(problems, row, 4, "customer_id");
        let units = check(problems, line, "units", parse_units(row.get(5)));
        let kind = parse_kind(problems, row);
        let unit_price = parse_unit_price(problems, row, kind);
        let lot_id = optional_identifier(problems, row, 7, "lot_id");
        let order_ref = optional_identifier(problems, row, 8, "order_ref");
        let reverses = parse_reverses(problems, row, kind);
        if let (Some(market), Some(None)) = (&market, &customer_id) {
            if settings.market_group(market) == MarketGroup::Restricted {
                problems.push(RowProblem::malformed(
                    line,
                    "customer_id",
                    format!("is required on a row for the restricted market {market}"),
                ));
                return None;
            }
        }
        Some(SaleRow {
            record_id: record_id?,
            kind: kind?,
            sale_date: sale_date?,
            chip: chip?,
            market: market?,
            customer_id: customer_id?,
            units: units?,
            unit_price: unit_price?,
            lot_id: lot_id?,
            order_ref: order_ref?,
            reverses: reverses?,
        })
    }

    /// Whether `self` (an incoming row) records the same fact as `other`
    /// (recorded, or an earlier row of the file). A return's empty price
    /// or lot counts as its sale's, so it matches any value there.
    pub fn same_content(&self, other: &SaleRow) -> bool {
        let wildcard = self.kind == SaleKind::Return && other.kind == SaleKind::Return;
        let price_same = self.unit_price == other.unit_price
            || (wildcard && (self.unit_price.is_none() || other.unit_price.is_none()));
        let lot_same = self.lot_id == other.lot_id
            || (wildcard && (self.lot_id.is_none() || other.lot_id.is_none()));
        self.record_id == other.record_id
            && self.kind == other.kind
            && self.sale_date == other.sale_date
            && self.chip == other.chip
            && self.market == other.market
            && self.customer_id == other.customer_id
            && self.units == other.units
            && price_same
            && lot_same
            && self.order_ref == other.order_ref
            && self.reverses == other.reverses
    }
}

/// A recorded sale or return entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedSale {
    /// Its entry.
    pub seq: i64,
    /// Its content (price and lot always filled in).
    pub row: SaleRow,
}

/// The content columns of a sale row, in the order `RawSale::read` takes
/// them (the `sale` table's; the import's scratch table uses the same).
pub const SALE_CONTENT_COLUMNS: &str =
    "record_id, kind, sale_date, chip, market, customer_id, units, \
     unit_price_usd_e4, lot_id, order_ref, reverses";

/// A sale row as SQLite returns it, before its values are checked.
#[derive(Debug, Clone)]
pub struct RawSale {
    record_id: String,
    kind: String,
    sale_date: String,
    chip: String,
    market: String,
    customer_id: Option<String>,
    units: i64,
    unit_price_e4: Option<i64>,
    lot_id: Option<String>,
    order_ref: Option<String>,
    reverses: Option<String>,
}

impl RawSale {
    /// Reads `SALE_CONTENT_COLUMNS` from `row`, starting at column `first`.
    pub fn read(row: &rusqlite::Row<'_>, first: usize) -> rusqlite::Result<RawSale> {
        Ok(RawSale {
            record_id: row.get(first)?,
            kind: row.get(first + 1)?,
            sale_date: row.get(first + 2)?,
            chip: row.get(first + 3)?,
            market: row.get(first + 4)?,
            customer_id: row.get(first + 5)?,
            units: row.get(first + 6)?,
            unit_price_e4: row.get(first + 7)?,
            lot_id: row.get(first + 8)?,
            order_ref: row.get(first + 9)?,
            reverses: row.get(first + 10)?,
        })
    }

    /// The checked row; a value that does not parse is an integrity error.
    pub fn into_row(self) -> Result<SaleRow> {
        let record_id = self.record_id;
        let corrupt =
            |what: String| Error::Integrity(format!("stored sale {record_id} is corrupt: {what}"));
        let kind = match self.kind.as_str() {
            "sale" => SaleKind::Sale,
            "return" => SaleKind::Return,
            other => return Err(corrupt(format!("kind '{other}'"))),
        };
        let sale_date = parse_date(&self.sale_date).map_err(corrupt)?;
        Ok(SaleRow {
            record_id,
            kind,
            sale_date,
            chip: self.chip,
            market: self.market,
            customer_id: self.customer_id,
            units: self.units,
            unit_price: self.unit_price_e4.map(|e4| Usd::from_e4(e4 as i128)),
            lot_id: self.lot_id,
            order_ref: self.order_ref,
            reverses: self.reverses,
        })
    }
}

/// The recorded sale or return with `record_id`, if any.
pub fn recorded(conn: &Connection, record_id: &str) -> Result<Option<RecordedSale>> {
    let stored: Option<(i64, RawSale)> = conn
        .prepare_cached(&format!(
            "SELECT seq, {SALE_CONTENT_COLUMNS} FROM sale WHERE record_id = ?1"
        ))?
        .query_row([record_id], |row| Ok((row.get(0)?, RawSale::read(row, 1)?)))
        .optional()?;
    let Some((seq, raw)) = stored else {
        return Ok(None);
    };
    let row = raw.into_row()?;
    if row.unit_price.is_none() {
        return Err(Error::Integrity(format!(
            "recorded sale {} has no price",
            row.record_id
        )));
    }
    Ok(Some(RecordedSale { seq, row }))
}

/// Units already returned of the sale `record_id`.
pub fn returned_units(conn: &Connection, record_id: &str) -> Result<i64> {
    Ok(conn
        .prepare_cached("SELECT coalesce(sum(units), 0) FROM sale WHERE reverses = ?1")?
        .query_row([record_id], |row| row.get(0))?)
}

/// One value of a sale entry, as `SaleBatch` stores it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// SQL NULL.
    Null,
    /// An INTEGER.
    Int(i64),
    /// TEXT: a byte range of `SaleBatch::bytes`.
    Text(u32, u32),
}

/// One encoded sale entry: its seq, hash and column values.
#[derive(Debug, Clone)]
pub struct SaleSlot {
    /// The entry's seq.
    pub seq: i64,
    /// Its chain hash.
    pub hash: crate::store::entry::Hash,
    /// Column values in `entry::SALE.columns` order.
    pub fields: [Field; 15],
}

/// Sale entries encoded for the chain: the canonical bytes of every entry,
/// one after another, with each entry's values pointing into them. The
/// canonical bytes are hashed where the batch is built (the parsing
/// thread) and the writer binds the values straight from them, so no value
/// is copied or allocated per row.
#[derive(Debug, Clone, Default)]
pub struct SaleBatch {
    /// Canonical bytes of the entries, concatenated. They are UTF-8 by
    /// construction (netstring digits and punctuation around `&str`
    /// values), so the writer binds slices without re-validating.
    pub bytes: String,
    /// The entries.
    pub rows: Vec<SaleSlot>,
}

impl SaleBatch {
    /// Entries a batch holds before it is handed to the writer.
    pub const ROWS: usize = 1024;

    /// An empty batch.
    pub fn new() -> SaleBatch {
        SaleBatch {
            bytes: String::with_capacity(Self::ROWS * 160),
            rows: Vec::with_capacity(Self::ROWS),
        }
    }

    /// Whether the batch holds no entries.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    fn text(&mut self, value: &str) -> Field {
        let mut digits = itoa::Buffer::new();
        self.bytes.push_str(digits.format(value.len()));
        self.bytes.push(':');
        let start = self.bytes.len() as u32;
        self.bytes.push_str(value);
        let end = self.bytes.len() as u32;
        self.bytes.push(',');
        Field::Text(start, end)
    }

    fn optional_text(&mut self, value: Option<&str>) -> Field {
        match value {
            Some(value) => self.text(value),
            None => {
                self.bytes.push_str("~,");
                Field::Null
            }
        }
    }

    fn int(&mut self, value: i64) -> Field {
        let mut digits = itoa::Buffer::new();
        let text = digits.format(value);
        self.bytes.push_str(itoa::Buffer::new().format(text.len()));
        self.bytes.push(':');
        self.bytes.push_str(text);
        self.bytes.push(',');
        Field::Int(value)
    }

    fn optional_int(&mut self, value: Option<i64>) -> Field {
        match value {
            Some(value) => self.int(value),
            None => {
                self.bytes.push_str("~,");
                Field::Null
            }
        }
    }

    /// Encodes entry `seq` after `previous` and returns its hash. A return
    /// must already carry its sale's price and lot.
    pub fn push(
        &mut self,
        seq: i64,
        previous: &crate::store::entry::Hash,
        row: &SaleRow,
        draw: Option<(i64, i64)>,
        accepted: Option<(&str, &str)>,
    ) -> crate::store::entry::Hash {
        let start = self.bytes.len();
        let price = row.unit_price.expect("price filled before recording").e4;
        let price = i64::try_from(price).expect("price within its limit");
        self.int(seq);
        self.text(crate::store::entry::SALE.table);
        let date = crate::period::date_text(row.sale_date);
        let fields = [
            self.text(&row.record_id),
            self.text(row.kind.name()),
            self.text(std::str::from_utf8(&date).expect("ASCII date")),
            self.text(&row.chip),
            self.text(&row.market),
            self.optional_text(row.customer_id.as_deref()),
            self.int(row.units),
            self.int(price),
            self.optional_text(row.lot_id.as_deref()),
            self.optional_text(row.order_ref.as_deref()),
            self.optional_text(row.reverses.as_deref()),
            self.optional_int(draw.map(|(hold_seq, _)| hold_seq)),
            self.optional_int(draw.map(|(_, units)| units)),
            self.optional_text(accepted.map(|(rules, _)| rules)),
            self.optional_text(accepted.map(|(_, reason)| reason)),
        ];
        let hash = crate::store::entry::chain_hash(previous, &self.bytes.as_bytes()[start..]);
        self.rows.push(SaleSlot { seq, hash, fields });
        hash
    }

    /// The text of a `Field::Text`.
    pub fn text_of(&self, start: u32, end: u32) -> &str {
        &self.bytes[start as usize..end as usize]
    }
}
