//! RESP2 and RESP3, the Redis protocol: client commands (arrays of bulk strings, or inline
//! lines), every reply type, pub/sub pushes, and replication (a replica's handshake, the RDB
//! snapshot, then the primary's stream of commands).
//!
//! A connection keeps state: what each unanswered request expects (a `SYNC` is answered by
//! an RDB, a `SUBSCRIBE a b` by two confirmations), whether the client is inside `MULTI`
//! (queued commands are not key-value operations yet), and whether the server side has
//! become a replication stream (after `+FULLRESYNC` or `+CONTINUE`), where every command is
//! one-way.

mod walk;

use std::collections::VecDeque;
use std::ops::Range;

use crate::{
    Decoder, Detect, KvRequest, KvResponse, Message, Parse, Protocol, Role, Side, MAX_PENDING,
    SUMMARY_MAX,
};
use walk::{line_end, lossy, push_summary, render, skip, Line, Shape, Walked, Walker, HEADER_MAX};

/// The Redis protocol, RESP2 and RESP3.
pub struct Resp;

impl Protocol for Resp {
    fn name(&self) -> &'static str {
        "resp"
    }

    /// A client's first bytes: an array header (`*3\r\n`), or an inline command (`PING\r\n`)
    /// whose first word is a Redis command, ended by `\r\n` (the demo KV protocol ends lines
    /// with `\n` alone) and that is no HTTP request line (`GET / HTTP/1.1\r\n`). Lowercase
    /// words that are memcached commands too (`get k\r\n`) are left to memcached: its clients
    /// send them so, while Redis clients send arrays. Redis servers never speak first.
    fn detect(&self, side: Side, first: &[u8]) -> Detect {
        if side == Side::Server {
            return Detect::No;
        }
        match first.first() {
            None => Detect::Maybe,
            Some(b'*') => detect_array(first),
            Some(_) => detect_inline(first),
        }
    }

    fn decoder(&self) -> Box<dyn Decoder> {
        Box::<RespDecoder>::default()
    }
}

fn detect_array(first: &[u8]) -> Detect {
    let digits = first[1..].iter().take_while(|b| b.is_ascii_digit()).count();
    let rest = &first[1 + digits..];
    if digits > 10 {
        return Detect::No;
    }
    match rest {
        [] => Detect::Maybe,
        [b'\r'] if digits > 0 => Detect::Maybe,
        [b'\r', b'\n', ..] if digits > 0 => Detect::Yes,
        _ => Detect::No,
    }
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.')
}

/// A Redis command, in any case, or a module's (`JSON.SET`).
fn is_command(word: &[u8]) -> bool {
    let upper = word.to_ascii_uppercase();
    COMMANDS.binary_search(&upper.as_slice()).is_ok()
        || word.contains(&b'.') && word[0].is_ascii_alphabetic()
}

fn detect_inline(first: &[u8]) -> Detect {
    let word_len = first.iter().take_while(|b| is_word_byte(**b)).count();
    let word = &first[..word_len];
    let known = |w: &[u8]| {
        let upper = w.to_ascii_uppercase();
        let lowercase_memcached = w.iter().all(u8::is_ascii_lowercase)
            && MEMCACHED_TOO.binary_search(&upper.as_slice()).is_ok();
        COMMANDS.binary_search(&upper.as_slice()).is_ok() && !lowercase_memcached
    };
    if word_len == first.len() {
        // The word may still grow into a command.
        let prefix = word.to_ascii_uppercase();
        let maybe = word_len <= 20 && COMMANDS.iter().any(|c| c.starts_with(&prefix));
        return if maybe { Detect::Maybe } else { Detect::No };
    }
    if !matches!(first[word_len], b' ' | b'\r') || !known(word) {
        return Detect::No;
    }
    let Some(nl) = first.iter().position(|&b| b == b'\n') else {
        return if first.len() < 1024 {
            Detect::Maybe
        } else {
            Detect::No
        };
    };
    let line = &first[..nl];
    let http = line.windows(7).any(|w| w == b" HTTP/1");
    if line.last() == Some(&b'\r') && !http {
        Detect::Yes
    } else {
        Detect::No
    }
}

/// Redis commands (uppercase, sorted): the words an inline command may start with.
#[rustfmt::skip]
static COMMANDS: &[&[u8]] = &[
    b"ACL", b"APPEND", b"ASKING", b"AUTH", b"BGREWRITEAOF", b"BGSAVE", b"BITCOUNT", b"BITFIELD",
    b"BITFIELD_RO", b"BITOP", b"BITPOS", b"BLMOVE", b"BLMPOP", b"BLPOP", b"BRPOP",
    b"BRPOPLPUSH", b"BZMPOP", b"BZPOPMAX", b"BZPOPMIN", b"CLIENT", b"CLUSTER", b"COMMAND",
    b"CONFIG", b"COPY", b"DBSIZE", b"DEBUG", b"DECR", b"DECRBY", b"DEL", b"DISCARD", b"DUMP",
    b"ECHO", b"EVAL", b"EVALSHA", b"EVALSHA_RO", b"EVAL_RO", b"EXEC", b"EXISTS", b"EXPIRE",
    b"EXPIREAT", b"EXPIRETIME", b"FAILOVER", b"FCALL", b"FCALL_RO", b"FLUSHALL", b"FLUSHDB",
    b"FUNCTION", b"GEOADD", b"GEODIST", b"GEOHASH", b"GEOPOS", b"GEORADIUS",
    b"GEORADIUSBYMEMBER", b"GEOSEARCH", b"GEOSEARCHSTORE", b"GET", b"GETBIT", b"GETDEL",
    b"GETEX", b"GETRANGE", b"GETSET", b"HDEL", b"HELLO", b"HEXISTS", b"HGET", b"HGETALL",
    b"HINCRBY", b"HINCRBYFLOAT", b"HKEYS", b"HLEN", b"HMGET", b"HMSET", b"HRANDFIELD", b"HSCAN",
    b"HSET", b"HSETNX", b"HSTRLEN", b"HVALS", b"INCR", b"INCRBY", b"INCRBYFLOAT", b"INFO",
    b"KEYS", b"LASTSAVE", b"LATENCY", b"LCS", b"LINDEX", b"LINSERT", b"LLEN", b"LMOVE",
    b"LMPOP", b"LOLWUT", b"LPOP", b"LPOS", b"LPUSH", b"LPUSHX", b"LRANGE", b"LREM", b"LSET",
    b"LTRIM", b"MEMORY", b"MGET", b"MIGRATE", b"MODULE", b"MONITOR", b"MOVE", b"MSET",
    b"MSETNX", b"MULTI", b"OBJECT", b"PERSIST", b"PEXPIRE", b"PEXPIREAT", b"PEXPIRETIME",
    b"PFADD", b"PFCOUNT", b"PFMERGE", b"PING", b"PSETEX", b"PSUBSCRIBE", b"PSYNC", b"PTTL",
    b"PUBLISH", b"PUBSUB", b"PUNSUBSCRIBE", b"QUIT", b"RANDOMKEY", b"READONLY", b"READWRITE",
    b"RENAME", b"RENAMENX", b"REPLCONF", b"REPLICAOF", b"RESET", b"RESTORE", b"ROLE", b"RPOP",
    b"RPOPLPUSH", b"RPUSH", b"RPUSHX", b"SADD", b"SAVE", b"SCAN", b"SCARD", b"SCRIPT", b"SDIFF",
    b"SDIFFSTORE", b"SELECT", b"SET", b"SETBIT", b"SETEX", b"SETNX", b"SETRANGE", b"SHUTDOWN",
    b"SINTER", b"SINTERCARD", b"SINTERSTORE", b"SISMEMBER", b"SLAVEOF", b"SLOWLOG", b"SMEMBERS",
    b"SMISMEMBER", b"SMOVE", b"SORT", b"SORT_RO", b"SPOP", b"SPUBLISH", b"SRANDMEMBER", b"SREM",
    b"SSCAN", b"SSUBSCRIBE", b"STRLEN", b"SUBSCRIBE", b"SUBSTR", b"SUNION", b"SUNIONSTORE",
    b"SUNSUBSCRIBE", b"SWAPDB", b"SYNC", b"TIME", b"TOUCH", b"TTL", b"TYPE", b"UNLINK",
    b"UNSUBSCRIBE", b"UNWATCH", b"WAIT", b"WAITAOF", b"WATCH", b"XACK", b"XADD", b"XAUTOCLAIM",
    b"XCLAIM", b"XDEL", b"XGROUP", b"XINFO", b"XLEN", b"XPENDING", b"XRANGE", b"XREAD",
    b"XREADGROUP", b"XREVRANGE", b"XSETID", b"XTRIM", b"ZADD", b"ZCARD", b"ZCOUNT", b"ZDIFF",
    b"ZDIFFSTORE", b"ZINCRBY", b"ZINTER", b"ZINTERCARD", b"ZINTERSTORE", b"ZLEXCOUNT", b"ZMPOP",
    b"ZMSCORE", b"ZPOPMAX", b"ZPOPMIN", b"ZRANDMEMBER", b"ZRANGE", b"ZRANGEBYLEX",
    b"ZRANGEBYSCORE", b"ZRANGESTORE", b"ZRANK", b"ZREM", b"ZREMRANGEBYLEX", b"ZREMRANGEBYRANK",
    b"ZREMRANGEBYSCORE", b"ZREVRANGE", b"ZREVRANGEBYLEX", b"ZREVRANGEBYSCORE", b"ZREVRANK",
    b"ZSCAN", b"ZSCORE", b"ZUNION", b"ZUNIONSTORE",
];

/// Redis commands that memcached has too, in lowercase (uppercase, sorted).
#[rustfmt::skip]
static MEMCACHED_TOO: &[&[u8]] = &[
    b"APPEND", b"DECR", b"GET", b"INCR", b"QUIT", b"SET", b"SHUTDOWN", b"TOUCH", b"WATCH",
];

/// What an unanswered request expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Asked {
    /// `SYNC`/`PSYNC`: an RDB (after `+FULLRESYNC` for `PSYNC`).
    Sync,
    /// A (un)subscription: one confirmation per channel, the first one answers it.
    Subscribe {
        channels: u64,
    },
    /// `MONITOR`: after its `+OK`, every command the server runs, pushed.
    Monitor,
    Other,
}

/// What the server side sends.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Mode {
    #[default]
    Replies,
    /// `+FULLRESYNC` said: the RDB comes next.
    AwaitRdb,
    /// A replication stream: commands, one-way.
    Stream,
    /// `MONITOR` answered: the server pushes what it runs.
    Monitor,
}

#[derive(Default)]
struct RespDecoder {
    walker: Walker,
    /// Scratch: the current command's arguments (where they lie, and their whole lengths).
    args: Vec<(Range<usize>, u64)>,
    /// Per side: values still to come of a message whose head filled the buffer.
    continuation: [u64; 2],
    server: Mode,
    /// A diskless RDB longer than the buffer: its end marker is still to come.
    rdb_marker: Option<[u8; 40]>,
    waiting: VecDeque<Asked>,
    /// Confirmations of channels after a (un)subscription's first: pushes, not answers.
    extra_confirmations: u64,
    /// The client subscribed (RESP2 `message` arrays are pushes).
    subscribed: bool,
    /// Between `MULTI` and `EXEC`: commands are queued, not run.
    in_multi: bool,
}

impl Decoder for RespDecoder {
    fn parse(&mut self, side: Side, buf: &[u8], full: bool) -> Parse {
        let Some(&first) = buf.first() else {
            return Parse::Need;
        };
        if side == Side::Server {
            if let Some(marker) = self.rdb_marker {
                return self.rdb_rest(buf, full, &marker);
            }
        }
        let s = side.index();
        if self.continuation[s] > 0 {
            return match self.walker.walk(buf, full, Shape::Any) {
                Walked::Value { len, remaining, .. } => {
                    self.continuation[s] = self.continuation[s] - 1 + remaining;
                    Parse::Frame { len, message: None }
                }
                Walked::Need => Parse::Need,
                Walked::Invalid => Parse::Invalid,
            };
        }
        if first == b'\n' {
            // A newline alone: what a primary sends a waiting replica (and a loading replica
            // its primary) to keep the link alive; an empty inline command.
            return Parse::Frame {
                len: 1,
                message: None,
            };
        }
        match side {
            Side::Client => self.client(buf, full),
            Side::Server => self.server(buf, full),
        }
    }

    fn lost(&mut self, side: Side) {
        self.continuation[side.index()] = 0;
        // Which request a reply answers is no longer known.
        self.waiting.clear();
        self.extra_confirmations = 0;
    }
}

impl RespDecoder {
    fn client(&mut self, buf: &[u8], full: bool) -> Parse {
        self.args.clear();
        let (len, argc, truncated) = if buf[0] == b'*' {
            match self.walker.walk(buf, full, Shape::Command) {
                Walked::Value {
                    len,
                    cut,
                    remaining,
                } => {
                    self.continuation[0] = remaining;
                    let tokens = &self.walker.tokens;
                    let argc = tokens[0].size.unwrap_or(0);
                    self.args.extend(
                        tokens[1..]
                            .iter()
                            .map(|t| (t.data.clone(), t.size.unwrap_or(0))),
                    );
                    (len, argc, cut || remaining > 0)
                }
                Walked::Need => return Parse::Need,
                Walked::Invalid => return Parse::Invalid,
            }
        } else {
            // An inline command: words on a line. Redis takes `\n` alone as its end too.
            // Only known commands: after missed bytes, decoding may pick up inside a value,
            // whose text would otherwise pass for a command.
            let word = buf.iter().take_while(|b| is_word_byte(**b)).count();
            let known = match buf.get(word) {
                None => {
                    return if full || word > 64 {
                        Parse::Invalid
                    } else {
                        Parse::Need
                    }
                }
                Some(b' ' | b'\t' | b'\r') if word > 0 => is_command(&buf[..word]),
                Some(b'\r') => buf.get(1).is_none_or(|&b| b == b'\n'),
                Some(_) => false,
            };
            if !known {
                return Parse::Invalid;
            }
            let Some(nl) = buf[word..].iter().position(|&b| b == b'\n') else {
                return if full { Parse::Invalid } else { Parse::Need };
            };
            let nl = word + nl;
            let line = &buf[..nl];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let mut at = 0;
            for word in line.split(|&b| b == b' ' || b == b'\t') {
                if !word.is_empty() {
                    self.args.push((at..at + word.len(), word.len() as u64));
                }
                at += word.len() + 1;
            }
            (nl as u64 + 1, self.args.len() as u64, false)
        };
        if argc == 0 {
            // Redis ignores empty commands.
            return Parse::Frame { len, message: None };
        }
        let mut message = command(buf, &self.args, argc, truncated, Role::Request);
        let arg = |i: usize| self.args.get(i).map(|(r, _)| &buf[r.clone()]);
        let sub = arg(1).unwrap_or_default();
        match message.op.as_str() {
            // Acknowledgements of a replica's offset are never answered.
            "REPLCONF" if sub.eq_ignore_ascii_case(b"ACK") => message.role = Role::OneWay,
            "MULTI" => self.in_multi = true,
            "EXEC" | "DISCARD" => self.in_multi = false,
            "RESET" => {
                self.in_multi = false;
                self.subscribed = false;
            }
            _ => {}
        }
        if self.in_multi && message.op != "MULTI" {
            // Queued, not run: `+QUEUED` says nothing of the operation.
            message.kv_request = None;
        }
        if message.role == Role::Request {
            let asked = match message.op.as_str() {
                "SYNC" | "PSYNC" => Asked::Sync,
                "MONITOR" => Asked::Monitor,
                "SUBSCRIBE" | "PSUBSCRIBE" | "SSUBSCRIBE" => {
                    self.subscribed = true;
                    Asked::Subscribe { channels: argc - 1 }
                }
                "UNSUBSCRIBE" | "PUNSUBSCRIBE" | "SUNSUBSCRIBE" => {
                    Asked::Subscribe { channels: argc - 1 }
                }
                _ => Asked::Other,
            };
            if self.waiting.len() >= MAX_PENDING {
                self.waiting.pop_front();
            }
            self.waiting.push_back(asked);
        }
        Parse::Frame {
            len,
            message: Some(message),
        }
    }

    fn server(&mut self, buf: &[u8], full: bool) -> Parse {
        match (self.server, buf[0]) {
            (Mode::AwaitRdb, b'$') => return self.rdb(buf, full, Role::OneWay),
            // The RDB was missed: the stream has started.
            (Mode::AwaitRdb, b'*') => self.server = Mode::Stream,
            (Mode::Replies, b'$') if self.waiting.front() == Some(&Asked::Sync) => {
                return self.rdb(buf, full, Role::Response);
            }
            _ => {}
        }
        let (len, truncated) = match self.walker.walk(buf, full, Shape::Any) {
            Walked::Value {
                len,
                cut,
                remaining,
            } => {
                self.continuation[1] = remaining;
                (len, cut || remaining > 0)
            }
            Walked::Need => return Parse::Need,
            Walked::Invalid => return Parse::Invalid,
        };
        let message = if self.server == Mode::Stream {
            self.replicated(buf, truncated)
        } else {
            self.reply(buf, truncated)
        };
        Parse::Frame {
            len,
            message: Some(message),
        }
    }

    /// A command of a replication stream, one-way.
    fn replicated(&mut self, buf: &[u8], truncated: bool) -> Message {
        let tokens = &self.walker.tokens;
        let is_command = tokens[0].kind == b'*'
            && tokens[0].size.unwrap_or(0) > 0
            && tokens[1..]
                .iter()
                .all(|t| t.kind == b'$' && t.size.is_some());
        if is_command {
            self.args.clear();
            self.args.extend(
                tokens[1..]
                    .iter()
                    .map(|t| (t.data.clone(), t.size.unwrap_or(0))),
            );
            let argc = tokens[0].size.unwrap_or(0);
            return command(buf, &self.args, argc, truncated, Role::OneWay);
        }
        // Not a command (a primary sends none other): shown as a reply would be.
        let mut text = String::new();
        render(buf, tokens, &mut 0, &mut text, 0);
        let mut message = Message::new(Role::OneWay, (tokens[0].kind as char).to_string(), text);
        message.truncated = truncated;
        message
    }

    fn reply(&mut self, buf: &[u8], truncated: bool) -> Message {
        let tokens = &self.walker.tokens;
        let mut text = String::new();
        render(buf, tokens, &mut 0, &mut text, 0);
        // The reply itself, past any attribute (a map of `size` keys and values).
        let mut at = 0;
        while let Some(attribute) = tokens.get(at).filter(|t| t.kind == b'|') {
            at += 1;
            for _ in 0..attribute.size.unwrap_or(0) {
                if at >= tokens.len() {
                    break;
                }
                skip(tokens, &mut at);
            }
        }
        let Some(main) = tokens.get(at) else {
            let mut message = Message::new(Role::Response, "|", text);
            message.truncated = truncated;
            self.answered(Role::Response);
            return message;
        };
        let data = &buf[main.data.clone()];
        let op = match main.kind {
            b'+' | b'-' => {
                let word = data.split(|&b| b == b' ').next().unwrap_or_default();
                let mut op = String::from(main.kind as char);
                push_summary(&mut op, word, word.len());
                op
            }
            kind => (kind as char).to_string(),
        };
        let mut role = Role::Response;
        let mut kv_response = None;
        match main.kind {
            b'+' if data.starts_with(b"FULLRESYNC") => self.server = Mode::AwaitRdb,
            b'+' if data.starts_with(b"CONTINUE") => self.server = Mode::Stream,
            _ if self.server == Mode::Monitor => role = Role::OneWay,
            b'+' if data == b"OK" => {
                if self.waiting.front() == Some(&Asked::Monitor) {
                    self.server = Mode::Monitor;
                }
                kv_response = Some(KvResponse::Ok);
            }
            b'-' | b'!' => kv_response = Some(error_outcome(data)),
            b'$' => {
                let value = main.size.map(|_| lossy(data));
                kv_response = Some(KvResponse::Value(value));
            }
            b'_' => kv_response = Some(KvResponse::Value(None)),
            b'*' | b'>' => role = self.pushed(buf, at, main.kind),
            _ => {}
        }
        self.answered(role);
        Message {
            role,
            op,
            text,
            stream: None,
            kv_request: None,
            kv_response: if role == Role::Response {
                kv_response
            } else {
                None
            },
            truncated,
        }
    }

    /// Whether the array or push whose token is at `at` answers a request or is pushed:
    /// pub/sub messages and confirmations of channels after the first are pushed.
    fn pushed(&mut self, buf: &[u8], at: usize, kind: u8) -> Role {
        let tokens = &self.walker.tokens;
        let default = if kind == b'>' {
            Role::OneWay
        } else {
            Role::Response
        };
        let Some(name) = tokens
            .get(at + 1)
            .filter(|t| matches!(t.kind, b'$' | b'+') && tokens[at].size >= Some(3))
            .map(|t| &buf[t.data.clone()])
        else {
            return default;
        };
        let is_any = |words: &[&[u8]]| words.iter().any(|w| name.eq_ignore_ascii_case(w));
        let message = is_any(&[b"message", b"pmessage", b"smessage"]);
        let confirmation = is_any(&[
            b"subscribe",
            b"psubscribe",
            b"ssubscribe",
            b"unsubscribe",
            b"punsubscribe",
            b"sunsubscribe",
        ]);
        if message && (self.subscribed || kind == b'>') {
            return Role::OneWay;
        }
        if !confirmation {
            return default;
        }
        let was_subscribed = self.subscribed;
        // The last element counts the subscriptions left.
        let last = &tokens[tokens.len() - 1];
        if last.kind == b':' && &buf[last.data.clone()] == b"0" {
            self.subscribed = false;
        }
        if self.extra_confirmations > 0 {
            self.extra_confirmations -= 1;
            Role::OneWay
        } else if let Some(Asked::Subscribe { channels }) = self.waiting.front() {
            self.extra_confirmations = channels.saturating_sub(1);
            Role::Response
        } else if was_subscribed {
            // Not asked for: one of several channels an `UNSUBSCRIBE` without arguments
            // dropped, or an unsubscription the server decided.
            Role::OneWay
        } else {
            default
        }
    }

    fn answered(&mut self, role: Role) {
        if role == Role::Response {
            self.waiting.pop_front();
        }
    }

    /// The RDB a primary sends a replica: `$<len>\r\n` and its bytes without `\r\n`, or
    /// `$EOF:<40 bytes>\r\n`, its bytes, and the same 40 bytes (diskless replication).
    fn rdb(&mut self, buf: &[u8], full: bool, role: Role) -> Parse {
        let cr = match line_end(buf, 1, HEADER_MAX) {
            Line::At(cr) => cr,
            Line::Short if !full => return Parse::Need,
            _ => return Parse::Invalid,
        };
        let head = &buf[1..cr];
        let start = cr + 2;
        let mut message = Message::new(role, "RDB", "");
        if let Some(marker) = head.strip_prefix(b"EOF:") {
            let Ok(marker) = <[u8; 40]>::try_from(marker) else {
                return Parse::Invalid;
            };
            let len = match find(&buf[start..], &marker) {
                Some(at) => {
                    message.text = format!("RDB {at} bytes diskless");
                    start + at + marker.len()
                }
                None if !full => return Parse::Need,
                None => {
                    // Longer than the buffer: its end is looked for in what follows.
                    self.rdb_marker = Some(marker);
                    message.text = "RDB diskless …".to_string();
                    message.truncated = true;
                    self.answered(role);
                    return Parse::Frame {
                        len: (buf.len() + 1).saturating_sub(marker.len()).max(start) as u64,
                        message: Some(message),
                    };
                }
            };
            self.server = Mode::Stream;
            self.answered(role);
            return Parse::Frame {
                len: len as u64,
                message: Some(message),
            };
        }
        let Some(n) = walk::integer(head).filter(|&n| n >= 0) else {
            return Parse::Invalid;
        };
        let len = start as u64 + n as u64;
        if len > buf.len() as u64 && !full {
            return Parse::Need;
        }
        message.text = format!("RDB {n} bytes");
        message.truncated = len > buf.len() as u64;
        self.server = Mode::Stream;
        self.answered(role);
        Parse::Frame {
            len,
            message: Some(message),
        }
    }

    /// The rest of a diskless RDB longer than the buffer: up to its end marker.
    fn rdb_rest(&mut self, buf: &[u8], full: bool, marker: &[u8; 40]) -> Parse {
        match find(buf, marker) {
            Some(at) => {
                self.rdb_marker = None;
                self.server = Mode::Stream;
                Parse::Frame {
                    len: (at + marker.len()) as u64,
                    message: None,
                }
            }
            // Keep what may be the start of the marker.
            None if full => Parse::Frame {
                len: (buf.len() + 1).saturating_sub(marker.len()).max(1) as u64,
                message: None,
            },
            None => Parse::Need,
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Arguments shown in a command's text; more are counted.
const ARGS_SHOWN: usize = 16;

/// A command with its arguments (`args` as seen, `argc` as declared): `SET k3 v7`.
fn command(
    buf: &[u8],
    args: &[(Range<usize>, u64)],
    argc: u64,
    truncated: bool,
    role: Role,
) -> Message {
    let arg = |i: usize| args.get(i).map(|(r, _)| &buf[r.clone()]);
    let name = arg(0).unwrap_or_default();
    let mut op = String::new();
    push_summary(&mut op, name, name.len());
    op.make_ascii_uppercase();
    let room: usize = args
        .iter()
        .map(|(r, _)| r.len().min(SUMMARY_MAX + 16) + 1)
        .sum();
    let mut text = String::with_capacity(room);
    text.push_str(&op);
    for (range, size) in args.iter().skip(1).take(ARGS_SHOWN) {
        text.push(' ');
        push_summary(&mut text, &buf[range.clone()], *size as usize);
    }
    let shown = args.len().min(ARGS_SHOWN + 1) as u64;
    if argc > shown {
        text.push_str(&format!(" …({} args)", argc - 1));
    }
    let string = |i: usize| lossy(arg(i).unwrap_or_default());
    // Only the plain forms: `SET k v NX`, `XX`, `GET`, `EX`... are conditional, return the old
    // value or expire, which a read/write register cannot express.
    let kv_request = match (op.as_str(), argc) {
        ("GET", 2) => Some(KvRequest::Read { key: string(1) }),
        ("SET", 3) => Some(KvRequest::Write {
            key: string(1),
            value: string(2),
        }),
        _ => None,
    };
    Message {
        role,
        op,
        text,
        stream: None,
        kv_request,
        kv_response: None,
        truncated,
    }
}

/// What an error reply says of the operation. Redis checks a command (arguments, types,
/// role, memory, scripts running, loading) before running it, so an error means it did not
/// run; a timeout (from a proxy, say) does not tell.
fn error_outcome(message: &[u8]) -> KvResponse {
    let lower = message.to_ascii_lowercase();
    let unsure = [&b"timeout"[..], b"timed out", b"connection", b"upstream"];
    if unsure.iter().any(|w| find(&lower, w).is_some()) {
        KvResponse::Unknown
    } else {
        KvResponse::Fail
    }
}

#[cfg(test)]
mod tests;
