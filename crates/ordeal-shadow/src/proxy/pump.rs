//! The pump: one direction of one connection, from its source socket to its destination.
//! Without toxics and debug targets the bytes go by splice(2) through a pipe, never copied to
//! user space; otherwise (or when splice is unsupported) they are read into a buffer, passed
//! through the toxics in effect and fed to the debug targets.
//!
//! Invariant: the pipe is emptied before the next read, so a toxic added at any time applies to
//! every byte read after it, on either path.

use super::active::{toxic_write, Active};
use super::connection::Conn;
use super::{Inner, TICK};
use crate::shadow::Link;
use crate::splice::{self, Pipe};
use crate::toxic::{Rng, Stream};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Size of a pump's read buffer.
const BUF: usize = 256 * 1024;

/// Size asked for a splice pipe: as much as a copy-path read. 1 MiB measured no faster and
/// uses 4× the pipe quota of an unprivileged user (`/proc/sys/fs/pipe-user-pages-soft`).
const PIPE: usize = BUF;

/// Below this, a pipe (one the kernel shrank: its user is over the pipe quota) makes splice
/// slower than copying (8 KiB: half the throughput), so the copy path is used.
const MIN_PIPE: usize = 64 * 1024;

enum Stop {
    Eof,
    Abort,
}

/// What a chunk's forwarding leaves the pump to do.
enum Flow {
    Go,
    Abort,
}

/// The zero-copy path of one pump.
enum Zc {
    /// Not needed yet: the pipe is made on first use.
    Untried,
    On(Pipe),
    /// Unsupported for this connection, no (large enough) pipe, or debug targets to feed:
    /// the copy path.
    Off,
}

impl Zc {
    fn open() -> Zc {
        splice::block_sigpipe();
        match Pipe::new(PIPE) {
            Ok(pipe) if pipe.capacity() >= MIN_PIPE => Zc::On(pipe),
            _ => Zc::Off,
        }
    }
}

fn transient(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock
            | std::io::ErrorKind::TimedOut
            | std::io::ErrorKind::Interrupted
    )
}

/// One direction of one connection.
struct Pump<'a> {
    inner: &'a Inner,
    conn: &'a Conn,
    dir: Stream,
    dst: &'a TcpStream,
    links: &'a [Arc<Link>],
    counter: &'a AtomicU64,
    act: Active,
    rng: Rng,
    buf: Vec<u8>,
}

impl Pump<'_> {
    fn refresh(&mut self) {
        self.act
            .refresh(self.inner, self.conn, self.dir, &mut self.rng);
    }

    fn count(&self, n: usize, spliced: bool) {
        self.counter.fetch_add(n as u64, Relaxed);
        if spliced {
            self.inner.bytes_spliced.fetch_add(n as u64, Relaxed);
        }
    }

    fn feed(&self, data: &[u8]) {
        for l in self.links {
            match self.dir {
                Stream::Upstream => l.feed(data),
                Stream::Downstream => l.prod_response(data),
            }
        }
    }

    /// Holds a chunk read at `read_at` for as long as the latency toxic says (its jitter drawn
    /// once), waking at every toxic change: a latency removed (or shortened) releases it at
    /// once, a connection closing ends the wait (Abort).
    fn hold(&mut self, read_at: Instant) -> Flow {
        let Some((_, jitter)) = self.act.latency else {
            return Flow::Go;
        };
        let offset = self.rng.spread(jitter.as_millis() as u64);
        self.inner.held.fetch_add(1, Relaxed);
        let flow = loop {
            if self.conn.aborting.load(Relaxed) {
                break Flow::Abort;
            }
            let Some((latency, _)) = self.act.latency else {
                break Flow::Go;
            };
            // Both under an hour (toxic::MAX_MS): no overflow.
            let ms = (latency.as_millis() as i64 + offset).max(0) as u64;
            let due = read_at + Duration::from_millis(ms);
            let now = Instant::now();
            if now >= due {
                break Flow::Go;
            }
            // At most a tick: a closing connection is noticed without a toxic change.
            self.inner.wait_change(self.act.gen, (due - now).min(TICK));
            self.refresh();
        };
        self.inner.held.fetch_sub(1, Relaxed);
        flow
    }

    /// Forwards `buf[..n]`, read from the source, through the toxics in effect.
    fn forward(&mut self, n: usize) -> Flow {
        let read_at = Instant::now();
        let mut close_after = false;
        let mut w = self.dst;
        if self.act.any() {
            if self.act.timeout.is_none() {
                if let Flow::Abort = self.hold(read_at) {
                    return Flow::Abort;
                }
            }
            // Checked after the hold: the toxics may have changed meanwhile.
            if self.act.timeout.is_some() {
                self.inner.bytes_dropped.fetch_add(n as u64, Relaxed);
                return Flow::Go;
            }
        }
        let mut data = &self.buf[..n];
        if self.act.any() {
            if let Some((name, limit)) = self.act.limit.clone() {
                let sent = self.act.limit_sent.entry(name).or_insert(0);
                let room = limit.saturating_sub(*sent);
                if data.len() as u64 >= room {
                    data = &data[..room as usize];
                    close_after = true;
                }
                *sent += data.len() as u64;
            }
            if toxic_write(&mut w, data, &mut self.act, &mut self.rng).is_err() {
                return Flow::Abort;
            }
        } else if w.write_all(data).is_err() {
            return Flow::Abort;
        }
        self.count(data.len(), false);
        self.feed(data);
        if close_after {
            self.conn.close();
            return Flow::Abort;
        }
        Flow::Go
    }

    /// Takes the `left` bytes in `pipe` into user space, in reads of at most [`BUF`] bytes,
    /// and forwards each as if read from the source (through the toxics, if any).
    fn through_user(&mut self, pipe: &Pipe, mut left: usize) -> Flow {
        while left > 0 {
            let want = left.min(self.buf.len());
            let k = match pipe.read(&mut self.buf[..want]) {
                Ok(0) => return Flow::Abort,
                Ok(k) => k,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => return Flow::Abort,
            };
            left -= k;
            if let Flow::Abort = self.forward(k) {
                return Flow::Abort;
            }
        }
        Flow::Go
    }

    /// Forwards the `left` bytes in `pipe` to the destination without copying them. The bool
    /// is false when splice turned out unsupported: the bytes then went by copying and the
    /// pump should stop splicing.
    fn spliced(&mut self, pipe: &Pipe, mut left: usize) -> (Flow, bool) {
        while left > 0 {
            // No SPLICE_F_MORE: this may be the stream's last byte for a while, and TCP
            // would hold a partial segment back for more. Within one call the kernel
            // already sets MSG_MORE on all but the last page.
            match splice::splice_out(pipe, self.dst, left) {
                Ok(0) => return (Flow::Abort, true),
                Ok(k) => {
                    left -= k;
                    self.count(k, true);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) if splice::unsupported(&e) => return (self.through_user(pipe, left), false),
                Err(_) => return (Flow::Abort, true),
            }
        }
        (Flow::Go, true)
    }
}

#[allow(clippy::too_many_arguments)]
pub(super) fn pump(
    inner: &Inner,
    conn: &Conn,
    dir: Stream,
    src: &TcpStream,
    dst: &TcpStream,
    links: &[Arc<Link>],
    seed: u64,
) {
    let mut p = Pump {
        inner,
        conn,
        dir,
        dst,
        links,
        counter: match dir {
            Stream::Upstream => &inner.bytes_up,
            Stream::Downstream => &inner.bytes_down,
        },
        act: Active {
            gen: u64::MAX,
            ..Default::default()
        },
        rng: Rng::new(seed),
        buf: vec![0u8; BUF],
    };
    // The receive timeout also ends a splice from `src` (EAGAIN) every tick.
    let _ = src.set_read_timeout(Some(TICK));
    // Debug targets need the bytes in user space: their streams take the copy path (tee(2)
    // to a second pipe, read from there, measured no faster: docs/proxy.md#how-it-works).
    let mut zc = if links.is_empty() {
        Zc::Untried
    } else {
        Zc::Off
    };
    let mut r = src;
    let stop = loop {
        if conn.aborting.load(Relaxed) {
            break Stop::Abort;
        }
        p.refresh();
        let now = Instant::now();
        if p.act.reset_at.is_some_and(|t| now >= t) {
            conn.reset();
            break Stop::Abort;
        }
        if let Some(Some(t)) = p.act.timeout {
            if now >= t {
                conn.close();
                break Stop::Abort;
            }
        }
        // No toxic on this stream: splice. The pipe is always emptied before the next read,
        // so a toxic added later applies to every byte read after it, as on the copy path.
        if !p.act.any() {
            if let Zc::Untried = zc {
                zc = Zc::open();
            }
            if let Zc::On(pipe) = &zc {
                let n = match splice::splice_in(src, pipe, pipe.capacity()) {
                    Ok(0) => break Stop::Eof,
                    Ok(n) => n,
                    Err(e) if transient(&e) => continue,
                    Err(e) if splice::unsupported(&e) => {
                        zc = Zc::Off;
                        continue;
                    }
                    Err(_) => break Stop::Abort,
                };
                // Toxics added while the splice was blocked apply to what it returned.
                p.refresh();
                let (flow, usable) = if p.act.any() {
                    (p.through_user(pipe, n), true)
                } else {
                    p.spliced(pipe, n)
                };
                if !usable {
                    zc = Zc::Off;
                }
                match flow {
                    Flow::Go => continue,
                    Flow::Abort => break Stop::Abort,
                }
            }
        }
        let n = match r.read(&mut p.buf) {
            Ok(0) => break Stop::Eof,
            Ok(n) => n,
            Err(e) if transient(&e) => continue,
            Err(_) => break Stop::Abort,
        };
        // Toxics added while the read was blocked apply to what it returned.
        p.refresh();
        if let Flow::Abort = p.forward(n) {
            break Stop::Abort;
        }
    };
    for l in links {
        match dir {
            Stream::Upstream => l.feed_end(),
            Stream::Downstream => l.prod_response_end(),
        }
    }
    match stop {
        Stop::Eof => {
            if let Some(d) = p.act.slow_close {
                std::thread::sleep(d);
            }
            if !conn.aborting.load(Relaxed) {
                let _ = dst.shutdown(Shutdown::Write);
            }
        }
        Stop::Abort => {
            if !conn.aborting.load(Relaxed) {
                conn.close();
            }
        }
    }
    let _ = conn.id;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Error, ErrorKind};

    #[test]
    fn only_timeouts_and_interrupts_are_transient() {
        let kinds = [
            (ErrorKind::WouldBlock, true),
            (ErrorKind::TimedOut, true),
            (ErrorKind::Interrupted, true),
            (ErrorKind::ConnectionReset, false),
            (ErrorKind::BrokenPipe, false),
        ];
        for (kind, want) in kinds {
            assert_eq!(transient(&Error::from(kind)), want, "{kind:?}");
        }
    }
}
