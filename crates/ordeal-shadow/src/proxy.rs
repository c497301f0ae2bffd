//! The TCP proxy: production traffic, toxics, duplication to debug targets.

use crate::splice;

use crate::shadow::{lock, Link, ShadowTarget, TargetConfig, TargetReport};
use crate::toxic::{Effect, Rng, Stream, Toxic};
use crate::Error;
use serde::{Deserialize, Serialize};
use splice::Pipe;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Size of a pump's read buffer.
const BUF: usize = 256 * 1024;
/// Size asked for a splice pipe: as much as a copy-path read. 1 MiB measured no faster and
/// uses 4× the pipe quota of an unprivileged user (`/proc/sys/fs/pipe-user-pages-soft`).
const PIPE: usize = BUF;
/// Below this, a pipe (one the kernel shrank: its user is over the pipe quota) makes splice
/// slower than copying (8 KiB: half the throughput), so the copy path is used.
const MIN_PIPE: usize = 64 * 1024;
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

struct Conn {
    id: u64,
    client: TcpStream,
    upstream: TcpStream,
    start: Instant,
    /// Set when a toxic ends the connection: pumps stop without a graceful close.
    aborting: AtomicBool,
}

impl Conn {
    fn close(&self) {
        self.aborting.store(true, Relaxed);
        let _ = self.client.shutdown(Shutdown::Both);
        let _ = self.upstream.shutdown(Shutdown::Both);
    }

    /// RST to the client: linger 0, no FIN; the close happens when the last handle drops.
    fn reset(&self) {
        self.aborting.store(true, Relaxed);
        let l = libc::linger {
            l_onoff: 1,
            l_linger: 0,
        };
        // SAFETY: a valid fd and a correctly sized option value.
        unsafe {
            libc::setsockopt(
                self.client.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_LINGER,
                &l as *const libc::linger as *const libc::c_void,
                std::mem::size_of::<libc::linger>() as libc::socklen_t,
            );
        }
        let _ = self.client.shutdown(Shutdown::Read);
        let _ = self.upstream.shutdown(Shutdown::Both);
    }
}

struct Inner {
    name: String,
    listen: Mutex<SocketAddr>,
    upstream: Mutex<String>,
    enabled: AtomicBool,
    toxics: RwLock<Vec<ToxicEntry>>,
    toxic_gen: AtomicU64,
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

fn resolve(addr: &str) -> Result<SocketAddr, Error> {
    addr.to_socket_addrs()
        .map_err(|e| Error::Io {
            context: format!("resolving {addr}"),
            source: e,
        })?
        .next()
        .ok_or_else(|| Error::Invalid(format!("{addr}: no address")))
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
        self.0.toxic_gen.fetch_add(1, Relaxed);
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
        self.0.toxic_gen.fetch_add(1, Relaxed);
        Ok(toxic)
    }

    pub fn remove_toxic(&self, name: &str) -> Result<(), Error> {
        let mut ts = self.0.toxics.write().unwrap_or_else(|e| e.into_inner());
        let before = ts.len();
        ts.retain(|t| t.toxic.name != name);
        if ts.len() == before {
            return Err(Error::NotFound(format!("toxic {name} not found")));
        }
        self.0.toxic_gen.fetch_add(1, Relaxed);
        Ok(())
    }

    pub fn clear_toxics(&self) {
        self.0
            .toxics
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        self.0.toxic_gen.fetch_add(1, Relaxed);
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

fn accept_loop(inner: Arc<Inner>, l: TcpListener, stop: Arc<AtomicBool>) {
    let mut pfd = libc::pollfd {
        fd: l.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    while !stop.load(Relaxed) {
        // SAFETY: one valid pollfd.
        let r = unsafe { libc::poll(&mut pfd, 1, TICK.as_millis() as i32) };
        if r <= 0 {
            continue;
        }
        loop {
            match l.accept() {
                Ok((s, _)) => {
                    let inner = Arc::clone(&inner);
                    let _ = std::thread::Builder::new()
                        .name("proxy-conn".into())
                        .spawn(move || handle(inner, s));
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(_) => {
                    // EMFILE and the like: back off rather than spin.
                    std::thread::sleep(Duration::from_millis(10));
                    break;
                }
            }
        }
    }
}

fn handle(inner: Arc<Inner>, client: TcpStream) {
    let _ = client.set_nonblocking(false);
    let upstream = lock(&inner.upstream).clone();
    let up = resolve(&upstream)
        .ok()
        .and_then(|a| TcpStream::connect_timeout(&a, Duration::from_secs(5)).ok());
    let Some(up) = up else {
        inner.upstream_failures.fetch_add(1, Relaxed);
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = up.set_nodelay(true);
    let id = inner.next_conn.fetch_add(1, Relaxed);
    inner.connections.fetch_add(1, Relaxed);
    let (Ok(c2), Ok(u2)) = (client.try_clone(), up.try_clone()) else {
        return;
    };
    let conn = Arc::new(Conn {
        id,
        client: c2,
        upstream: u2,
        start: Instant::now(),
        aborting: AtomicBool::new(false),
    });
    lock(&inner.conns).insert(id, Arc::clone(&conn));
    if !inner.enabled.load(Relaxed) {
        conn.close();
    }
    let links: Vec<Arc<Link>> = inner
        .targets
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .filter_map(|t| Link::open(t, id, Arc::clone(&inner.closed)))
        .collect();
    let links = Arc::new(links);
    let seed = inner.seed.fetch_add(0x9E37_79B9, Relaxed) ^ id;
    let (i2, c3, l2) = (Arc::clone(&inner), Arc::clone(&conn), Arc::clone(&links));
    let up_thread = std::thread::Builder::new()
        .name(format!("proxy-up-{id}"))
        .spawn(move || {
            pump(&i2, &c3, Stream::Upstream, &client, &up, &l2, seed);
        });
    match up_thread {
        Ok(h) => {
            pump(
                &inner,
                &conn,
                Stream::Downstream,
                &conn.upstream,
                &conn.client,
                &links,
                seed.rotate_left(17),
            );
            let _ = h.join();
        }
        Err(_) => conn.close(),
    }
    lock(&inner.conns).remove(&id);
}

/// The toxics in effect for one direction of one connection.
#[derive(Default)]
struct Active {
    gen: u64,
    latency: Option<(Duration, Duration)>,
    bandwidth: Option<u64>,
    slow_close: Option<Duration>,
    /// Close at (None inside: never, blackhole).
    timeout: Option<Option<Instant>>,
    reset_at: Option<Instant>,
    slicer: Option<(usize, usize, Duration)>,
    limit: Option<(String, u64)>,
    /// Toxicity draws, per toxic name, once per connection.
    drawn: HashMap<String, bool>,
    /// Bytes counted by limit_data, per toxic name.
    limit_sent: HashMap<String, u64>,
    bw_start: Option<(Instant, u64)>,
}

impl Active {
    fn any(&self) -> bool {
        self.latency.is_some()
            || self.bandwidth.is_some()
            || self.timeout.is_some()
            || self.slicer.is_some()
            || self.limit.is_some()
    }

    fn refresh(&mut self, inner: &Inner, conn: &Conn, dir: Stream, rng: &mut Rng) {
        let gen = inner.toxic_gen.load(Relaxed);
        if gen == self.gen {
            return;
        }
        self.gen = gen;
        let ts = inner.toxics.read().unwrap_or_else(|e| e.into_inner());
        let (mut lat, mut bw, mut sc, mut to, mut rp, mut sl, mut lim) =
            (None, None, None, None, None, None, None);
        for t in ts.iter().filter(|t| t.toxic.stream == dir) {
            let tox = t.toxic.toxicity;
            let on = *self
                .drawn
                .entry(t.toxic.name.clone())
                .or_insert_with(|| tox >= 1.0 || rng.unit() < tox);
            if !on {
                continue;
            }
            let since = t.added.max(conn.start);
            match t.effect {
                Effect::Latency { latency, jitter } => lat = Some((latency, jitter)),
                Effect::Bandwidth { kb_per_s } => bw = Some(kb_per_s),
                Effect::SlowClose { delay } => sc = Some(delay),
                Effect::Timeout { timeout } => {
                    to = Some((!timeout.is_zero()).then(|| since + timeout))
                }
                Effect::ResetPeer { timeout } => rp = Some(since + timeout),
                Effect::Slicer {
                    average_size,
                    size_variation,
                    delay,
                } => sl = Some((average_size, size_variation, delay)),
                Effect::LimitData { bytes } => lim = Some((t.toxic.name.clone(), bytes)),
            }
        }
        if bw != self.bandwidth {
            self.bw_start = None;
        }
        (
            self.latency,
            self.bandwidth,
            self.slow_close,
            self.timeout,
            self.reset_at,
            self.slicer,
            self.limit,
        ) = (lat, bw, sc, to, rp, sl, lim);
    }
}

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

    /// Forwards `buf[..n]`, read from the source, through the toxics in effect.
    fn forward(&mut self, n: usize) -> Flow {
        let mut data = &self.buf[..n];
        let mut close_after = false;
        let mut w = self.dst;
        if self.act.any() {
            if self.act.timeout.is_some() {
                self.inner.bytes_dropped.fetch_add(n as u64, Relaxed);
                return Flow::Go;
            }
            if let Some((name, limit)) = self.act.limit.clone() {
                let sent = self.act.limit_sent.entry(name).or_insert(0);
                let room = limit.saturating_sub(*sent);
                if data.len() as u64 >= room {
                    data = &data[..room as usize];
                    close_after = true;
                }
                *sent += data.len() as u64;
            }
            if let Some((lat, jit)) = self.act.latency {
                let ms = lat.as_millis() as i64 + self.rng.spread(jit.as_millis() as u64);
                if ms > 0 {
                    std::thread::sleep(Duration::from_millis(ms as u64));
                }
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
fn pump(
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

/// Writes with the slicer and bandwidth toxics.
fn toxic_write(
    w: &mut &TcpStream,
    data: &[u8],
    act: &mut Active,
    rng: &mut Rng,
) -> std::io::Result<()> {
    let mut rest = data;
    let mut first = true;
    while !rest.is_empty() {
        let mut n = rest.len();
        if let Some((avg, var, delay)) = act.slicer {
            if !first && !delay.is_zero() {
                std::thread::sleep(delay);
            }
            n = n.min((avg as i64 + rng.spread(var as u64)).max(1) as usize);
        }
        if let Some(kbps) = act.bandwidth {
            let rate = kbps.saturating_mul(1000).max(1);
            // At most 1/20 s worth of bytes per write, so the rate holds at small scales too.
            n = n.min((rate / 20).max(1) as usize);
            let (t0, sent) = *act.bw_start.get_or_insert((Instant::now(), 0));
            let due = t0 + Duration::from_secs_f64(sent as f64 / rate as f64);
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
            act.bw_start = Some((t0, sent + n as u64));
        }
        w.write_all(&rest[..n])?;
        rest = &rest[n..];
        first = false;
    }
    Ok(())
}
