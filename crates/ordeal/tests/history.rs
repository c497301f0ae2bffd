//! `ordeal check-history` on history files (exit codes, explanations, EDN, HTML), and the
//! recording workloads (`ordeal workload kv|redis|etcd`) against the demo store, Redis and etcd
//! started here on loopback; every process a test starts is killed when it ends.
//!
//! The Redis and etcd tests need `redis-server` and `etcd` (Debian's redis-server and
//! etcd-server): without them a test prints a note and passes, unless `CI` is set.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

fn ordeal(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ordeal"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("ordeal runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn write(dir: &Path, name: &str, lines: &[&str]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, lines.join("\n") + "\n").unwrap();
    p
}

fn check(path: &Path, extra: &[&str]) -> (Option<i32>, String, String) {
    let mut args = vec!["check-history", path.to_str().unwrap()];
    args.extend_from_slice(extra);
    let out = ordeal(&args);
    (out.status.code(), text(&out.stdout), text(&out.stderr))
}

const STALE: [&str; 6] = [
    r#"{"type":"invoke","process":0,"f":"write","value":1,"time":10}"#,
    r#"{"type":"ok","process":0,"f":"write","value":1,"time":20}"#,
    r#"{"type":"invoke","process":0,"f":"write","value":2,"time":30}"#,
    r#"{"type":"ok","process":0,"f":"write","value":2,"time":40}"#,
    r#"{"type":"invoke","process":1,"f":"read","value":null,"time":50}"#,
    r#"{"type":"ok","process":1,"f":"read","value":1,"time":60}"#,
];

#[test]
fn check_history_exit_codes_and_explanation() {
    let dir = tempfile::tempdir().unwrap();
    // Linearizable: the read is concurrent with the second write and an indeterminate cas.
    let good = write(
        dir.path(),
        "good.jsonl",
        &[
            r#"{"type":"invoke","process":0,"f":"write","value":1,"time":10}"#,
            r#"{"type":"ok","process":0,"f":"write","value":1,"time":20}"#,
            r#"{"type":"invoke","process":0,"f":"write","value":2,"time":30}"#,
            r#"{"type":"invoke","process":1,"f":"read","value":null,"time":35}"#,
            r#"{"type":"invoke","process":2,"f":"cas","value":[2,3],"time":36}"#,
            r#"{"type":"info","process":2,"f":"cas","value":[2,3],"time":37,"error":"timeout"}"#,
            r#"{"type":"ok","process":1,"f":"read","value":1,"time":38}"#,
            r#"{"type":"ok","process":0,"f":"write","value":2,"time":40}"#,
            r#"{"type":"invoke","process":0,"f":"read","value":null,"time":50}"#,
            r#"{"type":"ok","process":0,"f":"read","value":3,"time":60}"#,
        ],
    );
    let (code, out, err) = check(&good, &["--model", "cas-register"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(
        out.starts_with("linearizable: 5 operations, 1 key, model cas-register ("),
        "{out}"
    );
    // A cas in a register history is a usage error.
    let (code, _, err) = check(&good, &["--model", "register"]);
    assert_eq!(code, Some(2));
    assert_eq!(
        err.trim(),
        format!(
            "ordeal: error: {}:5: cas in a register history: use the cas-register model",
            good.display()
        )
    );

    let bad = write(dir.path(), "bad.jsonl", &STALE);
    let html = dir.path().join("report.html");
    let (code, out, _) = check(
        &bad,
        &["--model", "register", "--html", html.to_str().unwrap()],
    );
    assert_eq!(code, Some(1), "{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("not linearizable: 3 operations, 1 key, model register"));
    assert_eq!(lines[2], "the register: not linearizable (3 operations)");
    assert_eq!(
        lines[3],
        "  found without search: 2 operation(s) prove it, leaving state 2"
    );
    assert_eq!(
        lines[6],
        format!(
            "  cannot be linearized before it completes: process 1 read → 1 ({}:5)",
            bad.display()
        )
    );
    assert_eq!(
        lines[8],
        format!(
            "    process 1    read → 1                 reads 1, but the value is 2   ({}:5)",
            bad.display()
        )
    );
    assert_eq!(
        *lines.last().unwrap(),
        format!("report: {}", html.display())
    );
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.starts_with("<!DOCTYPE html>"));
    // Each operation drawn twice: around the violation, and on the whole history.
    assert_eq!(page.matches("<g class=\"op ").count(), 6);
    assert!(page.contains("reads 1, but the value is 2"));
    // Self-contained: script and style inline, nothing fetched.
    assert!(!page.contains("<script src") && !page.contains("<link"));

    // A budget that runs out: unknown, exit 3. (The stale read above is decided without a
    // search; this history needs one.)
    let (code, out, _) = check(&good, &["--model", "cas-register", "--max-steps", "1"]);
    assert_eq!(code, Some(3), "{out}");
    assert!(out.starts_with("unknown: 5 operations"), "{out}");
    assert!(
        out.contains("1 key(s) undecided: step budget of 1 search steps exhausted"),
        "{out}"
    );
}

#[test]
fn bad_files_are_reported_with_their_line() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "h.jsonl",
        &[
            STALE[0],
            r#"{"type":"ok","process":0,"f":"write","value":1}"#,
        ],
    );
    let (code, _, err) = check(&p, &["--model", "register"]);
    assert_eq!(code, Some(2));
    assert_eq!(
        err.trim(),
        format!("ordeal: error: {}:2: missing field \"time\"", p.display())
    );
    let (code, _, err) = check(&dir.path().join("missing.jsonl"), &["--model", "kv"]);
    assert_eq!(code, Some(2));
    assert!(
        err.contains("missing.jsonl: No such file or directory"),
        "{err}"
    );
    let (code, _, err) = check(&p, &["--model", "set"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("invalid value 'set'"), "{err}");
}

#[test]
fn jepsen_edn_histories_are_imported() {
    let dir = tempfile::tempdir().unwrap();
    let edn = "[{:process 0, :type :invoke, :f :write, :value 1, :time 10, :index 0}\n\
               {:process :nemesis, :type :info, :f :start, :value nil, :time 11, :index 1}\n\
               {:process 0, :type :ok, :f :write, :value 1, :time 20, :index 2}\n\
               {:process 1, :type :invoke, :f :cas, :value [1 2], :time 30, :index 3}\n\
               {:process 1, :type :ok, :f :cas, :value [1 2], :time 40, :index 4}\n\
               {:process 0, :type :invoke, :f :read, :value nil, :time 50, :index 5}\n\
               {:process 0, :type :ok, :f :read, :value 1, :time 60, :index 6}]\n";
    let p = dir.path().join("history.edn");
    std::fs::write(&p, edn).unwrap();
    let (code, out, _) = check(&p, &["--model", "cas-register"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("reads 1, but the value is 2"), "{out}");
    assert!(out.contains(&format!("({}:6)", p.display())), "{out}");
    // The same text as jsonl fails to parse: --format overrides the extension.
    let (code, _, err) = check(&p, &["--model", "cas-register", "--format", "jsonl"]);
    assert_eq!(code, Some(2));
    assert!(err.contains(":1: not JSON"), "{err}");
}

/// A started process, killed and reaped on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `cmd` and waits (reading its output, at most 30 s) until a line containing each of
/// `lines` has appeared on stdout or stderr.
fn start(mut cmd: Command, lines: &[&str]) -> Proc {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = Proc(cmd.spawn().expect("starts"));
    let (tx, rx) = mpsc::channel::<String>();
    let pipes: Vec<Box<dyn Read + Send>> = vec![
        Box::new(child.0.stdout.take().unwrap()),
        Box::new(child.0.stderr.take().unwrap()),
    ];
    for pipe in pipes {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    // Nobody listens any more: keep draining so the process never blocks.
                    continue;
                }
            }
        });
    }
    let mut missing: Vec<&str> = lines.to_vec();
    let mut seen = Vec::new();
    while !missing.is_empty() {
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(line) => {
                missing.retain(|m| !line.contains(m));
                seen.push(line);
            }
            Err(_) => panic!("never printed {missing:?}; output:\n{}", seen.join("\n")),
        }
    }
    child
}

/// Runs a workload and checks its history; returns check-history's exit code and output.
fn record_and_check(kind: &str, addrs: &str, ops: u64, keys: u64, dir: &Path) -> (i32, String) {
    let out = dir.join(format!("{kind}.jsonl"));
    let ops_s = ops.to_string();
    let keys_s = keys.to_string();
    let w = ordeal(&[
        "workload",
        kind,
        "--addr",
        addrs,
        "--processes",
        "5",
        "--rate",
        "0",
        "--ops",
        &ops_s,
        "--keys",
        &keys_s,
        "--duration",
        "60s",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(
        w.status.code(),
        Some(0),
        "{}{}",
        text(&w.stdout),
        text(&w.stderr)
    );
    assert!(
        text(&w.stdout).starts_with(&format!("workload: {ops} ops (")),
        "{}",
        text(&w.stdout)
    );
    // Every invocation has its completion; times are monotonic; keys are k0..k{keys-1}.
    let h: Vec<serde_json::Value> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(h.len() as u64, 2 * ops);
    assert_eq!(
        h.iter().filter(|e| e["type"] == "invoke").count() as u64,
        ops
    );
    assert!(h
        .windows(2)
        .all(|w| w[0]["time"].as_u64() <= w[1]["time"].as_u64()));
    let keys_seen: std::collections::BTreeSet<&str> =
        h.iter().map(|e| e["key"].as_str().unwrap()).collect();
    let expected: std::collections::BTreeSet<String> = (0..keys).map(|k| format!("k{k}")).collect();
    assert_eq!(
        keys_seen,
        expected.iter().map(String::as_str).collect(),
        "keys"
    );
    let (code, stdout, stderr) = check(&out, &["--model", "kv"]);
    (code.expect("exit code"), stdout + &stderr)
}

#[test]
fn redis_workload_records_a_linearizable_history() {
    if !ordeal_test_support::installed(&["redis-server"], "redis-server") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let port = ordeal_test_support::free_port();
    let mut cmd = Command::new("redis-server");
    cmd.args([
        "--port",
        &port.to_string(),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        dir.path().to_str().unwrap(),
    ]);
    let _redis = start(cmd, &["Ready to accept connections"]);
    let (code, out) = record_and_check("redis", &format!("127.0.0.1:{port}"), 600, 3, dir.path());
    assert_eq!(code, 0, "{out}");
    assert!(
        out.starts_with("linearizable: 600 operations, 3 keys, model kv"),
        "{out}"
    );
}

#[test]
fn etcd_workload_records_a_linearizable_history() {
    if !ordeal_test_support::installed(&["etcd"], "etcd-server") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (client, peer) = (
        ordeal_test_support::free_port(),
        ordeal_test_support::free_port(),
    );
    let mut cmd = Command::new("etcd");
    cmd.args([
        "--name",
        "n0",
        "--data-dir",
        dir.path().join("data").to_str().unwrap(),
        "--listen-client-urls",
        &format!("http://127.0.0.1:{client}"),
        "--advertise-client-urls",
        &format!("http://127.0.0.1:{client}"),
        "--listen-peer-urls",
        &format!("http://127.0.0.1:{peer}"),
        "--initial-advertise-peer-urls",
        &format!("http://127.0.0.1:{peer}"),
        "--initial-cluster",
        &format!("n0=http://127.0.0.1:{peer}"),
    ]);
    let _etcd = start(cmd, &["ready to serve client requests"]);
    let (code, out) = record_and_check("etcd", &format!("127.0.0.1:{client}"), 300, 2, dir.path());
    assert_eq!(code, 0, "{out}");
    assert!(
        out.starts_with("linearizable: 300 operations, 2 keys, model kv"),
        "{out}"
    );
}

/// Starts the demo store (`ordeal kv node` ×3) with `bugs`; returns the nodes and addresses.
fn demo(dir: &Path, bugs: &str) -> (Vec<Proc>, String) {
    let peers: Vec<String> = (0..3)
        .map(|_| format!("127.0.0.1:{}", ordeal_test_support::free_port()))
        .collect();
    let peers = peers.join(",");
    let mut nodes = Vec::new();
    for id in 0..3 {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ordeal"));
        cmd.args(["kv", "node", "--id", &id.to_string(), "--peers", &peers])
            .arg("--data-dir")
            .arg(dir.join(format!("n{id}")))
            .args(["--bugs", bugs]);
        let ready = if id == 0 {
            "node 0 is primary".to_string()
        } else {
            format!("node {id} joined primary 0")
        };
        nodes.push(start(cmd, &[&ready]));
    }
    (nodes, peers)
}

#[test]
fn kv_workload_passes_the_correct_store_and_exposes_stale_reads() {
    let dir = tempfile::tempdir().unwrap();
    let (nodes, peers) = demo(&dir.path().join("correct"), "");
    let (code, out) = record_and_check("kv", &peers, 400, 2, dir.path());
    drop(nodes);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.starts_with("linearizable: 400 operations, 2 keys, model kv"),
        "{out}"
    );

    // Backups answer reads from their own state while the primary acknowledges writes
    // before replicating them: reads after an acknowledged write return the old value.
    let (nodes, peers) = demo(&dir.path().join("buggy"), "stale-read,ack-before-replicate");
    let (code, out) = record_and_check("kv", &peers, 1500, 2, dir.path());
    drop(nodes);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.starts_with("not linearizable: 1500 operations, 2 keys"),
        "{out}"
    );
    assert!(out.contains(", but the value is "), "{out}");
}

#[test]
fn workloads_refuse_addresses_off_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("h.jsonl");
    let w = ordeal(&[
        "workload",
        "redis",
        "--addr",
        "192.0.2.1:6379",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(w.status.code(), Some(2));
    assert_eq!(
        text(&w.stderr).trim(),
        "ordeal: error: 192.0.2.1:6379: only loopback addresses are allowed (127.0.0.0/8, ::1; \
         and a run's own subnet inside its network namespaces)"
    );
    assert!(!out.exists(), "nothing recorded");
}
