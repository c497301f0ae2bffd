//! Applying a fault schedule during a run: which faults can be applied, the tracer hook that
//! fires them, and the `schedule.applied.toml` derived afterwards from the trace.

use ordeal_events::Event;
use ordeal_faults::{Applied, Fault, FaultKind, Schedule, Trigger, TriggerState, When};

/// Faults fired by time (after the workload starts), decided by the supervisor.
pub struct TimeFaults {
    faults: Vec<(Fault, TriggerState)>,
}

impl TimeFaults {
    pub fn new(s: &Schedule) -> Self {
        let faults = s
            .faults
            .iter()
            .zip(s.trigger_states())
            .filter(|(f, _)| matches!(f.trigger, Trigger::Time { .. }))
            .map(|(f, st)| (f.clone(), st))
            .collect();
        Self { faults }
    }

    /// The faults due `elapsed` after the workload started (each once).
    pub fn due(&mut self, elapsed: Duration) -> Vec<Fault> {
        self.faults
            .iter_mut()
            .filter_map(|(f, st)| st.observe_time(elapsed).then(|| f.clone()))
            .collect()
    }
}
use ordeal_tracer::{Action, Interceptor};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Faults this build can apply. The rest of the schedule format (restart, delay, partition,
/// heal) parses and validates but is refused here until the supervisor applies it.
pub fn check_supported(s: &Schedule) -> Result<(), String> {
    let mut problems = Vec::new();
    for f in &s.faults {
        let kind_ok = matches!(
            f.kind,
            FaultKind::Fail { .. }
                | FaultKind::ShortIo { .. }
                | FaultKind::Crash { .. }
                | FaultKind::Pause { .. }
        );
        if !kind_ok {
            problems.push(format!(
                "fault `{}`: `{}` cannot be applied by this version of ordeal yet (supported: fail, short-io, crash, pause)",
                f.name,
                f.kind.name(),
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n"))
    }
}

/// What fired faults left for the supervisor to do, shared with the tracer's hook.
#[derive(Debug, Default)]
pub struct Pending {
    /// Nodes crashed on purpose, with the delay after which to start them again: their
    /// deaths are the fault, not a failure of the run.
    pub crashed: BTreeMap<String, Option<Duration>>,
    /// Paused nodes: (node, fault, when to resume).
    pub paused: Vec<(String, String, Instant)>,
}

pub type Crashed = Arc<Mutex<Pending>>;

/// Records what a node-level fault needs done later; returns the tracer action for it.
pub fn node_fault(f: &Fault, shared: &Crashed) -> Option<Action> {
    let name = f.name.clone();
    let mut p = shared.lock().ok()?;
    match &f.kind {
        FaultKind::Crash {
            node,
            restart_after,
        } => {
            p.crashed.insert(node.clone(), *restart_after);
            Some(Action::Crash {
                name,
                node: node.clone(),
            })
        }
        FaultKind::Pause { node, duration } => {
            p.paused
                .push((node.clone(), name.clone(), Instant::now() + *duration));
            Some(Action::Pause {
                name,
                node: node.clone(),
            })
        }
        _ => None,
    }
}

/// The tracer hook: feeds every recorded call to each fault's trigger.
pub struct ScheduleHook {
    faults: Vec<Fault>,
    states: Vec<TriggerState>,
    crashed: Crashed,
}

impl ScheduleHook {
    pub fn new(s: &Schedule, crashed: Crashed) -> Self {
        Self {
            faults: s.faults.clone(),
            states: s.trigger_states(),
            crashed,
        }
    }

    fn decide(&mut self, ev: &Event, at: When) -> Action {
        for (f, st) in self.faults.iter().zip(self.states.iter_mut()) {
            if !st.observe(ev, at) {
                continue;
            }
            let name = f.name.clone();
            return match &f.kind {
                FaultKind::Fail { errno } => Action::Fail {
                    name,
                    errno: errno.code(),
                },
                FaultKind::ShortIo { max_bytes } => Action::Limit {
                    name,
                    max: *max_bytes,
                },
                _ => match node_fault(f, &self.crashed) {
                    Some(a) => a,
                    None => continue,
                },
            };
        }
        Action::Proceed
    }
}

impl Interceptor for ScheduleHook {
    fn at_entry(&mut self, ev: &Event) -> Action {
        self.decide(ev, When::Before)
    }
    fn at_exit(&mut self, ev: &Event) -> Action {
        self.decide(ev, When::After)
    }
}

/// What fired where, read back from the trace: every event marked `NAME: ...` is a firing of
/// fault NAME (one entry per firing); a fault with none is listed as not fired.
pub fn applied(s: &Schedule, events: &[Event]) -> Vec<Applied> {
    let mut out = Vec::new();
    for f in &s.faults {
        let prefix = format!("{}: ", f.name);
        let before = out.len();
        for e in events {
            let Some(what) = e.fault.as_deref().and_then(|m| m.strip_prefix(&prefix)) else {
                continue;
            };
            let mut a = Applied::fired_at(f, Some(e.seq), e.ts);
            a.node = Some(e.node.clone());
            a.detail = Some(if e.call == "fault" {
                format!("{what} (time trigger)")
            } else {
                format!("{what} at {} (pid {}, tid {})", e.call, e.pid, e.tid)
            });
            out.push(a);
        }
        if out.len() == before {
            out.push(Applied::not_fired(f));
        }
    }
    out
}
