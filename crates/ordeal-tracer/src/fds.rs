//! The tracer's view of each traced process's descriptors: which are sockets (resolved to
//! addresses and nodes) and which are files under a data root; everything else is ignored.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use ordeal_events::{Proto, Sock};

use crate::inner::{port_of, Inner};
use crate::{mem, procfs, sockinfo, Sink};

/// What an fd of a traced process refers to, as far as the tracer cares.
#[derive(Debug, Clone)]
pub(crate) enum Fd {
    Sock(SockState),
    /// A file under a data root.
    Data(PathBuf),
    /// Anything else: calls on it are resumed without a syscall-exit stop.
    Ignore,
}

#[derive(Debug, Clone)]
pub(crate) struct SockState {
    pub(crate) ino: u64,
    pub(crate) proto: Proto,
    pub(crate) local: Option<String>,
    pub(crate) remote: Option<String>,
    pub(crate) peer_node: Option<String>,
}

impl<S: Sink> Inner<S> {
    /// Looks up (and caches) what `fd` of process `tgid` is.
    pub(crate) fn fd_kind(&mut self, tgid: i32, fd: i32) -> Fd {
        if let Some((ino, socket)) = self.entry_file.filter(|&(ino, _)| ino != 0) {
            // Decoding a probe record: the kernel said what the descriptor was when the call
            // started. The cache may be stale (the number reused since), /proc may be too
            // (closed, reused, or the process gone by now).
            let stale = match self.procs.get(&tgid).and_then(|p| p.fds.get(&fd)) {
                Some(Fd::Sock(s)) if socket && s.ino == ino => return Fd::Sock(s.clone()),
                Some(Fd::Data(_) | Fd::Ignore) => socket,
                Some(Fd::Sock(_)) => true,
                None => false,
            };
            if stale {
                self.forget_fd(tgid, fd);
            }
            if socket {
                let kind = Fd::Sock(self.resolve_sock(tgid, fd, ino, None));
                self.set_fd(tgid, fd, kind.clone());
                return kind;
            }
        }
        if let Some(f) = self.procs.get(&tgid).and_then(|p| p.fds.get(&fd)) {
            if let Fd::Data(_) = f {
                // Directories can be renamed under an open file (etcd renames wal.tmp to
                // wal): ask the kernel for its current path, rare enough to afford it.
                if let Some(procfs::FdTarget::Path(p)) = procfs::fd_target(tgid, fd) {
                    return Fd::Data(p);
                }
            }
            return f.clone();
        }
        // Decoding a probe record of a call on a file that is not a socket: /proc shows the
        // descriptor as it is now, which is what the kernel saw only if the inode agrees.
        let file_then = self.entry_file.map(|(ino, _)| ino).filter(|&ino| ino != 0);
        let kind = match procfs::fd_target(tgid, fd) {
            Some(procfs::FdTarget::Socket(_)) if file_then.is_some() => Fd::Ignore,
            Some(procfs::FdTarget::Socket(ino)) => Fd::Sock(self.resolve_sock(tgid, fd, ino, None)),
            Some(procfs::FdTarget::Path(p)) if self.under_roots(&p) => match file_then {
                Some(ino) if std::fs::metadata(&p).map(|m| m.ino()).ok() != Some(ino) => Fd::Ignore,
                _ => Fd::Data(p),
            },
            _ => Fd::Ignore,
        };
        if let Some(p) = self.procs.get_mut(&tgid) {
            p.fds.insert(fd, kind.clone());
        }
        kind
    }

    pub(crate) fn set_fd(&mut self, tgid: i32, fd: i32, kind: Fd) {
        if let Some(p) = self.procs.get_mut(&tgid) {
            p.fds.insert(fd, kind);
        }
    }

    /// What descriptor `fd` (the `nth` the call returned: socketpair returns two) is as the
    /// call returned: from the probe's record when one is being decoded (the first one's
    /// file, the second one's the first's Unix peer), else from /proc.
    pub(crate) fn returned_fd(&self, tgid: i32, fd: i32, nth: usize) -> Option<procfs::FdTarget> {
        let Some(f) = &self.exit_file else {
            return procfs::fd_target(tgid, fd);
        };
        let ino = match nth {
            0 => f.ino,
            _ => f.sock.as_ref()?.peer_ino?,
        };
        Some(if f.socket {
            procfs::FdTarget::Socket(ino)
        } else {
            procfs::FdTarget::Other
        })
    }

    pub(crate) fn forget_fd(&mut self, tgid: i32, fd: i32) {
        if let Some(p) = self.procs.get_mut(&tgid) {
            p.fds.remove(&fd);
        }
    }

    pub(crate) fn resolve_sock(
        &mut self,
        tgid: i32,
        fd: i32,
        ino: u64,
        hint: Option<Proto>,
    ) -> SockState {
        let info = self.procs.get_mut(&tgid).and_then(|p| {
            if p.pidfd.is_none() {
                p.pidfd = sockinfo::pidfd_open(tgid);
            }
            sockinfo::inspect(p.pidfd.as_ref()?, fd)
        });
        let (proto, local, remote) = match (info, self.kernel_socks.get(&ino)) {
            (Some(i), _) if i.ino == ino => (i.proto, i.local, i.remote),
            // Gone, or the number reused, by the time a probe record is decoded: what the
            // kernel said when the call ran.
            (_, Some(k)) => crate::observe::kernel_sock(k),
            _ => (hint.unwrap_or(Proto::Other), None, None),
        };
        // The same socket under another fd (dup, try_clone, inherited) has the same peer.
        let peer_node = self
            .accepted_peer
            .get(&ino)
            .map(|p| p.to_string())
            .or_else(|| remote.as_deref().and_then(|r| self.owner_of(r)));
        SockState {
            ino,
            proto,
            local,
            remote,
            peer_node,
        }
    }

    /// The node whose socket is the other end of accepted socket `s`: by its local address
    /// among completed connects, else among connects still in flight (the accept can be
    /// reported before the connect that caused it).
    pub(crate) fn connecting_peer(&mut self, s: &SockState) -> Option<String> {
        let client = s.remote.clone()?;
        if let Some(n) = self.connectors.get(&client) {
            return Some(n.to_string());
        }
        let in_flight: Vec<(i32, i32, Rc<str>)> = self
            .threads
            .iter()
            .filter_map(|(&tid, t)| {
                let p = self.call_in_progress(tid)?;
                (p.nr == libc::SYS_connect).then(|| (t.tgid, p.args[0] as i32, t.label.clone()))
            })
            .collect();
        for (tgid, fd, label) in in_flight {
            let pidfd = self.procs.get_mut(&tgid).and_then(|p| {
                if p.pidfd.is_none() {
                    p.pidfd = sockinfo::pidfd_open(tgid);
                }
                p.pidfd.as_ref()
            })?;
            if sockinfo::inspect(pidfd, fd).and_then(|i| i.local) == Some(client.clone()) {
                return Some(label.to_string());
            }
        }
        None
    }

    pub(crate) fn owner_of(&self, addr: &str) -> Option<String> {
        let port = port_of(addr)?;
        self.listeners
            .get(&port)
            .or_else(|| self.cfg.port_owners.get(&port))
            .cloned()
    }

    pub(crate) fn under_roots(&self, p: &Path) -> bool {
        self.cfg.data_roots.iter().any(|r| p.starts_with(r))
    }

    pub(crate) fn sock_event(s: &SockState, peers: &HashMap<u64, u64>) -> Sock {
        Sock {
            ino: s.ino,
            proto: s.proto,
            local: s.local.clone(),
            remote: s.remote.clone(),
            peer_ino: peers.get(&s.ino).copied(),
            peer_node: s.peer_node.clone(),
        }
    }

    /// Resolves a path argument of `tid` (relative to `dirfd` or the cwd).
    pub(crate) fn path_arg(
        &self,
        tid: i32,
        tgid: i32,
        dirfd: Option<i64>,
        addr: u64,
    ) -> Option<PathBuf> {
        let raw = mem::read_cstr(tid, addr, 4096)?;
        let p = PathBuf::from(String::from_utf8_lossy(&raw).into_owned());
        if p.is_absolute() {
            return Some(mem::normalize(Path::new("/"), &p));
        }
        let base = match dirfd {
            Some(fd) if fd as i32 != libc::AT_FDCWD => match procfs::fd_target(tgid, fd as i32)? {
                procfs::FdTarget::Path(b) => b,
                _ => return None,
            },
            _ => procfs::cwd(tgid)?,
        };
        Some(mem::normalize(&base, &p))
    }
}
