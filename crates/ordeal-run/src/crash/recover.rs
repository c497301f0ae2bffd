//! Recovering one crash state: materialized in its own scratch run directory, the node
//! started on it alone (untraced, fresh ports), its ready condition awaited, the crash check
//! run (docs/crash.md#what-it-does). Each call is independent of the others: several run at
//! once on the search's worker threads ([`super::pool`]).

use super::{CrashOptions, StdoutWrite, CRASH_CHECKPOINT_ENV, CRASH_STDOUT_ENV};
use crate::readiness::Probe;
use crate::supervisor::{Progress, Supervisor};
use crate::{checkpoints, Error};
use ordeal_events::Event;
use ordeal_experiment::{Experiment, NodeSpec, ResolveContext, Resolved};
use ordeal_state::persist::{CloneSource, Op, Tree};
use ordeal_tracer::{Config, ExitStatus, Launcher};
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// What every recovery of one search shares (read only: the workers hold it together).
pub(crate) struct Recovery<'a> {
    pub(crate) exp: &'a Experiment,
    pub(crate) opts: &'a CrashOptions,
    pub(crate) node: &'a str,
    pub(crate) workload: Option<&'a str>,
    /// The checkpoints of the recording: (seq of its marker, label).
    pub(crate) checkpoints: &'a [(u64, String)],
    /// A workload target's stdout writes: (seq, bytes).
    pub(crate) stdout: Option<&'a [StdoutWrite]>,
    pub(crate) ops: &'a [Op],
    /// The base directory (`RUN_DIR/base/NODE`), whose large unchanged files states clone.
    pub(crate) base: &'a CloneSource,
    pub(crate) cancel: &'a AtomicBool,
}

/// A sink for the recovery runs' tracers: their processes are untraced, their few lifecycle
/// events are not kept.
pub(super) struct Discard;

impl ordeal_tracer::Sink for Discard {
    fn event(&mut self, _: &Event) -> std::io::Result<()> {
        Ok(())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Recovery<'_> {
    /// The label of the last checkpoint taken before the crash point (before operation
    /// `crash_at` was issued).
    fn checkpoint_before(&self, crash_at: usize) -> Option<&str> {
        let bound = self.ops.get(crash_at).map_or(u64::MAX, |o| o.seq);
        self.checkpoints
            .iter()
            .rev()
            .find(|(seq, _)| *seq < bound)
            .map(|(_, l)| l.as_str())
    }

    /// What a workload target had written to its stdout before the crash point (before
    /// operation `crash_at` was issued); None for a node target.
    fn stdout_before(&self, crash_at: usize) -> Option<Vec<u8>> {
        let bound = self.ops.get(crash_at).map_or(u64::MAX, |o| o.seq);
        let writes = self.stdout?;
        Some(
            writes
                .iter()
                .filter(|(seq, _)| *seq < bound)
                .flat_map(|(_, b)| b.iter().copied())
                .collect(),
        )
    }

    /// Starts the node alone on `tree` (materialized in `dir/data/NODE`), waits for it to be
    /// ready, runs the crash check; `Some(reason)` if it does not recover. With a workload
    /// target, no node is started: the crash check alone says.
    pub(crate) fn recover(
        &self,
        tree: &Tree,
        dir: &Path,
        crash_at: usize,
    ) -> Result<Option<String>, Error> {
        let r = self
            .exp
            .resolve(&ResolveContext::new(dir, &self.opts.run.ordeal_exe))?;
        let Some(n) = r.node(self.node) else {
            return Err(Error::Usage(format!("no node {}", self.node)));
        };
        let Some(dd) = &n.data_dir else {
            return Err(Error::Usage(format!("node {} has no data_dir", self.node)));
        };
        crate::rundir::create_run_dir(dir)?;
        tree.materialize_with(&dd.path, Some(self.base))
            .map_err(|e| Error::Usage(format!("materializing a crash state: {e}")))?;
        let started: &[&NodeSpec] = match self.workload {
            Some(_) => &[],
            None => &[n],
        };
        let promised = Promised {
            checkpoint: self.checkpoint_before(crash_at),
            stdout: self.stdout_before(crash_at),
        };
        recover_on(&r, dir, started, promised, self.cancel)
    }
}

/// What was promised before a crash point, for the crash check (docs/crash.md#targets).
pub(super) struct Promised<'a> {
    /// The label of the last checkpoint before it (`ORDEAL_CRASH_CHECKPOINT`).
    pub(super) checkpoint: Option<&'a str>,
    /// What the workloads had written to their stdout before it (`ORDEAL_CRASH_STDOUT`);
    /// `None`: nothing recorded.
    pub(super) stdout: Option<Vec<u8>>,
}

/// Recovers on states already materialized in `dir` (resolved as `r`): starts `nodes`
/// (untraced; all of them before any ready condition is awaited: a cluster needs its quorum
/// to become ready), awaits their ready conditions in order, runs the crash check
/// (`[crash] check`, else `[check]`) with what was `promised`, and requires every node started
/// to be running still. `Some(reason)` if it does not recover.
pub(super) fn recover_on(
    r: &Resolved,
    dir: &Path,
    nodes: &[&NodeSpec],
    promised: Promised<'_>,
    cancel: &AtomicBool,
) -> Result<Option<String>, Error> {
    let origin_ns = ordeal_tracer::monotonic_ns();
    let engine = ordeal_tracer::Ptrace.start(
        Config {
            origin_ns,
            ..Default::default()
        },
        Box::new(Discard),
        None,
    )?;
    let mut ckpt = checkpoints::Checkpoints::start(r, dir, engine.marker())?;
    let shared = crate::faults::Shared::default();
    let quiet = Progress::new(false);
    let mut sup = Supervisor {
        engine: engine.as_ref(),
        origin_ns,
        ckpt: &ckpt,
        shared: &shared,
        net: None,
        schedule: None,
        started: Vec::new(),
        run_dir: dir,
        progress: &quiet,
        cancel,
        diag: crate::diag::Diag::disabled(dir),
        prober: None,
    };
    let deadline = Instant::now() + r.timeout;
    let outcome = (|| -> Result<Option<String>, Error> {
        for n in nodes {
            let env = sup.env_for(&n.name, &n.env);
            sup.start(
                &n.name, "node", &n.program, &n.argv, env, &n.cwd, false, None,
            )?;
        }
        for n in nodes {
            let Some(check) = &n.ready else { continue };
            let until = (Instant::now() + n.ready_timeout).min(deadline);
            let mut probe = Probe::new(check, dir, &n.name, &n.cwd, None, HashMap::new());
            match wait_ready(&mut sup, &n.name, &mut probe, until, cancel) {
                Ready::Yes => {}
                Ready::Exited(status) => {
                    let tail = sup.tail_of(&n.name);
                    let e = Error::ExitedBeforeReady {
                        node: n.name.clone(),
                        status,
                        tail,
                    };
                    return Ok(Some(e.to_string()));
                }
                Ready::Timeout => {
                    let e = Error::NotReady {
                        node: n.name.clone(),
                        within: n.ready_timeout,
                        why: crate::readiness::not_ready_why(check, until >= deadline),
                        tail: sup.tail_of(&n.name),
                    };
                    return Ok(Some(e.to_string()));
                }
                Ready::Cancelled => return Err(Error::Interrupted),
            }
        }
        if let Some(c) = r.crash_check.as_ref().or(r.check.as_ref()) {
            let mut c = c.clone();
            if let Some(l) = promised.checkpoint {
                c.env.insert(CRASH_CHECKPOINT_ENV.into(), l.to_string());
            }
            if let Some(out) = &promised.stdout {
                let path = dir.join("crash-stdout");
                std::fs::write(&path, out)
                    .map_err(crate::io_err(format!("writing {}", path.display())))?;
                c.env
                    .insert(CRASH_STDOUT_ENV.into(), path.display().to_string());
            }
            match sup.run_check(r, &c, deadline)? {
                Some(ExitStatus::Code(0)) => {}
                Some(st) => {
                    return Ok(Some(format!(
                        "{} failed ({st}){}",
                        c.name,
                        sup.tail_of(&c.name)
                    )))
                }
                None => return Err(Error::Interrupted),
            }
        }
        sup.drain_notices();
        for n in nodes {
            if let Some(st) = sup.exit_of(&n.name) {
                return Ok(Some(format!(
                    "node {} exited: {st}{}",
                    n.name,
                    sup.tail_of(&n.name)
                )));
            }
        }
        Ok(None)
    })();
    ckpt.stop();
    engine.shutdown()?;
    outcome
}

/// How waiting for the node's ready condition ended.
enum Ready {
    Yes,
    Exited(ExitStatus),
    Timeout,
    Cancelled,
}

/// Polls the node's ready condition until it holds, the node exits, `until` passes or the
/// search is cancelled. Exits wake it at once (they are notices); the condition itself is
/// polled every millisecond for the first 100 ms, then every 10 ms: a recovery is a few
/// milliseconds for a small program, so the run's 10 ms poll would be most of a state's time.
fn wait_ready(
    sup: &mut Supervisor,
    name: &str,
    probe: &mut Probe,
    until: Instant,
    cancel: &AtomicBool,
) -> Ready {
    let t0 = Instant::now();
    loop {
        sup.drain_notices();
        if let Some(st) = sup.exit_of(name) {
            return Ready::Exited(st);
        }
        if cancel.load(Ordering::SeqCst) {
            return Ready::Cancelled;
        }
        if probe.holds() {
            return Ready::Yes;
        }
        if Instant::now() >= until {
            return Ready::Timeout;
        }
        let poll = if t0.elapsed() < Duration::from_millis(100) {
            Duration::from_millis(1)
        } else {
            Duration::from_millis(10)
        };
        sup.wait_notice(poll);
    }
}
