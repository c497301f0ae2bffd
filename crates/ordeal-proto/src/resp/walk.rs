//! One RESP value measured where it lies: where it ends, and its first parts noted for its
//! message, without copying its bytes. Also the text of a value for people.

use std::fmt::Write;
use std::ops::Range;

use crate::{summarize, SUMMARY_MAX};

/// Parts of a value noted for its message; later parts are only measured.
pub(super) const TOKENS_MAX: usize = 48;
/// Most values an aggregate may declare; more is noise, not RESP.
const COUNT_MAX: i64 = 1 << 32;
/// Longest bulk a value may declare (Redis's `proto-max-bulk-len` is 512 MB by default).
const BULK_MAX: i64 = 1 << 40;
/// Longest header line (`$123\r\n`, `*4\r\n`, `$EOF:<40 bytes>\r\n`).
pub(super) const HEADER_MAX: usize = 64;
/// Deepest nesting of aggregates.
const DEPTH_MAX: usize = 64;
/// Elements of an aggregate shown in a text.
const ITEMS_SHOWN: u64 = 8;
/// A text stops growing past about this many bytes.
const TEXT_BUDGET: usize = 400;

/// One part of a value: a scalar, or the header of an aggregate (its elements follow).
#[derive(Debug, Clone)]
pub(super) struct Token {
    /// The type byte: `+ - : $ * _ , # ! = ( % ~ > |`.
    pub kind: u8,
    /// Declared length of a bulk's data, or number of values an aggregate holds (keys and
    /// values for maps and attributes); `None` for a null.
    pub size: Option<u64>,
    /// The content seen: a line's text, a bulk's data (shorter than `size` when cut).
    pub data: Range<usize>,
}

/// What [`Walker::walk`] found.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Walked {
    /// A value of `len` bytes. `cut`: a bulk ran past the bytes given (`len` counts it whole).
    /// `remaining`: values after `len` that still belong to it (its head filled the buffer).
    Value {
        len: u64,
        cut: bool,
        remaining: u64,
    },
    Need,
    Invalid,
}

/// What values may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Shape {
    /// Any RESP2 or RESP3 value.
    Any,
    /// What Redis accepts from clients: one array of bulk strings.
    Command,
}

struct Open {
    /// Values still to come.
    left: u64,
    /// An attribute: once its map is done, the value it annotates still fills the slot.
    attribute: bool,
}

enum Finished {
    Done,
    More,
}

/// Measures values, reusing its memory from one value to the next.
#[derive(Default)]
pub(super) struct Walker {
    /// The noted parts of the last value, in order (at most [`TOKENS_MAX`]).
    pub tokens: Vec<Token>,
    open: Vec<Open>,
}

impl Walker {
    /// The value at the start of `buf`. With `full`, a value longer than `buf` is measured as
    /// far as can be known instead of asking for more.
    pub fn walk(&mut self, buf: &[u8], full: bool, shape: Shape) -> Walked {
        self.tokens.clear();
        self.open.clear();
        let mut pos = 0usize;
        loop {
            let start = pos;
            let Some(&kind) = buf.get(pos) else {
                return self.short(start, full);
            };
            let allowed = if self.open.is_empty() { b'*' } else { b'$' };
            if shape == Shape::Command && kind != allowed {
                return Walked::Invalid;
            }
            match kind {
                b'+' | b'-' | b':' | b',' | b'#' | b'(' | b'_' => {
                    let cr = match line_end(buf, pos + 1, usize::MAX) {
                        Line::At(cr) => cr,
                        Line::Short => return self.short(start, full),
                        Line::Bad => return Walked::Invalid,
                    };
                    let content = &buf[pos + 1..cr];
                    if !scalar_is_valid(kind, content) {
                        return Walked::Invalid;
                    }
                    self.note(kind, Some(content.len() as u64), pos + 1..cr);
                    pos = cr + 2;
                }
                b'$' | b'!' | b'=' => {
                    let (n, data_start) = match header(buf, pos) {
                        Line::At(x) => x,
                        Line::Short => return self.short(start, full),
                        Line::Bad => return Walked::Invalid,
                    };
                    if n == -1 && kind == b'$' && shape == Shape::Any {
                        self.note(kind, None, data_start..data_start);
                        pos = data_start;
                    } else if !(0..=BULK_MAX).contains(&n) {
                        return Walked::Invalid;
                    } else {
                        let data_end = data_start as u64 + n as u64;
                        let seen_end = (data_end.min(buf.len() as u64)) as usize;
                        let seen_crlf = &buf[seen_end..buf.len().min(seen_end + 2)];
                        if seen_end as u64 == data_end && !b"\r\n".starts_with(seen_crlf) {
                            return Walked::Invalid;
                        }
                        self.note(kind, Some(n as u64), data_start..seen_end);
                        if data_end + 2 > buf.len() as u64 {
                            if !full {
                                return Walked::Need;
                            }
                            // Cut: the bulk's length is known, so the value is measured past
                            // the bytes given.
                            let remaining = match self.finish() {
                                Finished::Done => 0,
                                Finished::More => self.left(),
                            };
                            return Walked::Value {
                                len: data_end + 2,
                                cut: data_end > buf.len() as u64,
                                remaining,
                            };
                        }
                        pos = data_end as usize + 2;
                    }
                }
                b'*' | b'%' | b'~' | b'>' | b'|' => {
                    let (n, next) = match header(buf, pos) {
                        Line::At(x) => x,
                        Line::Short => return self.short(start, full),
                        Line::Bad => return Walked::Invalid,
                    };
                    pos = next;
                    if n == -1 && kind == b'*' {
                        self.note(kind, None, pos..pos);
                    } else if !(0..=COUNT_MAX).contains(&n) {
                        return Walked::Invalid;
                    } else {
                        let values = n as u64 * if matches!(kind, b'%' | b'|') { 2 } else { 1 };
                        self.note(kind, Some(values), pos..pos);
                        if self.open.len() >= DEPTH_MAX {
                            return Walked::Invalid;
                        }
                        if values > 0 {
                            self.open.push(Open {
                                left: values,
                                attribute: kind == b'|',
                            });
                            continue;
                        }
                        if kind == b'|' {
                            // An empty attribute: the value it annotates follows.
                            continue;
                        }
                    }
                }
                _ => return Walked::Invalid,
            }
            if let Finished::Done = self.finish() {
                return Walked::Value {
                    len: pos as u64,
                    cut: false,
                    remaining: 0,
                };
            }
        }
    }

    fn note(&mut self, kind: u8, size: Option<u64>, data: Range<usize>) {
        if self.tokens.len() < TOKENS_MAX {
            self.tokens.push(Token { kind, size, data });
        }
    }

    /// A value just ended: counts it in its aggregate, and closes aggregates it completes.
    fn finish(&mut self) -> Finished {
        loop {
            let Some(top) = self.open.last_mut() else {
                return Finished::Done;
            };
            top.left -= 1;
            if top.left > 0 {
                return Finished::More;
            }
            let attribute = top.attribute;
            self.open.pop();
            if attribute {
                return Finished::More;
            }
        }
    }

    /// Values still to come after the current position (at top level after an attribute:
    /// the value it annotates).
    fn left(&self) -> u64 {
        let open = self.open.iter().fold(0u64, |n, o| n.saturating_add(o.left));
        open.saturating_add(self.open.is_empty() as u64)
    }

    /// The bytes end where a value (or its header) starts at `start`.
    fn short(&self, start: usize, full: bool) -> Walked {
        if !full {
            Walked::Need
        } else if start == 0 {
            // Not even the first value's header fits: nothing to say.
            Walked::Invalid
        } else {
            Walked::Value {
                len: start as u64,
                cut: true,
                remaining: self.left(),
            }
        }
    }
}

pub(super) enum Line<T> {
    At(T),
    Short,
    Bad,
}

/// The `\r` ending the line that starts at `from`, looking at most `max` bytes ahead.
pub(super) fn line_end(buf: &[u8], from: usize, max: usize) -> Line<usize> {
    let window = &buf[from.min(buf.len())..];
    let limit = window.len().min(max);
    match window[..limit].iter().position(|&b| b == b'\n') {
        Some(0) => Line::Bad,
        Some(i) if window[i - 1] == b'\r' => Line::At(from + i - 1),
        Some(_) => Line::Bad,
        None if window.len() > max => Line::Bad,
        None => Line::Short,
    }
}

/// The number of the header line at `pos` (`$12`, `*-1`) and where the line ends.
fn header(buf: &[u8], pos: usize) -> Line<(i64, usize)> {
    match line_end(buf, pos + 1, HEADER_MAX) {
        Line::At(cr) => match integer(&buf[pos + 1..cr]) {
            Some(n) => Line::At((n, cr + 2)),
            None => Line::Bad,
        },
        Line::Short => Line::Short,
        Line::Bad => Line::Bad,
    }
}

/// A decimal integer, optionally negative, as RESP writes them.
pub(super) fn integer(s: &[u8]) -> Option<i64> {
    let (negative, digits) = match s.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, s),
    };
    if digits.is_empty() || digits.len() > 18 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n = digits
        .iter()
        .fold(0i64, |n, &d| n * 10 + i64::from(d - b'0'));
    Some(if negative { -n } else { n })
}

fn scalar_is_valid(kind: u8, content: &[u8]) -> bool {
    match kind {
        b':' => integer(content).is_some(),
        b'_' => content.is_empty(),
        b'#' => content == b"t" || content == b"f",
        b',' => {
            !content.is_empty()
                && content
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'+'))
        }
        b'(' => {
            let digits = content.strip_prefix(b"-").unwrap_or(content);
            !digits.is_empty() && digits.iter().all(u8::is_ascii_digit)
        }
        _ => true,
    }
}

/// `bytes` as words summarized one by one: a status or error line on one line of text.
pub(super) fn words(bytes: &[u8], out: &mut String) {
    let start = out.len();
    for (i, word) in bytes.split(|&b| b == b' ').enumerate() {
        if out.len() - start > TEXT_BUDGET / 2 {
            out.push_str(&format!("…({} bytes)", bytes.len()));
            return;
        }
        if i > 0 {
            out.push(' ');
        }
        push_summary(out, word, word.len());
    }
}

/// Writes the value whose tokens start at `*i` (advancing `*i` past them) the way a person
/// reads it: `+OK`, `"v7"`, `nil`, `[:1, "a"]`, `{"k": :1}`.
pub(super) fn render(buf: &[u8], tokens: &[Token], i: &mut usize, out: &mut String, depth: usize) {
    let Some(t) = tokens.get(*i) else {
        out.push('…');
        return;
    };
    *i += 1;
    let data = &buf[t.data.clone()];
    match (t.kind, t.size) {
        (b'$' | b'*' | b'_', None) | (b'_', _) => out.push_str("nil"),
        (b'+' | b'-' | b'!', _) => {
            out.push(if t.kind == b'!' { '-' } else { t.kind as char });
            words(data, out);
        }
        (b'$', Some(n)) => quoted(data, n, out),
        (b'=', Some(n)) => {
            // Verbatim strings start with their format: `txt:`.
            let skip = data.len().min(4);
            quoted(&data[skip..], n.saturating_sub(4), out);
        }
        (b'*' | b'~' | b'>' | b'%' | b'|', Some(n)) => {
            let map = matches!(t.kind, b'%' | b'|');
            let (open, close) = match t.kind {
                b'*' => ("[", "]"),
                b'~' => ("~[", "]"),
                b'>' => (">[", "]"),
                b'%' => ("{", "}"),
                _ => ("|{", "}"),
            };
            out.push_str(open);
            let items = if map { n / 2 } else { n };
            let mut shown = 0;
            while shown < items {
                if *i >= tokens.len() {
                    out.push('…');
                    break;
                }
                if shown == ITEMS_SHOWN || depth >= 3 || out.len() > TEXT_BUDGET {
                    if shown > 0 {
                        out.push_str(", ");
                    }
                    out.push_str(&format!("…({items} items)"));
                    for _ in 0..(items - shown) * if map { 2 } else { 1 } {
                        if *i >= tokens.len() {
                            break;
                        }
                        skip(tokens, i);
                    }
                    break;
                }
                if shown > 0 {
                    out.push_str(", ");
                }
                render(buf, tokens, i, out, depth + 1);
                if map {
                    out.push_str(": ");
                    render(buf, tokens, i, out, depth + 1);
                }
                shown += 1;
            }
            out.push_str(close);
            if t.kind == b'|' {
                out.push(' ');
                render(buf, tokens, i, out, depth);
            }
        }
        _ => {
            out.push(t.kind as char);
            push_summary(out, data, data.len());
        }
    }
}

/// Moves `*i` past the value whose tokens start there.
pub(super) fn skip(tokens: &[Token], i: &mut usize) {
    let Some(t) = tokens.get(*i) else {
        return;
    };
    *i += 1;
    if matches!(t.kind, b'*' | b'~' | b'>' | b'%' | b'|') {
        for _ in 0..t.size.unwrap_or(0) {
            if *i >= tokens.len() {
                return;
            }
            skip(tokens, i);
        }
        if t.kind == b'|' {
            skip(tokens, i);
        }
    }
}

/// Appends `summarize(bytes, total).text`, without allocating when the part shown is
/// printable (most arguments are: decoding speed is mostly allocation).
pub(super) fn push_summary(out: &mut String, bytes: &[u8], total: usize) {
    let shown = &bytes[..bytes.len().min(SUMMARY_MAX)];
    let plain = shown
        .iter()
        .all(|&b| (0x20..=0x7e).contains(&b) && b != b'\\');
    match std::str::from_utf8(shown) {
        Ok(text) if plain => {
            out.push_str(text);
            if total > bytes.len() || bytes.len() > SUMMARY_MAX {
                let _ = write!(out, "…({} bytes)", total.max(bytes.len()));
            }
        }
        _ => out.push_str(&summarize(bytes, total).text),
    }
}

/// `bytes` as text, invalid UTF-8 replaced.
pub(super) fn lossy(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(text) => text.to_owned(),
        Err(_) => String::from_utf8_lossy(bytes).into_owned(),
    }
}

fn quoted(data: &[u8], total: u64, out: &mut String) {
    out.push('"');
    push_summary(out, data, total as usize);
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn walk(buf: &[u8], full: bool, shape: Shape) -> Walked {
        Walker::default().walk(buf, full, shape)
    }

    fn text(buf: &[u8]) -> String {
        let mut w = Walker::default();
        assert!(matches!(
            w.walk(buf, false, Shape::Any),
            Walked::Value { .. }
        ));
        let mut out = String::new();
        render(buf, &w.tokens, &mut 0, &mut out, 0);
        out
    }

    fn value(len: u64) -> Walked {
        Walked::Value {
            len,
            cut: false,
            remaining: 0,
        }
    }

    #[test]
    fn values_are_measured_whole_or_asked_for_more() {
        let cases: &[&[u8]] = &[
            b"+OK\r\n",
            b"-ERR x\r\n",
            b":12\r\n",
            b"$2\r\nv7\r\n",
            b"$-1\r\n",
            b"*-1\r\n",
            b"*2\r\n$1\r\na\r\n*1\r\n:1\r\n",
            b"%1\r\n+k\r\n#t\r\n",
            b"|1\r\n+ttl\r\n:3\r\n$1\r\nv\r\n",
            b"_\r\n",
            b",3.5\r\n",
            b"(12345678901234567890\r\n",
            b"=8\r\ntxt:abcd\r\n",
            b"!5\r\nERR x\r\n",
            b">2\r\n+a\r\n+b\r\n",
            b"~0\r\n",
        ];
        for &case in cases {
            assert_eq!(walk(case, false, Shape::Any), value(case.len() as u64));
            let mut longer = case.to_vec();
            longer.extend_from_slice(b"+next\r\n");
            assert_eq!(walk(&longer, false, Shape::Any), value(case.len() as u64));
            for cut in 0..case.len() {
                assert_eq!(
                    walk(&case[..cut], false, Shape::Any),
                    Walked::Need,
                    "{case:?} cut at {cut}"
                );
            }
        }
    }

    #[test]
    fn noise_is_invalid() {
        for case in [
            &b"?x\r\n"[..],
            b":1x\r\n",
            b"$2\r\nv7xx",
            b"$-2\r\n",
            b"#x\r\n",
            b"_x\r\n",
            b"+OK\n",
            b"*99999999999\r\n",
            b"$123456789012345678901234567890123456789012345678901234567890123456789",
        ] {
            assert_eq!(walk(case, false, Shape::Any), Walked::Invalid, "{case:?}");
        }
        // Clients send arrays of bulk strings only.
        assert_eq!(walk(b"+OK\r\n", false, Shape::Command), Walked::Invalid);
        assert_eq!(
            walk(b"*1\r\n:1\r\n", false, Shape::Command),
            Walked::Invalid
        );
        assert_eq!(walk(b"*1\r\n$1\r\na\r\n", false, Shape::Command), value(11));
    }

    #[test]
    fn a_value_longer_than_the_buffer_is_measured_from_its_head() {
        // The last bulk runs past: its length is known, so is the value's.
        let buf = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$100\r\nabc";
        assert_eq!(
            walk(buf, true, Shape::Command),
            Walked::Value {
                len: 26 + 102,
                cut: true,
                remaining: 0
            }
        );
        // A bulk in the middle runs past: one more value belongs to the array.
        let buf = b"*4\r\n$4\r\nMSET\r\n$1\r\nk\r\n$100\r\nabc";
        assert_eq!(
            walk(buf, true, Shape::Command),
            Walked::Value {
                len: 27 + 102,
                cut: true,
                remaining: 1
            }
        );
        // The buffer ends in a header: the value is measured up to it.
        let buf = b"*2\r\n*2\r\n:1\r\n:2\r\n$1";
        assert_eq!(
            walk(buf, true, Shape::Any),
            Walked::Value {
                len: 16,
                cut: true,
                remaining: 1
            }
        );
        assert_eq!(
            walk(b"$100\r\nab", true, Shape::Any),
            Walked::Value {
                len: 108,
                cut: true,
                remaining: 0,
            }
        );
        assert_eq!(walk(b"+no end", true, Shape::Any), Walked::Invalid);
    }

    #[test]
    fn summaries_are_summarize_s() {
        for (bytes, total) in [
            (&b"v7"[..], 2),
            (b"a\\b", 3),
            (b"a\r\n", 3),
            (b"\xff", 1),
            (b"abc", 10),
            (&[b'x'; 60], 60),
            (&[b'x'; 48], 48),
            (&[b'x'; 48], 4000),
            (b"\xffabc", 4000),
            (b"\xe2\x80\xa6", 3),
        ] {
            let mut out = String::from(">");
            push_summary(&mut out, bytes, total);
            assert_eq!(out, format!(">{}", summarize(bytes, total).text));
        }
        assert_eq!(lossy(b"v\xff7"), "v\u{fffd}7");
    }

    #[test]
    fn texts_read_like_redis_cli() {
        assert_eq!(text(b"+OK\r\n"), "+OK");
        assert_eq!(
            text(b"-ERR unknown command 'FOO'\r\n"),
            "-ERR unknown command 'FOO'"
        );
        assert_eq!(text(b"$2\r\nv7\r\n"), "\"v7\"");
        assert_eq!(text(b"$-1\r\n"), "nil");
        assert_eq!(text(b"_\r\n"), "nil");
        assert_eq!(text(b"*3\r\n$1\r\na\r\n$-1\r\n:3\r\n"), "[\"a\", nil, :3]");
        assert_eq!(text(b"*0\r\n"), "[]");
        assert_eq!(text(b"%1\r\n+k\r\n#t\r\n"), "{+k: #t}");
        assert_eq!(text(b">2\r\n+a\r\n,1.5\r\n"), ">[+a, ,1.5]");
        assert_eq!(text(b"=8\r\ntxt:abcd\r\n"), "\"abcd\"");
        assert_eq!(text(b"!5\r\nERR x\r\n"), "-ERR x");
        assert_eq!(text(b"|1\r\n+ttl\r\n:3\r\n:1\r\n"), "|{+ttl: :3} :1");
        let mut many = b"*20\r\n".to_vec();
        for _ in 0..20 {
            many.extend_from_slice(b":1\r\n");
        }
        assert_eq!(text(&many), "[:1, :1, :1, :1, :1, :1, :1, :1, …(20 items)]");
        assert_eq!(
            text(b"*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n"),
            "[[[[…(1 items)]]]]"
        );
    }
}
