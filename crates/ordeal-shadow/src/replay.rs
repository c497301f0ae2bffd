//! Backend isolation: a recording proxy between production and one of its backends (a
//! database, say), and a replay endpoint that answers a debug copy's connections to that
//! backend from what production received, so nothing the copy sends reaches the real backend.
//!
//! A recorded connection is a list of exchanges (request bytes, then the response bytes
//! that followed them, by turn-taking). The replay endpoint pairs each copy connection with a
//! recorded one — the first unused recording, in order, whose first request has the same
//! content hash as what the copy sent, else the first unused one (counted as a mismatch) —
//! then, for each exchange, reads as many bytes as production sent, compares their hash, and
//! answers with production's response.

use crate::shadow::lock;
use crate::Error;
use serde::Serialize;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// How long a backend must be quiet for its answer to count as complete.
const QUIET: Duration = Duration::from_millis(20);

/// FNV-1a, 64 bits: the content hash of requests.
pub fn content_hash(b: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &x in b {
        h ^= x as u64;
        h = h.wrapping_mul(0x100_0000_01b3);
    }
    h
}

#[derive(Debug, Default, Clone)]
struct Exchange {
    request: Vec<u8>,
    response: Vec<u8>,
}

#[derive(Debug, Default)]
struct RecState {
    exchanges: Vec<Exchange>,
    closed: bool,
    truncated: bool,
    used: bool,
    last_change: Option<Instant>,
}

#[derive(Debug, Default)]
struct RecConn {
    st: Mutex<RecState>,
    cv: Condvar,
}

impl RecConn {
    fn add(&self, request: bool, data: &[u8], budget: &AtomicU64) {
        let mut st = lock(&self.st);
        if st.truncated {
            return;
        }
        if budget
            .fetch_update(Relaxed, Relaxed, |b| b.checked_sub(data.len() as u64))
            .is_err()
        {
            st.truncated = true;
            drop(st);
            self.cv.notify_all();
            return;
        }
        let need_new = match st.exchanges.last() {
            None => true,
            Some(e) => request && !e.response.is_empty(),
        };
        if need_new {
            st.exchanges.push(Exchange::default());
        }
        st.last_change = Some(Instant::now());
        if let Some(e) = st.exchanges.last_mut() {
            if request {
                e.request.extend_from_slice(data);
            } else {
                e.response.extend_from_slice(data);
            }
        }
        drop(st);
        self.cv.notify_all();
    }

    fn close(&self) {
        lock(&self.st).closed = true;
        self.cv.notify_all();
    }
}

/// One request of a copy that did not match production's.
#[derive(Debug, Clone, Serialize)]
pub struct Mismatch {
    pub connection: u64,
    pub exchange: usize,
    pub expected_hash: String,
    pub got_hash: String,
    pub note: String,
}

/// What the recorder and the replay endpoint did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ReplayReport {
    pub connections_recorded: u64,
    pub bytes_recorded: u64,
    pub recordings_truncated: u64,
    pub connections_replayed: u64,
    pub paired_by_hash: u64,
    pub paired_by_order: u64,
    pub unpaired: u64,
    pub requests_matched: u64,
    pub requests_mismatched: u64,
    pub responses_replayed: u64,
    pub mismatches: Vec<Mismatch>,
}

/// Recordings shared between a recorder and replay endpoints.
#[derive(Debug)]
pub struct Recording {
    conns: Mutex<Vec<Arc<RecConn>>>,
    cv: Condvar,
    budget: AtomicU64,
    report: Mutex<ReplayReport>,
    stop: AtomicBool,
}

impl Recording {
    /// Keeps at most `limit` bytes of recorded traffic (further bytes of a connection are not
    /// recorded, and replaying it past that point counts as a mismatch).
    pub fn new(limit: u64) -> Arc<Recording> {
        Arc::new(Recording {
            conns: Mutex::new(Vec::new()),
            cv: Condvar::new(),
            budget: AtomicU64::new(limit),
            report: Mutex::new(ReplayReport::default()),
            stop: AtomicBool::new(false),
        })
    }

    pub fn report(&self) -> ReplayReport {
        let mut r = lock(&self.report).clone();
        let conns = lock(&self.conns);
        r.connections_recorded = conns.len() as u64;
        r.bytes_recorded = 0;
        r.recordings_truncated = 0;
        for c in conns.iter() {
            let st = lock(&c.st);
            r.bytes_recorded += st
                .exchanges
                .iter()
                .map(|e| (e.request.len() + e.response.len()) as u64)
                .sum::<u64>();
            r.recordings_truncated += st.truncated as u64;
        }
        r
    }

    fn stopped(&self) -> bool {
        self.stop.load(Relaxed)
    }
}

/// A background accept loop; stops (and closes its connections) when dropped.
pub struct Endpoint {
    addr: SocketAddr,
    rec: Arc<Recording>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Endpoint {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
    pub fn report(&self) -> ReplayReport {
        self.rec.report()
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        self.stop.store(true, Relaxed);
        self.rec.stop.store(true, Relaxed);
        self.rec.cv.notify_all();
        for c in lock(&self.rec.conns).iter() {
            c.cv.notify_all();
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(
    listen: &str,
    rec: Arc<Recording>,
    name: &str,
    on_conn: impl Fn(TcpStream, Arc<Recording>) + Send + Sync + 'static,
) -> Result<Endpoint, Error> {
    let l = TcpListener::bind(listen).map_err(|e| Error::Io {
        context: format!("{name}: listening on {listen}"),
        source: e,
    })?;
    let addr = l.local_addr().map_err(|e| Error::Io {
        context: format!("{name}: address"),
        source: e,
    })?;
    let stop = Arc::new(AtomicBool::new(false));
    let (s, r) = (Arc::clone(&stop), Arc::clone(&rec));
    let on_conn = Arc::new(on_conn);
    let thread = std::thread::Builder::new()
        .name(name.to_string())
        .spawn(move || {
            let mut pfd = libc::pollfd {
                fd: l.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            while !s.load(Relaxed) {
                // SAFETY: one valid pollfd.
                if unsafe { libc::poll(&mut pfd, 1, 50) } <= 0 {
                    continue;
                }
                if let Ok((c, _)) = l.accept() {
                    let (r, f) = (Arc::clone(&r), Arc::clone(&on_conn));
                    let _ = std::thread::Builder::new().spawn(move || f(c, r));
                }
            }
        })
        .map_err(|e| Error::Io {
            context: format!("{name}: spawning"),
            source: e,
        })?;
    Ok(Endpoint {
        addr,
        rec,
        stop,
        thread: Some(thread),
    })
}

/// The recording proxy: production connects to it instead of the backend at `upstream`.
pub fn start_recorder(
    listen: &str,
    upstream: &str,
    rec: Arc<Recording>,
) -> Result<Endpoint, Error> {
    let upstream = upstream.to_string();
    serve(listen, rec, "ordeal-recorder", move |client, rec| {
        let Some(up) = upstream
            .to_socket_addrs()
            .ok()
            .and_then(|mut a| a.next())
            .and_then(|a| TcpStream::connect_timeout(&a, Duration::from_secs(5)).ok())
        else {
            return;
        };
        let _ = client.set_nodelay(true);
        let _ = up.set_nodelay(true);
        let rc = Arc::new(RecConn::default());
        lock(&rec.conns).push(Arc::clone(&rc));
        rec.cv.notify_all();
        let (Ok(c2), Ok(u2)) = (client.try_clone(), up.try_clone()) else {
            return;
        };
        let (rc2, rec2) = (Arc::clone(&rc), Arc::clone(&rec));
        let t = std::thread::spawn(move || copy(&c2, &u2, &rc2, true, &rec2.budget));
        copy(&up, &client, &rc, false, &rec.budget);
        let _ = t.join();
        rc.close();
    })
}

fn copy(src: &TcpStream, dst: &TcpStream, rc: &RecConn, request: bool, budget: &AtomicU64) {
    let mut buf = vec![0u8; 64 * 1024];
    let (mut r, mut w) = (src, dst);
    loop {
        match r.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                // Recorded before it is forwarded, so the answer is recorded after the request.
                rc.add(request, &buf[..n], budget);
                if w.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = dst.shutdown(Shutdown::Write);
}

/// The replay endpoint: the debug copy connects to it instead of the backend.
pub fn start_replayer(listen: &str, rec: Arc<Recording>) -> Result<Endpoint, Error> {
    let next = Arc::new(AtomicU64::new(0));
    serve(listen, rec, "ordeal-replayer", move |c, rec| {
        let id = next.fetch_add(1, Relaxed);
        replay_conn(id, c, &rec);
    })
}

/// Reads from `c` into `buf` until it holds `need` bytes; false on EOF/timeout.
fn fill(c: &TcpStream, buf: &mut Vec<u8>, need: usize, rec: &Recording, wait: Duration) -> bool {
    let deadline = Instant::now() + wait;
    let mut tmp = vec![0u8; 64 * 1024];
    let mut r = c;
    while buf.len() < need {
        if rec.stopped() || Instant::now() >= deadline {
            return false;
        }
        match r.read(&mut tmp) {
            Ok(0) => return false,
            Ok(n) => buf.extend_from_slice(&tmp[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return false,
        }
    }
    true
}

fn replay_conn(id: u64, c: TcpStream, rec: &Recording) {
    let _ = c.set_read_timeout(Some(Duration::from_millis(50)));
    let _ = c.set_nodelay(true);
    lock(&rec.report).connections_replayed += 1;
    let mut buf: Vec<u8> = Vec::new();
    // Pair with a recording: wait (a debug copy lags production) for one to exist.
    let wait = Duration::from_secs(10);
    let deadline = Instant::now() + wait;
    let rc = loop {
        let unused: Vec<Arc<RecConn>> = lock(&rec.conns)
            .iter()
            .filter(|r| !lock(&r.st).used)
            .cloned()
            .collect();
        let mut by_hash = None;
        for r in &unused {
            // The first request, once production has sent it (and the turn is over).
            let first = {
                let st = lock(&r.st);
                st.exchanges
                    .first()
                    .filter(|e| !e.response.is_empty() || st.closed)
                    .map(|e| e.request.clone())
            };
            let Some(first) = first else { continue };
            if first.is_empty() {
                continue;
            }
            fill(&c, &mut buf, first.len(), rec, Duration::from_millis(200));
            if buf.len() >= first.len() && content_hash(&buf[..first.len()]) == content_hash(&first)
            {
                by_hash = Some(Arc::clone(r));
                break;
            }
        }
        let pick = |r: &Arc<RecConn>| {
            let mut st = lock(&r.st);
            if st.used {
                false
            } else {
                st.used = true;
                true
            }
        };
        if let Some(r) = by_hash {
            if pick(&r) {
                lock(&rec.report).paired_by_hash += 1;
                break Some(r);
            }
            continue;
        }
        if Instant::now() >= deadline || rec.stopped() {
            match unused.first() {
                Some(r) if pick(r) => {
                    lock(&rec.report).paired_by_order += 1;
                    break Some(Arc::clone(r));
                }
                _ => break None,
            }
        }
        let g = lock(&rec.conns);
        let _ = rec.cv.wait_timeout(g, Duration::from_millis(20));
    };
    let Some(rc) = rc else {
        lock(&rec.report).unpaired += 1;
        return;
    };
    let mut w = &c;
    let mut i = 0;
    loop {
        // Exchange i, once production has its answer (or its connection ended).
        let ex = {
            let mut st = lock(&rc.st);
            loop {
                // Without framing, an answer is complete once the next request starts, the
                // connection ends, or the backend has been quiet for QUIET.
                let quiet = st.exchanges.get(i).is_some_and(|e| !e.response.is_empty())
                    && st.last_change.is_some_and(|t| t.elapsed() >= QUIET);
                let complete = st.exchanges.len() > i + 1 || st.closed || st.truncated || quiet;
                if complete || rec.stopped() {
                    break st.exchanges.get(i).cloned().map(|e| (e, st.truncated));
                }
                st = rc
                    .cv
                    .wait_timeout(st, Duration::from_millis(5))
                    .map(|(g, _)| g)
                    .unwrap_or_else(|e| e.into_inner().0);
            }
        };
        let Some((ex, truncated)) = ex else { break };
        let need = ex.request.len();
        let got_all = fill(&c, &mut buf, need, rec, wait);
        let got = &buf[..need.min(buf.len())];
        let ok = got_all && content_hash(got) == content_hash(&ex.request);
        {
            let mut r = lock(&rec.report);
            if ok {
                r.requests_matched += 1;
            } else {
                r.requests_mismatched += 1;
                if r.mismatches.len() < 20 {
                    r.mismatches.push(Mismatch {
                        connection: id,
                        exchange: i,
                        expected_hash: format!("{:016x}", content_hash(&ex.request)),
                        got_hash: format!("{:016x}", content_hash(got)),
                        note: if !got_all {
                            format!("the copy sent {} of {need} bytes", got.len())
                        } else if truncated {
                            "recording truncated".into()
                        } else {
                            "different request".into()
                        },
                    });
                }
            }
        }
        if !got_all {
            break;
        }
        buf.drain(..need);
        if w.write_all(&ex.response).is_err() {
            break;
        }
        lock(&rec.report).responses_replayed += 1;
        i += 1;
    }
    let _ = c.shutdown(Shutdown::Both);
}
