//! Divergence: production's responses against a debug target's, per connection and, when the
//! protocol's framing is known, per message; and the Diffy-style noise filter.

use serde::{Deserialize, Serialize};
use std::collections::{HashMap, VecDeque};

/// How a response stream splits into messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Framing {
    /// Byte streams only: a connection is identical or not, with the first differing offset.
    #[default]
    None,
    /// One message per line (ending in `\n`).
    Lines,
    /// Redis protocol (RESP2/RESP3): one message per top-level value.
    Resp,
}

impl std::str::FromStr for Framing {
    type Err = crate::Error;
    fn from_str(s: &str) -> Result<Self, crate::Error> {
        match s {
            "none" => Ok(Framing::None),
            "lines" | "line" => Ok(Framing::Lines),
            "resp" => Ok(Framing::Resp),
            _ => Err(crate::Error::Invalid(format!(
                "unknown framing `{s}` (none, lines or resp)"
            ))),
        }
    }
}

/// A stream that is not RESP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Malformed;

/// Length of the first complete RESP value in `b`, if complete. `Err` on a malformed stream.
pub fn resp_len(b: &[u8]) -> Result<Option<usize>, Malformed> {
    resp_value(b).map_err(|()| Malformed)
}

fn resp_value(b: &[u8]) -> Result<Option<usize>, ()> {
    fn line(b: &[u8], from: usize) -> Option<usize> {
        b[from..]
            .windows(2)
            .position(|w| w == b"\r\n")
            .map(|p| from + p + 2)
    }
    fn int(b: &[u8]) -> Result<i64, ()> {
        std::str::from_utf8(b)
            .map_err(|_| ())?
            .parse::<i64>()
            .map_err(|_| ())
    }
    fn value(b: &[u8], at: usize, depth: usize) -> Result<Option<usize>, ()> {
        if depth > 64 {
            return Err(());
        }
        let Some(&t) = b.get(at) else { return Ok(None) };
        let Some(end) = line(b, at) else {
            return Ok(None);
        };
        let head = &b[at + 1..end - 2];
        match t {
            b'+' | b'-' | b':' | b'_' | b',' | b'#' | b'(' => Ok(Some(end)),
            b'$' | b'=' | b'!' => {
                let n = int(head)?;
                if n < 0 {
                    return Ok(Some(end));
                }
                let stop = end + n as usize + 2;
                Ok(if b.len() >= stop { Some(stop) } else { None })
            }
            b'*' | b'~' | b'>' | b'%' | b'|' => {
                let n = int(head)?;
                if n < 0 {
                    return Ok(Some(end));
                }
                let items = if t == b'%' || t == b'|' { 2 * n } else { n };
                let mut pos = end;
                for _ in 0..items {
                    match value(b, pos, depth + 1)? {
                        Some(p) => pos = p,
                        None => return Ok(None),
                    }
                }
                Ok(Some(pos))
            }
            _ => Err(()),
        }
    }
    value(b, 0, 0)
}

#[derive(Debug, Default)]
struct Framer {
    buf: Vec<u8>,
    broken: bool,
}

impl Framer {
    fn feed(&mut self, framing: Framing, data: &[u8], out: &mut VecDeque<Vec<u8>>) {
        if framing == Framing::None || self.broken {
            return;
        }
        self.buf.extend_from_slice(data);
        let mut start = 0;
        loop {
            let rest = &self.buf[start..];
            let len = match framing {
                Framing::Lines => rest.iter().position(|&c| c == b'\n').map(|p| p + 1),
                Framing::Resp => match resp_len(rest) {
                    Ok(l) => l,
                    Err(Malformed) => {
                        self.broken = true;
                        None
                    }
                },
                Framing::None => None,
            };
            match len {
                Some(l) => {
                    out.push_back(rest[..l].to_vec());
                    start += l;
                }
                None => break,
            }
        }
        self.buf.drain(..start);
    }
}

/// One differing message (or connection, `index == None`).
#[derive(Debug, Clone, Serialize)]
pub struct DiffSample {
    pub connection: u64,
    pub index: Option<u64>,
    pub production: String,
    pub debug: String,
    /// First differing byte within the message (or the connection's stream).
    pub offset: u64,
}

/// Where a difference was, for the noise filter: byte positions when both messages have the
/// same length (at most 256), `None` otherwise.
pub type DiffKey = (u64, Option<u64>);

/// Comparison results of one target, summed over connections.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CompareStats {
    pub connections_identical: u64,
    pub connections_different: u64,
    /// Connections whose comparison stopped: a side got more than the compare limit ahead, or
    /// the target stopped being fed.
    pub connections_not_compared: u64,
    pub messages_identical: u64,
    pub messages_different: u64,
    /// First differing byte offset of each differing connection (first 20).
    pub first_differences: Vec<(u64, u64)>,
    /// The first 10 differing messages (or connections).
    pub samples: Vec<DiffSample>,
    /// Differences not ignored as noise (set when a reference target filters them).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub real_differences: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub noise_differences: Option<u64>,
    #[serde(skip)]
    pub diffs: HashMap<DiffKey, Option<Vec<u32>>>,
    #[serde(skip)]
    pub diffs_unrecorded: u64,
}

const MAX_DIFFS: usize = 100_000;

impl CompareStats {
    fn record(&mut self, key: DiffKey, positions: Option<Vec<u32>>, sample: DiffSample) {
        if self.samples.len() < 10 {
            self.samples.push(sample);
        }
        if self.diffs.len() < MAX_DIFFS {
            self.diffs.insert(key, positions);
        } else {
            self.diffs_unrecorded += 1;
        }
    }

    /// Splits this target's differences into noise (the reference also differed there, at
    /// the same byte positions or with a length change) and real ones.
    pub fn filter_noise(&mut self, reference: &CompareStats) {
        let mut noise = 0;
        for (key, pos) in &self.diffs {
            let is_noise = match reference.diffs.get(key) {
                None => false,
                Some(None) => true,
                Some(Some(r)) => match pos {
                    Some(p) => p.iter().all(|x| r.contains(x)),
                    None => false,
                },
            };
            if is_noise {
                noise += 1;
            }
        }
        let total = self.diffs.len() as u64 + self.diffs_unrecorded;
        self.noise_differences = Some(noise);
        self.real_differences = Some(total - noise);
    }
}

fn show(b: &[u8]) -> String {
    let cut = &b[..b.len().min(120)];
    let mut s: String = cut.escape_ascii().to_string();
    if b.len() > cut.len() {
        s.push_str(&format!("…(+{} bytes)", b.len() - cut.len()));
    }
    s
}

fn positions(a: &[u8], b: &[u8]) -> Option<Vec<u32>> {
    if a.len() != b.len() {
        return None;
    }
    let v: Vec<u32> = (0..a.len())
        .filter(|&i| a[i] != b[i])
        .map(|i| i as u32)
        .collect();
    (v.len() <= 256).then_some(v)
}

/// The comparison of one connection with one target, fed as bytes arrive.
#[derive(Debug)]
pub struct ConnCompare {
    conn: u64,
    framing: Framing,
    limit: usize,
    /// Unmatched bytes of the side that is ahead (byte-level).
    ahead: Vec<u8>,
    ahead_is_prod: bool,
    matched: u64,
    first_diff: Option<u64>,
    prod_total: u64,
    dbg_total: u64,
    pf: Framer,
    df: Framer,
    pm: VecDeque<Vec<u8>>,
    dm: VecDeque<Vec<u8>>,
    index: u64,
    any_msg_diff: bool,
    truncated: bool,
    prod_done: bool,
    dbg_done: bool,
    finished: bool,
}

impl ConnCompare {
    pub fn new(conn: u64, framing: Framing, limit: usize) -> ConnCompare {
        ConnCompare {
            conn,
            framing,
            limit,
            ahead: Vec::new(),
            ahead_is_prod: true,
            matched: 0,
            first_diff: None,
            prod_total: 0,
            dbg_total: 0,
            pf: Framer::default(),
            df: Framer::default(),
            pm: VecDeque::new(),
            dm: VecDeque::new(),
            index: 0,
            any_msg_diff: false,
            truncated: false,
            prod_done: false,
            dbg_done: false,
            finished: false,
        }
    }

    fn bytes(&mut self, prod: bool, data: &[u8]) {
        if self.first_diff.is_some() {
            return;
        }
        if self.ahead.is_empty() || self.ahead_is_prod == prod {
            self.ahead_is_prod = prod;
            if self.ahead.len() + data.len() > self.limit {
                self.truncated = true;
                self.ahead = Vec::new();
                return;
            }
            self.ahead.extend_from_slice(data);
            return;
        }
        let n = self.ahead.len().min(data.len());
        if let Some(p) = (0..n).find(|&i| self.ahead[i] != data[i]) {
            self.first_diff = Some(self.matched + p as u64);
            self.ahead = Vec::new();
            return;
        }
        self.matched += n as u64;
        self.ahead.drain(..n);
        if n < data.len() {
            self.ahead_is_prod = prod;
            self.ahead.extend_from_slice(&data[n..]);
        }
    }

    fn messages(&mut self, stats: &mut CompareStats) {
        while !self.pm.is_empty() && !self.dm.is_empty() {
            let (Some(a), Some(b)) = (self.pm.pop_front(), self.dm.pop_front()) else {
                break;
            };
            if a == b {
                stats.messages_identical += 1;
            } else {
                self.any_msg_diff = true;
                stats.messages_different += 1;
                let offset = a
                    .iter()
                    .zip(&b)
                    .position(|(x, y)| x != y)
                    .unwrap_or(a.len().min(b.len()));
                stats.record(
                    (self.conn, Some(self.index)),
                    positions(&a, &b),
                    DiffSample {
                        connection: self.conn,
                        index: Some(self.index),
                        production: show(&a),
                        debug: show(&b),
                        offset: offset as u64,
                    },
                );
            }
            self.index += 1;
        }
        let queued: usize = self.pm.iter().chain(self.dm.iter()).map(Vec::len).sum();
        if queued > self.limit {
            self.truncated = true;
            self.pm.clear();
            self.dm.clear();
            self.framing = Framing::None;
        }
    }

    pub fn push(&mut self, prod: bool, data: &[u8], stats: &mut CompareStats) {
        if self.finished || self.truncated {
            return;
        }
        if prod {
            self.prod_total += data.len() as u64;
            self.pf.feed(self.framing, data, &mut self.pm);
        } else {
            self.dbg_total += data.len() as u64;
            self.df.feed(self.framing, data, &mut self.dm);
        }
        self.bytes(prod, data);
        self.messages(stats);
    }

    /// One side's stream ended. Returns true once the connection is fully compared (and
    /// accounted in `stats`).
    pub fn end(&mut self, prod: bool, stats: &mut CompareStats) -> bool {
        if prod {
            self.prod_done = true;
        } else {
            self.dbg_done = true;
        }
        if self.prod_done && self.dbg_done {
            self.finish(stats);
        }
        self.finished
    }

    /// Abandons the comparison (target stopped being fed): counted as not compared.
    pub fn abandon(&mut self, stats: &mut CompareStats) {
        if !self.finished {
            self.finished = true;
            stats.connections_not_compared += 1;
        }
    }

    fn finish(&mut self, stats: &mut CompareStats) {
        if self.finished {
            return;
        }
        self.finished = true;
        if self.truncated {
            stats.connections_not_compared += 1;
            return;
        }
        if self.first_diff.is_none() && !self.ahead.is_empty() {
            self.first_diff = Some(self.matched);
        }
        // Unpaired messages: one side answered more than the other.
        let extra = self.pm.len().max(self.dm.len()) as u64;
        if extra > 0 {
            stats.messages_different += extra;
            for i in 0..extra {
                let a = self.pm.get(i as usize).map(|v| show(v)).unwrap_or_default();
                let b = self.dm.get(i as usize).map(|v| show(v)).unwrap_or_default();
                stats.record(
                    (self.conn, Some(self.index + i)),
                    None,
                    DiffSample {
                        connection: self.conn,
                        index: Some(self.index + i),
                        production: a,
                        debug: b,
                        offset: 0,
                    },
                );
            }
            self.any_msg_diff = true;
        }
        match self.first_diff {
            None => stats.connections_identical += 1,
            Some(off) => {
                stats.connections_different += 1;
                if stats.first_differences.len() < 20 {
                    stats.first_differences.push((self.conn, off));
                }
                if self.framing == Framing::None {
                    stats.record(
                        (self.conn, None),
                        None,
                        DiffSample {
                            connection: self.conn,
                            index: None,
                            production: format!("{} bytes", self.prod_total),
                            debug: format!("{} bytes", self.dbg_total),
                            offset: off,
                        },
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framings_parse_by_name() {
        assert_eq!("none".parse::<Framing>().unwrap(), Framing::None);
        assert_eq!("line".parse::<Framing>().unwrap(), Framing::Lines);
        assert_eq!("resp".parse::<Framing>().unwrap(), Framing::Resp);
        assert_eq!(
            "http".parse::<Framing>().unwrap_err().to_string(),
            "unknown framing `http` (none, lines or resp)"
        );
    }

    #[test]
    fn resp_framing() {
        assert_eq!(resp_len(b"+OK\r\n"), Ok(Some(5)));
        assert_eq!(resp_len(b"$3\r\nfoo\r\n+x"), Ok(Some(9)));
        assert_eq!(resp_len(b"$3\r\nfo"), Ok(None));
        assert_eq!(resp_len(b"*2\r\n$1\r\na\r\n:5\r\n"), Ok(Some(15)));
        assert_eq!(resp_len(b"$-1\r\n"), Ok(Some(5)));
        assert_eq!(resp_len(b"?\r\n"), Err(Malformed));
    }

    #[test]
    fn byte_and_line_comparison() {
        let mut st = CompareStats::default();
        let mut c = ConnCompare::new(1, Framing::Lines, 1 << 20);
        c.push(true, b"a 1\nb 2\nc", &mut st);
        c.push(false, b"a 1\nb 3\n", &mut st);
        c.push(true, b" 3\n", &mut st);
        c.push(false, b"c 3\n", &mut st);
        assert!(!c.end(true, &mut st));
        assert!(c.end(false, &mut st));
        assert_eq!(st.messages_identical, 2);
        assert_eq!(st.messages_different, 1);
        assert_eq!(st.connections_different, 1);
        assert_eq!(st.first_differences, vec![(1, 6)]);
        assert_eq!(st.samples[0].index, Some(1));
        assert_eq!(st.samples[0].offset, 2);

        let mut c = ConnCompare::new(2, Framing::None, 1 << 20);
        c.push(false, b"xyz", &mut st);
        c.push(true, b"xy", &mut st);
        c.push(true, b"z", &mut st);
        c.end(true, &mut st);
        c.end(false, &mut st);
        assert_eq!(st.connections_identical, 1);
    }

    #[test]
    fn noise_filter() {
        let mut reference = CompareStats::default();
        let mut c = ConnCompare::new(1, Framing::Lines, 1 << 20);
        c.push(true, b"t=100 v=1\nok\n", &mut reference);
        c.push(false, b"t=101 v=1\nok\n", &mut reference);
        c.end(true, &mut reference);
        c.end(false, &mut reference);
        let mut cand = CompareStats::default();
        let mut c = ConnCompare::new(1, Framing::Lines, 1 << 20);
        c.push(true, b"t=100 v=1\nok\n", &mut cand);
        c.push(false, b"t=102 v=2\nok\n", &mut cand);
        c.end(true, &mut cand);
        c.end(false, &mut cand);
        cand.filter_noise(&reference);
        assert_eq!(cand.real_differences, Some(1), "v=2 is a real change");
        let mut cand2 = CompareStats::default();
        let mut c = ConnCompare::new(1, Framing::Lines, 1 << 20);
        c.push(true, b"t=100 v=1\nok\n", &mut cand2);
        c.push(false, b"t=109 v=1\nok\n", &mut cand2);
        c.end(true, &mut cand2);
        c.end(false, &mut cand2);
        cand2.filter_noise(&reference);
        assert_eq!(cand2.real_differences, Some(0));
        assert_eq!(cand2.noise_differences, Some(1));
    }
}
