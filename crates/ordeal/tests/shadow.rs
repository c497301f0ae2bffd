//! `ordeal shadow`, `ordeal clone` and `ordeal proxy` end to end, on loopback, with the demo
//! KV store as the service (one node = its own primary).

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod common;

const EXE: &str = env!("CARGO_BIN_EXE_ordeal");

/// Kills the whole group on drop.
struct Proc(Child);
impl Drop for Proc {
    fn drop(&mut self) {
        // Only our own child's group, and only while it is not yet reaped.
        if let Ok(None) = self.0.try_wait() {
            let _ = Command::new("kill")
                .args(["-s", "KILL", "--", &format!("-{}", self.0.id())])
                .status();
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_for(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

fn kv_node(port: u16, dir: &Path) -> Proc {
    let c = Command::new(EXE)
        .args(["kv", "node", "--id", "0", "--peers"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("--data-dir")
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap();
    let p = Proc(c);
    assert!(wait_for(Duration::from_secs(20), || TcpStream::connect((
        "127.0.0.1",
        port
    ))
    .is_ok()));
    p
}

fn ask(addr: &str, lines: &[&str]) -> Vec<String> {
    let c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut r = BufReader::new(c.try_clone().unwrap());
    let mut w = c;
    lines
        .iter()
        .map(|l| {
            w.write_all(format!("{l}\n").as_bytes()).unwrap();
            let mut s = String::new();
            r.read_line(&mut s).unwrap();
            s.trim().to_string()
        })
        .collect()
}

fn read_json(p: &Path) -> Option<serde_json::Value> {
    serde_json::from_slice(&std::fs::read(p).ok()?).ok()
}

#[test]
fn shadow_clones_a_running_service_and_compares() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("prod");
    let port = ordeal_test_support::free_port();
    let _prod = kv_node(port, &data);
    let prod_addr = format!("127.0.0.1:{port}");
    assert!(wait_for(Duration::from_secs(20), || ask(
        &prod_addr,
        &["SET a 1"]
    ) == ["OK"]));
    let listen = format!("127.0.0.1:{}", ordeal_test_support::free_port());
    let report = tmp.path().join("report.json");
    let cmd = format!("{EXE} kv node --id 0 --peers {{addr}} --data-dir {{data_dir}}");
    let pid = _prod.0.id().to_string();
    let shadow = Command::new(EXE)
        .args(["shadow", "--listen", &listen, "--upstream", &prod_addr])
        .args(["--cmd", &cmd, "--pid", &pid, "--data-dir"])
        .arg(&data)
        .arg("--clone-dir")
        .arg(tmp.path().join("clones"))
        .args(["--framing", "lines", "--status-every", "100ms", "--report"])
        .arg(&report)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap();
    let mut shadow = Proc(shadow);
    assert!(
        wait_for(Duration::from_secs(30), || read_json(&report)
            .is_some_and(|v| v["proxy"]["shadow"][0]["state"] == "live")),
        "the clone is up"
    );
    let answers = ask(&listen, &["GET a", "SET b 2", "GET b"]);
    assert_eq!(answers, ["VALUE 1", "OK", "VALUE 2"]);
    assert!(wait_for(Duration::from_secs(20), || read_json(&report)
        .is_some_and(|v| v["proxy"]["shadow"][0]["comparison"]
            ["connections_identical"]
            == 1)));
    Command::new("kill")
        .args(["-s", "TERM", "--", &shadow.0.id().to_string()])
        .status()
        .unwrap();
    let st = wait_for(Duration::from_secs(20), || {
        matches!(shadow.0.try_wait(), Ok(Some(_)))
    });
    assert!(st, "ordeal shadow stops on SIGTERM");
    let v = read_json(&report).unwrap();
    assert_eq!(v["final"], true);
    let t = &v["proxy"]["shadow"][0];
    assert_eq!(t["name"], "clone");
    assert_eq!(t["connections_fed"], 1);
    assert_eq!(t["overflows"], 0);
    assert_eq!(t["comparison"]["messages_identical"], 3);
    assert_eq!(t["comparison"]["messages_different"], 0);
    let snap = &v["clones"][0]["snapshot"];
    assert!(snap["pause_seconds"].as_f64().unwrap() > 0.0);
    assert!(["copy", "reflink"].contains(&snap["method"].as_str().unwrap()));
    assert_eq!(snap["paused"][0].as_u64().unwrap().to_string(), pid);
    // Production itself was not changed by the copy's writes, and is still up.
    assert_eq!(ask(&prod_addr, &["GET b"]), ["VALUE 2"]);
    let mut out = String::new();
    std::io::Read::read_to_string(shadow.0.stdout.as_mut().unwrap(), &mut out).unwrap();
    assert!(out.contains("shadow summary"), "{out}");
}

#[test]
fn clone_standalone_reports_pause_and_copy() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("prod");
    let port = ordeal_test_support::free_port();
    let prod = kv_node(port, &data);
    let addr = format!("127.0.0.1:{port}");
    assert!(wait_for(Duration::from_secs(20), || ask(
        &addr,
        &["SET k v"]
    ) == ["OK"]));
    let cmd = format!("{EXE} kv node --id 0 --peers {{addr}} --data-dir {{data_dir}}");
    let out = Command::new(EXE)
        .args(["clone", "--cmd", &cmd, "--pid", &prod.0.id().to_string()])
        .arg("--data-dir")
        .arg(&data)
        .args(["--duration", "500ms"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["snapshot"]["pause_seconds"].as_f64().unwrap() > 0.0);
    assert!(
        v["snapshot"]["files_copied"].as_u64().unwrap()
            + v["snapshot"]["files_reflinked"].as_u64().unwrap()
            >= 1
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("paused production"));
    // The copy was killed at the end: its port is free again.
    let addr = v["addr"].as_str().unwrap();
    assert!(wait_for(Duration::from_secs(5), || TcpStream::connect(
        addr
    )
    .is_err()));
}

#[test]
fn clone_rejects_bad_input() {
    let out = Command::new(EXE)
        .args([
            "clone",
            "--cmd",
            "x 'y",
            "--pid",
            "999999999",
            "--data-dir",
            "/nonexistent",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = Command::new(EXE)
        .args([
            "shadow",
            "--listen",
            "127.0.0.1:0",
            "--upstream",
            "127.0.0.1:1",
            "--window",
            "lots",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn proxy_applies_a_toxic_schedule() {
    // An echo-like upstream: the KV store answers ERR lines to anything.
    let tmp = tempfile::tempdir().unwrap();
    let port = ordeal_test_support::free_port();
    let _prod = kv_node(port, &tmp.path().join("d"));
    let addr = format!("127.0.0.1:{port}");
    assert!(wait_for(Duration::from_secs(20), || ask(
        &addr,
        &["SET w 1"]
    ) == ["OK"]));
    let listen = format!("127.0.0.1:{}", ordeal_test_support::free_port());
    let api = format!("127.0.0.1:{}", ordeal_test_support::free_port());
    let p = Command::new(EXE)
        .args(["proxy", "--api", &api, "--proxy"])
        .arg(format!("kv={listen}=127.0.0.1:{port}"))
        .args([
            "--at",
            r#"0s:kv:{"type":"latency","attributes":{"latency":300}}"#,
        ])
        .args(["--at", "1500ms:kv:-latency_downstream"])
        .args(["--duration", "20s"])
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap();
    let _p = Proc(p);
    assert!(wait_for(Duration::from_secs(10), || TcpStream::connect(
        &listen
    )
    .is_ok()));
    // The `0s` toxic is added just after the proxy listens: wait until the API shows it.
    assert!(wait_for(Duration::from_secs(10), || http_get(
        &api,
        "/proxies/kv/toxics"
    )
    .is_some_and(|b| b.contains("latency"))));
    let t0 = Instant::now();
    assert_eq!(ask(&listen, &["SET x 1"]), ["OK"]);
    let d = t0.elapsed();
    assert!(d >= Duration::from_millis(250), "latency toxic on: {d:?}");
    assert!(wait_for(Duration::from_secs(10), || {
        let t0 = Instant::now();
        ask(&listen, &["GET x"]) == ["VALUE 1"] && t0.elapsed() < Duration::from_millis(250)
    }));
}

/// GET `path` from the HTTP API at `addr`; the whole response (None if it cannot connect).
fn http_get(addr: &str, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut c = TcpStream::connect(addr).ok()?;
    c.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        c,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut body = String::new();
    c.read_to_string(&mut body).ok()?;
    Some(body)
}

/// `ordeal run EXP --out RUN`, which must pass (its output and the shadow's log otherwise).
fn run_ok(exp: &Path, run: &Path) {
    let o = Command::new(EXE)
        .args(["run", "-q", "--out"])
        .arg(run)
        .arg(exp)
        .output()
        .unwrap();
    let shadow_out = std::fs::read_to_string(run.join("shadow.out")).unwrap_or_default();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}\n{}\nshadow: {shadow_out}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// `ordeal shadow --node` from inside a real, traced `ordeal run`: a workload shadows node n0
/// of its own run (found from ORDEAL_RUN_DIR), drives the demo client through the proxy, and
/// stops the shadow. The node, paused under ptrace for the copy, resumes; every response of the
/// clone equals production's; the clone and its copy die with the run.
#[test]
fn shadow_of_a_node_inside_a_traced_run() {
    let tmp = tempfile::tempdir().unwrap();
    let exp = tmp.path().join("shadow-in-run.toml");
    std::fs::write(
        &exp,
        r#"name = "shadow-in-run"
timeout = "90s"

[[node]]
name = "n0"
argv = ["{ordeal}", "kv", "node", "--id", "0", "--peers", "{host.n0}:{port.n0}",
        "--data-dir", "{data_dir.n0}"]
data_dir = true
ready = { log = "is primary" }

[[workload]]
name = "shadowed"
argv = ["sh", "-c", """
set -e
"$0" shadow --node n0 --listen 127.0.0.1:$1 --upstream 127.0.0.1:$2 --framing lines \
    --status-every 100ms --report "$ORDEAL_RUN_DIR/shadow.json" --duration 60s \
    > "$ORDEAL_RUN_DIR/shadow.out" 2>&1 &
S=$!
i=0
until grep -Eq '"state": ?"live"' "$ORDEAL_RUN_DIR/shadow.json" 2>/dev/null; do
    i=$((i+1)); if [ $i -gt 600 ]; then kill $S; exit 3; fi
    sleep 0.05
done
"$0" kv client --nodes 127.0.0.1:$1 --ops 20 --seed 3
kill -TERM $S
# Stopped by a signal, ordeal shadow exits 130 after writing its final report.
wait $S || test $? -eq 130
""", "{ordeal}", "{port.px}", "{port.n0}"]
"#,
    )
    .unwrap();
    let run = tmp.path().join("run");
    run_ok(&exp, &run);
    let s = common::summary(&run);
    assert_eq!(s["verdict"]["status"], "pass");
    let v = read_json(&run.join("shadow.json")).unwrap();
    assert_eq!(v["final"], true);
    let t = &v["proxy"]["shadow"][0];
    assert_eq!(t["name"], "clone");
    assert_eq!(t["overflows"], 0, "{t}");
    // Every one of the client's 20 requests answered the same by the clone.
    assert_eq!(t["comparison"]["messages_identical"], 20, "{t}");
    assert_eq!(t["comparison"]["messages_different"], 0, "{t}");
    let fed = t["connections_fed"].as_u64().unwrap();
    assert!(fed >= 1, "{t}");
    assert_eq!(t["comparison"]["connections_identical"], fed, "{t}");
    // The paused process is the traced node n0 (its group), and it went on serving.
    let evs = common::events(&run);
    let n0 = evs
        .iter()
        .find(|e| e["node"] == "n0" && e["call"] == "spawn")
        .unwrap();
    let clone = &v["clones"][0];
    assert_eq!(clone["snapshot"]["paused"][0], n0["pid"], "{clone}");
    assert_eq!(clone["snapshot"]["paused_scope"], "group");
    assert!(clone["snapshot"]["pause_seconds"].as_f64().unwrap() > 0.0);
    // The copy is in the run directory, not in n0's data dir.
    let dest = clone["snapshot"]["dest"].as_str().unwrap();
    assert!(Path::new(dest).starts_with(&run), "{dest}");
    assert!(!Path::new(dest).starts_with(run.join("data/n0")), "{dest}");
    // Nothing escaped: the clone process is gone.
    let pid = clone["pid"].as_i64().unwrap();
    // (Pids are reused quickly in a test's pid namespace: the clone is the process running
    // on its copy of the data.)
    assert!(
        !std::fs::read(format!("/proc/{pid}/cmdline"))
            .is_ok_and(|c| String::from_utf8_lossy(&c).contains(dest)),
        "clone {pid} survived"
    );
}

/// docs/shadow.md's "Within an experiment" recipe, as written: `ordeal shadow --node` as an
/// untraced node of the run, the workload talking to it.
#[test]
fn shadow_node_recipe_from_the_docs_runs_as_written() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/shadow.md"))
        .unwrap();
    let start = doc.find("## Within an experiment").unwrap();
    let block = &doc[start..];
    let toml_start = block.find("```toml\n").unwrap() + "```toml\n".len();
    let toml_len = block[toml_start..].find("```").unwrap();
    let recipe = &block[toml_start..toml_start + toml_len];
    let tmp = tempfile::tempdir().unwrap();
    let exp = tmp.path().join("recipe.toml");
    std::fs::write(
        &exp,
        format!("name = \"shadow-recipe\"\ntimeout = \"90s\"\n\n{recipe}"),
    )
    .unwrap();
    let run = tmp.path().join("run");
    run_ok(&exp, &run);
    assert_eq!(common::summary(&run)["verdict"]["status"], "pass");
    let evs = common::events(&run);
    let primary = evs
        .iter()
        .find(|e| e["node"] == "primary" && e["call"] == "spawn")
        .unwrap();
    let front: Vec<&str> = evs
        .iter()
        .filter(|e| e["node"] == "front")
        .filter_map(|e| e["call"].as_str())
        .collect();
    assert!(
        front.iter().all(|c| ["spawn", "exit"].contains(c)),
        "front is untraced: {front:?}"
    );
    // The final report: the run stopped the shadow node with its stop_signal (SIGTERM).
    let v = read_json(&run.join("shadow.json")).unwrap();
    assert_eq!(v["final"], true);
    let t = &v["proxy"]["shadow"][0];
    assert_eq!(t["comparison"]["messages_identical"], 100, "{t}");
    assert_eq!(t["comparison"]["messages_different"], 0, "{t}");
    let front = common::summary(&run)["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == "front")
        .unwrap()["processes"][0]
        .clone();
    assert_eq!(front["code"], 130, "{front}");
    let clone = &v["clones"][0];
    assert_eq!(clone["snapshot"]["paused"][0], primary["pid"], "{clone}");
    let dest = clone["snapshot"]["dest"].as_str().unwrap();
    assert!(Path::new(dest).starts_with(run.join("shadow")), "{dest}");
    // (Pids are reused quickly in a test's pid namespace: the clone is the process running
    // on its copy of the data.)
    let pid = clone["pid"].as_i64().unwrap();
    let running = || {
        std::fs::read(format!("/proc/{pid}/cmdline"))
            .is_ok_and(|c| String::from_utf8_lossy(&c).contains(dest))
    };
    assert!(
        wait_for(Duration::from_secs(10), || !running()),
        "clone {pid} survived the run"
    );
}
