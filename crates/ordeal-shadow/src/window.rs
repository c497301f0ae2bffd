//! The debug window: a bounded, never-blocking byte queue between production's stream and one
//! debug target's socket.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// What happened to pushed bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Push {
    /// Queued.
    Queued,
    /// They did not fit: the window is now stopped (nothing queued).
    /// Queued bytes dropped with it are in the count.
    Overflow(usize),
    /// The window was already stopped (target diverged, removed, connection gone).
    Stopped,
}

/// What the feeder gets.
#[derive(Debug)]
pub enum Pop {
    Data(Vec<u8>),
    /// Production's stream ended and everything before has been handed out.
    Eof,
    Stopped,
    Timeout,
}

#[derive(Debug, Default)]
struct State {
    chunks: VecDeque<(Vec<u8>, Instant)>,
    /// Bytes queued or handed to the feeder and not yet written.
    pending: usize,
    /// Push time of the chunk being written, if any.
    inflight_since: Option<Instant>,
    /// Length of the chunk being written.
    inflight: usize,
    eof: bool,
    stopped: bool,
    overflowed: bool,
    free: Vec<Vec<u8>>,
    pushed: u64,
    written: u64,
}

/// A per-connection bounded window of `cap` bytes. `push` never waits for the feeder: it only
/// takes a mutex the feeder holds for a few instructions.
#[derive(Debug)]
pub struct Window {
    cap: usize,
    st: Mutex<State>,
    cv: Condvar,
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A snapshot of a window.
#[derive(Debug, Clone, Copy, Default)]
pub struct WindowStat {
    pub pending: usize,
    pub remaining: usize,
    pub oldest: Option<Instant>,
    pub pushed: u64,
    pub written: u64,
    pub stopped: bool,
    pub overflowed: bool,
    pub eof: bool,
}

impl Window {
    pub fn new(cap: usize) -> Window {
        Window {
            cap,
            st: Mutex::new(State::default()),
            cv: Condvar::new(),
        }
    }

    pub fn capacity(&self) -> usize {
        self.cap
    }

    /// Queues a copy of `data`, or stops the window if it does not fit.
    pub fn push(&self, data: &[u8]) -> Push {
        let mut st = lock(&self.st);
        if st.stopped {
            return Push::Stopped;
        }
        if st.pending + data.len() > self.cap {
            st.overflowed = true;
            let dropped = Self::stop_locked(&mut st);
            drop(st);
            self.cv.notify_all();
            return Push::Overflow(dropped);
        }
        let mut v = st.free.pop().unwrap_or_default();
        v.clear();
        v.extend_from_slice(data);
        st.pending += data.len();
        st.pushed += data.len() as u64;
        st.chunks.push_back((v, Instant::now()));
        drop(st);
        self.cv.notify_one();
        Push::Queued
    }

    /// Production's stream ended: the feeder gets `Eof` once it has drained the window.
    pub fn close(&self) {
        lock(&self.st).eof = true;
        self.cv.notify_all();
    }

    fn stop_locked(st: &mut State) -> usize {
        if st.stopped {
            return 0;
        }
        st.stopped = true;
        let dropped = st.pending - st.inflight;
        st.pending = st.inflight;
        st.chunks.clear();
        st.free.clear();
        dropped
    }

    /// Stop feeding: what is queued is dropped; returns how many bytes were.
    pub fn stop(&self) -> usize {
        let mut st = lock(&self.st);
        let dropped = Self::stop_locked(&mut st);
        drop(st);
        self.cv.notify_all();
        dropped
    }

    /// Waits up to `timeout` for the next chunk. The chunk's bytes stay counted as pending
    /// until `written` is called.
    pub fn pop(&self, timeout: Duration) -> Pop {
        let deadline = Instant::now() + timeout;
        let mut st = lock(&self.st);
        loop {
            if st.stopped {
                return Pop::Stopped;
            }
            if let Some((v, t)) = st.chunks.pop_front() {
                st.inflight_since = Some(t);
                st.inflight = v.len();
                return Pop::Data(v);
            }
            if st.eof {
                return Pop::Eof;
            }
            let now = Instant::now();
            if now >= deadline {
                return Pop::Timeout;
            }
            st = self
                .cv
                .wait_timeout(st, deadline - now)
                .map(|(g, _)| g)
                .unwrap_or_else(|e| e.into_inner().0);
        }
    }

    /// The feeder wrote a popped chunk (`ok`), or failed to; it is recycled.
    pub fn written(&self, chunk: Vec<u8>, ok: bool) {
        let mut st = lock(&self.st);
        st.pending = st.pending.saturating_sub(chunk.len());
        if ok {
            st.written += chunk.len() as u64;
        }
        st.inflight_since = None;
        st.inflight = 0;
        if st.free.len() < 4 && !st.stopped {
            st.free.push(chunk);
        }
    }

    pub fn stat(&self) -> WindowStat {
        let st = lock(&self.st);
        let oldest = st
            .inflight_since
            .or_else(|| st.chunks.front().map(|(_, t)| *t));
        WindowStat {
            pending: st.pending,
            remaining: self.cap.saturating_sub(st.pending),
            oldest: if st.pending > 0 { oldest } else { None },
            pushed: st.pushed,
            written: st.written,
            stopped: st.stopped,
            overflowed: st.overflowed,
            eof: st.eof,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_and_never_blocks() {
        let w = Window::new(10);
        assert_eq!(w.push(b"12345"), Push::Queued);
        assert_eq!(w.push(b"6789"), Push::Queued);
        assert_eq!(w.stat().pending, 9);
        assert_eq!(w.stat().remaining, 1);
        let Pop::Data(c) = w.pop(Duration::ZERO) else {
            panic!("expected data")
        };
        assert_eq!(c, b"12345");
        assert_eq!(w.stat().pending, 9, "in flight still counts");
        w.written(c, true);
        assert_eq!(w.stat().pending, 4);
        assert_eq!(w.push(b"abcdefg"), Push::Overflow(4));
        assert_eq!(w.push(b"x"), Push::Stopped);
        assert!(matches!(w.pop(Duration::ZERO), Pop::Stopped));
        let s = w.stat();
        assert!(s.overflowed && s.stopped);
        assert_eq!(s.written, 5);
    }

    #[test]
    fn eof_after_data() {
        let w = Window::new(100);
        w.push(b"a");
        w.close();
        assert!(matches!(w.pop(Duration::ZERO), Pop::Data(_)));
        assert!(matches!(w.pop(Duration::ZERO), Pop::Eof));
        let w2 = Window::new(1);
        assert!(matches!(w2.pop(Duration::from_millis(1)), Pop::Timeout));
    }
}
