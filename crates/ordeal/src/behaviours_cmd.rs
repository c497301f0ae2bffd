//! `ordeal behaviours RUN_DIR...`: the distinct behaviours of some runs, as `ordeal explore`
//! fingerprints them, and what distinguishes each from the most common one.

use clap::Args;
use std::path::PathBuf;

#[derive(Args)]
pub struct BehavioursArgs {
    /// Run directories (each with trace.jsonl and summary.json).
    #[arg(required = true)]
    run_dirs: Vec<PathBuf>,
}

pub fn behaviours(args: BehavioursArgs) -> anyhow::Result<u8> {
    let found = ordeal_explore::fingerprint::behaviours(&args.run_dirs)?;
    println!(
        "{} runs, {} behaviour{}",
        args.run_dirs.len(),
        found.len(),
        if found.len() == 1 { "" } else { "s" }
    );
    let common = found
        .first()
        .map(|b| b.fingerprint.canonical.clone())
        .unwrap_or_default();
    for (i, b) in found.iter().enumerate() {
        let runs: Vec<String> = b.runs.iter().map(|r| r.display().to_string()).collect();
        println!(
            "\n{} ({} run{}): {}",
            b.fingerprint.hash,
            runs.len(),
            if runs.len() == 1 { "" } else { "s" },
            runs.join(" ")
        );
        if i == 0 {
            for l in b.fingerprint.canonical.lines() {
                println!("    {l}");
            }
        } else {
            println!("  against the first:");
            for l in ordeal_explore::fingerprint::diff(&b.fingerprint.canonical, &common) {
                println!("    {l}");
            }
        }
    }
    Ok(0)
}
