//! `trace.json`: Chrome trace-event format, for <https://ui.perfetto.dev> and `chrome://tracing`.

use crate::graph::{EdgeKind, HbGraph, Peers, ThreadInfo};
use crate::labels::{cut, EdgeLabels, CHROME_CHARS};
use ordeal_events::{Class, Event, Header};
use serde_json::{json, Value};
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

/// Where a flow arrow leaves its (drawn) slice: just inside its start, as a call sends from
/// its entry on. Strictly inside: drawn slices last at least [`MIN_SLICE_NS`].
pub(crate) fn flow_from_ts(ts: u64, _dur: u64) -> u64 {
    ts + 1
}

/// Where a flow arrow arrives in its (drawn) slice: just inside its end, the call's
/// completion, as a receive has its bytes when it returns (a blocking receive may start long
/// before they are sent). So every arrow points forward in time.
pub(crate) fn flow_to_ts(ts: u64, dur: u64) -> u64 {
    ts + dur.max(MIN_SLICE_NS) - 1
}

pub(crate) fn is_instant(class: Option<Class>) -> bool {
    class == Some(Class::Proc)
}

/// JSON written by hand, byte for byte what serde_json writes for the same `json!` object
/// (keys in sorted order, serde_json's number and string forms): trace.json has an entry per
/// event, and building a map per entry took most of its time.
struct Obj<'a> {
    w: &'a mut Vec<u8>,
    first: bool,
}

impl<'a> Obj<'a> {
    fn new(w: &'a mut Vec<u8>) -> Obj<'a> {
        w.push(b'{');
        Obj { w, first: true }
    }
    /// Starts the next field; keys must come in sorted order.
    fn key(&mut self, k: &str) -> &mut Vec<u8> {
        if !self.first {
            self.w.push(b',');
        }
        self.first = false;
        self.w.push(b'"');
        self.w.extend_from_slice(k.as_bytes());
        self.w.extend_from_slice(b"\":");
        self.w
    }
    fn str(&mut self, k: &str, v: &str) {
        push_str(self.key(k), v);
    }
    fn u64(&mut self, k: &str, v: u64) {
        push_i128(self.key(k), v.into());
    }
    fn i64(&mut self, k: &str, v: i64) {
        push_i128(self.key(k), v.into());
    }
    fn us(&mut self, k: &str, ns: u64) {
        let w = self.key(k);
        serde_json::to_writer(w, &us(ns)).expect("a number serializes");
    }
    fn end(self) {
        self.w.push(b'}');
    }
}

fn push_str(w: &mut Vec<u8>, s: &str) {
    serde_json::to_writer(w, s).expect("a string serializes");
}

/// Appends `v` in decimal (also the hb.jsonl writer's).
pub(crate) fn push_i128(w: &mut Vec<u8>, v: i128) {
    if v < 0 {
        w.push(b'-');
    }
    let mut v = v.unsigned_abs();
    let mut digits = [0u8; 40];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    w.extend_from_slice(&digits[at..]);
}

/// An event's `args`: what it did, in key order; `message`: what its bytes said.
fn args(w: &mut Vec<u8>, g: &Peers, e: &Event, message: Option<&str>) {
    let mut a = Obj::new(w);
    if let Some(x) = &e.addr {
        a.str("addr", x);
    }
    if let Some(v) = &e.argv {
        let w = a.key("argv");
        w.push(b'[');
        for (k, s) in v.iter().enumerate() {
            if k > 0 {
                w.push(b',');
            }
            push_str(w, s);
        }
        w.push(b']');
    }
    if e.moves_bytes() {
        a.u64("bytes", e.moved());
    }
    if let Some(c) = e.child {
        a.i64("child", c.into());
    }
    if let Some(c) = e.code {
        a.i64("code", c.into());
    }
    if let Some(d) = &e.data {
        a.str("data", d);
    }
    if let Some(x) = &e.errno {
        a.str("errno", x);
    }
    if let Some(f) = &e.fault {
        a.str("fault", &f.to_string());
    }
    if let Some(fd) = e.fd {
        a.i64("fd", fd.into());
    }
    if let Some(x) = &e.flags {
        a.str("flags", x);
    }
    let sock = e.sock.as_ref();
    if let Some(l) = sock.and_then(|s| s.local.as_deref()) {
        a.str("local", l);
    }
    if let Some(m) = message {
        a.str("message", m);
    }
    if let Some(off) = e.off {
        a.u64("off", off);
    }
    if let Some(x) = &e.path {
        a.str("path", x);
    }
    if let Some(x) = &e.path2 {
        a.str("path2", x);
    }
    if let Some(p) = sock.and_then(|s| g.peer_node(s.ino)) {
        a.str("peer", p);
    }
    if let Some(r) = sock.and_then(|s| s.remote.as_deref()) {
        a.str("remote", r);
    }
    if let Some(r) = e.ret {
        a.i64("ret", r);
    }
    a.u64("seq", e.seq);
    if let Some(x) = &e.signal {
        a.str("signal", x);
    }
    a.end();
}

/// Writes trace.json entry by entry: the head and metadata, the events in `seq` order, then
/// the flow arrows.
pub(crate) struct ChromeWriter<W: Write> {
    w: W,
    first: bool,
    /// The entry being written.
    buf: Vec<u8>,
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
            buf: Vec::new(),
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

    fn emit_raw(&mut self, entry: &[u8]) -> io::Result<()> {
        if !self.first {
            self.w.write_all(b",")?;
        }
        self.first = false;
        self.w.write_all(b"\n")?;
        self.w.write_all(entry)
    }

    /// One event: a slice drawn `dur` ns long, or an instant for a lifecycle step. Injected
    /// faults are named after the fault and drawn in the viewer's alarm colour. A send that
    /// began a decoded message (`message`) is named after it too: `write: SET k3 v7`.
    pub(crate) fn event(
        &mut self,
        e: &Event,
        dur: u64,
        peers: &Peers,
        message: Option<&str>,
    ) -> io::Result<()> {
        let cat = match e.class {
            Some(Class::Net) => "net",
            Some(Class::Data) => "data",
            Some(Class::File) => "file",
            Some(Class::Proc) => "proc",
            None => "other",
        };
        let pid = self.pid(&e.node);
        let instant = is_instant(e.class);
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        let mut o = Obj::new(&mut buf);
        args(o.key("args"), peers, e, message);
        o.str("cat", cat);
        if e.fault.is_some() {
            o.str("cname", "terrible");
        }
        if !instant {
            o.us("dur", dur);
        }
        match (message, &e.fault) {
            (None, None) => o.str("name", &e.call),
            (None, Some(f)) => o.str("name", &format!("{} ⚡ {f}", e.call)),
            (Some(m), fault) => {
                let mut name = format!("{}: {}", e.call, m);
                name = cut(&name, CHROME_CHARS).into_owned();
                if let Some(f) = fault {
                    name.push_str(&format!(" ⚡ {f}"));
                }
                o.str("name", &name)
            }
        }
        o.str("ph", if instant { "i" } else { "X" });
        o.u64("pid", pid as u64);
        if instant {
            o.str("s", "t");
        }
        o.i64("tid", e.tid.into());
        o.us("ts", e.ts);
        o.end();
        let done = self.emit_raw(&buf);
        self.buf = buf;
        done
    }

    /// A flow arrow `id` named after a message or connect edge, between two slices; a message
    /// that was decoded (`message`) is named after what it said: `SET k3 v7 (23 B)`.
    pub(crate) fn flow(
        &mut self,
        id: u64,
        kind: EdgeKind,
        from: FlowEnd,
        to: FlowEnd,
        message: Option<&str>,
    ) -> io::Result<()> {
        let name = match (kind, message) {
            (EdgeKind::Message { bytes }, Some(m)) => {
                format!("{} ({bytes} B)", cut(m, CHROME_CHARS))
            }
            (EdgeKind::Message { bytes }, None) => format!("message {bytes} B"),
            _ => "connect".to_string(),
        };
        let mut buf = std::mem::take(&mut self.buf);
        for (end, start) in [(from, true), (to, false)] {
            buf.clear();
            let mut o = Obj::new(&mut buf);
            if !start {
                o.str("bp", "e");
            }
            o.str("cat", "msg");
            o.u64("id", id);
            o.str("name", &name);
            o.str("ph", if start { "s" } else { "f" });
            o.u64("pid", self.pid(end.node) as u64);
            o.i64("tid", end.tid.into());
            o.us("ts", end.ts);
            o.end();
            self.emit_raw(&buf)?;
        }
        self.buf = buf;
        Ok(())
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
    let labels = g.labels();
    g.for_each_event(|i, e| {
        let message = labels.get(&e.seq).map(String::as_str);
        c.event(e, durs.get(g, i), &peers, message)
    })?;
    let mut said = EdgeLabels::new(labels);
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
        let message = match edge.kind {
            EdgeKind::Message { .. } => said.message(edge.from),
            _ => None,
        };
        c.flow(
            id,
            edge.kind,
            FlowEnd {
                ts: flow_from_ts(a.ts(), durs.get(g, ia)),
                node: a.node(),
                tid: a.tid(),
            },
            FlowEnd {
                ts: flow_to_ts(b.ts(), durs.get(g, ib)),
                node: b.node(),
                tid: b.tid(),
            },
            message,
        )?;
    }
    c.finish()?;
    Ok(())
}

/// Whether an edge is drawn as a flow arrow: messages and connects.
pub(crate) fn is_flow(kind: EdgeKind) -> bool {
    matches!(kind, EdgeKind::Message { .. } | EdgeKind::Connect)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::addr::AddrMap;
    use ordeal_events::{FaultMark, Proto, Sock};
    use serde_json::Map;

    /// trace.json's entries as they were built before they were written by hand: a `json!`
    /// map per entry, serialized by serde_json. The reference the hand-written bytes must equal.
    fn reference(g: &Peers, e: &Event, dur: u64, pid: usize, message: Option<&str>) -> Vec<u8> {
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
        if let Some(m) = message {
            a.insert("message".into(), json!(m));
        }
        let args = Value::Object(a);
        let cat = match e.class {
            Some(Class::Net) => "net",
            Some(Class::Data) => "data",
            Some(Class::File) => "file",
            Some(Class::Proc) => "proc",
            None => "other",
        };
        let mut v = if is_instant(e.class) {
            json!({"name":e.call,"cat":cat,"ph":"i","s":"t","ts":us(e.ts),
                   "pid":pid,"tid":e.tid,"args":args})
        } else {
            json!({"name":e.call,"cat":cat,"ph":"X","ts":us(e.ts),"dur":us(dur),
                   "pid":pid,"tid":e.tid,"args":args})
        };
        if let (Some(f), Some(o)) = (&e.fault, v.as_object_mut()) {
            o.insert("name".into(), json!(format!("{} ⚡ {f}", e.call)));
            o.insert("cname".into(), json!("terrible"));
        }
        if let (Some(m), Some(o)) = (message, v.as_object_mut()) {
            let mut name = cut(&format!("{}: {m}", e.call), CHROME_CHARS).into_owned();
            if let Some(f) = &e.fault {
                name.push_str(&format!(" ⚡ {f}"));
            }
            o.insert("name".into(), json!(name));
        }
        serde_json::to_vec(&v).unwrap()
    }

    fn flow_reference(id: u64, name: &str, start: bool, ts: u64, pid: usize, tid: i32) -> Vec<u8> {
        let v = if start {
            json!({"name":name,"cat":"msg","ph":"s","id":id,"ts":us(ts),"pid":pid,"tid":tid})
        } else {
            json!({"name":name,"cat":"msg","ph":"f","bp":"e","id":id,"ts":us(ts),"pid":pid,"tid":tid})
        };
        serde_json::to_vec(&v).unwrap()
    }

    fn entries(out: Vec<u8>) -> Vec<Vec<u8>> {
        let text = String::from_utf8(out).unwrap();
        let body = text.split_once("\"traceEvents\":[").unwrap().1;
        body.trim_end_matches("\n]}\n")
            .split(",\n")
            .map(|e| e.trim_start_matches('\n').as_bytes().to_vec())
            .collect()
    }

    #[test]
    fn hand_written_entries_are_what_serde_json_wrote() {
        let full = Event {
            seq: u64::MAX,
            ts: 1_234_567_891_011,
            dur: 7,
            node: "n\"ode\\\n".into(),
            pid: -1,
            tid: i32::MIN,
            call: "sendto".into(),
            class: Some(Class::Data),
            ret: Some(i64::MIN),
            errno: Some("EAGAIN".into()),
            fd: Some(-3),
            sock: Some(Sock {
                ino: 9,
                proto: Proto::Udp,
                local: Some("[::1]:5".into()),
                remote: Some("é\u{1}\t".into()),
                peer_ino: None,
                peer_node: None,
            }),
            addr: Some("10.0.0.1:53".into()),
            len: Some(5),
            off: Some(u64::MAX),
            data: Some("a\\x00\"b".into()),
            path: Some("/p ⚡".into()),
            path2: Some("/q".into()),
            flags: Some("O_WRONLY|O_CREAT".into()),
            pos: Some(3),
            data_at: Some(4),
            child: Some(i32::MAX),
            argv: Some(vec!["a b".into(), "\"".into(), String::new()]),
            code: Some(-2),
            signal: Some("SIGKILL".into()),
            fault: Some(FaultMark::effect("f-1", "fail EIO")),
        };
        let write = Event {
            call: "write".into(),
            ret: Some(12),
            fault: None,
            ..full.clone()
        };
        let instant = Event {
            call: "exit".into(),
            class: Some(Class::Proc),
            ts: 999,
            ..Default::default()
        };
        let bare = Event {
            call: "getpid".into(),
            class: None,
            ts: 1,
            ..Default::default()
        };
        let file = Event {
            call: "write".into(),
            class: Some(Class::File),
            ret: Some(4),
            path: Some("/data/x".into()),
            ..Default::default()
        };
        let peer_of_ino = [(9, "p\"eer".to_string())].into_iter().collect();
        let addr_map = AddrMap::default();
        let peers = Peers {
            peer_of_ino: &peer_of_ino,
            addr_map: &addr_map,
        };
        let events = [full, write, instant, bare, file];
        let durs = [0, 1, 2, 1_000_001, u64::MAX / 3];
        let names = vec!["x".to_string(), "n\"ode\\\n".to_string()];
        let header = Header {
            schema: "ordeal-trace".into(),
            version: ordeal_events::SCHEMA_VERSION,
            experiment: "x".into(),
            started_at: String::new(),
            nodes: Vec::new(),
        };
        let mut c = ChromeWriter::start(Vec::new(), &header, &names, &[]).unwrap();
        let mut want = Vec::new();
        let long = "SET k".to_string() + &"x".repeat(70) + " \"v\"\n";
        for message in [None, Some("SET k3 v7"), Some(long.as_str())] {
            for e in &events {
                for d in durs {
                    c.event(e, d, &peers, message).unwrap();
                    let pid = names.iter().position(|n| *n == e.node).map_or(0, |p| p + 1);
                    want.push(reference(&peers, e, d, pid, message));
                }
            }
        }
        let ends = [("x", 5_500, -7), ("y", 0, 3)];
        for (id, kind, message, name) in [
            (1, EdgeKind::Connect, None, "connect"),
            (2, EdgeKind::Message { bytes: 42 }, None, "message 42 B"),
            (3, EdgeKind::Message { bytes: 9 }, Some("+OK"), "+OK (9 B)"),
        ] {
            let end = |k: usize| FlowEnd {
                node: ends[k].0,
                ts: ends[k].1,
                tid: ends[k].2,
            };
            c.flow(id, kind, end(0), end(1), message).unwrap();
            want.push(flow_reference(id, name, true, 5_500, 1, -7));
            want.push(flow_reference(id, name, false, 0, 0, 3));
        }
        let got = entries(c.finish().unwrap());
        // The head's two metadata entries per node come first.
        let got = &got[2 * names.len()..];
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(&want) {
            assert_eq!(String::from_utf8_lossy(g), String::from_utf8_lossy(w));
        }
        // A labelled write (events[1]): named after its message, which its args carry.
        let labelled = String::from_utf8_lossy(&got[durs.len() * (events.len() + 1)]);
        assert!(
            labelled.contains(r#""message":"SET k3 v7""#)
                && labelled.contains(r#""name":"write: SET k3 v7""#),
            "{labelled}"
        );
        let cut_long = String::from_utf8_lossy(&got[durs.len() * (2 * events.len() + 1)]);
        let name = format!("write: SET k{}…", "x".repeat(59 - "write: SET k".len()));
        assert!(
            cut_long.contains(&format!(r#""name":"{name}""#)),
            "{cut_long}"
        );
    }
}
