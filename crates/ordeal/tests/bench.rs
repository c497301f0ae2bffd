//! The benchmark scripts of docs/bench.md run as documented, at a tiny size: `bench/redis.sh`
//! (every configuration, two rounds, the peak-memory runs) and `bench/explore.sh` (every
//! campaign), with this build's `ordeal`. The figures are not checked (they are the machine's),
//! only what the scripts must print: one row per configuration and engine in order, what each
//! engine stops at, no lost events, no campaign error.
//!
//! They need Debian's `redis-server` and `redis-benchmark` (`apt-get install redis-server`):
//! missing, a test prints a note and passes, unless `CI` is set. Without the eBPF probe (not
//! root, an old kernel) the scripts run with `ENGINES=ptrace` only; under `CI` that fails.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Longest a script may take here (it takes well under a minute on 2 CPUs).
const SCRIPT_LIMIT: Duration = Duration::from_secs(600);
/// redis-benchmark -n for bench/redis.sh.
const REQUESTS: u64 = 300;

/// One script at a time: each measures, and both on two CPUs would starve the nodes' start-up.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn in_path(program: &str) -> bool {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path).any(|dir| dir.join(program).is_file())
}

/// The engines the scripts can run here: both, or ptrace alone when the probe does not load.
fn engines() -> Vec<&'static str> {
    match ordeal_run::engines::ebpf_unavailable() {
        None => vec!["ebpf", "ptrace"],
        Some(why) => {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI is set, so the eBPF engine must load, but: {why}"
            );
            eprintln!("note: the eBPF probe does not load here ({why}): ptrace only");
            vec!["ptrace"]
        }
    }
}

/// Runs `SCRIPT` with `env` and this build's ordeal, in its own process group (ended, with
/// every process of the script, if it outlives [`SCRIPT_LIMIT`]).
fn script(script: &str, env: &[(&str, String)]) -> Output {
    let child = Command::new(repo().join(script))
        .envs(env.iter().map(|(k, v)| (k, v)))
        .env("ORDEAL", env!("CARGO_BIN_EXE_ordeal"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("{script} starts: {e}"));
    let group = format!("-{}", child.id());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(SCRIPT_LIMIT) {
        Ok(out) => out.expect("waiting for the script"),
        Err(_) => {
            // TERM lets the scripts end what they started; KILL if even that hangs.
            let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
            if rx.recv_timeout(Duration::from_secs(30)).is_err() {
                let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
            }
            panic!("{script} did not finish within {SCRIPT_LIMIT:?}");
        }
    }
}

fn report(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A row of bench/redis.sh's table: the label, then its nine columns.
struct Row {
    label: String,
    cols: Vec<String>,
}

/// The rows of the table that follows the `configuration` header, up to the blank line.
fn redis_table(stdout: &str) -> Vec<Row> {
    stdout
        .lines()
        .skip_while(|l| !l.starts_with("configuration "))
        .skip(2)
        .take_while(|l| !l.is_empty())
        .map(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            let (label, cols) = words.split_at(words.len().saturating_sub(9));
            Row {
                label: label.join(" "),
                cols: cols.iter().map(|c| c.to_string()).collect(),
            }
        })
        .collect()
}

fn number(row: &Row, col: usize, what: &str) -> f64 {
    row.cols[col]
        .parse()
        .unwrap_or_else(|_| panic!("{}: {what} is `{}`", row.label, row.cols[col]))
}

#[test]
fn redis_script_prints_every_configuration_per_engine() {
    if !ordeal_test_support::installed(
        &["redis-server", "redis-benchmark", "taskset", "flock"],
        "redis-server util-linux",
    ) {
        return;
    }
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let engines = engines();
    let out = script(
        "bench/redis.sh",
        &[
            ("REQUESTS", REQUESTS.to_string()),
            ("ROUNDS", "2".into()),
            ("MEM_SECONDS", "1".into()),
            ("ENGINES", engines.join(" ")),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", report(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);

    let strace = in_path("strace");
    let pinned = std::thread::available_parallelism().map_or(1, |n| n.get()) >= 2;
    let mut expected = vec!["untraced".to_string()];
    expected.extend(engines.iter().map(|e| format!("ordeal --engine {e}")));
    expected.extend(
        engines
            .iter()
            .map(|e| format!("ordeal --engine {e} + 4 dormant faults")),
    );
    expected.extend(
        engines
            .iter()
            .map(|e| format!("ordeal --engine {e} --payload 0 (no call log)")),
    );
    if strace {
        expected.push("strace -f".into());
        expected.push("strace -f --seccomp-bpf net,rd,wr".into());
    }
    if pinned {
        expected.push("untraced, pinned (srv 0, bench 1)".into());
        expected.extend(
            engines
                .iter()
                .map(|e| format!("ordeal --engine {e}, tracer+srv CPU 0, bench 1")),
        );
        if strace {
            expected.push("strace --seccomp-bpf, +srv CPU 0, bench 1".into());
        }
    }
    let rows = redis_table(&stdout);
    let labels: Vec<&str> = rows.iter().map(|r| r.label.as_str()).collect();
    assert_eq!(labels, expected, "{}", report(&out));

    // Two tests of REQUESTS requests; a stopped read or write stops at entry and at exit.
    let requests = 2.0 * REQUESTS as f64;
    for row in &rows {
        assert!(number(row, 0, "SET req/s") > 0.0, "{}", report(&out));
        assert!(number(row, 1, "GET req/s") > 0.0, "{}", report(&out));
        if row.label.starts_with("untraced") {
            assert_eq!(row.cols[2..4], ["1.00", "1.00"], "{}", report(&out));
        }
        if !row.label.starts_with("ordeal") {
            assert_eq!(row.cols[4..], ["-", "-", "-", "-", "-"], "{}", report(&out));
            continue;
        }
        let stops = number(row, 4, "stops");
        // No engine stops every call when it only records them but ptrace.
        let stops_every_call =
            row.label.contains("ptrace") || row.label.ends_with("dormant faults");
        if stops_every_call {
            assert!(stops >= 4.0 * requests, "{stops} stops: {}", report(&out));
            number(row, 5, "us/stop");
        } else {
            assert!(stops < requests, "{stops} stops: {}", report(&out));
            assert_eq!(row.cols[5], "-", "{}", report(&out));
        }
        assert!(number(row, 7, "peak MiB") > 1.0, "{}", report(&out));
        assert_eq!(row.cols[8], "0", "lost events: {}", report(&out));
    }
    for e in &engines {
        let title = format!("peak memory, ordeal run --engine {e} (default placement)");
        let section: Vec<&str> = stdout
            .lines()
            .skip_while(|l| !l.starts_with(&title))
            .take(2)
            .collect();
        assert!(
            section.len() == 2 && section[1].ends_with(" ptrace stops, 0 lost"),
            "{}",
            report(&out)
        );
    }
}

#[test]
fn explore_script_runs_every_campaign_per_engine() {
    if !ordeal_test_support::installed(
        &["redis-server", "redis-benchmark", "redis-cli"],
        "redis-server redis-tools",
    ) {
        return;
    }
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let engines = engines();
    let out = script(
        "bench/explore.sh",
        &[("RUNS", "3".into()), ("ENGINES", engines.join(" "))],
    );
    assert_eq!(out.status.code(), Some(0), "{}", report(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let rows: Vec<Vec<&str>> = stdout
        .lines()
        .skip_while(|l| !l.starts_with("system "))
        .skip(1)
        .map(|l| l.split_whitespace().collect())
        .collect();
    let mut expected = Vec::new();
    for (system, j) in [
        ("demo", "1"),
        ("demo", "2"),
        ("demo-unpinned", "2"),
        ("demo-run-cfg", "2"),
        ("redis", "1"),
        ("redis", "2"),
    ] {
        for e in &engines {
            expected.push(vec![system, e, j]);
        }
    }
    let keys: Vec<Vec<&str>> = rows.iter().map(|r| r[..3].to_vec()).collect();
    assert_eq!(keys, expected, "{}", report(&out));
    for row in &rows {
        // runs, then (after runs/min, runs/s, run_ms, behaviours) failures and errors, then
        // the eight phases.
        assert_eq!(row.len(), 18, "{row:?}");
        assert_eq!(row[3], "3", "{row:?}");
        if row[0].starts_with("demo") {
            assert_eq!(row[8], "0", "the bug-free demo failed: {row:?}");
        }
        assert_eq!(row[9], "0", "campaign errors: {}", report(&out));
    }
}

/// bench/strategies.sh at a tiny size: one bug, two strategies, one seed; its table has a row
/// per strategy with the runs to the first failure (a number, or `>N` past the budget).
#[test]
fn strategies_script_prints_runs_to_the_first_failure_per_strategy() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let out = script(
        "bench/strategies.sh",
        &[
            ("SEEDS", "1".into()),
            ("MAX_RUNS", "12".into()),
            ("BUGS", "demo-stale-read".into()),
            ("STRATEGIES", "random novelty".into()),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", report(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let rows: Vec<Vec<&str>> = stdout
        .lines()
        .filter(|l| l.starts_with("demo-stale-read "))
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows.len(), 2, "{}", report(&out));
    for (row, strategy) in rows.iter().zip(["random", "novelty"]) {
        assert_eq!(row[1], strategy, "{}", report(&out));
        let runs = row[2];
        let ok = runs.parse::<u32>().is_ok_and(|n| (1..=12).contains(&n)) || runs == ">12";
        assert!(ok, "runs {runs}: {}", report(&out));
    }
    // Random over itself.
    assert_eq!(rows[0][5], "1.00", "{}", report(&out));
}

/// bench/crash-speed.sh at a small budget (enough for the demo bug's states): a row per target and `-j` (1, then 2) with the
/// verdict, the distinct states checked, and findings equal to those at `-j 1`.
#[test]
fn crash_speed_script_prints_states_per_second_and_the_same_findings_at_every_j() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let out = script(
        "bench/crash-speed.sh",
        &[("BUDGET", "100".into()), ("JOBS", "2".into())],
    );
    assert_eq!(out.status.code(), Some(0), "{}", report(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let rows: Vec<Vec<&str>> = stdout
        .lines()
        .filter(|l| l.starts_with("demo") || l.starts_with("sqlite3-"))
        .map(|l| l.split_whitespace().collect())
        .collect();
    let expected: &[(&str, &str, &str)] = &[
        ("demo-rename-no-fsync", "1", "vulnerable"),
        ("demo-rename-no-fsync", "2", "vulnerable"),
        ("demo", "1", "clean"),
        ("demo", "2", "clean"),
        ("sqlite3-wal-full", "1", "clean"),
        ("sqlite3-wal-full", "2", "clean"),
    ];
    let n = if in_path("sqlite3") { 6 } else { 4 };
    assert_eq!(rows.len(), n, "{}", report(&out));
    for (row, (target, j, verdict)) in rows.iter().zip(expected) {
        assert_eq!(
            (row[0], row[1], row[2]),
            (*target, *j, *verdict),
            "{}",
            report(&out)
        );
        // The budget bounds the distinct states checked.
        assert!(
            row[3].parse::<u32>().is_ok_and(|c| c <= 100),
            "{}",
            report(&out)
        );
        assert_eq!(row[7], "same", "{}", report(&out));
    }
}

/// bench/soak.sh for 20 s: it samples, checks and says so; nothing is left behind and every
/// run is accounted for. Memory growth over 20 s of a debug build says nothing, hence the
/// loose GROWTH: the 30-minute soak is the measurement (docs/bench.md).
#[test]
fn soak_script_checks_what_a_long_campaign_must_leave() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let out = script(
        "bench/soak.sh",
        &[
            ("DURATION", "20s".into()),
            ("INTERVAL", "1".into()),
            ("GROWTH", "200".into()),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", report(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    for line in [
        "ok    processes of the campaign left after it ended: 0",
        "ok    ordeal-ckpt-* entries in $TMPDIR: 0 before, 0 after",
        "ok    runs that ended in error: 0",
    ] {
        assert!(stdout.contains(line), "{line}\n{}", report(&out));
    }
    assert!(!stdout.contains("FAIL"), "{}", report(&out));
    let accounted = stdout
        .lines()
        .find(|l| l.starts_with("ok    runs.jsonl has "))
        .unwrap_or_else(|| panic!("{}", report(&out)));
    assert!(!accounted.contains("has 0 runs"), "{}", report(&out));
}
