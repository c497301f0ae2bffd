//! Size check: `cargo test --release -p ordeal-hb --test scale -- --ignored --nocapture`.

mod common;

use common::{header, tcp};
use ordeal_events::{Class, Event};
use ordeal_hb::{HbGraph, Summary, Verdict};
use std::time::Instant;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn vm_hwm_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// 100 threads on 10 nodes, 200 connections, ~1M write/read events.
fn synthetic(n_events: usize) -> Vec<Event> {
    const THREADS: u64 = 100;
    let mut rng = Rng(0x9e3779b97f4a7c15);
    // Connection k joins threads (a, b); endpoint 2k belongs to a, 2k+1 to b.
    let mut conns = Vec::new();
    for a in 0..THREADS {
        for _ in 0..2 {
            let mut b = rng.below(THREADS);
            while b == a {
                b = rng.below(THREADS);
            }
            conns.push((a, b));
        }
    }
    let mut owned: Vec<Vec<u64>> = vec![Vec::new(); THREADS as usize];
    for (k, &(a, b)) in conns.iter().enumerate() {
        owned[a as usize].push(2 * k as u64);
        owned[b as usize].push(2 * k as u64 + 1);
    }
    let sock = |ep: u64| {
        let k = ep / 2;
        let (x, y) = (
            format!("10.0.0.1:{}", 20000 + k),
            format!("10.0.0.2:{}", 20000 + k),
        );
        if ep & 1 == 0 {
            tcp(1000 + ep, &x, &y)
        } else {
            tcp(1000 + ep, &y, &x)
        }
    };
    let mut sent = vec![0u64; conns.len() * 2]; // bytes sent by endpoint
    let mut read = vec![0u64; conns.len() * 2]; // bytes read by endpoint
    let mut events = Vec::with_capacity(n_events);
    let mut ts = 0;
    while events.len() < n_events {
        let t = rng.below(THREADS);
        let eps = &owned[t as usize];
        let ep = eps[rng.below(eps.len() as u64) as usize];
        let peer = ep ^ 1;
        let pending = sent[peer as usize] - read[ep as usize];
        let (call, off, n) = if pending > 0 && rng.below(2) == 0 {
            let n = pending.min(1 + rng.below(300));
            let off = read[ep as usize];
            read[ep as usize] += n;
            ("read", off, n)
        } else {
            let n = 1 + rng.below(200);
            let off = sent[ep as usize];
            sent[ep as usize] += n;
            ("write", off, n)
        };
        ts += 1000;
        events.push(Event {
            seq: events.len() as u64,
            ts,
            dur: 500,
            node: format!("n{}", t % 10),
            pid: 1000 + (t % 10) as i32,
            tid: 1000 + t as i32,
            call: call.into(),
            class: Some(Class::Data),
            ret: Some(n as i64),
            off: Some(off),
            sock: Some(sock(ep)),
            ..Default::default()
        });
    }
    events
}

#[test]
#[ignore = "scale check, run in release"]
fn million_events_hundred_threads() {
    let events = synthetic(1_000_000);
    let h = header(&(0..10).map(|_| ("n", &[][..])).collect::<Vec<_>>());
    let before = vm_hwm_kb();
    let t0 = Instant::now();
    let g = HbGraph::from_owned(h, events);
    let built = t0.elapsed();
    let c = g.edge_counts();
    let t1 = Instant::now();
    let mut hb = 0;
    for i in 0..100_000u64 {
        if g.happens_before(i * 7 % 1_000_000, (i * 13 + 500) % 1_000_000) {
            hb += 1;
        }
    }
    let q = t1.elapsed();
    let vc = g.vc(999_999).unwrap();
    let s = Summary::build(&g, Verdict::pass());
    println!(
        "build {built:?}; edges {c:?}; 100k hb queries {q:?} ({hb} true); last vc has {} components; {} clock entries; peak RSS {} MB (before build {} MB); warnings {}",
        vc.0.len(),
        g.clock_entries(),
        vm_hwm_kb() / 1024,
        before / 1024,
        s.warnings.len()
    );
    assert!(g.warnings().is_empty());
    struct Count(u64);
    impl std::io::Write for Count {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0 += b.len() as u64;
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let t = Instant::now();
    let mut c = Count(0);
    ordeal_hb::write_hb_jsonl(&g, &mut c).unwrap();
    println!("hb.jsonl: {} MB in {:?}", c.0 >> 20, t.elapsed());
    let t = Instant::now();
    let mut c = Count(0);
    ordeal_hb::write_chrome_trace(&g, &mut c).unwrap();
    println!("trace.json: {} MB in {:?}", c.0 >> 20, t.elapsed());
    let t = Instant::now();
    let mut c = Count(0);
    let level = ordeal_hb::write_dot(&g, &mut c, ordeal_hb::DEFAULT_DOT_LIMIT).unwrap();
    println!("graph.dot: {level:?} {} bytes in {:?}", c.0, t.elapsed());
}
