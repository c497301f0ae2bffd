//! The line protocol: reading lines off a socket and parsing messages.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// Longest line accepted, so a peer cannot make a node buffer without bound.
pub const MAX_LINE: usize = 64 * 1024;

/// Writes `line` and its newline with a single `write_all`, so a message is
/// never split by us into two writes.
pub fn send(out: &mut impl Write, line: &str) -> io::Result<()> {
    let mut bytes = Vec::with_capacity(line.len() + 1);
    bytes.extend_from_slice(line.as_bytes());
    bytes.push(b'\n');
    out.write_all(&bytes)
}

/// Reads one `\n`-terminated line (without the terminator or a trailing
/// `\r`). `Ok(None)` means the peer closed the connection; a line cut off by
/// the close is dropped too, since half a message is not a message. Bytes that
/// are not UTF-8 are replaced, so they fail parsing rather than the read.
pub fn read_line<R: BufRead>(reader: &mut R) -> io::Result<Option<String>> {
    let mut buf = Vec::new();
    let limit = MAX_LINE as u64 + 1;
    reader.by_ref().take(limit).read_until(b'\n', &mut buf)?;
    if buf.last() != Some(&b'\n') {
        if buf.len() > MAX_LINE {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("line longer than {MAX_LINE} bytes"),
            ));
        }
        return Ok(None);
    }
    buf.pop();
    if buf.last() == Some(&b'\r') {
        buf.pop();
    }
    Ok(Some(String::from_utf8_lossy(&buf).into_owned()))
}

/// Where a node reads its requests from.
pub enum LineReader {
    /// Correct: a buffered reader that reassembles lines split over several
    /// reads and splits reads holding several lines.
    Buffered(BufReader<TcpStream>),
    /// Bug `no-short-read-handling`: whatever one `read()` returns is taken
    /// to be exactly one line.
    SingleRead(TcpStream),
}

impl LineReader {
    /// A reader for `stream`; `single_read` switches the bug on.
    pub fn new(stream: TcpStream, single_read: bool) -> LineReader {
        if single_read {
            LineReader::SingleRead(stream)
        } else {
            LineReader::Buffered(BufReader::new(stream))
        }
    }

    /// The next request line, `Ok(None)` at end of stream.
    pub fn read_line(&mut self) -> io::Result<Option<String>> {
        match self {
            LineReader::Buffered(reader) => read_line(reader),
            LineReader::SingleRead(stream) => {
                let mut buf = [0u8; 4096];
                let n = stream.read(&mut buf)?;
                if n == 0 {
                    return Ok(None);
                }
                let text = String::from_utf8_lossy(&buf[..n]);
                let text = text.strip_suffix('\n').unwrap_or(&text);
                let text = text.strip_suffix('\r').unwrap_or(text);
                Ok(Some(text.to_string()))
            }
        }
    }

    /// Turns this into a plain buffered reader, keeping anything already
    /// buffered. Used when a connection becomes a replication stream, which
    /// is always read correctly.
    pub fn into_buffered(self) -> BufReader<TcpStream> {
        match self {
            LineReader::Buffered(reader) => reader,
            LineReader::SingleRead(stream) => BufReader::new(stream),
        }
    }
}

/// A request a node accepts on its port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// `SET key value`
    Set {
        /// The key.
        key: String,
        /// The value.
        value: String,
    },
    /// `GET key`
    Get {
        /// The key.
        key: String,
    },
    /// `ROLE`
    Role,
    /// `SEQ`: the sequence number of the node's state (its last write); elections use it.
    Seq,
    /// `JOIN id`: node `id` wants to become a backup of this node.
    Join {
        /// The joining node's index.
        id: usize,
    },
}

/// Why a request line is refused: its text is the reason sent back after `ERR `.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// The line holds no word.
    #[error("empty request")]
    Empty,
    /// A known command with the wrong number of words; holds the expected form.
    #[error("usage: {0}")]
    Usage(&'static str),
    /// `JOIN` with something other than a node index.
    #[error("invalid node id {0:?}")]
    InvalidNodeId(String),
    /// The first word is not a command.
    #[error("unknown command {0:?}")]
    UnknownCommand(String),
}

/// Parses a request line.
pub fn parse_request(line: &str) -> Result<Request, RequestError> {
    let words: Vec<&str> = line.split_whitespace().collect();
    match words.as_slice() {
        [] => Err(RequestError::Empty),
        ["SET", key, value] => Ok(Request::Set {
            key: key.to_string(),
            value: value.to_string(),
        }),
        ["SET", ..] => Err(RequestError::Usage("SET key value")),
        ["GET", key] => Ok(Request::Get {
            key: key.to_string(),
        }),
        ["GET", ..] => Err(RequestError::Usage("GET key")),
        ["ROLE"] => Ok(Request::Role),
        ["ROLE", ..] => Err(RequestError::Usage("ROLE")),
        ["SEQ"] => Ok(Request::Seq),
        ["SEQ", ..] => Err(RequestError::Usage("SEQ")),
        ["JOIN", id] => id
            .parse()
            .map(|id| Request::Join { id })
            .map_err(|_| RequestError::InvalidNodeId(id.to_string())),
        ["JOIN", ..] => Err(RequestError::Usage("JOIN id")),
        [command, ..] => Err(RequestError::UnknownCommand(command.to_string())),
    }
}

/// A node's answer to a client request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `OK`: the write is acknowledged.
    Ok,
    /// `VALUE v`
    Value(String),
    /// `NOTFOUND`
    NotFound,
    /// `NOTPRIMARY`: ask another node.
    NotPrimary,
    /// `ERR reason`
    Err(String),
    /// Anything else.
    Other(String),
}

/// Parses a reply line.
pub fn parse_reply(line: &str) -> Reply {
    let words: Vec<&str> = line.split_whitespace().collect();
    match words.as_slice() {
        ["OK"] => Reply::Ok,
        ["VALUE", value] => Reply::Value(value.to_string()),
        ["NOTFOUND"] => Reply::NotFound,
        ["NOTPRIMARY"] => Reply::NotPrimary,
        ["ERR", ..] => Reply::Err(line["ERR".len()..].trim().to_string()),
        _ => Reply::Other(line.to_string()),
    }
}

/// A replication message that is not what the protocol says comes next. The lines are
/// kept whole.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplicationError {
    /// `REPL` whose sequence number is not a number.
    #[error("bad sequence number in {0:?}")]
    BadSequence(String),
    /// `SNAPSHOT` whose sequence number or count is not a number.
    #[error("bad snapshot header {0:?}")]
    BadSnapshotHeader(String),
    /// The peer asked to `JOIN` answered `NOTPRIMARY`.
    #[error("the peer is not the primary")]
    NotPrimary,
    /// Some other line where `expected` should be.
    #[error("expected `{expected}`, got {line:?}")]
    Unexpected {
        /// The form the protocol wants here.
        expected: &'static str,
        /// The line received.
        line: String,
    },
}

/// Parses `REPL seq key value` into its parts.
pub fn parse_repl(line: &str) -> Result<(u64, String, String), ReplicationError> {
    match line.split_whitespace().collect::<Vec<_>>().as_slice() {
        ["REPL", seq, key, value] => seq
            .parse()
            .map(|seq| (seq, key.to_string(), value.to_string()))
            .map_err(|_| ReplicationError::BadSequence(line.to_string())),
        _ => Err(ReplicationError::Unexpected {
            expected: "REPL seq key value",
            line: line.to_string(),
        }),
    }
}

/// Parses the primary's answer to `JOIN`: `SNAPSHOT seq count`.
pub fn parse_snapshot_header(line: &str) -> Result<(u64, usize), ReplicationError> {
    match line.split_whitespace().collect::<Vec<_>>().as_slice() {
        ["SNAPSHOT", seq, count] => match (seq.parse(), count.parse()) {
            (Ok(seq), Ok(count)) => Ok((seq, count)),
            _ => Err(ReplicationError::BadSnapshotHeader(line.to_string())),
        },
        ["NOTPRIMARY"] => Err(ReplicationError::NotPrimary),
        _ => Err(ReplicationError::Unexpected {
            expected: "SNAPSHOT seq count",
            line: line.to_string(),
        }),
    }
}

/// Parses one snapshot entry: `KV key value`.
pub fn parse_kv(line: &str) -> Result<(String, String), ReplicationError> {
    match line.split_whitespace().collect::<Vec<_>>().as_slice() {
        ["KV", key, value] => Ok((key.to_string(), value.to_string())),
        _ => Err(ReplicationError::Unexpected {
            expected: "KV key value",
            line: line.to_string(),
        }),
    }
}

/// What a peer said when asked `ROLE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerRole {
    /// The connection was refused: nothing listens there, the node is down.
    Refused,
    /// The peer could not be asked (timeout, reset, odd answer). It may be
    /// alive, so elections treat it as possibly in the way.
    Unknown(String),
    /// `PRIMARY`
    Primary,
    /// `BACKUP`
    Backup,
    /// `ELECTING`: looking for a primary.
    Electing,
    /// `CANDIDATE`: about to become primary.
    Candidate,
}

/// Asks the node at `addr` for the sequence number of its state (`SEQ` → `SEQ n`); `None`
/// when it cannot be asked or answers something else.
pub fn query_seq(addr: SocketAddr, timeout: Duration) -> Option<u64> {
    let mut stream = TcpStream::connect_timeout(&addr, timeout).ok()?;
    stream.set_read_timeout(Some(timeout)).ok()?;
    stream.set_write_timeout(Some(timeout)).ok()?;
    send(&mut stream, "SEQ").ok()?;
    let answer = read_line(&mut BufReader::new(stream)).ok()??;
    answer.strip_prefix("SEQ ")?.parse().ok()
}

/// Asks the node at `addr` for its role, waiting at most about `timeout` for
/// each step.
pub fn query_role(addr: SocketAddr, timeout: Duration) -> PeerRole {
    let ask = || -> io::Result<String> {
        let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        send(&mut stream, "ROLE")?;
        read_line(&mut BufReader::new(stream))?
            .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "closed without answer"))
    };
    match ask() {
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => PeerRole::Refused,
        Err(e) => PeerRole::Unknown(e.to_string()),
        Ok(answer) => match answer.as_str() {
            "PRIMARY" => PeerRole::Primary,
            "BACKUP" => PeerRole::Backup,
            "ELECTING" => PeerRole::Electing,
            "CANDIDATE" => PeerRole::Candidate,
            _ => PeerRole::Unknown(format!("unexpected answer {answer:?}")),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_parse() {
        assert_eq!(
            parse_request("SET a 1"),
            Ok(Request::Set {
                key: "a".into(),
                value: "1".into()
            })
        );
        assert_eq!(parse_request("GET a"), Ok(Request::Get { key: "a".into() }));
        assert_eq!(parse_request("ROLE"), Ok(Request::Role));
        assert_eq!(parse_request("JOIN 2"), Ok(Request::Join { id: 2 }));
    }

    #[test]
    fn malformed_requests_give_reasons() {
        let cases = [
            ("", "empty request"),
            ("   ", "empty request"),
            ("SET a", "usage: SET key value"),
            ("SET a 1\nGET a", "usage: SET key value"),
            ("GET", "usage: GET key"),
            ("ROLE x", "usage: ROLE"),
            ("JOIN x", "invalid node id \"x\""),
            ("JOIN", "usage: JOIN id"),
            ("SE", "unknown command \"SE\""),
            ("set a 1", "unknown command \"set\""),
        ];
        for (line, reason) in cases {
            assert_eq!(
                parse_request(line).map_err(|e| e.to_string()),
                Err(reason.to_string()),
                "{line:?}"
            );
        }
    }

    #[test]
    fn replies_parse() {
        assert_eq!(parse_reply("OK"), Reply::Ok);
        assert_eq!(parse_reply("VALUE v3"), Reply::Value("v3".into()));
        assert_eq!(parse_reply("NOTFOUND"), Reply::NotFound);
        assert_eq!(parse_reply("NOTPRIMARY"), Reply::NotPrimary);
        assert_eq!(
            parse_reply("ERR usage: GET key"),
            Reply::Err("usage: GET key".into())
        );
        assert_eq!(parse_reply("VALUE"), Reply::Other("VALUE".into()));
    }

    #[test]
    fn replication_messages_parse() {
        assert_eq!(
            parse_repl("REPL 4 a v1"),
            Ok((4, "a".to_string(), "v1".to_string()))
        );
        assert!(parse_repl("REPL x a v1").is_err());
        assert!(parse_repl("ACK 4").is_err());
        assert_eq!(parse_snapshot_header("SNAPSHOT 9 2"), Ok((9, 2)));
        assert_eq!(
            parse_snapshot_header("NOTPRIMARY").map_err(|e| e.to_string()),
            Err("the peer is not the primary".to_string())
        );
        assert_eq!(parse_kv("KV a 1"), Ok(("a".to_string(), "1".to_string())));
        assert!(parse_kv("KV a").is_err());
    }

    #[test]
    fn request_errors_say_what_was_wrong() {
        assert_eq!(parse_request("GET"), Err(RequestError::Usage("GET key")));
        assert_eq!(
            parse_request("JOIN two"),
            Err(RequestError::InvalidNodeId("two".into()))
        );
        assert_eq!(
            parse_request("DEL a"),
            Err(RequestError::UnknownCommand("DEL".into()))
        );
    }

    #[test]
    fn replication_errors_name_the_line() {
        let cases = [
            (
                parse_repl("REPL x a v1").unwrap_err(),
                ReplicationError::BadSequence("REPL x a v1".into()),
                "bad sequence number in \"REPL x a v1\"",
            ),
            (
                parse_repl("ACK 4").unwrap_err(),
                ReplicationError::Unexpected {
                    expected: "REPL seq key value",
                    line: "ACK 4".into(),
                },
                "expected `REPL seq key value`, got \"ACK 4\"",
            ),
            (
                parse_snapshot_header("SNAPSHOT 9 many").unwrap_err(),
                ReplicationError::BadSnapshotHeader("SNAPSHOT 9 many".into()),
                "bad snapshot header \"SNAPSHOT 9 many\"",
            ),
            (
                parse_snapshot_header("ERR busy").unwrap_err(),
                ReplicationError::Unexpected {
                    expected: "SNAPSHOT seq count",
                    line: "ERR busy".into(),
                },
                "expected `SNAPSHOT seq count`, got \"ERR busy\"",
            ),
            (
                parse_kv("KV a").unwrap_err(),
                ReplicationError::Unexpected {
                    expected: "KV key value",
                    line: "KV a".into(),
                },
                "expected `KV key value`, got \"KV a\"",
            ),
        ];
        for (got, want, text) in cases {
            assert_eq!(got, want);
            assert_eq!(got.to_string(), text);
        }
    }

    #[test]
    fn read_line_handles_partial_and_oversized_input() {
        let mut input: &[u8] = b"one\r\ntwo\nthree";
        assert_eq!(read_line(&mut input).unwrap(), Some("one".to_string()));
        assert_eq!(read_line(&mut input).unwrap(), Some("two".to_string()));
        // "three" has no newline: the peer went away mid-message.
        assert_eq!(read_line(&mut input).unwrap(), None);

        let long = vec![b'x'; MAX_LINE + 10];
        let err = read_line(&mut long.as_slice()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);

        let mut bad_utf8: &[u8] = b"GET \xff\n";
        assert_eq!(
            read_line(&mut bad_utf8).unwrap(),
            Some("GET \u{fffd}".to_string())
        );
    }
}
