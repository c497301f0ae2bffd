//! `ordeal state capture|diff`, `ordeal checkpoint`, `ordeal watch`: thin wrappers over
//! ordeal-state (docs/checkpoints.md).

use anyhow::Context;
use clap::{Args, Subcommand};
use ordeal_state::capture::{Capture, CaptureOptions, Ignore};
use std::path::{Path, PathBuf};

#[derive(Subcommand)]
pub enum StateCmd {
    /// Capture a directory: per entry type, size, mode, link count, owner, symlink target and
    /// BLAKE3 hash (never timestamps); write the capture file.
    Capture {
        dir: PathBuf,
        /// The capture file to write (`-` for stdout).
        #[arg(short, long, value_name = "FILE")]
        out: PathBuf,
        /// Leave out paths matching GLOB (repeatable): `*.tmp` matches names at any depth,
        /// `logs/**` paths from the root.
        #[arg(long, value_name = "GLOB")]
        ignore: Vec<String>,
    },
    /// Print the differences from A to B (each a capture file or a directory), path by path.
    /// Exit 0 same, 1 different, 2 error.
    Diff {
        a: PathBuf,
        b: PathBuf,
        /// Print JSON instead of text lines.
        #[arg(long)]
        json: bool,
        /// Leave out paths matching GLOB on both sides (repeatable).
        #[arg(long, value_name = "GLOB")]
        ignore: Vec<String>,
    },
}

/// `ordeal checkpoint [LABEL]`.
#[derive(Args)]
pub struct CheckpointArgs {
    /// A label stored with the checkpoint (words are joined with spaces).
    label: Vec<String>,
}

/// `ordeal watch PATH`.
#[derive(Args)]
pub struct WatchArgs {
    /// The path that must not change after the next checkpoint.
    path: PathBuf,
}

pub fn state(cmd: StateCmd) -> anyhow::Result<u8> {
    match cmd {
        StateCmd::Capture { dir, out, ignore } => {
            let start = std::time::Instant::now();
            let c = ordeal_state::capture(&dir, &CaptureOptions { ignore, threads: 0 })?;
            let took = start.elapsed();
            if out == Path::new("-") {
                print!("{}", c.to_json());
            } else {
                c.save(&out)?;
                println!(
                    "{}: {} entries, {} files, {} bytes in {} ms → {}",
                    dir.display(),
                    c.stats.entries,
                    c.stats.files,
                    c.stats.bytes,
                    took.as_millis(),
                    out.display()
                );
            }
            Ok(0)
        }
        StateCmd::Diff { a, b, json, ignore } => diff(&a, &b, json, ignore),
    }
}

/// A capture file, or a directory captured now with `ignore`.
fn load(path: &Path, ignore: &[String]) -> anyhow::Result<Capture> {
    let meta = std::fs::metadata(path).with_context(|| format!("{}", path.display()))?;
    if meta.is_dir() {
        let opts = CaptureOptions {
            ignore: ignore.to_vec(),
            threads: 0,
        };
        Ok(ordeal_state::capture(path, &opts)?)
    } else {
        Ok(Capture::load(path)?)
    }
}

fn diff(a: &Path, b: &Path, json: bool, mut ignore: Vec<String>) -> anyhow::Result<u8> {
    // Globs recorded in a capture file apply to the other side too, so a capture taken with
    // `--ignore` compares cleanly with a directory.
    let recorded = |p: &Path| -> anyhow::Result<Vec<String>> {
        if std::fs::metadata(p).map(|m| m.is_dir()).unwrap_or(false) {
            Ok(Vec::new())
        } else {
            Ok(Capture::load(p)?.ignore)
        }
    };
    for g in recorded(a)?.into_iter().chain(recorded(b)?) {
        if !ignore.contains(&g) {
            ignore.push(g);
        }
    }
    let set = Ignore::new(&ignore)?;
    let (mut ca, mut cb) = (load(a, &ignore)?, load(b, &ignore)?);
    ca.filter(&set);
    cb.filter(&set);
    let diffs = ordeal_state::diff(&ca, &cb);
    if json {
        let v =
            ordeal_state::diff::to_json(&a.display().to_string(), &b.display().to_string(), &diffs);
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        print!("{}", ordeal_state::diff::render(&diffs));
        if diffs.is_empty() {
            eprintln!("no differences");
        } else {
            eprintln!(
                "{} difference{}",
                diffs.len(),
                if diffs.len() == 1 { "" } else { "s" }
            );
        }
    }
    Ok(if diffs.is_empty() { 0 } else { 1 })
}

pub fn checkpoint(args: CheckpointArgs) -> anyhow::Result<u8> {
    let label = args.label.join(" ");
    let label = (!label.trim().is_empty()).then_some(label.as_str());
    let id = ordeal_state::service::checkpoint(label)?;
    println!("{id}");
    Ok(0)
}

pub fn watch(args: WatchArgs) -> anyhow::Result<u8> {
    ordeal_state::service::watch(&args.path)?;
    Ok(0)
}
