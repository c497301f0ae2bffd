//! The guided strategy: systematic's precise points interleaved with draws steered by what
//! earlier faults did.
//!
//! Two kinds of bugs need two kinds of search. Some need one precise point (a crash right
//! after an acknowledgement, a short read of a request): systematic's order reaches those in a
//! few runs and random only by luck. Others show under most faults of one link or node (a
//! backup cut from its primary): they sit in the families with the most points, which a
//! uniform draw over points favours and systematic's one-point-per-family order reaches late.
//! Guided alternates the two, and both halves use what the faulted runs taught:
//!
//! * an *arm* is a fault kind at a kind of place: the call's kind (send, receive, connect,
//!   accept, sync, rename), whether it is a node's or a workload's, and whether its peer is a
//!   node, a workload or unknown — so that what a crash after one node's send to a client
//!   did counts for the same crash at another node (nodes of a replicated system play the
//!   same parts), and a few runs teach something. Each faulted run counts for the arm of its
//!   last fault: whether that fault fired, and whether the run's behaviour then differed from
//!   every fault-free baseline (a failover, a retry the client saw, a lost write) — only runs
//!   where it fired count for the second;
//! * the draws are over untried candidates (as random's), each weighted by its arm: an arm
//!   never tried weighs 1, one whose faults changed the behaviour up to 3, one whose faults
//!   fired but changed nothing (retries hid them) or never fired decays towards 0;
//! * the systematic half moves each family by its arm: later when its faults changed nothing
//!   or never fired, earlier when they changed the behaviour;
//! * both halves pass over points that were tried and did not fire (nor any later occurrence
//!   of their site): the run ended, or the system took another path, before reaching them.

use super::{Cand, Knowledge};
use crate::candidates::{Action, Fault, Site};
use crate::rng::Rng;

/// A fault kind at a kind of place (see the module's doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Arm {
    action: Action,
    /// [`crate::candidates::SiteKind`] as a number (0: none).
    kind: u8,
    node: bool,
    peer: Peer,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Peer {
    Unknown,
    Node,
    Workload,
}

/// What the faulted runs said of one arm.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct ArmStats {
    /// Runs whose last fault was this arm's.
    pub tries: u32,
    /// Of which the fault fired.
    pub fired: u32,
    /// Of which (fired) the behaviour differed from every fault-free baseline.
    pub changed: u32,
}

impl ArmStats {
    /// The weight of a draw of this arm's candidates: 1 untried; fired runs that changed the
    /// behaviour push it up to 3, fired runs that did not push it down (1 / (1 + fired
    /// unchanged)); runs where it never fired halve it each.
    pub fn weight(&self) -> f64 {
        let unfired = self.tries - self.fired;
        let effect = if self.fired == 0 {
            1.0
        } else {
            // Laplace-smoothed rate of behaviour changes among fired runs, scaled to 0..3.
            3.0 * (self.changed as f64 + 0.5) / (self.fired as f64 + 1.0)
        };
        effect * 0.5f64.powi(unfired as i32)
    }
}

impl Knowledge {
    /// Takes in what a faulted run's last fault did: whether any fault of the run fired
    /// (`fired`: the schedule's first firing, which for one fault is that fault) and whether
    /// the behaviour differed from every fault-free baseline's (`changed`).
    pub fn note_effect(&mut self, faults: &[Fault], fired: bool, changed: bool) {
        let Some(last) = faults.last() else { return };
        let arm = self.arm_of(last.action, &last.site);
        let arm = self.arms.entry(arm).or_default();
        arm.tries += 1;
        if fired {
            arm.fired += 1;
            arm.changed += changed as u32;
        } else if faults.len() == 1 {
            // Its site was not reached this far: later occurrences will not be either.
            let from = self
                .unfired_from
                .entry(last.site.clone())
                .or_insert(last.nth);
            *from = (*from).min(last.nth);
        }
    }

    /// Whether a candidate's last point was tried (as a single fault) and did not fire, or
    /// comes after one that did not.
    fn unreached(&self, c: &Cand) -> bool {
        c.faults.last().is_some_and(|f| {
            self.unfired_from
                .get(&f.site)
                .is_some_and(|from| f.nth >= *from)
        })
    }

    pub(crate) fn arm_of(&self, action: Action, site: &Site) -> Arm {
        Arm {
            action,
            kind: site.kind().map_or(0, |k| k as u8 + 1),
            node: self.is_node(&site.node),
            peer: match site.peer.as_deref() {
                None => Peer::Unknown,
                Some(p) if self.is_node(p) => Peer::Node,
                Some(_) => Peer::Workload,
            },
        }
    }

    fn arm_weight(&self, action: Action, site: &Site) -> f64 {
        self.arms
            .get(&self.arm_of(action, site))
            .map_or(1.0, ArmStats::weight)
    }

    /// Systematic's order (roots first, then by tier = 2 × priority + round), each tier moved
    /// by what the candidate's arm did: two tiers later when its faults changed nothing or
    /// never fired, one earlier (and first within its tier) when they changed the behaviour.
    /// So a family whose first point showed something is tried at its next point before the
    /// untouched families of that tier, and families the system shrugs off wait.
    fn steered_systematic(&self, cands: Vec<Cand>) -> Option<Cand> {
        cands.into_iter().min_by_key(|c| {
            let w = self.arm_weight(c.family.1, &c.family.2);
            let promoted = w > 1.5;
            let tier = 2 * c.prio as usize + c.round;
            let tier = if w < 0.75 {
                tier + 2
            } else if promoted {
                tier.saturating_sub(1)
            } else {
                tier
            };
            (
                c.family.0 > 0,
                tier,
                !promoted,
                c.prio,
                c.round,
                c.family.1,
                c.family.2.clone(),
            )
        })
    }

    /// Guided: odd picks are systematic's next candidate among the reachable ones, even
    /// picks (the first included) a draw over the reachable candidates weighted by their
    /// arms; one pick in ten is a pair of faults that fired alone without failing.
    pub(super) fn next_guided(&mut self, rng: &mut Rng) -> Option<Vec<Fault>> {
        let turn = self.guided_picks;
        self.guided_picks += 1;
        if self.model.max_faults >= 2 && rng.unit() < 0.1 {
            let pairs = self.pairs(2000);
            if !pairs.is_empty() {
                return Some(pairs[rng.below(pairs.len())].clone());
            }
        }
        let all = self.candidates();
        if all.is_empty() {
            return self.pairs(1).into_iter().next();
        }
        let (reachable, unreached): (Vec<Cand>, Vec<Cand>) =
            all.into_iter().partition(|c| !self.unreached(c));
        let cands = if reachable.is_empty() {
            unreached
        } else {
            reachable
        };
        if turn % 2 == 1 {
            return self.steered_systematic(cands).map(|c| c.faults);
        }
        let weights: Vec<f64> = cands
            .iter()
            .map(|c| self.arm_weight(c.family.1, &c.family.2))
            .collect();
        let i = rng.weighted(&weights)?;
        Some(cands[i].faults.clone())
    }
}
