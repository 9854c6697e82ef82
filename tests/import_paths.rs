//! The fast path is an optimisation of the careful path: on the files it
//! accepts, both must write exactly the same entries (same digest) and the
//! same derived totals.

mod common;

use common::*;
use quotaledger::input::kept_rows::KEPT_BYTES_MAX;
use quotaledger::input::sales_import::{import_sales, SalesImportOptions};
use quotaledger::period::parse_date;
use quotaledger::store::ledger::Ledger;
use quotaledger::synthetic::{customers_csv, lots_csv, policy_csv, write_sales, SalesSpec};
use std::path::Path;

fn synthetic_ledger(dir: &Path, name: &str) -> std::path::PathBuf {
    let db = dir.join(name);
    let (code, _, stderr) = run(&db, &["init"]);
    assert_eq!(code, 0, "{stderr}");
    for (command, text) in [
        ("policy", policy_csv()),
        ("customers", customers_csv()),
        ("lots", lots_csv()),
    ] {
        let file = write_file(dir, &format!("{command}.csv"), &text);
        let (code, _, stderr) = run(&db, &[command, "import", file.to_str().unwrap()]);
        assert_eq!(code, 0, "{stderr}");
    }
    db
}

fn derived(db: &Path) -> Vec<String> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut rows = Vec::new();
    for sql in [
        "SELECT chip || day || us_net_units || '/' || restricted_net_units || '/' || other_net_units FROM derived_daily_units ORDER BY chip, day",
        "SELECT lot_id || '=' || shipped_net_units FROM derived_lot_units ORDER BY lot_id",
    ] {
        let mut statement = conn.prepare(sql).unwrap();
        rows.extend(statement.query_map([], |r| r.get::<_, String>(0)).unwrap().map(Result::unwrap));
    }
    rows
}

/// How the import is asked to run.
#[derive(Clone, Copy)]
enum Way {
    /// The fast path where it can, keeping restricted rows between passes.
    Fast,
    /// The fast path, keeping no row: its pass 2 reads the file again.
    FastReadTwice,
    /// The careful path only.
    Careful,
}

fn import_way(db: &Path, file: &Path, way: Way, accept: Option<&str>) -> &'static str {
    let mut ledger = Ledger::open(db).unwrap();
    let options = SalesImportOptions {
        as_of: parse_date(AS_OF).unwrap(),
        dry_run: false,
        partial: false,
        accept_reason: accept.map(str::to_string),
        careful_only: matches!(way, Way::Careful),
        kept_bytes_max: match way {
            Way::FastReadTwice => 0,
            _ => KEPT_BYTES_MAX,
        },
        late_reason: None,
        rejects_path: None,
    };
    let label = file.display().to_string();
    let outcome = import_sales(&mut ledger, file, &label, &options, None).unwrap();
    assert!(
        outcome.summary.errors.is_empty(),
        "{:?}",
        outcome.summary.errors
    );
    assert!(outcome.committed);
    outcome.path_taken
}

#[test]
fn fast_and_careful_paths_write_the_same_ledger() {
    let dir = tempfile::tempdir().unwrap();
    let ways = [
        (Way::Fast, "fast"),
        (Way::FastReadTwice, "fast"),
        (Way::Careful, "careful"),
    ];
    let ledgers: Vec<_> = (0..ways.len())
        .map(|index| synthetic_ledger(dir.path(), &format!("way-{index}.sqlite")))
        .collect();
    let import_all = |file: &Path, accept: Option<&str>| {
        for ((way, path_taken), db) in ways.iter().zip(&ledgers) {
            assert_eq!(import_way(db, file, *way, accept), *path_taken);
        }
        for db in &ledgers[1..] {
            assert_eq!(content(&ledgers[0]), content(db), "{}", file.display());
            assert_eq!(derived(&ledgers[0]), derived(db), "{}", file.display());
        }
    };
    // Two nightly files with returns (of sales in the same file and of the
    // previous file), then a file recorded with accepted violations.
    for (index, seed) in [(0u64, 5u64), (1, 6)] {
        let file = dir.path().join(format!("night-{index}.csv"));
        let spec = SalesSpec {
            rows: 20_000,
            seed,
            record_prefix: format!("N{index}-"),
            first_day: chrono::NaiveDate::from_ymd_opt(2026, 4, 1).unwrap(),
            days: 60,
            shuffle_dates: index == 1,
        };
        write_sales(&spec, &mut std::fs::File::create(&file).unwrap()).unwrap();
        import_all(&file, None);
    }
    let first_us = {
        let conn = rusqlite::Connection::open(&ledgers[0]).unwrap();
        conn.query_row(
            "SELECT record_id FROM sale WHERE market = 'US' AND kind = 'sale' ORDER BY seq LIMIT 1",
            [],
            |r| r.get::<_, String>(0),
        )
        .unwrap()
    };
    // A return before the US sale it names, both in this file; a return of
    // a sale recorded by an earlier file; an accepted violation.
    let cross = write_file(
        dir.path(),
        "cross.csv",
        &format!(
            "record_id,sale_date,chip,market,customer_id,units,unit_price_usd,lot_id,order_ref,kind,reverses\n\
             XR-2,2026-06-02,H200,US,,2,,,,return,XU-1\n\
             XR-1,2026-06-01,H200,US,,1,,,,return,{first_us}\n\
             V-1,2024-12-31,H20,CN,CUST-001,3,100,,,sale,\n\
             XU-1,2026-06-01,H200,US,,5,10,,,sale,\n"
        ),
    );
    import_all(&cross, Some("test"));
    for db in &ledgers {
        let (code, _, stderr) = run(db, &["verify"]);
        assert_eq!(code, 0, "{stderr}");
    }
}

#[test]
fn anomalies_send_the_import_down_the_careful_path_with_the_same_answer() {
    let dir = tempfile::tempdir().unwrap();
    let db = synthetic_ledger(dir.path(), "l.sqlite");
    let file = write_file(
        dir.path(),
        "a.csv",
        "record_id,sale_date,chip,market,customer_id,units,unit_price_usd,lot_id,order_ref,kind,reverses\n\
         U-1,2026-04-01,H200,US,,100,10,,,,\nU-1,2026-04-01,H200,US,,100,10,,,,\n",
    );
    // A duplicate within the file: the fast path hits UNIQUE and gives way.
    assert_eq!(import_way(&db, &file, Way::Fast, None), "careful");
    let (code, summary, _) = run_json(&db, &["import", file.to_str().unwrap()]);
    assert_eq!(code, 0);
    assert_eq!(
        summary["duplicates"], 2,
        "both rows are now recorded duplicates"
    );
}
