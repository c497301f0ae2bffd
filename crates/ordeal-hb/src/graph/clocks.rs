//! Vector clocks: computed once in topological order (Kahn's algorithm, lowest `seq` first),
//! stored as sparse per-thread change lists, queried by binary search.
//!
//! Invariant: a thread's own component at its `k`-th event is `k` and is not stored; every
//! change list increases in both position and value.

use super::changes::{Changes, Cursor};
use super::{Edge, HbGraph, ThreadId, VectorClock};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::rc::Rc;

impl HbGraph {
    /// Kahn's algorithm (ready events by lowest seq first) computing every thread's clock
    /// changes. A cycle (impossible for a faithful trace) is broken at the lowest-seq event left
    /// by dropping its incoming edges from unprocessed events, with a warning.
    pub(super) fn compute_clocks(&mut self) {
        let n = self.table.len();
        let mut indeg = vec![0u32; n];
        for evs in &self.thread_events {
            for &i in evs.iter().skip(1) {
                indeg[i as usize] += 1;
            }
        }
        for c in &self.cross {
            indeg[c.to as usize] += 1;
        }
        let mut broken = vec![false; self.cross.len()];
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
                    while indeg[cursor] == DONE {
                        cursor += 1;
                    }
                    let i = cursor;
                    let mut cut = Vec::new();
                    for &ei in self.in_edges(i) {
                        let (f, kind) =
                            (self.cross[ei as usize].from, self.cross[ei as usize].kind());
                        if indeg[f as usize] != DONE && !broken[ei as usize] {
                            broken[ei as usize] = true;
                            cut.push(Edge {
                                from: self.table.evs[f as usize].seq,
                                to: self.table.evs[i].seq,
                                kind,
                            });
                        }
                    }
                    self.warnings.push(format!(
                        "happens-before cycle: dropped {} edge(s) into event #{} ({})",
                        cut.len(),
                        self.table.evs[i].seq,
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
            if indeg[i] == DONE {
                continue;
            }
            indeg[i] = DONE;
            processed += 1;
            let t = self.ev_thread[i] as usize;
            let pos = self.pos_of(i);
            let mut clock = clocks[t].take().unwrap_or_default();
            for &ei in self.in_edges(i) {
                if broken[ei as usize] {
                    continue;
                }
                let f = self.cross[ei as usize].from;
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
                release(&mut indeg, &mut heap, self.cross[ei as usize].to);
            }
            let evs = &self.thread_events[t];
            if let Some(&next) = evs.get(pos as usize + 1) {
                release(&mut indeg, &mut heap, next);
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
                for (_, ch) in &mut v {
                    ch.shrink_to_fit();
                }
                v
            })
            .collect();
    }

    fn component(&self, i: usize, c: ThreadId) -> u64 {
        let (t, pos) = (self.ev_thread[i] as usize, self.pos_of(i));
        if t == c {
            return pos as u64 + 1;
        }
        let list = &self.changes[t];
        match list.binary_search_by_key(&(c as u32), |x| x.0) {
            Ok(k) => list[k].1.value_at(pos),
            Err(_) => 0,
        }
    }

    /// Number of stored vector-clock entries (component increases), a measure of the clock
    /// memory: stored as deltas, 1 to 2 bytes each in a typical trace.
    pub fn clock_entries(&self) -> usize {
        self.changes
            .iter()
            .flat_map(|t| t.iter().map(|(_, ch)| ch.len()))
            .sum()
    }

    /// The vector clock of an event.
    pub fn vc(&self, seq: u64) -> Option<VectorClock> {
        let i = self.index_of(seq)?;
        let (t, pos) = (self.ev_thread[i] as usize, self.pos_of(i));
        let foreign = self.changes[t]
            .iter()
            .map(|(c, ch)| (*c as usize, ch.value_at(pos)));
        Some(clock_of(t, pos, foreign))
    }

    /// Reads the vector clocks of events asked in increasing index order, decoding each stored
    /// change once (what [`HbGraph::vc`] repeats for each event).
    pub(crate) fn clock_walk(&self) -> ClockWalk<'_> {
        ClockWalk {
            g: self,
            cursors: self
                .changes
                .iter()
                .map(|t| t.iter().map(|(_, ch)| ch.cursor()).collect())
                .collect(),
        }
    }

    /// The vector clock with components named by [`ThreadInfo::label`](super::ThreadInfo::label).
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
        self.component(ib, ta) > self.pos_of(ia) as u64
    }

    /// Whether neither event happened before the other (false for unknown seqs and `a == b`).
    pub fn concurrent(&self, a: u64, b: u64) -> bool {
        a != b
            && self.index_of(a).is_some()
            && self.index_of(b).is_some()
            && !self.happens_before(a, b)
            && !self.happens_before(b, a)
    }
}

/// In-degree of an event already processed by the clock pass.
const DONE: u32 = u32::MAX;

/// One edge into `to` is consumed: `to` is ready once none is left.
fn release(indeg: &mut [u32], heap: &mut BinaryHeap<Reverse<u32>>, to: u32) {
    let d = &mut indeg[to as usize];
    if *d != DONE {
        *d = d.saturating_sub(1);
        if *d == 0 {
            heap.push(Reverse(to));
        }
    }
}

/// A clock from its foreign components and the thread's own position.
fn clock_of(t: ThreadId, pos: u32, foreign: impl Iterator<Item = (ThreadId, u64)>) -> VectorClock {
    let mut v: Vec<(ThreadId, u64)> = foreign.filter(|&(_, x)| x > 0).collect();
    let own = (t, pos as u64 + 1);
    match v.binary_search_by_key(&t, |x| x.0) {
        Ok(k) => v[k] = own,
        Err(k) => v.insert(k, own),
    }
    VectorClock(v)
}

/// See [`HbGraph::clock_walk`].
pub(crate) struct ClockWalk<'a> {
    g: &'a HbGraph,
    /// Per thread, a cursor per stored foreign component (as in `changes`).
    cursors: Vec<Vec<Cursor<'a>>>,
}

impl ClockWalk<'_> {
    /// The vector clock of event `i`; `i` must not decrease from one call to the next.
    pub(crate) fn vc(&mut self, i: usize) -> VectorClock {
        let g = self.g;
        let (t, pos) = (g.ev_thread[i] as usize, g.pos_of(i));
        let foreign = g.changes[t]
            .iter()
            .zip(self.cursors[t].iter_mut())
            .map(|((c, _), cur)| (*c as usize, cur.value_at(pos)));
        clock_of(t, pos, foreign)
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
            changes.entry(c).or_default().record(pos, v);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_at_is_the_last_change_at_or_before_the_position() {
        let ch: Changes = [(2, 1), (5, 3)].into_iter().collect();
        let seen: Vec<u64> = [0, 1, 2, 4, 5, 100]
            .iter()
            .map(|&p| ch.value_at(p))
            .collect();
        assert_eq!(seen, vec![0, 0, 1, 1, 3, 3]);
    }

    #[test]
    fn set_own_inserts_in_component_order_or_overwrites() {
        let mut clock = vec![(1, 2)];
        set_own(&mut clock, 0, 5);
        assert_eq!(clock, vec![(0, 5), (1, 2)]);
        set_own(&mut clock, 1, 9);
        assert_eq!(clock, vec![(0, 5), (1, 9)]);
    }

    #[test]
    fn merge_takes_the_max_and_records_only_foreign_growth() {
        let mut changes: HashMap<u32, Changes> = HashMap::new();
        let out = merge(
            &[(0, 3), (2, 1), (3, 7)],
            &[(0, 9), (1, 5), (2, 4), (3, 2)],
            0,
            7,
            &mut changes,
        );
        assert_eq!(out, vec![(0, 9), (1, 5), (2, 4), (3, 7)]);
        // Component 0 is the thread's own: never recorded. Component 3 did not grow.
        let mut recorded: Vec<_> = changes.iter().map(|(c, ch)| (*c, ch.to_vec())).collect();
        recorded.sort();
        assert_eq!(recorded, vec![(1, vec![(7, 5)]), (2, vec![(7, 4)])]);

        // A second merge at the same position keeps one entry per position, with the max.
        merge(&out, &[(1, 6)], 0, 7, &mut changes);
        assert_eq!(changes[&1].to_vec(), vec![(7, 6)]);
    }
}
