//! history.html in a real browser (headless Chromium): its script runs without an error, no
//! two text boxes of its timelines overlap as the browser lays them out (at the full view and
//! zoomed in), and the violating operation is on the first screen.

use ordeal_history::html::{render_with_marks, Mark};
use ordeal_history::{check_entries, Entry, Kind, Model, Value, F};
use ordeal_test_support::browser::{headless, Rendered};

/// 6 processes, 300 writes and reads of one register at 1–4 ms each over about 0.25 s, with
/// the node that served each as an extra field; with `stale`, the last read returns a value
/// overwritten long before.
fn dense(stale: bool) -> Vec<Entry> {
    let mut rng = ordeal_history::generate::Rng::new(3);
    let mut entries = Vec::new();
    let mut at = [0u64; 6];
    let mut value = 0i64;
    for i in 0..300u64 {
        let p = (i % 6) as usize;
        let start = at[p] + rng.below(1_000_000);
        let end = start + 1_000_000 + rng.below(3_000_000);
        at[p] = end;
        let node = serde_json::json!(format!("n{}", rng.below(3)));
        // Writes only, one process at a time: whatever the interleaving, reads are added below.
        let (f, v) = if i % 3 == 0 {
            (F::Read, Value::Nil)
        } else {
            value += 1;
            (F::Write, Value::Int(value))
        };
        let mut invoke = Entry::new(Kind::Invoke, p as u64, f, v.clone(), start);
        invoke.extra = vec![("node".into(), node)];
        let kind = if i % 17 == 0 { Kind::Fail } else { Kind::Ok };
        entries.push(invoke);
        // Reads are indeterminate (they constrain nothing): the history stays linearizable
        // whatever the writes' overlap.
        if f == F::Read {
            entries.push(Entry::new(Kind::Info, p as u64, f, Value::Nil, end));
        } else {
            entries.push(Entry::new(kind, p as u64, f, v, end));
        }
    }
    let end = *at.iter().max().unwrap();
    if stale {
        // After every write completed, a read of the first value.
        entries.push(Entry::new(
            Kind::Invoke,
            9,
            F::Read,
            Value::Nil,
            end + 1_000_000,
        ));
        entries.push(Entry::new(
            Kind::Ok,
            9,
            F::Read,
            Value::Int(1),
            end + 2_000_000,
        ));
    }
    entries.sort_by_key(|e| e.time);
    entries
}

/// Node starts at once, a partition and a crash that last, instants close together and one at
/// the right edge.
fn marks(end: u64) -> Vec<Mark> {
    let mut m: Vec<Mark> = (0..5)
        .map(|i| Mark {
            time: 0,
            end: None,
            label: format!("n{i} started"),
        })
        .collect();
    m.push(Mark {
        time: end / 4,
        end: Some(end / 2),
        label: "n0: cut: partition n0 | n1,n2 (cut)".into(),
    });
    m.push(Mark {
        time: end / 3,
        end: Some(end * 2 / 3),
        label: "n1: crash-primary: crash n1 before".into(),
    });
    for i in 0..6 {
        m.push(Mark {
            time: end / 3 + i * 1000,
            end: None,
            label: format!("n2: slow: delay 10ms before #{i}"),
        });
    }
    m.push(Mark {
        time: end,
        end: None,
        label: "n2 ended (SIGKILL) at the very end of the run".into(),
    });
    m
}

fn page(stale: bool) -> (tempfile::TempDir, std::path::PathBuf) {
    let entries = dense(stale);
    let end = entries.last().unwrap().time;
    let r = check_entries(entries, Model::Register, &Default::default()).unwrap();
    let expected = if stale {
        ordeal_history::Verdict::NotLinearizable
    } else {
        ordeal_history::Verdict::Linearizable
    };
    assert_eq!(r.verdict, expected);
    let html = render_with_marks(&r, "dense.jsonl", &marks(end));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("history.html");
    std::fs::write(&path, &html).unwrap();
    if let Some(keep) = std::env::var_os("KEEP_PAGES") {
        let name = if stale {
            "failing.html"
        } else {
            "passing.html"
        };
        std::fs::write(std::path::Path::new(&keep).join(name), &html).unwrap();
    }
    (dir, path)
}

/// The page's own checks passed: its script ran to the end without an error and no two text
/// boxes overlap. Returns how many texts it drew.
fn assert_clean(r: &Rendered) -> usize {
    assert_eq!(r.errors(), Vec::<&str>::new(), "script errors");
    assert_eq!(r.body_attr("data-js-errors"), None);
    assert_eq!(
        r.body_attr("data-js").as_deref(),
        Some("ok"),
        "the script ran"
    );
    assert_eq!(
        r.body_attr("data-label-overlaps").as_deref(),
        Some("0"),
        "overlapping texts: {:?}",
        r.body_attr("data-overlap-examples")
    );
    r.body_attr("data-labels").unwrap().parse().unwrap()
}

#[test]
fn a_violation_is_drawn_without_overlaps_and_opens_on_the_first_screen() {
    let (_dir, path) = page(true);
    let Some(r) = headless(&path, "") else { return };
    // How many labels find room depends on the fonts installed: many do.
    let labels = assert_clean(&r);
    assert!(labels > 100, "{labels} texts drawn");
    assert_eq!(r.body_attr("data-violation").as_deref(), Some("in-view"));
    assert!(r.dom.contains("id=\"violation\""));
    // Extra fields are in the hover text.
    assert!(r.dom.contains("\nnode: n"), "extra fields on hover");
}

#[test]
fn a_zoomed_view_is_placed_again_without_overlaps() {
    let (_dir, path) = page(true);
    let Some(r) = headless(&path, "#zoom=8") else {
        return;
    };
    assert_clean(&r);
    // Both timelines show another range than the page was written with.
    let ranges = |html: &str| -> Vec<String> {
        html.split("<span class=\"range\">")
            .skip(1)
            .map(|s| s[..s.find('<').unwrap()].to_string())
            .collect()
    };
    let before = ranges(&std::fs::read_to_string(&path).unwrap());
    let after = ranges(&r.dom);
    assert_eq!((before.len(), after.len()), (2, 2));
    assert!(
        before.iter().zip(&after).all(|(b, a)| a != b),
        "{before:?} {after:?}"
    );
}

#[test]
fn a_passing_history_shows_its_availability_and_faults() {
    let (_dir, path) = page(false);
    let Some(r) = headless(&path, "") else { return };
    let labels = assert_clean(&r);
    assert!(labels > 50, "{labels} texts drawn");
    assert_eq!(r.body_attr("data-violation").as_deref(), Some("none"));
    // The availability chart, redrawn by the script: 58 of its 60 windows saw invocations
    // (the first and the last are the margins of node starts and the final event).
    assert_eq!(r.dom.matches("<g><title>invoked ").count(), 58);
    assert!(r.dom.contains("<rect class=\"band\""));
}
