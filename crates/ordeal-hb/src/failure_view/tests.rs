use super::*;
use crate::cause::LogLine;
use ordeal_events::{Class, Proto, Sock};

fn ev(seq: u64, node: &str, call: &str, ts: u64, bytes: i64) -> Event {
    Event {
        seq,
        ts,
        dur: 10,
        node: node.into(),
        pid: 10,
        tid: 10,
        call: call.into(),
        class: Some(Class::Data),
        ret: Some(bytes),
        sock: Some(Sock {
            ino: 5,
            proto: Proto::Tcp,
            local: None,
            remote: None,
            peer_ino: None,
            peer_node: None,
        }),
        ..Default::default()
    }
}

fn hb(seq: u64, vc: &[(&str, u64)], message_from: Option<(u64, u64)>) -> HbLine {
    HbLine {
        seq,
        vc: vc.iter().map(|(t, n)| (t.to_string(), *n)).collect(),
        pred: message_from
            .map(|(seq, bytes)| Pred {
                seq,
                kind: "message".into(),
                bytes,
            })
            .into_iter()
            .collect(),
    }
}

fn fault(kind: &str, node: &str, action: &str, at: f64, healed: Option<f64>) -> FaultRecord {
    FaultRecord {
        name: kind.into(),
        kind: kind.into(),
        node: node.into(),
        call: "fault".into(),
        seq: 0,
        action: action.into(),
        fired_at: at,
        healed_at: healed,
    }
}

/// client → a `GET k3`, a → client `NOTFOUND`, and b talking to nobody meanwhile (not in the
/// causal past of the client's read).
fn get_k3(status: Status, faults: &[FaultRecord]) -> FailureView {
    let anchor_vc = hb(4, &[("client/1", 2), ("a/1", 2)], None).vc;
    let lanes = vec!["a".to_string(), "b".into(), "client".into()];
    let mut s = Selector::new(anchor_vc, lanes);
    let mut reply = ev(3, "a", "sendto", 3_000_000, 9);
    reply.data = Some("NOTFOUND\\n".into());
    let events = [
        (
            ev(0, "client", "sendto", 1_000_000, 7),
            hb(0, &[("client/1", 1)], None),
        ),
        (
            ev(1, "a", "recvfrom", 2_000_000, 7),
            hb(1, &[("client/1", 1), ("a/1", 1)], Some((0, 7))),
        ),
        (
            ev(2, "b", "sendto", 2_500_000, 5),
            hb(2, &[("b/1", 1)], None),
        ),
        (reply, hb(3, &[("client/1", 1), ("a/1", 2)], None)),
        (
            ev(4, "client", "recvfrom", 4_000_000, 9),
            hb(4, &[("client/1", 2), ("a/1", 2)], Some((3, 9))),
        ),
        // After the anchor: not drawn.
        (
            ev(5, "client", "sendto", 5_000_000, 7),
            hb(5, &[("client/1", 3), ("a/1", 2)], None),
        ),
    ];
    for (e, h) in &events {
        s.observe(e, h);
    }
    let anchor = Anchor {
        seq: Some(4),
        violation: vec![0, 4],
        ..Default::default()
    };
    let labels = [(0, "GET k3".to_string())].into_iter().collect();
    let caption = (status != Status::Pass).then(|| "workload client (exit 1)".to_string());
    s.finish(status, caption, &anchor, faults, &labels)
}

#[test]
fn the_causal_past_in_lanes_with_labelled_arrows_and_the_violation_marked() {
    let v = get_k3(Status::Fail, &[]);
    // b did nothing the read depends on: no lane.
    assert_eq!(v.lanes, ["a", "client"]);
    let drawn: Vec<(u64, usize, &str)> = v
        .events
        .iter()
        .map(|e| (e.seq, e.lane, e.label.as_str()))
        .collect();
    assert_eq!(
        drawn,
        [
            (0, 1, "sendto 7B"),
            (1, 0, "recvfrom 7B"),
            (3, 0, "sendto 9B"),
            (4, 1, "recvfrom 9B")
        ]
    );
    assert_eq!(
        v.arrows,
        [
            Arrow {
                from: 0,
                to: 1,
                label: "GET k3".into()
            },
            Arrow {
                from: 3,
                to: 4,
                label: "NOTFOUND (9 B)".into()
            }
        ]
    );
    // Both ends of the request and of the response.
    assert_eq!(v.violation, [0, 1, 3, 4]);
    assert_eq!(v.left_out, 0);

    let l = Layout::of(&v);
    assert_eq!(l.lane_x, [180.0, 380.0]);
    // A row per event in time order; arrows from the sender's point to the receiver's.
    assert_eq!(l.points[&0], (380.0, 109.0));
    assert_eq!(l.points[&1], (180.0, 127.0));
    assert_eq!(
        l.arrows,
        [
            ((380.0, 109.0), (180.0, 127.0)),
            ((180.0, 145.0), (380.0, 163.0))
        ]
    );
    assert_eq!(l.height, 100.0 + 4.0 * 18.0 + 40.0);

    let svg = render_failure_svg(&v);
    assert!(svg.contains(">FAIL</text>"), "{svg}");
    assert!(svg.contains("workload client (exit 1)</text>"), "{svg}");
    assert_eq!(svg.matches(r#"<g class="event violation">"#).count(), 4);
    assert_eq!(svg.matches(r#"<g class="msg violation">"#).count(), 2);
    assert!(svg.contains(">#4 recvfrom 9B</text>"), "{svg}");
    assert!(svg.contains(">NOTFOUND (9 B)</text>"), "{svg}");
}

#[test]
fn a_passing_run_says_pass_and_marks_nothing() {
    let mut v = get_k3(Status::Pass, &[]);
    v.violation.clear();
    let svg = render_failure_svg(&v);
    assert!(svg.contains(">PASS</text>"), "{svg}");
    assert!(svg.contains("no violation"), "{svg}");
    assert!(!svg.contains("violation\""), "{svg}");
    assert!(!svg.contains("FAIL"), "{svg}");
    let html = render_failure_html(&v, &svg);
    assert!(html.contains(r#"<h1 id="verdict">PASS</h1>"#), "{html}");
}

#[test]
fn faults_are_drawn_by_kind_and_only_within_the_picture() {
    let faults = [
        fault("crash", "a", "crash a after", 0.0025, None),
        fault(
            "partition",
            "a",
            "partition a | client",
            0.0015,
            Some(0.0035),
        ),
        fault("pause", "client", "pause client", 0.001, Some(0.002)),
        // After the failure: not drawn.
        fault("crash", "client", "crash client", 0.009, None),
        // Healed before the picture's first event: not drawn.
        fault("partition", "b", "partition b | a", 0.0001, Some(0.0002)),
    ];
    let v = get_k3(Status::Fail, &faults);
    let shapes: Vec<(FaultShape, Option<usize>, u64, Option<u64>)> = v
        .faults
        .iter()
        .map(|f| (f.shape, f.lane, f.from_ts, f.to_ts))
        .collect();
    assert_eq!(
        shapes,
        [
            (FaultShape::Crash, Some(0), 2_500_000, None),
            (FaultShape::Partition, None, 1_500_000, Some(3_500_000)),
            (FaultShape::Pause, Some(1), 1_000_000, Some(2_000_000)),
        ]
    );
    let l = Layout::of(&v);
    // Just above the first event at or after the time.
    assert_eq!(l.y_at(2_500_000), 100.0 + 2.0 * 18.0);
    let svg = render_failure_svg(&v);
    assert!(svg.contains(r#"<g class="fault crash">"#), "{svg}");
    assert!(svg.contains(">crash a after</text>"), "{svg}");
    // a's lane ends at its crash, dashed after it.
    assert!(
        svg.contains(r##"<line x1="180" y1="100" x2="180" y2="136" stroke="#8c959f""##),
        "{svg}"
    );
    assert!(svg.contains(r#"stroke-dasharray="4 4""#), "{svg}");
    assert!(svg.contains(r#"<g class="fault partition">"#), "{svg}");
    assert!(svg.contains(r#"<g class="fault pause">"#), "{svg}");
    assert!(!svg.contains("crash client"), "{svg}");
    let html = render_failure_html(&v, &svg);
    assert!(html.contains("<li>crash a after at 2.5 ms</li>"), "{html}");
}

#[test]
fn a_ten_thousand_event_trace_gives_a_picture_of_bounded_size() {
    // 8 nodes passing a message round: every event is in the causal past of the last.
    let nodes: Vec<String> = (0..8).map(|n| format!("n{n}")).collect();
    let mut vc: BTreeMap<String, u64> = BTreeMap::new();
    let mut events = Vec::new();
    for seq in 0..10_000u64 {
        let node = &nodes[(seq % 8) as usize];
        *vc.entry(format!("{node}/1")).or_default() += 1;
        let call = if seq % 2 == 0 { "sendto" } else { "recvfrom" };
        let from = (seq % 2 == 1).then(|| (seq - 1, 4));
        events.push((
            ev(seq, node, call, seq * 1000, 4),
            HbLine {
                seq,
                vc: vc.clone(),
                pred: from
                    .map(|(s, b)| Pred {
                        seq: s,
                        kind: "message".into(),
                        bytes: b,
                    })
                    .into_iter()
                    .collect(),
            },
        ));
    }
    let mut s = Selector::new(vc.clone(), nodes.clone());
    for (e, h) in &events {
        s.observe(e, h);
    }
    let anchor = Anchor {
        seq: Some(9_999),
        violation: vec![9_999],
        ..Default::default()
    };
    let v = s.finish(Status::Fail, None, &anchor, &[], &HashMap::new());
    assert_eq!(v.events.len(), TOTAL);
    assert_eq!(v.left_out, 10_000 - TOTAL as u64);
    for lane in 0..8 {
        assert_eq!(v.events.iter().filter(|e| e.lane == lane).count(), 50);
    }
    // The latest ones, ending at the failure.
    assert_eq!(v.events.first().map(|e| e.seq), Some(9_600));
    assert_eq!(v.events.last().map(|e| e.seq), Some(9_999));
    assert_eq!(v.arrows.len(), 200);
    // The failing receive and the send it read.
    assert_eq!(v.violation, [9_998, 9_999]);
    let l = Layout::of(&v);
    assert_eq!(l.height, 100.0 + TOTAL as f64 * 18.0 + 40.0);
    assert_eq!(l.width, 80.0 + 8.0 * 200.0 + 20.0);
    let svg = render_failure_svg(&v);
    assert!(svg.len() < 200_000);
    // Every lane named again every 40 rows: at 40, 80, ..., 360.
    assert_eq!(svg.matches(r#"<text class="lane-again""#).count(), 8 * 9);
}

#[test]
fn at_most_per_lane_events_of_one_lane() {
    let mut vc: BTreeMap<String, u64> = BTreeMap::new();
    let mut s = Selector::new(BTreeMap::new(), vec!["a".into()]);
    let mut lines = Vec::new();
    for seq in 0..100u64 {
        *vc.entry("a/1".into()).or_default() += 1;
        lines.push((
            ev(seq, "a", "sendto", seq, 1),
            HbLine {
                seq,
                vc: vc.clone(),
                pred: vec![],
            },
        ));
    }
    s.anchor_vc = vc;
    for (e, h) in &lines {
        s.observe(e, h);
    }
    let v = s.finish(Status::Pass, None, &Anchor::default(), &[], &HashMap::new());
    assert_eq!(v.events.len(), PER_LANE);
    assert_eq!(v.events[0].seq, 100 - PER_LANE as u64);
    assert_eq!(v.left_out, 100 - PER_LANE as u64);
}

fn call(caller: &str, request: &str, result: &str, seqs: (u64, u64), kv: &str) -> CallLine {
    CallLine {
        caller: caller.into(),
        request: request.into(),
        result: Some(result.into()),
        request_seq: Some(seqs.0),
        request_ts: None,
        response_seq: Some(seqs.1),
        kv: serde_json::from_str(kv).ok(),
        kv_result: Some(serde_json::json!("ok")),
    }
}

#[test]
fn the_violating_call_is_the_one_the_cause_names() {
    let calls = [
        call(
            "client",
            "GET k3",
            "VALUE v7",
            (1, 2),
            r#"{"f":"read","key":"k3"}"#,
        ),
        call(
            "client",
            "GET k3",
            "NOTFOUND",
            (5, 7),
            r#"{"f":"read","key":"k3"}"#,
        ),
        call(
            "other",
            "GET k3",
            "NOTFOUND",
            (8, 9),
            r#"{"f":"read","key":"k3"}"#,
        ),
        call(
            "client",
            "GET k4",
            "VALUE v1",
            (10, 11),
            r#"{"f":"read","key":"k4"}"#,
        ),
        call(
            "client",
            "SET k3 v8",
            "OK",
            (12, 13),
            r#"{"f":"write","key":"k3","value":"v8"}"#,
        ),
    ];
    let workload = Cause::Workload {
        name: "client".into(),
        status: "exit 1".into(),
        log: Some(LogLine {
            file: "logs/client.stdout".into(),
            line: 1,
            text: "VIOLATION: op 13: GET k3 from node 1 returned NOTFOUND, but SET k3 v7 was \
                   acknowledged"
                .into(),
        }),
    };
    assert_eq!(violating_call(&workload, &calls), Some(vec![5, 7]));
    let history = Cause::History {
        model: "kv".into(),
        key: Some("k3".into()),
        op: "process 2 read k3 → nil".into(),
        anomaly: "reads nil".into(),
        at: None,
        contradicts: None,
    };
    assert_eq!(violating_call(&history, &calls), Some(vec![8, 9]));
    // A write: the client's, not the replication stream's copy of it (no one answers that).
    let mut calls = calls.to_vec();
    calls.push(CallLine {
        caller: "a".into(),
        request: "SET k3 v8".into(),
        result: None,
        request_seq: Some(14),
        request_ts: None,
        response_seq: None,
        kv: serde_json::from_str(r#"{"f":"write","key":"k3","value":"v8"}"#).ok(),
        kv_result: None,
    });
    let write = Cause::History {
        model: "kv".into(),
        key: Some("k3".into()),
        op: "process 2 write k3 v8".into(),
        anomaly: "...".into(),
        at: None,
        contradicts: None,
    };
    assert_eq!(violating_call(&write, &calls), Some(vec![12, 13]));
    let other = Cause::Other {
        message: "hung".into(),
    };
    assert_eq!(violating_call(&other, &calls), None);
}

fn kv_call(request: &str, seqs: (u64, Option<u64>), ts: u64, kv: &str, ok: bool) -> CallLine {
    CallLine {
        caller: "client".into(),
        request: request.into(),
        result: seqs.1.map(|_| "OK".into()),
        request_seq: Some(seqs.0),
        request_ts: Some(ts),
        response_seq: seqs.1,
        kv: serde_json::from_str(kv).ok(),
        kv_result: ok.then(|| serde_json::json!("ok")),
    }
}

#[test]
fn the_contradicted_call_is_the_write_the_history_line_names() {
    let w1 = r#"{"f":"write","key":"k1","value":"1"}"#;
    let w2 = r#"{"f":"write","key":"k1","value":"2"}"#;
    let calls = [
        kv_call("SET k1 1", (1, Some(2)), 100, w1, true),
        kv_call("SET k1 2", (3, Some(4)), 300, w2, true),
        // The replication stream's copy: no one answers it.
        kv_call("SET k1 2", (5, None), 310, w2, false),
        kv_call("SET k1 2", (6, Some(7)), 500, w2, true),
        kv_call(
            "GET k1",
            (8, Some(9)),
            700,
            r#"{"f":"read","key":"k1"}"#,
            false,
        ),
        // After the read was sent: it cannot be what the read contradicts.
        kv_call("SET k1 2", (10, Some(11)), 900, w2, true),
    ];
    let read = [8, 9];
    let line = |l: &str| serde_json::from_str::<serde_json::Value>(l).unwrap();
    // A history from traffic: the invocation's time is its request's.
    let from_traffic =
        line(r#"{"type":"invoke","process":0,"f":"write","key":"k1","value":"2","time":300}"#);
    assert_eq!(
        contradicted_call(&from_traffic, &calls, &read),
        Some(vec![3, 4])
    );
    // A client's own clock: the last such write answered before the read was sent.
    let own_clock =
        line(r#"{"type":"invoke","process":0,"f":"write","key":"k1","value":2,"time":12345}"#);
    assert_eq!(
        contradicted_call(&own_clock, &calls, &read),
        Some(vec![6, 7])
    );
    let other_value =
        line(r#"{"type":"invoke","process":0,"f":"write","key":"k1","value":"3","time":1}"#);
    assert_eq!(contradicted_call(&other_value, &calls, &read), None);
    let other_key =
        line(r#"{"type":"invoke","process":0,"f":"write","key":"k2","value":"2","time":300}"#);
    assert_eq!(contradicted_call(&other_key, &calls, &read), None);
}

/// A write to one node (w) that the reader never heard from, acknowledged long before the
/// read: outside the read's causal past and older than the window, drawn all the same, with
/// the events between it and the window counted on a row of their own.
#[test]
fn the_write_a_violation_contradicts_is_drawn_however_old() {
    let lanes = vec![
        "w".to_string(),
        "r".into(),
        "a".into(),
        "b".into(),
        "client".into(),
    ];
    let anchor_vc: BTreeMap<String, u64> =
        [("a/1", 100), ("b/1", 100), ("r/1", 2), ("client/2", 2)]
            .into_iter()
            .map(|(t, n)| (t.to_string(), n))
            .collect();
    let mut s = Selector::new(anchor_vc, lanes).pin([0, 1, 2, 3].into_iter().collect());
    let mut events = vec![
        (
            ev(0, "client", "sendto", 0, 8),
            hb(0, &[("client/1", 1)], None),
        ),
        (
            ev(1, "w", "recvfrom", 1_000, 8),
            hb(1, &[("client/1", 1), ("w/1", 1)], Some((0, 8))),
        ),
        (
            ev(2, "w", "sendto", 2_000, 2),
            hb(2, &[("client/1", 1), ("w/1", 2)], None),
        ),
        (
            ev(3, "client", "recvfrom", 3_000, 2),
            hb(3, &[("client/1", 2), ("w/1", 2)], Some((2, 2))),
        ),
    ];
    // a and b talk: 100 events each, all in the read's causal past.
    for seq in 4..204u64 {
        let (node, n) = if seq % 2 == 0 {
            ("a", (seq - 2) / 2)
        } else {
            ("b", (seq - 3) / 2)
        };
        events.push((
            ev(seq, node, "sendto", seq * 1_000, 1),
            hb(seq, &[(&format!("{node}/1"), n)], None),
        ));
    }
    let full = [("a/1", 100), ("b/1", 100)];
    events.extend([
        (
            ev(204, "client", "sendto", 204_000, 6),
            hb(204, &[("client/2", 1)], None),
        ),
        (
            ev(205, "r", "recvfrom", 205_000, 6),
            hb(
                205,
                &[full[0], full[1], ("client/2", 1), ("r/1", 1)],
                Some((204, 6)),
            ),
        ),
        (
            ev(206, "r", "sendto", 206_000, 3),
            hb(206, &[full[0], full[1], ("client/2", 1), ("r/1", 2)], None),
        ),
        (
            ev(207, "client", "recvfrom", 207_000, 3),
            hb(
                207,
                &[full[0], full[1], ("client/2", 2), ("r/1", 2)],
                Some((206, 3)),
            ),
        ),
    ]);
    for (e, h) in &events {
        s.observe(e, h);
    }
    let anchor = Anchor {
        seq: Some(207),
        violation: vec![204, 207],
        contradicted: vec![0, 3],
    };
    let labels = [(0, "SET k1 1".to_string()), (204, "GET k1".to_string())]
        .into_iter()
        .collect();
    let v = s.finish(Status::Fail, None, &anchor, &[], &labels);
    let seqs: Vec<u64> = v.events.iter().map(|e| e.seq).collect();
    // The write, then the last PER_LANE events of a and of b, then the read.
    let expected: Vec<u64> = [0, 1, 2, 3].into_iter().chain(84..208).collect();
    assert_eq!(seqs, expected);
    assert_eq!(v.contradicted, [0, 1, 2, 3]);
    assert_eq!(v.violation, [204, 205, 206, 207]);
    assert_eq!(
        v.gaps,
        [Gap {
            before: 84,
            events: 80
        }]
    );
    assert_eq!(v.left_out, 0);
    assert_eq!(v.lanes, ["w", "r", "a", "b", "client"]);
    assert_eq!(
        v.arrows.first(),
        Some(&Arrow {
            from: 0,
            to: 1,
            label: "SET k1 1".into()
        })
    );

    let l = Layout::of(&v);
    // Four rows of the write, the gap's row, then the window.
    assert_eq!(l.gaps, [(100.0 + 18.0 * 4.5, 80)]);
    assert_eq!(l.points[&84].1, 100.0 + 18.0 * 5.5);
    assert_eq!(l.height, 100.0 + 18.0 * 129.0 + 40.0);
    let svg = render_failure_svg(&v);
    assert_eq!(svg.matches(r#"<g class="event contradicted">"#).count(), 4);
    assert_eq!(svg.matches(r#"<g class="msg contradicted">"#).count(), 2);
    assert_eq!(svg.matches(r#"<g class="gap">"#).count(), 1);
    assert!(svg.contains(">80 events not drawn</text>"), "{svg}");
    assert!(svg.contains("in purple: the write it contradicts"), "{svg}");
    let html = render_failure_html(&v, &svg);
    assert!(html.contains("the write it contradicts (a history violation)"));
}
