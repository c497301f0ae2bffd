//! How fast RESP decodes: a capture of pipelined `SET`/`GET` (10-byte keys, 100-byte
//! values) and their replies, streamed through `Conversation` and `Pairer` in 16 KiB reads,
//! as ordeal decodes a traced connection. The capture is a few MB generated once and looped,
//! so any size streams in constant memory.
//!
//! `cargo run --release -p ordeal-proto --example decode_bench -- 1024` (the size in MB,
//! both directions together; 1024 when not given).

use std::time::Instant;

use ordeal_proto::{by_name, Conversation, Pairer, Side};

/// One read of the tracer.
const READ: usize = 16 * 1024;
/// SET/GET pairs in the looped pattern.
const PAIRS: usize = 20_000;

fn main() {
    let mb: u64 = match std::env::args().nth(1).map(|a| a.parse()) {
        None => 1024,
        Some(Ok(mb)) if mb > 0 => mb,
        Some(_) => {
            eprintln!("usage: decode_bench [MB]");
            std::process::exit(2);
        }
    };
    let total = mb * 1024 * 1024;
    let (client, server, client_per_pair, server_per_pair) = pattern();

    let resp = by_name("resp").expect("resp is registered");
    let mut conv = Conversation::new(Some(resp));
    let mut pairer = Pairer::default();
    let mut done = Vec::new();
    let (mut messages, mut exchanges, mut answered, mut mismatched) = (0u64, 0u64, 0u64, 0u64);
    let mut fed = [0u64; 2];
    let started = Instant::now();
    let cpu_started = cpu_seconds();
    while fed[0] + fed[1] < total {
        let n = feed(&mut conv, Side::Client, &client, fed[0], READ);
        fed[0] += n.0;
        for framed in n.1 {
            messages += 1;
            pairer.push(framed, &mut done);
        }
        // The replies to the requests sent so far, as a server answers a pipeline.
        let replied = fed[0] / client_per_pair * server_per_pair;
        while fed[1] < replied {
            let n = feed(
                &mut conv,
                Side::Server,
                &server,
                fed[1],
                (replied - fed[1]) as usize,
            );
            fed[1] += n.0;
            for framed in n.1 {
                messages += 1;
                pairer.push(framed, &mut done);
            }
        }
        exchanges += done.len() as u64;
        for x in &done {
            if let Some(response) = &x.response {
                answered += 1;
                let expected = if x.request.message.op == "SET" {
                    "+OK"
                } else {
                    "$"
                };
                mismatched += u64::from(response.message.op != expected);
            }
        }
        done.clear();
    }
    let seconds = started.elapsed().as_secs_f64();
    let bytes = fed[0] + fed[1];
    let mb = bytes as f64 / 1048576.0;
    println!(
        "{mb:.0} MB of RESP in {READ}-byte reads in {seconds:.2} s: {:.0} MB/s, {:.2} M \
         messages/s ({messages} messages, {exchanges} exchanges, {answered} answered, \
         {mismatched} mismatched), peak RSS {}",
        mb / seconds,
        messages as f64 / 1e6 / seconds,
        peak_rss().unwrap_or_else(|| "unknown".into()),
    );
    // On a busy machine the wall clock counts other processes' turns; CPU time does not.
    if let (Some(start), Some(end)) = (cpu_started, cpu_seconds()) {
        let cpu = end - start;
        println!(
            "CPU time {cpu:.2} s: {:.0} MB/s, {:.2} M messages/s per CPU",
            mb / cpu,
            messages as f64 / 1e6 / cpu
        );
    }
}

/// Feeds one read (at most `max` bytes) of the looped `pattern` from stream offset `at`;
/// returns its length and the frames it completes.
fn feed(
    conv: &mut Conversation,
    side: Side,
    pattern: &[u8],
    at: u64,
    max: usize,
) -> (u64, Vec<ordeal_proto::Framed>) {
    let from = (at % pattern.len() as u64) as usize;
    let chunk = &pattern[from..pattern.len().min(from + READ.min(max))];
    (chunk.len() as u64, conv.feed(side, at, chunk, true))
}

/// The client's and the server's looped bytes, and the bytes of one SET/GET pair in each.
fn pattern() -> (Vec<u8>, Vec<u8>, u64, u64) {
    let mut client = Vec::new();
    let mut server = Vec::new();
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    for i in 0..PAIRS {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let key = format!("k{:09}", seed % 1_000_000_000);
        let value: String = (0..100)
            .map(|j| (b'a' + ((seed >> (j % 60)) as u8 + i as u8) % 26) as char)
            .collect();
        client.extend_from_slice(
            format!("*3\r\n$3\r\nSET\r\n$10\r\n{key}\r\n$100\r\n{value}\r\n").as_bytes(),
        );
        client.extend_from_slice(format!("*2\r\n$3\r\nGET\r\n$10\r\n{key}\r\n").as_bytes());
        server.extend_from_slice(b"+OK\r\n");
        server.extend_from_slice(format!("$100\r\n{value}\r\n").as_bytes());
    }
    let (c, s) = (client.len() / PAIRS, server.len() / PAIRS);
    (client, server, c as u64, s as u64)
}

/// CPU time this (single) thread has run, from Linux's `/proc/self/schedstat`.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/schedstat").ok()?;
    let nanos: f64 = stat.split_whitespace().next()?.parse().ok()?;
    Some(nanos / 1e9)
}

/// The process's peak resident memory (Linux's `VmHWM`).
fn peak_rss() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    Some(line["VmHWM:".len()..].trim().to_string())
}
