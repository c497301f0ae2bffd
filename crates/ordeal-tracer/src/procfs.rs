//! What the kernel knows about a tracee's fds and sockets, read from /proc.
//!
//! Sockets are identified by inode (`/proc/PID/fd/N -> socket:[INODE]`); their addresses come
//! from [`crate::sockinfo`].

use std::path::PathBuf;

/// What an fd number refers to, as resolved from /proc.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FdTarget {
    Socket(u64),
    Path(PathBuf),
    Other,
}

pub fn fd_target(pid: i32, fd: i32) -> Option<FdTarget> {
    let link = std::fs::read_link(format!("/proc/{pid}/fd/{fd}")).ok()?;
    let s = link.to_string_lossy();
    if let Some(rest) = s.strip_prefix("socket:[") {
        return rest
            .trim_end_matches(']')
            .parse()
            .ok()
            .map(FdTarget::Socket);
    }
    if s.starts_with('/') && !s.ends_with(" (deleted)") {
        return Some(FdTarget::Path(link));
    }
    Some(FdTarget::Other)
}

/// The file offset of an fd (`pos:` in /proc/PID/fdinfo/FD).
pub fn fd_pos(pid: i32, fd: i32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/fdinfo/{fd}")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("pos:"))
        .and_then(|v| v.trim().parse().ok())
}

pub fn cwd(pid: i32) -> Option<PathBuf> {
    std::fs::read_link(format!("/proc/{pid}/cwd")).ok()
}

/// `Tgid` and `PPid` of a task, from /proc/TID/status.
pub fn tgid_ppid(tid: i32) -> Option<(i32, i32)> {
    let text = std::fs::read_to_string(format!("/proc/{tid}/status")).ok()?;
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse().ok())
    };
    Some((field("Tgid:")?, field("PPid:")?))
}

pub fn cmdline(pid: i32) -> Vec<String> {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| {
            b.split(|&c| c == 0)
                .filter(|s| !s.is_empty())
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Whether `fd` of `pid` is in non-blocking mode (`O_NONBLOCK` in its fdinfo flags).
pub fn fd_nonblocking(pid: i32, fd: i32) -> bool {
    let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/fdinfo/{fd}")) else {
        return false;
    };
    text.lines()
        .find_map(|l| l.strip_prefix("flags:"))
        .and_then(|v| i64::from_str_radix(v.trim(), 8).ok())
        .is_some_and(|f| f & libc::O_NONBLOCK as i64 != 0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn nonblocking_mode_is_read_from_fdinfo() {
        let mut fds = [0; 2];
        // SAFETY: pipe2 into a local array; both fds are closed below.
        let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK) };
        assert_eq!(rc, 0);
        let me = std::process::id() as i32;
        assert!(super::fd_nonblocking(me, fds[0]));
        // SAFETY: clearing the flag on our own fd.
        unsafe { libc::fcntl(fds[0], libc::F_SETFL, 0) };
        assert!(!super::fd_nonblocking(me, fds[0]));
        assert!(!super::fd_nonblocking(me, 9999), "no such fd");
        // SAFETY: closing the fds opened above.
        unsafe {
            libc::close(fds[0]);
            libc::close(fds[1]);
        }
    }

    use super::*;

    #[test]
    fn resolves_own_socket() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        use std::os::fd::AsRawFd;
        let me = std::process::id() as i32;
        let Some(FdTarget::Socket(ino)) = fd_target(me, l.as_raw_fd()) else {
            panic!("not a socket")
        };
        assert!(ino > 0);
        let _ = port;
    }
}
