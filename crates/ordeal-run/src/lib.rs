//! The supervisor: one run of an experiment, from resolving it to a complete run directory.
//!
//! Flow ([`run`]): resolve the experiment (ports, placeholders, programs) → create the run
//! directory and data dirs (`rundir`, `network` for `network = "netns"`) → start the tracing
//! engine ([`ordeal_tracer::Engine`], ptrace today) → start every node in file order
//! (stdout/stderr to `logs/NODE.{stdout,stderr}`) → wait until each node is ready
//! (`readiness`, polled with a deadline) → find who holds each role of `[roles]` ([`roles`]:
//! probes, or the recent sends between nodes the trace's sink keeps for a role inferred from
//! traffic; `roles.jsonl`) → run the workloads → end the faults still in effect ([`lasting`])
//! → run the check → stop everything → rebuild the happens-before graph
//! from `trace.jsonl` and write the outputs (`outputs`). The phases live in `supervisor`.
//! The verdict carries its cause ([`Cause`], chosen in `cause`: the history's violating
//! operation, the check's message, a failed workload's telling log line with its file and line).
//!
//! Seams: the engine is a [`ordeal_tracer::Launcher`] ([`run_on`]); a run refuses, before
//! anything starts, faults its engine cannot apply (call interception is a ptrace
//! capability). A node-level fault that lasts (pause, partition, toxic, crash with restart)
//! is one [`lasting::Lasting`] value started in [`faults::node_fault`] and ended by the
//! supervisor's single tick. A partition in effect is a set of directed cut links
//! ([`cuts::Cut`]: its two sides, or its shape laid over the nodes when it fired), which the
//! tracer hook (loopback) and the drop rules (netns) apply alike. A fault aimed at a role
//! (`role = "leader"`) is applied by the supervisor once the role's probe (or its traffic)
//! found its holder, never on the tracer thread ([`faults::Pending::deferred`]). [`replay`] compares a re-run
//! with the original, and counts how many of N reruns reproduce it ([`replay::Rates`], with a
//! [`replay::wilson`] interval).
//!
//! Invariant: every process started here is killed before [`run`] returns, on every path
//! (the engine kills process groups and every traced process on shutdown or drop; the
//! tracer's seizure carries `PTRACE_O_EXITKILL` and every child a parent-death signal for the
//! paths where ordeal itself dies).

mod cause;
mod checkpoints;
pub mod crash;
pub mod cuts;
pub mod diag;
#[cfg(test)]
mod engine_tests;
pub mod engines;
pub mod faults;
mod fired;
mod history;
pub mod lasting;
mod lifecycle;
mod network;
mod outputs;
mod readiness;
pub mod replay;
pub mod roles;
#[cfg(test)]
mod roles_tests;
mod rundir;
mod supervisor;

pub use ordeal_hb::{Cause, FaultRecord, LogLine};
pub use outputs::{rebuild, write_outputs};

use ordeal_events::TraceWriter;
use ordeal_experiment::{EngineChoice, Experiment, HistorySource, ResolveContext};
use ordeal_hb::{Status, Summary, Verdict};
use ordeal_tracer::{Config, ExitStatus, Launcher};
use std::fs::File;
use std::io::BufWriter;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};
use supervisor::{Progress, Supervisor};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Experiment(#[from] ordeal_experiment::Error),
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Tracer(#[from] ordeal_tracer::Error),
    #[error(transparent)]
    Trace(#[from] ordeal_events::Error),
    #[error("{0}")]
    Usage(String),
    #[error("network = \"netns\": {0}")]
    Netns(#[from] ordeal_netns::Error),
    #[error(transparent)]
    Faults(#[from] ordeal_faults::Error),
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    #[error(transparent)]
    Calls(#[from] ordeal_calls::Error),
    /// What a fault schedule asks for and the experiment or the engine cannot do, one
    /// problem a line (refused before anything starts).
    #[error("{}", .0.join("\n"))]
    Schedule(Vec<String>),
    /// Setting the partitions in effect as drop rules in the namespaces failed.
    #[error(transparent)]
    Cuts(ordeal_netns::Error),

    // Why a run's phases stopped with an `error` verdict: each text is the verdict's reason.
    #[error("node {node} was not ready within {within:?}: {why}{tail}")]
    NotReady {
        node: String,
        within: Duration,
        /// What the check waited for and what to change ([`readiness::not_ready_why`]).
        why: String,
        /// `; last lines of …` from its stderr, or nothing.
        tail: String,
    },
    #[error("node {node} exited before it was ready: {status}{tail}")]
    ExitedBeforeReady {
        node: String,
        status: ExitStatus,
        tail: String,
    },
    #[error("node {node} did not become ready again after its restart")]
    NotReadyAfterRestart { node: String },
    #[error(
        "node {node} was crashed by a fault before it was ready, and the fault does not restart it"
    )]
    CrashedForGood { node: String },
    #[error(
        "node {node} was not ready again before the run's timeout after a crash during its start-up"
    )]
    NotBackInTime { node: String },
    #[error("the check did not finish within the run's {timeout:?}")]
    CheckTimeout { timeout: Duration },
    #[error("interrupted")]
    Interrupted,

    // `ordeal snapshot` (see [`diag`]).
    #[error("{} is not the directory of a run that takes snapshots (no {}/)", .0.display(), diag::REQUEST_DIR)]
    NotSnapshotting(PathBuf),
    #[error("the run in {} has ended", .0.display())]
    RunEnded(PathBuf),
    #[error("no answer within {0:?} (is the run still going?)")]
    NoAnswer(Duration),
    #[error("the run ended before taking the snapshot")]
    EndedBeforeSnapshot,
    /// The supervisor's answer to a snapshot request that failed.
    #[error("{0}")]
    SnapshotFailed(String),
    #[error(transparent)]
    InvalidSize(#[from] ordeal_toml::SizeError),
}

fn io_err(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let context = context.into();
    move |source| Error::Io { context, source }
}

/// Bytes of each socket transfer captured by default: request lines, keys and small values
/// whole, so that the call log (calls.jsonl) and histories from traffic see them.
pub const DEFAULT_PAYLOAD_BYTES: usize = 1024;

/// Options of one run (the CLI's flags).
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Run directory; default `runs/<timestamp>-<name>`.
    pub out: Option<PathBuf>,
    /// Where default run directories go.
    pub runs_root: PathBuf,
    /// The ordeal executable, for `{ordeal}`.
    pub ordeal_exe: PathBuf,
    /// Capture the first N bytes of each socket transfer (what the call log decodes;
    /// [`DEFAULT_PAYLOAD_BYTES`] by default, 0: none).
    pub payload_bytes: usize,
    /// Event-level graph.dot up to this many communication events, node-level beyond.
    pub max_dot_events: usize,
    /// Pin the tracer thread to this CPU.
    pub tracer_cpu: Option<usize>,
    /// Also pin every traced process to `tracer_cpu`.
    pub pin_traced: bool,
    /// Progress lines on stderr.
    pub progress: bool,
    /// Faults to inject (validated against the experiment by the caller).
    pub faults: Option<ordeal_faults::Schedule>,
    /// For `ordeal crash`: record the bytes of data-dir writes (`filedata.bin`) and copy each
    /// node's data dir to `base/NODE` before anything starts.
    pub record_file_data: bool,
    /// For `ordeal crash --workload W` (and `--cluster`: every workload): also trace these
    /// workloads' writes to their stdout (`logs/W.stdout`) as file events with their bytes,
    /// to know what they had printed at each crash point.
    pub record_stdout_of: Vec<String>,
    /// Write only `summary.json` (no graph.dot/svg, trace.json, hb.jsonl): for campaigns that
    /// run many times (`ordeal explore`); `ordeal graph RUN_DIR` writes the rest later.
    pub summary_only: bool,
    /// Hang detection, snapshots and dumps (see [`diag`]).
    pub diag: diag::DiagOptions,
    /// How calls are seen; None: the experiment's `engine` (default `auto`).
    pub engine: Option<ordeal_experiment::EngineChoice>,
}

impl RunOptions {
    pub fn new(ordeal_exe: PathBuf) -> Self {
        Self {
            out: None,
            runs_root: PathBuf::from("runs"),
            ordeal_exe,
            payload_bytes: DEFAULT_PAYLOAD_BYTES,
            max_dot_events: ordeal_hb::DEFAULT_DOT_LIMIT,
            tracer_cpu: None,
            pin_traced: false,
            progress: true,
            faults: None,
            record_file_data: false,
            record_stdout_of: Vec::new(),
            summary_only: false,
            diag: diag::DiagOptions::default(),
            engine: None,
        }
    }
}

/// What a run produced.
#[derive(Debug)]
pub struct RunReport {
    pub run_dir: PathBuf,
    pub summary: Summary,
    pub stats: ordeal_tracer::Stats,
    /// Where the run's wall time went.
    pub times: RunTimes,
}

/// Wall time of a run's steps. The steps inside `drive` (nodes started, ready, workloads) can be
/// read from the trace, whose time 0 is the tracer's start.
#[derive(Debug, Clone, Copy, Default)]
pub struct RunTimes {
    /// Resolving the experiment, run and data directories, network, until the tracer starts.
    pub setup: Duration,
    /// From the tracer's start to the verdict: start, ready, workloads, recovery, check.
    pub drive: Duration,
    /// Killing every process and stopping the tracer.
    pub teardown: Duration,
    /// Building the graph and writing the outputs (and `schedule.applied.toml`).
    pub outputs: Duration,
}

/// Runs the experiment once, with the engine of `opts.engine` or the experiment's `engine`
/// ([`engines`]). `cancel` (set by SIGINT/SIGTERM handlers) ends the run early: everything
/// is still torn down and the outputs written, with an `error` verdict.
pub fn run(exp: &Experiment, opts: &RunOptions, cancel: &AtomicBool) -> Result<RunReport, Error> {
    let choice = opts.engine.unwrap_or(exp.engine());
    if let (EngineChoice::Ebpf, Some(why)) = (choice, engines::ebpf_unavailable()) {
        // Asked for by name: refused before anything exists.
        return Err(Error::Usage(why));
    }
    let (launcher, line) = engines::launcher_for(choice);
    if opts.progress {
        eprintln!("{line}");
    }
    run_on(launcher.as_ref(), exp, opts, cancel)
}

/// [`run`] with the engine `launcher` starts. A schedule with faults the engine cannot
/// apply is refused before anything exists.
pub fn run_on(
    launcher: &dyn Launcher,
    exp: &Experiment,
    opts: &RunOptions,
    cancel: &AtomicBool,
) -> Result<RunReport, Error> {
    let progress = Progress::new(opts.progress);
    // Resolve first: a bad file or a missing program is reported before anything exists.
    if let Some(s) = &opts.faults {
        // Refused before anything starts, like the rest of a bad schedule.
        faults::check_toxics(s, &exp.proxy_names())?;
        let roles: Vec<String> = exp.role_names().map(str::to_string).collect();
        roles::check_roles(s, &roles)?;
        faults::check_engine(s, exp.network(), launcher)?;
    }
    let run_dir = rundir::run_dir_path(exp, opts)?;
    let resolved = exp.resolve(&ResolveContext::new(&run_dir, &opts.ordeal_exe))?;
    let traffic_history = resolved
        .history_check
        .as_ref()
        .is_some_and(|h| matches!(h.from, HistorySource::Traffic { .. }));
    if traffic_history && opts.payload_bytes == 0 {
        return Err(Error::Usage(
            "[check] history with from = \"traffic\" decodes the captured bytes of every \
             transfer: run without --payload 0"
                .into(),
        ));
    }
    rundir::create_run_dir(&run_dir)?;
    resolved.prepare_data_dirs()?;
    if opts.record_file_data {
        checkpoints::copy_bases(&resolved, &run_dir)?;
    }
    progress.say(format!("run directory {}", run_dir.display()));
    let net = match resolved.network {
        ordeal_experiment::Network::Loopback => None,
        ordeal_experiment::Network::Netns => {
            Some(Arc::new(network::create_network(&resolved, &run_dir)?))
        }
    };

    let header = outputs::header_for(&resolved);
    let trace_path = run_dir.join("trace.jsonl");
    let file =
        File::create(&trace_path).map_err(io_err(format!("creating {}", trace_path.display())))?;
    let mut writer = TraceWriter::new(BufWriter::with_capacity(1 << 20, file), &header)
        .map_err(io_err("writing trace header"))?;
    // The header goes to disk at once: a run killed early still leaves a readable trace.
    writer.flush().map_err(io_err("writing trace header"))?;
    let origin = ordeal_tracer::monotonic_ns();
    let config = Config {
        payload_bytes: opts.payload_bytes,
        data_roots: resolved
            .nodes
            .iter()
            .filter_map(|n| n.data_dir.as_ref().map(|d| d.path.clone()))
            .chain(
                opts.record_stdout_of
                    .iter()
                    .filter_map(|w| crash::stdout_path(&run_dir, w)),
            )
            .collect(),
        port_owners: resolved
            .nodes
            .iter()
            .flat_map(|n| n.ports.values().map(|p| (*p, n.name.clone())))
            .collect(),
        origin_ns: origin,
        cpu: opts.tracer_cpu,
        pin_traced: opts.pin_traced,
        file_data: opts
            .record_file_data
            .then(|| run_dir.join(crash::FILE_DATA)),
        // The launcher decides (an eBPF launcher sets its observer).
        observer: ordeal_tracer::Observer::Ptrace,
        ring_bytes: 0,
    };
    let shared = faults::Shared::default();
    if let Ok(mut p) = shared.lock() {
        p.net = net.clone();
        if let Some(s) = &opts.faults {
            let nodes = resolved.nodes.iter().map(|n| n.name.clone()).collect();
            p.shapes = ordeal_faults::ShapeState::new(s, nodes);
        }
        for px in &resolved.proxies {
            let proxy = ordeal_shadow::Proxy::start(ordeal_shadow::ProxyConfig {
                name: px.name.clone(),
                listen: px.listen.to_string(),
                upstream: px.upstream.clone(),
                enabled: true,
            })
            .map_err(|e| Error::Usage(format!("proxy `{}`: {e}", px.name)))?;
            progress.say(format!(
                "proxy {} listening on {} → {}",
                px.name, px.listen, px.upstream
            ));
            p.proxies.insert(px.name.clone(), proxy);
        }
    }
    // Only an engine that intercepts calls gets the hook (check_engine refused the faults
    // that need it otherwise).
    let hook = opts
        .faults
        .as_ref()
        .filter(|_| launcher.capabilities().intercept)
        .map(|s| {
            Box::new(faults::ScheduleHook::new(s, shared.clone()))
                as Box<dyn ordeal_tracer::Interceptor>
        });
    let prober = roles::Prober::new(&resolved, net.as_deref(), origin);
    // Roles a trigger counts the calls of are looked for again after each node-level fault.
    let counted: Vec<String> = opts
        .faults
        .iter()
        .flat_map(|s| &s.faults)
        .filter_map(|f| f.trigger.pattern().and_then(|p| p.role()))
        .map(str::to_string)
        .collect();
    let watch = match &prober {
        Some(p) if !counted.is_empty() => {
            Some(roles::Watch::start(p.clone(), counted, shared.clone()))
        }
        _ => None,
    };
    let t_drive = Instant::now();
    // Fault marks are watched as they are written: live lines, summary.json's `faults`.
    let seen = fired::SeenLog::default();
    let live = (opts.progress && opts.faults.is_some()).then_some(progress.t0);
    let sink: Box<dyn ordeal_tracer::Sink> =
        Box::new(fired::FaultWatch::new(writer, seen.clone(), live));
    // With a role inferred from traffic, the sends between nodes are kept on the way.
    let sink = match &prober {
        Some(p) => p.sink(sink),
        None => sink,
    };
    let engine = launcher.start(config, sink, hook)?;
    let mut ckpt = checkpoints::Checkpoints::start(&resolved, &run_dir, engine.marker())?;
    let mut sup = Supervisor {
        ckpt: &ckpt,
        engine: engine.as_ref(),
        origin_ns: origin,
        shared: &shared,
        net: net.as_deref(),
        schedule: opts.faults.as_ref(),
        started: Vec::new(),
        run_dir: &run_dir,
        progress: &progress,
        cancel,
        diag: diag::Diag::new(&resolved, &opts.diag, &run_dir),
        prober: prober.as_ref(),
    };
    let mut verdict = sup.drive(&resolved);
    if let Some(w) = watch {
        // Its probes end before the nodes are stopped.
        w.stop();
    }
    let t_teardown = Instant::now();
    sup.stop_gracefully(&resolved);
    let started = std::mem::take(&mut sup.started);
    ckpt.stop();
    progress.say("stopping all processes");
    // The engine flushes trace.jsonl before it returns.
    let stats = engine.shutdown()?;
    if let Ok(p) = shared.lock() {
        for px in p.proxies.values() {
            px.shutdown();
        }
    }
    let t_outputs = Instant::now();
    // The call log, when a picture or the history needs it.
    let calls = if !opts.summary_only || traffic_history {
        let decoded = outputs::write_calls(&run_dir)?;
        progress.say(decoded.describe());
        Some(decoded)
    } else {
        None
    };
    if let (Some(hc), HistorySource::Traffic { clients }) = (
        &resolved.history_check,
        resolved
            .history_check
            .as_ref()
            .map(|h| &h.from)
            .unwrap_or(&HistorySource::File),
    ) {
        let log = ordeal_calls::read_calls(&run_dir.join(ordeal_calls::CALLS_FILE))?;
        let out = run_dir.join(&hc.file);
        let made = history::from_traffic(&log, clients, hc.model == "kv", &out)
            .map_err(io_err(format!("writing {}", out.display())))?;
        progress.say(made.line(&hc.file));
    }
    let faults_fired = match (&opts.faults, seen.lock()) {
        (Some(s), Ok(seen)) => fired::records(&seen, s),
        _ => Vec::new(),
    };
    let mut history_cause = None;
    if let Some(hc) = &resolved.history_check {
        // After the tracer is done, so the whole trace (faults, node ends) is on disk.
        if matches!(verdict.status, Status::Pass | Status::Fail) {
            let events = ordeal_events::TraceReader::open(&trace_path)?.read_all()?;
            let h = history::check(&run_dir, hc, &events, !faults_fired.is_empty());
            progress.say(h.line);
            history_cause = h.cause;
            if let Some(reason) = h.reason {
                verdict = match verdict.status {
                    Status::Pass => Verdict::fail(vec![reason]),
                    _ => {
                        let mut reasons = verdict.reasons.clone();
                        reasons.push(reason);
                        Verdict::fail(reasons)
                    }
                };
            }
        }
    }
    progress.say(format!(
        "{} events traced, {} ptrace stops{}; building the graph and outputs",
        stats.events,
        stats.stops,
        if stats.lost > 0 {
            format!(", {} events LOST", stats.lost)
        } else {
            String::new()
        }
    ));
    if stats.lost > 0 {
        verdict.reasons.push(format!(
            "the trace is incomplete: the {} engine lost {} events (its ring buffer was full)",
            launcher.name(),
            stats.lost
        ));
    }
    verdict.cause = cause::find(
        &verdict,
        &started,
        &run_dir,
        exp.failure_pattern(),
        history_cause,
    );
    let engine = Some(ordeal_hb::EngineInfo {
        name: launcher.name().to_string(),
        lost_events: stats.lost,
    });
    let summary = if opts.summary_only {
        outputs::write_summary_only(&run_dir, verdict, engine, faults_fired)?
    } else {
        write_outputs(
            &run_dir,
            verdict,
            engine,
            faults_fired,
            opts.max_dot_events,
            calls,
        )?
    };
    if let Some(s) = &opts.faults {
        outputs::write_applied(&run_dir, s)?;
    }
    progress.say("outputs written");
    let times = RunTimes {
        setup: t_drive.duration_since(progress.t0),
        drive: t_teardown.duration_since(t_drive),
        teardown: t_outputs.duration_since(t_teardown),
        outputs: t_outputs.elapsed(),
    };
    Ok(RunReport {
        run_dir,
        summary,
        stats,
        times,
    })
}
