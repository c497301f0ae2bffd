//! Protocol decoders: the two byte streams of a connection turned into requests and
//! responses, so that a trace says `SET k3 v7` → `+OK` rather than "23 bytes".
//!
//! Three layers, each usable alone:
//!
//! - a [`Protocol`] knows its name, recognizes its first bytes ([`Protocol::detect`]) and makes
//!   a [`Decoder`] per connection. A decoder splits bytes into frames one at a time
//!   ([`Decoder::parse`]) and says what each frame means ([`Message`]). [`PROTOCOLS`] is the
//!   registry; [`by_name`] and [`detect`] look into it.
//! - [`Conversation`] drives a decoder over the bytes of a connection as they come: frames
//!   split across reads or writes are reassembled, several frames in one chunk are split,
//!   missing bytes (a capture shorter than the transfer) are skipped and decoding picks up at
//!   the next transfer that parses. Memory is bounded: at most [`MAX_BUFFER`] bytes wait per
//!   direction; a longer frame is decoded from its head and the rest skipped unseen.
//! - [`Pairer`] matches requests with responses (in order, or by stream id for multiplexed
//!   protocols) into [`Exchange`]s.
//!
//! Adding a protocol is one file: a type implementing [`Protocol`], a decoder implementing
//! [`Decoder`], and its line in [`PROTOCOLS`] (docs/protocols.md shows memcached's).
//!
//! ```
//! use ordeal_proto::{by_name, Conversation, Pairer, Side};
//!
//! let mut conv = Conversation::new(by_name("resp"));
//! let mut pairs = Pairer::default();
//! let mut done = Vec::new();
//! // A pipelined request split in the middle of a frame, then both replies at once.
//! for (side, at, bytes) in [
//!     (Side::Client, 0, &b"*3\r\n$3\r\nSET\r\n$2\r\nk3\r\n$2\r\nv7\r\n*2\r\n$3\r\nGE"[..]),
//!     (Side::Client, 39, &b"T\r\n$2\r\nk3\r\n"[..]),
//!     (Side::Server, 0, &b"+OK\r\n$2\r\nv7\r\n"[..]),
//! ] {
//!     for framed in conv.feed(side, at, bytes, true) {
//!         pairs.push(framed, &mut done);
//!     }
//! }
//! let texts: Vec<String> = done
//!     .iter()
//!     .map(|x| format!("{} -> {}", x.request.message.text, x.response.as_ref().unwrap().message.text))
//!     .collect();
//! assert_eq!(texts, ["SET k3 v7 -> +OK", "GET k3 -> \"v7\""]);
//! ```

#![forbid(unsafe_code)]

mod conversation;
mod pair;
mod summary;

pub mod demo;
pub mod grpc;
pub mod http;
pub mod memcached;
pub mod resp;

pub use conversation::{Conversation, Framed, MAX_BUFFER};
pub use pair::{Exchange, Pairer, MAX_PENDING};
pub use summary::{summarize, Summary, SUMMARY_MAX};

/// Which end of a connection sent some bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Side {
    /// The end that connected.
    Client,
    /// The end that accepted.
    Server,
}

impl Side {
    /// The other end.
    pub fn other(self) -> Side {
        match self {
            Side::Client => Side::Server,
            Side::Server => Side::Client,
        }
    }
    /// 0 for the client, 1 for the server: an index into per-side arrays.
    pub fn index(self) -> usize {
        self as usize
    }
}

/// What a message is in the conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Asks for something; a [`Role::Response`] from the other side answers it.
    Request,
    /// Answers the oldest unanswered request of the other side (or the one with the same
    /// [`Message::stream`]).
    Response,
    /// Expects no answer: a replicated command, a push, a heartbeat.
    OneWay,
}

/// A key-value operation a request asks for, as a history sees it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum KvRequest {
    /// Read `key`.
    Read { key: String },
    /// Set `key` to `value`.
    Write { key: String, value: String },
    /// Set `key` to `new` if it holds `old`.
    Cas {
        key: String,
        old: String,
        new: String,
    },
}

impl KvRequest {
    /// The key the operation is on.
    pub fn key(&self) -> &str {
        match self {
            KvRequest::Read { key } | KvRequest::Write { key, .. } | KvRequest::Cas { key, .. } => {
                key
            }
        }
    }
}

/// What a response says of the key-value operation it answers.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum KvResponse {
    /// Done: a write or cas took effect.
    Ok,
    /// The value read (`None`: the key does not exist).
    Value(Option<String>),
    /// Certainly not done: a cas whose compare failed, a write refused before it ran
    /// (`NOTPRIMARY`, Redis `-READONLY`).
    Fail,
    /// An error that does not say whether the operation happened.
    Unknown,
}

/// One decoded frame: who sent it, what it is, and a one-line text for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Request, response or one-way.
    pub role: Role,
    /// The operation's name for requests and one-way messages (`SET`, `GET /health`,
    /// `etcd.Range`), the status for responses (`+OK`, `200`, `VALUE`).
    pub op: String,
    /// The whole message on one line, arguments summarized (`SET k3 v7`, `$2 v7`,
    /// `POST /items {"name":"a"}`), at most about [`SUMMARY_MAX`] bytes per argument.
    pub text: String,
    /// Pairs a response with its request in multiplexed protocols (an HTTP/2 stream id);
    /// `None`: responses come in request order.
    pub stream: Option<u64>,
    /// The key-value operation a request asks for.
    pub kv_request: Option<KvRequest>,
    /// What a response says of a key-value operation.
    pub kv_response: Option<KvResponse>,
    /// Part of the message was not seen (longer than the capture or [`MAX_BUFFER`]): its
    /// text is cut and its `kv_*` values, if any, are not the whole values.
    pub truncated: bool,
}

impl Message {
    /// A message with only a role, an operation and a text.
    pub fn new(role: Role, op: impl Into<String>, text: impl Into<String>) -> Message {
        Message {
            role,
            op: op.into(),
            text: text.into(),
            stream: None,
            kv_request: None,
            kv_response: None,
            truncated: false,
        }
    }
}

/// What [`Decoder::parse`] found at the start of the bytes it was given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parse {
    /// The bytes are the beginning of a frame; more are needed.
    Need,
    /// A frame of `len` bytes starts here. `len` may be larger than the bytes given (when
    /// they were the most the caller could hold): the rest is skipped without being seen.
    /// `message` is `None` for frames that mean nothing alone (an HTTP/2 SETTINGS frame, the
    /// middle of a message spread over several frames).
    Frame { len: u64, message: Option<Message> },
    /// These bytes are not a frame of this protocol: the caller skips to the next transfer
    /// that parses.
    Invalid,
}

/// Splits one connection's bytes into frames. One decoder per connection: it may keep state
/// between frames of either side (a replication stream after its handshake, an HTTP/2
/// connection's header tables, the method of the request a response answers).
pub trait Decoder: Send {
    /// The frame at the start of `buf`, sent by `side`. `full` is true when `buf` is all the
    /// caller can hold ([`MAX_BUFFER`]): then answer from what is there (a `Frame` whose
    /// message is marked `truncated`) or `Invalid`, never `Need`.
    fn parse(&mut self, side: Side, buf: &[u8], full: bool) -> Parse;

    /// Some bytes of `side` were not seen: the next `parse` of that side starts at a transfer
    /// boundary, not necessarily at a frame. Decoders that keep per-side framing state reset it.
    fn lost(&mut self, _side: Side) {}
}

/// Whether a connection's first bytes are a protocol's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detect {
    /// They are.
    Yes,
    /// They are not.
    No,
    /// Too few bytes to say.
    Maybe,
}

/// A protocol: its name, how to recognize it, a decoder per connection.
pub trait Protocol: Sync {
    /// The name used in experiment files (`protocol = "resp"`) and calls.jsonl.
    fn name(&self) -> &'static str;
    /// Whether `first`, the first bytes `side` sent on a connection, are this protocol's.
    /// Only confident answers count: a protocol that cannot tell says `No`.
    fn detect(&self, side: Side, first: &[u8]) -> Detect;
    /// A decoder for one new connection.
    fn decoder(&self) -> Box<dyn Decoder>;
}

/// Every protocol ordeal decodes, in the order detection tries them.
pub static PROTOCOLS: &[&dyn Protocol] = &[
    &resp::Resp,
    &http::Http1,
    &grpc::Grpc,
    &demo::DemoKv,
    &memcached::Memcached,
];

/// The protocol called `name`.
pub fn by_name(name: &str) -> Option<&'static dyn Protocol> {
    PROTOCOLS.iter().copied().find(|p| p.name() == name)
}

/// The names of every protocol, for messages ("did you mean").
pub fn names() -> impl Iterator<Item = &'static str> {
    PROTOCOLS.iter().map(|p| p.name())
}

/// What a connection's first bytes say of its protocol.
#[derive(Clone, Copy)]
pub enum Detection {
    /// This protocol's.
    Found(&'static dyn Protocol),
    /// No protocol's: the connection stays bytes.
    Unknown,
    /// Some protocol needs more bytes to decide.
    NeedMore,
}

/// Which protocol, if any, the first bytes `side` sent are: the first of [`PROTOCOLS`] that
/// says [`Detect::Yes`].
pub fn detect(side: Side, first: &[u8]) -> Detection {
    detect_among(PROTOCOLS, side, first)
}

/// [`detect`] among `protocols`.
pub fn detect_among(protocols: &[&'static dyn Protocol], side: Side, first: &[u8]) -> Detection {
    let mut maybe = false;
    for p in protocols {
        match p.detect(side, first) {
            Detect::Yes => return Detection::Found(*p),
            Detect::Maybe => maybe = true,
            Detect::No => {}
        }
    }
    if maybe {
        Detection::NeedMore
    } else {
        Detection::Unknown
    }
}
