//! Errors and source locations.

use std::fmt;
use std::io;
use std::ops::Range;
use std::path::PathBuf;

/// A position in an experiment file, printed as `file:line:column` (1-based; the column counts
/// characters), or just `file` when no position is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The experiment file's path, as it was given to [`crate::Experiment::parse`] or
    /// [`crate::Experiment::from_path`].
    pub file: String,
    /// 1-based line and column, when known.
    pub line_col: Option<(usize, usize)>,
}

impl Location {
    /// A location naming only the file.
    pub fn file_only(file: impl Into<String>) -> Self {
        Location {
            file: file.into(),
            line_col: None,
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line_col {
            Some((line, col)) => write!(f, "{}:{}:{}", self.file, line, col),
            None => write!(f, "{}", self.file),
        }
    }
}

/// One problem found in an experiment file: where, and what.
///
/// Displayed as `file:line:column: message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub location: Location,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.location, self.message)
    }
}

/// Everything that can go wrong in this crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The experiment file could not be read.
    #[error("{}: cannot read experiment file: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    /// The experiment file is malformed or invalid, or something it names (a program, a
    /// directory) is missing. Holds every problem found, in file order; never empty.
    /// Displayed one diagnostic per line.
    #[error("{}", display_diagnostics(.0))]
    Invalid(Vec<Diagnostic>),
    /// Not enough free ports could be reserved.
    #[error("port allocation failed: {0}")]
    Ports(String),
    /// A filesystem operation failed (port lock directory, data directory preparation).
    #[error("{context}: {source}")]
    Io { context: String, source: io::Error },
}

impl Error {
    /// The diagnostics of an [`Error::Invalid`]; empty for other kinds.
    pub fn diagnostics(&self) -> &[Diagnostic] {
        match self {
            Error::Invalid(d) => d,
            _ => &[],
        }
    }

    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}

fn display_diagnostics(d: &[Diagnostic]) -> String {
    d.iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

/// The text of a TOML file, for turning byte offsets into [`Location`]s (also used by other
/// ordeal file formats, so that every error reads the same).
pub struct Source<'a> {
    pub file: &'a str,
    pub text: &'a str,
}

impl Source<'_> {
    /// Location of a byte offset.
    pub fn at(&self, offset: usize) -> Location {
        let offset = offset.min(self.text.len());
        // Step back to a char boundary (spans from the TOML parser always are, but be safe).
        let mut offset = offset;
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
        let col = self.text[line_start..offset].chars().count() + 1;
        Location {
            file: self.file.to_string(),
            line_col: Some((line, col)),
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

    pub fn diag(&self, span: Option<Range<usize>>, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            location: self.span(span),
            message: message.into(),
        }
    }
}
