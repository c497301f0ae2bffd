//! Loopback test servers; each stops (and its threads end) when dropped.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub type Handler = Arc<dyn Fn(TcpStream, &Server, u64) + Send + Sync>;

pub struct Server {
    pub addr: SocketAddr,
    pub received: Mutex<Vec<(u64, Vec<u8>)>>,
    pub connections: AtomicU64,
    pub stop: AtomicBool,
}

pub struct Running {
    pub s: Arc<Server>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl std::ops::Deref for Running {
    type Target = Server;
    fn deref(&self) -> &Server {
        &self.s
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.s.stop.store(true, SeqCst);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }
}

impl Server {
    /// Bytes received on each connection, in accept order.
    pub fn streams(&self) -> Vec<Vec<u8>> {
        let mut v = self.received.lock().unwrap().clone();
        v.sort_by_key(|x| x.0);
        v.into_iter().map(|x| x.1).collect()
    }
    fn record(&self, id: u64, data: &[u8]) {
        let mut r = self.received.lock().unwrap();
        if let Some(x) = r.iter_mut().find(|x| x.0 == id) {
            x.1.extend_from_slice(data);
        } else {
            r.push((id, data.to_vec()));
        }
    }
}

pub fn start(handler: Handler) -> Running {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.set_nonblocking(true).unwrap();
    let s = Arc::new(Server {
        addr: l.local_addr().unwrap(),
        received: Mutex::new(Vec::new()),
        connections: AtomicU64::new(0),
        stop: AtomicBool::new(false),
    });
    let s2 = Arc::clone(&s);
    let thread = std::thread::spawn(move || {
        let mut workers = Vec::new();
        while !s2.stop.load(SeqCst) {
            match l.accept() {
                Ok((c, _)) => {
                    c.set_nonblocking(false).unwrap();
                    c.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
                    let id = s2.connections.fetch_add(1, SeqCst);
                    let (h, s3) = (Arc::clone(&handler), Arc::clone(&s2));
                    workers.push(std::thread::spawn(move || h(c, &s3, id)));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(2)),
            }
        }
        for w in workers {
            let _ = w.join();
        }
    });
    Running {
        s,
        thread: Some(thread),
    }
}

/// Reads what is there; `None` on EOF or error, `Some(empty)` on timeout; ends on stop.
fn read_some(c: &mut TcpStream, s: &Server, buf: &mut [u8]) -> Option<usize> {
    loop {
        if s.stop.load(SeqCst) {
            return None;
        }
        match c.read(buf) {
            Ok(0) => return None,
            Ok(n) => return Some(n),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return None,
        }
    }
}

/// Echoes everything back and records it.
pub fn echo() -> Running {
    start(Arc::new(|mut c, s, id| {
        let mut buf = vec![0u8; 256 * 1024];
        while let Some(n) = read_some(&mut c, s, &mut buf) {
            s.record(id, &buf[..n]);
            if c.write_all(&buf[..n]).is_err() {
                break;
            }
        }
    }))
}

/// Reads until EOF, records, answers `LEN\n`.
pub fn sink() -> Running {
    start(Arc::new(|mut c, s, id| {
        s.record(id, b"");
        let mut buf = vec![0u8; 256 * 1024];
        let mut total = 0;
        while let Some(n) = read_some(&mut c, s, &mut buf) {
            s.record(id, &buf[..n]);
            total += n;
        }
        let _ = c.write_all(format!("{total}\n").as_bytes());
    }))
}

/// Accepts and never reads (until stopped).
pub fn stuck() -> Running {
    start(Arc::new(|c, s, _id| {
        while !s.stop.load(SeqCst) {
            std::thread::sleep(Duration::from_millis(10));
        }
        drop(c);
    }))
}

/// Sends `n` bytes (pattern) on connect, then closes.
pub fn sender(n: usize) -> Running {
    start(Arc::new(move |mut c, _s, _id| {
        let data = pattern(n, 7);
        let _ = c.write_all(&data);
    }))
}

/// A deterministic byte pattern.
pub fn pattern(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// A line server: `GET k` → `VAL k <f(k)>` (with `tag`), using `backend` if given: it asks
/// the backend `k\n` on one connection per client connection and returns its line.
pub fn kv_service(tag: &'static str, backend: Option<SocketAddr>) -> Running {
    start(Arc::new(move |c, s, id| {
        let mut r = BufReader::new(c.try_clone().unwrap());
        let mut w = c;
        let mut be = backend.map(|a| {
            let b = TcpStream::connect(a).unwrap();
            (BufReader::new(b.try_clone().unwrap()), b)
        });
        let mut line = String::new();
        loop {
            line.clear();
            match r.read_line(&mut line) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    if s.stop.load(SeqCst) {
                        break;
                    }
                    continue;
                }
                Err(_) => break,
            }
            s.record(id, line.as_bytes());
            let key = line.trim().strip_prefix("GET ").unwrap_or("?").to_string();
            let val = match &mut be {
                Some((br, bw)) => {
                    bw.write_all(format!("{key}\n").as_bytes()).unwrap();
                    let mut v = String::new();
                    br.read_line(&mut v).unwrap();
                    v.trim().to_string()
                }
                None => format!("{}{tag}", key.len()),
            };
            if w.write_all(format!("VAL {key} {val}\n").as_bytes())
                .is_err()
            {
                break;
            }
        }
    }))
}

/// A backend: answers `k\n` with `db(k)\n`.
pub fn backend() -> Running {
    start(Arc::new(|c, s, id| {
        let mut r = BufReader::new(c.try_clone().unwrap());
        let mut w = c;
        let mut line = String::new();
        loop {
            line.clear();
            match r.read_line(&mut line) {
                Ok(0) => break,
                Ok(_) => {
                    s.record(id, line.as_bytes());
                    let _ = w.write_all(format!("db({})\n", line.trim()).as_bytes());
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    if s.stop.load(SeqCst) {
                        break;
                    }
                }
                Err(_) => break,
            }
        }
    }))
}

/// Polls `f` until it is true or `timeout` passes.
pub fn wait_for(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}
