//! The tracer thread's state and its stop loop: waiting for stops, following forks, execs and
//! exits, turning a call's entry and exit stops into one event, applying an [`Interceptor`]'s
//! actions at the stop where they must happen, and writing events in `seq` order.

use std::collections::{HashMap, HashSet};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::Arc;
use std::time::Duration;

use ordeal_events::{Class, Event};

use crate::fds::Fd;
use crate::hold::Held;
use crate::observe::{self, Observer, Observing};
use crate::{
    decode, monotonic_ns, procfs, seccomp, spawn, Cmd, Config, Error, ExitStatus, Interceptor,
    Notice, Sink, SpawnSpec, Stats,
};

pub(crate) struct Thread {
    pub(crate) tgid: i32,
    pub(crate) label: Rc<str>,
    pub(crate) pending: Option<Pending>,
}

pub(crate) struct Proc {
    pub(crate) fds: HashMap<i32, Fd>,
    /// Opened on first need, to borrow fds for socket inspection.
    pub(crate) pidfd: Option<std::os::fd::OwnedFd>,
    pub(crate) root: bool,
}

#[derive(Debug)]
pub(crate) struct Pending {
    pub(crate) nr: i64,
    pub(crate) args: [u64; 6],
    pub(crate) ev: Event,
}

pub(crate) const PTRACE_EVENT_STOP: i32 = 128;

/// How far (in traced time) the sink may run ahead of what is flushed to disk.
pub(crate) const FLUSH_EVERY_NS: u64 = 200_000_000;

pub(crate) struct Inner<S: Sink> {
    pub(crate) cfg: Config,
    pub(crate) interceptor: Option<Box<dyn Interceptor>>,
    pub(crate) flushed_at: u64,
    pub(crate) counter: Arc<AtomicU64>,
    pub(crate) sink: S,
    pub(crate) notices: Sender<Notice>,
    pub(crate) seq: u64,
    pub(crate) stats: Stats,
    pub(crate) threads: HashMap<i32, Thread>,
    pub(crate) procs: HashMap<i32, Proc>,
    /// Children that stopped before their parent's fork event: held until it arrives so the
    /// fork event precedes everything the child does.
    pub(crate) parked: HashSet<i32>,
    /// Node of a parked child's parent, when known.
    pub(crate) parked_under: HashMap<i32, Rc<str>>,
    /// Thread-group id of tasks not registered yet (parked or expected), read from /proc.
    pub(crate) early_tgid: HashMap<i32, i32>,
    /// Children announced by a fork event whose first stop has not arrived yet.
    pub(crate) expected: HashMap<i32, (i32, Rc<str>)>,
    /// Untraced processes we started and still have to reap.
    pub(crate) untraced: HashMap<i32, Rc<str>>,
    /// Bytes sent / received so far per socket inode.
    pub(crate) streams: HashMap<u64, (u64, u64)>,
    pub(crate) peers: HashMap<u64, u64>,
    pub(crate) listeners: HashMap<u16, String>,
    /// Local address of each connected client socket → its node, to name the peer at accept.
    pub(crate) connectors: HashMap<String, Rc<str>>,
    /// Accepted socket inode → the node at its other end, for the socket's other fds.
    pub(crate) accepted_peer: HashMap<u64, Rc<str>>,
    /// Process groups of started programs, with their node.
    pub(crate) groups: Vec<(i32, Rc<str>)>,
    /// The same groups registered with the process's keeper, which SIGKILLs them if ordeal
    /// dies without cleaning up (untraced programs' children have no other guard); released
    /// when the tracer thread ends, everything reaped.
    pub(crate) kept: Vec<ordeal_sys::keeper::Contained>,
    pub(crate) held: Vec<Held>,
    /// What calls across partitions left: queued sends, dropped handshakes (`cut.rs`).
    pub(crate) cuts: crate::cut::Cuts,
    pub(crate) shutting_down: bool,
    /// `Config::file_data`, opened: the writer and how many bytes it holds.
    pub(crate) file_data: Option<(std::io::BufWriter<std::fs::File>, u64)>,
    /// The length of the msync'd range being decoded, cut at the mapped file's end (set at
    /// its entry, before the call's own length argument is filled in).
    pub(crate) mapped_len: Option<u64>,
    /// The calls that stop a traced thread (its seccomp filter).
    pub(crate) stopped: Vec<i64>,
    /// The eBPF probe, when it observes the calls that do not stop.
    pub(crate) observing: Option<Observing>,
    /// Calls the probe saw enter and not yet return.
    pub(crate) started: observe::Started,
    /// While a probe record is decoded: the inode behind the call's first argument and
    /// whether it is a socket, as the kernel saw them when the call started (0: unknown).
    pub(crate) entry_file: Option<(u64, bool)>,
    /// While a probe record's exit is decoded: the file the call returned or worked on.
    pub(crate) exit_file: Option<ordeal_ebpf::FileInfo>,
    /// Sockets as the probe saw them, by inode (for those /proc no longer shows).
    pub(crate) kernel_socks: HashMap<u64, ordeal_ebpf::SockAddrs>,
}

/// Sends `sig` to one process. Refuses anything but a real pid: `kill(0)` and `kill(-1)`
/// would hit ordeal's own process group or every process.
pub(crate) fn kill_pid(pid: i32, sig: i32) {
    if pid > 0 {
        // SAFETY: a signal to a process of ours.
        unsafe { libc::kill(pid, sig) };
    }
}

/// Sends `sig` to the process group `pgid` (one of ours, > 1).
pub(crate) fn kill_group(pgid: i32, sig: i32) {
    if pgid > 1 {
        // SAFETY: a signal to a process group of ours.
        unsafe { libc::kill(-pgid, sig) };
    }
}

pub(crate) fn resume(tid: i32, req: libc::c_uint, sig: i32) {
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

pub(crate) fn event_msg(tid: i32) -> u64 {
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

pub(crate) fn port_of(addr: &str) -> Option<u16> {
    addr.rsplit_once(':').and_then(|(_, p)| p.parse().ok())
}

/// A duration as people write it in schedules: `250ms`, `1.5s`.
pub(crate) fn fmt_dur(d: Duration) -> String {
    if d.subsec_millis() == 0 && d.subsec_nanos() == 0 && d.as_secs() > 0 {
        format!("{}s", d.as_secs())
    } else if d.subsec_nanos().is_multiple_of(1_000_000) {
        format!("{}ms", d.as_millis())
    } else {
        format!("{}us", d.as_micros())
    }
}

pub(crate) fn exit_fields(mut ev: Event, st: ExitStatus) -> Event {
    match st {
        ExitStatus::Code(c) => ev.code = Some(c),
        ExitStatus::Signal(s) => ev.signal = Some(decode::signal_name(s)),
    }
    ev
}

impl<S: Sink> Inner<S> {
    pub(crate) fn new(
        cfg: Config,
        sink: S,
        notices: Sender<Notice>,
        counter: Arc<AtomicU64>,
    ) -> Self {
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
            kept: Vec::new(),
            held: Vec::new(),
            cuts: Default::default(),
            shutting_down: false,
            file_data: None,
            mapped_len: None,
            stopped: Vec::new(),
            observing: None,
            started: Default::default(),
            entry_file: None,
            exit_file: None,
            kernel_socks: HashMap::new(),
        }
    }

    /// Decides which calls stop, and starts the probe when it observes the others. Runs on
    /// the tracer thread (`tid`), once the interceptor is set.
    pub(crate) fn observe(&mut self, tid: i32) -> Result<(), Error> {
        let watch = self.interceptor.as_ref().map(|i| i.watch());
        self.stopped =
            observe::stopped_calls(self.cfg.observer, watch, self.cfg.file_data.is_some());
        if self.cfg.observer == Observer::Ebpf {
            self.observing = Some(Observing::start(
                &self.stopped,
                self.cfg.ring_bytes,
                self.cfg.payload_bytes,
                tid,
            )?);
        }
        Ok(())
    }

    pub(crate) fn now(&self) -> u64 {
        monotonic_ns().saturating_sub(self.cfg.origin_ns)
    }

    /// Hands over the events the eBPF probe recorded so far and tells the sink how far that
    /// is. Under ptrace alone it says nothing: each event is handed over as its call stops,
    /// the record is always caught up, and a quiet system makes no stops to say so.
    fn catch_up(&mut self) -> Result<(), Error> {
        if self.observing.is_none() {
            return Ok(());
        }
        let now = self.now();
        self.drain_probe()?;
        self.sink.caught_up(now);
        Ok(())
    }

    pub(crate) fn run(&mut self, rx: Receiver<Cmd>) -> Result<(), Error> {
        if let Some(p) = &self.cfg.file_data {
            let f = std::fs::File::create(p).map_err(Error::Sink)?;
            self.file_data = Some((std::io::BufWriter::with_capacity(1 << 20, f), 0));
        }
        loop {
            // Before anything learnt from a stop or a command is written (observe.rs).
            self.catch_up()?;
            while let Ok(cmd) = rx.try_recv() {
                self.command(cmd)?;
            }
            // Queues of healed partitions are delivered before the sends held behind them go.
            self.settle_cuts()?;
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
            self.catch_up()?;
            self.on_status(tid, status)?;
        }
        self.drain_probe()?;
        if let Some(obs) = self.observing.as_mut() {
            obs.stop_ticking();
            self.stats.lost = obs.lost();
        }
        if let Some((w, _)) = &mut self.file_data {
            std::io::Write::flush(w).map_err(Error::Sink)?;
        }
        self.sink.flush().map_err(Error::Sink)
    }

    pub(crate) fn command(&mut self, cmd: Cmd) -> Result<(), Error> {
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
                self.cuts.clear();
                self.shutting_down = true;
                self.kill_all();
            }
        }
        Ok(())
    }

    /// A lifecycle event on `node`'s (latest) root process, so it takes its place in that
    /// thread's program order.
    pub(crate) fn node_event(&self, node: &str, call: &str) -> Event {
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

    pub(crate) fn kill_all(&mut self) {
        for (g, _) in &self.groups {
            kill_group(*g, libc::SIGKILL);
        }
        let parked = self.parked.iter().chain(self.expected.keys());
        for &p in self.procs.keys().chain(self.untraced.keys()).chain(parked) {
            kill_pid(p, libc::SIGKILL);
        }
    }

    pub(crate) fn spawn(&mut self, spec: SpawnSpec) -> Result<i32, Error> {
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
        let prepared = spawn::prepare(spec, seccomp::program(&self.stopped), pin).map_err(err)?;
        let ts = self.now();
        let observing = self.observing.as_ref().filter(|_| traced);
        let pid = spawn::fork_exec(&prepared, |pid| match observing {
            Some(obs) => obs.follow(pid).map_err(std::io::Error::other),
            None => Ok(()),
        })
        .map_err(err)?;
        self.groups.push((pid, label.clone()));
        self.kept.push(ordeal_sys::keeper::contain_group(pid));
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
        self.emit_step(Event {
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

    pub(crate) fn emit(&mut self, mut ev: Event) -> Result<(), Error> {
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

    pub(crate) fn base_event(&self, tid: i32, call: &str, class: Class, ts: u64) -> Event {
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

    pub(crate) fn on_status(&mut self, tid: i32, status: i32) -> Result<(), Error> {
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
            // A call that returned just before the kill sweep: it happened, record it.
            if event == 0 && sig == (libc::SIGTRAP | 0x80) {
                let pending = self.threads.get_mut(&tid).and_then(|t| t.pending.take());
                if let (Some(p), Some(ret)) = (pending, crate::mem::syscall_ret(tid)) {
                    if !(-516..=-512).contains(&ret) {
                        self.finish_at_teardown(tid, p, ret)?;
                    }
                }
            }
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
    pub(crate) fn adopt(&mut self, tid: i32) -> bool {
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

    pub(crate) fn register(&mut self, tid: i32, parent_tgid: i32, label: Rc<str>) {
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

    pub(crate) fn on_fork(&mut self, tid: i32, event: i32) -> Result<(), Error> {
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
        self.emit_step(ev)?;
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

    pub(crate) fn on_exec(&mut self, tid: i32) -> Result<(), Error> {
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
        self.emit_step(ev)
    }

    pub(crate) fn on_exit_of(&mut self, tid: i32, st: ExitStatus) -> Result<(), Error> {
        if let Some(label) = self.untraced.remove(&tid) {
            let _ = self.notices.send(Notice::Exited {
                label: label.to_string(),
                pid: tid,
                status: st,
                root: true,
            });
            let mut ev = self.base_event(tid, "exit", Class::Proc, self.now());
            ev.node = label.to_string();
            return self.emit_step(exit_fields(ev, st));
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
            return self.emit_step(ev);
        }
        if !self.threads.contains_key(&tid) {
            return Ok(());
        }
        let ev = exit_fields(self.base_event(tid, "exit", Class::Proc, self.now()), st);
        self.emit_step(ev)?;
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
    pub(crate) fn release_orphans(&mut self, dead: i32, label: Rc<str>) {
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

    /// Whether any traced thread of `node` is still alive.
    pub(crate) fn node_alive(&self, node: &str) -> bool {
        self.threads.values().any(|t| &*t.label == node)
    }

    /// SIGKILLs every process of `node`.
    pub(crate) fn kill_node(&mut self, node: &str) {
        self.signal_node(node, libc::SIGKILL);
    }

    /// Signals every process of `node`: its process groups and every traced process labelled
    /// with it (also those that left their group).
    pub(crate) fn signal_node(&mut self, node: &str, signal: i32) {
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
}
