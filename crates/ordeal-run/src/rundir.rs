//! The run directory: its name (`runs/<timestamp>-<name>` unless `--out` says), its creation,
//! and the wall-clock stamps a run carries (the directory name, the trace header's
//! `started_at`). Wall-clock time names things only: every measurement uses the monotonic
//! clock.

use crate::{io_err, Error, RunOptions};
use jiff::Timestamp;
use ordeal_experiment::Experiment;
use std::path::{Path, PathBuf};

/// `20261124-093005-042`: UTC date, time and milliseconds (sorts by time).
const NAME_FORMAT: &str = "%Y%m%d-%H%M%S-%3f";
/// RFC 3339 in UTC to the second: `2026-11-24T09:30:05Z`.
const RFC3339_FORMAT: &str = "%Y-%m-%dT%H:%M:%SZ";

/// The name stamp of a run started at `t`.
fn timestamp_name(t: Timestamp) -> String {
    t.strftime(NAME_FORMAT).to_string()
}

/// The trace header's `started_at` for a run started at `t`.
fn rfc3339(t: Timestamp) -> String {
    t.strftime(RFC3339_FORMAT).to_string()
}

/// Now, as the trace header's `started_at`.
pub(crate) fn rfc3339_now() -> String {
    rfc3339(Timestamp::now())
}

/// The run directory: `--out` (absolute), or a fresh `runs/<timestamp>-<name>`. A directory
/// that exists must be empty.
pub(crate) fn run_dir_path(exp: &Experiment, opts: &RunOptions) -> Result<PathBuf, Error> {
    let dir = match &opts.out {
        Some(d) => d.clone(),
        None => default_dir(&opts.runs_root, exp.name(), Timestamp::now()),
    };
    let dir = if dir.is_absolute() {
        dir
    } else {
        std::env::current_dir()
            .map_err(io_err("reading the current directory"))?
            .join(dir)
    };
    if dir.exists() {
        let non_empty = std::fs::read_dir(&dir)
            .map_err(io_err(format!("reading {}", dir.display())))?
            .next()
            .is_some();
        if non_empty {
            return Err(Error::Usage(format!(
                "run directory {} exists and is not empty (choose another --out)",
                dir.display()
            )));
        }
    }
    Ok(dir)
}

/// `ROOT/<timestamp>-<name>` for a run of experiment `name` started at `t`.
fn default_dir(root: &Path, name: &str, t: Timestamp) -> PathBuf {
    root.join(format!("{}-{name}", timestamp_name(t)))
}

/// Creates the run directory and its `logs/`.
pub(crate) fn create_run_dir(dir: &Path) -> Result<(), Error> {
    std::fs::create_dir_all(dir.join("logs")).map_err(io_err(format!("creating {}", dir.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-11-24 09:30:05.042999 UTC.
    fn instant() -> Timestamp {
        Timestamp::new(1_795_512_605, 42_999_000).unwrap()
    }

    #[test]
    fn stamps_keep_their_formats() {
        // Milliseconds are truncated, never rounded: the name never runs ahead of the clock.
        assert_eq!(timestamp_name(instant()), "20261124-093005-042");
        assert_eq!(rfc3339(instant()), "2026-11-24T09:30:05Z");
        assert_eq!(timestamp_name(Timestamp::UNIX_EPOCH), "19700101-000000-000");
        assert_eq!(rfc3339(Timestamp::UNIX_EPOCH), "1970-01-01T00:00:00Z");
        // A leap day.
        let leap = Timestamp::new(951_782_400, 0).unwrap();
        assert_eq!(timestamp_name(leap), "20000229-000000-000");
    }

    #[test]
    fn default_run_dirs_are_named_after_the_time_and_the_experiment() {
        assert_eq!(
            default_dir(Path::new("runs"), "demo-kv", instant()),
            PathBuf::from("runs/20261124-093005-042-demo-kv")
        );
    }

    fn experiment() -> Experiment {
        Experiment::parse(
            "name = \"x\"\n[[node]]\nname = \"a\"\nargv = [\"true\"]\n",
            "x.toml",
        )
        .unwrap()
    }

    #[test]
    fn an_out_dir_must_be_new_or_empty() {
        let tmp = tempfile::tempdir().unwrap();
        let mut opts = RunOptions::new(PathBuf::from("/bin/true"));
        let out = tmp.path().join("run");
        opts.out = Some(out.clone());
        assert_eq!(run_dir_path(&experiment(), &opts).unwrap(), out);
        std::fs::create_dir(&out).unwrap();
        assert_eq!(run_dir_path(&experiment(), &opts).unwrap(), out);
        std::fs::write(out.join("left"), "").unwrap();
        let err = run_dir_path(&experiment(), &opts).unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "run directory {} exists and is not empty (choose another --out)",
                out.display()
            )
        );
        create_run_dir(&tmp.path().join("fresh")).unwrap();
        assert!(tmp.path().join("fresh/logs").is_dir());
    }

    #[test]
    fn default_dirs_go_under_the_runs_root() {
        let tmp = tempfile::tempdir().unwrap();
        let mut opts = RunOptions::new(PathBuf::from("/bin/true"));
        opts.runs_root = tmp.path().to_path_buf();
        let dir = run_dir_path(&experiment(), &opts).unwrap();
        assert_eq!(dir.parent(), Some(tmp.path()));
        let name = dir.file_name().unwrap().to_str().unwrap();
        // 8 digits, '-', 6 digits, '-', 3 digits, then the experiment's name.
        assert_eq!(name.len(), "20261124-093005-042-x".len(), "{name}");
        assert!(name.ends_with("-x"), "{name}");
        let digits: String = name[..19].chars().filter(|c| *c != '-').collect();
        assert_eq!(digits.len(), 17, "{name}");
        assert!(digits.chars().all(|c| c.is_ascii_digit()), "{name}");
    }
}
