//! ordeal's system-call tracer (Linux x86_64).
//!
//! A dedicated tracer thread forks every program it is asked to start, seizes it with ptrace
//! (`PTRACE_O_EXITKILL`, following fork/vfork/clone/exec), and installs a seccomp-bpf filter in
//! the child before exec so that only the calls of the call table (`ordeal_events::calls`)
//! stop the tracee. At a seccomp stop the tracer decides, from its per-process fd cache, whether
//! the call concerns a socket or a file under a data root; only then does it ask for the
//! syscall-exit stop (to learn the result). Everything else is resumed at once.
//!
//! Where things are: this file is the API (`Tracer`, `Config`, `Action`, `Interceptor`,
//! `Sink`, `Marker`); `inner` the tracer thread's state and stop loop (forks, execs, exits,
//! spawning); `stops` a call's entry and exit stops and the interceptor's actions; `record`
//! decoding a call into an event from its row of the call table; `fds` the descriptor cache
//! and socket resolution; `hold` threads held by delays and gates; `cut` calls across a
//! partition (queued sends and their delivery at the heal, `sendq` the queue; dropped
//! handshakes); `snapshot` register and stack captures; `spawn` fork+seize+seccomp; `seccomp`
//! the filter.
//!
//! Invariants:
//! - All ptrace requests and the `fork` of traced programs happen on the tracer thread (ptrace
//!   and the parent-death signal are bound to the thread).
//! - The tracer thread waits with `__WNOTHREAD`, so it never reaps children of other threads.
//! - A stop the tracer does not understand is resumed unchanged (signals are re-injected).
//! - Events are written in `seq` order by this thread alone.
//!
//! This crate knows nothing about experiment files or graphs: it turns processes into events.

// libc's SYS_* constants are lower-case names used as match patterns.
#![allow(non_upper_case_globals)]

mod cut;
mod decode;
pub mod engine;
mod fds;
mod hold;
mod inner;
mod mem;
mod observe;
mod procfs;
mod record;
pub mod seccomp;
mod sendq;
mod snapshot;
mod sockinfo;
mod spawn;
mod stops;

pub use engine::{Capabilities, Ebpf, Engine, Launcher, MarkEvents, Ptrace};
pub use observe::{Observer, RING_BYTES};
/// CLOCK_MONOTONIC in nanoseconds: the clock of event times (`Config::origin_ns` is on it).
pub use ordeal_sys::clock::monotonic_ns;
pub use record::syscall_name;
pub use snapshot::{Capture, CaptureRequest, ThreadCapture};
pub use spawn::SpawnSpec;

use inner::Inner;
use ordeal_events::{Event, FaultMark, FaultRef};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Once};
use std::time::Duration;

/// Tracer settings.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// Capture the first N bytes of every socket transfer into `data` (0 = none).
    pub payload_bytes: usize,
    /// File persistence calls are recorded only for paths under these directories.
    pub data_roots: Vec<PathBuf>,
    /// Ports known to belong to a node before anything listens (from the experiment).
    pub port_owners: HashMap<u16, String>,
    /// CLOCK_MONOTONIC ns at which the run started; event times are relative to it.
    pub origin_ns: u64,
    /// Pin the tracer thread to this CPU.
    pub cpu: Option<usize>,
    /// Also pin every traced program (and so its descendants) to `cpu`. A ptrace stop costs
    /// several times less when tracer and tracee share a CPU (docs/bench.md), at the price of
    /// running all traced processes on that one CPU.
    pub pin_traced: bool,
    /// Record the bytes of every successful write to a data-dir file (off by default): they
    /// are appended to this file, and the write's event carries `data_at` (where they start
    /// in it) and `pos` (the file offset written at, also for plain `write`/`writev`, read
    /// from `/proc/PID/fdinfo` at the syscall-exit stop, so O_APPEND is right too).
    ///
    /// A side file rather than the event's `data` field: the bytes stay exact (binary, no
    /// escaping) and trace.jsonl stays small and greppable however much a node writes.
    pub file_data: Option<PathBuf>,
    /// How calls are seen: stopped at (ptrace) or recorded by the eBPF probe.
    pub observer: Observer,
    /// The eBPF probe's ring buffer, bytes (a power of two; 0: [`RING_BYTES`]). A burst larger than
    /// the ring between two drains loses events, counted in [`Stats::lost`].
    pub ring_bytes: usize,
}

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    Code(i32),
    Signal(i32),
}

impl std::fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExitStatus::Code(c) => write!(f, "exit {c}"),
            ExitStatus::Signal(s) => write!(f, "killed by {}", decode::signal_name(*s)),
        }
    }
}

/// Something the supervisor may want to react to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// A process (thread-group leader) ended. `root` is true for a process started by
    /// [`Tracer::spawn`] rather than forked by a traced program.
    Exited {
        label: String,
        pid: i32,
        status: ExitStatus,
        root: bool,
    },
}

/// Counters, returned at shutdown.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    pub events: u64,
    pub stops: u64,
    pub seccomp_stops: u64,
    pub exit_stops: u64,
    /// Records the eBPF probe could not deliver (its ring was full): events missing from the
    /// trace. Always 0 under ptrace.
    pub lost: u64,
}

/// What to do to a traced call, decided by an [`Interceptor`]. `by` names the fault in the
/// event's `fault` mark ([`FaultMark`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Let it run unchanged.
    Proceed,
    /// Skip the call: it returns `-errno` without running (entry only).
    Fail { by: FaultRef, errno: i32 },
    /// Let a plain `read`/`write`/`recvfrom`/`sendto` move at most this many bytes (entry only).
    Limit { by: FaultRef, max: u64 },
    /// SIGKILL every process of `node`. When it is the calling node: at entry the call never
    /// runs, at exit it has completed but the process never sees its result.
    Crash { by: FaultRef, node: String },
    /// Send `signal` to every process of `node`, marking the event `WHAT before` (at entry) or
    /// `WHAT after` (at exit). A pause is SIGSTOP (the caller of [`Tracer::start_with`]
    /// resumes it with [`Tracer::signal_node`] and SIGCONT): when it is the calling node, it
    /// stops right here.
    Signal {
        by: FaultRef,
        node: String,
        signal: i32,
        what: String,
    },
    /// Hold the calling thread for `dur`: at entry before the call runs, at exit before the
    /// thread sees its result. Other threads run on.
    Delay { by: FaultRef, dur: Duration },
    /// Hold the calling thread before the call runs until [`Interceptor::gate_open`] says
    /// `gate` is open (entry only). A non-blocking call (`O_NONBLOCK` fd or `MSG_DONTWAIT`)
    /// fails with `EAGAIN` instead, as it would with a full buffer.
    Hold { by: FaultRef, gate: String },
    /// Skip the call but report it as a full success: a datagram that is lost on the way
    /// (entry only; plain transfers).
    Discard { by: FaultRef },
    /// The call crosses a network partition that drops packets until
    /// [`Interceptor::gate_open`] says `gate` is open (entry only; `cut.rs`):
    /// - a send on a stream socket succeeds at once without running: its bytes are kept in
    ///   order in a queue of the socket's, at most its send buffer (`SO_SNDBUF`), and later
    ///   sends on that socket join the queue until it is delivered. Past the buffer a blocking
    ///   send is held (as [`Action::Hold`], until the queue is delivered) and a non-blocking
    ///   one fails with `EAGAIN`. When the gate opens, before anything else is sent on the
    ///   socket, the tracer writes the queue into it (a `fault` event on the sender's node
    ///   says how many bytes, `delivered N bytes at the heal`): the peer receives them then.
    /// - a datagram is lost (as [`Action::Discard`]).
    /// - a TCP connect runs, but its socket drops what it receives until the gate opens, so
    ///   its handshake hangs as behind a real drop: a blocking connect waits in the kernel (its
    ///   send timeout or the SYN retries end it), a non-blocking one stays `EINPROGRESS` for
    ///   the caller's own timeout. After the gate opens the next SYN retransmission (1 s, 3 s,
    ///   7 s... after the connect) connects it.
    Cut { by: FaultRef, gate: String },
    /// Only mark the event (a node-level fault that fired at this call and is applied
    /// elsewhere).
    Mark { by: FaultRef, what: String },
}

/// Fault injection hook, called on the tracer thread at the calls that are recorded: with the
/// event as known at entry (no `ret` yet), and with the completed event at exit.
pub trait Interceptor: Send {
    /// The calls this interceptor may act on: only those stop the thread when the eBPF probe
    /// observes the rest ([`Observer::Ebpf`]). Under ptrace every call stops anyway.
    fn watch(&self) -> Watch {
        Watch::All
    }
    fn at_entry(&mut self, ev: &Event) -> Action;
    fn at_exit(&mut self, ev: &Event) -> Action;
    /// A call shown to [`Interceptor::at_entry`] that is not recorded after all: its process
    /// died before it returned (another thread exited the process while this one waited at
    /// the call's entry stop, or a fatal signal interrupted it). What counted it may take it
    /// back, so that counts agree with the trace.
    fn withdrawn(&mut self, _ev: &Event) {}
    /// Whether threads held on `gate` may go on (and what [`Action::Cut`] left behind it is
    /// delivered). Asked on every turn of the tracer loop while a thread is held or a cut
    /// left anything; the owner of the gate wakes the tracer with [`Tracer::wake`] when it
    /// opens.
    fn gate_open(&mut self, _gate: &str) -> bool {
        true
    }
}

/// Which calls an [`Interceptor`] needs to see at entry and exit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Watch {
    /// Every call of the table.
    All,
    /// These x86_64 call numbers only (none: the interceptor acts on no call).
    Calls(Vec<i64>),
}

/// Where events go (a trace.jsonl writer in practice).
pub trait Sink: Send {
    fn event(&mut self, ev: &Event) -> std::io::Result<()>;
    fn flush(&mut self) -> std::io::Result<()>;
    /// Every call that returned before `ts` (ns, the trace's clock) has been handed over as
    /// an event. The eBPF engine hands events over when it reads its ring, behind the calls
    /// by as long as the tracer lags (seconds on a loaded machine): a sink that judges the
    /// latest traffic (inferred roles) tells a quiet system from a late record by this.
    fn caught_up(&mut self, _ts: u64) {}
}

impl<W: std::io::Write + Send> Sink for ordeal_events::TraceWriter<W> {
    fn event(&mut self, ev: &Event) -> std::io::Result<()> {
        self.write(ev)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        ordeal_events::TraceWriter::flush(self)
    }
}

impl Sink for Vec<Event> {
    fn event(&mut self, ev: &Event) -> std::io::Result<()> {
        self.push(ev.clone());
        Ok(())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot start the tracer thread: {0}")]
    Thread(std::io::Error),
    #[error("cannot start {label}: {source}")]
    Spawn {
        label: String,
        source: std::io::Error,
    },
    #[error("writing the trace: {0}")]
    Sink(std::io::Error),
    #[error("the tracer thread is gone")]
    Gone,
    #[error("eBPF probe: {0}{hint}", hint = ebpf_hint(.0))]
    Ebpf(#[from] ordeal_ebpf::Error),
}

enum Cmd {
    Spawn(SpawnSpec, Sender<Result<i32, Error>>),
    /// Signal every process of a node, recording a `fault` event named `marker` (if any).
    Signal {
        node: String,
        signal: i32,
        marker: Option<FaultMark>,
        done: Sender<()>,
    },
    /// Nothing but a turn of the loop (held threads are looked at again).
    Wake(Sender<()>),
    /// Record a lifecycle event `call` (class `proc`) on `node`, with `pos` and `data`;
    /// answers its `seq`.
    Mark {
        node: String,
        call: String,
        pos: Option<u64>,
        data: Option<String>,
        done: Sender<u64>,
    },
    /// Registers and stacks of traced threads (see `snapshot.rs`).
    Capture(CaptureRequest, Sender<Result<Capture, Error>>),
    Shutdown,
}

/// Handle to the tracer thread. Dropping it kills every process it started and waits for them.
pub struct Tracer<S: Sink + 'static> {
    events: Arc<AtomicU64>,
    tx: Sender<Cmd>,
    tid: i32,
    thread: Option<std::thread::JoinHandle<Result<(Stats, S), Error>>>,
    notices: Receiver<Notice>,
}

static WAKE_HANDLER: Once = Once::new();
const WAKE_SIGNAL: libc::c_int = libc::SIGUSR2;

extern "C" fn on_wake(_: libc::c_int) {}

fn install_wake_handler() {
    WAKE_HANDLER.call_once(|| {
        // SAFETY: installs a no-op handler without SA_RESTART, so a blocking waitpid on the
        // tracer thread returns EINTR when the thread is poked.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_wake as *const () as usize;
            libc::sigemptyset(&mut sa.sa_mask);
            sa.sa_flags = 0;
            libc::sigaction(WAKE_SIGNAL, &sa, std::ptr::null_mut());
        }
    });
}

impl<S: Sink + 'static> Tracer<S> {
    /// Starts the tracer thread.
    pub fn start(config: Config, sink: S) -> Result<Self, Error> {
        Self::start_with(config, sink, None)
    }

    /// Starts the tracer thread with a fault-injection hook.
    pub fn start_with(
        config: Config,
        sink: S,
        interceptor: Option<Box<dyn Interceptor>>,
    ) -> Result<Self, Error> {
        install_wake_handler();
        let (tx, rx) = mpsc::channel();
        let (ntx, nrx) = mpsc::channel();
        let (tid_tx, tid_rx) = mpsc::channel();
        let events = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&events);
        let thread = std::thread::Builder::new()
            .name("ordeal-tracer".into())
            .spawn(move || {
                // SAFETY: gettid has no preconditions.
                let tid = unsafe { libc::gettid() };
                if let Some(cpu) = config.cpu {
                    pin_to_cpu(cpu);
                }
                let mut t = Inner::new(config, sink, ntx, counter);
                t.interceptor = interceptor;
                match t.observe(tid) {
                    Ok(()) => {
                        let _ = tid_tx.send(Ok(tid));
                    }
                    Err(e) => {
                        let _ = tid_tx.send(Err(e));
                        return Err(Error::Gone);
                    }
                }
                let r = t.run(rx);
                r.map(|()| (t.stats.clone(), t.sink))
            })
            .map_err(Error::Thread)?;
        let tid = match tid_rx.recv() {
            Ok(Ok(tid)) => tid,
            Ok(Err(e)) => {
                let _ = thread.join();
                return Err(e);
            }
            Err(_) => return Err(Error::Gone),
        };
        Ok(Self {
            events,
            tx,
            tid,
            thread: Some(thread),
            notices: nrx,
        })
    }

    fn poke(&self) {
        poke_thread(self.tid);
    }

    /// Starts a program under the tracer; returns its pid once it is on its way to exec.
    pub fn spawn(&self, spec: SpawnSpec) -> Result<i32, Error> {
        self.request(|reply| Cmd::Spawn(spec, reply))?
    }

    /// Sends a command and waits for its answer. The tracer may be blocked in waitpid: poke
    /// it until it answers. Re-poking closes the window where the signal lands just before it
    /// enters waitpid.
    fn request<T>(&self, cmd: impl FnOnce(Sender<T>) -> Cmd) -> Result<T, Error> {
        let (tx, rx) = mpsc::channel();
        self.tx.send(cmd(tx)).map_err(|_| Error::Gone)?;
        loop {
            self.poke();
            match rx.recv_timeout(Duration::from_millis(20)) {
                Ok(r) => return Ok(r),
                Err(mpsc::RecvTimeoutError::Timeout) => continue,
                Err(mpsc::RecvTimeoutError::Disconnected) => return Err(Error::Gone),
            }
        }
    }

    /// Sends `signal` to every process of `node` (its process groups and every traced
    /// process labelled with it). With a `marker`, a `fault` event records it in the trace.
    pub fn signal_node(
        &self,
        node: &str,
        signal: i32,
        marker: Option<FaultMark>,
    ) -> Result<(), Error> {
        self.request(|done| Cmd::Signal {
            node: node.to_string(),
            signal,
            marker,
            done,
        })
    }

    /// Makes the tracer look at its held threads again (after a gate opened); returns once
    /// the tracer has the request (released threads go on in the same turn of its loop).
    pub fn wake(&self) -> Result<(), Error> {
        self.request(Cmd::Wake)
    }

    /// A handle other threads can use to record marker events (see [`Marker::mark`]).
    pub fn marker(&self) -> Marker {
        Marker {
            tx: self.tx.clone(),
            tid: self.tid,
        }
    }

    /// Every traced thread (of one node, or all) with what the tracer knows of it, and with
    /// `req.registers` its registers and a copy of its stack, each thread stopped only
    /// briefly (see the `snapshot` module).
    pub fn capture(&self, req: CaptureRequest) -> Result<Capture, Error> {
        self.request(|reply| Cmd::Capture(req, reply))?
    }

    /// Events written so far (for progress reports).
    pub fn events_so_far(&self) -> u64 {
        self.events.load(Ordering::Relaxed)
    }

    /// Process exits and other notices, in the order they happened.
    pub fn notices(&self) -> &Receiver<Notice> {
        &self.notices
    }

    /// Kills every process still alive (process groups and every traced process), waits until
    /// all are reaped, flushes the sink and returns it with the counters.
    pub fn shutdown(mut self) -> Result<(Stats, S), Error> {
        self.stop_thread()
    }

    fn stop_thread(&mut self) -> Result<(Stats, S), Error> {
        let Some(thread) = self.thread.take() else {
            return Err(Error::Gone);
        };
        let _ = self.tx.send(Cmd::Shutdown);
        // Waits growing from 100 µs to 5 ms: a tracer with little left to kill is done in
        // well under a millisecond (a crash search shuts one down per state).
        let mut wait = Duration::from_micros(100);
        while !thread.is_finished() {
            self.poke();
            std::thread::park_timeout(wait);
            wait = (wait * 2).min(Duration::from_millis(5));
        }
        thread.join().map_err(|_| Error::Gone)?
    }
}

/// Records marker events from any thread: a lifecycle event written by the tracer thread in
/// its place in `seq` order (the tracer thread stays the only writer of events).
#[derive(Clone)]
pub struct Marker {
    tx: Sender<Cmd>,
    tid: i32,
}

impl Marker {
    /// Records an event `call` (class `proc`, e.g. `checkpoint`) on `node`'s latest root
    /// process, with `pos` and `data` set; returns its `seq` once it is written. Fails when
    /// the tracer is gone.
    pub fn mark(
        &self,
        node: &str,
        call: &str,
        pos: Option<u64>,
        data: Option<String>,
    ) -> Result<u64, Error> {
        let (tx, rx) = mpsc::channel();
        self.tx
            .send(Cmd::Mark {
                node: node.to_string(),
                call: call.to_string(),
                pos,
                data,
                done: tx,
            })
            .map_err(|_| Error::Gone)?;
        loop {
            poke_thread(self.tid);
            match rx.recv_timeout(Duration::from_millis(20)) {
                Ok(seq) => return Ok(seq),
                Err(mpsc::RecvTimeoutError::Timeout) => continue,
                Err(mpsc::RecvTimeoutError::Disconnected) => return Err(Error::Gone),
            }
        }
    }
}

impl<S: Sink + 'static> Drop for Tracer<S> {
    fn drop(&mut self) {
        if self.thread.is_some() {
            let _ = self.stop_thread();
        }
    }
}

/// What to do about a probe that cannot load for lack of privilege.
fn ebpf_hint(e: &ordeal_ebpf::Error) -> &'static str {
    if e.is_permission_denied() {
        " (the eBPF engine needs root, or CAP_BPF and CAP_PERFMON; --engine ptrace needs neither)"
    } else {
        ""
    }
}

/// Interrupts the tracer thread `tid` (a blocking `waitpid` returns EINTR).
pub(crate) fn poke_thread(tid: i32) {
    // SAFETY: tgkill to a tracer thread of this process with a signal whose handler is a no-op.
    unsafe {
        libc::syscall(
            libc::SYS_tgkill,
            libc::getpid(),
            tid,
            WAKE_SIGNAL as libc::c_long,
        )
    };
}

fn pin_to_cpu(cpu: usize) {
    // SAFETY: sched_setaffinity on the calling thread with a local cpu set.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}
