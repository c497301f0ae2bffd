//! Byte-range matching of one stream direction: which receive consumed which sent bytes.

/// One call's share of a byte stream: it moved bytes `[off, off + len)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub off: u64,
    pub len: u64,
}

impl Range {
    pub fn new(off: u64, len: u64) -> Self {
        Self { off, len }
    }
    fn end(self) -> u64 {
        self.off.saturating_add(self.len)
    }
}

/// One send → receive overlap: `sends[send]` and `recvs[recv]` share `bytes` stream bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Overlap {
    pub send: usize,
    pub recv: usize,
    pub bytes: u64,
}

/// Matches the sends of one stream direction against the receives of the same direction.
///
/// Every pair of a send and a receive whose byte ranges intersect yields one [`Overlap`]
/// labelled with the size of the intersection, in stream order. Inputs need not be sorted;
/// indices in the output refer to the input slices. Empty ranges never match. Ranges on each
/// side are expected not to overlap each other (a stream moves each byte once per direction).
pub fn match_ranges(sends: &[Range], recvs: &[Range]) -> Vec<Overlap> {
    let order = |v: &[Range]| {
        let mut idx: Vec<usize> = (0..v.len()).filter(|&i| v[i].len > 0).collect();
        idx.sort_by_key(|&i| (v[i].off, i));
        idx
    };
    let (si, ri) = (order(sends), order(recvs));
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::new();
    while i < si.len() && j < ri.len() {
        let (s, r) = (sends[si[i]], recvs[ri[j]]);
        let lo = s.off.max(r.off);
        let hi = s.end().min(r.end());
        if hi > lo {
            out.push(Overlap {
                send: si[i],
                recv: ri[j],
                bytes: hi - lo,
            });
        }
        if s.end() <= r.end() {
            i += 1;
        } else {
            j += 1;
        }
    }
    out
}

/// Bytes of each range not covered by any overlap (indexed like `ranges`).
pub fn unmatched(ranges: &[Range], overlaps: impl Iterator<Item = (usize, u64)>) -> Vec<u64> {
    let mut left: Vec<u64> = ranges.iter().map(|r| r.len).collect();
    for (i, b) in overlaps {
        left[i] = left[i].saturating_sub(b);
    }
    left
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(off: u64, len: u64) -> Range {
        Range::new(off, len)
    }
    fn o(send: usize, recv: usize, bytes: u64) -> Overlap {
        Overlap { send, recv, bytes }
    }

    #[test]
    fn two_sends_three_receives() {
        // sends [0,10) [10,25); receives [0,4) [4,20) [20,25)
        let got = match_ranges(&[r(0, 10), r(10, 15)], &[r(0, 4), r(4, 16), r(20, 5)]);
        assert_eq!(got, vec![o(0, 0, 4), o(0, 1, 6), o(1, 1, 10), o(1, 2, 5)]);
    }

    #[test]
    fn one_receive_drains_many_sends() {
        let got = match_ranges(&[r(0, 3), r(3, 3), r(6, 3)], &[r(0, 9)]);
        assert_eq!(got, vec![o(0, 0, 3), o(1, 0, 3), o(2, 0, 3)]);
    }

    #[test]
    fn unsorted_input_and_unread_tail() {
        // Receives only got the first 7 of 12 bytes; input is out of order.
        let sends = [r(5, 7), r(0, 5)];
        let recvs = [r(2, 5), r(0, 2)];
        let got = match_ranges(&sends, &recvs);
        assert_eq!(got, vec![o(1, 1, 2), o(1, 0, 3), o(0, 0, 2)]);
        let left = unmatched(&sends, got.iter().map(|x| (x.send, x.bytes)));
        assert_eq!(left, vec![5, 0]);
    }

    #[test]
    fn empty_ranges_and_gaps_never_match() {
        let got = match_ranges(&[r(0, 0), r(0, 4), r(10, 4)], &[r(4, 6), r(0, 0)]);
        assert_eq!(got, vec![]);
        assert_eq!(match_ranges(&[], &[r(0, 1)]), vec![]);
    }

    #[test]
    fn identical_ranges_match_one_to_one() {
        let got = match_ranges(&[r(0, 5), r(5, 5)], &[r(0, 5), r(5, 5)]);
        assert_eq!(got, vec![o(0, 0, 5), o(1, 1, 5)]);
    }
}
