//! Byte-range matching of one stream direction while the trace streams by: the edges
//! [`crate::ranges::match_ranges`] finds over whole lists, found as sends and receives come.
//!
//! A send's bytes wait, with the send, until receives take them; a receive recorded before the
//! send of its bytes waits for it the same way. Only bytes the other side will take wait: the
//! first pass knows every range each socket sent and received ([`Coverage`]), so a send's
//! bytes that no receive will take are unmatched at once, and a receive waits only for bytes
//! some send covers. What waits is what is in flight.
//!
//! Invariant: waiting pieces of one side are disjoint and each lies within the other side's
//! coverage; a byte waits on at most one side.

use std::collections::BTreeMap;

/// Disjoint byte ranges, merged where they touch: every range one side of a socket moved.
#[derive(Debug, Default)]
pub(crate) struct Coverage(Vec<(u64, u64)>);

impl Coverage {
    /// Adds `[a, b)`; false (and nothing added) when it overlaps a range already in.
    pub(crate) fn insert(&mut self, a: u64, b: u64) -> bool {
        if a >= b {
            return true;
        }
        let v = &mut self.0;
        // Sends and receives usually come in stream order: extend or append at the end.
        if let Some(last) = v.last_mut() {
            if a == last.1 {
                last.1 = b;
                return true;
            }
            if a > last.1 {
                v.push((a, b));
                return true;
            }
        } else {
            v.push((a, b));
            return true;
        }
        let k = v.partition_point(|r| r.1 <= a);
        if v.get(k).is_some_and(|r| r.0 < b) {
            return false;
        }
        let joins_prev = k > 0 && v[k - 1].1 == a;
        let joins_next = v.get(k).is_some_and(|r| r.0 == b);
        match (joins_prev, joins_next) {
            (true, true) => {
                v[k - 1].1 = v[k].1;
                v.remove(k);
            }
            (true, false) => v[k - 1].1 = b,
            (false, true) => v[k].0 = a,
            (false, false) => v.insert(k, (a, b)),
        }
        true
    }

    /// The parts of `[a, b)` covered, in order.
    pub(crate) fn within(&self, a: u64, b: u64) -> impl Iterator<Item = (u64, u64)> + '_ {
        let k = self.0.partition_point(|r| r.1 <= a);
        self.0[k..]
            .iter()
            .take_while(move |r| r.0 < b)
            .map(move |r| (r.0.max(a), r.1.min(b)))
    }
}

/// Bytes of one side waiting for the other side: `[start, end)` pieces, each with its event.
#[derive(Debug)]
pub(crate) struct Waiting<T>(BTreeMap<u64, (u64, T)>);

impl<T> Default for Waiting<T> {
    fn default() -> Self {
        Waiting(BTreeMap::new())
    }
}

impl<T: Clone> Waiting<T> {
    /// Takes out the parts of waiting pieces within `[a, b)`: `(start, end, event)` in order;
    /// what lies outside `[a, b)` keeps waiting.
    pub(crate) fn take(&mut self, a: u64, b: u64, out: &mut Vec<(u64, u64, T)>) {
        let first = out.len();
        // From the last piece starting before `b` back, while pieces end after `a`; what is
        // put back lies outside `[a, b)` and stops the walk.
        while let Some((&s, &(end, _))) = self.0.range(..b).next_back() {
            if end <= a {
                break;
            }
            let Some((end, ev)) = self.0.remove(&s) else {
                break;
            };
            if s < a {
                self.0.insert(s, (a, ev.clone()));
            }
            if end > b {
                self.0.insert(b, (end, ev.clone()));
            }
            out.push((s.max(a), end.min(b), ev));
        }
        out[first..].reverse();
        debug_assert!(out[first..].windows(2).all(|w| w[0].1 <= w[1].0));
    }

    pub(crate) fn add(&mut self, a: u64, b: u64, ev: T) {
        if a < b {
            self.0.insert(a, (b, ev));
        }
    }

    /// Everything still waiting.
    pub(crate) fn drain(&mut self) -> impl Iterator<Item = (u64, u64, T)> + '_ {
        std::mem::take(&mut self.0)
            .into_iter()
            .map(|(a, (b, ev))| (a, b, ev))
    }
}

/// The parts of `[a, b)` not in `taken` (sorted, disjoint, within `[a, b)`).
pub(crate) fn gaps(a: u64, b: u64, taken: &[(u64, u64)]) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    let mut at = a;
    for &(x, y) in taken {
        if x > at {
            out.push((at, x));
        }
        at = at.max(y);
    }
    if at < b {
        out.push((at, b));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coverage_merges_touching_ranges_and_refuses_overlaps() {
        let mut c = Coverage::default();
        for (a, b) in [(0, 5), (5, 9), (20, 30), (12, 15), (9, 12), (40, 40)] {
            assert!(c.insert(a, b), "[{a}, {b})");
        }
        assert_eq!(c.0, vec![(0, 15), (20, 30)]);
        assert!(!c.insert(14, 16));
        assert!(!c.insert(25, 26));
        assert!(!c.insert(0, 100));
        assert!(c.insert(15, 20));
        assert_eq!(c.0, vec![(0, 30)]);
        let mut d = Coverage::default();
        for (a, b) in [(10, 20), (30, 40), (0, 5)] {
            assert!(d.insert(a, b));
        }
        assert_eq!(
            d.within(3, 35).collect::<Vec<_>>(),
            vec![(3, 5), (10, 20), (30, 35)]
        );
        assert_eq!(d.within(20, 30).count(), 0);
    }

    #[test]
    fn waiting_pieces_are_split_where_they_are_taken() {
        let mut w: Waiting<char> = Waiting::default();
        w.add(0, 10, 'a');
        w.add(10, 15, 'b');
        w.add(20, 30, 'c');
        let mut out = Vec::new();
        w.take(5, 22, &mut out);
        assert_eq!(out, vec![(5, 10, 'a'), (10, 15, 'b'), (20, 22, 'c')]);
        let rest: Vec<_> = w.drain().collect();
        assert_eq!(rest, vec![(0, 5, 'a'), (22, 30, 'c')]);
    }

    #[test]
    fn gaps_are_what_is_not_taken() {
        assert_eq!(
            gaps(0, 10, &[(2, 4), (4, 6), (8, 9)]),
            vec![(0, 2), (6, 8), (9, 10)]
        );
        assert_eq!(gaps(0, 10, &[]), vec![(0, 10)]);
        assert_eq!(gaps(0, 10, &[(0, 10)]), vec![]);
    }
}
