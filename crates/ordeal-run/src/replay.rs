//! `ordeal replay`: how a re-run compares with the run it replays. Two runs are the same when
//! their verdicts are the same and the same faults fired at the same points (by node and
//! call; pids and seqs differ from run to run).

use crate::Error;
use ordeal_faults::Applied;
use ordeal_hb::{Status, Summary};
use std::path::Path;

/// The original run and its replay, side by side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayComparison {
    /// The original's verdict.
    pub original: Status,
    /// The replay's verdict.
    pub replayed: Status,
    /// The original's firings ([`firing_key`]), in `schedule.applied.toml` order.
    pub original_firings: Vec<String>,
    /// The replay's firings.
    pub replayed_firings: Vec<String>,
}

/// One firing of the original, or one the replay added.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FiringDiff {
    /// The replay's firing at the same place is the same.
    Same(String),
    /// The replay's firing at the same place is `now`, or it has none there.
    Changed { was: String, now: Option<String> },
    /// A firing of the replay beyond the original's.
    Added(String),
}

impl ReplayComparison {
    /// Reads both run directories: `summary.json` and `schedule.applied.toml` (a run without
    /// faults has no firings).
    pub fn of(original: &Path, replay: &Path) -> Result<Self, Error> {
        Ok(Self {
            original: verdict(original)?,
            replayed: verdict(replay)?,
            original_firings: firings(original),
            replayed_firings: firings(replay),
        })
    }

    pub fn same_firings(&self) -> bool {
        self.original_firings == self.replayed_firings
    }

    pub fn same_verdict(&self) -> bool {
        self.original == self.replayed
    }

    /// `ordeal replay`'s exit code: 0 same firings and verdict, 1 different.
    pub fn exit_code(&self) -> u8 {
        if self.same_firings() && self.same_verdict() {
            0
        } else {
            1
        }
    }

    /// Each firing of the original against the replay's at the same place, then the
    /// replay's extra ones.
    pub fn firings(&self) -> Vec<FiringDiff> {
        let mut out: Vec<FiringDiff> = self
            .original_firings
            .iter()
            .enumerate()
            .map(|(i, was)| match self.replayed_firings.get(i) {
                Some(now) if now == was => FiringDiff::Same(was.clone()),
                now => FiringDiff::Changed {
                    was: was.clone(),
                    now: now.cloned(),
                },
            })
            .collect();
        out.extend(
            self.replayed_firings
                .iter()
                .skip(self.original_firings.len())
                .cloned()
                .map(FiringDiff::Added),
        );
        out
    }
}

/// A firing as compared between runs: which fault, whether, where (pids and seqs differ).
pub fn firing_key(a: &Applied) -> String {
    let detail = a.detail.as_deref().unwrap_or("");
    let detail = detail.split(" (pid").next().unwrap_or(detail);
    format!(
        "{} fired={} node={} {}",
        a.fault,
        a.fired,
        a.node.as_deref().unwrap_or("-"),
        detail
    )
}

fn verdict(run_dir: &Path) -> Result<Status, Error> {
    let path = run_dir.join("summary.json");
    let bytes =
        std::fs::read(&path).map_err(crate::io_err(format!("reading {}", path.display())))?;
    let summary: Summary = serde_json::from_slice(&bytes)?;
    Ok(summary.verdict.status)
}

fn firings(run_dir: &Path) -> Vec<String> {
    ordeal_faults::read_applied_toml(run_dir.join(ordeal_faults::APPLIED_FILE))
        .map(|v| v.iter().map(firing_key).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ordeal_events::Header;
    use ordeal_hb::{HbGraph, Verdict};

    fn applied(fault: &str, node: Option<&str>, detail: Option<&str>) -> Applied {
        Applied {
            fault: fault.into(),
            kind: "crash".into(),
            fired: node.is_some(),
            seq: node.map(|_| 17),
            time_ns: node.map(|_| 1_000),
            role: None,
            node: node.map(str::to_string),
            detail: detail.map(str::to_string),
        }
    }

    /// A run directory with `verdict` in summary.json and `firings` applied.
    fn run_dir(root: &Path, name: &str, verdict: Verdict, firings: &[Applied]) -> PathBuf {
        let dir = root.join(name);
        std::fs::create_dir(&dir).unwrap();
        let header = Header {
            schema: "ordeal-trace".into(),
            version: ordeal_events::SCHEMA_VERSION,
            experiment: "x".into(),
            started_at: "2026-11-24T09:30:05Z".into(),
            nodes: vec![],
        };
        let summary = Summary::build(&HbGraph::from_owned(header, vec![]), verdict);
        let file = std::fs::File::create(dir.join("summary.json")).unwrap();
        ordeal_hb::write_summary_json(&summary, file).unwrap();
        if !firings.is_empty() {
            ordeal_faults::write_applied_toml(firings, dir.join(ordeal_faults::APPLIED_FILE))
                .unwrap();
        }
        dir
    }
    use std::path::PathBuf;

    #[test]
    fn firing_keys_leave_out_pids() {
        let a = applied(
            "kill",
            Some("n1"),
            Some("crash n1 at rename (pid 42, tid 43)"),
        );
        assert_eq!(firing_key(&a), "kill fired=true node=n1 crash n1 at rename");
        let b = applied("late", None, None);
        assert_eq!(firing_key(&b), "late fired=false node=- ");
    }

    #[test]
    fn same_firings_in_other_processes_and_the_same_verdict_are_the_same() {
        let tmp = tempfile::tempdir().unwrap();
        let first = run_dir(
            tmp.path(),
            "a",
            Verdict::pass(),
            &[applied(
                "kill",
                Some("n1"),
                Some("crash n1 at rename (pid 42, tid 43)"),
            )],
        );
        let again = run_dir(
            tmp.path(),
            "b",
            Verdict::pass(),
            &[applied(
                "kill",
                Some("n1"),
                Some("crash n1 at rename (pid 97, tid 99)"),
            )],
        );
        let c = ReplayComparison::of(&first, &again).unwrap();
        assert_eq!(
            c,
            ReplayComparison {
                original: Status::Pass,
                replayed: Status::Pass,
                original_firings: vec!["kill fired=true node=n1 crash n1 at rename".into()],
                replayed_firings: vec!["kill fired=true node=n1 crash n1 at rename".into()],
            }
        );
        assert_eq!(
            c.firings(),
            vec![FiringDiff::Same(
                "kill fired=true node=n1 crash n1 at rename".into()
            )]
        );
        assert_eq!(c.exit_code(), 0);
    }

    #[test]
    fn a_different_firing_or_verdict_is_different() {
        let tmp = tempfile::tempdir().unwrap();
        let first = run_dir(
            tmp.path(),
            "a",
            Verdict::fail(vec!["check failed (exit 1)".into()]),
            &[
                applied(
                    "kill",
                    Some("n1"),
                    Some("crash n1 at rename (pid 42, tid 43)"),
                ),
                applied("cut", Some("n0"), Some("partition n0 | n1 (time trigger)")),
            ],
        );
        let again = run_dir(
            tmp.path(),
            "b",
            Verdict::pass(),
            &[
                applied(
                    "kill",
                    Some("n2"),
                    Some("crash n2 at rename (pid 50, tid 50)"),
                ),
                applied("cut", Some("n0"), Some("partition n0 | n1 (time trigger)")),
                applied("late", None, None),
            ],
        );
        let c = ReplayComparison::of(&first, &again).unwrap();
        assert_eq!((c.original, c.replayed), (Status::Fail, Status::Pass));
        assert!(!c.same_verdict());
        assert!(!c.same_firings());
        assert_eq!(
            c.firings(),
            vec![
                FiringDiff::Changed {
                    was: "kill fired=true node=n1 crash n1 at rename".into(),
                    now: Some("kill fired=true node=n2 crash n2 at rename".into()),
                },
                FiringDiff::Same("cut fired=true node=n0 partition n0 | n1 (time trigger)".into()),
                FiringDiff::Added("late fired=false node=- ".into()),
            ]
        );
        assert_eq!(c.exit_code(), 1);
        // A replay that fired less: the missing firing has nothing now.
        let none = run_dir(tmp.path(), "c", Verdict::fail(vec!["x".into()]), &[]);
        let c = ReplayComparison::of(&first, &none).unwrap();
        assert!(c.same_verdict());
        assert_eq!(
            c.firings()[0],
            FiringDiff::Changed {
                was: "kill fired=true node=n1 crash n1 at rename".into(),
                now: None,
            }
        );
        assert_eq!(c.exit_code(), 1);
    }

    #[test]
    fn a_run_without_a_summary_cannot_be_compared() {
        let tmp = tempfile::tempdir().unwrap();
        let err = ReplayComparison::of(tmp.path(), tmp.path()).unwrap_err();
        assert!(
            err.to_string()
                .starts_with(&format!("reading {}/summary.json: ", tmp.path().display())),
            "{err}"
        );
    }
}
