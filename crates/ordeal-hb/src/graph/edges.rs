//! The cross-thread edge index and the edge queries. Program-order edges are implicit; `cross`
//! holds fork, connect and message edges, indexed both ways in compressed form
//! (`in_start`/`in_list`, `out_start`/`out_list`).
//!
//! Invariant: the index is rebuilt whenever `cross` changes, so `in_edges(i)` and `out_edges(i)`
//! list exactly the edges into and out of event `i`, in `cross` order.

use super::{Edge, EdgeCounts, EdgeKind, HbGraph};

impl HbGraph {
    pub(super) fn index_edges(&mut self) {
        let n = self.table.len();
        let (in_start, in_list) = csr(n, self.cross.iter().map(|e| e.1));
        let (out_start, out_list) = csr(n, self.cross.iter().map(|e| e.0));
        self.in_start = in_start;
        self.in_list = in_list;
        self.out_start = out_start;
        self.out_list = out_list;
    }

    pub(super) fn in_edges(&self, i: usize) -> &[u32] {
        &self.in_list[self.in_start[i] as usize..self.in_start[i + 1] as usize]
    }

    pub(super) fn out_edges(&self, i: usize) -> &[u32] {
        &self.out_list[self.out_start[i] as usize..self.out_start[i + 1] as usize]
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

    fn cross_edge(&self, (f, t, kind): (u32, u32, EdgeKind)) -> Edge {
        Edge {
            from: self.table.evs[f as usize].seq,
            to: self.table.evs[t as usize].seq,
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
        let (t, pos) = (self.ev_thread[i] as usize, self.ev_pos[i] as usize);
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

    /// Edges removed to break cycles in inconsistent input (empty for a faithful trace).
    pub fn dropped_edges(&self) -> &[Edge] {
        &self.dropped
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csr_groups_edge_numbers_by_key() {
        // Edges 0, 1, 2 keyed on events 2, 0, 2 of 3.
        let (start, list) = csr(3, [2u32, 0, 2].into_iter());
        assert_eq!(start, vec![0, 1, 1, 3]);
        assert_eq!(list, vec![1, 0, 2]);
    }
}
