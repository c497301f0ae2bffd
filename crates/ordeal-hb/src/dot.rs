//! `graph.dot`: the happens-before graph for Graphviz.

use crate::chrome::is_instant;
use crate::graph::compact::EvRef;
use crate::graph::{EdgeKind, HbGraph, Peers, ThreadId, ThreadInfo, Traffic, EXTERNAL};
use crate::labels::{cut, EdgeLabels, OpCounts, DOT_CHARS};
use crate::summary::fmt_bytes;
use ordeal_events::{Class, Event, FileOp, Header, SocketOp, Step};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{self, Write};

/// Default maximum number of net + data + proc events drawn one by one; above it the picture
/// becomes the node-level communication graph.
pub const DEFAULT_DOT_LIMIT: usize = 300;

/// Which picture [`write_dot`] drew.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DotLevel {
    /// One box per event, clustered by node and thread.
    Events,
    /// One box per node, one edge per communicating directed node pair.
    Nodes,
}

/// Escapes text for a double-quoted DOT string (the result goes between the quotes).
pub fn dot_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => {}
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// Whether an event belongs in the event-level picture: communication and lifecycle, plus
/// the file operations that make data durable (fsync family, rename). Non-blocking reads and
/// writes that returned EAGAIN are left out.
pub fn drawn(e: &Event) -> bool {
    drawn_by(e.fault.is_some(), e.class, e.errno.as_deref(), || {
        e.file_op()
    })
}

fn drawn_ev(e: EvRef) -> bool {
    drawn_by(e.has_fault(), e.class(), e.errno(), || e.file_op())
}

fn drawn_by(
    fault: bool,
    class: Option<Class>,
    errno: Option<&str>,
    file_op: impl FnOnce() -> Option<FileOp>,
) -> bool {
    if fault {
        return true; // an injected fault is always part of the picture
    }
    match class {
        Some(Class::Net) | Some(Class::Proc) => true,
        Some(Class::Data) => !matches!(errno, Some("EAGAIN") | Some("EWOULDBLOCK")),
        Some(Class::File) => matches!(file_op(), Some(FileOp::Sync(_) | FileOp::Rename)),
        None => false,
    }
}

fn basename(p: &str) -> &str {
    p.rsplit('/').find(|s| !s.is_empty()).unwrap_or(p)
}

/// A one-line description of an event: `#12 write 5B`, `#3 connect → b`, `#9 exit SIGKILL`.
pub fn event_label(g: &HbGraph, e: &Event) -> String {
    label(&g.peers(), e)
}

fn label(g: &Peers, e: &Event) -> String {
    let head = format!("#{} {}", e.seq, e.call);
    let err = || {
        e.errno
            .clone()
            .unwrap_or_else(|| e.ret.unwrap_or(0).to_string())
    };
    let peer = || {
        e.sock
            .as_ref()
            .and_then(|s| g.peer_node(s.ino))
            .filter(|p| *p != EXTERNAL)
            .map(str::to_string)
            .or_else(|| {
                let a = e.addr.as_deref().or(e.sock.as_ref()?.remote.as_deref())?;
                Some(
                    g.node_of_addr(a)
                        .map_or_else(|| a.to_string(), str::to_string),
                )
            })
    };
    match e.call.as_str() {
        _ if e.class == Some(Class::Data) || e.moves_bytes() => match e.ret {
            Some(r) if r < 0 => format!("{head} {}", err()),
            Some(0) if e.is_recv() => format!("{head} EOF"),
            _ => format!("{head} {}B", e.moved()),
        },
        "connect" => {
            let to = peer().unwrap_or_else(|| "?".into());
            match e.errno.as_deref() {
                Some(x) if x != "EINPROGRESS" && !e.ok() => format!("{head} → {to} {x}"),
                _ => format!("{head} → {to}"),
            }
        }
        _ if e.socket_op() == Some(SocketOp::Accept) && e.ok() => {
            format!("{head} ← {}", peer().unwrap_or_else(|| "?".into()))
        }
        "bind" | "listen" if e.ok() => {
            let a = e
                .addr
                .as_deref()
                .or_else(|| e.sock.as_ref().and_then(|s| s.local.as_deref()));
            match a {
                Some(a) => format!("{head} {a}"),
                None => head,
            }
        }
        "spawn" | "exec" => match e.argv.as_ref().and_then(|a| a.first()) {
            Some(a0) => format!("{head} {}", basename(a0)),
            None => head,
        },
        _ if e.step().is_some_and(Step::creates_task) => match e.child {
            Some(c) => format!("{head} → {c}"),
            None => head,
        },
        "exit" => match (&e.signal, e.code) {
            (Some(s), _) => format!("{head} {s}"),
            (None, Some(c)) => format!("{head} {c}"),
            _ => head,
        },
        _ if e.file_op() == Some(FileOp::Rename) => match (&e.path, &e.path2) {
            (Some(a), Some(b)) => format!("{head} {} → {}", basename(a), basename(b)),
            _ => head,
        },
        "shutdown" => match &e.flags {
            Some(f) => format!("{head} {f}"),
            None => head,
        },
        _ if !e.ok() => format!("{head} {}", err()),
        _ => match &e.path {
            Some(p) if e.class == Some(Class::File) => format!("{head} {}", basename(p)),
            _ => head,
        },
    }
}

/// Number of net + data + proc events: what the event-level picture limit counts.
pub fn communication_events(g: &HbGraph) -> usize {
    (0..g.len())
        .filter(|&i| {
            matches!(
                g.ev(i).class(),
                Some(Class::Net | Class::Data | Class::Proc)
            )
        })
        .count()
}

/// Writes `graph.dot`: the event-level graph when the trace has at most `max_events`
/// net + data + proc events, else the node-level communication graph.
pub fn write_dot<W: Write>(g: &HbGraph, w: W, max_events: usize) -> io::Result<DotLevel> {
    if communication_events(g) > max_events {
        write_node_dot(g, w)?;
        Ok(DotLevel::Nodes)
    } else {
        write_event_dot(g, w)?;
        Ok(DotLevel::Events)
    }
}

fn fill(e: &Event) -> &'static str {
    match e.class {
        Some(Class::Net) => "#fff3c4",
        Some(Class::Data) => "#dbeafe",
        Some(Class::Proc) => "#e5e7eb",
        Some(Class::File) => "#dcfce7",
        None => "white",
    }
}

fn preamble(w: &mut impl Write, header: &Header, rankdir: &str, what: &str) -> io::Result<()> {
    writeln!(w, "digraph ordeal {{")?;
    writeln!(
        w,
        "  graph [rankdir={rankdir}, fontname=\"Helvetica\", fontsize=12, labelloc=t, label=\"{}\", newrank=true];",
        dot_escape(&format!("{} — {what}", header.experiment))
    )?;
    writeln!(
        w,
        "  node [shape=box, style=\"rounded,filled\", fillcolor=white, fontname=\"Helvetica\", fontsize=10];"
    )?;
    writeln!(w, "  edge [fontname=\"Helvetica\", fontsize=9];")
}

/// A cross-thread edge as the event-level picture draws it: its ends and their threads.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PictureEdge {
    pub(crate) from: u64,
    pub(crate) to: u64,
    pub(crate) kind: EdgeKind,
    pub(crate) from_thread: ThreadId,
    pub(crate) to_thread: ThreadId,
}

/// What the event-level picture is drawn from.
pub(crate) struct EventPicture<'a> {
    pub(crate) header: &'a Header,
    pub(crate) names: &'a [String],
    pub(crate) threads: &'a [ThreadInfo],
    /// Per thread, its drawn events in program order.
    pub(crate) shown: Vec<Vec<&'a Event>>,
    /// Fork, connect and message edges, in [`HbGraph::edges`] order.
    pub(crate) edges: Vec<PictureEdge>,
    pub(crate) peers: Peers<'a>,
    /// What the messages said, by the `seq` of their send ([`HbGraph::set_labels`]).
    pub(crate) labels: &'a HashMap<u64, String>,
}

/// The event-level picture (regardless of size).
pub fn write_event_dot<W: Write>(g: &HbGraph, w: W) -> io::Result<()> {
    // Drawn events per thread, each as the event its seq names (with duplicate seqs, the one
    // `index_of` finds), and their whole events, for the labels.
    let shown_idx: Vec<Vec<usize>> = (0..g.threads().len())
        .map(|t| {
            g.thread_indices(t)
                .iter()
                .map(|&i| g.ev(i as usize))
                .filter(|&e| drawn_ev(e))
                .filter_map(|e| g.index_of(e.seq()))
                .collect()
        })
        .collect();
    let wanted: HashSet<usize> = shown_idx.iter().flatten().copied().collect();
    let mut events: HashMap<usize, Event> = HashMap::new();
    g.for_each_event(|i, e| {
        if wanted.contains(&i) {
            events.insert(i, e.clone());
        }
        Ok(())
    })?;
    let shown = shown_idx
        .iter()
        .map(|list| list.iter().filter_map(|i| events.get(i)).collect())
        .collect();
    let edges = g
        .edges()
        .filter(|e| e.kind != EdgeKind::Program)
        .filter_map(|e| {
            Some(PictureEdge {
                from: e.from,
                to: e.to,
                kind: e.kind,
                from_thread: g.thread_of(e.from)?,
                to_thread: g.thread_of(e.to)?,
            })
        })
        .collect();
    let names = g.node_names();
    draw_events(
        w,
        EventPicture {
            header: g.header(),
            names: &names,
            threads: g.threads(),
            shown,
            edges,
            peers: g.peers(),
            labels: g.labels(),
        },
    )
}

pub(crate) fn draw_events<W: Write>(mut w: W, p: EventPicture) -> io::Result<()> {
    let w = &mut w;
    preamble(w, p.header, "TB", "happens-before")?;
    let mut threads_by_node: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (t, info) in p.threads.iter().enumerate() {
        if p.shown.get(t).is_some_and(|s| !s.is_empty()) {
            threads_by_node
                .entry(info.node.as_str())
                .or_default()
                .push(t);
        }
    }
    for node in p.names {
        let Some(threads) = threads_by_node.get(node.as_str()) else {
            continue;
        };
        writeln!(w, "  subgraph \"cluster_{}\" {{", dot_escape(node))?;
        writeln!(
            w,
            "    label=\"{}\"; style=\"rounded\"; color=\"#6b7280\"; fontsize=12;",
            dot_escape(node)
        )?;
        let nested = threads.len() > 1;
        let indent = if nested { "      " } else { "    " };
        for &t in threads {
            let info = &p.threads[t];
            if nested {
                writeln!(w, "    subgraph \"cluster_{}_t{t}\" {{", dot_escape(node))?;
                let lab = if info.incarnation > 1 {
                    format!("tid {} #{}", info.tid, info.incarnation)
                } else {
                    format!("tid {}", info.tid)
                };
                writeln!(
                    w,
                    "      label=\"{}\"; style=\"dashed\"; color=\"#d1d5db\"; fontsize=9;",
                    dot_escape(&lab)
                )?;
            }
            for e in &p.shown[t] {
                let seq = e.seq;
                // A send that began a decoded message shows it under its label.
                let mut text = dot_escape(&label(&p.peers, e));
                if let Some(m) = p.labels.get(&seq) {
                    text.push_str("\\n");
                    text.push_str(&dot_escape(&cut(m, DOT_CHARS)));
                }
                match &e.fault {
                    // Faulted events stand out: red, thick border, the fault under the label.
                    Some(f) => writeln!(
                        w,
                        "{indent}e{seq} [label=\"{text}\\n⚡ {}\", fillcolor=\"#fca5a5\", color=\"#dc2626\", penwidth=2];",
                        dot_escape(&f.to_string())
                    )?,
                    None => writeln!(
                        w,
                        "{indent}e{seq} [label=\"{text}\", fillcolor=\"{}\"];",
                        fill(e)
                    )?,
                }
            }
            if nested {
                writeln!(w, "    }}")?;
            }
        }
        writeln!(w, "  }}")?;
    }
    let shown_by_thread: Vec<Vec<u64>> = p
        .shown
        .iter()
        .map(|list| list.iter().map(|e| e.seq).collect())
        .collect();
    // Program order among shown events.
    for list in &shown_by_thread {
        for s in list.windows(2) {
            writeln!(
                w,
                "  e{} -> e{} [color=\"#b0b0b0\", penwidth=0.5, arrowsize=0.5];",
                s[0], s[1]
            )?;
        }
    }
    // An edge whose end is not drawn moves to the nearest drawn event of the same thread:
    // the previous one for a source, the next one for a target (happens-before still holds).
    let node_of: HashMap<u64, &str> = p
        .shown
        .iter()
        .flatten()
        .map(|e| (e.seq, e.node.as_str()))
        .collect();
    let redirect = |seq: u64, t: ThreadId, forward: bool| -> Option<u64> {
        if node_of.contains_key(&seq) {
            return Some(seq);
        }
        let list = shown_by_thread.get(t)?;
        let k = list.partition_point(|&s| s < seq);
        if forward {
            list.get(k).copied()
        } else {
            k.checked_sub(1).map(|k| list[k])
        }
    };
    let mut said = EdgeLabels::new(p.labels);
    for e in &p.edges {
        let (Some(from), Some(to)) = (
            redirect(e.from, e.from_thread, false),
            redirect(e.to, e.to_thread, true),
        ) else {
            continue;
        };
        if from == to {
            continue;
        }
        let cross_node = node_of.get(&from) != node_of.get(&to);
        // A message edge says what its send said, when it was decoded: `SET k3 v7 (23 B)`.
        let message = |bytes: u64, said: &mut EdgeLabels| match said.message(e.from) {
            Some(m) => dot_escape(&format!("{} ({})", cut(m, DOT_CHARS), fmt_bytes(bytes))),
            None => dot_escape(&fmt_bytes(bytes)),
        };
        let attrs = match e.kind {
            EdgeKind::Message { bytes } if cross_node => format!(
                "style=bold, penwidth=2, color=\"#1d4ed8\", fontcolor=\"#1d4ed8\", label=\"{}\"",
                message(bytes, &mut said)
            ),
            EdgeKind::Message { bytes } => format!(
                "color=\"#1d4ed8\", fontcolor=\"#1d4ed8\", label=\"{}\"",
                message(bytes, &mut said)
            ),
            EdgeKind::Connect => {
                let bold = if cross_node { ", penwidth=1.5" } else { "" };
                format!("style=dashed, color=\"#b91c1c\"{bold}")
            }
            EdgeKind::Fork => "style=dotted, color=\"#4b5563\"".to_string(),
            EdgeKind::Program => unreachable!(),
        };
        writeln!(w, "  e{from} -> e{to} [{attrs}];")?;
    }
    writeln!(w, "}}")
}

/// The node-level communication picture (regardless of size).
pub fn write_node_dot<W: Write>(g: &HbGraph, w: W) -> io::Result<()> {
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for i in 0..g.len() {
        *counts.entry(g.ev(i).node()).or_default() += 1;
    }
    draw_nodes(
        w,
        g.header(),
        &g.node_names(),
        &counts,
        g.traffic(),
        &node_ops(g),
    )
}

/// The operations sent per directed node pair: each labelled send counted once, on the first
/// message edge out of it, over the message edges trace.json draws as flow arrows, in edge
/// order (the order the streamed outputs count them in, while writing those arrows).
fn node_ops(g: &HbGraph) -> HashMap<(String, String), OpCounts> {
    if g.labels().is_empty() {
        return HashMap::new();
    }
    let mut said = EdgeLabels::new(g.labels());
    let mut ops: HashMap<(&str, &str), OpCounts> = HashMap::new();
    for edge in g.edges() {
        if !matches!(edge.kind, EdgeKind::Message { .. }) {
            continue;
        }
        let (Some(ia), Some(ib)) = (g.index_of(edge.from), g.index_of(edge.to)) else {
            continue;
        };
        let (a, b) = (g.ev(ia), g.ev(ib));
        if is_instant(a.class()) || is_instant(b.class()) {
            continue;
        }
        if let Some(m) = said.message(edge.from) {
            ops.entry((a.node(), b.node())).or_default().add(m);
        }
    }
    ops.into_iter()
        .map(|((a, b), c)| ((a.to_string(), b.to_string()), c))
        .collect()
}

/// The node-level picture from the node names, each node's event count, the traffic and the
/// operations sent per node pair.
pub(crate) fn draw_nodes<W: Write>(
    mut w: W,
    header: &Header,
    names: &[String],
    counts: &HashMap<&str, usize>,
    traffic: &BTreeMap<(String, String), Traffic>,
    ops: &HashMap<(String, String), OpCounts>,
) -> io::Result<()> {
    let w = &mut w;
    preamble(w, header, "LR", "communication")?;
    let mut ids: HashMap<&str, usize> = HashMap::new();
    let roles: HashMap<&str, &str> = header
        .nodes
        .iter()
        .map(|n| (n.name.as_str(), n.role.as_str()))
        .collect();
    for name in names {
        let id = ids.len();
        let mut label = dot_escape(name);
        if let Some(role) = roles.get(name.as_str()) {
            label.push_str("\\n");
            label.push_str(&dot_escape(role));
        }
        if let Some(n) = counts.get(name.as_str()) {
            label.push_str(&format!("\\n{n} events"));
        }
        let style = if name == EXTERNAL {
            ", style=\"rounded,dashed\""
        } else {
            ""
        };
        writeln!(w, "  n{id} [label=\"{label}\"{style}];")?;
        ids.insert(name, id);
    }
    let max_bytes = traffic.values().map(|t| t.bytes).max().unwrap_or(0).max(1);
    for ((from, to), t) in traffic {
        if t.messages == 0 && t.connections == 0 && t.unmatched_bytes == 0 {
            continue;
        }
        let (Some(a), Some(b)) = (ids.get(from.as_str()), ids.get(to.as_str())) else {
            continue;
        };
        let plural =
            |n: u64, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
        let mut label = format!(
            "{}, {}",
            plural(t.messages, "msg", "msgs"),
            plural(t.bytes, "byte", "bytes")
        );
        if let Some(top) = ops.get(&(from.clone(), to.clone())).and_then(OpCounts::top) {
            label.push_str("\\n");
            label.push_str(&dot_escape(&top));
        }
        if t.connections > 0 {
            label.push_str("\\n");
            label.push_str(&plural(t.connections, "connection", "connections"));
        }
        if t.unmatched_bytes > 0 {
            label.push_str("\\n");
            label.push_str(&plural(t.unmatched_bytes, "byte", "bytes"));
            label.push_str(" unmatched");
        }
        let width = 1.0 + 3.0 * (t.bytes as f64 / max_bytes as f64);
        let style = if t.messages == 0 {
            ", style=dashed"
        } else {
            ""
        };
        writeln!(
            w,
            "  n{a} -> n{b} [label=\"{label}\", penwidth={width:.2}{style}];"
        )?;
    }
    writeln!(w, "}}")
}
