//! ordeal's eBPF probe that records the system calls,
//! forks and exits of followed processes, filtered in the kernel, through a BPF ring buffer,
//! with what decoding a call needs copied in the kernel as it happens.
//!
//! [`Probe::start`] loads five raw-tracepoint programs (`sys_enter`, `sys_exit`,
//! `sched_process_fork`, `sched_process_exec`, `sched_process_exit`) and their maps;
//! [`Probe::follow`] adds a process; [`Probe::poll`] returns [`Record`]s (looking every
//! [`POLL_TICK`] while it waits: the kernel wakes it only when a quarter of the ring is
//! unread); [`Probe::lost`] counts what the kernel could not record. Dropping the probe
//! detaches and closes everything (nothing is pinned).
//!
//! In the kernel, only tasks whose tgid is in the followed map produce records, and system
//! calls only when their number is in the set given at start ([`ProbeConfig::syscalls`]); a
//! new process of a followed one is followed from its creation (`sched_process_fork` runs in
//! the parent before the child can run), and a process leaves the map when its last thread
//! exits. See the `programs` module for the record layouts.
//!
//! **Copies.** Records are read about [`POLL_TICK`] later, when the tracee's memory may have
//! changed and its descriptors, or the process, may be gone: what decoding a call needs is
//! copied as the call enters or returns. Per call, from its row of the call table
//! (`ordeal_events::calls::CALLS`, never a list of numbers; the `callplan` module):
//! [`Record::Enter`] carries the inode behind a descriptor first argument, the socket's
//! family, type and addresses for socket lifecycle calls ([`SockAddrs`]), and copies of the
//! inputs ([`Blob`]s: the socket address given, paths, iovec arrays, msghdrs, a send's first
//! [`ProbeConfig::payload_bytes`]); [`Record::Exit`] carries the file a call returned or
//! worked on ([`FileInfo`]) and copies of the outputs (accept's and recvfrom's peer address,
//! socketpair's descriptors, a receive's msghdr and first payload bytes). The arguments at
//! exit come from the `pt_regs` the `sys_exit` tracepoint gets (x86_64 keeps the argument
//! registers there until the return to user space), not from a per-thread map. A call with
//! nothing to copy (a transfer without payload capture, a call outside the table) takes the
//! short path, as cheap as before copies existed; the others write into a per-CPU scratch
//! buffer, then hand the used part to the ring (`bpf_ringbuf_output`; cheaper than a
//! reservation of the largest size a record can have: docs/bench.md). A copy of the
//! tracee's memory that fails (a bad pointer) is absent, never garbage; one that fails
//! because its page is not mapped in yet (the programs cannot fault: a string literal never
//! touched before) is taken again at exit, into the exit record.
//!
//! **Loader**: raw bpf(2) calls, with the programs assembled in Rust by a small instruction
//! builder (`asm`) and the offsets of the kernel struct fields they read (`task_struct`, the
//! walk from it to a descriptor's inode, from a socket's file to its addresses) taken from
//! the kernel's BTF (`btf`). Chosen over aya because aya loads ELF objects that a BPF
//! compiler (clang, or a nightly rustc with bpf-linker) must build: this way there is nothing
//! to install, no compiled object to commit and keep in sync with its source, and no
//! dependency beyond libc. The short paths are under 150 instructions; the system-call
//! programs with their copying paths 750-1100, built from a few readable pieces
//! (`capture`, `walk`).
//!
//! The tracer's eBPF observer (`ordeal_tracer`, `observe.rs`) drains the probe and decodes its
//! records into trace events. x86_64 only (the `pt_regs` layout and call numbers); needs root
//! (CAP_BPF and CAP_PERFMON).

mod asm;
mod btf;
mod callplan;
mod capture;
mod decode;
mod programs;
mod ring;
mod sys;
mod syscalls;
mod walk;

pub use asm::AsmError;
pub use callplan::PAYLOAD_MAX;
pub use decode::{Blob, Ending, FileInfo, Record, SockAddrs};
#[doc(hidden)]
pub use programs::{Copies, Stage, Wakeup};

use callplan::CallPlan;
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
    /// Copy the first N bytes of every transfer on a socket (sends at entry, receives at
    /// exit) into the records (0: none; at most [`PAYLOAD_MAX`]).
    pub payload_bytes: usize,
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
    _scratch: Option<OwnedFd>,
    _retry: Option<OwnedFd>,
    lost: OwnedFd,
    /// Records the kernel wrote that this side could not decode (a bug if ever non-zero).
    malformed: u64,
}

/// Whether some call's records have copies (then [`Copies::Scratch`] needs its buffer).
fn cp_any_copies(flags: u32) -> bool {
    use callplan::*;
    flags & (ENTER_CAPTURE | ENTER_IF_ADDR | EXIT_CAPTURE | EXIT_IF_ADDR) != 0
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
        Probe::start_measuring(config, Stage::Full, Wakeup::PastQuarter, Copies::default())
    }

    /// [`Probe::start`] with programs that stop at `stage`, wake the consumer per `wakeup`
    /// and write records with copies per `copies`: for measuring what each costs
    /// (examples/overhead.rs), nothing else.
    #[doc(hidden)]
    pub fn start_measuring(
        config: ProbeConfig,
        stage: Stage,
        wakeup: Wakeup,
        copies: Copies,
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
        if config.payload_bytes > PAYLOAD_MAX {
            return Err(Error::Config(format!(
                "payload_bytes {} is above {PAYLOAD_MAX}",
                config.payload_bytes
            )));
        }
        let offsets = btf::KernelOffsets::of_running_kernel()?;
        let task = offsets.task;
        let calls: Vec<(i64, CallPlan)> = config
            .syscalls
            .iter()
            .map(|&nr| (nr, CallPlan::of(nr, config.payload_bytes)))
            .collect();
        let plan = programs::Plan {
            stage,
            wakeup,
            copies,
            ring_bytes: bytes,
            payload_bytes: config.payload_bytes,
            enter_copies: calls
                .iter()
                .map(|(_, c)| c.enter_copies())
                .max()
                .unwrap_or(0),
            exit_copies: calls
                .iter()
                .map(|(_, c)| c.exit_copies())
                .max()
                .unwrap_or(0),
            flags: calls.iter().fold(0, |all, (_, c)| all | c.flags),
        };
        let followed = sys::map_create("ordeal_followed", sys::MAP_HASH, 4, 4, MAX_FOLLOWED)?;
        let allowed = sys::map_create(
            "ordeal_calls",
            sys::MAP_ARRAY,
            4,
            callplan::VALUE_SIZE,
            programs::MAX_NR,
        )?;
        let ring_map = sys::map_create("ordeal_ring", sys::MAP_RINGBUF, 0, 0, bytes as u32)?;
        let lost = sys::map_create("ordeal_lost", sys::MAP_ARRAY, 4, 8, programs::COUNTERS)?;
        let any_copies = cp_any_copies(plan.flags);
        let scratch = match copies {
            Copies::Scratch if any_copies => Some(sys::map_create(
                "ordeal_scratch",
                sys::MAP_PERCPU_ARRAY,
                4,
                plan.scratch_bytes(),
                1,
            )?),
            _ => None,
        };
        let retry = if plan.flags & callplan::ENTER_RETRY != 0 {
            Some(sys::map_create(
                "ordeal_retry",
                sys::MAP_LRU_HASH,
                4,
                4,
                MAX_FOLLOWED,
            )?)
        } else {
            None
        };
        for (nr, call) in &calls {
            sys::map_update(&allowed, &(*nr as u32).to_ne_bytes(), &call.value())
                .map_err(map_io("filling the allowed calls"))?;
        }
        let fds = MapFds {
            followed: followed.as_raw_fd(),
            allowed: allowed.as_raw_fd(),
            ring: ring_map.as_raw_fd(),
            lost: lost.as_raw_fd(),
            scratch: scratch.as_ref().map_or(-1, |m| m.as_raw_fd()),
            retry: retry.as_ref().map_or(-1, |m| m.as_raw_fd()),
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
            sys::prog_load("ordeal_enter", &syscalls::sys_enter(&fds, &plan, &offsets)?)?,
            sys::prog_load("ordeal_exit", &syscalls::sys_exit(&fds, &plan, &offsets)?)?,
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
            _scratch: scratch,
            _retry: retry,
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

    /// Hands every record written so far to `each`, in the order the kernel reserved them,
    /// without waiting and without collecting them first.
    pub fn drain(&mut self, mut each: impl FnMut(Record)) {
        let mut malformed = 0;
        self.ring.drain(|b| match Record::decode(b) {
            Some(r) => each(r),
            None => malformed += 1,
        });
        self.malformed += malformed;
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
        sys::map_lookup(&self.lost, &programs::LOST.to_ne_bytes(), &mut value)
            .map_err(map_io("reading the lost count"))?;
        Ok(u64::from_ne_bytes(value) + self.malformed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_bad_configurations_before_touching_the_kernel() {
        let bad_ring = ProbeConfig {
            syscalls: &[1],
            ring_bytes: 3 << 12,
            payload_bytes: 0,
        };
        assert!(matches!(Probe::start(bad_ring), Err(Error::Config(_))));
        let bad_nr = ProbeConfig {
            syscalls: &[1, 512],
            ring_bytes: DEFAULT_RING_BYTES,
            payload_bytes: 0,
        };
        assert!(matches!(Probe::start(bad_nr), Err(Error::Config(_))));
        let bad_payload = ProbeConfig {
            syscalls: &[1],
            ring_bytes: DEFAULT_RING_BYTES,
            payload_bytes: PAYLOAD_MAX + 1,
        };
        assert!(matches!(Probe::start(bad_payload), Err(Error::Config(_))));
    }
}
