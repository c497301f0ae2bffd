//! Writing a schedule back as a schedule file: [`Schedule::to_toml`]. Each kind writes its
//! own keys (`kinds/`) through [`Keys`].

use std::fmt::Write as _;
use std::time::Duration;

use ordeal_events::Class;

use crate::{FaultKind, Pattern, Schedule, Trigger, When};

impl Schedule {
    /// The schedule as a schedule file (docs/faults.md) that [`Schedule::parse`] reads back as
    /// an equal schedule: `seed`, then one `[[fault]]` table per fault, in order, with its
    /// `name` and, for an event trigger, its `when` always written (defaults included), so
    /// that the file says everything the fault does.
    ///
    /// Durations are written in whole milliseconds, the file's finest unit (a sub-millisecond
    /// part is dropped). Counts beyond TOML's integers (above `i64::MAX`) cannot be read back.
    pub fn to_toml(&self) -> String {
        let mut s = format!("seed = {}\n", self.seed);
        for f in &self.faults {
            s.push_str("\n[[fault]]\n");
            let _ = writeln!(s, "name = {}", quote(&f.name));
            let _ = writeln!(s, "kind = {}", quote(f.kind.name()));
            write_kind(&mut s, &f.kind);
            let _ = writeln!(s, "trigger = {}", trigger(&f.trigger));
        }
        s
    }
}

fn write_kind(s: &mut String, kind: &FaultKind) {
    (kind.spec().write)(kind, &mut Keys(s))
}

/// Where a kind writes its keys, one `key = value` line each.
pub(crate) struct Keys<'a>(&'a mut String);

impl Keys<'_> {
    /// `key = value`, the value written as TOML already.
    pub(crate) fn raw(&mut self, key: &str, value: impl std::fmt::Display) {
        let _ = writeln!(self.0, "{key} = {value}");
    }

    pub(crate) fn string(&mut self, key: &str, value: &str) {
        self.raw(key, quote(value))
    }

    pub(crate) fn duration(&mut self, key: &str, value: Duration) {
        self.raw(key, duration(value))
    }

    pub(crate) fn strings(&mut self, key: &str, items: &[String]) {
        let items: Vec<String> = items.iter().map(|s| quote(s)).collect();
        self.raw(key, format!("[{}]", items.join(", ")))
    }
}

/// The trigger as an inline table: its kind (`nth`, `p`, `after`), `times` unless 1, the
/// pattern's keys, then `when`.
fn trigger(t: &Trigger) -> String {
    let (first, times, pattern, when) = match t {
        Trigger::Time { after } => return format!("{{ after = {} }}", duration(*after)),
        Trigger::At {
            nth,
            times,
            pattern,
            when,
        } => (format!("nth = {nth}"), *times, pattern, *when),
        Trigger::Probability {
            p,
            times,
            pattern,
            when,
        } => (format!("p = {}", float(*p)), *times, pattern, *when),
    };
    let mut keys = vec![first];
    if times != 1 {
        keys.push(format!("times = {times}"));
    }
    keys.extend(pattern_keys(pattern));
    keys.push(format!("when = {}", quote(When::name(when))));
    format!("{{ {} }}", keys.join(", "))
}

fn pattern_keys(p: &Pattern) -> Vec<String> {
    let mut keys = Vec::new();
    if let Some(n) = &p.node {
        keys.push(format!("{} = {}", n.key(), quote(n.name())));
    }
    if let Some(c) = &p.call {
        keys.push(format!("call = {}", quote(c)));
    }
    if let Some(c) = p.class {
        keys.push(format!("class = {}", quote(class_name(c))));
    }
    if let Some(n) = &p.peer {
        keys.push(format!("peer = {}", quote(n)));
    }
    if let Some(d) = p.direction {
        keys.push(format!("direction = {}", quote(d.name())));
    }
    if let Some(g) = &p.path {
        keys.push(format!("path = {}", quote(g.as_str())));
    }
    keys
}

/// The class as a schedule names it (the inverse of the parser's class names).
fn class_name(c: Class) -> &'static str {
    match c {
        Class::Net => "net",
        Class::Data => "data",
        Class::File => "file",
        Class::Proc => "proc",
    }
}

fn duration(d: Duration) -> String {
    format!("\"{}ms\"", d.as_millis())
}

/// A float TOML reads back as the same `f64` (Rust's shortest round-trip form).
fn float(x: f64) -> String {
    if x.is_nan() {
        "nan".into()
    } else if x.is_infinite() {
        if x > 0.0 { "inf" } else { "-inf" }.into()
    } else {
        format!("{x:?}")
    }
}

/// A TOML basic string. Escapes as JSON does (`\"`, `\\`, `\n`, `\t`, ..., other control
/// characters as `\u00XX`), plus DEL, which TOML does not allow raw.
pub(crate) fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::{Direction, Errno, Fault, Participants, PathGlob, ToxicSpec};

    fn at(nth: u64, times: u64, pattern: Pattern, when: When) -> Trigger {
        Trigger::At {
            nth,
            times,
            pattern,
            when,
        }
    }

    fn full_pattern() -> Pattern {
        Pattern {
            node: Some("n0".into()),
            call: Some("read".into()),
            class: Some(Class::Data),
            peer: Some("client".into()),
            direction: Some(Direction::Recv),
            path: None,
        }
    }

    /// One fault of every kind, with every optional key and trigger form somewhere.
    fn every_kind() -> Schedule {
        let ms = Duration::from_millis;
        let fault = |name: &str, kind: FaultKind, trigger: Trigger| Fault {
            name: name.into(),
            kind,
            trigger,
        };
        let file_pattern = Pattern {
            node: Some("n1".into()),
            call: Some("rename".into()),
            class: Some(Class::File),
            path: Some(PathGlob::new("wal/*.log").unwrap()),
            ..Pattern::default()
        };
        let faults = vec![
            fault(
                "crash-n0",
                FaultKind::Crash {
                    node: "n0".into(),
                    restart_after: Some(ms(500)),
                },
                at(2, 1, full_pattern(), When::After),
            ),
            fault(
                "crash-forever",
                FaultKind::Crash {
                    node: "n1".into(),
                    restart_after: None,
                },
                Trigger::Time { after: ms(1500) },
            ),
            fault(
                "restart-n1",
                FaultKind::Restart { node: "n1".into() },
                Trigger::Time { after: ms(3000) },
            ),
            fault(
                "pause",
                FaultKind::Pause {
                    node: "n0".into(),
                    duration: ms(2000),
                },
                at(1, 1, Pattern::default(), When::Before),
            ),
            fault(
                "delay",
                FaultKind::Delay { duration: ms(250) },
                Trigger::Probability {
                    p: 0.25,
                    times: 3,
                    pattern: full_pattern(),
                    when: When::Before,
                },
            ),
            fault(
                "fail",
                FaultKind::Fail { errno: Errno::EIO },
                at(4, 2, file_pattern.clone(), When::Before),
            ),
            fault(
                "short",
                FaultKind::ShortIo { max_bytes: 3 },
                at(1, 1, full_pattern(), When::Before),
            ),
            fault(
                "split",
                FaultKind::Partition {
                    from: vec!["n0".into()],
                    to: vec!["n1".into(), "client".into()],
                    shape: None,
                    oneway: true,
                    duration: Some(ms(1000)),
                },
                Trigger::Time { after: ms(100) },
            ),
            fault(
                "split-until-heal",
                FaultKind::Partition {
                    from: vec!["n1".into()],
                    to: vec!["n0".into()],
                    shape: None,
                    oneway: false,
                    duration: None,
                },
                Trigger::Time { after: ms(200) },
            ),
            fault(
                "isolate-n1",
                FaultKind::Partition {
                    from: Vec::new(),
                    to: Vec::new(),
                    shape: Some(crate::Shape::Isolate {
                        node: Some("n1".into()),
                    }),
                    oneway: false,
                    duration: Some(ms(300)),
                },
                Trigger::Time { after: ms(250) },
            ),
            fault(
                "halves",
                FaultKind::Partition {
                    from: Vec::new(),
                    to: Vec::new(),
                    shape: Some(crate::Shape::Halves),
                    oneway: false,
                    duration: None,
                },
                Trigger::Time { after: ms(260) },
            ),
            fault("heal", FaultKind::Heal, Trigger::Time { after: ms(5000) }),
            fault(
                "snap",
                FaultKind::Snapshot,
                at(1, 1, file_pattern, When::After),
            ),
            fault(
                "slow",
                FaultKind::Toxic {
                    proxy: "front".into(),
                    toxic: ToxicSpec {
                        kind: "latency".into(),
                        stream: "upstream".into(),
                        attributes: BTreeMap::from([
                            ("jitter".to_string(), 10),
                            ("latency".to_string(), 100),
                        ]),
                    },
                    duration: Some(ms(700)),
                },
                Trigger::Time { after: ms(50) },
            ),
            fault(
                "term",
                FaultKind::Signal {
                    node: "n1".into(),
                    signal: crate::Signal::SIGTERM,
                },
                at(1, 1, Pattern::default(), When::After),
            ),
        ];
        Schedule::new("built", 42, faults)
    }

    #[test]
    fn every_fault_kind_reads_back_equal() {
        let s = every_kind();
        let kinds: std::collections::BTreeSet<&str> =
            s.faults.iter().map(|f| f.kind.name()).collect();
        assert_eq!(kinds.len(), crate::FAULT_KINDS.len(), "a kind is missing");
        let text = s.to_toml();
        let names = Participants::new(["n0", "n1"], ["client"]);
        let back = Schedule::parse_for(&text, "back.toml", &names)
            .unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(back, s, "{text}");
        // And the text of the schedule read back is the same text.
        assert_eq!(back.to_toml(), text);
    }

    #[test]
    fn exact_text() {
        let s = Schedule::new(
            "x",
            7,
            vec![Fault {
                name: "crash-after-n0-sendto-client-2".into(),
                kind: FaultKind::Crash {
                    node: "n0".into(),
                    restart_after: Some(Duration::from_millis(500)),
                },
                trigger: at(
                    2,
                    1,
                    Pattern {
                        node: Some("n0".into()),
                        call: Some("sendto".into()),
                        class: Some(Class::Data),
                        peer: Some("client".into()),
                        ..Pattern::default()
                    },
                    When::After,
                ),
            }],
        );
        assert_eq!(
            s.to_toml(),
            "seed = 7\n\
             \n\
             [[fault]]\n\
             name = \"crash-after-n0-sendto-client-2\"\n\
             kind = \"crash\"\n\
             node = \"n0\"\n\
             restart_after = \"500ms\"\n\
             trigger = { nth = 2, node = \"n0\", call = \"sendto\", class = \"data\", \
             peer = \"client\", when = \"after\" }\n"
        );
        assert_eq!(Schedule::new("x", 3, Vec::new()).to_toml(), "seed = 3\n");
    }

    #[test]
    fn strings_and_floats_read_back() {
        assert_eq!(
            quote("a\"b\\c\nd\u{1}\u{7f}é"),
            r#""a\"b\\c\nd\u0001\u007fé""#
        );
        assert_eq!(float(1.0), "1.0");
        assert_eq!(float(1e-7), "1e-7");
        let odd = "we\"ird\\ name\t\u{7f}";
        let s = Schedule::new(
            "x",
            0,
            vec![Fault {
                name: "odd".into(),
                kind: FaultKind::Delay {
                    duration: Duration::from_millis(1),
                },
                trigger: Trigger::Probability {
                    p: 1e-7,
                    times: 1,
                    pattern: Pattern {
                        node: Some(odd.into()),
                        call: Some("rename".into()),
                        path: Some(PathGlob::new("da{ta,x}/\\*").unwrap()),
                        ..Pattern::default()
                    },
                    when: When::Before,
                },
            }],
        );
        let text = s.to_toml();
        let back = Schedule::parse(&text, "x").unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(back, s, "{text}");
    }
}
