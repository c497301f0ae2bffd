//! What the probe costs a traced program: a child makes N `getppid()` calls, then N one-byte
//! `write()`s to /dev/null, timed in the child, with no probe loaded, with the probe loaded
//! but the child not followed, and with the child followed (its calls recorded and consumed).
//!
//! `cargo run --release -p ordeal-ebpf --example overhead [-- N]` (root). Prints the median
//! ns per call of 3 interleaved rounds and the ratio to no probe.

use ordeal_ebpf::{Probe, ProbeConfig, DEFAULT_RING_BYTES};
use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const CHILD_ENV: &str = "ORDEAL_OVERHEAD_CHILD";
const SYS_GETPPID: i64 = 110;

#[derive(Clone, Copy, PartialEq)]
enum Scenario {
    NoProbe,
    Unfollowed,
    Followed,
}

impl Scenario {
    fn name(self) -> &'static str {
        match self {
            Scenario::NoProbe => "no probe",
            Scenario::Unfollowed => "probe, not followed",
            Scenario::Followed => "probe, followed",
        }
    }
}

/// The child: waits for the go byte, makes `n` calls of `call`, prints the time they took.
fn child(call: &str, n: u64) {
    let mut go = [0u8; 1];
    std::io::stdin().read_exact(&mut go).expect("go byte");
    let start = Instant::now();
    for _ in 0..n {
        match call {
            // SAFETY: getppid has no arguments and no preconditions.
            "getppid" => unsafe {
                libc::getppid();
            },
            // SAFETY: a one-byte write from a static buffer to stdout (/dev/null).
            _ => unsafe {
                libc::write(1, c"x".as_ptr().cast(), 1);
            },
        }
    }
    eprintln!("{}", start.elapsed().as_nanos());
}

/// Runs one child; returns its ns per call and, when followed, the records seen and lost.
fn run(call: &str, n: u64, scenario: Scenario) -> (f64, u64, u64) {
    let calls: Vec<i64> = ordeal_events::calls::CALLS
        .iter()
        .map(|c| c.nr)
        .chain([SYS_GETPPID])
        .collect();
    let mut probe = match scenario {
        Scenario::NoProbe => None,
        _ => Some(
            Probe::start(ProbeConfig {
                syscalls: &calls,
                ring_bytes: DEFAULT_RING_BYTES,
            })
            .unwrap_or_else(|e| panic!("loading the probe (root needed): {e}")),
        ),
    };
    let mut c = Command::new(std::env::current_exe().expect("own path"))
        .env(CHILD_ENV, format!("{call}:{n}"))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("child starts");
    if let (Some(p), Scenario::Followed) = (&probe, scenario) {
        p.follow(c.id() as i32).expect("follow");
    }
    c.stdin.take().expect("stdin").write_all(b"g").expect("go");
    let mut records = 0u64;
    while c.try_wait().expect("wait").is_none() {
        match &mut probe {
            Some(p) => records += p.poll(Duration::from_millis(20)).expect("poll").len() as u64,
            None => std::thread::sleep(Duration::from_millis(20)),
        }
    }
    let lost = match &mut probe {
        Some(p) => {
            records += p.poll(Duration::ZERO).expect("poll").len() as u64;
            p.lost().expect("lost")
        }
        None => 0,
    };
    let mut out = String::new();
    c.stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut out)
        .expect("child's time");
    let ns: f64 = out.trim().parse().expect("child printed its time");
    (ns / n as f64, records, lost)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    if let Ok(spec) = std::env::var(CHILD_ENV) {
        let (call, n) = spec.split_once(':').expect("CALL:N");
        child(call, n.parse().expect("N"));
        return;
    }
    let n: u64 = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("N is a number"))
        .unwrap_or(1_000_000);
    let scenarios = [Scenario::NoProbe, Scenario::Unfollowed, Scenario::Followed];
    for call in ["getppid", "write"] {
        let mut times = vec![Vec::new(); scenarios.len()];
        let mut seen = (0, 0);
        for _round in 0..3 {
            for (i, &s) in scenarios.iter().enumerate() {
                let (ns, records, lost) = run(call, n, s);
                times[i].push(ns);
                if s == Scenario::Followed {
                    seen = (records, lost);
                }
            }
        }
        let base = median(times[0].clone());
        println!("{call} x {n}:");
        for (i, s) in scenarios.iter().enumerate() {
            let m = median(times[i].clone());
            println!("  {:<20} {:>8.1} ns/call  {:>5.2}x", s.name(), m, m / base);
        }
        println!(
            "  (followed, last round: {} records consumed, {} lost)",
            seen.0, seen.1
        );
    }
}
