//! A leader whose events continue after its recorded exit is still one process.

use ordeal_events::{Class, Event, Header, NodeInfo};
use ordeal_hb::{HbGraph, Summary, Verdict};

fn ev(seq: u64, tid: i32, call: &str) -> Event {
    Event {
        seq,
        ts: seq * 10,
        node: "a".into(),
        pid: 10,
        tid,
        call: call.into(),
        class: Some(if call == "read" {
            Class::Data
        } else {
            Class::Proc
        }),
        ..Default::default()
    }
}

#[test]
fn events_after_an_exit_do_not_make_a_second_process() {
    let header = Header {
        schema: "ordeal-trace".into(),
        version: ordeal_events::SCHEMA_VERSION,
        experiment: "t".into(),
        started_at: String::new(),
        nodes: vec![NodeInfo {
            name: "a".into(),
            role: "node".into(),
            ports: vec![],
            protocol: None,
        }],
    };
    let mut spawn = ev(0, 10, "spawn");
    spawn.child = Some(10);
    spawn.argv = Some(vec!["server".into()]);
    let mut exit = ev(2, 10, "exit");
    exit.signal = Some("SIGKILL".into());
    let mut late_exit = ev(4, 10, "exit");
    late_exit.signal = Some("SIGKILL".into());
    let events = vec![spawn, ev(1, 10, "read"), exit, ev(3, 10, "read"), late_exit];
    let g = HbGraph::build(&header, &events);
    let s = Summary::build(&g, Verdict::pass());
    let a = s.node("a").unwrap();
    assert_eq!(a.process_count, 1);
    assert_eq!(a.processes[0].pid, 10);
    assert_eq!(a.processes[0].command.as_deref(), Some("server"));
    assert_eq!(a.processes[0].signal.as_deref(), Some("SIGKILL"));
}
