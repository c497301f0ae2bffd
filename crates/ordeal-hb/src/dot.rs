//! `graph.dot`: the happens-before graph for Graphviz.

use crate::graph::compact::EvRef;
use crate::graph::{EdgeKind, HbGraph, EXTERNAL};
use crate::summary::fmt_bytes;
use ordeal_events::{Class, Event, FileOp, SocketOp, Step};
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

fn preamble(w: &mut impl Write, g: &HbGraph, rankdir: &str, what: &str) -> io::Result<()> {
    writeln!(w, "digraph ordeal {{")?;
    writeln!(
        w,
        "  graph [rankdir={rankdir}, fontname=\"Helvetica\", fontsize=12, labelloc=t, label=\"{}\", newrank=true];",
        dot_escape(&format!("{} — {what}", g.header().experiment))
    )?;
    writeln!(
        w,
        "  node [shape=box, style=\"rounded,filled\", fillcolor=white, fontname=\"Helvetica\", fontsize=10];"
    )?;
    writeln!(w, "  edge [fontname=\"Helvetica\", fontsize=9];")
}

/// The event-level picture (regardless of size).
pub fn write_event_dot<W: Write>(g: &HbGraph, mut w: W) -> io::Result<()> {
    let w = &mut w;
    preamble(w, g, "TB", "happens-before")?;
    // Shown events per thread, in program order; and each thread's shown seqs for redirecting
    // edges whose ends are hidden.
    let mut shown_by_thread: Vec<Vec<u64>> = vec![Vec::new(); g.threads().len()];
    for (t, list) in shown_by_thread.iter_mut().enumerate() {
        list.extend(
            g.thread_indices(t)
                .iter()
                .map(|&i| g.ev(i as usize))
                .filter(|&e| drawn_ev(e))
                .map(|e| e.seq()),
        );
    }
    // The whole events of the shown ones, for their labels.
    let wanted: HashSet<usize> = shown_by_thread
        .iter()
        .flatten()
        .filter_map(|&seq| g.index_of(seq))
        .collect();
    let mut shown: HashMap<usize, Event> = HashMap::new();
    g.for_each_event(|i, e| {
        if wanted.contains(&i) {
            shown.insert(i, e.clone());
        }
        Ok(())
    })?;
    let mut threads_by_node: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (t, info) in g.threads().iter().enumerate() {
        if !shown_by_thread[t].is_empty() {
            threads_by_node
                .entry(info.node.as_str())
                .or_default()
                .push(t);
        }
    }
    for node in &g.node_names() {
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
            let info = &g.threads()[t];
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
            for &seq in &shown_by_thread[t] {
                let e = g
                    .index_of(seq)
                    .and_then(|i| shown.get(&i))
                    .expect("shown event exists");
                match &e.fault {
                    // Faulted events stand out: red, thick border, the fault under the label.
                    Some(f) => writeln!(
                        w,
                        "{indent}e{seq} [label=\"{}\\n⚡ {}\", fillcolor=\"#fca5a5\", color=\"#dc2626\", penwidth=2];",
                        dot_escape(&event_label(g, e)),
                        dot_escape(&f.to_string())
                    )?,
                    None => writeln!(
                        w,
                        "{indent}e{seq} [label=\"{}\", fillcolor=\"{}\"];",
                        dot_escape(&event_label(g, e)),
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
    // Program order among shown events.
    for list in &shown_by_thread {
        for p in list.windows(2) {
            writeln!(
                w,
                "  e{} -> e{} [color=\"#b0b0b0\", penwidth=0.5, arrowsize=0.5];",
                p[0], p[1]
            )?;
        }
    }
    // An edge whose end is not drawn moves to the nearest drawn event of the same thread:
    // the previous one for a source, the next one for a target (happens-before still holds).
    let drawn_seqs: HashSet<u64> = shown_by_thread.iter().flatten().copied().collect();
    let redirect = |seq: u64, forward: bool| -> Option<u64> {
        if drawn_seqs.contains(&seq) {
            return Some(seq);
        }
        let t = g.thread_of(seq)?;
        let list = &shown_by_thread[t];
        let k = list.partition_point(|&s| s < seq);
        if forward {
            list.get(k).copied()
        } else {
            k.checked_sub(1).map(|k| list[k])
        }
    };
    for e in g.edges().filter(|e| e.kind != EdgeKind::Program) {
        let (Some(from), Some(to)) = (redirect(e.from, false), redirect(e.to, true)) else {
            continue;
        };
        if from == to {
            continue;
        }
        let node = |seq| g.index_of(seq).map(|i| g.ev(i).node_id());
        let cross_node = node(from) != node(to);
        let attrs = match e.kind {
            EdgeKind::Message { bytes } if cross_node => format!(
                "style=bold, penwidth=2, color=\"#1d4ed8\", fontcolor=\"#1d4ed8\", label=\"{}\"",
                dot_escape(&fmt_bytes(bytes))
            ),
            EdgeKind::Message { bytes } => format!(
                "color=\"#1d4ed8\", fontcolor=\"#1d4ed8\", label=\"{}\"",
                dot_escape(&fmt_bytes(bytes))
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
pub fn write_node_dot<W: Write>(g: &HbGraph, mut w: W) -> io::Result<()> {
    let w = &mut w;
    preamble(w, g, "LR", "communication")?;
    let mut ids: HashMap<String, usize> = HashMap::new();
    let roles: HashMap<&str, &str> = g
        .header()
        .nodes
        .iter()
        .map(|n| (n.name.as_str(), n.role.as_str()))
        .collect();
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for i in 0..g.len() {
        *counts.entry(g.ev(i).node()).or_default() += 1;
    }
    for name in g.node_names() {
        let id = ids.len();
        let mut label = dot_escape(&name);
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
    let max_bytes = g
        .traffic()
        .values()
        .map(|t| t.bytes)
        .max()
        .unwrap_or(0)
        .max(1);
    for ((from, to), t) in g.traffic() {
        if t.messages == 0 && t.connections == 0 && t.unmatched_bytes == 0 {
            continue;
        }
        let (Some(a), Some(b)) = (ids.get(from), ids.get(to)) else {
            continue;
        };
        let plural =
            |n: u64, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
        let mut label = format!(
            "{}, {}",
            plural(t.messages, "msg", "msgs"),
            plural(t.bytes, "byte", "bytes")
        );
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
