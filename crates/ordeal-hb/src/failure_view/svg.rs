//! The failure picture drawn: a lane per node, time flowing down (a row per event, in time
//! order, so close events stay readable), arrows between lanes, faults as marks and bands.
//! Plain SVG, no script, no Graphviz; the HTML twin embeds it with the cause and a legend.

use super::{FailureView, FaultShape};
use crate::summary::Status;
use std::collections::{HashMap, HashSet};
use std::fmt::Write;

/// The colour of the operation a violation contradicts.
const PURPLE: &str = "#8250df";
/// Left margin (time labels).
const LEFT: f64 = 80.0;
/// Width of a lane.
const LANE: f64 = 200.0;
/// Top margin (verdict, caption, lane names).
const TOP: f64 = 100.0;
/// Height of an event's row.
const ROW: f64 = 18.0;
const BOTTOM: f64 = 40.0;
/// A time label every that many rows.
const TIME_EVERY: usize = 8;
/// The lanes' names again every that many rows.
const NAME_EVERY: usize = 40;

/// Where everything goes.
#[derive(Debug, Clone, PartialEq)]
pub struct Layout {
    pub width: f64,
    pub height: f64,
    /// The x of each lane's line.
    pub lane_x: Vec<f64>,
    /// Each drawn event's point, by `seq`.
    pub points: HashMap<u64, (f64, f64)>,
    /// Each arrow's ends, in [`FailureView::arrows`]' order.
    pub arrows: Vec<((f64, f64), (f64, f64))>,
    /// The y where the events end.
    pub bottom: f64,
    /// The rows saying how many events are not drawn there: their y and that number.
    pub gaps: Vec<(f64, u64)>,
    /// The rows' times, in row order (to place faults by time); a gap's is the next event's.
    times: Vec<u64>,
}

impl Layout {
    pub fn of(view: &FailureView) -> Layout {
        let lane_x: Vec<f64> = (0..view.lanes.len())
            .map(|l| LEFT + LANE * (l as f64 + 0.5))
            .collect();
        let gap_before: HashMap<u64, u64> =
            view.gaps.iter().map(|g| (g.before, g.events)).collect();
        let mut points: HashMap<u64, (f64, f64)> = HashMap::new();
        let mut gaps = Vec::new();
        let mut times = Vec::new();
        for e in &view.events {
            if let Some(&n) = gap_before.get(&e.seq) {
                gaps.push((TOP + ROW * (times.len() as f64 + 0.5), n));
                times.push(e.ts);
            }
            let x = lane_x.get(e.lane).copied().unwrap_or(LEFT);
            points.insert(e.seq, (x, TOP + ROW * (times.len() as f64 + 0.5)));
            times.push(e.ts);
        }
        let arrows = view
            .arrows
            .iter()
            .map(|a| (points[&a.from], points[&a.to]))
            .collect();
        let bottom = TOP + ROW * times.len() as f64;
        Layout {
            width: (LEFT + LANE * view.lanes.len() as f64 + 20.0).max(640.0),
            height: bottom + BOTTOM,
            lane_x,
            points,
            arrows,
            bottom,
            gaps,
            times,
        }
    }

    /// The y of time `ts`: just above the first event at or after it (the bottom when none).
    pub fn y_at(&self, ts: u64) -> f64 {
        let row = self.times.partition_point(|&t| t < ts);
        TOP + ROW * row as f64
    }
}

fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// The verdict's word and colour.
fn verdict(status: Status) -> (&'static str, &'static str) {
    match status {
        Status::Pass => ("PASS", "#1a7f37"),
        Status::Fail => ("FAIL", "#cf222e"),
        Status::Hung => ("HUNG", "#bc4c00"),
        Status::Error => ("ERROR", "#57606a"),
    }
}

fn ms(ts: u64) -> String {
    format!("{:.1} ms", ts as f64 / 1e6)
}

/// `failure.svg`.
pub fn render_failure_svg(view: &FailureView) -> String {
    let l = Layout::of(view);
    let mut s = String::new();
    let (word, colour) = verdict(view.status);
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="11">"#,
        w = l.width,
        h = l.height
    );
    s.push_str(
        r##"<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#0969da"/></marker><marker id="arrow-red" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#cf222e"/></marker><marker id="arrow-purple" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#8250df"/></marker></defs>
"##,
    );
    let _ = writeln!(
        s,
        r##"<rect width="100%" height="100%" fill="#ffffff"/><text id="verdict" x="12" y="30" font-size="22" font-weight="bold" fill="{colour}">{word}</text>"##
    );
    let caption = match (&view.caption, view.status) {
        (Some(c), _) => c.clone(),
        (None, Status::Pass) => "no violation: the run's last events".into(),
        (None, _) => "no cause recorded: the run's last events".into(),
    };
    let chars = ((l.width - 24.0) / 6.2) as usize;
    let _ = writeln!(
        s,
        r#"<text id="caption" x="12" y="54" fill="{colour}"><title>{full}</title>{shown}</text>"#,
        full = esc(&caption),
        shown = esc(&crate::labels::cut(&caption, chars))
    );
    let mut notes = Vec::new();
    if view.left_out > 0 {
        notes.push(format!(
            "{} earlier events of the causal past not drawn",
            view.left_out
        ));
    }
    if !view.contradicted.is_empty() {
        notes.push(format!(
            r##"<tspan fill="{PURPLE}">in purple: the write it contradicts</tspan>"##
        ));
    }
    if !notes.is_empty() {
        let _ = writeln!(
            s,
            r##"<text x="12" y="72" fill="#57606a">{}</text>"##,
            notes.join(" · ")
        );
    }
    faults_behind(view, &l, &mut s);
    lanes(view, &l, &mut s);
    for &(y, n) in &l.gaps {
        let _ = writeln!(
            s,
            r##"<g class="gap"><line x1="{LEFT}" y1="{y}" x2="{x2}" y2="{y}" stroke="#8c959f" stroke-dasharray="2 3"/><text x="{mx}" y="{ty}" text-anchor="middle" fill="#57606a" stroke="#ffffff" stroke-width="3" paint-order="stroke">{n} event{s} not drawn</text></g>"##,
            s = if n == 1 { "" } else { "s" },
            x2 = LEFT + LANE * view.lanes.len() as f64,
            mx = LEFT + LANE * view.lanes.len() as f64 / 2.0,
            ty = y + 4.0,
        );
    }
    for (i, row) in l.times.iter().enumerate().step_by(TIME_EVERY) {
        let y = TOP + ROW * (i as f64 + 0.5) + 4.0;
        let _ = writeln!(
            s,
            r##"<text x="{x}" y="{y}" text-anchor="end" fill="#57606a" font-size="10">{t}</text>"##,
            x = LEFT - 8.0,
            t = ms(*row)
        );
    }
    let violation: HashSet<u64> = view.violation.iter().copied().collect();
    let contradicted: HashSet<u64> = view.contradicted.iter().copied().collect();
    for (a, &((x1, y1), (x2, y2))) in view.arrows.iter().zip(&l.arrows) {
        let red = violation.contains(&a.from) || violation.contains(&a.to);
        let purple = contradicted.contains(&a.from) || contradicted.contains(&a.to);
        let (stroke, marker, class) = if red {
            ("#cf222e", "arrow-red", "msg violation")
        } else if purple {
            (PURPLE, "arrow-purple", "msg contradicted")
        } else {
            ("#0969da", "arrow", "msg")
        };
        let _ = writeln!(
            s,
            r##"<g class="{class}"><line x1="{x1}" y1="{y1}" x2="{x2}" y2="{y2}" stroke="{stroke}" stroke-width="{w}" marker-end="url(#{marker})"/><text x="{mx}" y="{my}" text-anchor="middle" fill="{stroke}" stroke="#ffffff" stroke-width="3" paint-order="stroke">{label}</text></g>"##,
            w = if red || purple { 2.0 } else { 1.2 },
            mx = (x1 + x2) / 2.0,
            my = (y1 + y2) / 2.0 - 3.0,
            label = esc(&a.label)
        );
    }
    for e in &view.events {
        let (x, y) = l.points[&e.seq];
        let (class, r, fill) = if violation.contains(&e.seq) {
            ("event violation", 6.0, "#cf222e")
        } else if contradicted.contains(&e.seq) {
            ("event contradicted", 6.0, PURPLE)
        } else {
            ("event", 3.5, "#24292f")
        };
        let _ = writeln!(
            s,
            r#"<g class="{class}"><circle cx="{x}" cy="{y}" r="{r}" fill="{fill}"/><text x="{tx}" y="{ty}" fill="{fill}" font-size="10">#{seq} {label}</text></g>"#,
            tx = x + 8.0,
            ty = y + 3.5,
            seq = e.seq,
            label = esc(&e.label)
        );
    }
    faults_above(view, &l, &mut s);
    s.push_str("</svg>\n");
    s
}

/// Partitions and pauses, under the events.
fn faults_behind(view: &FailureView, l: &Layout, s: &mut String) {
    for f in &view.faults {
        let y1 = l.y_at(f.from_ts);
        let y2 = f.to_ts.map_or(l.bottom, |t| l.y_at(t)).max(y1 + 4.0);
        let (x, w) = match (f.shape, f.lane) {
            (FaultShape::Partition, _) => (LEFT, LANE * view.lanes.len() as f64),
            (FaultShape::Pause, Some(lane)) => (l.lane_x[lane] - 14.0, 28.0),
            _ => continue,
        };
        let _ = writeln!(
            s,
            r##"<g class="fault {kind}"><rect x="{x}" y="{y1}" width="{w}" height="{h}" fill="#fd8c73" fill-opacity="0.25"/><text x="{x}" y="{ty}" fill="#bc4c00" font-size="10">{a}</text></g>"##,
            kind = if f.shape == FaultShape::Partition {
                "partition"
            } else {
                "pause"
            },
            h = y2 - y1,
            ty = y1 + 11.0,
            a = esc(&f.action)
        );
    }
}

/// The lanes' names and lines: a crashed lane's line is dashed after its crash.
fn lanes(view: &FailureView, l: &Layout, s: &mut String) {
    for (i, name) in view.lanes.iter().enumerate() {
        let x = l.lane_x[i];
        let crash = view
            .faults
            .iter()
            .filter(|f| f.shape == FaultShape::Crash && f.lane == Some(i))
            .map(|f| l.y_at(f.from_ts))
            .reduce(f64::min);
        let end = crash.unwrap_or(l.bottom);
        let _ = writeln!(
            s,
            r##"<text class="lane" x="{x}" y="{ty}" text-anchor="middle" font-weight="bold" font-size="13">{n}</text><line x1="{x}" y1="{TOP}" x2="{x}" y2="{end}" stroke="#8c959f" stroke-width="2"/>"##,
            ty = TOP - 10.0,
            n = esc(name)
        );
        // Named again down a long picture, so a lane is known without scrolling up.
        for row in (NAME_EVERY..l.times.len()).step_by(NAME_EVERY) {
            let _ = writeln!(
                s,
                r##"<text class="lane-again" x="{x}" y="{y}" text-anchor="middle" fill="#8c959f" font-size="10" stroke="#ffffff" stroke-width="3" paint-order="stroke">{n}</text>"##,
                y = TOP + ROW * row as f64 + 4.0,
                n = esc(name)
            );
        }
        if end < l.bottom {
            let _ = writeln!(
                s,
                r##"<line x1="{x}" y1="{end}" x2="{x}" y2="{b}" stroke="#d0d7de" stroke-dasharray="4 4"/>"##,
                b = l.bottom
            );
        }
    }
}

/// Crashes (a red X) and other faults (a mark), over the events.
fn faults_above(view: &FailureView, l: &Layout, s: &mut String) {
    for f in &view.faults {
        let Some(lane) = f.lane else { continue };
        let (x, y) = (l.lane_x[lane], l.y_at(f.from_ts));
        match f.shape {
            FaultShape::Crash => {
                let _ = writeln!(
                    s,
                    r##"<g class="fault crash"><path d="M{a},{b} L{c},{d} M{a},{d} L{c},{b}" stroke="#cf222e" stroke-width="3"/><text x="{tx}" y="{ty}" text-anchor="end" fill="#cf222e" font-weight="bold">{act}</text></g>"##,
                    a = x - 7.0,
                    b = y - 7.0,
                    c = x + 7.0,
                    d = y + 7.0,
                    tx = x - 12.0,
                    ty = y + 4.0,
                    act = esc(&f.action)
                );
            }
            FaultShape::Other => {
                let _ = writeln!(
                    s,
                    r##"<g class="fault other"><path d="M{x},{a} L{b},{y} L{x},{c} L{d},{y} z" fill="#bc4c00"/><text x="{tx}" y="{ty}" text-anchor="end" fill="#bc4c00">{act}</text></g>"##,
                    a = y - 6.0,
                    b = x + 6.0,
                    c = y + 6.0,
                    d = x - 6.0,
                    tx = x - 12.0,
                    ty = y + 4.0,
                    act = esc(&f.action)
                );
            }
            _ => {}
        }
    }
}

/// `failure.html`: the verdict, the cause, a legend, the picture `svg` and the faults.
pub fn render_failure_html(view: &FailureView, svg: &str) -> String {
    let (word, colour) = verdict(view.status);
    let cause = match (&view.caption, view.status) {
        (Some(c), _) => esc(c),
        (None, Status::Pass) => "No violation. The picture shows the run's last events.".into(),
        (None, _) => "No cause recorded. The picture shows the run's last events.".into(),
    };
    let mut faults = String::new();
    for f in &view.faults {
        let _ = write!(
            faults,
            "<li>{} at {}{}</li>",
            esc(&f.action),
            ms(f.from_ts),
            f.to_ts
                .map(|t| format!(", until {}", ms(t)))
                .unwrap_or_default()
        );
    }
    if !faults.is_empty() {
        faults = format!("<h2>Faults</h2><ul>{faults}</ul>");
    }
    let mut left_out = if view.left_out > 0 {
        format!(
            "<p>{} earlier events of the causal past are not drawn.</p>",
            view.left_out
        )
    } else {
        String::new()
    };
    if !view.contradicted.is_empty() {
        left_out.push_str(
            "<p>In purple, the write the violating operation contradicts: the one that left \
             the value the history check names, drawn wherever it is in the run.</p>",
        );
    }
    format!(
        r##"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>ordeal: {word}</title>
<style>
body {{ font-family: sans-serif; margin: 1.5em; color: #24292f; }}
h1 {{ color: {colour}; margin: 0 0 .3em; }}
.cause {{ font-size: 1.1em; color: {colour}; }}
.legend {{ display: flex; gap: 1.5em; flex-wrap: wrap; margin: .5em 0; font-size: .9em; }}
.legend svg {{ vertical-align: middle; }}
.picture {{ overflow: auto; max-height: 70vh; border: 1px solid #d0d7de; }}
</style></head>
<body>
<h1 id="verdict">{word}</h1>
<p class="cause" id="cause">{cause}</p>
<div class="legend">
<span><svg width="40" height="12"><line x1="2" y1="6" x2="36" y2="6" stroke="#0969da" stroke-width="1.5"/></svg> message (what it said, or its bytes)</span>
<span><svg width="40" height="12"><line x1="2" y1="6" x2="36" y2="6" stroke="#cf222e" stroke-width="2"/><circle cx="20" cy="6" r="5" fill="#cf222e"/></svg> the violating operation</span>
<span><svg width="40" height="12"><line x1="2" y1="6" x2="36" y2="6" stroke="#8250df" stroke-width="2"/><circle cx="20" cy="6" r="5" fill="#8250df"/></svg> the write it contradicts (a history violation)</span>
<span><svg width="16" height="16"><path d="M2,2 L14,14 M2,14 L14,2" stroke="#cf222e" stroke-width="3"/></svg> crash (the lane ends)</span>
<span><svg width="30" height="12"><rect width="30" height="12" fill="#fd8c73" fill-opacity="0.25"/></svg> partition (across lanes), pause (on a lane)</span>
<span><svg width="14" height="14"><path d="M7,1 L13,7 L7,13 L1,7 z" fill="#bc4c00"/></svg> other fault</span>
</div>
<div class="picture">
{svg}</div>
<p>The events in the causal past of the failure (of the run's end when it passed): a lane per node, time flowing down, the last {per_lane} events per lane at most.</p>
{left_out}
{faults}
<script>
// The failure is at the end of the picture: start there.
const marks = document.querySelectorAll('.violation, .event');
const mark = document.querySelector('.event.violation') || marks[marks.length - 1];
if (mark) {{
  mark.scrollIntoView({{block: 'center'}});
  window.scrollTo(0, 0);
  // For tests and the curious: is the failure on the first screen?
  const r = mark.getBoundingClientRect();
  const seen = r.top >= 0 && r.bottom <= window.innerHeight;
  document.body.dataset.violation = document.querySelector('.violation') ? (seen ? 'in-view' : 'off-screen') : 'none';
}}
document.body.dataset.js = 'ok';
</script>
</body></html>
"##,
        per_lane = super::PER_LANE,
    )
}
