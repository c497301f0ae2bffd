//! What the messages said, in the pictures: a send's decoded text on its graph.dot box and on
//! the first message edge out of it, in trace.json's slice name, `message` arg and flow
//! arrow, and the most frequent operations per node pair at node level; the same from the
//! streamed outputs.

mod common;

use common::{client_server, header};
use ordeal_hb::*;
use serde_json::Value;
use std::collections::HashMap;

/// client_server's two requests (writes 5 and 6, read in three parts) and the answer (10).
fn labelled() -> HbGraph {
    let t = client_server();
    let mut g = HbGraph::build(&header(&[("a", &[]), ("b", &[7000])]), &t.events);
    g.set_labels(HashMap::from([
        (5, "SET k1 v1".to_string()),
        (6, "SET k3 v7".to_string()),
        (10, "+OK".to_string()),
    ]));
    g
}

fn event_dot(g: &HbGraph) -> String {
    let mut out = Vec::new();
    write_event_dot(g, &mut out).unwrap();
    String::from_utf8(out).unwrap()
}

/// The DOT line of `from -> to`.
fn edge_line(dot: &str, from: u64, to: u64) -> &str {
    let head = format!("  e{from} -> e{to} [");
    dot.lines()
        .find(|l| l.starts_with(&head))
        .unwrap_or_else(|| panic!("no edge {from} -> {to} in\n{dot}"))
}

#[test]
fn event_level_boxes_and_message_edges_say_what_was_sent() {
    let dot = event_dot(&labelled());
    assert!(
        dot.contains("e6 [label=\"#6 write 15B\\nSET k3 v7\", fillcolor=\"#dbeafe\"];"),
        "{dot}"
    );
    assert!(dot.contains("e10 [label=\"#10 write 3B\\n+OK\""), "{dot}");
    // Reads are not labelled.
    assert!(dot.contains("e8 [label=\"#8 read 16B\", "), "{dot}");
    // The first edge out of a send (its first bytes) says what it sent; the rest keep bytes.
    assert!(edge_line(&dot, 6, 8).ends_with("label=\"SET k3 v7 (10 B)\"];"));
    assert!(edge_line(&dot, 6, 9).ends_with("label=\"5 B\"];"));
    assert!(edge_line(&dot, 5, 7).ends_with("label=\"SET k1 v1 (4 B)\"];"));
    assert!(edge_line(&dot, 5, 8).ends_with("label=\"6 B\"];"));
    assert!(edge_line(&dot, 10, 11).ends_with("label=\"+OK (3 B)\"];"));
}

#[test]
fn long_and_odd_labels_are_cut_and_escaped() {
    let t = client_server();
    let mut g = HbGraph::build(&header(&[("a", &[]), ("b", &[7000])]), &t.events);
    let long = format!("SET \"k\"\n{}", "v".repeat(60));
    g.set_labels(HashMap::from([(6, long)]));
    let dot = event_dot(&g);
    // 40 characters, the last one `…`; quotes and the newline escaped.
    let cut = format!("SET \\\"k\\\"\\n{}…", "v".repeat(31));
    assert!(
        dot.contains(&format!("e6 [label=\"#6 write 15B\\n{cut}\"")),
        "{dot}"
    );
    assert!(edge_line(&dot, 6, 8).ends_with(&format!("label=\"{cut} (10 B)\"];")));
}

#[test]
fn node_level_edges_count_the_operations_sent() {
    let mut g = labelled();
    let mut out = Vec::new();
    write_node_dot(&g, &mut out).unwrap();
    let dot = String::from_utf8(out).unwrap();
    assert!(
        dot.contains("n0 -> n1 [label=\"2 msgs, 25 bytes\\nSET ×2\\n1 connection\""),
        "{dot}"
    );
    assert!(
        dot.contains("n1 -> n0 [label=\"1 msg, 3 bytes\\n+OK ×1\""),
        "{dot}"
    );
    // At most three, most frequent first, then by name.
    g.set_labels(HashMap::from([
        (5, "SET k1 v1".to_string()),
        (6, "GET k1".to_string()),
    ]));
    let mut out = Vec::new();
    write_node_dot(&g, &mut out).unwrap();
    let dot = String::from_utf8(out).unwrap();
    assert!(dot.contains("\\nGET ×1, SET ×1\\n"), "{dot}");
}

#[test]
fn trace_json_names_labelled_slices_and_their_arrows() {
    let g = labelled();
    let mut out = Vec::new();
    write_chrome_trace(&g, &mut out).unwrap();
    let v: Value = serde_json::from_slice(&out).unwrap();
    let entries = v["traceEvents"].as_array().unwrap();
    let slice = |seq: u64| {
        entries
            .iter()
            .find(|e| e["ph"] == "X" && e["args"]["seq"] == seq)
            .unwrap()
    };
    assert_eq!(slice(6)["name"], "write: SET k3 v7");
    assert_eq!(slice(6)["args"]["message"], "SET k3 v7");
    assert_eq!(slice(10)["name"], "write: +OK");
    assert_eq!(slice(8)["name"], "read");
    assert!(slice(8)["args"].get("message").is_none());
    let flows: Vec<&str> = entries
        .iter()
        .filter(|e| e["ph"] == "s")
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        flows,
        [
            "SET k1 v1 (4 B)",
            "message 6 B",
            "SET k3 v7 (10 B)",
            "message 5 B",
            "connect",
            "+OK (3 B)"
        ]
    );
}

/// The run's path: labels given with the run's facts reach every picture, streamed or not.
#[test]
fn run_facts_labels_reach_the_streamed_pictures() {
    let t = client_server();
    let h = header(&[("a", &[]), ("b", &[7000])]);
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("trace.jsonl");
    let mut w = ordeal_events::TraceWriter::new(Vec::new(), &h).unwrap();
    for e in &t.events {
        w.write(e).unwrap();
    }
    std::fs::write(&trace, w.into_inner()).unwrap();
    for limit in [DEFAULT_DOT_LIMIT, 0] {
        let out = dir.path().join(limit.to_string());
        std::fs::create_dir(&out).unwrap();
        let mut facts = RunFacts::verdict(Verdict::pass());
        facts.labels = labelled().labels().clone();
        let got = write_trace_outputs(&trace, &out, facts, limit).unwrap();
        assert_eq!(got.in_memory, None);
        let read = |name: &str| std::fs::read_to_string(out.join(name)).unwrap();
        let (dot, json) = (read("graph.dot"), read("trace.json"));
        assert!(json.contains(r#""message":"SET k3 v7""#), "{json}");
        assert!(json.contains(r#""name":"SET k3 v7 (10 B)""#), "{json}");
        if limit == 0 {
            assert!(dot.contains("\\nSET ×2\\n"), "{dot}");
        } else {
            assert!(edge_line(&dot, 6, 8).ends_with("label=\"SET k3 v7 (10 B)\"];"));
        }
    }
}
