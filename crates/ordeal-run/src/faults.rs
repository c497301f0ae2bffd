//! Applying a fault schedule during a run: which faults can be applied (by the experiment and
//! by the engine), the tracer hook that fires them, the start of node-level faults (what
//! lasts goes to [`crate::lasting`]), and the `schedule.applied.toml` derived afterwards from
//! the trace.

use crate::lasting::{self, Lasting};
use crate::Error;
use ordeal_events::{Event, FaultRef, SocketOp};
use ordeal_experiment::Network;
use ordeal_faults::{
    Applied, Fault, FaultKind, Holders, Schedule, Target, Trigger, TriggerState, When,
};
use ordeal_tracer::{Action, ExitStatus, Interceptor, Launcher, Watch};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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

/// What fired faults left for the supervisor (and the tracer hook) to do, shared between them.
#[derive(Default)]
pub struct Pending {
    /// With `network = "netns"`: partitions are packet drops there, not call-level effects.
    pub net: Option<Arc<ordeal_netns::Network>>,
    /// Fired faults whose effect lasts, in firing order: ended by the supervisor's tick
    /// (see [`crate::lasting`]).
    pub lasting: Vec<Box<dyn Lasting>>,
    /// Partitions in effect (the hook applies them to calls; in netns mode, drop rules).
    pub cuts: Vec<Cut>,
    /// The experiment's nodes and each partition shape's dice, to lay a shape when it fires.
    pub shapes: ordeal_faults::ShapeState,
    /// `snapshot` faults fired and not taken yet (the supervisor takes them).
    pub snapshots: Vec<String>,
    /// The experiment's `[[proxy]]`s, running.
    pub proxies: BTreeMap<String, ordeal_shadow::Proxy>,
    /// Who holds each role as last found (see [`crate::roles`]): a trigger naming a role
    /// counts the calls of these nodes.
    pub holders: Holders,
    /// Bumped at every change of `holders`, so that the hook copies them only then.
    pub holders_version: u64,
    /// A node-level fault fired since the roles were last looked for: they may have moved.
    pub roles_moved: bool,
    /// Faults aimed at a role that fired at a call: the supervisor finds the role's holder
    /// (a probe, which must not run on the tracer thread) and applies them, in order.
    pub deferred: Vec<Deferred>,
}

/// A fault aimed at a role, fired at a call and not applied yet.
#[derive(Debug, Clone, PartialEq)]
pub struct Deferred {
    pub fault: Fault,
    /// The node whose call fired it: the one acted on when it holds the role.
    pub fired_in: String,
}

/// The toxic a `toxic` fault adds, named after the fault.
pub fn toxic_of(fault: &str, spec: &ordeal_faults::ToxicSpec) -> ordeal_shadow::Toxic {
    let stream = if spec.stream == "upstream" {
        ordeal_shadow::toxic::Stream::Upstream
    } else {
        ordeal_shadow::toxic::Stream::Downstream
    };
    let attrs: Vec<(&str, u64)> = spec
        .attributes
        .iter()
        .map(|(k, v)| (k.as_str(), *v))
        .collect();
    let mut t = ordeal_shadow::Toxic::new(&spec.kind, stream, &attrs);
    t.name = fault.to_string();
    t
}

/// Checks what a schedule needs from the experiment beyond its nodes: every `toxic` fault
/// names a `[[proxy]]` and gives a toxic ordeal-shadow accepts.
pub fn check_toxics(s: &Schedule, proxies: &[String]) -> Result<(), Error> {
    let mut problems = Vec::new();
    for f in &s.faults {
        if let FaultKind::Toxic { proxy, toxic, .. } = &f.kind {
            if !proxies.contains(proxy) {
                problems.push(format!(
                    "fault `{}`: no [[proxy]] named `{proxy}` in the experiment{}",
                    f.name,
                    if proxies.is_empty() {
                        String::new()
                    } else {
                        format!(" (it has {})", proxies.join(", "))
                    }
                ));
            }
            if let Err(e) = toxic_of(&f.name, toxic).effect() {
                problems.push(format!("fault `{}`: {e}", f.name));
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Error::Schedule(problems))
    }
}

/// Checks that the engine can apply every fault of the schedule: without interception of
/// calls (a ptrace capability), a fault can neither act on a call nor fire at one, and a
/// partition on loopback (which acts on the calls that cross it) cannot be applied.
pub fn check_engine(s: &Schedule, network: Network, engine: &dyn Launcher) -> Result<(), Error> {
    if engine.capabilities().intercept {
        return Ok(());
    }
    let problems: Vec<String> = s
        .faults
        .iter()
        .filter_map(|f| {
            let why = if f.kind.is_call_level() {
                format!(
                    "a {} fault acts on the call at which it fires",
                    f.kind.name()
                )
            } else if !matches!(f.trigger, Trigger::Time { .. }) {
                "it fires at a call (an `nth` or `p` trigger)".to_string()
            } else if matches!(f.kind, FaultKind::Partition { .. }) && network == Network::Loopback
            {
                "a partition on network = \"loopback\" acts on the calls that cross it".to_string()
            } else {
                return None;
            };
            Some(format!(
                "fault `{}`: {why}, and the {} engine does not intercept calls",
                f.name,
                engine.name()
            ))
        })
        .collect();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Error::Schedule(problems))
    }
}

pub use crate::cuts::Cut;

pub type Shared = Arc<Mutex<Pending>>;

impl Pending {
    /// Makes the namespaces' drop rules match the partitions in effect (netns mode).
    pub fn sync_net(&self) -> Result<(), ordeal_netns::Error> {
        let Some(net) = &self.net else {
            return Ok(());
        };
        let links: BTreeSet<(String, String)> = self
            .cuts
            .iter()
            .flat_map(|c| c.links.iter().cloned())
            .collect();
        net.set_cuts(&links)
    }
}

/// What starting a node-level fault asks of whoever fired it (the supervisor at a time, the
/// tracer at a call): send `signal` to every process of a node, and mark the trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeAction {
    /// The node signalled or, with no signal, where a fault fired by time is marked.
    pub on: MarkOn,
    /// 0: none, only the mark.
    pub signal: i32,
    /// The mark's text (`crash n0`, `partition n0 | n1`).
    pub what: String,
}

/// Where a node-level fault acts, or is marked when it acts on no node in particular.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MarkOn {
    Node(String),
    /// The first node still running (a fault on every node: a snapshot); else as
    /// [`MarkOn::FirstStarted`].
    FirstRunning,
    /// The first process the run started (a fault on no node: a toxic on a proxy).
    FirstStarted,
}

impl NodeAction {
    fn signal(node: &str, signal: i32, what: String) -> Option<NodeAction> {
        Some(NodeAction {
            on: MarkOn::Node(node.to_string()),
            signal,
            what,
        })
    }

    fn mark(on: MarkOn, what: impl Into<String>) -> Option<NodeAction> {
        Some(NodeAction {
            on,
            signal: 0,
            what: what.into(),
        })
    }

    /// The tracer action applying it at a call. SIGKILL is a crash: when it hits the calling
    /// node at a call's entry, the call does not run either.
    pub fn at_call(self, by: FaultRef) -> Action {
        match (self.on, self.signal) {
            (MarkOn::Node(node), libc::SIGKILL) => Action::Crash { by, node },
            (MarkOn::Node(node), signal) if signal != 0 => Action::Signal {
                by,
                node,
                signal,
                what: self.what,
            },
            _ => Action::Mark {
                by,
                what: self.what,
            },
        }
    }
}

/// The node a fault signals when it fires: it fires only while that node runs. None for a
/// fault aimed at a role, until [`Fault::aimed_at`] its holder.
pub fn signalled_node(f: &Fault) -> Option<&str> {
    f.kind.target().and_then(Target::node)
}

/// Starts a node-level fault: records what it needs done later, and returns what to do now
/// (none for a restart, whose mark goes on the new incarnation's spawn, or a call fault, or a
/// fault still aimed at a role: see [`Fault::aimed_at`]).
pub fn node_fault(f: &Fault, shared: &Shared) -> Option<NodeAction> {
    let name = f.name.clone();
    if f.target_role().is_some() {
        return None;
    }
    let mut p = shared.lock().ok()?;
    if !f.kind.is_call_level() {
        // Leadership may move (a crash, a pause, a cut): roles are looked for again.
        p.roles_moved = true;
    }
    match &f.kind {
        FaultKind::Crash {
            node: Target::Node(node),
            restart_after,
        } => {
            // A node crashed again before its restart: the latest crash decides when.
            p.lasting.retain(|l| l.keeps_down() != Some(node.as_str()));
            p.lasting.push(Box::new(lasting::Crash {
                node: node.clone(),
                fault: name,
                restart_after: *restart_after,
            }));
            NodeAction::signal(node, libc::SIGKILL, format!("crash {node}"))
        }
        FaultKind::Pause {
            node: Target::Node(node),
            duration,
        } => {
            p.lasting.push(Box::new(lasting::Pause {
                node: node.clone(),
                fault: name,
                until: Instant::now() + *duration,
            }));
            NodeAction::signal(node, libc::SIGSTOP, format!("pause {node}"))
        }
        FaultKind::Signal {
            node: Target::Node(node),
            signal,
        } => {
            // The node may end of it: that end is the fault.
            p.lasting.push(Box::new(lasting::Signalled {
                node: node.clone(),
                fault: name,
                signal: signal.number(),
            }));
            let what = format!("signal {signal} {node}");
            NodeAction::signal(node, signal.number(), what)
        }
        FaultKind::Restart { node } => {
            // Marked on the spawn event of the new incarnation, by the supervisor.
            p.lasting.push(Box::new(lasting::Restart {
                node: node.clone(),
                fault: name,
            }));
            None
        }
        FaultKind::Partition {
            from,
            to,
            shape,
            oneway,
            duration,
        } => {
            let cut = Cut::of_partition(
                &name,
                (from, to),
                shape.as_ref(),
                *oneway,
                *duration,
                &mut p.shapes,
            );
            let cut = match cut {
                Ok(cut) => cut,
                Err(why) => {
                    let what = format!("partition {why} (not applied)");
                    return NodeAction::mark(MarkOn::FirstStarted, what);
                }
            };
            let what = format!("partition {}", cut.describe());
            let on = cut
                .mark_on
                .clone()
                .map_or(MarkOn::FirstStarted, MarkOn::Node);
            p.lasting.push(Box::new(lasting::Partition {
                fault: name,
                until: cut.until,
            }));
            p.cuts.push(cut);
            // In netns mode the rules are in place before the call (or time) that fired it
            // goes on. A failure leaves the partition unapplied, and says so in the marker.
            let what = match p.sync_net() {
                Ok(()) => what,
                Err(e) => format!("{what} (not applied: {e})"),
            };
            NodeAction::mark(on, what)
        }
        FaultKind::Heal => {
            // Marked on the first node cut off by the first partition healed.
            let on = p
                .cuts
                .first()
                .and_then(|c| c.mark_on.clone())
                .map_or(MarkOn::FirstStarted, MarkOn::Node);
            let healed: Vec<String> = p.cuts.drain(..).map(|c| c.fault).collect();
            // Healed now: their own ends are over.
            p.lasting.retain(|l| !healed.iter().any(|h| h == l.fault()));
            let mut what = if healed.is_empty() {
                "heal (no partition in effect)".to_string()
            } else {
                format!("heal {}", healed.join(","))
            };
            if let Err(e) = p.sync_net() {
                what.push_str(&format!(" (not applied: {e})"));
            }
            NodeAction::mark(on, what)
        }
        FaultKind::Snapshot => {
            p.snapshots.push(name);
            NodeAction::mark(MarkOn::FirstRunning, "snapshot")
        }
        FaultKind::Toxic {
            proxy,
            toxic,
            duration,
        } => {
            let t = toxic_of(&name, toxic);
            let what = format!("toxic {} {} on {proxy}", toxic.kind, toxic.stream);
            let added = p.proxies.get(proxy).map(|px| px.add_toxic(t.clone()));
            let what = match added {
                Some(Ok(_)) => {
                    p.lasting.push(Box::new(lasting::Toxic {
                        fault: name,
                        proxy: proxy.clone(),
                        toxic: t.name.clone(),
                        until: duration.map(|d| Instant::now() + d),
                    }));
                    what
                }
                Some(Err(e)) => format!("{what} (not applied: {e})"),
                None => format!("{what} (not applied: no such proxy)"),
            };
            NodeAction::mark(MarkOn::FirstStarted, what)
        }
        FaultKind::Delay { .. } | FaultKind::Fail { .. } | FaultKind::ShortIo { .. } => None,
        // Aimed at a role: returned above.
        FaultKind::Crash { .. } | FaultKind::Pause { .. } | FaultKind::Signal { .. } => None,
    }
}

/// Whether a fired fault still has something to end by itself (a resume, a heal, a toxic
/// removal, a restart): the recovery phase waits for it.
pub fn recovery_pending(shared: &Shared) -> bool {
    shared
        .lock()
        .is_ok_and(|p| p.lasting.iter().any(|l| l.ends()))
}

/// Whether a fault in effect makes quiet expected (a paused node).
pub fn quiet_expected(shared: &Shared) -> bool {
    shared
        .lock()
        .is_ok_and(|p| p.lasting.iter().any(|l| l.quiets()))
}

/// Whether a fired fault explains `node` ending with `status` (a crash's SIGKILL): that end
/// is the fault, not a failure of the run. Asked when the exit is recorded, while what the
/// fault left is still there.
pub fn explains_exit(shared: &Shared, node: &str, status: ExitStatus) -> bool {
    shared
        .lock()
        .is_ok_and(|p| p.lasting.iter().any(|l| l.explains_exit(node, status)))
}

/// Whether a fault keeps `node` down (crashed on purpose, not started again yet).
pub fn kept_down(shared: &Shared, node: &str) -> bool {
    shared
        .lock()
        .is_ok_and(|p| p.lasting.iter().any(|l| l.keeps_down() == Some(node)))
}

/// Whether a pause keeps `node` stopped.
pub fn stopped(shared: &Shared, node: &str) -> bool {
    shared
        .lock()
        .is_ok_and(|p| p.lasting.iter().any(|l| l.stops() == Some(node)))
}

/// The faults aimed at a role that fired at calls since the last call, in firing order.
pub fn take_deferred(shared: &Shared) -> Vec<Deferred> {
    shared
        .lock()
        .map(|mut p| std::mem::take(&mut p.deferred))
        .unwrap_or_default()
}

/// The `snapshot` faults fired since the last call.
pub fn take_snapshots(shared: &Shared) -> Vec<String> {
    shared
        .lock()
        .map(|mut p| std::mem::take(&mut p.snapshots))
        .unwrap_or_default()
}

/// The tracer hook: feeds every recorded call to each fault's trigger, and applies the
/// partitions in effect to the calls that cross them.
pub struct ScheduleHook {
    faults: Vec<Fault>,
    states: Vec<TriggerState>,
    shared: Shared,
    /// Whether a trigger counts a role's calls (then the holders are kept up to date).
    counts_roles: bool,
    /// The [`Pending::holders_version`] the trigger states were told.
    holders_version: u64,
}

impl ScheduleHook {
    pub fn new(s: &Schedule, shared: Shared) -> Self {
        Self {
            faults: s.faults.clone(),
            states: s.trigger_states(),
            shared,
            counts_roles: s
                .faults
                .iter()
                .any(|f| f.trigger.pattern().and_then(|p| p.role()).is_some()),
            holders_version: 0,
        }
    }

    /// Tells the trigger states who holds each role, when that changed.
    fn sync_holders(&mut self) {
        let Ok(p) = self.shared.lock() else { return };
        if p.holders_version == self.holders_version {
            return;
        }
        self.holders_version = p.holders_version;
        for st in &mut self.states {
            st.set_holders(&p.holders);
        }
    }

    fn decide(&mut self, ev: &Event, at: When) -> Action {
        if self.counts_roles {
            self.sync_holders();
        }
        for (f, st) in self.faults.iter().zip(self.states.iter_mut()) {
            if !st.observe(ev, at) {
                continue;
            }
            if f.target_role().is_some() {
                // Its node is found by a probe, off this thread: the supervisor applies it.
                if let Ok(mut p) = self.shared.lock() {
                    p.deferred.push(Deferred {
                        fault: f.clone(),
                        fired_in: ev.node.clone(),
                    });
                }
                continue;
            }
            let name = f.name.clone();
            return match &f.kind {
                FaultKind::Fail { errno } => Action::Fail {
                    by: FaultRef::fired(name),
                    errno: errno.code(),
                },
                FaultKind::ShortIo { max_bytes } => Action::Limit {
                    by: FaultRef::fired(name),
                    max: *max_bytes,
                },
                FaultKind::Delay { duration } => Action::Delay {
                    by: FaultRef::fired(name),
                    dur: *duration,
                },
                _ => match node_fault(f, &self.shared) {
                    Some(a) => a.at_call(FaultRef::fired(name)),
                    None => continue,
                },
            };
        }
        Action::Proceed
    }

    /// What a partition in effect does to this call (at entry): a connect or a send across it
    /// crosses the cut, which the tracer applies as a network dropping packets would
    /// ([`Action::Cut`]: sends queued until the heal, datagrams lost, handshakes hanging).
    fn partitioned(&self, ev: &Event) -> Action {
        let Some(peer) = ev.sock.as_ref().and_then(|s| s.peer_node.as_deref()) else {
            return Action::Proceed;
        };
        let connect = ev.call == "connect";
        if !connect && !ev.is_send() {
            return Action::Proceed;
        }
        let Ok(p) = self.shared.lock() else {
            return Action::Proceed;
        };
        if p.net.is_some() {
            // The kernel drops the packets: calls run as they would on a lossy network.
            return Action::Proceed;
        }
        // A handshake needs both ways; data, only its own.
        let cut = p
            .cuts
            .iter()
            .find(|c| c.blocks(&ev.node, peer) || (connect && c.blocks(peer, &ev.node)));
        match cut {
            // Effects of a partition, not firings of it (marked `by NAME: ...`).
            Some(cut) => Action::Cut {
                by: FaultRef::effect_of(&cut.fault),
                gate: cut.fault.clone(),
            },
            None => Action::Proceed,
        }
    }
}

/// The calls of the table a pattern can match (its call, class and direction; node, peer and
/// path are only known once the call is decoded).
fn calls_matching(p: &ordeal_faults::Pattern) -> impl Iterator<Item = i64> + '_ {
    ordeal_events::calls::CALLS
        .iter()
        .filter(move |c| p.call.as_deref().is_none_or(|name| name == c.name))
        .filter(move |c| p.class.is_none_or(|class| c.classes().contains(&class)))
        .filter(move |c| p.direction.is_none_or(|d| c.direction() == Some(d)))
        .map(|c| c.nr)
}

impl Interceptor for ScheduleHook {
    /// What must stop when the eBPF probe observes the rest: the calls a trigger's pattern
    /// can match (a crash at the 3rd `fsync` stops at `fsync` only), and with a partition on
    /// loopback the connects and sends that may cross it (and the shutdowns that wait for
    /// what it queued).
    fn watch(&self) -> Watch {
        let mut calls: Vec<i64> = self
            .faults
            .iter()
            .filter_map(|f| f.trigger.pattern())
            .flat_map(calls_matching)
            .collect();
        let loopback = self.shared.lock().map(|p| p.net.is_none()).unwrap_or(true);
        if loopback
            && self
                .faults
                .iter()
                .any(|f| matches!(f.kind, FaultKind::Partition { .. }))
        {
            calls.extend(
                ordeal_events::calls::CALLS
                    .iter()
                    .filter(|c| {
                        c.direction() == Some(ordeal_events::Direction::Send)
                            || c.socket.is_some_and(|s| {
                                matches!(s.op, SocketOp::Connect | SocketOp::Shutdown)
                            })
                    })
                    .map(|c| c.nr),
            );
        }
        calls.sort_unstable();
        calls.dedup();
        Watch::Calls(calls)
    }

    fn at_entry(&mut self, ev: &Event) -> Action {
        match self.decide(ev, When::Before) {
            Action::Proceed => self.partitioned(ev),
            a => a,
        }
    }
    fn at_exit(&mut self, ev: &Event) -> Action {
        self.decide(ev, When::After)
    }
    fn withdrawn(&mut self, ev: &Event) {
        for st in &mut self.states {
            st.withdraw(ev, When::Before);
        }
    }
    fn gate_open(&mut self, gate: &str) -> bool {
        self.shared
            .lock()
            .map(|p| !p.cuts.iter().any(|c| c.fault == gate))
            .unwrap_or(true)
    }
}

/// What fired where, read back from the trace: every event marked as a firing of fault NAME
/// (one entry per firing); a fault with none is listed as not fired.
pub fn applied(s: &Schedule, events: &[Event]) -> Vec<Applied> {
    let mut out = Vec::new();
    for f in &s.faults {
        let before = out.len();
        for e in events {
            let Some(what) = e
                .fault
                .as_ref()
                .filter(|m| m.is_firing_of(&f.name))
                .map(|m| &m.action)
            else {
                continue;
            };
            let mut a = Applied::fired_at(f, Some(e.seq), e.ts);
            a.role = f.target_role().map(str::to_string);
            a.node = Some(e.node.clone());
            a.detail = Some(match (e.call.as_str(), &f.trigger) {
                ("fault", Trigger::Time { .. }) => format!("{what} (time trigger)"),
                // Fired at a call, applied once a probe found the role's holder.
                ("fault", _) => format!("{what} (after its trigger, once its role was found)"),
                _ => format!("{what} at {} (pid {}, tid {})", e.call, e.pid, e.tid),
            });
            out.push(a);
        }
        if out.len() == before {
            out.push(Applied::not_fired(f));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule(text: &str) -> Schedule {
        let names = ordeal_faults::Participants::new(["n0", "n1", "n2"], ["client"]);
        Schedule::parse_for(text, "s.toml", &names).unwrap()
    }

    fn action(on: MarkOn, signal: i32, what: &str) -> Option<NodeAction> {
        Some(NodeAction {
            on,
            signal,
            what: what.into(),
        })
    }

    fn node(n: &str) -> MarkOn {
        MarkOn::Node(n.into())
    }

    #[test]
    fn node_faults_say_which_signal_goes_to_which_node_and_what_is_marked() {
        let s = schedule(
            r#"[[fault]]
kind = "crash"
node = "n0"
trigger = { after = "1s" }
[[fault]]
kind = "pause"
node = "n2"
duration = "1h"
trigger = { after = "1s" }
[[fault]]
kind = "restart"
node = "n0"
trigger = { after = "1s" }
[[fault]]
kind = "heal"
trigger = { after = "1s" }
[[fault]]
kind = "partition"
from = ["n1", "n0"]
to = ["n2"]
trigger = { after = "1s" }
[[fault]]
kind = "heal"
trigger = { after = "1s" }
[[fault]]
kind = "snapshot"
trigger = { after = "1s" }
[[fault]]
kind = "toxic"
proxy = "px"
toxic = { type = "latency", latency = 5 }
trigger = { after = "1s" }
[[fault]]
kind = "delay"
duration = "1s"
trigger = { nth = 1, call = "write" }
"#,
        );
        let shared = Shared::default();
        let got: Vec<Option<NodeAction>> =
            s.faults.iter().map(|f| node_fault(f, &shared)).collect();
        assert_eq!(
            got,
            [
                action(node("n0"), libc::SIGKILL, "crash n0"),
                action(node("n2"), libc::SIGSTOP, "pause n2"),
                None,
                action(MarkOn::FirstStarted, 0, "heal (no partition in effect)"),
                action(node("n1"), 0, "partition n0,n1 | n2"),
                // Marked where the partition it heals was: its first `from` node.
                action(node("n1"), 0, "heal partition-5"),
                action(MarkOn::FirstRunning, 0, "snapshot"),
                action(
                    MarkOn::FirstStarted,
                    0,
                    "toxic latency downstream on px (not applied: no such proxy)"
                ),
                None,
            ]
        );
        let signalled: Vec<Option<&str>> = s.faults.iter().map(signalled_node).collect();
        assert_eq!(
            signalled,
            [
                Some("n0"),
                Some("n2"),
                None,
                None,
                None,
                None,
                None,
                None,
                None
            ]
        );
    }

    #[test]
    fn at_a_call_sigkill_is_a_crash_another_signal_a_signal_and_none_a_mark() {
        let by = || FaultRef::fired("f");
        let kill = action(node("n0"), libc::SIGKILL, "crash n0").unwrap();
        assert_eq!(
            kill.at_call(by()),
            Action::Crash {
                by: by(),
                node: "n0".into()
            }
        );
        let stop = action(node("n2"), libc::SIGSTOP, "pause n2").unwrap();
        assert_eq!(
            stop.at_call(by()),
            Action::Signal {
                by: by(),
                node: "n2".into(),
                signal: libc::SIGSTOP,
                what: "pause n2".into()
            }
        );
        let mark = action(MarkOn::FirstRunning, 0, "snapshot").unwrap();
        assert_eq!(
            mark.at_call(by()),
            Action::Mark {
                by: by(),
                what: "snapshot".into()
            }
        );
    }

    #[test]
    fn a_crash_explains_the_sigkill_of_its_node_only() {
        let s =
            schedule("[[fault]]\nkind = \"crash\"\nnode = \"n0\"\ntrigger = { after = \"1s\" }\n");
        let shared = Shared::default();
        assert!(!explains_exit(
            &shared,
            "n0",
            ExitStatus::Signal(libc::SIGKILL)
        ));
        node_fault(&s.faults[0], &shared);
        assert!(explains_exit(
            &shared,
            "n0",
            ExitStatus::Signal(libc::SIGKILL)
        ));
        assert!(!explains_exit(&shared, "n0", ExitStatus::Code(1)));
        assert!(!explains_exit(
            &shared,
            "n0",
            ExitStatus::Signal(libc::SIGSEGV)
        ));
        assert!(!explains_exit(
            &shared,
            "n1",
            ExitStatus::Signal(libc::SIGKILL)
        ));
    }
    #[test]
    fn a_signal_goes_to_its_node_and_explains_the_ends_it_causes_until_the_node_is_dead() {
        let s = schedule(
            "[[fault]]\nname = \"term\"\nkind = \"signal\"\nnode = \"n1\"\n\
             signal = \"SIGTERM\"\ntrigger = { after = \"1s\" }\n",
        );
        let f = &s.faults[0];
        assert_eq!(signalled_node(f), Some("n1"));
        let shared = Shared::default();
        let a = node_fault(f, &shared).unwrap();
        assert_eq!(
            a,
            action(node("n1"), libc::SIGTERM, "signal SIGTERM n1").unwrap()
        );
        assert_eq!(
            a.at_call(FaultRef::fired("term")),
            Action::Signal {
                by: FaultRef::fired("term"),
                node: "n1".into(),
                signal: libc::SIGTERM,
                what: "signal SIGTERM n1".into()
            }
        );
        // Killed by it, or ended as a program handling it ends: the fault.
        for st in [
            ExitStatus::Signal(libc::SIGTERM),
            ExitStatus::Code(0),
            ExitStatus::Code(128 + libc::SIGTERM),
        ] {
            assert!(explains_exit(&shared, "n1", st), "{st}");
        }
        // Anything else is a failure of the run, and another node's end is not its doing.
        for st in [
            ExitStatus::Code(1),
            ExitStatus::Signal(libc::SIGSEGV),
            ExitStatus::Signal(libc::SIGKILL),
        ] {
            assert!(!explains_exit(&shared, "n1", st), "{st}");
        }
        assert!(!explains_exit(
            &shared,
            "n0",
            ExitStatus::Signal(libc::SIGTERM)
        ));
        // Nothing to wait for, nothing kept down; over once the node is dead.
        assert!(!recovery_pending(&shared) && !kept_down(&shared, "n1"));
        let p = shared.lock().unwrap();
        let l = &p.lasting[0];
        let (mut died, down) = (BTreeMap::new(), BTreeSet::new());
        let tick = |all, died: &BTreeMap<String, Instant>| {
            l.due(&lasting::Tick {
                now: Instant::now(),
                all,
                died,
                down: &down,
            })
        };
        assert!(!tick(false, &died));
        assert!(tick(true, &died));
        died.insert("n1".to_string(), Instant::now());
        assert!(tick(false, &died));
    }

    /// The calls a schedule's hook watches, on loopback.
    fn watched(text: &str) -> Vec<&'static str> {
        let hook = ScheduleHook::new(&schedule(text), Shared::default());
        let Watch::Calls(nrs) = hook.watch() else {
            panic!("a schedule watches the calls it may act on, not all");
        };
        let mut names: Vec<&str> = nrs
            .iter()
            .map(|&nr| ordeal_tracer::syscall_name(nr))
            .collect();
        names.sort_unstable();
        names
    }

    /// Under eBPF, only what a fault may act on stops: a trigger's call, class and direction;
    /// a partition on loopback stops the connects and sends that may cross it, and the
    /// shutdowns that wait for what it queued.
    #[test]
    fn a_schedule_watches_only_the_calls_its_faults_may_act_on() {
        let crash_at_fsync = "[[fault]]\nkind = \"crash\"\nnode = \"n0\"\n\
                              trigger = { nth = 3, node = \"n0\", call = \"fsync\" }\n";
        assert_eq!(watched(crash_at_fsync), ["fsync"]);
        let timed = "[[fault]]\nkind = \"pause\"\nnode = \"n2\"\nduration = \"1s\"\n\
                     trigger = { after = \"1s\" }\n";
        assert!(watched(timed).is_empty());
        let recvs = "[[fault]]\nkind = \"pause\"\nnode = \"n0\"\nduration = \"1s\"\n\
                     trigger = { nth = 10, node = \"n0\", class = \"data\", direction = \"recv\" }\n";
        assert_eq!(
            watched(recvs),
            ["read", "readv", "recvfrom", "recvmmsg", "recvmsg"]
        );
        let cut = "[[fault]]\nkind = \"partition\"\nfrom = [\"n0\"]\nto = [\"n1\"]\n\
                   duration = \"1s\"\ntrigger = { after = \"1s\" }\n";
        assert_eq!(
            watched(cut),
            ["connect", "sendmmsg", "sendmsg", "sendto", "shutdown", "write", "writev"]
        );
    }
}
