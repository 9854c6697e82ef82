//! Reference-data rules (SPEC §3.1–3.3, §4) at their edges, through the
//! real binary, plus the lookups the sales rules will stand on.

mod common;

use common::*;
use quotaledger::period::parse_date;
use quotaledger::records::customers::{self, CustomerStatus};
use quotaledger::records::lots;
use quotaledger::records::policy::{version_in_force, CapWindow};
use quotaledger::store::entry::HOLD;
use quotaledger::store::ledger::Ledger;
use rusqlite::types::Value;
use std::path::Path;

const POLICY_HEADER: &str = "chip,effective_from,restricted_allowed,cap_ratio,cap_window,remittance_rate,lab_test_required,customer_approval_required,source\n";
const CUSTOMER_HEADER: &str = "customer_id,name,country,status,effective_date,reference\n";
const LOT_HEADER: &str = "lot_id,chip,units,lab,certificate_id,result,effective_date\n";

fn import(db: &Path, command: &str, file: &Path) -> (i32, serde_json::Value, String) {
    run_json(db, &[command, "import", file.to_str().unwrap()])
}

fn t(s: &str) -> Value {
    Value::Text(s.to_string())
}

fn append_sale(db: &Path, record_id: &str, date: &str, chip: &str) {
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(
        dir.path(),
        "sale.csv",
        &format!("record_id,sale_date,chip,market,customer_id,units,unit_price_usd\n{record_id},{date},{chip},US,,1,1\n"),
    );
    let (code, _, stderr) = run(db, &["import", file.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
}

fn errors_of(summary: &serde_json::Value) -> Vec<(u64, String, String)> {
    summary["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            assert!(
                e["rule"].is_null(),
                "reference problems are malformed input: {e}"
            );
            (
                e["line"].as_u64().unwrap(),
                e["column"].as_str().unwrap().to_string(),
                e["message"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn policy_same_chip_and_date_is_a_duplicate_if_identical_else_a_conflict() {
    let (dir, db) = new_ledger();
    let row = "H200,2026-01-15,true,0.5,period,0.25,true,true,BIS rule\n";
    let file = write_file(dir.path(), "p.csv", &format!("{POLICY_HEADER}{row}{row}"));
    let (code, summary, _) = import(&db, "policy", &file);
    assert_eq!(code, 0);
    assert_eq!(
        (summary["inserted"].as_u64(), summary["duplicates"].as_u64()),
        (Some(1), Some(1))
    );

    // Same identity, other content (cap 0.4): conflict with the recorded one.
    let before = digest(&db);
    let conflicting = write_file(
        dir.path(),
        "c.csv",
        &format!("{POLICY_HEADER}h200,2026-01-15,TRUE,0.40,Period,0.25,yes,1,BIS rule\n"),
    );
    let (code, summary, stderr) = import(&db, "policy", &conflicting);
    assert_eq!(code, 2, "{stderr}");
    assert_eq!(summary["inserted"], 0);
    assert_eq!(summary["rejected"], 1);
    let errors = errors_of(&summary);
    assert_eq!(errors[0].0, 2);
    assert_eq!(errors[0].1, "effective_from");
    assert!(
        errors[0].2.contains("conflicts with the recorded entry"),
        "{errors:?}"
    );
    assert!(stderr.contains(&format!(
        "{}:2: effective_from: conflicts",
        conflicting.display()
    )));
    assert_eq!(digest(&db), before);

    // Normalised equal content (case, 0.50 vs 0.5, yes vs true) is a duplicate.
    let same = write_file(
        dir.path(),
        "s.csv",
        &format!("{POLICY_HEADER}h200,2026-01-15,YES,0.50,PERIOD,0.250,1,true,BIS rule\n"),
    );
    let (code, summary, _) = import(&db, "policy", &same);
    assert_eq!(code, 0);
    assert_eq!(summary["duplicates"], 1);
    assert_eq!(digest(&db), before);

    // Within one file, a conflict names the earlier line.
    let inner = write_file(
        dir.path(),
        "i.csv",
        &format!("{POLICY_HEADER}H20,2025-08-08,true,,,0.15,false,true,x\nH20,2025-08-08,true,,,0.2,false,true,x\n"),
    );
    let (code, summary, _) = import(&db, "policy", &inner);
    assert_eq!(code, 2);
    let errors = errors_of(&summary);
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].0, 3);
    assert!(errors[0].2.contains("conflicts with line 2"), "{errors:?}");
    assert_eq!(digest(&db), before, "atomic: line 2 was not written either");
}

#[test]
fn policy_versions_are_never_retroactive() {
    let (dir, db) = new_ledger();
    let base = write_file(
        dir.path(),
        "base.csv",
        &format!(
            "{POLICY_HEADER}H200,2026-01-15,true,0.5,period,0.25,true,true,BIS\n\
             H20,2025-01-01,true,,,0.15,false,false,BIS\n"
        ),
    );
    assert_eq!(import(&db, "policy", &base).0, 0);
    append_sale(&db, "S-1", "2026-02-10", "H200");
    append_sale(&db, "S-2", "2026-03-20", "H20"); // another chip: irrelevant to H200

    let on_the_sale_date = write_file(
        dir.path(),
        "on.csv",
        &format!("{POLICY_HEADER}H200,2026-02-10,true,0.4,period,0.25,true,true,new rule\n"),
    );
    let (code, summary, _) = import(&db, "policy", &on_the_sale_date);
    assert_eq!(code, 2);
    let errors = errors_of(&summary);
    assert_eq!(errors[0].1, "effective_from");
    assert!(
        errors[0].2.contains("2026-02-10") && errors[0].2.contains("retroactively"),
        "{errors:?}"
    );

    let before_the_sale = write_file(
        dir.path(),
        "before.csv",
        &format!("{POLICY_HEADER}H200,2026-02-01,true,0.4,period,0.25,true,true,new rule\n"),
    );
    assert_eq!(import(&db, "policy", &before_the_sale).0, 2);

    let day_after = write_file(
        dir.path(),
        "after.csv",
        &format!("{POLICY_HEADER}H200,2026-02-11,true,0.4,cumulative,0.25,true,true,new rule\n"),
    );
    let (code, summary, stderr) = import(&db, "policy", &day_after);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(summary["inserted"], 1);

    // A hold counts as activity too.
    let mut ledger = Ledger::open(&db).unwrap();
    ledger
        .write(quotaledger::period::parse_date(AS_OF).unwrap(), |a| {
            a.append(
                &HOLD,
                &[
                    t("PO-1"),
                    t("H200"),
                    t("CN"),
                    Value::Null,
                    Value::Null,
                    Value::Integer(1),
                    t("2026-03-05"),
                    t("2026-03-01"),
                    t("2026-03-15"),
                ],
            )?;
            Ok(((), true))
        })
        .unwrap();
    drop(ledger);
    let before_hold = write_file(
        dir.path(),
        "hold.csv",
        &format!("{POLICY_HEADER}H200,2026-03-05,true,0.3,period,0.25,true,true,x\n"),
    );
    assert_eq!(import(&db, "policy", &before_hold).0, 2);
}

#[test]
fn policy_versions_must_follow_every_closed_period() {
    let (dir, db) = new_ledger();
    let (code, _, stderr) = run(&db, &["close", "--period", "2025-Q4"]);
    assert_eq!(code, 0, "{stderr}");
    let last_day = write_file(
        dir.path(),
        "a.csv",
        &format!("{POLICY_HEADER}H20,2025-12-31,true,,,0.15,false,true,x\n"),
    );
    let (code, summary, _) = import(&db, "policy", &last_day);
    assert_eq!(code, 2);
    assert!(errors_of(&summary)[0]
        .2
        .contains("closed through 2025-12-31"));
    let next_day = write_file(
        dir.path(),
        "b.csv",
        &format!("{POLICY_HEADER}H20,2026-01-01,true,,,0.15,false,true,x\n"),
    );
    assert_eq!(import(&db, "policy", &next_day).0, 0);
}

#[test]
fn policy_values_are_checked_and_every_problem_listed() {
    let (dir, db) = new_ledger();
    let before = digest(&db);
    let file = write_file(
        dir.path(),
        "bad.csv",
        &format!(
            "{POLICY_HEADER}\
             H200,2026-01-15,true,0.5,,0.25,true,true,needs a window\n\
             H20,2026-01-15,true,,weekly,0.15,false,true,window ignored without a ratio\n\
             B200,2026-02-30,maybe,1.5,period,-0.1,true,true,\n\
             -X,2026-01-15,true,,,,true,true,src\n"
        ),
    );
    let (code, summary, stderr) = import(&db, "policy", &file);
    assert_eq!(code, 2);
    assert_eq!(summary["rows"], 4);
    assert_eq!(summary["inserted"], 0);
    assert_eq!(summary["rejected"], 3, "line 3 is fine");
    let errors = errors_of(&summary);
    let columns = |line: u64| -> Vec<String> {
        errors
            .iter()
            .filter(|e| e.0 == line)
            .map(|e| e.1.clone())
            .collect()
    };
    assert_eq!(columns(2), vec!["cap_window"]);
    assert!(columns(3).is_empty());
    assert_eq!(
        columns(4),
        vec![
            "effective_from",
            "restricted_allowed",
            "cap_ratio",
            "remittance_rate",
            "source"
        ]
    );
    assert_eq!(columns(5), vec!["chip", "remittance_rate"]);
    for e in &errors {
        assert!(
            stderr.contains(&format!("{}:{}: {}: ", file.display(), e.0, e.1)),
            "{stderr}"
        );
    }
    assert_eq!(digest(&db), before);
}

#[test]
fn policy_in_force_switches_on_effective_from() {
    let (dir, db) = new_ledger();
    let file = write_file(
        dir.path(),
        "p.csv",
        &format!(
            "{POLICY_HEADER}H200,2026-01-15,true,0.5,period,0.25,true,true,a\n\
             H200,2026-07-01,true,0.4,cumulative,0.2,true,true,b\n"
        ),
    );
    assert_eq!(import(&db, "policy", &file).0, 0);
    let ledger = Ledger::open(&db).unwrap();
    let on = |d: &str| version_in_force(ledger.conn(), "H200", parse_date(d).unwrap()).unwrap();
    assert!(
        on("2026-01-14").is_none(),
        "before the first version: none in force"
    );
    assert_eq!(on("2026-01-15").unwrap().source, "a");
    let last_day = on("2026-06-30").unwrap();
    assert_eq!(last_day.source, "a");
    assert_eq!(last_day.cap.unwrap().cap_window, CapWindow::Period);
    let switched = on("2026-07-01").unwrap();
    assert_eq!(switched.cap.unwrap().cap_ratio.to_string(), "0.4");
    assert_eq!(switched.remittance_rate.to_string(), "0.2");
    assert!(
        version_in_force(ledger.conn(), "H20", parse_date("2026-07-01").unwrap())
            .unwrap()
            .is_none()
    );
}

#[test]
fn customer_events_conflicts_duplicates_and_revocation_edges() {
    let (dir, db) = new_ledger();
    let file = write_file(
        dir.path(),
        "c.csv",
        &format!(
            "{CUSTOMER_HEADER}C-1,One Ltd,cn,APPROVED,2026-01-20,lic-1\n\
             C-1,One Ltd,CN,revoked,2026-03-16,notice-7\n\
             c-1,Other case,HK,approved,2026-01-20,\n"
        ),
    );
    let (code, summary, stderr) = import(&db, "customers", &file);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        summary["inserted"], 3,
        "ids are case-sensitive: c-1 is another customer"
    );

    let ledger = Ledger::open(&db).unwrap();
    let state =
        |d: &str| customers::state_on(ledger.conn(), "C-1", parse_date(d).unwrap()).unwrap();
    assert!(state("2026-01-19").is_none(), "no event yet");
    assert_eq!(
        state("2026-01-20").unwrap().status,
        CustomerStatus::Approved
    );
    assert_eq!(
        state("2026-03-15").unwrap().status,
        CustomerStatus::Approved,
        "the day before the revocation"
    );
    assert_eq!(state("2026-03-16").unwrap().status, CustomerStatus::Revoked);
    assert_eq!(state("2026-03-16").unwrap().country, "CN");
    drop(ledger);

    let before = digest(&db);
    let conflict = write_file(
        dir.path(),
        "x.csv",
        &format!("{CUSTOMER_HEADER}C-1,One Ltd,CN,approved,2026-03-16,re-approved same day\n"),
    );
    let (code, summary, _) = import(&db, "customers", &conflict);
    assert_eq!(code, 2);
    assert_eq!(errors_of(&summary)[0].1, "effective_date");
    assert_eq!(digest(&db), before);

    let malformed = write_file(
        dir.path(),
        "m.csv",
        &format!(
            "{CUSTOMER_HEADER}{},Name,CHN,active,2026-02-30,\n,,CN,approved,2026-01-01,\n",
            "x".repeat(65)
        ),
    );
    let (code, summary, _) = import(&db, "customers", &malformed);
    assert_eq!(code, 2);
    let columns: Vec<(u64, String)> = errors_of(&summary)
        .into_iter()
        .map(|e| (e.0, e.1))
        .collect();
    assert_eq!(
        columns,
        vec![
            (2, "customer_id".into()),
            (2, "country".into()),
            (2, "status".into()),
            (2, "effective_date".into()),
            (3, "customer_id".into()),
            (3, "name".into()),
        ]
    );
    assert_eq!(digest(&db), before);
}

#[test]
fn lot_chip_is_fixed_by_its_first_event_and_state_follows_the_latest_event() {
    let (dir, db) = new_ledger();
    let file = write_file(
        dir.path(),
        "l.csv",
        &format!(
            "{LOT_HEADER}L1,h200,500,Lab A,CERT-1,pass,2026-01-22\n\
             L1,H200,400,Lab A,CERT-2,PASS,2026-02-10\n\
             L1,H200,400,Lab A,CERT-3,revoked,2026-03-01\n\
             L2,H200,300,Lab B,CERT-9,fail,2026-01-25\n"
        ),
    );
    let (code, _, stderr) = import(&db, "lots", &file);
    assert_eq!(code, 0, "{stderr}");
    let ledger = Ledger::open(&db).unwrap();
    let state =
        |lot: &str, d: &str| lots::state_on(ledger.conn(), lot, parse_date(d).unwrap()).unwrap();
    let before_pass = state("L1", "2026-01-21").unwrap();
    assert!(!before_pass.cleared);
    assert_eq!(before_pass.capacity_units, 0);
    let first = state("L1", "2026-01-22").unwrap();
    assert!(first.cleared);
    assert_eq!(first.capacity_units, 500);
    assert_eq!(
        state("L1", "2026-02-10").unwrap().capacity_units,
        400,
        "latest pass sets capacity"
    );
    let revoked = state("L1", "2026-03-01").unwrap();
    assert!(!revoked.cleared);
    assert_eq!(revoked.capacity_units, 400);
    assert!(
        state("L1", "2026-02-28").unwrap().cleared,
        "the day before revocation"
    );
    assert!(
        !state("L2", "2026-12-31").unwrap().cleared,
        "a failed lot is never cleared"
    );
    assert!(state("L9", "2026-12-31").is_none());
    drop(ledger);

    let before = digest(&db);
    let other_chip = write_file(
        dir.path(),
        "o.csv",
        &format!(
            "{LOT_HEADER}L1,H20,500,Lab A,CERT-4,pass,2026-04-01\n\
             L3,H200,10,Lab A,CERT-5,pass,2026-04-01\n\
             L3,MI325X,10,Lab A,CERT-6,pass,2026-04-02\n\
             L2,H200,300,Lab B,CERT-9,pass,2026-01-25\n"
        ),
    );
    let (code, summary, _) = import(&db, "lots", &other_chip);
    assert_eq!(code, 2);
    let errors = errors_of(&summary);
    assert_eq!(errors.len(), 3, "{errors:?}");
    assert_eq!((errors[0].0, errors[0].1.as_str()), (2, "chip"));
    assert!(errors[0].2.contains("lot of H200"), "{errors:?}");
    assert_eq!(
        (errors[1].0, errors[1].1.as_str()),
        (4, "chip"),
        "fixed by line 3 of the same file"
    );
    assert_eq!(
        (errors[2].0, errors[2].1.as_str()),
        (5, "effective_date"),
        "same lot, same date"
    );
    assert_eq!(digest(&db), before);

    let bad_units = write_file(
        dir.path(),
        "u.csv",
        &format!("{LOT_HEADER}L5,H200,0,Lab,C,pass,2026-01-01\nL6,H200,1000000001,Lab,C,pass,2026-01-01\nL7,H200,1000000000,Lab,C,pass,2026-01-01\n"),
    );
    let (code, summary, _) = import(&db, "lots", &bad_units);
    assert_eq!(code, 2);
    let lines: Vec<u64> = errors_of(&summary).iter().map(|e| e.0).collect();
    assert_eq!(
        lines,
        vec![2, 3],
        "exactly the limit is fine, zero and one over are not"
    );
}

#[test]
fn header_rules_every_problem_reported() {
    let (dir, db) = new_ledger();
    let before = digest(&db);
    let file = write_file(
        dir.path(),
        "h.csv",
        "Customer_ID,NAME,country,country,stauts,effective_date\nC-1,x,CN,CN,approved,2026-01-01\n",
    );
    let (code, summary, stderr) = import(&db, "customers", &file);
    assert_eq!(code, 2);
    let errors = errors_of(&summary);
    let columns: Vec<&str> = errors.iter().map(|e| e.1.as_str()).collect();
    assert_eq!(
        columns,
        vec!["country", "stauts", "status", "reference"],
        "{errors:?}"
    );
    assert!(errors.iter().all(|e| e.0 == 1));
    assert!(errors[0].2.contains("more than once"));
    assert!(errors[1].2.contains("unknown column"));
    assert!(errors[2].2.contains("missing"));
    assert_eq!(summary["sha256"].as_str().unwrap().len(), 64);
    assert!(
        stderr.contains(&format!("{}:1: stauts: unknown column", file.display())),
        "{stderr}"
    );
    assert_eq!(digest(&db), before);
}

#[test]
fn bom_crlf_free_order_quoting_and_blank_lines_are_accepted() {
    let (dir, db) = new_ledger();
    let text = "\u{feff}Reference,STATUS,effective_date,customer_id,country,name\r\n\
                \r\n\
                \"lic, with comma\",approved,2026-01-20, C-1 ,cn,\"Alpha \"\"Cloud\"\"\r\nCo\"\r\n\
                \r\n   \r\n\
                ,revoked,2026-03-01,C-1,CN,Alpha\r\n";
    let file = write_file(dir.path(), "ok.csv", text);
    let (code, summary, stderr) = import(&db, "customers", &file);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(summary["rows"], 2);
    assert_eq!(summary["inserted"], 2);
    let ledger = Ledger::open(&db).unwrap();
    let event = customers::state_on(ledger.conn(), "C-1", parse_date("2026-01-20").unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(event.name, "Alpha \"Cloud\"\r\nCo");
    assert_eq!(event.reference, "lic, with comma");
    assert_eq!(event.country, "CN");
}

#[test]
fn header_only_imports_nothing_and_empty_is_bad_input() {
    let (dir, db) = new_ledger();
    let before = digest(&db);
    let header_only = write_file(dir.path(), "h.csv", CUSTOMER_HEADER);
    let (code, summary, _) = import(&db, "customers", &header_only);
    assert_eq!(code, 0);
    assert_eq!(
        (summary["rows"].as_u64(), summary["inserted"].as_u64()),
        (Some(0), Some(0))
    );
    assert_eq!(
        digest(&db),
        before,
        "no batch entry when nothing is inserted"
    );
    let empty = write_file(dir.path(), "e.csv", "");
    let (code, summary, stderr) = import(&db, "customers", &empty);
    assert_eq!(code, 2);
    assert!(stderr.contains("empty"), "{stderr}");
    assert_eq!(summary["errors"][0]["line"], 1);
    let missing = dir.path().join("nope.csv");
    let (code, _, stderr) = run(&db, &["customers", "import", missing.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(stderr.contains("cannot read"), "{stderr}");
    assert_eq!(digest(&db), before);
}

#[test]
fn invalid_utf8_is_reported_with_its_line_and_column() {
    let (dir, db) = new_ledger();
    let mut bytes = CUSTOMER_HEADER.as_bytes().to_vec();
    bytes.extend_from_slice(b"C-1,Jos\xe9,CN,approved,2026-01-01,\nC-2,Ok,CN,approved,2026-01-01,\nC-3,M\xfcller,CN,approved,2026-01-01,\n");
    let file = dir.path().join("latin1.csv");
    std::fs::write(&file, bytes).unwrap();
    let (code, summary, _) = import(&db, "customers", &file);
    assert_eq!(code, 2);
    let errors = errors_of(&summary);
    assert_eq!(
        errors
            .iter()
            .map(|e| (e.0, e.1.as_str()))
            .collect::<Vec<_>>(),
        vec![(2, "name"), (4, "name")]
    );
    assert!(errors[0].2.contains("UTF-8"));
}

#[test]
fn a_future_policy_version_is_withdrawn_before_it_takes_effect_and_replaced() {
    let (dir, db) = new_ledger();
    let typo = write_file(
        dir.path(),
        "typo.csv",
        &format!(
            "{POLICY_HEADER}H200,2026-01-15,true,0.5,period,0.25,false,false,BIS\n\
             H200,2026-08-01,true,0.04,period,0.25,false,false,typo: 0.04 for 0.4\n"
        ),
    );
    assert_eq!(import(&db, "policy", &typo).0, 0);
    let withdraw = |db: &Path, as_of: &str| {
        let output = qledger_at(
            db,
            as_of,
            &[
                "--json",
                "policy",
                "withdraw",
                "--chip",
                "h200",
                "--effective-from",
                "2026-08-01",
                "--reason",
                "ratio keyed as 0.04",
            ],
        )
        .output()
        .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        (output.status.code().unwrap(), stdout, stderr)
    };
    // On its first day it is in force already: refused, nothing appended.
    let before = digest(&db);
    let (code, _, stderr) = withdraw(&db, "2026-08-01");
    assert_eq!(code, 2, "{stderr}");
    assert_eq!(digest(&db), before);
    // The day before it takes effect: withdrawn.
    let (code, stdout, stderr) = withdraw(&db, "2026-07-31");
    assert_eq!(code, 0, "{stderr}");
    let answer: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        answer,
        serde_json::json!({"chip": "H200", "effective_from": "2026-08-01", "withdrawn": true})
    );
    // Withdrawn twice: bad input.
    let (code, _, stderr) = withdraw(&db, "2026-07-31");
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("already withdrawn"), "{stderr}");
    // `policy show` marks it; every rule ignores it.
    let (code, show, _) = run_json(&db, &["policy", "show"]);
    assert_eq!(code, 0);
    let withdrawn: Vec<bool> = show["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["withdrawn"].as_bool().unwrap())
        .collect();
    assert_eq!(withdrawn, vec![false, true]);
    let report = |as_of: &str| {
        let (code, report, stderr) = json_at(&db, as_of, &["report", "--period", "2026-Q3"]);
        assert_eq!(code, 0, "{stderr}");
        report["chips"][0]["cap_ratio"].clone()
    };
    assert_eq!(report("2026-08-15"), "0.5");
    // A new version on the same date afterwards.
    let fixed = write_file(
        dir.path(),
        "fixed.csv",
        &format!("{POLICY_HEADER}H200,2026-08-01,true,0.4,period,0.25,false,false,corrected\n"),
    );
    let (code, summary, stderr) = json_at(
        &db,
        "2026-07-31",
        &["policy", "import", fixed.to_str().unwrap()],
    );
    assert_eq!(
        (code, summary["inserted"].as_u64()),
        (0, Some(1)),
        "{stderr}"
    );
    let (_, show, _) = run_json(&db, &["policy", "show"]);
    assert_eq!(show["versions"].as_array().unwrap().len(), 3);
    assert_eq!(report("2026-08-15"), "0.4");
    let (code, _, stderr) = run(&db, &["verify"]);
    assert_eq!(code, 0, "{stderr}");

    // Refused once a sale is dated on or after the version's date.
    let other = dir.path().join("other.sqlite");
    run_ok(qledger_at(&other, SETUP_AS_OF, &["init"]), "init");
    run_ok(
        qledger_at(
            &other,
            SETUP_AS_OF,
            &["policy", "import", typo.to_str().unwrap()],
        ),
        "policy",
    );
    let sale = write_file(
        dir.path(),
        "sale.csv",
        "record_id,sale_date,chip,market,customer_id,units,unit_price_usd\nS-8,2026-07-31,H200,US,,1000,1\n",
    );
    run_ok(
        qledger_at(&other, "2026-07-31", &["import", sale.to_str().unwrap()]),
        "import",
    );
    let (code, _, stderr) = withdraw(&other, "2026-07-31");
    assert_eq!(code, 0, "a sale the day before does not stop it: {stderr}");
    let (code, _, _) = json_at(
        &other,
        "2026-07-31",
        &["policy", "import", typo.to_str().unwrap()],
    );
    assert_eq!(code, 0, "the identical version recorded again");
    // A hold planned on or after the version's date stops a withdrawal.
    run_ok(
        qledger_at(
            &other,
            "2026-07-31",
            &[
                "reserve",
                "--order",
                "PO-8",
                "--chip",
                "H200",
                "--market",
                "CN",
                "--units",
                "1",
                "--date",
                "2026-08-05",
                "--customer",
                "C-1",
            ],
        ),
        "reserve",
    );
    let (code, _, stderr) = withdraw(&other, "2026-07-31");
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("dated 2026-08-05"), "{stderr}");
}

/// `--json` at `as_of`: (exit code, stdout as JSON, stderr).
fn json_at(db: &Path, as_of: &str, args: &[&str]) -> (i32, serde_json::Value, String) {
    let output = qledger_at(db, as_of, &[&["--json"][..], args].concat())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    (
        output.status.code().unwrap(),
        serde_json::from_str(&stdout).unwrap_or(serde_json::Value::Null),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}
