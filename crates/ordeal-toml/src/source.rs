//! Byte offsets in a TOML text → `file:line:column`.

use std::ops::Range;

use crate::{Diagnostic, Location};

/// Within a line, a [`Mark`] at least every this many bytes, so that finding a column counts
/// the characters of at most this many bytes (plus one character).
const MARK_EVERY: usize = 256;

/// A position whose line and column are known.
#[derive(Debug, Clone, Copy)]
struct Mark {
    offset: usize,
    line: usize,
    col: usize,
}

/// The text of a TOML file, for turning byte offsets into [`Location`]s.
///
/// [`Source::new`] reads the text once; each lookup is then a binary search and the count of
/// at most a few hundred bytes, however long the lines are.
#[derive(Debug, Clone)]
pub struct Source<'a> {
    file: &'a str,
    text: &'a str,
    /// Every line start, and a point every [`MARK_EVERY`] bytes within long lines, in
    /// increasing offset order; the first is offset 0.
    marks: Vec<Mark>,
}

impl<'a> Source<'a> {
    /// `file` names the file in locations; `text` is its content.
    pub fn new(file: &'a str, text: &'a str) -> Self {
        let mut marks = vec![Mark {
            offset: 0,
            line: 1,
            col: 1,
        }];
        let (mut line, mut col, mut last) = (1, 1, 0);
        for (offset, c) in text.char_indices() {
            if offset - last >= MARK_EVERY {
                marks.push(Mark { offset, line, col });
                last = offset;
            }
            if c == '\n' {
                line += 1;
                col = 1;
                last = offset + 1;
                marks.push(Mark {
                    offset: last,
                    line,
                    col,
                });
            } else {
                col += 1;
            }
        }
        Source { file, text, marks }
    }

    /// The file's name, as given.
    pub fn file(&self) -> &'a str {
        self.file
    }

    /// The file's text.
    pub fn text(&self) -> &'a str {
        self.text
    }

    /// Location of a byte offset (past the end: the end of the text).
    pub fn at(&self, offset: usize) -> Location {
        let mut offset = offset.min(self.text.len());
        // Step back to a char boundary (spans from the TOML parser always are, but be safe).
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        // marks[0] is at offset 0, so at least one mark is at or before `offset`; and since
        // every line start is a mark, the last such mark is on the same line.
        let i = self.marks.partition_point(|m| m.offset <= offset) - 1;
        let mark = self.marks[i];
        let col = mark.col + self.text[mark.offset..offset].chars().count();
        Location {
            file: self.file.to_string(),
            line_col: Some((mark.line, col)),
        }
    }

    /// Location of the start of a span, or of the file when there is none.
    pub fn span(&self, span: Option<Range<usize>>) -> Location {
        match span {
            Some(s) => self.at(s.start),
            None => Location::file_only(self.file),
        }
    }

    /// Location of byte `offset` inside the *decoded* value of the TOML string at `span`.
    ///
    /// Exact when the string has no escape sequence before that offset; otherwise the start of
    /// the string.
    pub fn in_string(&self, span: &Range<usize>, offset: usize) -> Location {
        let raw = self.text.get(span.clone()).unwrap_or("");
        let quote = ["\"\"\"", "'''", "\"", "'"]
            .into_iter()
            .find(|q| raw.starts_with(q));
        if let Some(q) = quote {
            let body = &raw[q.len()..];
            // Multi-line strings drop a newline right after the opening delimiter.
            let skip = if q.len() == 3 {
                if body.starts_with("\r\n") {
                    2
                } else if body.starts_with('\n') {
                    1
                } else {
                    0
                }
            } else {
                0
            };
            let body = &body[skip..];
            let literal = q.starts_with('\'');
            let prefix = body.get(..offset);
            if let Some(prefix) = prefix {
                if literal || !prefix.contains('\\') {
                    return self.at(span.start + q.len() + skip + offset);
                }
            }
        }
        self.at(span.start)
    }

    /// A diagnostic at the start of `span` (or naming only the file).
    pub fn diag(&self, span: Option<Range<usize>>, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            location: self.span(span),
            message: message.into(),
        }
    }

    /// The diagnostic of a TOML parse or deserialization error: its message on one line, at
    /// its position.
    pub fn toml_error(&self, e: &toml::de::Error) -> Diagnostic {
        self.diag(e.span(), e.message().trim().replace('\n', "; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line_col(src: &Source<'_>, offset: usize) -> (usize, usize) {
        src.at(offset).line_col.expect("a position")
    }

    /// The obvious computation, to compare with.
    fn scan(text: &str, offset: usize) -> (usize, usize) {
        let before = &text[..offset];
        let line = before.matches('\n').count() + 1;
        let start = before.rfind('\n').map_or(0, |i| i + 1);
        (line, text[start..offset].chars().count() + 1)
    }

    #[test]
    fn lines_and_columns() {
        let text = "a = 1\nbé = \"x\"\n\n  c = 2";
        let src = Source::new("f.toml", text);
        assert_eq!(line_col(&src, 0), (1, 1));
        assert_eq!(line_col(&src, 4), (1, 5));
        assert_eq!(line_col(&src, 5), (1, 6)); // the newline itself
        assert_eq!(line_col(&src, 6), (2, 1));
        // `é` is two bytes but one column.
        assert_eq!(line_col(&src, text.find("bé =").unwrap() + 4), (2, 4));
        assert_eq!(line_col(&src, text.find("\"x\"").unwrap()), (2, 6));
        assert_eq!(line_col(&src, text.find("\n\n").unwrap() + 1), (3, 1));
        assert_eq!(line_col(&src, text.find('c').unwrap()), (4, 3));
        // Past the end, and inside a character: clamped back.
        assert_eq!(line_col(&src, 1000), (4, 8));
        assert_eq!(line_col(&src, text.find('é').unwrap() + 1), (2, 2));
        assert_eq!(src.at(6).to_string(), "f.toml:2:1");
        assert_eq!(src.span(None).to_string(), "f.toml");
        assert_eq!(Source::new("e.toml", "").at(0).to_string(), "e.toml:1:1");
        let trailing = Source::new("t.toml", "a\n");
        assert_eq!(line_col(&trailing, 2), (2, 1));
    }

    #[test]
    fn every_offset_matches_a_plain_scan() {
        // Long lines (past several marks), multi-byte characters, CRLF, empty lines.
        let mut text = String::new();
        for i in 0..10 {
            text.push_str(&"xé€😀".repeat(i * 9));
            text.push_str(if i % 3 == 0 { "\r\n" } else { "\n" });
            if i % 5 == 0 {
                text.push('\n');
            }
        }
        let src = Source::new("f.toml", &text);
        for offset in (0..=text.len()).filter(|o| text.is_char_boundary(*o)) {
            assert_eq!(
                line_col(&src, offset),
                scan(&text, offset),
                "offset {offset}"
            );
        }
    }

    #[test]
    fn multi_line_spans_point_at_their_start_and_inside_their_value() {
        let text = "a = 1\nargv = [\n  \"x\",\n  \"\"\"\nline1\n{bad}\"\"\",\n]\n";
        let src = Source::new("f.toml", text);
        let start = text.find('[').unwrap();
        let end = text.rfind(']').unwrap() + 1;
        assert_eq!(src.span(Some(start..end)).to_string(), "f.toml:2:8");
        // The multi-line string: its first newline is not part of the value.
        let s = text.find("\"\"\"").unwrap();
        let e = text.rfind("\"\"\"").unwrap() + 3;
        let value = "line1\n{bad}";
        let brace = value.find('{').unwrap();
        assert_eq!(src.in_string(&(s..e), brace).to_string(), "f.toml:6:1");
        assert_eq!(src.in_string(&(s..e), 0).to_string(), "f.toml:5:1");
        // An escape before the offset: only the string's start is known.
        let text = "k = \"a\\tb{x}\"";
        let src = Source::new("f.toml", text);
        let span = 4..text.len();
        assert_eq!(src.in_string(&span, 3).to_string(), "f.toml:1:5");
        let literal = "k = 'a\\tb{x}'";
        let src = Source::new("f.toml", literal);
        assert_eq!(
            src.in_string(&(4..literal.len()), 4).to_string(),
            "f.toml:1:10"
        );
    }

    #[test]
    fn hundred_thousand_spans_on_one_500k_line() {
        // `"é",` is 5 bytes and 4 columns: item i starts at byte 5i, column 4i + 1. A scan from
        // the line's start for each span would count 25 billion characters here.
        const ITEMS: usize = 100_000;
        let text = "\"é\",".repeat(ITEMS);
        assert_eq!(text.len(), 500_000);
        let src = Source::new("big.toml", &text);
        for i in 0..ITEMS {
            assert_eq!(line_col(&src, 5 * i), (1, 4 * i + 1), "item {i}");
        }
        assert_eq!(line_col(&src, text.len()), (1, 4 * ITEMS + 1));
    }

    #[test]
    fn toml_errors_are_one_line_at_their_position() {
        let text = "a = 1\nb = \n";
        let e = toml::from_str::<toml::Table>(text).unwrap_err();
        let d = Source::new("f.toml", text).toml_error(&e);
        assert_eq!(d.location.to_string(), "f.toml:2:5");
        assert!(!d.message.contains('\n'), "{}", d.message);
        assert_eq!(d.message, e.message().trim().replace('\n', "; "));
    }
}
