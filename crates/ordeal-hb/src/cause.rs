//! What a run's verdict and summary say beyond its status and reasons: the cause a person
//! reads first ([`Cause`], `verdict.cause` in summary.json) and the faults that fired
//! ([`FaultRecord`], `faults`). This crate only carries them; the run decides them
//! (ordeal-run: from its processes' logs, its check, its history, its trace's fault marks).

use serde::{Deserialize, Serialize};
use std::fmt;

/// One line of a log file of the run: where a cause was read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    /// Relative to the run directory: `logs/client.stderr`.
    pub file: String,
    /// 1 is the first line.
    pub line: u64,
    /// The line, without its end and surrounding whitespace (long lines cut).
    pub text: String,
}

impl fmt::Display for LogLine {
    /// `TEXT (logs/client.stderr:12)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}:{})", self.text, self.file, self.line)
    }
}

/// Why a run did not pass, in the words a person looks for first. In summary.json it is an
/// object with `kind` and the variant's fields (`{"kind": "workload", "name": "client", ...}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Cause {
    /// `[check] history` found an operation no linearization can place.
    History {
        /// The model checked (`kv`, `register`, ...).
        model: String,
        /// The first violating key, when the model has keys.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        key: Option<String>,
        /// The operation: `process 3 read k3 → nil`.
        op: String,
        /// Why it cannot be placed: `reads nil, but the value is v7`.
        anomaly: String,
        /// Where the operation is in the history file: `history.jsonl:164`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        at: Option<String>,
        /// Where the write it contradicts is in the history file: the last operation that
        /// changed the state the checker holds (`the value is v7`: the write of v7).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        contradicts: Option<String>,
    },
    /// `[check] history` could not check the history (missing, empty, unreadable, undecided).
    HistoryCheck { message: String },
    /// The `[check]` command failed.
    Check {
        /// How it ended: `exit 1`.
        status: String,
        /// Its message: the last line of its logs matching the failure pattern, else the last
        /// line of its stderr.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        log: Option<LogLine>,
    },
    /// A workload ended with a failure status.
    Workload {
        name: String,
        /// `exit 1`, `killed by SIGSEGV`.
        status: String,
        /// The last line of its logs matching the failure pattern, if one does.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        log: Option<LogLine>,
    },
    /// A node exited without a fault explaining it.
    Node {
        name: String,
        status: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        log: Option<LogLine>,
    },
    /// Anything else (a hang, the run's timeout, an error of the run): the verdict's first
    /// reason, its first line.
    Other { message: String },
}

impl fmt::Display for Cause {
    /// One line: `workload client (exit 1): VIOLATION: ... (logs/client.stderr:3)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let log = |f: &mut fmt::Formatter<'_>, log: &Option<LogLine>| match log {
            Some(l) => write!(f, ": {l}"),
            None => Ok(()),
        };
        match self {
            Cause::History {
                model,
                key,
                op,
                anomaly,
                at,
                ..
            } => {
                write!(f, "history not linearizable ({model})")?;
                if let Some(k) = key {
                    write!(f, ", key {k}")?;
                }
                write!(f, ": {op}: {anomaly}")?;
                match at {
                    Some(at) => write!(f, " ({at})"),
                    None => Ok(()),
                }
            }
            Cause::HistoryCheck { message } => f.write_str(message),
            Cause::Check { status, log: l } => {
                write!(f, "check ({status})")?;
                log(f, l)
            }
            Cause::Workload {
                name,
                status,
                log: l,
            } => {
                write!(f, "workload {name} ({status})")?;
                log(f, l)
            }
            Cause::Node {
                name,
                status,
                log: l,
            } => {
                write!(f, "node {name} ({status})")?;
                log(f, l)
            }
            Cause::Other { message } => f.write_str(message),
        }
    }
}

/// One firing of a fault, as summary.json's `faults` lists them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultRecord {
    /// The fault's name in the schedule.
    pub name: String,
    /// Its kind: `crash`, `partition`, `fail`, ...
    pub kind: String,
    /// The node whose event carries the firing.
    pub node: String,
    /// The call it fired at, or `fault` for a fault fired by time (a marker event).
    pub call: String,
    /// The firing event's `seq` in trace.jsonl.
    pub seq: u64,
    /// What it did: `crash n0 after`, `partition n0 | n1,n2`, `fail EIO`.
    pub action: String,
    /// Seconds since the trace's time 0 (ms precision).
    pub fired_at: f64,
    /// When its effect ended (heal, resume, restart, removal of a toxic), seconds since the
    /// trace's time 0; absent for a fault without a lasting effect or never ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healed_at: Option<f64>,
}

/// `ns` (trace time) in seconds, rounded to the millisecond.
pub fn seconds(ns: u64) -> f64 {
    (ns / 1_000_000) as f64 / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line() -> LogLine {
        LogLine {
            file: "logs/client.stderr".into(),
            line: 3,
            text: "VIOLATION: lost".into(),
        }
    }

    #[test]
    fn causes_read_as_one_line_with_their_file_and_line() {
        let w = Cause::Workload {
            name: "client".into(),
            status: "exit 1".into(),
            log: Some(line()),
        };
        assert_eq!(
            w.to_string(),
            "workload client (exit 1): VIOLATION: lost (logs/client.stderr:3)"
        );
        let h = Cause::History {
            model: "kv".into(),
            key: Some("k3".into()),
            op: "process 2 read k3 → nil".into(),
            anomaly: "reads nil, but the value is v7".into(),
            at: Some("history.jsonl:9".into()),
            contradicts: None,
        };
        assert_eq!(
            h.to_string(),
            "history not linearizable (kv), key k3: process 2 read k3 → nil: reads nil, but \
             the value is v7 (history.jsonl:9)"
        );
        let c = Cause::Check {
            status: "exit 2".into(),
            log: None,
        };
        assert_eq!(c.to_string(), "check (exit 2)");
    }

    #[test]
    fn causes_are_tagged_objects_in_json_and_read_back() {
        let w = Cause::Workload {
            name: "client".into(),
            status: "exit 1".into(),
            log: Some(line()),
        };
        let json = serde_json::to_string(&w).unwrap();
        assert_eq!(
            json,
            r#"{"kind":"workload","name":"client","status":"exit 1","log":{"file":"logs/client.stderr","line":3,"text":"VIOLATION: lost"}}"#
        );
        assert_eq!(serde_json::from_str::<Cause>(&json).unwrap(), w);
        let o = serde_json::to_string(&Cause::Other {
            message: "hung (blocked)".into(),
        })
        .unwrap();
        assert_eq!(o, r#"{"kind":"other","message":"hung (blocked)"}"#);
    }

    #[test]
    fn seconds_keep_milliseconds() {
        assert_eq!(seconds(1_234_567_890), 1.234);
        assert_eq!(seconds(999_999), 0.0);
    }
}
