//! The happens-before graph: threads, edges and vector clocks, rebuilt from events alone.
//!
//! This file holds the model (the public value types and [`HbGraph`]) and the build pipeline,
//! [`HbGraph::from_owned`]. Each pass lives in a submodule: `threads` (program order, fork
//! edges), `endpoints` (address owners, what each socket did), `connections` (pairing stream
//! ends, connect edges, failed connects), `messages` (byte-range matching on streams),
//! `datagrams` (UDP matching), `edges` (the edge index and edge queries) and `clocks` (vector
//! clocks and happens-before queries).
//!
//! Invariant: events are sorted by `seq` and named internally by their index (`u32`); every
//! cross-thread edge joins two distinct events, and a built graph never changes.

use crate::addr::AddrMap;
use changes::Changes;
use compact::EventTable;
use ordeal_events::{Event, Header, Proto, TraceReader};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::io;
use std::path::{Path, PathBuf};

mod changes;
mod clocks;
pub(crate) mod compact;
mod connections;
mod datagrams;
mod edges;
mod endpoints;
mod messages;
mod threads;
mod view;

pub(crate) use connections::{FailedConnects, Streams};
pub(crate) use endpoints::{AddrMapBuilder, Endpoint, Transfer};
pub(crate) use threads::ThreadTracker;
pub(crate) use view::View;

/// Index of a thread incarnation in [`HbGraph::threads`]; also its vector-clock component.
pub type ThreadId = usize;

/// Name used for a peer that ordeal did not trace and whose address belongs to no node.
pub const EXTERNAL: &str = "external";

/// Why one event happened before another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum EdgeKind {
    /// Consecutive events of one thread incarnation.
    Program,
    /// fork/vfork/clone on the parent → first event of the new thread or process.
    Fork,
    /// connect on the client → the accept that returned the same connection on the server.
    Connect,
    /// A send → a receive that consumed `bytes` of the bytes it sent.
    Message { bytes: u64 },
}

impl EdgeKind {
    /// Lower-case name: `program`, `fork`, `connect`, `message`.
    pub fn name(&self) -> &'static str {
        match self {
            EdgeKind::Program => "program",
            EdgeKind::Fork => "fork",
            EdgeKind::Connect => "connect",
            EdgeKind::Message { .. } => "message",
        }
    }
}

/// A direct happens-before edge between two events, named by `seq`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct Edge {
    pub from: u64,
    pub to: u64,
    #[serde(flatten)]
    pub kind: EdgeKind,
}

/// One thread incarnation: a tid from the event that created it up to its exit. A tid reused
/// by the kernel after an exit is a new incarnation, hence a new clock component.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ThreadInfo {
    /// Node of the thread's first event.
    pub node: String,
    pub pid: i32,
    pub tid: i32,
    /// 1 for the first thread seen with this tid, 2 after the tid was reused, ...
    pub incarnation: u32,
    /// The fork/vfork/clone event on the parent that created this thread, when traced.
    pub parent: Option<u64>,
    /// Whether ordeal started this process itself (its first event is a `spawn`).
    pub spawned: bool,
    /// Whether an `exit` event was seen for it.
    pub exited: bool,
    /// Number of events of this thread.
    pub events: usize,
}

impl ThreadInfo {
    /// `node/tid`, with `#n` appended from the second incarnation of a tid on.
    pub fn label(&self) -> String {
        if self.incarnation > 1 {
            format!("{}/{}#{}", self.node, self.tid, self.incarnation)
        } else {
            format!("{}/{}", self.node, self.tid)
        }
    }
}

/// A vector clock: `(component, value)` pairs sorted by component, zeros left out.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VectorClock(pub Vec<(ThreadId, u64)>);

impl VectorClock {
    /// Value of component `t` (0 when absent).
    pub fn get(&self, t: ThreadId) -> u64 {
        match self.0.binary_search_by_key(&t, |&(c, _)| c) {
            Ok(i) => self.0[i].1,
            Err(_) => 0,
        }
    }
    /// Componentwise `self ≤ other`.
    pub fn le(&self, other: &VectorClock) -> bool {
        self.0.iter().all(|&(c, v)| other.get(c) >= v)
    }
}

/// A stream connection (TCP, or Unix when the peer is known) as seen from both ends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Connection {
    pub proto: Proto,
    pub client_node: String,
    pub server_node: String,
    /// Client's local address (`?` when unknown).
    pub client_addr: String,
    /// Address the client connected to (or the server's local address).
    pub server_addr: String,
    /// Socket inode of each end, when that end was traced.
    pub client_ino: Option<u64>,
    pub server_ino: Option<u64>,
    pub connect_seq: Option<u64>,
    pub accept_seq: Option<u64>,
    /// Bytes written by the client (or read by the server when the client is not traced).
    pub bytes_client_to_server: u64,
    /// Bytes written by the server (or read by the client when the server is not traced).
    pub bytes_server_to_client: u64,
    /// Whether both ends were traced and paired.
    pub both_traced: bool,
}

/// A connect that failed outright (ECONNREFUSED, ETIMEDOUT, ...), aggregated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailedConnect {
    pub node: String,
    pub addr: String,
    /// Node owning `addr`, or `external`.
    pub target_node: String,
    pub errno: String,
    pub count: u64,
    /// First failing event.
    pub first_seq: u64,
}

/// Traffic of one directed node pair.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Traffic {
    /// Send events at least one of whose bytes was received by a traced receive.
    pub messages: u64,
    /// Bytes matched to a traced receive.
    pub bytes: u64,
    /// Bytes sent or received without a traced counterpart (peer not traced, or never read).
    pub unmatched_bytes: u64,
    /// Connections opened from the first node to the second.
    pub connections: u64,
}

/// Totals of edges by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EdgeCounts {
    pub program: u64,
    pub fork: u64,
    pub connect: u64,
    pub message: u64,
}

/// The happens-before graph of one trace.
///
/// Program-order edges are implicit (each thread's events in `seq` order); cross-thread edges
/// are stored once and indexed both ways.
///
/// ### Vector clocks and memory
/// Each thread incarnation is a component. A thread's own component at its `k`-th event
/// (from 1) is `k`, so it is not stored. Foreign components only change at events with an
/// incoming cross-thread edge (a receive, an accept, a thread's first event), so each thread
/// keeps, per foreign component, the list of positions where that component grew (as deltas,
/// 1 to 2 bytes an entry). A clock entry is then a binary search and a short decode, and
/// memory is proportional to the number of component increases, not to events × threads: a
/// 1M-event, 100-thread trace whose receives each learn a few new components costs a few MB,
/// where dense vectors would cost 400 MB.
/// [`HbGraph::happens_before`] needs a single component of one clock: `a → b` iff
/// `vc(b)[thread(a)] ≥ vc(a)[thread(a)]`, equivalent to the componentwise comparison.
#[derive(Debug, Clone)]
pub struct HbGraph {
    header: Header,
    /// The whole events, when the graph was built from them ([`HbGraph::from_owned`]).
    events: Vec<Event>,
    /// The trace file the events are read again from, for a graph built by
    /// [`HbGraph::from_trace`] (which keeps no whole events).
    trace: Option<PathBuf>,
    /// What the passes and queries read of every event.
    table: EventTable,
    ev_thread: Vec<u32>,
    threads: Vec<ThreadInfo>,
    thread_events: Vec<Vec<u32>>,
    /// Cross-thread edges (fork, connect, message) in creation order, as event indices.
    cross: Vec<edges::Cross>,
    /// Numbers of the `cross` edges sorted by target, and by source.
    in_list: Vec<u32>,
    out_list: Vec<u32>,
    /// Per thread: foreign component → change list, sorted by component.
    changes: Vec<Vec<(u32, Changes)>>,
    connections: Vec<Connection>,
    failed_connects: Vec<FailedConnect>,
    traffic: BTreeMap<(String, String), Traffic>,
    /// Socket inode → the node at its other end (traced partner, address map, or external).
    peer_of_ino: HashMap<u64, String>,
    addr_map: AddrMap,
    dropped: Vec<Edge>,
    warnings: Vec<String>,
    /// What the messages said, for the pictures ([`HbGraph::set_labels`]).
    labels: HashMap<u64, String>,
}

impl HbGraph {
    /// Builds the graph from a header and its events (copied; see [`HbGraph::from_owned`]).
    pub fn build(header: &Header, events: &[Event]) -> HbGraph {
        Self::from_owned(header.clone(), events.to_vec())
    }

    /// Builds the graph, taking ownership of the events (no copy). Never fails: inconsistencies
    /// in the input (cycles, duplicate seqs) are reported by [`HbGraph::warnings`].
    pub fn from_owned(header: Header, mut events: Vec<Event>) -> HbGraph {
        if !events.windows(2).all(|w| w[0].seq <= w[1].seq) {
            events.sort_by_key(|e| e.seq);
        }
        let mut table = EventTable::default();
        for e in &events {
            table.push(e);
        }
        Self::from_table(header, table, events, None)
    }

    /// Builds the graph from a `trace.jsonl` file, streaming: only the compact form of each
    /// event stays in memory (56 bytes, against 600 and more for an [`Event`]), so
    /// [`HbGraph::events`] is empty and [`HbGraph::event`] answers `None`; the outputs read the
    /// whole events from the file again ([`HbGraph::for_each_event`]). A file whose events are
    /// not in `seq` order is read whole and sorted, as by [`HbGraph::from_owned`].
    pub fn from_trace(path: &Path) -> Result<HbGraph, ordeal_events::Error> {
        let reader = TraceReader::open(path)?;
        let header = reader.header.clone();
        let mut table = EventTable::default();
        for e in reader {
            let e = e?;
            if table.evs.last().is_some_and(|last| last.seq > e.seq) {
                let events = TraceReader::open(path)?.read_all()?;
                return Ok(Self::from_owned(header, events));
            }
            table.push(&e);
        }
        Ok(Self::from_table(
            header,
            table,
            Vec::new(),
            Some(path.to_owned()),
        ))
    }

    fn from_table(
        header: Header,
        mut table: EventTable,
        events: Vec<Event>,
        trace: Option<PathBuf>,
    ) -> HbGraph {
        table.finish();
        let mut warnings = Vec::new();
        if let Some(w) = table.evs.windows(2).find(|w| w[0].seq == w[1].seq) {
            warnings.push(format!(
                "duplicate event seq {}: queries by seq see only one of them",
                w[0].seq
            ));
        }
        assert!(
            table.len() < u32::MAX as usize,
            "ordeal-hb supports fewer than 2^32 events"
        );
        let mut g = HbGraph {
            header,
            events,
            trace,
            table,
            ev_thread: Vec::new(),
            threads: Vec::new(),
            thread_events: Vec::new(),
            cross: Vec::new(),
            in_list: Vec::new(),
            out_list: Vec::new(),
            changes: Vec::new(),
            connections: Vec::new(),
            failed_connects: Vec::new(),
            traffic: BTreeMap::new(),
            peer_of_ino: HashMap::new(),
            addr_map: AddrMap::default(),
            dropped: Vec::new(),
            warnings,
            labels: HashMap::new(),
        };
        g.assign_threads();
        // Each list grew by doubling; the graph keeps them as they are.
        for evs in &mut g.thread_events {
            evs.shrink_to_fit();
        }
        g.build_addr_map();
        g.match_streams();
        g.match_datagrams();
        g.collect_failed_connects();
        g.cross.retain(|c| c.from != c.to);
        g.cross.shrink_to_fit();
        g.index_edges();
        g.compute_clocks();
        g
    }

    /// The trace header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// All events, sorted by `seq`; empty for a graph built by [`HbGraph::from_trace`].
    pub fn events(&self) -> &[Event] {
        &self.events
    }

    /// Number of events.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// Whether the trace has no event.
    pub fn is_empty(&self) -> bool {
        self.table.len() == 0
    }

    /// Calls `f` with every event in `seq` order, with its index: from memory, or read again
    /// from the trace file for a graph built by [`HbGraph::from_trace`].
    pub fn for_each_event(
        &self,
        mut f: impl FnMut(usize, &Event) -> io::Result<()>,
    ) -> io::Result<()> {
        let Some(path) = &self.trace else {
            return self
                .events
                .iter()
                .enumerate()
                .try_for_each(|(i, e)| f(i, e));
        };
        let changed = || io::Error::other(format!("{}: changed while it was read", path.display()));
        let reader = TraceReader::open(path).map_err(io::Error::other)?;
        let mut i = 0;
        for e in reader {
            let e = e.map_err(io::Error::other)?;
            if i >= self.table.len() || self.table.evs[i].seq != e.seq {
                return Err(changed());
            }
            f(i, &e)?;
            i += 1;
        }
        if i != self.table.len() {
            return Err(changed());
        }
        Ok(())
    }

    /// Index of the event with this `seq` (in [`HbGraph::for_each_event`] order).
    pub fn index_of(&self, seq: u64) -> Option<usize> {
        let evs = &self.table.evs;
        // Dense seqs make this O(1) in the common case.
        if let Some(e) = evs.get(seq as usize) {
            if e.seq == seq {
                return Some(seq as usize);
            }
        }
        evs.binary_search_by_key(&seq, |e| e.seq).ok()
    }

    /// The event with this `seq`; `None` for a graph built by [`HbGraph::from_trace`].
    pub fn event(&self, seq: u64) -> Option<&Event> {
        self.index_of(seq).and_then(|i| self.events.get(i))
    }

    /// The whole event at index `i` when it is a spawn, exec or exit (kept for the summary).
    pub(crate) fn kept_event(&self, i: usize) -> Option<&Event> {
        self.table.kept(i)
    }

    /// The compact event at index `i`.
    pub(crate) fn ev(&self, i: usize) -> compact::EvRef<'_> {
        self.table.get(i)
    }

    /// Traffic per directed `(from, to)` node pair. Peers that were not traced and own no
    /// known address appear as [`EXTERNAL`].
    pub fn traffic(&self) -> &BTreeMap<(String, String), Traffic> {
        &self.traffic
    }

    /// Problems found in the input; the graph is still usable.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    pub(crate) fn peers(&self) -> Peers<'_> {
        Peers {
            peer_of_ino: &self.peer_of_ino,
            addr_map: &self.addr_map,
        }
    }

    /// Nodes in display order: header nodes first, then any other node named by an event or
    /// by traffic, in order of first appearance.
    pub fn node_names(&self) -> Vec<String> {
        node_names(&self.header, &self.threads, &self.traffic)
    }

    /// Gives the pictures (graph.dot, trace.json) what the messages said: the `seq` of a send
    /// that sent the start of a decoded message → its text (`SET k3 v7`, `+OK`), as the call
    /// log (ordeal-calls) finds them. Without labels the pictures show bytes only.
    pub fn set_labels(&mut self, labels: HashMap<u64, String>) {
        self.labels = labels;
    }

    /// The labels given by [`HbGraph::set_labels`].
    pub fn labels(&self) -> &HashMap<u64, String> {
        &self.labels
    }
}

/// What event labels and trace.json name: the node at the other end of a stream socket, the
/// node owning an address.
#[derive(Clone, Copy)]
pub(crate) struct Peers<'a> {
    pub(crate) peer_of_ino: &'a HashMap<u64, String>,
    pub(crate) addr_map: &'a AddrMap,
}

impl<'a> Peers<'a> {
    pub(crate) fn peer_node(&self, ino: u64) -> Option<&'a str> {
        self.peer_of_ino.get(&ino).map(String::as_str)
    }
    pub(crate) fn node_of_addr(&self, addr: &str) -> Option<&'a str> {
        self.addr_map.lookup(addr)
    }
}

/// See [`HbGraph::node_names`].
pub(crate) fn node_names(
    header: &Header,
    threads: &[ThreadInfo],
    traffic: &BTreeMap<(String, String), Traffic>,
) -> Vec<String> {
    let mut names: Vec<String> = header.nodes.iter().map(|n| n.name.clone()).collect();
    let mut seen: std::collections::HashSet<String> = names.iter().cloned().collect();
    for t in threads {
        if seen.insert(t.node.clone()) {
            names.push(t.node.clone());
        }
    }
    for (a, b) in traffic.keys() {
        for n in [a, b] {
            if seen.insert(n.clone()) {
                names.push(n.clone());
            }
        }
    }
    names
}
