//! Turns the probe's [`Record`]s into trace events ([`ordeal_events::Event`]): the lifecycle of
//! the followed processes (class `proc`) and their socket transfers (class `data`).
//!
//! A transfer's entry and exit are paired by thread. Its socket is the inode the kernel read
//! behind the descriptor as the call started ([`Record::Enter`]'s `ino`, when a socket), so
//! it is known even when the descriptor was closed, or the process is gone, by the time the
//! record is processed; a call on any other file is not a transfer. The socket's protocol and
//! addresses come from the `/proc/PID/net/{tcp,tcp6,udp,udp6}` tables by inode
//! ([`ProcResolver`]), or this process's own when PID is gone (inodes are unique across
//! namespaces), and are remembered per inode once connected: a socket closed before its first
//! transfer is processed keeps unknown addresses (`Proto::Other`, no local or remote).
//! Only when the kernel could not read the inode does the resolution go through
//! `/proc/PID/fd/FD` (`socket:[INO]`), which then needs the descriptor still open.

use crate::{Ending, Record};
use ordeal_events::calls::{self, Arg, CallSpec};
use ordeal_events::{Class, Direction, Event, Proto, Sock};
use std::collections::HashMap;

/// Finds what socket a process's descriptor is.
pub trait SockResolver {
    /// The socket `fd` of process `pid` is now, or None when it is not a socket (or gone).
    fn resolve(&mut self, pid: i32, fd: i32) -> Option<Sock>;
    /// The socket `ino` of process `pid` (known to be a socket), with what can still be
    /// found of its protocol and addresses.
    fn describe(&mut self, pid: i32, ino: u64) -> Sock;
}

/// Resolves through /proc: the inode from the descriptor's link, the addresses from the
/// network namespace tables; remembers each connected socket's addresses.
#[derive(Debug, Default)]
pub struct ProcResolver {
    connected: HashMap<u64, Sock>,
}

impl ProcResolver {
    fn from_net_tables(pid: &str, ino: u64) -> Option<Sock> {
        [
            ("tcp", Proto::Tcp),
            ("tcp6", Proto::Tcp),
            ("udp", Proto::Udp),
            ("udp6", Proto::Udp),
        ]
        .into_iter()
        .find_map(|(table, proto)| {
            let text = std::fs::read_to_string(format!("/proc/{pid}/net/{table}")).ok()?;
            let (local, remote) = find_in_net_table(&text, ino)?;
            Some(Sock {
                ino,
                proto,
                local: Some(local),
                remote,
                peer_ino: None,
                peer_node: None,
            })
        })
    }
}

impl SockResolver for ProcResolver {
    fn resolve(&mut self, pid: i32, fd: i32) -> Option<Sock> {
        let link = std::fs::read_link(format!("/proc/{pid}/fd/{fd}")).ok()?;
        let ino = socket_inode(&link.to_string_lossy())?;
        Some(self.describe(pid, ino))
    }

    fn describe(&mut self, pid: i32, ino: u64) -> Sock {
        if let Some(sock) = self.connected.get(&ino) {
            return sock.clone();
        }
        let found = ProcResolver::from_net_tables(&pid.to_string(), ino)
            .or_else(|| ProcResolver::from_net_tables("self", ino));
        match found {
            Some(sock) => {
                // Until connected, a socket's remote (and a bound port) may still change.
                if sock.remote.is_some() {
                    self.connected.insert(ino, sock.clone());
                }
                sock
            }
            None => Sock {
                ino,
                proto: Proto::Other,
                local: None,
                remote: None,
                peer_ino: None,
                peer_node: None,
            },
        }
    }
}

/// `socket:[123]` → 123.
fn socket_inode(link: &str) -> Option<u64> {
    link.strip_prefix("socket:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

/// The (local, remote) addresses of the socket `ino` in a /proc/net/{tcp,udp}[6] table; the
/// remote is None when it is all zeros (listening, unconnected).
fn find_in_net_table(text: &str, ino: u64) -> Option<(String, Option<String>)> {
    text.lines().skip(1).find_map(|line| {
        let cols: Vec<&str> = line.split_whitespace().collect();
        if cols.get(9)?.parse::<u64>().ok()? != ino {
            return None;
        }
        let local = net_address(cols.get(1)?)?;
        let remote = net_address(cols.get(2)?)?;
        let unset = remote.ends_with(":0");
        Some((local, (!unset).then_some(remote)))
    })
}

/// `0100007F:1F90` → `127.0.0.1:8080`; 32 hex digits → `[v6]:port`. The address is in
/// 32-bit words in host (little-endian) order.
fn net_address(hex: &str) -> Option<String> {
    let (ip, port) = hex.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let mut bytes = Vec::with_capacity(16);
    for word in 0..ip.len() / 8 {
        let w = u32::from_str_radix(ip.get(8 * word..8 * word + 8)?, 16).ok()?;
        bytes.extend(w.to_le_bytes());
    }
    match bytes.len() {
        4 => Some(format!(
            "{}:{port}",
            std::net::Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3])
        )),
        16 => {
            let v6: [u8; 16] = bytes.try_into().ok()?;
            Some(format!("[{}]:{port}", std::net::Ipv6Addr::from(v6)))
        }
        _ => None,
    }
}

/// A transfer whose entry was seen, waiting for its exit.
#[derive(Debug)]
struct Started {
    spec: &'static CallSpec,
    tgid: i32,
    fd: i32,
    len: Option<u64>,
    sock: Sock,
    ktime_ns: u64,
}

/// Builds events from records, in the order they complete: `seq` is dense from 0, `ts` is
/// the record's time since `origin_ns` (CLOCK_MONOTONIC).
pub struct Recorder<R: SockResolver = ProcResolver> {
    node: String,
    origin_ns: u64,
    resolver: R,
    started: HashMap<i32, Started>,
    /// Bytes each socket sent and received so far, by inode.
    streams: HashMap<u64, (u64, u64)>,
    next_seq: u64,
}

impl Recorder<ProcResolver> {
    /// A recorder resolving sockets through /proc, naming every event's node `node`.
    pub fn new(node: impl Into<String>, origin_ns: u64) -> Self {
        Recorder::with_resolver(node, origin_ns, ProcResolver::default())
    }
}

impl<R: SockResolver> Recorder<R> {
    pub fn with_resolver(node: impl Into<String>, origin_ns: u64, resolver: R) -> Self {
        Recorder {
            node: node.into(),
            origin_ns,
            resolver,
            started: HashMap::new(),
            streams: HashMap::new(),
            next_seq: 0,
        }
    }

    /// The event `record` completes, if any.
    pub fn record(&mut self, record: &Record) -> Option<Event> {
        let mut ev = match *record {
            Record::Enter {
                tid,
                tgid,
                nr,
                args,
                ino,
                socket,
                ktime_ns,
                ..
            } => {
                self.started.remove(&tid);
                let spec = calls::by_nr(nr).filter(|s| s.moves_data())?;
                let fd_arg = spec.arg(Arg::Fd)?;
                let fd = args[fd_arg] as i32;
                // The kernel reads the inode behind the first argument only.
                let sock = match (fd_arg, ino, socket) {
                    (0, 0, _) => self.resolver.resolve(tgid, fd)?,
                    (0, ino, true) => self.resolver.describe(tgid, ino),
                    (0, _, false) => return None,
                    _ => self.resolver.resolve(tgid, fd)?,
                };
                let len = spec.arg(Arg::Len).map(|i| args[i]);
                self.started.insert(
                    tid,
                    Started {
                        spec,
                        tgid,
                        fd,
                        len,
                        sock,
                        ktime_ns,
                    },
                );
                return None;
            }
            Record::Exit {
                tid,
                nr,
                ret,
                ktime_ns,
                ..
            } => {
                let started = self.started.remove(&tid).filter(|s| s.spec.nr == nr)?;
                self.transfer(tid, started, ret, ktime_ns)
            }
            Record::Fork {
                parent,
                parent_tid,
                child,
                thread,
                ktime_ns,
            } => {
                let call = if thread { "clone" } else { "fork" };
                let mut ev = self.lifecycle(parent, parent_tid, call, ktime_ns);
                ev.child = Some(child);
                ev
            }
            Record::Exec { pid, ktime_ns, .. } => self.lifecycle(pid, pid, "exec", ktime_ns),
            Record::ProcessExit {
                pid,
                ending,
                ktime_ns,
            } => {
                let mut ev = self.lifecycle(pid, pid, "exit", ktime_ns);
                match ending {
                    Ending::Exited(code) => ev.code = Some(code),
                    Ending::Signaled { signal, .. } => ev.signal = Some(signal_name(signal)),
                }
                ev
            }
        };
        ev.seq = self.next_seq;
        self.next_seq += 1;
        Some(ev)
    }

    fn since_origin(&self, ktime_ns: u64) -> u64 {
        ktime_ns.saturating_sub(self.origin_ns)
    }

    fn lifecycle(&self, pid: i32, tid: i32, call: &str, ktime_ns: u64) -> Event {
        Event {
            ts: self.since_origin(ktime_ns),
            node: self.node.clone(),
            pid,
            tid,
            call: call.to_string(),
            class: Some(Class::Proc),
            ..Event::default()
        }
    }

    fn transfer(&mut self, tid: i32, s: Started, ret: i64, ktime_ns: u64) -> Event {
        // Several messages (mmsg) have no single place in the stream.
        let moved = if ret > 0 && !s.spec.has(Arg::MsgVec) {
            ret as u64
        } else {
            0
        };
        let counters = self.streams.entry(s.sock.ino).or_default();
        let counter = match s.spec.direction() {
            Some(Direction::Send) => &mut counters.0,
            _ => &mut counters.1,
        };
        let off = *counter;
        *counter += moved;
        Event {
            ts: self.since_origin(s.ktime_ns),
            dur: ktime_ns.saturating_sub(s.ktime_ns),
            node: self.node.clone(),
            pid: s.tgid,
            tid,
            call: s.spec.name.to_string(),
            class: Some(Class::Data),
            ret: Some(ret),
            errno: errno_name(ret),
            fd: Some(s.fd),
            sock: Some(s.sock),
            len: s.len,
            off: Some(off),
            ..Event::default()
        }
    }
}

fn errno_name(ret: i64) -> Option<String> {
    (ret < 0).then(|| format!("{:?}", nix::errno::Errno::from_raw((-ret) as i32)))
}

fn signal_name(sig: i32) -> String {
    nix::sys::signal::Signal::try_from(sig)
        .map(|s| s.as_str().to_string())
        .unwrap_or_else(|_| format!("SIG{sig}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Knows one socket, inode 77, as descriptor 3 of process 10.
    struct OneSocket;
    impl SockResolver for OneSocket {
        fn resolve(&mut self, pid: i32, fd: i32) -> Option<Sock> {
            (pid == 10 && fd == 3).then(|| self.describe(pid, 77))
        }
        fn describe(&mut self, _pid: i32, ino: u64) -> Sock {
            Sock {
                ino,
                proto: Proto::Tcp,
                local: Some("127.0.0.1:1".into()),
                remote: Some("127.0.0.1:2".into()),
                peer_ino: None,
                peer_node: None,
            }
        }
    }

    const WRITE: i64 = 1;
    const READ: i64 = 0;

    /// An entry whose inode the kernel could not read: resolved through the descriptor.
    fn enter(tid: i32, nr: i64, fd: u64, len: u64, t: u64) -> Record {
        enter_on(tid, nr, fd, (0, false), len, t)
    }

    fn enter_on(tid: i32, nr: i64, fd: u64, file: (u64, bool), len: u64, t: u64) -> Record {
        Record::Enter {
            tid,
            tgid: 10,
            nr,
            args: [fd, 0x1000, len, 0, 0, 0],
            ino: file.0,
            socket: file.1,
            sock: None,
            ktime_ns: t,
            mem: vec![],
        }
    }

    fn exit(tid: i32, nr: i64, ret: i64, t: u64) -> Record {
        Record::Exit {
            tid,
            tgid: 10,
            nr,
            ret,
            ktime_ns: t,
            file: None,
            mem: vec![],
        }
    }

    #[test]
    fn socket_transfers_pair_by_thread_and_count_stream_offsets() {
        let mut r = Recorder::with_resolver("n", 1000, OneSocket);
        let records = [
            enter(10, WRITE, 3, 5, 1100),
            enter(11, READ, 3, 64, 1150),
            exit(10, WRITE, 5, 1200),
            enter(10, WRITE, 3, 5, 1300),
            exit(10, WRITE, -32, 1400),
            enter(10, WRITE, 4, 5, 1500), // not a socket: dropped
            exit(10, WRITE, 5, 1600),
            exit(11, READ, 4, 1700),
            enter(10, WRITE, 3, 5, 1800),
            exit(10, WRITE, 5, 1900),
        ];
        let evs: Vec<Event> = records.iter().filter_map(|x| r.record(x)).collect();
        let facts: Vec<_> = evs
            .iter()
            .map(|e| {
                (
                    e.seq,
                    e.ts,
                    e.dur,
                    e.tid,
                    e.call.as_str(),
                    e.ret,
                    e.errno.as_deref(),
                    e.len,
                    e.off,
                )
            })
            .collect();
        assert_eq!(
            facts,
            vec![
                (0, 100, 100, 10, "write", Some(5), None, Some(5), Some(0)),
                (
                    1,
                    300,
                    100,
                    10,
                    "write",
                    Some(-32),
                    Some("EPIPE"),
                    Some(5),
                    Some(5)
                ),
                (2, 150, 550, 11, "read", Some(4), None, Some(64), Some(0)),
                (3, 800, 100, 10, "write", Some(5), None, Some(5), Some(5)),
            ]
        );
        assert!(evs.iter().all(|e| e.class == Some(Class::Data)
            && e.fd == Some(3)
            && e.pid == 10
            && e.sock.as_ref().map(|s| s.ino) == Some(77)));
    }

    #[test]
    fn the_inode_read_at_entry_decides_over_the_descriptor() {
        let mut r = Recorder::with_resolver("n", 0, OneSocket);
        let records = [
            // Descriptor 9 is unknown to the resolver (closed since): the kernel's inode says
            // socket 88.
            enter_on(10, WRITE, 9, (88, true), 5, 1),
            exit(10, WRITE, 5, 2),
            // Descriptor 3 is a regular file at entry (the resolver's socket 77 came later).
            enter_on(10, WRITE, 3, (99, false), 5, 3),
            exit(10, WRITE, 5, 4),
            enter_on(10, WRITE, 9, (88, true), 7, 5),
            exit(10, WRITE, 7, 6),
        ];
        let facts: Vec<_> = records
            .iter()
            .filter_map(|x| r.record(x))
            .map(|e| (e.seq, e.fd, e.sock.map(|s| s.ino), e.off, e.ret))
            .collect();
        assert_eq!(
            facts,
            vec![
                (0, Some(9), Some(88), Some(0), Some(5)),
                (1, Some(9), Some(88), Some(5), Some(7)),
            ]
        );
    }

    #[test]
    fn lifecycle_records_become_proc_events() {
        let mut r = Recorder::with_resolver("n", 0, OneSocket);
        let records = [
            Record::Fork {
                parent: 10,
                parent_tid: 10,
                child: 12,
                thread: false,
                ktime_ns: 5,
            },
            Record::Fork {
                parent: 10,
                parent_tid: 10,
                child: 13,
                thread: true,
                ktime_ns: 6,
            },
            Record::Exec {
                pid: 12,
                old_tid: 12,
                ktime_ns: 7,
            },
            Record::ProcessExit {
                pid: 12,
                ending: Ending::Signaled {
                    signal: 9,
                    core_dumped: false,
                },
                ktime_ns: 8,
            },
            Record::ProcessExit {
                pid: 10,
                ending: Ending::Exited(7),
                ktime_ns: 9,
            },
        ];
        let facts: Vec<_> = records
            .iter()
            .filter_map(|x| r.record(x))
            .map(|e| {
                assert_eq!(e.class, Some(Class::Proc));
                (e.seq, e.ts, e.pid, e.call, e.child, e.code, e.signal)
            })
            .collect();
        assert_eq!(
            facts,
            vec![
                (0, 5, 10, "fork".into(), Some(12), None, None),
                (1, 6, 10, "clone".into(), Some(13), None, None),
                (2, 7, 12, "exec".into(), None, None, None),
                (3, 8, 12, "exit".into(), None, None, Some("SIGKILL".into())),
                (4, 9, 10, "exit".into(), None, Some(7), None),
            ]
        );
    }

    #[test]
    fn reads_socket_links_and_net_tables() {
        assert_eq!(socket_inode("socket:[4242]"), Some(4242));
        assert_eq!(socket_inode("/dev/null"), None);
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 111 1 0 100 0 0 10 0\n   1: 0100007F:A2C4 0100007F:1F90 01 00000000:00000000 00:00000000 00000000     0        0 222 1 0 20 4 30 10 -1\n";
        assert_eq!(
            find_in_net_table(table, 111),
            Some(("127.0.0.1:8080".into(), None))
        );
        assert_eq!(
            find_in_net_table(table, 222),
            Some(("127.0.0.1:41668".into(), Some("127.0.0.1:8080".into())))
        );
        assert_eq!(find_in_net_table(table, 333), None);
        assert_eq!(
            net_address("00000000000000000000000001000000:0050").as_deref(),
            Some("[::1]:80")
        );
    }
}
