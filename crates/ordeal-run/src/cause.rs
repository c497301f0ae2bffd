//! The verdict's cause ([`Cause`], `verdict.cause` in summary.json): what a person reads
//! first when a run did not pass, chosen from what the run knows rather than read back from
//! the reasons' text.
//!
//! In order: the history check's violating operation; the `[check]`'s message; the first
//! failed workload (one whose logs tell why first); a node that exited without a fault
//! explaining it; else the verdict's first reason. An `error` verdict (the run itself went
//! wrong) names a node only when one exited, else its reason. A process's message is the
//! last line of its logs matching the experiment's `failure_pattern` (stderr first, then
//! stdout), with the file and the line number.

use crate::supervisor::Started;
use ordeal_hb::{Cause, LogLine, Status, Verdict};
use ordeal_tracer::ExitStatus;
use regex::Regex;
use std::io::BufRead;
use std::path::Path;

/// Longest line text kept in a cause, in characters.
const MAX_TEXT: usize = 300;

/// The cause of `verdict` (None for a pass). `history`: what the history check found, when
/// it failed.
pub(crate) fn find(
    verdict: &Verdict,
    started: &[Started],
    run_dir: &Path,
    pattern: &Regex,
    history: Option<Cause>,
) -> Option<Cause> {
    if verdict.status == Status::Pass {
        return None;
    }
    let failed = |s: &&Started| match s.exit {
        Some(ExitStatus::Code(0)) | None => false,
        Some(_) => !(s.role == "node" && s.exit_explained),
    };
    let pick = |role: &str| {
        let all: Vec<(&Started, Option<LogLine>)> = started
            .iter()
            .filter(|s| s.role == role)
            .filter(failed)
            .map(|s| (s, telling_line(run_dir, &s.name, pattern)))
            .collect();
        let i = all.iter().position(|(_, l)| l.is_some()).unwrap_or(0);
        all.into_iter().nth(i)
    };
    let status = |s: &Started| s.exit.map(|e| e.to_string()).unwrap_or_default();
    if verdict.status != Status::Error {
        if history.is_some() {
            return history;
        }
        if let Some(c) = started.iter().filter(|s| s.role == "check").rfind(failed) {
            let log =
                telling_line(run_dir, &c.name, pattern).or_else(|| last_line(run_dir, &c.name));
            return Some(Cause::Check {
                status: status(c),
                log,
            });
        }
        if let Some((w, log)) = pick("workload") {
            return Some(Cause::Workload {
                name: w.name.clone(),
                status: status(w),
                log,
            });
        }
    }
    if let Some((n, log)) = pick("node") {
        return Some(Cause::Node {
            name: n.name.clone(),
            status: status(n),
            log,
        });
    }
    verdict
        .reasons
        .iter()
        .find(|r| !r.starts_with("the trace is incomplete"))
        .or(verdict.reasons.first())
        .map(|r| Cause::Other {
            message: r.lines().next().unwrap_or_default().trim().to_string(),
        })
}

/// The last line of `logs/NAME.stderr` matching `pattern`, else of `logs/NAME.stdout`.
pub(crate) fn telling_line(run_dir: &Path, name: &str, pattern: &Regex) -> Option<LogLine> {
    ["stderr", "stdout"]
        .iter()
        .find_map(|ext| last_in(run_dir, name, ext, |l| pattern.is_match(l)))
}

/// The last non-empty line of `logs/NAME.stderr`, else of `logs/NAME.stdout`.
fn last_line(run_dir: &Path, name: &str) -> Option<LogLine> {
    ["stderr", "stdout"]
        .iter()
        .find_map(|ext| last_in(run_dir, name, ext, |l| !l.trim().is_empty()))
}

/// The last line of `RUN_DIR/logs/NAME.EXT` that `keep` accepts, read as a stream (a log
/// may be large; invalid UTF-8 is replaced).
fn last_in(run_dir: &Path, name: &str, ext: &str, keep: impl Fn(&str) -> bool) -> Option<LogLine> {
    let file = format!("logs/{name}.{ext}");
    let f = std::fs::File::open(run_dir.join(&file)).ok()?;
    let mut r = std::io::BufReader::new(f);
    let mut buf = Vec::new();
    let mut n = 0u64;
    let mut found: Option<(u64, String)> = None;
    loop {
        buf.clear();
        match r.read_until(b'\n', &mut buf) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        n += 1;
        let line = String::from_utf8_lossy(&buf);
        let line = line.trim_end_matches(['\n', '\r']);
        if keep(line) {
            found = Some((n, cut(line.trim())));
        }
    }
    found.map(|(line, text)| LogLine { file, line, text })
}

/// `s` cut to [`MAX_TEXT`] characters, with `…` when cut.
fn cut(s: &str) -> String {
    match s.char_indices().nth(MAX_TEXT) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn started(name: &str, role: &'static str, exit: Option<ExitStatus>) -> Started {
        Started {
            name: name.into(),
            role,
            pid: 1,
            exit,
            exited_at: None,
            restarted: false,
            exit_explained: false,
        }
    }

    fn dir_with(logs: &[(&str, &str)]) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("logs")).unwrap();
        for (f, text) in logs {
            std::fs::write(d.path().join("logs").join(f), text).unwrap();
        }
        d
    }

    fn default_pattern() -> Regex {
        Regex::new(ordeal_experiment::DEFAULT_FAILURE_PATTERN).unwrap()
    }

    #[test]
    fn a_failed_workload_is_told_by_its_last_matching_line_with_file_and_line() {
        let d = dir_with(&[
            (
                "client.stderr",
                "connecting\nVIOLATION: GET k1 returned NOTFOUND\nretrying\nVIOLATION: GET k3 \
                 returned NOTFOUND, but SET k3 v7 was acknowledged\nbye\n",
            ),
            // A tally in lower case is no finding; stderr is read first anyway.
            ("client.stdout", "client: 40 ops, 1 violations\n"),
        ]);
        let v = Verdict::fail(vec!["workload client ended: exit 1".into()]);
        let s = [
            started("n0", "node", Some(ExitStatus::Signal(9))),
            started("client", "workload", Some(ExitStatus::Code(1))),
        ];
        let mut s = s.to_vec();
        s[0].exit_explained = true;
        let c = find(&v, &s, d.path(), &default_pattern(), None).unwrap();
        assert_eq!(
            c,
            Cause::Workload {
                name: "client".into(),
                status: "exit 1".into(),
                log: Some(LogLine {
                    file: "logs/client.stderr".into(),
                    line: 4,
                    text: "VIOLATION: GET k3 returned NOTFOUND, but SET k3 v7 was acknowledged"
                        .into(),
                }),
            }
        );
    }

    #[test]
    fn the_workload_whose_logs_tell_why_comes_before_a_silent_one_and_stdout_is_read_too() {
        let d = dir_with(&[(
            "b.stdout",
            "ok\nthread 'main' panicked at src/main.rs:3:5\n",
        )]);
        let v = Verdict::fail(vec![]);
        let s = vec![
            started("a", "workload", Some(ExitStatus::Code(2))),
            started("b", "workload", Some(ExitStatus::Code(101))),
        ];
        let c = find(&v, &s, d.path(), &default_pattern(), None).unwrap();
        let Cause::Workload { name, log, .. } = c else {
            panic!("{c:?}")
        };
        assert_eq!(name, "b");
        let log = log.unwrap();
        assert_eq!((log.file.as_str(), log.line), ("logs/b.stdout", 2));
        // Without any telling line, the first failed workload, with no line.
        let d = dir_with(&[]);
        let c = find(&v, &s, d.path(), &default_pattern(), None).unwrap();
        assert_eq!(
            c,
            Cause::Workload {
                name: "a".into(),
                status: "exit 2".into(),
                log: None
            }
        );
    }

    #[test]
    fn the_check_history_and_custom_patterns_come_first_in_their_order() {
        let d = dir_with(&[
            ("check.stderr", "reading\nkey k2: expected 3, found 2\n"),
            ("client.stderr", "FAILED: x\n"),
        ]);
        let v = Verdict::fail(vec!["check failed (exit 1)".into()]);
        let s = vec![
            started("client", "workload", Some(ExitStatus::Code(1))),
            started("check", "check", Some(ExitStatus::Code(1))),
        ];
        // No line of the check matches: its last line is its message.
        let c = find(&v, &s, d.path(), &default_pattern(), None).unwrap();
        assert_eq!(
            c,
            Cause::Check {
                status: "exit 1".into(),
                log: Some(LogLine {
                    file: "logs/check.stderr".into(),
                    line: 2,
                    text: "key k2: expected 3, found 2".into()
                })
            }
        );
        let h = Cause::HistoryCheck {
            message: "history check: empty".into(),
        };
        assert_eq!(
            find(&v, &s, d.path(), &default_pattern(), Some(h.clone())),
            Some(h)
        );
        // A pattern of the experiment's own.
        let p = Regex::new("^FAILED").unwrap();
        assert_eq!(
            telling_line(d.path(), "client", &p).map(|l| l.text),
            Some("FAILED: x".into())
        );
        assert_eq!(telling_line(d.path(), "check", &p), None);
    }

    #[test]
    fn errors_and_hangs_name_an_exited_node_or_their_reason() {
        let d = dir_with(&[("n1.stderr", "listening\nError: address in use\n")]);
        let s = vec![
            started("n1", "node", Some(ExitStatus::Code(1))),
            started("client", "workload", Some(ExitStatus::Code(1))),
        ];
        let v = Verdict::error(vec!["node n1 exited before it was ready: exit 1".into()]);
        let c = find(&v, &s, d.path(), &default_pattern(), None).unwrap();
        assert_eq!(
            c.to_string(),
            "node n1 (exit 1): Error: address in use (logs/n1.stderr:2)"
        );
        let v = Verdict::hung(vec!["hung (blocked): n0 waits\n  more".into()]);
        let c = find(&v, &[], d.path(), &default_pattern(), None).unwrap();
        assert_eq!(
            c,
            Cause::Other {
                message: "hung (blocked): n0 waits".into()
            }
        );
        assert_eq!(
            find(&Verdict::pass(), &s, d.path(), &default_pattern(), None),
            None
        );
    }

    #[test]
    fn long_lines_are_cut_and_invalid_utf8_is_replaced() {
        let mut text = b"ok\n".to_vec();
        text.extend_from_slice(b"error \xff ");
        text.extend(std::iter::repeat_n(b'x', 1000));
        text.push(b'\n');
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("logs")).unwrap();
        std::fs::write(d.path().join("logs/w.stderr"), text).unwrap();
        let l = telling_line(d.path(), "w", &default_pattern()).unwrap();
        assert_eq!(l.line, 2);
        assert!(l.text.starts_with("error \u{FFFD} xxx"), "{}", l.text);
        assert_eq!(l.text.chars().count(), MAX_TEXT + 1);
    }
}
