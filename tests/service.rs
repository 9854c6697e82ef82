//! `qledger serve` (SPEC §6) through a real server process, a real HTTP
//! client and real SQLite files: roles, retries, the same answers as the
//! CLI, the cap under 64 concurrent clients and an import, acknowledged
//! writes surviving SIGKILL, graceful SIGTERM, TLS, logs and metrics.

mod common;

use common::*;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// A running `qledger serve` on a free loopback port.
struct Server {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Server {
    /// Starts a server on `db` whose clock is `today`; waits for `/healthz`.
    fn start(db: &Path, today: &str, extra: &[&str]) -> Server {
        let port = free_port();
        let log = db.with_extension(format!("serve-{port}.log"));
        let listen = format!("127.0.0.1:{port}");
        let mut args = vec!["serve", "--listen", &listen];
        args.extend_from_slice(extra);
        let child = std::process::Command::new(assert_cmd::cargo::cargo_bin("qledger"))
            .arg("--db")
            .arg(db)
            .args(&args)
            .env("QLEDGER_TODAY", today)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("serve starts");
        let server = Server { child, port, log };
        server.wait_ready();
        server
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("the server did not listen: {}", self.log_text());
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, then the exit code.
    fn terminate(mut self) -> i32 {
        signal(self.child.id(), "TERM");
        let status = self.child.wait().expect("waits");
        status.code().unwrap_or(-1)
    }

    /// SIGKILL.
    fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn signal(pid: u32, name: &str) {
    let status = std::process::Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status()
        .expect("kill runs");
    assert!(status.success());
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into()
}

/// (status, headers as lower-case name → value, body).
type Answer = (u16, Vec<(String, String)>, String);

fn call(
    method: &str,
    url: &str,
    token: Option<&str>,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Answer {
    let agent = agent();
    let response = match method {
        "GET" => {
            let mut request = agent.get(url);
            if let Some(token) = token {
                request = request.header("Authorization", &format!("Bearer {token}"));
            }
            for (name, value) in headers {
                request = request.header(*name, *value);
            }
            request.call()
        }
        _ => {
            let mut request = agent.post(url);
            if let Some(token) = token {
                request = request.header("Authorization", &format!("Bearer {token}"));
            }
            for (name, value) in headers {
                request = request.header(*name, *value);
            }
            request.send(body.unwrap_or(""))
        }
    };
    let mut response = response.expect("the server answers");
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    let body = response
        .body_mut()
        .with_config()
        .limit(1 << 30)
        .read_to_string()
        .expect("body");
    (status, headers, body)
}

fn json_of(answer: &Answer) -> Value {
    serde_json::from_str(&answer.2).unwrap_or_else(|e| panic!("not JSON ({e}): {}", answer.2))
}

/// Issues a token through the CLI; returns its secret.
fn token(db: &Path, as_of: &str, name: &str, role: &str, expires_on: Option<&str>) -> String {
    let mut args = vec!["--json", "token", "issue", "--name", name, "--role", role];
    if let Some(date) = expires_on {
        args.extend(["--expires-on", date]);
    }
    let output = qledger_at(db, as_of, &args).output().expect("runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let value: Value = serde_json::from_slice(&output.stdout).expect("JSON");
    value["token"].as_str().expect("secret").to_string()
}

const US_SALES: &str = "record_id,sale_date,chip,market,customer_id,units,unit_price_usd\n\
    US-1,2026-02-10,H200,US,,2000,30000\n";

/// A loaded ledger with 2,000 US H200 units in 2026-Q1 (limit 1,000).
fn desk_ledger() -> (tempfile::TempDir, PathBuf) {
    let (dir, db) = loaded_ledger();
    let sales = write_file(dir.path(), "us.csv", US_SALES);
    run_ok(
        qledger_at(&db, "2026-02-16", &["import", sales.to_str().unwrap()]),
        "US import",
    );
    (dir, db)
}

fn reserve_body(order: &str, units: u32) -> String {
    json!({"order": order, "chip": "H200", "market": "CN", "units": units,
           "date": "2026-02-20", "customer": "C-BETA", "lot": "L-H200-0002"})
    .to_string()
}

#[test]
fn every_endpoint_answers_each_role_as_the_role_table_says() {
    let (dir, db) = desk_ledger();
    let as_of = "2026-02-16";
    let roles = ["auditor", "desk", "importer", "officer"];
    let secrets: Vec<String> = roles
        .iter()
        .map(|r| token(&db, as_of, &format!("t-{r}"), r, None))
        .collect();
    // Expires at the start of 2026-02-17, the server's day.
    let expired = token(&db, as_of, "t-expired", "officer", Some("2026-02-17"));
    let revoked = token(&db, as_of, "t-revoked", "officer", None);
    run_ok(
        qledger_at(&db, as_of, &["token", "revoke", "--name", "t-revoked"]),
        "revoke",
    );
    let key = dir.path().join("signing.key");
    run_ok(
        qledger_at(&db, as_of, &["keygen", "--out", key.to_str().unwrap()]),
        "keygen",
    );
    let server = Server::start(&db, "2026-02-17", &["--signing-key", key.to_str().unwrap()]);
    // (method, path, body, roles that may: auditor, desk, importer, officer)
    let read = [true, true, true, true];
    let desk = [false, true, false, true];
    let importer = [false, false, true, true];
    let officer = [false, false, false, true];
    let endpoints: Vec<(&str, &str, String, [bool; 4])> = vec![
        (
            "POST",
            "/v1/check",
            reserve_body("x", 1).replace("\"order\":\"x\",", ""),
            desk,
        ),
        ("POST", "/v1/reserve", reserve_body("O-M", 1), desk),
        (
            "POST",
            "/v1/release",
            json!({"order": "O-M"}).to_string(),
            desk,
        ),
        ("GET", "/v1/report?period=2026-Q1", String::new(), read),
        (
            "GET",
            "/v1/report?period=2026-Q1&format=html",
            String::new(),
            read,
        ),
        (
            "GET",
            "/v1/history?from=2026-Q1&to=2026-Q2",
            String::new(),
            read,
        ),
        ("GET", "/v1/holds", String::new(), read),
        ("GET", "/v1/customers", String::new(), read),
        ("GET", "/v1/lots", String::new(), read),
        ("GET", "/v1/payments", String::new(), read),
        ("GET", "/v1/sales?period=2026-Q1", String::new(), read),
        ("GET", "/v1/export", String::new(), read),
        ("GET", "/v1/digest", String::new(), read),
        ("GET", "/v1/verify", String::new(), read),
        ("GET", "/v1/policy", String::new(), read),
        ("GET", "/v1/checkpoint", String::new(), read),
        (
            "POST",
            "/v1/imports/sales?dry_run=true",
            US_SALES.replace("US-1", "US-2"),
            importer,
        ),
        ("POST", "/v1/imports/policy", "chip\n".to_string(), officer),
        (
            "POST",
            "/v1/imports/customers",
            "customer_id\n".to_string(),
            officer,
        ),
        ("POST", "/v1/imports/lots", "lot_id\n".to_string(), officer),
        ("POST", "/v1/imports/supply", "chip\n".to_string(), officer),
        (
            "POST",
            "/v1/imports/screening",
            "list\n".to_string(),
            officer,
        ),
        (
            "POST",
            "/v1/policy/withdraw",
            json!({"chip": "H200", "effective_from": "2030-01-01", "reason": "r"}).to_string(),
            officer,
        ),
        (
            "POST",
            "/v1/screening/clear",
            json!({"customer": "C-BETA", "list": "L", "entry": "E", "reason": "r"}).to_string(),
            officer,
        ),
        (
            "POST",
            "/v1/remit",
            json!({"period": "2026-Q1", "reference": "R"}).to_string(),
            officer,
        ),
        (
            "POST",
            "/v1/close",
            json!({"period": "2026-Q1"}).to_string(),
            officer,
        ),
    ];
    for (method, path, body, allowed) in &endpoints {
        let url = server.url(path);
        for (bad, secret) in [
            ("missing", None),
            ("unknown", Some("not-a-token")),
            ("expired", Some(expired.as_str())),
            ("revoked", Some(revoked.as_str())),
        ] {
            let answer = call(method, &url, secret, &[], Some(body));
            assert_eq!(
                answer.0, 401,
                "{method} {path} with a {bad} token: {}",
                answer.2
            );
            assert!(
                answer
                    .1
                    .iter()
                    .any(|(k, v)| k == "www-authenticate" && v == "Bearer"),
                "{method} {path}: WWW-Authenticate"
            );
        }
        for (role, (secret, may)) in roles.iter().zip(secrets.iter().zip(allowed)) {
            let answer = call(method, &url, Some(secret), &[], Some(body));
            if *may {
                assert!(
                    ![401, 403].contains(&answer.0) && answer.0 < 500,
                    "{method} {path} as {role}: {} {}",
                    answer.0,
                    answer.2
                );
            } else {
                assert_eq!(answer.0, 403, "{method} {path} as {role}: {}", answer.2);
            }
        }
    }
    // The log names who was refused a 403, and nobody for a 401.
    let lines: Vec<Value> = server
        .log_text()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert!(lines
        .iter()
        .any(|l| l["status"] == 403 && l["token"] == "t-auditor"));
    assert!(lines
        .iter()
        .filter(|l| l["status"] == 401)
        .all(|l| l["token"].is_null()));
    // No token needed for these three.
    for path in ["/healthz", "/openapi.json", "/metrics"] {
        assert_eq!(
            call("GET", &server.url(path), None, &[], None).0,
            200,
            "{path}"
        );
    }
    assert_eq!(server.terminate(), 0);
}

/// Removes the fields that differ by wall-clock time (`head` hashes cover
/// `recorded_at`, SPEC §7) from an answer.
fn without_heads(mut value: Value) -> Value {
    match &mut value {
        Value::Object(map) => {
            map.remove("head");
            for (_, v) in map.iter_mut() {
                *v = without_heads(v.take());
            }
        }
        Value::Array(items) => {
            for v in items.iter_mut() {
                *v = without_heads(v.take());
            }
        }
        _ => {}
    }
    value
}

#[test]
fn the_same_scenario_through_the_cli_and_http_gives_the_same_answers_and_ledger() {
    let (dir, db) = desk_ledger();
    let as_of = "2026-02-16";
    let secret = token(&db, as_of, "ops", "officer", None);
    let copy = dir.path().join("http.sqlite");
    settle(&db);
    std::fs::copy(&db, &copy).expect("copy");
    let sales =
        "record_id,sale_date,chip,market,customer_id,units,unit_price_usd,lot_id,order_ref\n\
                 CN-1,2026-02-16,H200,CN,C-BETA,30,30000,L-H200-0002,O-1\n";
    write_file(dir.path(), "night.csv", sales);
    // (CLI arguments, HTTP method, path, body)
    let steps: Vec<(Vec<&str>, &str, &str, String)> = vec![
        (vec!["check", "--chip", "H200", "--market", "CN", "--units", "40", "--date", "2026-02-20", "--customer", "C-BETA", "--lot", "L-H200-0002"],
         "POST", "/v1/check", json!({"chip": "H200", "market": "CN", "units": 40, "date": "2026-02-20", "customer": "C-BETA", "lot": "L-H200-0002"}).to_string()),
        (vec!["reserve", "--order", "O-1", "--chip", "H200", "--market", "CN", "--units", "40", "--date", "2026-02-20", "--customer", "C-BETA", "--lot", "L-H200-0002"],
         "POST", "/v1/reserve", reserve_body("O-1", 40)),
        (vec!["reserve", "--order", "O-1", "--chip", "H200", "--market", "CN", "--units", "40", "--date", "2026-02-20", "--customer", "C-BETA", "--lot", "L-H200-0002"],
         "POST", "/v1/reserve", reserve_body("O-1", 40)),
        (vec!["reserve", "--order", "O-2", "--chip", "H200", "--market", "CN", "--units", "5000", "--date", "2026-02-20", "--customer", "C-BETA", "--lot", "L-H200-0002"],
         "POST", "/v1/reserve", reserve_body("O-2", 5000)),
        (vec!["import", "night.csv"], "POST", "/v1/imports/sales", sales.to_string()),
        (vec!["release", "--order", "O-1"], "POST", "/v1/release", json!({"order": "O-1"}).to_string()),
        (vec!["release", "--order", "O-1"], "POST", "/v1/release", json!({"order": "O-1"}).to_string()),
        (vec!["remit", "--period", "2026-Q1", "--amount", "100.50", "--paid-on", "2026-02-16", "--reference", "W-1"],
         "POST", "/v1/remit", json!({"period": "2026-Q1", "amount": "100.50", "paid_on": "2026-02-16", "reference": "W-1"}).to_string()),
        (vec!["close", "--period", "2026-Q1"], "POST", "/v1/close", json!({"period": "2026-Q1"}).to_string()),
        (vec!["report", "--period", "2026-Q1"], "GET", "/v1/report?period=2026-Q1", String::new()),
        (vec!["holds"], "GET", "/v1/holds", String::new()),
        (vec!["payments"], "GET", "/v1/payments", String::new()),
    ];
    let server = Server::start(&copy, as_of, &[]);
    for (args, method, path, body) in &steps {
        let mut cli_args = vec!["--json", "--actor", "token:ops"];
        cli_args.extend(args.iter().copied());
        let output = qledger_at(&db, as_of, &cli_args)
            .current_dir(dir.path())
            .output()
            .expect("runs");
        // A command that ends in an error prints no JSON: the service
        // answers {"error": the same words, "errors": []}.
        let cli: Value = if output.stdout.is_empty() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let message = stderr.trim().trim_start_matches("qledger: ").to_string();
            json!({"error": message, "errors": []})
        } else {
            serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("{args:?}: {e}"))
        };
        let headers = [("X-File-Name", "night.csv")];
        let answer = call(
            method,
            &server.url(path),
            Some(&secret),
            &headers,
            Some(body),
        );
        let expected_status = match (output.status.code(), *path) {
            (_, "/v1/check") => 200,
            (Some(0), _) => 200,
            (Some(1), _) => 409,
            (Some(2), _) => 400,
            other => panic!("{args:?}: {other:?}"),
        };
        assert_eq!(answer.0, expected_status, "{args:?}: {}", answer.2);
        assert_eq!(
            without_heads(json_of(&answer)),
            without_heads(cli),
            "{args:?}"
        );
    }
    assert_eq!(server.terminate(), 0);
    // The same entries, actors included (hashes differ only by recorded_at).
    assert_eq!(content(&copy), content(&db));
    let (_, a, _) = run_json(&db, &["digest"]);
    let (_, b, _) = run_json(&copy, &["digest"]);
    assert_eq!(a["entries"], b["entries"]);
    let (code, verified, _) = run_json(&copy, &["verify"]);
    assert_eq!(code, 0, "{verified}");
}

#[test]
fn a_retry_with_the_same_key_appends_once_and_another_request_is_422() {
    let (_dir, db) = desk_ledger();
    let as_of = "2026-02-16";
    let secret = token(&db, as_of, "oms", "desk", None);
    let other = token(&db, as_of, "oms2", "desk", None);
    let server = Server::start(&db, as_of, &[]);
    let url = server.url("/v1/reserve");
    let entries = || {
        json_of(&call(
            "GET",
            &server.url("/v1/digest"),
            Some(&secret),
            &[],
            None,
        ))["entries"]
            .as_i64()
            .unwrap()
    };
    let before = entries();
    let key = [("Idempotency-Key", "order-O-7-attempt")];
    let first = call(
        "POST",
        &url,
        Some(&secret),
        &key,
        Some(&reserve_body("O-7", 10)),
    );
    assert_eq!(first.0, 200, "{}", first.2);
    assert_eq!(json_of(&first)["already_held"], false);
    let retry = call(
        "POST",
        &url,
        Some(&secret),
        &key,
        Some(&reserve_body("O-7", 10)),
    );
    assert_eq!(
        (retry.0, &retry.2),
        (200, &first.2),
        "the same answer, byte for byte"
    );
    assert_eq!(entries(), before + 1, "appended once");
    let changed = call(
        "POST",
        &url,
        Some(&secret),
        &key,
        Some(&reserve_body("O-7", 11)),
    );
    assert_eq!(changed.0, 422, "{}", changed.2);
    assert_eq!(entries(), before + 1);
    // Keys belong to a token: another token's same key is a new request
    // (a retry of the order: already held, nothing appended).
    let theirs = call(
        "POST",
        &url,
        Some(&other),
        &key,
        Some(&reserve_body("O-7", 10)),
    );
    assert_eq!(theirs.0, 200);
    assert_eq!(json_of(&theirs)["already_held"], true);
    // A refused request's answer is kept too, and a key must be visible ASCII.
    let refused_key = [("Idempotency-Key", "big")];
    let refused = call(
        "POST",
        &url,
        Some(&secret),
        &refused_key,
        Some(&reserve_body("O-8", 999_999)),
    );
    assert_eq!(refused.0, 409);
    assert_eq!(
        call(
            "POST",
            &url,
            Some(&secret),
            &refused_key,
            Some(&reserve_body("O-8", 999_999))
        )
        .2,
        refused.2
    );
    let bad = call(
        "POST",
        &url,
        Some(&secret),
        &[("Idempotency-Key", "a b")],
        Some(&reserve_body("O-9", 1)),
    );
    assert_eq!(bad.0, 400);
    // An import retried with its key is recorded once.
    let officer = token(&db, as_of, "nightly", "importer", None);
    let import_url = server.url("/v1/imports/sales");
    let rows = US_SALES.replace("US-1", "US-9");
    let import_key = [
        ("Idempotency-Key", "night-2026-02-16"),
        ("X-File-Name", "us.csv"),
    ];
    let once = call(
        "POST",
        &import_url,
        Some(&officer),
        &import_key,
        Some(&rows),
    );
    assert_eq!(once.0, 200, "{}", once.2);
    assert_eq!(json_of(&once)["inserted"], 1);
    let again = call(
        "POST",
        &import_url,
        Some(&officer),
        &import_key,
        Some(&rows),
    );
    assert_eq!(again.2, once.2);
    drop(server);
    // The stored answers survive a restart: they are in the file.
    let server = Server::start(&db, as_of, &[]);
    let after_restart = call(
        "POST",
        &server.url("/v1/reserve"),
        Some(&secret),
        &key,
        Some(&reserve_body("O-7", 10)),
    );
    assert_eq!(after_restart.2, first.2);
}

#[test]
fn sixty_four_clients_reserving_while_an_import_runs_never_exceed_the_cap() {
    let (dir, db) = desk_ledger();
    let as_of = "2026-02-16";
    let secret = token(&db, as_of, "oms", "desk", None);
    let server = Server::start(&db, as_of, &[]);
    // 400 more US units arrive during the run: the limit grows by 200.
    let mut us_rows =
        String::from("record_id,sale_date,chip,market,customer_id,units,unit_price_usd\n");
    for i in 0..400 {
        us_rows.push_str(&format!("US-N-{i},2026-02-12,H200,US,,1,30000\n"));
    }
    let us_file = write_file(dir.path(), "us-more.csv", &us_rows);
    let url = server.url("/v1/reserve");
    let imported = std::sync::atomic::AtomicBool::new(false);
    let outcomes: Vec<(u32, u32, Vec<String>)> = std::thread::scope(|scope| {
        let clients: Vec<_> = (0..64)
            .map(|client| {
                let (url, secret, imported) = (url.clone(), secret.clone(), &imported);
                scope.spawn(move || {
                    let (mut granted, mut server_errors, mut orders) = (0, 0, Vec::new());
                    for attempt in 0.. {
                        let order = format!("O-{client}-{attempt}");
                        let answer = call(
                            "POST",
                            &url,
                            Some(&secret),
                            &[],
                            Some(&reserve_body(&order, 7)),
                        );
                        match answer.0 {
                            200 => {
                                granted += 7;
                                orders.push(order);
                            }
                            // Refused: done once the import has landed
                            // (until then headroom may still grow).
                            409 if imported.load(std::sync::atomic::Ordering::SeqCst) => break,
                            409 => std::thread::sleep(Duration::from_millis(5)),
                            s if s >= 500 => server_errors += 1,
                            other => panic!("{other}: {}", answer.2),
                        }
                    }
                    (granted, server_errors, orders)
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(50));
        run_ok(
            qledger_at(&db, as_of, &["import", us_file.to_str().unwrap()]),
            "import beside the server",
        );
        imported.store(true, std::sync::atomic::Ordering::SeqCst);
        clients
            .into_iter()
            .map(|c| c.join().expect("client"))
            .collect()
    });
    let granted: u32 = outcomes.iter().map(|o| o.0).sum();
    assert_eq!(outcomes.iter().map(|o| o.1).sum::<u32>(), 0, "no 5xx");
    let server_check = call(
        "POST",
        &server.url("/v1/check"),
        Some(&secret),
        &[],
        Some(&reserve_body("x", 7).replace("\"order\":\"x\",", "")),
    );
    let figures = json_of(&server_check);
    assert_eq!(
        figures["allowed"], false,
        "every client was refused at the end: {figures}"
    );
    let limit = figures["limit"].as_i64().unwrap();
    assert_eq!(
        figures["reserved_units"].as_i64().unwrap(),
        i64::from(granted),
        "every 200 is a hold"
    );
    assert!(
        i64::from(granted) + figures["restricted_units"].as_i64().unwrap() <= limit,
        "{figures}"
    );
    // Exactly the headroom: what is left is less than one more request.
    let headroom = figures["headroom"].as_i64().unwrap();
    assert!(
        (0..7).contains(&headroom),
        "headroom left {headroom}: {figures}"
    );
    drop(server);
    let (code, verified, _) = run_json(&db, &["verify"]);
    assert_eq!(code, 0, "{verified}");
}

#[test]
fn acknowledged_holds_survive_sigkill_and_refused_ones_were_never_appended() {
    let (_dir, db) = desk_ledger();
    let as_of = "2026-02-16";
    let secret = token(&db, as_of, "oms", "desk", None);
    let rounds: usize = std::env::var("QLEDGER_KILL_ROUNDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(20);
    let mut acknowledged: Vec<String> = Vec::new();
    let mut refused: Vec<String> = Vec::new();
    for round in 0..rounds {
        let server = Server::start(&db, as_of, &[]);
        let url = server.url("/v1/reserve");
        let stop = std::sync::atomic::AtomicBool::new(false);
        let results: Vec<(Vec<String>, Vec<String>)> = std::thread::scope(|scope| {
            let clients: Vec<_> = (0..8)
                .map(|client| {
                    let (url, secret, stop) = (url.clone(), secret.clone(), &stop);
                    scope.spawn(move || {
                        let (mut ok, mut no) = (Vec::new(), Vec::new());
                        for attempt in 0.. {
                            if stop.load(std::sync::atomic::Ordering::Relaxed) {
                                break;
                            }
                            let order = format!("K-{round}-{client}-{attempt}");
                            // Every third asks for too much: refused.
                            let units = if attempt % 3 == 2 { 100_000 } else { 1 };
                            let agent = agent();
                            let sent = agent
                                .post(&url)
                                .header("Authorization", &format!("Bearer {secret}"))
                                .send(reserve_body(&order, units));
                            match sent.map(|r| r.status().as_u16()) {
                                Ok(200) => ok.push(order),
                                Ok(409) => no.push(order),
                                Ok(other) => panic!("status {other}"),
                                Err(_) => break, // killed mid-request: unknown outcome
                            }
                        }
                        (ok, no)
                    })
                })
                .collect();
            std::thread::sleep(Duration::from_millis(60 + 13 * round as u64 % 90));
            server.kill();
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            clients
                .into_iter()
                .map(|c| c.join().expect("client"))
                .collect()
        });
        for (ok, no) in results {
            acknowledged.extend(ok);
            refused.extend(no);
        }
    }
    assert!(
        acknowledged.len() > rounds,
        "the load ran: {} acknowledged",
        acknowledged.len()
    );
    let (code, holds, _) = run_json(&db, &["holds"]);
    assert_eq!(code, 0);
    let recorded: std::collections::HashSet<String> = holds["holds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["order_ref"].as_str().unwrap().to_string())
        .collect();
    for order in &acknowledged {
        assert!(
            recorded.contains(order),
            "acknowledged hold {order} was lost"
        );
    }
    for order in &refused {
        assert!(
            !recorded.contains(order),
            "refused hold {order} was appended"
        );
    }
    let (code, verified, _) = run_json(&db, &["verify"]);
    assert_eq!(code, 0, "{verified}");
}

#[test]
fn sigterm_finishes_and_leaves_the_file_complete() {
    let (_dir, db) = desk_ledger();
    let as_of = "2026-02-16";
    let secret = token(&db, as_of, "oms", "desk", None);
    let server = Server::start(&db, as_of, &[]);
    for i in 0..5 {
        let answer = call(
            "POST",
            &server.url("/v1/reserve"),
            Some(&secret),
            &[],
            Some(&reserve_body(&format!("T-{i}"), 1)),
        );
        assert_eq!(answer.0, 200);
    }
    let log = server.log.clone();
    assert_eq!(server.terminate(), 0);
    assert!(
        !wal_of(&db).exists(),
        "checkpointed: the file alone holds everything"
    );
    let (_, holds, _) = run_json(&db, &["holds"]);
    assert_eq!(holds["holds"].as_array().unwrap().len(), 5);
    // One JSON line per request, with the keys of SPEC §6, never the secret.
    let text = std::fs::read_to_string(log).unwrap();
    assert!(!text.contains(&secret), "a secret in the log");
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    let requests: Vec<&Value> = lines.iter().filter(|l| l.get("path").is_some()).collect();
    assert_eq!(requests.len(), 5);
    for line in requests {
        for key in [
            "time",
            "token",
            "method",
            "path",
            "status",
            "duration_ms",
            "entries_appended",
        ] {
            assert!(line.get(key).is_some(), "{key} missing: {line}");
        }
        assert_eq!(line["token"], "oms");
        assert_eq!(line["entries_appended"], 1);
    }
}

#[test]
fn serving_beyond_loopback_needs_tls_or_insecure_http_and_tls_works() {
    let (dir, db) = desk_ledger();
    let as_of = "2026-02-16";
    let output = qledger_at(&db, as_of, &["serve", "--listen", "0.0.0.0:0"])
        .output()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stderr).contains("--insecure-http"));
    let server = Server::start(&db, as_of, &["--insecure-http"]);
    drop(server);
    // TLS with a self-signed certificate, checked by curl against it.
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let made = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-keyout",
        ])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl runs");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let server = Server::start(
        &db,
        as_of,
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    );
    let curl = std::process::Command::new("curl")
        .args(["-sS", "--cacert"])
        .arg(&cert)
        .arg(format!("https://localhost:{}/healthz", server.port))
        .output()
        .expect("curl runs");
    assert!(
        curl.status.success(),
        "{}",
        String::from_utf8_lossy(&curl.stderr)
    );
    let health: Value = serde_json::from_slice(&curl.stdout).unwrap();
    assert_eq!(health["ok"], true);
    // Plain HTTP to the TLS port is not served.
    let plain = agent().get(&server.url("/healthz")).call();
    assert!(plain.is_err() || plain.unwrap().status().as_u16() >= 400);
}

#[test]
fn as_of_needs_trust_bodies_are_checked_and_big_bodies_are_413() {
    let (_dir, db) = desk_ledger();
    let as_of = "2026-02-16";
    let secret = token(&db, as_of, "oms", "officer", None);
    let server = Server::start(&db, as_of, &[]);
    let check = server.url("/v1/check");
    let body = json!({"chip": "H200", "market": "CN", "units": 1, "date": "2026-02-20", "as_of": "2026-02-16"}).to_string();
    let answer = call("POST", &check, Some(&secret), &[], Some(&body));
    assert_eq!(answer.0, 400, "{}", answer.2);
    assert!(answer.2.contains("--trust-client-as-of"));
    let unknown =
        json!({"chip": "H200", "market": "CN", "units": 1, "date": "2026-02-20", "colour": "red"})
            .to_string();
    assert_eq!(
        call("POST", &check, Some(&secret), &[], Some(&unknown)).0,
        400
    );
    let report = call(
        "GET",
        &server.url("/v1/report?period=2026-Q1&as_of=2026-02-16"),
        Some(&secret),
        &[],
        None,
    );
    assert_eq!(report.0, 400);
    assert_eq!(
        call(
            "GET",
            &server.url("/v1/report?period=2026-Q1&colour=red"),
            Some(&secret),
            &[],
            None
        )
        .0,
        400
    );
    assert_eq!(
        call(
            "GET",
            &server.url("/v1/checkpoint"),
            Some(&secret),
            &[],
            None
        )
        .0,
        404,
        "no --signing-key"
    );
    // A body over 256 MiB is refused from its Content-Length.
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    write!(stream, "POST /v1/imports/sales HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {secret}\r\nContent-Length: 300000000\r\n\r\nrecord_id\n").unwrap();
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).unwrap();
    assert_eq!(&head, b"HTTP/1.1 413");
    drop(server);
    // With --trust-client-as-of the client's date is the clock.
    let server = Server::start(&db, as_of, &["--trust-client-as-of"]);
    let answer = call(
        "POST",
        &server.url("/v1/check"),
        Some(&secret),
        &[],
        Some(&body),
    );
    assert_eq!(answer.0, 200, "{}", answer.2);
    let early = json!({"order": "E", "chip": "H200", "market": "CN", "units": 1, "date": "2026-02-20", "customer": "C-BETA", "lot": "L-H200-0002", "as_of": "2026-01-02"}).to_string();
    let answer = call(
        "POST",
        &server.url("/v1/reserve"),
        Some(&secret),
        &[],
        Some(&early),
    );
    assert_eq!(
        answer.0, 400,
        "the clock never runs backwards: {}",
        answer.2
    );
}

#[test]
fn openapi_metrics_and_export_describe_the_service() {
    let (_dir, db) = desk_ledger();
    let as_of = "2026-02-16";
    let secret = token(&db, as_of, "audit", "auditor", None);
    let server = Server::start(&db, as_of, &[]);
    let doc = json_of(&call("GET", &server.url("/openapi.json"), None, &[], None));
    assert_eq!(doc["openapi"], "3.1.0");
    for path in [
        "/healthz",
        "/metrics",
        "/v1/check",
        "/v1/reserve",
        "/v1/release",
        "/v1/report",
        "/v1/history",
        "/v1/holds",
        "/v1/customers",
        "/v1/lots",
        "/v1/payments",
        "/v1/sales",
        "/v1/export",
        "/v1/digest",
        "/v1/verify",
        "/v1/policy",
        "/v1/checkpoint",
        "/v1/imports/sales",
        "/v1/imports/policy",
        "/v1/imports/customers",
        "/v1/imports/lots",
        "/v1/imports/supply",
        "/v1/imports/screening",
        "/v1/policy/withdraw",
        "/v1/screening/clear",
        "/v1/remit",
        "/v1/close",
    ] {
        assert!(
            doc["paths"].get(path).is_some(),
            "{path} is not in /openapi.json"
        );
    }
    assert_eq!(
        doc["components"]["schemas"]["ReserveBody"]["additionalProperties"],
        false
    );
    let answers = &doc["paths"]["/v1/reserve"]["post"]["responses"];
    for status in ["200", "400", "401", "403", "409", "413", "422", "503"] {
        assert!(
            answers.get(status).is_some(),
            "reserve documents {status}: {answers}"
        );
    }
    let report_answers = &doc["paths"]["/v1/report"]["get"]["responses"];
    assert!(report_answers.get("401").is_some() && report_answers.get("422").is_none());
    // Without --trust-client-as-of no request may carry as_of.
    assert!(!doc.to_string().contains("\"as_of\""));
    // Export streams exactly what the CLI exports.
    let exported = call("GET", &server.url("/v1/export"), Some(&secret), &[], None);
    assert_eq!(exported.0, 200);
    assert!(exported
        .1
        .iter()
        .any(|(k, v)| k == "content-type" && v == "application/x-ndjson"));
    let cli = qledger_at(&db, as_of, &["export"]).output().unwrap();
    assert_eq!(exported.2.as_bytes(), cli.stdout.as_slice());
    assert_eq!(
        call(
            "GET",
            &server.url("/v1/export?from=5&to=2"),
            Some(&secret),
            &[],
            None
        )
        .0,
        400
    );
    let metrics = call("GET", &server.url("/metrics"), None, &[], None).2;
    assert!(
        metrics.contains("qledger_http_requests_total{route=\"/v1/export\",status=\"200\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains(
        "qledger_http_request_duration_seconds_bucket{route=\"/v1/export\",le=\"+Inf\"} 2"
    ));
    assert!(metrics.contains("qledger_entries_appended_total 0"));
}

/// The schemathesis run of SPEC §6 lives in `scripts/schemathesis.sh`
/// (installs schemathesis from PyPI into target/venv, serves a loaded
/// ledger, runs every endpoint of /openapi.json with an officer token).
#[test]
fn schemathesis_finds_no_server_error_and_no_response_off_its_schema() {
    let script = root().join("scripts").join("schemathesis.sh");
    let output = std::process::Command::new("bash")
        .arg(&script)
        .env("QLEDGER", assert_cmd::cargo::cargo_bin("qledger"))
        .output()
        .expect("bash runs");
    assert!(
        output.status.success(),
        "schemathesis failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
