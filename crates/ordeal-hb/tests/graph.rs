mod common;

use common::{client_server, header, tcp, three_nodes, udp_trace, Trace};
use ordeal_hb::{Edge, EdgeKind, HbGraph};
use std::collections::BTreeMap;

fn cross(g: &HbGraph) -> Vec<(u64, u64, EdgeKind)> {
    let mut v: Vec<_> = g
        .edges()
        .filter(|e| e.kind != EdgeKind::Program)
        .map(|e| (e.from, e.to, e.kind))
        .collect();
    v.sort_by_key(|e| (e.0, e.1));
    v
}

fn msg(bytes: u64) -> EdgeKind {
    EdgeKind::Message { bytes }
}

#[test]
fn stream_bytes_are_matched_by_range_with_exact_edges() {
    let t = client_server();
    let g = HbGraph::build(&header(&[("a", &[]), ("b", &[7000])]), &t.events);
    assert_eq!(
        cross(&g),
        vec![
            (3, 4, EdgeKind::Connect),
            (5, 7, msg(4)),
            (5, 8, msg(6)),
            (6, 8, msg(10)),
            (6, 9, msg(5)),
            (10, 11, msg(3)),
        ]
    );
    assert!(g.warnings().is_empty(), "{:?}", g.warnings());
    // The first read only saw bytes of the first write: the second write is concurrent to it.
    assert!(g.concurrent(6, 7));
    assert!(g.happens_before(5, 7));
    assert!(g.happens_before(6, 9));
    assert!(g.happens_before(10, 12));
    assert!(!g.happens_before(11, 10));
}

#[test]
fn connect_pairs_with_accept_in_order_of_appearance_for_a_reused_four_tuple() {
    let mut t = Trace::new();
    t.spawn("b", 200, "server"); // 0
    t.listen("b", 200, 1, "127.0.0.1:7000"); // 1
    t.spawn("a", 100, "client"); // 2
    let (ca, cb) = ("127.0.0.1:40000", "127.0.0.1:7000");
    t.connect("a", 100, 100, tcp(10, ca, cb)); // 3
    t.accept("b", 200, 200, tcp(20, cb, ca)); // 4
    t.push("a", 100, 100, "close", |e| e.sock = Some(tcp(10, ca, cb))); // 5
    t.push("b", 200, 200, "close", |e| e.sock = Some(tcp(20, cb, ca))); // 6
                                                                        // Same 4-tuple again; this time the accept completes first.
    t.accept("b", 200, 200, tcp(21, cb, ca)); // 7
    t.connect("a", 100, 100, tcp(11, ca, cb)); // 8
    let g = HbGraph::build(&header(&[("a", &[]), ("b", &[])]), &t.events);
    assert_eq!(
        cross(&g),
        vec![(3, 4, EdgeKind::Connect), (8, 7, EdgeKind::Connect)]
    );
    assert!(g.happens_before(8, 7));
    assert!(g.happens_before(3, 8));
    let conns = g.connections();
    assert_eq!(conns.len(), 2);
    assert_eq!(
        (conns[0].connect_seq, conns[0].accept_seq),
        (Some(3), Some(4))
    );
    assert_eq!(
        (conns[1].connect_seq, conns[1].accept_seq),
        (Some(8), Some(7))
    );
    assert!(conns.iter().all(|c| c.both_traced
        && c.client_node == "a"
        && c.server_node == "b"
        && c.server_addr == "127.0.0.1:7000"));
}

#[test]
fn dual_stack_spellings_and_nonblocking_connect_still_pair() {
    let mut t = Trace::new();
    t.spawn("b", 200, "server"); // 0
    t.spawn("a", 100, "client"); // 1
    t.push("a", 100, 100, "connect", |e| {
        e.ret = Some(-115);
        e.errno = Some("EINPROGRESS".into());
        e.sock = Some(tcp(10, "127.0.0.1:40000", "127.0.0.1:7000"));
    }); // 2
    t.accept(
        "b",
        200,
        200,
        tcp(20, "[::ffff:127.0.0.1]:7000", "[::ffff:127.0.0.1]:40000"),
    ); // 3
    let g = HbGraph::build(&header(&[("a", &[]), ("b", &[])]), &t.events);
    assert_eq!(cross(&g), vec![(2, 3, EdgeKind::Connect)]);
    assert!(g.failed_connects().is_empty());
}

#[test]
fn fork_edge_and_program_order() {
    let mut t = Trace::new();
    t.spawn("a", 100, "server"); // 0
    t.push("a", 100, 100, "clone", |e| e.child = Some(101)); // 1
    t.push("a", 100, 101, "openat", |e| e.ret = Some(3)); // 2: first event of the new thread
    t.push("a", 100, 100, "fsync", |e| e.ret = Some(0)); // 3
    t.push("a", 100, 101, "fsync", |e| e.ret = Some(0)); // 4
    let g = HbGraph::build(&header(&[("a", &[])]), &t.events);
    let fork = Edge {
        from: 1,
        to: 2,
        kind: EdgeKind::Fork,
    };
    assert_eq!(g.preds(2), vec![fork]);
    assert_eq!(
        g.preds(3),
        vec![Edge {
            from: 1,
            to: 3,
            kind: EdgeKind::Program
        }]
    );
    assert_eq!(
        g.preds(4),
        vec![Edge {
            from: 2,
            to: 4,
            kind: EdgeKind::Program
        }]
    );
    let program: Vec<(u64, u64)> = g
        .edges()
        .filter(|e| e.kind == EdgeKind::Program)
        .map(|e| (e.from, e.to))
        .collect();
    assert_eq!(program, vec![(0, 1), (1, 3), (2, 4)]);
    assert_eq!(g.threads().len(), 2);
    assert_eq!(g.threads()[1].parent, Some(1));
    assert!(g.happens_before(0, 4));
    assert!(g.happens_before(1, 2));
    assert!(g.concurrent(3, 2));
    assert!(g.concurrent(3, 4));
    assert!(!g.happens_before(2, 2));
    let c = g.edge_counts();
    assert_eq!((c.program, c.fork, c.connect, c.message), (3, 1, 0, 0));
}

#[test]
fn three_node_chain_orders_clocks_and_unrelated_sends_are_concurrent() {
    let t = three_nodes();
    let g = HbGraph::build(&header(&[("a", &[]), ("b", &[]), ("c", &[])]), &t.events);
    let named = |s| g.vc_named(s).unwrap();
    let m = |v: &[(&str, u64)]| {
        v.iter()
            .map(|(k, x)| (k.to_string(), *x))
            .collect::<BTreeMap<_, _>>()
    };
    assert_eq!(named(9), m(&[("a/100", 3)]));
    assert_eq!(named(12), m(&[("a/100", 3), ("b/200", 6), ("c/300", 4)]));
    assert_eq!(named(13), m(&[("a/100", 4)]));
    assert_eq!(named(14), m(&[("a/100", 3), ("b/200", 6), ("c/300", 5)]));
    assert!(g.vc(9).unwrap().le(&g.vc(12).unwrap()));
    assert!(g.happens_before(9, 12));
    assert!(!g.happens_before(12, 9));
    assert!(g.concurrent(13, 14));
    assert!(g.concurrent(13, 12));
    // The fast test agrees with the componentwise definition on every pair.
    let n = t.events.len() as u64;
    for a in 0..n {
        for b in 0..n {
            let def = a != b && g.vc(a).unwrap().le(&g.vc(b).unwrap());
            assert_eq!(g.happens_before(a, b), def, "{a} -> {b}");
        }
    }
}

#[test]
fn reused_tid_is_a_new_thread_incarnation() {
    let mut t = Trace::new();
    t.spawn("a", 100, "sh"); // 0
    t.push("a", 100, 100, "fork", |e| e.child = Some(200)); // 1
    t.push("a", 200, 200, "openat", |e| e.ret = Some(3)); // 2
    t.exit("a", 200, 200, Some(0), None); // 3
    t.push("a", 100, 100, "fork", |e| e.child = Some(200)); // 4
    t.push("a", 200, 200, "openat", |e| e.ret = Some(3)); // 5
    t.exit("a", 200, 200, Some(1), None); // 6
    t.push("a", 100, 100, "openat", |e| e.ret = Some(3)); // 7
    let g = HbGraph::build(&header(&[("a", &[])]), &t.events);
    let th = g.threads();
    assert_eq!(th.len(), 3);
    assert_ne!(g.thread_of(2), g.thread_of(5));
    assert_eq!(th[1].label(), "a/200");
    assert_eq!(th[2].label(), "a/200#2");
    assert_eq!((th[2].incarnation, th[2].parent), (2, Some(4)));
    assert!(g.preds(5).iter().all(|e| e.kind == EdgeKind::Fork));
    // Had the two incarnations been merged, 3 would precede 5 in program order.
    assert!(g.concurrent(3, 5));
    assert!(g.happens_before(1, 6));
    assert!(g.concurrent(6, 7));
}

#[test]
fn tid_reused_after_exit_without_a_traced_fork_is_still_new() {
    let mut t = Trace::new();
    t.spawn("a", 100, "x"); // 0
    t.exit("a", 100, 100, Some(0), None); // 1
    t.spawn("a", 100, "y"); // 2
    t.push("a", 100, 100, "openat", |e| e.ret = Some(3)); // 3
    let g = HbGraph::build(&header(&[("a", &[])]), &t.events);
    assert_eq!(g.threads().len(), 2);
    assert!(g.concurrent(1, 2));
    assert!(g.happens_before(2, 3));
}

#[test]
fn udp_datagrams_pair_fifo_per_address_pair_with_equal_size() {
    let t = udp_trace();
    let g = HbGraph::build(&header(&[("a", &[]), ("b", &[])]), &t.events);
    assert_eq!(
        cross(&g),
        vec![(3, 6, msg(5)), (4, 8, msg(5)), (5, 7, msg(7))]
    );
    let ab = &g.traffic()[&("a".to_string(), "b".to_string())];
    assert_eq!((ab.messages, ab.bytes, ab.unmatched_bytes), (3, 17, 0));
    let ax = &g.traffic()[&("a".to_string(), "external".to_string())];
    assert_eq!((ax.messages, ax.bytes, ax.unmatched_bytes), (0, 0, 9));
}

#[test]
fn unix_socketpair_with_peer_inode_matches_bytes() {
    use ordeal_events::{Proto, Sock};
    let unix = |ino, peer| Sock {
        ino,
        proto: Proto::Unix,
        local: None,
        remote: None,
        peer_ino: Some(peer),
        peer_node: None,
    };
    let mut t = Trace::new();
    t.spawn("a", 100, "a"); // 0
    t.push("a", 100, 100, "fork", |e| e.child = Some(101)); // 1
    t.data("a", 100, 100, "write", &unix(7, 8), 0, 4); // 2
    t.data("a", 101, 101, "read", &unix(8, 7), 0, 4); // 3
    let g = HbGraph::build(&header(&[("a", &[])]), &t.events);
    assert_eq!(cross(&g), vec![(1, 3, EdgeKind::Fork), (2, 3, msg(4))]);
    assert!(g.connections().is_empty(), "a socketpair is no connection");
}

#[test]
fn cyclic_input_is_broken_deterministically_without_panicking() {
    // Each read claims the bytes of a write that comes after it in its peer's program order.
    let mut t = Trace::new();
    let x = tcp(10, "127.0.0.1:1", "127.0.0.1:2");
    let y = tcp(20, "127.0.0.1:2", "127.0.0.1:1");
    t.data("a", 100, 100, "read", &x, 0, 4); // 0 (claims b's write 3)
    t.data("a", 100, 100, "write", &x, 0, 4); // 1
    t.data("b", 200, 200, "read", &y, 0, 4); // 2 (claims a's write 1)
    t.data("b", 200, 200, "write", &y, 0, 4); // 3
    let g = HbGraph::build(&header(&[("a", &[]), ("b", &[])]), &t.events);
    assert_eq!(g.warnings().len(), 1, "{:?}", g.warnings());
    assert!(g.warnings()[0].contains("cycle"));
    assert_eq!(
        g.dropped_edges(),
        &[Edge {
            from: 3,
            to: 0,
            kind: msg(4)
        }]
    );
    assert_eq!(cross(&g), vec![(1, 2, msg(4))]);
    assert!(g.happens_before(0, 3));
    assert!(!g.happens_before(3, 0));
    // Every output still works.
    let s = ordeal_hb::Summary::build(&g, ordeal_hb::Verdict::pass());
    let dir = tempfile::tempdir().unwrap();
    ordeal_hb::write_outputs(dir.path(), &g, &s, 300).unwrap();
}

#[test]
fn unsorted_input_and_unknown_seqs_are_handled() {
    let mut t = client_server();
    t.events.reverse();
    let g = HbGraph::build(&header(&[("a", &[]), ("b", &[])]), &t.events);
    assert_eq!(g.events()[0].seq, 0);
    assert!(g.happens_before(5, 8));
    assert!(!g.happens_before(5, 999));
    assert!(!g.concurrent(999, 5));
    assert_eq!(g.vc(999), None);
    assert!(g.preds(999).is_empty());
}

#[test]
fn untraced_peer_is_named_by_listening_address_else_external() {
    let mut t = Trace::new();
    t.spawn("b", 200, "server"); // 0
    t.listen("b", 200, 1, "0.0.0.0:7000"); // 1: wildcard listener, no header port
    t.spawn("a", 100, "client"); // 2
                                 // b never accepts this one.
    t.connect("a", 100, 100, tcp(10, "127.0.0.1:40000", "127.0.0.1:7000")); // 3
    t.connect("a", 100, 100, tcp(11, "127.0.0.1:40001", "10.9.9.9:443")); // 4
    let g = HbGraph::build(&header(&[("a", &[]), ("b", &[])]), &t.events);
    assert_eq!(g.node_of_addr("127.0.0.1:7000"), Some("b"));
    let servers: Vec<_> = g
        .connections()
        .iter()
        .map(|c| (c.server_node.as_str(), c.both_traced))
        .collect();
    assert_eq!(servers, vec![("b", false), ("external", false)]);
    assert_eq!(g.peer_node(10), Some("b"));
    assert_eq!(g.peer_node(11), Some("external"));
    assert_eq!(g.peer_node(1), None, "a listening socket has no peer");
    assert!(cross(&g).is_empty());
}

#[test]
fn placeholder_addresses_do_not_hide_the_real_ones() {
    let mut t = Trace::new();
    t.spawn("b", 200, "server"); // 0
    t.spawn("a", 100, "client"); // 1
    t.push("a", 100, 100, "socket", |e| {
        e.ret = Some(4);
        e.sock = Some(tcp(10, "0.0.0.0:0", ""));
    }); // 2
    t.connect("a", 100, 100, tcp(10, "127.0.0.1:40000", "127.0.0.1:7000")); // 3
    t.accept("b", 200, 200, tcp(20, "127.0.0.1:7000", "127.0.0.1:40000")); // 4
    let g = HbGraph::build(&header(&[("a", &[]), ("b", &[])]), &t.events);
    assert_eq!(cross(&g), vec![(3, 4, EdgeKind::Connect)]);
}

#[test]
fn fork_recorded_after_the_child_ran_still_links_them() {
    let mut t = Trace::new();
    t.spawn("a", 100, "sh"); // 0
    t.push("a", 101, 101, "exec", |e| e.argv = Some(vec!["ls".into()])); // 1
    t.exit("a", 101, 101, Some(0), None); // 2
    t.push("a", 100, 100, "vfork", |e| e.child = Some(101)); // 3
    t.push("a", 102, 102, "openat", |e| e.ret = Some(3)); // 4: unrelated, no creator seen
    let g = HbGraph::build(&header(&[("a", &[])]), &t.events);
    assert_eq!(cross(&g), vec![(3, 1, EdgeKind::Fork)]);
    assert_eq!(g.threads()[1].parent, Some(3));
    assert!(g.happens_before(0, 2));
    assert!(g.warnings().is_empty());
}
