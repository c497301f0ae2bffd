//! Partition shapes on the demo: `shape = "isolate"` cuts the primary from both backups, in
//! both network modes, while the client (a workload: never cut by a shape) keeps talking to it.

mod common;
use common::events;

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

/// Isolate the primary right after its third answer to the client, for longer than the
/// client's 40 operations last (the workload's end heals it). With a 200 ms peer timeout the
/// primary gives up on its backups within the first half second and goes on alone.
const ISOLATE_PRIMARY: &str = r#"[[fault]]
name = "iso"
kind = "partition"
shape = "isolate"
node = "n0"
duration = "5s"
trigger = { nth = 3, node = "n0", class = "data", direction = "send", peer = "client", when = "after" }
"#;
const FIRED: &str = "iso: partition isolate n0 | n1 n2";

/// `ordeal ARGS... --faults SCHEDULE --out RUN -q --set peer_timeout_ms=200` on `experiment`
/// (none: the demo); returns the output, the run directory's parent and the events.
fn run_isolated(experiment: Option<&str>) -> (Output, tempfile::TempDir, Vec<Value>) {
    let dir = tempfile::tempdir().unwrap();
    let sched = dir.path().join("isolate.toml");
    std::fs::write(&sched, ISOLATE_PRIMARY).unwrap();
    let run = dir.path().join("run");
    let mut args: Vec<String> = match experiment {
        None => vec!["demo".into()],
        Some(text) => {
            let exp = dir.path().join("exp.toml");
            std::fs::write(&exp, text).unwrap();
            vec!["run".into(), exp.display().to_string()]
        }
    };
    for a in [
        "--faults",
        sched.to_str().unwrap(),
        "--out",
        run.to_str().unwrap(),
    ] {
        args.push(a.into());
    }
    args.extend(["-q", "--set", "peer_timeout_ms=200"].map(String::from));
    let o = Command::new(env!("CARGO_BIN_EXE_ordeal"))
        .args(&args)
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let evs = events(&run);
    (o, dir, evs)
}

fn end_ns(e: &Value) -> u64 {
    e["ts"].as_u64().unwrap() + e["dur"].as_u64().unwrap_or(0)
}

fn peer(e: &Value) -> &str {
    e["sock"]["peer_node"].as_str().unwrap_or("")
}

fn log(run: &Path, name: &str) -> String {
    std::fs::read_to_string(run.join("logs").join(name)).unwrap()
}

/// What both modes share: the firing on n0's third answer to the client, recorded as such;
/// nothing between the client and n0 touched, the client answered by n0 during the cut and
/// finding nothing wrong; the primary dropping both backups for want of their acknowledgement.
/// Returns (cut, heal) times.
fn check_isolated_primary(run: &Path, evs: &[Value]) -> (u64, u64) {
    let fired: Vec<&Value> = evs.iter().filter(|e| e["fault"] == FIRED).collect();
    assert_eq!(fired.len(), 1);
    let f = fired[0];
    assert_eq!((f["node"].as_str(), peer(f)), (Some("n0"), "client"));
    let answers_before = evs
        .iter()
        .filter(|e| e["seq"].as_u64() <= f["seq"].as_u64())
        .filter(|e| e["node"] == "n0" && e["class"] == "data" && peer(e) == "client")
        .filter(|e| e["call"] == "sendto" || e["call"] == "write")
        .count();
    assert_eq!(answers_before, 3);
    let heals: Vec<&Value> = evs
        .iter()
        .filter(|e| e["fault"] == "by iso: final heal")
        .collect();
    assert_eq!(heals.len(), 1, "the workload ends first");
    let (cut, heal) = (f["ts"].as_u64().unwrap(), heals[0]["ts"].as_u64().unwrap());

    let applied = std::fs::read_to_string(run.join("schedule.applied.toml")).unwrap();
    let detail = format!(
        "node = \"n0\"\ndetail = \"partition isolate n0 | n1 n2 at sendto (pid {}, tid {})\"\n",
        f["pid"], f["tid"]
    );
    assert!(applied.contains(&detail), "{applied}");

    // A workload is not partitioned by a shape: nothing between the client and n0 is marked
    // but the firing, and n0 answered the client while it was cut from its backups.
    let client_n0 = |e: &&Value| {
        (e["node"] == "client" && peer(e) == "n0") || (e["node"] == "n0" && peer(e) == "client")
    };
    let touched: Vec<&Value> = evs
        .iter()
        .filter(client_n0)
        .filter(|e| e.get("fault").is_some() && e["seq"] != f["seq"])
        .collect();
    assert!(touched.is_empty(), "{touched:#?}");
    let answered = evs
        .iter()
        .filter(client_n0)
        .filter(|e| e["node"] == "client" && e["class"] == "data")
        .filter(|e| e["call"] == "recvfrom" || e["call"] == "read")
        .filter(|e| e["ret"].as_i64() > Some(0) && e["ts"].as_u64() > Some(cut))
        .filter(|e| end_ns(e) < heal)
        .count();
    assert!(answered >= 10, "{answered} answers during the cut");
    let client = log(run, "client.stdout");
    assert!(
        client.contains("client: 40 ops, ") && client.contains(" 0 violations"),
        "{client}"
    );

    // n0 waited for its backups' ACKs in vain and dropped both.
    let n0 = log(run, "n0.stderr");
    for b in [1, 2] {
        let line = format!("node 0: dropping backup {b}: Resource temporarily unavailable");
        assert!(n0.contains(&line), "{n0}");
    }
    (cut, heal)
}

/// On loopback the cut is emulated at the calls that cross it, as a network dropping packets:
/// n0's replication sends to each backup succeed but are queued (never delivered before the
/// heal), so n0 waits for their acknowledgements in vain and drops them (its shutdown of their
/// connections waits for what it queued); a backup's connect to n0 hangs until its own
/// timeout. Nothing else is touched.
#[test]
fn isolating_the_primary_on_loopback_queues_its_replication_and_spares_the_client() {
    let (_o, dir, evs) = run_isolated(None);
    let run = dir.path().join("run");
    let (cut, heal) = check_isolated_primary(&run, &evs);

    let effects: Vec<&Value> = evs
        .iter()
        .filter(|e| e["call"] != "fault")
        .filter(|e| {
            e["fault"]
                .as_str()
                .is_some_and(|m| m.starts_with("by iso: "))
        })
        .collect();
    let n0_port = evs
        .iter()
        .find(|e| e["node"] == "n0" && e["call"] == "listen")
        .and_then(|e| e["sock"]["local"].as_str())
        .and_then(|a| a.rsplit(':').next())
        .unwrap()
        .to_string();
    let mut queued = Vec::new();
    for e in &effects {
        assert!(e["ts"].as_u64().unwrap() >= cut && end_ns(e) <= heal, "{e}");
        let m = e["fault"].as_str().unwrap();
        if let Some(n) = m.strip_prefix("by iso: queued ") {
            assert_eq!(e["node"], "n0", "{e}");
            assert_eq!(Some(format!("{} bytes", e["ret"])).as_deref(), Some(n));
            queued.push(peer(e).to_string());
        } else if m == "by iso: shutdown after the queued bytes" {
            // n0 dropping a backup it queued bytes to: its FIN waits for them.
            assert_eq!(
                (e["node"].as_str(), e["call"].as_str()),
                (Some("n0"), Some("shutdown"))
            );
            assert!(peer(e) == "n1" || peer(e) == "n2", "{e}");
        } else if m == "by iso: handshake dropped" {
            assert!(e["node"] == "n1" || e["node"] == "n2", "{e}");
            assert_eq!(
                (e["call"].as_str(), e["errno"].as_str()),
                (Some("connect"), Some("EINPROGRESS"))
            );
            let port = e["addr"].as_str().unwrap().rsplit(':').next().unwrap();
            assert_eq!(port, n0_port, "{e}");
        } else {
            panic!("unexpected effect {m}: {e}");
        }
    }
    queued.sort();
    queued.dedup();
    assert_eq!(queued, ["n1", "n2"]);

    // The demo fails over only from a primary that refuses connections: its backups lost it,
    // and none took over while it was unreachable.
    for b in ["n1", "n2"] {
        let out = log(&run, &format!("{b}.stdout"));
        let id = &b[1..];
        assert!(out.contains(&format!("node {id} lost primary 0")), "{out}");
        assert!(!out.contains("is primary"), "{out}");
    }
}

/// In netns mode the cut is drop rules: no call is held or failed by ordeal, and nothing n0
/// sent reached a backup during the cut, while the client, outside the shape, kept talking
/// to n0.
#[test]
fn isolating_the_primary_in_netns_drops_its_packets_to_the_backups_only() {
    let demo = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/demo-kv.toml"),
    )
    .unwrap();
    let (_o, dir, evs) = run_isolated(Some(&format!("network = \"netns\"\n{demo}")));
    let run = dir.path().join("run");
    let (cut, heal) = check_isolated_primary(&run, &evs);
    let by_ordeal: Vec<&Value> = evs
        .iter()
        .filter(|e| e["call"] != "fault")
        .filter(|e| e["fault"].as_str().is_some_and(|m| m.starts_with("by ")))
        .collect();
    assert!(by_ordeal.is_empty(), "{by_ordeal:#?}");
    let reached: Vec<&Value> = evs
        .iter()
        .filter(|e| (e["node"] == "n1" || e["node"] == "n2") && peer(e) == "n0")
        .filter(|e| e["class"] == "data" && e["ret"].as_i64() > Some(0))
        .filter(|e| e["call"] == "recvfrom" || e["call"] == "read")
        .filter(|e| end_ns(e) > cut && end_ns(e) < heal)
        .collect();
    assert!(reached.is_empty(), "{reached:#?}");
}
