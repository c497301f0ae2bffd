//! A self-contained HTML report of a check: the verdict, a table of keys, and for each
//! non-linearizable key a timeline (one lane per process, inline SVG) around the violation:
//! the operations of the longest linearizable prefix numbered in linearization order, the
//! operation that could not be linearized before it completed, and the operations that cannot
//! be placed next, highlighted. No scripts, no external assets.

use crate::checker::{human_bytes, KeyResult, Report, Verdict};
use crate::history::{Operation, Outcome};
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;

/// Most operations drawn per timeline.
const MAX_DRAWN: usize = 400;
/// Prefix operations shown before the violation.
const CONTEXT: usize = 25;
/// Most keys drawn.
const MAX_KEYS: usize = 20;

fn esc(s: &str) -> String {
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

const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222}\
h1{font-size:20px}h2{font-size:16px;margin-top:32px}\
.verdict{display:inline-block;padding:2px 10px;border-radius:4px;color:#fff;font-weight:600}\
.lin{background:#2e7d32}.not{background:#c62828}.unknown{background:#8d6e00}\
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ccc;padding:2px 8px;text-align:left}\
th{background:#f3f3f3}code{font-family:ui-monospace,monospace}\
.legend span{display:inline-block;margin-right:16px}\
.sw{display:inline-block;width:14px;height:10px;margin-right:4px;vertical-align:middle;border:1px solid #555}\
svg text{font:11px ui-monospace,monospace}.lane{font-weight:600}";

/// Something that happened to the system under test at a time on the history's clock (a
/// fault, a node started or ended), drawn across the timelines so a reader sees what
/// preceded an anomaly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mark {
    /// Nanoseconds, on the clock of the history's `time` field.
    pub time: u64,
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
         <style>{STYLE}</style></head><body><h1>Linearizability of <code>{t}</code></h1>\
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
    s.push_str(
        "<table><tr><th>key</th><th>operations</th><th>verdict</th><th>search steps</th></tr>",
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
    let bad: Vec<&KeyResult> = r
        .keys
        .iter()
        .filter(|k| k.verdict == Verdict::NotLinearizable)
        .collect();
    if !bad.is_empty() {
        s.push_str(
            "<p class=\"legend\"><span><i class=\"sw\" style=\"background:#a5d6a7\"></i>\
             linearized (number = position in the longest linearizable prefix)</span>\
             <span><i class=\"sw\" style=\"background:#ef9a9a\"></i>cannot be placed next</span>\
             <span><i class=\"sw\" style=\"background:#fff;border:2px solid #c62828\"></i>\
             completed before it could be linearized</span>\
             <span><i class=\"sw\" style=\"background:#e0e0e0\"></i>not reached</span>\
             <span><i class=\"sw\" style=\"background:#fff;border-style:dashed\"></i>\
             indeterminate (may take effect any time after its invocation)</span></p>",
        );
    }
    for k in bad.iter().take(MAX_KEYS) {
        violation(&mut s, r, k, marks);
    }
    if !marks.is_empty() {
        s.push_str("<h2>System events</h2><table><tr><th>time</th><th>event</th></tr>");
        for m in marks {
            let _ = write!(
                s,
                "<tr><td>{}</td><td>{}</td></tr>",
                time(m.time),
                esc(&m.label)
            );
        }
        s.push_str("</table>");
    }
    if bad.len() > MAX_KEYS {
        let _ = write!(
            s,
            "<p>… and {} more non-linearizable keys.</p>",
            bad.len() - MAX_KEYS
        );
    }
    s.push_str("</body></html>\n");
    s
}

/// A time in ns with a readable unit.
fn time(ns: u64) -> String {
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

fn violation(s: &mut String, r: &Report, k: &KeyResult, marks: &[Mark]) {
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
    let reach = t0.saturating_sub(t1 - t0);
    let near: Vec<&Mark> = marks
        .iter()
        .filter(|m| m.time >= reach && m.time <= t1)
        .collect();
    let t0 = near.iter().map(|m| m.time).min().map_or(t0, |m| m.min(t0));
    let span = (t1 - t0) as f64 * 1.08;
    let mut lanes: BTreeMap<u64, usize> = BTreeMap::new();
    for o in &shown {
        let n = lanes.len();
        lanes.entry(o.process).or_insert(n);
    }
    for (i, v) in lanes.values_mut().enumerate() {
        *v = i;
    }
    let (left, width, lane_h) = (90.0, 1100.0, 30.0);
    let height = 30.0 + lanes.len() as f64 * lane_h;
    let x = |t: u64| left + (t.saturating_sub(t0)) as f64 / span * width;
    let _ = write!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{height}\" \
         viewBox=\"0 0 {w} {height}\">",
        w = left + width + 20.0
    );
    let _ = write!(
        s,
        "<text x=\"{left}\" y=\"14\">t = {} … {}</text>",
        time(t0),
        time(t1)
    );
    for (p, lane) in &lanes {
        let y = 24.0 + *lane as f64 * lane_h;
        let _ = write!(
            s,
            "<line x1=\"{left}\" y1=\"{yl}\" x2=\"{xr}\" y2=\"{yl}\" stroke=\"#eee\"/>\
             <text class=\"lane\" x=\"4\" y=\"{yt}\">process {p}</text>",
            yl = y + lane_h / 2.0,
            xr = left + width,
            yt = y + lane_h / 2.0 + 4.0
        );
    }
    for (i, m) in near.iter().enumerate() {
        let xm = x(m.time);
        let _ = write!(
            s,
            "<g><title>{tip}</title><line x1=\"{xm:.1}\" y1=\"18\" x2=\"{xm:.1}\" y2=\"{height}\" \
             stroke=\"#6a1b9a\" stroke-dasharray=\"5 3\"/><text x=\"{tx:.1}\" y=\"{ty}\" \
             fill=\"#6a1b9a\">{label}</text></g>",
            tip = esc(&format!("{} at {}", m.label, time(m.time))),
            tx = xm + 2.0,
            ty = 30.0 + (i % 3) as f64 * 11.0,
            label = esc(&m.label),
        );
    }
    for o in &shown {
        let y = 24.0 + lanes[&o.process] as f64 * lane_h + 4.0;
        let x0 = x(o.call_time);
        let x1 = o.ret_time.map_or(left + width, x).max(x0 + 3.0);
        let (fill, stroke, sw) = if unplaceable.contains_key(&o.id) {
            ("#ef9a9a", "#c62828", if o.id == e.blocking { 3 } else { 1 })
        } else if o.id == e.blocking {
            ("#ffffff", "#c62828", 3)
        } else if position.contains_key(&o.id) {
            ("#a5d6a7", "#2e7d32", 1)
        } else {
            ("#e0e0e0", "#757575", 1)
        };
        let dash = if o.outcome == Outcome::Info {
            " stroke-dasharray=\"4 3\""
        } else {
            ""
        };
        let mut tip = format!(
            "process {} {} invoked {} ({})",
            o.process,
            o.describe(),
            time(o.call_time),
            o.origin
        );
        if let Some(t) = o.ret_time {
            let _ = write!(tip, ", completed {}", time(t));
        }
        if let Some(n) = position.get(&o.id) {
            let _ = write!(tip, "; linearized #{n}");
        }
        if let Some(why) = unplaceable.get(&o.id) {
            let _ = write!(tip, "; cannot be placed: {why}");
        }
        let label = match position.get(&o.id) {
            Some(n) => format!("#{n} {}", o.describe()),
            None => o.describe(),
        };
        let _ = write!(
            s,
            "<g><title>{tip}</title><rect x=\"{x0:.1}\" y=\"{y}\" width=\"{w:.1}\" height=\"{h}\" \
             rx=\"3\" fill=\"{fill}\" stroke=\"{stroke}\" stroke-width=\"{sw}\"{dash}/>\
             <text x=\"{tx:.1}\" y=\"{ty}\">{label}</text></g>",
            tip = esc(&tip),
            w = x1 - x0,
            h = lane_h - 8.0,
            tx = x0 + 3.0,
            ty = y + 15.0,
            label = esc(&label),
        );
    }
    s.push_str("</svg>");
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
        assert_eq!(html.matches("<rect ").count(), 3, "three operations drawn");
        assert_eq!(
            html.matches("fill=\"#a5d6a7\"").count(),
            2,
            "two linearized"
        );
        assert_eq!(
            html.matches("fill=\"#ef9a9a\"").count(),
            1,
            "one unplaceable"
        );
        assert!(html.contains("#1 write 1"));
        assert!(html.contains("#2 write 2"));
        assert!(html.contains("reads 1, but the value is 2"));
        assert!(html.contains("they leave the state <code>2</code>"));
        assert!(
            !html.contains("http://") || html.matches("http://").count() == 1,
            "only the SVG namespace"
        );
        assert!(!html.contains("<script"));
    }
}
