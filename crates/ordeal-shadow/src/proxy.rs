//! The TCP proxy: production traffic, toxics, duplication to debug targets.
//!
//! The proxy handle and its API live here; its parts are submodules: `connection` (accept loop
//! and per-connection setup), `pump` (one direction of a connection: splice or copy path) and
//! `active` (the toxics in effect on one stream).
//!
//! Invariant: the counters in `Inner` only grow; `conns` holds the connections being served,
//! and is what [`Proxy::stats`] reports as active and [`Proxy::wait_idle`] waits to empty.

use crate::shadow::{lock, ShadowTarget, TargetConfig, TargetReport};
use crate::toxic::{Effect, Toxic};
use crate::Error;
use connection::{accept_loop, Conn};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

mod active;
mod connection;
mod pump;

/// How often an idle pump looks at time-based toxics and shutdown.
const TICK: Duration = Duration::from_millis(50);

/// A proxy as the API creates it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProxyConfig {
    pub name: String,
    /// Address to listen on (`127.0.0.1:0` picks a port).
    pub listen: String,
    /// Production's address, resolved at every connection.
    pub upstream: String,
    #[serde(default = "yes")]
    pub enabled: bool,
}

fn yes() -> bool {
    true
}

/// Counters of one proxy.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ProxyStats {
    pub connections: u64,
    pub connections_active: usize,
    pub upstream_failures: u64,
    pub bytes_upstream: u64,
    pub bytes_downstream: u64,
    /// Bytes dropped by `timeout` toxics.
    pub bytes_dropped: u64,
    /// Of `bytes_upstream` + `bytes_downstream`, those forwarded with splice(2), without a
    /// copy through user space (streams without toxics).
    pub bytes_spliced: u64,
}

/// The API's view of a proxy (Toxiproxy's fields, plus ordeal's `stats` and `shadow`).
#[derive(Debug, Clone, Serialize)]
pub struct ProxyView {
    pub name: String,
    pub listen: String,
    pub upstream: String,
    pub enabled: bool,
    pub toxics: Vec<Toxic>,
    pub stats: ProxyStats,
    pub shadow: Vec<TargetReport>,
}

struct ToxicEntry {
    toxic: Toxic,
    effect: Effect,
    added: Instant,
}

struct Inner {
    name: String,
    listen: Mutex<SocketAddr>,
    upstream: Mutex<String>,
    enabled: AtomicBool,
    toxics: RwLock<Vec<ToxicEntry>>,
    toxic_gen: AtomicU64,
    /// Signalled (under `change_lock`) each time `toxic_gen` moves: a pump holding a chunk
    /// for a latency toxic wakes at once when that toxic goes.
    change_lock: Mutex<()>,
    changed: Condvar,
    /// Chunks held by a latency toxic right now.
    held: AtomicUsize,
    targets: RwLock<Vec<Arc<ShadowTarget>>>,
    conns: Mutex<HashMap<u64, Arc<Conn>>>,
    next_conn: AtomicU64,
    accept: Mutex<Option<(Arc<AtomicBool>, JoinHandle<()>)>>,
    closed: Arc<AtomicBool>,
    connections: AtomicU64,
    upstream_failures: AtomicU64,
    bytes_up: AtomicU64,
    bytes_down: AtomicU64,
    bytes_dropped: AtomicU64,
    bytes_spliced: AtomicU64,
    seed: AtomicU64,
}

/// A running proxy. Cloning gives another handle to the same proxy; [`Proxy::shutdown`] (or
/// dropping the [`crate::Registry`] that owns it) stops it.
#[derive(Clone)]
pub struct Proxy(Arc<Inner>);

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy").field("name", &self.0.name).finish()
    }
}

pub(crate) fn resolve(addr: &str) -> Result<SocketAddr, Error> {
    addr.to_socket_addrs()
        .map_err(|e| Error::Io {
            context: format!("resolving {addr}"),
            source: e,
        })?
        .next()
        .ok_or_else(|| Error::Invalid(format!("{addr}: no address")))
}

impl Inner {
    /// The toxics changed: a new generation, and every waiting pump woken.
    fn toxics_changed(&self) {
        self.toxic_gen.fetch_add(1, Relaxed);
        let _g = lock(&self.change_lock);
        self.changed.notify_all();
    }

    /// Waits up to `timeout` for the toxics to move past generation `seen`.
    fn wait_change(&self, seen: u64, timeout: Duration) {
        let g = lock(&self.change_lock);
        if self.toxic_gen.load(Relaxed) != seen {
            return;
        }
        let _ = self.changed.wait_timeout(g, timeout);
    }
}

impl Proxy {
    /// Binds `cfg.listen` (if enabled) and starts accepting.
    pub fn start(cfg: ProxyConfig) -> Result<Proxy, Error> {
        if cfg.name.is_empty() {
            return Err(Error::Invalid("a proxy needs a name".into()));
        }
        let listen = resolve(&cfg.listen)?;
        let p = Proxy(Arc::new(Inner {
            name: cfg.name,
            listen: Mutex::new(listen),
            upstream: Mutex::new(cfg.upstream),
            enabled: AtomicBool::new(false),
            toxics: RwLock::new(Vec::new()),
            toxic_gen: AtomicU64::new(0),
            change_lock: Mutex::new(()),
            changed: Condvar::new(),
            held: AtomicUsize::new(0),
            targets: RwLock::new(Vec::new()),
            conns: Mutex::new(HashMap::new()),
            next_conn: AtomicU64::new(0),
            accept: Mutex::new(None),
            closed: Arc::new(AtomicBool::new(false)),
            connections: AtomicU64::new(0),
            upstream_failures: AtomicU64::new(0),
            bytes_up: AtomicU64::new(0),
            bytes_down: AtomicU64::new(0),
            bytes_dropped: AtomicU64::new(0),
            bytes_spliced: AtomicU64::new(0),
            seed: AtomicU64::new(0x5eed),
        }));
        if cfg.enabled {
            p.set_enabled(true)?;
        }
        Ok(p)
    }

    pub fn name(&self) -> &str {
        &self.0.name
    }

    /// The address it listens on (the real port once bound).
    pub fn listen_addr(&self) -> SocketAddr {
        *lock(&self.0.listen)
    }

    pub fn upstream(&self) -> String {
        lock(&self.0.upstream).clone()
    }

    pub fn set_upstream(&self, upstream: String) {
        *lock(&self.0.upstream) = upstream;
    }

    pub fn enabled(&self) -> bool {
        self.0.enabled.load(Relaxed)
    }

    /// Enabling binds the listen address again; disabling (the `down` toxic of Toxiproxy)
    /// stops listening and closes every connection.
    pub fn set_enabled(&self, on: bool) -> Result<(), Error> {
        let mut acc = lock(&self.0.accept);
        if on == self.enabled() && (acc.is_some() || !on) {
            return Ok(());
        }
        if on {
            let addr = *lock(&self.0.listen);
            let l = TcpListener::bind(addr).map_err(|e| Error::Io {
                context: format!("proxy {}: listening on {addr}", self.0.name),
                source: e,
            })?;
            l.set_nonblocking(true).map_err(|e| Error::Io {
                context: "setting the listener non-blocking".into(),
                source: e,
            })?;
            if let Ok(a) = l.local_addr() {
                *lock(&self.0.listen) = a;
            }
            let stop = Arc::new(AtomicBool::new(false));
            let inner = Arc::clone(&self.0);
            let s = Arc::clone(&stop);
            let h = std::thread::Builder::new()
                .name(format!("proxy-{}", self.0.name))
                .spawn(move || accept_loop(inner, l, s))
                .map_err(|e| Error::Io {
                    context: "spawning the accept thread".into(),
                    source: e,
                })?;
            *acc = Some((stop, h));
            self.0.enabled.store(true, Relaxed);
        } else {
            self.0.enabled.store(false, Relaxed);
            // Pumps holding data wake and see their connection closing.
            self.0.toxics_changed();
            if let Some((stop, h)) = acc.take() {
                stop.store(true, Relaxed);
                let _ = h.join();
            }
            let conns: Vec<_> = lock(&self.0.conns).values().cloned().collect();
            for c in conns {
                c.close();
            }
        }
        Ok(())
    }

    pub fn toxics(&self) -> Vec<Toxic> {
        self.0
            .toxics
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|t| t.toxic.clone())
            .collect()
    }

    /// Adds a toxic; it acts on existing connections too. Names are unique per proxy.
    pub fn add_toxic(&self, toxic: Toxic) -> Result<Toxic, Error> {
        let effect = toxic.effect()?;
        let mut ts = self.0.toxics.write().unwrap_or_else(|e| e.into_inner());
        if ts.iter().any(|t| t.toxic.name == toxic.name) {
            return Err(Error::Conflict(format!(
                "toxic {} already exists",
                toxic.name
            )));
        }
        ts.push(ToxicEntry {
            toxic: toxic.clone(),
            effect,
            added: Instant::now(),
        });
        self.0.toxics_changed();
        Ok(toxic)
    }

    /// Replaces a toxic's attributes (and toxicity); its start time is kept.
    pub fn update_toxic(&self, toxic: Toxic) -> Result<Toxic, Error> {
        let effect = toxic.effect()?;
        let mut ts = self.0.toxics.write().unwrap_or_else(|e| e.into_inner());
        let Some(t) = ts.iter_mut().find(|t| t.toxic.name == toxic.name) else {
            return Err(Error::NotFound(format!("toxic {} not found", toxic.name)));
        };
        t.toxic = toxic.clone();
        t.effect = effect;
        self.0.toxics_changed();
        Ok(toxic)
    }

    pub fn remove_toxic(&self, name: &str) -> Result<(), Error> {
        let mut ts = self.0.toxics.write().unwrap_or_else(|e| e.into_inner());
        let before = ts.len();
        ts.retain(|t| t.toxic.name != name);
        if ts.len() == before {
            return Err(Error::NotFound(format!("toxic {name} not found")));
        }
        self.0.toxics_changed();
        Ok(())
    }

    pub fn clear_toxics(&self) {
        self.0
            .toxics
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        self.0.toxics_changed();
    }

    /// Adds a debug target: connections accepted from now on are duplicated to it.
    pub fn add_shadow(&self, cfg: TargetConfig) -> Result<Arc<ShadowTarget>, Error> {
        if cfg.window == 0 {
            return Err(Error::Invalid(
                "a debug window must be at least 1 byte".into(),
            ));
        }
        let mut ts = self.0.targets.write().unwrap_or_else(|e| e.into_inner());
        if ts.iter().any(|t| t.name() == cfg.name) {
            return Err(Error::Conflict(format!(
                "target {} already exists",
                cfg.name
            )));
        }
        let t = ShadowTarget::new(cfg);
        ts.push(Arc::clone(&t));
        Ok(t)
    }

    pub fn targets(&self) -> Vec<Arc<ShadowTarget>> {
        self.0
            .targets
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Reports of every target, with the noise of reference targets filtered from the others.
    pub fn shadow_reports(&self) -> Vec<TargetReport> {
        let targets = self.targets();
        let reference: Option<crate::compare::CompareStats> = targets
            .iter()
            .find(|t| t.config().reference && t.config().compare)
            .map(|t| t.compare_stats());
        targets
            .iter()
            .map(|t| {
                let mut r = t.report();
                if let (Some(refst), Some(c), false) =
                    (&reference, r.comparison.as_mut(), t.config().reference)
                {
                    let mut full = t.compare_stats();
                    full.filter_noise(refst);
                    c.real_differences = full.real_differences;
                    c.noise_differences = full.noise_differences;
                }
                r
            })
            .collect()
    }

    pub fn stats(&self) -> ProxyStats {
        ProxyStats {
            connections: self.0.connections.load(Relaxed),
            connections_active: lock(&self.0.conns).len(),
            upstream_failures: self.0.upstream_failures.load(Relaxed),
            bytes_upstream: self.0.bytes_up.load(Relaxed),
            bytes_downstream: self.0.bytes_down.load(Relaxed),
            bytes_dropped: self.0.bytes_dropped.load(Relaxed),
            bytes_spliced: self.0.bytes_spliced.load(Relaxed),
        }
    }

    pub fn view(&self) -> ProxyView {
        ProxyView {
            name: self.0.name.clone(),
            listen: self.listen_addr().to_string(),
            upstream: self.upstream(),
            enabled: self.enabled(),
            toxics: self.toxics(),
            stats: self.stats(),
            shadow: self.shadow_reports(),
        }
    }

    /// Stops listening, closes every connection and stops feeding every target.
    pub fn shutdown(&self) {
        let _ = self.set_enabled(false);
        self.0.closed.store(true, Relaxed);
        for t in self.targets() {
            t.remove();
        }
    }

    /// Waits until every shadow target has been fed all it was sent and has answered (or
    /// `timeout`); true if so. Call after [`Proxy::wait_idle`]: a client's connection can close
    /// while its copy is still being answered, and a report taken then misses those answers.
    pub fn wait_shadows_done(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if !self.targets().iter().any(|t| t.feeding()) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Waits until no connection is open (or `timeout`); true if none is.
    pub fn wait_idle(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if lock(&self.0.conns).is_empty() {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::toxic::Stream;
    use std::io::{Read, Write};
    use std::net::TcpStream;

    /// A proxy to a server that writes `hello` to each connection and keeps it open, with a
    /// latency toxic of `ms` downstream; a client connected through it, whose `hello` the
    /// proxy holds.
    fn holding(
        ms: u64,
    ) -> (
        Arc<crate::api::Registry>,
        Proxy,
        TcpStream,
        std::thread::JoinHandle<()>,
    ) {
        let server = TcpListener::bind("127.0.0.1:0").unwrap();
        let upstream = server.local_addr().unwrap().to_string();
        let serving = std::thread::spawn(move || {
            let (mut s, _) = server.accept().unwrap();
            s.write_all(b"hello").unwrap();
            // Open until the proxy closes its side.
            let _ = s.read(&mut [0u8; 1]);
        });
        let reg = crate::api::Registry::new();
        let p = reg
            .create(ProxyConfig {
                name: "p".into(),
                listen: "127.0.0.1:0".into(),
                upstream,
                enabled: true,
            })
            .unwrap();
        p.add_toxic(Toxic::new(
            "latency",
            Stream::Downstream,
            &[("latency", ms)],
        ))
        .unwrap();
        let c = TcpStream::connect(p.listen_addr()).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while p.0.held.load(Relaxed) == 0 {
            assert!(Instant::now() < deadline, "the proxy never held the chunk");
            std::thread::park_timeout(Duration::from_millis(5));
        }
        (reg, p, c, serving)
    }

    fn read_hello(c: &mut TcpStream) -> Vec<u8> {
        let mut got = [0u8; 5];
        c.read_exact(&mut got)
            .expect("the held bytes were released");
        got.to_vec()
    }

    /// A 60 s latency removed while it holds data releases the data at once (it used to be
    /// delivered at 60 s all the same); the client's 20 s read timeout is the proof.
    #[test]
    fn removing_a_latency_releases_what_it_holds() {
        let (_reg, p, mut c, serving) = holding(60_000);
        p.remove_toxic("latency_downstream").unwrap();
        assert_eq!(read_hello(&mut c), b"hello");
        assert_eq!(p.0.held.load(Relaxed), 0);
        drop(c);
        assert!(p.wait_idle(Duration::from_secs(10)), "a connection stuck");
        p.shutdown();
        serving.join().unwrap();
    }

    /// The registry's reset (`POST /reset`) with the longest latency accepted: the data goes
    /// at once and no connection stays stuck.
    #[test]
    fn a_reset_leaves_no_connection_stuck() {
        let (reg, p, mut c, serving) = holding(crate::toxic::MAX_MS - 1);
        reg.reset().unwrap();
        assert_eq!(read_hello(&mut c), b"hello");
        drop(c);
        assert!(p.wait_idle(Duration::from_secs(10)), "a connection stuck");
        p.shutdown();
        serving.join().unwrap();
    }

    /// Closing the proxy ends a hold without waiting for the latency.
    #[test]
    fn shutting_down_ends_a_hold() {
        let (_reg, p, c, serving) = holding(60_000);
        p.shutdown();
        assert!(p.wait_idle(Duration::from_secs(10)), "a connection stuck");
        assert_eq!(p.0.held.load(Relaxed), 0);
        drop(c);
        serving.join().unwrap();
    }
}
