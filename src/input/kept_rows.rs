//! Rows kept in memory between an import's passes: the fast path keeps
//! the restricted sales and returns it reads in its first pass, so that
//! judging them after every US sale does not read the file again.
//!
//! Kept compactly (each value's text back to back, lengths as `u16`) and
//! within `KEPT_BYTES_MAX`: a file with more restricted rows than that is
//! read a second time instead, so memory stays bounded whatever the file.

use crate::input::csv::Row;

/// Bytes the kept rows may take by default (text and bookkeeping
/// together). 64 MiB holds about 600,000 typical restricted rows.
pub const KEPT_BYTES_MAX: usize = 64 << 20;

/// Bookkeeping bytes per kept row besides its text: line, start, and
/// one length per column.
const ROW_OVERHEAD_BYTES: usize = std::mem::size_of::<(u64, u32)>();

/// Rows kept in file order.
#[derive(Debug, Default)]
pub struct KeptRows {
    /// Every kept value's text, back to back.
    text: String,
    /// Per row: its line and where its first value starts in `text`.
    rows: Vec<(u64, u32)>,
    /// Per row, per spec column: the value's length in bytes.
    lengths: Vec<u16>,
    /// The header's spec columns, as the reader set them (same for every row).
    present: Vec<Option<usize>>,
    /// Scratch: the value ranges of the row handed out last.
    values: Vec<(usize, usize)>,
    /// The bound on `bytes()`.
    bytes_max: usize,
}

impl KeptRows {
    /// No rows kept yet; they may take up to `bytes_max` bytes.
    pub fn new(bytes_max: usize) -> KeptRows {
        KeptRows {
            bytes_max,
            ..KeptRows::default()
        }
    }

    /// How many rows are kept.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether no row is kept.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Bytes the kept rows take.
    fn bytes(&self) -> usize {
        self.text.len() + self.rows.len() * ROW_OVERHEAD_BYTES + self.lengths.len() * 2
    }

    /// Keeps `row`. `false` when it does not fit (the bound is reached, or
    /// a value is longer than a `u16` counts): the caller reads the file
    /// again instead, and should drop these.
    pub fn keep(&mut self, row: &Row<'_>) -> bool {
        assert!(self.bytes_max <= u32::MAX as usize, "starts fit a u32");
        let columns = row.columns();
        if self.rows.is_empty() {
            self.present = row.present().to_vec();
        }
        assert_eq!(columns, self.present.len(), "rows of one file");
        let start = self.text.len();
        let row_bytes: usize = (0..columns).map(|column| row.get(column).len()).sum();
        let grown = self.bytes() + row_bytes + ROW_OVERHEAD_BYTES + columns * 2;
        if grown > self.bytes_max {
            return false;
        }
        let lengths_before = self.lengths.len();
        for column in 0..columns {
            let value = row.get(column);
            let Ok(length) = u16::try_from(value.len()) else {
                self.text.truncate(start);
                self.lengths.truncate(lengths_before);
                return false;
            };
            self.text.push_str(value);
            self.lengths.push(length);
        }
        let start = u32::try_from(start).expect("kept text within its bound");
        self.rows.push((row.line, start));
        true
    }

    /// Kept row `index` as a row again, equal in every value to the one kept.
    pub fn row(&mut self, index: usize) -> Row<'_> {
        let columns = self.present.len();
        let (line, start) = self.rows[index];
        let mut at = start as usize;
        self.values.clear();
        for &length in &self.lengths[index * columns..(index + 1) * columns] {
            let end = at + length as usize;
            self.values.push((at, end));
            at = end;
        }
        Row::from_parts(line, &self.text, &self.values, &self.present)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::csv::TableReader;
    use crate::records::sales;

    fn table(text: &str) -> TableReader<&[u8]> {
        match TableReader::open(text.as_bytes(), sales::COLUMNS) {
            Ok(table) => table,
            Err(_) => panic!("a readable header"),
        }
    }

    #[test]
    fn a_kept_row_comes_back_with_every_value_and_its_line() {
        let text = "record_id,sale_date,chip,market,customer_id,units,unit_price_usd,lot_id\n\
                    R1 , 2026-01-02,h200,cn,C1,5,10.5,L1\n\n\
                    \"R,2\",2026-01-03,H200,HK,,7,1,\n";
        let mut reader = table(text);
        let mut kept = KeptRows::new(KEPT_BYTES_MAX);
        let mut originals = Vec::new();
        while let Ok(Some(row)) = reader.next_row() {
            let values: Vec<String> = (0..row.columns()).map(|c| row.get(c).into()).collect();
            let present: Vec<bool> = (0..row.columns()).map(|c| row.has_column(c)).collect();
            originals.push((row.line, values, present));
            assert!(kept.keep(&row));
        }
        assert_eq!(kept.len(), 2);
        for (index, (line, values, present)) in originals.iter().enumerate() {
            let row = kept.row(index);
            assert_eq!(row.line, *line);
            for column in 0..row.columns() {
                assert_eq!(row.get(column), values[column], "column {column}");
                assert_eq!(row.has_column(column), present[column]);
            }
        }
        assert_eq!(kept.row(0).get(0), "R1");
        assert_eq!(kept.row(1).line, 4);
        assert_eq!(kept.row(1).get(0), "R,2");
    }

    /// Keeps one row, with `customer` as its customer_id, until it no
    /// longer fits.
    fn kept_until_full(customer: &str) -> KeptRows {
        let text = format!(
            "record_id,sale_date,chip,market,customer_id,units,unit_price_usd\n\
             R1,2026-01-02,H200,CN,{customer},5,10\n"
        );
        let mut reader = table(&text);
        let row = reader.next_row().ok().flatten().expect("a row");
        let mut kept = KeptRows::new(KEPT_BYTES_MAX);
        while kept.keep(&row) {}
        kept
    }

    #[test]
    fn rows_beyond_the_bound_are_not_kept() {
        let kept = kept_until_full(&"x".repeat(60_000));
        assert!(kept.bytes() <= KEPT_BYTES_MAX);
        // The row's text is 60,021 bytes; 16 of bookkeeping, 2 per column.
        let row_bytes = 60_021 + ROW_OVERHEAD_BYTES + sales::COLUMNS.len() * 2;
        assert_eq!(kept.len(), KEPT_BYTES_MAX / row_bytes);
        let kept = kept_until_full(&"y".repeat(70_000));
        assert!(kept.is_empty(), "a value over 65,535 bytes is not kept");
        assert_eq!(kept.bytes(), 0, "nothing of it stays");
    }
}
