//! `ordeal crash` on real programs (issue 16): Debian's sqlite3 and LMDB's mdb_load, and small
//! C programs using O_DSYNC and link(2). Each node runs the program's work once on a fresh data
//! dir, acknowledging what it committed in a file of its own, and on a data dir that has
//! one (a crash state) checks that everything acknowledged is there.

mod common;
use common::compile;

use std::path::Path;
use std::process::{Command, Output};

fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// `ordeal crash` of a one-node experiment running `argv` (its data dir is `{data_dir.db}`,
/// ready when it prints `ready`); the exit status, crash.json and the output.
fn crash(argv: &[String], budget: &str) -> (Option<i32>, serde_json::Value, String) {
    let (code, r, out, _) = crash_kept(argv, budget, None);
    (code, r, out)
}

/// [`crash`], keeping the run directory (in the returned temporary directory); the data dir
/// starts as a copy of `base` when given.
fn crash_kept(
    argv: &[String],
    budget: &str,
    base: Option<&Path>,
) -> (Option<i32>, serde_json::Value, String, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let exp = dir.path().join("exp.toml");
    let argv: Vec<String> = argv.iter().map(|a| format!("{a:?}")).collect();
    let data_dir = match base {
        Some(b) => format!("{{ copy_from = {:?} }}", b.display().to_string()),
        None => "true".into(),
    };
    std::fs::write(
        &exp,
        format!(
            "name = \"prog\"\ntimeout = \"30s\"\n[[node]]\nname = \"db\"\nargv = [{}]\ndata_dir = {data_dir}\nready = {{ log = \"^ready$\" }}\n",
            argv.join(", ")
        ),
    )
    .unwrap();
    let out = dir.path().join("run");
    let o = Command::new(env!("CARGO_BIN_EXE_ordeal"))
        .args([
            "crash",
            exp.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ])
        .args(["-q", "--budget", budget])
        .output()
        .unwrap();
    let report = std::fs::read(out.join("crash.json"))
        .map(|b| serde_json::from_slice(&b).unwrap())
        .unwrap_or(serde_json::Value::Null);
    (o.status.code(), report, text(&o), dir)
}

/// The lost/torn/persisted operations of each vulnerability: `role call`.
fn blamed(r: &serde_json::Value) -> Vec<Vec<String>> {
    r["vulnerabilities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            v["ops"]
                .as_array()
                .unwrap()
                .iter()
                .map(|o| {
                    format!(
                        "{} {}",
                        o["role"].as_str().unwrap(),
                        o["op"].as_str().unwrap()
                    )
                })
                .collect()
        })
        .collect()
}

fn c_node(prog: &str, mode: &str) -> Vec<String> {
    let p = compile(prog, &["-O1"]);
    vec![p.display().to_string(), "{data_dir.db}".into(), mode.into()]
}

#[test]
fn writes_through_an_o_dsync_descriptor_are_durable_and_plain_ones_are_not() {
    let (code, r, out) = crash(&c_node("dsync", "dsync"), "300");
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(r["verdict"], "clean", "{out}");
    assert_eq!(r["complete"], true, "{out}");
    // create ×2, fsync dir, then per record: write + its return, ack + its return.
    assert_eq!(r["operations"], 15, "{out}");

    let (code, r, out) = crash(&c_node("dsync", "plain"), "300");
    assert_eq!(code, Some(1), "{out}");
    assert_eq!(r["verdict"], "vulnerable");
    let v = &r["vulnerabilities"][0];
    assert!(
        v["error"].as_str().unwrap().contains("is not in the log"),
        "{out}"
    );
    assert_eq!(blamed(&r)[0][0], "lost write log [0, 64)", "{out}");
}

#[test]
fn publishing_with_link_after_fsync_is_safe_and_without_it_is_found_under_both_models() {
    let (code, r, out) = crash(&c_node("linker", "fsync"), "300");
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(r["verdict"], "clean", "{out}");
    assert_eq!(r["operations"], 6, "{out}");

    let (code, r, out) = crash(&c_node("linker", "bare"), "300");
    assert_eq!(code, Some(1), "{out}");
    assert_eq!(
        blamed(&r)[0],
        ["lost write msg.tmp [0, 29)", "persisted link msg.tmp → msg"],
        "{out}"
    );
    assert!(r["vulnerabilities"][0]["error"]
        .as_str()
        .unwrap()
        .contains("corrupt msg: 0 bytes"));
    // Not a replacing rename: ext4 loses the data too.
    assert_eq!(
        r["vulnerabilities"][0]["models"],
        serde_json::json!(["strict", "ext4-ordered"])
    );
    assert!(out.contains("strict and ext4-ordered"), "{out}");
}

#[test]
fn data_copied_with_copy_file_range_is_a_write_not_durable_until_fsync() {
    let (code, r, out) = crash(&c_node("copier", "fsync"), "300");
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(r["verdict"], "clean", "{out}");
    // Nothing unmodelled: the model's final state is the real directory.
    assert!(r.get("unknown").is_none(), "{out}");
    assert_eq!(r["complete"], true, "{out}");

    let (code, r, out) = crash(&c_node("copier", "bare"), "300");
    assert_eq!(code, Some(1), "{out}");
    let v = &r["vulnerabilities"][0];
    assert_eq!(
        v["cause"],
        "data written to msg.tmp not persisted before the rename that publishes it as msg (no fsync of the file before the rename)",
        "{out}"
    );
    // Either copy lost: the first half at the descriptor's offset, the rest at an explicit
    // one; the example loses the first.
    assert_eq!(
        blamed(&r)[0],
        [
            "lost write msg.tmp [0, 19)",
            "persisted write msg.tmp [19, 39)",
            "persisted rename msg.tmp → msg"
        ],
        "{out}"
    );
    assert_eq!(v["ops"][0]["call"], "copy_file_range", "{out}");
    assert!(
        v["error"].as_str().unwrap().contains("corrupt msg"),
        "{out}"
    );
}

#[test]
fn data_copied_with_sendfile_into_a_file_is_a_write_too() {
    let mut argv = c_node("copier", "bare");
    argv.push("sendfile".into());
    let (code, r, out) = crash(&argv, "300");
    assert_eq!(code, Some(1), "{out}");
    assert_eq!(
        blamed(&r)[0],
        [
            "lost write msg.tmp [0, 19)",
            "persisted write msg.tmp [19, 39)",
            "persisted rename msg.tmp → msg"
        ],
        "{out}"
    );
    assert_eq!(
        r["vulnerabilities"][0]["ops"][0]["call"], "sendfile",
        "{out}"
    );

    let mut argv = c_node("copier", "fsync");
    argv.push("sendfile".into());
    let (code, r, out) = crash(&argv, "300");
    assert_eq!(code, Some(0), "{out}");
    assert!(r.get("unknown").is_none(), "{out}");
}

/// A node running `sh -c SCRIPT` with $1 = the data dir and the rest of `args`.
fn sh_node(script: &str, args: &[&str]) -> Vec<String> {
    let mut v = vec![
        "sh".to_string(),
        "-c".into(),
        // Braces are the experiment file's placeholders: doubled to stay literal.
        script.replace('{', "{{").replace('}', "}}"),
        "sh".into(),
        "{data_dir.db}".into(),
    ];
    v.extend(args.iter().map(|a| a.to_string()));
    v
}

/// sqlite3 with synchronous $2 on a database prepared with a table `t` (and its journal
/// mode), an empty `acked` and a `todo` file: every start checks integrity and that every
/// acknowledged row is there; a start that finds `todo` removes it (durably) and commits a
/// transaction, acknowledged in `acked` after sqlite3 returned.
const SQLITE: &str = r#"
d=$1; db=$d/db
ok=$(sqlite3 "$db" "PRAGMA integrity_check;" 2>&1) || { echo "sqlite3: $ok" >&2; exit 1; }
[ "$ok" = ok ] || { echo "integrity check: $ok" >&2; exit 1; }
n=$(sqlite3 "$db" "SELECT count(*) FROM t;" 2>&1) || { echo "sqlite3: $n" >&2; exit 1; }
a=$(grep -a -E '^[0-9]+$' "$d/acked" | tail -n 1)
[ "$n" -ge "${a:-0}" ] || { echo "lost a committed transaction: $n rows, $a acknowledged" >&2; exit 1; }
if [ -e "$d/todo" ]; then
  rm "$d/todo"; sync
  sqlite3 "$db" "PRAGMA synchronous=$2; INSERT INTO t VALUES(1);"
  echo 1 >> "$d/acked"
fi
echo ready; exec sleep 1000
"#;

fn sqlite(
    journal: &str,
    sync: &str,
    budget: &str,
) -> Option<(Option<i32>, serde_json::Value, String)> {
    if !ordeal_test_support::installed(&["sqlite3"], "sqlite3") {
        return None;
    }
    let base = tempfile::tempdir().unwrap();
    let db = base.path().join("db");
    let made = Command::new("sqlite3")
        .arg(&db)
        .arg(format!("PRAGMA journal_mode={journal}; CREATE TABLE t(x);"))
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", text(&made));
    std::fs::write(base.path().join("acked"), "").unwrap();
    std::fs::write(base.path().join("todo"), "").unwrap();
    let (code, r, out, _) = crash_kept(&sh_node(SQLITE, &[sync]), budget, Some(base.path()));
    Some((code, r, out))
}

#[test]
fn sqlite_delete_full_loses_the_last_committed_transaction_when_the_journal_deletion_is_lost() {
    let Some((code, r, out)) = sqlite("DELETE", "FULL", "100") else {
        return;
    };
    assert_eq!(code, Some(1), "{out}");
    let v = r["vulnerabilities"].as_array().unwrap();
    let lost = v
        .iter()
        .find(|v| {
            v["error"]
                .as_str()
                .unwrap()
                .contains("lost a committed transaction: 0 rows, 1 acknowledged")
        })
        .unwrap_or_else(|| panic!("{out}"));
    assert_eq!(lost["kind"], "cut", "{out}");
    let first = &lost["ops"][0];
    assert_eq!(first["role"], "lost");
    assert_eq!(first["op"], "unlink db-journal", "{out}");
    assert_eq!(
        lost["models"],
        serde_json::json!(["strict", "ext4-ordered"])
    );
}

#[test]
fn sqlite_delete_extra_is_clean() {
    let Some((code, r, out)) = sqlite("DELETE", "EXTRA", "400") else {
        return;
    };
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(r["verdict"], "clean", "{out}");
    assert_eq!(r["complete"], true, "{out}");
}

#[test]
fn sqlite_wal_full_is_clean() {
    let Some((code, r, out)) = sqlite("WAL", "FULL", "400") else {
        return;
    };
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(r["verdict"], "clean", "{out}");
    assert_eq!(r["complete"], true, "{out}");
}

#[test]
fn sqlite_synchronous_off_is_found() {
    let Some((code, r, out)) = sqlite("DELETE", "OFF", "100") else {
        return;
    };
    assert_eq!(code, Some(1), "{out}");
    assert_eq!(r["verdict"], "vulnerable");
    // Without fsync the journal's writes can be lost while the database's persisted.
    let errors: Vec<&str> = r["vulnerabilities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["error"].as_str().unwrap())
        .collect();
    assert!(
        errors.iter().any(|e| e.contains("integrity check")
            || e.contains("malformed")
            || e.contains("lost a committed")),
        "{out}"
    );
}

/// mdb_load (LMDB: data pages written then fdatasync'd, meta pages through an O_DSYNC
/// descriptor) of one key per run, two runs, each acknowledged; lock.mdb, runtime state
/// LMDB rebuilds, removed at the end.
const LMDB: &str = r#"
d=$1; env=$d/env
last() { grep -a -E '^[0-9]+$' "$d/acked" | tail -n 1; }
if [ -e "$d/acked" ]; then
  a=$(last)
  i=1
  while [ $i -le "${a:-0}" ]; do
    mdb_dump -p -s main "$env" >/dev/null 2>&1 || true
    mdb_dump -p "$env" 2>&1 | grep -q "^ k$i\$" || { echo "lost acknowledged key k$i" >&2; exit 1; }
    i=$((i+1))
  done
  echo ready; exec sleep 1000
fi
rm -rf "$env"; mkdir "$env"
: > "$d/acked"; sync
for i in 1 2; do
  printf 'k%s\nv%s\n' $i $i | mdb_load -T "$env"
  echo $i >> "$d/acked"
done
rm -f "$env/lock.mdb"
echo ready; exec sleep 1000
"#;

#[test]
fn lmdb_mdb_load_is_clean() {
    if !ordeal_test_support::installed(&["mdb_load", "mdb_dump"], "lmdb-utils") {
        return;
    }
    let (code, r, out) = crash(&sh_node(LMDB, &[]), "300");
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(r["verdict"], "clean", "{out}");
    assert_eq!(r["model"], "ext4-ordered");
    assert_eq!(r["complete"], true, "{out}");
    // LMDB never fsyncs the directory it creates its files in: only a file system that
    // persists no name without it (strict POSIX) loses them.
    for v in r["vulnerabilities"].as_array().unwrap() {
        assert_eq!(v["models"], serde_json::json!(["strict"]), "{out}");
        assert_eq!(v["kind"], "cut", "{out}");
        assert!(
            v["ops"][0]["op"]
                .as_str()
                .unwrap()
                .starts_with("create env/"),
            "{out}"
        );
    }
}

#[test]
fn a_shared_mapping_written_back_by_msync_is_followed() {
    // The range's bytes are read at the msync: the model ends where the real directory does.
    let (code, r, out) = crash(&c_node("mapper", "msync"), "50");
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(r["verdict"], "clean", "{out}");
    // create m, truncate to 4096, fsync dir, msync's write and its return.
    assert_eq!(r["operations"], 5, "{out}");
}

#[test]
fn a_change_the_tracer_does_not_see_makes_the_verdict_unknown() {
    // Written through a shared mapping and never msync'd: the model's final `m` is zeros,
    // the real one not.
    let (code, r, out) = crash(&c_node("mapper", "none"), "50");
    assert_eq!(code, Some(3), "{out}");
    assert_eq!(r["verdict"], "unknown", "{out}");
    assert_eq!(r["vulnerabilities"], serde_json::json!([]));
    let why = r["unknown"].as_str().unwrap();
    assert!(
        why.starts_with("the model's final state differs from the real final directory ")
            && why.contains(
                ": m: contents differ (4096 bytes in the model, 4096 in the real directory)"
            ),
        "{why}"
    );
    assert!(
        out.contains("verdict unknown: the model's final state differs"),
        "{out}"
    );
}

#[test]
fn a_mapping_written_after_its_last_msync_is_named_in_the_unknown_verdict() {
    // msync'd once (those bytes are known), then written again through the mapping: the
    // model cannot know the second write's bytes, nor when the kernel wrote them back.
    let (code, r, out) = crash(&c_node("mapper", "late"), "50");
    assert_eq!(code, Some(3), "{out}");
    assert_eq!(r["vulnerabilities"], serde_json::json!([]));
    let why = r["unknown"].as_str().unwrap();
    assert!(
        why.contains(": m: contents differ (4096 bytes in the model, 4096 in the real directory) (m is mapped shared: written through the mapping after its last msync (seq "),
        "{why}"
    );
    assert!(why.ends_with("), bytes no call shows)"), "{why}");
}

#[test]
fn a_recovery_check_failing_on_the_real_final_state_makes_the_verdict_unknown() {
    // The node refuses any data dir it wrote before: nothing can recover, so nothing is the
    // program's crash-consistency's fault.
    let script = r#"
[ -e "$1/x" ] && { echo "refusing an existing x" >&2; exit 1; }
echo hello > "$1/x"
echo ready; exec sleep 1000
"#;
    let (code, r, out) = crash(&sh_node(script, &[]), "50");
    assert_eq!(code, Some(3), "{out}");
    let why = r["unknown"].as_str().unwrap();
    assert!(
        why.starts_with("the recovery check fails on the real final state, with nothing lost (")
            && why.contains("refusing an existing x"),
        "{why}"
    );
    assert_eq!(r["checked"], 1);
}

#[test]
fn a_node_that_writes_nothing_or_dies_is_an_error() {
    let (code, _, out) = crash(&sh_node("echo ready; exec sleep 1000", &[]), "50");
    assert_eq!(code, Some(2), "{out}");
    assert!(
        out.contains("no process made a file operation in node db's data dir ")
            && out.contains("there is nothing to crash"),
        "{out}"
    );
    let (code, _, out) = crash(&sh_node("echo x > $1/x; exit 3", &[]), "50");
    assert_eq!(code, Some(2), "{out}");
    assert!(
        out.contains(
            "the recording is not usable: node db exited before it was ready: exit 3 (see "
        ) && out.contains(
            "crash states of a target that died or failed during the run are not searched"
        ),
        "{out}"
    );
}

#[test]
fn links_symlinks_and_fallocate_are_followed_to_the_real_final_directory() {
    if !ordeal_test_support::installed(&["fallocate", "ln"], "util-linux coreutils") {
        return;
    }
    let script = "d=$1; [ -e $d/done ] && { echo ready; exec sleep 1000; }; cd $d; \
                  echo hello > a; ln -s a s; ln -s /etc/hostname abs; ln a h; \
                  fallocate -l 8192 f; fallocate -p -o 0 -l 10 h; echo > done; sync; \
                  echo ready; exec sleep 1000";
    let (code, r, out, _dir) = crash_kept(&sh_node(script, &[]), "100", None);
    // The self-check passed: the model's final tree is the real one (a hole punched through
    // the hard link shows in both names, symlinks hold their text as written).
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(r["verdict"], "clean", "{out}");
    let run = Path::new(r["run_dir"].as_str().unwrap());
    let trace = std::fs::read_to_string(run.join("trace.jsonl")).unwrap();
    let calls: Vec<serde_json::Value> = trace
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["node"] == "db" && e["class"] == "file")
        .collect();
    let symlinks: Vec<&str> = calls
        .iter()
        .filter(|e| e["call"] == "symlinkat" || e["call"] == "symlink")
        .map(|e| e["path2"].as_str().unwrap())
        .collect();
    assert_eq!(symlinks, ["a", "/etc/hostname"]);
    let punch = calls
        .iter()
        .find(|e| e["call"] == "fallocate" && e["flags"].is_string())
        .unwrap();
    assert_eq!(punch["flags"], "FALLOC_FL_KEEP_SIZE|FALLOC_FL_PUNCH_HOLE");
    assert_eq!((&punch["pos"], &punch["len"]), (&0.into(), &10.into()));
    assert!(calls
        .iter()
        .any(|e| (e["call"] == "linkat" || e["call"] == "link")
            && e["path2"].as_str().unwrap().ends_with("/h")));
}

/// Five records, each saved through a temp file of its own (`.rec-N.PID.tmp`) renamed to
/// `rec-N`, never fsync'd; a start on a crash state checks every record there is whole.
const TEMPS: &str = r#"
d=$1
for f in "$d"/rec-*; do
  [ -e "$f" ] || continue
  n=${f##*/rec-}
  [ "$(cat "$f")" = "record $n" ] || { echo "corrupt $f: $(wc -c < "$f") bytes" >&2; exit 1; }
done
if [ ! -e "$d/rec-5" ]; then
  for i in 1 2 3 4 5; do
    t="$d/.rec-$i.$$.tmp"
    printf 'record %s' $i > "$t"
    mv "$t" "$d/rec-$i"
  done
fi
echo ready; exec sleep 1000
"#;

#[test]
fn many_temp_files_renamed_without_fsync_are_one_finding_per_root_cause() {
    let (code, r, out, _dir) = crash_kept(&sh_node(TEMPS, &[]), "300", None);
    assert_eq!(code, Some(1), "{out}");
    assert_eq!(r["verdict"], "vulnerable", "{out}");
    assert_eq!(r["complete"], true, "{out}");
    let v = r["vulnerabilities"].as_array().unwrap();
    let causes: Vec<&str> = v.iter().map(|v| v["cause"].as_str().unwrap()).collect();
    // Five files, five lost writes, five torn ones: one cause each, names as patterns.
    assert_eq!(
        causes,
        [
            "data written to .rec-*.*.tmp not persisted before the rename that publishes it as rec-* (no fsync of the file before the rename)",
            "data written to .rec-*.*.tmp persisted only in part before the rename that publishes it as rec-* (no fsync of the file before the rename)",
        ],
        "{out}"
    );
    // Every record's lost write is a failing state of the first; its example is one of them,
    // minimal: one write lost, its rename persisted.
    assert!(v[0]["states"].as_u64().unwrap() >= 5, "{out}");
    assert_eq!(v[0]["kind"], "lost", "{out}");
    let example = &blamed(&r)[0];
    assert_eq!(example.len(), 2, "{out}");
    assert!(example[0].starts_with("lost write .rec-"), "{out}");
    assert!(example[1].starts_with("persisted rename .rec-"), "{out}");
    assert!(v[0]["error"].as_str().unwrap().contains("bytes"), "{out}");
    assert_eq!(
        v[0]["models"],
        serde_json::json!(["strict", "ext4-ordered"]),
        "{out}"
    );
    assert!(
        out.contains(&format!("vulnerability 1 (Lost, {} states, strict and ext4-ordered): data written to .rec-*.*.tmp not persisted", v[0]["states"])),
        "{out}"
    );
    assert!(
        Path::new(v[0]["example"].as_str().unwrap())
            .join("data/db")
            .is_dir(),
        "{out}"
    );
}

/// `ordeal crash --workload w` of an experiment whose node `db` only holds the data dir
/// (`sleep`) while workload `w` runs `script` (`$1`: the data dir, `$0`: ordeal) and exits;
/// `[crash] check` runs `check` (`$1`: the crash state's data dir) on each crash state.
fn crash_workload(
    script: &str,
    check: &str,
    budget: &str,
) -> (Option<i32>, serde_json::Value, String, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let exp = dir.path().join("exp.toml");
    let ordeal = env!("CARGO_BIN_EXE_ordeal");
    let sh = |s: &str| s.replace('{', "{{").replace('}', "}}");
    std::fs::write(
        &exp,
        format!(
            "name = \"wl\"\ntimeout = \"60s\"\n[[node]]\nname = \"db\"\nargv = [\"sleep\", \"1000\"]\ndata_dir = true\n\
             [[workload]]\nname = \"w\"\nargv = [\"sh\", \"-c\", {:?}, {ordeal:?}, \"{{data_dir.db}}\"]\n\
             [crash]\ncheck = [\"sh\", \"-c\", {:?}, \"sh\", \"{{data_dir.db}}\"]\n",
            sh(script),
            sh(check)
        ),
    )
    .unwrap();
    let out = dir.path().join("run");
    let o = Command::new(env!("CARGO_BIN_EXE_ordeal"))
        .args(["crash", exp.to_str().unwrap(), "--workload", "w"])
        .args(["--out", out.to_str().unwrap(), "-q", "--budget", budget])
        .output()
        .unwrap();
    let report = std::fs::read(out.join("crash.json"))
        .map(|b| serde_json::from_slice(&b).unwrap())
        .unwrap_or(serde_json::Value::Null);
    (o.status.code(), report, text(&o), dir)
}

/// A sqlite3 script: one transaction committed, said on stdout, then a checkpoint
/// `committed`; the check wants an intact database and, once the commit was promised (on
/// stdout, or by the checkpoint), the row.
const SQLITE_SCRIPT: &str = r#"
d=$1
sqlite3 "$d/db" "PRAGMA journal_mode=$2; PRAGMA synchronous=$3; CREATE TABLE t(x); INSERT INTO t VALUES (42);" >/dev/null
echo committed
"$0" checkpoint committed >/dev/null
"#;
const SQLITE_CHECK: &str = r#"
d=$1
promised=
grep -qx committed "$ORDEAL_CRASH_STDOUT" && promised="stdout committed"
[ "$ORDEAL_CRASH_CHECKPOINT" = committed ] && promised="$promised, checkpoint committed"
[ -e "$d/db" ] || { [ -z "$promised" ] && exit 0; echo "db missing after $promised" >&2; exit 1; }
ok=$(sqlite3 "$d/db" "PRAGMA integrity_check;" 2>&1) || { echo "sqlite3: $ok" >&2; exit 1; }
[ "$ok" = ok ] || { echo "integrity check: $ok" >&2; exit 1; }
[ -n "$promised" ] || exit 0
n=$(sqlite3 "$d/db" "SELECT count(*) FROM t WHERE x = 42;" 2>&1)
[ "$n" = 1 ] || { echo "lost a committed transaction: $n rows after $promised" >&2; exit 1; }
"#;

#[test]
fn a_sqlite3_script_run_as_a_workload_is_the_target() {
    if !ordeal_test_support::installed(&["sqlite3"], "sqlite3") {
        return;
    }
    let wal = SQLITE_SCRIPT.replace("$2", "WAL").replace("$3", "FULL");
    let (code, r, out, _dir) = crash_workload(&wal, SQLITE_CHECK, "300");
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(r["verdict"], "clean", "{out}");
    assert_eq!(r["workload"], "w", "{out}");
    assert_eq!(r["node"], "db", "{out}");
    assert_eq!(r["complete"], true, "{out}");

    // synchronous=OFF: nothing synced before the checkpoint promised the row.
    let off = SQLITE_SCRIPT.replace("$2", "DELETE").replace("$3", "OFF");
    let (code, r, out, _dir) = crash_workload(&off, SQLITE_CHECK, "300");
    assert_eq!(code, Some(1), "{out}");
    assert_eq!(r["verdict"], "vulnerable", "{out}");
    let errors: Vec<&str> = r["vulnerabilities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["error"].as_str().unwrap())
        .collect();
    // The commit was promised on stdout and by the checkpoint: both reach the check.
    assert!(
        errors
            .iter()
            .any(|e| e.contains("after stdout committed, checkpoint committed")),
        "{out}"
    );
    // The stdout up to the crash point is in the kept state's directory.
    let lost = r["vulnerabilities"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| {
            v["error"]
                .as_str()
                .unwrap()
                .contains("after stdout committed")
        })
        .unwrap();
    let example = Path::new(lost["example"].as_str().unwrap());
    assert_eq!(
        std::fs::read_to_string(example.join("crash-stdout")).unwrap(),
        "committed\n"
    );
}

/// `git init`, `git add`, `git commit` in the data dir, then a checkpoint `committed`; the
/// check wants, once `committed` was promised, the commit's file and a repository `git fsck`
/// finds whole.
const GIT_SCRIPT: &str = r#"
export GIT_CONFIG_GLOBAL=/dev/null GIT_CONFIG_NOSYSTEM=1
cd "$1" || exit 1
git init -q .
printf 'hello\n' > a.txt
git add a.txt
git -c user.name=t -c user.email=t@example.com commit -q -m first
"$0" checkpoint committed >/dev/null
"#;
const GIT_CHECK: &str = r#"
export GIT_CONFIG_GLOBAL=/dev/null GIT_CONFIG_NOSYSTEM=1
[ "$ORDEAL_CRASH_CHECKPOINT" = committed ] || exit 0
c=$(git -C "$1" show HEAD:a.txt 2>&1) || { echo "git show HEAD:a.txt after the commit: $c" >&2; exit 1; }
[ "$c" = hello ] || { echo "a.txt is '$c' after the commit" >&2; exit 1; }
f=$(git -C "$1" fsck --no-dangling 2>&1) || { echo "git fsck after the commit: $f" >&2; exit 1; }
"#;

#[test]
fn git_commit_run_as_a_workload_is_searched_without_false_alarm() {
    if !ordeal_test_support::installed(&["git"], "git") {
        return;
    }
    let (code, r, out, _dir) = crash_workload(GIT_SCRIPT, GIT_CHECK, "300");
    // The self-checks hold (every call followed, the model's final directory is the real
    // one, the check passes on it): a verdict, not `unknown`. Default git fsyncs neither its
    // lock files before renaming them nor a directory: honest findings.
    assert_eq!(code, Some(1), "{out}");
    assert_eq!(r["verdict"], "vulnerable", "{out}");
    assert!(r.get("unknown").is_none(), "{out}");
    let v = r["vulnerabilities"].as_array().unwrap();
    // Nothing was promised before the checkpoint: every failure is of a state after it.
    for x in v {
        assert!(
            x["error"].as_str().unwrap().contains("after the commit"),
            "{out}"
        );
    }
    // The three objects (blob, tree, commit), each through its own tmp_obj_XXXXXX linked
    // into its own fan-out directory: one finding.
    let objects: Vec<&serde_json::Value> = v
        .iter()
        .filter(|x| x["cause"].as_str().unwrap().contains("tmp_obj_"))
        .filter(|x| x["kind"] == "lost")
        .collect();
    assert_eq!(objects.len(), 1, "{out}");
    assert_eq!(
        objects[0]["cause"],
        "data written to .git/objects/*/tmp_obj_* not persisted before the link that publishes it as .git/objects/*/* (no fsync of the file before the link)"
    );
    assert!(objects[0]["states"].as_u64().unwrap() >= 3, "{out}");
    // Every lost directory update at the end is one finding: the latest whose loss fails.
    let cuts: Vec<&str> = v
        .iter()
        .filter(|x| x["kind"] == "cut")
        .map(|x| x["cause"].as_str().unwrap())
        .collect();
    assert_eq!(
        cuts,
        ["the rename .git/refs/heads/master.lock → .git/refs/heads/master not persisted: no fsync of its directory .git/refs/heads after it"],
        "{out}"
    );
    // One finding per cause.
    let mut causes: Vec<&str> = v.iter().map(|x| x["cause"].as_str().unwrap()).collect();
    causes.sort_unstable();
    causes.dedup();
    assert_eq!(causes.len(), v.len(), "{out}");
}
