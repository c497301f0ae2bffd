//! `[[proxy]]` in an experiment and `toxic` faults on it: the toxic acts on the proxied link
//! for its duration and is removed after; bad toxics are refused before anything starts.

mod common;
use common::events;

use std::path::Path;
use std::process::{Command, Output};

/// The demo, with the client reaching n0 through proxy `p0`.
fn proxied_demo(dir: &Path) -> std::path::PathBuf {
    let demo = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/demo-kv.toml"),
    )
    .unwrap();
    let direct = r#""--nodes", "{host.n0}:{port.n0},{host.n1}:{port.n1},{host.n2}:{port.n2}""#;
    assert!(demo.contains(direct));
    let text = demo.replace(
        direct,
        r#""--nodes", "127.0.0.1:{port.p0},{host.n1}:{port.n1},{host.n2}:{port.n2}""#,
    ) + "\n[[proxy]]\nname = \"p0\"\nlisten = \"127.0.0.1:{port.p0}\"\nupstream = \"{host.n0}:{port.n0}\"\n";
    let exp = dir.join("proxied.toml");
    std::fs::write(&exp, text).unwrap();
    exp
}

fn run(dir: &Path, schedule: &str) -> (Output, std::path::PathBuf) {
    let exp = proxied_demo(dir);
    let sched = dir.join("toxic.toml");
    std::fs::write(&sched, schedule).unwrap();
    let out = dir.join("run");
    let o = Command::new(env!("CARGO_BIN_EXE_ordeal"))
        .args([
            "run",
            exp.to_str().unwrap(),
            "--faults",
            sched.to_str().unwrap(),
        ])
        .args(["--out", out.to_str().unwrap(), "-q"])
        .output()
        .unwrap();
    (o, out)
}

#[test]
fn a_latency_toxic_slows_the_proxied_link_for_its_duration() {
    let dir = tempfile::tempdir().unwrap();
    let (o, run) = run(
        dir.path(),
        r#"[[fault]]
name = "slow-link"
kind = "toxic"
proxy = "p0"
toxic = { type = "latency", latency = 300 }
duration = "1s"
trigger = { after = "0s" }
"#,
    );
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let evs = events(&run);
    let at = |m: &str| {
        evs.iter()
            .find(|e| e["fault"] == m)
            .unwrap_or_else(|| panic!("no {m}"))["ts"]
            .as_u64()
            .unwrap()
    };
    let (on, off) = (
        at("slow-link: toxic latency downstream on p0"),
        at("by slow-link: removal of the toxic"),
    );
    assert!(off >= on + 1_000_000_000);
    // Through the proxy (the client's connections to p0's port), answers took the latency
    // while the toxic was there.
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("summary.json")).unwrap()).unwrap();
    let slow = evs.iter().filter(|e| {
        e["node"] == "client"
            && e["call"]
                .as_str()
                .is_some_and(|c| c.starts_with("recv") || c == "read")
            && e["ret"].as_i64().is_some_and(|r| r > 0)
            && e["dur"].as_u64().is_some_and(|d| d >= 300_000_000)
            && e["ts"].as_u64().is_some_and(|t| t >= on && t < off)
    });
    assert!(slow.count() >= 1, "{summary}");
}

#[test]
fn toxics_on_unknown_proxies_or_of_unknown_types_are_refused_before_anything_starts() {
    for (schedule, want) in [
        (
            "[[fault]]\nkind = \"toxic\"\nproxy = \"nope\"\ntoxic = { type = \"latency\", latency = 5 }\ntrigger = { after = \"0s\" }\n",
            "no [[proxy]] named `nope` in the experiment (it has p0)",
        ),
        (
            "[[fault]]\nkind = \"toxic\"\nproxy = \"p0\"\ntoxic = { type = \"lag\" }\ntrigger = { after = \"0s\" }\n",
            "lag",
        ),
        (
            "[[fault]]\nkind = \"toxic\"\nproxy = \"p0\"\ntrigger = { after = \"0s\" }\n",
            "a `toxic` fault needs `toxic`",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let (o, run) = run(dir.path(), schedule);
        assert_eq!(o.status.code(), Some(2));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(want), "{err}");
        assert!(!run.exists(), "nothing started");
    }
}
