//! Checkpoints wired into runs (ORDEAL_CHECKPOINT_SOCKET, the `checkpoint` marker, watches,
//! recovery after a crash fault) and `ordeal crash` (crash states, vulnerabilities).

mod common;
use common::{compile, events};

use std::path::Path;
use std::process::{Command, Output};

fn ordeal(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ordeal"))
        .args(args)
        .output()
        .expect("ordeal runs")
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn json(p: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

/// The demo's three nodes, and a workload `client` running `sh -c SCRIPT` with $0 = ordeal,
/// $1 = the nodes, $2 = n0's data dir, $3 = n2's data dir.
fn demo_with_workload(script: &str) -> String {
    let peers = "{host.n0}:{port.n0},{host.n1}:{port.n1},{host.n2}:{port.n2}";
    let mut s = String::from("name = \"ckpt-demo\"\ntimeout = \"60s\"\n");
    for i in 0..3 {
        s.push_str(&format!(
            "[[node]]\nname = \"n{i}\"\nargv = [\"{{ordeal}}\", \"kv\", \"node\", \"--id\", \"{i}\", \"--peers\", \"{peers}\", \"--data-dir\", \"{{data_dir.n{i}}}\"]\ndata_dir = true\nready = {{ log = \"is primary|joined primary\" }}\n"
        ));
    }
    s.push_str(&format!(
        "[[workload]]\nname = \"client\"\nargv = [\"sh\", \"-c\", {script:?}, \"{{ordeal}}\", \"{peers}\", \"{{data_dir.n0}}\", \"{{data_dir.n2}}\"]\n"
    ));
    s
}

fn run_exp(toml: &str, extra: &[&str]) -> (Output, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let exp = dir.path().join("exp.toml");
    std::fs::write(&exp, toml).unwrap();
    let out = dir.path().join("run");
    let mut args = vec![
        "run",
        exp.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "-q",
    ];
    args.extend_from_slice(extra);
    (ordeal(&args), dir)
}

#[test]
fn the_checkpoint_socket_reaches_workloads_and_checkpoints_are_marked_in_the_trace() {
    let script = "echo \"socket=$ORDEAL_CHECKPOINT_SOCKET\" && \
                  $0 kv client --nodes $1 --ops 4 --seed 1 && $0 checkpoint after writes";
    let (o, dir) = run_exp(&demo_with_workload(script), &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let run = dir.path().join("run");
    let log = std::fs::read_to_string(run.join("logs/client.stdout")).unwrap();
    let socket = log
        .lines()
        .find_map(|l| l.strip_prefix("socket="))
        .expect("the workload printed the socket");
    assert!(socket.ends_with("/checkpoint.sock"), "{socket}");
    // The private directory is gone with the run.
    assert!(!Path::new(socket).exists());
    // `ordeal checkpoint` printed the id.
    assert!(log.lines().any(|l| l == "1"), "{log}");
    let marks: Vec<serde_json::Value> = events(&run)
        .into_iter()
        .filter(|e| e["call"] == "checkpoint")
        .collect();
    assert_eq!(marks.len(), 1);
    assert_eq!(marks[0]["class"], "proc");
    assert_eq!(marks[0]["pos"], 1);
    assert_eq!(marks[0]["data"], "1 after writes");
    for n in ["n0", "n1", "n2"] {
        let c = json(&run.join(format!("checkpoints/0001-{n}.json")));
        assert_eq!(c["stamp"]["seq"], marks[0]["seq"], "{n}");
        assert_eq!(c["stamp"]["label"], "after writes");
        assert_eq!(c["stamp"]["node"], n);
    }
}

#[test]
fn a_watched_path_changed_after_its_checkpoint_fails_the_run() {
    let script = "$0 kv client --nodes $1 --ops 4 --seed 1 && $0 watch $2/state && \
                  $0 checkpoint && $0 kv client --nodes $1 --ops 4 --seed 2";
    let (o, dir) = run_exp(&demo_with_workload(script), &[]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let run = dir.path().join("run");
    let s = json(&run.join("summary.json"));
    let reasons: Vec<String> = s["verdict"]["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap().to_string())
        .collect();
    let state = std::fs::canonicalize(run.join("data/n0"))
        .unwrap()
        .join("state");
    let want = format!(
        "final state: watched path {} changed after checkpoint 1 in ",
        run.join("data/n0/state").display()
    );
    assert_eq!(reasons.len(), 1, "{reasons:?}");
    assert!(reasons[0].starts_with(&want), "{reasons:?} / {state:?}");
    assert!(reasons[0].contains("\n  content  state  "), "{reasons:?}");
}

/// Item 4: n0 crashes after a checkpoint its workload asked for and restarts; its recovered
/// state is compared with that checkpoint.
fn crash_after_checkpoint(junk: bool) -> (Output, tempfile::TempDir) {
    let script = format!(
        "$0 kv client --nodes $1 --ops 6 --seed 1 && $0 checkpoint after-writes && {} : > $3/go",
        if junk { "echo junk > $2/junk &&" } else { "" }
    );
    let dir0 = tempfile::tempdir().unwrap();
    let sched = dir0.path().join("crash.toml");
    std::fs::write(
        &sched,
        "[[fault]]\nname = \"crash-n0\"\nkind = \"crash\"\nnode = \"n0\"\nrestart_after = \"100ms\"\n\
         trigger = { nth = 1, node = \"client\", call = \"openat\", path = \"**/go\", when = \"after\" }\n",
    )
    .unwrap();
    let r = run_exp(
        &demo_with_workload(&script),
        &["--faults", sched.to_str().unwrap()],
    );
    drop(dir0);
    r
}

#[test]
fn a_restarted_node_is_compared_with_the_latest_checkpoint_before_its_crash() {
    let (o, dir) = crash_after_checkpoint(false);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let run = dir.path().join("run");
    let applied = std::fs::read_to_string(run.join("schedule.applied.toml")).unwrap();
    assert!(applied.contains("fired = true"), "{applied}");
    // The recovered state was captured and equals checkpoint 1.
    assert!(run.join("checkpoints/recovered-n0-1.json").exists());

    let (o, dir) = crash_after_checkpoint(true);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let run = dir.path().join("run");
    let s = json(&run.join("summary.json"));
    let reasons = s["verdict"]["reasons"].as_array().unwrap();
    assert_eq!(reasons.len(), 1, "{reasons:?}");
    let r = reasons[0].as_str().unwrap();
    let head = format!(
        "node n0's recovered state ({}) differs from checkpoint 1 (\"after-writes\"), the latest before its crash ({}): 1 difference:\n  extra    junk  (file)",
        run.join("data/n0").display(),
        run.join("checkpoints/0001-n0.json").display()
    );
    assert_eq!(r, head);
}

fn crash_json(run: &Path) -> serde_json::Value {
    json(&run.join("crash.json"))
}

/// (role, call, op) of each operation of a vulnerability.
fn ops_of(v: &serde_json::Value) -> Vec<(String, String, String)> {
    v["ops"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["role"].as_str().unwrap().to_string(),
                o["call"].as_str().unwrap().to_string(),
                o["op"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn s(a: &str, b: &str, c: &str) -> (String, String, String) {
    (a.into(), b.into(), c.into())
}

#[test]
fn the_demo_with_rename_without_fsync_has_a_crash_vulnerability_and_without_it_none() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad");
    let o = ordeal(&[
        "crash",
        "demo",
        "--set",
        "bugs=rename-without-fsync",
        "--set",
        "ops=8",
        "--seed",
        "3",
        "--out",
        bad.to_str().unwrap(),
        "-q",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let r = crash_json(&bad);
    assert_eq!(r["node"], "n0");
    let v = r["vulnerabilities"].as_array().unwrap();
    // Lost: the last save's data never reached the disk, its rename did.
    let lost = ops_of(&v[0]);
    assert_eq!(v[0]["kind"], "lost");
    // One finding per root cause: every save of the run shows it.
    assert_eq!(
        v[0]["cause"],
        "data written to state.tmp not persisted before the rename that publishes it as state (no fsync of the file before the rename)"
    );
    assert_eq!(lost.len(), 2);
    assert_eq!(
        (&lost[0].0, &lost[0].1),
        (&"lost".to_string(), &"write".to_string())
    );
    assert!(lost[0].2.starts_with("write state.tmp [0, "), "{lost:?}");
    assert_eq!(
        lost[1],
        s("persisted", "rename", "rename state.tmp → state")
    );
    assert!(v[0]["error"]
        .as_str()
        .unwrap()
        .contains("corrupt state file"));
    // The seqs are those of the calls in trace.jsonl.
    let ev = events(&bad);
    for o in v[0]["ops"].as_array().unwrap() {
        let e = ev.iter().find(|e| e["seq"] == o["seq"]).unwrap();
        assert_eq!(e["call"], o["call"]);
        assert_eq!(e["node"], "n0");
        assert!(e["path"].as_str().unwrap().ends_with("/state.tmp"));
    }
    // No fsync anywhere in n0's saves.
    assert!(!ev
        .iter()
        .any(|e| e["node"] == "n0" && (e["call"] == "fsync" || e["call"] == "fdatasync")));
    // Torn: the same write, partly persisted.
    let torn = ops_of(&v[1]);
    assert_eq!(v[1]["kind"], "torn");
    assert_eq!(torn[0].0, "torn");
    assert_eq!(
        torn[1],
        s("persisted", "rename", "rename state.tmp → state")
    );
    assert_eq!(v.len(), 2, "{v:#?}");
    // The first save renames onto a name that did not exist: ext4 loses its data too. A torn
    // write of a few bytes is cut inside a block: strict POSIX only.
    assert_eq!(
        v[0]["models"],
        serde_json::json!(["strict", "ext4-ordered"])
    );
    assert_eq!(v[1]["models"], serde_json::json!(["strict"]));
    assert_eq!(r["verdict"], "vulnerable");
    assert_eq!(r["model"], "ext4-ordered");
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("vulnerability 1 (Lost, ")
            && out.contains(" states, strict and ext4-ordered): "),
        "{out}"
    );
    assert!(out.contains(" states, strict only): "), "{out}");

    // Deterministic for a seed: a second exploration of the same recording finds the same.
    let good = dir.path().join("good");
    let o = ordeal(&[
        "crash",
        "demo",
        "--set",
        "ops=8",
        "--out",
        good.to_str().unwrap(),
        "-q",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let r = crash_json(&good);
    assert_eq!(r["vulnerabilities"].as_array().unwrap().len(), 0);
    assert_eq!(r["verdict"], "clean");
    assert!(r.get("unknown").is_none(), "{r}");
    assert!(r["checked"].as_u64().unwrap() > 10, "{r}");
    assert_eq!(r["complete"], true);
    // Scratch states of passing recoveries are removed; the original data dir untouched.
    assert_eq!(
        std::fs::read_dir(good.join("crash/states"))
            .unwrap()
            .count(),
        0
    );
}

fn saver_exp(mode: &str) -> String {
    let prog = compile("saver", &["-O1"]);
    format!(
        "name = \"saver\"\ntimeout = \"30s\"\n[[node]]\nname = \"saver\"\nargv = [{:?}, \"{{data_dir.saver}}\", {mode:?}]\ndata_dir = true\nready = {{ log = \"^saved$\" }}\n",
        prog.display().to_string()
    )
}

fn crash_saver(mode: &str) -> (Output, tempfile::TempDir) {
    crash_saver_j(mode, "2")
}

/// [`crash_saver`] recovering `jobs` states at once.
fn crash_saver_j(mode: &str, jobs: &str) -> (Output, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let exp = dir.path().join("saver.toml");
    std::fs::write(&exp, saver_exp(mode)).unwrap();
    let out = dir.path().join("run");
    let o = ordeal(&[
        "crash",
        exp.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "-q",
        "-j",
        jobs,
    ]);
    (o, dir)
}

/// crash.json without what depends on time, place or the recording (seqs).
fn findings(run: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(run.join("crash.json"))
        .unwrap()
        .replace(run.to_str().unwrap(), "RUN");
    let mut r: serde_json::Value = serde_json::from_str(&text).unwrap();
    fn strip(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(m) => {
                for k in ["seconds", "seq", "crash_after_seq"] {
                    m.remove(k);
                }
                m.values_mut().for_each(strip);
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(strip),
            _ => {}
        }
    }
    strip(&mut r);
    r
}

#[test]
fn the_findings_do_not_depend_on_how_many_states_are_recovered_at_once() {
    let (o1, d1) = crash_saver_j("bare", "1");
    assert_eq!(o1.status.code(), Some(1), "{}", text(&o1));
    let (o2, d2) = crash_saver_j("bare", "2");
    assert_eq!(o2.status.code(), Some(1), "{}", text(&o2));
    let (r1, r2) = (
        findings(&d1.path().join("run")),
        findings(&d2.path().join("run")),
    );
    assert_eq!(r1, r2);
    // The same kept example states, with the same numbers.
    let kept = |d: &tempfile::TempDir| -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(d.path().join("run/crash/states"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    assert_eq!(kept(&d1), kept(&d2));
    assert_eq!(r1["vulnerabilities"].as_array().unwrap().len(), 2, "{r1:#}");
}

#[test]
fn temp_fsync_rename_fsync_dir_is_safe_and_without_fsyncs_is_flagged() {
    let (o, dir) = crash_saver("durable");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let r = crash_json(&dir.path().join("run"));
    assert_eq!(r["vulnerabilities"].as_array().unwrap().len(), 0, "{r}");
    assert_eq!(r["operations"], 5);
    assert_eq!(r["complete"], true);

    let (o, dir) = crash_saver("bare");
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let r = crash_json(&dir.path().join("run"));
    let v = r["vulnerabilities"].as_array().unwrap();
    assert_eq!(
        ops_of(&v[0]),
        [
            s("lost", "write", "write record.tmp [0, 10000)"),
            s("persisted", "rename", "rename record.tmp → record"),
        ]
    );
    assert!(v[0]["error"]
        .as_str()
        .unwrap()
        .contains("corrupt record: 0 bytes"));
    assert_eq!(v[1]["kind"], "torn");
    assert_eq!(
        ops_of(&v[1]),
        [
            s("torn", "write", "write record.tmp [0, 10000)"),
            s("persisted", "rename", "rename record.tmp → record"),
        ]
    );
    // Torn at a block boundary first: only 4096 bytes.
    assert_eq!(v[1]["cut"], "only its first 4096 bytes persisted");
    assert_eq!(v.len(), 2, "{v:#?}");
}
