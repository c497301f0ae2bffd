//! `[roles]`: how to find which node holds a role (a leader, a primary) while a run goes on.
//! Each role has a probe command, run once per running node with the node in its environment;
//! the nodes where it succeeds (and, with `matches`, prints a matching line) hold the role.
//! The run (ordeal-run) runs the probes; this file reads, checks and resolves them.

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

/// A role as the file declares it.
#[derive(Debug, Clone)]
pub(crate) struct RoleDef {
    name: String,
    command: Vec<Template>,
    matches: Option<Regex>,
    timeout: Duration,
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
            let command = match &r.command {
                Some(c) => self.argv("command", c),
                None => {
                    self.err(
                        Some(role.span()),
                        format!(
                            "role `{n}` needs `command = [\"program\", ...]`: the probe run on \
                             each node (ORDEAL_NODE, ORDEAL_HOST and ORDEAL_PORT say which); \
                             the nodes where it succeeds hold the role"
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
            let timeout = r
                .timeout
                .as_ref()
                .and_then(|t| self.duration(t))
                .unwrap_or(DEFAULT_ROLE_TIMEOUT);
            roles.push(RoleDef {
                name: n.clone(),
                command,
                matches,
                timeout,
            });
        }
        roles
    }
}

impl RoleDef {
    pub(crate) fn name(&self) -> &str {
        &self.name
    }
}

impl Resolver<'_> {
    /// A role's probe for this run; its program is looked up as the nodes' are.
    pub(crate) fn role(&mut self, role: &RoleDef) -> RoleProbe {
        let what = format!("role `{}`", role.name);
        let argv: Vec<String> = role.command.iter().map(|a| self.string(&what, a)).collect();
        let cwd = self.base_dir().to_path_buf();
        let location = match role.command.first() {
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
        RoleProbe {
            name: role.name.clone(),
            program,
            argv,
            cwd,
            matches: role.matches.clone(),
            timeout: role.timeout,
        }
    }
}
