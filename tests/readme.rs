//! The README's worked examples run as written, against the real binary.

mod common;

use common::*;

/// The fenced block after `<!-- name -->` in the README.
fn readme_block(name: &str) -> String {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let marker = format!("<!-- {name} -->");
    let start = readme.find(&marker).expect("the README has the block");
    let rest = &readme[start + marker.len()..];
    let body = rest.split_once("```sh\n").expect("a sh block").1;
    body.split_once("```").expect("closed").0.to_string()
}

#[test]
fn the_corrections_example_runs_as_written() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("fixture-ledger.sqlite");
    let bin = assert_cmd::cargo::cargo_bin("qledger");
    let main_job = std::process::Command::new("bash")
        .arg(root().join("scripts/main-job.sh"))
        .arg(&db)
        .env("QLEDGER", &bin)
        .output()
        .unwrap();
    assert!(
        main_job.status.success(),
        "{}",
        String::from_utf8_lossy(&main_job.stderr)
    );
    let before = digest(&db);
    let output = std::process::Command::new("bash")
        .arg("-c")
        .arg(readme_block("corrections-example"))
        .current_dir(root())
        .env("QLEDGER", &bin)
        .env("DB", &db)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(0),
        "the last line verifies: {stderr}"
    );
    for expected in [
        "was already recorded; nothing changed",
        "reversed payment 'WIRE-0701' of 2026-Q1",
        "Late entries after the close (1)",
        "2,460,000.00",
        "withdrew the policy version of H200 from 2026-10-01",
        "ok: ",
    ] {
        assert!(stdout.contains(expected), "{expected}\n{stdout}");
    }
    for expected in [
        "already recorded with other figures",
        "(rule closed)",
        "unknown chip H2OO (known chips: B200, B30A, H20, H200, MI308, MI325X)",
        "never runs backwards",
    ] {
        assert!(stderr.contains(expected), "{expected}\n{stderr}");
    }
    assert_ne!(digest(&db), before);
}

#[test]
fn the_openssl_recipe_checks_a_checkpoint_signature() {
    let (dir, db) = loaded_ledger();
    let key = dir.path().join("key.pem");
    run_ok(
        qledger_at(&db, AS_OF, &["keygen", "--out", key.to_str().unwrap()]),
        "keygen",
    );
    let checkpoint = dir.path().join("checkpoint.json");
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
    let recipe = readme_block("checkpoint-openssl");
    let run_recipe = |file: &std::path::Path| {
        std::process::Command::new("bash")
            .arg("-c")
            .arg(&recipe)
            .current_dir(dir.path())
            .env("CHECKPOINT", file)
            .output()
            .unwrap()
    };
    let output = run_recipe(&checkpoint);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("Signature Verified Successfully"),
        "{stdout}"
    );
    // A checkpoint whose head was changed fails the same recipe.
    let mut forged: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&checkpoint).unwrap()).unwrap();
    forged["entries"] = (forged["entries"].as_i64().unwrap() + 1).into();
    let forged_file = dir.path().join("forged.json");
    std::fs::write(&forged_file, forged.to_string()).unwrap();
    assert!(!run_recipe(&forged_file).status.success());
}
