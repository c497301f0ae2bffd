//! The supervisor: one run of an experiment, from resolving it to a complete run directory.
//!
//! Flow: resolve the experiment (ports, placeholders, programs) → create the run directory and
//! data dirs → start the tracer → start every node in file order (stdout/stderr to
//! `logs/NODE.{stdout,stderr}`) → wait until each node is ready (polled with a deadline) →
//! run the workloads → stop everything → rebuild the happens-before graph from `trace.jsonl`
//! and write the outputs.
//!
//! Invariant: every process started here is killed before [`run`] returns, on every path
//! (the tracer kills process groups and every traced process on shutdown or drop; the tracer's
//! seizure carries `PTRACE_O_EXITKILL` and every child a parent-death signal for the paths
//! where ordeal itself dies).

mod checkpoints;
pub mod crash;
pub mod diag;
pub mod faults;
mod history;

use ordeal_events::FaultMark;
use ordeal_events::{Header, NodeInfo, TraceReader, TraceWriter, SCHEMA_VERSION};
use ordeal_experiment::{Experiment, LogStream, ReadyCheck, ResolveContext, Resolved, StartAfter};
use ordeal_faults::FaultKind;
use ordeal_hb::{HbGraph, Status, Summary, Verdict};
use ordeal_tracer::{Config, ExitStatus, Notice, SpawnSpec, Tracer};
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often conditions are polled while waiting (readiness, exits, cancellation).
const POLL: Duration = Duration::from_millis(10);
/// How often a long workload phase reports progress.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

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
}

fn io_err(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let context = context.into();
    move |source| Error::Io { context, source }
}

/// Options of one run (the CLI's flags).
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Run directory; default `runs/<timestamp>-<name>`.
    pub out: Option<PathBuf>,
    /// Where default run directories go.
    pub runs_root: PathBuf,
    /// The ordeal executable, for `{ordeal}`.
    pub ordeal_exe: PathBuf,
    /// Capture the first N bytes of each socket transfer.
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
    /// Write only `summary.json` (no graph.dot/svg, trace.json, hb.jsonl): for campaigns that
    /// run many times (`ordeal explore`); `ordeal graph RUN_DIR` writes the rest later.
    pub summary_only: bool,
    /// Hang detection, snapshots and dumps (see [`diag`]).
    pub diag: diag::DiagOptions,
}

impl RunOptions {
    pub fn new(ordeal_exe: PathBuf) -> Self {
        Self {
            out: None,
            runs_root: PathBuf::from("runs"),
            ordeal_exe,
            payload_bytes: 0,
            max_dot_events: ordeal_hb::DEFAULT_DOT_LIMIT,
            tracer_cpu: None,
            pin_traced: false,
            progress: true,
            faults: None,
            record_file_data: false,
            summary_only: false,
            diag: diag::DiagOptions::default(),
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

/// How one started process ended (or not).
#[derive(Debug, Clone)]
struct Started {
    name: String,
    role: &'static str,
    pid: i32,
    exit: Option<ExitStatus>,
    exited_at: Option<Instant>,
    /// Whether this incarnation was started again after a crash fault.
    restarted: bool,
}

struct Progress {
    on: bool,
    t0: Instant,
}

impl Progress {
    fn say(&self, msg: impl AsRef<str>) {
        if self.on {
            let t = self.t0.elapsed().as_secs_f64();
            eprintln!("[{t:7.3}s] {}", msg.as_ref());
        }
    }
}

/// The UTC wall clock as (year, month, day, hour, minute, second, millisecond), for naming
/// only: all measurements use the monotonic clock.
fn utc_now() -> (i64, u32, u32, i64, i64, i64, u32) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs() as i64;
    let (y, mo, d) = civil_from_days(secs.div_euclid(86400));
    let s = secs.rem_euclid(86400);
    (y, mo, d, s / 3600, s / 60 % 60, s % 60, now.subsec_millis())
}

fn timestamp_name() -> String {
    let (y, mo, d, h, mi, s, ms) = utc_now();
    format!("{y:04}{mo:02}{d:02}-{h:02}{mi:02}{s:02}-{ms:03}")
}

fn rfc3339_now() -> String {
    let (y, mo, d, h, mi, s, _) = utc_now();
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// The run directory: `--out` (absolute), or a fresh `runs/<timestamp>-<name>`.
fn run_dir_path(exp: &Experiment, opts: &RunOptions) -> Result<PathBuf, Error> {
    let dir = match &opts.out {
        Some(d) => d.clone(),
        None => opts
            .runs_root
            .join(format!("{}-{}", timestamp_name(), exp.name())),
    };
    let dir = if dir.is_absolute() {
        dir
    } else {
        std::env::current_dir()
            .map_err(io_err("reading the current directory"))?
            .join(dir)
    };
    if dir.exists() {
        let non_empty = std::fs::read_dir(&dir)
            .map_err(io_err(format!("reading {}", dir.display())))?
            .next()
            .is_some();
        if non_empty {
            return Err(Error::Usage(format!(
                "run directory {} exists and is not empty (choose another --out)",
                dir.display()
            )));
        }
    }
    Ok(dir)
}

fn create_run_dir(dir: &Path) -> Result<(), Error> {
    std::fs::create_dir_all(dir.join("logs")).map_err(io_err(format!("creating {}", dir.display())))
}

/// Creates the run's namespaces (nodes, then workloads, in file order: the addresses the
/// experiment's `{host.NAME}` expanded to) and writes `network.json`.
fn create_network(r: &Resolved, run_dir: &Path) -> Result<ordeal_netns::Network, Error> {
    let members: Vec<String> = r
        .nodes
        .iter()
        .map(|n| n.name.clone())
        .chain(r.workloads.iter().map(|w| w.name.clone()))
        .collect();
    let net = ordeal_netns::Network::create(&members)?;
    let mut doc = serde_json::Map::new();
    for m in &members {
        let addr = net.addr(m).map(|a| a.to_string());
        if addr.as_ref() != r.hosts.get(m) {
            return Err(Error::Usage(format!(
                "internal: {m} has address {addr:?} but the experiment expanded {:?}",
                r.hosts.get(m)
            )));
        }
        let inode = net.netns(m).and_then(|fd| ordeal_netns::ns_inode(&fd));
        doc.insert(
            m.clone(),
            serde_json::json!({ "addr": addr, "netns_inode": inode }),
        );
    }
    let hub = ordeal_netns::ns_inode(&net.hub_netns());
    let json = serde_json::json!({
        "subnet": "10.77.0.0/24",
        "hub": { "addr": format!("10.77.0.{}", ordeal_netns::HUB_HOST), "netns_inode": hub },
        "members": doc,
        "holder_pids": net.holder_pids(),
    });
    let path = run_dir.join("network.json");
    let text = serde_json::to_string_pretty(&json).unwrap_or_default();
    std::fs::write(&path, text + "\n").map_err(io_err(format!("writing {}", path.display())))?;
    Ok(net)
}

/// Makes `cmd` enter the network namespace `ns` before it execs.
fn enter_netns(cmd: &mut std::process::Command, ns: Arc<std::os::fd::OwnedFd>) {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    // SAFETY: setns is async-signal-safe; `ns` is moved into the closure, open until exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Runs the experiment once. `cancel` (set by SIGINT/SIGTERM handlers) ends the run early:
/// everything is still torn down and the outputs written, with an `error` verdict.
pub fn run(exp: &Experiment, opts: &RunOptions, cancel: &AtomicBool) -> Result<RunReport, Error> {
    let progress = Progress {
        on: opts.progress,
        t0: Instant::now(),
    };
    // Resolve first: a bad file or a missing program is reported before anything exists.
    if let Some(s) = &opts.faults {
        // Refused before anything starts, like the rest of a bad schedule.
        faults::check_toxics(s, &exp.proxy_names()).map_err(Error::Usage)?;
    }
    let run_dir = run_dir_path(exp, opts)?;
    let resolved = exp.resolve(&ResolveContext::new(&run_dir, &opts.ordeal_exe))?;
    create_run_dir(&run_dir)?;
    resolved.prepare_data_dirs()?;
    if opts.record_file_data {
        checkpoints::copy_bases(&resolved, &run_dir)?;
    }
    progress.say(format!("run directory {}", run_dir.display()));
    let net = match resolved.network {
        ordeal_experiment::Network::Loopback => None,
        ordeal_experiment::Network::Netns => Some(Arc::new(create_network(&resolved, &run_dir)?)),
    };

    let header = header_for(&resolved);
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
    };
    let shared = faults::Shared::default();
    if let Ok(mut p) = shared.lock() {
        p.net = net.clone();
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
    let hook = opts.faults.as_ref().map(|s| {
        Box::new(faults::ScheduleHook::new(s, shared.clone()))
            as Box<dyn ordeal_tracer::Interceptor>
    });
    let t_drive = Instant::now();
    let tracer = Tracer::start_with(config, writer, hook)?;
    let mut ckpt = checkpoints::Checkpoints::start(&resolved, &run_dir, tracer.marker())?;
    let mut sup = Supervisor {
        ckpt: &ckpt,
        tracer: &tracer,
        origin_ns: origin,
        shared: &shared,
        net: net.as_deref(),
        schedule: opts.faults.as_ref(),
        started: Vec::new(),
        run_dir: &run_dir,
        progress: &progress,
        cancel,
        diag: diag::Diag::new(&resolved, &opts.diag, &run_dir),
    };
    let mut verdict = sup.drive(&resolved);
    let t_teardown = Instant::now();
    sup.stop_gracefully(&resolved);
    ckpt.stop();
    progress.say("stopping all processes");
    let (stats, writer) = tracer.shutdown()?;
    if let Ok(p) = shared.lock() {
        for px in p.proxies.values() {
            px.shutdown();
        }
    }
    let t_outputs = Instant::now();
    let mut out = writer.into_inner();
    out.flush().map_err(io_err("flushing trace.jsonl"))?;
    drop(out);
    if let Some(hc) = &resolved.history_check {
        // After the tracer is done, so the whole trace (faults, node ends) is on disk.
        if matches!(verdict.status, Status::Pass | Status::Fail) {
            let events = TraceReader::open(&trace_path)?.read_all()?;
            let h = history::check(&run_dir, hc, &events);
            progress.say(h.line);
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
        "{} events traced, {} ptrace stops; building the graph and outputs",
        stats.events, stats.stops
    ));
    let summary = if opts.summary_only {
        write_summary_only(&run_dir, verdict)?
    } else {
        write_outputs(&run_dir, verdict, opts.max_dot_events)?
    };
    if let Some(s) = &opts.faults {
        let events = TraceReader::open(&trace_path)?.read_all()?;
        let applied = faults::applied(s, &events);
        for a in applied.iter().filter(|a| a.fired) {
            progress.say(format!(
                "fault {} fired at seq {}: {}",
                a.fault,
                a.seq.unwrap_or_default(),
                a.detail.as_deref().unwrap_or("")
            ));
        }
        ordeal_faults::write_applied_toml(&applied, run_dir.join(ordeal_faults::APPLIED_FILE))
            .map_err(|e| Error::Usage(e.to_string()))?;
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

fn header_for(r: &Resolved) -> Header {
    let mut nodes: Vec<NodeInfo> = r
        .nodes
        .iter()
        .map(|n| NodeInfo {
            name: n.name.clone(),
            role: "node".into(),
            ports: n.ports.values().copied().collect(),
        })
        .collect();
    nodes.extend(r.workloads.iter().map(|w| NodeInfo {
        name: w.name.clone(),
        role: "workload".into(),
        ports: vec![],
    }));
    nodes.extend(r.check.iter().map(|c| NodeInfo {
        name: c.name.clone(),
        role: "check".into(),
        ports: vec![],
    }));
    Header {
        schema: "ordeal-trace".into(),
        version: SCHEMA_VERSION,
        experiment: r.name.clone(),
        started_at: rfc3339_now(),
        nodes,
    }
}

/// Rebuilds graph, summary and every output from `RUN_DIR/trace.jsonl` with `verdict`.
pub fn write_outputs(
    run_dir: &Path,
    verdict: Verdict,
    max_dot_events: usize,
) -> Result<Summary, Error> {
    let reader = TraceReader::open(&run_dir.join("trace.jsonl"))?;
    let header = reader.header.clone();
    let events = reader.read_all()?;
    let graph = HbGraph::from_owned(header, events);
    let mut summary = Summary::build(&graph, verdict);
    summary.snapshots = diag::links(run_dir);
    ordeal_hb::write_outputs(run_dir, &graph, &summary, max_dot_events)
        .map_err(io_err(format!("writing outputs in {}", run_dir.display())))?;
    Ok(summary)
}

/// Only `summary.json`, from `RUN_DIR/trace.jsonl` with `verdict` (see
/// [`RunOptions::summary_only`]).
fn write_summary_only(run_dir: &Path, verdict: Verdict) -> Result<Summary, Error> {
    let reader = TraceReader::open(&run_dir.join("trace.jsonl"))?;
    let header = reader.header.clone();
    let graph = HbGraph::from_owned(header, reader.read_all()?);
    let mut summary = Summary::build(&graph, verdict);
    summary.snapshots = diag::links(run_dir);
    let path = run_dir.join("summary.json");
    let file = File::create(&path).map_err(io_err(format!("creating {}", path.display())))?;
    ordeal_hb::write_summary_json(&summary, file)
        .map_err(io_err(format!("writing {}", path.display())))?;
    Ok(summary)
}

/// `ordeal graph RUN_DIR`: outputs again from the trace, keeping the recorded verdict.
pub fn rebuild(run_dir: &Path, max_dot_events: usize) -> Result<Summary, Error> {
    let verdict = std::fs::read(run_dir.join("summary.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<Summary>(&b).ok())
        .map(|s| s.verdict)
        .unwrap_or_else(|| {
            Verdict::error(vec!["no verdict recorded (summary.json missing)".into()])
        });
    write_outputs(run_dir, verdict, max_dot_events)
}

struct Supervisor<'a, S: ordeal_tracer::Sink + 'static> {
    tracer: &'a Tracer<S>,
    /// CLOCK_MONOTONIC ns of the trace's time 0.
    origin_ns: u64,
    ckpt: &'a checkpoints::Checkpoints,
    shared: &'a faults::Shared,
    net: Option<&'a ordeal_netns::Network>,
    schedule: Option<&'a ordeal_faults::Schedule>,
    started: Vec<Started>,
    run_dir: &'a Path,
    progress: &'a Progress,
    cancel: &'a AtomicBool,
    diag: diag::Diag,
}

enum Stop {
    Cancelled,
    Timeout,
    /// A crash fault killed the node while it was starting.
    Crashed,
}

impl<S: ordeal_tracer::Sink + 'static> Supervisor<'_, S> {
    fn drive(&mut self, r: &Resolved) -> Verdict {
        let deadline = Instant::now() + r.timeout;
        let verdict = match self.phases(r, deadline) {
            Ok(v) => v,
            Err(e) => Verdict::error(vec![e]),
        };
        let failed = matches!(verdict.status, Status::Fail | Status::Error);
        if failed && !self.cancel.load(Ordering::SeqCst) && self.diag.links().is_empty() {
            self.snapshot_into(&verdict, "failure");
        }
        verdict
    }

    /// Takes the snapshots `snapshot` faults asked for.
    fn scheduled_snapshots(&mut self) {
        for name in faults::take_snapshots(self.shared) {
            match self.diag.snapshot(self.tracer, "schedule", &name) {
                Ok(l) => self
                    .progress
                    .say(format!("fault {name}: snapshot {}", l.text)),
                Err(e) => self
                    .progress
                    .say(format!("fault {name}: snapshot failed: {e}")),
            }
        }
    }

    /// Snapshots every node (linked from summary.json's `snapshots`, not from the verdict's
    /// reasons, which stay comparable between runs).
    fn snapshot_into(&mut self, verdict: &Verdict, reason: &str) {
        if !self.diag.wants_snapshot(reason) {
            return;
        }
        let detail = verdict.reasons.first().cloned().unwrap_or_default();
        match self.diag.snapshot(self.tracer, reason, &detail) {
            Ok(l) => self
                .progress
                .say(format!("snapshot of every node: {}", l.text)),
            Err(e) => self.progress.say(format!("snapshot failed: {e}")),
        }
    }

    fn phases(&mut self, r: &Resolved, deadline: Instant) -> Result<Verdict, String> {
        for n in &r.nodes {
            let env = self.env_for(&n.name, &n.env);
            self.start(
                &n.name, "node", &n.program, &n.argv, env, &n.cwd, n.trace, None,
            )?;
        }
        self.start_workloads(r, StartAfter::Started)?;
        for n in &r.nodes {
            if let Some(check) = &n.ready {
                let t0 = Instant::now();
                let until = (t0 + n.ready_timeout).min(deadline);
                match self.wait_ready(&n.name, check, &n.cwd, until, HashMap::new())? {
                    Ok(()) => self.progress.say(format!(
                        "{} ready after {:.3}s",
                        n.name,
                        t0.elapsed().as_secs_f64()
                    )),
                    Err(Stop::Cancelled) => return Ok(interrupted()),
                    Err(Stop::Crashed) => {
                        if !self.await_restart(r, &n.name, deadline)? {
                            return Ok(interrupted());
                        }
                    }
                    Err(Stop::Timeout) => {
                        return Err(format!(
                            "node {} was not ready within {:?}{}",
                            n.name,
                            until.saturating_duration_since(t0),
                            self.tail_of(&n.name)
                        ))
                    }
                }
            }
        }
        self.start_workloads(r, StartAfter::Ready)?;
        if std::env::var_os("ORDEAL_TEST_PANIC").is_some() {
            // Test hook: proves that a panic mid-run still leaves no process behind.
            panic!("ORDEAL_TEST_PANIC is set");
        }
        // Workload phase: until every workload has exited.
        let workload_start = Instant::now();
        let mut time_faults = self.schedule.map(faults::TimeFaults::new);
        let mut next_report = Instant::now() + PROGRESS_EVERY;
        loop {
            if Instant::now() >= next_report {
                next_report += PROGRESS_EVERY;
                self.progress.say(format!(
                    "workloads running, {} events traced",
                    self.tracer.events_so_far()
                ));
            }
            self.drain_notices();
            if let Some(tf) = time_faults.as_mut() {
                for f in tf.due(workload_start.elapsed()) {
                    self.fire_node_fault(&f)?;
                }
            }
            self.resume_paused()?;
            self.heal_due(false)?;
            self.restart_crashed(r, deadline)?;
            self.diag.poll_requests(self.tracer);
            self.scheduled_snapshots();
            let pending: Vec<&Started> = self
                .started
                .iter()
                .filter(|s| s.role == "workload" && s.exit.is_none())
                .collect();
            if pending.is_empty() {
                break;
            }
            if self.cancel.load(Ordering::SeqCst) {
                return Ok(interrupted());
            }
            let paused = self.shared.lock().is_ok_and(|p| !p.paused.is_empty());
            if let Some(h) = self.diag.poll_hang(self.tracer, paused) {
                self.progress.say(h.reason());
                let v = Verdict::hung(vec![h.reason()]);
                self.snapshot_into(&v, "hang");
                return Ok(v);
            }
            if Instant::now() >= deadline {
                let names: Vec<String> = pending.iter().map(|s| s.name.clone()).collect();
                return Ok(Verdict::fail(vec![format!(
                    "timeout: the run's {:?} passed with {} still running",
                    r.timeout,
                    names.join(", ")
                )]));
            }
            self.wait_notice(POLL);
        }
        // Recovery phase (Jepsen's final heal): faults still in progress when the workloads end
        // complete before the check, so the check always sees the system recovered.
        while self.recovery_pending() {
            self.drain_notices();
            self.resume_paused()?;
            self.heal_due(true)?;
            self.restart_crashed(r, deadline)?;
            self.diag.poll_requests(self.tracer);
            self.scheduled_snapshots();
            if self.cancel.load(Ordering::SeqCst) {
                return Ok(interrupted());
            }
            if Instant::now() >= deadline {
                return Ok(Verdict::fail(vec![format!(
                    "timeout: the run's {:?} passed while restarting or resuming nodes after the workloads",
                    r.timeout
                )]));
            }
            self.wait_notice(POLL);
        }
        self.drain_notices();
        let mut reasons = Vec::new();
        if let Some(c) = &r.check {
            match self.run_check(r, c, deadline)? {
                Some(ExitStatus::Code(0)) => {}
                Some(st) => reasons.push(format!(
                    "check failed ({st}){}",
                    self.tail_of(ordeal_experiment::CHECK_NAME)
                )),
                None => return Ok(interrupted()),
            }
        }
        for s in &self.started {
            match (s.role, s.exit) {
                ("workload", Some(ExitStatus::Code(0))) => {}
                ("workload", Some(st)) => reasons.push(format!("workload {} ended: {st}", s.name)),
                ("node", Some(ExitStatus::Signal(libc::SIGKILL))) if self.was_crashed(s) => {}
                ("node", Some(st)) => {
                    reasons.push(format!("node {} exited unexpectedly: {st}", s.name))
                }
                _ => {}
            }
        }
        reasons.extend(self.ckpt.reasons());
        Ok(if reasons.is_empty() {
            Verdict::pass()
        } else {
            Verdict::fail(reasons)
        })
    }

    /// The inherited environment, the experiment's additions, and ordeal's own variables.
    fn env_for(&self, name: &str, extra: &BTreeMap<String, String>) -> BTreeMap<String, String> {
        let mut env: BTreeMap<String, String> = std::env::vars().collect();
        env.extend(extra.clone());
        env.insert("ORDEAL_NODE".into(), name.to_string());
        env.insert("ORDEAL_RUN_DIR".into(), self.run_dir.display().to_string());
        // Recording clients put their times on the trace's clock (ordeal-history).
        env.insert(
            ordeal_history::workload::CLOCK_ORIGIN_ENV.into(),
            self.origin_ns.to_string(),
        );
        let socket = self.ckpt.socket().display().to_string();
        env.insert(ordeal_state::service::ENV.into(), socket);
        env
    }

    fn start_workloads(&mut self, r: &Resolved, when: StartAfter) -> Result<(), String> {
        for w in r.workloads.iter().filter(|w| w.after == when) {
            let env = self.env_for(&w.name, &w.env);
            self.start(
                &w.name, "workload", &w.program, &w.argv, env, &w.cwd, w.trace, None,
            )?;
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn start(
        &mut self,
        name: &str,
        role: &'static str,
        program: &Path,
        argv: &[String],
        env: BTreeMap<String, String>,
        cwd: &Path,
        traced: bool,
        marker: Option<FaultMark>,
    ) -> Result<(), String> {
        let log = |ext: &str| -> Result<std::os::fd::OwnedFd, String> {
            let p = self.run_dir.join("logs").join(format!("{name}.{ext}"));
            // Appending: a node restarted after a crash continues its logs.
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&p)
                .map(Into::into)
                .map_err(|e| format!("creating {}: {e}", p.display()))
        };
        let spec = SpawnSpec {
            label: name.to_string(),
            program: program.to_owned(),
            argv: argv.to_vec(),
            env: env.into_iter().collect(),
            cwd: cwd.to_owned(),
            stdout: log("stdout")?,
            stderr: log("stderr")?,
            traced,
            marker,
            netns: self.net.and_then(|n| match role {
                // The check talks to every node: it runs in the hub, which reaches them all.
                "check" => Some(n.hub_netns()),
                _ => n.netns(name),
            }),
        };
        let pid = self.tracer.spawn(spec).map_err(|e| e.to_string())?;
        self.progress.say(format!(
            "started {role} {name} (pid {pid}): {}",
            argv.join(" ")
        ));
        self.started.push(Started {
            name: name.to_string(),
            role,
            pid,
            exit: None,
            exited_at: None,
            restarted: false,
        });
        Ok(())
    }

    fn record_notice(&mut self, n: Notice) {
        let Notice::Exited {
            pid, status, root, ..
        } = n;
        if !root {
            return;
        }
        if let Some(s) = self.started.iter_mut().find(|s| s.pid == pid) {
            s.exit = Some(status);
            s.exited_at = Some(Instant::now());
            self.progress
                .say(format!("{} {} ended: {status}", s.role, s.name));
        }
    }

    fn drain_notices(&mut self) {
        while let Ok(n) = self.tracer.notices().try_recv() {
            self.record_notice(n);
        }
    }

    fn wait_notice(&mut self, d: Duration) {
        if let Ok(n) = self.tracer.notices().recv_timeout(d) {
            self.record_notice(n);
        }
    }

    /// Runs the experiment's `[check]` (untraced) with the run's ports and data dirs in its
    /// environment; returns how it ended (None: cancelled).
    fn run_check(
        &mut self,
        r: &Resolved,
        c: &ordeal_experiment::WorkloadSpec,
        deadline: Instant,
    ) -> Result<Option<ExitStatus>, String> {
        let mut env = self.env_for(&c.name, &c.env);
        for (name, port) in &r.ports {
            env.insert(format!("ORDEAL_PORT_{}", env_key(name)), port.to_string());
        }
        for (name, host) in &r.hosts {
            env.insert(format!("ORDEAL_HOST_{}", env_key(name)), host.clone());
        }
        for n in &r.nodes {
            if let Some(d) = &n.data_dir {
                env.insert(
                    format!("ORDEAL_DATA_DIR_{}", env_key(&n.name)),
                    d.path.display().to_string(),
                );
            }
        }
        self.start(
            &c.name, "check", &c.program, &c.argv, env, &c.cwd, false, None,
        )?;
        loop {
            self.drain_notices();
            if let Some(st) = self.exit_of(&c.name) {
                return Ok(Some(st));
            }
            if self.cancel.load(Ordering::SeqCst) {
                return Ok(None);
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "the check did not finish within the run's {:?}",
                    r.timeout
                ));
            }
            self.wait_notice(POLL);
        }
    }

    /// Applies a node-level fault decided here (a time trigger) rather than at a call.
    fn fire_node_fault(&mut self, f: &ordeal_faults::Fault) -> Result<(), String> {
        let running = |node: &str| {
            self.started
                .iter()
                .any(|s| s.name == node && s.exit.is_none())
        };
        let acts_on_running = matches!(f.kind, FaultKind::Crash { .. } | FaultKind::Pause { .. });
        if acts_on_running && f.kind.node().is_some_and(|n| !running(n)) {
            // Aimed at a node that is not running: recorded as not fired (no marker).
            self.progress.say(format!(
                "fault {}: not fired, its node is not running",
                f.name
            ));
            return Ok(());
        }
        let marker_node = faults::marker_node(f, self.shared).or_else(|| {
            // A snapshot concerns every node: its marker goes on the first one running.
            let first = self
                .started
                .iter()
                .find(|s| s.role == "node" && s.exit.is_none());
            matches!(f.kind, FaultKind::Snapshot).then(|| first.map(|s| s.name.clone()))?
        });
        let Some(action) = faults::node_fault(f, self.shared) else {
            return Ok(());
        };
        let (node, what, signal) = match action {
            ordeal_tracer::Action::Crash { node, .. } => {
                (node.clone(), format!("crash {node}"), libc::SIGKILL)
            }
            ordeal_tracer::Action::Pause { node, .. } => {
                (node.clone(), format!("pause {node}"), libc::SIGSTOP)
            }
            // Restart, partition, heal: only the marker (signal 0); the rest happens here
            // (restart) or in the tracer hook (partition), woken by this request.
            // A fault acting on no node (a toxic on a proxy): on the first node.
            ordeal_tracer::Action::Mark { what, .. } => {
                match marker_node.or_else(|| self.started.first().map(|s| s.name.clone())) {
                    Some(n) => (n, what, 0),
                    None => return Ok(()),
                }
            }
            _ => return Ok(()),
        };
        self.progress.say(format!("fault {}: {what}", f.name));
        let marker = FaultMark::fired(&f.name, what);
        self.tracer
            .signal_node(&node, signal, Some(marker))
            .map_err(|e| e.to_string())
    }

    /// Heals every partition whose `duration` is over (all of them with `all`: the final heal
    /// when the workloads are done), and lets the threads it held go on.
    fn heal_due(&mut self, all: bool) -> Result<(), String> {
        let due: Vec<faults::Cut> = {
            let Ok(mut p) = self.shared.lock() else {
                return Ok(());
            };
            let now = Instant::now();
            let (due, rest): (Vec<_>, Vec<_>) = p
                .cuts
                .drain(..)
                .partition(|c| all || c.until.is_some_and(|t| t <= now));
            p.cuts = rest;
            if !due.is_empty() {
                p.sync_net()?;
            }
            due
        };
        for c in due {
            let why = if all { "final heal" } else { "heal" };
            self.progress
                .say(format!("{why}: partition {} ({})", c.describe(), c.fault));
            let node = c.from.iter().next().cloned().unwrap_or_default();
            // An effect: a heal is not a firing of the partition.
            self.tracer
                .signal_node(&node, 0, Some(FaultMark::effect(&c.fault, why)))
                .map_err(|e| e.to_string())?;
        }
        // Toxics whose duration is over (all of them at the end): removed from their proxy.
        let ended: Vec<(String, String, String)> = {
            let Ok(mut p) = self.shared.lock() else {
                return Ok(());
            };
            let now = Instant::now();
            let (due, rest): (Vec<_>, Vec<_>) = p
                .toxics
                .drain(..)
                .partition(|(_, _, _, until)| all || until.is_some_and(|t| t <= now));
            p.toxics = rest;
            for (_, proxy, toxic, _) in &due {
                if let Some(px) = p.proxies.get(proxy) {
                    let _ = px.remove_toxic(toxic);
                }
            }
            due.into_iter()
                .map(|(f, px, _, _)| (f, px, String::new()))
                .collect()
        };
        for (fault, proxy, _) in ended {
            let why = if all { "final removal" } else { "removal" };
            self.progress
                .say(format!("{why} of toxic {fault} on {proxy}"));
            if let Some(node) = self.started.first().map(|s| s.name.clone()) {
                self.tracer
                    .signal_node(
                        &node,
                        0,
                        Some(FaultMark::effect(&fault, format!("{why} of the toxic"))),
                    )
                    .map_err(|e| e.to_string())?;
            }
        }
        Ok(())
    }

    /// Resumes (SIGCONT) every paused node whose pause is over.
    fn resume_paused(&mut self) -> Result<(), String> {
        let due: Vec<(String, String)> = {
            let Ok(mut p) = self.shared.lock() else {
                return Ok(());
            };
            let now = Instant::now();
            let (due, rest): (Vec<_>, Vec<_>) =
                p.paused.drain(..).partition(|(_, _, at)| *at <= now);
            p.paused = rest;
            due.into_iter().map(|(n, f, _)| (n, f)).collect()
        };
        for (node, fault) in due {
            self.progress
                .say(format!("resuming node {node} (fault {fault})"));
            // An effect: a resume is not a firing of the pause.
            self.tracer
                .signal_node(
                    &node,
                    libc::SIGCONT,
                    Some(FaultMark::effect(&fault, format!("resume {node}"))),
                )
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// Whether a fired fault still has a restart or a resume to do.
    fn recovery_pending(&self) -> bool {
        self.shared.lock().is_ok_and(|p| {
            !p.paused.is_empty()
                || !p.cuts.is_empty()
                || !p.toxics.is_empty()
                || !p.restart.is_empty()
                || p.crashed.values().any(|(_, a)| a.is_some())
        })
    }

    /// Whether this incarnation was killed by a crash fault: its node is marked crashed (not yet
    /// restarted), or a later incarnation was started as its restart.
    fn was_crashed(&self, s: &Started) -> bool {
        let pending = self
            .shared
            .lock()
            .is_ok_and(|c| c.crashed.contains_key(&s.name));
        let restarted_later = self
            .started
            .iter()
            .skip_while(|x| x.pid != s.pid)
            .skip(1)
            .any(|x| x.name == s.name && x.restarted);
        pending || restarted_later
    }

    /// How the latest incarnation of `name` ended, if it did.
    fn exit_of(&self, name: &str) -> Option<ExitStatus> {
        self.started
            .iter()
            .rev()
            .find(|s| s.name == name)
            .and_then(|s| s.exit)
    }

    /// Starts again every node a crash fault killed once its `restart_after` has passed, and
    /// waits until it is ready.
    fn restart_crashed(&mut self, r: &Resolved, deadline: Instant) -> Result<(), String> {
        // (node, the marker of its spawn event)
        let due: Vec<(String, FaultMark)> = {
            let Ok(mut p) = self.shared.lock() else {
                return Ok(());
            };
            let dead = |name: &str| {
                self.started
                    .iter()
                    .rev()
                    .find(|s| s.name == name)
                    .and_then(|s| s.exited_at)
            };
            let mut due = Vec::new();
            // A restart fault: the node starts again now if it is dead; a restart of a node
            // that is running does nothing (unless a crash is on its way: it waits for the
            // death).
            for (node, fault) in std::mem::take(&mut p.restart) {
                if dead(&node).is_some() {
                    let mark = FaultMark::fired(&fault, format!("restart {node}"));
                    due.push((node.clone(), mark));
                } else if p.crashed.contains_key(&node) {
                    p.restart.push((node, fault));
                } else {
                    self.progress
                        .say(format!("fault {fault}: not fired, node {node} is running"));
                }
            }
            for (node, (fault, after)) in &p.crashed {
                let (Some(after), Some(since)) = (after, dead(node)) else {
                    continue;
                };
                if since.elapsed() >= *after && !due.iter().any(|(n, _)| n == node) {
                    // An effect: the restart is part of the crash fault, not a firing.
                    let mark = FaultMark::effect(fault, format!("restart {node} (restart_after)"));
                    due.push((node.clone(), mark));
                }
            }
            due
        };
        for (name, marker) in due {
            if let Ok(mut c) = self.shared.lock() {
                c.crashed.remove(&name);
            }
            let Some(n) = r.nodes.iter().find(|n| n.name == name) else {
                continue;
            };
            self.progress
                .say(format!("restarting node {name} after its crash"));
            // Its ready line must come from the new incarnation: skip what the logs hold.
            let logs_so_far: HashMap<PathBuf, usize> = ["stdout", "stderr"]
                .iter()
                .map(|ext| self.run_dir.join("logs").join(format!("{name}.{ext}")))
                .map(|p| {
                    let len = std::fs::metadata(&p).map(|m| m.len() as usize).unwrap_or(0);
                    (p, len)
                })
                .collect();
            let env = self.env_for(&n.name, &n.env);
            self.start(
                &n.name,
                "node",
                &n.program,
                &n.argv,
                env,
                &n.cwd,
                n.trace,
                Some(marker),
            )?;
            if let Some(s) = self.started.last_mut() {
                s.restarted = true;
            }
            if let Some(check) = &n.ready {
                let t0 = Instant::now();
                let until = (t0 + n.ready_timeout).min(deadline);
                match self.wait_ready(&n.name, check, &n.cwd, until, logs_so_far)? {
                    Ok(()) => {
                        self.progress.say(format!(
                            "{name} ready again after {:.3}s",
                            t0.elapsed().as_secs_f64()
                        ));
                        self.recovered(&name);
                    }
                    // Crashed again while restarting: the next call restarts it again.
                    Err(Stop::Cancelled | Stop::Crashed) => return Ok(()),
                    Err(Stop::Timeout) => {
                        return Err(format!(
                            "node {name} did not become ready again after its restart"
                        ))
                    }
                }
            }
        }
        Ok(())
    }

    /// A crash fault killed `name` before it was ready: waits until its restart (which waits
    /// for the ready condition) brought it back. `Ok(false)`: the run was cancelled.
    fn await_restart(
        &mut self,
        r: &Resolved,
        name: &str,
        deadline: Instant,
    ) -> Result<bool, String> {
        loop {
            self.drain_notices();
            self.resume_paused()?;
            self.heal_due(false)?;
            self.restart_crashed(r, deadline)?;
            let crashed = self
                .shared
                .lock()
                .ok()
                .and_then(|p| p.crashed.get(name).map(|(_, after)| *after));
            match crashed {
                Some(None) => {
                    return Err(format!(
                        "node {name} was crashed by a fault before it was ready, and the fault \
                         does not restart it"
                    ))
                }
                Some(Some(_)) => {}
                None => match self.exit_of(name) {
                    // Restarted and ready.
                    None => return Ok(true),
                    Some(st) => {
                        let latest = self.started.iter().rev().find(|s| s.name == name);
                        if !latest.is_some_and(|s| self.was_crashed(s)) {
                            return Err(format!(
                                "node {name} exited before it was ready: {st}{}",
                                self.tail_of(name)
                            ));
                        }
                    }
                },
            }
            if self.cancel.load(Ordering::SeqCst) {
                return Ok(false);
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "node {name} was not ready again before the run's timeout after a crash \
                     during its start-up"
                ));
            }
            self.wait_notice(POLL);
        }
    }

    /// Nodes with a `stop_signal` get it first and their `stop_timeout` to exit, all at once;
    /// one still running after its own timeout is killed (SIGKILL). The tracer's shutdown
    /// then kills whatever is left. Skipped when the run is cancelled.
    fn stop_gracefully(&mut self, r: &Resolved) {
        if self.cancel.load(Ordering::SeqCst) {
            return;
        }
        self.drain_notices();
        // (node, deadline)
        let mut waiting: Vec<(String, Instant)> = Vec::new();
        for n in &r.nodes {
            let Some((sig, num)) = n
                .stop_signal
                .as_deref()
                .and_then(|s| Some((s, signal_number(s)?)))
            else {
                continue;
            };
            let running =
                self.started.iter().any(|s| s.name == n.name) && self.exit_of(&n.name).is_none();
            if !running {
                continue;
            }
            self.progress
                .say(format!("stopping node {} with {sig}", n.name));
            if self.tracer.signal_node(&n.name, num, None).is_ok() {
                waiting.push((n.name.clone(), Instant::now() + n.stop_timeout));
            }
        }
        while !waiting.is_empty() {
            self.drain_notices();
            let now = Instant::now();
            let mut left = Vec::new();
            for (name, deadline) in std::mem::take(&mut waiting) {
                if self.exit_of(&name).is_some() {
                    continue;
                }
                if now >= deadline {
                    self.progress.say(format!(
                        "node {name} did not exit within its stop_timeout: killed"
                    ));
                    let _ = self.tracer.signal_node(&name, libc::SIGKILL, None);
                    continue;
                }
                left.push((name, deadline));
            }
            waiting = left;
            if !waiting.is_empty() {
                self.wait_notice(POLL);
            }
        }
    }

    fn tail_of(&self, name: &str) -> String {
        let p = self.run_dir.join("logs").join(format!("{name}.stderr"));
        let text = std::fs::read_to_string(&p).unwrap_or_default();
        let lines: Vec<&str> = text.lines().rev().take(5).collect();
        if lines.is_empty() {
            return String::new();
        }
        let body: Vec<&str> = lines.into_iter().rev().collect();
        format!("; last lines of {}:\n  {}", p.display(), body.join("\n  "))
    }

    /// Polls `check` every [`POLL`] until it holds, the deadline passes, the node exits or the
    /// run is cancelled.
    fn wait_ready(
        &mut self,
        name: &str,
        check: &ReadyCheck,
        cwd: &Path,
        until: Instant,
        scanned: HashMap<PathBuf, usize>,
    ) -> Result<Result<(), Stop>, String> {
        let mut scanned = scanned;
        loop {
            self.drain_notices();
            // A pause or a partition that began during start-up ends on time here too.
            self.resume_paused()?;
            self.heal_due(false)?;
            let latest = self.started.iter().rev().find(|s| s.name == name);
            if latest.is_some_and(|s| s.exit.is_some() && self.was_crashed(s)) {
                return Ok(Err(Stop::Crashed));
            }
            if let Some(st) = self.exit_of(name) {
                return Err(format!(
                    "node {name} exited before it was ready: {st}{}",
                    self.tail_of(name)
                ));
            }
            if self.cancel.load(Ordering::SeqCst) {
                return Ok(Err(Stop::Cancelled));
            }
            let ok = match check {
                ReadyCheck::Tcp(addr) => match self.net {
                    Some(net) => net.hub_connects(*addr, Duration::from_millis(100)),
                    None => std::net::TcpStream::connect_timeout(addr, Duration::from_millis(100))
                        .is_ok(),
                },
                ReadyCheck::Log { regex, stream } => {
                    let streams: &[&str] = match stream {
                        LogStream::Stdout => &["stdout"],
                        LogStream::Stderr => &["stderr"],
                        LogStream::Both => &["stdout", "stderr"],
                    };
                    streams.iter().any(|s| {
                        let p = self.run_dir.join("logs").join(format!("{name}.{s}"));
                        log_matches(&p, regex, &mut scanned)
                    })
                }
                ReadyCheck::Command { program, argv } => {
                    let mut cmd = std::process::Command::new(program);
                    cmd.args(argv.iter().skip(1))
                        .current_dir(cwd)
                        .stdin(std::process::Stdio::null())
                        .stdout(std::process::Stdio::null())
                        .stderr(std::process::Stdio::null());
                    if let Some(net) = self.net {
                        enter_netns(&mut cmd, net.hub_netns());
                    }
                    cmd.status().map(|s| s.success()).unwrap_or(false)
                }
            };
            if ok {
                return Ok(Ok(()));
            }
            if Instant::now() >= until {
                return Ok(Err(Stop::Timeout));
            }
            self.wait_notice(POLL);
        }
    }
}

/// `n1-peer` → `N1_PEER`, for environment variable names.
fn env_key(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}

fn interrupted() -> Verdict {
    Verdict::error(vec!["interrupted (SIGINT/SIGTERM)".into()])
}

/// Whether a complete line of the log matches, scanning only what is new since the last call.
fn log_matches(p: &Path, re: &regex::Regex, scanned: &mut HashMap<PathBuf, usize>) -> bool {
    let Ok(bytes) = std::fs::read(p) else {
        return false;
    };
    let from = scanned.get(p).copied().unwrap_or(0).min(bytes.len());
    let Some(last_nl) = bytes[from..].iter().rposition(|&b| b == b'\n') else {
        return false;
    };
    let upto = from + last_nl + 1;
    let text = String::from_utf8_lossy(&bytes[from..upto]);
    scanned.insert(p.to_owned(), upto);
    text.lines().any(|l| re.is_match(l))
}

/// The number of a `stop_signal` name (the experiment file accepts only these).
fn signal_number(name: &str) -> Option<i32> {
    Some(match name {
        "SIGTERM" => libc::SIGTERM,
        "SIGINT" => libc::SIGINT,
        "SIGQUIT" => libc::SIGQUIT,
        "SIGHUP" => libc::SIGHUP,
        "SIGUSR1" => libc::SIGUSR1,
        "SIGUSR2" => libc::SIGUSR2,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_781), (2026, 11, 24));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }

    #[test]
    fn log_scan_only_counts_complete_lines() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.stdout");
        let re = regex::Regex::new("^ready$").unwrap();
        let mut seen = HashMap::new();
        std::fs::write(&p, "starting\nrea").unwrap();
        assert!(!log_matches(&p, &re, &mut seen));
        std::fs::write(&p, "starting\nready\n").unwrap();
        assert!(log_matches(&p, &re, &mut seen));
    }
}
