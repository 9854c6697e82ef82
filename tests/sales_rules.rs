//! The nightly import's rules at their edges (SPEC §3.1–3.5, §3.8–3.9),
//! through the real binary on real ledger files.

mod common;

use common::*;
use serde_json::Value as Json;
use std::path::PathBuf;
use tempfile::TempDir;

const SALES: &str = "record_id,sale_date,chip,market,customer_id,units,unit_price_usd,lot_id,order_ref,kind,reverses\n";
const POLICY: &str = "chip,effective_from,restricted_allowed,cap_ratio,cap_window,remittance_rate,lab_test_required,customer_approval_required,source\n";
const CUSTOMERS: &str = "customer_id,name,country,status,effective_date,reference\n";
const LOTS: &str = "lot_id,chip,units,lab,certificate_id,result,effective_date\n";

struct Scenario {
    dir: TempDir,
    db: PathBuf,
    files: usize,
}

/// H200: cap 0.5 per period from 2026-01-01, lab test and approval required.
/// C-CN approved (CN), C-HK approved (HK), C-US approved but in the US,
/// C-REV approved then revoked on 2026-02-10. Lot L1 (H200, 100 units),
/// L-BIG (H200, 1,000,000), L-FAIL failed, L-H20 (a lot of H20).
fn scenario() -> Scenario {
    scenario_with(
        "H200,2026-01-01,true,0.5,period,0.25,true,true,test rule\n\
         H20,2026-01-01,true,,,0.15,false,false,test rule\n\
         B200,2026-01-01,false,,,0,true,true,test rule\n",
    )
}

fn scenario_with(policy: &str) -> Scenario {
    let (dir, db) = new_ledger();
    let mut s = Scenario { dir, db, files: 0 };
    s.reference("policy", &format!("{POLICY}{policy}"));
    s.reference(
        "customers",
        &format!(
            "{CUSTOMERS}C-CN,CN Co,CN,approved,2026-01-01,\nC-HK,HK Co,HK,approved,2026-01-01,\n\
             C-MO,MO Co,MO,approved,2026-01-01,\nC-US,US Co,US,approved,2026-01-01,\n\
             C-REV,Rev Co,CN,approved,2026-01-01,\nC-REV,Rev Co,CN,revoked,2026-02-10,\n"
        ),
    );
    s.reference(
        "lots",
        &format!(
            "{LOTS}L1,H200,100,Lab,C1,pass,2026-01-01\nL-BIG,H200,1000000,Lab,C2,pass,2026-01-01\n\
             L-FAIL,H200,100,Lab,C3,fail,2026-01-01\nL-H20,H20,100,Lab,C4,pass,2026-01-01\n\
             L-REV,H200,100,Lab,C5,pass,2026-01-01\nL-REV,H200,100,Lab,C6,revoked,2026-02-10\n"
        ),
    );
    s
}

impl Scenario {
    fn file(&mut self, text: &str) -> PathBuf {
        self.files += 1;
        write_file(self.dir.path(), &format!("f{}.csv", self.files), text)
    }

    fn reference(&mut self, command: &str, text: &str) {
        let file = self.file(text);
        let (code, _, stderr) = run(&self.db, &[command, "import", file.to_str().unwrap()]);
        assert_eq!(code, 0, "{command}: {stderr}");
    }

    /// Imports sales rows (the header is added) with extra arguments.
    fn import(&mut self, rows: &str, extra: &[&str]) -> (i32, Json, String) {
        let file = self.file(&format!("{SALES}{rows}"));
        let mut args = vec!["import", file.to_str().unwrap()];
        args.extend_from_slice(extra);
        run_json(&self.db, &args)
    }

    fn import_ok(&mut self, rows: &str) -> Json {
        let (code, summary, stderr) = self.import(rows, &[]);
        assert_eq!(code, 0, "{summary} {stderr}");
        summary
    }

    fn digest(&self) -> String {
        digest(&self.db)
    }
}

/// (line, column, rule) of every error.
fn errors(summary: &Json) -> Vec<(u64, String, Option<String>)> {
    summary["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["line"].as_u64().unwrap(),
                e["column"].as_str().unwrap().to_string(),
                e["rule"].as_str().map(str::to_string),
            )
        })
        .collect()
}

fn refusal(line: u64, column: &str, rule: &str) -> (u64, String, Option<String>) {
    (line, column.to_string(), Some(rule.to_string()))
}

#[test]
fn cap_exactly_at_the_limit_and_one_over() {
    let mut s = scenario();
    s.import_ok("U1,2026-01-05,H200,US,,1000,10,,,,\n");
    let before = s.digest();
    // limit = floor(0.5 × 1000) = 500
    let (code, summary, stderr) = s.import("R1,2026-01-06,H200,CN,C-CN,501,10,L-BIG,,,\n", &[]);
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(errors(&summary), vec![refusal(2, "units", "cap")]);
    assert_eq!(summary["inserted"], 0);
    assert!(stderr.contains(":2: units: "), "{stderr}");
    assert_eq!(s.digest(), before, "atomic: nothing written");
    let summary = s.import_ok("R1,2026-01-06,H200,CN,C-CN,500,10,L-BIG,,,\n");
    assert_eq!(summary["inserted"], 1);
    let (code, summary, _) = s.import("R2,2026-01-07,H200,HK,C-HK,1,10,L-BIG,,,\n", &[]);
    assert_eq!(
        (code, errors(&summary)),
        (1, vec![refusal(2, "units", "cap")])
    );
}

#[test]
fn odd_us_units_floor_the_limit_and_zero_us_units_allow_nothing() {
    let mut s = scenario();
    let (code, summary, _) = s.import("R0,2026-01-06,H200,CN,C-CN,1,10,L-BIG,,,\n", &[]);
    assert_eq!(
        (code, errors(&summary)),
        (1, vec![refusal(2, "units", "cap")]),
        "no US units: limit 0"
    );
    s.import_ok("U1,2026-01-05,H200,US,,1001,10,,,,\n");
    s.import_ok("R1,2026-01-06,H200,CN,C-CN,500,10,L-BIG,,,\n");
    let (code, _, _) = s.import("R2,2026-01-06,H200,CN,C-CN,1,10,L-BIG,,,\n", &[]);
    assert_eq!(code, 1, "floor(500.5) = 500");
}

#[test]
fn us_rows_count_first_and_refused_rows_do_not_count_for_later_ones() {
    let mut s = scenario();
    // Restricted rows before the US row in file order still see its units.
    let rows = "R1,2026-01-06,H200,CN,C-CN,400,10,L-BIG,,,\n\
                R2,2026-01-06,H200,CN,C-CN,200,10,L-BIG,,,\n\
                R3,2026-01-06,H200,MO,C-MO,100,10,L-BIG,,,\n\
                U1,2026-01-05,H200,US,,1000,10,,,,\n";
    let before = s.digest();
    let (code, atomic, _) = s.import(rows, &[]);
    assert_eq!(code, 1);
    assert_eq!(
        errors(&atomic),
        vec![refusal(3, "units", "cap")],
        "R3 fits once R2 is refused"
    );
    assert_eq!(s.digest(), before);

    let rejects = s.dir.path().join("rejects.csv");
    let (code, partial, _) = s.import(rows, &["--partial", "--rejects", rejects.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert_eq!(
        errors(&partial),
        errors(&atomic),
        "atomic lists exactly what partial rejects"
    );
    assert_eq!(partial["inserted"], 3);
    assert_eq!(partial["rejected"], 1);
    let text = std::fs::read_to_string(&rejects).unwrap();
    let mut lines = text.lines();
    assert_eq!(
        lines.next().unwrap(),
        format!("{},line,error", SALES.trim_end())
    );
    let reject = lines.next().unwrap();
    assert!(
        reject.starts_with("R2,2026-01-06,H200,CN,C-CN,200,10,L-BIG,,,,3,"),
        "{reject}"
    );
    assert!(reject.contains("units: "), "{reject}");
    assert!(lines.next().is_none());
    let (code, _, _) = run(&s.db, &["verify"]);
    assert_eq!(code, 0);
}

#[test]
fn hk_and_mo_are_restricted_and_a_cn_customer_may_take_delivery_in_hk() {
    let mut s = scenario();
    s.import_ok("U1,2026-01-05,H200,US,,1000,10,,,,\n");
    s.import_ok(
        "R1,2026-01-06,H200,HK,C-CN,200,10,L-BIG,,,\n\
         R2,2026-01-06,H200,MO,C-HK,200,10,L-BIG,,,\n\
         R3,2026-01-06,H200,hk,C-MO,100,10,L-BIG,,,\n",
    );
    let (code, summary, _) = s.import("R4,2026-01-06,H200,MO,C-MO,1,10,L-BIG,,,\n", &[]);
    assert_eq!(
        (code, errors(&summary)),
        (1, vec![refusal(2, "units", "cap")]),
        "HK and MO used the CN cap"
    );
    // A customer approved in the US is not a restricted-group customer.
    let (code, summary, stderr) = s.import("R5,2026-01-06,H20,CN,C-US,1,10,,,,\n", &[]);
    assert_eq!(
        code, 0,
        "H20 needs no approval: customer not checked {stderr}"
    );
    assert_eq!(summary["inserted"], 1);
    s.import_ok("U2,2026-01-05,H200,US,,10,10,,,,\n");
    let (code, summary, _) = s.import("R6,2026-01-06,H200,CN,C-US,1,10,L-BIG,,,\n", &[]);
    assert_eq!(
        (code, errors(&summary)),
        (1, vec![refusal(2, "customer_id", "customer")])
    );
    // Other markets are recorded and never counted.
    s.import_ok("O1,2026-01-06,H200,de,,100000,10,,,,\n");
    let (code, _, _) = s.import("R7,2026-01-06,H200,CN,C-CN,6,10,L-BIG,,,\n", &[]);
    assert_eq!(code, 1, "DE units did not raise the limit");
}

#[test]
fn a_customer_revoked_the_day_before_refuses_the_sale() {
    let mut s = scenario();
    s.import_ok("U1,2026-01-05,H200,US,,1000,10,,,,\n");
    s.import_ok("R1,2026-02-09,H200,CN,C-REV,1,10,L-BIG,,,\n");
    let (code, summary, stderr) = s.import("R2,2026-02-10,H200,CN,C-REV,1,10,L-BIG,,,\n", &[]);
    assert_eq!(
        (code, errors(&summary)),
        (1, vec![refusal(2, "customer_id", "customer")])
    );
    assert!(stderr.contains("revoked on 2026-02-10"), "{stderr}");
    let (code, summary, _) = s.import("R3,2026-01-06,H200,CN,C-NOBODY,1,10,L-BIG,,,\n", &[]);
    assert_eq!(
        (code, errors(&summary)),
        (1, vec![refusal(2, "customer_id", "customer")])
    );
    let (code, summary, _) = s.import("R4,2026-01-06,H200,CN,,1,10,L-BIG,,,\n", &[]);
    assert_eq!(code, 2, "customer_id is required on restricted rows");
    assert_eq!(errors(&summary), vec![(2, "customer_id".into(), None)]);
}

#[test]
fn a_lots_last_unit_and_every_lot_problem() {
    let mut s = scenario();
    s.import_ok("U1,2026-01-05,H200,US,,10000,10,,,,\n");
    s.import_ok("R1,2026-01-06,H200,CN,C-CN,60,10,L1,,,\nR2,2026-01-06,H200,CN,C-CN,40,10,L1,,,\n");
    let (code, summary, stderr) = s.import("R3,2026-01-07,H200,CN,C-CN,1,10,L1,,,\n", &[]);
    assert_eq!(
        (code, errors(&summary)),
        (1, vec![refusal(2, "lot_id", "lot")])
    );
    assert!(stderr.contains("100 units"), "{stderr}");
    // A return frees lot capacity.
    s.import_ok("X1,2026-01-08,H200,CN,C-CN,1,,,,return,R1\n");
    s.import_ok("R3,2026-01-08,H200,CN,C-CN,1,10,L1,,,\n");
    let (code, summary, _) = s.import(
        "R4,2026-01-08,H200,CN,C-CN,1,10,L-FAIL,,,\n\
         R5,2026-01-08,H200,CN,C-CN,1,10,L-H20,,,\n\
         R6,2026-01-08,H200,CN,C-CN,1,10,L-NONE,,,\n\
         R7,2026-01-08,H200,CN,C-CN,1,10,,,,\n\
         R8,2026-02-10,H200,CN,C-CN,1,10,L-REV,,,\n\
         R9,2026-02-09,H200,CN,C-CN,1,10,L-REV,,,\n\
         R10,2026-01-08,H20,CN,C-CN,1,10,L1,,,\n",
        &[],
    );
    assert_eq!(code, 1);
    assert_eq!(
        errors(&summary),
        vec![
            refusal(2, "lot_id", "lot"),
            refusal(3, "lot_id", "lot"),
            refusal(4, "lot_id", "lot"),
            refusal(5, "lot_id", "lot"),
            refusal(6, "lot_id", "lot"),
            refusal(8, "lot_id", "lot"),
        ],
        "failed, other chip, unknown, missing where required, revoked; R9 is fine the day before; \
         a named lot is checked even where no lab test is required (H20)"
    );
    // Lots on US rows are recorded, not checked or counted.
    s.import_ok("U2,2026-01-09,H200,US,,5,10,L-FAIL,,,\n");
}

#[test]
fn policy_missing_not_allowed_and_a_change_inside_a_period() {
    let mut s = scenario_with(
        "H200,2026-01-15,true,0.5,period,0.25,false,false,a\n\
         H200,2026-02-15,true,0.2,period,0.25,false,false,b\n\
         B200,2026-01-01,false,,,0,true,true,no\n",
    );
    s.import_ok("U0,2026-01-02,B200,US,,10,10,,,,\nU1,2026-01-05,H200,US,,1000,10,,,,\n");
    let (code, summary, _) = s.import(
        "R1,2026-01-14,H200,CN,C-CN,1,10,,,,\nR2,2026-01-20,B200,CN,C-CN,1,10,,,,\n",
        &[],
    );
    assert_eq!(code, 1);
    assert_eq!(
        errors(&summary),
        vec![
            refusal(2, "chip", "policy"),
            refusal(3, "chip", "policy"),
            refusal(3, "lot_id", "lot"),
        ],
        "every rule that can be evaluated: B200's version also requires a lot"
    );
    // A chip no policy version names is malformed on every market: a typo
    // (H2OO) must never open a new product line.
    for (line, market) in [("US,", "US"), ("CN,C-CN", "CN"), ("DE,", "DE")] {
        let (code, summary, stderr) =
            s.import(&format!("T1,2026-01-20,H2OO,{line},1,10,,,,\n"), &[]);
        assert_eq!(code, 2, "{market}: {stderr}");
        assert_eq!(
            errors(&summary),
            vec![(2, "chip".to_string(), None)],
            "{market}"
        );
        let message = summary["errors"][0]["message"].as_str().unwrap();
        assert!(
            message.contains("unknown chip H2OO") && message.contains("B200, H200"),
            "{message}"
        );
    }
    let (code, summary, _) = s.import("T2,2026-01-20,H2OO,US,,1,,,,return,U1\n", &[]);
    assert_eq!(
        (code, errors(&summary)),
        (2, vec![(2, "chip".to_string(), None)])
    );
    // Before the change: 0.5 of 1000 (US units dated before the version count: the window is the period).
    s.import_ok("R4,2026-02-14,H200,CN,C-CN,250,10,,,,\n");
    // From 2026-02-15 the limit is floor(0.2 × 1000) = 200, already exceeded.
    let (code, summary, _) = s.import("R5,2026-02-15,H200,CN,C-CN,1,10,,,,\n", &[]);
    assert_eq!(
        (code, errors(&summary)),
        (1, vec![refusal(2, "units", "cap")])
    );
    s.import_ok("U2,2026-03-01,H200,US,,300,10,,,,\n");
    // floor(0.2 × 1300) = 260: 10 more fit, 11 do not.
    let (code, _, _) = s.import("R6,2026-03-02,H200,CN,C-CN,11,10,,,,\n", &[]);
    assert_eq!(code, 1);
    s.import_ok("R6,2026-03-02,H200,CN,C-CN,10,10,,,,\n");
}

#[test]
fn a_cumulative_window_counts_from_the_start_of_the_capped_run() {
    let mut s = scenario_with(
        "H200,2026-01-15,true,0.5,period,0.25,false,false,a\n\
         H200,2026-04-01,true,0.5,cumulative,0.25,false,false,b\n",
    );
    // Q1: US 1000 (one unit before the capped run began), restricted 450.
    s.import_ok("U0,2026-01-10,H200,US,,1,10,,,,\nU1,2026-01-20,H200,US,,999,10,,,,\nR1,2026-02-01,H200,CN,C-CN,450,10,,,,\n");
    // Q2: US 100. Cumulative window 2026-01-15..2026-06-30: US 1099, limit 549,
    // restricted 450: 99 more fit (a period window would allow only 50).
    s.import_ok("U2,2026-04-02,H200,US,,100,10,,,,\n");
    let (code, _, _) = s.import("R2,2026-04-03,H200,CN,C-CN,100,10,,,,\n", &[]);
    assert_eq!(code, 1);
    s.import_ok("R2,2026-04-03,H200,CN,C-CN,99,10,,,,\n");
}

#[test]
fn returns_within_and_across_periods() {
    let mut s = scenario();
    s.import_ok("U1,2026-03-01,H200,US,,1000,10,,,,\nU2,2026-04-01,H200,US,,100,10,,,,\n");
    s.import_ok(
        "R1,2026-03-02,H200,CN,C-CN,500,12.5,L-BIG,,,\nR2,2026-04-02,H200,CN,C-CN,50,10,L-BIG,,,\n",
    );
    // A return in Q2 of a Q1 sale frees Q2 headroom, not Q1's.
    s.import_ok("X1,2026-04-03,H200,CN,C-CN,20,,,,return,R1\n");
    s.import_ok("R3,2026-04-04,H200,CN,C-CN,20,10,L-BIG,,,\n");
    let (code, _, _) = s.import("R4,2026-03-05,H200,CN,C-CN,1,10,L-BIG,,,\n", &[]);
    assert_eq!(code, 1, "Q1 is still full");
    // A return within the period frees headroom there.
    s.import_ok("X2,2026-03-06,H200,CN,C-CN,5,12.5,L-BIG,,return,R1\n");
    s.import_ok("R4,2026-03-06,H200,CN,C-CN,5,10,L-BIG,,,\n");
    // Bad returns: too many, before the sale, other chip/customer/price/lot,
    // not a sale, a return of a return; all listed.
    let (code, summary, _) = s.import(
        "X3,2026-04-05,H200,CN,C-CN,476,,,,return,R1\n\
         X4,2026-03-01,H200,CN,C-CN,1,,,,return,R1\n\
         X5,2026-04-05,H20,CN,C-CN,1,,,,return,R1\n\
         X6,2026-04-05,H200,CN,C-HK,1,,,,return,R1\n\
         X7,2026-04-05,H200,CN,C-CN,1,99,,,return,R1\n\
         X8,2026-04-05,H200,CN,C-CN,1,,L1,,return,R1\n\
         X9,2026-04-05,H200,CN,C-CN,1,,,,return,NOPE\n\
         X10,2026-04-05,H200,CN,C-CN,1,,,,return,X1\n",
        &[],
    );
    assert_eq!(code, 1);
    let rules: Vec<_> = errors(&summary)
        .into_iter()
        .map(|e| (e.0, e.2.unwrap()))
        .collect();
    assert_eq!(
        rules,
        (2..=9)
            .map(|line| (line, "return".to_string()))
            .collect::<Vec<_>>()
    );
    // 475 left to return: exactly all of it is fine.
    s.import_ok("X3,2026-04-05,H200,CN,C-CN,475,,,,return,R1\n");
    // A return in the same file as its sale.
    s.import_ok("X11,2026-04-06,H200,US,,1,,,,return,U9\nU9,2026-04-06,H200,US,,2,10,,,,\n");
    let (code, _, _) = run(&s.db, &["verify"]);
    assert_eq!(code, 0);
}

#[test]
fn a_us_return_may_not_put_shipped_units_over_the_cap() {
    let mut s = scenario();
    s.import_ok("U1,2026-01-05,H200,US,,1000,10,,,,\n");
    s.import_ok("R1,2026-01-06,H200,CN,C-CN,400,10,L-BIG,,,\n");
    // Returning 200 US units: limit 400 = shipped: fine. 201: refused.
    let (code, summary, _) = s.import("X1,2026-01-07,H200,US,,201,,,,return,U1\n", &[]);
    assert_eq!(
        (code, errors(&summary)),
        (1, vec![refusal(2, "units", "cap")])
    );
    s.import_ok("X1,2026-01-07,H200,US,,200,,,,return,U1\n");
    // Already over the limit (policy tightened): a further US return is not refused by cap.
    let mut t = scenario_with(
        "H200,2026-01-01,true,0.5,period,0.25,false,false,a\nH200,2026-02-01,true,0.1,period,0.25,false,false,b\n",
    );
    t.import_ok("U1,2026-01-05,H200,US,,1000,10,,,,\nR1,2026-01-06,H200,CN,C-CN,400,10,,,,\n");
    t.import_ok("X1,2026-02-07,H200,US,,10,,,,return,U1\n");
}

#[test]
fn accept_violations_records_breaches_that_happened() {
    let mut s = scenario();
    s.import_ok("U1,2026-01-05,H200,US,,100,10,,,,\n");
    let reason = "shipped 2026-01-06 before review; self-disclosed to BIS";
    let (code, summary, stderr) = s.import(
        "V1,2026-01-06,H200,CN,C-CN,60,10,L-BIG,,,\n\
         V2,2026-01-06,B200,CN,C-US,1,10,,,,\n\
         OK1,2026-01-06,H20,CN,C-CN,1,10,,,,\n\
         BAD,2026-01-06,H200,CN,C-CN,zero,10,L-BIG,,,\n\
         XR,2026-01-06,H200,CN,C-CN,1,,,,return,NOPE\n",
        &["--accept-violations", "--reason", reason],
    );
    assert_eq!(
        code, 2,
        "the malformed row still fails the atomic import: {stderr}"
    );
    assert_eq!(summary["inserted"], 0);
    assert_eq!(
        errors(&summary),
        vec![(5, "units".into(), None), refusal(6, "reverses", "return")],
        "accepted rows are not errors; malformed and return refusals are never accepted"
    );
    let (code, summary, stderr) = s.import(
        "V1,2026-01-06,H200,CN,C-CN,60,10,L-BIG,,,\n\
         V2,2026-01-06,B200,CN,C-US,1,10,,,,\n\
         OK1,2026-01-06,H20,CN,C-CN,1,10,,,,\n",
        &["--accept-violations", "--reason", reason],
    );
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(summary["inserted"], 3);
    assert_eq!(summary["accepted_violations"], 2);
    // Accepted units count for later rows: the window is over its limit of 50.
    let (code, _, _) = s.import("R2,2026-01-07,H200,CN,C-CN,1,10,L-BIG,,,\n", &[]);
    assert_eq!(code, 1);
    let conn = rusqlite::Connection::open(&s.db).unwrap();
    let (rules, stored_reason): (String, String) = conn
        .query_row(
            "SELECT accepted_rules, accepted_reason FROM sale WHERE record_id = 'V2'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(rules, "customer,lot,policy");
    assert_eq!(stored_reason, reason);
    // A closed period is never accepted; nor is a missing reason.
    let file = s.file(&format!(
        "{SALES}V3,2026-01-06,H200,CN,C-CN,1,10,L-BIG,,,\n"
    ));
    let (code, _, _) = run(
        &s.db,
        &["import", file.to_str().unwrap(), "--accept-violations"],
    );
    assert_eq!(code, 2);
    let (code, _, _) = run(
        &s.db,
        &[
            "import",
            file.to_str().unwrap(),
            "--accept-violations",
            "--reason",
            "  ",
        ],
    );
    assert_eq!(code, 2);
}

#[test]
fn idempotency_same_file_overlap_and_conflicts() {
    let mut s = scenario();
    let first = "U1,2026-01-05,H200,US,,1000,10,,,,\nR1,2026-01-06,H200,CN,C-CN,10,10.50,L-BIG,PO-1,,\nX1,2026-01-07,H200,CN,C-CN,1,,,,return,R1\n";
    let summary = s.import_ok(first);
    assert_eq!(summary["inserted"], 3);
    let after_first = s.digest();
    let summary = s.import_ok(first);
    assert_eq!(
        (summary["inserted"].as_u64(), summary["duplicates"].as_u64()),
        (Some(0), Some(3))
    );
    assert_eq!(s.digest(), after_first, "no new entries, no batch entry");
    // Normalised equality: case, zeros, a return's price given explicitly.
    let summary = s.import_ok(
        "U1,2026-01-05,h200,us,,0001000,10.0000,,,SALE,\nX1,2026-01-07,H200,CN,C-CN,1,10.5,L-BIG,,return,R1\n",
    );
    assert_eq!(summary["duplicates"], 2);
    // Overlap: one old row, one new.
    let summary =
        s.import_ok("U1,2026-01-05,H200,US,,1000,10,,,,\nU2,2026-01-08,H200,US,,5,10,,,,\n");
    assert_eq!(
        (summary["inserted"].as_u64(), summary["duplicates"].as_u64()),
        (Some(1), Some(1))
    );
    // Conflicts: recorded id with other content; an id twice in one file.
    let before = s.digest();
    let (code, summary, stderr) = s.import(
        "U1,2026-01-05,H200,US,,999,10,,,,\nN1,2026-01-09,H200,US,,1,10,,,,\nN1,2026-01-09,H200,US,,2,10,,,,\nN2,2026-01-09,H200,US,,1,10,,,,\nN2,2026-01-09,H200,US,,1,10,,,,\n",
        &[],
    );
    assert_eq!(code, 2, "{stderr}");
    assert_eq!(
        errors(&summary),
        vec![(2, "record_id".into(), None), (4, "record_id".into(), None)]
    );
    assert_eq!(
        summary["duplicates"], 1,
        "N2 twice is a duplicate within the file"
    );
    assert!(stderr.contains("conflicts with line 3"), "{stderr}");
    assert_eq!(s.digest(), before);
}

#[test]
fn malformed_rows_are_all_listed_and_outrank_refusals() {
    let mut s = scenario();
    let before = s.digest();
    let (code, summary, stderr) = s.import(
        "M1,2026-02-30,H200,US,,1,10,,,,\n\
         M2,2026-01-05,H200,USA,,0,10,,,,\n\
         M3,2026-01-05,H200,US,,1,-10,,,,\n\
         M4,2026-01-05,H200,US,,1,10.12345,,,,\n\
         M5,2026-07-01,H200,US,,1,10,,,,\n\
         M6,2026-01-05,H200,US,,1,10,,,,R1\n\
         M7,2026-01-05,H200,US,,1,10,,,return,\n\
         M8,2026-01-05,H200,US,,1,,,,,\n\
         M9,2026-01-05,H200,US,,1,10,,,refund,\n\
         R1,2026-01-05,H200,CN,C-CN,1,10,L-BIG,,,\n\
         M10,2026-01-05,H200,US,,1\n",
        &[],
    );
    assert_eq!(
        code, 2,
        "malformed rows make it exit 2 even with refusals: {stderr}"
    );
    assert_eq!(
        errors(&summary),
        vec![
            (2, "sale_date".into(), None),
            (3, "market".into(), None),
            (3, "units".into(), None),
            (4, "unit_price_usd".into(), None),
            (5, "unit_price_usd".into(), None),
            (6, "sale_date".into(), None),
            (7, "reverses".into(), None),
            (8, "reverses".into(), None),
            (9, "unit_price_usd".into(), None),
            (10, "kind".into(), None),
            refusal(11, "units", "cap"),
            (12, "row".into(), None),
        ]
    );
    assert_eq!(summary["rows"], 11);
    assert_eq!(summary["rejected"], 11);
    assert!(
        stderr.contains("after the as-of date 2026-06-30"),
        "{stderr}"
    );
    assert_eq!(s.digest(), before);
}

#[test]
fn closed_periods_refuse_rows_but_duplicates_stay_no_ops() {
    let mut s = scenario();
    let rows = "U1,2025-12-30,H200,US,,10,10,,,,\n";
    s.import_ok(rows);
    let (code, _, stderr) = run(&s.db, &["close", "--period", "2025-Q4"]);
    assert_eq!(code, 0, "{stderr}");
    let summary = s.import_ok(rows);
    assert_eq!(summary["duplicates"], 1);
    let (code, summary, stderr) = s.import(
        "U2,2025-12-31,H200,US,,1,10,,,,\nR1,2025-12-31,H200,CN,C-CN,1,10,L-BIG,,,\nX1,2025-12-31,H200,US,,1,,,,return,U1\n",
        &["--accept-violations", "--reason", "late"],
    );
    assert_eq!(code, 1, "{stderr}");
    let closed: Vec<_> = errors(&summary)
        .into_iter()
        .filter(|e| e.2.as_deref() == Some("closed"))
        .collect();
    assert_eq!(
        closed.iter().map(|e| e.0).collect::<Vec<_>>(),
        vec![2, 3, 4]
    );
    assert!(stderr.contains("period 2025-Q4 is closed"), "{stderr}");
    s.import_ok("U3,2026-01-01,H200,US,,1,10,,,,\n");
}

#[test]
fn dry_run_answers_as_the_real_run_and_writes_nothing() {
    let mut s = scenario();
    let before = s.digest();
    let rows = "U1,2026-01-05,H200,US,,1000,10,,,,\nR1,2026-01-06,H200,CN,C-CN,600,10,L-BIG,,,\n";
    let (code, dry, _) = s.import(rows, &["--dry-run"]);
    assert_eq!(code, 1);
    assert_eq!(s.digest(), before);
    let (code, real, _) = s.import(rows, &[]);
    assert_eq!(code, 1);
    assert_eq!(errors(&dry), errors(&real));
    let (code, dry, _) = s.import("U1,2026-01-05,H200,US,,1000,10,,,,\n", &["--dry-run"]);
    assert_eq!((code, dry["inserted"].as_u64()), (0, Some(1)));
    assert_eq!(s.digest(), before);
}

#[test]
fn the_import_batch_entry_names_the_file_its_hash_and_its_entries() {
    let mut s = scenario();
    let before: i64 = s.digest().split(':').next().unwrap().parse().unwrap();
    let summary =
        s.import_ok("U1,2026-01-05,H200,US,,10,10,,,,\nU2,2026-01-05,H200,US,,10,10,,,,\n");
    let conn = rusqlite::Connection::open(&s.db).unwrap();
    let (kind, name, sha, rows, from, to): (String, String, String, i64, i64, i64) = conn
        .query_row(
            "SELECT file_kind, file_name, file_sha256, row_count, entries_from, entries_to FROM import_batch ORDER BY seq DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)),
        )
        .unwrap();
    assert_eq!(kind, "sales");
    assert_eq!(name, summary["file"].as_str().unwrap());
    assert_eq!(sha, summary["sha256"].as_str().unwrap());
    assert_eq!((rows, from, to), (2, before + 1, before + 2));
    let file_bytes = std::fs::read(&name).unwrap();
    use sha2::Digest;
    assert_eq!(sha, hex::encode(sha2::Sha256::digest(&file_bytes)));
}

#[test]
fn usage_errors_are_exit_2() {
    let mut s = scenario();
    let file = s.file(SALES);
    let f = file.to_str().unwrap();
    for args in [
        vec!["import", f, "--partial"],
        vec!["import", f, "--rejects", "x.csv"],
        vec!["import", f, "--reason", "x"],
        vec!["import", f, "--partial", "--rejects", f],
    ] {
        let (code, _, stderr) = run(&s.db, &args);
        assert_eq!(code, 2, "{args:?}: {stderr}");
    }
}
