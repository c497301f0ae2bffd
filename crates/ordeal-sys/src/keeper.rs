//! The keeper: a small process that outlives ordeal by a moment to take down everything
//! ordeal started, however ordeal ends (SIGKILL included).
//!
//! A parent-death signal reaches only the direct child of the thread that forked it, and
//! `PTRACE_O_EXITKILL` only traced processes: the children of an untraced program (a
//! `[check]`, a `trace = false` node, a ready command) outlived a SIGKILL of ordeal, and in
//! netns mode kept the run's namespaces alive. The keeper closes that gap:
//!
//! - it is forked (twice, so it is nobody's child in ordeal and no `waitpid` of ordeal sees
//!   it) with the read end of a pipe whose write end only ordeal holds (close-on-exec), in a
//!   process group of its own and ignoring the terminal's signals;
//! - ordeal tells it, in 16-byte records (atomic pipe writes, so any thread may send), each
//!   process group it starts and each network namespace it creates, and forgets them once
//!   they are gone;
//! - when the pipe reaches end of file — ordeal's last descriptor closed, which every kind
//!   of death does — it SIGKILLs every registered group and every process found in /proc
//!   whose group or network namespace is registered, round after round until none is alive
//!   (a process forking while it is killed cannot slip through), then exits.
//!
//! Why this and not the alternatives: a subreaper only collects *descendants*, and the
//! programs are children of ordeal's tracer thread (ptrace and `waitpid` need that), not of
//! any process that outlives ordeal; a cgroup per run needs a writable, delegated cgroup v2
//! tree (read-only in most containers, absent in hybrid setups) and still needs something to
//! notice ordeal's death; a PID namespace changes what the programs see (their pids, init's
//! signal rules). Process groups are what the tracer already signals on a normal stop, and
//! namespaces are ordeal's own, anonymous ones: whatever is in them is the run's.
//!
//! Limits: a descendant of an untraced program that leaves its process group (`setsid`,
//! `setpgid`) is only found in netns mode, by its namespace (traced programs are covered by
//! `PTRACE_O_EXITKILL` whatever they do). A group number is released once the tracer has
//! reaped the whole run, so a group whose members all died early could in theory be reused
//! by an unrelated process before that — the kernel does not reuse a pid while any process
//! still has it as its group.
//!
//! The child runs after `fork` in a multi-threaded process: it only makes raw system calls on
//! stack memory (no allocation, no locks, no panics).

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::OnceLock;

/// Registered process groups and namespaces the keeper can hold at once (the tracer releases
/// a run's groups when it ends, so this bounds concurrent processes, not a campaign).
const MAX_GROUPS: usize = 4096;
const MAX_NETNS: usize = 1024;
/// How long the sweep goes on while something it killed is still not dead (a task stuck in
/// an uninterruptible sleep cannot be waited for forever).
const SWEEP_LIMIT_NS: i64 = 10_000_000_000;

const ADD_GROUP: u64 = 1;
const DROP_GROUP: u64 = 2;
const ADD_NETNS: u64 = 3;
const DROP_NETNS: u64 = 4;

/// A running keeper. Dropping it (or ordeal's death) makes it sweep and exit.
#[derive(Debug)]
pub struct Keeper {
    pid: i32,
    tx: OwnedFd,
}

impl Keeper {
    /// Starts a keeper.
    pub fn start() -> std::io::Result<Keeper> {
        let (cmd_rx, cmd_tx) = pipe()?;
        let (info_rx, info_tx) = pipe()?;
        let rx = cmd_rx.as_raw_fd();
        // SAFETY: the child branches below only make async-signal-safe raw system calls on
        // stack memory, then _exit (the keeper never returns from `keeper_main`).
        let mid = unsafe { libc::fork() };
        if mid < 0 {
            return Err(std::io::Error::last_os_error());
        }
        if mid == 0 {
            // SAFETY: the intermediate child: fork the keeper, report its pid, exit.
            unsafe {
                let k = libc::fork();
                if k == 0 {
                    keeper_main(rx);
                }
                libc::write(
                    info_tx.as_raw_fd(),
                    &k as *const i32 as *const libc::c_void,
                    4,
                );
                libc::_exit(0);
            }
        }
        // The tracer thread starts the keeper, and other threads poke it with a signal whose
        // handler has no SA_RESTART: both waits retry on EINTR.
        retry(|| {
            // SAFETY: reaping our own intermediate child by its pid.
            unsafe { libc::waitpid(mid, std::ptr::null_mut(), 0) as isize }
        });
        drop(info_tx);
        drop(cmd_rx);
        let mut pid = 0i32;
        let n = retry(|| {
            // SAFETY: reading at most 4 bytes into a local i32.
            unsafe {
                libc::read(
                    info_rx.as_raw_fd(),
                    &mut pid as *mut i32 as *mut libc::c_void,
                    4,
                )
            }
        });
        if n != 4 || pid <= 0 {
            return Err(std::io::Error::other("the keeper process could not start"));
        }
        Ok(Keeper { pid, tx: cmd_tx })
    }

    /// The keeper's pid.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Process group `pgid` (> 1) is taken down with ordeal.
    pub fn contain_group(&self, pgid: i32) {
        if pgid > 1 {
            self.send(ADD_GROUP, pgid as u64);
        }
    }

    /// Process group `pgid` is gone: the keeper forgets it (its number may be reused).
    pub fn release_group(&self, pgid: i32) {
        if pgid > 1 {
            self.send(DROP_GROUP, pgid as u64);
        }
    }

    /// Every process in the network namespace with this inode is taken down with ordeal.
    pub fn contain_netns(&self, inode: u64) {
        self.send(ADD_NETNS, inode);
    }

    /// The namespace is gone (or no longer ordeal's).
    pub fn release_netns(&self, inode: u64) {
        self.send(DROP_NETNS, inode);
    }

    fn send(&self, op: u64, value: u64) {
        let mut rec = [0u8; 16];
        rec[..8].copy_from_slice(&op.to_ne_bytes());
        rec[8..].copy_from_slice(&value.to_ne_bytes());
        retry(|| {
            // SAFETY: a 16-byte write from a local buffer to our own pipe; below PIPE_BUF, so
            // atomic with respect to other threads' records.
            unsafe { libc::write(self.tx.as_raw_fd(), rec.as_ptr().cast(), rec.len()) }
        });
    }
}

/// Repeats a system call interrupted by a signal.
fn retry(mut call: impl FnMut() -> isize) -> isize {
    loop {
        let r = call();
        if r >= 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return r;
        }
    }
}

/// The process's keeper, started on first use; `None` where it cannot start (then only the
/// parent-death signals and the tracer's own cleanup remain).
pub fn global() -> Option<&'static Keeper> {
    static KEEPER: OnceLock<Option<Keeper>> = OnceLock::new();
    KEEPER.get_or_init(|| Keeper::start().ok()).as_ref()
}

/// A registration with the process's keeper, released when dropped.
#[derive(Debug)]
#[must_use = "dropping it releases the registration at once"]
pub struct Contained {
    /// The keeper and the record that releases the registration (None: no keeper).
    release: Option<(&'static Keeper, u64, u64)>,
}

impl Drop for Contained {
    fn drop(&mut self) {
        if let Some((k, op, value)) = self.release {
            k.send(op, value);
        }
    }
}

/// Registers process group `pgid` with the process's keeper until the guard is dropped.
pub fn contain_group(pgid: i32) -> Contained {
    let k = global().filter(|_| pgid > 1);
    if let Some(k) = k {
        k.contain_group(pgid);
    }
    Contained {
        release: k.map(|k| (k, DROP_GROUP, pgid as u64)),
    }
}

/// Registers the network namespace `inode` with the process's keeper until the guard is
/// dropped.
pub fn contain_netns(inode: u64) -> Contained {
    let k = global();
    if let Some(k) = k {
        k.contain_netns(inode);
    }
    Contained {
        release: k.map(|k| (k, DROP_NETNS, inode)),
    }
}

fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: pipe2 into a local array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: both fds were just created and are owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// What the keeper holds: fixed arrays on its stack (no allocation after fork).
struct Table {
    groups: [i32; MAX_GROUPS],
    n_groups: usize,
    nets: [u64; MAX_NETNS],
    n_nets: usize,
}

impl Table {
    fn apply(&mut self, op: u64, value: u64) {
        match op {
            ADD_GROUP => add(&mut self.groups, &mut self.n_groups, value as i32),
            DROP_GROUP => remove(&mut self.groups, &mut self.n_groups, value as i32),
            ADD_NETNS => add(&mut self.nets, &mut self.n_nets, value),
            DROP_NETNS => remove(&mut self.nets, &mut self.n_nets, value),
            _ => {}
        }
    }
}

fn add<T: Copy + PartialEq>(items: &mut [T], n: &mut usize, v: T) {
    if items.get(..*n).is_some_and(|s| s.contains(&v)) {
        return;
    }
    if let Some(slot) = items.get_mut(*n) {
        *slot = v;
        *n += 1;
    }
}

fn remove<T: Copy + PartialEq>(items: &mut [T], n: &mut usize, v: T) {
    let Some(i) = items.get(..*n).and_then(|s| s.iter().position(|x| *x == v)) else {
        return;
    };
    if let Some(&last) = items.get(*n - 1) {
        items[i] = last;
    }
    *n -= 1;
}

/// The keeper's whole life: read registrations until end of file, then sweep and exit.
///
/// # Safety
/// Called only in a freshly forked child; never returns.
unsafe fn keeper_main(rx: libc::c_int) -> ! {
    // SAFETY: raw system calls on locals; see the module docs.
    unsafe {
        libc::setpgid(0, 0);
        for sig in [
            libc::SIGINT,
            libc::SIGTERM,
            libc::SIGHUP,
            libc::SIGQUIT,
            libc::SIGPIPE,
            libc::SIGTSTP,
            libc::SIGTTIN,
            libc::SIGTTOU,
            libc::SIGUSR1,
            libc::SIGUSR2,
        ] {
            libc::signal(sig, libc::SIG_IGN);
        }
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
        libc::prctl(libc::PR_SET_NAME, c"ordeal-keeper".as_ptr());
        libc::chdir(c"/".as_ptr());
        // Nothing of ordeal's stays open here but the pipe: a copy of a listening socket, a
        // log or the pipe's own write end would outlive ordeal with the keeper.
        close_all_but(rx);
        let mut table = Table {
            groups: [0; MAX_GROUPS],
            n_groups: 0,
            nets: [0; MAX_NETNS],
            n_nets: 0,
        };
        let mut rec = [0u8; 16];
        let mut have = 0usize;
        while let Some(rest) = rec.get_mut(have..) {
            let n = libc::read(rx, rest.as_mut_ptr().cast(), rest.len());
            if n < 0 && *libc::__errno_location() == libc::EINTR {
                continue;
            }
            if n <= 0 {
                break;
            }
            have += n as usize;
            if have == rec.len() {
                have = 0;
                let mut op = [0u8; 8];
                let mut value = [0u8; 8];
                op.copy_from_slice(&rec[..8]);
                value.copy_from_slice(&rec[8..]);
                table.apply(u64::from_ne_bytes(op), u64::from_ne_bytes(value));
            }
        }
        sweep(&table);
        libc::_exit(0);
    }
}

/// Closes every fd but `keep`.
fn close_all_but(keep: libc::c_int) {
    let keep = keep as libc::c_uint;
    // SAFETY: close_range on our own descriptor table (the forked keeper's).
    let ok = unsafe {
        (keep == 0 || libc::syscall(libc::SYS_close_range, 0u32, keep - 1, 0u32) == 0)
            && libc::syscall(libc::SYS_close_range, keep + 1, u32::MAX, 0u32) == 0
    };
    if !ok {
        // Kernels before 5.9: one close per possible descriptor.
        for fd in 0..65536 {
            if fd != keep as libc::c_int {
                // SAFETY: closing a descriptor of the forked keeper (EBADF when unused).
                unsafe { libc::close(fd) };
            }
        }
    }
}

fn now_ns() -> i64 {
    // SAFETY: clock_gettime into a local.
    unsafe {
        let mut ts: libc::timespec = std::mem::zeroed();
        libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts);
        ts.tv_sec * 1_000_000_000 + ts.tv_nsec
    }
}

/// Kills every registered group and every live process of a registered group or namespace,
/// until a pass finds none alive (or the time limit).
fn sweep(t: &Table) {
    let start = now_ns();
    loop {
        for &g in &t.groups[..t.n_groups] {
            if g > 1 {
                // SAFETY: a signal to a process group ordeal started.
                unsafe { libc::kill(-g, libc::SIGKILL) };
            }
        }
        let alive = scan_and_kill(t);
        if alive == 0 || now_ns() - start > SWEEP_LIMIT_NS {
            return;
        }
        let pause = libc::timespec {
            tv_sec: 0,
            tv_nsec: 5_000_000,
        };
        // SAFETY: nanosleep with a local timespec.
        unsafe { libc::nanosleep(&pause, std::ptr::null_mut()) };
    }
}

/// One pass over /proc: SIGKILLs each live process whose group or network namespace is
/// registered; returns how many it found.
fn scan_and_kill(t: &Table) -> usize {
    // SAFETY: getpid has no preconditions.
    let me = unsafe { libc::getpid() };
    // SAFETY: opening /proc with a static path.
    let dir = unsafe {
        libc::open(
            c"/proc".as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if dir < 0 {
        return 0;
    }
    let mut found = 0;
    let mut buf = [0u8; 8192];
    loop {
        // SAFETY: getdents64 into a local buffer of the given length.
        let n = unsafe {
            libc::syscall(
                libc::SYS_getdents64,
                dir,
                buf.as_mut_ptr(),
                buf.len() as libc::c_uint,
            )
        };
        if n <= 0 {
            break;
        }
        let mut off = 0usize;
        while off + 19 < n as usize {
            let reclen = u16::from_ne_bytes([buf[off + 16], buf[off + 17]]) as usize;
            if reclen == 0 {
                break;
            }
            let name = buf.get(off + 19..off + reclen).unwrap_or(&[]);
            let name = name.split(|&b| b == 0).next().unwrap_or(&[]);
            off += reclen;
            let Some(pid) = parse_pid(name) else {
                continue;
            };
            if pid == me || !is_ours(t, name) {
                continue;
            }
            // SAFETY: a signal to a process found in ordeal's group or namespace.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            found += 1;
        }
    }
    // SAFETY: our own descriptor.
    unsafe { libc::close(dir) };
    found
}

fn parse_pid(name: &[u8]) -> Option<i32> {
    if name.is_empty() || name.len() > 9 {
        return None;
    }
    let mut v: i32 = 0;
    for &c in name {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + (c - b'0') as i32;
    }
    (v > 0).then_some(v)
}

/// Writes `/proc/<pid><tail>\0` into `out`; returns false if it does not fit.
fn proc_path(out: &mut [u8; 64], pid: &[u8], tail: &[u8]) -> bool {
    let parts: [&[u8]; 4] = [b"/proc/", pid, tail, b"\0"];
    let mut at = 0;
    for p in parts {
        let Some(dst) = out.get_mut(at..at + p.len()) else {
            return false;
        };
        dst.copy_from_slice(p);
        at += p.len();
    }
    true
}

/// Whether the process named `pid` in /proc is alive (not a zombie) and in a registered
/// group or namespace.
fn is_ours(t: &Table, pid: &[u8]) -> bool {
    let mut path = [0u8; 64];
    if !proc_path(&mut path, pid, b"/stat") {
        return false;
    }
    let mut stat = [0u8; 1024];
    // SAFETY: open/read/close of a /proc file into a local buffer.
    let n = unsafe {
        let fd = libc::open(path.as_ptr().cast(), libc::O_RDONLY | libc::O_CLOEXEC);
        if fd < 0 {
            return false;
        }
        let n = libc::read(fd, stat.as_mut_ptr().cast(), stat.len());
        libc::close(fd);
        n
    };
    if n <= 0 {
        return false;
    }
    let Some((state, pgrp)) = parse_stat(&stat[..n as usize]) else {
        return false;
    };
    if state == b'Z' || state == b'X' {
        return false;
    }
    if t.groups[..t.n_groups].contains(&pgrp) {
        return true;
    }
    if t.n_nets == 0 || !proc_path(&mut path, pid, b"/ns/net") {
        return false;
    }
    // SAFETY: stat of a /proc path into a local struct.
    let inode = unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        if libc::stat(path.as_ptr().cast(), &mut st) != 0 {
            return false;
        }
        st.st_ino
    };
    t.nets[..t.n_nets].contains(&inode)
}

/// State and process group from /proc/PID/stat: `pid (comm) S ppid pgrp ...` (the command
/// may hold spaces and parentheses: the fields start after the last `)`).
fn parse_stat(s: &[u8]) -> Option<(u8, i32)> {
    let close = s.iter().rposition(|&c| c == b')')?;
    let mut fields = s.get(close + 2..)?.split(|&c| c == b' ');
    let state = *fields.next()?.first()?;
    let _ppid = fields.next()?;
    let pgrp = fields.next()?;
    let mut v: i32 = 0;
    for &c in pgrp {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add((c - b'0') as i32)?;
    }
    Some((state, v))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::CommandExt;
    use std::time::{Duration, Instant};

    #[test]
    fn stat_lines_give_state_and_group() {
        assert_eq!(
            parse_stat(b"42 (sh) S 1 40 40 0 -1 4194560 ..."),
            Some((b'S', 40))
        );
        assert_eq!(
            parse_stat(b"7 (a) b) (c) Z 1 9 9 0"),
            Some((b'Z', 9)),
            "the command may hold `) `"
        );
        assert_eq!(parse_stat(b"7 (x"), None);
        assert_eq!(parse_pid(b"123"), Some(123));
        assert_eq!(parse_pid(b"self"), None);
        assert_eq!(parse_pid(b""), None);
    }

    #[test]
    fn tables_add_once_and_remove_by_swapping() {
        let mut items = [0i32; 3];
        let mut n = 0;
        for v in [5, 6, 5, 7, 8] {
            add(&mut items, &mut n, v);
        }
        assert_eq!(
            &items[..n],
            &[5, 6, 7],
            "a duplicate is kept once, a full table ignores"
        );
        remove(&mut items, &mut n, 5);
        assert_eq!(&items[..n], &[7, 6]);
        remove(&mut items, &mut n, 9);
        assert_eq!(n, 2);
    }

    fn alive(pid: i32) -> bool {
        std::fs::read(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| parse_stat(&s))
            .is_some_and(|(state, _)| state != b'Z' && state != b'X')
    }

    /// A group whose leader has exited (its child reparented away from us) is still taken
    /// down when the keeper's pipe closes; an unregistered group is left alone.
    #[test]
    fn dropping_the_keeper_kills_every_registered_group() {
        let dir = tempfile_dir();
        let spawn = |name: &str| {
            let pidfile = dir.join(name);
            let mut child = std::process::Command::new("sh")
                .arg("-c")
                .arg(format!("sleep 300 & echo $! > {}", pidfile.display()))
                .process_group(0)
                .spawn()
                .unwrap();
            let leader = child.id() as i32;
            child.wait().unwrap();
            let pid: i32 = std::fs::read_to_string(&pidfile)
                .unwrap()
                .trim()
                .parse()
                .unwrap();
            (leader, pid)
        };
        let keeper = Keeper::start().unwrap();
        assert!(alive(keeper.pid()));
        let (kept_group, kept) = spawn("kept");
        let (other_group, other) = spawn("other");
        keeper.contain_group(kept_group);
        keeper.contain_group(other_group);
        keeper.release_group(other_group);
        assert!(alive(kept) && alive(other));
        let keeper_pid = keeper.pid();
        drop(keeper);
        let deadline = Instant::now() + Duration::from_secs(10);
        while alive(kept) || alive(keeper_pid) {
            assert!(
                Instant::now() < deadline,
                "the kept group outlived its keeper"
            );
            std::thread::park_timeout(Duration::from_millis(5));
        }
        assert!(alive(other), "a released group was killed");
        // SAFETY: killing the test's own leftover sleep.
        unsafe { libc::kill(other, libc::SIGKILL) };
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn tempfile_dir() -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("ordeal-keeper-test-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }
}
