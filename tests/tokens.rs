//! Access tokens (SPEC §6): issued as entries holding only the SHA-256 of
//! their secret, revoked by another entry, listed, expiring at the start of
//! their `expires_on` date.

mod common;

use common::*;
use quotaledger::period::parse_date;
use quotaledger::records::tokens::{authenticate, Role};

#[test]
fn tokens_are_issued_listed_revoked_and_only_their_hash_is_recorded() {
    let (_dir, db) = new_ledger();
    let (code, issued, stderr) = run_json(
        &db,
        &[
            "token",
            "issue",
            "--name",
            "oms-prod",
            "--role",
            "desk",
            "--expires-on",
            "2026-09-01",
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    let secret = issued["token"].as_str().unwrap().to_string();
    assert_eq!(
        issued,
        serde_json::json!({"name": "oms-prod", "role": "desk", "expires_on": "2026-09-01", "token": secret})
    );
    assert!(secret.len() >= 32);
    let bytes = std::fs::read(&db).unwrap();
    assert!(
        !bytes
            .windows(secret.len())
            .any(|window| window == secret.as_bytes()),
        "the secret itself is never written"
    );
    // The secret authenticates until the start of its expiry date.
    let conn = rusqlite::Connection::open(&db).unwrap();
    let on = |date: &str| authenticate(&conn, &secret, parse_date(date).unwrap()).unwrap();
    assert_eq!(
        on("2026-08-31").map(|t| (t.name, t.role)),
        Some(("oms-prod".to_string(), Role::Desk))
    );
    assert!(
        on("2026-09-01").is_none(),
        "expired at the start of its expires_on date"
    );
    assert!(
        authenticate(&conn, "qlt_wrong", parse_date("2026-07-01").unwrap())
            .unwrap()
            .is_none()
    );
    drop(conn);
    // A second working token of the same name is refused; an expiry not after the as-of date too.
    assert_eq!(
        run(
            &db,
            &["token", "issue", "--name", "oms-prod", "--role", "officer"]
        )
        .0,
        2
    );
    assert_eq!(
        run(
            &db,
            &[
                "token",
                "issue",
                "--name",
                "x",
                "--role",
                "desk",
                "--expires-on",
                AS_OF
            ]
        )
        .0,
        2
    );
    assert_eq!(
        run(&db, &["token", "issue", "--name", "x", "--role", "admin"]).0,
        2
    );
    let (code, list, _) = run_json(&db, &["token", "list"]);
    assert_eq!(code, 0);
    let item = &list["tokens"][0];
    assert_eq!(
        (
            &item["name"],
            &item["role"],
            &item["issued_on"],
            &item["expires_on"],
            &item["revoked_on"]
        ),
        (
            &serde_json::json!("oms-prod"),
            &serde_json::json!("desk"),
            &serde_json::json!(AS_OF),
            &serde_json::json!("2026-09-01"),
            &serde_json::Value::Null
        )
    );
    assert!(
        item["issued_by"].as_str().unwrap().starts_with("os:"),
        "{item}"
    );
    assert!(
        !list.to_string().contains(&secret),
        "never a secret in the list"
    );
    // Revoked: no longer authenticates; again: nothing changes; unknown: bad input.
    let (code, revoked, _) = run_json(&db, &["token", "revoke", "--name", "oms-prod"]);
    assert_eq!(
        (code, &revoked["already_ended"]),
        (0, &serde_json::json!(false))
    );
    let conn = rusqlite::Connection::open(&db).unwrap();
    assert!(authenticate(&conn, &secret, parse_date(AS_OF).unwrap())
        .unwrap()
        .is_none());
    drop(conn);
    let (code, again, _) = run_json(&db, &["token", "revoke", "--name", "oms-prod"]);
    assert_eq!(
        (code, &again["already_ended"]),
        (0, &serde_json::json!(true))
    );
    assert_eq!(run(&db, &["token", "revoke", "--name", "nobody"]).0, 2);
    let (_, list, _) = run_json(&db, &["token", "list"]);
    assert_eq!(list["tokens"][0]["revoked_on"], AS_OF);
    // The name may be issued again once revoked; the ledger verifies.
    assert_eq!(
        run(
            &db,
            &["token", "issue", "--name", "oms-prod", "--role", "officer"]
        )
        .0,
        0
    );
    let (code, _, stderr) = run(&db, &["verify"]);
    assert_eq!(code, 0, "{stderr}");
}
