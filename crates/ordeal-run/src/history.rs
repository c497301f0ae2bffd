//! `[check] history`: after the run, the recorded history is checked for linearizability
//! (ordeal-history) and the result becomes part of the verdict; `history.html` draws the
//! operations with the run's faults and node starts and ends from trace.jsonl on the same
//! timeline (the workload clients record on the trace's clock, see
//! `ordeal_history::workload::CLOCK_ORIGIN_ENV`).

use std::path::Path;
use std::time::Duration;

use ordeal_events::Event;
use ordeal_experiment::HistoryCheck;
use ordeal_history::html::Mark;
use ordeal_history::{Budget, Format, Model};

/// The whole check is bounded: a history the search cannot decide in this time is `unknown`.
const TIME_LIMIT: Duration = Duration::from_secs(60);

/// What the check found, for the verdict and the terminal.
pub(crate) struct Outcome {
    /// A failure reason, when the history is not linearizable or cannot be read or decided.
    pub reason: Option<String>,
    /// One line for the progress output.
    pub line: String,
}

/// Checks `RUN_DIR/<file>` against the model; writes `history-check.txt` and `history.html`.
pub(crate) fn check(run_dir: &Path, hc: &HistoryCheck, events: &[Event]) -> Outcome {
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
    let text = ordeal_history::text_report(&report);
    let _ = std::fs::write(run_dir.join("history-check.txt"), &text);
    let html = ordeal_history::html::render_with_marks(&report, &hc.file, &marks(events));
    let _ = std::fs::write(run_dir.join("history.html"), html);
    let ops = report.operations.len();
    match &report.verdict {
        ordeal_history::Verdict::Linearizable => Outcome {
            reason: None,
            line: format!("history: {ops} operations, linearizable ({})", hc.model),
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
            }
        }
        ordeal_history::Verdict::Unknown(why) => Outcome {
            reason: Some(format!("history check unknown ({}): {why}", hc.model)),
            line: format!("history: {ops} operations, unknown: {why}"),
        },
    }
}

fn failed(reason: String) -> Outcome {
    Outcome {
        line: reason.clone(),
        reason: Some(reason),
    }
}

/// Faults and node starts and ends from the trace, on its clock.
pub(crate) fn marks(events: &[Event]) -> Vec<Mark> {
    let mut spawned = std::collections::HashSet::new();
    let mut out = Vec::new();
    for e in events {
        if e.call == "spawn" {
            spawned.insert(e.pid);
            out.push(Mark {
                time: e.ts,
                label: match &e.fault {
                    Some(f) => format!("{} started ({f})", e.node),
                    None => format!("{} started", e.node),
                },
            });
        } else if let Some(f) = &e.fault {
            // Effects of a partition on single calls would crowd the picture: only firings
            // and the fault events of their ends (heal, resume) are drawn.
            if !f.effect || e.call == "fault" {
                out.push(Mark {
                    time: e.ts + e.dur,
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
                label: format!("{} ended ({how})", e.node),
            });
        }
    }
    out.sort_by_key(|m| m.time);
    out
}
