//! Order-desk benchmark (issue 4). Run: `cargo bench --bench desk`.
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
//!    machine's own tail for a short process); then 4 concurrent
//!    reservers: p99.9.

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

const AS_OF: &str = "2026-03-01";

fn qledger(db: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_qledger"));
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
        "CLI check: p50 {:.2} ms, p99 {:.2} ms; sqlite3 select 1: p50 {:.2} ms, p99 {:.2} ms; ratio of medians {:.2} (goal <= 1.5)",
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

    // 3. Reserve through the CLI, one at a time, then 4 at once.
    let reserve = |db: &Path, order: &str| {
        timed(qledger(db).args([
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
            "2026-03-15",
            "--customer",
            "CUST-002",
            "--lot",
            "LOT-H200-002",
            "--ttl-days",
            "1",
        ]))
    };
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
        "CLI reserve (synchronous=FULL), {reserves} in a row: p50 {:.2} ms, p99 {:.2} ms (goal p99 <= 5 ms); \
         sqlite3 -readonly select 1 in blocks between: p50 {:.2} ms, p99 {:.2} ms; reserve / select 1: p50 {:.2}, p99 {:.2}",
        ms(p50),
        ms(p99),
        ms(base_p50),
        ms(base_p99),
        p50.as_secs_f64() / base_p50.as_secs_f64(),
        p99.as_secs_f64() / base_p99.as_secs_f64()
    );
    let concurrent: Vec<Duration> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..4)
            .map(|worker| {
                let db = db.clone();
                scope.spawn(move || {
                    (0..250)
                        .map(|index| {
                            let (elapsed, code) = reserve(&db, &format!("CON-{worker}-{index}"));
                            assert_eq!(code, 0);
                            elapsed
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect()
    });
    let mut concurrent = concurrent;
    println!(
        "CLI reserve, 4 concurrent: p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms (goal p99.9 <= 50 ms)",
        ms(percentile(&mut concurrent, 0.5)),
        ms(percentile(&mut concurrent, 0.99)),
        ms(percentile(&mut concurrent, 0.999))
    );
}
