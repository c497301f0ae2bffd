//! `ordeal replay`: run a recorded run again, once (compare firings and verdict) or N times, J
//! at a time (the reproduction rate with its confidence interval, `OUT/rates.json`).

use anyhow::{bail, Context};
use clap::Args;
use ordeal_hb::Status;
use ordeal_run::replay::{self, Expect, FiringDiff, Rates, Rerun};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Instant;

use crate::{run, RunFlags};

#[derive(Args)]
pub struct ReplayArgs {
    /// The run to replay (its replay.json).
    run_dir: PathBuf,
    /// Directory of the replay; default RUN_DIR.replay-<timestamp>. With --runs N > 1 or
    /// --faults, rerun K goes to OUT/K and the rates to OUT/rates.json.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Rerun it N times and report how many reproduced its verdict, with the 95% confidence
    /// interval of that rate.
    #[arg(long, value_name = "N", default_value_t = 1)]
    runs: usize,
    /// Reruns at a time (each on its own ports and directories). Default: the number of
    /// CPUs, at most N.
    #[arg(short = 'j', long = "jobs", value_name = "J")]
    jobs: Option<usize>,
    /// Run this schedule instead of the recorded one (same experiment, variables and engine);
    /// a rerun then reproduces when it fails.
    #[arg(long, value_name = "SCHEDULE")]
    faults: Option<PathBuf>,
    /// No progress lines.
    #[arg(short, long)]
    quiet: bool,
}

/// What `ordeal replay` needs to run a run again, saved as RUN_DIR/replay.json.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct ReplayInfo {
    pub(crate) experiment_path: PathBuf,
    pub(crate) experiment: String,
    pub(crate) set: Vec<String>,
    pub(crate) faults_path: Option<PathBuf>,
    pub(crate) faults: Option<String>,
    pub(crate) payload: usize,
    /// `--engine` as given (None: the experiment's).
    #[serde(default)]
    pub(crate) engine: Option<String>,
}

pub fn replay(args: ReplayArgs) -> anyhow::Result<u8> {
    if args.runs == 0 {
        bail!("--runs 0: at least one rerun");
    }
    if args.jobs == Some(0) {
        bail!("-j 0: at least one rerun at a time");
    }
    let file = args.run_dir.join("replay.json");
    let info: ReplayInfo = serde_json::from_slice(
        &std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?,
    )
    .with_context(|| format!("{}: not a replay record", file.display()))?;
    let out = args.out.clone().unwrap_or_else(|| {
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        PathBuf::from(format!("{}.replay-{stamp}", args.run_dir.display()))
    });
    if args.runs == 1 && args.faults.is_none() {
        once(&args.run_dir, &info, out, args.quiet)
    } else {
        rates(&args, info, out)
    }
}

/// One rerun compared with the original, firing by firing.
fn once(run_dir: &Path, info: &ReplayInfo, out: PathBuf, quiet: bool) -> anyhow::Result<u8> {
    // The schedule as it was, from the record: a file edited since does not change the replay.
    let tmp = tempfile::tempdir().context("creating a temporary directory")?;
    let faults = match (&info.faults, &info.faults_path) {
        (Some(text), Some(p)) => {
            let name = p
                .file_name()
                .map(PathBuf::from)
                .unwrap_or_else(|| "faults.toml".into());
            let copy = tmp.path().join(name);
            std::fs::write(&copy, text)?;
            Some(copy)
        }
        _ => None,
    };
    let flags = RunFlags {
        out: Some(out),
        set: info.set.clone(),
        payload: info.payload,
        max_graph_events: ordeal_hb::DEFAULT_DOT_LIMIT,
        faults,
        quiet,
        engine: info.engine.as_deref().and_then(|e| e.parse().ok()),
        ..Default::default()
    };
    let (code, new_dir) = run(&info.experiment, &info.experiment_path, flags)?;
    let c = replay::ReplayComparison::of(run_dir, &new_dir)?;
    println!();
    println!("replay of {}", run_dir.display());
    println!(
        "  faults   {}",
        if c.same_firings() {
            "same firings"
        } else {
            "DIFFERENT firings"
        }
    );
    for f in c.firings() {
        match f {
            FiringDiff::Same(k) => println!("      {k}"),
            FiringDiff::Changed { was, now } => {
                println!("    ≠ {was}");
                if let Some(other) = now {
                    println!("      now: {other}");
                }
            }
            FiringDiff::Added(k) => println!("    + {k}"),
        }
    }
    println!(
        "  verdict  {} → {}{}",
        c.original,
        c.replayed,
        if c.same_verdict() {
            " (same)"
        } else {
            " (DIFFERENT)"
        }
    );
    // The replay's own exit code is its verdict; replay answers "same or not".
    let _ = code;
    Ok(c.exit_code())
}

/// What every rerun shares.
struct Plan {
    exp: ordeal_experiment::Experiment,
    /// Every option but the run directory.
    opts: ordeal_run::RunOptions,
    /// Each rerun's replay.json: a rerun is a run of its own, replayable in turn.
    info: ReplayInfo,
    out: PathBuf,
    runs: usize,
}

/// A rerun as it ended, before it is compared.
struct Finished {
    run: usize,
    dir: PathBuf,
    status: Status,
    reasons: Vec<String>,
    seconds: f64,
    /// `ordeal_run::run` ran it (it did not refuse to start).
    ran: bool,
    /// Cut short by Ctrl-C: not a result.
    interrupted: bool,
}

/// N reruns, J at a time: the reproduction rate, printed and written to OUT/rates.json.
fn rates(args: &ReplayArgs, mut info: ReplayInfo, out: PathBuf) -> anyhow::Result<u8> {
    let mut exp = ordeal_experiment::Experiment::parse(&info.experiment, &info.experiment_path)?;
    for kv in &info.set {
        let (k, v) = kv
            .split_once('=')
            .with_context(|| format!("--set {kv}: expected NAME=VALUE"))?;
        exp.set_var(k, v)?;
    }
    // The schedule given, or the recorded one as it was (a file edited since does not count).
    if let Some(p) = &args.faults {
        let text = std::fs::read_to_string(p)
            .with_context(|| format!("{}: cannot read fault schedule", p.display()))?;
        info.faults_path = Some(std::path::absolute(p).unwrap_or_else(|_| p.clone()));
        info.faults = Some(text);
    }
    let faults = match (&info.faults, &info.faults_path) {
        (Some(text), path) => {
            let path = path.clone().unwrap_or_else(|| "faults.toml".into());
            let names = ordeal_faults::Participants::new(exp.node_names(), exp.workload_names());
            Some(ordeal_faults::Schedule::parse_for(text, &path, &names)?)
        }
        (None, _) => None,
    };
    let expected = match &args.faults {
        Some(_) => Expect::Failure,
        None => Expect::Verdict(replay::verdict(&args.run_dir)?),
    };
    let out = std::path::absolute(&out).unwrap_or(out);
    if out.exists()
        && std::fs::read_dir(&out)
            .with_context(|| format!("reading {}", out.display()))?
            .next()
            .is_some()
    {
        bail!(
            "{} exists and is not empty (choose another --out)",
            out.display()
        );
    }
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;

    let exe = std::env::current_exe().context("locating the ordeal executable")?;
    let mut opts = ordeal_run::RunOptions::new(exe);
    opts.payload_bytes = info.payload;
    opts.engine = info.engine.as_deref().and_then(|e| e.parse().ok());
    opts.faults = faults;
    // Concurrent runs' progress lines would interleave: one line per rerun instead.
    opts.progress = false;
    // Many runs: the graph is drawn on demand (`ordeal graph OUT/K`).
    opts.summary_only = args.runs > 1;
    let plan = Plan {
        exp,
        opts,
        info,
        out: out.clone(),
        runs: args.runs,
    };
    let jobs = args
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .min(args.runs);

    let cancel = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&cancel))
            .context("installing signal handlers")?;
    }
    if !args.quiet {
        eprintln!(
            "replaying {} {} times, {jobs} at a time, in {}",
            args.run_dir.display(),
            args.runs,
            out.display()
        );
    }
    let finished = run_all(&plan, jobs, &cancel, args.quiet)?;
    let interrupted = finished.iter().any(|f| f.interrupted);
    let finished: Vec<Finished> = finished.into_iter().filter(|f| !f.interrupted).collect();

    // Firings are compared with the original's; a schedule given instead has none recorded,
    // so the first finished rerun is the reference.
    let reference = match &args.faults {
        None => Some(replay::firings(&args.run_dir)),
        Some(_) => finished
            .iter()
            .filter(|f| f.ran)
            .min_by_key(|f| f.run)
            .map(|f| replay::firings(&f.dir)),
    };
    let reruns: Vec<Rerun> = finished
        .into_iter()
        .map(|f| Rerun {
            run: f.run,
            outcome: ordeal_explore::signature::outcome(f.status, &f.reasons, &f.dir),
            reproduced: expected.met_by(f.status),
            same_firings: f.ran && reference.as_ref() == Some(&replay::firings(&f.dir)),
            dir: f.dir,
            status: f.status,
            reasons: f.reasons,
            seconds: f.seconds,
        })
        .collect();
    let rates = Rates::new(
        std::path::absolute(&args.run_dir).unwrap_or_else(|_| args.run_dir.clone()),
        args.faults.as_ref().and(plan.info.faults_path.clone()),
        expected,
        reruns,
        interrupted,
    );
    let rates_file = out.join("rates.json");
    std::fs::write(&rates_file, serde_json::to_vec_pretty(&rates)?)
        .with_context(|| format!("writing {}", rates_file.display()))?;
    print_rates(&rates, args, &out, jobs);
    Ok(if interrupted { 130 } else { rates.exit_code() })
}

/// Runs reruns 1..=N on `jobs` threads, printing a line as each ends; returns them as they
/// ended. After Ctrl-C no rerun starts, and those running end early (marked interrupted).
fn run_all(
    plan: &Plan,
    jobs: usize,
    cancel: &AtomicBool,
    quiet: bool,
) -> anyhow::Result<Vec<Finished>> {
    let next = AtomicUsize::new(1);
    let (tx, rx) = mpsc::channel::<anyhow::Result<Finished>>();
    std::thread::scope(|scope| {
        for i in 0..jobs {
            let (tx, next) = (tx.clone(), &next);
            std::thread::Builder::new()
                .name(format!("replay-{i}"))
                .spawn_scoped(scope, move || loop {
                    if cancel.load(Ordering::SeqCst) {
                        return;
                    }
                    let k = next.fetch_add(1, Ordering::SeqCst);
                    if k > plan.runs || tx.send(rerun(plan, k, cancel)).is_err() {
                        return;
                    }
                })
                // Threads already started end after their rerun: nothing receives any more.
                .context("starting a rerun thread")?;
        }
        drop(tx);
        let mut done = Vec::with_capacity(plan.runs);
        let mut failure = None;
        for f in rx {
            match f {
                Ok(f) => {
                    if !quiet {
                        eprintln!("{}", progress_line(&f, plan.runs));
                    }
                    done.push(f);
                }
                Err(e) => {
                    cancel.store(true, Ordering::SeqCst);
                    failure.get_or_insert(e);
                }
            }
        }
        match failure {
            Some(e) => Err(e),
            None => Ok(done),
        }
    })
}

/// One rerun in `OUT/K`.
fn rerun(plan: &Plan, k: usize, cancel: &AtomicBool) -> anyhow::Result<Finished> {
    let dir = plan.out.join(k.to_string());
    let mut opts = plan.opts.clone();
    opts.out = Some(dir.clone());
    let t0 = Instant::now();
    let result = ordeal_run::run(&plan.exp, &opts, cancel);
    let seconds = t0.elapsed().as_secs_f64();
    let (status, reasons, ran) = match result {
        Ok(report) => {
            let file = report.run_dir.join("replay.json");
            std::fs::write(&file, serde_json::to_vec_pretty(&plan.info)?)
                .with_context(|| format!("writing {}", file.display()))?;
            let v = report.summary.verdict;
            (v.status, v.reasons, true)
        }
        Err(e) => (
            Status::Error,
            vec![crate::error_text(&anyhow::Error::from(e))],
            false,
        ),
    };
    Ok(Finished {
        run: k,
        dir,
        interrupted: status == Status::Error && cancel.load(Ordering::SeqCst),
        status,
        reasons,
        seconds,
        ran,
    })
}

/// `rerun 3/20: FAIL (workload client ended: exit 1) in 1.2 s`.
fn progress_line(f: &Finished, runs: usize) -> String {
    if f.interrupted {
        return format!("rerun {}/{runs}: interrupted", f.run);
    }
    let why = if f.reasons.is_empty() {
        String::new()
    } else {
        format!(" ({})", f.reasons.join("; "))
    };
    format!(
        "rerun {}/{runs}: {}{why} in {:.1} s",
        f.run,
        f.status.as_str().to_uppercase(),
        f.seconds
    )
}

fn print_rates(r: &Rates, args: &ReplayArgs, out: &Path, jobs: usize) {
    match &r.schedule {
        Some(s) => println!(
            "replay of {} with the schedule {}: {} reruns, {jobs} at a time",
            args.run_dir.display(),
            s.display(),
            args.runs
        ),
        None => println!(
            "replay of {}: {} reruns, {jobs} at a time",
            args.run_dir.display(),
            args.runs
        ),
    }
    if r.interrupted {
        println!(
            "  interrupted: {} of {} reruns finished, the others do not count",
            r.runs, args.runs
        );
    }
    let means = match r.expected {
        Expect::Failure => "the run failed (fail or hung), the test of a schedule".to_string(),
        Expect::Verdict(s) => format!("verdict {s}, as the original"),
    };
    println!("  {}: {means}", r.headline());
    println!(
        "  same firings {}/{} (the same faults fired at the same points as {})",
        r.same_firings,
        r.runs,
        if r.schedule.is_some() {
            "the first rerun"
        } else {
            "the original"
        }
    );
    println!("  outcomes");
    for o in &r.outcomes {
        println!("    {:>4}  {}", o.count, o.outcome);
    }
    println!("rates: {}", out.join("rates.json").display());
    if args.runs > 1 {
        println!(
            "reruns: {}/K for K = 1..{} (`ordeal graph {}/K` draws rerun K's graph)",
            out.display(),
            args.runs,
            out.display()
        );
    } else {
        println!("rerun: {}/1", out.display());
    }
}
