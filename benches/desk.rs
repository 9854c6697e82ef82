//! Order-desk benchmark (issues 4 and 10). Run: `cargo bench --bench desk`.
//! Needs a ledger of about 10M entries: QLEDGER_BENCH_LEDGER (default
//! target/bench/big.sqlite, which `cargo bench --bench import` builds). It
//! is copied first, since reserve appends holds.
//!
//! 1. `qledger check` through the CLI vs `sqlite3 LEDGER 'select 1 from
//!    ledger_settings limit 1'`, alternating, in the same run.
//! 2. `desk::check` in-process: p50, p99.
//! 3. `qledger reserve` through the CLI (synchronous=FULL): p50, p99 of
//!    `QLEDGER_BENCH_RESERVES` (default 1000) in a row, in blocks of 200
//!    with as many read-only `sqlite3 … select 1` runs between them (the
//!    machine's own tail for a short process); goal p99 <= 3x its p99.
//! 4. 8 concurrent CLI reservers while nightly imports of 20,000 rows run
//!    one after another on the same file: p99.9 of a reserve (goal
//!    <= 200 ms with SQLite's busy handler alone, no writer queue).

use quotaledger::desk::{self, Request};
use quotaledger::period::parse_date;
use quotaledger::store::ledger::Ledger;
mod common;

use common::{ms, percentile};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn timed(command: &mut Command) -> (Duration, i32) {
    let started = Instant::now();
    let status = command
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("runs");
    (started.elapsed(), status.code().unwrap_or(-1))
}

const AS_OF: &str = "2026-03-31";

fn qledger(db: &Path) -> Command {
    qledger_of(Path::new(env!("CARGO_BIN_EXE_qledger")), db)
}

fn qledger_of(bin: &Path, db: &Path) -> Command {
    let mut command = Command::new(bin);
    command.arg("--db").arg(db).arg("--as-of").arg(AS_OF);
    command
}

const CHECK: &[&str] = &[
    "check",
    "--chip",
    "H200",
    "--market",
    "CN",
    "--units",
    "10",
    "--date",
    "2026-03-15",
    "--customer",
    "CUST-001",
    "--lot",
    "LOT-H200-001",
];

fn main() {
    if std::env::var("QLEDGER_BENCH_ONLY").is_ok_and(|only| only == "concurrent") {
        concurrent_rounds();
        return;
    }
    let db = common::ledger_copy("desk.sqlite");
    let entries = Command::new(env!("CARGO_BIN_EXE_qledger"))
        .arg("--db")
        .arg(&db)
        .arg("digest")
        .output()
        .unwrap();
    println!(
        "order desk benchmark on {} ({})",
        db.display(),
        String::from_utf8_lossy(&entries.stdout)
            .trim()
            .split(':')
            .next()
            .unwrap_or("?")
            .to_owned()
            + " entries"
    );

    // 1. CLI check vs sqlite3.
    let rounds = 300;
    let (mut ours, mut baseline) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let (elapsed, code) = timed(qledger(&db).args(CHECK));
        assert_eq!(code, 0, "check refused");
        ours.push(elapsed);
        let (elapsed, code) = timed(
            Command::new("sqlite3")
                .arg(&db)
                .arg("select 1 from ledger_settings limit 1"),
        );
        assert_eq!(code, 0);
        baseline.push(elapsed);
    }
    let (ours_p50, base_p50) = (percentile(&mut ours, 0.5), percentile(&mut baseline, 0.5));
    println!(
        "CLI check: p50 {:.2} ms, p99 {:.2} ms; sqlite3 select 1: p50 {:.2} ms, p99 {:.2} ms; ratio of medians {:.2} (goal <= 2)",
        ms(ours_p50), ms(percentile(&mut ours, 0.99)), ms(base_p50), ms(percentile(&mut baseline, 0.99)),
        ours_p50.as_secs_f64() / base_p50.as_secs_f64()
    );

    // 2. In-process check.
    let ledger = Ledger::open(&db).unwrap();
    let request = Request {
        chip: "H200".into(),
        market: "CN".into(),
        units: 10,
        date: parse_date("2026-03-15").unwrap(),
        customer_id: Some("CUST-001".into()),
        lot_id: Some("LOT-H200-001".into()),
    };
    let as_of = parse_date(AS_OF).unwrap();
    let mut samples = Vec::with_capacity(20_000);
    for _ in 0..20_000 {
        let started = Instant::now();
        let answer = desk::check(&ledger, &request, as_of).unwrap();
        samples.push(started.elapsed());
        assert!(answer.allowed);
    }
    println!(
        "in-process check, cold (every fact read per call): p50 {:.1} us, p99 {:.1} us",
        percentile(&mut samples, 0.5).as_secs_f64() * 1e6,
        percentile(&mut samples, 0.99).as_secs_f64() * 1e6
    );
    let mut long_lived = desk::Desk::new(Ledger::open(&db).unwrap());
    let mut samples = Vec::with_capacity(20_000);
    for _ in 0..20_000 {
        let started = Instant::now();
        let answer = long_lived.check(&request, as_of).unwrap();
        samples.push(started.elapsed());
        assert!(answer.allowed);
    }
    println!(
        "in-process check, long-lived desk::Desk (facts kept until the ledger changes): p50 {:.1} us, p99 {:.1} us (goal p99 <= 50 us)",
        percentile(&mut samples, 0.5).as_secs_f64() * 1e6,
        percentile(&mut samples, 0.99).as_secs_f64() * 1e6
    );
    drop(long_lived);
    drop(ledger);

    // 3. Reserve through the CLI, one at a time.
    let reserve = |db: &Path, order: &str| timed(qledger(db).args(reserve_args(order)));

    // Reserves in a row, in blocks of 200, each block followed by 200
    // read-only `sqlite3 … select 1` runs on the same file: the tail this
    // machine gives any short process, measured in the same minutes
    // (read-only, so they never checkpoint or remove the WAL the reserves
    // leave for each other). Not one after each reserve: another program
    // between two reserves measurably slows the second (here 0.25 ms at
    // p50, 0.7 ms at p99: caches), and the goal is for reserves in a row.
    let reserves: usize = std::env::var("QLEDGER_BENCH_RESERVES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let (mut sequential, mut baseline) = (Vec::new(), Vec::new());
    for index in 0..reserves {
        let (elapsed, code) = reserve(&db, &format!("SEQ-{index}"));
        assert_eq!(code, 0);
        sequential.push(elapsed);
        if sequential.len() % 200 == 0 || index + 1 == reserves {
            while baseline.len() < sequential.len() {
                let (elapsed, code) = timed(
                    Command::new("sqlite3")
                        .arg("-readonly")
                        .arg(&db)
                        .arg("select 1 from ledger_settings limit 1"),
                );
                assert_eq!(code, 0);
                baseline.push(elapsed);
            }
        }
    }
    let (p50, p99) = (
        percentile(&mut sequential, 0.5),
        percentile(&mut sequential, 0.99),
    );
    let (base_p50, base_p99) = (
        percentile(&mut baseline, 0.5),
        percentile(&mut baseline, 0.99),
    );
    println!(
        "CLI reserve (synchronous=FULL), {reserves} in a row: p50 {:.2} ms, p99 {:.2} ms; \
         sqlite3 -readonly select 1 in blocks between: p50 {:.2} ms, p99 {:.2} ms; reserve / select 1: p50 {:.2}, p99 {:.2} (goal p99 <= 3)",
        ms(p50),
        ms(p99),
        ms(base_p50),
        ms(base_p99),
        p50.as_secs_f64() / base_p50.as_secs_f64(),
        p99.as_secs_f64() / base_p99.as_secs_f64()
    );
    concurrent_rounds();
}

/// Step 4: concurrent reservers beside imports, on fresh copies of the ledger;
/// with QLEDGER_BENCH_BASELINE_BIN (say the previous build, with its
/// writer queue) the same scenario alternates with that binary.
fn concurrent_rounds() {
    let ours = Path::new(env!("CARGO_BIN_EXE_qledger"));
    let baseline = std::env::var_os("QLEDGER_BENCH_BASELINE_BIN").map(std::path::PathBuf::from);
    for round in 0..2 {
        concurrent_reservers_beside_imports(ours, "this build", round);
        if let Some(baseline) = &baseline {
            concurrent_reservers_beside_imports(baseline, "baseline", round);
        }
    }
}

fn reserve_args(order: &str) -> [&str; 17] {
    [
        "reserve",
        "--order",
        order,
        "--chip",
        "H200",
        "--market",
        "CN",
        "--units",
        "1",
        "--date",
        "2026-03-31",
        "--customer",
        "CUST-002",
        "--lot",
        "LOT-H200-002",
        "--ttl-days",
        "1",
    ]
}

/// 8 reservers, 125 reserves each, while imports of 20,000 US rows run one
/// after another on the same ledger (files written beforehand) until the
/// reservers are done: the import holds the write lock most of the time.
fn concurrent_reservers_beside_imports(bin: &Path, label: &str, round: usize) {
    let db = common::ledger_copy("desk-concurrent.sqlite");
    let dir = db.parent().expect("a directory").to_path_buf();
    let files: Vec<std::path::PathBuf> = (0..200)
        .map(|index| {
            let file = dir.join(format!("desk-import-{index}.csv"));
            write_us_rows(&file, index, 20_000);
            file
        })
        .collect();
    let done = std::sync::atomic::AtomicBool::new(false);
    let (mut concurrent, mut imports) = std::thread::scope(|scope| {
        let importer = scope.spawn(|| {
            let mut imports = Vec::new();
            for file in &files {
                if done.load(std::sync::atomic::Ordering::Relaxed) {
                    break;
                }
                let (elapsed, code) = timed(qledger_of(bin, &db).arg("import").arg(file));
                assert_eq!(code, 0, "import failed");
                imports.push(elapsed);
            }
            imports
        });
        let workers: Vec<_> = (0..8)
            .map(|worker| {
                let db = &db;
                scope.spawn(move || {
                    (0..125)
                        .map(|index| {
                            let order = format!("CON-{worker}-{index}");
                            let (elapsed, code) =
                                timed(qledger_of(bin, db).args(reserve_args(&order)));
                            assert_eq!(code, 0);
                            elapsed
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let samples: Vec<Duration> = workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect();
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        (samples, importer.join().unwrap())
    });
    for file in files {
        let _ = std::fs::remove_file(file);
    }
    println!(
        "CLI reserve, 8 concurrent beside {} imports of 20000 rows ({label}, round {round}; import p50 {:.0} ms): \
         p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms (goal p99.9 <= 200 ms)",
        imports.len(),
        ms(percentile(&mut imports, 0.5)),
        ms(percentile(&mut concurrent, 0.5)),
        ms(percentile(&mut concurrent, 0.99)),
        ms(percentile(&mut concurrent, 0.999)),
        ms(percentile(&mut concurrent, 1.0))
    );
}

/// A sales file of `rows` US sales dated in the benchmark's quarter, with
/// record ids of round `round`.
fn write_us_rows(file: &Path, round: usize, rows: usize) {
    use std::io::Write;
    let mut out = std::io::BufWriter::new(std::fs::File::create(file).unwrap());
    out.write_all(quotaledger::synthetic::SALES_HEADER.as_bytes())
        .unwrap();
    for index in 0..rows {
        writeln!(
            out,
            "DESK-{round}-{index},2026-02-{:02},H200,US,,{},31000.00,,,sale,",
            1 + index % 28,
            1 + index % 50
        )
        .unwrap();
    }
    out.flush().unwrap();
}
