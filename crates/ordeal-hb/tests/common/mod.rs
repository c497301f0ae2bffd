//! Synthetic traces for the tests: a tiny builder that assigns seq and ts.
#![allow(dead_code)]

use ordeal_events::{Class, Event, Header, NodeInfo, Proto, Sock, SCHEMA_VERSION};

pub mod sim;

/// xorshift64: deterministic, seeded.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

pub fn header(nodes: &[(&str, &[u16])]) -> Header {
    Header {
        schema: "ordeal-trace".into(),
        version: SCHEMA_VERSION,
        experiment: "test".into(),
        started_at: "2026-01-01T00:00:00Z".into(),
        nodes: nodes
            .iter()
            .map(|(n, ports)| NodeInfo {
                name: n.to_string(),
                role: if *n == "client" { "workload" } else { "node" }.into(),
                ports: ports.to_vec(),
                protocol: None,
            })
            .collect(),
    }
}

pub fn tcp(ino: u64, local: &str, remote: &str) -> Sock {
    Sock {
        ino,
        proto: Proto::Tcp,
        local: Some(local.into()),
        remote: (!remote.is_empty()).then(|| remote.into()),
        peer_ino: None,
        peer_node: None,
    }
}

pub fn udp(ino: u64, local: &str) -> Sock {
    Sock {
        ino,
        proto: Proto::Udp,
        local: Some(local.into()),
        remote: None,
        peer_ino: None,
        peer_node: None,
    }
}

/// Appends events with dense seq; each call takes 100 ns and starts 1 µs after the previous.
#[derive(Default)]
pub struct Trace {
    pub events: Vec<Event>,
}

impl Trace {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an event and returns its seq.
    pub fn push(
        &mut self,
        node: &str,
        pid: i32,
        tid: i32,
        call: &str,
        f: impl FnOnce(&mut Event),
    ) -> u64 {
        let seq = self.events.len() as u64;
        let mut e = Event {
            seq,
            ts: 1_000 * (seq + 1),
            dur: 100,
            node: node.into(),
            pid,
            tid,
            call: call.into(),
            ..Default::default()
        };
        e.class = Some(match call {
            "spawn" | "fork" | "vfork" | "clone" | "exec" | "exit" => Class::Proc,
            "socket" | "bind" | "listen" | "connect" | "accept" | "accept4" | "shutdown"
            | "close" => Class::Net,
            "open" | "openat" | "fsync" | "rename" | "unlink" | "pwrite64" => Class::File,
            _ => Class::Data,
        });
        if e.class == Some(Class::Proc) {
            e.dur = 0;
        }
        f(&mut e);
        self.events.push(e);
        seq
    }

    pub fn spawn(&mut self, node: &str, pid: i32, argv0: &str) -> u64 {
        self.push(node, pid, pid, "spawn", |e| {
            e.child = Some(pid);
            e.argv = Some(vec![argv0.into()]);
        })
    }

    pub fn exit(
        &mut self,
        node: &str,
        pid: i32,
        tid: i32,
        code: Option<i32>,
        signal: Option<&str>,
    ) -> u64 {
        self.push(node, pid, tid, "exit", |e| {
            e.code = code;
            e.signal = signal.map(str::to_string);
        })
    }

    pub fn listen(&mut self, node: &str, pid: i32, ino: u64, addr: &str) -> u64 {
        self.push(node, pid, pid, "listen", |e| {
            e.ret = Some(0);
            e.fd = Some(3);
            e.sock = Some(tcp(ino, addr, ""));
        })
    }

    pub fn connect(&mut self, node: &str, pid: i32, tid: i32, s: Sock) -> u64 {
        self.push(node, pid, tid, "connect", |e| {
            e.ret = Some(0);
            e.fd = Some(4);
            e.addr = s.remote.clone();
            e.sock = Some(s);
        })
    }

    pub fn accept(&mut self, node: &str, pid: i32, tid: i32, s: Sock) -> u64 {
        self.push(node, pid, tid, "accept4", |e| {
            e.ret = Some(5);
            e.fd = Some(5);
            e.sock = Some(s);
        })
    }

    /// A data call moving `n` bytes at stream offset `off` (`n` < 0 is an error return).
    #[allow(clippy::too_many_arguments)]
    pub fn data(
        &mut self,
        node: &str,
        pid: i32,
        tid: i32,
        call: &str,
        s: &Sock,
        off: u64,
        n: i64,
    ) -> u64 {
        let s = s.clone();
        self.push(node, pid, tid, call, |e| {
            e.ret = Some(n);
            if n < 0 {
                e.errno = Some("EAGAIN".into());
            }
            e.fd = Some(5);
            e.len = Some(n.max(0) as u64);
            e.off = Some(off);
            e.sock = Some(s);
        })
    }

    pub fn sendto(&mut self, node: &str, pid: i32, s: &Sock, to: &str, n: i64) -> u64 {
        let s = s.clone();
        self.push(node, pid, pid, "sendto", |e| {
            e.ret = Some(n);
            e.addr = Some(to.into());
            e.sock = Some(s);
        })
    }

    pub fn recvfrom(&mut self, node: &str, pid: i32, s: &Sock, from: &str, n: i64) -> u64 {
        let s = s.clone();
        self.push(node, pid, pid, "recvfrom", |e| {
            e.ret = Some(n);
            e.addr = Some(from.into());
            e.sock = Some(s);
        })
    }
}

/// a (client, pid 100) writes 10 + 15 bytes to b (server, pid 200), which reads 4, 16, 5 and
/// answers 3 bytes.
pub fn client_server() -> Trace {
    let mut t = Trace::new();
    t.spawn("b", 200, "server"); // 0
    t.listen("b", 200, 1, "127.0.0.1:7000"); // 1
    t.spawn("a", 100, "client"); // 2
    let c = tcp(10, "127.0.0.1:40000", "127.0.0.1:7000");
    let s = tcp(20, "127.0.0.1:7000", "127.0.0.1:40000");
    t.connect("a", 100, 100, c.clone()); // 3
    t.accept("b", 200, 200, s.clone()); // 4
    t.data("a", 100, 100, "write", &c, 0, 10); // 5
    t.data("a", 100, 100, "write", &c, 10, 15); // 6
    t.data("b", 200, 200, "read", &s, 0, 4); // 7
    t.data("b", 200, 200, "read", &s, 4, 16); // 8
    t.data("b", 200, 200, "read", &s, 20, 5); // 9
    t.data("b", 200, 200, "write", &s, 0, 3); // 10
    t.data("a", 100, 100, "read", &c, 0, 3); // 11
    t.exit("a", 100, 100, Some(0), None); // 12
    t.exit("b", 200, 200, None, Some("SIGKILL")); // 13
    t
}

/// a → b → c messages; a's later send and c's later send are unrelated.
pub fn three_nodes() -> Trace {
    let mut t = Trace::new();
    t.spawn("a", 100, "a"); // 0
    t.spawn("b", 200, "b"); // 1
    t.spawn("c", 300, "c"); // 2
    t.listen("b", 200, 1, "127.0.0.1:7000"); // 3
    t.listen("c", 300, 2, "127.0.0.1:7001"); // 4
    let ab = tcp(10, "127.0.0.1:40000", "127.0.0.1:7000");
    let ba = tcp(20, "127.0.0.1:7000", "127.0.0.1:40000");
    let bc = tcp(21, "127.0.0.1:40001", "127.0.0.1:7001");
    let cb = tcp(30, "127.0.0.1:7001", "127.0.0.1:40001");
    t.connect("a", 100, 100, ab.clone()); // 5
    t.accept("b", 200, 200, ba.clone()); // 6
    t.connect("b", 200, 200, bc.clone()); // 7
    t.accept("c", 300, 300, cb.clone()); // 8
    t.data("a", 100, 100, "write", &ab, 0, 5); // 9
    t.data("b", 200, 200, "read", &ba, 0, 5); // 10
    t.data("b", 200, 200, "write", &bc, 0, 5); // 11
    t.data("c", 300, 300, "read", &cb, 0, 5); // 12
    t.data("a", 100, 100, "write", &ab, 5, 3); // 13
    t.data("c", 300, 300, "write", &cb, 0, 2); // 14
    t
}

pub fn udp_trace() -> Trace {
    let mut t = Trace::new();
    t.spawn("a", 100, "a"); // 0
    t.spawn("b", 200, "b"); // 1
    let sb = udp(50, "0.0.0.0:6000");
    let sa = udp(40, "127.0.0.1:5000");
    t.push("b", 200, 200, "bind", |e| {
        e.ret = Some(0);
        e.addr = Some("0.0.0.0:6000".into());
        e.sock = Some(udp(50, "0.0.0.0:6000"));
    }); // 2
    t.sendto("a", 100, &sa, "127.0.0.1:6000", 5); // 3
    t.sendto("a", 100, &sa, "127.0.0.1:6000", 5); // 4
    t.sendto("a", 100, &sa, "127.0.0.1:6000", 7); // 5
    t.recvfrom("b", 200, &sb, "127.0.0.1:5000", 5); // 6
    t.recvfrom("b", 200, &sb, "127.0.0.1:5000", 7); // 7
    t.recvfrom("b", 200, &sb, "127.0.0.1:5000", 5); // 8
    t.sendto("a", 100, &sa, "127.0.0.1:6001", 9); // 9: nobody there
    t.recvfrom("b", 200, &sb, "127.0.0.1:5000", -11); // 10: EAGAIN
    t
}
