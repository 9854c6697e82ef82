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
        let (code, _, stderr) = run(&db, &[command, "import", file.to_str().unwrap()]);
        assert_eq!(code, 0, "{stderr}");
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
    use quotaledger::ledger::Ledger;
    use quotaledger::period::parse_date;
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
fn desk_writes_stay_in_the_wal_until_the_next_write_which_starts_it_over() {
    let (dir, db) = desk();
    assert!(
        !wal_of(&db).exists(),
        "init and imports leave the ledger file complete"
    );
    let (code, _) = reserve(&db, "2026-06-01", "PO-0", "1", &[]);
    assert_eq!(code, 0);
    let one_hold_bytes = wal_of(&db)
        .metadata()
        .expect("the hold is in the WAL")
        .len();
    assert!(one_hold_bytes > 0);
    assert_eq!(check(&db, "2026-06-01", "1")["reserved_units"], 1);
    // Each write copies the one before into the ledger file and starts
    // the WAL over: it does not grow with every hold.
    let wal_bytes_after = |what: &str| {
        let wal_bytes = wal_of(&db).metadata().unwrap().len();
        assert!(
            wal_bytes < 2 * one_hold_bytes,
            "WAL of {wal_bytes} bytes after {what}, {one_hold_bytes} after one hold"
        );
    };
    for index in 1..=12 {
        let order = format!("PO-{index}");
        let (code, _) = reserve(&db, "2026-06-01", &order, "1", &[]);
        assert_eq!(code, 0);
        wal_bytes_after(&format!("{} holds", index + 1));
    }
    let (code, _) = at(&db, "2026-06-01", &["release", "--order", "PO-3"]);
    assert_eq!(code, 0);
    wal_bytes_after("a release");
    assert_eq!(check(&db, "2026-06-01", "1")["reserved_units"], 12);
    assert!(wal_of(&db).exists(), "check leaves the WAL as it is");
    // Another command closing the ledger last copies the WAL into the file
    // and removes it, as SQLite does by default.
    let (code, _, stderr) = run(&db, &["verify"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(!wal_of(&db).exists());
    // So does any other write: then a copy of the file alone has every entry.
    let (code, _) = reserve(&db, "2026-06-01", "PO-13", "1", &[]);
    assert_eq!(code, 0);
    assert!(wal_of(&db).exists());
    let digest_before = digest(&db);
    let (code, _) = reserve(&db, "2026-06-01", "PO-14", "1", &[]);
    assert_eq!(code, 0);
    import(&dir, &db, "2026-06-01", "U2,2026-04-03,H200,US,,2,10,,,,\n");
    assert!(!wal_of(&db).exists());
    let copy = dir.path().join("copy.sqlite");
    std::fs::copy(&db, &copy).unwrap();
    assert_eq!(digest(&copy), digest(&db));
    assert_ne!(digest(&copy), digest_before);
    assert_eq!(check(&copy, "2026-06-01", "1")["reserved_units"], 14);
}

#[test]
fn a_large_wal_left_behind_is_removed_by_the_desk_process_that_closes_last() {
    let (dir, db) = desk();
    // A reader that, like the order desk, never checkpoints on close keeps
    // the ledger open while a nightly import commits: the import cannot
    // remove its WAL, and the reader leaves it behind.
    let reader = rusqlite::Connection::open(&db).unwrap();
    reader
        .set_db_config(
            rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
            true,
        )
        .unwrap();
    let _: i64 = reader
        .query_row("SELECT count(*) FROM sale", [], |row| row.get(0))
        .unwrap();
    let rows: String = (0..12_000)
        .map(|index| format!("N{index},2026-04-05,H200,US,,1,10,,,,\n"))
        .collect();
    let (code, answer) = import(&dir, &db, "2026-06-01", &rows);
    assert_eq!(code, 0, "{answer}");
    drop(reader);
    let left_bytes = wal_of(&db).metadata().expect("WAL left behind").len();
    assert!(
        left_bytes > quotaledger::ledger::DESK_WAL_BYTES_MAX,
        "the setup leaves a large WAL ({left_bytes} bytes)"
    );
    // The next desk process reads it (the US units count) and, closing
    // last, copies it into the file and removes it.
    let answer = check(&db, "2026-06-01", "1");
    assert_eq!(answer["us_units"], 12_200);
    assert!(!wal_of(&db).exists());
    let (code, _, stderr) = run(&db, &["verify"]);
    assert_eq!(code, 0, "{stderr}");
}

#[test]
fn writers_wait_their_turn_in_the_queue_and_give_up_at_the_busy_timeout() {
    let (_dir, db) = desk();
    // Another writer holds its turn (as an import would for seconds).
    let holder = quotaledger::queue::wait_turn(&db, std::time::Duration::from_secs(5)).unwrap();
    assert!(quotaledger::queue::queue_path(&db).exists());
    let before = digest(&db);
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
    assert_eq!(
        output.status.code(),
        Some(4),
        "locked past the timeout is exit 4"
    );
    assert!(started.elapsed() >= std::time::Duration::from_millis(300));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("busy timeout"), "{stderr}");
    assert_eq!(digest(&db), before, "nothing written");
    // A writer that comes while the turn is held goes as soon as it ends.
    let waiting = reserve_one()
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert_eq!(digest(&db), before, "still waiting for its turn");
    drop(holder);
    let status = wait_with_timeout(waiting, std::time::Duration::from_secs(10));
    assert_eq!(status, Some(0));
    assert_ne!(digest(&db), before);
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
