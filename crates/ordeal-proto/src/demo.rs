//! The line protocol of ordeal's demo KV store (crates/ordeal-demo/src/wire.rs): one message
//! per `\n`-ended line, words separated by spaces.
//!
//! A client asks `SET key value`, `GET key`, `ROLE`, `SEQ` or `JOIN id`; the node answers `OK`,
//! `VALUE v`, `NOTFOUND`, `NOTPRIMARY`, `ERR reason`, its role (`PRIMARY`, `BACKUP`,
//! `ELECTING`, `CANDIDATE`) or `SEQ n` (its state's last write). `JOIN` (a backup joining its primary) turns the connection into
//! replication: the primary answers with `SNAPSHOT seq count` and `count` lines `KV key value`,
//! the backup acknowledges with `ACK seq`, then the primary sends each write as
//! `REPL seq key value` and the backup answers each with `ACK seq`. From then on the side that
//! accepted the connection asks and the side that connected answers.

use crate::{
    summarize, Decoder, Detect, KvRequest, KvResponse, Message, Parse, Protocol, Role, Side,
};

/// The demo KV store's protocol.
pub struct DemoKv;

/// What a client's first line may start with.
const REQUESTS: [&[u8]; 5] = [b"SET", b"GET", b"ROLE", b"SEQ", b"JOIN"];
/// Longest line a node accepts (wire.rs's `MAX_LINE`).
const MAX_LINE: usize = 64 * 1024;
/// Words shown in a text; more are counted.
const WORDS_SHOWN: usize = 16;

impl Protocol for DemoKv {
    fn name(&self) -> &'static str {
        "demo-kv"
    }

    /// A client's first line: a request word (`SET`, `GET`, `ROLE`, `SEQ`, `JOIN`, uppercase) then a
    /// space or the `\n` that ends the line, which holds no `\r` (RESP's inline commands end
    /// in `\r\n`). Nodes never speak first.
    fn detect(&self, side: Side, first: &[u8]) -> Detect {
        if side == Side::Server {
            return Detect::No;
        }
        let word = first.iter().take_while(|b| b.is_ascii_uppercase()).count();
        if word == first.len() {
            let prefix = REQUESTS.iter().any(|r| r.starts_with(first));
            return if prefix { Detect::Maybe } else { Detect::No };
        }
        if !REQUESTS.contains(&&first[..word]) || !matches!(first[word], b' ' | b'\n') {
            return Detect::No;
        }
        match first.iter().position(|&b| b == b'\n') {
            _ if first.contains(&b'\r') => Detect::No,
            Some(_) => Detect::Yes,
            None if first.len() < 1024 => Detect::Maybe,
            None => Detect::No,
        }
    }

    fn decoder(&self) -> Box<dyn Decoder> {
        Box::<DemoDecoder>::default()
    }
}

#[derive(Default)]
struct DemoDecoder {
    /// The primary sent a snapshot: the backup's next `ACK` acknowledges it, it answers no
    /// `REPL`.
    snapshot_ack_due: bool,
}

impl Decoder for DemoDecoder {
    fn parse(&mut self, side: Side, buf: &[u8], full: bool) -> Parse {
        let Some(nl) = buf.iter().take(MAX_LINE + 1).position(|&b| b == b'\n') else {
            // A longer line is refused by the node too (`ERR line longer than ...`).
            return if full || buf.len() > MAX_LINE {
                Parse::Invalid
            } else {
                Parse::Need
            };
        };
        let line = &buf[..nl];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let words: Vec<&[u8]> = line
            .split(|&b| b == b' ')
            .filter(|w| !w.is_empty())
            .collect();
        let op = words.first().map(|w| word(w)).unwrap_or_default();
        let mut text = String::new();
        for (i, w) in words.iter().take(WORDS_SHOWN).enumerate() {
            if i > 0 {
                text.push(' ');
            }
            text.push_str(&summarize(w, w.len()).text);
        }
        if words.len() > WORDS_SHOWN {
            text.push_str(&format!(" …({} words)", words.len()));
        }
        let string = |i: usize| String::from_utf8_lossy(words[i]).into_owned();
        let mut message = Message::new(Role::Response, op, text);
        match (side, message.op.as_str(), words.len()) {
            (Side::Client, "ACK", _) => {
                if std::mem::take(&mut self.snapshot_ack_due) {
                    message.role = Role::OneWay;
                }
            }
            (Side::Client, "SET", 3) => {
                message.role = Role::Request;
                message.kv_request = Some(KvRequest::Write {
                    key: string(1),
                    value: string(2),
                });
            }
            (Side::Client, "GET", 2) => {
                message.role = Role::Request;
                message.kv_request = Some(KvRequest::Read { key: string(1) });
            }
            // Anything else a client sends is answered, if only by `ERR`.
            (Side::Client, _, _) => message.role = Role::Request,
            // A replicated write: the backup applies it. Not a key-value operation of the
            // history: the client's `SET` it copies is.
            (Side::Server, "REPL", _) => message.role = Role::Request,
            (Side::Server, "SNAPSHOT", _) => self.snapshot_ack_due = true,
            (Side::Server, "KV", _) => message.role = Role::OneWay,
            (Side::Server, "OK", 1) => message.kv_response = Some(KvResponse::Ok),
            (Side::Server, "VALUE", 2) => {
                message.kv_response = Some(KvResponse::Value(Some(string(1))));
            }
            (Side::Server, "NOTFOUND", 1) => message.kv_response = Some(KvResponse::Value(None)),
            // Refused before anything changed: a backup does not take writes, a failed
            // persist leaves the state as it was.
            (Side::Server, "NOTPRIMARY", 1) | (Side::Server, "ERR", _) => {
                message.kv_response = Some(KvResponse::Fail);
            }
            (Side::Server, _, _) => {}
        }
        Parse::Frame {
            len: nl as u64 + 1,
            message: Some(message),
        }
    }

    fn lost(&mut self, _side: Side) {
        self.snapshot_ack_due = false;
    }
}

fn word(w: &[u8]) -> String {
    summarize(w, w.len()).text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Conversation, Framed};

    fn frames(chunks: &[(Side, &[u8])]) -> Vec<Framed> {
        let mut conv = Conversation::new(Some(&DemoKv));
        let mut at = [0u64; 2];
        let mut out = Vec::new();
        for (side, bytes) in chunks {
            out.extend(conv.feed(*side, at[side.index()], bytes, true));
            at[side.index()] += bytes.len() as u64;
        }
        out
    }

    const C: Side = Side::Client;
    const S: Side = Side::Server;

    #[test]
    fn detection_wants_a_request_word_and_no_carriage_return() {
        for (first, want) in [
            (&b"SET k v\n"[..], Detect::Yes),
            (b"GET k\n", Detect::Yes),
            (b"ROLE\n", Detect::Yes),
            (b"JOIN 2\n", Detect::Yes),
            (b"SET k v", Detect::Maybe),
            (b"RO", Detect::Maybe),
            (b"", Detect::Maybe),
            (b"SET k v\r\n", Detect::No),
            (b"GET / HTTP/1.1\r\n", Detect::No),
            (b"get k\n", Detect::No),
            (b"SETX k\n", Detect::No),
            (b"*1\r\n", Detect::No),
        ] {
            assert_eq!(DemoKv.detect(C, first), want, "{first:?}");
        }
        assert_eq!(DemoKv.detect(S, b"OK\n"), Detect::No);
    }

    #[test]
    fn client_requests_and_replies() {
        let got = frames(&[
            (C, b"SET k3 v7\nGET k3\nGET nope\nROLE\nSET a\nDEL a\n"),
            (
                S,
                b"OK\nVALUE v7\nNOTFOUND\nPRIMARY\nERR usage: SET key value\nERR unknown command \"DEL\"\n",
            ),
        ]);
        let described: Vec<_> = got
            .iter()
            .map(|f| {
                let m = &f.message;
                (
                    f.side,
                    m.role,
                    m.op.as_str(),
                    m.text.as_str(),
                    m.kv_request.clone(),
                    m.kv_response.clone(),
                )
            })
            .collect();
        let read = |k: &str| Some(KvRequest::Read { key: k.into() });
        assert_eq!(
            described,
            [
                (
                    C,
                    Role::Request,
                    "SET",
                    "SET k3 v7",
                    Some(KvRequest::Write {
                        key: "k3".into(),
                        value: "v7".into()
                    }),
                    None
                ),
                (C, Role::Request, "GET", "GET k3", read("k3"), None),
                (C, Role::Request, "GET", "GET nope", read("nope"), None),
                (C, Role::Request, "ROLE", "ROLE", None, None),
                (C, Role::Request, "SET", "SET a", None, None),
                (C, Role::Request, "DEL", "DEL a", None, None),
                (S, Role::Response, "OK", "OK", None, Some(KvResponse::Ok)),
                (
                    S,
                    Role::Response,
                    "VALUE",
                    "VALUE v7",
                    None,
                    Some(KvResponse::Value(Some("v7".into())))
                ),
                (
                    S,
                    Role::Response,
                    "NOTFOUND",
                    "NOTFOUND",
                    None,
                    Some(KvResponse::Value(None))
                ),
                (S, Role::Response, "PRIMARY", "PRIMARY", None, None),
                (
                    S,
                    Role::Response,
                    "ERR",
                    "ERR usage: SET key value",
                    None,
                    Some(KvResponse::Fail)
                ),
                (
                    S,
                    Role::Response,
                    "ERR",
                    "ERR unknown command \"DEL\"",
                    None,
                    Some(KvResponse::Fail)
                ),
            ]
        );
        assert_eq!((got[1].start, got[1].end), (10, 17));
    }

    #[test]
    fn after_join_the_primary_asks_and_the_backup_answers() {
        let got = frames(&[
            (C, b"JOIN 1\n"),
            (S, b"SNAPSHOT 4 2\nKV a 1\nKV b 2\n"),
            (C, b"ACK 4\n"),
            (S, b"REPL 5 a 3\n"),
            (C, b"ACK 5\n"),
        ]);
        let roles: Vec<_> = got
            .iter()
            .map(|f| (f.side, f.message.role, f.message.text.as_str()))
            .collect();
        assert_eq!(
            roles,
            [
                (C, Role::Request, "JOIN 1"),
                (S, Role::Response, "SNAPSHOT 4 2"),
                (S, Role::OneWay, "KV a 1"),
                (S, Role::OneWay, "KV b 2"),
                (C, Role::OneWay, "ACK 4"),
                (S, Role::Request, "REPL 5 a 3"),
                (C, Role::Response, "ACK 5"),
            ]
        );
    }

    #[test]
    fn a_line_longer_than_a_node_accepts_is_not_decoded() {
        let mut dec = DemoDecoder::default();
        let long = vec![b'x'; MAX_LINE + 1];
        assert_eq!(dec.parse(C, &long, false), Parse::Invalid);
        assert_eq!(dec.parse(C, &long[..10], true), Parse::Invalid);
        assert_eq!(dec.parse(C, &long[..10], false), Parse::Need);
        // A trailing `\r` is dropped, as the node does.
        let Parse::Frame { len, message } = dec.parse(C, b"GET k\r\nX", false) else {
            panic!("not a frame");
        };
        assert_eq!((len, message.unwrap().text), (7, "GET k".to_string()));
    }
}
