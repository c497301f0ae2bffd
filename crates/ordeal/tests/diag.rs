//! Diagnostics end to end: hang verdicts (blocked / busy) with their evidence, snapshots on
//! request with every thread, stacks and socket peers, dumps and their free-space checks.

mod common;
use common::compile;

/// Frame pointers and debug info, so stacks unwind and name the functions.
const C_FLAGS: &[&str] = &["-g", "-O1", "-fno-omit-frame-pointer", "-pthread"];

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn ordeal() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ordeal"))
}

fn text(o: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn json(path: &Path) -> Value {
    let b = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_slice(&b).unwrap()
}

/// An experiment: one node running `prog` (ready when it prints `ready_log`) and a workload
/// that waits, so the run only ends by a hang, a signal or its timeout.
fn hang_exp(dir: &Path, prog: &Path, ready_log: &str, hang: &str) -> PathBuf {
    let p = dir.join("exp.toml");
    std::fs::write(
        &p,
        format!(
            "name = \"diag\"\ntimeout = \"60s\"\nhang_timeout = \"{hang}\"\n\
             [[node]]\nname = \"n\"\nargv = [{:?}]\nready = {{ log = \"{ready_log}\" }}\n\
             [[workload]]\nname = \"wait\"\nargv = [\"sleep\", \"300\"]\n",
            prog.display().to_string()
        ),
    )
    .unwrap();
    p
}

fn snapshot_text(run: &Path, summary: &Value, i: usize) -> String {
    let rel = summary["snapshots"][i]["text"]
        .as_str()
        .expect("a snapshot link");
    std::fs::read_to_string(run.join(rel)).unwrap()
}

fn snapshot_json(run: &Path, summary: &Value, i: usize) -> Value {
    let rel = summary["snapshots"][i]["json"]
        .as_str()
        .expect("a snapshot link");
    json(&run.join(rel))
}

fn threads_of<'a>(snap: &'a Value, node: &str) -> Vec<&'a Value> {
    snap["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["name"] == node)
        .flat_map(|n| n["processes"].as_array().unwrap())
        .flat_map(|p| p["threads"].as_array().unwrap())
        .collect()
}

fn functions(t: &Value) -> Vec<String> {
    t["stack"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["function"].as_str().map(String::from))
        .collect()
}

#[test]
fn deadlocked_threads_make_a_blocked_hang_with_futex_waits_and_stacks() {
    let dir = tempfile::tempdir().unwrap();
    let exp = hang_exp(dir.path(), &compile("deadlock", C_FLAGS), "started", "1s");
    let run = dir.path().join("run");
    let t0 = Instant::now();
    let o = ordeal()
        .args([
            "run",
            exp.to_str().unwrap(),
            "-q",
            "--out",
            run.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(t0.elapsed() < Duration::from_secs(30), "detected late");
    let s = json(&run.join("summary.json"));
    assert_eq!(s["verdict"]["status"], "hung", "{s}");
    let reason = s["verdict"]["reasons"][0].as_str().unwrap();
    assert!(reason.starts_with("hung (blocked)"), "{reason}");
    assert!(reason.contains("FUTEX_WAIT"), "{reason}");
    assert!(text(&o).contains("verdict  HUNG"), "{}", text(&o));
    assert_eq!(s["snapshots"][0]["reason"], "hang");
    let snap = snapshot_json(&run, &s, 0);
    let threads = threads_of(&snap, "n");
    assert_eq!(threads.len(), 3, "{snap}");
    // Both workers wait on a futex (a mutex) from their own function.
    for worker in ["worker_ab", "worker_ba"] {
        let t = threads
            .iter()
            .find(|t| functions(t).iter().any(|f| f == worker))
            .unwrap_or_else(|| panic!("no stack with {worker}: {snap}"));
        assert!(t["syscall"].as_str().unwrap().starts_with("futex("), "{t}");
        assert!(t["futex"].as_u64().is_some(), "{t}");
        let fs = functions(t);
        assert!(
            fs.iter().any(|f| f.contains("pthread_mutex_lock")),
            "{fs:?}"
        );
    }
    let main = threads
        .iter()
        .find(|t| functions(t).iter().any(|f| f == "main"))
        .expect("the main thread's stack reaches main");
    assert!(main["state"].as_str().unwrap().starts_with('S'), "{main}");
    let txt = snapshot_text(&run, &s, 0);
    assert!(txt.contains("worker_ab+0x"), "{txt}");
    assert!(txt.contains("== node n =="), "{txt}");
}

#[test]
fn a_spinning_node_makes_a_busy_hang() {
    let dir = tempfile::tempdir().unwrap();
    let exp = hang_exp(dir.path(), &compile("spin", C_FLAGS), "spinning", "2s");
    let run = dir.path().join("run");
    let o = ordeal()
        .args([
            "run",
            exp.to_str().unwrap(),
            "-q",
            "--out",
            run.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let s = json(&run.join("summary.json"));
    assert_eq!(s["verdict"]["status"], "hung", "{s}");
    let reason = s["verdict"]["reasons"][0].as_str().unwrap();
    assert!(reason.starts_with("hung (busy)"), "{reason}");
    assert!(reason.contains("spinning"), "{reason}");
    let snap = snapshot_json(&run, &s, 0);
    let t = threads_of(&snap, "n")[0];
    assert!(functions(t).iter().any(|f| f == "spin_forever"), "{t}");
}

#[test]
fn hang_detection_can_be_switched_off() {
    let dir = tempfile::tempdir().unwrap();
    let exp = hang_exp(dir.path(), &compile("deadlock", C_FLAGS), "started", "off");
    let text = std::fs::read_to_string(&exp)
        .unwrap()
        .replace("timeout = \"60s\"", "timeout = \"3s\"");
    std::fs::write(&exp, text).unwrap();
    let run = dir.path().join("run");
    let o = ordeal()
        .args([
            "run",
            exp.to_str().unwrap(),
            "-q",
            "--out",
            run.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let s = json(&run.join("summary.json"));
    assert_eq!(o.status.code(), Some(1));
    // A plain timeout, and a failure snapshot of what was still running.
    assert_eq!(s["verdict"]["status"], "fail", "{s}");
    assert!(s["verdict"]["reasons"][0]
        .as_str()
        .unwrap()
        .starts_with("timeout"));
    assert_eq!(s["snapshots"][0]["reason"], "failure", "{s}");
}

/// A run in the background, ended by SIGTERM.
struct Bg {
    child: Child,
    run: PathBuf,
}

impl Bg {
    fn start(exp: &Path, run: &Path, extra: &[&str]) -> Bg {
        let child = ordeal()
            .args([
                "run",
                exp.to_str().unwrap(),
                "-q",
                "--out",
                run.to_str().unwrap(),
            ])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(run.with_extension("stderr")).unwrap())
            .spawn()
            .unwrap();
        Bg {
            child,
            run: run.to_path_buf(),
        }
    }

    /// Waits (bounded) until `log` of the run contains `needle`.
    fn wait_log(&self, log: &str, needle: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let p = self.run.join("logs").join(log);
        while !std::fs::read_to_string(&p).is_ok_and(|t| t.contains(needle)) {
            assert!(
                Instant::now() < deadline,
                "{} never said {needle}; ordeal: {}",
                p.display(),
                std::fs::read_to_string(self.run.with_extension("stderr")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn snapshot(&self) -> Value {
        let o = ordeal()
            .args(["snapshot", self.run.to_str().unwrap(), "--label", "test"])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", text(&o));
        let txt = PathBuf::from(String::from_utf8_lossy(&o.stdout).trim());
        assert!(txt.exists(), "{}", txt.display());
        json(&txt.with_extension("json"))
    }

    fn stop(mut self) -> Value {
        // SAFETY: SIGTERM to our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                assert_eq!(st.code(), Some(130));
                break;
            }
            assert!(Instant::now() < deadline, "ordeal did not stop");
            std::thread::sleep(Duration::from_millis(20));
        }
        json(&self.run.join("summary.json"))
    }
}

impl Drop for Bg {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn pair_exp(dir: &Path) -> PathBuf {
    let pair = compile("pair", C_FLAGS);
    let dl = compile("deadlock", C_FLAGS);
    let p = dir.join("pair.toml");
    std::fs::write(
        &p,
        format!(
            "name = \"pair\"\ntimeout = \"60s\"\nhang_timeout = \"off\"\n\
             [[node]]\nname = \"srv\"\nargv = [{pair:?}, \"server\", \"{{port.srv}}\"]\n\
             ready = {{ tcp = \"127.0.0.1:{{port.srv}}\" }}\n\
             [[node]]\nname = \"cli\"\nargv = [{pair:?}, \"client\", \"{{port.srv}}\"]\n\
             ready = {{ log = \"connected\" }}\n\
             [[node]]\nname = \"dl\"\nargv = [{dl:?}]\nready = {{ log = \"started\" }}\n\
             [[workload]]\nname = \"wait\"\nargv = [\"sleep\", \"300\"]\n",
            pair = pair.display().to_string(),
            dl = dl.display().to_string(),
        ),
    )
    .unwrap();
    p
}

fn socket_peers(snap: &Value, node: &str) -> Vec<(String, String)> {
    snap["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["name"] == node)
        .flat_map(|n| n["processes"].as_array().unwrap())
        .flat_map(|p| p["fds"].as_array().unwrap())
        .filter_map(|f| {
            let s = f.get("socket")?;
            Some((
                s["state"].as_str().unwrap_or("").to_string(),
                s["peer_node"].as_str().unwrap_or("").to_string(),
            ))
        })
        .collect()
}

#[test]
fn snapshot_on_request_has_every_thread_stacks_and_socket_peers() {
    let dir = tempfile::tempdir().unwrap();
    let exp = pair_exp(dir.path());
    let bg = Bg::start(&exp, &dir.path().join("run"), &[]);
    bg.wait_log("cli.stdout", "connected");
    bg.wait_log("dl.stdout", "started");
    // The workload starts once every node is ready.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !bg.run.join("logs/wait.stderr").exists() {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(20));
    }
    let snap = bg.snapshot();
    assert_eq!(snap["reason"], "request");
    assert_eq!(snap["detail"], "test");
    // Every thread of the deadlocked node, each with a stack, the same tids as /proc.
    let dl_pid = snap["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == "dl")
        .unwrap()["processes"][0]["pid"]
        .as_i64()
        .unwrap();
    let mut proc_tids: Vec<i64> = std::fs::read_dir(format!("/proc/{dl_pid}/task"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().parse().unwrap())
        .collect();
    proc_tids.sort();
    let threads = threads_of(&snap, "dl");
    let tids: Vec<i64> = threads.iter().map(|t| t["tid"].as_i64().unwrap()).collect();
    assert_eq!(tids, proc_tids);
    for t in &threads {
        assert!(t["regs"]["rip"].as_u64().is_some(), "{t}");
        assert!(!functions(t).is_empty(), "{t}");
    }
    // The two ends of the connection name each other; the listener has no peer.
    let srv = socket_peers(&snap, "srv");
    assert!(
        srv.contains(&("ESTABLISHED".into(), "cli".into())),
        "{srv:?}"
    );
    assert!(srv.contains(&("LISTEN".into(), "".into())), "{srv:?}");
    assert_eq!(
        socket_peers(&snap, "cli"),
        vec![("ESTABLISHED".into(), "srv".into())]
    );
    // Blocked in read, from ordeal's own tracer state and from /proc.
    let cli = &threads_of(&snap, "cli")[0];
    assert!(
        cli["syscall"].as_str().unwrap().starts_with("read(fd 3"),
        "{cli}"
    );
    assert_eq!(cli["in_traced_call"], "read fd 3");
    assert!(functions(cli).iter().any(|f| f == "hold"), "{cli}");
    assert!(snap["max_pause_us"].as_u64().unwrap() < 1_000_000);
    // The nodes run on after the snapshot (the client still holds its connection).
    let s = bg.stop();
    assert_eq!(s["verdict"]["status"], "error");
    assert_eq!(s["snapshots"][0]["reason"], "request");
}

/// ELF64 core facts: (type, PT_LOAD count, NT_PRSTATUS count, bytes of PT_LOAD data).
fn core_facts(path: &Path) -> (u16, usize, usize, u64) {
    let b = std::fs::read(path).unwrap();
    assert_eq!(&b[..4], b"\x7fELF");
    assert_eq!(b[4], 2, "ELFCLASS64");
    let u16_at = |o: usize| u16::from_le_bytes(b[o..o + 2].try_into().unwrap());
    let u32_at = |o: usize| u32::from_le_bytes(b[o..o + 4].try_into().unwrap());
    let u64_at = |o: usize| u64::from_le_bytes(b[o..o + 8].try_into().unwrap());
    let ty = u16_at(16);
    let phoff = u64_at(32) as usize;
    let phnum = u16_at(56) as usize;
    let (mut loads, mut prstatus, mut bytes) = (0, 0, 0);
    for i in 0..phnum {
        let ph = phoff + i * 56;
        match u32_at(ph) {
            1 => {
                loads += 1;
                bytes += u64_at(ph + 32);
            }
            4 => {
                let (off, size) = (u64_at(ph + 8) as usize, u64_at(ph + 32) as usize);
                let mut p = off;
                while p + 12 <= off + size {
                    let (namesz, descsz, nty) = (u32_at(p), u32_at(p + 4), u32_at(p + 8));
                    if nty == 1 {
                        prstatus += 1;
                    }
                    p += 12 + (namesz as usize).div_ceil(4) * 4 + (descsz as usize).div_ceil(4) * 4;
                }
            }
            _ => {}
        }
    }
    (ty, loads, prstatus, bytes)
}

#[test]
fn dumps_go_only_to_the_dump_dir_and_cores_are_readable() {
    let dir = tempfile::tempdir().unwrap();
    let dumps = dir.path().join("dumps");
    std::fs::create_dir(&dumps).unwrap();
    let exp = pair_exp(dir.path());
    let bg = Bg::start(
        &exp,
        &dir.path().join("run"),
        &[
            "--dump-dir",
            dumps.to_str().unwrap(),
            "--dump",
            "core",
            "--dump-reserve",
            "0",
        ],
    );
    bg.wait_log("cli.stdout", "connected");
    bg.wait_log("dl.stdout", "started");
    let snap = bg.snapshot();
    let recs = snap["dumps"].as_array().unwrap();
    assert!(!recs.is_empty(), "{snap}");
    let dl = recs
        .iter()
        .find(|r| r["node"] == "dl")
        .expect("a dump of dl");
    assert!(dl["refused"].is_null(), "{dl}");
    let path = PathBuf::from(dl["path"].as_str().unwrap());
    assert!(path.starts_with(&dumps), "{}", path.display());
    let (ty, loads, prstatus, bytes) = core_facts(&path);
    assert_eq!(ty, 4, "ET_CORE");
    assert_eq!(prstatus, 3, "one NT_PRSTATUS per thread");
    assert!(loads > 5, "{loads} PT_LOAD");
    assert!(bytes > 0 && bytes <= dl["written_bytes"].as_u64().unwrap());
    assert!(dl["pause_ms"].as_f64().unwrap() > 0.0);
    // The process runs on after its dump (SIGCONT): the client still answers a snapshot.
    let again = bg.snapshot();
    let cli = &threads_of(&again, "cli")[0];
    assert!(cli["state"].as_str().unwrap().starts_with('S'), "{cli}");
    // Nothing but the dumps in the dump dir.
    for e in std::fs::read_dir(&dumps).unwrap() {
        let n = e.unwrap().file_name().to_string_lossy().into_owned();
        assert!(n.ends_with(".core"), "{n}");
    }
    bg.stop();
}

#[test]
fn dumps_over_the_cap_are_refused_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let dumps = dir.path().join("dumps");
    std::fs::create_dir(&dumps).unwrap();
    let exp = hang_exp(dir.path(), &compile("deadlock", C_FLAGS), "started", "1s");
    let run = dir.path().join("run");
    let o = ordeal()
        .args([
            "run",
            exp.to_str().unwrap(),
            "-q",
            "--out",
            run.to_str().unwrap(),
        ])
        .args(["--dump-dir", dumps.to_str().unwrap(), "--dump-cap", "4K"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let s = json(&run.join("summary.json"));
    let links = s["snapshots"][0]["dumps"].as_array().unwrap();
    assert!(!links.is_empty());
    for l in links {
        let l = l.as_str().unwrap();
        assert!(l.contains("not written") && l.contains("cap"), "{l}");
    }
    let snap = snapshot_json(&run, &s, 0);
    for d in snap["dumps"].as_array().unwrap() {
        assert!(d["path"].is_null());
        assert!(d["refused"]
            .as_str()
            .unwrap()
            .contains("exceeds the dump size cap"));
    }
    assert_eq!(std::fs::read_dir(&dumps).unwrap().count(), 0);
}

#[test]
fn etcd_thread_stacks_are_symbolized_from_gopclntab() {
    if !ordeal_test_support::installed(&["etcd"], "etcd-server") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let exp = dir.path().join("etcd.toml");
    std::fs::write(
        &exp,
        "name = \"etcd1\"\ntimeout = \"60s\"\nhang_timeout = \"off\"\n[[node]]\nname = \"e1\"\n\
         argv = [\"etcd\", \"--name\", \"e1\", \"--data-dir\", \"{data_dir.e1}\", \
         \"--listen-client-urls\", \"http://127.0.0.1:{port.e1}\", \
         \"--advertise-client-urls\", \"http://127.0.0.1:{port.e1}\", \
         \"--listen-peer-urls\", \"http://127.0.0.1:{port.e1peer}\", \
         \"--initial-advertise-peer-urls\", \"http://127.0.0.1:{port.e1peer}\", \
         \"--initial-cluster\", \"e1=http://127.0.0.1:{port.e1peer}\"]\n\
         data_dir = true\nready = { tcp = \"127.0.0.1:{port.e1}\" }\n\
         [[workload]]\nname = \"wait\"\nargv = [\"sleep\", \"300\"]\n",
    )
    .unwrap();
    let bg = Bg::start(&exp, &dir.path().join("run"), &[]);
    bg.wait_log("e1.stderr", "ready to serve client requests");
    let snap = bg.snapshot();
    let threads = threads_of(&snap, "e1");
    assert!(threads.len() > 3, "{}", threads.len());
    let mut runtime = 0;
    for t in &threads {
        assert!(!t["stack"].as_array().unwrap().is_empty(), "{t}");
        if functions(t).iter().any(|f| f.starts_with("runtime.")) {
            runtime += 1;
        }
    }
    // Every Go thread sits in the runtime's scheduler or sysmon.
    assert_eq!(runtime, threads.len(), "{snap}");
    let modules = snap["nodes"][0]["processes"][0]["modules"]
        .as_array()
        .unwrap();
    let etcd = modules
        .iter()
        .find(|m| m["path"].as_str().unwrap().ends_with("/etcd"))
        .unwrap();
    assert!(
        matches!(etcd["source"].as_str(), Some("gopclntab") | Some("symtab")),
        "{etcd}"
    );
    bg.stop();
}

#[test]
fn a_snapshot_fault_snapshots_every_node_at_its_time() {
    let dir = tempfile::tempdir().unwrap();
    let exp = pair_exp(dir.path());
    let body = std::fs::read_to_string(&exp)
        .unwrap()
        .replace("argv = [\"sleep\", \"300\"]", "argv = [\"sleep\", \"1\"]");
    std::fs::write(&exp, body).unwrap();
    let sched = dir.path().join("faults.toml");
    std::fs::write(
        &sched,
        "[[fault]]\nname = \"look\"\nkind = \"snapshot\"\ntrigger = { after = \"300ms\" }\n",
    )
    .unwrap();
    let run = dir.path().join("run");
    let o = ordeal()
        .args([
            "run",
            exp.to_str().unwrap(),
            "-q",
            "--out",
            run.to_str().unwrap(),
        ])
        .args(["--faults", sched.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let s = json(&run.join("summary.json"));
    assert_eq!(s["snapshots"][0]["reason"], "schedule", "{s}");
    let snap = snapshot_json(&run, &s, 0);
    assert_eq!(snap["detail"], "look");
    assert_eq!(threads_of(&snap, "dl").len(), 3);
    let applied = std::fs::read_to_string(run.join("schedule.applied.toml")).unwrap();
    assert!(applied.contains("fired = true"), "{applied}");
}

#[test]
fn redis_thread_stacks_name_its_event_loop() {
    if !ordeal_test_support::installed(&["redis-server"], "redis-server") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let exp = dir.path().join("redis.toml");
    std::fs::write(
        &exp,
        "name = \"redis1\"\ntimeout = \"60s\"\nhang_timeout = \"off\"\n[[node]]\nname = \"r1\"\n\
         argv = [\"redis-server\", \"--port\", \"{port.r1}\", \"--save\", \"\", \
         \"--appendonly\", \"no\", \"--dir\", \"{data_dir.r1}\"]\n\
         data_dir = true\nready = { tcp = \"127.0.0.1:{port.r1}\" }\n\
         [[workload]]\nname = \"wait\"\nargv = [\"sleep\", \"300\"]\n",
    )
    .unwrap();
    let bg = Bg::start(&exp, &dir.path().join("run"), &[]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !bg.run.join("logs/wait.stderr").exists() {
        assert!(Instant::now() < deadline, "redis never got ready");
        std::thread::sleep(Duration::from_millis(20));
    }
    let snap = bg.snapshot();
    let threads = threads_of(&snap, "r1");
    assert!(threads.len() >= 2, "{snap}");
    for t in &threads {
        assert!(!t["stack"].as_array().unwrap().is_empty(), "{t}");
    }
    // Debian's redis-server exports its functions (-rdynamic, for its own crash reports).
    let main = threads
        .iter()
        .find(|t| t["name"] == "redis-server")
        .unwrap();
    assert!(
        functions(main).iter().any(|f| f == "aeMain"),
        "{:?}",
        functions(main)
    );
    bg.stop();
}
