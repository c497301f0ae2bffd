//! Errors. Locations and diagnostics come from ordeal-toml, shared with the other file formats.

use std::io;
use std::path::PathBuf;

use ordeal_toml::{display_diagnostics, Diagnostic};

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
    /// Not enough free ports could be reserved, or their lock directory could not be used.
    #[error("port allocation failed: {0}")]
    Ports(String),
    /// A filesystem operation failed (data directory preparation).
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
