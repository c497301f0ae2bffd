//! The distinct behaviours of some run directories, as explore fingerprints them: how many
//! runs each, and what distinguishes each from the most common one.
//!
//! cargo run -p ordeal-explore --example behaviours -- RUN_DIR...

use ordeal_explore::fingerprint::{diff, fingerprint};
use std::collections::BTreeMap;
use std::path::Path;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut seen: BTreeMap<String, (usize, String)> = BTreeMap::new();
    let dirs: Vec<String> = std::env::args().skip(1).collect();
    for d in &dirs {
        let dir = Path::new(d);
        let reader = ordeal_events::TraceReader::open(&dir.join("trace.jsonl"))?;
        let header = reader.header.clone();
        let events = reader.read_all()?;
        let summary: ordeal_hb::Summary =
            serde_json::from_slice(&std::fs::read(dir.join("summary.json"))?)?;
        let outcome = ordeal_explore::signature::outcome(
            summary.verdict.status,
            &summary.verdict.reasons,
            dir,
        );
        let fp = fingerprint(&header, &events, &outcome);
        seen.entry(fp.hash).or_insert((0, fp.canonical)).0 += 1;
    }
    let mut by_count: Vec<(&String, &(usize, String))> = seen.iter().collect();
    by_count.sort_by(|a, b| b.1 .0.cmp(&a.1 .0).then(a.0.cmp(b.0)));
    println!("{} runs, {} behaviours", dirs.len(), seen.len());
    let common = by_count
        .first()
        .map(|(_, (_, c))| c.clone())
        .unwrap_or_default();
    for (i, (hash, (n, canonical))) in by_count.iter().enumerate() {
        println!("{hash}: {n} runs");
        if i == 0 {
            for l in canonical.lines() {
                println!("    {l}");
            }
        } else {
            for l in diff(canonical, &common) {
                println!("    {l}");
            }
        }
    }
    Ok(())
}
