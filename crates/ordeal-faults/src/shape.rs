//! Partition shapes: Jepsen's standard ways to split a cluster (isolate one node, a
//! minority/majority split, a bridge, a ring of overlapping majorities), each turned into the
//! set of directed links it cuts over the experiment's nodes. Which nodes land where is decided
//! when the fault fires, by the fault's own dice ([`shape_dice`]): seeded, so a replay of the
//! schedule splits the nodes the same way.

use std::collections::{BTreeMap, BTreeSet};

use ordeal_sys::rng::{mix, SplitMix64};

use crate::trigger::fault_seed;
use crate::{FaultKind, Schedule, Target};

/// A standard partition over the experiment's nodes (workloads are never cut by a shape).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Shape {
    /// One node cut off from every other node, both ways: `node`, the node holding a role
    /// (aimed at its holder before it is laid, see [`crate::Fault::aimed_at`]), or one drawn
    /// by the fault's dice when it fires.
    Isolate { node: Option<Target> },
    /// The nodes shuffled and cut in two, both ways: the first ⌊n/2⌋ (a minority) from the
    /// rest (for 3 nodes 1 | 2, for 5 nodes 2 | 3).
    Halves,
    /// Halves whose larger side's first node is a bridge: it keeps seeing both sides, which
    /// no longer see each other (for 5 nodes 2 | 1 | 2).
    Bridge,
    /// The nodes shuffled into a ring; each node hears only from the ⌊n/2⌋+1 consecutive
    /// nodes around it (itself included, ⌊m/2⌋ of them before it): every node sees a
    /// majority, and no two see the same one. For 5 nodes each node sees its two neighbours.
    Ring,
}

/// The shapes as written in a schedule's `shape`.
pub const SHAPES: &[&str] = &["isolate", "halves", "bridge", "ring"];

/// A shape that cannot be laid over the experiment's nodes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShapeError {
    #[error("a `{shape}` partition needs at least {need} nodes (the experiment has {have})")]
    TooFewNodes {
        shape: &'static str,
        need: usize,
        have: usize,
    },
    #[error("unknown node `{0}`")]
    UnknownNode(String),
    #[error("no node holds role `{0}`")]
    NoHolder(String),
}

impl Shape {
    /// The shape written `name`, with no node chosen.
    pub fn parse(name: &str) -> Option<Shape> {
        match name {
            "isolate" => Some(Shape::Isolate { node: None }),
            "halves" => Some(Shape::Halves),
            "bridge" => Some(Shape::Bridge),
            "ring" => Some(Shape::Ring),
            _ => None,
        }
    }

    /// As written in a schedule's `shape`.
    pub fn name(&self) -> &'static str {
        match self {
            Shape::Isolate { .. } => "isolate",
            Shape::Halves => "halves",
            Shape::Bridge => "bridge",
            Shape::Ring => "ring",
        }
    }

    /// The fewest nodes the shape cuts anything in: two for a node and the rest or two
    /// halves, three for a bridge between two sides and for a ring.
    pub fn min_nodes(&self) -> usize {
        match self {
            Shape::Isolate { .. } | Shape::Halves => 2,
            Shape::Bridge | Shape::Ring => 3,
        }
    }

    /// Lays the shape over `nodes` (the experiment's, in file order), drawing what it leaves
    /// open from `dice`: the isolated node when none is named, the shuffles.
    pub fn split(&self, nodes: &[String], dice: &mut SplitMix64) -> Result<Split, ShapeError> {
        if nodes.len() < self.min_nodes() {
            return Err(ShapeError::TooFewNodes {
                shape: self.name(),
                need: self.min_nodes(),
                have: nodes.len(),
            });
        }
        let in_file_order = |group: &[String]| -> Vec<String> {
            let mut g: Vec<String> = group.to_vec();
            g.sort_by_key(|n| nodes.iter().position(|m| m == n));
            g
        };
        let n = nodes.len();
        let split = match self {
            Shape::Isolate { node } => {
                let alone = match node {
                    Some(Target::Node(name)) => nodes
                        .iter()
                        .find(|n| *n == name)
                        .cloned()
                        .ok_or_else(|| ShapeError::UnknownNode(name.clone()))?,
                    Some(Target::Role(role)) => {
                        return Err(ShapeError::NoHolder(role.clone()));
                    }
                    None => nodes[dice.below(n as u64) as usize].clone(),
                };
                let rest: Vec<String> = nodes.iter().filter(|n| **n != alone).cloned().collect();
                Split::apart(self.name(), vec![vec![alone], rest])
            }
            Shape::Halves => {
                let order = shuffled(nodes, dice);
                let (minority, majority) = order.split_at(n / 2);
                Split::apart(
                    self.name(),
                    vec![in_file_order(minority), in_file_order(majority)],
                )
            }
            Shape::Bridge => {
                let order = shuffled(nodes, dice);
                let (left, larger) = order.split_at(n / 2);
                let (bridge, right) = larger.split_at(1);
                let (left, right) = (in_file_order(left), in_file_order(right));
                let mut links = BTreeSet::new();
                cut_both_ways(&mut links, &left, &right);
                Split {
                    shape: self.name(),
                    groups: vec![left, bridge.to_vec(), right],
                    links,
                }
            }
            Shape::Ring => {
                let ring = shuffled(nodes, dice);
                let seen = n / 2 + 1;
                let before = seen / 2;
                let mut links = BTreeSet::new();
                for (i, receiver) in ring.iter().enumerate() {
                    // Positions i - before .. i - before + seen, around the ring.
                    let sees = |j: usize| (j + n - i + before) % n < seen;
                    for (j, sender) in ring.iter().enumerate() {
                        if !sees(j) {
                            links.insert((sender.clone(), receiver.clone()));
                        }
                    }
                }
                Split {
                    shape: self.name(),
                    groups: vec![ring],
                    links,
                }
            }
        };
        Ok(split)
    }
}

/// A shape laid over the nodes: its groups and the links it cuts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    /// The shape's name.
    pub shape: &'static str,
    /// Isolate: the node, then the others; halves: the minority, then the majority; bridge:
    /// one side, the bridge, the other side; ring: the ring's order. Sides in file order.
    pub groups: Vec<Vec<String>>,
    /// The directed links cut: (sender, receiver).
    pub links: BTreeSet<(String, String)>,
}

impl Split {
    /// Groups that do not see each other at all.
    fn apart(shape: &'static str, groups: Vec<Vec<String>>) -> Split {
        let mut links = BTreeSet::new();
        for (i, a) in groups.iter().enumerate() {
            for b in &groups[i + 1..] {
                cut_both_ways(&mut links, a, b);
            }
        }
        Split {
            shape,
            groups,
            links,
        }
    }

    /// For marks and the applied record: `isolate n1 | n0 n2`, `halves n0 n3 | n1 n2 n4`,
    /// `bridge n0 n3 | n1 | n2 n4`, `ring n3 n0 n4 n1 n2`.
    pub fn describe(&self) -> String {
        let groups: Vec<String> = self.groups.iter().map(|g| g.join(" ")).collect();
        format!("{} {}", self.shape, groups.join(" | "))
    }
}

fn cut_both_ways(links: &mut BTreeSet<(String, String)>, a: &[String], b: &[String]) {
    for x in a {
        for y in b {
            links.insert((x.clone(), y.clone()));
            links.insert((y.clone(), x.clone()));
        }
    }
}

/// Fisher-Yates, from the end.
fn shuffled(nodes: &[String], dice: &mut SplitMix64) -> Vec<String> {
    let mut v = nodes.to_vec();
    for i in (1..v.len()).rev() {
        let j = dice.below(i as u64 + 1) as usize;
        v.swap(i, j);
    }
    v
}

/// The dice of the shape of fault `index` (0-based) in a schedule seeded with `seed`: a stream
/// of its own, apart from its trigger's (a `p` trigger fires at the same events whether its
/// fault is a shape or not). Each firing of the fault draws on from where the last one left.
pub fn shape_dice(seed: u64, index: usize) -> SplitMix64 {
    // "shapes" in ASCII: any constant that sets the stream apart from the trigger's.
    const SHAPES_STREAM: u64 = 0x7368_6170_6573;
    SplitMix64::new(mix(fault_seed(seed, index) ^ SHAPES_STREAM))
}

/// The shapes of a schedule's partitions as they fire: the experiment's nodes, and each shaped
/// fault's dice (what the supervisor keeps for a run, as it keeps trigger states).
#[derive(Debug, Clone, Default)]
pub struct ShapeState {
    nodes: Vec<String>,
    seed: u64,
    dice: BTreeMap<String, SplitMix64>,
}

impl ShapeState {
    /// For a run of `schedule` over `nodes` (the experiment's, in file order).
    pub fn new(schedule: &Schedule, nodes: Vec<String>) -> ShapeState {
        let dice = schedule
            .faults
            .iter()
            .enumerate()
            .filter(|(_, f)| matches!(f.kind, FaultKind::Partition { shape: Some(_), .. }))
            .map(|(i, f)| (f.name.clone(), shape_dice(schedule.seed, i)))
            .collect();
        ShapeState {
            nodes,
            seed: schedule.seed,
            dice,
        }
    }

    /// Lays `shape`, the shape of fault `fault`, over the nodes, drawing on the fault's dice
    /// (those of the schedule's first fault for a fault the schedule does not have).
    pub fn split(&mut self, fault: &str, shape: &Shape) -> Result<Split, ShapeError> {
        let seed = self.seed;
        let dice = self
            .dice
            .entry(fault.to_string())
            .or_insert_with(|| shape_dice(seed, 0));
        shape.split(&self.nodes, dice)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("n{i}")).collect()
    }

    fn split(shape: Shape, n: usize, seed: u64) -> Split {
        shape
            .split(&nodes(n), &mut shape_dice(seed, 0))
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// `a>b` for each cut link, sorted.
    fn links(s: &Split) -> Vec<String> {
        s.links.iter().map(|(a, b)| format!("{a}>{b}")).collect()
    }

    #[test]
    fn isolate_cuts_one_node_from_the_others_both_ways() {
        let named = split(
            Shape::Isolate {
                node: Some("n0".into()),
            },
            3,
            7,
        );
        assert_eq!(named.describe(), "isolate n0 | n1 n2");
        assert_eq!(links(&named), ["n0>n1", "n0>n2", "n1>n0", "n2>n0"]);
        // Drawn by the dice when not named.
        let drawn = split(Shape::Isolate { node: None }, 5, 2);
        assert_eq!(drawn.describe(), "isolate n2 | n0 n1 n3 n4");
        assert_eq!(
            links(&drawn),
            ["n0>n2", "n1>n2", "n2>n0", "n2>n1", "n2>n3", "n2>n4", "n3>n2", "n4>n2"]
        );
        let other_seed = split(Shape::Isolate { node: None }, 3, 1);
        assert_eq!(other_seed.describe(), "isolate n1 | n0 n2");
    }

    #[test]
    fn halves_cut_a_minority_from_a_majority() {
        let three = split(Shape::Halves, 3, 7);
        assert_eq!(three.describe(), "halves n2 | n0 n1");
        assert_eq!(links(&three), ["n0>n2", "n1>n2", "n2>n0", "n2>n1"]);
        let five = split(Shape::Halves, 5, 7);
        assert_eq!(five.describe(), "halves n2 n4 | n0 n1 n3");
        assert_eq!(
            links(&five),
            [
                "n0>n2", "n0>n4", "n1>n2", "n1>n4", "n2>n0", "n2>n1", "n2>n3", "n3>n2", "n3>n4",
                "n4>n0", "n4>n1", "n4>n3"
            ]
        );
    }

    #[test]
    fn a_bridge_sees_both_sides_which_do_not_see_each_other() {
        let three = split(Shape::Bridge, 3, 7);
        assert_eq!(three.describe(), "bridge n2 | n1 | n0");
        assert_eq!(links(&three), ["n0>n2", "n2>n0"]);
        let five = split(Shape::Bridge, 5, 7);
        assert_eq!(five.describe(), "bridge n2 n4 | n1 | n0 n3");
        // n1 keeps every link.
        assert_eq!(
            links(&five),
            ["n0>n2", "n0>n4", "n2>n0", "n2>n3", "n3>n2", "n3>n4", "n4>n0", "n4>n3"]
        );
    }

    #[test]
    fn in_a_ring_each_node_hears_from_the_majority_around_it() {
        let five = split(Shape::Ring, 5, 7);
        assert_eq!(five.describe(), "ring n4 n2 n1 n3 n0");
        // Each node hears from its two neighbours in the ring (n4 from n0 and n2), not from the
        // two others: the cut is symmetric for 5 nodes.
        assert_eq!(
            links(&five),
            [
                "n0>n1", "n0>n2", "n1>n0", "n1>n4", "n2>n0", "n2>n3", "n3>n2", "n3>n4", "n4>n1",
                "n4>n3"
            ]
        );
        // For 3 nodes a majority is 2: each node hears only from the one before it.
        let three = split(Shape::Ring, 3, 7);
        assert_eq!(three.describe(), "ring n2 n1 n0");
        assert_eq!(links(&three), ["n0>n1", "n1>n2", "n2>n0"]);
    }

    #[test]
    fn every_node_of_a_ring_sees_a_majority_of_its_own() {
        for n in 3..=9 {
            let s = split(Shape::Ring, n, n as u64);
            let mut seen = BTreeSet::new();
            for r in nodes(n) {
                let heard: BTreeSet<String> = nodes(n)
                    .into_iter()
                    .filter(|x| !s.links.contains(&(x.clone(), r.clone())))
                    .collect();
                assert_eq!(heard.len(), n / 2 + 1, "{n} nodes: {r} hears {heard:?}");
                assert!(heard.contains(&r));
                assert!(
                    seen.insert(heard),
                    "{n} nodes: two nodes see the same majority"
                );
            }
        }
    }

    #[test]
    fn each_firing_draws_on_and_a_replay_draws_the_same() {
        let mut dice = shape_dice(7, 0);
        let firings: Vec<String> = (0..3)
            .map(|_| {
                Shape::Halves
                    .split(&nodes(5), &mut dice)
                    .unwrap()
                    .describe()
            })
            .collect();
        assert_eq!(
            firings,
            [
                "halves n2 n4 | n0 n1 n3",
                "halves n1 n3 | n0 n2 n4",
                "halves n0 n4 | n1 n2 n3"
            ]
        );
        let mut again = shape_dice(7, 0);
        assert_eq!(
            Shape::Halves
                .split(&nodes(5), &mut again)
                .unwrap()
                .describe(),
            firings[0]
        );
    }

    #[test]
    fn a_run_draws_each_fault_from_its_own_dice() {
        let s = Schedule::parse(
            "seed = 7\n\
             [[fault]]\nkind = \"crash\"\nnode = \"n0\"\ntrigger = { after = \"1s\" }\n\
             [[fault]]\nname = \"h\"\nkind = \"partition\"\nshape = \"halves\"\n\
             trigger = { after = \"1s\" }\n",
            "s.toml",
        )
        .unwrap();
        let mut state = ShapeState::new(&s, nodes(5));
        let mut dice = shape_dice(7, 1);
        for _ in 0..2 {
            assert_eq!(
                state.split("h", &Shape::Halves),
                Shape::Halves.split(&nodes(5), &mut dice)
            );
        }
    }

    #[test]
    fn what_cannot_be_laid_over_the_nodes() {
        let mut dice = shape_dice(1, 0);
        assert_eq!(
            Shape::Bridge
                .split(&nodes(2), &mut dice)
                .unwrap_err()
                .to_string(),
            "a `bridge` partition needs at least 3 nodes (the experiment has 2)"
        );
        let isolate = Shape::Isolate {
            node: Some("n9".into()),
        };
        assert_eq!(
            isolate.split(&nodes(3), &mut dice).unwrap_err(),
            ShapeError::UnknownNode("n9".into())
        );
        for name in SHAPES {
            assert_eq!(Shape::parse(name).map(|s| s.name()), Some(*name));
        }
        assert_eq!(Shape::parse("star"), None);
    }
}
