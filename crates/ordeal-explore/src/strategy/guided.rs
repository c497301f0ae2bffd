//! The guided strategy: network cuts first, then systematic's precise points interleaved
//! with draws steered by what earlier faults did.
//!
//! Two kinds of bugs need two kinds of search. Some need one precise point (a crash right
//! after an acknowledgement, a short read of a request): systematic's order reaches those in a
//! few runs and random only by luck. Others show under most long faults of one link or node (a
//! backup cut from its primary, a replica that stops hearing its primary, a member cut from
//! its cluster): the classic way to expose them is Jepsen's, a partition, and the places to
//! cut are few (the links between nodes). Guided cuts first, a few broad runs, then gives
//! two picks in three to the precise order and one to the cuts left, then to draws; all of
//! them use what the faulted runs taught:
//!
//! * the cuts: one long partition per link between two nodes, the busiest link (bytes the
//!   baselines moved over it) first, then (from three nodes) one isolate per node that talks
//!   to two others or more (a node with one peer is cut off by its link's partition
//!   already), the busiest first. Each at the middle of the busiest direction's points, so
//!   that it falls while the workload runs. The first picks, as many as there are nodes,
//!   are cuts; the rest wait for one pick in three;
//! * an *arm* is a fault kind at a kind of place: the call's kind (send, receive, connect,
//!   accept, sync, rename), whether it is a node's or a workload's, and whether its peer is a
//!   node, a workload or unknown — so that what a crash after one node's send to a client
//!   did counts for the same crash at another node (nodes of a replicated system play the
//!   same parts), and a few runs teach something. Each faulted run counts for the arm of its
//!   last fault: whether that fault fired, and whether the run then showed a behaviour new to
//!   the campaign (a failover, an error the client saw, a lost write) — only runs where it
//!   fired count for the second. New, not merely different from the baselines: a crash always
//!   changes the behaviour (the node's lifecycle is part of it), so "different" would keep
//!   rewarding crashes that only repeat what an earlier crash showed;
//! * the draws are over untried candidates (as random's), each weighted by its arm: an arm
//!   never tried weighs 1, one whose faults showed new behaviours up to 3, one whose faults
//!   fired but showed nothing new (retries hid them) or never fired decays towards 0;
//! * the systematic part moves the families whose arm showed nothing new, or never fired,
//!   two tiers later; when the system acknowledges durable writes, a crash after a send to a
//!   workload is priority 0 only where it follows an acknowledgement (elsewhere the node
//!   answered a read, and a node that misses writes is what the cuts ask);
//! * every pick passes over points that were tried and did not fire (nor any later
//!   occurrence of their site): the run ended, or the system took another path, before
//!   reaching them.
//!
//! Measured on six known bugs (docs/bench.md, "Guided search against random").

use std::collections::{BTreeMap, HashMap, HashSet};

use super::{Cand, Knowledge};
use crate::candidates::{Action, Fault, Site, SiteKind};
use crate::rng::Rng;

/// What a network cut cuts off: the link between two nodes (in name order), or a node from
/// all the others.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Place {
    Link(String, String),
    Node(String),
}

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
    /// Of which (fired) the behaviour was new to the campaign.
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
    /// the run's behaviour was new to the campaign (`changed`).
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

    /// Systematic's order (roots first, then by tier = 2 × priority + round), a candidate two
    /// tiers later when its arm's faults showed nothing new or never fired (weight below
    /// 0.75): families the system shrugs off wait, and the others' next points come sooner.
    /// Nothing moves earlier: an arm that shows something new (every crash, at first) would
    /// otherwise keep the untried kinds of fault waiting.
    ///
    /// When the system acknowledges durable writes (some send to a workload follows an fsync
    /// or a rename), a crash after a send to a workload keeps priority 0 only at a site that
    /// acknowledges: elsewhere it answers reads or refusals, and a crashed node that answered
    /// reads is what the cuts already ask (a node that misses writes).
    fn steered_systematic(&self, cands: Vec<Cand>) -> Option<Cand> {
        let acks = |site: &Site| {
            self.root
                .get(site)
                .is_some_and(|i| i.points.values().any(|p| p.ack))
        };
        let system_acks = self.root.keys().any(acks);
        cands.into_iter().min_by_key(|c| {
            let w = self.arm_weight(c.family.1, &c.family.2);
            let not_an_ack = c.family.1 == Action::CrashAfter
                && c.family.2.kind() == Some(SiteKind::Send)
                && system_acks
                && !acks(&c.family.2);
            let prio = if c.prio == 0 && not_an_ack { 1 } else { c.prio };
            let tier = 2 * prio as usize + c.round;
            let tier = if w < 0.75 { tier + 2 } else { tier };
            (
                c.family.0 > 0,
                tier,
                prio,
                c.round,
                c.family.1,
                c.family.2.clone(),
            )
        })
    }

    /// The network cut guided tries next, before its draws: one long partition per link
    /// between two nodes, then (from 3 nodes) one isolate per node that talks to two others
    /// or more, each the busiest first (bytes the baselines moved over it), at the middle of
    /// the busiest direction's points.
    /// `None` once every link and node was cut (by any pick) or the model has no cuts.
    fn next_cut(&self, cands: &[Cand]) -> Option<Vec<Fault>> {
        let mut cut: HashSet<Place> = HashSet::new();
        for tried in &self.tried {
            if let [f] = tried.as_slice() {
                cut.extend(self.cut_place(f));
            }
        }
        let traffic = self.node_traffic();
        let bytes = |place: &Place| -> u64 {
            match place {
                Place::Link(a, b) => traffic
                    .iter()
                    .filter(|((x, y), _)| (x == a && y == b) || (x == b && y == a))
                    .map(|(_, n)| n)
                    .sum(),
                Place::Node(n) => traffic
                    .iter()
                    .filter(|((x, y), _)| x == n || y == n)
                    .map(|(_, n)| n)
                    .sum(),
            }
        };
        // Per place not yet cut, its candidate: from the site with the most points, the
        // lowest round (the middle of them).
        let hubs = hubs(&traffic);
        let mut best: BTreeMap<Place, (usize, &Cand)> = BTreeMap::new();
        for c in cands {
            let [f] = c.faults.as_slice() else { continue };
            if c.family.0 != 0 {
                continue;
            }
            let Some(place) = self.cut_place(f) else {
                continue;
            };
            if cut.contains(&place) {
                continue;
            }
            if let Place::Node(node) = &place {
                if !hubs.contains(node.as_str()) {
                    continue;
                }
            }
            let points = self.root.get(&f.site).map_or(0, |i| i.points.len());
            let e = best.entry(place).or_insert((points, c));
            if (points, std::cmp::Reverse(c.round)) > (e.0, std::cmp::Reverse(e.1.round)) {
                *e = (points, c);
            }
        }
        best.into_iter()
            .min_by_key(|(place, _)| {
                (
                    matches!(place, Place::Node(_)),
                    std::cmp::Reverse(bytes(place)),
                    place.clone(),
                )
            })
            .map(|(_, (_, c))| c.faults.clone())
    }

    /// The link or node a single fault cuts off for the model's long duration, if it is a
    /// partition between two nodes or an isolate.
    fn cut_place(&self, f: &Fault) -> Option<Place> {
        match f.action {
            Action::Partition => {
                let peer = f.site.peer.as_deref().filter(|p| self.is_node(p))?;
                let node = f.site.node.as_str();
                if !self.is_node(node) {
                    return None;
                }
                let (a, b) = if node <= peer {
                    (node, peer)
                } else {
                    (peer, node)
                };
                Some(Place::Link(a.to_string(), b.to_string()))
            }
            Action::Isolate => Some(Place::Node(f.site.node.clone())),
            _ => None,
        }
    }

    /// Bytes the fault-free runs' nodes sent to each other, per (sender, receiver).
    fn node_traffic(&self) -> HashMap<(String, String), u64> {
        let mut out: HashMap<(String, String), u64> = HashMap::new();
        for (site, info) in &self.root {
            let Some(peer) = site.peer.as_deref() else {
                continue;
            };
            if site.kind() != Some(SiteKind::Send)
                || !self.is_node(&site.node)
                || !self.is_node(peer)
            {
                continue;
            }
            let sent: u64 = info.points.values().map(|p| p.ret.max(0) as u64).sum();
            *out.entry((site.node.clone(), peer.to_string()))
                .or_insert(0) += sent;
        }
        out
    }

    /// Guided: the first picks, as many as there are nodes, cut the network (one link, then
    /// one node, at a time: [`Knowledge::next_cut`]); after them, one pick in three cuts or,
    /// once every place was cut, draws over the reachable candidates weighted by their arms.
    /// The other picks are systematic's next candidates among the reachable ones. One pick
    /// in ten is a pair of faults that fired alone without failing.
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
        // The first picks, one per node, are cuts while there are links or hubs to cut: a
        // few broad runs before the precise ones. Then one pick in three.
        let nodes = self.nodes.len() as u64;
        let cut_turn = turn.checked_sub(nodes).is_none_or(|t| t % 3 == 2);
        if cut_turn {
            if let Some(cut) = self.next_cut(&cands) {
                return Some(cut);
            }
        }
        if !cut_turn || turn < nodes {
            return self.steered_systematic(cands).map(|c| c.faults);
        }
        // Per candidate, as random's (an arm with many points, such as a replication
        // stream, gets many draws: most of its faults show the same thing), reweighted by the
        // candidate's arm.
        let weights: Vec<f64> = cands
            .iter()
            .map(|c| self.arm_weight(c.family.1, &c.family.2))
            .collect();
        let i = rng.weighted(&weights)?;
        Some(cands[i].faults.clone())
    }
}

/// The nodes that talk to two others or more (in `traffic`, bytes per sender and receiver):
/// isolating one cuts more than one link the baselines used, where isolating a node with one
/// peer is that link's partition again.
fn hubs(traffic: &HashMap<(String, String), u64>) -> HashSet<&str> {
    let mut peers: HashMap<&str, HashSet<&str>> = HashMap::new();
    for ((a, b), _) in traffic.iter().filter(|(_, bytes)| **bytes > 0) {
        if a != b {
            peers.entry(a).or_default().insert(b);
            peers.entry(b).or_default().insert(a);
        }
    }
    peers
        .into_iter()
        .filter(|(_, p)| p.len() >= 2)
        .map(|(n, _)| n)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::candidates::{FaultModel, Occurrence};
    use crate::strategy::StrategyKind;

    fn occ(node: &str, call: &str, peer: &str, nth: u64) -> Occurrence {
        Occurrence {
            site: Site {
                node: node.into(),
                call: call.into(),
                class: "data".into(),
                peer: Some(peer.into()),
                file: None,
            },
            nth,
            seq: nth * 10 + u64::from(call == "recvfrom"),
            ret: 12,
            in_workload: true,
            ack: false,
        }
    }

    /// Two nodes: n0 answers a client (8 sends), n1 receives n0's stream (8 receives).
    fn knowledge() -> Knowledge {
        let mut k = Knowledge::new(FaultModel::default(), ["n0".into(), "n1".into()]);
        let mut base = Vec::new();
        for n in 1..=8 {
            base.push(occ("n0", "sendto", "client", n));
            base.push(occ("n1", "recvfrom", "n0", n));
        }
        k.learn(&[], &base, None, false, false);
        k
    }

    fn fault(action: Action, node: &str, call: &str, peer: &str, nth: u64) -> Fault {
        Fault {
            action,
            site: occ(node, call, peer, nth).site,
            nth,
            max_bytes: None,
        }
    }

    #[test]
    fn arm_weights_order_changed_untried_unchanged_unfired() {
        let changed = ArmStats {
            tries: 2,
            fired: 2,
            changed: 2,
        };
        let unchanged = ArmStats {
            tries: 2,
            fired: 2,
            changed: 0,
        };
        let unfired = ArmStats {
            tries: 2,
            fired: 0,
            changed: 0,
        };
        assert_eq!(ArmStats::default().weight(), 1.0);
        assert_eq!(changed.weight(), 2.5);
        assert_eq!(unchanged.weight(), 0.5);
        assert_eq!(unfired.weight(), 0.25);
    }

    #[test]
    fn same_seed_and_results_give_the_same_picks() {
        let picks = || {
            let mut k = knowledge();
            let mut rng = Rng::new(11);
            let mut out = Vec::new();
            for i in 0..20 {
                let Some(f) = k.next(StrategyKind::Guided, &mut rng) else {
                    break;
                };
                k.note_effect(&f, i % 3 != 0, i % 2 == 0);
                out.push(f);
            }
            out
        };
        let a = picks();
        assert_eq!(a.len(), 20);
        assert_eq!(a, picks());
    }

    #[test]
    fn an_arm_that_changed_the_behaviour_gets_more_draws() {
        let mut k = knowledge();
        // Failed sends to the client changed the behaviour every time; failed receives from
        // the other node changed nothing (retries hid them).
        for n in [1, 2, 3] {
            k.note_effect(
                &[fault(Action::Fail, "n0", "sendto", "client", n)],
                true,
                true,
            );
            k.note_effect(
                &[fault(Action::Fail, "n1", "recvfrom", "n0", n)],
                true,
                false,
            );
        }
        let (mut send, mut recv) = (0, 0);
        let mut rng = Rng::new(5);
        for _ in 0..4000 {
            // Every pick a draw (past the first two, one in three), nothing marked tried: the
            // same distribution.
            k.guided_picks = 4;
            let f = k.next_guided(&mut rng).expect("candidates");
            match (f[0].action, f[0].site.call.as_str()) {
                (Action::Fail, "sendto") => send += 1,
                (Action::Fail, "recvfrom") => recv += 1,
                _ => {}
            }
        }
        // Weights 3 × 3.5 / 4 against 3 × 0.5 / 4: seven times the draws, over as many points.
        let ratio = send as f64 / recv as f64;
        assert!((5.0..9.5).contains(&ratio), "{send} against {recv}");
    }

    #[test]
    fn a_point_that_did_not_fire_and_those_after_it_wait() {
        let mut k = knowledge();
        // A crash at n0's 5th send to the client was tried and never fired: the run ended
        // before it. Its 5th..8th sends wait until nothing else is left.
        let crash = fault(Action::CrashAfter, "n0", "sendto", "client", 5);
        k.mark_tried(std::slice::from_ref(&crash));
        k.note_effect(&[crash], false, false);
        let mut rng = Rng::new(2);
        let mut seen_late = false;
        let mut reachable_left = true;
        while let Some(f) = k.next(StrategyKind::Guided, &mut rng) {
            let late = f.len() == 1 && f[0].site.call == "sendto" && f[0].nth >= 5;
            if late {
                assert!(!reachable_left, "{f:?} picked before the reachable points");
                seen_late = true;
            }
            reachable_left = k
                .candidates()
                .iter()
                .any(|c| !k.unreached(c) && c.faults.len() == 1);
        }
        assert!(seen_late, "the unreached points are still tried in the end");
    }

    #[test]
    fn the_systematic_half_passes_over_an_arm_that_showed_nothing_new() {
        // Systematic's first two picks: a crash after n0's middle send to the client, then
        // another family of the same tier.
        let mut plain = knowledge();
        let first = plain.next_systematic().expect("a candidate");
        assert_eq!(
            (first[0].action, first[0].site.call.as_str(), first[0].nth),
            (Action::CrashAfter, "sendto", 5)
        );
        plain.mark_tried(&first);
        let second = plain.next_systematic().expect("a candidate");
        assert_eq!(second[0].site.call, "recvfrom");
        // Guided, told that the crash fired and showed nothing new (twice: weight 0.5), goes
        // on to the second family too, and the crash's next points (tier 1 by systematic's
        // order) wait until after the other tier-1 candidates.
        let mut k = knowledge();
        let crash = |nth| fault(Action::CrashAfter, "n0", "sendto", "client", nth);
        k.mark_tried(&[crash(5)]);
        k.note_effect(&[crash(5)], true, false);
        k.note_effect(&[crash(5)], true, false);
        k.guided_picks = 1;
        let pick = k.next_guided(&mut Rng::new(1)).expect("a candidate");
        assert_eq!(pick, second);
        let order: Vec<Vec<Fault>> = std::iter::from_fn(|| {
            k.guided_picks = 1;
            let f = k.next_guided(&mut Rng::new(1))?;
            k.mark_tried(&f);
            Some(f)
        })
        .take(12)
        .collect();
        let is_crash =
            |f: &Vec<Fault>| f[0].action == Action::CrashAfter && f[0].site.call == "sendto";
        // Systematic's order would take the crash's next point (tier 1) right after the
        // delay's first; guided takes it after every tier-2 candidate (the priority-1
        // families' first points), at the 8th pick.
        plain.mark_tried(&second);
        assert!(is_crash(&plain.next_systematic().expect("a candidate")));
        assert_eq!(order.iter().position(is_crash), Some(7), "{order:?}");
        assert_eq!(order[7][0].nth, 3);
    }

    fn sent(node: &str, peer: &str, nth: u64, ret: i64, ack: bool) -> Occurrence {
        Occurrence {
            ret,
            ack,
            ..occ(node, "sendto", peer, nth)
        }
    }

    /// Three nodes: n0 sends 8 × 100 B to n1 and 8 × 10 B to n2, each backup answers n0
    /// twice (5 B); every node answers the client; n1 sends 3 B to n2 if `backups_talk`.
    fn cluster(backups_talk: bool) -> Knowledge {
        let nodes = ["n0", "n1", "n2"].map(String::from);
        let mut k = Knowledge::new(FaultModel::default(), nodes);
        let mut base = Vec::new();
        for n in 1..=8 {
            base.push(sent("n0", "n1", n, 100, false));
            base.push(sent("n0", "n2", n, 10, false));
        }
        for n in 1..=2 {
            base.push(sent("n1", "n0", n, 5, false));
            base.push(sent("n2", "n0", n, 5, false));
        }
        for node in ["n0", "n1", "n2"] {
            base.push(sent(node, "client", 1, 3, false));
        }
        if backups_talk {
            base.push(sent("n1", "n2", 1, 3, false));
        }
        k.learn(&[], &base, None, false, false);
        k
    }

    #[test]
    fn the_first_picks_cut_each_link_busiest_first_then_the_hub() {
        let mut k = cluster(false);
        let mut rng = Rng::new(4);
        let picks: Vec<Vec<Fault>> = (0..5)
            .map(|_| k.next(StrategyKind::Guided, &mut rng).expect("a candidate"))
            .collect();
        let show = |f: &Vec<Fault>| f.iter().map(|f| f.to_string()).collect::<Vec<_>>();
        // The busiest link (n0 → n1), at the middle of n0's 8 sends to n1; then n0 — n2;
        // then n0 alone, the only node with two peers (isolating n1 or n2 is their link's
        // partition again).
        assert_eq!(show(&picks[0]), ["partition at n0 sendto → n1 #5"]);
        assert_eq!(show(&picks[1]), ["partition at n0 sendto → n2 #5"]);
        assert_eq!(show(&picks[2]), ["isolate at n0 sendto → n1 #5"]);
        // Then systematic's, which cut nothing.
        for p in &picks[3..] {
            assert!(
                !matches!(p[0].action, Action::Partition | Action::Isolate),
                "{:?}",
                show(p)
            );
        }
        // Every place was cut: the cut turns are draws now.
        assert_eq!(k.next_cut(&k.candidates()), None);
    }

    #[test]
    fn cuts_left_after_the_first_picks_take_one_pick_in_three() {
        // The backups talk too: three links and three hubs, for three nodes.
        let mut k = cluster(true);
        let mut rng = Rng::new(4);
        let picks: Vec<String> = (0..9)
            .map(|_| k.next(StrategyKind::Guided, &mut rng).expect("a candidate")[0].to_string())
            .collect();
        let cuts: Vec<(usize, &str)> = picks
            .iter()
            .enumerate()
            .filter(|(_, p)| p.starts_with("partition") || p.starts_with("isolate"))
            .map(|(i, p)| (i, p.as_str()))
            .collect();
        // Links by bytes (n0 — n1: 810, n0 — n2: 90, n1 — n2: 3), then nodes by bytes
        // (n0: 900, n1: 813, n2: 93), at the middle of each one's busiest site.
        assert_eq!(
            cuts,
            [
                (0, "partition at n0 sendto → n1 #5"),
                (1, "partition at n0 sendto → n2 #5"),
                (2, "partition at n1 sendto → n2 #1"),
                (5, "isolate at n0 sendto → n1 #5"),
                (8, "isolate at n1 sendto → n0 #2"),
            ],
            "{picks:?}"
        );
    }

    #[test]
    fn a_link_already_cut_by_another_pick_is_not_cut_again() {
        let mut k = cluster(false);
        // A partition of n1 → n0 (the other direction of the busiest link) was run already.
        let other_way = fault(Action::Partition, "n1", "sendto", "n0", 1);
        k.mark_tried(std::slice::from_ref(&other_way));
        let first = k.next_cut(&k.candidates()).expect("a cut");
        assert_eq!(first[0].to_string(), "partition at n0 sendto → n2 #5");
    }

    /// n0 acknowledges durable writes to the client; n1 answers the client (reads) and
    /// receives n0's stream.
    fn acking() -> Knowledge {
        let mut k = Knowledge::new(FaultModel::default(), ["n0".into(), "n1".into()]);
        let mut base = Vec::new();
        for n in 1..=4 {
            base.push(sent("n0", "client", n, 3, true));
            base.push(sent("n1", "client", n, 3, false));
            base.push(occ("n1", "recvfrom", "n0", n));
        }
        k.learn(&[], &base, None, false, false);
        k
    }

    #[test]
    fn a_crash_after_a_send_that_acknowledges_nothing_waits_when_the_system_acknowledges() {
        let order = |guided: bool| -> Vec<String> {
            let mut k = acking();
            let mut out = Vec::new();
            for _ in 0..3 {
                let c = match guided {
                    true => k.steered_systematic(k.candidates()).map(|c| c.faults),
                    false => k.next_systematic(),
                }
                .expect("a candidate");
                k.mark_tried(&c);
                out.push(c[0].to_string());
            }
            out
        };
        // Systematic: both crashes after a send to the client are priority 0 (tier 0).
        assert_eq!(
            order(false),
            [
                "crash-after at n0 sendto → client #3",
                "crash-after at n1 sendto → client #3",
                "delay at n1 recvfrom ← n0 #3"
            ]
        );
        // Guided: n1's answers acknowledge nothing, so its crash is priority 1 (tier 2), after
        // the priority-0 families' second points (tier 1).
        assert_eq!(
            order(true),
            [
                "crash-after at n0 sendto → client #3",
                "delay at n1 recvfrom ← n0 #3",
                "crash-after at n0 sendto → client #2"
            ]
        );
    }
}
