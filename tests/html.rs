//! The HTML report (SPEC §8) rendered in headless Chromium (Debian's
//! `chromium`, which `.ci/run` installs): a screenshot and a PDF, no
//! request to any server, and every figure of the JSON report in the text.

mod common;

use common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Runs Chromium headless on `page` with `extra` arguments; its stdout.
fn chromium(profile: &Path, page: &Path, extra: &[String]) -> String {
    let output = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-quic",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("chromium runs (Debian's chromium package; .ci/run installs it)");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The text of rendered HTML: tags dropped, entities decoded, spaces folded.
fn text_of(dom: &str) -> String {
    let mut text = String::new();
    let mut in_tag = false;
    for c in dom.chars() {
        match c {
            '<' => {
                in_tag = true;
                text.push(' ');
            }
            '>' => in_tag = false,
            c if !in_tag => text.push(c),
            _ => {}
        }
    }
    let text = text
        .replace("&amp;", "&")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&nbsp;", " ");
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Every leaf of the report JSON that is a figure or a name.
fn leaves(value: &Value, out: &mut Vec<Value>) {
    match value {
        Value::Object(map) => map.values().for_each(|child| leaves(child, out)),
        Value::Array(items) => items.iter().for_each(|child| leaves(child, out)),
        Value::Null | Value::Bool(_) => {}
        leaf => out.push(leaf.clone()),
    }
}

#[test]
fn the_html_report_renders_in_chromium_with_every_figure_and_no_request() {
    let out = root().join("target").join("html-test");
    std::fs::create_dir_all(&out).unwrap();
    let db: PathBuf = out.join("fixture-ledger.sqlite");
    let status = Command::new("bash")
        .arg(root().join("scripts/main-job.sh"))
        .arg(&db)
        .env("QLEDGER", assert_cmd::cargo::cargo_bin("qledger"))
        .current_dir(root())
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "the main job");
    let page = out.join("fixture-ledger-2026-Q1.html");
    let html = std::fs::read_to_string(&page).expect("the main job wrote the page");
    // Self-contained: the policy forbids every request, and nothing asks for one.
    assert!(
        html.contains("default-src 'none'"),
        "a Content-Security-Policy"
    );
    for needle in ["src=", "href=", "url(", "@import", "<script", "<link"] {
        assert!(
            !html.contains(needle),
            "the page loads nothing: found {needle}"
        );
    }
    let profile = tempfile::tempdir().unwrap();
    let shot = out.join("report-2026-Q1.png");
    let pdf = out.join("report-2026-Q1.pdf");
    let _ = std::fs::remove_file(&shot);
    let _ = std::fs::remove_file(&pdf);
    chromium(
        profile.path(),
        &page,
        &[
            format!("--screenshot={}", shot.display()),
            "--window-size=1200,1800".to_string(),
        ],
    );
    chromium(
        profile.path(),
        &page,
        &[
            format!("--print-to-pdf={}", pdf.display()),
            "--no-pdf-header-footer".to_string(),
        ],
    );
    let png = std::fs::read(&shot).expect("a screenshot");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "a real screenshot"
    );
    let printed = std::fs::read(&pdf).expect("a PDF");
    assert!(
        printed.starts_with(b"%PDF") && printed.len() > 5_000,
        "a real PDF"
    );
    // Every figure of the JSON report, as the page writes it.
    let dom = chromium(profile.path(), &page, &["--dump-dom".to_string()]);
    let text = text_of(&dom);
    let json_out = Command::new(assert_cmd::cargo::cargo_bin("qledger"))
        .arg("--db")
        .arg(&db)
        .args([
            "--as-of",
            "2026-06-30",
            "--json",
            "report",
            "--period",
            "2026-Q1",
        ])
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&json_out.stdout).unwrap();
    let mut figures = Vec::new();
    leaves(&report, &mut figures);
    assert!(figures.len() > 50);
    for figure in figures {
        let shown = quotaledger::report::html::thousands(&figure);
        assert!(
            text.contains(&shown),
            "{figure} (as {shown}) is not in the page"
        );
    }
    assert!(text.contains("closed"), "the page says closed");
}
