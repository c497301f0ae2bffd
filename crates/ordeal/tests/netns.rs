//! `network = "netns"`: real namespaces per node, partitions that drop packets, and nothing
//! left behind (namespaces, holder processes, interfaces) however the run ends.

mod common;
use common::events;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn ordeal() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ordeal"))
}

fn demo_netns(dir: &Path) -> PathBuf {
    let demo = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/demo-kv.toml"),
    )
    .unwrap();
    let exp = dir.join("demo-netns.toml");
    std::fs::write(&exp, format!("network = \"netns\"\n{demo}")).unwrap();
    exp
}

fn root_interfaces() -> BTreeSet<String> {
    std::fs::read_dir("/sys/class/net")
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

/// Network namespaces in use by any process right now.
fn live_namespaces() -> BTreeSet<u64> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::metadata(e.path().join("ns/net")).ok())
        .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
        .collect()
}

/// Whether process `pid` still runs (a zombie waiting to be reaped holds nothing: when the
/// test's own parent is a PID namespace's init that does not reap, holders stay zombies).
fn alive(pid: u64) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(") ").map(|(_, rest)| rest.chars().next()))
        .flatten()
        .is_some_and(|state| state != 'Z' && state != 'X')
}

/// Checks that everything network.json lists is gone (polling briefly: the kernel delivers
/// parent-death kills asynchronously).
fn assert_nothing_left(run: &Path) {
    let net: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("network.json")).unwrap()).unwrap();
    let mut inodes: Vec<u64> = net["members"]
        .as_object()
        .unwrap()
        .values()
        .map(|m| m["netns_inode"].as_u64().unwrap())
        .collect();
    inodes.push(net["hub"]["netns_inode"].as_u64().unwrap());
    let pids: Vec<u64> = net["holder_pids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_u64().unwrap())
        .collect();
    let left = || {
        let live = live_namespaces();
        let ns: Vec<u64> = inodes
            .iter()
            .copied()
            .filter(|i| live.contains(i))
            .collect();
        let procs: Vec<u64> = pids.iter().copied().filter(|p| alive(*p)).collect();
        (ns, procs)
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while left() != (vec![], vec![]) && Instant::now() < deadline {
        std::thread::park_timeout(Duration::from_millis(10));
    }
    assert_eq!(left(), (vec![], vec![]), "namespaces or holders left");
}

fn run_demo(extra: &[&str]) -> (Output, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let exp = demo_netns(dir.path());
    let run = dir.path().join("run");
    let mut args = vec![
        "run",
        exp.to_str().unwrap(),
        "--out",
        run.to_str().unwrap(),
        "-q",
    ];
    args.extend_from_slice(extra);
    let o = ordeal().args(&args).output().unwrap();
    (o, dir)
}

#[test]
fn each_node_gets_its_own_address_and_a_partition_drops_packets_until_the_heal() {
    let before = root_interfaces();
    let dir = tempfile::tempdir().unwrap();
    let sched = dir.path().join("cut.toml");
    std::fs::write(
        &sched,
        r#"[[fault]]
name = "cut"
kind = "partition"
from = ["n0"]
to = ["n1", "n2"]
duration = "300ms"
trigger = { nth = 3, node = "n0", class = "data", direction = "send", peer = "client", when = "after" }
"#,
    )
    .unwrap();
    let (o, rdir) = run_demo(&["--faults", sched.to_str().unwrap()]);
    let run = rdir.path().join("run");
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let evs = events(&run);
    // Nodes listen on their own addresses, in file order from 10.77.0.1.
    for (node, addr) in [
        ("n0", "10.77.0.1:"),
        ("n1", "10.77.0.2:"),
        ("n2", "10.77.0.3:"),
    ] {
        let l = evs
            .iter()
            .find(|e| e["node"] == node && e["call"] == "listen")
            .unwrap();
        assert!(
            l["sock"]["local"].as_str().unwrap().starts_with(addr),
            "{l}"
        );
    }
    let at = |marker: &str| {
        evs.iter()
            .find(|e| e["fault"] == marker)
            .unwrap_or_else(|| panic!("no {marker}"))["ts"]
            .as_u64()
            .unwrap()
    };
    let (cut, heal) = (at("cut: partition n0 | n1,n2"), at("by cut: heal"));
    assert!(heal >= cut + 300_000_000);
    // The kernel drops packets: no call is held or failed by ordeal itself (the heal's own
    // `fault` event is the only effect).
    assert!(
        !evs.iter()
            .any(|e| e["call"] != "fault"
                && e["fault"].as_str().is_some_and(|f| f.starts_with("by ")))
    );
    // n0 sent to n1 during the cut (the call completed at once, into its socket buffer), and
    // n1 received it only after the heal (a retransmission).
    let sent = evs
        .iter()
        .find(|e| {
            e["node"] == "n0"
                && e["class"] == "data"
                && e["sock"]["peer_node"] == "n1"
                && e["call"]
                    .as_str()
                    .is_some_and(|c| c.starts_with("send") || c == "write")
                && e["ts"].as_u64().unwrap() > cut
        })
        .unwrap();
    assert!(sent["ts"].as_u64().unwrap() < heal, "{sent}");
    assert!(sent["ret"].as_i64().unwrap() > 0);
    let got = evs
        .iter()
        .find(|e| {
            e["node"] == "n1"
                && e["class"] == "data"
                && e["sock"]["peer_node"] == "n0"
                && e["ret"].as_i64().is_some_and(|r| r > 0)
                && e["ts"].as_u64().unwrap() + e["dur"].as_u64().unwrap() > cut
        })
        .unwrap();
    assert!(
        got["ts"].as_u64().unwrap() + got["dur"].as_u64().unwrap() >= heal,
        "{got}"
    );
    assert_nothing_left(&run);
    assert_eq!(
        root_interfaces(),
        before,
        "nothing was added to ordeal's own namespace"
    );
}

#[test]
fn a_failing_netns_run_leaves_nothing() {
    let crash = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/faults/crash-primary-after-ack.toml");
    let (o, dir) = run_demo(&[
        "--faults",
        crash.to_str().unwrap(),
        "--set",
        "bugs=ack-before-replicate",
    ]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_nothing_left(&dir.path().join("run"));
}

/// Starts a never-ending netns experiment, then signals ordeal (or lets it panic).
fn interrupted(signal: Option<i32>, env: Option<(&str, &str)>) -> Option<i32> {
    let dir = tempfile::tempdir().unwrap();
    let exp = dir.path().join("stubborn.toml");
    std::fs::write(
        &exp,
        r#"name = "stubborn"
network = "netns"
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
    let run = dir.path().join("run");
    let mut cmd = ordeal();
    cmd.args([
        "run",
        exp.to_str().unwrap(),
        "--out",
        run.to_str().unwrap(),
        "-q",
    ])
    .stdout(Stdio::null())
    .stderr(Stdio::null());
    if let Some((k, v)) = env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    if let Some(sig) = signal {
        let deadline = Instant::now() + Duration::from_secs(30);
        let working = || {
            std::fs::read_to_string(run.join("logs/forever.stdout"))
                .is_ok_and(|s| s.lines().any(|l| l == "working"))
        };
        while !working() {
            assert!(Instant::now() < deadline, "the workload never started");
            std::thread::park_timeout(Duration::from_millis(10));
        }
        // SAFETY: signalling the ordeal process this test started.
        unsafe { libc_kill(child.id() as i32, sig) };
    }
    let status = child.wait().unwrap();
    assert_nothing_left(&run);
    status.code()
}

extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}

#[test]
fn sigterm_sigkill_or_a_panic_leave_no_namespace_behind() {
    assert_eq!(interrupted(Some(15), None), Some(130));
    // ordeal cannot clean up after SIGKILL: the holders' parent-death signal does.
    assert_eq!(interrupted(Some(9), None), None);
    assert_eq!(
        interrupted(None, Some(("ORDEAL_TEST_PANIC", "1"))),
        Some(101)
    );
}

#[test]
fn an_unknown_network_is_refused_with_its_position() {
    let dir = tempfile::tempdir().unwrap();
    let exp = dir.path().join("bad.toml");
    std::fs::write(
        &exp,
        "name = \"x\"\nnetwork = \"vlan\"\n[[node]]\nname = \"a\"\nargv = [\"true\"]\n",
    )
    .unwrap();
    let o = ordeal()
        .args(["run", exp.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("bad.toml:2:11")
            && err.contains("unknown network `vlan`: expected `loopback` or `netns`"),
        "{err}"
    );
}

/// The recording clients accept the run's own addresses in netns mode, so a history check
/// works there: the demo under four recording clients is linearizable, then nothing is left.
#[test]
fn recording_clients_and_a_history_check_work_in_netns_mode() {
    let tmp = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/demo-kv-history.toml"),
    )
    .unwrap();
    let exp = tmp.path().join("history-netns.toml");
    std::fs::write(&exp, format!("network = \"netns\"\n{text}")).unwrap();
    let run = tmp.path().join("run");
    let o = ordeal()
        .args([
            "run",
            exp.to_str().unwrap(),
            "--out",
            run.to_str().unwrap(),
            "-q",
        ])
        .args(["--set", "ops=60"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{stdout}");
    let report = std::fs::read_to_string(run.join("history-check.txt")).unwrap();
    assert!(
        report.starts_with("linearizable: 60 operations"),
        "{report}"
    );
    // The clients reached the nodes on the run's own subnet.
    let history = std::fs::read_to_string(run.join("history.jsonl")).unwrap();
    assert_eq!(history.lines().count(), 120);
    assert!(
        events(&run).iter().any(|e| e["node"] == "clients"
            && e["call"] == "connect"
            && e["addr"]
                .as_str()
                .is_some_and(|a| a.starts_with("10.77.0."))),
        "no client connected to a 10.77.0.x address"
    );
    assert_nothing_left(&run);
}
