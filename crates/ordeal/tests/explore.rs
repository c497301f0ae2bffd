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
    let mut args = vec![
        "explore",
        "--demo",
        "--set",
        &set,
        "--runs",
        RUNS,
        "-j",
        "2",
        "--reruns",
        RERUNS,
        "-q",
        "--out",
        out.to_str().unwrap(),
    ];
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
    // The verdict's reasons (the workload's exit, maybe more), then the client's first line.
    assert!(sig.starts_with("fail: "), "{sig}");
    assert!(
        sig.contains("workload client ended: exit N | client: VIOLATION: op N: "),
        "{sig}"
    );
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
    assert_eq!(j["rerun_runs"], 20);
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
    assert!(junit.contains("name=\"F1: fail: "), "{junit}");
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
        stdout.contains(&format!(
            "reproduction: {verdict} ({failed}/20 reruns failed)"
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
        &["--faults", "delay"],
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
    assert!(log[2..]
        .iter()
        .all(|r| r["faults"].as_array().unwrap().len() == 1));
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
