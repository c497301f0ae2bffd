//! The applied record: schedule.applied.toml.

use ordeal_faults::{
    applied_to_toml, parse_applied_toml, read_applied_toml, write_applied_toml, Applied, Error,
    Schedule, APPLIED_FILE,
};

fn sample() -> Vec<Applied> {
    let s = Schedule::parse(
        r#"
[[fault]]
name = "crash-primary"
kind = "crash"
node = "n0"
trigger = { nth = 3, call = "write", peer = "client", when = "after" }
[[fault]]
kind = "short-io"
max_bytes = 1
trigger = { p = 0.5, times = 2, call = "read" }
[[fault]]
kind = "pause"
node = "n2"
duration = "1s"
trigger = { after = "10s" }
"#,
        "s.toml",
    )
    .unwrap();
    let f = &s.faults;
    let mut crash = Applied::fired_at(&f[0], Some(812), 190_233_511);
    crash.node = Some("n0".into());
    crash.detail = Some("crash after write (SIGKILL to process group 4121)".into());
    let mut short1 = Applied::fired_at(&f[1], Some(17), 1_000);
    short1.node = Some("n1".into());
    short1.detail = Some("read of 4096 bytes cut to 1 \"quoted\"\nsecond line".into());
    let mut short2 = Applied::fired_at(&f[1], None, 2_000);
    short2.detail = Some("tab\there back\\slash \u{1} \u{7f} é".into());
    vec![crash, short1, short2, Applied::not_fired(&f[2])]
}

#[test]
fn exact_text() {
    assert_eq!(
        applied_to_toml(&sample()),
        r#"# Written by ordeal: what the faults of the schedule did in this run. One [[applied]] table per
# firing, in firing order, then one with fired = false for each fault that never fired.

[[applied]]
fault = "crash-primary"
kind = "crash"
fired = true
seq = 812
time_ns = 190233511
node = "n0"
detail = "crash after write (SIGKILL to process group 4121)"

[[applied]]
fault = "short-io-2"
kind = "short-io"
fired = true
seq = 17
time_ns = 1000
node = "n1"
detail = "read of 4096 bytes cut to 1 \"quoted\"\nsecond line"

[[applied]]
fault = "short-io-2"
kind = "short-io"
fired = true
time_ns = 2000
detail = "tab\there back\\slash \u0001 \u007F é"

[[applied]]
fault = "pause-3"
kind = "pause"
fired = false
"#
    );
}

#[test]
fn round_trips_through_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(APPLIED_FILE);
    write_applied_toml(&sample(), &path).unwrap();
    assert_eq!(read_applied_toml(&path).unwrap(), sample());
    assert_eq!(
        parse_applied_toml(&applied_to_toml(&sample()), "x").unwrap(),
        sample()
    );
    // Empty records too.
    write_applied_toml(&[], &path).unwrap();
    assert_eq!(read_applied_toml(&path).unwrap(), vec![]);
    assert_eq!(APPLIED_FILE, "schedule.applied.toml");
}

#[test]
fn errors() {
    let e = parse_applied_toml(
        "[[applied]]\nfault = \"a\"\nkind = \"crash\"\nfired = true\nseq = -1\n",
        "r/schedule.applied.toml",
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "r/schedule.applied.toml:5:7: invalid value: integer `-1`, expected u64"
    );
    let e =
        parse_applied_toml("[[applied]]\nfault = \"a\"\nkind = \"crash\"\n", "a.toml").unwrap_err();
    assert_eq!(e.to_string(), "a.toml:1:1: missing field `fired`");
    let e = parse_applied_toml(
        "[[applied]]\nfault = \"a\"\nkind = \"crash\"\nfired = false\nwhy = 1\n",
        "a.toml",
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "a.toml:5:1: unknown field `why`, expected one of `fault`, `kind`, `fired`, `seq`, \
         `time_ns`, `role`, `node`, `detail`"
    );
    let dir = tempfile::tempdir().unwrap();
    let e = read_applied_toml(dir.path().join("none.toml")).unwrap_err();
    assert!(matches!(e, Error::Read { .. }), "{e}");
    assert!(e.to_string().contains("cannot read applied record"), "{e}");
    let e = write_applied_toml(&sample(), dir.path().join("no/such/dir/x.toml")).unwrap_err();
    assert!(matches!(e, Error::Write { .. }), "{e}");
}
