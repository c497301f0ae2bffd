//! Faults aimed at roles (`role = "leader"` in a crash, pause or signal) and triggers counting
//! the calls of a role's holders: parsing, checks with positions, writing back, trigger
//! state, and the applied record.

use std::time::Duration;

use ordeal_events::{Class, Event};
use ordeal_faults::{
    applied_to_toml, parse_applied_toml, Applied, Fault, FaultKind, Holders, Participants, Pattern,
    Schedule, Signal, Target, Trigger, When,
};

fn who() -> Participants {
    Participants::new(["e1", "e2", "e3"], ["client"]).with_roles(["leader", "follower"])
}

fn errors_with(text: &str, names: &Participants) -> Vec<String> {
    match Schedule::parse_for(text, "f.toml", names) {
        Ok(_) => Vec::new(),
        Err(e) => e.diagnostics().iter().map(|d| d.to_string()).collect(),
    }
}

fn errors(text: &str) -> Vec<String> {
    errors_with(text, &who())
}

const LEADER_CRASH: &str = r#"[[fault]]
name = "crash-leader"
kind = "crash"
role = "leader"
restart_after = "2s"
trigger = { nth = 20, node = "client", call = "sendto" }

[[fault]]
kind = "pause"
role = "follower"
duration = "1s"
trigger = { nth = 3, role = "leader", call = "sendto", peer = "e2", when = "after" }

[[fault]]
kind = "signal"
role = "leader"
signal = "SIGTERM"
trigger = { after = "5s" }
"#;

#[test]
fn crash_pause_and_signal_may_aim_at_a_role_and_triggers_may_count_its_calls() {
    let s = Schedule::parse_for(LEADER_CRASH, "f.toml", &who()).unwrap();
    let leader = || Target::Role("leader".into());
    assert_eq!(
        s.faults[0].kind,
        FaultKind::Crash {
            node: leader(),
            restart_after: Some(Duration::from_secs(2)),
        }
    );
    assert_eq!(
        s.faults[1].trigger,
        Trigger::At {
            nth: 3,
            times: 1,
            pattern: Pattern {
                node: Some(leader()),
                call: Some("sendto".into()),
                peer: Some("e2".into()),
                ..Pattern::default()
            },
            when: When::After,
        }
    );
    assert_eq!(
        s.faults[2].kind,
        FaultKind::Signal {
            node: leader(),
            signal: Signal::SIGTERM,
        }
    );
    // A fault aimed at a role names no node until the run finds its holder.
    assert_eq!(s.faults[0].kind.node(), None);
    assert_eq!(s.faults[0].kind.target(), Some(&leader()));
    assert_eq!(s.faults[0].target_role(), Some("leader"));
    assert_eq!(s.faults[1].roles(), ["follower", "leader"]);
    assert_eq!(s.roles(), ["leader", "follower"]);
    // Once found, the same fault aimed at the node; other faults are left as they are.
    let crash_e2 = s.faults[0].aimed_at("e2");
    assert_eq!(crash_e2.kind.node(), Some("e2"));
    assert_eq!(crash_e2.trigger, s.faults[0].trigger);
    assert_eq!(crash_e2.name, "crash-leader");
    let restart = Fault {
        name: "r".into(),
        kind: FaultKind::Restart { node: "e1".into() },
        trigger: Trigger::Time {
            after: Duration::from_secs(1),
        },
    };
    assert_eq!(restart.aimed_at("e2"), restart);
}

#[test]
fn a_role_is_written_back_as_role_and_reads_back_equal() {
    let s = Schedule::parse_for(LEADER_CRASH, "f.toml", &who()).unwrap();
    let text = s.to_toml();
    assert_eq!(
        text,
        "seed = 0\n\
         \n\
         [[fault]]\n\
         name = \"crash-leader\"\n\
         kind = \"crash\"\n\
         role = \"leader\"\n\
         restart_after = \"2000ms\"\n\
         trigger = { nth = 20, node = \"client\", call = \"sendto\", when = \"before\" }\n\
         \n\
         [[fault]]\n\
         name = \"pause-2\"\n\
         kind = \"pause\"\n\
         role = \"follower\"\n\
         duration = \"1000ms\"\n\
         trigger = { nth = 3, role = \"leader\", call = \"sendto\", peer = \"e2\", \
         when = \"after\" }\n\
         \n\
         [[fault]]\n\
         name = \"signal-3\"\n\
         kind = \"signal\"\n\
         role = \"leader\"\n\
         signal = \"SIGTERM\"\n\
         trigger = { after = \"5000ms\" }\n"
    );
    assert_eq!(Schedule::parse_for(&text, "back.toml", &who()).unwrap(), s);
}

#[test]
fn bad_roles_are_reported_at_their_values() {
    assert_eq!(
        errors("[[fault]]\nkind = \"crash\"\nrole = \"leadr\"\ntrigger = { after = \"1s\" }\n"),
        [
            "f.toml:3:8: unknown role `leadr` (did you mean `leader`?): the experiment's roles \
             are leader, follower"
        ]
    );
    let no_roles = Participants::new(["e1"], ["client"]);
    assert_eq!(
        errors_with(
            "[[fault]]\nkind = \"pause\"\nrole = \"leader\"\nduration = \"1s\"\n\
             trigger = { nth = 1, role = \"leader\", call = \"write\" }\n",
            &no_roles
        ),
        [
            "f.toml:3:8: unknown role `leader`: the experiment declares no [roles] (see \
             docs/experiment.md)",
            "f.toml:5:29: unknown role `leader`: the experiment declares no [roles] (see \
             docs/experiment.md)",
        ]
    );
    assert_eq!(
        errors(
            "[[fault]]\nkind = \"crash\"\nnode = \"e1\"\nrole = \"leader\"\n\
             trigger = { after = \"1s\" }\n"
        ),
        ["f.toml:4:8: give `node` (a node by name) or `role` (the node holding it), not both"]
    );
    assert_eq!(
        errors("[[fault]]\nkind = \"signal\"\nsignal = \"SIGHUP\"\ntrigger = { after = \"1s\" }\n"),
        [
            "f.toml:1:1: a `signal` fault needs `node` (the node it acts on) or `role` (the \
             node holding that role when it fires)"
        ]
    );
    assert_eq!(
        errors(
            "[[fault]]\nkind = \"delay\"\nduration = \"1s\"\n\
             trigger = { nth = 1, node = \"e1\", role = \"leader\", call = \"write\" }\n"
        ),
        [
            "f.toml:4:42: give `node` (a node's calls) or `role` (the calls of the node \
             holding it), not both"
        ]
    );
    assert_eq!(
        errors("[[fault]]\nkind = \"heal\"\ntrigger = { after = \"1s\", role = \"leader\" }\n"),
        [
            "f.toml:3:34: `role` does not apply to a time trigger (`after`), which counts no \
             events; use `nth` or `p` to fire at a matching event"
        ]
    );
    // A restart starts a crashed node again: no role is held by a node that is down.
    assert_eq!(
        errors("[[fault]]\nkind = \"restart\"\nrole = \"leader\"\ntrigger = { after = \"1s\" }\n"),
        [
            "f.toml:1:1: a `restart` fault needs `node` (the node it acts on)",
            "f.toml:3:8: `role` does not apply to a `restart` fault (a `restart` fault takes \
             `node`)",
        ]
    );
}

#[test]
fn a_fault_built_in_code_with_an_unknown_role_is_named() {
    let s = Schedule::new(
        "built",
        0,
        vec![Fault {
            name: "c".into(),
            kind: FaultKind::Crash {
                node: Target::Role("primary".into()),
                restart_after: None,
            },
            trigger: Trigger::nth(1, Pattern::default()),
        }],
    );
    assert_eq!(
        s.validate_for(&who()).unwrap_err().to_string(),
        "built: fault `c`: unknown role `primary`: the experiment's roles are leader, follower"
    );
}

fn call(node: &str, name: &str) -> Event {
    Event {
        node: node.into(),
        call: name.into(),
        class: Some(Class::Data),
        ..Default::default()
    }
}

#[test]
fn a_trigger_counts_the_calls_of_the_roles_holders_as_last_told() {
    let s = Schedule::parse_for(
        "[[fault]]\nkind = \"delay\"\nduration = \"1ms\"\n\
         trigger = { nth = 2, times = 2, role = \"leader\", call = \"write\" }\n",
        "f.toml",
        &who(),
    )
    .unwrap();
    let mut st = s.trigger_states().remove(0);
    let w = |n: &str| call(n, "write");
    // Not told yet: no node holds the role, nothing counts.
    assert!(!st.observe(&w("e1"), When::Before));
    assert_eq!(st.matched(), 0);
    let holders = |role: &str, nodes: &[&str]| -> Holders {
        Holders::from([(
            role.to_string(),
            nodes.iter().map(|n| n.to_string()).collect(),
        )])
    };
    st.set_holders(&holders("leader", &["e1"]));
    assert!(!st.observe(&w("e2"), When::Before));
    assert!(!st.observe(&w("e1"), When::After), "counted at entry only");
    assert!(!st.observe(&w("e1"), When::Before));
    assert!(st.observe(&w("e1"), When::Before), "the leader's 2nd write");
    // The leader moved: e2's writes count from now on, e1's no more.
    st.set_holders(&holders("leader", &["e2"]));
    assert!(!st.observe(&w("e1"), When::Before));
    assert!(
        st.observe(&w("e2"), When::Before),
        "the 3rd write of a leader"
    );
    assert_eq!((st.matched(), st.fired()), (3, 2));
    // Holders of other roles change nothing; a role with no holder matches nothing.
    st.set_holders(&holders("follower", &["e2"]));
    assert!(!st.observe(&w("e2"), When::Before));
    // A pattern naming a role matches no event without holders.
    let p = Pattern {
        node: Some(Target::Role("leader".into())),
        ..Pattern::default()
    };
    assert!(!p.matches(&w("e1")));
    assert!(p.matches_with(&w("e1"), &holders("leader", &["e3", "e1"])));
}

#[test]
fn the_applied_record_says_which_node_held_the_role() {
    let s = Schedule::parse_for(LEADER_CRASH, "f.toml", &who()).unwrap();
    let mut a = Applied::fired_at(&s.faults[0], Some(912), 3_000_000);
    a.role = Some("leader".into());
    a.node = Some("e2".into());
    a.detail = Some("crash e2 (role leader)".into());
    let text = applied_to_toml(&[a.clone()]);
    assert!(
        text.ends_with(
            "[[applied]]\nfault = \"crash-leader\"\nkind = \"crash\"\nfired = true\nseq = 912\n\
             time_ns = 3000000\nrole = \"leader\"\nnode = \"e2\"\n\
             detail = \"crash e2 (role leader)\"\n"
        ),
        "{text}"
    );
    assert_eq!(parse_applied_toml(&text, "a.toml").unwrap(), [a]);
}

/// A partition isolating a role's holder (Jepsen's "isolate the leader"): parsed, checked,
/// written back, aimed at the holder when it fires; a role on another shape is refused.
#[test]
fn an_isolating_partition_may_aim_at_a_role() {
    let text = "[[fault]]\nname = \"isolate-leader\"\nkind = \"partition\"\nshape = \"isolate\"\n\
                role = \"leader\"\nduration = \"2s\"\ntrigger = { after = \"1s\" }\n";
    let s = Schedule::parse_for(text, "f.toml", &who()).unwrap();
    let f = &s.faults[0];
    assert_eq!(
        f.kind,
        FaultKind::Partition {
            from: Vec::new(),
            to: Vec::new(),
            shape: Some(ordeal_faults::Shape::Isolate {
                node: Some(Target::Role("leader".into()))
            }),
            oneway: false,
            duration: Some(Duration::from_secs(2)),
        }
    );
    assert_eq!(f.target_role(), Some("leader"));
    assert_eq!(f.roles(), ["leader"]);
    let aimed = f.aimed_at("e2");
    assert_eq!(aimed.target_role(), None);
    assert!(matches!(
        aimed.kind,
        FaultKind::Partition {
            shape: Some(ordeal_faults::Shape::Isolate {
                node: Some(Target::Node(ref n))
            }),
            ..
        } if n == "e2"
    ));
    let back = s.to_toml();
    assert!(
        back.contains("shape = \"isolate\"\nrole = \"leader\"\n"),
        "{back}"
    );
    assert_eq!(Schedule::parse_for(&back, "back.toml", &who()).unwrap(), s);

    assert_eq!(
        errors(
            "[[fault]]\nkind = \"partition\"\nshape = \"isolate\"\nrole = \"leeder\"\n\
             trigger = { after = \"1s\" }\n\
             [[fault]]\nkind = \"partition\"\nshape = \"halves\"\nrole = \"leader\"\n\
             trigger = { after = \"1s\" }\n"
        ),
        [
            "f.toml:4:8: unknown role `leeder` (did you mean `leader`?): the experiment's roles \
             are leader, follower",
            "f.toml:9:8: `role` applies to shape = \"isolate\" only (the node cut off), not to \
             shape = \"halves\""
        ]
    );
}
