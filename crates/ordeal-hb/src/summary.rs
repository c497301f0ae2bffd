//! `summary.json` and the terminal summary.

use crate::cause::{Cause, FaultRecord};
use crate::graph::{Connection, EdgeCounts, FailedConnect, HbGraph, ThreadInfo, Traffic, View};
use ordeal_events::{Class, Event, Header};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::io::Write;

/// Schema name written in `summary.json`.
pub const SUMMARY_SCHEMA: &str = "ordeal-summary";
/// Version of the `summary.json` schema; bump on incompatible changes.
pub const SUMMARY_VERSION: u32 = 1;

/// How a run ended. Serialized in lower case (`"pass"`), as summary.json has always had it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Every check held.
    Pass,
    /// A check failed: the system misbehaved.
    Fail,
    /// Workloads stopped making progress (no traced event for the hang timeout).
    Hung,
    /// The run itself went wrong (start-up, ordeal's own error, interruption): no verdict on
    /// the system.
    Error,
}

impl Status {
    /// The word summary.json and the terminal use.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Fail => "fail",
            Status::Hung => "hung",
            Status::Error => "error",
        }
    }
    /// A finding about the system under test (fail or hung), as opposed to a pass or an error.
    pub fn is_failure(self) -> bool {
        matches!(self, Status::Fail | Status::Hung)
    }
    /// The CLI's exit code for a run with this status: 0 pass, 1 fail/hung, 2 error.
    pub fn exit_code(self) -> u8 {
        match self {
            Status::Pass => 0,
            Status::Fail | Status::Hung => 1,
            Status::Error => 2,
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The outcome of a run, decided by the caller (the run knows its checks; this crate does not).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    pub status: Status,
    /// Why, one sentence each (empty for a plain pass).
    #[serde(default)]
    pub reasons: Vec<String>,
    /// What a person reads first: the check's message, the violating operation, the failing
    /// workload's telling line (decided by the run; absent for a pass).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<Cause>,
}

impl Verdict {
    pub fn pass() -> Self {
        Self {
            status: Status::Pass,
            reasons: Vec::new(),
            cause: None,
        }
    }
    pub fn fail(reasons: Vec<String>) -> Self {
        Self {
            status: Status::Fail,
            reasons,
            cause: None,
        }
    }
    /// No traced event for the hang timeout while workloads ran (ordeal-diag's classifier:
    /// the first reason says `hung (blocked)` or `hung (busy)` and what threads waited on).
    pub fn hung(reasons: Vec<String>) -> Self {
        Self {
            status: Status::Hung,
            reasons,
            cause: None,
        }
    }
    pub fn error(reasons: Vec<String>) -> Self {
        Self {
            status: Status::Error,
            reasons,
            cause: None,
        }
    }
}

/// Everything a person or a script wants to know about one traced run, without the events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Always [`SUMMARY_SCHEMA`].
    pub schema: String,
    /// [`SUMMARY_VERSION`] of the writer.
    pub version: u32,
    pub experiment: String,
    pub verdict: Verdict,
    /// From the first event's start to the last event's end, in ns.
    pub span_ns: u64,
    pub nodes: Vec<NodeSummary>,
    /// Stream connections in order of establishment.
    pub connections: Vec<Connection>,
    /// Connect attempts that failed outright, aggregated.
    pub failed_connects: Vec<FailedConnect>,
    /// Traffic per directed node pair.
    pub pairs: Vec<PairSummary>,
    pub events: EventCounts,
    pub edges: EdgeCounts,
    /// Inconsistencies found in the trace (normally empty).
    #[serde(default)]
    pub warnings: Vec<String>,
    /// Snapshots of the nodes taken during the run (on a hang, a failure, on request),
    /// relative to the run directory.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub snapshots: Vec<SnapshotLink>,
    /// The engine that saw the calls (absent in summaries written before engines existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<EngineInfo>,
    /// Every firing of a fault of the run's schedule, in trace order (absent: none fired).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub faults: Vec<FaultRecord>,
}

/// What a run knows beyond its trace, written into its `summary.json`.
#[derive(Debug, Clone, PartialEq)]
pub struct RunFacts {
    pub verdict: Verdict,
    pub snapshots: Vec<SnapshotLink>,
    pub engine: Option<EngineInfo>,
    /// What the messages said, from the call log (ordeal-calls): the `seq` of a transfer
    /// that sent the start of a decoded message → its text (`SET k3 v7`, `+OK`). The
    /// pictures label those transfers and their message edges with it.
    pub labels: std::collections::HashMap<u64, String>,
    /// The faults that fired ([`Summary::faults`]).
    pub faults: Vec<FaultRecord>,
}

impl RunFacts {
    /// A verdict and nothing else.
    pub fn verdict(verdict: Verdict) -> RunFacts {
        RunFacts {
            verdict,
            snapshots: Vec::new(),
            engine: None,
            labels: Default::default(),
            faults: Vec::new(),
        }
    }

    pub(crate) fn apply(self, s: &mut Summary) {
        s.verdict = self.verdict;
        s.snapshots = self.snapshots;
        s.engine = self.engine;
        s.faults = self.faults;
    }
}

/// How a run's calls were seen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EngineInfo {
    /// `ebpf` or `ptrace`.
    pub name: String,
    /// Events the engine could not record (the eBPF ring buffer was full): the trace misses
    /// that many calls, and the verdict says so. Always 0 under ptrace.
    pub lost_events: u64,
}

/// One snapshot in `RUN_DIR/snapshots/` (written by ordeal-run, see docs/outputs.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotLink {
    /// `hang`, `failure`, `request`.
    pub reason: String,
    /// Milliseconds since the run started.
    pub at_ms: u64,
    /// The snapshot as JSON, relative to the run directory.
    pub json: String,
    /// Its readable text form (stacks, fds), relative to the run directory.
    pub text: String,
    /// Dumps written with it (paths as given by --dump-dir) and refusals.
    #[serde(default)]
    pub dumps: Vec<String>,
}

/// One node (or workload) of the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeSummary {
    pub name: String,
    /// `node`, `workload`, or `unknown` for a name not in the trace header.
    pub role: String,
    pub process_count: usize,
    /// Thread incarnations, main threads included.
    pub thread_count: usize,
    /// Every process in order of creation with its exit status.
    pub processes: Vec<ProcessSummary>,
}

/// One process and how it ended. Neither `code` nor `signal` means no exit was traced (it was
/// still running when tracing stopped).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessSummary {
    pub pid: i32,
    /// Command line of its last spawn/exec, when traced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<String>,
}

impl ProcessSummary {
    /// `exit 0`, `SIGKILL` or `running`.
    pub fn status(&self) -> String {
        match (&self.signal, self.code) {
            (Some(s), _) => s.clone(),
            (None, Some(c)) => format!("exit {c}"),
            (None, None) => "running".into(),
        }
    }
}

/// Communication from one node to another.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PairSummary {
    pub from: String,
    pub to: String,
    /// Send events at least one byte of which a traced receive on `to` consumed.
    pub messages: u64,
    /// Bytes sent by `from` and received by `to`, both traced.
    pub bytes: u64,
    /// Bytes with no traced counterpart (the peer was not traced, or never read them).
    pub unmatched_bytes: u64,
    /// Connections opened by `from` to `to`.
    pub connections: u64,
}

/// Event totals.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct EventCounts {
    pub total: u64,
    /// By class: `net`, `data`, `file`, `proc` (and `other` for unclassified events).
    pub by_class: BTreeMap<String, u64>,
    /// By system call or lifecycle step.
    pub by_call: BTreeMap<String, u64>,
}

/// Event totals and the time span, taken in one event at a time.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    /// By class, in [`CLASSES`] order, then unclassified.
    by_class: [u64; 5],
    by_call: HashMap<Box<str>, u64>,
    total: u64,
    first: Option<u64>,
    last_end: Option<u64>,
}

/// Class names as summary.json spells them (serde's lower case).
const CLASSES: [&str; 5] = ["net", "data", "file", "proc", "other"];

impl Tally {
    pub(crate) fn observe<'a>(&mut self, e: impl View<'a>) {
        let class = match e.class() {
            Some(Class::Net) => 0,
            Some(Class::Data) => 1,
            Some(Class::File) => 2,
            Some(Class::Proc) => 3,
            None => 4,
        };
        self.by_class[class] += 1;
        match self.by_call.get_mut(e.call()) {
            Some(n) => *n += 1,
            None => {
                self.by_call.insert(e.call().into(), 1);
            }
        }
        self.total += 1;
        self.first = Some(self.first.map_or(e.ts(), |t| t.min(e.ts())));
        let end = e.ts().saturating_add(e.dur());
        self.last_end = Some(self.last_end.map_or(end, |t| t.max(end)));
    }

    pub(crate) fn counts(&self) -> EventCounts {
        EventCounts {
            total: self.total,
            by_class: CLASSES
                .iter()
                .zip(self.by_class)
                .filter(|&(_, n)| n > 0)
                .map(|(c, n)| (c.to_string(), n))
                .collect(),
            by_call: self
                .by_call
                .iter()
                .map(|(c, &n)| (c.to_string(), n))
                .collect(),
        }
    }

    pub(crate) fn span_ns(&self) -> u64 {
        match (self.first, self.last_end) {
            (Some(a), Some(b)) => b.saturating_sub(a),
            _ => 0,
        }
    }
}

/// What a summary is made of, whoever computed it.
pub(crate) struct Parts<'a> {
    pub(crate) header: &'a Header,
    pub(crate) names: Vec<String>,
    pub(crate) threads: &'a [ThreadInfo],
    /// Per thread, its spawn/exec/exit events in program order.
    pub(crate) lifecycle: Vec<Vec<&'a Event>>,
    pub(crate) tally: &'a Tally,
    pub(crate) connections: Vec<Connection>,
    pub(crate) failed_connects: Vec<FailedConnect>,
    pub(crate) traffic: &'a BTreeMap<(String, String), Traffic>,
    pub(crate) edges: EdgeCounts,
    pub(crate) warnings: Vec<String>,
}

impl Summary {
    /// Summarises a graph; `verdict` is the caller's judgement of the run.
    pub fn build(graph: &HbGraph, verdict: Verdict) -> Summary {
        let mut tally = Tally::default();
        for i in 0..graph.len() {
            tally.observe(graph.ev(i));
        }
        // Only the lifecycle events matched here are kept whole by the graph.
        let lifecycle = (0..graph.threads().len())
            .map(|t| {
                graph
                    .thread_indices(t)
                    .iter()
                    .filter_map(|&i| graph.kept_event(i as usize))
                    .collect()
            })
            .collect();
        Summary::from_parts(
            Parts {
                header: graph.header(),
                names: graph.node_names(),
                threads: graph.threads(),
                lifecycle,
                tally: &tally,
                connections: graph.connections().to_vec(),
                failed_connects: graph.failed_connects().to_vec(),
                traffic: graph.traffic(),
                edges: graph.edge_counts(),
                warnings: graph.warnings().to_vec(),
            },
            verdict,
        )
    }

    pub(crate) fn from_parts(p: Parts, verdict: Verdict) -> Summary {
        let pairs = p
            .traffic
            .iter()
            .map(|((from, to), t)| PairSummary {
                from: from.clone(),
                to: to.clone(),
                messages: t.messages,
                bytes: t.bytes,
                unmatched_bytes: t.unmatched_bytes,
                connections: t.connections,
            })
            .collect();
        Summary {
            schema: SUMMARY_SCHEMA.into(),
            version: SUMMARY_VERSION,
            experiment: p.header.experiment.clone(),
            verdict,
            span_ns: p.tally.span_ns(),
            nodes: node_summaries(p.header, &p.names, p.threads, &p.lifecycle),
            connections: p.connections,
            failed_connects: p.failed_connects,
            pairs,
            events: p.tally.counts(),
            edges: p.edges,
            warnings: p.warnings,
            snapshots: Vec::new(),
            engine: None,
            faults: Vec::new(),
        }
    }

    /// Looks up the traffic from one node to another.
    pub fn pair(&self, from: &str, to: &str) -> Option<&PairSummary> {
        self.pairs.iter().find(|p| p.from == from && p.to == to)
    }

    /// Looks up a node.
    pub fn node(&self, name: &str) -> Option<&NodeSummary> {
        self.nodes.iter().find(|n| n.name == name)
    }
}

fn node_summaries(
    header: &Header,
    names: &[String],
    threads: &[ThreadInfo],
    lifecycle: &[Vec<&Event>],
) -> Vec<NodeSummary> {
    struct Proc {
        node: String,
        p: ProcessSummary,
        leader_exit: bool,
    }
    let mut procs: Vec<Proc> = Vec::new();
    let mut latest: HashMap<i32, usize> = HashMap::new();
    let mut threads_per_node: HashMap<&str, usize> = HashMap::new();
    for (t, info) in threads.iter().enumerate() {
        *threads_per_node.entry(info.node.as_str()).or_default() += 1;
        let leader = info.tid == info.pid;
        // A process begins with a leader that was spawned or forked. A leader incarnation with
        // no creator (events of a tid recorded after its exit) continues the same process.
        let created = info.spawned || info.parent.is_some();
        let k = match latest.get(&info.pid) {
            Some(&k) if (!leader || !created) && procs[k].node == info.node => k,
            _ => {
                procs.push(Proc {
                    node: info.node.clone(),
                    p: ProcessSummary {
                        pid: info.pid,
                        command: None,
                        code: None,
                        signal: None,
                    },
                    leader_exit: false,
                });
                latest.insert(info.pid, procs.len() - 1);
                procs.len() - 1
            }
        };
        let pr = &mut procs[k];
        for e in lifecycle.get(t).into_iter().flatten() {
            match e.call.as_str() {
                "spawn" | "exec" | "execve" | "execveat" if e.ok() => {
                    if let Some(argv) = e.argv.as_ref().filter(|a| !a.is_empty()) {
                        pr.p.command = Some(argv.join(" "));
                    }
                }
                "exit" if leader || !pr.leader_exit => {
                    pr.p.code = e.code;
                    pr.p.signal = e.signal.clone();
                    pr.leader_exit |= leader;
                }
                _ => {}
            }
        }
    }
    names
        .iter()
        .map(|name| {
            let role = header
                .nodes
                .iter()
                .find(|n| &n.name == name)
                .map(|n| n.role.clone())
                .unwrap_or_else(|| "unknown".into());
            let processes: Vec<ProcessSummary> = procs
                .iter()
                .filter(|p| &p.node == name)
                .map(|p| p.p.clone())
                .collect();
            NodeSummary {
                role,
                process_count: processes.len(),
                thread_count: threads_per_node.get(name.as_str()).copied().unwrap_or(0),
                processes,
                name: name.clone(),
            }
        })
        .filter(|n| n.role != "unknown" || n.thread_count > 0)
        .collect()
}

/// Writes `summary.json` (pretty-printed, trailing newline).
pub fn write_summary_json<W: Write>(summary: &Summary, mut w: W) -> std::io::Result<()> {
    serde_json::to_writer_pretty(&mut w, summary)?;
    w.write_all(b"\n")
}

/// Human-readable byte count: exact below 10 KiB, else one decimal in KiB/MiB/GiB.
pub fn fmt_bytes(b: u64) -> String {
    const UNITS: [&str; 3] = ["KiB", "MiB", "GiB"];
    if b < 10 * 1024 {
        return format!("{b} B");
    }
    let mut v = b as f64 / 1024.0;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    format!("{v:.1} {}", UNITS[u])
}

fn fmt_duration(ns: u64) -> String {
    if ns >= 1_000_000_000 {
        format!("{:.2} s", ns as f64 / 1e9)
    } else if ns >= 1_000_000 {
        format!("{:.1} ms", ns as f64 / 1e6)
    } else {
        format!("{:.1} µs", ns as f64 / 1e3)
    }
}

/// Left-aligned text columns, right-aligned numeric ones, two spaces between.
struct Table {
    right: Vec<bool>,
    rows: Vec<Vec<String>>,
}

impl Table {
    fn new(head: &[&str], right: &[bool]) -> Self {
        Self {
            right: right.to_vec(),
            rows: vec![head.iter().map(|s| s.to_string()).collect()],
        }
    }
    fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }
    fn render(&self, out: &mut String) {
        let n = self.right.len();
        let width: Vec<usize> = (0..n)
            .map(|c| {
                self.rows
                    .iter()
                    .map(|r| r.get(c).map_or(0, |s| s.chars().count()))
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        for r in &self.rows {
            let mut line = String::from("  ");
            for (c, &wid) in width.iter().enumerate() {
                let cell = r.get(c).map(String::as_str).unwrap_or("");
                let pad = wid - cell.chars().count();
                if self.right[c] {
                    line.push_str(&" ".repeat(pad));
                    line.push_str(cell);
                } else {
                    line.push_str(cell);
                    if c + 1 < n {
                        line.push_str(&" ".repeat(pad));
                    }
                }
                if c + 1 < n {
                    line.push_str("  ");
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
    }
}

fn exit_column(procs: &[ProcessSummary]) -> String {
    let mut groups: Vec<(String, usize)> = Vec::new();
    for p in procs {
        let s = p.status();
        match groups.iter_mut().find(|g| g.0 == s) {
            Some(g) => g.1 += 1,
            None => groups.push((s, 1)),
        }
    }
    if groups.is_empty() {
        return "-".into();
    }
    groups
        .into_iter()
        .map(|(s, n)| if n > 1 { format!("{s} ×{n}") } else { s })
        .collect::<Vec<_>>()
        .join(", ")
}

/// A short report for the terminal: nodes and how their processes ended, connections,
/// traffic per node pair, event totals and the verdict.
pub fn human_summary(s: &Summary) -> String {
    let mut out = String::new();
    let procs: usize = s.nodes.iter().map(|n| n.process_count).sum();
    let workloads = s.nodes.iter().filter(|n| n.role == "workload").count();
    let count =
        |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    let _ = writeln!(
        out,
        "{}: {}, {}, {} traced, {} events in {}",
        s.experiment,
        count(s.nodes.len() - workloads, "node", "nodes"),
        count(workloads, "workload", "workloads"),
        count(procs, "process", "processes"),
        s.events.total,
        fmt_duration(s.span_ns)
    );
    if let Some(e) = s.engine.as_ref().filter(|e| e.lost_events > 0) {
        let _ = writeln!(
            out,
            "WARNING: {} events lost by the {} engine: the trace and the graph are incomplete",
            e.lost_events, e.name
        );
    }

    out.push('\n');
    let mut t = Table::new(
        &["NODE", "ROLE", "PROCS", "THREADS", "EXIT"],
        &[false, false, true, true, false],
    );
    for n in &s.nodes {
        t.row(vec![
            n.name.clone(),
            n.role.clone(),
            n.process_count.to_string(),
            n.thread_count.to_string(),
            exit_column(&n.processes),
        ]);
    }
    t.render(&mut out);

    if !s.connections.is_empty() {
        // One row per (client node, server node, server address).
        let mut rows: Vec<(String, String, String, u64, u64, u64)> = Vec::new();
        for c in &s.connections {
            match rows
                .iter_mut()
                .find(|r| r.0 == c.client_node && r.1 == c.server_node && r.2 == c.server_addr)
            {
                Some(r) => {
                    r.3 += 1;
                    r.4 += c.bytes_client_to_server;
                    r.5 += c.bytes_server_to_client;
                }
                None => rows.push((
                    c.client_node.clone(),
                    c.server_node.clone(),
                    c.server_addr.clone(),
                    1,
                    c.bytes_client_to_server,
                    c.bytes_server_to_client,
                )),
            }
        }
        out.push('\n');
        let mut t = Table::new(
            &[
                "CLIENT",
                "SERVER",
                "ADDRESS",
                "CONNS",
                "TO SERVER",
                "TO CLIENT",
            ],
            &[false, false, false, true, true, true],
        );
        for r in rows {
            t.row(vec![
                r.0,
                r.1,
                r.2,
                r.3.to_string(),
                fmt_bytes(r.4),
                fmt_bytes(r.5),
            ]);
        }
        t.render(&mut out);
    }

    if !s.failed_connects.is_empty() {
        out.push('\n');
        let mut t = Table::new(
            &["FAILED CONNECT", "TO", "ADDRESS", "ERROR", "COUNT"],
            &[false, false, false, false, true],
        );
        for f in &s.failed_connects {
            t.row(vec![
                f.node.clone(),
                f.target_node.clone(),
                f.addr.clone(),
                f.errno.clone(),
                f.count.to_string(),
            ]);
        }
        t.render(&mut out);
    }

    if s.pairs
        .iter()
        .any(|p| p.messages > 0 || p.unmatched_bytes > 0)
    {
        out.push('\n');
        let any_unmatched = s.pairs.iter().any(|p| p.unmatched_bytes > 0);
        let (head, right): (Vec<&str>, Vec<bool>) = if any_unmatched {
            (
                vec!["FROM", "TO", "MESSAGES", "BYTES", "UNMATCHED"],
                vec![false, false, true, true, true],
            )
        } else {
            (
                vec!["FROM", "TO", "MESSAGES", "BYTES"],
                vec![false, false, true, true],
            )
        };
        let mut t = Table::new(&head, &right);
        for p in s
            .pairs
            .iter()
            .filter(|p| p.messages > 0 || p.unmatched_bytes > 0)
        {
            let mut row = vec![
                p.from.clone(),
                p.to.clone(),
                p.messages.to_string(),
                fmt_bytes(p.bytes),
            ];
            if any_unmatched {
                row.push(if p.unmatched_bytes > 0 {
                    fmt_bytes(p.unmatched_bytes)
                } else {
                    "-".into()
                });
            }
            t.row(row);
        }
        t.render(&mut out);
    }

    if !s.faults.is_empty() {
        out.push('\n');
        let mut t = Table::new(
            &[
                "FAULT", "KIND", "NODE", "CALL", "SEQ", "FIRED", "HEALED", "ACTION",
            ],
            &[false, false, false, false, true, true, true, false],
        );
        for f in &s.faults {
            t.row(vec![
                f.name.clone(),
                f.kind.clone(),
                f.node.clone(),
                f.call.clone(),
                f.seq.to_string(),
                format!("{:.3}s", f.fired_at),
                f.healed_at.map_or("-".into(), |h| format!("{h:.3}s")),
                f.action.clone(),
            ]);
        }
        t.render(&mut out);
    }

    out.push('\n');
    let classes = ["net", "data", "file", "proc", "other"]
        .iter()
        .filter_map(|c| s.events.by_class.get(*c).map(|n| format!("{c} {n}")))
        .collect::<Vec<_>>()
        .join(", ");
    let _ = writeln!(out, "  events   {} ({classes})", s.events.total);
    let e = &s.edges;
    let _ = writeln!(
        out,
        "  edges    {} message, {} connect, {} fork, {} program",
        e.message, e.connect, e.fork, e.program
    );
    if !s.warnings.is_empty() {
        let _ = writeln!(out, "  warnings {}", s.warnings.len());
        for w in s.warnings.iter().take(3) {
            let _ = writeln!(out, "    {w}");
        }
    }
    let _ = writeln!(
        out,
        "  verdict  {}",
        s.verdict.status.as_str().to_uppercase()
    );
    for r in &s.verdict.reasons {
        let _ = writeln!(out, "    - {r}");
    }
    if let Some(c) = &s.verdict.cause {
        let _ = writeln!(out, "  cause    {c}");
    }
    for l in &s.snapshots {
        let _ = writeln!(out, "  snapshot ({}) {}", l.reason, l.text);
    }
    out
}
