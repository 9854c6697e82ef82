//! Tamper evidence: with the triggers dropped, changing any one column of
//! any one entry makes `verify` exit 3 and name that entry; digests taken
//! earlier catch a chain rewritten consistently.

mod common;

use quotaledger::store::verify::{verify_ledger_chunked, Chunking};

/// One thread; two threads over two halves of the chain; two threads
/// taking chunks of 3 entries in turn.
const CHUNKINGS: [Chunking; 3] = [
    Chunking {
        parallel_entries_min: 1_000_000,
        chunk_entries: 1_000_000,
    },
    Chunking {
        parallel_entries_min: 2,
        chunk_entries: 1_000_000,
    },
    Chunking {
        parallel_entries_min: 2,
        chunk_entries: 3,
    },
];

use common::*;
use rusqlite::types::Value;
use rusqlite::Connection;
use std::path::Path;

fn columns_of(conn: &Connection, table: &str) -> Vec<String> {
    conn.prepare(&format!(
        "SELECT name FROM pragma_table_info('{table}') ORDER BY cid"
    ))
    .unwrap()
    .query_map([], |r| r.get(0))
    .unwrap()
    .collect::<Result<_, _>>()
    .unwrap()
}

/// Candidate replacement values for a column, most generic first; the
/// first one the table's CHECK constraints accept is used.
fn candidates(current: &Value) -> Vec<Value> {
    let text = |s: &str| Value::Text(s.to_string());
    match current {
        Value::Integer(n) => vec![Value::Integer(n + 1), Value::Integer(n - 1)],
        Value::Text(s) => {
            let mut list = vec![Value::Text(format!("{s}x"))];
            for alternative in [
                "approved",
                "revoked",
                "pass",
                "fail",
                "sale",
                "return",
                "period",
                "cumulative",
                "month",
                "quarter",
                "policy",
                "customers",
                "lots",
                "sales",
            ] {
                if alternative != s {
                    list.push(text(alternative));
                }
            }
            list
        }
        Value::Null => vec![text("x"), Value::Integer(1)],
        Value::Blob(b) => {
            let mut flipped = b.clone();
            flipped[0] ^= 1;
            vec![Value::Blob(flipped)]
        }
        Value::Real(_) => unreachable!("no REAL columns"),
    }
}

fn copy_ledger(from: &Path, to: &Path) {
    settle(from);
    std::fs::copy(from, to).unwrap();
}

#[test]
fn changing_any_column_of_any_entry_is_caught() {
    let (dir, db) = loaded_ledger();
    append_every_other_kind(&db);
    let (code, _, stderr) = run(&db, &["verify"]);
    assert_eq!(code, 0, "{stderr}");

    let conn = Connection::open(&db).unwrap();
    let mut cases = Vec::new();
    for table in ledger_tables() {
        let seqs: Vec<i64> = conn
            .prepare(&format!("SELECT seq FROM {table} ORDER BY seq"))
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(!seqs.is_empty(), "{table} has entries");
        for seq in seqs {
            for column in columns_of(&conn, table) {
                cases.push((table, seq, column));
            }
        }
    }
    drop(conn);
    let tampered = dir.path().join("tampered.sqlite");
    let mut checked = 0;
    for (table, seq, column) in &cases {
        let _ = std::fs::remove_file(&tampered);
        copy_ledger(&db, &tampered);
        let conn = Connection::open(&tampered).unwrap();
        let triggers = drop_triggers(&conn);
        // A forger can ignore CHECK constraints too; verify must not rely on them.
        conn.pragma_update(None, "ignore_check_constraints", "ON")
            .unwrap();
        if column == "seq" {
            conn.execute(
                &format!("UPDATE {table} SET seq = seq + 100000 WHERE seq = ?1"),
                [seq],
            )
            .unwrap();
        } else {
            let current: Value = conn
                .query_row(
                    &format!("SELECT {column} FROM {table} WHERE seq = ?1"),
                    [seq],
                    |r| r.get(0),
                )
                .unwrap();
            let changed = candidates(&current).into_iter().any(|candidate| {
                conn.execute(
                    &format!("UPDATE {table} SET {column} = ?1 WHERE seq = ?2"),
                    rusqlite::params![candidate, seq],
                )
                .is_ok()
            });
            assert!(changed, "could not change {table}.{column} of entry {seq}");
        }
        restore_triggers(&conn, &triggers);
        drop(conn);
        let output = qledger(&tampered, &["--json", "verify"]).output().unwrap();
        let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        let context = format!("{table}.{column} of entry {seq}: {report}");
        assert_eq!(output.status.code(), Some(3), "{context}");
        assert_eq!(report["ok"], false, "{context}");
        assert_eq!(report["first_bad_entry"], *seq, "{context}");
        assert!(!report["message"].as_str().unwrap().is_empty());
        for chunking in CHUNKINGS {
            let report = verify_ledger_chunked(&tampered, &[], chunking).unwrap();
            let context = format!("{table}.{column} of entry {seq}, {chunking:?}: {report:?}");
            assert!(!report.ok(), "{context}");
            assert_eq!(report.first_bad_entry, Some(*seq), "{context}");
        }
        checked += 1;
    }
    assert!(checked > 150, "only {checked} cases");
}

#[test]
fn removing_the_last_entry_is_caught_by_an_earlier_digest() {
    let (dir, db) = loaded_ledger();
    let taken = digest(&db);
    let tampered = dir.path().join("tampered.sqlite");
    copy_ledger(&db, &tampered);
    let conn = Connection::open(&tampered).unwrap();
    let triggers = drop_triggers(&conn);
    conn.execute(
        "DELETE FROM import_batch WHERE seq = (SELECT max(seq) FROM import_batch)",
        [],
    )
    .unwrap();
    restore_triggers(&conn, &triggers);
    drop(conn);
    let (code, _, _) = run(&tampered, &["verify"]);
    assert_eq!(
        code, 0,
        "a truncated chain is self-consistent; only a digest catches it"
    );
    let (code, report, _) = run_json(&tampered, &["verify", "--digest", &taken]);
    assert_eq!(code, 3);
    assert_eq!(report["ok"], false);
    assert!(
        report["message"].as_str().unwrap().contains("removed"),
        "{report}"
    );
}

#[test]
fn digest_taken_earlier_is_accepted_after_more_appends_and_a_wrong_one_is_not() {
    let (_dir, db) = new_ledger();
    let policy = fixture("policy.csv");
    run(&db, &["policy", "import", policy.to_str().unwrap()]);
    let early = digest(&db);
    let customers = fixture("customers.csv");
    run(&db, &["customers", "import", customers.to_str().unwrap()]);
    assert_ne!(digest(&db), early);

    let (code, report, stderr) = run_json(&db, &["verify", "--digest", &early]);
    assert_eq!(code, 0, "{report} {stderr}");
    assert_eq!(report["ok"], true);

    let (count, hash) = early.split_once(':').unwrap();
    let mut wrong_hash: Vec<char> = hash.chars().collect();
    wrong_hash[10] = if wrong_hash[10] == '0' { '1' } else { '0' };
    let wrong = format!("{count}:{}", wrong_hash.into_iter().collect::<String>());
    let (code, report, _) = run_json(&db, &["verify", "--digest", &wrong]);
    assert_eq!(code, 3);
    assert_eq!(report["ok"], false);
    assert_eq!(report["first_bad_entry"], count.parse::<i64>().unwrap());

    let beyond = format!("999:{hash}");
    let (code, _, _) = run(&db, &["verify", "--digest", &beyond]);
    assert_eq!(code, 3, "a digest past the head means entries were removed");

    for malformed in ["abc", "5", "5:zz", "0:00", &format!("x:{hash}")] {
        let (code, _, _) = run(&db, &["verify", "--digest", malformed]);
        assert_eq!(code, 2, "{malformed}");
    }
}

#[test]
fn the_documented_encoding_recomputes_the_head() {
    let (_dir, db) = loaded_ledger();
    append_every_other_kind(&db);
    let conn = Connection::open(&db).unwrap();
    let chain = recompute_independently(&conn);
    let (_, last_seq, last_hash) = chain.last().unwrap();
    assert_eq!(
        digest(&db),
        format!("{last_seq}:{}", hex::encode(last_hash))
    );
}

#[test]
fn a_consistently_rewritten_chain_passes_plain_verify_but_not_an_earlier_digest() {
    let (dir, db) = loaded_ledger();
    let taken = digest(&db);
    let forged = dir.path().join("forged.sqlite");
    copy_ledger(&db, &forged);
    let conn = Connection::open(&forged).unwrap();
    let triggers = drop_triggers(&conn);
    // Lower a lot's approved units, then recompute every later hash.
    conn.execute(
        "UPDATE lot_event SET units = 1 WHERE seq = (SELECT min(seq) FROM lot_event)",
        [],
    )
    .unwrap();
    rehash(&conn);
    restore_triggers(&conn, &triggers);
    drop(conn);
    let (code, _, _) = run(&forged, &["verify"]);
    assert_eq!(code, 0, "the forger recomputed every hash");
    let (code, report, _) = run_json(&forged, &["verify", "--digest", &taken]);
    assert_eq!(code, 3, "{report}");
    assert_eq!(report["ok"], false);
}

#[test]
fn the_auditor_script_in_the_repo_recomputes_the_head() {
    let (dir, db) = loaded_ledger();
    append_every_other_kind(&db);
    let script = root().join("scripts").join("audit_chain.py");
    let output = std::process::Command::new("python3")
        .arg(&script)
        .arg(&db)
        .output()
        .expect("python3 runs (it is on every machine of this kind)");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        String::from_utf8(output.stdout).unwrap().trim(),
        digest(&db)
    );

    // And it notices a change, like verify does.
    let tampered = dir.path().join("t.sqlite");
    copy_ledger(&db, &tampered);
    let conn = Connection::open(&tampered).unwrap();
    let triggers = drop_triggers(&conn);
    conn.execute("UPDATE customer_event SET name = 'Someone else' WHERE seq = (SELECT min(seq) FROM customer_event)", [])
        .unwrap();
    restore_triggers(&conn, &triggers);
    drop(conn);
    let output = std::process::Command::new("python3")
        .arg(&script)
        .arg(&tampered)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));

    // A renamed column is refused before anything is hashed.
    copy_ledger(&db, &tampered);
    let conn = Connection::open(&tampered).unwrap();
    conn.execute_batch("ALTER TABLE hold RENAME COLUMN units TO quantity")
        .unwrap();
    drop(conn);
    let audit = |args: &[&Path]| {
        std::process::Command::new("python3")
            .arg(&script)
            .args(args)
            .output()
            .unwrap()
    };
    let output = audit(&[&tampered]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("hold has columns"));

    // A checkpoint: its signature (through openssl), its ledger and its head.
    let key = dir.path().join("key.pem");
    run_ok(
        qledger_at(&db, AS_OF, &["keygen", "--out", key.to_str().unwrap()]),
        "keygen",
    );
    let checkpoint = dir.path().join("c.json");
    run_ok(
        qledger_at(
            &db,
            AS_OF,
            &[
                "checkpoint",
                "--key",
                key.to_str().unwrap(),
                "--out",
                checkpoint.to_str().unwrap(),
            ],
        ),
        "checkpoint",
    );
    let output = audit(&[&db, &checkpoint]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut forged: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&checkpoint).unwrap()).unwrap();
    forged["head"] = "00".repeat(32).into();
    let forged_file = dir.path().join("forged.json");
    std::fs::write(&forged_file, forged.to_string()).unwrap();
    let output = audit(&[&db, &forged_file]);
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("signature"));
}

#[test]
fn derived_totals_and_rows_outside_the_chain_are_caught() {
    let (dir, db) = loaded_ledger();
    append_every_other_kind(&db);
    // An active hold, so derived_held_units has a row to tamper with.
    reserve_active_hold(&db, "PO-3", "3");
    let tampered = dir.path().join("t.sqlite");
    for (name, sql) in [
        ("held", "UPDATE derived_held_units SET held_units = held_units + 1"),
        ("held-gone", "DELETE FROM derived_held_units"),
        ("held-zero", "INSERT INTO derived_held_units VALUES ('H200', '2026-05-05', '2026-06-01', '', 0)"),
        ("daily", "UPDATE derived_daily_units SET us_net_units = us_net_units + 1 WHERE (chip, day) = (SELECT chip, day FROM derived_daily_units LIMIT 1)"),
        ("daily-extra", "INSERT INTO derived_daily_units VALUES ('H200', '2026-05-05', 0, 1, 0)"),
        ("lot", "UPDATE derived_lot_units SET shipped_net_units = 0"),
        ("outside", "INSERT INTO sale SELECT -1, 'FORGED', kind, sale_date, chip, market, customer_id, units, unit_price_usd_e4, lot_id, order_ref, reverses, hold_seq, drawn_units, accepted_rules, accepted_reason, hash FROM sale LIMIT 1"),
    ] {
        copy_ledger(&db, &tampered);
        let conn = Connection::open(&tampered).unwrap();
        let triggers = drop_triggers(&conn);
        conn.execute_batch(sql).unwrap();
        restore_triggers(&conn, &triggers);
        drop(conn);
        let output = qledger(&tampered, &["--json", "verify"]).output().unwrap();
        let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        assert_eq!(output.status.code(), Some(3), "{name}: {report}");
        assert_eq!(report["ok"], false);
        if name == "outside" {
            assert_eq!(report["first_bad_entry"], -1, "{report}");
        } else {
            assert!(report["first_bad_entry"].is_null(), "{report}");
            assert!(report["message"].as_str().unwrap().contains("derived_"), "{report}");
        }
        for chunking in CHUNKINGS {
            let report = verify_ledger_chunked(&tampered, &[], chunking).unwrap();
            let context = format!("{name}, {chunking:?}: {report:?}");
            assert!(!report.ok(), "{context}");
            let message = report.message.as_deref().unwrap_or_default();
            if name == "outside" {
                assert_eq!(report.first_bad_entry, Some(-1), "{context}");
            } else {
                assert!(report.first_bad_entry.is_none() && message.contains("derived_"), "{context}");
            }
        }
        std::fs::remove_file(&tampered).unwrap();
    }
}

#[test]
fn a_changed_schema_is_caught_by_verify_and_refused_by_writes_and_report() {
    let (dir, db) = loaded_ledger();
    append_every_other_kind(&db);
    let sales = write_file(
        dir.path(),
        "s.csv",
        "record_id,sale_date,chip,market,customer_id,units,unit_price_usd\nZ-1,2026-06-01,H200,US,,1,1\n",
    );
    let tampered = dir.path().join("t.sqlite");
    for (object, sql) in [
        ("sale_no_update", "DROP TRIGGER sale_no_update"),
        ("ledger_entries", "DROP VIEW ledger_entries; CREATE VIEW ledger_entries AS SELECT seq, 'sale' AS kind, hash FROM sale"),
        ("extra_view", "CREATE VIEW extra_view AS SELECT 1"),
        ("shadow", "CREATE TABLE shadow (x INTEGER)"),
        ("sale_by_chip", "CREATE INDEX sale_by_chip ON sale (chip)"),
        ("hold_by_order", "DROP INDEX hold_by_order"),
    ] {
        copy_ledger(&db, &tampered);
        let conn = Connection::open(&tampered).unwrap();
        conn.execute_batch(sql).unwrap();
        drop(conn);
        let before = digest(&tampered);
        let output = qledger(&tampered, &["--json", "verify"]).output().unwrap();
        let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        assert_eq!(output.status.code(), Some(3), "{object}: {report}");
        let message = report["message"].as_str().unwrap();
        assert!(message.contains(object), "{object}: {message}");
        for args in [
            &["report", "--period", "2026-Q1"][..],
            &["import", sales.to_str().unwrap()][..],
            &["remit", "--period", "2026-Q2", "--amount", "1", "--paid-on", "2026-06-01", "--reference", "S"][..],
        ] {
            let output = qledger(&tampered, args).output().unwrap();
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert_eq!(output.status.code(), Some(3), "{object}, {args:?}: {stderr}");
            assert!(stderr.contains(object), "{stderr}");
        }
        assert_eq!(digest(&tampered), before, "{object}: nothing written");
        std::fs::remove_file(&tampered).unwrap();
    }
    // Dropped and made again with the same SQL is not a change.
    copy_ledger(&db, &tampered);
    let conn = Connection::open(&tampered).unwrap();
    let sql: String = conn
        .query_row(
            "SELECT sql FROM sqlite_master WHERE name = 'sale_no_update'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    conn.execute_batch(&format!("DROP TRIGGER sale_no_update; {sql};"))
        .unwrap();
    drop(conn);
    let (code, _, stderr) = run(&tampered, &["verify"]);
    assert_eq!(code, 0, "{stderr}");
}

/// (exit code, stdout, stderr) of `qledger` at the test as-of date.
fn output_of(db: &Path, args: &[&str]) -> (i32, String, String) {
    let output = qledger(db, args).output().unwrap();
    (
        output.status.code().unwrap(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn signed_checkpoints_catch_truncation_and_rewrites_and_refuse_forged_signatures() {
    let (dir, db) = loaded_ledger();
    append_every_other_kind(&db);
    let key = dir.path().join("key.pem");
    let (code, keygen, stderr) =
        output_of(&db, &["--json", "keygen", "--out", key.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    let keygen: serde_json::Value = serde_json::from_str(&keygen).unwrap();
    let public = keygen["public_key"].as_str().unwrap().to_string();
    assert_eq!(public.len(), 64);
    assert_eq!(keygen["key_id"].as_str().unwrap().len(), 16);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let (code, _, _) = output_of(&db, &["keygen", "--out", key.to_str().unwrap()]);
    assert_eq!(code, 2, "an existing key file is never overwritten");
    let checkpoint = dir.path().join("checkpoint.json");
    let (code, _, stderr) = output_of(
        &db,
        &[
            "checkpoint",
            "--key",
            key.to_str().unwrap(),
            "--out",
            checkpoint.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    let signed: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&checkpoint).unwrap()).unwrap();
    assert_eq!(
        format!("{}:{}", signed["entries"], signed["head"].as_str().unwrap()),
        digest(&db)
    );
    let verify_against = |ledger: &Path, file: &Path, trust: Option<&str>| {
        let mut args = vec!["--json", "verify", "--checkpoint", file.to_str().unwrap()];
        if let Some(trust) = trust {
            args.extend(["--trust", trust]);
        }
        output_of(ledger, &args)
    };
    let (code, _, stderr) = verify_against(&db, &checkpoint, Some(&public));
    assert_eq!(code, 0, "{stderr}");

    // The ledger goes on: a checkpoint stays valid for every later state.
    run_ok(
        qledger_at(
            &db,
            "2026-06-30",
            &[
                "remit",
                "--period",
                "2026-Q1",
                "--amount",
                "1",
                "--paid-on",
                "2026-06-30",
                "--reference",
                "W9",
            ],
        ),
        "remit",
    );
    assert_eq!(verify_against(&db, &checkpoint, None).0, 0);

    let tampered = dir.path().join("t.sqlite");
    let entries = signed["entries"].as_i64().unwrap();
    let close_seq: i64 = Connection::open(&db)
        .unwrap()
        .query_row("SELECT seq FROM period_close", [], |r| r.get(0))
        .unwrap();
    let cut_from = |first: i64| -> String {
        ledger_tables()
            .iter()
            .map(|table| format!("DELETE FROM {table} WHERE seq >= {first};"))
            .collect()
    };
    let attacks: [(&str, String); 3] = [
        ("truncated by one", cut_from(entries)),
        ("truncated by a whole period", cut_from(close_seq)),
        (
            "rewritten",
            "UPDATE customer_event SET name = 'Someone else' WHERE seq = (SELECT min(seq) FROM customer_event)"
                .to_string(),
        ),
    ];
    for (attack, sql) in attacks {
        copy_ledger(&db, &tampered);
        let conn = Connection::open(&tampered).unwrap();
        let triggers = drop_triggers(&conn);
        conn.execute_batch(&sql).unwrap();
        rehash(&conn);
        restore_triggers(&conn, &triggers);
        drop(conn);
        let (code, report, _) = verify_against(&tampered, &checkpoint, Some(&public));
        assert_eq!(code, 3, "{attack}: {report}");
        let report: serde_json::Value = serde_json::from_str(&report).unwrap();
        assert!(
            report["message"].as_str().unwrap().contains("checkpoint"),
            "{attack}: {report}"
        );
        std::fs::remove_file(&tampered).unwrap();
    }

    // A flipped signature byte, an altered statement, an untrusted key.
    let forged = dir.path().join("forged.json");
    let mut flipped = signed.clone();
    let mut signature = base64_decode(signed["signature"].as_str().unwrap());
    signature[10] ^= 1;
    flipped["signature"] = base64_encode(&signature).into();
    std::fs::write(&forged, flipped.to_string()).unwrap();
    let (code, _, stderr) = verify_against(&db, &forged, None);
    assert_eq!(code, 3, "{stderr}");
    let mut altered = signed.clone();
    altered["entries"] = (signed["entries"].as_i64().unwrap() - 1).into();
    std::fs::write(&forged, altered.to_string()).unwrap();
    assert_eq!(verify_against(&db, &forged, None).0, 3);
    let other_key = dir.path().join("other.pem");
    let (_, other, _) = output_of(
        &db,
        &["--json", "keygen", "--out", other_key.to_str().unwrap()],
    );
    let other: serde_json::Value = serde_json::from_str(&other).unwrap();
    let (code, report, _) = verify_against(&db, &checkpoint, other["public_key"].as_str());
    assert_eq!(code, 3, "{report}");
    assert!(report.contains("not a trusted key"), "{report}");

    // A ledger that fails verify is never signed.
    copy_ledger(&db, &tampered);
    let conn = Connection::open(&tampered).unwrap();
    let triggers = drop_triggers(&conn);
    conn.execute_batch("UPDATE sale SET units = units + 1 WHERE seq = (SELECT min(seq) FROM sale)")
        .unwrap();
    restore_triggers(&conn, &triggers);
    drop(conn);
    let (code, stdout, stderr) =
        output_of(&tampered, &["checkpoint", "--key", key.to_str().unwrap()]);
    assert_eq!(code, 3, "{stderr}");
    assert!(stdout.is_empty());
}

fn base64_decode(text: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .unwrap()
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[test]
fn forged_acts_with_correct_hashes_are_caught() {
    let (dir, db) = loaded_ledger();
    append_every_other_kind(&db);
    let tampered = dir.path().join("t.sqlite");
    let attacks = [
        (
            "a sale outside any import",
            "INSERT INTO sale (seq, record_id, kind, sale_date, chip, market, customer_id, units, unit_price_usd_e4, hash) \
             SELECT (SELECT max(seq) FROM ledger_entries) + 1, 'FORGED-1', 'sale', '2026-02-16', 'H200', 'US', NULL, 100000, 1, x'00'",
            "no import batch",
        ),
        (
            "a sale dated after its import's as-of date",
            "UPDATE sale SET sale_date = '2026-02-13' WHERE record_id = 'S-2'",
            "after the as-of date",
        ),
        (
            "a clock that ran backwards",
            "UPDATE hold_release SET released_on = '2026-02-14'",
            "clock ran backwards",
        ),
    ];
    for (attack, sql, expected) in attacks {
        copy_ledger(&db, &tampered);
        let conn = Connection::open(&tampered).unwrap();
        let triggers = drop_triggers(&conn);
        conn.execute_batch(sql).unwrap();
        rehash(&conn);
        restore_triggers(&conn, &triggers);
        drop(conn);
        let output = qledger(&tampered, &["--json", "verify"]).output().unwrap();
        let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        assert_eq!(output.status.code(), Some(3), "{attack}: {report}");
        assert!(
            report["message"].as_str().unwrap().contains(expected),
            "{attack}: {report}"
        );
        std::fs::remove_file(&tampered).unwrap();
    }
}

/// Rewrites the chain after `sql` as a careful forger would: every hash,
/// and the head each close names (then every hash again).
fn forge(db: &std::path::Path, sql: &str) {
    let conn = Connection::open(db).unwrap();
    let triggers = drop_triggers(&conn);
    conn.execute_batch(sql).unwrap();
    rehash(&conn);
    conn.execute_batch(
        "UPDATE period_close SET head_hash =
           (SELECT e.hash FROM ledger_entries AS e WHERE e.seq = period_close.head_entries);",
    )
    .unwrap();
    rehash(&conn);
    restore_triggers(&conn, &triggers);
}

/// The entry number of a sale.
fn seq_of(db: &std::path::Path, record_id: &str) -> i64 {
    let conn = Connection::open(db).unwrap();
    conn.query_row(
        "SELECT seq FROM sale WHERE record_id = ?1",
        [record_id],
        |row| row.get(0),
    )
    .unwrap()
}

#[test]
fn verify_replays_every_rule_and_names_the_unlawful_entry() {
    let (dir, db) = loaded_ledger();
    append_every_other_kind(&db);
    let (code, _, stderr) = run(&db, &["verify"]);
    assert_eq!(code, 0, "the honest ledger replays cleanly: {stderr}");
    let s1 = seq_of(&db, "S-1");
    let s2 = seq_of(&db, "S-2");
    let release: i64 = Connection::open(&db)
        .unwrap()
        .query_row("SELECT seq FROM hold_release", [], |row| row.get(0))
        .unwrap();
    let revocation: i64 = Connection::open(&db)
        .unwrap()
        .query_row(
            "SELECT seq FROM token_event WHERE event = 'revoked'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    let tampered = dir.path().join("t.sqlite");
    // Each forgery keeps every derived table consistent with it, as a
    // careful forger would: only the rules can tell.
    let attacks: [(&str, &str, i64, &str); 8] = [
        (
            "a revocation of a token that never worked",
            "UPDATE token_event SET name = 'ghost' WHERE event = 'revoked';",
            revocation,
            "no such token worked",
        ),
        (
            "cap: 60 restricted units against a limit of 50",
            "UPDATE sale SET units = 60 WHERE record_id = 'S-1';
             UPDATE derived_daily_units SET restricted_net_units = restricted_net_units + 50
               WHERE chip = 'H200' AND day = '2026-02-10';
             UPDATE derived_lot_units SET shipped_net_units = shipped_net_units + 50
               WHERE lot_id = 'L-H200-0001' AND period = '2026-Q1';
             UPDATE derived_period_revenue SET sales_usd_e4 = CAST(CAST(sales_usd_e4 AS INTEGER) + 50 * 300000000 AS TEXT)
               WHERE chip = 'H200' AND period = '2026-Q1' AND remittance_rate = '0.25';",
            s1,
            "(rule cap)",
        ),
        (
            "customer: one without an end-use certificate",
            "UPDATE sale SET customer_id = 'C-GAMMA' WHERE record_id = 'S-1';",
            s1,
            "(rule customer)",
        ),
        (
            "lot: one that failed its test",
            "UPDATE sale SET lot_id = 'L-H200-0003' WHERE record_id = 'S-1';
             UPDATE derived_lot_units SET shipped_net_units = shipped_net_units - 10
               WHERE lot_id = 'L-H200-0001' AND period = '2026-Q1';
             INSERT INTO derived_lot_units VALUES ('L-H200-0003', '2026-Q1', 10);",
            s1,
            "(rule lot)",
        ),
        (
            "policy: a forbidden chip's violation no longer marked",
            "UPDATE sale SET accepted_rules = NULL, accepted_reason = NULL WHERE record_id = 'S-2';",
            s2,
            "(rule policy)",
        ),
        (
            "accepted for rules other than those it broke",
            "UPDATE sale SET accepted_rules = 'cap' WHERE record_id = 'S-2';",
            s2,
            "recorded as accepted for 'cap'",
        ),
        (
            "a lawful row marked as an accepted violation",
            "UPDATE sale SET accepted_rules = 'cap', accepted_reason = 'x' WHERE record_id = 'S-1';",
            s1,
            "broke no rule",
        ),
        (
            "a release of more than the hold held",
            "UPDATE hold_release SET released_units = released_units + 1;",
            release,
            "was not active with",
        ),
    ];
    for (attack, sql, seq, expected) in attacks {
        copy_ledger(&db, &tampered);
        forge(&tampered, sql);
        let output = qledger(&tampered, &["--json", "verify"]).output().unwrap();
        let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        assert_eq!(output.status.code(), Some(3), "{attack}: {report}");
        assert_eq!(report["first_bad_entry"], seq, "{attack}: {report}");
        let message = report["message"].as_str().unwrap();
        assert!(
            message.contains("not lawful") && message.contains(expected),
            "{attack}: {report}"
        );
        // The same on one thread and with the replay beside the chain check.
        for chunking in CHUNKINGS {
            let report = verify_ledger_chunked(&tampered, &[], chunking).unwrap();
            assert_eq!(report.first_bad_entry, Some(seq), "{attack}: {chunking:?}");
        }
        std::fs::remove_file(&tampered).unwrap();
    }
    // A second release of a hold already released.
    copy_ledger(&db, &tampered);
    forge(
        &tampered,
        "INSERT INTO hold_release (seq, hold_seq, order_ref, released_units, released_on, hash, actor, recorded_at)
         SELECT (SELECT max(seq) FROM ledger_entries) + 1, hold_seq, order_ref, 5, '2026-02-16', x'00',
                'os:forger', '2026-02-16T00:00:00Z' FROM hold_release;",
    );
    let conn = Connection::open(&tampered).unwrap();
    let forged: i64 = conn
        .query_row("SELECT max(seq) FROM hold_release", [], |row| row.get(0))
        .unwrap();
    drop(conn);
    let output = qledger(&tampered, &["--json", "verify"]).output().unwrap();
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(output.status.code(), Some(3), "{report}");
    assert_eq!(report["first_bad_entry"], forged, "{report}");
}

/// Every leaf of a JSON value, as a path of keys and indexes.
fn leaves(value: &serde_json::Value, path: Vec<String>, out: &mut Vec<Vec<String>>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, child) in map {
                let mut next = path.clone();
                next.push(key.clone());
                leaves(child, next, out);
            }
        }
        serde_json::Value::Array(items) => {
            for (index, child) in items.iter().enumerate() {
                let mut next = path.clone();
                next.push(index.to_string());
                leaves(child, next, out);
            }
        }
        _ => out.push(path),
    }
}

fn leaf_mut<'a>(value: &'a mut serde_json::Value, path: &[String]) -> &'a mut serde_json::Value {
    path.iter().fold(value, |value, key| match value {
        serde_json::Value::Array(items) => &mut items[key.parse::<usize>().unwrap()],
        other => &mut other[key.as_str()],
    })
}

#[test]
fn every_field_of_a_sealed_close_is_checked() {
    let (dir, db) = loaded_ledger();
    let sales = write_file(
        dir.path(),
        "q1.csv",
        "record_id,sale_date,chip,market,customer_id,units,unit_price_usd,lot_id\n\
         U-1,2026-02-09,H200,US,,100,30000,\n\
         S-1,2026-02-10,H200,CN,C-ALPHA,10,30000,L-H200-0001\n\
         S-2,2026-02-12,B200,CN,C-ALPHA,1,1,\n",
    );
    run_ok(
        qledger_at(
            &db,
            "2026-02-12",
            &[
                "import",
                sales.to_str().unwrap(),
                "--accept-violations",
                "--reason",
                "shipped before review",
            ],
        ),
        "import",
    );
    run_ok(reserve_command(&db, "2026-02-15", "PO-2", "5"), "reserve");
    run_ok(
        qledger_at(&db, "2026-04-01", &["close", "--period", "2026-Q1"]),
        "close",
    );
    let (close_seq, figures): (i64, String) = Connection::open(&db)
        .unwrap()
        .query_row("SELECT seq, figures FROM period_close", [], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })
        .unwrap();
    let sealed: serde_json::Value = serde_json::from_str(&figures).unwrap();
    let mut paths = Vec::new();
    leaves(&sealed, Vec::new(), &mut paths);
    assert!(
        paths.len() > 60,
        "a close with chips, a lot, a violation and imports: {sealed}"
    );
    let tampered = dir.path().join("t.sqlite");
    for path in paths {
        let mut forged = sealed.clone();
        let leaf = leaf_mut(&mut forged, &path);
        *leaf = match leaf.clone() {
            serde_json::Value::Number(n) => serde_json::json!(n.as_i64().unwrap() + 1),
            serde_json::Value::String(text) => serde_json::json!(format!("{text}0")),
            serde_json::Value::Bool(flag) => serde_json::json!(!flag),
            serde_json::Value::Null => serde_json::json!(1),
            other => panic!("not a leaf: {other}"),
        };
        let text = serde_json::to_string(&forged).unwrap().replace('\'', "''");
        copy_ledger(&db, &tampered);
        forge(
            &tampered,
            &format!("UPDATE period_close SET figures = '{text}';"),
        );
        let output = qledger(&tampered, &["--json", "verify"]).output().unwrap();
        let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        assert_eq!(output.status.code(), Some(3), "{path:?}: {report}");
        assert_eq!(report["first_bad_entry"], close_seq, "{path:?}: {report}");
        std::fs::remove_file(&tampered).unwrap();
    }
}

#[test]
fn export_holds_every_entry_and_its_fields_recompute_the_chain() {
    use sha2::{Digest, Sha256};
    let (dir, db) = loaded_ledger();
    append_every_other_kind(&db);
    let output = qledger(&db, &["export", "--format", "jsonl"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0));
    let text = String::from_utf8(output.stdout).unwrap();
    let netstring = |bytes: &[u8]| {
        let mut out = format!("{}:", bytes.len()).into_bytes();
        out.extend_from_slice(bytes);
        out.push(b',');
        out
    };
    let encode = |value: &serde_json::Value| match value {
        serde_json::Value::Null => b"~,".to_vec(),
        serde_json::Value::Number(n) => netstring(n.to_string().as_bytes()),
        serde_json::Value::String(s) => netstring(s.as_bytes()),
        other => panic!("unexpected {other}"),
    };
    let mut previous = [0u8; 32];
    let mut kinds = std::collections::BTreeSet::new();
    let mut count = 0;
    for (index, line) in text.lines().enumerate() {
        let entry: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(entry["seq"], index as i64 + 1, "in order, without gaps");
        let table = entry["kind"].as_str().unwrap();
        kinds.insert(table.to_string());
        let kind = quotaledger::store::entry::ALL_KINDS
            .iter()
            .find(|k| k.table == table)
            .unwrap();
        let mut canonical = netstring(entry["seq"].to_string().as_bytes());
        canonical.extend(netstring(table.as_bytes()));
        for column in kind.columns {
            let name = if *column == "kind" {
                "sale_kind"
            } else {
                column
            };
            canonical.extend(encode(&entry[name]));
        }
        for column in kind.trailing() {
            if !entry[column].is_null() {
                canonical.extend(netstring(column.as_bytes()));
                canonical.extend(encode(&entry[column]));
            }
        }
        let mut hasher = Sha256::new();
        hasher.update(previous);
        hasher.update(&canonical);
        previous = hasher.finalize().into();
        assert_eq!(entry["hash"], hex::encode(previous), "entry {}", index + 1);
        count += 1;
    }
    let all: std::collections::BTreeSet<String> =
        ledger_tables().into_iter().map(str::to_string).collect();
    assert_eq!(kinds, all, "every entry kind is exported");
    assert_eq!(
        format!("{count}:{}\n", hex::encode(previous)),
        run(&db, &["digest"]).1
    );
    // CSV: one row per entry, with every kind's columns; a range.
    let output = qledger(
        &db,
        &["export", "--format", "csv", "--from", "2", "--to", "4"],
    )
    .output()
    .unwrap();
    let csv = String::from_utf8(output.stdout).unwrap();
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    let seqs: Vec<String> = reader
        .records()
        .map(|r| r.unwrap()[0].to_string())
        .collect();
    assert_eq!(seqs, ["2", "3", "4"]);
    assert_eq!(
        run(&db, &["--json", "export", "--format", "csv"]).0,
        2,
        "--json means jsonl"
    );
    assert_eq!(run(&db, &["export", "--from", "5", "--to", "4"]).0, 2);
    drop(dir);
}
