//! The checkpoint service of a run (docs/checkpoints.md): started before the nodes, its socket
//! passed to every node, workload and the check as `ORDEAL_CHECKPOINT_SOCKET`; each
//! checkpoint captures every node's data directory into `RUN_DIR/checkpoints/`, stamped with
//! the `seq` of a `checkpoint` marker event the tracer writes into trace.jsonl at that moment.
//!
//! What becomes part of the verdict:
//! - watch violations found at checkpoints, and in the final state of every node (captured
//!   after the check);
//! - recovery after a crash: when a node killed by a crash fault is ready again, its data
//!   directory is captured (`recovered-NODE-K.json`) and compared with the latest checkpoint
//!   taken before the crash; every difference is reported.

use crate::supervisor::Supervisor;
use crate::Error;
use ordeal_experiment::Resolved;
use ordeal_state::checkpointer::{Checkpointer, Root};
use ordeal_state::service::{CaptureError, Capturer, Server, ServerOptions};
use ordeal_state::{Capture, CaptureOptions};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// The directory of a run's checkpoints, inside the run directory.
pub const DIR: &str = "checkpoints";

/// A checkpoint taken during the run: its id and when its capture started.
#[derive(Clone, Copy, Debug)]
struct Taken {
    id: u64,
    at: Instant,
}

/// The [`Checkpointer`], remembering when each checkpoint was taken (to find the latest one
/// before a crash).
struct RunCapturer {
    cp: Arc<Checkpointer>,
    taken: Mutex<Vec<Taken>>,
}

impl Capturer for RunCapturer {
    fn checkpoint(&self, label: Option<&str>) -> Result<u64, CaptureError> {
        let at = Instant::now();
        let id = self.cp.take(label)?;
        if let Ok(mut t) = self.taken.lock() {
            t.push(Taken { id, at });
        }
        Ok(id)
    }

    fn watch(&self, path: &Path) -> Result<(), CaptureError> {
        Ok(self.cp.add_watch(path)?)
    }
}

/// The running service and what it found.
pub(crate) struct Checkpoints {
    capturer: Arc<RunCapturer>,
    server: Option<Server>,
    socket: PathBuf,
    dir: PathBuf,
    /// Problems found outside checkpoints (recoveries), for the verdict.
    found: Mutex<Vec<String>>,
    restarts: Mutex<u32>,
}

/// The socket's directory goes in the run directory when its path fits a Unix socket address
/// (107 bytes): a SIGKILL of ordeal, which no cleanup survives, then leaves it among the run's
/// files rather than in $TMPDIR. A deeper run directory falls back on $TMPDIR.
fn socket_options(run_dir: &Path) -> ServerOptions {
    // `ordeal-ckpt-` and 6 random characters, then the socket's name.
    const TAIL: usize = "/ordeal-ckpt-XXXXXX/checkpoint.sock".len();
    let dir = std::path::absolute(run_dir).unwrap_or_else(|_| run_dir.to_path_buf());
    ServerOptions {
        parent: (dir.as_os_str().len() + TAIL <= 107).then_some(dir),
        ..ServerOptions::default()
    }
}

impl Checkpoints {
    /// Starts the service. Roots: every node's data directory. Each checkpoint records a
    /// `checkpoint` event (on the first node's root process: a checkpoint covers every node)
    /// whose `seq` stamps the captures.
    pub(crate) fn start(
        r: &Resolved,
        run_dir: &Path,
        marker: Arc<dyn ordeal_tracer::MarkEvents>,
    ) -> Result<Checkpoints, Error> {
        let roots: Vec<Root> = r
            .nodes
            .iter()
            .filter_map(|n| {
                n.data_dir.as_ref().map(|d| Root {
                    node: n.name.clone(),
                    path: d.path.clone(),
                })
            })
            .collect();
        let on = r.nodes.first().map(|n| n.name.clone()).unwrap_or_default();
        let dir = run_dir.join(DIR);
        let cp = Checkpointer::new(roots, &dir, CaptureOptions::default())
            .map_err(|e| Error::Usage(format!("checkpoints: {e}")))?
            .with_marker(move |id, label| {
                let data = match label {
                    Some(l) => format!("{id} {l}"),
                    None => id.to_string(),
                };
                marker.mark(&on, "checkpoint", Some(id), Some(data)).ok()
            });
        let capturer = Arc::new(RunCapturer {
            cp: Arc::new(cp),
            taken: Mutex::new(Vec::new()),
        });
        let server = Server::start(capturer.clone(), socket_options(run_dir))
            .map_err(crate::io_err("starting the checkpoint service"))?;
        Ok(Checkpoints {
            capturer,
            socket: server.socket_path().to_path_buf(),
            server: Some(server),
            dir,
            found: Mutex::new(Vec::new()),
            restarts: Mutex::new(0),
        })
    }

    /// The value of `ORDEAL_CHECKPOINT_SOCKET`.
    pub(crate) fn socket(&self) -> &Path {
        &self.socket
    }

    /// Stops serving (waits for a checkpoint in progress) and removes the socket directory.
    pub(crate) fn stop(&mut self) {
        self.server.take();
    }

    /// The latest checkpoint whose capture started before `t`.
    fn latest_before(&self, t: Instant) -> Option<u64> {
        let taken = self.capturer.taken.lock().ok()?;
        taken.iter().filter(|c| c.at < t).map(|c| c.id).max()
    }

    /// Compares `node`'s recovered data directory (it crashed at `crashed_at` and is ready
    /// again) with the latest checkpoint taken before the crash.
    pub(crate) fn check_recovery(&self, node: &str, crashed_at: Instant) -> Recovery {
        let Some(root) = self.capturer.cp.roots().iter().find(|r| r.node == node) else {
            return Recovery::Note(format!("{node} has no data dir: no recovery check"));
        };
        let root = root.clone();
        let Some(id) = self.latest_before(crashed_at) else {
            return Recovery::Note(format!(
                "{node}: no checkpoint before its crash to compare with"
            ));
        };
        let k = {
            let mut n = self.restarts.lock().unwrap_or_else(|e| e.into_inner());
            *n += 1;
            *n
        };
        let reference = self.capturer.cp.file(id, node);
        let result = (|| -> Result<Vec<ordeal_state::Difference>, ordeal_state::Error> {
            let at = Capture::load(&reference)?;
            let now = ordeal_state::capture(&root.path, &CaptureOptions::default())?;
            let file = self.dir.join(format!("recovered-{node}-{k}.json"));
            now.save(&file)?;
            Ok(ordeal_state::diff(&at, &now))
        })();
        let label = Capture::load(&reference)
            .ok()
            .and_then(|c| c.stamp.and_then(|s| s.label))
            .map(|l| format!(" ({l:?})"))
            .unwrap_or_default();
        let msg = match result {
            Ok(d) if d.is_empty() => {
                return Recovery::Note(format!(
                    "{node}: recovered state equals checkpoint {id}, the latest before its crash"
                ))
            }
            Ok(d) => format!(
                "node {node}'s recovered state ({}) differs from checkpoint {id}{label}, the latest before its crash ({}): {} difference{}:\n  {}",
                root.path.display(),
                reference.display(),
                d.len(),
                if d.len() == 1 { "" } else { "s" },
                d.iter().map(|x| x.to_string()).collect::<Vec<_>>().join("\n  ")
            ),
            Err(e) => format!(
                "node {node}: cannot compare its recovered state with checkpoint {id}: {e}"
            ),
        };
        if let Ok(mut f) = self.found.lock() {
            f.push(msg.clone());
        }
        Recovery::Problem(msg)
    }

    /// Every reason to fail the run: watch violations at checkpoints and in the final state of
    /// each node (captured now), and recoveries that differ from their checkpoint.
    pub(crate) fn reasons(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .capturer
            .cp
            .violations()
            .iter()
            .map(|v| v.to_string())
            .collect();
        if !self.capturer.cp.watches().is_empty() {
            for root in self.capturer.cp.roots() {
                match ordeal_state::capture(&root.path, &CaptureOptions::default()) {
                    Ok(c) => out.extend(
                        self.capturer
                            .cp
                            .check(&root.node, &c)
                            .iter()
                            .map(|v| format!("final state: {v}")),
                    ),
                    Err(e) => out.push(format!("capturing the final state of {}: {e}", root.node)),
                }
            }
        }
        if let Ok(f) = self.found.lock() {
            out.extend(f.iter().cloned());
        }
        out
    }
}

/// What the recovery comparison of a node found.
pub(crate) enum Recovery {
    /// Nothing to hold against the run (equal, or nothing to compare with).
    Note(String),
    /// A difference or a failed comparison, also kept for the verdict.
    Problem(String),
}

impl Supervisor<'_> {
    /// After `name` is ready again following a crash: the recovery comparison.
    pub(crate) fn recovered(&mut self, name: &str) {
        // The incarnation before the one just started: when it died.
        let crashed_at = self
            .started
            .iter()
            .rev()
            .filter(|s| s.name == name)
            .nth(1)
            .and_then(|s| s.exited_at);
        let Some(at) = crashed_at else { return };
        match self.ckpt.check_recovery(name, at) {
            Recovery::Note(msg) | Recovery::Problem(msg) => self.progress.say(msg),
        }
    }
}

/// Copies every node's data directory, as prepared before anything starts, to
/// `RUN_DIR/base/NODE`: the base `ordeal crash` replays a node's file operations onto.
pub(crate) fn copy_bases(r: &Resolved, run_dir: &Path) -> Result<(), Error> {
    for n in &r.nodes {
        let Some(d) = &n.data_dir else { continue };
        let to = run_dir.join("base").join(&n.name);
        ordeal_state::persist::copy_tree(&d.path, &to)
            .map_err(|e| Error::Usage(format!("copying the base of {}: {e}", n.name)))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_socket_goes_in_the_run_directory_when_its_path_fits() {
        let short = Path::new("/tmp/r");
        assert_eq!(socket_options(short).parent.as_deref(), Some(short));
        // 107 bytes in all at most: a 72-byte directory fits, a 73-byte one does not.
        let fits = format!("/{}", "d".repeat(71));
        assert_eq!(
            socket_options(Path::new(&fits)).parent,
            Some(PathBuf::from(&fits))
        );
        let deep = format!("/{}", "d".repeat(72));
        assert_eq!(socket_options(Path::new(&deep)).parent, None);
    }
}
