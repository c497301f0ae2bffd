//! The event model shared by every ordeal component, and its on-disk form: `trace.jsonl`.
//!
//! One JSON object per line. The first line is a [`Header`] (`"type":"header"`); every other
//! line is an [`Event`] (`"type":"event"`). Events appear in increasing `seq` order. The schema
//! is documented in `docs/trace-format.md`; bump [`SCHEMA_VERSION`] on any incompatible change.
//!
//! This crate knows nothing about ptrace, experiments or graphs: it is the contract between the
//! tracer (which writes events) and every reader (graph, summary, later the explorer).
#![forbid(unsafe_code)]

pub mod calls;

pub use calls::{CallSpec, Direction, Errno, FileOp, SocketOp, Step};

use serde::{Deserialize, Serialize};
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

/// Version of the trace.jsonl schema written by this build.
pub const SCHEMA_VERSION: u32 = 1;

/// First line of a trace: what the run was and which nodes took part.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Header {
    pub schema: String,
    pub version: u32,
    /// Experiment name.
    pub experiment: String,
    /// Wall-clock start of the run, RFC 3339 (informational only; all event times are monotonic).
    pub started_at: String,
    pub nodes: Vec<NodeInfo>,
}

/// A participant in the run: a node of the experiment or a workload command.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeInfo {
    pub name: String,
    /// "node" or "workload".
    pub role: String,
    /// Ports allocated to this node by placeholders (`{port.NAME}`), for address → node mapping.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<u16>,
    /// The protocol spoken on those ports (`protocol = "resp"` in the experiment), for
    /// decoding connections to them; absent: detected from the first bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
}

/// What a system call or lifecycle step concerned: its coarse class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Class {
    /// Socket lifecycle: socket, bind, listen, connect, accept, shutdown, close of a socket.
    Net,
    /// Bytes moved over a socket (read/write/send*/recv* and vectored forms).
    Data,
    /// File persistence under a node's data dir (open, write, fsync, rename, unlink, ...).
    File,
    /// Process lifecycle: spawn, fork, clone, exec, exit.
    Proc,
}

/// Transport of a socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    Tcp,
    Udp,
    Unix,
    Other,
}

/// A socket as the tracer resolved it at the time of the event.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Sock {
    /// Kernel socket inode: stable identity of one end of a connection for its lifetime.
    pub ino: u64,
    pub proto: Proto,
    /// Local address, `ip:port` (IPv6 as `[ip]:port`) or a Unix path (`@name` for abstract).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local: Option<String>,
    /// Remote address, same forms; absent for listening/unconnected sockets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote: Option<String>,
    /// Inode of the other end, when the kernel tells it (socketpair, Unix sockets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_ino: Option<u64>,
    /// Node owning the remote address, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_node: Option<String>,
}

/// One traced occurrence. Fields that do not apply to a call are omitted from the JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Event {
    /// Global sequence number, dense from 0, in the order events completed.
    pub seq: u64,
    /// Monotonic time of the call's entry, ns since the run started.
    pub ts: u64,
    /// Duration of the call (entry to exit) in ns; 0 for instantaneous lifecycle events.
    #[serde(default)]
    pub dur: u64,
    pub node: String,
    pub pid: i32,
    pub tid: i32,
    /// System call name (`connect`, `write`, ...) or lifecycle step (`spawn`, `fork`, `clone`,
    /// `exec`, `exit`).
    pub call: String,
    pub class: Option<Class>,
    /// Return value (negative errno on failure), absent for lifecycle events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ret: Option<i64>,
    /// Symbolic errno when `ret` < 0 (`ECONNREFUSED`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errno: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fd: Option<i32>,
    /// The socket the call worked on (for accept: the new connection's socket).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sock: Option<Sock>,
    /// Address argument (bind/connect target, sendto destination, recvfrom source).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub addr: Option<String>,
    /// Bytes requested (buffer length) for data and file writes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub len: Option<u64>,
    /// Bytes this socket had sent (for sends) or received (for receives) before this call:
    /// the call moved stream bytes `[off, off + ret)` of its direction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub off: Option<u64>,
    /// First bytes moved, escaped (only with payload capture on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Second path (rename target).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path2: Option<String>,
    /// Decoded flags (`O_WRONLY|O_CREAT|O_TRUNC`, `SHUT_WR`, `SOCK_CLOEXEC`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flags: Option<String>,
    /// File offset for pwrite/sync_file_range, or length for ftruncate. With file-data
    /// recording on, also the offset a plain `write`/`writev` wrote at (O_APPEND included).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pos: Option<u64>,
    /// With file-data recording on (`ordeal crash`): where the `ret` bytes this write put in
    /// its file start in `RUN_DIR/filedata.bin`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_at: Option<u64>,
    /// Child pid/tid for fork/clone/spawn.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub child: Option<i32>,
    /// Command line for spawn/exec.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub argv: Option<Vec<String>>,
    /// Exit code for exit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<i32>,
    /// Killing signal for exit (`SIGKILL`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<String>,
    /// The fault ordeal injected at this event: which fault and what it did here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<FaultMark>,
}

/// The mark of an injected fault on the event where it acted.
///
/// In trace.jsonl it is the text `"F: action"` for a firing and `"by F: action"` for an effect
/// (fault names are `[A-Za-z0-9_.-]+`, so the text parses back unambiguously); in memory it
/// is this struct, so no reader parses text.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FaultMark {
    /// The fault's name in the schedule.
    pub name: String,
    /// What it did at this event: `fail ECONNREFUSED`, `short-io 2`, `delay 100ms before`,
    /// `crash n0 before`, `held`, `dropped`, `partition n0 | n1`, `resume n0`, `restart n0`.
    pub action: String,
    /// A consequence of the fault, not its firing: a call held by a partition in effect, the
    /// resume that ends a pause, the restart that follows a crash.
    pub effect: bool,
}

impl FaultMark {
    /// Fault `name` fired here and did `action`.
    pub fn fired(name: impl Into<String>, action: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            action: action.into(),
            effect: false,
        }
    }
    /// A consequence of fault `name` happened here.
    pub fn effect(name: impl Into<String>, action: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            action: action.into(),
            effect: true,
        }
    }
    /// Whether this is a firing of the fault called `name`.
    pub fn is_firing_of(&self, name: &str) -> bool {
        !self.effect && self.name == name
    }
}

/// Which fault an injected action belongs to, before what it did is known.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FaultRef {
    pub name: String,
    /// See [`FaultMark::effect`].
    pub effect: bool,
}

impl FaultRef {
    /// The firing of fault `name`.
    pub fn fired(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            effect: false,
        }
    }
    /// A consequence of fault `name`.
    pub fn effect_of(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            effect: true,
        }
    }
    /// The mark of this fault having done `action`.
    pub fn mark(&self, action: impl Into<String>) -> FaultMark {
        FaultMark {
            name: self.name.clone(),
            action: action.into(),
            effect: self.effect,
        }
    }
}

impl std::fmt::Display for FaultMark {
    /// `F: action` for a firing, `by F: action` for an effect (the labels of graphs and reports).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let by = if self.effect { "by " } else { "" };
        write!(f, "{by}{}: {}", self.name, self.action)
    }
}

impl std::str::FromStr for FaultMark {
    type Err = std::convert::Infallible;
    /// Parses the trace's text form. A text in neither form (written by hand) is kept whole as
    /// the action of an effect of no named fault.
    fn from_str(t: &str) -> Result<Self, Self::Err> {
        let (effect, rest) = match t.strip_prefix("by ") {
            Some(rest) => (true, rest),
            None => (false, t),
        };
        Ok(match rest.split_once(": ") {
            Some((name, action)) if !name.is_empty() && !name.contains(' ') => FaultMark {
                name: name.to_string(),
                action: action.to_string(),
                effect,
            },
            _ => FaultMark::effect("", t),
        })
    }
}

impl Serialize for FaultMark {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for FaultMark {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        let Ok(mark) = text.parse();
        Ok(mark)
    }
}

impl Event {
    /// True for a call that succeeded (lifecycle events count as successful).
    pub fn ok(&self) -> bool {
        self.ret.is_none_or(|r| r >= 0)
    }
    /// Bytes actually moved by a successful data or write call.
    pub fn moved(&self) -> u64 {
        match self.ret {
            Some(r) if r > 0 => r as u64,
            _ => 0,
        }
    }
    /// The traced call this event records (`None` for lifecycle steps and markers).
    pub fn spec(&self) -> Option<&'static CallSpec> {
        calls::by_name(&self.call)
    }
    /// The lifecycle step this event records, if it is one.
    pub fn step(&self) -> Option<Step> {
        Step::from_name(&self.call)
    }
    /// What the call did to a socket (class `net` or `data` only).
    pub fn socket_op(&self) -> Option<SocketOp> {
        if !matches!(self.class, Some(Class::Net | Class::Data)) {
            return None;
        }
        self.spec()?.socket.map(|s| s.op)
    }
    /// What the call did to a data-dir file (class `file` only).
    pub fn file_op(&self) -> Option<FileOp> {
        if self.class != Some(Class::File) {
            return None;
        }
        self.spec()?.file.map(|f| f.op)
    }
    /// The direction of a socket transfer (class `data`).
    pub fn direction(&self) -> Option<Direction> {
        self.socket_op()?.direction()
    }
    /// Whether the call's result is a byte count: a socket transfer or a data-dir write.
    pub fn moves_bytes(&self) -> bool {
        self.direction().is_some() || self.file_op() == Some(FileOp::Write)
    }
    /// Whether this is a socket send (bytes leave this process).
    pub fn is_send(&self) -> bool {
        self.direction() == Some(Direction::Send)
    }
    /// Whether this is a socket receive.
    pub fn is_recv(&self) -> bool {
        self.direction() == Some(Direction::Recv)
    }
}

/// One line of trace.jsonl.
// Headers occur once per file: boxing events to shrink the enum would cost an allocation each.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Record {
    Header(Header),
    Event(Event),
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}: {source}")]
    Parse {
        path: PathBuf,
        line: usize,
        source: serde_json::Error,
    },
    #[error("{path}: first line is not a trace header")]
    NoHeader { path: PathBuf },
    #[error("{path}: trace schema {found} is not supported by this build (expects {expected})")]
    Version {
        path: PathBuf,
        found: u32,
        expected: u32,
    },
}

/// Streams records to a writer, one JSON object per line.
pub struct TraceWriter<W: Write> {
    out: W,
    /// One line, built before it is written: the writer takes it in one piece.
    line: Vec<u8>,
}

impl<W: Write> TraceWriter<W> {
    pub fn new(mut out: W, header: &Header) -> std::io::Result<Self> {
        serde_json::to_writer(&mut out, &Record::Header(header.clone()))?;
        out.write_all(b"\n")?;
        Ok(Self {
            out,
            line: Vec::with_capacity(512),
        })
    }
    pub fn write(&mut self, ev: &Event) -> std::io::Result<()> {
        // `{"type":"event",` then the event's own fields: the bytes `Record::Event` gives,
        // without serde's flatten (a map serializer, several times slower on a busy trace).
        self.line.clear();
        self.line.extend_from_slice(b"{\"type\":\"event\"");
        let at = self.line.len();
        serde_json::to_writer(&mut self.line, ev)?;
        // The event's `{` becomes the separator after the tag; `{}` (no field) closes it.
        if self.line.len() - at > 2 {
            self.line[at] = b',';
        } else {
            self.line.truncate(at);
            self.line.push(b'}');
        }
        self.line.push(b'\n');
        self.out.write_all(&self.line)
    }
    pub fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
    pub fn into_inner(self) -> W {
        self.out
    }
}

/// Reads a trace file lazily: the header up front, then events one at a time.
pub struct TraceReader<R: BufRead> {
    input: R,
    path: PathBuf,
    line: usize,
    buf: String,
    pub header: Header,
}

impl TraceReader<std::io::BufReader<std::fs::File>> {
    pub fn open(path: &Path) -> Result<Self, Error> {
        let f = std::fs::File::open(path).map_err(|source| Error::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::new(std::io::BufReader::new(f), path)
    }
}

impl<R: BufRead> TraceReader<R> {
    pub fn new(mut input: R, path: &Path) -> Result<Self, Error> {
        let mut buf = String::new();
        input.read_line(&mut buf).map_err(|source| Error::Io {
            path: path.to_owned(),
            source,
        })?;
        let header = match serde_json::from_str::<Record>(&buf) {
            Ok(Record::Header(h)) => h,
            _ => {
                return Err(Error::NoHeader {
                    path: path.to_owned(),
                })
            }
        };
        if header.version != SCHEMA_VERSION {
            return Err(Error::Version {
                path: path.to_owned(),
                found: header.version,
                expected: SCHEMA_VERSION,
            });
        }
        Ok(Self {
            input,
            path: path.to_owned(),
            line: 1,
            buf,
            header,
        })
    }

    /// Reads every remaining event into memory.
    pub fn read_all(self) -> Result<Vec<Event>, Error> {
        self.collect()
    }
}

impl<R: BufRead> Iterator for TraceReader<R> {
    type Item = Result<Event, Error>;
    fn next(&mut self) -> Option<Self::Item> {
        loop {
            self.buf.clear();
            self.line += 1;
            match self.input.read_line(&mut self.buf) {
                Ok(0) => return None,
                Ok(_) => {}
                Err(source) => {
                    return Some(Err(Error::Io {
                        path: self.path.clone(),
                        source,
                    }))
                }
            }
            if self.buf.trim().is_empty() {
                continue;
            }
            // An event line as TraceWriter writes it parses as an Event directly, twice as fast
            // as through the tagged Record (which buffers every field first); anything else,
            // and any error, goes the general way.
            if self.buf.starts_with("{\"type\":\"event\",") {
                if let Ok(e) = serde_json::from_str::<Event>(&self.buf) {
                    return Some(Ok(e));
                }
            }
            return Some(match serde_json::from_str::<Record>(&self.buf) {
                Ok(Record::Event(e)) => Ok(e),
                Ok(Record::Header(_)) => continue,
                // Every complete line ends with a newline: a last line without one is what a
                // writer killed mid-line leaves behind. The trace simply ends before it.
                Err(_) if !self.buf.ends_with('\n') => return None,
                Err(source) => Err(Error::Parse {
                    path: self.path.clone(),
                    line: self.line,
                    source,
                }),
            });
        }
    }
}

/// Escapes bytes for the `data` field: printable ASCII as is, everything else as `\xNN`.
pub fn escape_bytes(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len());
    for &b in bytes {
        match b {
            b'\\' => s.push_str("\\\\"),
            b'\n' => s.push_str("\\n"),
            b'\r' => s.push_str("\\r"),
            b'\t' => s.push_str("\\t"),
            0x20..=0x7e => s.push(b as char),
            _ => s.push_str(&format!("\\x{b:02x}")),
        }
    }
    s
}

/// The bytes an [`escape_bytes`] text stands for. A malformed escape (which `escape_bytes`
/// never writes) is kept as its characters.
pub fn unescape_bytes(text: &str) -> Vec<u8> {
    let b = text.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'\\' || i + 1 == b.len() {
            out.push(b[i]);
            i += 1;
            continue;
        }
        let (byte, used) = match b[i + 1] {
            b'\\' => (b'\\', 2),
            b'n' => (b'\n', 2),
            b'r' => (b'\r', 2),
            b't' => (b'\t', 2),
            b'x' => match text
                .get(i + 2..i + 4)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                Some(v) => (v, 4),
                None => (b'\\', 1),
            },
            _ => (b'\\', 1),
        };
        out.push(byte);
        i += used;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaped_bytes_come_back_whole() {
        let all: Vec<u8> = (0..=255u8).chain(*b"\\x41\\n").collect();
        assert_eq!(unescape_bytes(&escape_bytes(&all)), all);
        assert_eq!(unescape_bytes("a\\x4"), b"a\\x4");
    }

    fn header() -> Header {
        Header {
            schema: "ordeal-trace".into(),
            version: SCHEMA_VERSION,
            experiment: "t".into(),
            started_at: "2026-01-01T00:00:00Z".into(),
            nodes: vec![NodeInfo {
                name: "a".into(),
                role: "node".into(),
                ports: vec![7000],
                protocol: None,
            }],
        }
    }

    #[test]
    fn roundtrip_preserves_events_and_omits_empty_fields() {
        let ev = Event {
            seq: 3,
            ts: 10,
            dur: 5,
            node: "a".into(),
            pid: 1,
            tid: 2,
            call: "write".into(),
            class: Some(Class::Data),
            ret: Some(4),
            fd: Some(5),
            len: Some(4),
            off: Some(0),
            ..Default::default()
        };
        let mut w = TraceWriter::new(Vec::new(), &header()).unwrap();
        w.write(&ev).unwrap();
        let bytes = w.into_inner();
        let text = String::from_utf8(bytes.clone()).unwrap();
        let second = text.lines().nth(1).unwrap();
        assert!(second.starts_with("{\"type\":\"event\",\"seq\":3,"));
        assert!(!second.contains("path"), "{second}");
        let r = TraceReader::new(&bytes[..], Path::new("mem")).unwrap();
        assert_eq!(r.header, header());
        assert_eq!(r.read_all().unwrap(), vec![ev]);
    }

    /// An event line is byte for byte what serde writes for `Record::Event`, every field set
    /// or none.
    #[test]
    fn event_lines_are_the_tagged_record() {
        let full = Event {
            seq: 7,
            ts: 1,
            dur: 2,
            node: "n\"0".into(),
            pid: 3,
            tid: 4,
            call: "sendto".into(),
            class: Some(Class::Data),
            ret: Some(-11),
            errno: Some("EAGAIN".into()),
            fd: Some(5),
            sock: Some(Sock {
                ino: 9,
                proto: Proto::Udp,
                local: Some("127.0.0.1:1".into()),
                remote: Some("[::1]:2".into()),
                peer_ino: Some(10),
                peer_node: Some("n1".into()),
            }),
            addr: Some("127.0.0.1:3".into()),
            len: Some(6),
            off: Some(8),
            data: Some("a\\x00b".into()),
            path: Some("/d/é".into()),
            path2: Some("/d/f".into()),
            flags: Some("O_WRONLY".into()),
            pos: Some(11),
            data_at: Some(12),
            child: Some(13),
            argv: Some(vec!["x".into(), "y z".into()]),
            code: Some(0),
            signal: Some("SIGKILL".into()),
            fault: Some(FaultRef::fired("f").mark("crash n0 after")),
        };
        for ev in [full, Event::default()] {
            let mut w = TraceWriter::new(Vec::new(), &header()).unwrap();
            w.write(&ev).unwrap();
            let bytes = w.into_inner();
            let line = String::from_utf8(bytes)
                .unwrap()
                .lines()
                .nth(1)
                .unwrap()
                .to_string();
            let expected = serde_json::to_string(&Record::Event(ev)).unwrap();
            assert_eq!(line, expected);
        }
    }

    #[test]
    fn bad_line_reports_its_number() {
        let mut w = TraceWriter::new(Vec::new(), &header()).unwrap();
        w.write(&Event::default()).unwrap();
        let mut bytes = w.into_inner();
        bytes.extend_from_slice(b"{not json}\n");
        // An event line that starts like one but does not parse.
        bytes.extend_from_slice(b"{\"type\":\"event\",\"seq\":\"x\"}\n");
        let errs: Vec<_> = TraceReader::new(&bytes[..], Path::new("t.jsonl"))
            .unwrap()
            .filter_map(Result::err)
            .collect();
        assert_eq!(errs.len(), 2);
        assert!(errs[0].to_string().starts_with("t.jsonl:3:"), "{}", errs[0]);
        assert!(errs[1].to_string().starts_with("t.jsonl:4:"), "{}", errs[1]);
    }

    #[test]
    fn a_truncated_last_line_ends_the_trace_quietly() {
        let ev = Event {
            seq: 0,
            call: "write".into(),
            ..Default::default()
        };
        let mut w = TraceWriter::new(Vec::new(), &header()).unwrap();
        w.write(&ev).unwrap();
        let mut bytes = w.into_inner();
        bytes.extend_from_slice(b"{\"type\":\"event\",\"seq\":1,\"ts\"");
        let r = TraceReader::new(&bytes[..], Path::new("t.jsonl")).unwrap();
        assert_eq!(r.read_all().unwrap(), vec![ev]);
    }

    #[test]
    fn fault_marks_are_typed_in_memory_and_text_in_the_trace() {
        let ev = Event {
            fault: Some(FaultMark::fired("refuse", "fail ECONNREFUSED")),
            ..Default::default()
        };
        let json = serde_json::to_string(&ev).unwrap();
        assert!(
            json.ends_with(r#""fault":"refuse: fail ECONNREFUSED"}"#),
            "{json}"
        );
        let held = FaultMark::effect("cut", "held");
        assert_eq!(serde_json::to_string(&held).unwrap(), r#""by cut: held""#);
        let read = |s: &str| serde_json::from_str::<FaultMark>(s).unwrap();
        assert_eq!(read(r#""refuse: fail ECONNREFUSED""#), ev.fault.unwrap());
        assert_eq!(read(r#""by cut: held""#), held);
        assert_eq!(
            read(r#""by p: resume n0""#),
            FaultMark::effect("p", "resume n0")
        );
        assert_eq!(
            read(r#""something else""#),
            FaultMark::effect("", "something else")
        );
        assert!(read(r#""a: crash n0 after""#).is_firing_of("a"));
        assert!(!held.is_firing_of("cut"));
    }

    #[test]
    fn escape_is_reversible_enough_to_read() {
        assert_eq!(escape_bytes(b"SET a 1\r\n\x00"), "SET a 1\\r\\n\\x00");
    }
}
