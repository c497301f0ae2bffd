//! `ordeal merge`: shard directories of one campaign into one result and report.

use anyhow::Context;
use clap::Args;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct MergeArgs {
    /// The campaign directories to merge (the shards of one `ordeal explore --shard` campaign).
    #[arg(required = true, value_name = "DIR")]
    dirs: Vec<PathBuf>,
    /// Where to write the merged explore.json, junit.xml and report.html (must not exist or be
    /// empty).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
}

/// Exit code 0 no failure, 1 failures found.
pub fn merge(args: MergeArgs) -> anyhow::Result<u8> {
    let exe = std::env::current_exe().context("locating the ordeal executable")?;
    let o = ordeal_explore::merge::merge(&args.dirs, &args.out, exe).context("ordeal merge")?;
    let out = std::path::absolute(&args.out).unwrap_or(args.out.clone());
    println!("merged {} campaign directories", o.merged_from.len());
    crate::explore_cmd::print_summary(&o, &out);
    Ok(if o.failures.is_empty() { 0 } else { 1 })
}
