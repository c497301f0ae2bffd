//! Observing calls through the eBPF probe instead of stopping at them ([`Observer::Ebpf`]).
//!
//! The tracer still forks, seizes and follows every program with ptrace, so lifecycle events
//! (spawn, fork, clone, exec, exit), signals, captures and shutdown work as in the ptrace
//! engine. What changes is the seccomp filter: it stops only the calls an [`Interceptor`]
//! may act on ([`Interceptor::watch`]); the probe records every other call of the table in
//! the kernel, without stopping the thread, and the tracer thread turns those records into
//! events with the same decoder (record.rs) when it drains the ring.
//!
//! One stream in `seq` order: the ring is drained before anything the tracer learns from a
//! ptrace stop is written. A thread's records are in the ring before the thread can reach its
//! next stop (the probe writes them synchronously in the thread), so a thread's events keep
//! their program order whichever side saw them, and a fork or clone event still precedes
//! everything the new thread does (it starts stopped until the tracer has written it).
//! The two sides never see the same call: the probe is given the table minus the stopped
//! calls.
//!
//! [`Interceptor`]: crate::Interceptor
//! [`Interceptor::watch`]: crate::Interceptor::watch

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use ordeal_ebpf::{Blob, FileInfo, Probe, ProbeConfig, Record, SockAddrs};

use crate::inner::{Inner, Pending};
use crate::mem::Captured;
use crate::{decode, Error, Sink, Watch};

/// The probe's ring when `Config::ring_bytes` is 0: 32 MiB, about 200,000 short records, a
/// second of a busy Redis. The tracer thread competes for the CPUs with the traced system;
/// 8 MiB lost records when it was starved for a fraction of a second (docs/bench.md).
pub const RING_BYTES: usize = 32 << 20;

/// How the tracer learns of calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Observer {
    /// Every call of the table stops the thread (ptrace + seccomp).
    #[default]
    Ptrace,
    /// The eBPF probe records the calls; only the watched ones stop.
    Ebpf,
}

/// The probe.
pub(crate) struct Observing {
    probe: Probe,
    ticker: Ticker,
}

/// Calls whose entry the probe recorded, by thread, waiting for their exit, with the copies
/// the entry took (a send's payload is read when the call completes). Boxed: an event is
/// half a kilobyte, moved in and out of the map for every call otherwise.
pub(crate) type Started = HashMap<i32, Box<(Pending, Vec<Captured>)>>;

/// Pokes the tracer thread every [`ordeal_ebpf::POLL_TICK`] so that records do not wait in
/// the ring while it is blocked in `waitpid` (the kernel wakes no one for a few records).
struct Ticker {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Ticker {
    fn start(tracer_tid: i32) -> Result<Ticker, Error> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("ordeal-ebpf-tick".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(ordeal_ebpf::POLL_TICK);
                    crate::poke_thread(tracer_tid);
                }
            })
            .map_err(Error::Thread)?;
        Ok(Ticker {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The calls that stop a traced thread: all of the table under ptrace; under eBPF those the
/// interceptor watches (none without one), and with file data recorded the file calls (the
/// bytes a write wrote are read at its stop: the probe copies no more than a payload's head).
pub(crate) fn stopped_calls(observer: Observer, watch: Option<Watch>, file_data: bool) -> Vec<i64> {
    let all = crate::seccomp::traced();
    let mut stopped: Vec<i64> = match (observer, watch) {
        (Observer::Ptrace, _) | (Observer::Ebpf, Some(Watch::All)) => return all,
        (Observer::Ebpf, None) => Vec::new(),
        (Observer::Ebpf, Some(Watch::Calls(calls))) => {
            all.into_iter().filter(|nr| calls.contains(nr)).collect()
        }
    };
    if file_data {
        stopped.extend(
            ordeal_events::calls::CALLS
                .iter()
                .filter(|c| c.file.is_some() && !stopped.contains(&c.nr))
                .map(|c| c.nr)
                .collect::<Vec<_>>(),
        );
    }
    stopped
}

impl Observing {
    /// Loads the probe for every call of the table that does not stop.
    pub(crate) fn start(
        stopped: &[i64],
        ring_bytes: usize,
        payload_bytes: usize,
        tracer_tid: i32,
    ) -> Result<Observing, Error> {
        let observed: Vec<i64> = crate::seccomp::traced()
            .into_iter()
            .filter(|nr| !stopped.contains(nr))
            .collect();
        let probe = Probe::start(ProbeConfig {
            syscalls: &observed,
            ring_bytes: match ring_bytes {
                0 => RING_BYTES,
                n => n,
            },
            payload_bytes: payload_bytes.min(ordeal_ebpf::PAYLOAD_MAX),
        })?;
        Ok(Observing {
            probe,
            ticker: Ticker::start(tracer_tid)?,
        })
    }

    /// Follows a program the tracer just forked, before it is let go towards exec.
    pub(crate) fn follow(&self, pid: i32) -> Result<(), Error> {
        Ok(self.probe.follow(pid)?)
    }

    /// Records the kernel could not deliver (ring full, too many processes).
    pub(crate) fn lost(&self) -> u64 {
        self.probe.lost().unwrap_or(0)
    }

    pub(crate) fn stop_ticking(&mut self) {
        self.ticker.stop.store(true, Ordering::Relaxed);
    }
}

impl<S: Sink> Inner<S> {
    /// The recorded call thread `tid` is in, seen by either side: entered, not yet returned.
    pub(crate) fn call_in_progress(&self, tid: i32) -> Option<&Pending> {
        let stopped = self.threads.get(&tid).and_then(|t| t.pending.as_ref());
        stopped.or_else(|| Some(&self.started.get(&tid)?.0))
    }

    /// Writes the events of every record in the ring, one by one as they are read.
    pub(crate) fn drain_probe(&mut self) -> Result<(), Error> {
        // Out of `self` while it drains, so that each record can be decoded on the way.
        let Some(mut obs) = self.observing.take() else {
            return Ok(());
        };
        let mut result = Ok(());
        obs.probe.drain(|r| {
            if result.is_ok() {
                result = self.observed(r);
            }
        });
        self.observing = Some(obs);
        result
    }

    fn observed(&mut self, record: Record) -> Result<(), Error> {
        match record {
            Record::Enter {
                tid,
                tgid,
                nr,
                args,
                ino,
                socket,
                sock,
                ktime_ns,
                mem,
            } => {
                self.started.remove(&tid);
                if !self.threads.contains_key(&tid) {
                    // Before exec (the spawn gate), or a task not ours.
                    return Ok(());
                }
                if let Some(addrs) = sock.filter(|_| socket && ino != 0) {
                    self.kernel_socks.insert(ino, addrs);
                }
                let ts = ktime_ns.saturating_sub(self.cfg.origin_ns);
                let copies = captured(mem);
                self.entry_file = Some((ino, socket));
                let (ev, copies) = crate::mem::with_captured(copies, || {
                    self.decode_entry(tid, tgid, nr, &args, ts)
                });
                self.entry_file = None;
                if let Some(ev) = ev {
                    self.started
                        .insert(tid, Box::new((Pending { nr, args, ev }, copies)));
                }
                Ok(())
            }
            Record::Exit {
                tid,
                nr,
                ret,
                ktime_ns,
                file,
                mem,
                ..
            } => {
                let Some(entry) = self.started.remove(&tid) else {
                    return Ok(());
                };
                let (
                    Pending {
                        nr: n,
                        args,
                        mut ev,
                    },
                    mut copies,
                ) = *entry;
                // Interrupted and restarted by the kernel: the retry enters again.
                if n != nr || (-516..=-512).contains(&ret) {
                    return Ok(());
                }
                let tgid = ev.pid;
                ev.dur = ktime_ns
                    .saturating_sub(self.cfg.origin_ns)
                    .saturating_sub(ev.ts);
                ev.ret = Some(ret);
                ev.errno = decode::errno_name(ret);
                // What the call wrote comes first: its outputs overlay the inputs' copies.
                let mut outputs = captured(mem);
                outputs.append(&mut copies);
                if let Some(f) = &file {
                    self.learn_socket(f);
                }
                self.exit_file = file;
                crate::mem::with_captured(outputs, || {
                    self.complete(tid, tgid, nr, &args, ret, &mut ev)
                });
                self.exit_file = None;
                self.emit(ev)
            }
            // Lifecycle comes from ptrace, which sees it exactly and in place.
            Record::Fork { .. } | Record::Exec { .. } | Record::ProcessExit { .. } => Ok(()),
        }
    }

    /// Remembers what the kernel said of a socket a call returned or worked on. (Its Unix
    /// peer is used for a socketpair only, as under ptrace, which cannot learn it otherwise.)
    fn learn_socket(&mut self, f: &FileInfo) {
        if let (true, Some(addrs)) = (f.socket, &f.sock) {
            self.kernel_socks.insert(f.ino, addrs.clone());
        }
    }
}

fn captured(mem: Vec<Blob>) -> Vec<Captured> {
    mem.into_iter()
        .map(|b| Captured {
            addr: b.addr,
            bytes: b.bytes,
        })
        .collect()
}

/// A socket's transport and addresses as the kernel has them: `ip:port`, `[ip6]:port`.
pub(crate) fn kernel_sock(
    addrs: &SockAddrs,
) -> (ordeal_events::Proto, Option<String>, Option<String>) {
    use ordeal_events::Proto;
    let proto = match (i32::from(addrs.family), i32::from(addrs.sock_type)) {
        (libc::AF_UNIX, _) => Proto::Unix,
        (libc::AF_INET | libc::AF_INET6, libc::SOCK_STREAM) => Proto::Tcp,
        (libc::AF_INET | libc::AF_INET6, libc::SOCK_DGRAM) => Proto::Udp,
        _ => Proto::Other,
    };
    let text = |a: &std::net::SocketAddr| match a {
        std::net::SocketAddr::V4(v4) => v4.to_string(),
        std::net::SocketAddr::V6(v6) => format!("[{}]:{}", v6.ip(), v6.port()),
    };
    (
        proto,
        addrs.local.as_ref().map(text),
        addrs.remote.as_ref().map(text),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(nrs: &[i64]) -> Vec<&'static str> {
        let mut v: Vec<_> = nrs.iter().map(|&nr| crate::syscall_name(nr)).collect();
        v.sort_unstable();
        v
    }

    #[test]
    fn only_watched_calls_stop_under_ebpf() {
        let all = crate::seccomp::traced();
        assert_eq!(stopped_calls(Observer::Ptrace, None, false), all);
        assert_eq!(stopped_calls(Observer::Ebpf, Some(Watch::All), false), all);
        assert!(stopped_calls(Observer::Ebpf, None, false).is_empty());
        let fsync = Watch::Calls(vec![libc::SYS_fsync, 100_000]);
        assert_eq!(
            names(&stopped_calls(Observer::Ebpf, Some(fsync), false)),
            ["fsync"]
        );
        let with_data = stopped_calls(Observer::Ebpf, None, true);
        assert!(with_data.contains(&libc::SYS_pwrite64) && with_data.contains(&libc::SYS_fsync));
        assert!(!with_data.contains(&libc::SYS_connect) && !with_data.contains(&libc::SYS_sendto));
    }
}
