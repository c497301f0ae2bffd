//! Histories from traffic alone (`[check] history = { from = "traffic" }`) and the call log
//! they come from: the demo's `stale-read` and `ack-before-replicate` are found with clients
//! whose own record ordeal never reads, Redis's loss of an acknowledged write on failover
//! with `redis-cli` in a shell loop; without the bug or the fault the same experiments are
//! linearizable. `ordeal calls` prints the log.

mod common;
use common::summary;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn example(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(rel)
}

/// `ordeal run EXPERIMENT [--faults SCHEDULE] [--set ...]` into a fresh directory.
fn run(experiment: &str, schedule: Option<&str>, set: &[&str]) -> (Output, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let mut args = vec![
        "run".to_string(),
        example(experiment).to_str().unwrap().to_string(),
        "--out".into(),
        out.to_str().unwrap().into(),
        "-q".into(),
    ];
    if let Some(s) = schedule {
        args.extend(["--faults".into(), example(s).to_str().unwrap().into()]);
    }
    for s in set {
        args.extend(["--set".into(), s.to_string()]);
    }
    let o = Command::new(env!("CARGO_BIN_EXE_ordeal"))
        .args(&args)
        .output()
        .unwrap();
    (o, dir)
}

fn calls(run: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(run.join("calls.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn history_reason(run: &Path) -> Option<String> {
    let s = summary(run);
    s["verdict"]["reasons"]
        .as_array()?
        .iter()
        .filter_map(|x| x.as_str())
        .find(|x| x.starts_with("history not linearizable (kv): key "))
        .map(str::to_string)
}

/// The clean run is linearizable and its history is exactly the clients' key-value calls;
/// with `bug` some attempt (of four: whether a read meets the damage depends on how the
/// clients interleave) is not linearizable.
fn demo_both_ways(schedule: &str, bug: &str) {
    let (o, dir) = run("examples/demo-kv-traffic.toml", Some(schedule), &[]);
    let r = dir.path().join("run");
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{stdout}");
    let text = std::fs::read_to_string(r.join("history-check.txt")).unwrap();
    assert!(text.starts_with("linearizable: "), "{text}");
    // Every key-value request of the clients is one invocation of the history.
    let kv_calls = calls(&r)
        .iter()
        .filter(|c| c["caller"] == "clients" && c.get("kv").is_some())
        .count();
    let history = std::fs::read_to_string(r.join("history.jsonl")).unwrap();
    let invokes = history
        .lines()
        .filter(|l| l.contains("\"type\":\"invoke\""))
        .count();
    assert!(kv_calls >= 100, "{kv_calls} calls");
    assert_eq!(invokes, kv_calls);

    let (o, dir) = (0..4)
        .map(|_| {
            run(
                "examples/demo-kv-traffic.toml",
                Some(schedule),
                &[&format!("bugs={bug}")],
            )
        })
        .find(|(o, _)| o.status.code() != Some(0))
        .unwrap_or_else(|| panic!("{bug}: linearizable in four attempts"));
    let r = dir.path().join("run");
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    let reason = history_reason(&r).unwrap_or_else(|| panic!("{}", summary(&r)));
    assert!(
        reason.contains(" read \"k") && reason.contains(", but the value is "),
        "{reason}"
    );
    // failure.svg draws the write the read contradicts (the one of the value the checker
    // names), in purple, however long before the read it was.
    let cause = &summary(&r)["verdict"]["cause"];
    let key = cause["key"].as_str().unwrap();
    let anomaly = cause["anomaly"].as_str().unwrap();
    let value = anomaly
        .rsplit("the value is ")
        .next()
        .unwrap()
        .trim_matches('"');
    let written = cause["contradicts"].as_str().unwrap();
    let line = std::fs::read_to_string(r.join("history.jsonl"))
        .unwrap()
        .lines()
        .nth(
            written
                .rsplit(':')
                .next()
                .unwrap()
                .parse::<usize>()
                .unwrap()
                - 1,
        )
        .unwrap()
        .to_string();
    assert!(
        line.contains(r#""f":"write""#) && line.contains(&format!(r#""value":"{value}""#)),
        "{line}"
    );
    let svg = std::fs::read_to_string(r.join("failure.svg")).unwrap();
    let purple: Vec<&str> = svg
        .lines()
        .filter(|l| l.starts_with(r#"<g class="msg contradicted">"#))
        .collect();
    assert_eq!(purple.len(), 2, "{svg}");
    assert!(
        purple[0].contains(&format!(">SET {key} {value}</text>")),
        "{}",
        purple[0]
    );
    assert!(purple[1].contains(">OK</text>"), "{}", purple[1]);
}

#[test]
fn stale_read_is_found_from_traffic_alone() {
    demo_both_ways("examples/faults/kv-history-stale-backup.toml", "stale-read");
}

#[test]
fn ack_before_replicate_is_found_from_traffic_alone() {
    demo_both_ways(
        "examples/faults/kv-history-crash-primary.toml",
        "ack-before-replicate",
    );
}

/// The call log of a demo run: client requests and node-to-node replication, decoded, with
/// times in order; `ordeal calls` filters and prints it.
#[test]
fn the_call_log_decodes_clients_and_replication() {
    let (o, dir) = run("examples/demo-kv-traffic.toml", None, &["ops=40"]);
    let r = dir.path().join("run");
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    let log = calls(&r);
    let sets: Vec<&serde_json::Value> = log
        .iter()
        .filter(|c| c["caller"] == "clients" && c["op"] == "SET" && c["result"] == "OK")
        .collect();
    assert!(!sets.is_empty());
    for c in &sets {
        assert_eq!(c["protocol"], "demo-kv");
        assert_eq!(c["status"], "answered");
        assert_eq!(c["kv"]["f"], "write");
        assert_eq!(c["kv_result"], "ok");
        let (a, b) = (
            c["request_ts"].as_u64().unwrap(),
            c["response_ts"].as_u64().unwrap(),
        );
        assert!(a < b, "{c}");
        assert!(
            c["request_seq"].as_u64() < c["response_seq"].as_u64(),
            "{c}"
        );
        // The text is the request as sent: `SET kN VALUE`.
        let text = c["request"].as_str().unwrap();
        assert_eq!(
            text,
            format!(
                "SET {} {}",
                c["kv"]["key"].as_str().unwrap(),
                c["kv"]["value"].as_str().unwrap()
            )
        );
    }
    // The primary replicates to both backups, node to node.
    for backup in ["n1", "n2"] {
        assert!(
            log.iter()
                .any(|c| c["caller"] == "n0" && c["callee"] == backup),
            "no call n0 → {backup}"
        );
    }
    // Every client request went to a node and every node answered.
    assert!(log
        .iter()
        .filter(|c| c["caller"] == "clients")
        .all(|c| ["n0", "n1", "n2"].contains(&c["callee"].as_str().unwrap())));

    let o = Command::new(env!("CARGO_BIN_EXE_ordeal"))
        .args([
            "calls",
            r.to_str().unwrap(),
            "--between",
            "clients",
            "n0",
            "--op",
            "SET",
        ])
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{table}");
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        ["ms", "caller", "→", "callee", "proto", "request", "result", "took", "ms"]
    );
    let n0_sets = log
        .iter()
        .filter(|c| c["op"] == "SET")
        .filter(|c| {
            (c["caller"] == "clients" && c["callee"] == "n0")
                || (c["caller"] == "n0" && c["callee"] == "clients")
        })
        .count();
    assert_eq!(lines.last(), Some(&format!("{n0_sets} calls").as_str()));
    assert!(lines[1..lines.len() - 1]
        .iter()
        .all(|l| l.contains("clients → n0") && l.contains("demo-kv  SET k")));
}

/// redis-cli in a shell loop: the acknowledged SETs the replica lacks after the failover
/// make the traffic's history non-linearizable; without the fault it is linearizable.
#[test]
fn redis_failover_loses_an_acknowledged_write_in_the_traffic_history() {
    if !ordeal_test_support::installed(&["redis-server", "redis-cli"], "redis-server redis-tools") {
        return;
    }
    let (o, dir) = run("examples/redis-failover.toml", None, &[]);
    let r = dir.path().join("run");
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    let text = std::fs::read_to_string(r.join("history-check.txt")).unwrap();
    assert!(text.starts_with("linearizable: "), "{text}");
    let log = calls(&r);
    // 12 SETs on the primary, 12 GETs on the promoted replica: each one redis-cli process.
    let ops = |op: &str| {
        log.iter()
            .filter(|c| c["caller"] == "client" && c["op"] == op && c["protocol"] == "resp")
            .count()
    };
    assert_eq!((ops("SET"), ops("GET")), (12, 12));
    // The replica's replication stream from the primary is decoded too.
    assert!(
        log.iter().any(|c| c["caller"] == "primary"
            && c["callee"] == "replica"
            && c["status"] == "one-way"),
        "no replicated command"
    );

    let (o, dir) = run(
        "examples/redis-failover.toml",
        Some("examples/faults/redis-replica-lag.toml"),
        &[],
    );
    let r = dir.path().join("run");
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    let reason = history_reason(&r).unwrap_or_else(|| panic!("{}", summary(&r)));
    // `process P read "kN" → nil reads nil, but the value is "vN"`.
    assert!(reason.contains(" read \"k"), "{reason}");
}

/// Redis under three Sentinels (examples/redis-sentinel.toml): every reply pairs with its own
/// command although Sentinel pipelines INFO (5 KB replies, past the 1 KiB capture) with PING;
/// cut off, the master loses writes it acknowledged, and failure.svg draws one of them.
#[test]
fn redis_sentinel_pairs_every_reply_and_loses_acknowledged_writes_when_the_master_is_cut_off() {
    if !ordeal_test_support::installed(&["redis-server", "redis-cli"], "redis-server redis-tools") {
        return;
    }
    let (o, dir) = run("examples/redis-sentinel.toml", None, &[]);
    let r = dir.path().join("run");
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{stdout}");
    let log = calls(&r);
    let sentinel_to_redis = |c: &&serde_json::Value| {
        c["caller"].as_str().is_some_and(|s| s.starts_with('s'))
            && c["callee"].as_str().is_some_and(|s| s.starts_with('r'))
    };
    // Each answer is of its own command's kind, or none was captured: never another's.
    let mut infos = 0;
    for c in log.iter().filter(sentinel_to_redis) {
        let result = c["result"].as_str().unwrap_or("");
        let own = match c["op"].as_str().unwrap_or("") {
            "PING" => result == "+PONG",
            "INFO" => result.starts_with("\"# Server"),
            "PUBLISH" => result.starts_with(':'),
            _ => true,
        };
        infos += (c["op"] == "INFO" && c["status"] == "answered") as usize;
        assert!(
            own || c["status"] == "not-captured" || c["status"] == "unanswered",
            "{c}"
        );
    }
    assert!(infos >= 6, "{infos} INFO replies decoded");
    // 80 SETs by the client, 80 GETs by the checker.
    let ops = |who: &str, op: &str| {
        log.iter()
            .filter(|c| c["caller"] == who && c["op"] == op)
            .count()
    };
    assert_eq!((ops("client", "SET"), ops("checker", "GET")), (80, 80));

    let (o, dir) = run(
        "examples/redis-sentinel.toml",
        Some("examples/faults/redis-sentinel-isolate-master.toml"),
        &[],
    );
    let r = dir.path().join("run");
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    let cause = &summary(&r)["verdict"]["cause"];
    assert_eq!(cause["kind"], "history", "{cause}");
    let key = cause["key"].as_str().unwrap();
    // `reads nil, but the value is "11"`: k11 was written as "11".
    assert_eq!(
        cause["anomaly"].as_str().unwrap(),
        format!("reads nil, but the value is \"{}\"", &key[1..])
    );
    // The write the checker's read contradicts, drawn in purple: the client's SET to r1,
    // acknowledged while r1 was cut off.
    let svg = std::fs::read_to_string(r.join("failure.svg")).unwrap();
    let purple: Vec<&str> = svg
        .lines()
        .filter(|l| l.starts_with(r#"<g class="msg contradicted">"#))
        .collect();
    assert_eq!(purple.len(), 2, "{svg}");
    assert!(
        purple[0].contains(&format!(">SET {key} {}</text>", &key[1..])),
        "{}",
        purple[0]
    );
    assert!(purple[1].contains(">+OK</text>"), "{}", purple[1]);
    assert!(svg.contains(r#"<g class="fault partition">"#), "{svg}");
}
