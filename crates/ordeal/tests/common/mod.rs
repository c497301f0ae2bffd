//! Helpers shared by the CLI test files (each includes this module with `mod common;` and
//! uses what it needs).
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// The events of RUN/trace.jsonl (its header line skipped), as JSON values.
pub fn events(run: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(run.join("trace.jsonl"))
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// RUN/summary.json.
pub fn summary(run: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(run.join("summary.json")).unwrap()).unwrap()
}

/// Compiles tests/progs/NAME.c with `cc FLAGS`, once per test process (see `compile_c`).
pub fn compile(name: &str, flags: &[&str]) -> PathBuf {
    ordeal_test_support::compile_c(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/progs/{name}.c")),
        Path::new(env!("CARGO_TARGET_TMPDIR")),
        "prog",
        flags,
    )
}
