//! Which connection a socket is an end of, and which end.

use crate::decode::Conn;
use ordeal_events::{Event, Header, Sock};
use ordeal_proto::{Protocol, Side};
use std::collections::{HashMap, HashSet};

/// What identifies a connection from either end.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    /// Both inodes (the kernel tells a Unix socket's peer).
    Inodes(u64, u64),
    /// Both addresses, in order.
    Addrs(String, String),
    /// One end and nothing else known.
    Alone(u64),
}

/// The connection a transfer's socket belongs to.
pub(crate) enum Joined {
    /// Already known (or just joined by its second end).
    Existing(usize, Side),
    /// A connection seen for the first time; it takes the place of `replaces` (the same
    /// addresses used again once that one was over).
    New {
        idx: usize,
        side: Side,
        replaces: Option<usize>,
        conn: Box<Conn>,
    },
}

/// Connections by their ends.
pub(crate) struct Conns {
    next: usize,
    by_ino: HashMap<u64, (usize, Side)>,
    by_key: HashMap<Key, usize>,
    /// Per live connection: the inode of each end seen, and its key.
    ends: HashMap<usize, [Option<u64>; 2]>,
    keys: HashMap<usize, Key>,
    connected: HashSet<u64>,
    accepted: HashSet<u64>,
    /// Port → node name, from the trace header.
    port_nodes: HashMap<u16, String>,
    /// Node name → its `protocol`.
    protocols: HashMap<String, String>,
    /// Ends that joined a connection already known, for the decoder to note.
    pub joins: Vec<(usize, Side, Option<String>)>,
}

impl Conns {
    pub fn new(header: &Header) -> Conns {
        let mut port_nodes = HashMap::new();
        let mut protocols = HashMap::new();
        for n in &header.nodes {
            for &p in &n.ports {
                port_nodes.insert(p, n.name.clone());
            }
            if let Some(p) = &n.protocol {
                protocols.insert(n.name.clone(), p.clone());
            }
        }
        Conns {
            next: 0,
            by_ino: HashMap::new(),
            by_key: HashMap::new(),
            ends: HashMap::new(),
            keys: HashMap::new(),
            connected: HashSet::new(),
            accepted: HashSet::new(),
            port_nodes,
            protocols,
            joins: Vec::new(),
        }
    }

    /// Notes which sockets connected and which were accepted.
    pub fn learn(&mut self, ev: &Event) {
        let Some(sock) = &ev.sock else {
            return;
        };
        match ev.call.as_str() {
            "connect" => {
                self.connected.insert(sock.ino);
            }
            "accept" | "accept4" if ev.ret.is_some_and(|r| r >= 0) => {
                self.accepted.insert(sock.ino);
            }
            _ => {}
        }
    }

    /// The connection `sock` (of `node`) is an end of.
    pub fn join(&mut self, sock: &Sock, node: &str) -> Joined {
        if let Some(&(idx, side)) = self.by_ino.get(&sock.ino) {
            return Joined::Existing(idx, side);
        }
        let key = match (sock.peer_ino, &sock.local, &sock.remote) {
            (Some(p), _, _) => Key::Inodes(sock.ino.min(p), sock.ino.max(p)),
            (None, Some(l), Some(r)) if l != r => {
                let (a, b) = if l < r { (l, r) } else { (r, l) };
                Key::Addrs(a.clone(), b.clone())
            }
            _ => Key::Alone(sock.ino),
        };
        let existing = self.by_key.get(&key).copied();
        let side = self.side(sock, existing);
        if let Some(idx) = existing {
            let ends = self.ends.entry(idx).or_default();
            if ends[side.index()].is_none() {
                ends[side.index()] = Some(sock.ino);
                self.by_ino.insert(sock.ino, (idx, side));
                self.joins.push((idx, side, Some(node.to_string())));
                return Joined::Existing(idx, side);
            }
            // Both ends taken: the addresses are in use again by a new connection.
            self.forget(idx);
        }
        let idx = self.next;
        self.next += 1;
        let mut ends = [None; 2];
        ends[side.index()] = Some(sock.ino);
        self.ends.insert(idx, ends);
        self.by_ino.insert(sock.ino, (idx, side));
        self.keys.insert(idx, key.clone());
        self.by_key.insert(key, idx);
        let other = sock
            .peer_node
            .clone()
            .or_else(|| sock.remote.as_deref().and_then(|a| self.node_at(a)));
        let server = match side {
            Side::Server => Some(node.to_string()),
            Side::Client => other.clone(),
        };
        let protocol = match server.as_ref().and_then(|n| self.protocols.get(n)) {
            Some(name) if name == "none" => None,
            Some(name) => Some(ordeal_proto::by_name(name)),
            None => Some(None::<&'static dyn Protocol>),
        };
        let mut conn = Conn::new(idx as u64, protocol);
        conn.names[side.index()] = Some(node.to_string());
        conn.names[side.other().index()] = other;
        conn.addrs[side.index()] = sock.local.clone();
        conn.addrs[side.other().index()] = sock.remote.clone();
        conn.traced(side);
        Joined::New {
            idx,
            side,
            replaces: existing,
            conn: Box::new(conn),
        }
    }

    /// Which end `sock` is: what it did (connect, accept), else the end the connection's
    /// other known socket is not, else by its ports (a node's port is the server's; an
    /// ephemeral port, higher, the client's).
    fn side(&self, sock: &Sock, existing: Option<usize>) -> Side {
        if self.connected.contains(&sock.ino) {
            return Side::Client;
        }
        if self.accepted.contains(&sock.ino) {
            return Side::Server;
        }
        if let Some(ends) = existing.and_then(|i| self.ends.get(&i)) {
            match ends {
                [Some(_), None] => return Side::Server,
                [None, Some(_)] => return Side::Client,
                _ => {}
            }
        }
        let local = sock.local.as_deref().and_then(port);
        let remote = sock.remote.as_deref().and_then(port);
        match (local, remote) {
            (Some(l), _) if self.port_nodes.contains_key(&l) => Side::Server,
            (_, Some(r)) if self.port_nodes.contains_key(&r) => Side::Client,
            (Some(l), Some(r)) if l > r => Side::Client,
            (Some(_), Some(_)) => Side::Server,
            // Unix: the connecting end's address is usually unnamed.
            _ if sock.local.as_deref().is_none_or(str::is_empty) => Side::Client,
            _ => Side::Server,
        }
    }

    /// The connection socket `ino` is an end of, and which end.
    pub fn end(&self, ino: u64) -> Option<(usize, Side)> {
        self.by_ino.get(&ino).copied()
    }

    /// Connection `idx` is over: its sockets and addresses may start a new one.
    pub fn forget(&mut self, idx: usize) {
        if let Some(ends) = self.ends.remove(&idx) {
            for ino in ends.into_iter().flatten() {
                self.by_ino.remove(&ino);
            }
        }
        if let Some(key) = self.keys.remove(&idx) {
            if self.by_key.get(&key) == Some(&idx) {
                self.by_key.remove(&key);
            }
        }
    }

    /// The node whose port `addr` is.
    fn node_at(&self, addr: &str) -> Option<String> {
        port(addr).and_then(|p| self.port_nodes.get(&p).cloned())
    }
}

/// The port of `ip:port` or `[ip]:port`.
fn port(addr: &str) -> Option<u16> {
    let (host, p) = addr.rsplit_once(':')?;
    if host.is_empty() {
        return None;
    }
    p.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_of_addresses() {
        assert_eq!(port("127.0.0.1:6379"), Some(6379));
        assert_eq!(port("[::1]:80"), Some(80));
        assert_eq!(port("/tmp/x.sock"), None);
        assert_eq!(port("@abstract"), None);
    }
}
