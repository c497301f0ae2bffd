//! The second pass over the trace: every cross-thread edge as its later end comes (fork,
//! connect, stream bytes, datagrams), in the graph's edge order where an order shows, with
//! the traffic it carries, the clocks and `hb.jsonl` ([`Clocks`]), the flow arrows of
//! trace.json ([`Flows`]) and, for a small trace, the event-level picture.
//!
//! Invariant: an edge whose source comes after its target was expected by the target (the
//! first pass or the coverage says it comes), so the target stays open until it does.

use super::bytes::{gaps, Waiting};
use super::clocks::{Clocks, Pred, Src};
use super::dgrams::{Dgram, Dgrams, Unmatched};
use super::flows::{End, Flow, Flows};
use super::lines::Ordered;
use super::scan::{Scan, Sides};
use super::{EdgeKey, Info, Names};
use crate::chrome::{flow_from_ts, flow_to_ts, is_flow, is_instant, MIN_SLICE_NS};
use crate::dot::{drawn, PictureEdge};
use crate::graph::{EdgeKind, Streams, ThreadTracker, Traffic, EXTERNAL};
use ordeal_events::{Class, Event};
use std::cell::Cell;
use std::collections::HashMap;
use std::io::{self, Write};
use std::rc::Rc;

/// A send whose bytes are not all received yet.
struct Sent {
    info: Info,
    src: Src,
    /// Bytes a receive will still take.
    left: Cell<u64>,
    /// Its first overlap in stream order (start, receiving node): where its message counts.
    first: Cell<Option<(u64, u32)>>,
}

/// A receive recorded before the sends of some of its bytes.
struct Early {
    info: Info,
    open: u32,
    /// Bytes whose send is still to come.
    left: Cell<u64>,
}

/// One end of a paired stream: where its next ranges start, its bytes not received yet, and
/// the bytes its partner received before they were seen sent.
struct StreamEnd {
    partner: u64,
    /// Node of the partner endpoint.
    partner_node: u32,
    next_sent: u64,
    next_received: u64,
    sent: Waiting<Rc<Sent>>,
    early: Waiting<Rc<Early>>,
}

/// The event-level picture's material: drawn events per thread, and cross edges by key.
pub(super) struct Picture {
    pub(super) shown: Vec<Vec<Event>>,
    pub(super) edges: Vec<(EdgeKey, PictureEdge)>,
}

/// What the second pass found.
pub(super) struct Linked<W> {
    pub(super) traffic: HashMap<(u32, u32), Traffic>,
    pub(super) messages: u64,
    pub(super) picture: Option<Picture>,
    pub(super) names: Names,
    pub(super) hb: Option<W>,
    pub(super) flows: Option<Flows>,
    /// Most events open at once.
    pub(super) window: usize,
}

pub(super) struct Linker<'a, W: Write> {
    scan: &'a Scan,
    names: Names,
    tracker: ThreadTracker,
    last_seq: Vec<Option<u64>>,
    clocks: Clocks<W>,
    flows: Option<Flows>,
    picture: Option<Picture>,
    idx: u32,
    forks: u64,
    /// Child tid → the fork waiting for the child's first event.
    fork_from: HashMap<i32, (Src, Info)>,
    /// First event of a vfork's child (index) → itself open, waiting for the vfork.
    fork_wait: HashMap<u32, (u32, Info)>,
    /// Accept → (connect, the lower inode of the pair), and the same by connect.
    connect_to: HashMap<u32, (u32, u64)>,
    connect_from: HashMap<u32, (u32, u64)>,
    /// Accept (index) → its connect, seen before it.
    connect_src: HashMap<u32, (Src, Info)>,
    /// Connect (index) → its accept, seen before it and waiting.
    connect_wait: HashMap<u32, (u32, Info)>,
    ends: HashMap<u64, StreamEnd>,
    dgrams: Dgrams,
    traffic: HashMap<(u32, u32), Traffic>,
    messages: u64,
    got: Vec<(u64, u64, Rc<Sent>)>,
    got_early: Vec<(u64, u64, Rc<Early>)>,
}

impl<'a, W: Write> Linker<'a, W> {
    pub(super) fn new(
        scan: &'a Scan,
        streams: &Streams,
        dgrams: Dgrams,
        hb: Option<Ordered<W>>,
        flows: Option<Flows>,
        picture: bool,
    ) -> Linker<'a, W> {
        let mut names = Names::default();
        let mut ends = HashMap::new();
        for (&ino, ep) in &scan.endpoints {
            let partner = streams
                .partner
                .get(&ino)
                .and_then(|p| Some((*p, scan.endpoints.get(p)?)));
            if let Some((p, pe)) = partner.filter(|_| ep.is_stream()) {
                ends.insert(
                    ino,
                    StreamEnd {
                        partner: p,
                        partner_node: names.id(&pe.node),
                        next_sent: 0,
                        next_received: 0,
                        sent: Waiting::default(),
                        early: Waiting::default(),
                    },
                );
            }
        }
        let mut connect_to = HashMap::new();
        let mut connect_from = HashMap::new();
        for (&ino, &(c, a)) in &streams.connects {
            if c != a {
                connect_to.insert(a, (c, ino));
                connect_from.insert(c, (a, ino));
            }
        }
        let labels = crate::output::hb_labels(&scan.threads);
        Linker {
            scan,
            names,
            tracker: ThreadTracker::default(),
            last_seq: Vec::new(),
            clocks: Clocks::new(hb, labels),
            flows,
            picture: picture.then(|| Picture {
                shown: vec![Vec::new(); scan.threads.len()],
                edges: Vec::new(),
            }),
            idx: 0,
            forks: 0,
            fork_from: HashMap::new(),
            fork_wait: HashMap::new(),
            connect_to,
            connect_from,
            connect_src: HashMap::new(),
            connect_wait: HashMap::new(),
            ends,
            dgrams,
            traffic: HashMap::new(),
            messages: 0,
            got: Vec::new(),
            got_early: Vec::new(),
        }
    }

    /// Records an edge: its flow arrow and its place in the picture; returns it as a `pred`.
    fn edge(&mut self, from: &Info, to: &Info, kind: EdgeKind, key: EdgeKey) -> io::Result<Pred> {
        if let Some(flows) = &mut self.flows {
            if is_flow(kind) && !from.instant && !to.instant {
                let end = |i: &Info, ts: u64| End {
                    ts,
                    node: i.node,
                    tid: i.tid,
                };
                flows.push(Flow {
                    key,
                    bytes: match kind {
                        EdgeKind::Message { bytes } => Some(bytes),
                        _ => None,
                    },
                    from: end(from, from.flow_from),
                    to: end(to, to.flow_to),
                    from_seq: from.seq,
                })?;
            }
        }
        if let Some(p) = &mut self.picture {
            p.edges.push((
                key,
                PictureEdge {
                    from: from.seq,
                    to: to.seq,
                    kind,
                    from_thread: from.thread as usize,
                    to_thread: to.thread as usize,
                },
            ));
        }
        Ok(Pred {
            key,
            from: from.seq,
            kind,
        })
    }

    fn fork_key(&mut self) -> EdgeKey {
        self.forks += 1;
        EdgeKey {
            group: 0,
            a: self.forks,
            sub: 0,
            b: 0,
        }
    }

    /// Takes in the next event.
    pub(super) fn take(&mut self, e: &Event) -> io::Result<()> {
        let i = self.idx;
        self.idx += 1;
        let p = self.tracker.place(i, e);
        let t = p.thread;
        if t == self.last_seq.len() {
            self.last_seq.push(None);
        }
        let prog = self.last_seq[t].replace(e.seq);
        let drawn_dur = match self.scan.cuts.get(&i) {
            Some(&d) => d,
            None => e.dur.max(MIN_SLICE_NS),
        };
        let info = Info {
            idx: i,
            seq: e.seq,
            thread: t as u32,
            node: self.names.id(&e.node),
            tid: e.tid,
            flow_from: flow_from_ts(e.ts, drawn_dur),
            flow_to: flow_to_ts(e.ts, drawn_dur),
            instant: is_instant(e.class),
        };
        let id = self
            .clocks
            .begin(i, e.seq, t as u32, p.pos, prog, e.call == "exit");
        if let Some(pic) = &mut self.picture {
            if drawn(e) {
                pic.shown[t].push(e.clone());
            }
        }
        // Edges into this event whose source is known.
        if p.forked_from.is_some() {
            let key = self.fork_key();
            if let Some((src, from)) = self.fork_from.remove(&e.tid) {
                let pred = self.edge(&from, &info, EdgeKind::Fork, key)?;
                self.clocks.add_in(id, pred, &src);
            }
        }
        if self.scan.forked_late.contains(&i) {
            self.clocks.expect(id);
            self.fork_wait.insert(i, (id, info));
        }
        if let Some(&(c, ino)) = self.connect_to.get(&i) {
            if c < i {
                if let Some((src, from)) = self.connect_src.remove(&i) {
                    let pred = self.edge(&from, &info, EdgeKind::Connect, connect_key(ino))?;
                    self.clocks.add_in(id, pred, &src);
                }
            } else {
                self.clocks.expect(id);
                self.connect_wait.insert(c, (id, info));
            }
        }
        self.transfer(e, id, info)?;
        // Edges out of this event.
        if let Some(first) = p.forked_earlier {
            let key = self.fork_key();
            if let Some((w, to)) = self.fork_wait.remove(&first) {
                let pred = self.edge(&info, &to, EdgeKind::Fork, key)?;
                let src = self.clocks.source(id);
                self.clocks.add_in(w, pred, &src);
                self.clocks.fulfil(w)?;
            }
        }
        if let Some(&(a, ino)) = self.connect_from.get(&i) {
            if a > i {
                let src = self.clocks.source(id);
                self.connect_src.insert(a, (src, info));
            } else if let Some((w, to)) = self.connect_wait.remove(&i) {
                let pred = self.edge(&info, &to, EdgeKind::Connect, connect_key(ino))?;
                let src = self.clocks.source(id);
                self.clocks.add_in(w, pred, &src);
                self.clocks.fulfil(w)?;
            }
        }
        if let Some(child) = p.forks_later {
            let src = self.clocks.source(id);
            self.fork_from.insert(child, (src, info));
        }
        self.clocks.end(id)?;
        self.decide(Some(e.seq))
    }

    fn transfer(&mut self, e: &Event, id: u32, info: Info) -> io::Result<()> {
        let Some(s) = &e.sock else {
            return Ok(());
        };
        if let Some(d) = Dgram::of(e) {
            if d.send {
                let src = self.clocks.source(id);
                if let Some(u) = self.dgrams.send(d, e, info, src) {
                    self.unmatched_send(u);
                }
            } else {
                self.clocks.expect(id);
                self.dgrams.recv(d, e, info, id);
            }
        }
        if e.class != Some(Class::Data) || e.moved() == 0 || !self.ends.contains_key(&s.ino) {
            return Ok(());
        }
        if e.is_send() {
            self.stream_send(e, s.ino, id, info)
        } else if e.is_recv() {
            self.stream_recv(e, s.ino, id, info)
        } else {
            Ok(())
        }
    }

    fn stream_send(&mut self, e: &Event, ino: u64, id: u32, info: Info) -> io::Result<()> {
        let Some(end) = self.ends.get_mut(&ino) else {
            return Ok(());
        };
        let (a, b) = Sides::range(&mut end.next_sent, e);
        let partner_node = end.partner_node;
        let mut got = std::mem::take(&mut self.got_early);
        end.early.take(a, b, &mut got);
        let partner = end.partner;
        let sent = Rc::new(Sent {
            info,
            src: self.clocks.source(id),
            left: Cell::new(0),
            first: Cell::new(None),
        });
        let taken: Vec<(u64, u64)> = got.iter().map(|g| (g.0, g.1)).collect();
        for (x, y, early) in got.drain(..) {
            let bytes = y - x;
            let pred = self.edge(
                &info,
                &early.info,
                EdgeKind::Message { bytes },
                message_key(ino, x),
            )?;
            self.clocks.add_in(early.open, pred, &sent.src);
            self.overlap(&sent, x, bytes, early.info.node);
            early.left.set(early.left.get() - bytes);
            if early.left.get() == 0 {
                self.clocks.fulfil(early.open)?;
            }
        }
        self.got_early = got;
        // The rest waits if the partner will receive it; else no traced receive takes it.
        let mut unmatched = 0;
        let end = self.ends.get_mut(&ino).expect("looked up above");
        for (g0, g1) in gaps(a, b, &taken) {
            let mut waiting = 0;
            if let Some(sides) = self.scan.sides.get(&partner) {
                for (c0, c1) in sides.received.within(g0, g1) {
                    end.sent.add(c0, c1, sent.clone());
                    waiting += c1 - c0;
                }
            }
            sent.left.set(sent.left.get() + waiting);
            unmatched += (g1 - g0) - waiting;
        }
        if unmatched > 0 {
            self.traffic
                .entry((info.node, partner_node))
                .or_default()
                .unmatched_bytes += unmatched;
        }
        if sent.left.get() == 0 {
            self.count_message(&sent);
        }
        Ok(())
    }

    fn stream_recv(&mut self, e: &Event, ino: u64, id: u32, info: Info) -> io::Result<()> {
        let Some(end) = self.ends.get_mut(&ino) else {
            return Ok(());
        };
        let (a, b) = Sides::range(&mut end.next_received, e);
        let sender = end.partner;
        let Some(from) = self.ends.get_mut(&sender) else {
            return Ok(());
        };
        let mut got = std::mem::take(&mut self.got);
        from.sent.take(a, b, &mut got);
        let taken: Vec<(u64, u64)> = got.iter().map(|g| (g.0, g.1)).collect();
        for (x, y, sent) in got.drain(..) {
            let bytes = y - x;
            let pred = self.edge(
                &sent.info,
                &info,
                EdgeKind::Message { bytes },
                message_key(sender, x),
            )?;
            self.clocks.add_in(id, pred, &sent.src);
            self.overlap(&sent, x, bytes, info.node);
            sent.left.set(sent.left.get() - bytes);
            if sent.left.get() == 0 {
                self.count_message(&sent);
            }
        }
        self.got = got;
        // Bytes some send still to come covers: the receive waits for it.
        let early = Rc::new(Early {
            info,
            open: id,
            left: Cell::new(0),
        });
        let from = self.ends.get_mut(&sender).expect("looked up above");
        if let Some(sides) = self.scan.sides.get(&sender) {
            for (g0, g1) in gaps(a, b, &taken) {
                for (c0, c1) in sides.sent.within(g0, g1) {
                    from.early.add(c0, c1, early.clone());
                    early.left.set(early.left.get() + c1 - c0);
                }
            }
        }
        if early.left.get() > 0 {
            self.clocks.expect(id);
        }
        Ok(())
    }

    /// Bytes of `sent` from `start` on went to a receive on `node`.
    fn overlap(&mut self, sent: &Sent, start: u64, bytes: u64, node: u32) {
        self.messages += 1;
        self.traffic
            .entry((sent.info.node, node))
            .or_default()
            .bytes += bytes;
        if sent.first.get().is_none_or(|(s, _)| start < s) {
            sent.first.set(Some((start, node)));
        }
    }

    /// A send none of whose bytes a receive will still take: one message, counted toward the
    /// node of its first receive in stream order, if any received it.
    fn count_message(&mut self, sent: &Sent) {
        if let Some((_, node)) = sent.first.take() {
            self.traffic
                .entry((sent.info.node, node))
                .or_default()
                .messages += 1;
        }
    }

    fn unmatched_send(&mut self, u: Unmatched) {
        let peer = self
            .scan
            .addr_map
            .lookup(&u.d.dst)
            .unwrap_or(EXTERNAL)
            .to_string();
        let peer = self.names.id(&peer);
        self.traffic
            .entry((u.node, peer))
            .or_default()
            .unmatched_bytes += u.d.size;
    }

    /// Decides the datagram receives that can be; all of them at the end (`seen`: `None`).
    fn decide(&mut self, seen: Option<u64>) -> io::Result<()> {
        while let Some((r, taken, expired)) = self.dgrams.decide(seen) {
            match taken {
                Some(k) => {
                    let bytes = r.d.size;
                    let pred = self.edge(
                        &k.info,
                        &r.info,
                        EdgeKind::Message { bytes },
                        dgram_key(r.info.idx),
                    )?;
                    self.clocks.add_in(r.open, pred, &k.source);
                    self.messages += 1;
                    let t = self.traffic.entry((k.info.node, r.info.node)).or_default();
                    t.messages += 1;
                    t.bytes += bytes;
                }
                None => {
                    let peer = self
                        .scan
                        .addr_map
                        .lookup(&r.d.src)
                        .unwrap_or(EXTERNAL)
                        .to_string();
                    let peer = self.names.id(&peer);
                    self.traffic
                        .entry((peer, r.info.node))
                        .or_default()
                        .unmatched_bytes += r.d.size;
                }
            }
            self.clocks.fulfil(r.open)?;
            for k in expired {
                let node = k.info.node;
                self.unmatched_send(Unmatched {
                    d: k.into_dgram(),
                    node,
                });
            }
        }
        Ok(())
    }

    /// Every event is in: what still waits is unmatched. `None` when events are still open,
    /// which only edges forming a cycle leave.
    pub(super) fn finish(mut self) -> io::Result<Option<Linked<W>>> {
        self.decide(None)?;
        for k in self.dgrams.leftovers() {
            let node = k.info.node;
            self.unmatched_send(Unmatched {
                d: k.into_dgram(),
                node,
            });
        }
        let mut ends: Vec<_> = std::mem::take(&mut self.ends).into_values().collect();
        for end in &mut ends {
            for (a, b, sent) in end.sent.drain() {
                self.traffic
                    .entry((sent.info.node, end.partner_node))
                    .or_default()
                    .unmatched_bytes += b - a;
                self.count_message(&sent);
            }
        }
        if self.clocks.open_events() > 0 {
            return Ok(None);
        }
        let window = self.clocks.widest;
        Ok(Some(Linked {
            traffic: self.traffic,
            messages: self.messages,
            picture: self.picture,
            names: self.names,
            hb: self.clocks.into_inner(),
            flows: self.flows,
            window,
        }))
    }
}

fn connect_key(ino: u64) -> EdgeKey {
    EdgeKey {
        group: 1,
        a: ino,
        sub: 1,
        b: 0,
    }
}

fn message_key(sender: u64, start: u64) -> EdgeKey {
    EdgeKey {
        group: 1,
        a: sender,
        sub: 0,
        b: start,
    }
}

fn dgram_key(recv: u32) -> EdgeKey {
    EdgeKey {
        group: 2,
        a: recv as u64,
        sub: 0,
        b: 0,
    }
}
