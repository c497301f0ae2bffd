//! Debug targets: where a proxy duplicates its client → production streams.

use crate::compare::{CompareStats, ConnCompare, Framing};
use crate::window::{Pop, Push, Window};
use crate::Error;
use serde::{Deserialize, Serialize};
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// What happens when a connection's window overflows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum OverflowPolicy {
    /// The target is marked diverged and is fed no more.
    #[default]
    Diverge,
    /// The target is cloned again from production (its recloner); new connections feed the
    /// new copy.
    Reclone,
}

impl std::str::FromStr for OverflowPolicy {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "diverge" => Ok(OverflowPolicy::Diverge),
            "reclone" => Ok(OverflowPolicy::Reclone),
            _ => Err(Error::Invalid(format!(
                "unknown overflow policy `{s}` (diverge or reclone)"
            ))),
        }
    }
}

/// A debug target's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TargetState {
    /// Being cloned: connections are buffered in their windows until its address is known.
    Starting,
    Live,
    Diverged,
    Recloning,
    Removed,
}

/// How a debug target is fed and compared.
#[derive(Debug, Clone)]
pub struct TargetConfig {
    pub name: String,
    /// `None`: the target is still starting (see [`ShadowTarget::set_live`]).
    pub addr: Option<SocketAddr>,
    /// Bytes a connection's window holds before it overflows.
    pub window: usize,
    pub policy: OverflowPolicy,
    /// Compare its responses with production's.
    pub compare: bool,
    pub framing: Framing,
    /// A clone of production's own version: its differences are noise for the others.
    pub reference: bool,
    /// Most bytes one side may get ahead of the other in a comparison.
    pub compare_limit: usize,
    /// How long a starting target may take before its connections give up.
    pub start_timeout: Duration,
}

impl TargetConfig {
    pub fn new(name: impl Into<String>, addr: Option<SocketAddr>) -> TargetConfig {
        TargetConfig {
            name: name.into(),
            addr,
            window: 4 << 20,
            policy: OverflowPolicy::Diverge,
            compare: true,
            framing: Framing::None,
            reference: false,
            compare_limit: 4 << 20,
            start_timeout: Duration::from_secs(30),
        }
    }
}

/// Called on overflow with the `reclone` policy: clone production again and call
/// [`ShadowTarget::begin_epoch`] (while production is paused) then [`ShadowTarget::set_live`].
pub type Recloner = Arc<dyn Fn(&Arc<ShadowTarget>) -> Result<(), Error> + Send + Sync>;

#[derive(Debug)]
struct TInner {
    state: TargetState,
    addr: Option<SocketAddr>,
    epoch: u64,
    reason: Option<String>,
    since: Instant,
}

/// Counters of one target.
#[derive(Debug, Default)]
struct Counters {
    connections_fed: AtomicU64,
    bytes_fed: AtomicU64,
    bytes_dropped: AtomicU64,
    bytes_received: AtomicU64,
    overflows: AtomicU64,
    reclones: AtomicU64,
    connect_failures: AtomicU64,
    write_errors: AtomicU64,
}

/// A debug target of one proxy.
pub struct ShadowTarget {
    cfg: TargetConfig,
    inner: Mutex<TInner>,
    cv: Condvar,
    links: Mutex<Vec<Arc<Link>>>,
    c: Counters,
    compare: Mutex<CompareStats>,
    recloner: Mutex<Option<Recloner>>,
}

impl std::fmt::Debug for ShadowTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShadowTarget")
            .field("name", &self.cfg.name)
            .finish()
    }
}

/// A target's report, live and at the end.
#[derive(Debug, Clone, Serialize)]
pub struct TargetReport {
    pub name: String,
    pub state: TargetState,
    pub addr: Option<String>,
    pub policy: OverflowPolicy,
    pub reference: bool,
    pub window_bytes: usize,
    pub connections_fed: u64,
    pub connections_active: usize,
    pub bytes_fed: u64,
    /// Lag: bytes production received that this target has not been sent yet.
    pub lag_bytes: usize,
    /// Lag: age of the oldest byte not yet sent.
    pub lag_seconds: f64,
    /// The smallest room left in an active connection's window (`null`: none active).
    pub remaining_window: Option<usize>,
    pub overflows: u64,
    pub reclones: u64,
    /// Bytes production received while this target was not being fed (after an overflow).
    pub bytes_not_fed: u64,
    pub bytes_received: u64,
    pub connect_failures: u64,
    pub write_errors: u64,
    pub reason: Option<String>,
    pub comparison: Option<CompareStats>,
}

impl TargetReport {
    /// One line: state, lag, window left, connections fed, overflows, comparison counts.
    pub fn status_line(&self) -> String {
        let diffs = self
            .comparison
            .as_ref()
            .map(|c| {
                let real = c
                    .real_differences
                    .map(|x| format!(" ({x} real)"))
                    .unwrap_or_default();
                format!(
                    ", conns same/diff {}/{}, msgs same/diff {}/{}{real}",
                    c.connections_identical,
                    c.connections_different,
                    c.messages_identical,
                    c.messages_different
                )
            })
            .unwrap_or_default();
        // Lower case throughout (states are Debug-printed), except the target's own name.
        format!(
            "{}: {:?}, lag {} B / {:.3} s, window left {}, conns fed {}, overflows {}{diffs}",
            self.name,
            self.state,
            self.lag_bytes,
            self.lag_seconds,
            self.remaining_window
                .map_or("-".to_string(), |x| format!("{x} B")),
            self.connections_fed,
            self.overflows
        )
        .to_lowercase()
        .replacen(&self.name.to_lowercase(), &self.name, 1)
    }
}

impl ShadowTarget {
    pub(crate) fn new(cfg: TargetConfig) -> Arc<ShadowTarget> {
        let state = if cfg.addr.is_some() {
            TargetState::Live
        } else {
            TargetState::Starting
        };
        Arc::new(ShadowTarget {
            inner: Mutex::new(TInner {
                state,
                addr: cfg.addr,
                epoch: 0,
                reason: None,
                since: Instant::now(),
            }),
            cfg,
            cv: Condvar::new(),
            links: Mutex::new(Vec::new()),
            c: Counters::default(),
            compare: Mutex::new(CompareStats::default()),
            recloner: Mutex::new(None),
        })
    }

    pub fn name(&self) -> &str {
        &self.cfg.name
    }

    pub fn config(&self) -> &TargetConfig {
        &self.cfg
    }

    pub fn state(&self) -> TargetState {
        lock(&self.inner).state
    }

    pub fn set_recloner(&self, r: Recloner) {
        *lock(&self.recloner) = Some(r);
    }

    /// A new copy is being made: connections from now on are buffered for it.
    pub fn begin_epoch(&self) {
        let mut i = lock(&self.inner);
        i.epoch += 1;
        i.state = TargetState::Starting;
        i.addr = None;
        i.since = Instant::now();
        drop(i);
        self.cv.notify_all();
    }

    /// The copy is up at `addr`.
    pub fn set_live(&self, addr: SocketAddr) {
        let mut i = lock(&self.inner);
        if i.state == TargetState::Removed {
            return;
        }
        i.state = TargetState::Live;
        i.addr = Some(addr);
        drop(i);
        self.cv.notify_all();
    }

    /// The target cannot be fed any more.
    pub fn fail(&self, reason: impl Into<String>) {
        self.stop_all(TargetState::Diverged, Some(reason.into()));
    }

    pub(crate) fn remove(&self) {
        self.stop_all(TargetState::Removed, None);
    }

    fn stop_all(&self, state: TargetState, reason: Option<String>) {
        {
            let mut i = lock(&self.inner);
            if i.state == TargetState::Removed {
                return;
            }
            i.state = state;
            if reason.is_some() {
                i.reason = reason;
            }
        }
        self.cv.notify_all();
        for l in lock(&self.links).iter() {
            let dropped = l.window.stop();
            self.c.bytes_dropped.fetch_add(dropped as u64, Relaxed);
            if let Some(s) = lock(&l.sock).as_ref() {
                let _ = s.shutdown(Shutdown::Both);
            }
        }
    }

    /// Whether a new connection is to be fed, and in which epoch.
    fn accepting(&self) -> Option<u64> {
        let i = lock(&self.inner);
        matches!(i.state, TargetState::Live | TargetState::Starting).then_some(i.epoch)
    }

    fn wait_addr(&self, epoch: u64) -> Option<SocketAddr> {
        let deadline = Instant::now() + self.cfg.start_timeout;
        let mut i = lock(&self.inner);
        loop {
            if i.epoch != epoch {
                return None;
            }
            match i.state {
                TargetState::Live => return i.addr,
                TargetState::Starting => {}
                _ => return None,
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            i = self
                .cv
                .wait_timeout(i, deadline - now)
                .map(|(g, _)| g)
                .unwrap_or_else(|e| e.into_inner().0);
        }
    }

    fn overflow(self: &Arc<Self>) {
        self.c.overflows.fetch_add(1, Relaxed);
        match self.cfg.policy {
            OverflowPolicy::Diverge => self.stop_all(
                TargetState::Diverged,
                Some("a connection's debug window overflowed".into()),
            ),
            OverflowPolicy::Reclone => {
                let r = lock(&self.recloner).clone();
                match r {
                    None => self.stop_all(
                        TargetState::Diverged,
                        Some("window overflowed and no recloner is set".into()),
                    ),
                    Some(r) => {
                        self.stop_all(TargetState::Recloning, None);
                        let me = Arc::clone(self);
                        std::thread::spawn(move || match r(&me) {
                            Ok(()) => {
                                me.c.reclones.fetch_add(1, Relaxed);
                            }
                            Err(e) => me.fail(format!("re-clone failed: {}", e.chain_text())),
                        });
                    }
                }
            }
        }
    }

    /// The comparison statistics so far.
    /// Whether a production connection's copy is still being fed to this target or its
    /// answers read (a comparison may still change).
    pub(crate) fn feeding(&self) -> bool {
        !lock(&self.links).is_empty()
    }

    pub fn compare_stats(&self) -> CompareStats {
        lock(&self.compare).clone()
    }

    pub fn report(&self) -> TargetReport {
        let i = lock(&self.inner);
        let (state, addr, reason) = (i.state, i.addr, i.reason.clone());
        drop(i);
        let links = lock(&self.links).clone();
        let now = Instant::now();
        let mut lag_bytes = 0;
        let mut oldest: Option<Instant> = None;
        let mut remaining: Option<usize> = None;
        let mut active = 0;
        for l in &links {
            let s = l.window.stat();
            if s.stopped {
                continue;
            }
            active += 1;
            lag_bytes += s.pending;
            if let Some(t) = s.oldest {
                oldest = Some(oldest.map_or(t, |o: Instant| o.min(t)));
            }
            remaining = Some(remaining.map_or(s.remaining, |r: usize| r.min(s.remaining)));
        }
        TargetReport {
            name: self.cfg.name.clone(),
            state,
            addr: addr.map(|a| a.to_string()),
            policy: self.cfg.policy,
            reference: self.cfg.reference,
            window_bytes: self.cfg.window,
            connections_fed: self.c.connections_fed.load(Relaxed),
            connections_active: active,
            bytes_fed: self.c.bytes_fed.load(Relaxed),
            lag_bytes,
            lag_seconds: oldest.map_or(0.0, |t| now.duration_since(t).as_secs_f64()),
            remaining_window: remaining,
            overflows: self.c.overflows.load(Relaxed),
            reclones: self.c.reclones.load(Relaxed),
            bytes_not_fed: self.c.bytes_dropped.load(Relaxed),
            bytes_received: self.c.bytes_received.load(Relaxed),
            connect_failures: self.c.connect_failures.load(Relaxed),
            write_errors: self.c.write_errors.load(Relaxed),
            reason,
            comparison: self.cfg.compare.then(|| self.compare_stats()),
        }
    }
}

/// One production connection's feed to one target.
pub(crate) struct Link {
    conn: u64,
    epoch: u64,
    window: Window,
    target: Arc<ShadowTarget>,
    compare: Option<Mutex<ConnCompare>>,
    sock: Mutex<Option<TcpStream>>,
    prod_done_at: Mutex<Option<Instant>>,
    proxy_closed: Arc<AtomicBool>,
}

impl Link {
    /// Opens a feed of connection `conn` to `target` if it accepts new connections.
    pub(crate) fn open(
        target: &Arc<ShadowTarget>,
        conn: u64,
        proxy_closed: Arc<AtomicBool>,
    ) -> Option<Arc<Link>> {
        let epoch = target.accepting()?;
        let cfg = &target.cfg;
        let link = Arc::new(Link {
            conn,
            epoch,
            window: Window::new(cfg.window),
            target: Arc::clone(target),
            compare: cfg
                .compare
                .then(|| Mutex::new(ConnCompare::new(conn, cfg.framing, cfg.compare_limit))),
            sock: Mutex::new(None),
            prod_done_at: Mutex::new(None),
            proxy_closed,
        });
        target.c.connections_fed.fetch_add(1, Relaxed);
        lock(&target.links).push(Arc::clone(&link));
        let l = Arc::clone(&link);
        let spawned = std::thread::Builder::new()
            .name(format!("shadow-feed-{conn}"))
            .spawn(move || l.feeder());
        if spawned.is_err() {
            link.stop_window();
            link.finish(false);
        }
        Some(link)
    }

    fn stop_window(&self) {
        let dropped = self.window.stop();
        self.target
            .c
            .bytes_dropped
            .fetch_add(dropped as u64, Relaxed);
    }

    /// Bytes production received from the client.
    pub(crate) fn feed(self: &Arc<Self>, data: &[u8]) {
        match self.window.push(data) {
            Push::Queued => {}
            Push::Overflow(queued) => {
                self.target
                    .c
                    .bytes_dropped
                    .fetch_add((data.len() + queued) as u64, Relaxed);
                self.target.overflow();
            }
            Push::Stopped => {
                self.target
                    .c
                    .bytes_dropped
                    .fetch_add(data.len() as u64, Relaxed);
            }
        }
    }

    /// The client's stream to production ended.
    pub(crate) fn feed_end(&self) {
        self.window.close();
    }

    /// Bytes production answered.
    pub(crate) fn prod_response(&self, data: &[u8]) {
        if let Some(c) = &self.compare {
            let mut c = lock(c);
            c.push(true, data, &mut lock(&self.target.compare));
        }
    }

    pub(crate) fn prod_response_end(&self) {
        *lock(&self.prod_done_at) = Some(Instant::now());
        if let Some(c) = &self.compare {
            let mut c = lock(c);
            c.end(true, &mut lock(&self.target.compare));
        }
    }

    fn feeder(self: Arc<Self>) {
        let Some(addr) = self.target.wait_addr(self.epoch) else {
            self.stop_window();
            self.finish(false);
            return;
        };
        // The copy may still be binding its port: retry refused connections for a while.
        let deadline = Instant::now() + self.target.cfg.start_timeout;
        let sock = loop {
            match TcpStream::connect_timeout(&addr, Duration::from_secs(5)) {
                Ok(s) => break Some(s),
                Err(_) if Instant::now() < deadline && !self.window.stat().stopped => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(_) => break None,
            }
        };
        let Some(sock) = sock else {
            self.target.c.connect_failures.fetch_add(1, Relaxed);
            self.stop_window();
            self.finish(false);
            return;
        };
        let _ = sock.set_nodelay(true);
        let reader = sock.try_clone();
        *lock(&self.sock) = sock.try_clone().ok();
        if self.window.stat().stopped {
            let _ = sock.shutdown(Shutdown::Both);
        }
        let drain = match reader {
            Ok(r) => {
                let me = Arc::clone(&self);
                std::thread::Builder::new()
                    .name(format!("shadow-drain-{}", self.conn))
                    .spawn(move || me.drain(r))
                    .ok()
            }
            Err(_) => None,
        };
        let mut w = &sock;
        loop {
            match self.window.pop(Duration::from_millis(200)) {
                Pop::Data(chunk) => {
                    if w.write_all(&chunk).is_err() {
                        // Counted as not fed, even if part of it went out.
                        let c = &self.target.c;
                        c.bytes_dropped.fetch_add(chunk.len() as u64, Relaxed);
                        if !self.window.stat().stopped {
                            c.write_errors.fetch_add(1, Relaxed);
                        }
                        self.window.written(chunk, false);
                        self.stop_window();
                        let _ = sock.shutdown(Shutdown::Both);
                        break;
                    }
                    self.target
                        .c
                        .bytes_fed
                        .fetch_add(chunk.len() as u64, Relaxed);
                    self.window.written(chunk, true);
                }
                Pop::Eof => {
                    let _ = sock.shutdown(Shutdown::Write);
                    break;
                }
                Pop::Stopped => {
                    let _ = sock.shutdown(Shutdown::Both);
                    break;
                }
                Pop::Timeout => {
                    if self.proxy_closed.load(Relaxed) {
                        self.stop_window();
                        let _ = sock.shutdown(Shutdown::Both);
                        break;
                    }
                }
            }
        }
        if drain.is_none() {
            self.finish(false);
        }
    }

    fn drain(self: Arc<Self>, sock: TcpStream) {
        let _ = sock.set_read_timeout(Some(Duration::from_millis(100)));
        let mut buf = vec![0u8; 64 * 1024];
        let mut r = &sock;
        let grace = Duration::from_secs(5);
        let complete = loop {
            match r.read(&mut buf) {
                Ok(0) => break !self.window.stat().overflowed,
                Ok(n) => {
                    self.target.c.bytes_received.fetch_add(n as u64, Relaxed);
                    if let Some(c) = &self.compare {
                        let mut c = lock(c);
                        c.push(false, &buf[..n], &mut lock(&self.target.compare));
                    }
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock
                            | std::io::ErrorKind::TimedOut
                            | std::io::ErrorKind::Interrupted
                    ) =>
                {
                    let s = self.window.stat();
                    if s.stopped || self.proxy_closed.load(Relaxed) {
                        break false;
                    }
                    let done = *lock(&self.prod_done_at);
                    if s.eof && s.pending == 0 && done.is_some_and(|t| t.elapsed() > grace) {
                        // The target never closed: compare what it sent.
                        break true;
                    }
                }
                Err(_) => break false,
            }
        };
        let _ = sock.shutdown(Shutdown::Both);
        self.finish(complete);
    }

    fn finish(&self, complete: bool) {
        if let Some(c) = &self.compare {
            let mut c = lock(c);
            let mut st = lock(&self.target.compare);
            if complete && lock(&self.prod_done_at).is_some() {
                c.end(false, &mut st);
            } else if complete {
                // Production's side is still open: its end completes the comparison.
                c.end(false, &mut st);
            } else {
                c.abandon(&mut st);
            }
        }
        let mut links = lock(&self.target.links);
        links.retain(|l| !std::ptr::eq(Arc::as_ptr(l), self));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overflow_policies_parse_by_name() {
        assert_eq!(
            "reclone".parse::<OverflowPolicy>().unwrap(),
            OverflowPolicy::Reclone
        );
        assert_eq!(
            "diverge".parse::<OverflowPolicy>().unwrap(),
            OverflowPolicy::Diverge
        );
        assert_eq!(
            "retry".parse::<OverflowPolicy>().unwrap_err().to_string(),
            "unknown overflow policy `retry` (diverge or reclone)"
        );
    }
}
