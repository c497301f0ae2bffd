//! Durable and sharded campaigns (docs/scale.md): `ordeal explore` killed with SIGKILL at
//! several points and resumed gives the campaign an uninterrupted one gives; three shards
//! merged give the single-machine campaign; bad input to `ordeal merge` is refused or
//! reported with its file and line.
//!
//! The demo is not deterministic (two campaigns with the same seed may see different run
//! results), so the campaigns compared with a reference pin their results to the reference's
//! journal (`ORDEAL_EXPLORE_PIN_RESULTS`): every run still really runs (and is killed), but its
//! recorded result is the reference's for the same run and schedule. What is compared is then
//! exactly the campaign machinery: choices, journal, resume, shard split, merge.

mod common;

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_ordeal");
const RERUNS: u64 = 2;

/// One campaign at a time: each runs two demos at once, more starve a small machine.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn turn() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

fn campaign_args(out: &Path, extra: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = [
        "explore",
        "--demo",
        "--set",
        "bugs=stale-read",
        // The demo's settings for a single run, not its short [explore] ones: with them
        // stale-read fails within these 12 runs in every build (this file tests durability
        // and sharding, not speed).
        "--set",
        "ops=40",
        "--set",
        "peer_timeout_ms=1000",
        "--fault-duration",
        "1500ms",
        "--restart-after",
        "500ms",
        "--runs",
        "12",
        "-j",
        "2",
        "--reruns",
        "2",
        "-q",
        "--out",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    v.push(out.display().to_string());
    v.extend(extra.iter().map(|s| s.to_string()));
    v
}

fn ordeal(args: &[String], pin: Option<&Path>) -> Output {
    let mut c = Command::new(BIN);
    c.args(args);
    if let Some(p) = pin {
        c.env("ORDEAL_EXPLORE_PIN_RESULTS", p);
    }
    c.output().expect("ordeal runs")
}

fn spawn(args: &[String], pin: &Path) -> Child {
    Command::new(BIN)
        .args(args)
        .env("ORDEAL_EXPLORE_PIN_RESULTS", pin)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("ordeal starts")
}

fn ok(o: &Output) -> String {
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    // 0 no failure, 1 failures found; 2 (error) and signals are not fine.
    assert!(matches!(o.status.code(), Some(0 | 1)), "{text}");
    text
}

fn json(p: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
        .unwrap()
}

/// Complete lines of the journal.
fn journal_lines(dir: &Path) -> Vec<serde_json::Value> {
    let bytes = std::fs::read(dir.join("runs.jsonl")).unwrap_or_default();
    bytes
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .filter_map(|l| serde_json::from_slice(l).ok())
        .collect()
}

/// Waits until the journal has `k` lines (or the campaign ended), then SIGKILLs it.
fn kill_at(mut child: Child, dir: &Path, k: usize) -> usize {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let n = journal_lines(dir).len();
        if n >= k {
            child.kill().expect("SIGKILL");
            child.wait().expect("reaped");
            return journal_lines(dir).len();
        }
        if let Some(st) = child.try_wait().expect("try_wait") {
            panic!("the campaign ended ({st}) before {k} journal lines (it has {n})");
        }
        assert!(Instant::now() < deadline, "no {k} journal lines in 120 s");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// What must be equal between two campaigns with the same results: everything but timings,
/// absolute paths and which directories happen to exist.
fn deterministic(o: &serde_json::Value) -> serde_json::Value {
    let mut o = o.clone();
    let m = o.as_object_mut().unwrap();
    for k in [
        "elapsed_s",
        "explore_s",
        "runs_per_minute",
        "mean_phases_ms",
        "mean_run_ms",
        "warnings",
        "jobs",
    ] {
        m.remove(k);
    }
    for list in ["run_log", "errors"] {
        for r in m[list].as_array_mut().unwrap() {
            let r = r.as_object_mut().unwrap();
            r.remove("wall_ms");
            r.remove("kept");
        }
    }
    for f in m["failures"].as_array_mut().unwrap() {
        f.as_object_mut().unwrap().remove("replay");
    }
    o
}

#[test]
fn killed_and_resumed_campaign_equals_an_uninterrupted_one() {
    let _t = turn();
    let tmp = tempfile::tempdir().unwrap();
    let reference = tmp.path().join("reference");
    ok(&ordeal(&campaign_args(&reference, &[]), None));
    let rj = json(&reference.join("explore.json"));
    let ref_lines = journal_lines(&reference).len();
    assert!(
        ref_lines > 12,
        "the reference must shrink a failure: {ref_lines} lines"
    );
    assert!(!rj["failures"].as_array().unwrap().is_empty());

    let k = tmp.path().join("killed");
    let pin = reference.join("runs.jsonl");
    let resume: Vec<String> = ["explore", "--resume", k.to_str().unwrap(), "-q"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    // Killed during the baselines' successors, mid-exploration, and while shrinking.
    let mut before = kill_at(spawn(&campaign_args(&k, &[]), &pin), &k, 3);
    for target in [9, 15.min(ref_lines - 1)] {
        // A run directory without a journal line is half-written: make sure there is one.
        let journaled: Vec<String> = journal_lines(&k)
            .iter()
            .filter_map(|e| e["dir"].as_str().map(str::to_string))
            .collect();
        let half = (0..12)
            .map(|i| format!("runs/{i:06}"))
            .find(|d| !journaled.contains(d))
            .expect("a run not journaled yet");
        std::fs::create_dir_all(k.join(&half)).unwrap();
        std::fs::write(k.join(&half).join("half-written"), "x").unwrap();
        // And a journal line cut short by the crash.
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(k.join("runs.jsonl"))
            .unwrap();
        f.write_all(b"{\"kind\":\"run\",\"key\":\"explore:")
            .unwrap();
        drop(f);
        let prefix = std::fs::read(k.join("runs.jsonl")).unwrap();
        let after = kill_at(spawn(&resume, &pin), &k, target.max(before + 1));
        assert!(after > before, "the resumed campaign made progress");
        assert!(
            !k.join(&half).join("half-written").exists(),
            "{half} was not redone"
        );
        // Nothing finished was lost: the old lines (torn one dropped) are a prefix.
        let now = std::fs::read(k.join("runs.jsonl")).unwrap();
        let complete = &prefix[..prefix.iter().rposition(|&b| b == b'\n').unwrap() + 1];
        assert_eq!(&now[..complete.len()], complete);
        before = after;
    }
    let o = ordeal(&resume, Some(&pin));
    ok(&o);
    // Every run exactly once in the journal: none repeated, none lost.
    let mut keys: BTreeMap<String, usize> = BTreeMap::new();
    for e in journal_lines(&k) {
        if e["kind"] == "run" {
            *keys
                .entry(e["key"].as_str().unwrap().to_string())
                .or_default() += 1;
        }
    }
    assert!(keys.values().all(|&n| n == 1), "{keys:?}");
    let explore_keys: Vec<&String> = keys.keys().filter(|k| k.starts_with("explore:")).collect();
    assert_eq!(explore_keys.len(), 12);
    // Every run directory left has its journal line.
    let dirs: Vec<String> = journal_lines(&k)
        .iter()
        .filter_map(|e| e["dir"].as_str().map(str::to_string))
        .collect();
    for e in std::fs::read_dir(k.join("runs")).unwrap() {
        let d = format!("runs/{}", e.unwrap().file_name().to_string_lossy());
        assert!(dirs.contains(&d), "{d} has no journal line");
    }
    let kj = json(&k.join("explore.json"));
    assert_eq!(deterministic(&kj), deterministic(&rj));
    // Resuming the finished campaign again changes nothing: each failure stays journaled once
    // (its `failure` line used to be appended again by every resume).
    let failure_lines = || {
        journal_lines(&k)
            .iter()
            .filter(|e| e["kind"] == "failure")
            .count()
    };
    assert_eq!(failure_lines(), kj["failures"].as_array().unwrap().len());
    let lines = journal_lines(&k).len();
    for _ in 0..2 {
        ok(&ordeal(&resume, Some(&pin)));
    }
    assert_eq!(failure_lines(), kj["failures"].as_array().unwrap().len());
    assert_eq!(journal_lines(&k).len(), lines);
    assert_eq!(
        deterministic(&json(&k.join("explore.json"))),
        deterministic(&rj)
    );
}

fn shard_args(out: &Path, shard: &str) -> Vec<String> {
    campaign_args(out, &["--shard", shard])
}

#[test]
fn three_shards_merged_equal_the_single_machine_campaign() {
    let _t = turn();
    let tmp = tempfile::tempdir().unwrap();
    // The single-machine campaign of the same plan.
    let single = tmp.path().join("single");
    ok(&ordeal(&shard_args(&single, "0/1"), None));
    let sj = json(&single.join("explore.json"));
    let pin = single.join("runs.jsonl");
    let mut shards = Vec::new();
    for i in 0..3 {
        let d = tmp.path().join(format!("shard{i}"));
        ok(&ordeal(&shard_args(&d, &format!("{i}/3")), Some(&pin)));
        shards.push(d);
    }
    // Each shard ran the baselines (0, 1) and its own runs i ≡ I (mod 3).
    for (i, d) in shards.iter().enumerate() {
        let mut ids: Vec<u64> = journal_lines(d)
            .iter()
            .filter(|e| e["phase"] == "explore")
            .map(|e| e["id"].as_u64().unwrap())
            .collect();
        ids.sort();
        let want: Vec<u64> = (0..12u64).filter(|&r| r < 2 || r % 3 == i as u64).collect();
        assert_eq!(ids, want, "shard {i}/3");
    }
    let merged = tmp.path().join("merged");
    let mut args: Vec<String> = vec!["merge".into()];
    args.extend(shards.iter().map(|d| d.display().to_string()));
    args.push("--out".into());
    args.push(merged.display().to_string());
    let text = ok(&ordeal(&args, None));
    assert!(!text.contains("warning"), "{text}");
    let mj = json(&merged.join("explore.json"));
    assert!(merged.join("report.html").is_file() && merged.join("junit.xml").is_file());

    // The union of the shards' runs is the single machine's runs, result for result, and
    // every failure with its reruns summed over the shards that found it.
    assert!(
        !sj["failures"].as_array().unwrap().is_empty(),
        "the campaign must find stale-read"
    );
    common::assert_merge_equals(&mj, &sj, &shards, RERUNS);

    // Bad input: a corrupt line is reported with its file and line; the rest is merged.
    let broken = &shards[2];
    let jpath = broken.join("runs.jsonl");
    let body = std::fs::read_to_string(&jpath).unwrap();
    let mut lines: Vec<String> = body.lines().map(str::to_string).collect();
    let victim = lines
        .iter()
        .position(|l| l.contains("\"key\":\"explore:5\""))
        .expect("run 5 in shard 2");
    lines[victim].truncate(40);
    std::fs::write(&jpath, lines.join("\n") + "\n").unwrap();
    let merged2 = tmp.path().join("merged2");
    let mut args2 = args.clone();
    *args2.last_mut().unwrap() = merged2.display().to_string();
    let text = ok(&ordeal(&args2, None));
    let at = format!("{}:{}:", jpath.display(), victim + 1);
    assert!(text.contains(&at), "{at} not in:\n{text}");
    let m2 = json(&merged2.join("explore.json"));
    assert_eq!(m2["runs"], 11);
    assert!(m2["run_log"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["id"] != 5 || r["phase"] != "explore"));

    // Incompatible campaigns are refused with a clear message.
    let copy = |name: &str, edit: &dyn Fn(&mut serde_json::Value)| -> PathBuf {
        let d = tmp.path().join(name);
        std::fs::create_dir_all(&d).unwrap();
        let mut h = json(&shards[1].join("campaign.json"));
        edit(&mut h);
        std::fs::write(d.join("campaign.json"), h.to_string()).unwrap();
        std::fs::copy(shards[1].join("runs.jsonl"), d.join("runs.jsonl")).unwrap();
        d
    };
    let refused = |other: &Path, want: &str| {
        let out = tmp.path().join("refused");
        let args: Vec<String> = vec![
            "merge".into(),
            shards[0].display().to_string(),
            other.display().to_string(),
            "--out".into(),
            out.display().to_string(),
        ];
        let o = ordeal(&args, None);
        let err = String::from_utf8_lossy(&o.stderr).to_string();
        assert_eq!(o.status.code(), Some(2), "{err}");
        assert!(err.contains(want), "{want:?} not in: {err}");
        assert!(!out.join("explore.json").exists());
    };
    let other_exp = copy("other-experiment", &|h| {
        h["experiment_hash"] = "0123456789abcdef".into();
        h["set"] = serde_json::json!(["bugs="]);
    });
    refused(&other_exp, "not the same experiment");
    let other_version = copy("other-version", &|h| {
        h["ordeal_version"] = "0.0.0-elsewhere".into();
    });
    refused(
        &other_version,
        "campaigns of different versions are not merged",
    );
    let other_format = copy("other-format", &|h| {
        h["journal_version"] = 99.into();
    });
    refused(&other_format, "journal format version 99");
    let other_seed = copy("other-seed", &|h| {
        h["seed"] = 2.into();
    });
    refused(&other_seed, "has seed 2");
    refused(&shards[0], "are the same shard 0/3");
}
