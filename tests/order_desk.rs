//! The order desk (SPEC §3.6, §5): check, reserve, release, holds drawn
//! down by imports, and the cap holding under real concurrent processes.

mod common;

use common::*;
use serde_json::Value as Json;
use std::path::{Path, PathBuf};
use tempfile::TempDir;

const SALES: &str = "record_id,sale_date,chip,market,customer_id,units,unit_price_usd,lot_id,order_ref,kind,reverses\n";

/// H200 capped at 0.5 per quarter (lab and approval required); C-CN and
/// C-REV (revoked 2026-05-20) approved; lots L1 and L2 of 100 units; 200 US
/// units in 2026-Q2, so the Q2 limit is 100.
fn desk() -> (TempDir, PathBuf) {
    let (dir, db) = new_ledger();
    for (command, text) in [
        ("policy", "chip,effective_from,restricted_allowed,cap_ratio,cap_window,remittance_rate,lab_test_required,customer_approval_required,source\nH200,2026-01-01,true,0.5,period,0.25,true,true,t\nH20,2026-01-01,true,,,0.15,false,false,t\n"),
        ("customers", "customer_id,name,country,status,effective_date,reference\nC-CN,CN Co,CN,approved,2026-01-01,\nC-REV,Rev Co,CN,approved,2026-01-01,\nC-REV,Rev Co,CN,revoked,2026-05-20,\n"),
        ("lots", "lot_id,chip,units,lab,certificate_id,result,effective_date\nL1,H200,100,Lab,C1,pass,2026-01-01\nL2,H200,100,Lab,C2,pass,2026-01-01\nL-BIG,H200,1000000,Lab,C3,pass,2026-01-01\n"),
    ] {
        let file = write_file(dir.path(), &format!("{command}.csv"), text);
        let args = [command, "import", file.to_str().unwrap()];
        run_ok(qledger_at(&db, SETUP_AS_OF, &args), command);
    }
    import(
        &dir,
        &db,
        "2026-05-01",
        "U1,2026-04-02,H200,US,,200,10,,,,\n",
    );
    (dir, db)
}

fn at(db: &Path, as_of: &str, args: &[&str]) -> (i32, Json) {
    let output = std::process::Command::new(assert_cmd::cargo::cargo_bin("qledger"))
        .arg("--db")
        .arg(db)
        .arg("--as-of")
        .arg(as_of)
        .arg("--json")
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    let json = serde_json::from_str(&stdout).unwrap_or(Json::Null);
    (output.status.code().unwrap(), json)
}

fn import(dir: &TempDir, db: &Path, as_of: &str, rows: &str) -> (i32, Json) {
    let name = format!(
        "s{}.csv",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let file = write_file(dir.path(), &name, &format!("{SALES}{rows}"));
    at(db, as_of, &["import", file.to_str().unwrap()])
}

fn reserve(db: &Path, as_of: &str, order: &str, units: &str, extra: &[&str]) -> (i32, Json) {
    // `--lot X` in `extra` replaces the default lot.
    let lot = extra
        .windows(2)
        .find(|w| w[0] == "--lot")
        .map_or("L-BIG", |w| w[1]);
    let mut args = vec![
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
        "2026-06-10",
        "--customer",
        "C-CN",
        "--lot",
        lot,
    ];
    let mut rest = extra.iter();
    while let Some(arg) = rest.next() {
        if *arg == "--lot" {
            rest.next();
        } else {
            args.push(arg);
        }
    }
    at(db, as_of, &args)
}

/// `reserve` of 1 unit of H200 to CN for `order` on 2026-06-10 (C-CN, `lot`).
fn reserve_args<'a>(order: &'a str, lot: &'a str) -> [&'a str; 15] {
    [
        "reserve",
        "--order",
        order,
        "--chip",
        "H200",
        "--market",
        "CN",
        "--units",
        "1",
        "--date",
        "2026-06-10",
        "--customer",
        "C-CN",
        "--lot",
        lot,
    ]
}

fn check(db: &Path, as_of: &str, units: &str) -> Json {
    at(
        db,
        as_of,
        &[
            "check",
            "--chip",
            "H200",
            "--market",
            "CN",
            "--units",
            units,
            "--date",
            "2026-06-10",
            "--customer",
            "C-CN",
            "--lot",
            "L-BIG",
        ],
    )
    .1
}

fn rules_of(answer: &Json) -> Vec<String> {
    answer["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["rule"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn check_answers_with_the_figures_before_the_request() {
    let (_dir, db) = desk();
    let answer = check(&db, "2026-06-01", "100");
    assert_eq!(
        answer,
        serde_json::json!({"allowed": true, "chip": "H200", "market": "CN", "period": "2026-Q2", "units": 100,
            "us_units": 200, "restricted_units": 0, "reserved_units": 0, "cap_ratio": "0.5",
            "limit": 100, "headroom": 100, "reasons": []})
    );
    let (code, answer) = at(
        &db,
        "2026-06-01",
        &[
            "check",
            "--chip",
            "H200",
            "--market",
            "CN",
            "--units",
            "101",
            "--date",
            "2026-06-10",
            "--customer",
            "C-REV",
        ],
    );
    assert_eq!(code, 1);
    assert_eq!(
        rules_of(&answer),
        vec!["customer", "lot", "cap"],
        "every failed rule, C-REV revoked by 2026-06-10"
    );
    // US and other markets: always allowed, figures reported; H20 uncapped: nulls.
    let (code, answer) = at(
        &db,
        "2026-06-01",
        &[
            "check",
            "--chip",
            "H20",
            "--market",
            "de",
            "--units",
            "5",
            "--date",
            "2026-06-10",
        ],
    );
    assert_eq!(code, 0);
    assert_eq!(
        (
            answer["cap_ratio"].clone(),
            answer["limit"].clone(),
            answer["headroom"].clone()
        ),
        (Json::Null, Json::Null, Json::Null)
    );
    assert_eq!(answer["market"], "DE");
    let before = digest(&db);
    assert_eq!(digest(&db), before, "check never writes");
    for bad in [
        ["--units", "0"],
        ["--date", "2026-02-30"],
        ["--market", "CHN"],
        ["--chip", "-x"],
    ] {
        let mut args = vec![
            "check",
            "--chip",
            "H200",
            "--market",
            "CN",
            "--units",
            "1",
            "--date",
            "2026-06-10",
        ];
        let position = args.iter().position(|a| *a == bad[0]).unwrap();
        args[position + 1] = bad[1];
        assert_eq!(at(&db, "2026-06-01", &args).0, 2, "{bad:?}");
    }
}

#[test]
fn reserve_holds_headroom_and_lot_units_one_active_hold_per_order() {
    let (dir, db) = desk();
    let (code, answer) = reserve(&db, "2026-06-01", "PO-1", "60", &["--lot", "L1"]);
    assert_eq!(code, 0, "{answer}");
    assert_eq!(answer["order_ref"], "PO-1");
    assert_eq!(answer["expires_on"], "2026-06-15", "as-of + 14 days");
    assert_eq!(answer["headroom"], 100, "figures before the request");
    assert_eq!(check(&db, "2026-06-01", "1")["reserved_units"], 60);
    // Same order again: rule order.
    let (code, answer) = reserve(&db, "2026-06-01", "PO-1", "1", &[]);
    assert_eq!((code, rules_of(&answer)), (1, vec!["order".to_string()]));
    // The hold counts against the cap and the lot.
    let (code, answer) = reserve(&db, "2026-06-01", "PO-2", "41", &[]);
    assert_eq!((code, rules_of(&answer)), (1, vec!["cap".to_string()]));
    let (code, answer) = import(
        &dir,
        &db,
        "2026-06-01",
        "R1,2026-06-01,H200,CN,C-CN,41,10,L1,,,\n",
    );
    assert_eq!(code, 1, "lot L1: 60 held + 41 > 100: {answer}");
    assert_eq!(answer["errors"][0]["rule"], "lot");
    // Bad input.
    assert_eq!(
        reserve(&db, "2026-06-01", "PO-3", "1", &["--ttl-days", "0"]).0,
        2
    );
    assert_eq!(
        at(
            &db,
            "2026-06-11",
            &[
                "reserve",
                "--order",
                "PO-3",
                "--chip",
                "H200",
                "--market",
                "CN",
                "--units",
                "1",
                "--date",
                "2026-06-10",
                "--customer",
                "C-CN",
                "--lot",
                "L-BIG"
            ]
        )
        .0,
        2,
        "planned date before as-of"
    );
    assert_eq!(
        at(
            &db,
            "2026-06-01",
            &[
                "reserve",
                "--order",
                "PO-3",
                "--chip",
                "H200",
                "--market",
                "US",
                "--units",
                "1",
                "--date",
                "2026-06-10"
            ]
        )
        .0,
        2
    );
}

#[test]
fn expiry_release_and_reserving_again() {
    let (_dir, db) = desk();
    let (code, _) = reserve(&db, "2026-06-01", "PO-1", "100", &["--ttl-days", "5"]);
    assert_eq!(code, 0);
    // Active the day before expires_on, gone on it.
    assert_eq!(check(&db, "2026-06-05", "1")["reserved_units"], 100);
    assert!(!check(&db, "2026-06-05", "1")["allowed"].as_bool().unwrap());
    assert_eq!(check(&db, "2026-06-06", "1")["reserved_units"], 0);
    let (code, _) = reserve(&db, "2026-06-06", "PO-1", "30", &[]);
    assert_eq!(code, 0, "re-reserve after expiry");
    let (code, released) = at(&db, "2026-06-06", &["release", "--order", "PO-1"]);
    assert_eq!(
        (code, released),
        (
            0,
            serde_json::json!({"order_ref": "PO-1", "released_units": 30, "already_ended": false})
        )
    );
    let before = digest(&db);
    let (code, released) = at(&db, "2026-06-06", &["release", "--order", "PO-1"]);
    assert_eq!((code, released["already_ended"].as_bool()), (0, Some(true)));
    assert_eq!(
        digest(&db),
        before,
        "releasing an ended hold changes nothing"
    );
    assert_eq!(at(&db, "2026-06-06", &["release", "--order", "NEVER"]).0, 2);
    let (code, _) = reserve(&db, "2026-06-06", "PO-1", "100", &[]);
    assert_eq!(code, 0, "re-reserve after release");
    // The held-units totals follow every reserve and release.
    let (code, _, stderr) = run(&db, &["verify"]);
    assert_eq!(code, 0, "{stderr}");
}

fn held(db: &Path, as_of: &str) -> i64 {
    check(db, as_of, "1")["reserved_units"].as_i64().unwrap()
}

fn drawn(db: &Path, record_id: &str) -> (Option<i64>, Option<i64>) {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.query_row(
        "SELECT hold_seq, drawn_units FROM sale WHERE record_id = ?1",
        [record_id],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .unwrap()
}

#[test]
fn imports_draw_holds_down_partially_beyond_and_not_across_periods_or_lots() {
    let (dir, db) = desk();
    import(
        &dir,
        &db,
        "2026-06-01",
        "U2,2026-06-01,H200,US,,200,10,,,,\nU3,2026-07-01,H200,US,,200,10,,,,\n"
            .replace("U3,2026-07-01", "U3,2026-06-01")
            .as_str(),
    );
    // Q2 limit now 200. Hold 100 on lot L1 for PO-1.
    let (code, _) = reserve(
        &db,
        "2026-06-01",
        "PO-1",
        "100",
        &["--lot", "L1", "--ttl-days", "60"],
    );
    assert_eq!(code, 0);
    let (code, summary) = import(
        &dir,
        &db,
        "2026-06-12",
        "S1,2026-06-11,H200,CN,C-CN,40,10,L1,PO-1,,\n",
    );
    assert_eq!(code, 0, "{summary}");
    assert_eq!(drawn(&db, "S1").1, Some(40));
    import(
        &dir,
        &db,
        "2026-06-13",
        "S2,2026-06-12,H200,CN,C-CN,40,10,L1,PO-1,,\n",
    );
    assert_eq!(drawn(&db, "S2").1, Some(40));
    assert_eq!(held(&db, "2026-06-13"), 20, "two partial drawdowns");
    // Another lot or another period does not draw.
    import(
        &dir,
        &db,
        "2026-06-13",
        "S3,2026-06-12,H200,CN,C-CN,5,10,L2,PO-1,,\n",
    );
    assert_eq!(drawn(&db, "S3"), (None, None));
    assert_eq!(held(&db, "2026-06-13"), 20);
    // Beyond the hold: 20 drawn, 30 checked as unreserved. Lot L1 has 100
    // - 80 shipped - 20 held = 0 free: the 30 beyond do not fit the lot.
    let (code, summary) = import(
        &dir,
        &db,
        "2026-06-13",
        "S4,2026-06-13,H200,CN,C-CN,50,10,L1,PO-1,,\n",
    );
    assert_eq!(code, 1, "{summary}");
    assert_eq!(summary["errors"][0]["rule"], "lot");
    let (code, summary) = import(
        &dir,
        &db,
        "2026-06-13",
        "S4,2026-06-13,H200,CN,C-CN,20,10,L1,PO-1,,\n",
    );
    assert_eq!(code, 0, "exactly the rest of the hold: {summary}");
    assert_eq!(held(&db, "2026-06-13"), 0, "fully drawn: no longer active");
    let (code, _) = at(
        &db,
        "2026-06-13",
        &[
            "reserve",
            "--order",
            "PO-1",
            "--chip",
            "H200",
            "--market",
            "CN",
            "--units",
            "1",
            "--date",
            "2026-06-20",
            "--customer",
            "C-CN",
            "--lot",
            "L-BIG",
        ],
    );
    assert_eq!(code, 0, "a fully drawn order may be reserved again");
    let (code, released) = at(&db, "2026-06-13", &["release", "--order", "PO-1"]);
    assert_eq!((code, released["released_units"].as_i64()), (0, Some(1)));
    // A hold in Q2 is not drawn by a Q3 sale.
    let (code, _) = at(
        &db,
        "2026-06-13",
        &[
            "reserve",
            "--order",
            "PO-9",
            "--chip",
            "H200",
            "--market",
            "CN",
            "--units",
            "10",
            "--date",
            "2026-06-20",
            "--customer",
            "C-CN",
            "--lot",
            "L-BIG",
            "--ttl-days",
            "60",
        ],
    );
    assert_eq!(code, 0);
    import(
        &dir,
        &db,
        "2026-07-02",
        "U9,2026-07-01,H200,US,,100,10,,,,\nS9,2026-07-02,H200,CN,C-CN,5,10,L-BIG,PO-9,,\n",
    );
    assert_eq!(drawn(&db, "S9"), (None, None));
    let (code, _, stderr) = run(&db, &["verify"]);
    assert_eq!(code, 0, "{stderr}");
}

#[test]
fn a_drawdown_beyond_the_hold_is_checked_against_the_cap() {
    let (dir, db) = desk();
    // Limit 100: hold 60 for PO-1; then a sale of 90 on PO-1 draws 60 and
    // the 30 beyond need 30 of the 40 unreserved: fine; 41 beyond are not.
    reserve(&db, "2026-06-01", "PO-1", "60", &["--ttl-days", "60"]);
    let (code, summary) = import(
        &dir,
        &db,
        "2026-06-02",
        "S1,2026-06-02,H200,CN,C-CN,101,10,L-BIG,PO-1,,\n",
    );
    assert_eq!(
        (code, summary["errors"][0]["rule"].as_str()),
        (1, Some("cap"))
    );
    let (code, summary) = import(
        &dir,
        &db,
        "2026-06-02",
        "S1,2026-06-02,H200,CN,C-CN,100,10,L-BIG,PO-1,,\n",
    );
    assert_eq!(code, 0, "{summary}");
    assert_eq!(drawn(&db, "S1").1, Some(60));
}

#[test]
fn a_revoked_customer_refuses_a_sale_that_had_a_hold() {
    let (dir, db) = desk();
    let (code, _) = at(
        &db,
        "2026-05-10",
        &[
            "reserve",
            "--order",
            "PO-R",
            "--chip",
            "H200",
            "--market",
            "CN",
            "--units",
            "10",
            "--date",
            "2026-05-15",
            "--customer",
            "C-REV",
            "--lot",
            "L-BIG",
            "--ttl-days",
            "30",
        ],
    );
    assert_eq!(code, 0);
    let (code, summary) = import(
        &dir,
        &db,
        "2026-05-25",
        "S1,2026-05-21,H200,CN,C-REV,10,10,L-BIG,PO-R,,\n",
    );
    assert_eq!(
        (code, summary["errors"][0]["rule"].as_str()),
        (1, Some("customer"))
    );
}

#[test]
fn concurrent_reservers_and_an_import_never_take_more_than_the_headroom() {
    let (dir, db) = desk();
    // Headroom in 2026-Q2: limit 100, nothing shipped or held.
    let headroom = check(&db, "2026-06-01", "1")["headroom"].as_i64().unwrap();
    assert_eq!(headroom, 100);
    // A concurrent import of US rows of another chip (it takes the write
    // lock many times over, but leaves H200's headroom as it is).
    let mut rows = String::from(SALES);
    for index in 0..3000 {
        rows.push_str(&format!(
            "H20-{index},2026-05-{:02},H20,US,,1,10,,,,\n",
            index % 28 + 1
        ));
    }
    let us_file = write_file(dir.path(), "us.csv", &rows);
    let importer = {
        let db = db.clone();
        std::thread::spawn(move || {
            let mut exits = Vec::new();
            for _ in 0..3 {
                exits.push(at(&db, "2026-06-01", &["import", us_file.to_str().unwrap()]).0);
            }
            exits
        })
    };
    let reservers: Vec<_> = (0..8)
        .map(|process| {
            let db = db.clone();
            std::thread::spawn(move || {
                let mut exits = Vec::new();
                for attempt in 0.. {
                    let order = format!("P{process}-{attempt}");
                    let (code, _) = reserve(&db, "2026-06-01", &order, "1", &[]);
                    exits.push(code);
                    if code != 0 {
                        break;
                    }
                }
                exits
            })
        })
        .collect();
    let mut granted = 0;
    for reserver in reservers {
        let exits = reserver.join().unwrap();
        assert!(
            exits.iter().all(|code| *code == 0 || *code == 1),
            "only exit 0/1: {exits:?}"
        );
        assert_eq!(*exits.last().unwrap(), 1, "each loop ends refused");
        granted += exits.iter().filter(|code| **code == 0).count() as i64;
    }
    let import_exits = importer.join().unwrap();
    assert_eq!(
        import_exits,
        vec![0, 0, 0],
        "the import never saw the lock past its timeout"
    );
    assert_eq!(
        granted, headroom,
        "exactly the headroom that existed was granted"
    );
    let after = check(&db, "2026-06-01", "1");
    assert_eq!(after["reserved_units"], headroom);
    assert_eq!(after["headroom"], 0);
    let (code, _, stderr) = run(&db, &["verify"]);
    assert_eq!(code, 0, "{stderr}");
}

#[test]
fn a_long_lived_desk_sees_every_commit_by_other_processes() {
    use quotaledger::desk::{Desk, Request};
    use quotaledger::period::parse_date;
    use quotaledger::store::ledger::Ledger;
    let (dir, db) = desk();
    let mut desk = Desk::new(Ledger::open(&db).unwrap());
    let request = Request {
        chip: "H200".into(),
        market: "CN".into(),
        units: 10,
        date: parse_date("2026-06-10").unwrap(),
        customer_id: Some("C-CN".into()),
        lot_id: Some("L-BIG".into()),
    };
    let as_of = parse_date("2026-06-01").unwrap();
    let first = desk.check(&request, as_of).unwrap();
    assert_eq!(
        desk.check(&request, as_of).unwrap(),
        first,
        "cached answer, same figures"
    );
    // Another process reserves: the next check must see the hold.
    let (code, _) = reserve(&db, "2026-06-01", "PO-X", "30", &[]);
    assert_eq!(code, 0);
    let after_reserve = desk.check(&request, as_of).unwrap();
    assert_eq!(after_reserve.figures.units.held, 30);
    assert_eq!(
        after_reserve.figures.headroom(),
        first.figures.headroom().map(|h| h - 30)
    );
    // Another process imports US units: the limit moves.
    import(
        &dir,
        &db,
        "2026-06-02",
        "U9,2026-06-02,H200,US,,100,10,,,,\n",
    );
    assert_eq!(
        desk.check(&request, as_of).unwrap().figures.limit,
        Some(150)
    );
    // Another clock: the hold expires on 2026-06-15.
    let later = desk
        .check(&request, parse_date("2026-06-15").unwrap())
        .unwrap();
    assert_eq!(later.figures.units.held, 0);
}

#[test]
fn after_50_reserves_and_releases_the_ledger_file_alone_holds_every_hold() {
    let (dir, db) = desk();
    for index in 0..25 {
        let order = format!("PO-{index}");
        let (code, answer) = reserve(&db, "2026-06-01", &order, "2", &[]);
        assert_eq!(code, 0, "{answer}");
        assert!(!wal_of(&db).exists(), "reserve leaves the file complete");
        if index % 2 == 0 {
            let (code, answer) = at(&db, "2026-06-01", &["release", "--order", &order]);
            assert_eq!(code, 0, "{answer}");
            assert!(!wal_of(&db).exists(), "release leaves the file complete");
        } else {
            let (code, answer) = reserve(&db, "2026-06-01", &format!("PO-B{index}"), "1", &[]);
            assert_eq!(code, 0, "{answer}");
        }
    }
    // 13 holds released, 12 kept with 2 units, 12 more with 1 unit.
    let expected_held = 12 * 2 + 12;
    assert_eq!(
        check(&db, "2026-06-01", "1")["reserved_units"],
        expected_held
    );
    // A plain copy of the file, without -wal or -shm, is the whole ledger.
    let copy_dir = tempfile::tempdir().unwrap();
    let copy = copy_dir.path().join("copy.sqlite");
    std::fs::copy(&db, &copy).unwrap();
    assert_eq!(digest(&copy), digest(&db));
    let (code, _, stderr) = run(&copy, &["verify"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        check(&copy, "2026-06-01", "1")["reserved_units"],
        expected_held
    );
    let holds: i64 = rusqlite::Connection::open(&copy)
        .unwrap()
        .query_row("SELECT count(*) FROM hold", [], |row| row.get(0))
        .unwrap();
    assert_eq!(holds, 37);
    drop(dir);
}

#[test]
fn an_io_error_on_a_desk_command_is_exit_4_naming_the_ledger() {
    let (_dir, db) = desk();
    let before = digest(&db);
    // The ledger on a full filesystem: no file may grow (RLIMIT_FSIZE of 0,
    // SIGXFSZ ignored, so a write fails with EFBIG instead of a signal).
    let reserve_args = [
        "reserve",
        "--order",
        "PO-IO",
        "--chip",
        "H200",
        "--market",
        "CN",
        "--units",
        "1",
        "--date",
        "2026-06-10",
        "--customer",
        "C-CN",
        "--lot",
        "L-BIG",
    ];
    for args in [&reserve_args[..], &["release", "--order", "PO-IO"][..]] {
        let output = std::process::Command::new("bash")
            .arg("-c")
            .arg("trap '' XFSZ; ulimit -f 0; exec \"$@\"")
            .arg("qledger-under-ulimit")
            .arg(assert_cmd::cargo::cargo_bin("qledger"))
            .arg("--db")
            .arg(&db)
            .arg("--as-of")
            .arg("2026-06-01")
            .args(args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(4), "{args:?}: {stderr}");
        assert!(stderr.contains(&db.display().to_string()), "{stderr}");
        assert!(stderr.contains("I/O error"), "{stderr}");
    }
    assert_eq!(digest(&db), before, "nothing written");
    let (code, _, stderr) = run(&db, &["verify"]);
    assert_eq!(code, 0, "{stderr}");
}

#[test]
fn a_writer_waits_for_the_write_lock_and_gives_up_at_the_busy_timeout() {
    let (_dir, db) = desk();
    // Another writer holds SQLite's write lock (as an import would for seconds).
    let holder = rusqlite::Connection::open(&db).unwrap();
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();
    let reserve_one = || {
        qledger_at(
            &db,
            "2026-05-01",
            &[
                "reserve",
                "--order",
                "PO-Q",
                "--chip",
                "H200",
                "--market",
                "CN",
                "--units",
                "1",
                "--date",
                "2026-05-02",
                "--customer",
                "C-CN",
                "--lot",
                "L1",
            ],
        )
    };
    let started = std::time::Instant::now();
    let output = reserve_one()
        .env("QLEDGER_BUSY_TIMEOUT_MS", "300")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(4),
        "locked past the timeout is exit 4: {stderr}"
    );
    assert!(started.elapsed() >= std::time::Duration::from_millis(300));
    assert!(stderr.contains("busy timeout"), "{stderr}");
    assert!(stderr.contains(&db.display().to_string()), "{stderr}");
    // A writer that comes while the lock is held goes as soon as it is free.
    let waiting = reserve_one()
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(200));
    holder.execute_batch("ROLLBACK").unwrap();
    drop(holder);
    let status = wait_with_timeout(waiting, std::time::Duration::from_secs(10));
    assert_eq!(status, Some(0));
    assert_eq!(
        check(&db, "2026-05-01", "1")["reserved_units"],
        1,
        "the hold went in"
    );
}

/// Waits for `child` at most `limit`; `None` (and the child killed) if it
/// did not finish.
fn wait_with_timeout(mut child: std::process::Child, limit: std::time::Duration) -> Option<i32> {
    let started = std::time::Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code();
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            return None;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

#[test]
fn a_retried_reserve_is_a_duplicate_that_appends_nothing() {
    let (dir, db) = desk();
    let (code, first) = reserve(&db, "2026-06-01", "PO-R", "5", &[]);
    assert_eq!(code, 0, "{first}");
    assert_eq!(first["already_held"], false);
    assert_eq!(first["reserved_units"], 0, "figures before the request");
    let before = digest(&db);
    // The same request again (a client that timed out and retries).
    let (code, again) = reserve(&db, "2026-06-01", "PO-R", "5", &[]);
    assert_eq!(code, 0, "{again}");
    assert_eq!(again["allowed"], true);
    assert_eq!(again["already_held"], true);
    assert_eq!(again["order_ref"], "PO-R");
    assert_eq!(again["expires_on"], first["expires_on"]);
    assert_eq!(again["reserved_units"], 5, "current figures count the hold");
    assert_eq!(again["headroom"], first["headroom"].as_i64().unwrap() - 5);
    assert_eq!(digest(&db), before, "nothing appended");
    // Anything else for the same order is refused by rule `order`.
    let (code, other) = reserve(&db, "2026-06-01", "PO-R", "6", &[]);
    assert_eq!(code, 1, "{other}");
    assert_eq!(rules_of(&other), vec!["order"]);
    assert_eq!(other["already_held"], false);
    let (code, other_lot) = reserve(&db, "2026-06-01", "PO-R", "5", &["--lot", "L1"]);
    assert_eq!(code, 1, "{other_lot}");
    // Once part of the hold is drawn, the same request is no longer a retry.
    let (code, answer) = import(
        &dir,
        &db,
        "2026-06-10",
        "R1,2026-06-10,H200,CN,C-CN,2,10,L-BIG,PO-R,,\n",
    );
    assert_eq!(code, 0, "{answer}");
    let (code, drawn) = reserve(&db, "2026-06-10", "PO-R", "5", &[]);
    assert_eq!(code, 1, "{drawn}");
    assert_eq!(rules_of(&drawn), vec!["order"]);
    // In text mode the retry says so.
    let reserve_text = || {
        qledger_at(&db, "2026-06-10", &reserve_args("PO-T", "L-BIG"))
            .output()
            .unwrap()
    };
    assert!(reserve_text().status.success());
    let output = reserve_text();
    assert!(output.status.success());
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("already held for order PO-T"), "{text}");
}

#[test]
fn a_ttl_past_year_9999_is_bad_input_never_a_wrapped_date() {
    let (_dir, db) = desk();
    let output = qledger_at(
        &db,
        "9999-12-30",
        &[
            "reserve",
            "--order",
            "PO-Y",
            "--chip",
            "H200",
            "--market",
            "CN",
            "--units",
            "1",
            "--date",
            "9999-12-30",
            "--customer",
            "C-CN",
            "--lot",
            "L-BIG",
            "--ttl-days",
            "3660",
        ],
    )
    .env("QLEDGER_TODAY", "9999-12-30")
    .output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("9999-12-31"), "{stderr}");
}

#[test]
fn check_and_reserve_of_an_unknown_chip_are_bad_input() {
    let (_dir, db) = desk();
    let before = digest(&db);
    for command in ["check", "reserve"] {
        let mut args = vec![command];
        if command == "reserve" {
            args.extend(["--order", "PO-U"]);
        }
        args.extend([
            "--chip",
            "H2OO",
            "--market",
            "CN",
            "--units",
            "1",
            "--date",
            "2026-06-10",
            "--customer",
            "C-CN",
            "--lot",
            "L1",
        ]);
        let output = qledger_at(&db, "2026-06-01", &args).output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{command}: {stderr}");
        assert!(
            stderr.contains("unknown chip H2OO (known chips: H20, H200)"),
            "{stderr}"
        );
    }
    assert_eq!(digest(&db), before);
}

#[test]
fn two_sales_of_one_order_in_one_file_draw_the_same_on_both_import_paths() {
    for careful in [false, true] {
        let (dir, db) = desk();
        let (code, answer) = reserve(&db, "2026-06-01", "PO-D", "10", &[]);
        assert_eq!(code, 0, "{answer}");
        // A malformed row sends the import down the careful path.
        let bad = if careful {
            "BAD,2026-06-10,H200,US,,0,1,,,,\n"
        } else {
            ""
        };
        let file = write_file(
            dir.path(),
            "two.csv",
            &format!(
                "{SALES}D1,2026-06-10,H200,CN,C-CN,4,10,L-BIG,PO-D,,\nD2,2026-06-10,H200,CN,C-CN,4,10,L-BIG,PO-D,,\n{bad}"
            ),
        );
        let rejects = dir.path().join("rejects.csv");
        let args = [
            "import",
            file.to_str().unwrap(),
            "--partial",
            "--rejects",
            rejects.to_str().unwrap(),
        ];
        let (code, summary) = at(&db, "2026-06-10", &args);
        assert_eq!(
            (code, summary["inserted"].as_i64()),
            (i32::from(careful), Some(2)),
            "{summary}"
        );
        assert_eq!(drawn(&db, "D1").1, Some(4), "careful: {careful}");
        assert_eq!(
            drawn(&db, "D2").1,
            Some(4),
            "careful: {careful}: 6 units were still held"
        );
        assert_eq!(
            check(&db, "2026-06-10", "1")["reserved_units"],
            2,
            "careful: {careful}"
        );
        let (code, _, stderr) = run(&db, &["verify"]);
        assert_eq!(code, 0, "{stderr}");
    }
}
