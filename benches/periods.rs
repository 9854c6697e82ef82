//! Period benchmark (issue 5). Run: `cargo bench --bench periods` after
//! `cargo bench --bench import` (which builds the 10M-entry ledger;
//! QLEDGER_BENCH_LEDGER overrides its path). The ledger is copied first.
//!
//! 1. `qledger report` (JSON) on the ledger, through the CLI and in-process,
//!    next to `sqlite3 LEDGER 'select 1 ...'` measured in the same run.
//! 2. The schema check every writing command and `report` make first.
//! 3. `qledger close` of 2026-Q1, which holds all of its millions of sales.
//! 4. `report --format html` against `--format json`, `qledger history`
//!    over 8 quarters, and `qledger export --format
//!    jsonl` of the whole ledger (entries/s, peak RSS).
//! 5. `qledger verify` (every rule replayed) and `qledger checkpoint` after
//!    it, alternating: entries/s, and what the checkpoint adds.

use quotaledger::period::{parse_date, Period, PeriodKind};
use quotaledger::store::ledger::Ledger;
mod common;

use common::{ms, percentile};
use std::process::{Command, Stdio};
use std::time::Instant;

fn main() {
    let db = common::ledger_copy("periods.sqlite");
    let qledger = |args: &[&str]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_qledger"));
        command
            .arg("--db")
            .arg(&db)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        command
    };
    let entries = Command::new(env!("CARGO_BIN_EXE_qledger"))
        .arg("--db")
        .arg(&db)
        .arg("digest")
        .output()
        .unwrap();
    println!(
        "period benchmark on {} entries",
        String::from_utf8_lossy(&entries.stdout)
            .trim()
            .split(':')
            .next()
            .unwrap_or("?")
    );

    let (mut cli, mut baseline) = (Vec::new(), Vec::new());
    for _ in 0..50 {
        let started = Instant::now();
        assert!(qledger(&[
            "--as-of",
            "2026-06-30",
            "--json",
            "report",
            "--period",
            "2026-Q1"
        ])
        .status()
        .unwrap()
        .success());
        cli.push(started.elapsed());
        let started = Instant::now();
        assert!(Command::new("sqlite3")
            .arg(&db)
            .arg("select 1 from ledger_settings limit 1")
            .stdout(Stdio::null())
            .status()
            .unwrap()
            .success());
        baseline.push(started.elapsed());
    }
    let ledger = Ledger::open(&db).unwrap();
    let period = Period::parse(PeriodKind::Quarter, "2026-Q1").unwrap();
    let as_of = parse_date("2026-06-30").unwrap();
    let mut in_process = Vec::new();
    for _ in 0..200 {
        let started = Instant::now();
        let report = quotaledger::report::report(&ledger, period, as_of).unwrap();
        in_process.push(started.elapsed());
        assert!(!report.chips.is_empty());
    }
    // The schema check every command that writes, and report, makes first
    // (SPEC §3.15 item 2), in a fresh connection as a process has it.
    let mut schema_checks = Vec::new();
    for _ in 0..200 {
        let conn = rusqlite::Connection::open(&db).unwrap();
        // As in a command: the connection has read the ledger (its settings)
        // already, so SQLite has parsed the schema before the check.
        let _: i64 = conn
            .query_row("SELECT seq FROM ledger_settings LIMIT 1", [], |row| {
                row.get(0)
            })
            .unwrap();
        let started = Instant::now();
        assert_eq!(
            quotaledger::store::schema::first_difference(&conn).unwrap(),
            None
        );
        schema_checks.push(started.elapsed());
    }
    println!(
        "schema check in a fresh connection: p50 {:.3} ms, p99 {:.3} ms (goal <= 0.3 ms)",
        ms(percentile(&mut schema_checks, 0.5)),
        ms(percentile(&mut schema_checks, 0.99))
    );
    drop(ledger);
    println!(
        "report 2026-Q1: CLI p50 {:.1} ms p99 {:.1} ms (sqlite3 select 1: p50 {:.1} ms); in-process p50 {:.1} ms p99 {:.1} ms (goal <= 100 ms)",
        ms(percentile(&mut cli, 0.5)),
        ms(percentile(&mut cli, 0.99)),
        ms(percentile(&mut baseline, 0.5)),
        ms(percentile(&mut in_process, 0.5)),
        ms(percentile(&mut in_process, 0.99))
    );
    let started = Instant::now();
    assert!(
        qledger(&["--as-of", "2026-04-01", "close", "--period", "2026-Q1"])
            .status()
            .unwrap()
            .success()
    );
    println!(
        "close 2026-Q1 (all of the ledger's sales are in it): {:.1} ms (goal <= 1000 ms)",
        ms(started.elapsed())
    );
    // report --format html vs --format json, alternating (issue 16): goal
    // html <= 3x json.
    let (mut json_runs, mut html_runs) = (Vec::new(), Vec::new());
    for _ in 0..10 {
        for (format, runs) in [("json", &mut json_runs), ("html", &mut html_runs)] {
            let started = Instant::now();
            assert!(qledger(&[
                "--as-of",
                "2026-04-01",
                "report",
                "--period",
                "2026-Q1",
                "--format",
                format
            ])
            .status()
            .unwrap()
            .success());
            runs.push(started.elapsed());
        }
    }
    let (json_p50, html_p50) = (
        ms(percentile(&mut json_runs, 0.5)),
        ms(percentile(&mut html_runs, 0.5)),
    );
    println!(
        "report 2026-Q1 through the CLI: json p50 {json_p50:.1} ms, html p50 {html_p50:.1} ms, ratio {:.2} (goal <= 3)",
        html_p50 / json_p50
    );
    // history over 8 quarters (issue 16): goal <= 100 ms.
    let mut history = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        assert!(qledger(&[
            "--as-of",
            "2026-04-01",
            "--json",
            "history",
            "--from",
            "2025-Q2",
            "--to",
            "2027-Q1"
        ])
        .status()
        .unwrap()
        .success());
        history.push(started.elapsed());
    }
    println!(
        "history over 8 quarters (JSON, CLI): p50 {:.1} ms (goal <= 100 ms)",
        ms(percentile(&mut history, 0.5))
    );
    // export --format jsonl of the whole ledger (issue 16): entries/s and
    // peak RSS (goal >= 500k entries/s, < 64 MiB).
    let started = Instant::now();
    let exported = Command::new("/usr/bin/time")
        .args(["-f", "%M"])
        .arg(env!("CARGO_BIN_EXE_qledger"))
        .arg("--db")
        .arg(&db)
        .args(["export", "--format", "jsonl"])
        .stdout(Stdio::null())
        .output()
        .unwrap();
    let export_seconds = started.elapsed().as_secs_f64();
    let rss_kib: u64 = String::from_utf8_lossy(&exported.stderr)
        .lines()
        .last()
        .and_then(|line| line.trim().parse().ok())
        .unwrap_or(0);
    let total: f64 = String::from_utf8_lossy(&entries.stdout)
        .trim()
        .split(':')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0.0);
    println!(
        "export --format jsonl of every entry: {export_seconds:.2} s, {:.0}k entries/s (goal >= 500k), peak RSS {} MiB (goal < 64 MiB)",
        total / export_seconds / 1000.0,
        rss_kib / 1024
    );
    // verify (every rule replayed, sealed figures included) vs checkpoint
    // (verify, then a signature), alternating, twice each (issue 13).
    let key = db.with_file_name("periods-bench.key");
    let _ = std::fs::remove_file(&key);
    assert!(qledger(&["keygen", "--out", key.to_str().unwrap()])
        .status()
        .unwrap()
        .success());
    let (mut verifies, mut checkpoints) = (Vec::new(), Vec::new());
    for _ in 0..2 {
        let started = Instant::now();
        assert!(qledger(&["verify"]).status().unwrap().success());
        verifies.push(started.elapsed().as_secs_f64());
        let started = Instant::now();
        assert!(qledger(&["checkpoint", "--key", key.to_str().unwrap()])
            .status()
            .unwrap()
            .success());
        checkpoints.push(started.elapsed().as_secs_f64());
    }
    let verify_min = verifies.iter().copied().fold(f64::MAX, f64::min);
    let checkpoint_min = checkpoints.iter().copied().fold(f64::MAX, f64::min);
    let entries_count: f64 = String::from_utf8_lossy(&entries.stdout)
        .trim()
        .split(':')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0.0);
    println!(
        "verify after the close (every rule replayed, sealed figures included): min {verify_min:.2} s, \
         {:.2}M entries/s (goal >= 1M/s); checkpoint min {checkpoint_min:.2} s, {:+.1}% over verify (goal < 10%)",
        entries_count / verify_min / 1e6,
        (checkpoint_min / verify_min - 1.0) * 100.0
    );
}
