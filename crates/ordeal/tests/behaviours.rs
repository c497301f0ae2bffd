//! `ordeal behaviours RUN_DIR...`: fault-free runs of the demo are one behaviour whatever
//! their timing; a run with a crash is another, and the command says what differs.

use std::path::{Path, PathBuf};
use std::process::Command;

fn ordeal(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ordeal"))
        .args(args)
        .output()
        .unwrap()
}

fn demo(dir: &Path, name: &str, faults: Option<&str>) -> PathBuf {
    let out = dir.join(name);
    let mut args = vec![
        "demo",
        "--out",
        out.to_str().unwrap(),
        "-q",
        "--set",
        "ops=20",
    ];
    let schedule;
    if let Some(f) = faults {
        schedule = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../..")
            .join(f)
            .display()
            .to_string();
        args.extend(["--faults", &schedule]);
    }
    let o = ordeal(&args);
    assert!(
        o.status.code().is_some(),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    out
}

#[test]
fn fault_free_runs_are_one_behaviour_and_a_crash_is_another() {
    let tmp = tempfile::tempdir().unwrap();
    let runs: Vec<PathBuf> = (0..3)
        .map(|i| demo(tmp.path(), &format!("clean{i}"), None))
        .chain(std::iter::once(demo(
            tmp.path(),
            "crash",
            Some("examples/faults/crash-primary-after-ack.toml"),
        )))
        .collect();
    let args: Vec<&str> = std::iter::once("behaviours")
        .chain(runs.iter().map(|r| r.to_str().unwrap()))
        .collect();
    let o = ordeal(&args);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{text}");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "4 runs, 2 behaviours", "{text}");
    // The most common first: the three fault-free runs, its whole text.
    assert!(lines[2].ends_with(&format!(
        "(3 runs): {} {} {}",
        runs[0].display(),
        runs[1].display(),
        runs[2].display()
    )));
    assert!(text.contains("    outcome pass\n"), "{text}");
    let crash = text.split("against the first:").nth(1).unwrap();
    // Then the crash: the primary killed, a backup elected, the client served by it.
    assert!(
        crash.contains("\n    + node n#1: life exit:SIGKILL\n"),
        "{crash}"
    );
    assert!(crash.contains("demo-kv: ROLE → PRIMARY\n"), "{crash}");
}
