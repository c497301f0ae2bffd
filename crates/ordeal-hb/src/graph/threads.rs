//! Thread incarnations and fork edges: every event gets a thread incarnation and a position in
//! its program order, and each fork/vfork/clone gets an edge to the first event of its child.
//!
//! Invariant: `thread_events[t]` lists event indices in increasing `seq`, so an event's position
//! in its thread is found by bisection, not stored; a tid starts a new incarnation after its
//! `exit`, at a `spawn`, or when a pending fork names it.

use super::edges::Cross;
use super::{EdgeKind, HbGraph, ThreadId, ThreadInfo};
use ordeal_events::{Event, Step};
use std::collections::HashMap;

impl HbGraph {
    pub(super) fn assign_threads(&mut self) {
        let n = self.table.len();
        self.ev_thread = vec![0; n];
        let mut current: HashMap<i32, usize> = HashMap::new();
        let mut pending_fork: HashMap<i32, u32> = HashMap::new();
        let mut incarnations: HashMap<i32, u32> = HashMap::new();
        for i in 0..n {
            let e = self.table.get(i);
            let tid = e.tid();
            let fork = pending_fork.remove(&tid);
            let t = match current.get(&tid) {
                Some(&t) if fork.is_none() && e.call() != "spawn" && !self.threads[t].exited => t,
                _ => {
                    let inc = incarnations.entry(tid).or_insert(0);
                    *inc += 1;
                    let t = self.threads.len();
                    self.threads.push(ThreadInfo {
                        node: e.node().to_string(),
                        pid: e.pid(),
                        tid,
                        incarnation: *inc,
                        parent: fork.map(|f| self.table.evs[f as usize].seq),
                        spawned: e.call() == "spawn",
                        exited: false,
                        events: 0,
                    });
                    self.thread_events.push(Vec::new());
                    if let Some(f) = fork {
                        self.cross.push(Cross::new(f, i as u32, EdgeKind::Fork));
                    }
                    current.insert(tid, t);
                    t
                }
            };
            self.ev_thread[i] = t as u32;
            self.thread_events[t].push(i as u32);
            self.threads[t].events += 1;
            let e = self.table.get(i);
            if e.call() == "exit" {
                self.threads[t].exited = true;
            }
            if e.step().is_some_and(Step::creates_task) && e.ok() {
                if let Some(child) = e.child().filter(|&c| c > 0) {
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
                            self.threads[c].parent = Some(e.seq());
                            self.cross.push(Cross::new(i as u32, first, EdgeKind::Fork));
                        }
                        _ => {
                            pending_fork.insert(child, i as u32);
                        }
                    }
                }
            }
        }
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
