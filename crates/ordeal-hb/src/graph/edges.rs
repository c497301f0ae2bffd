//! The cross-thread edge index and the edge queries. Program-order edges are implicit; `cross`
//! holds fork, connect and message edges, indexed both ways by edge numbers sorted by target
//! (`in_list`) and by source (`out_list`), searched by bisection: 4 bytes an edge, where
//! per-event offsets would cost 8 bytes an event, and most events have no cross edge.
//!
//! Invariant: the index is rebuilt whenever `cross` changes, so `in_edges(i)` and `out_edges(i)`
//! list exactly the edges into and out of event `i`, in `cross` order.

use super::{Edge, EdgeCounts, EdgeKind, HbGraph};

/// A cross-thread edge between event indices, in 16 bytes where `(u32, u32, EdgeKind)` takes
/// 24: the kind is a message's byte count, or one of the reserved values above any count (a
/// count comes from one call's return value, below 2^63).
#[derive(Debug, Clone, Copy)]
pub(super) struct Cross {
    pub(super) from: u32,
    pub(super) to: u32,
    kind: u64,
}

const FORK: u64 = u64::MAX;
const CONNECT: u64 = u64::MAX - 1;
const PROGRAM: u64 = u64::MAX - 2;

impl Cross {
    pub(super) fn new(from: u32, to: u32, kind: EdgeKind) -> Cross {
        let kind = match kind {
            EdgeKind::Fork => FORK,
            EdgeKind::Connect => CONNECT,
            EdgeKind::Program => PROGRAM,
            EdgeKind::Message { bytes } => bytes.min(PROGRAM - 1),
        };
        Cross { from, to, kind }
    }

    pub(super) fn kind(&self) -> EdgeKind {
        match self.kind {
            FORK => EdgeKind::Fork,
            CONNECT => EdgeKind::Connect,
            PROGRAM => EdgeKind::Program,
            bytes => EdgeKind::Message { bytes },
        }
    }
}

impl HbGraph {
    pub(super) fn index_edges(&mut self) {
        self.in_list = by_key(self.cross.iter().map(|e| e.to));
        self.out_list = by_key(self.cross.iter().map(|e| e.from));
    }

    pub(super) fn in_edges(&self, i: usize) -> &[u32] {
        keyed(&self.in_list, i as u32, |e| self.cross[e as usize].to)
    }

    pub(super) fn out_edges(&self, i: usize) -> &[u32] {
        keyed(&self.out_list, i as u32, |e| self.cross[e as usize].from)
    }

    /// Every edge: program-order edges thread by thread, then fork, connect and message edges
    /// in the order they were found.
    pub fn edges(&self) -> impl Iterator<Item = Edge> + '_ {
        let program = self.thread_events.iter().flat_map(move |evs| {
            evs.windows(2).map(move |w| Edge {
                from: self.table.evs[w[0] as usize].seq,
                to: self.table.evs[w[1] as usize].seq,
                kind: EdgeKind::Program,
            })
        });
        program.chain(self.cross.iter().map(move |&c| self.cross_edge(c)))
    }

    fn cross_edge(&self, c: Cross) -> Edge {
        Edge {
            from: self.table.evs[c.from as usize].seq,
            to: self.table.evs[c.to as usize].seq,
            kind: c.kind(),
        }
    }

    /// Direct predecessors of an event: its program-order predecessor first, then incoming
    /// cross-thread edges.
    pub fn preds(&self, seq: u64) -> Vec<Edge> {
        let Some(i) = self.index_of(seq) else {
            return Vec::new();
        };
        let mut v = Vec::new();
        let (t, pos) = (self.ev_thread[i] as usize, self.pos_of(i) as usize);
        if pos > 0 {
            let p = self.thread_events[t][pos - 1] as usize;
            v.push(Edge {
                from: self.table.evs[p].seq,
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
        let (t, pos) = (self.ev_thread[i] as usize, self.pos_of(i) as usize);
        if let Some(&nx) = self.thread_events[t].get(pos + 1) {
            v.push(Edge {
                from: seq,
                to: self.table.evs[nx as usize].seq,
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
        for e in &self.cross {
            match e.kind() {
                EdgeKind::Program => c.program += 1,
                EdgeKind::Fork => c.fork += 1,
                EdgeKind::Connect => c.connect += 1,
                EdgeKind::Message { .. } => c.message += 1,
            }
        }
        c
    }

    /// Edges removed to break cycles in inconsistent input (empty for a faithful trace).
    pub fn dropped_edges(&self) -> &[Edge] {
        &self.dropped
    }
}

/// Edge numbers sorted by key, in edge order for equal keys.
fn by_key(keys: impl Iterator<Item = u32>) -> Vec<u32> {
    let mut pairs: Vec<(u32, u32)> = keys.enumerate().map(|(e, k)| (k, e as u32)).collect();
    pairs.sort_unstable();
    // Collecting in place keeps the pairs' allocation, twice the list's size.
    let mut list: Vec<u32> = pairs.into_iter().map(|(_, e)| e).collect();
    list.shrink_to_fit();
    list
}

/// The run of `list` (sorted by `key`) whose key is `k`.
fn keyed(list: &[u32], k: u32, key: impl Fn(u32) -> u32) -> &[u32] {
    let lo = list.partition_point(|&e| key(e) < k);
    let len = list[lo..].partition_point(|&e| key(e) == k);
    &list[lo..lo + len]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cross_edge_keeps_its_kind_in_16_bytes() {
        assert_eq!(std::mem::size_of::<Cross>(), 16);
        for kind in [
            EdgeKind::Fork,
            EdgeKind::Connect,
            EdgeKind::Program,
            EdgeKind::Message { bytes: 1 },
            EdgeKind::Message {
                bytes: i64::MAX as u64,
            },
        ] {
            let c = Cross::new(3, 9, kind);
            assert_eq!((c.from, c.to, c.kind()), (3, 9, kind));
        }
    }

    #[test]
    fn edge_numbers_are_grouped_by_key_in_edge_order() {
        // Edges 0, 1, 2, 3 keyed on events 2, 0, 2, 1.
        let keys = [2u32, 0, 2, 1];
        let list = by_key(keys.into_iter());
        assert_eq!(list, vec![1, 3, 0, 2]);
        let runs: Vec<&[u32]> = (0..4)
            .map(|k| keyed(&list, k, |e| keys[e as usize]))
            .collect();
        assert_eq!(runs, vec![&[1][..], &[3], &[0, 2], &[]]);
    }
}
