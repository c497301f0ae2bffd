//! Errors. Locations and diagnostics come from ordeal-toml, shared with the other file formats.

use std::io;
use std::path::PathBuf;

use ordeal_toml::display_diagnostics;
pub use ordeal_toml::{Diagnostic, Location};

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

pub use ordeal_events::calls::UnknownErrno;
