//! `ordeal-fuzz [TARGET...] [--time 60s | --inputs N] [--seed S] [--out DIR]`: fuzzes ordeal's
//! parsers (every target by default), one line per target; a panicking input is saved in
//! DIR (default: the current directory) and the exit code is 1.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Parser;
use ordeal_fuzz::{fuzz, targets, Budget};

#[derive(Parser)]
#[command(about = "Fuzz ordeal's parsers with seeded mutations of real inputs")]
struct Args {
    /// Targets to run (default: all): experiment, schedule, applied, history-jsonl,
    /// history-edn, trace, journal, calls, capture, duration.
    targets: Vec<String>,
    /// Time per target ("60s", "10m").
    #[arg(long, default_value = "10s")]
    time: String,
    /// Inputs per target instead of a time.
    #[arg(long)]
    inputs: Option<u64>,
    /// Seed of the mutations: the same seed and budget in inputs give the same inputs.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Where a panicking input is saved.
    #[arg(long, default_value = ".")]
    out: PathBuf,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let budget = match args.inputs {
        Some(n) => Budget::Inputs(n),
        None => Budget::Time(
            ordeal_toml::parse_duration(&args.time)
                .with_context(|| format!("--time {}", args.time))?,
        ),
    };
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let all = targets(&root);
    for name in &args.targets {
        if !all.iter().any(|t| t.name == name) {
            let names: Vec<&str> = all.iter().map(|t| t.name).collect();
            bail!(
                "unknown target `{name}`: the targets are {}",
                names.join(", ")
            );
        }
    }
    // A panic is reported by the harness, with its input: the default hook's text would only
    // interleave with the table.
    std::panic::set_hook(Box::new(|_| {}));
    let mut failed = false;
    println!("  TARGET          INPUTS   INPUTS/S  SLOWEST");
    for t in all
        .iter()
        .filter(|t| args.targets.is_empty() || args.targets.iter().any(|n| n == t.name))
    {
        let o = fuzz(t, budget, args.seed);
        let rate = o.inputs as f64 / o.elapsed.as_secs_f64().max(1e-9);
        println!(
            "  {:<14} {:>7} {:>10.0}  {:.1} ms ({} bytes)",
            o.target,
            o.inputs,
            rate,
            o.slowest.0.as_secs_f64() * 1e3,
            o.slowest.1.len()
        );
        if let Some((input, msg)) = o.panic {
            failed = true;
            let path = args
                .out
                .join(format!("panic-{}-{}.bin", o.target, args.seed));
            std::fs::write(&path, &input).with_context(|| format!("writing {}", path.display()))?;
            println!("    PANIC: {msg}\n    input saved in {}", path.display());
        }
        if o.slowest.0 > Duration::from_secs(1) {
            let path = args
                .out
                .join(format!("slow-{}-{}.bin", o.target, args.seed));
            std::fs::write(&path, &o.slowest.1)
                .with_context(|| format!("writing {}", path.display()))?;
            println!(
                "    SLOW: an input took over a second, saved in {}",
                path.display()
            );
            failed = true;
        }
    }
    if failed {
        std::process::exit(1);
    }
    Ok(())
}
