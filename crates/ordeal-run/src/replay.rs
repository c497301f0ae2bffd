//! `ordeal replay`: how a re-run compares with the run it replays. Two runs are the same when
//! their verdicts are the same and the same faults fired at the same points (by node and
//! call; pids and seqs differ from run to run). Many reruns ([`Rates`]) give a reproduction
//! rate with its [`wilson`] score interval.

use crate::Error;
use ordeal_faults::Applied;
use ordeal_hb::{Status, Summary};
use serde::Serialize;
use std::path::{Path, PathBuf};

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

/// The verdict status in `RUN_DIR/summary.json`.
pub fn verdict(run_dir: &Path) -> Result<Status, Error> {
    let path = run_dir.join("summary.json");
    let bytes =
        std::fs::read(&path).map_err(crate::io_err(format!("reading {}", path.display())))?;
    let summary: Summary = serde_json::from_slice(&bytes)?;
    Ok(summary.verdict.status)
}

/// The firings ([`firing_key`]) of `RUN_DIR/schedule.applied.toml`, in its order; none when
/// the run had no faults.
pub fn firings(run_dir: &Path) -> Vec<String> {
    ordeal_faults::read_applied_toml(run_dir.join(ordeal_faults::APPLIED_FILE))
        .map(|v| v.iter().map(firing_key).collect())
        .unwrap_or_default()
}

/// What a rerun must end with to reproduce its original.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// The original's verdict status (a replay of a run).
    Verdict(Status),
    /// Fail or hung: a schedule given in place of the recorded one is run to see whether it
    /// makes the run fail.
    Failure,
}

impl Expect {
    /// Whether a rerun that ended with `status` reproduces.
    pub fn met_by(self, status: Status) -> bool {
        match self {
            Expect::Verdict(s) => status == s,
            Expect::Failure => status.is_failure(),
        }
    }

    /// `pass`, `fail`, `hung`, `error`, or `failure` (fail or hung), as rates.json has it.
    pub fn name(self) -> &'static str {
        match self {
            Expect::Verdict(s) => s.as_str(),
            Expect::Failure => "failure",
        }
    }
}

impl Serialize for Expect {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

/// One rerun of `ordeal replay --runs N`, as `rates.json` lists it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rerun {
    /// 1..=N, also the name of its directory in the replay's directory.
    pub run: usize,
    pub dir: PathBuf,
    pub status: Status,
    /// The verdict's reasons (for a run that could not start, why).
    pub reasons: Vec<String>,
    /// Status and reasons with numbers and the run directory abstracted: equal outcomes of
    /// different reruns are equal strings.
    pub outcome: String,
    /// Whether `status` meets the [`Expect`] of the replay.
    pub reproduced: bool,
    /// The same faults fired at the same points as in the reference run ([`firings`]).
    pub same_firings: bool,
    pub seconds: f64,
}

/// How many reruns ended with one outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OutcomeCount {
    pub outcome: String,
    pub count: usize,
}

/// The result of N reruns: `rates.json` (docs/faults.md#reproduction-rates).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rates {
    /// The replayed run directory.
    pub original: PathBuf,
    /// The schedule run in place of the recorded one, if one was given.
    pub schedule: Option<PathBuf>,
    /// What a rerun must end with to count as reproduced.
    pub expected: Expect,
    /// Finished reruns (an interruption leaves out those it cut short).
    pub runs: usize,
    pub reproduced: usize,
    /// `reproduced / runs` (0 without runs).
    pub rate: f64,
    /// The 95% Wilson score interval of `rate`.
    pub ci_low: f64,
    pub ci_high: f64,
    /// Reruns whose firings are those of the original (with a schedule given: of rerun 1).
    pub same_firings: usize,
    /// Distinct outcomes, most frequent first.
    pub outcomes: Vec<OutcomeCount>,
    pub interrupted: bool,
    /// Every finished rerun, by number.
    pub reruns: Vec<Rerun>,
}

impl Rates {
    /// Counts the reruns (given in any order).
    pub fn new(
        original: PathBuf,
        schedule: Option<PathBuf>,
        expected: Expect,
        mut reruns: Vec<Rerun>,
        interrupted: bool,
    ) -> Rates {
        reruns.sort_by_key(|r| r.run);
        let runs = reruns.len();
        let reproduced = reruns.iter().filter(|r| r.reproduced).count();
        let mut outcomes: Vec<OutcomeCount> = Vec::new();
        for r in &reruns {
            match outcomes.iter_mut().find(|o| o.outcome == r.outcome) {
                Some(o) => o.count += 1,
                None => outcomes.push(OutcomeCount {
                    outcome: r.outcome.clone(),
                    count: 1,
                }),
            }
        }
        outcomes.sort_by(|a, b| {
            b.count
                .cmp(&a.count)
                .then_with(|| a.outcome.cmp(&b.outcome))
        });
        let (ci_low, ci_high) = wilson(reproduced, runs);
        Rates {
            original,
            schedule,
            expected,
            runs,
            reproduced,
            rate: if runs == 0 {
                0.0
            } else {
                reproduced as f64 / runs as f64
            },
            ci_low,
            ci_high,
            same_firings: reruns.iter().filter(|r| r.same_firings).count(),
            outcomes,
            interrupted,
            reruns,
        }
    }

    /// `reproduced 14/20 (70%, 95% CI 48–85%)`.
    pub fn headline(&self) -> String {
        let pct = |x: f64| format!("{:.0}", x * 100.0);
        format!(
            "reproduced {}/{} ({}%, 95% CI {}–{}%)",
            self.reproduced,
            self.runs,
            pct(self.rate),
            pct(self.ci_low),
            pct(self.ci_high)
        )
    }

    /// `ordeal replay --runs N`'s exit code: 0 every rerun reproduced, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        if self.runs > 0 && self.reproduced == self.runs {
            0
        } else {
            1
        }
    }
}

/// The 95% Wilson score interval of a proportion of `k` successes in `n` trials: unlike
/// `p ± 1.96·σ` it stays inside [0, 1] and means something for 0/n and n/n. (0, 1) for n = 0.
pub fn wilson(k: usize, n: usize) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    // The 97.5th percentile of the standard normal distribution.
    const Z: f64 = 1.959_963_984_540_054;
    let (k, n) = (k.min(n) as f64, n as f64);
    let p = k / n;
    let z2 = Z * Z;
    let denom = 1.0 + z2 / n;
    let center = (p + z2 / (2.0 * n)) / denom;
    let half = Z * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt() / denom;
    // The bounds are exactly 0 for k = 0 and 1 for k = n; rounding would miss them by an ulp.
    let low = if k == 0.0 { 0.0 } else { center - half };
    let high = if k == n { 1.0 } else { center + half };
    (low.clamp(0.0, 1.0), high.clamp(0.0, 1.0))
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

    fn close(got: (f64, f64), want: (f64, f64)) -> bool {
        (got.0 - want.0).abs() < 5e-4 && (got.1 - want.1).abs() < 5e-4
    }

    #[test]
    fn wilson_intervals_match_known_values() {
        assert!(
            close(wilson(14, 20), (0.481, 0.855)),
            "{:?}",
            wilson(14, 20)
        );
        assert_eq!(wilson(0, 10).0, 0.0);
        assert!(close(wilson(0, 10), (0.0, 0.278)), "{:?}", wilson(0, 10));
        assert_eq!(wilson(10, 10).1, 1.0);
        assert!(close(wilson(10, 10), (0.722, 1.0)), "{:?}", wilson(10, 10));
        assert!(close(wilson(4, 4), (0.510, 1.0)), "{:?}", wilson(4, 4));
        assert!(close(wilson(1, 2), (0.095, 0.905)), "{:?}", wilson(1, 2));
        assert_eq!(wilson(0, 0), (0.0, 1.0));
    }

    fn rerun(run: usize, status: Status, outcome: &str, expect: Expect, same: bool) -> Rerun {
        Rerun {
            run,
            dir: PathBuf::from(format!("/out/{run}")),
            status,
            reasons: vec![],
            outcome: outcome.into(),
            reproduced: expect.met_by(status),
            same_firings: same,
            seconds: 1.0,
        }
    }

    #[test]
    fn rates_count_reproductions_firings_and_outcomes() {
        let e = Expect::Verdict(Status::Fail);
        let lost = "fail: workload client ended: exit N";
        let reruns = vec![
            rerun(3, Status::Pass, "pass", e, false),
            rerun(1, Status::Fail, lost, e, true),
            rerun(4, Status::Hung, "hung: no progress", e, true),
            rerun(2, Status::Fail, lost, e, true),
        ];
        let r = Rates::new("/orig".into(), None, e, reruns, false);
        assert_eq!(
            (r.runs, r.reproduced, r.rate, r.same_firings),
            (4, 2, 0.5, 3)
        );
        assert_eq!(
            r.reruns.iter().map(|x| x.run).collect::<Vec<_>>(),
            [1, 2, 3, 4]
        );
        let counts: Vec<(&str, usize)> = r
            .outcomes
            .iter()
            .map(|o| (o.outcome.as_str(), o.count))
            .collect();
        assert_eq!(counts, [(lost, 2), ("hung: no progress", 1), ("pass", 1)]);
        assert_eq!(r.headline(), "reproduced 2/4 (50%, 95% CI 15–85%)");
        assert_eq!(r.exit_code(), 1);
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["expected"], "fail");
        assert_eq!(json["reruns"][2]["status"], "pass");
        assert_eq!(json["outcomes"][0]["count"], 2);

        // A schedule given in place of the recorded one reproduces when the run fails or hangs.
        let f = Expect::Failure;
        let reruns = vec![
            rerun(1, Status::Fail, lost, f, true),
            rerun(2, Status::Hung, "hung", f, false),
        ];
        let r = Rates::new("/orig".into(), Some("s.toml".into()), f, reruns, false);
        assert_eq!((r.reproduced, r.exit_code()), (2, 0));
        assert_eq!(r.headline(), "reproduced 2/2 (100%, 95% CI 34–100%)");
        assert_eq!(serde_json::to_value(&r).unwrap()["expected"], "failure");
        assert!(!f.met_by(Status::Error) && !f.met_by(Status::Pass));

        // Nothing finished (interrupted at once): nothing reproduced, exit 1.
        let r = Rates::new("/orig".into(), None, e, vec![], true);
        assert_eq!((r.runs, r.rate, r.exit_code()), (0, 0.0, 1));
    }
}
