//! Third-party CSV corpora (../shared/conformance, see its README).
//!
//! - csv-spectrum and csvw: the CSV layer (`input::csv::parse_all`, before our
//!   trimming and column rules) yields exactly the expected records; the
//!   inputs our stricter RFC 4180 rules refuse are listed in `DELIBERATE`.
//! - robustness: every file given to `customers import` exits 2 with a
//!   message, never panics or hangs, and leaves the ledger unchanged.

mod common;

use common::*;
use quotaledger::input::csv::parse_all;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Inputs our reader refuses on purpose, and why.
const DELIBERATE: &[(&str, &str)] = &[(
    "csv-spectrum/csvs/location_coordinates.csv",
    "a quote character inside an unquoted field",
)];

type Record = BTreeMap<String, String>;

fn records_with_header(path: &Path) -> Vec<Record> {
    let bytes = std::fs::read(path).unwrap();
    let rows = parse_all(&bytes).unwrap_or_else(|e| panic!("{}: {e:?}", path.display()));
    let header = &rows[0];
    rows[1..]
        .iter()
        .map(|row| {
            assert_eq!(
                row.len(),
                header.len(),
                "{}: ragged row {row:?}",
                path.display()
            );
            header.iter().cloned().zip(row.iter().cloned()).collect()
        })
        .collect()
}

fn records_without_header(path: &Path) -> Vec<Record> {
    let bytes = std::fs::read(path).unwrap();
    let rows = parse_all(&bytes).unwrap();
    rows.iter()
        .map(|row| {
            row.iter()
                .enumerate()
                .map(|(i, value)| (format!("_col.{}", i + 1), value.clone()))
                .collect()
        })
        .collect()
}

/// Expected records: a JSON array of objects (csv-spectrum, csvw minimal)
/// or CSVW standard mode, where empty cells are omitted (read as "").
fn expected_records(json: &Value, keys: &[String]) -> Vec<Record> {
    let objects: Vec<&serde_json::Map<String, Value>> = match json {
        Value::Array(items) => items.iter().map(|i| i.as_object().unwrap()).collect(),
        Value::Object(root) => root["tables"][0]["row"]
            .as_array()
            .unwrap()
            .iter()
            .map(|row| row["describes"][0].as_object().unwrap())
            .collect(),
        other => panic!("unexpected JSON {other}"),
    };
    objects
        .into_iter()
        .map(|object| {
            keys.iter()
                .map(|key| {
                    let value = object.get(key).map_or("", |v| v.as_str().unwrap());
                    (key.clone(), value.to_string())
                })
                .collect()
        })
        .collect()
}

fn check_case(csv: &Path, json: &Path, has_header: bool) {
    let got = if has_header {
        records_with_header(csv)
    } else {
        records_without_header(csv)
    };
    let expected_json: Value = serde_json::from_slice(&std::fs::read(json).unwrap()).unwrap();
    let keys: Vec<String> = got
        .first()
        .map(|r| r.keys().cloned().collect())
        .unwrap_or_default();
    let expected = expected_records(&expected_json, &keys);
    assert_eq!(got, expected, "{} vs {}", csv.display(), json.display());
}

#[test]
fn csv_spectrum_parses_as_expected() {
    let base = conformance().join("csv-spectrum");
    let mut checked = 0;
    for entry in std::fs::read_dir(base.join("csvs")).unwrap() {
        let csv = entry.unwrap().path();
        let name = csv.file_stem().unwrap().to_str().unwrap().to_string();
        let relative = format!("csv-spectrum/csvs/{name}.csv");
        if let Some((_, why)) = DELIBERATE.iter().find(|(file, _)| *file == relative) {
            let problems = parse_all(&std::fs::read(&csv).unwrap()).unwrap_err();
            assert!(
                problems.iter().any(|p| p.contains(why)),
                "{relative}: {problems:?}"
            );
            continue;
        }
        check_case(&csv, &base.join("json").join(format!("{name}.json")), true);
        checked += 1;
    }
    assert_eq!(
        checked, 11,
        "every csv-spectrum case but the deliberate refusal"
    );
}

#[test]
fn csvw_cases_parse_as_expected() {
    let base = conformance().join("csvw");
    for number in [
        "001", "002", "003", "005", "006", "007", "008", "009", "010",
    ] {
        check_case(
            &base.join(format!("test{number}.csv")),
            &base.join(format!("test{number}.json")),
            true,
        );
    }
    check_case(&base.join("test019.csv"), &base.join("test019.json"), false);
    check_case(
        &base.join("countries.csv"),
        &base.join("test028.json"),
        true,
    );
    check_case(
        &base.join("countries.csv"),
        &base.join("test029.json"),
        true,
    );
}

#[test]
fn csvw_test003_spaces_are_kept_by_the_reader_and_trimmed_by_the_table_layer() {
    // The reader keeps them (above); our imports trim every field (SPEC §4),
    // a deliberate difference from CSVW.
    let rows = parse_all(&std::fs::read(conformance().join("csvw/test003.csv")).unwrap()).unwrap();
    assert!(
        rows.iter().flatten().any(|v| v != v.trim()),
        "test003 has padded cells"
    );
}

#[test]
fn csvw_test091_ragged_rows_are_refused_by_an_import() {
    let (_dir, db) = new_ledger();
    let before = digest(&db);
    let ragged = conformance().join("csvw/test091.csv");
    let (code, _, stderr) = run(&db, &["customers", "import", ragged.to_str().unwrap()]);
    assert_eq!(code, 2, "{stderr}");
    assert_eq!(digest(&db), before);
    // Ragged rows are refused by the table layer too, with their lines,
    // once the header is one we know: rewrite it with customer columns.
    let dir = tempfile::tempdir().unwrap();
    let text = "customer_id,name,country,status,effective_date,reference\n\
                C1,Name,CN,approved,2026-01-01,ref\nC2,Name\nC3\n";
    let file = write_file(dir.path(), "ragged.csv", text);
    let (code, _, stderr) = run(&db, &["customers", "import", file.to_str().unwrap()]);
    assert_eq!(code, 2);
    let label = file.display().to_string();
    assert!(
        stderr.contains(&format!(
            "{label}:3: row: has 2 fields but the header has 6"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "{label}:4: row: has 1 fields but the header has 6"
        )),
        "{stderr}"
    );
    assert_eq!(
        digest(&db),
        before,
        "atomic: the good row 2 was not written either"
    );
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files_under(&path, out);
        } else {
            out.push(path);
        }
    }
}

#[test]
fn robustness_corpus_through_customers_import() {
    let (_dir, db) = new_ledger();
    let before = digest(&db);
    let mut files = Vec::new();
    files_under(&conformance().join("robustness"), &mut files);
    files.sort();
    assert!(files.len() > 250, "the whole corpus: {}", files.len());
    for file in &files {
        let output = qledger(&db, &["customers", "import", file.to_str().unwrap()])
            .timeout(Duration::from_secs(30))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(
            output.status.code(),
            Some(2),
            "{}: {stderr}",
            file.display()
        );
        assert!(!stderr.contains("panicked"), "{}: {stderr}", file.display());
        assert!(!stderr.trim().is_empty(), "{}: no message", file.display());
    }
    assert_eq!(digest(&db), before, "nothing was written");
    let (code, _, _) = run(&db, &["verify"]);
    assert_eq!(code, 0);
}

#[test]
fn robustness_corpus_parses_without_panic_at_the_csv_layer() {
    let mut files = Vec::new();
    files_under(&conformance().join("robustness"), &mut files);
    files_under(&conformance().join("inputs-only"), &mut files);
    for file in files {
        let bytes = std::fs::read(&file).unwrap();
        let _ = parse_all(&bytes); // Ok or Err; never a panic
    }
}

#[test]
fn robustness_corpus_under_a_valid_header_never_panics_or_half_writes() {
    // The header-level refusal above stops at line 1; this puts every
    // corpus file under a valid customers header so the row parser sees it.
    let (dir, db) = new_ledger();
    let mut files = Vec::new();
    files_under(&conformance().join("robustness"), &mut files);
    files.sort();
    let header = b"customer_id,name,country,status,effective_date,reference\n";
    let wrapped = dir.path().join("wrapped.csv");
    for file in &files {
        let before = digest(&db);
        let mut bytes = header.to_vec();
        bytes.extend(std::fs::read(file).unwrap());
        std::fs::write(&wrapped, &bytes).unwrap();
        let output = qledger(&db, &["customers", "import", wrapped.to_str().unwrap()])
            .timeout(Duration::from_secs(30))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        let code = output.status.code();
        assert!(
            matches!(code, Some(0) | Some(2)),
            "{}: {code:?} {stderr}",
            file.display()
        );
        assert!(!stderr.contains("panicked"), "{}: {stderr}", file.display());
        if code == Some(2) {
            assert_eq!(digest(&db), before, "{}: refused but wrote", file.display());
            assert!(
                stderr.contains("wrapped.csv:"),
                "{}: {stderr}",
                file.display()
            );
        }
    }
    let (code, _, _) = run(&db, &["verify"]);
    assert_eq!(code, 0);
}

#[test]
fn robustness_corpus_through_the_sales_import() {
    let (dir, db) = new_ledger();
    let before = digest(&db);
    let mut files = Vec::new();
    files_under(&conformance().join("robustness"), &mut files);
    files.sort();
    let header = b"record_id,sale_date,chip,market,customer_id,units,unit_price_usd\n";
    let wrapped = dir.path().join("wrapped.csv");
    for file in &files {
        // As given (header problems), and under a valid sales header (row problems).
        let mut bytes = header.to_vec();
        bytes.extend(std::fs::read(file).unwrap());
        std::fs::write(&wrapped, &bytes).unwrap();
        for (input, label) in [
            (file.as_path(), "as given"),
            (wrapped.as_path(), "under a header"),
        ] {
            let output = qledger(&db, &["import", input.to_str().unwrap()])
                .timeout(Duration::from_secs(30))
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&output.stderr);
            let code = output.status.code();
            assert!(
                !stderr.contains("panicked"),
                "{} {label}: {stderr}",
                file.display()
            );
            if label == "as given" {
                assert_eq!(code, Some(2), "{} {label}: {stderr}", file.display());
                assert!(!stderr.trim().is_empty());
            } else {
                // An empty corpus file leaves a header-only file: exit 0, nothing written.
                assert!(
                    matches!(code, Some(0) | Some(2)),
                    "{} {label}: {code:?} {stderr}",
                    file.display()
                );
            }
            assert_eq!(
                digest(&db),
                before,
                "{} {label}: the ledger changed",
                file.display()
            );
        }
    }
    let (code, _, _) = run(&db, &["verify"]);
    assert_eq!(code, 0);
}
