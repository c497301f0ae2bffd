//! ordeal's HTML outputs in a real browser (headless Chromium, `chromium` on Debian; under
//! `CI=true` a missing one fails, elsewhere these tests skip saying so): pages load without a
//! script error, and history.html's own checks pass (no overlapping text, the violating
//! operation on the first screen). crates/ordeal-history/tests/browser.rs checks history.html
//! on dense histories with faults; here are the pages as the CLI writes them.

use ordeal_test_support::browser::headless;
use ordeal_test_support::{assert_success, installed};
use std::process::Command;

fn ordeal(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ordeal"))
        .args(args)
        .output()
        .expect("ordeal runs")
}

/// A kv history of 3 processes on 2 keys, with the node that answered each operation; the
/// last read of k1 misses an acknowledged write.
fn kv_history() -> String {
    let mut lines = Vec::new();
    let mut t = 1_000_000u64;
    let mut line = |kind: &str, p: u64, f: &str, key: &str, value: &str, node: &str| {
        lines.push(format!(
            "{{\"type\":\"{kind}\",\"process\":{p},\"f\":\"{f}\",\"key\":\"{key}\",\
             \"value\":{value},\"time\":{t},\"node\":\"{node}\"}}"
        ));
        t += 700_000;
    };
    for i in 0..40 {
        let key = if i % 2 == 0 { "k0" } else { "k1" };
        let p = i % 3;
        let v = (i + 1).to_string();
        line("invoke", p, "write", key, &v, "n0");
        line("ok", p, "write", key, &v, "n0");
        line("invoke", p, "read", key, "null", "n1");
        line("ok", p, "read", key, &v, "n1");
    }
    line("invoke", 2, "read", "k1", "null", "n2");
    line("ok", 2, "read", "k1", "1", "n2");
    lines.join("\n") + "\n"
}

#[test]
fn check_history_writes_a_page_that_opens_on_its_violation() {
    if !installed(&["chromium"], "chromium") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let h = dir.path().join("h.jsonl");
    std::fs::write(&h, kv_history()).unwrap();
    let page = dir.path().join("history.html");
    let o = ordeal(&[
        "check-history",
        h.to_str().unwrap(),
        "--model",
        "kv",
        "--html",
        page.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1), "not linearizable");
    let Some(r) = headless(&page, "") else { return };
    assert_eq!(r.errors(), Vec::<&str>::new());
    assert_eq!(r.body_attr("data-js").as_deref(), Some("ok"));
    assert_eq!(r.body_attr("data-js-errors"), None);
    assert_eq!(
        r.body_attr("data-label-overlaps").as_deref(),
        Some("0"),
        "{:?}",
        r.body_attr("data-overlap-examples")
    );
    assert_eq!(r.body_attr("data-violation").as_deref(), Some("in-view"));
    assert!(r.dom.contains("✖ process 2 read \"k1\" → 1: "));
    // The node that served the violating read, on hover.
    assert!(r.dom.contains("process 2: read \"k1\" → 1\n"));
    assert!(r.dom.contains("\nnode: n2\n"));
}

#[test]
fn a_passing_run_under_a_crash_draws_its_history_with_the_crash() {
    if !installed(&["chromium"], "chromium") {
        return;
    }
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let o = ordeal(&[
        "run",
        root.join("examples/demo-kv-history.toml").to_str().unwrap(),
        "--faults",
        root.join("examples/faults/kv-history-crash-primary.toml")
            .to_str()
            .unwrap(),
        "--out",
        out.to_str().unwrap(),
        "-q",
    ]);
    assert_success(&o, "ordeal run examples/demo-kv-history.toml");
    let page = out.join("history.html");
    let Some(r) = headless(&page, "") else { return };
    assert_eq!(r.errors(), Vec::<&str>::new());
    assert_eq!(r.body_attr("data-js").as_deref(), Some("ok"));
    assert_eq!(
        r.body_attr("data-label-overlaps").as_deref(),
        Some("0"),
        "{:?}",
        r.body_attr("data-overlap-examples")
    );
    assert_eq!(r.body_attr("data-violation").as_deref(), Some("none"));
    // The crash is a band from its firing to the restart, labelled above the lanes.
    assert_eq!(r.dom.matches("<rect class=\"band\"").count(), 1);
    assert!(r.dom.contains(">n0: crash-primary: crash n0 before</text>"));
    // The availability chart has windows.
    assert!(r.dom.contains("<g><title>invoked "));
}

#[test]
fn an_explore_report_loads_without_script_errors() {
    if !installed(&["chromium"], "chromium") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("c");
    let o = ordeal(&[
        "explore",
        "--demo",
        "--runs",
        "3",
        "-j",
        "1",
        "--reruns",
        "1",
        "-q",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_success(&o, "ordeal explore --demo");
    let page = out.join("report.html");
    let Some(r) = headless(&page, "") else { return };
    assert_eq!(r.errors(), Vec::<&str>::new());
    assert!(r.dom.contains("</body>"), "rendered");
    let html = std::fs::read_to_string(&page).unwrap();
    // What the browser saw is the page: its title survived the parse.
    let title = &html[html.find("<title>").unwrap()..html.find("</title>").unwrap()];
    assert!(r.dom.contains(title), "{title}");
}
