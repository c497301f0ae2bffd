//! One run and its analysis: the run itself (summary.json only), its schedule file and replay
//! record, then what explore learns from its trace (fingerprint, mined points, signature,
//! where the time went).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ordeal_events::{Header, TraceReader};
use ordeal_experiment::Experiment;
use ordeal_faults::Participants;
use ordeal_hb::Status;

use crate::candidates::{mine_with_roles, Fault, FaultModel};
use crate::config::ReplaySource;
use crate::fingerprint::fingerprint_with_roles;
use crate::model::{Analysis, Phases};
use crate::schedule::{schedule, schedule_text};
use crate::signature;
use crate::Error;

/// What every run of a campaign shares.
pub(crate) struct Shared {
    pub(crate) exp: Experiment,
    pub(crate) replay: ReplaySource,
    pub(crate) exe: PathBuf,
    pub(crate) model: FaultModel,
    pub(crate) seed: u64,
    pub(crate) names: Participants,
    pub(crate) cancel: Arc<AtomicBool>,
}

pub(crate) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Runs `faults` in `dir` (on `cpu`, with its traced processes) and analyses the run.
pub(crate) fn execute(
    sh: &Shared,
    dir: &Path,
    faults: &[Fault],
    cpu: Option<usize>,
) -> Result<Analysis, Error> {
    let t0 = Instant::now();
    let schedule_path = dir.join("schedule.toml");
    let schedule = if faults.is_empty() {
        None
    } else {
        let s = schedule(
            faults,
            &sh.model,
            sh.seed,
            &schedule_path.display().to_string(),
        )?;
        s.validate_for(&sh.names)?;
        Some(s)
    };
    // The schedule as written for the user: what `ordeal replay` runs again.
    let text = schedule.as_ref().map(schedule_text);
    let mut opts = ordeal_run::RunOptions::new(sh.exe.clone());
    opts.out = Some(dir.to_path_buf());
    opts.progress = false;
    opts.faults = schedule;
    opts.summary_only = true;
    opts.tracer_cpu = cpu;
    opts.pin_traced = cpu.is_some();
    let report = ordeal_run::run(&sh.exp, &opts, &sh.cancel)?;
    let wall = t0.elapsed();
    let t1 = Instant::now();
    if let Some(text) = &text {
        std::fs::write(&schedule_path, text).map_err(|source| Error::Write {
            path: schedule_path.clone(),
            source,
        })?;
    }
    let replay = serde_json::json!({
        "experiment_path": sh.replay.experiment_path,
        "experiment": sh.replay.experiment,
        "set": sh.replay.set,
        "faults_path": text.as_ref().map(|_| &schedule_path),
        "faults": text,
        "payload": 0,
    });
    let replay_path = dir.join("replay.json");
    std::fs::write(
        &replay_path,
        serde_json::to_vec_pretty(&replay).unwrap_or_default(),
    )
    .map_err(|source| Error::Write {
        path: replay_path.clone(),
        source,
    })?;

    let reader = TraceReader::open(&dir.join("trace.jsonl"))?;
    let header = reader.header.clone();
    let events = reader.read_all()?;
    let verdict = &report.summary.verdict;
    let interrupted = sh.cancel.load(Ordering::SeqCst) && verdict.status == Status::Error;
    let outcome = signature::outcome(verdict.status, &verdict.reasons, dir);
    // With [roles], points are named by the role their node held (roles.jsonl).
    let timeline = crate::roles::Timeline::read(dir);
    let occurrences = mine_with_roles(&header, &events, &|node, ts| timeline.role_of(node, ts));
    let mut fired: Vec<(u64, String)> = events
        .iter()
        .filter_map(|e| {
            let f = e.fault.as_ref()?;
            faults
                .iter()
                .any(|x| f.is_firing_of(&x.name()))
                .then(|| (e.seq, format!("{f} (seq {})", e.seq)))
        })
        .collect();
    fired.sort();
    let first_fired = fired.first().map(|(s, _)| *s);
    let phases_from_trace = trace_phases(&header, &events);
    // With [roles], nodes are named by the role they held when the workloads started.
    let workload_start = events
        .iter()
        .find(|e| {
            header
                .nodes
                .iter()
                .any(|n| n.role == "workload" && n.name == e.node)
        })
        .map_or(0, |e| e.ts);
    let roles: std::collections::BTreeMap<String, String> = header
        .nodes
        .iter()
        .filter_map(|n| Some((n.name.clone(), timeline.role_of(&n.name, workload_start)?)))
        .collect();
    let fp = fingerprint_with_roles(&header, &events, &outcome, &roles);
    // The canonical text behind the hash: `diff` two of them to see how two behaviours differ.
    let _ = std::fs::write(dir.join("fingerprint.txt"), &fp.canonical);
    let (lines, causes, sig) = if verdict.status.is_failure() {
        let who: Vec<String> = header
            .nodes
            .iter()
            .filter(|n| n.role != "node")
            .map(|n| n.name.clone())
            .chain(std::iter::once(ordeal_experiment::CHECK_NAME.to_string()))
            .collect();
        let lines = signature::failure_lines(dir, &who, 5);
        let causes = signature::causes(verdict.status, &verdict.reasons, dir);
        let sig = signature::signature(&causes);
        (lines, causes, Some(sig))
    } else {
        (Vec::new(), Vec::new(), None)
    };
    let t = &report.times;
    let (start, ready, workload) = phases_from_trace;
    let drive = ms(t.drive);
    let mut phases = Phases {
        setup: ms(t.setup),
        start: start.min(drive),
        ready: ready.min(drive),
        workload: workload.min(drive),
        check: 0.0,
        teardown: ms(t.teardown),
        outputs: ms(t.outputs),
        analysis: ms(t1.elapsed()),
    };
    phases.check = (drive - phases.start - phases.ready - phases.workload).max(0.0);
    Ok(Analysis {
        status: verdict.status,
        reasons: verdict.reasons.clone(),
        outcome,
        fingerprint: fp.hash,
        occurrences,
        first_fired,
        fired: fired.into_iter().map(|(_, s)| s).collect(),
        signature: sig,
        causes,
        cause: verdict.cause.clone(),
        lines,
        phases,
        wall,
        events: events.len(),
        interrupted,
    })
}

/// (start, ready, workload) in ms from the trace: until the last node's first spawn, until the
/// first workload's spawn, until the last workload's exit.
fn trace_phases(header: &Header, events: &[ordeal_events::Event]) -> (f64, f64, f64) {
    let role = |n: &str| {
        header
            .nodes
            .iter()
            .find(|x| x.name == n)
            .map(|x| x.role.as_str())
            .unwrap_or("")
    };
    let wl_start = events
        .iter()
        .find(|e| e.call == "spawn" && role(&e.node) == "workload")
        .map(|e| e.ts);
    let Some(wl_start) = wl_start else {
        return (0.0, 0.0, 0.0);
    };
    let nodes_started = events
        .iter()
        .filter(|e| e.call == "spawn" && role(&e.node) == "node" && e.ts <= wl_start)
        .map(|e| e.ts)
        .max()
        .unwrap_or(0);
    let wl_end = events
        .iter()
        .filter(|e| e.call == "exit" && role(&e.node) == "workload")
        .map(|e| e.ts + e.dur)
        .max()
        .unwrap_or(wl_start);
    let f = |ns: u64| ns as f64 / 1e6;
    (
        f(nodes_started),
        f(wl_start.saturating_sub(nodes_started)),
        f(wl_end.saturating_sub(wl_start)),
    )
}
