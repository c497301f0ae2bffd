//! One timeline of the HTML report: an availability chart (operations invoked per time window,
//! stacked by outcome), a time axis, rows of labels for the system's events (faults as shaded
//! bands, instants as lines) and the violation, then one lane per process with its operations.
//!
//! Everything is placed here ([`plan`]), in pixels, before any SVG is written: each text's
//! box is known, and no two boxes intersect (the unit tests check it on dense histories). The
//! page's script ([`SCRIPT`](super::SCRIPT)) runs the same placement again when the view is
//! zoomed or panned, with the browser's own text widths.

use super::{esc, time};
use crate::history::Outcome;
use std::fmt::Write;

/// Advance of one character of the labels' 11 px monospace font, rounded up (DejaVu Sans
/// Mono and Liberation Mono advance 6.6 px): boxes estimated with it are never too small.
pub(crate) const CHAR_W: f64 = 7.0;
/// Space kept between two labels of one row.
pub(crate) const GAP: f64 = 6.0;
/// Width of the plot (the time axis), in pixels.
pub(crate) const PLOT_W: f64 = 1160.0;
const RIGHT_PAD: f64 = 12.0;
const AVAIL_H: f64 = 44.0;
const AXIS_H: f64 = 20.0;
/// Height of a row of event labels.
pub(crate) const ROW_H: f64 = 16.0;
/// Most rows of event labels; a label that finds no room is left to its band's tooltip.
pub(crate) const MAX_ROWS: usize = 8;
/// Height of a process's lane.
pub(crate) const LANE_H: f64 = 24.0;
/// Windows of the availability chart.
pub(crate) const BUCKETS: usize = 60;
/// Longest label drawn, in characters (the tooltip has all of it).
const MAX_LABEL: usize = 48;
/// Longest label of the violation, in characters.
const MAX_FOCUS_LABEL: usize = 110;

/// An operation as drawn.
pub(crate) struct Bar {
    /// Index into [`Timeline::lanes`].
    pub lane: usize,
    /// Invocation (ns).
    pub start: u64,
    /// Completion (ns); for an operation that never completed, where its bar stops.
    pub end: u64,
    /// Never completed (indeterminate): drawn open-ended.
    pub open: bool,
    /// CSS classes (`ok`, `fail`, `info`, `lin`, `unpl`, `block`, `unreached`).
    pub class: &'static str,
    /// How it ended, for the availability chart.
    pub outcome: Outcome,
    /// Drawn in the lane when there is room.
    pub label: String,
    /// Shown on hover.
    pub tip: String,
    /// Part of a violation: drawn at a visible width with an outline, its label first.
    pub flagged: bool,
    /// Its label goes before those of other bars that are not flagged (the numbered
    /// operations that prove a violation).
    pub first: bool,
}

/// A system event: a fault that lasts (`end`), or an instant.
pub(crate) struct Band {
    /// When it began (ns).
    pub start: u64,
    /// When it ended, for a fault that lasts.
    pub end: Option<u64>,
    /// What it was.
    pub label: String,
}

/// What one timeline shows.
pub(crate) struct Timeline {
    /// Lane names, top to bottom.
    pub lanes: Vec<String>,
    /// The operations.
    pub bars: Vec<Bar>,
    /// The system's events.
    pub bands: Vec<Band>,
    /// The time range (ns), `t0 < t1`.
    pub t0: u64,
    pub t1: u64,
    /// Draw the availability chart.
    pub availability: bool,
    /// The violating operation (index into `bars`) and its label in the event rows; the page
    /// scrolls it into view.
    pub focus: Option<(usize, String)>,
}

/// A text's box, in pixels.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Rect {
    pub x0: f64,
    pub y0: f64,
    pub x1: f64,
    pub y1: f64,
}

impl Rect {
    /// The box of `chars` characters written at `x` on the baseline `y`.
    fn text(x: f64, y: f64, chars: usize) -> Rect {
        Rect {
            x0: x,
            y0: y - 10.0,
            x1: x + text_w(chars),
            y1: y + 3.0,
        }
    }

    #[cfg_attr(not(test), allow(dead_code))]
    pub fn intersects(&self, o: &Rect) -> bool {
        self.x0 < o.x1 && o.x0 < self.x1 && self.y0 < o.y1 && o.y0 < self.y1
    }
}

fn text_w(chars: usize) -> f64 {
    chars as f64 * CHAR_W
}

/// Where everything of a [`Timeline`] goes.
pub(crate) struct Plan {
    pub left: f64,
    pub width: f64,
    pub height: f64,
    pub avail_top: f64,
    pub axis_top: f64,
    pub rows_top: f64,
    pub rows: usize,
    pub lanes_top: f64,
    /// Per bar: its x range.
    pub bar_x: Vec<(f64, f64)>,
    /// Per bar: its label's x, when drawn.
    pub bar_label: Vec<Option<f64>>,
    /// Per band: its label's x and row, when drawn.
    pub band_label: Vec<Option<(f64, usize)>>,
    /// The focus label's x and row.
    pub focus_label: Option<(f64, usize)>,
    /// Axis ticks: x and text.
    pub ticks: Vec<(f64, String)>,
    /// Per window of the availability chart: (ok, fail, info) invoked in it.
    pub buckets: Vec<[usize; 3]>,
    /// Every text drawn (for the no-overlap checks).
    #[cfg_attr(not(test), allow(dead_code))]
    pub texts: Vec<Rect>,
}

/// `s` cut to [`MAX_LABEL`] characters.
pub(crate) fn short(s: &str) -> String {
    cut(s, MAX_LABEL)
}

/// The violation's label as drawn.
pub(crate) fn focus_text(s: &str) -> String {
    cut(s, MAX_FOCUS_LABEL)
}

fn cut(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max - 1).collect();
    out.push('…');
    out
}

/// The first free slot for a box `[x, x + w]` among `rows` (each a list of taken ranges);
/// `None` when all `max` rows are taken there.
fn free_row(rows: &mut Vec<Vec<(f64, f64)>>, x: f64, w: f64, max: usize) -> Option<usize> {
    let fits = |row: &Vec<(f64, f64)>| row.iter().all(|&(a, b)| x + w + GAP <= a || x >= b + GAP);
    let r = match rows.iter().position(fits) {
        Some(r) => r,
        None if rows.len() < max => {
            rows.push(Vec::new());
            rows.len() - 1
        }
        None => return None,
    };
    rows[r].push((x, x + w));
    Some(r)
}

/// The tick step for `span` ns: 1, 2 or 5 times a power of ten, about `n` ticks.
pub(crate) fn tick_step(span: f64, n: f64) -> f64 {
    let raw = (span / n).max(1.0);
    let p = 10f64.powf(raw.log10().floor());
    let m = raw / p;
    let k = if m <= 1.0 {
        1.0
    } else if m <= 2.0 {
        2.0
    } else if m <= 5.0 {
        5.0
    } else {
        10.0
    };
    k * p
}

/// A tick's text: `t` ns in the unit of `step`, with the decimals the step needs.
pub(crate) fn tick_text(t: f64, step: f64) -> String {
    let (div, unit) = if step >= 1e8 {
        (1e9, "s")
    } else if step >= 1e5 {
        (1e6, "ms")
    } else if step >= 1e2 {
        (1e3, "µs")
    } else {
        (1.0, "ns")
    };
    let decimals = (-(step / div).log10().floor()).max(0.0) as usize;
    format!("{:.*} {unit}", decimals, t / div)
}

/// Places everything of `tl`.
pub(crate) fn plan(tl: &Timeline) -> Plan {
    let name_w = tl
        .lanes
        .iter()
        .map(|l| l.chars().count())
        .max()
        .unwrap_or(0);
    let left = (text_w(name_w.max("availability".len())) + 14.0).max(100.0);
    let right = left + PLOT_W;
    let span = (tl.t1.saturating_sub(tl.t0)).max(1) as f64;
    let x = |t: u64| left + (t.saturating_sub(tl.t0)) as f64 / span * PLOT_W;
    let mut texts = Vec::new();

    let avail_top = 4.0;
    let axis_top = if tl.availability {
        avail_top + AVAIL_H + 8.0
    } else {
        avail_top
    };
    let mut buckets = vec![[0usize; 3]; if tl.availability { BUCKETS } else { 0 }];
    if tl.availability {
        texts.push(Rect::text(4.0, avail_top + AVAIL_H / 2.0 + 4.0, 12));
        for b in &tl.bars {
            let i = ((b.start.saturating_sub(tl.t0)) as f64 / span * BUCKETS as f64) as usize;
            let slot = match b.outcome {
                Outcome::Ok => 0,
                Outcome::Fail => 1,
                Outcome::Info => 2,
            };
            buckets[i.min(BUCKETS - 1)][slot] += 1;
        }
    }

    let step = tick_step(span, 8.0);
    let mut ticks = Vec::new();
    let mut last_end = f64::NEG_INFINITY;
    let mut k = (tl.t0 as f64 / step).ceil();
    while k * step <= tl.t1 as f64 {
        let t = k * step;
        let tx = left + (t - tl.t0 as f64) / span * PLOT_W;
        let text = tick_text(t, step);
        let w = text_w(text.chars().count());
        if tx + 2.0 >= last_end + GAP && tx + 2.0 + w <= right {
            texts.push(Rect::text(tx + 2.0, axis_top + 13.0, text.chars().count()));
            last_end = tx + 2.0 + w;
            ticks.push((tx, text));
        }
        k += 1.0;
    }

    // Event labels: the violation's first, then each event's at its start, moved left when it
    // would pass the right edge, in the first row with room.
    let rows_top = axis_top + AXIS_H;
    let mut rows: Vec<Vec<(f64, f64)>> = Vec::new();
    let place = |rows: &mut Vec<Vec<(f64, f64)>>, at: f64, label: &str| {
        let w = text_w(label.chars().count());
        let lx = (at + 3.0).min(right - w).max(left);
        free_row(rows, lx, w, MAX_ROWS).map(|r| (lx, r))
    };
    let focus_label = tl
        .focus
        .as_ref()
        .and_then(|(i, label)| place(&mut rows, x(tl.bars[*i].start), &focus_text(label)));
    let band_label: Vec<Option<(f64, usize)>> = tl
        .bands
        .iter()
        .map(|b| place(&mut rows, x(b.start), &short(&b.label)))
        .collect();
    let row_y = |r: usize| rows_top + r as f64 * ROW_H + 12.0;
    for (lx, r) in focus_label.iter() {
        let (_, label) = tl.focus.as_ref().expect("a focus label has a focus");
        texts.push(Rect::text(
            *lx,
            row_y(*r),
            focus_text(label).chars().count(),
        ));
    }
    for (b, l) in tl.bands.iter().zip(&band_label) {
        if let Some((lx, r)) = l {
            texts.push(Rect::text(*lx, row_y(*r), short(&b.label).chars().count()));
        }
    }
    let n_rows = rows.len();
    let lanes_top = rows_top + n_rows as f64 * ROW_H + 6.0;

    for (i, name) in tl.lanes.iter().enumerate() {
        let y = lanes_top + i as f64 * LANE_H + 16.0;
        texts.push(Rect::text(4.0, y, name.chars().count()));
    }

    // Bars: at least 2 px wide, a flagged one 10 px.
    let bar_x: Vec<(f64, f64)> = tl
        .bars
        .iter()
        .map(|b| {
            let x0 = x(b.start);
            let min = if b.flagged { 10.0 } else { 2.0 };
            (x0, x(b.end).max(x0 + min))
        })
        .collect();
    // Labels, lane by lane: flagged ones first, then those marked first, then the others, each
    // group in start order, each at its
    // bar's start when that leaves room after the previous one, else not drawn.
    let mut bar_label = vec![None; tl.bars.len()];
    let mut by_lane: Vec<Vec<usize>> = vec![Vec::new(); tl.lanes.len()];
    for (i, b) in tl.bars.iter().enumerate() {
        by_lane[b.lane].push(i);
    }
    for (lane, mut ids) in by_lane.into_iter().enumerate() {
        ids.sort_by_key(|&i| (!tl.bars[i].flagged, !tl.bars[i].first, tl.bars[i].start));
        let mut taken: Vec<(f64, f64)> = Vec::new();
        for i in ids {
            let w = text_w(short(&tl.bars[i].label).chars().count());
            let mut lx = bar_x[i].0.max(left) + 3.0;
            if tl.bars[i].flagged {
                lx = lx.min(right - w);
            }
            let free = taken
                .iter()
                .all(|&(a, b)| lx + w + GAP <= a || lx >= b + GAP);
            if lx + w <= right && free {
                taken.push((lx, lx + w));
                bar_label[i] = Some(lx);
                let y = lanes_top + lane as f64 * LANE_H + 16.0;
                texts.push(Rect::text(lx, y, short(&tl.bars[i].label).chars().count()));
            }
        }
    }
    let height = lanes_top + tl.lanes.len() as f64 * LANE_H + 6.0;
    Plan {
        left,
        width: right + RIGHT_PAD,
        height,
        avail_top,
        axis_top,
        rows_top,
        rows: n_rows,
        lanes_top,
        bar_x,
        bar_label,
        band_label,
        focus_label,
        ticks,
        buckets,
        texts,
    }
}

/// The timeline as a `<div>` with its tools and SVG; `n` makes its ids unique in the page.
pub(crate) fn write(s: &mut String, tl: &Timeline, n: usize) {
    let p = plan(tl);
    let right = p.left + PLOT_W;
    let rel = |t: u64| t.saturating_sub(tl.t0);
    let _ = write!(
        s,
        "<div class=\"tl\"><div class=\"tools\"><button type=\"button\" data-zoom=\"in\">+</button>\
         <button type=\"button\" data-zoom=\"out\">−</button>\
         <button type=\"button\" data-zoom=\"reset\">reset</button>\
         <span class=\"hint\">drag to pan · ctrl+wheel or double-click to zoom · \
         hover for details</span> <span class=\"range\">{} … {}</span></div>\
         <svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" \
         viewBox=\"0 0 {w} {h}\" data-left=\"{left}\" data-plot=\"{PLOT_W}\" data-t0=\"{t0}\" \
         data-span=\"{span}\" data-axis-top=\"{axis}\" data-rows-top=\"{rows}\" \
         data-rows=\"{nrows}\" data-row-h=\"{ROW_H}\" data-avail-top=\"{avail}\" \
         data-avail-h=\"{}\"><defs><clipPath id=\"clip{n}\"><rect x=\"{left}\" y=\"0\" \
         width=\"{PLOT_W}\" height=\"{h}\"/></clipPath></defs>",
        time(tl.t0),
        time(tl.t1),
        if tl.availability { AVAIL_H } else { 0.0 },
        w = p.width,
        h = p.height,
        left = p.left,
        t0 = tl.t0,
        span = tl.t1.saturating_sub(tl.t0).max(1),
        axis = p.axis_top,
        rows = p.rows_top,
        nrows = p.rows,
        avail = p.avail_top,
    );
    if tl.availability {
        let _ = write!(
            s,
            "<text class=\"cap\" x=\"4\" y=\"{}\">availability</text><g class=\"avail\">",
            p.avail_top + AVAIL_H / 2.0 + 4.0
        );
        write_buckets(s, &p, tl);
        s.push_str("</g>");
    }
    let _ = write!(
        s,
        "<g class=\"axis\"><line x1=\"{}\" x2=\"{right}\" y1=\"{y}\" y2=\"{y}\"/>",
        p.left,
        y = p.axis_top + AXIS_H - 2.0
    );
    for (tx, text) in &p.ticks {
        let _ = write!(
            s,
            "<line x1=\"{tx:.1}\" x2=\"{tx:.1}\" y1=\"{}\" y2=\"{}\"/>\
             <text x=\"{:.1}\" y=\"{}\">{}</text>",
            p.axis_top + 2.0,
            p.height,
            tx + 2.0,
            p.axis_top + 13.0,
            esc(text)
        );
    }
    s.push_str("</g><g class=\"lanes\">");
    for (i, name) in tl.lanes.iter().enumerate() {
        let y = p.lanes_top + i as f64 * LANE_H;
        let _ = write!(
            s,
            "<rect class=\"lane{}\" x=\"{}\" y=\"{y}\" width=\"{PLOT_W}\" height=\"{LANE_H}\"/>\
             <text class=\"name\" x=\"4\" y=\"{}\">{}</text>",
            if i % 2 == 1 { " odd" } else { "" },
            p.left,
            y + 16.0,
            esc(name)
        );
    }
    let _ = write!(s, "</g><g class=\"bands\" clip-path=\"url(#clip{n})\">");
    let x = |t: u64| p.left + rel(t) as f64 / tl.t1.saturating_sub(tl.t0).max(1) as f64 * PLOT_W;
    for b in &tl.bands {
        let x0 = x(b.start);
        let x1 = b.end.map_or(x0 + 2.0, |e| x(e).max(x0 + 2.0));
        let tip = match b.end {
            Some(e) => format!("{} — from {} to {}", b.label, time(b.start), time(e)),
            None => format!("{} — at {}", b.label, time(b.start)),
        };
        let _ = write!(
            s,
            "<rect class=\"{}\" data-a=\"{}\" data-b=\"{}\" x=\"{x0:.1}\" y=\"{}\" \
             width=\"{:.1}\" height=\"{}\"><title>{}</title></rect>",
            if b.end.is_some() { "band" } else { "instant" },
            rel(b.start),
            b.end.map_or(rel(b.start), rel),
            p.rows_top,
            x1 - x0,
            p.height - p.rows_top,
            esc(&tip)
        );
    }
    if let Some((i, _)) = &tl.focus {
        // From the violation's label (row 0) down to its bar, under the other labels.
        let x0 = p.bar_x[*i].0;
        let _ = write!(
            s,
            "<line class=\"vline\" data-a=\"{}\" x1=\"{x0:.1}\" x2=\"{x0:.1}\" y1=\"{}\" \
             y2=\"{}\"/>",
            rel(tl.bars[*i].start),
            p.rows_top + ROW_H,
            p.lanes_top + tl.bars[*i].lane as f64 * LANE_H + 1.0,
        );
    }
    s.push_str("</g><g class=\"blabels\">");
    let row_y = |r: usize| p.rows_top + r as f64 * ROW_H + 12.0;
    // An event's label: `[from, to]` is when its band is in effect (the label stays while
    // any of it is in view).
    let label = |s: &mut String, class: &str, text: &str, (from, to): (u64, u64), placed| {
        let t = if class == "bl" {
            short(text)
        } else {
            focus_text(text)
        };
        let (lx, r, hidden) = match placed {
            Some((lx, r)) => (lx, r, ""),
            None => (p.left, 0, " display=\"none\""),
        };
        let _ = write!(
            s,
            "<g class=\"{class}\" data-a=\"{}\" data-b=\"{}\"{hidden}><title>{}</title>\
             <rect x=\"{:.1}\" y=\"{}\" width=\"{:.1}\" height=\"{}\"/>\
             <text x=\"{lx:.1}\" y=\"{}\">{}</text></g>",
            rel(from),
            rel(to),
            esc(text),
            lx - 2.0,
            row_y(r) - 11.0,
            text_w(t.chars().count()) + 4.0,
            ROW_H - 2.0,
            row_y(r),
            esc(&t)
        );
    };
    if let Some((i, text)) = &tl.focus {
        let at = tl.bars[*i].start;
        label(s, "bl focus", text, (at, at), p.focus_label);
    }
    for (b, placed) in tl.bands.iter().zip(&p.band_label) {
        label(
            s,
            "bl",
            &b.label,
            (b.start, b.end.unwrap_or(b.start)),
            *placed,
        );
    }
    let _ = write!(s, "</g><g class=\"ops\" clip-path=\"url(#clip{n})\">");
    for (i, b) in tl.bars.iter().enumerate() {
        let (x0, x1) = p.bar_x[i];
        let y = p.lanes_top + b.lane as f64 * LANE_H;
        let focus = tl.focus.as_ref().is_some_and(|(f, _)| *f == i);
        let _ = write!(
            s,
            "<g class=\"op {}{}{}\" data-a=\"{}\" data-b=\"{}\" data-lane=\"{}\" data-o=\"{}\"{}{}>\
             <title>{}</title><rect x=\"{x0:.1}\" y=\"{}\" width=\"{:.1}\" height=\"16\" \
             rx=\"2\"/>",
            b.class,
            if b.open { " open" } else { "" },
            if b.flagged { " flagged" } else { "" },
            rel(b.start),
            rel(b.end),
            b.lane,
            match b.outcome {
                Outcome::Ok => "ok",
                Outcome::Fail => "fail",
                Outcome::Info => "info",
            },
            if b.first { " data-first=\"1\"" } else { "" },
            if focus { " id=\"violation\"" } else { "" },
            esc(&b.tip),
            y + 4.0,
            x1 - x0,
        );
        if focus {
            // A marker above the bar (its line up to the label is drawn with the bands).
            let _ = write!(
                s,
                "<path class=\"mark\" d=\"M{:.1} {} l10 0 l-5 7 z\"/>",
                x0 - 5.0,
                y - 3.0,
            );
        }
        s.push_str("</g>");
    }
    // Labels over all bars (a later bar would hide an earlier one's label), in bar order.
    s.push_str("</g><g class=\"olabels\">");
    for (i, b) in tl.bars.iter().enumerate() {
        let t = short(&b.label);
        let (lx, hidden) = match p.bar_label[i] {
            Some(lx) => (lx, ""),
            None => (p.bar_x[i].0 + 3.0, " display=\"none\""),
        };
        let _ = write!(
            s,
            "<text{} x=\"{lx:.1}\" y=\"{}\"{hidden}>{}</text>",
            if b.flagged { " class=\"flagged\"" } else { "" },
            p.lanes_top + b.lane as f64 * LANE_H + 16.0,
            esc(&t)
        );
    }
    s.push_str("</g></svg></div>");
}

/// The availability chart's bars: per window, the operations invoked in it by outcome,
/// stacked, scaled to the busiest window.
fn write_buckets(s: &mut String, p: &Plan, tl: &Timeline) {
    let max = p
        .buckets
        .iter()
        .map(|b| b.iter().sum::<usize>())
        .max()
        .unwrap_or(0)
        .max(1);
    let bw = PLOT_W / BUCKETS as f64;
    let span = tl.t1.saturating_sub(tl.t0).max(1) as f64;
    let base = p.avail_top + AVAIL_H;
    let _ = write!(
        s,
        "<line class=\"base\" x1=\"{}\" x2=\"{}\" y1=\"{base}\" y2=\"{base}\"/>",
        p.left,
        p.left + PLOT_W
    );
    for (i, b) in p.buckets.iter().enumerate() {
        let total: usize = b.iter().sum();
        if total == 0 {
            continue;
        }
        let from = tl.t0 + (span * i as f64 / BUCKETS as f64) as u64;
        let to = tl.t0 + (span * (i + 1) as f64 / BUCKETS as f64) as u64;
        let _ = write!(
            s,
            "<g><title>invoked {} … {}: {} ok, {} fail, {} info ({:.0}% ok)</title>",
            time(from),
            time(to),
            b[0],
            b[1],
            b[2],
            100.0 * b[0] as f64 / total as f64
        );
        let mut y = base;
        for (slot, class) in ["ok", "fail", "info"].iter().enumerate() {
            let h = b[slot] as f64 / max as f64 * AVAIL_H;
            if h > 0.0 {
                y -= h;
                let _ = write!(
                    s,
                    "<rect class=\"{class}\" x=\"{:.1}\" y=\"{y:.1}\" width=\"{:.1}\" \
                     height=\"{h:.1}\"/>",
                    p.left + i as f64 * bw + 0.5,
                    bw - 1.0
                );
            }
        }
        s.push_str("</g>");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bar(lane: usize, start: u64, end: u64, label: &str, flagged: bool) -> Bar {
        Bar {
            lane,
            start,
            end,
            open: false,
            class: "ok",
            outcome: Outcome::Ok,
            label: label.to_string(),
            tip: String::new(),
            flagged,
            first: false,
        }
    }

    fn assert_no_overlap(p: &Plan) {
        for (i, a) in p.texts.iter().enumerate() {
            for b in &p.texts[i + 1..] {
                assert!(!a.intersects(b), "{a:?} overlaps {b:?}");
            }
        }
    }

    /// 5 processes, 400 operations of 1–3 ms each over 1 s, with labels far wider than their
    /// bars; 30 events, 10 of them at the same instant and some at the right edge.
    fn dense() -> Timeline {
        let mut rng = ordeal_sys::rng::SplitMix64::new(7);
        let mut bars = Vec::new();
        let mut at = [0u64; 5];
        for _ in 0..400 {
            let lane = (rng.next_u64() % 5) as usize;
            let start = at[lane] + rng.next_u64() % 2_000_000;
            let end = start + 1_000_000 + rng.next_u64() % 2_000_000;
            at[lane] = end;
            bars.push(bar(lane, start, end, "read \"k3\" → 12345 (info)", false));
        }
        let end = bars.iter().map(|b| b.end).max().unwrap();
        bars.push(bar(
            2,
            end - 100,
            end,
            "the violating read, drawn last",
            true,
        ));
        let mut bands: Vec<Band> = (0..10)
            .map(|i| Band {
                start: 0,
                end: None,
                label: format!("n{i} started"),
            })
            .collect();
        for i in 0..20u64 {
            bands.push(Band {
                start: end - i * 7_000_000,
                end: (i % 2 == 0).then_some(end),
                label: format!("n{}: partition-{i}: partition n0 | n1,n2 (cut)", i % 3),
            });
        }
        Timeline {
            lanes: (0..5).map(|p| format!("process {p}")).collect(),
            focus: Some((bars.len() - 1, "✖ read → 3: cannot be linearized".into())),
            bars,
            bands,
            t0: 0,
            t1: end,
            availability: true,
        }
    }

    #[test]
    fn no_two_texts_of_a_dense_timeline_overlap() {
        let tl = dense();
        let p = plan(&tl);
        assert_no_overlap(&p);
        // Something of each kind is drawn: the focus label, event labels in several rows,
        // lane names, ticks, operation labels.
        assert_eq!(p.focus_label.map(|(_, r)| r), Some(0));
        // All rows taken: half of the 30 event labels found room, the others are on hover.
        assert_eq!(p.rows, MAX_ROWS);
        assert_eq!(p.band_label.iter().filter(|l| l.is_some()).count(), 15);
        assert_eq!(p.ticks.len(), 6);
        let shown = p.bar_label.iter().filter(|l| l.is_some()).count();
        assert_eq!(shown, 27, "labels of operations with room");
        // The flagged one is drawn, 10 px wide, its label inside the plot.
        let last = tl.bars.len() - 1;
        let (x0, x1) = p.bar_x[last];
        assert!((x1 - x0 - 10.0).abs() < 1e-9);
        let lx = p.bar_label[last].expect("the violation's label is drawn");
        let right = p.left + PLOT_W;
        assert!(lx + text_w(short(&tl.bars[last].label).chars().count()) <= right);
        // No event label passes the right edge.
        for (b, l) in tl.bands.iter().zip(&p.band_label) {
            if let Some((lx, _)) = l {
                assert!(*lx >= p.left && lx + text_w(short(&b.label).chars().count()) <= right);
            }
        }
    }

    #[test]
    fn labels_marked_first_win_over_earlier_ones() {
        let mut tl = dense();
        tl.bars = vec![
            bar(0, 0, 10, "a long label of an operation nobody needs", false),
            Bar {
                first: true,
                ..bar(0, 1_000_000, 1_000_010, "#2 write 17", false)
            },
        ];
        tl.focus = None;
        tl.t1 = 100_000_000;
        let p = plan(&tl);
        assert_eq!(p.bar_label[0], None);
        assert_eq!(p.bar_label[1], Some(p.bar_x[1].0 + 3.0));
    }

    #[test]
    fn the_availability_chart_counts_invocations_per_window_by_outcome() {
        let mut tl = dense();
        tl.bars.truncate(0);
        // Windows of 1000 ns: three invoked in the first, one in the fourth.
        for (start, outcome) in [
            (0, Outcome::Ok),
            (100, Outcome::Fail),
            (999, Outcome::Info),
            (3000, Outcome::Ok),
        ] {
            tl.bars.push(Bar {
                outcome,
                ..bar(0, start, start + 10, "x", false)
            });
        }
        tl.focus = None;
        tl.t1 = 60_000;
        let p = plan(&tl);
        assert_eq!(p.buckets[0], [1, 1, 1]);
        assert_eq!(p.buckets[3], [1, 0, 0]);
        assert_eq!(p.buckets.iter().flatten().sum::<usize>(), 4);
    }

    #[test]
    fn ticks_are_round_and_in_the_step_unit() {
        assert_eq!(tick_step(1e9, 8.0), 2e8);
        assert_eq!(tick_text(1.2e9, 2e8), "1.2 s");
        assert_eq!(tick_step(4e6, 8.0), 5e5);
        assert_eq!(tick_text(1.5e6, 5e5), "1.5 ms");
        assert_eq!(tick_text(2e4, 1e4), "20 µs");
        assert_eq!(tick_text(3e9, 1e9), "3 s");
        assert_eq!(short(&"x".repeat(60)).chars().count(), MAX_LABEL);
    }
}
