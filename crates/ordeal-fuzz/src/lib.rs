//! # ordeal-fuzz: a fuzzing harness for ordeal's parsers
//!
//! Everything ordeal reads from a user or from an earlier run is parsed by code that must
//! answer every input with a value or an error, never a panic, and in time linear in the
//! input. This crate feeds each parser ([`targets`]) seeded mutations of real inputs (the
//! repository's example experiments and schedules, a Knossos history, a campaign journal, a
//! call log, a capture made on the spot): bit flips, interesting bytes, tokens of the format,
//! deleted, duplicated and spliced ranges, truncations. A panic is caught, and [`fuzz`]
//! returns the input that caused it; the slowest input is reported too.
//!
//! `cargo run --release -p ordeal-fuzz -- --time 60s` runs every target (docs/bench.md,
//! "Fuzzing"); the crate's test runs each target for a fixed number of inputs in CI.
//!
//! Adding a target: one [`Target`] in [`targets`] (a name, seeds, a function that parses).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ordeal_sys::rng::SplitMix64;

/// One parser under test.
pub struct Target {
    pub name: &'static str,
    /// Real inputs the mutations start from.
    pub seeds: Vec<Vec<u8>>,
    /// Byte strings of the format that mutations insert (keys, brackets, placeholders).
    pub tokens: &'static [&'static [u8]],
    /// Parses one input; errors are fine, panics are bugs.
    pub run: fn(&[u8]),
}

/// How long a campaign on one target lasts.
#[derive(Debug, Clone, Copy)]
pub enum Budget {
    Inputs(u64),
    Time(Duration),
}

/// What fuzzing one target found.
#[derive(Debug)]
pub struct Outcome {
    pub target: &'static str,
    pub inputs: u64,
    pub elapsed: Duration,
    /// The slowest input and its time.
    pub slowest: (Duration, Vec<u8>),
    /// The first input that panicked, with the panic's message.
    pub panic: Option<(Vec<u8>, String)>,
}

/// Runs `target` on mutations of its seeds (the seeds first, as they are) until `budget` is
/// spent or an input panics.
pub fn fuzz(target: &Target, budget: Budget, seed: u64) -> Outcome {
    let mut rng = SplitMix64::new(seed ^ fnv(target.name.as_bytes()));
    let start = Instant::now();
    let mut out = Outcome {
        target: target.name,
        inputs: 0,
        elapsed: Duration::ZERO,
        slowest: (Duration::ZERO, Vec::new()),
        panic: None,
    };
    loop {
        let done = match budget {
            Budget::Inputs(n) => out.inputs >= n,
            Budget::Time(t) => start.elapsed() >= t,
        };
        if done || target.seeds.is_empty() {
            break;
        }
        let input = match target.seeds.get(out.inputs as usize) {
            Some(s) => s.clone(),
            None => mutate(target, &mut rng),
        };
        let t0 = Instant::now();
        let r = catch_unwind(AssertUnwindSafe(|| (target.run)(&input)));
        let took = t0.elapsed();
        out.inputs += 1;
        if took > out.slowest.0 {
            out.slowest = (took, input.clone());
        }
        if let Err(p) = r {
            let msg = p
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "(a panic without a message)".into());
            out.panic = Some((input, msg));
            break;
        }
    }
    out.elapsed = start.elapsed();
    out
}

/// One to four stacked mutations of a random seed.
pub fn mutate(target: &Target, rng: &mut SplitMix64) -> Vec<u8> {
    let pick = |rng: &mut SplitMix64, n: usize| rng.below(n.max(1) as u64) as usize;
    let mut v = target.seeds[pick(rng, target.seeds.len())].clone();
    for _ in 0..1 + pick(rng, 4) {
        let len = v.len();
        let at = pick(rng, len + 1);
        match pick(rng, 9) {
            // Flip one bit.
            0 if len > 0 => {
                let i = pick(rng, len);
                v[i] ^= 1 << pick(rng, 8);
            }
            // An interesting byte.
            1 if len > 0 => {
                const BYTES: &[u8] = b"\0\n\r\t \"'\\{}[]=,:#.-0123456789\x7f\xff\xc3";
                let i = pick(rng, len);
                v[i] = BYTES[pick(rng, BYTES.len())];
            }
            // A token of the format, or a huge number.
            2 | 3 => {
                let tok: &[u8] = match target.tokens.get(pick(rng, target.tokens.len() + 3)) {
                    Some(t) => t,
                    None => [
                        &b"18446744073709551616"[..],
                        b"-9223372036854775809",
                        b"1e999",
                    ][pick(rng, 3)],
                };
                v.splice(at..at, tok.iter().copied());
            }
            // Delete a range.
            4 if len > 0 => {
                let end = (at + 1 + pick(rng, 64)).min(len);
                v.drain(at.min(len - 1)..end);
            }
            // Duplicate a range (repeated keys, lines, nesting).
            5 if len > 0 => {
                let from = pick(rng, len);
                let end = (from + 1 + pick(rng, 256)).min(len);
                let piece: Vec<u8> = v[from..end].to_vec();
                for _ in 0..1 + pick(rng, 3) {
                    v.splice(at..at, piece.iter().copied());
                }
            }
            // Splice in part of another seed.
            6 => {
                let other = &target.seeds[pick(rng, target.seeds.len())];
                if !other.is_empty() {
                    let from = pick(rng, other.len());
                    let end = (from + 1 + pick(rng, 512)).min(other.len());
                    v.splice(at..at, other[from..end].iter().copied());
                }
            }
            // Cut short (a file written in part).
            7 => v.truncate(at),
            // Deep nesting.
            _ => {
                let open: &[u8] = [&b"["[..], b"{", b"(", b"[["][pick(rng, 4)];
                for _ in 0..pick(rng, 200) {
                    v.splice(at..at, open.iter().copied());
                }
            }
        }
        // Inputs stay small: a parser's cost per byte is what matters.
        v.truncate(1 << 20);
    }
    v
}

fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf29ce484222325, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x100000001b3)
    })
}

fn text(input: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(input)
}

/// The files of `dir` whose names end with `ext`, sorted.
fn files(dir: &Path, ext: &str) -> Vec<Vec<u8>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().ends_with(ext))
        .collect();
    paths.sort();
    paths.iter().filter_map(|p| std::fs::read(p).ok()).collect()
}

/// A capture file of a small tree made on the spot (a file, a directory, a symlink).
fn capture_seed() -> Vec<Vec<u8>> {
    let Ok(dir) = tempfile::Builder::new().prefix("ordeal-fuzz-").tempdir() else {
        return Vec::new();
    };
    let root = dir.path();
    let made = std::fs::create_dir(root.join("d"))
        .and_then(|_| std::fs::write(root.join("d/state"), b"k1=v1\n"))
        .and_then(|_| std::os::unix::fs::symlink("d/state", root.join("link")));
    if made.is_err() {
        return Vec::new();
    }
    let opts = ordeal_state::CaptureOptions {
        ignore: vec!["*.tmp".into()],
        threads: 1,
    };
    match ordeal_state::capture(root, &opts) {
        Ok(c) => vec![c.to_json().into_bytes()],
        Err(_) => Vec::new(),
    }
}

/// A history.jsonl of a random linearizable kv history with indeterminate operations.
fn history_seed() -> Vec<Vec<u8>> {
    let cfg = ordeal_history::generate::Config {
        processes: 3,
        ops: 20,
        keys: 2,
        info: 0.1,
        ..Default::default()
    };
    let mut out = Vec::new();
    let _ = ordeal_history::jsonl::write(&mut out, &ordeal_history::generate::linearizable(&cfg));
    vec![out]
}

/// Every target, with seeds from the repository at `root` (the workspace's directory) and
/// from this crate's `seeds/`.
pub fn targets(root: &Path) -> Vec<Target> {
    let seeds = root.join("crates/ordeal-fuzz/seeds");
    let mut schedules = files(&root.join("examples/faults"), ".toml");
    schedules.extend(files(&root.join("crates/ordeal/tests/progs"), ".toml"));
    vec![
        Target {
            name: "experiment",
            seeds: files(&root.join("examples"), ".toml"),
            tokens: &[
                b"[[node]]\n",
                b"[[workload]]\n",
                b"[check]\n",
                b"[vars]\n",
                b"[roles]\n",
                b"{port.",
                b"{var.",
                b"{data_dir.",
                b"{{",
                b"}}",
                b"argv = [",
                b"timeout = ",
                b"\"1s\"",
                b"'''",
                b"ready = { log = \"(\" }",
                b"history = { model = \"kv\", from = \"traffic\" }",
            ],
            run: |input| {
                let _ = ordeal_experiment::Experiment::parse(&text(input), "fuzz.toml");
            },
        },
        Target {
            name: "schedule",
            seeds: schedules,
            tokens: &[
                b"[[fault]]\n",
                b"kind = \"partition\"\n",
                b"trigger = { nth = ",
                b"call = \"",
                b"shape = \"ring\"",
                b"role = \"leader\"",
                b"errno = \"EIO\"",
                b"duration = \"",
                b"p = 1.5",
            ],
            run: |input| {
                let _ = ordeal_faults::Schedule::parse(&text(input), "fuzz.toml");
            },
        },
        Target {
            name: "applied",
            seeds: files(&seeds, ".applied.toml"),
            tokens: &[b"[[applied]]\n", b"fired = ", b"seq = "],
            run: |input| {
                let _ = ordeal_faults::parse_applied_toml(&text(input), "fuzz.toml");
            },
        },
        Target {
            name: "history-jsonl",
            seeds: history_seed(),
            tokens: &[
                b"{\"type\":\"info\"",
                b"\"f\":\"cas\"",
                b"\"value\":[",
                b"\"process\":",
                b"null",
            ],
            run: |input| {
                let Ok(h) = ordeal_history::jsonl::read(input, "fuzz.jsonl") else {
                    return;
                };
                check(&h);
            },
        },
        Target {
            name: "history-edn",
            seeds: files(&seeds, ".edn"),
            tokens: &[
                b":type :invoke",
                b":f :cas",
                b":value [",
                b"#{",
                b"\"",
                b";",
                b":process :nemesis",
            ],
            run: |input| {
                let Ok(h) = ordeal_history::edn::read_str(&text(input), "fuzz.edn") else {
                    return;
                };
                check(&h);
            },
        },
        Target {
            name: "trace",
            seeds: vec![std::fs::read(
                root.join("crates/ordeal-hb/tests/fixtures/sim/trace.jsonl"),
            )
            .unwrap_or_default()],
            tokens: &[
                b"{\"type\":\"event\",",
                b"\"seq\":",
                b"\"call\":\"connect\"",
                b"\"sock\":{",
                b"\"data\":\"",
            ],
            run: |input| {
                let Ok(r) = ordeal_events::TraceReader::new(input, Path::new("fuzz.jsonl")) else {
                    return;
                };
                for ev in r {
                    if ev.is_err() {
                        return;
                    }
                }
            },
        },
        Target {
            name: "journal",
            seeds: files(&seeds, "journal.jsonl"),
            tokens: &[
                b"{\"kind\":\"run\"",
                b"\"result\":{\"Err\":",
                b"\"faults\":[",
            ],
            run: |input| {
                let _ = ordeal_explore::journal::parse_journal(input, Path::new("runs.jsonl"));
            },
        },
        Target {
            name: "calls",
            seeds: files(&seeds, "calls.jsonl"),
            tokens: &[b"\"status\":\"", b"\"kv\":{", b"\"protocol\":\""],
            run: |input| {
                let _ = ordeal_calls::parse_calls(input, Path::new("calls.jsonl"));
            },
        },
        Target {
            name: "capture",
            seeds: capture_seed(),
            tokens: &[b"\"kind\":\"", b"\"mode\":\"", b"\"entries\":["],
            run: |input| {
                let _ = ordeal_state::Capture::from_json(input, Path::new("fuzz.capture"));
            },
        },
        Target {
            name: "duration",
            seeds: vec![b"1m30s".to_vec(), b"500ms".to_vec(), b"2h".to_vec()],
            tokens: &[b"us", b"ns", b"h", b"99999999999"],
            run: |input| {
                let _ = ordeal_toml::parse_duration(&text(input));
                let _ = ordeal_toml::parse_size(&text(input));
            },
        },
    ]
}

/// A parsed history checked under every model, in a small budget.
fn check(h: &ordeal_history::History) {
    let Ok(ops) = ordeal_history::operations(h) else {
        return;
    };
    let budget = ordeal_history::Budget {
        time: Some(Duration::from_millis(200)),
        memory: Some(16 << 20),
        max_steps: Some(20_000),
        threads: 1,
    };
    for model in ordeal_history::Model::ALL {
        if let Ok(report) = model.check(ops.clone(), &budget) {
            let _ = ordeal_history::text_report(&report);
        }
    }
}
