//! failure.svg and failure.html as `ordeal demo` writes them: a failing run's picture shows
//! the client's failing GET and the crash of n0, a passing run's says PASS and marks nothing,
//! and failure.html loads in a real browser (headless Chromium, when installed) without a
//! script error, opening on the violating operation.

use ordeal_test_support::browser::headless;
use ordeal_test_support::installed;
use std::path::Path;
use std::process::Command;

fn demo(out: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ordeal"))
        .arg("demo")
        .arg("--out")
        .arg(out)
        .arg("-q")
        .args(args)
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
        .output()
        .expect("ordeal runs")
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn a_failing_demo_draws_its_failing_get_and_the_crash_of_n0() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("fail");
    let o = demo(
        &run,
        &[
            "--faults",
            "examples/faults/crash-primary-after-ack.toml",
            "--set",
            "bugs=ack-before-replicate",
        ],
    );
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    let svg = read(&run.join("failure.svg"));
    assert!(svg.contains(">FAIL</text>"), "{svg}");
    assert!(
        svg.contains("workload client (exit 1): VIOLATION: op "),
        "{svg}"
    );
    // The failing GET: the client's request and n1's answer, both red, labelled.
    let red: Vec<&str> = svg
        .lines()
        .filter(|l| l.starts_with(r#"<g class="msg violation">"#))
        .collect();
    assert_eq!(red.len(), 2, "{svg}");
    assert!(red[0].contains(">GET k"), "{}", red[0]);
    // The answer's label: the call log's text, also when the client's read of it was
    // recorded before n1's write returned (it once came out as "NOTFOUND (9 B)", the line
    // said with its size, for want of a label on the write).
    assert!(red[1].contains(">NOTFOUND</text>"), "{}", red[1]);
    // The request's send and receive, the response's send and receive.
    assert_eq!(svg.matches(r#"<g class="event violation">"#).count(), 4);
    // n0's crash, as a red X with its action.
    assert_eq!(
        svg.matches(r#"<g class="fault crash">"#).count(),
        1,
        "{svg}"
    );
    assert!(svg.contains(">crash n0 after</text>"), "{svg}");
    assert!(svg.contains(r#"font-size="13">n0</text>"#), "{svg}");
    let html = read(&run.join("failure.html"));
    assert!(html.contains(r#"<h1 id="verdict">FAIL</h1>"#));
    assert!(html.contains(&svg));

    // `ordeal graph` writes the same picture again.
    std::fs::remove_file(run.join("failure.svg")).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_ordeal"))
        .arg("graph")
        .arg(&run)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(read(&run.join("failure.svg")), svg);

    if !installed(&["chromium"], "chromium") {
        return;
    }
    let Some(r) = headless(&run.join("failure.html"), "") else {
        return;
    };
    assert_eq!(r.errors(), Vec::<&str>::new());
    assert_eq!(r.body_attr("data-js").as_deref(), Some("ok"));
    assert_eq!(r.body_attr("data-violation").as_deref(), Some("in-view"));
}

#[test]
fn a_passing_demo_says_pass_and_marks_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("pass");
    let o = demo(&run, &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
    let svg = read(&run.join("failure.svg"));
    assert!(svg.contains(">PASS</text>"), "{svg}");
    assert!(svg.contains("no violation"), "{svg}");
    assert!(!svg.contains("violation\""), "{svg}");
    assert!(svg.contains(r#"<g class="event">"#), "{svg}");
    let html = read(&run.join("failure.html"));
    assert!(html.contains(r#"<h1 id="verdict">PASS</h1>"#));
    if let Some(r) = headless(&run.join("failure.html"), "") {
        assert_eq!(r.errors(), Vec::<&str>::new());
        assert_eq!(r.body_attr("data-violation").as_deref(), Some("none"));
    }
}
