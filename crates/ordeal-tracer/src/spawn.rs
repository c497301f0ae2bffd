//! Starting a program under the tracer: fork, prepare the child, seize it, exec.
//!
//! Everything the child needs is built before fork, because after fork in a multi-threaded
//! process only async-signal-safe calls are allowed: the child only makes raw system calls.

use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

/// What to start.
#[derive(Debug)]
pub struct SpawnSpec {
    /// Node (or workload) this process and all its descendants are attributed to.
    pub label: String,
    /// Absolute path of the program (resolved by the caller, which reports a missing one).
    pub program: PathBuf,
    pub argv: Vec<String>,
    /// The complete environment.
    pub env: Vec<(String, String)>,
    pub cwd: PathBuf,
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
    /// False runs the program without ptrace or seccomp (still supervised).
    pub traced: bool,
    /// A fault marker for the `spawn` event (a restart fault that started this program).
    pub marker: Option<ordeal_events::FaultMark>,
    /// A network namespace to enter before exec (`setns`), kept open by the caller's `Arc`.
    pub netns: Option<std::sync::Arc<OwnedFd>>,
}

pub(crate) struct Prepared {
    program: CString,
    // The pointer arrays below point into these: they must live as long as `Prepared`.
    #[allow(dead_code)]
    argv: Vec<CString>,
    argv_ptrs: Vec<*const libc::c_char>,
    #[allow(dead_code)]
    env: Vec<CString>,
    env_ptrs: Vec<*const libc::c_char>,
    cwd: CString,
    filter: Vec<libc::sock_filter>,
    traced: bool,
    cpu: Option<libc::cpu_set_t>,
    stdout: OwnedFd,
    stderr: OwnedFd,
    netns: Option<std::sync::Arc<OwnedFd>>,
}

fn cstring(s: &[u8], what: &str) -> std::io::Result<CString> {
    CString::new(s).map_err(|_| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{what} contains a NUL byte"),
        )
    })
}

pub(crate) fn prepare(
    spec: SpawnSpec,
    filter: Vec<libc::sock_filter>,
    pin: Option<usize>,
) -> std::io::Result<Prepared> {
    let cpu = pin.map(|c| {
        // SAFETY: a zeroed cpu_set_t is an empty set; CPU_SET writes one bit.
        unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(c, &mut set);
            set
        }
    });
    let program = cstring(spec.program.as_os_str().as_bytes(), "program path")?;
    let argv = spec
        .argv
        .iter()
        .map(|a| cstring(a.as_bytes(), "argument"))
        .collect::<Result<Vec<_>, _>>()?;
    let env = spec
        .env
        .iter()
        .map(|(k, v)| cstring(format!("{k}={v}").as_bytes(), "environment variable"))
        .collect::<Result<Vec<_>, _>>()?;
    let mut argv_ptrs: Vec<_> = argv.iter().map(|c| c.as_ptr()).collect();
    argv_ptrs.push(std::ptr::null());
    let mut env_ptrs: Vec<_> = env.iter().map(|c| c.as_ptr()).collect();
    env_ptrs.push(std::ptr::null());
    Ok(Prepared {
        program,
        argv,
        argv_ptrs,
        env,
        env_ptrs,
        cwd: cstring(spec.cwd.as_os_str().as_bytes(), "working directory")?,
        filter,
        traced: spec.traced,
        cpu,
        stdout: spec.stdout,
        stderr: spec.stderr,
        netns: spec.netns,
    })
}

const PTRACE_OPTIONS: libc::c_int = libc::PTRACE_O_TRACESYSGOOD
    | libc::PTRACE_O_TRACEFORK
    | libc::PTRACE_O_TRACEVFORK
    | libc::PTRACE_O_TRACECLONE
    | libc::PTRACE_O_TRACEEXEC
    | libc::PTRACE_O_TRACESECCOMP
    | libc::PTRACE_O_TRACEEXIT
    | libc::PTRACE_O_EXITKILL;

/// Forks and execs. Must run on the tracer thread: the child's parent-death signal and the
/// ptrace relationship are both tied to the thread that forks and seizes.
/// Returns the child's pid once it is seized and released towards exec.
/// `before_release` runs once the child is seized and before it may go on (the eBPF probe
/// follows it there); an error kills the child.
pub(crate) fn fork_exec(
    p: &Prepared,
    before_release: impl FnOnce(i32) -> std::io::Result<()>,
) -> std::io::Result<i32> {
    // The child waits on this pipe until the tracer has seized it, so the seccomp filter
    // (which needs a tracer present) is only installed once one is.
    let mut gate = [0 as libc::c_int; 2];
    // SAFETY: plain pipe2 into a local array.
    if unsafe { libc::pipe2(gate.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: getpid has no preconditions.
    let parent = unsafe { libc::getpid() };
    let devnull = c"/dev/null";
    let prog = libc::sock_fprog {
        len: p.filter.len() as u16,
        filter: p.filter.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: the child branch only makes async-signal-safe raw system calls on memory that was
    // prepared before the fork, then execs or _exits.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        let e = std::io::Error::last_os_error();
        // SAFETY: closing the two fds of our own pipe, used by nothing else.
        unsafe {
            libc::close(gate[0]);
            libc::close(gate[1]);
        }
        return Err(e);
    }
    if pid == 0 {
        // SAFETY: the forked child: only async-signal-safe raw calls on memory prepared before
        // the fork (see `Prepared`), ending in execve or _exit.
        unsafe {
            libc::setpgid(0, 0);
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            if libc::getppid() != parent {
                libc::_exit(126);
            }
            let mut empty: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut empty);
            libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
            // Rust ignores SIGPIPE; programs expect the default.
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
            let null = libc::open(devnull.as_ptr(), libc::O_RDONLY);
            if null >= 0 {
                libc::dup2(null, 0);
            }
            libc::dup2(p.stdout.as_raw_fd(), 1);
            libc::dup2(p.stderr.as_raw_fd(), 2);
            if libc::chdir(p.cwd.as_ptr()) != 0 {
                libc::_exit(126);
            }
            libc::close(gate[1]);
            if let Some(ns) = &p.netns {
                if libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) != 0 {
                    libc::_exit(124);
                }
            }
            if let Some(set) = &p.cpu {
                libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), set);
            }
            if p.traced {
                // One byte means: seized, go on; EOF means the tracer gave up. Not EOF alone:
                // a child forked at the same moment by another tracer thread of this process
                // holds a copy of our write end until it execs, and it may itself be waiting
                // on a gate whose write end our child holds (two parallel runs deadlocked so).
                let mut b = 0u8;
                loop {
                    let r = libc::read(gate[0], &mut b as *mut u8 as *mut libc::c_void, 1);
                    if r == 1 {
                        break;
                    }
                    if r == 0 || *libc::__errno_location() != libc::EINTR {
                        libc::_exit(126);
                    }
                }
                libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
                if libc::prctl(
                    libc::PR_SET_SECCOMP,
                    libc::SECCOMP_MODE_FILTER,
                    &prog as *const libc::sock_fprog,
                ) != 0
                {
                    libc::_exit(125);
                }
            }
            libc::execve(
                p.program.as_ptr(),
                p.argv_ptrs.as_ptr(),
                p.env_ptrs.as_ptr(),
            );
            libc::_exit(127);
        }
    }
    // SAFETY: the read end is the child's; the parent's copy is ours to close.
    unsafe { libc::close(gate[0]) };
    let seized = if p.traced {
        // SAFETY: PTRACE_SEIZE on our own child.
        let r = unsafe {
            libc::ptrace(
                libc::PTRACE_SEIZE,
                pid,
                std::ptr::null_mut::<libc::c_void>(),
                PTRACE_OPTIONS as usize as *mut libc::c_void,
            )
        };
        if r != 0 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(())
        }
    } else {
        Ok(())
    };
    let seized = seized.and_then(|()| {
        if p.traced {
            before_release(pid)
        } else {
            Ok(())
        }
    });
    if p.traced && seized.is_ok() {
        let b = 1u8;
        // SAFETY: a one-byte write from a local to our own pipe.
        if unsafe { libc::write(gate[1], &b as *const u8 as *const libc::c_void, 1) } != 1 {
            let e = std::io::Error::last_os_error();
            // SAFETY: our own pipe end; `pid` is our child, not yet reaped.
            unsafe {
                libc::close(gate[1]);
                libc::kill(pid, libc::SIGKILL);
            }
            return Err(e);
        }
    }
    // SAFETY: our own pipe end, closed once.
    unsafe { libc::close(gate[1]) };
    if let Err(e) = seized {
        // SAFETY: `pid` is our child, not yet reaped: the signal cannot hit another process.
        unsafe { libc::kill(pid, libc::SIGKILL) };
        return Err(e);
    }
    Ok(pid)
}
