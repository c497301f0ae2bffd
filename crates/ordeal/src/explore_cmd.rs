//! `ordeal explore`: argument handling for ordeal-explore campaigns.

use anyhow::{bail, Context};
use clap::Args;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use ordeal_explore::{Action, FaultModel, ProgressMode, StrategyKind};

#[derive(Args, Debug)]
pub struct ExploreArgs {
    /// The experiment file (TOML, see docs/experiment.md). Omit with --demo or --resume.
    #[arg(required_unless_present_any = ["demo", "resume"])]
    experiment: Option<PathBuf>,
    /// Explore the embedded demo (examples/demo-kv.toml).
    #[arg(long, conflicts_with = "experiment")]
    demo: bool,
    /// Exploration runs, fault-free baselines included (default 200 when no other budget).
    #[arg(long, value_name = "N")]
    runs: Option<u64>,
    /// Time budget of the exploration: 90s, 10m, 1h.
    #[arg(long, value_name = "DURATION")]
    time: Option<String>,
    /// Stop after K consecutive runs without a new unique behaviour.
    #[arg(long, value_name = "K")]
    until_stable: Option<u64>,
    /// Runs in parallel (each on its own ports and directories).
    #[arg(short = 'j', long = "jobs", value_name = "J", default_value_t = 1)]
    jobs: usize,
    /// Fault-free runs first: the reference behaviours; one that fails is reported first.
    #[arg(long, value_name = "N", default_value_t = 2)]
    baselines: u64,
    /// Campaign directory (must not exist or be empty); default explore/<timestamp>-<name>.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Seed of every choice of the campaign.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// guided, random, systematic or novelty.
    #[arg(long, default_value = "guided")]
    strategy: String,
    /// Override a variable of the experiment's [vars] (repeatable).
    #[arg(long = "set", value_name = "NAME=VALUE")]
    set: Vec<String>,
    /// Reruns of each minimal schedule, for its reproduction rate.
    #[arg(long, value_name = "R", default_value_t = 10)]
    reruns: u32,
    /// Do not shrink failing schedules.
    #[arg(long)]
    no_shrink: bool,
    /// Stop exploring once N distinct failures were found.
    #[arg(long, value_name = "N")]
    stop_after: Option<usize>,
    /// Fault kinds to use (comma-separated): crash-before, crash-after, pause, delay, fail,
    /// short-io, partition, isolate, halves, bridge, ring. Default: all.
    #[arg(long, value_name = "KINDS", value_delimiter = ',')]
    faults: Vec<String>,
    /// Length of pauses, delays and partitions: above the system's internal timeouts, below
    /// its clients' patience. Default: the experiment's [explore] fault_duration, else 1500ms.
    #[arg(long, value_name = "DURATION")]
    fault_duration: Option<String>,
    /// How long after a crash the node is started again. Default: the experiment's [explore]
    /// restart_after, else 500ms.
    #[arg(long, value_name = "DURATION")]
    restart_after: Option<String>,
    /// Most faults per schedule, every kind counted alike: crashes, pauses and partitions may
    /// then combine. Default: two faults, of which at most one disruptive.
    #[arg(long, value_name = "N")]
    max_faults: Option<usize>,
    /// Keep the directory of every run (default: failing, erroneous and first-of-a-kind only).
    #[arg(long)]
    keep_runs: bool,
    /// No progress on stderr.
    #[arg(short, long)]
    quiet: bool,
    /// Continue the interrupted campaign in DIR: finished runs are taken from its journal,
    /// every setting from its campaign.json (docs/scale.md).
    #[arg(
        long,
        value_name = "DIR",
        conflicts_with_all = [
            "experiment", "demo", "out", "shard", "runs", "time", "until_stable", "jobs", "baselines", "seed",
            "strategy", "set", "reruns", "no_shrink", "stop_after", "faults", "fault_duration",
            "restart_after", "max_faults", "keep_runs",
        ]
    )]
    resume: Option<PathBuf>,
    /// Take the I-th (0-based) of N disjoint parts of the campaign: runs i with i mod N = I,
    /// from a plan made of the baseline runs only (docs/scale.md). Needs --runs.
    #[arg(long, value_name = "I/N")]
    shard: Option<String>,
}

fn duration(flag: &str, text: &str) -> anyhow::Result<Duration> {
    ordeal_experiment::parse_duration(text).map_err(|e| anyhow::anyhow!("{flag} {text}: {e}"))
}

fn default_out(name: &str) -> PathBuf {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    PathBuf::from("explore").join(format!("{secs}-{name}"))
}

/// Runs the campaign; exit code 0 no failure, 1 failures found, 130 interrupted.
pub fn explore(args: ExploreArgs, demo_toml: &str) -> anyhow::Result<u8> {
    let progress = if args.quiet {
        ProgressMode::Quiet
    } else {
        ProgressMode::Auto
    };
    if let Some(dir) = &args.resume {
        let header = ordeal_explore::journal::read_header(dir)
            .with_context(|| format!("--resume {}", dir.display()))?;
        let exe = std::env::current_exe().context("locating the ordeal executable")?;
        return campaign(ordeal_explore::Config::resume(dir, &header, exe, progress)?);
    }
    let (text, path) = match (&args.experiment, args.demo) {
        (Some(p), _) => crate::experiment_text(p, demo_toml)?,
        (None, _) => (demo_toml.to_string(), PathBuf::from("demo-kv.toml")),
    };
    let mut exp = ordeal_experiment::Experiment::parse(&text, &path)?;
    // The experiment's [explore] set, then --set on top; recorded together, so that replays
    // and resumed campaigns run with the same variables.
    let defaults = exp.explore().clone();
    let mut set: Vec<String> = defaults
        .set
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    set.extend(args.set.iter().cloned());
    for kv in &set {
        let (k, v) = kv
            .split_once('=')
            .with_context(|| format!("--set {kv}: expected NAME=VALUE"))?;
        exp.set_var(k, v)?;
    }
    let strategy = StrategyKind::parse(&args.strategy).with_context(|| {
        format!(
            "--strategy {}: expected guided, random, systematic or novelty",
            args.strategy
        )
    })?;
    let mut model = FaultModel {
        long: match &args.fault_duration {
            Some(t) => duration("--fault-duration", t)?,
            None => defaults
                .fault_duration
                .unwrap_or(FaultModel::default().long),
        },
        restart_after: match &args.restart_after {
            Some(t) => duration("--restart-after", t)?,
            None => defaults
                .restart_after
                .unwrap_or(FaultModel::default().restart_after),
        },
        ..FaultModel::default()
    };
    if let Some(n) = args.max_faults {
        model = model.counting_every_fault(n.max(1));
    }
    if !args.faults.is_empty() {
        model.actions = args
            .faults
            .iter()
            .map(|k| {
                Action::parse(k.trim()).with_context(|| {
                    format!(
                        "--faults {k}: expected crash-before, crash-after, pause, delay, fail, short-io, partition, isolate, halves, bridge or ring"
                    )
                })
            })
            .collect::<anyhow::Result<_>>()?;
    }
    if args.jobs == 0 {
        bail!("-j 0: at least one run at a time");
    }
    if args.baselines == 0 {
        bail!("--baselines 0: at least one fault-free run (its trace gives the first candidates)");
    }
    let time = args
        .time
        .as_deref()
        .map(|t| duration("--time", t))
        .transpose()?;
    let runs = match (args.runs, time, args.until_stable) {
        (None, None, None) => Some(200),
        (r, _, _) => r,
    };
    let shard = args
        .shard
        .as_deref()
        .map(ordeal_explore::Shard::parse)
        .transpose()
        .map_err(|e| anyhow::anyhow!("--shard {e}"))?;
    if shard.is_some() {
        if args.runs.is_none() {
            bail!("--shard needs --runs: the shards split a fixed list of runs");
        }
        if args.until_stable.is_some() || args.stop_after.is_some() {
            bail!("--shard: --until-stable and --stop-after depend on every shard's results; use --runs");
        }
    }
    let exe = std::env::current_exe().context("locating the ordeal executable")?;
    let out = args.out.clone().unwrap_or_else(|| default_out(exp.name()));
    let cfg = ordeal_explore::Config {
        replay: ordeal_explore::ReplaySource {
            experiment_path: std::path::absolute(&path).unwrap_or_else(|_| path.clone()),
            experiment: text.clone(),
            set,
        },
        experiment: exp,
        ordeal_exe: exe,
        out,
        runs,
        time,
        until_stable: args.until_stable,
        jobs: args.jobs,
        baselines: args.baselines,
        seed: args.seed,
        strategy,
        reruns: args.reruns,
        shrink: !args.no_shrink,
        stop_after: args.stop_after,
        model,
        keep_runs: args.keep_runs,
        progress,
        shard,
        resume: false,
    };
    campaign(cfg)
}

fn campaign(cfg: ordeal_explore::Config) -> anyhow::Result<u8> {
    let out_dir = std::path::absolute(&cfg.out).unwrap_or_else(|_| cfg.out.clone());
    let cancel = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&cancel))
            .context("installing signal handlers")?;
    }
    let o = ordeal_explore::explore(cfg, Arc::clone(&cancel))?;
    print_summary(&o, &out_dir);
    Ok(if o.interrupted {
        130
    } else if o.failures.is_empty() {
        0
    } else {
        1
    })
}

pub(crate) fn print_summary(o: &ordeal_explore::Outcome, out: &Path) {
    // First, before anything else: no finding means much while the system fails alone.
    if let Some(alarm) = &o.baseline_failed {
        println!("{alarm}");
        if let Some(line) = o.baselines.rate_line() {
            println!("  {line}");
        }
        println!();
    }
    for w in &o.warnings {
        eprintln!("warning: {w}");
    }
    println!(
        "{}: {} runs ({} stopped), {} unique behaviours, {} distinct failures, {:.0} runs/min",
        o.experiment,
        o.runs,
        o.stopped,
        o.unique_behaviours,
        o.failures.len(),
        o.runs_per_minute
    );
    println!(
        "  candidates: {} mined, {} tried, {} remaining (+{} pairs)",
        o.candidates.mined,
        o.candidates.tried,
        o.candidates.remaining,
        o.candidates.remaining_pairs
    );
    let m = &o.mean_phases_ms;
    println!(
        "  mean run {:.0} ms: {}",
        o.mean_run_ms,
        m.named()
            .iter()
            .map(|(k, v)| format!("{k} {v:.0}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    if !o.errors.is_empty() {
        println!(
            "  {} runs ended in error (see explore.json)",
            o.errors.len()
        );
    }
    for f in &o.failures {
        println!();
        println!("  {} ({} hits): {}", f.id, f.hits, f.signature);
        if let Some(c) = &f.cause {
            // The first hit's own words, with where they were read.
            println!("    cause: {c}");
        }
        if let Some(b) = ordeal_explore::report::baseline_text(f) {
            println!("    {b}");
        }
        if f.without_faults {
            println!("    minimal: no fault");
        } else {
            println!("    minimal: {}", f.minimal_faults.join("; "));
        }
        let rates = ordeal_explore::report::rates_text(f)
            .map(|r| format!("; {r}"))
            .unwrap_or_default();
        match &f.reproduction {
            Some(r) => println!(
                "    reproduction: {} ({}/{} reruns failed){rates}",
                r.verdict, r.failed, r.runs
            ),
            None => println!("    reproduction: not measured"),
        }
        println!("    replay: {}", f.replay);
    }
    println!();
    println!("report: {}", out.join("report.html").display());
    println!("campaign directory: {}", out.display());
}
