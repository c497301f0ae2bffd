//! The foundation of ordeal's eBPF observation engine: a probe that records the system calls,
//! forks and exits of followed processes, filtered in the kernel, through a BPF ring buffer.
//!
//! [`Probe::start`] loads five raw-tracepoint programs (`sys_enter`, `sys_exit`,
//! `sched_process_fork`, `sched_process_exec`, `sched_process_exit`) and their maps; [`Probe::follow`] adds a
//! process; [`Probe::poll`] returns [`Record`]s (looking every [`POLL_TICK`] while it waits:
//! the kernel wakes it only when a quarter of the ring is unread); [`Probe::lost`] counts what the kernel could
//! not record. Dropping the probe detaches and closes everything (nothing is pinned).
//!
//! In the kernel, only tasks whose tgid is in the followed map produce records, and system
//! calls only when their number is in the set given at start ([`ProbeConfig::syscalls`]); a
//! new process of a followed one is followed from its creation (`sched_process_fork` runs in
//! the parent before the child can run), and a process leaves the map when its last thread
//! exits. See the `programs` module for the record layouts.
//!
//! **Loader**: raw bpf(2) calls, with the programs assembled in Rust by a small instruction
//! builder (`asm`) and the offsets of the kernel struct fields they read (`task_struct`, and
//! the walk from it to a descriptor's inode) taken from the kernel's BTF (`btf`). Chosen over
//! aya because aya loads ELF objects that a BPF compiler (clang, or a nightly rustc with
//! bpf-linker) must build: this way there is nothing to install, no compiled object to
//! commit and keep in sync with its source, and no dependency beyond libc. The programs are
//! short (under 150 instructions each) and stay readable in this form.
//!
//! [`Recorder`] turns records into trace events ([`ordeal_events::Event`]): the followed
//! processes' lifecycle (fork/clone, exec, exit) and their socket transfers, with the socket
//! known by the inode the entry program reads behind the call's descriptor (so even when the
//! program closed it, or exited, before the record is read), its addresses from /proc when
//! still there (see the `record` module).
//!
//! Standalone for now: not yet wired into runs. x86_64 only (the `pt_regs` layout and call
//! numbers); needs root (CAP_BPF and CAP_PERFMON).

mod asm;
mod btf;
mod programs;
mod record;
mod ring;
mod sys;

pub use asm::AsmError;
#[doc(hidden)]
pub use programs::{Stage, Wakeup};
pub use record::{ProcResolver, Recorder, SockResolver};

use programs::MapFds;
use std::ffi::CStr;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::Duration;

/// What can go wrong starting or reading a probe.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{what}: {source}")]
    Bpf {
        what: String,
        source: std::io::Error,
    },
    #[error("the kernel's verifier refused program {program} ({source}):\n{log}")]
    Verifier {
        program: String,
        source: std::io::Error,
        log: String,
    },
    #[error("kernel BTF: {0}")]
    Btf(String),
    #[error("invalid probe configuration: {0}")]
    Config(String),
    #[error("assembling a program: {0}")]
    Asm(#[from] AsmError),
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
}

impl Error {
    /// The kernel refused bpf(2) for lack of privilege (not root, or BPF disabled for
    /// unprivileged users): the probe cannot run here at all.
    pub fn is_permission_denied(&self) -> bool {
        matches!(self, Error::Bpf { source, .. }
            if matches!(source.raw_os_error(), Some(libc::EPERM) | Some(libc::EACCES)))
    }
}

/// Ring buffer size when the caller has no better idea: 8 MiB.
pub const DEFAULT_RING_BYTES: usize = 8 << 20;
/// How often [`Probe::poll`] looks at the ring while it waits.
pub const POLL_TICK: Duration = Duration::from_millis(2);
/// Processes followed at once, at most; a fork beyond counts as lost.
pub const MAX_FOLLOWED: u32 = 16384;

/// What a probe records.
#[derive(Debug, Clone, Copy)]
pub struct ProbeConfig<'a> {
    /// x86_64 numbers of the system calls recorded (each below 512).
    pub syscalls: &'a [i64],
    /// Ring buffer data size: a power of two, whole pages.
    pub ring_bytes: usize,
}

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

/// One thing a followed process did. `ktime_ns` is CLOCK_MONOTONIC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Record {
    /// A system call started. When its first argument is a descriptor, `ino` is the inode
    /// number of the file behind it (read in the kernel as the call started, so known even
    /// when the descriptor or the process is gone by the time the record is read) and
    /// `socket` tells whether that file is a socket; `ino` is 0 when the call has no
    /// descriptor or it is not open.
    Enter {
        tid: i32,
        tgid: i32,
        nr: i64,
        args: [u64; 6],
        ino: u64,
        socket: bool,
        ktime_ns: u64,
    },
    /// A system call returned (`ret`: result or `-errno`).
    Exit {
        tid: i32,
        tgid: i32,
        nr: i64,
        ret: i64,
        ktime_ns: u64,
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

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut v = [0u8; 8];
    v.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(v)
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

    /// Decodes one ring-buffer record (layouts in the `programs` module); None for a record
    /// of unknown kind or the wrong size.
    fn decode(b: &[u8]) -> Option<Record> {
        use programs::*;
        if b.len() < 24 {
            return None;
        }
        let (kind, tid, tgid) = (u32_at(b, 0), u32_at(b, 4) as i32, u32_at(b, 8) as i32);
        let ktime_ns = u64_at(b, 16);
        Some(match (kind, b.len()) {
            (KIND_ENTER, ENTER_SIZE) => {
                // The block is pt_regs r10, r9, r8, ax, cx, dx, si, di.
                let reg = |i: usize| u64_at(b, 32 + 8 * i);
                let i_mode = u32_at(b, 104) & 0xffff;
                Record::Enter {
                    tid,
                    tgid,
                    nr: u64_at(b, 24) as i64,
                    args: [reg(7), reg(6), reg(5), reg(0), reg(2), reg(1)],
                    ino: u64_at(b, 96),
                    socket: i_mode & libc::S_IFMT == libc::S_IFSOCK,
                    ktime_ns,
                }
            }
            (KIND_EXIT, EXIT_SIZE) => Record::Exit {
                tid,
                tgid,
                nr: u64_at(b, 24) as i64,
                ret: u64_at(b, 32) as i64,
                ktime_ns,
            },
            (KIND_FORK, FORK_SIZE) => {
                let (child_tid, child_tgid) = (u32_at(b, 24) as i32, u32_at(b, 28) as i32);
                Record::Fork {
                    parent: tgid,
                    parent_tid: tid,
                    child: child_tid,
                    thread: child_tid != child_tgid,
                    ktime_ns,
                }
            }
            (KIND_EXEC, EXEC_SIZE) => Record::Exec {
                pid: tgid,
                old_tid: u32_at(b, 24) as i32,
                ktime_ns,
            },
            (KIND_PROCESS_EXIT, PROCESS_EXIT_SIZE) => Record::ProcessExit {
                pid: tgid,
                ending: Ending::from_status(u32_at(b, 24)),
                ktime_ns,
            },
            _ => return None,
        })
    }
}

/// The raw tracepoints, in attach order.
const TRACEPOINTS: [&CStr; 5] = [
    c"sched_process_fork",
    c"sched_process_exec",
    c"sched_process_exit",
    c"sys_enter",
    c"sys_exit",
];

/// A loaded, attached probe. Fields drop in order: detach first, then programs, then maps.
pub struct Probe {
    _links: Vec<OwnedFd>,
    _programs: Vec<OwnedFd>,
    ring: ring::Ring,
    ring_map: OwnedFd,
    followed: OwnedFd,
    _allowed: OwnedFd,
    lost: OwnedFd,
    /// Records the kernel wrote that this side could not decode (a bug if ever non-zero).
    malformed: u64,
}

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(p).unwrap_or(4096)
}

fn map_io(what: &str) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Bpf {
        what: what.to_string(),
        source,
    }
}

impl Probe {
    /// Creates the maps, loads and attaches the programs. Records nothing until a process is
    /// followed.
    pub fn start(config: ProbeConfig) -> Result<Probe, Error> {
        Probe::start_measuring(config, Stage::Full, Wakeup::PastQuarter)
    }

    /// [`Probe::start`] with programs that stop at `stage` and wake the consumer per
    /// `wakeup`: for measuring what each costs (examples/overhead.rs), nothing else.
    #[doc(hidden)]
    pub fn start_measuring(
        config: ProbeConfig,
        stage: Stage,
        wakeup: Wakeup,
    ) -> Result<Probe, Error> {
        let page = page_size();
        let bytes = config.ring_bytes;
        if !bytes.is_power_of_two() || bytes < page || bytes > (1 << 30) {
            return Err(Error::Config(format!(
                "ring_bytes {bytes} is not a power of two between the page size ({page}) and 1 GiB"
            )));
        }
        if let Some(nr) = config
            .syscalls
            .iter()
            .find(|&&nr| !(0..i64::from(programs::MAX_NR)).contains(&nr))
        {
            return Err(Error::Config(format!(
                "system call number {nr} is outside 0..{}",
                programs::MAX_NR
            )));
        }
        let offsets = btf::KernelOffsets::of_running_kernel()?;
        let task = offsets.task;
        let followed = sys::map_create("ordeal_followed", sys::MAP_HASH, 4, 4, MAX_FOLLOWED)?;
        let allowed = sys::map_create("ordeal_calls", sys::MAP_ARRAY, 4, 4, programs::MAX_NR)?;
        let ring_map = sys::map_create("ordeal_ring", sys::MAP_RINGBUF, 0, 0, bytes as u32)?;
        let lost = sys::map_create("ordeal_lost", sys::MAP_ARRAY, 4, 8, 1)?;
        for &nr in config.syscalls {
            let fd_first = ordeal_events::calls::by_nr(nr)
                .is_some_and(|c| c.arg(ordeal_events::calls::Arg::Fd) == Some(0));
            let value = if fd_first {
                programs::FD_FIRST
            } else {
                programs::RECORDED
            };
            sys::map_update(&allowed, &(nr as u32).to_ne_bytes(), &value.to_ne_bytes())
                .map_err(map_io("filling the allowed calls"))?;
        }
        let fds = MapFds {
            followed: followed.as_raw_fd(),
            allowed: allowed.as_raw_fd(),
            ring: ring_map.as_raw_fd(),
            lost: lost.as_raw_fd(),
        };
        let plan = programs::Plan {
            stage,
            wakeup,
            ring_bytes: bytes,
        };
        let programs = [
            sys::prog_load(
                "ordeal_fork",
                &programs::sched_process_fork(&fds, &plan, &task)?,
            )?,
            sys::prog_load("ordeal_exec", &programs::sched_process_exec(&fds, &plan)?)?,
            sys::prog_load(
                "ordeal_pexit",
                &programs::sched_process_exit(&fds, &plan, &task)?,
            )?,
            sys::prog_load(
                "ordeal_enter",
                &programs::sys_enter(&fds, &plan, &offsets.file)?,
            )?,
            sys::prog_load("ordeal_exit", &programs::sys_exit(&fds, &plan)?)?,
        ];
        let ring = ring::Ring::new(ring_map.as_fd(), bytes, page)?;
        let links = TRACEPOINTS
            .iter()
            .zip(&programs)
            .map(|(tp, prog)| sys::raw_tracepoint_open(tp, prog))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Probe {
            _links: links,
            _programs: programs.into(),
            ring,
            ring_map,
            followed,
            _allowed: allowed,
            lost,
            malformed: 0,
        })
    }

    /// Follows process `pid` (its threads, and from now on the processes it creates).
    pub fn follow(&self, pid: i32) -> Result<(), Error> {
        sys::map_update(
            &self.followed,
            &(pid as u32).to_ne_bytes(),
            &1u32.to_ne_bytes(),
        )
        .map_err(map_io("following a process"))
    }

    /// Stops following process `pid` (not the processes it created).
    pub fn unfollow(&self, pid: i32) -> Result<(), Error> {
        match sys::map_delete(&self.followed, &(pid as u32).to_ne_bytes()) {
            Err(e) if e.raw_os_error() != Some(libc::ENOENT) => {
                Err(map_io("unfollowing a process")(e))
            }
            _ => Ok(()),
        }
    }

    /// The records written so far, in the order the kernel reserved them; when there are
    /// none yet, waits up to `timeout` for some.
    ///
    /// The kernel wakes a waiting consumer only once a quarter of the ring is unread (a
    /// wakeup per record would cost the traced task more than the record itself), so the
    /// wait looks at the ring every [`POLL_TICK`] too: a record waits at most that long.
    pub fn poll(&mut self, timeout: Duration) -> Result<Vec<Record>, Error> {
        let mut out = Vec::new();
        self.drain_into(&mut out);
        let deadline = std::time::Instant::now() + timeout;
        while out.is_empty() {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                break;
            }
            ring::Ring::wait(self.ring_map.as_fd(), left.min(POLL_TICK))?;
            self.drain_into(&mut out);
        }
        Ok(out)
    }

    fn drain_into(&mut self, out: &mut Vec<Record>) {
        let mut malformed = 0;
        self.ring.drain(|b| match Record::decode(b) {
            Some(r) => out.push(r),
            None => malformed += 1,
        });
        self.malformed += malformed;
    }

    /// Records lost: the ring buffer was full, or a new process could not be followed (the
    /// followed map was full), or a record could not be decoded.
    pub fn lost(&self) -> Result<u64, Error> {
        let mut value = [0u8; 8];
        sys::map_lookup(&self.lost, &0u32.to_ne_bytes(), &mut value)
            .map_err(map_io("reading the lost count"))?;
        Ok(u64::from_ne_bytes(value) + self.malformed)
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
        let mut b = record(programs::KIND_ENTER, 11, 10, programs::ENTER_SIZE);
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
                ktime_ns: 99
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
        let mut b = record(programs::KIND_EXIT, 11, 10, programs::EXIT_SIZE);
        b[24..32].copy_from_slice(&1u64.to_le_bytes());
        b[32..40].copy_from_slice(&(-9i64).to_le_bytes());
        assert_eq!(
            Record::decode(&b),
            Some(Record::Exit {
                tid: 11,
                tgid: 10,
                nr: 1,
                ret: -9,
                ktime_ns: 99
            })
        );
        let mut b = record(programs::KIND_FORK, 11, 10, programs::FORK_SIZE);
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
        let mut b = record(
            programs::KIND_PROCESS_EXIT,
            11,
            10,
            programs::PROCESS_EXIT_SIZE,
        );
        b[24..28].copy_from_slice(&(7u32 << 8).to_le_bytes());
        assert_eq!(
            Record::decode(&b),
            Some(Record::ProcessExit {
                pid: 10,
                ending: Ending::Exited(7),
                ktime_ns: 99
            })
        );
        let mut b = record(programs::KIND_EXEC, 10, 10, programs::EXEC_SIZE);
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

    #[test]
    fn refuses_bad_configurations_before_touching_the_kernel() {
        let bad_ring = ProbeConfig {
            syscalls: &[1],
            ring_bytes: 3 << 12,
        };
        assert!(matches!(Probe::start(bad_ring), Err(Error::Config(_))));
        let bad_nr = ProbeConfig {
            syscalls: &[1, 512],
            ring_bytes: DEFAULT_RING_BYTES,
        };
        assert!(matches!(Probe::start(bad_nr), Err(Error::Config(_))));
    }
}
