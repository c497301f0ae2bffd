//! The `ordeal` command line: a thin layer over the library crates.
#![forbid(unsafe_code)]

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

mod behaviours_cmd;
mod calls_cmd;
mod crash_cmd;
mod diag_cmd;
mod explore_cmd;
mod history_cmd;
mod merge_cmd;
mod replay_cmd;
mod shadow_cmd;
mod state_cmd;

/// The demo experiment, embedded so `ordeal demo` needs nothing but the binary.
const DEMO_TOML: &str = include_str!("../../../examples/demo-kv.toml");

#[derive(Parser)]
#[command(
    name = "ordeal",
    version,
    about = "Run a multi-process system traced at the system-call level and rebuild who talked to whom.",
    after_help = "Exit codes: 0 the run passed, 1 it failed or hung (see the verdict), 2 usage, \
                  configuration or setup error, 130 interrupted. `ordeal replay`: 0 same \
                  firings and verdict, 1 different; with --runs N > 1 or --faults, 0 every \
                  rerun reproduced, 1 otherwise."
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

// Parsed once per process: the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Cmd {
    /// Run an experiment file traced; write trace, graph and summary to a run directory.
    Run {
        /// The experiment file (TOML, see docs/experiment.md).
        experiment: PathBuf,
        #[command(flatten)]
        flags: RunFlags,
    },
    /// Run the embedded demo (a replicated key-value store and a client), traced.
    Demo {
        #[command(flatten)]
        flags: RunFlags,
    },
    /// Rebuild graph.dot/svg, trace.json, hb.jsonl and summary.json from RUN_DIR/trace.jsonl.
    Graph {
        run_dir: PathBuf,
        /// Draw individual events up to this many communication events, nodes beyond.
        #[arg(long, default_value_t = ordeal_hb::DEFAULT_DOT_LIMIT)]
        max_graph_events: usize,
    },
    /// The run's call log: every request and response decoded from its traffic
    /// (calls.jsonl), as a table (docs/outputs.md).
    Calls(calls_cmd::CallsArgs),
    /// The distinct behaviours of some runs, as `ordeal explore` fingerprints them (decoded
    /// operations per pair, timing left out), and what distinguishes them (docs/explore.md).
    Behaviours(behaviours_cmd::BehavioursArgs),
    /// Run a recorded run again (same experiment, variables and fault schedule) and report
    /// whether the same faults fired at the same points and the outcome is the same; with
    /// --runs N, rerun it N times and report the reproduction rate (docs/faults.md).
    Replay(replay_cmd::ReplayArgs),
    /// Capture a directory's state, or diff two states (docs/checkpoints.md).
    State {
        #[command(subcommand)]
        cmd: state_cmd::StateCmd,
    },
    /// Ask the run's checkpoint service (ORDEAL_CHECKPOINT_SOCKET) for a checkpoint.
    Checkpoint(state_cmd::CheckpointArgs),
    /// Ask the run's checkpoint service to watch PATH from the next checkpoint on.
    Watch(state_cmd::WatchArgs),
    /// Snapshot every node of a run in progress (threads, stacks, fds, memory) into
    /// RUN_DIR/snapshots/; prints the text file's path.
    Snapshot(diag_cmd::SnapshotArgs),
    /// Generate crash states of a node from a recorded run and check it recovers from each.
    /// Exit 0 no vulnerability, 1 vulnerabilities found, 3 verdict unknown (docs/crash.md).
    Crash(crash_cmd::CrashArgs),
    /// Run an experiment many times with faults mined from its traces; shrink every failure to
    /// a minimal schedule and measure its reproduction rate (docs/explore.md).
    /// Exit 0 no failure, 1 failures found, 130 interrupted.
    Explore(explore_cmd::ExploreArgs),
    /// Merge shard directories of one campaign into one result and report (docs/scale.md).
    /// Exit 0 no failure, 1 failures found.
    Merge(merge_cmd::MergeArgs),
    /// Check a recorded history (history.jsonl or Jepsen .edn) for linearizability.
    /// Exit 0 linearizable, 1 not, 3 unknown (a budget ran out), 2 error.
    CheckHistory(history_cmd::CheckArgs),
    /// Recording workload clients (kv, redis, etcd) writing history.jsonl.
    #[command(hide = true)]
    Workload {
        #[command(subcommand)]
        cmd: history_cmd::WorkloadCmd,
    },
    /// Proxy clients to production, duplicate their traffic to debug clones and compare the
    /// answers; production is never slowed (docs/shadow.md).
    Shadow(shadow_cmd::ShadowArgs),
    /// Start a debug copy of a running service from a copy of its data dir taken while it is
    /// paused (docs/shadow.md).
    Clone(shadow_cmd::CloneArgs),
    /// Toxiproxy-like TCP proxies with network toxics and a JSON API (docs/proxy.md).
    Proxy(shadow_cmd::ProxyArgs),
    /// The demo's key-value store processes (used by the demo experiment).
    #[command(hide = true)]
    Kv {
        #[command(subcommand)]
        cmd: ordeal_demo::KvCommand,
    },
}

#[derive(Args, Clone, Default)]
struct RunFlags {
    /// Run directory (must not exist or be empty); default runs/<timestamp>-<name>.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Override a variable of the experiment's [vars]: --set bugs=stale-read (repeatable).
    #[arg(long = "set", value_name = "NAME=VALUE")]
    set: Vec<String>,
    /// Record the first N bytes of every socket transfer in trace.jsonl: what the call log
    /// (calls.jsonl) decodes. 0: none (no call log; a history `from = "traffic"` refuses).
    #[arg(long, value_name = "N", default_value_t = ordeal_run::DEFAULT_PAYLOAD_BYTES)]
    payload: usize,
    /// Draw individual events in graph.dot up to this many communication events.
    #[arg(long, default_value_t = ordeal_hb::DEFAULT_DOT_LIMIT)]
    max_graph_events: usize,
    /// How calls are seen: `ebpf` records them in the kernel (ptrace stops only the calls a
    /// fault needs), `ptrace` stops at every one, `auto` takes eBPF where it loads. Default:
    /// the experiment's `engine`, else auto.
    #[arg(long, value_name = "auto|ebpf|ptrace")]
    engine: Option<ordeal_experiment::EngineChoice>,
    /// Pin the tracer thread to this CPU (placement matters for ptrace cost, docs/bench.md).
    #[arg(long, value_name = "CPU")]
    tracer_cpu: Option<usize>,
    /// Also run every traced process on the tracer's CPU: several times cheaper stops, at the
    /// price of one CPU for the whole traced system. Needs --tracer-cpu.
    #[arg(long, requires = "tracer_cpu")]
    pin: bool,
    /// Inject the faults of this schedule (TOML, see docs/faults.md); writes
    /// RUN_DIR/schedule.applied.toml.
    #[arg(long, value_name = "SCHEDULE")]
    faults: Option<PathBuf>,
    /// No progress lines; print only the summary.
    #[arg(short, long)]
    quiet: bool,
    #[command(flatten)]
    diag: diag_cmd::DiagFlags,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match real_main(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("ordeal: error: {}", error_text(&e));
            ExitCode::from(2)
        }
    }
}

/// The error and its causes, leaving out a cause its parent's message already spells out
/// (library errors often embed their source in their own message).
fn error_text(e: &anyhow::Error) -> String {
    let mut text = e.to_string();
    for cause in e.chain().skip(1) {
        let c = cause.to_string();
        if !text.contains(&c) {
            text = format!("{text}: {c}");
        }
    }
    text
}

/// The text of an experiment file and the path it resolves against; `demo` (when no such
/// file exists) names the embedded demo, whose relative paths resolve against the current
/// directory, as in `ordeal crash demo` and `ordeal explore --demo`.
pub(crate) fn experiment_text(path: &Path, demo_toml: &str) -> anyhow::Result<(String, PathBuf)> {
    if path.as_os_str() == "demo" && !path.exists() {
        return Ok((demo_toml.to_string(), PathBuf::from("demo-kv.toml")));
    }
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("{}: cannot read experiment file", path.display()))?;
    Ok((text, path.to_path_buf()))
}

fn real_main(cli: Cli) -> anyhow::Result<u8> {
    match cli.cmd {
        Cmd::Run { experiment, flags } => {
            let (text, path) = experiment_text(&experiment, DEMO_TOML)?;
            run(&text, &path, flags).map(|(code, _)| code)
        }
        // Relative paths in the demo file resolve against the current directory.
        Cmd::Demo { flags } => {
            run(DEMO_TOML, Path::new("demo-kv.toml"), flags).map(|(code, _)| code)
        }
        Cmd::Replay(args) => replay_cmd::replay(args),
        Cmd::Graph {
            run_dir,
            max_graph_events,
        } => {
            let summary = ordeal_run::rebuild(&run_dir, max_graph_events)
                .with_context(|| format!("rebuilding {}", run_dir.display()))?;
            print!("{}", ordeal_hb::human_summary(&summary));
            println!("outputs rebuilt in {}", run_dir.display());
            Ok(0)
        }
        Cmd::Calls(args) => calls_cmd::calls(args),
        Cmd::Behaviours(args) => behaviours_cmd::behaviours(args),
        Cmd::State { cmd } => state_cmd::state(cmd),
        Cmd::Checkpoint(args) => state_cmd::checkpoint(args),
        Cmd::Watch(args) => state_cmd::watch(args),
        Cmd::Snapshot(args) => diag_cmd::snapshot(args),
        Cmd::Crash(args) => crash_cmd::crash(args, DEMO_TOML),
        Cmd::Explore(args) => explore_cmd::explore(args, DEMO_TOML),
        Cmd::Merge(args) => merge_cmd::merge(args),
        Cmd::CheckHistory(args) => history_cmd::check_history(args),
        Cmd::Workload { cmd } => history_cmd::workload(cmd),
        Cmd::Shadow(args) => shadow_cmd::shadow(args),
        Cmd::Clone(args) => shadow_cmd::clone(args),
        Cmd::Proxy(args) => shadow_cmd::proxy(args),
        Cmd::Kv { cmd } => {
            let code = ordeal_demo::run(cmd)?;
            Ok(code.clamp(0, 255) as u8)
        }
    }
}

/// Runs an experiment given as text; returns the exit code and the run directory.
fn run(text: &str, path: &Path, flags: RunFlags) -> anyhow::Result<(u8, PathBuf)> {
    let mut exp = ordeal_experiment::Experiment::parse(text, path)?;
    let faults_text = match &flags.faults {
        Some(p) => Some(
            std::fs::read_to_string(p)
                .with_context(|| format!("{}: cannot read fault schedule", p.display()))?,
        ),
        None => None,
    };
    let info = replay_cmd::ReplayInfo {
        experiment_path: std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf()),
        experiment: text.to_string(),
        set: flags.set.clone(),
        faults_path: flags.faults.clone(),
        faults: faults_text.clone(),
        payload: flags.payload,
        engine: flags.engine.map(|e| e.name().to_string()),
    };
    for kv in &flags.set {
        let (k, v) = kv
            .split_once('=')
            .with_context(|| format!("--set {kv}: expected NAME=VALUE"))?;
        exp.set_var(k, v)?;
    }
    let faults = match (&flags.faults, &faults_text) {
        (Some(path), Some(text)) => {
            let names = ordeal_faults::Participants::new(exp.node_names(), exp.workload_names())
                .with_roles(exp.role_names());
            let s = ordeal_faults::Schedule::parse_for(text, path, &names)?;
            Some(s)
        }
        _ => None,
    };
    let cancel = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&cancel))
            .context("installing signal handlers")?;
    }
    let exe = std::env::current_exe().context("locating the ordeal executable")?;
    let mut opts = ordeal_run::RunOptions::new(exe);
    opts.out = flags.out;
    opts.payload_bytes = flags.payload;
    opts.max_dot_events = flags.max_graph_events;
    opts.tracer_cpu = flags.tracer_cpu;
    opts.pin_traced = flags.pin;
    opts.engine = flags.engine;
    opts.faults = faults;
    opts.progress = !flags.quiet;
    opts.diag = flags.diag.options()?;
    let report = ordeal_run::run(&exp, &opts, &cancel)?;
    let replay_file = report.run_dir.join("replay.json");
    std::fs::write(&replay_file, serde_json::to_vec_pretty(&info)?)
        .with_context(|| format!("writing {}", replay_file.display()))?;
    print!("{}", ordeal_hb::human_summary(&report.summary));
    println!("run directory: {}", report.run_dir.display());
    let status = report.summary.verdict.status;
    let code = if status == ordeal_hb::Status::Error && cancel.load(Ordering::SeqCst) {
        130
    } else {
        status.exit_code()
    };
    Ok((code, report.run_dir))
}
