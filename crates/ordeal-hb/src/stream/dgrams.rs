//! UDP datagram matching while the trace streams by, with the graph's rule (each receive, in
//! `seq` order, takes the oldest unused send of the same size whose addresses fit and that
//! started before the receive ended) and its results.
//!
//! A send that started before a receive ended may be recorded after it. The first pass notes
//! such sends ([`DgramPlan`]: a send is *late* when an earlier-recorded receive ended after it
//! started); a receive waits until every late send that could fit it has been seen, and
//! receives are decided in `seq` order. A send is kept only while a receive to come could take
//! it: the first pass also knows the last receive of each (destination port, size).
//!
//! Invariant: kept sends are unused, listed per address-port pair in `seq` order; the waiting
//! receives are in `seq` order.

use super::clocks::Src;
use super::Info;
use crate::addr::{addr_compatible, norm_addr, split_host_port};
use ordeal_events::{Event, Proto};
use std::collections::{BTreeMap, HashMap, VecDeque};

/// A datagram send or receive: its addresses (normalised, empty when unknown), its size, and
/// its source and destination ports when both are known.
#[derive(Debug, Clone)]
pub(crate) struct Dgram {
    pub(crate) send: bool,
    pub(crate) src: String,
    pub(crate) dst: String,
    pub(crate) size: u64,
    key: Option<(u16, u16)>,
}

impl Dgram {
    /// The datagram an event sent or received, if it is a UDP transfer that moved bytes.
    pub(crate) fn of(e: &Event) -> Option<Dgram> {
        let s = e.sock.as_ref()?;
        if s.proto != Proto::Udp || e.moved() == 0 {
            return None;
        }
        let (send, src, dst) = if e.is_send() {
            (
                true,
                s.local.as_deref(),
                e.addr.as_deref().or(s.remote.as_deref()),
            )
        } else if e.is_recv() {
            (
                false,
                e.addr.as_deref().or(s.remote.as_deref()),
                s.local.as_deref(),
            )
        } else {
            return None;
        };
        let src = src.map(norm_addr).unwrap_or_default();
        let dst = dst.map(norm_addr).unwrap_or_default();
        let key = split_host_port(&src)
            .zip(split_host_port(&dst))
            .map(|((_, a), (_, b))| (a, b));
        Some(Dgram {
            send,
            src,
            dst,
            size: e.moved(),
            key,
        })
    }

    /// Which receives could take this send, or which sends this receive could take:
    /// destination port and size.
    fn bucket(&self) -> Option<(u16, u64)> {
        split_host_port(&self.dst).map(|(_, port)| (port, self.size))
    }
}

/// What the first pass learns for datagram matching.
#[derive(Debug, Default)]
pub(crate) struct DgramPlan {
    /// Latest end of a receive so far.
    recv_end: Option<u64>,
    /// `(seq, ts)` of the sends that started before an earlier-recorded receive ended.
    late: Vec<(u64, u64)>,
    /// `seq` of the last receive of each bucket ([`Dgram::bucket`]).
    last_recv: HashMap<(u16, u64), u64>,
}

impl DgramPlan {
    pub(crate) fn observe(&mut self, d: &Dgram, e: &Event) {
        if d.send {
            // A send without both ports is never matched: it cannot make a receive wait.
            if d.key.is_some() && self.recv_end.is_some_and(|end| e.ts <= end) {
                self.late.push((e.seq, e.ts));
            }
        } else {
            let end = e.ts.saturating_add(e.dur);
            self.recv_end = Some(self.recv_end.map_or(end, |m| m.max(end)));
            if let Some(b) = d.bucket() {
                self.last_recv.insert(b, e.seq);
            }
        }
    }
}

/// An unused send, kept for a receive to come.
pub(crate) struct Kept {
    d: Dgram,
    ts: u64,
    pub(crate) info: Info,
    pub(crate) source: Src,
}

/// A receive not decided yet.
pub(crate) struct Undecided {
    pub(crate) d: Dgram,
    seq: u64,
    end: u64,
    /// The `seq` of the last late send that could fit it: decided once that is seen.
    until: u64,
    /// The receive's event, waiting in the clocks.
    pub(crate) open: u32,
    pub(crate) info: Info,
}

/// A datagram counted as unmatched: the send or receive, and its node.
pub(crate) struct Unmatched {
    pub(crate) d: Dgram,
    pub(crate) node: u32,
}

#[derive(Default)]
pub(crate) struct Dgrams {
    plan: DgramPlan,
    /// Late sends before this index have a `seq` at or below the current event's.
    late_from: usize,
    kept: BTreeMap<(u16, u16), Vec<Kept>>,
    undecided: VecDeque<Undecided>,
}

impl Dgrams {
    pub(crate) fn new(plan: DgramPlan) -> Dgrams {
        Dgrams {
            plan,
            ..Default::default()
        }
    }

    /// A send: kept while a receive could take it, else unmatched at once.
    pub(crate) fn send(
        &mut self,
        d: Dgram,
        e: &Event,
        info: Info,
        source: Src,
    ) -> Option<Unmatched> {
        let from = self.undecided.front().map_or(e.seq, |u| u.seq);
        let wanted = d
            .bucket()
            .and_then(|b| self.plan.last_recv.get(&b))
            .is_some_and(|&last| last >= from);
        match d.key {
            Some(k) if wanted => {
                self.kept.entry(k).or_default().push(Kept {
                    d,
                    ts: e.ts,
                    info,
                    source,
                });
                None
            }
            _ => Some(Unmatched { d, node: info.node }),
        }
    }

    /// A receive, waiting in the clocks as `open`: decided by [`Dgrams::decide`].
    pub(crate) fn recv(&mut self, d: Dgram, e: &Event, info: Info, open: u32) {
        while self
            .plan
            .late
            .get(self.late_from)
            .is_some_and(|l| l.0 <= e.seq)
        {
            self.late_from += 1;
        }
        let end = e.ts.saturating_add(e.dur);
        let until = self.plan.late[self.late_from..]
            .iter()
            .filter(|l| l.1 <= end)
            .map(|l| l.0)
            .max()
            .unwrap_or(0);
        self.undecided.push_back(Undecided {
            d,
            seq: e.seq,
            end,
            until,
            open,
            info,
        });
    }

    /// Decides the oldest waiting receive once every send that could fit it has been seen
    /// (`seen`: the `seq` of the last event taken in; `None` at the end of the trace). Returns
    /// it with the send it takes, and the kept sends no receive can take any more.
    pub(crate) fn decide(
        &mut self,
        seen: Option<u64>,
    ) -> Option<(Undecided, Option<Kept>, Vec<Kept>)> {
        let r = self.undecided.front()?;
        if seen.is_some_and(|s| r.until > s) {
            return None;
        }
        let r = self.undecided.pop_front()?;
        let taken = self.take(&r);
        let mut expired = Vec::new();
        if let Some(b) = r.d.bucket() {
            if self.plan.last_recv.get(&b) == Some(&r.seq) {
                for list in self.kept.values_mut() {
                    let (gone, keep): (Vec<Kept>, Vec<Kept>) = std::mem::take(list)
                        .into_iter()
                        .partition(|k| k.d.bucket() == Some(b));
                    *list = keep;
                    expired.extend(gone);
                }
                self.kept.retain(|_, list| !list.is_empty());
            }
        }
        Some((r, taken, expired))
    }

    fn take(&mut self, r: &Undecided) -> Option<Kept> {
        let fits = |s: &Kept| s.d.size == r.d.size && s.ts <= r.end;
        let at = match r.d.key {
            Some(k) => {
                let list = self.kept.get(&k)?;
                let i = list.iter().position(|s| {
                    fits(s)
                        && addr_compatible(&s.d.src, &r.d.src)
                        && addr_compatible(&s.d.dst, &r.d.dst)
                })?;
                (k, i)
            }
            // recv(2)/recvfrom with no address buffer: the source is unknown, so take the
            // oldest fitting datagram sent to this socket's address, from anyone.
            None => {
                let (_, dport) = split_host_port(&r.d.dst)?;
                self.kept
                    .iter()
                    .filter(|((_, d), _)| *d == dport)
                    .flat_map(|(&k, list)| list.iter().enumerate().map(move |(i, s)| (k, i, s)))
                    .filter(|(_, _, s)| fits(s) && addr_compatible(&s.d.dst, &r.d.dst))
                    .min_by_key(|(_, _, s)| s.info.idx)
                    .map(|(k, i, _)| (k, i))?
            }
        };
        let list = self.kept.get_mut(&at.0)?;
        let s = list.remove(at.1);
        if list.is_empty() {
            self.kept.remove(&at.0);
        }
        Some(s)
    }

    /// The sends still kept once every receive is decided.
    pub(crate) fn leftovers(&mut self) -> Vec<Kept> {
        std::mem::take(&mut self.kept)
            .into_values()
            .flatten()
            .collect()
    }
}

impl Kept {
    pub(crate) fn into_dgram(self) -> Dgram {
        self.d
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ordeal_events::{Class, Sock};

    fn udp(seq: u64, ts: u64, call: &str, local: &str, addr: &str, n: i64) -> Event {
        Event {
            seq,
            ts,
            dur: 50,
            call: call.into(),
            class: Some(Class::Data),
            ret: Some(n),
            addr: Some(addr.into()),
            sock: Some(Sock {
                ino: 1,
                proto: Proto::Udp,
                local: Some(local.into()),
                remote: None,
                peer_ino: None,
                peer_node: None,
            }),
            ..Default::default()
        }
    }

    fn info(e: &Event) -> Info {
        Info {
            idx: e.seq as u32,
            seq: e.seq,
            thread: 0,
            node: 0,
            tid: 0,
            flow_from: e.ts,
            flow_to: e.ts,
            instant: false,
        }
    }

    /// A receive whose datagram's send was recorded after it (it started before the receive
    /// ended) waits for that send; a send that no later receive of its port and size can take
    /// is unmatched at once; a kept send that fits no receive expires with the last receive
    /// of its port and size.
    #[test]
    fn receives_wait_for_late_sends_and_sends_wait_only_for_receives_to_come() {
        let events = [
            udp(0, 100, "recvfrom", "127.0.0.1:9", "127.0.0.1:5", 8),
            udp(1, 120, "sendto", "127.0.0.1:5", "127.0.0.1:9", 8),
            udp(2, 300, "sendto", "127.0.0.1:5", "127.0.0.1:9", 4),
            udp(3, 400, "sendto", "127.0.0.1:5", "127.0.0.1:7", 4),
            udp(4, 500, "sendto", "127.0.0.1:5", "127.0.0.1:9", 8),
            udp(5, 450, "recvfrom", "127.0.0.1:9", "127.0.0.1:5", 4),
        ];
        let mut plan = DgramPlan::default();
        for e in &events {
            plan.observe(&Dgram::of(e).unwrap(), e);
        }
        assert_eq!(plan.late, vec![(1, 120)]);
        let mut d = Dgrams::new(plan);
        let mut unmatched = Vec::new();
        let mut decided = Vec::new();
        for e in &events {
            let g = Dgram::of(e).unwrap();
            if g.send {
                if let Some(u) = d.send(g, e, info(e), Src::default()) {
                    unmatched.push(e.seq);
                    assert_eq!(u.d.size, e.moved());
                }
            } else {
                d.recv(g, e, info(e), e.seq as u32);
            }
            while let Some((r, taken, expired)) = d.decide(Some(e.seq)) {
                decided.push((
                    e.seq,
                    r.info.seq,
                    taken.map(|k| k.info.seq),
                    expired.iter().map(|k| k.info.seq).collect::<Vec<_>>(),
                ));
            }
        }
        assert!(d.decide(None).is_none());
        assert!(d.leftovers().is_empty());
        // Receive 0 is decided once send 1 is in, and takes it. Send 3 goes to a port nobody
        // receives on; send 4 comes after the last 8-byte receive. Receive 5 takes send 2 (4
        // bytes, started before it ended); nothing else of its bucket was kept.
        assert_eq!(
            decided,
            vec![(1, 0, Some(1), vec![]), (5, 5, Some(2), vec![])]
        );
        assert_eq!(unmatched, vec![3, 4]);
    }

    #[test]
    fn a_kept_send_no_receive_fits_expires_with_the_last_receive_of_its_bucket() {
        let events = [
            udp(0, 100, "recvfrom", "127.0.0.1:9", "127.0.0.1:5", 8),
            udp(1, 600, "sendto", "127.0.0.1:5", "127.0.0.1:9", 8),
            udp(2, 700, "recvfrom", "127.0.0.1:9", "127.0.0.1:6", 8),
        ];
        let mut plan = DgramPlan::default();
        for e in &events {
            plan.observe(&Dgram::of(e).unwrap(), e);
        }
        let mut d = Dgrams::new(plan);
        let mut out = Vec::new();
        for e in &events {
            let g = Dgram::of(e).unwrap();
            if g.send {
                assert!(d.send(g, e, info(e), Src::default()).is_none());
            } else {
                d.recv(g, e, info(e), 0);
            }
            while let Some((r, taken, expired)) = d.decide(Some(e.seq)) {
                out.push((r.info.seq, taken.is_some(), expired.len()));
            }
        }
        // Receive 2 is from another port than send 1: it takes nothing, and send 1 expires.
        assert_eq!(out, vec![(0, false, 0), (2, false, 1)]);
    }
}
