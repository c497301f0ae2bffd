//! # ordeal-history: operation histories and linearizability
//!
//! * [`history`]: the model — entries (`invoke`, then `ok` / `fail` / `info`) and operations
//!   (an invocation paired with its completion).
//! * [`jsonl`]: history.jsonl, the recorded format (docs/history.md); [`edn`]: import of
//!   Jepsen / Knossos register and cas-register histories.
//! * [`model`]: the sequential specifications — the [`model::Model`] trait and the built-in
//!   register, cas-register and key-value map ([`Model`] names them).
//! * [`checker`]: is a history linearizable for a model? Wing & Gong / Lowe search with
//!   memoization, generic over [`model::Model`] (it names no model); parts (keys) checked in
//!   parallel, budgets that give `Unknown`, and an [`checker::Explanation`] of a violation.
//! * [`html`]: a self-contained HTML report of a check: timelines of the violations and of
//!   the whole history (availability, faults, zoom), for passing histories too.
//! * [`workload`]: recording clients for the demo KV store, Redis and etcd.
//! * [`generate`]: random histories with known answers (tests, benchmarks).
//!
//! Usable alone: nothing here knows about tracing or experiments.
//!
//! ## Adding a model
//!
//! One file, `src/model/NAME.rs`, with a type implementing [`model::Model`] (`init`, `step`,
//! `describe`, `op`, `name`; hooks such as `partition` for keys are optional), and one line in
//! the `builtin!` list of `src/model/mod.rs` to make it a [`Model`] known by name. The search
//! does not change: `tests/custom_model.rs` checks a counter defined outside the crate with
//! [`checker::check`]. docs/history.md has the details.
#![forbid(unsafe_code)]

pub mod checker;
pub mod edn;
pub mod generate;
pub mod history;
pub mod html;
pub mod jsonl;
pub mod model;
pub mod workload;

pub use checker::{check, Budget, Explanation, KeyResult, Report, Verdict};
pub use history::{operations, Entry, History, Kind, Operation, Outcome, Value, F};
/// A built-in model by name (`Model::Register`, `Model::parse("kv")`): what [`check_file`]
/// and the CLI take. The trait a model implements is [`model::Model`].
pub use model::Builtin as Model;

use std::path::Path;

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A line of a history file is not valid.
    #[error("{path}:{line}: {source}")]
    Parse {
        /// The file.
        path: String,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        source: ParseError,
    },
    /// The history is inconsistent (a process invoking twice, a completion without invocation).
    #[error(transparent)]
    Malformed(#[from] history::Malformed),
    /// The history does not fit the model.
    #[error(transparent)]
    Model(#[from] model::ModelMismatch),
}

/// Why an entry of a history file is not valid (its file and line are in [`Error::Parse`]).
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    /// A line of history.jsonl.
    #[error(transparent)]
    Jsonl(#[from] jsonl::LineError),
    /// EDN that does not parse.
    #[error(transparent)]
    Edn(#[from] edn::EdnError),
    /// An EDN form that is not an operation.
    #[error(transparent)]
    EdnOp(#[from] edn::OpError),
}

/// A history file's format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// history.jsonl
    Jsonl,
    /// Jepsen / Knossos EDN.
    Edn,
}

impl Format {
    /// `edn` for `*.edn`, otherwise `jsonl`.
    pub fn from_path(path: &Path) -> Format {
        match path.extension().and_then(|e| e.to_str()) {
            Some("edn") => Format::Edn,
            _ => Format::Jsonl,
        }
    }
}

/// Reads a history file in `format`.
pub fn read_history(path: &Path, format: Format) -> Result<History, Error> {
    match format {
        Format::Jsonl => jsonl::read_file(path),
        Format::Edn => edn::read_file(path),
    }
}

/// Reads, pairs and checks a history file.
pub fn check_file(
    path: &Path,
    format: Format,
    model: Model,
    budget: &Budget,
) -> Result<Report, Error> {
    let h = read_history(path, format)?;
    let ops = operations(&h)?;
    Ok(model.check(ops, budget)?)
}

/// Checks a list of entries (no file).
pub fn check_entries(entries: Vec<Entry>, model: Model, budget: &Budget) -> Result<Report, Error> {
    let ops = operations(&History::from_entries(entries))?;
    Ok(model.check(ops, budget)?)
}

/// The report as plain text: the verdict, per-key counts, and the explanation of each
/// violation.
pub fn text_report(r: &Report) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let bad: Vec<&KeyResult> = r
        .keys
        .iter()
        .filter(|k| k.verdict == Verdict::NotLinearizable)
        .collect();
    let unknown = r
        .keys
        .iter()
        .filter(|k| matches!(k.verdict, Verdict::Unknown(_)))
        .count();
    let _ = writeln!(
        s,
        "{}: {} operations, {} key{}, model {} ({} ms, {} configurations, {} cache)",
        r.verdict.name(),
        r.operations.len(),
        r.keys.len(),
        if r.keys.len() == 1 { "" } else { "s" },
        r.model,
        r.elapsed.as_millis(),
        r.keys.iter().map(|k| k.configurations).sum::<usize>(),
        checker::human_bytes(r.peak_memory),
    );
    if let Verdict::Unknown(reason) = &r.verdict {
        let _ = writeln!(s, "  {unknown} key(s) undecided: {reason}");
    }
    for k in bad {
        let name = k
            .key
            .as_ref()
            .map_or("the register".to_string(), |k| format!("key {k}"));
        let _ = writeln!(s, "\n{name}: not linearizable ({} operations)", k.ops);
        let Some(e) = &k.explanation else {
            if let Some(m) = &k.explanation_missing {
                let _ = writeln!(s, "  (no explanation: {m})");
            }
            continue;
        };
        let op = |id: usize| &r.operations[id];
        let _ = if e.proof {
            writeln!(
                s,
                "  found without search: {} operation(s) prove it, leaving state {}",
                e.prefix.len(),
                e.state
            )
        } else {
            writeln!(
                s,
                "  longest linearizable prefix: {} operation(s), ending in state {}",
                e.prefix.len(),
                e.state
            )
        };
        let skip = e.prefix.len().saturating_sub(10);
        if skip > 0 {
            let _ = writeln!(s, "    ... {skip} earlier");
        }
        for p in &e.prefix[skip..] {
            let o = op(p.op);
            let _ = writeln!(
                s,
                "    process {:<4} {:<24} → state {}   ({})",
                o.process,
                o.describe(),
                p.state,
                o.origin
            );
        }
        if let Some(b) = r.operations.get(e.blocking) {
            let _ = writeln!(
                s,
                "  cannot be linearized before it completes: process {} {} ({})",
                b.process,
                b.describe(),
                b.origin
            );
        }
        let _ = writeln!(s, "  operations that cannot be placed next:");
        for u in &e.unplaceable {
            let o = op(u.op);
            let _ = writeln!(
                s,
                "    process {:<4} {:<24} {}   ({})",
                o.process,
                o.describe(),
                u.reason,
                o.origin
            );
        }
    }
    s
}
