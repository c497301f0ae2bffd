//! `ordeal merge`: shard directories (or any journaled campaign directories of the same
//! campaign) into one campaign result and report (docs/scale.md).
//!
//! Exploration run i is taken from the shard that owns it (i mod N). Unique behaviours are
//! deduplicated by fingerprint, failures by signature (hits and runs summed over the owned
//! runs; the minimal schedule of the shard that found the failure first, by run index;
//! reproduction reruns of every shard that measured it summed). The baselines are the owned
//! baseline runs, the fault-free reruns those of every shard, and each failure is judged
//! against them again.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use crate::baseline::Baselines;
use crate::config::Config;
use crate::journal::{self, CampaignHeader, Entry, FailureEntry, RunEntry, Shard};
use crate::model::{
    Behaviour, Budget, CandidateStats, Failure, Outcome, Phases, Reproduction, RunRecord,
};
use crate::schedule::schedule_toml;
use crate::strategy::StrategyKind;
use crate::Error;
use ordeal_hb::Status;

/// One shard directory, read.
struct Part {
    dir: PathBuf,
    header: CampaignHeader,
    shard: Shard,
    runs: Vec<RunEntry>,
    failures: Vec<FailureEntry>,
    stopped: String,
}

fn refuse(msg: String) -> Error {
    Error::Usage(msg)
}

/// Checks that `h` (of `dir`) belongs to the same campaign as `h0` (of `dir0`).
fn compatible(
    dir0: &Path,
    h0: &CampaignHeader,
    dir: &Path,
    h: &CampaignHeader,
) -> Result<(), Error> {
    let d0 = dir0.display();
    let d = dir.display();
    if h.ordeal_version != h0.ordeal_version {
        return Err(refuse(format!(
            "{d} was written by ordeal {}, {d0} by ordeal {}: campaigns of different versions are not merged",
            h.ordeal_version, h0.ordeal_version
        )));
    }
    if h.experiment != h0.experiment || h.experiment_hash != h0.experiment_hash {
        return Err(refuse(format!(
            "{d} is a campaign of experiment {:?} (hash {}), {d0} of {:?} (hash {}): not the same experiment (file text and variables must be identical)",
            h.experiment, h.experiment_hash, h0.experiment, h0.experiment_hash
        )));
    }
    let setting = |name: &str, a: String, b: String| -> Result<(), Error> {
        if a != b {
            Err(refuse(format!(
                "{d} has {name} {a}, {d0} has {name} {b}: not shards of the same campaign"
            )))
        } else {
            Ok(())
        }
    };
    setting("seed", h.seed.to_string(), h0.seed.to_string())?;
    setting("strategy", h.strategy.clone(), h0.strategy.clone())?;
    setting("-j", h.jobs.to_string(), h0.jobs.to_string())?;
    setting(
        "--baselines",
        h.baselines.unwrap_or(h.jobs as u64).to_string(),
        h0.baselines.unwrap_or(h0.jobs as u64).to_string(),
    )?;
    setting("--runs", format!("{:?}", h.runs), format!("{:?}", h0.runs))?;
    setting("--reruns", h.reruns.to_string(), h0.reruns.to_string())?;
    setting("shrinking", h.shrink.to_string(), h0.shrink.to_string())?;
    setting(
        "fault model",
        serde_json::to_string(&h.model).unwrap_or_default(),
        serde_json::to_string(&h0.model).unwrap_or_default(),
    )?;
    let n = |x: &CampaignHeader| x.shard.map_or(1, |s| s.count);
    setting("shard count", n(h).to_string(), n(h0).to_string())?;
    Ok(())
}

fn read_part(dir: &Path, warnings: &mut Vec<String>) -> Result<Part, Error> {
    let header = journal::read_header(dir)?;
    let shard = header.shard.unwrap_or(Shard { index: 0, count: 1 });
    let (entries, bad) = journal::read_journal(dir)?;
    for b in bad {
        warnings.push(format!("{b}: skipped"));
    }
    let mut runs: Vec<RunEntry> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut failures: BTreeMap<String, FailureEntry> = BTreeMap::new();
    for (_, e) in entries {
        match e {
            Entry::Run(r) => {
                if seen.insert(r.key.clone()) {
                    runs.push(r);
                }
            }
            Entry::Failure(f) => {
                failures.insert(f.signature.clone(), f);
            }
        }
    }
    let stopped = std::fs::read_to_string(dir.join("explore.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| {
            v.get("stopped")
                .and_then(|s| s.as_str())
                .map(str::to_string)
        })
        .unwrap_or_else(|| "unfinished".into());
    if stopped == "unfinished" {
        warnings.push(format!(
            "{}: the campaign did not finish (no explore.json): resume it first for a complete result",
            dir.display()
        ));
    }
    Ok(Part {
        dir: dir.to_path_buf(),
        header,
        shard,
        runs,
        failures: failures.into_values().collect(),
        stopped,
    })
}

/// Merges `dirs` into `out` (explore.json, junit.xml, report.html, ...).
pub fn merge(dirs: &[PathBuf], out: &Path, exe: PathBuf) -> Result<Outcome, Error> {
    if dirs.is_empty() {
        return Err(refuse(
            "nothing to merge: give the shard directories".into(),
        ));
    }
    let out = std::path::absolute(out).map_err(|e| Error::io(out, e))?;
    if out.exists()
        && std::fs::read_dir(&out)
            .map_err(|e| Error::io(&out, e))?
            .next()
            .is_some()
    {
        return Err(refuse(format!(
            "{} exists and is not empty (choose another --out)",
            out.display()
        )));
    }
    let mut warnings = Vec::new();
    let mut parts = Vec::new();
    for d in dirs {
        let d = std::path::absolute(d).map_err(|e| Error::io(d, e))?;
        parts.push(read_part(&d, &mut warnings)?);
    }
    parts.sort_by_key(|p| p.shard.index);
    for p in &parts[1..] {
        compatible(&parts[0].dir, &parts[0].header, &p.dir, &p.header)?;
    }
    for w in parts.windows(2) {
        if w[0].shard.index == w[1].shard.index {
            return Err(refuse(format!(
                "{} and {} are the same shard {}",
                w[0].dir.display(),
                w[1].dir.display(),
                w[0].shard
            )));
        }
    }
    let count = parts[0].shard.count;
    let missing: Vec<String> = (0..count)
        .filter(|i| !parts.iter().any(|p| p.shard.index == *i))
        .map(|i| format!("{i}/{count}"))
        .collect();
    if !missing.is_empty() {
        warnings.push(format!(
            "shards {} missing: the result covers only the shards given",
            missing.join(", ")
        ));
    }
    let h = parts[0].header.clone();
    let mut exp = ordeal_experiment::Experiment::parse(&h.experiment_text, &h.experiment_path)
        .map_err(|e| refuse(format!("{}: {e}", parts[0].dir.display())))?;
    for kv in &h.set {
        if let Some((k, v)) = kv.split_once('=') {
            exp.set_var(k, v)
                .map_err(|e| refuse(format!("{}: --set {kv}: {e}", parts[0].dir.display())))?;
        }
    }
    let strategy = StrategyKind::parse(&h.strategy).unwrap_or(StrategyKind::Systematic);
    let mut cfg = Config::recorded(&h, exp, strategy, exe, out.clone());
    cfg.shard = None;

    // Exploration runs, each from the shard that owns it, in run order.
    let mut owned: BTreeMap<u64, (&Part, &RunEntry)> = BTreeMap::new();
    for p in &parts {
        for r in p.runs.iter().filter(|r| r.phase == "explore") {
            if p.shard.owns(r.id) {
                owned.entry(r.id).or_insert((p, r));
            }
        }
    }
    let mut behaviours: Vec<Behaviour> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut discovery = Vec::new();
    let mut failures: Vec<Failure> = Vec::new();
    let mut baselines = Baselines::default();
    let mut errors = Vec::new();
    let mut log = Vec::new();
    let mut phases_sum = Phases::default();
    let mut wall_sum = 0.0;
    let mut timed = 0u64;
    let mut tried_by_kind: BTreeMap<String, u64> = BTreeMap::new();
    let mut tried = 0usize;
    let mut runs = 0u64;
    for (&id, &(p, r)) in &owned {
        runs += 1;
        let names: Vec<String> = r.faults.iter().map(|f| f.to_string()).collect();
        if let Some(last) = r.faults.last() {
            tried += 1;
            *tried_by_kind
                .entry(last.action.name().to_string())
                .or_insert(0) += 1;
        }
        let dir = p.dir.join(&r.dir);
        let a = match &r.result {
            Ok(a) => a,
            Err(e) => {
                let rec = RunRecord::of(
                    id,
                    "explore",
                    dir.display().to_string(),
                    dir.exists(),
                    names,
                    Err(e),
                    false,
                );
                errors.push(rec.clone());
                log.push(rec);
                discovery.push((runs, behaviours.len()));
                continue;
            }
        };
        phases_sum.add(&a.phases);
        wall_sum += a.wall.as_secs_f64() * 1000.0 + a.phases.analysis;
        timed += 1;
        let new = !index.contains_key(&a.fingerprint);
        match index.get(&a.fingerprint) {
            Some(&i) => behaviours[i].runs += 1,
            None => {
                index.insert(a.fingerprint.clone(), behaviours.len());
                behaviours.push(Behaviour {
                    fingerprint: a.fingerprint.clone(),
                    runs: 1,
                    first_run: id,
                    outcome: a.outcome.clone(),
                });
            }
        }
        discovery.push((runs, behaviours.len()));
        if id < cfg.baselines {
            baselines.add(id, a);
        }
        if let Some(sig) = &a.signature {
            match failures.iter_mut().find(|f| f.signature == *sig) {
                Some(f) => {
                    f.hits += 1;
                    f.runs.push(id);
                }
                None => {
                    let toml = schedule_toml(&r.faults, &h.model, h.seed)?;
                    failures.push(Failure::first_hit(
                        failures.len() + 1,
                        id,
                        a,
                        &r.faults,
                        toml,
                        dir.display().to_string(),
                        &dir,
                    ));
                }
            }
        }
        let rec = RunRecord::of(
            id,
            "explore",
            dir.display().to_string(),
            dir.exists(),
            names,
            Ok(a),
            new,
        );
        if a.status == Status::Error {
            errors.push(rec.clone());
        }
        log.push(rec);
    }

    // Shrinking and reruns: each shard shrank the failures it found.
    let mut shrink_runs = 0u64;
    let mut rerun_runs = 0u64;
    for p in &parts {
        for r in p.runs.iter().filter(|r| r.phase != "explore") {
            let dir = p.dir.join(&r.dir);
            let phase: &'static str = if r.phase == "shrink" {
                shrink_runs += 1;
                "shrink"
            } else {
                rerun_runs += 1;
                if r.key.starts_with("rerun:baseline:") {
                    baselines.add_rerun(&r.result);
                }
                "rerun"
            };
            log.push(RunRecord::of(
                log.len() as u64,
                phase,
                dir.display().to_string(),
                dir.exists(),
                r.faults.iter().map(|f| f.to_string()).collect(),
                r.result.as_ref(),
                false,
            ));
        }
    }
    for f in &mut failures {
        let found: Vec<(&Part, &FailureEntry)> = parts
            .iter()
            .flat_map(|p| p.failures.iter().map(move |e| (p, e)))
            .filter(|(_, e)| e.signature == f.signature)
            .collect();
        if let Some((p, e)) = found
            .iter()
            .min_by_key(|(p, e)| (e.first_run, p.shard.index))
        {
            f.minimal = e.minimal.clone();
            f.minimal_faults = e.minimal.iter().map(|x| x.to_string()).collect();
            f.minimal_schedule = schedule_toml(&e.minimal, &h.model, h.seed)?;
            f.original = e.original.clone();
            f.original_faults = e.original.iter().map(|x| x.to_string()).collect();
            f.original_schedule = schedule_toml(&e.original, &h.model, h.seed)?;
            f.shrink_runs = e.shrink_runs;
            f.measured = e.measured.clone();
            let d = p.dir.join(&e.run_dir);
            f.run_dir = d.display().to_string();
            f.replay = format!("ordeal replay {}", d.display());
        }
        let measured: Vec<&Reproduction> = found
            .iter()
            .filter_map(|(_, e)| e.reproduction.as_ref())
            .collect();
        if !measured.is_empty() {
            let runs: u32 = measured.iter().map(|r| r.runs).sum();
            let failed: u32 = measured.iter().map(|r| r.failed).sum();
            f.reproduction = Some(Reproduction::new(runs, failed));
        }
        let originals: Vec<&Reproduction> = found
            .iter()
            .filter_map(|(_, e)| e.original_reproduction.as_ref())
            .collect();
        if !originals.is_empty() {
            let runs: u32 = originals.iter().map(|r| r.runs).sum();
            let failed: u32 = originals.iter().map(|r| r.failed).sum();
            f.original_reproduction = Some(Reproduction::new(runs, failed));
        }
        baselines.judge(f);
    }
    let mut stops: Vec<String> = parts.iter().map(|p| p.stopped.clone()).collect();
    stops.sort();
    stops.dedup();
    behaviours.sort_by(|a, b| b.runs.cmp(&a.runs).then(a.first_run.cmp(&b.first_run)));
    let mean = if timed > 0 {
        phases_sum.scaled(1.0 / timed as f64)
    } else {
        Phases::default()
    };
    let outcome = Outcome {
        schema: "ordeal-explore",
        version: 1,
        experiment: h.experiment.clone(),
        set: h.set.clone(),
        strategy: h.strategy.clone(),
        seed: h.seed,
        jobs: h.jobs,
        budget: Budget {
            runs: h.runs,
            time_s: h.time_s,
            until_stable: h.until_stable,
            stop_after: h.stop_after,
        },
        model: h.model.clone(),
        stopped: stops.join(", "),
        interrupted: false,
        runs,
        baseline_runs: owned.keys().filter(|&&i| i < cfg.baselines).count() as u64,
        shrink_runs,
        rerun_runs,
        elapsed_s: 0.0,
        explore_s: 0.0,
        runs_per_minute: 0.0,
        baseline_failed: baselines.alarm(),
        baseline_behaviours: baselines.behaviours(),
        baselines,
        unique_behaviours: behaviours.len(),
        discovery,
        behaviours,
        candidates: CandidateStats {
            mined: 0,
            tried,
            remaining: 0,
            remaining_pairs: 0,
            tried_by_kind,
        },
        failures,
        errors,
        mean_phases_ms: mean,
        mean_run_ms: if timed > 0 {
            wall_sum / timed as f64
        } else {
            0.0
        },
        run_log: log,
        shard: None,
        merged_from: parts
            .iter()
            .map(|p| format!("{} ({})", p.dir.display(), p.shard))
            .collect(),
        warnings,
    };
    std::fs::create_dir_all(&out).map_err(|e| Error::io(&out, e))?;
    crate::report::write_all(&out, &outcome, &cfg)?;
    Ok(outcome)
}
