//! HTTP/2 (cleartext, prior knowledge), gRPC on it, and etcd's KV service on gRPC: what
//! `etcdctl put k3 v7` sends decodes to `PUT k3 v7` → `OK rev 5`.
//!
//! Every HTTP/2 frame is one [`Parse::Frame`]; a message comes when a stream's request
//! (HEADERS, CONTINUATION, DATA up to END_STREAM or, for gRPC, the first whole message) or
//! response (HEADERS, DATA, trailers; or a server's RST_STREAM) is whole, with the stream id
//! so [`crate::Pairer`] pairs them. Header blocks are decoded with one
//! [`hpack::HpackDecoder`] per direction, gRPC messages are the DATA's length-prefixed
//! messages, and the etcd v3 KV messages (Put, Range, DeleteRange, Txn) become key-value
//! operations. Other gRPC calls show their path, plain HTTP/2 requests their method and path.
//!
//! After bytes of a direction are missed, its header table is forgotten (the missed blocks
//! may have added entries): fields that refer to older entries do not decode, so later
//! calls on the connection may show `? (headers not decoded)` rather than something wrong.
//!
//! Bounded: at most [`MAX_STREAMS`] streams are followed (the oldest is forgotten), at most
//! [`MAX_STREAM_DATA`] bytes of a request's or response's DATA are kept (the message is then
//! `truncated`), header blocks at most [`MAX_BLOCK`] bytes.

mod etcd;
mod frames;
pub mod hpack;
mod huffman;
mod message;
mod protobuf;

use std::collections::BTreeMap;

use crate::{Decoder, Detect, Message, Parse, Protocol, Side};
use frames::{FrameHeader, FLAG_END_HEADERS, FLAG_END_STREAM, HEADER_LEN, PREFACE};
use hpack::HpackDecoder;

pub use frames::PREFACE as CLIENT_PREFACE;

/// Most streams followed at once; a new one past it forgets the oldest.
pub const MAX_STREAMS: usize = 1024;
/// Most DATA bytes kept per request or response; past it the rest is counted, not kept.
pub const MAX_STREAM_DATA: usize = 64 * 1024;
/// Most bytes of a header block (HEADERS and its CONTINUATIONs) kept.
pub const MAX_BLOCK: usize = 64 * 1024;
/// Most bytes kept of a header value the decoder looks at (path, status, grpc-message).
const MAX_VALUE: usize = 1024;

/// HTTP/2, and gRPC and etcd on it.
pub struct Grpc;

impl Protocol for Grpc {
    fn name(&self) -> &'static str {
        "grpc"
    }

    fn detect(&self, side: Side, first: &[u8]) -> Detect {
        match side {
            Side::Client if first.len() < PREFACE.len() => {
                if PREFACE.starts_with(first) {
                    Detect::Maybe
                } else {
                    Detect::No
                }
            }
            Side::Client if first.starts_with(PREFACE) => Detect::Yes,
            Side::Client => Detect::No,
            Side::Server => detect_settings(first),
        }
    }

    fn decoder(&self) -> Box<dyn Decoder> {
        Box::<H2>::default()
    }
}

/// A server's first frame is its SETTINGS: type 4, no flags, stream 0, a length that is a
/// multiple of 6 and (few settings exist) below 64 KiB, so its first byte is 0.
fn detect_settings(first: &[u8]) -> Detect {
    let want: [Option<u8>; HEADER_LEN] = [
        Some(0),
        None,
        None,
        Some(frames::SETTINGS),
        Some(0),
        Some(0),
        Some(0),
        Some(0),
        Some(0),
    ];
    if want
        .iter()
        .zip(first)
        .any(|(w, b)| w.is_some_and(|w| w != *b))
    {
        return Detect::No;
    }
    match FrameHeader::parse(first) {
        None => Detect::Maybe,
        Some(h) if h.length.is_multiple_of(6) => Detect::Yes,
        Some(_) => Detect::No,
    }
}

/// What one side of a stream said: the headers the decoder looks at, and its DATA's head.
#[derive(Default)]
struct Half {
    method: Option<String>,
    path: Option<String>,
    status: Option<String>,
    content_type: Option<String>,
    grpc_status: Option<String>,
    grpc_message: Option<String>,
    /// Some header fields did not decode (they referred to entries added in bytes not seen).
    headers_partial: bool,
    data: Vec<u8>,
    /// DATA bytes sent, kept or not.
    data_len: u64,
    /// Some of it was not seen or not kept.
    truncated: bool,
}

impl Half {
    fn take_headers(&mut self, headers: Vec<hpack::Header>) {
        for (name, value) in headers {
            let slot = match &name[..] {
                b":method" => &mut self.method,
                b":path" => &mut self.path,
                b":status" => &mut self.status,
                b"content-type" => &mut self.content_type,
                b"grpc-status" => &mut self.grpc_status,
                b"grpc-message" => &mut self.grpc_message,
                _ => continue,
            };
            let kept = &value[..value.len().min(MAX_VALUE)];
            *slot = Some(String::from_utf8_lossy(kept).into_owned());
        }
    }

    fn take_data(&mut self, content: &[u8]) {
        self.data_len += content.len() as u64;
        let room = MAX_STREAM_DATA - self.data.len();
        if content.len() > room {
            self.truncated = true;
        }
        self.data
            .extend_from_slice(&content[..content.len().min(room)]);
    }
}

#[derive(Default)]
struct Stream {
    request: Half,
    response: Half,
    /// The request's message was given out (its DATA is dropped; its headers stay for the
    /// response's decoding).
    request_done: bool,
}

/// A header block waiting for its CONTINUATION frames.
struct Block {
    stream: u32,
    end_stream: bool,
    /// A PUSH_PROMISE's: decoded only to keep the table right.
    promise: bool,
    bytes: Vec<u8>,
    cut: bool,
}

/// One HTTP/2 connection's decoding state.
#[derive(Default)]
struct H2 {
    /// The client's preface is behind (or was never seen: the capture started later).
    preface_done: bool,
    hpack: [HpackDecoder; 2],
    pending: [Option<Block>; 2],
    streams: BTreeMap<u32, Stream>,
    /// Bytes of the side were lost: frame headers are checked strictly until one parses.
    strict: [bool; 2],
}

impl Decoder for H2 {
    fn parse(&mut self, side: Side, buf: &[u8], full: bool) -> Parse {
        if side == Side::Client && !self.preface_done {
            if buf.len() < PREFACE.len() && PREFACE.starts_with(buf) && !full {
                return Parse::Need;
            }
            if buf.starts_with(PREFACE) {
                self.preface_done = true;
                return Parse::Frame {
                    len: PREFACE.len() as u64,
                    message: None,
                };
            }
        }
        let Some(h) = FrameHeader::parse(buf) else {
            return if full { Parse::Invalid } else { Parse::Need };
        };
        let s = side.index();
        if !h.plausible(self.strict[s]) {
            return Parse::Invalid;
        }
        // A header block in progress must be continued at once (RFC 9113 6.10).
        match &self.pending[s] {
            Some(p) if h.kind != frames::CONTINUATION || h.stream != p.stream => {
                return Parse::Invalid
            }
            None if h.kind == frames::CONTINUATION && self.strict[s] => return Parse::Invalid,
            _ => {}
        }
        let total = HEADER_LEN + h.length as usize;
        if buf.len() < total && !full {
            return Parse::Need;
        }
        let payload = &buf[HEADER_LEN..total.min(buf.len())];
        let cut = payload.len() < h.length as usize;
        let message = match h.kind {
            frames::DATA => {
                let Some(content) = frames::content(&h, payload) else {
                    return Parse::Invalid;
                };
                self.data(side, &h, content, cut)
            }
            frames::HEADERS | frames::PUSH_PROMISE => {
                let Some(mut block) = frames::content(&h, payload) else {
                    return Parse::Invalid;
                };
                let promise = h.kind == frames::PUSH_PROMISE;
                if promise {
                    // The promised stream id comes first.
                    block = block.get(4..).unwrap_or_default();
                }
                let kept = &block[..block.len().min(MAX_BLOCK)];
                self.pending[s] = Some(Block {
                    stream: h.stream,
                    end_stream: h.flags & FLAG_END_STREAM != 0 && !promise,
                    promise,
                    bytes: kept.to_vec(),
                    cut: cut || kept.len() < block.len(),
                });
                self.block_end(side, &h)
            }
            frames::CONTINUATION => match &mut self.pending[s] {
                Some(p) => {
                    let room = MAX_BLOCK - p.bytes.len();
                    p.cut |= cut || payload.len() > room;
                    p.bytes
                        .extend_from_slice(&payload[..payload.len().min(room)]);
                    self.block_end(side, &h)
                }
                // The HEADERS was missed with bytes before the capture started.
                None => None,
            },
            frames::RST_STREAM => {
                let code = payload
                    .get(..4)
                    .map_or(0, |b| u32::from_be_bytes(b.try_into().unwrap_or_default()));
                self.reset(side, h.stream, code)
            }
            // SETTINGS (the table size is followed through the blocks' size updates), PING,
            // WINDOW_UPDATE, PRIORITY, GOAWAY and extensions mean nothing to the calls.
            _ => None,
        };
        self.strict[s] = false;
        if side == Side::Client {
            self.preface_done = true;
        }
        Parse::Frame {
            len: total as u64,
            message,
        }
    }

    fn lost(&mut self, side: Side) {
        let s = side.index();
        self.strict[s] = true;
        self.pending[s] = None;
        // Missed blocks may have added entries: refer to them and get nothing, not a wrong
        // field.
        self.hpack[s].forget();
        for stream in self.streams.values_mut() {
            match side {
                Side::Client => stream.request.truncated = true,
                Side::Server => stream.response.truncated = true,
            }
        }
    }
}

impl H2 {
    /// The stream `id`, followed from now on if it was not (forgetting the oldest past
    /// [`MAX_STREAMS`]).
    fn stream(&mut self, id: u32) -> &mut Stream {
        if !self.streams.contains_key(&id) && self.streams.len() >= MAX_STREAMS {
            self.streams.pop_first();
        }
        self.streams.entry(id).or_default()
    }

    fn data(&mut self, side: Side, h: &FrameHeader, content: &[u8], cut: bool) -> Option<Message> {
        let stream = self.streams.get_mut(&h.stream)?;
        let half = match side {
            Side::Client if stream.request_done => return None,
            Side::Client => &mut stream.request,
            Side::Server => &mut stream.response,
        };
        half.take_data(content);
        half.truncated |= cut;
        // A streaming call (an etcd watch) keeps its request open: it is given out with its
        // first whole message.
        let first_message = side == Side::Client && message::first_message_whole(half);
        if h.flags & FLAG_END_STREAM != 0 || first_message {
            return self.end(side, h.stream);
        }
        None
    }

    /// After a HEADERS, PUSH_PROMISE or CONTINUATION: the block, if whole, decoded.
    fn block_end(&mut self, side: Side, h: &FrameHeader) -> Option<Message> {
        let s = side.index();
        if h.flags & FLAG_END_HEADERS == 0 {
            return None;
        }
        let block = self.pending[s].take()?;
        let (headers, decoded) = match self.hpack[s].decode(&block.bytes) {
            Ok(headers) => (headers, !block.cut),
            Err(partial) => (partial.headers, false),
        };
        if block.promise {
            return None;
        }
        let stream = self.stream(block.stream);
        let half = match side {
            Side::Client => &mut stream.request,
            Side::Server => &mut stream.response,
        };
        half.take_headers(headers);
        half.headers_partial |= !decoded;
        half.truncated |= !decoded;
        if block.end_stream {
            return self.end(side, block.stream);
        }
        None
    }

    /// `side` ended stream `id`: its request or response is whole.
    fn end(&mut self, side: Side, id: u32) -> Option<Message> {
        match side {
            Side::Client => {
                let stream = self.streams.get_mut(&id)?;
                if stream.request_done {
                    return None;
                }
                stream.request_done = true;
                let message = message::request(id, &stream.request);
                stream.request.data = Vec::new();
                Some(message)
            }
            Side::Server => {
                let stream = self.streams.remove(&id)?;
                Some(message::response(id, &stream.request, &stream.response))
            }
        }
    }

    /// RST_STREAM from `side`: a server's answers the request (it will get no other answer);
    /// a client's gives out a request still open (a cancelled watch) and ends the stream.
    fn reset(&mut self, side: Side, id: u32, code: u32) -> Option<Message> {
        let stream = self.streams.remove(&id)?;
        match side {
            Side::Server => Some(message::reset(id, code)),
            Side::Client if stream.request_done || stream.request.path.is_none() => None,
            Side::Client => Some(message::request(id, &stream.request)),
        }
    }
}
