//! Capturing the registers and stack of traced threads, on the tracer thread.
//!
//! For every traced thread of the node(s) asked for:
//! - a thread already in a ptrace stop (held by a fault, a parked new child, a stop not yet
//!   reaped) answers `PTRACE_GETREGS` at once and is left exactly as it was;
//! - any other thread (running, asleep in a call, group-stopped and listening) gets
//!   `PTRACE_INTERRUPT`; the next stop `waitpid` reports for it — `PTRACE_EVENT_STOP`, or a
//!   syscall-exit stop of an interrupted call, or whatever stop it reached first — is where
//!   its registers and stack are read, and then the stop goes through the normal handling
//!   (`on_status`), which resumes it as usual: `PTRACE_CONT` (a call interrupted this way is
//!   restarted by the kernel; `epoll_wait` and a few others return EINTR instead, as after
//!   SIGSTOP/SIGCONT), `PTRACE_SYSCALL` when its traced call still awaits its exit stop,
//!   `PTRACE_LISTEN` for a group-stopped (paused) thread, which stays stopped.
//!
//! While waiting, every other stop is handled normally too, so nothing else is held up.
//! A thread that does not stop before the deadline is reported as such; its late stop is
//! resumed by the main loop like any interrupt stop. The stack is copied (from `rsp` up,
//! `stack_bytes` at most) while the thread is stopped, so unwinding can happen later.

use crate::hold::Until;
use crate::inner::Inner;
use crate::{mem, Sink};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// A copy of a thread's stack: (address of its first byte, bytes).
pub type StackCopy = (u64, Vec<u8>);

/// What to capture.
#[derive(Debug, Clone)]
pub struct CaptureRequest {
    /// Only threads of this node (all when `None`).
    pub node: Option<String>,
    /// Stop threads for their registers and stack; `false` only lists threads with what the
    /// tracer knows of them (cheap: nothing is stopped).
    pub registers: bool,
    /// Bytes of stack copied from `rsp` up.
    pub stack_bytes: usize,
    /// How long to wait for interrupted threads to stop.
    pub timeout: Duration,
}

impl Default for CaptureRequest {
    fn default() -> Self {
        Self {
            node: None,
            registers: true,
            stack_bytes: 256 * 1024,
            timeout: Duration::from_millis(500),
        }
    }
}

/// One traced thread.
#[derive(Debug, Clone)]
pub struct ThreadCapture {
    pub node: String,
    pub tgid: i32,
    pub tid: i32,
    /// What the tracer knew: `running`, `held by a delay fault`, `held at gate G`,
    /// `parked (waiting for its parent's fork event)`.
    pub tracer_state: String,
    /// The traced call it is in (awaiting its exit stop), e.g. `read fd 5`.
    pub in_call: Option<String>,
    /// `user_regs_struct`, 27 words in kernel order.
    pub regs: Option<[u64; 27]>,
    /// Copy of the stack from `rsp` up.
    pub stack: Option<StackCopy>,
    /// Why `regs` is missing.
    pub note: Option<String>,
}

/// The answer to a [`CaptureRequest`].
#[derive(Debug, Clone, Default)]
pub struct Capture {
    pub threads: Vec<ThreadCapture>,
    /// Processes started untraced: (node, pid). Only /proc can tell about them.
    pub untraced: Vec<(String, i32)>,
    /// The longest time an interrupted thread stayed stopped for the capture (upper bound:
    /// from the interrupt to its resumption).
    pub max_pause: Duration,
}

fn regs_words(r: &libc::user_regs_struct) -> [u64; 27] {
    [
        r.r15, r.r14, r.r13, r.r12, r.rbp, r.rbx, r.r11, r.r10, r.r9, r.r8, r.rax, r.rcx, r.rdx,
        r.rsi, r.rdi, r.orig_rax, r.rip, r.cs, r.eflags, r.rsp, r.ss, r.fs_base, r.gs_base, r.ds,
        r.es, r.fs, r.gs,
    ]
}

impl<S: Sink> Inner<S> {
    fn describe(&self, tid: i32) -> (String, Option<String>) {
        let state = match self.held.iter().find(|h| h.tid == tid).map(|h| &h.until) {
            Some(Until::At(_)) => "held by a delay fault".to_string(),
            Some(Until::Gate {
                gate,
                timeout: None,
                ..
            }) => format!("held at gate {gate}"),
            Some(Until::Gate { gate, .. }) => {
                format!("held at gate {gate} (until its send timeout)")
            }
            None if self.parked.contains(&tid) => {
                "parked (waiting for its parent's fork event)".to_string()
            }
            None => "running".to_string(),
        };
        let call = self.call_in_progress(tid).map(|p| match p.ev.fd {
            Some(fd) => format!("{} fd {fd}", p.ev.call),
            None => p.ev.call.clone(),
        });
        (state, call)
    }

    fn grab(tid: i32, stack_bytes: usize) -> Option<([u64; 27], Option<StackCopy>)> {
        let regs = mem::getregs(tid)?;
        let stack = (stack_bytes > 0)
            .then(|| mem::read_mem(tid, regs.rsp, stack_bytes).map(|b| (regs.rsp, b)))
            .flatten();
        Some((regs_words(&regs), stack))
    }

    /// Runs a capture (see the module doc). Never leaves a thread stopped that was not.
    pub(crate) fn capture(&mut self, req: CaptureRequest) -> Result<Capture, super::Error> {
        let wanted = |label: &str| req.node.as_deref().is_none_or(|n| n == label);
        let mut out: BTreeMap<i32, ThreadCapture> = BTreeMap::new();
        let mut targets: Vec<(i32, i32, String)> = self
            .threads
            .iter()
            .filter(|(_, t)| wanted(&t.label))
            .map(|(&tid, t)| (tid, t.tgid, t.label.to_string()))
            .collect();
        for &tid in &self.parked {
            let node = self
                .parked_under
                .get(&tid)
                .map(|l| l.to_string())
                .unwrap_or_else(|| "?".into());
            if wanted(&node) {
                let tgid = self.early_tgid.get(&tid).copied().unwrap_or(tid);
                targets.push((tid, tgid, node));
            }
        }
        targets.sort_by_key(|t| t.0);
        let mut waiting: BTreeMap<i32, Instant> = BTreeMap::new();
        for (tid, tgid, node) in targets {
            let (tracer_state, in_call) = self.describe(tid);
            let mut c = ThreadCapture {
                node,
                tgid,
                tid,
                tracer_state,
                in_call,
                regs: None,
                stack: None,
                note: None,
            };
            if req.registers {
                match Self::grab(tid, req.stack_bytes) {
                    // Already in a ptrace stop: left as it is.
                    Some((r, s)) => {
                        c.regs = Some(r);
                        c.stack = s;
                    }
                    None => {
                        // SAFETY: PTRACE_INTERRUPT on a seized tracee of ours.
                        let r = unsafe {
                            libc::ptrace(
                                libc::PTRACE_INTERRUPT,
                                tid,
                                std::ptr::null_mut::<libc::c_void>(),
                                std::ptr::null_mut::<libc::c_void>(),
                            )
                        };
                        if r == 0 {
                            waiting.insert(tid, Instant::now());
                        } else {
                            c.note = Some(format!(
                                "cannot interrupt: {}",
                                std::io::Error::last_os_error()
                            ));
                        }
                    }
                }
            }
            out.insert(tid, c);
        }
        let mut max_pause = Duration::ZERO;
        let deadline = Instant::now() + req.timeout;
        while !waiting.is_empty() && Instant::now() < deadline {
            let mut status = 0;
            // SAFETY: waitpid into a local status word, without blocking.
            let tid = unsafe {
                libc::waitpid(
                    -1,
                    &mut status,
                    libc::__WALL | libc::__WNOTHREAD | libc::WNOHANG,
                )
            };
            if tid == 0 {
                std::thread::sleep(Duration::from_micros(200));
                continue;
            }
            if tid < 0 {
                match std::io::Error::last_os_error().raw_os_error() {
                    Some(libc::EINTR) => continue,
                    _ => break,
                }
            }
            let asked = waiting.remove(&tid);
            if let (Some(_), Some(c)) = (asked, out.get_mut(&tid)) {
                if libc::WIFSTOPPED(status) {
                    match Self::grab(tid, req.stack_bytes) {
                        Some((r, s)) => {
                            c.regs = Some(r);
                            c.stack = s;
                        }
                        None => c.note = Some("stopped but its registers were unreadable".into()),
                    }
                } else {
                    c.note = Some("exited during the capture".into());
                }
            }
            self.stats.stops += 1;
            self.on_status(tid, status)?;
            if let Some(t0) = asked {
                max_pause = max_pause.max(t0.elapsed());
            }
        }
        for (tid, _) in waiting {
            if let Some(c) = out.get_mut(&tid) {
                c.note = Some(format!(
                    "did not stop within {} ms (uninterruptible sleep?)",
                    req.timeout.as_millis()
                ));
            }
        }
        let untraced = self
            .untraced
            .iter()
            .filter(|(_, l)| wanted(l))
            .map(|(&p, l)| (l.to_string(), p))
            .collect();
        Ok(Capture {
            threads: out.into_values().collect(),
            untraced,
            max_pause,
        })
    }
}
