//! The `ordeal` command line: a thin layer over the library crates.

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

/// The demo experiment, embedded so `ordeal demo` needs nothing but the binary.
const DEMO_TOML: &str = include_str!("../../../examples/demo-kv.toml");

#[derive(Parser)]
#[command(
    name = "ordeal",
    version,
    about = "Run a multi-process system traced at the system-call level and rebuild who talked to whom.",
    after_help = "Exit codes: 0 the run passed, 1 it failed (see the verdict), 2 usage, \
                  configuration or setup error, 130 interrupted."
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

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
    /// The demo's key-value store processes (used by the demo experiment).
    #[command(hide = true)]
    Kv {
        #[command(subcommand)]
        cmd: ordeal_demo::KvCommand,
    },
}

#[derive(Args, Clone)]
struct RunFlags {
    /// Run directory (must not exist or be empty); default runs/<timestamp>-<name>.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Override a variable of the experiment's [vars]: --set bugs=stale-read (repeatable).
    #[arg(long = "set", value_name = "NAME=VALUE")]
    set: Vec<String>,
    /// Record the first N bytes of every socket transfer in trace.jsonl.
    #[arg(long, value_name = "N", default_value_t = 0)]
    payload: usize,
    /// Draw individual events in graph.dot up to this many communication events.
    #[arg(long, default_value_t = ordeal_hb::DEFAULT_DOT_LIMIT)]
    max_graph_events: usize,
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

fn real_main(cli: Cli) -> anyhow::Result<u8> {
    match cli.cmd {
        Cmd::Run { experiment, flags } => {
            let exp = ordeal_experiment::Experiment::from_path(&experiment)?;
            run(exp, flags)
        }
        Cmd::Demo { flags } => {
            // Relative paths in the demo file resolve against the current directory.
            let exp = ordeal_experiment::Experiment::parse(DEMO_TOML, Path::new("demo-kv.toml"))?;
            run(exp, flags)
        }
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
        Cmd::Kv { cmd } => {
            let code = ordeal_demo::run(cmd)?;
            Ok(code.clamp(0, 255) as u8)
        }
    }
}

fn run(mut exp: ordeal_experiment::Experiment, flags: RunFlags) -> anyhow::Result<u8> {
    for kv in &flags.set {
        let (k, v) = kv
            .split_once('=')
            .with_context(|| format!("--set {kv}: expected NAME=VALUE"))?;
        exp.set_var(k, v)?;
    }
    let faults = match &flags.faults {
        Some(path) => {
            let names = ordeal_faults::Participants::new(exp.node_names(), exp.workload_names());
            let s = ordeal_faults::Schedule::load(path, &names)?;
            ordeal_run::faults::check_supported(&s).map_err(anyhow::Error::msg)?;
            Some(s)
        }
        None => None,
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
    opts.faults = faults;
    opts.progress = !flags.quiet;
    let report = ordeal_run::run(&exp, &opts, &cancel)?;
    print!("{}", ordeal_hb::human_summary(&report.summary));
    println!("run directory: {}", report.run_dir.display());
    Ok(match report.summary.verdict.status.as_str() {
        "pass" => 0,
        "fail" => 1,
        _ if cancel.load(std::sync::atomic::Ordering::SeqCst) => 130,
        _ => 2,
    })
}
