//! Nothing escapes a SIGKILL of ordeal (issue 18 item 1): the children of a `[check]` and of a
//! `trace = false` node — untraced, so no `PTRACE_O_EXITKILL`, and not the direct child that
//! the parent-death signal reaches — are taken down by the keeper (`ordeal_sys::keeper`), in
//! loopback and netns modes; in netns mode no namespace (hub with bridge `ordeal0`, nodes')
//! survives, and no checkpoint socket directory is left in $TMPDIR.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What forks the grandchild that must not escape.
#[derive(Clone, Copy, Debug)]
enum Forker {
    Check,
    UntracedNode,
    /// An untraced node whose grandchild leaves its process group (`setsid`): found by its
    /// namespace, so netns mode only.
    UntracedNodeSetsid,
}

fn experiment(dir: &Path, netns: bool, forker: Forker, pidfile: &Path) -> PathBuf {
    let network = if netns { "network = \"netns\"\n" } else { "" };
    // The grandchild: a `sleep` in the background whose pid goes to `pidfile`.
    let setsid = match forker {
        Forker::UntracedNodeSetsid => "setsid ",
        _ => "",
    };
    let fork = format!("{setsid}sleep 300 & echo $! > '{}'", pidfile.display());
    let body = match forker {
        Forker::Check => format!(
            r#"[[node]]
name = "server"
argv = ["sh", "-c", "echo up; exec sleep 300"]
ready = {{ log = "^up$" }}
[check]
argv = ["sh", "-c", "{fork}; echo checking; wait"]
"#
        ),
        Forker::UntracedNode | Forker::UntracedNodeSetsid => format!(
            r#"[[node]]
name = "server"
trace = false
argv = ["sh", "-c", "{fork}; echo up; wait"]
ready = {{ log = "^up$" }}
[[workload]]
name = "forever"
argv = ["sh", "-c", "echo working; sleep 300"]
"#
        ),
    };
    let exp = dir.join("escape.toml");
    std::fs::write(
        &exp,
        format!("name = \"escape\"\n{network}timeout = \"120s\"\n{body}"),
    )
    .unwrap();
    exp
}

/// Live (non-zombie) processes whose environment names this run directory: everything the
/// run started, and what those started.
fn survivors(run_dir: &Path) -> Vec<i32> {
    let needle = format!("ORDEAL_RUN_DIR={}", run_dir.display());
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let pid = e.file_name().to_string_lossy().parse::<i32>().ok()?;
            let env = std::fs::read(e.path().join("environ")).ok()?;
            (alive(pid) && env.split(|&b| b == 0).any(|v| v == needle.as_bytes())).then_some(pid)
        })
        .collect()
}

/// Whether `pid` runs (a zombie holds nothing: where the test's init does not reap, killed
/// orphans stay zombies).
fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(") ").map(|(_, rest)| rest.chars().next()))
        .flatten()
        .is_some_and(|state| state != 'Z' && state != 'X')
}

/// Network namespaces some live process is in.
fn live_namespaces() -> BTreeSet<u64> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::metadata(e.path().join("ns/net")).ok())
        .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
        .collect()
}

fn wait_until(what: &str, deadline: Duration, mut cond: impl FnMut() -> bool) {
    let until = Instant::now() + deadline;
    while !cond() {
        assert!(Instant::now() < until, "{what}");
        std::thread::park_timeout(Duration::from_millis(10));
    }
}

fn read_pid(path: &Path) -> Option<i32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}

/// What was left after the SIGKILL, once the deadline passed: surviving processes, the
/// grandchild if alive, live namespaces of the run, files in $TMPDIR.
#[derive(Debug, PartialEq)]
struct Left {
    processes: Vec<i32>,
    grandchild: bool,
    namespaces: Vec<u64>,
    /// Checkpoint socket directories.
    tmpdir: Vec<String>,
}

fn sigkill_leaves_nothing(netns: bool, forker: Forker) {
    let dir = tempfile::tempdir().unwrap();
    let tmpdir = dir.path().join("tmp");
    std::fs::create_dir(&tmpdir).unwrap();
    let pidfile = dir.path().join("grandchild.pid");
    let exp = experiment(dir.path(), netns, forker, &pidfile);
    let run = dir.path().join("run");
    let mut child = Command::new(env!("CARGO_BIN_EXE_ordeal"))
        .args(["run", exp.to_str().unwrap(), "--out", run.to_str().unwrap()])
        .arg("-q")
        .env("TMPDIR", &tmpdir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Everything started: the grandchild runs, and (untraced node) the workload too.
    wait_until(
        &format!("{forker:?}: the grandchild never started"),
        Duration::from_secs(60),
        || read_pid(&pidfile).is_some_and(alive),
    );
    if let Forker::UntracedNode | Forker::UntracedNodeSetsid = forker {
        wait_until(
            "the workload never started",
            Duration::from_secs(60),
            || {
                std::fs::read_to_string(run.join("logs/forever.stdout"))
                    .is_ok_and(|s| s.lines().any(|l| l == "working"))
            },
        );
    }
    let grandchild = read_pid(&pidfile).unwrap();
    assert!(
        survivors(&run).contains(&grandchild),
        "the grandchild is one of the run's processes"
    );
    let net: Option<serde_json::Value> = netns.then(|| {
        serde_json::from_slice(&std::fs::read(run.join("network.json")).unwrap()).unwrap()
    });
    // SAFETY: signalling the ordeal process this test started (not reaped yet).
    unsafe { libc_kill(child.id() as i32, 9) };
    let status = child.wait().unwrap();
    assert_eq!(status.code(), None, "ordeal died of the SIGKILL");
    let inodes: Vec<u64> = net.as_ref().map_or(Vec::new(), |net| {
        let members = net["members"].as_object().unwrap().values();
        members
            .map(|m| m["netns_inode"].as_u64().unwrap())
            .chain([net["hub"]["netns_inode"].as_u64().unwrap()])
            .collect()
    });
    let holders: Vec<i32> = net.as_ref().map_or(Vec::new(), |net| {
        let pids = net["holder_pids"].as_array().unwrap();
        pids.iter().map(|p| p.as_i64().unwrap() as i32).collect()
    });
    assert_eq!(
        !inodes.is_empty(),
        netns,
        "network.json lists the namespaces"
    );
    let left = || {
        let live = live_namespaces();
        let tmp: Vec<String> = std::fs::read_dir(&tmpdir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("ordeal-ckpt-"))
            .collect();
        Left {
            processes: survivors(&run)
                .into_iter()
                .chain(holders.iter().copied().filter(|p| alive(*p)))
                .collect(),
            grandchild: alive(grandchild),
            namespaces: inodes
                .iter()
                .copied()
                .filter(|i| live.contains(i))
                .collect(),
            tmpdir: tmp,
        }
    };
    let nothing = Left {
        processes: vec![],
        grandchild: false,
        namespaces: vec![],
        tmpdir: vec![],
    };
    let until = Instant::now() + Duration::from_secs(15);
    while left() != nothing && Instant::now() < until {
        std::thread::park_timeout(Duration::from_millis(10));
    }
    let now = left();
    if now.grandchild {
        // SAFETY: the test's own leftover (not to leak a 300 s sleep after a failure).
        unsafe { libc_kill(grandchild, 9) };
    }
    assert_eq!(now, nothing, "{forker:?}, netns {netns}: left behind");
    // The hub's bridge lived in the hub's namespace, gone with it; none in ours.
    assert!(!Path::new("/sys/class/net/ordeal0").exists());
}

#[test]
fn sigkill_during_the_check_leaves_nothing_on_loopback() {
    sigkill_leaves_nothing(false, Forker::Check);
}

#[test]
fn sigkill_with_an_untraced_node_leaves_nothing_on_loopback() {
    sigkill_leaves_nothing(false, Forker::UntracedNode);
}

#[test]
fn sigkill_during_the_check_leaves_nothing_in_netns_mode() {
    sigkill_leaves_nothing(true, Forker::Check);
}

#[test]
fn sigkill_with_an_untraced_node_leaves_nothing_in_netns_mode() {
    sigkill_leaves_nothing(true, Forker::UntracedNode);
}

#[test]
fn sigkill_leaves_nothing_in_netns_mode_even_what_left_its_group() {
    sigkill_leaves_nothing(true, Forker::UntracedNodeSetsid);
}
