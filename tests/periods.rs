//! Periods (SPEC §3.7, §3.8, §5): remittance to the cent, the report in its
//! three formats, remit, close and what it seals.

mod common;

use common::*;
use serde_json::Value as Json;
use std::path::{Path, PathBuf};
use tempfile::TempDir;

const SALES: &str = "record_id,sale_date,chip,market,customer_id,units,unit_price_usd,lot_id,order_ref,kind,reverses\n";

/// H200: 25% until 2026-02-14, 20% from 2026-02-15 (uncapped, no lab or
/// approval needed, to isolate the money).
fn ledger() -> (TempDir, PathBuf) {
    let (dir, db) = new_ledger();
    let policy = write_file(
        dir.path(),
        "p.csv",
        "chip,effective_from,restricted_allowed,cap_ratio,cap_window,remittance_rate,lab_test_required,customer_approval_required,source\n\
         H200,2026-01-01,true,,,0.25,false,false,a\nH200,2026-02-15,true,,,0.2,false,false,b\n\
         CAPPED,2026-01-01,true,0.5,period,0.25,false,false,c\n",
    );
    assert_eq!(
        at(
            &db,
            SETUP_AS_OF,
            &["policy", "import", policy.to_str().unwrap()]
        )
        .0,
        0
    );
    (dir, db)
}

fn at(db: &Path, as_of: &str, args: &[&str]) -> (i32, Json, String) {
    let output = std::process::Command::new(assert_cmd::cargo::cargo_bin("qledger"))
        .arg("--db")
        .arg(db)
        .arg("--as-of")
        .arg(as_of)
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    let json = serde_json::from_str(&stdout).unwrap_or(Json::String(stdout));
    (output.status.code().unwrap(), json, stderr)
}

fn import(dir: &TempDir, db: &Path, name: &str, rows: &str) {
    let file = write_file(dir.path(), name, &format!("{SALES}{rows}"));
    let (code, summary, stderr) = at(
        db,
        &import_as_of(db, rows),
        &["--json", "import", file.to_str().unwrap()],
    );
    assert_eq!(code, 0, "{summary} {stderr}");
}

fn report(db: &Path, as_of: &str, period: &str) -> Json {
    let (code, json, stderr) = at(db, as_of, &["--json", "report", "--period", period]);
    assert_eq!(code, 0, "{stderr}");
    json
}

fn chip<'a>(report: &'a Json, name: &str) -> &'a Json {
    report["chips"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["chip"] == name)
        .unwrap()
}

#[test]
fn remittance_to_the_cent_with_mixed_rates_and_returns_across_periods() {
    let (dir, db) = ledger();
    // Q1: a sale under 25% on 2026-02-10, one under 20% on 2026-02-20, and a
    // return on 2026-02-20 of the 25% sale (at 25%, its original rate).
    //   S1: 3 × 1234.5678 = 3703.7034 at 0.25 = 925.92585
    //   S2: 7 × 0.0003    = 0.0021    at 0.2  = 0.00042
    //   R1: 1 × 1234.5678 = 1234.5678 at 0.25 = 308.64195
    //   due = round(925.92585 + 0.00042 - 308.64195, 2) = round(617.28432) = 617.28
    //   revenue = 3703.7034 + 0.0021 - 1234.5678 = 2469.1377
    import(&dir, &db, "q1.csv", "S1,2026-02-10,H200,CN,C,3,1234.5678,,,,\nS2,2026-02-20,H200,HK,C,7,0.0003,,,,\nR1,2026-02-20,H200,CN,C,1,,,,return,S1\n");
    let q1 = report(&db, "2026-06-30", "2026-Q1");
    let h200 = chip(&q1, "H200");
    assert_eq!(h200["restricted_revenue_usd"], "2469.1377");
    assert_eq!(h200["remittance_due_usd"], "617.28");
    assert_eq!(h200["status"], "uncapped");
    assert_eq!(q1["remittance"]["due_usd"], "617.28");
    // Q2: a return of S1 (made under 25%) while 20% is in force: at 25%,
    // and in Q2. 2 × 1234.5678 × 0.25 = 617.2839 -> -617.28.
    import(
        &dir,
        &db,
        "q2.csv",
        "R2,2026-04-02,H200,CN,C,2,,,,return,S1\n",
    );
    let q2 = report(&db, "2026-06-30", "2026-Q2");
    assert_eq!(chip(&q2, "H200")["restricted_revenue_usd"], "-2469.1356");
    assert_eq!(chip(&q2, "H200")["remittance_due_usd"], "-617.28");
    assert_eq!(q2["remittance"]["due_usd"], "-617.28");
    let q1_again = report(&db, "2026-06-30", "2026-Q1");
    assert_eq!(
        q1_again["chips"], q1["chips"],
        "Q1 unchanged by a Q2 return"
    );
    assert_eq!(q1_again["remittance"], q1["remittance"]);
}

#[test]
fn half_cents_round_away_from_zero_both_ways() {
    let (dir, db) = ledger();
    // 0.02 × 0.25 = 0.005 -> 0.01 in Q1; its return in Q2 -> -0.01.
    import(&dir, &db, "a.csv", "S1,2026-01-10,H200,CN,C,1,0.02,,,,\n");
    assert_eq!(
        chip(&report(&db, "2026-06-30", "2026-Q1"), "H200")["remittance_due_usd"],
        "0.01"
    );
    import(
        &dir,
        &db,
        "b.csv",
        "R1,2026-04-10,H200,CN,C,1,,,,return,S1\n",
    );
    assert_eq!(
        chip(&report(&db, "2026-06-30", "2026-Q2"), "H200")["remittance_due_usd"],
        "-0.01"
    );
    // Rounding is of the chip's exact sum, not of each row: three sales of
    // 0.0001 × 0.2 (20% from 2026-02-15) add 0.00006, so Q2 holds
    // -0.005 + 0.00006 = -0.00494 -> 0.00 (rounding each row would give -0.01).
    import(&dir, &db, "c.csv", "T1,2026-05-10,H200,CN,C,1,0.0001,,,,\nT2,2026-05-11,H200,CN,C,1,0.0001,,,,\nT3,2026-05-12,H200,CN,C,1,0.0001,,,,\n");
    assert_eq!(
        chip(&report(&db, "2026-06-30", "2026-Q2"), "H200")["remittance_due_usd"],
        "0.00"
    );
}

#[test]
fn payments_and_outstanding_including_overpayment() {
    let (dir, db) = ledger();
    import(&dir, &db, "a.csv", "S1,2026-01-10,H200,CN,C,10,100,,,,\n"); // due 250.00
    let (code, paid, _) = at(
        &db,
        "2026-04-10",
        &[
            "--json",
            "remit",
            "--period",
            "2026-Q1",
            "--amount",
            "100.5",
            "--paid-on",
            "2026-04-09",
            "--reference",
            "W1",
        ],
    );
    assert_eq!(code, 0);
    assert_eq!(
        paid,
        serde_json::json!({"period": "2026-Q1", "amount_usd": "100.5", "paid_on": "2026-04-09", "reference": "W1"})
    );
    let q1 = report(&db, "2026-04-10", "2026-Q1");
    assert_eq!(
        q1["remittance"],
        serde_json::json!({"due_usd": "250.00", "paid_usd": "100.5", "outstanding_usd": "149.50"})
    );
    at(
        &db,
        "2026-04-10",
        &[
            "remit",
            "--period",
            "2026-Q1",
            "--amount",
            "200.0001",
            "--paid-on",
            "2026-04-10",
            "--reference",
            "W2",
        ],
    );
    let q1 = report(&db, "2026-04-10", "2026-Q1");
    assert_eq!(
        q1["remittance"]["outstanding_usd"], "-50.5001",
        "overpaid, exact"
    );
    for bad in [
        vec![
            "remit",
            "--period",
            "2026-Q1",
            "--amount",
            "0",
            "--paid-on",
            "2026-04-09",
            "--reference",
            "W",
        ],
        vec![
            "remit",
            "--period",
            "2026-Q1",
            "--amount",
            "-5",
            "--paid-on",
            "2026-04-09",
            "--reference",
            "W",
        ],
        vec![
            "remit",
            "--period",
            "2026-Q1",
            "--amount",
            "1.00001",
            "--paid-on",
            "2026-04-09",
            "--reference",
            "W",
        ],
        vec![
            "remit",
            "--period",
            "2026-Q1",
            "--amount",
            "5",
            "--paid-on",
            "2026-04-11",
            "--reference",
            "W",
        ],
        vec![
            "remit",
            "--period",
            "2026-03",
            "--amount",
            "5",
            "--paid-on",
            "2026-04-09",
            "--reference",
            "W",
        ],
        vec![
            "remit",
            "--period",
            "2026-Q1",
            "--amount",
            "5",
            "--paid-on",
            "2026-04-09",
            "--reference",
            " ",
        ],
    ] {
        assert_eq!(at(&db, "2026-04-10", &bad).0, 2, "{bad:?}");
    }
}

#[test]
fn the_report_in_three_formats() {
    let (dir, db) = ledger();
    // A breach recorded with --accept-violations: 600 restricted over a limit of 500.
    let file = write_file(dir.path(), "a.csv", &format!("{SALES}U1,2026-01-05,CAPPED,US,,1000,10,,,,\nS1,2026-01-10,CAPPED,CN,C,600,1234567.5,,,,\n"));
    let (code, _, stderr) = at(
        &db,
        "2026-06-30",
        &[
            "import",
            file.to_str().unwrap(),
            "--accept-violations",
            "--reason",
            "shipped before the cap was known",
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    let json = report(&db, "2026-06-30", "2026-Q1");
    assert_eq!(
        json["violations"],
        serde_json::json!([{"record_id": "S1", "rules": ["cap"], "reason": "shipped before the cap was known"}])
    );
    let keys: Vec<&str> = json
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        vec![
            "period",
            "closed",
            "as_of",
            "ledger",
            "chips",
            "remittance",
            "lots",
            "violations",
            "imports",
            "late"
        ]
    );
    assert_eq!(
        json["late"],
        serde_json::Value::Null,
        "an open period has no late section"
    );
    let capped = chip(&json, "CAPPED");
    assert_eq!(
        capped,
        &serde_json::json!({"chip": "CAPPED", "us_units": 1000, "restricted_units": 600, "reserved_units": 0,
            "cap_ratio": "0.5", "cap_window": "period", "limit": 500, "headroom": -100, "status": "breach",
            "restricted_revenue_usd": "740740500", "remittance_due_usd": "185185125.00",
            "supply": null})
    );
    assert_eq!(
        json["ledger"]["entries"].as_i64().unwrap().to_string()
            + ":"
            + json["ledger"]["head"].as_str().unwrap(),
        digest(&db)
    );
    assert_eq!(json["imports"][0]["rows"], 2);
    let (code, table, _) = at(&db, "2026-06-30", &["report", "--period", "2026-Q1"]);
    assert_eq!(code, 0);
    let table = table.as_str().unwrap().to_string();
    assert!(
        table.contains("740,740,500.00") && table.contains("185,185,125.00"),
        "{table}"
    );
    assert!(
        table.contains("TOTAL") && table.contains("BREACH: over limit"),
        "a breach stands out: {table}"
    );
    assert!(
        table.contains("1,000"),
        "units with thousands separators: {table}"
    );
    assert!(
        table.contains(&digest(&db)),
        "the chain head is printed: {table}"
    );
    let (code, csv, _) = at(
        &db,
        "2026-06-30",
        &["report", "--period", "2026-Q1", "--format", "csv"],
    );
    assert_eq!(code, 0);
    let csv = csv.as_str().unwrap().to_string();
    let mut lines = csv.lines();
    assert_eq!(lines.next().unwrap(), "period,chip,us_units,restricted_units,reserved_units,cap_ratio,cap_window,limit,headroom,status,restricted_revenue_usd,remittance_due_usd");
    assert!(
        csv.contains("2026-Q1,CAPPED,1000,600,0,0.5,period,500,-100,breach,740740500,185185125.00"),
        "{csv}"
    );
    assert_eq!(
        at(
            &db,
            "2026-06-30",
            &["--json", "report", "--period", "2026-Q1", "--format", "csv"]
        )
        .0,
        2
    );
    assert_eq!(
        at(
            &db,
            "2026-06-30",
            &["report", "--period", "2026-Q1", "--format", "xml"]
        )
        .0,
        2
    );
    assert_eq!(
        at(&db, "2026-06-30", &["report", "--period", "2026-13"]).0,
        2
    );
}

#[test]
fn close_is_refused_until_the_period_is_over_then_seals_it() {
    let (dir, db) = ledger();
    import(
        &dir,
        &db,
        "a.csv",
        "U1,2026-03-05,CAPPED,US,,1000,10,,,,\nS1,2026-03-10,H200,CN,C,1,10,,,,\n",
    );
    let (code, _, stderr) = at(
        &db,
        "2026-03-31",
        &["--json", "close", "--period", "2026-Q1"],
    );
    assert_eq!(code, 1, "the last day is not over yet: {stderr}");
    let (code, closed, _) = at(
        &db,
        "2026-04-01",
        &["--json", "close", "--period", "2026-Q1"],
    );
    assert_eq!(code, 0);
    assert_eq!(closed["already_closed"], false);
    assert_eq!(
        format!("{}:{}", closed["entries"], closed["head"].as_str().unwrap()),
        digest(&db)
    );
    let after = digest(&db);
    let (code, again, _) = at(
        &db,
        "2026-04-02",
        &["--json", "close", "--period", "2026-Q1"],
    );
    assert_eq!((code, again["already_closed"].as_bool()), (0, Some(true)));
    assert_eq!(
        digest(&db),
        after,
        "closing a closed period changes nothing"
    );
    assert_eq!(report(&db, "2026-04-02", "2026-Q1")["closed"], true);
    // Afterwards: sales, returns and holds dated in it are refused (closed).
    let file = write_file(
        dir.path(),
        "late.csv",
        &format!(
            "{SALES}U2,2026-03-31,CAPPED,US,,1,10,,,,\nR1,2026-03-31,H200,CN,C,1,,,,return,S1\n"
        ),
    );
    let (code, summary, stderr) = at(
        &db,
        "2026-04-02",
        &["--json", "import", file.to_str().unwrap()],
    );
    assert_eq!(code, 1);
    assert!(
        summary["errors"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["rule"] == "closed"),
        "{summary}"
    );
    assert!(stderr.contains("period 2026-Q1 is closed"));
    let (code, answer, _) = at(
        &db,
        "2026-02-01",
        &[
            "--json",
            "check",
            "--chip",
            "CAPPED",
            "--market",
            "CN",
            "--units",
            "1",
            "--date",
            "2026-03-30",
        ],
    );
    assert_eq!(code, 1);
    assert!(answer["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["rule"] == "closed"));
    // A re-import of the recorded rows is still a no-op.
    let file = write_file(
        dir.path(),
        "again.csv",
        &format!("{SALES}U1,2026-03-05,CAPPED,US,,1000,10,,,,\n"),
    );
    let (code, summary, _) = at(
        &db,
        "2026-04-02",
        &["--json", "import", file.to_str().unwrap()],
    );
    assert_eq!((code, summary["duplicates"].as_i64()), (0, Some(1)));
    let (code, _, stderr) = run(&db, &["verify"]);
    assert_eq!(code, 0, "{stderr}");
}

#[test]
fn closing_ends_the_periods_holds() {
    let (dir, db) = ledger();
    import(&dir, &db, "a.csv", "U1,2026-03-05,CAPPED,US,,1000,10,,,,\n");
    let (code, _, stderr) = at(
        &db,
        "2026-03-20",
        &[
            "reserve",
            "--order",
            "PO-1",
            "--chip",
            "CAPPED",
            "--market",
            "CN",
            "--units",
            "10",
            "--date",
            "2026-03-30",
            "--ttl-days",
            "60",
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        chip(&report(&db, "2026-03-25", "2026-Q1"), "CAPPED")["reserved_units"],
        10
    );
    at(&db, "2026-04-01", &["close", "--period", "2026-Q1"]);
    // The closed period's report is what the close sealed, holds included
    // (SPEC §9); the hold itself ended with the close.
    assert_eq!(
        chip(&report(&db, "2026-04-01", "2026-Q1"), "CAPPED")["reserved_units"],
        10
    );
    let (code, check, _) = at(
        &db,
        "2026-04-01",
        &[
            "--json",
            "check",
            "--chip",
            "CAPPED",
            "--market",
            "CN",
            "--units",
            "1",
            "--date",
            "2026-03-30",
        ],
    );
    assert_eq!(code, 1, "{check}");
    assert_eq!(check["reserved_units"], 0);
    let (code, released, _) = at(&db, "2026-04-01", &["--json", "release", "--order", "PO-1"]);
    assert_eq!((code, released["already_ended"].as_bool()), (0, Some(true)));
}

#[test]
fn verify_checks_sealed_figures_against_a_consistent_forgery() {
    let (dir, db) = ledger();
    import(&dir, &db, "a.csv", "S1,2026-03-10,H200,CN,C,10,100,,,,\n");
    at(&db, "2026-04-01", &["close", "--period", "2026-Q1"]);
    for (name, forgery) in [
        // Raise the sealed due; rewrite every hash so the chain checks out.
        ("sealed figures", "UPDATE period_close SET figures = replace(figures, '\"due_usd\":\"200.00\"', '\"due_usd\":\"20.00\"')"),
        // Lower a sale's price and its derived revenue consistently.
        ("sale price", "UPDATE sale SET unit_price_usd_e4 = 10000 WHERE record_id = 'S1'; \
                        UPDATE derived_period_revenue SET sales_usd_e4 = '100000' WHERE chip = 'H200'"),
    ] {
        let forged = dir.path().join("forged.sqlite");
        let _ = std::fs::remove_file(&forged);
        std::fs::copy(&db, &forged).unwrap();
        let conn = rusqlite::Connection::open(&forged).unwrap();
        let triggers = drop_triggers(&conn);
        let state = |conn: &rusqlite::Connection| -> String {
            conn.query_row(
                "SELECT (SELECT figures FROM period_close) || (SELECT unit_price_usd_e4 FROM sale WHERE record_id = 'S1')",
                [],
                |r| r.get(0),
            )
            .unwrap()
        };
        let before = state(&conn);
        conn.execute_batch(forgery).unwrap();
        assert_ne!(state(&conn), before, "{name}: the forgery changed something");
        rehash(&conn);
        restore_triggers(&conn, &triggers);
        drop(conn);
        let (code, report, _) = at(&forged, "2026-04-02", &["--json", "verify"]);
        assert_eq!(code, 3, "{name}: {report}");
        // Caught by the sealed figures, or by the head the close names.
        assert!(report["message"].as_str().unwrap().contains("2026-Q1"), "{name}: {report}");
    }
}

#[test]
fn a_retried_remit_never_pays_twice_and_a_reversal_undoes_a_payment() {
    let (dir, db) = ledger();
    import(&dir, &db, "a.csv", "S1,2026-01-10,H200,CN,C,10,100,,,,\n"); // due 250.00
    let remit = |amount: &str, paid_on: &str, reference: &str| {
        at(
            &db,
            "2026-04-10",
            &[
                "--json",
                "remit",
                "--period",
                "2026-Q1",
                "--amount",
                amount,
                "--paid-on",
                paid_on,
                "--reference",
                reference,
            ],
        )
    };
    let (code, first, stderr) = remit("100", "2026-04-09", "W1");
    assert_eq!(code, 0, "{stderr}");
    let once = digest(&db);
    // The retry: same period, reference, amount and date. Nothing appended.
    let (code, again, stderr) = remit("100.0000", "2026-04-09", "W1");
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(again, first);
    assert_eq!(digest(&db), once);
    // The same reference with another amount or date is a conflict.
    for (amount, paid_on) in [("101", "2026-04-09"), ("100", "2026-04-08")] {
        let (code, _, stderr) = remit(amount, paid_on, "W1");
        assert_eq!(code, 2, "{stderr}");
        assert!(
            stderr.contains("already recorded with other figures"),
            "{stderr}"
        );
    }
    assert_eq!(digest(&db), once);
    let (code, _, _) = remit("50", "2026-04-09", "W2");
    assert_eq!(code, 0);
    assert_eq!(
        report(&db, "2026-04-10", "2026-Q1")["remittance"]["paid_usd"],
        "150"
    );
    // Reverse W1: it no longer counts.
    let reverse = |reference: &str| {
        at(
            &db,
            "2026-04-11",
            &[
                "--json",
                "remit",
                "--reverse",
                "--period",
                "2026-Q1",
                "--reference",
                reference,
                "--reason",
                "keyed twice",
            ],
        )
    };
    let (code, reversed, stderr) = reverse("W1");
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        reversed,
        serde_json::json!({"period": "2026-Q1", "reference": "W1", "reversed_amount_usd": "100", "reason": "keyed twice"})
    );
    assert_eq!(
        report(&db, "2026-04-11", "2026-Q1")["remittance"],
        serde_json::json!({"due_usd": "250.00", "paid_usd": "50", "outstanding_usd": "200.00"})
    );
    let reversed_once = digest(&db);
    // Twice, or an unknown reference: bad input, nothing appended.
    for reference in ["W1", "W9"] {
        let (code, _, stderr) = reverse(reference);
        assert_eq!(code, 2, "{reference}: {stderr}");
    }
    // A reversed reference is never used again in its period.
    let (code, _, stderr) = at(
        &db,
        "2026-04-11",
        &[
            "remit",
            "--period",
            "2026-Q1",
            "--amount",
            "100",
            "--paid-on",
            "2026-04-09",
            "--reference",
            "W1",
        ],
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("reversed"), "{stderr}");
    assert_eq!(digest(&db), reversed_once);
    // --reverse needs --reason, and no amount.
    let (code, _, _) = at(
        &db,
        "2026-04-11",
        &[
            "remit",
            "--reverse",
            "--period",
            "2026-Q1",
            "--reference",
            "W2",
        ],
    );
    assert_eq!(code, 2);
    let (code, _, stderr) = at(&db, "2026-04-11", &["verify"]);
    assert_eq!(code, 0, "{stderr}");
}

#[test]
fn late_entries_after_a_close_keep_the_sealed_figures_and_the_money_owed() {
    let (dir, db) = ledger();
    import(
        &dir,
        &db,
        "a.csv",
        "U1,2026-03-05,CAPPED,US,,100,10,,,,\nS1,2026-03-06,H200,CN,C,10,100,,,,\nC1,2026-03-07,CAPPED,CN,C,40,10,,,,\n",
    );
    // A hold in Q1 that the close will end.
    let (code, _, stderr) = at(
        &db,
        "2026-03-20",
        &[
            "reserve",
            "--order",
            "PO-Q1",
            "--chip",
            "CAPPED",
            "--market",
            "CN",
            "--units",
            "5",
            "--date",
            "2026-03-30",
            "--ttl-days",
            "60",
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    let (code, _, stderr) = at(&db, "2026-04-02", &["close", "--period", "2026-Q1"]);
    assert_eq!(code, 0, "{stderr}");
    let sealed = report(&db, "2026-04-02", "2026-Q1");
    assert_eq!(sealed["remittance"]["due_usd"], "300.00"); // 10×100×0.2 + 40×10×0.25
    let late = |rows: &str, extra: &[&str]| {
        let file = write_file(dir.path(), "late.csv", &format!("{SALES}{rows}"));
        let mut args = vec!["--json", "import", file.to_str().unwrap()];
        args.extend_from_slice(extra);
        at(&db, "2026-04-10", &args)
    };
    // Without --late: refused by rule `closed`, as before.
    let (code, summary, _) = late("L0,2026-03-09,H200,CN,C,1,100,,,,\n", &[]);
    assert_eq!(code, 1, "{summary}");
    assert_eq!(summary["errors"][0]["rule"], "closed");
    // With --late every other rule still applies: the cap refuses 11 more
    // CAPPED units (limit 50, 40 shipped; the ended hold no longer counts).
    let (code, summary, _) = late(
        "L1,2026-03-09,CAPPED,CN,C,11,10,,,,\n",
        &["--late", "--reason", "found in audit"],
    );
    assert_eq!(code, 1, "{summary}");
    assert_eq!(summary["errors"][0]["rule"], "cap");
    // ...unless accepted as a violation, with the same reason.
    let (code, summary, stderr) = late(
        "L1,2026-03-09,CAPPED,CN,C,11,10,,,,\n",
        &[
            "--late",
            "--accept-violations",
            "--reason",
            "found in audit",
        ],
    );
    assert_eq!(code, 0, "{summary} {stderr}");
    assert_eq!(summary["accepted_violations"], 1);
    // A late sale naming the order of the hold the close ended draws nothing.
    let (code, summary, stderr) = late(
        "L2,2026-03-30,H200,CN,C,4,50,,PO-Q1,,\n",
        &["--late", "--reason", "found in audit"],
    );
    assert_eq!(code, 0, "{summary} {stderr}");
    let conn = rusqlite::Connection::open(&db).unwrap();
    let drawn: Option<i64> = conn
        .query_row(
            "SELECT hold_seq FROM sale WHERE record_id = 'L2'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(drawn, None);
    drop(conn);
    // The sealed figures stand; the late section and the due carry the rest.
    let now = report(&db, "2026-04-10", "2026-Q1");
    assert_eq!(now["chips"], sealed["chips"]);
    assert_eq!(now["violations"], sealed["violations"]);
    assert_eq!(now["imports"], sealed["imports"]);
    // Late: 11 × 10 × 0.25 = 27.50 (CAPPED) + 4 × 50 × 0.2 = 40.00 (H200 at 20% from 02-15).
    assert_eq!(
        now["late"],
        serde_json::json!({
            "entries": 2, "restricted_units": 15, "restricted_revenue_usd": "310",
            "remittance_due_usd": "67.50",
            "records": [
                {"record_id": "L1", "reason": "found in audit"},
                {"record_id": "L2", "reason": "found in audit"}
            ]
        })
    );
    assert_eq!(now["remittance"]["due_usd"], "367.50");
    assert_eq!(now["remittance"]["outstanding_usd"], "367.50");
    // An open period has no late section; verify proves the sealed figures.
    assert_eq!(report(&db, "2026-04-10", "2026-Q2")["late"], Json::Null);
    let (code, _, stderr) = at(&db, "2026-04-10", &["verify"]);
    assert_eq!(code, 0, "{stderr}");
    let (code, text, _) = at(&db, "2026-04-10", &["report", "--period", "2026-Q1"]);
    assert_eq!(code, 0);
    assert!(
        text.as_str()
            .unwrap()
            .contains("Late entries after the close (2)"),
        "{text}"
    );
}

#[test]
fn the_report_uses_the_reference_date_inside_the_period() {
    let (dir, db) = ledger();
    import(
        &dir,
        &db,
        "a.csv",
        "U1,2026-03-05,CAPPED,US,,1000,10,,,,\nU2,2026-05-05,CAPPED,US,,400,10,,,,\nC2,2026-05-06,CAPPED,CN,C,100,10,,,,\n",
    );
    let capped = |as_of: &str, period: &str| {
        let json = report(&db, as_of, period);
        let chip = chip(&json, "CAPPED").clone();
        (chip["limit"].clone(), chip["headroom"].clone())
    };
    // A future period (as-of before it): R is its first day, its own window.
    assert_eq!(capped("2026-05-15", "2026-Q3"), (0.into(), 0.into()));
    // The current period: R is the as-of date.
    assert_eq!(capped("2026-05-15", "2026-Q2"), (200.into(), 100.into()));
    // A past period (as-of after it): R is its last day.
    assert_eq!(capped("2026-05-15", "2026-Q1"), (500.into(), 500.into()));
    // R on the first and the last day of the period give the same window.
    assert_eq!(
        capped("2026-04-01", "2026-Q2"),
        capped("2026-06-30", "2026-Q2")
    );
}

#[test]
fn history_over_a_closed_a_late_and_an_open_period_matches_hand_computed_figures() {
    let (dir, db) = ledger();
    // 2026-Q1: US 100, China 10 at 100 USD: due 10 x 100 x 0.25 = 250.00; paid in full.
    import(
        &dir,
        &db,
        "q1.csv",
        "U1,2026-02-10,CAPPED,US,,100,100,,,,\nC1,2026-02-11,CAPPED,CN,C,10,100,,,,\n",
    );
    assert_eq!(
        at(&db, "2026-04-01", &["close", "--period", "2026-Q1"]).0,
        0
    );
    let remit = [
        "remit",
        "--period",
        "2026-Q1",
        "--amount",
        "250",
        "--paid-on",
        "2026-04-02",
        "--reference",
        "W1",
    ];
    assert_eq!(at(&db, "2026-04-02", &remit).0, 0);
    // 2026-Q2: US 200, China 20: due 500.00; closed; then a late China sale of 4: +100.00.
    import(
        &dir,
        &db,
        "q2.csv",
        "U2,2026-05-10,CAPPED,US,,200,100,,,,\nC2,2026-05-11,CAPPED,CN,C,20,100,,,,\n",
    );
    assert_eq!(
        at(&db, "2026-07-01", &["close", "--period", "2026-Q2"]).0,
        0
    );
    let late = write_file(
        dir.path(),
        "late.csv",
        &format!("{SALES}L1,2026-06-20,CAPPED,CN,C,4,100,,,,\n"),
    );
    let (code, _, stderr) = at(
        &db,
        "2026-07-02",
        &[
            "import",
            late.to_str().unwrap(),
            "--late",
            "--reason",
            "found late",
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    // 2026-Q3, open: US 50, China 5: due 125.00, limit 25.
    import(
        &dir,
        &db,
        "q3.csv",
        "U3,2026-07-02,CAPPED,US,,50,100,,,,\nC3,2026-07-03,CAPPED,CN,C,5,100,,,,\n",
    );
    let (code, history, stderr) = at(
        &db,
        "2026-07-03",
        &["--json", "history", "--from", "2026-Q1", "--to", "2026-Q3"],
    );
    assert_eq!(code, 0, "{stderr}");
    let periods = history["periods"].as_array().unwrap();
    assert_eq!(periods.len(), 3);
    let capped = |index: usize| {
        periods[index]["chips"]
            .as_array()
            .unwrap()
            .iter()
            .find(|chip| chip["chip"] == "CAPPED")
            .unwrap()
            .clone()
    };
    let expected = [
        (
            "2026-Q1", true, 100, 10, 50, 40, "250.00", "250.00", "250", "0.00",
        ),
        (
            "2026-Q2", true, 200, 20, 100, 80, "500.00", "600.00", "0", "600.00",
        ),
        (
            "2026-Q3", false, 50, 5, 25, 20, "125.00", "125.00", "0", "125.00",
        ),
    ];
    for (index, (period, closed, us, cn, limit, headroom, chip_due, due, paid, outstanding)) in
        expected.into_iter().enumerate()
    {
        let entry = &periods[index];
        assert_eq!(
            (
                entry["period"].as_str().unwrap(),
                entry["closed"].as_bool().unwrap()
            ),
            (period, closed)
        );
        let chip = capped(index);
        assert_eq!(
            (
                &chip["us_units"],
                &chip["restricted_units"],
                &chip["limit"],
                &chip["headroom"],
                &chip["remittance_due_usd"]
            ),
            (
                &Json::from(us),
                &Json::from(cn),
                &Json::from(limit),
                &Json::from(headroom),
                &Json::from(chip_due)
            ),
            "{period}: {chip}"
        );
        assert_eq!(
            entry["remittance"],
            serde_json::json!({"due_usd": due, "paid_usd": paid, "outstanding_usd": outstanding}),
            "{period}"
        );
        // Each period as `report` gives it.
        let alone = report(&db, "2026-07-03", period);
        assert_eq!(entry["chips"], alone["chips"], "{period}");
    }
    let (code, csv, _) = at(
        &db,
        "2026-07-03",
        &[
            "history", "--from", "2026-Q1", "--to", "2026-Q3", "--format", "csv",
        ],
    );
    assert_eq!(code, 0);
    let csv = csv.as_str().unwrap().to_string();
    assert!(
        csv.lines().any(|line| line
            == "2026-Q2,true,CAPPED,200,20,0,0.5,period,100,80,ok,2000,500.00,600.00,0,600.00"),
        "{csv}"
    );
    // The same series as one page: each period open or closed, its figures.
    let (code, page, _) = at(
        &db,
        "2026-07-03",
        &[
            "history", "--from", "2026-Q1", "--to", "2026-Q3", "--format", "html",
        ],
    );
    assert_eq!(code, 0);
    let page = page.as_str().unwrap().to_string();
    assert!(
        page.contains("default-src 'none'") && page.contains("<svg"),
        "self-contained, with a chart"
    );
    for needle in [
        "2026-Q1</td><td>closed",
        "2026-Q2</td><td>closed",
        "2026-Q3</td><td>open",
        "600.00",
        "125.00",
        ">100<",
        ">80<",
    ] {
        assert!(page.contains(needle), "{needle} in the history page");
    }
    // Bad ranges are bad input.
    assert_eq!(
        at(
            &db,
            "2026-07-03",
            &["history", "--from", "2026-Q3", "--to", "2026-Q1"]
        )
        .0,
        2
    );
    assert_eq!(
        at(
            &db,
            "2026-07-03",
            &["history", "--from", "2000-Q1", "--to", "2030-Q4"]
        )
        .0,
        2
    );
    assert_eq!(
        at(
            &db,
            "2026-07-03",
            &["history", "--from", "2026-03", "--to", "2026-Q1"]
        )
        .0,
        2
    );
}
