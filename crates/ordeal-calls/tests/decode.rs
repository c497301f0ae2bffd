//! The call log of hand-made traces: which end is which, bytes merged from both ends, times
//! of the request's first write and the response's last read, what an untraced end leaves.

use ordeal_calls::{decode_trace, write_calls, Call, CallStatus, Decoded};
use ordeal_events::{escape_bytes, Class, Event, Header, NodeInfo, Proto, Sock, TraceWriter};

const SERVER: &str = "127.0.0.1:7000";
const CLIENT: &str = "127.0.0.1:40001";

struct Trace {
    events: Vec<Event>,
}

impl Trace {
    fn new() -> Trace {
        Trace { events: Vec::new() }
    }

    fn push(&mut self, mut e: Event) -> u64 {
        e.seq = self.events.len() as u64;
        e.ts = 1000 * (e.seq + 1);
        e.dur = 10;
        self.events.push(e);
        self.events.len() as u64 - 1
    }

    fn sock(ino: u64, local: &str, remote: &str) -> Sock {
        Sock {
            ino,
            proto: Proto::Tcp,
            local: Some(local.into()),
            remote: Some(remote.into()),
            peer_ino: None,
            peer_node: None,
        }
    }

    fn call(node: &str, pid: i32, call: &str, sock: Sock) -> Event {
        Event {
            node: node.into(),
            pid,
            tid: pid,
            call: call.into(),
            class: Some(Class::Net),
            ret: Some(0),
            fd: Some(3),
            sock: Some(sock),
            ..Default::default()
        }
    }

    /// A transfer of `moved` bytes at `off` whose first `head.len()` bytes were recorded.
    #[allow(clippy::too_many_arguments)]
    fn transfer(
        &mut self,
        node: &str,
        pid: i32,
        call: &str,
        sock: Sock,
        off: u64,
        moved: u64,
        head: &[u8],
    ) -> u64 {
        let mut e = Self::call(node, pid, call, sock);
        e.class = Some(Class::Data);
        e.ret = Some(moved as i64);
        e.off = Some(off);
        e.data = (!head.is_empty()).then(|| escape_bytes(head));
        self.push(e)
    }

    fn decode(&self) -> (Vec<Call>, Decoded) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("trace.jsonl");
        let header = Header {
            schema: "ordeal-trace".into(),
            version: ordeal_events::SCHEMA_VERSION,
            experiment: "t".into(),
            started_at: "2026-01-01T00:00:00Z".into(),
            nodes: vec![
                NodeInfo {
                    name: "server".into(),
                    role: "node".into(),
                    ports: vec![7000],
                    protocol: None,
                },
                NodeInfo {
                    name: "app".into(),
                    role: "workload".into(),
                    ports: vec![],
                    protocol: None,
                },
            ],
        };
        let mut w = TraceWriter::new(std::fs::File::create(&path).unwrap(), &header).unwrap();
        for e in &self.events {
            w.write(e).unwrap();
        }
        w.flush().unwrap();
        let mut calls = Vec::new();
        let decoded = decode_trace(&path, |c| calls.push(c)).unwrap();
        // The file says the same.
        let out = dir.path().join("calls.jsonl");
        write_calls(&path, &out).unwrap();
        assert_eq!(ordeal_calls::read_calls(&out).unwrap(), calls);
        (calls, decoded)
    }
}

const REQUEST: &[u8] =
    b"POST /items HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\n{\"name\":\"a\"}";
const RESPONSE: &[u8] = b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok";

fn client() -> Sock {
    Trace::sock(11, CLIENT, SERVER)
}
fn server() -> Sock {
    Trace::sock(22, SERVER, CLIENT)
}

#[test]
fn an_exchange_between_two_traced_ends() {
    let mut t = Trace::new();
    t.push(Trace::call("app", 5, "connect", client()));
    t.push(Trace::call("server", 9, "accept4", server()));
    let n = REQUEST.len() as u64;
    // The client's capture holds 20 bytes of its one write; the server's two reads hold all.
    let w = t.transfer("app", 5, "write", client(), 0, n, &REQUEST[..20]);
    t.transfer("server", 9, "read", server(), 0, 30, &REQUEST[..30]);
    t.transfer("server", 9, "read", server(), 30, n - 30, &REQUEST[30..]);
    let m = RESPONSE.len() as u64;
    let sw = t.transfer("server", 9, "write", server(), 0, m, RESPONSE);
    t.transfer("app", 5, "read", client(), 0, 10, &RESPONSE[..10]);
    let r = t.transfer("app", 5, "read", client(), 10, m - 10, &RESPONSE[10..]);
    let (calls, decoded) = t.decode();
    assert_eq!(
        calls,
        [Call {
            conn: 0,
            protocol: "http".into(),
            caller: "app".into(),
            callee: "server".into(),
            caller_pid: Some(5),
            op: "POST /items".into(),
            request: calls[0].request.clone(),
            result: calls[0].result.clone(),
            status: CallStatus::Answered,
            request_seq: Some(w),
            request_ts: Some(1000 * (w + 1)),
            response_seq: Some(r),
            response_ts: Some(1000 * (r + 1) + 10),
            kv: None,
            kv_result: None,
            truncated: false,
        }]
    );
    assert!(
        calls[0].request.starts_with("POST /items"),
        "{}",
        calls[0].request
    );
    assert!(
        calls[0].result.as_deref().unwrap().starts_with("201"),
        "{:?}",
        calls[0].result
    );
    assert_eq!(decoded.connections, 1);
    assert_eq!(decoded.decoded_connections, 1);
    assert_eq!(decoded.calls.get("http"), Some(&1));
    // The pictures get each message's text on the write that sent its start.
    assert_eq!(decoded.labels.get(&w), Some(&calls[0].request));
    assert_eq!(decoded.labels.get(&sw), calls[0].result.as_ref());
}

#[test]
fn a_read_recorded_before_the_write_that_fed_it_still_labels_the_write() {
    // Calls are recorded as they complete, and a read can return before the write that fed
    // it does: each read here has a lower `seq` than its write.
    let mut t = Trace::new();
    t.push(Trace::call("app", 5, "connect", client()));
    t.push(Trace::call("server", 9, "accept4", server()));
    let n = REQUEST.len() as u64;
    t.transfer("server", 9, "read", server(), 0, n, REQUEST);
    let w = t.transfer("app", 5, "write", client(), 0, n, REQUEST);
    let m = RESPONSE.len() as u64;
    let r = t.transfer("app", 5, "read", client(), 0, m, RESPONSE);
    let sw = t.transfer("server", 9, "write", server(), 0, m, RESPONSE);
    let (calls, decoded) = t.decode();
    assert_eq!(calls.len(), 1, "{calls:?}");
    // The request's label and its sender are the client's write, as in the usual order.
    assert_eq!(
        (
            calls[0].request_seq,
            calls[0].caller_pid,
            calls[0].response_seq
        ),
        (Some(w), Some(5), Some(r))
    );
    assert_eq!(decoded.labels.get(&w), Some(&calls[0].request));
    assert_eq!(decoded.labels.get(&sw), calls[0].result.as_ref());
    assert_eq!(decoded.labels.len(), 2, "{:?}", decoded.labels);
}

#[test]
fn a_one_way_message_read_before_its_write_returned_is_the_writes() {
    // memcached's `noreply`: nothing answers it, so its call is complete once framed, here
    // from the server's read, which the trace has before the client's write.
    const SET: &[u8] = b"set q 1 0 3 noreply\r\nabc\r\n";
    let mut t = Trace::new();
    t.push(Trace::call("app", 5, "connect", client()));
    t.push(Trace::call("server", 9, "accept4", server()));
    let n = SET.len() as u64;
    t.transfer("app", 5, "write", client(), 0, n, SET);
    t.transfer("server", 9, "read", server(), 0, n, SET);
    t.transfer("server", 9, "read", server(), n, n, SET);
    let w = t.transfer("app", 5, "write", client(), n, n, SET);
    let (calls, decoded) = t.decode();
    let brief: Vec<_> = calls
        .iter()
        .map(|c| (c.status, c.request_seq, c.caller_pid))
        .collect();
    assert_eq!(
        brief,
        [
            (CallStatus::OneWay, Some(2), Some(5)),
            (CallStatus::OneWay, Some(w), Some(5))
        ],
        "{calls:?}"
    );
    assert_eq!(decoded.labels.get(&w), Some(&calls[1].request));
}

#[test]
fn an_untraced_client_is_named_by_its_address_and_timed_by_the_server() {
    let mut t = Trace::new();
    t.push(Trace::call("server", 9, "accept4", server()));
    let rd = t.transfer(
        "server",
        9,
        "read",
        server(),
        0,
        REQUEST.len() as u64,
        REQUEST,
    );
    let wr = t.transfer(
        "server",
        9,
        "write",
        server(),
        0,
        RESPONSE.len() as u64,
        RESPONSE,
    );
    let (calls, _) = t.decode();
    assert_eq!(calls.len(), 1);
    let c = &calls[0];
    assert_eq!((c.caller.as_str(), c.callee.as_str()), (CLIENT, "server"));
    assert_eq!(c.caller_pid, None);
    assert_eq!((c.request_seq, c.response_seq), (Some(rd), Some(wr)));
    assert_eq!(c.status, CallStatus::Answered);
}

#[test]
fn a_response_the_client_never_read_is_unread_and_a_request_never_answered_unanswered() {
    let mut t = Trace::new();
    t.push(Trace::call("app", 5, "connect", client()));
    t.push(Trace::call("server", 9, "accept4", server()));
    let get = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n";
    let n = get.len() as u64;
    t.transfer("app", 5, "write", client(), 0, n, get);
    t.transfer("server", 9, "read", server(), 0, n, get);
    t.transfer("app", 5, "write", client(), n, n, get);
    t.transfer(
        "server",
        9,
        "write",
        server(),
        0,
        RESPONSE.len() as u64,
        RESPONSE,
    );
    let (calls, _) = t.decode();
    let status: Vec<(CallStatus, Option<u64>)> =
        calls.iter().map(|c| (c.status, c.response_seq)).collect();
    assert_eq!(
        status,
        [(CallStatus::Unread, None), (CallStatus::Unanswered, None)]
    );
}

#[test]
fn the_same_addresses_used_again_are_a_new_connection() {
    let mut t = Trace::new();
    let get = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n";
    let n = get.len() as u64;
    for (ci, si) in [(11, 22), (33, 44)] {
        let c = Trace::sock(ci, CLIENT, SERVER);
        let s = Trace::sock(si, SERVER, CLIENT);
        t.push(Trace::call("app", 5, "connect", c.clone()));
        t.push(Trace::call("server", 9, "accept4", s.clone()));
        t.transfer("app", 5, "write", c.clone(), 0, n, get);
        t.transfer("server", 9, "read", s.clone(), 0, n, get);
        t.transfer("server", 9, "write", s, 0, RESPONSE.len() as u64, RESPONSE);
        t.transfer("app", 5, "read", c, 0, RESPONSE.len() as u64, RESPONSE);
    }
    let (calls, decoded) = t.decode();
    let conns: Vec<(u64, CallStatus)> = calls.iter().map(|c| (c.conn, c.status)).collect();
    assert_eq!(
        conns,
        [(0, CallStatus::Answered), (1, CallStatus::Answered)]
    );
    assert_eq!(decoded.connections, 2);
}

#[test]
fn bytes_no_protocol_recognizes_give_no_calls() {
    let mut t = Trace::new();
    t.push(Trace::call("app", 5, "connect", client()));
    t.transfer("app", 5, "write", client(), 0, 4, b"\x00\x01\x02\x03");
    let (calls, decoded) = t.decode();
    assert!(calls.is_empty());
    assert_eq!((decoded.connections, decoded.decoded_connections), (1, 0));
}

#[test]
fn a_socket_closed_by_one_process_and_used_by_another_is_one_connection() {
    let mut t = Trace::new();
    let get = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n";
    let n = get.len() as u64;
    t.push(Trace::call("app", 5, "connect", client()));
    t.push(Trace::call("server", 9, "accept4", server()));
    t.transfer("server", 9, "read", server(), 0, 0, b"");
    t.transfer("app", 5, "write", client(), 0, n, get);
    // The accepting process hands the socket to a forked child and closes its copy.
    t.push(Trace::call("server", 9, "close", server()));
    t.transfer("server", 10, "read", server(), 0, n, get);
    t.transfer(
        "server",
        10,
        "write",
        server(),
        0,
        RESPONSE.len() as u64,
        RESPONSE,
    );
    t.push(Trace::call("server", 10, "close", server()));
    let r = t.transfer(
        "app",
        5,
        "read",
        client(),
        0,
        RESPONSE.len() as u64,
        RESPONSE,
    );
    t.push(Trace::call("app", 5, "close", client()));
    let (calls, decoded) = t.decode();
    assert_eq!(decoded.connections, 1);
    let got: Vec<(CallStatus, Option<u64>)> =
        calls.iter().map(|c| (c.status, c.response_seq)).collect();
    assert_eq!(got, [(CallStatus::Answered, Some(r))]);
}

/// Connections whose ends all closed are finished once enough wait: a request never
/// answered on each gives its call before the trace ends.
#[test]
fn closed_connections_are_finished_before_the_end() {
    let header = Header {
        schema: "ordeal-trace".into(),
        version: ordeal_events::SCHEMA_VERSION,
        experiment: "t".into(),
        started_at: "2026-01-01T00:00:00Z".into(),
        nodes: vec![],
    };
    let mut d = ordeal_calls::Decoder::new(&header);
    let mut t = Trace::new();
    let get = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n";
    for i in 0..400u64 {
        let c = Trace::sock(1000 + i, &format!("127.0.0.1:{}", 40000 + i), SERVER);
        t.push(Trace::call("app", 5, "connect", c.clone()));
        t.transfer("app", 5, "write", c.clone(), 0, get.len() as u64, get);
        t.push(Trace::call("app", 5, "close", c));
    }
    let mut before_end = 0;
    for e in &t.events {
        d.event(e, &mut |_| before_end += 1);
    }
    let mut at_end = 0;
    d.finish(&mut |_| at_end += 1);
    assert_eq!((before_end, at_end), (400 - 256, 256));
}

#[test]
fn bytes_neither_end_captured_are_counted_and_said() {
    let mut t = Trace::new();
    t.push(Trace::call("app", 5, "connect", client()));
    let get = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n";
    let n = get.len() as u64;
    // A write of two requests whose capture holds 20 bytes, the server not traced.
    let mut two = get.to_vec();
    two.extend_from_slice(get);
    t.transfer("app", 5, "write", client(), 0, 2 * n, &two[..20]);
    t.transfer("app", 5, "write", client(), 2 * n, n, get);
    let (calls, decoded) = t.decode();
    assert_eq!(calls.len(), 1, "only the whole request");
    assert_eq!(
        (decoded.decoded_bytes, decoded.undecoded_bytes),
        (3 * n, 2 * n)
    );
    assert_eq!(
        decoded.describe(),
        format!(
            "call log: 1 calls (http 1) on 1 of 1 connections; {} of their {} bytes not \
             decoded (transfers longer than the capture, --payload): calls in them are missing",
            2 * n,
            3 * n
        )
    );
}

/// Sentinel's pattern against Redis, as ordeal records it: `INFO` and `PING` in one write,
/// answered by one 5 KB write of which the first 1024 bytes were captured. The INFO reply is
/// measured by its header; the `+PONG` after it was never seen, so PING (and PUBLISH, sent
/// before the next reply came) are `not-captured`, the `:3` stands alone, and the calls after
/// it pair as they should. Before, PING got `:3`, PUBLISH the next `+PONG`, and so on.
#[test]
fn a_response_past_the_capture_leaves_its_call_not_captured_and_shifts_no_other() {
    let info = "# Replication\r\n".repeat(300);
    let replies = format!("${}\r\n{info}\r\n+PONG\r\n", info.len()).into_bytes();
    let asks = b"*1\r\n$4\r\nINFO\r\n*1\r\n$4\r\nPING\r\n";
    let publish = b"*3\r\n$7\r\nPUBLISH\r\n$1\r\nc\r\n$1\r\nm\r\n";
    let ping = b"*1\r\n$4\r\nPING\r\n";
    let mut t = Trace::new();
    t.push(Trace::call("app", 5, "connect", client()));
    t.push(Trace::call("server", 9, "accept4", server()));
    let mut sent = 0u64;
    let mut answered = 0u64;
    let mut send = |t: &mut Trace, bytes: &[u8]| {
        t.transfer("app", 5, "write", client(), sent, bytes.len() as u64, bytes);
        t.transfer(
            "server",
            9,
            "read",
            server(),
            sent,
            bytes.len() as u64,
            bytes,
        );
        sent += bytes.len() as u64;
    };
    let mut answer = |t: &mut Trace, bytes: &[u8], moved: u64| {
        t.transfer("server", 9, "write", server(), answered, moved, bytes);
        t.transfer("app", 5, "read", client(), answered, moved, bytes);
        answered += moved;
    };
    send(&mut t, asks);
    answer(&mut t, &replies[..1024], replies.len() as u64);
    send(&mut t, publish);
    answer(&mut t, b":3\r\n", 4);
    send(&mut t, ping);
    answer(&mut t, b"+PONG\r\n", 7);
    let (calls, _) = t.decode();
    let got: Vec<(&str, Option<&str>, CallStatus)> = calls
        .iter()
        .map(|c| (c.op.as_str(), c.result.as_deref(), c.status))
        .collect();
    let info_reply = calls[0].result.as_deref();
    assert!(
        info_reply.is_some_and(|r| r.ends_with("…(4500 bytes)\"")),
        "{info_reply:?}"
    );
    assert_eq!(
        got,
        [
            ("INFO", info_reply, CallStatus::Answered),
            ("PING", None, CallStatus::NotCaptured),
            ("PUBLISH", None, CallStatus::NotCaptured),
            (":", None, CallStatus::ResponseOnly),
            ("PING", Some("+PONG"), CallStatus::Answered),
        ]
    );
    assert_eq!(CallStatus::NotCaptured.name(), "not-captured");
}

/// The last reply of a trace cut by the capture (the run ended before anything followed it)
/// still answers its request: at the end the bytes not seen are known to be missed, and the
/// reply is measured by its header. It once waited for bytes that never came, and the call
/// stayed `unanswered`.
#[test]
fn a_cut_reply_at_the_end_of_the_trace_answers_its_request() {
    let info = "# Server\r\n".repeat(500);
    let reply = format!("${}\r\n{info}\r\n", info.len()).into_bytes();
    let ask = b"*1\r\n$4\r\nINFO\r\n";
    let mut t = Trace::new();
    t.push(Trace::call("app", 5, "connect", client()));
    t.push(Trace::call("server", 9, "accept4", server()));
    let n = ask.len() as u64;
    t.transfer("app", 5, "write", client(), 0, n, ask);
    t.transfer("server", 9, "read", server(), 0, n, ask);
    let m = reply.len() as u64;
    t.transfer("server", 9, "write", server(), 0, m, &reply[..1024]);
    let r = t.transfer("app", 5, "read", client(), 0, m, &reply[..1024]);
    let (calls, _) = t.decode();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(
        (calls[0].status, calls[0].response_seq, calls[0].truncated),
        (CallStatus::Answered, Some(r), true)
    );
    assert!(
        calls[0]
            .result
            .as_deref()
            .is_some_and(|x| x.ends_with("…(5000 bytes)\"")),
        "{:?}",
        calls[0].result
    );
}
