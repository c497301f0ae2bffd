//! Checking a parsed experiment file and turning it into an [`Experiment`]: every problem is
//! collected, then reported at once in file order.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::Spanned;

use crate::raw::{
    self, RawCheck, RawCrash, RawDataDir, RawExperiment, RawExplore, RawNode, RawProxy,
    RawWorkload, Str, StrList, StrMap,
};
use crate::template::{self, is_simple_name, Placeholder, Template};
use crate::{
    parse_duration, DataDirDef, Diagnostic, Error, Experiment, ExploreDefaults, HistoryCheck,
    HistorySource, Network, Node, Process, ProxyDef, ReadyDef, Source, Workload, CHECK_NAME,
    CRASH_CHECK_NAME, DEFAULT_HANG_TIMEOUT, DEFAULT_READY_TIMEOUT, DEFAULT_STOP_TIMEOUT,
    DEFAULT_TIMEOUT, HISTORY_MODELS, STOP_SIGNALS,
};

/// Validates `raw` (read from `src`); `base_dir` is where relative paths start.
pub(crate) fn validate(
    src: Source<'_>,
    raw: RawExperiment,
    base_dir: PathBuf,
) -> Result<Experiment, Error> {
    Validator {
        src,
        diags: Vec::new(),
        used: Vec::new(),
    }
    .run(raw, base_dir)
}

pub(crate) struct Validator<'a> {
    pub(crate) src: Source<'a>,
    pub(crate) diags: Vec<Diagnostic>,
    /// Every string with placeholders, in file order, for the cross-checks.
    pub(crate) used: Vec<Used>,
}

/// A template together with the span of its string, for precise locations of its placeholders.
pub(crate) struct Used {
    pub(crate) template: Template,
    pub(crate) span: Range<usize>,
}

impl Validator<'_> {
    fn run(mut self, raw: RawExperiment, base_dir: PathBuf) -> Result<Experiment, Error> {
        self.experiment_name(&raw.name);
        let timeout = raw
            .timeout
            .as_ref()
            .and_then(|t| self.duration(t))
            .unwrap_or(DEFAULT_TIMEOUT);
        let hang_timeout = self.hang_timeout(raw.hang_timeout.as_ref());
        let failure_pattern = self.failure_pattern(raw.failure_pattern.as_ref());
        let network = self.network(raw.network.as_ref());
        let engine = self.engine(raw.engine.as_ref());
        let vars = self.vars(&raw.vars);
        let explore = raw
            .explore
            .as_ref()
            .map(|e| self.explore(e.get_ref(), &vars))
            .unwrap_or_default();
        if raw.nodes.is_empty() {
            self.err(
                None,
                "the experiment has no node: add at least one [[node]] table",
            );
        }
        self.unique_names(&raw);

        let mut nodes = Vec::new();
        // Node name → its `ports` list (with spans), for the nodes that have one.
        let mut listed_ports: Vec<(String, Vec<Str>)> = Vec::new();
        for n in &raw.nodes {
            let (node, listed) = self.node(n);
            if let Some(list) = listed {
                listed_ports.push((node.process.name.clone(), list));
            }
            nodes.push(node);
        }
        let workloads: Vec<Workload> = raw.workloads.iter().map(|w| self.workload(w)).collect();
        let check = raw.check.as_ref().and_then(|c| self.check_command(c));
        let proxies = self.proxies(&raw.proxies, network);
        let history_check = raw
            .check
            .as_ref()
            .and_then(|c| self.history_check(c, &nodes, &workloads));
        let crash_check = raw.crash.as_ref().and_then(|c| self.crash_check(c));
        let crash_workload = raw
            .crash
            .as_ref()
            .and_then(|c| self.crash_workload(c, &workloads));
        let roles = self.roles(&raw.roles, &raw);
        if raw.check.is_some() {
            self.check_name_is_free(&raw);
        }

        let port_names = self.cross_check_placeholders(&vars, &nodes, &workloads);
        let port_owners = self.port_owners(&port_names, &listed_ports, &nodes);
        self.port_slips(&port_owners, &proxies);
        if network == Network::Netns && nodes.len() + workloads.len() > 253 {
            self.err(
                raw.network.as_ref().map(|n| n.span()),
                "`network = \"netns\"` gives each node and workload an address in one /24: at \
                 most 253 of them",
            );
        }

        if !self.diags.is_empty() {
            ordeal_toml::sort_diagnostics(&mut self.diags);
            return Err(Error::Invalid(self.diags));
        }
        Ok(Experiment {
            file: self.src.file().to_string(),
            base_dir,
            name: raw.name.into_inner(),
            description: raw.description,
            timeout,
            hang_timeout,
            network,
            engine,
            vars,
            nodes,
            workloads,
            check,
            history_check,
            proxies,
            crash_check,
            crash_workload,
            explore,
            roles,
            port_names,
            port_owners,
            failure_pattern,
        })
    }

    /// `failure_pattern`: a regex matched against each log line (no anchors added).
    fn failure_pattern(&mut self, value: Option<&Str>) -> regex::Regex {
        let default = || {
            regex::Regex::new(crate::DEFAULT_FAILURE_PATTERN).expect("the default pattern parses")
        };
        let Some(v) = value else {
            return default();
        };
        match regex::Regex::new(v.get_ref()) {
            Ok(r) if r.is_match("") => {
                self.err(
                    Some(v.span()),
                    "`failure_pattern` matches an empty line, so every line would be a failure: \
                     give a word to look for (e.g. \"FAILED|panicked\")",
                );
                default()
            }
            Ok(r) => r,
            Err(e) => {
                self.err(
                    Some(v.span()),
                    format!("`failure_pattern` is not a valid regex: {e}"),
                );
                default()
            }
        }
    }

    pub(crate) fn err(&mut self, span: Option<Range<usize>>, message: impl Into<String>) {
        let d = self.src.diag(span, message);
        self.diags.push(d);
    }

    pub(crate) fn duration(&mut self, value: &Str) -> Option<Duration> {
        match parse_duration(value.get_ref()) {
            Ok(d) if d.is_zero() => {
                self.err(Some(value.span()), "the duration must be greater than zero");
                None
            }
            Ok(d) => Some(d),
            Err(e) => {
                self.err(Some(value.span()), e.to_string());
                None
            }
        }
    }

    /// The experiment's `name` is used in run directory names.
    fn experiment_name(&mut self, name: &Str) {
        let text = name.get_ref();
        let ok = !text.is_empty()
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
            && !text.bytes().all(|b| b == b'.');
        if !ok {
            self.err(
                Some(name.span()),
                format!(
                    "invalid experiment name `{text}`: use letters, digits, `_`, `.` and `-` \
                     (it is part of run directory names)"
                ),
            );
        }
    }

    /// `hang_timeout`: a duration, or `"off"` (`None`).
    fn hang_timeout(&mut self, value: Option<&Str>) -> Option<Duration> {
        match value {
            None => Some(DEFAULT_HANG_TIMEOUT),
            Some(v) if v.get_ref().trim() == "off" => None,
            Some(v) => self.duration(v),
        }
    }

    fn network(&mut self, value: Option<&Str>) -> Network {
        match value.map(|n| (n, n.get_ref().as_str())) {
            None | Some((_, "loopback")) => Network::Loopback,
            Some((_, "netns")) => Network::Netns,
            Some((n, other)) => {
                self.err(
                    Some(n.span()),
                    format!("unknown network `{other}`: expected `loopback` or `netns`"),
                );
                Network::Loopback
            }
        }
    }

    fn engine(&mut self, value: Option<&Str>) -> crate::EngineChoice {
        let Some(v) = value else {
            return crate::EngineChoice::Auto;
        };
        v.get_ref().parse().unwrap_or_else(|e: String| {
            self.err(Some(v.span()), e);
            crate::EngineChoice::Auto
        })
    }

    /// `[vars]`: their names, and their values as written.
    fn vars(&mut self, raw: &StrMap) -> BTreeMap<String, String> {
        let mut vars = BTreeMap::new();
        for (k, v) in raw {
            if !is_simple_name(k.get_ref()) {
                self.err(
                    Some(k.span()),
                    format!(
                        "invalid variable name `{}`: use letters, digits, `_` and `-`",
                        k.get_ref()
                    ),
                );
            }
            vars.insert(k.get_ref().clone(), v.get_ref().clone());
        }
        vars
    }

    /// `[explore]`: its durations, and its `set` of declared variables.
    fn explore(&mut self, e: &RawExplore, vars: &BTreeMap<String, String>) -> ExploreDefaults {
        let mut explore = ExploreDefaults {
            fault_duration: e.fault_duration.as_ref().and_then(|d| self.duration(d)),
            restart_after: e.restart_after.as_ref().and_then(|d| self.duration(d)),
            set: Vec::new(),
        };
        for (k, v) in &e.set {
            if !vars.contains_key(k.get_ref()) {
                self.err(
                    Some(k.span()),
                    format!(
                        "[explore] set: unknown variable `{}` (declare it in [vars])",
                        k.get_ref()
                    ),
                );
            }
            explore.set.push((k.get_ref().clone(), v.get_ref().clone()));
        }
        explore
    }

    /// Names of nodes, workloads and proxies: valid, and unique across all three.
    fn unique_names(&mut self, raw: &RawExperiment) {
        let mut seen: BTreeMap<String, Range<usize>> = BTreeMap::new();
        let names = raw
            .nodes
            .iter()
            .map(|n| &n.get_ref().name)
            .chain(raw.workloads.iter().map(|w| &w.get_ref().name))
            .chain(raw.proxies.iter().map(|p| &p.get_ref().name));
        for n in names {
            let name = n.get_ref();
            if !is_simple_name(name) {
                self.err(
                    Some(n.span()),
                    format!("invalid name `{name}`: use letters, digits, `_` and `-`"),
                );
            } else if let Some(first) = seen.get(name) {
                let first = self.src.at(first.start);
                self.err(
                    Some(n.span()),
                    format!(
                        "duplicate name `{name}` (first used at {first}); node and workload \
                         names must be unique"
                    ),
                );
            } else {
                seen.insert(name.clone(), n.span());
            }
        }
    }

    /// A `[[node]]`, and its `ports` list without duplicates (when it has one).
    fn node(&mut self, raw: &Spanned<RawNode>) -> (Node, Option<Vec<Str>>) {
        let table = raw.span();
        let n = raw.get_ref();
        let mut process = self.process(table, &n.name, &n.argv, &n.env, &n.cwd);
        process.trace = n.trace.unwrap_or(true);
        let data_dir = match n.data_dir.as_ref().map(|d| d.get_ref()) {
            None | Some(RawDataDir::None) => None,
            Some(RawDataDir::Fresh) => Some(DataDirDef::Fresh),
            Some(RawDataDir::CopyFrom(p)) => {
                if p.get_ref().is_empty() {
                    self.err(Some(p.span()), "`copy_from` must not be empty");
                }
                Some(DataDirDef::CopyFrom(self.template(p)))
            }
        };
        let ready = n.ready.as_ref().and_then(|r| self.ready(r));
        let ready_timeout = match &n.ready_timeout {
            None => DEFAULT_READY_TIMEOUT,
            Some(t) => {
                if n.ready.is_none() {
                    self.err(
                        Some(t.span()),
                        "`ready_timeout` has no effect without `ready`: remove it or add \
                         a ready condition",
                    );
                }
                self.duration(t).unwrap_or(DEFAULT_READY_TIMEOUT)
            }
        };
        let stop_signal = n.stop_signal.as_ref().and_then(|s| self.stop_signal(s));
        let stop_timeout = match &n.stop_timeout {
            None => DEFAULT_STOP_TIMEOUT,
            Some(t) => {
                if n.stop_signal.is_none() {
                    self.err(
                        Some(t.span()),
                        "`stop_timeout` has no effect without `stop_signal`: remove it or \
                         add a stop signal",
                    );
                }
                self.duration(t).unwrap_or(DEFAULT_STOP_TIMEOUT)
            }
        };
        let listed = n.ports.as_ref().map(|list| self.listed_ports(list));
        let protocol = n.protocol.as_ref().and_then(|p| self.protocol(p));
        let node = Node {
            process,
            data_dir,
            ready,
            ready_timeout,
            stop_signal,
            stop_timeout,
            protocol,
        };
        (node, listed)
    }

    /// `protocol`: a decoder's name, or `none` (no decoding).
    fn protocol(&mut self, p: &Str) -> Option<String> {
        let name = p.get_ref().trim();
        if name == "none" || ordeal_proto::by_name(name).is_some() {
            return Some(name.to_string());
        }
        let known: Vec<&str> = ordeal_proto::names().chain(["none"]).collect();
        let hint = ordeal_toml::suggest(name, known.iter().copied(), 2)
            .map(|s| format!(" (did you mean `{s}`?)"))
            .unwrap_or_default();
        self.err(
            Some(p.span()),
            format!(
                "unknown protocol `{name}`{hint}: expected one of {}",
                known.join(", ")
            ),
        );
        None
    }

    /// `stop_signal`: `None` for SIGKILL (the default: no graceful stop).
    fn stop_signal(&mut self, sig: &Str) -> Option<String> {
        let name = sig.get_ref().trim();
        if !STOP_SIGNALS.contains(&name) {
            self.err(
                Some(sig.span()),
                format!(
                    "unknown stop_signal `{name}`: expected one of {}",
                    STOP_SIGNALS.join(", ")
                ),
            );
        }
        (name != "SIGKILL").then(|| name.to_string())
    }

    /// A node's `ports` list, each name once.
    fn listed_ports(&mut self, list: &StrList) -> Vec<Str> {
        let mut listed = BTreeSet::new();
        let mut unique = Vec::new();
        for p in list.get_ref() {
            if !is_simple_name(p.get_ref()) {
                self.err(
                    Some(p.span()),
                    format!(
                        "invalid port name `{}`: use letters, digits, `_` and `-`",
                        p.get_ref()
                    ),
                );
            } else if !listed.insert(p.get_ref().clone()) {
                self.err(
                    Some(p.span()),
                    format!("port `{}` is listed twice", p.get_ref()),
                );
                continue;
            }
            unique.push(p.clone());
        }
        unique
    }

    fn workload(&mut self, raw: &Spanned<RawWorkload>) -> Workload {
        let table = raw.span();
        let w = raw.get_ref();
        let mut process = self.process(table, &w.name, &w.argv, &w.env, &w.cwd);
        process.trace = w.trace.unwrap_or(true);
        Workload {
            process,
            after: w.after.unwrap_or_default(),
        }
    }

    /// `[check] argv`: the command, named `check`, run untraced.
    fn check_command(&mut self, raw: &Spanned<RawCheck>) -> Option<Process> {
        let table = raw.span();
        let c = raw.get_ref();
        let argv = c.argv.as_ref()?;
        let name = Spanned::new(table.clone(), CHECK_NAME.to_string());
        let mut process = self.process(table, &name, argv, &c.env, &c.cwd);
        process.trace = false;
        Some(process)
    }

    /// `[check] history`, and what `[check]` needs besides.
    fn history_check(
        &mut self,
        raw: &Spanned<RawCheck>,
        nodes: &[Node],
        workloads: &[Workload],
    ) -> Option<HistoryCheck> {
        let c = raw.get_ref();
        if c.argv.is_none() && c.history.is_none() {
            self.err(
                Some(raw.span()),
                "[check] needs `argv` (a command), `history = { model = \"...\" }`, or both",
            );
        }
        if c.argv.is_none() && (!c.env.is_empty() || c.cwd.is_some()) {
            self.err(Some(raw.span()), "`env` and `cwd` in [check] need `argv`");
        }
        let h = c.history.as_ref()?.get_ref();
        let model = h.model.get_ref();
        if !HISTORY_MODELS.contains(&model.as_str()) {
            self.err(
                Some(h.model.span()),
                format!(
                    "unknown history model `{model}`: expected one of {}",
                    HISTORY_MODELS.join(", ")
                ),
            );
        }
        let file = h
            .file
            .as_ref()
            .map(|f| f.get_ref().clone())
            .unwrap_or_else(|| "history.jsonl".to_string());
        let bad = file.is_empty()
            || Path::new(&file).is_absolute()
            || Path::new(&file)
                .components()
                .any(|c| matches!(c, std::path::Component::ParentDir));
        if bad {
            self.err(
                h.file.as_ref().map(|f| f.span()),
                format!("history file `{file}` must be a relative path inside the run directory"),
            );
        }
        let from = match h.from.as_ref().map(|f| (f, f.get_ref().as_str())) {
            None | Some((_, "file")) => {
                if let Some(c) = &h.clients {
                    self.err(
                        Some(c.span()),
                        "`clients` needs `from = \"traffic\"` (a recorded history names its own \
                         processes)",
                    );
                }
                HistorySource::File
            }
            Some((_, "traffic")) => {
                let known: Vec<&str> = nodes
                    .iter()
                    .map(|n| n.process.name.as_str())
                    .chain(workloads.iter().map(|w| w.process.name.as_str()))
                    .collect();
                let clients = match &h.clients {
                    None => workloads.iter().map(|w| w.process.name.clone()).collect(),
                    Some(list) => {
                        let mut clients = Vec::new();
                        for c in list.get_ref() {
                            let name = c.get_ref();
                            if known.contains(&name.as_str()) {
                                clients.push(name.clone());
                                continue;
                            }
                            let hint = ordeal_toml::suggest(name, known.iter().copied(), 2)
                                .map(|s| format!(" (did you mean `{s}`?)"))
                                .unwrap_or_default();
                            self.err(
                                Some(c.span()),
                                format!("`{name}` is not a node or workload of this file{hint}"),
                            );
                        }
                        clients
                    }
                };
                if clients.is_empty() && h.clients.is_none() {
                    self.err(
                        Some(raw.span()),
                        "`from = \"traffic\"` needs `clients = [...]`: the nodes or workloads \
                         whose requests are the history (there is no workload to default to)",
                    );
                }
                HistorySource::Traffic { clients }
            }
            Some((f, other)) => {
                self.err(
                    Some(f.span()),
                    format!("unknown history source `{other}`: expected `file` or `traffic`"),
                );
                HistorySource::File
            }
        };
        Some(HistoryCheck {
            model: model.clone(),
            file,
            from,
            allow_empty: h.allow_empty.unwrap_or(false),
        })
    }

    /// `[crash] check`: named `crash-check`, run untraced.
    fn crash_check(&mut self, raw: &Spanned<RawCrash>) -> Option<Process> {
        let table = raw.span();
        let argv = raw.get_ref().check.as_ref()?;
        let name = Spanned::new(table.clone(), CRASH_CHECK_NAME.to_string());
        let mut process = self.process(table, &name, argv, &StrMap::new(), &None);
        process.trace = false;
        Some(process)
    }

    /// `[crash] workload`: a workload of the experiment, checked by a `[crash] check`.
    fn crash_workload(
        &mut self,
        raw: &Spanned<RawCrash>,
        workloads: &[Workload],
    ) -> Option<String> {
        let w = raw.get_ref().workload.as_ref()?;
        if !workloads.iter().any(|x| &x.process.name == w.get_ref()) {
            self.err(
                Some(w.span()),
                format!("[crash] workload: no workload is named `{}`", w.get_ref()),
            );
            return None;
        }
        if raw.get_ref().check.is_none() {
            self.err(
                Some(raw.span()),
                "[crash] workload: a workload target is checked by `[crash] check` alone: add one",
            );
            return None;
        }
        Some(w.get_ref().clone())
    }

    /// With a `[check]`, no node or workload may be called `check` (its logs would clash).
    fn check_name_is_free(&mut self, raw: &RawExperiment) {
        let taken = raw
            .nodes
            .iter()
            .map(|n| &n.get_ref().name)
            .chain(raw.workloads.iter().map(|w| &w.get_ref().name))
            .find(|n| n.get_ref() == CHECK_NAME);
        if let Some(n) = taken {
            self.err(
                Some(n.span()),
                format!("the name `{CHECK_NAME}` is taken by [check] (its logs are logs/check.*)"),
            );
        }
    }

    fn proxies(&mut self, raw: &[Spanned<RawProxy>], network: Network) -> Vec<ProxyDef> {
        let proxies = raw
            .iter()
            .map(|p| {
                let p = p.get_ref();
                ProxyDef {
                    name: p.name.get_ref().clone(),
                    listen: self.template(&p.listen),
                    upstream: self.template(&p.upstream),
                }
            })
            .collect();
        if network == Network::Netns && !raw.is_empty() {
            self.err(
                raw.first().map(|p| p.span()),
                "[[proxy]] runs in ordeal's own network namespace: it needs network = \"loopback\"",
            );
        }
        proxies
    }

    /// Every placeholder names something that exists: a declared variable, a node or workload,
    /// a node with a data directory. Returns every port name used.
    fn cross_check_placeholders(
        &mut self,
        vars: &BTreeMap<String, String>,
        nodes: &[Node],
        workloads: &[Workload],
    ) -> BTreeSet<String> {
        let mut port_names = BTreeSet::new();
        let is_node = |name: &String| nodes.iter().any(|n| &n.process.name == name);
        let is_workload = |name: &String| workloads.iter().any(|w| &w.process.name == name);
        for u in &self.used {
            for (hole, offset) in u.template.holes() {
                let problem = match hole {
                    Placeholder::Port(p) => {
                        port_names.insert(p.clone());
                        None
                    }
                    Placeholder::Var(v) if !vars.contains_key(v) => Some(format!(
                        "undefined variable `{v}` in `{{var.{v}}}`: declare it in [vars] \
                         (e.g. `{v} = \"\"`)"
                    )),
                    Placeholder::Host(h) if !is_node(h) && !is_workload(h) => {
                        Some(format!("unknown node or workload `{h}` in `{{host.{h}}}`"))
                    }
                    Placeholder::DataDir(d) => match nodes.iter().find(|n| &n.process.name == d) {
                        Some(n) if n.data_dir.is_none() => Some(format!(
                            "node `{d}` has no data directory (set `data_dir = true` or \
                             `data_dir = {{ copy_from = \"...\" }}` on it)"
                        )),
                        Some(_) => None,
                        None if is_workload(d) => Some(format!(
                            "`{d}` in `{{data_dir.{d}}}` is a workload: only nodes have data \
                             directories"
                        )),
                        None => Some(format!("unknown node `{d}` in `{{data_dir.{d}}}`")),
                    },
                    _ => None,
                };
                if let Some(message) = problem {
                    let location = self.src.in_string(&u.span, offset);
                    self.diags.push(Diagnostic { location, message });
                }
            }
        }
        port_names
    }

    /// Port name → owning node: explicit `ports` lists, then a port named after the node, then
    /// the ports of the node's ready.tcp address (for nodes without a `ports` list).
    fn port_owners(
        &mut self,
        port_names: &BTreeSet<String>,
        listed_ports: &[(String, Vec<Str>)],
        nodes: &[Node],
    ) -> BTreeMap<String, String> {
        let mut owners = self.listed_port_owners(port_names, listed_ports);
        let has_list: BTreeSet<&String> = listed_ports.iter().map(|(n, _)| n).collect();
        for n in nodes {
            let name = &n.process.name;
            if !has_list.contains(name) && port_names.contains(name) && !owners.contains_key(name) {
                owners.insert(name.clone(), name.clone());
            }
        }
        let implicit = self.ready_address_port_owners(nodes, &has_list, &owners);
        owners.extend(implicit);
        owners
    }

    /// The owners given by nodes' `ports` lists; a listed port must be used, and listed once.
    fn listed_port_owners(
        &mut self,
        port_names: &BTreeSet<String>,
        listed_ports: &[(String, Vec<Str>)],
    ) -> BTreeMap<String, String> {
        let mut owners: BTreeMap<String, String> = BTreeMap::new();
        for (node, list) in listed_ports {
            for p in list {
                let pname = p.get_ref();
                if !port_names.contains(pname) {
                    self.err(
                        Some(p.span()),
                        format!(
                            "port `{pname}` is listed in `ports` but never used as \
                             `{{port.{pname}}}`"
                        ),
                    );
                } else if let Some(other) = owners.get(pname) {
                    if other != node {
                        self.err(
                            Some(p.span()),
                            format!("port `{pname}` is already listed by node `{other}`"),
                        );
                    }
                } else {
                    owners.insert(pname.clone(), node.clone());
                }
            }
        }
        owners
    }

    /// The owners of ports that appear in one node's ready.tcp address and are not owned yet;
    /// a port in the ready addresses of two nodes is reported (the file must say which).
    fn ready_address_port_owners(
        &mut self,
        nodes: &[Node],
        has_list: &BTreeSet<&String>,
        owners: &BTreeMap<String, String>,
    ) -> BTreeMap<String, String> {
        let mut implicit: BTreeMap<String, String> = BTreeMap::new();
        for n in nodes.iter().filter(|n| !has_list.contains(&n.process.name)) {
            let Some(ReadyDef::Tcp(address)) = &n.ready else {
                continue;
            };
            let node = &n.process.name;
            let ports = address.holes().filter_map(|(h, _)| match h {
                Placeholder::Port(p) => Some(p),
                _ => None,
            });
            for p in ports {
                if owners.contains_key(p) {
                    continue;
                }
                match implicit.get(p) {
                    Some(other) if other != node => {
                        // The first node of that name (a duplicate name is reported already).
                        let location = nodes
                            .iter()
                            .find(|first| &first.process.name == node)
                            .unwrap_or(n)
                            .process
                            .location
                            .clone();
                        self.diags.push(Diagnostic {
                            location,
                            message: format!(
                                "port `{p}` appears in the ready address of both node \
                                 `{other}` and node `{node}`: say which node it belongs to \
                                 with `ports = [\"{p}\"]` on that node"
                            ),
                        });
                    }
                    _ => {
                        implicit.insert(p.clone(), node.clone());
                    }
                }
            }
        }
        implicit
    }

    /// Parses a string value with placeholders, remembering it for the cross-checks.
    fn template(&mut self, value: &Str) -> Template {
        let span = value.span();
        let pieces = match template::parse(value.get_ref()) {
            Ok(p) => p,
            Err(e) => {
                let d = Diagnostic {
                    location: self.src.in_string(&span, e.offset),
                    message: e.to_string(),
                };
                self.diags.push(d);
                Vec::new()
            }
        };
        let template = Template {
            pieces,
            location: self.src.at(span.start),
        };
        self.used.push(Used {
            template: template.clone(),
            span,
        });
        template
    }

    pub(crate) fn argv(&mut self, what: &str, argv: &StrList) -> Vec<Template> {
        if argv.get_ref().is_empty() {
            self.err(
                Some(argv.span()),
                format!("{what} must not be empty: its first element is the program to run"),
            );
        }
        argv.get_ref().iter().map(|a| self.template(a)).collect()
    }

    fn process(
        &mut self,
        table: Range<usize>,
        name: &Str,
        argv: &StrList,
        env: &StrMap,
        cwd: &Option<Str>,
    ) -> Process {
        let argv_t = self.argv("argv", argv);
        let mut env_t = Vec::new();
        for (k, v) in env {
            let key = k.get_ref();
            if key.is_empty() || key.contains('=') || key.contains('\0') {
                self.err(
                    Some(k.span()),
                    format!("invalid environment variable name `{key}`"),
                );
            }
            env_t.push((key.clone(), self.template(v)));
        }
        let cwd_t = cwd.as_ref().map(|c| self.template(c));
        Process {
            name: name.get_ref().clone(),
            argv_location: argv
                .get_ref()
                .first()
                .map(|a| self.src.at(a.span().start))
                .unwrap_or_else(|| self.src.at(argv.span().start)),
            argv: argv_t,
            env: env_t,
            cwd: cwd_t,
            trace: true,
            location: self.src.at(table.start),
        }
    }

    fn ready(&mut self, ready: &Spanned<raw::RawReady>) -> Option<ReadyDef> {
        let span = ready.span();
        let r = ready.get_ref();
        let count = [r.tcp.is_some(), r.log.is_some(), r.command.is_some()]
            .iter()
            .filter(|x| **x)
            .count();
        if count != 1 {
            self.err(
                Some(span),
                "`ready` needs exactly one of `tcp = \"host:port\"`, `log = \"regex\"` or \
                 `command = [\"program\", ...]`",
            );
            return None;
        }
        if let (Some(s), None) = (&r.stream, &r.log) {
            self.err(
                Some(s.span()),
                "`stream` only applies to a `log` ready condition",
            );
        }
        if let Some(t) = &r.tcp {
            return Some(ReadyDef::Tcp(self.template(t)));
        }
        if let Some(l) = &r.log {
            let t = self.template(l);
            // Substituted values are escaped, so the regex's validity doesn't depend on them.
            let probe: String = t
                .pieces
                .iter()
                .map(|p| match p {
                    template::Piece::Lit(s) => s.as_str(),
                    template::Piece::Hole(..) => "x",
                })
                .collect();
            if let Err(e) = regex::Regex::new(&probe) {
                self.err(
                    Some(l.span()),
                    format!("invalid regular expression in `log`: {}", regex_message(&e)),
                );
            }
            let stream = r.stream.as_ref().map(|s| *s.get_ref()).unwrap_or_default();
            return Some(ReadyDef::Log { regex: t, stream });
        }
        let c = r.command.as_ref().expect("one of the three");
        let argv = self.argv("ready.command", c);
        Some(ReadyDef::Command { argv })
    }
}

/// The gist of a regex error: its `error: ...` line, without the drawing above it.
pub(crate) fn regex_message(e: &regex::Error) -> String {
    let text = e.to_string();
    text.lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix("error: "))
        .unwrap_or(text.trim())
        .to_string()
}
