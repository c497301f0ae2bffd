//! The control API: HTTP/1.1 + JSON on loopback, with Toxiproxy's routes.
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
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The proxies of one ordeal process, by name.
#[derive(Default)]
pub struct Registry {
    proxies: Mutex<BTreeMap<String, Proxy>>,
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

/// A running API server; stops when dropped.
pub struct ApiServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
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
        l.set_nonblocking(true).map_err(|e| Error::Io {
            context: "API listener".into(),
            source: e,
        })?;
        let stop = Arc::new(AtomicBool::new(false));
        let s = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("ordeal-api".into())
            .spawn(move || {
                while !s.load(Relaxed) {
                    match l.accept() {
                        Ok((c, _)) => {
                            let reg = Arc::clone(&reg);
                            let _ = std::thread::Builder::new()
                                .name("ordeal-api-conn".into())
                                .spawn(move || serve_conn(c, &reg));
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(20)),
                    }
                }
            })
            .map_err(|e| Error::Io {
                context: "spawning the API thread".into(),
                source: e,
            })?;
        Ok(ApiServer {
            addr: local,
            stop,
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
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A parsed request.
struct Request {
    method: String,
    path: String,
    body: Vec<u8>,
    keep_alive: bool,
}

const MAX_BODY: usize = 1 << 20;

fn read_request(r: &mut BufReader<TcpStream>) -> Option<Request> {
    let mut line = String::new();
    if r.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let path = parts.next()?.to_string();
    let version = parts.next().unwrap_or("HTTP/1.0").to_string();
    let mut len = 0usize;
    let mut keep_alive = version == "HTTP/1.1";
    loop {
        let mut h = String::new();
        if r.read_line(&mut h).ok()? == 0 {
            return None;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            let (k, v) = (k.trim().to_ascii_lowercase(), v.trim());
            if k == "content-length" {
                len = v.parse().ok()?;
            } else if k == "connection" {
                keep_alive = !v.eq_ignore_ascii_case("close");
            }
        }
    }
    if len > MAX_BODY {
        return None;
    }
    let mut body = vec![0; len];
    r.read_exact(&mut body).ok()?;
    Some(Request {
        method,
        path,
        body,
        keep_alive,
    })
}

fn serve_conn(c: TcpStream, reg: &Registry) {
    let _ = c.set_read_timeout(Some(Duration::from_secs(30)));
    let Ok(w) = c.try_clone() else { return };
    let mut w = w;
    let mut r = BufReader::new(c);
    while let Some(req) = read_request(&mut r) {
        let (status, body) = route(reg, &req);
        let text = match status {
            200 => "OK",
            201 => "Created",
            204 => "No Content",
            400 => "Bad Request",
            404 => "Not Found",
            405 => "Method Not Allowed",
            409 => "Conflict",
            _ => "Internal Server Error",
        };
        let payload = match &body {
            Some(v) if status != 204 => serde_json::to_vec(v).unwrap_or_default(),
            _ => Vec::new(),
        };
        let head = format!(
            "HTTP/1.1 {status} {text}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: {}\r\n\r\n",
            payload.len(),
            if req.keep_alive { "keep-alive" } else { "close" }
        );
        if w.write_all(head.as_bytes()).is_err() || w.write_all(&payload).is_err() {
            return;
        }
        if !req.keep_alive {
            return;
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
            match reg.create(cfg) {
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
