//! What a campaign has learnt (the candidate points of every run) and the strategies that pick
//! the next schedule from it.
//!
//! * Points seen in fault-free runs are *root* points: a single fault there is a candidate.
//! * Points first seen in a faulted run that showed a new behaviour (a failover, a re-join),
//!   after its first fault fired, are reachable only with that run's faults: they become
//!   *extensions*, candidates made of that schedule plus one fault at the new point. This is how
//!   tracing and fault injection co-evolve: each new behaviour opens new places to inject.
//! * Pairs of single faults that fired without failing come last.
//!
//! Strategies: [`StrategyKind::Guided`] (the CLI's default: network cuts of each link and hub
//! node first, then systematic's order interleaved with the cuts left and with draws weighted
//! by what earlier faults did: see [`guided`]), [`StrategyKind::Random`] (uniform over untried
//! candidates, sometimes a pair), [`StrategyKind::Systematic`] (every single fault in a fixed
//! order, then extensions, then pairs; see [`Knowledge::next_systematic`]),
//! [`StrategyKind::Novelty`] (weighted towards untried families, rarely seen sites and new
//! behaviours).

mod guided;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};

use serde::Serialize;

use crate::candidates::{actions_for, priority, Action, Fault, FaultModel, Occurrence, Site};
use crate::rng::Rng;
use crate::shapes::shape_actions;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StrategyKind {
    Guided,
    Random,
    Systematic,
    Novelty,
}

impl StrategyKind {
    pub fn parse(s: &str) -> Option<StrategyKind> {
        match s {
            "guided" => Some(StrategyKind::Guided),
            "random" => Some(StrategyKind::Random),
            "systematic" => Some(StrategyKind::Systematic),
            "novelty" => Some(StrategyKind::Novelty),
            _ => None,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            StrategyKind::Guided => "guided",
            StrategyKind::Random => "random",
            StrategyKind::Systematic => "systematic",
            StrategyKind::Novelty => "novelty",
        }
    }
}

/// One eligible point of a site: its actions and the bytes the call moved.
#[derive(Debug, Clone)]
struct Point {
    actions: Vec<Action>,
    ret: i64,
    ack: bool,
}

#[derive(Debug, Clone, Default)]
struct SiteInfo {
    points: BTreeMap<u64, Point>,
}

/// How many extensions a campaign keeps. On a system whose faulted runs keep differing, a new
/// one comes with most runs; without a bound the search state (and the time to list
/// candidates for every pick) grows with the campaign. The oldest go first: by then their
/// best points have been tried, or newer behaviours have opened the same places.
pub const MAX_EXTENSIONS: usize = 256;

/// A behaviour-opening schedule and the points first seen under it.
#[derive(Debug, Clone)]
struct Extension {
    /// Stable for the campaign (1, 2, ...; 0 is the root), so families keep their tries when
    /// older extensions are dropped.
    id: usize,
    prefix: Vec<Fault>,
    sites: BTreeMap<Site, SiteInfo>,
}

/// Everything the campaign learnt, and the strategies' state.
#[derive(Debug)]
pub struct Knowledge {
    model: FaultModel,
    nodes: HashSet<String>,
    root: BTreeMap<Site, SiteInfo>,
    extensions: VecDeque<Extension>,
    extensions_made: usize,
    /// In how many runs each site was seen.
    site_runs: HashMap<Site, u32>,
    tried: HashSet<Vec<Fault>>,
    family_tries: HashMap<(usize, Action, Site), u32>,
    /// Single faults that fired and did not fail, in the order they were tried.
    passed_singles: Vec<Fault>,
    failed_singles: HashSet<Fault>,
    /// What the faulted runs said of each arm (a fault kind at a kind of place): guided's
    /// weights.
    arms: HashMap<guided::Arm, guided::ArmStats>,
    /// Per site, the lowest occurrence a single fault was tried at and did not fire.
    unfired_from: HashMap<Site, u64>,
    /// Picks the guided strategy made (it alternates on their parity).
    guided_picks: u64,
}

/// One candidate with its place in the systematic order.
struct Cand {
    faults: Vec<Fault>,
    family: (usize, Action, Site),
    prio: u8,
    round: usize,
}

impl Knowledge {
    pub fn new(model: FaultModel, nodes: impl IntoIterator<Item = String>) -> Knowledge {
        Knowledge {
            model,
            nodes: nodes.into_iter().collect(),
            root: BTreeMap::new(),
            extensions: VecDeque::new(),
            extensions_made: 0,
            site_runs: HashMap::new(),
            tried: HashSet::new(),
            family_tries: HashMap::new(),
            passed_singles: Vec::new(),
            failed_singles: HashSet::new(),
            arms: HashMap::new(),
            unfired_from: HashMap::new(),
            guided_picks: 0,
        }
    }

    pub fn model(&self) -> &FaultModel {
        &self.model
    }

    fn is_node(&self, name: &str) -> bool {
        self.nodes.contains(name)
    }

    fn point_of(&self, o: &Occurrence) -> Point {
        let peer_known = o.site.peer.is_some();
        let mut actions = actions_for(o, self.is_node(&o.site.node), peer_known);
        actions.extend(shape_actions(
            o,
            self.is_node(&o.site.node),
            self.nodes.len(),
        ));
        actions.retain(|a| self.model.allows_at(*a, &o.site));
        Point {
            actions,
            ret: o.ret,
            ack: o.ack,
        }
    }

    /// Learns from a finished run: `faults` its schedule, `first_fired` the seq of its first
    /// firing, `new_behaviour` whether its fingerprint was new, `failed` its verdict.
    pub fn learn(
        &mut self,
        faults: &[Fault],
        occurrences: &[Occurrence],
        first_fired: Option<u64>,
        new_behaviour: bool,
        failed: bool,
    ) {
        let mut seen: BTreeSet<&Site> = BTreeSet::new();
        for o in occurrences {
            seen.insert(&o.site);
        }
        for s in seen {
            *self.site_runs.entry(s.clone()).or_insert(0) += 1;
        }
        if faults.len() == 1 {
            let f = &faults[0];
            match (first_fired.is_some(), failed) {
                (_, true) => {
                    self.failed_singles.insert(f.clone());
                }
                (true, false) => self.passed_singles.push(f.clone()),
                (false, false) => {}
            }
        }
        if faults.is_empty() {
            for o in occurrences {
                let p = self.point_of(o);
                if p.actions.is_empty() {
                    continue;
                }
                self.root
                    .entry(o.site.clone())
                    .or_default()
                    .points
                    .entry(o.nth)
                    .or_insert(p);
            }
            return;
        }
        let Some(fired) = first_fired else { return };
        if !new_behaviour || faults.len() >= self.model.max_faults {
            return;
        }
        let mut sites: BTreeMap<Site, SiteInfo> = BTreeMap::new();
        for o in occurrences.iter().filter(|o| o.seq > fired) {
            let novel = match self.root.get(&o.site) {
                None => true,
                Some(info) => info
                    .points
                    .keys()
                    .next_back()
                    .is_none_or(|max| o.nth > *max),
            };
            if !novel {
                continue;
            }
            let p = self.point_of(o);
            if p.actions.is_empty() {
                continue;
            }
            sites
                .entry(o.site.clone())
                .or_default()
                .points
                .insert(o.nth, p);
        }
        if !sites.is_empty() {
            self.extensions_made += 1;
            self.extensions.push_back(Extension {
                id: self.extensions_made,
                prefix: faults.to_vec(),
                sites,
            });
            if self.extensions.len() > MAX_EXTENSIONS {
                if let Some(old) = self.extensions.pop_front() {
                    self.family_tries.retain(|family, _| family.0 != old.id);
                }
            }
        }
    }

    /// Marks a schedule as tried.
    pub fn mark_tried(&mut self, faults: &[Fault]) {
        let mut key = faults.to_vec();
        key.sort();
        self.tried.insert(key);
    }

    fn is_tried(&self, faults: &[Fault]) -> bool {
        let mut key = faults.to_vec();
        key.sort();
        self.tried.contains(&key)
    }

    /// Every untried single or extension candidate, with its family and systematic rank.
    fn candidates(&self) -> Vec<Cand> {
        let is_node = |n: &str| self.is_node(n);
        let mut out = Vec::new();
        let groups = std::iter::once((0usize, &[][..], &self.root)).chain(
            self.extensions
                .iter()
                .map(|e| (e.id, e.prefix.as_slice(), &e.sites)),
        );
        for (gid, prefix, sites) in groups {
            for (site, info) in sites {
                for action in self.model.actions.iter().copied() {
                    let nths: Vec<(u64, &Point)> = info
                        .points
                        .iter()
                        .filter(|(_, p)| p.actions.contains(&action))
                        .map(|(n, p)| (*n, p))
                        .collect();
                    if nths.is_empty() {
                        continue;
                    }
                    let prio = priority(action, site, &is_node);
                    // Acknowledgements first (a crash right after one is the classic way to
                    // lose a write), each group in spread order.
                    let (acks, rest): (Vec<_>, Vec<_>) = nths.into_iter().partition(|(_, p)| p.ack);
                    let ordered: Vec<(u64, &Point)> = spread_order(acks.len())
                        .into_iter()
                        .map(|i| acks[i])
                        .chain(spread_order(rest.len()).into_iter().map(|i| rest[i]))
                        .collect();
                    for (round, (nth, p)) in ordered.into_iter().enumerate() {
                        let fault = Fault {
                            action,
                            site: site.clone(),
                            nth,
                            max_bytes: (action == Action::ShortIo)
                                .then(|| (p.ret.max(3) - 2) as u64),
                        };
                        let mut faults = prefix.to_vec();
                        faults.push(fault);
                        if !self.model.allows(&faults) || self.is_tried(&faults) {
                            continue;
                        }
                        out.push(Cand {
                            faults,
                            family: (gid, action, site.clone()),
                            prio,
                            round,
                        });
                    }
                }
            }
        }
        out
    }

    /// Untried pairs of single faults that fired and did not fail: a pair where one fault
    /// fails alone is covered by that single; a fault that never fired adds nothing.
    fn pairs(&self, limit: usize) -> Vec<Vec<Fault>> {
        let mut out = Vec::new();
        let n = self.passed_singles.len();
        for sum in 1..(2 * n) {
            for i in 0..n {
                let Some(j) = sum.checked_sub(i) else { break };
                if j <= i || j >= n {
                    continue;
                }
                let pair = vec![
                    self.passed_singles[i].clone(),
                    self.passed_singles[j].clone(),
                ];
                if self.model.allows(&pair) && !self.is_tried(&pair) {
                    out.push(pair);
                    if out.len() >= limit {
                        return out;
                    }
                }
            }
        }
        out
    }

    /// (untried single and extension candidates, untried pairs so far, capped at 100000).
    pub fn remaining(&self) -> (usize, usize) {
        (self.candidates().len(), self.pairs(100_000).len())
    }

    /// How many distinct single-fault candidates were mined (tried or not), among the root
    /// points and the extensions kept (at most [`MAX_EXTENSIONS`]).
    pub fn mined(&self) -> usize {
        self.root
            .values()
            .chain(self.extensions.iter().flat_map(|e| e.sites.values()))
            .map(|i| i.points.values().map(|p| p.actions.len()).sum::<usize>())
            .sum()
    }

    /// The next schedule to run, or `None` when the strategy has nothing left.
    pub fn next(&mut self, kind: StrategyKind, rng: &mut Rng) -> Option<Vec<Fault>> {
        let pick = match kind {
            StrategyKind::Guided => self.next_guided(rng),
            StrategyKind::Systematic => self.next_systematic(),
            StrategyKind::Random => self.next_random(rng),
            StrategyKind::Novelty => self.next_novelty(rng),
        };
        if let Some(f) = &pick {
            self.mark_tried(f);
            if let Some(last) = f.last() {
                let gid = if f.len() > 1 {
                    self.extensions
                        .iter()
                        .find(|e| e.prefix[..] == f[..f.len() - 1])
                        .map_or(usize::MAX, |e| e.id)
                } else {
                    0
                };
                *self
                    .family_tries
                    .entry((gid, last.action, last.site.clone()))
                    .or_insert(0) += 1;
            }
        }
        pick
    }

    /// Systematic: single faults by tier = 2 × priority + round (round r = the r-th point of the
    /// family in spread order: the middle occurrence first, then quartiles, ..., so every
    /// family is tried early at a representative point), then extensions, then pairs.
    pub fn next_systematic(&self) -> Option<Vec<Fault>> {
        systematic_best(self.candidates())
            .map(|c| c.faults)
            .or_else(|| self.pairs(1).into_iter().next())
    }

    fn next_random(&self, rng: &mut Rng) -> Option<Vec<Fault>> {
        let cands = self.candidates();
        if self.model.max_faults >= 2 && rng.unit() < 0.2 {
            let pairs = self.pairs(2000);
            if !pairs.is_empty() {
                return Some(pairs[rng.below(pairs.len())].clone());
            }
        }
        if cands.is_empty() {
            return self.pairs(1).into_iter().next();
        }
        Some(cands[rng.below(cands.len())].faults.clone())
    }

    /// Novelty: a family (an action at a site, under a prefix) drawn with weight
    /// priority × (3 if never tried, else 1 / (1 + tries)) × rarity of the site
    /// (1 + 4 / runs it was seen in) × 2 for extensions; within the family, its first untried
    /// point in spread order. One pick in ten is a pair.
    fn next_novelty(&self, rng: &mut Rng) -> Option<Vec<Fault>> {
        if self.model.max_faults >= 2 && rng.unit() < 0.1 {
            let pairs = self.pairs(2000);
            if !pairs.is_empty() {
                return Some(pairs[rng.below(pairs.len())].clone());
            }
        }
        let cands = self.candidates();
        if cands.is_empty() {
            return self.pairs(1).into_iter().next();
        }
        // Best candidate per family: lowest round.
        let mut families: BTreeMap<(usize, Action, Site), &Cand> = BTreeMap::new();
        for c in &cands {
            let e = families.entry(c.family.clone()).or_insert(c);
            if c.round < e.round {
                *e = c;
            }
        }
        let list: Vec<&Cand> = families.values().copied().collect();
        let weights: Vec<f64> = list
            .iter()
            .map(|c| {
                let base = match c.prio {
                    0 => 8.0,
                    1 => 3.0,
                    _ => 1.0,
                };
                let tries = self.family_tries.get(&c.family).copied().unwrap_or(0);
                let fresh = if tries == 0 {
                    3.0
                } else {
                    1.0 / (1.0 + tries as f64)
                };
                let runs = self.site_runs.get(&c.family.2).copied().unwrap_or(1).max(1);
                let rarity = 1.0 + 4.0 / runs as f64;
                let ext = if c.family.0 > 0 { 2.0 } else { 1.0 };
                base * fresh * rarity * ext
            })
            .collect();
        let i = rng.weighted(&weights)?;
        Some(list[i].faults.clone())
    }
}

/// The first of `cands` in systematic order: roots before extensions, then by tier
/// (2 × priority + round), priority, round, action and site.
fn systematic_best(cands: Vec<Cand>) -> Option<Cand> {
    cands.into_iter().min_by(|a, b| {
        let key = |c: &Cand| {
            (
                c.family.0 > 0,
                2 * c.prio as usize + c.round,
                c.prio,
                c.round,
            )
        };
        key(a)
            .cmp(&key(b))
            .then_with(|| a.family.1.cmp(&b.family.1))
            .then_with(|| a.family.2.cmp(&b.family.2))
    })
}

/// Indices `0..len` in spread order: the middle first, then the quartiles, the eighths, ...,
/// then whatever is left in order. Consecutive picks cover the range evenly.
pub fn spread_order(len: usize) -> Vec<usize> {
    let mut out = Vec::with_capacity(len);
    let mut seen = vec![false; len];
    let mut den = 2usize;
    while out.len() < len && den <= 2 * len.next_power_of_two() {
        for num in (1..den).step_by(2) {
            let i = num * len / den;
            if i < len && !seen[i] {
                seen[i] = true;
                out.push(i);
            }
        }
        den *= 2;
    }
    for (i, s) in seen.iter().enumerate() {
        if !s {
            out.push(i);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_order_is_a_permutation_starting_in_the_middle() {
        assert_eq!(spread_order(1), vec![0]);
        assert_eq!(spread_order(4), vec![2, 1, 3, 0]);
        let v = spread_order(13);
        let mut s = v.clone();
        s.sort();
        assert_eq!(s, (0..13).collect::<Vec<_>>());
        assert_eq!(&v[..3], &[6, 3, 9]);
    }

    fn send(node: &str, nth: u64, seq: u64) -> Occurrence {
        Occurrence {
            site: Site {
                node: node.into(),
                call: "sendto".into(),
                class: "data".into(),
                peer: Some("client".into()),
                file: None,
            },
            nth,
            seq,
            ret: 12,
            in_workload: true,
            ack: false,
        }
    }

    #[test]
    fn extensions_are_bounded_and_the_oldest_go_first() {
        let mut k = Knowledge::new(FaultModel::default(), ["n0".to_string()]);
        k.learn(&[], &[send("n0", 1, 1)], None, false, false);
        let root = k.next_systematic().expect("a root candidate");
        // Every faulted run shows a new behaviour with a point never seen before (its n-th
        // send), as on a system whose faulted runs keep differing.
        let runs = MAX_EXTENSIONS as u64 + 10;
        for i in 0..runs {
            let fault = Fault {
                nth: 1,
                ..root[0].clone()
            };
            let fault = Fault {
                action: [Action::Delay, Action::Fail][i as usize % 2],
                max_bytes: None,
                ..fault
            };
            let mut prefix = vec![fault];
            prefix[0].site.call = format!("sendto{i}");
            let after = send("n0", 2 + i, 10);
            k.learn(&prefix, &[after], Some(5), true, false);
        }
        assert_eq!(k.extensions.len(), MAX_EXTENSIONS);
        assert_eq!(k.extensions_made, runs as usize);
        let ids: Vec<usize> = k.extensions.iter().map(|e| e.id).collect();
        assert_eq!(ids.first(), Some(&11));
        assert_eq!(ids.last(), Some(&(runs as usize)));
        assert_eq!(k.extensions[0].prefix[0].site.call, "sendto10");
        // Picks from the newest extension count against that extension's family.
        let mut rng = Rng::new(3);
        let mut picked_newest = false;
        while let Some(f) = k.next(StrategyKind::Systematic, &mut rng) {
            if f.len() == 2 && f[0].site.call == format!("sendto{}", runs - 1) {
                picked_newest = true;
                let family = (runs as usize, f[1].action, f[1].site.clone());
                assert_eq!(k.family_tries.get(&family), Some(&1));
                break;
            }
        }
        assert!(
            picked_newest,
            "the newest extension's candidates are offered"
        );
    }
}
