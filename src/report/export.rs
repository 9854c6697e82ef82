//! `qledger export` (SPEC §5): every entry from `--from` to `--to`, in
//! sequence order, with `seq`, `kind`, its lower-case hex `hash` and its
//! own fields as stored (the kind's columns, then the columns after `hash`:
//! those added by later schema versions and `actor`, `recorded_at`), one
//! JSON object per line or one CSV row each. (A sale's own `kind` column,
//! sale or return, is exported as `sale_kind`.) Streamed: one row per table
//! is held at a time, so memory does not grow with the ledger.

use crate::error::{Error, Result};
use crate::store::entry::{EntryKind, ALL_KINDS};
use fallible_streaming_iterator::FallibleStreamingIterator;
use rusqlite::types::ValueRef;
use rusqlite::Connection;
use std::io::Write;

/// The export's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    /// One JSON object per line: exact (NULL is `null`).
    Jsonl,
    /// One CSV row per entry, with every kind's columns; a column the
    /// entry's kind does not have is empty, a NULL value is `\N`.
    Csv,
}

/// The exported name of a column: the sale's own `kind` column (sale or
/// return) is `sale_kind`, since `kind` names the entry kind.
pub fn exported_name(column: &str) -> &str {
    if column == "kind" {
        "sale_kind"
    } else {
        column
    }
}

/// Every column of an entry kind after `seq`, in table order (hash included).
fn stored_columns(kind: &EntryKind) -> Vec<&'static str> {
    let mut columns: Vec<&'static str> = kind.columns.to_vec();
    columns.push("hash");
    columns.extend(kind.trailing());
    columns
}

/// The CSV header: `seq`, `kind`, `hash`, then every other column of every
/// kind, each once, in registry order.
pub fn csv_columns() -> Vec<&'static str> {
    let mut columns = vec!["seq", "kind", "hash"];
    for kind in ALL_KINDS {
        for column in stored_columns(kind) {
            let name = exported_name(column);
            if !columns.contains(&name) {
                columns.push(name);
            }
        }
    }
    columns
}

/// One table's rows in `from..=to`, read as a cursor.
struct Cursor<'stmt> {
    kind: &'static EntryKind,
    columns: Vec<&'static str>,
    /// Where each column goes in the CSV header.
    positions: Vec<usize>,
    rows: rusqlite::Rows<'stmt>,
    seq: Option<i64>,
}

impl Cursor<'_> {
    fn advance(&mut self) -> Result<()> {
        self.seq = match self.rows.next()? {
            Some(row) => Some(row.get(0)?),
            None => None,
        };
        Ok(())
    }
}

/// What an export wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exported {
    /// Entries written.
    pub entries: u64,
    /// The reader closed the output (a pipe to `head`): the export stopped
    /// there, which is not an error.
    pub output_closed: bool,
}

/// Writes entries `from..=to` (clamped to the ledger) to `out`. `conn`
/// should be inside a read transaction (one snapshot).
pub fn export(
    conn: &Connection,
    from: i64,
    to: i64,
    format: ExportFormat,
    out: &mut dyn Write,
) -> Result<Exported> {
    let mut statements = Vec::with_capacity(ALL_KINDS.len());
    for kind in ALL_KINDS {
        let columns = stored_columns(kind);
        let sql = format!(
            "SELECT seq, {} FROM {} WHERE seq BETWEEN ?1 AND ?2 ORDER BY seq",
            columns.join(", "),
            kind.table
        );
        statements.push((kind, columns, conn.prepare(&sql)?));
    }
    let header = csv_columns();
    let mut cursors = open_cursors(&mut statements, &header, from, to)?;
    let mut exported = Exported {
        entries: 0,
        output_closed: false,
    };
    if format == ExportFormat::Csv
        && !written(
            out.write_all(format!("{}\n", header.join(",")).as_bytes()),
            &mut exported,
        )?
    {
        return Ok(exported);
    }
    let mut line = Vec::with_capacity(1024);
    let mut cells = vec![String::new(); header.len()];
    // In sequence order: the cursor standing on the lowest seq goes next.
    while let Some((seq, index)) = cursors
        .iter()
        .enumerate()
        .filter_map(|(index, cursor)| cursor.seq.map(|seq| (seq, index)))
        .min()
    {
        let cursor = &mut cursors[index];
        let Some(row) = cursor.rows.get() else {
            cursor.seq = None; // cannot happen: a cursor with a seq stands on its row
            continue;
        };
        line.clear();
        let (kind, columns) = (cursor.kind, &cursor.columns);
        match format {
            ExportFormat::Jsonl => jsonl_line(&mut line, seq, kind, columns, row)?,
            ExportFormat::Csv => {
                let positions = &cursor.positions;
                csv_line(&mut line, &mut cells, seq, kind, positions, columns, row)?
            }
        }
        if !written(out.write_all(&line), &mut exported)? {
            return Ok(exported);
        }
        exported.entries += 1;
        cursor.advance()?;
    }
    written(out.flush(), &mut exported)?;
    Ok(exported)
}

/// One cursor per entry kind over entries `from..=to`, each on its first
/// row, knowing where its columns go in the CSV `header`.
fn open_cursors<'stmt>(
    statements: &'stmt mut [(
        &'static EntryKind,
        Vec<&'static str>,
        rusqlite::Statement<'_>,
    )],
    header: &[&str],
    from: i64,
    to: i64,
) -> Result<Vec<Cursor<'stmt>>> {
    let mut cursors = Vec::with_capacity(statements.len());
    for (kind, columns, statement) in statements.iter_mut() {
        let positions = columns
            .iter()
            .map(|column| {
                header
                    .iter()
                    .position(|name| *name == exported_name(column))
                    .unwrap_or(0)
            })
            .collect();
        let mut cursor = Cursor {
            kind,
            columns: columns.clone(),
            positions,
            rows: statement.query((from, to))?,
            seq: None,
        };
        cursor.advance()?;
        cursors.push(cursor);
    }
    Ok(cursors)
}

/// Whether a write succeeded; a closed pipe ends the export quietly, any
/// other write error is an environment error (exit 4).
fn written(result: std::io::Result<()>, exported: &mut Exported) -> Result<bool> {
    match result {
        Ok(()) => Ok(true),
        Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => {
            exported.output_closed = true;
            Ok(false)
        }
        Err(err) => Err(Error::Environment(format!(
            "cannot write the export to standard output: {err}"
        ))),
    }
}

fn jsonl_line(
    line: &mut Vec<u8>,
    seq: i64,
    kind: &EntryKind,
    columns: &[&str],
    row: &rusqlite::Row<'_>,
) -> Result<()> {
    line.extend_from_slice(b"{\"seq\":");
    line.extend_from_slice(itoa::Buffer::new().format(seq).as_bytes());
    line.extend_from_slice(b",\"kind\":\"");
    line.extend_from_slice(kind.table.as_bytes());
    line.extend_from_slice(b"\"");
    for (index, column) in columns.iter().enumerate() {
        line.extend_from_slice(b",\"");
        line.extend_from_slice(exported_name(column).as_bytes());
        line.extend_from_slice(b"\":");
        let value = row.get_ref(index + 1)?;
        if *column == "hash" {
            line.push(b'"');
            line.extend_from_slice(hex::encode(value.as_blob().unwrap_or_default()).as_bytes());
            line.push(b'"');
            continue;
        }
        match value {
            ValueRef::Null => line.extend_from_slice(b"null"),
            ValueRef::Integer(number) => {
                line.extend_from_slice(itoa::Buffer::new().format(number).as_bytes())
            }
            ValueRef::Text(bytes) | ValueRef::Blob(bytes) => {
                let text = String::from_utf8_lossy(bytes);
                serde_json::to_writer(&mut *line, text.as_ref())
                    .map_err(|err| Error::Integrity(format!("entry {seq}: {err}")))?;
            }
            ValueRef::Real(number) => line.extend_from_slice(number.to_string().as_bytes()),
        }
    }
    line.extend_from_slice(b"}\n");
    Ok(())
}

fn csv_line(
    line: &mut Vec<u8>,
    cells: &mut [String],
    seq: i64,
    kind: &EntryKind,
    positions: &[usize],
    columns: &[&str],
    row: &rusqlite::Row<'_>,
) -> Result<()> {
    cells.iter_mut().for_each(String::clear);
    cells[0] = seq.to_string();
    cells[1] = kind.table.to_string();
    for (index, (column, at)) in columns.iter().zip(positions).enumerate() {
        let value = row.get_ref(index + 1)?;
        cells[*at] = if *column == "hash" {
            hex::encode(value.as_blob().unwrap_or_default())
        } else {
            match value {
                ValueRef::Null => "\\N".to_string(),
                ValueRef::Integer(number) => number.to_string(),
                ValueRef::Text(bytes) | ValueRef::Blob(bytes) => {
                    String::from_utf8_lossy(bytes).into_owned()
                }
                ValueRef::Real(number) => number.to_string(),
            }
        };
    }
    let mut writer = csv::WriterBuilder::new()
        .buffer_capacity(1024)
        .from_writer(line);
    writer
        .write_record(&*cells)
        .and_then(|()| writer.flush().map_err(csv::Error::from))
        .map_err(|err| Error::Integrity(format!("entry {seq}: {err}")))
}
