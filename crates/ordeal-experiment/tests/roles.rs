//! `[roles]`: probes that find which node holds a role, and roles inferred from traffic,
//! read, checked with positions, and resolved for a run.

use std::fs;
use std::time::Duration;

use ordeal_experiment::{
    Experiment, Inference, InferredRole, ResolveContext, DEFAULT_INFER_WINDOW, DEFAULT_ROLE_TIMEOUT,
};

const NODES: &str = r#"name = "cluster"

[[node]]
name = "e1"
argv = ["sh", "-c", "sleep 60", "{port.e1}"]

[[node]]
name = "e2"
argv = ["sh", "-c", "sleep 60", "{port.e2}"]

[[workload]]
name = "client"
argv = ["true"]
"#;

fn errors(roles: &str) -> Vec<String> {
    let text = format!("{NODES}\n{roles}");
    match Experiment::parse(&text, "x.toml") {
        Ok(_) => panic!("expected errors for:\n{roles}"),
        Err(e) => e.diagnostics().iter().map(|d| d.to_string()).collect(),
    }
}

#[test]
fn roles_are_read_and_resolved_with_their_placeholders() {
    let text = format!(
        r#"{NODES}
[roles]
leader = {{ command = ["sh", "-c", "probe {{port.e1}} $ORDEAL_PORT", "{{run_dir}}"], matches = "^true$", timeout = "500ms" }}
follower = {{ command = ["true"] }}
"#
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("exp.toml");
    fs::write(&file, &text).unwrap();
    let exp = Experiment::from_path(&file).unwrap();
    // In name order.
    assert_eq!(exp.role_names().collect::<Vec<_>>(), ["follower", "leader"]);
    let run_dir = dir.path().join("run");
    let r = exp
        .resolve(&ResolveContext::new(&run_dir, "/bin/true"))
        .unwrap();
    let names: Vec<&str> = r.roles.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["follower", "leader"]);
    let follower = &r.roles[0];
    assert_eq!(follower.program, std::path::Path::new("/usr/bin/true"));
    assert_eq!(follower.argv, ["true"]);
    assert!(follower.matches.is_none());
    assert_eq!(follower.timeout, DEFAULT_ROLE_TIMEOUT);
    assert_eq!(DEFAULT_ROLE_TIMEOUT, Duration::from_secs(2));
    let leader = &r.roles[1];
    assert_eq!(leader.program, std::path::Path::new("/usr/bin/sh"));
    assert_eq!(
        leader.argv,
        [
            "sh".to_string(),
            "-c".into(),
            format!("probe {} $ORDEAL_PORT", r.ports["e1"]),
            run_dir.display().to_string(),
        ]
    );
    assert_eq!(leader.matches.as_ref().unwrap().as_str(), "^true$");
    assert_eq!(leader.timeout, Duration::from_millis(500));
    // The probe runs in the experiment file's directory.
    assert_eq!(leader.cwd, dir.path());
    // Without [roles], none.
    let plain = Experiment::parse(NODES, "x.toml").unwrap();
    assert_eq!(plain.role_names().count(), 0);
}

#[test]
fn bad_roles_are_reported_at_their_values() {
    // An unknown key in a role is a syntax error, reported alone with the keys a role takes.
    assert_eq!(
        errors("[roles]\nlead = { command = [\"true\"], match = \"x\" }\n"),
        [
            "x.toml:16:30: unknown field `match`, expected one of `command`, `matches`, `infer`, \
          `window`, `timeout`"
        ]
    );
    assert_eq!(
        errors(
            r#"[roles]
e1 = { command = ["true"] }
client = { command = ["true"] }
"bad name" = { command = ["true"] }
leader = { matches = "(" }
primary = { command = [], timeout = "0s" }
"#
        ),
        [
            "x.toml:16:1: role `e1` has the name of a node: a role needs a name of its own \
             (schedules say `node = \"...\"` or `role = \"...\"`, explore's candidates name \
             either)",
            "x.toml:17:1: role `client` has the name of a workload: a role needs a name of its \
             own (schedules say `node = \"...\"` or `role = \"...\"`, explore's candidates name \
             either)",
            "x.toml:18:1: invalid role name `bad name`: use letters, digits, `_` and `-`",
            "x.toml:19:10: role `leader` needs `command = [\"program\", ...]`: the probe run \
             on each node (ORDEAL_NODE, ORDEAL_HOST and ORDEAL_PORT say which); the nodes \
             where it succeeds hold the role; or `infer = \"fans-out\"`: the node that sends \
             to every other holds it",
            "x.toml:19:22: invalid regular expression in `matches`: unclosed group",
            "x.toml:20:23: command must not be empty: its first element is the program to run",
            "x.toml:20:37: the duration must be greater than zero",
        ]
    );
    assert_eq!(
        errors("[roles]\n"),
        [
            "x.toml:15:1: [roles] is empty: declare a role, e.g. `leader = { command = \
             [\"...\"], matches = \"...\" }`, or remove the table"
        ]
    );
    assert_eq!(
        errors("[roles]\nleader = { command = [\"probe\", \"{port.nope}\", \"{host.e9}\"] }\n"),
        ["x.toml:16:48: unknown node or workload `e9` in `{host.e9}`"]
    );
}

#[test]
fn a_missing_probe_program_is_reported_when_resolving() {
    let text = format!("{NODES}\n[roles]\nleader = {{ command = [\"no-such-probe-xyz\"] }}\n");
    let exp = Experiment::parse(&text, "x.toml").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let e = exp
        .resolve(&ResolveContext::new(dir.path().join("run"), "/bin/true"))
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with(
            "x.toml:16:23: role `leader`: command: program `no-such-probe-xyz` not found in PATH"
        ),
        "{e}"
    );
}

#[test]
fn inferred_roles_are_read_and_resolved_apart_from_the_probes() {
    let text = format!(
        r#"{NODES}
[roles]
leader = {{ infer = "fans-out" }}
primary = {{ infer = "fans-out", window = "500ms", timeout = "5s" }}
probed = {{ command = ["true"] }}
"#
    );
    let exp = Experiment::parse(&text, "x.toml").unwrap();
    // Schedules may name any of them.
    assert_eq!(
        exp.role_names().collect::<Vec<_>>(),
        ["leader", "primary", "probed"]
    );
    let dir = tempfile::tempdir().unwrap();
    let r = exp
        .resolve(&ResolveContext::new(dir.path().join("run"), "/bin/true"))
        .unwrap();
    assert_eq!(
        r.roles.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(),
        ["probed"]
    );
    assert_eq!(
        r.inferred_roles,
        [
            InferredRole {
                name: "leader".into(),
                rule: Inference::FansOut,
                window: DEFAULT_INFER_WINDOW,
                timeout: DEFAULT_ROLE_TIMEOUT,
            },
            InferredRole {
                name: "primary".into(),
                rule: Inference::FansOut,
                window: Duration::from_millis(500),
                timeout: Duration::from_secs(5),
            },
        ]
    );
    assert_eq!(DEFAULT_INFER_WINDOW, Duration::from_secs(2));
    assert_eq!(Inference::FansOut.name(), "fans-out");
}

#[test]
fn bad_inferred_roles_are_reported_at_their_values() {
    assert_eq!(
        errors(
            r#"[roles]
leader = { infer = "fan-out" }
primary = { infer = "fans-out", command = ["true"], matches = "x" }
lead = { infer = "fans-out", window = "61s" }
probed = { command = ["true"], window = "1s" }
zero = { infer = "fans-out", window = "0s" }
"#
        ),
        [
            "x.toml:16:20: role `leader`: unknown inference `fan-out` (did you mean \
             `fans-out`?): `infer` takes `fans-out`",
            "x.toml:17:43: role `primary`: `command` belongs to a probed role; one inferred \
             from traffic (`infer`) runs no probe: remove one or the other",
            "x.toml:17:63: role `primary`: `matches` belongs to a probed role; one inferred \
             from traffic (`infer`) runs no probe: remove one or the other",
            "x.toml:18:39: role `lead`: a window of at most 60s (the run keeps that much \
             traffic)",
            "x.toml:19:41: role `probed`: `window` is for a role inferred from traffic \
             (`infer = \"fans-out\"`); a probed role has none",
            "x.toml:20:39: the duration must be greater than zero",
        ]
    );
}
