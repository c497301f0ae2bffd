//! redis-benchmark throughput against a redis-server followed by the probe, against the same
//! server untraced: 3 interleaved rounds of `redis-benchmark -n 40000 -c 50 -t set,get -q`;
//! prints the median requests/s of SET and GET, the ratio to untraced, and the records/s the
//! probe consumed (every call of the call table) with its lost count.
//!
//! `cargo run --release -p ordeal-ebpf --example redis [-- REQUESTS [when-empty]
//! [payload=N]]` (root; redis-server and redis-benchmark in PATH); `when-empty` measures the
//! kernel's default wakeup (a record wakes the consumer when the ring was empty) instead of
//! the probe's; `payload=N` copies the first N bytes of every transfer into the records
//! (`ProbeConfig::payload_bytes`). The server runs on a free loopback port in its own
//! temporary directory, without persistence, and is killed at the end (also on a panic).

use ordeal_ebpf::{Copies, Probe, ProbeConfig, Stage, Wakeup, DEFAULT_RING_BYTES};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const ROUNDS: usize = 3;
const TESTS: [&str; 2] = ["SET", "GET"];

/// The server and its directory, gone when this is dropped.
struct Server {
    child: Child,
    dir: PathBuf,
    port: u16,
}

impl Server {
    fn start() -> Server {
        let dir = std::env::temp_dir().join(format!("ordeal-ebpf-redis.{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temporary directory");
        // A port the kernel just gave out and nobody holds.
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(&dir)
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server starts (is it in PATH?)");
        let server = Server { child, dir, port };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "redis-server did not listen in 10 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One redis-benchmark run: requests/s of each of [`TESTS`] and the run's wall time.
fn benchmark(port: u16, requests: u64) -> ([f64; 2], Duration) {
    let start = Instant::now();
    let out = Command::new("timeout")
        .args(["120", "redis-benchmark", "-h", "127.0.0.1", "-p"])
        .arg(port.to_string())
        .args([
            "-n",
            &requests.to_string(),
            "-c",
            "50",
            "-t",
            "set,get",
            "-q",
        ])
        .stdin(Stdio::null())
        .output()
        .expect("redis-benchmark runs (is it in PATH?)");
    let took = start.elapsed();
    assert!(out.status.success(), "redis-benchmark failed: {out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    // Lines like "SET: 41237.11 requests per second, p50=0.615 msec" after \r progress.
    let rate = |test: &str| -> f64 {
        text.split(['\r', '\n'])
            .filter_map(|l| l.trim().strip_prefix(test)?.strip_prefix(':'))
            .filter_map(|rest| rest.split_whitespace().next()?.parse().ok())
            .next_back()
            .unwrap_or_else(|| panic!("no {test} rate in {text:?}"))
    };
    ([rate(TESTS[0]), rate(TESTS[1])], took)
}

/// A benchmark run with the server followed; also the records consumed and lost.
fn traced(
    server: &Server,
    requests: u64,
    wakeup: Wakeup,
    payload_bytes: usize,
) -> ([f64; 2], Duration, u64, u64) {
    let calls: Vec<i64> = ordeal_events::calls::CALLS.iter().map(|c| c.nr).collect();
    let mut probe = Probe::start_measuring(
        ProbeConfig {
            syscalls: &calls,
            ring_bytes: DEFAULT_RING_BYTES,
            payload_bytes,
        },
        Stage::Full,
        wakeup,
        Copies::default(),
    )
    .unwrap_or_else(|e| panic!("loading the probe (root needed): {e}"));
    probe.follow(server.child.id() as i32).expect("follow");
    let stop = Arc::new(AtomicBool::new(false));
    let consumer = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut records = 0u64;
            while !stop.load(Ordering::Relaxed) {
                records += probe.poll(Duration::from_millis(20)).expect("poll").len() as u64;
            }
            records += probe.poll(Duration::ZERO).expect("poll").len() as u64;
            (records, probe.lost().expect("lost"))
        })
    };
    let (rates, took) = benchmark(server.port, requests);
    stop.store(true, Ordering::Relaxed);
    let (records, lost) = consumer.join().expect("consumer");
    (rates, took, records, lost)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let requests: u64 = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("REQUESTS is a number"))
        .unwrap_or(40_000);
    let (mut wakeup, mut payload_bytes) = (Wakeup::PastQuarter, 0);
    for arg in std::env::args().skip(2) {
        match arg.split_once('=') {
            None if arg == "when-empty" => wakeup = Wakeup::WhenEmpty,
            Some(("payload", n)) => payload_bytes = n.parse().expect("payload=N"),
            _ => panic!("unknown argument {arg:?} (when-empty, payload=N)"),
        }
    }
    let server = Server::start();
    let (mut plain, mut probed) = (vec![Vec::new(); 2], vec![Vec::new(); 2]);
    let (mut per_second, mut lost_total) = (Vec::new(), 0);
    for round in 0..ROUNDS {
        let (rates, _) = benchmark(server.port, requests);
        for t in 0..2 {
            plain[t].push(rates[t]);
        }
        let (rates, took, records, lost) = traced(&server, requests, wakeup, payload_bytes);
        for t in 0..2 {
            probed[t].push(rates[t]);
        }
        per_second.push(records as f64 / took.as_secs_f64());
        lost_total += lost;
        eprintln!(
            "round {}: untraced {:.0}/{:.0}, probe {:.0}/{:.0} req/s (SET/GET), {records} records, {lost} lost",
            round + 1,
            plain[0][round],
            plain[1][round],
            rates[0],
            rates[1]
        );
    }
    println!(
        "redis-benchmark -n {requests} -c 50 -t set,get, median of {ROUNDS} rounds \
         (payload_bytes {payload_bytes}):"
    );
    for (t, test) in TESTS.iter().enumerate() {
        let (u, p) = (median(plain[t].clone()), median(probed[t].clone()));
        println!(
            "  {test}: untraced {u:>9.0} req/s, probe {p:>9.0} req/s  {:.2}x",
            p / u
        );
    }
    println!(
        "  probe: {:.0} records/s (median), {lost_total} lost in all rounds",
        median(per_second)
    );
}
