//! What a dormant fault schedule costs per traced call: the time the tracer hook
//! (`ScheduleHook`) takes to feed one event to every trigger, with 0, 1, 4 and 16 faults
//! whose triggers match often but never fire. Compare with the cost of one ptrace stop
//! (8.5-30 us, docs/bench.md).
//!
//!     cargo run --release -p ordeal-run --example hook_cost

use ordeal_events::{Class, Event, Proto, Sock};
use ordeal_faults::{Participants, Schedule};
use ordeal_run::faults::{ScheduleHook, Shared};
use ordeal_tracer::Interceptor;
use std::time::Instant;

const KINDS: [&str; 4] = [
    r#"kind = "crash"
node = "redis"
trigger = { nth = 1000000000, node = "redis", class = "data", direction = "send" }"#,
    r#"kind = "fail"
errno = "ECONNRESET"
trigger = { nth = 1000000000, node = "redis", call = "read" }"#,
    r#"kind = "delay"
duration = "10ms"
trigger = { p = 0.0, node = "redis", class = "data" }"#,
    r#"kind = "fail"
errno = "EIO"
trigger = { nth = 1, node = "redis", call = "fsync", path = "**/never-such-file" }"#,
];

fn schedule(n: usize) -> Option<Schedule> {
    if n == 0 {
        return None;
    }
    let text: String = (0..n)
        .map(|i| format!("[[fault]]\nname = \"f{i}\"\n{}\n", KINDS[i % KINDS.len()]))
        .collect();
    let names = Participants::new(vec!["redis".to_string()], vec!["bench".to_string()]);
    Some(Schedule::parse_for(&text, "dormant.toml", &names).expect("valid"))
}

fn event(i: u64) -> Event {
    let send = i.is_multiple_of(2);
    Event {
        seq: i,
        ts: i * 1000,
        node: "redis".into(),
        pid: 100,
        tid: 100,
        call: if send { "write" } else { "read" }.into(),
        class: Some(Class::Data),
        fd: Some(7),
        len: Some(16 * 1024),
        sock: Some(Sock {
            ino: 4242,
            proto: Proto::Tcp,
            local: Some("127.0.0.1:6379".into()),
            remote: Some("127.0.0.1:50000".into()),
            peer_ino: None,
            peer_node: Some("bench".into()),
        }),
        ..Default::default()
    }
}

fn main() {
    const N: u64 = 2_000_000;
    let events: Vec<Event> = (0..1024).map(event).collect();
    println!(
        "{:>7}  {:>12}  {:>16}",
        "faults", "ns per event", "ns per trigger"
    );
    let mut base = 0.0;
    for n in [0usize, 1, 4, 16] {
        let mut hook = schedule(n).map(|s| ScheduleHook::new(&s, Shared::default()));
        let t0 = Instant::now();
        let mut fired = 0u64;
        for i in 0..N {
            let ev = &events[(i % 1024) as usize];
            if let Some(h) = hook.as_mut() {
                // Entry and exit, as the tracer does for a recorded call.
                let a = h.at_entry(ev);
                let b = h.at_exit(ev);
                fired += u64::from(a != ordeal_tracer::Action::Proceed)
                    + u64::from(b != ordeal_tracer::Action::Proceed);
            }
        }
        let ns = t0.elapsed().as_nanos() as f64 / N as f64;
        if n == 0 {
            base = ns;
        }
        assert_eq!(fired, 0, "dormant faults fired");
        let per = if n == 0 { 0.0 } else { (ns - base) / n as f64 };
        println!("{n:>7}  {ns:>12.1}  {per:>16.1}");
    }
}
