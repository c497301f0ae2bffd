//! A self-contained HTML report of a check (inline CSS, SVG and script; nothing fetched):
//! the verdict, then for each non-linearizable key a timeline around the violation (the
//! operations of the longest linearizable prefix numbered in linearization order, the operation
//! that could not be linearized before it completed — marked and scrolled into view on load —,
//! the operations that cannot be placed next), then the whole history's timeline, for passing
//! histories too: one lane per process, the system's events (faults as shaded bands) in rows
//! of their own, and above them the operations invoked per time window by outcome, so lost
//! availability shows. Timelines zoom and pan; labels never overlap ([`timeline`] places
//! them). The page records in its `<body>` that its script ran (`data-js="ok"`), any script
//! error (`data-js-errors`), how many text boxes overlap (`data-label-overlaps`) and whether
//! the violation is on the first screen (`data-violation`): the browser tests read them.

mod timeline;

use crate::checker::{human_bytes, Explanation, KeyResult, Report, Verdict};
use crate::history::{Operation, Outcome};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write;
use timeline::{Band, Bar, Timeline};

/// Most operations drawn around a violation.
const MAX_DRAWN: usize = 400;
/// Most operations drawn on the whole history's timeline.
const MAX_HISTORY: usize = 2000;
/// Prefix operations shown before the violation.
const CONTEXT: usize = 25;
/// Most keys drawn.
const MAX_KEYS: usize = 20;

pub(crate) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = include_str!("html/style.css");
/// The page's script: zoom and pan, label placement again for the view, the self-checks.
pub(crate) const SCRIPT: &str = include_str!("html/script.js");
/// Installed first, so that an error anywhere in [`SCRIPT`] (even a syntax error) is recorded.
const ON_ERROR: &str = "window.onerror=function(m,src,line){var b=document.body;\
if(!b)return;b.setAttribute('data-js-errors',(+(b.getAttribute('data-js-errors')||0))+1);\
var p=document.getElementById('js-errors');if(p){p.hidden=false;\
p.textContent+=m+' (line '+line+')\\n';}};";

/// Something that happened to the system under test on the history's clock (a fault, a node
/// started or ended), drawn across the timelines so a reader sees what preceded an anomaly: a
/// shaded band while a fault lasts, a line for an instant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mark {
    /// Nanoseconds, on the clock of the history's `time` field.
    pub time: u64,
    /// When a fault that lasts (a partition, a crashed node, a pause) ended; `None` for an
    /// instant.
    pub end: Option<u64>,
    /// What happened (`n0: crash-primary: crash n0 after`).
    pub label: String,
}

/// The report as a complete HTML page; `title` names the history (e.g. its file).
pub fn render(r: &Report, title: &str) -> String {
    render_with_marks(r, title, &[])
}

/// [`render`], with system events drawn on the timelines and listed.
pub fn render_with_marks(r: &Report, title: &str, marks: &[Mark]) -> String {
    let mut s = String::new();
    let (class, word) = match &r.verdict {
        Verdict::Linearizable => ("lin", "linearizable".to_string()),
        Verdict::NotLinearizable => ("not", "not linearizable".to_string()),
        Verdict::Unknown(why) => ("unknown", format!("unknown: {why}")),
    };
    let _ = write!(
        s,
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>{t} — {w}</title>\
         <style>{STYLE}</style><script>{ON_ERROR}</script></head><body>\
         <pre id=\"js-errors\" hidden></pre><h1>Linearizability of <code>{t}</code></h1>\
         <p><span class=\"verdict {class}\">{w}</span> model <b>{m}</b>, {ops} operations, \
         {keys} key(s), checked in {ms} ms, {conf} configurations memoized (peak {mem}).</p>",
        t = esc(title),
        w = esc(&word),
        m = r.model,
        ops = r.operations.len(),
        keys = r.keys.len(),
        ms = r.elapsed.as_millis(),
        conf = r.keys.iter().map(|k| k.configurations).sum::<usize>(),
        mem = human_bytes(r.peak_memory),
    );
    let bad: Vec<&KeyResult> = r
        .keys
        .iter()
        .filter(|k| k.verdict == Verdict::NotLinearizable)
        .collect();
    if let Some(line) = bad.first().and_then(|k| finding(r, k)) {
        let _ = write!(s, "<p class=\"finding\">{}</p>", esc(&line));
    }
    if !bad.is_empty() {
        s.push_str(
            "<p class=\"legend\"><span><i class=\"sw lin\"></i>linearized (number = position \
             in the longest linearizable prefix)</span><span><i class=\"sw unpl\"></i>cannot \
             be placed next</span><span><i class=\"sw block\"></i>completed before it could \
             be linearized</span><span><i class=\"sw unreached\"></i>not reached</span>\
             <span><i class=\"sw info\"></i>indeterminate (may take effect any time after \
             its invocation)</span><span><i class=\"sw band\"></i>fault in effect</span></p>",
        );
    }
    for (n, k) in bad.iter().take(MAX_KEYS).enumerate() {
        violation(&mut s, r, k, marks, n);
    }
    if bad.len() > MAX_KEYS {
        let _ = write!(
            s,
            "<p>… and {} more non-linearizable keys.</p>",
            bad.len() - MAX_KEYS
        );
    }
    history(&mut s, r, marks, &bad, bad.len().min(MAX_KEYS));
    if !marks.is_empty() {
        s.push_str("<h2>System events</h2><table><tr><th>time</th><th>event</th></tr>");
        for m in marks {
            let at = match m.end {
                Some(e) => format!("{} … {}", time(m.time), time(e)),
                None => time(m.time),
            };
            let _ = write!(s, "<tr><td>{at}</td><td>{}</td></tr>", esc(&m.label));
        }
        s.push_str("</table>");
    }
    s.push_str(
        "<h2>Keys</h2><table><tr><th>key</th><th>operations</th><th>verdict</th>\
         <th>search steps</th></tr>",
    );
    let mut listed = r.keys.iter().collect::<Vec<_>>();
    listed.sort_by_key(|k| k.verdict == Verdict::Linearizable);
    for k in listed.iter().take(200) {
        let _ = write!(
            s,
            "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&key_name(k)),
            k.ops,
            esc(&match &k.verdict {
                Verdict::Unknown(why) => format!("unknown: {why}"),
                v => v.name().to_string(),
            }),
            k.steps
        );
    }
    s.push_str("</table>");
    if r.keys.len() > 200 {
        let _ = write!(s, "<p>… and {} more keys.</p>", r.keys.len() - 200);
    }
    let _ = writeln!(s, "<script>{SCRIPT}</script></body></html>");
    s
}

/// A time in ns with a readable unit.
pub(crate) fn time(ns: u64) -> String {
    match ns {
        0..1_000 => format!("{ns} ns"),
        1_000..1_000_000 => format!("{:.1} µs", ns as f64 / 1e3),
        1_000_000..1_000_000_000 => format!("{:.3} ms", ns as f64 / 1e6),
        _ => format!("{:.3} s", ns as f64 / 1e9),
    }
}

fn key_name(k: &KeyResult) -> String {
    k.key
        .as_ref()
        .map_or("(register)".to_string(), |k| k.to_string())
}

/// The violation of `k` in one sentence: the operation that could not be linearized, and why.
fn finding(r: &Report, k: &KeyResult) -> Option<String> {
    let e = k.explanation.as_ref()?;
    let b = r.operations.get(e.blocking)?;
    Some(format!(
        "{}: process {} {} ({}) {}",
        key_name(k),
        b.process,
        b.describe(),
        b.origin,
        focus_reason(e)
    ))
}

/// Why the blocking operation is the violation.
fn focus_reason(e: &Explanation) -> String {
    match e.unplaceable.iter().find(|u| u.op == e.blocking) {
        Some(u) => format!("cannot be linearized: {}", u.reason),
        None => "completed before it could be linearized".to_string(),
    }
}

/// What a hover shows of an operation: all it is, its times, its error and extra fields.
fn tip(o: &Operation) -> String {
    let mut tip = format!(
        "process {}: {}\ninvoked {}",
        o.process,
        o.describe(),
        time(o.call_time)
    );
    match (o.ret_time, o.info_time) {
        (Some(t), _) => {
            let _ = write!(
                tip,
                ", completed {} (took {})",
                time(t),
                time(t.saturating_sub(o.call_time))
            );
        }
        (None, Some(t)) => {
            let _ = write!(tip, ", indeterminate from {}", time(t));
        }
        (None, None) => tip.push_str(", never completed"),
    }
    if let Some(err) = &o.error {
        let _ = write!(tip, "\nerror: {err}");
    }
    for (name, value) in &o.extra {
        let value = match value {
            serde_json::Value::String(s) => s.clone(),
            v => v.to_string(),
        };
        let _ = write!(tip, "\n{name}: {value}");
    }
    let _ = write!(tip, "\n({})", o.origin);
    tip
}

fn outcome_class(o: &Operation) -> &'static str {
    match o.outcome {
        Outcome::Ok => "ok",
        Outcome::Fail => "fail",
        Outcome::Info => "info",
    }
}

/// Lanes for the processes of `ops` in process order; process → lane.
fn lanes(ops: &[&Operation]) -> (Vec<String>, BTreeMap<u64, usize>) {
    let mut lanes: BTreeMap<u64, usize> = ops.iter().map(|o| (o.process, 0)).collect();
    for (i, v) in lanes.values_mut().enumerate() {
        *v = i;
    }
    let names = lanes.keys().map(|p| format!("process {p}")).collect();
    (names, lanes)
}

fn bands(marks: &[Mark], from: u64, to: u64) -> Vec<Band> {
    marks
        .iter()
        .filter(|m| m.time <= to && m.end.unwrap_or(m.time) >= from)
        .map(|m| Band {
            start: m.time,
            end: m.end,
            label: m.label.clone(),
        })
        .collect()
}

/// The whole history (or [`MAX_HISTORY`] operations of it around the first violation), with
/// the availability chart.
fn history(s: &mut String, r: &Report, marks: &[Mark], bad: &[&KeyResult], n: usize) {
    let ops = &r.operations;
    let (mut ok, mut fail, mut info) = (0, 0, 0);
    for o in ops {
        match o.outcome {
            Outcome::Ok => ok += 1,
            Outcome::Fail => fail += 1,
            Outcome::Info => info += 1,
        }
    }
    let pct = |k: usize| 100.0 * k as f64 / ops.len().max(1) as f64;
    let _ = write!(
        s,
        "<h2>History</h2><p>{} operations: {ok} ok ({:.0}%), {fail} failed ({:.0}%), {info} \
         indeterminate ({:.0}%).",
        ops.len(),
        pct(ok),
        pct(fail),
        pct(info)
    );
    if ops.is_empty() {
        s.push_str("</p>");
        return;
    }
    let flagged: HashSet<usize> = bad
        .iter()
        .filter_map(|k| k.explanation.as_ref())
        .flat_map(|e| e.unplaceable.iter().map(|u| u.op).chain([e.blocking]))
        .collect();
    // Operations are in invocation order: a window of them around the first violation.
    let centre = bad
        .first()
        .and_then(|k| k.explanation.as_ref())
        .map_or(0, |e| e.blocking);
    let first = centre
        .saturating_sub(MAX_HISTORY / 2)
        .min(ops.len().saturating_sub(MAX_HISTORY));
    let shown: Vec<&Operation> = ops.iter().skip(first).take(MAX_HISTORY).collect();
    if shown.len() < ops.len() {
        let _ = write!(
            s,
            " Drawn: operations {} to {} (in invocation order){}.",
            first + 1,
            first + shown.len(),
            if bad.is_empty() {
                ""
            } else {
                ", around the first violation"
            }
        );
    }
    let _ = write!(
        s,
        "</p><p class=\"legend\"><span><i class=\"sw ok\"></i>ok</span><span><i class=\"sw \
         fail\"></i>failed</span><span><i class=\"sw info\"></i>indeterminate</span>{}<span>\
         <i class=\"sw band\"></i>fault in effect</span> — availability: operations invoked \
         per window, stacked by outcome</p>",
        if bad.is_empty() {
            ""
        } else {
            "<span><i class=\"sw flagged\"></i>part of a violation</span>"
        }
    );
    let t0 = shown.iter().map(|o| o.call_time).min().unwrap_or(0);
    let done = |o: &Operation| o.ret_time.or(o.info_time).unwrap_or(o.call_time);
    let last_op = shown.iter().map(|o| done(o)).max().unwrap_or(t0);
    // Every event up to the last operation: the run before the first one shows too.
    let bands = bands(marks, 0, last_op);
    let t0 = bands
        .iter()
        .map(|b| b.start)
        .min()
        .map_or(t0, |m| m.min(t0));
    let t1 = bands
        .iter()
        .map(|b| b.end.unwrap_or(b.start))
        .max()
        .map_or(last_op, |m| m.max(last_op));
    let t1 = t0 + ((t1 - t0) as f64 * 1.02) as u64 + 1;
    let (names, lane) = lanes(&shown);
    let bars = shown
        .iter()
        .map(|o| Bar {
            lane: lane[&o.process],
            start: o.call_time,
            end: o.ret_time.or(o.info_time).unwrap_or(t1),
            open: o.ret_time.is_none(),
            class: outcome_class(o),
            outcome: o.outcome,
            label: o.describe(),
            tip: tip(o),
            flagged: flagged.contains(&o.id),
            first: false,
        })
        .collect();
    let tl = Timeline {
        lanes: names,
        bars,
        bands,
        t0,
        t1,
        availability: true,
        focus: None,
    };
    timeline::write(s, &tl, n);
}

fn violation(s: &mut String, r: &Report, k: &KeyResult, marks: &[Mark], n: usize) {
    let _ = write!(s, "<h2>{}: not linearizable</h2>", esc(&key_name(k)));
    let Some(e) = &k.explanation else {
        let _ = write!(
            s,
            "<p>No explanation: {}</p>",
            esc(k.explanation_missing.as_deref().unwrap_or("none computed"))
        );
        return;
    };
    let ops = &r.operations;
    let position: HashMap<usize, usize> = e
        .prefix
        .iter()
        .enumerate()
        .map(|(i, p)| (p.op, i + 1))
        .collect();
    let unplaceable: HashMap<usize, &str> = e
        .unplaceable
        .iter()
        .map(|u| (u.op, u.reason.as_str()))
        .collect();
    // The window: from the last CONTEXT prefix operations to the end of the offending ones.
    let first = e
        .prefix
        .len()
        .checked_sub(CONTEXT)
        .and_then(|i| e.prefix.get(i))
        .map_or(0, |p| ops[p.op].call_time);
    let focus: Vec<&Operation> = e
        .unplaceable
        .iter()
        .map(|u| u.op)
        .chain(std::iter::once(e.blocking))
        .filter_map(|i| ops.get(i))
        .collect();
    let last = focus
        .iter()
        .filter_map(|o| o.ret_time)
        .chain(focus.iter().map(|o| o.call_time))
        .max()
        .unwrap_or(first);
    let in_key: Vec<&Operation> = ops
        .iter()
        .filter(|o| o.key == k.key && o.call_time <= last)
        .filter(|o| o.ret_time.is_none_or(|t| t >= first))
        .collect();
    let shown: Vec<&Operation> = if in_key.len() > MAX_DRAWN {
        in_key[in_key.len() - MAX_DRAWN..].to_vec()
    } else {
        in_key
    };
    let t0 = shown.iter().map(|o| o.call_time).min().unwrap_or(first);
    let t1 = shown
        .iter()
        .map(|o| o.ret_time.unwrap_or(o.call_time))
        .max()
        .unwrap_or(last)
        .max(t0 + 1);
    // System events in the window, and shortly before it (what preceded the anomaly): the
    // window grows to show them.
    let bands = bands(marks, t0.saturating_sub(t1 - t0), t1);
    let t0 = bands
        .iter()
        .map(|b| b.start)
        .min()
        .map_or(t0, |m| m.min(t0));
    let t1 = t0 + ((t1 - t0) as f64 * 1.08) as u64 + 1;
    let (names, lane) = lanes(&shown);
    let mut focus_bar = None;
    let bars = shown
        .iter()
        .enumerate()
        .map(|(i, o)| {
            if o.id == e.blocking {
                focus_bar = Some(i);
            }
            let class = if unplaceable.contains_key(&o.id) {
                "unpl"
            } else if o.id == e.blocking {
                "block"
            } else if position.contains_key(&o.id) {
                "lin"
            } else {
                "unreached"
            };
            let mut tip = tip(o);
            if let Some(n) = position.get(&o.id) {
                let _ = write!(tip, "\nlinearized #{n}");
            }
            if let Some(why) = unplaceable.get(&o.id) {
                let _ = write!(tip, "\ncannot be placed: {why}");
            }
            Bar {
                lane: lane[&o.process],
                start: o.call_time,
                end: o.ret_time.or(o.info_time).unwrap_or(t1).min(t1),
                open: o.ret_time.is_none(),
                class,
                outcome: o.outcome,
                label: match position.get(&o.id) {
                    Some(n) => format!("#{n} {}", o.describe()),
                    None => o.describe(),
                },
                tip,
                flagged: o.id == e.blocking || unplaceable.contains_key(&o.id),
                first: position.contains_key(&o.id),
            }
        })
        .collect();
    let focus = match (n, focus_bar, ops.get(e.blocking)) {
        (0, Some(i), Some(b)) => Some((
            i,
            format!(
                "✖ process {} {}: {}",
                b.process,
                b.describe(),
                focus_reason(e)
            ),
        )),
        _ => None,
    };
    let tl = Timeline {
        lanes: names,
        bars,
        bands,
        t0,
        t1,
        availability: false,
        focus,
    };
    timeline::write(s, &tl, n);
    let _ = if e.proof {
        write!(
            s,
            "<p>Found without search (each value here has a single writer): the {} numbered \
             operation(s) prove it; they leave the state <code>{}</code>.</p>",
            e.prefix.len(),
            esc(&e.state.to_string())
        )
    } else {
        write!(
            s,
            "<p>Longest linearizable prefix: {} operation(s); model state after it: \
             <code>{}</code>.</p>",
            e.prefix.len(),
            esc(&e.state.to_string())
        )
    };
    if let Some(b) = ops.get(e.blocking) {
        let _ = write!(
            s,
            "<p>Completed before it could be linearized: process {} <code>{}</code> ({}).</p>",
            b.process,
            esc(&b.describe()),
            esc(&b.origin)
        );
    }
    s.push_str(
        "<table><tr><th>cannot be placed next</th><th>process</th><th>why</th><th>at</th></tr>",
    );
    for u in &e.unplaceable {
        let o = &ops[u.op];
        let _ = write!(
            s,
            "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&o.describe()),
            o.process,
            esc(&u.reason),
            esc(&o.origin)
        );
    }
    s.push_str(
        "</table><table><tr><th>#</th><th>linearized</th><th>process</th><th>state after</th></tr>",
    );
    let skip = e.prefix.len().saturating_sub(CONTEXT);
    if skip > 0 {
        let _ = write!(s, "<tr><td colspan=\"4\">… {skip} earlier</td></tr>");
    }
    for (i, p) in e.prefix.iter().enumerate().skip(skip) {
        let o = &ops[p.op];
        let _ = write!(
            s,
            "<tr><td>{}</td><td><code>{}</code></td><td>{}</td><td><code>{}</code></td></tr>",
            i + 1,
            esc(&o.describe()),
            o.process,
            esc(&p.state.to_string())
        );
    }
    s.push_str("</table>");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{Entry, Kind, Value, F};

    #[test]
    fn a_violation_is_drawn_with_its_offending_operations() {
        let e = |k, p, f, v: i64, t| Entry::new(k, p, f, Value::Int(v), t);
        let entries = vec![
            e(Kind::Invoke, 0, F::Write, 1, 1_000_000),
            e(Kind::Ok, 0, F::Write, 1, 2_000_000),
            e(Kind::Invoke, 0, F::Write, 2, 3_000_000),
            e(Kind::Ok, 0, F::Write, 2, 4_000_000),
            Entry::new(Kind::Invoke, 1, F::Read, Value::Nil, 5_000_000),
            e(Kind::Ok, 1, F::Read, 1, 6_000_000),
        ];
        let r = crate::check_entries(entries, crate::Model::Register, &Default::default()).unwrap();
        let html = render(&r, "<h>.jsonl");
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert!(html.contains("<title>&lt;h&gt;.jsonl — not linearizable</title>"));
        // Drawn twice: around the violation, and on the whole history's timeline.
        assert_eq!(html.matches("<g class=\"op ").count(), 6);
        assert_eq!(
            html.matches("<g class=\"op lin\"").count(),
            2,
            "two linearized"
        );
        assert_eq!(
            html.matches("<g class=\"op unpl flagged\"").count(),
            1,
            "one unplaceable, flagged"
        );
        assert_eq!(html.matches("id=\"violation\"").count(), 1);
        assert!(html.contains("#1 write 1"));
        assert!(html.contains("#2 write 2"));
        assert!(html
            .contains("✖ process 1 read → 1: cannot be linearized: reads 1, but the value is 2"));
        assert!(html.contains("they leave the state <code>2</code>"));
        assert_eq!(
            html.matches("http://").count(),
            html.matches("http://www.w3.org/2000/svg").count(),
            "only the SVG namespace"
        );
        assert!(
            !html.contains("src=\"") && !html.contains("href=\""),
            "nothing fetched"
        );
    }

    #[test]
    fn a_passing_history_gets_a_timeline_with_availability_and_faults() {
        let mut entries = Vec::new();
        for i in 0..10u64 {
            let t = i * 1_000_000;
            entries.push(Entry::new(
                Kind::Invoke,
                i % 2,
                F::Write,
                Value::Int(i as i64),
                t,
            ));
            let kind = if i % 3 == 0 { Kind::Fail } else { Kind::Ok };
            let mut done = Entry::new(kind, i % 2, F::Write, Value::Int(i as i64), t + 400_000);
            done.extra = vec![("node".into(), serde_json::json!(format!("n{}", i % 3)))];
            entries.push(done);
        }
        let r = crate::check_entries(entries, crate::Model::Register, &Default::default()).unwrap();
        let marks = [Mark {
            time: 2_000_000,
            end: Some(5_000_000),
            label: "n0: iso: partition n0 | n1,n2".into(),
        }];
        let html = render_with_marks(&r, "h.jsonl", &marks);
        assert!(html.contains("10 operations: 6 ok (60%), 4 failed (40%), 0 indeterminate (0%)."));
        assert_eq!(html.matches("<g class=\"op ok\"").count(), 6);
        assert_eq!(html.matches("<g class=\"op fail\"").count(), 4);
        assert_eq!(
            html.matches("<text class=\"name\"").count(),
            2,
            "a lane per process"
        );
        // The partition: a band with its label in a row of its own, and listed.
        assert_eq!(html.matches("<rect class=\"band\"").count(), 1);
        assert!(html.contains("<g class=\"bl\" data-a=\"2000000\""));
        assert!(html.contains("<td>2.000 ms … 5.000 ms</td><td>n0: iso: partition n0 | n1,n2</td>"));
        // Extra fields on hover.
        assert!(html.contains("\nnode: n2\n"));
        // The availability chart: a window per operation here, 60 in all.
        assert_eq!(html.matches("<g><title>invoked ").count(), 10);
        assert!(!html.contains("id=\"violation\""));
    }

    #[test]
    fn tiny_histories_are_drawn_too() {
        let empty = crate::check_entries(vec![], crate::Model::Register, &Default::default());
        let html = render(&empty.unwrap(), "empty.jsonl");
        assert!(
            html.contains("<p>0 operations: 0 ok (0%), 0 failed (0%), 0 indeterminate (0%).</p>")
        );
        assert!(!html.contains("<div class=\"tl\">"));
        // One operation of no duration, never completed.
        let one = vec![Entry::new(Kind::Invoke, 4, F::Read, Value::Nil, 5)];
        let r = crate::check_entries(one, crate::Model::Register, &Default::default()).unwrap();
        let html = render(&r, "one.jsonl");
        assert_eq!(html.matches("<div class=\"tl\">").count(), 1);
        assert!(html.contains("<g class=\"op info open\" data-a=\"0\" data-b=\"1\""));
        assert!(html.contains("process 4: read → ? (info)\ninvoked 5 ns, never completed"));
    }
}
