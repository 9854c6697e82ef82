//! Helpers shared by the integration tests: run the real binary against
//! real SQLite files in a temporary directory.
#![allow(dead_code)]

use assert_cmd::Command;
use std::path::{Path, PathBuf};
use tempfile::TempDir;

/// The as-of date every test runs at unless it says otherwise.
pub const AS_OF: &str = "2026-06-30";
/// The as-of date ledgers are made and loaded at (`new_ledger`,
/// `loaded_ledger`): early, since the ledger's clock never runs backwards.
pub const SETUP_AS_OF: &str = "2026-01-01";

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A fixture file.
pub fn fixture(name: &str) -> PathBuf {
    root().join("fixtures").join(name)
}

/// The shared conformance corpora (../shared/conformance beside the repo).
pub fn conformance() -> PathBuf {
    let path = root().join("..").join("shared").join("conformance");
    assert!(
        path.is_dir(),
        "{} is missing: the conformance corpora must sit beside the repository",
        path.display()
    );
    path
}

/// `qledger --db DB --as-of AS_OF ARGS...`
pub fn qledger(db: &Path, args: &[&str]) -> Command {
    let mut command = Command::cargo_bin("qledger").expect("binary builds");
    command
        .arg("--db")
        .arg(db)
        .arg("--as-of")
        .arg(AS_OF)
        .args(args);
    command
}

/// The same as a plain `std::process::Command`, for spawning and killing.
pub fn qledger_process(db: &Path, args: &[&str]) -> std::process::Command {
    qledger_at(db, AS_OF, args)
}

/// A plain `std::process::Command` with the ledger and its own as-of date.
pub fn qledger_at(db: &Path, as_of: &str, args: &[&str]) -> std::process::Command {
    let mut command = std::process::Command::new(assert_cmd::cargo::cargo_bin("qledger"));
    command
        .arg("--db")
        .arg(db)
        .arg("--as-of")
        .arg(as_of)
        .args(args);
    command
}

/// With the fixture reference data and US sales of `append_every_other_kind`:
/// the `reserve` of `units` of H200 for `order` as of `as_of` (planned
/// 2026-02-20, C-BETA, lot L-H200-0002), a hold the cap and the lot allow,
/// as a command to run.
pub fn reserve_command(db: &Path, as_of: &str, order: &str, units: &str) -> std::process::Command {
    qledger_at(
        db,
        as_of,
        &[
            "reserve",
            "--order",
            order,
            "--chip",
            "H200",
            "--market",
            "CN",
            "--units",
            units,
            "--date",
            "2026-02-20",
            "--customer",
            "C-BETA",
            "--lot",
            "L-H200-0002",
        ],
    )
}

/// Runs `command`, which must succeed (the test fails with its stderr).
pub fn run_ok(mut command: std::process::Command, what: &str) {
    let output = command.output().expect("runs");
    assert!(
        output.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Runs `reserve_command` as of 2026-02-16, after `append_every_other_kind`:
/// an active hold for tests that need one.
pub fn reserve_active_hold(db: &Path, order: &str, units: &str) {
    run_ok(reserve_command(db, "2026-02-16", order, units), "reserve");
}

/// Runs and returns (exit code, stdout, stderr).
pub fn run(db: &Path, args: &[&str]) -> (i32, String, String) {
    let output = qledger(db, args).output().expect("binary runs");
    (
        output.status.code().expect("exited, not killed"),
        String::from_utf8(output.stdout).expect("stdout is UTF-8"),
        String::from_utf8(output.stderr).expect("stderr is UTF-8"),
    )
}

/// Runs with `--json` and parses stdout.
pub fn run_json(db: &Path, args: &[&str]) -> (i32, serde_json::Value, String) {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let (code, stdout, stderr) = run(db, &all);
    let value = serde_json::from_str(&stdout)
        .unwrap_or_else(|err| panic!("stdout is not JSON ({err}): {stdout:?}; stderr: {stderr}"));
    (code, value, stderr)
}

/// Writes `text` to `dir/name` and returns the path.
pub fn write_file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write test file");
    path
}

/// A fresh, initialised ledger in a new temporary directory.
pub fn new_ledger() -> (TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("ledger.sqlite");
    run_ok(qledger_at(&db, SETUP_AS_OF, &["init"]), "init");
    (dir, db)
}

/// Sufficient US-supply attestations of H200 for every quarter of 2026
/// and 2027, attested on `SETUP_AS_OF`: the fixture policy requires them
/// from 2026-01-15, and most tests are about other rules.
pub const SUPPLY_FOR_TESTS: &str =
    "chip,period,us_inventory_units,us_open_orders_units,attested_on,attested_by,reference\n\
     H200,2026-Q1,100000,1000,2026-01-01,test officer,\n\
     H200,2026-Q2,100000,1000,2026-01-01,test officer,\n\
     H200,2026-Q3,100000,1000,2026-01-01,test officer,\n\
     H200,2026-Q4,100000,1000,2026-01-01,test officer,\n\
     H200,2027-Q1,100000,1000,2026-01-01,test officer,\n\
     H200,2027-Q2,100000,1000,2026-01-01,test officer,\n\
     H200,2027-Q3,100000,1000,2026-01-01,test officer,\n\
     H200,2027-Q4,100000,1000,2026-01-01,test officer,\n";

/// A ledger with the fixture reference data loaded (and `SUPPLY_FOR_TESTS`).
pub fn loaded_ledger() -> (TempDir, PathBuf) {
    let (dir, db) = new_ledger();
    let supply = write_file(dir.path(), "supply-for-tests.csv", SUPPLY_FOR_TESTS);
    for (command, path) in [
        ("policy", fixture("policy.csv")),
        ("customers", fixture("customers.csv")),
        ("lots", fixture("lots.csv")),
        ("supply", supply),
    ] {
        let import = qledger_at(
            &db,
            SETUP_AS_OF,
            &[command, "import", path.to_str().unwrap()],
        );
        run_ok(import, &format!("{command} import"));
    }
    (dir, db)
}

/// The ledger's clock: the as-of date of its latest write (YYYY-MM-DD).
pub fn clock_of(db: &Path) -> String {
    let conn = rusqlite::Connection::open(db).expect("open the ledger");
    let latest = quotaledger::store::clock::latest_write_as_of(&conn)
        .expect("read the clock")
        .expect("a ledger has entries");
    quotaledger::period::format_date(latest)
}

/// An as-of date for importing `rows` (CSV data lines, the date second):
/// the latest date they carry, or the ledger's clock if that is later.
pub fn import_as_of(db: &Path, rows: &str) -> String {
    let latest_row = rows
        .lines()
        .filter_map(|line| line.split(',').nth(1))
        .filter(|date| date.len() == 10)
        .max()
        .map(str::to_string)
        .unwrap_or_default();
    latest_row.max(clock_of(db))
}

/// SQLite's write-ahead log beside `db`.
pub fn wal_of(db: &Path) -> PathBuf {
    PathBuf::from(format!("{}-wal", db.display()))
}

/// Copies what the WAL holds into the ledger file and removes the WAL, as
/// SQLite's last connection does by default (every qledger command leaves
/// the file complete; this asserts it for a copy taken by a test).
pub fn settle(db: &Path) {
    let conn = rusqlite::Connection::open(db).expect("open the ledger");
    let busy: i64 = conn
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| row.get(0))
        .expect("checkpoint");
    assert_eq!(busy, 0, "nothing else has the ledger open");
    drop(conn);
    assert!(!wal_of(db).exists(), "the last connection removed the WAL");
}

/// Every entry of a ledger as text, in sequence order, without its hash and
/// its `recorded_at` (the wall clock): what two ledgers built the same way
/// at different moments share. (Their hashes differ from the first entry
/// recording a time on.)
pub fn content(db: &Path) -> Vec<String> {
    let conn = rusqlite::Connection::open(db).expect("open the ledger");
    let mut rows: Vec<(i64, String)> = Vec::new();
    for table in ledger_tables() {
        let columns: Vec<String> = conn
            .prepare(&format!(
                "SELECT name FROM pragma_table_info('{table}') ORDER BY cid"
            ))
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let kept: Vec<String> = columns
            .into_iter()
            .filter(|c| c != "hash" && c != "recorded_at")
            .map(|c| format!("quote({c})"))
            .collect();
        let sql = format!("SELECT seq, {} FROM {table}", kept.join(" || '|' || "));
        let mut statement = conn.prepare(&sql).unwrap();
        let found = statement
            .query_map([], |r| {
                Ok((r.get(0)?, format!("{table}|{}", r.get::<_, String>(1)?)))
            })
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        rows.extend(found);
    }
    rows.sort();
    rows.into_iter().map(|(_, row)| row).collect()
}

/// The `digest` output (`N:HEX`).
pub fn digest(db: &Path) -> String {
    let (code, stdout, stderr) = run(db, &["digest"]);
    assert_eq!(code, 0, "digest failed: {stderr}");
    stdout.trim().to_string()
}

/// Adds entries of every kind not yet loaded, through the real commands:
/// sales, a return and an accepted violation (`import`), a hold and its
/// release, a payment, and a close.
pub fn append_every_other_kind(db: &Path) {
    let dir = tempfile::tempdir().expect("tempdir");
    let sales = write_file(
        dir.path(),
        "sales.csv",
        "record_id,sale_date,chip,market,customer_id,units,unit_price_usd,lot_id,order_ref,kind,reverses\n\
         U-1,2026-02-09,H200,US,,100,30000,,,sale,\n\
         S-1,2026-02-10,H200,CN,C-ALPHA,10,30000,L-H200-0001,PO-1,sale,\n\
         R-1,2026-02-11,H200,CN,C-ALPHA,2,,,,return,S-1\n",
    );
    run_ok(
        qledger_at(db, "2026-02-12", &["import", sales.to_str().unwrap()]),
        "import",
    );
    let violation = write_file(
        dir.path(),
        "violation.csv",
        "record_id,sale_date,chip,market,customer_id,units,unit_price_usd\n\
         S-2,2026-02-12,B200,CN,C-ALPHA,1,1\n",
    );
    let accept = [
        "import",
        violation.to_str().unwrap(),
        "--accept-violations",
        "--reason",
        "shipped before review",
    ];
    run_ok(qledger_at(db, "2026-02-12", &accept), "import");
    run_ok(reserve_command(db, "2026-02-15", "PO-2", "5"), "reserve");
    // In the order of their as-of dates: the ledger's clock never runs backwards.
    let steps: [&[&str]; 3] = [
        &["--as-of", "2026-02-16", "release", "--order", "PO-2"],
        &[
            "--as-of",
            "2026-02-16",
            "remit",
            "--period",
            "2025-Q4",
            "--amount",
            "100",
            "--paid-on",
            "2026-01-10",
            "--reference",
            "wire 1",
        ],
        &["--as-of", "2026-02-16", "close", "--period", "2025-Q4"],
    ];
    for args in steps {
        let mut command = std::process::Command::new(assert_cmd::cargo::cargo_bin("qledger"));
        command.arg("--db").arg(db).args(args);
        run_ok(command, &format!("{args:?}"));
    }
    // The kinds of schema version 3: a payment reversal, a policy
    // withdrawal, and a late entry in the closed 2025-Q4.
    let future = write_file(
        dir.path(),
        "future.csv",
        "chip,effective_from,restricted_allowed,cap_ratio,cap_window,remittance_rate,lab_test_required,customer_approval_required,source\n\
         MI308,2026-12-01,false,,,0,true,true,keyed by mistake\n",
    );
    let late = write_file(
        dir.path(),
        "late.csv",
        "record_id,sale_date,chip,market,customer_id,units,unit_price_usd\n\
         L-1,2025-12-15,H20,US,,5,12000\n",
    );
    let later: [&[&str]; 5] = [
        &[
            "remit",
            "--period",
            "2025-Q4",
            "--amount",
            "7",
            "--paid-on",
            "2026-02-16",
            "--reference",
            "wire 2",
        ],
        &[
            "remit",
            "--reverse",
            "--period",
            "2025-Q4",
            "--reference",
            "wire 2",
            "--reason",
            "sent twice",
        ],
        &["policy", "import", future.to_str().unwrap()],
        &[
            "policy",
            "withdraw",
            "--chip",
            "MI308",
            "--effective-from",
            "2026-12-01",
            "--reason",
            "keyed by mistake",
        ],
        &[
            "import",
            late.to_str().unwrap(),
            "--late",
            "--reason",
            "found in the Q4 audit",
        ],
    ];
    for args in later {
        run_ok(qledger_at(db, "2026-02-16", args), &format!("{args:?}"));
    }
    // The kinds of schema version 4: a supply attestation, a screening
    // snapshot with its rows, and a clearance.
    let supply = write_file(
        dir.path(),
        "supply.csv",
        "chip,period,us_inventory_units,us_open_orders_units,attested_on,attested_by,reference\n\
         MI325X,2026-Q1,500,400,2026-02-16,J. Rivera,SUP-1\n",
    );
    let list = write_file(
        dir.path(),
        "list.csv",
        "list,entry_id,name,alt_names,country\n\
         Entity List,EL-1,Gamma Data Services Co. Ltd.,,CN\n",
    );
    let newest: [&[&str]; 5] = [
        &["supply", "import", supply.to_str().unwrap()],
        &["screening", "import", list.to_str().unwrap()],
        &[
            "screening",
            "clear",
            "--customer",
            "C-GAMMA",
            "--list",
            "Entity List",
            "--entry",
            "EL-1",
            "--reason",
            "another company",
        ],
        &["token", "issue", "--name", "oms", "--role", "desk"],
        &["token", "revoke", "--name", "oms"],
    ];
    for args in newest {
        run_ok(qledger_at(db, "2026-02-16", args), &format!("{args:?}"));
    }
}

/// Every ledger table (every entry kind).
pub fn ledger_tables() -> Vec<&'static str> {
    quotaledger::store::entry::ALL_KINDS
        .iter()
        .map(|kind| kind.table)
        .collect()
}

/// Drops every trigger: what a forger does first.
pub fn drop_triggers(conn: &rusqlite::Connection) -> Vec<String> {
    let triggers: Vec<(String, String)> = conn
        .prepare("SELECT name, sql FROM sqlite_master WHERE type = 'trigger'")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(!triggers.is_empty());
    for (name, _) in &triggers {
        conn.execute(&format!("DROP TRIGGER {name}"), []).unwrap();
    }
    triggers.into_iter().map(|(_, sql)| sql).collect()
}

/// Makes again the triggers `drop_triggers` dropped, as a careful forger
/// would, so that the schema is the embedded one again.
pub fn restore_triggers(conn: &rusqlite::Connection, triggers: &[String]) {
    for sql in triggers {
        conn.execute_batch(sql).unwrap();
    }
}

/// An independent recomputation of the chain, written from the README's
/// description only (not with the library's encoder): SELECT * per table,
/// netstrings of seq, table name, then the remaining columns but `hash`.
/// Returns (table, seq, hash) in seq order.
pub fn recompute_independently(conn: &rusqlite::Connection) -> Vec<(String, i64, [u8; 32])> {
    use rusqlite::types::Value;
    use sha2::{Digest, Sha256};
    let mut rows: Vec<(i64, String, Vec<u8>)> = Vec::new();
    for table in ledger_tables() {
        let mut statement = conn.prepare(&format!("SELECT * FROM {table}")).unwrap();
        let count = statement.column_count();
        let names: Vec<String> = statement
            .column_names()
            .into_iter()
            .map(str::to_string)
            .collect();
        let hash_at = names.iter().position(|n| n == "hash").unwrap();
        let mut cursor = statement.query([]).unwrap();
        while let Some(row) = cursor.next().unwrap() {
            let netstring = |bytes: &[u8]| {
                let mut out = format!("{}:", bytes.len()).into_bytes();
                out.extend_from_slice(bytes);
                out.push(b',');
                out
            };
            let seq: i64 = row.get(0).unwrap();
            let mut canonical = netstring(seq.to_string().as_bytes());
            canonical.extend(netstring(table.as_bytes()));
            for index in 1..hash_at {
                match row.get::<_, Value>(index).unwrap() {
                    Value::Null => canonical.extend_from_slice(b"~,"),
                    Value::Integer(n) => canonical.extend(netstring(n.to_string().as_bytes())),
                    Value::Text(t) => canonical.extend(netstring(t.as_bytes())),
                    other => panic!("unexpected {other:?}"),
                }
            }
            // Columns after hash (added in later versions; actor,
            // recorded_at): name and value, when not NULL.
            for (index, name) in names.iter().enumerate().take(count).skip(hash_at + 1) {
                let value = match row.get::<_, Value>(index).unwrap() {
                    Value::Null => continue,
                    Value::Integer(n) => n.to_string().into_bytes(),
                    Value::Text(t) => t.into_bytes(),
                    other => panic!("unexpected {other:?}"),
                };
                canonical.extend(netstring(name.as_bytes()));
                canonical.extend(netstring(&value));
            }
            rows.push((seq, table.to_string(), canonical));
        }
    }
    rows.sort_by_key(|r| r.0);
    let mut previous = [0u8; 32];
    let mut out = Vec::new();
    for (seq, table, canonical) in rows {
        let mut hasher = Sha256::new();
        hasher.update(previous);
        hasher.update(&canonical);
        previous = hasher.finalize().into();
        out.push((table, seq, previous));
    }
    out
}

/// Rewrites every stored hash from the entries as they now are: a forger
/// who wants plain `verify` to pass.
pub fn rehash(conn: &rusqlite::Connection) {
    for (table, seq, hash) in recompute_independently(conn) {
        conn.execute(
            &format!("UPDATE {table} SET hash = ?1 WHERE seq = ?2"),
            rusqlite::params![hash.to_vec(), seq],
        )
        .unwrap();
    }
}
