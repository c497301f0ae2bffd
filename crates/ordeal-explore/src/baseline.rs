//! Fault-free baselines: the first `--baselines` runs of a campaign have no fault. Their
//! behaviours are the reference. When one fails, the system or the harness fails without any
//! fault: the campaign says so first, reruns the fault-free schedule R times for the
//! fault-free failure rate, and credits a failure to its faults only when its rate with them
//! is clearly above the rate at which fault-free runs fail the same way ([`clearly_above`]).

use std::collections::BTreeMap;

use ordeal_hb::Status;
use serde::Serialize;

use crate::model::{Analysis, Failure, Reproduction};
use crate::RunError;

/// The 97.5% quantile of the standard normal distribution (two-sided 95%).
const Z: f64 = 1.959963984540054;

/// The Wilson score interval at 95% of `k` successes in `n` trials, as (low, high); (0, 1)
/// without any trial. Unlike k/n ± a normal margin, it stays inside [0, 1] and is not empty
/// at 0 or n, which matters for the small counts of reruns.
pub fn wilson(k: u32, n: u32) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    let n = n as f64;
    let p = (k as f64).min(n) / n;
    let z2 = Z * Z;
    let denom = 1.0 + z2 / n;
    let centre = (p + z2 / (2.0 * n)) / denom;
    let margin = Z * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt() / denom;
    ((centre - margin).max(0.0), (centre + margin).min(1.0))
}

/// Whether the rate `with` (faults) is clearly above `without` (no fault): their Wilson 95%
/// intervals do not overlap.
pub fn clearly_above(with: &Reproduction, without: &Reproduction) -> bool {
    wilson(with.failed, with.runs).0 > wilson(without.failed, without.runs).1
}

/// `k/n (95% lo–hi)`.
pub fn rate_text(r: &Reproduction) -> String {
    let (lo, hi) = wilson(r.failed, r.runs);
    format!("{}/{} (95% {lo:.2}–{hi:.2})", r.failed, r.runs)
}

/// A distinct behaviour of the baselines.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BaselineBehaviour {
    pub fingerprint: String,
    /// Baselines with this behaviour.
    pub runs: u64,
}

/// One baseline run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BaselineRun {
    pub run: u64,
    pub status: Status,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub causes: Vec<String>,
    pub fingerprint: String,
    #[serde(skip)]
    signature: Option<String>,
}

/// The fault-free baselines of a campaign (explore.json `baselines`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Baselines {
    /// Baseline runs done.
    pub runs: u64,
    /// Of which failed (fail or hung).
    pub failed: u64,
    /// Each baseline, in run order.
    pub outcomes: Vec<BaselineRun>,
    /// The distinct causes of the failing baselines, in the order first seen.
    pub causes: Vec<String>,
    /// After a baseline failed: reruns of the fault-free schedule, and how many failed.
    pub reruns: Option<Reproduction>,
    /// The failed reruns by signature.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub rerun_failures: BTreeMap<String, u32>,
}

impl Baselines {
    /// Takes in baseline run `run`.
    pub(crate) fn add(&mut self, run: u64, a: &Analysis) {
        self.runs += 1;
        if a.status.is_failure() {
            self.failed += 1;
            for c in &a.causes {
                if !self.causes.contains(c) {
                    self.causes.push(c.clone());
                }
            }
        }
        self.outcomes.push(BaselineRun {
            run,
            status: a.status,
            causes: a.causes.clone(),
            fingerprint: a.fingerprint.clone(),
            signature: a.signature.clone(),
        });
    }

    /// Takes in a rerun of the fault-free schedule (one that could not run counts as not
    /// failing, as for the reruns of a failure).
    pub(crate) fn add_rerun(&mut self, r: &Result<Analysis, RunError>) {
        let (runs, failed) = self.reruns.as_ref().map_or((0, 0), |r| (r.runs, r.failed));
        let sig = match r {
            Ok(a) if a.status.is_failure() => a.signature.clone(),
            _ => None,
        };
        self.reruns = Some(Reproduction::new(runs + 1, failed + sig.is_some() as u32));
        if let Some(s) = sig {
            *self.rerun_failures.entry(s).or_insert(0) += 1;
        }
    }

    /// How often fault-free runs fail with `signature`: over the reruns when there are some,
    /// else over the baselines. `None` when no baseline failed (nothing to compare with).
    pub fn fault_free(&self, signature: &str) -> Option<Reproduction> {
        if self.failed == 0 {
            return None;
        }
        Some(match &self.reruns {
            Some(r) if r.runs > 0 => Reproduction::new(
                r.runs,
                self.rerun_failures.get(signature).copied().unwrap_or(0),
            ),
            _ => Reproduction::new(
                self.runs as u32,
                self.outcomes
                    .iter()
                    .filter(|b| b.signature.as_deref() == Some(signature))
                    .count() as u32,
            ),
        })
    }

    /// Sets what the baselines say of `f`: whether it fails without faults, its fault-free
    /// rate, and whether its rate with faults is clearly above it. A failure a baseline had
    /// has the fault-free rate as its reproduction, and is never credited to faults.
    pub fn judge(&self, f: &mut Failure) {
        f.without_faults = self
            .outcomes
            .iter()
            .any(|b| b.signature.as_deref() == Some(f.signature.as_str()));
        f.fault_free = self.fault_free(&f.signature);
        let Some(ff) = &f.fault_free else {
            f.above_baseline = true;
            return;
        };
        if f.without_faults && f.original.is_empty() {
            f.reproduction = Some(ff.clone());
            f.original_reproduction = Some(ff.clone());
        }
        f.above_baseline = !f.without_faults
            && f.reproduction
                .as_ref()
                .is_some_and(|r| clearly_above(r, ff));
    }

    /// The distinct behaviours of the baselines, in the order first seen.
    pub fn behaviours(&self) -> Vec<BaselineBehaviour> {
        let mut out: Vec<BaselineBehaviour> = Vec::new();
        for b in &self.outcomes {
            match out.iter_mut().find(|x| x.fingerprint == b.fingerprint) {
                Some(x) => x.runs += 1,
                None => out.push(BaselineBehaviour {
                    fingerprint: b.fingerprint.clone(),
                    runs: 1,
                }),
            }
        }
        out
    }

    /// The line to say first when a baseline failed.
    pub fn alarm(&self) -> Option<String> {
        if self.failed == 0 {
            return None;
        }
        Some(format!(
            "BASELINE FAILED: {} of {} fault-free runs {} ({}) — the system or the harness fails without any fault: fix that first",
            self.failed,
            self.runs,
            if self.failed == 1 { "fails" } else { "fail" },
            self.causes.join("; ")
        ))
    }

    /// `fault-free failure rate: 9/10 reruns (95% ...)`, once measured.
    pub fn rate_line(&self) -> Option<String> {
        let r = self.reruns.as_ref().filter(|_| self.failed > 0)?;
        Some(format!(
            "fault-free failure rate: {} reruns of the fault-free schedule",
            rate_text(r)
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(x: f64, want: f64) -> bool {
        (x - want).abs() < 5e-4
    }

    #[test]
    fn wilson_intervals() {
        let (lo, hi) = wilson(14, 20);
        assert!(close(lo, 0.481) && close(hi, 0.855), "{lo} {hi}");
        let (lo, hi) = wilson(0, 10);
        assert!(lo == 0.0 && close(hi, 0.278), "{lo} {hi}");
        let (lo, hi) = wilson(10, 10);
        assert!(close(lo, 0.722) && close(hi, 1.0), "{lo} {hi}");
        let (lo, hi) = wilson(5, 10);
        assert!(close(lo, 0.237) && close(hi, 0.763), "{lo} {hi}");
        assert_eq!(wilson(0, 0), (0.0, 1.0));
    }

    #[test]
    fn clearly_above_means_intervals_apart() {
        let r = Reproduction::new;
        // 10/10 against 0/10: 0.722 > 0.278.
        assert!(clearly_above(&r(10, 10), &r(10, 0)));
        // 9/10 against 8/10: the same, as far as 10 runs can tell.
        assert!(!clearly_above(&r(10, 9), &r(10, 8)));
        // 3/10 against 0/10: 0.108 < 0.278.
        assert!(!clearly_above(&r(10, 3), &r(10, 0)));
        assert!(!clearly_above(&r(10, 10), &r(10, 10)));
    }

    fn analysis(status: Status, causes: &[&str], fingerprint: &str) -> Analysis {
        let causes: Vec<String> = causes.iter().map(|c| c.to_string()).collect();
        Analysis {
            status,
            reasons: Vec::new(),
            outcome: status.to_string(),
            fingerprint: fingerprint.into(),
            occurrences: Vec::new(),
            first_fired: None,
            fired: Vec::new(),
            signature: status
                .is_failure()
                .then(|| crate::signature::signature(&causes)),
            causes,
            cause: None,
            lines: Vec::new(),
            phases: Default::default(),
            wall: Default::default(),
            events: 0,
            interrupted: false,
        }
    }

    #[test]
    fn a_failing_baseline_is_measured_and_not_credited() {
        let exit = "workload client ended: exit 1";
        let mut b = Baselines::default();
        b.add(0, &analysis(Status::Fail, &[exit], "aa"));
        b.add(1, &analysis(Status::Pass, &[], "bb"));
        assert_eq!(
            b.alarm().unwrap(),
            "BASELINE FAILED: 1 of 2 fault-free runs fails (workload client ended: exit 1) — the system or the harness fails without any fault: fix that first"
        );
        assert_eq!(
            b.behaviours(),
            [
                BaselineBehaviour {
                    fingerprint: "aa".into(),
                    runs: 1
                },
                BaselineBehaviour {
                    fingerprint: "bb".into(),
                    runs: 1
                }
            ]
        );
        // Before any rerun: over the baselines.
        assert_eq!(b.fault_free(exit), Some(Reproduction::new(2, 1)));
        for i in 0..10 {
            let st = if i < 8 { Status::Fail } else { Status::Pass };
            b.add_rerun(&Ok(analysis(st, &[exit], "aa")));
        }
        assert_eq!(b.reruns, Some(Reproduction::new(10, 8)));
        assert_eq!(b.fault_free(exit), Some(Reproduction::new(10, 8)));
        assert_eq!(b.fault_free("other"), Some(Reproduction::new(10, 0)));
        assert_eq!(
            b.rate_line().unwrap(),
            "fault-free failure rate: 8/10 (95% 0.49–0.94) reruns of the fault-free schedule"
        );

        let mut baseline = Failure::first_hit(
            1,
            0,
            &analysis(Status::Fail, &[exit], "aa"),
            &[],
            String::new(),
            "runs/000000".into(),
            std::path::Path::new("/c/runs/000000"),
        );
        b.judge(&mut baseline);
        assert!(baseline.without_faults && !baseline.above_baseline);
        assert_eq!(baseline.reproduction, Some(Reproduction::new(10, 8)));

        // Another cause, with faults: credited only when clearly above 0/10.
        let other = analysis(Status::Fail, &["node n1 exited unexpectedly: exit 3"], "cc");
        let mut f = Failure::first_hit(
            2,
            5,
            &other,
            &[],
            String::new(),
            "runs/000005".into(),
            std::path::Path::new("/c/runs/000005"),
        );
        f.original_faults = vec!["crash-after at n0".into()];
        f.reproduction = Some(Reproduction::new(10, 9));
        b.judge(&mut f);
        assert!(!f.without_faults && f.above_baseline);
        assert_eq!(f.fault_free, Some(Reproduction::new(10, 0)));
        f.reproduction = Some(Reproduction::new(10, 2));
        b.judge(&mut f);
        assert!(!f.above_baseline);
        // Unmeasured (no reruns): not credited either.
        f.reproduction = None;
        b.judge(&mut f);
        assert!(!f.above_baseline);
    }

    #[test]
    fn passing_baselines_credit_every_failure() {
        let mut b = Baselines::default();
        b.add(0, &analysis(Status::Pass, &[], "aa"));
        b.add(1, &analysis(Status::Pass, &[], "aa"));
        assert_eq!(b.alarm(), None);
        assert_eq!(b.rate_line(), None);
        assert_eq!(
            b.behaviours(),
            [BaselineBehaviour {
                fingerprint: "aa".into(),
                runs: 2
            }]
        );
        let mut f = Failure::first_hit(
            1,
            4,
            &analysis(Status::Fail, &["hung (blocked)"], "cc"),
            &[],
            String::new(),
            "runs/000004".into(),
            std::path::Path::new("/c/runs/000004"),
        );
        f.reproduction = Some(Reproduction::new(10, 1));
        b.judge(&mut f);
        assert!(f.above_baseline && !f.without_faults && f.fault_free.is_none());
    }
}
