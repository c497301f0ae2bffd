use super::*;
use crate::{KvRequest, KvResponse};

fn decoder() -> Box<dyn Decoder> {
    Http1.decoder()
}

/// Every frame of `side` at the start of `bytes` (whole messages only): (start, end, role,
/// op, text, truncated) of those with a message.
fn frames(
    dec: &mut dyn Decoder,
    side: Side,
    bytes: &[u8],
) -> Vec<(usize, usize, Role, String, String, bool)> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < bytes.len() {
        match dec.parse(side, &bytes[pos..], false) {
            Parse::Frame { len, message } => {
                let end = pos + len as usize;
                if let Some(m) = message {
                    out.push((pos, end, m.role, m.op, m.text, m.truncated));
                }
                pos = end;
            }
            other => panic!("at {pos}: {other:?}"),
        }
    }
    out
}

fn texts(frames: &[(usize, usize, Role, String, String, bool)]) -> Vec<&str> {
    frames.iter().map(|f| f.4.as_str()).collect()
}

#[test]
fn detection_is_conservative() {
    let client = |b: &[u8]| Http1.detect(Side::Client, b);
    assert_eq!(client(b"GET /a HTTP/1.1\r\nHost: x\r\n"), Detect::Yes);
    assert_eq!(client(b"OPTIONS * HTTP/1.0\n"), Detect::Yes);
    assert_eq!(client(b"CONNECT example.com:443 HTTP/1.1\r\n"), Detect::Yes);
    assert_eq!(client(b""), Detect::Maybe);
    assert_eq!(client(b"PO"), Detect::Maybe);
    assert_eq!(client(b"GET /a HT"), Detect::Maybe);
    assert_eq!(client(b"GET /a HTTP/1.1\r"), Detect::Maybe);
    assert_eq!(client(b"GET k"), Detect::Maybe);
    // The demo KV protocol and other line protocols.
    assert_eq!(client(b"GET k\n"), Detect::No);
    assert_eq!(client(b"GET k3 v7\n"), Detect::No);
    assert_eq!(client(b"PUT k3 v7"), Detect::No);
    assert_eq!(client(b"get / HTTP/1.1\r\n"), Detect::No);
    assert_eq!(client(b"FETCH / HTTP/1.1\r\n"), Detect::No);
    assert_eq!(client(b"GET / HTTP/2.0\r\n"), Detect::No);
    assert_eq!(client(b"*2\r\n$3\r\nGET\r\n"), Detect::No);
    assert_eq!(client(b"PRI * HTTP/2.0\r\n"), Detect::No);
    // A line longer than detection sees.
    let long = format!("GET /{}", "a".repeat(200));
    assert_eq!(client(long.as_bytes()), Detect::Yes);
    assert_eq!(
        client(format!("GET {}", "a".repeat(200)).as_bytes()),
        Detect::Maybe
    );

    let server = |b: &[u8]| Http1.detect(Side::Server, b);
    assert_eq!(server(b"HTTP/1.1 200 OK\r\n"), Detect::Yes);
    assert_eq!(server(b"HTTP/1.0 404"), Detect::Yes);
    assert_eq!(server(b"HTTP/1."), Detect::Maybe);
    assert_eq!(server(b"HTTP/1.1 20"), Detect::Maybe);
    assert_eq!(server(b"HTTP/2 200"), Detect::No);
    assert_eq!(server(b"HTTP/1.1 2000"), Detect::No);
    assert_eq!(server(b"+OK\r\n"), Detect::No);
    assert_eq!(server(b"VALUE k 0 2\r\n"), Detect::No);
}

#[test]
fn requests_and_responses_by_length() {
    let mut d = decoder();
    let client = b"GET /health?full=1 HTTP/1.1\r\nHost: n1\r\n\r\nPOST /items HTTP/1.1\r\nContent-Type: application/json\r\ncontent-length: 27\r\n\r\n{ \"name\": \"a\", \"n\": [1,2] }";
    assert_eq!(
        frames(d.as_mut(), Side::Client, client),
        [
            (
                0,
                41,
                Role::Request,
                "GET /health".into(),
                "GET /health?full=1".into(),
                false
            ),
            (
                41,
                client.len(),
                Role::Request,
                "POST /items".into(),
                r#"POST /items {"name":"a","n":[1,2]}"#.into(),
                false
            ),
        ]
    );
    let server = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\nHTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n";
    assert_eq!(
        frames(d.as_mut(), Side::Server, server),
        [
            (
                0,
                41,
                Role::Response,
                "200".into(),
                "200 OK ok\\n".into(),
                false
            ),
            (
                41,
                server.len(),
                Role::Response,
                "201".into(),
                "201 Created".into(),
                false
            ),
        ]
    );
    // Part of a message: more is needed.
    let mut d = decoder();
    for cut in 0..client.len() {
        if cut == 0 || cut == 41 {
            continue;
        }
        let start = if cut < 41 { 0 } else { 41 };
        assert_eq!(
            d.parse(Side::Client, &client[start..cut], false),
            Parse::Need,
            "cut at {cut}"
        );
    }
}

#[test]
fn chunked_bodies_with_extensions_and_trailers() {
    let mut d = decoder();
    frames(
        d.as_mut(),
        Side::Client,
        b"GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n",
    );
    let server = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: text/plain\r\n\r\n4;x=y\r\nWiki\r\n5\r\npedia\r\n0\r\nX-Sum: 1\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi";
    let got = frames(d.as_mut(), Side::Server, server);
    assert_eq!(texts(&got), ["200 OK Wikipedia", "200 OK hi"]);
    assert_eq!((got[0].0, got[0].1), (0, 111));
    // A request's chunked body, and a transfer coding not chunked last: not framable.
    let mut d = decoder();
    let got = frames(
        d.as_mut(),
        Side::Client,
        b"PUT /f HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    );
    assert_eq!(texts(&got), ["PUT /f abc"]);
    assert_eq!(
        d.parse(
            Side::Client,
            b"PUT /f HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
            false
        ),
        Parse::Invalid
    );
}

#[test]
fn responses_without_bodies() {
    let mut d = decoder();
    let client = b"HEAD /big HTTP/1.1\r\n\r\nDELETE /x HTTP/1.1\r\n\r\nGET /c HTTP/1.1\r\nIf-None-Match: \"1\"\r\n\r\nGET /d HTTP/1.1\r\n\r\n";
    assert_eq!(frames(d.as_mut(), Side::Client, client).len(), 4);
    // HEAD's response says the length of a body it does not carry; 204 and 304 have none.
    let server = b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\nHTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 304 Not Modified\r\nContent-Length: 12\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nd";
    let got = frames(d.as_mut(), Side::Server, server);
    assert_eq!(
        texts(&got),
        ["200 OK", "204 No Content", "304 Not Modified", "200 OK d"]
    );
    assert_eq!((got[3].0, got[3].1), (server.len() - 39, server.len()));
}

#[test]
fn interim_responses_answer_nothing() {
    let mut d = decoder();
    let head = b"POST /up HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n";
    assert_eq!(d.parse(Side::Client, head, false), Parse::Need);
    let server = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
    let interim = frames(d.as_mut(), Side::Server, &server[..25]);
    assert_eq!(
        interim,
        [(
            0,
            25,
            Role::OneWay,
            "100".into(),
            "100 Continue".into(),
            false
        )]
    );
    let mut request = head.to_vec();
    request.extend_from_slice(b"hi");
    assert_eq!(
        texts(&frames(d.as_mut(), Side::Client, &request)),
        ["POST /up hi"]
    );
    let got = frames(d.as_mut(), Side::Server, &server[25..]);
    assert_eq!(got[0].2, Role::Response);
    assert_eq!(texts(&got), ["200 OK"]);
}

#[test]
fn after_switching_protocols_the_connection_is_skipped() {
    let mut d = decoder();
    frames(
        d.as_mut(),
        Side::Client,
        b"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
    );
    let server = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x81\x02hi";
    assert_eq!(
        d.parse(Side::Server, server, false),
        Parse::Frame {
            len: 56,
            message: Some(Message::new(
                Role::Response,
                "101",
                "101 Switching Protocols"
            ))
        }
    );
    assert_eq!(d.parse(Side::Server, &server[56..], false), silent(4));
    assert_eq!(d.parse(Side::Client, b"\x81\x85abcde", false), silent(7));
}

#[test]
fn a_body_until_close_is_framed_from_its_head() {
    let mut d = decoder();
    frames(d.as_mut(), Side::Client, b"GET / HTTP/1.0\r\n\r\n");
    let server = b"HTTP/1.0 200 OK\r\nContent-Type: text/html\r\n\r\n<html>";
    let mut message = Message::new(Role::Response, "200", "200 OK <body until close text/html>");
    message.truncated = true;
    assert_eq!(
        d.parse(Side::Server, server, false),
        Parse::Frame {
            len: 44,
            message: Some(message)
        }
    );
    assert_eq!(d.parse(Side::Server, &server[44..], false), silent(6));
    assert_eq!(
        d.parse(Side::Server, b"HTTP/1.1 200 OK\r\n\r\n", false),
        silent(19)
    );
}

#[test]
fn long_bodies_are_decoded_from_their_head() {
    // A length: the frame's length is the message's.
    let mut d = decoder();
    let mut buf = b"POST /blob HTTP/1.1\r\nContent-Length: 200000\r\n\r\n".to_vec();
    let head = buf.len();
    buf.resize(crate::MAX_BUFFER, b'x');
    let Parse::Frame {
        len,
        message: Some(m),
    } = d.parse(Side::Client, &buf, true)
    else {
        panic!("not a frame")
    };
    assert_eq!(len, head as u64 + 200_000);
    assert!(m.truncated);
    assert_eq!(
        m.text,
        format!("POST /blob {}…(200000 bytes)", "x".repeat(48))
    );

    // Chunked: framed to the end of the chunk known, the rest in frames without messages.
    let mut d = decoder();
    frames(
        d.as_mut(),
        Side::Client,
        b"GET /big HTTP/1.1\r\n\r\nGET /next HTTP/1.1\r\n\r\n",
    );
    let mut buf = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n186a0\r\n".to_vec();
    let data_start = buf.len();
    buf.resize(crate::MAX_BUFFER, b'y');
    let Parse::Frame {
        len,
        message: Some(m),
    } = d.parse(Side::Server, &buf, true)
    else {
        panic!("not a frame")
    };
    assert_eq!(len, data_start as u64 + 100_000);
    assert_eq!(m.text, "200 OK <100000+ bytes>");
    assert!(m.truncated);
    let rest = b"\r\n3\r\nabc\r\n0\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nz";
    assert_eq!(d.parse(Side::Server, &rest[..4], false), silent(2));
    assert_eq!(d.parse(Side::Server, &rest[2..], false), silent(13));
    assert_eq!(
        texts(&frames(d.as_mut(), Side::Server, &rest[15..])),
        ["200 OK z"]
    );
}

#[test]
fn not_http() {
    let mut d = decoder();
    assert_eq!(d.parse(Side::Client, b"GET k\n", false), Parse::Invalid);
    assert_eq!(d.parse(Side::Server, b"+OK\r\n", false), Parse::Invalid);
    assert_eq!(
        d.parse(Side::Client, b"GET / HTTP/1.1\r\nA", false),
        Parse::Need
    );
    // A head longer than the caller can hold.
    let mut long = b"GET / HTTP/1.1\r\nX: ".to_vec();
    long.resize(crate::MAX_BUFFER, b'a');
    assert_eq!(d.parse(Side::Client, &long, true), Parse::Invalid);
    // Bad chunk framing.
    frames(d.as_mut(), Side::Client, b"GET / HTTP/1.1\r\n\r\n");
    assert_eq!(
        d.parse(
            Side::Server,
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            false
        ),
        Parse::Invalid
    );
    // A stray empty line between messages is skipped.
    assert_eq!(d.parse(Side::Client, b"\r\nGET", false), silent(2));
    assert_eq!(d.parse(Side::Client, b"\r", false), Parse::Need);
}

#[test]
fn missed_bytes_forget_the_requests_in_flight() {
    let mut d = decoder();
    frames(d.as_mut(), Side::Client, b"HEAD / HTTP/1.1\r\n\r\n");
    d.lost(Side::Client);
    // No HEAD remembered: the length frames a body.
    let server = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    assert_eq!(
        texts(&frames(d.as_mut(), Side::Server, server)),
        ["200 OK ok"]
    );
}

#[test]
fn etcd_gateway_calls() {
    let mut d = decoder();
    let body = br#"{"key":"azM=","value":"djc="}"#;
    let mut put = format!(
        "POST /v3/kv/put HTTP/1.1\r\nHost: 127.0.0.1:2379\r\nContent-Length: {}\r\nContent-Type: application/x-www-form-urlencoded\r\n\r\n",
        body.len()
    )
    .into_bytes();
    put.extend_from_slice(body);
    let Parse::Frame {
        message: Some(m), ..
    } = d.parse(Side::Client, &put, false)
    else {
        panic!("not a frame")
    };
    assert_eq!((m.op.as_str(), m.text.as_str()), ("etcd.Put", "PUT k3 v7"));
    assert_eq!(
        m.kv_request,
        Some(KvRequest::Write {
            key: "k3".into(),
            value: "v7".into()
        })
    );
    let reply = br#"{"header":{"cluster_id":"14841639068965178418","member_id":"10276657743932975437","revision":"2","raft_term":"2"}}"#;
    let mut response = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        reply.len()
    )
    .into_bytes();
    response.extend_from_slice(reply);
    let Parse::Frame {
        message: Some(m), ..
    } = d.parse(Side::Server, &response, false)
    else {
        panic!("not a frame")
    };
    assert_eq!((m.op.as_str(), m.text.as_str()), ("200", "200 OK rev 2"));
    assert_eq!(m.kv_response, Some(KvResponse::Ok));

    // Not JSON: the generic text, no operation.
    let mut d = decoder();
    let Parse::Frame {
        message: Some(m), ..
    } = d.parse(
        Side::Client,
        b"POST /v3/kv/range HTTP/1.1\r\nContent-Length: 3\r\n\r\nkey",
        false,
    )
    else {
        panic!("not a frame")
    };
    assert_eq!(
        (m.op.as_str(), m.text.as_str()),
        ("etcd.Range", "POST /v3/kv/range key")
    );
    assert_eq!(m.kv_request, None);
    let Parse::Frame {
        message: Some(m), ..
    } = d.parse(
        Side::Server,
        b"HTTP/1.1 400 Bad Request\r\nContent-Length: 62\r\n\r\n{\"error\":\"unexpected EOF\",\"message\":\"unexpected EOF\",\"code\":3}",
        false,
    )
    else {
        panic!("not a frame")
    };
    assert_eq!(m.text, "400 Bad Request unexpected EOF");
    assert_eq!(m.kv_response, None, "the request was no operation");
}
