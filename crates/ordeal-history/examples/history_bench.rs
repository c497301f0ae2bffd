//! Checker benchmark: time and peak memory to check generated histories.
//!
//! ```text
//! cargo run --release -p ordeal-history --example history_bench            # the whole matrix
//! cargo run --release -p ordeal-history --example history_bench -- CASE...  # one case (see below)
//! ```
//!
//! Each case runs in a child process of its own so that its peak RSS (VmHWM) is its own.
//! A case is `MODEL OPS PROCESSES KEYS VALUES THREADS MUTATE`: e.g. `register 10000 10 0 5 0 no`.

use ordeal_history::generate::{self, Config, Rng};
use ordeal_history::{check_entries, Budget, Model, Verdict};
use std::process::Command;
use std::time::Instant;

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Why a case could not run.
#[derive(Debug, thiserror::Error)]
enum CaseError {
    #[error("expected MODEL OPS PROCESSES KEYS VALUES THREADS MUTATE")]
    Usage,
    #[error("{arg}: {source}")]
    Number {
        arg: String,
        source: std::num::ParseIntError,
    },
    #[error("unknown model")]
    UnknownModel,
    #[error("no stale read possible")]
    NoStaleRead,
    #[error(transparent)]
    Check(#[from] ordeal_history::Error),
}

fn run_case(args: &[String]) -> Result<(), CaseError> {
    let [model, ops, procs, keys, values, threads, mutate] = args else {
        return Err(CaseError::Usage);
    };
    let num = |s: &String| {
        s.parse::<usize>().map_err(|source| CaseError::Number {
            arg: s.clone(),
            source,
        })
    };
    let model = Model::parse(model).ok_or(CaseError::UnknownModel)?;
    let cfg = Config {
        processes: num(procs)?,
        ops: num(ops)?,
        keys: num(keys)?,
        cas: model != Model::Register,
        values: match num(values)? {
            0 => None,
            d => Some(d as u64),
        },
        info: 0.01,
        seed: 42,
    };
    let mut entries = generate::linearizable(&cfg);
    let expect_lin = mutate == "no";
    if !expect_lin {
        entries = generate::stale_read(&entries, &mut Rng::new(7)).ok_or(CaseError::NoStaleRead)?;
    }
    let budget = Budget {
        threads: num(threads)?,
        time: Some(std::time::Duration::from_secs(120)),
        ..Budget::default()
    };
    let start = Instant::now();
    let r = check_entries(entries, model, &budget)?;
    let secs = start.elapsed().as_secs_f64();
    let ok = match (&r.verdict, expect_lin) {
        (Verdict::Linearizable, true) | (Verdict::NotLinearizable, false) => "ok",
        (Verdict::Unknown(_), _) => "budget",
        _ => "WRONG",
    };
    println!(
        "{secs:.4} {} {} {} {}",
        peak_rss_kib(),
        r.verdict.name().replace(' ', "-"),
        r.keys.iter().map(|k| k.configurations).sum::<usize>(),
        ok
    );
    Ok(())
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if !args.is_empty() {
        if let Err(e) = run_case(&args) {
            eprintln!("bench: {e}");
            std::process::exit(2);
        }
        return;
    }
    let exe = std::env::current_exe().expect("own path");
    let case = |c: &[String]| -> String {
        let out = Command::new(&exe).args(c).output().expect("case runs");
        if !out.status.success() {
            return format!("failed: {}", String::from_utf8_lossy(&out.stderr).trim());
        }
        let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let f: Vec<&str> = text.split_whitespace().collect();
        match f.as_slice() {
            [secs, kib, verdict, conf, ok] => format!(
                "| {:>9.1} ms | {:>8.1} MiB | {:>10} | {} {}",
                secs.parse::<f64>().unwrap_or(0.0) * 1000.0,
                kib.parse::<f64>().unwrap_or(0.0) / 1024.0,
                conf,
                verdict,
                match *ok {
                    "ok" => "",
                    "budget" => "(gave up: 120 s time budget)",
                    _ => "(WRONG ANSWER)",
                }
            ),
            _ => format!("unexpected output {text:?}"),
        }
    };
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    println!("register (read/write, values 0..5, 1% indeterminate), linearizable:");
    println!("| ops | processes | check time | peak RSS | configurations | verdict");
    for ops in ["1000", "10000", "100000"] {
        for p in ["5", "10", "50"] {
            println!(
                "| {ops:>6} | {p:>2} {}",
                case(&s(&["register", ops, p, "0", "5", "0", "no"]))
            );
        }
    }
    println!("\ncas-register (values 0..5, 1% indeterminate), linearizable:");
    println!("| ops | processes | check time | peak RSS | configurations | verdict");
    for ops in ["1000", "10000", "100000"] {
        for p in ["5", "10", "50"] {
            println!(
                "| {ops:>6} | {p:>2} {}",
                case(&s(&["cas-register", ops, p, "0", "5", "0", "no"]))
            );
        }
    }
    println!("\nkv (10 keys, read/write/cas, values 0..5), linearizable, all CPUs:");
    println!("| ops | processes | check time | peak RSS | configurations | verdict");
    for ops in ["1000", "10000", "100000"] {
        for p in ["5", "10", "50"] {
            println!(
                "| {ops:>6} | {p:>2} {}",
                case(&s(&["kv", ops, p, "10", "5", "0", "no"]))
            );
        }
    }
    println!("\nkv scaling: 1000 operations per key, 10 processes, one thread:");
    println!("| keys | ops | check time | peak RSS | configurations | verdict");
    for keys in ["1", "10", "100"] {
        let ops = (keys.parse::<usize>().unwrap_or(1) * 1000).to_string();
        println!(
            "| {keys:>3} | {ops:>6} {}",
            case(&s(&["kv", &ops, "10", keys, "5", "1", "no"]))
        );
    }
    println!("\nnot linearizable (one stale read; unique values), register:");
    println!("| ops | processes | check time | peak RSS | configurations | verdict");
    for ops in ["1000", "10000", "100000"] {
        for p in ["5", "10", "50"] {
            println!(
                "| {ops:>6} | {p:>2} {}",
                case(&s(&["register", ops, p, "0", "0", "0", "stale"]))
            );
        }
    }
}
