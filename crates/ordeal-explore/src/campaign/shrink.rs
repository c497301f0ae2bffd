//! Shrinking and reruns: after the exploration, the fault-free schedule is rerun when a
//! baseline failed (the fault-free failure rate); each distinct failure's schedule is made
//! minimal with ddmin (over its faults, then towards earlier trigger indices), and the
//! candidates are rerun for their reproduction rates: the most reproducible is the minimal
//! schedule.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::State;
use crate::baseline::rate_text;
use crate::candidates::Fault;
use crate::ddmin::ddmin;
use crate::journal::{Entry, FailureEntry};
use crate::model::{Analysis, Measured, Reproduction, RunRecord};
use crate::pool::Meta;
use crate::schedule::schedule_toml;
use crate::{Error, RunError};

/// A batch of runs: journal key, directory, schedule.
type Batch = Vec<(String, PathBuf, Vec<Fault>)>;

/// Whether `r` failed with signature `sig`.
fn fails_as(r: &Result<Analysis, RunError>, sig: &str) -> bool {
    matches!(r, Ok(a) if a.signature.as_deref() == Some(sig))
}

/// Among schedules measured with the same number of reruns, the index of the best: the most
/// failures, then the fewest faults, then the lowest trigger indices, then the first.
pub(crate) fn best(candidates: &[(&[Fault], u32)]) -> Option<usize> {
    let key = |(s, failed): &(&[Fault], u32)| {
        let nths: u64 = s.iter().map(|f| f.nth).sum();
        (std::cmp::Reverse(*failed), s.len(), nths)
    };
    (0..candidates.len()).min_by_key(|&i| key(&candidates[i]))
}

impl State {
    /// Runs `batch` on the pool and returns the results in order.
    fn run_batch(&mut self, phase: &'static str, batch: Batch) -> Vec<Result<Analysis, RunError>> {
        let base = 1_000_000_000 + self.next_extra;
        let n = batch.len() as u64;
        self.next_extra += n;
        for (i, (key, dir, faults)) in batch.into_iter().enumerate() {
            if let Some(parent) = dir.parent() {
                let _ = std::fs::create_dir_all(parent);
            }
            let meta = Meta {
                key,
                phase,
                explore_id: 0,
                dir,
                faults,
            };
            self.dispatch(base + i as u64, meta);
        }
        let mut got: BTreeMap<u64, Result<Analysis, RunError>> = BTreeMap::new();
        while (got.len() as u64) < n {
            match self.receive(Duration::from_secs(3600)) {
                Ok(Some(d)) => {
                    got.insert(d.id, d.result);
                }
                Ok(None) => {}
                Err(_) => break,
            }
        }
        got.into_values().collect()
    }

    fn extra_record(
        &mut self,
        phase: &'static str,
        dir: &Path,
        faults: &[Fault],
        r: &Result<Analysis, RunError>,
    ) {
        let rel = dir
            .strip_prefix(&self.cfg.out)
            .unwrap_or(dir)
            .display()
            .to_string();
        let faults = faults.iter().map(|f| f.to_string()).collect();
        let kept = r.is_ok() || dir.exists();
        let rec = RunRecord::of(
            self.log.len() as u64,
            phase,
            rel,
            kept,
            faults,
            r.as_ref(),
            false,
        );
        self.log.push(rec);
    }

    /// After a baseline failed: R reruns of the fault-free schedule, for the rate at which
    /// the system fails without any fault.
    fn rerun_baseline(&mut self, cancel: &AtomicBool) {
        if let Some(alarm) = self.baselines.alarm() {
            self.progress.say(&alarm);
        }
        if self.baselines.failed == 0 || self.cfg.reruns == 0 || cancel.load(Ordering::SeqCst) {
            return;
        }
        let batch: Batch = (0..self.cfg.reruns)
            .map(|i| {
                (
                    format!("rerun:baseline:{i}"),
                    self.cfg
                        .out
                        .join("baselines")
                        .join("reruns")
                        .join(format!("{i:02}")),
                    Vec::new(),
                )
            })
            .collect();
        let results = self.run_batch("rerun", batch.clone());
        self.rerun_runs += batch.len() as u64;
        for ((_, dir, s), r) in batch.iter().zip(&results) {
            self.extra_record("rerun", dir, s, r);
        }
        if cancel.load(Ordering::SeqCst) {
            return;
        }
        for r in &results {
            self.baselines.add_rerun(r);
        }
        if let Some(line) = self.baselines.rate_line() {
            self.progress.say(&line);
        }
    }

    /// ddmin over the faults of `original`, then each fault's trigger index lowered: the
    /// schedule ddmin leaves, the one with the indices lowered, and the runs it took.
    fn shrink(
        &mut self,
        fdir: &Path,
        sig: &str,
        original: &[Fault],
        cancel: &AtomicBool,
    ) -> (Vec<Fault>, Vec<Fault>, u32) {
        let mut counter = 0u32;
        let mut found = original.to_vec();
        if original.len() > 1 {
            let mut test = |subset: &[Fault]| -> bool {
                if subset.is_empty() || cancel.load(Ordering::SeqCst) {
                    return false;
                }
                counter += 1;
                let dir = fdir.join("shrink").join(format!("{counter:03}"));
                let key = format!("shrink:{sig}:{counter}");
                let r = self.run_batch("shrink", vec![(key, dir.clone(), subset.to_vec())]);
                self.shrink_runs += 1;
                self.extra_record("shrink", &dir, subset, &r[0]);
                fails_as(&r[0], sig)
            };
            found = ddmin(original, &mut test);
        }
        // Earlier trigger indices: the smallest that still fails, tried in parallel.
        let mut earliest = found.clone();
        for k in 0..earliest.len() {
            if cancel.load(Ordering::SeqCst) {
                break;
            }
            let n = earliest[k].nth;
            let mut nths: Vec<u64> = [1, n / 4, n / 2, (3 * n) / 4, n.saturating_sub(1)]
                .into_iter()
                .filter(|&x| x >= 1 && x < n)
                .collect();
            nths.sort();
            nths.dedup();
            if nths.is_empty() {
                continue;
            }
            let batch: Batch = nths
                .iter()
                .map(|&x| {
                    counter += 1;
                    let mut s = earliest.clone();
                    s[k].nth = x;
                    (
                        format!("shrink:{sig}:{counter}"),
                        fdir.join("shrink").join(format!("{counter:03}")),
                        s,
                    )
                })
                .filter(|(_, _, s)| self.cfg.model.allows(s))
                .collect();
            let results = self.run_batch("shrink", batch.clone());
            self.shrink_runs += batch.len() as u64;
            let mut first: Option<Vec<Fault>> = None;
            for ((_, dir, s), r) in batch.iter().zip(&results) {
                self.extra_record("shrink", dir, s, r);
                if fails_as(r, sig) && first.is_none() {
                    first = Some(s.clone());
                }
            }
            if let Some(b) = first {
                earliest = b;
            }
        }
        (found, earliest, counter)
    }

    /// Reruns each of `schedules` (label, faults) R times, in one parallel batch: each one's
    /// reproduction (None when interrupted) and first failing rerun.
    fn measure(
        &mut self,
        fdir: &Path,
        sig: &str,
        schedules: &[(&'static str, Vec<Fault>)],
        cancel: &AtomicBool,
    ) -> Vec<(Option<Reproduction>, Option<PathBuf>)> {
        let r = self.cfg.reruns;
        if r == 0 || cancel.load(Ordering::SeqCst) {
            return vec![(None, None); schedules.len()];
        }
        let batch: Batch = schedules
            .iter()
            .flat_map(|(label, s)| {
                (0..r).map(move |i| {
                    (
                        format!("rerun:{sig}:{label}:{i}"),
                        fdir.join("reruns").join(format!("{label}-{i:02}")),
                        s.clone(),
                    )
                })
            })
            .collect();
        let results = self.run_batch("rerun", batch.clone());
        self.rerun_runs += batch.len() as u64;
        let mut out = vec![(0u32, None::<PathBuf>); schedules.len()];
        for (j, ((_, dir, s), res)) in batch.iter().zip(&results).enumerate() {
            self.extra_record("rerun", dir, s, res);
            if fails_as(res, sig) {
                let o = &mut out[j / r as usize];
                o.0 += 1;
                if o.1.is_none() {
                    o.1 = Some(dir.clone());
                }
            }
        }
        let done = !cancel.load(Ordering::SeqCst);
        out.into_iter()
            .map(|(failed, dir)| (done.then(|| Reproduction::new(r, failed)), dir))
            .collect()
    }

    /// Measures the fault-free rate when a baseline failed, then shrinks every distinct
    /// failure to its most reproducible minimal schedule.
    pub(super) fn shrink_and_rerun(&mut self, cancel: &AtomicBool) -> Result<(), Error> {
        self.rerun_baseline(cancel);
        for fi in 0..self.failures.len() {
            if cancel.load(Ordering::SeqCst) {
                return Ok(());
            }
            let fdir = self.cfg.out.join("failures").join(&self.failures[fi].id);
            let sig = self.failures[fi].signature.clone();
            let original = self.failures[fi].original.clone();
            let _ = std::fs::create_dir_all(&fdir);
            let _ = std::fs::write(
                fdir.join("original.toml"),
                &self.failures[fi].original_schedule,
            );
            if original.is_empty() {
                // A baseline failed this way: nothing to shrink, and its rate is the
                // fault-free one (the baselines' reruns).
                self.progress.say(&format!(
                    "{}: fails without any fault: {sig}",
                    self.failures[fi].id
                ));
                let _ = std::fs::write(
                    fdir.join("schedule.toml"),
                    &self.failures[fi].minimal_schedule,
                );
                self.journal_failure(fi, cancel);
                continue;
            }
            self.progress.say(&format!(
                "{}: shrinking {} fault(s), then {} reruns of each candidate: {}",
                self.failures[fi].id,
                original.len(),
                self.cfg.reruns,
                sig
            ));
            let (found, earliest, shrink_runs) = if self.cfg.shrink {
                self.shrink(&fdir, &sig, &original, cancel)
            } else {
                (original.clone(), original.clone(), 0)
            };
            // Every distinct schedule is rerun: the original for its own rate, ddmin's and
            // the earliest as the candidates.
            let mut schedules: Vec<(&'static str, Vec<Fault>)> = vec![("original", original)];
            if found != schedules[0].1 {
                schedules.push(("minimal", found.clone()));
            }
            if earliest != found {
                schedules.push(("earliest", earliest.clone()));
            }
            let rates = self.measure(&fdir, &sig, &schedules, cancel);
            let candidates: Vec<usize> = (0..schedules.len())
                .filter(|&i| schedules[i].1 == found || schedules[i].1 == earliest)
                .collect();
            let chosen = if rates.iter().all(|(r, _)| r.is_some()) {
                let scored: Vec<(&[Fault], u32)> = candidates
                    .iter()
                    .map(|&i| {
                        let failed = rates[i].0.as_ref().map_or(0, |r| r.failed);
                        (schedules[i].1.as_slice(), failed)
                    })
                    .collect();
                best(&scored).map_or(*candidates.last().unwrap_or(&0), |b| candidates[b])
            } else {
                // Not measured: the smallest, as found.
                *candidates.last().unwrap_or(&0)
            };
            let minimal = schedules[chosen].1.clone();
            let minimal_toml = schedule_toml(&minimal, &self.cfg.model, self.cfg.seed)?;
            let _ = std::fs::write(fdir.join("schedule.toml"), &minimal_toml);
            let measured: Vec<Measured> = schedules
                .iter()
                .zip(&rates)
                .filter_map(|((label, s), (r, _))| {
                    Some(Measured {
                        schedule: label.to_string(),
                        faults: s.iter().map(|f| f.to_string()).collect(),
                        reproduction: r.clone()?,
                    })
                })
                .collect();
            let (reproduction, failing_dir) = rates[chosen].clone();
            let original_reproduction = rates[0].0.clone();
            if let (Some(o), Some(m)) = (&original_reproduction, &reproduction) {
                self.progress.say(&format!(
                    "{}: original {}, minimal {}",
                    self.failures[fi].id,
                    rate_text(o),
                    rate_text(m)
                ));
            }
            let f = &mut self.failures[fi];
            f.minimal_faults = minimal.iter().map(|x| x.to_string()).collect();
            f.minimal_schedule = minimal_toml;
            f.minimal = minimal;
            f.shrink_runs = shrink_runs;
            f.reproduction = reproduction;
            f.original_reproduction = original_reproduction;
            f.measured = measured;
            if let Some(d) = failing_dir {
                f.run_dir = d
                    .strip_prefix(&self.cfg.out)
                    .unwrap_or(&d)
                    .display()
                    .to_string();
                f.replay = format!("ordeal replay {}", d.display());
            }
            // The full outputs (graph.svg, trace.json, ...) of the run the report shows.
            let shown = self.cfg.out.join(&self.failures[fi].run_dir);
            let _ = ordeal_run::rebuild(&shown, ordeal_hb::DEFAULT_DOT_LIMIT);
            self.journal_failure(fi, cancel);
        }
        Ok(())
    }

    /// Journals failure `fi` after its shrinking and reruns (once: not again on a resume).
    fn journal_failure(&mut self, fi: usize, cancel: &AtomicBool) {
        let f = &self.failures[fi];
        if cancel.load(Ordering::SeqCst) || self.journaled_failures.contains(&f.signature) {
            return;
        }
        let e = Entry::Failure(FailureEntry {
            id: f.id.clone(),
            signature: f.signature.clone(),
            first_run: f.first_run,
            original: f.original.clone(),
            minimal: f.minimal.clone(),
            shrink_runs: f.shrink_runs,
            reproduction: f.reproduction.clone(),
            original_reproduction: f.original_reproduction.clone(),
            measured: f.measured.clone(),
            run_dir: f.run_dir.clone(),
        });
        self.append(&e);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::candidates::{Action, Site};

    fn fault(nth: u64) -> Fault {
        Fault {
            action: Action::Delay,
            site: Site {
                node: "n0".into(),
                call: "recvfrom".into(),
                class: "data".into(),
                peer: None,
                file: None,
            },
            nth,
            max_bytes: None,
        }
    }

    #[test]
    fn the_most_reproducible_candidate_wins_then_the_smallest_then_the_first() {
        let found = vec![fault(12)];
        let earliest = vec![fault(1)];
        let two = vec![fault(1), fault(3)];
        // 6/10 at the index found beats 2/10 at the earliest.
        assert_eq!(best(&[(&found, 6), (&earliest, 2)]), Some(0));
        // Equal rates: the lower index.
        assert_eq!(best(&[(&found, 6), (&earliest, 6)]), Some(1));
        // Equal rates: fewer faults before lower indices.
        assert_eq!(best(&[(&two, 9), (&found, 9)]), Some(1));
        // Equal in every way: the first.
        assert_eq!(best(&[(&found, 3), (&found, 3)]), Some(0));
        assert_eq!(best(&[]), None);
    }
}
