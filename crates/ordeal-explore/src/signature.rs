//! Failure signatures: what a failure looks like with run-specific details (numbers, ports,
//! paths, pids) abstracted away, so that fifty hits of one bug group into one entry.

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
/// at most `max`), for the signature and the report.
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

/// The signature of a failing run: its outcome and the first telling log line (the first
/// symptom; later lines are often consequences).
pub fn signature(outcome: &str, lines: &[String]) -> String {
    match lines.first() {
        Some(l) => format!("{outcome} | {l}"),
        None => outcome.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_addresses_are_abstracted() {
        assert_eq!(
            normalize("VIOLATION: op 8: GET k1 from node 1 (127.0.0.1:20288) returned NOTFOUND"),
            "VIOLATION: op N: GET kN from node N (N.N.N.N:N) returned NOTFOUND"
        );
    }

    #[test]
    fn equal_failures_share_a_signature_and_different_ones_do_not() {
        let a = signature(
            &outcome(Status::Fail, &["workload client ended: exit 1".into()], Path::new("/r/1")),
            &[normalize("client: VIOLATION: op 8: GET k1 from node 1 (127.0.0.1:20288) returned NOTFOUND, but SET k1 v3 was acknowledged")],
        );
        let b = signature(
            &outcome(Status::Fail, &["workload client ended: exit 1".into()], Path::new("/r/2")),
            &[normalize("client: VIOLATION: op 13: GET k3 from node 2 (127.0.0.1:31002) returned NOTFOUND, but SET k3 v17 was acknowledged")],
        );
        let c = signature(
            &outcome(Status::Fail, &["workload client ended: exit 1".into()], Path::new("/r/3")),
            &[normalize("client: VIOLATION: op 9: GET k1 from node 1 (127.0.0.1:20288) returned v2, but the last acknowledged SET was v7")],
        );
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(
            a,
            "fail: workload client ended: exit N | client: VIOLATION: op N: GET kN from node N (N.N.N.N:N) returned NOTFOUND, but SET kN vN was acknowledged"
        );
    }
}
