//! Crash safety: SIGKILL a real importing process at random moments, many
//! times. Each time the ledger must be either unchanged or hold the whole
//! file, `verify` must pass, and re-running the import must complete.
//! `QLEDGER_CRASH_ITERATIONS` raises the count (scripts/crash-soak.sh).

mod common;

use common::*;
use quotaledger::synthetic::{
    customers_csv, lots_csv, policy_csv, write_sales, SalesSpec, SplitMix64,
};
use std::path::Path;
use std::time::{Duration, Instant};

fn copy_ledger(from: &Path, to: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", to.display()));
    }
    std::fs::copy(from, to).unwrap();
}

#[test]
fn sigkill_during_import_leaves_the_ledger_unchanged_or_complete() {
    let iterations: usize = std::env::var("QLEDGER_CRASH_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    let (dir, base) = new_ledger();
    for (command, text) in [
        ("policy", policy_csv()),
        ("customers", customers_csv()),
        ("lots", lots_csv()),
    ] {
        let file = write_file(dir.path(), &format!("{command}.csv"), &text);
        let (code, _, stderr) = run(&base, &[command, "import", file.to_str().unwrap()]);
        assert_eq!(code, 0, "{stderr}");
    }
    let sales = dir.path().join("sales.csv");
    let spec = SalesSpec {
        rows: 8_000,
        seed: 11,
        record_prefix: "K".into(),
        first_day: chrono::NaiveDate::from_ymd_opt(2026, 4, 1).unwrap(),
        days: 80,
        shuffle_dates: false,
    };
    write_sales(&spec, &mut std::fs::File::create(&sales).unwrap()).unwrap();
    let before = digest(&base);

    // The reference: the whole file imported without interruption.
    let complete = dir.path().join("complete.sqlite");
    copy_ledger(&base, &complete);
    let started = Instant::now();
    let (code, _, stderr) = run(&complete, &["import", sales.to_str().unwrap()]);
    let full_time = started.elapsed();
    assert_eq!(code, 0, "{stderr}");
    let after = content(&complete);
    assert_ne!(content(&base), after);

    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let mut random = SplitMix64::new(seed);
    let victim = dir.path().join("victim.sqlite");
    let (mut unchanged, mut whole) = (0, 0);
    for iteration in 0..iterations {
        copy_ledger(&base, &victim);
        let kill_after =
            Duration::from_micros(random.below(full_time.as_micros() as u64 * 11 / 10 + 1));
        let mut child = qledger_process(&victim, &["import", sales.to_str().unwrap()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(kill_after);
        let _ = child.kill(); // SIGKILL on Unix
        child.wait().unwrap();
        let context = format!("iteration {iteration}, seed {seed}, killed after {kill_after:?}");
        if digest(&victim) == before {
            unchanged += 1;
        } else {
            let now = content(&victim);
            assert_eq!(now, after, "{context}: a partial import is visible");
            whole += 1;
        }
        let (code, _, stderr) = run(&victim, &["verify"]);
        assert_eq!(code, 0, "{context}: {stderr}");
        let (code, _, stderr) = run(&victim, &["import", sales.to_str().unwrap()]);
        assert_eq!(code, 0, "{context}: re-run failed: {stderr}");
        assert_eq!(
            content(&victim),
            after,
            "{context}: re-run did not complete the import"
        );
    }
    eprintln!(
        "{iterations} kills: {unchanged} left the ledger unchanged, {whole} after the commit"
    );
    assert!(
        unchanged > 0,
        "no kill landed during an import (full import took {full_time:?})"
    );
}

/// The order desk's write path (write lock, commit into the WAL, checkpoint
/// into the ledger file, close): SIGKILL `reserve` processes at random
/// moments, so some die with their commit still only in the WAL. Every hold is then either
/// recorded whole or absent, the chain and `derived_held_units` verify, and
/// the desk goes on working.
#[test]
fn sigkill_during_reserve_leaves_every_hold_whole_or_absent() {
    let (_dir, db) = loaded_ledger();
    append_every_other_kind(&db);
    let reserve = |order: &str| reserve_command(&db, "2026-02-16", order, "1");
    let started = Instant::now();
    assert!(reserve("CALM-0").output().unwrap().status.success());
    let reserve_time = started.elapsed();
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let mut random = SplitMix64::new(seed);
    let (mut killed, mut finished) = (0, 0);
    for iteration in 0..40 {
        let order = format!("KILL-{iteration}");
        let kill_after =
            Duration::from_micros(random.below(reserve_time.as_micros() as u64 * 3 / 2 + 1));
        let mut child = reserve(&order)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(kill_after);
        let _ = child.kill();
        let status = child.wait().unwrap();
        let context = format!("iteration {iteration}, seed {seed}, killed after {kill_after:?}");
        let holds: i64 =
            rusqlite::Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
                .unwrap()
                .query_row(
                    "SELECT count(*) FROM hold WHERE order_ref = ?1 AND units = 1",
                    [&order],
                    |row| row.get(0),
                )
                .unwrap();
        if status.success() {
            finished += 1;
            assert_eq!(holds, 1, "{context}: an allowed reserve recorded no hold");
        } else {
            killed += 1;
            assert!(holds <= 1, "{context}");
        }
        // Now and then: verify (which, closing last, also copies whatever
        // a killed process left in the WAL into the file).
        if iteration % 8 == 7 {
            let (code, _, stderr) = run(&db, &["verify"]);
            assert_eq!(code, 0, "{context}: {stderr}");
        }
    }
    eprintln!("40 reserves: {killed} killed, {finished} finished first");
    assert!(
        killed > 0,
        "no kill landed during a reserve ({reserve_time:?})"
    );
    assert!(
        reserve("CALM-1").output().unwrap().status.success(),
        "the desk goes on working"
    );
    let (code, _, stderr) = run(&db, &["verify"]);
    assert_eq!(code, 0, "{stderr}");
}
