//! The change list of one foreign clock component in one thread, compact: `(position, value)`
//! pairs stored as deltas (a busy server's clients each learn every other client's component
//! at each receive, so these lists hold ten entries an event and more). A pair of small deltas
//! takes one byte, others a marker and two varints, where plain pairs take 8 bytes; an
//! absolute mark every [`BLOCK`] entries serves the binary search.
//!
//! Invariant: entries increase in position and in value; `marks[b]` is entry `b * BLOCK` and the
//! byte offset just past its encoding; the last entry is also kept whole in `last`, where merges
//! at the same position raise it, and is encoded only once the next entry comes.

/// Entries decoded at most by a lookup, after the binary search over the marks.
const BLOCK: usize = 32;

#[derive(Debug, Clone, Default)]
pub(super) struct Changes {
    bytes: Vec<u8>,
    /// `(position, value, offset)` of every `BLOCK`-th encoded entry.
    marks: Vec<(u32, u32, u32)>,
    /// Entries encoded in `bytes`.
    encoded: u32,
    /// The newest entry, not encoded yet.
    last: Option<(u32, u32)>,
    /// The newest encoded entry, the base of the next delta.
    prev: (u32, u32),
}

impl Changes {
    /// Records that the value became `value` at `pos`: a new entry, or a raise of the last one
    /// when it is at the same position.
    pub(super) fn record(&mut self, pos: u32, value: u32) {
        match &mut self.last {
            Some(last) if last.0 == pos => last.1 = last.1.max(value),
            _ => {
                if let Some(done) = self.last.replace((pos, value)) {
                    self.encode(done);
                }
            }
        }
    }

    fn encode(&mut self, (pos, value): (u32, u32)) {
        write_delta(&mut self.bytes, pos - self.prev.0, value - self.prev.1);
        if (self.encoded as usize).is_multiple_of(BLOCK) {
            self.marks.push((pos, value, self.bytes.len() as u32));
        }
        self.encoded += 1;
        self.prev = (pos, value);
    }

    /// Number of entries.
    pub(super) fn len(&self) -> usize {
        self.encoded as usize + usize::from(self.last.is_some())
    }

    /// Frees the spare capacity left by growing.
    pub(super) fn shrink_to_fit(&mut self) {
        self.bytes.shrink_to_fit();
        self.marks.shrink_to_fit();
    }

    /// The value at `pos`: that of the last entry at or before it, 0 when there is none.
    pub(super) fn value_at(&self, pos: u32) -> u64 {
        match self.last {
            Some((p, v)) if p <= pos => return v as u64,
            None => return 0,
            _ => {}
        }
        let b = self.marks.partition_point(|m| m.0 <= pos);
        if b == 0 {
            return 0;
        }
        let (mut p, mut v, at) = self.marks[b - 1];
        let mut at = at as usize;
        for _ in 1..BLOCK {
            if at >= self.bytes.len() {
                break;
            }
            let (dp, dv) = read_delta(&self.bytes, &mut at);
            if p + dp > pos {
                break;
            }
            (p, v) = (p + dp, v + dv);
        }
        v as u64
    }

    /// A reader for increasing positions, which decodes each entry once.
    pub(super) fn cursor(&self) -> Cursor<'_> {
        Cursor {
            changes: self,
            at: 0,
            prev: (0, 0),
            value: 0,
            took_last: false,
        }
    }

    /// Every entry, in order.
    #[cfg(test)]
    pub(super) fn to_vec(&self) -> Vec<(u32, u32)> {
        let (mut p, mut v, mut at) = (0, 0, 0);
        let mut out = Vec::new();
        while at < self.bytes.len() {
            let (dp, dv) = read_delta(&self.bytes, &mut at);
            (p, v) = (p + dp, v + dv);
            out.push((p, v));
        }
        out.extend(self.last);
        out
    }
}

/// Reads a [`Changes`] at increasing positions (hb.jsonl asks each event's clock in `seq` order,
/// hence each thread's positions in increasing order).
pub(super) struct Cursor<'a> {
    changes: &'a Changes,
    /// Offset of the next encoded entry.
    at: usize,
    /// The last encoded entry read, the base of the next delta.
    prev: (u32, u32),
    value: u32,
    took_last: bool,
}

impl Cursor<'_> {
    /// The value at `pos`, which is at least the position asked before.
    pub(super) fn value_at(&mut self, pos: u32) -> u64 {
        let bytes = &self.changes.bytes;
        while self.at < bytes.len() {
            let mut at = self.at;
            let (dp, dv) = read_delta(bytes, &mut at);
            let (p, v) = (self.prev.0 + dp, self.prev.1 + dv);
            if p > pos {
                return self.value as u64;
            }
            (self.at, self.prev, self.value) = (at, (p, v), v);
        }
        match self.changes.last {
            Some((p, v)) if !self.took_last && p <= pos => {
                self.value = v;
                self.took_last = true;
            }
            _ => {}
        }
        self.value as u64
    }
}

impl FromIterator<(u32, u32)> for Changes {
    fn from_iter<I: IntoIterator<Item = (u32, u32)>>(iter: I) -> Self {
        let mut c = Changes::default();
        for (p, v) in iter {
            c.record(p, v);
        }
        c
    }
}

/// Marks a delta pair written as two varints; a byte below it holds `dp - 1` (3 bits) and `dv`
/// (4 bits).
const LONG: u8 = 0x80;

fn write_delta(out: &mut Vec<u8>, dp: u32, dv: u32) {
    if (1..=8).contains(&dp) && dv < 16 {
        out.push(((dp - 1) << 4 | dv) as u8);
    } else {
        out.push(LONG);
        write_varint(out, dp);
        write_varint(out, dv);
    }
}

fn read_delta(bytes: &[u8], at: &mut usize) -> (u32, u32) {
    let b = bytes[*at];
    *at += 1;
    if b == LONG {
        let dp = read_varint(bytes, at);
        (dp, read_varint(bytes, at))
    } else {
        (u32::from(b >> 4) + 1, u32::from(b & 15))
    }
}

fn write_varint(out: &mut Vec<u8>, mut x: u32) {
    while x >= 0x80 {
        out.push(x as u8 | 0x80);
        x >>= 7;
    }
    out.push(x as u8);
}

fn read_varint(bytes: &[u8], at: &mut usize) -> u32 {
    let mut x = 0u32;
    let mut shift = 0;
    loop {
        let b = bytes[*at];
        *at += 1;
        x |= u32::from(b & 0x7f) << shift;
        if b < 0x80 {
            return x;
        }
        shift += 7;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip() {
        let mut bytes = Vec::new();
        let xs = [0, 1, 127, 128, 300, 16_383, 16_384, u32::MAX];
        for x in xs {
            write_varint(&mut bytes, x);
        }
        assert_eq!(bytes.len(), 1 + 1 + 1 + 2 + 2 + 2 + 3 + 5);
        let mut at = 0;
        let back: Vec<u32> = xs.iter().map(|_| read_varint(&bytes, &mut at)).collect();
        assert_eq!(back, xs);
    }

    #[test]
    fn small_delta_pairs_take_one_byte() {
        let mut bytes = Vec::new();
        let pairs = [(1, 0), (8, 15), (9, 0), (0, 3), (2, 16), (300, 70_000)];
        for (dp, dv) in pairs {
            write_delta(&mut bytes, dp, dv);
        }
        assert_eq!(bytes.len(), 1 + 1 + 3 + 3 + 3 + 1 + 2 + 3);
        let mut at = 0;
        let back: Vec<(u32, u32)> = pairs.iter().map(|_| read_delta(&bytes, &mut at)).collect();
        assert_eq!(back, pairs);
        assert_eq!(at, bytes.len());
    }

    #[test]
    fn a_raise_at_the_same_position_keeps_one_entry_with_the_max() {
        let mut c = Changes::default();
        c.record(7, 5);
        c.record(7, 3);
        c.record(7, 6);
        c.record(9, 8);
        assert_eq!(c.to_vec(), vec![(7, 6), (9, 8)]);
        assert_eq!(c.len(), 2);
    }

    #[test]
    fn value_at_matches_a_plain_search_across_blocks() {
        // 100 entries (several blocks), positions 3k + 2, values k² + 1: short deltas, then
        // long ones.
        let pairs: Vec<(u32, u32)> = (0..100).map(|k| (3 * k + 2, k * k + 1)).collect();
        let c: Changes = pairs.iter().copied().collect();
        assert_eq!(c.to_vec(), pairs);
        assert_eq!(c.len(), 100);
        for pos in 0..320 {
            let k = pairs.partition_point(|&(p, _)| p <= pos);
            let want = if k == 0 { 0 } else { pairs[k - 1].1 as u64 };
            assert_eq!(c.value_at(pos), want, "at {pos}");
        }
        assert_eq!(Changes::default().value_at(5), 0);
        let mut cursor = c.cursor();
        for pos in (0..320).step_by(7) {
            assert_eq!(cursor.value_at(pos), c.value_at(pos), "cursor at {pos}");
        }
    }
}
