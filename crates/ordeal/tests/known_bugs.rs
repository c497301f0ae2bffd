//! A known bug of a real system (Debian packages) that `ordeal explore` finds with the default
//! strategy (guided) and a small budget: the examples that bench/strategies.sh measures
//! (docs/bench.md, "Guided search against random"). Each campaign stops at its first failure,
//! unshrunk, and the failure must be the bug's: the workload's own report of it and the
//! history check's verdict on the same reads.

use std::path::Path;
use std::process::{Command, Output};

/// One campaign at a time: each runs several nodes at once on a shared machine.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// `ordeal explore EXAMPLE` with the default strategy, stopping at the first failure; returns
/// the output and explore.json.
fn explore(example: &str, runs: &str, jobs: &str) -> (Output, serde_json::Value) {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("c");
    let exp = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples")
        .join(example);
    let o = Command::new(env!("CARGO_BIN_EXE_ordeal"))
        .args([
            "explore",
            exp.to_str().unwrap(),
            "--runs",
            runs,
            "-j",
            jobs,
            "--stop-after",
            "1",
            "--no-shrink",
            "--reruns",
            "0",
            "-q",
            "--out",
            out.to_str().unwrap(),
        ])
        .output()
        .expect("ordeal runs");
    let j = std::fs::read(out.join("explore.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(serde_json::Value::Null);
    (o, j)
}

/// Asserts the campaign failed (exit 1), with no failing baseline, and that its first
/// failure says `violation` in the workload's lines and is not linearizable by the history.
fn assert_found(o: &Output, j: &serde_json::Value, violation: &str) {
    let stdout = String::from_utf8_lossy(&o.stdout);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(j["baseline_failed"].is_null(), "{stdout}");
    let f = &j["failures"][0];
    assert!(
        f["first_run"].as_u64() >= Some(2),
        "found after the baselines: {f}"
    );
    let lines = f["lines"].to_string();
    assert!(lines.contains(violation), "{lines}");
    let sig = f["signature"].as_str().unwrap_or_default();
    assert!(sig.contains("history (kv): not linearizable"), "{sig}");
}

#[test]
fn finds_stale_reads_from_a_redis_replica() {
    if !ordeal_test_support::installed(&["redis-server", "redis-cli"], "redis-server redis-tools") {
        return;
    }
    // Guided's first pick cuts the one link between the two nodes, in the middle of the
    // replication stream: that shows it at run 3 in every seed measured (systematic reaches
    // the link's faults at run 39).
    let (o, j) = explore("redis-replica-read.toml", "12", "2");
    assert_found(&o, &j, "VIOLATION: stale reads from the replica");
    let first = j["run_log"][2]["faults"].to_string();
    assert!(
        first.starts_with("[\"partition at primary write → replica #"),
        "{first}"
    );
}

/// Redis under three Sentinels loses writes its master acknowledged: guided's first five
/// runs cut links (which a Sentinel deployment rides out), then its systematic part crashes
/// the master after an answer to the client; restarted at once without persistence, the
/// master comes back empty before the Sentinels notice, and the replica resynchronizes from
/// it.
#[test]
fn finds_that_redis_sentinel_loses_writes_when_its_master_restarts_at_once() {
    if !ordeal_test_support::installed(&["redis-server", "redis-cli"], "redis-server redis-tools") {
        return;
    }
    let (o, j) = explore("redis-sentinel.toml", "16", "2");
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{stdout}");
    assert!(j["baseline_failed"].is_null(), "{stdout}");
    let f = &j["failures"][0];
    let sig = f["signature"].as_str().unwrap_or_default();
    assert!(sig.contains("history (kv): not linearizable"), "{sig}");
    let log = j["run_log"].as_array().unwrap();
    let faults = |r: &serde_json::Value| r["faults"].to_string();
    for r in log.iter().skip(2).take(5) {
        assert!(faults(r).starts_with("[\"partition at "), "{}", faults(r));
    }
    let first = &log[f["first_run"].as_u64().unwrap() as usize];
    assert!(
        faults(first).starts_with("[\"crash-after at r1 ") && first["status"] == "fail",
        "{first}"
    );
}
