//! The ordeal experiment file: parsing, validation, placeholder expansion and port allocation.
//!
//! An experiment file (TOML, documented for users in `docs/experiment.md`) describes a
//! multi-process system: its nodes (long-running processes, each with an optional readiness
//! condition and data directory) and its workloads (commands run against the nodes once they
//! are ready), and how to find which node holds a role such as a leader (`[roles]`: a probe
//! command per node, run by ordeal-run while the run goes on, or an inference from the
//! traced traffic such as the node that fans out to all others). This crate turns such a file
//! into concrete processes to start; it knows nothing about tracing.
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
//! [`Diagnostic`]s, displayed as `file:line:column: message`, slips included: a
//! `{port.NAME}` one edit from a port a node declares, a number where a duration goes
//! (`typos`). The file's `failure_pattern` ([`Experiment::failure_pattern`]) says which log
//! lines tell why a run failed (ordeal-run reads them for the verdict's cause).

mod datadir;
mod error;
mod raw;
mod resolve;
mod roles;
mod template;
mod typos;
mod validate;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

pub use error::Error;
// Positions, diagnostics and durations are shared with the other ordeal file formats.
pub use ordeal_sys::ports::{PortAllocator, PortReservation, DEFAULT_LOCK_DIR, DEFAULT_PORT_RANGE};
pub use ordeal_toml::{parse_duration, Diagnostic, DurationError, Location, Source};
pub use resolve::{
    DataDir, NodeSpec, ProxySpec, ReadyCheck, ResolveContext, Resolved, WorkloadSpec,
};
pub use roles::{
    Inference, InferredRole, RoleProbe, DEFAULT_INFER_WINDOW, DEFAULT_ROLE_TIMEOUT,
    MAX_INFER_WINDOW,
};

use raw::RawExperiment;
use template::Template;

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

/// How a run sees the system's calls (`engine = ...`; the CLI's `--engine` overrides it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EngineChoice {
    /// eBPF where the probe loads, ptrace otherwise.
    #[default]
    Auto,
    /// The eBPF probe records the calls; ptrace stops only those a fault needs.
    Ebpf,
    /// Every call of the table stops the thread under ptrace.
    Ptrace,
}

impl EngineChoice {
    /// The names `engine` and `--engine` accept.
    pub const NAMES: [&'static str; 3] = ["auto", "ebpf", "ptrace"];

    pub fn name(self) -> &'static str {
        match self {
            EngineChoice::Auto => "auto",
            EngineChoice::Ebpf => "ebpf",
            EngineChoice::Ptrace => "ptrace",
        }
    }
}

impl std::str::FromStr for EngineChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(EngineChoice::Auto),
            "ebpf" => Ok(EngineChoice::Ebpf),
            "ptrace" => Ok(EngineChoice::Ptrace),
            other => Err(format!(
                "unknown engine `{other}`: expected `auto`, `ebpf` or `ptrace`"
            )),
        }
    }
}

/// The address of the i-th participant (nodes then workloads, in file order, from 0) with
/// `network = "netns"`.
pub fn netns_addr(i: usize) -> std::net::Ipv4Addr {
    std::net::Ipv4Addr::new(10, 77, 0, (i + 1).min(253) as u8)
}

/// `[check] history = { model, file, from, clients }`: check a history after the workloads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryCheck {
    /// `register`, `cas-register` or `kv`.
    pub model: String,
    /// The history file, relative to the run directory (default `history.jsonl`): the one
    /// the workload records, or the one ordeal builds from traffic.
    pub file: String,
    /// Where the history comes from.
    pub from: HistorySource,
    /// `allow_empty = true`: a history without any operation passes. By default it fails
    /// the run: nothing was checked (a client that recorded nothing, traffic that decoded
    /// to no request).
    pub allow_empty: bool,
}

/// Where a checked history comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HistorySource {
    /// A workload recorded it (`from = "file"`, the default).
    File,
    /// ordeal builds it from the decoded traffic of these nodes and workloads (`from =
    /// "traffic"`, `clients = [...]`; default: every workload): each request they send is
    /// an operation, invoked at its first byte written, completed by its response.
    Traffic { clients: Vec<String> },
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

/// The default `failure_pattern`: what makes a log line say what went wrong (the last such
/// line of a failed workload's, node's or check's logs is the verdict's cause). `VIOLATION`
/// in capitals only (a client's `0 violations` tally is no finding); `panic`, `assert` and
/// `error` in any case (`panicked at`, `AssertionError`, `ERROR:`).
pub const DEFAULT_FAILURE_PATTERN: &str = "VIOLATION|(?i:panic|assert|error)";

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
    engine: EngineChoice,
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
    /// `[crash] workload`: `ordeal crash`'s target when it is a workload.
    crash_workload: Option<String>,
    explore: ExploreDefaults,
    /// `[roles]`, in name order.
    roles: Vec<roles::RoleDef>,
    /// Every `{port.NAME}` name (and every name listed in a node's `ports`).
    port_names: BTreeSet<String>,
    /// Port name → owning node.
    port_owners: BTreeMap<String, String>,
    /// `failure_pattern` (or [`DEFAULT_FAILURE_PATTERN`]), compiled.
    failure_pattern: regex::Regex,
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
    /// `protocol`: what connections to the node's ports speak (`None`: detected).
    protocol: Option<String>,
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
        let src = Source::new(&file, text);
        let raw: RawExperiment = toml::from_str(text).map_err(|e| {
            let mut d = src.toml_error(&e);
            if let Some(hint) = e.span().and_then(|s| {
                ordeal_toml::duration_hint(text, s.start, e.message().trim(), &typos::DURATION_KEYS)
            }) {
                d.message.push_str(&hint);
            }
            let at = e.span().and_then(|s| text.get(s.start..)).unwrap_or("");
            for table in ["node", "workload"] {
                if at.starts_with(&format!("[{table}]")) {
                    d.message.push_str(&format!(
                        " (write `[[{table}]]`: each {table} is an entry of the `{table}` array)"
                    ));
                }
            }
            Error::Invalid(vec![d])
        })?;
        let parent = path.parent().unwrap_or(Path::new(""));
        let base_dir = std::path::absolute(if parent.as_os_str().is_empty() {
            Path::new(".")
        } else {
            parent
        })
        .map_err(|e| Error::io("finding the current directory", e))?;
        let base_dir = normalize(&base_dir);
        validate::validate(src, raw, base_dir)
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

    /// `[crash] workload`: the workload `ordeal crash` takes as its target by default.
    pub fn crash_workload(&self) -> Option<&str> {
        self.crash_workload.as_deref()
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

    /// How calls are seen (`engine`).
    pub fn engine(&self) -> EngineChoice {
        self.engine
    }

    /// What makes a log line tell why a run failed (`failure_pattern`, else
    /// [`DEFAULT_FAILURE_PATTERN`]).
    pub fn failure_pattern(&self) -> &regex::Regex {
        &self.failure_pattern
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

    /// The roles of `[roles]`, in name order: what a fault schedule's `role = "..."` may name.
    pub fn role_names(&self) -> impl Iterator<Item = &str> {
        self.roles.iter().map(|r| r.name())
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
