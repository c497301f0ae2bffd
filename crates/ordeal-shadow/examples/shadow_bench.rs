//! Proxy benchmark, one run, side by side (docs/proxy.md#benchmark):
//!
//! ```sh
//! cargo run --release -p ordeal-shadow --example shadow_bench [-- GIB [PINGS]]
//! ```
//!
//! direct vs through the proxy vs proxy + one shadow target vs proxy + one latency-0 toxic:
//! throughput of a large one-way transfer (MB/s), the CPU time the whole process (client,
//! proxy, servers) spent on it per GB, and p50/p99 of small request/response round trips, then
//! the proxy's memory under a debug target that stops reading.

use ordeal_shadow::*;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

fn server(echo: bool) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let a = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for c in l.incoming().flatten() {
            std::thread::spawn(move || {
                let _ = c.set_nodelay(true);
                let mut buf = vec![0u8; 256 * 1024];
                let (mut r, mut w) = (&c, &c);
                loop {
                    match r.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if echo && w.write_all(&buf[..n]).is_err() {
                                break;
                            }
                        }
                    }
                }
            });
        }
    });
    a
}

fn stuck() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let a = l.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut keep = Vec::new();
        for c in l.incoming().flatten() {
            keep.push(c);
        }
    });
    a
}

/// CPU time (user + system) of every thread of the process so far, in seconds.
fn cpu_seconds() -> f64 {
    // SAFETY: an all-zero rusage is a valid value for getrusage to overwrite.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `ru` is a valid, writable rusage.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let s = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    s(ru.ru_utime) + s(ru.ru_stime)
}

/// MB/s, and CPU milliseconds per GB moved.
fn throughput(addr: SocketAddr, bytes: u64) -> (f64, f64) {
    let mut c = TcpStream::connect(addr).unwrap();
    let buf = vec![0x5au8; 1 << 20];
    let cpu0 = cpu_seconds();
    let t0 = Instant::now();
    let mut sent = 0;
    while sent < bytes {
        c.write_all(&buf).unwrap();
        sent += buf.len() as u64;
    }
    c.shutdown(std::net::Shutdown::Write).unwrap();
    let mut b = [0u8; 1];
    let _ = c.read(&mut b); // the server closes once it has read everything
    let mbs = sent as f64 / t0.elapsed().as_secs_f64() / 1e6;
    (mbs, (cpu_seconds() - cpu0) * 1e3 / (sent as f64 / 1e9))
}

fn latencies(addr: SocketAddr, n: usize) -> (Duration, Duration) {
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_nodelay(true).unwrap();
    let msg = [7u8; 64];
    let mut back = [0u8; 64];
    let mut v = Vec::with_capacity(n);
    for i in 0..n + 200 {
        let t0 = Instant::now();
        c.write_all(&msg).unwrap();
        c.read_exact(&mut back).unwrap();
        if i >= 200 {
            v.push(t0.elapsed());
        }
    }
    v.sort();
    (v[n / 2], v[n * 99 / 100])
}

fn rss_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|x| x.parse().ok())
        .unwrap_or(0)
}

fn proxy(up: SocketAddr) -> Proxy {
    Proxy::start(ProxyConfig {
        name: "bench".into(),
        listen: "127.0.0.1:0".into(),
        upstream: up.to_string(),
        enabled: true,
    })
    .unwrap()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let gib: f64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(2.0);
    let pings: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(20_000);
    let bytes = (gib * (1u64 << 30) as f64) as u64;
    let sink = server(false);
    let echo = server(true);
    let shadow_sink = server(false);
    let shadow_echo = server(true);

    type Make = Box<dyn Fn(SocketAddr) -> (SocketAddr, Option<Proxy>)>;
    let configs: Vec<(&str, Make)> = vec![
        ("direct", Box::new(|a| (a, None))),
        (
            "proxy",
            Box::new(|a| {
                let p = proxy(a);
                (p.listen_addr(), Some(p))
            }),
        ),
        (
            "proxy + 1 shadow",
            Box::new(move |a| {
                let p = proxy(a);
                let t = if a == sink { shadow_sink } else { shadow_echo };
                let mut cfg = TargetConfig::new("shadow", Some(t));
                cfg.compare = a != sink;
                p.add_shadow(cfg).unwrap();
                (p.listen_addr(), Some(p))
            }),
        ),
        (
            "proxy + latency-0 toxic",
            Box::new(|a| {
                let p = proxy(a);
                p.add_toxic(Toxic::new("latency", Stream::Downstream, &[("latency", 0)]))
                    .unwrap();
                p.add_toxic(Toxic::new("latency", Stream::Upstream, &[("latency", 0)]))
                    .unwrap();
                (p.listen_addr(), Some(p))
            }),
        ),
    ];
    println!(
        "{:<26} {:>8} {:>10} {:>10} {:>10} {:>10} {:>10}",
        "", "MB/s", "CPU ms/GB", "p50 µs", "p99 µs", "+p50 µs", "+p99 µs"
    );
    let mut base = (Duration::ZERO, Duration::ZERO);
    let mut base_mbs = 0.0;
    for (name, make) in &configs {
        let (a, p1) = make(sink);
        let (mbs, cpu) = throughput(a, bytes);
        let (b, p2) = make(echo);
        let (p50, p99) = latencies(b, pings);
        if *name == "direct" {
            base = (p50, p99);
            base_mbs = mbs;
        }
        let add = |x: Duration, y: Duration| x.as_secs_f64() * 1e6 - y.as_secs_f64() * 1e6;
        println!(
            "{:<26} {:>8.0} {:>10.0} {:>10.1} {:>10.1} {:>10.1} {:>10.1}   ({:.0} % of direct)",
            name,
            mbs,
            cpu,
            p50.as_secs_f64() * 1e6,
            p99.as_secs_f64() * 1e6,
            add(p50, base.0),
            add(p99, base.1),
            mbs / base_mbs * 100.0
        );
        for p in [p1, p2].into_iter().flatten() {
            if let Some(t) = p.targets().first() {
                let r = t.report();
                if r.overflows > 0 {
                    println!("    shadow overflowed: {} ", r.overflows);
                }
            }
            p.shutdown();
        }
    }
    // Memory: a debug target that stops reading, 4 MiB window, 1 GiB through.
    let p = proxy(sink);
    let mut cfg = TargetConfig::new("stuck", Some(stuck()));
    cfg.window = 4 << 20;
    let t = p.add_shadow(cfg).unwrap();
    let before = rss_kib("VmRSS:");
    let (mbs, _) = throughput(p.listen_addr(), 1 << 30);
    let r = t.report();
    println!(
        "stuck debug target, window 4 MiB, 1 GiB through: {mbs:.0} MB/s, overflows {}, state {:?}, RSS {} → {} KiB (peak {} KiB)",
        r.overflows,
        r.state,
        before,
        rss_kib("VmRSS:"),
        rss_kib("VmHWM:")
    );
    p.shutdown();
}
