//! Helpers the benchmarks share.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;

/// A fresh copy named `name` of the ledger the import benchmark built
/// (`QLEDGER_BENCH_LEDGER`, default target/bench/big.sqlite), written out to
/// disk before it is measured (else the first fsync would pay for the copy).
pub fn ledger_copy(name: &str) -> PathBuf {
    let source = PathBuf::from(
        std::env::var("QLEDGER_BENCH_LEDGER").unwrap_or_else(|_| "target/bench/big.sqlite".into()),
    );
    assert!(
        source.exists(),
        "{} is missing: run cargo bench --bench import first",
        source.display()
    );
    let db = source.with_file_name(name);
    remove_ledger(&db);
    // Order-desk commands leave their last write in the WAL: copy it into
    // the file first (SQLite's last connection does), then copy the file.
    let conn = rusqlite::Connection::open(&source).expect("open the ledger");
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .expect("checkpoint the ledger");
    drop(conn);
    std::fs::copy(&source, &db).expect("copy the ledger");
    std::fs::File::open(&db)
        .and_then(|file| file.sync_all())
        .expect("sync the copy");
    db
}

/// Removes a ledger file and SQLite's files beside it.
fn remove_ledger(db: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
}

/// The `fraction` percentile (nearest rank) of `samples`.
pub fn percentile(samples: &mut [Duration], fraction: f64) -> Duration {
    samples.sort();
    let index = ((samples.len() as f64 * fraction).ceil() as usize).clamp(1, samples.len()) - 1;
    samples[index]
}

/// Milliseconds, for printing.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
