//! Licence-rule benchmark (issue 14). Run: `cargo bench --bench licence`.
//! Self-contained: it builds its own small ledgers in target/bench.
//!
//! 1. `qledger screening check` through the CLI on a ledger with a
//!    20,000-entry restricted-party list and 10,000 approved customers
//!    (`synthetic::screening_world`): min and median of
//!    QLEDGER_BENCH_REPEAT runs (default 5); goal <= 1 s.
//! 2. `qledger check` through the CLI on two ledgers alike but for the
//!    licence rules: one with the plain synthetic policy, one with every
//!    licence rule on (supply attestations, certificates, KYC expiry, the
//!    same list in force), alternating, QLEDGER_BENCH_CHECKS runs each
//!    (default 40): the ratio of medians (goal: unchanged within noise).

use quotaledger::synthetic::{
    customers_csv, licensed_customers_csv, licensed_policy_csv, lots_csv, policy_csv,
    screening_world, supply_csv,
};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const AS_OF: &str = "2026-03-31";

fn qledger(db: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_qledger"));
    command
        .arg("--db")
        .arg(db)
        .arg("--as-of")
        .arg(AS_OF)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    command
}

/// Runs `command`; returns its time and exit code.
fn timed(command: &mut Command) -> (Duration, i32) {
    let started = Instant::now();
    let status = command.status().expect("runs");
    (started.elapsed(), status.code().unwrap_or(-1))
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A fresh ledger at `dir/name` with `files` imported: (command, CSV text, extra args).
fn ledger(dir: &Path, name: &str, files: &[(&str, String, &[&str])]) -> PathBuf {
    let db = dir.join(name);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
    assert_eq!(timed(&mut qledger(&db, &["init"])).1, 0, "init");
    for (index, (command, text, extra)) in files.iter().enumerate() {
        let file = dir.join(format!("{name}-{index}-{command}.csv"));
        std::fs::write(&file, text).unwrap();
        let mut args = vec![*command, "import", file.to_str().unwrap()];
        args.extend_from_slice(extra);
        assert_eq!(timed(&mut qledger(&db, &args)).1, 0, "{command} import");
    }
    db
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() {
    let dir =
        PathBuf::from(std::env::var("QLEDGER_BENCH_DIR").unwrap_or_else(|_| "target/bench".into()));
    std::fs::create_dir_all(&dir).unwrap();
    let repeat = env_usize("QLEDGER_BENCH_REPEAT", 5).max(1);
    let (list, people) = screening_world(20_000, 10_000, 7);
    let early: &[&str] = &["--effective", "2025-01-01"];

    // 1. screening check.
    let screened = ledger(
        &dir,
        "licence-screening.sqlite",
        &[
            ("policy", licensed_policy_csv(), &[]),
            ("customers", people, &[]),
            ("screening", list.clone(), early),
        ],
    );
    let json = Command::new(env!("CARGO_BIN_EXE_qledger"))
        .args(["--json", "--as-of", AS_OF, "--db"])
        .arg(&screened)
        .args(["screening", "check"])
        .output()
        .expect("runs");
    let answer: serde_json::Value = serde_json::from_slice(&json.stdout).expect("JSON");
    let mut times: Vec<f64> = (0..repeat)
        .map(|_| ms(timed(&mut qledger(&screened, &["screening", "check"])).0))
        .collect();
    times.sort_by(f64::total_cmp);
    println!(
        "screening check, 20,000 listed entries x 10,000 approved customers ({} hits, {} potential matches): \
         min {:.0} ms, median {:.0} ms over {repeat} runs (goal <= 1000 ms)",
        answer["hits"].as_array().map_or(0, Vec::len),
        answer["potential"].as_array().map_or(0, Vec::len),
        times[0],
        times[repeat / 2]
    );

    // 2. check with and without the licence rules.
    let plain = ledger(
        &dir,
        "licence-plain.sqlite",
        &[
            ("policy", policy_csv(), &[]),
            ("customers", customers_csv(), &[]),
            ("lots", lots_csv(), &[]),
        ],
    );
    let licensed = ledger(
        &dir,
        "licence-on.sqlite",
        &[
            ("policy", licensed_policy_csv(), &[]),
            ("customers", licensed_customers_csv(), &[]),
            ("lots", lots_csv(), &[]),
            ("supply", supply_csv(), &[]),
            ("screening", list, early),
        ],
    );
    let check: &[&str] = &[
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
    let runs = env_usize("QLEDGER_BENCH_CHECKS", 40).max(1);
    let (mut off, mut on) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        off.push(ms(timed(&mut qledger(&plain, check)).0));
        on.push(ms(timed(&mut qledger(&licensed, check)).0));
    }
    off.sort_by(f64::total_cmp);
    on.sort_by(f64::total_cmp);
    let (off_median, on_median) = (off[runs / 2], on[runs / 2]);
    println!(
        "check through the CLI, {runs} runs each, alternating: licence rules off median {off_median:.2} ms, \
         on median {on_median:.2} ms; ratio of medians {:.2} (goal: unchanged within noise)",
        on_median / off_median
    );
}
