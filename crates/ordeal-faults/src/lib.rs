//! Fault schedules for ordeal: which faults to inject into a traced run, and when.
//!
//! A fault schedule file (TOML, documented for users in `docs/faults.md`) lists faults, each
//! with a [`FaultKind`] (one of [`FAULT_KINDS`]: node faults such as crash or partition, call
//! faults such as delay or fail; a crash, pause or signal acts on a [`Target`], a node by name
//! or the holder of one of the experiment's roles) and a [`Trigger`] (the nth event matching a [`Pattern`], a
//! time after the workload starts, or a probability per matching event drawn from the
//! schedule's seed). Each kind is one file of `src/kinds/`, holding all the schedule side knows
//! of it: its keys, their reading, checks and writing. A partition names its two sides or a
//! [`Shape`] (isolate, halves, bridge, ring), laid over the experiment's nodes when it fires
//! ([`Shape::split`], drawn from the fault's own dice: [`shape_dice`]). This crate parses and
//! validates schedules, writes them back as files ([`Schedule::to_toml`]), decides when each
//! fault fires ([`TriggerState`]), and reads and writes the record of what fired ([`Applied`],
//! `schedule.applied.toml`). It does not inject anything: the tracer and the supervisor do,
//! asking this crate when.
//!
//! ```no_run
//! use ordeal_faults::{Participants, Schedule, When};
//!
//! let who = Participants::new(["n0", "n1"], ["client"]);
//! // Parse and check against the experiment's names; every problem is reported at once.
//! let schedule = Schedule::load("faults.toml", &who)?;
//! let mut states = schedule.trigger_states();
//! # let ev = ordeal_events::Event::default();
//! // At a call's entry, with the event as known then:
//! for (fault, state) in schedule.faults.iter().zip(&mut states) {
//!     if state.observe(&ev, When::Before) {
//!         println!("fault {} fires", fault.name);
//!     }
//! }
//! # Ok::<(), ordeal_faults::Error>(())
//! ```
//!
//! Every problem with a file is reported as an [`Error::Invalid`] holding [`Diagnostic`]s,
//! displayed as `file:line:column: message`.
#![forbid(unsafe_code)]

mod applied;
mod calls;
mod check;
mod error;
mod kinds;
mod parse;
mod pattern;
mod shape;
mod target;
mod trigger;
mod write;

use std::path::Path;
use std::time::Duration;

pub use applied::{
    applied_to_toml, parse_applied_toml, read_applied_toml, write_applied_toml, Applied,
    APPLIED_FILE,
};
pub use calls::{
    allowed_errnos, call_classes, call_direction, CallInfo, Errno, LIFECYCLE_STEPS, SHORT_IO_CALLS,
    TRACED_CALLS,
};
pub use error::{Diagnostic, Error, Location, UnknownErrno};
// The kinds and the types of their values (each kind is one file of `kinds/`).
pub use kinds::*;
pub use ordeal_events::Class;
pub use ordeal_toml::{parse_duration, DurationError};
pub use pattern::{Direction, GlobError, Holders, PathGlob, Pattern};
pub use shape::{shape_dice, Shape, ShapeError, ShapeState, Split, SHAPES};
pub use target::Target;
pub use trigger::{fault_seed, TriggerState};

use parse::FaultSpans;

/// One fault of a schedule: what happens, and when.
#[derive(Debug, Clone, PartialEq)]
pub struct Fault {
    /// Unique within the schedule; `KIND-N` (N: 1-based position in the file) when the file
    /// gives none.
    pub name: String,
    pub kind: FaultKind,
    pub trigger: Trigger,
}

/// Whether an event counts at its call's entry or at its completion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum When {
    /// At the call's entry, before it runs (the default).
    #[default]
    Before,
    /// When the call has completed, before the process sees its result.
    After,
}

impl When {
    pub fn name(self) -> &'static str {
        match self {
            When::Before => "before",
            When::After => "after",
        }
    }
}

/// When a fault fires.
#[derive(Debug, Clone, PartialEq)]
pub enum Trigger {
    /// At the `nth` (1-based) event matching `pattern`, and at the `times - 1` matching events
    /// after it.
    At {
        nth: u64,
        times: u64,
        pattern: Pattern,
        when: When,
    },
    /// Once, `after` the workload started.
    Time { after: Duration },
    /// At each event matching `pattern` with probability `p`, until it fired `times` times.
    /// The dice come from the schedule's seed and the fault's position: a replay with the same
    /// events fires at the same ones.
    Probability {
        p: f64,
        times: u64,
        pattern: Pattern,
        when: When,
    },
}

impl Trigger {
    /// The trigger's pattern (none for a time trigger).
    pub fn pattern(&self) -> Option<&Pattern> {
        match self {
            Trigger::At { pattern, .. } | Trigger::Probability { pattern, .. } => Some(pattern),
            Trigger::Time { .. } => None,
        }
    }

    /// The trigger's `when` (none for a time trigger).
    pub fn when(&self) -> Option<When> {
        match self {
            Trigger::At { when, .. } | Trigger::Probability { when, .. } => Some(*when),
            Trigger::Time { .. } => None,
        }
    }

    /// The k-th matching event (`nth = 1`), counted at the call's entry.
    pub fn nth(nth: u64, pattern: Pattern) -> Trigger {
        Trigger::At {
            nth,
            times: 1,
            pattern,
            when: When::Before,
        }
    }
}

/// The names a schedule may refer to: the experiment's nodes and workloads, and its roles
/// (`[roles]`, see [`Participants::with_roles`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Participants {
    pub nodes: Vec<String>,
    pub workloads: Vec<String>,
    pub roles: Vec<String>,
}

impl Participants {
    pub fn new<N, W>(nodes: N, workloads: W) -> Participants
    where
        N: IntoIterator,
        N::Item: Into<String>,
        W: IntoIterator,
        W::Item: Into<String>,
    {
        Participants {
            nodes: nodes.into_iter().map(Into::into).collect(),
            workloads: workloads.into_iter().map(Into::into).collect(),
            roles: Vec::new(),
        }
    }

    /// The same names, with the experiment's roles: what `role = "..."` may name.
    pub fn with_roles<R>(mut self, roles: R) -> Participants
    where
        R: IntoIterator,
        R::Item: Into<String>,
    {
        self.roles = roles.into_iter().map(Into::into).collect();
        self
    }
}

impl Fault {
    /// The role whose holder it acts on (`role = "..."` in a node fault), if any.
    pub fn target_role(&self) -> Option<&str> {
        self.kind.target().and_then(Target::role)
    }

    /// The roles it needs found while the run goes on: the one it acts on and the one its
    /// trigger counts the calls of, each once.
    pub fn roles(&self) -> Vec<&str> {
        let mut roles: Vec<&str> = self.target_role().into_iter().collect();
        if let Some(r) = self.trigger.pattern().and_then(Pattern::role) {
            if !roles.contains(&r) {
                roles.push(r);
            }
        }
        roles
    }

    /// The same fault aimed at `node` (what a fault aimed at a role does once its holder is
    /// known); a fault not aimed at a role is returned unchanged.
    pub fn aimed_at(&self, node: &str) -> Fault {
        let mut f = self.clone();
        f.kind.aim_at(node);
        f
    }
}

/// A parsed fault schedule. It remembers where each value was in its file, so that
/// [`Schedule::validate`] can point at it.
#[derive(Debug, Clone)]
pub struct Schedule {
    /// Seeds every probability trigger (`seed`, default 0).
    pub seed: u64,
    /// The faults, in file order. They may be changed; [`Schedule::validate`] then names a
    /// fault whose name changed (or that moved) instead of pointing at its position.
    pub faults: Vec<Fault>,
    file: String,
    /// Positions of each fault's values, by index (empty for a schedule built in code).
    spans: Vec<FaultSpans>,
}

impl PartialEq for Schedule {
    fn eq(&self, other: &Self) -> bool {
        self.seed == other.seed && self.faults == other.faults
    }
}

impl Schedule {
    /// A schedule built in code. `file` names it in messages; problems found by
    /// [`Schedule::validate`] name the fault instead of a position.
    pub fn new(file: impl Into<String>, seed: u64, faults: Vec<Fault>) -> Schedule {
        Schedule {
            seed,
            faults,
            file: file.into(),
            spans: Vec::new(),
        }
    }

    /// Reads and parses the schedule at `path` (see [`Schedule::parse`]).
    pub fn from_path(path: impl AsRef<Path>) -> Result<Schedule, Error> {
        let path = path.as_ref();
        Schedule::parse(&read(path)?, path)
    }

    /// Parses schedule text; `path` names the file in messages. Checks everything that does
    /// not depend on the experiment (kinds, keys, values, impossible trigger combinations);
    /// [`Schedule::validate`] then checks the node names.
    pub fn parse(text: &str, path: impl AsRef<Path>) -> Result<Schedule, Error> {
        parse::parse(text, &path.as_ref().display().to_string(), None)
    }

    /// Reads, parses and validates the schedule at `path` for an experiment with these nodes
    /// and workloads, reporting every problem of either step together.
    pub fn load(path: impl AsRef<Path>, names: &Participants) -> Result<Schedule, Error> {
        let path = path.as_ref();
        Schedule::parse_for(&read(path)?, path, names)
    }

    /// [`Schedule::parse`] and [`Schedule::validate_for`] in one step, reporting every problem
    /// of either together.
    pub fn parse_for(
        text: &str,
        path: impl AsRef<Path>,
        names: &Participants,
    ) -> Result<Schedule, Error> {
        parse::parse(text, &path.as_ref().display().to_string(), Some(names))
    }

    /// Checks the schedule against an experiment's node names (see
    /// [`Schedule::validate_for`], with no workloads).
    pub fn validate<S: AsRef<str>>(&self, node_names: &[S]) -> Result<(), Error> {
        let names = Participants::new(node_names.iter().map(|s| s.as_ref()), Vec::<String>::new());
        self.validate_for(&names)
    }

    /// Checks the schedule for an experiment: every node a fault or trigger names exists
    /// (node faults need nodes; patterns and partitions may also name workloads),
    /// and every rule [`Schedule::parse`] checks holds (for schedules built or changed in code).
    pub fn validate_for(&self, names: &Participants) -> Result<(), Error> {
        let mut diags = check::check_schedule(self, Some(names));
        if diags.is_empty() {
            return Ok(());
        }
        ordeal_toml::sort_diagnostics(&mut diags);
        Err(Error::Invalid(diags))
    }

    /// The file name used in messages.
    pub fn file(&self) -> &str {
        &self.file
    }

    /// Every role a fault acts on or a trigger counts the calls of, in first-use order.
    pub fn roles(&self) -> Vec<&str> {
        let mut roles: Vec<&str> = Vec::new();
        for r in self.faults.iter().flat_map(Fault::roles) {
            if !roles.contains(&r) {
                roles.push(r);
            }
        }
        roles
    }

    /// The fault called `name`.
    pub fn fault(&self, name: &str) -> Option<&Fault> {
        self.faults.iter().find(|f| f.name == name)
    }

    /// A fresh trigger state for every fault, in order, seeded from the schedule's seed.
    pub fn trigger_states(&self) -> Vec<TriggerState> {
        self.faults
            .iter()
            .enumerate()
            .map(|(i, f)| TriggerState::new(f, self.seed, i))
            .collect()
    }

    /// Where fault `index` was in the file, unless the faults were changed since.
    pub(crate) fn spans(&self, index: usize) -> Option<&FaultSpans> {
        let fault = self.faults.get(index)?;
        self.spans.get(index).filter(|s| s.fault == fault.name)
    }
}

fn read(path: &Path) -> Result<String, Error> {
    std::fs::read_to_string(path).map_err(|source| Error::Read {
        path: path.to_path_buf(),
        what: "fault schedule",
        source,
    })
}
