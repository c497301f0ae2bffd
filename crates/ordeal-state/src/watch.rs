//! Watches: paths that must not change once a checkpoint covers them.
//!
//! A process says `watch PATH` (typically right after it made PATH durable); the checkpoint
//! that covers the watch is the next checkpoint taken after the request, or, when none is
//! taken afterwards, the latest one taken before it. From then on, any later capture — a later
//! checkpoint, the final state, a crash state — in which PATH (and whatever lies beneath it,
//! for a directory) differs from the covering checkpoint's capture is a [`Violation`] naming
//! the path and the checkpoint.

use crate::capture::Capture;
use crate::diff::{diff_entries, Difference};
use serde::{Deserialize, Serialize};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

/// One watch request.
#[derive(Serialize, Deserialize, Clone, PartialEq, Eq, Debug)]
pub struct Watch {
    /// The watched path, absolute (as the requesting process named it, made absolute).
    pub path: PathBuf,
    /// The latest checkpoint taken when the watch was requested.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<u64>,
    /// The first checkpoint taken after the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub covered_by: Option<u64>,
}

impl Watch {
    /// The checkpoint that covers this watch: the next one after the request, else the latest
    /// one before it; `None` when no checkpoint was ever taken.
    pub fn checkpoint(&self) -> Option<u64> {
        self.covered_by.or(self.after)
    }
}

/// The watches of a run, in request order.
#[derive(Serialize, Deserialize, Clone, PartialEq, Eq, Debug, Default)]
pub struct WatchSet {
    watches: Vec<Watch>,
    latest: Option<u64>,
}

impl WatchSet {
    pub fn new() -> WatchSet {
        WatchSet::default()
    }

    /// Records a watch request (the path is made absolute lexically, without touching the
    /// file system); returns its index.
    pub fn request(&mut self, path: &Path) -> usize {
        self.watches.push(Watch {
            path: normalize(path),
            after: self.latest,
            covered_by: None,
        });
        self.watches.len() - 1
    }

    /// Records that checkpoint `id` was taken: it covers every watch still waiting for one.
    pub fn checkpoint_taken(&mut self, id: u64) {
        for w in self.watches.iter_mut().filter(|w| w.covered_by.is_none()) {
            w.covered_by = Some(id);
        }
        self.latest = Some(id);
    }

    pub fn watches(&self) -> &[Watch] {
        &self.watches
    }

    pub fn is_empty(&self) -> bool {
        self.watches.is_empty()
    }

    /// The latest checkpoint recorded.
    pub fn latest(&self) -> Option<u64> {
        self.latest
    }

    /// Checks `later` (a capture of some root taken after the checkpoints) against every watch
    /// under its root. `reference(id)` gives checkpoint `id`'s capture of the same root.
    /// A watch covered by the checkpoint `later` itself is stamped with is not checked against
    /// it; neither is one with no covering checkpoint, nor one whose checkpoint capture is not
    /// available.
    pub fn violations<'a>(
        &self,
        later: &Capture,
        reference: impl Fn(u64) -> Option<&'a Capture>,
    ) -> Vec<Violation> {
        let root = normalize(Path::new(&later.root));
        let later_id = later.stamp.as_ref().map(|s| s.id);
        let mut out = Vec::new();
        for w in &self.watches {
            let Some(id) = w.checkpoint() else { continue };
            if later_id == Some(id) {
                continue;
            }
            let Some(rel) = relative(&w.path, &root) else {
                continue;
            };
            let Some(at) = reference(id) else { continue };
            let differences = check(&rel, at, later);
            if !differences.is_empty() {
                out.push(Violation {
                    path: w.path.display().to_string(),
                    checkpoint: id,
                    label: at.stamp.as_ref().and_then(|s| s.label.clone()),
                    state: describe(later),
                    differences,
                });
            }
        }
        out
    }
}

fn describe(c: &Capture) -> String {
    match &c.stamp {
        Some(s) => match &s.label {
            Some(l) => format!("checkpoint {} ({l:?}) of {}", s.id, c.root),
            None => format!("checkpoint {} of {}", s.id, c.root),
        },
        None => c.root.clone(),
    }
}

/// The differences at and beneath `rel` (relative path bytes, empty for the root) between
/// the covering checkpoint's capture and a later one.
pub fn check(rel: &[u8], at_checkpoint: &Capture, later: &Capture) -> Vec<Difference> {
    diff_entries(at_checkpoint.subtree(rel), later.subtree(rel))
}

/// A watched path that changed after the checkpoint covering it.
#[derive(Serialize, Deserialize, Clone, PartialEq, Eq, Debug)]
pub struct Violation {
    /// The watched path.
    pub path: String,
    /// The covering checkpoint.
    pub checkpoint: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// The state in which the path differs (a later checkpoint, a directory, a crash state).
    pub state: String,
    #[serde(skip_deserializing)]
    pub differences: Vec<Difference>,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "watched path {} changed after checkpoint {}",
            self.path, self.checkpoint
        )?;
        if let Some(l) = &self.label {
            write!(f, " ({l:?})")?;
        }
        write!(f, " in {}:", self.state)?;
        for d in &self.differences {
            write!(f, "\n  {d}")?;
        }
        Ok(())
    }
}

/// A path made absolute against the current directory and cleaned of `.` and `..`
/// lexically (symlinks are not resolved: the watched name is what matters).
pub fn normalize(path: &Path) -> PathBuf {
    let abs = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|d| d.join(path))
            .unwrap_or_else(|_| path.to_path_buf())
    };
    let mut out = PathBuf::new();
    for c in abs.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// `path` relative to `root` as bytes (empty when equal), or `None` when outside it.
pub fn relative(path: &Path, root: &Path) -> Option<Vec<u8>> {
    path.strip_prefix(root)
        .ok()
        .map(|r| r.as_os_str().as_bytes().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::{capture, CaptureOptions, Stamp};

    fn cap(p: &Path, id: u64) -> Capture {
        let mut c = capture(p, &CaptureOptions::default()).unwrap();
        c.stamp = Some(Stamp {
            id,
            label: Some(format!("c{id}")),
            ..Default::default()
        });
        c
    }

    #[test]
    fn coverage_is_the_next_checkpoint_else_the_latest() {
        let mut w = WatchSet::new();
        w.request(Path::new("/d/a"));
        w.checkpoint_taken(1);
        w.checkpoint_taken(2);
        w.request(Path::new("/d/b"));
        w.checkpoint_taken(3);
        w.request(Path::new("/d/./x/../c"));
        let got: Vec<_> = w
            .watches()
            .iter()
            .map(|x| (x.path.display().to_string(), x.checkpoint()))
            .collect();
        assert_eq!(
            got,
            [
                ("/d/a".to_string(), Some(1)),
                ("/d/b".into(), Some(3)),
                ("/d/c".into(), Some(3)),
            ]
        );
        let mut none = WatchSet::new();
        none.request(Path::new("/x"));
        assert_eq!(none.watches()[0].checkpoint(), None);
    }

    #[test]
    fn a_watched_path_that_changes_later_is_a_violation_naming_path_and_checkpoint() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("data");
        std::fs::create_dir_all(root.join("wal")).unwrap();
        std::fs::write(root.join("kv.db"), b"v1").unwrap();
        std::fs::write(root.join("wal/1"), b"a").unwrap();
        std::fs::write(root.join("free"), b"x").unwrap();
        let mut w = WatchSet::new();
        w.request(&root.join("kv.db"));
        w.request(&root.join("wal"));
        w.request(Path::new("/elsewhere/file"));
        let c1 = cap(&root, 1);
        w.checkpoint_taken(1);
        // Unwatched change: fine. Watched changes: violations.
        std::fs::write(root.join("free"), b"yy").unwrap();
        let c2 = cap(&root, 2);
        assert!(w.violations(&c2, |id| (id == 1).then_some(&c1)).is_empty());
        std::fs::write(root.join("kv.db"), b"v2").unwrap();
        std::fs::remove_file(root.join("wal/1")).unwrap();
        let c3 = cap(&root, 3);
        let v = w.violations(&c3, |id| (id == 1).then_some(&c1));
        assert_eq!(v.len(), 2);
        let kv = root.join("kv.db").display().to_string();
        assert_eq!(v[0].path, kv);
        assert_eq!(v[0].checkpoint, 1);
        let h = |s: &[u8]| blake3::hash(s).to_hex()[..16].to_string();
        assert_eq!(
            v[0].to_string(),
            format!(
                "watched path {kv} changed after checkpoint 1 (\"c1\") in checkpoint 3 (\"c3\") of {}:\n  content  kv.db  {}… → {}…",
                root.display(),
                h(b"v1"),
                h(b"v2")
            )
        );
        assert_eq!(
            v[1].differences
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>(),
            ["missing  wal/1  (file)"]
        );
    }
}
