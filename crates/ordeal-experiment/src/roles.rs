//! `[roles]`: how to find which node holds a role (a leader, a primary) while a run goes on.
//! A role has either a probe command, run once per running node with the node in its
//! environment (the nodes where it succeeds, and with `matches` print a matching line, hold
//! the role), or an inference from the traced traffic (`infer = "fans-out"`: the node that
//! sent to every other running node within the last `window`, see [`Inference`]). The run
//! (ordeal-run) runs the probes and keeps the traffic; this file reads, checks and resolves
//! them.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use regex::Regex;
use toml::Spanned;

use crate::raw::{RawExperiment, RawRole, Str};
use crate::resolve::Resolver;
use crate::template::{is_simple_name, Template};
use crate::validate::{regex_message, Validator};
use crate::Location;

/// How long one probe of one node may take unless the role says (`timeout`).
pub const DEFAULT_ROLE_TIMEOUT: Duration = Duration::from_secs(2);

/// How far back an inferred role looks at the traffic unless the role says (`window`).
pub const DEFAULT_INFER_WINDOW: Duration = Duration::from_secs(2);

/// The longest `window` an inferred role may ask: the run keeps this much traffic per pair
/// of nodes.
pub const MAX_INFER_WINDOW: Duration = Duration::from_secs(60);

/// A role as the file declares it.
#[derive(Debug, Clone)]
pub(crate) struct RoleDef {
    name: String,
    find: Finder,
    timeout: Duration,
}

/// How a declared role is found.
#[derive(Debug, Clone)]
enum Finder {
    Probe {
        command: Vec<Template>,
        matches: Option<Regex>,
    },
    Infer {
        rule: Inference,
        window: Duration,
    },
}

/// What traffic makes a node hold an inferred role (`infer = "..."`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inference {
    /// `fans-out`: within the window, the node sent to every other running node, and every
    /// other running node that sent anything sent most of its bytes to it (a Raft leader's
    /// heartbeats and appends, a primary's replication stream). Several such nodes (two
    /// nodes that only talk to each other): the one that sent the most bytes to the others,
    /// if at least twice as many as any other; else none.
    FansOut,
}

impl Inference {
    /// The spellings `infer` accepts, and what each is.
    pub const ALL: [(&'static str, Inference); 1] = [("fans-out", Inference::FansOut)];

    /// As the file spells it.
    pub fn name(self) -> &'static str {
        match self {
            Inference::FansOut => "fans-out",
        }
    }
}

/// A role found from the traced traffic rather than by a probe. The run keeps a bounded
/// record of the recent sends between nodes (completed sends whose peer is a node) and
/// applies `rule` to the last `window` of it, among the nodes running (not crashed, not
/// paused) at that moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InferredRole {
    /// The role's name (`leader`).
    pub name: String,
    pub rule: Inference,
    /// How far back the traffic counts (`window`, default 2 s).
    pub window: Duration,
    /// How long a fault aimed at the role waits for a node to hold it (`timeout`, default
    /// 2 s): the traffic is looked at again every 100 ms until then.
    pub timeout: Duration,
}

/// A declared role made concrete for one run.
pub(crate) enum ResolvedRole {
    Probe(RoleProbe),
    Inferred(InferredRole),
}

/// A role made concrete for one run: the probe to run on each node.
///
/// The probe runs untraced, in the experiment file's directory, with the run's environment
/// plus, for the node probed: `ORDEAL_NODE` (its name), `ORDEAL_HOST` (its address),
/// `ORDEAL_PORT` (its port: the one named after it, else the first of its ports by name) and
/// `ORDEAL_DATA_DIR` (when it has one); and for every node and workload
/// `ORDEAL_PORT_<NAME>`/`ORDEAL_HOST_<NAME>`, as for `[check]`.
#[derive(Debug, Clone)]
pub struct RoleProbe {
    /// The role's name (`leader`).
    pub name: String,
    /// The absolute path of the probe's program.
    pub program: PathBuf,
    /// The probe's argument vector, placeholders expanded.
    pub argv: Vec<String>,
    /// Where it runs: the experiment file's directory.
    pub cwd: PathBuf,
    /// With `matches`: a node holds the role when a line of the probe's output matches too.
    pub matches: Option<Regex>,
    /// How long one probe of one node may take (`timeout`, default 2 s); one that takes longer
    /// is killed and says no.
    pub timeout: Duration,
}

impl Validator<'_> {
    /// `[roles]`: each role's name (not a node's, workload's or proxy's: schedules and
    /// explore's candidates name either), its command, `matches` and `timeout`.
    pub(crate) fn roles(
        &mut self,
        raw: &Option<Spanned<BTreeMap<Str, Spanned<RawRole>>>>,
        exp: &RawExperiment,
    ) -> Vec<RoleDef> {
        let Some(table) = raw else {
            return Vec::new();
        };
        if table.get_ref().is_empty() {
            self.err(
                Some(table.span()),
                "[roles] is empty: declare a role, e.g. `leader = { command = [\"...\"], \
                 matches = \"...\" }`, or remove the table",
            );
        }
        let taken = |name: &str| -> Option<&'static str> {
            if exp.nodes.iter().any(|n| n.get_ref().name.get_ref() == name) {
                Some("a node")
            } else if exp
                .workloads
                .iter()
                .any(|w| w.get_ref().name.get_ref() == name)
            {
                Some("a workload")
            } else if exp
                .proxies
                .iter()
                .any(|p| p.get_ref().name.get_ref() == name)
            {
                Some("a proxy")
            } else {
                None
            }
        };
        let mut roles = Vec::new();
        for (name, role) in table.get_ref() {
            let n = name.get_ref();
            if !is_simple_name(n) {
                self.err(
                    Some(name.span()),
                    format!(
                        "invalid role name `{}`: use letters, digits, `_` and `-`",
                        ordeal_toml::truncated(n)
                    ),
                );
            } else if let Some(what) = taken(n) {
                self.err(
                    Some(name.span()),
                    format!(
                        "role `{n}` has the name of {what}: a role needs a name of its own \
                         (schedules say `node = \"...\"` or `role = \"...\"`, explore's \
                         candidates name either)"
                    ),
                );
            }
            let r = role.get_ref();
            let find = match &r.infer {
                Some(rule) => self.inference(n, role, rule),
                None => self.probe(n, role),
            };
            let timeout = r
                .timeout
                .as_ref()
                .and_then(|t| self.duration(t))
                .unwrap_or(DEFAULT_ROLE_TIMEOUT);
            roles.push(RoleDef {
                name: n.clone(),
                find,
                timeout,
            });
        }
        roles
    }

    /// A probed role: `command` (required) and `matches`; no `window`.
    fn probe(&mut self, n: &str, role: &Spanned<RawRole>) -> Finder {
        let r = role.get_ref();
        if let Some(w) = &r.window {
            self.err(
                Some(w.span()),
                format!(
                    "role `{n}`: `window` is for a role inferred from traffic (`infer = \
                     \"fans-out\"`); a probed role has none"
                ),
            );
        }
        let command = match &r.command {
            Some(c) => self.argv("command", c),
            None => {
                self.err(
                    Some(role.span()),
                    format!(
                        "role `{n}` needs `command = [\"program\", ...]`: the probe run on \
                         each node (ORDEAL_NODE, ORDEAL_HOST and ORDEAL_PORT say which); \
                         the nodes where it succeeds hold the role; or `infer = \"fans-out\"`: \
                         the node that sends to every other holds it"
                    ),
                );
                Vec::new()
            }
        };
        let matches = r
            .matches
            .as_ref()
            .and_then(|m| match Regex::new(m.get_ref()) {
                Ok(re) => Some(re),
                Err(e) => {
                    self.err(
                        Some(m.span()),
                        format!(
                            "invalid regular expression in `matches`: {}",
                            regex_message(&e)
                        ),
                    );
                    None
                }
            });
        Finder::Probe { command, matches }
    }

    /// An inferred role: `infer` (one of [`Inference::ALL`]) and `window`; neither
    /// `command` nor `matches`.
    fn inference(&mut self, n: &str, role: &Spanned<RawRole>, rule: &Str) -> Finder {
        let r = role.get_ref();
        for (key, given) in [
            ("command", r.command.as_ref().map(|c| c.span())),
            ("matches", r.matches.as_ref().map(|m| m.span())),
        ] {
            if let Some(span) = given {
                self.err(
                    Some(span),
                    format!(
                        "role `{n}`: `{key}` belongs to a probed role; one inferred from \
                         traffic (`infer`) runs no probe: remove one or the other"
                    ),
                );
            }
        }
        let known = Inference::ALL.map(|(name, _)| name);
        let found = Inference::ALL
            .iter()
            .find(|(name, _)| *name == rule.get_ref().as_str())
            .map(|(_, i)| *i);
        let rule = found.unwrap_or_else(|| {
            let hint = ordeal_toml::suggest(rule.get_ref(), known.iter().copied(), 3)
                .map(|s| format!(" (did you mean `{s}`?)"))
                .unwrap_or_default();
            self.err(
                Some(rule.span()),
                format!(
                    "role `{n}`: unknown inference `{}`{hint}: `infer` takes {}",
                    ordeal_toml::truncated(rule.get_ref()),
                    known.map(|k| format!("`{k}`")).join(", ")
                ),
            );
            Inference::FansOut
        });
        let window = match &r.window {
            Some(w) => match self.duration(w) {
                Some(d) if d > MAX_INFER_WINDOW => {
                    self.err(
                        Some(w.span()),
                        format!(
                            "role `{n}`: a window of at most {}s (the run keeps that much \
                             traffic)",
                            MAX_INFER_WINDOW.as_secs()
                        ),
                    );
                    DEFAULT_INFER_WINDOW
                }
                Some(d) => d,
                None => DEFAULT_INFER_WINDOW,
            },
            None => DEFAULT_INFER_WINDOW,
        };
        Finder::Infer { rule, window }
    }
}

impl RoleDef {
    pub(crate) fn name(&self) -> &str {
        &self.name
    }
}

impl Resolver<'_> {
    /// A role for this run: a probe's program is looked up as the nodes' are.
    pub(crate) fn role(&mut self, role: &RoleDef) -> ResolvedRole {
        let (command, matches) = match &role.find {
            Finder::Probe { command, matches } => (command, matches),
            Finder::Infer { rule, window } => {
                return ResolvedRole::Inferred(InferredRole {
                    name: role.name.clone(),
                    rule: *rule,
                    window: *window,
                    timeout: role.timeout,
                })
            }
        };
        let what = format!("role `{}`", role.name);
        let argv: Vec<String> = command.iter().map(|a| self.string(&what, a)).collect();
        let cwd = self.base_dir().to_path_buf();
        let location = match command.first() {
            Some(t) => t.location.clone(),
            None => Location::file_only(self.file()),
        };
        let program = self.program(
            &format!("{what}: command"),
            &argv,
            &location,
            &cwd,
            &BTreeMap::new(),
        );
        ResolvedRole::Probe(RoleProbe {
            name: role.name.clone(),
            program,
            argv,
            cwd,
            matches: matches.clone(),
            timeout: role.timeout,
        })
    }
}
