//! The faults that fired, seen as the tracer writes their marked events: a live line when a
//! fault fires and when its effect ends (heal, resume, restart, removal of a toxic), at that
//! moment and in order with the other progress lines, whichever thread decided the fault
//! (the tracer's call hook or the supervisor); and summary.json's `faults` from the same
//! marks ([`records`]).
//!
//! Every trace event passes through [`FaultWatch`], a [`Sink`] around the trace writer, so
//! no firing is missed and each is seen with its `seq`.

use ordeal_events::{Event, FaultMark};
use ordeal_faults::{FaultKind, Schedule};
use ordeal_hb::{seconds, FaultRecord};
use ordeal_tracer::Sink;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// A marked event that matters to people: a firing, or the end of a fault's effect.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Seen {
    pub mark: FaultMark,
    pub node: String,
    pub call: String,
    pub seq: u64,
    /// Trace time (ns).
    pub ts: u64,
}

/// What the watch collected, shared with the run.
pub(crate) type SeenLog = Arc<Mutex<Vec<Seen>>>;

/// The trace's sink with an eye on fault marks.
pub(crate) struct FaultWatch<S> {
    inner: S,
    seen: SeenLog,
    /// The progress lines' time 0, when they are on.
    live: Option<Instant>,
}

impl<S: Sink> FaultWatch<S> {
    pub(crate) fn new(inner: S, seen: SeenLog, live: Option<Instant>) -> Self {
        Self { inner, seen, live }
    }
}

impl<S: Sink> Sink for FaultWatch<S> {
    fn event(&mut self, ev: &Event) -> std::io::Result<()> {
        if let Some(mark) = ev.fault.as_ref().filter(|m| !m.effect || is_end(m)) {
            let seen = Seen {
                mark: mark.clone(),
                node: ev.node.clone(),
                call: ev.call.clone(),
                seq: ev.seq,
                ts: ev.ts,
            };
            if let Some(t0) = self.live {
                // Written before the event: the line comes at the moment it happens, ahead
                // of anything that follows from it.
                eprintln!("[{:7.3}s] {}", t0.elapsed().as_secs_f64(), live_line(&seen));
            }
            if let Ok(mut s) = self.seen.lock() {
                s.push(seen);
            }
        }
        self.inner.event(ev)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }

    fn caught_up(&mut self, ts: u64) {
        self.inner.caught_up(ts)
    }
}

/// Whether an effect mark ends its fault's effect (see docs/faults.md for the marks).
fn is_end(m: &FaultMark) -> bool {
    let a = m.action.as_str();
    a == "heal"
        || a == "final heal"
        || a.starts_with("resume ")
        || (a.starts_with("restart ") && a.ends_with("(restart_after)"))
        || a.ends_with("of the toxic")
}

/// `fault NAME fired on NODE at CALL (seq N): ACTION` or `fault NAME ended on NODE (seq N):
/// ACTION`.
pub(crate) fn live_line(s: &Seen) -> String {
    let m = &s.mark;
    if m.effect {
        format!(
            "fault {} ended on {} (seq {}): {}",
            m.name, s.node, s.seq, m.action
        )
    } else if s.call == "fault" {
        // A marker event: the fault was fired by time or once its role was found.
        format!(
            "fault {} fired on {} (seq {}): {}",
            m.name, s.node, s.seq, m.action
        )
    } else {
        format!(
            "fault {} fired on {} at {} (seq {}): {}",
            m.name, s.node, s.call, s.seq, m.action
        )
    }
}

/// summary.json's `faults`: one record per firing, in trace order, with the end of its
/// effect when one was marked: its own end (heal, resume, restart, removal), or a `heal`
/// fault for partitions, or a `restart` fault for a crash of the node it restarts.
pub(crate) fn records(seen: &[Seen], schedule: &Schedule) -> Vec<FaultRecord> {
    let kind_of = |name: &str| {
        schedule
            .faults
            .iter()
            .find(|f| f.name == name)
            .map(|f| &f.kind)
    };
    let mut seen: Vec<&Seen> = seen.iter().collect();
    seen.sort_by_key(|s| s.seq);
    let mut out: Vec<FaultRecord> = Vec::new();
    // Index into `out` of each firing still in effect.
    let mut open: Vec<usize> = Vec::new();
    for s in seen {
        let kind = kind_of(&s.mark.name);
        if s.mark.effect {
            // Its own end: the oldest firing of that fault still open.
            if let Some(i) = open.iter().position(|&i| out[i].name == s.mark.name) {
                out[open.remove(i)].healed_at = Some(seconds(s.ts));
            }
            continue;
        }
        let ends: Vec<usize> = match kind {
            Some(FaultKind::Heal) => open
                .iter()
                .copied()
                .filter(|&i| out[i].kind == "partition")
                .collect(),
            Some(FaultKind::Restart { .. }) => open
                .iter()
                .copied()
                .filter(|&i| out[i].kind == "crash" && out[i].node == s.node)
                .collect(),
            _ => Vec::new(),
        };
        for i in ends {
            out[i].healed_at = Some(seconds(s.ts));
            open.retain(|&o| o != i);
        }
        out.push(FaultRecord {
            name: s.mark.name.clone(),
            kind: kind.map_or("unknown", |k| k.name()).to_string(),
            node: s.node.clone(),
            call: s.call.clone(),
            seq: s.seq,
            action: s.mark.action.clone(),
            fired_at: seconds(s.ts),
            healed_at: None,
        });
        if lasts(kind) {
            open.push(out.len() - 1);
        }
    }
    out
}

/// Whether a firing of this kind has an effect that ends later.
fn lasts(kind: Option<&FaultKind>) -> bool {
    matches!(
        kind,
        Some(
            FaultKind::Pause { .. }
                | FaultKind::Partition { .. }
                | FaultKind::Toxic { .. }
                | FaultKind::Crash { .. }
        )
    )
}

#[cfg(test)]
mod tests;
