//! The record of what fired in a run: `schedule.applied.toml`.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::{Error, Fault};
use ordeal_toml::Source;

/// The name of the record in a run directory.
pub const APPLIED_FILE: &str = "schedule.applied.toml";

/// One entry of the record: a firing of a fault, or a fault that never fired.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Applied {
    /// The fault's name.
    pub fault: String,
    /// Its kind, as written in schedules (`short-io`).
    pub kind: String,
    /// Whether it fired. A fault that fired has one entry per firing.
    pub fired: bool,
    /// The `seq` of the event at which it fired (for a time trigger: the last event recorded
    /// before it fired, if any).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    /// When it fired, ns since the run started (the clock of events' `ts`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_ns: Option<u64>,
    /// For a fault aimed at a role (`role = "leader"`): that role; `node` is the node that
    /// held it when the fault fired, the one it acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// The node it fired in or acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// What was done, for people: `connect -> ECONNREFUSED`, `SIGKILL pgid 4121`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl Applied {
    /// The entry of a fault that never fired.
    pub fn not_fired(fault: &Fault) -> Applied {
        Applied {
            fault: fault.name.clone(),
            kind: fault.kind.name().to_string(),
            fired: false,
            seq: None,
            time_ns: None,
            role: None,
            node: None,
            detail: None,
        }
    }

    /// The entry of a firing (set `node` and `detail` afterwards).
    pub fn fired_at(fault: &Fault, seq: Option<u64>, time_ns: u64) -> Applied {
        Applied {
            fired: true,
            seq,
            time_ns: Some(time_ns),
            ..Applied::not_fired(fault)
        }
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct AppliedFile {
    #[serde(default)]
    applied: Vec<Applied>,
}

const HEADER: &str = "\
# Written by ordeal: what the faults of the schedule did in this run. One [[applied]] table per
# firing, in firing order, then one with fired = false for each fault that never fired.
";

/// The record as TOML text.
pub fn applied_to_toml(entries: &[Applied]) -> String {
    let mut out = String::from(HEADER);
    let s = quote;
    for a in entries {
        out.push_str("\n[[applied]]\n");
        out.push_str(&format!("fault = {}\n", s(&a.fault)));
        out.push_str(&format!("kind = {}\n", s(&a.kind)));
        out.push_str(&format!("fired = {}\n", a.fired));
        if let Some(seq) = a.seq {
            out.push_str(&format!("seq = {seq}\n"));
        }
        if let Some(t) = a.time_ns {
            out.push_str(&format!("time_ns = {t}\n"));
        }
        if let Some(r) = &a.role {
            out.push_str(&format!("role = {}\n", s(r)));
        }
        if let Some(n) = &a.node {
            out.push_str(&format!("node = {}\n", s(n)));
        }
        if let Some(d) = &a.detail {
            out.push_str(&format!("detail = {}\n", s(d)));
        }
    }
    out
}

/// A TOML basic string on one line.
fn quote(v: &str) -> String {
    let mut out = String::with_capacity(v.len() + 2);
    out.push('"');
    for c in v.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Writes the record to `path` (in a run directory: [`APPLIED_FILE`]).
pub fn write_applied_toml(entries: &[Applied], path: impl AsRef<Path>) -> Result<(), Error> {
    let path = path.as_ref();
    std::fs::write(path, applied_to_toml(entries)).map_err(|source| Error::Write {
        path: path.to_path_buf(),
        what: "applied record",
        source,
    })
}

/// Parses a record; `path` names the file in messages.
pub fn parse_applied_toml(text: &str, path: impl AsRef<Path>) -> Result<Vec<Applied>, Error> {
    let file = path.as_ref().display().to_string();
    let src = Source::new(&file, text);
    toml::from_str::<AppliedFile>(text)
        .map(|f| f.applied)
        .map_err(|e| Error::Invalid(vec![src.toml_error(&e)]))
}

/// Reads the record at `path`.
pub fn read_applied_toml(path: impl AsRef<Path>) -> Result<Vec<Applied>, Error> {
    let path = path.as_ref();
    let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
        path: path.to_path_buf(),
        what: "applied record",
        source,
    })?;
    parse_applied_toml(&text, path)
}
