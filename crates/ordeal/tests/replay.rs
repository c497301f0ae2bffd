//! `ordeal replay --runs N [-j J] [--faults SCHEDULE]`: reruns, the reproduction rate with its
//! Wilson interval, rates.json (the commands of docs/faults.md#reproduction-rates).

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

fn crash_after_ack() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/faults/crash-primary-after-ack.toml")
        .display()
        .to_string()
}

/// `ordeal demo --out RUN -q EXTRA...`, which must exit with `code`.
fn demo(run: &Path, extra: &[&str], code: i32) {
    let mut args = vec!["demo", "--out", run.to_str().unwrap(), "-q"];
    args.extend_from_slice(extra);
    let o = ordeal(&args);
    assert_eq!(
        o.status.code(),
        Some(code),
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

fn rates(out: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(out.join("rates.json")).unwrap()).unwrap()
}

fn stdout(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The rerun directories rates.json lists, and each rerun's status.
fn reruns(r: &serde_json::Value) -> Vec<(PathBuf, String)> {
    r["reruns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            (
                PathBuf::from(x["dir"].as_str().unwrap()),
                x["status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn a_deterministic_failure_reproduces_every_time() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("lost-write");
    let sched = crash_after_ack();
    demo(
        &run,
        &["--faults", &sched, "--set", "bugs=ack-before-replicate"],
        1,
    );
    let out = tmp.path().join("lost-write.rates");
    let o = ordeal(&[
        "replay",
        run.to_str().unwrap(),
        "--runs",
        "4",
        "-j",
        "2",
        "--out",
        out.to_str().unwrap(),
    ]);
    let text = stdout(&o);
    assert_eq!(o.status.code(), Some(0), "{text}");
    let r = rates(&out);
    assert_eq!(
        (&r["runs"], &r["reproduced"], &r["rate"], &r["same_firings"]),
        (&4.into(), &4.into(), &1.0.into(), &4.into())
    );
    assert_eq!(
        (&r["expected"], &r["interrupted"]),
        (&"fail".into(), &false.into())
    );
    assert!((r["ci_low"].as_f64().unwrap() - 0.510_109_163_545_402_7).abs() < 1e-12);
    assert_eq!(r["ci_high"], 1.0);
    assert_eq!(
        r["outcomes"],
        serde_json::json!([{"outcome": "fail: workload client ended: exit N", "count": 4}])
    );
    assert_eq!(r["original"], run.to_str().unwrap());
    assert_eq!(r["schedule"], serde_json::Value::Null);
    let dirs = reruns(&r);
    assert_eq!(
        dirs,
        (1..=4)
            .map(|k| (out.join(k.to_string()), "fail".to_string()))
            .collect::<Vec<_>>()
    );
    for (dir, _) in &dirs {
        assert_eq!(
            summary(dir)["verdict"]["reasons"][0],
            "workload client ended: exit 1"
        );
        // Summary only: `ordeal graph` draws it on demand. Each rerun is replayable in turn.
        assert!(!dir.join("graph.dot").exists());
        assert!(dir.join("replay.json").exists());
        let applied = std::fs::read_to_string(dir.join("schedule.applied.toml")).unwrap();
        assert!(applied.contains("fault = \"crash-primary\""), "{applied}");
    }
    assert!(
        text.contains("reproduced 4/4 (100%, 95% CI 51–100%): verdict fail, as the original"),
        "{text}"
    );
    assert!(text.contains("same firings 4/4"), "{text}");
    assert!(
        text.contains("   4  fail: workload client ended: exit N"),
        "{text}"
    );
    assert!(
        text.contains(&format!("`ordeal graph {}/K`", out.display())),
        "{text}"
    );
    // One progress line per rerun, as it ends.
    for k in 1..=4 {
        let line = format!("rerun {k}/4: FAIL (workload client ended: exit 1) in ");
        assert!(text.contains(&line), "{text}");
    }
    let o = ordeal(&["graph", out.join("3").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    assert!(out.join("3/graph.dot").exists());

    // The replay directory must be new or empty.
    let o = ordeal(&[
        "replay",
        run.to_str().unwrap(),
        "--runs",
        "2",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stdout(&o).contains("exists and is not empty (choose another --out)"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn a_passing_run_replayed_passes_every_time() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("survives");
    demo(&run, &["--faults", &crash_after_ack()], 0);
    let out = tmp.path().join("rates");
    let o = ordeal(&[
        "replay",
        run.to_str().unwrap(),
        "--runs",
        "3",
        "--out",
        out.to_str().unwrap(),
        "-q",
    ]);
    let text = stdout(&o);
    assert_eq!(o.status.code(), Some(0), "{text}");
    assert!(!text.contains("rerun 1/3"), "-q: no progress lines: {text}");
    let r = rates(&out);
    assert_eq!(
        (
            &r["runs"],
            &r["reproduced"],
            &r["same_firings"],
            &r["expected"]
        ),
        (&3.into(), &3.into(), &3.into(), &"pass".into())
    );
    assert!((r["ci_low"].as_f64().unwrap() - 0.438_502_968_244_954_6).abs() < 1e-12);
    assert_eq!(
        r["outcomes"],
        serde_json::json!([{"outcome": "pass", "count": 3}])
    );
    assert_eq!(
        reruns(&r)
            .iter()
            .map(|(_, s)| s.as_str())
            .collect::<Vec<_>>(),
        ["pass"; 3]
    );
    assert!(
        text.contains("reproduced 3/3 (100%, 95% CI 44–100%): verdict pass, as the original"),
        "{text}"
    );

    assert_eq!(
        ordeal(&["replay", run.to_str().unwrap(), "--runs", "0"])
            .status
            .code(),
        Some(2)
    );
    assert_eq!(
        ordeal(&["replay", run.to_str().unwrap(), "-j", "0", "--runs", "2"])
            .status
            .code(),
        Some(2)
    );
}

#[test]
fn a_schedule_given_instead_reproduces_when_the_run_fails() {
    let tmp = tempfile::tempdir().unwrap();
    let sched = crash_after_ack();
    // A baseline with the bug switched on passes: no fault shows it.
    let baseline = tmp.path().join("baseline");
    demo(&baseline, &["--set", "bugs=ack-before-replicate"], 0);
    let out = tmp.path().join("with-crash");
    let o = ordeal(&[
        "replay",
        baseline.to_str().unwrap(),
        "--faults",
        &sched,
        "--runs",
        "2",
        "--out",
        out.to_str().unwrap(),
    ]);
    let text = stdout(&o);
    assert_eq!(o.status.code(), Some(0), "{text}");
    let r = rates(&out);
    assert_eq!(
        (
            &r["runs"],
            &r["reproduced"],
            &r["same_firings"],
            &r["expected"]
        ),
        (&2.into(), &2.into(), &2.into(), &"failure".into())
    );
    assert_eq!(r["schedule"], sched.as_str());
    assert!((r["ci_low"].as_f64().unwrap() - 0.342_380_227_506_653).abs() < 1e-12);
    assert_eq!(
        r["outcomes"],
        serde_json::json!([{"outcome": "fail: workload client ended: exit N", "count": 2}])
    );
    assert!(
        text.contains(&format!(
            "replay of {} with the schedule {sched}: 2 reruns",
            baseline.display()
        )),
        "{text}"
    );
    assert!(
        text.contains("reproduced 2/2 (100%, 95% CI 34–100%): the run failed (fail or hung)"),
        "{text}"
    );
    assert!(text.contains("as the first rerun"), "{text}");
    // The rerun records the schedule it ran: replaying it runs the crash again.
    let info: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("1/replay.json")).unwrap()).unwrap();
    assert_eq!(info["faults_path"], sched.as_str());
    assert_eq!(
        info["set"],
        serde_json::json!(["bugs=ack-before-replicate"])
    );

    // Without the bug the same crash does not make the run fail: 0/1, exit 1. One rerun with
    // --faults still reports a rate (and writes every output).
    let correct = tmp.path().join("correct");
    demo(&correct, &[], 0);
    let out = tmp.path().join("correct-with-crash");
    let o = ordeal(&[
        "replay",
        correct.to_str().unwrap(),
        "--faults",
        &sched,
        "--out",
        out.to_str().unwrap(),
        "-q",
    ]);
    let text = stdout(&o);
    assert_eq!(o.status.code(), Some(1), "{text}");
    let r = rates(&out);
    assert_eq!(
        (&r["runs"], &r["reproduced"], &r["ci_low"], &r["rate"]),
        (&1.into(), &0.into(), &0.0.into(), &0.0.into())
    );
    assert!((r["ci_high"].as_f64().unwrap() - 0.793_450_685_622_762_6).abs() < 1e-12);
    assert!(text.contains("reproduced 0/1 (0%, 95% CI 0–79%)"), "{text}");
    assert!(out.join("1/graph.dot").exists());
}

/// Processes whose command line mentions `dir` (the demo's nodes name their data dirs).
fn survivors(dir: &Path) -> Vec<String> {
    let needle = dir.display().to_string();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains(&needle))
        .collect()
}

#[test]
fn ctrl_c_stops_the_reruns_and_reports_the_finished_ones() {
    use std::io::BufRead;
    use std::time::{Duration, Instant};
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    demo(&run, &[], 0);
    let out = tmp.path().join("rates");
    let mut child = Command::new(env!("CARGO_BIN_EXE_ordeal"))
        .args(["replay", run.to_str().unwrap(), "--runs", "5", "-j", "1"])
        .args(["--out", out.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Interrupted as soon as the first rerun has ended: the second is under way.
    let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let first = lines
        .by_ref()
        .map(|l| l.unwrap())
        .find(|l| l.starts_with("rerun "))
        .unwrap();
    assert!(first.starts_with("rerun 1/5: PASS in "), "{first}");
    // SAFETY: our own child, not yet reaped (wait() comes below).
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let rest: Vec<String> = lines.map(|l| l.unwrap()).collect();
    let o = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(130), "{text}{rest:?}");
    let r = rates(&out);
    assert_eq!(r["interrupted"], true);
    let finished = r["runs"].as_u64().unwrap();
    assert!((1..5).contains(&finished), "{r}");
    assert_eq!(r["reruns"][0]["run"], 1);
    assert!(
        text.contains(&format!("interrupted: {finished} of 5 reruns finished")),
        "{text}"
    );
    assert!(!out.join("5").exists(), "no rerun starts after Ctrl-C");
    // Nothing a rerun started survives (the kernel's kills are asynchronous: poll).
    let deadline = Instant::now() + Duration::from_secs(10);
    while !survivors(&out).is_empty() && Instant::now() < deadline {
        std::thread::park_timeout(Duration::from_millis(10));
    }
    assert_eq!(survivors(&out), Vec::<String>::new());
}
