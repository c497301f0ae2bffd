//! Message edges on a paired stream: one direction's sends matched to the other end's receives
//! by byte range.
//!
//! Invariant: each edge carries the number of bytes its send and receive share; bytes sent that
//! no traced receive consumed count as unmatched traffic.

use super::compact::EventTable;
use super::edges::Cross;
use super::endpoints::{Endpoint, Transfers};
use super::{EdgeKind, HbGraph};
use crate::ranges::{match_ranges, Range};

impl HbGraph {
    /// Matches the sends `a` of one end against the receives `bt` of the other end `b` (one
    /// direction of a paired stream).
    pub(super) fn stream_direction(&mut self, a: &Transfers, b: &Endpoint, bt: &Transfers) {
        let sends = ranges(&self.table, &a.sends);
        let recvs = ranges(&self.table, &bt.recvs);
        let overlaps = match_ranges(&sends, &recvs);
        let mut matched = vec![0u64; sends.len()];
        let mut last_counted: Option<usize> = None;
        for o in &overlaps {
            let (s, r) = (a.sends[o.send], bt.recvs[o.recv]);
            self.cross
                .push(Cross::new(s, r, EdgeKind::Message { bytes: o.bytes }));
            matched[o.send] += o.bytes;
            let key = (
                self.table.get(s as usize).node().to_string(),
                self.table.get(r as usize).node().to_string(),
            );
            let t = self.traffic.entry(key).or_default();
            t.bytes += o.bytes;
            if last_counted != Some(o.send) {
                t.messages += 1;
                last_counted = Some(o.send);
            }
        }
        for (k, &s) in a.sends.iter().enumerate() {
            let left = sends[k].len.saturating_sub(matched[k]);
            if left > 0 {
                let key = (
                    self.table.get(s as usize).node().to_string(),
                    b.node.clone(),
                );
                self.traffic.entry(key).or_default().unmatched_bytes += left;
            }
        }
    }
}

/// Byte ranges of some data events: `off` when recorded, else the running total.
fn ranges(events: &EventTable, idx: &[u32]) -> Vec<Range> {
    let mut next = 0u64;
    idx.iter()
        .map(|&i| {
            let e = events.get(i as usize);
            let off = e.off().unwrap_or(next);
            next = off + e.moved();
            Range::new(off, e.moved())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ordeal_events::Event;

    #[test]
    fn ranges_use_the_recorded_offset_else_the_running_total() {
        let data = |ret: i64, off: Option<u64>| Event {
            ret: Some(ret),
            off,
            ..Default::default()
        };
        let mut events = EventTable::default();
        for e in [
            data(4, None),
            data(99, None),
            data(6, Some(10)),
            data(3, None),
        ] {
            events.push(&e);
        }
        assert_eq!(
            ranges(&events, &[0, 2, 3]),
            vec![Range::new(0, 4), Range::new(10, 6), Range::new(16, 3)]
        );
    }
}
