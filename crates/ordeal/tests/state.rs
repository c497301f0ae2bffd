//! `ordeal state capture|diff`, `ordeal checkpoint` and `ordeal watch`: exit codes and output.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;

fn ordeal(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ordeal"))
        .args(args)
        .env_remove(ordeal_state::service::ENV)
        .output()
        .expect("ordeal runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn tree(root: &Path) {
    std::fs::create_dir_all(root.join("wal")).unwrap();
    std::fs::write(root.join("kv.db"), b"key=1\n").unwrap();
    std::fs::write(root.join("wal/0001"), b"put key 1\n").unwrap();
    std::fs::set_permissions(root.join("kv.db"), std::fs::Permissions::from_mode(0o644)).unwrap();
}

#[test]
fn capture_then_diff_exit_codes_and_exact_lines() {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    tree(&data);
    let cap = t.path().join("a.json");

    let out = ordeal(&["state", "capture", s(&data), "-o", s(&cap)]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.starts_with(&format!(
            "{}: 4 entries, 2 files, 16 bytes in ",
            data.display()
        )),
        "{stdout}"
    );
    let file: serde_json::Value = serde_json::from_slice(&std::fs::read(&cap).unwrap()).unwrap();
    assert_eq!(file["format"], "ordeal-state");
    assert_eq!(file["version"], 1);
    assert_eq!(file["entries"][1]["path"], "kv.db");
    assert_eq!(file["entries"][1]["mode"], "0644");

    // Same state: exit 0, nothing on stdout.
    let out = ordeal(&["state", "diff", s(&cap), s(&data)]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "");
    assert_eq!(text(&out.stderr), "no differences\n");

    // Same size, different content; a mode change; a file gone; a file added.
    std::fs::write(data.join("kv.db"), b"key=2\n").unwrap();
    std::fs::set_permissions(data.join("kv.db"), std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::remove_file(data.join("wal/0001")).unwrap();
    std::fs::write(data.join("wal/0002"), b"x").unwrap();
    let out = ordeal(&["state", "diff", s(&cap), s(&data)]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let h = |b: &[u8]| blake3_hex(b);
    assert_eq!(
        text(&out.stdout),
        format!(
            "content  kv.db  {}… → {}…\nmode     kv.db  0644 → 0600\nmissing  wal/0001  (file)\nextra    wal/0002  (file)\n",
            &h(b"key=1\n")[..16],
            &h(b"key=2\n")[..16]
        )
    );
    assert_eq!(text(&out.stderr), "4 differences\n");

    let out = ordeal(&["state", "diff", "--json", s(&cap), s(&data)]);
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["same"], false);
    assert_eq!(
        v["differences"][2],
        serde_json::json!({"path": "wal/0001", "change": "missing", "kind": "file", "beneath": 0})
    );

    // Two directories.
    let other = t.path().join("other");
    tree(&other);
    let out = ordeal(&["state", "diff", s(&other), s(&other)]);
    assert_eq!(out.status.code(), Some(0));
}

/// The blake3 of some bytes, through the library (the CLI test does not re-implement it).
fn blake3_hex(b: &[u8]) -> String {
    let t = tempfile::tempdir().unwrap();
    std::fs::write(t.path().join("f"), b).unwrap();
    ordeal_state::capture::hash_file(&t.path().join("f"))
        .unwrap()
        .to_hex()
        .to_string()
}

#[test]
fn ignore_globs_recorded_in_a_capture_apply_to_the_directory_side() {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    tree(&data);
    let cap = t.path().join("a.json");
    let out = ordeal(&[
        "state",
        "capture",
        s(&data),
        "-o",
        s(&cap),
        "--ignore",
        "*.log",
        "--ignore",
        "wal/**",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    std::fs::write(data.join("server.log"), b"noise").unwrap();
    std::fs::write(data.join("wal/0002"), b"noise").unwrap();
    let out = ordeal(&["state", "diff", s(&cap), s(&data)]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    // Without the glob on either side, the log file shows.
    std::fs::create_dir_all(t.path().join("plain/wal")).unwrap();
    let out = ordeal(&[
        "state",
        "diff",
        "--ignore",
        "wal",
        s(&data),
        s(&t.path().join("plain")),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stdout),
        "missing  kv.db  (file)\nmissing  server.log  (file)\n"
    );
}

#[test]
fn errors_exit_2_with_a_message() {
    let t = tempfile::tempdir().unwrap();
    let bad = t.path().join("bad.json");
    std::fs::write(&bad, b"{\"format\":\"x\"}").unwrap();
    for args in [
        vec!["state", "diff", "/nonexistent/a.json", s(t.path())],
        vec!["state", "diff", s(&bad), s(t.path())],
        vec!["state", "capture", "/nonexistent/dir", "-o", "/dev/null"],
        vec![
            "state",
            "capture",
            s(t.path()),
            "-o",
            "/dev/null",
            "--ignore",
            "a[",
        ],
    ] {
        let out = ordeal(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(text(&out.stderr).starts_with("ordeal: error: "), "{args:?}");
    }
    let out = ordeal(&["state", "diff", s(&bad), s(t.path())]);
    assert!(text(&out.stderr).contains("not a capture file"));
}

#[test]
fn checkpoint_and_watch_commands_talk_to_the_service() {
    let out = ordeal(&["checkpoint", "x"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("ORDEAL_CHECKPOINT_SOCKET is not set"),
        "{}",
        text(&out.stderr)
    );

    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("n0");
    tree(&data);
    let cp = Arc::new(
        ordeal_state::checkpointer::Checkpointer::new(
            vec![ordeal_state::checkpointer::Root {
                node: "n0".into(),
                path: data.clone(),
            }],
            &t.path().join("ckpt"),
            Default::default(),
        )
        .unwrap(),
    );
    let server = ordeal_state::service::Server::start(cp.clone(), Default::default()).unwrap();
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_ordeal"))
            .args(args)
            .current_dir(&data)
            .env(ordeal_state::service::ENV, server.socket_path())
            .output()
            .unwrap()
    };
    let out = run(&["watch", "kv.db"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let out = run(&["checkpoint", "after", "put"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "1\n");
    let w = cp.watches();
    assert_eq!(w.watches()[0].path, data.join("kv.db"));
    assert_eq!(w.watches()[0].checkpoint(), Some(1));
    let c = ordeal_state::Capture::load(&cp.file(1, "n0")).unwrap();
    assert_eq!(c.stamp.unwrap().label.as_deref(), Some("after put"));
}
