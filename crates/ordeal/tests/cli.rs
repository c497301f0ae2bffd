//! End-to-end tests of the `ordeal` binary: the demo, bad input, and cleanup on every exit path.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn ordeal() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ordeal"))
}

fn run_ok(args: &[&str]) -> Output {
    let out = ordeal().args(args).output().expect("ordeal runs");
    assert!(
        out.status.success(),
        "ordeal {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// Processes whose environment carries this run directory: everything ordeal started.
fn survivors(run_dir: &Path) -> Vec<i32> {
    let needle = format!("ORDEAL_RUN_DIR={}", run_dir.display());
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(env) = std::fs::read(entry.path().join("environ")) else {
            continue;
        };
        let zombie = std::fs::read_to_string(entry.path().join("stat"))
            .map(|s| s.contains(") Z "))
            .unwrap_or(true);
        if !zombie && env.split(|&b| b == 0).any(|v| v == needle.as_bytes()) {
            found.push(pid);
        }
    }
    found
}

#[test]
fn demo_runs_traced_and_reports_exact_structure() {
    demo_structure(None);
}

/// The demo's structure is the same whichever engine saw it.
#[test]
fn demo_under_ptrace_reports_the_same_structure() {
    demo_structure(Some("ptrace"));
}

/// `engine`: None for the default (auto: eBPF where it loads).
fn demo_structure(engine: Option<&str>) {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("run");
    let mut args = vec!["demo", "--out", out_dir.to_str().unwrap(), "-q"];
    if let Some(e) = engine {
        args.extend(["--engine", e]);
    }
    let out = run_ok(&args);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("verdict  PASS"), "{stdout}");
    for f in [
        "trace.jsonl",
        "graph.dot",
        "trace.json",
        "summary.json",
        "hb.jsonl",
    ] {
        assert!(out_dir.join(f).exists(), "{f} missing");
    }
    let s = json(&out_dir.join("summary.json"));
    assert_eq!(s["verdict"]["status"], "pass");
    if let Some(e) = engine {
        assert_eq!(s["engine"]["name"], e);
    }
    assert_eq!(s["engine"]["lost_events"], 0);
    let names: Vec<&str> = s["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["n0", "n1", "n2", "client"]);
    let pair = |from: &str, to: &str| {
        s["pairs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["from"] == from && p["to"] == to)
            .map(|p| p["bytes"].as_u64().unwrap())
            .unwrap_or(0)
    };
    // The client talks to the primary; the primary replicates to both backups, which ack.
    assert!(pair("client", "n0") > 0 && pair("n0", "client") > 0);
    assert!(pair("n0", "n1") > 0 && pair("n0", "n2") > 0);
    assert!(pair("n1", "n0") > 0 && pair("n2", "n0") > 0);
    // Byte-range matching is exact: every byte the client sent over a traced connection was
    // received by a traced node, so the matched bytes equal the client's sent bytes.
    let events: Vec<serde_json::Value> = std::fs::read_to_string(out_dir.join("trace.jsonl"))
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let client_sent: u64 = events
        .iter()
        .filter(|e| e["node"] == "client" && e["class"] == "data")
        .filter(|e| ["write", "writev", "sendto", "sendmsg"].contains(&e["call"].as_str().unwrap()))
        .filter_map(|e| e["ret"].as_i64())
        .filter(|&r| r > 0)
        .map(|r| r as u64)
        .sum();
    let matched: u64 = ["n0", "n1", "n2"].iter().map(|n| pair("client", n)).sum();
    assert_eq!(client_sent, matched);
    // Every node was killed at teardown; the client ended on its own with 0.
    for n in s["nodes"].as_array().unwrap() {
        let status = n["processes"][0]["signal"].as_str().map(str::to_string);
        let code = n["processes"][0]["code"].as_i64();
        if n["name"] == "client" {
            assert_eq!(code, Some(0));
        } else {
            assert_eq!(status.as_deref(), Some("SIGKILL"), "{n}");
        }
    }
    // Persistence calls under the data dirs were recorded: the demo saves with rename + fsync.
    let renames = events
        .iter()
        .filter(|e| e["call"] == "rename" && e["node"] == "n0")
        .count();
    assert!(renames > 0);
    assert!(events
        .iter()
        .any(|e| e["call"] == "fsync" && e["node"] == "n1"));
    assert!(survivors(&out_dir).is_empty());

    // `ordeal graph` rebuilds the same summary from trace.jsonl.
    let before = std::fs::read(out_dir.join("summary.json")).unwrap();
    std::fs::remove_file(out_dir.join("graph.dot")).unwrap();
    run_ok(&["graph", out_dir.to_str().unwrap()]);
    assert_eq!(std::fs::read(out_dir.join("summary.json")).unwrap(), before);
    assert!(out_dir.join("graph.dot").exists());
}

/// Runs an experiment that must be refused (exit 2); returns its --out and the error text.
fn run_refused(exp: &Path) -> (PathBuf, String) {
    let out_dir = exp.with_extension("run");
    let out = ordeal()
        .args([
            "run",
            exp.to_str().unwrap(),
            "--out",
            out_dir.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    (out_dir, String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn unknown_key_is_reported_with_position_and_nothing_starts() {
    let dir = tempfile::tempdir().unwrap();
    let exp = dir.path().join("bad.toml");
    std::fs::write(
        &exp,
        "name = \"bad\"\n[[node]]\nname = \"a\"\nargvv = [\"true\"]\n",
    )
    .unwrap();
    let (out_dir, err) = run_refused(&exp);
    assert!(
        err.contains(&format!("{}:4:1: unknown field `argvv`", exp.display())),
        "{err}"
    );
    assert!(!out_dir.exists(), "nothing may be created for a bad file");
}

#[test]
fn missing_program_is_reported_before_anything_starts() {
    let dir = tempfile::tempdir().unwrap();
    let exp = dir.path().join("missing.toml");
    std::fs::write(
        &exp,
        "name = \"m\"\n[[node]]\nname = \"ok\"\nargv = [\"sleep\", \"100\"]\n\
         [[node]]\nname = \"gone\"\nargv = [\"/nonexistent/server\"]\n",
    )
    .unwrap();
    let (out_dir, err) = run_refused(&exp);
    assert!(
        err.contains("gone") && err.contains("/nonexistent/server"),
        "{err}"
    );
    assert!(!out_dir.exists());
}

/// An experiment whose node forks a process that escapes into its own session, and whose
/// workload never ends on its own.
fn stubborn(dir: &Path) -> PathBuf {
    let exp = dir.join("stubborn.toml");
    std::fs::write(
        &exp,
        r#"name = "stubborn"
timeout = "120s"
[[node]]
name = "server"
argv = ["sh", "-c", "setsid sleep 300 & echo up; exec sleep 300"]
ready = { log = "^up$" }
[[workload]]
name = "forever"
argv = ["sh", "-c", "echo working; sleep 300"]
"#,
    )
    .unwrap();
    exp
}

fn wait_for_line(path: &Path, line: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if std::fs::read_to_string(path)
            .map(|s| s.lines().any(|l| l == line))
            .unwrap_or(false)
        {
            return;
        }
        std::thread::park_timeout(Duration::from_millis(10));
    }
    panic!("{line:?} never appeared in {}", path.display());
}

fn no_survivors_after(signal: Option<i32>, env: Option<(&str, &str)>) -> Option<i32> {
    no_survivors_after_in(signal, env).0
}

/// Runs the stubborn experiment, signals ordeal, checks nothing survives; returns ordeal's exit
/// code and the directory holding the run (`run/` inside it).
fn no_survivors_after_in(
    signal: Option<i32>,
    env: Option<(&str, &str)>,
) -> (Option<i32>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let exp = stubborn(dir.path());
    let out_dir = dir.path().join("run");
    let mut cmd = ordeal();
    cmd.args([
        "run",
        exp.to_str().unwrap(),
        "--out",
        out_dir.to_str().unwrap(),
        "-q",
    ])
    .stdout(Stdio::null())
    .stderr(Stdio::null());
    if let Some((k, v)) = env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    if let Some(sig) = signal {
        wait_for_line(&out_dir.join("logs/forever.stdout"), "working");
        // Three processes at least: the node's shell→sleep, the escaped sleep, the workload.
        let deadline = Instant::now() + Duration::from_secs(30);
        while survivors(&out_dir).len() < 3 && Instant::now() < deadline {
            std::thread::park_timeout(Duration::from_millis(10));
        }
        assert!(survivors(&out_dir).len() >= 3, "{:?}", survivors(&out_dir));
        // SAFETY: our own child, not yet reaped (wait() comes below).
        unsafe { libc_kill(child.id() as i32, sig) };
    }
    let status = child.wait().unwrap();
    assert!(
        out_dir.join("logs/forever.stdout").exists(),
        "the run got as far as starting its workload"
    );
    // The kernel delivers EXITKILL/parent-death kills asynchronously: poll briefly.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !survivors(&out_dir).is_empty() && Instant::now() < deadline {
        std::thread::park_timeout(Duration::from_millis(10));
    }
    assert_eq!(survivors(&out_dir), Vec::<i32>::new(), "processes survived");
    (status.code(), dir)
}

extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}

#[test]
fn sigterm_to_ordeal_leaves_no_process_behind() {
    assert_eq!(no_survivors_after(Some(15), None), Some(130));
}

#[test]
fn sigint_to_ordeal_leaves_no_process_behind() {
    assert_eq!(no_survivors_after(Some(2), None), Some(130));
}

#[test]
fn sigkill_to_ordeal_leaves_no_process_behind() {
    // ordeal cannot clean up: PTRACE_O_EXITKILL and the parent-death signal must. Nor can it
    // remove its checkpoint socket: that goes in the run directory, not in $TMPDIR.
    let tmpdir = tempfile::tempdir().unwrap();
    let tmp = tmpdir.path().to_str().unwrap();
    let (code, out_dir) = no_survivors_after_in(Some(9), Some(("TMPDIR", tmp)));
    assert_eq!(code, None);
    let left: Vec<String> = std::fs::read_dir(tmpdir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("ordeal-ckpt-"))
        .collect();
    assert!(left.is_empty(), "left in $TMPDIR: {left:?}");
    // What was flushed before the kill is still a readable trace.
    run_ok(&["graph", out_dir.path().join("run").to_str().unwrap()]);
}

#[test]
fn panic_in_ordeal_leaves_no_process_behind() {
    let code = no_survivors_after(None, Some(("ORDEAL_TEST_PANIC", "1")));
    assert_eq!(code, Some(101), "a panic exits with Rust's panic code");
}

#[test]
fn help_and_version() {
    let v = run_ok(&["--version"]);
    assert_eq!(
        String::from_utf8_lossy(&v.stdout).trim(),
        format!("ordeal {}", env!("CARGO_PKG_VERSION"))
    );
    for sub in ["run", "demo", "graph"] {
        let h = run_ok(&[sub, "--help"]);
        assert!(String::from_utf8_lossy(&h.stdout).contains("Usage: ordeal"));
    }
}

#[test]
fn two_runs_at_once_do_not_collide() {
    let dir = tempfile::tempdir().unwrap();
    let outs: Vec<PathBuf> = (0..2).map(|i| dir.path().join(format!("run{i}"))).collect();
    let children: Vec<_> = outs
        .iter()
        .map(|o| {
            ordeal()
                .args(["demo", "--out", o.to_str().unwrap(), "-q"])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let ports = |o: &Path| -> Vec<u64> {
        let t = std::fs::read_to_string(o.join("trace.jsonl")).unwrap();
        let h: serde_json::Value = serde_json::from_str(t.lines().next().unwrap()).unwrap();
        h["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|n| n["ports"].as_array().cloned().unwrap_or_default())
            .map(|p| p.as_u64().unwrap())
            .collect()
    };
    let (a, b) = (ports(&outs[0]), ports(&outs[1]));
    assert_eq!(a.len(), 3);
    assert!(a.iter().all(|p| !b.contains(p)), "{a:?} vs {b:?}");
}

#[test]
fn started_workloads_run_before_readiness_and_untraced_ones_leave_only_lifecycle() {
    let dir = tempfile::tempdir().unwrap();
    let exp = dir.path().join("order.toml");
    // The node only becomes ready once the `after = "started"` workload has created `go`.
    std::fs::write(
        &exp,
        r#"name = "order"
[[node]]
name = "server"
argv = ["sleep", "300"]
ready = { command = ["test", "-e", "{run_dir}/go"] }
ready_timeout = "20s"
[[workload]]
name = "opener"
after = "started"
trace = false
argv = ["touch", "{run_dir}/go"]
"#,
    )
    .unwrap();
    let out_dir = dir.path().join("run");
    run_ok(&[
        "run",
        exp.to_str().unwrap(),
        "--out",
        out_dir.to_str().unwrap(),
        "-q",
    ]);
    let calls: Vec<String> = std::fs::read_to_string(out_dir.join("trace.jsonl"))
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|e| e["node"] == "opener")
        .map(|e| e["call"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(calls, ["spawn", "exit"]);
}

#[test]
fn the_check_sees_the_run_and_decides_the_verdict() {
    let dir = tempfile::tempdir().unwrap();
    for (code, verdict) in [(0, Some(0)), (3, Some(1))] {
        let exp = dir.path().join(format!("check{code}.toml"));
        std::fs::write(
            &exp,
            format!(
                r#"name = "checked"
[[node]]
name = "server"
argv = ["sleep", "300"]
data_dir = true
ports = ["p"]
ready = {{ command = ["test", "-d", "{{data_dir.server}}"] }}
[[workload]]
name = "client"
argv = ["echo", "{{port.p}}"]
[check]
argv = ["sh", "-c", "test \"$ORDEAL_PORT_P\" = {{port.p}} && test \"$ORDEAL_HOST_SERVER:$ORDEAL_HOST_CLIENT\" = 127.0.0.1:127.0.0.1 && test -d \"$ORDEAL_DATA_DIR_SERVER\" && echo checked && exit {code}"]
"#
            ),
        )
        .unwrap();
        let out_dir = dir.path().join(format!("run{code}"));
        let out = ordeal()
            .args([
                "run",
                exp.to_str().unwrap(),
                "--out",
                out_dir.to_str().unwrap(),
                "-q",
            ])
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            verdict,
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            std::fs::read_to_string(out_dir.join("logs/check.stdout")).unwrap(),
            "checked\n"
        );
        let s = json(&out_dir.join("summary.json"));
        if code == 0 {
            assert_eq!(s["verdict"]["status"], "pass");
        } else {
            assert!(s["verdict"]["reasons"][0]
                .as_str()
                .unwrap()
                .starts_with("check failed (exit 3)"));
        }
    }
}

#[test]
fn a_node_cannot_take_the_check_name() {
    let dir = tempfile::tempdir().unwrap();
    let exp = dir.path().join("taken.toml");
    std::fs::write(
        &exp,
        "name = \"t\"\n[[node]]\nname = \"check\"\nargv = [\"true\"]\n[check]\nargv = [\"true\"]\n",
    )
    .unwrap();
    let (out_dir, err) = run_refused(&exp);
    assert!(
        err.contains(&format!(
            "{}:3:8: the name `check` is taken by [check]",
            exp.display()
        )),
        "{err}"
    );
    assert!(!out_dir.exists());
}

/// A node that never gets ready: the run ends in error, and the reason says what the check
/// waited for, what to change, and the end of the node's stderr; nothing is left running.
#[test]
fn a_node_not_ready_in_time_says_what_it_waited_for_and_what_to_change() {
    let dir = tempfile::tempdir().unwrap();
    let exp = dir.path().join("slow.toml");
    std::fs::write(
        &exp,
        r#"name = "slow"
[[node]]
name = "db"
argv = ["sh", "-c", "echo 'loading 3 of 9 tables' >&2; exec sleep 60"]
ports = ["db"]
ready = { tcp = "127.0.0.1:{port.db}" }
ready_timeout = "300ms"

[[node]]
name = "web"
argv = ["sleep", "60"]
ready = { log = "^listening" }

[[workload]]
name = "client"
argv = ["true"]
"#,
    )
    .unwrap();
    let run = dir.path().join("run");
    let out = ordeal()
        .args([
            "run",
            exp.to_str().unwrap(),
            "--out",
            run.to_str().unwrap(),
            "-q",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let s = json(&run.join("summary.json"));
    let reason = s["verdict"]["reasons"][0].as_str().unwrap();
    let port = reason
        .split("127.0.0.1:")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .unwrap_or_else(|| panic!("{reason}"));
    assert!(port.parse::<u16>().is_ok(), "{reason}");
    assert_eq!(
        reason,
        format!(
            "node db was not ready within 300ms: nothing accepted a connection at \
             127.0.0.1:{port} (if it is only slow, raise its `ready_timeout`); last lines of \
             {}:\n  loading 3 of 9 tables",
            run.join("logs/db.stderr").display()
        )
    );
    assert!(survivors(&run).is_empty());
}

/// `stop_signal`: at the end of the run a node gets its signal first and `stop_timeout` to
/// exit (its handler runs, its exit is recorded); one that ignores it is killed after the
/// timeout; a node without it is killed at once.
#[test]
fn stop_signal_lets_nodes_exit_cleanly_and_stop_timeout_bounds_it() {
    let dir = tempfile::tempdir().unwrap();
    let exp = dir.path().join("stop.toml");
    // Each node says it started (its ready line), then waits; `clean` exits 0 on SIGTERM
    // after writing a file, `deaf` ignores SIGTERM, `plain` has no stop_signal.
    std::fs::write(
        &exp,
        r#"name = "stop"
[[node]]
name = "clean"
argv = ["sh", "-c", "trap 'echo bye > \"$ORDEAL_RUN_DIR/clean.bye\"; exit 0' TERM; echo up; while :; do sleep 0.05; done"]
ready = { log = "up" }
stop_signal = "SIGTERM"
stop_timeout = "20s"
[[node]]
name = "deaf"
argv = ["sh", "-c", "trap '' TERM; echo up; while :; do sleep 0.05; done"]
ready = { log = "up" }
stop_signal = "SIGTERM"
stop_timeout = "300ms"
[[node]]
name = "plain"
argv = ["sh", "-c", "trap 'echo bye > \"$ORDEAL_RUN_DIR/plain.bye\"; exit 0' TERM; echo up; while :; do sleep 0.05; done"]
ready = { log = "up" }
[[workload]]
name = "w"
argv = ["true"]
"#,
    )
    .unwrap();
    let run = dir.path().join("run");
    let t0 = Instant::now();
    run_ok(&[
        "run",
        "-q",
        "--out",
        run.to_str().unwrap(),
        exp.to_str().unwrap(),
    ]);
    let took = t0.elapsed();
    assert_eq!(
        std::fs::read_to_string(run.join("clean.bye")).unwrap(),
        "bye\n"
    );
    assert!(
        !run.join("plain.bye").exists(),
        "plain was killed, its trap never ran"
    );
    let s = json(&run.join("summary.json"));
    let root = |name: &str| {
        s["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["name"] == name)
            .unwrap()["processes"][0]
            .clone()
    };
    assert_eq!(root("clean")["code"], 0, "{}", root("clean"));
    assert_eq!(root("deaf")["signal"], "SIGKILL", "{}", root("deaf"));
    assert_eq!(root("plain")["signal"], "SIGKILL", "{}", root("plain"));
    // The deaf node cost its 300 ms, not the clean node's 20 s.
    assert!(took < Duration::from_secs(15), "{took:?}");
    assert!(survivors(&run).is_empty());
}

/// A user without root, as in a container without CAP_BPF: `auto` runs on ptrace and says
/// why in its first line; `--engine ebpf` is refused before anything exists. (Run as nobody
/// through `setpriv`, which needs root; skipped otherwise, outside CI.)
#[test]
fn without_privilege_auto_takes_ptrace_and_says_why() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { geteuid() } != 0 {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "CI runs as root"
        );
        eprintln!("skipped: needs root to run ordeal as another user");
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let exp = dir.path().join("t.toml");
    std::fs::write(
        &exp,
        "name = \"t\"\n[[node]]\nname = \"a\"\nargv = [\"/bin/true\"]\n",
    )
    .unwrap();
    // A copy nobody can run wherever the build lives (a clone under /root is not reachable).
    let bin = dir.path().join("ordeal");
    std::fs::copy(env!("CARGO_BIN_EXE_ordeal"), &bin).unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let as_nobody = |out: &Path, engine: &[&str]| {
        Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(&bin)
            .args(["run", exp.to_str().unwrap(), "--out", out.to_str().unwrap()])
            .args(engine)
            .output()
            .expect("setpriv runs")
    };
    let out = as_nobody(&dir.path().join("auto"), &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let first = stderr.lines().next().unwrap_or("");
    assert!(
        first.starts_with("engine: ptrace (auto: eBPF probe: ")
            && first.ends_with("(the eBPF engine needs root, or CAP_BPF and CAP_PERFMON; --engine ptrace needs neither))"),
        "{first}"
    );
    assert_eq!(
        json(&dir.path().join("auto/summary.json"))["engine"]["name"],
        "ptrace"
    );

    let refused = dir.path().join("refused");
    let out = as_nobody(&refused, &["--engine", "ebpf"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("ordeal: error: eBPF probe: "),
        "{stderr}"
    );
    assert!(!refused.exists(), "nothing is created for a refused engine");
}

extern "C" {
    fn geteuid() -> u32;
}

/// `demo` names the embedded demo wherever an experiment file is expected (as in `ordeal
/// crash demo`), unless a file of that name exists: then it is that file.
#[test]
fn demo_names_the_embedded_demo_unless_a_file_is_called_so() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let o = ordeal()
        .current_dir(dir.path())
        .args(["run", "demo", "--out", out.to_str().unwrap(), "-q"])
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(json(&out.join("summary.json"))["experiment"], "demo-kv");

    std::fs::write(dir.path().join("demo"), "name = [").unwrap();
    let o = ordeal()
        .current_dir(dir.path())
        .args([
            "run",
            "demo",
            "--out",
            dir.path().join("run2").to_str().unwrap(),
            "-q",
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.starts_with("ordeal: error: demo"), "{err}");
}
