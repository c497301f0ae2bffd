//! ordeal's system-call tracer (Linux x86_64).
//!
//! A dedicated tracer thread forks every program it is asked to start, seizes it with ptrace
//! (`PTRACE_O_EXITKILL`, following fork/vfork/clone/exec), and installs a seccomp-bpf filter in
//! the child before exec so that only the calls of the call table (`ordeal_events::calls`) stop the tracee. At a
//! seccomp stop the tracer decides, from its per-process fd cache, whether the call concerns a
//! socket or a file under a data root; only then does it ask for the syscall-exit stop (to learn
//! the result). Everything else is resumed at once.
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

mod decode;
mod mem;
mod procfs;
mod record;
pub mod seccomp;
mod snapshot;
mod sockinfo;
mod spawn;

/// CLOCK_MONOTONIC in nanoseconds: the clock of event times (`Config::origin_ns` is on it).
pub use ordeal_sys::clock::monotonic_ns;
pub use record::syscall_name;
pub use snapshot::{Capture, CaptureRequest, ThreadCapture};
pub use spawn::SpawnSpec;

use ordeal_events::{Class, Event, FaultMark, FaultRef, Proto, Sock};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
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
    /// SIGSTOP every process of `node` (the caller of [`Tracer::start_with`] resumes it with
    /// [`Tracer::signal_node`] and SIGCONT). When it is the calling node, it stops right here.
    Pause { by: FaultRef, node: String },
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
    /// Only mark the event (a node-level fault that fired at this call and is applied
    /// elsewhere).
    Mark { by: FaultRef, what: String },
}

/// A thread held by a [`Action::Delay`] or [`Action::Hold`]: resumed with `req` when released.
struct Held {
    tid: i32,
    until: Until,
    req: libc::c_uint,
    /// Set on release: stops the timer thread that pokes the tracer when `At` is due.
    released: Arc<AtomicBool>,
}

enum Until {
    At(u64),
    Gate(String),
    /// Until the gate opens, or until `at`: then the call fails with `EAGAIN`, as a blocking
    /// send with `SO_SNDTIMEO` does when nothing drains the buffer. `by` marks the event.
    GateOrTimeout {
        gate: String,
        at: u64,
        by: FaultRef,
    },
}

/// Fault injection hook, called on the tracer thread at the calls that are recorded: with the
/// event as known at entry (no `ret` yet), and with the completed event at exit.
pub trait Interceptor: Send {
    fn at_entry(&mut self, ev: &Event) -> Action;
    fn at_exit(&mut self, ev: &Event) -> Action;
    /// Whether threads held on `gate` may go on. Asked on every turn of the tracer loop while
    /// one is held; the owner of the gate wakes the tracer with [`Tracer::wake`] when it opens.
    fn gate_open(&mut self, _gate: &str) -> bool {
        true
    }
}

/// Where events go (a trace.jsonl writer in practice).
pub trait Sink: Send {
    fn event(&mut self, ev: &Event) -> std::io::Result<()>;
    fn flush(&mut self) -> std::io::Result<()>;
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
                let _ = tid_tx.send(unsafe { libc::gettid() });
                if let Some(cpu) = config.cpu {
                    pin_to_cpu(cpu);
                }
                let mut t = Inner::new(config, sink, ntx, counter);
                t.interceptor = interceptor;
                let r = t.run(rx);
                r.map(|()| (t.stats.clone(), t.sink))
            })
            .map_err(Error::Thread)?;
        let tid = tid_rx.recv().map_err(|_| Error::Gone)?;
        Ok(Self {
            events,
            tx,
            tid,
            thread: Some(thread),
            notices: nrx,
        })
    }

    fn poke(&self) {
        // SAFETY: tgkill to our own tracer thread with a signal that has a no-op handler.
        unsafe {
            libc::syscall(
                libc::SYS_tgkill,
                libc::getpid(),
                self.tid,
                WAKE_SIGNAL as libc::c_long,
            )
        };
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
        while !thread.is_finished() {
            self.poke();
            std::thread::park_timeout(Duration::from_millis(5));
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
            // SAFETY: tgkill to the tracer thread, whose wake signal handler is a no-op.
            unsafe {
                libc::syscall(
                    libc::SYS_tgkill,
                    libc::getpid(),
                    self.tid,
                    WAKE_SIGNAL as libc::c_long,
                )
            };
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

fn pin_to_cpu(cpu: usize) {
    // SAFETY: sched_setaffinity on the calling thread with a local cpu set.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

/// What an fd of a traced process refers to, as far as the tracer cares.
#[derive(Debug, Clone)]
enum Fd {
    Sock(SockState),
    /// A file under a data root.
    Data(PathBuf),
    /// Anything else: calls on it are resumed without a syscall-exit stop.
    Ignore,
}

#[derive(Debug, Clone)]
struct SockState {
    ino: u64,
    proto: Proto,
    local: Option<String>,
    remote: Option<String>,
    peer_node: Option<String>,
}

struct Thread {
    tgid: i32,
    label: Rc<str>,
    pending: Option<Pending>,
}

struct Proc {
    fds: HashMap<i32, Fd>,
    /// Opened on first need, to borrow fds for socket inspection.
    pidfd: Option<std::os::fd::OwnedFd>,
    root: bool,
}

#[derive(Debug)]
struct Pending {
    nr: i64,
    args: [u64; 6],
    ev: Event,
}

const PTRACE_EVENT_STOP: i32 = 128;
/// How far (in traced time) the sink may run ahead of what is flushed to disk.
const FLUSH_EVERY_NS: u64 = 200_000_000;

struct Inner<S: Sink> {
    cfg: Config,
    interceptor: Option<Box<dyn Interceptor>>,
    flushed_at: u64,
    counter: Arc<AtomicU64>,
    sink: S,
    notices: Sender<Notice>,
    seq: u64,
    stats: Stats,
    threads: HashMap<i32, Thread>,
    procs: HashMap<i32, Proc>,
    /// Children that stopped before their parent's fork event: held until it arrives so the
    /// fork event precedes everything the child does.
    parked: HashSet<i32>,
    /// Node of a parked child's parent, when known.
    parked_under: HashMap<i32, Rc<str>>,
    /// Thread-group id of tasks not registered yet (parked or expected), read from /proc.
    early_tgid: HashMap<i32, i32>,
    /// Children announced by a fork event whose first stop has not arrived yet.
    expected: HashMap<i32, (i32, Rc<str>)>,
    /// Untraced processes we started and still have to reap.
    untraced: HashMap<i32, Rc<str>>,
    /// Bytes sent / received so far per socket inode.
    streams: HashMap<u64, (u64, u64)>,
    peers: HashMap<u64, u64>,
    listeners: HashMap<u16, String>,
    /// Local address of each connected client socket → its node, to name the peer at accept.
    connectors: HashMap<String, Rc<str>>,
    /// Accepted socket inode → the node at its other end, for the socket's other fds.
    accepted_peer: HashMap<u64, Rc<str>>,
    /// Process groups of started programs, with their node.
    groups: Vec<(i32, Rc<str>)>,
    held: Vec<Held>,
    shutting_down: bool,
    /// `Config::file_data`, opened: the writer and how many bytes it holds.
    file_data: Option<(std::io::BufWriter<std::fs::File>, u64)>,
}

/// Sends `sig` to one process. Refuses anything but a real pid: `kill(0)` and `kill(-1)`
/// would hit ordeal's own process group or every process.
fn kill_pid(pid: i32, sig: i32) {
    if pid > 0 {
        // SAFETY: a signal to a process of ours.
        unsafe { libc::kill(pid, sig) };
    }
}

/// Sends `sig` to the process group `pgid` (one of ours, > 1).
fn kill_group(pgid: i32, sig: i32) {
    if pgid > 1 {
        // SAFETY: a signal to a process group of ours.
        unsafe { libc::kill(-pgid, sig) };
    }
}

fn resume(tid: i32, req: libc::c_uint, sig: i32) {
    // SAFETY: resuming a tracee; ESRCH (it died meanwhile) is fine to ignore.
    unsafe {
        libc::ptrace(
            req,
            tid,
            std::ptr::null_mut::<libc::c_void>(),
            sig as usize as *mut libc::c_void,
        );
    }
}

fn event_msg(tid: i32) -> u64 {
    let mut msg: libc::c_ulong = 0;
    // SAFETY: GETEVENTMSG writes one unsigned long.
    unsafe {
        libc::ptrace(
            libc::PTRACE_GETEVENTMSG,
            tid,
            std::ptr::null_mut::<libc::c_void>(),
            &mut msg as *mut libc::c_ulong as *mut libc::c_void,
        );
    }
    msg as u64
}

fn port_of(addr: &str) -> Option<u16> {
    addr.rsplit_once(':').and_then(|(_, p)| p.parse().ok())
}

impl<S: Sink> Inner<S> {
    fn new(cfg: Config, sink: S, notices: Sender<Notice>, counter: Arc<AtomicU64>) -> Self {
        let mut cfg = cfg;
        cfg.data_roots = cfg
            .data_roots
            .iter()
            .map(|r| r.canonicalize().unwrap_or_else(|_| r.clone()))
            .collect();
        Self {
            cfg,
            interceptor: None,
            flushed_at: 0,
            counter,
            sink,
            notices,
            seq: 0,
            stats: Stats::default(),
            threads: HashMap::new(),
            procs: HashMap::new(),
            parked: HashSet::new(),
            parked_under: HashMap::new(),
            early_tgid: HashMap::new(),
            expected: HashMap::new(),
            untraced: HashMap::new(),
            streams: HashMap::new(),
            peers: HashMap::new(),
            listeners: HashMap::new(),
            connectors: HashMap::new(),
            accepted_peer: HashMap::new(),
            groups: Vec::new(),
            held: Vec::new(),
            shutting_down: false,
            file_data: None,
        }
    }

    fn now(&self) -> u64 {
        monotonic_ns().saturating_sub(self.cfg.origin_ns)
    }

    fn run(&mut self, rx: Receiver<Cmd>) -> Result<(), Error> {
        if let Some(p) = &self.cfg.file_data {
            let f = std::fs::File::create(p).map_err(Error::Sink)?;
            self.file_data = Some((std::io::BufWriter::with_capacity(1 << 20, f), 0));
        }
        loop {
            while let Ok(cmd) = rx.try_recv() {
                self.command(cmd)?;
            }
            if !self.held.is_empty() {
                self.release_held();
            }
            let idle = self.threads.is_empty()
                && self.untraced.is_empty()
                && self.parked.is_empty()
                && self.expected.is_empty();
            if idle && self.shutting_down {
                break;
            }
            if idle {
                match rx.recv() {
                    Ok(cmd) => self.command(cmd)?,
                    Err(_) => self.shutting_down = true,
                }
                continue;
            }
            let mut status = 0;
            // SAFETY: waitpid into a local status word.
            let tid = unsafe { libc::waitpid(-1, &mut status, libc::__WALL | libc::__WNOTHREAD) };
            if tid < 0 {
                match std::io::Error::last_os_error().raw_os_error() {
                    Some(libc::EINTR) => continue,
                    _ => {
                        // ECHILD: everything we knew of is gone without a report.
                        self.threads.clear();
                        self.procs.clear();
                        self.untraced.clear();
                        continue;
                    }
                }
            }
            self.stats.stops += 1;
            self.on_status(tid, status)?;
        }
        if let Some((w, _)) = &mut self.file_data {
            std::io::Write::flush(w).map_err(Error::Sink)?;
        }
        self.sink.flush().map_err(Error::Sink)
    }

    fn command(&mut self, cmd: Cmd) -> Result<(), Error> {
        match cmd {
            Cmd::Spawn(spec, reply) => {
                let r = self.spawn(spec);
                let _ = reply.send(r);
            }
            Cmd::Signal {
                node,
                signal,
                marker,
                done,
            } => {
                if let Some(m) = marker {
                    // Not tied to any call (a time trigger, a resume): a lifecycle event of
                    // its own marks where in the trace it happened.
                    let mut ev = self.node_event(&node, "fault");
                    ev.fault = Some(m);
                    self.emit(ev)?;
                }
                self.signal_node(&node, signal);
                let _ = done.send(());
            }
            Cmd::Wake(done) => {
                let _ = done.send(());
            }
            Cmd::Mark {
                node,
                call,
                pos,
                data,
                done,
            } => {
                let mut ev = self.node_event(&node, &call);
                ev.pos = pos;
                ev.data = data;
                let seq = self.seq;
                self.emit(ev)?;
                let _ = done.send(seq);
            }
            Cmd::Capture(req, reply) => {
                let r = self.capture(req);
                let _ = reply.send(r);
            }
            Cmd::Shutdown => {
                // A call still held by a fault (a delay, a partition) never completes now:
                // record it as it stands, so the firing is not lost with it.
                for h in std::mem::take(&mut self.held) {
                    h.released.store(true, Ordering::SeqCst);
                    let pending = self.threads.get_mut(&h.tid).and_then(|t| t.pending.take());
                    if let Some(Pending { mut ev, .. }) = pending {
                        ev.dur = self.now().saturating_sub(ev.ts);
                        self.emit(ev)?;
                    }
                }
                self.shutting_down = true;
                self.kill_all();
            }
        }
        Ok(())
    }

    /// A lifecycle event on `node`'s (latest) root process, so it takes its place in that
    /// thread's program order.
    fn node_event(&self, node: &str, call: &str) -> Event {
        let of_node = |(g, l): &&(i32, Rc<str>)| (**l == *node).then_some(*g);
        let root = self
            .groups
            .iter()
            .rev()
            .filter(|(g, _)| self.threads.contains_key(g))
            .find_map(|x| of_node(&x))
            // None left: the last one that was (the marker follows its exit).
            .or_else(|| self.groups.iter().rev().find_map(|x| of_node(&x)))
            .unwrap_or(0);
        let mut ev = self.base_event(root, call, Class::Proc, self.now());
        ev.node = node.to_string();
        ev.pid = root;
        ev.tid = root;
        ev
    }

    fn kill_all(&mut self) {
        for (g, _) in &self.groups {
            kill_group(*g, libc::SIGKILL);
        }
        let parked = self.parked.iter().chain(self.expected.keys());
        for &p in self.procs.keys().chain(self.untraced.keys()).chain(parked) {
            kill_pid(p, libc::SIGKILL);
        }
    }

    fn spawn(&mut self, spec: SpawnSpec) -> Result<i32, Error> {
        if self.shutting_down {
            return Err(Error::Spawn {
                label: spec.label,
                source: std::io::Error::other("the run is shutting down"),
            });
        }
        let label: Rc<str> = Rc::from(spec.label.as_str());
        let traced = spec.traced;
        let argv = spec.argv.clone();
        let marker = spec.marker.clone();
        let err = |source| Error::Spawn {
            label: label.to_string(),
            source,
        };
        let pin = match self.cfg.cpu {
            Some(cpu) if self.cfg.pin_traced && traced => Some(cpu),
            _ => None,
        };
        let prepared =
            spawn::prepare(spec, seccomp::program(&seccomp::traced()), pin).map_err(err)?;
        let ts = self.now();
        let pid = spawn::fork_exec(&prepared).map_err(err)?;
        self.groups.push((pid, label.clone()));
        if traced {
            self.threads.insert(
                pid,
                Thread {
                    tgid: pid,
                    label: label.clone(),
                    pending: None,
                },
            );
            self.procs.insert(
                pid,
                Proc {
                    fds: HashMap::new(),
                    pidfd: None,
                    root: true,
                },
            );
        } else {
            self.untraced.insert(pid, label.clone());
        }
        self.emit(Event {
            ts,
            node: label.to_string(),
            pid,
            tid: pid,
            call: "spawn".into(),
            class: Some(Class::Proc),
            child: Some(pid),
            argv: Some(argv),
            fault: marker,
            ..Default::default()
        })?;
        Ok(pid)
    }

    fn emit(&mut self, mut ev: Event) -> Result<(), Error> {
        ev.seq = self.seq;
        self.seq += 1;
        self.stats.events += 1;
        self.counter.store(self.stats.events, Ordering::Relaxed);
        self.sink.event(&ev).map_err(Error::Sink)?;
        // Flush now and then, so that if ordeal itself is killed the trace on disk is at
        // most this far behind (the event's own timestamp is a free clock reading).
        if ev.ts.saturating_sub(self.flushed_at) >= FLUSH_EVERY_NS {
            self.flushed_at = ev.ts;
            self.sink.flush().map_err(Error::Sink)?;
        }
        Ok(())
    }

    fn base_event(&self, tid: i32, call: &str, class: Class, ts: u64) -> Event {
        let (tgid, label) = match self.threads.get(&tid) {
            Some(t) => (t.tgid, t.label.to_string()),
            None => (tid, "?".to_string()),
        };
        Event {
            ts,
            node: label,
            pid: tgid,
            tid,
            call: call.into(),
            class: Some(class),
            ..Default::default()
        }
    }

    fn on_status(&mut self, tid: i32, status: i32) -> Result<(), Error> {
        if libc::WIFEXITED(status) || libc::WIFSIGNALED(status) {
            let st = if libc::WIFEXITED(status) {
                ExitStatus::Code(libc::WEXITSTATUS(status))
            } else {
                ExitStatus::Signal(libc::WTERMSIG(status))
            };
            return self.on_exit_of(tid, st);
        }
        if !libc::WIFSTOPPED(status) {
            return Ok(());
        }
        let sig = libc::WSTOPSIG(status);
        let event = status >> 16;
        if event == libc::PTRACE_EVENT_EXIT {
            // The thread is dying (PTRACE_O_TRACEEXIT). Finish the call it was in, if any, and
            // always let it go on: SIGKILL cannot end this stop once its process is exiting.
            self.on_exit_stop(tid)?;
            resume(tid, libc::PTRACE_CONT, 0);
            return Ok(());
        }
        if self.shutting_down {
            // Born or stopped after the kill sweep: SIGKILL ends it from any ptrace stop.
            // SAFETY: killing a tracee of ours.
            kill_pid(tid, libc::SIGKILL);
            return Ok(());
        }
        if !self.threads.contains_key(&tid) && !self.adopt(tid) {
            return Ok(()); // parked until its parent's fork event
        }
        match event {
            libc::PTRACE_EVENT_SECCOMP => {
                self.stats.seccomp_stops += 1;
                self.on_entry(tid)?;
            }
            libc::PTRACE_EVENT_FORK | libc::PTRACE_EVENT_VFORK | libc::PTRACE_EVENT_CLONE => {
                self.on_fork(tid, event)?;
                resume(tid, libc::PTRACE_CONT, 0);
            }
            libc::PTRACE_EVENT_EXEC => {
                self.on_exec(tid)?;
                resume(tid, libc::PTRACE_CONT, 0);
            }
            PTRACE_EVENT_STOP => {
                if matches!(
                    sig,
                    libc::SIGSTOP | libc::SIGTSTP | libc::SIGTTIN | libc::SIGTTOU
                ) {
                    // Group-stop: stay stopped until SIGCONT, as without a tracer.
                    resume(tid, libc::PTRACE_LISTEN as libc::c_uint, 0);
                } else if self.threads.get(&tid).is_some_and(|t| t.pending.is_some()) {
                    // Interrupted (a capture) in a traced call that awaits its exit stop.
                    resume(tid, libc::PTRACE_SYSCALL, 0);
                } else {
                    resume(tid, libc::PTRACE_CONT, 0);
                }
            }
            0 if sig == (libc::SIGTRAP | 0x80) => {
                self.stats.exit_stops += 1;
                self.on_syscall_exit(tid)?;
            }
            0 => resume(tid, libc::PTRACE_CONT, sig), // signal-delivery-stop: deliver it
            _ => resume(tid, libc::PTRACE_CONT, 0),
        }
        Ok(())
    }

    /// First sight of a tracee we did not spawn: a new thread or process auto-attached through
    /// a traced fork/clone. Returns false if it must wait for its parent's fork event.
    fn adopt(&mut self, tid: i32) -> bool {
        if let Some((parent_tgid, label)) = self.expected.remove(&tid) {
            self.register(tid, parent_tgid, label);
            return true;
        }
        self.parked.insert(tid);
        // Remember whose child it is while /proc can still tell.
        if let Some((tgid, ppid)) = procfs::tgid_ppid(tid) {
            self.early_tgid.insert(tid, tgid);
            let parent = self.threads.get(&tgid).or_else(|| self.threads.get(&ppid));
            if let Some(l) = parent.map(|t| t.label.clone()) {
                self.parked_under.insert(tid, l);
            }
        }
        false
    }

    fn register(&mut self, tid: i32, parent_tgid: i32, label: Rc<str>) {
        self.early_tgid.remove(&tid);
        let tgid = procfs::tgid_ppid(tid).map(|(t, _)| t).unwrap_or(tid);
        if tgid != parent_tgid && !self.procs.contains_key(&tgid) {
            // A new process: it starts with a copy of its parent's fd table.
            let fds = self
                .procs
                .get(&parent_tgid)
                .map(|p| p.fds.clone())
                .unwrap_or_default();
            self.procs.insert(
                tgid,
                Proc {
                    fds,
                    pidfd: None,
                    root: false,
                },
            );
        }
        self.threads.insert(
            tid,
            Thread {
                tgid,
                label,
                pending: None,
            },
        );
    }

    fn on_fork(&mut self, tid: i32, event: i32) -> Result<(), Error> {
        let child = event_msg(tid) as i32;
        if child <= 0 {
            // The message could not be read (the thread died meanwhile): there is no child
            // id to remember. Never keep a 0 as a pid: kill(0) would hit our own group.
            return Ok(());
        }
        let call = match event {
            libc::PTRACE_EVENT_FORK => "fork",
            libc::PTRACE_EVENT_VFORK => "vfork",
            _ => "clone",
        };
        let ts = self.now();
        let mut ev = self.base_event(tid, call, Class::Proc, ts);
        ev.child = Some(child);
        self.emit(ev)?;
        let (tgid, label) = match self.threads.get(&tid) {
            Some(t) => (t.tgid, t.label.clone()),
            None => return Ok(()),
        };
        if self.parked.remove(&child) {
            self.parked_under.remove(&child);
            self.register(child, tgid, label);
            resume(child, libc::PTRACE_CONT, 0);
        } else if !self.threads.contains_key(&child) {
            if let Some((child_tgid, _)) = procfs::tgid_ppid(child) {
                self.early_tgid.insert(child, child_tgid);
            }
            self.expected.insert(child, (tgid, label));
        }
        Ok(())
    }

    fn on_exec(&mut self, tid: i32) -> Result<(), Error> {
        let former = event_msg(tid) as i32;
        if former != tid {
            // A non-leader thread exec'd: it now carries the leader's tid.
            if let Some(t) = self.threads.remove(&former) {
                self.threads.insert(tid, t);
            }
        }
        let tgid = self.threads.get(&tid).map(|t| t.tgid).unwrap_or(tid);
        if let Some(p) = self.procs.get_mut(&tgid) {
            // close-on-exec fds are gone; the others are re-resolved lazily.
            p.fds.clear();
        }
        let ts = self.now();
        let mut ev = self.base_event(tid, "exec", Class::Proc, ts);
        ev.argv = Some(procfs::cmdline(tid));
        self.emit(ev)
    }

    fn on_exit_of(&mut self, tid: i32, st: ExitStatus) -> Result<(), Error> {
        if let Some(label) = self.untraced.remove(&tid) {
            let _ = self.notices.send(Notice::Exited {
                label: label.to_string(),
                pid: tid,
                status: st,
                root: true,
            });
            let mut ev = self.base_event(tid, "exit", Class::Proc, self.now());
            ev.node = label.to_string();
            return self.emit(exit_fields(ev, st));
        }
        // A thread or process that ended before it was registered (killed at shutdown, say):
        // announced by its parent's fork event but never stopped, or stopped (parked) before
        // that event. Its exit still belongs in the trace, under its own process.
        let unregistered = match self.expected.remove(&tid) {
            Some((_, label)) => Some((self.early_tgid.remove(&tid), Some(label))),
            None if self.parked.remove(&tid) => {
                Some((self.early_tgid.remove(&tid), self.parked_under.remove(&tid)))
            }
            None => None,
        };
        if let Some((tgid, label)) = unregistered {
            let mut ev = exit_fields(self.base_event(tid, "exit", Class::Proc, self.now()), st);
            ev.pid = tgid.unwrap_or(tid);
            if let Some(label) = label {
                ev.node = label.to_string();
            }
            return self.emit(ev);
        }
        if !self.threads.contains_key(&tid) {
            return Ok(());
        }
        let ev = exit_fields(self.base_event(tid, "exit", Class::Proc, self.now()), st);
        self.emit(ev)?;
        let Some(t) = self.threads.remove(&tid) else {
            return Ok(());
        };
        if t.tgid == tid {
            let root = self.procs.remove(&tid).is_some_and(|p| p.root);
            let _ = self.notices.send(Notice::Exited {
                label: t.label.to_string(),
                pid: tid,
                status: st,
                root,
            });
            self.release_orphans(tid, t.label);
        }
        Ok(())
    }

    /// A child parked until its parent's fork event waits forever if the parent was killed
    /// before reporting it. Once a parked child's parent is no process we know (it has been
    /// reparented), adopt it into the node of the process that just died and let it run.
    fn release_orphans(&mut self, dead: i32, label: Rc<str>) {
        let orphans: Vec<i32> = self
            .parked
            .iter()
            .copied()
            .filter(|&c| {
                procfs::tgid_ppid(c).is_some_and(|(tgid, ppid)| {
                    // A new thread's PPid is its process' parent (ordeal, for a node's root
                    // process), not its creator: it is an orphan only if its process is gone.
                    // Taking it for one put a live node's new thread under the dead node.
                    let creator = if tgid != c { tgid } else { ppid };
                    !self.procs.contains_key(&creator)
                })
            })
            .collect();
        for c in orphans {
            self.parked.remove(&c);
            self.parked_under.remove(&c);
            self.register(c, dead, label.clone());
            resume(c, libc::PTRACE_CONT, 0);
        }
    }

    // ---- system calls -------------------------------------------------------------------

    /// Looks up (and caches) what `fd` of process `tgid` is.
    fn fd_kind(&mut self, tgid: i32, fd: i32) -> Fd {
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
        let kind = match procfs::fd_target(tgid, fd) {
            Some(procfs::FdTarget::Socket(ino)) => Fd::Sock(self.resolve_sock(tgid, fd, ino, None)),
            Some(procfs::FdTarget::Path(p)) if self.under_roots(&p) => Fd::Data(p),
            _ => Fd::Ignore,
        };
        if let Some(p) = self.procs.get_mut(&tgid) {
            p.fds.insert(fd, kind.clone());
        }
        kind
    }

    fn set_fd(&mut self, tgid: i32, fd: i32, kind: Fd) {
        if let Some(p) = self.procs.get_mut(&tgid) {
            p.fds.insert(fd, kind);
        }
    }

    fn forget_fd(&mut self, tgid: i32, fd: i32) {
        if let Some(p) = self.procs.get_mut(&tgid) {
            p.fds.remove(&fd);
        }
    }

    fn resolve_sock(&mut self, tgid: i32, fd: i32, ino: u64, hint: Option<Proto>) -> SockState {
        let info = self.procs.get_mut(&tgid).and_then(|p| {
            if p.pidfd.is_none() {
                p.pidfd = sockinfo::pidfd_open(tgid);
            }
            sockinfo::inspect(p.pidfd.as_ref()?, fd)
        });
        let (proto, local, remote) = match info {
            Some(i) if i.ino == ino => (i.proto, i.local, i.remote),
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
    fn connecting_peer(&mut self, s: &SockState) -> Option<String> {
        let client = s.remote.clone()?;
        if let Some(n) = self.connectors.get(&client) {
            return Some(n.to_string());
        }
        let in_flight: Vec<(i32, i32, Rc<str>)> = self
            .threads
            .values()
            .filter_map(|t| {
                let p = t.pending.as_ref()?;
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

    fn owner_of(&self, addr: &str) -> Option<String> {
        let port = port_of(addr)?;
        self.listeners
            .get(&port)
            .or_else(|| self.cfg.port_owners.get(&port))
            .cloned()
    }

    fn under_roots(&self, p: &Path) -> bool {
        self.cfg.data_roots.iter().any(|r| p.starts_with(r))
    }

    fn sock_event(s: &SockState, peers: &HashMap<u64, u64>) -> Sock {
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
    fn path_arg(&self, tid: i32, tgid: i32, dirfd: Option<i64>, addr: u64) -> Option<PathBuf> {
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

    fn on_entry(&mut self, tid: i32) -> Result<(), Error> {
        let Some(regs) = mem::getregs(tid) else {
            resume(tid, libc::PTRACE_CONT, 0);
            return Ok(());
        };
        let nr = regs.orig_rax as i64;
        let args = [regs.rdi, regs.rsi, regs.rdx, regs.r10, regs.r8, regs.r9];
        let tgid = self.threads.get(&tid).map(|t| t.tgid).unwrap_or(tid);
        let ts = self.now();
        let Some(mut ev) = self.decode_entry(tid, tgid, nr, &args, ts) else {
            resume(tid, libc::PTRACE_CONT, 0);
            return Ok(());
        };
        let action = match self.interceptor.as_mut() {
            Some(i) => i.at_entry(&ev),
            None => Action::Proceed,
        };
        match action {
            Action::Fail { by, errno } if errno > 0 => {
                // Skipping a call from its seccomp stop: syscall number -1, and the return
                // register holds what the call appears to return (seccomp(2)).
                let mut regs = regs;
                regs.orig_rax = u64::MAX;
                regs.rax = (-(errno as i64)) as u64;
                if mem::setregs(tid, &regs) {
                    let e = decode::errno_name(-(errno as i64)).unwrap_or_default();
                    ev.fault = Some(by.mark(format!("fail {e}")));
                    let r = self.finish(tid, Pending { nr, args, ev }, -(errno as i64));
                    resume(tid, libc::PTRACE_CONT, 0);
                    return r;
                }
            }
            Action::Delay { by, dur } => {
                ev.fault = Some(by.mark(format!("delay {} before", fmt_dur(dur))));
                if let Some(t) = self.threads.get_mut(&tid) {
                    t.pending = Some(Pending { nr, args, ev });
                }
                self.hold_for(tid, dur, libc::PTRACE_SYSCALL);
                return Ok(());
            }
            Action::Hold { by, gate } => {
                if record::nonblocking_call(nr, &args)
                    || procfs::fd_nonblocking(tgid, args[0] as i32)
                {
                    let mut regs = regs;
                    regs.orig_rax = u64::MAX;
                    regs.rax = (-(libc::EAGAIN as i64)) as u64;
                    if mem::setregs(tid, &regs) {
                        ev.fault = Some(by.mark("EAGAIN"));
                        let r = self.finish(tid, Pending { nr, args, ev }, -(libc::EAGAIN as i64));
                        resume(tid, libc::PTRACE_CONT, 0);
                        return r;
                    }
                } else {
                    ev.fault = Some(by.mark("held"));
                    if let Some(t) = self.threads.get_mut(&tid) {
                        t.pending = Some(Pending { nr, args, ev });
                    }
                    // A send timeout still applies: the program's own way out of a stall.
                    let timeout = self.procs.get_mut(&tgid).and_then(|p| {
                        if p.pidfd.is_none() {
                            p.pidfd = sockinfo::pidfd_open(tgid);
                        }
                        sockinfo::send_timeout(p.pidfd.as_ref()?, args[0] as i32)
                    });
                    let (until, released) = match timeout {
                        Some(t) => (
                            Until::GateOrTimeout {
                                gate,
                                at: self.now() + t.as_nanos() as u64,
                                by,
                            },
                            poke_after(t),
                        ),
                        None => (Until::Gate(gate), Arc::new(AtomicBool::new(false))),
                    };
                    self.held.push(Held {
                        tid,
                        until,
                        req: libc::PTRACE_SYSCALL,
                        released,
                    });
                    return Ok(());
                }
            }
            Action::Discard { by } if record::is_plain_transfer(nr) => {
                let mut regs = regs;
                regs.orig_rax = u64::MAX;
                regs.rax = args[2];
                if mem::setregs(tid, &regs) {
                    ev.fault = Some(by.mark("dropped"));
                    let r = self.finish(tid, Pending { nr, args, ev }, args[2] as i64);
                    resume(tid, libc::PTRACE_CONT, 0);
                    return r;
                }
            }
            Action::Mark { by, what } => ev.fault = Some(by.mark(what)),
            Action::Limit { by, max } if record::is_plain_transfer(nr) && args[2] > max => {
                let mut regs = regs;
                regs.rdx = max;
                if mem::setregs(tid, &regs) {
                    ev.len = Some(max);
                    ev.fault = Some(by.mark(format!("short-io {max}")));
                }
            }
            // Aimed at a node with no process left: not applied, and so not marked.
            Action::Pause { node, .. } | Action::Crash { node, .. } if !self.node_alive(&node) => {}
            Action::Pause { by, node } => {
                ev.fault = Some(by.mark(format!("pause {node} before")));
                self.signal_node(&node, libc::SIGSTOP);
            }
            Action::Crash { by, node } => {
                if node == ev.node {
                    // Skip the call too: nothing of it may happen, whatever the kill's timing.
                    let mut regs = regs;
                    regs.orig_rax = u64::MAX;
                    mem::setregs(tid, &regs);
                    ev.fault = Some(by.mark(format!("crash {node} before")));
                    self.emit(ev)?;
                    self.kill_node(&node);
                    resume(tid, libc::PTRACE_CONT, 0);
                    return Ok(());
                }
                ev.fault = Some(by.mark(format!("crash {node} before")));
                self.kill_node(&node);
            }
            _ => {}
        }
        if let Some(t) = self.threads.get_mut(&tid) {
            t.pending = Some(Pending { nr, args, ev });
        }
        resume(tid, libc::PTRACE_SYSCALL, 0);
        Ok(())
    }

    /// Whether any traced thread of `node` is still alive.
    fn node_alive(&self, node: &str) -> bool {
        self.threads.values().any(|t| &*t.label == node)
    }

    /// SIGKILLs every process of `node`.
    fn kill_node(&mut self, node: &str) {
        self.signal_node(node, libc::SIGKILL);
    }

    /// Signals every process of `node`: its process groups and every traced process labelled
    /// with it (also those that left their group).
    fn signal_node(&mut self, node: &str, signal: i32) {
        let mut tgids: Vec<i32> = self
            .threads
            .values()
            .filter(|t| &*t.label == node)
            .map(|t| t.tgid)
            .collect();
        tgids.sort_unstable();
        tgids.dedup();
        for (g, _) in self.groups.iter().filter(|(_, l)| &**l == node) {
            kill_group(*g, signal);
        }
        for p in tgids {
            kill_pid(p, signal);
        }
    }

    /// A thread stopped on its way out (`PTRACE_EVENT_EXIT`). When another thread's
    /// `exit_group` (or a fatal signal) arrives while this one is inside a call we asked to
    /// see the end of, the kernel skips the syscall-exit stop: the call did run (a send's
    /// bytes reach the peer) but its event would be lost. Its registers are still readable
    /// here, so complete it now.
    fn on_exit_stop(&mut self, tid: i32) -> Result<(), Error> {
        let pending = self.threads.get_mut(&tid).and_then(|t| t.pending.take());
        let Some(Pending { nr, args, ev }) = pending else {
            return Ok(());
        };
        if self.shutting_down {
            return Ok(());
        }
        let Some(ret) = mem::syscall_ret(tid) else {
            return Ok(());
        };
        // -ENOSYS: killed before the call ran. -512..-516: interrupted, would have been
        // restarted (it will not be now). -EINTR: interrupted by the fatal signal itself.
        // None moved anything, and the dying program never sees them.
        if ret == -(libc::ENOSYS as i64)
            || ret == -(libc::EINTR as i64)
            || (-516..=-512).contains(&ret)
        {
            return Ok(());
        }
        self.finish(tid, Pending { nr, args, ev }, ret)
    }

    /// Records a completed call with its result.
    fn finish(&mut self, tid: i32, p: Pending, ret: i64) -> Result<(), Error> {
        let Pending { nr, args, mut ev } = p;
        let tgid = ev.pid;
        ev.dur = self.now().saturating_sub(ev.ts);
        ev.ret = Some(ret);
        ev.errno = decode::errno_name(ret);
        self.complete(tid, tgid, nr, &args, ret, &mut ev);
        let mut delay = None;
        let act = match self.interceptor.as_mut() {
            Some(i) if ev.fault.is_none() => match i.at_exit(&ev) {
                Action::Crash { by, node } => Some((by, node, "crash", libc::SIGKILL)),
                Action::Pause { by, node } => Some((by, node, "pause", libc::SIGSTOP)),
                Action::Delay { by, dur } => {
                    ev.fault = Some(by.mark(format!("delay {} after", fmt_dur(dur))));
                    delay = Some(dur);
                    None
                }
                Action::Mark { by, what } => {
                    ev.fault = Some(by.mark(what));
                    None
                }
                _ => None,
            },
            _ => None,
        }
        .filter(|(_, node, _, _)| self.node_alive(node));
        if let Some((by, node, what, _)) = &act {
            ev.fault = Some(by.mark(format!("{what} {node} after")));
        }
        self.emit(ev)?;
        if let Some((_, node, _, signal)) = act {
            // The calling thread is still in its exit stop: the call completed (its bytes were
            // sent) but, if it is the node hit, the process runs no further instruction.
            self.signal_node(&node, signal);
        }
        if let Some(dur) = delay {
            // Held in its exit stop: the caller resumes it only if it is not held.
            self.hold_for(tid, dur, libc::PTRACE_CONT);
        }
        Ok(())
    }

    fn is_held(&self, tid: i32) -> bool {
        self.held.iter().any(|h| h.tid == tid)
    }

    /// Holds `tid` in its current stop for `dur`; a timer thread pokes the tracer when it is
    /// due (and again until the tracer has released it, so a poke that lands just before
    /// `waitpid` is not lost).
    fn hold_for(&mut self, tid: i32, dur: Duration, req: libc::c_uint) {
        let released = poke_after(dur);
        self.held.push(Held {
            tid,
            until: Until::At(self.now() + dur.as_nanos() as u64),
            req,
            released,
        });
    }

    /// A held send whose `SO_SNDTIMEO` passed: it fails with `EAGAIN` without running.
    fn time_out_held(&mut self, tid: i32, by: &FaultRef) {
        let pending = self.threads.get_mut(&tid).and_then(|t| t.pending.take());
        let Some(mut p) = pending else {
            resume(tid, libc::PTRACE_CONT, 0);
            return;
        };
        let eagain = -(libc::EAGAIN as i64);
        if let Some(mut regs) = mem::getregs(tid) {
            regs.orig_rax = u64::MAX;
            regs.rax = eagain as u64;
            if mem::setregs(tid, &regs) {
                p.ev.fault = Some(by.mark("held, then EAGAIN (SO_SNDTIMEO)"));
                let _ = self.finish(tid, p, eagain);
                resume(tid, libc::PTRACE_CONT, 0);
                return;
            }
        }
        // Registers unreadable (it is dying): let the call run as it would.
        if let Some(t) = self.threads.get_mut(&tid) {
            t.pending = Some(p);
        }
        resume(tid, libc::PTRACE_SYSCALL, 0);
    }

    /// Resumes every held thread whose time has come or whose gate is open.
    fn release_held(&mut self) {
        let now = self.now();
        let mut keep = Vec::new();
        for h in std::mem::take(&mut self.held) {
            let due = match &h.until {
                Until::At(t) => now >= *t,
                Until::Gate(g) => self.interceptor.as_mut().is_none_or(|i| i.gate_open(g)),
                Until::GateOrTimeout { gate, at, by } => {
                    let open = self.interceptor.as_mut().is_none_or(|i| i.gate_open(gate));
                    if !open && now >= *at && self.threads.contains_key(&h.tid) {
                        h.released.store(true, Ordering::SeqCst);
                        self.time_out_held(h.tid, by);
                        continue;
                    }
                    open
                }
            };
            if due || !self.threads.contains_key(&h.tid) {
                h.released.store(true, Ordering::SeqCst);
                resume(h.tid, h.req, 0);
            } else {
                keep.push(h);
            }
        }
        self.held = keep;
    }

    fn on_syscall_exit(&mut self, tid: i32) -> Result<(), Error> {
        let pending = self.threads.get_mut(&tid).and_then(|t| t.pending.take());
        let Some(Pending { nr, args, ev }) = pending else {
            resume(tid, libc::PTRACE_CONT, 0);
            return Ok(());
        };
        let Some(ret) = mem::syscall_ret(tid) else {
            // The thread left the stop before we could read it: it was killed meanwhile (say,
            // another thread called exit_group). Its exit stop completes the call.
            if let Some(t) = self.threads.get_mut(&tid) {
                t.pending = Some(Pending { nr, args, ev });
            }
            return Ok(());
        };
        if (-516..=-512).contains(&ret) {
            // Interrupted and about to be restarted by the kernel: the retry is the real call.
            resume(tid, libc::PTRACE_CONT, 0);
            return Ok(());
        }
        // Reading what `complete` needs happens before the tracee runs on.
        let r = self.finish(tid, Pending { nr, args, ev }, ret);
        if !self.is_held(tid) {
            resume(tid, libc::PTRACE_CONT, 0);
        }
        r
    }
}

/// Starts a timer thread that pokes the tracer thread (the caller) once `dur` has passed, and
/// again every 10 ms until the returned flag is set (so a poke that lands just before
/// `waitpid` is not lost). ESRCH (the tracer is gone) ends it.
fn poke_after(dur: Duration) -> Arc<AtomicBool> {
    let released = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&released);
    // SAFETY: getpid/gettid have no preconditions.
    let (pid, me) = unsafe { (libc::getpid(), libc::gettid()) };
    let _ = std::thread::Builder::new()
        .name("ordeal-delay".into())
        .spawn(move || {
            std::thread::sleep(dur);
            while !flag.load(Ordering::SeqCst) {
                // SAFETY: poking the tracer thread, whose signal handler is a no-op.
                let r = unsafe {
                    libc::syscall(libc::SYS_tgkill, pid, me, WAKE_SIGNAL as libc::c_long)
                };
                if r != 0 {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        });
    released
}

/// A duration as people write it in schedules: `250ms`, `1.5s`.
fn fmt_dur(d: Duration) -> String {
    if d.subsec_millis() == 0 && d.subsec_nanos() == 0 && d.as_secs() > 0 {
        format!("{}s", d.as_secs())
    } else if d.subsec_nanos().is_multiple_of(1_000_000) {
        format!("{}ms", d.as_millis())
    } else {
        format!("{}us", d.as_micros())
    }
}

fn exit_fields(mut ev: Event, st: ExitStatus) -> Event {
    match st {
        ExitStatus::Code(c) => ev.code = Some(c),
        ExitStatus::Signal(s) => ev.signal = Some(decode::signal_name(s)),
    }
    ev
}
