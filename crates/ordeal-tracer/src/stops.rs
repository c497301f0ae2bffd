//! A traced call's two stops: at entry the call is decoded (record.rs) and the
//! [`Interceptor`](crate::Interceptor) decides its fate (fail it, shorten it, hold or delay the
//! thread, drop it, crash or pause a node); at exit the event is completed and written.

use crate::inner::{fmt_dur, resume, Inner, Pending};
use crate::{decode, mem, procfs, record, Action, Error, Sink};

impl<S: Sink> Inner<S> {
    pub(crate) fn on_entry(&mut self, tid: i32) -> Result<(), Error> {
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
        // A send on a socket with bytes queued by a partition never overtakes them.
        let action = match action {
            Action::Proceed => self.behind_queue(&ev)?.unwrap_or(Action::Proceed),
            a => a,
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
                    self.hold_on_gate(tid, Pending { nr, args, ev }, gate, None, by);
                    return Ok(());
                }
            }
            Action::Cut { by, gate } => {
                return self.cut(tid, Pending { nr, args, ev }, regs, by, gate);
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
            Action::Signal { node, .. } | Action::Crash { node, .. } if !self.node_alive(&node) => {
            }
            Action::Signal {
                by,
                node,
                signal,
                what,
            } => {
                ev.fault = Some(by.mark(format!("{what} before")));
                self.signal_node(&node, signal);
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

    /// A thread stopped on its way out (`PTRACE_EVENT_EXIT`). When another thread's
    /// `exit_group` (or a fatal signal) arrives while this one is inside a call we asked to
    /// see the end of, the kernel skips the syscall-exit stop: the call did run (a send's
    /// bytes reach the peer) but its event would be lost. Its registers are still readable
    /// here, so complete it now.
    pub(crate) fn on_exit_stop(&mut self, tid: i32) -> Result<(), Error> {
        let pending = self.threads.get_mut(&tid).and_then(|t| t.pending.take());
        let Some(Pending { nr, args, ev }) = pending else {
            return Ok(());
        };
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
            let mut ev = ev;
            if ev.fault.is_some() {
                // A fault fired at it (a delay held it at its entry): recorded as it stands,
                // without a result, so that the firing is not lost with it.
                ev.dur = self.now().saturating_sub(ev.ts);
                return self.emit(ev);
            }
            if let Some(i) = self.interceptor.as_mut() {
                i.withdrawn(&ev);
            }
            return Ok(());
        }
        if self.shutting_down {
            return self.finish_at_teardown(tid, Pending { nr, args, ev }, ret);
        }
        self.finish(tid, Pending { nr, args, ev }, ret)
    }

    /// A call that completed as the run was torn down (the thread was at its exit stop, or
    /// died there, when the kill came). It did happen: a write's bytes are in the file, and
    /// `ordeal crash` compares the recorded writes with the final directory. Recorded without
    /// showing it to the interceptor: no fault acts during the teardown.
    pub(crate) fn finish_at_teardown(
        &mut self,
        tid: i32,
        p: Pending,
        ret: i64,
    ) -> Result<(), Error> {
        let Pending { nr, args, mut ev } = p;
        self.completed(tid, nr, &args, ret, &mut ev);
        self.emit(ev)
    }

    /// Fills in a returned call's result, duration and what it moved.
    fn completed(
        &mut self,
        tid: i32,
        nr: i64,
        args: &[u64; 6],
        ret: i64,
        ev: &mut ordeal_events::Event,
    ) {
        let tgid = ev.pid;
        ev.dur = self.now().saturating_sub(ev.ts);
        ev.ret = Some(ret);
        ev.errno = decode::errno_name(ret);
        self.complete(tid, tgid, nr, args, ret, ev);
    }

    /// Records a completed call with its result.
    pub(crate) fn finish(&mut self, tid: i32, p: Pending, ret: i64) -> Result<(), Error> {
        let Pending { nr, args, mut ev } = p;
        self.completed(tid, nr, &args, ret, &mut ev);
        if let Some(dur) = self.emit_completed(ev, true)? {
            // Held in its exit stop: the caller resumes it only if it is not held.
            self.hold_for(tid, dur, libc::PTRACE_CONT);
        }
        Ok(())
    }

    /// Records a lifecycle step (spawn, fork, exec, exit) after showing it to the
    /// interceptor: node-level faults may fire at it (a crash, a signal, a mark); call
    /// faults never count it (the trigger's own rule), and nothing else applies to a step.
    pub(crate) fn emit_step(&mut self, ev: ordeal_events::Event) -> Result<(), Error> {
        if self.shutting_down {
            // Steps of the teardown (every exit) are not the system's behaviour.
            return self.emit(ev);
        }
        self.emit_completed(ev, false).map(|_| ())
    }

    /// Shows a completed event to the interceptor and records it with what fired there: a
    /// mark, a crash or signal of a node still alive (sent once the event is recorded: a
    /// thread in its exit stop has completed its call but runs no further instruction), and,
    /// where `delays` (a system call), a delay, returned for the caller to hold the thread.
    fn emit_completed(
        &mut self,
        mut ev: ordeal_events::Event,
        delays: bool,
    ) -> Result<Option<std::time::Duration>, Error> {
        let mut delay = None;
        let act = match self.interceptor.as_mut() {
            Some(i) if ev.fault.is_none() => match i.at_exit(&ev) {
                Action::Crash { by, node } => {
                    let what = format!("crash {node}");
                    Some((by, node, what, libc::SIGKILL))
                }
                Action::Signal {
                    by,
                    node,
                    signal,
                    what,
                } => Some((by, node, what, signal)),
                Action::Delay { by, dur } if delays => {
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
        if let Some((by, _, what, _)) = &act {
            ev.fault = Some(by.mark(format!("{what} after")));
        }
        self.emit(ev)?;
        if let Some((_, node, _, signal)) = act {
            self.signal_node(&node, signal);
        }
        Ok(delay)
    }

    pub(crate) fn on_syscall_exit(&mut self, tid: i32) -> Result<(), Error> {
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
