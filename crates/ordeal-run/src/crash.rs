//! `ordeal crash`: crash states of one node and whether it recovers from each
//! (docs/crash.md).
//!
//! 1. Run the experiment once, traced, recording the bytes of every data-dir write
//!    (`filedata.bin`) and copying each node's data dir as prepared (`base/NODE`).
//! 2. Turn the node's file calls in trace.jsonl into operations over that base
//!    ([`ordeal_state::persist::build`]) and generate crash states under the persistence
//!    model ([`ordeal_state::persist::Explorer`]): prefixes, lost, cut, torn, then seeded random
//!    ones, until the budget or the time is spent.
//! 3. Self-checks before anything is blamed on the program: every call followed, the
//!    all-persisted final state equal to the real final data dir, and recovering; otherwise
//!    the verdict is [`CrashVerdict::Unknown`]. A node that died during the recording, or made
//!    no file operation, is an error.
//! 4. Each distinct state (by content hash) is materialized in a scratch run directory
//!    (`crash/states/NNNNN/data/NODE`, never the original), the node is started on it alone
//!    (untraced, fresh ports), its ready condition awaited, then `[crash] check` (or `[check]`)
//!    run ([`recover`]); `-j` states at once on worker threads, their outcomes applied in state
//!    order so the report does not depend on `-j` ([`pool`]). A state from which it does not recover is a failure; failures are grouped into
//!    vulnerabilities by root cause ([`group`]: the missing ordering or sync, temp names
//!    normalized), each reported once with its smallest example state, the source calls'
//!    `seq` in trace.jsonl and the persistence models (strict, ext4-ordered) under which it
//!    holds; `--model` picks the one deciding the verdict.
//!
//! [`cluster`]: the same for several nodes losing power at one instant, restarted together.

use crate::supervisor::Progress;
use crate::{Error, RunOptions};
use ordeal_events::{Class, TraceReader};
use ordeal_experiment::{Experiment, ResolveContext, Resolved};
use ordeal_state::persist::{self, Call, CrashState, Explorer, Kind, Model, Op, Role, Tree};
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub mod cluster;
pub mod group;
mod pool;
mod recover;

/// The side file holding the bytes of data-dir writes (see `data_at` in docs/trace-format.md).
pub const FILE_DATA: &str = "filedata.bin";
/// The report written in the run directory.
pub const REPORT: &str = "crash.json";
/// The crash check's environment variable holding the label of the last checkpoint taken
/// before the crash point (unset when none was).
pub const CRASH_CHECKPOINT_ENV: &str = "ORDEAL_CRASH_CHECKPOINT";
/// The crash check's environment variable naming a file holding what a workload target had
/// written to its stdout before the crash point.
pub const CRASH_STDOUT_ENV: &str = "ORDEAL_CRASH_STDOUT";

/// Where workload `name` of the run in `run_dir` writes its stdout, as the tracer sees it
/// (absolute, symlinks resolved: `run_dir` may be relative).
pub(crate) fn stdout_path(run_dir: &Path, name: &str) -> Option<PathBuf> {
    let logs = std::fs::canonicalize(run_dir.join("logs")).ok()?;
    Some(logs.join(format!("{name}.stdout")))
}

/// Options of `ordeal crash`.
#[derive(Debug, Clone)]
pub struct CrashOptions {
    /// The recording run (its `out` is the crash run's directory).
    pub run: RunOptions,
    /// The node whose data dir's crash states are explored; default the first node with a
    /// data dir.
    pub node: Option<String>,
    /// The target is this workload (a program that runs and exits), not the node: a crash
    /// state is checked by `[crash] check` alone, no node started (docs/crash.md#targets).
    pub workload: Option<String>,
    pub seed: u64,
    /// Most distinct crash states checked.
    pub budget: usize,
    /// Stop generating after this long (the recording run not included).
    pub time: Option<Duration>,
    /// The persistence model whose findings decide the verdict (both are reported).
    pub model: Model,
    /// States recovered at once (worker threads); the findings do not depend on it.
    pub jobs: usize,
}

/// One operation in a report.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct OpRef {
    pub role: Role,
    /// The source call's seq in trace.jsonl.
    pub seq: u64,
    pub call: String,
    /// `write state.tmp [0, 120)`, `rename state.tmp → state`.
    pub op: String,
}

/// A crash vulnerability: crash states from which the node does not recover, with one root
/// cause (the missing ordering or sync, see [`group`]).
#[derive(Debug, Clone, Serialize)]
pub struct Vulnerability {
    pub id: usize,
    /// The root cause, names normalized (`*` for numbers and random parts): every state
    /// counted under this vulnerability shows it.
    pub cause: String,
    /// The operations, by role, of the example state.
    pub ops: Vec<OpRef>,
    /// How the example state was made.
    pub kind: Kind,
    /// For a torn write: how it was torn.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cut: Option<String>,
    /// The last operation issued before the crash (its seq).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub crash_after_seq: Option<u64>,
    /// Why recovery failed, for the example state.
    pub error: String,
    /// How many distinct failing states it covers.
    pub states: usize,
    /// The persistence models under which it holds: `strict` always, `ext4-ordered` when one
    /// of its states can happen on ext4 `data=ordered` too.
    pub models: Vec<Model>,
    /// The example state's directory, kept (its data dir and logs): the first failing state
    /// found with the fewest lost and torn operations.
    pub example: PathBuf,
    /// How many operations the example lost or tore (smaller is a better example).
    #[serde(skip)]
    example_size: usize,
    /// For an example cutting names (`cut`): its crash point.
    #[serde(skip)]
    example_cut_at: Option<usize>,
    /// The operations the example lost or tore (indices).
    #[serde(skip)]
    example_lost: Vec<usize>,
}

impl Vulnerability {
    /// One line per operation.
    pub fn describe(&self) -> String {
        let mut s = String::new();
        for o in &self.ops {
            s.push_str(&format!(
                "    {:<11} seq {:<7} {}\n",
                o.role.as_str(),
                o.seq,
                o.op
            ));
        }
        s
    }
}

/// The overall answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CrashVerdict {
    /// Every state checked recovered.
    Clean,
    /// Some state did not recover: see the vulnerabilities.
    Vulnerable,
    /// The model could not be trusted on this recording (an unmodelled call, the final
    /// directory not what the model computes, the recovery check failing on it): no verdict
    /// on the program.
    Unknown,
}

impl CrashVerdict {
    /// Unknown when the model cannot be trusted, else vulnerable when a finding holds under
    /// `model` (the run's), else clean.
    fn of<'a>(
        unknown: bool,
        findings: impl IntoIterator<Item = &'a [Model]>,
        model: Model,
    ) -> CrashVerdict {
        if unknown {
            CrashVerdict::Unknown
        } else if findings.into_iter().any(|m| m.contains(&model)) {
            CrashVerdict::Vulnerable
        } else {
            CrashVerdict::Clean
        }
    }
}

/// What `ordeal crash` found.
#[derive(Debug, Clone, Serialize)]
pub struct CrashReport {
    pub verdict: CrashVerdict,
    /// The model whose findings decide the verdict.
    pub model: Model,
    /// Why the verdict is `unknown`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unknown: Option<String>,
    pub run_dir: PathBuf,
    /// The node whose data dir was crashed.
    pub node: String,
    /// The workload that was the target, if not the node.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workload: Option<String>,
    pub seed: u64,
    /// Verdict of the recording run.
    pub recording: ordeal_hb::Status,
    pub operations: usize,
    pub crash_points: usize,
    /// Crash states generated (duplicates included).
    pub generated: usize,
    /// Distinct states recovered and checked.
    pub checked: usize,
    pub failed: usize,
    /// Seconds spent generating and checking (recording excluded).
    pub seconds: f64,
    /// Whether every systematic state was generated before the budget or time ran out.
    pub complete: bool,
    pub vulnerabilities: Vec<Vulnerability>,
}

fn models_text(models: &[Model]) -> String {
    if models.contains(&Model::Ext4) {
        "strict and ext4-ordered".into()
    } else {
        "strict only".into()
    }
}

impl CrashReport {
    /// The text summary.
    pub fn human(&self) -> String {
        let mut s = format!(
            "crash states of {}: {} operations, {} crash points, {} states generated, {} distinct checked ({:.1}/s){}\n",
            match &self.workload {
                Some(w) => format!("{}'s data dir (target: workload {w})", self.node),
                None => self.node.clone(),
            },
            self.operations,
            self.crash_points,
            self.generated,
            self.checked,
            self.checked as f64 / self.seconds.max(1e-9),
            if self.complete { "" } else { ", budget reached before every systematic state" }
        );
        s.push_str(&verdict_text(
            self.unknown.as_deref(),
            self.vulnerabilities.is_empty(),
            self.verdict,
            self.model,
            "program",
        ));
        for v in &self.vulnerabilities {
            s.push_str(&format!(
                "vulnerability {} ({:?}, {} state{}, {}): {}\n  recovery failed: {}\n",
                v.id,
                v.kind,
                v.states,
                if v.states == 1 { "" } else { "s" },
                models_text(&v.models),
                v.cause,
                v.error
            ));
            s.push_str(&v.describe());
            if let Some(c) = &v.cut {
                s.push_str(&format!("    torn: {c}\n"));
            }
            s.push_str(&format!("    example: {}\n", v.example.display()));
        }
        s.push_str(&format!(
            "report: {}\n",
            self.run_dir.join(REPORT).display()
        ));
        s
    }
}

/// The experiment resolved once to learn its nodes and workloads (the runs resolve it again
/// in their own directories); an error for what `ordeal crash` does not support.
fn crash_probe(exp: &Experiment, opts: &CrashOptions) -> Result<Resolved, Error> {
    if exp.network() == ordeal_experiment::Network::Netns {
        return Err(Error::Usage(
            "ordeal crash supports network = \"loopback\" only".into(),
        ));
    }
    Ok(exp.resolve(&ResolveContext::new(
        std::env::temp_dir().join("ordeal-crash-probe"),
        &opts.run.ordeal_exe,
    ))?)
}

/// Runs `ordeal crash`.
pub fn crash(
    exp: &Experiment,
    opts: &CrashOptions,
    cancel: &AtomicBool,
) -> Result<CrashReport, Error> {
    let probe = crash_probe(exp, opts)?;
    let node = match &opts.node {
        Some(n) => n.clone(),
        None => probe
            .nodes
            .iter()
            .find(|n| n.data_dir.is_some())
            .map(|n| n.name.clone())
            .ok_or_else(|| Error::Usage("no node has a data_dir: nothing to crash".into()))?,
    };
    if let Some(w) = &opts.workload {
        if !probe.workloads.iter().any(|x| &x.name == w) {
            return Err(Error::Usage(format!("no workload {w} in the experiment")));
        }
        if probe.crash_check.is_none() {
            return Err(Error::Usage(format!(
                "workload {w} as the target: its crash states are checked by [crash] check alone, and the experiment has none (docs/experiment.md#crash)"
            )));
        }
    }
    drop(probe);
    let mut run_opts = opts.run.clone();
    run_opts.record_file_data = true;
    run_opts.record_stdout_of = opts.workload.iter().cloned().collect();
    let progress = Progress::new(opts.run.progress);
    progress.say(format!("recording a run of {} (file data on)", exp.name()));
    let recording = crate::run(exp, &run_opts, cancel)?;
    let run_dir = recording.run_dir.clone();
    let base_dir = run_dir.join("base").join(&node);
    if !base_dir.is_dir() {
        return Err(Error::Usage(format!(
            "node {node} has no data_dir (or is not a node of the experiment)"
        )));
    }
    let data_dir = std::fs::canonicalize(run_dir.join("data").join(&node))
        .map_err(crate::io_err(format!("data dir of {node}")))?;
    match &opts.workload {
        None => usable(
            &recording.summary.verdict,
            &format!("node {node} exited "),
            &run_dir,
        )?,
        Some(w) => usable(
            &recording.summary.verdict,
            &format!("workload {w} ended"),
            &run_dir,
        )?,
    }
    let stdout_file = opts
        .workload
        .as_ref()
        .and_then(|w| stdout_path(&run_dir, w));
    let (calls, checkpoints, stdout) = calls_of(&run_dir, &data_dir, stdout_file.as_deref())?;
    let base = Tree::load(&base_dir).map_err(|e| Error::Usage(e.to_string()))?;
    let built = persist::build(&base, &calls);
    let (ops, ninos) = (built.ops, built.inodes);
    if ops.is_empty() {
        return Err(Error::Usage(format!(
            "no process made a file operation in node {node}'s data dir {} during the recording ({} file calls traced there): there is nothing to crash; does the program write under its data_dir?",
            data_dir.display(),
            calls.len()
        )));
    }
    let ex = Explorer::new(&base, &ops, ninos);
    progress.say(format!(
        "{node}: {} file calls → {} operations, {} crash points",
        calls.len(),
        ops.len(),
        ex.points().len()
    ));
    let states_dir = run_dir.join("crash").join("states");
    std::fs::create_dir_all(&states_dir)
        .map_err(crate::io_err(format!("creating {}", states_dir.display())))?;

    let clones = persist::CloneSource::new(&base, &base_dir);
    let rec = recover::Recovery {
        exp,
        opts,
        node: &node,
        workload: opts.workload.as_deref(),
        checkpoints: &checkpoints,
        stdout: stdout_file.as_ref().map(|_| stdout.as_slice()),
        ops: &ops,
        base: &clones,
        cancel,
    };
    let mut x = Exploration {
        ops: &ops,
        ex: &ex,
        states_dir: &states_dir,
        planned: HashSet::new(),
        seen: HashMap::new(),
        filed: HashMap::new(),
        vulns: Vec::new(),
        generated: 0,
        checked: 0,
        failed: 0,
    };
    let t0 = Instant::now();
    let complete;
    let systematic = ex.systematic();
    // Self-checks before any state is blamed on the program: every call followed, the
    // all-persisted final state equal to the real final directory, and recovering.
    let mut unknown = built.unmodelled.first().map(|u| {
        format!(
            "the model does not follow {u}{}",
            match built.unmodelled.len() {
                1 => String::new(),
                n => format!(" (and {} more unmodelled calls)", n - 1),
            }
        )
    });
    if unknown.is_none() {
        let last = systematic
            .iter()
            .find(|s| s.kind == Kind::Prefix && s.crash_at == ops.len())
            .cloned();
        let real = Tree::load(&data_dir).map_err(|e| Error::Usage(e.to_string()))?;
        if let Some(last) = last {
            let model = ex.tree(&last);
            if let Some(d) = model.first_difference(&real) {
                // A file msync'ed through a shared mapping and differing at the end was most
                // likely written through the mapping after its last msync: no call carries
                // those bytes, and the kernel may have written them back at any time.
                let mapped = calls
                    .iter()
                    .rev()
                    .filter(|c| c.call == "msync")
                    .filter_map(|c| Some((c.path.as_deref()?, c.seq)))
                    .find(|(p, _)| model.file(p) != real.file(p));
                let why = match mapped {
                    Some((p, seq)) => format!(
                        "{p} is mapped shared: written through the mapping after its last msync (seq {seq}), bytes no call shows"
                    ),
                    None => "a call the tracer does not see changed it: a write through a shared mapping never msync'ed, another process".into(),
                };
                unknown = Some(format!(
                    "the model's final state differs from the real final directory {}: {d} ({why})",
                    data_dir.display()
                ));
            } else if let Some(err) = x.check_now(&rec, last)? {
                unknown = Some(format!(
                    "the recovery check fails on the real final state, with nothing lost ({}): {err}",
                    states_dir.join(format!("{:05}", x.checked)).display()
                ));
            }
        }
    }
    if unknown.is_some() {
        x.vulns.clear();
        complete = false;
    } else {
        let plan = pool::Plan {
            systematic,
            seed: opts.seed,
            budget: opts.budget,
            deadline: opts.time.map(|t| t0 + t),
            jobs: opts.jobs.max(1),
        };
        let mut bar = pool::Bar::new(opts.run.progress, opts.budget, t0, progress.t0);
        complete = pool::explore(&mut x, &rec, plan, &mut bar)?;
        bar.finish();
    }
    group::merge_same_causes(&mut x.vulns);
    let verdict = CrashVerdict::of(
        unknown.is_some(),
        x.vulns.iter().map(|v| v.models.as_slice()),
        opts.model,
    );
    let report = CrashReport {
        verdict,
        model: opts.model,
        unknown,
        run_dir: run_dir.clone(),
        node: node.clone(),
        workload: opts.workload.clone(),
        seed: opts.seed,
        recording: recording.summary.verdict.status,
        operations: ops.len(),
        crash_points: ex.points().len(),
        generated: x.generated,
        checked: x.checked,
        failed: x.failed,
        seconds: t0.elapsed().as_secs_f64(),
        complete,
        vulnerabilities: x.vulns,
    };
    let counts = (report.checked, report.seconds, report.vulnerabilities.len());
    write_report(&run_dir, &report, &progress, "states", counts)?;
    Ok(report)
}

/// Writes `RUN_DIR/crash.json` and says how the search ended: `counts` = (`what` checked,
/// seconds, vulnerabilities).
fn write_report<R: Serialize>(
    run_dir: &Path,
    report: &R,
    progress: &Progress,
    what: &str,
    (checked, seconds, vulnerabilities): (usize, f64, usize),
) -> Result<(), Error> {
    let path = run_dir.join(REPORT);
    let text = serde_json::to_string_pretty(report).unwrap_or_default();
    std::fs::write(&path, text + "\n")
        .map_err(crate::io_err(format!("writing {}", path.display())))?;
    progress.say(format!(
        "{checked} {what} checked in {seconds:.2}s, {vulnerabilities} vulnerabilit{}",
        if vulnerabilities == 1 { "y" } else { "ies" }
    ));
    Ok(())
}

/// The verdict's paragraph of the human report, before the vulnerabilities (`what`: the
/// program or the programs whose crash was searched).
fn verdict_text(
    unknown: Option<&str>,
    none: bool,
    verdict: CrashVerdict,
    model: Model,
    what: &str,
) -> String {
    if let Some(why) = unknown {
        format!(
            "verdict unknown: {why}\n  (the crash states would not say anything true about the {what})\n"
        )
    } else if none {
        "no vulnerability found (models: strict, ext4-ordered)\n".to_string()
    } else if verdict == CrashVerdict::Clean {
        format!(
            "no vulnerability under {} (the verdict's model); under strict only:\n",
            model.as_str()
        )
    } else {
        String::new()
    }
}

/// Refuses a recording a crash search would say nothing true about: the target died (a node:
/// "node N exited unexpectedly" or "… before it was ready") or failed (a workload: "workload W
/// ended: exit 1") during it.
fn usable(verdict: &ordeal_hb::Verdict, died: &str, run_dir: &Path) -> Result<(), Error> {
    if let Some(r) = verdict.reasons.iter().find(|r| r.starts_with(died)) {
        let name = died.split(' ').nth(1).unwrap_or_default();
        return Err(Error::Usage(format!(
            "the recording is not usable: {r} (see {}): crash states of a target that died or failed during the run are not searched",
            run_dir.join("logs").join(format!("{name}.stderr")).display()
        )));
    }
    Ok(())
}

/// A write to a workload target's stdout: (seq, bytes).
type StdoutWrite = (u64, Arc<[u8]>);
/// What the recording says of the data dir and the target.
type Recorded = (Vec<Call>, Vec<(u64, String)>, Vec<StdoutWrite>);

/// The file calls of every traced process (nodes and workloads) in the data dir, with paths
/// relative to it and the bytes of writes; the checkpoints taken, as (seq, label); and the
/// writes to `stdout_file` (a workload target's stdout), as (seq, bytes).
fn calls_of(
    run_dir: &Path,
    data_dir: &Path,
    stdout_file: Option<&Path>,
) -> Result<Recorded, Error> {
    let fd_path = run_dir.join(FILE_DATA);
    let blob =
        std::fs::read(&fd_path).map_err(crate::io_err(format!("reading {}", fd_path.display())))?;
    let rel = |p: &Option<String>| -> Option<String> {
        let p = Path::new(p.as_deref()?);
        let r = p.strip_prefix(data_dir).ok()?;
        Some(r.to_string_lossy().into_owned())
    };
    let mut calls = Vec::new();
    let mut checkpoints = Vec::new();
    let mut stdout = Vec::new();
    for e in TraceReader::open(&run_dir.join("trace.jsonl"))?.read_all()? {
        if e.class == Some(Class::Proc) && e.call == "checkpoint" {
            // `data` is "ID LABEL", or "ID" for a checkpoint without a label.
            let data = e.data.clone().unwrap_or_default();
            let label = match data.split_once(' ') {
                Some((_, l)) => l.to_string(),
                None => data,
            };
            checkpoints.push((e.seq, label));
            continue;
        }
        if e.class != Some(Class::File) {
            continue;
        }
        let to_stdout =
            stdout_file.is_some_and(|f| e.path.as_deref() == Some(&*f.to_string_lossy()));
        if to_stdout {
            if let (Some(at), Some(n)) = (e.data_at, e.ret.filter(|&n| n > 0)) {
                let (at, n) = (at as usize, n as usize);
                if let Some(bytes) = blob.get(at..at + n) {
                    stdout.push((e.seq, Arc::from(bytes)));
                }
            }
            continue;
        }
        let (path, mut path2) = (rel(&e.path), rel(&e.path2));
        if e.file_op() == Some(ordeal_events::FileOp::Symlink) {
            // A symlink's target is its text, as written.
            path2 = e.path2.clone();
        }
        if path.is_none() && path2.is_none() && e.call != "sync" {
            continue;
        }
        // A write's bytes are what it returned; an msync's, its range.
        let moved = match e.file_op() {
            Some(ordeal_events::FileOp::MapSync) => e.len.map(|n| n as i64),
            _ => e.ret,
        };
        let data = match (e.data_at, moved) {
            (Some(at), Some(n)) if n > 0 => {
                let (at, n) = (at as usize, n as usize);
                let bytes = blob.get(at..at + n).ok_or_else(|| {
                    Error::Usage(format!(
                        "{}: event {} points past the end of the file",
                        fd_path.display(),
                        e.seq
                    ))
                })?;
                Some(Arc::from(bytes))
            }
            _ => None,
        };
        calls.push(Call {
            seq: e.seq,
            pid: e.pid,
            call: e.call.clone(),
            path,
            path2,
            flags: e.flags.clone(),
            fd: e.fd,
            ret: e.ret.unwrap_or(0),
            pos: e.pos,
            len: e.len,
            data,
        });
    }
    Ok((calls, checkpoints, stdout))
}

/// A crash state as the search plans it, in generation order (see [`pool`]).
pub(crate) enum Step {
    /// A tree not planned before: checked as state `n`, in `states/NNNNN`.
    New {
        n: usize,
        hash: blake3::Hash,
        state: CrashState,
    },
    /// A tree planned before: counted, not checked again.
    Seen {
        hash: blake3::Hash,
        state: CrashState,
    },
}

/// What the search has found so far. Planning (which states are checked, and their numbers)
/// and applying results (failures, vulnerabilities) are separate so that states can be
/// recovered in parallel while the findings are assembled in state order.
struct Exploration<'a> {
    ops: &'a [Op],
    ex: &'a Explorer<'a>,
    states_dir: &'a Path,
    /// Tree hashes planned for a check.
    planned: HashSet<blake3::Hash>,
    /// Tree hash → recovery error (None: recovered), once its result is applied.
    seen: HashMap<blake3::Hash, Option<String>>,
    /// Failing tree hash → the vulnerability (index) it was filed under.
    filed: HashMap<blake3::Hash, usize>,
    vulns: Vec<Vulnerability>,
    generated: usize,
    checked: usize,
    failed: usize,
}

impl Exploration<'_> {
    /// Counts a generated state; a tree not planned before gets the next state number and is
    /// returned to be recovered.
    fn plan(&mut self, s: CrashState) -> (Step, Option<Tree>) {
        self.generated += 1;
        let tree = self.ex.tree(&s);
        let hash = tree.hash();
        if !self.planned.insert(hash) {
            return (Step::Seen { hash, state: s }, None);
        }
        self.checked += 1;
        let n = self.checked;
        (Step::New { n, hash, state: s }, Some(tree))
    }

    /// The directory of state `n`.
    fn state_dir(&self, n: usize) -> PathBuf {
        self.states_dir.join(format!("{n:05}"))
    }

    /// Applies the outcome of a planned step, in plan order: `result` is the recovery's for a
    /// new tree (ignored for a seen one). Returns why the state's tree did not recover.
    fn apply(&mut self, step: &Step, result: Option<String>) -> Option<String> {
        match step {
            Step::Seen { hash, state } => {
                // Another way to the same failing tree: the models it happens under count for
                // the vulnerability that tree was filed under (the same disk, the same failure).
                if let Some(v) = self.filed.get(hash).and_then(|&i| self.vulns.get_mut(i)) {
                    group::add_models(v, &self.ex.models(state));
                }
                self.seen.get(hash).cloned().flatten()
            }
            Step::New { n, hash, state } => {
                self.seen.insert(*hash, result.clone());
                if let Some(err) = &result {
                    self.failed += 1;
                    let blame = self.ex.blame(state);
                    let models = self.ex.models(state);
                    let dir = self.state_dir(*n);
                    let i =
                        group::file(&mut self.vulns, self.ops, state, &blame, models, err, &dir);
                    self.filed.insert(*hash, i);
                }
                result
            }
        }
    }

    /// Plans, recovers (on this thread) and applies one state; its directory is removed when
    /// it recovered.
    fn check_now(
        &mut self,
        rec: &recover::Recovery,
        s: CrashState,
    ) -> Result<Option<String>, Error> {
        let (step, tree) = self.plan(s);
        let result = match (&step, tree) {
            (Step::New { n, state, .. }, Some(tree)) => {
                let dir = self.state_dir(*n);
                let e = rec.recover(&tree, &dir, state.crash_at)?;
                if e.is_none() {
                    let _ = std::fs::remove_dir_all(&dir);
                }
                e
            }
            _ => None,
        };
        Ok(self.apply(&step, result))
    }
}
