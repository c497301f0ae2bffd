//! The recorder against a real TCP exchange (the tracer's server.c and client.c, both
//! followed from before their exec): lifecycle and socket transfers become the trace events
//! the ptrace tracer writes.
//!
//! Needs root (bpf(2)); elsewhere skips with a message, except under `CI=true`.

use ordeal_ebpf::{Probe, ProbeConfig, Recorder, DEFAULT_RING_BYTES};
use ordeal_events::calls::CALLS;
use ordeal_events::{Class, Event, Proto};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn prog(name: &str) -> PathBuf {
    ordeal_test_support::compile_c(
        &Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(format!("../ordeal-tracer/tests/progs/{name}.c")),
        Path::new(env!("CARGO_TARGET_TMPDIR")),
        "ebpf",
        &["-O1"],
    )
}

/// `program args` behind a shell that waits for a line on stdin, then execs it (same pid).
fn held(program: &Path, args: &[&str]) -> Child {
    Command::new("sh")
        .arg("-c")
        .arg("read go; exec \"$0\" \"$@\"")
        .arg(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("sh starts")
}

fn release(child: &mut Child) {
    child.stdin.as_mut().unwrap().write_all(b"go\n").unwrap();
}

/// Feeds records to the recorder until `done` holds for the events so far (10 s deadline).
fn feed_until(
    probe: &mut Probe,
    recorder: &mut Recorder,
    events: &mut Vec<Event>,
    done: impl Fn(&[Event]) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done(events) {
        assert!(
            Instant::now() < deadline,
            "timed out; events so far {events:#?}"
        );
        for r in probe.poll(Duration::from_millis(20)).unwrap() {
            events.extend(recorder.record(&r));
        }
    }
}

/// A transfer's (call, ret, len, off, socket inode).
type Transfer = (String, Option<i64>, Option<u64>, Option<u64>, u64);

fn exited(events: &[Event], pid: i32) -> bool {
    events.iter().any(|e| e.call == "exit" && e.pid == pid)
}

/// The events of one exchange, the server's and the client's pids, the server's port; None
/// when BPF cannot load here.
fn exchange() -> Option<(Vec<Event>, i32, i32, String)> {
    let calls: Vec<i64> = CALLS.iter().map(|c| c.nr).collect();
    let mut probe = match Probe::start(ProbeConfig {
        syscalls: &calls,
        ring_bytes: DEFAULT_RING_BYTES,
        payload_bytes: 0,
    }) {
        Ok(p) => p,
        Err(e) if e.is_permission_denied() && std::env::var("CI").as_deref() != Ok("true") => {
            eprintln!("skipped: cannot load BPF here ({e})");
            return None;
        }
        Err(e) => panic!("the probe must load: {e}"),
    };
    let (server_bin, client_bin) = (prog("server"), prog("client"));
    let mut recorder = Recorder::new("n", 0);
    let mut events = Vec::new();

    let mut server = held(&server_bin, &[]);
    let server_pid = server.id() as i32;
    probe.follow(server_pid).unwrap();
    release(&mut server);
    let mut line = String::new();
    BufReader::new(server.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port = line
        .trim()
        .strip_prefix("listening ")
        .expect("port line")
        .to_string();

    let mut client = held(&client_bin, &[&port]);
    let client_pid = client.id() as i32;
    probe.follow(client_pid).unwrap();
    release(&mut client);
    feed_until(&mut probe, &mut recorder, &mut events, |evs| {
        exited(evs, server_pid) && exited(evs, client_pid)
    });
    assert_eq!(server.wait().unwrap().code(), Some(0));
    assert_eq!(client.wait().unwrap().code(), Some(7));
    assert_eq!(probe.lost().unwrap(), 0);
    // Dense, in completion order.
    assert!(events.iter().enumerate().all(|(i, e)| e.seq == i as u64));
    Some((events, server_pid, client_pid, port))
}

#[test]
fn a_tcp_exchange_records_each_process_exec_and_exit() {
    let Some((events, server_pid, client_pid, _)) = exchange() else {
        return;
    };

    let of = |pid: i32| -> Vec<&Event> { events.iter().filter(|e| e.pid == pid).collect() };
    // Lifecycle: each exec'd its program and exited with its code.
    for (pid, code) in [(server_pid, 0), (client_pid, 7)] {
        // The shell's own exec may be seen too (spawn returns as its exec closes descriptors,
        // before the exec tracepoint fires): the last two are the program's exec and exit.
        let mut proc_events: Vec<_> = of(pid)
            .iter()
            .filter(|e| e.class == Some(Class::Proc))
            .map(|e| (e.call.clone(), e.code))
            .collect();
        proc_events.drain(..proc_events.len().saturating_sub(2));
        assert_eq!(
            proc_events,
            vec![("exec".to_string(), None), ("exit".to_string(), Some(code))]
        );
    }
}

#[test]
fn a_tcp_exchange_records_both_ends_transfers() {
    let Some((events, server_pid, client_pid, port)) = exchange() else {
        return;
    };
    let of = |pid: i32| -> Vec<&Event> { events.iter().filter(|e| e.pid == pid).collect() };
    let data = |pid: i32| -> Vec<Transfer> {
        of(pid)
            .iter()
            .filter(|e| e.class == Some(Class::Data))
            .map(|e| {
                (
                    e.call.clone(),
                    e.ret,
                    e.len,
                    e.off,
                    e.sock.as_ref().unwrap().ino,
                )
            })
            .collect()
    };
    let client_data = data(client_pid);
    let client_ino = client_data[0].4;
    assert_eq!(
        client_data,
        vec![
            ("write".into(), Some(5), Some(5), Some(0), client_ino),
            ("write".into(), Some(5), Some(5), Some(5), client_ino),
            ("read".into(), Some(4), Some(16), Some(0), client_ino),
        ]
    );
    let server_data = data(server_pid);
    let server_ino = server_data[0].4;
    assert_ne!(server_ino, client_ino);
    let (reads, writes): (Vec<_>, Vec<_>) = server_data.iter().partition(|d| d.0 == "read");
    assert_eq!(reads.iter().map(|d| d.1.unwrap()).sum::<i64>(), 10);
    assert!(reads.iter().all(|d| d.2 == Some(64) && d.4 == server_ino));
    assert_eq!(
        writes,
        vec![&("write".to_string(), Some(4), Some(4), Some(0), server_ino)]
    );
    // The two ends of one connection. Their addresses come from /proc/net by inode if the
    // socket is still there when its first transfer is processed; these programs close their
    // sockets and exit within microseconds, so the addresses are mostly unknown (None): they
    // are checked where known.
    let sock = |pid: i32| of(pid).iter().find_map(|e| e.sock.clone()).unwrap();
    let (c, s) = (sock(client_pid), sock(server_pid));
    let server_address = Some(format!("127.0.0.1:{port}"));
    for (address, expected) in [
        (&s.local, &server_address),
        (&c.remote, &server_address),
        (&s.remote, &c.local),
        (&c.local, &s.remote),
    ] {
        if address.is_some() && expected.is_some() {
            assert_eq!(address, expected);
        }
    }
    for end in [&c, &s] {
        assert_eq!(end.local.is_none(), end.proto == Proto::Other, "{end:?}");
    }
}
