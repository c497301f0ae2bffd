//! Thread incarnations and fork edges: every event gets a thread incarnation and a position in
//! its program order, and each fork/vfork/clone gets an edge to the first event of its child.
//!
//! Invariant: `thread_events[t]` lists event indices in increasing `seq`, so an event's position
//! in its thread is found by bisection, not stored; a tid starts a new incarnation after its
//! `exit`, at a `spawn`, or when a pending fork names it.

use super::edges::Cross;
use super::view::View;
use super::{EdgeKind, HbGraph, ThreadId, ThreadInfo};
use ordeal_events::{Event, Step};
use std::collections::HashMap;

/// Places events, in `seq` order, in thread incarnations: what the graph does once and the
/// streamed outputs do at every pass over the trace (the same events give the same answers).
#[derive(Debug, Default)]
pub(crate) struct ThreadTracker {
    pub(crate) threads: Vec<ThreadInfo>,
    /// Index of each thread's first event.
    first: Vec<u32>,
    current: HashMap<i32, usize>,
    /// Child tid → the fork event (index, seq) whose child has not appeared yet.
    pending_fork: HashMap<i32, (u32, u64)>,
    incarnations: HashMap<i32, u32>,
}

/// Where [`ThreadTracker::place`] put an event, and the fork edges it found there.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Placed {
    pub(crate) thread: usize,
    /// Position in the thread's program order, from 0.
    pub(crate) pos: u32,
    /// This event starts a thread that this earlier fork event created.
    pub(crate) forked_from: Option<u32>,
    /// This fork event created a thread whose first event came earlier (that event's index).
    pub(crate) forked_earlier: Option<u32>,
    /// This fork event's child (a tid) has not appeared yet (a pending fork of the same tid
    /// is replaced: its edge never forms).
    pub(crate) forks_later: Option<i32>,
}

impl ThreadTracker {
    /// Places event `i` (events come in `seq` order).
    pub(crate) fn place<'a>(&mut self, i: u32, e: impl View<'a>) -> Placed {
        let tid = e.tid();
        let fork = self.pending_fork.remove(&tid);
        let t = match self.current.get(&tid) {
            Some(&t) if fork.is_none() && e.call() != "spawn" && !self.threads[t].exited => t,
            _ => {
                let inc = self.incarnations.entry(tid).or_insert(0);
                *inc += 1;
                let t = self.threads.len();
                self.threads.push(ThreadInfo {
                    node: e.node().to_string(),
                    pid: e.pid(),
                    tid,
                    incarnation: *inc,
                    parent: fork.map(|f| f.1),
                    spawned: e.call() == "spawn",
                    exited: false,
                    events: 0,
                });
                self.first.push(i);
                self.current.insert(tid, t);
                t
            }
        };
        let info = &mut self.threads[t];
        info.events += 1;
        let mut placed = Placed {
            thread: t,
            pos: info.events as u32 - 1,
            forked_from: fork.map(|f| f.0),
            forked_earlier: None,
            forks_later: None,
        };
        if e.call() == "exit" {
            info.exited = true;
        }
        if e.step().is_some_and(Step::creates_task) && e.ok() {
            if let Some(child) = e.child().filter(|&c| c > 0) {
                // The child's first event normally comes later. If the current thread with
                // this tid has no known creator (every traced thread is spawned or forked),
                // the fork was recorded after the child ran (vfork returns only once the
                // child has exec'd or exited): attach the edge to its first event instead.
                match self.current.get(&child) {
                    Some(&c)
                        if self.threads[c].parent.is_none()
                            && !self.threads[c].spawned
                            && c != t =>
                    {
                        self.threads[c].parent = Some(e.seq());
                        placed.forked_earlier = Some(self.first[c]);
                    }
                    _ => {
                        self.pending_fork.insert(child, (i, e.seq()));
                        placed.forks_later = Some(child);
                    }
                }
            }
        }
        placed
    }
}

impl HbGraph {
    pub(super) fn assign_threads(&mut self) {
        let n = self.table.len();
        self.ev_thread = vec![0; n];
        let mut tracker = ThreadTracker::default();
        for i in 0..n {
            let p = tracker.place(i as u32, self.table.get(i));
            if p.thread == self.thread_events.len() {
                self.thread_events.push(Vec::new());
            }
            if let Some(f) = p.forked_from {
                self.cross.push(Cross::new(f, i as u32, EdgeKind::Fork));
            }
            if let Some(first) = p.forked_earlier {
                self.cross.push(Cross::new(i as u32, first, EdgeKind::Fork));
            }
            self.ev_thread[i] = p.thread as u32;
            self.thread_events[p.thread].push(i as u32);
        }
        self.threads = tracker.threads;
    }

    /// Thread incarnations in order of first appearance; a [`ThreadId`] indexes this slice.
    pub fn threads(&self) -> &[ThreadInfo] {
        &self.threads
    }

    /// The thread incarnation an event belongs to.
    pub fn thread_of(&self, seq: u64) -> Option<ThreadId> {
        self.index_of(seq).map(|i| self.ev_thread[i] as usize)
    }

    /// Events of one thread incarnation in program order (none for a graph built by
    /// [`HbGraph::from_trace`]).
    pub fn thread_events(&self, t: ThreadId) -> impl Iterator<Item = &Event> + '_ {
        self.thread_indices(t)
            .iter()
            .filter_map(|&i| self.events.get(i as usize))
    }

    /// Position of event `i` in its thread's program order (from 0).
    pub(super) fn pos_of(&self, i: usize) -> u32 {
        let evs = &self.thread_events[self.ev_thread[i] as usize];
        evs.binary_search(&(i as u32)).unwrap_or_default() as u32
    }

    /// Indices of one thread incarnation's events in program order.
    pub(crate) fn thread_indices(&self, t: ThreadId) -> &[u32] {
        self.thread_events.get(t).map_or(&[], Vec::as_slice)
    }
}
