//! Causes from real verdict reasons (summary.json of `ordeal run` on the examples) and the
//! logs next to them.

use super::*;

/// A run directory with these logs (`name.ext`, text).
fn run_dir(logs: &[(&str, &str)]) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(d.path().join("logs")).unwrap();
    for (name, text) in logs {
        std::fs::write(d.path().join("logs").join(name), text).unwrap();
    }
    d
}

#[test]
fn numbers_and_addresses_are_abstracted() {
    assert_eq!(
        normalize("VIOLATION: op 8: GET k1 from node 1 (127.0.0.1:20288) returned NOTFOUND"),
        "VIOLATION: op N: GET kN from node N (N.N.N.N:N) returned NOTFOUND"
    );
    assert_eq!(
        abstract_text(r#"expected "v12" for key "k3", got "v9" at 0x7ffd1234abcd in deadbeef01"#),
        r#"expected "…" for key "…", got "…" at 0xN in H"#
    );
    // A list of keys is one item, however long.
    assert_eq!(
        abstract_text("VIOLATION: acknowledged writes lost after failover: k5 k6 k7 k8"),
        "VIOLATION: acknowledged writes lost after failover: kN…"
    );
    assert_eq!(
        abstract_text("lost: k5, k6, k7 and k9"),
        abstract_text("lost: k1, k2 and k3")
    );
}

#[test]
fn flagged_lines_start_with_a_capitalized_word_and_a_colon() {
    assert!(flagged("VIOLATION: op 8"));
    assert!(flagged("  LOST_WRITE: k1"));
    assert!(flagged("ERROR: x"));
    for l in [
        "client: error: x",
        "Error: x",
        "VIOLATION op 8",
        "A: x",
        "2024-01-01 ERROR: x",
        "HTTP/1.1: x",
        "_X: y",
    ] {
        assert!(!flagged(l), "{l}");
    }
}

/// `ordeal run examples/demo-kv-history.toml --set bugs=stale-read
/// --faults examples/faults/kv-history-stale-backup.toml`.
#[test]
fn a_history_violation_is_its_anomaly_and_operation() {
    let d = run_dir(&[]);
    let r = d.path().display();
    let reason = format!(
        "history not linearizable (kv): key \"k0\": not linearizable (34 operations); process 7 read \"k0\" → 5 reads 5, but the value is 17 ({r}/history.jsonl:164); 3 key(s) in all (history.html)"
    );
    let c = causes(Status::Fail, &[reason], d.path());
    assert_eq!(
        c,
        ["history (kv): not linearizable: read returns a value other than the current one"]
    );
    // Another key, process and values: the same cause.
    let other = format!(
        "history not linearizable (kv): key \"k2\": not linearizable (38 operations); process 2 read \"k2\" → 9 reads 9, but the value is 24 ({r}/history.jsonl:116); 1 key(s) in all (history.html)"
    );
    assert_eq!(causes(Status::Fail, &[other], d.path()), c);
}

/// `ordeal run examples/redis-failover.toml --faults examples/faults/redis-replica-lag.toml`:
/// the client's exit with its VIOLATION line, and the history's missed write.
#[test]
fn a_workload_exit_takes_its_flagged_line() {
    let d = run_dir(&[
        (
            "client.stdout",
            "replicas in sync before the failover: 1\nVIOLATION: acknowledged writes lost after failover: k5 k6 k7 k8 k9 k10 k11 k12\n",
        ),
        ("client.stderr", ""),
    ]);
    let r = d.path().display();
    let reasons = vec![
        "workload client ended: exit 1".to_string(),
        format!("history not linearizable (kv): key \"k10\": not linearizable (2 operations); process 0 read \"k10\" → nil reads nil, but the value is \"v10\" ({r}/history.jsonl:43); 8 key(s) in all (history.html)"),
    ];
    let c = causes(Status::Fail, &reasons, d.path());
    assert_eq!(
        c,
        [
            "history (kv): not linearizable: read misses a write",
            "workload client ended: exit 1: VIOLATION: acknowledged writes lost after failover: kN…",
        ]
    );
    assert_eq!(
        signature(&c),
        "history (kv): not linearizable: read misses a write; workload client ended: exit 1: VIOLATION: acknowledged writes lost after failover: kN…"
    );
}

/// `ordeal run examples/demo-kv.toml --set bugs=ack-before-replicate
/// --faults examples/faults/crash-primary-after-ack.toml`: the demo client's violation; its
/// lines that merely contain `fail` or `error` do not count.
#[test]
fn equal_failures_share_a_signature_and_different_ones_do_not() {
    let sig = |stdout: &str| {
        let d = run_dir(&[("client.stdout", stdout)]);
        signature(&causes(
            Status::Fail,
            &["workload client ended: exit 1".into()],
            d.path(),
        ))
    };
    let a = sig("client: SET k2 failed, retrying\nVIOLATION: op 13: GET k3 from node 1 (127.0.0.1:29431) returned NOTFOUND, but SET k3 v7 was acknowledged\nclient: 40 ops, 23 sets ok, 17 gets ok, 1 violations\n");
    let b = sig("VIOLATION: op 8: GET k1 from node 2 (127.0.0.1:31002) returned NOTFOUND, but SET k1 v3 was acknowledged\nclient: error: connection reset\n");
    let c = sig("VIOLATION: op 9: GET k1 from node 1 (127.0.0.1:20288) returned v2, but the last acknowledged SET was v7\n");
    assert_eq!(a, b);
    assert_ne!(a, c);
    assert_eq!(
        a,
        "workload client ended: exit 1: VIOLATION: op N: GET kN from node N (N.N.N.N:N) returned NOTFOUND, but SET kN vN was acknowledged"
    );
    // No flagged line: the exit alone, whatever else the client printed.
    assert_eq!(
        sig("client: error: connection refused\nassertion failed\n"),
        "workload client ended: exit 1"
    );
    // Exit codes are kept: exit 2 is another cause than exit 1.
    let d = run_dir(&[]);
    assert_eq!(
        causes(
            Status::Fail,
            &["workload client ended: exit 2".into()],
            d.path()
        ),
        ["workload client ended: exit 2"]
    );
}

/// An experiment whose `[check]` fails and whose client exits 2 (the reasons `ordeal run`
/// gave, the logs the run wrote).
#[test]
fn a_failed_check_is_its_status_and_message() {
    let d = run_dir(&[
        ("check.stdout", "checking n0\n"),
        (
            "check.stderr",
            "expected \"v12\" for key \"k3\", got \"v9\"\n",
        ),
        (
            "client.stdout",
            "client: 3 ops\nLOST: write k7 at 0x7ffd1234abcd\n",
        ),
    ]);
    let r = d.path().display();
    let reasons = vec![
        format!("check failed (exit 3); last lines of {r}/logs/check.stderr:\n  expected \"v12\" for key \"k3\", got \"v9\""),
        "workload client ended: exit 2".to_string(),
    ];
    assert_eq!(
        causes(Status::Fail, &reasons, d.path()),
        [
            "check failed (exit 3): expected \"…\" for key \"…\", got \"…\"",
            "workload client ended: exit 2: LOST: write kN at 0xN",
        ]
    );
    // A flagged line of the check's comes first.
    let d = run_dir(&[
        ("check.stdout", "FAIL: 2 replicas differ\ndetails follow\n"),
        ("check.stderr", "traceback\nValueError: 3\n"),
    ]);
    assert_eq!(
        causes(Status::Fail, &["check failed (exit 1)".into()], d.path()),
        ["check failed (exit 1): FAIL: N replicas differ"]
    );
}

#[test]
fn nodes_hangs_timeouts_and_errors() {
    let d = run_dir(&[]);
    let hang = "hung (blocked): no traced event for 2.0s, 0.00 CPU used; n0/32031 (sleep) sleeping in clock_nanosleep() (wchan hrtimer_nanosleep); client/32032 (sleep) sleeping in clock_nanosleep() (wchan hrtimer_nanosleep)";
    assert_eq!(
        causes(Status::Hung, &[hang.into()], d.path()),
        ["hung (blocked)"]
    );
    let reasons = vec![
        "node n1 exited unexpectedly: killed by SIGSEGV".to_string(),
        "timeout: the run's 60s passed with client still running".to_string(),
        "the trace is incomplete: the ebpf engine lost 12 events (its ring buffer was full)"
            .to_string(),
    ];
    assert_eq!(
        causes(Status::Fail, &reasons, d.path()),
        [
            "node n1 exited unexpectedly: killed by SIGSEGV",
            "timeout: the run's Ns passed with client still running",
        ]
    );
    assert_eq!(
        causes(
            Status::Error,
            &["node n0 not ready within 10s".into()],
            d.path()
        ),
        ["error: node nN not ready within Ns"]
    );
    // A failure with nothing said: its status.
    assert_eq!(causes(Status::Fail, &[], d.path()), ["fail"]);
    assert!(causes(Status::Pass, &[], d.path()).is_empty());
}
