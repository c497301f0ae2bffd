//! UDP datagram matching: each receive takes the oldest unused send of the same size whose
//! addresses fit and that started before the receive ended.
//!
//! Invariant: a send matches at most one receive; every unmatched datagram counts as unmatched
//! traffic toward the node owning its address, or [`EXTERNAL`].

use super::edges::Cross;
use super::{EdgeKind, HbGraph, EXTERNAL};
use crate::addr::{addr_compatible, norm_addr};
use ordeal_events::Proto;
use std::collections::BTreeMap;

impl HbGraph {
    pub(super) fn match_datagrams(&mut self) {
        struct Dgram {
            idx: u32,
            src: String,
            dst: String,
            size: u64,
        }
        let mut sends: BTreeMap<(u16, u16), Vec<(Dgram, bool)>> = BTreeMap::new();
        let mut unkeyed_sends: Vec<Dgram> = Vec::new();
        let mut recvs: Vec<Dgram> = Vec::new();
        for i in 0..self.table.len() {
            let e = self.table.get(i);
            let Some(s) = e.sock() else { continue };
            if s.proto != Proto::Udp || e.moved() == 0 {
                continue;
            }
            let (src, dst) = if e.is_send() {
                (s.local.as_deref(), e.addr().or(s.remote.as_deref()))
            } else if e.is_recv() {
                (e.addr().or(s.remote.as_deref()), s.local.as_deref())
            } else {
                continue;
            };
            let d = Dgram {
                idx: i as u32,
                src: src.map(norm_addr).unwrap_or_default(),
                dst: dst.map(norm_addr).unwrap_or_default(),
                size: e.moved(),
            };
            let key = crate::addr::split_host_port(&d.src)
                .zip(crate::addr::split_host_port(&d.dst))
                .map(|((_, a), (_, b))| (a, b));
            match (e.is_send(), key) {
                (true, Some(k)) => sends.entry(k).or_default().push((d, false)),
                (true, None) => unkeyed_sends.push(d),
                (false, _) => recvs.push(d),
            }
        }
        let mut matched_recv = vec![false; recvs.len()];
        for (ri, r) in recvs.iter().enumerate() {
            let key = crate::addr::split_host_port(&r.src)
                .zip(crate::addr::split_host_port(&r.dst))
                .map(|((_, a), (_, b))| (a, b));
            let re = self.table.get(r.idx as usize);
            let r_end = re.ts().saturating_add(re.dur());
            let events = &self.table.evs;
            let fits = |s: &Dgram, used: bool| {
                !used && s.size == r.size && events[s.idx as usize].ts <= r_end
            };
            let hit = match key {
                Some(k) => sends.get_mut(&k).and_then(|list| {
                    list.iter_mut().find(|(s, used)| {
                        fits(s, *used)
                            && addr_compatible(&s.src, &r.src)
                            && addr_compatible(&s.dst, &r.dst)
                    })
                }),
                // recv(2)/recvfrom with no address buffer: the source is unknown, so take the
                // oldest fitting datagram sent to this socket's address, from anyone.
                None => {
                    let Some((_, dport)) = crate::addr::split_host_port(&r.dst) else {
                        continue;
                    };
                    sends
                        .iter_mut()
                        .filter(|((_, d), _)| *d == dport)
                        .flat_map(|(_, list)| list.iter_mut())
                        .filter(|(s, used)| fits(s, *used) && addr_compatible(&s.dst, &r.dst))
                        .min_by_key(|(s, _)| s.idx)
                }
            };
            if let Some((s, used)) = hit {
                *used = true;
                matched_recv[ri] = true;
                self.cross.push(Cross::new(
                    s.idx,
                    r.idx,
                    EdgeKind::Message { bytes: r.size },
                ));
                let key = (
                    self.table.get(s.idx as usize).node().to_string(),
                    re.node().to_string(),
                );
                let t = self.traffic.entry(key).or_default();
                t.messages += 1;
                t.bytes += r.size;
            }
        }
        let unmatched_sends = sends
            .into_values()
            .flatten()
            .filter(|(_, used)| !used)
            .map(|(d, _)| d)
            .chain(unkeyed_sends);
        let mut extra: Vec<((String, String), u64)> = Vec::new();
        for d in unmatched_sends {
            let peer = self.addr_map.lookup(&d.dst).unwrap_or(EXTERNAL);
            extra.push((
                (
                    self.table.get(d.idx as usize).node().to_string(),
                    peer.to_string(),
                ),
                d.size,
            ));
        }
        for (ri, d) in recvs.iter().enumerate() {
            if !matched_recv[ri] {
                let peer = self.addr_map.lookup(&d.src).unwrap_or(EXTERNAL);
                extra.push((
                    (
                        peer.to_string(),
                        self.table.get(d.idx as usize).node().to_string(),
                    ),
                    d.size,
                ));
            }
        }
        for (k, b) in extra {
            self.traffic.entry(k).or_default().unmatched_bytes += b;
        }
    }
}
