//! Each toxic does what it says (generous bounds), and the JSON API drives them.

mod common;

use common::*;
use ordeal_shadow::api::request;
use ordeal_shadow::*;
use serde_json::json;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

fn proxy_to(upstream: std::net::SocketAddr) -> Proxy {
    Proxy::start(ProxyConfig {
        name: "t".into(),
        listen: "127.0.0.1:0".into(),
        upstream: upstream.to_string(),
        enabled: true,
    })
    .unwrap()
}

fn connect(p: &Proxy) -> TcpStream {
    let c = TcpStream::connect(p.listen_addr()).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c
}

fn rtt(c: &mut TcpStream) -> Duration {
    let t0 = Instant::now();
    c.write_all(b"x").unwrap();
    let mut b = [0u8; 1];
    c.read_exact(&mut b).unwrap();
    t0.elapsed()
}

#[test]
fn latency() {
    let s = echo();
    let p = proxy_to(s.addr);
    let mut c = connect(&p);
    assert!(rtt(&mut c) < Duration::from_millis(150));
    p.add_toxic(Toxic::new(
        "latency",
        Stream::Downstream,
        &[("latency", 200), ("jitter", 20)],
    ))
    .unwrap();
    let d = rtt(&mut c);
    assert!(
        d >= Duration::from_millis(175) && d < Duration::from_secs(3),
        "{d:?}"
    );
    p.remove_toxic("latency_downstream").unwrap();
    assert!(rtt(&mut c) < Duration::from_millis(150));
    p.shutdown();
}

#[test]
fn bandwidth() {
    let s = sender(500_000);
    let p = proxy_to(s.addr);
    p.add_toxic(Toxic::new(
        "bandwidth",
        Stream::Downstream,
        &[("rate", 1000)],
    ))
    .unwrap();
    let mut c = connect(&p);
    let t0 = Instant::now();
    let mut v = Vec::new();
    c.read_to_end(&mut v).unwrap();
    let d = t0.elapsed();
    assert_eq!(v, pattern(500_000, 7));
    // 500 kB at 1000 kB/s: half a second.
    assert!(
        d >= Duration::from_millis(400) && d < Duration::from_secs(5),
        "{d:?}"
    );
    p.shutdown();
}

#[test]
fn slicer() {
    let s = sender(1000);
    let p = proxy_to(s.addr);
    p.add_toxic(Toxic::new(
        "slicer",
        Stream::Downstream,
        &[("average_size", 10), ("size_variation", 0), ("delay", 2000)],
    ))
    .unwrap();
    let mut c = connect(&p);
    let t0 = Instant::now();
    let mut v = Vec::new();
    let mut reads = 0;
    let mut buf = [0u8; 4096];
    loop {
        let n = c.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        assert!(n <= 1000);
        reads += 1;
        v.extend_from_slice(&buf[..n]);
    }
    let d = t0.elapsed();
    assert_eq!(v, pattern(1000, 7));
    // 100 slices, 2 ms apart: at least 198 ms, arriving in many reads.
    assert!(d >= Duration::from_millis(190), "{d:?}");
    assert!(reads >= 20, "{reads} reads");
    p.shutdown();
}

#[test]
fn timeout_closes_and_blackhole_drops() {
    let s = echo();
    let p = proxy_to(s.addr);
    p.add_toxic(Toxic::new("timeout", Stream::Upstream, &[("timeout", 300)]))
        .unwrap();
    let mut c = connect(&p);
    let t0 = Instant::now();
    c.write_all(b"hello").unwrap();
    let mut b = [0u8; 16];
    let r = c.read(&mut b);
    let d = t0.elapsed();
    assert!(matches!(r, Ok(0) | Err(_)), "closed, nothing echoed: {r:?}");
    assert!(
        d >= Duration::from_millis(250) && d < Duration::from_secs(5),
        "{d:?}"
    );
    assert_eq!(s.streams().concat(), b"", "production got nothing");
    p.remove_toxic("timeout_upstream").unwrap();

    // timeout = 0: a black hole that keeps the connection open.
    p.add_toxic(Toxic::new("timeout", Stream::Upstream, &[("timeout", 0)]))
        .unwrap();
    let mut c = connect(&p);
    c.set_read_timeout(Some(Duration::from_millis(400)))
        .unwrap();
    c.write_all(b"lost").unwrap();
    let r = c.read(&mut b);
    assert!(
        matches!(&r, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "still open, nothing came back: {r:?}"
    );
    p.remove_toxic("timeout_upstream").unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(b"back").unwrap();
    let mut got = [0u8; 4];
    c.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"back");
    assert_eq!(p.stats().bytes_dropped, 5 + 4);
    p.shutdown();
}

#[test]
fn reset_peer() {
    let s = echo();
    let p = proxy_to(s.addr);
    p.add_toxic(Toxic::new(
        "reset_peer",
        Stream::Downstream,
        &[("timeout", 100)],
    ))
    .unwrap();
    let mut c = connect(&p);
    let t0 = Instant::now();
    let mut b = [0u8; 16];
    let r = c.read(&mut b);
    assert!(
        matches!(&r, Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset),
        "{r:?}"
    );
    assert!(t0.elapsed() >= Duration::from_millis(90));
    p.shutdown();
}

#[test]
fn limit_data() {
    let s = sender(5000);
    let p = proxy_to(s.addr);
    p.add_toxic(Toxic::new(
        "limit_data",
        Stream::Downstream,
        &[("bytes", 1000)],
    ))
    .unwrap();
    let mut c = connect(&p);
    let mut v = Vec::new();
    let _ = c.read_to_end(&mut v);
    assert_eq!(v, pattern(5000, 7)[..1000]);
    p.shutdown();
}

#[test]
fn slow_close() {
    let s = sender(10);
    let p = proxy_to(s.addr);
    p.add_toxic(Toxic::new(
        "slow_close",
        Stream::Downstream,
        &[("delay", 300)],
    ))
    .unwrap();
    let mut c = connect(&p);
    let t0 = Instant::now();
    let mut v = Vec::new();
    c.read_to_end(&mut v).unwrap();
    assert_eq!(v.len(), 10);
    let d = t0.elapsed();
    assert!(
        d >= Duration::from_millis(280) && d < Duration::from_secs(5),
        "{d:?}"
    );
    p.shutdown();
}

#[test]
fn down_refuses_and_closes() {
    let s = echo();
    let p = proxy_to(s.addr);
    let mut c = connect(&p);
    assert!(rtt(&mut c) < Duration::from_secs(1));
    p.set_enabled(false).unwrap();
    let mut b = [0u8; 1];
    assert!(
        matches!(c.read(&mut b), Ok(0) | Err(_)),
        "existing connection closed"
    );
    assert!(
        TcpStream::connect(p.listen_addr()).is_err(),
        "refused while down"
    );
    p.set_enabled(true).unwrap();
    let mut c = connect(&p);
    assert!(rtt(&mut c) < Duration::from_secs(1));
    p.shutdown();
}

#[test]
fn toxicity_zero_never_applies() {
    let s = echo();
    let p = proxy_to(s.addr);
    let mut t = Toxic::new("latency", Stream::Downstream, &[("latency", 1000)]);
    t.toxicity = 0.0;
    p.add_toxic(t).unwrap();
    let mut c = connect(&p);
    assert!(rtt(&mut c) < Duration::from_millis(500));
    p.shutdown();
}

#[test]
fn json_api_like_toxiproxy() {
    let s = echo();
    let reg = Registry::new();
    let api = ApiServer::start("127.0.0.1:0", reg.clone()).unwrap();
    let a = api.addr();
    let (st, v) = request(a, "GET", "/version", None).unwrap();
    assert_eq!(st, 200);
    assert!(v["version"].is_string());
    let (st, v) = request(
        a,
        "POST",
        "/proxies",
        Some(&json!({"name": "db", "listen": "127.0.0.1:0", "upstream": s.addr.to_string()})),
    )
    .unwrap();
    assert_eq!(st, 201, "{v}");
    assert_eq!(v["enabled"], true);
    let listen: std::net::SocketAddr = v["listen"].as_str().unwrap().parse().unwrap();
    let (st, _) = request(
        a,
        "POST",
        "/proxies",
        Some(&json!({"name": "db", "listen": "127.0.0.1:0", "upstream": "127.0.0.1:1"})),
    )
    .unwrap();
    assert_eq!(st, 409);
    let (st, v) = request(
        a,
        "POST",
        "/proxies/db/toxics",
        Some(&json!({"type": "latency", "attributes": {"latency": 150}})),
    )
    .unwrap();
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["name"], "latency_downstream");
    assert_eq!(v["stream"], "downstream");
    assert_eq!(v["toxicity"], 1.0);
    let (st, v) = request(
        a,
        "POST",
        "/proxies/db/toxics",
        Some(&json!({"type": "lightning"})),
    )
    .unwrap();
    assert_eq!(st, 400);
    assert!(v["error"].as_str().unwrap().contains("lightning"));
    let (st, v) = request(a, "GET", "/proxies", None).unwrap();
    assert_eq!(st, 200);
    assert_eq!(v["db"]["toxics"][0]["attributes"]["latency"], 150);

    let mut c = TcpStream::connect(listen).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let d = rtt(&mut c);
    assert!(d >= Duration::from_millis(140), "{d:?}");
    let (st, _) = request(
        a,
        "POST",
        "/proxies/db/toxics/latency_downstream",
        Some(&json!({"attributes": {"latency": 0}})),
    )
    .unwrap();
    assert_eq!(st, 200);
    assert!(rtt(&mut c) < Duration::from_millis(140));
    let (st, _) = request(a, "DELETE", "/proxies/db/toxics/latency_downstream", None).unwrap();
    assert_eq!(st, 204);
    let (st, _) = request(a, "DELETE", "/proxies/db/toxics/latency_downstream", None).unwrap();
    assert_eq!(st, 404);

    let (st, v) = request(a, "POST", "/proxies/db", Some(&json!({"enabled": false}))).unwrap();
    assert_eq!((st, &v["enabled"]), (200, &json!(false)));
    assert!(TcpStream::connect(listen).is_err());
    request(
        a,
        "POST",
        "/proxies/db/toxics",
        Some(&json!({"type": "bandwidth", "stream": "upstream", "attributes": {"rate": 10}})),
    )
    .unwrap();
    let (st, _) = request(a, "POST", "/reset", None).unwrap();
    assert_eq!(st, 204);
    let (_, v) = request(a, "GET", "/proxies/db", None).unwrap();
    assert_eq!(v["enabled"], true);
    assert_eq!(v["toxics"], json!([]));
    let (st, _) = request(a, "GET", "/proxies/nope", None).unwrap();
    assert_eq!(st, 404);
    let (st, _) = request(a, "DELETE", "/proxies/db", None).unwrap();
    assert_eq!(st, 204);
    assert!(TcpStream::connect(listen).is_err());
    drop(c);
    reg.shutdown_all();
}
