//! The control API: HTTP/1.1 + JSON on loopback, with Toxiproxy's routes.
//!
//! Bounded whatever clients send: a request head over [`MAX_HEAD`] is answered 431, a body
//! over [`MAX_BODY`] 413 (then the connection closes), a connection over [`MAX_CONNECTIONS`]
//! 503, and each request must arrive within 30 s. Answers go out in one write, without Nagle.
//!
//! | route | what |
//! |---|---|
//! | `GET /version` | `{"version": ...}` |
//! | `GET /proxies` | every proxy, by name |
//! | `POST /proxies` | create `{name, listen, upstream, enabled}` (201) |
//! | `GET /proxies/{p}` | one proxy (with ordeal's `stats` and `shadow` reports) |
//! | `POST /proxies/{p}` | update `listen`/`upstream`/`enabled` |
//! | `DELETE /proxies/{p}` | stop and remove (204) |
//! | `GET /proxies/{p}/toxics` | its toxics |
//! | `POST /proxies/{p}/toxics` | add `{name?, type, stream?, toxicity?, attributes}` |
//! | `GET`, `POST`, `DELETE /proxies/{p}/toxics/{t}` | one toxic: read, update attributes, remove |
//! | `POST /reset` | enable every proxy and remove every toxic (204) |
//! | `GET /shadow` | ordeal: every debug target's report, by proxy |

use crate::proxy::{Proxy, ProxyConfig};
use crate::shadow::lock;
use crate::toxic::{Stream, Toxic};
use crate::Error;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The proxies of one ordeal process, by name.
#[derive(Default)]
pub struct Registry {
    proxies: Mutex<BTreeMap<String, Proxy>>,
    /// Whether proxies created through the API may listen beyond loopback (`ordeal proxy
    /// --allow-external`): the API itself is loopback-only, and a proxy it creates must not
    /// open the upstream to the network unless asked to.
    external: AtomicBool,
}

impl Registry {
    pub fn new() -> Arc<Registry> {
        Arc::new(Registry::default())
    }

    pub fn create(&self, cfg: ProxyConfig) -> Result<Proxy, Error> {
        let mut ps = lock(&self.proxies);
        if ps.contains_key(&cfg.name) {
            return Err(Error::Conflict(format!(
                "proxy {} already exists",
                cfg.name
            )));
        }
        let name = cfg.name.clone();
        let p = Proxy::start(cfg)?;
        ps.insert(name, p.clone());
        Ok(p)
    }

    /// Lets proxies created through the API listen on any address, not only loopback.
    pub fn allow_external(&self, allow: bool) {
        self.external.store(allow, Relaxed);
    }

    /// Whether an API request may create a proxy listening on `listen`: a loopback
    /// address, or anything when external addresses are allowed.
    fn may_listen(&self, listen: &str) -> Result<(), Error> {
        if self.external.load(Relaxed) {
            return Ok(());
        }
        let addr = crate::proxy::resolve(listen)?;
        if addr.ip().is_loopback() {
            Ok(())
        } else {
            Err(Error::Forbidden(format!(
                "proxy listen address {addr} is not loopback (start ordeal proxy with \
                 --allow-external to allow it)"
            )))
        }
    }

    pub fn get(&self, name: &str) -> Option<Proxy> {
        lock(&self.proxies).get(name).cloned()
    }

    pub fn list(&self) -> Vec<Proxy> {
        lock(&self.proxies).values().cloned().collect()
    }

    pub fn remove(&self, name: &str) -> Result<(), Error> {
        let p = lock(&self.proxies)
            .remove(name)
            .ok_or_else(|| Error::NotFound(format!("proxy {name} not found")))?;
        p.shutdown();
        Ok(())
    }

    /// Toxiproxy's reset: every proxy enabled, every toxic removed.
    pub fn reset(&self) -> Result<(), Error> {
        for p in self.list() {
            p.clear_toxics();
            p.set_enabled(true)?;
        }
        Ok(())
    }

    pub fn shutdown_all(&self) {
        let ps: Vec<Proxy> = std::mem::take(&mut *lock(&self.proxies))
            .into_values()
            .collect();
        for p in ps {
            p.shutdown();
        }
    }
}

/// Connections the API serves at once; one more is answered 503 and closed (each costs a
/// thread: 2,000 idle connections once made 2,014 threads).
pub const MAX_CONNECTIONS: usize = 64;
/// The request line and headers together, at most (431 past it): memory stays bounded
/// whatever a client sends.
pub const MAX_HEAD: usize = 16 * 1024;
/// A request body, at most (413 past it).
pub const MAX_BODY: usize = 1 << 20;
/// A request must arrive whole within this, counted from the connection's start or its
/// previous answer: a client sending a byte now and then cannot hold a connection forever.
const REQUEST_DEADLINE: Duration = Duration::from_secs(30);

/// A running API server; stops when dropped.
pub struct ApiServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    listener: Arc<TcpListener>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ApiServer {
    /// Serves `reg` on `addr` (loopback only: anything else is refused).
    pub fn start(addr: &str, reg: Arc<Registry>) -> Result<ApiServer, Error> {
        let l = TcpListener::bind(addr).map_err(|e| Error::Io {
            context: format!("API: listening on {addr}"),
            source: e,
        })?;
        let local = l.local_addr().map_err(|e| Error::Io {
            context: "API address".into(),
            source: e,
        })?;
        if !local.ip().is_loopback() {
            return Err(Error::Invalid(format!(
                "the API listens on loopback only, not {local}"
            )));
        }
        // A blocking accept: a new connection is served at once (no polling interval); Drop
        // wakes it by shutting the listener down.
        let listener = Arc::new(l);
        let l = Arc::clone(&listener);
        let stop = Arc::new(AtomicBool::new(false));
        let s = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("ordeal-api".into())
            .spawn(move || accept_loop(&l, &s, &reg))
            .map_err(|e| Error::Io {
                context: "spawning the API thread".into(),
                source: e,
            })?;
        Ok(ApiServer {
            addr: local,
            stop,
            listener,
            thread: Some(thread),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        self.stop.store(true, Relaxed);
        // SAFETY: shutdown of our own listening socket (still open: `self.listener` holds
        // it); on Linux a blocked accept then returns EINVAL.
        unsafe { libc::shutdown(self.listener.as_raw_fd(), libc::SHUT_RDWR) };
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn accept_loop(l: &TcpListener, stop: &AtomicBool, reg: &Arc<Registry>) {
    let active = Arc::new(AtomicUsize::new(0));
    loop {
        let accepted = l.accept();
        if stop.load(Relaxed) {
            return;
        }
        let c = match accepted {
            Ok((c, _)) => c,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => {
                // EMFILE and the like: back off rather than spin.
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        if active.fetch_add(1, Relaxed) >= MAX_CONNECTIONS {
            active.fetch_sub(1, Relaxed);
            refuse(c);
            continue;
        }
        let (reg, n) = (Arc::clone(reg), Arc::clone(&active));
        let spawned = std::thread::Builder::new()
            .name("ordeal-api-conn".into())
            .spawn(move || {
                serve_conn(c, &reg);
                n.fetch_sub(1, Relaxed);
            });
        if spawned.is_err() {
            active.fetch_sub(1, Relaxed);
        }
    }
}

/// Answers 503 to a connection over [`MAX_CONNECTIONS`] and closes it, from the accept thread
/// without ever blocking it: one small write into an empty socket buffer, then what the
/// client already sent is read and dropped (closing with unread data would send an RST that
/// can destroy the answer; what arrives later may still meet one).
fn refuse(c: TcpStream) {
    if c.set_nonblocking(true).is_err() {
        return;
    }
    let body = json!({
        "error": format!("too many API connections (at most {MAX_CONNECTIONS})"),
        "status": 503,
    });
    let _ = (&c).write_all(&response(503, Some(&body), false));
    let _ = c.shutdown(std::net::Shutdown::Write);
    let mut sink = [0u8; 4096];
    for _ in 0..16 {
        if !matches!((&c).read(&mut sink), Ok(n) if n > 0) {
            break;
        }
    }
}

/// How a connection is set up: no Nagle delay (an answer is one write; without this a
/// keep-alive client waited for the delayed ACK, about 40 ms per request).
fn prepare(c: &TcpStream) -> std::io::Result<()> {
    c.set_nodelay(true)
}

/// A parsed request.
struct Request {
    method: String,
    path: String,
    body: Vec<u8>,
    keep_alive: bool,
}

/// Why no request was read.
#[derive(Debug, PartialEq)]
enum Unread {
    /// The client closed, or its deadline passed: close without answering.
    Gone,
    /// Answer this status and close.
    Refused(u16, String),
}

/// Reads from `r` until `deadline`: each read waits at most for what is left of it.
fn fill(r: &mut BufReader<TcpStream>, deadline: Instant) -> Result<&[u8], Unread> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Unread::Gone);
        }
        if r.buffer().is_empty() {
            r.get_ref()
                .set_read_timeout(Some(left))
                .map_err(|_| Unread::Gone)?;
        }
        match r.fill_buf() {
            Ok([]) => return Err(Unread::Gone),
            // Re-borrowed: the loop above needs `r` again on EINTR.
            Ok(_) => return Ok(r.buffer()),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return Err(Unread::Gone),
        }
    }
}

/// One line (without its `\r\n`), counted against `budget`: past it, 431.
fn read_line(
    r: &mut BufReader<TcpStream>,
    budget: &mut usize,
    deadline: Instant,
) -> Result<String, Unread> {
    let mut line = Vec::new();
    loop {
        let buf = fill(r, deadline)?;
        let (take, done) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (buf.len(), false),
        };
        if take > *budget {
            return Err(Unread::Refused(
                431,
                format!("request line and headers over {MAX_HEAD} bytes"),
            ));
        }
        *budget -= take;
        line.extend_from_slice(&buf[..take]);
        r.consume(take);
        if done {
            while line.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                line.pop();
            }
            return String::from_utf8(line)
                .map_err(|_| Unread::Refused(400, "a request line or header is not UTF-8".into()));
        }
    }
}

fn read_request(r: &mut BufReader<TcpStream>, deadline: Instant) -> Result<Request, Unread> {
    let mut budget = MAX_HEAD;
    let line = read_line(r, &mut budget, deadline)?;
    let mut parts = line.split_whitespace();
    let (Some(method), Some(path)) = (parts.next(), parts.next()) else {
        return Err(Unread::Refused(400, format!("bad request line {line:?}")));
    };
    let (method, path) = (method.to_string(), path.to_string());
    let version = parts.next().unwrap_or("HTTP/1.0").to_string();
    let mut len = 0usize;
    let mut keep_alive = version == "HTTP/1.1";
    loop {
        let h = read_line(r, &mut budget, deadline)?;
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            let (k, v) = (k.trim().to_ascii_lowercase(), v.trim());
            if k == "content-length" {
                len = v
                    .parse()
                    .map_err(|_| Unread::Refused(400, format!("bad Content-Length {v:?}")))?;
            } else if k == "connection" {
                keep_alive = !v.eq_ignore_ascii_case("close");
            }
        }
    }
    if len > MAX_BODY {
        return Err(Unread::Refused(
            413,
            format!("a body of {len} bytes: at most {MAX_BODY}"),
        ));
    }
    let mut body = Vec::with_capacity(len);
    while body.len() < len {
        let buf = fill(r, deadline)?;
        let take = buf.len().min(len - body.len());
        body.extend_from_slice(&buf[..take]);
        r.consume(take);
    }
    Ok(Request {
        method,
        path,
        body,
        keep_alive,
    })
}

/// A whole answer, status line to body, for one write.
fn response(status: u16, body: Option<&Value>, keep_alive: bool) -> Vec<u8> {
    let text = match status {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        413 => "Content Too Large",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "Internal Server Error",
    };
    let payload = match body {
        Some(v) if status != 204 => serde_json::to_vec(v).unwrap_or_default(),
        _ => Vec::new(),
    };
    let mut out = format!(
        "HTTP/1.1 {status} {text}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: {}\r\n\r\n",
        payload.len(),
        if keep_alive { "keep-alive" } else { "close" }
    )
    .into_bytes();
    out.extend_from_slice(&payload);
    out
}

fn serve_conn(c: TcpStream, reg: &Registry) {
    if prepare(&c).is_err() {
        return;
    }
    let Ok(w) = c.try_clone() else { return };
    let mut w = w;
    let mut r = BufReader::new(c);
    loop {
        let (status, body, keep_alive) =
            match read_request(&mut r, Instant::now() + REQUEST_DEADLINE) {
                Ok(req) => {
                    let (status, body) = route(reg, &req);
                    (status, body, req.keep_alive)
                }
                Err(Unread::Gone) => return,
                Err(Unread::Refused(status, msg)) => {
                    let (status, body) = err(status, msg);
                    let _ = w.write_all(&response(status, body.as_ref(), false));
                    linger(&w, r);
                    return;
                }
            };
        if w.write_all(&response(status, body.as_ref(), keep_alive))
            .is_err()
            || !keep_alive
        {
            return;
        }
    }
}

/// After refusing a request: sends FIN, then reads and drops what the client still sends
/// (at most [`MAX_BODY`] bytes, for at most a second) before closing. Closing with unread
/// data sends an RST, which can destroy the answer before the client reads it.
fn linger(w: &TcpStream, r: BufReader<TcpStream>) {
    let _ = w.shutdown(std::net::Shutdown::Write);
    let mut c = r.into_inner();
    let until = Instant::now() + Duration::from_secs(1);
    let mut left = MAX_BODY;
    let mut sink = [0u8; 8192];
    while left > 0 {
        let wait = until.saturating_duration_since(Instant::now());
        if wait.is_zero() || c.set_read_timeout(Some(wait)).is_err() {
            return;
        }
        match c.read(&mut sink) {
            Ok(0) | Err(_) => return,
            Ok(n) => left = left.saturating_sub(n),
        }
    }
}

fn err(status: u16, msg: impl std::fmt::Display) -> (u16, Option<Value>) {
    (
        status,
        Some(json!({"error": msg.to_string(), "status": status})),
    )
}

fn from_error(e: Error) -> (u16, Option<Value>) {
    let status = match &e {
        Error::NotFound(_) => 404,
        Error::Conflict(_) => 409,
        Error::Forbidden(_) => 403,
        Error::Toxic(_) | Error::Invalid(_) => 400,
        _ => 500,
    };
    err(status, e)
}

fn view(p: &Proxy) -> Value {
    serde_json::to_value(p.view()).unwrap_or(Value::Null)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ToxicIn {
    name: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    stream: Option<Stream>,
    toxicity: Option<f64>,
    #[serde(default)]
    attributes: serde_json::Map<String, Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProxyUpdate {
    #[serde(default)]
    #[allow(dead_code)]
    name: Option<String>,
    listen: Option<String>,
    upstream: Option<String>,
    enabled: Option<bool>,
}

fn route(reg: &Registry, req: &Request) -> (u16, Option<Value>) {
    let path = req.path.split('?').next().unwrap_or("");
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let m = req.method.as_str();
    match (m, segs.as_slice()) {
        ("GET", ["version"]) => (200, Some(json!({"version": env!("CARGO_PKG_VERSION")}))),
        ("POST", ["reset"]) => match reg.reset() {
            Ok(()) => (204, None),
            Err(e) => from_error(e),
        },
        ("GET", ["proxies"]) => {
            let mut m = serde_json::Map::new();
            for p in reg.list() {
                m.insert(p.name().to_string(), view(&p));
            }
            (200, Some(Value::Object(m)))
        }
        ("GET", ["shadow"]) => {
            let mut m = serde_json::Map::new();
            for p in reg.list() {
                m.insert(
                    p.name().to_string(),
                    serde_json::to_value(p.shadow_reports()).unwrap_or(Value::Null),
                );
            }
            (200, Some(Value::Object(m)))
        }
        ("POST", ["proxies"]) => {
            let cfg: ProxyConfig = match serde_json::from_slice(&req.body) {
                Ok(c) => c,
                Err(e) => return err(400, format!("bad proxy: {e}")),
            };
            match reg.may_listen(&cfg.listen).and_then(|()| reg.create(cfg)) {
                Ok(p) => (201, Some(view(&p))),
                Err(e) => from_error(e),
            }
        }
        (_, ["proxies", name, rest @ ..]) => {
            let Some(p) = reg.get(name) else {
                return err(404, format!("proxy {name} not found"));
            };
            proxy_route(reg, &p, m, rest, &req.body)
        }
        ("GET" | "POST" | "DELETE", _) => err(404, format!("no route {path}")),
        _ => err(405, format!("method {m} not allowed")),
    }
}

fn proxy_route(
    reg: &Registry,
    p: &Proxy,
    m: &str,
    rest: &[&str],
    body: &[u8],
) -> (u16, Option<Value>) {
    match (m, rest) {
        ("GET", []) => (200, Some(view(p))),
        ("POST" | "PATCH", []) => {
            let u: ProxyUpdate = match serde_json::from_slice(body) {
                Ok(u) => u,
                Err(e) => return err(400, format!("bad proxy update: {e}")),
            };
            if let Some(up) = u.upstream {
                p.set_upstream(up);
            }
            if let Some(l) = u.listen {
                if l != p.listen_addr().to_string() {
                    return err(400, "changing `listen` is not supported: delete and create");
                }
            }
            if let Some(e) = u.enabled {
                if let Err(e) = p.set_enabled(e) {
                    return from_error(e);
                }
            }
            (200, Some(view(p)))
        }
        ("DELETE", []) => match reg.remove(p.name()) {
            Ok(()) => (204, None),
            Err(e) => from_error(e),
        },
        ("GET", ["toxics"]) => (200, Some(json!(p.toxics()))),
        ("POST", ["toxics"]) => {
            let t: ToxicIn = match serde_json::from_slice(body) {
                Ok(t) => t,
                Err(e) => return err(400, format!("bad toxic: {e}")),
            };
            let Some(kind) = t.kind else {
                return err(400, "a toxic needs a `type`");
            };
            let stream = t.stream.unwrap_or_default();
            let toxic = Toxic {
                name: t
                    .name
                    .unwrap_or_else(|| format!("{kind}_{}", stream.as_str())),
                kind,
                stream,
                toxicity: t.toxicity.unwrap_or(1.0),
                attributes: t.attributes,
            };
            match p.add_toxic(toxic) {
                Ok(t) => (200, Some(json!(t))),
                Err(e) => from_error(e),
            }
        }
        ("GET", ["toxics", t]) => match p.toxics().into_iter().find(|x| x.name == *t) {
            Some(x) => (200, Some(json!(x))),
            None => err(404, format!("toxic {t} not found")),
        },
        ("POST" | "PATCH", ["toxics", t]) => {
            let Some(mut cur) = p.toxics().into_iter().find(|x| x.name == *t) else {
                return err(404, format!("toxic {t} not found"));
            };
            let u: ToxicIn = match serde_json::from_slice(body) {
                Ok(u) => u,
                Err(e) => return err(400, format!("bad toxic: {e}")),
            };
            if let Some(x) = u.toxicity {
                cur.toxicity = x;
            }
            for (k, v) in u.attributes {
                cur.attributes.insert(k, v);
            }
            match p.update_toxic(cur) {
                Ok(t) => (200, Some(json!(t))),
                Err(e) => from_error(e),
            }
        }
        ("DELETE", ["toxics", t]) => match p.remove_toxic(t) {
            Ok(()) => (204, None),
            Err(e) => from_error(e),
        },
        _ => err(404, "no such route"),
    }
}

/// A tiny client for the API (tests, `ordeal proxy` scripts): one request, the status and
/// the JSON body (`Null` when empty).
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> Result<(u16, Value), Error> {
    let io = |context: &str| {
        let context = context.to_string();
        move |source| Error::Io { context, source }
    };
    let mut s =
        TcpStream::connect_timeout(&addr, Duration::from_secs(5)).map_err(io("API connect"))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(io("API timeout"))?;
    let payload = body.map(|b| b.to_string()).unwrap_or_default();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{payload}",
        payload.len()
    );
    s.write_all(req.as_bytes()).map_err(io("API write"))?;
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).map_err(io("API read"))?;
    let text = String::from_utf8_lossy(&resp);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| Error::Invalid("API: malformed response".into()))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| Error::Invalid("API: no status".into()))?;
    let v = if body.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(body).map_err(|e| Error::Invalid(format!("API: bad JSON: {e}")))?
    };
    Ok((status, v))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The status line, headers and body leave in one buffer, hence one write.
    #[test]
    fn an_answer_is_one_buffer() {
        let out = response(200, Some(&json!({"version": "1"})), true);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 15\r\n\
             Connection: keep-alive\r\n\r\n{\"version\":\"1\"}"
        );
        let out = response(431, None, false);
        assert!(String::from_utf8(out)
            .unwrap()
            .starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"));
    }

    #[test]
    fn connections_have_no_nagle_delay() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let _c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (s, _) = l.accept().unwrap();
        assert!(!s.nodelay().unwrap());
        prepare(&s).unwrap();
        let mut on: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: getsockopt into a local int of the size given.
        let r = unsafe {
            libc::getsockopt(
                s.as_raw_fd(),
                libc::IPPROTO_TCP,
                libc::TCP_NODELAY,
                (&mut on as *mut libc::c_int).cast(),
                &mut len,
            )
        };
        assert_eq!((r, on), (0, 1));
    }
}
