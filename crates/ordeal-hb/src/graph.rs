//! The happens-before graph: threads, edges and vector clocks, rebuilt from events alone.

use crate::addr::{addr_compatible, is_unspecified, norm_addr, AddrMap};
use crate::ranges::{match_ranges, Range};
use ordeal_events::{Class, Event, Header, Proto, SocketOp, Step};
use serde::{Deserialize, Serialize};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::rc::Rc;

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

/// Per-thread change list of one foreign clock component: `(position, value)` where the value
/// changed, increasing in both.
type Changes = Vec<(u32, u32)>;

/// The happens-before graph of one trace.
///
/// Program-order edges are implicit (each thread's events in `seq` order); cross-thread edges
/// are stored once and indexed both ways.
///
/// ### Vector clocks and memory
/// Each thread incarnation is a component. A thread's own component at its `k`-th event
/// (from 1) is `k`, so it is not stored. Foreign components only change at events with an
/// incoming cross-thread edge (a receive, an accept, a thread's first event), so each thread
/// keeps, per foreign component, the list of positions where that component grew. A clock
/// entry is then a binary search, and memory is proportional to the number of component
/// increases, not to events × threads: a 1M-event, 100-thread trace whose receives each learn
/// a few new components costs a few MB, where dense vectors would cost 400 MB.
/// [`HbGraph::happens_before`] needs a single component of one clock: `a → b` iff
/// `vc(b)[thread(a)] ≥ vc(a)[thread(a)]`, equivalent to the componentwise comparison.
#[derive(Debug, Clone)]
pub struct HbGraph {
    header: Header,
    events: Vec<Event>,
    ev_thread: Vec<u32>,
    ev_pos: Vec<u32>,
    threads: Vec<ThreadInfo>,
    thread_events: Vec<Vec<u32>>,
    /// Cross-thread edges (fork, connect, message) in creation order, as event indices.
    cross: Vec<(u32, u32, EdgeKind)>,
    in_start: Vec<u32>,
    in_list: Vec<u32>,
    out_start: Vec<u32>,
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
}

/// What one socket inode did over the trace.
#[derive(Debug, Default)]
struct Endpoint {
    proto: Option<Proto>,
    node: String,
    local: Option<String>,
    remote: Option<String>,
    peer_ino: Option<u64>,
    peer_node: Option<String>,
    first: u32,
    connect: Option<u32>,
    accept: Option<u32>,
    sends: Vec<u32>,
    recvs: Vec<u32>,
    listening: bool,
}

impl HbGraph {
    /// Builds the graph from a header and its events (copied; see [`HbGraph::from_owned`]).
    pub fn build(header: &Header, events: &[Event]) -> HbGraph {
        Self::from_owned(header.clone(), events.to_vec())
    }

    /// Builds the graph, taking ownership of the events (no copy). Never fails: inconsistencies
    /// in the input (cycles, duplicate seqs) are reported by [`HbGraph::warnings`].
    pub fn from_owned(header: Header, mut events: Vec<Event>) -> HbGraph {
        let mut warnings = Vec::new();
        if !events.windows(2).all(|w| w[0].seq <= w[1].seq) {
            events.sort_by_key(|e| e.seq);
        }
        if let Some(w) = events.windows(2).find(|w| w[0].seq == w[1].seq) {
            warnings.push(format!(
                "duplicate event seq {}: queries by seq see only one of them",
                w[0].seq
            ));
        }
        assert!(
            events.len() < u32::MAX as usize,
            "ordeal-hb supports fewer than 2^32 events"
        );
        let mut g = HbGraph {
            header,
            events,
            ev_thread: Vec::new(),
            ev_pos: Vec::new(),
            threads: Vec::new(),
            thread_events: Vec::new(),
            cross: Vec::new(),
            in_start: Vec::new(),
            in_list: Vec::new(),
            out_start: Vec::new(),
            out_list: Vec::new(),
            changes: Vec::new(),
            connections: Vec::new(),
            failed_connects: Vec::new(),
            traffic: BTreeMap::new(),
            peer_of_ino: HashMap::new(),
            addr_map: AddrMap::default(),
            dropped: Vec::new(),
            warnings,
        };
        g.assign_threads();
        g.build_addr_map();
        g.match_streams();
        g.match_datagrams();
        g.collect_failed_connects();
        g.cross.retain(|&(f, t, _)| f != t);
        g.index_edges();
        g.compute_clocks();
        g
    }

    // ----- threads -------------------------------------------------------------------------

    fn assign_threads(&mut self) {
        let n = self.events.len();
        self.ev_thread = vec![0; n];
        self.ev_pos = vec![0; n];
        let mut current: HashMap<i32, usize> = HashMap::new();
        let mut pending_fork: HashMap<i32, u32> = HashMap::new();
        let mut incarnations: HashMap<i32, u32> = HashMap::new();
        for i in 0..n {
            let e = &self.events[i];
            let tid = e.tid;
            let fork = pending_fork.remove(&tid);
            let t = match current.get(&tid) {
                Some(&t) if fork.is_none() && e.call != "spawn" && !self.threads[t].exited => t,
                _ => {
                    let inc = incarnations.entry(tid).or_insert(0);
                    *inc += 1;
                    let t = self.threads.len();
                    self.threads.push(ThreadInfo {
                        node: e.node.clone(),
                        pid: e.pid,
                        tid,
                        incarnation: *inc,
                        parent: fork.map(|f| self.events[f as usize].seq),
                        spawned: e.call == "spawn",
                        exited: false,
                        events: 0,
                    });
                    self.thread_events.push(Vec::new());
                    if let Some(f) = fork {
                        self.cross.push((f, i as u32, EdgeKind::Fork));
                    }
                    current.insert(tid, t);
                    t
                }
            };
            self.ev_thread[i] = t as u32;
            self.ev_pos[i] = self.thread_events[t].len() as u32;
            self.thread_events[t].push(i as u32);
            self.threads[t].events += 1;
            let e = &self.events[i];
            if e.call == "exit" {
                self.threads[t].exited = true;
            }
            if e.step().is_some_and(Step::creates_task) && e.ok() {
                if let Some(child) = e.child.filter(|&c| c > 0) {
                    // The child's first event normally comes later. If the current thread with
                    // this tid has no known creator (every traced thread is spawned or forked),
                    // the fork was recorded after the child ran (vfork returns only once the
                    // child has exec'd or exited): attach the edge to its first event instead.
                    match current.get(&child) {
                        Some(&c)
                            if self.threads[c].parent.is_none()
                                && !self.threads[c].spawned
                                && c != t =>
                        {
                            let first = self.thread_events[c][0];
                            self.threads[c].parent = Some(e.seq);
                            self.cross.push((i as u32, first, EdgeKind::Fork));
                        }
                        _ => {
                            pending_fork.insert(child, i as u32);
                        }
                    }
                }
            }
        }
    }

    // ----- addresses -------------------------------------------------------------------------

    fn build_addr_map(&mut self) {
        let mut map = AddrMap::default();
        for n in &self.header.nodes {
            for &p in &n.ports {
                map.add_header_port(p, &n.name);
            }
        }
        for e in &self.events {
            if !e.ok() {
                continue;
            }
            match e.call.as_str() {
                "bind" => {
                    if let Some(a) = &e.addr {
                        map.add_listen(a, &e.node);
                    }
                }
                "listen" => {
                    if let Some(a) = e.sock.as_ref().and_then(|s| s.local.as_ref()) {
                        map.add_listen(a, &e.node);
                    }
                }
                _ => {}
            }
        }
        self.addr_map = map;
    }

    /// Node owning an address: a traced listener or bind, a header port, else `None`.
    pub fn node_of_addr(&self, addr: &str) -> Option<&str> {
        self.addr_map.lookup(addr)
    }

    fn peer_name(&self, ep: &Endpoint) -> String {
        // A refused non-blocking connect leaves no remote address on the socket: fall back on
        // the address the connect asked for.
        let target = ep
            .connect
            .and_then(|c| self.events[c as usize].addr.as_deref());
        ep.remote
            .as_deref()
            .or(target)
            .and_then(|a| self.addr_map.lookup(a))
            .map(str::to_string)
            .or_else(|| ep.peer_node.clone())
            .unwrap_or_else(|| EXTERNAL.to_string())
    }

    // ----- streams ---------------------------------------------------------------------------

    fn collect_endpoints(&self) -> BTreeMap<u64, Endpoint> {
        let mut eps: BTreeMap<u64, Endpoint> = BTreeMap::new();
        for (i, e) in self.events.iter().enumerate() {
            let Some(s) = &e.sock else { continue };
            let ep = eps.entry(s.ino).or_insert_with(|| Endpoint {
                node: e.node.clone(),
                first: i as u32,
                ..Default::default()
            });
            ep.proto.get_or_insert(s.proto);
            // Keep the first concrete address: a socket may show `0.0.0.0:0` before it is
            // bound or connected.
            for (have, seen) in [(&mut ep.local, &s.local), (&mut ep.remote, &s.remote)] {
                if let Some(a) = seen {
                    if have.as_deref().is_none_or(is_unspecified) {
                        *have = Some(norm_addr(a));
                    }
                }
            }
            if ep.peer_ino.is_none() {
                ep.peer_ino = s.peer_ino.filter(|&p| p != s.ino);
            }
            if ep.peer_node.is_none() {
                ep.peer_node = s.peer_node.clone();
            }
            match e.socket_op() {
                Some(SocketOp::Connect) if connect_attempted(e) && ep.connect.is_none() => {
                    ep.connect = Some(i as u32)
                }
                Some(SocketOp::Accept) if e.ok() && ep.accept.is_none() => {
                    ep.accept = Some(i as u32)
                }
                Some(SocketOp::Listen) if e.ok() => ep.listening = true,
                _ => {}
            }
            if e.class == Some(Class::Data) {
                if e.is_send() && e.moved() > 0 {
                    ep.sends.push(i as u32);
                } else if e.is_recv() && e.moved() > 0 {
                    ep.recvs.push(i as u32);
                }
            }
        }
        eps
    }

    fn match_streams(&mut self) {
        let eps = self.collect_endpoints();
        let stream = |ep: &Endpoint| matches!(ep.proto, Some(Proto::Tcp) | Some(Proto::Unix));
        let mut partner: HashMap<u64, u64> = HashMap::new();

        // 1. The kernel told us the other end.
        for (&ino, ep) in &eps {
            if !stream(ep) || partner.contains_key(&ino) {
                continue;
            }
            if let Some(p) = ep.peer_ino {
                if p != ino && eps.contains_key(&p) && !partner.contains_key(&p) {
                    partner.insert(ino, p);
                    partner.insert(p, ino);
                }
            }
        }
        // 2. Mirrored address pairs, in order of appearance per 4-tuple.
        let mut by_tuple: BTreeMap<(&str, &str), Vec<(u32, u64)>> = BTreeMap::new();
        for (&ino, ep) in &eps {
            if !stream(ep) || ep.listening || partner.contains_key(&ino) {
                continue;
            }
            if let (Some(l), Some(r)) = (&ep.local, &ep.remote) {
                if !l.is_empty() && !r.is_empty() && l != r {
                    by_tuple
                        .entry((l.as_str(), r.as_str()))
                        .or_default()
                        .push((ep.first, ino));
                }
            }
        }
        let mut pairs_by_tuple = Vec::new();
        for ((l, r), side) in &by_tuple {
            if l > r {
                continue;
            }
            let Some(other) = by_tuple.get(&(*r, *l)) else {
                continue;
            };
            let (mut a, mut b) = (side.clone(), other.clone());
            a.sort();
            b.sort();
            for (x, y) in a.iter().zip(b.iter()) {
                pairs_by_tuple.push((x.1, y.1));
            }
        }
        for (x, y) in pairs_by_tuple {
            partner.insert(x, y);
            partner.insert(y, x);
        }
        // 3. Unix sockets without a kernel-reported peer: connects to a path and accepts on
        //    that path, paired in order of appearance.
        type Side = Vec<(u32, u64)>;
        let mut unix: BTreeMap<&str, (Side, Side)> = BTreeMap::new();
        for (&ino, ep) in &eps {
            if ep.proto != Some(Proto::Unix) || partner.contains_key(&ino) {
                continue;
            }
            if let (Some(c), Some(path)) = (ep.connect, ep.remote.as_deref()) {
                unix.entry(path).or_default().0.push((c, ino));
            } else if let (Some(a), Some(path)) = (ep.accept, ep.local.as_deref()) {
                unix.entry(path).or_default().1.push((a, ino));
            }
        }
        for (clients, servers) in unix.values() {
            for (c, s) in clients.iter().zip(servers.iter()) {
                partner.insert(c.1, s.1);
                partner.insert(s.1, c.1);
            }
        }

        // Edges, connections and traffic.
        for (&ino, ep) in &eps {
            if !stream(ep) {
                continue;
            }
            match partner
                .get(&ino)
                .and_then(|p| eps.get(p).map(|pe| (*p, pe)))
            {
                Some((pino, pe)) => {
                    self.peer_of_ino.insert(ino, pe.node.clone());
                    self.stream_direction(ep, pe);
                    // Record the connection once per pair, oriented client → server. A pair
                    // with neither a connect nor an accept (socketpair) is not a connection.
                    if ino < pino {
                        if ep.connect.is_some() || pe.accept.is_some() {
                            self.add_paired_connection(ino, ep, pino, pe);
                        } else if pe.connect.is_some() || ep.accept.is_some() {
                            self.add_paired_connection(pino, pe, ino, ep);
                        }
                    }
                }
                None if ep.listening => {}
                None => {
                    let peer = self.peer_name(ep);
                    self.peer_of_ino.insert(ino, peer.clone());
                    self.unpaired_stream(ino, ep, &peer);
                }
            }
        }
        self.connections.sort_by_key(|c| {
            c.connect_seq
                .into_iter()
                .chain(c.accept_seq)
                .min()
                .unwrap_or(u64::MAX)
        });
    }

    /// Matches sends on `a` against receives on `b` (one direction of a paired stream).
    fn stream_direction(&mut self, a: &Endpoint, b: &Endpoint) {
        let sends = ranges(&self.events, &a.sends);
        let recvs = ranges(&self.events, &b.recvs);
        let overlaps = match_ranges(&sends, &recvs);
        let mut matched = vec![0u64; sends.len()];
        let mut last_counted: Option<usize> = None;
        for o in &overlaps {
            let (s, r) = (a.sends[o.send], b.recvs[o.recv]);
            self.cross
                .push((s, r, EdgeKind::Message { bytes: o.bytes }));
            matched[o.send] += o.bytes;
            let key = (
                self.events[s as usize].node.clone(),
                self.events[r as usize].node.clone(),
            );
            let t = self.traffic.entry(key).or_default();
            t.bytes += o.bytes;
            if last_counted != Some(o.send) {
                t.messages += 1;
                last_counted = Some(o.send);
            }
        }
        for (k, &s) in a.sends.iter().enumerate() {
            let left = sends[k].len.saturating_sub(matched[k]);
            if left > 0 {
                let key = (self.events[s as usize].node.clone(), b.node.clone());
                self.traffic.entry(key).or_default().unmatched_bytes += left;
            }
        }
    }

    fn add_paired_connection(&mut self, cino: u64, c: &Endpoint, sino: u64, s: &Endpoint) {
        if let (Some(ci), Some(si)) = (c.connect, s.accept) {
            self.cross.push((ci, si, EdgeKind::Connect));
        }
        let sum = |v: &[u32]| {
            v.iter()
                .map(|&i| self.events[i as usize].moved())
                .sum::<u64>()
        };
        let conn = Connection {
            proto: c.proto.unwrap_or(Proto::Other),
            client_node: c.node.clone(),
            server_node: s.node.clone(),
            client_addr: c.local.clone().unwrap_or_else(|| "?".into()),
            server_addr: c
                .remote
                .clone()
                .or_else(|| s.local.clone())
                .unwrap_or_else(|| "?".into()),
            client_ino: Some(cino),
            server_ino: Some(sino),
            connect_seq: c.connect.map(|i| self.events[i as usize].seq),
            accept_seq: s.accept.map(|i| self.events[i as usize].seq),
            bytes_client_to_server: sum(&c.sends),
            bytes_server_to_client: sum(&s.sends),
            both_traced: true,
        };
        self.traffic
            .entry((conn.client_node.clone(), conn.server_node.clone()))
            .or_default()
            .connections += 1;
        self.connections.push(conn);
    }

    fn unpaired_stream(&mut self, ino: u64, ep: &Endpoint, peer: &str) {
        let sum = |v: &[u32]| {
            v.iter()
                .map(|&i| self.events[i as usize].moved())
                .sum::<u64>()
        };
        let (sent, received) = (sum(&ep.sends), sum(&ep.recvs));
        if sent > 0 {
            self.traffic
                .entry((ep.node.clone(), peer.to_string()))
                .or_default()
                .unmatched_bytes += sent;
        }
        if received > 0 {
            self.traffic
                .entry((peer.to_string(), ep.node.clone()))
                .or_default()
                .unmatched_bytes += received;
        }
        let here = ep.local.clone().unwrap_or_else(|| "?".into());
        let there = ep.remote.clone().unwrap_or_else(|| "?".into());
        let conn = if let Some(c) = ep.connect {
            if ep.local.is_none() && sent == 0 && received == 0 {
                // A non-blocking connect whose socket had no address left by the time the tracer
                // looked: it was refused at once and never carried anything. Not a connection.
                return;
            }
            Connection {
                proto: ep.proto.unwrap_or(Proto::Other),
                client_node: ep.node.clone(),
                server_node: peer.to_string(),
                client_addr: here,
                server_addr: ep
                    .remote
                    .clone()
                    .or_else(|| self.events[c as usize].addr.as_deref().map(norm_addr))
                    .unwrap_or_else(|| "?".into()),
                client_ino: Some(ino),
                server_ino: None,
                connect_seq: Some(self.events[c as usize].seq),
                accept_seq: None,
                bytes_client_to_server: sent,
                bytes_server_to_client: received,
                both_traced: false,
            }
        } else if let Some(a) = ep.accept {
            Connection {
                proto: ep.proto.unwrap_or(Proto::Other),
                client_node: peer.to_string(),
                server_node: ep.node.clone(),
                client_addr: there,
                server_addr: here,
                client_ino: None,
                server_ino: Some(ino),
                connect_seq: None,
                accept_seq: Some(self.events[a as usize].seq),
                bytes_client_to_server: received,
                bytes_server_to_client: sent,
                both_traced: false,
            }
        } else {
            return;
        };
        self.traffic
            .entry((conn.client_node.clone(), conn.server_node.clone()))
            .or_default()
            .connections += 1;
        self.connections.push(conn);
    }

    // ----- datagrams -------------------------------------------------------------------------

    fn match_datagrams(&mut self) {
        struct Dgram {
            idx: u32,
            src: String,
            dst: String,
            size: u64,
        }
        let mut sends: BTreeMap<(u16, u16), Vec<(Dgram, bool)>> = BTreeMap::new();
        let mut unkeyed_sends: Vec<Dgram> = Vec::new();
        let mut recvs: Vec<Dgram> = Vec::new();
        for (i, e) in self.events.iter().enumerate() {
            let Some(s) = &e.sock else { continue };
            if s.proto != Proto::Udp || e.moved() == 0 {
                continue;
            }
            let (src, dst) = if e.is_send() {
                (s.local.clone(), e.addr.clone().or_else(|| s.remote.clone()))
            } else if e.is_recv() {
                (e.addr.clone().or_else(|| s.remote.clone()), s.local.clone())
            } else {
                continue;
            };
            let d = Dgram {
                idx: i as u32,
                src: src.map(|a| norm_addr(&a)).unwrap_or_default(),
                dst: dst.map(|a| norm_addr(&a)).unwrap_or_default(),
                size: e.moved(),
            };
            let key = crate::addr::split_host_port(&d.src)
                .zip(crate::addr::split_host_port(&d.dst))
                .map(|((_, a), (_, b))| (a, b));
            match (e.is_send(), key) {
                (true, Some(k)) => sends.entry(k).or_default().push((d, false)),
                (true, None) => unkeyed_sends.push(d),
                (false, _) => recvs.push(d),
            }
        }
        let mut matched_recv = vec![false; recvs.len()];
        for (ri, r) in recvs.iter().enumerate() {
            let key = crate::addr::split_host_port(&r.src)
                .zip(crate::addr::split_host_port(&r.dst))
                .map(|((_, a), (_, b))| (a, b));
            let re = &self.events[r.idx as usize];
            let r_end = re.ts.saturating_add(re.dur);
            let events = &self.events;
            let fits = |s: &Dgram, used: bool| {
                !used && s.size == r.size && events[s.idx as usize].ts <= r_end
            };
            let hit = match key {
                Some(k) => sends.get_mut(&k).and_then(|list| {
                    list.iter_mut().find(|(s, used)| {
                        fits(s, *used)
                            && addr_compatible(&s.src, &r.src)
                            && addr_compatible(&s.dst, &r.dst)
                    })
                }),
                // recv(2)/recvfrom with no address buffer: the source is unknown, so take the
                // oldest fitting datagram sent to this socket's address, from anyone.
                None => {
                    let Some((_, dport)) = crate::addr::split_host_port(&r.dst) else {
                        continue;
                    };
                    sends
                        .iter_mut()
                        .filter(|((_, d), _)| *d == dport)
                        .flat_map(|(_, list)| list.iter_mut())
                        .filter(|(s, used)| fits(s, *used) && addr_compatible(&s.dst, &r.dst))
                        .min_by_key(|(s, _)| s.idx)
                }
            };
            if let Some((s, used)) = hit {
                *used = true;
                matched_recv[ri] = true;
                self.cross
                    .push((s.idx, r.idx, EdgeKind::Message { bytes: r.size }));
                let key = (self.events[s.idx as usize].node.clone(), re.node.clone());
                let t = self.traffic.entry(key).or_default();
                t.messages += 1;
                t.bytes += r.size;
            }
        }
        let unmatched_sends = sends
            .into_values()
            .flatten()
            .filter(|(_, used)| !used)
            .map(|(d, _)| d)
            .chain(unkeyed_sends);
        let mut extra: Vec<((String, String), u64)> = Vec::new();
        for d in unmatched_sends {
            let peer = self.addr_map.lookup(&d.dst).unwrap_or(EXTERNAL);
            extra.push((
                (self.events[d.idx as usize].node.clone(), peer.to_string()),
                d.size,
            ));
        }
        for (ri, d) in recvs.iter().enumerate() {
            if !matched_recv[ri] {
                let peer = self.addr_map.lookup(&d.src).unwrap_or(EXTERNAL);
                extra.push((
                    (peer.to_string(), self.events[d.idx as usize].node.clone()),
                    d.size,
                ));
            }
        }
        for (k, b) in extra {
            self.traffic.entry(k).or_default().unmatched_bytes += b;
        }
    }

    fn collect_failed_connects(&mut self) {
        let mut agg: BTreeMap<(String, String, String), FailedConnect> = BTreeMap::new();
        for e in &self.events {
            if e.call != "connect" || connect_attempted(e) {
                continue;
            }
            let addr = e
                .addr
                .as_deref()
                .or_else(|| e.sock.as_ref().and_then(|s| s.remote.as_deref()))
                .map(norm_addr)
                .unwrap_or_else(|| "?".into());
            let errno = e
                .errno
                .clone()
                .unwrap_or_else(|| format!("{}", e.ret.unwrap_or(0)));
            let target = self.addr_map.lookup(&addr).unwrap_or(EXTERNAL).to_string();
            agg.entry((e.node.clone(), addr.clone(), errno.clone()))
                .and_modify(|f| f.count += 1)
                .or_insert(FailedConnect {
                    node: e.node.clone(),
                    addr,
                    target_node: target,
                    errno,
                    count: 1,
                    first_seq: e.seq,
                });
        }
        let mut v: Vec<_> = agg.into_values().collect();
        v.sort_by_key(|f| f.first_seq);
        self.failed_connects = v;
    }

    // ----- edge index and clocks ---------------------------------------------------------------

    fn index_edges(&mut self) {
        let n = self.events.len();
        let (in_start, in_list) = csr(n, self.cross.iter().map(|e| e.1));
        let (out_start, out_list) = csr(n, self.cross.iter().map(|e| e.0));
        self.in_start = in_start;
        self.in_list = in_list;
        self.out_start = out_start;
        self.out_list = out_list;
    }

    fn in_edges(&self, i: usize) -> &[u32] {
        &self.in_list[self.in_start[i] as usize..self.in_start[i + 1] as usize]
    }

    fn out_edges(&self, i: usize) -> &[u32] {
        &self.out_list[self.out_start[i] as usize..self.out_start[i + 1] as usize]
    }

    /// Kahn's algorithm (ready events by lowest seq first) computing every thread's clock
    /// changes. A cycle (impossible for a faithful trace) is broken at the lowest-seq event left
    /// by dropping its incoming edges from unprocessed events, with a warning.
    fn compute_clocks(&mut self) {
        let n = self.events.len();
        let mut indeg = vec![0u32; n];
        for evs in &self.thread_events {
            for &i in evs.iter().skip(1) {
                indeg[i as usize] += 1;
            }
        }
        for &(_, t, _) in &self.cross {
            indeg[t as usize] += 1;
        }
        let mut broken = vec![false; self.cross.len()];
        let mut done = vec![false; n];
        let mut heap: BinaryHeap<Reverse<u32>> = (0..n as u32)
            .filter(|&i| indeg[i as usize] == 0)
            .map(Reverse)
            .collect();
        let mut clocks: Vec<Option<Vec<(u32, u32)>>> = vec![None; self.threads.len()];
        // Clock snapshots of processed events whose outgoing cross edges are not consumed yet:
        // event → (edges left, clock).
        type Snapshot = (u32, Rc<Vec<(u32, u32)>>);
        let mut pending: HashMap<u32, Snapshot> = HashMap::new();
        let mut changes: Vec<HashMap<u32, Changes>> = vec![HashMap::new(); self.threads.len()];
        let mut cursor = 0usize;
        let mut processed = 0usize;
        while processed < n {
            let i = match heap.pop() {
                Some(Reverse(i)) => i as usize,
                None => {
                    while done[cursor] {
                        cursor += 1;
                    }
                    let i = cursor;
                    let mut cut = Vec::new();
                    for &ei in self.in_edges(i) {
                        let (f, _, kind) = self.cross[ei as usize];
                        if !done[f as usize] && !broken[ei as usize] {
                            broken[ei as usize] = true;
                            cut.push(Edge {
                                from: self.events[f as usize].seq,
                                to: self.events[i].seq,
                                kind,
                            });
                        }
                    }
                    self.warnings.push(format!(
                        "happens-before cycle: dropped {} edge(s) into event #{} ({})",
                        cut.len(),
                        self.events[i].seq,
                        cut.iter()
                            .map(|e| format!("#{} {}", e.from, e.kind.name()))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                    self.dropped.extend(cut);
                    indeg[i] = 0;
                    i
                }
            };
            if done[i] {
                continue;
            }
            done[i] = true;
            processed += 1;
            let t = self.ev_thread[i] as usize;
            let pos = self.ev_pos[i];
            let mut clock = clocks[t].take().unwrap_or_default();
            for &ei in self.in_edges(i) {
                if broken[ei as usize] {
                    continue;
                }
                let f = self.cross[ei as usize].0;
                let Some((left, snap)) = pending.get_mut(&f) else {
                    continue;
                };
                let snap = if *left <= 1 {
                    pending.remove(&f).map(|p| p.1).unwrap_or_default()
                } else {
                    *left -= 1;
                    snap.clone()
                };
                clock = merge(&clock, &snap, t as u32, pos, &mut changes[t]);
            }
            set_own(&mut clock, t as u32, pos + 1);
            let outs: Vec<u32> = self
                .out_edges(i)
                .iter()
                .copied()
                .filter(|&ei| !broken[ei as usize])
                .collect();
            if !outs.is_empty() {
                pending.insert(i as u32, (outs.len() as u32, Rc::new(clock.clone())));
            }
            for ei in outs {
                let to = self.cross[ei as usize].1 as usize;
                indeg[to] = indeg[to].saturating_sub(1);
                if indeg[to] == 0 && !done[to] {
                    heap.push(Reverse(to as u32));
                }
            }
            let evs = &self.thread_events[t];
            if let Some(&next) = evs.get(pos as usize + 1) {
                let next = next as usize;
                indeg[next] = indeg[next].saturating_sub(1);
                if indeg[next] == 0 && !done[next] {
                    heap.push(Reverse(next as u32));
                }
                clocks[t] = Some(clock);
            }
        }
        if !self.dropped.is_empty() {
            let mut k = 0;
            self.cross.retain(|_| {
                k += 1;
                !broken[k - 1]
            });
            self.index_edges();
        }
        self.changes = changes
            .into_iter()
            .map(|m| {
                let mut v: Vec<(u32, Changes)> = m.into_iter().collect();
                v.sort_by_key(|x| x.0);
                v
            })
            .collect();
    }

    // ----- queries -----------------------------------------------------------------------------

    /// The trace header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// All events, sorted by `seq`.
    pub fn events(&self) -> &[Event] {
        &self.events
    }

    /// Index of the event with this `seq` in [`HbGraph::events`].
    pub fn index_of(&self, seq: u64) -> Option<usize> {
        // Dense seqs make this O(1) in the common case.
        if let Some(e) = self.events.get(seq as usize) {
            if e.seq == seq {
                return Some(seq as usize);
            }
        }
        self.events.binary_search_by_key(&seq, |e| e.seq).ok()
    }

    /// The event with this `seq`.
    pub fn event(&self, seq: u64) -> Option<&Event> {
        self.index_of(seq).map(|i| &self.events[i])
    }

    /// Thread incarnations in order of first appearance; a [`ThreadId`] indexes this slice.
    pub fn threads(&self) -> &[ThreadInfo] {
        &self.threads
    }

    /// The thread incarnation an event belongs to.
    pub fn thread_of(&self, seq: u64) -> Option<ThreadId> {
        self.index_of(seq).map(|i| self.ev_thread[i] as usize)
    }

    /// Events of one thread incarnation in program order.
    pub fn thread_events(&self, t: ThreadId) -> impl Iterator<Item = &Event> + '_ {
        self.thread_events
            .get(t)
            .into_iter()
            .flatten()
            .map(|&i| &self.events[i as usize])
    }

    /// Every edge: program-order edges thread by thread, then fork, connect and message edges
    /// in the order they were found.
    pub fn edges(&self) -> impl Iterator<Item = Edge> + '_ {
        let program = self.thread_events.iter().flat_map(move |evs| {
            evs.windows(2).map(move |w| Edge {
                from: self.events[w[0] as usize].seq,
                to: self.events[w[1] as usize].seq,
                kind: EdgeKind::Program,
            })
        });
        program.chain(self.cross.iter().map(move |&c| self.cross_edge(c)))
    }

    fn cross_edge(&self, (f, t, kind): (u32, u32, EdgeKind)) -> Edge {
        Edge {
            from: self.events[f as usize].seq,
            to: self.events[t as usize].seq,
            kind,
        }
    }

    /// Direct predecessors of an event: its program-order predecessor first, then incoming
    /// cross-thread edges.
    pub fn preds(&self, seq: u64) -> Vec<Edge> {
        let Some(i) = self.index_of(seq) else {
            return Vec::new();
        };
        let mut v = Vec::new();
        let (t, pos) = (self.ev_thread[i] as usize, self.ev_pos[i] as usize);
        if pos > 0 {
            let p = self.thread_events[t][pos - 1] as usize;
            v.push(Edge {
                from: self.events[p].seq,
                to: seq,
                kind: EdgeKind::Program,
            });
        }
        v.extend(
            self.in_edges(i)
                .iter()
                .map(|&ei| self.cross_edge(self.cross[ei as usize])),
        );
        v
    }

    /// Direct successors of an event: its program-order successor first, then outgoing
    /// cross-thread edges.
    pub fn succs(&self, seq: u64) -> Vec<Edge> {
        let Some(i) = self.index_of(seq) else {
            return Vec::new();
        };
        let mut v = Vec::new();
        let (t, pos) = (self.ev_thread[i] as usize, self.ev_pos[i] as usize);
        if let Some(&nx) = self.thread_events[t].get(pos + 1) {
            v.push(Edge {
                from: seq,
                to: self.events[nx as usize].seq,
                kind: EdgeKind::Program,
            });
        }
        v.extend(
            self.out_edges(i)
                .iter()
                .map(|&ei| self.cross_edge(self.cross[ei as usize])),
        );
        v
    }

    /// Number of edges of each kind.
    pub fn edge_counts(&self) -> EdgeCounts {
        let mut c = EdgeCounts {
            program: self
                .thread_events
                .iter()
                .map(|v| v.len().saturating_sub(1) as u64)
                .sum(),
            ..Default::default()
        };
        for &(_, _, k) in &self.cross {
            match k {
                EdgeKind::Program => c.program += 1,
                EdgeKind::Fork => c.fork += 1,
                EdgeKind::Connect => c.connect += 1,
                EdgeKind::Message { .. } => c.message += 1,
            }
        }
        c
    }

    fn component(&self, i: usize, c: ThreadId) -> u64 {
        let (t, pos) = (self.ev_thread[i] as usize, self.ev_pos[i]);
        if t == c {
            return pos as u64 + 1;
        }
        let list = &self.changes[t];
        match list.binary_search_by_key(&(c as u32), |x| x.0) {
            Ok(k) => value_at(&list[k].1, pos),
            Err(_) => 0,
        }
    }

    /// Number of stored vector-clock entries (component increases), a measure of the clock
    /// memory: 8 bytes each.
    pub fn clock_entries(&self) -> usize {
        self.changes
            .iter()
            .flat_map(|t| t.iter().map(|(_, ch)| ch.len()))
            .sum()
    }

    /// The vector clock of an event.
    pub fn vc(&self, seq: u64) -> Option<VectorClock> {
        let i = self.index_of(seq)?;
        let (t, pos) = (self.ev_thread[i] as usize, self.ev_pos[i]);
        let mut v: Vec<(ThreadId, u64)> = self.changes[t]
            .iter()
            .map(|(c, ch)| (*c as usize, value_at(ch, pos)))
            .filter(|&(_, x)| x > 0)
            .collect();
        let own = (t, pos as u64 + 1);
        match v.binary_search_by_key(&t, |x| x.0) {
            Ok(k) => v[k] = own,
            Err(k) => v.insert(k, own),
        }
        Some(VectorClock(v))
    }

    /// The vector clock with components named by [`ThreadInfo::label`].
    pub fn vc_named(&self, seq: u64) -> Option<BTreeMap<String, u64>> {
        Some(
            self.vc(seq)?
                .0
                .into_iter()
                .map(|(t, v)| (self.threads[t].label(), v))
                .collect(),
        )
    }

    /// Whether event `a` happened before event `b` (`vc(a) ≤ vc(b)` and `a ≠ b`).
    /// False when either seq is unknown.
    pub fn happens_before(&self, a: u64, b: u64) -> bool {
        if a == b {
            return false;
        }
        let (Some(ia), Some(ib)) = (self.index_of(a), self.index_of(b)) else {
            return false;
        };
        let ta = self.ev_thread[ia] as usize;
        self.component(ib, ta) > self.ev_pos[ia] as u64
    }

    /// Whether neither event happened before the other (false for unknown seqs and `a == b`).
    pub fn concurrent(&self, a: u64, b: u64) -> bool {
        a != b
            && self.index_of(a).is_some()
            && self.index_of(b).is_some()
            && !self.happens_before(a, b)
            && !self.happens_before(b, a)
    }

    /// Stream connections, by time of their connect/accept.
    pub fn connections(&self) -> &[Connection] {
        &self.connections
    }

    /// Failed connect attempts, aggregated by node, address and errno.
    pub fn failed_connects(&self) -> &[FailedConnect] {
        &self.failed_connects
    }

    /// Traffic per directed `(from, to)` node pair. Peers that were not traced and own no
    /// known address appear as [`EXTERNAL`].
    pub fn traffic(&self) -> &BTreeMap<(String, String), Traffic> {
        &self.traffic
    }

    /// The node at the other end of a socket (by inode), if the socket carried a stream.
    pub fn peer_node(&self, ino: u64) -> Option<&str> {
        self.peer_of_ino.get(&ino).map(String::as_str)
    }

    /// Edges removed to break cycles in inconsistent input (empty for a faithful trace).
    pub fn dropped_edges(&self) -> &[Edge] {
        &self.dropped
    }

    /// Problems found in the input; the graph is still usable.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Nodes in display order: header nodes first, then any other node named by an event or
    /// by traffic, in order of first appearance.
    pub fn node_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.header.nodes.iter().map(|n| n.name.clone()).collect();
        let mut seen: std::collections::HashSet<String> = names.iter().cloned().collect();
        for t in &self.threads {
            if seen.insert(t.node.clone()) {
                names.push(t.node.clone());
            }
        }
        for (a, b) in self.traffic.keys() {
            for n in [a, b] {
                if seen.insert(n.clone()) {
                    names.push(n.clone());
                }
            }
        }
        names
    }
}

/// A connect that started a connection: success, or an asynchronous one still in progress.
fn connect_attempted(e: &Event) -> bool {
    e.ok()
        || matches!(
            e.errno.as_deref(),
            Some("EINPROGRESS") | Some("EALREADY") | Some("EINTR") | Some("EISCONN")
        )
        || (e.errno.is_none() && e.ret == Some(-115))
}

/// Byte ranges of some data events: `off` when recorded, else the running total.
fn ranges(events: &[Event], idx: &[u32]) -> Vec<Range> {
    let mut next = 0u64;
    idx.iter()
        .map(|&i| {
            let e = &events[i as usize];
            let off = e.off.unwrap_or(next);
            next = off + e.moved();
            Range::new(off, e.moved())
        })
        .collect()
}

fn csr(n: usize, keys: impl Iterator<Item = u32> + Clone) -> (Vec<u32>, Vec<u32>) {
    let mut start = vec![0u32; n + 1];
    for k in keys.clone() {
        start[k as usize + 1] += 1;
    }
    for i in 0..n {
        start[i + 1] += start[i];
    }
    let mut fill = start.clone();
    let mut list = vec![0u32; start[n] as usize];
    for (ei, k) in keys.enumerate() {
        list[fill[k as usize] as usize] = ei as u32;
        fill[k as usize] += 1;
    }
    (start, list)
}

fn value_at(ch: &Changes, pos: u32) -> u64 {
    let k = ch.partition_point(|&(p, _)| p <= pos);
    if k == 0 {
        0
    } else {
        ch[k - 1].1 as u64
    }
}

fn set_own(clock: &mut Vec<(u32, u32)>, t: u32, v: u32) {
    match clock.binary_search_by_key(&t, |x| x.0) {
        Ok(k) => clock[k].1 = v,
        Err(k) => clock.insert(k, (t, v)),
    }
}

/// Componentwise max of two sparse clocks; records in `changes` every foreign component of
/// thread `own` that grew at position `pos`.
fn merge(
    cur: &[(u32, u32)],
    other: &[(u32, u32)],
    own: u32,
    pos: u32,
    changes: &mut HashMap<u32, Changes>,
) -> Vec<(u32, u32)> {
    let mut out = Vec::with_capacity(cur.len().max(other.len()));
    let (mut i, mut j) = (0, 0);
    let mut grew = |c: u32, v: u32| {
        if c != own {
            let list = changes.entry(c).or_default();
            match list.last_mut() {
                Some(last) if last.0 == pos => last.1 = last.1.max(v),
                _ => list.push((pos, v)),
            }
        }
    };
    while i < cur.len() || j < other.len() {
        match (cur.get(i), other.get(j)) {
            (Some(&(a, va)), Some(&(b, vb))) if a == b => {
                if vb > va {
                    grew(a, vb);
                }
                out.push((a, va.max(vb)));
                i += 1;
                j += 1;
            }
            (Some(&(a, va)), Some(&(b, _))) if a < b => {
                out.push((a, va));
                i += 1;
            }
            (Some(&x), None) => {
                out.push(x);
                i += 1;
            }
            (_, Some(&(b, vb))) => {
                grew(b, vb);
                out.push((b, vb));
                j += 1;
            }
            (None, None) => unreachable!(),
        }
    }
    out
}
