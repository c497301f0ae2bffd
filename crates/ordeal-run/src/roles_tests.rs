//! Roles on the tracer's side: a fault aimed at a role that fires at a call is left to the
//! supervisor, a trigger naming a role counts the calls of the holders published to it, a
//! node-level fault makes the roles looked for again, and the applied record names the role
//! and the node that held it.

use crate::faults::{self, Deferred, ScheduleHook, Shared};
use crate::roles;
use ordeal_events::{Class, Event, FaultMark, FaultRef};
use ordeal_faults::{Applied, Participants, Schedule};
use ordeal_tracer::{Action, Interceptor};
use std::time::Duration;

fn schedule(text: &str) -> Schedule {
    let names = Participants::new(["e1", "e2", "e3"], ["client"]).with_roles(["leader"]);
    Schedule::parse_for(text, "s.toml", &names).unwrap()
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
fn a_fault_aimed_at_a_role_that_fires_at_a_call_is_left_to_the_supervisor() {
    let s = schedule(
        "[[fault]]\nname = \"crash-leader\"\nkind = \"crash\"\nrole = \"leader\"\n\
         trigger = { nth = 2, node = \"client\", call = \"sendto\" }\n",
    );
    let shared = Shared::default();
    let mut hook = ScheduleHook::new(&s, shared.clone());
    let send = call("client", "sendto");
    assert_eq!(hook.at_entry(&send), Action::Proceed);
    // Fired: the call goes on, the crash waits for the probe that finds the leader.
    assert_eq!(hook.at_entry(&send), Action::Proceed);
    assert_eq!(hook.at_entry(&send), Action::Proceed);
    assert_eq!(
        faults::take_deferred(&shared),
        [Deferred {
            fault: s.faults[0].clone(),
            fired_in: "client".into(),
        }]
    );
    assert!(faults::take_deferred(&shared).is_empty());
    // Nothing started yet: no node is down, nothing lasts.
    let p = shared.lock().unwrap();
    assert!(p.lasting.is_empty() && !p.roles_moved);
    // And node_fault refuses a fault still aimed at a role.
    drop(p);
    assert_eq!(faults::node_fault(&s.faults[0], &shared), None);
    assert_eq!(
        faults::node_fault(&s.faults[0].aimed_at("e2"), &shared).map(|a| (a.on, a.signal, a.what)),
        Some((
            faults::MarkOn::Node("e2".into()),
            libc::SIGKILL,
            "crash e2".into()
        ))
    );
    assert!(faults::kept_down(&shared, "e2"));
}

#[test]
fn a_trigger_naming_a_role_counts_the_calls_of_the_holders_published_to_it() {
    let s = schedule(
        "[[fault]]\nname = \"slow\"\nkind = \"delay\"\nduration = \"5ms\"\n\
         trigger = { nth = 2, role = \"leader\", call = \"write\" }\n",
    );
    let shared = Shared::default();
    let mut hook = ScheduleHook::new(&s, shared.clone());
    let w = |n: &str| call(n, "write");
    // No holder known: nothing counts.
    assert_eq!(hook.at_entry(&w("e1")), Action::Proceed);
    roles::publish(&shared, "leader", vec!["e1".into()]);
    assert_eq!(hook.at_entry(&w("e1")), Action::Proceed);
    assert_eq!(hook.at_entry(&w("e2")), Action::Proceed);
    assert_eq!(
        hook.at_entry(&w("e1")),
        Action::Delay {
            by: FaultRef::fired("slow"),
            dur: Duration::from_millis(5)
        }
    );
}

#[test]
fn a_node_level_fault_makes_the_roles_looked_for_again() {
    let s = schedule(
        "[[fault]]\nkind = \"pause\"\nnode = \"e1\"\nduration = \"1s\"\n\
         trigger = { after = \"1s\" }\n\
         [[fault]]\nkind = \"delay\"\nduration = \"1s\"\ntrigger = { nth = 1, call = \"write\" }\n",
    );
    let shared = Shared::default();
    faults::node_fault(&s.faults[1], &shared);
    assert!(
        !shared.lock().unwrap().roles_moved,
        "a call fault moves nothing"
    );
    faults::node_fault(&s.faults[0], &shared);
    assert!(shared.lock().unwrap().roles_moved);
    // And the paused node is not probed.
    assert!(faults::stopped(&shared, "e1"));
    assert!(!faults::stopped(&shared, "e2"));
}

#[test]
fn the_applied_record_names_the_role_and_the_node_that_held_it() {
    let s = schedule(
        "[[fault]]\nname = \"at-call\"\nkind = \"crash\"\nrole = \"leader\"\n\
         trigger = { nth = 2, node = \"client\", call = \"sendto\" }\n\
         [[fault]]\nname = \"timed\"\nkind = \"pause\"\nrole = \"leader\"\nduration = \"1s\"\n\
         trigger = { after = \"1s\" }\n\
         [[fault]]\nname = \"plain\"\nkind = \"crash\"\nnode = \"e3\"\n\
         trigger = { after = \"1s\" }\n",
    );
    let mark = |seq: u64, node: &str, fault: &str, what: &str| Event {
        seq,
        ts: seq * 1000,
        node: node.into(),
        call: "fault".into(),
        fault: Some(FaultMark::fired(fault, what)),
        ..Default::default()
    };
    let events = [
        mark(40, "e2", "at-call", "crash e2 (role leader)"),
        mark(90, "e1", "timed", "pause e1 (role leader)"),
    ];
    let fired = |f: usize, seq: u64, node: &str, detail: &str| Applied {
        role: Some("leader".into()),
        node: Some(node.into()),
        detail: Some(detail.into()),
        ..Applied::fired_at(&s.faults[f], Some(seq), seq * 1000)
    };
    assert_eq!(
        faults::applied(&s, &events),
        [
            fired(
                0,
                40,
                "e2",
                "crash e2 (role leader) (after its trigger, once its role was found)"
            ),
            fired(1, 90, "e1", "pause e1 (role leader) (time trigger)"),
            Applied::not_fired(&s.faults[2]),
        ]
    );
}
