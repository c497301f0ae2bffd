//! The two observers, ptrace and eBPF, see the same events: the tracer's test programs run
//! under each, and their events (modulo timing, ids and kernel-chosen numbers) and
//! happens-before edges (with byte counts) are compared.
//!
//! Needs root for the eBPF probe: outside CI a machine without it skips, saying so; under
//! `CI=true` that fails.
mod common;
use common::{compile, poll_file, spec};
use ordeal_events::{Class, Event, Header, NodeInfo};
use ordeal_hb::{EdgeKind, HbGraph};
use ordeal_tracer::{Config, Notice, Observer, Tracer};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::{Duration, Instant};

fn wait_exits(t: &Tracer<Vec<Event>>, labels: &[&str]) {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut left: Vec<&str> = labels.to_vec();
    while !left.is_empty() {
        let wait = deadline.saturating_duration_since(Instant::now());
        match t.notices().recv_timeout(wait) {
            Ok(Notice::Exited {
                label, root: true, ..
            }) => left.retain(|l| *l != label),
            Ok(_) => {}
            Err(e) => panic!("{left:?} did not exit: {e}"),
        }
    }
}

/// Whether the eBPF observer can run here; false (with a note) only outside CI.
fn ebpf_available() -> bool {
    match Tracer::start(
        Config {
            observer: Observer::Ebpf,
            ..Default::default()
        },
        Vec::<Event>::new(),
    ) {
        Ok(t) => {
            t.shutdown().unwrap();
            true
        }
        Err(e) if std::env::var("CI").as_deref() != Ok("true") => {
            eprintln!("skipped: the eBPF probe does not load here ({e})");
            false
        }
        Err(e) => panic!("the eBPF probe must load under CI: {e}"),
    }
}

/// Bytes of payload recorded (`Config::payload_bytes`).
const PAYLOAD: usize = 16;

/// A scenario: starts its programs on a tracer and waits for them.
type Scenario = fn(&Tracer<Vec<Event>>, &Path);

fn run(observer: Observer, scenario: Scenario, data: bool) -> Vec<Event> {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("data");
    std::fs::create_dir(&root).unwrap();
    let config = Config {
        data_roots: if data { vec![root] } else { vec![] },
        origin_ns: ordeal_tracer::monotonic_ns(),
        payload_bytes: PAYLOAD,
        observer,
        ..Default::default()
    };
    let t = Tracer::start(config, Vec::new()).unwrap();
    scenario(&t, dir.path());
    let (stats, events) = t.shutdown().unwrap();
    assert_eq!(stats.lost, 0);
    events
}

/// An event with what varies between runs removed: times, seq, ids, inodes, ports the
/// kernel chose and temporary paths. Addresses and paths are renamed by order of appearance.
fn normalize(events: &[Event], names: &mut HashMap<String, String>) -> Vec<String> {
    let mut name = |kind: &str, v: String| -> String {
        let n = names.len();
        names
            .entry(format!("{kind}{v}"))
            .or_insert_with(|| format!("{kind}#{n}"))
            .clone()
    };
    events
        .iter()
        .map(|e| {
            let mut e = e.clone();
            (e.seq, e.ts, e.dur) = (0, 0, 0);
            e.pid = 0;
            e.tid = 0;
            e.child = e.child.map(|_| 0);
            e.argv = None;
            if let Some(s) = e.sock.as_mut() {
                s.ino = 0;
                s.peer_ino = s.peer_ino.map(|_| 0);
                s.local = s.local.take().map(|a| name("addr", a));
                s.remote = s.remote.take().map(|a| name("addr", a));
            }
            e.addr = e.addr.take().map(|a| name("addr", a));
            e.path = e.path.take().map(|p| name("path", p));
            e.path2 = e.path2.take().map(|p| name("path", p));
            serde_json::to_string(&e).unwrap()
        })
        .collect()
}

/// What timing decides, taken out: a thread's consecutive transfers on one descriptor in one
/// direction count as one (how bytes were split between reads depends on when they were
/// read), and a non-blocking call that found nothing to do (EAGAIN) is dropped.
fn merge_transfers(thread: &[Event]) -> Vec<Event> {
    let mut out: Vec<Event> = Vec::new();
    for e in thread {
        if e.errno.as_deref() == Some("EAGAIN") {
            continue;
        }
        let moved = e.class == Some(Class::Data) && e.ret.unwrap_or(0) > 0;
        let continues = |l: &&mut Event| {
            moved && l.class == e.class && l.call == e.call && l.fd == e.fd && l.ret > Some(0)
        };
        if let Some(last) = out.last_mut().filter(continues) {
            last.ret = Some(last.ret.unwrap_or(0) + e.ret.unwrap_or(0));
            let mut data = last.data.take().unwrap_or_default();
            data.push_str(e.data.as_deref().unwrap_or(""));
            last.data = Some(data.chars().take(PAYLOAD).collect());
            continue;
        }
        let mut e = e.clone();
        if moved {
            e.len = None;
        }
        out.push(e);
    }
    out
}

/// Runs `scenario` under each observer and compares, per node, every thread's events in
/// program order (threads sorted: `seq` across threads is completion order, which timing
/// decides), then the happens-before edges between nodes' calls.
fn compare(scenario: Scenario, nodes: &[&str], data: bool) {
    if !ebpf_available() {
        return;
    }
    let ptrace = run(Observer::Ptrace, scenario, data);
    let ebpf = run(Observer::Ebpf, scenario, data);
    let per_node = |evs: &[Event]| -> BTreeMap<String, Vec<Vec<String>>> {
        let mut threads: BTreeMap<(String, usize), Vec<Event>> = BTreeMap::new();
        let mut order: HashMap<i32, usize> = HashMap::new();
        for e in evs {
            let next = order.len();
            let rank = *order.entry(e.tid).or_insert(next);
            threads
                .entry((e.node.clone(), rank))
                .or_default()
                .push(e.clone());
        }
        let mut names = HashMap::new();
        let mut m: BTreeMap<String, Vec<Vec<String>>> = BTreeMap::new();
        for ((node, _), list) in threads {
            let norm = normalize(&merge_transfers(&list), &mut names);
            m.entry(node).or_default().push(norm);
        }
        for lists in m.values_mut() {
            lists.sort();
        }
        m
    };
    let (a, b) = (per_node(&ptrace), per_node(&ebpf));
    for node in nodes {
        let (x, y) = (a[*node].concat(), b[*node].concat());
        let diff: Vec<String> = x
            .iter()
            .zip(y.iter())
            .filter(|(p, q)| p != q)
            .map(|(p, q)| format!("ptrace {p}\nebpf   {q}"))
            .collect();
        assert!(
            diff.is_empty() && x.len() == y.len(),
            "{node}: {} ptrace events, {} eBPF events; first differences:\n{}",
            x.len(),
            y.len(),
            diff.iter().take(5).cloned().collect::<Vec<_>>().join("\n")
        );
    }
    // Edges between nodes' calls: messages with their bytes summed (their split is timing),
    // every other kind counted.
    let edges = |evs: &[Event]| -> BTreeMap<String, u64> {
        let header = Header {
            schema: "ordeal-trace".into(),
            version: ordeal_events::SCHEMA_VERSION,
            experiment: "engines".into(),
            started_at: String::new(),
            nodes: nodes
                .iter()
                .map(|n| NodeInfo {
                    name: n.to_string(),
                    role: "node".into(),
                    ports: vec![],
                    protocol: None,
                })
                .collect(),
        };
        let at = |seq: u64| {
            let e = &evs[seq as usize];
            format!("{}:{}", e.node, e.call)
        };
        let g = HbGraph::build(&header, evs);
        let mut out: BTreeMap<String, u64> = BTreeMap::new();
        for e in g.edges() {
            let (kind, n) = match e.kind {
                EdgeKind::Program => continue,
                EdgeKind::Message { bytes } => ("message".to_string(), bytes),
                other => (format!("{other:?}"), 1),
            };
            *out.entry(format!("{kind} {} -> {}", at(e.from), at(e.to)))
                .or_default() += n;
        }
        out
    };
    assert_eq!(edges(&ptrace), edges(&ebpf));
}

fn client_server(t: &Tracer<Vec<Event>>, dir: &Path) {
    let (server, client) = (compile("server"), compile("client"));
    t.spawn(spec("server", &server, &[], dir)).unwrap();
    let line = poll_file(&dir.join("server.stdout"), "listening");
    let port = line.split_whitespace().nth(1).unwrap().to_string();
    t.spawn(spec("client", &client, &[&port], dir)).unwrap();
    wait_exits(t, &["client", "server"]);
}

#[test]
fn client_and_server_are_seen_alike() {
    compare(client_server, &["server", "client"], false);
}

fn forker(t: &Tracer<Vec<Event>>, dir: &Path) {
    let prog = compile("forker");
    let data = dir.join("data");
    t.spawn(spec("f", &prog, &[data.to_str().unwrap()], dir))
        .unwrap();
    wait_exits(t, &["f"]);
}

#[test]
fn forks_and_data_dir_files_are_seen_alike() {
    compare(forker, &["f"], true);
}

fn threads(t: &Tracer<Vec<Event>>, dir: &Path) {
    t.spawn(spec("t", &compile("threads"), &[], dir)).unwrap();
    wait_exits(t, &["t"]);
}

#[test]
fn threads_and_socketpairs_are_seen_alike() {
    compare(threads, &["t"], false);
}

fn udp(t: &Tracer<Vec<Event>>, dir: &Path) {
    t.spawn(spec("u", &compile("udp"), &[], dir)).unwrap();
    wait_exits(t, &["u"]);
}

#[test]
fn udp_datagrams_are_seen_alike() {
    compare(udp, &["u"], false);
}

fn unix_path(t: &Tracer<Vec<Event>>, dir: &Path) {
    let path = dir.join("s.sock");
    t.spawn(spec("x", &compile("unix"), &[path.to_str().unwrap()], dir))
        .unwrap();
    wait_exits(t, &["x"]);
}

#[test]
fn unix_path_sockets_are_seen_alike() {
    compare(unix_path, &["x"], false);
}

/// A burst larger than the ring is counted as lost, never dropped silently; the default ring
/// holds it whole.
#[test]
fn events_lost_to_a_full_ring_are_counted() {
    if !ebpf_available() {
        return;
    }
    let transfers = |ring_bytes: usize| {
        let dir = tempfile::tempdir().unwrap();
        let config = Config {
            origin_ns: ordeal_tracer::monotonic_ns(),
            observer: Observer::Ebpf,
            ring_bytes,
            ..Default::default()
        };
        let t = Tracer::start(config, Vec::new()).unwrap();
        t.spawn(spec("b", &compile("burst"), &[], dir.path()))
            .unwrap();
        wait_exits(&t, &["b"]);
        let (stats, events) = t.shutdown().unwrap();
        let data = events
            .iter()
            .filter(|e| e.class == Some(Class::Data) && e.ret == Some(1))
            .count();
        (stats.lost, data)
    };
    assert_eq!(transfers(0), (0, 40_000));
    let (lost, data) = transfers(4096);
    assert!(lost > 0 && data < 40_000, "lost {lost}, recorded {data}");
}

/// Marks the `fsync` it sees at exit; watches nothing else.
struct MarkFsync;

impl ordeal_tracer::Interceptor for MarkFsync {
    fn watch(&self) -> ordeal_tracer::Watch {
        ordeal_tracer::Watch::Calls(vec![libc::SYS_fsync])
    }
    fn at_entry(&mut self, _: &Event) -> ordeal_tracer::Action {
        ordeal_tracer::Action::Proceed
    }
    fn at_exit(&mut self, ev: &Event) -> ordeal_tracer::Action {
        match ev.call.as_str() {
            "fsync" => ordeal_tracer::Action::Mark {
                by: ordeal_events::FaultRef::fired("f"),
                what: "seen".into(),
            },
            _ => ordeal_tracer::Action::Proceed,
        }
    }
}

/// Under eBPF only the calls an interceptor watches stop: one `fsync`, one stop, while the
/// probe records the rest; the marked event sits in its place in the child's program order.
#[test]
fn only_the_watched_call_stops_and_the_trace_stays_one_stream() {
    if !ebpf_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let config = Config {
        data_roots: vec![data.clone()],
        origin_ns: ordeal_tracer::monotonic_ns(),
        observer: Observer::Ebpf,
        ..Default::default()
    };
    let t = Tracer::start_with(config, Vec::new(), Some(Box::new(MarkFsync))).unwrap();
    t.spawn(spec(
        "f",
        &compile("forker"),
        &[data.to_str().unwrap()],
        dir.path(),
    ))
    .unwrap();
    wait_exits(&t, &["f"]);
    let (stats, events) = t.shutdown().unwrap();
    assert_eq!(stats.seccomp_stops, 1);
    let child: Vec<(&str, Option<String>)> = events
        .iter()
        .filter(|e| e.class == Some(Class::File))
        .map(|e| (e.call.as_str(), e.fault.as_ref().map(|m| m.to_string())))
        .collect();
    assert_eq!(
        child,
        [
            ("openat", None),
            ("write", None),
            ("fsync", Some("f: seen".to_string())),
            ("close", None),
            ("rename", None)
        ]
    );
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e.seq, i as u64);
    }
}

/// Vectored transfers: the captured bytes are the transfer's first bytes across its buffers
/// (ptrace reads each buffer in turn), or the first buffer's head (what the probe copies),
/// never bytes from past a buffer's end.
#[test]
fn vectored_payloads_are_the_first_bytes_moved() {
    fn vectored(t: &Tracer<Vec<Event>>, dir: &Path) {
        let prog = compile("vectored");
        t.spawn(spec("v", &prog, &[], dir)).unwrap();
        wait_exits(t, &["v"]);
    }
    let data = |events: &[Event], call: &str| -> String {
        let e = events.iter().find(|e| e.call == call).unwrap();
        assert!(e.ret > Some(0), "{call}: {e:?}");
        e.data.clone().unwrap_or_default()
    };
    let ptrace = run(Observer::Ptrace, vectored, false);
    assert_eq!(
        ["writev", "sendmsg", "readv", "recvmsg"].map(|c| data(&ptrace, c)),
        ["abcdefghij", "KLMNOP", "abcdefghij", "KLMNOP"]
    );
    if !ebpf_available() {
        return;
    }
    let ebpf = run(Observer::Ebpf, vectored, false);
    for (call, whole) in [
        ("writev", "abcdefghij"),
        ("sendmsg", "KLMNOP"),
        ("readv", "abcdefghij"),
        ("recvmsg", "KLMNOP"),
    ] {
        let got = data(&ebpf, call);
        assert!(
            !got.is_empty() && whole.starts_with(&got),
            "{call}: {got:?} is not a head of {whole:?}"
        );
    }
}
