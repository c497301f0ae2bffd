//! `ordeal explore` on the demo: each optional bug is found, shrunk and reproduced from mined
//! candidates alone; the bug-free demo gives no failure with the same budget; the outputs
//! (explore.json, junit.xml, report.html, failures/) say exactly that.

use std::path::Path;
use std::process::{Command, Output};

/// The budget of every campaign here: the bug-free demo must pass all of it.
const RUNS: &str = "40";
/// Reruns of each failure's minimal schedule (twice the product's default): a timing-dependent
/// bug reproduced 3 times in 10 (the stale read's lowest rate measured under eBPF) shows at
/// least once in all but 0.08% of campaigns.
const RERUNS: &str = "20";

fn ordeal(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ordeal"))
        .args(args)
        .output()
        .expect("ordeal runs")
}

fn json(p: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
        .unwrap()
}

fn text(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// One campaign at a time: each already runs two systems at once, and several campaigns on two
/// CPUs starve the nodes' start-up past their ready timeout (runs that end in error).
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// `ordeal explore --demo` with `bugs` and the test budget; returns the output and the
/// campaign directory.
fn explore(bugs: &str, extra: &[&str]) -> (Output, tempfile::TempDir) {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("c");
    let set = format!("bugs={bugs}");
    // `extra` may give its own budget.
    let runs = if extra.contains(&"--runs") {
        &[][..]
    } else {
        &["--runs", RUNS][..]
    };
    let mut args = vec![
        "explore",
        "--demo",
        "--set",
        &set,
        "-j",
        "2",
        "--reruns",
        RERUNS,
        "-q",
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(runs);
    args.extend_from_slice(extra);
    (ordeal(&args), tmp)
}

/// Checks a campaign that found `bug`: one distinct failure, shrunk to one fault of the
/// expected kind and place, reproduced, and reported in every output. Returns explore.json.
fn check_found(
    bug: &str,
    extra: &[&str],
    fault_prefixes: &[&str],
    symptoms: &[&str],
) -> (serde_json::Value, tempfile::TempDir) {
    let mut args = vec!["--stop-after", "1"];
    args.extend_from_slice(extra);
    let (o, tmp) = explore(bug, &args);
    let out = tmp.path().join("c");
    let stdout = String::from_utf8_lossy(&o.stdout);
    let errors = std::fs::read_to_string(out.join("explore.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .map(|j| j["errors"].to_string())
        .unwrap_or_default();
    assert_eq!(
        o.status.code(),
        Some(1),
        "{stdout}\n{}\nerrors: {errors}",
        String::from_utf8_lossy(&o.stderr)
    );
    let j = json(&out.join("explore.json"));
    assert_eq!(j["schema"], "ordeal-explore");
    assert_eq!(j["stopped"], "failures", "{stdout}");
    assert_eq!(j["errors"].as_array().unwrap().len(), 0, "{stdout}");
    let failures = j["failures"].as_array().unwrap();
    assert_eq!(failures.len(), 1, "{stdout}");
    let f = &failures[0];
    assert_eq!(f["id"], "F1");
    let sig = f["signature"].as_str().unwrap();
    // One cause: the client's exit with its VIOLATION line.
    assert!(
        sig.starts_with("workload client ended: exit 1: VIOLATION: op N: "),
        "{sig}"
    );
    assert_eq!(f["causes"], serde_json::json!([sig]));
    assert_eq!(f["above_baseline"], true);
    assert_eq!(j["baseline_failed"], serde_json::Value::Null);
    assert!(symptoms.iter().any(|s| sig.contains(s)), "{sig}");
    // Shrunk: one fault, of the kind and place that shows this bug.
    let minimal = f["minimal_faults"].as_array().unwrap();
    assert_eq!(minimal.len(), 1, "{f}");
    let m = minimal[0].as_str().unwrap();
    assert!(
        fault_prefixes.iter().any(|p| m.starts_with(p)),
        "{m} is none of {fault_prefixes:?}"
    );
    assert!(!f["original_faults"].as_array().unwrap().is_empty());
    // Reproduced: every rerun of a deterministic failure fails the same way.
    let r = &f["reproduction"];
    assert_eq!(r["runs"], 20);
    let failed = r["failed"].as_u64().unwrap();
    assert!(failed >= 1, "{r}");
    let verdict = if failed == 20 {
        "deterministic"
    } else {
        "flaky"
    };
    assert_eq!(r["verdict"], verdict);
    // The original schedule and the shrinking's candidates, 20 reruns each; the minimal one
    // is the most reproducible candidate.
    let measured = f["measured"].as_array().unwrap();
    assert_eq!(measured[0]["schedule"], "original");
    assert_eq!(f["original_reproduction"], measured[0]["reproduction"]);
    assert_eq!(j["rerun_runs"], 20 * measured.len());
    let best = measured
        .iter()
        .filter(|m| m["faults"] == f["minimal_faults"])
        .map(|m| &m["reproduction"])
        .next()
        .expect("the minimal schedule was measured");
    assert_eq!(best, r);
    // The minimal schedule on disk is the one reported, and a valid fault schedule.
    let fdir = out.join("failures/F1");
    let schedule = text(&fdir.join("schedule.toml"));
    assert_eq!(schedule, f["minimal_schedule"].as_str().unwrap());
    let count = schedule.matches("[[fault]]").count();
    assert_eq!(count, 1, "{schedule}");
    // The run the report shows is a failing rerun with its full outputs and replay record.
    let shown = out.join(f["run_dir"].as_str().unwrap());
    assert!(
        shown.starts_with(fdir.join("reruns")),
        "{}",
        shown.display()
    );
    assert_eq!(
        json(&shown.join("summary.json"))["verdict"]["status"],
        "fail"
    );
    assert!(shown.join("graph.dot").exists());
    assert!(shown.join("replay.json").exists());
    assert_eq!(
        f["replay"].as_str().unwrap(),
        format!("ordeal replay {}", shown.display())
    );
    // junit.xml: one failing test case for the one distinct failure.
    let junit = text(&out.join("junit.xml"));
    assert!(
        junit.contains("<testsuite name=\"ordeal-explore.demo-kv\" tests=\"1\" failures=\"1\""),
        "{junit}"
    );
    assert_eq!(junit.matches("<testcase ").count(), 1, "{junit}");
    assert_eq!(junit.matches("<failure ").count(), 1, "{junit}");
    assert!(
        junit.contains("name=\"F1: workload client ended: exit 1: VIOLATION: "),
        "{junit}"
    );
    // The first hit's cause, with the log line it was read from.
    assert!(
        junit.contains("\ncause: workload client (exit 1): VIOLATION: "),
        "{junit}"
    );
    assert!(junit.contains("(logs/client.stdout:"), "{junit}");
    assert_eq!(f["cause"]["kind"], "workload", "{f}");
    assert_eq!(f["cause"]["log"]["file"], "logs/client.stdout", "{f}");
    // report.html: self-contained, with the failure, its schedule, graph, logs and replay.
    let html = text(&out.join("report.html"));
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(
        !html.contains("http://") || !html.contains("<script"),
        "no script"
    );
    assert!(
        !html.contains("<link") && !html.contains("src=\"http"),
        "no external asset"
    );
    assert!(html.contains("1 distinct failure(s)"));
    assert!(html.contains(&format!("ordeal replay {}", shown.display())));
    assert!(html.contains("Minimal schedule"));
    assert!(
        html.contains("fill=\"#d1495b\""),
        "faulted events highlighted"
    );
    assert!(html.contains("client.stdout"));
    assert!(
        html.contains("<tr><th>cause</th><td>workload client (exit 1): VIOLATION: "),
        "the cause in the failure's card"
    );
    // The failing run's snapshot (threads and stacks of every node), inline.
    assert!(html.contains("Snapshot on failure"), "snapshot embedded");
    assert!(html.contains("== node n1"), "stacks of a live node");
    // Symbolized and demangled, in the demo's own code (the ordeal binary: a PIE whose text
    // segment is not at its file offset).
    assert!(html.contains("ordeal_demo::node::"), "demo frames named");
    assert!(html.contains(&format!("{verdict} ({failed}/20 reruns failed)")));
    // The terminal summary.
    assert!(stdout.contains("F1 ("), "{stdout}");
    assert!(
        stdout.contains("\n    cause: workload client (exit 1): VIOLATION: "),
        "{stdout}"
    );
    let o = &f["original_reproduction"]["failed"];
    assert!(
        stdout.contains(&format!(
            "reproduction: {verdict} ({failed}/20 reruns failed); original {o}/20, minimal {failed}/20"
        )),
        "{stdout}"
    );
    (j, tmp)
}

#[test]
fn finds_ack_before_replicate_and_replays_it() {
    let (j, _tmp) = check_found(
        "ack-before-replicate",
        &[],
        // The write is lost when the primary dies after its OK went out and before the
        // replication did: after the reply, or just before the replication message.
        &[
            "crash-after at n0 sendto → client #",
            "crash-before at n0 sendto → n",
        ],
        &["GET kN from node N"],
    );
    // The failing run replays: same firing, same verdict.
    let f = &j["failures"][0];
    if f["reproduction"]["verdict"] == "deterministic" {
        let cmd = f["replay"].as_str().unwrap();
        let dir = cmd.strip_prefix("ordeal replay ").unwrap();
        let r = ordeal(&["replay", dir, "-q"]);
        assert_eq!(
            r.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&r.stdout)
        );
    }
}

#[test]
fn finds_stale_read() {
    check_found(
        "stale-read",
        // A backup answers while behind. Delayed replication shows it in 6 to 10 reruns of 10
        // under ptrace, 3 to 6 under eBPF (measured, debug build); it also shows through a failover after a crash of the
        // primary, but in about 2 of 10, too rarely for a test of reproduction: delays only.
        // Systematic: each delay shows it only some of the time, and guided puts off the
        // points of a kind of delay that showed nothing new, so it needs more tries (first
        // failing run 5, 20, 11 against systematic's 4, 8, 8, measured; none in 40 once under
        // the loaded suite). Systematic's first failing run on a quiet machine: 13, 5, 5, 8,
        // 4; once none in 40 under the loaded suite (CI, a campaign beside it): the budget is
        // 100, and the campaign stops at its first failure.
        &[
            "--faults",
            "delay",
            "--strategy",
            "systematic",
            "--runs",
            "100",
        ],
        &["delay at n"],
        // The backup is behind: an older value, or none yet.
        &[
            "returned vN, but the last acknowledged SET was vN",
            "returned NOTFOUND, but SET kN vN was acknowledged",
        ],
    );
}

#[test]
fn finds_no_short_read_handling() {
    check_found(
        "no-short-read-handling",
        &[],
        &["short-io at n0 recvfrom ← client #"],
        &["GET kN from node N"],
    );
}

#[test]
fn bug_free_demo_passes_the_same_budget() {
    let (o, tmp) = explore("", &[]);
    let out = tmp.path().join("c");
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let j = json(&out.join("explore.json"));
    // The demo's [explore] set, then --set; recorded and shown in the report.
    assert_eq!(
        j["set"],
        serde_json::json!(["ops=10", "peer_timeout_ms=100", "bugs="])
    );
    assert!(text(&out.join("report.html"))
        .contains("<th>variables set</th><td>ops=10, peer_timeout_ms=100, bugs=</td>"));
    let replay = json(&out.join("runs/000000/replay.json"));
    assert_eq!(replay["set"], j["set"]);
    assert_eq!(j["runs"], 40);
    assert_eq!(j["stopped"], "runs");
    assert_eq!(j["baseline_runs"], 2);
    assert_eq!(j["baseline_failed"], serde_json::Value::Null);
    assert_eq!(j["baselines"]["runs"], 2);
    assert_eq!(j["baselines"]["failed"], 0);
    assert_eq!(j["baselines"]["reruns"], serde_json::Value::Null);
    let in_baselines: u64 = j["baseline_behaviours"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["runs"].as_u64().unwrap())
        .sum();
    assert_eq!(in_baselines, 2);
    assert_eq!(j["failures"].as_array().unwrap().len(), 0, "{stdout}");
    assert_eq!(j["errors"].as_array().unwrap().len(), 0, "{}", j["errors"]);
    assert_eq!(j["shrink_runs"], 0);
    assert_eq!(j["rerun_runs"], 0);
    assert_eq!(j["candidates"]["tried"], 38);
    let disc = j["discovery"].as_array().unwrap();
    assert_eq!(disc.len(), 40);
    assert_eq!(disc[39][0], 40);
    assert_eq!(disc[39][1], j["unique_behaviours"]);
    let runs: u64 = j["behaviours"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["runs"].as_u64().unwrap())
        .sum();
    assert_eq!(runs, 40);
    let log = j["run_log"].as_array().unwrap();
    assert_eq!(log.len(), 40);
    assert!(log[..2]
        .iter()
        .all(|r| r["faults"].as_array().unwrap().is_empty()));
    // The default strategy (guided) cuts first, one pick per node: both links of the
    // primary n0 (its replication streams), then n0 alone; then single faults and, one pick
    // in ten, a pair.
    let first = |r: &serde_json::Value| r["faults"][0].as_str().unwrap().to_string();
    let mut links = [first(&log[2]), first(&log[3])];
    links.sort();
    for (link, backup) in links.iter().zip(["n1", "n2"]) {
        let cut = format!("partition at n0 sendto → {backup} #");
        assert!(link.starts_with(&cut), "{links:?}");
    }
    assert!(first(&log[4]).starts_with("isolate at n0 "), "{}", log[4]);
    assert!(log[2..]
        .iter()
        .all(|r| (1..=2).contains(&r["faults"].as_array().unwrap().len())));
    assert!(log.iter().all(|r| r["status"] == "pass"));
    let junit = text(&out.join("junit.xml"));
    assert!(junit.contains("tests=\"1\" failures=\"0\""), "{junit}");
    assert!(junit.contains("name=\"no failure in 40 runs\""), "{junit}");
    let html = text(&out.join("report.html"));
    assert!(html.contains("no failure found in 40 runs"));
    assert!(html.contains("Runs per unique behaviour"));
    assert!(html.contains("Discovery: unique behaviours after each run"));
    assert!(out.join("behaviours.svg").exists() && out.join("discovery.svg").exists());
    assert!(
        stdout.contains("demo-kv: 40 runs (runs stopped)"),
        "{stdout}"
    );
}

#[test]
fn finds_that_redis_can_lose_an_acknowledged_write_on_failover() {
    if !ordeal_test_support::installed(&["redis-server", "redis-cli"], "redis-server redis-tools") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("c");
    let exp = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/redis-failover.toml");
    let o = {
        let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
        ordeal(&[
            "explore",
            exp.to_str().unwrap(),
            "--runs",
            "80",
            "-j",
            "2",
            "--reruns",
            "3",
            "--stop-after",
            "1",
            "-q",
            "--out",
            out.to_str().unwrap(),
        ])
    };
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{stdout}");
    let j = json(&out.join("explore.json"));
    let f = &j["failures"][0];
    let lines = f["lines"].to_string();
    assert!(
        lines.contains("VIOLATION: acknowledged writes lost after failover"),
        "{lines}"
    );
    // Shrunk to one fault: the replication link cut (the replica lags), and deterministic.
    let minimal: Vec<&str> = f["minimal_faults"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|x| x.as_str())
        .collect();
    assert_eq!(minimal.len(), 1, "{minimal:?}");
    assert!(
        minimal[0].starts_with("partition at primary") && minimal[0].contains("replica"),
        "{minimal:?}"
    );
    // Reproduced on rerun (deterministic here when the machine is quiet; under load a rerun's
    // timing can differ, which the campaign reports as flaky with its rate).
    assert!(f["reproduction"]["failed"].as_u64() >= Some(1), "{f}");
}

/// examples/demo-kv.toml with `replace` (a `[[workload]]` or `[check]` table, TOML text) put
/// before its `[explore]` table (and instead of its workload when `replace` has one), written
/// into `dir`.
fn demo_with(dir: &Path, replace: &str) -> std::path::PathBuf {
    let src = text(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/demo-kv.toml"));
    let explore = src.find("# `ordeal explore` on this system").unwrap();
    let head = if replace.contains("[[workload]]") {
        &src[..src.find("[[workload]]").unwrap()]
    } else {
        &src[..explore]
    };
    let p = dir.join("demo.toml");
    std::fs::write(&p, format!("{head}{replace}\n{}", &src[explore..])).unwrap();
    p
}

#[test]
fn a_failing_baseline_is_said_first_and_credits_no_fault() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("c");
    // The bug-free demo behind a harness that always fails: every run fails, without a fault.
    let exp = demo_with(
        tmp.path(),
        r#"[[workload]]
name = "client"
argv = ["sh", "-c", "\"$0\" kv client --nodes \"$1\" --ops \"$2\" --seed 1; echo 'HARNESS: the wrapper always exits 1'; exit 1",
        "{ordeal}", "{host.n0}:{port.n0},{host.n1}:{port.n1},{host.n2}:{port.n2}", "{var.ops}"]
"#,
    );
    let o = {
        let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
        ordeal(&[
            "explore",
            exp.to_str().unwrap(),
            "--runs",
            "12",
            "-j",
            "2",
            "--reruns",
            "5",
            "-q",
            "--out",
            out.to_str().unwrap(),
        ])
    };
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{stdout}");
    let alarm = "BASELINE FAILED: 2 of 2 fault-free runs fail (workload client ended: exit 1: HARNESS: the wrapper always exits N) — the system or the harness fails without any fault: fix that first";
    // Said first, with the fault-free rate measured over 5 reruns.
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[0], alarm, "{stdout}");
    assert_eq!(
        lines[1],
        "  fault-free failure rate: 5/5 (95% 0.57–1.00) reruns of the fault-free schedule"
    );
    let j = json(&out.join("explore.json"));
    assert_eq!(j["baseline_failed"], alarm);
    assert_eq!(j["errors"].as_array().unwrap().len(), 0, "{}", j["errors"]);
    let b = &j["baselines"];
    assert_eq!(b["runs"], 2);
    assert_eq!(b["failed"], 2);
    let cause = "workload client ended: exit 1: HARNESS: the wrapper always exits N";
    assert_eq!(b["causes"], serde_json::json!([cause]));
    assert_eq!(b["reruns"]["runs"], 5);
    assert_eq!(b["reruns"]["failed"], 5);
    assert_eq!(b["rerun_failures"][cause], 5);
    for (i, r) in b["outcomes"].as_array().unwrap().iter().enumerate() {
        assert_eq!(r["run"], i);
        assert_eq!(r["status"], "fail");
        assert_eq!(r["causes"], serde_json::json!([cause]));
    }
    // One cause, one failure: every run, none credited to its faults.
    let failures = j["failures"].as_array().unwrap();
    assert_eq!(failures.len(), 1, "{stdout}");
    let f = &failures[0];
    assert_eq!(f["signature"], cause);
    assert_eq!(f["hits"], 12);
    assert_eq!(f["without_faults"], true);
    assert_eq!(f["above_baseline"], false);
    assert_eq!(f["minimal_faults"], serde_json::json!([]));
    assert_eq!(f["reproduction"], b["reruns"]);
    assert_eq!(f["fault_free"], b["reruns"]);
    assert_eq!(j["shrink_runs"], 0);
    assert_eq!(j["rerun_runs"], 5);
    for i in 0..5 {
        assert!(out
            .join(format!("baselines/reruns/{i:02}/summary.json"))
            .is_file());
    }
    let credit = "not above the fault-free rate: not credited to its faults";
    assert!(
        stdout.contains(&format!(
            "  F1 (12 hits): {cause}\n    cause: workload client (exit 1)\n    fails without any fault, fault-free rate 5/5 (95% 0.57–1.00): {credit}\n    minimal: no fault\n"
        )),
        "{stdout}"
    );
    // The report: the alarm above everything else.
    let html = text(&out.join("report.html"));
    let at = html
        .find(&format!("<p class=\"alarm\">{alarm}</p>"))
        .unwrap();
    assert!(at < html.find("<h2>Summary</h2>").unwrap());
    assert!(html.contains(credit));
    assert!(text(&out.join("junit.xml")).contains(alarm));
}

#[test]
fn two_causes_are_two_failures_each_with_its_own_minimal_schedule() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("c");
    // A check that fails when a node was started twice (a crash fault's restart), and the
    // client's violation when a short read cuts a request (no-short-read-handling).
    let exp = demo_with(
        tmp.path(),
        r#"[check]
argv = ["sh", "-c", "for n in n0 n1 n2; do k=$(grep -c listening \"$ORDEAL_RUN_DIR/logs/$n.stdout\"); if [ \"$k\" -gt 1 ]; then echo \"RESTARTED: $n started $k times\"; exit 1; fi; done"]
"#,
    );
    let o = {
        let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
        ordeal(&[
            "explore",
            exp.to_str().unwrap(),
            "--set",
            "bugs=no-short-read-handling",
            "--faults",
            "crash-after,short-io",
            "--runs",
            "40",
            "-j",
            "2",
            "--reruns",
            "5",
            "--stop-after",
            "2",
            "-q",
            "--out",
            out.to_str().unwrap(),
        ])
    };
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{stdout}");
    let j = json(&out.join("explore.json"));
    assert_eq!(j["stopped"], "failures", "{stdout}");
    assert_eq!(j["baseline_failed"], serde_json::Value::Null);
    let failures = j["failures"].as_array().unwrap();
    assert_eq!(failures.len(), 2, "{stdout}");
    let by_cause = |prefix: &str| {
        failures
            .iter()
            .find(|f| f["signature"].as_str().unwrap().starts_with(prefix))
            .unwrap_or_else(|| panic!("no failure caused by {prefix}: {stdout}"))
    };
    let check = by_cause("check failed");
    let client = by_cause("workload client");
    assert_eq!(
        check["causes"],
        serde_json::json!(["check failed (exit 1): RESTARTED: nN started N times"])
    );
    let c = client["causes"].as_array().unwrap();
    assert_eq!(c.len(), 1, "{c:?}");
    assert!(
        c[0].as_str()
            .unwrap()
            .starts_with("workload client ended: exit 1: VIOLATION: op N: GET kN from node N"),
        "{c:?}"
    );
    // Each shrunk on its own, to the one fault that causes it.
    for (f, kind) in [
        (check, "crash-after at n"),
        (client, "short-io at n0 recvfrom"),
    ] {
        let minimal = f["minimal_faults"].as_array().unwrap();
        assert_eq!(minimal.len(), 1, "{f}");
        assert!(minimal[0].as_str().unwrap().starts_with(kind), "{f}");
        let id = f["id"].as_str().unwrap();
        let schedule = text(&out.join(format!("failures/{id}/schedule.toml")));
        assert_eq!(schedule, f["minimal_schedule"].as_str().unwrap());
        assert_eq!(f["above_baseline"], true);
        assert_eq!(f["fault_free"], serde_json::Value::Null);
        assert!(f["reproduction"]["failed"].as_u64() >= Some(1), "{f}");
        // The run shown is one of its own reruns, failing of its own cause.
        let shown = j["run_log"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["dir"] == f["run_dir"])
            .unwrap_or_else(|| panic!("{f}"));
        assert!(
            shown["dir"]
                .as_str()
                .unwrap()
                .starts_with(&format!("failures/{id}/reruns/")),
            "{shown}"
        );
        assert_eq!(shown["signature"], f["signature"]);
    }
    assert_ne!(check["minimal_schedule"], client["minimal_schedule"]);
}

#[test]
fn the_report_opens_with_its_failures_their_raw_lines_and_labelled_arrows() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("c");
    let o = ordeal(&[
        "explore",
        "--demo",
        "--set",
        "bugs=ack-before-replicate",
        "--runs",
        "20",
        "-j",
        "2",
        "--reruns",
        "2",
        "-q",
        "--out",
        out.to_str().unwrap(),
    ]);
    let j = json(&out.join("explore.json"));
    assert_eq!(o.status.code(), Some(1), "{j}");
    let f = &j["failures"][0];
    let html = text(&out.join("report.html"));
    // The failure's card comes first, the settings last (collapsed).
    let card = html.find("<div class=\"card\" id=\"F1\">").expect("a card");
    let settings = html.find("<details id=\"settings\">").expect("settings");
    assert!(card < html.find("<h2>Behaviours</h2>").unwrap());
    assert!(card < settings);
    assert!(settings > html.find("<h2>Runs</h2>").unwrap());
    // The raw log line with its file and line, next to the normalized signature.
    let raw = f["cause"]["log"]["text"].as_str().unwrap();
    let at = format!("logs/client.stdout:{}", f["cause"]["log"]["line"]);
    let esc = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    };
    let want = format!(
        "<tr><th>raw line</th><td><code class=\"raw\">{}</code> <span class=\"at\">{at}</span></td></tr>\n\
         <tr><th>signature</th><td><code class=\"signature\">{}</code></td></tr>",
        esc(raw),
        esc(f["signature"].as_str().unwrap())
    );
    assert!(html.contains(&want), "{want}\n{html}");
    assert!(raw.starts_with("VIOLATION: "), "{raw}");
    assert!(html[card..settings].contains(&format!(
        "<tr><th>replay</th><td><code>{}</code>",
        esc(f["replay"].as_str().unwrap())
    )));
    // The sequence diagram: arrows labelled with what they said, the violating GET in red.
    assert!(html.contains(">GET k"), "a decoded request on its arrow");
    assert!(
        html.contains("<line class=\"violation\""),
        "the violating operation"
    );
    assert!(
        html.contains("<text class=\"violation\"") && html.contains(">NOTFOUND</text>"),
        "its answer, labelled"
    );
}
