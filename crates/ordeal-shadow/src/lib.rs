//! Shadow traffic and network toxics.
//!
//! A [`Proxy`] sits in front of a production endpoint: every client connection is forwarded to
//! production and production's answers go back unchanged. Each client → production byte
//! stream is also duplicated to zero or more debug targets ([`ShadowTarget`]), through a
//! bounded per-connection [`window::Window`]: production never waits for a target; when a
//! window overflows, the target is marked diverged (or re-cloned, [`OverflowPolicy`]) and the
//! overflow is counted. What targets answer is read, compared with production's answers
//! ([`compare`]) and dropped.
//!
//! Toxics ([`Toxic`]) act on any proxy's streams (latency, bandwidth, slicer, timeout,
//! reset_peer, limit_data, slow_close, and `down` = disabled), and can be changed at run time
//! through a Toxiproxy-like JSON API ([`api`]: loopback, bounded requests and connections,
//! proxies it creates on loopback unless [`Registry::allow_external`]), or on a timetable
//! ([`schedule`]); toxic times stay under an hour ([`toxic::MAX_MS`]). [`clone`]
//! makes a debug copy of a running service (pause, reflink copy of its data dir, resume,
//! start); [`recipe`] says how to start one (a command, or a node of a running ordeal run
//! found in /proc) and [`cloner`] makes copies from a recipe; [`replay`] records production's
//! backend conversations and answers a clone's backend connections from them. [`session`]
//! puts these together: a proxy, its targets, clones and backends, reported until stopped.
//!
//! Threads, not an event loop: two per proxied connection, two per connection and target.

pub mod api;
pub mod clone;
pub mod cloner;
pub mod compare;
pub mod proxy;
pub mod recipe;
pub mod replay;
pub mod schedule;
pub mod session;
pub mod shadow;
mod splice;
pub mod toxic;
pub mod window;

pub use api::{ApiServer, Registry};
pub use compare::Framing;
pub use proxy::{Proxy, ProxyConfig, ProxyStats, ProxyView};
pub use shadow::{OverflowPolicy, ShadowTarget, TargetConfig, TargetReport, TargetState};
pub use toxic::{Stream, Toxic, ToxicError};

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Toxic(#[from] ToxicError),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Invalid(String),
    /// Not allowed by how ordeal was started (a proxy beyond loopback without
    /// `--allow-external`).
    #[error("{0}")]
    Forbidden(String),
    #[error("{context}: {source}")]
    Json {
        context: String,
        #[source]
        source: serde_json::Error,
    },
    /// Copying a running process's data directory failed. The cause is only the source (as
    /// with anyhow's context), so [`Error::chain_text`] reads "cloning pid P (DIR): CAUSE".
    #[error("cloning pid {pid} ({})", data_dir.display())]
    Clone {
        pid: i32,
        data_dir: std::path::PathBuf,
        #[source]
        source: Box<Error>,
    },
}

impl Error {
    /// The message and every cause's, joined by ": " (as anyhow's `{:#}` shows a chain).
    pub fn chain_text(&self) -> String {
        let mut text = self.to_string();
        let mut cause = std::error::Error::source(self);
        while let Some(c) = cause {
            text = format!("{text}: {c}");
            cause = c.source();
        }
        text
    }
}
