//! No input makes a decoder panic or report frames that are not in the stream: random bytes,
//! and valid conversations mutated, fed in random pieces with random gaps, to each protocol
//! and to detection.

mod common;

use common::*;
use ordeal_proto::{Conversation, Framed, Protocol, Side, MAX_BUFFER};

/// Protocols to try: each, and detection among all.
fn decoders() -> Vec<Option<&'static dyn Protocol>> {
    vec![
        Some(proto("resp")),
        Some(proto("demo-kv")),
        Some(proto("memcached")),
        None,
    ]
}

/// Feeds `transfers` in random pieces, sometimes skipping or repeating bytes, and checks
/// what comes out: frames are non-empty, in order on each side, and (when no frame can
/// be longer than the buffer) within the bytes fed, unless cut (bytes of it were missed).
fn check(
    protocol: Option<&'static dyn Protocol>,
    transfers: &[Transfer],
    rng: &mut Rng,
    bounded: bool,
) -> usize {
    let mut frames = 0;
    let mut conv = Conversation::new(protocol);
    let mut at = [0u64; 2];
    let mut fed_end = [0u64; 2];
    let mut last_end = [0u64; 2];
    for (side, bytes) in transfers {
        let s = side.index();
        let mut from = 0;
        while from < bytes.len() {
            let to = (from + 1 + rng.below(bytes.len() - from)).min(bytes.len());
            let offset = at[s] + from as u64;
            let framed: Vec<Framed> = match rng.below(20) {
                // Missed.
                0 => Vec::new(),
                // Seen again from a little earlier.
                1 => {
                    let back = rng.below(from + 1);
                    conv.feed(*side, offset - back as u64, &bytes[from - back..to], false)
                }
                _ => conv.feed(*side, offset, &bytes[from..to], from == 0),
            };
            fed_end[s] = fed_end[s].max(at[s] + to as u64);
            for f in framed {
                let i = f.side.index();
                assert!(f.start < f.end, "{f:?}");
                assert!(f.start >= last_end[i], "{f:?} after {}", last_end[i]);
                // A frame whose bytes were missed is decoded from its head and measured by its
                // header (marked truncated): its end may lie past what was fed.
                if bounded && !f.message.truncated {
                    assert!(f.end <= fed_end[i], "{f:?} past {}", fed_end[i]);
                }
                last_end[i] = f.end;
                frames += 1;
            }
            from = to;
        }
        at[s] += bytes.len() as u64;
    }
    frames
}

/// Pieces of every protocol's messages: joined at random, they make streams that are
/// nearly right, which is where decoders have the most to decide.
const FRAGMENTS: &[&[u8]] = &[
    b"*2\r\n",
    b"*3\r\n",
    b"*1\r\n",
    b"*-1\r\n",
    b"*0\r\n",
    b"$3\r\nSET\r\n",
    b"$3\r\nGET\r\n",
    b"$1\r\nk\r\n",
    b"$2\r\nv7\r\n",
    b"$-1\r\n",
    b"$5\r\n",
    b"+OK\r\n",
    b"-ERR x\r\n",
    b":1\r\n",
    b"_\r\n",
    b"#t\r\n",
    b",1.5\r\n",
    b"(12\r\n",
    b"%1\r\n",
    b"~2\r\n",
    b">3\r\n",
    b"|1\r\n",
    b"!3\r\nERR\r\n",
    b"=8\r\ntxt:abcd\r\n",
    b"$9\r\nsubscribe\r\n",
    b"$7\r\nmessage\r\n",
    b"+FULLRESYNC x 0\r\n",
    b"+CONTINUE\r\n",
    b"$EOF:eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee\r\n",
    b"eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee",
    b"PSYNC ? -1\r\n",
    b"SYNC\r\n",
    b"MULTI\r\n",
    b"SUBSCRIBE a b\r\n",
    b"PING\r\n",
    b"REPLCONF ACK 1\r\n",
    b"\n",
    b"\r\n",
    b"SET k v\n",
    b"GET k\n",
    b"JOIN 1\n",
    b"ROLE\n",
    b"SNAPSHOT 1 2\n",
    b"KV a 1\n",
    b"ACK 1\n",
    b"REPL 2 a b\n",
    b"OK\n",
    b"VALUE v\n",
    b"NOTFOUND\n",
    b"ERR x\n",
    b"set k 0 0 2\r\n",
    b"get k\r\n",
    b"get a b\r\n",
    b"ms k 2\r\n",
    b"v7\r\n",
    b"noreply",
    b"VALUE k 0 2\r\n",
    b"VALUE k 0 2 9\r\n",
    b"END\r\n",
    b"STAT a 1\r\n",
    b"STORED\r\n",
    b"VA 2\r\n",
    b"5\r\n",
    b"SERVER_ERROR x\r\n",
];

fn noisy(rng: &mut Rng, max: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let len = rng.below(max);
    while out.len() < len {
        if rng.below(10) < 7 {
            out.extend_from_slice(FRAGMENTS[rng.below(FRAGMENTS.len())]);
        } else {
            out.push(rng.byte());
        }
    }
    out.truncate(len);
    out
}

#[test]
fn random_bytes_never_panic_nor_make_frames_outside_the_stream() {
    let mut rng = Rng(0x5eed_0f04_d3a1);
    for protocol in decoders() {
        let mut frames = 0;
        for _ in 0..2000 {
            let mut transfers = Vec::new();
            for _ in 0..1 + rng.below(4) {
                let side = if rng.below(2) == 0 {
                    Side::Client
                } else {
                    Side::Server
                };
                let bytes = if rng.below(4) == 0 {
                    (0..rng.below(300)).map(|_| rng.byte()).collect()
                } else {
                    noisy(&mut rng, 300)
                };
                transfers.push((side, bytes));
            }
            frames += check(protocol, &transfers, &mut rng, true);
        }
        // The inputs were decoded, not all refused at once.
        // Decoded, not all refused at once (fixed seed: the same every run).
        let name = protocol.map(|p| p.name());
        assert!(frames >= 100, "{name:?}: {frames} frames");
    }
}

#[test]
fn mutated_conversations_never_panic_nor_make_frames_outside_the_stream() {
    let conversations = [
        resp_client(),
        resp_replica(false),
        resp_replica(true),
        demo_client(),
        demo_backup(),
        memcached(),
    ];
    let mut rng = Rng(0x0dec_0de5);
    for protocol in decoders() {
        let mut frames = 0;
        for conversation in &conversations {
            for _ in 0..300 {
                let mut transfers = conversation.clone();
                for _ in 0..1 + rng.below(3) {
                    let t = rng.below(transfers.len());
                    let bytes = &mut transfers[t].1;
                    let at = rng.below(bytes.len());
                    match rng.below(4) {
                        0 => bytes[at] = rng.byte(),
                        1 => {
                            let n = rng.below(bytes.len() - at);
                            bytes.drain(at..at + n);
                        }
                        2 => {
                            let copy = bytes[at..].to_vec();
                            bytes.splice(at..at, copy.into_iter().take(20));
                        }
                        _ => {
                            let noise: Vec<u8> = (0..rng.below(8)).map(|_| rng.byte()).collect();
                            bytes.splice(at..at, noise);
                        }
                    }
                }
                frames += check(protocol, &transfers, &mut rng, true);
            }
        }
        // Decoded, not all refused at once (fixed seed: the same every run).
        let name = protocol.map(|p| p.name());
        assert!(frames >= 2000, "{name:?}: {frames} frames");
    }
}

#[test]
fn long_noisy_streams_stay_in_order() {
    let mut rng = Rng(0x0010_00a6);
    for protocol in decoders() {
        let mut frames = 0;
        for round in 0..6 {
            // Writes of long values with random declared lengths, noise after some.
            let mut transfers = Vec::new();
            let mut total = 0;
            while total < 3 * MAX_BUFFER {
                let n = rng.below(2 * MAX_BUFFER);
                // Each protocol's own long command; all of them for detection.
                let format = match protocol.map(|p| p.name()) {
                    Some("resp") => 0,
                    Some("memcached") => 1,
                    Some(_) => 2,
                    None => round % 3,
                };
                let head = match format {
                    0 => format!("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n${n}\r\n"),
                    1 => format!("set k 0 0 {n}\r\n"),
                    _ => format!("SET k {n}"),
                };
                let mut write = head.into_bytes();
                write.extend((0..n).map(|_| rng.byte()));
                write.extend_from_slice(if format == 2 { b"\n" } else { b"\r\n" });
                write.extend(noisy(&mut rng, 40));
                total += write.len();
                transfers.push((Side::Client, write));
            }
            frames += check(protocol, &transfers, &mut rng, false);
        }
        // Decoded, not all refused at once (fixed seed: the same every run).
        let name = protocol.map(|p| p.name());
        assert!(frames >= 3, "{name:?}: {frames} frames");
    }
}
