//! The rules of the January 2026 licence (SPEC §3.2, §3.10, §3.11): US
//! supply first, KYC expiry and end-use certificates, restricted-party
//! screening; each at its edges, through the real binary and real files.

mod common;

use common::*;
use serde_json::Value;
use std::path::Path;

/// `qledger --json --db DB --as-of AS_OF ARGS` → (exit code, JSON stdout).
fn json_at(db: &Path, as_of: &str, args: &[&str]) -> (i32, Value) {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let output = qledger_at(db, as_of, &all).output().expect("runs");
    let stdout = String::from_utf8(output.stdout).unwrap();
    let value = serde_json::from_str(&stdout).unwrap_or_else(|err| {
        panic!(
            "{args:?}: not JSON ({err}): {stdout:?}; stderr: {}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    (output.status.code().expect("exited"), value)
}

/// Exit code and stderr of a command.
fn code_at(db: &Path, as_of: &str, args: &[&str]) -> (i32, String) {
    let output = qledger_at(db, as_of, args).output().expect("runs");
    (
        output.status.code().expect("exited"),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The rules that refused a `check`.
fn refusing_rules(answer: &Value) -> Vec<String> {
    answer["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|reason| reason["rule"].as_str().unwrap().to_string())
        .collect()
}

/// `check` of `units` of `chip` to CN on `date`, for `customer` and `lot`.
fn check(db: &Path, chip: &str, date: &str, customer: &str, lot: &str) -> (i32, Value) {
    let mut args = vec![
        "check", "--chip", chip, "--market", "CN", "--units", "10", "--date", date,
    ];
    if !customer.is_empty() {
        args.extend(["--customer", customer]);
    }
    if !lot.is_empty() {
        args.extend(["--lot", lot]);
    }
    json_at(db, AS_OF, &args)
}

const SUPPLY_HEADER: &str =
    "chip,period,us_inventory_units,us_open_orders_units,attested_on,attested_by,reference\n";

/// A ledger whose only policy is SUP (no cap, no lab, no approval) with
/// US-supply attestations required: only rule `supply` can refuse.
fn supply_ledger() -> (tempfile::TempDir, std::path::PathBuf) {
    let (dir, db) = new_ledger();
    let policy = write_file(
        dir.path(),
        "policy.csv",
        "chip,effective_from,restricted_allowed,cap_ratio,cap_window,remittance_rate,lab_test_required,customer_approval_required,source,us_supply_attestation_required\n\
         SUP,2026-01-15,true,,,0.25,false,false,test licence,true\n",
    );
    run_ok(
        qledger_at(&db, AS_OF, &["policy", "import", policy.to_str().unwrap()]),
        "policy",
    );
    (dir, db)
}

fn import_supply(db: &Path, dir: &Path, name: &str, rows: &str) -> (i32, Value) {
    let file = write_file(dir, name, &format!("{SUPPLY_HEADER}{rows}"));
    json_at(db, AS_OF, &["supply", "import", file.to_str().unwrap()])
}

#[test]
fn us_supply_attestation_at_its_edges() {
    let (dir, db) = supply_ledger();
    // Missing.
    let (code, answer) = check(&db, "SUP", "2026-02-10", "", "");
    assert_eq!(
        (code, refusing_rules(&answer)),
        (1, vec!["supply".to_string()])
    );
    assert!(
        answer["reasons"][0]["message"]
            .as_str()
            .unwrap()
            .contains("no US-supply attestation of SUP for 2026-Q1"),
        "{answer}"
    );
    // Insufficient: inventory one below open orders.
    let (code, summary) = import_supply(
        &db,
        dir.path(),
        "q1.csv",
        "SUP,2026-Q1,999,1000,2026-02-10,J. Rivera,SUP-1\n",
    );
    assert_eq!((code, &summary["inserted"]), (0, &Value::from(1)));
    let (code, answer) = check(&db, "SUP", "2026-02-10", "", "");
    assert_eq!(
        (code, refusing_rules(&answer)),
        (1, vec!["supply".to_string()])
    );
    let message = answer["reasons"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("insufficient") && message.contains("999") && message.contains("1000"),
        "{message}"
    );
    // Exactly sufficient, attested the next day: from that day on only.
    import_supply(
        &db,
        dir.path(),
        "q1b.csv",
        "SUP,2026-Q1,1000,1000,2026-02-11,J. Rivera,SUP-2\n",
    );
    assert_eq!(check(&db, "SUP", "2026-02-11", "", "").0, 0);
    assert_eq!(
        check(&db, "SUP", "2026-02-10", "", "").0,
        1,
        "the sale's date sees the attestation of that date, not a later one"
    );
    // An attestation of another period does not count.
    assert_eq!(check(&db, "SUP", "2026-04-01", "", "").0, 1);
    // The import judges rows the same way, and may accept `supply`.
    let sales = write_file(
        dir.path(),
        "sales.csv",
        "record_id,sale_date,chip,market,customer_id,units,unit_price_usd\n\
         S-1,2026-02-10,SUP,CN,C-ANY,5,100\n\
         S-2,2026-02-11,SUP,CN,C-ANY,5,100\n",
    );
    let file = sales.to_str().unwrap();
    let (code, summary) = json_at(&db, AS_OF, &["import", file]);
    assert_eq!(code, 1);
    assert_eq!(summary["errors"][0]["line"], 2);
    assert_eq!(summary["errors"][0]["rule"], "supply");
    assert_eq!(summary["errors"][0]["column"], "sale_date");
    let (code, _, stderr) = run(&db, &["import", file]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains(":2: sale_date: ") && stderr.contains("(rule supply)"),
        "{stderr}"
    );
    let accept = [
        "import",
        file,
        "--accept-violations",
        "--reason",
        "shipped before the attestation was filed",
    ];
    let (code, summary) = json_at(&db, AS_OF, &accept);
    assert_eq!(code, 0, "{summary}");
    assert_eq!(summary["accepted_violations"], 1);
    let (_, report) = json_at(&db, AS_OF, &["report", "--period", "2026-Q1"]);
    assert_eq!(report["violations"][0]["record_id"], "S-1");
    assert_eq!(
        report["violations"][0]["rules"],
        serde_json::json!(["supply"])
    );
    // The report names the period's latest attestation on its reference date.
    let sup = report["chips"]
        .as_array()
        .unwrap()
        .iter()
        .find(|chip| chip["chip"] == "SUP")
        .unwrap();
    assert_eq!(
        sup["supply"],
        serde_json::json!({"attested_on": "2026-02-11", "attested_by": "J. Rivera",
            "us_inventory_units": 1000, "us_open_orders_units": 1000, "sufficient": true})
    );
    let (code, _, stderr) = run(&db, &["verify"]);
    assert_eq!(code, 0, "{stderr}");
}

#[test]
fn supply_files_are_checked_whole() {
    let (dir, db) = supply_ledger();
    let bad = [
        ("H999,2026-Q1,1,0,2026-02-01,J,\n", "chip"),
        ("SUP,2026-03,1,0,2026-02-01,J,\n", "period"),
        ("SUP,2026-Q1,-1,0,2026-02-01,J,\n", "us_inventory_units"),
        (
            "SUP,2026-Q1,1,1000000001,2026-02-01,J,\n",
            "us_open_orders_units",
        ),
        ("SUP,2026-Q1,1,0,2026-07-01,J,\n", "attested_on"),
        ("SUP,2026-Q1,1,0,2026-02-01,,\n", "attested_by"),
    ];
    for (index, (row, column)) in bad.iter().enumerate() {
        let (code, summary) = import_supply(&db, dir.path(), &format!("bad{index}.csv"), row);
        assert_eq!(code, 2, "{row}: {summary}");
        assert_eq!(summary["errors"][0]["column"], *column, "{row}: {summary}");
        assert_eq!(summary["inserted"], 0);
    }
    // Zero inventory is a figure, not an error; the identical row again is
    // a duplicate; other figures for the same key are a conflict.
    let row = "SUP,2026-Q1,0,0,2026-02-01,J. Rivera,\n";
    assert_eq!(import_supply(&db, dir.path(), "ok.csv", row).0, 0);
    let (code, again) = import_supply(&db, dir.path(), "again.csv", row);
    assert_eq!(
        (code, &again["duplicates"], &again["inserted"]),
        (0, &Value::from(1), &Value::from(0))
    );
    let (code, conflict) = import_supply(
        &db,
        dir.path(),
        "conflict.csv",
        "SUP,2026-Q1,5,0,2026-02-01,J. Rivera,\n",
    );
    assert_eq!(code, 2, "{conflict}");
    // A closed period takes no attestation.
    run_ok(
        qledger_at(&db, AS_OF, &["close", "--period", "2026-Q1"]),
        "close",
    );
    let (code, closed) = import_supply(
        &db,
        dir.path(),
        "closed.csv",
        "SUP,2026-Q1,5,0,2026-03-01,J. Rivera,\n",
    );
    assert_eq!(code, 2);
    assert!(
        closed["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("closed"),
        "{closed}"
    );
}

/// The fixture ledger with 1000 US units of H200 in 2026-Q1, so the cap
/// leaves room for the checks below.
fn fixture_ledger_with_us_units() -> (tempfile::TempDir, std::path::PathBuf) {
    let (dir, db) = loaded_ledger();
    let us = write_file(
        dir.path(),
        "us.csv",
        "record_id,sale_date,chip,market,customer_id,units,unit_price_usd\n\
         U-1,2026-02-05,H200,US,,1000,30000\n\
         U-2,2026-04-05,H200,US,,1000,30000\n",
    );
    run_ok(
        qledger_at(&db, AS_OF, &["import", us.to_str().unwrap()]),
        "us",
    );
    (dir, db)
}

const CUSTOMERS_HEADER: &str =
    "customer_id,name,country,status,effective_date,reference,kyc_expires_on,end_use_certificate\n";

#[test]
fn kyc_expiry_and_end_use_certificates_at_their_edges() {
    let (dir, db) = fixture_ledger_with_us_units();
    let customers = write_file(
        dir.path(),
        "customers.csv",
        &format!(
            "{CUSTOMERS_HEADER}\
             C-K1,Kappa One Ltd.,CN,approved,2026-02-01,,2026-03-10,EUC-K1\n\
             C-K2,Kappa Two Ltd.,CN,approved,2026-02-01,,,\n\
             C-K3,Kappa Three Ltd.,CN,approved,2026-02-01,,2026-03-11,EUC-K3\n"
        ),
    );
    run_ok(
        qledger_at(
            &db,
            AS_OF,
            &["customers", "import", customers.to_str().unwrap()],
        ),
        "customers",
    );
    let lot = "L-H200-0002";
    // Expiring on the sale date: not approved that day; the day before, approved.
    let (code, answer) = check(&db, "H200", "2026-03-10", "C-K1", lot);
    assert_eq!(
        (code, refusing_rules(&answer)),
        (1, vec!["customer".to_string()])
    );
    let message = answer["reasons"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("KYC review expired on 2026-03-10"),
        "{message}"
    );
    assert_eq!(check(&db, "H200", "2026-03-09", "C-K1", lot).0, 0);
    // Expiring the day after the sale date: approved on it.
    assert_eq!(check(&db, "H200", "2026-03-10", "C-K3", lot).0, 0);
    // Certificate required (H200) but empty.
    let (code, answer) = check(&db, "H200", "2026-03-02", "C-K2", lot);
    assert_eq!(
        (code, refusing_rules(&answer)),
        (1, vec!["customer".to_string()])
    );
    assert!(
        answer["reasons"][0]["message"]
            .as_str()
            .unwrap()
            .contains("certificate"),
        "{answer}"
    );
    // H20 requires approval but no certificate.
    assert_eq!(check(&db, "H20", "2026-03-02", "C-K2", "").0, 0);
    // The listing says so too, on its as-of date.
    let show = |as_of: &str| json_at(&db, as_of, &["customers", "show", "--customer", "C-K1"]).1;
    assert_eq!(
        show("2026-03-10")["customers"][0],
        serde_json::json!({"customer_id": "C-K1", "name": "Kappa One Ltd.", "country": "CN",
            "status": "expired", "effective_date": "2026-02-01",
            "kyc_expires_on": "2026-03-10", "end_use_certificate": "EUC-K1"})
    );
    assert_eq!(show("2026-03-09")["customers"][0]["status"], "approved");
    // A renewed approval is a new event; it carries its own certificate.
    let renewal = write_file(
        dir.path(),
        "renewal.csv",
        &format!("{CUSTOMERS_HEADER}C-K1,Kappa One Ltd.,CN,approved,2026-03-20,KYC renewal,2027-03-20,EUC-K1b\n"),
    );
    run_ok(
        qledger_at(
            &db,
            AS_OF,
            &["customers", "import", renewal.to_str().unwrap()],
        ),
        "renewal",
    );
    assert_eq!(check(&db, "H200", "2026-03-19", "C-K1", lot).0, 1);
    assert_eq!(check(&db, "H200", "2026-03-20", "C-K1", lot).0, 0);
    // Bad expiries are bad input.
    for (row, what) in [
        (
            "C-K4,K,CN,approved,2026-02-01,,2026-02-01,E\n",
            "not after the approval",
        ),
        (
            "C-K4,K,CN,revoked,2026-02-01,,2026-05-01,\n",
            "on a revocation",
        ),
        (
            "C-K4,K,CN,approved,2026-02-01,,2026-02-30,E\n",
            "not a date",
        ),
    ] {
        let file = write_file(dir.path(), "bad.csv", &format!("{CUSTOMERS_HEADER}{row}"));
        let (code, summary) = json_at(&db, AS_OF, &["customers", "import", file.to_str().unwrap()]);
        assert_eq!(code, 2, "{what}: {summary}");
        assert_eq!(summary["errors"][0]["column"], "kyc_expires_on", "{what}");
    }
    // Old files without the new columns still import.
    let old = write_file(
        dir.path(),
        "old.csv",
        "customer_id,name,country,status,effective_date,reference\nC-K5,Kappa Five,CN,approved,2026-02-01,\n",
    );
    let (code, summary) = json_at(&db, AS_OF, &["customers", "import", old.to_str().unwrap()]);
    assert_eq!((code, &summary["inserted"]), (0, &Value::from(1)));
}

const LIST_HEADER: &str = "list,entry_id,name,alt_names,country\n";

/// Screening customers, each named so that exactly one normalisation step
/// makes it equal to a listed name (or, for C-NEAR, a potential match).
const SCREENED_CUSTOMERS: &str = "C-CASE,ORION COMPUTE SYSTEMS,CN,approved,2026-01-20,,,EUC\n\
     C-PUNCT,\"Vega-Data, Services\",CN,approved,2026-01-20,,,EUC\n\
     C-SUFFIX,\"Lyra Technologies Co., Ltd.\",CN,approved,2026-01-20,,,EUC\n\
     C-WIDE,Draco Analytics,CN,approved,2026-01-20,,,EUC\n\
     C-ALT,Cygnus Networks,CN,approved,2026-01-20,,,EUC\n\
     C-NEAR,Orion Compute,CN,approved,2026-01-20,,,EUC\n";

const LIST: &str = "Entity List,EL-1,Orion Compute Systems,,CN\n\
     Entity List,EL-2,Vega Data Services,,CN\n\
     Entity List,EL-3,Lyra Technologies Limited,,HK\n\
     SDN List,SDN-4,Ｄｒａｃｏ　Ａｎａｌｙｔｉｃｓ,,CN\n\
     SDN List,SDN-5,Cygnus Holdings International,\"CYGNUS NETWORKS INC.;Cygnus Intl\",CN\n";

fn screened_ledger() -> (tempfile::TempDir, std::path::PathBuf) {
    let (dir, db) = fixture_ledger_with_us_units();
    let customers = write_file(
        dir.path(),
        "screened.csv",
        &format!("{CUSTOMERS_HEADER}{SCREENED_CUSTOMERS}"),
    );
    run_ok(
        qledger_at(
            &db,
            AS_OF,
            &["customers", "import", customers.to_str().unwrap()],
        ),
        "customers",
    );
    let list = write_file(dir.path(), "list.csv", &format!("{LIST_HEADER}{LIST}"));
    let import = [
        "screening",
        "import",
        list.to_str().unwrap(),
        "--effective",
        "2026-03-01",
    ];
    let (code, summary) = json_at(&db, AS_OF, &import);
    assert_eq!(
        (code, &summary["inserted"]),
        (0, &Value::from(5)),
        "{summary}"
    );
    (dir, db)
}

#[test]
fn screening_hits_through_case_punctuation_legal_forms_width_and_alt_names() {
    let (dir, db) = screened_ledger();
    let lot = "L-H200-0002";
    for customer in ["C-CASE", "C-PUNCT", "C-SUFFIX", "C-WIDE", "C-ALT"] {
        let (code, answer) = check(&db, "H200", "2026-03-02", customer, lot);
        assert_eq!(
            (code, refusing_rules(&answer)),
            (1, vec!["screening".to_string()]),
            "{customer}: {answer}"
        );
        assert_eq!(
            check(&db, "H200", "2026-02-28", customer, lot).0,
            0,
            "{customer}: before the first snapshot nobody is listed"
        );
    }
    let (_, answer) = check(&db, "H200", "2026-03-02", "C-ALT", lot);
    let message = answer["reasons"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("SDN List")
            && message.contains("SDN-5")
            && message.contains("CYGNUS NETWORKS INC."),
        "names the list, entry and listed name: {message}"
    );
    // A potential match is listed for review, never refused.
    assert_eq!(check(&db, "H200", "2026-03-02", "C-NEAR", lot).0, 0);
    let (code, listed) = json_at(&db, AS_OF, &["screening", "check"]);
    assert_eq!(code, 1, "uncleared hits: {listed}");
    let hit_ids: Vec<&str> = listed["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|hit| hit["customer_id"].as_str().unwrap())
        .collect();
    for customer in ["C-CASE", "C-PUNCT", "C-SUFFIX", "C-WIDE", "C-ALT"] {
        assert!(hit_ids.contains(&customer), "{customer}: {listed}");
    }
    let near: Vec<&Value> = listed["potential"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["customer_id"] == "C-NEAR")
        .collect();
    assert_eq!(near.len(), 1, "{listed}");
    assert_eq!(
        near[0],
        &serde_json::json!({"customer_id": "C-NEAR", "name": "Orion Compute", "list": "Entity List",
            "entry_id": "EL-1", "listed_name": "Orion Compute Systems"})
    );
    // The import refuses a hit too, and never accepts it as a violation.
    let sales = write_file(
        dir.path(),
        "sales.csv",
        "record_id,sale_date,chip,market,customer_id,units,unit_price_usd,lot_id\n\
         S-1,2026-03-05,H200,CN,C-PUNCT,5,30000,L-H200-0002\n",
    );
    let file = sales.to_str().unwrap();
    let (code, _, stderr) = run(&db, &["import", file]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains(":2: customer_id: ") && stderr.contains("(rule screening)"),
        "{stderr}"
    );
    let accept = [
        "import",
        file,
        "--accept-violations",
        "--reason",
        "shipped anyway",
    ];
    let (code, summary) = json_at(&db, AS_OF, &accept);
    assert_eq!(
        (code, &summary["inserted"]),
        (1, &Value::from(0)),
        "{summary}"
    );
    let (code, _, stderr) = run(&db, &["verify"]);
    assert_eq!(code, 0, "{stderr}");
}

#[test]
fn a_clearance_lifts_one_hit_and_a_later_snapshot_delists() {
    let (dir, db) = screened_ledger();
    let lot = "L-H200-0002";
    let clear = |customer: &str, list: &str, entry: &str| {
        json_at(
            &db,
            AS_OF,
            &[
                "screening",
                "clear",
                "--customer",
                customer,
                "--list",
                list,
                "--entry",
                entry,
                "--reason",
                "different company: registry extract on file",
            ],
        )
    };
    let (code, cleared) = clear("C-CASE", "Entity List", "EL-1");
    assert_eq!(
        (code, &cleared["already_cleared"]),
        (0, &Value::from(false)),
        "{cleared}"
    );
    assert_eq!(check(&db, "H200", "2026-03-02", "C-CASE", lot).0, 0);
    let (code, again) = clear("C-CASE", "Entity List", "EL-1");
    assert_eq!((code, &again["already_cleared"]), (0, &Value::from(true)));
    // The clearance is for that entry only, and needs a real customer and entry.
    let reason = ["--reason", "r"];
    for (customer, entry) in [("C-CASE", "EL-99"), ("C-NOBODY", "EL-1")] {
        let mut args = vec![
            "screening",
            "clear",
            "--customer",
            customer,
            "--list",
            "Entity List",
        ];
        args.extend(["--entry", entry]);
        args.extend(reason);
        let (code, stderr) = code_at(&db, AS_OF, &args);
        assert_eq!(code, 2, "{customer} {entry}: {stderr}");
    }
    assert_eq!(check(&db, "H200", "2026-03-02", "C-PUNCT", lot).0, 1);
    let (_, listed) = json_at(&db, AS_OF, &["screening", "check"]);
    let case = listed["hits"]
        .as_array()
        .unwrap()
        .iter()
        .find(|hit| hit["customer_id"] == "C-CASE")
        .unwrap();
    assert_eq!(case["cleared"], true);
    // A later snapshot without Cygnus: listed before it, not after.
    let later: String = LIST
        .lines()
        .filter(|l| !l.contains("Cygnus"))
        .map(|l| format!("{l}\n"))
        .collect();
    let file = write_file(dir.path(), "later.csv", &format!("{LIST_HEADER}{later}"));
    let import = [
        "screening",
        "import",
        file.to_str().unwrap(),
        "--effective",
        "2026-04-01",
    ];
    assert_eq!(json_at(&db, AS_OF, &import).0, 0);
    assert_eq!(check(&db, "H200", "2026-03-31", "C-ALT", lot).0, 1);
    assert_eq!(check(&db, "H200", "2026-04-02", "C-ALT", lot).0, 0);
    // With only cleared hits left, `screening check` exits 0.
    let empty = write_file(dir.path(), "empty.csv", LIST_HEADER);
    let import = [
        "screening",
        "import",
        empty.to_str().unwrap(),
        "--effective",
        "2026-05-01",
    ];
    assert_eq!(
        json_at(&db, AS_OF, &import).0,
        0,
        "a header-only file is an empty snapshot"
    );
    let (code, listed) = json_at(&db, AS_OF, &["screening", "check"]);
    assert_eq!(
        (code, &listed["hits"]),
        (0, &serde_json::json!([])),
        "{listed}"
    );
    let (code, _, stderr) = run(&db, &["verify"]);
    assert_eq!(code, 0, "{stderr}");
}

#[test]
fn snapshots_are_whole_files_in_date_order() {
    let (dir, db) = screened_ledger();
    // The same rows in another order with the same date: a duplicate.
    let reversed: String = LIST.lines().rev().map(|l| format!("{l}\n")).collect();
    let file = write_file(
        dir.path(),
        "reversed.csv",
        &format!("{LIST_HEADER}{reversed}"),
    );
    let path = file.to_str().unwrap();
    let (code, summary) = json_at(
        &db,
        AS_OF,
        &["screening", "import", path, "--effective", "2026-03-01"],
    );
    assert_eq!(code, 0);
    assert_eq!(
        (&summary["inserted"], &summary["duplicates"]),
        (&Value::from(0), &Value::from(5))
    );
    // Another file with the same date, or an earlier date: bad input.
    let fewer: String = LIST.lines().skip(1).map(|l| format!("{l}\n")).collect();
    let other = write_file(dir.path(), "other.csv", &format!("{LIST_HEADER}{fewer}"));
    let other = other.to_str().unwrap();
    for effective in ["2026-03-01", "2026-02-01"] {
        let (code, stderr) = code_at(
            &db,
            AS_OF,
            &["screening", "import", other, "--effective", effective],
        );
        assert_eq!(code, 2, "{effective}: {stderr}");
    }
    // Never in force from a date not yet reached.
    let (code, stderr) = code_at(
        &db,
        AS_OF,
        &["screening", "import", other, "--effective", "2026-07-01"],
    );
    assert_eq!(code, 2, "{stderr}");
    // An entry id twice in one list is bad input.
    let twice = write_file(
        dir.path(),
        "twice.csv",
        &format!(
            "{LIST_HEADER}Entity List,EL-1,A B,,\nEntity List,EL-1,C D,,\nSDN List,EL-1,E F,,\n"
        ),
    );
    let (code, summary) = json_at(
        &db,
        AS_OF,
        &["screening", "import", twice.to_str().unwrap()],
    );
    assert_eq!(code, 2);
    assert_eq!(summary["errors"][0]["line"], 3, "{summary}");
}

#[test]
fn concurrent_reservers_never_exceed_the_cap_with_every_licence_rule_on() {
    let (dir, db) = loaded_ledger();
    // 100 US units in 2026-Q1: limit 50. A snapshot that lists someone else.
    let us = write_file(
        dir.path(),
        "us.csv",
        "record_id,sale_date,chip,market,customer_id,units,unit_price_usd\nU-1,2026-02-09,H200,US,,100,30000\n",
    );
    run_ok(
        qledger_at(&db, "2026-02-15", &["import", us.to_str().unwrap()]),
        "us",
    );
    let list = write_file(dir.path(), "list.csv", &format!("{LIST_HEADER}{LIST}"));
    run_ok(
        qledger_at(
            &db,
            "2026-02-15",
            &["screening", "import", list.to_str().unwrap()],
        ),
        "list",
    );
    let reservers: Vec<_> = (0..8)
        .map(|process| {
            let db = db.clone();
            std::thread::spawn(move || {
                let order = format!("PO-{process}");
                reserve_command(&db, "2026-02-15", &order, "10")
                    .output()
                    .expect("runs")
                    .status
                    .code()
                    .expect("exited")
            })
        })
        .collect();
    let codes: Vec<i32> = reservers.into_iter().map(|r| r.join().unwrap()).collect();
    assert!(
        codes.iter().all(|code| *code == 0 || *code == 1),
        "{codes:?}"
    );
    assert_eq!(
        codes.iter().filter(|code| **code == 0).count(),
        5,
        "{codes:?}"
    );
    let (_, answer) = json_at(
        &db,
        "2026-02-15",
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
        (&answer["reserved_units"], &answer["headroom"]),
        (&Value::from(50), &Value::from(0))
    );
    let (code, _, stderr) = run(&db, &["verify"]);
    assert_eq!(code, 0, "{stderr}");
}

#[test]
fn the_csl_script_turns_the_consolidated_list_into_an_import_file() {
    let (dir, db) = screened_ledger();
    let csl = write_file(
        dir.path(),
        "consolidated.csv",
        "_id,source,entity_number,type,programs,name,title,addresses,federal_register_notice,start_date,end_date,standard_order,license_requirement,license_policy,call_sign,vessel_type,gross_tonnage,gross_registered_tonnage,vessel_flag,vessel_owner,remarks,source_list_url,alt_names,citizenships,dates_of_birth,nationalities,places_of_birth,source_information_url,ids\n\
         e5a9ef,Entity List (EL) - Bureau of Industry and Security,,Entity,EAR,\"Lyra Technologies Co., Ltd.\",,\"1 Road, Shenzhen, Guangdong, 518000, CN\",89 F.R. 1,2024-01-01,,,,,,,,,,,,http://x,\"Lyra Tech; Lyra Technologies (HK) Limited\",,,,,http://y,\n\
         f00ba4,Specially Designated Nationals (SDN) - Treasury Department,SDN-77,Entity,SDGT,Omega Trading FZE,,\"PO Box 1, Dubai, AE\",,,,,,,,,,,,,,http://x,,,,,,http://y,\n\
         0000aa,Entity List (EL) - Bureau of Industry and Security,,Entity,EAR,,,,,,,,,,,,,,,,,http://x,,,,,,http://y,\n",
    );
    let output = std::process::Command::new("python3")
        .arg(root().join("scripts/csl_to_screening.py"))
        .arg(&csl)
        .output()
        .expect("python3 runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let converted = String::from_utf8(output.stdout).unwrap();
    assert_eq!(
        converted,
        "list,entry_id,name,alt_names,country\n\
         Entity List (EL) - Bureau of Industry and Security,e5a9ef,\"Lyra Technologies Co., Ltd.\",Lyra Tech;Lyra Technologies (HK) Limited,CN\n\
         Specially Designated Nationals (SDN) - Treasury Department,SDN-77,Omega Trading FZE,,AE\n"
    );
    let file = write_file(dir.path(), "csl.csv", &converted);
    let import = [
        "screening",
        "import",
        file.to_str().unwrap(),
        "--effective",
        "2026-04-01",
    ];
    let (code, summary) = json_at(&db, AS_OF, &import);
    assert_eq!(
        (code, &summary["inserted"]),
        (0, &Value::from(2)),
        "{summary}"
    );
    let (code, answer) = check(&db, "H200", "2026-04-02", "C-SUFFIX", "L-H200-0002");
    assert_eq!(
        (code, refusing_rules(&answer)),
        (1, vec!["screening".to_string()])
    );
}
