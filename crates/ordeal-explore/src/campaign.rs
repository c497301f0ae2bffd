//! The campaign: the exploration loop over the worker pool (runs chosen and taken in, in run
//! order), the journal it keeps, and the campaign's [`Outcome`]. Shrinking and reruns follow
//! (`shrink`).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ordeal_faults::Participants;
use ordeal_hb::Status;

use crate::baseline::Baselines;
use crate::candidates::Fault;
use crate::config::Config;
use crate::execute::{ms, Shared};
use crate::journal::{self, Entry, Journal, RunEntry};
use crate::model::{
    Analysis, Behaviour, Budget, CandidateStats, Failure, Outcome, Phases, RunRecord,
};
use crate::pool::{Done, Job, Meta, Pool};
use crate::progress::{Progress, Snapshot};
use crate::rng::Rng;
use crate::schedule::schedule_toml;
use crate::strategy::Knowledge;
use crate::{Error, RunError};

mod shrink;

/// The campaign directory's layout.
pub fn run_dir(out: &Path, id: u64) -> PathBuf {
    out.join("runs").join(format!("{id:06}"))
}

struct State {
    cfg: Config,
    pool: Pool,
    knowledge: Knowledge,
    rng: Rng,
    behaviours: Vec<Behaviour>,
    index: HashMap<String, usize>,
    discovery: Vec<(u64, usize)>,
    failures: Vec<Failure>,
    baselines: Baselines,
    errors: Vec<RunRecord>,
    log: Vec<RunRecord>,
    phases_sum: Phases,
    wall_sum: f64,
    timed_runs: u64,
    explore_runs: u64,
    tried_by_kind: BTreeMap<String, u64>,
    tried: usize,
    shrink_runs: u64,
    rerun_runs: u64,
    progress: Progress,
    t0: Instant,
    next_extra: u64,
    journal: Journal,
    /// Finished runs of the journal (resume), by key.
    recorded: HashMap<String, RunEntry>,
    /// Signatures of the failures the journal already closes with a `failure` line (resume):
    /// shrinking them again from recorded runs must not journal them twice.
    journaled_failures: std::collections::HashSet<String>,
    /// Results pinned by the test hook, by key.
    pinned: BTreeMap<String, RunEntry>,
    /// Results taken from the journal, delivered before the pool's.
    ready: VecDeque<Done>,
    /// Sharded campaigns: the schedules of runs J.., chosen from the baselines.
    plan: Option<Vec<Vec<Fault>>>,
    cancel: Arc<AtomicBool>,
    /// The first journal write that failed (durability is lost: the campaign stops).
    journal_error: Option<Error>,
    warnings: Vec<String>,
}

/// The exploration loop's bookkeeping.
#[derive(Default)]
struct Cursor {
    next_id: u64,
    /// Dispatched, not incorporated, in run order.
    pending: VecDeque<u64>,
    in_flight: BTreeMap<u64, Vec<Fault>>,
    buffer: BTreeMap<u64, Result<Analysis, RunError>>,
    incorporated: u64,
    since_new: u64,
    stopped: Option<String>,
    exhausted: bool,
}

/// Runs a campaign and writes explore.json, junit.xml and report.html into `cfg.out`; with
/// `cfg.resume`, continues the campaign journaled there.
pub fn explore(cfg: Config, cancel: Arc<AtomicBool>) -> Result<Outcome, Error> {
    let out = absolute(&cfg.out)?;
    let mut recorded: HashMap<String, RunEntry> = HashMap::new();
    let mut journaled_failures = std::collections::HashSet::new();
    let mut warnings = Vec::new();
    if cfg.resume {
        let on_disk = journal::read_header(&out)?;
        let mut mine = cfg.header();
        mine.experiment_path = on_disk.experiment_path.clone();
        if on_disk.baselines.is_none() && mine.baselines == Some(cfg.jobs as u64) {
            // Written before --baselines: its baselines were the first J runs.
            mine.baselines = None;
        }
        if on_disk != mine {
            return Err(Error::Usage(format!(
                "{}: the settings given differ from the campaign's {} (resume takes them from there)",
                out.display(),
                journal::HEADER_FILE
            )));
        }
        let (entries, bad) = journal::read_journal(&out)?;
        for b in &bad {
            warnings.push(format!("{b}: ignored, the run is done again"));
        }
        for (_, e) in entries {
            match e {
                Entry::Run(r) => {
                    recorded.entry(r.key.clone()).or_insert(r);
                }
                Entry::Failure(f) => {
                    journaled_failures.insert(f.signature);
                }
            }
        }
        if !bad.is_empty() {
            let lines: Vec<usize> = bad.iter().map(|b| b.line).collect();
            journal::drop_lines(&out, &lines)?;
        }
        let done: std::collections::HashSet<&str> =
            recorded.values().map(|r| r.dir.as_str()).collect();
        for d in journal::run_dirs(&out) {
            if !done.contains(d.as_str()) {
                // Half-written: started, never journaled.
                let p = out.join(&d);
                std::fs::remove_dir_all(&p).map_err(|e| Error::io(&p, e))?;
            }
        }
        for f in ["explore.json", "junit.xml", "report.html"] {
            let _ = std::fs::remove_file(out.join(f));
        }
    } else {
        if out.exists()
            && std::fs::read_dir(&out)
                .map_err(|e| Error::io(&out, e))?
                .next()
                .is_some()
        {
            return Err(Error::Usage(format!(
                "campaign directory {} exists and is not empty (choose another --out, or --resume it)",
                out.display()
            )));
        }
        std::fs::create_dir_all(out.join("runs")).map_err(|e| Error::io(&out, e))?;
        journal::write_header(&out, &cfg.header())?;
    }
    std::fs::create_dir_all(out.join("runs")).map_err(|e| Error::io(&out, e))?;
    let journal = Journal::open(&out)?;
    let mut cfg = cfg;
    cfg.out = out;
    cfg.jobs = cfg.jobs.max(1);
    cfg.baselines = cfg.baselines.max(1);
    let names = Participants::new(cfg.experiment.node_names(), cfg.experiment.workload_names())
        .with_roles(cfg.experiment.role_names());
    // Points are named by role where the runs say who held which (explore's `roles`).
    cfg.model.roles = names.roles.clone();
    let shared = Arc::new(Shared {
        exp: cfg.experiment.clone(),
        replay: cfg.replay.clone(),
        exe: cfg.ordeal_exe.clone(),
        model: cfg.model.clone(),
        seed: cfg.seed,
        names: names.clone(),
        cancel: Arc::clone(&cancel),
    });
    let pool = Pool::start(cfg.jobs, shared);
    // A role's holder is a node: node faults apply at its points.
    let knowledge = Knowledge::new(
        cfg.model.clone(),
        names.nodes.iter().chain(&names.roles).cloned(),
    );
    let mut progress = Progress::new(cfg.progress, cfg.runs, cfg.time);
    for w in &warnings {
        progress.say(&format!("warning: {w}"));
    }
    if !recorded.is_empty() {
        progress.say(&format!(
            "resuming: {} finished runs from the journal",
            recorded.len()
        ));
    }
    let mut st = State {
        rng: Rng::new(cfg.seed),
        cfg,
        pool,
        knowledge,
        behaviours: Vec::new(),
        index: HashMap::new(),
        discovery: Vec::new(),
        failures: Vec::new(),
        baselines: Baselines::default(),
        errors: Vec::new(),
        log: Vec::new(),
        phases_sum: Phases::default(),
        wall_sum: 0.0,
        timed_runs: 0,
        explore_runs: 0,
        tried_by_kind: BTreeMap::new(),
        tried: 0,
        shrink_runs: 0,
        rerun_runs: 0,
        progress,
        t0: Instant::now(),
        next_extra: 0,
        journal,
        recorded,
        journaled_failures,
        pinned: journal::pinned_results(),
        ready: VecDeque::new(),
        plan: None,
        cancel: Arc::clone(&cancel),
        journal_error: None,
        warnings,
    };
    let stopped = st.exploration(&cancel)?;
    let explore_s = st.t0.elapsed().as_secs_f64();
    st.progress.finish_line();
    if !cancel.load(Ordering::SeqCst) && st.journal_error.is_none() {
        st.shrink_and_rerun(&cancel)?;
    }
    if let Some(e) = st.journal_error.take() {
        return Err(e);
    }
    let interrupted = cancel.load(Ordering::SeqCst);
    let outcome = st.outcome(
        if interrupted && stopped != "interrupted" {
            "interrupted".into()
        } else {
            stopped
        },
        interrupted,
        explore_s,
    );
    crate::report::write_all(&st.cfg.out, &outcome, &st.cfg)?;
    Ok(outcome)
}

fn absolute(p: &Path) -> Result<PathBuf, Error> {
    if p.is_absolute() {
        return Ok(p.to_path_buf());
    }
    let cwd = std::env::current_dir().map_err(|e| Error::io(Path::new("."), e))?;
    Ok(cwd.join(p))
}

impl State {
    fn snapshot(&self, in_flight: usize) -> Snapshot {
        Snapshot {
            runs: self.explore_runs,
            in_flight,
            unique: self.behaviours.len(),
            failures: self.failures.len(),
            failing_runs: self.failures.iter().map(|f| f.hits).sum(),
            elapsed: self.t0.elapsed(),
        }
    }

    /// Starts a run, or takes its result from the journal when it finished before.
    fn dispatch(&mut self, id: u64, meta: Meta) {
        if let Some(r) = self.recorded.get(&meta.key) {
            if r.faults == meta.faults {
                let result = r.result.clone();
                self.ready.push_back(Done {
                    id,
                    meta,
                    result,
                    recorded: true,
                });
                return;
            }
            self.warnings.push(format!(
                "{}: the journal recorded another schedule ({}); run again",
                meta.key,
                r.faults
                    .iter()
                    .map(|f| f.to_string())
                    .collect::<Vec<_>>()
                    .join("; ")
            ));
            let _ = std::fs::remove_dir_all(&meta.dir);
        }
        let pinned = self
            .pinned
            .get(&meta.key)
            .filter(|r| r.faults == meta.faults)
            .map(|r| r.result.clone());
        self.pool.send(Job { id, meta, pinned });
    }

    /// The next finished run: journaled ones first, then the pool's (journaled as they come).
    fn receive(&mut self, timeout: Duration) -> Result<Option<Done>, Error> {
        if let Some(d) = self.ready.pop_front() {
            return Ok(Some(d));
        }
        match self.pool.recv_timeout(timeout) {
            Ok(d) => {
                self.record(&d);
                Ok(Some(d))
            }
            Err(mpsc::RecvTimeoutError::Timeout) => Ok(None),
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                Err(Error::Usage("internal: the worker threads are gone".into()))
            }
        }
    }

    /// Appends a finished run to the journal (fsynced). Runs cut short by an interruption are
    /// not finished: a resume does them again.
    fn record(&mut self, d: &Done) {
        if d.recorded {
            return;
        }
        let cancelled = self.cancel.load(Ordering::SeqCst);
        match &d.result {
            Ok(a) if a.interrupted => return,
            Err(_) if cancelled => return,
            _ => {}
        }
        let rel = d
            .meta
            .dir
            .strip_prefix(&self.cfg.out)
            .unwrap_or(&d.meta.dir)
            .display()
            .to_string();
        let e = Entry::Run(RunEntry {
            key: d.meta.key.clone(),
            phase: d.meta.phase.to_string(),
            id: d.meta.explore_id,
            dir: rel,
            faults: d.meta.faults.clone(),
            result: d.result.clone(),
        });
        self.append(&e);
    }

    fn append(&mut self, e: &Entry) {
        if let Err(err) = self.journal.append(e) {
            if self.journal_error.is_none() {
                self.progress
                    .say(&format!("cannot write the journal, stopping: {err}"));
                self.journal_error = Some(err);
                self.cancel.store(true, Ordering::SeqCst);
            }
        }
    }

    fn exploration(&mut self, cancel: &AtomicBool) -> Result<String, Error> {
        let mut c = Cursor::default();
        if cancel.load(Ordering::SeqCst) {
            c.stopped = Some("interrupted".into());
        } else {
            self.fill(&mut c);
        }
        loop {
            if c.stopped.is_none() {
                if cancel.load(Ordering::SeqCst) {
                    c.stopped = Some("interrupted".into());
                } else if self.cfg.time.is_some_and(|t| self.t0.elapsed() >= t) {
                    c.stopped = Some("time".into());
                }
            }
            if c.pending.is_empty() {
                // `fill` dispatches whenever it can: nothing pending means nothing left.
                if c.stopped.is_none() {
                    c.stopped = Some(if c.exhausted { "exhausted" } else { "runs" }.into());
                }
                break;
            }
            if let Some(d) = self.receive(Duration::from_millis(200))? {
                c.buffer.insert(d.id, d.result);
            }
            while let Some(&id) = c.pending.front() {
                let Some(result) = c.buffer.remove(&id) else {
                    break;
                };
                c.pending.pop_front();
                let faults = c.in_flight.remove(&id).unwrap_or_default();
                let new = self.incorporate(id, faults, result)?;
                c.since_new = if new { 0 } else { c.since_new + 1 };
                c.incorporated += 1;
                // Budgets that depend on results are checked here, in run order, so that
                // they stop every replay of the same results at the same run.
                if c.stopped.is_none() {
                    if self.cfg.until_stable.is_some_and(|k| c.since_new >= k) {
                        c.stopped = Some("stable".into());
                    } else if self
                        .cfg
                        .stop_after
                        .is_some_and(|k| self.failures.len() >= k)
                    {
                        c.stopped = Some("failures".into());
                    }
                }
                if c.stopped.is_none() && !cancel.load(Ordering::SeqCst) {
                    self.fill(&mut c);
                }
            }
            self.progress.update(&self.snapshot(c.pending.len()));
        }
        Ok(c.stopped.unwrap_or_else(|| "runs".into()))
    }

    /// Dispatches runs while fewer than J are pending. Called once at the start and after each
    /// incorporated run only, so run i (after the B baselines) is chosen after exactly runs
    /// 0..=max(i-J, B-1) were taken in: the same seed and the same results give the same
    /// choices, whatever the timing.
    fn fill(&mut self, c: &mut Cursor) {
        let jobs = self.cfg.jobs as u64;
        let baselines = self.cfg.baselines;
        while (c.pending.len() as u64) < jobs && self.cfg.runs.is_none_or(|n| c.next_id < n) {
            let id = c.next_id;
            let faults = if id < baselines {
                Vec::new()
            } else if c.incorporated < baselines {
                // Faulted runs are chosen from every baseline's points.
                break;
            } else if let Some(shard) = self.cfg.shard {
                // Planned: every schedule comes from the baselines, so that every shard
                // computes the same list and takes its own part of it.
                if self.plan.is_none() {
                    let n = self.cfg.runs.unwrap_or(0).saturating_sub(baselines);
                    let mut plan = Vec::new();
                    for _ in 0..n {
                        match self.knowledge.next(self.cfg.strategy, &mut self.rng) {
                            Some(f) => plan.push(f),
                            None => break,
                        }
                    }
                    self.plan = Some(plan);
                }
                let k = (id - baselines) as usize;
                let Some(f) = self.plan.as_ref().and_then(|p| p.get(k)).cloned() else {
                    c.exhausted = true;
                    break;
                };
                if !shard.owns(id) {
                    c.next_id += 1;
                    continue;
                }
                self.count_tried(&f);
                f
            } else {
                match self.knowledge.next(self.cfg.strategy, &mut self.rng) {
                    Some(f) => {
                        c.exhausted = false;
                        self.count_tried(&f);
                        f
                    }
                    None => {
                        c.exhausted = true;
                        break;
                    }
                }
            };
            let meta = Meta {
                key: format!("explore:{id}"),
                phase: "explore",
                explore_id: id,
                dir: run_dir(&self.cfg.out, id),
                faults: faults.clone(),
            };
            c.in_flight.insert(id, faults);
            c.pending.push_back(id);
            self.dispatch(id, meta);
            c.next_id += 1;
        }
    }

    fn count_tried(&mut self, f: &[Fault]) {
        self.tried += 1;
        if let Some(last) = f.last() {
            *self
                .tried_by_kind
                .entry(last.action.name().to_string())
                .or_insert(0) += 1;
        }
    }

    /// Takes in one exploration run, in run order. Returns whether its behaviour was new.
    fn incorporate(
        &mut self,
        id: u64,
        faults: Vec<Fault>,
        result: Result<Analysis, RunError>,
    ) -> Result<bool, Error> {
        let dir = run_dir(&self.cfg.out, id);
        let rel = format!("runs/{id:06}");
        let fault_names: Vec<String> = faults.iter().map(|f| f.to_string()).collect();
        let a = match result {
            Ok(a) => a,
            Err(e) => {
                if id < self.cfg.baselines {
                    // A fault-free run that cannot even be set up: nothing else will work.
                    return Err(Error::Setup { id, dir, source: e });
                }
                let rec = RunRecord::of(
                    id,
                    "explore",
                    rel,
                    dir.exists(),
                    fault_names,
                    Err(&e),
                    false,
                );
                self.errors.push(rec.clone());
                self.log.push(rec);
                self.explore_runs += 1;
                return Ok(false);
            }
        };
        if a.interrupted {
            let _ = std::fs::remove_dir_all(&dir);
            return Ok(false);
        }
        self.explore_runs += 1;
        self.phases_sum.add(&a.phases);
        self.wall_sum += ms(a.wall) + a.phases.analysis;
        self.timed_runs += 1;
        let new = !self.index.contains_key(&a.fingerprint);
        match self.index.get(&a.fingerprint) {
            Some(&i) => self.behaviours[i].runs += 1,
            None => {
                self.index
                    .insert(a.fingerprint.clone(), self.behaviours.len());
                self.behaviours.push(Behaviour {
                    fingerprint: a.fingerprint.clone(),
                    runs: 1,
                    first_run: id,
                    outcome: a.outcome.clone(),
                });
            }
        }
        self.discovery
            .push((self.explore_runs, self.behaviours.len()));
        let failed = a.status.is_failure();
        if id < self.cfg.baselines {
            self.baselines.add(id, &a);
            if failed {
                // Said at once and loudly: every later finding is measured against it.
                self.progress.say(&format!(
                    "BASELINE FAILED: run {id} fails without any fault ({}) — the system or the harness fails without any fault: fix that first",
                    a.causes.join("; ")
                ));
            }
        }
        if self.plan.is_none() {
            self.knowledge
                .learn(&faults, &a.occurrences, a.first_fired, new, failed);
            if !faults.is_empty() {
                self.knowledge
                    .note_effect(&faults, a.first_fired.is_some(), new);
            }
        }
        if let Some(sig) = &a.signature {
            match self.failures.iter_mut().find(|f| f.signature == *sig) {
                Some(f) => {
                    f.hits += 1;
                    f.runs.push(id);
                }
                None => {
                    let n = self.failures.len() + 1;
                    let toml = schedule_toml(&faults, &self.cfg.model, self.cfg.seed)?;
                    self.failures.push(Failure::first_hit(
                        n,
                        id,
                        &a,
                        &faults,
                        toml,
                        rel.clone(),
                        &dir,
                    ));
                }
            }
        }
        let keep = self.cfg.keep_runs || new || a.status != Status::Pass;
        if !keep {
            let _ = std::fs::remove_dir_all(&dir);
        }
        let rec = RunRecord::of(id, "explore", rel, keep, fault_names, Ok(&a), new);
        if a.status == Status::Error {
            self.errors.push(rec.clone());
        }
        self.log.push(rec);
        Ok(new)
    }

    fn outcome(&self, stopped: String, interrupted: bool, explore_s: f64) -> Outcome {
        let (remaining, remaining_pairs) = self.knowledge.remaining();
        let mean = if self.timed_runs > 0 {
            self.phases_sum.scaled(1.0 / self.timed_runs as f64)
        } else {
            Phases::default()
        };
        let mut behaviours = self.behaviours.clone();
        behaviours.sort_by(|a, b| b.runs.cmp(&a.runs).then(a.first_run.cmp(&b.first_run)));
        let mut failures = self.failures.clone();
        for f in &mut failures {
            self.baselines.judge(f);
        }
        Outcome {
            schema: "ordeal-explore",
            version: 1,
            experiment: self.cfg.experiment.name().to_string(),
            set: self.cfg.replay.set.clone(),
            strategy: self.cfg.strategy.name().to_string(),
            seed: self.cfg.seed,
            jobs: self.cfg.jobs,
            budget: Budget {
                runs: self.cfg.runs,
                time_s: self.cfg.time.map(|t| t.as_secs()),
                until_stable: self.cfg.until_stable,
                stop_after: self.cfg.stop_after,
            },
            model: self.cfg.model.clone(),
            stopped,
            interrupted,
            runs: self.explore_runs,
            baseline_runs: self.cfg.baselines.min(self.explore_runs),
            shrink_runs: self.shrink_runs,
            rerun_runs: self.rerun_runs,
            elapsed_s: self.t0.elapsed().as_secs_f64(),
            explore_s,
            runs_per_minute: if explore_s > 0.0 {
                self.explore_runs as f64 * 60.0 / explore_s
            } else {
                0.0
            },
            baseline_failed: self.baselines.alarm(),
            baselines: self.baselines.clone(),
            baseline_behaviours: self.baselines.behaviours(),
            unique_behaviours: self.behaviours.len(),
            discovery: self.discovery.clone(),
            behaviours,
            candidates: CandidateStats {
                mined: self.knowledge.mined(),
                tried: self.tried,
                remaining,
                remaining_pairs,
                tried_by_kind: self.tried_by_kind.clone(),
            },
            failures,
            errors: self.errors.clone(),
            mean_phases_ms: mean,
            mean_run_ms: if self.timed_runs > 0 {
                self.wall_sum / self.timed_runs as f64
            } else {
                0.0
            },
            run_log: self.log.clone(),
            shard: self.cfg.shard.map(|s| s.to_string()),
            merged_from: Vec::new(),
            warnings: self.warnings.clone(),
        }
    }
}
