//! Errors. Locations and diagnostics come from ordeal-toml, shared with the other file formats.

use std::io;
use std::path::PathBuf;

use ordeal_toml::{display_diagnostics, truncated};
pub use ordeal_toml::{Diagnostic, Location};

use crate::Errno;

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

/// A name that is not one of the errnos a `fail` fault can inject ([`Errno`]'s `FromStr`).
/// Displayed as a message suitable after a location.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown errno `{}`: a `fail` fault can inject {}", truncated(.0), errno_names())]
pub struct UnknownErrno(pub String);

fn errno_names() -> String {
    let names: Vec<&str> = Errno::ALL.iter().map(|e| e.name()).collect();
    names.join(", ")
}
