//! Which node owns each address, and what each socket inode did over the trace ([`Endpoint`]).
//!
//! Invariant: an endpoint keeps the first concrete address seen on each side, its first
//! successful (or in-progress) connect and first successful accept, and the bytes its sends and
//! receives moved; the graph also lists its sends and receives ([`Transfers`]), in `seq` order,
//! each of which moved at least one byte.

use super::view::View;
use super::{HbGraph, EXTERNAL};
use crate::addr::{is_unspecified, norm_addr, AddrMap};
use ordeal_events::{Class, Header, Proto, SocketOp};
use std::collections::BTreeMap;

/// An event an endpoint remembers: its index and `seq`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Mark {
    pub(crate) idx: u32,
    pub(crate) seq: u64,
}

/// What one socket inode did over the trace.
#[derive(Debug, Default)]
pub(crate) struct Endpoint {
    pub(crate) proto: Option<Proto>,
    pub(crate) node: String,
    pub(crate) local: Option<String>,
    pub(crate) remote: Option<String>,
    pub(crate) peer_ino: Option<u64>,
    pub(crate) peer_node: Option<String>,
    pub(crate) first: u32,
    pub(crate) connect: Option<Mark>,
    /// The address the connect asked for.
    pub(crate) connect_addr: Option<String>,
    pub(crate) accept: Option<Mark>,
    pub(crate) listening: bool,
    /// Bytes moved by the sends, and by the receives.
    pub(crate) sent: u64,
    pub(crate) received: u64,
}

/// A data event of an endpoint that moved bytes, as [`Endpoint::observe`] sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transfer {
    Send,
    Recv,
}

/// The sends and receives of one endpoint (event indices), for the graph's matching.
#[derive(Debug, Default)]
pub(crate) struct Transfers {
    pub(crate) sends: Vec<u32>,
    pub(crate) recvs: Vec<u32>,
}

impl Endpoint {
    /// A new endpoint whose first event is `e`, at index `i`.
    pub(crate) fn new<'a>(i: u32, e: impl View<'a>) -> Endpoint {
        Endpoint {
            node: e.node().to_string(),
            first: i,
            ..Default::default()
        }
    }

    /// Takes in event `i`, which worked on this endpoint's socket; says whether it was a
    /// transfer that moved bytes.
    pub(crate) fn observe<'a>(&mut self, i: u32, e: impl View<'a>) -> Option<Transfer> {
        let s = e.sock()?;
        self.proto.get_or_insert(s.proto);
        // Keep the first concrete address: a socket may show `0.0.0.0:0` before it is
        // bound or connected.
        for (have, seen) in [(&mut self.local, &s.local), (&mut self.remote, &s.remote)] {
            if let Some(a) = seen {
                if have.as_deref().is_none_or(is_unspecified) {
                    *have = Some(norm_addr(a));
                }
            }
        }
        if self.peer_ino.is_none() {
            self.peer_ino = s.peer_ino.filter(|&p| p != s.ino);
        }
        if self.peer_node.is_none() {
            self.peer_node = s.peer_node.clone();
        }
        let mark = Mark {
            idx: i,
            seq: e.seq(),
        };
        match e.socket_op() {
            Some(SocketOp::Connect) if connect_attempted(e) && self.connect.is_none() => {
                self.connect = Some(mark);
                self.connect_addr = e.addr().map(str::to_string);
            }
            Some(SocketOp::Accept) if e.ok() && self.accept.is_none() => self.accept = Some(mark),
            Some(SocketOp::Listen) if e.ok() => self.listening = true,
            _ => {}
        }
        if e.class() != Some(Class::Data) || e.moved() == 0 {
            return None;
        }
        if e.is_send() {
            self.sent += e.moved();
            Some(Transfer::Send)
        } else if e.is_recv() {
            self.received += e.moved();
            Some(Transfer::Recv)
        } else {
            None
        }
    }

    /// Whether the endpoint carried a byte stream (TCP, Unix).
    pub(crate) fn is_stream(&self) -> bool {
        matches!(self.proto, Some(Proto::Tcp) | Some(Proto::Unix))
    }

    /// The node at the other end of an endpoint whose peer was not traced: the owner of its
    /// remote address (or of the address its connect asked for), the kernel-reported peer
    /// node, else [`EXTERNAL`].
    pub(crate) fn peer_name(&self, addr_map: &AddrMap) -> String {
        // A refused non-blocking connect leaves no remote address on the socket: fall back on
        // the address the connect asked for.
        let target = self.connect.and(self.connect_addr.as_deref());
        self.remote
            .as_deref()
            .or(target)
            .and_then(|a| addr_map.lookup(a))
            .map(str::to_string)
            .or_else(|| self.peer_node.clone())
            .unwrap_or_else(|| EXTERNAL.to_string())
    }
}

/// Builds the address → node map: the header's ports, then every successful bind and listen.
#[derive(Debug, Default)]
pub(crate) struct AddrMapBuilder(pub(crate) AddrMap);

impl AddrMapBuilder {
    pub(crate) fn new(header: &Header) -> AddrMapBuilder {
        let mut map = AddrMap::default();
        for n in &header.nodes {
            for &p in &n.ports {
                map.add_header_port(p, &n.name);
            }
        }
        AddrMapBuilder(map)
    }

    pub(crate) fn observe<'a>(&mut self, e: impl View<'a>) {
        if !e.ok() {
            return;
        }
        match e.call() {
            "bind" => {
                if let Some(a) = e.addr() {
                    self.0.add_listen(a, e.node());
                }
            }
            "listen" => {
                if let Some(a) = e.sock().and_then(|s| s.local.as_ref()) {
                    self.0.add_listen(a, e.node());
                }
            }
            _ => {}
        }
    }
}

impl HbGraph {
    pub(super) fn build_addr_map(&mut self) {
        let mut map = AddrMapBuilder::new(&self.header);
        for i in 0..self.table.len() {
            map.observe(self.table.get(i));
        }
        self.addr_map = map.0;
    }

    /// Node owning an address: a traced listener or bind, a header port, else `None`.
    pub fn node_of_addr(&self, addr: &str) -> Option<&str> {
        self.addr_map.lookup(addr)
    }

    pub(super) fn collect_endpoints(&self) -> (BTreeMap<u64, Endpoint>, BTreeMap<u64, Transfers>) {
        let mut eps: BTreeMap<u64, Endpoint> = BTreeMap::new();
        let mut transfers: BTreeMap<u64, Transfers> = BTreeMap::new();
        for i in 0..self.table.len() {
            let e = self.table.get(i);
            let Some(s) = e.sock() else { continue };
            let ep = eps
                .entry(s.ino)
                .or_insert_with(|| Endpoint::new(i as u32, e));
            let list = match ep.observe(i as u32, e) {
                Some(Transfer::Send) => &mut transfers.entry(s.ino).or_default().sends,
                Some(Transfer::Recv) => &mut transfers.entry(s.ino).or_default().recvs,
                None => continue,
            };
            list.push(i as u32);
        }
        (eps, transfers)
    }
}

/// A connect that started a connection: success, or an asynchronous one still in progress.
pub(crate) fn connect_attempted<'a>(e: impl View<'a>) -> bool {
    e.ok()
        || matches!(
            e.errno(),
            Some("EINPROGRESS") | Some("EALREADY") | Some("EINTR") | Some("EISCONN")
        )
        || (e.errno().is_none() && e.ret() == Some(-115))
}
