//! What a campaign finds: each run's [`Analysis`] and [`RunRecord`], the distinct
//! behaviours and [`Failure`]s, and the whole [`Outcome`] (explore.json).

use std::collections::BTreeMap;
use std::time::Duration;

use ordeal_hb::Status;
use serde::{Deserialize, Serialize};

use crate::baseline::{BaselineBehaviour, Baselines};
use crate::candidates::{Fault, FaultModel, Occurrence};
use crate::RunError;

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
    /// The causes the signature is made of ([`crate::signature::causes`]).
    #[serde(default)]
    pub causes: Vec<String>,
    /// The run's verdict cause (summary.json `verdict.cause`): the telling line with its
    /// file and line, the violating operation, the check's message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<ordeal_hb::Cause>,
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
        result: Result<&Analysis, &RunError>,
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

impl Reproduction {
    /// `failed` of `runs` reruns failed the same way.
    pub fn new(runs: u32, failed: u32) -> Reproduction {
        Reproduction {
            runs,
            failed,
            rate: if runs > 0 {
                failed as f64 / runs as f64
            } else {
                0.0
            },
            verdict: if failed == runs {
                "deterministic".into()
            } else if failed == 0 {
                "not reproduced".into()
            } else {
                "flaky".into()
            },
        }
    }
}

/// A schedule rerun for its rate while shrinking: the one with the best rate is the minimal
/// schedule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Measured {
    /// `minimal` (ddmin over the faults, trigger indices as found) or `earliest` (trigger
    /// indices lowered as far as a run still failed).
    pub schedule: String,
    pub faults: Vec<String>,
    pub reproduction: Reproduction,
}

/// One distinct failure.
#[derive(Debug, Clone, Serialize)]
pub struct Failure {
    pub id: String,
    /// Its causes joined by `; ` (what groups runs into this failure).
    pub signature: String,
    /// The causes, in order of precedence ([`crate::signature`]).
    pub causes: Vec<String>,
    /// Exploration runs that failed this way.
    pub hits: u64,
    pub runs: Vec<u64>,
    pub first_run: u64,
    /// The verdict cause of the first hit (shown, not grouped on: it names keys, values
    /// and line numbers).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cause: Option<ordeal_hb::Cause>,
    /// Telling lines of the logs of the first hit (shown, not grouped on).
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
    /// The rate of the minimal schedule.
    pub reproduction: Option<Reproduction>,
    /// The rate of the first hit's schedule (the same reruns as `reproduction` when nothing
    /// was shrunk away).
    pub original_reproduction: Option<Reproduction>,
    /// The shrinking's candidates, each rerun for its rate.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub measured: Vec<Measured>,
    /// A fault-free baseline run failed this way: the failure needs no fault.
    pub without_faults: bool,
    /// When a baseline failed: how often fault-free runs fail this way.
    pub fault_free: Option<Reproduction>,
    /// False when a baseline failed and the rate with faults is not clearly above the
    /// fault-free rate ([`crate::baseline::clearly_above`]): not credited to its faults.
    pub above_baseline: bool,
    /// A failing run of the minimal schedule (or the first hit), relative to the campaign dir.
    pub run_dir: String,
    pub replay: String,
}

impl Failure {
    /// A failure first seen in exploration run `id` (its schedule `faults`, written `toml`).
    /// Its `n`-th failure, first seen in exploration run `id` (schedule `faults`, written
    /// `toml`; directory `dir`, `rel` to the campaign directory).
    pub(crate) fn first_hit(
        n: usize,
        id: u64,
        a: &Analysis,
        faults: &[Fault],
        toml: String,
        rel: String,
        dir: &std::path::Path,
    ) -> Failure {
        let names: Vec<String> = faults.iter().map(|f| f.to_string()).collect();
        Failure {
            id: format!("F{n}"),
            signature: a.signature.clone().unwrap_or_default(),
            causes: a.causes.clone(),
            hits: 1,
            runs: vec![id],
            first_run: id,
            cause: a.cause.clone(),
            lines: a.lines.clone(),
            original_faults: names.clone(),
            original_schedule: toml.clone(),
            minimal_faults: names,
            minimal_schedule: toml,
            minimal: faults.to_vec(),
            original: faults.to_vec(),
            shrink_runs: 0,
            reproduction: None,
            original_reproduction: None,
            measured: Vec::new(),
            without_faults: false,
            fault_free: None,
            above_baseline: true,
            run_dir: rel,
            replay: format!("ordeal replay {}", dir.display()),
        }
    }
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
    /// `BASELINE FAILED: ...` when a fault-free baseline failed (what to fix first).
    pub baseline_failed: Option<String>,
    /// The fault-free baselines: their outcomes and, when one failed, the fault-free rate.
    pub baselines: Baselines,
    /// The distinct behaviours of the baselines, with how many baselines had each.
    pub baseline_behaviours: Vec<BaselineBehaviour>,
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
