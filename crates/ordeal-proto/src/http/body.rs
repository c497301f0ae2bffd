//! A body on one line: JSON compacted and cut, text summarized, anything else described.

use crate::summarize;

/// Characters of a body's text in a message, about.
pub(super) const BODY_MAX: usize = 120;

/// Characters of a JSON string kept; longer strings are cut to [`STRING_KEPT`] and `…`.
const STRING_MAX: usize = 24;
const STRING_KEPT: usize = 20;

/// How long a body is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Size {
    /// This many bytes (of data, for a chunked body).
    Known(u64),
    /// Chunked and cut: at least this many bytes of data.
    AtLeast(u64),
    /// Until the connection closes.
    UntilClose,
}

/// The body `seen` (all of it when `size` is `Known` and equal to its length) as a
/// message shows it; empty for an empty body.
pub(super) fn describe(seen: &[u8], size: Size, content_type: Option<&[u8]>) -> String {
    let kind = content_type
        .map(|t| format!(" {}", summarize(t, t.len()).text))
        .unwrap_or_default();
    let total = match size {
        Size::Known(0) => return String::new(),
        Size::UntilClose => return format!("<body until close{kind}>"),
        Size::AtLeast(n) => return format!("<{n}+ bytes{kind}>"),
        Size::Known(n) => n,
    };
    let complete = seen.len() as u64 == total;
    if complete {
        if let Some(json) = json(seen) {
            return json;
        }
    }
    if is_text(seen) {
        return summarize(seen, usize::try_from(total).unwrap_or(usize::MAX)).text;
    }
    format!("<{total} bytes{kind}>")
}

/// Text a person reads: UTF-8 without control characters other than tabs and line ends.
fn is_text(bytes: &[u8]) -> bool {
    std::str::from_utf8(bytes).is_ok_and(|s| {
        s.chars()
            .all(|c| !c.is_control() || matches!(c, '\t' | '\r' | '\n'))
    })
}

/// `bytes` as compact JSON, strings cut, at most about [`BODY_MAX`] characters; `None`
/// when they are not a JSON object or array.
pub(super) fn json(bytes: &[u8]) -> Option<String> {
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace())?;
    if *first != b'{' && *first != b'[' {
        return None;
    }
    serde_json::from_slice::<serde_json::Value>(bytes).ok()?;
    // Valid JSON is UTF-8.
    let text = std::str::from_utf8(bytes).ok()?;
    Some(cut(&compact(text), BODY_MAX))
}

/// `text` with at most `max` characters, a cut one ending with `…`.
fn cut(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        None => text.to_string(),
        Some(_) => {
            let mut out: String = text.chars().take(max - 1).collect();
            out.push('…');
            out
        }
    }
}

/// Valid JSON without insignificant whitespace and with long strings cut. The source's
/// order of object members is kept (a parsed `Value` would sort them).
fn compact(json: &str) -> String {
    let mut out = String::with_capacity(json.len().min(4 * BODY_MAX));
    let mut chars = json.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                // A string's characters, an escape sequence counting as one.
                let mut units: Vec<&str> = Vec::new();
                let rest = chars.as_str();
                let mut at = rest.len();
                let mut iter = rest.char_indices();
                while let Some((i, c)) = iter.next() {
                    match c {
                        '"' => {
                            at = i + 1;
                            break;
                        }
                        '\\' => {
                            let len = match iter.next() {
                                Some((_, 'u')) => {
                                    iter.nth(3);
                                    6
                                }
                                Some(_) => 2,
                                None => 1,
                            };
                            units.push(rest.get(i..i + len).unwrap_or(""));
                        }
                        _ => units.push(&rest[i..i + c.len_utf8()]),
                    }
                }
                chars = rest[at..].chars();
                out.push('"');
                if units.len() > STRING_MAX {
                    units[..STRING_KEPT].iter().for_each(|u| out.push_str(u));
                    out.push('…');
                } else {
                    units.iter().for_each(|u| out.push_str(u));
                }
                out.push('"');
            }
            c if c.is_ascii_whitespace() => {}
            c => out.push(c),
        }
        if out.len() > 4 * BODY_MAX {
            // Enough for the cut that follows.
            break;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_is_compacted_in_its_order_with_long_strings_cut() {
        assert_eq!(
            json(br#" { "value" : "djc=", "key":"azM=" , "n": [1, 2.5, true, null] }"#).as_deref(),
            Some(r#"{"value":"djc=","key":"azM=","n":[1,2.5,true,null]}"#)
        );
        let long = format!(r#"{{"s":"{}","t":"a\"b\u00e9 c"}}"#, "x".repeat(30));
        assert_eq!(
            json(long.as_bytes()).as_deref(),
            Some(r#"{"s":"xxxxxxxxxxxxxxxxxxxx…","t":"a\"b\u00e9 c"}"#)
        );
        let escapes = format!(r#"["{}"]"#, r"\n".repeat(30));
        assert_eq!(
            json(escapes.as_bytes()).as_deref(),
            Some(format!(r#"["{}…"]"#, r"\n".repeat(20)).as_str())
        );
        let etcd = br#"{"header":{"cluster_id":"14841639068965178418","member_id":"10276657743932975437","revision":"2","raft_term":"2"},"kvs":[{"key":"azM=","create_revision":"2","mod_revision":"2","version":"1","value":"djc="}],"count":"1"}"#;
        let text = json(etcd).unwrap_or_default();
        assert_eq!(text.chars().count(), BODY_MAX);
        assert_eq!(
            text,
            r#"{"header":{"cluster_id":"14841639068965178418","member_id":"10276657743932975437","revision":"2","raft_term":"2"},"kvs"…"#
        );
        assert_eq!(json(b"{\"a\":"), None);
        assert_eq!(json(b"\"just a string\""), None);
    }

    #[test]
    fn bodies_described() {
        let json_type = Some(&b"application/json"[..]);
        assert_eq!(describe(b"", Size::Known(0), json_type), "");
        assert_eq!(
            describe(b"{\"a\": 1}", Size::Known(8), json_type),
            "{\"a\":1}"
        );
        assert_eq!(describe(b"OK\n", Size::Known(3), None), "OK\\n");
        assert_eq!(
            describe(b"{\"a\":", Size::Known(9), json_type),
            "{\"a\":…(9 bytes)"
        );
        assert_eq!(
            describe(b"\x89PNG\r\n\x1a\n", Size::Known(9000), Some(b"image/png")),
            "<9000 bytes image/png>"
        );
        assert_eq!(describe(b"\x00\x01", Size::Known(2), None), "<2 bytes>");
        assert_eq!(
            describe(b"abc", Size::AtLeast(70000), Some(b"text/plain")),
            "<70000+ bytes text/plain>"
        );
        assert_eq!(
            describe(b"", Size::UntilClose, Some(b"text/html")),
            "<body until close text/html>"
        );
    }
}
