//! The demo KV store's line protocol (`SET k v` → `OK` / `NOTPRIMARY` / `ERR ..`,
//! `GET k` → `VALUE v` / `NOTFOUND` / `NOTPRIMARY`).
//!
//! Writes start at the node that last acknowledged a write and move on over `NOTPRIMARY` or a
//! refused connection (which certainly did not apply the write), backing off between rounds;
//! once a request may have reached a node without a definite answer (error reply, broken
//! connection, timeout) the write is indeterminate and not retried. Reads start at a random
//! node, like the demo's own client, so a node that serves reads it should not (bug
//! `stale-read`) is asked too; a read may be retried anywhere.

use super::{left, Client, Reply, Request};
use crate::history::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// A client of the demo store for one slot.
pub struct KvClient {
    nodes: Vec<SocketAddr>,
    timeout: Duration,
    primary: usize,
    conn: Option<(usize, TcpStream, BufReader<TcpStream>)>,
    rng: crate::generate::Rng,
    /// The node of the last request sent.
    asked: Option<usize>,
}

enum Exchange {
    Reply(String),
    /// The request was not sent (connection refused...).
    NotSent(String),
    /// The request may have arrived; no reply.
    Lost(String),
}

impl KvClient {
    /// A client of `nodes` with `timeout` per operation; `seed` picks read nodes.
    pub fn new(nodes: Vec<SocketAddr>, timeout: Duration, seed: u64) -> KvClient {
        KvClient {
            nodes,
            timeout,
            primary: 0,
            conn: None,
            rng: crate::generate::Rng::new(seed),
            asked: None,
        }
    }

    fn exchange(&mut self, node: usize, line: &str, deadline: Instant) -> Exchange {
        let Some(l) = left(deadline) else {
            return Exchange::NotSent("timeout".into());
        };
        if self.conn.as_ref().is_some_and(|c| c.0 != node) {
            self.conn = None;
        }
        if self.conn.is_none() {
            let s = match TcpStream::connect_timeout(&self.nodes[node], l) {
                Ok(s) => s,
                Err(e) => return Exchange::NotSent(format!("node {node}: {e}")),
            };
            let _ = s.set_nodelay(true);
            let r = match s.try_clone() {
                Ok(r) => r,
                Err(e) => return Exchange::NotSent(e.to_string()),
            };
            self.conn = Some((node, s, BufReader::new(r)));
        }
        let Some((_, s, r)) = self.conn.as_mut() else {
            return Exchange::NotSent("no connection".into());
        };
        let Some(l) = left(deadline) else {
            return Exchange::NotSent("timeout".into());
        };
        if s.set_read_timeout(Some(l)).is_err() || s.set_write_timeout(Some(l)).is_err() {
            self.conn = None;
            return Exchange::NotSent("socket setup failed".into());
        }
        self.asked = Some(node);
        if let Err(e) = s.write_all(format!("{line}\n").as_bytes()) {
            self.conn = None;
            return Exchange::Lost(format!("node {node}: {e}"));
        }
        let mut buf = Vec::new();
        match r.by_ref().take(65_536).read_until(b'\n', &mut buf) {
            Ok(_) if buf.last() == Some(&b'\n') => {
                let text = String::from_utf8_lossy(&buf);
                Exchange::Reply(text.trim_end().to_string())
            }
            Ok(_) => {
                self.conn = None;
                Exchange::Lost(format!("node {node}: connection closed before the reply"))
            }
            Err(e) => {
                self.conn = None;
                Exchange::Lost(format!("node {node}: {e}"))
            }
        }
    }

    fn write(&mut self, key: &str, value: i64) -> Reply {
        let deadline = Instant::now() + self.timeout;
        let n = self.nodes.len();
        let mut last = "no node answered".to_string();
        for round in 0u64.. {
            for i in 0..n {
                let node = (self.primary + i) % n;
                match self.exchange(node, &format!("SET {key} {value}"), deadline) {
                    Exchange::Reply(r) if r == "OK" => {
                        self.primary = node;
                        return Reply::Ok(Value::Nil);
                    }
                    Exchange::Reply(r) if r == "NOTPRIMARY" => {
                        last = format!("node {node}: NOTPRIMARY")
                    }
                    Exchange::Reply(r) => {
                        self.conn = None;
                        return Reply::Info(format!("node {node}: unexpected reply {r:?}"));
                    }
                    Exchange::Lost(why) => return Reply::Info(why),
                    Exchange::NotSent(why) => last = why,
                }
                if left(deadline).is_none() {
                    return Reply::Fail(format!("no node accepted the write in time ({last})"));
                }
            }
            let pause = Duration::from_millis((10 * (round + 1)).min(100));
            match left(deadline) {
                Some(l) => std::thread::sleep(pause.min(l)),
                None => break,
            }
        }
        Reply::Fail(format!("no node accepted the write in time ({last})"))
    }

    fn read(&mut self, key: &str) -> Reply {
        let deadline = Instant::now() + self.timeout;
        let n = self.nodes.len();
        let start = self.rng.below(n as u64) as usize;
        let mut last = "no node answered".to_string();
        for round in 0u64.. {
            for i in 0..n {
                let node = (start + i) % n;
                match self.exchange(node, &format!("GET {key}"), deadline) {
                    Exchange::Reply(r) if r == "NOTFOUND" => return Reply::Ok(Value::Nil),
                    Exchange::Reply(r) if r.starts_with("VALUE ") => {
                        return Reply::Ok(super::parse_value(r["VALUE ".len()..].trim()))
                    }
                    Exchange::Reply(r) => {
                        if r != "NOTPRIMARY" {
                            self.conn = None;
                        }
                        last = format!("node {node}: {r}");
                    }
                    Exchange::Lost(why) | Exchange::NotSent(why) => last = why,
                }
                if left(deadline).is_none() {
                    return Reply::Info(format!("no answer in time ({last})"));
                }
            }
            let pause = Duration::from_millis((10 * (round + 1)).min(100));
            match left(deadline) {
                Some(l) => std::thread::sleep(pause.min(l)),
                None => break,
            }
        }
        Reply::Info(format!("no answer in time ({last})"))
    }
}

impl Client for KvClient {
    fn call(&mut self, req: &Request) -> Reply {
        self.asked = None;
        match req {
            Request::Read { key } => self.read(key),
            Request::Write { key, value } => self.write(key, *value),
            Request::Cas { .. } => Reply::Fail("the demo store has no cas".into()),
        }
    }

    fn supports_cas(&self) -> bool {
        false
    }

    fn node(&self) -> Option<String> {
        self.asked.map(|n| self.nodes[n].to_string())
    }
}
