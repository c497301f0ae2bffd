//! Applying a fault schedule during a run: which faults can be applied, the tracer hook that
//! fires them, and the `schedule.applied.toml` derived afterwards from the trace.

use ordeal_events::Event;
use ordeal_faults::{Applied, Fault, FaultKind, Schedule, Trigger, TriggerState, When};
use ordeal_tracer::{Action, Interceptor};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Faults this build can apply. The rest of the schedule format (restart, pause, delay,
/// partition, heal, time triggers) parses and validates but is refused here until the
/// supervisor applies it.
pub fn check_supported(s: &Schedule) -> Result<(), String> {
    let mut problems = Vec::new();
    for f in &s.faults {
        let kind_ok = matches!(
            f.kind,
            FaultKind::Fail { .. } | FaultKind::ShortIo { .. } | FaultKind::Crash { .. }
        );
        if !kind_ok {
            problems.push(format!(
                "fault `{}`: `{}` cannot be applied by this version of ordeal yet (supported: fail, short-io, crash)",
                f.name,
                f.kind.name(),
            ));
        }
        if matches!(f.trigger, Trigger::Time { .. }) {
            problems.push(format!(
                "fault `{}`: time triggers cannot be applied by this version of ordeal yet (use nth or p)",
                f.name
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n"))
    }
}

/// Nodes crashed on purpose, with the delay after which to start them again: their deaths
/// are the fault, not a failure of the run.
pub type Crashed = Arc<Mutex<BTreeMap<String, Option<Duration>>>>;

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
                FaultKind::Crash {
                    node,
                    restart_after,
                } => {
                    if let Ok(mut c) = self.crashed.lock() {
                        c.insert(node.clone(), *restart_after);
                    }
                    Action::Crash {
                        name,
                        node: node.clone(),
                    }
                }
                _ => continue,
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
            a.detail = Some(format!(
                "{what} at {} (pid {}, tid {})",
                e.call, e.pid, e.tid
            ));
            out.push(a);
        }
        if out.len() == before {
            out.push(Applied::not_fired(f));
        }
    }
    out
}
