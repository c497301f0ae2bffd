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
