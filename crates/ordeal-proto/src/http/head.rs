//! A message's head (start line and header fields) and the framing of chunked bodies.

/// The first line of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum StartLine<'a> {
    /// `METHOD target HTTP/1.x`
    Request { method: &'a [u8], target: &'a [u8] },
    /// `HTTP/1.x code reason`
    Status { code: u16, reason: &'a [u8] },
}

/// What the head says of the body that follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) struct Fields<'a> {
    /// `Content-Length`, every occurrence agreeing.
    pub content_length: Option<u64>,
    /// A `Transfer-Encoding` field is present.
    pub transfer_encoding: bool,
    /// Its last coding is `chunked`.
    pub chunked: bool,
    /// `Content-Type`, as sent.
    pub content_type: Option<&'a [u8]>,
}

/// A message's head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Head<'a> {
    pub start: StartLine<'a>,
    pub fields: Fields<'a>,
    /// Bytes up to and including the empty line that ends the head.
    pub len: usize,
}

/// The outcome of reading a head.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum HeadParse<'a> {
    Need,
    Done(Head<'a>),
    Invalid,
}

/// The line starting at `pos`: its bytes without the line end, and where the next line
/// starts. Bare `\n` line ends are accepted as RFC 9112 allows recipients to.
fn line(buf: &[u8], pos: usize) -> Option<(&[u8], usize)> {
    let nl = buf[pos..].iter().position(|&b| b == b'\n')? + pos;
    let text = &buf[pos..nl];
    Some((text.strip_suffix(b"\r").unwrap_or(text), nl + 1))
}

/// RFC 9110 `tchar`: what methods and field names are made of.
fn is_token(b: &[u8]) -> bool {
    !b.is_empty()
        && b.iter()
            .all(|&c| c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c))
}

/// `HTTP/1.x`, any minor version.
fn is_version(b: &[u8]) -> bool {
    b.len() == 8 && b.starts_with(b"HTTP/1.") && b[7].is_ascii_digit()
}

/// A request target: visible ASCII, no spaces.
fn is_target(b: &[u8]) -> bool {
    !b.is_empty() && b.iter().all(|&c| (0x21..=0x7e).contains(&c))
}

/// `METHOD SP target SP HTTP/1.x`.
pub(super) fn request_line(line: &[u8]) -> Option<StartLine<'_>> {
    let sp = line.iter().position(|&b| b == b' ')?;
    let last = line.iter().rposition(|&b| b == b' ')?;
    if last <= sp {
        return None;
    }
    let (method, target, version) = (&line[..sp], &line[sp + 1..last], &line[last + 1..]);
    (is_token(method) && is_target(target) && is_version(version))
        .then_some(StartLine::Request { method, target })
}

/// `HTTP/1.x SP code [SP reason]`.
pub(super) fn status_line(line: &[u8]) -> Option<StartLine<'_>> {
    if line.len() < 12 || !is_version(&line[..8]) || line[8] != b' ' {
        return None;
    }
    let digits = &line[9..12];
    if !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let code = digits
        .iter()
        .fold(0u16, |n, d| n * 10 + u16::from(d - b'0'));
    let reason = match &line[12..] {
        [] => &[][..],
        [b' ', reason @ ..] => reason,
        _ => return None,
    };
    Some(StartLine::Status { code, reason })
}

/// A decimal `Content-Length`; a list (`5, 5`, from merged fields) must agree.
fn content_length(value: &[u8]) -> Option<u64> {
    let mut agreed = None;
    for part in value.split(|&b| b == b',') {
        let part = part.trim_ascii();
        if part.is_empty() || part.len() > 19 || !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let n = part.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
        if agreed.is_some_and(|a| a != n) {
            return None;
        }
        agreed = Some(n);
    }
    agreed
}

/// The head at the start of `buf`: a request's when `request`, else a response's.
pub(super) fn parse_head(buf: &[u8], request: bool) -> HeadParse<'_> {
    let Some((first, mut pos)) = line(buf, 0) else {
        return HeadParse::Need;
    };
    let start = if request {
        request_line(first)
    } else {
        status_line(first)
    };
    let Some(start) = start else {
        return HeadParse::Invalid;
    };
    let mut fields = Fields::default();
    loop {
        let Some((text, next)) = line(buf, pos) else {
            return HeadParse::Need;
        };
        pos = next;
        if text.is_empty() {
            return HeadParse::Done(Head {
                start,
                fields,
                len: pos,
            });
        }
        if text[0] == b' ' || text[0] == b'\t' {
            // An obsolete folded continuation of the previous field: no field framing
            // depends on is ever folded by real senders, so its text is ignored.
            continue;
        }
        let Some(colon) = text.iter().position(|&b| b == b':') else {
            return HeadParse::Invalid;
        };
        let (name, value) = (&text[..colon], text[colon + 1..].trim_ascii());
        if !is_token(name) {
            return HeadParse::Invalid;
        }
        if name.eq_ignore_ascii_case(b"content-length") {
            match (content_length(value), fields.content_length) {
                (Some(n), None) => fields.content_length = Some(n),
                (Some(n), Some(m)) if n == m => {}
                // Disagreeing lengths: the framing is ambiguous (a smuggling attempt).
                _ => return HeadParse::Invalid,
            }
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            fields.transfer_encoding = true;
            if let Some(last) = value.rsplit(|&b| b == b',').next() {
                if !last.trim_ascii().is_empty() {
                    fields.chunked = last.trim_ascii().eq_ignore_ascii_case(b"chunked");
                }
            }
        } else if name.eq_ignore_ascii_case(b"content-type") {
            fields.content_type = Some(value);
        }
    }
}

/// Where a walk over chunks stands between two of its steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ChunkAt {
    /// At a chunk-size line.
    Size,
    /// Just past a chunk's data, before its line end.
    DataEnd,
    /// Past the last chunk, in the trailer fields.
    Trailers,
}

/// How far a walk over chunks got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Walk {
    /// The body ends at this offset (past the trailers' empty line).
    Complete { end: usize },
    /// The bytes ran out. The body is known up to `known` (past the buffer when a chunk's
    /// data runs on past it), where the walk stands at `at`; `data` bytes of chunk data
    /// are known to be in it.
    Partial { known: u64, at: ChunkAt, data: u64 },
    /// Not chunked framing.
    Invalid,
}

/// The longest chunk-size line accepted (hex digits and extensions): past it the bytes
/// are not a chunked body.
const MAX_SIZE_LINE: usize = 4096;

/// Walks the chunked body from `pos` where the walk stands at `at`, appending the chunks'
/// data in `buf` to `data` when given.
pub(super) fn walk_chunks(
    buf: &[u8],
    mut pos: usize,
    mut at: ChunkAt,
    mut data: Option<&mut Vec<u8>>,
) -> Walk {
    let mut data_len = 0u64;
    let partial = |pos: usize, at, data| Walk::Partial {
        known: pos as u64,
        at,
        data,
    };
    loop {
        match at {
            ChunkAt::Size => {
                let Some((text, next)) = line(buf, pos) else {
                    if buf.len() - pos > MAX_SIZE_LINE {
                        return Walk::Invalid;
                    }
                    return partial(pos, at, data_len);
                };
                let digits = text.iter().take_while(|b| b.is_ascii_hexdigit()).count();
                let rest = &text[digits..];
                let rest_ok =
                    rest.is_empty() || rest[0] == b';' || rest[0] == b' ' || rest[0] == b'\t';
                if digits == 0 || digits > 15 || !rest_ok {
                    return Walk::Invalid;
                }
                let size = text[..digits].iter().fold(0u64, |n, &d| {
                    n * 16 + u64::from((d as char).to_digit(16).unwrap_or(0))
                });
                if size == 0 {
                    pos = next;
                    at = ChunkAt::Trailers;
                    continue;
                }
                let end = next as u64 + size;
                data_len += size;
                if end > buf.len() as u64 {
                    if let Some(data) = data.as_deref_mut() {
                        data.extend_from_slice(&buf[next..]);
                    }
                    return Walk::Partial {
                        known: end,
                        at: ChunkAt::DataEnd,
                        data: data_len,
                    };
                }
                if let Some(data) = data.as_deref_mut() {
                    data.extend_from_slice(&buf[next..end as usize]);
                }
                pos = end as usize;
                at = ChunkAt::DataEnd;
            }
            ChunkAt::DataEnd => match &buf[pos..] {
                [] | [b'\r'] => return partial(pos, at, data_len),
                [b'\n', ..] => {
                    pos += 1;
                    at = ChunkAt::Size;
                }
                [b'\r', b'\n', ..] => {
                    pos += 2;
                    at = ChunkAt::Size;
                }
                _ => return Walk::Invalid,
            },
            ChunkAt::Trailers => {
                let Some((text, next)) = line(buf, pos) else {
                    if buf.len() - pos > MAX_SIZE_LINE {
                        return Walk::Invalid;
                    }
                    return partial(pos, at, data_len);
                };
                if text.is_empty() {
                    return Walk::Complete { end: next };
                }
                if !text.contains(&b':') {
                    return Walk::Invalid;
                }
                pos = next;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_heads_with_case_insensitive_fields() {
        let buf = b"POST /a?b=1 HTTP/1.1\r\nHost: x\r\ncontent-LENGTH:  3 \r\nContent-Type: text/plain\r\n\r\nabc";
        let HeadParse::Done(head) = parse_head(buf, true) else {
            panic!("not a head")
        };
        assert_eq!(
            head.start,
            StartLine::Request {
                method: b"POST",
                target: b"/a?b=1"
            }
        );
        assert_eq!(head.fields.content_length, Some(3));
        assert_eq!(head.fields.content_type, Some(&b"text/plain"[..]));
        assert_eq!(head.len, buf.len() - 3);
        // Bare line ends and folded lines.
        let HeadParse::Done(head) = parse_head(b"GET / HTTP/1.0\nA: b\n  c\n\n", true) else {
            panic!("not a head")
        };
        assert_eq!(head.len, 25);
        assert_eq!(
            parse_head(b"GET / HTTP/1.1\r\nHost: x\r\n", true),
            HeadParse::Need
        );
        assert_eq!(
            parse_head(b"GET / HTTP/1.1\r\nHost x\r\n\r\n", true),
            HeadParse::Invalid
        );
        assert_eq!(parse_head(b"GET k\n", true), HeadParse::Invalid);
        assert_eq!(
            parse_head(b"GET / HTTP/2.0\r\n\r\n", true),
            HeadParse::Invalid
        );
        assert_eq!(
            parse_head(
                b"GET / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
                true
            ),
            HeadParse::Invalid
        );
        assert_eq!(
            parse_head(b"GET / HTTP/1.1\r\nContent-Length: 3, 3\r\n\r\n", true),
            parse_head(b"GET / HTTP/1.1\r\nContent-Length: 3\r\n\r\n", true).map_len(|l| l + 3)
        );
    }

    impl HeadParse<'_> {
        fn map_len(self, f: impl Fn(usize) -> usize) -> Self {
            match self {
                HeadParse::Done(h) => HeadParse::Done(Head { len: f(h.len), ..h }),
                other => other,
            }
        }
    }

    #[test]
    fn status_lines_and_transfer_codings() {
        assert_eq!(
            status_line(b"HTTP/1.1 204 No Content"),
            Some(StartLine::Status {
                code: 204,
                reason: b"No Content"
            })
        );
        assert_eq!(
            status_line(b"HTTP/1.0 200"),
            Some(StartLine::Status {
                code: 200,
                reason: b""
            })
        );
        assert_eq!(status_line(b"HTTP/1.1 2x0 OK"), None);
        assert_eq!(status_line(b"HTTP/1.1 2000 OK"), None);
        let HeadParse::Done(head) = parse_head(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, Chunked\r\n\r\n",
            false,
        ) else {
            panic!("not a head")
        };
        assert!(head.fields.transfer_encoding && head.fields.chunked);
        let HeadParse::Done(head) = parse_head(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
            false,
        ) else {
            panic!("not a head")
        };
        assert!(head.fields.transfer_encoding && !head.fields.chunked);
    }

    #[test]
    fn chunks_with_extensions_and_trailers() {
        let body = b"4;ext=1\r\nWiki\r\n5\r\npedia\r\n0\r\nExpires: never\r\n\r\nNEXT";
        let mut data = Vec::new();
        assert_eq!(
            walk_chunks(body, 0, ChunkAt::Size, Some(&mut data)),
            Walk::Complete {
                end: body.len() - 4
            }
        );
        assert_eq!(data, b"Wikipedia");
        // Every cut is partial, at a point a walk can resume from.
        for cut in 0..body.len() - 4 {
            match walk_chunks(&body[..cut], 0, ChunkAt::Size, None) {
                Walk::Partial { known, at, .. } => {
                    let known = known as usize;
                    assert!(known <= body.len() - 4, "cut {cut}");
                    assert_eq!(
                        walk_chunks(body, known, at, None),
                        Walk::Complete {
                            end: body.len() - 4
                        },
                        "cut {cut}"
                    );
                }
                other => panic!("cut {cut}: {other:?}"),
            }
        }
        // A chunk running past the buffer is known to its end.
        assert_eq!(
            walk_chunks(b"10\r\nabc", 0, ChunkAt::Size, None),
            Walk::Partial {
                known: 20,
                at: ChunkAt::DataEnd,
                data: 16
            }
        );
        assert_eq!(
            walk_chunks(b"zz\r\n", 0, ChunkAt::Size, None),
            Walk::Invalid
        );
        assert_eq!(
            walk_chunks(b"1\r\nab\r\n", 0, ChunkAt::Size, None),
            Walk::Invalid
        );
        assert_eq!(
            walk_chunks(b"ffffffffffffffff\r\n", 0, ChunkAt::Size, None),
            Walk::Invalid
        );
    }
}
