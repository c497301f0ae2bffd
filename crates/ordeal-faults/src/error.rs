//! Errors and source locations.

use std::io;
use std::path::PathBuf;

pub use ordeal_experiment::{Diagnostic, Location};

/// Everything that can go wrong in this crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read.
    #[error("{}: cannot read {what}: {source}", path.display())]
    Read {
        path: PathBuf,
        /// `fault schedule` or `applied record`.
        what: &'static str,
        source: io::Error,
    },
    /// A file could not be written.
    #[error("{}: cannot write {what}: {source}", path.display())]
    Write {
        path: PathBuf,
        what: &'static str,
        source: io::Error,
    },
    /// The file is malformed, or the schedule is invalid (for the experiment it is used with).
    /// Holds every problem found, in file order; never empty. Displayed one diagnostic per
    /// line, each as `file:line:column: message`.
    #[error("{}", display_diagnostics(.0))]
    Invalid(Vec<Diagnostic>),
}

impl Error {
    /// The diagnostics of an [`Error::Invalid`]; empty for other kinds.
    pub fn diagnostics(&self) -> &[Diagnostic] {
        match self {
            Error::Invalid(d) => d,
            _ => &[],
        }
    }
}

fn display_diagnostics(d: &[Diagnostic]) -> String {
    d.iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

/// The text of a file, for turning byte offsets into [`Location`]s.
pub(crate) struct Source<'a> {
    pub file: &'a str,
    pub text: &'a str,
}

impl Source<'_> {
    /// Location of a byte offset (1-based line and column; the column counts characters).
    pub fn at(&self, offset: usize) -> Location {
        let mut offset = offset.min(self.text.len());
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

    /// Location of an offset, or of the whole file when there is none.
    pub fn opt(&self, offset: Option<usize>) -> Location {
        match offset {
            Some(o) => self.at(o),
            None => Location::file_only(self.file),
        }
    }
}

/// Sorts diagnostics into file order (file-level ones first), keeping the order of ties.
pub(crate) fn sort(diags: &mut [Diagnostic]) {
    diags.sort_by_key(|d| d.location.line_col.unwrap_or((0, 0)));
}
