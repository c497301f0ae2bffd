//! Shrinking and reruns: each distinct failure's schedule made minimal with ddmin (over its
//! faults, then towards earlier trigger indices), and the minimal schedule rerun for its
//! reproduction rate.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::State;
use crate::candidates::Fault;
use crate::ddmin::ddmin;
use crate::journal::{Entry, FailureEntry};
use crate::model::{Analysis, Reproduction, RunRecord};
use crate::pool::Meta;
use crate::schedule::schedule_toml;
use crate::{Error, RunError};

impl State {
    /// Runs `batch` (journal keys, directories and schedules) on the pool and returns the
    /// results in order.
    fn run_batch(
        &mut self,
        phase: &'static str,
        batch: Vec<(String, PathBuf, Vec<Fault>)>,
    ) -> Vec<Result<Analysis, RunError>> {
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

    /// Shrinks every distinct failure to a minimal schedule and reruns it.
    pub(super) fn shrink_and_rerun(&mut self, cancel: &AtomicBool) -> Result<(), Error> {
        for fi in 0..self.failures.len() {
            if cancel.load(Ordering::SeqCst) {
                return Ok(());
            }
            let fdir = self.cfg.out.join("failures").join(&self.failures[fi].id);
            let sig = self.failures[fi].signature.clone();
            let original = self.failures[fi].original.clone();
            self.progress.say(&format!(
                "{}: shrinking {} fault(s), then {} reruns: {}",
                self.failures[fi].id,
                original.len(),
                self.cfg.reruns,
                sig
            ));
            let mut minimal = original.clone();
            let mut shrink_runs = 0u32;
            if self.cfg.shrink && !original.is_empty() {
                let mut counter = 0u32;
                // ddmin over the faults.
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
                        matches!(&r[0], Ok(a) if a.signature.as_deref() == Some(sig.as_str()))
                    };
                    minimal = ddmin(&original, &mut test);
                }
                // Earlier trigger indices: the smallest that still fails, tried in parallel.
                for k in 0..minimal.len() {
                    if cancel.load(Ordering::SeqCst) {
                        break;
                    }
                    let n = minimal[k].nth;
                    let mut nths: Vec<u64> = [1, n / 4, n / 2, (3 * n) / 4, n.saturating_sub(1)]
                        .into_iter()
                        .filter(|&x| x >= 1 && x < n)
                        .collect();
                    nths.sort();
                    nths.dedup();
                    if nths.is_empty() {
                        continue;
                    }
                    let batch: Vec<(String, PathBuf, Vec<Fault>)> = nths
                        .iter()
                        .map(|&x| {
                            counter += 1;
                            let mut s = minimal.clone();
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
                    let mut best: Option<Vec<Fault>> = None;
                    for ((_, dir, s), r) in batch.iter().zip(&results) {
                        self.extra_record("shrink", dir, s, r);
                        let fails =
                            matches!(r, Ok(a) if a.signature.as_deref() == Some(sig.as_str()));
                        if fails && best.is_none() {
                            best = Some(s.clone());
                        }
                    }
                    if let Some(b) = best {
                        minimal = b;
                    }
                }
                shrink_runs = counter;
            }
            let minimal_toml = schedule_toml(&minimal, &self.cfg.model, self.cfg.seed)?;
            let _ = std::fs::create_dir_all(&fdir);
            let _ = std::fs::write(fdir.join("schedule.toml"), &minimal_toml);
            let _ = std::fs::write(
                fdir.join("original.toml"),
                &self.failures[fi].original_schedule,
            );
            // Reproduction rate of the minimal schedule.
            let mut reproduction = None;
            let mut failing_dir: Option<PathBuf> = None;
            if self.cfg.reruns > 0 && !cancel.load(Ordering::SeqCst) {
                let batch: Vec<(String, PathBuf, Vec<Fault>)> = (0..self.cfg.reruns)
                    .map(|i| {
                        (
                            format!("rerun:{sig}:{i}"),
                            fdir.join("reruns").join(format!("{i:02}")),
                            minimal.clone(),
                        )
                    })
                    .collect();
                let results = self.run_batch("rerun", batch.clone());
                self.rerun_runs += batch.len() as u64;
                let mut failed = 0u32;
                for ((_, dir, s), r) in batch.iter().zip(&results) {
                    self.extra_record("rerun", dir, s, r);
                    if matches!(r, Ok(a) if a.signature.as_deref() == Some(sig.as_str())) {
                        failed += 1;
                        if failing_dir.is_none() {
                            failing_dir = Some(dir.clone());
                        }
                    }
                }
                if !cancel.load(Ordering::SeqCst) {
                    reproduction = Some(Reproduction::new(self.cfg.reruns, failed));
                }
            }
            let f = &mut self.failures[fi];
            f.minimal_faults = minimal.iter().map(|x| x.to_string()).collect();
            f.minimal_schedule = minimal_toml;
            f.minimal = minimal;
            f.shrink_runs = shrink_runs;
            f.reproduction = reproduction;
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
            let journaled = self
                .journaled_failures
                .contains(&self.failures[fi].signature);
            if !cancel.load(Ordering::SeqCst) && !journaled {
                let f = &self.failures[fi];
                let e = Entry::Failure(FailureEntry {
                    id: f.id.clone(),
                    signature: f.signature.clone(),
                    first_run: f.first_run,
                    original: f.original.clone(),
                    minimal: f.minimal.clone(),
                    shrink_runs: f.shrink_runs,
                    reproduction: f.reproduction.clone(),
                    run_dir: f.run_dir.clone(),
                });
                self.append(&e);
            }
        }
        Ok(())
    }
}
