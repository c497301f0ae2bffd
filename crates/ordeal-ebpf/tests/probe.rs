//! The probe against real processes: what a followed process and its children do is recorded
//! exactly, an unrelated process is not.
//!
//! Needs root (bpf(2)). Elsewhere the tests skip with a message, except under `CI=true`, where
//! the probe must load (CI runs as root on a kernel that has what it needs).

use ordeal_ebpf::{Ending, Probe, ProbeConfig, Record, DEFAULT_RING_BYTES};
use ordeal_events::calls::CALLS;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SYS_WRITE: i64 = 1;
const SYS_CLONE: i64 = 56;
const SYS_WAIT4: i64 = 61;

fn family() -> PathBuf {
    ordeal_test_support::compile_c(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/progs/family.c"),
        Path::new(env!("CARGO_TARGET_TMPDIR")),
        "ebpf",
        &["-O1"],
    )
}

/// The probe recording every call of the call table, or None (with a message) when this
/// machine cannot load BPF and we are not in CI.
fn probe() -> Option<Probe> {
    let calls: Vec<i64> = CALLS.iter().map(|c| c.nr).collect();
    probe_with(&calls, DEFAULT_RING_BYTES)
}

fn probe_with(syscalls: &[i64], ring_bytes: usize) -> Option<Probe> {
    match Probe::start(ProbeConfig {
        syscalls,
        ring_bytes,
        payload_bytes: 0,
    }) {
        Ok(p) => Some(p),
        Err(e) if e.is_permission_denied() && std::env::var("CI").as_deref() != Ok("true") => {
            eprintln!("skipped: cannot load BPF here ({e})");
            None
        }
        Err(e) => panic!("the probe must load: {e}"),
    }
}

/// Starts `family` blocked on its stdin: nothing it does after exec is missed once it is
/// followed, and it does nothing until [`release`].
fn spawn_family(mine: usize, childs: usize, code: i32) -> Child {
    Command::new(family())
        .args([mine.to_string(), childs.to_string(), code.to_string()])
        .stdin(Stdio::piped())
        .spawn()
        .expect("family starts")
}

fn release(child: &mut Child) {
    child.stdin.take().unwrap().write_all(b"g").unwrap();
}

/// Polls until a `ProcessExit` of `pid` arrives (10 s deadline).
fn records_until_exit(probe: &mut Probe, pid: i32) -> Vec<Record> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut all = Vec::new();
    while Instant::now() < deadline {
        let got = probe.poll(Duration::from_millis(100)).unwrap();
        let done = got
            .iter()
            .any(|r| matches!(r, Record::ProcessExit { pid: p, .. } if *p == pid));
        all.extend(got);
        if done {
            return all;
        }
    }
    panic!("no exit of {pid} within 10 s; got {all:#?}");
}

/// A write's (tid, fd, count) at entry.
type WriteEnter = (i32, u64, u64);
/// A write's (tid, ret) at exit.
type WriteExit = (i32, i64);

/// The write calls of process `tgid`, at entry and at exit.
fn writes(records: &[Record], tgid: i32) -> (Vec<WriteEnter>, Vec<WriteExit>) {
    let mut enters = Vec::new();
    let mut exits = Vec::new();
    for r in records {
        match *r {
            Record::Enter {
                tid,
                tgid: g,
                nr: SYS_WRITE,
                args,
                ..
            } if g == tgid => enters.push((tid, args[0], args[2])),
            Record::Exit {
                tid,
                tgid: g,
                nr: SYS_WRITE,
                ret,
                ..
            } if g == tgid => exits.push((tid, ret)),
            _ => {}
        }
    }
    (enters, exits)
}

#[test]
fn records_a_followed_family_and_nothing_else() {
    let Some(mut probe) = probe() else { return };
    let mut followed = spawn_family(1234, 2345, 7);
    let mut stranger = spawn_family(3456, 4567, 9);
    let pid = followed.id() as i32;
    let stranger_pid = stranger.id() as i32;
    probe.follow(pid).unwrap();
    release(&mut stranger);
    release(&mut followed);
    let records = records_until_exit(&mut probe, pid);
    assert_eq!(followed.wait().unwrap().code(), Some(7));
    assert_eq!(stranger.wait().unwrap().code(), Some(9));

    // One new process, created by the followed one.
    let forks: Vec<_> = records
        .iter()
        .filter_map(|r| match *r {
            Record::Fork {
                parent,
                parent_tid,
                child,
                thread,
                ..
            } => Some((parent, parent_tid, child, thread)),
            _ => None,
        })
        .collect();
    assert_eq!(forks.len(), 1, "{forks:?}");
    let (parent, parent_tid, grandchild, thread) = forks[0];
    assert_eq!((parent, parent_tid, thread), (pid, pid, false));

    // Each process's write: fd 3 (after 0, 1, 2), its own byte count, the same at exit.
    assert_eq!(
        writes(&records, pid),
        (vec![(pid, 3, 1234)], vec![(pid, 1234)])
    );
    assert_eq!(
        writes(&records, grandchild),
        (vec![(grandchild, 3, 2345)], vec![(grandchild, 2345)])
    );

    // Both exits with their codes, the grandchild's first (the parent waited for it).
    let exits: Vec<_> = records
        .iter()
        .filter_map(|r| match *r {
            Record::ProcessExit { pid, ending, .. } => Some((pid, ending)),
            _ => None,
        })
        .collect();
    assert_eq!(
        exits,
        vec![(grandchild, Ending::Exited(3)), (pid, Ending::Exited(7))]
    );

    // Nothing of anyone else: every record belongs to the two followed processes, and the
    // stranger's byte counts appear nowhere.
    for r in &records {
        let tgid = match *r {
            Record::Enter { tgid, .. } | Record::Exit { tgid, .. } => tgid,
            Record::Fork { parent, .. } => parent,
            Record::ProcessExit { pid, .. } | Record::Exec { pid, .. } => pid,
        };
        assert!(tgid == pid || tgid == grandchild, "foreign record {r:?}");
        if let Record::Enter { args, .. } = r {
            assert!(args[2] != 3456 && args[2] != 4567, "stranger's write {r:?}");
        }
    }
    assert_ne!(stranger_pid, grandchild);

    // Records are in time order, and nothing was lost.
    let times: Vec<u64> = records.iter().map(Record::ktime_ns).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
    assert_eq!(probe.lost().unwrap(), 0);
}

#[test]
fn calls_outside_the_set_are_not_recorded_and_an_exited_process_is_forgotten() {
    let Some(mut probe) = probe() else { return };
    let mut child = spawn_family(10, 20, 0);
    let pid = child.id() as i32;
    probe.follow(pid).unwrap();
    release(&mut child);
    let records = records_until_exit(&mut probe, pid);
    assert_eq!(child.wait().unwrap().code(), Some(0));
    // The family forks (clone, 56) and waits (wait4, 61): neither is in the call table, so
    // neither is recorded; its writes (1) are.
    let calls: Vec<i64> = records
        .iter()
        .filter_map(|r| match *r {
            Record::Enter { nr, .. } | Record::Exit { nr, .. } => Some(nr),
            _ => None,
        })
        .collect();
    assert!(
        calls.iter().all(|nr| CALLS.iter().any(|c| c.nr == *nr)),
        "{calls:?}"
    );
    assert!(!calls.contains(&SYS_CLONE) && !calls.contains(&SYS_WAIT4));
    assert_eq!(calls.iter().filter(|&&nr| nr == SYS_WRITE).count(), 4);
    // The last record is the exit of the followed process: both processes left the followed
    // map (nothing more arrives), and so did nothing else.
    assert!(matches!(records.last(), Some(Record::ProcessExit { pid: p, .. }) if *p == pid));
    assert!(probe.poll(Duration::from_millis(50)).unwrap().is_empty());
    assert_eq!(probe.lost().unwrap(), 0);
}

/// Waits until `pid` is blocked in read(2) (/proc/PID/syscall starts with its number 0).
fn wait_until_reading(pid: i32) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let now = std::fs::read_to_string(format!("/proc/{pid}/syscall")).unwrap_or_default();
        if now.starts_with("0 ") {
            return;
        }
        std::thread::yield_now();
    }
    panic!("{pid} never blocked in read");
}

#[test]
fn records_that_do_not_fit_are_counted_as_lost() {
    let calls: Vec<i64> = CALLS.iter().map(|c| c.nr).collect();
    // One page of ring: room for a few dozen records, not for 2000.
    let Some(mut probe) = probe_with(&calls, 4096) else {
        return;
    };
    let writer = ordeal_test_support::compile_c(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/progs/writer.c"),
        Path::new(env!("CARGO_TARGET_TMPDIR")),
        "ebpf",
        &["-O1"],
    );
    let mut child = Command::new(writer)
        .arg("1000")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id() as i32;
    wait_until_reading(pid);
    probe.follow(pid).unwrap();
    release(&mut child);
    assert_eq!(child.wait().unwrap().code(), Some(0));
    // Nothing was consumed while it ran: what is in the ring now is all that was kept.
    let got = probe.poll(Duration::ZERO).unwrap();
    let lost = probe.lost().unwrap();
    assert!(lost > 0 && !got.is_empty(), "got {} lost {lost}", got.len());
    // The read's exit, 1000 writes' entries and exits, the process exit.
    assert_eq!(got.len() as u64 + lost, 1 + 2 * 1000 + 1);
}

#[test]
fn a_call_on_a_descriptor_carries_the_inode_behind_it() {
    let Some(mut probe) = probe() else { return };
    let (_ours, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
    let theirs = std::os::fd::OwnedFd::from(theirs);
    let socket_ino = std::fs::File::from(theirs.try_clone().unwrap())
        .metadata()
        .unwrap()
        .ino();
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("ino-{}", std::process::id()));
    // Writes to the socket on stdout, to a file through stdout, then to a closed stdout.
    let mut child = Command::new("sh")
        .arg("-c")
        .arg("read go; echo to-socket; echo to-file >\"$0\"; exec 1>&-; echo closed")
        .arg(&path)
        .stdin(Stdio::piped())
        .stdout(Stdio::from(theirs))
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id() as i32;
    probe.follow(pid).unwrap();
    child.stdin.as_mut().unwrap().write_all(b"go\n").unwrap();
    let records = records_until_exit(&mut probe, pid);
    child.wait().unwrap();
    let file_ino = std::fs::metadata(&path).unwrap().ino();
    std::fs::remove_file(&path).unwrap();
    let writes: Vec<_> = records
        .iter()
        .filter_map(|r| match *r {
            Record::Enter {
                nr: SYS_WRITE,
                args,
                ino,
                socket,
                ..
            } => Some((args[0], ino, socket)),
            _ => None,
        })
        // Not the shell's complaints about the closed stdout, on stderr.
        .filter(|w| w.0 == 1)
        .collect();
    assert_eq!(
        writes,
        vec![(1, socket_ino, true), (1, file_ino, false), (1, 0, false)]
    );
}
