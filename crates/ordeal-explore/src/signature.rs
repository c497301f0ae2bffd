//! Failure signatures: the causes of a failing run, each a normalized sentence, so that fifty
//! hits of one bug group into one entry and two bugs never share one.
//!
//! A cause comes from one reason of the run's verdict (summary.json `verdict.reasons`, one
//! sentence per kind of problem) and, for a process that failed, from its logs. By kind, in
//! order of precedence (the first cause of a signature is its headline):
//!
//! 1. the history check: `history (kv): not linearizable: read misses a write` (the anomaly of
//!    the first violating operation the check names and that operation's function; keys,
//!    values and processes left out), `history check unknown (kv)`;
//! 2. the `[check]` command: `check failed (exit 1): MESSAGE`, the message being its first
//!    [flagged line](flagged), else the last non-empty line of its stderr, else of its stdout;
//! 3. a workload's exit: `workload client ended: exit 1`, followed by `: LINE` when the
//!    workload printed a [flagged line](flagged) (its first, stdout before stderr);
//! 4. a node's unexpected exit: `node n1 exited unexpectedly: killed by SIGSEGV`;
//! 5. a hang (`hung (blocked)`) or the run's timeout;
//! 6. anything else (watches, recoveries): the reason's first line, normalized;
//! 7. an error verdict: `error: ` and the reason's first line, normalized.
//!
//! Messages are normalized with [`abstract_text`]; exit codes, signals and participant names
//! are kept as they are. The signature is the distinct causes in that order, joined by `; `.
//! A reason that says nothing about the system (`the trace is incomplete: ...`) is no cause.

use ordeal_hb::Status;
use std::path::Path;

/// `text` with every run of digits replaced by `N` and the run directory by `RUN_DIR`.
pub fn normalize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_digits = false;
    for c in text.chars() {
        if c.is_ascii_digit() {
            if !in_digits {
                out.push('N');
            }
            in_digits = true;
        } else {
            in_digits = false;
            out.push(c);
        }
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The normalized outcome of a run: its status and the first line of each reason.
pub fn outcome(status: Status, reasons: &[String], run_dir: &Path) -> String {
    let dir = run_dir.display().to_string();
    let mut parts: Vec<String> = reasons
        .iter()
        .map(|r| r.replace(&dir, "RUN_DIR"))
        .map(|r| normalize(r.lines().next().unwrap_or_default()))
        .collect();
    parts.sort();
    parts.dedup();
    if parts.is_empty() {
        status.to_string()
    } else {
        format!("{status}: {}", parts.join("; "))
    }
}

/// Longest cause kept, in characters (a message is a sentence, not a dump).
const MAX_CAUSE: usize = 200;

/// A message with what differs between two hits of one bug abstracted: double-quoted strings
/// (keys, values) become `"…"`, hexadecimal words of 8 or more digits with a decimal digit
/// among them (addresses, hashes) `H`, `0x…` numbers `0xN`, every other run of digits `N`;
/// a run of equal words (`kN kN kN`, after the rest) becomes one (`kN…`); whitespace collapses.
pub fn abstract_text(text: &str) -> String {
    let mut quoted = String::with_capacity(text.len());
    let mut in_quote = false;
    for c in text.chars() {
        if c == '"' {
            if in_quote {
                quoted.push_str("…\"");
            } else {
                quoted.push('"');
            }
            in_quote = !in_quote;
        } else if !in_quote {
            quoted.push(c);
        }
    }
    if in_quote {
        // An unbalanced quote: what follows it is data too.
        quoted.push('…');
    }
    let mut words: Vec<String> = Vec::new();
    for w in quoted.split_whitespace() {
        let w = abstract_word(w);
        let bare = |s: &str| s.trim_end_matches([',', ';', '…']).to_string();
        match words.last_mut() {
            Some(last) if bare(last) == bare(&w) => {
                if !last.ends_with('…') {
                    *last = format!("{}…", bare(last));
                }
            }
            _ => words.push(w),
        }
    }
    let s = words.join(" ");
    if s.chars().count() > MAX_CAUSE {
        s.chars().take(MAX_CAUSE).chain(['…']).collect()
    } else {
        s
    }
}

/// One word of [`abstract_text`]: hex runs, then decimal runs.
fn abstract_word(w: &str) -> String {
    let mut out = String::with_capacity(w.len());
    let chars: Vec<char> = w.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '0' && chars.get(i + 1) == Some(&'x') {
            let end = (i + 2..chars.len())
                .find(|&j| !chars[j].is_ascii_hexdigit())
                .unwrap_or(chars.len());
            if end > i + 2 {
                out.push_str("0xN");
                i = end;
                continue;
            }
        }
        if c.is_ascii_alphanumeric() {
            let end = (i..chars.len())
                .find(|&j| !chars[j].is_ascii_alphanumeric())
                .unwrap_or(chars.len());
            let run = &chars[i..end];
            let hex = run.len() >= 8
                && run.iter().all(|c| c.is_ascii_hexdigit())
                && run.iter().any(|c| c.is_ascii_digit());
            if hex {
                out.push('H');
            } else {
                let mut in_digits = false;
                for &c in run {
                    if c.is_ascii_digit() {
                        if !in_digits {
                            out.push('N');
                        }
                        in_digits = true;
                    } else {
                        in_digits = false;
                        out.push(c);
                    }
                }
            }
            i = end;
            continue;
        }
        out.push(c);
        i += 1;
    }
    out
}

/// A flagged line: after its leading whitespace, the line starts with a word of two or more
/// capital letters (`A`–`Z`, `_` and `-` inside) immediately followed by `:`, like
/// `VIOLATION: ...`, `ERROR: ...` or `LOST_WRITE: ...`. The one rule by which a workload's
/// (or the check's) output adds to its cause.
pub fn flagged(line: &str) -> bool {
    let l = line.trim_start();
    let Some((word, _)) = l.split_once(':') else {
        return false;
    };
    word.len() >= 2
        && word.starts_with(|c: char| c.is_ascii_uppercase())
        && word.ends_with(|c: char| c.is_ascii_uppercase())
        && word
            .chars()
            .all(|c| c.is_ascii_uppercase() || c == '_' || c == '-')
}

fn log(run_dir: &Path, name: &str, ext: &str) -> String {
    std::fs::read_to_string(run_dir.join("logs").join(format!("{name}.{ext}"))).unwrap_or_default()
}

/// The first flagged line of `name`'s stdout, else of its stderr.
fn flagged_line(run_dir: &Path, name: &str) -> Option<String> {
    ["stdout", "stderr"].iter().find_map(|ext| {
        log(run_dir, name, ext)
            .lines()
            .find(|l| flagged(l))
            .map(|l| l.trim().to_string())
    })
}

/// What the `[check]` said: its first flagged line, else the last non-empty line of its
/// stderr, else of its stdout.
fn check_message(run_dir: &Path) -> Option<String> {
    let name = ordeal_experiment::CHECK_NAME;
    flagged_line(run_dir, name).or_else(|| {
        ["stderr", "stdout"].iter().find_map(|ext| {
            log(run_dir, name, ext)
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .map(|l| l.trim().to_string())
        })
    })
}

/// The anomaly of the operation a `history not linearizable` reason names: `process 7 read
/// "k0" → 5 reads 5, but the value is 17 (ORIGIN)`.
fn history_anomaly(op: &str) -> Option<String> {
    // Without its origin, the last parenthesis: `(history.jsonl:164)`.
    let op = op.rsplit_once(" (").map_or(op, |(body, _)| body);
    let mut words = op.strip_prefix("process ")?.split_whitespace();
    words.next()?; // the process
    let f = words.next()?;
    let but = ", but the value is ";
    Some(if op.contains(" reads nil") && op.contains(but) {
        "read misses a write".to_string()
    } else if op.contains(" reads ") && op.contains(but) {
        "read returns a value other than the current one".to_string()
    } else if op.contains(" cas expects ") && op.contains(but) {
        "cas expects a value other than the current one".to_string()
    } else if op.ends_with(" rejected") {
        format!("{f} rejected")
    } else {
        f.to_string()
    })
}

/// The cause of one verdict reason: (precedence, text); `None` for a reason that is no cause.
fn cause_of(status: Status, reason: &str, run_dir: &Path) -> Option<(u8, String)> {
    let dir = run_dir.display().to_string();
    let reason = reason.replace(&dir, "RUN_DIR");
    let first = reason.lines().next().unwrap_or_default().trim();
    if first.starts_with("the trace is incomplete") {
        return None;
    }
    if status == Status::Error {
        return Some((7, format!("error: {}", abstract_text(first))));
    }
    if let Some(rest) = first.strip_prefix("history not linearizable (") {
        let (model, detail) = rest.split_once("): ").unwrap_or((rest, ""));
        let op = detail
            .split("; ")
            .find(|s| s.starts_with("process "))
            .and_then(history_anomaly);
        return Some((
            1,
            match op {
                Some(a) => format!("history ({model}): not linearizable: {a}"),
                None => format!("history ({model}): not linearizable"),
            },
        ));
    }
    if let Some(rest) = first.strip_prefix("history check unknown (") {
        let model = rest.split_once(')').map_or(rest, |(m, _)| m);
        return Some((1, format!("history check unknown ({model})")));
    }
    if first.starts_with("history check") {
        return Some((1, abstract_text(first)));
    }
    if let Some(rest) = first.strip_prefix("check failed (") {
        let st = rest.split_once(')').map_or(rest, |(s, _)| s);
        let msg = check_message(run_dir)
            .map(|m| format!(": {}", abstract_text(&m.replace(&dir, "RUN_DIR"))))
            .unwrap_or_default();
        return Some((2, format!("check failed ({st}){msg}")));
    }
    if let Some((name, st)) = first
        .strip_prefix("workload ")
        .and_then(|r| r.split_once(" ended: "))
    {
        let line = flagged_line(run_dir, name)
            .map(|l| format!(": {}", abstract_text(&l.replace(&dir, "RUN_DIR"))))
            .unwrap_or_default();
        return Some((3, format!("workload {name} ended: {st}{line}")));
    }
    if first.starts_with("node ") && first.contains(" exited unexpectedly: ") {
        return Some((4, first.to_string()));
    }
    if let Some(rest) = first.strip_prefix("hung (") {
        let kind = rest.split_once(')').map_or(rest, |(k, _)| k);
        return Some((5, format!("hung ({kind})")));
    }
    if first.starts_with("timeout: ") {
        return Some((5, abstract_text(first)));
    }
    Some((6, abstract_text(first)))
}

/// The causes of a run's verdict (see the module doc), in order of precedence, distinct.
/// A failing run without any cause has its status as its one cause.
pub fn causes(status: Status, reasons: &[String], run_dir: &Path) -> Vec<String> {
    let mut all: Vec<(u8, String)> = reasons
        .iter()
        .filter_map(|r| cause_of(status, r, run_dir))
        .collect();
    all.sort();
    all.dedup();
    let mut out: Vec<String> = all.into_iter().map(|(_, c)| c).collect();
    if out.is_empty() && status != Status::Pass {
        out.push(status.to_string());
    }
    out
}

/// Whether a log line says what went wrong.
fn telling(line: &str) -> bool {
    let l = line.to_ascii_lowercase();
    [
        "violation",
        "error",
        "panic",
        "lost",
        "assert",
        "mismatch",
        "fail",
        "returned",
        "expected",
    ]
    .iter()
    .any(|w| l.contains(w))
}

/// The telling lines of the workloads' and the check's logs (normalized, distinct, in order;
/// at most `max`), shown in the report as what went wrong (not part of the signature).
pub fn failure_lines(run_dir: &Path, participants: &[String], max: usize) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let dir = run_dir.display().to_string();
    for name in participants {
        for ext in ["stdout", "stderr"] {
            let p = run_dir.join("logs").join(format!("{name}.{ext}"));
            let Ok(text) = std::fs::read_to_string(&p) else {
                continue;
            };
            for line in text.lines().filter(|l| telling(l)) {
                let n = normalize(&line.replace(&dir, "RUN_DIR"));
                let n = format!("{name}: {n}");
                if !out.contains(&n) {
                    out.push(n);
                    if out.len() >= max {
                        return out;
                    }
                }
            }
        }
    }
    out
}

/// The signature of a failing run: its [`causes`], joined by `; `.
pub fn signature(causes: &[String]) -> String {
    causes.join("; ")
}

#[cfg(test)]
mod tests;
