//! Faults applied by `ordeal run --faults`: exact firing points, verdicts both ways.

mod common;
use common::{events, summary};

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

/// Runs the demo with the crash-after-ack schedule and the given bugs.
fn demo_crash(bugs: &str) -> (Output, tempfile::TempDir) {
    demo_with("examples/faults/crash-primary-after-ack.toml", bugs)
}

/// `ordeal demo --faults SCHEDULE --out RUN -q EXTRA...`.
fn demo_faults(schedule: &str, run: &str, extra: &[&str]) -> Output {
    let mut args = vec!["demo", "--faults", schedule, "--out", run, "-q"];
    args.extend_from_slice(extra);
    ordeal(&args)
}

/// Runs the demo with an example schedule and the given bugs.
fn demo_with(schedule: &str, bugs: &str) -> (Output, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let sched = example(schedule);
    let o = demo_faults(
        sched.to_str().unwrap(),
        out.to_str().unwrap(),
        &["--set", &format!("bugs={bugs}")],
    );
    (o, dir)
}

#[test]
fn crash_after_ack_passes_the_correct_store_and_fails_ack_before_replicate() {
    let (o, dir) = demo_crash("");
    let run = dir.path().join("run");
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let evs = events(&run);
    // Exactly one event carries the fault: n0's 8th send to the client, and n0 never acts again.
    let marked: Vec<&serde_json::Value> = evs.iter().filter(|e| e.get("fault").is_some()).collect();
    assert_eq!(marked.len(), 1);
    let m = marked[0];
    assert_eq!(m["fault"], "crash-primary: crash n0 after");
    assert_eq!(
        (m["node"].as_str(), m["sock"]["peer_node"].as_str()),
        (Some("n0"), Some("client"))
    );
    let sends_before: usize = evs
        .iter()
        .filter(|e| e["seq"].as_u64() <= m["seq"].as_u64())
        .filter(|e| e["node"] == "n0" && e["class"] == "data" && e["sock"]["peer_node"] == "client")
        .filter(|e| ["write", "sendto", "sendmsg", "writev"].contains(&e["call"].as_str().unwrap()))
        .count();
    assert_eq!(sends_before, 8);
    // Nothing n0 starts after the crash: what follows is its threads dying, or calls other
    // threads had entered before the kill and that completed with it.
    let killed_at = m["ts"].as_u64().unwrap() + m["dur"].as_u64().unwrap();
    let late: Vec<&serde_json::Value> = evs
        .iter()
        .filter(|e| e["seq"].as_u64() > m["seq"].as_u64() && e["node"] == "n0")
        .filter(|e| !(e["call"] == "exit" && e["signal"] == "SIGKILL"))
        .filter(|e| e["ts"].as_u64().unwrap() > killed_at)
        .collect();
    assert!(late.is_empty(), "{late:#?}");
    let applied = std::fs::read_to_string(run.join("schedule.applied.toml")).unwrap();
    assert!(
        applied.contains(&format!("seq = {}\n", m["seq"])),
        "{applied}"
    );
    assert!(applied.contains("fired = true"));
    let s = summary(&run);
    assert_eq!(s["verdict"]["status"], "pass");

    // The same crash point with the bug: the acknowledged write is lost and the client sees it.
    let (o, dir) = demo_crash("ack-before-replicate");
    let run = dir.path().join("run");
    assert_eq!(o.status.code(), Some(1));
    let s = summary(&run);
    assert_eq!(s["verdict"]["status"], "fail");
    assert_eq!(s["verdict"]["reasons"][0], "workload client ended: exit 1");
    let client = std::fs::read_to_string(run.join("logs/client.stdout")).unwrap();
    assert!(client.contains("VIOLATION"), "{client}");
}

#[test]
fn injected_connect_error_is_marked_and_survived() {
    let dir = tempfile::tempdir().unwrap();
    let sched = dir.path().join("refuse.toml");
    std::fs::write(
        &sched,
        "[[fault]]\nname = \"refuse\"\nkind = \"fail\"\nerrno = \"ECONNREFUSED\"\n\
         trigger = { nth = 1, node = \"client\", call = \"connect\" }\n",
    )
    .unwrap();
    let run = dir.path().join("run");
    let o = demo_faults(
        sched.to_str().unwrap(),
        run.to_str().unwrap(),
        &["--max-graph-events", "1000", "--set", "ops=2"],
    );
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let evs = events(&run);
    let first = evs
        .iter()
        .find(|e| e["node"] == "client" && e["call"] == "connect")
        .unwrap();
    assert_eq!(first["fault"], "refuse: fail ECONNREFUSED");
    assert_eq!(
        (first["ret"].as_i64(), first["errno"].as_str()),
        (Some(-111), Some("ECONNREFUSED"))
    );
    assert_eq!(evs.iter().filter(|e| e.get("fault").is_some()).count(), 1);
    // The faulted event stands out in the pictures.
    let dot = std::fs::read_to_string(run.join("graph.dot")).unwrap();
    let line = format!("e{} [label=", first["seq"]);
    let node = dot
        .lines()
        .find(|l| l.trim_start().starts_with(&line))
        .unwrap();
    assert!(
        node.contains("⚡ refuse: fail ECONNREFUSED") && node.contains("#dc2626"),
        "{node}"
    );
    let chrome: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("trace.json")).unwrap()).unwrap();
    let slice = chrome["traceEvents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["args"]["fault"] == "refuse: fail ECONNREFUSED")
        .unwrap();
    assert_eq!(slice["name"], "connect ⚡ refuse: fail ECONNREFUSED");
    assert_eq!(slice["cname"], "terrible");
}

#[test]
fn bad_or_unsupported_schedules_are_refused_before_anything_starts() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "[[fault]]\nkind = \"crash\"\nnode = \"nope\"\ntrigger = { nth = 1, node = \"n0\", call = \"write\" }\n",
            "bad.toml:3:8:",
        ),
    ];
    for (text, want) in cases {
        let sched = dir.path().join("bad.toml");
        std::fs::write(&sched, text).unwrap();
        let run = dir.path().join("run");
        let o = demo_faults(sched.to_str().unwrap(), run.to_str().unwrap(), &[]);
        assert_eq!(o.status.code(), Some(2));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(want), "{err}");
        assert!(!run.exists());
    }
}

#[test]
fn short_read_passes_the_correct_store_and_fails_no_short_read_handling() {
    let (o, dir) = demo_with("examples/faults/short-read.toml", "");
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let evs = events(&dir.path().join("run"));
    let cut = evs.iter().find(|e| e.get("fault").is_some()).unwrap();
    assert_eq!(cut["fault"], "short-read: short-io 8");
    assert_eq!(
        (cut["len"].as_u64(), cut["ret"].as_i64()),
        (Some(8), Some(8))
    );
    assert_eq!(
        (cut["node"].as_str(), cut["call"].as_str()),
        (Some("n0"), Some("recvfrom"))
    );

    let (o, dir) = demo_with("examples/faults/short-read.toml", "no-short-read-handling");
    assert_eq!(o.status.code(), Some(1));
    let client = std::fs::read_to_string(dir.path().join("run/logs/client.stdout")).unwrap();
    assert!(
        client.contains("GET k2 from node 0")
            && client.contains("returned v, but the last acknowledged SET was v0"),
        "{client}"
    );
}

#[test]
fn a_crashed_node_restarts_on_its_data_and_rejoins() {
    let dir = tempfile::tempdir().unwrap();
    let sched = dir.path().join("restart.toml");
    let base = std::fs::read_to_string(example("examples/faults/crash-primary-after-ack.toml"))
        .unwrap()
        .replace("trigger =", "restart_after = \"200ms\"\ntrigger =");
    std::fs::write(&sched, base).unwrap();
    let run = dir.path().join("run");
    let o = demo_faults(sched.to_str().unwrap(), run.to_str().unwrap(), &[]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let evs = events(&run);
    let spawns: Vec<&serde_json::Value> = evs
        .iter()
        .filter(|e| e["node"] == "n0" && e["call"] == "spawn")
        .collect();
    assert_eq!(
        spawns.len(),
        2,
        "started, then started again after the crash"
    );
    let crash = evs.iter().find(|e| e.get("fault").is_some()).unwrap();
    assert!(spawns[1]["seq"].as_u64() > crash["seq"].as_u64());
    // Both incarnations ran on the same data dir, the second recovered from it.
    assert_eq!(spawns[0]["argv"], spawns[1]["argv"]);
    let s = summary(&run);
    let n0 = s["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == "n0")
        .unwrap();
    assert_eq!(n0["process_count"], 2, "{n0}");
    assert_eq!(s["verdict"]["status"], "pass");
    let log = std::fs::read_to_string(run.join("logs/n0.stdout")).unwrap();
    let lines: Vec<&str> = log.lines().filter(|l| !l.contains("listening")).collect();
    assert_eq!(lines, ["node 0 is primary", "node 0 joined primary 1"]);
}

#[test]
fn pause_stops_a_node_for_its_duration_and_time_triggers_fire_after_the_workload_starts() {
    let dir = tempfile::tempdir().unwrap();
    let sched = dir.path().join("pause.toml");
    std::fs::write(
        &sched,
        r#"[[fault]]
name = "pause-n1"
kind = "pause"
node = "n1"
duration = "600ms"
trigger = { nth = 3, node = "n0", class = "data", direction = "send", peer = "n1" }
[[fault]]
name = "late-crash"
kind = "crash"
node = "n2"
trigger = { after = "150ms" }
"#,
    )
    .unwrap();
    let run = dir.path().join("run");
    // A time trigger fires only while the workload runs: 400 operations take well over
    // 150 ms (40 can finish before it on a fast run).
    let o = demo_faults(
        sched.to_str().unwrap(),
        run.to_str().unwrap(),
        &["--set", "ops=400"],
    );
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let evs = events(&run);
    let find = |f: &dyn Fn(&serde_json::Value) -> bool| evs.iter().find(|e| f(e)).unwrap().clone();
    let pause = find(&|e| e["fault"] == "pause-n1: pause n1 before");
    let resume = find(&|e| e["fault"] == "by pause-n1: resume n1");
    let ms = |e: &serde_json::Value| e["ts"].as_u64().unwrap() / 1_000_000;
    assert!(
        ms(&resume) >= ms(&pause) + 600,
        "paused {} ms",
        ms(&resume) - ms(&pause)
    );
    // n1 did nothing while stopped (allowing for calls already under way at the stop).
    assert!(!evs.iter().any(|e| e["node"] == "n1"
        && e["call"] != "fault"
        && ms(e) > ms(&pause) + 50
        && ms(e) < ms(&resume)));
    let crash = find(&|e| e["fault"] == "late-crash: crash n2");
    assert_eq!(crash["call"], "fault");
    let workload = find(&|e| e["node"] == "client" && e["call"] == "spawn");
    assert!(ms(&crash) >= ms(&workload) + 150);
    let applied = std::fs::read_to_string(run.join("schedule.applied.toml")).unwrap();
    assert_eq!(applied.matches("fired = true").count(), 2, "{applied}");
    assert!(
        applied.contains("detail = \"crash n2 (time trigger)\""),
        "{applied}"
    );
}

#[test]
fn replay_runs_again_and_compares_firings_and_verdict() {
    let (o, dir) = demo_crash("ack-before-replicate");
    assert_eq!(o.status.code(), Some(1));
    let run = dir.path().join("run");
    let again = dir.path().join("again");
    let o = ordeal(&[
        "replay",
        run.to_str().unwrap(),
        "--out",
        again.to_str().unwrap(),
        "-q",
    ]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{text}");
    assert!(text.contains("faults   same firings"), "{text}");
    assert!(
        text.contains("crash-primary fired=true node=n0 crash n0 after at sendto"),
        "{text}"
    );
    assert!(text.contains("verdict  fail → fail (same)"), "{text}");
    // The replay is a run of its own, replayable in turn.
    assert!(again.join("replay.json").exists() && again.join("schedule.applied.toml").exists());
}

#[test]
fn a_fault_aimed_at_a_node_that_is_gone_is_recorded_as_not_fired() {
    let dir = tempfile::tempdir().unwrap();
    let sched = dir.path().join("twice.toml");
    std::fs::write(
        &sched,
        "[[fault]]\nname = \"first\"\nkind = \"crash\"\nnode = \"n2\"\ntrigger = { after = \"0s\" }\n\
         [[fault]]\nname = \"second\"\nkind = \"crash\"\nnode = \"n2\"\ntrigger = { after = \"50ms\" }\n",
    )
    .unwrap();
    let run = dir.path().join("run");
    let o = demo_faults(sched.to_str().unwrap(), run.to_str().unwrap(), &[]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let applied = ordeal_faults::read_applied_toml(run.join("schedule.applied.toml")).unwrap();
    let fired: Vec<(&str, bool)> = applied
        .iter()
        .map(|a| (a.fault.as_str(), a.fired))
        .collect();
    assert_eq!(fired, [("first", true), ("second", false)]);
}

/// Runs the demo (bug-free) with a schedule given as text; returns the run's events.
fn demo_schedule(text: &str) -> (Output, tempfile::TempDir, Vec<serde_json::Value>) {
    let dir = tempfile::tempdir().unwrap();
    let sched = dir.path().join("schedule.toml");
    std::fs::write(&sched, text).unwrap();
    let run = dir.path().join("run");
    let o = demo_faults(sched.to_str().unwrap(), run.to_str().unwrap(), &[]);
    assert!(
        run.join("trace.jsonl").exists(),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let evs = events(&run);
    (o, dir, evs)
}

fn marked<'a>(evs: &'a [serde_json::Value], marker: &str) -> Vec<&'a serde_json::Value> {
    evs.iter().filter(|e| e["fault"] == marker).collect()
}

fn end_ns(e: &serde_json::Value) -> u64 {
    e["ts"].as_u64().unwrap() + e["dur"].as_u64().unwrap()
}

#[test]
fn delay_holds_one_call_before_it_runs_or_before_its_result_is_seen() {
    let (o, _dir, evs) = demo_schedule(
        r#"[[fault]]
name = "slow-ack"
kind = "delay"
duration = "500ms"
trigger = { nth = 3, node = "n0", class = "data", direction = "send", peer = "client" }
[[fault]]
name = "slow-reply"
kind = "delay"
duration = "300ms"
trigger = { nth = 2, node = "n1", class = "data", direction = "recv", peer = "n0", when = "after" }
"#,
    );
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // Before: the send itself lasted the delay (it ran once the hold ended).
    let ack = marked(&evs, "slow-ack: delay 500ms before");
    assert_eq!(ack.len(), 1);
    assert_eq!(
        (
            ack[0]["node"].as_str(),
            ack[0]["sock"]["peer_node"].as_str()
        ),
        (Some("n0"), Some("client"))
    );
    let dur = ack[0]["dur"].as_u64().unwrap();
    assert!((500_000_000..2_000_000_000).contains(&dur), "{dur}");
    // After: the receive completed at once; the thread's next call came the delay later.
    let reply = marked(&evs, "slow-reply: delay 300ms after");
    assert_eq!(reply.len(), 1);
    assert!(reply[0]["dur"].as_u64().unwrap() < 300_000_000);
    let next = evs
        .iter()
        .find(|e| e["tid"] == reply[0]["tid"] && e["seq"].as_u64() > reply[0]["seq"].as_u64())
        .unwrap();
    assert!(
        next["ts"].as_u64().unwrap() >= end_ns(reply[0]) + 300_000_000,
        "{next}"
    );
}

/// On loopback a partition acts as a network that drops packets: the primary's replication
/// sends across it succeed at once, their bytes queued as in a send buffer, and the backups
/// receive them at the heal.
#[test]
fn partition_queues_sends_across_it_and_delivers_them_at_the_heal() {
    let (o, _dir, evs) = demo_schedule(
        r#"[[fault]]
name = "cut"
kind = "partition"
from = ["n0"]
to = ["n1", "n2"]
duration = "300ms"
trigger = { nth = 3, node = "n0", class = "data", direction = "send", peer = "client", when = "after" }
"#,
    );
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let fired = marked(&evs, "cut: partition n0 | n1,n2");
    assert_eq!(fired.len(), 1);
    let heal = marked(&evs, "by cut: heal");
    assert_eq!(heal.len(), 1);
    let (cut_at, heal_at) = (
        fired[0]["ts"].as_u64().unwrap(),
        heal[0]["ts"].as_u64().unwrap(),
    );
    assert!(heal_at >= cut_at + 300_000_000);
    // The primary's next replication sends were queued, whole and at once, and only those.
    let queued: Vec<(&serde_json::Value, u64)> = evs
        .iter()
        .filter_map(|e| {
            let m = e["fault"].as_str()?.strip_prefix("by cut: queued ")?;
            Some((e, m.strip_suffix(" bytes")?.parse().ok()?))
        })
        .collect();
    assert!(!queued.is_empty());
    for (q, n) in &queued {
        let peer = q["sock"]["peer_node"].as_str().unwrap();
        assert_eq!(q["node"], "n0", "{q}");
        assert!(peer == "n1" || peer == "n2", "{q}");
        assert_eq!((q["ret"].as_u64(), q["len"].as_u64()), (Some(*n), Some(*n)));
        assert!(
            (cut_at..heal_at).contains(&q["ts"].as_u64().unwrap()),
            "{q}"
        );
    }
    // Delivered at the heal, all of it; the backups read each socket's first queued byte
    // then, within 100 ms.
    let total: u64 = queued.iter().map(|(_, n)| n).sum();
    let delivered = marked(
        &evs,
        &format!("by cut: delivered {total} bytes at the heal"),
    );
    assert_eq!(delivered.len(), 1);
    assert_eq!(delivered[0]["node"], "n0");
    let lifted = heal_at.min(delivered[0]["ts"].as_u64().unwrap());
    for (q, _) in &queued {
        let off = q["off"].as_u64().unwrap();
        let read = evs
            .iter()
            .find(|e| {
                e["sock"]["local"] == q["sock"]["remote"]
                    && e["sock"]["remote"] == q["sock"]["local"]
                    && e["class"] == "data"
                    && e["ret"].as_i64() > Some(0)
                    && e["off"]
                        .as_u64()
                        .is_some_and(|o| o <= off && off < o + e["ret"].as_u64().unwrap())
            })
            .unwrap_or_else(|| panic!("never read: {q}"));
        assert_eq!(read["node"], q["sock"]["peer_node"]);
        let at = end_ns(read);
        assert!(at >= lifted && at < heal_at + 100_000_000, "{read}");
    }
    // Nothing crossed the cut while it held: no data call between n0 and a backup completed
    // inside the window unless it was queued.
    let crossing = evs.iter().filter(|e| {
        let (n, p) = (
            e["node"].as_str().unwrap_or(""),
            e["sock"]["peer_node"].as_str().unwrap_or(""),
        );
        e["class"] == "data"
            && e.get("fault").is_none()
            && e["call"]
                .as_str()
                .is_some_and(|c| c.starts_with("send") || c == "write")
            && ((n == "n0" && (p == "n1" || p == "n2")) || (p == "n0" && (n == "n1" || n == "n2")))
            && e["ts"].as_u64().unwrap() > cut_at
            && end_ns(e) < lifted
    });
    assert_eq!(crossing.count(), 0);
}

#[test]
fn oneway_partition_hangs_connects_until_the_callers_timeout_and_ends_with_a_final_heal() {
    let (o, dir, evs) = demo_schedule(
        r#"[[fault]]
name = "cut"
kind = "partition"
from = ["client"]
to = ["n1", "n2"]
oneway = true
trigger = { nth = 1, node = "client", call = "connect" }
"#,
    );
    let fired = marked(&evs, "cut: partition client -> n1,n2");
    assert_eq!(fired.len(), 1, "{}", String::from_utf8_lossy(&o.stderr));
    let cut_seq = fired[0]["seq"].as_u64().unwrap();
    let connects: Vec<&serde_json::Value> = evs
        .iter()
        .filter(|e| e["node"] == "client" && e["call"] == "connect")
        .filter(|e| e["seq"].as_u64().unwrap() > cut_seq)
        .filter(|e| {
            let port = e["addr"]
                .as_str()
                .unwrap()
                .rsplit(':')
                .next()
                .unwrap()
                .to_string();
            ["n1", "n2"].iter().any(|n| {
                evs.iter().any(|x| {
                    x["node"] == *n
                        && x["call"] == "listen"
                        && x["sock"]["local"]
                            .as_str()
                            .is_some_and(|l| l.ends_with(&format!(":{port}")))
                })
            })
        })
        .collect();
    // Each hung, as behind a drop (EINPROGRESS, never writable) until the client's own
    // timeout gave up on it.
    assert!(!connects.is_empty());
    for c in &connects {
        assert_eq!(
            (c["errno"].as_str(), c["fault"].as_str()),
            (Some("EINPROGRESS"), Some("by cut: handshake dropped")),
            "{c}"
        );
    }
    let client = std::fs::read_to_string(dir.path().join("run/logs/client.stdout")).unwrap();
    assert!(client.contains("connection timed out"), "{client}");
    // Nothing healed it: the final heal did, before the check, and it is recorded.
    assert_eq!(marked(&evs, "by cut: final heal").len(), 1);
    let applied = std::fs::read_to_string(dir.path().join("run/schedule.applied.toml")).unwrap();
    assert_eq!(applied.matches("fired = true").count(), 1, "{applied}");
}

#[test]
fn restart_starts_a_crashed_node_again_and_marks_its_spawn() {
    let (o, _dir, evs) = demo_schedule(
        r#"[[fault]]
name = "down"
kind = "crash"
node = "n2"
trigger = { nth = 3, node = "n2", call = "rename", when = "after" }
[[fault]]
name = "back"
kind = "restart"
node = "n2"
trigger = { nth = 6, node = "n1", call = "rename", when = "after" }
[[fault]]
name = "noop"
kind = "restart"
node = "n1"
trigger = { nth = 1, node = "n0", call = "rename" }
"#,
    );
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let down = marked(&evs, "down: crash n2 after");
    let spawns: Vec<&serde_json::Value> = evs
        .iter()
        .filter(|e| e["node"] == "n2" && e["call"] == "spawn")
        .collect();
    assert_eq!(spawns.len(), 2);
    assert_eq!(down.len(), 1);
    assert_eq!(spawns[1]["fault"], "back: restart n2");
    assert!(spawns[1]["seq"].as_u64() > down[0]["seq"].as_u64());
    // n2 did nothing between its death and its restart.
    let (d, r) = (
        down[0]["seq"].as_u64().unwrap(),
        spawns[1]["seq"].as_u64().unwrap(),
    );
    assert!(!evs.iter().any(|e| e["node"] == "n2"
        && e["call"] != "exit"
        && (d + 1..r).contains(&e["seq"].as_u64().unwrap())));
    // A restart of a running node does nothing: n1 was started once.
    assert_eq!(
        evs.iter()
            .filter(|e| e["node"] == "n1" && e["call"] == "spawn")
            .count(),
        1
    );
    assert!(!evs
        .iter()
        .any(|e| e["fault"].as_str().is_some_and(|f| f.starts_with("noop"))));
}

/// Faults keep their course while a node starts: a node crashed before it was ready is
/// restarted after `restart_after` and waited for again; a partition that began during
/// start-up heals on time, and the run goes on.
#[test]
fn a_node_crashed_or_cut_off_while_starting_is_restarted_or_healed_and_the_run_goes_on() {
    // n1 persists the primary's snapshot (its first rename) before it says it joined.
    let (o, _dir, evs) = demo_schedule(
        r#"[[fault]]
name = "early"
kind = "crash"
node = "n1"
restart_after = "100ms"
trigger = { nth = 1, node = "n1", call = "rename", when = "after" }
[[fault]]
name = "cut"
kind = "partition"
from = ["n2"]
to = ["n0"]
duration = "300ms"
trigger = { nth = 1, node = "n2", call = "connect", peer = "n0", when = "before" }
"#,
    );
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let early = marked(&evs, "early: crash n1 after");
    assert_eq!(early.len(), 1);
    let spawns: Vec<&serde_json::Value> = evs
        .iter()
        .filter(|e| e["node"] == "n1" && e["call"] == "spawn")
        .collect();
    assert_eq!(
        spawns.len(),
        2,
        "started, crashed while starting, started again"
    );
    assert!(spawns[1]["seq"].as_u64() > early[0]["seq"].as_u64());
    // The workload started only once every node was ready: after n1's second start.
    let client = evs
        .iter()
        .find(|e| e["node"] == "client" && e["call"] == "spawn")
        .unwrap();
    assert!(client["seq"].as_u64() > spawns[1]["seq"].as_u64());
    // The partition fired at n2's first connect to n0 and was healed before the workload.
    let cut = marked(&evs, "cut: partition n2 | n0");
    assert_eq!(cut.len(), 1);
    let heal = marked(&evs, "by cut: heal");
    assert_eq!(heal.len(), 1);
    assert!(cut[0]["seq"].as_u64() < heal[0]["seq"].as_u64());
    assert!(heal[0]["seq"].as_u64() < client["seq"].as_u64());
}

/// A `signal` fault sends its signal to every process of the node: the demo node has no
/// SIGTERM handler and dies of it, which is the fault, not a failure of the run.
#[test]
fn a_sigterm_ends_the_node_it_is_sent_to_and_the_run_passes() {
    let (o, dir, evs) = demo_schedule(
        r#"[[fault]]
name = "term-n2"
kind = "signal"
node = "n2"
signal = "SIGTERM"
trigger = { after = "0s" }
"#,
    );
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let mark = marked(&evs, "term-n2: signal SIGTERM n2");
    assert_eq!(mark.len(), 1);
    assert_eq!(
        (&mark[0]["call"], &mark[0]["node"]),
        (&"fault".into(), &"n2".into())
    );
    // It came while the workload ran.
    let client = evs
        .iter()
        .find(|e| e["node"] == "client" && e["call"] == "spawn")
        .unwrap();
    assert!(mark[0]["seq"].as_u64() > client["seq"].as_u64());
    // n2's root process was killed by it, after the mark.
    let spawn = evs
        .iter()
        .find(|e| e["node"] == "n2" && e["call"] == "spawn")
        .unwrap();
    let root_exit: Vec<&serde_json::Value> = evs
        .iter()
        .filter(|e| e["node"] == "n2" && e["call"] == "exit")
        .filter(|e| e["pid"] == spawn["pid"] && e["tid"] == spawn["pid"])
        .collect();
    assert_eq!(root_exit.len(), 1, "{root_exit:#?}");
    assert_eq!(root_exit[0]["signal"], "SIGTERM");
    assert!(root_exit[0]["seq"].as_u64() > mark[0]["seq"].as_u64());
    // Every thread of n2 still alive then ended of it; n2 was not started again.
    let after: Vec<&serde_json::Value> = evs
        .iter()
        .filter(|e| e["node"] == "n2" && e["seq"].as_u64() > mark[0]["seq"].as_u64())
        .filter(|e| e["call"] == "exit")
        .collect();
    assert!(!after.is_empty());
    assert!(after.iter().all(|e| e["signal"] == "SIGTERM"), "{after:#?}");
    assert_eq!(
        evs.iter()
            .filter(|e| e["node"] == "n2" && e["call"] == "spawn")
            .count(),
        1
    );
    let run = dir.path().join("run");
    let s = summary(&run);
    assert_eq!(s["verdict"]["status"], "pass", "{}", s["verdict"]);
    let applied = ordeal_faults::read_applied_toml(run.join("schedule.applied.toml")).unwrap();
    let fired: Vec<(&str, &str, bool, Option<&str>)> = applied
        .iter()
        .map(|a| {
            (
                a.fault.as_str(),
                a.kind.as_str(),
                a.fired,
                a.detail.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        fired,
        [(
            "term-n2",
            "signal",
            true,
            Some("signal SIGTERM n2 (time trigger)")
        )]
    );
}

/// Node faults fire at lifecycle steps too: a crash of n2 when the client execs (marked on
/// that exec, n2 killed right after it), and a pause of n1 at n0's second thread clone.
#[test]
fn node_faults_fire_at_lifecycle_steps() {
    let (o, _dir, evs) = demo_schedule(
        r#"[[fault]]
name = "at-exec"
kind = "crash"
node = "n2"
trigger = { node = "client", call = "exec", nth = 1 }

[[fault]]
name = "at-clone"
kind = "pause"
node = "n1"
duration = "100ms"
trigger = { node = "n0", call = "clone", nth = 2 }
"#,
    );
    let text = |o: &Output| String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let exec = marked(&evs, "at-exec: crash n2 after");
    assert_eq!(exec.len(), 1, "{}", text(&o));
    assert_eq!(
        (&exec[0]["node"], &exec[0]["call"]),
        (&"client".into(), &"exec".into())
    );
    let n2_exit = evs
        .iter()
        .find(|e| e["node"] == "n2" && e["call"] == "exit" && e["tid"] == e["pid"])
        .expect("n2 exits");
    assert_eq!(n2_exit["signal"], "SIGKILL");
    assert!(n2_exit["seq"].as_u64() > exec[0]["seq"].as_u64());
    let clones: Vec<_> = evs
        .iter()
        .filter(|e| e["node"] == "n0" && e["call"] == "clone")
        .collect();
    assert_eq!(
        clones[1]["fault"], "at-clone: pause n1 after",
        "{clones:#?}"
    );
    assert!(clones[0]["fault"].is_null());
}

/// A node that does not come back after the workloads ended (its ready line never shows
/// again) does not turn the workload's finding into an error: the run fails with both.
#[test]
fn a_restart_that_never_gets_ready_after_a_failed_workload_keeps_the_failure() {
    let dir = tempfile::tempdir().unwrap();
    let exp = dir.path().join("exp.toml");
    std::fs::write(
        &exp,
        r#"name = "no-second-ready"
[[node]]
name = "n"
# Says it is ready only the first time: its restart never is.
argv = ["sh", "-c", "if [ ! -e \"$0/started\" ]; then touch \"$0/started\"; echo ready; fi; exec sleep 60", "{data_dir.n}"]
data_dir = true
ready = { log = "ready" }
ready_timeout = "1s"

[[workload]]
name = "client"
argv = ["sh", "-c", "echo 'VIOLATION: lost k1'; exit 1"]
"#,
    )
    .unwrap();
    let sched = dir.path().join("s.toml");
    std::fs::write(
        &sched,
        "[[fault]]\nname = \"c\"\nkind = \"crash\"\nnode = \"n\"\nrestart_after = \"100ms\"\n\
         trigger = { node = \"client\", call = \"exec\", nth = 1 }\n",
    )
    .unwrap();
    let run = dir.path().join("run");
    let o = ordeal(&[
        "run",
        exp.to_str().unwrap(),
        "--faults",
        sched.to_str().unwrap(),
        "--out",
        run.to_str().unwrap(),
        "-q",
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    let s = summary(&run);
    assert_eq!(s["verdict"]["status"], "fail", "{s:#}");
    assert_eq!(
        s["verdict"]["reasons"],
        serde_json::json!([
            "workload client ended: exit 1",
            "node n did not become ready again after its restart"
        ])
    );
}
