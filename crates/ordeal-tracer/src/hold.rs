//! Threads held by a fault (a delay, a partition's gate): kept in their stop and resumed when
//! their time comes, their gate opens (and their socket's queued bytes are delivered), or
//! their send timeout passes.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ordeal_events::FaultRef;

use crate::inner::{resume, Inner, Pending};
use crate::{mem, sockinfo, Sink, WAKE_SIGNAL};

/// A thread held by a [`Action::Delay`] or [`Action::Hold`]: resumed with `req` when released.
pub(crate) struct Held {
    pub(crate) tid: i32,
    pub(crate) until: Until,
    pub(crate) req: libc::c_uint,
    /// Set on release: stops the timer thread that pokes the tracer when `At` is due.
    pub(crate) released: Arc<AtomicBool>,
}

pub(crate) enum Until {
    At(u64),
    /// Until `gate` opens and, with `queue`, the queue of that socket (by inode, `cut.rs`)
    /// is delivered: a send never overtakes the bytes queued before it. With `timeout`, at
    /// most until then: the call fails with `EAGAIN`, as a blocking send with `SO_SNDTIMEO`
    /// does when nothing drains the buffer; `by` marks the event.
    Gate {
        gate: String,
        queue: Option<u64>,
        timeout: Option<(u64, FaultRef)>,
    },
}

/// Starts a timer thread that pokes the tracer thread (the caller) once `dur` has passed, and
/// again every 10 ms until the returned flag is set (so a poke that lands just before
/// `waitpid` is not lost). ESRCH (the tracer is gone) ends it.
pub(crate) fn poke_after(dur: Duration) -> Arc<AtomicBool> {
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

impl<S: Sink> Inner<S> {
    pub(crate) fn is_held(&self, tid: i32) -> bool {
        self.held.iter().any(|h| h.tid == tid)
    }

    /// Holds `tid` in its current stop for `dur`; a timer thread pokes the tracer when it is
    /// due (and again until the tracer has released it, so a poke that lands just before
    /// `waitpid` is not lost).
    pub(crate) fn hold_for(&mut self, tid: i32, dur: Duration, req: libc::c_uint) {
        let released = poke_after(dur);
        self.held.push(Held {
            tid,
            until: Until::At(self.now() + dur.as_nanos() as u64),
            req,
            released,
        });
    }

    /// Holds `tid`, stopped at the entry of a send on its socket `fd`, until `gate` opens
    /// (and the socket's `queue` is delivered) or the socket's send timeout passes (see
    /// [`Until::Gate`]). The event (`p`) is kept for the call's exit.
    pub(crate) fn hold_on_gate(
        &mut self,
        tid: i32,
        p: Pending,
        gate: String,
        queue: Option<u64>,
        by: FaultRef,
    ) {
        let (tgid, fd) = (p.ev.pid, p.args[0] as i32);
        if let Some(t) = self.threads.get_mut(&tid) {
            t.pending = Some(p);
        }
        // A send timeout still applies: the program's own way out of a stall.
        let timeout = self.procs.get_mut(&tgid).and_then(|p| {
            if p.pidfd.is_none() {
                p.pidfd = sockinfo::pidfd_open(tgid);
            }
            sockinfo::send_timeout(p.pidfd.as_ref()?, fd)
        });
        let (timeout, released) = match timeout {
            Some(t) => (Some((self.now() + t.as_nanos() as u64, by)), poke_after(t)),
            None => (None, Arc::new(AtomicBool::new(false))),
        };
        self.held.push(Held {
            tid,
            until: Until::Gate {
                gate,
                queue,
                timeout,
            },
            req: libc::PTRACE_SYSCALL,
            released,
        });
    }

    /// A held send whose `SO_SNDTIMEO` passed: it fails with `EAGAIN` without running.
    pub(crate) fn time_out_held(&mut self, tid: i32, by: &FaultRef) {
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

    /// Resumes every held thread whose time has come or whose gate is open (and queue
    /// delivered).
    pub(crate) fn release_held(&mut self) {
        let now = self.now();
        let mut keep = Vec::new();
        for h in std::mem::take(&mut self.held) {
            let due = match &h.until {
                Until::At(t) => now >= *t,
                Until::Gate {
                    gate,
                    queue,
                    timeout,
                } => {
                    let open = self.interceptor.as_mut().is_none_or(|i| i.gate_open(gate))
                        && queue.is_none_or(|ino| !self.cuts.queues.contains_key(&ino));
                    match timeout {
                        Some((at, by))
                            if !open && now >= *at && self.threads.contains_key(&h.tid) =>
                        {
                            h.released.store(true, Ordering::SeqCst);
                            let by = by.clone();
                            self.time_out_held(h.tid, &by);
                            continue;
                        }
                        _ => open,
                    }
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
}
