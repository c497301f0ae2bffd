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

/// The explore runs of an explore.json's run log, as what a merge must keep of each: id,
/// faults, status, fingerprint, new behaviour, signature, firings.
pub fn explore_runs(o: &serde_json::Value) -> Vec<serde_json::Value> {
    o["run_log"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["phase"] == "explore")
        .map(|r| {
            serde_json::json!([
                r["id"],
                r["faults"],
                r["status"],
                r["fingerprint"],
                r["new_behaviour"],
                r["signature"],
                r["fired"]
            ])
        })
        .collect()
}

/// A merge of `shards` (explore.json `merged`) equals the single-machine campaign (`single`):
/// the same runs result for result, behaviours, discovery, baselines and tried candidates;
/// the same failures (signatures, hits, runs, schedules), their reproduction reruns summed
/// over every shard that found them (`reruns` each).
pub fn assert_merge_equals(
    merged: &serde_json::Value,
    single: &serde_json::Value,
    shards: &[PathBuf],
    reruns: u64,
) {
    let json = |p: &Path| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
    };
    assert_eq!(explore_runs(merged), explore_runs(single));
    for k in [
        "runs",
        "unique_behaviours",
        "behaviours",
        "discovery",
        "baseline_runs",
    ] {
        assert_eq!(merged[k], single[k], "{k}");
    }
    assert_eq!(merged["candidates"]["tried"], single["candidates"]["tried"]);
    assert_eq!(
        merged["candidates"]["tried_by_kind"],
        single["candidates"]["tried_by_kind"]
    );
    let sf = single["failures"].as_array().unwrap();
    let mf = merged["failures"].as_array().unwrap();
    assert_eq!(mf.len(), sf.len());
    for (m, s) in mf.iter().zip(sf) {
        for k in [
            "signature",
            "hits",
            "runs",
            "first_run",
            "original_faults",
            "minimal_faults",
            "minimal_schedule",
        ] {
            assert_eq!(m[k], s[k], "{k}");
        }
        let finders = shards
            .iter()
            .filter(|d| {
                json(&d.join("explore.json"))["failures"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|f| f["signature"] == s["signature"])
            })
            .count() as u64;
        assert_eq!(
            m["reproduction"]["runs"].as_u64(),
            Some(reruns * finders),
            "{m}"
        );
    }
}
