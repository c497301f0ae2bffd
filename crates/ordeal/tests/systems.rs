//! Real systems under ordeal: `examples/redis-replication.toml` (a Redis primary and replica)
//! and `examples/etcd-cluster.toml` (three etcd members, a Go program). Each test runs the
//! `ordeal` binary on the example and checks facts of the run from `summary.json`,
//! `trace.jsonl` and `graph.dot`, then that no process of the run is left.
//!
//! The systems come from Debian packages (`redis-server`, `redis-tools`; `etcd-server`,
//! `etcd-client`). When they are missing a test prints a note and passes, unless the `CI`
//! environment variable is set, in which case it fails: CI installs them.

use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Longest an ordeal run may take here. The experiments' own timeouts (60 s, 90 s) end a stuck
/// run well before this; it only guards against ordeal itself hanging.
const RUN_LIMIT: Duration = Duration::from_secs(240);

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples")
        .join(name)
}

/// Runs `ordeal run EXPERIMENT --out OUT -q ARGS...`, bounded by [`RUN_LIMIT`].
fn run_ordeal(experiment: &Path, out: &Path, args: &[&str]) -> Output {
    let child = Command::new(env!("CARGO_BIN_EXE_ordeal"))
        .arg("run")
        .arg(experiment)
        .arg("--out")
        .arg(out)
        .arg("-q")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ordeal starts");
    let pid = child.id().to_string();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(RUN_LIMIT) {
        Ok(out) => out.expect("waiting for ordeal"),
        Err(_) => {
            // SIGTERM makes ordeal stop and clean up its processes; SIGKILL if even that hangs.
            let _ = Command::new("kill").args(["-TERM", &pid]).status();
            if rx.recv_timeout(Duration::from_secs(30)).is_err() {
                let _ = Command::new("kill").args(["-KILL", &pid]).status();
            }
            panic!("ordeal did not finish within {RUN_LIMIT:?}");
        }
    }
}

/// Asserts that the run passed and returns its summary and events (header first).
fn passed(out: &Output, run_dir: &Path) -> (Value, Vec<Value>) {
    let report = || {
        let logs: String = std::fs::read_dir(run_dir.join("logs"))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| {
                let text = std::fs::read_to_string(e.path()).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(15).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                format!("--- {}\n{}\n", e.path().display(), tail.join("\n"))
            })
            .collect();
        format!(
            "ordeal exited with {:?}\nstdout:\n{}\nstderr:\n{}\n{logs}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    };
    assert_eq!(out.status.code(), Some(0), "{}", report());
    let summary: Value =
        serde_json::from_slice(&std::fs::read(run_dir.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["verdict"]["status"], "pass", "{}", report());
    assert_eq!(summary["warnings"], serde_json::json!([]), "{}", report());
    for f in ["trace.jsonl", "graph.dot", "trace.json", "hb.jsonl"] {
        assert!(run_dir.join(f).is_file(), "{f} missing");
    }
    let events = std::fs::read_to_string(run_dir.join("trace.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (summary, events)
}

fn node<'a>(summary: &'a Value, name: &str) -> &'a Value {
    summary["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == name)
        .unwrap_or_else(|| panic!("no node {name} in the summary"))
}

fn node_names(summary: &Value) -> Vec<&str> {
    summary["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["name"].as_str().unwrap())
        .collect()
}

/// The `pairs[]` entry from `from` to `to`.
fn pair<'a>(summary: &'a Value, from: &str, to: &str) -> &'a Value {
    summary["pairs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["from"] == from && p["to"] == to)
        .unwrap_or_else(|| panic!("no traffic from {from} to {to}: {:#}", summary["pairs"]))
}

fn bytes(summary: &Value, from: &str, to: &str) -> u64 {
    pair(summary, from, to)["bytes"].as_u64().unwrap()
}

/// Stream connections whose both ends were traced, from `client` to `server_addr`.
fn traced_connections<'a>(summary: &'a Value, client: &str, server_addr: &str) -> Vec<&'a Value> {
    summary["connections"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["client_node"] == client && c["server_addr"] == server_addr)
        .filter(|c| c["both_traced"] == true)
        .collect()
}

/// Ports the header gave each node.
fn header_ports(events: &[Value]) -> Vec<u16> {
    events[0]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|n| n["ports"].as_array().cloned().unwrap_or_default())
        .map(|p| p.as_u64().unwrap() as u16)
        .collect()
}

fn ports_of(events: &[Value], name: &str) -> Vec<u16> {
    let n = events[0]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == name)
        .unwrap();
    n["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_u64().unwrap() as u16)
        .collect()
}

/// `argv` of the `spawn` event of node `name`.
fn spawn_argv(events: &[Value], name: &str) -> Vec<String> {
    let e = events
        .iter()
        .find(|e| e["call"] == "spawn" && e["node"] == name)
        .unwrap_or_else(|| panic!("no spawn event for {name}"));
    e["argv"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect()
}

/// Whether `graph.dot` has an arrow from the box of node `from` to the box of node `to`.
fn dot_has_arrow(dot: &str, from: &str, to: &str) -> bool {
    let id = |name: &str| {
        dot.lines()
            .find_map(|l| {
                let (id, rest) = l.trim().split_once(" [label=\"")?;
                let label = rest.split(['\\', '"']).next()?;
                (label == name).then(|| id.to_string())
            })
            .unwrap_or_else(|| panic!("no box for {name} in graph.dot:\n{dot}"))
    };
    let arrow = format!("{} -> {} ", id(from), id(to));
    dot.lines().any(|l| l.trim_start().starts_with(&arrow))
}

/// Live processes that belong to the run: their environment names the run directory (ordeal
/// sets ORDEAL_RUN_DIR for everything it starts), their command line mentions it, or they are
/// one of `programs` with one of the run's ports on their command line (redis-server rewrites
/// its command line and environment into a title like `redis-server 127.0.0.1:PORT`).
fn survivors(run_dir: &Path, ports: &[u16], programs: &[&str]) -> Vec<String> {
    let dir = run_dir.display().to_string();
    let env_needle = format!("ORDEAL_RUN_DIR={dir}");
    let me = std::process::id().to_string();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let pid = entry.file_name().to_string_lossy().into_owned();
        if !pid.bytes().all(|b| b.is_ascii_digit()) || pid == me {
            continue;
        }
        let p = entry.path();
        let Ok(stat) = std::fs::read_to_string(p.join("stat")) else {
            continue;
        };
        if stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z'))
        {
            continue;
        }
        let env = std::fs::read(p.join("environ")).unwrap_or_default();
        let cmdline =
            String::from_utf8_lossy(&std::fs::read(p.join("cmdline")).unwrap_or_default())
                .replace('\0', " ");
        let by_env = env.split(|&b| b == 0).any(|v| v == env_needle.as_bytes());
        let program = cmdline.split(' ').next().unwrap_or("");
        let program = program.rsplit('/').next().unwrap_or("");
        let by_port = programs.contains(&program)
            && cmdline
                .split(|c: char| !c.is_ascii_digit())
                .any(|tok| ports.iter().any(|p| tok == p.to_string()));
        if by_env || cmdline.contains(&dir) || by_port {
            found.push(format!("{pid}: {cmdline}"));
        }
    }
    found
}

/// Events of `node` whose `call` is `call`.
fn calls<'a>(events: &'a [Value], node: &str, call: &str) -> Vec<&'a Value> {
    events
        .iter()
        .filter(|e| e["node"] == node && e["call"] == call)
        .collect()
}

fn data_of(e: &Value) -> &str {
    e["data"].as_str().unwrap_or("")
}

/// Redis under each engine: the same facts hold.
#[test]
fn redis_primary_replica_and_client_under_ebpf() {
    redis_primary_replica_and_client("ebpf");
}

#[test]
fn redis_primary_replica_and_client_under_ptrace() {
    redis_primary_replica_and_client("ptrace");
}

fn redis_primary_replica_and_client(engine: &str) {
    if !ordeal_test_support::installed(
        &["redis-server", "redis-cli", "redis-benchmark"],
        "redis-server redis-tools",
    ) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let run_dir = tmp.path().join("run");
    let ops: u64 = 200;
    let out = run_ordeal(
        &example("redis-replication.toml"),
        &run_dir,
        &[
            "--set",
            &format!("ops={ops}"),
            "--payload",
            "64",
            "--engine",
            engine,
        ],
    );
    let (s, events) = passed(&out, &run_dir);
    assert_eq!(s["engine"]["name"], engine);
    assert_eq!(s["engine"]["lost_events"], 0);
    assert_eq!(node_names(&s), ["primary", "replica", "client"]);
    let primary_port = ports_of(&events, "primary")[0];
    let primary_addr = format!("127.0.0.1:{primary_port}");

    // The replica dialled the primary's port (perhaps more than once, if it was faster than
    // the primary to start) and one connection, traced at both ends, became the link.
    let link = traced_connections(&s, "replica", &primary_addr);
    assert_eq!(link.len(), 1, "{:#}", s["connections"]);
    assert_eq!(link[0]["server_node"], "primary");
    let connect = events
        .iter()
        .find(|e| e["seq"] == link[0]["connect_seq"])
        .unwrap();
    assert_eq!(connect["node"], "replica");
    assert_eq!(connect["call"], "connect");
    assert_eq!(connect["addr"], primary_addr.as_str());
    assert_eq!(connect["sock"]["peer_node"], "primary", "{connect}");
    // The replica synchronised before the workload started: its connection came first.
    let client_conns = traced_connections(&s, "client", &primary_addr);
    assert!(!client_conns.is_empty());
    for c in &client_conns {
        assert!(link[0]["connect_seq"].as_u64() < c["connect_seq"].as_u64());
    }

    // Traffic in every direction the system uses.
    assert!(bytes(&s, "client", "primary") > 0);
    assert!(bytes(&s, "primary", "client") > 0);
    assert!(bytes(&s, "replica", "primary") > 0);
    assert!(bytes(&s, "client", "replica") > 0);
    // Each SET the benchmark sends is propagated to the replica as the same 45-byte command
    // (`*3\r\n$3\r\nSET\r\n$16\r\nkey:__rand_int__\r\n$3\r\n` and a 3-byte value): the
    // replication stream was traced, not only the handshake.
    assert!(
        bytes(&s, "primary", "replica") >= ops * 45,
        "{:#}",
        pair(&s, "primary", "replica")
    );
    // Single-threaded clients: every byte the workload wrote to the primary was matched to
    // a traced read there.
    let sent_to_primary: u64 = events
        .iter()
        .filter(|e| e["node"] == "client" && e["class"] == "data")
        .filter(|e| e["sock"]["remote"] == primary_addr.as_str())
        .filter(|e| ["write", "writev", "sendto", "sendmsg"].contains(&e["call"].as_str().unwrap()))
        .filter_map(|e| e["ret"].as_i64())
        .filter(|&r| r > 0)
        .map(|r| r as u64)
        .sum();
    assert_eq!(sent_to_primary, bytes(&s, "client", "primary"));

    // With --payload, the replication protocol is visible: PSYNC/REPLCONF from the replica,
    // FULLRESYNC and the RDB snapshot from the primary, then propagated SETs.
    let replica_end = link[0]["client_addr"].as_str().unwrap();
    let on_link = |node: &str, remote: &str| -> Vec<&str> {
        calls(&events, node, "write")
            .into_iter()
            .filter(|e| e["sock"]["remote"] == remote)
            .map(data_of)
            .collect()
    };
    let replica_sent = on_link("replica", &primary_addr);
    assert!(
        replica_sent.iter().any(|d| d.contains("PSYNC")),
        "{replica_sent:?}"
    );
    assert!(
        replica_sent.iter().any(|d| d.contains("REPLCONF")),
        "{replica_sent:?}"
    );
    let primary_sent = on_link("primary", replica_end);
    assert!(
        primary_sent.iter().any(|d| d.contains("FULLRESYNC")),
        "{primary_sent:?}"
    );
    assert!(
        primary_sent.iter().any(|d| d.contains("REDIS")),
        "no RDB snapshot sent"
    );
    assert!(
        primary_sent.iter().any(|d| d.contains("SET")),
        "no propagated SET"
    );

    // The call log counts operations, not messages: however the benchmark's requests were
    // batched into reads, each SET and GET is one call, answered, in order.
    let log: Vec<Value> = std::fs::read_to_string(run_dir.join("calls.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let answered = |op: &str, callee: &str| {
        log.iter()
            .filter(|c| c["caller"] == "client" && c["callee"] == callee && c["op"] == op)
            .filter(|c| c["status"] == "answered" && c["protocol"] == "resp")
            .count() as u64
    };
    // redis-benchmark's SETs and GETs, and redis-cli's SET, WAIT and GET.
    assert_eq!(
        (answered("SET", "primary"), answered("GET", "primary")),
        (ops + 1, ops)
    );
    assert_eq!(
        (answered("WAIT", "primary"), answered("GET", "replica")),
        (1, 1)
    );
    let check = log
        .iter()
        .find(|c| c["callee"] == "replica" && c["op"] == "GET")
        .unwrap();
    assert_eq!(check["request"], "GET ordeal:check");
    assert_eq!(check["kv_result"]["read"], "replicated");

    // Persistence: every SET was appended to the primary's AOF under its data directory.
    let aof_bytes: u64 = calls(&events, "primary", "write")
        .into_iter()
        .filter(|e| e["class"] == "file")
        .filter(|e| {
            let p = e["path"].as_str().unwrap_or("");
            p.contains("/data/primary/appendonlydir/") && p.ends_with(".incr.aof")
        })
        .filter_map(|e| e["ret"].as_u64())
        .sum();
    assert!(aof_bytes >= ops * 45, "{aof_bytes} AOF bytes");

    // Exits: the servers were killed at teardown; the primary's snapshot child (fork, for the
    // full resync) ended on its own; every client process exited 0.
    for name in ["primary", "replica"] {
        assert_eq!(
            node(&s, name)["processes"][0]["signal"],
            "SIGKILL",
            "{name}"
        );
    }
    assert!(!calls(&events, "primary", "fork").is_empty());
    let primary = node(&s, "primary")["processes"].as_array().unwrap();
    assert!(primary.len() >= 2, "{primary:?}");
    assert!(primary[1..].iter().all(|p| p["code"] == 0), "{primary:?}");
    let client = node(&s, "client")["processes"].as_array().unwrap();
    assert_eq!(
        client.len(),
        5,
        "sh, redis-benchmark and 3 redis-cli: {client:?}"
    );
    assert!(client.iter().all(|p| p["code"] == 0), "{client:?}");

    let dot = std::fs::read_to_string(run_dir.join("graph.dot")).unwrap();
    assert!(dot_has_arrow(&dot, "client", "primary"), "{dot}");
    assert!(dot_has_arrow(&dot, "primary", "replica"), "{dot}");

    let left = survivors(
        &run_dir,
        &header_ports(&events),
        &["redis-server", "redis-cli", "redis-benchmark", "sh"],
    );
    assert!(left.is_empty(), "processes survived the run: {left:#?}");
}

/// The port in the URL given to `flag` (`--listen-peer-urls http://127.0.0.1:PORT`).
fn url_port(argv: &[String], flag: &str) -> u16 {
    let i = argv.iter().position(|a| a == flag).unwrap();
    argv[i + 1].rsplit(':').next().unwrap().parse().unwrap()
}

/// etcd (Go) under each engine: the same facts hold.
#[test]
fn etcd_three_member_cluster_under_ebpf() {
    etcd_three_member_cluster("ebpf");
}

#[test]
fn etcd_three_member_cluster_under_ptrace() {
    etcd_three_member_cluster("ptrace");
}

fn etcd_three_member_cluster(engine: &str) {
    if !ordeal_test_support::installed(&["etcd", "etcdctl"], "etcd-server etcd-client") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let run_dir = tmp.path().join("run");
    let keys: usize = 10;
    let out = run_ordeal(
        &example("etcd-cluster.toml"),
        &run_dir,
        &["--set", &format!("keys={keys}"), "--engine", engine],
    );
    let (s, events) = passed(&out, &run_dir);
    assert_eq!(s["engine"]["name"], engine);
    assert_eq!(s["engine"]["lost_events"], 0);
    let members = ["e1", "e2", "e3"];
    assert_eq!(node_names(&s), ["e1", "e2", "e3", "client"]);
    let client_addr = |m: &str| {
        format!(
            "127.0.0.1:{}",
            url_port(&spawn_argv(&events, m), "--listen-client-urls")
        )
    };
    let peer_addr = |m: &str| {
        format!(
            "127.0.0.1:{}",
            url_port(&spawn_argv(&events, m), "--listen-peer-urls")
        )
    };

    // A Go program, traced whole: one process per member, several runtime threads (clone),
    // every one of them followed until the SIGKILL at teardown.
    for m in members {
        let n = node(&s, m);
        assert_eq!(n["process_count"], 1, "{n}");
        assert!(n["thread_count"].as_u64().unwrap() > 1, "{n}");
        assert!(!calls(&events, m, "clone").is_empty(), "{m}: no clone");
        assert_eq!(n["processes"][0]["signal"], "SIGKILL", "{n}");
        let spawned: BTreeSet<i64> = events
            .iter()
            .filter(|e| e["node"] == m && e["call"] == "clone")
            .filter_map(|e| e["child"].as_i64())
            .collect();
        let exited: BTreeSet<i64> = calls(&events, m, "exit")
            .into_iter()
            .filter_map(|e| e["tid"].as_i64())
            .collect();
        assert!(spawned.is_subset(&exited), "{m}: threads without an exit");
    }

    // Raft traffic: every member dialled every other member's peer port, and messages flowed
    // both ways between every pair, over connections traced at both ends.
    for a in members {
        for b in members.iter().copied().filter(|&b| b != a) {
            let conns = traced_connections(&s, a, &peer_addr(b));
            assert!(!conns.is_empty(), "{a} never reached {b}'s peer port");
            assert!(conns.iter().all(|c| c["server_node"] == b));
            assert!(bytes(&s, a, b) > 0, "no message from {a} to {b}");
        }
    }

    // The workload: `keys` puts through e1, `keys` gets through e2, each its own etcdctl
    // process (sh forks and execs them), each exiting 0.
    for (m, n) in [("e1", keys), ("e2", keys)] {
        assert!(traced_connections(&s, "client", &client_addr(m)).len() >= n);
        assert!(bytes(&s, "client", m) > 0 && bytes(&s, m, "client") > 0);
        // Neither end received more than the other end's traced calls sent, even when etcdctl
        // exits (exit_group) while another of its threads is inside a write.
        let moved = |ino: &Value, send: bool| -> u64 {
            events
                .iter()
                .filter(|e| e["class"] == "data" && &e["sock"]["ino"] == ino)
                .filter(|e| {
                    let c = e["call"].as_str().unwrap_or("");
                    send == (c.starts_with("write") || c.starts_with("send"))
                })
                .filter_map(|e| e["ret"].as_i64())
                .filter(|&r| r > 0)
                .map(|r| r as u64)
                .sum()
        };
        for c in traced_connections(&s, "client", &client_addr(m)) {
            let (ci, si) = (&c["client_ino"], &c["server_ino"]);
            assert!(moved(si, false) <= moved(ci, true), "client → {m}: {c}");
            assert!(moved(ci, false) <= moved(si, true), "{m} → client: {c}");
        }
    }
    let execs = calls(&events, "client", "exec");
    let etcdctl: Vec<&Value> = execs
        .iter()
        .copied()
        .filter(|e| e["argv"][0] == "etcdctl")
        .collect();
    assert_eq!(etcdctl.len(), 2 * keys);
    let e1_url = format!("http://{}", client_addr("e1"));
    let puts = etcdctl.iter().filter(|e| {
        let argv = e["argv"].as_array().unwrap();
        argv.iter().any(|a| a == "put") && argv.iter().any(|a| *a == e1_url.as_str())
    });
    assert_eq!(puts.count(), keys);

    // etcdctl speaks gRPC over HTTP/2: the call log has each put and each get, decoded from
    // HPACK and etcd's protobufs, with what was written and read.
    let log: Vec<Value> = std::fs::read_to_string(run_dir.join("calls.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let from_client = |callee: &str, op: &str| -> Vec<&Value> {
        log.iter()
            .filter(|c| c["caller"] == "client" && c["callee"] == callee && c["op"] == op)
            .collect()
    };
    let puts = from_client("e1", "etcd.Put");
    let gets = from_client("e2", "etcd.Range");
    assert_eq!((puts.len(), gets.len()), (keys, keys), "{log:#?}");
    for i in 0..keys {
        let put = puts
            .iter()
            .find(|c| c["request"] == format!("PUT ordeal/k{i} v{i}"))
            .unwrap_or_else(|| panic!("no put of ordeal/k{i}: {puts:#?}"));
        assert_eq!(put["protocol"], "grpc");
        assert_eq!(put["status"], "answered");
        assert_eq!(put["kv_result"], "ok");
        let get = gets
            .iter()
            .find(|c| c["request"] == format!("RANGE ordeal/k{i}"))
            .unwrap_or_else(|| panic!("no get of ordeal/k{i}: {gets:#?}"));
        assert_eq!(get["kv_result"]["read"], format!("v{i}"));
    }
    let client = node(&s, "client")["processes"].as_array().unwrap();
    assert_eq!(client.len(), 1 + 2 * keys, "{client:?}");
    assert!(client.iter().all(|p| p["code"] == 0), "{client:?}");

    // Durability: every member synced its write-ahead log (raft persists entries before
    // acknowledging them): at least once per put.
    for m in members {
        let wal_syncs = calls(&events, m, "fdatasync")
            .into_iter()
            .filter(|e| {
                e["path"]
                    .as_str()
                    .is_some_and(|p| p.contains(&format!("/data/{m}/member/wal")))
            })
            .count();
        assert!(wal_syncs >= keys, "{m}: {wal_syncs} WAL syncs");
    }

    let dot = std::fs::read_to_string(run_dir.join("graph.dot")).unwrap();
    for (a, b) in [("client", "e1"), ("e1", "e2"), ("e2", "e3"), ("e3", "e1")] {
        assert!(dot_has_arrow(&dot, a, b), "{a} -> {b} missing:\n{dot}");
    }

    let left = survivors(&run_dir, &header_ports(&events), &["etcd", "etcdctl", "sh"]);
    assert!(left.is_empty(), "processes survived the run: {left:#?}");
}
