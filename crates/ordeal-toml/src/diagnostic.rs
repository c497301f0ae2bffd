//! Where a problem is, and what it is.

use std::fmt;

/// A position in a file, printed as `file:line:column` (1-based; the column counts
/// characters), or just `file` when no position is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The file's path, as it was given to the parser.
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

/// One problem found in a file: where, and what.
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

/// Puts diagnostics in file order: those without a position first, then by line and column;
/// the sort is stable, so problems at one position keep the order they were found in.
pub fn sort_diagnostics(diags: &mut [Diagnostic]) {
    diags.sort_by_key(|d| d.location.line_col.unwrap_or((0, 0)));
}

/// Diagnostics one per line, as an error holding several of them displays.
pub fn display_diagnostics(diags: &[Diagnostic]) -> String {
    diags
        .iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn diag(line_col: Option<(usize, usize)>, message: &str) -> Diagnostic {
        Diagnostic {
            location: Location {
                file: "f.toml".into(),
                line_col,
            },
            message: message.into(),
        }
    }

    #[test]
    fn display() {
        assert_eq!(diag(Some((3, 7)), "bad").to_string(), "f.toml:3:7: bad");
        assert_eq!(diag(None, "empty").to_string(), "f.toml: empty");
    }

    #[test]
    fn sorted_in_file_order_and_shown_one_per_line() {
        let mut d = vec![
            diag(Some((2, 1)), "b"),
            diag(Some((1, 9)), "a"),
            diag(None, "file"),
            diag(Some((2, 1)), "c"),
        ];
        sort_diagnostics(&mut d);
        assert_eq!(
            display_diagnostics(&d),
            "f.toml: file\nf.toml:1:9: a\nf.toml:2:1: b\nf.toml:2:1: c"
        );
        assert_eq!(display_diagnostics(&[]), "");
    }
}
