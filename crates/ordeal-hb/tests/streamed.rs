//! The outputs built by streaming a trace file ([`write_trace_outputs`], bounded memory) are
//! byte for byte those built from the graph of its events in memory ([`HbGraph::build`] +
//! [`write_outputs`]), on simulated systems whose records come out of order and on the
//! hand-written traces of the other tests, every send labelled with what it said; traces that
//! cannot be streamed are built in memory, and say so.

mod common;

use common::sim::Sim;
use common::{client_server, header, tcp, three_nodes, udp_trace, Trace};
use ordeal_events::{Event, Header, Proto, TraceWriter};
use ordeal_hb::*;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

const FILES: [&str; 4] = ["graph.dot", "trace.json", "summary.json", "hb.jsonl"];

fn write_trace(dir: &Path, h: &Header, events: &[Event]) -> std::path::PathBuf {
    let trace = dir.join("trace.jsonl");
    let mut w = TraceWriter::new(Vec::new(), h).unwrap();
    for e in events {
        w.write(e).unwrap();
    }
    std::fs::write(&trace, w.into_inner()).unwrap();
    trace
}

/// A label for every send that moved bytes, as the call log gives them: 23 operations (more
/// than a node pair counts), some long enough to be cut.
fn labels(events: &[Event]) -> HashMap<u64, String> {
    events
        .iter()
        .filter(|e| e.is_send() && e.moved() > 0)
        .map(|e| {
            let text = match e.seq % 5 {
                0 => format!("OP{} k{} {}", e.seq % 23, e.seq, "v".repeat(70)),
                _ => format!("OP{} k{}", e.seq % 23, e.seq),
            };
            (e.seq, text)
        })
        .collect()
}

/// Builds the outputs both ways, every send labelled, and asserts they are equal; returns why
/// the streamed ones were built in memory, if they were.
fn both_ways(h: &Header, events: &[Event], limit: usize) -> Option<String> {
    let dir = tempfile::tempdir().unwrap();
    let trace = write_trace(dir.path(), h, events);
    let (held, streamed) = (dir.path().join("held"), dir.path().join("streamed"));
    std::fs::create_dir(&held).unwrap();
    std::fs::create_dir(&streamed).unwrap();
    let snapshots = vec![SnapshotLink {
        reason: "request".into(),
        at_ms: 5,
        json: "snapshots/1.json".into(),
        text: "snapshots/1.txt".into(),
        dumps: vec![],
    }];
    let mut g = HbGraph::build(h, events);
    let labels = labels(events);
    g.set_labels(labels.clone());
    let mut s = Summary::build(&g, Verdict::fail(vec!["x".into()]));
    s.snapshots = snapshots.clone();
    let want = write_outputs(&held, &g, &s, limit).unwrap();
    let got = write_trace_outputs(
        &trace,
        &streamed,
        RunFacts {
            verdict: Verdict::fail(vec!["x".into()]),
            snapshots,
            engine: None,
            labels: labels.clone(),
            faults: Vec::new(),
        },
        limit,
    )
    .unwrap();
    assert_eq!(got.summary, s);
    assert_eq!(got.outputs.dot_level, want.dot_level);
    let names = |o: &Outputs| -> Vec<String> {
        o.files
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect()
    };
    assert_eq!(names(&got.outputs), names(&want));
    for name in FILES {
        let (a, b) = (
            std::fs::read_to_string(held.join(name)).unwrap(),
            std::fs::read_to_string(streamed.join(name)).unwrap(),
        );
        if a != b {
            let line = a.lines().zip(b.lines()).position(|(x, y)| x != y);
            panic!(
                "{name} differs (limit {limit}) at line {line:?}:\n{:?}\n{:?}",
                line.and_then(|l| a.lines().nth(l)),
                line.and_then(|l| b.lines().nth(l))
            );
        }
    }
    // The labels were drawn.
    let json = std::fs::read_to_string(streamed.join("trace.json")).unwrap();
    assert_eq!(json.contains("\"message\":\"OP"), !labels.is_empty());
    if want.dot_level == DotLevel::Nodes && s.edges.message > 0 {
        let dot = std::fs::read_to_string(streamed.join("graph.dot")).unwrap();
        assert!(dot.contains(" ×"), "{dot}");
    }
    let summary = summarize_trace(&trace, Verdict::fail(vec!["x".into()])).unwrap();
    assert_eq!(summary, Summary::build(&g, Verdict::fail(vec!["x".into()])));
    got.in_memory
}

/// Cross-thread edges whose source was recorded after their target, by kind and transport.
fn backward_edges(events: &[Event]) -> BTreeMap<String, usize> {
    let g = HbGraph::build(&Sim::header(), events);
    let mut out = BTreeMap::new();
    for e in g.edges().filter(|e| e.from > e.to) {
        let udp = events[e.to as usize]
            .sock
            .as_ref()
            .is_some_and(|s| s.proto == Proto::Udp);
        let name = format!("{}{}", e.kind.name(), if udp { " udp" } else { "" });
        *out.entry(name).or_default() += 1;
    }
    out
}

#[test]
fn simulated_systems_stream_to_the_same_outputs() {
    let mut backward: BTreeMap<String, usize> = BTreeMap::new();
    for seed in [1, 2, 3, 4] {
        let events = Sim::run(seed * 7919, 6000);
        assert!(events.len() > 3000, "{}", events.len());
        for (k, n) in backward_edges(&events) {
            *backward.entry(k).or_default() += n;
        }
        // Node level (the picture's default limit), and the same trace with no stream offsets
        // recorded (ranges are then running totals).
        assert_eq!(both_ways(&Sim::header(), &events, DEFAULT_DOT_LIMIT), None);
        let no_offsets: Vec<Event> = events
            .iter()
            .cloned()
            .map(|mut e| {
                e.off = None;
                e
            })
            .collect();
        assert_eq!(both_ways(&Sim::header(), &no_offsets, 0), None);
        // Event level, on a short run (Graphviz renders it).
        let short = Sim::run(seed * 104_729, 400);
        assert_eq!(both_ways(&Sim::header(), &short, 100_000), None);
    }
    // The simulation keeps exercising what the streaming has to wait for.
    for kind in ["connect", "fork", "message", "message udp"] {
        assert!(
            backward.get(kind).is_some_and(|&n| n > 0),
            "{kind}: {backward:?}"
        );
    }
}

#[test]
fn hand_written_traces_stream_to_the_same_outputs() {
    let h2 = header(&[("a", &[]), ("b", &[])]);
    let h3 = header(&[("a", &[]), ("b", &[]), ("c", &[])]);
    for (h, t) in [
        (h2.clone(), client_server()),
        (h3.clone(), three_nodes()),
        (h2.clone(), udp_trace()),
    ] {
        for limit in [DEFAULT_DOT_LIMIT, 0] {
            assert_eq!(both_ways(&h, &t.events, limit), None);
        }
    }
    // A receive recorded before the send of its bytes, a vfork before its child, an accept
    // before its connect, a send that outlasts the thread's next call.
    let mut t = Trace::new();
    t.spawn("b", 200, "server");
    t.listen("b", 200, 1, "127.0.0.1:7000");
    t.spawn("a", 100, "client");
    let c = tcp(10, "127.0.0.1:40000", "127.0.0.1:7000");
    let s = tcp(20, "127.0.0.1:7000", "127.0.0.1:40000");
    t.accept("b", 200, 200, s.clone());
    t.connect("a", 100, 100, c.clone());
    t.data("b", 200, 200, "read", &s, 0, 4);
    t.data("b", 200, 200, "write", &s, 0, 2);
    t.data("a", 100, 100, "write", &c, 0, 10);
    t.data("a", 100, 100, "read", &c, 0, 2);
    t.data("b", 200, 200, "read", &s, 4, 6);
    t.push("a", 101, 101, "exec", |e| {
        e.argv = Some(vec!["/bin/true".into()])
    });
    t.push("a", 100, 100, "vfork", |e| e.child = Some(101));
    let w = t.data("a", 100, 100, "write", &c, 10, 5);
    t.events[w as usize].dur = 50_000;
    t.data("a", 100, 100, "write", &c, 15, 5);
    t.exit("a", 101, 101, Some(0), None);
    for limit in [DEFAULT_DOT_LIMIT, 0] {
        assert_eq!(both_ways(&h2, &t.events, limit), None);
    }
}

#[test]
fn traces_that_cannot_be_streamed_are_built_in_memory() {
    let h = header(&[("a", &[]), ("b", &[])]);
    // Two events with one seq.
    let mut dup = client_server().events;
    dup[6].seq = 5;
    let why = both_ways(&h, &dup, 0);
    assert_eq!(why.as_deref(), Some("two of its events have one seq"));
    // Two sends of one stream claiming the same bytes.
    let mut t = client_server();
    t.events[6].off = Some(5);
    let why = both_ways(&h, &t.events, DEFAULT_DOT_LIMIT);
    assert_eq!(
        why.as_deref(),
        Some("two transfers of one stream socket claim the same bytes")
    );
    // A cycle: each side reads what the other sends after that read, both recorded first.
    let mut t = Trace::new();
    let c = tcp(10, "127.0.0.1:40000", "127.0.0.1:7000");
    let s = tcp(20, "127.0.0.1:7000", "127.0.0.1:40000");
    t.data("a", 100, 100, "read", &c, 0, 3);
    t.data("b", 200, 200, "read", &s, 0, 3);
    t.data("a", 100, 100, "write", &c, 0, 3);
    t.data("b", 200, 200, "write", &s, 0, 3);
    let why = both_ways(&h, &t.events, DEFAULT_DOT_LIMIT);
    assert_eq!(why.as_deref(), Some("its edges form a cycle"));
}

#[test]
fn a_trace_out_of_seq_order_is_built_in_memory_from_its_sorted_events() {
    let h = header(&[("a", &[]), ("b", &[])]);
    let t = client_server();
    let mut events = t.events.clone();
    events.swap(3, 4);
    let dir = tempfile::tempdir().unwrap();
    let trace = write_trace(dir.path(), &h, &events);
    let got =
        write_trace_outputs(&trace, dir.path(), RunFacts::verdict(Verdict::pass()), 0).unwrap();
    assert_eq!(
        got.in_memory.as_deref(),
        Some("its events are not in seq order")
    );
    let g = HbGraph::build(&h, &t.events);
    assert_eq!(got.summary, Summary::build(&g, Verdict::pass()));
}

/// `tests/fixtures/sim`: a simulated trace (493 events, records out of order) and the outputs
/// the graph wrote for it before the streamed outputs existed. Both ways still write exactly
/// those bytes, with no labels (an empty map) as before labels existed.
#[test]
fn outputs_are_those_written_before_streaming() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sim");
    let read = |name: &str| std::fs::read_to_string(fixture.join(name)).unwrap();
    let trace = fixture.join("trace.jsonl");
    let mut g = HbGraph::from_trace(&trace).unwrap();
    assert!(g.labels().is_empty());
    g.set_labels(HashMap::new());
    let mut held = Vec::new();
    write_event_dot(&g, &mut held).unwrap();
    assert_eq!(String::from_utf8(held).unwrap(), read("graph.events.dot"));
    let mut held = Vec::new();
    write_node_dot(&g, &mut held).unwrap();
    assert_eq!(String::from_utf8(held).unwrap(), read("graph.nodes.dot"));
    for (limit, dot) in [(100_000, "graph.events.dot"), (0, "graph.nodes.dot")] {
        let dir = tempfile::tempdir().unwrap();
        let got = write_trace_outputs(
            &trace,
            dir.path(),
            RunFacts::verdict(Verdict::pass()),
            limit,
        )
        .unwrap();
        assert_eq!(got.in_memory, None);
        let out = |name: &str| std::fs::read_to_string(dir.path().join(name)).unwrap();
        assert_eq!(out("graph.dot"), read(dot), "{dot}");
        for name in ["trace.json", "summary.json", "hb.jsonl"] {
            assert_eq!(out(name), read(name), "{name}");
        }
    }
    let mut held = Vec::new();
    write_chrome_trace(&g, &mut held).unwrap();
    assert_eq!(String::from_utf8(held).unwrap(), read("trace.json"));
    let mut held = Vec::new();
    write_hb_jsonl(&g, &mut held).unwrap();
    assert_eq!(String::from_utf8(held).unwrap(), read("hb.jsonl"));
    let mut held = Vec::new();
    write_summary_json(&Summary::build(&g, Verdict::pass()), &mut held).unwrap();
    assert_eq!(String::from_utf8(held).unwrap(), read("summary.json"));
}

/// Request/response rounds between a client and a server; every 10th request is recorded
/// after the server's read of it, and one request waits unread for `lag` rounds.
fn ping_pong(rounds: u64, lag: u64) -> Trace {
    let mut t = Trace::new();
    t.spawn("b", 200, "server");
    t.listen("b", 200, 1, "127.0.0.1:7000");
    t.spawn("a", 100, "client");
    let c = tcp(10, "127.0.0.1:40000", "127.0.0.1:7000");
    let s = tcp(20, "127.0.0.1:7000", "127.0.0.1:40000");
    t.connect("a", 100, 100, c.clone());
    t.accept("b", 200, 200, s.clone());
    // A second connection whose first request the server reads only after `lag` rounds.
    let c2 = tcp(11, "127.0.0.1:40001", "127.0.0.1:7000");
    let s2 = tcp(21, "127.0.0.1:7000", "127.0.0.1:40001");
    t.connect("a", 100, 101, c2.clone());
    t.accept("b", 200, 200, s2.clone());
    t.data("a", 100, 101, "write", &c2, 0, 7);
    for k in 0..rounds {
        if k % 10 == 3 {
            t.data("b", 200, 200, "read", &s, 5 * k, 5);
            t.data("a", 100, 100, "write", &c, 5 * k, 5);
        } else {
            t.data("a", 100, 100, "write", &c, 5 * k, 5);
            t.data("b", 200, 200, "read", &s, 5 * k, 5);
        }
        t.data("b", 200, 200, "write", &s, 2 * k, 2);
        t.data("a", 100, 100, "read", &c, 2 * k, 2);
        if k == lag {
            t.data("b", 200, 200, "read", &s2, 0, 7);
        }
    }
    t
}

/// What is held while streaming does not grow with the trace: receives recorded before their
/// sends hold a window of a few events, and a message read long after it was sent holds only
/// its send.
#[test]
fn the_window_does_not_grow_with_the_trace() {
    let h = header(&[("a", &[]), ("b", &[7000])]);
    let mut windows = Vec::new();
    for rounds in [50, 5000] {
        let t = ping_pong(rounds, rounds - 1);
        if rounds == 50 {
            assert_eq!(both_ways(&h, &t.events, DEFAULT_DOT_LIMIT), None);
        }
        let dir = tempfile::tempdir().unwrap();
        let trace = write_trace(dir.path(), &h, &t.events);
        let got =
            write_trace_outputs(&trace, dir.path(), RunFacts::verdict(Verdict::pass()), 0).unwrap();
        assert_eq!(got.in_memory, None);
        assert_eq!(got.summary.edges.message, 2 * rounds + 1);
        windows.push(got.window);
    }
    // The server's read of a request recorded before it waits for the request: one event
    // open, and the request taken in.
    assert_eq!(windows, vec![2, 2]);
}
