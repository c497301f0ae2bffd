//! State capture for ordeal: what a directory tree holds, what changed between two captures,
//! the checkpoint service processes call during a run, and watches on paths that must not
//! change once a checkpoint covers them.
//!
//! - [`capture`](mod@capture): walk a tree without following symlinks (skipping `lost+found`
//!   and ignore globs) and record, per entry, its type, size, permission bits, link count,
//!   owner, symlink target and BLAKE3 content hash — never timestamps. Files are hashed in
//!   parallel. The result, a [`Capture`], has a versioned JSON format (docs/checkpoints.md) and
//!   an optional [`Stamp`] placing it in a run's trace (event sequence number, monotonic time).
//! - [`diff`](mod@diff): the differences between two captures, path by path, in a stable
//!   order, as text or JSON.
//! - [`service`]: a Unix-socket server for the line protocol `checkpoint [label]`,
//!   `watch <path>`, `ping`, serializing requests through one worker and delegating what a
//!   checkpoint is to a [`service::Capturer`] (its failures, a [`CaptureError`], become the
//!   `err` reply); and the client functions ([`service::checkpoint`], [`service::watch`]) that
//!   read `ORDEAL_CHECKPOINT_SOCKET`.
//! - [`watch`]: the watch set (which checkpoint covers each watched path) and the check that a
//!   later capture left a watched path as it was.
//! - [`checkpointer`]: a ready [`service::Capturer`] that captures a set of named roots into a
//!   directory of checkpoint files and checks watches at every checkpoint.
//!
//! The crate knows nothing about ptrace, experiments or run directories beyond paths it is
//! given; the supervisor decides what a checkpoint captures and how it is stamped.
//! - [`persist`]: the persistence model behind `ordeal crash` (docs/crash.md): recorded file
//!   calls become operations over a base tree, and crash states (prefixes, lost, cut, torn,
//!   seeded random) are generated and materialized as directories.

pub mod capture;
pub mod checkpointer;
pub mod diff;
pub mod persist;
pub mod service;
pub mod watch;

pub use capture::{capture, Capture, CaptureOptions, Entry, EntryKind, Stamp};
pub use diff::{diff, Change, Difference};
pub use service::CaptureError;

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An I/O error on a path.
    #[error("{path}: {source}")]
    Io {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// An ignore glob that does not parse.
    #[error("bad ignore glob {glob:?}: {message}")]
    Glob { glob: String, message: String },
    /// A capture file that cannot be read as one.
    #[error("{path}: not a capture file: {message}")]
    Format {
        path: std::path::PathBuf,
        message: String,
    },
    /// The run already has [`checkpointer::MAX_WATCHES`] watches.
    #[error("too many watches (at most {max} in a run)")]
    TooManyWatches { max: usize },
    /// Anything else, with a message.
    #[error("{0}")]
    Other(String),
}

impl Error {
    pub(crate) fn io(path: impl Into<std::path::PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

/// Result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// CLOCK_MONOTONIC in nanoseconds: the clock trace.jsonl's event times are taken on.
pub use ordeal_sys::clock::monotonic_ns;
