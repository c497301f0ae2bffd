//! docs/protocols.md stays true: every row of its message tables is what the decoders make
//! of its bytes, and its code is the crate's.

use ordeal_proto::{by_name, Conversation, KvRequest, KvResponse, Message, Role, Side};

const DOC: &str = include_str!("../../../docs/protocols.md");
const LIB: &str = include_str!("../src/lib.rs");
const BENCH: &str = include_str!("../examples/decode_bench.rs");
const TABLE_HEADER: &str = "| Sent by | Bytes | Role | op | text | key-value |";

/// `\r`, `\n`, `\\`, `\xNN` as in a Rust byte string.
fn unescape(s: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'\\' {
            out.push(bytes[i]);
            i += 1;
            continue;
        }
        match bytes.get(i + 1) {
            Some(b'r') => out.push(b'\r'),
            Some(b'n') => out.push(b'\n'),
            Some(b'\\') => out.push(b'\\'),
            Some(b'x') => {
                let hex = &s[i + 2..i + 4];
                out.push(u8::from_str_radix(hex, 16).expect(hex));
                i += 2;
            }
            other => panic!("unknown escape {other:?} in {s}"),
        }
        i += 2;
    }
    out
}

fn code(cell: &str) -> &str {
    let cell = cell.trim();
    cell.strip_prefix('`')
        .and_then(|c| c.strip_suffix('`'))
        .unwrap_or(cell)
}

/// The key-value column as the doc writes it.
fn kv(message: &Message) -> String {
    let request = match &message.kv_request {
        Some(KvRequest::Read { key }) => format!("read {key}"),
        Some(KvRequest::Write { key, value }) => format!("write {key} {value}"),
        Some(KvRequest::Cas { key, old, new }) => format!("cas {key} {old} {new}"),
        None => String::new(),
    };
    let response = match &message.kv_response {
        Some(KvResponse::Ok) => "ok".to_string(),
        Some(KvResponse::Value(Some(v))) => format!("value {v}"),
        Some(KvResponse::Value(None)) => "no value".to_string(),
        Some(KvResponse::Fail) => "fail".to_string(),
        Some(KvResponse::Unknown) => "unknown".to_string(),
        None => String::new(),
    };
    format!("{request}{response}")
}

/// Each message table of the doc: the protocol of its section and its rows' cells.
fn tables() -> Vec<(&'static str, Vec<Vec<String>>)> {
    let mut out: Vec<(&str, Vec<Vec<String>>)> = Vec::new();
    let mut protocol = "";
    let mut in_table = false;
    for line in DOC.lines() {
        if let Some(title) = line.strip_prefix("## ") {
            protocol = match title {
                t if t.starts_with("RESP") => "resp",
                t if t.contains("demo-kv") => "demo-kv",
                t if t.starts_with("memcached") => "memcached",
                _ => "",
            };
        }
        if line == TABLE_HEADER {
            assert_ne!(protocol, "", "a message table outside a protocol's section");
            out.push((protocol, Vec::new()));
            in_table = true;
        } else if in_table && line.starts_with("|--") {
        } else if in_table && line.starts_with('|') {
            let cells = line.trim().trim_matches('|').split('|');
            let row: Vec<String> = cells.map(|c| code(c).to_string()).collect();
            assert_eq!(row.len(), 6, "{line}");
            if let Some(table) = out.last_mut() {
                table.1.push(row);
            }
        } else {
            in_table = false;
        }
    }
    out
}

#[test]
fn every_table_row_is_what_the_decoder_makes_of_its_bytes() {
    let tables = tables();
    let protocols: Vec<&str> = tables.iter().map(|t| t.0).collect();
    assert_eq!(
        protocols,
        ["resp", "resp", "demo-kv", "demo-kv", "memcached"]
    );
    for (protocol, rows) in tables {
        assert!(!rows.is_empty(), "{protocol}: an empty table");
        let mut conv = Conversation::new(by_name(protocol));
        let mut at = [0u64; 2];
        for row in rows {
            let side = match row[0].as_str() {
                "client" => Side::Client,
                "server" => Side::Server,
                other => panic!("sent by {other}"),
            };
            let bytes = unescape(&row[1]);
            let frames = conv.feed(side, at[side.index()], &bytes, true);
            at[side.index()] += bytes.len() as u64;
            assert_eq!(frames.len(), 1, "{protocol}: {row:?} made {frames:?}");
            let message = &frames[0].message;
            let role = match message.role {
                Role::Request => "request",
                Role::Response => "response",
                Role::OneWay => "one-way",
            };
            let got = [role, &message.op, &message.text, &kv(message)];
            assert_eq!(
                got,
                [&row[2], &row[3], &row[4], &row[5]],
                "{protocol}: {row:?}"
            );
        }
    }
}

/// The fenced blocks of the doc: (language, body).
fn blocks() -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut current: Option<(String, String)> = None;
    for line in DOC.lines() {
        match (&mut current, line.strip_prefix("```")) {
            (None, Some(lang)) => current = Some((lang.to_string(), String::new())),
            (Some(_), Some(_)) => out.extend(current.take()),
            (Some((_, body)), None) => {
                body.push_str(line);
                body.push('\n');
            }
            (None, None) => {}
        }
    }
    assert!(current.is_none(), "unclosed block");
    out
}

#[test]
fn the_code_shown_is_the_crate_s() {
    let lib_lines: Vec<&str> = LIB.lines().map(str::trim).collect();
    let blocks = blocks();
    let langs: Vec<&str> = blocks.iter().map(|b| b.0.as_str()).collect();
    assert_eq!(langs, ["sh", "rust", "rust"]);
    for (_, body) in blocks.iter().filter(|b| b.0 == "rust") {
        for line in body.lines().map(str::trim).filter(|l| !l.is_empty()) {
            assert!(lib_lines.contains(&line), "not in lib.rs: {line}");
        }
    }
    // The one command: the bench, as its source says to run it.
    let command = blocks[0].1.trim();
    assert_eq!(
        command,
        "cargo run --release -p ordeal-proto --example decode_bench -- 1024"
    );
    assert!(BENCH.contains(&format!("`{command}`")));
}
