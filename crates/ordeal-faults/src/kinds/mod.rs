//! The fault kinds. Everything the schedule side knows of one kind is in its own file, as its
//! [`Spec`]: its name, the keys it takes, how it is read from its `[[fault]]` table, the rules
//! its values follow and how it is written back. `parse.rs`, `check.rs` and `write.rs` hold
//! what every kind shares (triggers, patterns, positions, messages) and call into the specs.
//!
//! A new kind is: its variant of [`FaultKind`], its file with its `SPEC`, its entry in
//! [`SPECS`] and in [`FaultKind::spec`], and any key no kind took before in [`RawFault`].

mod crash;
mod delay;
mod fail;
mod heal;
mod partition;
mod pause;
mod restart;
mod short_io;
mod signal;
mod snapshot;
mod toxic;

use std::ops::Range;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::check::{Checker, Variant};
use crate::parse::{Converter, RawTrigger};
use crate::write::Keys;
use crate::{Errno, Pattern, Shape, Target};

pub use signal::{Signal, SignalError};
pub use toxic::ToxicSpec;

/// Every kind, in the order messages list them.
const SPECS: [&Spec; 11] = [
    &crash::SPEC,
    &restart::SPEC,
    &pause::SPEC,
    &delay::SPEC,
    &fail::SPEC,
    &short_io::SPEC,
    &partition::SPEC,
    &heal::SPEC,
    &snapshot::SPEC,
    &toxic::SPEC,
    &signal::SPEC,
];

/// The fault kinds as written in a schedule's `kind`.
pub const FAULT_KINDS: &[&str] = &names(&SPECS);

const fn names<const N: usize>(specs: &[&Spec; N]) -> [&'static str; N] {
    let mut out = [""; N];
    let mut i = 0;
    while i < N {
        out[i] = specs[i].name;
        i += 1;
    }
    out
}

/// What a fault does when it fires.
#[derive(Debug, Clone, PartialEq)]
pub enum FaultKind {
    /// SIGKILL the node's whole process group (every process of the node). With
    /// `restart_after`, start the node's command again that long after the crash, on the same
    /// data dir, and wait for its ready condition.
    Crash {
        node: Target,
        restart_after: Option<Duration>,
    },
    /// Start a crashed node's command again (same data dir) and wait for its ready condition.
    Restart { node: String },
    /// SIGSTOP the node's process group, and SIGCONT it `duration` later.
    Pause { node: Target, duration: Duration },
    /// Hold the matching system call of the thread that made it for `duration` (before it runs
    /// or before it returns, per the trigger's `when`); other threads run on.
    Delay { duration: Duration },
    /// Skip the matching system call: it returns `-errno` without running.
    Fail { errno: Errno },
    /// Let the matching transfer move at most `max_bytes` bytes (a short read or write).
    ShortIo { max_bytes: u64 },
    /// Cut traffic from the `from` nodes to the `to` nodes (and back, unless `oneway`), or
    /// with a `shape` (then `from` and `to` are empty) the links the shape cuts between the
    /// experiment's nodes, until a `heal` fault fires or, with `duration`, that long after.
    Partition {
        from: Vec<String>,
        to: Vec<String>,
        shape: Option<Shape>,
        oneway: bool,
        duration: Option<Duration>,
    },
    /// End every partition in effect.
    Heal,
    /// Snapshot every node (threads, stacks, fds, memory) into `RUN_DIR/snapshots/`, right
    /// after the matching call or at the time given.
    Snapshot,
    /// Add a toxic to an experiment's `[[proxy]]` (removed after `duration`, else at the end
    /// of the workloads).
    Toxic {
        proxy: String,
        toxic: ToxicSpec,
        duration: Option<Duration>,
    },
    /// Send `signal` to every process of the node (its process groups and every traced
    /// process of it). Its exit after that is the fault, not a failure of the run.
    Signal { node: Target, signal: Signal },
}

impl FaultKind {
    /// The kind as written in a schedule (`short-io`).
    pub fn name(&self) -> &'static str {
        self.spec().name
    }

    /// Whether the fault acts on the system call at which it fires (delay, fail, short-io), so
    /// that it needs a call-level trigger (`nth` or `p`); the others act on whole nodes.
    pub fn is_call_level(&self) -> bool {
        self.spec().call_level
    }

    /// The node a node fault (crash, restart, pause, signal) acts on, when it names it (not
    /// for one aimed at a role).
    pub fn node(&self) -> Option<&str> {
        match self {
            FaultKind::Restart { node } => Some(node),
            _ => self.target().and_then(Target::node),
        }
    }

    /// What a crash, pause or signal acts on: a node, or the holder of a role.
    pub fn target(&self) -> Option<&Target> {
        match self {
            FaultKind::Crash { node, .. }
            | FaultKind::Pause { node, .. }
            | FaultKind::Signal { node, .. } => Some(node),
            // Only a role: a partition fires whether or not its isolated node runs.
            FaultKind::Partition {
                shape:
                    Some(Shape::Isolate {
                        node: Some(t @ Target::Role(_)),
                    }),
                ..
            } => Some(t),
            _ => None,
        }
    }

    /// Aims a crash, pause, signal or isolating partition at `node` (see
    /// [`crate::Fault::aimed_at`]).
    pub(crate) fn aim_at(&mut self, to: &str) {
        if let FaultKind::Crash { node, .. }
        | FaultKind::Pause { node, .. }
        | FaultKind::Signal { node, .. } = self
        {
            *node = Target::Node(to.to_string());
        }
        if let FaultKind::Partition {
            shape: Some(Shape::Isolate { node }),
            ..
        } = self
        {
            *node = Some(Target::Node(to.to_string()));
        }
    }

    pub(crate) fn spec(&self) -> &'static Spec {
        match self {
            FaultKind::Crash { .. } => &crash::SPEC,
            FaultKind::Restart { .. } => &restart::SPEC,
            FaultKind::Pause { .. } => &pause::SPEC,
            FaultKind::Delay { .. } => &delay::SPEC,
            FaultKind::Fail { .. } => &fail::SPEC,
            FaultKind::ShortIo { .. } => &short_io::SPEC,
            FaultKind::Partition { .. } => &partition::SPEC,
            FaultKind::Heal => &heal::SPEC,
            FaultKind::Snapshot => &snapshot::SPEC,
            FaultKind::Toxic { .. } => &toxic::SPEC,
            FaultKind::Signal { .. } => &signal::SPEC,
        }
    }
}

/// The spec of the kind written `name`.
pub(crate) fn spec(name: &str) -> Option<&'static Spec> {
    SPECS.iter().copied().find(|s| s.name == name)
}

/// One fault kind, as the schedule file and its checks know it.
pub(crate) struct Spec {
    /// As written in `kind`.
    pub name: &'static str,
    /// The keys it takes besides `name`, `kind` and `trigger`, in the order messages list them.
    pub keys: &'static [Key],
    /// It acts on the system call at which it fires ([`FaultKind::is_call_level`]).
    pub call_level: bool,
    /// For a call fault that must fire at the call's entry: why (`when = "after"` is refused).
    pub before_only: Option<&'static str>,
    /// Builds the kind from its table, whose keys were checked (every required key is there).
    /// `None` after reporting a bad value.
    pub read: fn(&RawFault, &mut Converter) -> Option<FaultKind>,
    /// Checks its values (for schedules built or changed in code too).
    pub check: fn(&FaultKind, &mut Checker),
    /// For a call fault: checks it against the system calls its trigger can match (lifecycle
    /// steps excluded, never empty).
    pub check_calls: fn(&FaultKind, &[Variant], &Pattern, &mut Checker),
    /// Writes its keys (besides `name`, `kind` and `trigger`).
    pub write: fn(&FaultKind, &mut Keys),
}

impl Spec {
    /// A kind that takes no key and checks and writes nothing: what each spec starts from.
    const BASE: Spec = Spec {
        name: "",
        keys: &[],
        call_level: false,
        before_only: None,
        read: |_, _| None,
        check: |_, _| {},
        check_calls: |_, _, _, _| {},
        write: |_, _| {},
    };
}

/// A key a kind takes.
pub(crate) struct Key {
    pub name: &'static str,
    pub required: bool,
    /// What a required key means, for "needs KEY" messages: ` (the node it acts on)`.
    pub help: &'static str,
    /// A key that may be given instead of this required one (with what it means).
    pub or: Option<(&'static str, &'static str)>,
}

const fn required(name: &'static str, help: &'static str) -> Key {
    Key {
        name,
        required: true,
        help,
        or: None,
    }
}

const fn optional(name: &'static str) -> Key {
    Key {
        name,
        required: false,
        help: "",
        or: None,
    }
}

/// Help shared by the node faults.
const NODE_HELP: &str = " (the node it acts on)";

/// The `node` key of a fault that acts on a node named or found by its role (`role`, listed
/// after it).
const fn node_or_role() -> Key {
    Key {
        or: Some(("role", " (the node holding that role when it fires)")),
        ..required("node", NODE_HELP)
    }
}

/// The node or role a crash, pause or signal acts on (`node` or `role`, whose presence was
/// checked); `None` after reporting both given.
fn target(f: &RawFault, c: &mut Converter) -> Option<Target> {
    match (&f.node, &f.role) {
        (Some(_), Some(role)) => {
            c.err(
                role.span(),
                "give `node` (a node by name) or `role` (the node holding it), not both",
            );
            None
        }
        (_, Some(role)) => Some(Target::Role(role.get_ref().clone())),
        (node, None) => Some(Target::Node(string(node))),
    }
}

type Str = Spanned<String>;

/// The spans of a value's items (a list's strings), to point at one of them.
pub(crate) trait ItemSpans {
    fn item_spans(&self) -> Vec<Range<usize>> {
        Vec::new()
    }
}

impl ItemSpans for String {}
impl ItemSpans for i64 {}
impl ItemSpans for bool {}
impl ItemSpans for toml::value::Table {}
impl ItemSpans for Vec<Str> {
    fn item_spans(&self) -> Vec<Range<usize>> {
        self.iter().map(|s| s.span()).collect()
    }
}

/// A kind key given in a `[[fault]]` table: where its value is, and its items (of a list).
pub(crate) struct Given {
    pub key: &'static str,
    pub span: Range<usize>,
    pub items: Vec<Range<usize>>,
}

/// `RawFault`: `name` and `kind`, every key of any kind, then `trigger` (the order of serde's
/// unknown-key message), with `given` listing the kind keys present.
macro_rules! raw_fault {
    ($($key:ident: $ty:ty,)*) => {
        /// One `[[fault]]` table as written.
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        pub(crate) struct RawFault {
            #[serde(default)]
            pub name: Option<Str>,
            #[serde(default)]
            pub kind: Option<Str>,
            $(
                #[serde(default)]
                pub $key: Option<Spanned<$ty>>,
            )*
            #[serde(default)]
            pub trigger: Option<Spanned<RawTrigger>>,
        }

        impl RawFault {
            /// The kind keys present, in the order above.
            pub fn given(&self) -> Vec<Given> {
                let mut out = Vec::new();
                $(
                    if let Some(v) = &self.$key {
                        out.push(Given {
                            key: stringify!($key),
                            span: v.span(),
                            items: v.get_ref().item_spans(),
                        });
                    }
                )*
                out
            }
        }
    };
}

raw_fault! {
    node: String,
    role: String,
    restart_after: String,
    duration: String,
    errno: String,
    max_bytes: i64,
    from: Vec<Str>,
    to: Vec<Str>,
    oneway: bool,
    shape: String,
    proxy: String,
    toxic: toml::value::Table,
    signal: String,
}

/// A required string key's value (present once the keys were checked).
fn string(v: &Option<Str>) -> String {
    v.as_ref().map(|s| s.get_ref().clone()).unwrap_or_default()
}

/// A list of strings' values.
fn strings(v: &Option<Spanned<Vec<Str>>>) -> Vec<String> {
    v.iter()
        .flat_map(|l| l.get_ref())
        .map(|s| s.get_ref().clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_is_listed_once_and_found_by_name() {
        assert_eq!(
            FAULT_KINDS,
            [
                "crash",
                "restart",
                "pause",
                "delay",
                "fail",
                "short-io",
                "partition",
                "heal",
                "snapshot",
                "toxic",
                "signal"
            ]
        );
        for name in FAULT_KINDS {
            assert_eq!(spec(name).map(|s| s.name), Some(*name));
        }
        assert!(spec("explode").is_none());
    }
}
