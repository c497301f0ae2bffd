//! One direction of a connection: its bytes merged from both ends' records, and the
//! transfers that moved them.

use ordeal_proto::{Conversation, Framed, Side, MAX_BUFFER};
use std::collections::{BTreeMap, VecDeque};

/// Most captured bytes a direction holds while waiting for the other end to fill a gap
/// (a sender's record shorter than what it sent, the receiver not there yet).
const MAX_WAITING: usize = 1 << 20;

/// The end of the connection a record comes from, seen from one direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    Sender = 0,
    Receiver = 1,
}

/// One traced call that moved bytes `[start, end)` of the direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Transfer {
    pub start: u64,
    pub end: u64,
    pub seq: u64,
    /// The call's entry.
    pub ts: u64,
    /// The call's return.
    pub done: u64,
    pub pid: i32,
}

/// The direction whose bytes `side` sends.
pub(crate) struct Direction {
    pub side: Side,
    /// Offset up to which bytes went to the decoder.
    fed: u64,
    /// Captured bytes not fed yet, by offset (a gap before them may still be filled), and
    /// whether each starts a sender's transfer.
    waiting: BTreeMap<u64, (Vec<u8>, bool)>,
    waiting_bytes: usize,
    /// Per role: how far its transfers reached, and whether that end is traced at all.
    high: [u64; 2],
    pub known: [bool; 2],
    /// Recent transfers per role, oldest first.
    transfers: [VecDeque<Transfer>; 2],
}

impl Direction {
    pub fn new(side: Side) -> Direction {
        Direction {
            side,
            fed: 0,
            waiting: BTreeMap::new(),
            waiting_bytes: 0,
            high: [0; 2],
            known: [false; 2],
            transfers: Default::default(),
        }
    }

    /// A transfer by `role` and the bytes of it that were captured (its head).
    pub fn transfer(&mut self, role: Role, t: Transfer, head: &[u8]) {
        let r = role as usize;
        self.known[r] = true;
        self.high[r] = self.high[r].max(t.end);
        self.transfers[r].push_back(t);
        let head = &head[..head.len().min((t.end - t.start) as usize)];
        if head.is_empty() || t.start + head.len() as u64 <= self.fed {
            return;
        }
        // A receiver's read starts where the sender's write started only by chance; it is
        // a place to pick up decoding only when the sender's writes are not seen at all.
        let boundary = role == Role::Sender || !self.known[Role::Sender as usize];
        let slot = self
            .waiting
            .entry(t.start)
            .or_insert_with(|| (Vec::new(), boundary));
        if head.len() > slot.0.len() {
            self.waiting_bytes += head.len() - slot.0.len();
            slot.0 = head.to_vec();
            slot.1 |= boundary;
        }
    }

    /// Feeds `conv` every waiting byte it can take now (all of them when `end`: nothing
    /// more will come), returning the frames completed.
    pub fn pump(&mut self, conv: &mut Conversation, end: bool) -> Vec<Framed> {
        let mut out = Vec::new();
        while let Some((&at, _)) = self.waiting.first_key_value() {
            if at > self.fed && !end && !self.gap_is_final(at) {
                break;
            }
            let Some((bytes, boundary)) = self.waiting.remove(&at) else {
                break;
            };
            self.waiting_bytes -= bytes.len();
            let stop = at + bytes.len() as u64;
            if stop <= self.fed {
                continue;
            }
            out.extend(conv.feed(self.side, at, &bytes, boundary));
            self.fed = self.fed.max(stop);
        }
        // The end of the last transfers was not captured: what they moved is missed, so that
        // a message cut there is decoded from its head (a reply measured by its header) and
        // answers its request, instead of waiting for bytes that will never come.
        if end && self.moved() > self.fed {
            out.extend(conv.feed(self.side, self.moved(), &[], false));
            self.fed = self.moved();
        }
        self.prune();
        out
    }

    /// Whether the bytes between what was fed and `at` can no longer come: every traced end
    /// has moved past them (an end moves bytes in order and records a head of each
    /// transfer), or too much waits already.
    fn gap_is_final(&self, at: u64) -> bool {
        self.waiting_bytes > MAX_WAITING || (0..2).all(|r| self.known[r] && self.high[r] >= at)
    }

    /// The transfer of `role` that moved byte `offset`.
    pub fn find(&self, role: Role, offset: u64) -> Option<Transfer> {
        let q = &self.transfers[role as usize];
        // Transfers of a role are in offset order.
        let i = q.partition_point(|t| t.end <= offset);
        q.get(i).filter(|t| t.start <= offset).copied()
    }

    /// Bytes the direction carried, as far as either end saw.
    pub fn moved(&self) -> u64 {
        self.high[0].max(self.high[1])
    }

    /// Whether `role` has moved byte `offset` already.
    pub fn reached(&self, role: Role, offset: u64) -> bool {
        self.high[role as usize] > offset
    }

    /// Forgets transfers no frame still to come can start in (the decoder holds at most
    /// [`MAX_BUFFER`] bytes before `fed`).
    fn prune(&mut self) {
        let keep_from = self.fed.saturating_sub(MAX_BUFFER as u64 + 1);
        for q in &mut self.transfers {
            while q.front().is_some_and(|t| t.end < keep_from) && q.len() > 1 {
                q.pop_front();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(start: u64, end: u64, seq: u64) -> Transfer {
        Transfer {
            start,
            end,
            seq,
            ts: seq * 10,
            done: seq * 10 + 1,
            pid: 1,
        }
    }

    fn texts(frames: &[Framed]) -> Vec<&str> {
        frames.iter().map(|f| f.message.text.as_str()).collect()
    }

    #[test]
    fn a_write_longer_than_its_capture_is_completed_by_the_reads() {
        let mut conv = Conversation::new(ordeal_proto::by_name("demo-kv"));
        let mut d = Direction::new(Side::Client);
        // The client wrote 27 bytes and recorded 8; the server read 13 + 14, all recorded.
        let stream = b"SET k1 v1\nSET k2 v2\nGET k1\n";
        d.transfer(Role::Sender, t(0, 27, 1), &stream[..8]);
        assert!(d.pump(&mut conv, false).is_empty());
        d.transfer(Role::Receiver, t(0, 13, 2), &stream[..13]);
        d.transfer(Role::Receiver, t(13, 27, 3), &stream[13..27]);
        let frames = d.pump(&mut conv, false);
        assert_eq!(texts(&frames), ["SET k1 v1", "SET k2 v2", "GET k1"]);
        assert_eq!(d.find(Role::Sender, 10).map(|t| t.seq), Some(1));
        assert_eq!(d.find(Role::Receiver, 26).map(|t| t.seq), Some(3));
        assert_eq!(d.find(Role::Receiver, 27), None);
    }

    #[test]
    fn a_gap_nobody_can_fill_is_skipped_once_both_ends_moved_past_it() {
        let mut conv = Conversation::new(ordeal_proto::by_name("demo-kv"));
        let mut d = Direction::new(Side::Client);
        let stream = b"SET k1 v1\nSET k2 v2\n";
        d.transfer(Role::Sender, t(0, 10, 1), &stream[..4]);
        d.transfer(Role::Sender, t(10, 20, 2), &stream[10..20]);
        assert!(
            d.pump(&mut conv, false).is_empty(),
            "the receiver may fill it"
        );
        d.transfer(Role::Receiver, t(0, 20, 3), &stream[..4]);
        assert_eq!(texts(&d.pump(&mut conv, false)), ["SET k2 v2"]);
    }
}
