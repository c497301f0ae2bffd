//! Failures a person understands at a glance: the verdict's cause (the telling log line with
//! its file and line, the check's message) in the terminal and summary.json.

mod common;
use common::summary;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn ordeal(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ordeal"))
        .args(args)
        .output()
        .expect("ordeal runs")
}

fn example(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(rel)
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// `ordeal run FILE --out DIR/run -q` of an experiment written into DIR.
fn run_experiment(dir: &Path, toml: &str) -> (Output, PathBuf) {
    let file = dir.join("exp.toml");
    std::fs::write(&file, toml).unwrap();
    let run = dir.join("run");
    let o = ordeal(&[
        "run",
        file.to_str().unwrap(),
        "--out",
        run.to_str().unwrap(),
        "-q",
    ]);
    (o, run)
}

/// Line `n` (1 is the first) of RUN/FILE.
fn line_of(run: &Path, file: &str, n: u64) -> String {
    let text = std::fs::read_to_string(run.join(file)).unwrap();
    text.lines().nth(n as usize - 1).unwrap().trim().to_string()
}

#[test]
fn the_lost_write_is_the_verdicts_cause_with_its_log_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let sched = example("examples/faults/crash-primary-after-ack.toml");
    let o = ordeal(&[
        "demo",
        "--faults",
        sched.to_str().unwrap(),
        "--set",
        "bugs=ack-before-replicate",
        "--out",
        run.to_str().unwrap(),
        "-q",
    ]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    let s = summary(&run);
    let cause = &s["verdict"]["cause"];
    assert_eq!(cause["kind"], "workload", "{cause}");
    assert_eq!(cause["name"], "client");
    assert_eq!(cause["status"], "exit 1");
    let log = &cause["log"];
    let (file, line) = (log["file"].as_str().unwrap(), log["line"].as_u64().unwrap());
    // The demo client prints its finding on stdout.
    assert_eq!(file, "logs/client.stdout");
    let text = log["text"].as_str().unwrap();
    assert_eq!(text, line_of(&run, file, line));
    assert!(text.starts_with("VIOLATION: op "), "{text}");
    assert!(
        text.ends_with("returned NOTFOUND, but SET k3 v7 was acknowledged"),
        "{text}"
    );
    // The terminal: the reason as before, then the cause on one line.
    assert!(
        out.contains(&format!(
            "  verdict  FAIL\n    - workload client ended: exit 1\n  cause    workload client \
             (exit 1): {text} ({file}:{line})\n"
        )),
        "{out}"
    );
    // `ordeal graph` rebuilds the outputs and keeps the cause.
    let g = ordeal(&["graph", run.to_str().unwrap()]);
    assert_eq!(g.status.code(), Some(0), "{}", stdout(&g));
    assert_eq!(summary(&run)["verdict"]["cause"], *cause);
    assert!(stdout(&g).contains(&format!("({file}:{line})\n")));
}

#[test]
fn an_experiments_failure_pattern_picks_the_telling_line() {
    let dir = tempfile::tempdir().unwrap();
    // Its last error-looking line is a tally; the experiment says what a finding looks like.
    let (o, run) = run_experiment(
        dir.path(),
        r#"name = "pattern"
failure_pattern = "^BOOM"
[[node]]
name = "n"
argv = ["sleep", "30"]
[[workload]]
name = "w"
argv = ["sh", "-c", "echo starting; echo 'BOOM: disk full' >&2; echo '0 errors' >&2; exit 3"]
"#,
    );
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert_eq!(
        summary(&run)["verdict"]["cause"],
        serde_json::json!({
            "kind": "workload",
            "name": "w",
            "status": "exit 3",
            "log": {"file": "logs/w.stderr", "line": 1, "text": "BOOM: disk full"}
        })
    );
    assert!(
        out.contains("  cause    workload w (exit 3): BOOM: disk full (logs/w.stderr:1)\n"),
        "{out}"
    );
}

#[test]
fn a_failed_check_says_its_message() {
    let dir = tempfile::tempdir().unwrap();
    let (o, run) = run_experiment(
        dir.path(),
        r#"name = "checked"
[[node]]
name = "n"
argv = ["sleep", "30"]
[[workload]]
name = "w"
argv = ["true"]
[check]
argv = ["sh", "-c", "echo 'reading 3 keys'; echo 'key k2: expected 3, found 2' >&2; exit 1"]
"#,
    );
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    // No line matches the default pattern: the check's last line of stderr is its message.
    assert_eq!(
        summary(&run)["verdict"]["cause"],
        serde_json::json!({
            "kind": "check",
            "status": "exit 1",
            "log": {"file": "logs/check.stderr", "line": 1, "text": "key k2: expected 3, found 2"}
        })
    );
    assert!(
        out.contains(
            "  cause    check (exit 1): key k2: expected 3, found 2 (logs/check.stderr:1)\n"
        ),
        "{out}"
    );
}

#[test]
fn a_passing_run_has_no_cause() {
    let dir = tempfile::tempdir().unwrap();
    let (o, run) = run_experiment(
        dir.path(),
        r#"name = "fine"
[[node]]
name = "n"
argv = ["sleep", "30"]
[[workload]]
name = "w"
argv = ["sh", "-c", "echo 'error budget: none used'"]
"#,
    );
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    assert!(summary(&run)["verdict"].get("cause").is_none());
    assert!(!stdout(&o).contains("  cause "));
}
