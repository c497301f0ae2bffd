use super::*;

fn schedule(text: &str) -> Schedule {
    let names = ordeal_faults::Participants::new(["n0", "n1", "n2"], ["client"]);
    Schedule::parse_for(text, "s.toml", &names).unwrap()
}

fn seen(seq: u64, ms: u64, node: &str, call: &str, mark: FaultMark) -> Seen {
    Seen {
        mark,
        node: node.into(),
        call: call.into(),
        seq,
        ts: ms * 1_000_000,
    }
}

fn event(seq: u64, node: &str, call: &str, fault: Option<FaultMark>) -> Event {
    let mut e: Event = serde_json::from_value(serde_json::json!({
        "seq": seq, "ts": seq * 1_000_000, "dur": 0, "node": node, "pid": 1, "tid": 1,
        "call": call
    }))
    .unwrap();
    e.fault = fault;
    e
}

const SCHEDULE: &str = r#"
[[fault]]
name = "crash"
kind = "crash"
node = "n0"
restart_after = "500ms"
trigger = { nth = 1, node = "n0", call = "write" }
[[fault]]
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
name = "eio"
kind = "fail"
errno = "EIO"
trigger = { nth = 1, times = 2, node = "n1", call = "fsync" }
[[fault]]
name = "stop"
kind = "pause"
node = "n2"
duration = "1s"
trigger = { after = "1s" }
"#;

#[test]
fn each_firing_is_a_record_with_the_end_of_its_effect() {
    let s = schedule(SCHEDULE);
    let log = vec![
        seen(
            10,
            100,
            "n0",
            "write",
            FaultMark::fired("crash", "crash n0 before"),
        ),
        seen(12, 120, "n1", "fsync", FaultMark::fired("eio", "fail EIO")),
        seen(13, 130, "n1", "fsync", FaultMark::fired("eio", "fail EIO")),
        seen(
            20,
            600,
            "n0",
            "spawn",
            FaultMark::effect("crash", "restart n0 (restart_after)"),
        ),
        seen(
            30,
            1000,
            "n0",
            "fault",
            FaultMark::fired("cut", "partition n0 | n1"),
        ),
        seen(
            31,
            1001,
            "n2",
            "fault",
            FaultMark::fired("stop", "pause n2 for 1s"),
        ),
        seen(40, 2000, "n0", "fault", FaultMark::fired("mend", "heal")),
        seen(
            41,
            2001,
            "n2",
            "fault",
            FaultMark::effect("stop", "resume n2"),
        ),
    ];
    let r = records(&log, &s);
    type Brief<'a> = (&'a str, &'a str, &'a str, &'a str, u64, f64, Option<f64>);
    let brief: Vec<Brief> = r
        .iter()
        .map(|f| {
            (
                f.name.as_str(),
                f.kind.as_str(),
                f.node.as_str(),
                f.call.as_str(),
                f.seq,
                f.fired_at,
                f.healed_at,
            )
        })
        .collect();
    assert_eq!(
        brief,
        vec![
            ("crash", "crash", "n0", "write", 10, 0.1, Some(0.6)),
            ("eio", "fail", "n1", "fsync", 12, 0.12, None),
            ("eio", "fail", "n1", "fsync", 13, 0.13, None),
            ("cut", "partition", "n0", "fault", 30, 1.0, Some(2.0)),
            ("stop", "pause", "n2", "fault", 31, 1.001, Some(2.001)),
            ("mend", "heal", "n0", "fault", 40, 2.0, None),
        ]
    );
    assert_eq!(r[0].action, "crash n0 before");
}

#[test]
fn a_crash_ends_with_the_restart_fault_of_its_node_and_a_partition_with_its_own_heal() {
    let s = schedule(
        r#"
[[fault]]
name = "down"
kind = "crash"
node = "n1"
trigger = { after = "1s" }
[[fault]]
name = "up"
kind = "restart"
node = "n1"
trigger = { after = "2s" }
[[fault]]
name = "cut"
kind = "partition"
from = ["n0"]
to = ["n1"]
duration = "1s"
trigger = { after = "1s" }
"#,
    );
    let log = vec![
        seen(1, 1000, "n1", "fault", FaultMark::fired("down", "crash n1")),
        seen(
            2,
            1000,
            "n0",
            "fault",
            FaultMark::fired("cut", "partition n0 | n1"),
        ),
        seen(3, 2000, "n0", "fault", FaultMark::effect("cut", "heal")),
        seen(4, 2100, "n1", "spawn", FaultMark::fired("up", "restart n1")),
    ];
    let r = records(&log, &s);
    assert_eq!(r.len(), 3);
    assert_eq!((r[0].name.as_str(), r[0].healed_at), ("down", Some(2.1)));
    assert_eq!((r[1].name.as_str(), r[1].healed_at), ("cut", Some(2.0)));
    assert_eq!((r[2].name.as_str(), r[2].healed_at), ("up", None));
}

#[test]
fn the_watch_keeps_firings_and_ends_only_and_passes_every_event_on() {
    let log: SeenLog = Arc::default();
    let mut w = FaultWatch::new(Vec::<Event>::new(), log.clone(), None);
    let events = [
        event(1, "n0", "write", None),
        event(
            2,
            "n0",
            "write",
            Some(FaultMark::fired("cut", "partition n0 | n1")),
        ),
        event(3, "n0", "sendto", Some(FaultMark::effect("cut", "held"))),
        event(
            4,
            "n0",
            "fault",
            Some(FaultMark::effect("cut", "final heal")),
        ),
    ];
    for e in &events {
        w.event(e).unwrap();
    }
    assert_eq!(w.inner, events.to_vec());
    let got: Vec<(u64, String)> = log
        .lock()
        .unwrap()
        .iter()
        .map(|s| (s.seq, live_line(s)))
        .collect();
    assert_eq!(
        got,
        vec![
            (
                2,
                "fault cut fired on n0 at write (seq 2): partition n0 | n1".to_string()
            ),
            (4, "fault cut ended on n0 (seq 4): final heal".to_string()),
        ]
    );
}
