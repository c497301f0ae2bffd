//! A ready [`Capturer`]: captures a set of named roots (one per node) at every checkpoint,
//! writes them to a directory, keeps the watch set and checks it at every checkpoint.
//!
//! Layout of the output directory:
//!
//! ```text
//! 0001-n0.json, 0001-n1.json, ...   one capture file per checkpoint and root (stamped)
//! checkpoints.jsonl                 one line per checkpoint, watch and violation, in order
//! ```
//!
//! The supervisor gives it the function that reads the trace's current sequence number, so
//! each stamp sits at an exact place in trace.jsonl.

use crate::capture::{capture, Capture, CaptureOptions, Stamp};
use crate::service::{CaptureError, Capturer};
use crate::watch::{normalize, Violation, WatchSet};
use crate::{Error, Result};
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Watches a run may hold: far more than a test harness asks for, and a bound on what a
/// runaway client costs (each is kept, checked at every capture and logged).
pub const MAX_WATCHES: usize = 10_000;

/// A directory captured at each checkpoint, and the node it belongs to.
#[derive(Clone, Debug)]
pub struct Root {
    pub node: String,
    pub path: PathBuf,
}

type SeqFn = Box<dyn Fn(u64, Option<&str>) -> Option<u64> + Send + Sync>;

/// Takes checkpoints of a set of roots into a directory.
pub struct Checkpointer {
    roots: Vec<Root>,
    out_dir: PathBuf,
    opts: CaptureOptions,
    seq: SeqFn,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    next_id: u64,
    watches: WatchSet,
    violations: Vec<Violation>,
    /// Captures of checkpoints some watch refers to, by (id, root index).
    cache: HashMap<(u64, usize), Capture>,
}

impl Checkpointer {
    /// Creates `out_dir` (and parents). Roots are made absolute.
    pub fn new(roots: Vec<Root>, out_dir: &Path, opts: CaptureOptions) -> Result<Checkpointer> {
        std::fs::create_dir_all(out_dir).map_err(|e| Error::io(out_dir, e))?;
        // Check the globs now rather than at the first checkpoint.
        crate::capture::Ignore::new(&opts.ignore)?;
        let roots = roots
            .into_iter()
            .map(|r| Root {
                path: normalize(&r.path),
                node: r.node,
            })
            .collect();
        Ok(Checkpointer {
            roots,
            out_dir: out_dir.to_path_buf(),
            opts,
            seq: Box::new(|_, _| None),
            state: Mutex::new(State {
                next_id: 1,
                ..Default::default()
            }),
        })
    }

    /// Sets the function giving the sequence number of the last event written to the trace.
    pub fn with_seq(mut self, seq: impl Fn() -> Option<u64> + Send + Sync + 'static) -> Self {
        self.seq = Box::new(move |_, _| seq());
        self
    }

    /// Sets the function that places checkpoint `id` (with its label) in the trace, typically
    /// by recording a marker event, and returns that event's sequence number: the stamp.
    pub fn with_marker(
        mut self,
        mark: impl Fn(u64, Option<&str>) -> Option<u64> + Send + Sync + 'static,
    ) -> Self {
        self.seq = Box::new(mark);
        self
    }

    /// The roots captured at each checkpoint.
    pub fn roots(&self) -> &[Root] {
        &self.roots
    }

    /// The capture file of checkpoint `id` for the root of `node`.
    pub fn file(&self, id: u64, node: &str) -> PathBuf {
        self.out_dir.join(format!("{id:04}-{node}.json"))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn log(&self, line: serde_json::Value) -> Result<()> {
        let path = self.out_dir.join("checkpoints.jsonl");
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        writeln!(f, "{line}").map_err(|e| Error::io(&path, e))
    }

    /// Takes checkpoint: captures every root, stamps and writes the captures, checks the
    /// watches. Returns the new id.
    pub fn take(&self, label: Option<&str>) -> Result<u64> {
        let mut st = self.lock();
        let id = st.next_id;
        let seq = (self.seq)(id, label);
        let monotonic_ns = crate::monotonic_ns();
        let mut files = Vec::new();
        let mut captures = Vec::new();
        for root in &self.roots {
            let mut c = capture(&root.path, &self.opts)?;
            c.stamp = Some(Stamp {
                id,
                label: label.map(str::to_string),
                seq,
                monotonic_ns: Some(monotonic_ns),
                node: Some(root.node.clone()),
            });
            let file = self.file(id, &root.node);
            c.save(&file)?;
            files.push(file.display().to_string());
            captures.push(c);
        }
        st.next_id += 1;
        // Watches covered by earlier checkpoints are checked against this one.
        let mut found = Vec::new();
        for (i, c) in captures.iter().enumerate() {
            let needed: Vec<u64> = st
                .watches
                .watches()
                .iter()
                .filter_map(|w| w.checkpoint())
                .filter(|&w| w != id)
                .collect();
            for w in needed {
                if let std::collections::hash_map::Entry::Vacant(v) = st.cache.entry((w, i)) {
                    if let Ok(old) = Capture::load(&self.file(w, &self.roots[i].node)) {
                        v.insert(old);
                    }
                }
            }
            found.extend(st.watches.violations(c, |w| st.cache.get(&(w, i))));
        }
        st.watches.checkpoint_taken(id);
        // Keep this checkpoint's captures if a watch now refers to it.
        if st
            .watches
            .watches()
            .iter()
            .any(|w| w.checkpoint() == Some(id))
        {
            for (i, c) in captures.into_iter().enumerate() {
                st.cache.insert((id, i), c);
            }
        }
        self.log(serde_json::json!({
            "kind": "checkpoint", "id": id, "label": label, "seq": seq,
            "monotonic_ns": monotonic_ns, "files": files,
        }))?;
        for v in &found {
            self.log(serde_json::json!({"kind": "violation", "violation": v}))?;
        }
        st.violations.extend(found);
        Ok(id)
    }

    /// Records a watch request.
    pub fn add_watch(&self, path: &Path) -> Result<()> {
        let mut st = self.lock();
        // Each watch is kept, checked and logged for the whole run: a client looping on
        // `watch` must not grow the run's memory and checkpoints.jsonl without bound.
        if st.watches.watches().len() >= MAX_WATCHES {
            return Err(crate::Error::TooManyWatches { max: MAX_WATCHES });
        }
        st.watches.request(path);
        let after = st.watches.latest();
        let path = normalize(path);
        self.log(serde_json::json!({"kind": "watch", "path": path, "after": after}))
    }

    /// The watch set so far.
    pub fn watches(&self) -> WatchSet {
        self.lock().watches.clone()
    }

    /// The violations found so far (at checkpoints).
    pub fn violations(&self) -> Vec<Violation> {
        self.lock().violations.clone()
    }

    /// Checks a capture of `node`'s root taken outside the checkpoints (the final state, a
    /// crash state) against the watches.
    pub fn check(&self, node: &str, later: &Capture) -> Vec<Violation> {
        let Some(i) = self.roots.iter().position(|r| r.node == node) else {
            return Vec::new();
        };
        let st = self.lock();
        let loaded: HashMap<u64, Capture> = st
            .watches
            .watches()
            .iter()
            .filter_map(|w| w.checkpoint())
            .filter(|w| !st.cache.contains_key(&(*w, i)))
            .filter_map(|w| Some((w, Capture::load(&self.file(w, node)).ok()?)))
            .collect();
        st.watches
            .violations(later, |w| st.cache.get(&(w, i)).or_else(|| loaded.get(&w)))
    }
}

impl Capturer for Checkpointer {
    fn checkpoint(&self, label: Option<&str>) -> std::result::Result<u64, CaptureError> {
        Ok(self.take(label)?)
    }

    fn watch(&self, path: &Path) -> std::result::Result<(), CaptureError> {
        Ok(self.add_watch(path)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::{checkpoint_at, watch_at, Server, ServerOptions};
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;

    #[test]
    fn checkpoints_through_the_socket_are_stamped_and_watches_checked() {
        let t = tempfile::tempdir().unwrap();
        let data = t.path().join("n0");
        std::fs::create_dir(&data).unwrap();
        std::fs::write(data.join("kv.db"), b"v1").unwrap();
        let seq = Arc::new(AtomicU64::new(41));
        let seq2 = Arc::clone(&seq);
        let cp = Checkpointer::new(
            vec![Root {
                node: "n0".into(),
                path: data.clone(),
            }],
            &t.path().join("ckpt"),
            CaptureOptions::default(),
        )
        .unwrap()
        .with_seq(move || Some(seq2.load(Ordering::SeqCst)));
        let cp = Arc::new(cp);
        let server = Server::start(cp.clone(), ServerOptions::default()).unwrap();
        let sock = server.socket_path().to_path_buf();

        watch_at(&sock, &data.join("kv.db")).unwrap();
        assert_eq!(checkpoint_at(&sock, Some("after put")).unwrap(), 1);
        let c1 = Capture::load(&cp.file(1, "n0")).unwrap();
        let stamp = c1.stamp.clone().unwrap();
        assert_eq!(
            (
                stamp.id,
                stamp.label.as_deref(),
                stamp.seq,
                stamp.node.as_deref()
            ),
            (1, Some("after put"), Some(41), Some("n0"))
        );
        assert!(stamp.monotonic_ns.unwrap() > 0);

        seq.store(99, Ordering::SeqCst);
        std::fs::write(data.join("kv.db"), b"v2").unwrap();
        assert_eq!(checkpoint_at(&sock, None).unwrap(), 2);
        let v = cp.violations();
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].checkpoint, 1);
        assert_eq!(v[0].path, data.join("kv.db").display().to_string());
        assert_eq!(v[0].differences[0].change.name(), "content");

        // A final state checked outside checkpoints.
        std::fs::remove_file(data.join("kv.db")).unwrap();
        let last = capture(&data, &CaptureOptions::default()).unwrap();
        let v = cp.check("n0", &last);
        assert_eq!(v[0].differences[0].to_string(), "missing  kv.db  (file)");

        let log = std::fs::read_to_string(t.path().join("ckpt/checkpoints.jsonl")).unwrap();
        let kinds: Vec<String> = log
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["kind"].to_string())
            .collect();
        assert_eq!(
            kinds,
            [
                "\"watch\"",
                "\"checkpoint\"",
                "\"checkpoint\"",
                "\"violation\""
            ]
        );
    }

    #[test]
    fn a_failed_capture_is_refused_with_its_cause() {
        let t = tempfile::tempdir().unwrap();
        let gone = t.path().join("n0");
        let cp = Checkpointer::new(
            vec![Root {
                node: "n0".into(),
                path: gone.clone(),
            }],
            &t.path().join("ckpt"),
            CaptureOptions::default(),
        )
        .unwrap();
        match Capturer::checkpoint(&cp, None) {
            Err(CaptureError::State(Error::Io { path, source })) => {
                assert_eq!(path, gone);
                assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
            }
            other => panic!("{other:?}"),
        }
        let server = Server::start(Arc::new(cp), ServerOptions::default()).unwrap();
        match checkpoint_at(server.socket_path(), Some("x")) {
            Err(crate::service::ClientError::Refused(reason)) => assert_eq!(
                reason,
                format!("{}: No such file or directory (os error 2)", gone.display())
            ),
            other => panic!("{other:?}"),
        }
    }

    /// A client looping on `watch` is refused past [`MAX_WATCHES`]: memory and
    /// checkpoints.jsonl stop growing.
    #[test]
    fn watches_are_bounded() {
        let t = tempfile::tempdir().unwrap();
        let data = t.path().join("n0");
        std::fs::create_dir(&data).unwrap();
        let dir = t.path().join("ckpt");
        let cp = Checkpointer::new(
            vec![Root {
                node: "n0".into(),
                path: data.clone(),
            }],
            &dir,
            CaptureOptions::default(),
        )
        .unwrap();
        for i in 0..MAX_WATCHES {
            cp.add_watch(&data.join(format!("f{i}"))).unwrap();
        }
        let err = cp.add_watch(&data.join("one-more")).unwrap_err();
        assert_eq!(err.to_string(), "too many watches (at most 10000 in a run)");
        assert_eq!(cp.watches().watches().len(), MAX_WATCHES);
    }
}
