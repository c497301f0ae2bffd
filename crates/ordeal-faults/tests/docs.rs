//! docs/faults.md stays true: its examples parse, and its error example is real output.

use ordeal_faults::{parse_applied_toml, Participants, Schedule};

const DOC: &str = include_str!("../../../docs/faults.md");
const INVALID: &str = "# Invalid on purpose";

/// The demo KV store's names, used by every example of the page, and a role.
fn demo() -> Participants {
    Participants::new(["n0", "n1", "n2"], ["client"]).with_roles(["leader"])
}

/// The fenced blocks of the page with their language: (lang, body).
fn blocks() -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut current: Option<(String, String)> = None;
    for line in DOC.lines() {
        match (&mut current, line.strip_prefix("```")) {
            (None, Some(lang)) => current = Some((lang.to_string(), String::new())),
            (Some(_), Some(_)) => out.push(current.take().unwrap()),
            (Some((_, body)), None) => {
                body.push_str(line);
                body.push('\n');
            }
            (None, None) => {}
        }
    }
    assert!(current.is_none(), "unclosed block");
    out
}

#[test]
fn every_toml_example_is_valid() {
    let (mut schedules, mut applied) = (0, 0);
    for (lang, body) in blocks().iter().filter(|(l, _)| l == "toml") {
        assert_eq!(lang, "toml");
        if body.contains("[[applied]]") {
            let entries = parse_applied_toml(body, "doc").unwrap();
            applied += entries.len();
        } else if !body.starts_with(INVALID) {
            Schedule::parse_for(body, "doc.toml", &demo())
                .unwrap_or_else(|e| panic!("{e}\nin:\n{body}"));
            schedules += 1;
        }
    }
    assert_eq!((schedules, applied), (14, 3));
}

#[test]
fn the_error_example_is_real_output() {
    let all = blocks();
    let i = all
        .iter()
        .position(|(_, b)| b.starts_with(INVALID))
        .expect("the invalid example");
    let (schedule, output) = (&all[i].1, &all[i + 1].1);
    let e = Schedule::parse_for(schedule, "faults.toml", &demo()).unwrap_err();
    assert_eq!(format!("{e}\n"), *output);
}
