//! Partition shapes as candidates: Jepsen's standard partitions (isolate one node, a
//! minority/majority split, a bridge, a ring of majorities) fired at a point where a node
//! sends, for the model's long duration. The single-link [`Action::Partition`] cuts a node
//! from one peer; these cut the cluster the way real partitions do, which is how a deposed
//! leader serving stale reads shows.
//!
//! Only shapes that add a cut no other candidate makes are offered: none below 3 nodes (with
//! two, any shape is the link partition), `isolate` from 3 nodes on (each node in turn: the
//! node of the point), `halves` and `bridge` from 4 (with 3, halves is an isolate and a bridge
//! the cut of one link), `ring` from 5. The groups of halves, bridge and ring are drawn when
//! the fault fires, from the schedule's seed (`ordeal_faults::shape_dice`), and recorded in
//! the run's `schedule.applied.toml`.

use ordeal_faults::Shape;

use crate::candidates::{Action, Occurrence, SiteKind};

impl Action {
    /// Whether the action cuts the network along a shape.
    pub fn is_shape(self) -> bool {
        matches!(
            self,
            Action::Isolate | Action::Halves | Action::Bridge | Action::Ring
        )
    }

    /// The shape a fault of this action at `site` lays: an isolate cuts off the site's node
    /// (`node`: as a schedule names it, the node or the role holding it).
    pub fn shape(self, node: ordeal_faults::Target) -> Option<Shape> {
        match self {
            Action::Isolate => Some(Shape::Isolate { node: Some(node) }),
            Action::Halves => Some(Shape::Halves),
            Action::Bridge => Some(Shape::Bridge),
            Action::Ring => Some(Shape::Ring),
            _ => None,
        }
    }

    /// The fewest nodes for which the shape is worth a run of its own (see the module doc).
    fn shape_min_nodes(self) -> usize {
        match self {
            Action::Isolate => 3,
            Action::Halves | Action::Bridge => 4,
            _ => 5,
        }
    }
}

/// The shapes worth trying at an occurrence, in a system of `nodes` nodes: at a node's
/// successful send once the workloads run (the moments the other node faults take).
pub fn shape_actions(o: &Occurrence, node_is_node: bool, nodes: usize) -> Vec<Action> {
    let at_a_send = o.site.kind() == Some(SiteKind::Send) && o.ret >= 0;
    if !(node_is_node && o.in_workload && at_a_send) {
        return Vec::new();
    }
    [
        Action::Isolate,
        Action::Halves,
        Action::Bridge,
        Action::Ring,
    ]
    .into_iter()
    .filter(|a| nodes >= a.shape_min_nodes())
    .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::time::Duration;

    use ordeal_faults::FaultKind;

    use crate::candidates::Site;

    use super::*;
    use crate::candidates::{Fault, FaultModel};
    use crate::rng::Rng;
    use crate::strategy::{Knowledge, StrategyKind};

    fn send(node: &str, peer: &str, nth: u64, seq: u64) -> Occurrence {
        Occurrence {
            site: Site {
                node: node.into(),
                call: "sendto".into(),
                class: "data".into(),
                peer: Some(peer.into()),
                file: None,
            },
            nth,
            seq,
            ret: 12,
            in_workload: true,
            ack: false,
        }
    }

    /// A fault-free run of `nodes` nodes: each sends to the client and to the next node.
    fn baseline(nodes: usize) -> Vec<Occurrence> {
        let mut out = Vec::new();
        for i in 0..nodes {
            let node = format!("n{i}");
            out.push(send(&node, "client", 1, out.len() as u64 + 1));
            out.push(send(
                &node,
                &format!("n{}", (i + 1) % nodes),
                1,
                out.len() as u64 + 1,
            ));
        }
        out
    }

    fn knowledge(model: FaultModel, nodes: usize) -> Knowledge {
        let mut k = Knowledge::new(model, (0..nodes).map(|i| format!("n{i}")));
        k.learn(&[], &baseline(nodes), None, false, false);
        k
    }

    /// Every schedule the systematic strategy would run, in order.
    fn every_schedule(k: &mut Knowledge) -> Vec<Vec<Fault>> {
        let mut rng = Rng::new(1);
        std::iter::from_fn(|| k.next(StrategyKind::Systematic, &mut rng)).collect()
    }

    /// (action, node) of every single-fault schedule with a shape.
    fn shapes_tried(schedules: &[Vec<Fault>]) -> BTreeSet<(Action, String)> {
        schedules
            .iter()
            .filter(|s| s.len() == 1 && s[0].action.is_shape())
            .map(|s| (s[0].action, s[0].site.node.clone()))
            .collect()
    }

    #[test]
    fn the_shapes_offered_depend_on_the_number_of_nodes() {
        let o = send("n0", "n1", 1, 1);
        assert_eq!(shape_actions(&o, true, 2), []);
        assert_eq!(shape_actions(&o, true, 3), [Action::Isolate]);
        assert_eq!(
            shape_actions(&o, true, 4),
            [Action::Isolate, Action::Halves, Action::Bridge]
        );
        assert_eq!(
            shape_actions(&o, true, 5),
            [
                Action::Isolate,
                Action::Halves,
                Action::Bridge,
                Action::Ring
            ]
        );
        // Not in a workload, at a workload, at a failed send or at a receive.
        let before = Occurrence {
            in_workload: false,
            ..o.clone()
        };
        let failed = Occurrence {
            ret: -104,
            ..o.clone()
        };
        let mut recv = o.clone();
        recv.site.call = "recvfrom".into();
        for o in [before, failed, recv] {
            assert_eq!(shape_actions(&o, true, 5), [], "{:?}", o);
        }
        assert_eq!(shape_actions(&o, false, 5), []);
    }

    #[test]
    fn a_three_node_trace_gives_an_isolate_of_each_node() {
        let mut k = knowledge(FaultModel::default(), 3);
        let all = every_schedule(&mut k);
        let want: BTreeSet<(Action, String)> = ["n0", "n1", "n2"]
            .into_iter()
            .map(|n| (Action::Isolate, n.to_string()))
            .collect();
        assert_eq!(shapes_tried(&all), want);
        // Each isolates the node of its point, as a partition shape in the schedule.
        let iso = all
            .iter()
            .find(|s| s[0].action == Action::Isolate && s[0].site.node == "n1")
            .unwrap();
        let f = iso[0]
            .to_schedule_fault(&FaultModel::default(), "s.toml")
            .unwrap();
        assert_eq!(
            f.kind,
            FaultKind::Partition {
                from: Vec::new(),
                to: Vec::new(),
                shape: Some(Shape::Isolate {
                    node: Some("n1".into())
                }),
                oneway: false,
                duration: Some(Duration::from_millis(1500)),
            }
        );
        assert!(f.name.starts_with("isolate-n1-sendto-"), "{}", f.name);
    }

    #[test]
    fn a_five_node_trace_gives_every_shape() {
        let mut k = knowledge(FaultModel::default(), 5);
        let tried = shapes_tried(&every_schedule(&mut k));
        let actions: BTreeSet<Action> = tried.iter().map(|(a, _)| *a).collect();
        assert_eq!(
            actions,
            [
                Action::Isolate,
                Action::Halves,
                Action::Bridge,
                Action::Ring
            ]
            .into()
        );
        let isolated: BTreeSet<&str> = tried
            .iter()
            .filter(|(a, _)| *a == Action::Isolate)
            .map(|(_, n)| n.as_str())
            .collect();
        assert_eq!(isolated, ["n0", "n1", "n2", "n3", "n4"].into());
    }

    /// With `--max-faults 2` a crash and a partition make one schedule; by default (at most
    /// one disruptive fault) they never do.
    #[test]
    fn max_faults_lets_a_crash_and_a_partition_share_a_schedule() {
        let crash_then_isolate = |model: FaultModel| {
            let mut k = knowledge(model, 3);
            let crash = Fault {
                action: Action::CrashAfter,
                site: send("n0", "client", 1, 1).site,
                nth: 1,
                max_bytes: None,
            };
            let isolate = Fault {
                action: Action::Isolate,
                site: send("n1", "n2", 1, 4).site,
                nth: 1,
                max_bytes: None,
            };
            // Both fired alone and passed: the pair is a candidate if the model allows it.
            for f in [&crash, &isolate] {
                k.mark_tried(std::slice::from_ref(f));
                k.learn(std::slice::from_ref(f), &baseline(3), Some(1), false, false);
            }
            let pair = vec![crash, isolate];
            let all = every_schedule(&mut k);
            (k.model().allows(&pair), all.contains(&pair))
        };
        assert_eq!(crash_then_isolate(FaultModel::default()), (false, false));
        let two = FaultModel::default().counting_every_fault(2);
        assert_eq!((two.max_faults, two.max_disruptions), (2, 2));
        assert_eq!(crash_then_isolate(two), (true, true));
    }

    #[test]
    fn shaped_faults_are_valid_schedules_for_their_experiment() {
        let names = ordeal_faults::Participants::new(["n0", "n1", "n2", "n3", "n4"], ["client"]);
        let faults: Vec<Fault> = shape_actions(&send("n3", "client", 2, 9), true, 5)
            .into_iter()
            .map(|action| Fault {
                action,
                site: send("n3", "client", 2, 9).site,
                nth: 2,
                max_bytes: None,
            })
            .collect();
        for f in &faults {
            let text =
                crate::schedule::schedule_toml(std::slice::from_ref(f), &FaultModel::default(), 1)
                    .unwrap();
            ordeal_faults::Schedule::parse_for(&text, "x.toml", &names)
                .unwrap_or_else(|e| panic!("{f}: {e}\n{text}"));
        }
        let text = crate::schedule::schedule_toml(&faults[3..], &FaultModel::default(), 1).unwrap();
        assert_eq!(
            text,
            "# Written by ordeal explore.\nseed = 1\n\n[[fault]]\nname = \"ring-n3-sendto-client-2\"\n\
             kind = \"partition\"\nshape = \"ring\"\nduration = \"1500ms\"\n\
             trigger = { nth = 2, node = \"n3\", call = \"sendto\", class = \"data\", \
             peer = \"client\", when = \"before\" }\n"
        );
    }
}
