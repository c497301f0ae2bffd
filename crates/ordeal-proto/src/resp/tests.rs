use super::*;
use crate::{Conversation, Exchange, Framed, Pairer, MAX_BUFFER};

fn detect(side: Side, first: &[u8]) -> Detect {
    Resp.detect(side, first)
}

/// Feeds `chunks` (side, bytes) in order, each a whole transfer; returns the frames.
fn feed(chunks: &[(Side, &[u8])]) -> Vec<Framed> {
    let mut conv = Conversation::new(Some(&Resp));
    let mut at = [0u64; 2];
    let mut out = Vec::new();
    for (side, bytes) in chunks {
        out.extend(conv.feed(*side, at[side.index()], bytes, true));
        at[side.index()] += bytes.len() as u64;
    }
    out
}

/// (side, role, op, text) of each frame.
fn described(frames: &[Framed]) -> Vec<(Side, Role, String, String)> {
    frames
        .iter()
        .map(|f| {
            let m = &f.message;
            (f.side, m.role, m.op.clone(), m.text.clone())
        })
        .collect()
}

fn pairs(frames: Vec<Framed>) -> Vec<String> {
    let mut pairer = Pairer::default();
    let mut out: Vec<Exchange> = Vec::new();
    for f in frames {
        pairer.push(f, &mut out);
    }
    pairer.finish(&mut out);
    out.iter()
        .map(|x| match &x.response {
            Some(r) => format!("{} -> {}", x.request.message.text, r.message.text),
            None => x.request.message.text.clone(),
        })
        .collect()
}

const C: Side = Side::Client;
const S: Side = Side::Server;

#[test]
fn detection_is_conservative() {
    let cases: &[(Side, &[u8], Detect)] = &[
        (C, b"*3\r\n$3\r\nSET", Detect::Yes),
        (C, b"*", Detect::Maybe),
        (C, b"*3", Detect::Maybe),
        (C, b"*3\r", Detect::Maybe),
        (C, b"*x", Detect::No),
        (C, b"*\r\n", Detect::No),
        (C, b"PING\r\n", Detect::Yes),
        (C, b"ping\r\n", Detect::Yes),
        (C, b"SET k v\r\n", Detect::Yes),
        (C, b"hello 3\r\n", Detect::Yes),
        (C, b"PI", Detect::Maybe),
        (C, b"PING", Detect::Maybe),
        (C, b"PING\r", Detect::Maybe),
        (C, b"SET k", Detect::Maybe),
        // The demo KV protocol: `\n` alone.
        (C, b"SET k v\n", Detect::No),
        (C, b"ROLE\n", Detect::No),
        (C, b"JOIN 1\n", Detect::No),
        // HTTP.
        (C, b"GET /x HTTP/1.1\r\nHost: a\r\n", Detect::No),
        (C, b"POST /x HTTP/1.1\r\n", Detect::No),
        // memcached's lowercase commands.
        (C, b"get k\r\n", Detect::No),
        (C, b"set k 0 0 2\r\n", Detect::No),
        (C, b"version\r\n", Detect::No),
        (C, b"GET k\r\n", Detect::Yes),
        (C, b"\x16\x03\x01", Detect::No),
        (C, b"", Detect::Maybe),
        (S, b"+OK\r\n", Detect::No),
    ];
    for &(side, first, want) in cases {
        assert_eq!(
            detect(side, first),
            want,
            "{:?}",
            String::from_utf8_lossy(first)
        );
    }
    // Lists stay sorted, for binary search.
    assert!(COMMANDS.windows(2).all(|w| w[0] < w[1]));
    assert!(MEMCACHED_TOO.windows(2).all(|w| w[0] < w[1]));
}

#[test]
fn requests_and_replies_read_like_redis_cli() {
    let frames = feed(&[
        (
            C,
            b"*3\r\n$3\r\nset\r\n$2\r\nk3\r\n$2\r\nv7\r\n*2\r\n$3\r\nGET\r\n$2\r\nk3\r\n\
              *2\r\n$3\r\nGET\r\n$2\r\nk9\r\nPING\r\n*1\r\n$3\r\nFOO\r\n*2\r\n$4\r\nINCR\r\n$1\r\nn\r\n",
        ),
        (
            S,
            b"+OK\r\n$2\r\nv7\r\n$-1\r\n+PONG\r\n-ERR unknown command 'FOO'\r\n:1\r\n",
        ),
    ]);
    assert_eq!(
        described(&frames),
        [
            (C, Role::Request, "SET".into(), "SET k3 v7".into()),
            (C, Role::Request, "GET".into(), "GET k3".into()),
            (C, Role::Request, "GET".into(), "GET k9".into()),
            (C, Role::Request, "PING".into(), "PING".into()),
            (C, Role::Request, "FOO".into(), "FOO".into()),
            (C, Role::Request, "INCR".into(), "INCR n".into()),
            (S, Role::Response, "+OK".into(), "+OK".into()),
            (S, Role::Response, "$".into(), "\"v7\"".into()),
            (S, Role::Response, "$".into(), "nil".into()),
            (S, Role::Response, "+PONG".into(), "+PONG".into()),
            (
                S,
                Role::Response,
                "-ERR".into(),
                "-ERR unknown command 'FOO'".into()
            ),
            (S, Role::Response, ":".into(), ":1".into()),
        ]
    );
    let kv: Vec<_> = frames
        .iter()
        .map(|f| (f.message.kv_request.clone(), f.message.kv_response.clone()))
        .collect();
    let write = KvRequest::Write {
        key: "k3".into(),
        value: "v7".into(),
    };
    assert_eq!(
        kv,
        [
            (Some(write), None),
            (Some(KvRequest::Read { key: "k3".into() }), None),
            (Some(KvRequest::Read { key: "k9".into() }), None),
            (None, None),
            (None, None),
            (None, None),
            (None, Some(KvResponse::Ok)),
            (None, Some(KvResponse::Value(Some("v7".into())))),
            (None, Some(KvResponse::Value(None))),
            (None, None),
            (None, Some(KvResponse::Fail)),
            (None, None),
        ]
    );
    assert_eq!(
        (
            frames[5].start,
            frames[5].end,
            frames[11].start,
            frames[11].end
        ),
        (90, 111, 53, 57)
    );
}

#[test]
fn conditional_sets_and_queued_commands_are_no_kv_operations() {
    let frames = feed(&[(
        C,
        b"*5\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n$2\r\nNX\r\n$2\r\nEX\r\n\
          MULTI\r\nSET k v\r\nEXEC\r\nSET k w\r\n",
    )]);
    let kv: Vec<_> = frames
        .iter()
        .map(|f| (f.message.text.as_str(), f.message.kv_request.is_some()))
        .collect();
    assert_eq!(
        kv,
        [
            ("SET k v NX EX", false),
            ("MULTI", false),
            ("SET k v", false),
            ("EXEC", false),
            ("SET k w", true),
        ]
    );
}

#[test]
fn errors_say_whether_the_command_ran() {
    for (error, outcome) in [
        (
            &b"-READONLY You can't write against a read only replica.\r\n"[..],
            KvResponse::Fail,
        ),
        (
            b"-LOADING Redis is loading the dataset in memory\r\n",
            KvResponse::Fail,
        ),
        (
            b"-ERR wrong number of arguments for 'set' command\r\n",
            KvResponse::Fail,
        ),
        (
            b"-NOREPLICAS Not enough good replicas to write.\r\n",
            KvResponse::Fail,
        ),
        (b"-ERR Connection timed out\r\n", KvResponse::Unknown),
        (b"!21\r\nSYNTAX invalid syntax\r\n", KvResponse::Fail),
    ] {
        let frames = feed(&[(C, b"SET k v\r\n"), (S, error)]);
        assert_eq!(frames[1].message.kv_response, Some(outcome));
    }
}

#[test]
fn resp3_replies_and_pushes() {
    let frames = feed(&[
        (C, b"HELLO 3\r\nGET a\r\nGET b\r\nCLIENT TRACKING on\r\n"),
        (
            S,
            b"%2\r\n$6\r\nserver\r\n$5\r\nredis\r\n$5\r\nproto\r\n:3\r\n\
              _\r\n>2\r\n$10\r\ninvalidate\r\n*1\r\n$1\r\na\r\n=8\r\ntxt:abcd\r\n#t\r\n",
        ),
    ]);
    assert_eq!(
        pairs(frames),
        [
            "HELLO 3 -> {\"server\": \"redis\", \"proto\": :3}",
            "GET a -> nil",
            ">[\"invalidate\", [\"a\"]]",
            "GET b -> \"abcd\"",
            "CLIENT TRACKING on -> #t",
        ]
    );
}

#[test]
fn subscriptions_answer_once_and_messages_are_pushed() {
    let frames = feed(&[
        (C, b"*3\r\n$9\r\nSUBSCRIBE\r\n$1\r\na\r\n$1\r\nb\r\n"),
        (
            S,
            b"*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n*3\r\n$9\r\nsubscribe\r\n$1\r\nb\r\n:2\r\n\
              *3\r\n$7\r\nmessage\r\n$1\r\na\r\n$2\r\nhi\r\n",
        ),
        (C, b"*1\r\n$11\r\nUNSUBSCRIBE\r\n*1\r\n$4\r\nPING\r\n"),
        (
            S,
            b"*3\r\n$11\r\nunsubscribe\r\n$1\r\na\r\n:1\r\n*3\r\n$11\r\nunsubscribe\r\n$1\r\nb\r\n:0\r\n\
              +PONG\r\n",
        ),
    ]);
    assert_eq!(
        pairs(frames),
        [
            "SUBSCRIBE a b -> [\"subscribe\", \"a\", :1]",
            "[\"subscribe\", \"b\", :2]",
            "[\"message\", \"a\", \"hi\"]",
            "UNSUBSCRIBE -> [\"unsubscribe\", \"a\", :1]",
            "[\"unsubscribe\", \"b\", :0]",
            "PING -> +PONG",
        ]
    );
}

#[test]
fn attributes_annotate_the_reply_that_follows() {
    let frames = feed(&[
        (C, b"GET k\r\n"),
        (
            S,
            b"|1\r\n+key-popularity\r\n%1\r\n$1\r\nk\r\n,0.2\r\n$1\r\nv\r\n",
        ),
    ]);
    let reply = &frames[1].message;
    assert_eq!(
        (reply.op.as_str(), reply.text.as_str(), &reply.kv_response),
        (
            "$",
            "|{+key-popularity: {\"k\": ,0.2}} \"v\"",
            &Some(KvResponse::Value(Some("v".into())))
        )
    );
}

#[test]
fn monitor_events_are_pushed() {
    let frames = feed(&[
        (C, b"MONITOR\r\n"),
        (
            S,
            b"+OK\r\n+1700000000.123456 [0 127.0.0.1:50000] \"SET\" \"k\" \"v\"\r\n",
        ),
    ]);
    assert_eq!(
        pairs(frames),
        [
            "MONITOR -> +OK",
            "+1700000000.123456 [0 127.0.0.1:50000] \"SET\" \"k\" \"v\""
        ]
    );
}

/// A replica's handshake with its primary, the RDB (no `\r\n` after it), the stream.
pub(crate) const REPLICA: &[u8] = b"*1\r\n$4\r\nPING\r\n\
    *3\r\n$8\r\nREPLCONF\r\n$14\r\nlistening-port\r\n$4\r\n6380\r\n\
    *5\r\n$8\r\nREPLCONF\r\n$4\r\ncapa\r\n$3\r\neof\r\n$4\r\ncapa\r\n$6\r\npsync2\r\n\
    *3\r\n$5\r\nPSYNC\r\n$1\r\n?\r\n$2\r\n-1\r\n\
    \n\
    *3\r\n$8\r\nREPLCONF\r\n$3\r\nACK\r\n$1\r\n0\r\n\
    *3\r\n$8\r\nREPLCONF\r\n$3\r\nACK\r\n$2\r\n58\r\n";
pub(crate) const PRIMARY: &[u8] = b"+PONG\r\n+OK\r\n+OK\r\n\n\n\
    +FULLRESYNC 8de1787ba490483314a4d30f1c628bc5025eb761 0\r\n\
    $18\r\nREDIS0011\xfa\x00\x00\xff\x01\x02\x03\x04\x05\
    *2\r\n$6\r\nSELECT\r\n$1\r\n0\r\n\
    *3\r\n$3\r\nSET\r\n$2\r\nk3\r\n$2\r\nv7\r\n\
    *3\r\n$8\r\nREPLCONF\r\n$6\r\nGETACK\r\n$1\r\n*\r\n";

#[test]
fn replication_handshake_rdb_and_stream() {
    let frames = feed(&[(C, REPLICA), (S, PRIMARY)]);
    assert_eq!(
        described(&frames),
        [
            (C, Role::Request, "PING".into(), "PING".into()),
            (
                C,
                Role::Request,
                "REPLCONF".into(),
                "REPLCONF listening-port 6380".into()
            ),
            (
                C,
                Role::Request,
                "REPLCONF".into(),
                "REPLCONF capa eof capa psync2".into()
            ),
            (C, Role::Request, "PSYNC".into(), "PSYNC ? -1".into()),
            (C, Role::OneWay, "REPLCONF".into(), "REPLCONF ACK 0".into()),
            (C, Role::OneWay, "REPLCONF".into(), "REPLCONF ACK 58".into()),
            (S, Role::Response, "+PONG".into(), "+PONG".into()),
            (S, Role::Response, "+OK".into(), "+OK".into()),
            (S, Role::Response, "+OK".into(), "+OK".into()),
            (
                S,
                Role::Response,
                "+FULLRESYNC".into(),
                "+FULLRESYNC 8de1787ba490483314a4d30f1c628bc5025eb761 0".into()
            ),
            (S, Role::OneWay, "RDB".into(), "RDB 18 bytes".into()),
            (S, Role::OneWay, "SELECT".into(), "SELECT 0".into()),
            (S, Role::OneWay, "SET".into(), "SET k3 v7".into()),
            (
                S,
                Role::OneWay,
                "REPLCONF".into(),
                "REPLCONF GETACK *".into()
            ),
        ]
    );
    let set = &frames[12].message;
    assert_eq!(
        set.kv_request,
        Some(KvRequest::Write {
            key: "k3".into(),
            value: "v7".into()
        })
    );
}

#[test]
fn old_sync_is_answered_by_the_rdb_and_diskless_rdbs_end_at_their_marker() {
    let frames = feed(&[(C, b"SYNC\r\n"), (S, b"\n$3\r\nabc*1\r\n$4\r\nPING\r\n")]);
    assert_eq!(pairs(frames), ["SYNC -> RDB 3 bytes", "PING"]);

    let marker = [b'm'; 40];
    let mut primary = b"+FULLRESYNC x 0\r\n$EOF:".to_vec();
    primary.extend_from_slice(&marker);
    primary.extend_from_slice(b"\r\nREDIS0011 data");
    primary.extend_from_slice(&marker);
    primary.extend_from_slice(b"*1\r\n$4\r\nPING\r\n");
    let frames = feed(&[(C, b"PSYNC ? -1\r\n"), (S, &primary)]);
    assert_eq!(
        pairs(frames.clone()),
        [
            "PSYNC ? -1 -> +FULLRESYNC x 0",
            "RDB 14 bytes diskless",
            "PING"
        ]
    );
    assert_eq!((frames[2].start, frames[2].end), (17, 17 + 47 + 14 + 40));

    // Longer than the buffer: the head is the message, the rest is skipped to the marker.
    let mut primary = b"+FULLRESYNC x 0\r\n$EOF:".to_vec();
    primary.extend_from_slice(&marker);
    primary.extend_from_slice(b"\r\n");
    primary.extend(std::iter::repeat_n(b'r', 3 * MAX_BUFFER));
    primary.extend_from_slice(&marker);
    primary.extend_from_slice(b"*1\r\n$4\r\nPING\r\n");
    let frames = feed(&[(C, b"PSYNC ? -1\r\n"), (S, &primary)]);
    assert_eq!(
        pairs(frames.clone()),
        ["PSYNC ? -1 -> +FULLRESYNC x 0", "RDB diskless …", "PING"]
    );
    assert!(frames[2].message.truncated);
    assert_eq!(frames[3].start, primary.len() as u64 - 14);
}

#[test]
fn a_value_longer_than_the_buffer_is_one_truncated_message() {
    let value = vec![b'x'; 200_000];
    let mut set = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$200000\r\n".to_vec();
    set.extend_from_slice(&value);
    set.extend_from_slice(b"\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n");
    let mut reply = b"+OK\r\n$200000\r\n".to_vec();
    reply.extend_from_slice(&value);
    reply.extend_from_slice(b"\r\n");
    let frames = feed(&[(C, &set), (S, &reply)]);
    let set_text = format!("SET k {}…(200000 bytes)", "x".repeat(48));
    let got: Vec<_> = frames
        .iter()
        .map(|f| (f.message.text.clone(), f.start, f.end, f.message.truncated))
        .collect();
    assert_eq!(
        got,
        [
            (set_text, 0, 200_031, true),
            ("GET k".into(), 200_031, 200_051, false),
            ("+OK".into(), 0, 5, false),
            (
                format!("\"{}…(200000 bytes)\"", "x".repeat(48)),
                5,
                200_016,
                true
            ),
        ]
    );
    // The value's head, as far as it was seen.
    let Some(KvRequest::Write { value, .. }) = &frames[0].message.kv_request else {
        panic!("not a write: {:?}", frames[0].message);
    };
    assert_eq!(value.len(), MAX_BUFFER - 29);
}

#[test]
fn an_argument_past_a_long_one_is_skipped_as_part_of_its_command() {
    let mut mset = b"*5\r\n$4\r\nMSET\r\n$1\r\na\r\n$70000\r\n".to_vec();
    mset.extend(std::iter::repeat_n(b'x', 70_000));
    mset.extend_from_slice(b"\r\n$1\r\nb\r\n$2\r\nv2\r\n*1\r\n$4\r\nPING\r\n");
    let frames = feed(&[(C, &mset)]);
    let got: Vec<_> = frames
        .iter()
        .map(|f| (f.message.text.clone(), f.start, f.end, f.message.truncated))
        .collect();
    assert_eq!(
        got,
        [
            (
                format!("MSET a {}…(70000 bytes) …(4 args)", "x".repeat(48)),
                0,
                29 + 70_002,
                true
            ),
            (
                "PING".into(),
                mset.len() as u64 - 14,
                mset.len() as u64,
                false
            ),
        ]
    );
}

#[test]
fn noise_is_not_decoded() {
    let mut dec = RespDecoder::default();
    assert_eq!(dec.parse(C, b"\x00\x01", false), Parse::Invalid);
    assert_eq!(dec.parse(C, b"*1\r\n:1\r\n", false), Parse::Invalid);
    assert_eq!(dec.parse(S, b"OK\r\n", false), Parse::Invalid);
    assert_eq!(dec.parse(C, b"PING", true), Parse::Invalid);
    assert_eq!(dec.parse(C, b"PING", false), Parse::Need);
}

/// Only the head of a transfer was captured (ordeal records the first `--payload` bytes of
/// each): Sentinel pipelines `PING` and `INFO`, and the server answers both in one write of
/// 5 KB. The INFO reply's length is in its header, so the bytes not seen are its rest: it is
/// one (cut) reply, and the replies after it pair with their own commands. It once was lost,
/// and every later reply on the connection paired with the command before its own.
#[test]
fn a_reply_whose_capture_was_cut_is_measured_by_its_header() {
    let info = "# Server\r\n".repeat(500);
    let replies = format!("+PONG\r\n${}\r\n{info}\r\n", info.len()).into_bytes();
    let captured = &replies[..1024];
    let mut conv = Conversation::new(Some(&Resp));
    let mut frames = conv.feed(C, 0, b"*1\r\n$4\r\nPING\r\n*1\r\n$4\r\nINFO\r\n", true);
    frames.extend(conv.feed(S, 0, captured, true));
    let next = replies.len() as u64;
    frames.extend(conv.feed(C, 28, b"*1\r\n$4\r\nPING\r\n", true));
    frames.extend(conv.feed(S, next, b"+PONG\r\n", true));
    let got: Vec<_> = frames
        .iter()
        .map(|f| {
            (
                f.side,
                f.message.text.clone(),
                f.start,
                f.end,
                f.message.truncated,
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (C, "PING".into(), 0, 14, false),
            (C, "INFO".into(), 14, 28, false),
            (S, "+PONG".into(), 0, 7, false),
            (C, "PING".into(), 28, 42, false),
            (
                S,
                format!(
                    "\"{}…({} bytes)\"",
                    &info[..48].replace("\r\n", "\\r\\n"),
                    info.len()
                ),
                7,
                next,
                true
            ),
            (S, "+PONG".into(), next, next + 7, false),
        ]
    );
    assert_eq!(
        pairs(frames),
        [
            "PING -> +PONG".to_string(),
            format!("INFO -> {}", got[4].1),
            "PING -> +PONG".into()
        ]
    );
    // Nothing of the reply counts as not decoded: its rest was known to be its rest.
    assert_eq!(conv.undecoded(), 0);
}

/// What Sentinel did to a replica: `INFO` and `PING` in one write, answered by one write of
/// which only the head was captured. The `+PONG` at its end was never seen: the `:3` that
/// answers the next command must not pass for PING's reply (it did, and every later reply
/// on the connection answered the command before its own).
#[test]
fn a_reply_lost_in_bytes_not_captured_shifts_no_pair() {
    let info = "# Replication\r\n".repeat(300);
    let replies = format!("${}\r\n{info}\r\n+PONG\r\n", info.len()).into_bytes();
    let mut conv = Conversation::new(Some(&Resp));
    let mut frames = conv.feed(C, 0, b"*1\r\n$4\r\nINFO\r\n*1\r\n$4\r\nPING\r\n", true);
    frames.extend(conv.feed(S, 0, &replies[..1024], true));
    let publish = b"*3\r\n$7\r\nPUBLISH\r\n$1\r\nc\r\n$1\r\nm\r\n";
    frames.extend(conv.feed(C, 28, publish, true));
    frames.extend(conv.feed(S, replies.len() as u64, b":3\r\n", true));
    frames.extend(conv.feed(C, 28 + publish.len() as u64, b"*1\r\n$4\r\nPING\r\n", true));
    frames.extend(conv.feed(S, replies.len() as u64 + 4, b"+PONG\r\n", true));
    let lost: Vec<bool> = frames.iter().map(|f| f.after_loss).collect();
    assert_eq!(lost, [false, false, false, false, true, false, false]);
    let bulk = frames
        .iter()
        .find(|f| f.message.truncated)
        .map(|f| f.message.text.clone())
        .unwrap();
    assert!(bulk.ends_with("…(4500 bytes)\""), "{bulk}");
    assert_eq!(
        pairs(frames),
        [
            format!("INFO -> {bulk}"),
            "PING".into(),
            "PUBLISH c m".into(),
            ":3".into(),
            "PING -> +PONG".into(),
        ]
    );
    // The 7 bytes of `+PONG\r\n`.
    assert_eq!(conv.undecoded(), 7);
}
