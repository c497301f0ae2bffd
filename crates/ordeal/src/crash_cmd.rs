//! `ordeal crash EXPERIMENT`: generate crash states of a node's data dir from a recorded run
//! and check that the target (the node, or a workload with `--workload`) recovers from each;
//! with `--cluster`/`--nodes`, a power loss of several nodes at once (docs/crash.md).

use anyhow::Context;
use clap::Args;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

#[derive(Args)]
pub struct CrashArgs {
    /// The experiment file (TOML, see docs/experiment.md); `demo` for the embedded demo.
    experiment: PathBuf,
    /// The node whose crash states are explored; default the first node with a data_dir.
    #[arg(long, value_name = "NODE")]
    node: Option<String>,
    /// Cut power to these nodes at once (comma-separated), each losing what it had not made
    /// durable, restart them together and check the cluster (docs/crash.md#whole-clusters).
    #[arg(long, value_name = "NODE,NODE", value_delimiter = ',', conflicts_with_all = ["node", "workload", "cluster"])]
    nodes: Vec<String>,
    /// As --nodes with every node that has a data_dir.
    #[arg(long, conflicts_with_all = ["node", "workload"])]
    cluster: bool,
    /// The target is this workload (a program that runs and exits, writing into the node's
    /// data dir): each crash state is checked by [crash] check alone, no node started.
    /// Default: the experiment's `[crash] workload`.
    #[arg(long, value_name = "WORKLOAD")]
    workload: Option<String>,
    /// Seeds the random crash states: same seed, same states.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Most distinct crash states recovered and checked.
    #[arg(long, value_name = "N", default_value_t = 1000)]
    budget: usize,
    /// Stop generating crash states after this long ("30s", "2m"), recording excluded.
    #[arg(long, value_name = "DURATION", value_parser = parse_time)]
    time: Option<Duration>,
    /// Run directory (must not exist or be empty); default runs/<timestamp>-<name>.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Override a variable of the experiment's [vars] (repeatable).
    #[arg(long = "set", value_name = "NAME=VALUE")]
    set: Vec<String>,
    /// The persistence model whose findings decide the verdict and exit status: ext4-ordered
    /// (ext4 data=ordered, what most systems run) or strict (POSIX). Both are reported.
    #[arg(long, value_name = "MODEL", default_value = "ext4-ordered", value_parser = parse_model)]
    model: ordeal_state::persist::Model,
    /// Crash states recovered at once; default the number of CPUs. The findings and the
    /// report do not depend on it.
    #[arg(short = 'j', long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    jobs: Option<u64>,
    /// No progress (otherwise a bar on a terminal, a line a second elsewhere).
    #[arg(short, long)]
    quiet: bool,
}

fn parse_model(s: &str) -> Result<ordeal_state::persist::Model, String> {
    match s {
        "strict" => Ok(ordeal_state::persist::Model::Strict),
        "ext4-ordered" => Ok(ordeal_state::persist::Model::Ext4),
        _ => Err("expected ext4-ordered or strict".into()),
    }
}

fn parse_time(s: &str) -> Result<Duration, ordeal_toml::DurationError> {
    ordeal_toml::parse_duration(s)
}

/// Exit code: 0 no vulnerability, 1 vulnerabilities found, 3 verdict unknown (docs/crash.md).
pub fn crash(args: CrashArgs, demo_toml: &str) -> anyhow::Result<u8> {
    let (text, path) = if args.experiment.as_os_str() == "demo" {
        (demo_toml.to_string(), PathBuf::from("demo-kv.toml"))
    } else {
        let text = std::fs::read_to_string(&args.experiment).with_context(|| {
            format!("{}: cannot read experiment file", args.experiment.display())
        })?;
        (text, args.experiment.clone())
    };
    let mut exp = ordeal_experiment::Experiment::parse(&text, &path)?;
    for kv in &args.set {
        let (k, v) = kv
            .split_once('=')
            .with_context(|| format!("--set {kv}: expected NAME=VALUE"))?;
        exp.set_var(k, v)?;
    }
    for n in args.node.iter().chain(&args.nodes) {
        if !exp.node_names().any(|x| x == n) {
            let names: Vec<&str> = exp.node_names().collect();
            anyhow::bail!("{n}: no such node (nodes: {})", names.join(", "));
        }
    }
    let cancel = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&cancel))
            .context("installing signal handlers")?;
    }
    let exe = std::env::current_exe().context("locating the ordeal executable")?;
    let mut run = ordeal_run::RunOptions::new(exe);
    run.out = args.out;
    run.progress = !args.quiet;
    let cluster = args.cluster || !args.nodes.is_empty();
    let opts = ordeal_run::crash::CrashOptions {
        run,
        node: args.node,
        // A cluster's nodes are the targets; `[crash] workload` names one for --node only.
        workload: args
            .workload
            .or_else(|| exp.crash_workload().map(str::to_string))
            .filter(|_| !cluster),
        seed: args.seed,
        budget: args.budget,
        time: args.time,
        model: args.model,
        jobs: args.jobs.map_or_else(
            || std::thread::available_parallelism().map_or(1, |n| n.get()),
            |n| n as usize,
        ),
    };
    let verdict = if cluster {
        let report = ordeal_run::crash::cluster::crash_cluster(&exp, &opts, &args.nodes, &cancel)?;
        print!("{}", report.human());
        report.verdict
    } else {
        let report = ordeal_run::crash::crash(&exp, &opts, &cancel)?;
        print!("{}", report.human());
        report.verdict
    };
    if cancel.load(std::sync::atomic::Ordering::SeqCst) {
        return Ok(130);
    }
    Ok(match verdict {
        ordeal_run::crash::CrashVerdict::Clean => 0,
        ordeal_run::crash::CrashVerdict::Vulnerable => 1,
        ordeal_run::crash::CrashVerdict::Unknown => 3,
    })
}
