//! Helpers shared by the CLI test files (each includes this module with `mod common;` and
//! uses what it needs).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

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

/// Compiles tests/progs/NAME.c with `cc FLAGS`, once per test process (tests run in parallel
/// threads: a binary rewritten while another test execs it fails with ETXTBSY).
pub fn compile(name: &str, flags: &[&str]) -> PathBuf {
    static BUILT: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    let out =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("prog-{name}-{}", std::process::id()));
    if built.iter().any(|b| b == name) {
        return out;
    }
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/progs/{name}.c"));
    let tmp = out.with_extension("tmp");
    let st = Command::new("cc")
        .args(flags)
        .arg("-o")
        .arg(&tmp)
        .arg(&src)
        .status()
        .expect("cc runs");
    assert!(st.success(), "compiling {name}");
    std::fs::rename(&tmp, &out).unwrap();
    built.push(name.to_string());
    out
}
