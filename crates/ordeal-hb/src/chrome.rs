//! `trace.json`: Chrome trace-event format, for <https://ui.perfetto.dev> and `chrome://tracing`.

use crate::graph::{EdgeKind, HbGraph, Peers, ThreadInfo};
use ordeal_events::{Class, Event, Header};
use serde_json::{json, Map, Value};
use std::collections::{HashMap, HashSet};
use std::io::{self, Write};

/// Shortest slice drawn, in ns: flow arrows are bound to the slice that encloses their
/// timestamp, so every slice needs an interior point.
pub(crate) const MIN_SLICE_NS: u64 = 2;

fn us(ns: u64) -> f64 {
    ns as f64 / 1000.0
}

/// Drawn duration of every event (by index): at least [`MIN_SLICE_NS`], and cut short where
/// the thread's next event starts, so slices of one thread never overlap (Perfetto drops
/// improperly nested slices). Only the cut ones are stored: a syscall normally ends before
/// the thread's next one starts.
struct SliceDurs {
    /// `(index, drawn duration)` of the cut slices, by index.
    cuts: Vec<(u32, u64)>,
}

impl SliceDurs {
    fn new(g: &HbGraph) -> SliceDurs {
        let drawn = |i: usize| g.ev(i).dur().max(MIN_SLICE_NS);
        let mut cuts: HashMap<u32, u64> = HashMap::new();
        for t in 0..g.threads().len() {
            let mut next: Option<u64> = None;
            for &k in g.thread_indices(t).iter().rev() {
                let e = g.ev(k as usize);
                // With duplicate seqs, events sharing one share the slice `index_of` finds.
                if let (Some(n), Some(i)) = (next, g.index_of(e.seq())) {
                    let d = cuts.get(&(i as u32)).copied().unwrap_or_else(|| drawn(i));
                    if n < e.ts() + d && n >= e.ts() + MIN_SLICE_NS {
                        cuts.insert(i as u32, n - e.ts());
                    }
                }
                if !is_instant(e.class()) {
                    next = Some(e.ts());
                }
            }
        }
        let mut cuts: Vec<(u32, u64)> = cuts.into_iter().collect();
        cuts.sort_unstable();
        SliceDurs { cuts }
    }

    fn get(&self, g: &HbGraph, i: usize) -> u64 {
        match self.cuts.binary_search_by_key(&(i as u32), |c| c.0) {
            Ok(k) => self.cuts[k].1,
            Err(_) => g.ev(i).dur().max(MIN_SLICE_NS),
        }
    }
}

/// A point strictly inside a slice, where flow arrows attach.
pub(crate) fn flow_ts(ts: u64, dur: u64) -> u64 {
    ts + dur / 2
}

pub(crate) fn is_instant(class: Option<Class>) -> bool {
    class == Some(Class::Proc)
}

fn args(g: &Peers, e: &Event) -> Value {
    let mut a = Map::new();
    a.insert("seq".into(), json!(e.seq));
    if let Some(fd) = e.fd {
        a.insert("fd".into(), json!(fd));
    }
    if e.moves_bytes() {
        a.insert("bytes".into(), json!(e.moved()));
    }
    if let Some(off) = e.off {
        a.insert("off".into(), json!(off));
    }
    if let Some(x) = &e.addr {
        a.insert("addr".into(), json!(x));
    }
    if let Some(s) = &e.sock {
        if let Some(l) = &s.local {
            a.insert("local".into(), json!(l));
        }
        if let Some(r) = &s.remote {
            a.insert("remote".into(), json!(r));
        }
        if let Some(p) = g.peer_node(s.ino) {
            a.insert("peer".into(), json!(p));
        }
    }
    if let Some(r) = e.ret {
        a.insert("ret".into(), json!(r));
    }
    if let Some(x) = &e.errno {
        a.insert("errno".into(), json!(x));
    }
    for (k, v) in [("path", &e.path), ("path2", &e.path2), ("flags", &e.flags)] {
        if let Some(v) = v {
            a.insert(k.into(), json!(v));
        }
    }
    if let Some(c) = e.child {
        a.insert("child".into(), json!(c));
    }
    if let Some(v) = &e.argv {
        a.insert("argv".into(), json!(v));
    }
    if let Some(c) = e.code {
        a.insert("code".into(), json!(c));
    }
    if let Some(s) = &e.signal {
        a.insert("signal".into(), json!(s));
    }
    if let Some(d) = &e.data {
        a.insert("data".into(), json!(d));
    }
    if let Some(f) = &e.fault {
        a.insert("fault".into(), json!(f.to_string()));
    }
    Value::Object(a)
}

/// Writes trace.json entry by entry: the head and metadata, the events in `seq` order, then
/// the flow arrows.
pub(crate) struct ChromeWriter<W: Write> {
    w: W,
    first: bool,
    /// Node name → its Chrome pid (index in the node names + 1).
    pid_of: HashMap<String, usize>,
}

impl<W: Write> ChromeWriter<W> {
    /// Writes the head: the experiment, a process per node, a thread name per traced tid.
    pub(crate) fn start(
        w: W,
        header: &Header,
        names: &[String],
        threads: &[ThreadInfo],
    ) -> io::Result<ChromeWriter<W>> {
        let mut c = ChromeWriter {
            w,
            first: true,
            pid_of: names
                .iter()
                .enumerate()
                .map(|(i, n)| (n.clone(), i + 1))
                .collect(),
        };
        write!(
            c.w,
            "{{\"displayTimeUnit\":\"ns\",\"otherData\":{},\"traceEvents\":[",
            json!({"experiment": header.experiment, "generator": "ordeal"})
        )?;
        for (i, n) in names.iter().enumerate() {
            c.emit(&json!({"name":"process_name","ph":"M","pid":i + 1,"tid":0,"args":{"name":n}}))?;
            c.emit(
                &json!({"name":"process_sort_index","ph":"M","pid":i + 1,"tid":0,"args":{"sort_index":i}}),
            )?;
        }
        let mut named: HashSet<(usize, i32)> = HashSet::new();
        for t in threads {
            let p = c.pid(&t.node);
            if named.insert((p, t.tid)) {
                c.emit(&json!({"name":"thread_name","ph":"M","pid":p,"tid":t.tid,
                        "args":{"name":format!("tid {}", t.tid)}}))?;
            }
        }
        Ok(c)
    }

    fn pid(&self, node: &str) -> usize {
        self.pid_of.get(node).copied().unwrap_or(0)
    }

    fn emit(&mut self, v: &Value) -> io::Result<()> {
        if !self.first {
            self.w.write_all(b",")?;
        }
        self.first = false;
        self.w.write_all(b"\n")?;
        serde_json::to_writer(&mut self.w, v)?;
        Ok(())
    }

    /// One event: a slice drawn `dur` ns long, or an instant for a lifecycle step.
    pub(crate) fn event(&mut self, e: &Event, dur: u64, peers: &Peers) -> io::Result<()> {
        let cat = match e.class {
            Some(Class::Net) => "net",
            Some(Class::Data) => "data",
            Some(Class::File) => "file",
            Some(Class::Proc) => "proc",
            None => "other",
        };
        let pid = self.pid(&e.node);
        let mut v = if is_instant(e.class) {
            json!({"name":e.call,"cat":cat,"ph":"i","s":"t","ts":us(e.ts),
                   "pid":pid,"tid":e.tid,"args":args(peers, e)})
        } else {
            json!({"name":e.call,"cat":cat,"ph":"X","ts":us(e.ts),"dur":us(dur),
                   "pid":pid,"tid":e.tid,"args":args(peers, e)})
        };
        if let (Some(f), Some(o)) = (&e.fault, v.as_object_mut()) {
            // Injected faults: named after the fault and drawn in the viewer's alarm colour.
            o.insert("name".into(), json!(format!("{} ⚡ {f}", e.call)));
            o.insert("cname".into(), json!("terrible"));
        }
        self.emit(&v)
    }

    /// A flow arrow `id` named after a message or connect edge, between two slices.
    pub(crate) fn flow(&mut self, id: u64, kind: EdgeKind, from: FlowEnd, to: FlowEnd) -> io::Result<()> {
        let name = match kind {
            EdgeKind::Message { bytes } => format!("message {bytes} B"),
            _ => "connect".to_string(),
        };
        let (pa, pb) = (self.pid(from.node), self.pid(to.node));
        self.emit(&json!({"name":name,"cat":"msg","ph":"s","id":id,"ts":us(from.ts),
                    "pid":pa,"tid":from.tid}))?;
        self.emit(&json!({"name":name,"cat":"msg","ph":"f","bp":"e","id":id,"ts":us(to.ts),
                    "pid":pb,"tid":to.tid}))
    }

    pub(crate) fn finish(mut self) -> io::Result<W> {
        self.w.write_all(b"\n]}\n")?;
        Ok(self.w)
    }
}

/// One end of a flow arrow: a point inside its slice, its node and tid.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FlowEnd<'a> {
    pub(crate) ts: u64,
    pub(crate) node: &'a str,
    pub(crate) tid: i32,
}

/// Writes `trace.json`: one process per node (pid = node index + 1), one thread per traced tid,
/// a complete slice per system call, an instant per lifecycle step, and a flow arrow (category
/// `msg`) for every message and connect edge.
pub fn write_chrome_trace<W: Write>(g: &HbGraph, w: W) -> io::Result<()> {
    let mut c = ChromeWriter::start(w, g.header(), &g.node_names(), g.threads())?;
    let durs = SliceDurs::new(g);
    let peers = g.peers();
    g.for_each_event(|i, e| c.event(e, durs.get(g, i), &peers))?;
    let mut id = 0u64;
    for edge in g.edges() {
        if !is_flow(edge.kind) {
            continue;
        }
        let (Some(ia), Some(ib)) = (g.index_of(edge.from), g.index_of(edge.to)) else {
            continue;
        };
        let (a, b) = (g.ev(ia), g.ev(ib));
        if is_instant(a.class()) || is_instant(b.class()) {
            continue;
        }
        id += 1;
        c.flow(
            id,
            edge.kind,
            FlowEnd {
                ts: flow_ts(a.ts(), durs.get(g, ia)),
                node: a.node(),
                tid: a.tid(),
            },
            FlowEnd {
                ts: flow_ts(b.ts(), durs.get(g, ib)),
                node: b.node(),
                tid: b.tid(),
            },
        )?;
    }
    c.finish()?;
    Ok(())
}

/// Whether an edge is drawn as a flow arrow: messages and connects.
pub(crate) fn is_flow(kind: EdgeKind) -> bool {
    matches!(kind, EdgeKind::Message { .. } | EdgeKind::Connect)
}
