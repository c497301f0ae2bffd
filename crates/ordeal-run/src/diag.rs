//! Diagnostics during a run: hang detection in the workload phase, snapshots of every node
//! (on a hang, a failure, or on request through `RUN_DIR/snapshots/requests/`), and
//! optional dumps in the user's `--dump-dir`, never elsewhere, after a free-space check.
//!
//! Files: `RUN_DIR/snapshots/NNN-REASON.json` and `.txt`, `RUN_DIR/snapshots/index.json`
//! (the list summary.json links, see docs/outputs.md).
//!
//! Request protocol (`ordeal snapshot RUN_DIR`, or any process of the run: `ORDEAL_RUN_DIR`
//! is in its environment): write `snapshots/requests/NAME.req` (its text, if any, is the
//! snapshot's label; write it under another name and rename it, so it is read complete);
//! the supervisor answers in `snapshots/requests/NAME.done` with one line, `ok TEXT_PATH`
//! or `err REASON`, and removes the request.

use crate::{io_err, Error};
use ordeal_diag::dump::{self, DumpRecord, Limits};
use ordeal_diag::snapshot::{self, Captured, ReadOptions, Snapshot};
use ordeal_diag::{procfs, HangDetector, Sample, ThreadSample};
use ordeal_experiment::Resolved;
use ordeal_hb::SnapshotLink;
use ordeal_tracer::{CaptureRequest, Engine};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub use ordeal_diag::DumpKind;

/// Where snapshots go in the run directory.
pub const SNAPSHOT_DIR: &str = "snapshots";
/// Request files of `ordeal snapshot`.
pub const REQUEST_DIR: &str = "snapshots/requests";
const INDEX: &str = "snapshots/index.json";
/// How often request files are looked for.
const REQUEST_POLL: Duration = Duration::from_millis(100);

/// Diagnostics settings of a run (CLI flags).
#[derive(Debug, Clone)]
pub struct DiagOptions {
    /// Snapshot every node when the run fails, errs or hangs.
    pub snapshot_on_failure: bool,
    /// Overrides the experiment's `hang_timeout` (`Some(None)` = off).
    pub hang_timeout: Option<Option<Duration>>,
    /// Write dumps of every process with each snapshot, into this directory.
    pub dump_dir: Option<PathBuf>,
    pub dump_kind: DumpKind,
    /// Refuse a dump that would leave less than this free.
    pub dump_reserve: u64,
    /// Refuse a dump estimated bigger than this.
    pub dump_cap: u64,
    /// Stack bytes copied per thread for unwinding.
    pub stack_bytes: usize,
}

impl Default for DiagOptions {
    fn default() -> Self {
        Self {
            snapshot_on_failure: true,
            hang_timeout: None,
            dump_dir: None,
            dump_kind: DumpKind::Minidump,
            dump_reserve: 1 << 30,
            dump_cap: 4 << 30,
            stack_bytes: 256 * 1024,
        }
    }
}

/// A run's diagnostics state (owned by the supervisor).
pub(crate) struct Diag {
    opts: DiagOptions,
    run_dir: PathBuf,
    run_name: String,
    port_owners: HashMap<u16, String>,
    detector: Option<HangDetector>,
    next_sample: Instant,
    next_request_poll: Instant,
    t0: Instant,
    links: Vec<SnapshotLink>,
}

impl Diag {
    pub(crate) fn new(r: &Resolved, opts: &DiagOptions, run_dir: &Path) -> Self {
        let timeout = opts.hang_timeout.unwrap_or(r.hang_timeout);
        let _ = std::fs::create_dir_all(run_dir.join(REQUEST_DIR));
        Self {
            opts: opts.clone(),
            run_dir: run_dir.to_path_buf(),
            run_name: run_dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "run".into()),
            port_owners: r
                .nodes
                .iter()
                .flat_map(|n| n.ports.values().map(|p| (*p, n.name.clone())))
                .collect(),
            detector: timeout.map(HangDetector::new),
            next_sample: Instant::now(),
            next_request_poll: Instant::now(),
            t0: Instant::now(),
            links: Vec::new(),
        }
    }

    /// No hang detection, no automatic snapshot, no request directory (crash recoveries).
    pub(crate) fn disabled(run_dir: &Path) -> Self {
        Self {
            opts: DiagOptions {
                snapshot_on_failure: false,
                ..DiagOptions::default()
            },
            run_dir: run_dir.to_path_buf(),
            run_name: String::new(),
            port_owners: HashMap::new(),
            detector: None,
            next_sample: Instant::now(),
            next_request_poll: Instant::now() + Duration::from_secs(1 << 30),
            t0: Instant::now(),
            links: Vec::new(),
        }
    }

    /// Called on every turn of the workload loop: samples when due; returns the hang once
    /// no traced event happened for the timeout. While `faults_in_effect` (a node paused by a
    /// fault) or a thread is held by a fault, quiet is expected: the window starts again.
    pub(crate) fn poll_hang(
        &mut self,
        tracer: &dyn Engine,
        faults_in_effect: bool,
    ) -> Option<ordeal_diag::Hang> {
        let det = self.detector.as_mut()?;
        let now = Instant::now();
        if now < self.next_sample {
            return None;
        }
        self.next_sample = now + det.sample_every();
        let (s, held) = sample(tracer);
        if faults_in_effect || held {
            det.reset();
            return None;
        }
        det.observe(now, &s)
    }

    /// Answers pending `ordeal snapshot` requests.
    pub(crate) fn poll_requests(&mut self, tracer: &dyn Engine) {
        let now = Instant::now();
        if now < self.next_request_poll {
            return;
        }
        self.next_request_poll = now + REQUEST_POLL;
        let dir = self.run_dir.join(REQUEST_DIR);
        let Ok(rd) = std::fs::read_dir(&dir) else {
            return;
        };
        let mut reqs: Vec<PathBuf> = rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "req"))
            .collect();
        reqs.sort();
        for req in reqs {
            let label = std::fs::read_to_string(&req).unwrap_or_default();
            let _ = std::fs::remove_file(&req);
            let label = label.trim().chars().take(200).collect::<String>();
            let reply = match self.snapshot(tracer, "request", &label) {
                Ok(link) => format!("ok {}\n", self.run_dir.join(&link.text).display()),
                Err(e) => format!("err {e}\n"),
            };
            let done = req.with_extension("done");
            let tmp = req.with_extension("done.tmp");
            if std::fs::write(&tmp, reply).is_ok() {
                let _ = std::fs::rename(&tmp, &done);
            }
        }
    }

    /// Takes a snapshot of every node (with dumps when asked); returns its link.
    pub(crate) fn snapshot(
        &mut self,
        tracer: &dyn Engine,
        reason: &str,
        detail: &str,
    ) -> Result<SnapshotLink, Error> {
        let n = self.links.len() + 1;
        let base = format!("{n:03}-{reason}");
        let dir = self.run_dir.join(SNAPSHOT_DIR);
        std::fs::create_dir_all(&dir).map_err(io_err(format!("creating {}", dir.display())))?;
        let at_ms = self.t0.elapsed().as_millis() as u64;
        let mut snap = Snapshot::new(reason, detail, at_ms);
        // What every thread waits in, before the capture perturbs it.
        let before: HashMap<i32, HashMap<i32, snapshot::ThreadProc>> =
            match tracer.capture(CaptureRequest {
                registers: false,
                ..CaptureRequest::default()
            }) {
                Ok(c) => {
                    let mut pids: Vec<i32> = c.threads.iter().map(|t| t.tgid).collect();
                    pids.extend(c.untraced.iter().map(|u| u.1));
                    pids.sort_unstable();
                    pids.dedup();
                    pids.into_iter()
                        .map(|p| (p, snapshot::read_threads(p)))
                        .collect()
                }
                Err(_) => HashMap::new(),
            };
        // Dumps next, each process stopped for its own dump only.
        if let Some(dd) = self.opts.dump_dir.clone() {
            snap.dumps = self.dumps(tracer, &dd, &base);
        }
        let cap = tracer.capture(CaptureRequest {
            node: None,
            registers: true,
            stack_bytes: self.opts.stack_bytes,
            timeout: Duration::from_millis(500),
        })?;
        snap.max_pause_us = cap.max_pause.as_micros() as u64;
        let mut by_proc: Vec<(String, i32, HashMap<i32, Captured>)> = Vec::new();
        for t in cap.threads {
            let c = Captured {
                tracer_state: t.tracer_state,
                in_call: t.in_call,
                regs: t.regs,
                stack: t.stack,
                note: t.note,
            };
            match by_proc.iter_mut().find(|(_, p, _)| *p == t.tgid) {
                Some((_, _, m)) => {
                    m.insert(t.tid, c);
                }
                None => by_proc.push((t.node, t.tgid, HashMap::from([(t.tid, c)]))),
            }
        }
        for (node, pid) in cap.untraced {
            by_proc.push((node, pid, HashMap::new()));
        }
        let name = ordeal_diag::syscalls::name;
        let opts = ReadOptions {
            syscall_name: &name,
            stacks: true,
        };
        let procs: Vec<(String, snapshot::ProcSnap)> = by_proc
            .into_iter()
            .filter(|(_, pid, _)| Path::new(&format!("/proc/{pid}")).exists())
            .map(|(node, pid, m)| {
                let p = snapshot::read_process(pid, &m, before.get(&pid), &opts);
                (node, p)
            })
            .collect();
        snap.nodes = snapshot::group_nodes(procs);
        snapshot::resolve_peers(&mut snap, &self.port_owners);
        let json_rel = format!("{SNAPSHOT_DIR}/{base}.json");
        let text_rel = format!("{SNAPSHOT_DIR}/{base}.txt");
        let json = serde_json::to_vec_pretty(&snap)?;
        std::fs::write(self.run_dir.join(&json_rel), json)
            .map_err(io_err(format!("writing {json_rel}")))?;
        std::fs::write(self.run_dir.join(&text_rel), snap.to_text())
            .map_err(io_err(format!("writing {text_rel}")))?;
        let link = SnapshotLink {
            reason: reason.to_string(),
            at_ms,
            json: json_rel,
            text: text_rel,
            dumps: snap.dumps.iter().map(|d| d.to_string()).collect(),
        };
        self.links.push(link.clone());
        let index = serde_json::to_vec_pretty(&self.links)?;
        std::fs::write(self.run_dir.join(INDEX), index)
            .map_err(io_err(format!("writing {INDEX}")))?;
        Ok(link)
    }

    fn dumps(&self, tracer: &dyn Engine, dir: &Path, base: &str) -> Vec<DumpRecord> {
        let list = match tracer.capture(CaptureRequest {
            registers: false,
            ..CaptureRequest::default()
        }) {
            Ok(c) => c,
            Err(_) => return Vec::new(),
        };
        let mut procs: Vec<(String, i32)> = list
            .threads
            .iter()
            .map(|t| (t.node.clone(), t.tgid))
            .collect();
        procs.sort_by_key(|p| p.1);
        procs.dedup_by_key(|p| p.1);
        let limits = Limits {
            reserve: self.opts.dump_reserve,
            cap: self.opts.dump_cap,
        };
        let kind = self.opts.dump_kind;
        procs
            .into_iter()
            .map(|(node, pid)| {
                let ext = match kind {
                    DumpKind::Core => "core",
                    DumpKind::Minidump => "mini.core",
                };
                let path = dir.join(format!("{}-{base}-{node}-{pid}.{ext}", self.run_name));
                dump_one(tracer, &node, pid, kind, &path, limits)
            })
            .collect()
    }

    /// Whether an automatic snapshot (`failure`, `hang`) is wanted.
    pub(crate) fn wants_snapshot(&self, reason: &str) -> bool {
        reason == "request" || self.opts.snapshot_on_failure
    }

    /// Every snapshot taken so far.
    pub(crate) fn links(&self) -> &[SnapshotLink] {
        &self.links
    }
}

/// Dumps one process: estimate, free-space check, stop, registers, write, continue.
fn dump_one(
    tracer: &dyn Engine,
    node: &str,
    pid: i32,
    kind: DumpKind,
    path: &Path,
    limits: Limits,
) -> DumpRecord {
    let maps = procfs::maps(pid);
    let threads = procfs::tasks(pid).len() as u64;
    let estimated = match kind {
        DumpKind::Core => dump::estimate(pid, kind, &maps, &[]) + threads * 512,
        DumpKind::Minidump => threads * (dump::MINI_STACK_BYTES + 512) + 4096,
    };
    let mut rec = DumpRecord {
        node: node.to_string(),
        pid,
        kind,
        path: None,
        estimated_bytes: estimated,
        written_bytes: 0,
        pause_ms: 0.0,
        pause_ms_per_gib: None,
        refused: None,
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    if let Err(why) = dump::check_space(dir, estimated, limits) {
        rec.refused = Some(why.to_string());
        return rec;
    }
    let paused = dump::Paused::stop(pid, Duration::from_secs(1));
    let cap = tracer.capture(CaptureRequest {
        node: Some(node.to_string()),
        registers: true,
        stack_bytes: 0,
        timeout: Duration::from_millis(500),
    });
    let threads: Vec<dump::DumpThread> = cap
        .map(|c| {
            c.threads
                .into_iter()
                .filter(|t| t.tgid == pid)
                .filter_map(|t| {
                    Some(dump::DumpThread {
                        tid: t.tid,
                        regs: t.regs?,
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    let r = dump::write(path, pid, kind, &threads);
    let pause = paused.started.elapsed();
    drop(paused);
    rec.pause_ms = pause.as_secs_f64() * 1000.0;
    match r {
        Ok(bytes) => {
            rec.path = Some(path.to_path_buf());
            rec.written_bytes = bytes;
            // Per GiB only where the fixed costs (stopping, notes) do not dominate.
            if bytes >= 16 << 20 {
                rec.pause_ms_per_gib = Some(rec.pause_ms * (1u64 << 30) as f64 / bytes as f64);
            }
        }
        Err(e) => {
            let _ = std::fs::remove_file(path);
            rec.refused = Some(format!("failed: {e}"));
        }
    }
    rec
}

/// One hang-detection sample: the event count and every thread's state and CPU time; and
/// whether a fault holds a thread.
fn sample(tracer: &dyn Engine) -> (Sample, bool) {
    // The count first: an event after it shows up next time, never hidden by this sample.
    let events = tracer.events_so_far();
    let Ok(cap) = tracer.capture(CaptureRequest {
        registers: false,
        ..CaptureRequest::default()
    }) else {
        let s = Sample {
            events,
            threads: Vec::new(),
        };
        return (s, false);
    };
    let held = cap
        .threads
        .iter()
        .any(|t| t.tracer_state.starts_with("held"));
    let name = ordeal_diag::syscalls::name;
    let mut ids: Vec<(String, i32, i32)> = cap
        .threads
        .iter()
        .map(|t| (t.node.clone(), t.tgid, t.tid))
        .collect();
    for (node, pid) in cap.untraced {
        ids.extend(
            procfs::tasks(pid)
                .into_iter()
                .map(|t| (node.clone(), pid, t)),
        );
    }
    let threads = ids
        .into_iter()
        .filter_map(|(node, pid, tid)| {
            let st = procfs::task_stat(pid, tid)?;
            let syscall = procfs::task_syscall(pid, tid)
                .and_then(|s| snapshot::describe_syscall(&s, &name).0);
            Some(ThreadSample {
                node,
                pid,
                tid,
                comm: st.comm,
                state: st.state,
                cpu_ticks: st.cpu_ticks,
                syscall,
                wchan: procfs::task_wchan(pid, tid),
            })
        })
        .collect();
    (Sample { events, threads }, held)
}

/// The snapshots recorded in `RUN_DIR/snapshots/index.json` (for summary.json).
pub fn links(run_dir: &Path) -> Vec<SnapshotLink> {
    std::fs::read(run_dir.join(INDEX))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// Asks the supervisor of the run in `run_dir` for a snapshot (see the module doc) and
/// waits for it; returns the path of its text form.
pub fn request_snapshot(run_dir: &Path, label: &str, timeout: Duration) -> Result<PathBuf, Error> {
    let dir = run_dir.join(REQUEST_DIR);
    if !dir.is_dir() {
        return Err(Error::NotSnapshotting(run_dir.to_path_buf()));
    }
    if run_dir.join("summary.json").exists() {
        return Err(Error::RunEnded(run_dir.to_path_buf()));
    }
    let name = format!(
        "{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    );
    let tmp = dir.join(format!("{name}.tmp"));
    let req = dir.join(format!("{name}.req"));
    let done = dir.join(format!("{name}.done"));
    std::fs::write(&tmp, label).map_err(io_err(format!("writing {}", tmp.display())))?;
    std::fs::rename(&tmp, &req).map_err(io_err(format!("writing {}", req.display())))?;
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(text) = std::fs::read_to_string(&done) {
            let _ = std::fs::remove_file(&done);
            let line = text.trim();
            return match line.strip_prefix("ok ") {
                Some(p) => Ok(PathBuf::from(p)),
                None => Err(Error::SnapshotFailed(
                    line.strip_prefix("err ").unwrap_or(line).to_string(),
                )),
            };
        }
        if run_dir.join("summary.json").exists() || Instant::now() >= deadline {
            let _ = std::fs::remove_file(&req);
            return Err(if Instant::now() >= deadline {
                Error::NoAnswer(timeout)
            } else {
                Error::EndedBeforeSnapshot
            });
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Parses a size (`512`, `64K`, `2GiB`: see [`ordeal_toml::parse_size`]).
pub fn parse_size(s: &str) -> Result<u64, Error> {
    Ok(ordeal_toml::parse_size(s)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("512").unwrap(), 512);
        assert_eq!(parse_size("64K").unwrap(), 64 << 10);
        assert_eq!(parse_size("2GiB").unwrap(), 2 << 30);
        assert_eq!(parse_size("1M").unwrap(), 1 << 20);
        assert_eq!(
            parse_size("lots").unwrap_err().to_string(),
            "invalid size `lots`: expected a number with an optional unit (B, K/KiB, M/MiB, \
             G/GiB, T/TiB), e.g. 512MiB"
        );
        assert!(parse_size("99999999999T").is_err());
    }
}
