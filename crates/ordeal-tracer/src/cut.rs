//! Calls across a partition ([`Action::Cut`](crate::Action::Cut)): what a network that drops
//! packets does to them, emulated on the tracee's own sockets.
//!
//! - A stream send succeeds without running: its bytes join the socket's [`SendQueue`] (the
//!   send buffer of a connection whose packets are lost). The tracer keeps a duplicate of the
//!   socket (`pidfd_getfd`) with the queue, so a socket the program closes meanwhile lives on
//!   until its bytes are delivered, as the kernel keeps a closed socket's unsent bytes.
//! - When every partition a queue was filled under has healed (its gates are open), the
//!   tracer writes the queue into the socket through that duplicate, before any later send on
//!   it runs: the peer receives the bytes at once and its poll or epoll fires. One `fault`
//!   event per healed partition and sending node says how many bytes went. A socket that
//!   cannot take them all (a full buffer) gets the rest as it drains, polled every few
//!   milliseconds; later sends queue behind them. A peer gone meanwhile (`EPIPE`,
//!   `ECONNRESET`) loses them, and the mark says so.
//! - A shutdown for writing of a socket with queued bytes waits for their delivery (the call
//!   returns at once): its FIN follows them, as the kernel sends it after the buffer.
//! - A TCP connect runs for real, its socket dropping what it receives (a socket filter)
//!   until the gate opens: the handshake hangs as behind a real drop, whatever timeout the
//!   caller has; the kernel's next SYN retransmission after the heal completes it.

use std::collections::{BTreeMap, HashMap};
use std::os::fd::OwnedFd;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ordeal_events::calls::{self, Arg};
use ordeal_events::{Event, FaultRef, Proto, SocketOp};

use crate::fds::Fd;
use crate::hold::poke_after;
use crate::inner::{resume, Inner, Pending};
use crate::sendq::{Offer, SendQueue, DEFAULT_SEND_BUFFER};
use crate::{mem, procfs, record, sockinfo, Action, Error, Sink};

/// `TCP_CLOSE` (include/net/tcp_states.h): a TCP socket not connected yet.
const TCP_CLOSE: u8 = 7;

/// How often a queue the socket could not take whole is tried again.
const DRAIN_EVERY: Duration = Duration::from_millis(5);

/// The bytes one stream socket sent across partitions, waiting for their heal.
pub(crate) struct Queued {
    q: SendQueue,
    /// The tracer's duplicate of the socket: the queue is written through it.
    dup: OwnedFd,
    /// The partition the first queued send crossed: the marks name it.
    by: FaultRef,
    /// Every partition a send of the queue crossed: it is delivered once all have healed.
    gates: Vec<String>,
    /// The sending node.
    node: Rc<str>,
    /// Its gates opened and it is being delivered (the socket took part of it so far).
    healed: bool,
    /// The program shut the socket down for writing meanwhile: done once the queue is
    /// delivered, so the FIN follows the bytes as it would.
    shut_wr: bool,
}

/// A connect whose socket drops what it receives until `gate` opens.
pub(crate) struct Handshake {
    ino: u64,
    tgid: i32,
    fd: i32,
    gate: String,
}

/// What the tracer keeps of the partitions its calls crossed.
#[derive(Default)]
pub(crate) struct Cuts {
    pub(crate) queues: HashMap<u64, Queued>,
    handshakes: Vec<Handshake>,
    /// Pokes the tracer while a healed queue waits for room in its socket.
    draining: Option<Arc<AtomicBool>>,
}

impl Cuts {
    /// Drops everything (the run is over): duplicates closed, nothing delivered.
    pub(crate) fn clear(&mut self) {
        self.queues.clear();
        self.handshakes.clear();
        if let Some(flag) = self.draining.take() {
            flag.store(true, Ordering::SeqCst);
        }
    }

    fn is_empty(&self) -> bool {
        self.queues.is_empty() && self.handshakes.is_empty()
    }
}

/// What a heal delivered for one partition and sending node.
#[derive(Default)]
struct Delivered {
    bytes: usize,
    left: usize,
    lost: usize,
    errno: Option<i32>,
}

impl Delivered {
    /// The mark's text: `delivered N bytes at the heal`, what is left, what was lost.
    fn describe(&self, when: &str) -> String {
        let mut what = format!("delivered {} bytes {when}", self.bytes);
        if self.left > 0 {
            what.push_str(&format!(", {} more as the peer reads", self.left));
        }
        if self.lost > 0 {
            let e = self
                .errno
                .and_then(|e| crate::decode::errno_name(-(e as i64)))
                .unwrap_or_default();
            what.push_str(&format!(
                "; {} bytes lost: the peer is gone ({e})",
                self.lost
            ));
        }
        what
    }
}

impl<S: Sink> Inner<S> {
    /// [`Action::Cut`] at the entry of a call (`p`), stopped with registers `regs`.
    pub(crate) fn cut(
        &mut self,
        tid: i32,
        p: Pending,
        regs: libc::user_regs_struct,
        by: FaultRef,
        gate: String,
    ) -> Result<(), Error> {
        let op = calls::by_nr(p.nr).and_then(|c| c.socket).map(|s| s.op);
        if op == Some(SocketOp::Connect) {
            return self.cut_connect(tid, p, regs, by, gate);
        }
        if op == Some(SocketOp::Shutdown) {
            return self.shut_behind_queue(tid, p, regs);
        }
        if !p.ev.is_send() {
            return self.run_call(tid, p);
        }
        if p.ev.sock.as_ref().map(|s| s.proto) == Some(Proto::Udp) {
            return self.discard(tid, p, regs, by);
        }
        self.queue_send(tid, p, regs, by, gate)
    }

    /// What a send (or a shutdown) the interceptor let through gets when its socket still
    /// has queued bytes: those are delivered first if their partitions have healed, else the
    /// send queues behind them (order kept) and a shutdown waits for them.
    pub(crate) fn behind_queue(&mut self, ev: &Event) -> Result<Option<Action>, Error> {
        let Some(ino) = self.socket_of(ev) else {
            return Ok(None);
        };
        if !self.cuts.queues.contains_key(&ino) {
            return Ok(None);
        }
        self.settle_cuts()?;
        Ok(self.cuts.queues.get(&ino).map(|q| Action::Cut {
            by: q.by.clone(),
            gate: q.gates.last().cloned().unwrap_or_default(),
        }))
    }

    fn queue_send(
        &mut self,
        tid: i32,
        p: Pending,
        regs: libc::user_regs_struct,
        by: FaultRef,
        gate: String,
    ) -> Result<(), Error> {
        let Some(ino) = p.ev.sock.as_ref().map(|s| s.ino).filter(|&i| i != 0) else {
            return self.hold_send(tid, p, regs, by, gate, None);
        };
        // Bytes queued under a partition that has healed go first.
        if self.cuts.queues.get(&ino).is_some_and(|q| !q.healed) {
            self.settle_cuts()?;
        }
        let several = calls::by_nr(p.nr).is_some_and(|c| c.has(Arg::MsgVec));
        if several || p.ev.len.is_none() {
            // Several messages (sendmmsg) have no single length to queue: held until the
            // heal (and behind the queue, if the socket has one).
            let queue = self.cuts.queues.contains_key(&ino).then_some(ino);
            return self.hold_send(tid, p, regs, by, gate, queue);
        }
        let open = self.interceptor.as_mut().is_none_or(|i| i.gate_open(&gate));
        match self.cuts.queues.get_mut(&ino) {
            Some(q) => {
                // Cut again (by another partition, or the same firing again) while it waited
                // or was being delivered: it waits for this heal too.
                if !q.gates.contains(&gate) {
                    q.gates.push(gate);
                    q.healed = false;
                } else if !open {
                    q.healed = false;
                }
            }
            None => {
                let (tgid, fd) = (p.ev.pid, p.args[0] as i32);
                let dup = self
                    .dup_of(tgid, fd)
                    .filter(|d| sockinfo::socket_ino(d) == Some(ino));
                let Some(dup) = dup else {
                    return self.hold_send(tid, p, regs, by, gate, None);
                };
                let cap = sockinfo::send_buffer(&dup).unwrap_or(DEFAULT_SEND_BUFFER);
                let node = self
                    .threads
                    .get(&tid)
                    .map(|t| t.label.clone())
                    .unwrap_or_else(|| Rc::from(p.ev.node.as_str()));
                self.cuts.queues.insert(
                    ino,
                    Queued {
                        q: SendQueue::new(cap),
                        dup,
                        by,
                        gates: vec![gate],
                        node,
                        healed: false,
                        shut_wr: false,
                    },
                );
            }
        }
        self.offer_queue(tid, p, regs, ino)
    }

    /// Queues the send `p` on socket `ino`'s queue, or holds or refuses it (see
    /// [`SendQueue::offer`]).
    fn offer_queue(
        &mut self,
        tid: i32,
        mut p: Pending,
        regs: libc::user_regs_struct,
        ino: u64,
    ) -> Result<(), Error> {
        let (tgid, fd) = (p.ev.pid, p.args[0] as i32);
        let blocking =
            !(record::nonblocking_call(p.nr, &p.args) || procfs::fd_nonblocking(tgid, fd));
        let len = p.ev.len.unwrap_or(0) as usize;
        let Some(q) = self.cuts.queues.get_mut(&ino) else {
            return self.run_call(tid, p);
        };
        let by = q.by.clone();
        match q.q.offer(len, blocking) {
            Offer::Queue(n) => {
                // Read while the caller is stopped: its buffer is what it sends.
                let Some(bytes) = record::send_bytes(tid, p.nr, &p.args, n) else {
                    // Unreadable: the call runs, and fails as it would.
                    return self.run_call(tid, p);
                };
                if !skip(tid, regs, n as i64) {
                    return self.run_call(tid, p);
                }
                q.q.push(&bytes);
                p.ev.fault = Some(by.mark(format!("queued {n} bytes")));
                let r = self.finish(tid, p, n as i64);
                resume(tid, libc::PTRACE_CONT, 0);
                r
            }
            Offer::Hold => {
                let gate = q.gates.last().cloned().unwrap_or_default();
                p.ev.fault = Some(by.mark("held"));
                self.hold_on_gate(tid, p, gate, Some(ino), by);
                Ok(())
            }
            Offer::Refuse => self.fail(tid, p, regs, libc::EAGAIN, by.mark("EAGAIN")),
        }
    }

    /// A send that cannot be queued: held until the heal (and the delivery of the socket's
    /// `queue`) when blocking, `EAGAIN` when not (as [`Action::Hold`]).
    fn hold_send(
        &mut self,
        tid: i32,
        mut p: Pending,
        regs: libc::user_regs_struct,
        by: FaultRef,
        gate: String,
        queue: Option<u64>,
    ) -> Result<(), Error> {
        let (tgid, fd) = (p.ev.pid, p.args[0] as i32);
        if record::nonblocking_call(p.nr, &p.args) || procfs::fd_nonblocking(tgid, fd) {
            let mark = by.mark("EAGAIN");
            return self.fail(tid, p, regs, libc::EAGAIN, mark);
        }
        p.ev.fault = Some(by.mark("held"));
        self.hold_on_gate(tid, p, gate, queue, by);
        Ok(())
    }

    /// A shutdown of a socket with bytes queued: the reading side at once, the writing side
    /// (the FIN) once they are delivered. The call itself does not run and returns 0.
    fn shut_behind_queue(
        &mut self,
        tid: i32,
        mut p: Pending,
        regs: libc::user_regs_struct,
    ) -> Result<(), Error> {
        let how = p.args[1] as i32;
        let ino = self.socket_of(&p.ev).unwrap_or(0);
        let Some(q) = self
            .cuts
            .queues
            .get_mut(&ino)
            .filter(|_| how != libc::SHUT_RD)
        else {
            return self.run_call(tid, p);
        };
        if !skip(tid, regs, 0) {
            return self.run_call(tid, p);
        }
        if how == libc::SHUT_RDWR {
            sockinfo::shutdown(&q.dup, libc::SHUT_RD);
        }
        q.shut_wr = true;
        p.ev.fault = Some(q.by.mark("shutdown after the queued bytes"));
        let r = self.finish(tid, p, 0);
        resume(tid, libc::PTRACE_CONT, 0);
        r
    }

    /// A datagram lost on the way: reported sent, whole.
    fn discard(
        &mut self,
        tid: i32,
        mut p: Pending,
        regs: libc::user_regs_struct,
        by: FaultRef,
    ) -> Result<(), Error> {
        let several = calls::by_nr(p.nr).is_some_and(|c| c.has(Arg::MsgVec));
        let Some(len) = p.ev.len.filter(|_| !several) else {
            return self.run_call(tid, p);
        };
        if !skip(tid, regs, len as i64) {
            return self.run_call(tid, p);
        }
        p.ev.fault = Some(by.mark("dropped"));
        let r = self.finish(tid, p, len as i64);
        resume(tid, libc::PTRACE_CONT, 0);
        r
    }

    /// A TCP connect across the cut: it runs, its socket deaf until the gate opens.
    fn cut_connect(
        &mut self,
        tid: i32,
        mut p: Pending,
        regs: libc::user_regs_struct,
        by: FaultRef,
        gate: String,
    ) -> Result<(), Error> {
        let (tgid, fd) = (p.ev.pid, p.args[0] as i32);
        let Some(dup) = self.dup_of(tgid, fd) else {
            return self.run_call(tid, p);
        };
        let Some(ino) = sockinfo::socket_ino(&dup) else {
            return self.run_call(tid, p);
        };
        match sockinfo::tcp_state(&dup) {
            Some(TCP_CLOSE) => {}
            // Connecting already (the kernel answers EALREADY): marked if its handshake is
            // one this partition drops.
            Some(_) => {
                if self.cuts.handshakes.iter().any(|h| h.ino == ino) {
                    p.ev.fault = Some(by.mark("handshake dropped"));
                }
                return self.run_call(tid, p);
            }
            // Not TCP (a UDP connect sends nothing).
            None => return self.run_call(tid, p),
        }
        if !sockinfo::drop_incoming(&dup) {
            // The socket filters packets itself: it fails as a drop would in the end.
            return self.fail(tid, p, regs, libc::ETIMEDOUT, by.mark("fail ETIMEDOUT"));
        }
        self.cuts.handshakes.retain(|h| h.ino != ino);
        self.cuts.handshakes.push(Handshake {
            ino,
            tgid,
            fd,
            gate,
        });
        p.ev.fault = Some(by.mark("handshake dropped"));
        self.run_call(tid, p)
    }

    /// Skips the call, which returns `-errno`, marked `mark`.
    fn fail(
        &mut self,
        tid: i32,
        mut p: Pending,
        regs: libc::user_regs_struct,
        errno: i32,
        mark: ordeal_events::FaultMark,
    ) -> Result<(), Error> {
        let ret = -(errno as i64);
        if !skip(tid, regs, ret) {
            return self.run_call(tid, p);
        }
        p.ev.fault = Some(mark);
        let r = self.finish(tid, p, ret);
        resume(tid, libc::PTRACE_CONT, 0);
        r
    }

    /// Lets the call run; its exit stop completes the event.
    fn run_call(&mut self, tid: i32, p: Pending) -> Result<(), Error> {
        if let Some(t) = self.threads.get_mut(&tid) {
            t.pending = Some(p);
        }
        resume(tid, libc::PTRACE_SYSCALL, 0);
        Ok(())
    }

    /// The socket (inode) of a send or a shutdown: a shutdown's event describes its socket
    /// only once it completes, the descriptor cache knows it already.
    fn socket_of(&mut self, ev: &Event) -> Option<u64> {
        if ev.is_send() {
            return ev.sock.as_ref().map(|s| s.ino);
        }
        if ev.socket_op() != Some(SocketOp::Shutdown) {
            return None;
        }
        match self.procs.get(&ev.pid)?.fds.get(&ev.fd?)? {
            Fd::Sock(s) => Some(s.ino),
            _ => None,
        }
    }

    /// The tracer's duplicate of `fd` of process `tgid`.
    fn dup_of(&mut self, tgid: i32, fd: i32) -> Option<OwnedFd> {
        let p = self.procs.get_mut(&tgid)?;
        if p.pidfd.is_none() {
            p.pidfd = sockinfo::pidfd_open(tgid);
        }
        sockinfo::dup_fd(p.pidfd.as_ref()?, fd)
    }

    /// Ends what partitions that have healed left: queues delivered (one `fault` event per
    /// partition and sending node), handshakes let through; and goes on with queues whose
    /// socket was full. Called on every turn of the tracer's loop while there is any, and
    /// before a send on a socket with a queue.
    pub(crate) fn settle_cuts(&mut self) -> Result<(), Error> {
        if self.cuts.is_empty() {
            return Ok(());
        }
        let mut open: HashMap<String, bool> = HashMap::new();
        let mut is_open = |gate: &str, i: &mut Option<Box<dyn crate::Interceptor>>| {
            *open
                .entry(gate.to_string())
                .or_insert_with(|| i.as_mut().is_none_or(|i| i.gate_open(gate)))
        };
        let mut reopened = Vec::new();
        let mut i = 0;
        while i < self.cuts.handshakes.len() {
            if is_open(&self.cuts.handshakes[i].gate, &mut self.interceptor) {
                reopened.push(self.cuts.handshakes.swap_remove(i));
            } else {
                i += 1;
            }
        }
        let healed: Vec<u64> = self
            .cuts
            .queues
            .iter()
            .filter(|(_, q)| !q.healed)
            .map(|(&ino, q)| (ino, q.gates.clone()))
            .collect::<Vec<_>>()
            .into_iter()
            .filter(|(_, gates)| gates.iter().all(|g| is_open(g, &mut self.interceptor)))
            .map(|(ino, _)| ino)
            .collect();
        for h in reopened {
            self.let_through(&h);
        }
        // At the heal: one mark per partition and sending node, at the time the delivery
        // started (a reader may finish before the mark is made).
        let at = self.now();
        let mut at_heal: BTreeMap<(String, Rc<str>), (FaultRef, Delivered)> = BTreeMap::new();
        for ino in healed {
            let Some(q) = self.cuts.queues.get_mut(&ino) else {
                continue;
            };
            q.healed = true;
            let dup = &q.dup;
            let d = q.q.drain(|b| sockinfo::send_now(dup, b));
            let key = (q.by.name.clone(), q.node.clone());
            let entry = at_heal
                .entry(key)
                .or_insert_with(|| (q.by.clone(), Delivered::default()));
            entry.1.bytes += d.delivered;
            entry.1.left += q.q.len();
            entry.1.lost += d.lost;
            entry.1.errno = entry.1.errno.or(d.errno);
        }
        for ((_, node), (by, d)) in at_heal {
            self.mark_node(&node, by, d.describe("at the heal"), at)?;
        }
        // Healed before, their socket full then: what it takes now.
        let at = self.now();
        let mut later = Vec::new();
        for q in self.cuts.queues.values_mut() {
            if q.healed && !q.q.is_empty() {
                let dup = &q.dup;
                let d = q.q.drain(|b| sockinfo::send_now(dup, b));
                if q.q.is_empty() {
                    let done = Delivered {
                        bytes: d.delivered,
                        lost: d.lost,
                        errno: d.errno,
                        left: 0,
                    };
                    later.push((q.node.clone(), q.by.clone(), done));
                }
            }
        }
        for (node, by, d) in later {
            self.mark_node(&node, by, d.describe("after the heal"), at)?;
        }
        self.cuts.queues.retain(|_, q| {
            let done = q.healed && q.q.is_empty();
            if done && q.shut_wr {
                sockinfo::shutdown(&q.dup, libc::SHUT_WR);
            }
            if done && q.q.refused() {
                // A send refused with EAGAIN waits for the socket to become writable.
                sockinfo::wake_writers(&q.dup);
            }
            !done
        });
        let draining = self.cuts.queues.values().any(|q| q.healed);
        match (&self.cuts.draining, draining) {
            (None, true) => self.cuts.draining = Some(poke_after(DRAIN_EVERY)),
            (Some(flag), false) => {
                flag.store(true, Ordering::SeqCst);
                self.cuts.draining = None;
            }
            _ => {}
        }
        Ok(())
    }

    /// A `fault` event on `node` at `ts`, marked as an effect of `by`.
    fn mark_node(&mut self, node: &str, by: FaultRef, what: String, ts: u64) -> Result<(), Error> {
        let mut ev = self.node_event(node, "fault");
        ev.ts = ts;
        ev.fault = Some(by.mark(what));
        self.emit(ev)
    }

    /// Lets a dropped handshake through: its socket hears again, wherever it still is.
    fn let_through(&mut self, h: &Handshake) {
        let elsewhere: Vec<(i32, i32)> = self
            .procs
            .iter()
            .flat_map(|(&tgid, p)| {
                p.fds.iter().filter_map(move |(&fd, k)| match k {
                    Fd::Sock(s) if s.ino == h.ino => Some((tgid, fd)),
                    _ => None,
                })
            })
            .collect();
        for (tgid, fd) in std::iter::once((h.tgid, h.fd)).chain(elsewhere) {
            let Some(dup) = self.dup_of(tgid, fd) else {
                continue;
            };
            if sockinfo::socket_ino(&dup) == Some(h.ino) {
                sockinfo::stop_dropping(&dup);
                return;
            }
        }
        // Closed by every process: nothing is left to connect.
    }
}

/// Skips the call the thread is stopped at: it returns `ret` without running.
fn skip(tid: i32, mut regs: libc::user_regs_struct, ret: i64) -> bool {
    regs.orig_rax = u64::MAX;
    regs.rax = ret as u64;
    mem::setregs(tid, &regs)
}
