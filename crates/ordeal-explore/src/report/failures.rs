//! The report's failures: first a card per failure (its cause, the raw log line next to its
//! normalized signature, its rate, minimal schedule and replay command), above the fold; then
//! each failure's details (every count, the sequence diagram with the violating operation in
//! red, logs, snapshots).

use std::fmt::Write as _;
use std::path::Path;

use ordeal_hb::Cause;

use super::communication::communication_svg_marked;
use super::{baseline_text, esc, rates_text, repro_text, tail};
use crate::config::Config;
use crate::model::Outcome;

/// The line a cause was read from, as it was written, with where: the failing workload's or
/// check's log line (`text`, `logs/client.stdout:1`), a history's operation (`at`).
pub(crate) fn raw_line(c: &Cause) -> Option<(String, String)> {
    match c {
        Cause::Workload { log: Some(l), .. }
        | Cause::Node { log: Some(l), .. }
        | Cause::Check { log: Some(l), .. } => {
            Some((l.text.clone(), format!("{}:{}", l.file, l.line)))
        }
        Cause::History {
            op, at: Some(at), ..
        } => Some((op.clone(), at.clone())),
        _ => None,
    }
}

/// A failure at a glance: what a person needs to see before scrolling.
fn card(f: &crate::Failure) -> String {
    let mut h = String::new();
    let _ = writeln!(
        h,
        "<div class=\"card\" id=\"{}\"><h3>{}: {}</h3>",
        esc(&f.id),
        esc(&f.id),
        esc(&f
            .cause
            .as_ref()
            .map_or_else(|| f.signature.clone(), |c| c.to_string()))
    );
    h.push_str("<table>\n");
    let raw = f.cause.as_ref().and_then(raw_line);
    let _ = writeln!(
        h,
        "<tr><th>raw line</th><td>{}</td></tr>",
        match &raw {
            Some((text, at)) => format!(
                "<code class=\"raw\">{}</code> <span class=\"at\">{}</span>",
                esc(text),
                esc(at)
            ),
            None => "-".into(),
        }
    );
    let _ = writeln!(
        h,
        "<tr><th>signature</th><td><code class=\"signature\">{}</code></td></tr>",
        esc(&f.signature)
    );
    let rate = match rates_text(f) {
        Some(r) => format!("{} hit(s); {}; {r}", f.hits, repro_text(f)),
        None => format!("{} hit(s); {}", f.hits, repro_text(f)),
    };
    let _ = writeln!(h, "<tr><th>rate</th><td>{}</td></tr>", esc(&rate));
    let _ = writeln!(
        h,
        "<tr><th>minimal schedule</th><td><pre>{}</pre></td></tr>",
        esc(&f.minimal_schedule)
    );
    let _ = writeln!(
        h,
        "<tr><th>replay</th><td><code>{}</code></td></tr></table></div>",
        esc(&f.replay)
    );
    h
}

/// The failures section: the cards, then every failure's details.
pub(crate) fn section(out: &Path, o: &Outcome, cfg: &Config) -> String {
    let mut h = String::new();
    h.push_str("<h2 id=\"failures\">Failures</h2>\n");
    if o.failures.is_empty() {
        h.push_str("<p>None.</p>\n");
        return h;
    }
    for f in &o.failures {
        h.push_str(&card(f));
    }
    let participants: Vec<String> = cfg
        .experiment
        .node_names()
        .chain(cfg.experiment.workload_names())
        .map(str::to_string)
        .chain(std::iter::once(ordeal_experiment::CHECK_NAME.to_string()))
        .collect();
    for f in &o.failures {
        let _ = writeln!(
            h,
            "<h3 id=\"{}-details\">{}: details</h3>",
            esc(&f.id),
            esc(&f.id)
        );
        h.push_str("<table>\n");
        let rows: Vec<(&str, String)> = vec![
            (
                "cause",
                f.cause.as_ref().map_or("-".into(), |c| c.to_string()),
            ),
            (
                "hits",
                format!(
                    "{} exploration run(s): {}",
                    f.hits,
                    f.runs
                        .iter()
                        .map(|r| r.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ),
            ("causes", f.causes.join("\n")),
            ("reproduction", repro_text(f)),
            ("rates", rates_text(f).unwrap_or_else(|| "-".into())),
            (
                "fault-free",
                baseline_text(f).unwrap_or_else(|| match &f.fault_free {
                    Some(r) => format!(
                        "above the fault-free rate {}: credited to its faults",
                        crate::baseline::rate_text(r)
                    ),
                    None => "every baseline passed".into(),
                }),
            ),
            (
                "shrinking",
                format!(
                    "{} fault(s) → {} fault(s) in {} runs",
                    f.original_faults.len(),
                    f.minimal_faults.len(),
                    f.shrink_runs
                ),
            ),
            ("minimal faults", f.minimal_faults.join("; ")),
            (
                "schedules rerun",
                f.measured
                    .iter()
                    .map(|m| {
                        format!(
                            "{}: {} → {}",
                            m.schedule,
                            m.faults.join("; "),
                            crate::baseline::rate_text(&m.reproduction)
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n"),
            ),
            ("what went wrong", f.lines.join("\n")),
            ("run shown", f.run_dir.clone()),
        ];
        for (k, v) in rows {
            let _ = writeln!(
                h,
                "<tr><th>{}</th><td>{}</td></tr>",
                esc(k),
                esc(&v).replace('\n', "<br>")
            );
        }
        let _ = writeln!(
            h,
            "<tr><th>replay</th><td><code>{}</code></td></tr></table>",
            esc(&f.replay)
        );
        let _ = writeln!(
            h,
            "<p>Minimal schedule (<code>failures/{}/schedule.toml</code>):</p><pre>{}</pre>",
            esc(&f.id),
            esc(&f.minimal_schedule)
        );
        let run = out.join(&f.run_dir);
        h.push_str(
            "<p>Communication of the failing run (faulted events and the violating operation in red; hover for details):</p>\n",
        );
        // The run shown may be another hit than the first: its own cause names its operation.
        let shown_cause = std::fs::read(run.join("summary.json"))
            .ok()
            .and_then(|b| serde_json::from_slice::<ordeal_hb::Summary>(&b).ok())
            .and_then(|s| s.verdict.cause);
        match communication_svg_marked(&run, shown_cause.as_ref().or(f.cause.as_ref())) {
            Some(svg) => {
                let _ = writeln!(h, "<div class=\"graph\">{svg}</div>");
            }
            None => h.push_str("<p>(trace not available)</p>\n"),
        }
        h.push_str("<p>Logs of the failing run (last 40 lines each):</p>\n");
        for p in &participants {
            for ext in ["stdout", "stderr"] {
                let file = run.join("logs").join(format!("{p}.{ext}"));
                if let Some(t) = tail(&file, 40).filter(|t| !t.is_empty()) {
                    let _ = writeln!(
                        h,
                        "<details><summary>{p}.{ext}</summary><pre>{}</pre></details>",
                        esc(&t)
                    );
                }
            }
        }
        // Snapshots of the failing run (summary.json `snapshots[]`, paths relative to the
        // run): the text stacks inline, the JSON linked.
        let snapshots = std::fs::read(run.join("summary.json"))
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|v| v.get("snapshots").and_then(|s| s.as_array()).cloned())
            .unwrap_or_default();
        for snap in &snapshots {
            let reason = snap["reason"].as_str().unwrap_or("snapshot");
            let text = snap["text"]
                .as_str()
                .and_then(|t| std::fs::read_to_string(run.join(t)).ok());
            let json = snap["json"].as_str().unwrap_or("");
            let link = format!("{}/{json}", f.run_dir);
            if let Some(text) = text {
                let _ = writeln!(
                    h,
                    "<details><summary>Snapshot on {} (threads, stacks, fds; <a href=\"{}\">json</a>)</summary><pre>{}</pre></details>",
                    esc(reason),
                    esc(&link),
                    esc(&text)
                );
            }
        }
        if f.original_schedule != f.minimal_schedule {
            let _ = writeln!(
                h,
                "<details><summary>Original schedule (run {})</summary><pre>{}</pre></details>",
                f.first_run,
                esc(&f.original_schedule)
            );
        }
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use ordeal_hb::LogLine;

    #[test]
    fn the_raw_line_is_the_log_line_as_written_with_its_place() {
        let w = Cause::Workload {
            name: "client".into(),
            status: "exit 1".into(),
            log: Some(LogLine {
                file: "logs/client.stdout".into(),
                line: 3,
                text: "VIOLATION: op 13: GET k3 returned NOTFOUND".into(),
            }),
        };
        assert_eq!(
            raw_line(&w),
            Some((
                "VIOLATION: op 13: GET k3 returned NOTFOUND".into(),
                "logs/client.stdout:3".into()
            ))
        );
        let h = Cause::History {
            model: "kv".into(),
            key: Some("k3".into()),
            op: "process 2 read k3 → nil".into(),
            anomaly: "reads nil".into(),
            at: Some("history.jsonl:9".into()),
            contradicts: None,
        };
        assert_eq!(
            raw_line(&h),
            Some(("process 2 read k3 → nil".into(), "history.jsonl:9".into()))
        );
        let silent = Cause::Check {
            status: "exit 2".into(),
            log: None,
        };
        assert_eq!(raw_line(&silent), None);
    }
}
