//! Framing does not depend on how the bytes were cut: a pipelined conversation split at any
//! byte boundary, or fed a byte at a time, decodes exactly as when each write comes whole.
//! Missed bytes and frames longer than the buffer are skipped without losing the next frame.

mod common;

use common::*;
use ordeal_proto::{Framed, KvRequest, Protocol, Side, MAX_BUFFER};

/// Every conversation, its protocol and the exchanges it makes.
fn conversations() -> Vec<(&'static str, Vec<Transfer>, Vec<String>)> {
    let owned = |pairs: &[&str]| pairs.iter().map(|p| p.to_string()).collect::<Vec<_>>();
    vec![
        ("resp", resp_client(), owned(RESP_CLIENT_PAIRS)),
        ("resp", resp_replica(false), resp_replica_pairs(false)),
        ("resp", resp_replica(true), resp_replica_pairs(true)),
        ("demo-kv", demo_client(), owned(DEMO_CLIENT_PAIRS)),
        ("demo-kv", demo_backup(), owned(DEMO_BACKUP_PAIRS)),
        ("memcached", memcached(), owned(MEMCACHED_PAIRS)),
    ]
}

fn offsets(frames: &[Framed]) -> Vec<(Side, u64, u64, String)> {
    frames
        .iter()
        .map(|f| (f.side, f.start, f.end, f.message.text.clone()))
        .collect()
}

#[test]
fn whole_transfers_make_the_expected_exchanges_and_are_detected() {
    for (name, transfers, expected) in conversations() {
        let frames = whole(Some(proto(name)), &transfers);
        assert_eq!(pairs(&frames), expected, "{name}");
        // Frames tile each side's stream: every byte but keep-alives is in one.
        for side in [C, S] {
            let mine: Vec<_> = frames.iter().filter(|f| f.side == side).collect();
            assert!(mine.windows(2).all(|w| w[0].end <= w[1].start), "{name}");
        }
        // Detected from the first bytes, the same frames.
        let detected = whole(None, &transfers);
        assert_eq!(detected, frames, "{name} detected");
    }
    let frames = whole(Some(proto("resp")), &resp_client());
    assert_eq!(
        offsets(&frames[..4]),
        [
            (C, 0, 29, "SET k1 v1".into()),
            (C, 29, 58, "SET k2 v2".into()),
            (C, 58, 79, "GET k1".into()),
            (S, 0, 5, "+OK".into()),
        ]
    );
}

#[test]
fn any_split_into_two_pieces_decodes_the_same() {
    for (name, transfers, _) in conversations() {
        let p = Some(proto(name));
        let expected = whole(p, &transfers);
        for (i, (_, bytes)) in transfers.iter().enumerate() {
            for cut in 1..bytes.len() {
                let split = chunks(&transfers, |j, _| if j == i { vec![cut] } else { vec![] });
                assert_eq!(
                    feed(p, &split),
                    expected,
                    "{name}: transfer {i} cut at {cut}"
                );
                // Detection too, when the first transfer is the one cut.
                if i == 0 {
                    assert_eq!(
                        feed(None, &split),
                        expected,
                        "{name}: detected, cut at {cut}"
                    );
                }
            }
        }
    }
}

#[test]
fn byte_by_byte_decodes_the_same() {
    for (name, transfers, _) in conversations() {
        let expected = whole(Some(proto(name)), &transfers);
        let bytewise = chunks(&transfers, |_, bytes| (1..bytes.len()).collect());
        assert_eq!(feed(Some(proto(name)), &bytewise), expected, "{name}");
        assert_eq!(feed(None, &bytewise), expected, "{name} detected");
    }
}

/// `transfers` fed whole except transfer `gap`, of which only the bytes from `from` are
/// seen, and not as the start of a transfer.
fn with_gap(
    p: &'static dyn Protocol,
    transfers: &[Transfer],
    gap: usize,
    from: usize,
) -> Vec<Framed> {
    let all = chunks(transfers, |i, _| if i == gap { vec![from] } else { vec![] });
    let seen: Vec<_> = all
        .into_iter()
        .filter(|&(side, at, _, boundary)| {
            // Drop the head of the transfer with the gap.
            let head = boundary && side == transfers[gap].0 && at == start_of(transfers, gap);
            !head
        })
        .collect();
    feed(Some(p), &seen)
}

fn start_of(transfers: &[Transfer], i: usize) -> u64 {
    let side = transfers[i].0;
    transfers[..i]
        .iter()
        .filter(|(s, _)| *s == side)
        .map(|(_, b)| b.len() as u64)
        .sum()
}

#[test]
fn missed_bytes_are_skipped_to_the_next_write() {
    let texts = |frames: &[Framed]| -> Vec<(Side, u64, String)> {
        frames
            .iter()
            .map(|f| (f.side, f.start, f.message.text.clone()))
            .collect()
    };
    // RESP: the second write's first 5 bytes missed; its rest, mid-frame, is not decoded,
    // the replies still are (a reply without its request stands alone).
    let resp = resp_client();
    for from in [1, 5, 20, 40] {
        let frames = with_gap(proto("resp"), &resp, 2, from);
        let client: Vec<_> = texts(&frames).into_iter().filter(|t| t.0 == C).collect();
        assert_eq!(
            client,
            [
                (C, 0, "SET k1 v1".into()),
                (C, 29, "SET k2 v2".into()),
                (C, 58, "GET k1".into()),
                (C, 137, "PING".into()),
                (C, 143, "HELLO 3".into()),
                (C, 165, "GET nope".into()),
                (C, 188, "SUBSCRIBE ch".into()),
            ],
            "resp, gap up to {from}"
        );
    }
    let frames = with_gap(proto("demo-kv"), &demo_client(), 2, 3);
    assert_eq!(
        pairs(&frames),
        [
            "SET k3 v7 -> OK",
            "GET k3 -> VALUE v7",
            "NOTFOUND",
            "PRIMARY",
            "SET a -> ERR usage: SET key value"
        ]
    );
    let frames = with_gap(proto("memcached"), &memcached(), 0, 4);
    assert_eq!(
        pairs(&frames),
        [
            "STORED",
            "VALUE k3 v7",
            "delete a noreply",
            "get a b -> VALUE a 1",
            "incr n 1 -> 5",
            "stats -> STAT pid 1, uptime 2",
        ]
    );
}

/// A command with a 200 KB value, then a small one, in one write; the reply likewise.
fn long_value(name: &str) -> (Vec<u8>, Vec<u8>, u64) {
    let value = vec![b'x'; 200_000];
    let (mut set, mut reply, head) = match name {
        "resp" => (
            b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$200000\r\n".to_vec(),
            b"+OK\r\n$200000\r\n".to_vec(),
            29,
        ),
        _ => (
            b"set k 0 0 200000\r\n".to_vec(),
            b"STORED\r\nVALUE k 0 200000\r\n".to_vec(),
            18,
        ),
    };
    set.extend_from_slice(&value);
    reply.extend_from_slice(&value);
    match name {
        "resp" => {
            set.extend_from_slice(b"\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n");
            reply.extend_from_slice(b"\r\n");
        }
        _ => {
            set.extend_from_slice(b"\r\nget k\r\n");
            reply.extend_from_slice(b"\r\nEND\r\n");
        }
    }
    (set, reply, head)
}

#[test]
fn a_value_longer_than_the_buffer_is_one_message_and_the_next_command_follows() {
    for name in ["resp", "memcached"] {
        let (set, reply, head) = long_value(name);
        let transfers = vec![(C, set.clone()), (S, reply.clone())];
        let expected = whole(Some(proto(name)), &transfers);
        let set_end = head + 200_002;
        let (set_text, get_text) = match name {
            "resp" => ("SET k x", "GET k"),
            _ => ("set k 0 0 200000 x", "get k"),
        };
        let client: Vec<_> = expected
            .iter()
            .filter(|f| f.side == C)
            .map(|f| (f.start, f.end, f.message.truncated, f.message.text.clone()))
            .collect();
        assert_eq!(
            client,
            [
                (
                    0,
                    set_end,
                    true,
                    format!("{set_text}{}…(200000 bytes)", "x".repeat(47))
                ),
                (set_end, set.len() as u64, false, get_text.to_string()),
            ],
            "{name}"
        );
        let Some(KvRequest::Write { key, value }) = &expected[0].message.kv_request else {
            panic!("{name}: not a write");
        };
        assert_eq!(
            (key.as_str(), value.len()),
            ("k", MAX_BUFFER - head as usize)
        );
        let server: Vec<_> = expected.iter().filter(|f| f.side == S).collect();
        assert_eq!(server.len(), 2, "{name}");
        assert!(server[1].message.truncated);
        // memcached's `VALUE` list ends at `END`, which comes after the value cut: the
        // message ends with the value, `END` is skipped as the rest of its reply.
        let end = reply.len() - if name == "resp" { 0 } else { 5 };
        assert_eq!(server[1].end, end as u64, "{name}");
        // In 16 KiB reads or byte by byte: the same.
        for size in [1, 7, 16 * 1024] {
            let cut = chunks(&transfers, |_, b| (size..b.len()).step_by(size).collect());
            assert_eq!(feed(Some(proto(name)), &cut), expected, "{name} in {size}");
        }
        // Bytes missed inside the value being skipped: still one message, then the next.
        let cut = chunks(&transfers, |i, _| {
            if i == 0 {
                vec![70_000, 150_000]
            } else {
                vec![]
            }
        });
        let seen: Vec<_> = cut
            .iter()
            .filter(|c| !(c.0 == C && c.1 == 70_000))
            .copied()
            .collect();
        assert_eq!(
            feed(Some(proto(name)), &seen),
            expected,
            "{name} with a gap"
        );
    }
}

#[test]
fn a_demo_line_longer_than_a_node_accepts_is_skipped() {
    let mut long = b"SET k ".to_vec();
    long.extend(std::iter::repeat_n(b'x', 100_000));
    long.push(b'\n');
    let transfers = vec![
        (C, b"GET a\n".to_vec()),
        (C, long),
        (C, b"GET b\n".to_vec()),
    ];
    let frames = whole(Some(proto("demo-kv")), &transfers);
    assert_eq!(
        offsets(&frames),
        [
            (C, 0, 6, "GET a".into()),
            (C, 100_013, 100_019, "GET b".into()),
        ]
    );
}

/// A random RESP2/RESP3 reply: every type, nested, bulk data with `\r\n` inside.
fn random_reply(rng: &mut Rng, depth: usize, out: &mut Vec<u8>) {
    let kinds = if depth >= 3 { 11 } else { 15 };
    match rng.below(kinds) {
        0 => out.extend_from_slice(if rng.below(2) == 0 {
            b"+OK\r\n"
        } else {
            b"+PONG\r\n"
        }),
        1 => out.extend_from_slice(b"-ERR wrong number of arguments\r\n"),
        2 => out.extend_from_slice(format!(":{}\r\n", rng.next() as i64 / 1000).as_bytes()),
        3 | 4 => {
            let data: Vec<u8> = (0..rng.below(30)).map(|_| rng.byte()).collect();
            let kind = if rng.below(4) == 0 { '!' } else { '$' };
            out.extend_from_slice(format!("{kind}{}\r\n", data.len()).as_bytes());
            out.extend_from_slice(&data);
            out.extend_from_slice(b"\r\n");
        }
        5 => out.extend_from_slice(if rng.below(2) == 0 {
            b"$-1\r\n"
        } else {
            b"_\r\n"
        }),
        6 => out.extend_from_slice(b",3.25\r\n"),
        7 => out.extend_from_slice(b"#f\r\n"),
        8 => out.extend_from_slice(b"(3492890328409238509324850943850943825024385\r\n"),
        9 => out.extend_from_slice(b"=15\r\ntxt:Some string\r\n"),
        10 => out.extend_from_slice(b"*-1\r\n"),
        kind => {
            let n = rng.below(4);
            let (header, values) = match kind {
                11 => ('*', n),
                12 => ('%', 2 * n),
                13 => ('~', n),
                _ => ('|', 2 * n),
            };
            out.extend_from_slice(format!("{header}{n}\r\n").as_bytes());
            for _ in 0..values {
                random_reply(rng, depth + 1, out);
            }
            if header == '|' {
                // The value the attribute annotates.
                random_reply(rng, depth + 1, out);
            }
        }
    }
}

#[test]
fn random_valid_replies_decode_the_same_however_cut() {
    let mut rng = Rng(0x7e57_5eed);
    for round in 0..150 {
        let requests = 1 + rng.below(6);
        let mut client = Vec::new();
        let mut server = Vec::new();
        for i in 0..requests {
            if rng.below(3) == 0 {
                client.extend_from_slice(format!("GET k{i}\r\n").as_bytes());
            } else {
                let key = format!("k{i}");
                let command = format!("*2\r\n$3\r\nGET\r\n${}\r\n{key}\r\n", key.len());
                client.extend_from_slice(command.as_bytes());
            }
            random_reply(&mut rng, 0, &mut server);
        }
        let transfers = vec![(C, client), (S, server)];
        let p = Some(proto("resp"));
        let expected = whole(p, &transfers);
        let exchanges = pairs(&expected);
        assert_eq!(exchanges.len(), requests, "round {round}: {exchanges:?}");
        assert!(
            exchanges.iter().all(|x| x.contains(" -> ")),
            "{exchanges:?}"
        );
        let bytewise = chunks(&transfers, |_, b| (1..b.len()).collect());
        assert_eq!(feed(p, &bytewise), expected, "round {round} byte by byte");
        for _ in 0..10 {
            let t = rng.below(2);
            let at = rng.below(transfers[t].1.len());
            let split = chunks(&transfers, |i, _| if i == t { vec![at] } else { vec![] });
            assert_eq!(feed(p, &split), expected, "round {round} cut {t} at {at}");
        }
    }
}
