//! The ledger core through the real binary: init, reference imports,
//! verify, digest, append-only triggers, tamper evidence.

mod common;

use common::*;
use rusqlite::Connection;

#[test]
fn init_import_verify_and_digest() {
    let (_dir, db) = new_ledger();
    let (code, init_again, stderr) = run(&db, &["init"]);
    assert_eq!(code, 2, "init refuses an existing file: {init_again}");
    assert!(stderr.contains("already exists"), "{stderr}");

    let after_init = digest(&db);
    assert!(
        after_init.starts_with("1:"),
        "init writes exactly the settings entry: {after_init}"
    );

    let policy = fixture("policy.csv");
    let (code, summary, _) = run_json(&db, &["policy", "import", policy.to_str().unwrap()]);
    assert_eq!(code, 0);
    assert_eq!(summary["rows"], 6);
    assert_eq!(summary["inserted"], 6);
    assert_eq!(summary["duplicates"], 0);
    assert_eq!(summary["rejected"], 0);
    assert_eq!(summary["errors"], serde_json::json!([]));
    assert_eq!(summary["sha256"].as_str().unwrap().len(), 64);
    // 6 versions + 1 import batch entry
    assert!(digest(&db).starts_with("8:"));

    let (code, verified, _) = run_json(&db, &["verify"]);
    assert_eq!(code, 0);
    assert_eq!(verified["ok"], true);
    assert_eq!(verified["entries"], 8);
    let head = digest(&db);
    assert_eq!(head, format!("8:{}", verified["head"].as_str().unwrap()));
}

#[test]
fn init_json_and_options() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("monthly.sqlite");
    let (code, init, _) = run_json(
        &db,
        &["init", "--period", "month", "--restricted", "cn,hk,mo,ru"],
    );
    assert_eq!(code, 0);
    assert_eq!(init["period"], "month");
    assert_eq!(
        init["restricted"],
        serde_json::json!(["CN", "HK", "MO", "RU"])
    );
    assert_eq!(init["db"], db.display().to_string());

    for bad in [
        vec!["init", "--period", "week"],
        vec!["init", "--restricted", "CN,USA"],
        vec!["init", "--restricted", "US,CN"],
    ] {
        let other = dir.path().join("other.sqlite");
        let (code, _, stderr) = run(&other, &bad);
        assert_eq!(code, 2, "{bad:?}: {stderr}");
        assert!(!other.exists(), "a refused init leaves no file");
    }
}

#[test]
fn every_command_refuses_a_file_that_is_not_a_ledger() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.sqlite");
    let not_sqlite = write_file(dir.path(), "notes.sqlite", "hello, this is text\n");
    let other_sqlite = dir.path().join("other.sqlite");
    Connection::open(&other_sqlite)
        .unwrap()
        .execute_batch("CREATE TABLE t (x INTEGER); INSERT INTO t VALUES (1);")
        .unwrap();
    let empty = write_file(dir.path(), "empty.sqlite", "");
    let policy = fixture("policy.csv");
    for db in [&missing, &not_sqlite, &other_sqlite, &empty] {
        let before = std::fs::read(db).ok();
        for args in [
            vec!["digest"],
            vec!["verify"],
            vec!["policy", "show"],
            vec!["policy", "import", policy.to_str().unwrap()],
            vec!["customers", "import", policy.to_str().unwrap()],
            vec!["lots", "import", policy.to_str().unwrap()],
        ] {
            let (code, stdout, stderr) = run(db, &args);
            assert_eq!(code, 2, "{} {args:?}: {stdout} {stderr}", db.display());
            assert!(stderr.contains("is not a qledger ledger"), "{stderr}");
        }
        assert_eq!(std::fs::read(db).ok(), before, "{} unchanged", db.display());
    }
    assert!(!missing.exists(), "never creates a ledger");
}

#[test]
fn digest_is_stable_across_reads_and_grows_with_writes() {
    let (dir, db) = loaded_ledger();
    let first = digest(&db);
    for args in [
        vec!["verify"],
        vec!["policy", "show"],
        vec!["--json", "policy", "show"],
        vec!["digest"],
    ] {
        let (code, _, stderr) = run(&db, &args);
        assert_eq!(code, 0, "{args:?}: {stderr}");
        assert_eq!(digest(&db), first, "{args:?} changed the ledger");
    }
    // Re-importing identical reference rows appends nothing.
    let customers = fixture("customers.csv");
    let (code, summary, _) = run_json(&db, &["customers", "import", customers.to_str().unwrap()]);
    assert_eq!(code, 0);
    assert_eq!(summary["inserted"], 0);
    assert_eq!(summary["duplicates"], 7);
    assert_eq!(digest(&db), first);

    let more = write_file(
        dir.path(),
        "more.csv",
        "customer_id,name,country,status,effective_date,reference\nC-NEW,New Co,CN,approved,2026-03-01,\n",
    );
    let (code, _, _) = run(&db, &["customers", "import", more.to_str().unwrap()]);
    assert_eq!(code, 0);
    let second = digest(&db);
    let count = |d: &str| d.split(':').next().unwrap().parse::<i64>().unwrap();
    assert_eq!(
        count(&second),
        count(&first) + 2,
        "one event and one batch entry"
    );
    assert_ne!(second.split(':').nth(1), first.split(':').nth(1));
}

#[test]
fn policy_show_lists_versions_with_csv_field_names() {
    let (_dir, db) = loaded_ledger();
    let (code, shown, _) = run_json(&db, &["policy", "show"]);
    assert_eq!(code, 0);
    let versions = shown["versions"].as_array().unwrap();
    assert_eq!(versions.len(), 6);
    let h200 = versions.iter().find(|v| v["chip"] == "H200").unwrap();
    assert_eq!(
        h200,
        &serde_json::json!({
            "chip": "H200", "effective_from": "2026-01-15", "restricted_allowed": true,
            "cap_ratio": "0.5", "cap_window": "period", "remittance_rate": "0.25",
            "lab_test_required": true, "customer_approval_required": true,
            "source": h200["source"].as_str().unwrap(),
            "us_supply_attestation_required": true, "end_use_certificate_required": true,
            "withdrawn": false,
        })
    );
    assert!(!h200["source"].as_str().unwrap().is_empty());
    let h20 = versions.iter().find(|v| v["chip"] == "H20").unwrap();
    assert_eq!(h20["cap_ratio"], serde_json::Value::Null);
    assert_eq!(h20["cap_window"], serde_json::Value::Null);
    assert_eq!(h20["remittance_rate"], "0.15");
    let (code, table, _) = run(&db, &["policy", "show"]);
    assert_eq!(code, 0);
    assert!(table.contains("H200") && table.contains("0.25"));
}

#[test]
fn update_and_delete_fail_on_every_ledger_table() {
    let (_dir, db) = loaded_ledger();
    append_every_other_kind(&db);
    let before = digest(&db);
    let conn = Connection::open(&db).unwrap();
    for table in ledger_tables() {
        let rows: i64 = conn
            .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
            .unwrap();
        assert!(rows > 0, "{table} has rows, so its triggers are exercised");
        let update = conn.execute(&format!("UPDATE {table} SET seq = seq"), []);
        let err = update.expect_err(&format!("UPDATE on {table} must fail"));
        assert!(err.to_string().contains("append-only"), "{table}: {err}");
        let delete = conn.execute(&format!("DELETE FROM {table}"), []);
        let err = delete.expect_err(&format!("DELETE on {table} must fail"));
        assert!(err.to_string().contains("append-only"), "{table}: {err}");
    }
    drop(conn);
    assert_eq!(digest(&db), before);
    let (code, _, stderr) = run(&db, &["verify"]);
    assert_eq!(code, 0, "{stderr}");
}

#[test]
fn init_leaves_the_ledger_alone_in_its_directory() {
    let (dir, db) = new_ledger();
    let names = |dir: &std::path::Path| {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    // Built aside, linked into place: no staging file.
    assert_eq!(names(dir.path()), vec!["ledger.sqlite"]);
    // No file of qledger's own beside it; SQLite's WAL files go when the
    // last connection closes.
    let (code, _, stderr) = run(
        &db,
        &["policy", "import", fixture("policy.csv").to_str().unwrap()],
    );
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(names(dir.path()), vec!["ledger.sqlite"]);
}

#[test]
fn init_refuses_a_path_with_a_stale_wal_or_shm_beside_it() {
    for leftover in ["-wal", "-shm"] {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("ledger.sqlite");
        let stale = dir.path().join(format!("ledger.sqlite{leftover}"));
        std::fs::write(&stale, b"left by an earlier ledger").unwrap();
        let (code, _, stderr) = run(&db, &["init"]);
        assert_eq!(code, 2, "{stderr}");
        assert!(stderr.contains(&stale.display().to_string()), "{stderr}");
        assert!(!db.exists(), "nothing created");
        assert_eq!(
            std::fs::read(&stale).unwrap(),
            b"left by an earlier ledger",
            "the stale file is left for its owner"
        );
        std::fs::remove_file(&stale).unwrap();
        let (code, _, stderr) = run(&db, &["init"]);
        assert_eq!(code, 0, "{stderr}");
        let (code, _, stderr) = run(&db, &["verify"]);
        assert_eq!(code, 0, "{stderr}");
    }
}

#[test]
fn a_version_1_ledger_is_upgraded_in_place_with_its_chain_unchanged() {
    let (_dir, db) = loaded_ledger();
    append_every_other_kind(&db);
    // An active hold, so the upgrade has units to put back.
    reserve_active_hold(&db, "PO-9", "4");
    let held_rows = |db: &std::path::Path| -> Vec<(String, String, String, String, i64)> {
        let conn = rusqlite::Connection::open(db).unwrap();
        let mut statement = conn
            .prepare("SELECT chip, planned_date, expires_on, lot_id, held_units FROM derived_held_units ORDER BY 1, 2, 3, 4")
            .unwrap();
        let rows = statement
            .query_map([], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        rows
    };
    let before = (digest(&db), held_rows(&db));
    assert_eq!(before.1.len(), 1, "{:?}", before.1);
    // What a version-1 file looks like: no derived_held_units, user_version 1.
    {
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.execute_batch("DROP TABLE derived_held_units; PRAGMA user_version = 1;")
            .unwrap();
    }
    let (code, _, stderr) = run(&db, &["verify"]);
    assert_eq!(code, 0, "the upgraded ledger verifies: {stderr}");
    let conn = rusqlite::Connection::open(&db).unwrap();
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, quotaledger::store::ledger::SCHEMA_VERSION);
    drop(conn);
    assert_eq!((digest(&db), held_rows(&db)), before);
    // A version it does not know is still refused.
    {
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.execute_batch("PRAGMA user_version = 7;").unwrap();
    }
    let (code, _, stderr) = run(&db, &["digest"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("schema version 7"), "{stderr}");
}

/// `qledger` at `as_of` with today's date fixed by `QLEDGER_TODAY`.
fn on_day(db: &std::path::Path, today: &str, as_of: &str, args: &[&str]) -> (i32, String) {
    let output = qledger_at(db, as_of, args)
        .env("QLEDGER_TODAY", today)
        .output()
        .unwrap();
    (
        output.status.code().unwrap(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn the_ledgers_clock_never_runs_backwards_nor_ahead_of_today_plus_one() {
    let (dir, db) = loaded_ledger();
    let today = "2026-07-10";
    let remit = |as_of: &str, reference: &str| {
        on_day(
            &db,
            today,
            as_of,
            &[
                "remit",
                "--period",
                "2026-Q1",
                "--amount",
                "1",
                "--paid-on",
                "2026-04-01",
                "--reference",
                reference,
            ],
        )
    };
    assert_eq!(remit("2026-06-30", "W1").0, 0);
    // One day before the latest write: refused, nothing written.
    let before = digest(&db);
    let (code, stderr) = remit("2026-06-29", "W2");
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("never runs backwards") && stderr.contains("2026-06-30"),
        "{stderr}"
    );
    assert_eq!(digest(&db), before);
    // Equal to it: fine. Today plus one: fine; plus two: refused.
    assert_eq!(remit("2026-06-30", "W3").0, 0);
    assert_eq!(remit("2026-07-11", "W4").0, 0);
    let (code, stderr) = remit("2026-07-12", "W5");
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("2026-07-11"), "{stderr}");
    // Refused before anything else: a malformed file is not even read.
    let bad = write_file(dir.path(), "bad.csv", "not,a,sales,file\n1,2,3,4\n");
    let (code, stderr) = on_day(&db, today, "2026-07-01", &["import", bad.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(stderr.contains("never runs backwards"), "{stderr}");
    // Every kind of write is held to it, `close` and `init` included.
    let (code, stderr) = on_day(&db, today, "2026-07-13", &["close", "--period", "2026-Q1"]);
    assert_eq!(code, 2, "{stderr}");
    let fresh = dir.path().join("fresh.sqlite");
    let (code, stderr) = on_day(&fresh, today, "2026-07-12", &["init"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(!fresh.exists());
    // Reads accept any as-of date, far future and past alike.
    for as_of in ["2099-12-31", "2026-01-01"] {
        let (code, stderr) = on_day(&db, today, as_of, &["report", "--period", "2026-Q1"]);
        assert_eq!(code, 0, "{as_of}: {stderr}");
        let (code, stderr) = on_day(&db, today, as_of, &["verify"]);
        assert_eq!(code, 0, "{as_of}: {stderr}");
    }
    // A bad QLEDGER_TODAY is bad input, never ignored.
    let (code, stderr) = on_day(&db, "someday", "2026-07-11", &["digest"]);
    assert_eq!(
        (code, stderr.contains("QLEDGER_TODAY")),
        (0, false),
        "digest passes --as-of"
    );
    let output = qledger(&db, &["digest"])
        .env("QLEDGER_TODAY", "someday")
        .output()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "an explicit --as-of needs no today"
    );
    let output = std::process::Command::new(assert_cmd::cargo::cargo_bin("qledger"))
        .arg("--db")
        .arg(&db)
        .arg("digest")
        .env("QLEDGER_TODAY", "someday")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("QLEDGER_TODAY"));
}

/// A ledger written by the previous release (schema version 2), with every
/// kind of entry it had and an active hold (`tests/data/ledger-v2.sqlite`,
/// made by that release's binary).
const V2_DIGEST: &str = "33:33def1a0c1ce67f5b492e8fdb003fa34d21fe4e433dd45d2256fac8b22076f7b";

#[test]
fn a_version_2_ledger_is_upgraded_in_place_with_its_chain_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ledger.sqlite");
    std::fs::copy(root().join("tests/data/ledger-v2.sqlite"), &db).unwrap();
    assert_eq!(digest(&db), V2_DIGEST, "the upgrade changes no entry");
    let conn = rusqlite::Connection::open(&db).unwrap();
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, quotaledger::store::ledger::SCHEMA_VERSION);
    // The schema is now exactly the embedded one.
    use quotaledger::store::schema::{embedded, fold, objects_of};
    let folded = |objects: Vec<quotaledger::store::schema::SchemaObject>| {
        let mut list: Vec<(String, String, String)> = objects
            .into_iter()
            .map(|o| (o.kind, o.name, fold(&o.sql)))
            .collect();
        list.sort();
        list
    };
    let (file, binary) = (
        folded(objects_of(&conn).unwrap()),
        folded(embedded().to_vec()),
    );
    let only_in = |a: &Vec<(String, String, String)>, b: &Vec<(String, String, String)>| {
        a.iter()
            .filter(|o| !b.contains(o))
            .cloned()
            .collect::<Vec<_>>()
    };
    assert_eq!(
        only_in(&file, &binary),
        vec![],
        "objects the embedded schema lacks"
    );
    assert_eq!(
        only_in(&binary, &file),
        vec![],
        "objects the upgraded file lacks"
    );
    drop(conn);
    let (code, _, stderr) = run(&db, &["verify"]);
    assert_eq!(code, 0, "{stderr}");
    // Its active hold still counts, and the new kinds of entry work on it.
    let (code, check, _) = run_json(
        &db,
        &[
            "check",
            "--chip",
            "H200",
            "--market",
            "CN",
            "--units",
            "1",
            "--date",
            "2026-02-20",
            "--customer",
            "C-BETA",
            "--lot",
            "L-H200-0002",
        ],
    );
    assert_eq!(
        (code, check["reserved_units"].as_i64()),
        (0, Some(0)),
        "expired by 06-30: {check}"
    );
    let late = write_file(
        dir.path(),
        "late.csv",
        "record_id,sale_date,chip,market,customer_id,units,unit_price_usd\nL-1,2025-12-15,H20,US,,5,12000\n",
    );
    for args in [
        &[
            "remit",
            "--reverse",
            "--period",
            "2025-Q4",
            "--reference",
            "wire 1",
            "--reason",
            "wrong period",
        ][..],
        &[
            "import",
            late.to_str().unwrap(),
            "--late",
            "--reason",
            "found in audit",
        ][..],
    ] {
        run_ok(qledger_at(&db, "2026-02-17", args), &format!("{args:?}"));
    }
    let (code, _, stderr) = run(&db, &["verify"]);
    assert_eq!(code, 0, "{stderr}");
    let (code, report, _) = run_json(&db, &["report", "--period", "2025-Q4"]);
    assert_eq!(code, 0);
    assert_eq!(report["late"]["entries"], 1);
    assert_eq!(report["remittance"]["paid_usd"], "0");
}

#[test]
fn output_never_panics_a_closed_pipe_is_quiet_and_a_full_disk_is_exit_4() {
    let (_dir, db) = loaded_ledger();
    append_every_other_kind(&db);
    let bin = assert_cmd::cargo::cargo_bin("qledger");
    // `qledger policy show | head -1`: the reader goes away early.
    let output = std::process::Command::new("bash")
        .arg("-c")
        .arg("set -o pipefail; \"$0\" --db \"$1\" policy show | head -c 10 >/dev/null")
        .arg(&bin)
        .arg(&db)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(stderr.is_empty(), "quiet: {stderr}");
    // Any other write error is exit 4, after a read...
    let to_full = |args: &[&str]| {
        std::process::Command::new(&bin)
            .arg("--db")
            .arg(&db)
            .args(args)
            .stdout(std::fs::File::create("/dev/full").unwrap())
            .output()
            .unwrap()
    };
    let output = to_full(&[
        "--as-of", AS_OF, "report", "--period", "2026-Q1", "--format", "csv",
    ]);
    assert_eq!(
        output.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // ...and after a command that committed: the desk learns of the failure
    // (exit 4) and its retry finds the hold (already_held, nothing appended).
    let reserve = [
        "--as-of",
        "2026-02-16",
        "--json",
        "reserve",
        "--order",
        "PO-FULL",
        "--chip",
        "H200",
        "--market",
        "CN",
        "--units",
        "1",
        "--date",
        "2026-02-20",
        "--customer",
        "C-BETA",
        "--lot",
        "L-H200-0002",
    ];
    let output = to_full(&reserve);
    assert_eq!(output.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&output.stderr).contains("standard output"));
    let before = digest(&db);
    let output = std::process::Command::new(&bin)
        .arg("--db")
        .arg(&db)
        .args(reserve)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0));
    let answer: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(answer["already_held"], true);
    assert_eq!(digest(&db), before);
}

#[test]
fn every_act_records_who_and_when() {
    let (_dir, db) = loaded_ledger();
    append_every_other_kind(&db);
    let remit = [
        "remit",
        "--period",
        "2026-Q1",
        "--amount",
        "1",
        "--paid-on",
        "2026-06-30",
    ];
    let mut by_flag = qledger_at(
        &db,
        AS_OF,
        &[
            &remit[..],
            &["--reference", "A1", "--actor", "officer:jane"],
        ]
        .concat(),
    );
    by_flag.env("QLEDGER_ACTOR", "ignored");
    run_ok(by_flag, "remit --actor");
    let mut by_env = qledger_at(&db, AS_OF, &[&remit[..], &["--reference", "A2"]].concat());
    by_env.env("QLEDGER_ACTOR", "cron:nightly");
    run_ok(by_env, "remit with QLEDGER_ACTOR");
    let mut by_login = qledger_at(&db, AS_OF, &[&remit[..], &["--reference", "A3"]].concat());
    by_login.env_remove("QLEDGER_ACTOR").env("USER", "auditor7");
    run_ok(by_login, "remit as the login");
    let conn = rusqlite::Connection::open(&db).unwrap();
    let actors: Vec<(String, String)> = conn
        .prepare("SELECT actor, recorded_at FROM remittance_payment WHERE reference LIKE 'A%' ORDER BY seq")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let names: Vec<&str> = actors.iter().map(|(a, _)| a.as_str()).collect();
    assert_eq!(names, vec!["officer:jane", "cron:nightly", "os:auditor7"]);
    for (_, at) in &actors {
        // The real clock, never --as-of: YYYY-MM-DDTHH:MM:SSZ.
        assert_eq!(at.len(), 20, "{at}");
        assert!(at.ends_with('Z') && !at.starts_with("2026-06-30"), "{at}");
    }
    // Every kind that is a command's own act carries both.
    for table in [
        "hold",
        "hold_release",
        "remittance_payment",
        "period_close",
        "import_batch",
        "payment_reversal",
        "policy_withdrawal",
    ] {
        let missing: i64 = conn
            .query_row(
                &format!("SELECT count(*) FROM {table} WHERE actor IS NULL OR recorded_at IS NULL"),
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(missing, 0, "{table}");
    }
    drop(conn);
    let (code, _, stderr) = run(&db, &["verify"]);
    assert_eq!(code, 0, "{stderr}");
    // A bad actor is bad input, before anything is written.
    let before = digest(&db);
    let output = qledger_at(
        &db,
        AS_OF,
        &[&remit[..], &["--reference", "A4", "--actor", ""]].concat(),
    )
    .output()
    .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(digest(&db), before);
}
