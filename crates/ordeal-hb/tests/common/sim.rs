//! A random multi-node system, simulated for the tests: threads start calls and finish them
//! later, and an event is recorded when its call finishes, as the tracer records them. So a
//! receive is often recorded before the send whose bytes it read, an accept before its
//! connect, a vfork after the child ran, a datagram's receive before its send. The system has
//! TCP across nodes, Unix sockets by path and socketpairs, UDP with lost and external
//! datagrams, connections to and from untraced peers, failed connects, threads and processes
//! with reused tids, file calls, injected-fault marks, and calls that claim to outlast the
//! next call of their thread.

use super::Rng;
use ordeal_events::{Class, Event, FaultMark, Header, NodeInfo, Proto, Sock, SCHEMA_VERSION};
use std::collections::VecDeque;

const NODES: [&str; 4] = ["db", "api", "cache", "client"];
/// Listening ports of the header, by node index (the client has none).
const PORTS: [u16; 3] = [7000, 7100, 7200];

struct Thread {
    node: usize,
    pid: i32,
    tid: i32,
    alive: bool,
    /// A call started and not finished: what finishing it records.
    busy: Option<Call>,
    /// Sockets this thread owns (indices into `socks`).
    socks: Vec<usize>,
}

#[derive(Clone)]
enum Call {
    /// Recorded as is when it finishes.
    Plain(Event),
    /// A stream send: its offset is taken when it is recorded.
    Send(Event, usize),
    /// A stream receive: reads what has arrived when it finishes.
    Recv(Event, usize),
    Accept(Event, usize),
    /// A UDP receive.
    RecvFrom(Event, usize),
}

struct SockState {
    ino: u64,
    proto: Proto,
    local: Option<String>,
    remote: Option<String>,
    peer_ino: Option<u64>,
    /// The other end's index, when traced.
    peer: Option<usize>,
    /// Bytes sent to this socket not read yet; for an untraced peer, bytes it may send.
    inbox: u64,
    /// Next stream offsets of sends and receives, taken in record order as the tracer does.
    sent: u64,
    received: u64,
    /// Connections waiting to be accepted (socket indices of the server ends).
    backlog: VecDeque<usize>,
    /// Datagrams waiting: (source address, size).
    dgrams: VecDeque<(String, u64)>,
    listening: bool,
}

pub struct Sim {
    rng: Rng,
    now: u64,
    pub events: Vec<Event>,
    threads: Vec<Thread>,
    socks: Vec<SockState>,
    next_ino: u64,
    next_pid: i32,
    next_port: u16,
    /// Dead tids, handed out again now and then.
    dead: Vec<i32>,
}

fn ev(call: &str, class: Class) -> Event {
    Event {
        call: call.into(),
        class: Some(class),
        ..Default::default()
    }
}

impl Sim {
    pub fn header() -> Header {
        Header {
            schema: "ordeal-trace".into(),
            version: SCHEMA_VERSION,
            experiment: "sim".into(),
            started_at: "2026-01-01T00:00:00Z".into(),
            nodes: NODES
                .iter()
                .enumerate()
                .map(|(k, n)| NodeInfo {
                    name: n.to_string(),
                    role: if k == 3 { "workload" } else { "node" }.into(),
                    ports: PORTS.get(k).map(|&p| vec![p, p + 1]).unwrap_or_default(),
                    protocol: None,
                })
                .collect(),
        }
    }

    /// About `steps` scheduling steps (each records at most one event).
    pub fn run(seed: u64, steps: usize) -> Vec<Event> {
        let mut s = Sim {
            rng: Rng(seed | 1),
            now: 0,
            events: Vec::new(),
            threads: Vec::new(),
            socks: Vec::new(),
            next_ino: 1000,
            next_pid: 100,
            next_port: 40000,
            dead: Vec::new(),
        };
        for node in 0..NODES.len() {
            let t = s.spawn(node);
            if node < 3 {
                // Every server listens on its TCP port and a Unix path, and binds a UDP port.
                s.listen(t, Proto::Tcp, &format!("127.0.0.1:{}", PORTS[node]));
                s.listen(t, Proto::Unix, &format!("/run/{}.sock", NODES[node]));
                s.bind_udp(t, &format!("0.0.0.0:{}", PORTS[node] + 1));
            }
        }
        for _ in 0..steps {
            s.step();
        }
        // Calls still in progress are never recorded, as when a run ends.
        s.events
    }

    fn tick(&mut self) -> u64 {
        self.now += 50 + self.rng.below(400);
        self.now
    }

    /// Records an event of thread `t` that started at `start`.
    fn record(&mut self, t: usize, mut e: Event, start: u64) {
        let th = &self.threads[t];
        e.seq = self.events.len() as u64;
        e.node = NODES[th.node].into();
        e.pid = th.pid;
        e.tid = th.tid;
        e.ts = start;
        e.dur = if e.class == Some(Class::Proc) {
            0
        } else if self.rng.below(50) == 0 {
            // Claims to outlast the thread's next call.
            self.now.saturating_sub(start) + 100_000
        } else {
            self.now.saturating_sub(start) + 1 + self.rng.below(30)
        };
        if self.rng.below(40) == 0 {
            e.fault = Some(if self.rng.below(2) == 0 {
                FaultMark::fired("f1", "delay 1ms before")
            } else {
                FaultMark::effect("f2", "fail EIO")
            });
        }
        self.events.push(e);
    }

    fn new_tid(&mut self) -> i32 {
        if !self.dead.is_empty() && self.rng.below(3) == 0 {
            let k = self.rng.below(self.dead.len() as u64) as usize;
            return self.dead.swap_remove(k);
        }
        self.next_pid += 1;
        self.next_pid
    }

    fn spawn(&mut self, node: usize) -> usize {
        let pid = self.new_tid();
        let t = self.add_thread(node, pid, pid);
        let mut e = ev("spawn", Class::Proc);
        e.child = Some(pid);
        e.argv = Some(vec![format!("/bin/{}", NODES[node]), "--serve".into()]);
        let now = self.tick();
        self.record(t, e, now);
        t
    }

    fn add_thread(&mut self, node: usize, pid: i32, tid: i32) -> usize {
        self.threads.push(Thread {
            node,
            pid,
            tid,
            alive: true,
            busy: None,
            socks: Vec::new(),
        });
        self.threads.len() - 1
    }

    fn new_sock(&mut self, proto: Proto, local: Option<String>, remote: Option<String>) -> usize {
        self.next_ino += 1;
        self.socks.push(SockState {
            ino: self.next_ino,
            proto,
            local,
            remote,
            peer_ino: None,
            peer: None,
            inbox: 0,
            sent: 0,
            received: 0,
            backlog: VecDeque::new(),
            dgrams: VecDeque::new(),
            listening: false,
        });
        self.socks.len() - 1
    }

    fn sock(&self, k: usize) -> Sock {
        let s = &self.socks[k];
        Sock {
            ino: s.ino,
            proto: s.proto,
            local: s.local.clone(),
            remote: s.remote.clone(),
            peer_ino: s.peer_ino,
            peer_node: None,
        }
    }

    fn listen(&mut self, t: usize, proto: Proto, addr: &str) {
        let k = self.new_sock(proto, Some(addr.into()), None);
        self.socks[k].listening = true;
        let mut e = ev("listen", Class::Net);
        e.ret = Some(0);
        e.sock = Some(self.sock(k));
        let now = self.tick();
        self.record(t, e, now);
        self.threads[t].socks.push(k);
    }

    fn bind_udp(&mut self, t: usize, addr: &str) {
        let k = self.new_sock(Proto::Udp, Some(addr.into()), None);
        let mut e = ev("bind", Class::Net);
        e.ret = Some(0);
        e.addr = Some(addr.into());
        e.sock = Some(self.sock(k));
        let now = self.tick();
        self.record(t, e, now);
        self.threads[t].socks.push(k);
    }

    /// A traced socket of some thread bound or listening on `addr`.
    fn find(&self, proto: Proto, addr: &str, listening: bool) -> Option<usize> {
        self.socks.iter().position(|s| {
            s.proto == proto && s.listening == listening && s.local.as_deref() == Some(addr)
        })
    }

    fn step(&mut self) {
        let live: Vec<usize> = (0..self.threads.len())
            .filter(|&t| self.threads[t].alive)
            .collect();
        if live.is_empty() || self.threads.len() < 6 && self.rng.below(4) == 0 {
            let node = self.rng.below(NODES.len() as u64) as usize;
            self.spawn(node);
            return;
        }
        let t = live[self.rng.below(live.len() as u64) as usize];
        match self.threads[t].busy.take() {
            Some(call) => self.finish(t, call),
            None => self.start(t),
        }
    }

    /// Finishes a call (or leaves it waiting); most calls finish at once, some later.
    fn submit(&mut self, t: usize, call: Call) {
        if self.rng.below(3) == 0 {
            self.threads[t].busy = Some(call);
        } else {
            self.finish(t, call);
        }
    }

    fn finish(&mut self, t: usize, call: Call) {
        let now = self.tick();
        match call {
            Call::Plain(e) => {
                let start = e.ts;
                let exits = e.call == "exit";
                self.record(t, e, start);
                if exits {
                    self.threads[t].alive = false;
                    let tid = self.threads[t].tid;
                    self.dead.push(tid);
                }
            }
            Call::Send(mut e, k) => {
                let n = e.ret.unwrap_or(0).max(0) as u64;
                e.off = Some(self.socks[k].sent);
                self.socks[k].sent += n;
                e.sock = Some(self.sock(k));
                let start = e.ts;
                self.record(t, e, start);
            }
            Call::Recv(mut e, k) => {
                let avail = self.socks[k].inbox;
                if avail == 0 && self.rng.below(2) == 0 {
                    // Still blocked.
                    self.threads[t].busy = Some(Call::Recv(e, k));
                    return;
                }
                if avail == 0 {
                    e.ret = Some(-11);
                    e.errno = Some("EAGAIN".into());
                } else {
                    let n = 1 + self.rng.below(avail);
                    self.socks[k].inbox -= n;
                    e.ret = Some(n as i64);
                }
                e.off = Some(self.socks[k].received);
                self.socks[k].received += e.ret.unwrap_or(0).max(0) as u64;
                e.sock = Some(self.sock(k));
                let start = e.ts;
                self.record(t, e, start);
            }
            Call::Accept(mut e, l) => {
                let Some(k) = self.socks[l].backlog.pop_front() else {
                    if self.rng.below(2) == 0 {
                        self.threads[t].busy = Some(Call::Accept(e, l));
                    } else {
                        e.ret = Some(-11);
                        e.errno = Some("EAGAIN".into());
                        e.sock = Some(self.sock(l));
                        let start = e.ts;
                        self.record(t, e, start);
                    }
                    return;
                };
                e.ret = Some(5);
                e.sock = Some(self.sock(k));
                let start = e.ts;
                self.record(t, e, start);
                self.threads[t].socks.push(k);
            }
            Call::RecvFrom(mut e, k) => {
                match self.socks[k].dgrams.pop_front() {
                    Some((from, n)) => {
                        e.ret = Some(n as i64);
                        // recv(2) has no address buffer: the source is unknown.
                        e.addr = (self.rng.below(4) != 0).then_some(from);
                    }
                    None => {
                        e.ret = Some(-11);
                        e.errno = Some("EAGAIN".into());
                    }
                }
                e.sock = Some(self.sock(k));
                let start = e.ts;
                self.record(t, e, start);
            }
        }
        let _ = now;
    }

    fn owned(&mut self, t: usize, pick: impl Fn(&SockState) -> bool) -> Option<usize> {
        let mine: Vec<usize> = self.threads[t]
            .socks
            .iter()
            .copied()
            .filter(|&k| pick(&self.socks[k]))
            .collect();
        (!mine.is_empty()).then(|| mine[self.rng.below(mine.len() as u64) as usize])
    }

    fn start(&mut self, t: usize) {
        let start = self.tick();
        let mut e = ev("", Class::Data);
        e.ts = start;
        let node = self.threads[t].node;
        let waiting = self.threads[t]
            .socks
            .iter()
            .any(|&k| !self.socks[k].backlog.is_empty());
        let action = if waiting && self.rng.below(2) == 0 {
            62
        } else {
            self.rng.below(100)
        };
        match action {
            // Stream sends and receives, the bulk of the trace.
            0..=31 => {
                let Some(k) = self.owned(t, |s| s.proto != Proto::Udp && !s.listening) else {
                    return;
                };
                let n = 1 + self.rng.below(40);
                e.call = "write".into();
                e.ret = Some(n as i64);
                e.len = Some(n);
                match self.socks[k].peer {
                    Some(p) => self.socks[p].inbox += n,
                    None if self.socks[k].remote.is_none() => return,
                    None => {}
                }
                self.submit(t, Call::Send(e, k));
            }
            32..=61 => {
                let Some(k) = self.owned(t, |s| s.proto != Proto::Udp && !s.listening) else {
                    return;
                };
                if self.socks[k].peer.is_none() {
                    // An untraced peer sends now and then.
                    self.socks[k].inbox += self.rng.below(20);
                }
                e.call = "read".into();
                e.len = Some(4096);
                self.submit(t, Call::Recv(e, k));
            }
            62..=65 => {
                let Some(l) = self.owned(t, |s| s.listening) else {
                    return;
                };
                if self.socks[l].backlog.is_empty()
                    && self.socks[l].proto == Proto::Tcp
                    && self.rng.below(4) == 0
                {
                    // An untraced client connects.
                    let port = self.next_port();
                    let remote = format!("10.9.9.9:{port}");
                    let k = self.new_sock(Proto::Tcp, self.socks[l].local.clone(), Some(remote));
                    self.socks[l].backlog.push_back(k);
                }
                e.call = "accept4".into();
                e.class = Some(Class::Net);
                self.submit(t, Call::Accept(e, l));
            }
            66..=69 => self.connect(t, e),
            70..=81 => self.udp(t, e),
            82..=88 => {
                // File calls: some drawn (fsync, rename), some not.
                e.class = Some(Class::File);
                e.ret = Some(0);
                e.path = Some(format!("/data/{}/wal", NODES[node]));
                match self.rng.below(4) {
                    0 => e.call = "fsync".into(),
                    1 => {
                        e.call = "rename".into();
                        e.path2 = Some(format!("/data/{}/wal.old", NODES[node]));
                    }
                    2 => {
                        e.call = "write".into();
                        e.ret = Some(12);
                    }
                    _ => e.call = "openat".into(),
                }
                self.submit(t, Call::Plain(e));
            }
            89..=90 => self.fork(t, e),
            91 => self.socketpair(t),
            92 => {
                e.call = "exec".into();
                e.class = Some(Class::Proc);
                e.argv = Some(vec!["/bin/sh".into(), "-c".into(), "true".into()]);
                self.submit(t, Call::Plain(e));
            }
            93 if self.threads.iter().filter(|x| x.alive).count() > 4 => {
                e.call = "exit".into();
                e.class = Some(Class::Proc);
                if self.rng.below(3) == 0 {
                    e.signal = Some("SIGKILL".into());
                } else {
                    e.code = Some(self.rng.below(3) as i32);
                }
                self.finish(t, Call::Plain(e));
            }
            _ => {
                e.call = "getpid".into();
                e.class = None;
                e.ret = Some(self.threads[t].pid as i64);
                self.submit(t, Call::Plain(e));
            }
        }
    }

    fn next_port(&mut self) -> u16 {
        self.next_port += 1;
        self.next_port
    }

    fn connect(&mut self, t: usize, mut e: Event) {
        e.call = "connect".into();
        e.class = Some(Class::Net);
        let target = self.rng.below(3) as usize;
        let local = format!("127.0.0.1:{}", self.next_port());
        match self.rng.below(10) {
            0 => {
                // Refused: a header port nobody listens on.
                e.ret = Some(-111);
                e.errno = Some("ECONNREFUSED".into());
                e.addr = Some(format!("127.0.0.1:{}", PORTS[target] + 50));
                self.submit(t, Call::Plain(e));
            }
            1 => {
                // An untraced server outside the system.
                let remote = "93.184.216.34:443".to_string();
                let k = self.new_sock(Proto::Tcp, Some(local), Some(remote.clone()));
                e.ret = Some(-115);
                e.errno = Some("EINPROGRESS".into());
                e.addr = Some(remote);
                e.sock = Some(self.sock(k));
                self.threads[t].socks.push(k);
                self.submit(t, Call::Plain(e));
            }
            2..=3 => {
                let path = format!("/run/{}.sock", NODES[target]);
                let Some(l) = self.find(Proto::Unix, &path, true) else {
                    return;
                };
                let c = self.new_sock(Proto::Unix, None, Some(path.clone()));
                let s = self.new_sock(Proto::Unix, Some(path.clone()), None);
                self.link(c, s);
                self.socks[l].backlog.push_back(s);
                e.ret = Some(0);
                e.addr = Some(path);
                e.sock = Some(self.sock(c));
                self.threads[t].socks.push(c);
                self.submit(t, Call::Plain(e));
            }
            _ => {
                let addr = format!("127.0.0.1:{}", PORTS[target]);
                let Some(l) = self.find(Proto::Tcp, &addr, true) else {
                    return;
                };
                let c = self.new_sock(Proto::Tcp, Some(local.clone()), Some(addr.clone()));
                let s = self.new_sock(Proto::Tcp, Some(addr.clone()), Some(local));
                self.link(c, s);
                self.socks[l].backlog.push_back(s);
                e.ret = Some(0);
                e.addr = Some(addr);
                e.sock = Some(self.sock(c));
                self.threads[t].socks.push(c);
                self.submit(t, Call::Plain(e));
            }
        }
    }

    fn link(&mut self, a: usize, b: usize) {
        self.socks[a].peer = Some(b);
        self.socks[b].peer = Some(a);
    }

    /// A socketpair between this thread and a new thread of its process.
    fn socketpair(&mut self, t: usize) {
        let a = self.new_sock(Proto::Unix, None, None);
        let b = self.new_sock(Proto::Unix, None, None);
        self.link(a, b);
        let (ia, ib) = (self.socks[a].ino, self.socks[b].ino);
        self.socks[a].peer_ino = Some(ib);
        self.socks[b].peer_ino = Some(ia);
        self.threads[t].socks.push(a);
        let (node, pid) = (self.threads[t].node, self.threads[t].pid);
        let tid = self.new_tid();
        let mut e = ev("clone", Class::Proc);
        e.child = Some(tid);
        e.ret = Some(tid as i64);
        let start = self.tick();
        self.record(t, e, start);
        let c = self.add_thread(node, pid, tid);
        self.threads[c].socks.push(b);
    }

    fn fork(&mut self, t: usize, mut e: Event) {
        let (node, pid) = (self.threads[t].node, self.threads[t].pid);
        let tid = self.new_tid();
        let kind = self.rng.below(3);
        e.call = ["clone", "fork", "vfork"][kind as usize].into();
        e.class = Some(Class::Proc);
        e.child = Some(tid);
        e.ret = Some(tid as i64);
        let child_pid = if kind == 0 { pid } else { tid };
        let c = self.add_thread(node, child_pid, tid);
        if kind == 2 {
            // vfork returns once the child has exec'd: the child is recorded first.
            let mut x = ev("exec", Class::Proc);
            x.argv = Some(vec!["/bin/helper".into()]);
            let now = self.tick();
            self.record(c, x, now);
            let start = e.ts;
            self.record(t, e, start);
        } else {
            self.submit(t, Call::Plain(e));
        }
    }

    fn udp(&mut self, t: usize, mut e: Event) {
        let Some(k) = self.owned(t, |s| s.proto == Proto::Udp) else {
            // A client gets an unbound UDP socket with an ephemeral port.
            let local = format!("127.0.0.1:{}", self.next_port());
            let k = self.new_sock(Proto::Udp, Some(local), None);
            self.threads[t].socks.push(k);
            return;
        };
        if self.rng.below(2) == 0 {
            // A datagram to a server, to the last peer that wrote to us, or outside.
            let to = match self.rng.below(5) {
                0 => "8.8.8.8:53".to_string(),
                1 => format!("127.0.0.1:{}", PORTS[self.rng.below(3) as usize] + 1),
                _ => format!("127.0.0.1:{}", 40000 + self.rng.below(60)),
            };
            let n = [8, 8, 16, 32][self.rng.below(4) as usize];
            let from = self.socks[k].local.clone().unwrap_or_default();
            let from = from.replace("0.0.0.0", "127.0.0.1");
            let port = to.rsplit(':').next().unwrap_or_default().to_string();
            if let Some(d) = self.socks.iter().position(|s| {
                s.proto == Proto::Udp
                    && s.local
                        .as_deref()
                        .is_some_and(|l| l.ends_with(&format!(":{port}")))
            }) {
                if self.rng.below(8) != 0 {
                    self.socks[d].dgrams.push_back((from, n));
                }
            }
            e.call = "sendto".into();
            e.ret = Some(n as i64);
            e.addr = Some(to);
            e.sock = Some(self.sock(k));
            self.submit(t, Call::Plain(e));
        } else {
            e.call = "recvfrom".into();
            self.submit(t, Call::RecvFrom(e, k));
        }
    }
}
