//! `ordeal crash --cluster` / `--nodes A,B`: a simultaneous power loss of several nodes
//! (docs/crash.md#whole-clusters).
//!
//! A crash point is one instant of the recording, a `seq` of trace.jsonl: every node loses
//! power at once. The trace's order is the order calls completed, which extends the
//! happens-before graph, so its prefix is a consistent cut (no node kept a message whose
//! sending was cut off). Each node's data dir gets a crash state from its own operations
//! issued before that instant; all the nodes are restarted together on their states (on the
//! recording's ports: members keep each other's addresses in their data, etcd's membership),
//! their ready conditions awaited, then the crash check runs with what the workloads had
//! printed before the instant (`ORDEAL_CRASH_STDOUT`). A state set the cluster does not
//! recover from is a vulnerability: its cut, per node the operations it lost.

use super::recover::{recover_on, Promised};
use super::{calls_of, usable, CrashOptions, CrashVerdict, OpRef};
use crate::supervisor::Progress;
use crate::Error;
use ordeal_events::{Class, TraceReader};
use ordeal_experiment::{Experiment, NodeSpec, ResolveContext};
use ordeal_state::persist::{self, CrashState, Explorer, Model, Op, Role, Tree};
use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

mod ports;
mod report;

pub use report::{ClusterReport, ClusterVulnerability, NodeLoss};

/// One node of the crashed set.
struct Member {
    name: String,
    base: Tree,
    ops: Vec<Op>,
    ninos: usize,
}

/// A cluster crash state: the instant, and each member's state (same order as the members).
#[derive(Clone)]
struct StateSet {
    cut: u64,
    kind: &'static str,
    states: Vec<CrashState>,
}

/// Runs `ordeal crash` on the nodes `names` at once (empty: every node with a data dir).
pub fn crash_cluster(
    exp: &Experiment,
    opts: &CrashOptions,
    names: &[String],
    cancel: &AtomicBool,
) -> Result<ClusterReport, Error> {
    let probe = super::crash_probe(exp, opts)?;
    let names: Vec<String> = if names.is_empty() {
        probe
            .nodes
            .iter()
            .filter(|n| n.data_dir.is_some())
            .map(|n| n.name.clone())
            .collect()
    } else {
        names.to_vec()
    };
    if names.is_empty() {
        return Err(Error::Usage(
            "no node has a data_dir: nothing to crash".into(),
        ));
    }
    for n in &names {
        match probe.node(n) {
            None => return Err(Error::Usage(format!("no node {n} in the experiment"))),
            Some(s) if s.data_dir.is_none() => {
                return Err(Error::Usage(format!("node {n} has no data_dir")))
            }
            Some(_) => {}
        }
    }
    let mut run_opts = opts.run.clone();
    run_opts.record_file_data = true;
    // What every workload printed is what the clients were promised.
    run_opts.record_stdout_of = probe.workloads.iter().map(|w| w.name.clone()).collect();
    drop(probe);
    let progress = Progress::new(opts.run.progress);
    progress.say(format!("recording a run of {} (file data on)", exp.name()));
    let recording = crate::run(exp, &run_opts, cancel)?;
    let run_dir = recording.run_dir.clone();
    for n in &names {
        usable(
            &recording.summary.verdict,
            &format!("node {n} exited "),
            &run_dir,
        )?;
    }
    let mut members = Vec::new();
    let mut unmodelled = Vec::new();
    let mut real = Vec::new();
    for n in &names {
        let data_dir = std::fs::canonicalize(run_dir.join("data").join(n))
            .map_err(crate::io_err(format!("data dir of {n}")))?;
        let (calls, _, _) = calls_of(&run_dir, &data_dir, None)?;
        let base =
            Tree::load(&run_dir.join("base").join(n)).map_err(|e| Error::Usage(e.to_string()))?;
        let built = persist::build(&base, &calls);
        unmodelled.extend(built.unmodelled.iter().map(|u| format!("{n}: {u}")));
        real.push((
            data_dir.clone(),
            Tree::load(&data_dir).map_err(|e| Error::Usage(e.to_string()))?,
        ));
        progress.say(format!(
            "{n}: {} file calls → {} operations",
            calls.len(),
            built.ops.len()
        ));
        members.push(Member {
            name: n.clone(),
            base,
            ops: built.ops,
            ninos: built.inodes,
        });
    }
    if members.iter().all(|m| m.ops.is_empty()) {
        return Err(Error::Usage(format!(
            "no process made a file operation in the data dirs of {} during the recording: there is nothing to crash",
            names.join(", ")
        )));
    }
    let promised = PromiseLog::read(&run_dir)?;
    let explorers: Vec<Explorer> = members
        .iter()
        .map(|m| Explorer::new(&m.base, &m.ops, m.ninos))
        .collect();
    let cuts = cuts(&members, &explorers, &promised);
    progress.say(format!(
        "{} nodes lose power together: {} cuts",
        members.len(),
        cuts.len()
    ));
    let states_dir = run_dir.join("crash").join("states");
    std::fs::create_dir_all(&states_dir)
        .map_err(crate::io_err(format!("creating {}", states_dir.display())))?;
    let mut x = Search {
        exp,
        opts,
        members: &members,
        explorers: &explorers,
        promised: &promised,
        states_dir: &states_dir,
        run_dir: &run_dir,
        cancel,
        seen: HashSet::new(),
        vulns: Vec::new(),
        generated: 0,
        checked: 0,
        failed: 0,
    };
    let t0 = Instant::now();
    // Self-checks, as for one node: every call followed, each all-persisted state equal to
    // the real final directory, and the cluster recovering on them.
    let mut unknown = unmodelled.first().map(|u| {
        format!(
            "the model does not follow {u}{}",
            match unmodelled.len() {
                1 => String::new(),
                n => format!(" (and {} more unmodelled calls)", n - 1),
            }
        )
    });
    let last = StateSet {
        cut: u64::MAX,
        kind: "prefix",
        states: members
            .iter()
            .map(|m| CrashState {
                crash_at: m.ops.len(),
                kind: persist::Kind::Prefix,
                lost: vec![],
                ns_cut: None,
                torn: None,
            })
            .collect(),
    };
    if unknown.is_none() {
        for (((m, ex), (dir, tree)), s) in
            members.iter().zip(&explorers).zip(&real).zip(&last.states)
        {
            if let Some(d) = ex.tree(s).first_difference(tree) {
                unknown = Some(format!(
                    "the model's final state of {} differs from the real final directory {}: {d} (a call the tracer does not see changed it)",
                    m.name,
                    dir.display()
                ));
                break;
            }
        }
    }
    if unknown.is_none() {
        if let Some(err) = x.check(&last)? {
            unknown = Some(format!(
                "the recovery check fails on the real final states, with nothing lost ({}): {err}",
                states_dir.join(format!("{:05}", x.checked)).display()
            ));
        }
        x.vulns.clear();
    }
    let mut complete = unknown.is_none();
    let mut next_report = Instant::now() + Duration::from_secs(1);
    let mut rng = persist::Rng::new(opts.seed);
    let systematic: Vec<StateSet> = cuts
        .iter()
        .flat_map(|&cut| {
            [Model::Ext4, Model::Strict].map(|model| StateSet {
                cut,
                kind: "durable-only",
                states: members
                    .iter()
                    .zip(&explorers)
                    .map(|(m, ex)| ex.durable_only(issued(&m.ops, cut), model))
                    .collect(),
            })
        })
        .collect();
    let (mut i, mut fruitless) = (0usize, 0usize);
    while unknown.is_none() {
        if x.checked >= opts.budget
            || opts.time.is_some_and(|t| t0.elapsed() >= t)
            || cancel.load(Ordering::SeqCst)
        {
            complete = i >= systematic.len();
            break;
        }
        let set = if i < systematic.len() {
            systematic[i].clone()
        } else {
            if fruitless > 200 || cuts.is_empty() {
                break;
            }
            let cut = cuts[rng.below(cuts.len() as u64) as usize];
            StateSet {
                cut,
                kind: "random",
                states: members
                    .iter()
                    .zip(&explorers)
                    .map(|(m, ex)| ex.random_at(issued(&m.ops, cut), &mut rng))
                    .collect(),
            }
        };
        i += 1;
        let before = x.checked;
        x.check(&set)?;
        if i > systematic.len() {
            fruitless = if x.checked > before { 0 } else { fruitless + 1 };
        }
        if Instant::now() >= next_report {
            next_report += Duration::from_secs(1);
            let secs = t0.elapsed().as_secs_f64();
            progress.say(format!(
                "{} state sets generated, {} checked ({:.1}/s), {} failed, {} vulnerabilit{}",
                x.generated,
                x.checked,
                x.checked as f64 / secs.max(1e-9),
                x.failed,
                x.vulns.len(),
                if x.vulns.len() == 1 { "y" } else { "ies" }
            ));
        }
    }
    let verdict = CrashVerdict::of(
        unknown.is_some(),
        x.vulns.iter().map(|v| v.models.as_slice()),
        opts.model,
    );
    let report = ClusterReport {
        verdict,
        model: opts.model,
        unknown,
        run_dir: run_dir.clone(),
        nodes: names.clone(),
        seed: opts.seed,
        recording: recording.summary.verdict.status,
        operations: members
            .iter()
            .map(|m| (m.name.clone(), m.ops.len()))
            .collect(),
        cuts: cuts.len(),
        generated: x.generated,
        checked: x.checked,
        failed: x.failed,
        seconds: t0.elapsed().as_secs_f64(),
        complete,
        vulnerabilities: x.vulns,
    };
    let counts = (report.checked, report.seconds, report.vulnerabilities.len());
    super::write_report(&run_dir, &report, &progress, "state sets", counts)?;
    Ok(report)
}

/// How many of `ops` were issued before the instant `cut` (a trace seq).
fn issued(ops: &[Op], cut: u64) -> usize {
    ops.partition_point(|o| o.seq < cut)
}

/// The instants a power loss is tried at: right before every barrier of any node (the most
/// not yet durable, everywhere) and after the whole recording; one per distinct combination
/// of the nodes' issued operations and the promises made, those leaving the most operations
/// not durable first (a deterministic order: the worst power losses first).
fn cuts(members: &[Member], explorers: &[Explorer], promised: &PromiseLog) -> Vec<u64> {
    let mut candidates: Vec<u64> = members
        .iter()
        .flat_map(|m| m.ops.iter().filter(|o| o.kind.is_barrier()).map(|o| o.seq))
        .collect();
    candidates.push(u64::MAX);
    candidates.sort_unstable();
    candidates.dedup();
    let mut seen = HashSet::new();
    let mut scored: Vec<(usize, u64)> = Vec::new();
    for cut in candidates {
        let at: Vec<usize> = members.iter().map(|m| issued(&m.ops, cut)).collect();
        if !seen.insert((at.clone(), promised.before(cut).len())) {
            continue;
        }
        let at_risk: usize = explorers
            .iter()
            .zip(&at)
            .map(|(ex, &k)| {
                let s = ex.durable_only(k, Model::Strict);
                s.lost.len() + s.ns_cut.map_or(0, |c| k - c)
            })
            .sum();
        scored.push((at_risk, cut));
    }
    // Most at risk first; among equals, the later instant (more promised).
    scored.sort_by(|a, b| b.cmp(a));
    scored.into_iter().map(|(_, c)| c).collect()
}

/// What the workloads printed (to their stdout), and the checkpoints taken, in trace order.
struct PromiseLog {
    stdout: Vec<(u64, Vec<u8>)>,
    checkpoints: Vec<(u64, String)>,
}

impl PromiseLog {
    fn read(run_dir: &Path) -> Result<PromiseLog, Error> {
        let logs = std::fs::canonicalize(run_dir.join("logs"))
            .map_err(crate::io_err(format!("logs of {}", run_dir.display())))?;
        let blob_path = run_dir.join(super::FILE_DATA);
        let blob = std::fs::read(&blob_path)
            .map_err(crate::io_err(format!("reading {}", blob_path.display())))?;
        let mut p = PromiseLog {
            stdout: Vec::new(),
            checkpoints: Vec::new(),
        };
        for e in TraceReader::open(&run_dir.join("trace.jsonl"))?.read_all()? {
            if e.class == Some(Class::Proc) && e.call == "checkpoint" {
                let data = e.data.clone().unwrap_or_default();
                let label = match data.split_once(' ') {
                    Some((_, l)) => l.to_string(),
                    None => data,
                };
                p.checkpoints.push((e.seq, label));
                continue;
            }
            let to_stdout = e.class == Some(Class::File)
                && e.path.as_deref().is_some_and(|f| {
                    let f = Path::new(f);
                    f.parent() == Some(&logs) && f.extension().is_some_and(|x| x == "stdout")
                });
            if let (true, Some(at), Some(n)) = (to_stdout, e.data_at, e.ret.filter(|&n| n > 0)) {
                let (at, n) = (at as usize, n as usize);
                if let Some(bytes) = blob.get(at..at + n) {
                    p.stdout.push((e.seq, bytes.to_vec()));
                }
            }
        }
        Ok(p)
    }

    /// Everything printed before the instant `cut`.
    fn before(&self, cut: u64) -> Vec<u8> {
        self.stdout
            .iter()
            .filter(|(q, _)| *q < cut)
            .flat_map(|(_, b)| b.iter().copied())
            .collect()
    }

    fn checkpoint_before(&self, cut: u64) -> Option<&str> {
        self.checkpoints
            .iter()
            .rev()
            .find(|(q, _)| *q < cut)
            .map(|(_, l)| l.as_str())
    }
}

struct Search<'a> {
    exp: &'a Experiment,
    opts: &'a CrashOptions,
    members: &'a [Member],
    explorers: &'a [Explorer<'a>],
    promised: &'a PromiseLog,
    states_dir: &'a Path,
    run_dir: &'a Path,
    cancel: &'a AtomicBool,
    /// Hashes of the state sets (trees and promises) checked.
    seen: HashSet<blake3::Hash>,
    vulns: Vec<ClusterVulnerability>,
    generated: usize,
    checked: usize,
    failed: usize,
}

impl Search<'_> {
    /// Checks one state set (once per distinct set of trees and promises); returns why the
    /// cluster did not recover.
    fn check(&mut self, set: &StateSet) -> Result<Option<String>, Error> {
        self.generated += 1;
        let trees: Vec<Tree> = self
            .explorers
            .iter()
            .zip(&set.states)
            .map(|(ex, s)| ex.tree(s))
            .collect();
        let stdout = self.promised.before(set.cut);
        let checkpoint = self.promised.checkpoint_before(set.cut);
        let mut h = blake3::Hasher::new();
        for t in &trees {
            h.update(t.hash().as_bytes());
        }
        h.update(&stdout);
        h.update(checkpoint.unwrap_or_default().as_bytes());
        if !self.seen.insert(h.finalize()) {
            return Ok(None);
        }
        self.checked += 1;
        let dir = self.states_dir.join(format!("{:05}", self.checked));
        let e = self.recover(&trees, &dir, &stdout, checkpoint)?;
        match &e {
            None => {
                let _ = std::fs::remove_dir_all(&dir);
            }
            Some(err) => {
                self.failed += 1;
                self.file(set, err, &dir);
            }
        }
        Ok(e)
    }

    /// Files a failing state set under the vulnerability of its cause.
    fn file(&mut self, set: &StateSet, error: &str, dir: &Path) {
        let mut causes: Vec<String> = Vec::new();
        let mut nodes = Vec::new();
        let mut ext4 = true;
        for ((m, ex), s) in self.members.iter().zip(self.explorers).zip(&set.states) {
            let lost = lost_refs(&m.ops, s);
            if !lost.is_empty() {
                for c in super::group::causes(&m.ops, s) {
                    if !causes.contains(&c) {
                        causes.push(c);
                    }
                }
            }
            ext4 &= ex.models(s).contains(&Model::Ext4);
            nodes.push(NodeLoss {
                node: m.name.clone(),
                crash_after_seq: s.crash_at.checked_sub(1).map(|i| m.ops[i].seq),
                lost,
            });
        }
        if causes.is_empty() {
            causes.push("the cluster does not recover although no node lost anything it had issued: its own update is not atomic across nodes".to_string());
        }
        let models = if ext4 {
            vec![Model::Strict, Model::Ext4]
        } else {
            vec![Model::Strict]
        };
        let size: usize = nodes.iter().map(|n| n.lost.len()).sum();
        // As for one node (group::file): a state set showing several causes counts under the
        // first one already known, else it opens a vulnerability of its first.
        if let Some(v) = self.vulns.iter_mut().find(|v| causes.contains(&v.cause)) {
            v.states += 1;
            if ext4 && !v.models.contains(&Model::Ext4) {
                v.models.push(Model::Ext4);
            }
            if size < v.size {
                let _ = std::fs::remove_dir_all(&v.example);
                v.example = dir.to_path_buf();
                v.size = size;
                v.nodes = nodes;
                v.cut_seq = (set.cut != u64::MAX).then_some(set.cut);
                v.kind = set.kind;
                v.error = error.to_string();
            } else {
                let _ = std::fs::remove_dir_all(dir);
            }
            return;
        }
        self.vulns.push(ClusterVulnerability {
            id: self.vulns.len() + 1,
            cause: causes.swap_remove(0),
            cut_seq: (set.cut != u64::MAX).then_some(set.cut),
            kind: set.kind,
            error: error.to_string(),
            states: 1,
            models,
            nodes,
            example: dir.to_path_buf(),
            size,
        });
    }

    /// Starts every node of the experiment on its state (the crashed set's on their crash
    /// states, the others on their real final data dirs), awaits their ready conditions in
    /// order, runs the crash check; `Some(reason)` if the cluster does not recover.
    fn recover(
        &self,
        trees: &[Tree],
        dir: &Path,
        stdout: &[u8],
        checkpoint: Option<&str>,
    ) -> Result<Option<String>, Error> {
        let mut r = self
            .exp
            .resolve(&ResolveContext::new(dir, &self.opts.run.ordeal_exe))?;
        ports::pin_ports(&mut r, &ports::recorded_ports(self.run_dir)?);
        crate::rundir::create_run_dir(dir)?;
        for n in &r.nodes {
            let Some(dd) = &n.data_dir else { continue };
            match self.members.iter().position(|m| m.name == n.name) {
                Some(i) => trees[i].materialize(&dd.path),
                None => persist::copy_tree(&self.run_dir.join("data").join(&n.name), &dd.path),
            }
            .map_err(|e| Error::Usage(format!("materializing a crash state: {e}")))?;
        }
        let nodes: Vec<&NodeSpec> = r.nodes.iter().collect();
        let promised = Promised {
            checkpoint,
            stdout: Some(stdout.to_vec()),
        };
        recover_on(&r, dir, &nodes, promised, self.cancel)
    }
}

/// The operations of state `s` that did not (fully) persist: its lost data, its torn write,
/// the names its cut loses.
fn lost_refs(ops: &[Op], s: &CrashState) -> Vec<OpRef> {
    let cut = s.ns_cut.map_or(0..0, |k| k..s.crash_at);
    let mut out: Vec<(usize, Role)> = s.lost.iter().map(|&i| (i, Role::Lost)).collect();
    out.extend(s.torn.map(|(i, _)| (i, Role::Torn)));
    out.extend(
        cut.filter(|&i| ops[i].kind.is_namespace())
            .map(|i| (i, Role::Lost)),
    );
    out.sort_unstable();
    out.into_iter()
        .map(|(i, role)| OpRef {
            role,
            seq: ops[i].seq,
            call: ops[i].call.clone(),
            op: ops[i].describe(),
        })
        .collect()
}
