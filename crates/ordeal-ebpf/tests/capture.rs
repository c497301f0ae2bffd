//! What records carry so that a call can be decoded without stopping it: the copies of the
//! tracee's memory taken in the kernel (addresses, paths, payload, out-parameters) and the
//! file and socket behind a descriptor, checked against what tests/progs/capture.c did and
//! printed (its ports, descriptors, inodes).
//!
//! Needs root (bpf(2)); elsewhere skips with a message, except under `CI=true`.

use ordeal_ebpf::{
    Blob, Copies, FileInfo, Probe, ProbeConfig, Record, SockAddrs, Stage, Wakeup,
    DEFAULT_RING_BYTES,
};
use ordeal_events::calls::{self, Arg, CALLS};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const PAYLOAD: usize = 4;
const AF_INET: u16 = libc::AF_INET as u16;
const AF_INET6: u16 = libc::AF_INET6 as u16;
const AF_UNIX: u16 = libc::AF_UNIX as u16;
const STREAM: u16 = libc::SOCK_STREAM as u16;

/// One call: its entry and exit records.
struct Call {
    args: [u64; 6],
    ino: u64,
    socket: bool,
    sock: Option<SockAddrs>,
    enter_mem: Vec<Blob>,
    ret: i64,
    file: Option<FileInfo>,
    exit_mem: Vec<Blob>,
}

impl Call {
    /// The input copied where the call's argument `what` points: at entry, or at exit when
    /// the page was not mapped in at entry (a string literal's, touched first by the call).
    fn entered(&self, name: &str, what: Arg) -> Option<&[u8]> {
        self.input(self.args[calls::by_name(name).unwrap().arg(what).unwrap()])
    }

    fn input(&self, addr: u64) -> Option<&[u8]> {
        blob_at(&self.enter_mem, addr).or_else(|| blob_at(&self.exit_mem, addr))
    }

    /// Where the inputs were copied (each once, at entry or exit).
    fn inputs(&self) -> Vec<u64> {
        let mut at: Vec<u64> = self.enter_mem.iter().map(|b| b.addr).collect();
        for b in &self.exit_mem {
            if !at.contains(&b.addr) {
                at.push(b.addr);
            }
        }
        at
    }
}

fn blob_at(mem: &[Blob], addr: u64) -> Option<&[u8]> {
    mem.iter()
        .find(|b| b.addr == addr)
        .map(|b| b.bytes.as_slice())
}

/// A `struct sockaddr_in` / `sockaddr_in6` as the program passed or got it.
fn sockaddr(b: &[u8]) -> SocketAddr {
    let port = u16::from_be_bytes([b[2], b[3]]);
    match u16::from_ne_bytes([b[0], b[1]]) {
        AF_INET => {
            assert_eq!(b.len(), 16, "{b:?}");
            SocketAddr::new(IpAddr::V4(Ipv4Addr::new(b[4], b[5], b[6], b[7])), port)
        }
        AF_INET6 => {
            assert_eq!(b.len(), 28, "{b:?}");
            let ip: [u8; 16] = b[8..24].try_into().unwrap();
            SocketAddr::new(IpAddr::V6(Ipv6Addr::from(ip)), port)
        }
        f => panic!("family {f}"),
    }
}

fn v4(port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port)
}

fn v6(port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), port)
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes(b[at..at + 4].try_into().unwrap())
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_ne_bytes(b[at..at + 8].try_into().unwrap())
}

/// What the followed process did: its calls by name, in order; what it printed (by the
/// first word of each line: the numbers after it); its directory.
struct Run {
    calls: HashMap<&'static str, Vec<Call>>,
    printed: HashMap<String, Vec<u64>>,
    dir: String,
}

/// Runs capture.c followed by a probe writing records with copies per `copies`; None when
/// BPF cannot load here.
fn run(copies: Copies, payload_bytes: usize) -> Option<Run> {
    let syscalls: Vec<i64> = CALLS.iter().map(|c| c.nr).collect();
    let config = ProbeConfig {
        syscalls: &syscalls,
        ring_bytes: DEFAULT_RING_BYTES,
        payload_bytes,
    };
    let mut probe = match Probe::start_measuring(config, Stage::Full, Wakeup::default(), copies) {
        Ok(p) => p,
        Err(e) if e.is_permission_denied() && std::env::var("CI").as_deref() != Ok("true") => {
            eprintln!("skipped: cannot load BPF here ({e})");
            return None;
        }
        Err(e) => panic!("the probe must load: {e}"),
    };
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let program = ordeal_test_support::compile_c(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/progs/capture.c"),
        tmp,
        "ebpf",
        &["-O1"],
    );
    let dir = tmp.join(format!(
        "capture-{}-{copies:?}-{payload_bytes}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let mut child = Command::new(program)
        .arg(&dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id() as i32;
    probe.follow(pid).unwrap();
    child.stdin.take().unwrap().write_all(b"g").unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut records = Vec::new();
    while !records
        .iter()
        .any(|r| matches!(r, Record::ProcessExit { pid: p, .. } if *p == pid))
    {
        assert!(Instant::now() < deadline, "no exit; got {records:#?}");
        records.extend(probe.poll(Duration::from_millis(50)).unwrap());
    }
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(0), "{out}");
    assert_eq!(probe.lost().unwrap(), 0);
    std::fs::remove_dir_all(&dir).unwrap();

    let printed = out
        .lines()
        .map(|l| {
            let mut words = l.split(' ');
            let key = words.next().unwrap().to_string();
            (key, words.map(|w| w.parse().unwrap()).collect())
        })
        .collect();
    let mut calls: HashMap<&'static str, Vec<Call>> = HashMap::new();
    let mut open: Option<Call> = None;
    let mut entered = false;
    for r in records {
        match r {
            Record::Enter {
                args,
                ino,
                socket,
                sock,
                mem,
                ..
            } => {
                entered = true;
                open = Some(Call {
                    args,
                    ino,
                    socket,
                    sock,
                    enter_mem: mem,
                    ret: 0,
                    file: None,
                    exit_mem: Vec::new(),
                })
            }
            Record::Exit {
                nr, ret, file, mem, ..
            } => {
                // Single-threaded: an exit closes the call entered last. Only the call in
                // flight when the process was followed has no entry: the read of the go byte,
                // or, when the child was followed while still loading, one of the loader's.
                let Some(mut call) = open.take() else {
                    assert!(
                        !entered,
                        "only the first call can have started unseen (nr {nr})"
                    );
                    continue;
                };
                (call.ret, call.file, call.exit_mem) = (ret, file, mem);
                let name = calls::by_nr(nr).unwrap().name;
                calls.entry(name).or_default().push(call);
            }
            _ => {}
        }
    }
    Some(Run {
        calls,
        printed,
        dir: dir.to_string_lossy().into_owned(),
    })
}

#[test]
fn records_carry_what_decoding_each_call_needs() {
    if let Some(run) = run(Copies::default(), PAYLOAD) {
        check(run);
    }
}

/// The same, each record with copies written in place in a reservation of the largest size.
#[test]
fn records_written_in_place_carry_the_same() {
    if let Some(run) = run(Copies::ReserveLargest, PAYLOAD) {
        check(run);
    }
}

/// Without payload capture, a send or receive has copies only with an address.
#[test]
fn without_payload_only_addressed_transfers_have_copies() {
    let Some(Run { calls, printed, .. }) = run(Copies::default(), 0) else {
        return;
    };
    let udp = &printed["udp"];
    let (sends, recvs) = (&calls["sendto"], &calls["recvfrom"]);
    // send, recv on TCP: bare records.
    assert_eq!((sends[0].inputs(), recvs[0].exit_mem.len()), (vec![], 0));
    assert!(recvs[0].file.is_none());
    // sendto with a destination, recvfrom with a source: the addresses only.
    assert_eq!(sends[1].inputs(), vec![sends[1].args[4]]);
    assert_eq!(
        sockaddr(sends[1].input(sends[1].args[4]).unwrap()),
        v4(udp[0] as u16)
    );
    let got: Vec<u64> = recvs[1].exit_mem.iter().map(|b| b.addr).collect();
    assert_eq!(got, [recvs[1].args[5], recvs[1].args[4]]);
    // Writes (and the read of the go byte, when seen): nothing but the inode.
    for call in calls["write"]
        .iter()
        .chain(calls.get("read").into_iter().flatten())
    {
        assert_eq!((call.inputs(), call.exit_mem.len()), (vec![], 0));
        assert!(call.ino != 0 && call.sock.is_none() && call.file.is_none());
    }
}

fn check(
    Run {
        calls,
        printed,
        dir,
    }: Run,
) {
    let of = |name: &str| -> &[Call] { calls.get(name).map_or(&[], |v| v.as_slice()) };
    let tcp = &printed["tcp"];
    let (port, client_port) = (tcp[0] as u16, tcp[1] as u16);
    let (conn_fd, conn_ino) = (tcp[2] as i64, tcp[3]);

    // bind: the address given, as the program passed it (port 0); the socket's address at
    // exit, bound by then. The second bind is the IPv6 listener's, the third the UDP
    // server's.
    let bind = &of("bind")[0];
    assert_eq!(sockaddr(bind.entered("bind", Arg::Addr).unwrap()), v4(0));
    let bound = bind.file.as_ref().unwrap().sock.as_ref().unwrap();
    assert_eq!((bound.family, bound.sock_type), (AF_INET, STREAM));
    assert_eq!((bound.local, bound.remote), (Some(v4(port)), None));
    // Before the call, at entry: the socket, not yet bound.
    let before = bind.sock.as_ref().unwrap();
    assert!(bind.socket && bind.ino != 0);
    assert_eq!((before.local, before.remote), (None, None));
    let listen = &of("listen")[0];
    assert_eq!(listen.file.as_ref().unwrap().ino, bind.ino);

    // connect: first to a bad pointer (failed; no copy, and nothing in its place), then to
    // the listener; at exit the client's socket has both addresses.
    let connects = of("connect");
    assert_eq!(connects[0].ret, -(libc::EFAULT as i64));
    assert_eq!(connects[0].inputs(), Vec::<u64>::new());
    let connect = &connects[1];
    assert_eq!(connect.inputs(), vec![connect.args[1]]);
    assert_eq!(
        sockaddr(connect.entered("connect", Arg::Addr).unwrap()),
        v4(port)
    );
    let client = connect.file.as_ref().unwrap().sock.as_ref().unwrap();
    assert_eq!(
        (client.local, client.remote),
        (Some(v4(client_port)), Some(v4(port)))
    );

    // accept: the peer address written (its length, then the address), and the new
    // socket: its inode and both addresses.
    let accept = &of("accept")[0];
    assert_eq!(accept.ret, conn_fd);
    let addr_len = blob_at(&accept.exit_mem, accept.args[2]).unwrap();
    assert_eq!(addr_len, 16u32.to_ne_bytes());
    let peer = blob_at(&accept.exit_mem, accept.args[1]).unwrap();
    assert_eq!(sockaddr(peer), v4(client_port));
    let new = accept.file.as_ref().unwrap();
    assert_eq!((new.ino, new.socket), (conn_ino, true));
    let new_sock = new.sock.as_ref().unwrap();
    assert_eq!(
        (new_sock.local, new_sock.remote),
        (Some(v4(port)), Some(v4(client_port)))
    );

    // send "hello" (sendto without an address): the first 4 bytes; recv: the same 4 of the
    // 5 it got. Neither has any other copy.
    let send = &of("sendto")[0];
    assert_eq!(send.inputs(), vec![send.args[1]]);
    assert_eq!(send.input(send.args[1]).unwrap(), b"hell");
    let recv = &of("recvfrom")[0];
    assert_eq!(recv.ret, 5);
    assert_eq!(
        recv.exit_mem,
        vec![Blob {
            addr: recv.args[1],
            bytes: b"hell".to_vec()
        }]
    );
    // Transfers carry no socket section; writes to the stdout pipe no payload.
    assert!(send.socket && send.sock.is_none() && recv.file.is_none());
    let printf = &of("write")[0];
    assert_eq!((printf.args[0], printf.socket), (1, false));
    assert_eq!(printf.inputs(), Vec::<u64>::new());

    // close of the accepted socket: its addresses as it was closed.
    let close = of("close")
        .iter()
        .find(|c| c.args[0] as i64 == conn_fd && c.ino == conn_ino)
        .unwrap();
    let closed = close.sock.as_ref().unwrap();
    assert_eq!(
        (closed.local, closed.remote),
        (Some(v4(port)), Some(v4(client_port)))
    );

    // IPv6: the accepted socket's addresses (accept4 asked for no peer address: no copy).
    let tcp6 = &printed["tcp6"];
    let accept4 = &of("accept4")[0];
    assert_eq!(accept4.exit_mem, vec![]);
    let s6 = accept4.file.as_ref().unwrap().sock.as_ref().unwrap();
    assert_eq!((s6.family, s6.sock_type), (AF_INET6, STREAM));
    assert_eq!(
        (s6.local, s6.remote),
        (Some(v6(tcp6[0] as u16)), Some(v6(tcp6[1] as u16)))
    );
    assert_eq!(
        sockaddr(of("connect")[2].entered("connect", Arg::Addr).unwrap()),
        v6(tcp6[0] as u16)
    );

    // UDP: sendto's destination and first bytes; recvfrom's source, then its first bytes.
    let udp = &printed["udp"];
    let (udp_port, udp_client) = (udp[0] as u16, udp[1] as u16);
    let sendto = &of("sendto")[1];
    assert_eq!(
        sockaddr(sendto.entered("sendto", Arg::Addr).unwrap()),
        v4(udp_port)
    );
    assert_eq!(sendto.entered("sendto", Arg::Buf).unwrap(), b"dgra");
    let recvfrom = &of("recvfrom")[1];
    let got: Vec<_> = recvfrom.exit_mem.iter().map(|b| b.addr).collect();
    assert_eq!(got, [recvfrom.args[5], recvfrom.args[4], recvfrom.args[1]]);
    assert_eq!(
        sockaddr(blob_at(&recvfrom.exit_mem, recvfrom.args[4]).unwrap()),
        v4(udp_client)
    );
    assert_eq!(
        blob_at(&recvfrom.exit_mem, recvfrom.args[1]).unwrap(),
        b"dgra"
    );

    // sendmsg: the msghdr, its two iovecs, the address it names, the first iovec's first
    // bytes; every pointer followed is the one in the copy before it.
    let sendmsg = &of("sendmsg")[0];
    let msg = sendmsg.input(sendmsg.args[1]).unwrap();
    assert_eq!(msg.len(), 56);
    let (name, iov, iovlen) = (u64_at(msg, 0), u64_at(msg, 16), u64_at(msg, 24));
    assert_eq!((u32_at(msg, 8), iovlen), (16, 2));
    assert_eq!(sockaddr(sendmsg.input(name).unwrap()), v4(udp_port));
    let iovecs = sendmsg.input(iov).unwrap();
    assert_eq!(
        (iovecs.len(), u64_at(iovecs, 8), u64_at(iovecs, 24)),
        (32, 4, 3)
    );
    assert_eq!(sendmsg.input(u64_at(iovecs, 0)).unwrap(), b"mess");
    // recvmsg: at exit, the msghdr with the source it names, the first iovec, its bytes.
    let recvmsg = &of("recvmsg")[0];
    assert_eq!(recvmsg.ret, 7);
    let msg = blob_at(&recvmsg.exit_mem, recvmsg.args[1]).unwrap();
    assert_eq!(u32_at(msg, 8), 16);
    assert_eq!(
        sockaddr(blob_at(&recvmsg.exit_mem, u64_at(msg, 0)).unwrap()),
        v4(udp_client)
    );
    let first = blob_at(&recvmsg.exit_mem, u64_at(msg, 16)).unwrap();
    assert_eq!(u64_at(first, 8), 64);
    assert_eq!(
        blob_at(&recvmsg.exit_mem, u64_at(first, 0)).unwrap(),
        b"mess"
    );

    // socketpair: the two descriptors it wrote (those the program then used), the first's
    // file, whose AF_UNIX peer is the second.
    let pair = &printed["pair"];
    let socketpair = &of("socketpair")[0];
    let fds = blob_at(&socketpair.exit_mem, socketpair.args[3]).unwrap();
    assert_eq!(
        (u32_at(fds, 0), u32_at(fds, 4)),
        (pair[0] as u32, pair[1] as u32)
    );
    let first = socketpair.file.as_ref().unwrap();
    let unix = first.sock.as_ref().unwrap();
    assert_eq!((first.ino, first.socket), (pair[2], true));
    assert_eq!(
        (unix.family, unix.sock_type, unix.peer_ino),
        (AF_UNIX, STREAM, Some(pair[3]))
    );
    // writev on it: the iovec array, the first iovec's first 4 bytes (of "unixy"); readv:
    // the first iovec and the 2 bytes it holds (of the 9 received).
    let writev = &of("writev")[0];
    assert_eq!(writev.args[0], pair[0]);
    let iovecs = writev.entered("writev", Arg::Iov).unwrap();
    assert_eq!((iovecs.len(), u64_at(iovecs, 8)), (32, 5));
    assert_eq!(writev.input(u64_at(iovecs, 0)).unwrap(), b"unix");
    let readv = &of("readv")[0];
    assert_eq!((readv.args[0], readv.ret), (pair[1], 9));
    let first = blob_at(&readv.exit_mem, readv.args[1]).unwrap();
    assert_eq!(first.len(), 16);
    assert_eq!(blob_at(&readv.exit_mem, u64_at(first, 0)).unwrap(), b"un");

    // Files: the paths, NUL-terminated; the file opened; both paths of the rename; a path
    // longer than copied: its first 256 bytes, no NUL.
    let (a, b) = (format!("{dir}/a file\0"), format!("{dir}/b file\0"));
    let opens = of("openat");
    let created = opens
        .iter()
        .find(|o| o.entered("openat", Arg::Path) == Some(a.as_bytes()))
        .unwrap();
    let file = created.file.as_ref().unwrap();
    assert_eq!(
        (file.ino, file.socket, &file.sock),
        (printed["file"][0], false, &None)
    );
    let rename = of("rename")
        .first()
        .map(|r| (r, "rename"))
        .or_else(|| of("renameat2").first().map(|r| (r, "renameat2")))
        .unwrap();
    assert_eq!(rename.0.entered(rename.1, Arg::Path), Some(a.as_bytes()));
    assert_eq!(rename.0.entered(rename.1, Arg::Path2), Some(b.as_bytes()));
    let long = opens.last().unwrap();
    assert_eq!(long.ret, -(libc::ENAMETOOLONG as i64));
    let cut = long.entered("openat", Arg::Path).unwrap();
    let expected = format!("{dir}/{}", "x".repeat(300));
    assert_eq!(cut, &expected.as_bytes()[..256]);
    assert!(long.file.is_none());
}

/// The largest payload makes the largest records: the verifier still accepts the programs,
/// in both copy modes.
#[test]
fn the_largest_payload_loads() {
    let syscalls: Vec<i64> = CALLS.iter().map(|c| c.nr).collect();
    for copies in [Copies::Scratch, Copies::ReserveLargest] {
        let config = ProbeConfig {
            syscalls: &syscalls,
            ring_bytes: DEFAULT_RING_BYTES,
            payload_bytes: ordeal_ebpf::PAYLOAD_MAX,
        };
        match Probe::start_measuring(config, Stage::Full, Wakeup::default(), copies) {
            Ok(_) => {}
            Err(e) if e.is_permission_denied() && std::env::var("CI").as_deref() != Ok("true") => {
                eprintln!("skipped: cannot load BPF here ({e})");
                return;
            }
            Err(e) => panic!("{copies:?}: {e}"),
        }
    }
}
