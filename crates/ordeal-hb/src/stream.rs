//! Every output of a run built from its `trace.jsonl` in memory that does not grow with the
//! number of events: three passes over the file.
//!
//! 1. [`scan`](mod@scan): threads, sockets, addresses, failed connects, counts, and what the second pass
//!    must know ahead (byte ranges per socket, forks recorded late, late datagrams, cut slices).
//! 2. [`link`](mod@link): pairs the streams found by the scan, then finds every edge as its later end
//!    comes, with the traffic, the vector clocks and `hb.jsonl` ([`clocks`]: a window of events
//!    waiting for an edge), trace.json's flow arrows ([`flows`]: sorted on disk) and, for a
//!    small trace, the event-level picture.
//! 3. trace.json's events, then its flow arrows in edge order.
//!
//! What stays in memory: per thread (its description, clock and lifecycle events), per socket
//! (what it did, its byte ranges, its connection), per node; the messages in flight (a send's
//! clock until its bytes are received); the events waiting for an edge recorded after them
//! (normally a few), with up to 16 MiB of the `hb.jsonl` lines they hold back ([`lines`]: the
//! rest wait on disk); up to 9 MiB of flow arrows before a sorted run goes to disk. The
//! event-level picture, drawn only up to `max_dot_events` communication events, holds its
//! drawn events. What the messages said ([`RunFacts::labels`]) is held as given; the
//! node-level picture counts its operations per node pair while trace.json's flow arrows are
//! written, in edge order, so trace.json is written before graph.dot.
//!
//! The outputs are byte for byte those of [`HbGraph`] and [`crate::write_outputs`]. A trace
//! they cannot come from this way is built in memory by them instead ([`TraceOutputs::in_memory`]
//! says why): events out of `seq` order or sharing one, two sends (or receives) of one paired
//! stream socket claiming the same bytes, or edges forming a cycle.

use crate::chrome::{ChromeWriter, FlowEnd, MIN_SLICE_NS};
use crate::dot::{draw_events, draw_nodes, DotLevel, EventPicture};
use crate::graph::{node_names, EdgeCounts, EdgeKind, Peers, Streams, Traffic};
use crate::labels::{EdgeLabels, OpCounts};
use crate::output::{render_svg, Outputs};
use crate::summary::{write_summary_json, Parts, RunFacts, Summary, Verdict};
use crate::HbGraph;
use ordeal_events::{Event, TraceReader};
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

mod bytes;
mod clocks;
mod dgrams;
mod flows;
mod lines;
mod link;
mod scan;

use dgrams::Dgrams;
use flows::Flows;
use lines::Ordered;
use link::{Linked, Linker};
use scan::{Scan, Scanner};

/// Where an edge goes in the graph's edge order ([`HbGraph::edges`]): forks in the order they
/// were found, then per stream socket (by inode) its messages by stream offset and the connect
/// of the pair it is the lower inode of, then datagrams by receive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct EdgeKey {
    pub(crate) group: u8,
    pub(crate) a: u64,
    pub(crate) sub: u8,
    pub(crate) b: u64,
}

/// What the second pass keeps of an event at the end of an edge.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Info {
    pub(crate) idx: u32,
    pub(crate) seq: u64,
    pub(crate) thread: u32,
    pub(crate) node: u32,
    pub(crate) tid: i32,
    /// Where a flow arrow leaves its trace.json slice (this event sent) and where one
    /// arrives (this event received).
    pub(crate) flow_from: u64,
    pub(crate) flow_to: u64,
    pub(crate) instant: bool,
}

/// Node names, interned.
#[derive(Debug, Default)]
pub(crate) struct Names {
    ids: HashMap<String, u32>,
    names: Vec<String>,
}

impl Names {
    pub(crate) fn id(&mut self, name: &str) -> u32 {
        if let Some(&id) = self.ids.get(name) {
            return id;
        }
        let id = self.names.len() as u32;
        self.names.push(name.to_string());
        self.ids.insert(name.to_string(), id);
        id
    }
    pub(crate) fn name(&self, id: u32) -> &str {
        &self.names[id as usize]
    }
}

/// What [`write_trace_outputs`] did.
#[derive(Debug, Clone)]
pub struct TraceOutputs {
    pub summary: Summary,
    pub outputs: Outputs,
    /// Why the trace was read whole into memory instead of streamed (see the module
    /// documentation), or `None`.
    pub in_memory: Option<String>,
    /// Most events held at once while streaming, waiting for an edge recorded after them (1
    /// when every edge's source comes before its target in the trace; 0 when built in memory).
    pub window: usize,
}

fn events(trace: &Path) -> io::Result<impl Iterator<Item = io::Result<Event>>> {
    let reader = TraceReader::open(trace).map_err(io::Error::other)?;
    Ok(reader.map(|e| e.map_err(io::Error::other)))
}

fn changed(trace: &Path) -> io::Error {
    io::Error::other(format!("{}: changed while it was read", trace.display()))
}

fn create(path: &Path) -> io::Result<BufWriter<File>> {
    File::create(path)
        .map(BufWriter::new)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))
}

/// Pass 1, and the streams paired; `Err` with the reason when the trace cannot be streamed.
fn scan(trace: &Path) -> io::Result<Result<(Scan, Streams), &'static str>> {
    let reader = TraceReader::open(trace).map_err(io::Error::other)?;
    let mut scanner = Scanner::new(reader.header.clone());
    for e in reader {
        if !scanner.observe(&e.map_err(io::Error::other)?) {
            break;
        }
    }
    let scan = scanner.finish();
    if let Some(why) = scan.unordered {
        return Ok(Err(why));
    }
    let streams = Streams::new(&scan.endpoints, &scan.addr_map);
    let overlapping = scan.sides.iter().any(|(ino, s)| {
        s.overlapping
            && streams.partner.contains_key(ino)
            && scan.endpoints.get(ino).is_some_and(|ep| ep.is_stream())
    });
    if overlapping {
        return Ok(Err(
            "two transfers of one stream socket claim the same bytes",
        ));
    }
    Ok(Ok((scan, streams)))
}

/// Pass 2. `None` when the edges form a cycle.
fn link<W: Write>(
    trace: &Path,
    (scan, dgrams): (&Scan, Dgrams),
    streams: &Streams,
    hb: Option<Ordered<W>>,
    flows: Option<Flows>,
    picture: bool,
) -> io::Result<Option<Linked<W>>> {
    let mut linker = Linker::new(scan, streams, dgrams, hb, flows, picture);
    let mut n = 0;
    for e in events(trace)? {
        if n == scan.events {
            return Err(changed(trace));
        }
        linker.take(&e?)?;
        n += 1;
    }
    if n != scan.events {
        return Err(changed(trace));
    }
    linker.finish()
}

/// The traffic of a run: what the pairing counted and what the matching found, by node name.
fn traffic(streams: &Streams, linked: &Linked<impl Write>) -> BTreeMap<(String, String), Traffic> {
    let mut all = streams.traffic.clone();
    for (&(a, b), t) in &linked.traffic {
        let mine = all
            .entry((
                linked.names.name(a).to_string(),
                linked.names.name(b).to_string(),
            ))
            .or_default();
        mine.messages += t.messages;
        mine.bytes += t.bytes;
        mine.unmatched_bytes += t.unmatched_bytes;
        mine.connections += t.connections;
    }
    all
}

fn summary(
    scan: &Scan,
    streams: &Streams,
    traffic: &BTreeMap<(String, String), Traffic>,
    messages: u64,
    verdict: Verdict,
) -> Summary {
    let program = scan
        .threads
        .iter()
        .map(|t| t.events.saturating_sub(1) as u64)
        .sum();
    Summary::from_parts(
        Parts {
            header: &scan.header,
            names: node_names(&scan.header, &scan.threads, traffic),
            threads: &scan.threads,
            lifecycle: scan.lifecycle.iter().map(|l| l.iter().collect()).collect(),
            tally: &scan.tally,
            connections: streams.connections.clone(),
            failed_connects: scan.failed_connects.clone(),
            traffic,
            edges: EdgeCounts {
                program,
                fork: scan.forks,
                connect: streams.connects.values().filter(|(c, a)| c != a).count() as u64,
                message: messages,
            },
            warnings: Vec::new(),
        },
        verdict,
    )
}

/// `summary.json`'s content for a trace file, streamed like [`write_trace_outputs`].
pub fn summarize_trace(trace: &Path, verdict: Verdict) -> io::Result<Summary> {
    let (mut scan, streams) = match scan(trace)? {
        Ok(s) => s,
        Err(_) => return in_memory_summary(trace, verdict),
    };
    let dgrams = Dgrams::new(std::mem::take(&mut scan.dgrams));
    let Some(linked) = link::<io::Sink>(trace, (&scan, dgrams), &streams, None, None, false)?
    else {
        return in_memory_summary(trace, verdict);
    };
    let traffic = traffic(&streams, &linked);
    Ok(summary(&scan, &streams, &traffic, linked.messages, verdict))
}

fn in_memory_summary(trace: &Path, verdict: Verdict) -> io::Result<Summary> {
    let g = HbGraph::from_trace(trace).map_err(io::Error::other)?;
    Ok(Summary::build(&g, verdict))
}

/// Writes every output of the trace file `trace` into `dir` (which must exist), as
/// [`crate::write_outputs`] writes them for the graph of that file, in memory bounded by the
/// number of threads, sockets, nodes and messages in flight rather than by the number of
/// events: `graph.dot` (+ `graph.svg` when Graphviz is installed), `trace.json`,
/// `summary.json` (with what the run knows beyond the trace: `facts`) and `hb.jsonl`. `max_dot_events` is the
/// event-level picture limit ([`crate::DEFAULT_DOT_LIMIT`] is a good default). Sorted runs of
/// trace.json's flow arrows go to an unnamed temporary file in `dir` while it is written.
pub fn write_trace_outputs(
    trace: &Path,
    dir: &Path,
    facts: RunFacts,
    max_dot_events: usize,
) -> io::Result<TraceOutputs> {
    write_streamed(trace, dir, facts, max_dot_events, lines::BUDGET)
}

/// [`write_trace_outputs`] with `budget` bytes of `hb.jsonl` lines held in memory at most
/// while events wait.
fn write_streamed(
    trace: &Path,
    dir: &Path,
    mut facts: RunFacts,
    max_dot_events: usize,
    budget: usize,
) -> io::Result<TraceOutputs> {
    let (mut scan, streams) = match scan(trace)? {
        Ok(s) => s,
        Err(why) => return in_memory(trace, dir, facts, max_dot_events, why),
    };
    let dot_level = if scan.communication > max_dot_events {
        DotLevel::Nodes
    } else {
        DotLevel::Events
    };
    let hb_path = dir.join("hb.jsonl");
    let hb = Ordered::new(create(&hb_path)?, dir.to_owned(), budget);
    let flows = Flows::new(dir);
    let picture = dot_level == DotLevel::Events;
    let dgrams = Dgrams::new(std::mem::take(&mut scan.dgrams));
    let Some(mut linked) = link(
        trace,
        (&scan, dgrams),
        &streams,
        Some(hb),
        Some(flows),
        picture,
    )?
    else {
        return in_memory(trace, dir, facts, max_dot_events, "its edges form a cycle");
    };
    if let Some(mut hb) = linked.hb.take() {
        hb.flush()?;
    }
    let traffic = traffic(&streams, &linked);
    let names = node_names(&scan.header, &scan.threads, &traffic);
    let peers = Peers {
        peer_of_ino: &streams.peer_of_ino,
        addr_map: &scan.addr_map,
    };
    let labels = std::mem::take(&mut facts.labels);

    // trace.json first: the node-level picture counts operations as its arrows are written.
    let json = dir.join("trace.json");
    let mut c = ChromeWriter::start(create(&json)?, &scan.header, &names, &scan.threads)?;
    let mut n = 0u32;
    for e in events(trace)? {
        let e = e?;
        if n as usize == scan.events {
            return Err(changed(trace));
        }
        let dur = match scan.cuts.get(&n) {
            Some(&d) => d,
            None => e.dur.max(MIN_SLICE_NS),
        };
        c.event(&e, dur, &peers, labels.get(&e.seq).map(String::as_str))?;
        n += 1;
    }
    if n as usize != scan.events {
        return Err(changed(trace));
    }
    let mut id = 0u64;
    let mut said = EdgeLabels::new(&labels);
    let mut ops: HashMap<(u32, u32), OpCounts> = HashMap::new();
    if let Some(flows) = linked.flows.take() {
        let node = |k: u32| linked.names.name(k);
        flows.sorted(|f| {
            id += 1;
            let (kind, message) = match f.bytes {
                Some(bytes) => (EdgeKind::Message { bytes }, said.message(f.from_seq)),
                None => (EdgeKind::Connect, None),
            };
            if let Some(m) = message {
                ops.entry((f.from.node, f.to.node)).or_default().add(m);
            }
            let end = |x: flows::End| FlowEnd {
                ts: x.ts,
                node: node(x.node),
                tid: x.tid,
            };
            c.flow(id, kind, end(f.from), end(f.to), message)
        })?;
    }
    c.finish()?.flush()?;

    let mut files = Vec::new();
    let dot = dir.join("graph.dot");
    let mut w = create(&dot)?;
    match linked.picture.take() {
        Some(mut p) => {
            p.edges.sort_by_key(|e| e.0);
            draw_events(
                &mut w,
                EventPicture {
                    header: &scan.header,
                    names: &names,
                    threads: &scan.threads,
                    shown: p.shown.iter().map(|l| l.iter().collect()).collect(),
                    edges: p.edges.iter().map(|e| e.1).collect(),
                    peers,
                    labels: &labels,
                },
            )?;
        }
        None => {
            let counts: HashMap<&str, usize> = scan
                .node_events
                .iter()
                .map(|(n, &c)| (n.as_str(), c))
                .collect();
            let ops = ops
                .into_iter()
                .map(|((a, b), c)| {
                    let name = |k: u32| linked.names.name(k).to_string();
                    ((name(a), name(b)), c)
                })
                .collect();
            draw_nodes(&mut w, &scan.header, &names, &counts, &traffic, &ops)?;
        }
    }
    w.flush()?;
    drop(w);
    files.push(dot.clone());
    let svg_path = dir.join("graph.svg");
    let svg = render_svg(&dot, &svg_path)?;
    if svg {
        files.push(svg_path);
    }
    files.push(json);

    let mut s = summary(&scan, &streams, &traffic, linked.messages, Verdict::pass());
    facts.apply(&mut s);
    let p = dir.join("summary.json");
    let mut w = create(&p)?;
    write_summary_json(&s, &mut w)?;
    w.flush()?;
    files.push(p);
    files.push(hb_path);
    Ok(TraceOutputs {
        summary: s,
        outputs: Outputs {
            files,
            dot_level,
            svg,
        },
        in_memory: None,
        window: linked.window,
    })
}

fn in_memory(
    trace: &Path,
    dir: &Path,
    mut facts: RunFacts,
    max_dot_events: usize,
    why: &str,
) -> io::Result<TraceOutputs> {
    let mut g = HbGraph::from_trace(trace).map_err(io::Error::other)?;
    g.set_labels(std::mem::take(&mut facts.labels));
    let mut summary = Summary::build(&g, Verdict::pass());
    facts.apply(&mut summary);
    let outputs = crate::write_outputs(dir, &g, &summary, max_dot_events)?;
    Ok(TraceOutputs {
        summary,
        outputs,
        in_memory: Some(why.to_string()),
        window: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ordeal_events::{Class, Header, NodeInfo, Proto, Sock, TraceWriter, SCHEMA_VERSION};

    fn data(seq: u64, pid: i32, call: &str, ino: u64, off: u64, n: i64) -> Event {
        Event {
            seq,
            ts: 1000 * (seq + 1),
            dur: 10,
            node: if pid == 1 { "a" } else { "b" }.into(),
            pid,
            tid: pid,
            call: call.into(),
            class: Some(Class::Data),
            ret: Some(n),
            off: Some(off),
            sock: Some(Sock {
                ino,
                proto: Proto::Unix,
                local: None,
                remote: None,
                peer_ino: Some(ino ^ 1),
                peer_node: None,
            }),
            ..Default::default()
        }
    }

    /// A write recorded long after the read of its bytes (a write blocked while its reader
    /// drained it): with a 1 KiB budget, the lines of the 2,000 unrelated events in between
    /// wait on disk, and hb.jsonl is still the graph's.
    #[test]
    fn lines_held_back_by_a_late_write_wait_on_disk_and_come_out_the_same() {
        let mut events = vec![data(0, 2, "read", 11, 0, 5)];
        for k in 0..1000u64 {
            let seq = events.len() as u64;
            events.push(data(seq, 3, "write", 20, k, 1));
            events.push(data(seq + 1, 4, "read", 21, k, 1));
        }
        let seq = events.len() as u64;
        events.push(data(seq, 1, "write", 10, 0, 5));
        events.push(data(seq + 1, 2, "write", 11, 0, 2));
        events.push(data(seq + 2, 1, "read", 10, 0, 2));
        let header = Header {
            schema: "ordeal-trace".into(),
            version: SCHEMA_VERSION,
            experiment: "late".into(),
            started_at: String::new(),
            nodes: vec![NodeInfo {
                name: "a".into(),
                role: "node".into(),
                ports: vec![],
                protocol: None,
            }],
        };
        let dir = tempfile::tempdir().unwrap();
        let trace = dir.path().join("trace.jsonl");
        let mut w = TraceWriter::new(Vec::new(), &header).unwrap();
        for e in &events {
            w.write(e).unwrap();
        }
        std::fs::write(&trace, w.into_inner()).unwrap();
        let got = write_streamed(
            &trace,
            dir.path(),
            RunFacts::verdict(Verdict::pass()),
            0,
            1024,
        )
        .unwrap();
        assert_eq!(got.in_memory, None);
        // Open at once: the read, and the write it waits for.
        assert_eq!(got.window, 2);
        let g = HbGraph::build(&header, &events);
        let mut want = Vec::new();
        crate::write_hb_jsonl(&g, &mut want).unwrap();
        let hb = std::fs::read(dir.path().join("hb.jsonl")).unwrap();
        assert_eq!(
            String::from_utf8(hb).unwrap(),
            String::from_utf8(want).unwrap()
        );
    }
}
