//! `ordeal calls RUN_DIR`: the run's call log as a table.

use anyhow::Context;
use clap::Args;
use ordeal_calls::{Call, CallStatus, CALLS_FILE};
use std::path::PathBuf;

#[derive(Args)]
pub struct CallsArgs {
    /// A run directory (its calls.jsonl; made from trace.jsonl when missing).
    run_dir: PathBuf,
    /// Only calls between these two nodes or workloads, either way.
    #[arg(long, num_args = 2, value_names = ["A", "B"])]
    between: Vec<String>,
    /// Only this operation (`SET`, `etcd.Put`; case-insensitive).
    #[arg(long)]
    op: Option<String>,
    /// Print the matching calls as JSON lines instead of a table.
    #[arg(long)]
    json: bool,
}

pub fn calls(args: CallsArgs) -> anyhow::Result<u8> {
    let path = args.run_dir.join(CALLS_FILE);
    if !path.exists() {
        // A run that wrote its summary only (a campaign's): decode its trace now.
        ordeal_calls::write_calls(&args.run_dir.join("trace.jsonl"), &path)
            .with_context(|| format!("decoding {}", args.run_dir.display()))?;
    }
    let mut calls = ordeal_calls::read_calls(&path)?;
    calls.retain(|c| keep(&args, c));
    calls.sort_by_key(|c| (c.request_ts.unwrap_or(u64::MAX), c.conn));
    if args.json {
        for c in &calls {
            println!("{}", serde_json::to_string(c)?);
        }
        return Ok(0);
    }
    print!("{}", table(&calls));
    Ok(0)
}

fn keep(args: &CallsArgs, c: &Call) -> bool {
    if let [a, b] = args.between.as_slice() {
        let pair = (c.caller.as_str(), c.callee.as_str());
        if pair != (a.as_str(), b.as_str()) && pair != (b.as_str(), a.as_str()) {
            return false;
        }
    }
    args.op
        .as_ref()
        .is_none_or(|op| c.op.eq_ignore_ascii_case(op))
}

/// The calls as aligned columns: when (ms since the run started), who called whom, the
/// request, the result, how long it took.
pub fn table(calls: &[Call]) -> String {
    let rows: Vec<[String; 6]> = calls
        .iter()
        .map(|c| {
            let took = match (c.request_ts, c.response_ts) {
                (Some(a), Some(b)) if b >= a => format!("{:.3}", (b - a) as f64 / 1e6),
                _ => String::new(),
            };
            let result = match (c.status, &c.result) {
                (CallStatus::Answered, Some(r)) => r.clone(),
                (status, Some(r)) => format!("{r} ({})", status.name()),
                (status, None) => format!("({})", status.name()),
            };
            [
                c.request_ts
                    .map(|t| format!("{:.3}", t as f64 / 1e6))
                    .unwrap_or_default(),
                format!("{} → {}", c.caller, c.callee),
                c.protocol.clone(),
                c.request.clone(),
                result,
                took,
            ]
        })
        .collect();
    let head = [
        "ms",
        "caller → callee",
        "proto",
        "request",
        "result",
        "took ms",
    ];
    let mut width = head.map(|h| h.chars().count());
    for r in &rows {
        for (w, cell) in width.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &[String]| {
        let mut l = String::new();
        for (i, (cell, w)) in cells.iter().zip(width).enumerate() {
            let pad = w - cell.chars().count();
            // Numbers right-aligned, text left-aligned; no trailing spaces.
            if i == 0 || i == 5 {
                l.push_str(&" ".repeat(pad));
                l.push_str(cell);
            } else if i == cells.len() - 1 {
                l.push_str(cell);
            } else {
                l.push_str(cell);
                l.push_str(&" ".repeat(pad));
            }
            l.push_str("  ");
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(&head.map(String::from));
    for r in &rows {
        line(r);
    }
    out.push_str(&format!("{} calls\n", calls.len()));
    out
}
