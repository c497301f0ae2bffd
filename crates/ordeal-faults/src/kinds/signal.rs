//! `signal`: send a signal (SIGTERM, SIGHUP, ...) to every process of a node.

use std::fmt;
use std::str::FromStr;

use ordeal_toml::{suggest, truncated};

use super::{node_or_role, optional, required, target, FaultKind, RawFault, Spec};
use crate::check::Checker;
use crate::parse::Converter;
use crate::write::Keys;

pub(super) const SPEC: Spec = Spec {
    name: "signal",
    keys: &[
        node_or_role(),
        optional("role"),
        required("signal", " (the signal's name, e.g. \"SIGTERM\")"),
    ],
    read,
    check,
    write,
    ..Spec::BASE
};

fn read(f: &RawFault, c: &mut Converter) -> Option<FaultKind> {
    let s = f.signal.as_ref()?;
    match s.get_ref().parse::<Signal>() {
        Ok(signal) => Some(FaultKind::Signal {
            node: target(f, c)?,
            signal,
        }),
        Err(e) => {
            c.err(s.span(), e.to_string());
            None
        }
    }
}

fn check(kind: &FaultKind, c: &mut Checker) {
    if let FaultKind::Signal { node, .. } = kind {
        c.target(SPEC.name, node);
    }
}

fn write(kind: &FaultKind, w: &mut Keys) {
    if let FaultKind::Signal { node, signal } = kind {
        w.string(node.key(), node.name());
        w.string("signal", signal.name());
    }
}

/// A signal a `signal` fault sends: a standard Linux signal, except SIGKILL and SIGSTOP
/// (what `crash` and `pause` faults send, with what the run knows of them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Signal {
    name: &'static str,
    number: i32,
}

impl Signal {
    /// Every signal a `signal` fault can send, by number.
    pub const ALL: &'static [Signal] = &[
        Signal::new("SIGHUP", libc::SIGHUP),
        Signal::new("SIGINT", libc::SIGINT),
        Signal::new("SIGQUIT", libc::SIGQUIT),
        Signal::new("SIGILL", libc::SIGILL),
        Signal::new("SIGTRAP", libc::SIGTRAP),
        Signal::new("SIGABRT", libc::SIGABRT),
        Signal::new("SIGBUS", libc::SIGBUS),
        Signal::new("SIGFPE", libc::SIGFPE),
        Signal::new("SIGUSR1", libc::SIGUSR1),
        Signal::new("SIGSEGV", libc::SIGSEGV),
        Signal::new("SIGUSR2", libc::SIGUSR2),
        Signal::new("SIGPIPE", libc::SIGPIPE),
        Signal::new("SIGALRM", libc::SIGALRM),
        Signal::new("SIGTERM", libc::SIGTERM),
        Signal::new("SIGSTKFLT", libc::SIGSTKFLT),
        Signal::new("SIGCHLD", libc::SIGCHLD),
        Signal::new("SIGCONT", libc::SIGCONT),
        Signal::new("SIGTSTP", libc::SIGTSTP),
        Signal::new("SIGTTIN", libc::SIGTTIN),
        Signal::new("SIGTTOU", libc::SIGTTOU),
        Signal::new("SIGURG", libc::SIGURG),
        Signal::new("SIGXCPU", libc::SIGXCPU),
        Signal::new("SIGXFSZ", libc::SIGXFSZ),
        Signal::new("SIGVTALRM", libc::SIGVTALRM),
        Signal::new("SIGPROF", libc::SIGPROF),
        Signal::new("SIGWINCH", libc::SIGWINCH),
        Signal::new("SIGIO", libc::SIGIO),
        Signal::new("SIGPWR", libc::SIGPWR),
        Signal::new("SIGSYS", libc::SIGSYS),
    ];

    pub const SIGTERM: Signal = Signal::new("SIGTERM", libc::SIGTERM);

    const fn new(name: &'static str, number: i32) -> Signal {
        Signal { name, number }
    }

    /// The standard name (`SIGTERM`).
    pub fn name(self) -> &'static str {
        self.name
    }

    /// The signal's number on Linux.
    pub fn number(self) -> i32 {
        self.number
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

/// A name that is not a signal a `signal` fault can send.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignalError {
    /// SIGKILL or SIGSTOP: the `crash` and `pause` faults send those.
    #[error("a `signal` fault does not send {signal}: use kind = \"{instead}\" ({why})")]
    Reserved {
        signal: &'static str,
        instead: &'static str,
        why: &'static str,
    },
    #[error(
        "unknown signal `{}`{}: a `signal` fault sends one of {}",
        truncated(.name),
        .suggestion.map(|s| format!(" (did you mean `{s}`?)")).unwrap_or_default(),
        signal_names()
    )]
    Unknown {
        name: String,
        suggestion: Option<&'static str>,
    },
}

fn signal_names() -> String {
    let names: Vec<&str> = Signal::ALL.iter().map(|s| s.name).collect();
    names.join(", ")
}

impl FromStr for Signal {
    type Err = SignalError;

    fn from_str(s: &str) -> Result<Signal, SignalError> {
        if let Some(signal) = Signal::ALL.iter().find(|sig| sig.name == s) {
            return Ok(*signal);
        }
        // As meant: `term` or `SIGterm` is SIGTERM.
        let upper = s.to_ascii_uppercase();
        let full = match upper.strip_prefix("SIG") {
            Some(_) => upper,
            None => format!("SIG{upper}"),
        };
        match full.as_str() {
            "SIGKILL" => Err(SignalError::Reserved {
                signal: "SIGKILL",
                instead: "crash",
                why: "the run then expects the node's death, and `restart_after` can start it \
                      again",
            }),
            "SIGSTOP" => Err(SignalError::Reserved {
                signal: "SIGSTOP",
                instead: "pause",
                why: "it resumes the node with SIGCONT after its `duration`",
            }),
            _ => Err(SignalError::Unknown {
                name: s.to_string(),
                suggestion: suggest(&full, Signal::ALL.iter().map(|sig| sig.name), 2),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::{Fault, Participants, Pattern, Schedule, Trigger};

    fn who() -> Participants {
        Participants::new(["n0", "n1", "n2"], ["client"])
    }

    fn errors(text: &str) -> Vec<String> {
        match Schedule::parse_for(text, "f.toml", &who()) {
            Ok(_) => Vec::new(),
            Err(e) => e.diagnostics().iter().map(|d| d.to_string()).collect(),
        }
    }

    #[test]
    fn a_signal_fault_parses_and_writes_back() {
        let text = "[[fault]]\nkind = \"signal\"\nnode = \"n1\"\nsignal = \"SIGTERM\"\n\
                    trigger = { after = \"1s\" }\n";
        let s = Schedule::parse_for(text, "f.toml", &who()).unwrap();
        let term = Fault {
            name: "signal-1".into(),
            kind: FaultKind::Signal {
                node: "n1".into(),
                signal: Signal::SIGTERM,
            },
            trigger: Trigger::Time {
                after: Duration::from_secs(1),
            },
        };
        assert_eq!(s.faults, [term]);
        assert_eq!(s.faults[0].kind.node(), Some("n1"));
        assert!(!s.faults[0].kind.is_call_level());
        assert_eq!(
            s.to_toml(),
            "seed = 0\n\
             \n\
             [[fault]]\n\
             name = \"signal-1\"\n\
             kind = \"signal\"\n\
             node = \"n1\"\n\
             signal = \"SIGTERM\"\n\
             trigger = { after = \"1000ms\" }\n"
        );
        // At a call too, before or after it.
        let hup = "[[fault]]\nkind = \"signal\"\nnode = \"n0\"\nsignal = \"SIGHUP\"\n\
                   trigger = { nth = 2, node = \"n0\", call = \"fsync\", when = \"after\" }\n";
        let s = Schedule::parse_for(hup, "f.toml", &who()).unwrap();
        assert_eq!(
            s.faults[0].kind,
            FaultKind::Signal {
                node: "n0".into(),
                signal: "SIGHUP".parse().unwrap(),
            }
        );
        assert_eq!(Schedule::parse(&s.to_toml(), "back").unwrap(), s);
    }

    #[test]
    fn bad_signal_faults_are_reported_at_their_values() {
        let fault = |keys: &str| {
            errors(&format!(
                "[[fault]]\nkind = \"signal\"\n{keys}trigger = {{ after = \"1s\" }}\n"
            ))
        };
        assert_eq!(
            fault("node = \"n1\"\n"),
            ["f.toml:1:1: a `signal` fault needs `signal` (the signal's name, e.g. \"SIGTERM\")"]
        );
        assert_eq!(
            fault("signal = \"SIGTERM\"\n"),
            [
                "f.toml:1:1: a `signal` fault needs `node` (the node it acts on) or `role` (the \
                 node holding that role when it fires)"
            ]
        );
        let unknown = fault("node = \"n1\"\nsignal = \"SIGTREM\"\n");
        assert_eq!(unknown.len(), 1);
        assert!(
            unknown[0].starts_with(
                "f.toml:4:10: unknown signal `SIGTREM` (did you mean `SIGTERM`?): a `signal` \
                 fault sends one of SIGHUP, SIGINT,"
            ),
            "{unknown:?}"
        );
        assert_eq!(
            fault("node = \"n1\"\nsignal = \"SIGKILL\"\n"),
            [
                "f.toml:4:10: a `signal` fault does not send SIGKILL: use kind = \"crash\" (the \
                 run then expects the node's death, and `restart_after` can start it again)"
            ]
        );
        assert_eq!(
            fault("node = \"n1\"\nsignal = \"SIGSTOP\"\n"),
            [
                "f.toml:4:10: a `signal` fault does not send SIGSTOP: use kind = \"pause\" (it \
                 resumes the node with SIGCONT after its `duration`)"
            ]
        );
        assert_eq!(
            fault("node = \"n9\"\nsignal = \"SIGHUP\"\nduration = \"1s\"\n"),
            [
                "f.toml:3:8: unknown node `n9` (nodes: n0, n1, n2)",
                "f.toml:5:12: `duration` does not apply to a `signal` fault (a `signal` fault \
                 takes `node`, `role` and `signal`)",
            ]
        );
        assert_eq!(
            fault("node = \"client\"\nsignal = \"SIGINT\"\n"),
            [
                "f.toml:3:8: `client` is a workload: a `signal` fault acts on a node (nodes: n0, \
                 n1, n2)"
            ]
        );
        assert_eq!(
            fault("node = \"n1\"\nsignal = 15\n"),
            ["f.toml:4:10: invalid type: integer `15`, expected a string"]
        );
        assert_eq!(
            errors(
                "[[fault]]\nkind = \"crash\"\nnode = \"n1\"\nsignal = \"SIGTERM\"\n\
                 trigger = { after = \"1s\" }\n"
            ),
            [
                "f.toml:4:10: `signal` does not apply to a `crash` fault (a `crash` fault takes \
                 `node`, `role` and `restart_after`)"
            ]
        );
    }

    #[test]
    fn a_signal_fault_built_in_code_is_checked_too() {
        let s = Schedule::new(
            "built",
            0,
            vec![Fault {
                name: "term".into(),
                kind: FaultKind::Signal {
                    node: "n9".into(),
                    signal: Signal::SIGTERM,
                },
                trigger: Trigger::nth(1, Pattern::default()),
            }],
        );
        assert_eq!(
            s.validate(&["n0"]).unwrap_err().to_string(),
            "built: fault `term`: unknown node `n9` (nodes: n0)"
        );
        s.validate(&["n9"]).unwrap();
    }

    #[test]
    fn names_read_back_and_numbers_are_linux_ones() {
        for sig in Signal::ALL {
            assert_eq!(sig.name().parse::<Signal>(), Ok(*sig));
            assert_eq!(sig.to_string(), sig.name());
        }
        assert_eq!("SIGTERM".parse::<Signal>(), Ok(Signal::SIGTERM));
        assert_eq!(Signal::SIGTERM.number(), 15);
        let number = |n: &str| n.parse::<Signal>().unwrap().number();
        assert_eq!(
            [number("SIGHUP"), number("SIGINT"), number("SIGUSR1")],
            [1, 2, 10]
        );
        assert_eq!(Signal::ALL.len(), 29);
        assert!(Signal::ALL.windows(2).all(|w| w[0].number < w[1].number));
    }

    #[test]
    fn sigkill_and_sigstop_point_to_crash_and_pause() {
        for name in ["SIGKILL", "KILL", "kill"] {
            assert_eq!(
                name.parse::<Signal>().unwrap_err().to_string(),
                "a `signal` fault does not send SIGKILL: use kind = \"crash\" (the run then \
                 expects the node's death, and `restart_after` can start it again)"
            );
        }
        assert_eq!(
            "SIGSTOP".parse::<Signal>().unwrap_err().to_string(),
            "a `signal` fault does not send SIGSTOP: use kind = \"pause\" (it resumes the node \
             with SIGCONT after its `duration`)"
        );
    }

    #[test]
    fn unknown_names_get_the_nearest_one() {
        let hint = |name: &str| {
            let m = name.parse::<Signal>().unwrap_err().to_string();
            m[..m.find(": a `signal` fault sends").unwrap()].to_string()
        };
        assert_eq!(
            hint("SIGTREM"),
            "unknown signal `SIGTREM` (did you mean `SIGTERM`?)"
        );
        assert_eq!(
            hint("TERM"),
            "unknown signal `TERM` (did you mean `SIGTERM`?)"
        );
        assert_eq!(
            hint("sigusr1"),
            "unknown signal `sigusr1` (did you mean `SIGUSR1`?)"
        );
        assert_eq!(hint("SIGRTMIN+1"), "unknown signal `SIGRTMIN+1`");
        let huge = "S".repeat(1_000_000);
        let shown = "S".repeat(ordeal_toml::MAX_SHOWN_CHARS);
        assert_eq!(hint(&huge), format!("unknown signal `{shown}…`"));
        assert!("SIGFOO"
            .parse::<Signal>()
            .unwrap_err()
            .to_string()
            .ends_with(
                ": a `signal` fault sends one of SIGHUP, SIGINT, SIGQUIT, SIGILL, SIGTRAP, \
                 SIGABRT, SIGBUS, SIGFPE, SIGUSR1, SIGSEGV, SIGUSR2, SIGPIPE, SIGALRM, SIGTERM, \
                 SIGSTKFLT, SIGCHLD, SIGCONT, SIGTSTP, SIGTTIN, SIGTTOU, SIGURG, SIGXCPU, \
                 SIGXFSZ, SIGVTALRM, SIGPROF, SIGWINCH, SIGIO, SIGPWR, SIGSYS"
            ));
    }
}
