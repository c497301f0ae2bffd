//! The supervisor's side of node-level faults that last: it ends them on time through its
//! engine ([`lasting::tick`] with the supervisor as [`EndCtx`]), starts a crashed node again
//! and waits until it is ready, and waits for a node crashed during its own start-up.

use crate::faults::Shared;
use crate::lasting::{self, EndCtx};
use crate::supervisor::{Stop, Supervisor, POLL};
use crate::Error;
use ordeal_events::FaultMark;
use ordeal_experiment::Resolved;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::Instant;

impl Supervisor<'_> {
    /// Ends every lasting fault that is due (all that last until the end with `all`). With
    /// `restarts` (the experiment and the run's deadline) also those that restart a node;
    /// without (waiting for a node to be ready), only the quick ones.
    pub(crate) fn end_lasting(
        &mut self,
        all: bool,
        restarts: Option<(&Resolved, Instant)>,
    ) -> Result<(), Error> {
        let died = self.deaths();
        let shared = self.shared;
        let mut ctx = Ending {
            sup: self,
            restarts,
        };
        lasting::tick(shared, all, restarts.is_some(), &died, &mut ctx)
    }

    /// When each node whose latest incarnation is dead died.
    fn deaths(&self) -> BTreeMap<String, Instant> {
        let mut died = BTreeMap::new();
        for s in &self.started {
            match s.exited_at {
                Some(t) => died.insert(s.name.clone(), t),
                None => died.remove(&s.name),
            };
        }
        died
    }

    /// Starts `name` again after its crash (its spawn event marked with `marker`) and waits
    /// until it is ready. `Ok(false)`: it crashed again while starting (a later tick restarts
    /// it), or the run was cancelled.
    fn restart_node(
        &mut self,
        r: &Resolved,
        name: &str,
        marker: FaultMark,
        deadline: Instant,
    ) -> Result<bool, Error> {
        let Some(n) = r.nodes.iter().find(|n| n.name == name) else {
            return Ok(true);
        };
        self.progress
            .say(format!("restarting node {name} after its crash"));
        // Its ready line must come from the new incarnation: skip what the logs hold.
        let logs_so_far: HashMap<PathBuf, usize> = ["stdout", "stderr"]
            .iter()
            .map(|ext| self.run_dir.join("logs").join(format!("{name}.{ext}")))
            .map(|p| {
                let len = std::fs::metadata(&p).map(|m| m.len() as usize).unwrap_or(0);
                (p, len)
            })
            .collect();
        let env = self.env_for(&n.name, &n.env);
        self.start(
            &n.name,
            "node",
            &n.program,
            &n.argv,
            env,
            &n.cwd,
            n.trace,
            Some(marker),
        )?;
        if let Some(s) = self.started.last_mut() {
            s.restarted = true;
        }
        let Some(check) = &n.ready else {
            return Ok(true);
        };
        let t0 = Instant::now();
        let until = (t0 + n.ready_timeout).min(deadline);
        match self.wait_ready(&n.name, check, &n.cwd, until, logs_so_far)? {
            Ok(()) => {
                self.progress.say(format!(
                    "{name} ready again after {:.3}s",
                    t0.elapsed().as_secs_f64()
                ));
                self.recovered(name);
                Ok(true)
            }
            Err(Stop::Cancelled | Stop::Crashed) => Ok(false),
            Err(Stop::Timeout) => Err(Error::NotReadyAfterRestart {
                node: name.to_string(),
            }),
        }
    }

    /// A crash fault killed `name` before it was ready: waits until its restart (which waits
    /// for the ready condition) brought it back. `Ok(false)`: the run was cancelled.
    pub(crate) fn await_restart(
        &mut self,
        r: &Resolved,
        name: &str,
        deadline: Instant,
    ) -> Result<bool, Error> {
        loop {
            self.drain_notices();
            self.end_lasting(false, Some((r, deadline)))?;
            // Whether the fault keeping it down restarts it.
            let restarts = self.shared.lock().ok().and_then(|p| {
                p.lasting
                    .iter()
                    .find(|l| l.keeps_down() == Some(name))
                    .map(|l| l.ends())
            });
            match restarts {
                Some(false) => {
                    return Err(Error::CrashedForGood {
                        node: name.to_string(),
                    })
                }
                Some(true) => {}
                None => match self.exit_of(name) {
                    // Restarted and ready.
                    None => return Ok(true),
                    Some(status) => {
                        let latest = self.started.iter().rev().find(|s| s.name == name);
                        if !latest.is_some_and(|s| self.was_crashed(s)) {
                            return Err(Error::ExitedBeforeReady {
                                node: name.to_string(),
                                status,
                                tail: self.tail_of(name),
                            });
                        }
                    }
                },
            }
            if self.cancel.load(Ordering::SeqCst) {
                return Ok(false);
            }
            if Instant::now() >= deadline {
                return Err(Error::NotBackInTime {
                    node: name.to_string(),
                });
            }
            self.wait_notice(POLL);
        }
    }
}

/// The supervisor as the context lasting faults end in.
struct Ending<'s, 'a, 'r> {
    sup: &'s mut Supervisor<'a>,
    restarts: Option<(&'r Resolved, Instant)>,
}

impl EndCtx for Ending<'_, '_, '_> {
    fn say(&self, msg: &str) {
        self.sup.progress.say(msg);
    }
    fn shared(&self) -> &Shared {
        self.sup.shared
    }
    fn signal(&mut self, node: &str, signal: i32, mark: FaultMark) -> Result<(), Error> {
        Ok(self.sup.engine.signal_node(node, signal, Some(mark))?)
    }
    fn first_started(&self) -> Option<String> {
        self.sup.started.first().map(|s| s.name.clone())
    }
    fn is_dead(&self, node: &str) -> bool {
        let latest = self.sup.started.iter().rev().find(|s| s.name == node);
        latest.is_some_and(|s| s.exited_at.is_some())
    }
    fn restart(&mut self, node: &str, mark: FaultMark) -> Result<bool, Error> {
        match self.restarts {
            Some((r, deadline)) => self.sup.restart_node(r, node, mark, deadline),
            // Not reached: ends that restart wait for a tick that may restart.
            None => Ok(true),
        }
    }
}
