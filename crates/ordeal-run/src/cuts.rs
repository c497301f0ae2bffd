//! Partitions in effect as sets of directed cut links, whatever the fault said: two sides
//! (`from`, `to`, maybe one way) or a shape laid over the experiment's nodes when it fired.
//! Every mode applies the links alone: the tracer hook on loopback ([`Cut::blocks`]), the drop
//! rules in netns mode ([`crate::faults::Pending::sync_net`]).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use ordeal_faults::{Shape, ShapeState};

/// A partition in effect: traffic on each of its links is cut.
#[derive(Debug, Clone)]
pub struct Cut {
    pub fault: String,
    /// The directed links cut: (sender, receiver).
    pub links: BTreeSet<(String, String)>,
    /// How marks describe it: `n0 | n1,n2` both ways, `n0 -> n1` one way, `isolate n1 | n0 n2`
    /// for a shape (the shape's groups as it was laid).
    pub what: String,
    /// Where its marks go: the first node of its first side.
    pub mark_on: Option<String>,
    /// When a partition with a `duration` heals by itself.
    pub until: Option<Instant>,
}

impl Cut {
    /// The cut of a `partition` fault named `fault` as it fires: its sides, or its shape laid
    /// over the nodes by the fault's dice in `shapes`. `Err` says why the shape could not be
    /// laid (the fault is then marked as not applied).
    pub fn of_partition(
        fault: &str,
        sides: (&[String], &[String]),
        shape: Option<&Shape>,
        oneway: bool,
        duration: Option<Duration>,
        shapes: &mut ShapeState,
    ) -> Result<Cut, String> {
        let until = duration.map(|d| Instant::now() + d);
        let (from, to) = sides;
        let Some(shape) = shape else {
            let mut links = BTreeSet::new();
            for f in from {
                for t in to {
                    links.insert((f.clone(), t.clone()));
                    if !oneway {
                        links.insert((t.clone(), f.clone()));
                    }
                }
            }
            let join = |side: &[String]| {
                let set: BTreeSet<&String> = side.iter().collect();
                set.into_iter().cloned().collect::<Vec<_>>().join(",")
            };
            let arrow = if oneway { "->" } else { "|" };
            return Ok(Cut {
                fault: fault.to_string(),
                links,
                what: format!("{} {arrow} {}", join(from), join(to)),
                mark_on: from.first().cloned(),
                until,
            });
        };
        let split = shapes
            .split(fault, shape)
            .map_err(|e| format!("{} ({e})", shape.name()))?;
        Ok(Cut {
            fault: fault.to_string(),
            what: split.describe(),
            mark_on: split.groups.first().and_then(|g| g.first()).cloned(),
            links: split.links,
            until,
        })
    }

    /// Whether traffic sent by node `a` to node `b` is cut.
    pub fn blocks(&self, a: &str, b: &str) -> bool {
        self.links.iter().any(|(f, t)| f == a && t == b)
    }

    /// How the fault marker describes it (see [`Cut::what`]).
    pub fn describe(&self) -> String {
        self.what.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn sides_cut_both_ways_unless_one_way() {
        let mut shapes = ShapeState::default();
        let (from, to) = (names(&["n1", "n0"]), names(&["n2"]));
        let both = Cut::of_partition("p", (&from, &to), None, false, None, &mut shapes).unwrap();
        assert_eq!(both.what, "n0,n1 | n2");
        assert_eq!(both.mark_on.as_deref(), Some("n1"));
        assert!(both.blocks("n0", "n2") && both.blocks("n2", "n1"));
        assert!(!both.blocks("n0", "n1"));
        let one = Cut::of_partition("p", (&from, &to), None, true, None, &mut shapes).unwrap();
        assert_eq!(one.what, "n0,n1 -> n2");
        assert!(one.blocks("n1", "n2") && !one.blocks("n2", "n1"));
    }

    #[test]
    fn a_shape_is_laid_over_the_nodes_when_it_fires() {
        let s = ordeal_faults::Schedule::parse(
            "seed = 7\n[[fault]]\nname = \"r\"\nkind = \"partition\"\nshape = \"ring\"\n\
             trigger = { after = \"1s\" }\n",
            "s.toml",
        )
        .unwrap();
        let mut shapes = ShapeState::new(&s, names(&["n0", "n1", "n2", "n3", "n4"]));
        let ring = Cut::of_partition(
            "r",
            (&[], &[]),
            Some(&Shape::Ring),
            false,
            None,
            &mut shapes,
        )
        .unwrap();
        // As ordeal-faults lays it for seed 7, fault 0: each node hears its two neighbours.
        assert_eq!(ring.what, "ring n4 n2 n1 n3 n0");
        assert_eq!(ring.mark_on.as_deref(), Some("n4"));
        assert_eq!(ring.links.len(), 10);
        assert!(ring.blocks("n1", "n4") && ring.blocks("n4", "n1"));
        assert!(!ring.blocks("n0", "n4") && !ring.blocks("n2", "n4"));
        let isolate = Shape::Isolate {
            node: Some("n9".into()),
        };
        let err = Cut::of_partition("r", (&[], &[]), Some(&isolate), false, None, &mut shapes)
            .unwrap_err();
        assert_eq!(err, "isolate (unknown node `n9`)");
    }

    /// A shape is laid when its fault fires: the mark and the applied record say how (which
    /// node was isolated, which halves), and the cut holds exactly the shape's links.
    #[test]
    fn a_shape_fires_marked_with_its_groups_and_the_record_says_them() {
        use crate::faults::{self, MarkOn, NodeAction, Shared};
        use ordeal_events::{Event, FaultMark};

        let who = ordeal_faults::Participants::new(["n0", "n1", "n2"], ["client"]);
        let s = ordeal_faults::Schedule::parse_for(
            "seed = 7\n\
             [[fault]]\nname = \"iso\"\nkind = \"partition\"\nshape = \"isolate\"\n\
             node = \"n0\"\nduration = \"1s\"\ntrigger = { after = \"1s\" }\n\
             [[fault]]\nname = \"half\"\nkind = \"partition\"\nshape = \"halves\"\n\
             trigger = { nth = 2, node = \"n1\", call = \"sendto\" }\n",
            "s.toml",
            &who,
        )
        .unwrap();
        let shared = Shared::default();
        shared.lock().unwrap().shapes = ShapeState::new(&s, names(&["n0", "n1", "n2"]));
        let mark = |on: &str, what: &str| {
            Some(NodeAction {
                on: MarkOn::Node(on.into()),
                signal: 0,
                what: what.into(),
            })
        };
        assert_eq!(
            faults::node_fault(&s.faults[0], &shared),
            mark("n0", "partition isolate n0 | n1 n2")
        );
        assert_eq!(
            faults::node_fault(&s.faults[1], &shared),
            mark("n1", "partition halves n1 | n0 n2")
        );
        let links: Vec<Vec<String>> = shared
            .lock()
            .unwrap()
            .cuts
            .iter()
            .map(|c| c.links.iter().map(|(a, b)| format!("{a}>{b}")).collect())
            .collect();
        assert_eq!(
            links,
            [
                ["n0>n1", "n0>n2", "n1>n0", "n2>n0"],
                ["n0>n1", "n1>n0", "n1>n2", "n2>n1"]
            ]
        );

        // The record, read back from the marked events as after a run.
        let event = |seq: u64, node: &str, call: &str, mark: FaultMark| Event {
            seq,
            ts: seq * 1000,
            node: node.into(),
            call: call.into(),
            pid: 40,
            tid: 41,
            fault: Some(mark),
            ..Event::default()
        };
        let events = [
            event(
                3,
                "n0",
                "fault",
                FaultMark::fired("iso", "partition isolate n0 | n1 n2"),
            ),
            event(5, "n0", "sendto", FaultMark::effect("iso", "held")),
            event(
                9,
                "n1",
                "sendto",
                FaultMark::fired("half", "partition halves n1 | n0 n2"),
            ),
        ];
        let applied = faults::applied(&s, &events);
        let text = ordeal_faults::applied_to_toml(&applied);
        let body = &text[text.find("\n[[applied]]").unwrap()..];
        assert_eq!(
            body,
            "\n[[applied]]\nfault = \"iso\"\nkind = \"partition\"\nfired = true\nseq = 3\n\
             time_ns = 3000\nnode = \"n0\"\ndetail = \"partition isolate n0 | n1 n2 (time trigger)\"\n\
             \n[[applied]]\nfault = \"half\"\nkind = \"partition\"\nfired = true\nseq = 9\n\
             time_ns = 9000\nnode = \"n1\"\n\
             detail = \"partition halves n1 | n0 n2 at sendto (pid 40, tid 41)\"\n"
        );
    }

    /// On loopback the hook hands the tracer every connect or send that crosses a cut link
    /// (the tracer applies the drop): data only in its own direction, a handshake either way.
    #[test]
    fn the_hook_cuts_sends_one_way_and_connects_both_ways() {
        use crate::faults::{self, ScheduleHook, Shared};
        use ordeal_events::{Class, Event, FaultRef, Proto, Sock};
        use ordeal_tracer::{Action, Interceptor};

        let who = ordeal_faults::Participants::new(["n0", "n1", "n2"], ["client"]);
        let s = ordeal_faults::Schedule::parse_for(
            "[[fault]]\nname = \"cut\"\nkind = \"partition\"\nfrom = [\"n0\"]\n\
             to = [\"n1\"]\noneway = true\ntrigger = { after = \"1s\" }\n",
            "s.toml",
            &who,
        )
        .unwrap();
        let shared = Shared::default();
        let mut hook = ScheduleHook::new(&s, shared.clone());
        let call = |node: &str, call: &str, class: Class, peer: &str| Event {
            node: node.into(),
            call: call.into(),
            class: Some(class),
            sock: Some(Sock {
                ino: 9,
                proto: Proto::Tcp,
                local: None,
                remote: None,
                peer_ino: None,
                peer_node: Some(peer.into()),
            }),
            ..Event::default()
        };
        let calls = [
            call("n0", "write", Class::Data, "n1"),
            call("n1", "sendto", Class::Data, "n0"),
            call("n1", "connect", Class::Net, "n0"),
            call("n0", "connect", Class::Net, "n1"),
            call("n1", "read", Class::Data, "n0"),
            call("n0", "write", Class::Data, "n2"),
        ];
        let cut = || Action::Cut {
            by: FaultRef::effect_of("cut"),
            gate: "cut".into(),
        };
        let apply = |hook: &mut ScheduleHook| -> Vec<Action> {
            calls.iter().map(|e| hook.at_entry(e)).collect()
        };
        assert!(apply(&mut hook).iter().all(|a| *a == Action::Proceed));
        faults::node_fault(&s.faults[0], &shared);
        assert!(!hook.gate_open("cut"));
        assert_eq!(
            apply(&mut hook),
            [
                cut(),
                Action::Proceed,
                cut(),
                cut(),
                Action::Proceed,
                Action::Proceed
            ]
        );
    }
}
