//! Redis over RESP: `GET`, `SET`, and compare-and-set as a Lua script (`EVAL`), which Redis
//! runs atomically. Writes and cas go to the first address (the primary); reads go to a
//! random address, so a replica's lag shows up as stale reads.

use super::{left, Client, Reply, Request};
use crate::history::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// The cas script: 1 if the key held ARGV[1] and now holds ARGV[2], else 0.
pub const CAS_SCRIPT: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] then \
redis.call('SET', KEYS[1], ARGV[2]) return 1 else return 0 end";

/// A RESP reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resp {
    /// `+OK`
    Simple(String),
    /// `-ERR ...`
    Error(String),
    /// `:1`
    Int(i64),
    /// `$3\r\nabc` (`None` for `$-1`).
    Bulk(Option<Vec<u8>>),
    /// `*2 ...` (`None` for `*-1`).
    Array(Option<Vec<Resp>>),
}

/// Encodes a command as a RESP array of bulk strings.
pub fn encode(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

const MAX_BULK: i64 = 16 * 1024 * 1024;

/// Reads one reply.
pub fn read_reply(r: &mut impl BufRead) -> std::io::Result<Resp> {
    read_depth(r, 0)
}

fn bad(msg: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, msg)
}

fn read_depth(r: &mut impl BufRead, depth: usize) -> std::io::Result<Resp> {
    if depth > 8 {
        return Err(bad("RESP nested too deeply".into()));
    }
    let mut line = Vec::new();
    r.by_ref().take(65_536).read_until(b'\n', &mut line)?;
    if line.len() < 3 || !line.ends_with(b"\r\n") {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "connection closed or bad RESP line",
        ));
    }
    let text = String::from_utf8_lossy(&line[1..line.len() - 2]).into_owned();
    let int = || {
        text.parse::<i64>()
            .map_err(|_| bad(format!("bad RESP integer {text:?}")))
    };
    Ok(match line[0] {
        b'+' => Resp::Simple(text),
        b'-' => Resp::Error(text),
        b':' => Resp::Int(int()?),
        b'$' => {
            let n = int()?;
            if n < 0 {
                Resp::Bulk(None)
            } else if n > MAX_BULK {
                return Err(bad(format!("bulk string of {n} bytes")));
            } else {
                let mut buf = vec![0; n as usize + 2];
                r.read_exact(&mut buf)?;
                buf.truncate(n as usize);
                Resp::Bulk(Some(buf))
            }
        }
        b'*' => {
            let n = int()?;
            if n < 0 {
                Resp::Array(None)
            } else {
                let mut items = Vec::new();
                for _ in 0..n.min(1024) {
                    items.push(read_depth(r, depth + 1)?);
                }
                Resp::Array(Some(items))
            }
        }
        c => return Err(bad(format!("unknown RESP type {:?}", c as char))),
    })
}

/// A Redis client for one slot: one connection per address, opened on demand.
pub struct RedisClient {
    addrs: Vec<SocketAddr>,
    timeout: Duration,
    conns: Vec<Option<(TcpStream, BufReader<TcpStream>)>>,
    rng: crate::generate::Rng,
    /// The node of the last command.
    asked: Option<usize>,
}

enum Outcome {
    Reply(Resp),
    NotSent(String),
    Lost(String),
}

impl RedisClient {
    /// A client of `addrs` (the first is the primary) with `timeout` per operation.
    pub fn new(addrs: Vec<SocketAddr>, timeout: Duration, seed: u64) -> RedisClient {
        let n = addrs.len();
        RedisClient {
            addrs,
            timeout,
            conns: (0..n).map(|_| None).collect(),
            rng: crate::generate::Rng::new(seed),
            asked: None,
        }
    }

    fn command(&mut self, node: usize, args: &[&[u8]]) -> Outcome {
        self.asked = Some(node);
        let deadline = Instant::now() + self.timeout;
        if self.conns[node].is_none() {
            let Some(l) = left(deadline) else {
                return Outcome::NotSent("timeout".into());
            };
            let s = match TcpStream::connect_timeout(&self.addrs[node], l) {
                Ok(s) => s,
                Err(e) => return Outcome::NotSent(e.to_string()),
            };
            let _ = s.set_nodelay(true);
            let r = match s.try_clone() {
                Ok(r) => r,
                Err(e) => return Outcome::NotSent(e.to_string()),
            };
            self.conns[node] = Some((s, BufReader::new(r)));
        }
        let Some((s, r)) = self.conns[node].as_mut() else {
            return Outcome::NotSent("no connection".into());
        };
        let Some(l) = left(deadline) else {
            return Outcome::NotSent("timeout".into());
        };
        if s.set_read_timeout(Some(l)).is_err() || s.set_write_timeout(Some(l)).is_err() {
            self.conns[node] = None;
            return Outcome::NotSent("socket setup failed".into());
        }
        if let Err(e) = s.write_all(&encode(args)) {
            self.conns[node] = None;
            return Outcome::Lost(e.to_string());
        }
        match read_reply(r) {
            Ok(reply) => Outcome::Reply(reply),
            Err(e) => {
                self.conns[node] = None;
                Outcome::Lost(e.to_string())
            }
        }
    }
}

impl Client for RedisClient {
    fn call(&mut self, req: &Request) -> Reply {
        self.asked = None;
        match req {
            Request::Read { key } => {
                let node = self.rng.below(self.addrs.len() as u64) as usize;
                match self.command(node, &[b"GET", key.as_bytes()]) {
                    Outcome::Reply(Resp::Bulk(None)) => Reply::Ok(Value::Nil),
                    Outcome::Reply(Resp::Bulk(Some(v))) => {
                        Reply::Ok(super::parse_value(&String::from_utf8_lossy(&v)))
                    }
                    Outcome::Reply(other) => Reply::Fail(format!("GET: {other:?}")),
                    Outcome::NotSent(why) => Reply::Fail(why),
                    Outcome::Lost(why) => Reply::Info(why),
                }
            }
            Request::Write { key, value } => {
                let v = value.to_string();
                match self.command(0, &[b"SET", key.as_bytes(), v.as_bytes()]) {
                    Outcome::Reply(Resp::Simple(s)) if s == "OK" => Reply::Ok(Value::Nil),
                    // An error reply: the command was rejected (READONLY, OOM, ...).
                    Outcome::Reply(Resp::Error(e)) => Reply::Fail(e),
                    Outcome::Reply(other) => Reply::Info(format!("SET: {other:?}")),
                    Outcome::NotSent(why) => Reply::Fail(why),
                    Outcome::Lost(why) => Reply::Info(why),
                }
            }
            Request::Cas { key, old, new } => {
                let (o, n) = (old.to_string(), new.to_string());
                let args: [&[u8]; 6] = [
                    b"EVAL",
                    CAS_SCRIPT.as_bytes(),
                    b"1",
                    key.as_bytes(),
                    o.as_bytes(),
                    n.as_bytes(),
                ];
                match self.command(0, &args) {
                    Outcome::Reply(Resp::Int(1)) => Reply::Ok(Value::Nil),
                    Outcome::Reply(Resp::Int(0)) => Reply::Fail("value differs".into()),
                    Outcome::Reply(Resp::Error(e)) => Reply::Fail(e),
                    Outcome::Reply(other) => Reply::Info(format!("EVAL: {other:?}")),
                    Outcome::NotSent(why) => Reply::Fail(why),
                    Outcome::Lost(why) => Reply::Info(why),
                }
            }
        }
    }

    fn supports_cas(&self) -> bool {
        true
    }

    fn node(&self) -> Option<String> {
        self.asked.map(|n| self.addrs[n].to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resp_encodes_and_decodes() {
        assert_eq!(
            encode(&[b"GET", b"k1"]),
            b"*2\r\n$3\r\nGET\r\n$2\r\nk1\r\n".to_vec()
        );
        let mut input: &[u8] =
            b"+OK\r\n-ERR wrong\r\n:1\r\n$3\r\nabc\r\n$-1\r\n*2\r\n:1\r\n$0\r\n\r\n";
        assert_eq!(read_reply(&mut input).unwrap(), Resp::Simple("OK".into()));
        assert_eq!(
            read_reply(&mut input).unwrap(),
            Resp::Error("ERR wrong".into())
        );
        assert_eq!(read_reply(&mut input).unwrap(), Resp::Int(1));
        assert_eq!(
            read_reply(&mut input).unwrap(),
            Resp::Bulk(Some(b"abc".to_vec()))
        );
        assert_eq!(read_reply(&mut input).unwrap(), Resp::Bulk(None));
        assert_eq!(
            read_reply(&mut input).unwrap(),
            Resp::Array(Some(vec![Resp::Int(1), Resp::Bulk(Some(vec![]))]))
        );
        assert_eq!(
            read_reply(&mut input).unwrap_err().kind(),
            std::io::ErrorKind::UnexpectedEof
        );
        let mut bad: &[u8] = b"?x\r\n";
        assert_eq!(
            read_reply(&mut bad).unwrap_err().kind(),
            std::io::ErrorKind::InvalidData
        );
    }
}
