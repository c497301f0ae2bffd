//! `ordeal crash --cluster` (issue 16, "whole clusters"): a simultaneous power loss of every
//! node, on Debian's etcd and redis-server. Each experiment (examples/crash/) has a workload
//! printing every write the system acknowledged; after the power loss the nodes restart
//! together on their crash states and the crash check reads every write acknowledged before it
//! (`ORDEAL_CRASH_STDOUT`). Without the programs a test prints a note and passes, unless `CI`
//! is `true`: CI installs them (.ci/run).

use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;

fn example(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("../../examples/crash/{name}"))
}

/// `ordeal crash EXAMPLE ARGS -q`, with `--cluster` unless ARGS name `--nodes`: the exit status, crash.json, the output and the
/// directory holding the run.
fn crash_cluster(name: &str, args: &[&str]) -> (Option<i32>, Value, String, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let o = Command::new(env!("CARGO_BIN_EXE_ordeal"))
        .arg("crash")
        .arg(example(name))
        .args(["-q", "--out", out.to_str().unwrap()])
        .args(args)
        .args((!args.contains(&"--nodes")).then_some("--cluster"))
        .output()
        .unwrap();
    let report = std::fs::read(out.join("crash.json"))
        .map(|b| serde_json::from_slice(&b).unwrap())
        .unwrap_or(Value::Null);
    let text = format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    (o.status.code(), report, text, dir)
}

fn strs(v: &Value) -> Vec<&str> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap())
        .collect()
}

/// Per node of a vulnerability's example: the node, and the lost operations' `op`s.
fn lost(v: &Value) -> Vec<(String, Vec<String>)> {
    v["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            let ops = n["lost"]
                .as_array()
                .unwrap()
                .iter()
                .map(|o| o["op"].as_str().unwrap().to_string())
                .collect();
            (n["node"].as_str().unwrap().to_string(), ops)
        })
        .collect()
}

#[test]
fn etcd_without_fsync_loses_acknowledged_writes_in_a_power_loss() {
    if !ordeal_test_support::installed(&["etcd", "etcdctl"], "etcd-server etcd-client") {
        return;
    }
    // The self-check state, then the worst power loss: every member loses what it had not
    // synced, which with --unsafe-no-fsync is everything it wrote.
    let (code, r, out, _dir) = crash_cluster(
        "etcd-cluster.toml",
        &["--budget", "2", "--set", "unsafe_no_fsync=true"],
    );
    assert_eq!(code, Some(1), "{out}");
    assert_eq!(r["verdict"], "vulnerable", "{out}");
    assert_eq!(strs(&r["nodes"]), ["e1", "e2", "e3"]);
    assert_eq!(r["checked"], 2, "{out}");
    let v = &r["vulnerabilities"][0];
    assert_eq!(v["kind"], "durable-only", "{out}");
    assert_eq!(strs(&v["models"]), ["strict", "ext4-ordered"], "{out}");
    let lost = lost(v);
    assert_eq!(
        lost.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
        ["e1", "e2", "e3"]
    );
    // Every member lost the writes to its write-ahead log, where etcd keeps what it
    // acknowledged.
    for (node, ops) in &lost {
        assert!(
            ops.iter()
                .any(|o| o.starts_with("write member/wal/") && o.contains(".wal [")),
            "{node}: {ops:?}\n{out}"
        );
    }
    assert!(std::path::Path::new(v["example"].as_str().unwrap()).is_dir());
}

#[test]
fn default_etcd_keeps_acknowledged_writes_in_a_power_loss() {
    if !ordeal_test_support::installed(&["etcd", "etcdctl"], "etcd-server etcd-client") {
        return;
    }
    // The self-check, then the three cuts with the most not yet durable, every member
    // losing all of it.
    let (code, r, out, _dir) = crash_cluster("etcd-cluster.toml", &["--budget", "4"]);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(r["verdict"], "clean", "{out}");
    assert_eq!(r["checked"], 4, "{out}");
    assert_eq!(r["failed"], 0, "{out}");
    assert_eq!(r["vulnerabilities"].as_array().unwrap().len(), 0, "{out}");
}

#[test]
fn redis_primary_and_replica_with_everysec_lose_acknowledged_writes() {
    if !ordeal_test_support::installed(&["redis-server", "redis-cli"], "redis-server redis-tools") {
        return;
    }
    let (code, r, out, _dir) = crash_cluster("redis-replicated.toml", &["--budget", "6"]);
    assert_eq!(code, Some(1), "{out}");
    assert_eq!(r["verdict"], "vulnerable", "{out}");
    assert_eq!(strs(&r["nodes"]), ["primary", "replica"]);
    let v = &r["vulnerabilities"][0];
    assert_eq!(
        v["cause"],
        "data written to appendonlydir/appendonly.aof.*.incr.aof not persisted: not synced before the crash",
        "{out}"
    );
    assert_eq!(v["kind"], "durable-only", "{out}");
    // The check names a key acknowledged before the power loss and gone after it.
    let error = v["error"].as_str().unwrap();
    assert!(error.contains("was acknowledged as v"), "{out}");
    // The primary lost appends to its append-only file. The replica may have lost some too
    // (the replica's may still be the temporary file of its first rewrite), or nothing when
    // its own once-a-second fsync happened to come last: restarted, it resynchronizes from
    // the primary and adopts what the primary kept, so the write is lost either way.
    let losses = lost(v);
    let aof = |ops: &[String]| {
        ops.iter()
            .any(|o| o.starts_with("write appendonlydir/") && o.contains(".aof"))
    };
    let primary = losses.iter().find(|(n, _)| n == "primary");
    assert!(
        primary.is_some_and(|(_, ops)| aof(ops)),
        "{losses:?}\n{out}"
    );
    for (node, ops) in &losses {
        assert!(ops.is_empty() || aof(ops), "{node}: {ops:?}\n{out}");
    }
    // The replica alone losing power loses nothing acknowledged: the primary (restarted on
    // its real final data dir) still has every write and the replica resynchronizes from it.
    let (code, r, out, _dir) = crash_cluster(
        "redis-replicated.toml",
        &["--nodes", "replica", "--budget", "4"],
    );
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(r["verdict"], "clean", "{out}");
    assert_eq!(strs(&r["nodes"]), ["replica"]);
    assert_eq!(r["checked"], 4, "{out}");
}

#[test]
fn redis_with_appendfsync_always_keeps_acknowledged_writes_in_a_power_loss() {
    if !ordeal_test_support::installed(&["redis-server", "redis-cli"], "redis-server redis-tools") {
        return;
    }
    let (code, r, out, _dir) = crash_cluster("redis-aof.toml", &["--budget", "40"]);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(r["verdict"], "clean", "{out}");
    assert_eq!(strs(&r["nodes"]), ["redis"]);
    assert_eq!(r["checked"], 40, "{out}");
    assert_eq!(r["failed"], 0, "{out}");
    // The same server acknowledging before its fsync loses writes: the search would see it.
    let (code, r, out, _dir) = crash_cluster(
        "redis-aof.toml",
        &["--budget", "3", "--set", "appendfsync=no"],
    );
    assert_eq!(code, Some(1), "{out}");
    assert_eq!(r["verdict"], "vulnerable", "{out}");
}
