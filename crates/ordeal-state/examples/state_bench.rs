//! Capture throughput against b3sum and sha256sum on the same files, in one run.
//!
//! ```sh
//! cargo run --release -p ordeal-state --example state_bench -- [--files N] [--bytes TOTAL]
//!                                                       [--runs R] [--keep] [PARENT_DIR]
//! ```
//!
//! Generates a tree of N files (default 10,000) totalling TOTAL bytes (default 10^9) in 100
//! directories under a temporary directory in PARENT_DIR (default the system temp dir), then
//! times, R times each (default 3, the median is shown), with the page cache warm:
//!
//! - ordeal's capture (walk + metadata + BLAKE3 of every file, all CPUs),
//! - the same capture with one hashing thread (the blake3 crate single-threaded baseline),
//! - `b3sum` over the same files through `xargs -0` (one process at a time, and NCPU at once),
//! - `sha256sum` the same way.
//!
//! and checks that ordeal's hashes equal b3sum's. The tree is deleted at the end unless
//! `--keep`. MB is 10^6 bytes. A missing b3sum is reported (Debian: `apt-get install b3sum`).

use ordeal_state::capture::{capture, CaptureOptions};
use std::collections::HashMap;
use std::error::Error;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Errors of this example: their messages are all it needs.
type Result<T, E = Box<dyn Error>> = std::result::Result<T, E>;

struct Args {
    files: usize,
    bytes: u64,
    runs: usize,
    keep: bool,
    parent: PathBuf,
}

fn parse_args() -> Result<Args> {
    let mut a = Args {
        files: 10_000,
        bytes: 1_000_000_000,
        runs: 3,
        keep: false,
        parent: std::env::temp_dir(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .ok_or_else(|| format!("{name} needs a value"))
                .and_then(|v| {
                    v.parse::<u64>()
                        .map_err(|_| format!("{name} {v}: not a number"))
                })
        };
        match arg.as_str() {
            "--files" => a.files = value("--files")?.max(1) as usize,
            "--bytes" => a.bytes = value("--bytes")?,
            "--runs" => a.runs = value("--runs")?.max(1) as usize,
            "--keep" => a.keep = true,
            "-h" | "--help" => {
                return Err(
                    "usage: bench [--files N] [--bytes TOTAL] [--runs R] [--keep] [PARENT_DIR]"
                        .into(),
                )
            }
            other if other.starts_with('-') => return Err(format!("unknown option {other}").into()),
            other => a.parent = PathBuf::from(other),
        }
    }
    Ok(a)
}

/// Writes the tree; returns the files' relative paths.
fn generate(root: &Path, files: usize, bytes: u64) -> std::io::Result<Vec<String>> {
    let size = (bytes / files as u64) as usize;
    let mut buf = vec![0u8; size];
    let mut names = Vec::with_capacity(files);
    for i in 0..files {
        let dir = format!("d{:03}", i % 100);
        if i < 100 {
            std::fs::create_dir_all(root.join(&dir))?;
        }
        // xorshift64*, seeded per file: incompressible, different files.
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15 ^ (i as u64 + 1);
        for chunk in buf.chunks_mut(8) {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            let v = x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
        let name = format!("{dir}/f{i:05}");
        std::fs::write(root.join(&name), &buf)?;
        names.push(name);
    }
    Ok(names)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn time(runs: usize, mut f: impl FnMut() -> Result<()>) -> Result<Duration> {
    let mut t = Vec::new();
    for _ in 0..runs {
        let start = Instant::now();
        f()?;
        t.push(start.elapsed());
    }
    Ok(median(t))
}

/// Runs `xargs -0 [-P n -n k] TOOL` over the list file, in the tree, output discarded.
fn xargs(tree: &Path, list: &Path, tool: &str, parallel: usize, per_call: usize) -> Result<()> {
    let mut cmd = Command::new("xargs");
    cmd.arg("-0");
    if parallel > 1 {
        cmd.args(["-P", &parallel.to_string(), "-n", &per_call.to_string()]);
    }
    let status = cmd
        .arg(tool)
        .current_dir(tree)
        .stdin(std::fs::File::open(list)?)
        .stdout(Stdio::null())
        .status()
        .map_err(|e| format!("xargs {tool}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("xargs {tool}: {status}").into())
    }
}

fn installed(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("bench: {e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = run(&args) {
        eprintln!("bench: {e}");
        std::process::exit(1);
    }
}

fn run(args: &Args) -> Result<()> {
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let tmp = tempfile::Builder::new()
        .prefix("ordeal-state-bench-")
        .tempdir_in(&args.parent)
        .map_err(|e| format!("{}: {e}", args.parent.display()))?;
    let tree = tmp.path().join("tree");
    eprintln!(
        "generating {} files, {} bytes in {} ...",
        args.files,
        args.bytes,
        tree.display()
    );
    let start = Instant::now();
    let names = generate(&tree, args.files, args.bytes)?;
    eprintln!("generated in {:.1} s", start.elapsed().as_secs_f64());
    let list = tmp.path().join("files.list");
    let mut f = std::fs::File::create(&list)?;
    for n in &names {
        f.write_all(n.as_bytes())?;
        f.write_all(b"\0")?;
    }
    drop(f);

    // Warm-up, and the reference for the hash check.
    let all = CaptureOptions::default();
    let one = CaptureOptions {
        threads: 1,
        ..Default::default()
    };
    let reference = capture(&tree, &all)?;
    let bytes = reference.stats.bytes;
    let files = reference.stats.files;

    let per_call = names.len().div_ceil(cpus * 4).max(1);
    let mut rows: Vec<(String, Duration)> = Vec::new();
    let cap = |o: &CaptureOptions| -> Result<()> { Ok(capture(&tree, o).map(|_| ())?) };
    rows.push((
        format!("ordeal state capture ({cpus} threads)"),
        time(args.runs, || cap(&all))?,
    ));
    rows.push((
        "ordeal capture, 1 hashing thread".into(),
        time(args.runs, || cap(&one))?,
    ));
    let b3 = installed("b3sum");
    if b3 {
        rows.push((
            "xargs -0 b3sum".into(),
            time(args.runs, || xargs(&tree, &list, "b3sum", 1, 0))?,
        ));
        rows.push((
            format!("xargs -0 -P {cpus} -n {per_call} b3sum"),
            time(args.runs, || xargs(&tree, &list, "b3sum", cpus, per_call))?,
        ));
    }
    if installed("sha256sum") {
        rows.push((
            "xargs -0 sha256sum".into(),
            time(args.runs, || xargs(&tree, &list, "sha256sum", 1, 0))?,
        ));
        rows.push((
            format!("xargs -0 -P {cpus} -n {per_call} sha256sum"),
            time(args.runs, || {
                xargs(&tree, &list, "sha256sum", cpus, per_call)
            })?,
        ));
    }

    println!(
        "tree: {files} files, {bytes} bytes ({:.0} MB), {cpus} CPUs, page cache warm, median of {} runs",
        bytes as f64 / 1e6,
        args.runs
    );
    println!(
        "{:<40} {:>9} {:>10} {:>10} {:>10}",
        "tool", "seconds", "MB/s", "files/s", "ordeal ×"
    );
    let ours = rows[0].1.as_secs_f64();
    for (name, d) in &rows {
        let s = d.as_secs_f64();
        println!(
            "{:<40} {:>9.3} {:>10.0} {:>10.0} {:>10.2}",
            name,
            s,
            bytes as f64 / 1e6 / s,
            files as f64 / s,
            s / ours
        );
    }
    if b3 {
        let out = Command::new("xargs")
            .args(["-0", "b3sum"])
            .current_dir(&tree)
            .stdin(std::fs::File::open(&list)?)
            .output()?;
        let theirs: HashMap<String, String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_once("  "))
            .map(|(h, p)| (p.to_string(), h.to_string()))
            .collect();
        let agree = reference
            .entries
            .iter()
            .filter(|e| e.hash.is_some())
            .all(|e| theirs.get(&e.path) == e.hash.as_ref());
        println!(
            "hashes agree with b3sum: {}",
            if agree && theirs.len() == files as usize {
                "yes"
            } else {
                "NO"
            }
        );
    } else {
        println!("b3sum: not installed (Debian: apt-get install b3sum); compared with sha256sum and the single-threaded capture only");
    }
    println!("\"ordeal ×\" is the tool's time over ordeal's: above 1, ordeal is faster.");
    if args.keep {
        let kept = tmp.keep();
        eprintln!("kept {}", kept.display());
    }
    Ok(())
}
