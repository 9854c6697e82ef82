//! A strict, streaming RFC 4180 reader and the table layer on top of it.
//!
//! Why not the `csv` crate for reading: it is lenient by design and never
//! reports malformed CSV (an unclosed quote silently swallows the rest of
//! the file, a stray quote becomes data). A compliance import must refuse
//! such input with its line number, so this module does the lexing itself
//! and reports every problem. (The `csv` crate still writes reject files.)
//!
//! Accepted: UTF-8 with an optional BOM, LF or CRLF (mixed) line endings,
//! RFC 4180 quoting with doubled quotes, blank lines (skipped), spaces
//! around a quoted field (fields are trimmed anyway), no final newline.
//! Refused: unclosed quotes, quotes inside unquoted fields, text after a
//! closing quote, bare CR line endings, UTF-16, records over 1 MiB.

use crate::error::RowProblem;
use sha2::{Digest, Sha256};
use std::io::Read;

/// Longest record accepted, in bytes.
pub const RECORD_BYTES_MAX: usize = 1 << 20;
/// Most fields in one record.
pub const RECORD_FIELDS_MAX: usize = 256;
const CHUNK_BYTES: usize = 1 << 16;

/// A problem with the file's CSV syntax.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    /// Line on which the record starts.
    pub line: u64,
    /// What is wrong.
    pub message: String,
}

/// Errors from reading raw records.
#[derive(Debug)]
pub enum ReadError {
    /// The file could not be read.
    Io(std::io::Error),
    /// The whole file is unusable (UTF-16, for instance).
    File(String),
    /// One record is malformed; reading may continue with the next line.
    Syntax(SyntaxError),
}

impl ReadError {
    /// The problem this makes of the record being read (`column` names
    /// it: `header` or `row`), or the I/O error that ends the file.
    fn into_problem(self, column: &str) -> Result<RowProblem, std::io::Error> {
        match self {
            ReadError::Io(err) => Err(err),
            ReadError::File(message) => Ok(RowProblem::malformed(1, "file", message)),
            ReadError::Syntax(err) => Ok(RowProblem::malformed(err.line, column, err.message)),
        }
    }
}

/// One raw record: fields as bytes, untrimmed, and the line it starts on.
#[derive(Debug, Default, Clone)]
pub struct RawRecord {
    /// Physical line on which the record starts (1-based).
    pub line: u64,
    bytes: Vec<u8>,
    ends: Vec<usize>,
}

impl RawRecord {
    /// Number of fields.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether the record has no fields.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Field `index` as raw bytes.
    pub fn field(&self, index: usize) -> &[u8] {
        let start = if index == 0 { 0 } else { self.ends[index - 1] };
        &self.bytes[start..self.ends[index]]
    }

    /// All fields, in order.
    pub fn fields(&self) -> impl Iterator<Item = &[u8]> {
        (0..self.len()).map(|index| self.field(index))
    }

    fn clear(&mut self) {
        self.bytes.clear();
        self.ends.clear();
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    StartRecord,
    StartField,
    /// Inside an unquoted field; `true` while it holds only spaces/tabs.
    Unquoted(bool),
    Quoted,
    QuoteInQuoted,
    AfterQuoted,
    CarriageReturn,
    SkipLine,
    Done,
}

/// What one byte did to the record being read.
enum Step {
    /// Read on.
    More,
    /// The record is complete.
    Record,
    /// The input is done.
    Done,
}

/// A streaming reader of raw CSV records with strict RFC 4180 rules.
pub struct CsvReader<R> {
    source: R,
    chunk: Vec<u8>,
    position: usize,
    filled: usize,
    started: bool,
    eof: bool,
    line: u64,
    state: State,
    record: RawRecord,
    field_start: usize,
    hasher: Sha256,
    bytes_read: u64,
    /// Whether simple lines take the memchr fast path (tests turn it off
    /// to compare both routes).
    simple_lines: bool,
}

impl<R: Read> CsvReader<R> {
    /// A reader over `source`.
    pub fn new(source: R) -> CsvReader<R> {
        CsvReader {
            source,
            chunk: vec![0; CHUNK_BYTES],
            position: 0,
            filled: 0,
            started: false,
            eof: false,
            line: 1,
            state: State::StartRecord,
            record: RawRecord::default(),
            field_start: 0,
            hasher: Sha256::new(),
            bytes_read: 0,
            simple_lines: true,
        }
    }

    /// Total bytes read so far.
    pub fn bytes_read(&self) -> u64 {
        self.bytes_read
    }

    /// Reads the rest of the input (to hash every byte) and returns the
    /// SHA-256 of the whole file as lower-case hex.
    pub fn finish_sha256(mut self) -> std::io::Result<String> {
        loop {
            self.position = self.filled;
            if !self.refill()? {
                break;
            }
        }
        Ok(hex::encode(self.hasher.finalize()))
    }

    fn refill(&mut self) -> std::io::Result<bool> {
        if self.eof {
            return Ok(false);
        }
        loop {
            match self.source.read(&mut self.chunk) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(false);
                }
                Ok(count) => {
                    self.hasher.update(&self.chunk[..count]);
                    self.bytes_read += count as u64;
                    self.position = 0;
                    self.filled = count;
                    return Ok(true);
                }
                Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(err) => return Err(err),
            }
        }
    }

    /// Looks at the first bytes once: strips a UTF-8 BOM, refuses UTF-16.
    fn start(&mut self) -> Result<(), ReadError> {
        self.started = true;
        // Gather at least 3 bytes (or all there is) to see the BOM.
        let mut head = Vec::new();
        while head.len() < 3 {
            if self.position >= self.filled && !self.refill().map_err(ReadError::Io)? {
                break;
            }
            head.extend_from_slice(&self.chunk[self.position..self.filled]);
            self.position = self.filled;
        }
        if head.starts_with(&[0xFF, 0xFE]) || head.starts_with(&[0xFE, 0xFF]) {
            self.state = State::Done;
            return Err(ReadError::File(
                "the file is UTF-16 text; qledger reads UTF-8 only (save it as UTF-8)".to_string(),
            ));
        }
        let skip = if head.starts_with(&[0xEF, 0xBB, 0xBF]) {
            3
        } else {
            0
        };
        // Put the gathered bytes back in front of the chunk.
        let rest = head.split_off(skip);
        let tail = self.chunk[self.position..self.filled].to_vec();
        let mut combined = rest;
        combined.extend_from_slice(&tail);
        if combined.len() > self.chunk.len() {
            self.chunk.resize(combined.len(), 0);
        }
        self.chunk[..combined.len()].copy_from_slice(&combined);
        self.position = 0;
        self.filled = combined.len();
        Ok(())
    }

    fn end_field(&mut self) -> Result<(), String> {
        if self.record.ends.len() >= RECORD_FIELDS_MAX {
            return Err(format!(
                "the record has more than {RECORD_FIELDS_MAX} fields"
            ));
        }
        self.record.ends.push(self.record.bytes.len());
        self.field_start = self.record.bytes.len();
        Ok(())
    }

    fn syntax(&mut self, message: String) -> ReadError {
        self.state = State::SkipLine;
        ReadError::Syntax(SyntaxError {
            line: self.record.line,
            message,
        })
    }

    /// The next record, `Ok(None)` at the end. After a `Syntax` error the
    /// reader skips to the next line, so calling again finds later problems.
    pub fn next_record(&mut self) -> Result<Option<&RawRecord>, ReadError> {
        if !self.started {
            self.start()?;
        }
        if self.state == State::Done {
            return Ok(None);
        }
        if self.state != State::SkipLine {
            self.state = State::StartRecord;
        }
        self.record.clear();
        self.field_start = 0;
        self.record.line = self.line;
        if self.simple_line() {
            return Ok(Some(&self.record));
        }
        loop {
            if self.position >= self.filled && !self.refill().map_err(ReadError::Io)? {
                return self.at_eof();
            }
            if self.copy_run()? {
                continue;
            }
            let byte = self.chunk[self.position];
            self.position += 1;
            self.check_record_length()?;
            match self.step(byte)? {
                Step::More => {}
                Step::Record => return Ok(Some(&self.record)),
                Step::Done => return Ok(None),
            }
        }
    }

    /// Fast path: copies a run of ordinary bytes inside a field at once.
    /// `true` when it copied any.
    fn copy_run(&mut self) -> Result<bool, ReadError> {
        let rest = &self.chunk[self.position..self.filled];
        let stop = match self.state {
            State::Unquoted(false) => rest
                .iter()
                .position(|&b| matches!(b, b',' | b'\n' | b'\r' | b'"')),
            State::Quoted => rest.iter().position(|&b| b == b'"' || b == b'\n'),
            _ => return Ok(false),
        };
        let take = stop.unwrap_or(rest.len());
        if take == 0 {
            return Ok(false);
        }
        self.record.bytes.extend_from_slice(&rest[..take]);
        self.position += take;
        self.check_record_length()?;
        Ok(true)
    }

    /// A record may not grow past `RECORD_BYTES_MAX` (memory stays bounded).
    fn check_record_length(&mut self) -> Result<(), ReadError> {
        if self.record.bytes.len() >= RECORD_BYTES_MAX {
            return Err(self.syntax(format!(
                "the record is longer than {RECORD_BYTES_MAX} bytes (an unclosed quote?)"
            )));
        }
        Ok(())
    }

    /// One byte through the state machine.
    fn step(&mut self, byte: u8) -> Result<Step, ReadError> {
        match self.state {
            State::StartRecord => {
                self.record.line = self.line;
                match byte {
                    b'\n' => self.line += 1, // blank line
                    b'\r' => self.state = State::CarriageReturn,
                    _ => {
                        self.state = State::StartField;
                        self.position -= 1; // reprocess as field start
                    }
                }
            }
            State::StartField => return self.step_field_start(byte),
            State::Unquoted(blank_so_far) => return self.step_unquoted(byte, blank_so_far),
            State::Quoted => match byte {
                b'"' => self.state = State::QuoteInQuoted,
                b'\n' => {
                    self.line += 1;
                    self.record.bytes.push(byte);
                }
                _ => self.record.bytes.push(byte),
            },
            State::QuoteInQuoted | State::AfterQuoted => return self.step_after_quote(byte),
            State::CarriageReturn => return self.step_carriage_return(byte),
            State::SkipLine => {
                if byte == b'\n' {
                    self.line += 1;
                    self.state = State::StartRecord;
                    self.record.clear();
                    self.field_start = 0;
                    self.record.line = self.line;
                }
            }
            State::Done => return Ok(Step::Done),
        }
        Ok(Step::More)
    }

    /// A field separator or line end, common to every place a field may end.
    fn step_field_end(&mut self, byte: u8) -> Result<Step, ReadError> {
        self.end_field().map_err(|m| self.syntax(m))?;
        match byte {
            b',' => self.state = State::StartField,
            b'\n' => {
                self.line += 1;
                self.state = State::StartRecord;
                return Ok(Step::Record);
            }
            _ => self.state = State::CarriageReturn,
        }
        Ok(Step::More)
    }

    fn step_field_start(&mut self, byte: u8) -> Result<Step, ReadError> {
        match byte {
            b'"' => self.state = State::Quoted,
            b',' | b'\n' | b'\r' => return self.step_field_end(byte),
            b' ' | b'\t' => {
                self.record.bytes.push(byte);
                self.state = State::Unquoted(true);
            }
            _ => {
                self.record.bytes.push(byte);
                self.state = State::Unquoted(false);
            }
        }
        Ok(Step::More)
    }

    fn step_unquoted(&mut self, byte: u8, blank_so_far: bool) -> Result<Step, ReadError> {
        match byte {
            b',' | b'\n' | b'\r' => return self.step_field_end(byte),
            b'"' if blank_so_far => {
                // Spaces before an opening quote: drop them.
                self.record.bytes.truncate(self.field_start);
                self.state = State::Quoted;
            }
            b'"' => {
                return Err(self.syntax(
                    "a quote character inside an unquoted field (quote the whole field and double each quote inside it)"
                        .to_string(),
                ));
            }
            _ => {
                self.record.bytes.push(byte);
                if blank_so_far && byte != b' ' && byte != b'\t' {
                    self.state = State::Unquoted(false);
                }
            }
        }
        Ok(Step::More)
    }

    fn step_after_quote(&mut self, byte: u8) -> Result<Step, ReadError> {
        match byte {
            b'"' if self.state == State::QuoteInQuoted => {
                self.record.bytes.push(b'"');
                self.state = State::Quoted;
            }
            b',' | b'\n' | b'\r' => return self.step_field_end(byte),
            b' ' | b'\t' => self.state = State::AfterQuoted,
            _ => {
                return Err(self.syntax(
                    "text after the closing quote of a quoted field (double each quote inside a quoted field)"
                        .to_string(),
                ));
            }
        }
        Ok(Step::More)
    }

    fn step_carriage_return(&mut self, byte: u8) -> Result<Step, ReadError> {
        if byte != b'\n' {
            // Count the bare CR as a line end so later lines keep their numbers
            // as an editor showing CR line breaks would.
            self.position -= 1;
            return Err(self.syntax(
                "a carriage return not followed by a line feed (old Mac line endings are not supported; save the file with LF or CRLF line endings)"
                    .to_string(),
            ));
        }
        self.line += 1;
        self.state = State::StartRecord;
        if self.record.is_empty() {
            return Ok(Step::More);
        }
        Ok(Step::Record)
    }

    /// The common case, fast: a whole line in the buffer with no quote and
    /// no carriage return is split on commas directly. Anything else (or a
    /// line crossing the buffer's end) goes through the state machine.
    /// Returns whether `self.record` holds the next record.
    fn simple_line(&mut self) -> bool {
        if self.state != State::StartRecord || !self.simple_lines {
            return false;
        }
        let available = &self.chunk[self.position..self.filled];
        let Some(newline) = memchr::memchr(b'\n', available) else {
            return false;
        };
        let mut line = &available[..newline];
        if let Some(without_cr) = line.strip_suffix(b"\r") {
            line = without_cr; // CRLF
        }
        if line.is_empty() || memchr::memchr2(b'"', b'\r', line).is_some() {
            return false;
        }
        if line.len() >= RECORD_BYTES_MAX {
            return false;
        }
        let mut start = 0;
        for comma in memchr::memchr_iter(b',', line) {
            self.record.bytes.extend_from_slice(&line[start..comma]);
            self.record.ends.push(self.record.bytes.len());
            start = comma + 1;
            if self.record.ends.len() > RECORD_FIELDS_MAX {
                self.record.clear();
                return false;
            }
        }
        self.record.bytes.extend_from_slice(&line[start..]);
        self.record.ends.push(self.record.bytes.len());
        if self.record.ends.len() > RECORD_FIELDS_MAX {
            self.record.clear();
            return false;
        }
        self.position += newline + 1;
        self.line += 1;
        true
    }

    fn at_eof(&mut self) -> Result<Option<&RawRecord>, ReadError> {
        let state = self.state;
        self.state = State::Done;
        match state {
            State::StartRecord | State::SkipLine | State::Done => Ok(None),
            State::Quoted => Err(ReadError::Syntax(SyntaxError {
                line: self.record.line,
                message: "a quoted field is never closed (the file ends inside quotes)".to_string(),
            })),
            State::CarriageReturn => {
                if self.record.is_empty() {
                    Ok(None)
                } else {
                    Ok(Some(&self.record))
                }
            }
            State::StartField | State::Unquoted(_) | State::QuoteInQuoted | State::AfterQuoted => {
                if let Err(message) = self.end_field() {
                    return Err(ReadError::Syntax(SyntaxError {
                        line: self.record.line,
                        message,
                    }));
                }
                Ok(Some(&self.record))
            }
        }
    }
}

/// One column a file kind may have.
#[derive(Debug, Clone, Copy)]
pub struct ColumnSpec {
    /// Lower-case header name.
    pub name: &'static str,
    /// Whether the header must contain it.
    pub required: bool,
}

/// Reads a CSV file as rows of trimmed UTF-8 values in `specs` order.
pub struct TableReader<R> {
    csv: CsvReader<R>,
    specs: &'static [ColumnSpec],
    /// For each spec column, its index in the file's records.
    positions: Vec<Option<usize>>,
    /// Header names as lower-case text, in file order.
    header: Vec<String>,
    /// Header names as written (trimmed), in file order.
    header_original: Vec<String>,
    values: Vec<(usize, usize)>,
    text: String,
    line: u64,
}

impl<R: Read> TableReader<R> {
    /// Reads and checks the header. Every header problem is returned.
    pub fn open(source: R, specs: &'static [ColumnSpec]) -> Result<TableReader<R>, HeaderError> {
        let mut csv = CsvReader::new(source);
        let header_record = header_record(&mut csv)?;
        let line = header_record.line;
        let header_original = header_record
            .fields()
            .map(|raw| String::from_utf8_lossy(raw).trim().to_string())
            .collect();
        let (header, positions, problems) = match_header(&header_record, specs);
        if !problems.is_empty() {
            return Err(HeaderError::Problems(problems));
        }
        Ok(TableReader {
            csv,
            specs,
            positions,
            header,
            header_original,
            values: Vec::new(),
            text: String::new(),
            line,
        })
    }

    /// The next data row. `Ok(None)` at the end; `Err(problems)` for a
    /// malformed row (reading may continue); I/O errors end the file.
    pub fn next_row(&mut self) -> Result<Option<Row<'_>>, RowRead> {
        loop {
            match self.csv.next_record() {
                Ok(Some(record)) if is_blank(record) => continue,
                Ok(Some(_)) => break,
                Ok(None) => return Ok(None),
                Err(err) => {
                    return Err(match err.into_problem("row") {
                        Ok(problem) => RowRead::Problems(vec![problem]),
                        Err(err) => RowRead::Io(err),
                    })
                }
            }
        }
        let record = &self.csv.record;
        self.line = record.line;
        if record.len() != self.header.len() {
            return Err(RowRead::Problems(vec![RowProblem::malformed(
                record.line,
                "row",
                format!(
                    "has {} fields but the header has {}",
                    record.len(),
                    self.header.len()
                ),
            )]));
        }
        self.values.clear();
        self.text.clear();
        if let Ok(text) = std::str::from_utf8(&record.bytes) {
            // Valid as a whole, so every field is, and field boundaries are
            // character boundaries (the delimiters are ASCII).
            for position in &self.positions {
                let Some(position) = *position else {
                    self.values.push((0, 0));
                    continue;
                };
                let start = if position == 0 {
                    0
                } else {
                    record.ends[position - 1]
                };
                let end = record.ends[position];
                let field = &text[start..end];
                let trimmed_start = start + (field.len() - field.trim_start().len());
                let trimmed_end = start + field.trim_end().len();
                self.values
                    .push((trimmed_start, trimmed_end.max(trimmed_start)));
            }
            return Ok(Some(Row {
                line: record.line,
                text,
                values: &self.values,
                present: &self.positions,
            }));
        }
        Err(RowRead::Problems(utf8_problems(
            record,
            self.specs,
            &self.positions,
        )))
    }

    /// Bytes of the file read so far.
    pub fn bytes_read(&self) -> u64 {
        self.csv.bytes_read()
    }

    /// The header as written in the file (trimmed), in file order.
    pub fn header_original(&self) -> &[String] {
        &self.header_original
    }

    /// The fields of the record last read, as written (lossy UTF-8), for
    /// reject files.
    pub fn last_raw_fields(&self) -> Vec<String> {
        self.csv
            .record
            .fields()
            .map(|field| String::from_utf8_lossy(field).into_owned())
            .collect()
    }

    /// Reads whatever is left and returns the file's SHA-256 (hex) and size.
    pub fn finish(self) -> std::io::Result<(String, u64)> {
        let mut csv = self.csv;
        let mut total = csv.bytes_read();
        // Drain to count bytes too.
        let mut rest = Vec::new();
        csv.source.read_to_end(&mut rest)?;
        csv.hasher.update(&rest);
        total += rest.len() as u64;
        csv.bytes_read = total;
        csv.eof = true;
        Ok((csv.finish_sha256()?, total))
    }
}

/// Header problems, or a failure to read the file at all.
#[derive(Debug)]
pub enum HeaderError {
    /// The file could not be read.
    Io(std::io::Error),
    /// What is wrong with the header (every problem).
    Problems(Vec<RowProblem>),
}

/// A failure to read one row.
#[derive(Debug)]
pub enum RowRead {
    /// The file could not be read.
    Io(std::io::Error),
    /// What is wrong with the row.
    Problems(Vec<RowProblem>),
}

/// One data row: trimmed values in the order of the column specs.
#[derive(Debug, Clone, Copy)]
pub struct Row<'a> {
    /// Line on which the record starts.
    pub line: u64,
    text: &'a str,
    values: &'a [(usize, usize)],
    present: &'a [Option<usize>],
}

impl<'a> Row<'a> {
    /// The trimmed value of spec column `index` (`""` when absent).
    pub fn get(&self, index: usize) -> &'a str {
        let (start, end) = self.values[index];
        &self.text[start..end]
    }

    /// Whether spec column `index` is in the file's header.
    pub fn has_column(&self, index: usize) -> bool {
        self.present[index].is_some()
    }

    /// How many spec columns the row has (present or not).
    pub fn columns(&self) -> usize {
        self.values.len()
    }

    /// Which spec columns the file's header has, as the reader set them.
    pub(crate) fn present(&self) -> &'a [Option<usize>] {
        self.present
    }

    /// A row again from parts kept earlier (`input::kept_rows`): `values`
    /// are byte ranges of `text`, one per spec column.
    pub(crate) fn from_parts(
        line: u64,
        text: &'a str,
        values: &'a [(usize, usize)],
        present: &'a [Option<usize>],
    ) -> Row<'a> {
        assert_eq!(values.len(), present.len(), "one value per spec column");
        Row {
            line,
            text,
            values,
            present,
        }
    }
}

/// The first record that is not blank: the header.
fn header_record<R: Read>(csv: &mut CsvReader<R>) -> Result<RawRecord, HeaderError> {
    loop {
        match csv.next_record() {
            Ok(Some(record)) if is_blank(record) => continue,
            Ok(Some(record)) => return Ok(record.clone()),
            Ok(None) => {
                return Err(HeaderError::Problems(vec![RowProblem::malformed(
                    1,
                    "header",
                    "the file is empty: it needs at least a header row",
                )]))
            }
            Err(err) => {
                return Err(match err.into_problem("header") {
                    Ok(problem) => HeaderError::Problems(vec![problem]),
                    Err(err) => HeaderError::Io(err),
                })
            }
        }
    }
}

/// The file's header against `specs`: names (lower-case, file order), each
/// spec column's position, and every problem (not UTF-8, empty, unknown,
/// repeated or missing column).
fn match_header(
    record: &RawRecord,
    specs: &'static [ColumnSpec],
) -> (Vec<String>, Vec<Option<usize>>, Vec<RowProblem>) {
    let line = record.line;
    let (mut header, mut problems) = (Vec::new(), Vec::new());
    let mut positions = vec![None; specs.len()];
    for (index, raw) in record.fields().enumerate() {
        let Ok(text) = std::str::from_utf8(raw) else {
            let message = format!("column {} has a name that is not valid UTF-8", index + 1);
            problems.push(RowProblem::malformed(line, "header", message));
            header.push(String::new());
            continue;
        };
        let name = text.trim().to_lowercase();
        match specs.iter().position(|spec| spec.name == name) {
            Some(spec_index) if positions[spec_index].is_some() => {
                let message = "column appears more than once in the header";
                problems.push(RowProblem::malformed(line, &name, message));
            }
            Some(spec_index) => positions[spec_index] = Some(index),
            None if name.is_empty() => {
                let message = format!("column {} has an empty name", index + 1);
                problems.push(RowProblem::malformed(line, "header", message));
            }
            None => {
                let expected: Vec<&str> = specs.iter().map(|s| s.name).collect();
                let message = format!("unknown column (expected {})", expected.join(", "));
                problems.push(RowProblem::malformed(line, &name, message));
            }
        }
        header.push(name);
    }
    for (spec, position) in specs.iter().zip(&positions) {
        if spec.required && position.is_none() {
            let message = "required column is missing from the header";
            problems.push(RowProblem::malformed(line, spec.name, message));
        }
    }
    (header, positions, problems)
}

/// Which columns of a record that is not valid UTF-8 are at fault (or the
/// row, when the invalid bytes are in a column not read).
fn utf8_problems(
    record: &RawRecord,
    specs: &[ColumnSpec],
    positions: &[Option<usize>],
) -> Vec<RowProblem> {
    let message = "is not valid UTF-8 (save the file as UTF-8)";
    let mut problems: Vec<RowProblem> = specs
        .iter()
        .zip(positions)
        .filter_map(|(spec, position)| Some((spec, (*position)?)))
        .filter(|(_, position)| std::str::from_utf8(record.field(*position)).is_err())
        .map(|(spec, _)| RowProblem::malformed(record.line, spec.name, message))
        .collect();
    if problems.is_empty() {
        // Invalid bytes in a column we do not read still make the row unreadable.
        problems.push(RowProblem::malformed(record.line, "row", message));
    }
    problems
}

/// A record that is a blank line or only white space.
fn is_blank(record: &RawRecord) -> bool {
    record.is_empty()
        || (record.len() == 1 && record.field(0).iter().all(|b| b.is_ascii_whitespace()))
}

/// Parses a whole input into raw string records (header included), for
/// the conformance tests: `Err` with every syntax problem.
pub fn parse_all(bytes: &[u8]) -> Result<Vec<Vec<String>>, Vec<String>> {
    parse_all_with(CsvReader::new(bytes))
}

fn parse_all_with(mut reader: CsvReader<&[u8]>) -> Result<Vec<Vec<String>>, Vec<String>> {
    let mut records = Vec::new();
    let mut problems = Vec::new();
    loop {
        match reader.next_record() {
            Ok(Some(record)) => {
                let mut fields = Vec::new();
                for field in record.fields() {
                    match std::str::from_utf8(field) {
                        Ok(text) => fields.push(text.to_string()),
                        Err(_) => problems.push(format!("line {}: invalid UTF-8", record.line)),
                    }
                }
                records.push(fields);
            }
            Ok(None) => break,
            Err(ReadError::Io(err)) => {
                problems.push(err.to_string());
                break;
            }
            Err(ReadError::File(message)) => {
                problems.push(message);
                break;
            }
            Err(ReadError::Syntax(err)) => {
                problems.push(format!("line {}: {}", err.line, err.message))
            }
        }
    }
    if problems.is_empty() {
        Ok(records)
    } else {
        Err(problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(input: &str) -> Vec<Vec<String>> {
        parse_all(input.as_bytes()).unwrap_or_else(|e| panic!("{input:?}: {e:?}"))
    }

    fn lines_of(input: &[u8]) -> Vec<u64> {
        let mut reader = CsvReader::new(input);
        let mut lines = Vec::new();
        while let Ok(Some(record)) = reader.next_record() {
            lines.push(record.line);
        }
        lines
    }

    #[test]
    fn quoting_and_line_endings() {
        assert_eq!(ok("a,b\r\n1,2\n"), vec![vec!["a", "b"], vec!["1", "2"]]);
        assert_eq!(ok("a,\"x,\"\"y\"\"\n\"\n"), vec![vec!["a", "x,\"y\"\n"]]);
        assert_eq!(ok("a,b"), vec![vec!["a", "b"]]);
        assert_eq!(ok("a,\n"), vec![vec!["a", ""]]);
        assert_eq!(ok("\"\""), vec![vec![""]]);
        assert_eq!(ok("a, \"b\" ,c\n"), vec![vec!["a", "b", "c"]]);
        assert_eq!(ok("\n\r\na\n\n"), vec![vec!["a"]]);
    }

    #[test]
    fn line_numbers_are_where_records_start() {
        assert_eq!(lines_of(b"h\n\"a\nb\"\nc\n\n\nd"), vec![1, 2, 4, 7]);
        assert_eq!(lines_of(b"h\r\nx\r\n\r\ny"), vec![1, 2, 4]);
    }

    #[test]
    fn malformed_quoting_is_refused_with_its_line() {
        let err = parse_all(b"a\n\"open\nx\n").unwrap_err();
        assert_eq!(
            err,
            vec!["line 2: a quoted field is never closed (the file ends inside quotes)"]
        );
        let err = parse_all(b"a\nab\"c\nok\n").unwrap_err();
        assert!(err[0].starts_with("line 2: a quote character inside an unquoted field"));
        let err = parse_all(b"a\n\"x\"y\nz\n\"q\"r\n").unwrap_err();
        assert_eq!(err.len(), 2, "both problems reported: {err:?}");
        assert!(err[1].starts_with("line 4: text after the closing quote"));
        assert!(parse_all(b"a\rb\r").is_err(), "bare CR refused");
        assert!(parse_all(b"\xff\xfea\x00").is_err(), "UTF-16 refused");
    }

    #[test]
    fn bom_is_stripped() {
        assert_eq!(ok("\u{feff}id,name\n1,x\n")[0][0], "id");
    }

    #[test]
    fn a_long_record_is_refused_not_buffered() {
        let mut input = b"a\n\"".to_vec();
        input.extend(std::iter::repeat_n(b'x', RECORD_BYTES_MAX + 10));
        assert!(parse_all(&input).is_err());
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]
        #[test]
        fn fast_and_strict_routes_agree(input in proptest::collection::vec(
            proptest::sample::select(vec![b'a', b'b', b',', b'"', b'\n', b'\r', b' ', 0xC3, 0xA9]), 0..120)) {
            let fast = parse_all(&input);
            let mut strict_reader = CsvReader::new(input.as_slice());
            strict_reader.simple_lines = false;
            let strict = parse_all_with(strict_reader);
            proptest::prop_assert_eq!(fast, strict);
            let lines = |simple: bool| {
                let mut reader = CsvReader::new(input.as_slice());
                reader.simple_lines = simple;
                let mut lines = Vec::new();
                loop {
                    match reader.next_record() {
                        Ok(Some(record)) => lines.push(record.line),
                        Ok(None) => break,
                        Err(ReadError::Syntax(err)) => lines.push(1_000_000 + err.line),
                        Err(_) => break,
                    }
                }
                lines
            };
            proptest::prop_assert_eq!(lines(true), lines(false));
        }
    }
}
