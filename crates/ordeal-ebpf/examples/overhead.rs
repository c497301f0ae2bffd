//! What the probe costs a traced program, and what bounds that cost: a child makes N
//! `getppid()` calls, then N one-byte `write()`s to /dev/null, timed in the child, with no
//! probe loaded, with the probe loaded but the child not followed, and followed with the
//! programs stopped at each stage (return at once; the two map lookups; reserve and submit
//! with nobody reading a ring large enough for everything; the time; the register copy) and
//! then with each way of waking the consumer. Then N `sendto(1, "x", 1, 0, NULL, 0)` (a send
//! without an address: the short path, after a read of the address argument) and N with a
//! 16-byte address (a record with a copy of it), both failing at once with ENOTSOCK on
//! /dev/null, with each way of writing a record with copies (a per-CPU scratch buffer and
//! `bpf_ringbuf_output`, or in place in a reservation of the largest size).
//!
//! `cargo run --release -p ordeal-ebpf --example overhead [-- N]` (root). Prints the median
//! ns per call of 3 interleaved rounds and the ratio to no probe.

use ordeal_ebpf::{Copies, Probe, ProbeConfig, Stage, Wakeup, DEFAULT_RING_BYTES};
use std::io::{Read, Write};
use std::net::SocketAddrV4;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const CHILD_ENV: &str = "ORDEAL_OVERHEAD_CHILD";
const SYS_GETPPID: i64 = 110;

/// How the parent reads the ring while the child runs.
#[derive(Clone, Copy, PartialEq)]
enum Consumer {
    /// `Probe::poll(20 ms)` in a loop.
    Poll,
    /// Every `ms` milliseconds, take what is there (`Probe::poll(0)`).
    Timer(u64),
    /// Not at all until the child is done (the ring holds everything).
    AfterTheEnd,
}

#[derive(Clone, Copy)]
struct Case {
    name: &'static str,
    /// The programs, or no probe at all.
    probe: Option<(Stage, Wakeup, Copies)>,
    followed: bool,
    consumer: Consumer,
}

const fn case(
    name: &'static str,
    stage: Stage,
    wakeup: Wakeup,
    followed: bool,
    consumer: Consumer,
) -> Case {
    Case {
        name,
        probe: Some((stage, wakeup, Copies::Scratch)),
        followed,
        consumer,
    }
}

const NO_PROBE: Case = Case {
    name: "no probe",
    probe: None,
    followed: false,
    consumer: Consumer::Timer(20),
};

const CASES: [Case; 11] = [
    NO_PROBE,
    case(
        "loaded, not followed",
        Stage::Full,
        Wakeup::PastQuarter,
        false,
        Consumer::Poll,
    ),
    case(
        "followed: return at once",
        Stage::ReturnAtOnce,
        Wakeup::Never,
        true,
        Consumer::AfterTheEnd,
    ),
    case(
        "+ call and tgid lookups",
        Stage::Filter,
        Wakeup::Never,
        true,
        Consumer::AfterTheEnd,
    ),
    case(
        "+ reserve/submit, unread",
        Stage::Reserve,
        Wakeup::Never,
        true,
        Consumer::AfterTheEnd,
    ),
    case(
        "+ ktime",
        Stage::Ktime,
        Wakeup::Never,
        true,
        Consumer::AfterTheEnd,
    ),
    case(
        "+ 64-byte regs copy",
        Stage::Full,
        Wakeup::Never,
        true,
        Consumer::AfterTheEnd,
    ),
    case(
        "full, wake when empty, poll",
        Stage::Full,
        Wakeup::WhenEmpty,
        true,
        Consumer::Poll,
    ),
    case(
        "full, wake always, poll",
        Stage::Full,
        Wakeup::Always,
        true,
        Consumer::Poll,
    ),
    case(
        "full, no wakeup, 1 ms timer",
        Stage::Full,
        Wakeup::Never,
        true,
        Consumer::Timer(1),
    ),
    case(
        "full, wake past 1/4 (default)",
        Stage::Full,
        Wakeup::PastQuarter,
        true,
        Consumer::Poll,
    ),
];

/// Records with copies: written in a scratch buffer then copied, or in place.
const COPY_CASES: [Case; 3] = [
    NO_PROBE,
    Case {
        name: "full, scratch + output (default)",
        probe: Some((Stage::Full, Wakeup::PastQuarter, Copies::Scratch)),
        followed: true,
        consumer: Consumer::Poll,
    },
    Case {
        name: "full, largest reservation",
        probe: Some((Stage::Full, Wakeup::PastQuarter, Copies::ReserveLargest)),
        followed: true,
        consumer: Consumer::Poll,
    },
];

/// The child: waits for the go byte, makes `n` calls of `call`, prints the time they took.
fn child(call: &str, n: u64) {
    let mut go = [0u8; 1];
    std::io::stdin().read_exact(&mut go).expect("go byte");
    let to: SocketAddrV4 = "127.0.0.1:9".parse().expect("an address");
    let addr = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: to.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(*to.ip()).to_be(),
        },
        sin_zero: [0; 8],
    };
    let start = Instant::now();
    for _ in 0..n {
        match call {
            // SAFETY: a one-byte send from a static buffer, no address; fails (ENOTSOCK).
            "send" => unsafe {
                libc::sendto(1, c"x".as_ptr().cast(), 1, 0, std::ptr::null(), 0);
            },
            // SAFETY: as above, with a valid sockaddr_in of its size.
            "sendto" => unsafe {
                libc::sendto(
                    1,
                    c"x".as_ptr().cast(),
                    1,
                    0,
                    (&addr as *const libc::sockaddr_in).cast(),
                    std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
                );
            },
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

/// Runs one child; returns its ns per call, the records consumed and lost.
fn run(call: &str, n: u64, case: Case) -> (f64, u64, u64) {
    let calls: Vec<i64> = ordeal_events::calls::CALLS
        .iter()
        .map(|c| c.nr)
        .chain([SYS_GETPPID])
        .collect();
    // Unread, the ring must hold an enter and an exit record (152 bytes with headers) per call.
    let ring_bytes = match case.consumer {
        Consumer::AfterTheEnd => (n as usize * 160).next_power_of_two().min(1 << 30),
        _ => DEFAULT_RING_BYTES,
    };
    let mut probe = case.probe.map(|(stage, wakeup, copies)| {
        Probe::start_measuring(
            ProbeConfig {
                syscalls: &calls,
                ring_bytes,
                payload_bytes: 0,
            },
            stage,
            wakeup,
            copies,
        )
        .unwrap_or_else(|e| panic!("loading the probe (root needed): {e}"))
    });
    let mut c = Command::new(std::env::current_exe().expect("own path"))
        .env(CHILD_ENV, format!("{call}:{n}"))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("child starts");
    if let (Some(p), true) = (&probe, case.followed) {
        p.follow(c.id() as i32).expect("follow");
    }
    c.stdin.take().expect("stdin").write_all(b"g").expect("go");
    let mut records = 0u64;
    while c.try_wait().expect("wait").is_none() {
        match (&mut probe, case.consumer) {
            (Some(p), Consumer::Poll) => {
                records += p.poll(Duration::from_millis(20)).expect("poll").len() as u64
            }
            (Some(p), Consumer::Timer(ms)) => {
                std::thread::sleep(Duration::from_millis(ms));
                records += p.poll(Duration::ZERO).expect("poll").len() as u64;
            }
            _ => std::thread::sleep(Duration::from_millis(20)),
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
    for (call, cases) in [
        ("getppid", &CASES[..]),
        ("write", &CASES[..]),
        ("send", &COPY_CASES[..]),
        ("sendto", &COPY_CASES[..]),
    ] {
        let mut times = vec![Vec::new(); cases.len()];
        let mut seen = vec![(0, 0); cases.len()];
        for _round in 0..3 {
            for (i, &case) in cases.iter().enumerate() {
                let (ns, records, lost) = run(call, n, case);
                times[i].push(ns);
                seen[i] = (records, lost);
            }
        }
        let base = median(times[0].clone());
        println!("{call} x {n}:");
        for (i, case) in cases.iter().enumerate() {
            let m = median(times[i].clone());
            let (records, lost) = seen[i];
            println!(
                "  {:<30} {:>7.1} ns/call {:>5.2}x  {:>8} records {} lost",
                case.name,
                m,
                m / base,
                records,
                lost
            );
        }
    }
}
