//! The grpc decoder on whole conversations: a synthetic etcd client and server built here
//! (protobuf, HPACK with and without Huffman and with the dynamic table across requests,
//! HTTP/2 frames), real etcdctl captures, split and mangled streams.

use ordeal_proto::grpc::{Grpc, CLIENT_PREFACE};
use ordeal_proto::{
    detect, Conversation, Detect, Detection, Exchange, Framed, KvRequest, KvResponse, Pairer,
    Protocol, Side,
};

static GRPC: Grpc = Grpc;

#[path = "grpc/wire.rs"]
mod wire;
use wire::*;

// ---- Driving the decoder. ----

/// Decodes `transfers` in order, each a whole write.
fn decode(transfers: &[(Side, Vec<u8>)]) -> Vec<Framed> {
    let mut conv = Conversation::new(Some(&GRPC));
    let mut at = [0u64; 2];
    let mut out = Vec::new();
    for (side, bytes) in transfers {
        out.extend(conv.feed(*side, at[side.index()], bytes, true));
        at[side.index()] += bytes.len() as u64;
    }
    out
}

fn exchanges(framed: Vec<Framed>) -> Vec<Exchange> {
    let mut pairs = Pairer::default();
    let mut done = Vec::new();
    for f in framed {
        pairs.push(f, &mut done);
    }
    pairs.finish(&mut done);
    done
}

fn texts(done: &[Exchange]) -> Vec<String> {
    done.iter()
        .map(|x| match &x.response {
            Some(r) => format!("{} -> {}", x.request.message.text, r.message.text),
            None => x.request.message.text.clone(),
        })
        .collect()
}

/// Frames by side and offset: the decoding, whatever order the sides were fed in.
fn by_offset(mut framed: Vec<Framed>) -> Vec<(Side, u64, u64, String)> {
    framed.sort_by_key(|f| (f.side, f.start));
    framed
        .into_iter()
        .map(|f| (f.side, f.start, f.end, f.message.text))
        .collect()
}

#[test]
fn an_etcd_conversation_decodes_with_and_without_huffman() {
    for huffman in [false, true] {
        let w = etcd_conversation(huffman);
        let done = exchanges(decode(&w.transfers));
        assert_eq!(texts(&done), ETCD_EXCHANGES, "huffman: {huffman}");
        let kv: Vec<_> = done
            .iter()
            .map(|x| {
                (
                    x.request.message.op.clone(),
                    x.request.message.stream,
                    x.request.message.kv_request.clone(),
                    x.response
                        .as_ref()
                        .and_then(|r| r.message.kv_response.clone()),
                )
            })
            .collect();
        let s = |s: &str| s.to_string();
        assert_eq!(
            kv,
            [
                (
                    s("etcd.Put"),
                    Some(1),
                    Some(KvRequest::Write {
                        key: s("k3"),
                        value: s("v7")
                    }),
                    Some(KvResponse::Ok)
                ),
                (
                    s("etcd.Range"),
                    Some(3),
                    Some(KvRequest::Read { key: s("k3") }),
                    Some(KvResponse::Value(Some(s("v7"))))
                ),
                (
                    s("etcd.Txn"),
                    Some(5),
                    Some(KvRequest::Cas {
                        key: s("k3"),
                        old: s("v7"),
                        new: s("v8")
                    }),
                    Some(KvResponse::Ok)
                ),
                (
                    s("etcd.Put"),
                    Some(7),
                    Some(KvRequest::Write {
                        key: s("k4"),
                        value: s("v1")
                    }),
                    Some(KvResponse::Unknown)
                ),
                (
                    s("etcd.Range"),
                    Some(9),
                    Some(KvRequest::Read { key: s("nokey") }),
                    Some(KvResponse::Value(None))
                ),
                (s("etcd.LeaseGrant"), Some(11), None, None),
                (
                    s("etcd.Range"),
                    Some(13),
                    Some(KvRequest::Read { key: s("k5") }),
                    Some(KvResponse::Unknown)
                ),
            ]
        );
        assert!(done.iter().all(|x| !x.request.message.truncated));
    }
}

#[test]
fn after_missed_bytes_calls_decode_again_where_the_table_allows() {
    let w = etcd_conversation(true);
    // The client's Txn request (stream 5, the one comparing a value with v7) is not seen.
    let compare_v7 = pb_bytes(7, b"v7");
    let txn = w
        .transfers
        .iter()
        .position(|(side, b)| *side == Side::Client && b.windows(4).any(|x| x == compare_v7))
        .unwrap();
    assert_eq!(txn, 9);
    let mut conv = Conversation::new(Some(&GRPC));
    let mut at = [0u64; 2];
    let mut framed = Vec::new();
    for (i, (side, bytes)) in w.transfers.iter().enumerate() {
        if i != txn {
            framed.extend(conv.feed(*side, at[side.index()], bytes, true));
        }
        at[side.index()] += bytes.len() as u64;
    }
    // Later requests refer to table entries the client added before the gap: they do not
    // decode (rather than decode wrong); the server's side is whole.
    let done = exchanges(framed);
    assert_eq!(
        texts(&done),
        [
            "PUT k3 v7 -> OK rev 5",
            "RANGE k3 -> k3=v7",
            // Its request not seen, the response does not say what it answers.
            "grpc-status 0",
            "? (headers not decoded) -> grpc-status 14 (UNAVAILABLE): etcdserver: request timed out",
            "? (headers not decoded) -> grpc-status 0",
            // A new path is a literal: decoded, the fields after it are not.
            "etcd.LeaseGrant -> grpc-status 0",
            "? (headers not decoded) -> RST_STREAM 8 (CANCEL)",
        ]
    );
    assert!(done[3].request.message.truncated);
}

#[test]
fn the_dynamic_table_carries_across_requests() {
    // The second call's block is all references to entries the first one added.
    let mut w = Wire::new(true);
    w.call(1, "/etcdserverpb.KV/Range", &pb_bytes(1, b"a"));
    w.call(3, "/etcdserverpb.KV/Range", &pb_bytes(1, b"b"));
    let second = &w.transfers.last().unwrap().1;
    assert_eq!(&second[9..16], &[0x83, 0x86, 0xc2, 0xc1, 0xc0, 0xbf, 0xbe]);
    let requests: Vec<_> = decode(&w.transfers)
        .into_iter()
        .map(|f| f.message.text)
        .collect();
    assert_eq!(requests, ["RANGE a", "RANGE b"]);
}

#[test]
fn split_at_every_byte_the_decoding_is_the_same() {
    let w = etcd_conversation(true);
    let whole = by_offset(decode(&w.transfers));
    assert_eq!(whole.len(), 14);
    let streams = w.streams();
    for side in [Side::Client, Side::Server] {
        let bytes = &streams[side.index()];
        let other = &streams[side.other().index()];
        for cut in 0..=bytes.len() {
            // The client's bytes first: a response never comes before its request.
            let mut transfers = vec![(side, bytes[..cut].to_vec()), (side, bytes[cut..].to_vec())];
            transfers.insert(
                if side == Side::Client { 2 } else { 0 },
                (side.other(), other.clone()),
            );
            assert_eq!(
                by_offset(decode(&transfers)),
                whole,
                "{side:?} cut at {cut}"
            );
        }
    }
    // Fed byte by byte, pairs come out the same.
    let mut conv = Conversation::new(Some(&GRPC));
    let mut framed = Vec::new();
    for (i, b) in streams[0].iter().enumerate() {
        framed.extend(conv.feed(Side::Client, i as u64, &[*b], false));
    }
    for (i, b) in streams[1].iter().enumerate() {
        framed.extend(conv.feed(Side::Server, i as u64, &[*b], false));
    }
    let mut done = exchanges(framed);
    done.sort_by_key(|x| x.request.message.stream);
    assert_eq!(texts(&done), ETCD_EXCHANGES);
}

#[test]
fn interleaved_streams_pair_by_stream_id() {
    let mut w = Wire::new(false);
    let block = |w: &mut Wire, path: &str| {
        w.client.block(&[
            (":method", "POST"),
            (":path", path),
            ("content-type", "application/grpc"),
        ])
    };
    let (b1, b3) = (
        block(&mut w, "/etcdserverpb.KV/Put"),
        block(&mut w, "/etcdserverpb.KV/Range"),
    );
    let body = grpc(&put(b"k1", b"v1"));
    let (d1, d2) = body.split_at(6);
    w.send(
        Side::Client,
        [
            frame(HEADERS, END_HEADERS, 1, &b1),
            frame(DATA, 0, 1, d1),
            frame(HEADERS, END_HEADERS, 3, &b3),
            frame(DATA, END_STREAM, 3, &grpc(&pb_bytes(1, b"k1"))),
            frame(DATA, END_STREAM, 1, d2),
        ]
        .concat(),
    );
    // Blocks encoded in the order they go on the wire: the table follows it.
    let head3 = w
        .server
        .block(&[(":status", "200"), ("content-type", "application/grpc")]);
    let head = w
        .server
        .block(&[(":status", "200"), ("content-type", "application/grpc")]);
    let ok3 = w.server.block(&[("grpc-status", "0")]);
    let ok = w.server.block(&[("grpc-status", "0")]);
    w.send(
        Side::Server,
        [
            frame(HEADERS, END_HEADERS, 3, &head3),
            frame(HEADERS, END_HEADERS, 1, &head),
            frame(DATA, 0, 1, &grpc(&header(2))),
            frame(
                DATA,
                0,
                3,
                &grpc(&[header(1), kv(b"k1", b"v0", 1)].concat()),
            ),
            frame(HEADERS, END_HEADERS | END_STREAM, 3, &ok3),
            frame(HEADERS, END_HEADERS | END_STREAM, 1, &ok),
        ]
        .concat(),
    );
    assert_eq!(
        texts(&exchanges(decode(&w.transfers))),
        ["RANGE k1 -> k1=v0", "PUT k1 v1 -> OK rev 2"]
    );
}

#[test]
fn plain_http2_other_services_and_client_resets() {
    let mut w = Wire::new(true);
    let get = w.client.block(&[(":method", "GET"), (":path", "/health")]);
    w.send(
        Side::Client,
        frame(HEADERS, END_HEADERS | END_STREAM, 1, &get),
    );
    let ok = w
        .server
        .block(&[(":status", "200"), ("content-type", "text/plain")]);
    w.send(
        Side::Server,
        [
            frame(HEADERS, END_HEADERS, 1, &ok),
            frame(DATA, END_STREAM, 1, b"ok\n"),
        ]
        .concat(),
    );
    w.call(3, "/grpc.health.v1.Health/Check", &[]);
    w.fail(3, "12", "unknown%20service");
    // A request the client gives up before its message: given out when it resets.
    let open = w.client.block(&[
        (":method", "POST"),
        (":path", "/etcdserverpb.Watch/Watch"),
        ("content-type", "application/grpc"),
    ]);
    w.send(Side::Client, frame(HEADERS, END_HEADERS, 5, &open));
    w.send(Side::Client, frame(RST_STREAM, 0, 5, &[0, 0, 0, 8]));
    let done = exchanges(decode(&w.transfers));
    assert_eq!(
        texts(&done),
        [
            "GET /health -> 200 ok\\n",
            "/grpc.health.v1.Health/Check (0 bytes) -> grpc-status 12 (UNIMPLEMENTED): unknown service",
            "etcd.Watch",
        ]
    );
    let ops: Vec<_> = done.iter().map(|x| x.request.message.op.as_str()).collect();
    assert_eq!(
        ops,
        ["GET /health", "/grpc.health.v1.Health/Check", "etcd.Watch"]
    );
    let response = done[1].response.as_ref().unwrap();
    assert_eq!(response.message.kv_response, Some(KvResponse::Fail));
}

#[test]
fn data_past_the_stream_limit_is_cut_and_the_next_request_decodes() {
    let mut w = Wire::new(false);
    let big = vec![b'x'; 100_000];
    let block = w.client.block(&[
        (":method", "POST"),
        (":path", "/etcdserverpb.KV/Put"),
        ("content-type", "application/grpc"),
    ]);
    w.send(
        Side::Client,
        [
            frame(HEADERS, END_HEADERS, 1, &block),
            frame(DATA, END_STREAM, 1, &grpc(&put(b"k9", &big))),
        ]
        .concat(),
    );
    w.call(3, "/etcdserverpb.KV/Range", &pb_bytes(1, b"k9"));
    let framed = decode(&w.transfers);
    let got: Vec<_> = framed
        .iter()
        .map(|f| (f.message.text.clone(), f.message.truncated, f.end - f.start))
        .collect();
    // The DATA frame's head fills the buffer: frame, gRPC and protobuf headers, then value.
    let seen = 64 * 1024 - 9 - 5 - 4 - 4;
    assert_eq!(
        got,
        [
            (
                format!("PUT k9 {}…({seen} bytes)", "x".repeat(48)),
                true,
                9 + 5 + 4 + 4 + 100_000
            ),
            ("RANGE k9".to_string(), false, 9 + 5 + 4)
        ]
    );
}

#[test]
fn detection() {
    assert_eq!(GRPC.detect(Side::Client, b""), Detect::Maybe);
    assert_eq!(GRPC.detect(Side::Client, b"PRI * HTTP/2"), Detect::Maybe);
    assert_eq!(GRPC.detect(Side::Client, CLIENT_PREFACE), Detect::Yes);
    assert_eq!(
        GRPC.detect(Side::Client, b"POST / HTTP/1.1\r\n"),
        Detect::No
    );
    assert_eq!(
        GRPC.detect(Side::Server, &[0, 0, 6, 4, 0, 0, 0, 0, 0]),
        Detect::Yes
    );
    assert_eq!(GRPC.detect(Side::Server, &[0, 0, 6, 4]), Detect::Maybe);
    assert_eq!(
        GRPC.detect(Side::Server, &[0, 0, 6, 4, 1, 0, 0, 0, 0]),
        Detect::No
    );
    assert_eq!(
        GRPC.detect(Side::Server, &[0, 0, 7, 4, 0, 0, 0, 0, 0]),
        Detect::No
    );
    assert_eq!(GRPC.detect(Side::Server, b"+OK\r\n"), Detect::No);
    // Among every protocol: the preface is no other's, nor a server's first SETTINGS.
    let found = |d: Detection| match d {
        Detection::Found(p) => p.name(),
        Detection::NeedMore => "need more",
        Detection::Unknown => "unknown",
    };
    assert_eq!(found(detect(Side::Client, CLIENT_PREFACE)), "grpc");
    assert_eq!(found(detect(Side::Client, b"PRI * HT")), "need more");
    let settings = [0, 0, 6, 4, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0x40, 0];
    assert_eq!(found(detect(Side::Server, &settings)), "grpc");
    static ONLY: &[&dyn Protocol] = &[&GRPC];
    // Detected from the first bytes, then decoded.
    let mut conv = Conversation::detecting_among(ONLY);
    let w = etcd_conversation(true);
    let mut framed = Vec::new();
    let mut at = [0u64; 2];
    for (side, bytes) in &w.transfers {
        framed.extend(conv.feed(*side, at[side.index()], bytes, true));
        at[side.index()] += bytes.len() as u64;
    }
    assert_eq!(texts(&exchanges(framed)), ETCD_EXCHANGES);
}

#[test]
fn real_etcdctl_captures_decode() {
    let cases: [(&str, &[u8], &[u8]); 6] = [
        (
            "PUT k3 v7 -> OK rev 7",
            include_bytes!("fixtures/etcdctl-put.c2s.bin"),
            include_bytes!("fixtures/etcdctl-put.s2c.bin"),
        ),
        (
            "RANGE k3 -> k3=v7",
            include_bytes!("fixtures/etcdctl-get.c2s.bin"),
            include_bytes!("fixtures/etcdctl-get.s2c.bin"),
        ),
        (
            "RANGE nokey -> not found",
            include_bytes!("fixtures/etcdctl-get-missing.c2s.bin"),
            include_bytes!("fixtures/etcdctl-get-missing.s2c.bin"),
        ),
        (
            "TXN k3 v7→v8 -> succeeded",
            include_bytes!("fixtures/etcdctl-txn.c2s.bin"),
            include_bytes!("fixtures/etcdctl-txn.s2c.bin"),
        ),
        (
            "TXN k3 v7→v8 -> failed",
            include_bytes!("fixtures/etcdctl-txn-failed.c2s.bin"),
            include_bytes!("fixtures/etcdctl-txn-failed.s2c.bin"),
        ),
        (
            "PUT k4 v1 lease=1234 -> grpc-status 5 (NOT_FOUND): etcdserver: requested lease not found",
            include_bytes!("fixtures/etcdctl-put-no-lease.c2s.bin"),
            include_bytes!("fixtures/etcdctl-put-no-lease.s2c.bin"),
        ),
    ];
    for (want, c2s, s2c) in cases {
        let transfers = [(Side::Client, c2s.to_vec()), (Side::Server, s2c.to_vec())];
        let done = exchanges(decode(&transfers));
        assert_eq!(texts(&done), [want]);
        let x = &done[0];
        assert_eq!(x.request.message.stream, Some(1));
        assert!(!x.request.message.truncated && !x.response.as_ref().unwrap().message.truncated);
    }
    let transfers = [
        (
            Side::Client,
            include_bytes!("fixtures/etcdctl-put.c2s.bin").to_vec(),
        ),
        (
            Side::Server,
            include_bytes!("fixtures/etcdctl-put.s2c.bin").to_vec(),
        ),
    ];
    let x = &exchanges(decode(&transfers))[0];
    assert_eq!(
        x.request.message.kv_request,
        Some(KvRequest::Write {
            key: "k3".into(),
            value: "v7".into()
        })
    );
    assert_eq!(
        x.response.as_ref().unwrap().message.kv_response,
        Some(KvResponse::Ok)
    );
    // A watch: its request is given out with its first message; the stream stays open
    // (events come as DATA) until etcdctl is stopped, so it is never answered.
    let transfers = [
        (
            Side::Client,
            include_bytes!("fixtures/etcdctl-watch.c2s.bin").to_vec(),
        ),
        (
            Side::Server,
            include_bytes!("fixtures/etcdctl-watch.s2c.bin").to_vec(),
        ),
    ];
    let done = exchanges(decode(&transfers));
    assert_eq!(texts(&done), ["WATCH k3"]);
    assert_eq!(done[0].request.message.op, "etcd.Watch");
}

/// xorshift64*: the same inputs on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

#[test]
fn mangled_streams_never_panic_and_frames_stay_in_order() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let bases = [
        etcd_conversation(false).streams(),
        etcd_conversation(true).streams(),
    ];
    for round in 0..2000 {
        let mut streams = bases[round % 2].clone();
        for s in &mut streams {
            match round % 4 {
                // Pure noise, sometimes after a valid preface.
                0 => {
                    let n = rng.below(600);
                    let noise: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                    if rng.below(2) == 0 {
                        *s = [CLIENT_PREFACE, &noise].concat();
                    } else {
                        *s = noise;
                    }
                }
                // Well-formed frame headers around random payloads: HPACK, padding and
                // gRPC framing see garbage.
                1 => {
                    let mut out = CLIENT_PREFACE.to_vec();
                    for _ in 0..rng.below(40) {
                        let payload: Vec<u8> =
                            (0..rng.below(40)).map(|_| rng.next() as u8).collect();
                        let kind = rng.below(10) as u8;
                        let stream = [0, 1, 3, 5][rng.below(4)];
                        out.extend(frame(kind, rng.next() as u8, stream, &payload));
                    }
                    *s = out;
                }
                // A few bytes changed, inserted or removed.
                _ => {
                    for _ in 0..1 + rng.below(6) {
                        if s.is_empty() {
                            break;
                        }
                        let at = rng.below(s.len());
                        match rng.below(3) {
                            0 => s[at] = rng.next() as u8,
                            1 => s.insert(at, rng.next() as u8),
                            _ => {
                                s.drain(at..(at + rng.below(20)).min(s.len()));
                            }
                        }
                    }
                }
            }
        }
        let mut conv = Conversation::new(Some(&GRPC));
        let mut framed = Vec::new();
        let mut at = [0u64; 2];
        let mut pos = [0usize; 2];
        while pos[0] < streams[0].len() || pos[1] < streams[1].len() {
            let side = if rng.below(2) == 0 {
                Side::Client
            } else {
                Side::Server
            };
            let i = side.index();
            let n = (1 + rng.below(80)).min(streams[i].len() - pos[i]);
            if n == 0 {
                continue;
            }
            // Now and then bytes go missing.
            if rng.below(10) == 0 {
                at[i] += rng.below(30) as u64;
            }
            let chunk = &streams[i][pos[i]..pos[i] + n];
            framed.extend(conv.feed(side, at[i], chunk, rng.below(2) == 0));
            pos[i] += n;
            at[i] += n as u64;
        }
        let mut last = [0u64; 2];
        for f in &framed {
            assert!(f.start < f.end, "round {round}: {f:?}");
            assert!(f.start >= last[f.side.index()], "round {round}: {f:?}");
            last[f.side.index()] = f.end;
        }
        exchanges(framed);
    }
}
