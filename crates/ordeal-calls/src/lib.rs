//! The call log of a run: every stream connection of a `trace.jsonl` decoded (ordeal-proto)
//! into requests and their responses, with who called whom and when (`calls.jsonl`).
//!
//! [`decode_trace`] makes one pass over the trace's events in `seq` order. Each connection
//! is found from its two sockets (the kernel's inodes; addresses when only one end was
//! traced); the bytes of each direction come from whichever end recorded them (the `data`
//! of its transfers, as long as the capture allows: a write's head missing from the sender's
//! record is taken from the receiver's reads when they have it); the protocol is the one the
//! experiment gave the callee's node (`protocol = "resp"`, recorded in the trace header) or
//! is detected from the first bytes. A [`Call`] is written when its response has been read
//! by the caller (or when nothing more can come: the connection's end, the trace's end), so
//! lines are in the order calls completed.
//!
//! Memory does not grow with the events: per connection, the decoder's bounded buffers, the
//! requests waiting for their responses and the transfers not yet matched to a message.
//!
//! [`Call::request_seq`] is the request's first write, [`Call::response_seq`] the response's
//! last read by the caller: an operation's invocation and completion as the client saw them,
//! which is what a history built from traffic uses ([`Call::kv`]).

#![forbid(unsafe_code)]

mod conns;
mod decode;
mod direction;

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::io::{BufRead, BufWriter, Write};
use std::path::{Path, PathBuf};

pub use decode::Decoder;

/// The file name of the call log in a run directory.
pub const CALLS_FILE: &str = "calls.jsonl";

/// Most message labels kept for the pictures ([`Decoded::labels`]).
pub const MAX_LABELS: usize = 200_000;

/// One exchange: a request and its response (or a message alone).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Call {
    /// The connection, numbered from 0 in the order connections were first seen.
    pub conn: u64,
    /// Protocol name (`resp`, `http`, ...).
    pub protocol: String,
    /// Who sent the request: its node or workload, else its address.
    pub caller: String,
    /// Who it was sent to.
    pub callee: String,
    /// The caller's process, when traced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caller_pid: Option<i32>,
    /// The operation (`SET`, `GET /health`, `etcd.Put`).
    pub op: String,
    /// The request on one line, arguments summarized (`SET k3 v7`).
    pub request: String,
    /// The response on one line (`+OK`), when there was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
    /// How the exchange ended.
    pub status: CallStatus,
    /// `seq` of the request's first write (of its first read when the caller was not traced).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_seq: Option<u64>,
    /// Time of that event (ns since the run started, the call's entry).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_ts: Option<u64>,
    /// `seq` of the response's last read by the caller (of its last write when the caller was
    /// not traced).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_seq: Option<u64>,
    /// Time that read returned (its entry plus its duration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_ts: Option<u64>,
    /// The key-value operation the request asks for, for histories.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kv: Option<KvOp>,
    /// What the response says of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kv_result: Option<KvResult>,
    /// Part of the request or response was not captured: texts are cut and `kv` values are
    /// not whole.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
}

/// How an exchange ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CallStatus {
    /// The caller read the response.
    Answered,
    /// The callee sent a response the caller never read (it crashed, or the run ended).
    Unread,
    /// No response came before the connection or the run ended.
    Unanswered,
    /// A message that expects no response (a replicated command, a push).
    OneWay,
    /// A response whose request was not seen (its bytes were not captured).
    ResponseOnly,
    /// No response was seen, and bytes the callee sent after the request were not captured
    /// (a transfer longer than the capture): the response may have been among them.
    NotCaptured,
}

impl CallStatus {
    /// The name in calls.jsonl.
    pub fn name(self) -> &'static str {
        match self {
            CallStatus::Answered => "answered",
            CallStatus::Unread => "unread",
            CallStatus::Unanswered => "unanswered",
            CallStatus::OneWay => "one-way",
            CallStatus::ResponseOnly => "response-only",
            CallStatus::NotCaptured => "not-captured",
        }
    }
}

/// A key-value operation in calls.jsonl: `{"f":"write","key":"k3","value":"v7"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "f", rename_all = "lowercase")]
pub enum KvOp {
    /// Read `key`.
    Read { key: String },
    /// Write `value` to `key`.
    Write { key: String, value: String },
    /// Set `key` to `new` if it holds `old`.
    Cas {
        key: String,
        old: String,
        new: String,
    },
}

impl KvOp {
    /// The key.
    pub fn key(&self) -> &str {
        match self {
            KvOp::Read { key } | KvOp::Write { key, .. } | KvOp::Cas { key, .. } => key,
        }
    }
}

impl From<ordeal_proto::KvRequest> for KvOp {
    fn from(r: ordeal_proto::KvRequest) -> KvOp {
        match r {
            ordeal_proto::KvRequest::Read { key } => KvOp::Read { key },
            ordeal_proto::KvRequest::Write { key, value } => KvOp::Write { key, value },
            ordeal_proto::KvRequest::Cas { key, old, new } => KvOp::Cas { key, old, new },
        }
    }
}

/// What a response says of a key-value operation: `"ok"`, `"fail"`, `"unknown"`, or
/// `{"read":"v7"}` / `{"read":null}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KvResult {
    /// It took effect.
    Ok,
    /// It certainly did not.
    Fail,
    /// An error that does not say.
    Unknown,
    /// The value read (`None`: no such key).
    Read(Option<String>),
}

impl From<ordeal_proto::KvResponse> for KvResult {
    fn from(r: ordeal_proto::KvResponse) -> KvResult {
        match r {
            ordeal_proto::KvResponse::Ok => KvResult::Ok,
            ordeal_proto::KvResponse::Fail => KvResult::Fail,
            ordeal_proto::KvResponse::Unknown => KvResult::Unknown,
            ordeal_proto::KvResponse::Value(v) => KvResult::Read(v),
        }
    }
}

/// What a pass over a trace found besides the calls.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Decoded {
    /// Calls per protocol name.
    pub calls: HashMap<String, u64>,
    /// Stream connections seen, and how many of them were decoded.
    pub connections: u64,
    pub decoded_connections: u64,
    /// Bytes the decoded connections moved (both directions).
    pub decoded_bytes: u64,
    /// Of those, bytes no message covers: not captured (a transfer longer than `--payload`
    /// whose rest neither end recorded) or skipped until a transfer that parses. Calls in
    /// them are missing from the log.
    pub undecoded_bytes: u64,
    /// For the pictures: the `seq` of a transfer that sent the start of a message → the
    /// message's text (several messages in one write: `SET k1 v1; SET k2 v2 (+3)`). At most
    /// [`MAX_LABELS`] transfers.
    pub labels: HashMap<u64, String>,
    /// Labels left out past [`MAX_LABELS`].
    pub labels_left_out: u64,
}

impl Decoded {
    /// One line for people: `call log: 308 calls (demo-kv 300, resp 8) on 17 of 19
    /// connections`, and what was not decoded, if anything.
    pub fn describe(&self) -> String {
        let total: u64 = self.calls.values().sum();
        let mut per: Vec<(&String, &u64)> = self.calls.iter().collect();
        per.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        let per: Vec<String> = per.iter().map(|(p, n)| format!("{p} {n}")).collect();
        let mut line = format!(
            "call log: {total} calls{} on {} of {} connections",
            if per.is_empty() {
                String::new()
            } else {
                format!(" ({})", per.join(", "))
            },
            self.decoded_connections,
            self.connections
        );
        if self.undecoded_bytes > 0 {
            line.push_str(&format!(
                "; {} of their {} bytes not decoded (transfers longer than the capture, \
                 --payload): calls in them are missing",
                self.undecoded_bytes, self.decoded_bytes
            ));
        }
        line
    }
}

/// Why the call log could not be made.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The trace could not be read.
    #[error(transparent)]
    Trace(#[from] ordeal_events::Error),
    /// The call log could not be written or read.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A line of a call log is not a call.
    #[error("{path}:{line}: not a call: {source}")]
    Parse {
        path: PathBuf,
        line: usize,
        source: serde_json::Error,
    },
}

/// Decodes every connection of the trace at `trace`, giving each call to `each` as it
/// completes.
pub fn decode_trace(trace: &Path, mut each: impl FnMut(Call)) -> Result<Decoded, Error> {
    let reader = ordeal_events::TraceReader::open(trace)?;
    let mut decoder = Decoder::new(&reader.header);
    for ev in reader {
        decoder.event(&ev?, &mut each);
    }
    Ok(decoder.finish(&mut each))
}

/// Writes the call log of the trace at `trace` to `out` (calls.jsonl).
pub fn write_calls(trace: &Path, out: &Path) -> Result<Decoded, Error> {
    let io = |source| Error::Io {
        path: out.to_owned(),
        source,
    };
    let mut w = BufWriter::new(std::fs::File::create(out).map_err(io)?);
    let mut failed = None;
    let decoded = decode_trace(trace, |call| {
        if failed.is_none() {
            if let Err(e) = write_call(&mut w, &call) {
                failed = Some(e);
            }
        }
    })?;
    if let Some(e) = failed {
        return Err(io(e));
    }
    w.flush().map_err(io)?;
    Ok(decoded)
}

fn write_call(w: &mut impl Write, call: &Call) -> std::io::Result<()> {
    serde_json::to_writer(&mut *w, call)?;
    w.write_all(b"\n")
}

/// Reads a call log.
pub fn read_calls(path: &Path) -> Result<Vec<Call>, Error> {
    let f = std::fs::File::open(path).map_err(|source| Error::Io {
        path: path.to_owned(),
        source,
    })?;
    parse_calls(std::io::BufReader::new(f), path)
}

/// Reads a call log from `input`; `path` names it in errors.
pub fn parse_calls(input: impl BufRead, path: &Path) -> Result<Vec<Call>, Error> {
    let mut calls = Vec::new();
    for (i, line) in input.lines().enumerate() {
        let line = line.map_err(|source| Error::Io {
            path: path.to_owned(),
            source,
        })?;
        if line.trim().is_empty() {
            continue;
        }
        calls.push(serde_json::from_str(&line).map_err(|source| Error::Parse {
            path: path.to_owned(),
            line: i + 1,
            source,
        })?);
    }
    Ok(calls)
}
