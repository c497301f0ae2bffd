//! `[crash]`: the crash check and the workload target of `ordeal crash`.

use ordeal_experiment::Experiment;

const BASE: &str = "name = \"x\"\n[[node]]\nname = \"db\"\nargv = [\"sleep\", \"1000\"]\ndata_dir = true\n[[workload]]\nname = \"save\"\nargv = [\"true\"]\n";

fn parse(crash: &str) -> Result<Experiment, String> {
    Experiment::parse(&format!("{BASE}[crash]\n{crash}"), "x.toml").map_err(|e| e.to_string())
}

#[test]
fn a_crash_workload_names_a_workload_checked_by_a_crash_check() {
    let e = parse("workload = \"save\"\ncheck = [\"true\"]\n").unwrap();
    assert_eq!(e.crash_workload(), Some("save"));
    let e = parse("check = [\"true\"]\n").unwrap();
    assert_eq!(e.crash_workload(), None);
}

#[test]
fn a_crash_workload_that_is_not_one_or_has_no_check_is_refused() {
    let err = parse("workload = \"db\"\ncheck = [\"true\"]\n").unwrap_err();
    assert!(
        err.starts_with("x.toml:10:12: [crash] workload: no workload is named `db`"),
        "{err}"
    );
    let err = parse("workload = \"save\"\n").unwrap_err();
    assert!(
        err.contains("[crash] workload: a workload target is checked by `[crash] check` alone"),
        "{err}"
    );
}
