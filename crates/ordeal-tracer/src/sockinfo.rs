//! Socket addresses of a tracee's fd, read by borrowing the fd; and the few things a
//! partition on loopback does to a tracee's socket through such a borrowed fd (`cut.rs`).
//!
//! `pidfd_getfd(2)` duplicates the tracee's fd into the tracer, where getsockname, getpeername
//! and getsockopt answer directly. This costs a handful of system calls, where reading
//! `/proc/PID/net/tcp` walks the kernel's whole connection hash table (measured here: ~3.5 ms
//! per read even when nearly empty), and it needs no code injected into the tracee. The
//! duplicate is the same open socket: what the tracer writes or sets through it, the tracee's
//! socket does.

use ordeal_events::Proto;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// What the kernel says about one socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SockInfo {
    pub ino: u64,
    pub proto: Proto,
    pub local: Option<String>,
    pub remote: Option<String>,
}

/// A pidfd for a traced process, opened once per process.
pub fn pidfd_open(pid: i32) -> Option<OwnedFd> {
    // SAFETY: pidfd_open returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    // SAFETY: a fresh fd from pidfd_open, owned by nobody else.
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

fn sockopt_int(fd: i32, opt: libc::c_int) -> Option<i32> {
    sockopt(fd, libc::SOL_SOCKET, opt)
}

fn sockopt(fd: i32, level: libc::c_int, opt: libc::c_int) -> Option<i32> {
    let mut v: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: getsockopt into a local int.
    let r = unsafe {
        libc::getsockopt(
            fd,
            level,
            opt,
            &mut v as *mut libc::c_int as *mut libc::c_void,
            &mut len,
        )
    };
    (r == 0).then_some(v)
}

fn name_of(fd: i32, peer: bool) -> Option<String> {
    // SAFETY: sockaddr_storage is large enough for any address family.
    unsafe {
        let mut ss: libc::sockaddr_storage = std::mem::zeroed();
        let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        let p = &mut ss as *mut libc::sockaddr_storage as *mut libc::sockaddr;
        let r = if peer {
            libc::getpeername(fd, p, &mut len)
        } else {
            libc::getsockname(fd, p, &mut len)
        };
        if r != 0 {
            return None;
        }
        let bytes = std::slice::from_raw_parts(p as *const u8, (len as usize).min(128));
        super::decode::sockaddr(bytes)
    }
}

/// A duplicate of `fd` of the process behind `pidfd`, in the tracer's table.
pub fn dup_fd(pidfd: &OwnedFd, fd: i32) -> Option<OwnedFd> {
    // SAFETY: pidfd_getfd returns a new fd in our table or -1.
    let raw = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), fd, 0) };
    // SAFETY: a fresh fd from pidfd_getfd, owned by nobody else.
    (raw >= 0).then(|| unsafe { OwnedFd::from_raw_fd(raw as i32) })
}

/// The inode of the socket behind `fd`; None if it is not a socket.
pub fn socket_ino(fd: &OwnedFd) -> Option<u64> {
    // SAFETY: fstat into a local struct.
    let st = unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        (libc::fstat(fd.as_raw_fd(), &mut st) == 0).then_some(st)
    }?;
    (st.st_mode & libc::S_IFMT == libc::S_IFSOCK).then_some(st.st_ino)
}

/// Inspects `fd` of the process behind `pidfd`. None if it is not a socket (or is gone).
pub fn inspect(pidfd: &OwnedFd, fd: i32) -> Option<SockInfo> {
    let own = dup_fd(pidfd, fd)?;
    let ino = socket_ino(&own)?;
    let fd = own.as_raw_fd();
    let proto = match (
        sockopt_int(fd, libc::SO_DOMAIN),
        sockopt_int(fd, libc::SO_TYPE),
    ) {
        (Some(libc::AF_UNIX), _) => Proto::Unix,
        (Some(libc::AF_INET | libc::AF_INET6), Some(libc::SOCK_STREAM)) => Proto::Tcp,
        (Some(libc::AF_INET | libc::AF_INET6), Some(libc::SOCK_DGRAM)) => Proto::Udp,
        _ => Proto::Other,
    };
    let wildcard = |a: &String| a.ends_with(":0") || a == "(unnamed)";
    Some(SockInfo {
        ino,
        proto,
        local: name_of(fd, false).filter(|a| !wildcard(a)),
        remote: name_of(fd, true).filter(|a| !wildcard(a)),
    })
}

/// The send timeout (`SO_SNDTIMEO`) of `fd` of the process behind `pidfd`, if one is set.
pub fn send_timeout(pidfd: &OwnedFd, fd: i32) -> Option<std::time::Duration> {
    let own = dup_fd(pidfd, fd)?;
    let mut tv = libc::timeval {
        tv_sec: 0,
        tv_usec: 0,
    };
    let mut len = std::mem::size_of::<libc::timeval>() as libc::socklen_t;
    // SAFETY: getsockopt into a local timeval.
    let r = unsafe {
        libc::getsockopt(
            own.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_SNDTIMEO,
            &mut tv as *mut libc::timeval as *mut libc::c_void,
            &mut len,
        )
    };
    let d = std::time::Duration::from_secs(tv.tv_sec.max(0) as u64)
        + std::time::Duration::from_micros(tv.tv_usec.max(0) as u64);
    (r == 0 && !d.is_zero()).then_some(d)
}

/// The socket's send buffer (`SO_SNDBUF`, as the kernel accounts it).
pub fn send_buffer(fd: &OwnedFd) -> Option<usize> {
    sockopt_int(fd.as_raw_fd(), libc::SO_SNDBUF)
        .filter(|&n| n > 0)
        .map(|n| n as usize)
}

/// The TCP state of a TCP socket (`TCP_CLOSE` for one not connected yet); None for any other
/// socket.
pub fn tcp_state(fd: &OwnedFd) -> Option<u8> {
    // struct tcp_info starts with its u8 tcpi_state; the kernel copies at most `len` bytes.
    let mut info = [0u8; 8];
    let mut len = info.len() as libc::socklen_t;
    // SAFETY: getsockopt into a local buffer of `len` bytes.
    let r = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            info.as_mut_ptr() as *mut libc::c_void,
            &mut len,
        )
    };
    (r == 0 && len > 0).then_some(info[0])
}

/// `SO_ATTACH_FILTER`, `SO_DETACH_FILTER` and `SO_GET_FILTER` (absent from libc for Linux).
const SO_ATTACH_FILTER: libc::c_int = 26;
const SO_DETACH_FILTER: libc::c_int = 27;
const SO_GET_FILTER: libc::c_int = SO_ATTACH_FILTER;

/// Makes the socket drop every packet it receives (a classic BPF socket filter returning 0,
/// which needs no privilege): a connect then stays in SYN_SENT, its SYN-ACKs lost, as behind
/// a network that drops packets. False if the socket already has a filter of its own (it is
/// left alone) or the kernel refuses.
pub fn drop_incoming(fd: &OwnedFd) -> bool {
    let mut blocks: libc::socklen_t = 0;
    // SAFETY: with a length of 0 the kernel only tells how many instructions the socket's
    // filter has (0: none), writing nothing to the null buffer.
    let r = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            SO_GET_FILTER,
            std::ptr::null_mut(),
            &mut blocks,
        )
    };
    if r != 0 || blocks != 0 {
        return false;
    }
    let mut drop_all = [libc::sock_filter {
        code: (libc::BPF_RET | libc::BPF_K) as u16,
        jt: 0,
        jf: 0,
        k: 0,
    }];
    let prog = libc::sock_fprog {
        len: 1,
        filter: drop_all.as_mut_ptr(),
    };
    // SAFETY: setsockopt reads the program and its one instruction, both alive for the call.
    unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            SO_ATTACH_FILTER,
            &prog as *const libc::sock_fprog as *const libc::c_void,
            std::mem::size_of::<libc::sock_fprog>() as libc::socklen_t,
        ) == 0
    }
}

/// Removes the socket's filter ([`drop_incoming`]): packets get through again.
pub fn stop_dropping(fd: &OwnedFd) -> bool {
    let unused: libc::c_int = 0;
    // SAFETY: the kernel reads (and ignores) one int.
    unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            SO_DETACH_FILTER,
            &unused as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        ) == 0
    }
}

/// Sends what it can of `bytes` without blocking and without SIGPIPE: how many bytes the
/// socket took, or the errno (`EAGAIN`: full).
pub fn send_now(fd: &OwnedFd, bytes: &[u8]) -> Result<usize, i32> {
    // SAFETY: send reads `bytes.len()` bytes from a live slice.
    let n = unsafe {
        libc::send(
            fd.as_raw_fd(),
            bytes.as_ptr() as *const libc::c_void,
            bytes.len(),
            libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
        )
    };
    if n < 0 {
        Err(std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO))
    } else {
        Ok(n as usize)
    }
}

/// `shutdown(2)` of the socket (`how`: `SHUT_RD`, `SHUT_WR`).
pub fn shutdown(fd: &OwnedFd, how: i32) {
    // SAFETY: shutdown on a descriptor we own.
    unsafe { libc::shutdown(fd.as_raw_fd(), how) };
}

/// Wakes whoever waits for the socket to become writable (an `EPOLLOUT` edge, if it is
/// writable). A send the tracer refused with `EAGAIN` left its caller waiting for one, and the
/// kernel announces room only after a send of its own found none: setting `TCP_NOTSENT_LOWAT`
/// (to the value it has: nothing changes) makes the kernel call the socket's write-space
/// callback, which wakes the waiters.
pub fn wake_writers(fd: &OwnedFd) {
    let Some(lowat) = sockopt(fd.as_raw_fd(), libc::IPPROTO_TCP, libc::TCP_NOTSENT_LOWAT) else {
        return;
    };
    // SAFETY: setsockopt reads one local int.
    unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_NOTSENT_LOWAT,
            &lowat as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inspects_a_connected_pair_in_this_process() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let c = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let pidfd = pidfd_open(std::process::id() as i32).unwrap();
        let i = inspect(&pidfd, c.as_raw_fd()).unwrap();
        assert_eq!(i.proto, Proto::Tcp);
        assert_eq!(i.local, Some(c.local_addr().unwrap().to_string()));
        assert_eq!(i.remote, Some(l.local_addr().unwrap().to_string()));
        let li = inspect(&pidfd, l.as_raw_fd()).unwrap();
        assert_eq!(li.remote, None);
        assert_ne!(li.ino, i.ino);
        let f = std::fs::File::open("/proc/self/status").unwrap();
        assert_eq!(inspect(&pidfd, f.as_raw_fd()), None);
    }

    fn fd_of(raw: i32) -> OwnedFd {
        assert!(raw >= 0, "{}", std::io::Error::last_os_error());
        // SAFETY: a fresh fd of this test's.
        unsafe { OwnedFd::from_raw_fd(raw) }
    }

    /// What a partition does to a connect: its socket deaf, the handshake hangs (SYN_SENT,
    /// not writable) for as long as it lasts; heard again, the kernel's next SYN
    /// retransmission connects it.
    #[test]
    fn a_deaf_socket_connects_only_once_it_hears_again() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let std::net::SocketAddr::V4(addr) = l.local_addr().unwrap() else {
            panic!("v4");
        };
        // SAFETY: plain socket(2).
        let s = fd_of(unsafe {
            libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_NONBLOCK, 0)
        });
        assert_eq!(tcp_state(&s), Some(7), "TCP_CLOSE before connect");
        assert!(drop_incoming(&s));
        // A socket with a filter already is left alone.
        assert!(!drop_incoming(&s));
        let sin = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: addr.port().to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from(*addr.ip()).to_be(),
            },
            sin_zero: [0; 8],
        };
        // SAFETY: connect with a local sockaddr_in.
        let r = unsafe {
            libc::connect(
                s.as_raw_fd(),
                &sin as *const libc::sockaddr_in as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
            )
        };
        assert_eq!(
            (r, std::io::Error::last_os_error().raw_os_error()),
            (-1, Some(libc::EINPROGRESS))
        );
        let mut pfd = libc::pollfd {
            fd: s.as_raw_fd(),
            events: libc::POLLOUT,
            revents: 0,
        };
        // SAFETY: poll on one local pollfd. 300 ms: the SYN-ACK came back long before.
        assert_eq!(unsafe { libc::poll(&mut pfd, 1, 300) }, 0);
        assert_eq!(tcp_state(&s), Some(2), "SYN_SENT");
        assert!(stop_dropping(&s));
        // SAFETY: as above; the SYN is sent again 1 s, then 3 s after the connect.
        assert_eq!(unsafe { libc::poll(&mut pfd, 1, 10_000) }, 1);
        assert_eq!(pfd.revents, libc::POLLOUT);
        assert_eq!(tcp_state(&s), Some(1), "ESTABLISHED");
        let (_, from) = l.accept().unwrap();
        let pidfd = pidfd_open(std::process::id() as i32).unwrap();
        assert_eq!(
            inspect(&pidfd, s.as_raw_fd()).unwrap().local,
            Some(from.to_string())
        );
    }

    /// A writer refused with EAGAIN by the tracer waits for an EPOLLOUT edge that its own
    /// socket never gave: waking the writers gives one.
    #[test]
    fn waking_writers_gives_an_edge_triggered_epoll_its_epollout() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let c = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        // SAFETY: epoll_create1 returns a new fd or -1.
        let ep = fd_of(unsafe { libc::epoll_create1(0) });
        let mut ev = libc::epoll_event {
            events: (libc::EPOLLOUT | libc::EPOLLET) as u32,
            u64: 1,
        };
        // SAFETY: registers the client socket with a local event.
        let r =
            unsafe { libc::epoll_ctl(ep.as_raw_fd(), libc::EPOLL_CTL_ADD, c.as_raw_fd(), &mut ev) };
        assert_eq!(r, 0);
        let wait = || {
            let mut out = [libc::epoll_event { events: 0, u64: 0 }; 2];
            // SAFETY: epoll_wait into a local array of 2, without waiting.
            let n = unsafe { libc::epoll_wait(ep.as_raw_fd(), out.as_mut_ptr(), 2, 0) };
            out[..n.max(0) as usize]
                .iter()
                .map(|e| e.events)
                .collect::<Vec<u32>>()
        };
        assert_eq!(wait(), [libc::EPOLLOUT as u32]);
        assert!(wait().is_empty(), "edge-triggered: reported once");
        let pidfd = pidfd_open(std::process::id() as i32).unwrap();
        wake_writers(&dup_fd(&pidfd, c.as_raw_fd()).unwrap());
        assert_eq!(wait(), [libc::EPOLLOUT as u32]);
    }
}
