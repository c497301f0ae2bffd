//! `Tracer::capture`: registers and stacks of every traced thread, each stopped only briefly,
//! and a paused (group-stopped) node stays paused.
use ordeal_events::FaultRef;

use ordeal_events::Event;
use ordeal_tracer::{CaptureRequest, Config, SpawnSpec, Tracer};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Compiles tests/progs/NAME.c once per test process (see `compile_c`).
fn compile(name: &str) -> PathBuf {
    ordeal_test_support::compile_c(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/progs/{name}.c")),
        Path::new(env!("CARGO_TARGET_TMPDIR")),
        "cap",
        &["-g", "-O1", "-fno-omit-frame-pointer", "-pthread"],
    )
}

fn states(pid: i32) -> Vec<char> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter_map(|e| {
            let p = e.ok()?.path().join("stat");
            let s = std::fs::read_to_string(p).ok()?;
            s[s.rfind(')')? + 2..].chars().next()
        })
        .collect()
}

fn poll(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn capture_stops_each_thread_briefly_and_keeps_a_paused_node_paused() {
    let prog = compile("waiters");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("w.stdout");
    let t = Tracer::start(
        Config {
            origin_ns: ordeal_tracer::monotonic_ns(),
            ..Default::default()
        },
        Vec::<Event>::new(),
    )
    .unwrap();
    let pid = t
        .spawn(SpawnSpec {
            marker: None,
            netns: None,
            label: "w".into(),
            program: prog.clone(),
            argv: vec![prog.display().to_string()],
            env: vec![],
            cwd: dir.path().to_owned(),
            stdout: std::fs::File::create(&out).unwrap().into(),
            stderr: std::fs::File::create(dir.path().join("w.stderr"))
                .unwrap()
                .into(),
            traced: true,
        })
        .unwrap();
    poll("the program to start its threads", || {
        std::fs::read_to_string(&out).is_ok_and(|s| s.contains("up"))
            && states(pid).len() == 3
            && states(pid).iter().all(|&c| c == 'S')
    });
    let cap = t.capture(CaptureRequest::default()).unwrap();
    assert_eq!(cap.threads.len(), 3, "{cap:?}");
    for th in &cap.threads {
        assert_eq!(th.node, "w");
        assert_eq!(th.tgid, pid);
        let regs = th.regs.unwrap_or_else(|| panic!("no registers: {th:?}"));
        let (base, stack) = th.stack.as_ref().expect("a stack copy");
        assert_eq!(*base, regs[19], "the copy starts at rsp");
        assert!(!stack.is_empty() && stack.len() <= CaptureRequest::default().stack_bytes);
    }
    // The reader is in a traced call (a socket read awaiting its exit stop).
    assert!(
        cap.threads.iter().any(|th| th
            .in_call
            .as_deref()
            .is_some_and(|c| c.starts_with("read fd"))),
        "{cap:?}"
    );
    // Everyone goes back to sleep: nothing was left stopped.
    poll("threads to sleep again", || {
        states(pid).iter().all(|&c| c == 'S')
    });
    // Only listing threads stops nothing.
    let list = t
        .capture(CaptureRequest {
            registers: false,
            ..CaptureRequest::default()
        })
        .unwrap();
    assert_eq!(list.threads.len(), 3);
    assert!(list.threads.iter().all(|th| th.regs.is_none()));

    // A paused node: registers are read, and it stays stopped (PTRACE_LISTEN again).
    t.signal_node("w", libc::SIGSTOP, None).unwrap();
    poll("the group stop", || {
        states(pid).iter().all(|&c| c == 't' || c == 'T')
    });
    let cap = t.capture(CaptureRequest::default()).unwrap();
    assert!(cap.threads.iter().all(|th| th.regs.is_some()), "{cap:?}");
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        states(pid).iter().all(|&c| c == 't' || c == 'T'),
        "a paused node ran after the capture: {:?}",
        states(pid)
    );
    t.signal_node("w", libc::SIGCONT, None).unwrap();
    poll("threads to run again", || {
        states(pid).iter().all(|&c| c == 'S')
    });
    // And the socket read still gets its exit stop: closing the process ends cleanly.
    let (stats, _) = t.shutdown().unwrap();
    assert!(stats.stops > 0);
}

/// Holds the first socket read at gate `g` until `open` is set.
struct HoldRead {
    open: std::sync::Arc<std::sync::atomic::AtomicBool>,
    done: bool,
}

impl ordeal_tracer::Interceptor for HoldRead {
    fn at_entry(&mut self, ev: &Event) -> ordeal_tracer::Action {
        if !self.done && ev.call == "read" {
            self.done = true;
            return ordeal_tracer::Action::Hold {
                by: FaultRef::fired("h"),
                gate: "g".into(),
            };
        }
        ordeal_tracer::Action::Proceed
    }
    fn at_exit(&mut self, _: &Event) -> ordeal_tracer::Action {
        ordeal_tracer::Action::Proceed
    }
    fn gate_open(&mut self, _: &str) -> bool {
        self.open.load(std::sync::atomic::Ordering::SeqCst)
    }
}

#[test]
fn a_thread_held_by_a_fault_is_read_in_place_and_stays_held() {
    let prog = compile("waiters");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("w.stdout");
    let open = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let hook = HoldRead {
        open: open.clone(),
        done: false,
    };
    let t = Tracer::start_with(
        Config {
            origin_ns: ordeal_tracer::monotonic_ns(),
            ..Default::default()
        },
        Vec::<Event>::new(),
        Some(Box::new(hook)),
    )
    .unwrap();
    let pid = t
        .spawn(SpawnSpec {
            marker: None,
            netns: None,
            label: "w".into(),
            program: prog.clone(),
            argv: vec![prog.display().to_string()],
            env: vec![],
            cwd: dir.path().to_owned(),
            stdout: std::fs::File::create(&out).unwrap().into(),
            stderr: std::fs::File::create(dir.path().join("w.stderr"))
                .unwrap()
                .into(),
            traced: true,
        })
        .unwrap();
    let held = || {
        t.capture(CaptureRequest {
            registers: false,
            ..CaptureRequest::default()
        })
        .unwrap()
        .threads
        .into_iter()
        .find(|th| th.tracer_state == "held at gate g")
    };
    poll("the read to be held", || held().is_some());
    let tid = held().unwrap().tid;
    let cap = t.capture(CaptureRequest::default()).unwrap();
    let th = cap.threads.iter().find(|th| th.tid == tid).unwrap();
    assert!(th.regs.is_some() && th.stack.is_some(), "{th:?}");
    assert_eq!(
        th.in_call.as_deref().map(|c| c.starts_with("read")),
        Some(true)
    );
    // Still held (in its seccomp stop) after the capture.
    std::thread::sleep(Duration::from_millis(100));
    let st = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/stat")).unwrap();
    assert!(st.contains(") t "), "{st}");
    assert!(held().is_some());
    // Released, it goes on into its read and sleeps there.
    open.store(true, std::sync::atomic::Ordering::SeqCst);
    t.wake().unwrap();
    poll("the released thread to sleep in read", || {
        std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/stat"))
            .is_ok_and(|s| s.contains(") S "))
    });
    t.shutdown().unwrap();
}
