mod common;

use common::{client_server, header, tcp, three_nodes, Trace};
use ordeal_hb::*;
use serde_json::Value;
use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

/// client_server plus: 7 bytes to an untraced address, a refused connect to b's second port,
/// and an in-progress connect to c's port (c never ran).
fn rich() -> (ordeal_events::Header, Trace) {
    let mut t = client_server();
    t.events.truncate(12);
    let x = tcp(11, "127.0.0.1:40002", "127.0.0.1:9999");
    t.connect("a", 100, 100, x.clone()); // 12
    t.data("a", 100, 100, "write", &x, 0, 7); // 13
    t.push("a", 100, 100, "connect", |e| {
        e.ret = Some(-111);
        e.errno = Some("ECONNREFUSED".into());
        e.addr = Some("127.0.0.1:7002".into());
    }); // 14
    t.push("a", 100, 100, "connect", |e| {
        e.ret = Some(-115);
        e.errno = Some("EINPROGRESS".into());
        e.addr = Some("127.0.0.1:7005".into());
        e.sock = Some(tcp(12, "127.0.0.1:40003", "127.0.0.1:7005"));
    }); // 15
    t.exit("a", 100, 100, Some(0), None); // 16
    t.exit("b", 200, 200, None, Some("SIGKILL")); // 17
    let h = header(&[("a", &[]), ("b", &[7000, 7002]), ("c", &[7005])]);
    (h, t)
}

#[test]
fn summary_counts_are_exact() {
    let (h, t) = rich();
    let g = HbGraph::build(&h, &t.events);
    let s = Summary::build(&g, Verdict::fail(vec!["b was killed".into()]));
    assert_eq!((s.schema.as_str(), s.version), ("ordeal-summary", 1));
    assert_eq!(s.experiment, "test");
    assert_eq!(s.verdict.status, ordeal_hb::Status::Fail);
    assert!(serde_json::to_string(&s)
        .unwrap()
        .contains(r#""verdict":{"status":"fail""#));

    let a = s.node("a").unwrap();
    assert_eq!(
        (a.role.as_str(), a.process_count, a.thread_count),
        ("node", 1, 1)
    );
    assert_eq!(
        a.processes,
        vec![ProcessSummary {
            pid: 100,
            command: Some("client".into()),
            code: Some(0),
            signal: None
        }]
    );
    let b = s.node("b").unwrap();
    assert_eq!(b.processes[0].signal.as_deref(), Some("SIGKILL"));
    assert_eq!(b.processes[0].status(), "SIGKILL");
    let c = s.node("c").unwrap();
    assert_eq!((c.process_count, c.thread_count), (0, 0));

    let conns: Vec<_> = s
        .connections
        .iter()
        .map(|c| {
            (
                c.client_node.as_str(),
                c.server_node.as_str(),
                c.client_addr.as_str(),
                c.server_addr.as_str(),
                c.bytes_client_to_server,
                c.bytes_server_to_client,
                c.both_traced,
            )
        })
        .collect();
    assert_eq!(
        conns,
        vec![
            ("a", "b", "127.0.0.1:40000", "127.0.0.1:7000", 25, 3, true),
            (
                "a",
                "external",
                "127.0.0.1:40002",
                "127.0.0.1:9999",
                7,
                0,
                false
            ),
            ("a", "c", "127.0.0.1:40003", "127.0.0.1:7005", 0, 0, false),
        ]
    );
    assert_eq!(s.failed_connects.len(), 1);
    let f = &s.failed_connects[0];
    assert_eq!(
        (
            f.node.as_str(),
            f.addr.as_str(),
            f.target_node.as_str(),
            f.errno.as_str(),
            f.count
        ),
        ("a", "127.0.0.1:7002", "b", "ECONNREFUSED", 1)
    );

    let pair = |x: &str, y: &str| {
        let p = s.pair(x, y).unwrap();
        (p.messages, p.bytes, p.unmatched_bytes, p.connections)
    };
    assert_eq!(pair("a", "b"), (2, 25, 0, 1));
    assert_eq!(pair("b", "a"), (1, 3, 0, 0));
    assert_eq!(pair("a", "external"), (0, 0, 7, 1));
    assert_eq!(pair("a", "c"), (0, 0, 0, 1));
    assert_eq!(s.pairs.len(), 4);

    assert_eq!(s.events.total, 18);
    assert_eq!(s.events.by_call["connect"], 4);
    assert_eq!(s.events.by_call["write"], 4);
    assert_eq!(s.events.by_class["data"], 8);
    assert_eq!(s.events.by_class["proc"], 4);
    assert_eq!(s.edges.message, 5);
    assert_eq!(s.edges.connect, 1);
    assert_eq!(s.edges.fork, 0);
    assert_eq!(s.edges.program, 16);
    assert_eq!(s.span_ns, 18_000 - 1_000);

    // summary.json round-trips.
    let mut buf = Vec::new();
    write_summary_json(&s, &mut buf).unwrap();
    let back: Summary = serde_json::from_slice(&buf).unwrap();
    assert_eq!(back, s);
}

#[test]
fn human_summary_is_aligned_and_complete() {
    let (h, t) = rich();
    let g = HbGraph::build(&h, &t.events);
    let s = Summary::build(&g, Verdict::fail(vec!["b was killed".into()]));
    let text = human_summary(&s);
    println!("{text}");
    assert!(
        text.starts_with("test: 3 nodes, 0 workloads, 2 processes traced, 18 events in 17.0 µs\n")
    );
    assert!(
        text.contains("  NODE  ROLE  PROCS  THREADS  EXIT\n"),
        "{text}"
    );
    assert!(
        text.contains("  a     node      1        1  exit 0\n"),
        "{text}"
    );
    assert!(
        text.contains("  b     node      1        1  SIGKILL\n"),
        "{text}"
    );
    assert!(text.contains("  c     node      0        0  -\n"), "{text}");
    assert!(text.contains("ECONNREFUSED"));
    assert!(
        text.contains("  a     b                2   25 B          -\n"),
        "{text}"
    );
    assert!(
        !text.contains("  a     c         "),
        "pairs without traffic are left out"
    );
    assert!(text.contains("  verdict  FAIL\n    - b was killed\n"));
    for line in text.lines() {
        assert_eq!(line, line.trim_end(), "trailing spaces");
    }
}

fn dot_accepts(path: &Path) {
    if !ordeal_test_support::installed(&["dot"], "graphviz") {
        return;
    }
    let out = Command::new("dot").arg("-Tsvg").arg(path).output().unwrap();
    assert!(
        out.status.success(),
        "dot rejected {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn event_level_dot_has_clusters_styles_and_renders() {
    let mut t = client_server();
    t.push("b", 200, 200, "clone", |e| e.child = Some(201)); // 14
    t.push("b", 200, 201, "fsync", |e| {
        e.ret = Some(0);
        e.path = Some("/data/b/wal".into());
    }); // 15
    t.push("b", 200, 201, "openat", |e| e.ret = Some(3)); // 16: not drawn
    let g = HbGraph::build(&header(&[("a", &[]), ("b", &[])]), &t.events);
    let mut buf = Vec::new();
    assert_eq!(
        write_dot(&g, &mut buf, DEFAULT_DOT_LIMIT).unwrap(),
        DotLevel::Events
    );
    let dot = String::from_utf8(buf).unwrap();
    assert!(dot.contains("subgraph \"cluster_a\""), "{dot}");
    assert!(dot.contains("label=\"b\""));
    assert!(dot.contains("e5 [label=\"#5 write 10B\""), "{dot}");
    assert!(dot.contains("e3 [label=\"#3 connect → b\""), "{dot}");
    assert!(dot.contains("e4 [label=\"#4 accept4 ← a\""), "{dot}");
    assert!(dot.contains("e15 [label=\"#15 fsync wal\""), "{dot}");
    assert!(!dot.contains("e16 "), "open is not drawn");
    assert!(dot.contains("e5 -> e8 [style=bold, penwidth=2, color=\"#1d4ed8\", fontcolor=\"#1d4ed8\", label=\"6 B\"]"));
    assert!(dot.contains("e3 -> e4 [style=dashed"));
    assert!(dot.contains("e14 -> e15 [style=dotted"));
    assert!(dot.contains("e5 -> e6 [color=\"#b0b0b0\", penwidth=0.5"));
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("graph.dot");
    std::fs::write(&p, &dot).unwrap();
    dot_accepts(&p);
}

#[test]
fn names_are_escaped_and_node_level_dot_renders() {
    // Node names with quotes, backslashes and newlines.
    let weird = "we\"ird\\node\nx";
    let mut t = Trace::new();
    t.spawn(weird, 100, "a\"b");
    t.spawn("b", 200, "b");
    t.listen("b", 200, 1, "127.0.0.1:7000");
    let c = tcp(10, "127.0.0.1:40000", "127.0.0.1:7000");
    let s = tcp(20, "127.0.0.1:7000", "127.0.0.1:40000");
    t.connect(weird, 100, 100, c.clone());
    t.accept("b", 200, 200, s.clone());
    t.data(weird, 100, 100, "write", &c, 0, 10);
    t.data("b", 200, 200, "read", &s, 0, 10);
    let g = HbGraph::build(&header(&[(weird, &[]), ("b", &[])]), &t.events);
    let dir = tempfile::tempdir().unwrap();
    for (limit, level) in [(300, DotLevel::Events), (0, DotLevel::Nodes)] {
        let mut buf = Vec::new();
        assert_eq!(write_dot(&g, &mut buf, limit).unwrap(), level);
        let dot = String::from_utf8(buf).unwrap();
        assert!(dot.contains("we\\\"ird\\\\node\\nx"), "{dot}");
        if level == DotLevel::Nodes {
            assert!(
                dot.contains("label=\"1 msg, 10 bytes\\n1 connection\""),
                "{dot}"
            );
        }
        let p = dir.path().join(format!("g{limit}.dot"));
        std::fs::write(&p, &dot).unwrap();
        dot_accepts(&p);
    }
}

#[test]
fn chrome_trace_has_matching_flows_inside_their_slices() {
    let t = three_nodes();
    let g = HbGraph::build(&header(&[("a", &[]), ("b", &[]), ("c", &[])]), &t.events);
    let mut buf = Vec::new();
    write_chrome_trace(&g, &mut buf).unwrap();
    let v: Value = serde_json::from_slice(&buf).unwrap();
    assert_eq!(v["displayTimeUnit"], "ns");
    let evs = v["traceEvents"].as_array().unwrap();
    let names: Vec<_> = evs
        .iter()
        .filter(|e| e["name"] == "process_name")
        .map(|e| {
            (
                e["pid"].as_u64().unwrap(),
                e["args"]["name"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(names, vec![(1, "a"), (2, "b"), (3, "c")]);
    assert!(evs
        .iter()
        .any(|e| e["name"] == "thread_name" && e["args"]["name"] == "tid 200" && e["pid"] == 2));
    // Slices per (pid, tid).
    let mut slices: HashMap<(u64, u64), Vec<(f64, f64)>> = HashMap::new();
    for e in evs.iter().filter(|e| e["ph"] == "X") {
        let key = (e["pid"].as_u64().unwrap(), e["tid"].as_u64().unwrap());
        let ts = e["ts"].as_f64().unwrap();
        slices
            .entry(key)
            .or_default()
            .push((ts, ts + e["dur"].as_f64().unwrap()));
    }
    let x = evs
        .iter()
        .find(|e| e["ph"] == "X" && e["args"]["seq"] == 9)
        .unwrap();
    assert_eq!(x["name"], "write");
    assert_eq!(x["args"]["bytes"], 5);
    assert_eq!(x["ts"].as_f64().unwrap(), 10.0);
    assert_eq!(x["dur"].as_f64().unwrap(), 0.1);
    assert!(evs.iter().any(|e| e["ph"] == "i" && e["name"] == "spawn"));
    let mut flows: HashMap<u64, (u32, u32)> = HashMap::new();
    for e in evs.iter().filter(|e| e["ph"] == "s" || e["ph"] == "f") {
        assert_eq!(e["cat"], "msg");
        let id = e["id"].as_u64().unwrap();
        let entry = flows.entry(id).or_default();
        if e["ph"] == "s" {
            entry.0 += 1;
        } else {
            assert_eq!(e["bp"], "e");
            entry.1 += 1;
        }
        let key = (e["pid"].as_u64().unwrap(), e["tid"].as_u64().unwrap());
        let ts = e["ts"].as_f64().unwrap();
        assert!(
            slices[&key].iter().any(|&(a, b)| a < ts && ts < b),
            "flow {id} at {ts} is not inside a slice of {key:?}"
        );
    }
    let c = g.edge_counts();
    assert_eq!(flows.len() as u64, c.message + c.connect);
    assert_eq!(flows.len(), 4);
    assert!(flows.values().all(|&n| n == (1, 1)));
}

#[test]
fn hb_jsonl_lists_clocks_and_typed_predecessors() {
    let t = client_server();
    let g = HbGraph::build(&header(&[("a", &[]), ("b", &[])]), &t.events);
    let mut buf = Vec::new();
    write_hb_jsonl(&g, &mut buf).unwrap();
    let text = String::from_utf8(buf).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 14);
    assert_eq!(lines[0], r#"{"seq":0,"vc":{"b/200":1},"pred":[]}"#);
    assert_eq!(
        lines[8],
        r#"{"seq":8,"vc":{"b/200":5,"a/100":4},"pred":[{"seq":7,"kind":"program"},{"seq":5,"kind":"message","bytes":6},{"seq":6,"kind":"message","bytes":10}]}"#
    );
    assert_eq!(
        lines[4],
        r#"{"seq":4,"vc":{"b/200":3,"a/100":2},"pred":[{"seq":1,"kind":"program"},{"seq":3,"kind":"connect"}]}"#
    );
    for l in lines {
        let _: Value = serde_json::from_str(l).unwrap();
    }
}

#[test]
fn write_outputs_writes_every_file() {
    let (h, t) = rich();
    let g = HbGraph::build(&h, &t.events);
    let s = Summary::build(&g, Verdict::pass());
    let dir = tempfile::tempdir().unwrap();
    let out = write_outputs(dir.path(), &g, &s, DEFAULT_DOT_LIMIT).unwrap();
    assert_eq!(out.dot_level, DotLevel::Events);
    let names: Vec<_> = out
        .files
        .iter()
        .map(|p| p.file_name().unwrap().to_str().unwrap().to_string())
        .collect();
    let mut want = vec!["graph.dot", "trace.json", "summary.json", "hb.jsonl"];
    if out.svg {
        want.insert(1, "graph.svg");
    }
    assert_eq!(names, want);
    for p in &out.files {
        assert!(std::fs::metadata(p).unwrap().len() > 0, "{}", p.display());
    }
}

#[test]
#[ignore = "writes sample outputs to $ORDEAL_HB_SAMPLE for manual inspection"]
fn sample_outputs() {
    let dir = std::env::var("ORDEAL_HB_SAMPLE").unwrap();
    let mut t = three_nodes();
    t.push("b", 200, 200, "clone", |e| e.child = Some(201));
    t.push("b", 200, 201, "fsync", |e| {
        e.ret = Some(0);
        e.path = Some("/data/b/wal".into());
    });
    let g = HbGraph::build(&header(&[("a", &[]), ("b", &[]), ("c", &[])]), &t.events);
    let s = Summary::build(&g, Verdict::pass());
    write_outputs(Path::new(&dir), &g, &s, DEFAULT_DOT_LIMIT).unwrap();
    let mut f = std::fs::File::create(Path::new(&dir).join("nodes.dot")).unwrap();
    write_node_dot(&g, &mut f).unwrap();
}

#[test]
fn chrome_slices_of_one_thread_never_overlap() {
    let mut t = Trace::new();
    t.spawn("a", 100, "a");
    let c = tcp(10, "127.0.0.1:1", "127.0.0.1:2");
    let w = t.data("a", 100, 100, "write", &c, 0, 1);
    t.events[w as usize].dur = 5_000; // claims to outlast the next call's start
    t.data("a", 100, 100, "write", &c, 1, 1);
    let g = HbGraph::build(&header(&[("a", &[])]), &t.events);
    let mut buf = Vec::new();
    write_chrome_trace(&g, &mut buf).unwrap();
    let v: Value = serde_json::from_slice(&buf).unwrap();
    let x: Vec<(f64, f64)> = v["traceEvents"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["ph"] == "X")
        .map(|e| (e["ts"].as_f64().unwrap(), e["dur"].as_f64().unwrap()))
        .collect();
    assert_eq!(x, vec![(2.0, 1.0), (3.0, 0.1)]);
}

/// Every output file of a graph streamed from trace.jsonl, byte for byte as from the events
/// in memory, for both dot levels.
#[test]
fn outputs_from_the_trace_file_equal_outputs_from_events() {
    let (h, mut t) = rich();
    t.push("b", 200, 200, "fsync", |e| {
        e.ret = Some(0);
        e.path = Some("/data/b/wal".into());
        e.fault = Some(ordeal_events::FaultMark::fired("f", "delay 1ms before"));
    });
    t.push("b", 200, 200, "exec", |e| {
        e.argv = Some(vec!["/bin/true".into(), "x".into()]);
    });
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("trace.jsonl");
    let mut w = ordeal_events::TraceWriter::new(Vec::new(), &h).unwrap();
    for e in &t.events {
        w.write(e).unwrap();
    }
    std::fs::write(&trace, w.into_inner()).unwrap();
    let streamed = HbGraph::from_trace(&trace).unwrap();
    let held = HbGraph::build(&h, &t.events);
    assert!(streamed.events().is_empty());
    assert_eq!(streamed.len(), t.events.len());
    for limit in [DEFAULT_DOT_LIMIT, 0] {
        let mut files = Vec::new();
        for g in [&held, &streamed] {
            let out = dir.path().join(format!("out{}", files.len()));
            std::fs::create_dir(&out).unwrap();
            let s = Summary::build(g, Verdict::pass());
            write_outputs(&out, g, &s, limit).unwrap();
            files.push(out);
        }
        for name in ["graph.dot", "trace.json", "summary.json", "hb.jsonl"] {
            let read = |d: &Path| std::fs::read_to_string(d.join(name)).unwrap();
            assert_eq!(
                read(&files[0]),
                read(&files[1]),
                "{name} (dot limit {limit})"
            );
        }
        for f in files {
            std::fs::remove_dir_all(f).unwrap();
        }
    }
}

/// A trace written out of `seq` order is read whole and sorted, like events in memory.
#[test]
fn a_trace_file_out_of_seq_order_is_sorted() {
    let (h, t) = rich();
    let mut events = t.events.clone();
    events.swap(3, 4);
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("trace.jsonl");
    let mut w = ordeal_events::TraceWriter::new(Vec::new(), &h).unwrap();
    for e in &events {
        w.write(e).unwrap();
    }
    std::fs::write(&trace, w.into_inner()).unwrap();
    let g = HbGraph::from_trace(&trace).unwrap();
    assert_eq!(g.events(), &t.events[..]);
    let held = HbGraph::build(&h, &t.events);
    assert_eq!(
        g.edges().collect::<Vec<_>>(),
        held.edges().collect::<Vec<_>>()
    );
}

/// One server thread, four client processes, 60 request/response rounds each: every client's
/// clock learns the other clients' components at each response, so each change list spans
/// several encoded blocks. hb.jsonl, which reads clocks sequentially, shows on every line the
/// clock [`HbGraph::vc_named`] looks up for that event.
#[test]
fn hb_jsonl_clocks_equal_the_clock_lookups_on_a_busy_server() {
    let mut t = common::Trace::new();
    t.spawn("s", 200, "server");
    t.listen("s", 200, 1, "127.0.0.1:7000");
    let mut socks = Vec::new();
    for k in 0..4 {
        let pid = 100 + k as i32;
        let port = format!("127.0.0.1:{}", 40000 + k);
        t.spawn("c", pid, "client");
        let c = tcp(10 + 2 * k, &port, "127.0.0.1:7000");
        let s = tcp(11 + 2 * k, "127.0.0.1:7000", &port);
        t.connect("c", pid, pid, c.clone());
        t.accept("s", 200, 200, s.clone());
        socks.push((pid, c, s));
    }
    for round in 0..60u64 {
        for (pid, c, s) in &socks {
            t.data("c", *pid, *pid, "write", c, 3 * round, 3);
            t.data("s", 200, 200, "read", s, 3 * round, 3);
            t.data("s", 200, 200, "write", s, 2 * round, 2);
            t.data("c", *pid, *pid, "read", c, 2 * round, 2);
        }
    }
    let g = HbGraph::build(&header(&[("s", &[7000]), ("c", &[])]), &t.events);
    assert!(g.clock_entries() > 4 * 60 * 3, "{}", g.clock_entries());
    let mut buf = Vec::new();
    write_hb_jsonl(&g, &mut buf).unwrap();
    let text = String::from_utf8(buf).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), t.events.len());
    for (e, line) in t.events.iter().zip(lines) {
        let v: Value = serde_json::from_str(line).unwrap();
        let vc: std::collections::BTreeMap<String, u64> =
            serde_json::from_value(v["vc"].clone()).unwrap();
        assert_eq!(vc, g.vc_named(e.seq).unwrap(), "event {}", e.seq);
    }
    // The last client read knows every client's last write.
    let last = t.events.last().unwrap().seq;
    let named = g.vc_named(last).unwrap();
    assert_eq!(named.len(), 5, "{named:?}");
    assert_eq!(named["c/103"], 2 + 2 * 60);
    assert_eq!(named["c/100"], 2 + 2 * 60 - 1);
}
