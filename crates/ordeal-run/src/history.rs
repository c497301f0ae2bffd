//! `[check] history`: after the run, the recorded history is checked for linearizability
//! (ordeal-history) and the result becomes part of the verdict; `history.html` draws the
//! operations with the run's faults and node starts and ends from trace.jsonl on the same
//! timeline (the workload clients record on the trace's clock, see
//! `ordeal_history::workload::CLOCK_ORIGIN_ENV`). With `from = "traffic"` the history is
//! first built from the call log ([`from_traffic`]): no client needs to record anything.

use std::path::Path;
use std::time::Duration;

use ordeal_calls::{Call, CallStatus, KvOp, KvResult};
use ordeal_events::Event;
use ordeal_experiment::HistoryCheck;
use ordeal_history::html::Mark;
use ordeal_history::{Budget, Entry, Format, Kind, Model, Value, F};
use std::collections::{BTreeMap, BTreeSet};

/// The whole check is bounded: a history the search cannot decide in this time is `unknown`.
const TIME_LIMIT: Duration = Duration::from_secs(60);

/// What the check found, for the verdict and the terminal.
pub(crate) struct Outcome {
    /// A failure reason, when the history is not linearizable or cannot be read or decided.
    pub reason: Option<String>,
    /// One line for the progress output.
    pub line: String,
    /// The verdict's cause when the check failed: the violating operation, or why the
    /// history could not be checked.
    pub cause: Option<ordeal_hb::Cause>,
}

/// Checks `RUN_DIR/<file>` against the model; writes `history-check.txt` and `history.html`.
/// `faulted`: a fault of the run's schedule fired.
pub(crate) fn check(run_dir: &Path, hc: &HistoryCheck, events: &[Event], faulted: bool) -> Outcome {
    let path = run_dir.join(&hc.file);
    let Some(model) = Model::parse(&hc.model) else {
        return failed(format!("history check: unknown model `{}`", hc.model));
    };
    if !path.exists() {
        return failed(format!(
            "history check: {} was not written (a workload must record it, e.g. \
             `ordeal workload kv --out {{run_dir}}/{}`)",
            path.display(),
            hc.file
        ));
    }
    let budget = Budget {
        time: Some(TIME_LIMIT),
        ..Budget::default()
    };
    let report = match ordeal_history::check_file(&path, Format::Jsonl, model, &budget) {
        Ok(r) => r,
        Err(e) => return failed(format!("history check: {e}")),
    };
    if report.operations.is_empty() && !hc.allow_empty && faulted {
        // A fault can stop the clients before their first operation (a client that gives up
        // when its first request fails): the system did nothing wrong, so no finding. Without
        // a fault an empty history is the harness's fault, and fails below.
        let line = format!(
            "history: {} has no operations: nothing was checked (a fault fired: it may have \
             stopped the clients before their first operation)",
            hc.file
        );
        let _ = std::fs::write(run_dir.join("history-check.txt"), format!("{line}\n"));
        return Outcome {
            reason: None,
            line,
            cause: None,
        };
    }
    if report.operations.is_empty() && !hc.allow_empty {
        return failed(format!(
            "history check: {} has no operations: nothing was checked (a client that recorded \
             nothing, or traffic that decoded to no request); `allow_empty = true` in [check] \
             history lets an empty history pass",
            hc.file
        ));
    }
    let text = ordeal_history::text_report(&report);
    let _ = std::fs::write(run_dir.join("history-check.txt"), &text);
    let html = ordeal_history::html::render_with_marks(&report, &hc.file, &marks(events));
    let _ = std::fs::write(run_dir.join("history.html"), html);
    let ops = report.operations.len();
    match &report.verdict {
        ordeal_history::Verdict::Linearizable => Outcome {
            reason: None,
            line: format!("history: {ops} operations, linearizable ({})", hc.model),
            cause: None,
        },
        ordeal_history::Verdict::NotLinearizable => {
            // The first violating key and the operation that cannot be placed there.
            let lines: Vec<&str> = text.lines().map(str::trim).collect();
            let key = lines.iter().find(|l| l.starts_with("key ")).copied();
            let op = lines
                .iter()
                .skip_while(|l| !l.starts_with("operations that cannot be placed next"))
                .nth(1)
                .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "));
            let bad = report
                .keys
                .iter()
                .filter(|k| k.verdict == ordeal_history::Verdict::NotLinearizable)
                .count();
            let mut detail = key.unwrap_or("").to_string();
            if let Some(op) = op {
                detail.push_str(&format!("; {op}"));
            }
            Outcome {
                reason: Some(format!(
                    "history not linearizable ({}): {detail}; {bad} key(s) in all (history.html)",
                    hc.model,
                )),
                line: format!("history: {ops} operations, NOT linearizable: see history.html"),
                cause: violation(&report, run_dir),
            }
        }
        ordeal_history::Verdict::Unknown(why) => Outcome {
            reason: Some(format!("history check unknown ({}): {why}", hc.model)),
            line: format!("history: {ops} operations, unknown: {why}"),
            cause: Some(ordeal_hb::Cause::HistoryCheck {
                message: format!("history check unknown ({}): {why}", hc.model),
            }),
        },
    }
}

/// What [`from_traffic`] made of the call log.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct FromTraffic {
    /// Operations in the history.
    pub operations: usize,
    /// Of which without a response (indeterminate: `info`).
    pub indeterminate: usize,
    /// Keys left out because some value on them was longer than the capture, with how many
    /// operations each had: checking what was not seen whole would be a false alarm.
    pub left_out: BTreeMap<String, usize>,
}

impl FromTraffic {
    /// One line for the progress output.
    pub fn line(&self, file: &str) -> String {
        let mut line = format!(
            "history from traffic: {} operations ({} without a response) → {file}",
            self.operations, self.indeterminate
        );
        if !self.left_out.is_empty() {
            let keys: Vec<&str> = self.left_out.keys().map(String::as_str).take(5).collect();
            line.push_str(&format!(
                "; {} key(s) not checked, values longer than the capture (--payload): {}{}",
                self.left_out.len(),
                keys.join(", "),
                if self.left_out.len() > 5 { ", ..." } else { "" }
            ));
        }
        line
    }
}

/// Builds the history of the key-value requests that `clients` sent (from `calls`, the
/// run's call log) into `out`: each is invoked at its first byte written and completes when
/// its response is read (`ok`, or `fail` when the response says it certainly did not
/// happen); without a response it is indeterminate (`info`). Logical processes are numbered
/// so that none has two operations at once; one left indeterminate keeps its process busy
/// for good, as Jepsen's clients do. `keyed`: the model has keys (`kv`).
pub(crate) fn from_traffic(
    calls: &[Call],
    clients: &[String],
    keyed: bool,
    out: &Path,
) -> std::io::Result<FromTraffic> {
    let mut made = FromTraffic::default();
    let mut ops: Vec<(&Call, &KvOp, u64)> = Vec::new();
    let mut cut = BTreeSet::new();
    for c in calls {
        let (Some(kv), Some(at)) = (&c.kv, c.request_ts) else {
            continue;
        };
        if !clients.contains(&c.caller) || c.status == CallStatus::OneWay {
            continue;
        }
        if c.truncated {
            cut.insert(kv.key().to_string());
        }
        ops.push((c, kv, at));
    }
    ops.retain(|(_, kv, _)| {
        let keep = !cut.contains(kv.key());
        if !keep {
            *made.left_out.entry(kv.key().to_string()).or_default() += 1;
        }
        keep
    });
    ops.sort_by_key(|(c, _, at)| (*at, c.conn));
    let end = ops
        .iter()
        .map(|(c, _, at)| c.response_ts.unwrap_or(*at))
        .max()
        .unwrap_or(0)
        + 1;
    // (time, invoke first) → entry.
    let mut entries: Vec<(u64, u8, Entry)> = Vec::new();
    // Processes busy until a time (None: for good).
    let mut busy: Vec<Option<u64>> = Vec::new();
    for (c, kv, at) in ops {
        let process = match busy.iter().position(|b| b.is_some_and(|until| until < at)) {
            Some(p) => p,
            None => {
                busy.push(None);
                busy.len() - 1
            }
        };
        // Busy from now on; until its completion, if it has one.
        busy[process] = None;
        let (f, arg) = match kv {
            KvOp::Read { .. } => (F::Read, Value::Nil),
            KvOp::Write { value, .. } => (F::Write, Value::Str(value.clone())),
            KvOp::Cas { old, new, .. } => (
                F::Cas,
                Value::List(vec![Value::Str(old.clone()), Value::Str(new.clone())]),
            ),
        };
        let key = keyed.then(|| Value::Str(kv.key().to_string()));
        let entry = |kind, value, time| Entry {
            kind,
            process: process as u64,
            f,
            key: key.clone(),
            value,
            time,
            error: None,
            extra: Vec::new(),
        };
        // The node the request went to, shown on hover in history.html.
        let mut invoke = entry(Kind::Invoke, arg.clone(), at);
        invoke.extra = vec![("node".into(), serde_json::Value::from(c.callee.as_str()))];
        entries.push((at, 0, invoke));
        made.operations += 1;
        let done = match (c.status, c.response_ts, &c.kv_result, kv) {
            (
                CallStatus::Answered,
                Some(t),
                Some(KvResult::Ok),
                KvOp::Write { .. } | KvOp::Cas { .. },
            ) => Some((Kind::Ok, arg, t)),
            (CallStatus::Answered, Some(t), Some(KvResult::Read(v)), KvOp::Read { .. }) => {
                Some((Kind::Ok, v.clone().map_or(Value::Nil, Value::Str), t))
            }
            (CallStatus::Answered, Some(t), Some(KvResult::Fail), _) => Some((Kind::Fail, arg, t)),
            _ => None,
        };
        match done {
            Some((kind, value, t)) => {
                busy[process] = Some(t);
                entries.push((t, 1, entry(kind, value, t)));
            }
            None => {
                made.indeterminate += 1;
                let mut e = entry(Kind::Info, Value::Nil, end);
                e.error = Some(match &c.result {
                    Some(r) if c.status == CallStatus::Answered => format!("response {r}"),
                    _ => format!("no response ({})", c.status.name()),
                });
                entries.push((end, 1, e));
            }
        }
    }
    entries.sort_by_key(|(t, order, _)| (*t, *order));
    let entries: Vec<Entry> = entries.into_iter().map(|(_, _, e)| e).collect();
    let file = std::fs::File::create(out)?;
    ordeal_history::jsonl::write(std::io::BufWriter::new(file), &entries)?;
    Ok(made)
}

fn failed(reason: String) -> Outcome {
    Outcome {
        line: reason.clone(),
        cause: Some(ordeal_hb::Cause::HistoryCheck {
            message: reason.clone(),
        }),
        reason: Some(reason),
    }
}

/// The first operation that cannot be placed, of the first key that is not linearizable.
fn violation(report: &ordeal_history::Report, run_dir: &Path) -> Option<ordeal_hb::Cause> {
    let k = report
        .keys
        .iter()
        .find(|k| k.verdict == ordeal_history::Verdict::NotLinearizable)?;
    let explanation = k.explanation.as_ref()?;
    let u = explanation.unplaceable.first()?;
    let op = |id: usize| report.operations.iter().find(|o| o.id == id);
    let o = op(u.op)?;
    // Relative to the run directory, like every file a cause names.
    let place = |o: &ordeal_history::Operation| {
        (!o.origin.is_empty()).then(|| {
            let dir = format!("{}/", run_dir.display());
            o.origin.strip_prefix(&dir).unwrap_or(&o.origin).to_string()
        })
    };
    // The state the anomaly names was left by the prefix's last write (or cas).
    let contradicts = explanation
        .prefix
        .iter()
        .rev()
        .filter_map(|p| op(p.op))
        .find(|w| w.f != ordeal_history::F::Read)
        .and_then(place);
    Some(ordeal_hb::Cause::History {
        model: report.model.to_string(),
        key: k.key.as_ref().map(|v| match v {
            Value::Str(s) => s.clone(),
            v => v.to_string(),
        }),
        op: format!("process {} {}", o.process, o.describe()),
        anomaly: u.reason.clone(),
        at: place(o),
        contradicts,
    })
}

/// Faults and node starts and ends from the trace, on its clock. A fault that lasts is one
/// mark from its firing to its end: a partition or a pause until the effect of the same fault
/// that ends it (heal, resume), a crash until its node starts again; one still in effect when
/// the trace ends lasts to its end.
pub(crate) fn marks(events: &[Event]) -> Vec<Mark> {
    let mut spawned = std::collections::HashSet::new();
    let mut out: Vec<Mark> = Vec::new();
    // Faults in effect: their mark's index, the fault's name, the node a crash took down.
    let mut lasting: Vec<(usize, String, Option<String>)> = Vec::new();
    let last = events.iter().map(|e| e.ts + e.dur).max().unwrap_or(0);
    for e in events {
        if e.call == "spawn" {
            spawned.insert(e.pid);
            lasting.retain(|(i, name, crashed)| {
                let ends = crashed.as_deref() == Some(e.node.as_str())
                    || e.fault
                        .as_ref()
                        .is_some_and(|f| f.effect && f.name == *name);
                if ends {
                    out[*i].end = Some(e.ts);
                }
                !ends
            });
            out.push(Mark {
                time: e.ts,
                end: None,
                label: match &e.fault {
                    Some(f) => format!("{} started ({f})", e.node),
                    None => format!("{} started", e.node),
                },
            });
        } else if let Some(f) = &e.fault {
            let at = e.ts + e.dur;
            if f.effect && e.call == "fault" {
                if let Some(k) = lasting.iter().position(|(_, name, _)| *name == f.name) {
                    // The end of a band: drawn as its edge, not as an event of its own.
                    let (i, ..) = lasting.remove(k);
                    out[i].end = Some(at);
                    continue;
                }
            }
            // Effects of a partition on single calls would crowd the picture: only firings
            // and the fault events of their ends (heal, resume) are drawn.
            if !f.effect || e.call == "fault" {
                let mut words = f.action.split_whitespace();
                let kind = words.next().unwrap_or("");
                if !f.effect
                    && matches!(kind, "partition" | "pause" | "crash")
                    && !f.action.contains("(not applied)")
                {
                    let crashed = (kind == "crash").then(|| words.next().unwrap_or("").to_string());
                    lasting.push((out.len(), f.name.clone(), crashed));
                }
                out.push(Mark {
                    time: at,
                    end: None,
                    label: format!("{}: {f}", e.node),
                });
            }
        } else if e.call == "exit" && e.pid == e.tid && spawned.contains(&e.pid) {
            let how = match (&e.signal, e.code) {
                (Some(s), _) => s.clone(),
                (None, Some(c)) => format!("exit {c}"),
                _ => "ended".into(),
            };
            out.push(Mark {
                time: e.ts,
                end: None,
                label: format!("{} ended ({how})", e.node),
            });
        }
    }
    for (i, ..) in lasting {
        out[i].end = Some(last.max(out[i].time));
    }
    out.sort_by_key(|m| m.time);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use ordeal_events::FaultMark;

    #[test]
    fn lasting_faults_are_marks_from_their_firing_to_their_end() {
        let ev = |ts: u64, pid: i32, node: &str, call: &str, fault: Option<FaultMark>| Event {
            ts,
            pid,
            tid: pid,
            node: node.into(),
            call: call.into(),
            fault,
            ..Default::default()
        };
        let mut killed = ev(40, 1, "n0", "exit", None);
        killed.signal = Some("SIGKILL".into());
        let events = vec![
            ev(1, 1, "n0", "spawn", None),
            ev(2, 2, "n1", "spawn", None),
            ev(
                10,
                2,
                "n1",
                "fault",
                Some(FaultMark::fired("iso", "partition n1 | n0")),
            ),
            // A call held by the partition: not drawn.
            ev(
                12,
                2,
                "n1",
                "sendto",
                Some(FaultMark::effect("iso", "held")),
            ),
            ev(20, 2, "n1", "fault", Some(FaultMark::effect("iso", "heal"))),
            ev(
                30,
                1,
                "n0",
                "write",
                Some(FaultMark::fired("boom", "crash n0 before")),
            ),
            killed,
            ev(
                50,
                3,
                "n0",
                "spawn",
                Some(FaultMark::effect("boom", "restart n0")),
            ),
            ev(
                60,
                2,
                "n1",
                "fault",
                Some(FaultMark::fired("stop", "pause n1")),
            ),
            ev(70, 2, "n1", "read", Some(FaultMark::fired("f", "fail EIO"))),
            ev(90, 2, "n1", "read", None),
        ];
        let got: Vec<(u64, Option<u64>, String)> = marks(&events)
            .into_iter()
            .map(|m| (m.time, m.end, m.label))
            .collect();
        let m = |t, end, label: &str| (t, end, label.to_string());
        assert_eq!(
            got,
            [
                m(1, None, "n0 started"),
                m(2, None, "n1 started"),
                m(10, Some(20), "n1: iso: partition n1 | n0"),
                m(30, Some(50), "n0: boom: crash n0 before"),
                m(40, None, "n0 ended (SIGKILL)"),
                m(50, None, "n0 started (by boom: restart n0)"),
                // Never resumed: in effect to the end of the trace.
                m(60, Some(90), "n1: stop: pause n1"),
                m(70, None, "n1: f: fail EIO"),
            ]
        );
    }

    #[test]
    fn a_violation_is_the_cause_with_its_operation_and_why() {
        let d = tempfile::tempdir().unwrap();
        // A read of nil after the write of 3 completed.
        std::fs::write(
            d.path().join("history.jsonl"),
            r#"{"type":"invoke","process":0,"f":"write","key":"k1","value":3,"time":100}
{"type":"ok","process":0,"f":"write","key":"k1","value":3,"time":200}
{"type":"invoke","process":1,"f":"read","key":"k1","value":null,"time":300}
{"type":"ok","process":1,"f":"read","key":"k1","value":null,"time":400}
"#,
        )
        .unwrap();
        let hc = HistoryCheck {
            model: "kv".into(),
            file: "history.jsonl".into(),
            from: ordeal_experiment::HistorySource::File,
            allow_empty: false,
        };
        let o = check(d.path(), &hc, &[], false);
        let Some(ordeal_hb::Cause::History {
            model,
            key,
            op,
            anomaly,
            at,
            contradicts,
        }) = o.cause
        else {
            panic!("{:?}", o.cause)
        };
        assert_eq!((model.as_str(), key.as_deref()), ("kv", Some("k1")));
        assert_eq!(op, "process 1 read \"k1\" → nil");
        assert_eq!(anomaly, "reads nil, but the value is 3");
        assert_eq!(at.as_deref(), Some("history.jsonl:3"));
        // The write of 3, the value the read should have seen.
        assert_eq!(contradicts.as_deref(), Some("history.jsonl:1"));
        // Empty: an error unless allowed.
        std::fs::write(d.path().join("history.jsonl"), "").unwrap();
        let o = check(d.path(), &hc, &[], false);
        assert!(matches!(
            o.cause,
            Some(ordeal_hb::Cause::HistoryCheck { .. })
        ));
        assert!(o.reason.unwrap().contains("has no operations"));
        let allowed = HistoryCheck {
            allow_empty: true,
            ..hc.clone()
        };
        let o = check(d.path(), &allowed, &[], false);
        assert_eq!((o.reason, o.cause), (None, None));
        // After a fault fired: no operation is no finding (the fault may have stopped the
        // clients), and the run says nothing was checked.
        let o = check(d.path(), &hc, &[], true);
        assert_eq!((o.reason, o.cause), (None, None));
        assert!(
            o.line.contains("nothing was checked (a fault fired"),
            "{}",
            o.line
        );
        let text = std::fs::read_to_string(d.path().join("history-check.txt")).unwrap();
        assert!(text.contains("has no operations"), "{text}");
    }

    fn call(caller: &str, kv: KvOp, at: u64, done: Option<(u64, KvResult)>) -> Call {
        Call {
            conn: 0,
            protocol: "demo-kv".into(),
            caller: caller.into(),
            callee: "n0".into(),
            caller_pid: Some(1),
            op: "X".into(),
            request: "X".into(),
            result: done.as_ref().map(|_| "R".into()),
            status: if done.is_some() {
                CallStatus::Answered
            } else {
                CallStatus::Unanswered
            },
            request_seq: Some(at),
            request_ts: Some(at),
            response_seq: done.as_ref().map(|d| d.0),
            response_ts: done.as_ref().map(|d| d.0),
            kv: Some(kv),
            kv_result: done.map(|d| d.1),
            truncated: false,
        }
    }

    fn write(key: &str, value: &str) -> KvOp {
        KvOp::Write {
            key: key.into(),
            value: value.into(),
        }
    }

    fn read(key: &str) -> KvOp {
        KvOp::Read { key: key.into() }
    }

    #[test]
    fn requests_become_operations_on_free_processes() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("h.jsonl");
        let mut cut = call("app", write("k2", "v"), 5, Some((6, KvResult::Ok)));
        cut.truncated = true;
        let calls = vec![
            call("app", write("k1", "a"), 10, Some((20, KvResult::Ok))),
            // Overlaps the first: another process.
            call(
                "app",
                read("k1"),
                15,
                Some((25, KvResult::Read(Some("a".into())))),
            ),
            // Starts after the first ended: its process again.
            call("app", read("k1"), 21, Some((30, KvResult::Read(None)))),
            // No response: indeterminate, its process (reused) never reused again.
            call("app", write("k1", "b"), 26, None),
            call("app", read("k1"), 27, Some((28, KvResult::Read(None)))),
            call("app", write("k1", "c"), 40, Some((41, KvResult::Fail))),
            // Not a client.
            call("n1", write("k1", "z"), 11, Some((12, KvResult::Ok))),
            cut,
            call(
                "app",
                read("k2"),
                50,
                Some((51, KvResult::Read(Some("v".into())))),
            ),
        ];
        let made = from_traffic(&calls, &["app".to_string()], true, &out).unwrap();
        assert_eq!(made.operations, 6);
        assert_eq!(made.indeterminate, 1);
        assert_eq!(made.left_out, BTreeMap::from([("k2".to_string(), 2)]));
        let text = std::fs::read_to_string(&out).unwrap();
        let lines: Vec<String> = text
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                format!(
                    "{} p{} {} {} @{}{}",
                    v["type"].as_str().unwrap(),
                    v["process"],
                    v["f"].as_str().unwrap(),
                    v["value"],
                    v["time"],
                    v.get("node").map_or(String::new(), |n| format!(" {n}"))
                )
            })
            .collect();
        assert_eq!(
            lines,
            [
                "invoke p0 write \"a\" @10 \"n0\"",
                "invoke p1 read null @15 \"n0\"",
                "ok p0 write \"a\" @20",
                "invoke p0 read null @21 \"n0\"",
                "ok p1 read \"a\" @25",
                "invoke p1 write \"b\" @26 \"n0\"",
                "invoke p2 read null @27 \"n0\"",
                "ok p2 read null @28",
                "ok p0 read null @30",
                "invoke p0 write \"c\" @40 \"n0\"",
                "fail p0 write \"c\" @41",
                "info p1 write null @42",
            ]
        );
        assert_eq!(
            made.line("history.jsonl"),
            "history from traffic: 6 operations (1 without a response) → history.jsonl; 1 \
             key(s) not checked, values longer than the capture (--payload): k2"
        );
    }
}
