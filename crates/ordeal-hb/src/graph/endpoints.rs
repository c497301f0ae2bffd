//! Which node owns each address, and what each socket inode did over the trace ([`Endpoint`]).
//!
//! Invariant: an endpoint keeps the first concrete address seen on each side, its first
//! successful (or in-progress) connect and first successful accept; its sends and receives are
//! in `seq` order and each moved at least one byte.

use super::compact::EvRef;
use super::{HbGraph, EXTERNAL};
use crate::addr::{is_unspecified, norm_addr, AddrMap};
use ordeal_events::{Class, Proto, SocketOp};
use std::collections::BTreeMap;

/// What one socket inode did over the trace.
#[derive(Debug, Default)]
pub(super) struct Endpoint {
    pub(super) proto: Option<Proto>,
    pub(super) node: String,
    pub(super) local: Option<String>,
    pub(super) remote: Option<String>,
    pub(super) peer_ino: Option<u64>,
    pub(super) peer_node: Option<String>,
    pub(super) first: u32,
    pub(super) connect: Option<u32>,
    pub(super) accept: Option<u32>,
    pub(super) sends: Vec<u32>,
    pub(super) recvs: Vec<u32>,
    pub(super) listening: bool,
}

impl HbGraph {
    pub(super) fn build_addr_map(&mut self) {
        let mut map = AddrMap::default();
        for n in &self.header.nodes {
            for &p in &n.ports {
                map.add_header_port(p, &n.name);
            }
        }
        for i in 0..self.table.len() {
            let e = self.table.get(i);
            if !e.ok() {
                continue;
            }
            match e.call() {
                "bind" => {
                    if let Some(a) = e.addr() {
                        map.add_listen(a, e.node());
                    }
                }
                "listen" => {
                    if let Some(a) = e.sock().and_then(|s| s.local.as_ref()) {
                        map.add_listen(a, e.node());
                    }
                }
                _ => {}
            }
        }
        self.addr_map = map;
    }

    /// Node owning an address: a traced listener or bind, a header port, else `None`.
    pub fn node_of_addr(&self, addr: &str) -> Option<&str> {
        self.addr_map.lookup(addr)
    }

    pub(super) fn peer_name(&self, ep: &Endpoint) -> String {
        // A refused non-blocking connect leaves no remote address on the socket: fall back on
        // the address the connect asked for.
        let target = ep.connect.and_then(|c| self.table.get(c as usize).addr());
        ep.remote
            .as_deref()
            .or(target)
            .and_then(|a| self.addr_map.lookup(a))
            .map(str::to_string)
            .or_else(|| ep.peer_node.clone())
            .unwrap_or_else(|| EXTERNAL.to_string())
    }

    pub(super) fn collect_endpoints(&self) -> BTreeMap<u64, Endpoint> {
        let mut eps: BTreeMap<u64, Endpoint> = BTreeMap::new();
        for i in 0..self.table.len() {
            let e = self.table.get(i);
            let Some(s) = e.sock() else { continue };
            let ep = eps.entry(s.ino).or_insert_with(|| Endpoint {
                node: e.node().to_string(),
                first: i as u32,
                ..Default::default()
            });
            ep.proto.get_or_insert(s.proto);
            // Keep the first concrete address: a socket may show `0.0.0.0:0` before it is
            // bound or connected.
            for (have, seen) in [(&mut ep.local, &s.local), (&mut ep.remote, &s.remote)] {
                if let Some(a) = seen {
                    if have.as_deref().is_none_or(is_unspecified) {
                        *have = Some(norm_addr(a));
                    }
                }
            }
            if ep.peer_ino.is_none() {
                ep.peer_ino = s.peer_ino.filter(|&p| p != s.ino);
            }
            if ep.peer_node.is_none() {
                ep.peer_node = s.peer_node.clone();
            }
            match e.socket_op() {
                Some(SocketOp::Connect) if connect_attempted(e) && ep.connect.is_none() => {
                    ep.connect = Some(i as u32)
                }
                Some(SocketOp::Accept) if e.ok() && ep.accept.is_none() => {
                    ep.accept = Some(i as u32)
                }
                Some(SocketOp::Listen) if e.ok() => ep.listening = true,
                _ => {}
            }
            if e.class() == Some(Class::Data) {
                if e.is_send() && e.moved() > 0 {
                    ep.sends.push(i as u32);
                } else if e.is_recv() && e.moved() > 0 {
                    ep.recvs.push(i as u32);
                }
            }
        }
        eps
    }
}

/// A connect that started a connection: success, or an asynchronous one still in progress.
pub(super) fn connect_attempted(e: EvRef) -> bool {
    e.ok()
        || matches!(
            e.errno(),
            Some("EINPROGRESS") | Some("EALREADY") | Some("EINTR") | Some("EISCONN")
        )
        || (e.errno().is_none() && e.ret() == Some(-115))
}
