//! Helpers to run a cluster of nodes in-process and talk to it.

#![allow(dead_code)] // each test file uses a different subset

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use ordeal_demo::{spawn_node, Bugs, NodeConfig, NodeHandle, State, STATE_FILE};
use tempfile::TempDir;

/// How long any awaited condition may take before the test fails.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// Polls `condition` until it holds, failing the test after [`PATIENCE`].
pub fn wait_for(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(10));
    }
}

/// A local port that refuses connections (bound, then released).
pub fn dead_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// A connection to a node with a line reader; every read has a timeout so a
/// missing reply fails the test instead of hanging it.
pub struct Conn {
    pub stream: TcpStream,
    reader: BufReader<TcpStream>,
}

impl Conn {
    pub fn open(addr: SocketAddr) -> Conn {
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(PATIENCE)).unwrap();
        stream.set_nodelay(true).unwrap();
        let reader = BufReader::new(stream.try_clone().unwrap());
        Conn { stream, reader }
    }

    pub fn write(&mut self, text: &str) {
        self.write_bytes(text.as_bytes());
    }

    pub fn write_bytes(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    pub fn read_line(&mut self) -> String {
        let mut line = String::new();
        let n = self.reader.read_line(&mut line).unwrap();
        assert!(n > 0, "connection closed while waiting for a line");
        line.trim_end().to_string()
    }

    /// Sends one request line and returns the reply line.
    pub fn ask(&mut self, request: &str) -> String {
        self.write(&format!("{request}\n"));
        self.read_line()
    }
}

/// One request on a fresh connection.
pub fn ask(addr: SocketAddr, request: &str) -> String {
    Conn::open(addr).ask(request)
}

/// A node's role, or "DOWN" if it refuses connections.
pub fn role(addr: SocketAddr) -> String {
    match TcpStream::connect(addr) {
        Ok(_) => ask(addr, "ROLE"),
        Err(_) => "DOWN".to_string(),
    }
}

/// In-process nodes on 127.0.0.1, each with its own temp data dir.
pub struct Cluster {
    pub addrs: Vec<SocketAddr>,
    pub dirs: Vec<TempDir>,
    pub nodes: Vec<Option<NodeHandle>>,
    pub bugs: Bugs,
}

impl Cluster {
    /// Binds `n` ports, then starts the nodes in index order.
    pub fn start(n: usize, bugs: Bugs) -> Cluster {
        // Binding every port before any node starts lets the peers list be
        // known up front, with no window where another process takes a port.
        let listeners: Vec<TcpListener> = (0..n)
            .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
            .collect();
        let addrs = listeners.iter().map(|l| l.local_addr().unwrap()).collect();
        let mut cluster = Cluster {
            addrs,
            dirs: (0..n).map(|_| tempfile::tempdir().unwrap()).collect(),
            nodes: Vec::new(),
            bugs,
        };
        for (id, listener) in listeners.into_iter().enumerate() {
            let node = spawn_node(cluster.config(id), listener).unwrap();
            cluster.nodes.push(Some(node));
        }
        cluster
    }

    pub fn config(&self, id: usize) -> NodeConfig {
        NodeConfig {
            bugs: self.bugs,
            peer_timeout: Duration::from_secs(5),
            election_timeout: PATIENCE,
            ..NodeConfig::new(id, self.addrs.clone(), self.dirs[id].path())
        }
    }

    /// Stops node `id` as if it crashed and waits until it is gone.
    pub fn stop(&mut self, id: usize) {
        let node = self.nodes[id].take().expect("node is running");
        node.stop().expect("node ended with an error");
    }

    /// Starts node `id` again on its old port and data dir.
    pub fn restart(&mut self, id: usize) {
        assert!(self.nodes[id].is_none(), "node {id} is running");
        let listener = TcpListener::bind(self.addrs[id]).unwrap();
        self.nodes[id] = Some(spawn_node(self.config(id), listener).unwrap());
    }

    pub fn role(&self, id: usize) -> String {
        role(self.addrs[id])
    }

    /// Waits until the nodes report exactly these roles.
    pub fn wait_roles(&self, expected: &[&str]) {
        let mut seen = Vec::new();
        wait_for(&format!("roles {expected:?}"), || {
            seen = (0..self.addrs.len()).map(|id| self.role(id)).collect();
            seen == expected
        });
    }

    pub fn state(&self, id: usize) -> State {
        State::load(self.dirs[id].path()).unwrap()
    }

    pub fn state_text(&self, id: usize) -> String {
        std::fs::read_to_string(self.dirs[id].path().join(STATE_FILE)).unwrap()
    }
}
