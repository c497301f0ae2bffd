//! `[check] history` in a run: the demo's recorded history is checked for linearizability,
//! the verdict names the operation that cannot be placed, and history.html draws the run's
//! faults on the operations' timeline. Both directions for both runtime bugs of the demo.

mod common;
use common::summary;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn example(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(rel)
}

/// `ordeal run examples/demo-kv-history.toml --faults SCHEDULE --set bugs=BUGS`.
fn run(schedule: &str, bugs: &str) -> (Output, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let o = Command::new(env!("CARGO_BIN_EXE_ordeal"))
        .args([
            "run",
            example("examples/demo-kv-history.toml").to_str().unwrap(),
            "--faults",
            example(schedule).to_str().unwrap(),
            "--set",
            &format!("bugs={bugs}"),
            "--out",
            out.to_str().unwrap(),
            "-q",
        ])
        .output()
        .unwrap();
    (o, dir)
}

/// The bug-free store passes; with `bug` the history is not linearizable, and the reason
/// names the read that cannot be placed. Returns the failing run's directory.
fn both_ways(schedule: &str, bug: &str, fault_mark: &str) -> tempfile::TempDir {
    let (o, dir) = run(schedule, "");
    let r = dir.path().join("run");
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    let text = std::fs::read_to_string(r.join("history-check.txt")).unwrap();
    assert!(text.starts_with("linearizable: "), "{text}");
    let html = std::fs::read_to_string(r.join("history.html")).unwrap();
    assert!(html.contains(fault_mark), "the fault is on the timeline");

    // The bug loses or hides a write for sure, but whether a read then sees it depends on how
    // the concurrent clients interleave: a write to the same key that lands first hides the
    // loss from any checker (the lost write linearizes before it). Each attempt shows it in
    // about 8 runs of 10 here: up to four attempts.
    let (o, dir) = (0..4)
        .map(|_| run(schedule, bug))
        .find(|(o, _)| o.status.code() != Some(0))
        .unwrap_or_else(|| panic!("{bug}: linearizable in four attempts"));
    let r = dir.path().join("run");
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    let s = summary(&r);
    assert_eq!(s["verdict"]["status"], "fail");
    let reason = s["verdict"]["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|x| x.as_str())
        .find(|x| x.starts_with("history not linearizable (kv): key "))
        .unwrap_or_else(|| panic!("{s}"))
        .to_string();
    // `process P read "kN" → V reads V, but the value is W (…/history.jsonl:LINE)`
    assert!(
        reason.contains(" read \"k") && reason.contains(", but the value is "),
        "{reason}"
    );
    let text = std::fs::read_to_string(r.join("history-check.txt")).unwrap();
    assert!(text.starts_with("not linearizable: "), "{text}");
    let html = std::fs::read_to_string(r.join("history.html")).unwrap();
    assert!(html.contains("System events") && html.contains(fault_mark));
    dir
}

#[test]
fn ack_before_replicate_is_not_linearizable_under_a_primary_crash() {
    let dir = both_ways(
        "examples/faults/kv-history-crash-primary.toml",
        "ack-before-replicate",
        "n0: crash-primary: crash n0 before",
    );
    let html = std::fs::read_to_string(dir.path().join("run/history.html")).unwrap();
    assert!(
        html.contains("n0 started (by crash-primary: restart n0 (restart_after))"),
        "the restart is drawn too"
    );
}

#[test]
fn stale_read_is_not_linearizable_when_a_backup_falls_behind() {
    let dir = both_ways(
        "examples/faults/kv-history-stale-backup.toml",
        "stale-read",
        "n0: cut-n2: partition n0 -&gt; n2",
    );
    // The primary's send to n2 was queued by the cut (never delivered before the heal), its
    // wait for n2's acknowledgement timed out, and it dropped n2.
    let trace = std::fs::read_to_string(dir.path().join("run/trace.jsonl")).unwrap();
    assert!(trace.contains("\"fault\":\"by cut-n2: queued "));
    let n0 = std::fs::read_to_string(dir.path().join("run/logs/n0.stderr")).unwrap();
    assert!(
        n0.contains("node 0: dropping backup 2: Resource temporarily unavailable"),
        "{n0}"
    );
}

#[test]
fn a_missing_history_fails_the_run_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let exp = dir.path().join("exp.toml");
    std::fs::write(
        &exp,
        "name = \"h\"\n[[node]]\nname = \"a\"\nargv = [\"sleep\", \"30\"]\n\
         [[workload]]\nname = \"w\"\nargv = [\"true\"]\n[check]\nhistory = { model = \"register\" }\n",
    )
    .unwrap();
    let out = dir.path().join("run");
    let o = Command::new(env!("CARGO_BIN_EXE_ordeal"))
        .args([
            "run",
            exp.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "-q",
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let s = summary(&out);
    let reason = s["verdict"]["reasons"][0].as_str().unwrap();
    assert!(
        reason.starts_with("history check: ") && reason.contains("history.jsonl was not written"),
        "{reason}"
    );
}
