//! Everyday use (SPEC §5): inputs that end, identifiers that cannot hide a
//! character, messages for people, quiet cron runs, help and completions.

mod common;

use common::*;

const SALES: &str = "record_id,sale_date,chip,market,customer_id,units,unit_price_usd\n";

#[test]
fn a_zero_width_space_never_makes_a_new_record() {
    let (dir, db) = loaded_ledger();
    let first = write_file(
        dir.path(),
        "a.csv",
        &format!("{SALES}US-9001,2026-02-09,H200,US,,100,30000\n"),
    );
    run_ok(
        qledger_at(&db, AS_OF, &["import", first.to_str().unwrap()]),
        "import",
    );
    let before = digest(&db);
    let sneaky = write_file(
        dir.path(),
        "b.csv",
        &format!("{SALES}US-9001\u{200B},2026-02-09,H200,US,,100,30000\n"),
    );
    let (code, summary, stderr) = run_json(&db, &["import", sneaky.to_str().unwrap()]);
    assert_eq!(code, 2, "{stderr}");
    assert_eq!(summary["errors"][0]["column"], "record_id");
    assert!(stderr.contains("U+200B"), "{stderr}");
    assert_eq!(digest(&db), before);
}

#[test]
fn a_pipe_or_a_device_is_refused_not_waited_on() {
    let (dir, db) = loaded_ledger();
    let fifo = dir.path().join("sales.fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    for input in [fifo.to_str().unwrap(), "/dev/zero"] {
        let started = std::time::Instant::now();
        let (code, _, stderr) = run(&db, &["import", input]);
        assert_eq!(code, 2, "{input}: {stderr}");
        assert!(stderr.contains("not a regular file"), "{stderr}");
        assert!(started.elapsed() < std::time::Duration::from_secs(10));
        let (code, _, stderr) = run(&db, &["lots", "import", input]);
        assert_eq!(code, 2, "{input}: {stderr}");
    }
}

#[test]
fn messages_count_in_words_and_a_dry_run_says_would() {
    let (dir, db) = loaded_ledger();
    let one = write_file(
        dir.path(),
        "one.csv",
        &format!("{SALES}US-1,2026-02-09,H200,US,,100,30000\n"),
    );
    let (code, text, _) = run(&db, &["import", "--dry-run", one.to_str().unwrap()]);
    assert_eq!(code, 0);
    assert!(
        text.contains("1 row, 1 would insert, 0 duplicates, 0 rejected"),
        "{text}"
    );
    let (_, json, _) = run_json(&db, &["import", "--dry-run", one.to_str().unwrap()]);
    assert_eq!(json["dry_run"], true);
    let (code, text, _) = run(&db, &["import", one.to_str().unwrap()]);
    assert_eq!(code, 0);
    assert!(text.contains("1 row, 1 inserted, 0 duplicates"), "{text}");
    let (_, json, _) = run_json(&db, &["import", one.to_str().unwrap()]);
    assert_eq!(json.get("dry_run"), None, "only a dry run says so");
    assert_eq!(json["duplicates"], 1);
}

#[test]
fn quiet_prints_nothing_on_success_and_the_answer_when_refused() {
    let (dir, db) = loaded_ledger();
    let good = write_file(
        dir.path(),
        "good.csv",
        &format!("{SALES}US-1,2026-02-09,H200,US,,100,30000\n"),
    );
    let (code, stdout, stderr) = run(&db, &["--quiet", "import", good.to_str().unwrap()]);
    assert_eq!((code, stdout.as_str(), stderr.as_str()), (0, "", ""));
    let bad = write_file(
        dir.path(),
        "bad.csv",
        &format!("{SALES}US-2,2026-02-09,H200,US,,0,30000\n"),
    );
    let (code, stdout, stderr) = run(&db, &["--quiet", "import", bad.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(stdout.contains("1 rejected"), "{stdout}");
    assert!(stderr.contains("bad.csv:2: units"), "{stderr}");
}

#[test]
fn help_names_the_exit_codes_and_completions_are_printed_for_each_shell() {
    let output = std::process::Command::new(assert_cmd::cargo::cargo_bin("qledger"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&output.stdout);
    assert!(
        help.contains("Exit codes: 0 done") && help.contains("4 environment"),
        "{help}"
    );
    assert!(help.contains("Global options"), "{help}");
    for command in [
        "init",
        "import",
        "check",
        "reserve",
        "release",
        "report",
        "remit",
        "close",
        "verify",
        "keygen",
        "checkpoint",
        "digest",
        "holds",
        "sales",
        "payments",
        "completions",
    ] {
        let output = std::process::Command::new(assert_cmd::cargo::cargo_bin("qledger"))
            .args([command, "--help"])
            .output()
            .unwrap();
        let help = String::from_utf8_lossy(&output.stdout);
        assert!(help.contains("Example:\n  qledger"), "{command}: {help}");
    }
    for shell in ["bash", "zsh", "fish"] {
        let output = std::process::Command::new(assert_cmd::cargo::cargo_bin("qledger"))
            .args(["completions", shell])
            .output()
            .unwrap();
        assert!(output.status.success(), "{shell}");
        let script = String::from_utf8_lossy(&output.stdout);
        assert!(
            script.contains("checkpoint") && script.contains("reserve"),
            "{shell}"
        );
    }
}

#[test]
fn rejects_that_cannot_be_written_commit_nothing() {
    let (dir, db) = loaded_ledger();
    let mixed = write_file(
        dir.path(),
        "mixed.csv",
        &format!("{SALES}US-1,2026-02-09,H200,US,,100,30000\nUS-2,2026-02-09,H200,US,,0,30000\n"),
    );
    let before = digest(&db);
    let (code, _, stderr) = run(
        &db,
        &[
            "import",
            mixed.to_str().unwrap(),
            "--partial",
            "--rejects",
            "/dev/full",
        ],
    );
    assert_eq!(code, 4, "{stderr}");
    assert!(stderr.contains("nothing was imported"), "{stderr}");
    assert_eq!(
        digest(&db),
        before,
        "the good row was not committed without its rejects"
    );
    // With a writable rejects file the good row goes in and the bad one is kept.
    let rejects = dir.path().join("rejects.csv");
    let (code, _, _) = run(
        &db,
        &[
            "import",
            mixed.to_str().unwrap(),
            "--partial",
            "--rejects",
            rejects.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 1);
    assert_ne!(digest(&db), before);
    let written = std::fs::read_to_string(&rejects).unwrap();
    assert!(
        written.contains("US-2") && written.contains("units"),
        "{written}"
    );
}

/// `qledger ARGS` at 2026-02-16 on the standard ledger: (code, stdout).
fn listing(db: &std::path::Path, args: &[&str]) -> (i32, String) {
    let output = qledger_at(db, "2026-02-16", args).output().unwrap();
    (
        output.status.code().unwrap(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

#[test]
fn holds_and_payments_are_listed_in_three_formats() {
    let (_dir, db) = loaded_ledger();
    append_every_other_kind(&db);
    reserve_active_hold(&db, "PO-9", "4");
    let (code, json) = listing(&db, &["--json", "holds"]);
    assert_eq!(code, 0);
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"holds": [
            {"order_ref": "PO-2", "chip": "H200", "market": "CN", "customer_id": "C-BETA",
             "lot_id": "L-H200-0002", "units": 5, "planned_date": "2026-02-20",
             "reserved_on": "2026-02-15", "expires_on": "2026-03-01", "active": false,
             "held_units": 0, "drawn_units": 0, "released_units": 5},
            {"order_ref": "PO-9", "chip": "H200", "market": "CN", "customer_id": "C-BETA",
             "lot_id": "L-H200-0002", "units": 4, "planned_date": "2026-02-20",
             "reserved_on": "2026-02-16", "expires_on": "2026-03-02", "active": true,
             "held_units": 4, "drawn_units": 0, "released_units": 0}
        ]})
    );
    let (_, active) = listing(&db, &["holds", "--active", "--format", "csv"]);
    assert_eq!(
        active,
        "order_ref,chip,market,customer_id,lot_id,units,planned_date,reserved_on,expires_on,active,held_units,drawn_units,released_units\n\
         PO-9,H200,CN,C-BETA,L-H200-0002,4,2026-02-20,2026-02-16,2026-03-02,true,4,0,0\n"
    );
    let (_, table) = listing(&db, &["holds", "--order", "PO-2"]);
    assert!(
        table.contains("PO-2") && !table.contains("PO-9") && table.ends_with("1 item\n"),
        "{table}"
    );
    let (code, _) = listing(&db, &["holds", "--order", "NEVER"]);
    assert_eq!(code, 2, "an unknown order is bad input");
    // Seen from before PO-9 was reserved, it is not there yet.
    let output = qledger_at(&db, "2026-02-15", &["--json", "holds"])
        .output()
        .unwrap();
    let early: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(early["holds"].as_array().unwrap().len(), 1);

    let (_, payments) = listing(&db, &["payments", "--period", "2025-Q4", "--format", "csv"]);
    assert_eq!(
        payments,
        "period,reference,amount_usd,paid_on,recorded_on,reversed,reversal_reason\n\
         2025-Q4,wire 1,100,2026-01-10,2026-02-16,false,\n\
         2025-Q4,wire 2,7,2026-02-16,2026-02-16,true,sent twice\n"
    );
    let (_, json) = listing(&db, &["--json", "payments"]);
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(json["payments"][1]["reversal_reason"], "sent twice");
    assert_eq!(
        json["payments"][0]["reversal_reason"],
        serde_json::Value::Null
    );
    let (_, table) = listing(&db, &["payments"]);
    assert!(
        table.contains("sent twice") && table.ends_with("2 items\n"),
        "{table}"
    );
}

#[test]
fn customers_lots_and_sales_are_listed_in_their_state_on_the_as_of_date() {
    let (_dir, db) = loaded_ledger();
    for nightly in ["2026-01-26.csv", "2026-02-16.csv", "2026-03-17.csv"] {
        let file = fixture(&format!("sales/{nightly}"));
        run_ok(
            qledger_at(&db, "2026-03-31", &["import", file.to_str().unwrap()]),
            nightly,
        );
    }
    let csv_of = |as_of: &str, args: &[&str]| {
        let output = qledger_at(&db, as_of, &[args, &["--format", "csv"]].concat())
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    // C-GAMMA was revoked on 2026-03-16: approved the day before.
    assert_eq!(
        csv_of(
            "2026-03-15",
            &["customers", "show", "--customer", "C-GAMMA"]
        ),
        "customer_id,name,country,status,effective_date,kyc_expires_on,end_use_certificate\n\
         C-GAMMA,Gamma Data Services Ltd.,CN,approved,2026-02-01,,\n"
    );
    assert_eq!(
        csv_of(
            "2026-03-16",
            &["customers", "show", "--customer", "C-GAMMA"]
        ),
        "customer_id,name,country,status,effective_date,kyc_expires_on,end_use_certificate\n\
         C-GAMMA,Gamma Data Services Ltd.,CN,revoked,2026-03-16,,\n"
    );
    // Before any customer was approved there is nothing to list.
    assert_eq!(
        csv_of("2025-12-31", &["customers", "show"]).lines().count(),
        1
    );
    // L-H200-0001: 1,200 + 600 shipped, 100 returned; its pass of 5,000.
    assert_eq!(
        csv_of("2026-03-31", &["lots", "show", "--lot", "L-H200-0001"]),
        "lot_id,chip,status,units_approved,units_shipped,units_held,lab,certificate_id,effective_date\n\
         L-H200-0001,H200,pass,5000,1700,0,Independent Semiconductor Test Labs (Austin),ISTL-2026-0101,2026-01-22\n"
    );
    let output = qledger_at(
        &db,
        "2026-03-31",
        &["--json", "sales", "--period", "2026-Q1", "--market", "JP"],
    )
    .output()
    .unwrap();
    let sales: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        sales,
        serde_json::json!({"sales": [{"record_id": "JP-0001", "kind": "sale", "sale_date": "2026-03-17",
            "chip": "H20", "market": "JP", "customer_id": null, "units": 250,
            "unit_price_usd": "11800", "lot_id": null, "order_ref": null, "reverses": null,
            "hold_seq": null, "drawn_units": null, "accepted_rules": null, "accepted_reason": null}]})
    );
    let table = qledger_at(
        &db,
        "2026-03-31",
        &["sales", "--period", "2026-Q1", "--chip", "h200"],
    )
    .output()
    .unwrap();
    let table = String::from_utf8_lossy(&table.stdout);
    assert!(
        table.contains("RT-0001") && table.contains("31250.5") && table.ends_with("10 items\n"),
        "{table}"
    );
    let unknown = qledger_at(&db, "2026-03-31", &["lots", "show", "--lot", "L-NONE"])
        .output()
        .unwrap();
    assert_eq!(unknown.status.code(), Some(2));
}

#[test]
fn the_views_answer_an_auditors_questions_as_report_does() {
    let (_dir, db) = loaded_ledger();
    append_every_other_kind(&db);
    reserve_active_hold(&db, "PO-9", "4");
    let conn = rusqlite::Connection::open(&db).unwrap();
    let one = |sql: &str| -> String {
        conn.query_row(sql, [], |row| row.get::<_, rusqlite::types::Value>(0))
            .map(|value| match value {
                rusqlite::types::Value::Integer(n) => n.to_string(),
                rusqlite::types::Value::Text(t) => t,
                rusqlite::types::Value::Null => "null".to_string(),
                other => panic!("{other:?}"),
            })
            .unwrap()
    };
    // No view reads the wall clock.
    assert_eq!(
        one("SELECT count(*) FROM sqlite_master WHERE type = 'view' AND sql LIKE '%''now''%'"),
        "0"
    );
    assert_eq!(one("SELECT as_of FROM ledger_clock"), "2026-02-16");
    // The chain head, as digest prints it.
    let head = one("SELECT seq || ':' || hash FROM ledger_entries ORDER BY seq DESC LIMIT 1");
    assert_eq!(head, digest(&db));
    // A period's China units, as report counts them (sales less returns).
    let output = qledger_at(
        &db,
        "2026-02-16",
        &["--json", "report", "--period", "2026-Q1"],
    )
    .output()
    .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let h200 = report["chips"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["chip"] == "H200")
        .unwrap();
    let restricted = one(
        "SELECT sum(CASE kind WHEN 'sale' THEN units ELSE -units END) FROM sales \
         WHERE chip = 'H200' AND market IN ('CN', 'HK', 'MO') AND sale_date BETWEEN '2026-01-01' AND '2026-03-31'",
    );
    assert_eq!(restricted, h200["restricted_units"].to_string());
    // Holds with their state, as `holds` lists them.
    assert_eq!(one("SELECT sum(held_units) FROM holds"), "4");
    assert_eq!(
        one("SELECT held_units FROM holds WHERE order_ref = 'PO-2'"),
        "0"
    );
    // Payments with money as decimal dollars; a reversal marked.
    assert_eq!(
        one("SELECT amount_usd FROM payments WHERE reference = 'wire 1'"),
        "100.0000"
    );
    assert_eq!(
        one("SELECT reversal_reason FROM payments WHERE reference = 'wire 2'"),
        "sent twice"
    );
    // The violations and why; the policy history with its withdrawal.
    assert_eq!(
        one("SELECT record_id || ': ' || accepted_rules || ' (' || accepted_reason || ')' FROM sales WHERE accepted_rules IS NOT NULL"),
        "S-2: lot,policy (shipped before review)"
    );
    assert_eq!(
        one("SELECT withdrawal_reason FROM policy_history WHERE withdrawn"),
        "keyed by mistake"
    );
    assert_eq!(one("SELECT count(*) FROM sales WHERE late"), "1");
    assert_eq!(one("SELECT period FROM period_closes"), "2025-Q4");
}

#[test]
fn file_level_problems_are_the_files_with_a_hint_and_no_error_numbers() {
    let (dir, db) = loaded_ledger();
    // A sales file given to `policy import`: refused as a file, with a hint.
    let sales = fixture("sales/2026-01-26.csv");
    let (code, summary, stderr) = run_json(&db, &["policy", "import", sales.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert_eq!(summary["rejected"], 0, "a header is not a row: {summary}");
    assert!(
        stderr.contains("this looks like a sales file: import it with `qledger import`"),
        "{stderr}"
    );
    let (_, text, _) = run(&db, &["policy", "import", sales.to_str().unwrap()]);
    assert!(text.contains("not imported"), "{text}");
    // An empty file is bad input about the file, not "1 rejected".
    let empty = write_file(dir.path(), "empty.csv", "");
    let (code, summary, _) = run_json(&db, &["import", empty.to_str().unwrap()]);
    assert_eq!((code, summary["rejected"].as_i64()), (2, Some(0)));
    // Messages in words, without the operating system's error numbers.
    let (code, _, stderr) = run(
        &db,
        &["import", dir.path().join("missing.csv").to_str().unwrap()],
    );
    assert_eq!(code, 2);
    assert!(
        stderr.contains("No such file or directory") && !stderr.contains("os error"),
        "{stderr}"
    );
    let output = std::process::Command::new(assert_cmd::cargo::cargo_bin("qledger"))
        .args([
            "--db",
            db.to_str().unwrap(),
            "--as-of",
            AS_OF,
            "policy",
            "show",
        ])
        .stdout(std::fs::File::create("/dev/full").unwrap())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(4));
    assert!(
        stderr.contains("No space left on device") && !stderr.contains("os error"),
        "{stderr}"
    );
}

#[test]
fn every_problem_streams_to_stderr_and_json_keeps_the_first_ten_thousand() {
    let (dir, db) = loaded_ledger();
    let mut text =
        String::from("record_id,sale_date,chip,market,customer_id,units,unit_price_usd\n");
    text.push_str("OK-1,2026-02-10,H200,US,,5,100\n");
    for index in 0..10_004 {
        text.push_str(&format!(
            "BAD-{index},2026-02-10,H200,US,,not-a-number,100\n"
        ));
    }
    // The last row is refused by a rule, not malformed: counted as well.
    text.push_str("LATE-1,2026-02-10,B200,CN,C-ALPHA,1,1\n");
    let file = write_file(dir.path(), "bad.csv", &text);
    let output = qledger_at(&db, AS_OF, &["--json", "import", file.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(summary["rows"], 10_006);
    assert_eq!(
        summary["rejected"], 10_005,
        "every bad row counted: {}",
        summary["rejected"]
    );
    assert_eq!(summary["errors"].as_array().unwrap().len(), 10_000);
    // 10,004 malformed values and two refusals of the last row (policy, lot).
    assert_eq!(summary["errors_omitted"], 6);
    assert_eq!(summary["inserted"], 0);
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(
        stderr
            .lines()
            .filter(|line| line.contains(": units: "))
            .count(),
        10_004,
        "every malformed row on stderr"
    );
    assert!(
        stderr.contains(":10007: chip: ") && stderr.contains("(rule policy)"),
        "the refusal too"
    );
    // A small file's JSON has no errors_omitted.
    let small = write_file(dir.path(), "small.csv", "record_id,sale_date,chip,market,customer_id,units,unit_price_usd\nB-1,2026-02-10,H200,US,,x,1\n");
    let (code, summary, _) = run_json(&db, &["import", small.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(summary.get("errors_omitted").is_none(), "{summary}");
}

/// Runs the binary as another user who cannot write `dir` or the ledger:
/// as `nobody` through `setpriv` when the tests run as root (root may write
/// anything), else as ourselves after taking write permission away.
fn as_auditor(
    binary: &std::path::Path,
    db: &std::path::Path,
    args: &[&str],
) -> std::process::Output {
    // Who we are, from `id -u`: root may write anything.
    let root = std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
        .unwrap_or(false);
    let mut command = if root {
        let mut command = std::process::Command::new("setpriv");
        command
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(binary);
        command
    } else {
        std::process::Command::new(binary)
    };
    command
        .arg("--db")
        .arg(db)
        .args(["--as-of", AS_OF])
        .args(args);
    command.output().expect("runs")
}

#[test]
fn an_evidence_copy_is_read_where_it_lies_and_left_as_it_was() {
    use std::os::unix::fs::PermissionsExt;
    let (_dir, db) = loaded_ledger();
    append_every_other_kind(&db);
    // The binary where another user can run it (the checkout may sit in a
    // home directory they cannot enter).
    let bin_dir = tempfile::tempdir().unwrap();
    let binary = bin_dir.path().join("qledger");
    std::fs::copy(assert_cmd::cargo::cargo_bin("qledger"), &binary).unwrap();
    std::fs::set_permissions(bin_dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&binary, std::fs::Permissions::from_mode(0o755)).unwrap();
    let evidence_dir = tempfile::tempdir().unwrap();
    let copy = evidence_dir.path().join("evidence.sqlite");
    std::fs::copy(&db, &copy).unwrap();
    let digest = run(&db, &["digest"]).1;
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o444)).unwrap();
    std::fs::set_permissions(evidence_dir.path(), std::fs::Permissions::from_mode(0o555)).unwrap();
    let read_only: [&[&str]; 9] = [
        &["verify"],
        &["digest"],
        &["report", "--period", "2026-Q1", "--format", "json"],
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
            "C-ALPHA",
            "--lot",
            "L-H200-0002",
        ],
        &["holds"],
        &["customers", "show"],
        &["payments"],
        &["sales", "--period", "2026-Q1"],
        &["policy", "show"],
    ];
    for args in read_only {
        let output = as_auditor(&binary, &copy, args);
        assert_eq!(
            output.status.code(),
            Some(0),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let output = as_auditor(&binary, &copy, &["digest"]);
    assert_eq!(String::from_utf8_lossy(&output.stdout), digest);
    let beside: Vec<_> = std::fs::read_dir(evidence_dir.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .collect();
    assert_eq!(
        beside,
        vec![std::ffi::OsString::from("evidence.sqlite")],
        "no file left beside it"
    );
    // A write is refused with the path, never half done.
    let output = as_auditor(&binary, &copy, &["release", "--order", "PO-2"]);
    assert_ne!(output.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&output.stderr).contains("evidence.sqlite"));
    std::fs::set_permissions(evidence_dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    // `verify` by another user on the owner's live ledger, then the owner's
    // `reserve`: the auditor left nothing that stops the owner's write.
    let owner_dir = tempfile::tempdir().unwrap();
    let owned = owner_dir.path().join("ledger.sqlite");
    std::fs::copy(&db, &owned).unwrap();
    std::fs::set_permissions(owner_dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&owned, std::fs::Permissions::from_mode(0o644)).unwrap();
    let output = as_auditor(&binary, &owned, &["verify"]);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    run_ok(
        reserve_command(&owned, "2026-02-16", "PO-AFTER-AUDIT", "1"),
        "the owner's reserve",
    );
}

#[test]
fn every_argument_of_every_command_is_described() {
    let commands: [&[&str]; 30] = [
        &["init"],
        &["policy", "import"],
        &["policy", "show"],
        &["policy", "withdraw"],
        &["customers", "import"],
        &["customers", "show"],
        &["lots", "import"],
        &["lots", "show"],
        &["supply", "import"],
        &["screening", "import"],
        &["screening", "clear"],
        &["screening", "check"],
        &["import"],
        &["check"],
        &["reserve"],
        &["release"],
        &["report"],
        &["remit"],
        &["close"],
        &["verify"],
        &["digest"],
        &["holds"],
        &["payments"],
        &["sales"],
        &["keygen"],
        &["checkpoint"],
        &["completions"],
        &["policy"],
        &["screening"],
        &["supply"],
    ];
    for command in commands {
        let mut args = command.to_vec();
        args.push("--help");
        let output = std::process::Command::new(assert_cmd::cargo::cargo_bin("qledger"))
            .args(&args)
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(0), "{args:?}");
        let help = String::from_utf8(output.stdout).unwrap();
        for line in help.lines() {
            let trimmed = line.trim_start();
            let is_item =
                line.starts_with("  ") && (trimmed.starts_with('-') || trimmed.starts_with('<'));
            if is_item {
                let described = trimmed
                    .split("  ")
                    .filter(|part| !part.trim().is_empty())
                    .count()
                    >= 2;
                assert!(described, "{args:?}: '{line}' has no description");
            }
        }
    }
}
