//! Faults that last: what a fired node-level fault leaves to do later, and the one tick that
//! does it.
//!
//! A fault whose effect lasts (a pause until its resume, a partition until its heal, a toxic
//! until its removal, a crash until its `restart_after`, a `restart` until its node is dead,
//! a signal until its node is dead)
//! is a [`Lasting`] value, pushed into [`Pending::lasting`] by [`faults::node_fault`] when it
//! fires. The supervisor calls `tick` on every turn of its loops: each value that is
//! [`due`](Lasting::due) is taken out and [ended](Lasting::end) through an [`EndCtx`] (the
//! supervisor's side: signals with fault marks, restarts). A new node-level fault that lasts
//! is one more type here and its start in [`faults::node_fault`]; the supervisor is not
//! edited.
//!
//! Order within a tick: quick ends first, then the ends that restart a node (they wait for
//! it to be ready), each in firing order.
//!
//! [`faults::node_fault`]: crate::faults::node_fault
//! [`Pending::lasting`]: crate::faults::Pending::lasting

use crate::faults::Shared;
use crate::Error;
use ordeal_events::FaultMark;
use ordeal_tracer::ExitStatus;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

/// When a tick happens, and what the supervisor knows of the nodes then.
pub struct Tick<'a> {
    pub now: Instant,
    /// The final end, after the workloads: whatever lasts until the end ends now.
    pub all: bool,
    /// When each node that is not running died (its latest incarnation).
    pub died: &'a BTreeMap<String, Instant>,
    /// Nodes a fault keeps down (see [`Lasting::keeps_down`]).
    pub down: &'a BTreeSet<String>,
}

impl Tick<'_> {
    /// Whether a fault lasting until `until` (`None`: until the end) ends at this tick.
    pub fn ends(&self, until: Option<Instant>) -> bool {
        self.all || until.is_some_and(|t| t <= self.now)
    }
}

/// What ending a lasting fault may do: the supervisor's side.
pub trait EndCtx {
    /// A progress line.
    fn say(&self, msg: &str);
    /// What the run's faults share with the tracer hook (partitions, proxies, namespaces).
    fn shared(&self) -> &Shared;
    /// Sends `signal` (0: none) to every process of `node`, recording `mark` in the trace.
    fn signal(&mut self, node: &str, signal: i32, mark: FaultMark) -> Result<(), Error>;
    /// The first process the run started (where a fault acting on no node is marked).
    fn first_started(&self) -> Option<String>;
    /// Whether `node`'s latest incarnation is dead.
    fn is_dead(&self, node: &str) -> bool;
    /// Starts `node` again (its spawn event marked with `mark`) and waits until it is ready.
    /// `Ok(false)`: it did not come back (crashed again while starting, or the run was
    /// cancelled): the tick stops there.
    fn restart(&mut self, node: &str, mark: FaultMark) -> Result<bool, Error>;
}

/// A fired fault whose effect lasts until the supervisor ends it.
pub trait Lasting: Send {
    /// The fault's name.
    fn fault(&self) -> &str;
    /// Whether it ends at this tick.
    fn due(&self, tick: &Tick) -> bool;
    /// Ends it: undoes its effect and marks the end in the trace. `all`: the final end.
    fn end(self: Box<Self>, all: bool, ctx: &mut dyn EndCtx) -> Result<(), Error>;
    /// Ending it starts a node and waits until it is ready: it ends after the quick ends of
    /// its tick, and never while the supervisor waits for a node to be ready.
    fn restarts(&self) -> bool {
        false
    }
    /// The node it keeps down on purpose: that node's death is the fault, not a failure of
    /// the run. Over once the node is started again.
    fn keeps_down(&self) -> Option<&str> {
        None
    }
    /// Whether it explains `node` ending with `status`: that end is the fault, not a failure
    /// of the run (asked when the exit is recorded).
    fn explains_exit(&self, _node: &str, _status: ExitStatus) -> bool {
        false
    }
    /// Whether it ends by itself (the recovery phase waits for it); a crash without
    /// `restart_after` lasts until a `restart` fault.
    fn ends(&self) -> bool {
        true
    }
    /// While it lasts, quiet is expected (no traced event without a hang: a paused node).
    fn quiets(&self) -> bool {
        false
    }
    /// The node it keeps stopped (a pause): a role probe would wait for it in vain.
    fn stops(&self) -> Option<&str> {
        None
    }
}

/// Ends every due lasting fault of `shared` through `ctx`: with `restarts` false (the
/// supervisor waits for a node to be ready), only the quick ones.
pub(crate) fn tick(
    shared: &Shared,
    all: bool,
    restarts: bool,
    died: &BTreeMap<String, Instant>,
    ctx: &mut dyn EndCtx,
) -> Result<(), Error> {
    let batch: Vec<Box<dyn Lasting>> = {
        let Ok(mut p) = shared.lock() else {
            return Ok(());
        };
        let down: BTreeSet<String> = p
            .lasting
            .iter()
            .filter_map(|l| l.keeps_down().map(str::to_string))
            .collect();
        let t = Tick {
            now: Instant::now(),
            all,
            died,
            down: &down,
        };
        let (mut due, rest): (Vec<_>, Vec<_>) = p
            .lasting
            .drain(..)
            .partition(|l| (restarts || !l.restarts()) && l.due(&t));
        p.lasting = rest;
        // Stable: firing order within each group.
        due.sort_by_key(|l| l.restarts());
        due
    };
    // The lock is not held while ending: signals and restarts go through the engine, whose
    // tracer thread takes it in the hook.
    let mut batch = VecDeque::from(batch);
    while let Some(l) = batch.pop_front() {
        let mut t = Tracking {
            inner: &mut *ctx,
            restarted: None,
            halted: false,
        };
        l.end(all, &mut t)?;
        let (restarted, halted) = (t.restarted, t.halted);
        if let Some(node) = restarted {
            // Started again: whatever kept it down is over.
            batch.retain(|l| l.keeps_down() != Some(node.as_str()));
        }
        if halted {
            // The rest waits for the next tick, in its place.
            if let Ok(mut p) = shared.lock() {
                let later = std::mem::take(&mut p.lasting);
                p.lasting = batch.drain(..).chain(later).collect();
            }
            break;
        }
    }
    Ok(())
}

/// The context as an end sees it: a restart also ends what kept its node down.
struct Tracking<'c> {
    inner: &'c mut dyn EndCtx,
    restarted: Option<String>,
    halted: bool,
}

impl EndCtx for Tracking<'_> {
    fn say(&self, msg: &str) {
        self.inner.say(msg)
    }
    fn shared(&self) -> &Shared {
        self.inner.shared()
    }
    fn signal(&mut self, node: &str, signal: i32, mark: FaultMark) -> Result<(), Error> {
        self.inner.signal(node, signal, mark)
    }
    fn first_started(&self) -> Option<String> {
        self.inner.first_started()
    }
    fn is_dead(&self, node: &str) -> bool {
        self.inner.is_dead(node)
    }
    fn restart(&mut self, node: &str, mark: FaultMark) -> Result<bool, Error> {
        if let Ok(mut p) = self.inner.shared().lock() {
            p.lasting.retain(|l| l.keeps_down() != Some(node));
        }
        self.restarted = Some(node.to_string());
        let back = self.inner.restart(node, mark)?;
        self.halted = !back;
        Ok(back)
    }
}

/// A paused node (SIGSTOP), resumed (SIGCONT) when its `duration` is over.
pub struct Pause {
    pub node: String,
    pub fault: String,
    pub until: Instant,
}

impl Lasting for Pause {
    fn fault(&self) -> &str {
        &self.fault
    }
    fn due(&self, tick: &Tick) -> bool {
        self.until <= tick.now
    }
    fn end(self: Box<Self>, _all: bool, ctx: &mut dyn EndCtx) -> Result<(), Error> {
        let Pause { node, fault, .. } = *self;
        ctx.say(&format!("resuming node {node} (fault {fault})"));
        // An effect: a resume is not a firing of the pause.
        let mark = FaultMark::effect(&fault, format!("resume {node}"));
        ctx.signal(&node, libc::SIGCONT, mark)
    }
    fn quiets(&self) -> bool {
        true
    }
    fn stops(&self) -> Option<&str> {
        Some(&self.node)
    }
}

/// A partition in effect ([`crate::faults::Cut`] in [`crate::faults::Pending::cuts`]),
/// healed when its `duration` is over, else at the end. A `heal` fault ends it earlier,
/// without a mark.
pub struct Partition {
    pub fault: String,
    /// Tells its cut from another firing of the same fault.
    pub until: Option<Instant>,
}

impl Lasting for Partition {
    fn fault(&self) -> &str {
        &self.fault
    }
    fn due(&self, tick: &Tick) -> bool {
        tick.ends(self.until)
    }
    fn end(self: Box<Self>, all: bool, ctx: &mut dyn EndCtx) -> Result<(), Error> {
        let cut = {
            let Ok(mut p) = ctx.shared().lock() else {
                return Ok(());
            };
            let Some(i) = p
                .cuts
                .iter()
                .position(|c| c.fault == self.fault && c.until == self.until)
            else {
                return Ok(());
            };
            let cut = p.cuts.remove(i);
            p.sync_net().map_err(Error::Cuts)?;
            cut
        };
        let why = if all { "final heal" } else { "heal" };
        ctx.say(&format!(
            "{why}: partition {} ({})",
            cut.describe(),
            cut.fault
        ));
        let node = cut.mark_on.clone().unwrap_or_default();
        // An effect: a heal is not a firing of the partition. The signal-less request also
        // wakes the tracer, which lets the threads the partition held go on.
        ctx.signal(&node, 0, FaultMark::effect(&cut.fault, why))
    }
}

/// A toxic on a proxy, removed when its `duration` is over, else at the end.
pub struct Toxic {
    pub fault: String,
    pub proxy: String,
    /// The toxic's name on the proxy.
    pub toxic: String,
    pub until: Option<Instant>,
}

impl Lasting for Toxic {
    fn fault(&self) -> &str {
        &self.fault
    }
    fn due(&self, tick: &Tick) -> bool {
        tick.ends(self.until)
    }
    fn end(self: Box<Self>, all: bool, ctx: &mut dyn EndCtx) -> Result<(), Error> {
        if let Ok(p) = ctx.shared().lock() {
            if let Some(px) = p.proxies.get(&self.proxy) {
                let _ = px.remove_toxic(&self.toxic);
            }
        }
        let why = if all { "final removal" } else { "removal" };
        ctx.say(&format!("{why} of toxic {} on {}", self.fault, self.proxy));
        // It acts on no node: marked on the first one.
        match ctx.first_started() {
            Some(node) => {
                let mark = FaultMark::effect(&self.fault, format!("{why} of the toxic"));
                ctx.signal(&node, 0, mark)
            }
            None => Ok(()),
        }
    }
}

/// A node crashed on purpose: down until `restart_after` has passed since its death (then
/// started again), or, without it, until a `restart` fault.
pub struct Crash {
    pub node: String,
    pub fault: String,
    pub restart_after: Option<Duration>,
}

impl Lasting for Crash {
    fn fault(&self) -> &str {
        &self.fault
    }
    fn due(&self, tick: &Tick) -> bool {
        let (Some(after), Some(died)) = (self.restart_after, tick.died.get(&self.node)) else {
            return false;
        };
        tick.now.saturating_duration_since(*died) >= after
    }
    fn end(self: Box<Self>, _all: bool, ctx: &mut dyn EndCtx) -> Result<(), Error> {
        // An effect: the restart is part of the crash fault, not a firing.
        let mark = FaultMark::effect(
            &self.fault,
            format!("restart {} (restart_after)", self.node),
        );
        ctx.restart(&self.node, mark).map(drop)
    }
    fn restarts(&self) -> bool {
        true
    }
    fn keeps_down(&self) -> Option<&str> {
        Some(&self.node)
    }
    fn explains_exit(&self, node: &str, status: ExitStatus) -> bool {
        node == self.node && status == ExitStatus::Signal(libc::SIGKILL)
    }
    fn ends(&self) -> bool {
        self.restart_after.is_some()
    }
}

/// A node sent a signal by a `signal` fault: if it ends of it (killed by it, or exiting with
/// 0 or 128 + its number, as programs that handle it do), that end is the fault. Over once
/// the node is dead (or at the end).
pub struct Signalled {
    pub node: String,
    pub fault: String,
    pub signal: i32,
}

impl Lasting for Signalled {
    fn fault(&self) -> &str {
        &self.fault
    }
    fn due(&self, tick: &Tick) -> bool {
        tick.all || tick.died.contains_key(&self.node)
    }
    fn end(self: Box<Self>, _all: bool, _ctx: &mut dyn EndCtx) -> Result<(), Error> {
        Ok(())
    }
    fn explains_exit(&self, node: &str, status: ExitStatus) -> bool {
        node == self.node
            && [
                ExitStatus::Signal(self.signal),
                ExitStatus::Code(0),
                ExitStatus::Code(128 + self.signal),
            ]
            .contains(&status)
    }
    fn ends(&self) -> bool {
        false
    }
}

/// A `restart` fault: the node starts again once it is dead. One that fires while its node
/// runs does nothing, unless a crash is on its way (it waits for the death).
pub struct Restart {
    pub node: String,
    pub fault: String,
}

impl Lasting for Restart {
    fn fault(&self) -> &str {
        &self.fault
    }
    fn due(&self, tick: &Tick) -> bool {
        tick.died.contains_key(&self.node) || !tick.down.contains(&self.node)
    }
    fn end(self: Box<Self>, _all: bool, ctx: &mut dyn EndCtx) -> Result<(), Error> {
        if !ctx.is_dead(&self.node) {
            ctx.say(&format!(
                "fault {}: not fired, node {} is running",
                self.fault, self.node
            ));
            return Ok(());
        }
        // Marked on the spawn event of the new incarnation: the firing.
        let mark = FaultMark::fired(&self.fault, format!("restart {}", self.node));
        ctx.restart(&self.node, mark).map(drop)
    }
    fn restarts(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::faults::{self, Cut};
    use std::cell::RefCell;

    /// The supervisor's side, recorded: what was said, signalled and restarted.
    #[derive(Default)]
    struct Fake {
        shared: Shared,
        said: RefCell<Vec<String>>,
        /// (node, signal, mark)
        signals: Vec<(String, i32, String)>,
        /// (node, mark)
        restarts: Vec<(String, String)>,
        dead: BTreeSet<String>,
        first: Option<String>,
        /// What a restart answers: false as if the node crashed again while starting.
        comes_back: bool,
    }

    impl EndCtx for Fake {
        fn say(&self, msg: &str) {
            self.said.borrow_mut().push(msg.to_string());
        }
        fn shared(&self) -> &Shared {
            &self.shared
        }
        fn signal(&mut self, node: &str, signal: i32, mark: FaultMark) -> Result<(), Error> {
            self.signals
                .push((node.to_string(), signal, mark.to_string()));
            Ok(())
        }
        fn first_started(&self) -> Option<String> {
            self.first.clone()
        }
        fn is_dead(&self, node: &str) -> bool {
            self.dead.contains(node)
        }
        fn restart(&mut self, node: &str, mark: FaultMark) -> Result<bool, Error> {
            self.restarts.push((node.to_string(), mark.to_string()));
            self.dead.remove(node);
            Ok(self.comes_back)
        }
    }

    impl Fake {
        fn push(&self, l: impl Lasting + 'static) {
            self.shared.lock().unwrap().lasting.push(Box::new(l));
        }
        fn left(&self) -> Vec<String> {
            let p = self.shared.lock().unwrap();
            p.lasting.iter().map(|l| l.fault().to_string()).collect()
        }
        /// One tick with restarts, nobody dead.
        fn tick(&mut self, all: bool) {
            let shared = self.shared.clone();
            tick(&shared, all, true, &BTreeMap::new(), self).unwrap();
        }
    }

    fn ago(d: Duration) -> Instant {
        Instant::now().checked_sub(d).unwrap()
    }

    fn later() -> Instant {
        Instant::now() + Duration::from_secs(3600)
    }

    /// A fault the supervisor has never heard of: the clock of `n0` skewed until `until`
    /// (or the end).
    struct Skew {
        fault: String,
        until: Option<Instant>,
    }

    impl Lasting for Skew {
        fn fault(&self) -> &str {
            &self.fault
        }
        fn due(&self, tick: &Tick) -> bool {
            tick.ends(self.until)
        }
        fn end(self: Box<Self>, all: bool, ctx: &mut dyn EndCtx) -> Result<(), Error> {
            let what = if all { "final unskew n0" } else { "unskew n0" };
            ctx.signal("n0", 0, FaultMark::effect(&self.fault, what))
        }
    }

    fn skew(fault: &str, until: Option<Instant>) -> Skew {
        Skew {
            fault: fault.into(),
            until,
        }
    }

    #[test]
    fn a_new_lasting_fault_ends_on_time_and_at_the_end_in_firing_order() {
        let mut f = Fake::default();
        f.push(skew("s1", Some(later())));
        f.push(skew("s2", Some(ago(Duration::from_millis(1)))));
        f.push(skew("s3", None));
        f.tick(false);
        assert_eq!(f.signals, vec![("n0".into(), 0, "by s2: unskew n0".into())]);
        assert_eq!(f.left(), vec!["s1", "s3"]);
        assert!(faults::recovery_pending(&f.shared));
        f.tick(false);
        assert_eq!(f.signals.len(), 1, "nothing else is due yet");
        f.tick(true);
        assert_eq!(
            &f.signals[1..],
            &[
                ("n0".into(), 0, "by s1: final unskew n0".into()),
                ("n0".into(), 0, "by s3: final unskew n0".into()),
            ]
        );
        assert!(f.left().is_empty());
        assert!(!faults::recovery_pending(&f.shared));
    }

    #[test]
    fn pauses_resume_when_their_time_is_over_even_after_the_workloads() {
        let mut f = Fake::default();
        let pause = |fault: &str, node: &str, until| Pause {
            node: node.into(),
            fault: fault.into(),
            until,
        };
        f.push(pause("p1", "n1", ago(Duration::from_millis(5))));
        f.push(pause("p2", "n2", later()));
        assert!(faults::quiet_expected(&f.shared));
        f.tick(true);
        assert_eq!(
            f.signals,
            vec![("n1".into(), libc::SIGCONT, "by p1: resume n1".into())]
        );
        assert_eq!(*f.said.borrow(), vec!["resuming node n1 (fault p1)"]);
        // The final tick does not cut a pause short: the recovery phase waits for it.
        assert_eq!(f.left(), vec!["p2"]);
        assert!(faults::quiet_expected(&f.shared));
        assert!(faults::recovery_pending(&f.shared));
    }

    fn cut(fault: &str, until: Option<Instant>) -> Cut {
        let (from, to) = (["n0".to_string()], ["n1".to_string(), "n2".to_string()]);
        let mut shapes = ordeal_faults::ShapeState::default();
        let mut c = Cut::of_partition(fault, (&from, &to), None, false, None, &mut shapes).unwrap();
        c.until = until;
        c
    }

    #[test]
    fn partitions_heal_on_time_then_at_the_end() {
        let mut f = Fake::default();
        let (past, never) = (Some(ago(Duration::from_millis(1))), None);
        {
            let mut p = f.shared.lock().unwrap();
            // Two firings of one fault: each heals its own cut.
            p.cuts.push(cut("cut", past));
            p.cuts.push(cut("cut", never));
            p.lasting.push(Box::new(Partition {
                fault: "cut".into(),
                until: past,
            }));
            p.lasting.push(Box::new(Partition {
                fault: "cut".into(),
                until: never,
            }));
        }
        f.tick(false);
        assert_eq!(f.signals, vec![("n0".into(), 0, "by cut: heal".into())]);
        assert_eq!(*f.said.borrow(), vec!["heal: partition n0 | n1,n2 (cut)"]);
        let left: Vec<Option<Instant>> = f
            .shared
            .lock()
            .unwrap()
            .cuts
            .iter()
            .map(|c| c.until)
            .collect();
        assert_eq!(left, vec![never]);
        f.tick(true);
        assert_eq!(f.signals[1], ("n0".into(), 0, "by cut: final heal".into()));
        assert!(f.shared.lock().unwrap().cuts.is_empty());
        assert!(f.left().is_empty());
    }

    fn schedule(text: &str) -> ordeal_faults::Schedule {
        let names = ordeal_faults::Participants::new(
            vec!["n0".to_string(), "n1".into(), "n2".into()],
            vec!["client".to_string()],
        );
        ordeal_faults::Schedule::parse_for(text, "s.toml", &names).unwrap()
    }

    #[test]
    fn node_fault_starts_what_lasts_and_a_heal_fault_ends_partitions_without_marks() {
        let s = schedule(
            r#"[[fault]]
name = "cut"
kind = "partition"
from = ["n0"]
to = ["n1"]
trigger = { after = "1s" }
[[fault]]
name = "mend"
kind = "heal"
trigger = { after = "2s" }
[[fault]]
name = "stop"
kind = "pause"
node = "n2"
duration = "1h"
trigger = { after = "1s" }
"#,
        );
        let mut f = Fake::default();
        faults::node_fault(&s.faults[0], &f.shared);
        faults::node_fault(&s.faults[2], &f.shared);
        assert_eq!(f.left(), vec!["cut", "stop"]);
        assert_eq!(f.shared.lock().unwrap().cuts.len(), 1);
        faults::node_fault(&s.faults[1], &f.shared);
        assert_eq!(f.left(), vec!["stop"]);
        assert!(f.shared.lock().unwrap().cuts.is_empty());
        f.tick(true);
        assert!(f.signals.is_empty(), "{:?}", f.signals);
    }

    #[test]
    fn toxics_are_removed_and_marked_on_the_first_node() {
        let mut f = Fake {
            first: Some("n0".into()),
            ..Fake::default()
        };
        f.push(Toxic {
            fault: "slow".into(),
            proxy: "px".into(),
            toxic: "slow".into(),
            until: Some(ago(Duration::from_millis(1))),
        });
        f.push(Toxic {
            fault: "lossy".into(),
            proxy: "px".into(),
            toxic: "lossy".into(),
            until: None,
        });
        f.tick(false);
        f.tick(true);
        assert_eq!(
            f.signals,
            vec![
                ("n0".into(), 0, "by slow: removal of the toxic".into()),
                (
                    "n0".into(),
                    0,
                    "by lossy: final removal of the toxic".into()
                ),
            ]
        );
        assert_eq!(
            *f.said.borrow(),
            vec![
                "removal of toxic slow on px",
                "final removal of toxic lossy on px"
            ]
        );
    }

    #[test]
    fn a_crashed_node_restarts_after_its_delay_and_quick_ends_go_first() {
        let mut f = Fake {
            comes_back: true,
            ..Fake::default()
        };
        f.push(Crash {
            node: "n1".into(),
            fault: "kill".into(),
            restart_after: Some(Duration::from_millis(100)),
        });
        f.push(skew("s", None));
        assert!(faults::kept_down(&f.shared, "n1"));
        let shared = f.shared.clone();
        // Dead for 50 ms: not yet.
        let died = BTreeMap::from([("n1".to_string(), ago(Duration::from_millis(50)))]);
        tick(&shared, false, true, &died, &mut f).unwrap();
        assert!(f.restarts.is_empty());
        // Dead for 150 ms, at the final tick: the skew ends first, then the restart.
        let died = BTreeMap::from([("n1".to_string(), ago(Duration::from_millis(150)))]);
        tick(&shared, true, true, &died, &mut f).unwrap();
        assert_eq!(
            f.signals,
            vec![("n0".into(), 0, "by s: final unskew n0".into())]
        );
        assert_eq!(
            f.restarts,
            vec![("n1".into(), "by kill: restart n1 (restart_after)".into())]
        );
        assert!(!faults::kept_down(&f.shared, "n1"));
        assert!(f.left().is_empty());
    }

    #[test]
    fn restarts_wait_while_a_node_is_starting() {
        let mut f = Fake {
            comes_back: true,
            ..Fake::default()
        };
        f.push(Crash {
            node: "n1".into(),
            fault: "kill".into(),
            restart_after: Some(Duration::ZERO),
        });
        let shared = f.shared.clone();
        let died = BTreeMap::from([("n1".to_string(), Instant::now())]);
        tick(&shared, false, false, &died, &mut f).unwrap();
        assert!(f.restarts.is_empty());
        assert_eq!(f.left(), vec!["kill"]);
        tick(&shared, false, true, &died, &mut f).unwrap();
        assert_eq!(f.restarts.len(), 1);
    }

    #[test]
    fn a_restart_fault_waits_for_the_crash_and_ends_it() {
        let mut f = Fake {
            comes_back: true,
            ..Fake::default()
        };
        f.push(Crash {
            node: "n2".into(),
            fault: "kill".into(),
            restart_after: None,
        });
        f.push(Restart {
            node: "n2".into(),
            fault: "back".into(),
        });
        f.push(Restart {
            node: "n1".into(),
            fault: "noop".into(),
        });
        // A crash without restart_after does not end by itself.
        let only_crash = Fake::default();
        only_crash.push(Crash {
            node: "n2".into(),
            fault: "kill".into(),
            restart_after: None,
        });
        assert!(!faults::recovery_pending(&only_crash.shared));
        // n2 is still alive, its crash on the way: `back` waits; n1 runs: `noop` does nothing.
        f.tick(false);
        assert!(f.restarts.is_empty());
        assert_eq!(
            *f.said.borrow(),
            vec!["fault noop: not fired, node n1 is running"]
        );
        assert_eq!(f.left(), vec!["kill", "back"]);
        // n2 died: `back` starts it (a firing) and the crash is over.
        f.dead.insert("n2".into());
        let shared = f.shared.clone();
        let died = BTreeMap::from([("n2".to_string(), Instant::now())]);
        tick(&shared, false, true, &died, &mut f).unwrap();
        assert_eq!(f.restarts, vec![("n2".into(), "back: restart n2".into())]);
        assert!(f.left().is_empty());
        assert!(!faults::kept_down(&f.shared, "n2"));
    }

    #[test]
    fn a_node_that_does_not_come_back_stops_the_tick_and_the_rest_waits() {
        let mut f = Fake::default();
        for (node, fault) in [("n1", "k1"), ("n2", "k2")] {
            f.push(Crash {
                node: node.into(),
                fault: fault.into(),
                restart_after: Some(Duration::ZERO),
            });
        }
        f.push(skew("later", Some(later())));
        let shared = f.shared.clone();
        let died = BTreeMap::from([
            ("n1".to_string(), Instant::now()),
            ("n2".to_string(), Instant::now()),
        ]);
        tick(&shared, false, true, &died, &mut f).unwrap();
        assert_eq!(
            f.restarts,
            vec![("n1".into(), "by k1: restart n1 (restart_after)".into())]
        );
        // n2's restart is next, in its place before what was not due.
        assert_eq!(f.left(), vec!["k2", "later"]);
    }
}
