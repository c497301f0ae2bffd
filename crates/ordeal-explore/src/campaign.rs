//! The campaign: worker threads running runs, the exploration loop, shrinking and reruns.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ordeal_events::{Header, TraceReader};
use ordeal_experiment::Experiment;
use ordeal_faults::{Participants, Schedule};
use ordeal_hb::{HbGraph, Status};
use serde::{Deserialize, Serialize};

use crate::candidates::{mine, schedule_toml, Fault, FaultModel, Occurrence};
use crate::ddmin::ddmin;
use crate::fingerprint::fingerprint;
use crate::journal::{self, CampaignHeader, Entry, FailureEntry, Journal, RunEntry, Shard};
use crate::progress::{Progress, ProgressMode, Snapshot};
use crate::rng::Rng;
use crate::signature;
use crate::strategy::{Knowledge, StrategyKind};
use crate::Error;

/// What `ordeal replay` needs, written as `replay.json` in every run directory (the same
/// record `ordeal run` writes).
#[derive(Debug, Clone, Serialize)]
pub struct ReplaySource {
    pub experiment_path: PathBuf,
    pub experiment: String,
    pub set: Vec<String>,
}

/// A campaign's settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// The experiment, variables already set.
    pub experiment: Experiment,
    pub replay: ReplaySource,
    pub ordeal_exe: PathBuf,
    /// The campaign directory (must not exist or be empty).
    pub out: PathBuf,
    /// Exploration runs (fault-free baselines included).
    pub runs: Option<u64>,
    /// Time budget of the exploration.
    pub time: Option<Duration>,
    /// Stop after this many consecutive runs without a new behaviour.
    pub until_stable: Option<u64>,
    /// Runs in parallel.
    pub jobs: usize,
    pub seed: u64,
    pub strategy: StrategyKind,
    /// Reruns of each minimal schedule to measure its reproduction rate.
    pub reruns: u32,
    pub shrink: bool,
    /// Stop exploring once this many distinct failures were found.
    pub stop_after: Option<usize>,
    pub model: FaultModel,
    /// Keep the directory of every run (default: only failing, erroneous and first-of-a-kind).
    pub keep_runs: bool,
    pub progress: ProgressMode,
    /// This campaign's part of a sharded campaign (docs/scale.md): exploration run i belongs
    /// to shard i mod N, and choices are planned from the baseline runs only.
    pub shard: Option<Shard>,
    /// Continue the interrupted campaign in `out` (its journal) instead of starting one.
    pub resume: bool,
}

impl Config {
    /// The campaign header of these settings.
    pub fn header(&self) -> CampaignHeader {
        CampaignHeader {
            format: journal::FORMAT.into(),
            journal_version: journal::JOURNAL_VERSION,
            ordeal_version: journal::ORDEAL_VERSION.into(),
            experiment: self.experiment.name().to_string(),
            experiment_hash: journal::experiment_hash(
                &self.replay.experiment,
                self.experiment.vars(),
            ),
            experiment_path: self.replay.experiment_path.clone(),
            experiment_text: self.replay.experiment.clone(),
            set: self.replay.set.clone(),
            seed: self.seed,
            strategy: self.strategy.name().to_string(),
            jobs: self.jobs,
            runs: self.runs,
            time_s: self.time.map(|t| t.as_secs()),
            until_stable: self.until_stable,
            stop_after: self.stop_after,
            reruns: self.reruns,
            shrink: self.shrink,
            keep_runs: self.keep_runs,
            model: self.model.clone(),
            shard: self.shard,
        }
    }
}

/// Where the time of a run went, in milliseconds.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Phases {
    /// Resolving, directories, until the tracer starts.
    pub setup: f64,
    /// Until every node was started.
    pub start: f64,
    /// Until every node was ready (the workloads start).
    pub ready: f64,
    /// The workloads.
    pub workload: f64,
    /// Recovery (restarts, resumes, heals) and the `[check]`.
    pub check: f64,
    /// Killing everything, stopping the tracer.
    pub teardown: f64,
    /// summary.json and schedule.applied.toml.
    pub outputs: f64,
    /// ordeal explore's own work on the trace: fingerprint, mining, signature.
    pub analysis: f64,
}

impl Phases {
    pub(crate) fn add(&mut self, o: &Phases) {
        self.setup += o.setup;
        self.start += o.start;
        self.ready += o.ready;
        self.workload += o.workload;
        self.check += o.check;
        self.teardown += o.teardown;
        self.outputs += o.outputs;
        self.analysis += o.analysis;
    }
    pub(crate) fn scaled(&self, k: f64) -> Phases {
        Phases {
            setup: self.setup * k,
            start: self.start * k,
            ready: self.ready * k,
            workload: self.workload * k,
            check: self.check * k,
            teardown: self.teardown * k,
            outputs: self.outputs * k,
            analysis: self.analysis * k,
        }
    }
    pub fn total(&self) -> f64 {
        self.setup
            + self.start
            + self.ready
            + self.workload
            + self.check
            + self.teardown
            + self.outputs
            + self.analysis
    }
    pub fn named(&self) -> [(&'static str, f64); 8] {
        [
            ("setup", self.setup),
            ("start", self.start),
            ("ready", self.ready),
            ("workload", self.workload),
            ("check", self.check),
            ("teardown", self.teardown),
            ("outputs", self.outputs),
            ("analysis", self.analysis),
        ]
    }
}

/// What one run showed (also a `runs.jsonl` journal line's result).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Analysis {
    pub status: Status,
    pub reasons: Vec<String>,
    pub outcome: String,
    pub fingerprint: String,
    pub occurrences: Vec<Occurrence>,
    /// Seq of the first firing.
    pub first_fired: Option<u64>,
    /// The firings, as `fault: detail`.
    pub fired: Vec<String>,
    pub signature: Option<String>,
    pub lines: Vec<String>,
    pub phases: Phases,
    #[serde(with = "crate::candidates::ms", rename = "wall_ms")]
    pub wall: Duration,
    pub events: usize,
    pub interrupted: bool,
}

/// A run as recorded in explore.json.
#[derive(Debug, Clone, Serialize)]
pub struct RunRecord {
    pub id: u64,
    /// `explore`, `shrink` or `rerun`.
    pub phase: &'static str,
    /// Relative to the campaign directory.
    pub dir: String,
    /// Whether the directory was kept.
    pub kept: bool,
    pub faults: Vec<String>,
    pub fired: Vec<String>,
    pub status: Status,
    pub fingerprint: Option<String>,
    pub new_behaviour: bool,
    pub signature: Option<String>,
    pub wall_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl RunRecord {
    /// The record of a run: from its analysis, or from why it could not be run or read
    /// (status `error`).
    pub(crate) fn of(
        id: u64,
        phase: &'static str,
        dir: String,
        kept: bool,
        faults: Vec<String>,
        result: Result<&Analysis, &str>,
        new_behaviour: bool,
    ) -> RunRecord {
        match result {
            Ok(a) => RunRecord {
                id,
                phase,
                dir,
                kept,
                faults,
                fired: a.fired.clone(),
                status: a.status,
                fingerprint: Some(a.fingerprint.clone()),
                new_behaviour,
                signature: a.signature.clone(),
                wall_ms: a.wall.as_millis() as u64,
                error: None,
            },
            Err(e) => RunRecord {
                id,
                phase,
                dir,
                kept,
                faults,
                fired: Vec::new(),
                status: Status::Error,
                fingerprint: None,
                new_behaviour: false,
                signature: None,
                wall_ms: 0,
                error: Some(e.to_string()),
            },
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Behaviour {
    pub fingerprint: String,
    pub runs: u64,
    pub first_run: u64,
    pub outcome: String,
}

/// How reliably a minimal schedule fails.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reproduction {
    pub runs: u32,
    pub failed: u32,
    pub rate: f64,
    /// `deterministic` (every rerun failed), `flaky` or `not reproduced`.
    pub verdict: String,
}

/// One distinct failure.
#[derive(Debug, Clone, Serialize)]
pub struct Failure {
    pub id: String,
    pub signature: String,
    /// Exploration runs that failed this way.
    pub hits: u64,
    pub runs: Vec<u64>,
    pub first_run: u64,
    pub lines: Vec<String>,
    pub original_faults: Vec<String>,
    pub original_schedule: String,
    pub minimal_faults: Vec<String>,
    pub minimal_schedule: String,
    #[serde(skip)]
    pub minimal: Vec<Fault>,
    #[serde(skip)]
    pub original: Vec<Fault>,
    pub shrink_runs: u32,
    pub reproduction: Option<Reproduction>,
    /// A failing run of the minimal schedule (or the first hit), relative to the campaign dir.
    pub run_dir: String,
    pub replay: String,
}

/// The result of a campaign, written as explore.json.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub schema: &'static str,
    pub version: u32,
    pub experiment: String,
    /// The experiment variables set for every run (`[explore] set`, then `--set`).
    pub set: Vec<String>,
    pub strategy: String,
    pub seed: u64,
    pub jobs: usize,
    pub budget: Budget,
    pub model: FaultModel,
    /// Why the exploration stopped: `runs`, `time`, `stable`, `failures`, `exhausted`,
    /// `interrupted`.
    pub stopped: String,
    pub interrupted: bool,
    /// Exploration runs (baselines included), completed.
    pub runs: u64,
    pub baseline_runs: u64,
    pub shrink_runs: u64,
    pub rerun_runs: u64,
    pub elapsed_s: f64,
    pub explore_s: f64,
    pub runs_per_minute: f64,
    pub unique_behaviours: usize,
    /// (runs, unique behaviours) after each exploration run.
    pub discovery: Vec<(u64, usize)>,
    pub behaviours: Vec<Behaviour>,
    pub candidates: CandidateStats,
    pub failures: Vec<Failure>,
    pub errors: Vec<RunRecord>,
    /// Mean time of an exploration run per phase, ms.
    pub mean_phases_ms: Phases,
    pub mean_run_ms: f64,
    pub run_log: Vec<RunRecord>,
    /// `I/N` for a shard of a sharded campaign.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shard: Option<String>,
    /// For `ordeal merge`: the shard directories merged.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub merged_from: Vec<String>,
    /// Problems found on the way (journal lines that could not be read, missing shards).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Budget {
    pub runs: Option<u64>,
    pub time_s: Option<u64>,
    pub until_stable: Option<u64>,
    pub stop_after: Option<usize>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CandidateStats {
    /// Single faults mined from the traces (an action at a point).
    pub mined: usize,
    /// Schedules tried by the exploration (baselines excluded).
    pub tried: usize,
    /// Single and extension candidates not tried yet.
    pub remaining: usize,
    /// Pairs of passing single faults not tried yet.
    pub remaining_pairs: usize,
    /// Tried schedules by fault kind of their last fault.
    pub tried_by_kind: BTreeMap<String, u64>,
}

struct Job {
    id: u64,
    meta: Meta,
    /// A recorded result that replaces the run's own (the pinning test hook).
    pinned: Option<Result<Analysis, String>>,
}

/// What a finished run's journal line needs besides its result.
#[derive(Clone)]
struct Meta {
    key: String,
    phase: &'static str,
    explore_id: u64,
    dir: PathBuf,
    faults: Vec<Fault>,
}

struct Done {
    id: u64,
    meta: Meta,
    result: Result<Analysis, String>,
    /// Taken from the journal: the run was not run again.
    recorded: bool,
}

struct Shared {
    exp: Experiment,
    replay: ReplaySource,
    exe: PathBuf,
    model: FaultModel,
    seed: u64,
    names: Participants,
    cancel: Arc<AtomicBool>,
}

/// The worker threads. They live as long as the campaign (with `network = "netns"` the
/// namespaces of a run are held by processes forked from the thread that runs it).
struct Pool {
    tx: Option<mpsc::Sender<Job>>,
    rx: mpsc::Receiver<Done>,
    handles: Vec<std::thread::JoinHandle<()>>,
}

impl Pool {
    fn start(n: usize, shared: Arc<Shared>) -> Pool {
        let (tx, job_rx) = mpsc::channel::<Job>();
        let job_rx = Arc::new(std::sync::Mutex::new(job_rx));
        let (done_tx, rx) = mpsc::channel::<Done>();
        // One CPU per worker when there are enough: a run's tracer and its traced processes
        // then share that CPU, where a ptrace stop costs a context switch instead of a
        // cross-CPU wake-up (several times more; docs/bench.md), and two runs never compete.
        // ORDEAL_EXPLORE_NO_PIN=1 turns it off (bench/explore.sh's baseline).
        let cpus = allowed_cpus();
        let off = std::env::var_os("ORDEAL_EXPLORE_NO_PIN").is_some_and(|v| v == "1");
        let pin = (n <= cpus.len() && !off).then_some(cpus);
        let handles = (0..n)
            .map(|i| {
                let cpu = pin.as_ref().map(|c| c[i]);
                let job_rx = Arc::clone(&job_rx);
                let done_tx = done_tx.clone();
                let shared = Arc::clone(&shared);
                std::thread::Builder::new()
                    .name(format!("explore-{i}"))
                    .spawn(move || loop {
                        let job = match job_rx.lock() {
                            Ok(rx) => rx.recv(),
                            Err(_) => return,
                        };
                        let Ok(job) = job else { return };
                        let mut result = execute(&shared, &job.meta.dir, &job.meta.faults, cpu);
                        if let Some(p) = job.pinned {
                            if !shared.cancel.load(Ordering::SeqCst) {
                                result = p;
                            }
                        }
                        let done = Done {
                            id: job.id,
                            meta: job.meta,
                            result,
                            recorded: false,
                        };
                        if done_tx.send(done).is_err() {
                            return;
                        }
                    })
                    .expect("spawning a worker thread")
            })
            .collect();
        Pool {
            tx: Some(tx),
            rx,
            handles,
        }
    }

    fn send(&self, job: Job) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(job);
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.tx = None;
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// One run: the run itself (summary.json only), its schedule and replay record, and the
/// analysis of its trace.
/// The CPUs this process may run on, in order.
fn allowed_cpus() -> Vec<usize> {
    // SAFETY: sched_getaffinity fills a local, zeroed cpu set of the size given.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return Vec::new();
        }
        (0..libc::CPU_SETSIZE as usize)
            .filter(|&c| libc::CPU_ISSET(c, &set))
            .collect()
    }
}

fn execute(
    sh: &Shared,
    dir: &Path,
    faults: &[Fault],
    cpu: Option<usize>,
) -> Result<Analysis, String> {
    let t0 = Instant::now();
    let toml = (!faults.is_empty()).then(|| schedule_toml(faults, &sh.model, sh.seed));
    let schedule = match &toml {
        Some(text) => Some(
            Schedule::parse_for(text, dir.join("schedule.toml"), &sh.names)
                .map_err(|e| format!("internal: generated schedule rejected: {e}"))?,
        ),
        None => None,
    };
    let mut opts = ordeal_run::RunOptions::new(sh.exe.clone());
    opts.out = Some(dir.to_path_buf());
    opts.progress = false;
    opts.faults = schedule;
    opts.summary_only = true;
    opts.tracer_cpu = cpu;
    opts.pin_traced = cpu.is_some();
    let report = ordeal_run::run(&sh.exp, &opts, &sh.cancel).map_err(|e| e.to_string())?;
    let wall = t0.elapsed();
    let t1 = Instant::now();
    let schedule_path = dir.join("schedule.toml");
    if let Some(text) = &toml {
        std::fs::write(&schedule_path, text)
            .map_err(|e| format!("writing {}: {e}", schedule_path.display()))?;
    }
    let replay = serde_json::json!({
        "experiment_path": sh.replay.experiment_path,
        "experiment": sh.replay.experiment,
        "set": sh.replay.set,
        "faults_path": toml.as_ref().map(|_| &schedule_path),
        "faults": toml,
        "payload": 0,
    });
    let replay_path = dir.join("replay.json");
    std::fs::write(
        &replay_path,
        serde_json::to_vec_pretty(&replay).unwrap_or_default(),
    )
    .map_err(|e| format!("writing {}: {e}", replay_path.display()))?;

    let reader = TraceReader::open(&dir.join("trace.jsonl")).map_err(|e| e.to_string())?;
    let header = reader.header.clone();
    let events = reader.read_all().map_err(|e| e.to_string())?;
    let verdict = &report.summary.verdict;
    let interrupted = sh.cancel.load(Ordering::SeqCst) && verdict.status == Status::Error;
    let outcome = signature::outcome(verdict.status, &verdict.reasons, dir);
    let occurrences = mine(&header, &events);
    let mut fired: Vec<(u64, String)> = events
        .iter()
        .filter_map(|e| {
            let f = e.fault.as_ref()?;
            faults
                .iter()
                .any(|x| f.is_firing_of(&x.name()))
                .then(|| (e.seq, format!("{f} (seq {})", e.seq)))
        })
        .collect();
    fired.sort();
    let first_fired = fired.first().map(|(s, _)| *s);
    let phases_from_trace = trace_phases(&header, &events);
    let graph = HbGraph::from_owned(header, events);
    let fp = fingerprint(graph.header(), &graph, &outcome);
    // The canonical text behind the hash: `diff` two of them to see how two behaviours differ.
    let _ = std::fs::write(dir.join("fingerprint.txt"), &fp.canonical);
    let (lines, sig) = if verdict.status.is_failure() {
        let who: Vec<String> = graph
            .header()
            .nodes
            .iter()
            .filter(|n| n.role != "node")
            .map(|n| n.name.clone())
            .chain(std::iter::once(ordeal_experiment::CHECK_NAME.to_string()))
            .collect();
        let lines = signature::failure_lines(dir, &who, 5);
        let sig = signature::signature(&outcome, &lines);
        (lines, Some(sig))
    } else {
        (Vec::new(), None)
    };
    let t = &report.times;
    let (start, ready, workload) = phases_from_trace;
    let drive = ms(t.drive);
    let mut phases = Phases {
        setup: ms(t.setup),
        start: start.min(drive),
        ready: ready.min(drive),
        workload: workload.min(drive),
        check: 0.0,
        teardown: ms(t.teardown),
        outputs: ms(t.outputs),
        analysis: ms(t1.elapsed()),
    };
    phases.check = (drive - phases.start - phases.ready - phases.workload).max(0.0);
    Ok(Analysis {
        status: verdict.status,
        reasons: verdict.reasons.clone(),
        outcome,
        fingerprint: fp.hash,
        occurrences,
        first_fired,
        fired: fired.into_iter().map(|(_, s)| s).collect(),
        signature: sig,
        lines,
        phases,
        wall,
        events: graph.events().len(),
        interrupted,
    })
}

/// (start, ready, workload) in ms from the trace: until the last node's first spawn, until the
/// first workload's spawn, until the last workload's exit.
fn trace_phases(header: &Header, events: &[ordeal_events::Event]) -> (f64, f64, f64) {
    let role = |n: &str| {
        header
            .nodes
            .iter()
            .find(|x| x.name == n)
            .map(|x| x.role.as_str())
            .unwrap_or("")
    };
    let wl_start = events
        .iter()
        .find(|e| e.call == "spawn" && role(&e.node) == "workload")
        .map(|e| e.ts);
    let Some(wl_start) = wl_start else {
        return (0.0, 0.0, 0.0);
    };
    let nodes_started = events
        .iter()
        .filter(|e| e.call == "spawn" && role(&e.node) == "node" && e.ts <= wl_start)
        .map(|e| e.ts)
        .max()
        .unwrap_or(0);
    let wl_end = events
        .iter()
        .filter(|e| e.call == "exit" && role(&e.node) == "workload")
        .map(|e| e.ts + e.dur)
        .max()
        .unwrap_or(wl_start);
    let f = |ns: u64| ns as f64 / 1e6;
    (
        f(nodes_started),
        f(wl_start.saturating_sub(nodes_started)),
        f(wl_end.saturating_sub(wl_start)),
    )
}

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
    buffer: BTreeMap<u64, Result<Analysis, String>>,
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
    let mut warnings = Vec::new();
    if cfg.resume {
        let on_disk = journal::read_header(&out)?;
        let mut mine = cfg.header();
        mine.experiment_path = on_disk.experiment_path.clone();
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
            if let Entry::Run(r) = e {
                recorded.entry(r.key.clone()).or_insert(r);
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
    let names = Participants::new(cfg.experiment.node_names(), cfg.experiment.workload_names());
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
    let knowledge = Knowledge::new(cfg.model.clone(), names.nodes.clone());
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
        st.shrink_and_rerun(&cancel);
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
        match self.pool.rx.recv_timeout(timeout) {
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
    /// incorporated run only, so run i is chosen after exactly runs 0..=i-J were taken in:
    /// the same seed and the same results give the same choices, whatever the timing.
    fn fill(&mut self, c: &mut Cursor) {
        let jobs = self.cfg.jobs as u64;
        while (c.pending.len() as u64) < jobs && self.cfg.runs.is_none_or(|n| c.next_id < n) {
            let id = c.next_id;
            let faults = if id < jobs {
                Vec::new()
            } else if let Some(shard) = self.cfg.shard {
                // Planned: every schedule comes from the baselines, so that every shard
                // computes the same list and takes its own part of it.
                if self.plan.is_none() {
                    if c.incorporated < jobs {
                        break;
                    }
                    let n = self.cfg.runs.unwrap_or(0).saturating_sub(jobs);
                    let mut plan = Vec::new();
                    for _ in 0..n {
                        match self.knowledge.next(self.cfg.strategy, &mut self.rng) {
                            Some(f) => plan.push(f),
                            None => break,
                        }
                    }
                    self.plan = Some(plan);
                }
                let k = (id - jobs) as usize;
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
        result: Result<Analysis, String>,
    ) -> Result<bool, Error> {
        let dir = run_dir(&self.cfg.out, id);
        let rel = format!("runs/{id:06}");
        let fault_names: Vec<String> = faults.iter().map(|f| f.to_string()).collect();
        let a = match result {
            Ok(a) => a,
            Err(e) => {
                if id < self.cfg.jobs as u64 {
                    // A fault-free run that cannot even be set up: nothing else will work.
                    return Err(Error::Setup(format!("run {id} ({}): {e}", dir.display())));
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
        if self.plan.is_none() {
            self.knowledge
                .learn(&faults, &a.occurrences, a.first_fired, new, failed);
        }
        if let Some(sig) = &a.signature {
            match self.failures.iter_mut().find(|f| f.signature == *sig) {
                Some(f) => {
                    f.hits += 1;
                    f.runs.push(id);
                }
                None => {
                    let n = self.failures.len() + 1;
                    let toml = schedule_toml(&faults, &self.cfg.model, self.cfg.seed);
                    self.failures.push(Failure {
                        id: format!("F{n}"),
                        signature: sig.clone(),
                        hits: 1,
                        runs: vec![id],
                        first_run: id,
                        lines: a.lines.clone(),
                        original_faults: fault_names.clone(),
                        original_schedule: toml.clone(),
                        minimal_faults: fault_names.clone(),
                        minimal_schedule: toml,
                        minimal: faults.clone(),
                        original: faults.clone(),
                        shrink_runs: 0,
                        reproduction: None,
                        run_dir: rel.clone(),
                        replay: format!("ordeal replay {}", dir.display()),
                    });
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

    /// Runs `batch` (journal keys, directories and schedules) on the pool and returns the
    /// results in order.
    fn run_batch(
        &mut self,
        phase: &'static str,
        batch: Vec<(String, PathBuf, Vec<Fault>)>,
    ) -> Vec<Result<Analysis, String>> {
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
        let mut got: BTreeMap<u64, Result<Analysis, String>> = BTreeMap::new();
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
        r: &Result<Analysis, String>,
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
            r.as_ref().map_err(|e| e.as_str()),
            false,
        );
        self.log.push(rec);
    }

    /// Shrinks every distinct failure to a minimal schedule and reruns it.
    fn shrink_and_rerun(&mut self, cancel: &AtomicBool) {
        for fi in 0..self.failures.len() {
            if cancel.load(Ordering::SeqCst) {
                return;
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
            let minimal_toml = schedule_toml(&minimal, &self.cfg.model, self.cfg.seed);
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
                    let runs = self.cfg.reruns;
                    reproduction = Some(Reproduction {
                        runs,
                        failed,
                        rate: failed as f64 / runs as f64,
                        verdict: if failed == runs {
                            "deterministic".into()
                        } else if failed == 0 {
                            "not reproduced".into()
                        } else {
                            "flaky".into()
                        },
                    });
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
            if !cancel.load(Ordering::SeqCst) {
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
            baseline_runs: (self.cfg.jobs as u64).min(self.explore_runs),
            shrink_runs: self.shrink_runs,
            rerun_runs: self.rerun_runs,
            elapsed_s: self.t0.elapsed().as_secs_f64(),
            explore_s,
            runs_per_minute: if explore_s > 0.0 {
                self.explore_runs as f64 * 60.0 / explore_s
            } else {
                0.0
            },
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
            failures: self.failures.clone(),
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
