//! /proc readers shared by the tracer and the diagnostics: a task's command line, cwd,
//! status (thread-group and parent ids) and stat, its fd targets and fdinfo. Each reader
//! returns `None`/empty/`false` for a task or fd that is gone; the parsers are separate so
//! they can be tested on fixed text.

use std::path::PathBuf;

/// The arguments of `pid` (NUL-separated /proc/PID/cmdline); empty if unreadable.
pub fn cmdline(pid: i32) -> Vec<String> {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| parse_cmdline(&b))
        .unwrap_or_default()
}

/// Splits a cmdline file at its NULs, dropping empty pieces (lossy UTF-8).
pub fn parse_cmdline(bytes: &[u8]) -> Vec<String> {
    bytes
        .split(|&c| c == 0)
        .filter(|s| !s.is_empty())
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect()
}

/// The working directory of `pid`.
pub fn cwd(pid: i32) -> Option<PathBuf> {
    std::fs::read_link(format!("/proc/{pid}/cwd")).ok()
}

/// What an fd number refers to, as resolved from /proc.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FdTarget {
    /// A socket, by inode.
    Socket(u64),
    /// A file that still has this path.
    Path(PathBuf),
    /// Anything else: pipes, anonymous inodes, deleted files.
    Other,
}

/// Resolves `/proc/PID/fd/FD`.
pub fn fd_target(pid: i32, fd: i32) -> Option<FdTarget> {
    let link = std::fs::read_link(format!("/proc/{pid}/fd/{fd}")).ok()?;
    let s = link.to_string_lossy();
    if s.starts_with("socket:[") {
        return socket_inode(&s).map(FdTarget::Socket);
    }
    if s.starts_with('/') && !s.ends_with(" (deleted)") {
        return Some(FdTarget::Path(link));
    }
    Some(FdTarget::Other)
}

/// The inode of an fd link's text `socket:[INODE]`.
pub fn socket_inode(link: &str) -> Option<u64> {
    link.strip_prefix("socket:[")?
        .trim_end_matches(']')
        .parse()
        .ok()
}

/// The file offset of an fd (`pos:` in /proc/PID/fdinfo/FD).
pub fn fd_pos(pid: i32, fd: i32) -> Option<u64> {
    parse_fdinfo_pos(&std::fs::read_to_string(format!("/proc/{pid}/fdinfo/{fd}")).ok()?)
}

/// `pos:` of an fdinfo text.
pub fn parse_fdinfo_pos(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix("pos:"))
        .and_then(|v| v.trim().parse().ok())
}

/// Whether `fd` of `pid` is in non-blocking mode (`O_NONBLOCK` in its fdinfo flags).
pub fn fd_nonblocking(pid: i32, fd: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/fdinfo/{fd}"))
        .ok()
        .and_then(|t| parse_fdinfo_flags(&t))
        .is_some_and(|f| f & libc::O_NONBLOCK as i64 != 0)
}

/// `flags:` (octal) of an fdinfo text.
pub fn parse_fdinfo_flags(text: &str) -> Option<i64> {
    text.lines()
        .find_map(|l| l.strip_prefix("flags:"))
        .and_then(|v| i64::from_str_radix(v.trim(), 8).ok())
}

/// `Tgid` and `PPid` of a task, from /proc/TID/status.
pub fn tgid_ppid(tid: i32) -> Option<(i32, i32)> {
    parse_tgid_ppid(&std::fs::read_to_string(format!("/proc/{tid}/status")).ok()?)
}

/// `Tgid` and `PPid` of a status text.
pub fn parse_tgid_ppid(text: &str) -> Option<(i32, i32)> {
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse().ok())
    };
    Some((field("Tgid:")?, field("PPid:")?))
}

/// Thread ids of a process, ascending.
pub fn tasks(pid: i32) -> Vec<i32> {
    let mut v: Vec<i32> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    v.sort_unstable();
    v
}

/// From /proc/PID/task/TID/stat: state letter, name, user+system CPU ticks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskStat {
    pub state: char,
    pub comm: String,
    pub cpu_ticks: u64,
}

/// Parses a `stat` line (the command name may contain spaces and parentheses).
pub fn parse_stat(text: &str) -> Option<TaskStat> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let comm = text.get(open + 1..close)?.to_string();
    let rest: Vec<&str> = text.get(close + 1..)?.split_whitespace().collect();
    // rest[0] = state (field 3); utime is field 14, stime field 15 → rest[11], rest[12].
    let state = rest.first()?.chars().next()?;
    let utime: u64 = rest.get(11)?.parse().ok()?;
    let stime: u64 = rest.get(12)?.parse().ok()?;
    Some(TaskStat {
        state,
        comm,
        cpu_ticks: utime + stime,
    })
}

/// The stat of thread `tid` of `pid`.
pub fn task_stat(pid: i32, tid: i32) -> Option<TaskStat> {
    parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/stat")).ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cmdline_pieces() {
        assert_eq!(
            parse_cmdline(b"kv\0--port\0\x008080\0"),
            ["kv", "--port", "8080"]
        );
        assert!(parse_cmdline(b"").is_empty());
        let me = std::process::id() as i32;
        assert!(!cmdline(me).is_empty());
        assert_eq!(cwd(me), std::env::current_dir().ok());
    }

    #[test]
    fn stat_with_odd_name() {
        let s = "42 (a (b) c) S 1 42 42 0 -1 4194560 100 0 0 0 7 3 0 0 20 0 1 0 1 1 1";
        let st = parse_stat(s).unwrap();
        assert_eq!(st.state, 'S');
        assert_eq!(st.comm, "a (b) c");
        assert_eq!(st.cpu_ticks, 10);
        assert_eq!(parse_stat("42 (x) S 1"), None, "too few fields");
    }

    #[test]
    fn status_and_fdinfo_fields() {
        let status = "Name:\tkv\nTgid:\t40\nNgid:\t0\nPid:\t41\nPPid:\t7\n";
        assert_eq!(parse_tgid_ppid(status), Some((40, 7)));
        assert_eq!(parse_tgid_ppid("Tgid:\t40\n"), None);
        let fdinfo = "pos:\t4096\nflags:\t0104002\nmnt_id:\t29\n";
        assert_eq!(parse_fdinfo_pos(fdinfo), Some(4096));
        assert_eq!(parse_fdinfo_flags(fdinfo), Some(0o104002));
        let me = std::process::id() as i32;
        assert_eq!(tgid_ppid(me).map(|(t, _)| t), Some(me));
        assert!(tasks(me).contains(&me));
        // This thread is running while it reads its own stat.
        let link = std::fs::read_link("/proc/thread-self").unwrap();
        let tid: i32 = link.file_name().unwrap().to_str().unwrap().parse().unwrap();
        assert_eq!(task_stat(me, tid).map(|s| s.state), Some('R'));
    }

    #[test]
    fn socket_links() {
        assert_eq!(socket_inode("socket:[1234]"), Some(1234));
        assert_eq!(socket_inode("pipe:[1234]"), None);
        assert_eq!(socket_inode("socket:[x]"), None);
    }

    #[test]
    fn nonblocking_mode_is_read_from_fdinfo() {
        let mut fds = [0; 2];
        // SAFETY: pipe2 into a local array; both fds are closed below.
        let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK) };
        assert_eq!(rc, 0);
        let me = std::process::id() as i32;
        assert!(fd_nonblocking(me, fds[0]));
        assert_eq!(fd_pos(me, fds[0]), Some(0));
        // SAFETY: clearing the flag on our own fd.
        unsafe { libc::fcntl(fds[0], libc::F_SETFL, 0) };
        assert!(!fd_nonblocking(me, fds[0]));
        assert!(!fd_nonblocking(me, 9999), "no such fd");
        assert_eq!(fd_target(me, fds[0]), Some(FdTarget::Other));
        // SAFETY: closing the fds opened above.
        unsafe {
            libc::close(fds[0]);
            libc::close(fds[1]);
        }
    }

    #[test]
    fn resolves_own_socket_and_file() {
        use std::os::fd::AsRawFd;
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let me = std::process::id() as i32;
        let Some(FdTarget::Socket(ino)) = fd_target(me, l.as_raw_fd()) else {
            panic!("not a socket")
        };
        assert!(ino > 0);
        let f = tempfile_in_target();
        assert_eq!(
            fd_target(me, f.0.as_raw_fd()),
            Some(FdTarget::Path(f.1.clone()))
        );
        let _ = std::fs::remove_file(&f.1);
    }

    /// A file of our own to resolve (no tempfile dependency for one test).
    fn tempfile_in_target() -> (std::fs::File, PathBuf) {
        let path = std::env::temp_dir()
            .canonicalize()
            .unwrap()
            .join(format!("ordeal-sys-proc-{}", std::process::id()));
        (std::fs::File::create(&path).unwrap(), path)
    }
}
