//! Stream connections: pairs the two ends of each TCP or Unix socket (kernel-reported peer inode,
//! then mirrored address pairs, then Unix paths), adds connect → accept edges, records each
//! [`Connection`] and its traffic, and aggregates connects that failed.
//!
//! Invariant: pairing is symmetric and one-to-one; a pair is recorded as one connection,
//! oriented client → server, and a socketpair (neither connect nor accept) is not a connection.

use super::edges::Cross;
use super::endpoints::{connect_attempted, Endpoint};
use super::view::View;
use super::{Connection, EdgeKind, FailedConnect, HbGraph, Traffic, EXTERNAL};
use crate::addr::{norm_addr, AddrMap};
use ordeal_events::Proto;
use std::collections::{BTreeMap, HashMap};

/// What the endpoints say about streams once every event is in: who is paired with whom, the
/// connections, the node at the other end of each stream socket, the connect edges, and the
/// traffic that needs no byte matching (connections opened, bytes of unpaired streams).
#[derive(Debug, Default)]
pub(crate) struct Streams {
    pub(crate) partner: HashMap<u64, u64>,
    pub(crate) connections: Vec<Connection>,
    pub(crate) peer_of_ino: HashMap<u64, String>,
    /// `(connect, accept)` event indices by the lower inode of the pair, one at most each.
    pub(crate) connects: BTreeMap<u64, (u32, u32)>,
    pub(crate) traffic: BTreeMap<(String, String), Traffic>,
}

impl Streams {
    pub(crate) fn new(eps: &BTreeMap<u64, Endpoint>, addr_map: &AddrMap) -> Streams {
        let mut s = Streams {
            partner: pair_streams(eps),
            ..Default::default()
        };
        for (&ino, ep) in eps {
            if !ep.is_stream() {
                continue;
            }
            match s
                .partner
                .get(&ino)
                .and_then(|p| eps.get(p).map(|pe| (*p, pe)))
            {
                Some((pino, pe)) => {
                    s.peer_of_ino.insert(ino, pe.node.clone());
                    // Record the connection once per pair, oriented client → server. A pair
                    // with neither a connect nor an accept (socketpair) is not a connection.
                    if ino < pino {
                        if ep.connect.is_some() || pe.accept.is_some() {
                            s.add_paired(ino, ep, pino, pe);
                        } else if pe.connect.is_some() || ep.accept.is_some() {
                            s.add_paired(pino, pe, ino, ep);
                        }
                    }
                }
                None if ep.listening => {}
                None => {
                    let peer = ep.peer_name(addr_map);
                    s.peer_of_ino.insert(ino, peer.clone());
                    s.add_unpaired(ino, ep, &peer);
                }
            }
        }
        s.connections.sort_by_key(|c| {
            c.connect_seq
                .into_iter()
                .chain(c.accept_seq)
                .min()
                .unwrap_or(u64::MAX)
        });
        s
    }

    fn add_paired(&mut self, cino: u64, c: &Endpoint, sino: u64, s: &Endpoint) {
        if let (Some(ci), Some(si)) = (c.connect, s.accept) {
            self.connects.insert(cino.min(sino), (ci.idx, si.idx));
        }
        let conn = Connection {
            proto: c.proto.unwrap_or(Proto::Other),
            client_node: c.node.clone(),
            server_node: s.node.clone(),
            client_addr: c.local.clone().unwrap_or_else(|| "?".into()),
            server_addr: c
                .remote
                .clone()
                .or_else(|| s.local.clone())
                .unwrap_or_else(|| "?".into()),
            client_ino: Some(cino),
            server_ino: Some(sino),
            connect_seq: c.connect.map(|m| m.seq),
            accept_seq: s.accept.map(|m| m.seq),
            bytes_client_to_server: c.sent,
            bytes_server_to_client: s.sent,
            both_traced: true,
        };
        self.traffic
            .entry((conn.client_node.clone(), conn.server_node.clone()))
            .or_default()
            .connections += 1;
        self.connections.push(conn);
    }

    fn add_unpaired(&mut self, ino: u64, ep: &Endpoint, peer: &str) {
        let (sent, received) = (ep.sent, ep.received);
        if sent > 0 {
            self.traffic
                .entry((ep.node.clone(), peer.to_string()))
                .or_default()
                .unmatched_bytes += sent;
        }
        if received > 0 {
            self.traffic
                .entry((peer.to_string(), ep.node.clone()))
                .or_default()
                .unmatched_bytes += received;
        }
        let here = ep.local.clone().unwrap_or_else(|| "?".into());
        let there = ep.remote.clone().unwrap_or_else(|| "?".into());
        let conn = if let Some(c) = ep.connect {
            if ep.local.is_none() && sent == 0 && received == 0 {
                // A non-blocking connect whose socket had no address left by the time the tracer
                // looked: it was refused at once and never carried anything. Not a connection.
                return;
            }
            Connection {
                proto: ep.proto.unwrap_or(Proto::Other),
                client_node: ep.node.clone(),
                server_node: peer.to_string(),
                client_addr: here,
                server_addr: ep
                    .remote
                    .clone()
                    .or_else(|| ep.connect_addr.as_deref().map(norm_addr))
                    .unwrap_or_else(|| "?".into()),
                client_ino: Some(ino),
                server_ino: None,
                connect_seq: Some(c.seq),
                accept_seq: None,
                bytes_client_to_server: sent,
                bytes_server_to_client: received,
                both_traced: false,
            }
        } else if let Some(a) = ep.accept {
            Connection {
                proto: ep.proto.unwrap_or(Proto::Other),
                client_node: peer.to_string(),
                server_node: ep.node.clone(),
                client_addr: there,
                server_addr: here,
                client_ino: None,
                server_ino: Some(ino),
                connect_seq: None,
                accept_seq: Some(a.seq),
                bytes_client_to_server: received,
                bytes_server_to_client: sent,
                both_traced: false,
            }
        } else {
            return;
        };
        self.traffic
            .entry((conn.client_node.clone(), conn.server_node.clone()))
            .or_default()
            .connections += 1;
        self.connections.push(conn);
    }
}

/// Pairs stream endpoints: each inode → the inode at the other end, both ways.
fn pair_streams(eps: &BTreeMap<u64, Endpoint>) -> HashMap<u64, u64> {
    let mut partner: HashMap<u64, u64> = HashMap::new();
    // 1. The kernel told us the other end.
    for (&ino, ep) in eps {
        if !ep.is_stream() || partner.contains_key(&ino) {
            continue;
        }
        if let Some(p) = ep.peer_ino {
            if p != ino && eps.contains_key(&p) && !partner.contains_key(&p) {
                partner.insert(ino, p);
                partner.insert(p, ino);
            }
        }
    }
    // 2. Mirrored address pairs, in order of appearance per 4-tuple.
    let mut by_tuple: BTreeMap<(&str, &str), Vec<(u32, u64)>> = BTreeMap::new();
    for (&ino, ep) in eps {
        if !ep.is_stream() || ep.listening || partner.contains_key(&ino) {
            continue;
        }
        if let (Some(l), Some(r)) = (&ep.local, &ep.remote) {
            if !l.is_empty() && !r.is_empty() && l != r {
                by_tuple
                    .entry((l.as_str(), r.as_str()))
                    .or_default()
                    .push((ep.first, ino));
            }
        }
    }
    let mut pairs_by_tuple = Vec::new();
    for ((l, r), side) in &by_tuple {
        if l > r {
            continue;
        }
        let Some(other) = by_tuple.get(&(*r, *l)) else {
            continue;
        };
        let (mut a, mut b) = (side.clone(), other.clone());
        a.sort();
        b.sort();
        for (x, y) in a.iter().zip(b.iter()) {
            pairs_by_tuple.push((x.1, y.1));
        }
    }
    for (x, y) in pairs_by_tuple {
        partner.insert(x, y);
        partner.insert(y, x);
    }
    // 3. Unix sockets without a kernel-reported peer: connects to a path and accepts on
    //    that path, paired in order of appearance.
    type Side = Vec<(u32, u64)>;
    let mut unix: BTreeMap<&str, (Side, Side)> = BTreeMap::new();
    for (&ino, ep) in eps {
        if ep.proto != Some(Proto::Unix) || partner.contains_key(&ino) {
            continue;
        }
        if let (Some(c), Some(path)) = (ep.connect, ep.remote.as_deref()) {
            unix.entry(path).or_default().0.push((c.idx, ino));
        } else if let (Some(a), Some(path)) = (ep.accept, ep.local.as_deref()) {
            unix.entry(path).or_default().1.push((a.idx, ino));
        }
    }
    for (clients, servers) in unix.values() {
        for (c, s) in clients.iter().zip(servers.iter()) {
            partner.insert(c.1, s.1);
            partner.insert(s.1, c.1);
        }
    }
    partner
}

/// Connects that failed outright, aggregated by node, address and errno.
#[derive(Debug, Default)]
pub(crate) struct FailedConnects {
    agg: BTreeMap<(String, String, String), FailedConnect>,
}

impl FailedConnects {
    pub(crate) fn observe<'a>(&mut self, e: impl View<'a>) {
        if e.call() != "connect" || connect_attempted(e) {
            return;
        }
        let addr = e
            .addr()
            .or_else(|| e.sock().and_then(|s| s.remote.as_deref()))
            .map(norm_addr)
            .unwrap_or_else(|| "?".into());
        let errno = e
            .errno()
            .map(str::to_string)
            .unwrap_or_else(|| format!("{}", e.ret().unwrap_or(0)));
        self.agg
            .entry((e.node().to_string(), addr.clone(), errno.clone()))
            .and_modify(|f| f.count += 1)
            .or_insert(FailedConnect {
                node: e.node().to_string(),
                addr,
                // Named once every address is known.
                target_node: String::new(),
                errno,
                count: 1,
                first_seq: e.seq(),
            });
    }

    /// The failed connects by first failure, each target named by the final address map.
    pub(crate) fn finish(self, addr_map: &AddrMap) -> Vec<FailedConnect> {
        let mut v: Vec<_> = self
            .agg
            .into_values()
            .map(|mut f| {
                f.target_node = addr_map.lookup(&f.addr).unwrap_or(EXTERNAL).to_string();
                f
            })
            .collect();
        v.sort_by_key(|f| f.first_seq);
        v
    }
}

impl HbGraph {
    pub(super) fn match_streams(&mut self) {
        let (eps, transfers) = self.collect_endpoints();
        let streams = Streams::new(&eps, &self.addr_map);
        let none = Default::default();
        // Edges in the order they have always been made: per inode, its sends' messages, then
        // the connect edge of the pair it is the lower inode of.
        for (&ino, ep) in &eps {
            if !ep.is_stream() {
                continue;
            }
            if let Some(pe) = streams.partner.get(&ino).and_then(|p| eps.get(p)) {
                let pino = streams.partner[&ino];
                self.stream_direction(
                    transfers.get(&ino).unwrap_or(&none),
                    pe,
                    transfers.get(&pino).unwrap_or(&none),
                );
            }
            if let Some(&(ci, ai)) = streams.connects.get(&ino) {
                self.cross.push(Cross::new(ci, ai, EdgeKind::Connect));
            }
        }
        for (k, t) in streams.traffic {
            let mine = self.traffic.entry(k).or_default();
            mine.connections += t.connections;
            mine.unmatched_bytes += t.unmatched_bytes;
        }
        self.connections = streams.connections;
        self.peer_of_ino = streams.peer_of_ino;
    }

    pub(super) fn collect_failed_connects(&mut self) {
        let mut failed = FailedConnects::default();
        for i in 0..self.table.len() {
            failed.observe(self.table.get(i));
        }
        self.failed_connects = failed.finish(&self.addr_map);
    }

    /// Stream connections, by time of their connect/accept.
    pub fn connections(&self) -> &[Connection] {
        &self.connections
    }

    /// Failed connect attempts, aggregated by node, address and errno.
    pub fn failed_connects(&self) -> &[FailedConnect] {
        &self.failed_connects
    }

    /// The node at the other end of a socket (by inode), if the socket carried a stream.
    pub fn peer_node(&self, ino: u64) -> Option<&str> {
        self.peer_of_ino.get(&ino).map(String::as_str)
    }
}
