//! HTTP/1.x: requests and responses on a keep-alive connection, pipelined or not, bodies
//! framed by `Content-Length`, `Transfer-Encoding: chunked` or the connection's end; JSON
//! bodies summarized; etcd's v3 JSON gateway read as key-value operations.
//!
//! One frame per message, body included. Messages read as:
//!
//! | message | `op` | `text` |
//! |---|---|---|
//! | request | `GET /path` (no query) | `GET /path?q=1`, then the body summarized |
//! | response | `200` | `200 OK`, then the body summarized |
//! | `1xx` but `101` | `100` | `100 Continue` ([`Role::OneWay`]: it answers nothing) |
//! | etcd put | `etcd.Put` | `PUT k3 v7` → `200 OK rev 2` |
//! | etcd range | `etcd.Range` | `RANGE k3` → `200 k3=v7 rev 2`, `200 (none) rev 2` |
//! | etcd txn | `etcd.Txn` | `TXN k3 v1→v2` → `200 succeeded rev 3`, `200 failed rev 3` |
//! | etcd deleterange | `etcd.DeleteRange` | `DELETE k3` → `200 deleted 1 rev 4` |
//!
//! Bodies: JSON objects and arrays compacted (long strings cut, about 120 characters in
//! all), other text summarized like any argument, anything else `<N bytes content/type>`.
//!
//! What a decoder cannot know from the bytes alone:
//! - a body delimited by the connection's end (a response with neither length nor
//!   chunking) ends only at the close, which a decoder is not told: the response is a
//!   frame of its head alone, `truncated`, text `<body until close>`, and what follows on
//!   that side is skipped;
//! - after `101 Switching Protocols` (or a `2xx` to `CONNECT`) the connection is another
//!   protocol's: both sides are skipped, without messages;
//! - a response's framing depends on its request (`HEAD`): the decoder remembers the
//!   requests in flight, and forgets them when bytes of either side are missed.

mod base64;
mod body;
mod etcd;
mod head;

use std::borrow::Cow;
use std::collections::VecDeque;

use crate::{summarize, Decoder, Detect, Message, Parse, Protocol, Role, Side, MAX_PENDING};
use body::Size;
use head::{parse_head, walk_chunks, ChunkAt, HeadParse, StartLine, Walk};

/// HTTP/1.0 and HTTP/1.1.
pub struct Http1;

/// The methods detection accepts as a connection's first bytes.
const METHODS: [&[u8]; 9] = [
    b"GET", b"POST", b"PUT", b"DELETE", b"HEAD", b"OPTIONS", b"PATCH", b"CONNECT", b"TRACE",
];

/// Detection sees at most 256 bytes: a request line still unfinished after this many bytes
/// of a path-like target counts as HTTP rather than leaving a long URL undecoded.
const LONG_TARGET: usize = 128;

impl Protocol for Http1 {
    fn name(&self) -> &'static str {
        "http"
    }
    fn detect(&self, side: Side, first: &[u8]) -> Detect {
        match side {
            Side::Client => detect_request(first),
            Side::Server => detect_response(first),
        }
    }
    fn decoder(&self) -> Box<dyn Decoder> {
        Box::<Http1Decoder>::default()
    }
}

/// `METHOD SP target SP HTTP/1.x` with a known method, once the line is there.
fn detect_request(first: &[u8]) -> Detect {
    let Some(sp) = first.iter().position(|&b| b == b' ') else {
        return if METHODS.iter().any(|m| m.starts_with(first)) {
            Detect::Maybe
        } else {
            Detect::No
        };
    };
    if !METHODS.contains(&&first[..sp]) {
        return Detect::No;
    }
    if let Some(nl) = first.iter().position(|&b| b == b'\n') {
        let line = &first[..nl];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        return match head::request_line(line) {
            Some(_) => Detect::Yes,
            None => Detect::No,
        };
    }
    let rest = &first[sp + 1..];
    let visible = |b: &[u8]| b.iter().all(|c| (0x21..=0x7e).contains(c));
    match rest.iter().position(|&b| b == b' ') {
        None if !visible(rest) => Detect::No,
        None if rest.len() >= LONG_TARGET && (rest[0] == b'/' || rest.starts_with(b"http")) => {
            Detect::Yes
        }
        None => Detect::Maybe,
        Some(sp) => {
            let (target, version) = (&rest[..sp], &rest[sp + 1..]);
            let version = version.strip_suffix(b"\r").unwrap_or(version);
            let version_so_far = match version.len() {
                0..=7 => b"HTTP/1.".starts_with(version),
                8 => version.starts_with(b"HTTP/1.") && version[7].is_ascii_digit(),
                _ => false,
            };
            if !target.is_empty() && visible(target) && version_so_far {
                Detect::Maybe
            } else {
                Detect::No
            }
        }
    }
}

/// `HTTP/1.x ddd`.
fn detect_response(first: &[u8]) -> Detect {
    const PATTERN: &[u8] = b"HTTP/1.d ddd";
    for (i, (&b, &p)) in first.iter().zip(PATTERN).enumerate() {
        let ok = match p {
            b'd' if i > 6 => b.is_ascii_digit(),
            p => b == p,
        };
        if !ok {
            return Detect::No;
        }
    }
    match first.get(PATTERN.len()) {
        None if first.len() < PATTERN.len() => Detect::Maybe,
        None | Some(b' ' | b'\r' | b'\n') => Detect::Yes,
        Some(_) => Detect::No,
    }
}

/// A side's place in its stream, between frames.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum Body {
    /// At a message's start.
    #[default]
    Idle,
    /// In a chunked body whose message was framed from its head (it was longer than the
    /// caller's buffer): the rest of its chunks come as frames without messages.
    Chunks(ChunkAt),
    /// In a body that lasts until the connection closes.
    UntilClose,
}

/// What a response's framing and meaning depend on in its request.
#[derive(Debug, Clone, Copy, Default)]
struct Asked {
    head: bool,
    connect: bool,
    etcd: Option<etcd::Call>,
    /// The request is a key-value operation.
    kv: bool,
}

/// One connection's decoder.
#[derive(Default)]
struct Http1Decoder {
    bodies: [Body; 2],
    /// Requests not answered yet, oldest first.
    asked: VecDeque<Asked>,
    /// Past `101 Switching Protocols` or a tunnel: not HTTP any more.
    upgraded: bool,
}

/// How a message's body is delimited.
#[derive(Debug, Clone, Copy)]
enum Delimit {
    Empty,
    Length(u64),
    Chunked,
    UntilClose,
}

/// A message's extent and what of its body the buffer holds.
struct Framing<'a> {
    len: u64,
    seen: Cow<'a, [u8]>,
    size: Size,
    /// The side's state past the frame.
    after: Body,
    truncated: bool,
}

/// The message whose head ends at `head` in `buf`; `Ok(None)` when more bytes are needed.
fn frame(buf: &[u8], head: usize, delimit: Delimit, full: bool) -> Result<Option<Framing<'_>>, ()> {
    let framing = |len: u64, seen, size, after, truncated| Framing {
        len,
        seen,
        size,
        after,
        truncated,
    };
    Ok(Some(match delimit {
        Delimit::Empty => framing(
            head as u64,
            Cow::Borrowed(&[][..]),
            Size::Known(0),
            Body::Idle,
            false,
        ),
        Delimit::Length(n) => {
            let end = (head as u64).checked_add(n).ok_or(())?;
            if end <= buf.len() as u64 {
                let seen = Cow::Borrowed(&buf[head..end as usize]);
                framing(end, seen, Size::Known(n), Body::Idle, false)
            } else if full {
                framing(
                    end,
                    Cow::Borrowed(&buf[head..]),
                    Size::Known(n),
                    Body::Idle,
                    true,
                )
            } else {
                return Ok(None);
            }
        }
        Delimit::Chunked => {
            // Incomplete bodies are walked again as more bytes come: copy the data only
            // for the walk that frames the message.
            if !full
                && matches!(
                    walk_chunks(buf, head, ChunkAt::Size, None),
                    Walk::Partial { .. }
                )
            {
                return Ok(None);
            }
            let mut data = Vec::new();
            match walk_chunks(buf, head, ChunkAt::Size, Some(&mut data)) {
                Walk::Complete { end } => {
                    let size = Size::Known(data.len() as u64);
                    framing(end as u64, Cow::Owned(data), size, Body::Idle, false)
                }
                Walk::Partial {
                    known,
                    at,
                    data: data_len,
                } if full => framing(
                    known,
                    Cow::Owned(data),
                    Size::AtLeast(data_len),
                    Body::Chunks(at),
                    true,
                ),
                Walk::Partial { .. } => return Ok(None),
                Walk::Invalid => return Err(()),
            }
        }
        Delimit::UntilClose => framing(
            head as u64,
            Cow::Borrowed(&[][..]),
            Size::UntilClose,
            Body::UntilClose,
            true,
        ),
    }))
}

/// `Need`, or `Invalid` when the caller can give no more bytes.
fn need(full: bool) -> Parse {
    if full {
        Parse::Invalid
    } else {
        Parse::Need
    }
}

/// Bytes that mean nothing alone.
fn silent(len: usize) -> Parse {
    Parse::Frame {
        len: len as u64,
        message: None,
    }
}

/// An empty line before a message (clients may send one after a body, RFC 9112 2.2).
fn empty_line(buf: &[u8]) -> Option<Parse> {
    match buf {
        [b'\n', ..] => Some(silent(1)),
        [b'\r'] => Some(Parse::Need),
        [b'\r', b'\n', ..] => Some(silent(2)),
        _ => None,
    }
}

fn text(b: &[u8]) -> String {
    summarize(b, b.len()).text
}

/// `first` and, when there is one, a space and `body`.
fn join(first: String, body: &str) -> String {
    if body.is_empty() {
        first
    } else {
        format!("{first} {body}")
    }
}

impl Decoder for Http1Decoder {
    fn parse(&mut self, side: Side, buf: &[u8], full: bool) -> Parse {
        if buf.is_empty() {
            return Parse::Need;
        }
        if self.upgraded {
            return silent(buf.len());
        }
        match self.bodies[side.index()] {
            Body::UntilClose => silent(buf.len()),
            Body::Chunks(at) => self.more_chunks(side, buf, full, at),
            Body::Idle => {
                if let Some(parse) = empty_line(buf) {
                    return parse;
                }
                match side {
                    Side::Client => self.request(buf, full),
                    Side::Server => self.response(buf, full),
                }
            }
        }
    }

    fn lost(&mut self, side: Side) {
        self.bodies[side.index()] = Body::Idle;
        // Which requests the coming responses answer is not known any more.
        self.asked.clear();
    }
}

impl Http1Decoder {
    fn request(&mut self, buf: &[u8], full: bool) -> Parse {
        let head = match parse_head(buf, true) {
            HeadParse::Done(head) => head,
            HeadParse::Need => return need(full),
            HeadParse::Invalid => return Parse::Invalid,
        };
        let StartLine::Request { method, target } = head.start else {
            return Parse::Invalid;
        };
        let fields = head.fields;
        let delimit = match (fields.transfer_encoding, fields.chunked) {
            (true, true) => Delimit::Chunked,
            // A request's body ends only where a length or chunking says (RFC 9112 6.3).
            (true, false) => return Parse::Invalid,
            (false, _) => Delimit::Length(fields.content_length.unwrap_or(0)),
        };
        let framing = match frame(buf, head.len, delimit, full) {
            Ok(Some(framing)) => framing,
            Ok(None) => return Parse::Need,
            Err(()) => return Parse::Invalid,
        };
        let path = target.split(|&b| b == b'?').next().unwrap_or(target);
        let method_text = text(method);
        let call = etcd::call(method, path);
        let asked = call.filter(|_| !framing.truncated).and_then(|call| {
            let json = serde_json::from_slice(&framing.seen).ok()?;
            etcd::request(call, &json)
        });
        let op = match call {
            Some(call) => call.op().to_string(),
            None => format!("{method_text} {}", text(path)),
        };
        let mut message = match asked {
            Some(etcd::Request { text, kv }) => Message {
                kv_request: kv,
                ..Message::new(Role::Request, op, text)
            },
            None => {
                let body = body::describe(&framing.seen, framing.size, fields.content_type);
                let first = format!("{method_text} {}", text(target));
                Message::new(Role::Request, op, join(first, &body))
            }
        };
        message.truncated = framing.truncated;
        self.bodies[Side::Client.index()] = framing.after;
        self.asked.push_back(Asked {
            head: method == b"HEAD",
            connect: method == b"CONNECT",
            etcd: call,
            kv: message.kv_request.is_some(),
        });
        if self.asked.len() > MAX_PENDING {
            self.asked.pop_front();
        }
        Parse::Frame {
            len: framing.len,
            message: Some(message),
        }
    }

    fn response(&mut self, buf: &[u8], full: bool) -> Parse {
        let head = match parse_head(buf, false) {
            HeadParse::Done(head) => head,
            HeadParse::Need => return need(full),
            HeadParse::Invalid => return Parse::Invalid,
        };
        let StartLine::Status { code, reason } = head.start else {
            return Parse::Invalid;
        };
        let fields = head.fields;
        // An interim response (`100 Continue`) comes before its request's final one.
        let interim = (100..200).contains(&code) && code != 101;
        let asked = match interim {
            true => Asked::default(),
            false => self.asked.front().copied().unwrap_or_default(),
        };
        let tunnel = asked.connect && (200..300).contains(&code);
        let delimit = if code < 200 || code == 204 || code == 304 || asked.head || tunnel {
            Delimit::Empty
        } else {
            match (
                fields.transfer_encoding,
                fields.chunked,
                fields.content_length,
            ) {
                (true, true, _) => Delimit::Chunked,
                (true, false, _) | (false, _, None) => Delimit::UntilClose,
                (false, _, Some(n)) => Delimit::Length(n),
            }
        };
        let framing = match frame(buf, head.len, delimit, full) {
            Ok(Some(framing)) => framing,
            Ok(None) => return Parse::Need,
            Err(()) => return Parse::Invalid,
        };
        if !interim {
            self.asked.pop_front();
        }
        self.upgraded = code == 101 || tunnel;
        self.bodies[Side::Server.index()] = framing.after;
        let status = match reason {
            [] => code.to_string(),
            reason => format!("{code} {}", text(reason)),
        };
        let role = if interim {
            Role::OneWay
        } else {
            Role::Response
        };
        let (etcd_text, kv) = match asked.etcd {
            Some(call) => {
                let json = (!framing.truncated)
                    .then(|| serde_json::from_slice(&framing.seen).ok())
                    .flatten();
                etcd::response(call, code, &status, json.as_ref())
            }
            None => (None, None),
        };
        let text = etcd_text.unwrap_or_else(|| {
            join(
                status,
                &body::describe(&framing.seen, framing.size, fields.content_type),
            )
        });
        let message = Message {
            kv_response: kv.filter(|_| asked.kv),
            truncated: framing.truncated,
            ..Message::new(role, code.to_string(), text)
        };
        Parse::Frame {
            len: framing.len,
            message: Some(message),
        }
    }

    /// The rest of a chunked body framed from its head.
    fn more_chunks(&mut self, side: Side, buf: &[u8], full: bool, at: ChunkAt) -> Parse {
        match walk_chunks(buf, 0, at, None) {
            Walk::Complete { end } => {
                self.bodies[side.index()] = Body::Idle;
                silent(end)
            }
            Walk::Partial { known, at, .. } if known > 0 => {
                self.bodies[side.index()] = Body::Chunks(at);
                Parse::Frame {
                    len: known,
                    message: None,
                }
            }
            Walk::Partial { .. } => need(full),
            Walk::Invalid => Parse::Invalid,
        }
    }
}

#[cfg(test)]
mod tests;
