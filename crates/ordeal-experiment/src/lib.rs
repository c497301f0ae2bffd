//! The ordeal experiment file: parsing, validation, placeholder expansion and port allocation.
//!
//! An experiment file (TOML, documented for users in `docs/experiment.md`) describes a
//! multi-process system: its nodes (long-running processes, each with an optional readiness
//! condition and data directory) and its workloads (commands run against the nodes once they
//! are ready). This crate turns such a file into concrete processes to start; it knows nothing
//! about tracing.
//!
//! ```no_run
//! use ordeal_experiment::{Experiment, ResolveContext};
//!
//! let mut exp = Experiment::from_path("examples/demo-kv.toml")?;
//! exp.set_var("bugs", "ack-before-replicate")?;
//! let run = exp.resolve(&ResolveContext::new("/tmp/run-1", "/usr/local/bin/ordeal"))?;
//! run.prepare_data_dirs()?;
//! for node in &run.nodes {
//!     println!("{} listens on {:?} and runs {:?}", node.name, node.ports, node.argv);
//! }
//! // Keep `run` alive until the run is over: it holds the port reservations.
//! # Ok::<(), ordeal_experiment::Error>(())
//! ```
//!
//! Every problem with the file is reported as an [`Error::Invalid`] holding
//! [`Diagnostic`]s, displayed as `file:line:column: message`.

mod datadir;
mod duration;
mod error;
mod ports;
mod raw;
mod resolve;
mod template;

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

pub use duration::parse_duration;
pub use error::{Diagnostic, Error, Location, Source};
pub use ports::{PortAllocator, PortReservation, DEFAULT_LOCK_DIR, DEFAULT_PORT_RANGE};
pub use resolve::{
    DataDir, NodeSpec, ProxySpec, ReadyCheck, ResolveContext, Resolved, WorkloadSpec,
};

use raw::{RawDataDir, RawExperiment, Str, StrList, StrMap};
use template::{is_simple_name, Placeholder, Template};

/// Default whole-run deadline (`timeout`).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
/// Default hang detection interval (`hang_timeout`).
pub const DEFAULT_HANG_TIMEOUT: Duration = Duration::from_secs(30);
/// Default deadline for a node to become ready (`ready_timeout`).
pub const DEFAULT_READY_TIMEOUT: Duration = Duration::from_secs(10);
/// Default time a node has to exit after its `stop_signal` (`stop_timeout`).
pub const DEFAULT_STOP_TIMEOUT: Duration = Duration::from_secs(5);
/// The signals `stop_signal` accepts (SIGKILL is the default: no graceful stop).
pub const STOP_SIGNALS: [&str; 7] = [
    "SIGTERM", "SIGINT", "SIGQUIT", "SIGHUP", "SIGUSR1", "SIGUSR2", "SIGKILL",
];

/// Which output stream a `ready = { log = ... }` condition watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogStream {
    Stdout,
    Stderr,
    #[default]
    Both,
}

/// When a workload starts (`after`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StartAfter {
    /// Once every node is ready (the default).
    #[default]
    Ready,
    /// Once every node has been started, without waiting for readiness.
    Started,
}

/// How the nodes of a run are networked (`network = ...`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Network {
    /// Everything on this machine's loopback, in ordeal's own network namespace; partitions
    /// are emulated at the system-call layer.
    Loopback,
    /// Each node and workload in a network namespace of its own, with an address on a
    /// private bridge ([`netns_addr`]); partitions drop packets.
    Netns,
}

/// The address of the i-th participant (nodes then workloads, in file order, from 0) with
/// `network = "netns"`.
pub fn netns_addr(i: usize) -> std::net::Ipv4Addr {
    std::net::Ipv4Addr::new(10, 77, 0, (i + 1).min(253) as u8)
}

/// `[check] history = { model, file }`: check a recorded history after the workloads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryCheck {
    /// `register`, `cas-register` or `kv`.
    pub model: String,
    /// The history file, relative to the run directory (default `history.jsonl`).
    pub file: String,
}

/// The models `[check] history` accepts.
pub const HISTORY_MODELS: [&str; 3] = ["register", "cas-register", "kv"];

/// `[explore]`: how `ordeal explore` perturbs this system by default (its flags override).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExploreDefaults {
    /// Length of pauses, delays and partitions (`--fault-duration`).
    pub fault_duration: Option<Duration>,
    /// How long after a crash the node starts again (`--restart-after`).
    pub restart_after: Option<Duration>,
    /// Variables of `[vars]` to set in every run of a campaign (`--set` goes on top), in name
    /// order.
    pub set: Vec<(String, String)>,
}

/// The name under which the `[check]` command runs (logs, messages).
pub const CHECK_NAME: &str = "check";
/// The name under which `[crash] check` runs on a recovered crash state.
pub const CRASH_CHECK_NAME: &str = "crash-check";

/// A parsed and validated experiment file. Nothing is allocated or touched on disk until
/// [`Experiment::resolve`].
#[derive(Debug, Clone)]
pub struct Experiment {
    file: String,
    base_dir: PathBuf,
    name: String,
    description: Option<String>,
    timeout: Duration,
    hang_timeout: Option<Duration>,
    network: Network,
    vars: BTreeMap<String, String>,
    nodes: Vec<Node>,
    workloads: Vec<Workload>,
    /// The `[check]` command, named `check`.
    check: Option<Process>,
    /// `[check] history`: the recorded history to check for linearizability.
    history_check: Option<HistoryCheck>,
    /// `[[proxy]]` tables, in file order.
    proxies: Vec<ProxyDef>,
    /// `[crash] check`: the check of a recovered crash state, named `crash-check`.
    crash_check: Option<Process>,
    explore: ExploreDefaults,
    /// Every `{port.NAME}` name (and every name listed in a node's `ports`).
    port_names: BTreeSet<String>,
    /// Port name → owning node.
    port_owners: BTreeMap<String, String>,
}

/// What nodes and workloads have in common.
#[derive(Debug, Clone)]
struct Process {
    name: String,
    argv: Vec<Template>,
    argv_location: Location,
    env: Vec<(String, Template)>,
    cwd: Option<Template>,
    /// Run under the tracer (`trace`, default true).
    trace: bool,
    /// Location of the `[[node]]`/`[[workload]]` table.
    location: Location,
}

#[derive(Debug, Clone)]
struct Node {
    process: Process,
    data_dir: Option<DataDirDef>,
    ready: Option<ReadyDef>,
    ready_timeout: Duration,
    stop_signal: Option<String>,
    stop_timeout: Duration,
}

#[derive(Debug, Clone)]
enum DataDirDef {
    Fresh,
    CopyFrom(Template),
}

#[derive(Debug, Clone)]
enum ReadyDef {
    Tcp(Template),
    Log { regex: Template, stream: LogStream },
    Command { argv: Vec<Template> },
}

#[derive(Debug, Clone)]
struct ProxyDef {
    name: String,
    listen: Template,
    upstream: Template,
}

#[derive(Debug, Clone)]
struct Workload {
    process: Process,
    after: StartAfter,
}

impl Experiment {
    /// Reads and parses the experiment file at `path`. Relative paths inside it (`cwd`,
    /// `copy_from`) are relative to the file's directory.
    pub fn from_path(path: impl AsRef<Path>) -> Result<Experiment, Error> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Experiment::parse(&text, path)
    }

    /// Parses experiment text. `path` names the file in messages, and its directory is the base
    /// of relative paths (the current directory when `path` has none).
    pub fn parse(text: &str, path: impl AsRef<Path>) -> Result<Experiment, Error> {
        let path = path.as_ref();
        let file = path.display().to_string();
        let src = Source { file: &file, text };
        let raw: RawExperiment = toml::from_str(text).map_err(|e| {
            let mut message = e.message().trim().replace('\n', "; ");
            let at = e.span().and_then(|s| text.get(s.start..)).unwrap_or("");
            for table in ["node", "workload"] {
                if at.starts_with(&format!("[{table}]")) {
                    message.push_str(&format!(
                        " (write `[[{table}]]`: each {table} is an entry of the `{table}` array)"
                    ));
                }
            }
            Error::Invalid(vec![src.diag(e.span(), message)])
        })?;
        let parent = path.parent().unwrap_or(Path::new(""));
        let base_dir = std::path::absolute(if parent.as_os_str().is_empty() {
            Path::new(".")
        } else {
            parent
        })
        .map_err(|e| Error::io("finding the current directory", e))?;
        let base_dir = normalize(&base_dir);
        Validator {
            src,
            diags: Vec::new(),
        }
        .run(raw, base_dir)
    }

    /// Overrides the value of the variable `name` (from the command line, say). The variable
    /// must be declared in the file's `[vars]` table.
    pub fn set_var(&mut self, name: &str, value: impl Into<String>) -> Result<(), Error> {
        match self.vars.get_mut(name) {
            Some(v) => {
                *v = value.into();
                Ok(())
            }
            None => {
                let declared = if self.vars.is_empty() {
                    "the file declares no variables".to_string()
                } else {
                    let names: Vec<String> = self.vars.keys().map(|k| format!("`{k}`")).collect();
                    format!("declared: {}", names.join(", "))
                };
                Err(Error::Invalid(vec![Diagnostic {
                    location: Location::file_only(&self.file),
                    message: format!(
                        "unknown variable `{name}` (variables must be declared in [vars]; \
                         {declared})"
                    ),
                }]))
            }
        }
    }

    /// The experiment's `name`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The experiment's `description`, if any.
    pub fn description(&self) -> Option<&str> {
        self.description.as_deref()
    }

    /// The `[[proxy]]` names, in file order.
    pub fn proxy_names(&self) -> Vec<String> {
        self.proxies.iter().map(|p| p.name.clone()).collect()
    }

    /// How nodes are networked (`network`).
    pub fn network(&self) -> Network {
        self.network
    }

    /// The whole-run deadline (`timeout`).
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The `[explore]` table: campaign defaults for this system.
    pub fn explore(&self) -> &ExploreDefaults {
        &self.explore
    }

    /// How long without any traced event makes a run hung (`hang_timeout`); `None` = off.
    pub fn hang_timeout(&self) -> Option<Duration> {
        self.hang_timeout
    }

    /// The file's path as given, used in messages.
    pub fn file(&self) -> &str {
        &self.file
    }

    /// The absolute directory relative paths in the file are resolved against.
    pub fn base_dir(&self) -> &Path {
        &self.base_dir
    }

    /// The variables and their current values.
    pub fn vars(&self) -> &BTreeMap<String, String> {
        &self.vars
    }

    /// Node names, in file order.
    pub fn node_names(&self) -> impl Iterator<Item = &str> {
        self.nodes.iter().map(|n| n.process.name.as_str())
    }

    /// Workload names, in file order.
    pub fn workload_names(&self) -> impl Iterator<Item = &str> {
        self.workloads.iter().map(|w| w.process.name.as_str())
    }

    /// Every port name used in the file (`{port.NAME}` or a node's `ports`), sorted.
    pub fn port_names(&self) -> impl Iterator<Item = &str> {
        self.port_names.iter().map(String::as_str)
    }

    /// The node a port name belongs to, if any.
    pub fn port_owner(&self, port_name: &str) -> Option<&str> {
        self.port_owners.get(port_name).map(String::as_str)
    }
}

/// Removes `.` components (but keeps `..`, whose meaning depends on symlinks).
pub(crate) fn normalize(path: &Path) -> PathBuf {
    path.components()
        .filter(|c| !matches!(c, std::path::Component::CurDir))
        .collect()
}

struct Validator<'a> {
    src: Source<'a>,
    diags: Vec<Diagnostic>,
}

/// A template together with the span of its string, for precise locations of its placeholders.
struct Used {
    template: Template,
    span: Range<usize>,
}

impl Validator<'_> {
    fn err(&mut self, span: Option<Range<usize>>, message: impl Into<String>) {
        let d = self.src.diag(span, message);
        self.diags.push(d);
    }

    fn duration(&mut self, value: &Str) -> Option<Duration> {
        match parse_duration(value.get_ref()) {
            Ok(d) if d.is_zero() => {
                self.err(Some(value.span()), "the duration must be greater than zero");
                None
            }
            Ok(d) => Some(d),
            Err(m) => {
                self.err(Some(value.span()), m);
                None
            }
        }
    }

    /// Parses a string value with placeholders, remembering it for the cross-checks.
    fn template(&mut self, value: &Str, used: &mut Vec<Used>) -> Template {
        let span = value.span();
        let pieces = match template::parse(value.get_ref()) {
            Ok(p) => p,
            Err((offset, message)) => {
                let d = Diagnostic {
                    location: self.src.in_string(&span, offset),
                    message,
                };
                self.diags.push(d);
                Vec::new()
            }
        };
        let template = Template {
            pieces,
            location: self.src.at(span.start),
        };
        used.push(Used {
            template: template.clone(),
            span,
        });
        template
    }

    fn argv(&mut self, what: &str, argv: &StrList, used: &mut Vec<Used>) -> Vec<Template> {
        if argv.get_ref().is_empty() {
            self.err(
                Some(argv.span()),
                format!("{what} must not be empty: its first element is the program to run"),
            );
        }
        argv.get_ref()
            .iter()
            .map(|a| self.template(a, used))
            .collect()
    }

    fn process(
        &mut self,
        table: Range<usize>,
        name: &Str,
        argv: &StrList,
        env: &StrMap,
        cwd: &Option<Str>,
        used: &mut Vec<Used>,
    ) -> Process {
        let argv_t = self.argv("argv", argv, used);
        let mut env_t = Vec::new();
        for (k, v) in env {
            let key = k.get_ref();
            if key.is_empty() || key.contains('=') || key.contains('\0') {
                self.err(
                    Some(k.span()),
                    format!("invalid environment variable name `{key}`"),
                );
            }
            env_t.push((key.clone(), self.template(v, used)));
        }
        let cwd_t = cwd.as_ref().map(|c| self.template(c, used));
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

    fn run(mut self, raw: RawExperiment, base_dir: PathBuf) -> Result<Experiment, Error> {
        // Experiment name: used in run directory names.
        let name = raw.name.get_ref();
        let name_ok = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
            && !name.bytes().all(|b| b == b'.');
        if !name_ok {
            self.err(
                Some(raw.name.span()),
                format!(
                    "invalid experiment name `{name}`: use letters, digits, `_`, `.` and `-` \
                     (it is part of run directory names)"
                ),
            );
        }
        let timeout = raw
            .timeout
            .as_ref()
            .and_then(|t| self.duration(t))
            .unwrap_or(DEFAULT_TIMEOUT);
        let hang_timeout = match raw.hang_timeout.as_ref() {
            None => Some(DEFAULT_HANG_TIMEOUT),
            Some(v) if v.get_ref().trim() == "off" => None,
            Some(v) => self.duration(v),
        };
        let network = match raw.network.as_ref().map(|n| (n, n.get_ref().as_str())) {
            None | Some((_, "loopback")) => Network::Loopback,
            Some((_, "netns")) => Network::Netns,
            Some((n, other)) => {
                self.err(
                    Some(n.span()),
                    format!("unknown network `{other}`: expected `loopback` or `netns`"),
                );
                Network::Loopback
            }
        };

        let mut vars = BTreeMap::new();
        for (k, v) in &raw.vars {
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

        let mut explore = ExploreDefaults::default();
        if let Some(e) = raw.explore.as_ref().map(|e| e.get_ref()) {
            explore.fault_duration = e.fault_duration.as_ref().and_then(|d| self.duration(d));
            explore.restart_after = e.restart_after.as_ref().and_then(|d| self.duration(d));
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
        }

        if raw.nodes.is_empty() {
            self.err(
                None,
                "the experiment has no node: add at least one [[node]] table",
            );
        }

        // Names: valid and unique across nodes and workloads.
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

        let mut used: Vec<Used> = Vec::new();
        let mut nodes = Vec::new();
        // Node name → explicit `ports` list (with spans) or the ready.tcp templates.
        let mut explicit_ports: Vec<(String, Vec<Str>)> = Vec::new();
        let mut tcp_ports: Vec<(String, Vec<String>)> = Vec::new();
        for n in &raw.nodes {
            let table = n.span();
            let n = n.get_ref();
            let mut process = self.process(table, &n.name, &n.argv, &n.env, &n.cwd, &mut used);
            process.trace = n.trace.unwrap_or(true);
            let data_dir = match n.data_dir.as_ref().map(|d| d.get_ref()) {
                None | Some(RawDataDir::None) => None,
                Some(RawDataDir::Fresh) => Some(DataDirDef::Fresh),
                Some(RawDataDir::CopyFrom(p)) => {
                    if p.get_ref().is_empty() {
                        self.err(Some(p.span()), "`copy_from` must not be empty");
                    }
                    Some(DataDirDef::CopyFrom(self.template(p, &mut used)))
                }
            };
            let ready = n.ready.as_ref().and_then(|r| self.ready(r, &mut used));
            if let Some(ReadyDef::Tcp(t)) = &ready {
                let ports = t
                    .holes()
                    .filter_map(|(h, _)| match h {
                        Placeholder::Port(p) => Some(p.clone()),
                        _ => None,
                    })
                    .collect();
                tcp_ports.push((process.name.clone(), ports));
            }
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
            let stop_signal = n.stop_signal.as_ref().and_then(|sig| {
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
            });
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
            if let Some(list) = &n.ports {
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
                explicit_ports.push((process.name.clone(), unique));
            }
            nodes.push(Node {
                process,
                data_dir,
                ready,
                ready_timeout,
                stop_signal,
                stop_timeout,
            });
        }

        let mut workloads = Vec::new();
        for w in &raw.workloads {
            let table = w.span();
            let w = w.get_ref();
            let mut process = self.process(table, &w.name, &w.argv, &w.env, &w.cwd, &mut used);
            process.trace = w.trace.unwrap_or(true);
            workloads.push(Workload {
                process,
                after: w.after.unwrap_or_default(),
            });
        }

        let check = raw.check.as_ref().and_then(|c| {
            let table = c.span();
            let c = c.get_ref();
            let argv = c.argv.as_ref()?;
            let name = Spanned::new(table.clone(), CHECK_NAME.to_string());
            let mut process = self.process(table, &name, argv, &c.env, &c.cwd, &mut used);
            process.trace = false;
            Some(process)
        });
        let mut proxies = Vec::new();
        for p in &raw.proxies {
            let p = p.get_ref();
            proxies.push(ProxyDef {
                name: p.name.get_ref().clone(),
                listen: self.template(&p.listen, &mut used),
                upstream: self.template(&p.upstream, &mut used),
            });
        }
        if network == Network::Netns && !raw.proxies.is_empty() {
            self.err(
                raw.proxies.first().map(|p| p.span()),
                "[[proxy]] runs in ordeal's own network namespace: it needs network = \"loopback\"",
            );
        }
        let mut history_check = None;
        if let Some(c) = &raw.check {
            let inner = c.get_ref();
            if inner.argv.is_none() && inner.history.is_none() {
                self.err(
                    Some(c.span()),
                    "[check] needs `argv` (a command), `history = { model = \"...\" }`, or both",
                );
            }
            if inner.argv.is_none() && (!inner.env.is_empty() || inner.cwd.is_some()) {
                self.err(Some(c.span()), "`env` and `cwd` in [check] need `argv`");
            }
            if let Some(h) = &inner.history {
                let model = h.get_ref().model.get_ref();
                if !HISTORY_MODELS.contains(&model.as_str()) {
                    self.err(
                        Some(h.get_ref().model.span()),
                        format!(
                            "unknown history model `{model}`: expected one of {}",
                            HISTORY_MODELS.join(", ")
                        ),
                    );
                }
                let file = h
                    .get_ref()
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
                        h.get_ref().file.as_ref().map(|f| f.span()),
                        format!("history file `{file}` must be a relative path inside the run directory"),
                    );
                }
                history_check = Some(HistoryCheck {
                    model: model.clone(),
                    file,
                });
            }
        }
        let crash_check = raw.crash.as_ref().and_then(|c| {
            let table = c.span();
            let argv = c.get_ref().check.as_ref()?;
            let name = Spanned::new(table.clone(), CRASH_CHECK_NAME.to_string());
            let mut process = self.process(table, &name, argv, &StrMap::new(), &None, &mut used);
            process.trace = false;
            Some(process)
        });
        if let Some(n) = raw
            .nodes
            .iter()
            .map(|n| &n.get_ref().name)
            .chain(raw.workloads.iter().map(|w| &w.get_ref().name))
            .find(|n| n.get_ref() == CHECK_NAME && raw.check.is_some())
        {
            self.err(
                Some(n.span()),
                format!("the name `{CHECK_NAME}` is taken by [check] (its logs are logs/check.*)"),
            );
        }

        // Cross-checks of placeholders.
        let mut port_names = BTreeSet::new();
        for u in &used {
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
                    Placeholder::Host(h)
                        if !nodes.iter().any(|n| &n.process.name == h)
                            && !workloads.iter().any(|w| &w.process.name == h) =>
                    {
                        Some(format!("unknown node or workload `{h}` in `{{host.{h}}}`"))
                    }
                    Placeholder::DataDir(d) => match nodes.iter().find(|n| &n.process.name == d) {
                        Some(n) if n.data_dir.is_none() => Some(format!(
                            "node `{d}` has no data directory (set `data_dir = true` or \
                             `data_dir = {{ copy_from = \"...\" }}` on it)"
                        )),
                        Some(_) => None,
                        None if workloads.iter().any(|w| &w.process.name == d) => Some(format!(
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

        // Port ownership: explicit `ports` lists, then a port named after the node, then the
        // ports of the node's ready.tcp address.
        let mut port_owners: BTreeMap<String, String> = BTreeMap::new();
        for (node, list) in &explicit_ports {
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
                } else if let Some(other) = port_owners.get(pname) {
                    if other != node {
                        self.err(
                            Some(p.span()),
                            format!("port `{pname}` is already listed by node `{other}`"),
                        );
                    }
                } else {
                    port_owners.insert(pname.clone(), node.clone());
                }
            }
        }
        let has_explicit: BTreeSet<&String> = explicit_ports.iter().map(|(n, _)| n).collect();
        for n in &nodes {
            let name = &n.process.name;
            if !has_explicit.contains(name)
                && port_names.contains(name)
                && !port_owners.contains_key(name)
            {
                port_owners.insert(name.clone(), name.clone());
            }
        }
        let mut implicit: BTreeMap<String, String> = BTreeMap::new();
        for (node, ports) in &tcp_ports {
            if has_explicit.contains(node) {
                continue;
            }
            for p in ports {
                if port_owners.contains_key(p) {
                    continue;
                }
                match implicit.get(p) {
                    Some(other) if other != node => {
                        let loc = nodes
                            .iter()
                            .find(|n| &n.process.name == node)
                            .map(|n| n.process.location.clone())
                            .unwrap_or_else(|| Location::file_only(self.src.file));
                        self.diags.push(Diagnostic {
                            location: loc,
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
        port_owners.extend(implicit);
        if network == Network::Netns && nodes.len() + workloads.len() > 253 {
            self.err(
                raw.network.as_ref().map(|n| n.span()),
                "`network = \"netns\"` gives each node and workload an address in one /24: at \
                 most 253 of them",
            );
        }

        if !self.diags.is_empty() {
            self.diags
                .sort_by_key(|d| d.location.line_col.unwrap_or((0, 0)));
            return Err(Error::Invalid(self.diags));
        }
        Ok(Experiment {
            file: self.src.file.to_string(),
            base_dir,
            name: raw.name.into_inner(),
            description: raw.description,
            timeout,
            hang_timeout,
            network,
            vars,
            nodes,
            workloads,
            check,
            history_check,
            proxies,
            crash_check,
            explore,
            port_names,
            port_owners,
        })
    }

    fn ready(&mut self, ready: &Spanned<raw::RawReady>, used: &mut Vec<Used>) -> Option<ReadyDef> {
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
            return Some(ReadyDef::Tcp(self.template(t, used)));
        }
        if let Some(l) = &r.log {
            let t = self.template(l, used);
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
        let argv = self.argv("ready.command", c, used);
        Some(ReadyDef::Command { argv })
    }
}

/// The gist of a regex error: its `error: ...` line, without the drawing above it.
fn regex_message(e: &regex::Error) -> String {
    let text = e.to_string();
    text.lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix("error: "))
        .unwrap_or(text.trim())
        .to_string()
}
