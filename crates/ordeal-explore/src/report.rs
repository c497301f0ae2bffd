//! A campaign's outputs: explore.json, junit.xml, behaviours.svg, discovery.svg and a
//! self-contained report.html (inline CSS and SVG, no script, no network).

use std::fmt::Write as _;
use std::path::Path;

use crate::config::Config;
use crate::model::Outcome;
use crate::Error;

mod behaviours;
mod communication;
mod failures;

pub use communication::{communication_svg, communication_svg_marked};

pub fn write_all(out: &Path, o: &Outcome, cfg: &Config) -> Result<(), Error> {
    let write = |name: &str, text: &str| -> Result<(), Error> {
        let p = out.join(name);
        std::fs::write(&p, text).map_err(|e| Error::io(&p, e))
    };
    let json = serde_json::to_string_pretty(o).unwrap_or_default();
    write("explore.json", &(json + "\n"))?;
    write("junit.xml", &junit(o))?;
    let hist = histogram_svg(o);
    let disc = discovery_svg(o);
    write("behaviours.svg", &hist)?;
    write("discovery.svg", &disc)?;
    write("report.html", &html(out, o, cfg, &hist, &disc))?;
    Ok(())
}

/// Escapes text for XML and HTML (content and attribute values).
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c if c.is_control() && c != '\n' && c != '\t' => o.push('\u{FFFD}'),
            c => o.push(c),
        }
    }
    o
}

pub(crate) fn repro_text(f: &crate::Failure) -> String {
    match &f.reproduction {
        Some(r) => format!("{} ({}/{} reruns failed)", r.verdict, r.failed, r.runs),
        None => "not measured".into(),
    }
}

/// `original 6/10, minimal 9/10`: the first hit's schedule and the minimal one, rerun.
pub fn rates_text(f: &crate::Failure) -> Option<String> {
    let (o, m) = (f.original_reproduction.as_ref()?, f.reproduction.as_ref()?);
    if f.without_faults {
        return None;
    }
    Some(format!(
        "original {}/{}, minimal {}/{}",
        o.failed, o.runs, m.failed, m.runs
    ))
}

/// What the baselines say of a failure, when one failed: `None` when it is credited to its
/// faults.
pub fn baseline_text(f: &crate::Failure) -> Option<String> {
    if f.above_baseline {
        return None;
    }
    let rate = |r: &Option<crate::Reproduction>| {
        r.as_ref()
            .map_or("not measured".to_string(), crate::baseline::rate_text)
    };
    Some(if f.without_faults {
        format!(
            "fails without any fault, fault-free rate {}: not above the fault-free rate: not credited to its faults",
            rate(&f.fault_free)
        )
    } else {
        format!(
            "not above the fault-free rate: not credited to its faults (with faults {}, fault-free {})",
            rate(&f.reproduction),
            rate(&f.fault_free)
        )
    })
}

/// JUnit XML: one test case per distinct failure (a passing one when there is none).
pub fn junit(o: &Outcome) -> String {
    let suite = format!("ordeal-explore.{}", o.experiment);
    let n = o.failures.len().max(1);
    let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        x,
        "<testsuites name=\"ordeal explore\" tests=\"{n}\" failures=\"{}\" errors=\"0\" time=\"{:.3}\">",
        o.failures.len(),
        o.elapsed_s
    );
    let _ = writeln!(
        x,
        "  <testsuite name=\"{}\" tests=\"{n}\" failures=\"{}\" errors=\"0\" time=\"{:.3}\">",
        esc(&suite),
        o.failures.len(),
        o.elapsed_s
    );
    let _ = writeln!(x, "    <properties>");
    for (k, v) in [
        ("strategy", o.strategy.clone()),
        ("seed", o.seed.to_string()),
        ("runs", o.runs.to_string()),
        ("unique_behaviours", o.unique_behaviours.to_string()),
    ] {
        let _ = writeln!(x, "      <property name=\"{k}\" value=\"{}\"/>", esc(&v));
    }
    let _ = writeln!(x, "    </properties>");
    if o.failures.is_empty() {
        let _ = writeln!(
            x,
            "    <testcase classname=\"{}\" name=\"no failure in {} runs\" time=\"{:.3}\"/>",
            esc(&suite),
            o.runs,
            o.explore_s
        );
    }
    for f in &o.failures {
        let cause = f
            .cause
            .as_ref()
            .map(|c| format!("cause: {c}\n"))
            .unwrap_or_default();
        let mut body = format!(
            "{}\n{cause}hits: {} exploration runs\nreproduction: {}\nreplay: {}\n\nminimal schedule:\n{}",
            f.signature,
            f.hits,
            repro_text(f),
            f.replay,
            f.minimal_schedule
        );
        if let Some(b) = baseline_text(f) {
            body = format!("{b}\n{body}");
        }
        if let Some(a) = &o.baseline_failed {
            body = format!("{a}\n{body}");
        }
        let _ = writeln!(
            x,
            "    <testcase classname=\"{}\" name=\"{}: {}\">",
            esc(&suite),
            esc(&f.id),
            esc(&f.signature)
        );
        let _ = writeln!(
            x,
            "      <failure message=\"{}\" type=\"{}\">{}</failure>",
            esc(&f.signature),
            esc(&repro_text(f)),
            esc(&body)
        );
        let _ = writeln!(x, "    </testcase>");
    }
    x.push_str("  </testsuite>\n</testsuites>\n");
    x
}

fn status_colour(outcome: &str) -> &'static str {
    if outcome.starts_with("pass") {
        "#4c9f70"
    } else if outcome.starts_with("fail") {
        "#d1495b"
    } else {
        "#8d8d8d"
    }
}

/// Bar chart: runs per unique behaviour, most frequent first, coloured by outcome.
pub fn histogram_svg(o: &Outcome) -> String {
    let (w, h, left, bottom, top) = (640.0, 240.0, 50.0, 30.0, 24.0);
    let n = o.behaviours.len().max(1) as f64;
    let max = o
        .behaviours
        .iter()
        .map(|b| b.runs)
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let plot_w = w - left - 10.0;
    let plot_h = h - bottom - top;
    let bw = (plot_w / n).max(1.0);
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" font-family=\"sans-serif\" font-size=\"11\">\n"
    );
    let _ = writeln!(
        s,
        "<text x=\"{left}\" y=\"15\" font-size=\"13\">Runs per unique behaviour ({} behaviours, {} runs)</text>",
        o.behaviours.len(),
        o.runs
    );
    let _ = writeln!(
        s,
        "<line x1=\"{left}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#333\"/>",
        h - bottom,
        w - 10.0,
        h - bottom
    );
    let _ = writeln!(
        s,
        "<line x1=\"{left}\" y1=\"{top}\" x2=\"{left}\" y2=\"{}\" stroke=\"#333\"/>",
        h - bottom
    );
    for (i, b) in o.behaviours.iter().enumerate() {
        let bh = plot_h * b.runs as f64 / max;
        let x = left + i as f64 * bw;
        let _ = writeln!(
            s,
            "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{bh:.1}\" fill=\"{}\"><title>{}: {} runs, first run {}, {}</title></rect>",
            h - bottom - bh,
            (bw - 1.0).max(0.5),
            status_colour(&b.outcome),
            b.fingerprint,
            b.runs,
            b.first_run,
            esc(&b.outcome)
        );
    }
    let _ = writeln!(
        s,
        "<text x=\"{}\" y=\"{top}\" text-anchor=\"end\">{max}</text>",
        left - 4.0
    );
    let _ = writeln!(
        s,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">0</text>",
        left - 4.0,
        h - bottom
    );
    let _ = writeln!(
        s,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">unique behaviours, most frequent first (green pass, red fail, grey error)</text>",
        left + plot_w / 2.0,
        h - 8.0
    );
    s.push_str("</svg>\n");
    s
}

/// Line chart: unique behaviours against runs.
pub fn discovery_svg(o: &Outcome) -> String {
    let (w, h, left, bottom, top) = (640.0, 240.0, 50.0, 30.0, 24.0);
    let max_x = o.discovery.last().map(|d| d.0).unwrap_or(1).max(1) as f64;
    let max_y = o.discovery.last().map(|d| d.1).unwrap_or(1).max(1) as f64;
    let plot_w = w - left - 10.0;
    let plot_h = h - bottom - top;
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" font-family=\"sans-serif\" font-size=\"11\">\n"
    );
    let _ = writeln!(
        s,
        "<text x=\"{left}\" y=\"15\" font-size=\"13\">Discovery: unique behaviours after each run</text>"
    );
    let _ = writeln!(
        s,
        "<line x1=\"{left}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#333\"/><line x1=\"{left}\" y1=\"{top}\" x2=\"{left}\" y2=\"{}\" stroke=\"#333\"/>",
        h - bottom,
        w - 10.0,
        h - bottom,
        h - bottom
    );
    let pts: Vec<String> = std::iter::once((0u64, 0usize))
        .chain(o.discovery.iter().copied())
        .map(|(x, y)| {
            format!(
                "{:.1},{:.1}",
                left + plot_w * x as f64 / max_x,
                h - bottom - plot_h * y as f64 / max_y
            )
        })
        .collect();
    let _ = writeln!(
        s,
        "<polyline fill=\"none\" stroke=\"#2e6fdb\" stroke-width=\"2\" points=\"{}\"/>",
        pts.join(" ")
    );
    let _ = writeln!(
        s,
        "<text x=\"{}\" y=\"{top}\" text-anchor=\"end\">{max_y}</text><text x=\"{}\" y=\"{}\" text-anchor=\"end\">0</text>",
        left - 4.0,
        left - 4.0,
        h - bottom
    );
    let _ = writeln!(
        s,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{max_x} runs</text>",
        w - 10.0,
        h - 8.0
    );
    s.push_str("</svg>\n");
    s
}

/// The last `n` lines of a file.
pub(crate) fn tail(p: &Path, n: usize) -> Option<String> {
    let text = std::fs::read_to_string(p).ok()?;
    let lines: Vec<&str> = text.lines().collect();
    let from = lines.len().saturating_sub(n);
    Some(lines[from..].join("\n"))
}

const CSS: &str = "body{font-family:sans-serif;margin:2em;max-width:1200px;color:#222}\
h1{font-size:1.6em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.6em}\
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left;vertical-align:top}\
pre{background:#f5f5f5;padding:.6em;overflow-x:auto;font-size:12px}code{background:#f0f0f0;padding:0 .2em}\
.fail{color:#b00020;font-weight:bold}.alarm{color:#fff;background:#b00020;padding:.5em;font-weight:bold}.pass{color:#2b7a4b;font-weight:bold}.graph{overflow:auto;max-height:700px;border:1px solid #ddd}.card{border:2px solid #b00020;border-radius:6px;padding:.2em 1em;margin:.8em 0}.card h3{color:#b00020}.raw{background:#fff3f3}.at{color:#555}\
details{margin:.4em 0}";

/// The campaign's settings and counts, collapsed: the end of the report.
fn settings(out: &Path, o: &Outcome) -> String {
    let mut h = String::new();
    let _ = writeln!(
        h,
        "<h2>Summary</h2>\n<details id=\"settings\"><summary>Settings and counts of the campaign</summary><table>"
    );
    let m = &o.mean_phases_ms;
    let rows: Vec<(&str, String)> = vec![
        ("experiment", o.experiment.clone()),
        (
            "variables set",
            if o.set.is_empty() {
                "none".to_string()
            } else {
                o.set.join(", ")
            },
        ),
        ("campaign directory", out.display().to_string()),
        ("strategy", o.strategy.clone()),
        ("seed", o.seed.to_string()),
        ("parallel runs (-j)", o.jobs.to_string()),
        ("stopped because", o.stopped.clone()),
        (
            "exploration runs",
            format!("{} ({} fault-free baselines)", o.runs, o.baseline_runs),
        ),
        (
            "baselines",
            format!(
                "{} run(s), {} failed; behaviours: {}",
                o.baselines.runs,
                o.baselines.failed,
                o.baseline_behaviours
                    .iter()
                    .map(|b| format!("{} ×{}", b.fingerprint, b.runs))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ),
        ("shrinking runs", o.shrink_runs.to_string()),
        ("reproduction reruns", o.rerun_runs.to_string()),
        ("unique behaviours", o.unique_behaviours.to_string()),
        (
            "candidates",
            format!(
                "{} single faults mined, {} schedules tried, {} single/extension candidates and {} pairs remaining",
                o.candidates.mined, o.candidates.tried, o.candidates.remaining, o.candidates.remaining_pairs
            ),
        ),
        (
            "tried by kind",
            o.candidates
                .tried_by_kind
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", "),
        ),
        ("runs that ended in error", o.errors.len().to_string()),
        (
            "time",
            format!(
                "{:.1} s in all, exploration {:.1} s ({:.0} runs/min)",
                o.elapsed_s, o.explore_s, o.runs_per_minute
            ),
        ),
        (
            "mean run (ms)",
            format!(
                "{:.0}: {}",
                o.mean_run_ms,
                m.named()
                    .iter()
                    .map(|(k, v)| format!("{k} {v:.0}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ),
        (
            "fault model",
            format!(
                "{}; long faults {} ms, restart after {} ms, at most {} faults and {} disruptive per schedule",
                o.model
                    .actions
                    .iter()
                    .map(|a| a.name())
                    .collect::<Vec<_>>()
                    .join(", "),
                o.model.long.as_millis(),
                o.model.restart_after.as_millis(),
                o.model.max_faults,
                o.model.max_disruptions
            ),
        ),
    ];
    for (k, v) in rows {
        let _ = writeln!(h, "<tr><th>{}</th><td>{}</td></tr>", esc(k), esc(&v));
    }
    h.push_str("</table></details>\n");
    h
}

pub fn html(out: &Path, o: &Outcome, cfg: &Config, hist: &str, disc: &str) -> String {
    let differences = behaviours::differences(out, &o.behaviours);
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>ordeal explore: {}</title><style>{CSS}</style></head><body>\n",
        esc(&o.experiment)
    );
    let _ = writeln!(h, "<h1>ordeal explore: {}</h1>", esc(&o.experiment));
    let verdict = if o.failures.is_empty() {
        format!(
            "<span class=\"pass\">no failure found in {} runs</span>",
            o.runs
        )
    } else {
        format!(
            "<span class=\"fail\">{} distinct failure(s)</span> in {} failing exploration run(s)",
            o.failures.len(),
            o.failures.iter().map(|f| f.hits).sum::<u64>()
        )
    };
    if let Some(alarm) = &o.baseline_failed {
        let _ = writeln!(h, "<p class=\"alarm\">{}</p>", esc(alarm));
        if let Some(line) = o.baselines.rate_line() {
            let _ = writeln!(h, "<p>{}</p>", esc(&line));
        }
        let _ = writeln!(
            h,
            "<p>Causes of the failing baselines:</p><ul>{}</ul>",
            o.baselines
                .causes
                .iter()
                .map(|c| format!("<li><code>{}</code></li>", esc(c)))
                .collect::<String>()
        );
    }
    let _ = writeln!(h, "<p>{verdict}</p>");
    // What a person came for first: the failures, each with its cause, rate, minimal
    // schedule and replay command; the campaign's settings last.
    h.push_str(&failures::section(out, o, cfg));
    h.push_str("<h2>Behaviours</h2>\n");
    h.push_str(hist);
    h.push_str(disc);
    h.push_str("<details><summary>Every unique behaviour</summary><table><tr><th>fingerprint</th><th>runs</th><th>first run</th><th>outcome</th></tr>\n");
    for b in &o.behaviours {
        let _ = writeln!(
            h,
            "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td></tr>",
            b.fingerprint,
            b.runs,
            b.first_run,
            esc(&b.outcome)
        );
    }
    h.push_str("</table></details>\n");
    h.push_str(&differences);
    if !o.errors.is_empty() {
        h.push_str("<h2>Runs that ended in error</h2><table><tr><th>run</th><th>faults</th><th>error</th></tr>\n");
        for e in &o.errors {
            let _ = writeln!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&e.dir),
                esc(&e.faults.join("; ")),
                esc(e.error.as_deref().unwrap_or(e.status.as_str()))
            );
        }
        h.push_str("</table>\n");
    }
    h.push_str("<h2>Runs</h2><details><summary>Every run of the campaign</summary><table><tr><th>run</th><th>phase</th><th>faults</th><th>fired</th><th>status</th><th>behaviour</th></tr>\n");
    for r in &o.run_log {
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code>{}</td></tr>",
            esc(&r.dir),
            r.phase,
            esc(&r.faults.join("; ")),
            esc(&r.fired.join("; ")),
            esc(r.status.as_str()),
            esc(r.fingerprint.as_deref().unwrap_or("-")),
            if r.new_behaviour { " new" } else { "" }
        );
    }
    h.push_str("</table></details>\n");
    h.push_str(&settings(out, o));
    h.push_str("</body></html>\n");
    h
}
