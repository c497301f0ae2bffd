//! The memcached text protocol: lines ended by `\r\n`, storage commands followed by a data
//! block whose length their line gives.
//!
//! This file is the worked example of adding a protocol (docs/protocols.md): a [`Protocol`]
//! that names and detects it, a [`Decoder`] that frames and describes its messages, and its
//! line in [`crate::PROTOCOLS`].
//!
//! Requests: `get`/`gets`/`gat`/`gats` (several keys), `set`/`add`/`replace`/`append`/
//! `prepend`/`cas` and the meta `ms` (with a data block), `delete`, `incr`/`decr`, `touch`,
//! `version`, `stats`, the other meta commands and administration commands. Those ending in
//! `noreply` get no answer: they are one-way. Replies: a line (`STORED`, `NOT_FOUND`, `5`,
//! `ERROR`...), `VALUE` blocks up to `END`, `STAT` lines up to `END`, a meta `VA` block.
//! Meta commands in quiet mode (flag `q`, answered only on failure) are not paired.

use crate::{
    summarize, Decoder, Detect, KvRequest, KvResponse, Message, Parse, Protocol, Role, Side,
};

/// The memcached text protocol.
pub struct Memcached;

/// Every command word (sorted).
const COMMANDS: &[&str] = &[
    "add",
    "append",
    "cache_memlimit",
    "cas",
    "debug",
    "decr",
    "delete",
    "flush_all",
    "gat",
    "gats",
    "get",
    "gets",
    "incr",
    "lru",
    "lru_crawler",
    "ma",
    "md",
    "me",
    "mg",
    "misbehave",
    "mn",
    "ms",
    "prepend",
    "quit",
    "replace",
    "set",
    "shutdown",
    "slabs",
    "stats",
    "touch",
    "verbosity",
    "version",
    "watch",
];
/// Longest line memcached reads (its key length limit is 250; `get` may list many keys).
const MAX_LINE: usize = 8192;
/// Values and words shown in a text; more are counted.
const SHOWN: usize = 8;

impl Protocol for Memcached {
    fn name(&self) -> &'static str {
        "memcached"
    }

    /// A client's first line: a command word (lowercase, as memcached wants them) followed
    /// by a space or the end of the line. Servers never speak first.
    fn detect(&self, side: Side, first: &[u8]) -> Detect {
        if side == Side::Server {
            return Detect::No;
        }
        let word = first
            .iter()
            .take_while(|b| b.is_ascii_lowercase() || **b == b'_')
            .count();
        if word == first.len() {
            let prefix = COMMANDS.iter().any(|c| c.as_bytes().starts_with(first));
            return if prefix { Detect::Maybe } else { Detect::No };
        }
        if !is_command(&first[..word]) || !matches!(first[word], b' ' | b'\r' | b'\n') {
            return Detect::No;
        }
        match first.iter().position(|&b| b == b'\n') {
            Some(_) => Detect::Yes,
            None if first.len() < MAX_LINE => Detect::Maybe,
            None => Detect::No,
        }
    }

    fn decoder(&self) -> Box<dyn Decoder> {
        Box::<MemcachedDecoder>::default()
    }
}

fn is_command(word: &[u8]) -> bool {
    COMMANDS
        .binary_search_by(|c| c.as_bytes().cmp(word))
        .is_ok()
}

#[derive(Default)]
struct MemcachedDecoder {
    /// A reply of `VALUE` or `STAT` lines longer than the buffer: its rest, up to `END`, is
    /// still to come.
    in_list: bool,
}

impl Decoder for MemcachedDecoder {
    fn parse(&mut self, side: Side, buf: &[u8], full: bool) -> Parse {
        match side {
            Side::Client => request(buf, full),
            Side::Server if self.in_list => self.list_rest(buf, full),
            Side::Server => self.reply(buf, full),
        }
    }

    fn lost(&mut self, side: Side) {
        if side == Side::Server {
            self.in_list = false;
        }
    }
}

/// A `\r\n`-ended (or `\n`-ended, memcached takes both) line at the start of `buf`: its
/// words and the length with its end.
enum Line<'a> {
    Words(Vec<&'a [u8]>, usize),
    Short,
    Bad,
}

fn line(buf: &[u8], full: bool) -> Line<'_> {
    match buf.iter().take(MAX_LINE).position(|&b| b == b'\n') {
        Some(nl) => {
            let text = &buf[..nl];
            let text = text.strip_suffix(b"\r").unwrap_or(text);
            let words = text.split(|&b| b == b' ').filter(|w| !w.is_empty());
            Line::Words(words.collect(), nl + 1)
        }
        None if buf.len() >= MAX_LINE || full => Line::Bad,
        None => Line::Short,
    }
}

/// Where a data block ends.
enum Block {
    /// At this offset, its `\r\n` included (past the buffer when it was `full`).
    EndsAt(u64),
    Short,
    Bad,
}

/// The data block of `n` bytes that starts at `at`, followed by `\r\n`.
fn block(buf: &[u8], at: usize, n: u64, full: bool) -> Block {
    let end = at as u64 + n + 2;
    if end > buf.len() as u64 {
        return if full {
            Block::EndsAt(end)
        } else {
            Block::Short
        };
    }
    if &buf[end as usize - 2..end as usize] != b"\r\n" {
        return Block::Bad;
    }
    Block::EndsAt(end)
}

/// A length or count: decimal digits, at most 2^32 (memcached's items are far smaller).
fn number(word: Option<&&[u8]>) -> Option<u64> {
    let word = word?;
    if word.is_empty() || word.len() > 10 || !word.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n = word.iter().fold(0u64, |n, &d| n * 10 + u64::from(d - b'0'));
    (n <= 1 << 32).then_some(n)
}

fn text_of(words: &[&[u8]]) -> String {
    let shown: Vec<String> = words
        .iter()
        .take(SHOWN * 2)
        .map(|w| summarize(w, w.len()).text)
        .collect();
    let mut text = shown.join(" ");
    if words.len() > SHOWN * 2 {
        text.push_str(&format!(" …({} words)", words.len()));
    }
    text
}

fn string(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn request(buf: &[u8], full: bool) -> Parse {
    let (words, line_len) = match line(buf, full) {
        Line::Words(words, len) => (words, len),
        Line::Short => return Parse::Need,
        Line::Bad => return Parse::Invalid,
    };
    let Some(&command) = words.first() else {
        return Parse::Invalid;
    };
    if !is_command(command) {
        // memcached answers `ERROR`; after missed bytes this is more likely the middle of
        // a value than a request.
        return Parse::Invalid;
    }
    let op = string(command);
    let mut text = text_of(&words);
    let mut message = Message::new(Role::Request, op.as_str(), "");
    let mut len = line_len as u64;
    // The data block's length is the 5th word of storage commands, the 3rd of `ms`.
    let data_len = match op.as_str() {
        "set" | "add" | "replace" | "append" | "prepend" | "cas" => number(words.get(4)),
        "ms" => number(words.get(2)),
        _ => None,
    };
    if let Some(n) = data_len {
        len = match block(buf, line_len, n, full) {
            Block::EndsAt(end) => end,
            Block::Short => return Parse::Need,
            Block::Bad => return Parse::Invalid,
        };
        let seen = &buf[line_len..buf.len().min(line_len + n as usize)];
        message.truncated = seen.len() as u64 != n;
        text.push(' ');
        text.push_str(&summarize(seen, n as usize).text);
        // Only `set` writes whatever the key holds: `add`, `replace`, `append`, `prepend`
        // depend on it, and `cas` compares a version token, not a value.
        if op == "set" && words.len() <= 6 {
            message.kv_request = Some(KvRequest::Write {
                key: string(words[1]),
                value: string(seen),
            });
        }
    }
    if matches!(op.as_str(), "get" | "gets") && words.len() == 2 {
        message.kv_request = Some(KvRequest::Read {
            key: string(words[1]),
        });
    }
    if words.last() == Some(&&b"noreply"[..]) || op == "quit" {
        message.role = Role::OneWay;
    }
    message.text = text;
    Parse::Frame {
        len,
        message: Some(message),
    }
}

impl MemcachedDecoder {
    fn reply(&mut self, buf: &[u8], full: bool) -> Parse {
        let (words, line_len) = match line(buf, full) {
            Line::Words(words, len) => (words, len),
            Line::Short => return Parse::Need,
            Line::Bad => return Parse::Invalid,
        };
        let Some(&first) = words.first() else {
            return Parse::Invalid;
        };
        if !first
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'_')
        {
            return Parse::Invalid;
        }
        if matches!(first, b"VALUE" | b"STAT" | b"ITEM") {
            return self.list(buf, full);
        }
        let op = if first.iter().all(u8::is_ascii_digit) {
            "NUMBER".to_string()
        } else {
            string(first)
        };
        let mut message = Message::new(Role::Response, op.as_str(), text_of(&words));
        let len = match op.as_str() {
            "VA" => {
                let Some(n) = number(words.get(1)) else {
                    return Parse::Invalid;
                };
                let end = match block(buf, line_len, n, full) {
                    Block::EndsAt(end) => end,
                    Block::Short => return Parse::Need,
                    Block::Bad => return Parse::Invalid,
                };
                let seen = &buf[line_len..buf.len().min(line_len + n as usize)];
                message.truncated = seen.len() as u64 != n;
                message.text.push(' ');
                message.text.push_str(&summarize(seen, n as usize).text);
                end
            }
            _ => line_len as u64,
        };
        message.kv_response = match op.as_str() {
            "STORED" => Some(KvResponse::Ok),
            "END" => Some(KvResponse::Value(None)),
            "NOT_STORED" | "EXISTS" | "NOT_FOUND" | "ERROR" | "CLIENT_ERROR" => {
                Some(KvResponse::Fail)
            }
            // memcached refuses (out of memory, too large) before storing; a proxy's
            // timeout does not say.
            "SERVER_ERROR" => {
                let text = message.text.to_ascii_lowercase();
                let unsure = ["timeout", "timed out", "connection"];
                Some(if unsure.iter().any(|w| text.contains(w)) {
                    KvResponse::Unknown
                } else {
                    KvResponse::Fail
                })
            }
            _ => None,
        };
        Parse::Frame {
            len,
            message: Some(message),
        }
    }

    /// `VALUE` blocks or `STAT` lines up to `END`: one reply.
    fn list(&mut self, buf: &[u8], full: bool) -> Parse {
        let mut pos = 0usize;
        let mut items: Vec<String> = Vec::new();
        let mut count = 0usize;
        let mut value = None;
        let mut op = "";
        loop {
            let (words, line_len) = match line(&buf[pos..], false) {
                Line::Words(words, len) => (words, len),
                Line::Short if !full => return Parse::Need,
                // The reply goes on past the buffer: its head is the message.
                Line::Short | Line::Bad if full && pos > 0 => {
                    self.in_list = true;
                    return list_message(op, pos as u64, items, count, value, true);
                }
                _ => return Parse::Invalid,
            };
            let Some(&first) = words.first() else {
                return Parse::Invalid;
            };
            if op.is_empty() {
                op = if first == b"VALUE" { "VALUE" } else { "STAT" };
            }
            match first {
                b"END" => {
                    return list_message(op, (pos + line_len) as u64, items, count, value, false)
                }
                b"VALUE" if op == "VALUE" => {
                    let Some(n) = number(words.get(3)) else {
                        return Parse::Invalid;
                    };
                    let at = pos + line_len;
                    let end = match block(buf, at, n, full) {
                        Block::EndsAt(end) => end,
                        Block::Short => return Parse::Need,
                        Block::Bad => return Parse::Invalid,
                    };
                    let seen = &buf[at..buf.len().min(at + n as usize)];
                    let key = words.get(1).copied().unwrap_or_default();
                    if items.len() < SHOWN {
                        let k = summarize(key, key.len()).text;
                        items.push(format!("{k} {}", summarize(seen, n as usize).text));
                    }
                    count += 1;
                    value = Some(string(seen));
                    if end > buf.len() as u64 {
                        self.in_list = true;
                        return list_message(op, end, items, count, value, true);
                    }
                    pos = end as usize;
                }
                b"STAT" | b"ITEM" if op == "STAT" => {
                    if items.len() < SHOWN {
                        items.push(text_of(&words[1..]));
                    }
                    count += 1;
                    pos += line_len;
                }
                _ => return Parse::Invalid,
            }
        }
    }

    /// The rest of a list longer than the buffer, one value or line at a time.
    fn list_rest(&mut self, buf: &[u8], full: bool) -> Parse {
        let (words, line_len) = match line(buf, full) {
            Line::Words(words, len) => (words, len),
            Line::Short => return Parse::Need,
            Line::Bad => return Parse::Invalid,
        };
        let len = match words.first().copied() {
            Some(b"VALUE") => {
                let Some(n) = number(words.get(3)) else {
                    return Parse::Invalid;
                };
                match block(buf, line_len, n, full) {
                    Block::EndsAt(end) => end,
                    Block::Short => return Parse::Need,
                    Block::Bad => return Parse::Invalid,
                }
            }
            Some(b"STAT" | b"ITEM") => line_len as u64,
            Some(b"END") => {
                self.in_list = false;
                line_len as u64
            }
            _ => return Parse::Invalid,
        };
        Parse::Frame { len, message: None }
    }
}

fn list_message(
    op: &str,
    len: u64,
    items: Vec<String>,
    count: usize,
    value: Option<String>,
    truncated: bool,
) -> Parse {
    let mut text = format!("{op} {}", items.join(", "));
    if count > items.len() || truncated {
        text.push_str(&format!(
            " …({count}{} items)",
            if truncated { "+" } else { "" }
        ));
    }
    let mut message = Message::new(Role::Response, op, text);
    message.truncated = truncated;
    // One key asked, one value (`get k` asks a single key when it is a read).
    if op == "VALUE" && count == 1 {
        message.kv_response = Some(KvResponse::Value(value));
    }
    Parse::Frame {
        len,
        message: Some(message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Conversation, Framed, MAX_BUFFER};

    const C: Side = Side::Client;
    const S: Side = Side::Server;

    fn frames(chunks: &[(Side, &[u8])]) -> Vec<Framed> {
        let mut conv = Conversation::new(Some(&Memcached));
        let mut at = [0u64; 2];
        let mut out = Vec::new();
        for (side, bytes) in chunks {
            out.extend(conv.feed(*side, at[side.index()], bytes, true));
            at[side.index()] += bytes.len() as u64;
        }
        out
    }

    fn described(frames: &[Framed]) -> Vec<(Side, Role, &str, &str, u64, u64)> {
        frames
            .iter()
            .map(|f| {
                let m = &f.message;
                (
                    f.side,
                    m.role,
                    m.op.as_str(),
                    m.text.as_str(),
                    f.start,
                    f.end,
                )
            })
            .collect()
    }

    #[test]
    fn detection_wants_a_lowercase_command() {
        for (first, want) in [
            (&b"get k\r\n"[..], Detect::Yes),
            (b"set k 0 0 2\r\nv7\r\n", Detect::Yes),
            (b"stats\n", Detect::Yes),
            (b"version\r\n", Detect::Yes),
            (b"ge", Detect::Maybe),
            (b"get k", Detect::Maybe),
            (b"GET k\r\n", Detect::No),
            (b"GET / HTTP/1.1\r\n", Detect::No),
            (b"getx k\r\n", Detect::No),
            (b"*1\r\n", Detect::No),
            (b"\x80\x00", Detect::No),
        ] {
            assert_eq!(Memcached.detect(C, first), want, "{first:?}");
        }
        assert_eq!(Memcached.detect(S, b"STORED\r\n"), Detect::No);
        assert!(COMMANDS.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn storage_retrieval_and_noreply() {
        let got = frames(&[
            (
                C,
                b"set k3 0 0 2\r\nv7\r\nget k3\r\nget a b c\r\nget nope\r\n\
                  set q 1 0 3 noreply\r\nabc\r\nincr n 1\r\ncas k3 0 0 2 17\r\nv8\r\ndelete k3\r\n",
            ),
            (
                S,
                b"STORED\r\nVALUE k3 0 2\r\nv7\r\nEND\r\nVALUE a 0 1\r\n1\r\nVALUE c 5 1 9\r\n3\r\nEND\r\n\
                  END\r\n6\r\nEXISTS\r\nDELETED\r\n",
            ),
        ]);
        assert_eq!(
            described(&got),
            [
                (C, Role::Request, "set", "set k3 0 0 2 v7", 0, 18),
                (C, Role::Request, "get", "get k3", 18, 26),
                (C, Role::Request, "get", "get a b c", 26, 37),
                (C, Role::Request, "get", "get nope", 37, 47),
                (C, Role::OneWay, "set", "set q 1 0 3 noreply abc", 47, 73),
                (C, Role::Request, "incr", "incr n 1", 73, 83),
                (C, Role::Request, "cas", "cas k3 0 0 2 17 v8", 83, 104),
                (C, Role::Request, "delete", "delete k3", 104, 115),
                (S, Role::Response, "STORED", "STORED", 0, 8),
                (S, Role::Response, "VALUE", "VALUE k3 v7", 8, 31),
                (S, Role::Response, "VALUE", "VALUE a 1, c 3", 31, 70),
                (S, Role::Response, "END", "END", 70, 75),
                (S, Role::Response, "NUMBER", "6", 75, 78),
                (S, Role::Response, "EXISTS", "EXISTS", 78, 86),
                (S, Role::Response, "DELETED", "DELETED", 86, 95),
            ]
        );
        let kv: Vec<_> = got
            .iter()
            .map(|f| (f.message.kv_request.clone(), f.message.kv_response.clone()))
            .collect();
        let write = |k: &str, v: &str| {
            Some(KvRequest::Write {
                key: k.into(),
                value: v.into(),
            })
        };
        let read = |k: &str| Some(KvRequest::Read { key: k.into() });
        assert_eq!(
            kv,
            [
                (write("k3", "v7"), None),
                (read("k3"), None),
                (None, None),
                (read("nope"), None),
                (write("q", "abc"), None),
                (None, None),
                (None, None),
                (None, None),
                (None, Some(KvResponse::Ok)),
                (None, Some(KvResponse::Value(Some("v7".into())))),
                (None, None),
                (None, Some(KvResponse::Value(None))),
                (None, None),
                (None, Some(KvResponse::Fail)),
                (None, None),
            ]
        );
    }

    #[test]
    fn stats_meta_and_errors() {
        let got = frames(&[
            (C, b"stats\r\nms k 2\r\nhi\r\nmg k v\r\nbogus\r\n"),
            (
                S,
                b"STAT pid 7\r\nSTAT uptime 3\r\nEND\r\nHD\r\nVA 2\r\nhi\r\nSERVER_ERROR out of memory\r\n",
            ),
        ]);
        let texts: Vec<_> = got
            .iter()
            .map(|f| (f.message.text.as_str(), f.message.kv_response.clone()))
            .collect();
        assert_eq!(
            texts,
            [
                ("stats", None),
                ("ms k 2 hi", None),
                ("mg k v", None),
                ("STAT pid 7, uptime 3", None),
                ("HD", None),
                ("VA 2 hi", None),
                ("SERVER_ERROR out of memory", Some(KvResponse::Fail)),
            ]
        );
    }

    #[test]
    fn a_value_longer_than_the_buffer_is_one_truncated_message() {
        let value = vec![b'x'; 200_000];
        let mut set = b"set k 0 0 200000\r\n".to_vec();
        set.extend_from_slice(&value);
        set.extend_from_slice(b"\r\nget k\r\n");
        let mut reply = b"STORED\r\nVALUE k 0 200000\r\n".to_vec();
        reply.extend_from_slice(&value);
        reply.extend_from_slice(b"\r\nVALUE k2 0 1\r\nz\r\nEND\r\nEND\r\n");
        let got = frames(&[(C, &set), (S, &reply)]);
        let cut = format!("{}…(200000 bytes)", "x".repeat(48));
        let n = reply.len() as u64;
        assert_eq!(
            described(&got),
            [
                (
                    C,
                    Role::Request,
                    "set",
                    &*format!("set k 0 0 200000 {cut}"),
                    0,
                    200_020
                ),
                (C, Role::Request, "get", "get k", 200_020, 200_027),
                (S, Role::Response, "STORED", "STORED", 0, 8),
                (
                    S,
                    Role::Response,
                    "VALUE",
                    &*format!("VALUE k {cut} …(1+ items)"),
                    8,
                    200_028
                ),
                (S, Role::Response, "END", "END", n - 5, n),
            ]
        );
        assert!(got[0].message.truncated && got[3].message.truncated);
        let Some(KvRequest::Write { value, .. }) = &got[0].message.kv_request else {
            panic!("not a write");
        };
        assert_eq!(value.len(), MAX_BUFFER - 18);
    }

    #[test]
    fn noise_is_not_decoded() {
        let mut dec = MemcachedDecoder::default();
        assert_eq!(dec.parse(C, b"bogus\r\n", false), Parse::Invalid);
        assert_eq!(dec.parse(C, b"set k 0 0 2\r\nv7xx", false), Parse::Invalid);
        assert_eq!(
            dec.parse(S, b"VALUE k 0 2\r\nv7\r\nNOPE\r\n", false),
            Parse::Invalid
        );
        assert_eq!(dec.parse(S, b"\x00\r\n", false), Parse::Invalid);
        assert_eq!(dec.parse(S, b"VALUE k 0 2\r\nv", false), Parse::Need);
    }
}
