//! The proxy API under abuse (issue 18 item 5): bounded request heads and bodies (431, 413,
//! then closed), a bounded number of connections (503 past it), answers in one write with no
//! Nagle delay, latencies validated, proxies on loopback unless external addresses are
//! allowed, and an accept thread that Drop wakes.

use ordeal_shadow::api::{request, MAX_CONNECTIONS, MAX_HEAD};
use ordeal_shadow::*;
use serde_json::json;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

fn api() -> (std::sync::Arc<Registry>, ApiServer) {
    let reg = Registry::new();
    let api = ApiServer::start("127.0.0.1:0", reg.clone()).unwrap();
    (reg, api)
}

fn connect(a: SocketAddr) -> TcpStream {
    let c = TcpStream::connect(a).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c
}

/// Sends `raw`, closes the sending side, and reads the answer to its end: (status, body).
fn exchange(a: SocketAddr, raw: &[u8]) -> (u16, serde_json::Value) {
    let mut c = connect(a);
    // The server may answer and stop reading before all of it is sent.
    let _ = c.write_all(raw);
    let _ = c.shutdown(Shutdown::Write);
    let mut out = Vec::new();
    c.read_to_end(&mut out).unwrap();
    parse(&out)
}

fn parse(out: &[u8]) -> (u16, serde_json::Value) {
    let text = String::from_utf8_lossy(out);
    let (head, body) = text.split_once("\r\n\r\n").expect("a whole answer");
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, serde_json::from_str(body).unwrap_or_default())
}

#[test]
fn a_request_line_over_the_limit_is_431_and_closed() {
    let (_reg, api) = api();
    let long = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(MAX_HEAD + 1000));
    let (status, body) = exchange(api.addr(), long.as_bytes());
    assert_eq!(status, 431);
    assert_eq!(
        body["error"],
        format!("request line and headers over {MAX_HEAD} bytes")
    );
    // Just under the limit, the request is read and routed.
    let fits = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(MAX_HEAD - 100));
    assert_eq!(exchange(api.addr(), fits.as_bytes()).0, 404);
}

#[test]
fn headers_over_the_limit_are_431_and_closed() {
    let (_reg, api) = api();
    let mut raw = String::from("GET /version HTTP/1.1\r\n");
    for i in 0..2000 {
        raw.push_str(&format!("X-Filler-{i}: yes\r\n"));
    }
    raw.push_str("\r\n");
    assert_eq!(exchange(api.addr(), raw.as_bytes()).0, 431);
}

#[test]
fn a_body_over_the_limit_is_413_and_closed() {
    let (_reg, api) = api();
    let raw = format!(
        "POST /proxies HTTP/1.1\r\nContent-Length: {}\r\n\r\n",
        (1 << 20) + 1
    );
    let (status, body) = exchange(api.addr(), raw.as_bytes());
    assert_eq!(status, 413);
    assert_eq!(
        body["error"], "a body of 1048577 bytes: at most 1048576",
        "{body}"
    );
    let raw = "POST /reset HTTP/1.1\r\nContent-Length: twelve\r\n\r\n";
    assert_eq!(exchange(api.addr(), raw.as_bytes()).0, 400);
}

/// MAX_CONNECTIONS idle connections are served; one more gets 503 and is closed; once one
/// of them closes, a new connection is served again.
#[test]
fn connections_beyond_the_limit_are_503() {
    let (_reg, api) = api();
    let a = api.addr();
    let mut idle: Vec<TcpStream> = (0..MAX_CONNECTIONS).map(|_| connect(a)).collect();
    // Accepted in order: by the time this one is, every idle one counts. It is answered
    // before it sends anything.
    let mut out = Vec::new();
    connect(a).read_to_end(&mut out).unwrap();
    let (status, body) = parse(&out);
    assert_eq!(status, 503);
    assert_eq!(
        body["error"],
        format!("too many API connections (at most {MAX_CONNECTIONS})")
    );
    // One idle connection is still served (keep-alive).
    let c = &mut idle[0];
    c.write_all(b"GET /version HTTP/1.1\r\n\r\n").unwrap();
    let mut buf = [0u8; 4096];
    let n = c.read(&mut buf).unwrap();
    assert_eq!(parse(&buf[..n]).0, 200);
    drop(idle.pop());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        // A refused one may also end in a reset, having sent its request at once.
        if request(a, "GET", "/version", None).is_ok_and(|(status, _)| status == 200) {
            break;
        }
        assert!(Instant::now() < deadline, "the freed slot was never reused");
        std::thread::park_timeout(Duration::from_millis(10));
    }
}

/// Each keep-alive answer arrives in one read: head and body leave in one write (with the
/// body in a second write and Nagle on, it came a delayed ACK later, about 40 ms).
#[test]
fn keep_alive_answers_come_whole_in_one_read() {
    let (_reg, api) = api();
    let mut c = connect(api.addr());
    for _ in 0..5 {
        c.write_all(b"GET /version HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut buf = [0u8; 4096];
        let n = c.read(&mut buf).unwrap();
        let (status, body) = parse(&buf[..n]);
        assert_eq!(status, 200);
        assert_eq!(
            body["version"],
            env!("CARGO_PKG_VERSION"),
            "the body came with the head"
        );
    }
}

#[test]
fn latencies_of_an_hour_or_more_are_400() {
    let (reg, api) = api();
    let a = api.addr();
    let (st, _) = request(
        a,
        "POST",
        "/proxies",
        Some(&json!({"name": "db", "listen": "127.0.0.1:0", "upstream": "127.0.0.1:1"})),
    )
    .unwrap();
    assert_eq!(st, 201);
    let (st, v) = request(
        a,
        "POST",
        "/proxies/db/toxics",
        Some(&json!({"type": "latency", "attributes": {"latency": 9223372036854775808u64}})),
    )
    .unwrap();
    assert_eq!(st, 400);
    assert_eq!(
        v["error"],
        "toxic `latency_downstream`: `latency` must be less than 3600000 ms (1 hour), not \
         9223372036854775808"
    );
    let (st, _) = request(
        a,
        "POST",
        "/proxies/db/toxics",
        Some(&json!({"type": "latency", "attributes": {"latency": 3_599_999}})),
    )
    .unwrap();
    assert_eq!(st, 200);
    // An update past the limit is refused too, and the toxic keeps its value.
    let (st, _) = request(
        a,
        "POST",
        "/proxies/db/toxics/latency_downstream",
        Some(&json!({"attributes": {"jitter": 3_600_000}})),
    )
    .unwrap();
    assert_eq!(st, 400);
    let t = &reg.get("db").unwrap().toxics()[0];
    assert_eq!(t.attributes["latency"], 3_599_999);
    assert_eq!(t.attributes.get("jitter"), None);
}

#[test]
fn api_proxies_listen_on_loopback_unless_allowed() {
    let (reg, api) = api();
    let a = api.addr();
    let create = |name: &str| {
        request(
            a,
            "POST",
            "/proxies",
            Some(&json!({"name": name, "listen": "0.0.0.0:0", "upstream": "127.0.0.1:1"})),
        )
        .unwrap()
    };
    let (st, v) = create("open");
    assert_eq!(st, 403);
    assert_eq!(
        v["error"],
        "proxy listen address 0.0.0.0:0 is not loopback (start ordeal proxy with \
         --allow-external to allow it)"
    );
    assert!(reg.get("open").is_none());
    reg.allow_external(true);
    let (st, v) = create("open");
    assert_eq!(st, 201, "{v}");
    assert!(v["listen"].as_str().unwrap().starts_with("0.0.0.0:"));
    reg.shutdown_all();
}

/// Drop wakes the blocking accept: it returns, and the port no longer accepts.
#[test]
fn dropping_the_server_stops_its_blocking_accept() {
    let (_reg, api) = api();
    let a = api.addr();
    assert_eq!(request(a, "GET", "/version", None).unwrap().0, 200);
    drop(api);
    assert_eq!(
        TcpStream::connect(a).map_err(|e| e.kind()).err(),
        Some(std::io::ErrorKind::ConnectionRefused)
    );
}
