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
    run_experiment_with(dir, toml, &[])
}

/// [`run_experiment`] with more flags.
fn run_experiment_with(dir: &Path, toml: &str, extra: &[&str]) -> (Output, PathBuf) {
    let file = dir.join("exp.toml");
    std::fs::write(&file, toml).unwrap();
    let run = dir.join("run");
    let mut args = vec![
        "run",
        file.to_str().unwrap(),
        "--out",
        run.to_str().unwrap(),
        "-q",
    ];
    args.extend_from_slice(extra);
    let o = ordeal(&args);
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

/// `ordeal demo --faults SCHEDULE --out DIR/run [-q]`.
fn demo_faults(dir: &Path, schedule: &Path, quiet: bool) -> (Output, PathBuf) {
    let run = dir.join("run");
    let mut args = vec![
        "demo",
        "--faults",
        schedule.to_str().unwrap(),
        "--out",
        run.to_str().unwrap(),
    ];
    if quiet {
        args.push("-q");
    }
    (ordeal(&args), run)
}

/// The fault-marked events of RUN/trace.jsonl: (seq, node, call, mark).
fn marked(run: &Path) -> Vec<(u64, String, String, String)> {
    common::events(run)
        .iter()
        .filter_map(|e| {
            Some((
                e["seq"].as_u64()?,
                e["node"].as_str()?.to_string(),
                e["call"].as_str()?.to_string(),
                e["fault"].as_str()?.to_string(),
            ))
        })
        .collect()
}

#[test]
fn a_call_triggered_fault_is_said_when_it_fires_and_listed_in_the_summary() {
    let dir = tempfile::tempdir().unwrap();
    let sched = example("examples/faults/crash-primary-after-ack.toml");
    let (o, run) = demo_faults(dir.path(), &sched, false);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(0), "{err}");
    let m = marked(&run);
    assert_eq!(m.len(), 1, "{m:?}");
    let (seq, node, call, mark) = &m[0];
    assert_eq!(
        (node.as_str(), mark.as_str()),
        ("n0", "crash-primary: crash n0 after")
    );
    // Said once, at the moment it fired: before the crash's consequences and the outputs.
    let line = format!("] fault crash-primary fired on n0 at {call} (seq {seq}): crash n0 after\n");
    assert_eq!(err.matches(&line).count(), 1, "{err}");
    let at = |s: &str| err.find(s).unwrap_or_else(|| panic!("{s:?} in {err}"));
    assert!(at(&line) < at("node n0 ended: killed by SIGKILL"), "{err}");
    assert!(at(&line) < at("stopping all processes"), "{err}");
    assert!(
        !err.contains("fired at seq"),
        "no late line after the outputs: {err}"
    );
    let s = summary(&run);
    let f = &s["faults"];
    assert_eq!(f.as_array().unwrap().len(), 1, "{f}");
    assert_eq!(f[0]["name"], "crash-primary");
    assert_eq!(f[0]["kind"], "crash");
    assert_eq!(f[0]["node"], "n0");
    assert_eq!(f[0]["call"], *call);
    assert_eq!(f[0]["seq"], *seq);
    assert_eq!(f[0]["action"], "crash n0 after");
    // On the trace's clock: the marked event's start, in seconds (ms precision).
    let ev = common::events(&run)
        .into_iter()
        .find(|e| e["seq"] == *seq)
        .unwrap();
    let ts_ms = ev["ts"].as_u64().unwrap() / 1_000_000;
    assert_eq!(f[0]["fired_at"].as_f64().unwrap(), ts_ms as f64 / 1000.0);
    // A crash without restart_after is never healed.
    assert!(f[0].get("healed_at").is_none(), "{f}");
    // The terminal summary lists it.
    let out = stdout(&o);
    let row = out
        .lines()
        .find(|l| l.trim_start().starts_with("crash-primary "))
        .unwrap_or_else(|| panic!("{out}"));
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(
        cells,
        [
            "crash-primary",
            "crash",
            "n0",
            call.as_str(),
            &seq.to_string(),
            &format!("{:.3}s", ts_ms as f64 / 1000.0),
            "-",
            "crash",
            "n0",
            "after"
        ]
    );
}

#[test]
fn with_q_faults_and_heals_are_in_summary_json_but_no_line_is_said() {
    let dir = tempfile::tempdir().unwrap();
    let sched = dir.path().join("s.toml");
    std::fs::write(
        &sched,
        r#"[[fault]]
name = "cut"
kind = "partition"
from = ["n1"]
to = ["n0", "n2"]
duration = "100ms"
trigger = { after = "10ms" }
[[fault]]
name = "nap"
kind = "pause"
node = "n2"
duration = "50ms"
trigger = { after = "20ms" }
"#,
    )
    .unwrap();
    let (o, run) = demo_faults(dir.path(), &sched, true);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(!err.contains("fault "), "{err}");
    // Each firing and the end of its effect, where the trace marks them.
    let m = marked(&run);
    let seq_of = |mark: &str| {
        m.iter()
            .find(|x| x.3 == mark)
            .map(|x| x.0)
            .unwrap_or_else(|| panic!("{mark} in {m:?}"))
    };
    let ts = |seq: u64| {
        let e = common::events(&run)
            .into_iter()
            .find(|e| e["seq"] == seq)
            .unwrap();
        (e["ts"].as_u64().unwrap() / 1_000_000) as f64 / 1000.0
    };
    let s = summary(&run);
    let f = s["faults"].as_array().unwrap();
    assert_eq!(f.len(), 2, "{f:?}");
    let cut = f.iter().find(|x| x["name"] == "cut").unwrap();
    let nap = f.iter().find(|x| x["name"] == "nap").unwrap();
    let (fired, healed) = (seq_of("cut: partition n1 | n0,n2"), seq_of("by cut: heal"));
    assert_eq!(cut["kind"], "partition");
    assert_eq!(cut["seq"], fired);
    assert_eq!(cut["call"], "fault");
    assert_eq!(cut["fired_at"].as_f64(), Some(ts(fired)));
    assert_eq!(cut["healed_at"].as_f64(), Some(ts(healed)));
    let (fired, resumed) = (seq_of("nap: pause n2"), seq_of("by nap: resume n2"));
    assert_eq!(
        (nap["kind"].as_str(), nap["node"].as_str()),
        (Some("pause"), Some("n2"))
    );
    assert_eq!(nap["seq"], fired);
    assert_eq!(nap["healed_at"].as_f64(), Some(ts(resumed)));
    // In trace order.
    assert!(f[0]["seq"].as_u64() < f[1]["seq"].as_u64());
}

/// trace.json's flow arrows: id → (start ts, end ts, end tid), in µs.
fn flows(run: &Path) -> std::collections::BTreeMap<u64, (f64, f64, i64)> {
    let t: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("trace.json")).unwrap()).unwrap();
    let mut starts = std::collections::BTreeMap::new();
    let mut out = std::collections::BTreeMap::new();
    for e in t["traceEvents"].as_array().unwrap() {
        let (Some(id), Some(ts)) = (e["id"].as_u64(), e["ts"].as_f64()) else {
            continue;
        };
        match e["ph"].as_str() {
            Some("s") => {
                starts.insert(id, ts);
            }
            Some("f") => {
                out.insert(id, (0.0, ts, e["tid"].as_i64().unwrap()));
            }
            _ => {}
        }
    }
    for (id, v) in out.iter_mut() {
        v.0 = starts[id];
    }
    out
}

#[test]
fn flows_point_forward_in_time_into_a_blocking_receive() {
    flows_forward(&[]);
}

/// The same under ptrace, where a call's times come from its stops.
#[test]
fn flows_point_forward_in_time_into_a_blocking_receive_under_ptrace() {
    flows_forward(&["--engine", "ptrace"]);
}

fn flows_forward(engine: &[&str]) {
    let prog = common::compile("blockrecv", &["-O1"]);
    let dir = tempfile::tempdir().unwrap();
    let (o, run) = run_experiment_with(
        dir.path(),
        &format!(
            r#"name = "blocking"
[[node]]
name = "n"
argv = ["sleep", "30"]
[[workload]]
name = "w"
argv = ["{}", "3"]
"#,
            prog.display()
        ),
        engine,
    );
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    // The receives on the socketpair, in order, and the sends: each receive started before
    // its send (the child was asleep in read when the parent wrote).
    let evs = common::events(&run);
    let on_pair = |call: &str| -> Vec<&serde_json::Value> {
        evs.iter()
            .filter(|e| e["node"] == "w" && e["call"] == call && e["class"] == "data")
            .filter(|e| e["sock"]["proto"] == "unix")
            .collect()
    };
    let (reads, writes) = (on_pair("read"), on_pair("write"));
    assert_eq!((reads.len(), writes.len()), (3, 3), "{reads:?} {writes:?}");
    for (r, w) in reads.iter().zip(&writes) {
        assert!(r["ts"].as_u64() < w["ts"].as_u64(), "{r} {w}");
    }
    let f = flows(&run);
    assert!(!f.is_empty());
    for (id, (from, to, _)) in &f {
        assert!(
            to >= from,
            "flow {id} ends at {to} µs, before its start at {from} µs"
        );
    }
    // The arrows into the child's reads end at each read's completion (just inside its
    // slice), which comes after its send.
    let child = reads[0]["tid"].as_i64().unwrap();
    let mut into_child: Vec<f64> = f
        .values()
        .filter(|(_, _, tid)| *tid == child)
        .map(|(_, to, _)| *to)
        .collect();
    into_child.sort_by(f64::total_cmp);
    let ends: Vec<f64> = reads
        .iter()
        .map(|r| (r["ts"].as_u64().unwrap() + r["dur"].as_u64().unwrap() - 1) as f64 / 1000.0)
        .collect();
    assert_eq!(into_child, ends);
}

#[test]
fn an_empty_history_is_an_error_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.jsonl");
    std::fs::write(&empty, "").unwrap();
    let o = ordeal(&["check-history", empty.to_str().unwrap(), "--model", "kv"]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&o.stderr),
        format!(
            "ordeal: error: {}: the history has no operations: nothing to check (--allow-empty \
             accepts an empty history as linearizable)\n",
            empty.display()
        )
    );
    let o = ordeal(&[
        "check-history",
        empty.to_str().unwrap(),
        "--model",
        "kv",
        "--allow-empty",
    ]);
    assert_eq!(o.status.code(), Some(0));
    assert!(stdout(&o).starts_with("linearizable: 0 operations"));

    // In a run: a client that recorded nothing fails it, with the reason as its cause.
    let exp = |allow: &str| {
        format!(
            r#"name = "nothing"
[[node]]
name = "n"
argv = ["sleep", "30"]
[[workload]]
name = "w"
argv = ["sh", "-c", ": > {{run_dir}}/history.jsonl"]
[check]
history = {{ model = "kv"{allow} }}
"#
        )
    };
    let d1 = tempfile::tempdir().unwrap();
    let (o, run) = run_experiment(d1.path(), &exp(""));
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    let message = "history check: history.jsonl has no operations: nothing was checked (a \
                   client that recorded nothing, or traffic that decoded to no request); \
                   `allow_empty = true` in [check] history lets an empty history pass";
    let v = &summary(&run)["verdict"];
    assert_eq!(v["reasons"], serde_json::json!([message]));
    assert_eq!(
        v["cause"],
        serde_json::json!({"kind": "history_check", "message": message})
    );
    let d2 = tempfile::tempdir().unwrap();
    let (o, _) = run_experiment(d2.path(), &exp(", allow_empty = true"));
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));

    // After a fault fired, an empty history is no finding (the fault may have stopped the
    // clients before their first operation), and the run says that nothing was checked.
    let d3 = tempfile::tempdir().unwrap();
    let faults = d3.path().join("faults.toml");
    std::fs::write(
        &faults,
        "[[fault]]\nkind = \"pause\"\nnode = \"n\"\nduration = \"50ms\"\n\
         trigger = { after = \"0ms\" }\n",
    )
    .unwrap();
    let slow = exp("").replace("history.jsonl\"]", "history.jsonl; sleep 1\"]");
    let (o, run) = run_experiment_with(d3.path(), &slow, &["--faults", faults.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    let s = summary(&run);
    assert_eq!(s["verdict"]["status"], "pass");
    assert_eq!(s["faults"].as_array().map(Vec::len), Some(1), "{s}");
    let said = std::fs::read_to_string(run.join("history-check.txt")).unwrap();
    assert_eq!(
        said,
        "history: history.jsonl has no operations: nothing was checked (a fault fired: it may \
         have stopped the clients before their first operation)\n"
    );
}

#[test]
fn graph_says_where_a_trace_was_cut() {
    let dir = tempfile::tempdir().unwrap();
    let (o, run) = run_experiment(
        dir.path(),
        "name = \"cut\"\n[[node]]\nname = \"n\"\nargv = [\"sleep\", \"30\"]\n\
         [[workload]]\nname = \"w\"\nargv = [\"true\"]\n",
    );
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    // Cut the trace in the middle of its last line, as a writer killed mid-line leaves it.
    let trace = run.join("trace.jsonl");
    let mut text = std::fs::read_to_string(&trace).unwrap();
    let lines = text.lines().count();
    text.truncate(text.len() - 10);
    std::fs::write(&trace, &text).unwrap();
    let g = ordeal(&["graph", run.to_str().unwrap()]);
    assert_eq!(g.status.code(), Some(0));
    let warning = format!(
        "trace.jsonl:{lines}: the last line is cut short (its writer stopped mid-line): the \
         trace ends at line {}",
        lines - 1
    );
    assert!(
        stdout(&g).contains(&format!("  warnings 1\n    {warning}\n")),
        "{}",
        stdout(&g)
    );
    assert_eq!(summary(&run)["warnings"], serde_json::json!([warning]));
}

#[test]
fn a_port_slip_is_refused_when_the_file_is_loaded() {
    let dir = tempfile::tempdir().unwrap();
    let (o, run) = run_experiment(
        dir.path(),
        r#"name = "slip"
[[node]]
name = "db"
argv = ["sleep", "30", "{port.db}"]
[[workload]]
name = "w"
argv = ["echo", "127.0.0.1:{port.bd}"]
"#,
    );
    assert_eq!(o.status.code(), Some(2));
    let file = dir.path().join("exp.toml");
    assert_eq!(
        String::from_utf8_lossy(&o.stderr),
        format!(
            "ordeal: error: {}:7:28: `{{port.bd}}`: no node declares port bd; did you mean `db` \
             (node `db`)? A port no node declares is taken for one outside the run\n",
            file.display()
        )
    );
    assert!(!run.exists());
}
