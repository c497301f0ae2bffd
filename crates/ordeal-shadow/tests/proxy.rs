//! The proxy: forwarding, duplication, debug windows, overflow, backend replay, divergence.

mod common;

use common::*;
use ordeal_shadow::replay::{start_recorder, start_replayer, Recording};
use ordeal_shadow::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

fn proxy_to(name: &str, upstream: std::net::SocketAddr) -> Proxy {
    Proxy::start(ProxyConfig {
        name: name.into(),
        listen: "127.0.0.1:0".into(),
        upstream: upstream.to_string(),
        enabled: true,
    })
    .unwrap()
}

fn connect(p: &Proxy) -> TcpStream {
    let c = TcpStream::connect(p.listen_addr()).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    c
}

/// Sends `data`, half-closes, returns everything answered.
fn send_all(p: &Proxy, data: &[u8]) -> Vec<u8> {
    let mut c = connect(p);
    let mut r = c.try_clone().unwrap();
    let reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        r.read_to_end(&mut v).unwrap();
        v
    });
    c.write_all(data).unwrap();
    c.shutdown(std::net::Shutdown::Write).unwrap();
    reader.join().unwrap()
}

#[test]
fn duplicated_streams_are_byte_identical() {
    let prod = echo();
    let debug = echo();
    let p = proxy_to("dup", prod.addr);
    let mut cfg = TargetConfig::new("debug", Some(debug.addr));
    cfg.window = 8 << 20;
    let t = p.add_shadow(cfg).unwrap();
    let sizes = [1usize, 1000, 3 << 20];
    let mut sent = Vec::new();
    for (i, &n) in sizes.iter().enumerate() {
        let data = pattern(n, i as u64 + 1);
        let back = send_all(&p, &data);
        assert_eq!(back, data, "production's answer comes back unchanged");
        sent.push(data);
    }
    assert!(wait_for(Duration::from_secs(20), || {
        let r = t.report();
        r.comparison.as_ref().unwrap().connections_identical == 3
    }));
    assert_eq!(
        prod.streams(),
        sent,
        "production received exactly what was sent"
    );
    assert_eq!(
        debug.streams(),
        sent,
        "the debug copy received the same bytes"
    );
    let r = t.report();
    let total: usize = sizes.iter().sum();
    assert_eq!(r.connections_fed, 3);
    assert_eq!(r.bytes_fed, total as u64);
    assert_eq!(r.bytes_received, total as u64);
    assert_eq!(r.overflows, 0);
    assert_eq!(r.bytes_not_fed, 0);
    assert_eq!(r.state, TargetState::Live);
    let c = r.comparison.unwrap();
    assert_eq!(c.connections_different, 0);
    assert_eq!(p.stats().bytes_upstream, total as u64);
    assert_eq!(p.stats().bytes_downstream, total as u64);
    p.shutdown();
    assert!(p.wait_idle(Duration::from_secs(5)));
}

fn ping_latencies(p: &Proxy, n: usize) -> Vec<Duration> {
    let mut c = connect(p);
    let mut buf = [0u8; 64];
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        let t0 = Instant::now();
        c.write_all(b"ping\n").unwrap();
        let mut got = 0;
        while got < 5 {
            got += c.read(&mut buf[got..]).unwrap();
        }
        v.push(t0.elapsed());
    }
    v.sort();
    v
}

#[test]
fn slow_debug_target_overflows_without_slowing_production() {
    let prod = sink();
    let echo_prod = echo();
    let debug = stuck();
    let p = proxy_to("ovf", prod.addr);
    let mut cfg = TargetConfig::new("stuck", Some(debug.addr));
    cfg.window = 256 * 1024;
    let t = p.add_shadow(cfg).unwrap();
    // 32 MiB: more than the window plus every socket buffer on the way.
    let data = pattern(32 << 20, 3);
    let t0 = Instant::now();
    let back = send_all(&p, &data);
    let took = t0.elapsed();
    assert_eq!(back, format!("{}\n", data.len()).as_bytes());
    assert!(
        took < Duration::from_secs(20),
        "production finished ({took:?})"
    );
    assert_eq!(prod.streams()[0], data);
    assert!(wait_for(Duration::from_secs(10), || t
        .report()
        .connections_active
        == 0));
    let r = t.report();
    assert_eq!(r.overflows, 1, "exactly one overflow: {r:?}");
    assert_eq!(r.state, TargetState::Diverged);
    assert!(r.reason.as_deref().unwrap_or("").contains("overflow"));
    assert_eq!(
        r.bytes_fed + r.bytes_not_fed,
        data.len() as u64,
        "every byte is either fed or counted as not fed"
    );
    assert!(r.bytes_not_fed > 0);
    assert_eq!(r.lag_bytes, 0);
    // A new connection is not fed to a diverged target.
    let _ = send_all(&p, b"x");
    assert_eq!(t.report().connections_fed, 1);

    // Production latency with a debug target that never reads vs. without any target.
    let base = proxy_to("base", echo_prod.addr);
    let shadowed = proxy_to("shadowed", echo_prod.addr);
    let mut cfg = TargetConfig::new("stuck2", Some(debug.addr));
    cfg.window = 64 * 1024;
    let t2 = shadowed.add_shadow(cfg).unwrap();
    let a = ping_latencies(&base, 300);
    let b = ping_latencies(&shadowed, 300);
    let (pa, pb) = (a[a.len() / 2], b[b.len() / 2]);
    assert!(
        pb < pa * 4 + Duration::from_millis(2),
        "p50 with a stuck target {pb:?} vs without {pa:?}"
    );
    // Small pings: the window holds them all, nothing overflowed, the lag is visible.
    let r2 = t2.report();
    assert_eq!(r2.overflows, 0);
    assert_eq!(r2.connections_fed, 1);
    for p in [&p, &base, &shadowed] {
        p.shutdown();
        assert!(p.wait_idle(Duration::from_secs(5)));
    }
}

#[test]
fn window_lag_is_reported_live() {
    let prod = echo();
    let debug = stuck();
    let p = proxy_to("lag", prod.addr);
    let mut cfg = TargetConfig::new("stuck", Some(debug.addr));
    cfg.window = 64 << 20;
    let t = p.add_shadow(cfg).unwrap();
    let mut c = connect(&p);
    let data = pattern(16 << 20, 9);
    let mut r = c.try_clone().unwrap();
    let reader = std::thread::spawn(move || {
        let mut buf = vec![0u8; 1 << 20];
        let mut n = 0;
        while n < 16 << 20 {
            n += r.read(&mut buf).unwrap();
        }
    });
    c.write_all(&data).unwrap();
    reader.join().unwrap();
    // The socket buffers to the stuck target hold some; the window holds the rest.
    assert!(wait_for(Duration::from_secs(5), || t.report().lag_bytes > 0));
    std::thread::sleep(Duration::from_millis(20));
    let r = t.report();
    assert!(r.lag_bytes > 0 && r.lag_bytes <= 64 << 20, "{r:?}");
    assert!(r.lag_seconds > 0.0);
    assert_eq!(r.remaining_window, Some((64 << 20) - r.lag_bytes));
    assert_eq!(r.connections_active, 1);
    assert_eq!(r.bytes_fed as usize + r.lag_bytes, 16 << 20);
    drop(c);
    p.shutdown();
    assert!(p.wait_idle(Duration::from_secs(5)));
    assert!(wait_for(Duration::from_secs(5), || t
        .report()
        .connections_active
        == 0));
}

#[test]
fn starting_target_buffers_until_live() {
    let prod = echo();
    let debug = echo();
    let p = proxy_to("start", prod.addr);
    let t = p.add_shadow(TargetConfig::new("late", None)).unwrap();
    assert_eq!(t.state(), TargetState::Starting);
    let data = pattern(100_000, 5);
    assert_eq!(send_all(&p, &data), data);
    assert_eq!(
        t.report().lag_bytes,
        100_000,
        "buffered while the copy starts"
    );
    t.set_live(debug.addr);
    assert!(wait_for(Duration::from_secs(10), || debug.streams()
        == vec![data.clone()]));
    p.shutdown();
}

#[test]
fn backend_replay_answers_the_clone_and_the_backend_sees_nothing_of_it() {
    let db = backend();
    let rec = Recording::new(1 << 20);
    let recorder = start_recorder("127.0.0.1:0", &db.addr.to_string(), rec.clone()).unwrap();
    let replayer = start_replayer("127.0.0.1:0", rec.clone()).unwrap();
    let prod = kv_service("", Some(recorder.addr()));
    let debug = kv_service("", Some(replayer.addr()));
    let p = proxy_to("kv", prod.addr);
    let mut cfg = TargetConfig::new("debug", Some(debug.addr));
    cfg.framing = Framing::Lines;
    let t = p.add_shadow(cfg).unwrap();
    let mut answers = Vec::new();
    for conn in 0..3 {
        let c = connect(&p);
        let mut r = BufReader::new(c.try_clone().unwrap());
        let mut w = c;
        for k in 0..5 {
            w.write_all(format!("GET k{conn}-{k}\n").as_bytes())
                .unwrap();
            let mut line = String::new();
            r.read_line(&mut line).unwrap();
            answers.push(line);
        }
    }
    assert_eq!(answers[0], "VAL k0-0 db(k0-0)\n");
    assert!(wait_for(Duration::from_secs(20), || {
        t.report().comparison.unwrap().connections_identical == 3
    }));
    let c = t.report().comparison.unwrap();
    assert_eq!(c.messages_identical, 15);
    assert_eq!(c.messages_different, 0);
    let rr = rec.report();
    assert_eq!(rr.connections_recorded, 3);
    assert_eq!(rr.connections_replayed, 3);
    assert_eq!(rr.paired_by_hash, 3);
    assert_eq!(rr.requests_matched, 15);
    assert_eq!(rr.requests_mismatched, 0);
    assert_eq!(rr.responses_replayed, 15);
    // The real backend saw production's 3 connections and 15 requests, nothing more.
    assert_eq!(db.connections.load(std::sync::atomic::Ordering::SeqCst), 3);
    let seen: usize = db
        .streams()
        .iter()
        .map(|s| s.iter().filter(|&&b| b == b'\n').count())
        .sum();
    assert_eq!(seen, 15);
    p.shutdown();
    drop(recorder);
    drop(replayer);
}

#[test]
fn divergence_and_noise_filter() {
    // production and the reference answer `VAL k <len>` ; the candidate `VAL k <len>x`.
    let prod = kv_service("", None);
    let reference = kv_service("", None);
    let candidate = kv_service("x", None);
    let p = proxy_to("diffy", prod.addr);
    let mut rc = TargetConfig::new("reference", Some(reference.addr));
    rc.framing = Framing::Lines;
    rc.reference = true;
    let mut cc = TargetConfig::new("candidate", Some(candidate.addr));
    cc.framing = Framing::Lines;
    let tr = p.add_shadow(rc).unwrap();
    let tc = p.add_shadow(cc).unwrap();
    let c = connect(&p);
    let mut r = BufReader::new(c.try_clone().unwrap());
    let mut w = c;
    for k in ["a", "bb", "ccc"] {
        w.write_all(format!("GET {k}\n").as_bytes()).unwrap();
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
    }
    drop(w);
    drop(r);
    assert!(wait_for(Duration::from_secs(20), || {
        tc.report().comparison.unwrap().connections_different == 1
            && tr.report().comparison.unwrap().connections_identical == 1
    }));
    let reports = p.shadow_reports();
    let cand = reports.iter().find(|r| r.name == "candidate").unwrap();
    let c = cand.comparison.as_ref().unwrap();
    assert_eq!(c.messages_different, 3);
    assert_eq!(c.messages_identical, 0);
    assert_eq!(c.samples[0].production, "VAL a 1\\n");
    assert_eq!(c.samples[0].debug, "VAL a 1x\\n");
    assert_eq!(c.samples[0].offset, 7);
    assert_eq!(c.first_differences, vec![(0, 7)]);
    assert_eq!(
        c.real_differences,
        Some(3),
        "the reference agrees with production"
    );
    p.shutdown();
}

#[test]
fn plain_streams_are_spliced_and_toxic_streams_copied() {
    let prod = echo();
    let n = 3u64 << 20;
    let data = pattern(n as usize, 11);
    let debug = sink();
    let run = |name: &str, toxics: &[Stream], shadowed: bool| {
        let p = proxy_to(name, prod.addr);
        if shadowed {
            p.add_shadow(TargetConfig::new("debug", Some(debug.addr)))
                .unwrap();
        }
        for &s in toxics {
            p.add_toxic(Toxic::new("latency", s, &[("latency", 0)]))
                .unwrap();
        }
        assert_eq!(send_all(&p, &data), data);
        p.shutdown();
        assert!(p.wait_idle(Duration::from_secs(5)));
        let s = p.stats();
        assert_eq!((s.bytes_upstream, s.bytes_downstream), (n, n), "{name}");
        let json = serde_json::to_value(p.view()).unwrap();
        assert_eq!(json["stats"]["bytes_spliced"], s.bytes_spliced, "{name}");
        s.bytes_spliced
    };
    assert_eq!(
        run("plain", &[], false),
        2 * n,
        "no toxic: both directions spliced"
    );
    assert_eq!(
        run("up-toxic", &[Stream::Upstream], false),
        n,
        "a toxic upstream: only the answer is spliced"
    );
    assert_eq!(
        run("toxic", &[Stream::Upstream, Stream::Downstream], false),
        0,
        "toxics on both streams: everything is copied"
    );
    assert_eq!(
        run("shadowed", &[], true),
        0,
        "a debug target to feed: copied"
    );
}

#[test]
fn toxics_added_mid_splice_deliver_every_byte_in_order() {
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    use std::sync::Arc;
    const PHASE: usize = 8 << 20;
    let prod = echo();
    let p = proxy_to("midway", prod.addr);
    let data = pattern(3 * PHASE, 12);
    let c = connect(&p);
    let mut r = c.try_clone().unwrap();
    let got = Arc::new(AtomicUsize::new(0));
    let got2 = Arc::clone(&got);
    let reader = std::thread::spawn(move || {
        let mut v = Vec::with_capacity(3 * PHASE);
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = r.read(&mut buf).unwrap();
            if n == 0 {
                return v;
            }
            v.extend_from_slice(&buf[..n]);
            got2.store(v.len(), SeqCst);
        }
    });
    // Three phases, each written once the test lets it: spliced, toxic'd, spliced again.
    let (go, wait) = std::sync::mpsc::channel::<()>();
    let (mut w, sent) = (c, data.clone());
    let writer = std::thread::spawn(move || {
        for (i, phase) in sent.chunks(PHASE).enumerate() {
            if i > 0 {
                wait.recv().unwrap();
            }
            for piece in phase.chunks(64 << 10) {
                w.write_all(piece).unwrap();
            }
        }
        w.shutdown(std::net::Shutdown::Write).unwrap();
    });
    // The toxics arrive while the first phase is being spliced (the pipe is drained before
    // the switch, so nothing is lost or reordered).
    assert!(wait_for(Duration::from_secs(20), || got.load(SeqCst) >= 1 << 20));
    p.add_toxic(Toxic::new("latency", Stream::Upstream, &[("latency", 1)]))
        .unwrap();
    p.add_toxic(Toxic::new(
        "slicer",
        Stream::Downstream,
        &[("average_size", 50_000), ("size_variation", 10_000)],
    ))
    .unwrap();
    assert!(wait_for(Duration::from_secs(20), || got.load(SeqCst) >= PHASE));
    go.send(()).unwrap();
    assert!(wait_for(Duration::from_secs(20), || got.load(SeqCst) >= 2 * PHASE));
    p.clear_toxics();
    go.send(()).unwrap();
    writer.join().unwrap();
    let back = reader.join().unwrap();
    assert!(back == data, "every byte came back, in order");
    assert!(p.wait_idle(Duration::from_secs(5)));
    let s = p.stats();
    let total = 3 * PHASE as u64;
    assert_eq!((s.bytes_upstream, s.bytes_downstream), (total, total));
    // The second phase went through the toxics: copied, both ways. The first MiB of the
    // first phase and the third phase (but for at most one read per direction right after
    // the toxics were removed) were spliced.
    let copied = 2 * total - s.bytes_spliced;
    assert!(copied >= 2 * PHASE as u64, "{s:?}");
    assert!(
        s.bytes_spliced >= (2 << 20) + 2 * PHASE as u64 - 2 * (256 << 10),
        "{s:?}"
    );
    assert!(
        prod.streams() == vec![data],
        "production got every byte, in order"
    );
    p.shutdown();
}
