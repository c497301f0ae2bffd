//! What a run leaves besides its trace: the trace's header, the happens-before graph and
//! summary rebuilt from `trace.jsonl` in bounded memory (all outputs, or `summary.json` alone
//! for campaigns), and `schedule.applied.toml` read back from the trace.

use crate::{diag, faults, io_err, rundir, Error};
use ordeal_events::{Header, NodeInfo, TraceReader, SCHEMA_VERSION};
use ordeal_experiment::Resolved;
use ordeal_hb::{EngineInfo, FaultRecord, RunFacts, Summary, Verdict};
use std::fs::File;
use std::path::Path;

/// The trace header of a run of `r` starting now: every participant with its role and ports.
pub(crate) fn header_for(r: &Resolved) -> Header {
    let mut nodes: Vec<NodeInfo> = r
        .nodes
        .iter()
        .map(|n| NodeInfo {
            name: n.name.clone(),
            role: "node".into(),
            ports: n.ports.values().copied().collect(),
            protocol: n.protocol.clone(),
        })
        .collect();
    nodes.extend(r.workloads.iter().map(|w| NodeInfo {
        name: w.name.clone(),
        role: "workload".into(),
        ports: vec![],
        protocol: None,
    }));
    nodes.extend(r.check.iter().map(|c| NodeInfo {
        name: c.name.clone(),
        role: "check".into(),
        ports: vec![],
        protocol: None,
    }));
    Header {
        schema: "ordeal-trace".into(),
        version: SCHEMA_VERSION,
        experiment: r.name.clone(),
        started_at: rundir::rfc3339_now(),
        nodes,
    }
}

/// `RUN_DIR/calls.jsonl` from `RUN_DIR/trace.jsonl`: every connection decoded.
pub(crate) fn write_calls(run_dir: &Path) -> Result<ordeal_calls::Decoded, Error> {
    ordeal_calls::write_calls(
        &run_dir.join("trace.jsonl"),
        &run_dir.join(ordeal_calls::CALLS_FILE),
    )
    .map_err(|e| Error::Usage(format!("writing the call log: {e}")))
}

/// Rebuilds graph, summary, the failure picture and every output from `RUN_DIR/trace.jsonl`
/// with `verdict` and the `faults` that fired; `calls` is the call log's pass when it was made already.
pub fn write_outputs(
    run_dir: &Path,
    verdict: Verdict,
    engine: Option<EngineInfo>,
    faults: Vec<FaultRecord>,
    max_dot_events: usize,
    calls: Option<ordeal_calls::Decoded>,
) -> Result<Summary, Error> {
    let calls = match calls {
        Some(c) => c,
        None => write_calls(run_dir)?,
    };
    // Streamed in bounded memory: no output of a run holds every event.
    let labels = calls.labels;
    let facts = RunFacts {
        verdict,
        snapshots: diag::links(run_dir),
        engine,
        labels: labels.clone(),
        faults,
    };
    let out = ordeal_hb::write_trace_outputs(
        &run_dir.join("trace.jsonl"),
        run_dir,
        facts,
        max_dot_events,
    )
    .map_err(io_err(format!("writing outputs in {}", run_dir.display())))?;
    ordeal_hb::write_failure_view(run_dir, &out.summary, &labels).map_err(io_err(format!(
        "writing {} in {}",
        ordeal_hb::FAILURE_SVG,
        run_dir.display()
    )))?;
    Ok(out.summary)
}

/// Only `summary.json`, from `RUN_DIR/trace.jsonl` with `verdict` (see
/// [`crate::RunOptions::summary_only`]).
pub(crate) fn write_summary_only(
    run_dir: &Path,
    verdict: Verdict,
    engine: Option<EngineInfo>,
    faults: Vec<FaultRecord>,
) -> Result<Summary, Error> {
    let mut summary = ordeal_hb::summarize_trace(&run_dir.join("trace.jsonl"), verdict)
        .map_err(io_err(format!("summarizing {}", run_dir.display())))?;
    summary.snapshots = diag::links(run_dir);
    summary.engine = engine;
    summary.faults = faults;
    let path = run_dir.join("summary.json");
    let file = File::create(&path).map_err(io_err(format!("creating {}", path.display())))?;
    ordeal_hb::write_summary_json(&summary, file)
        .map_err(io_err(format!("writing {}", path.display())))?;
    Ok(summary)
}

/// `ordeal graph RUN_DIR`: outputs again from the trace, keeping the recorded verdict (its
/// cause too), engine and faults.
pub fn rebuild(run_dir: &Path, max_dot_events: usize) -> Result<Summary, Error> {
    let recorded = std::fs::read(run_dir.join("summary.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<Summary>(&b).ok());
    let (verdict, engine, faults) = match recorded {
        Some(s) => (s.verdict, s.engine, s.faults),
        None => (
            Verdict::error(vec!["no verdict recorded (summary.json missing)".into()]),
            None,
            Vec::new(),
        ),
    };
    let mut summary = write_outputs(run_dir, verdict, engine, faults, max_dot_events, None)?;
    let trace = run_dir.join("trace.jsonl");
    if let Some(line) = cut_line(&trace).map_err(io_err(format!("reading {}", trace.display())))? {
        // The reader stops before a cut last line (a writer killed mid-line): said, not
        // hidden.
        summary.warnings.push(format!(
            "trace.jsonl:{line}: the last line is cut short (its writer stopped mid-line): \
             the trace ends at line {}",
            line - 1
        ));
        let path = run_dir.join("summary.json");
        let file = File::create(&path).map_err(io_err(format!("creating {}", path.display())))?;
        ordeal_hb::write_summary_json(&summary, file)
            .map_err(io_err(format!("writing {}", path.display())))?;
    }
    Ok(summary)
}

/// The number (from 1) of the last line of `path` when it does not end with a newline: a
/// line cut short. One pass over the file, counting newlines.
pub(crate) fn cut_line(path: &Path) -> std::io::Result<Option<u64>> {
    use std::io::Read;
    let mut f = File::open(path)?;
    let mut buf = vec![0u8; 1 << 16];
    let (mut newlines, mut last) = (0u64, None);
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        newlines += buf[..n].iter().filter(|&&b| b == b'\n').count() as u64;
        last = Some(buf[n - 1]);
    }
    Ok(match last {
        Some(b) if b != b'\n' => Some(newlines + 1),
        _ => None,
    })
}

/// `schedule.applied.toml`: what fired where, read back from the trace (said live as it
/// fired, see `fired`).
pub(crate) fn write_applied(run_dir: &Path, s: &ordeal_faults::Schedule) -> Result<(), Error> {
    // Only the marked events matter: streamed, so a long run's trace is never held whole.
    let mut marked = Vec::new();
    for e in TraceReader::open(&run_dir.join("trace.jsonl"))? {
        let e = e?;
        if e.fault.is_some() {
            marked.push(e);
        }
    }
    let applied = faults::applied(s, &marked);
    ordeal_faults::write_applied_toml(&applied, run_dir.join(ordeal_faults::APPLIED_FILE))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_last_line_without_its_newline_is_found_with_its_number() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("t.jsonl");
        std::fs::write(&p, "a\nb\n{\"seq\":").unwrap();
        assert_eq!(cut_line(&p).unwrap(), Some(3));
        std::fs::write(&p, "a\nb\n").unwrap();
        assert_eq!(cut_line(&p).unwrap(), None);
        std::fs::write(&p, "").unwrap();
        assert_eq!(cut_line(&p).unwrap(), None);
        // Across read buffers.
        let long = "x".repeat(70_000);
        std::fs::write(&p, format!("{long}\n{long}")).unwrap();
        assert_eq!(cut_line(&p).unwrap(), Some(2));
    }
}
