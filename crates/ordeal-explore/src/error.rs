//! Errors: [`Error`] for everything that can go wrong, [`RunError`] for a run's own failure as
//! the journal keeps it.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Usage(String),
    /// A fault-free run failed to start: the experiment itself does not work.
    #[error("the experiment cannot be run: run {id} ({}): {source}", dir.display())]
    Setup {
        id: u64,
        dir: PathBuf,
        source: RunError,
    },
    /// A run's output could not be written.
    #[error("writing {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A schedule explore built is refused by the fault model (a bug: candidates are made
    /// valid).
    #[error("internal: generated schedule rejected: {0}")]
    Schedule(#[from] ordeal_faults::Error),
    /// A run could not be set up or run.
    #[error(transparent)]
    Run(#[from] ordeal_run::Error),
    /// A run's trace could not be read.
    #[error(transparent)]
    Trace(#[from] ordeal_events::Error),
    /// The experiment a campaign directory records no longer parses.
    #[error("{}: the recorded experiment: {source}", dir.display())]
    RecordedExperiment {
        dir: PathBuf,
        source: ordeal_experiment::Error,
    },
    #[error(transparent)]
    Experiment(#[from] ordeal_experiment::Error),
}

impl Error {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Error {
        Error::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Why a run has no analysis (it could not be set up, run or read): the [`Error`]'s message.
/// That is all the journal keeps of it, so a resumed or merged campaign knows every failed
/// run this way, whether it failed now or in an earlier process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(transparent)]
#[error("{message}")]
pub struct RunError {
    message: String,
}

impl From<Error> for RunError {
    fn from(e: Error) -> RunError {
        RunError {
            message: e.to_string(),
        }
    }
}

impl RunError {
    pub fn message(&self) -> &str {
        &self.message
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_error_is_journaled_as_its_message() {
        let e = RunError::from(Error::Write {
            path: "/c/runs/000003/replay.json".into(),
            source: std::io::Error::from_raw_os_error(libc::ENOSPC),
        });
        let json = serde_json::to_string(&Err::<(), _>(e.clone())).unwrap();
        assert_eq!(
            json,
            r#"{"Err":"writing /c/runs/000003/replay.json: No space left on device (os error 28)"}"#
        );
        let back: Result<(), RunError> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, Err(e));
    }
}
