//! Turning a traced call into an event: at its entry (which call on what, its arguments) and
//! at its exit (its result, socket resolution, stream offsets, payload and file data).
//!
//! Everything is driven by `ordeal_events::calls::CALLS`: a call's row says where its
//! descriptor, paths, buffers, lengths, addresses, offsets and flags are, and what it does to
//! a socket or a file. A new row with existing kinds of arguments and effects needs no change
//! here.

use std::path::PathBuf;
use std::rc::Rc;

use ordeal_events::calls::{self, Arg, Bookkeeping, CallSpec, Flags};
use ordeal_events::{escape_bytes, Class, Event, FileOp, Proto, Sock, SocketOp};

use crate::fds::{Fd, SockState};
use crate::inner::Inner;
use crate::{decode, mem, procfs, Sink};

/// Name of a traced system call (`?` for any other number).
pub fn syscall_name(nr: i64) -> &'static str {
    calls::by_nr(nr).map_or("?", |c| c.name)
}

/// The argument of meaning `what`, if the call has one.
fn arg(spec: &CallSpec, a: &[u64; 6], what: Arg) -> Option<u64> {
    spec.arg(what).map(|i| a[i])
}

/// The file offset a positioned write names; `None` when it writes at the fd's offset
/// (no offset argument, or `pwritev2`'s -1).
fn explicit_pos(spec: &CallSpec, a: &[u64; 6]) -> Option<u64> {
    arg(spec, a, Arg::Pos).filter(|&p| p != u64::MAX)
}

/// Whether a send asks not to block (`MSG_DONTWAIT` in its flags argument).
pub(crate) fn nonblocking_call(nr: i64, a: &[u64; 6]) -> bool {
    calls::by_nr(nr)
        .and_then(|c| arg(c, a, Arg::MsgFlags))
        .is_some_and(|f| f & libc::MSG_DONTWAIT as u64 != 0)
}

/// The first `n` bytes a send's buffers hold (its buffer, its iovecs, or its message's
/// iovecs), read at its entry stop; None unless all `n` could be read, or for a call sending
/// several messages.
pub(crate) fn send_bytes(tid: i32, nr: i64, a: &[u64; 6], n: usize) -> Option<Vec<u8>> {
    let spec = calls::by_nr(nr).filter(|c| !c.has(Arg::MsgVec))?;
    if n == 0 {
        return Some(Vec::new());
    }
    let bytes = match (
        arg(spec, a, Arg::Buf),
        arg(spec, a, Arg::Iov),
        arg(spec, a, Arg::Msg),
    ) {
        (Some(b), _, _) => mem::read_mem(tid, b, n),
        (None, Some(iov), _) => iov_bytes(tid, iov, arg(spec, a, Arg::IovCnt).unwrap_or(0), n),
        (None, None, Some(msg)) => mem::read_u64(tid, msg + 16)
            .and_then(|iov| iov_bytes(tid, iov, mem::read_u64(tid, msg + 24).unwrap_or(0), n)),
        _ => None,
    }?;
    (bytes.len() == n).then_some(bytes)
}

/// One buffer with its length in the third argument (`read`, `write`, `recvfrom`, `sendto`).
pub(crate) fn is_plain_transfer(nr: i64) -> bool {
    calls::by_nr(nr).is_some_and(|c| c.is_plain_transfer())
}

fn decode_flags(kind: Flags, v: u64, a: &[u64; 6]) -> Option<String> {
    Some(match kind {
        Flags::Open => decode::open_flags(v),
        Flags::Creat => decode::open_flags((libc::O_CREAT | libc::O_WRONLY | libc::O_TRUNC) as u64),
        Flags::SocketType => decode::socket_type(a[0], v),
        Flags::Accept if v != 0 => decode::accept_flags(v),
        Flags::Shutdown => decode::shutdown_how(v),
        Flags::UnlinkAt if v as i32 & libc::AT_REMOVEDIR != 0 => "AT_REMOVEDIR".into(),
        Flags::RenameAt2 if v != 0 => decode::rename_flags(v),
        Flags::Fallocate if v != 0 => decode::fallocate_mode(v),
        Flags::Msync => decode::msync_flags(v),
        Flags::Accept | Flags::UnlinkAt | Flags::RenameAt2 | Flags::Fallocate => return None,
    })
}

impl<S: Sink> Inner<S> {
    /// Decides whether a call is worth its exit stop; if so returns the event to complete.
    pub(crate) fn decode_entry(
        &mut self,
        tid: i32,
        tgid: i32,
        nr: i64,
        a: &[u64; 6],
        ts: u64,
    ) -> Option<Event> {
        let spec = calls::by_nr(nr)?;
        if let Some(b) = spec.bookkeeping {
            self.bookkeeping(tgid, b, a);
            return None;
        }
        let mut ev = match (spec.socket.map(|s| s.op), arg(spec, a, Arg::Fd)) {
            (Some(op), _) if op.class() == Class::Net && op != SocketOp::Close => {
                // The socket's lifecycle: recorded whatever the fd, resolved at exit.
                let mut ev = self.base_event(tid, spec.name, Class::Net, ts);
                ev.fd = arg(spec, a, Arg::Fd).map(|f| f as i32);
                ev
            }
            (_, Some(fd)) => self.on_fd(tid, tgid, spec, fd as i32, ts)?,
            _ if spec.file.is_some_and(|f| f.op == FileOp::MapSync) => {
                self.on_mapping(tid, tgid, spec, a, ts)?
            }
            (_, None) => self.on_paths(tid, tgid, spec, a, ts)?,
        };
        self.fill_args(tid, spec, a, &mut ev);
        if let Some(len) = self.mapped_len.take() {
            ev.len = Some(len);
        }
        if spec.socket.is_some_and(|s| s.op == SocketOp::Connect) {
            // Whom it is connecting to, for faults decided at entry (a partition refuses
            // it); the completed event describes the socket in full.
            let peer_node = ev.addr.as_deref().and_then(|a| self.owner_of(a));
            if peer_node.is_some() {
                ev.sock = Some(Sock {
                    ino: 0,
                    proto: Proto::Other,
                    local: None,
                    remote: ev.addr.clone(),
                    peer_ino: None,
                    peer_node,
                });
            }
        }
        Some(ev)
    }

    fn bookkeeping(&mut self, tgid: i32, b: Bookkeeping, a: &[u64; 6]) {
        match b {
            Bookkeeping::CloseRange => {
                const CLOSE_RANGE_CLOEXEC: u64 = 1 << 2;
                if a[2] & CLOSE_RANGE_CLOEXEC == 0 {
                    if let Some(p) = self.procs.get_mut(&tgid) {
                        let (lo, hi) = (a[0] as u32, a[1] as u32);
                        p.fds.retain(|&f, _| !(lo..=hi).contains(&(f as u32)));
                    }
                }
            }
            Bookkeeping::Dup => self.forget_fd(tgid, a[1] as i32),
        }
    }

    /// A call on a descriptor: a transfer or close on a socket, or a file call on a data-dir
    /// file. Anything else is not recorded.
    fn on_fd(&mut self, tid: i32, tgid: i32, spec: &CallSpec, fd: i32, ts: u64) -> Option<Event> {
        let kind = self.fd_kind(tgid, fd);
        let closes = spec.socket.is_some_and(|s| s.op == SocketOp::Close);
        if closes {
            self.forget_fd(tgid, fd);
        }
        let mut ev = match kind {
            Fd::Sock(s) => {
                let op = spec.socket?.op;
                let mut ev = self.base_event(tid, spec.name, op.class(), ts);
                ev.sock = Some(Self::sock_event(&s, &self.peers));
                ev
            }
            Fd::Data(path) => {
                spec.file?;
                let mut ev = self.base_event(tid, spec.name, Class::File, ts);
                ev.path = Some(path.to_string_lossy().into_owned());
                ev
            }
            Fd::Ignore => return None,
        };
        ev.fd = Some(fd);
        Some(ev)
    }

    /// `msync` of a shared mapping of a data-dir file: the file and the range's offset in it,
    /// from /proc/PID/maps at the stop. Not from an eBPF record: the maps are read live, and
    /// by the time a record is decoded the mapping may be gone (a missing event beats a
    /// wrong one).
    fn on_mapping(
        &mut self,
        tid: i32,
        tgid: i32,
        spec: &CallSpec,
        a: &[u64; 6],
        ts: u64,
    ) -> Option<Event> {
        if mem::decoding_record() {
            return None;
        }
        let addr = arg(spec, a, Arg::Buf)?;
        let len = arg(spec, a, Arg::Len)?;
        let maps = std::fs::read_to_string(format!("/proc/{tgid}/maps")).ok()?;
        let m = procfs::shared_mapping(&maps, addr)?;
        if !self.under_roots(&m.path) {
            return None;
        }
        let size = std::fs::metadata(&m.path).ok()?.len();
        let pos = m.offset + (addr - m.start);
        let len = len.min(m.end - addr).min(size.saturating_sub(pos));
        let mut ev = self.base_event(tid, spec.name, Class::File, ts);
        ev.path = Some(m.path.to_string_lossy().into_owned());
        ev.pos = Some(pos);
        ev.len = Some(len);
        // `fill_args` sets len from the call's own argument: the cut one is kept aside.
        self.mapped_len = Some(len);
        Some(ev)
    }

    /// A file call naming paths: recorded when a path is under a data root (either one for
    /// a rename).
    fn on_paths(
        &mut self,
        tid: i32,
        tgid: i32,
        spec: &CallSpec,
        a: &[u64; 6],
        ts: u64,
    ) -> Option<Event> {
        spec.file?;
        let dir = |what| arg(spec, a, what).map(|d| d as i64);
        let path = match arg(spec, a, Arg::Path) {
            Some(p) => Some(self.path_arg(tid, tgid, dir(Arg::DirFd), p)?),
            None => None,
        };
        let path2 = match arg(spec, a, Arg::Path2) {
            // A symlink's target is its content, kept as written: resolving it against the
            // caller's directory would change what the link says.
            Some(p) if spec.file.is_some_and(|f| f.op == FileOp::Symlink) => Some(PathBuf::from(
                String::from_utf8_lossy(&mem::read_cstr(tid, p, 4096)?).into_owned(),
            )),
            Some(p) => Some(self.path_arg(tid, tgid, dir(Arg::DirFd2), p)?),
            None => None,
        };
        let under = |p: &Option<PathBuf>| p.as_deref().is_some_and(|p| self.under_roots(p));
        if (path.is_some() || path2.is_some()) && !under(&path) && !under(&path2) {
            return None;
        }
        let mut ev = self.base_event(tid, spec.name, Class::File, ts);
        ev.path = path.map(|p| p.to_string_lossy().into_owned());
        ev.path2 = path2.map(|p| p.to_string_lossy().into_owned());
        Some(ev)
    }

    /// The arguments known at entry: lengths, addresses given, offsets, flags.
    fn fill_args(&self, tid: i32, spec: &CallSpec, a: &[u64; 6], ev: &mut Event) {
        let send = sends(spec, ev);
        for (i, what) in spec.args.iter().enumerate() {
            let v = a[i];
            match *what {
                Arg::Len => ev.len = Some(v),
                Arg::Iov => ev.len = arg(spec, a, Arg::IovCnt).and_then(|n| iov_total(tid, v, n)),
                Arg::Msg => {
                    ev.len = msghdr_iov_total(tid, v);
                    if send {
                        ev.addr = msghdr_name(tid, v);
                    }
                }
                Arg::Addr if v != 0 => {
                    let len = arg(spec, a, Arg::AddrLen).unwrap_or(0) as usize;
                    ev.addr =
                        mem::read_mem(tid, v, len.min(128)).and_then(|b| decode::sockaddr(&b));
                }
                Arg::Pos => ev.pos = explicit_pos(spec, a),
                Arg::Flags(kind) => {
                    if let Some(f) = decode_flags(kind, v, a) {
                        ev.flags = Some(f);
                    }
                }
                _ => {}
            }
        }
        if ev.class == Some(Class::Data) && ev.addr.is_some() {
            // An unconnected datagram socket: the destination names the peer.
            let owner = ev.addr.as_deref().and_then(|a| self.owner_of(a));
            if let Some(s) = ev.sock.as_mut().filter(|s| s.peer_node.is_none()) {
                s.peer_node = owner;
            }
        }
    }

    /// Completes an event at the call's exit: what the result tells about sockets and files.
    pub(crate) fn complete(
        &mut self,
        tid: i32,
        tgid: i32,
        nr: i64,
        a: &[u64; 6],
        ret: i64,
        ev: &mut Event,
    ) {
        let Some(spec) = calls::by_nr(nr) else {
            return;
        };
        match spec.socket.map(|s| s.op) {
            Some(SocketOp::Create) if ret >= 0 => self.created_socket(tgid, spec, a, ret, ev),
            Some(SocketOp::CreatePair) if ret == 0 => self.created_pair(tid, tgid, spec, a, ev),
            Some(
                op @ (SocketOp::Bind | SocketOp::Listen | SocketOp::Connect | SocketOp::Shutdown),
            ) => self.addressed(tid, tgid, op, a[0] as i32, ret, ev),
            Some(SocketOp::Accept) if ret >= 0 => self.accepted(tid, tgid, spec, a, ret, ev),
            Some(SocketOp::Close) => {
                if let Some(s) = &ev.sock {
                    // Bounded by the open connections; a stale name would be harmless anyway.
                    if let Some(l) = &s.local {
                        self.connectors.remove(l);
                    }
                    self.accepted_peer.remove(&s.ino);
                    self.kernel_socks.remove(&s.ino);
                }
            }
            _ => {}
        }
        let file_op = spec
            .file
            .filter(|_| ev.class == Some(Class::File))
            .map(|f| f.op);
        match file_op {
            Some(FileOp::Open) if ret >= 0 => {
                ev.fd = Some(ret as i32);
                if let Some(p) = &ev.path {
                    self.set_fd(tgid, ret as i32, Fd::Data(PathBuf::from(p)));
                }
            }
            Some(FileOp::Write) if ret > 0 && self.file_data.is_some() => {
                self.record_file_data(tid, tgid, spec, a, ret as u64, ev);
            }
            Some(FileOp::MapSync) if ret == 0 && self.file_data.is_some() => {
                self.record_mapped_data(tid, spec, a, ev);
            }
            _ => {}
        }
        if ev.class == Some(Class::Data) {
            self.transferred(tid, tgid, spec, a, ret, ev);
        }
    }

    fn created_socket(
        &mut self,
        tgid: i32,
        spec: &CallSpec,
        a: &[u64; 6],
        ret: i64,
        ev: &mut Event,
    ) {
        let ty = arg(spec, a, Arg::Flags(Flags::SocketType)).unwrap_or(0);
        let hint = proto_hint(a[0], ty);
        let Some(procfs::FdTarget::Socket(ino)) = self.returned_fd(tgid, ret as i32, 0) else {
            return;
        };
        let st = SockState {
            ino,
            proto: hint,
            local: None,
            remote: None,
            peer_node: None,
        };
        ev.fd = Some(ret as i32);
        ev.sock = Some(Self::sock_event(&st, &self.peers));
        self.set_fd(tgid, ret as i32, Fd::Sock(st));
    }

    fn created_pair(&mut self, tid: i32, tgid: i32, spec: &CallSpec, a: &[u64; 6], ev: &mut Event) {
        let Some(fds) = arg(spec, a, Arg::FdPairOut) else {
            return;
        };
        let (Some(f0), Some(f1)) = (mem::read_u32(tid, fds), mem::read_u32(tid, fds + 4)) else {
            return;
        };
        let ty = arg(spec, a, Arg::Flags(Flags::SocketType)).unwrap_or(0);
        let hint = proto_hint(a[0], ty);
        let mut inos = Vec::new();
        for (i, f) in [f0 as i32, f1 as i32].into_iter().enumerate() {
            if let Some(procfs::FdTarget::Socket(ino)) = self.returned_fd(tgid, f, i) {
                inos.push(ino);
                let st = SockState {
                    ino,
                    proto: hint,
                    local: None,
                    remote: None,
                    peer_node: Some(ev.node.clone()),
                };
                self.set_fd(tgid, f, Fd::Sock(st));
            }
        }
        if let [x, y] = inos[..] {
            self.peers.insert(x, y);
            self.peers.insert(y, x);
        }
        ev.flags = Some(format!(
            "{} fds=[{f0},{f1}]",
            ev.flags.as_deref().unwrap_or("")
        ));
    }

    /// bind, listen, connect, shutdown: the socket's addresses may have changed.
    fn addressed(&mut self, tid: i32, tgid: i32, op: SocketOp, fd: i32, ret: i64, ev: &mut Event) {
        let connected = ret == 0 || ret == -(libc::EINPROGRESS as i64);
        let hint = match self.procs.get(&tgid).and_then(|p| p.fds.get(&fd)) {
            Some(Fd::Sock(s)) => Some(s.proto),
            _ => None,
        };
        if connected || matches!(op, SocketOp::Listen | SocketOp::Bind) {
            // Addresses change with these calls: re-resolve from the kernel's tables.
            self.forget_fd(tgid, fd);
        }
        if let Some(procfs::FdTarget::Socket(ino)) = self.returned_fd(tgid, fd, 0) {
            // Keep what socket() told us when the tables no longer list it (a refused
            // non-blocking connect is gone from /proc/net/tcp at once).
            let st = self.resolve_sock(tgid, fd, ino, hint);
            self.set_fd(tgid, fd, Fd::Sock(st));
        }
        if let Fd::Sock(s) = self.fd_kind(tgid, fd) {
            if op == SocketOp::Connect && connected {
                if let (Some(l), Some(t)) = (&s.local, self.threads.get(&tid)) {
                    self.connectors.insert(l.clone(), t.label.clone());
                }
            }
            if op == SocketOp::Listen && ret == 0 {
                if let Some(port) = s.local.as_deref().and_then(crate::inner::port_of) {
                    self.listeners.insert(port, ev.node.clone());
                }
            }
            ev.sock = Some(Self::sock_event(&s, &self.peers));
        }
    }

    fn accepted(
        &mut self,
        tid: i32,
        tgid: i32,
        spec: &CallSpec,
        a: &[u64; 6],
        ret: i64,
        ev: &mut Event,
    ) {
        let seen = self.exit_file.is_some();
        if let Some(procfs::FdTarget::Socket(ino)) = seen
            .then(|| self.returned_fd(tgid, ret as i32, 0))
            .flatten()
        {
            // Seen by the probe: the accepted socket as the kernel had it when accept returned.
            let st = self.resolve_sock(tgid, ret as i32, ino, None);
            self.set_fd(tgid, ret as i32, Fd::Sock(st));
        }
        if let Fd::Sock(mut s) = self.fd_kind(tgid, ret as i32) {
            if s.peer_node.is_none() {
                s.peer_node = self.connecting_peer(&s);
                if let Some(p) = &s.peer_node {
                    self.accepted_peer.insert(s.ino, Rc::from(p.as_str()));
                }
                self.set_fd(tgid, ret as i32, Fd::Sock(s.clone()));
            }
            ev.sock = Some(Self::sock_event(&s, &self.peers));
        }
        self.peer_address_out(tid, spec, a, ev);
    }

    /// The address the kernel wrote into an `AddrOut` argument, when one was asked for.
    fn peer_address_out(&self, tid: i32, spec: &CallSpec, a: &[u64; 6], ev: &mut Event) {
        let (Some(addr), Some(len_at)) =
            (arg(spec, a, Arg::AddrOut), arg(spec, a, Arg::AddrLenOut))
        else {
            return;
        };
        if addr == 0 {
            return;
        }
        if let Some(len) = mem::read_u32(tid, len_at) {
            ev.addr = mem::read_mem(tid, addr, (len as usize).min(128))
                .and_then(|b| decode::sockaddr(&b));
        }
    }

    /// A socket transfer: its place in the stream, the source of a datagram, the payload.
    fn transferred(
        &mut self,
        tid: i32,
        tgid: i32,
        spec: &CallSpec,
        a: &[u64; 6],
        ret: i64,
        ev: &mut Event,
    ) {
        let send = sends(spec, ev);
        let Some(s) = &mut ev.sock else {
            return;
        };
        // Several messages (mmsg) have no single place in the stream.
        let moved = if ret > 0 && !spec.has(Arg::MsgVec) {
            ret as u64
        } else {
            0
        };
        let entry = self.streams.entry(s.ino).or_default();
        let counter = if send { &mut entry.0 } else { &mut entry.1 };
        ev.off = Some(*counter);
        *counter += moved;
        if s.remote.is_none() && s.proto == Proto::Tcp {
            // Resolved before it was connected (e.g. inherited): try again.
            if let Fd::Sock(fresh) = {
                self.forget_fd(tgid, a[0] as i32);
                self.fd_kind(tgid, a[0] as i32)
            } {
                *s = Self::sock_event(&fresh, &self.peers);
            }
        }
        if !send && ret >= 0 {
            self.peer_address_out(tid, spec, a, ev);
            if let Some(msg) = arg(spec, a, Arg::Msg) {
                ev.addr = msghdr_name(tid, msg);
            }
        }
        if self.cfg.payload_bytes > 0 && moved > 0 {
            let n = (moved as usize).min(self.cfg.payload_bytes);
            // Vectored calls: the bytes of each iovec in turn, never past one's length.
            let bytes = match (
                arg(spec, a, Arg::Buf),
                arg(spec, a, Arg::Iov),
                arg(spec, a, Arg::Msg),
            ) {
                (Some(b), _, _) => mem::read_mem(tid, b, n),
                (None, Some(iov), _) => {
                    iov_head(tid, iov, arg(spec, a, Arg::IovCnt).unwrap_or(0), n)
                }
                (None, None, Some(msg)) => mem::read_u64(tid, msg + 16).and_then(|iov| {
                    iov_head(tid, iov, mem::read_u64(tid, msg + 24).unwrap_or(0), n)
                }),
                _ => None,
            };
            ev.data = bytes.map(|bytes| escape_bytes(&bytes));
        }
    }

    /// Appends the bytes a successful data-dir write wrote to the file-data file; sets
    /// `data_at` and, for a write at the fd's offset, `pos` (the fd's offset after the call,
    /// from fdinfo, minus what it wrote: right for O_APPEND too; for `copy_file_range` with
    /// an `off_out`, the offset it points to after the call, minus what it copied).
    fn record_file_data(
        &mut self,
        tid: i32,
        tgid: i32,
        spec: &CallSpec,
        a: &[u64; 6],
        moved: u64,
        ev: &mut Event,
    ) {
        let fd = arg(spec, a, Arg::Fd).unwrap_or(a[0]) as i32;
        let explicit = explicit_pos(spec, a);
        // Where it wrote: the offset named, else the one it advanced (through a pointer, or
        // the descriptor's, from fdinfo: right for O_APPEND too), less what it wrote.
        let pos = explicit.or_else(|| {
            let after = match arg(spec, a, Arg::PosPtr).filter(|&p| p != 0) {
                Some(ptr) => mem::read_mem(tid, ptr, 8)
                    .and_then(|b| Some(u64::from_ne_bytes(b.try_into().ok()?))),
                None => procfs::fd_pos(tgid, fd),
            };
            after.map(|p| p.saturating_sub(moved))
        });
        let bytes = match (arg(spec, a, Arg::Buf), arg(spec, a, Arg::Iov)) {
            (Some(buf), _) => mem::read_mem(tid, buf, moved as usize),
            (None, Some(iov)) => {
                let cnt = arg(spec, a, Arg::IovCnt).unwrap_or(0);
                iov_bytes(tid, iov, cnt, moved as usize)
            }
            // No buffer (copy_file_range, sendfile): the bytes are in the file now, read back at the
            // stop, before the process can change them.
            _ => pos.and_then(|p| procfs::read_fd_at(tgid, fd, p, moved as usize)),
        };
        let Some(bytes) = bytes.filter(|b| b.len() as u64 == moved) else {
            return;
        };
        if explicit.is_none() {
            ev.pos = pos;
        }
        let Some((w, len)) = &mut self.file_data else {
            return;
        };
        if std::io::Write::write_all(w, &bytes).is_ok() {
            ev.data_at = Some(*len);
            *len += moved;
        }
    }
}

impl<S: Sink> Inner<S> {
    /// The bytes of an msync'd range (its `len`, cut at the file's end at entry), appended to
    /// the file-data side file; none beyond [`MAX_MAPPED`] (the model then has no bytes for
    /// the call and says so).
    fn record_mapped_data(&mut self, tid: i32, spec: &CallSpec, a: &[u64; 6], ev: &mut Event) {
        let (Some(addr), Some(len)) = (arg(spec, a, Arg::Buf), ev.len) else {
            return;
        };
        if len == 0 || len > MAX_MAPPED {
            return;
        }
        let Some(bytes) = mem::read_mem(tid, addr, len as usize).filter(|b| b.len() as u64 == len)
        else {
            return;
        };
        let Some((w, at)) = &mut self.file_data else {
            return;
        };
        if std::io::Write::write_all(w, &bytes).is_ok() {
            ev.data_at = Some(*at);
            *at += len;
        }
    }
}

/// Most bytes of one msync'd range recorded.
const MAX_MAPPED: u64 = 64 << 20;

/// [`Event::is_send`] from the call's row at hand (no lookup by name on the hot path).
fn sends(spec: &CallSpec, ev: &Event) -> bool {
    matches!(ev.class, Some(Class::Net | Class::Data))
        && spec.socket.and_then(|s| s.op.direction()) == Some(ordeal_events::Direction::Send)
}

/// The transport a socket(2) call asks for.
pub(crate) fn proto_hint(domain: u64, ty: u64) -> Proto {
    match (domain as i32, (ty & 0xf) as i32) {
        (libc::AF_UNIX, _) => Proto::Unix,
        (libc::AF_INET | libc::AF_INET6, libc::SOCK_STREAM) => Proto::Tcp,
        (libc::AF_INET | libc::AF_INET6, libc::SOCK_DGRAM) => Proto::Udp,
        _ => Proto::Other,
    }
}

/// Sum of iov_len over an iovec array (at most 64 entries read).
fn iov_total(pid: i32, iov: u64, cnt: u64) -> Option<u64> {
    let cnt = cnt.min(64) as usize;
    let b = mem::read_mem(pid, iov, cnt * 16)?;
    Some(
        b.chunks_exact(16)
            .map(|c| u64::from_ne_bytes(c[8..16].try_into().unwrap_or([0; 8])))
            .sum(),
    )
}

/// The first `max` bytes an iovec array points to.
fn iov_bytes(pid: i32, iov: u64, cnt: u64, max: usize) -> Option<Vec<u8>> {
    let cnt = cnt.min(1024) as usize;
    let b = mem::read_mem(pid, iov, cnt * 16)?;
    let mut out = Vec::with_capacity(max);
    for c in b.chunks_exact(16) {
        if out.len() >= max {
            break;
        }
        let base = u64::from_ne_bytes(c[0..8].try_into().ok()?);
        let len = u64::from_ne_bytes(c[8..16].try_into().ok()?) as usize;
        let take = len.min(max - out.len());
        if take > 0 {
            out.extend_from_slice(&mem::read_mem(pid, base, take)?);
        }
    }
    Some(out)
}

/// The first `max` bytes of an iovec array's buffers, or as many of them as can be read
/// without a hole: a buffer read short (the probe copies only the first one's head) ends it.
fn iov_head(pid: i32, iov: u64, cnt: u64, max: usize) -> Option<Vec<u8>> {
    let cnt = cnt.min(1024) as usize;
    let b = mem::read_mem(pid, iov, cnt * 16)?;
    let mut out = Vec::with_capacity(max);
    for c in b.chunks_exact(16) {
        let base = u64::from_ne_bytes(c[0..8].try_into().ok()?);
        let len = u64::from_ne_bytes(c[8..16].try_into().ok()?) as usize;
        let take = len.min(max - out.len());
        if take == 0 {
            if out.len() >= max {
                break;
            }
            continue;
        }
        let got = mem::read_mem(pid, base, take).unwrap_or_default();
        out.extend_from_slice(&got);
        if got.len() < take {
            break;
        }
    }
    (!out.is_empty()).then_some(out)
}

/// `struct msghdr`: name (0), namelen (8), iov (16), iovlen (24), ...
fn msghdr_iov_total(pid: i32, msg: u64) -> Option<u64> {
    let iov = mem::read_u64(pid, msg + 16)?;
    let n = mem::read_u64(pid, msg + 24)?;
    iov_total(pid, iov, n)
}

fn msghdr_name(pid: i32, msg: u64) -> Option<String> {
    let name = mem::read_u64(pid, msg)?;
    let len = mem::read_u32(pid, msg + 8)?;
    if name == 0 || len == 0 {
        return None;
    }
    decode::sockaddr(&mem::read_mem(pid, name, (len as usize).min(128))?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tracer's numbers are the kernel's: every row of the call table against libc.
    #[test]
    fn the_call_tables_numbers_are_this_kernels() {
        use libc::*;
        let libc_nr = |name: &str| -> i64 {
            match name {
                "socket" => SYS_socket,
                "socketpair" => SYS_socketpair,
                "bind" => SYS_bind,
                "listen" => SYS_listen,
                "connect" => SYS_connect,
                "accept" => SYS_accept,
                "accept4" => SYS_accept4,
                "shutdown" => SYS_shutdown,
                "close" => SYS_close,
                "close_range" => SYS_close_range,
                "dup2" => SYS_dup2,
                "dup3" => SYS_dup3,
                "read" => SYS_read,
                "write" => SYS_write,
                "readv" => SYS_readv,
                "writev" => SYS_writev,
                "pwrite64" => SYS_pwrite64,
                "pwritev" => SYS_pwritev,
                "pwritev2" => SYS_pwritev2,
                "copy_file_range" => SYS_copy_file_range,
                "sendfile" => SYS_sendfile,
                "sendto" => SYS_sendto,
                "recvfrom" => SYS_recvfrom,
                "sendmsg" => SYS_sendmsg,
                "recvmsg" => SYS_recvmsg,
                "sendmmsg" => SYS_sendmmsg,
                "recvmmsg" => SYS_recvmmsg,
                "open" => SYS_open,
                "openat" => SYS_openat,
                "creat" => SYS_creat,
                "fsync" => SYS_fsync,
                "fdatasync" => SYS_fdatasync,
                "sync_file_range" => SYS_sync_file_range,
                "sync" => SYS_sync,
                "syncfs" => SYS_syncfs,
                "ftruncate" => SYS_ftruncate,
                "truncate" => SYS_truncate,
                "rename" => SYS_rename,
                "renameat" => SYS_renameat,
                "renameat2" => SYS_renameat2,
                "unlink" => SYS_unlink,
                "unlinkat" => SYS_unlinkat,
                "mkdir" => SYS_mkdir,
                "mkdirat" => SYS_mkdirat,
                "rmdir" => SYS_rmdir,
                "link" => SYS_link,
                "linkat" => SYS_linkat,
                "symlink" => SYS_symlink,
                "symlinkat" => SYS_symlinkat,
                "fallocate" => SYS_fallocate,
                "msync" => SYS_msync,
                other => panic!("{other}: add its libc number to this test"),
            }
        };
        for c in calls::CALLS {
            assert_eq!(c.nr, libc_nr(c.name), "{}", c.name);
            assert_eq!(syscall_name(c.nr), c.name);
        }
        assert_eq!(syscall_name(SYS_getpid), "?");
    }

    #[test]
    fn flags_decode_by_kind() {
        let a = [libc::AF_INET as u64, 0, 0, 0, 0, 0];
        assert_eq!(
            decode_flags(Flags::Creat, 0o644, &a).as_deref(),
            Some("O_WRONLY|O_CREAT|O_TRUNC")
        );
        assert_eq!(decode_flags(Flags::Accept, 0, &a), None);
        assert_eq!(decode_flags(Flags::UnlinkAt, 0, &a), None);
        assert_eq!(decode_flags(Flags::RenameAt2, 0, &a), None);
        assert_eq!(
            decode_flags(Flags::RenameAt2, 2, &a).as_deref(),
            Some("RENAME_EXCHANGE")
        );
        assert_eq!(
            decode_flags(Flags::Fallocate, 3, &a).as_deref(),
            Some("FALLOC_FL_KEEP_SIZE|FALLOC_FL_PUNCH_HOLE")
        );
        assert_eq!(
            decode_flags(Flags::Msync, libc::MS_SYNC as u64, &a).as_deref(),
            Some("MS_SYNC")
        );
        assert_eq!(
            decode_flags(Flags::UnlinkAt, libc::AT_REMOVEDIR as u64, &a).as_deref(),
            Some("AT_REMOVEDIR")
        );
        let mut args = [0u64; 6];
        args[3] = libc::MSG_DONTWAIT as u64;
        assert!(nonblocking_call(libc::SYS_sendto, &args));
        assert!(!nonblocking_call(libc::SYS_write, &args));
        assert!(is_plain_transfer(libc::SYS_recvfrom));
        assert!(!is_plain_transfer(libc::SYS_pwrite64));
        let pwritev2 = calls::by_name("pwritev2").unwrap();
        let mut at_offset = [0u64; 6];
        at_offset[3] = u64::MAX;
        assert_eq!(explicit_pos(pwritev2, &at_offset), None);
        at_offset[3] = 4096;
        assert_eq!(explicit_pos(pwritev2, &at_offset), Some(4096));
    }
}
