//! The records the probe returns, decoded from the ring buffer's bytes (layouts in the
//! `programs` module).

use crate::programs::*;
use crate::walk::SOCK_SECTION;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// `exit(code)`.
    Exited(i32),
    /// Killed by `signal`.
    Signaled { signal: i32, core_dumped: bool },
}

impl Ending {
    /// From a wait(2)-style status.
    pub fn from_status(status: u32) -> Ending {
        match status & 0x7f {
            0 => Ending::Exited(((status >> 8) & 0xff) as i32),
            signal => Ending::Signaled {
                signal: signal as i32,
                core_dumped: status & 0x80 != 0,
            },
        }
    }
}

/// A copy of the tracee's memory at `addr`, taken in the kernel as the call entered or
/// returned (so still right when the memory changed, or the process is gone, by the time
/// the record is read). Only what could be read is there: a copy that failed (a bad
/// pointer, a page not mapped in) is absent, never garbage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blob {
    pub addr: u64,
    pub bytes: Vec<u8>,
}

/// The file behind the descriptor a call returned (`socket`, `accept`, `accept4`, `open`,
/// `openat`, `creat`: when it returned one; `socketpair`: the first of the two) or worked on
/// (`bind`, `listen`, `connect`, `shutdown`: the first argument), read as the call returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileInfo {
    pub ino: u64,
    pub socket: bool,
    /// For a socket: its family, type and addresses.
    pub sock: Option<SockAddrs>,
}

/// A socket as the kernel has it (`struct sock_common`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SockAddrs {
    /// `AF_INET`, `AF_INET6`, `AF_UNIX`, ... (`skc_family`).
    pub family: u16,
    /// `SOCK_STREAM`, `SOCK_DGRAM`, ... (`sk_type`).
    pub sock_type: u16,
    /// The bound address (AF_INET, AF_INET6; None while unbound: no address and port 0).
    pub local: Option<SocketAddr>,
    /// The peer (AF_INET, AF_INET6; None while unconnected).
    pub remote: Option<SocketAddr>,
    /// AF_UNIX: the inode of the peer socket (None while it has none, or once it closed).
    pub peer_ino: Option<u64>,
}

/// One thing a followed process did. `ktime_ns` is CLOCK_MONOTONIC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// A system call started. When its first argument is a descriptor, `ino` is the inode
    /// number of the file behind it (read in the kernel as the call started, so known even
    /// when the descriptor or the process is gone by the time the record is read) and
    /// `socket` tells whether that file is a socket; `ino` is 0 when the call has no
    /// descriptor or it is not open. `sock` describes that socket for a socket lifecycle
    /// call (bind, listen, connect, accept, shutdown, close; not for transfers). `mem` has
    /// the call's inputs: the socket address given (bind, connect, sendto), path arguments
    /// (both of a rename), the iovec array, the msghdr with its iovecs and the address a
    /// send names, and, with `ProbeConfig::payload_bytes`, a send's first bytes on a socket.
    Enter {
        tid: i32,
        tgid: i32,
        nr: i64,
        args: [u64; 6],
        ino: u64,
        socket: bool,
        sock: Option<SockAddrs>,
        ktime_ns: u64,
        mem: Vec<Blob>,
    },
    /// A system call returned (`ret`: result or `-errno`). `file` is the file it returned or
    /// worked on ([`FileInfo`]); `mem` has its outputs: the address written by accept and
    /// recvfrom (its length at the length pointer, then the address), socketpair's two
    /// descriptors, a receive's msghdr and the address in it, and, with
    /// `ProbeConfig::payload_bytes`, the first bytes a receive wrote (and the first iovec
    /// it wrote them through).
    Exit {
        tid: i32,
        tgid: i32,
        nr: i64,
        ret: i64,
        ktime_ns: u64,
        file: Option<FileInfo>,
        mem: Vec<Blob>,
    },
    /// Process `parent` created `child`: a new thread of itself when `thread`, else a new
    /// process, followed from now on.
    Fork {
        parent: i32,
        parent_tid: i32,
        child: i32,
        thread: bool,
        ktime_ns: u64,
    },
    /// Process `pid` replaced its program (a successful execve, called by thread `old_tid`).
    Exec {
        pid: i32,
        old_tid: i32,
        ktime_ns: u64,
    },
    /// The last thread of process `pid` exited.
    ProcessExit {
        pid: i32,
        ending: Ending,
        ktime_ns: u64,
    },
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut v = [0u8; 8];
    v.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(v)
}

fn is_socket(i_mode: u16) -> bool {
    u32::from(i_mode) & libc::S_IFMT == libc::S_IFSOCK
}

/// The blobs between `start` and `end`; None when they do not tile it exactly.
fn blobs(b: &[u8], start: usize, end: usize) -> Option<Vec<Blob>> {
    let mut out = Vec::new();
    let mut at = start;
    while at < end {
        if at + 16 > end {
            return None;
        }
        let len = u32_at(b, at + 8) as usize;
        let bytes = b.get(at + 16..at + 16 + len)?;
        if at + 16 + len > end {
            return None;
        }
        out.push(Blob {
            addr: u64_at(b, at),
            bytes: bytes.to_vec(),
        });
        at += 16 + len.next_multiple_of(8);
    }
    (at == end).then_some(out)
}

/// A socket section (`walk::sock_section` has the layout); None when empty (family 0).
fn sock_addrs(s: &[u8]) -> Option<SockAddrs> {
    let family = u16_at(s, 0);
    if family == 0 {
        return None;
    }
    let dport = u16::from_be_bytes([s[4], s[5]]);
    let num = u16_at(s, 6);
    let addr = |ip: IpAddr, port: u16| {
        (port != 0 || !ip.is_unspecified()).then(|| SocketAddr::new(ip, port))
    };
    let v6 = |at: usize| {
        let mut octets = [0u8; 16];
        octets.copy_from_slice(&s[at..at + 16]);
        IpAddr::V6(Ipv6Addr::from(octets))
    };
    let v4 = |at: usize| IpAddr::V4(Ipv4Addr::new(s[at], s[at + 1], s[at + 2], s[at + 3]));
    let (local, remote) = match i32::from(family) {
        libc::AF_INET => (addr(v4(12), num), addr(v4(8), dport)),
        libc::AF_INET6 => (addr(v6(32), num), addr(v6(16), dport)),
        _ => (None, None),
    };
    let peer = u64_at(s, 48);
    Some(SockAddrs {
        family,
        sock_type: u16_at(s, 2),
        local,
        remote,
        peer_ino: (i32::from(family) == libc::AF_UNIX && peer != 0).then_some(peer),
    })
}

/// Where a record with copies says its used bytes end (`end: u32 @12`), when that is
/// between its fixed part and its length.
fn used(b: &[u8], fixed: usize) -> Option<usize> {
    let end = u32_at(b, 12) as usize;
    (fixed..=b.len()).contains(&end).then_some(end)
}

impl Record {
    /// When it happened (CLOCK_MONOTONIC, ns).
    pub fn ktime_ns(&self) -> u64 {
        match *self {
            Record::Enter { ktime_ns, .. }
            | Record::Exit { ktime_ns, .. }
            | Record::Fork { ktime_ns, .. }
            | Record::Exec { ktime_ns, .. }
            | Record::ProcessExit { ktime_ns, .. } => ktime_ns,
        }
    }

    /// Decodes one ring-buffer record; None for a record of unknown kind or the wrong size.
    pub(crate) fn decode(b: &[u8]) -> Option<Record> {
        if b.len() < 24 {
            return None;
        }
        let (kind, tid, tgid) = (u32_at(b, 0), u32_at(b, 4) as i32, u32_at(b, 8) as i32);
        let ktime_ns = u64_at(b, 16);
        let fixed = |size: usize, with_copies: usize| match b.len() {
            n if n == size => Some(None),
            n if n >= with_copies => used(b, with_copies).map(Some),
            _ => None,
        };
        Some(match kind {
            KIND_ENTER => {
                let copies = fixed(ENTER_SIZE, ENTER_FIXED)?;
                // The block is pt_regs r10, r9, r8, ax, cx, dx, si, di.
                let reg = |i: usize| u64_at(b, 32 + 8 * i);
                let (sock, mem) = match copies {
                    None => (None, Vec::new()),
                    Some(end) => (
                        sock_addrs(&b[ENTER_SOCK_AT..ENTER_SOCK_AT + SOCK_SECTION as usize]),
                        blobs(b, ENTER_FIXED, end)?,
                    ),
                };
                Record::Enter {
                    tid,
                    tgid,
                    nr: u64_at(b, 24) as i64,
                    args: [reg(7), reg(6), reg(5), reg(0), reg(2), reg(1)],
                    ino: u64_at(b, 96),
                    socket: is_socket(u16_at(b, 104)),
                    sock,
                    ktime_ns,
                    mem,
                }
            }
            KIND_EXIT => {
                let (file, mem) = match fixed(EXIT_SIZE, EXIT_FIXED)? {
                    None => (None, Vec::new()),
                    Some(end) => {
                        let ino = u64_at(b, EXIT_FILE_AT);
                        let socket = is_socket(u16_at(b, EXIT_FILE_AT + 8));
                        let sock = socket
                            .then(|| sock_addrs(&b[EXIT_SOCK_AT..EXIT_FIXED]))
                            .flatten();
                        let file = (ino != 0).then_some(FileInfo { ino, socket, sock });
                        (file, blobs(b, EXIT_FIXED, end)?)
                    }
                };
                Record::Exit {
                    tid,
                    tgid,
                    nr: u64_at(b, 24) as i64,
                    ret: u64_at(b, 32) as i64,
                    ktime_ns,
                    file,
                    mem,
                }
            }
            KIND_FORK if b.len() == FORK_SIZE => {
                let (child_tid, child_tgid) = (u32_at(b, 24) as i32, u32_at(b, 28) as i32);
                Record::Fork {
                    parent: tgid,
                    parent_tid: tid,
                    child: child_tid,
                    thread: child_tid != child_tgid,
                    ktime_ns,
                }
            }
            KIND_EXEC if b.len() == EXEC_SIZE => Record::Exec {
                pid: tgid,
                old_tid: u32_at(b, 24) as i32,
                ktime_ns,
            },
            KIND_PROCESS_EXIT if b.len() == PROCESS_EXIT_SIZE => Record::ProcessExit {
                pid: tgid,
                ending: Ending::from_status(u32_at(b, 24)),
                ktime_ns,
            },
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(kind: u32, tid: u32, tgid: u32, size: usize) -> Vec<u8> {
        let mut b = vec![0u8; size];
        b[0..4].copy_from_slice(&kind.to_le_bytes());
        b[4..8].copy_from_slice(&tid.to_le_bytes());
        b[8..12].copy_from_slice(&tgid.to_le_bytes());
        b[16..24].copy_from_slice(&99u64.to_le_bytes());
        b
    }

    #[test]
    fn decodes_enter_arguments_from_the_register_block() {
        let mut b = record(KIND_ENTER, 11, 10, ENTER_SIZE);
        b[24..32].copy_from_slice(&1u64.to_le_bytes());
        // r10, r9, r8, ax, cx, dx, si, di
        for (i, v) in [40u64, 60, 50, 0xdead, 0xbeef, 30, 20, 10]
            .iter()
            .enumerate()
        {
            b[32 + 8 * i..40 + 8 * i].copy_from_slice(&v.to_le_bytes());
        }
        b[96..104].copy_from_slice(&4242u64.to_le_bytes());
        // i_mode: a socket, rwx for all (the next two bytes are other fields' garbage).
        b[104..108].copy_from_slice(&0xffff_c1ffu32.to_le_bytes());
        assert_eq!(
            Record::decode(&b),
            Some(Record::Enter {
                tid: 11,
                tgid: 10,
                nr: 1,
                args: [10, 20, 30, 40, 50, 60],
                ino: 4242,
                socket: true,
                sock: None,
                ktime_ns: 99,
                mem: vec![],
            })
        );
        // A regular file.
        b[104..106].copy_from_slice(&0o100644u16.to_le_bytes());
        assert!(matches!(
            Record::decode(&b),
            Some(Record::Enter {
                ino: 4242,
                socket: false,
                ..
            })
        ));
    }

    #[test]
    fn decodes_exit_fork_and_process_exit() {
        let mut b = record(KIND_EXIT, 11, 10, EXIT_SIZE);
        b[24..32].copy_from_slice(&1u64.to_le_bytes());
        b[32..40].copy_from_slice(&(-9i64).to_le_bytes());
        assert_eq!(
            Record::decode(&b),
            Some(Record::Exit {
                tid: 11,
                tgid: 10,
                nr: 1,
                ret: -9,
                ktime_ns: 99,
                file: None,
                mem: vec![],
            })
        );
        let mut b = record(KIND_FORK, 11, 10, FORK_SIZE);
        b[24..28].copy_from_slice(&12u32.to_le_bytes());
        b[28..32].copy_from_slice(&10u32.to_le_bytes());
        assert_eq!(
            Record::decode(&b),
            Some(Record::Fork {
                parent: 10,
                parent_tid: 11,
                child: 12,
                thread: true,
                ktime_ns: 99
            })
        );
        let mut b = record(KIND_PROCESS_EXIT, 11, 10, PROCESS_EXIT_SIZE);
        b[24..28].copy_from_slice(&(7u32 << 8).to_le_bytes());
        assert_eq!(
            Record::decode(&b),
            Some(Record::ProcessExit {
                pid: 10,
                ending: Ending::Exited(7),
                ktime_ns: 99
            })
        );
        let mut b = record(KIND_EXEC, 10, 10, EXEC_SIZE);
        b[24..28].copy_from_slice(&12u32.to_le_bytes());
        assert_eq!(
            Record::decode(&b),
            Some(Record::Exec {
                pid: 10,
                old_tid: 12,
                ktime_ns: 99
            })
        );
        assert_eq!(Record::decode(&b[..20]), None);
        assert_eq!(Record::decode(&record(9, 1, 1, 32)), None);
    }

    #[test]
    fn endings_follow_wait_status() {
        assert_eq!(Ending::from_status(3 << 8), Ending::Exited(3));
        assert_eq!(
            Ending::from_status(9),
            Ending::Signaled {
                signal: 9,
                core_dumped: false
            }
        );
        assert_eq!(
            Ending::from_status(0x86),
            Ending::Signaled {
                signal: 6,
                core_dumped: true
            }
        );
    }

    /// A blob as the programs write it.
    fn put_blob(b: &mut Vec<u8>, addr: u64, bytes: &[u8]) {
        b.extend_from_slice(&addr.to_le_bytes());
        b.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        b.extend_from_slice(&[0; 4]);
        b.extend_from_slice(bytes);
        b.resize(b.len().next_multiple_of(8), 0);
    }

    fn set_end(b: &mut [u8], end: usize) {
        b[12..16].copy_from_slice(&(end as u32).to_le_bytes());
    }

    #[test]
    fn decodes_an_enter_record_with_a_socket_and_blobs() {
        let mut b = record(KIND_ENTER, 11, 10, ENTER_FIXED);
        b[24..32].copy_from_slice(&42u64.to_le_bytes()); // connect
        b[104..106].copy_from_slice(&0o140777u16.to_le_bytes());
        b[96..104].copy_from_slice(&7u64.to_le_bytes());
        // The socket section: AF_INET, SOCK_STREAM, dport 8080 (network order), num 41000,
        // daddr 127.0.0.1, rcv_saddr 10.0.0.2.
        let s = ENTER_SOCK_AT;
        b[s..s + 2].copy_from_slice(&(libc::AF_INET as u16).to_le_bytes());
        b[s + 2..s + 4].copy_from_slice(&1u16.to_le_bytes());
        b[s + 4..s + 6].copy_from_slice(&8080u16.to_be_bytes());
        b[s + 6..s + 8].copy_from_slice(&41000u16.to_le_bytes());
        b[s + 8..s + 12].copy_from_slice(&[127, 0, 0, 1]);
        b[s + 12..s + 16].copy_from_slice(&[10, 0, 0, 2]);
        put_blob(&mut b, 0x1000, b"hello");
        put_blob(&mut b, 0x2000, &[1, 2, 3, 4, 5, 6, 7, 8]);
        let end = b.len();
        set_end(&mut b, end);
        let Some(Record::Enter {
            nr,
            ino,
            socket,
            sock,
            mem,
            ..
        }) = Record::decode(&b)
        else {
            panic!("{:?}", Record::decode(&b));
        };
        assert_eq!((nr, ino, socket), (42, 7, true));
        assert_eq!(
            sock,
            Some(SockAddrs {
                family: libc::AF_INET as u16,
                sock_type: 1,
                local: Some("10.0.0.2:41000".parse().unwrap()),
                remote: Some("127.0.0.1:8080".parse().unwrap()),
                peer_ino: None,
            })
        );
        assert_eq!(
            mem,
            vec![
                Blob {
                    addr: 0x1000,
                    bytes: b"hello".to_vec()
                },
                Blob {
                    addr: 0x2000,
                    bytes: vec![1, 2, 3, 4, 5, 6, 7, 8]
                }
            ]
        );
        // A largest-size reservation: the bytes past `end` are not blobs.
        b.resize(b.len() + 64, 0xee);
        assert!(matches!(Record::decode(&b), Some(Record::Enter { mem, .. }) if mem.len() == 2));
        // An end past the record, or blobs that overrun it: malformed.
        set_end(&mut b, 10_000);
        assert_eq!(Record::decode(&b), None);
        b.truncate(end);
        set_end(&mut b, end);
        b[ENTER_FIXED + 8..ENTER_FIXED + 12].copy_from_slice(&900u32.to_le_bytes());
        assert_eq!(Record::decode(&b), None);
    }

    #[test]
    fn decodes_an_exit_record_with_its_file() {
        let mut b = record(KIND_EXIT, 11, 10, EXIT_FIXED);
        b[24..32].copy_from_slice(&43u64.to_le_bytes()); // accept
        b[32..40].copy_from_slice(&5i64.to_le_bytes());
        b[40..48].copy_from_slice(&777u64.to_le_bytes());
        b[48..50].copy_from_slice(&0o140777u16.to_le_bytes());
        let s = EXIT_SOCK_AT;
        b[s..s + 2].copy_from_slice(&(libc::AF_INET6 as u16).to_le_bytes());
        b[s + 2..s + 4].copy_from_slice(&1u16.to_le_bytes());
        b[s + 4..s + 6].copy_from_slice(&40000u16.to_be_bytes());
        b[s + 6..s + 8].copy_from_slice(&443u16.to_le_bytes());
        let v6 = |text: &str| text.parse::<std::net::Ipv6Addr>().unwrap().octets();
        b[s + 16..s + 32].copy_from_slice(&v6("2001:db8::2"));
        b[s + 32..s + 48].copy_from_slice(&v6("::1"));
        put_blob(&mut b, 0x10, &28u32.to_le_bytes());
        let end = b.len();
        set_end(&mut b, end);
        assert_eq!(
            Record::decode(&b),
            Some(Record::Exit {
                tid: 11,
                tgid: 10,
                nr: 43,
                ret: 5,
                ktime_ns: 99,
                file: Some(FileInfo {
                    ino: 777,
                    socket: true,
                    sock: Some(SockAddrs {
                        family: libc::AF_INET6 as u16,
                        sock_type: 1,
                        local: Some("[::1]:443".parse().unwrap()),
                        remote: Some("[2001:db8::2]:40000".parse().unwrap()),
                        peer_ino: None,
                    }),
                }),
                mem: vec![Blob {
                    addr: 0x10,
                    bytes: 28u32.to_le_bytes().to_vec()
                }],
            })
        );
        // An AF_UNIX socket: its peer's inode, no addresses.
        b[s..s + 2].copy_from_slice(&(libc::AF_UNIX as u16).to_le_bytes());
        b[s + 48..s + 56].copy_from_slice(&4321u64.to_le_bytes());
        let Some(Record::Exit { file: Some(f), .. }) = Record::decode(&b) else {
            panic!()
        };
        let sock = f.sock.unwrap();
        assert_eq!(
            (sock.local, sock.remote, sock.peer_ino),
            (None, None, Some(4321))
        );
        // A regular file: no socket; no file at all when the walk failed (ino 0).
        b[48..50].copy_from_slice(&0o100644u16.to_le_bytes());
        let Some(Record::Exit { file: Some(f), .. }) = Record::decode(&b) else {
            panic!()
        };
        assert_eq!((f.ino, f.socket, f.sock), (777, false, None));
        b[40..48].copy_from_slice(&0u64.to_le_bytes());
        assert!(matches!(
            Record::decode(&b),
            Some(Record::Exit { file: None, .. })
        ));
    }

    #[test]
    fn an_unbound_socket_has_no_local_address() {
        let mut s = [0u8; SOCK_SECTION as usize];
        s[0..2].copy_from_slice(&(libc::AF_INET as u16).to_le_bytes());
        let sock = sock_addrs(&s).unwrap();
        assert_eq!((sock.local, sock.remote), (None, None));
        // Listening on every address: the port says bound.
        s[6..8].copy_from_slice(&80u16.to_le_bytes());
        assert_eq!(
            sock_addrs(&s).unwrap().local,
            Some("0.0.0.0:80".parse().unwrap())
        );
        assert_eq!(sock_addrs(&[0u8; 64]), None);
    }
}
