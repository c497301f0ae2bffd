//! Input checks that say what is wrong at load time: `failure_pattern`, placeholder typos,
//! durations given as numbers.

use ordeal_experiment::{Experiment, DEFAULT_FAILURE_PATTERN};

fn parse_err(text: &str) -> String {
    match Experiment::parse(text, "exp.toml") {
        Ok(_) => panic!("expected an error for:\n{text}"),
        Err(e) => e.to_string(),
    }
}

const NODE: &str = "[[node]]\nname = \"n\"\nargv = [\"sleep\", \"1\"]\n";

#[test]
fn failure_pattern_defaults_and_is_checked() {
    let exp = Experiment::parse(&format!("name = \"x\"\n{NODE}"), "exp.toml").unwrap();
    assert_eq!(exp.failure_pattern().as_str(), DEFAULT_FAILURE_PATTERN);
    let p = exp.failure_pattern();
    assert!(p.is_match("VIOLATION: lost write"));
    assert!(p.is_match("thread 'main' panicked at src/main.rs:3:5"));
    assert!(p.is_match("AssertionError: 3 != 2"));
    assert!(p.is_match("ERROR: refused"));
    assert!(!p.is_match("client: 40 ops, 1 violations"));
    let exp = Experiment::parse(
        &format!("name = \"x\"\nfailure_pattern = \"^FAILED\"\n{NODE}"),
        "exp.toml",
    )
    .unwrap();
    assert!(exp.failure_pattern().is_match("FAILED: x"));
    assert!(!exp.failure_pattern().is_match("not FAILED"));
    assert_eq!(
        parse_err(&format!("name = \"x\"\nfailure_pattern = \"(oops\"\n{NODE}")),
        "exp.toml:2:19: `failure_pattern` is not a valid regex: regex parse error:\n    (oops\n    ^\nerror: unclosed group"
    );
    assert_eq!(
        parse_err(&format!("name = \"x\"\nfailure_pattern = \"x*\"\n{NODE}")),
        "exp.toml:2:19: `failure_pattern` matches an empty line, so every line would be a \
         failure: give a word to look for (e.g. \"FAILED|panicked\")"
    );
}

#[test]
fn a_port_placeholder_one_slip_from_a_declared_port_is_an_error() {
    let text = r#"name = "x"
[[node]]
name = "db"
argv = ["server", "--port", "{port.db}"]
[[workload]]
name = "client"
argv = ["client", "127.0.0.1:{port.bd}"]
"#;
    assert_eq!(
        parse_err(text),
        "exp.toml:7:30: `{port.bd}`: no node declares port bd; did you mean `db` (node `db`)? \
         A port no node declares is taken for one outside the run"
    );
    // A port of its own (not close to a declared one) and a proxy's listen port are fine.
    let ok = r#"name = "x"
[[node]]
name = "db"
argv = ["server", "--port", "{port.db}", "--admin", "{port.admin}"]
[[proxy]]
name = "dc"
listen = "127.0.0.1:{port.dc}"
upstream = "127.0.0.1:{port.db}"
[[workload]]
name = "client"
argv = ["client", "127.0.0.1:{port.dc}"]
"#;
    Experiment::parse(ok, "exp.toml").unwrap();
}

#[test]
fn a_duration_given_as_a_number_says_how_to_write_it() {
    assert_eq!(
        parse_err(&format!("name = \"x\"\ntimeout = 10\n{NODE}")),
        "exp.toml:2:11: invalid type: integer `10`, expected a string; a duration is a string \
         with its unit: `timeout = \"10s\"`"
    );
    assert_eq!(
        parse_err(&format!("name = \"x\"\n{NODE}stop_timeout = 0.25\n")),
        "exp.toml:5:16: invalid type: floating point `0.25`, expected a string; a duration is a \
         string with its unit: `stop_timeout = \"250ms\"`"
    );
}

/// The repository's experiment files load: no slip is reported where there is none.
#[test]
fn the_example_experiments_load() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "toml") {
            let text = std::fs::read_to_string(&p).unwrap();
            if let Err(err) = Experiment::parse(&text, &p) {
                panic!("{}: {err}", p.display());
            }
            n += 1;
        }
    }
    assert!(n >= 7, "{n} experiments");
}
