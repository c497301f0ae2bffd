//! Parsing and validating fault schedules.

use std::time::Duration;

use ordeal_faults::{
    Class, Direction, Errno, Error, Fault, FaultKind, Participants, PathGlob, Pattern, Schedule,
    Shape, Trigger, When,
};

fn who() -> Participants {
    Participants::new(["n0", "n1", "n2"], ["client"])
}

/// The diagnostics of parsing and validating `text` (as `f.toml`) for nodes n0, n1, n2 and the
/// workload client.
fn errors(text: &str) -> Vec<String> {
    match Schedule::parse_for(text, "f.toml", &who()) {
        Ok(s) => panic!("expected errors, parsed {s:#?}"),
        Err(e) => e.to_string().lines().map(str::to_string).collect(),
    }
}

fn assert_errors(text: &str, expected: &[&str]) {
    assert_eq!(errors(text), expected, "for:\n{text}");
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn pattern() -> Pattern {
    Pattern::default()
}

const EVERY_KIND: &str = r#"
seed = 42

[[fault]]
name = "crash-primary-after-ack"
kind = "crash"
node = "n0"
restart_after = "500ms"
[fault.trigger]
nth = 3
when = "after"
node = "n0"
call = "write"
peer = "client"

[[fault]]
kind = "restart"
node = "n0"
trigger = { after = "5s" }

[[fault]]
kind = "pause"
node = "n2"
duration = "2s"
trigger = { after = "1s" }

[[fault]]
name = "slow-fsync"
kind = "delay"
duration = "300ms"
trigger = { p = 0.25, times = 3, node = "n1", class = "file", call = "fsync", when = "after" }

[[fault]]
name = "eio-on-fsync"
kind = "fail"
errno = "EIO"
trigger = { nth = 1, node = "n1", call = "fsync", when = "before" }

[[fault]]
kind = "short-io"
max_bytes = 1
trigger = { nth = 2, times = 10, node = "n0", call = "read", peer = "n1" }

[[fault]]
name = "isolate-n0"
kind = "partition"
from = ["n0"]
to = ["n1", "n2"]
oneway = true
duration = "1m"
trigger = { nth = 1, node = "client", direction = "send" }

[[fault]]
kind = "heal"
trigger = { p = 1, path = "wal/*.log" }
"#;

#[test]
fn parses_every_kind() {
    let s = Schedule::parse_for(EVERY_KIND, "every.toml", &who()).unwrap();
    assert_eq!(s.seed, 42);
    assert_eq!(s.file(), "every.toml");
    let expected = vec![
        Fault {
            name: "crash-primary-after-ack".into(),
            kind: FaultKind::Crash {
                node: "n0".into(),
                restart_after: Some(ms(500)),
            },
            trigger: Trigger::At {
                nth: 3,
                times: 1,
                pattern: Pattern {
                    node: Some("n0".into()),
                    call: Some("write".into()),
                    peer: Some("client".into()),
                    ..pattern()
                },
                when: When::After,
            },
        },
        Fault {
            name: "restart-2".into(),
            kind: FaultKind::Restart { node: "n0".into() },
            trigger: Trigger::Time {
                after: Duration::from_secs(5),
            },
        },
        Fault {
            name: "pause-3".into(),
            kind: FaultKind::Pause {
                node: "n2".into(),
                duration: Duration::from_secs(2),
            },
            trigger: Trigger::Time {
                after: Duration::from_secs(1),
            },
        },
        Fault {
            name: "slow-fsync".into(),
            kind: FaultKind::Delay { duration: ms(300) },
            trigger: Trigger::Probability {
                p: 0.25,
                times: 3,
                pattern: Pattern {
                    node: Some("n1".into()),
                    call: Some("fsync".into()),
                    class: Some(Class::File),
                    ..pattern()
                },
                when: When::After,
            },
        },
        Fault {
            name: "eio-on-fsync".into(),
            kind: FaultKind::Fail { errno: Errno::EIO },
            trigger: Trigger::nth(
                1,
                Pattern {
                    node: Some("n1".into()),
                    call: Some("fsync".into()),
                    ..pattern()
                },
            ),
        },
        Fault {
            name: "short-io-6".into(),
            kind: FaultKind::ShortIo { max_bytes: 1 },
            trigger: Trigger::At {
                nth: 2,
                times: 10,
                pattern: Pattern {
                    node: Some("n0".into()),
                    call: Some("read".into()),
                    peer: Some("n1".into()),
                    ..pattern()
                },
                when: When::Before,
            },
        },
        Fault {
            name: "isolate-n0".into(),
            kind: FaultKind::Partition {
                from: vec!["n0".into()],
                to: vec!["n1".into(), "n2".into()],
                shape: None,
                oneway: true,
                duration: Some(Duration::from_secs(60)),
            },
            trigger: Trigger::nth(
                1,
                Pattern {
                    node: Some("client".into()),
                    direction: Some(Direction::Send),
                    ..pattern()
                },
            ),
        },
        Fault {
            name: "heal-8".into(),
            kind: FaultKind::Heal,
            trigger: Trigger::Probability {
                p: 1.0,
                times: 1,
                pattern: Pattern {
                    path: Some(PathGlob::new("wal/*.log").unwrap()),
                    ..pattern()
                },
                when: When::Before,
            },
        },
    ];
    assert_eq!(s.faults, expected);
    assert_eq!(s.fault("slow-fsync").unwrap().kind.name(), "delay");
    // The same file, parsed without names then validated, is the same schedule.
    let s2 = Schedule::parse(EVERY_KIND, "every.toml").unwrap();
    s2.validate_for(&who()).unwrap();
    assert_eq!(s2, s);
}

#[test]
fn defaults() {
    let s = Schedule::parse(
        "[[fault]]\nkind = \"fail\"\nerrno = \"ECONNREFUSED\"\ntrigger = { nth = 2, call = \"connect\" }\n\
         [[fault]]\nkind = \"partition\"\nfrom = [\"a\"]\nto = [\"b\"]\ntrigger = { after = \"0s\" }\n",
        "d.toml",
    )
    .unwrap();
    assert_eq!(s.seed, 0);
    assert_eq!(s.faults[0].name, "fail-1");
    assert_eq!(
        s.faults[0].trigger,
        Trigger::At {
            nth: 2,
            times: 1,
            pattern: Pattern {
                call: Some("connect".into()),
                ..pattern()
            },
            when: When::Before
        }
    );
    assert_eq!(
        s.faults[1].kind,
        FaultKind::Partition {
            from: vec!["a".into()],
            to: vec!["b".into()],
            shape: None,
            oneway: false,
            duration: None
        }
    );
    // A time trigger may fire right at the workload's start.
    assert_eq!(
        s.faults[1].trigger,
        Trigger::Time {
            after: Duration::ZERO
        }
    );
    assert_eq!(Errno::ECONNREFUSED.code(), libc_econnrefused());
}

fn libc_econnrefused() -> i32 {
    111 // Linux
}

#[test]
fn file_errors() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.toml");
    let e = Schedule::from_path(&missing).unwrap_err();
    assert!(matches!(e, Error::Read { .. }));
    assert!(
        e.to_string().starts_with(&format!(
            "{}: cannot read fault schedule: ",
            missing.display()
        )),
        "{e}"
    );
    let file = dir.path().join("f.toml");
    std::fs::write(
        &file,
        "[[fault]]\nkind = \"heal\"\ntrigger = { after = \"1s\" }\n",
    )
    .unwrap();
    let s = Schedule::load(&file, &who()).unwrap();
    assert_eq!(s.faults[0].name, "heal-1");
    assert_eq!(Schedule::from_path(&file).unwrap(), s);
}

#[test]
fn syntax_errors_are_reported_with_positions() {
    assert_errors(
        "[[fault]]\nkind = \"heal\"\ncolour = \"red\"\n",
        &[
            "f.toml:3:1: unknown field `colour`, expected one of `name`, `kind`, `node`, `role`, \
           `restart_after`, `duration`, `errno`, `max_bytes`, `from`, `to`, `oneway`, `shape`, `proxy`, \
           `toxic`, `signal`, `trigger`",
        ],
    );
    assert_errors(
        "[fault]\nkind = \"heal\"\n",
        &[
            "f.toml:1:1: invalid type: map, expected a sequence (write `[[fault]]`: each fault \
           is an entry of the `fault` array)",
        ],
    );
    assert_errors(
        "[[fault]]\nkind = \"heal\"\ntrigger = { nth = \"3\" }\n",
        &["f.toml:3:19: invalid type: string \"3\", expected i64"],
    );
    assert_errors(
        "[[fault]]\nkind = \"heal\"\ntrigger = { p = \"half\" }\n",
        &["f.toml:3:17: invalid type: string \"half\", expected a number between 0 and 1"],
    );
    assert_errors(
        "seed = 1\n",
        &["f.toml: the schedule has no fault: add at least one [[fault]] table"],
    );
    assert_errors(
        "seed = -3\n[[fault]]\nkind = \"heal\"\ntrigger = { after = \"1s\" }\n",
        &["f.toml:1:8: `seed` must be a whole number, 0 or more"],
    );
}

#[test]
fn kinds_and_keys() {
    assert_errors(
        "[[fault]]\nkind = \"explode\"\ntrigger = { after = \"1s\" }\n",
        &[
            "f.toml:2:8: unknown fault kind `explode`: expected crash, restart, pause, delay, \
           fail, short-io, partition, heal, snapshot, toxic, signal",
        ],
    );
    assert_errors(
        "[[fault]]\nnode = \"n0\"\ntrigger = { after = \"1s\" }\n",
        &[
            "f.toml:1:1: the fault has no `kind`: write kind = \"crash\", \"restart\", \"pause\", \
           \"delay\", \"fail\", \"short-io\", \"partition\", \"heal\", \"snapshot\", \"toxic\" or \
           \"signal\"",
        ],
    );
    assert_errors(
        "[[fault]]\nkind = \"pause\"\nnode = \"n0\"\nerrno = \"EIO\"\ntrigger = { after = \"1s\" }\n",
        &[
            "f.toml:1:1: a `pause` fault needs `duration` (how long the node stays stopped, e.g. \"2s\")",
            "f.toml:4:9: `errno` does not apply to a `pause` fault (a `pause` fault takes `node`, `role` and `duration`)",
        ],
    );
    assert_errors(
        "[[fault]]\nkind = \"heal\"\nnode = \"n0\"\ntrigger = { after = \"1s\" }\n",
        &["f.toml:3:8: `node` does not apply to a `heal` fault (a `heal` fault takes only `name`, `kind` and `trigger`)"],
    );
    assert_errors(
        "[[fault]]\nkind = \"fail\"\ntrigger = { nth = 1, call = \"connect\" }\n\
         [[fault]]\nkind = \"short-io\"\ntrigger = { nth = 1, call = \"read\" }\n\
         [[fault]]\nkind = \"partition\"\nto = [\"n1\"]\ntrigger = { after = \"1s\" }\n",
        &[
            "f.toml:1:1: a `fail` fault needs `errno` (the error the call returns, e.g. \"ECONNREFUSED\")",
            "f.toml:4:1: a `short-io` fault needs `max_bytes` (the most bytes the call may move, e.g. 1)",
            "f.toml:7:1: a `partition` fault needs `from` (a list of node names)",
        ],
    );
    assert_errors(
        "[[fault]]\nkind = \"crash\"\nnode = \"n0\"\n",
        &[
            "f.toml:1:1: the fault has no `trigger`: add `trigger = { nth = 1, call = \"...\" }` \
           (the nth matching event), `{ after = \"1s\" }` (a time after the workload starts) or \
           `{ p = 0.01, call = \"...\" }` (a probability per matching event)",
        ],
    );
}

#[test]
fn names() {
    assert_errors(
        "[[fault]]\nname = \"a b\"\nkind = \"heal\"\ntrigger = { after = \"1s\" }\n",
        &[
            "f.toml:2:8: invalid fault name `a b`: use letters, digits, `_`, `.` and `-` (it \
           names the fault in schedule.applied.toml)",
        ],
    );
    assert_errors(
        "[[fault]]\nname = \"x\"\nkind = \"heal\"\ntrigger = { after = \"1s\" }\n\
         [[fault]]\nname = \"x\"\nkind = \"heal\"\ntrigger = { after = \"2s\" }\n",
        &["f.toml:6:8: duplicate fault name `x` (first used at f.toml:2:8): fault names must be unique"],
    );
    assert_errors(
        "[[fault]]\nname = \"heal-2\"\nkind = \"heal\"\ntrigger = { after = \"1s\" }\n\
         [[fault]]\nkind = \"heal\"\ntrigger = { after = \"2s\" }\n",
        &[
            "f.toml:5:1: duplicate fault name `heal-2` (this fault's default name; first used \
           at f.toml:2:8): fault names must be unique",
        ],
    );
}

#[test]
fn trigger_values() {
    assert_errors(
        "[[fault]]\nkind = \"heal\"\ntrigger = { node = \"n0\" }\n\
         [[fault]]\nkind = \"heal\"\ntrigger = { nth = 1, p = 0.5, after = \"1s\" }\n",
        &[
            "f.toml:3:11: the trigger needs one of `nth` (fire at the nth matching event), `p` \
             (fire with this probability at each matching event) or `after` (fire this long \
             after the workload starts)",
            "f.toml:6:11: the trigger has `nth` and `p` and `after`: give only one of `nth` \
             (fire at the nth matching event), `p` (fire with this probability at each \
             matching event) or `after` (fire this long after the workload starts)",
        ],
    );
    assert_errors(
        "[[fault]]\nkind = \"heal\"\ntrigger = { after = \"1s\", call = \"read\", when = \"after\" }\n",
        &[
            "f.toml:3:34: `call` does not apply to a time trigger (`after`), which counts no \
             events; use `nth` or `p` to fire at a matching event",
            "f.toml:3:49: `when` does not apply to a time trigger (`after`), which counts no \
             events; use `nth` or `p` to fire at a matching event",
        ],
    );
    assert_errors(
        "[[fault]]\nkind = \"heal\"\ntrigger = { nth = 0 }\n\
         [[fault]]\nkind = \"heal\"\ntrigger = { nth = -2, times = 0 }\n\
         [[fault]]\nkind = \"heal\"\n[fault.trigger]\np = 1.5\ntimes = -1\n\
         [[fault]]\nkind = \"heal\"\ntrigger = { p = -0.1 }\n\
         [[fault]]\nkind = \"heal\"\ntrigger = { p = nan }\n",
        &[
            "f.toml:3:19: `nth` must be 1 or more (1 is the first matching event)",
            "f.toml:6:19: `nth` must be 1 or more (1 is the first matching event)",
            "f.toml:6:31: `times` must be 1 or more",
            "f.toml:10:5: `p` is a probability per matching event: it must be between 0 and 1, not 1.5",
            "f.toml:11:9: `times` must be 1 or more",
            "f.toml:14:17: `p` is a probability per matching event: it must be between 0 and 1, not -0.1",
            "f.toml:17:17: `p` is a probability per matching event: it must be between 0 and 1, not NaN",
        ],
    );
    assert_errors(
        "[[fault]]\nkind = \"heal\"\ntrigger = { nth = 1, when = \"during\", class = \"disk\", \
         direction = \"out\", path = \"a[\" }\n",
        &[
            "f.toml:3:29: `when` must be \"before\" (at the call's entry) or \"after\" (once it \
             completed), not \"during\"",
            "f.toml:3:47: unknown class `disk`: expected \"net\", \"data\", \"file\" or \"proc\"",
            "f.toml:3:67: `direction` must be \"send\" or \"recv\", not \"out\"",
            "f.toml:3:81: invalid path glob `a[`: unclosed character class; missing ']'",
        ],
    );
}

#[test]
fn durations() {
    assert_errors(
        "[[fault]]\nkind = \"pause\"\nnode = \"n0\"\nduration = \"0s\"\ntrigger = { after = \"1s\" }\n\
         [[fault]]\nkind = \"crash\"\nnode = \"n0\"\nrestart_after = \"0ms\"\ntrigger = { after = \"1s\" }\n\
         [[fault]]\nkind = \"delay\"\nduration = \"0s\"\ntrigger = { nth = 1, call = \"connect\" }\n\
         [[fault]]\nkind = \"partition\"\nfrom = [\"n0\"]\nto = [\"n1\"]\nduration = \"0s\"\ntrigger = { after = \"1s\" }\n\
         [[fault]]\nkind = \"pause\"\nnode = \"n0\"\nduration = \"2 seconds\"\ntrigger = { after = \"-1s\" }\n",
        &[
            "f.toml:4:12: the duration must be greater than zero",
            "f.toml:9:17: the duration must be greater than zero",
            "f.toml:13:12: the duration must be greater than zero",
            "f.toml:19:12: the duration must be greater than zero",
            "f.toml:24:12: invalid duration `2 seconds`: expected a whole number followed by a \
             unit (`ms`, `s`, `m` or `h`), e.g. \"500ms\", \"30s\" or \"1m30s\"",
            "f.toml:25:21: invalid duration `-1s`: expected a whole number followed by a unit \
             (`ms`, `s`, `m` or `h`), e.g. \"500ms\", \"30s\" or \"1m30s\"",
        ],
    );
}

#[test]
fn node_names() {
    assert_errors(
        "[[fault]]\nkind = \"crash\"\nnode = \"n9\"\ntrigger = { nth = 1, node = \"n8\", peer = \"n7\", call = \"write\" }\n\
         [[fault]]\nkind = \"pause\"\nnode = \"client\"\nduration = \"1s\"\ntrigger = { nth = 1, node = \"client\" }\n\
         [[fault]]\nkind = \"restart\"\nnode = \"N0\"\ntrigger = { after = \"1s\" }\n",
        &[
            "f.toml:3:8: unknown node `n9` (nodes: n0, n1, n2)",
            "f.toml:4:29: unknown node `n8` (nodes: n0, n1, n2; workloads: client)",
            "f.toml:4:42: unknown node `n7` (nodes: n0, n1, n2; workloads: client)",
            "f.toml:7:8: `client` is a workload: a `pause` fault acts on a node (nodes: n0, n1, n2)",
            "f.toml:12:8: unknown node `N0` (nodes: n0, n1, n2)",
        ],
    );
}

#[test]
fn partitions() {
    assert_errors(
        "[[fault]]\nkind = \"partition\"\nfrom = [\"n0\", \"n1\", \"n0\"]\nto = [\"n1\", \"n5\"]\n\
         trigger = { after = \"1s\" }\n\
         [[fault]]\nkind = \"partition\"\nfrom = []\nto = [\"client\"]\ntrigger = { after = \"1s\" }\n",
        &[
            "f.toml:3:21: `n0` is listed twice in `from`",
            "f.toml:4:7: `n1` is on both sides of the partition: a node cannot be cut off from itself",
            "f.toml:4:13: unknown node `n5` (nodes: n0, n1, n2; workloads: client)",
            "f.toml:8:8: `from` must name at least one node",
        ],
    );
}

#[test]
fn partition_shapes() {
    let s = Schedule::parse_for(
        "[[fault]]\nname = \"iso\"\nkind = \"partition\"\nshape = \"isolate\"\nnode = \"n0\"\n\
         duration = \"2s\"\ntrigger = { after = \"1s\" }\n\
         [[fault]]\nkind = \"partition\"\nshape = \"ring\"\ntrigger = { after = \"1s\" }\n",
        "f.toml",
        &who(),
    )
    .unwrap();
    assert_eq!(
        s.faults[0].kind,
        FaultKind::Partition {
            from: Vec::new(),
            to: Vec::new(),
            shape: Some(Shape::Isolate {
                node: Some("n0".into())
            }),
            oneway: false,
            duration: Some(ms(2000)),
        }
    );
    assert_eq!(
        (s.faults[1].name.as_str(), &s.faults[1].kind),
        (
            "partition-2",
            &FaultKind::Partition {
                from: Vec::new(),
                to: Vec::new(),
                shape: Some(Shape::Ring),
                oneway: false,
                duration: None,
            }
        )
    );
    // Written back as it was given.
    let text = s.to_toml();
    assert!(
        text.contains(
            "kind = \"partition\"\nshape = \"isolate\"\nnode = \"n0\"\nduration = \"2000ms\"\n"
        ),
        "{text}"
    );
    assert_eq!(Schedule::parse_for(&text, "back.toml", &who()).unwrap(), s);

    assert_errors(
        "[[fault]]\nkind = \"partition\"\nshape = \"isolate\"\nfrom = [\"n0\"]\nto = [\"n1\"]\n\
         trigger = { after = \"1s\" }\n\
         [[fault]]\nkind = \"partition\"\nshape = \"star\"\ntrigger = { after = \"1s\" }\n\
         [[fault]]\nkind = \"partition\"\nshape = \"isolate\"\nnode = \"n7\"\ntrigger = { after = \"1s\" }\n\
         [[fault]]\nkind = \"partition\"\nshape = \"isolate\"\nnode = \"client\"\ntrigger = { after = \"1s\" }\n\
         [[fault]]\nkind = \"partition\"\nshape = \"halves\"\nnode = \"n1\"\ntrigger = { after = \"1s\" }\n\
         [[fault]]\nkind = \"partition\"\nshape = \"ring\"\noneway = true\ntrigger = { after = \"1s\" }\n\
         [[fault]]\nkind = \"partition\"\ntrigger = { after = \"1s\" }\n\
         [[fault]]\nkind = \"partition\"\nfrom = [\"n0\"]\nnode = \"n1\"\ntrigger = { after = \"1s\" }\n",
        &[
            "f.toml:3:9: `shape` and `from`/`to` are two ways to say what the partition cuts: give \
             a shape or the two sides, not both",
            "f.toml:9:9: unknown shape `star`: expected \"isolate\", \"halves\", \"bridge\" or \"ring\"",
            "f.toml:14:8: unknown node `n7` (nodes: n0, n1, n2)",
            "f.toml:19:8: `client` is a workload: a `partition` fault acts on a node (nodes: n0, \
             n1, n2)",
            "f.toml:24:8: `node` applies to shape = \"isolate\" only (the node cut off), not to \
             shape = \"halves\"",
            "f.toml:29:10: `oneway` applies to `from` and `to` only: shape = \"ring\" says itself \
             which ways it cuts",
            "f.toml:31:1: a `partition` fault needs `from` and `to` (lists of node names) or \
             `shape` (\"isolate\", \"halves\", \"bridge\" or \"ring\")",
            "f.toml:37:8: `node` applies to shape = \"isolate\" only (the node cut off), not to \
             `from` and `to`",
        ],
    );
    // A shape needs enough nodes; checked once the experiment's nodes are known.
    let two = Participants::new(["a", "b"], ["client"]);
    let bridge =
        "[[fault]]\nkind = \"partition\"\nshape = \"bridge\"\ntrigger = { after = \"1s\" }\n";
    assert!(Schedule::parse(bridge, "f.toml").is_ok());
    assert_eq!(
        Schedule::parse_for(bridge, "f.toml", &two)
            .unwrap_err()
            .to_string(),
        "f.toml:3:9: a `bridge` partition needs at least 3 nodes (the experiment has 2)"
    );
}

#[test]
fn calls_and_classes() {
    assert_errors(
        "[[fault]]\nkind = \"crash\"\nnode = \"n0\"\ntrigger = { nth = 1, call = \"wrtie\" }\n\
         [[fault]]\nkind = \"crash\"\nnode = \"n0\"\ntrigger = { nth = 1, call = \"ioctl\" }\n",
        &[
            "f.toml:4:29: unknown call `wrtie` (did you mean `write`?): the recorded calls are \
             socket, socketpair, bind, listen, connect, accept, accept4, shutdown, close, read, \
             write, readv, writev, sendto, recvfrom, sendmsg, recvmsg, sendmmsg, recvmmsg, \
             open, openat, creat, pwrite64, pwritev, pwritev2, copy_file_range, sendfile, fsync, fdatasync, sync_file_range, syncfs, \
             sync, ftruncate, truncate, rename, renameat, renameat2, unlink, unlinkat, mkdir, \
             mkdirat, rmdir, link, linkat, symlink, symlinkat, msync, fallocate, and the lifecycle steps spawn, fork, vfork, clone, exec, exit",
            "f.toml:8:29: unknown call `ioctl`: the recorded calls are socket, socketpair, bind, \
             listen, connect, accept, accept4, shutdown, close, read, write, readv, writev, \
             sendto, recvfrom, sendmsg, recvmsg, sendmmsg, recvmmsg, open, openat, creat, \
             pwrite64, pwritev, pwritev2, copy_file_range, sendfile, fsync, fdatasync, sync_file_range, syncfs, sync, ftruncate, \
             truncate, rename, renameat, renameat2, unlink, unlinkat, mkdir, mkdirat, rmdir, \
             link, linkat, symlink, symlinkat, msync, fallocate, and the lifecycle steps spawn, fork, vfork, clone, exec, exit",
        ],
    );
}

/// One crash fault with this trigger table body, for the impossible-combination checks.
fn crash_with(trigger: &str) -> String {
    format!("[[fault]]\nkind = \"crash\"\nnode = \"n0\"\ntrigger = {{ nth = 1, {trigger} }}\n")
}

#[test]
fn impossible_combinations() {
    let cases: &[(&str, &str)] = &[
        (
            "call = \"connect\", class = \"file\"",
            "f.toml:4:48: `connect` is never of class `file` (it is `net`)",
        ),
        (
            "call = \"write\", class = \"net\"",
            "f.toml:4:46: `write` is never of class `net` (it is `data` or `file`)",
        ),
        (
            "class = \"file\", direction = \"send\"",
            "f.toml:4:50: `direction` only applies to socket data calls (class `data`), not to \
             class `file`",
        ),
        (
            "call = \"fsync\", direction = \"send\"",
            "f.toml:4:50: `direction` only applies to socket data calls (class `data`), not to \
             `fsync`",
        ),
        (
            "call = \"read\", direction = \"send\"",
            "f.toml:4:49: `read` always receives: it never matches direction = \"send\"",
        ),
        (
            "class = \"proc\", peer = \"n1\"",
            "f.toml:4:45: `peer` only applies to socket calls (classes `net` and `data`), not to \
             class `proc`",
        ),
        (
            "call = \"rename\", peer = \"n1\"",
            "f.toml:4:46: `peer` only applies to socket calls (classes `net` and `data`), not to \
             `rename`",
        ),
        (
            "call = \"listen\", peer = \"n1\"",
            "f.toml:4:46: `listen` has no peer node: only a connected socket has one",
        ),
        (
            "call = \"accept\", peer = \"n1\"",
            "f.toml:4:46: the peer of an `accept` is known only once the call returns: use when \
             = \"after\" with `peer`",
        ),
        (
            "call = \"accept4\", peer = \"n1\", when = \"before\"",
            "f.toml:4:60: the peer of an `accept4` is known only once the call returns: use when \
             = \"after\" with `peer`",
        ),
        (
            "class = \"data\", path = \"*.log\"",
            "f.toml:4:45: `path` only applies to file calls (class `file`), not to class `data`",
        ),
        (
            "call = \"connect\", path = \"*.log\"",
            "f.toml:4:47: `path` only applies to file calls (class `file`), not to `connect`",
        ),
        (
            "call = \"sync\", path = \"*.log\"",
            "f.toml:4:44: `sync` has no path: it flushes every file system",
        ),
        (
            "peer = \"n1\", path = \"*.log\"",
            "f.toml:4:42: `path` (a file) and `peer` or `direction` (a socket) cannot match the \
             same call",
        ),
    ];
    for (trigger, expected) in cases {
        assert_errors(&crash_with(trigger), &[expected]);
    }
    // Possible ones pass.
    for ok in [
        "call = \"accept\", peer = \"n1\", when = \"after\"",
        "call = \"write\", class = \"file\", path = \"data/*\"",
        "call = \"close\", peer = \"n1\"",
        "class = \"net\", peer = \"n1\"",
        "call = \"exit\", node = \"n1\"",
        "class = \"proc\"",
        "direction = \"recv\", peer = \"client\"",
        "call = \"renameat2\", path = \"/tmp/x/**\"",
    ] {
        Schedule::parse_for(&crash_with(ok), "f.toml", &who())
            .unwrap_or_else(|e| panic!("{ok}: {e}"));
    }
}

#[test]
fn call_level_faults_need_a_call_trigger() {
    assert_errors(
        "[[fault]]\nkind = \"delay\"\nduration = \"1s\"\ntrigger = { after = \"2s\" }\n\
         [[fault]]\nkind = \"fail\"\nerrno = \"EIO\"\ntrigger = { after = \"2s\" }\n\
         [[fault]]\nkind = \"short-io\"\nmax_bytes = 3\ntrigger = { after = \"2s\" }\n\
         [[fault]]\nkind = \"delay\"\nduration = \"1s\"\ntrigger = { nth = 1, class = \"proc\" }\n",
        &[
            "f.toml:4:21: a `delay` fault acts on one system call: its trigger needs `nth` or \
             `p` (a matching call), not `after`",
            "f.toml:8:21: a `fail` fault acts on one system call: its trigger needs `nth` or `p` \
             (a matching call), not `after`",
            "f.toml:12:21: a `short-io` fault acts on one system call: its trigger needs `nth` \
             or `p` (a matching call), not `after`",
            "f.toml:16:30: a `delay` fault acts on a system call, but this trigger matches only \
             lifecycle events (class `proc`)",
        ],
    );
    // Node-level faults take any trigger.
    for kind in [
        "kind = \"crash\"\nnode = \"n0\"",
        "kind = \"restart\"\nnode = \"n0\"",
        "kind = \"pause\"\nnode = \"n0\"\nduration = \"1s\"",
        "kind = \"partition\"\nfrom = [\"n0\"]\nto = [\"n1\"]",
        "kind = \"heal\"",
    ] {
        for trigger in [
            "{ after = \"1s\" }",
            "{ nth = 4 }",
            "{ p = 0.1, class = \"net\" }",
        ] {
            let text = format!("[[fault]]\n{kind}\ntrigger = {trigger}\n");
            Schedule::parse_for(&text, "f.toml", &who()).unwrap_or_else(|e| panic!("{e}"));
        }
    }
}

#[test]
fn errnos() {
    assert_errors(
        "[[fault]]\nkind = \"fail\"\nerrno = \"EAGAIN\"\ntrigger = { nth = 1, call = \"read\" }\n",
        &[
            "f.toml:3:9: unknown errno `EAGAIN`: a `fail` fault can inject EACCES, EADDRINUSE, \
           ECONNABORTED, ECONNREFUSED, ECONNRESET, EHOSTUNREACH, EIO, EMFILE, ENETUNREACH, \
           ENFILE, ENOSPC, EPIPE, ETIMEDOUT",
        ],
    );
    let fail = |errno: &str, trigger: &str| {
        format!(
            "[[fault]]\nkind = \"fail\"\nerrno = \"{errno}\"\ntrigger = {{ nth = 1, {trigger} }}\n"
        )
    };
    let cases: &[(&str, &str, &str)] = &[
        (
            "ECONNRESET",
            "call = \"connect\"",
            "f.toml:3:9: `ECONNRESET` does not apply to `connect`: `ECONNRESET` applies to read, \
             write, readv, writev, sendto, recvfrom, sendmsg, recvmsg, sendmmsg, recvmmsg (data)",
        ),
        (
            "EIO",
            "call = \"write\"",
            "f.toml:3:9: `EIO` does not apply to `write` (class data), which this trigger can \
             also match: narrow it with class = \"file\" (`EIO` applies to write, writev, \
             pwrite64, pwritev, pwritev2, copy_file_range, sendfile, fsync, fdatasync, sync_file_range, syncfs, ftruncate, truncate, \
             rename, renameat, renameat2, unlink, unlinkat, mkdir, mkdirat, rmdir, link, linkat, \
             symlink, symlinkat, msync, fallocate (file))",
        ),
        (
            "EPIPE",
            "class = \"data\"",
            "f.toml:3:9: `EPIPE` does not apply to `read`, `readv`, `recvfrom`, `recvmsg` and \
             `recvmmsg`, which this trigger can also match: narrow it with direction = \"send\" \
             (`EPIPE` applies to write, writev, sendto, sendmsg, sendmmsg (data))",
        ),
        (
            "EMFILE",
            "node = \"n0\"",
            "f.toml:3:9: `EMFILE` does not apply to `bind`, `listen`, `connect`, `shutdown`, \
             `close` (class net) and 39 more, which this trigger can also match: narrow it with `call`, \
             `class` or `direction` (`EMFILE` applies to socket, socketpair, accept, accept4 \
             (net); open, openat, creat (file))",
        ),
        (
            "EACCES",
            "class = \"data\"",
            "f.toml:3:9: `EACCES` does not apply to any call this trigger can match: `EACCES` \
             applies to open, openat, creat, rename, renameat, renameat2, unlink, unlinkat, \
             mkdir, mkdirat, rmdir, link, linkat, symlink, symlinkat (file)",
        ),
        (
            "EIO",
            "call = \"close\"",
            "f.toml:3:9: `EIO` does not apply to `close` (class net) or `close` (class file): \
             `EIO` applies to write, writev, pwrite64, pwritev, pwritev2, copy_file_range, sendfile, fsync, fdatasync, \
             sync_file_range, syncfs, ftruncate, truncate, rename, renameat, renameat2, unlink, \
             unlinkat, mkdir, mkdirat, rmdir, link, linkat, symlink, symlinkat, msync, fallocate (file)",
        ),
        (
            "ECONNREFUSED",
            "call = \"connect\", when = \"after\"",
            "f.toml:4:47: a `fail` fault fires before the call (it returns an error instead of \
             running the call): use when = \"before\"",
        ),
    ];
    for (errno, trigger, expected) in cases {
        assert_errors(&fail(errno, trigger), &[expected]);
    }
    // The table of the issue, and the documented additions.
    for (errno, trigger) in [
        ("ECONNREFUSED", "call = \"connect\""),
        ("ETIMEDOUT", "call = \"connect\""),
        ("ENETUNREACH", "call = \"connect\""),
        ("EHOSTUNREACH", "call = \"connect\""),
        ("ECONNRESET", "class = \"data\""),
        ("ETIMEDOUT", "class = \"data\", peer = \"n1\""),
        ("EPIPE", "direction = \"send\""),
        ("EPIPE", "call = \"sendmsg\""),
        ("EIO", "call = \"fsync\""),
        ("ENOSPC", "call = \"write\", class = \"file\""),
        (
            "EIO",
            "class = \"file\", path = \"*.wal\", call = \"pwrite64\"",
        ),
        ("EACCES", "call = \"openat\""),
        ("EMFILE", "call = \"open\""),
        ("ENFILE", "call = \"creat\""),
        ("EMFILE", "call = \"accept4\""),
        ("ECONNABORTED", "call = \"accept\""),
        ("EADDRINUSE", "call = \"bind\""),
        ("ENOSPC", "call = \"rename\""),
    ] {
        Schedule::parse_for(&fail(errno, trigger), "f.toml", &who())
            .unwrap_or_else(|e| panic!("{errno} {trigger}: {e}"));
    }
}

#[test]
fn short_io_only_on_plain_socket_transfers() {
    let short = |trigger: &str| {
        format!(
            "[[fault]]\nkind = \"short-io\"\nmax_bytes = 0\ntrigger = {{ nth = 1, {trigger} }}\n"
        )
    };
    assert_errors(
        &short("call = \"recvfrom\""),
        &[
            "f.toml:3:13: `max_bytes` must be 1 or more (a transfer of 0 bytes reads as the end \
           of the stream, not as a short transfer)",
        ],
    );
    let short = |trigger: &str| short(trigger).replace("max_bytes = 0", "max_bytes = 5");
    let cases: &[(&str, &str)] = &[
        (
            "call = \"write\"",
            "f.toml:4:29: a `short-io` fault shortens a read, write, recvfrom or sendto on a \
             socket (class `data`), but this trigger can also match `write` (class file): \
             narrow it with class = \"data\"",
        ),
        (
            "call = \"writev\", class = \"data\"",
            "f.toml:4:29: a `short-io` fault shortens a read, write, recvfrom or sendto on a \
             socket (class `data`), not `writev` (class data)",
        ),
        (
            "direction = \"send\"",
            "f.toml:4:11: a `short-io` fault shortens a read, write, recvfrom or sendto on a \
             socket (class `data`), but this trigger can also match `writev` (class data), \
             `sendmsg` and `sendmmsg`: narrow it with `call`",
        ),
        (
            "call = \"read\", when = \"after\"",
            "f.toml:4:44: a `short-io` fault fires before the call (it shortens the transfer \
             before it happens): use when = \"before\"",
        ),
    ];
    for (trigger, expected) in cases {
        assert_errors(&short(trigger), &[expected]);
    }
    for ok in [
        "call = \"read\"",
        "call = \"write\", class = \"data\"",
        "call = \"sendto\", peer = \"n2\"",
        "call = \"write\", direction = \"send\"",
    ] {
        Schedule::parse_for(&short(ok), "f.toml", &who()).unwrap_or_else(|e| panic!("{ok}: {e}"));
    }
}

#[test]
fn every_problem_is_reported_at_once_in_file_order() {
    let text = "\
seed = 7

[[fault]]
kind = \"explode\"
trigger = { nth = 1, node = \"ghost\" }

[[fault]]
kind = \"fail\"
errno = \"EIO\"
trigger = { after = \"1s\" }

[[fault]]
name = \"p\"
kind = \"pause\"
node = \"n4\"
duration = \"0s\"
trigger = { p = 2.0, call = \"fsync\", direction = \"recv\" }
";
    assert_errors(
        text,
        &[
            "f.toml:4:8: unknown fault kind `explode`: expected crash, restart, pause, delay, \
             fail, short-io, partition, heal, snapshot, toxic, signal",
            "f.toml:5:29: unknown node `ghost` (nodes: n0, n1, n2; workloads: client)",
            "f.toml:10:21: a `fail` fault acts on one system call: its trigger needs `nth` or \
             `p` (a matching call), not `after`",
            "f.toml:15:8: unknown node `n4` (nodes: n0, n1, n2)",
            "f.toml:16:12: the duration must be greater than zero",
            "f.toml:17:17: `p` is a probability per matching event: it must be between 0 and 1, \
             not 2",
            "f.toml:17:50: `direction` only applies to socket data calls (class `data`), not to \
             `fsync`",
        ],
    );
    // Without names, only the name-independent problems; `validate` then adds the names.
    let e = Schedule::parse(text, "f.toml").unwrap_err();
    assert_eq!(e.diagnostics().len(), 5, "{e}");
}

#[test]
fn validate_checks_names_of_a_parsed_schedule() {
    let s = Schedule::parse(EVERY_KIND, "every.toml").unwrap();
    s.validate(&["n0", "n1", "n2", "client"]).unwrap();
    let e = s.validate(&["n0", "n1"]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "every.toml:14:8: unknown node `client` (nodes: n0, n1)\n\
         every.toml:23:8: unknown node `n2` (nodes: n0, n1)\n\
         every.toml:48:13: unknown node `n2` (nodes: n0, n1)\n\
         every.toml:51:29: unknown node `client` (nodes: n0, n1)"
    );
    // Once faults are moved, positions would be wrong: the faults are named instead.
    let mut moved = s.clone();
    moved.faults.remove(0);
    assert_eq!(
        moved.validate(&["n0", "n1"]).unwrap_err().to_string(),
        "every.toml: fault `pause-3`: unknown node `n2` (nodes: n0, n1)\n\
         every.toml: fault `isolate-n0`: unknown node `n2` (nodes: n0, n1)\n\
         every.toml: fault `isolate-n0`: unknown node `client` (nodes: n0, n1)"
    );
}

#[test]
fn validate_checks_a_schedule_built_in_code() {
    let mut s = Schedule::new(
        "built",
        1,
        vec![
            Fault {
                name: "c".into(),
                kind: FaultKind::Crash {
                    node: "n0".into(),
                    restart_after: None,
                },
                trigger: Trigger::nth(0, Pattern::default()),
            },
            Fault {
                name: "c".into(),
                kind: FaultKind::ShortIo { max_bytes: 2 },
                trigger: Trigger::nth(
                    1,
                    Pattern {
                        call: Some("read".into()),
                        node: Some("n3".into()),
                        ..Pattern::default()
                    },
                ),
            },
        ],
    );
    assert_eq!(
        s.validate(&["n0"]).unwrap_err().to_string(),
        "built: fault `c`: `nth` must be 1 or more (1 is the first matching event)\n\
         built: fault `c`: unknown node `n3` (nodes: n0)\n\
         built: duplicate fault name `c`: fault names must be unique"
    );
    s.faults[0].trigger = Trigger::nth(1, Pattern::default());
    s.faults[1].name = "d".into();
    s.faults[1].trigger = Trigger::nth(
        1,
        Pattern {
            call: Some("read".into()),
            ..Pattern::default()
        },
    );
    s.validate(&["n0"]).unwrap();
    assert_eq!(s.trigger_states().len(), 2);
}

/// A megabyte-long unknown call (issue 18 item 4): one error, at its position, the value cut
/// and no suggestion looked for past its first characters.
#[test]
fn a_huge_unknown_call_gives_one_short_error() {
    let call = "x".repeat(1_000_000);
    let text = format!(
        "[[fault]]\nname = \"f\"\nkind = \"fail\"\nerrno = \"EIO\"\n\
         trigger = {{ nth = 1, node = \"n0\", call = \"{call}\" }}\n"
    );
    let errs = errors(&text);
    assert_eq!(errs.len(), 1, "{}", errs.len());
    assert!(errs[0].starts_with("f.toml:5:"), "{}", &errs[0][..80]);
    // The value cut to its first characters; then the list of the calls there are.
    let shown = format!(
        "unknown call `{}…`: the recorded calls are socket,",
        "x".repeat(64)
    );
    assert!(errs[0].contains(&shown), "{}", errs[0]);
    assert!(errs[0].len() < 1000, "{} bytes: {}", errs[0].len(), errs[0]);
}

/// A number given where a duration goes says the string to write.
#[test]
fn numbers_given_as_durations_get_the_string_to_write() {
    assert_eq!(
        errors("[[fault]]\nkind = \"pause\"\nnode = \"n1\"\nduration = 2\ntrigger = { after = \"1s\" }\n"),
        ["f.toml:4:12: invalid type: integer `2`, expected a string; a duration is a string \
          with its unit: `duration = \"2s\"`"]
    );
    assert_eq!(
        errors("[[fault]]\nkind = \"crash\"\nnode = \"n1\"\ntrigger = { after = 0.25 }\n"),
        [
            "f.toml:4:21: invalid type: floating point `0.25`, expected a string; a duration is a \
          string with its unit: `after = \"250ms\"`"
        ]
    );
}
