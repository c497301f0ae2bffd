//! The first pass over the trace: everything that needs the whole trace before any edge can be
//! drawn, kept per thread, per socket or per node, never per event.
//!
//! It places events in threads, learns what each socket did and which addresses belong to
//! which node (so streams can be paired once it ends), aggregates failed connects and event
//! counts, keeps the lifecycle events the summary reads, and notes what the second pass will
//! need to know ahead: the byte ranges each socket sent and received (a receive waits only for
//! bytes some send will cover), the events a fork recorded later points back to, the UDP
//! sends recorded after a receive they could match, and trace.json's slices that the next
//! call of their thread cuts short.

use super::bytes::Coverage;
use super::dgrams::{Dgram, DgramPlan};
use crate::addr::AddrMap;
use crate::chrome::{is_instant, MIN_SLICE_NS};
use crate::graph::{
    AddrMapBuilder, Endpoint, FailedConnect, FailedConnects, ThreadInfo, ThreadTracker, Transfer,
};
use crate::summary::Tally;
use ordeal_events::{Class, Event, Header};
use std::collections::{BTreeMap, HashMap, HashSet};

/// Calls whose whole events the summary reads (commands, exit codes and signals).
fn lifecycle_call(call: &str) -> bool {
    matches!(call, "spawn" | "exec" | "execve" | "execveat" | "exit")
}

/// The byte ranges one socket sent and received, and where its next range without an
/// offset starts.
#[derive(Debug, Default)]
pub(super) struct Sides {
    pub(super) sent: Coverage,
    pub(super) received: Coverage,
    next_sent: u64,
    next_received: u64,
    /// Two of its sends (or two receives) claimed the same bytes.
    pub(super) overlapping: bool,
}

impl Sides {
    /// The range of a send or receive: its recorded offset, else where the previous one ended.
    pub(super) fn range(next: &mut u64, e: &Event) -> (u64, u64) {
        let off = e.off.unwrap_or(*next);
        let end = off.saturating_add(e.moved());
        *next = end;
        (off, end)
    }

    fn observe(&mut self, dir: Transfer, e: &Event) {
        let (next, cover) = match dir {
            Transfer::Send => (&mut self.next_sent, &mut self.sent),
            Transfer::Recv => (&mut self.next_received, &mut self.received),
        };
        let (a, b) = Sides::range(next, e);
        if !cover.insert(a, b) {
            self.overlapping = true;
        }
    }
}

/// What the first pass learnt.
pub(super) struct Scan {
    pub(super) header: Header,
    pub(super) events: usize,
    pub(super) threads: Vec<ThreadInfo>,
    pub(super) endpoints: BTreeMap<u64, Endpoint>,
    pub(super) sides: HashMap<u64, Sides>,
    pub(super) addr_map: AddrMap,
    pub(super) failed_connects: Vec<FailedConnect>,
    pub(super) tally: Tally,
    /// Per thread, its lifecycle events in program order.
    pub(super) lifecycle: Vec<Vec<Event>>,
    /// Events per node name.
    pub(super) node_events: HashMap<String, usize>,
    /// Net + data + proc events, what the event-level picture limit counts.
    pub(super) communication: usize,
    /// Fork edges (their number).
    pub(super) forks: u64,
    /// Events that a fork recorded after them points to (a vfork's child's first event).
    pub(super) forked_late: HashSet<u32>,
    pub(super) dgrams: DgramPlan,
    /// trace.json slices cut short where the thread's next call starts, by event index.
    pub(super) cuts: HashMap<u32, u64>,
    /// Why the trace cannot be streamed, if it cannot.
    pub(super) unordered: Option<&'static str>,
}

/// Scans events in `seq` order; see the module documentation.
pub(super) struct Scanner {
    scan: Scan,
    tracker: ThreadTracker,
    addrs: AddrMapBuilder,
    failed: FailedConnects,
    /// Per thread, the events (index, ts, drawn duration) waiting for the thread's next slice.
    open_slices: Vec<Vec<(u32, u64, u64)>>,
    last_seq: Option<u64>,
}

impl Scanner {
    pub(super) fn new(header: Header) -> Scanner {
        Scanner {
            addrs: AddrMapBuilder::new(&header),
            scan: Scan {
                header,
                events: 0,
                threads: Vec::new(),
                endpoints: BTreeMap::new(),
                sides: HashMap::new(),
                addr_map: AddrMap::default(),
                failed_connects: Vec::new(),
                tally: Tally::default(),
                lifecycle: Vec::new(),
                node_events: HashMap::new(),
                communication: 0,
                forks: 0,
                forked_late: HashSet::new(),
                dgrams: DgramPlan::default(),
                cuts: HashMap::new(),
                unordered: None,
            },
            tracker: ThreadTracker::default(),
            failed: FailedConnects::default(),
            open_slices: Vec::new(),
            last_seq: None,
        }
    }

    /// Takes in the next event; returns false once the trace turns out not to be streamable
    /// (events out of `seq` order, or two with one `seq`).
    pub(super) fn observe(&mut self, e: &Event) -> bool {
        let s = &mut self.scan;
        match self.last_seq {
            Some(last) if e.seq < last => s.unordered = Some("its events are not in seq order"),
            Some(last) if e.seq == last => s.unordered = Some("two of its events have one seq"),
            _ => {}
        }
        if s.unordered.is_some() {
            return false;
        }
        if s.events >= u32::MAX as usize - 1 {
            s.unordered = Some("it has more than 2^32 events");
            return false;
        }
        self.last_seq = Some(e.seq);
        let i = s.events as u32;
        s.events += 1;
        let placed = self.tracker.place(i, e);
        s.forks +=
            u64::from(placed.forked_from.is_some()) + u64::from(placed.forked_earlier.is_some());
        if let Some(first) = placed.forked_earlier {
            s.forked_late.insert(first);
        }
        if placed.thread == s.lifecycle.len() {
            s.lifecycle.push(Vec::new());
            self.open_slices.push(Vec::new());
        }
        if lifecycle_call(&e.call) {
            s.lifecycle[placed.thread].push(e.clone());
        }
        self.addrs.observe(e);
        self.failed.observe(e);
        s.tally.observe(e);
        match s.node_events.get_mut(&e.node) {
            Some(n) => *n += 1,
            None => {
                s.node_events.insert(e.node.clone(), 1);
            }
        }
        if matches!(e.class, Some(Class::Net | Class::Data | Class::Proc)) {
            s.communication += 1;
        }
        if let Some(sock) = &e.sock {
            let ep = s
                .endpoints
                .entry(sock.ino)
                .or_insert_with(|| Endpoint::new(i, e));
            if let Some(dir) = ep.observe(i, e) {
                s.sides.entry(sock.ino).or_default().observe(dir, e);
            }
            if let Some(d) = Dgram::of(e) {
                s.dgrams.observe(&d, e);
            }
        }
        // A slice ends where the thread's next non-instant event starts.
        let open = &mut self.open_slices[placed.thread];
        if !is_instant(e.class) {
            for &(k, ts, drawn) in open.iter() {
                if e.ts < ts + drawn && e.ts >= ts + MIN_SLICE_NS {
                    s.cuts.insert(k, e.ts - ts);
                }
            }
            open.clear();
        }
        open.push((i, e.ts, e.dur.max(MIN_SLICE_NS)));
        true
    }

    pub(super) fn finish(mut self) -> Scan {
        self.scan.threads = self.tracker.threads;
        self.scan.addr_map = self.addrs.0;
        self.scan.failed_connects = self.failed.finish(&self.scan.addr_map);
        self.scan
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ordeal_events::{NodeInfo, Proto, Sock, SCHEMA_VERSION};

    fn header() -> Header {
        Header {
            schema: "ordeal-trace".into(),
            version: SCHEMA_VERSION,
            experiment: "t".into(),
            started_at: String::new(),
            nodes: vec![NodeInfo {
                name: "a".into(),
                role: "node".into(),
                ports: vec![7000],
                protocol: None,
            }],
        }
    }

    fn ev(seq: u64, tid: i32, call: &str, class: Class) -> Event {
        Event {
            seq,
            ts: 1000 * (seq + 1),
            dur: 100,
            node: "a".into(),
            pid: 10,
            tid,
            call: call.into(),
            class: Some(class),
            ..Default::default()
        }
    }

    fn send(seq: u64, off: Option<u64>, n: i64) -> Event {
        Event {
            ret: Some(n),
            off,
            sock: Some(Sock {
                ino: 5,
                proto: Proto::Tcp,
                local: Some("127.0.0.1:1".into()),
                remote: Some("127.0.0.1:7000".into()),
                peer_ino: None,
                peer_node: None,
            }),
            ..ev(seq, 10, "write", Class::Data)
        }
    }

    fn scan(events: &[Event]) -> Scan {
        let mut s = Scanner::new(header());
        for e in events {
            if !s.observe(e) {
                break;
            }
        }
        s.finish()
    }

    #[test]
    fn what_the_second_pass_needs_ahead_is_noted() {
        let mut spawn = ev(0, 10, "spawn", Class::Proc);
        spawn.child = Some(10);
        spawn.argv = Some(vec!["a".into()]);
        let mut long = send(1, Some(0), 4);
        long.dur = 5_000; // outlasts the next call of its thread
        let child = ev(3, 11, "exec", Class::Proc);
        let mut vfork = ev(4, 10, "vfork", Class::Proc);
        vfork.child = Some(11);
        let events = [
            spawn,
            long,
            send(2, None, 6),
            child,
            vfork,
            ev(5, 11, "exit", Class::Proc),
        ];
        let s = scan(&events);
        assert_eq!(s.unordered, None);
        assert_eq!((s.events, s.threads.len(), s.forks), (6, 2, 1));
        assert_eq!(s.forked_late, [3].into_iter().collect());
        assert_eq!(s.cuts, [(1, 1000)].into_iter().collect());
        // The second send had no offset: it follows the first.
        let sides = &s.sides[&5];
        assert_eq!(sides.sent.within(0, 100).collect::<Vec<_>>(), vec![(0, 10)]);
        assert!(!sides.overlapping);
        let calls: Vec<Vec<&str>> = s
            .lifecycle
            .iter()
            .map(|l| l.iter().map(|e| e.call.as_str()).collect())
            .collect();
        assert_eq!(calls, vec![vec!["spawn"], vec!["exec", "exit"]]);
        assert_eq!(s.node_events["a"], 6);
        assert_eq!(s.communication, 6);
    }

    #[test]
    fn overlapping_transfers_and_disordered_seqs_are_noticed() {
        let s = scan(&[send(0, Some(0), 4), send(1, Some(2), 4)]);
        assert!(s.sides[&5].overlapping);
        let s = scan(&[
            send(0, Some(0), 4),
            send(2, Some(4), 4),
            send(1, Some(8), 4),
        ]);
        assert_eq!(s.unordered, Some("its events are not in seq order"));
        let s = scan(&[send(0, Some(0), 4), send(0, Some(4), 4)]);
        assert_eq!(s.unordered, Some("two of its events have one seq"));
    }
}
