//! Every parser survives a fixed number of seeded mutations of real inputs (more with
//! `cargo run --release -p ordeal-fuzz -- --time 60s`), and the harness itself catches a
//! panic with the input that caused it.

use std::path::Path;

use ordeal_fuzz::{fuzz, targets, Budget, Target};

/// Inputs per target in the test suite: about a second per target in a debug build.
const INPUTS: u64 = 1500;

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

#[test]
fn every_parser_answers_every_mutated_input_without_panicking() {
    let all = targets(root());
    let names: Vec<&str> = all.iter().map(|t| t.name).collect();
    assert_eq!(
        names,
        [
            "experiment",
            "schedule",
            "applied",
            "history-jsonl",
            "history-edn",
            "trace",
            "journal",
            "calls",
            "capture",
            "duration"
        ]
    );
    for t in &all {
        assert!(!t.seeds.is_empty(), "{}: no seeds", t.name);
        let o = fuzz(t, Budget::Inputs(INPUTS), 7);
        assert_eq!(o.inputs, INPUTS, "{}", t.name);
        if let Some((input, msg)) = o.panic {
            panic!(
                "{}: panicked ({msg}) on {:?}",
                t.name,
                String::from_utf8_lossy(&input)
            );
        }
    }
}

#[test]
fn the_seeds_parse_as_they_are() {
    // A seed that does not parse would only test error paths: each must be a valid input.
    let root = root();
    for ex in std::fs::read_dir(root.join("examples")).unwrap() {
        let p = ex.unwrap().path();
        if p.extension().is_some_and(|e| e == "toml") {
            ordeal_experiment::Experiment::from_path(&p).unwrap();
        }
    }
    let seeds = root.join("crates/ordeal-fuzz/seeds");
    let journal = std::fs::read(seeds.join("journal.jsonl")).unwrap();
    let (entries, bad) = ordeal_explore::journal::parse_journal(&journal, Path::new("j"));
    assert_eq!((entries.len(), bad.len()), (4, 0));
    let calls = std::fs::read(seeds.join("calls.jsonl")).unwrap();
    assert_eq!(
        ordeal_calls::parse_calls(&calls[..], Path::new("c"))
            .unwrap()
            .len(),
        6
    );
    let edn = std::fs::read_to_string(seeds.join("knossos.edn")).unwrap();
    assert_eq!(
        ordeal_history::edn::read_str(&edn, "k")
            .unwrap()
            .entries
            .len(),
        8
    );
    let applied = std::fs::read_to_string(seeds.join("schedule.applied.toml")).unwrap();
    assert_eq!(
        ordeal_faults::parse_applied_toml(&applied, "a")
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn a_panicking_parser_is_caught_with_its_input() {
    let t = Target {
        name: "planted",
        seeds: vec![b"aaaa".to_vec()],
        tokens: &[b"BUG"],
        run: |input| {
            if input.windows(3).any(|w| w == b"BUG") {
                panic!("planted bug");
            }
        },
    };
    let o = fuzz(&t, Budget::Inputs(10_000), 1);
    let (input, msg) = o.panic.expect("the planted bug is found");
    assert_eq!(msg, "planted bug");
    assert!(input.windows(3).any(|w| w == b"BUG"));
    assert!(o.inputs < 10_000);
    // The same seed finds the same input.
    assert_eq!(fuzz(&t, Budget::Inputs(10_000), 1).panic.unwrap().0, input);
}
