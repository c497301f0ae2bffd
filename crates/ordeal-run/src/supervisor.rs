//! The supervisor's phases over one started engine: start every node, wait until each is
//! ready, run the workloads (time-triggered faults fired here, lasting faults ended on
//! time), the recovery phase (faults still in effect end before the check), the check, the
//! verdict; and the graceful stop afterwards.

use crate::faults::MarkOn;
use crate::{checkpoints, diag, faults, roles, Error};
use ordeal_events::FaultMark;
use ordeal_experiment::{Resolved, StartAfter};
use ordeal_hb::{Status, Verdict};
use ordeal_tracer::{Engine, ExitStatus, Notice, SpawnSpec};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How often conditions are polled while waiting (readiness, exits, cancellation).
pub(crate) const POLL: Duration = Duration::from_millis(10);
/// How often a long workload phase reports progress.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// Progress lines on stderr, stamped with the time since the run began.
pub(crate) struct Progress {
    pub(crate) on: bool,
    pub(crate) t0: Instant,
}

impl Progress {
    pub(crate) fn new(on: bool) -> Self {
        Self {
            on,
            t0: Instant::now(),
        }
    }

    pub(crate) fn say(&self, msg: impl AsRef<str>) {
        if self.on {
            let t = self.t0.elapsed().as_secs_f64();
            eprintln!("[{t:7.3}s] {}", msg.as_ref());
        }
    }
}

/// How one started process ended (or not).
#[derive(Debug, Clone)]
pub(crate) struct Started {
    pub(crate) name: String,
    pub(crate) role: &'static str,
    pub(crate) pid: i32,
    pub(crate) exit: Option<ExitStatus>,
    pub(crate) exited_at: Option<Instant>,
    /// Whether this incarnation was started again after a crash fault.
    pub(crate) restarted: bool,
    /// Whether a fired fault explains how it ended (a crash's SIGKILL): not a failure of the
    /// run.
    pub(crate) exit_explained: bool,
}

/// One run's supervisor over its engine.
pub(crate) struct Supervisor<'a> {
    pub(crate) engine: &'a dyn Engine,
    /// CLOCK_MONOTONIC ns of the trace's time 0.
    pub(crate) origin_ns: u64,
    pub(crate) ckpt: &'a checkpoints::Checkpoints,
    pub(crate) shared: &'a faults::Shared,
    pub(crate) net: Option<&'a ordeal_netns::Network>,
    pub(crate) schedule: Option<&'a ordeal_faults::Schedule>,
    pub(crate) started: Vec<Started>,
    pub(crate) run_dir: &'a Path,
    pub(crate) progress: &'a Progress,
    pub(crate) cancel: &'a AtomicBool,
    pub(crate) diag: diag::Diag,
    /// The experiment's role probes (`[roles]`), if it has any.
    pub(crate) prober: Option<&'a roles::Prober>,
}

/// Why waiting for a node stopped short of its ready condition.
pub(crate) enum Stop {
    Cancelled,
    Timeout,
    /// A crash fault killed the node while it was starting.
    Crashed,
}

impl Supervisor<'_> {
    pub(crate) fn drive(&mut self, r: &Resolved) -> Verdict {
        let deadline = Instant::now() + r.timeout;
        let verdict = match self.phases(r, deadline) {
            Ok(v) => v,
            Err(e) => Verdict::error(vec![e.to_string()]),
        };
        let failed = matches!(verdict.status, Status::Fail | Status::Error);
        if failed && !self.cancel.load(Ordering::SeqCst) && self.diag.links().is_empty() {
            self.snapshot_into(&verdict, "failure");
        }
        verdict
    }

    /// Takes the snapshots `snapshot` faults asked for.
    fn scheduled_snapshots(&mut self) {
        for name in faults::take_snapshots(self.shared) {
            match self.diag.snapshot(self.engine, "schedule", &name) {
                Ok(l) => self
                    .progress
                    .say(format!("fault {name}: snapshot {}", l.text)),
                Err(e) => self
                    .progress
                    .say(format!("fault {name}: snapshot failed: {e}")),
            }
        }
    }

    /// Snapshots every node (linked from summary.json's `snapshots`, not from the verdict's
    /// reasons, which stay comparable between runs).
    fn snapshot_into(&mut self, verdict: &Verdict, reason: &str) {
        if !self.diag.wants_snapshot(reason) {
            return;
        }
        let detail = verdict.reasons.first().cloned().unwrap_or_default();
        match self.diag.snapshot(self.engine, reason, &detail) {
            Ok(l) => self
                .progress
                .say(format!("snapshot of every node: {}", l.text)),
            Err(e) => self.progress.say(format!("snapshot failed: {e}")),
        }
    }

    fn phases(&mut self, r: &Resolved, deadline: Instant) -> Result<Verdict, Error> {
        for n in &r.nodes {
            let env = self.env_for(&n.name, &n.env);
            self.start(
                &n.name, "node", &n.program, &n.argv, env, &n.cwd, n.trace, None,
            )?;
        }
        self.start_workloads(r, StartAfter::Started)?;
        for n in &r.nodes {
            if let Some(check) = &n.ready {
                let t0 = Instant::now();
                let until = (t0 + n.ready_timeout).min(deadline);
                match self.wait_ready(&n.name, check, &n.cwd, until, HashMap::new())? {
                    Ok(()) => self.progress.say(format!(
                        "{} ready after {:.3}s",
                        n.name,
                        t0.elapsed().as_secs_f64()
                    )),
                    Err(Stop::Cancelled) => return Ok(interrupted()),
                    Err(Stop::Crashed) => {
                        if !self.await_restart(r, &n.name, deadline)? {
                            return Ok(interrupted());
                        }
                    }
                    Err(Stop::Timeout) => {
                        return Err(Error::NotReady {
                            node: n.name.clone(),
                            within: until.saturating_duration_since(t0),
                            why: crate::readiness::not_ready_why(
                                check,
                                until < t0 + n.ready_timeout,
                            ),
                            tail: self.tail_of(&n.name),
                        })
                    }
                }
            }
        }
        // Who holds each role once the system is up: what the triggers naming a role count.
        self.find_roles("start");
        self.start_workloads(r, StartAfter::Ready)?;
        if std::env::var_os("ORDEAL_TEST_PANIC").is_some() {
            // Test hook: proves that a panic mid-run still leaves no process behind.
            panic!("ORDEAL_TEST_PANIC is set");
        }
        // Workload phase: until every workload has exited.
        let workload_start = Instant::now();
        let mut time_faults = self.schedule.map(faults::TimeFaults::new);
        let mut next_report = Instant::now() + PROGRESS_EVERY;
        loop {
            if Instant::now() >= next_report {
                next_report += PROGRESS_EVERY;
                self.progress.say(format!(
                    "workloads running, {} events traced",
                    self.engine.events_so_far()
                ));
            }
            self.drain_notices();
            if let Some(tf) = time_faults.as_mut() {
                for f in tf.due(workload_start.elapsed()) {
                    self.fire_fault(&f, None)?;
                }
            }
            self.fire_deferred()?;
            self.end_lasting(false, Some((r, deadline)))?;
            self.diag.poll_requests(self.engine);
            self.scheduled_snapshots();
            let pending: Vec<&Started> = self
                .started
                .iter()
                .filter(|s| s.role == "workload" && s.exit.is_none())
                .collect();
            if pending.is_empty() {
                break;
            }
            if self.cancel.load(Ordering::SeqCst) {
                return Ok(interrupted());
            }
            let quiet = faults::quiet_expected(self.shared);
            if let Some(h) = self.diag.poll_hang(self.engine, quiet) {
                self.progress.say(h.reason());
                let v = Verdict::hung(vec![h.reason()]);
                self.snapshot_into(&v, "hang");
                return Ok(v);
            }
            if Instant::now() >= deadline {
                let names: Vec<String> = pending.iter().map(|s| s.name.clone()).collect();
                return Ok(Verdict::fail(vec![format!(
                    "timeout: the run's {:?} passed with {} still running",
                    r.timeout,
                    names.join(", ")
                )]));
            }
            self.wait_notice(POLL);
        }
        // A fault aimed at a role that fired at one of the last calls still acts.
        self.fire_deferred()?;
        // Recovery phase (Jepsen's final heal): faults still in progress when the workloads end
        // complete before the check, so the check always sees the system recovered.
        while faults::recovery_pending(self.shared) {
            self.drain_notices();
            if let Err(e) = self.end_lasting(true, Some((r, deadline))) {
                // A node that does not come back after the workloads ended cannot hide what
                // they found: their failures stay the verdict, the recovery's error a reason.
                let mut reasons = self.workload_failures();
                if reasons.is_empty() {
                    return Err(e);
                }
                reasons.push(e.to_string());
                return Ok(Verdict::fail(reasons));
            }
            self.diag.poll_requests(self.engine);
            self.scheduled_snapshots();
            if self.cancel.load(Ordering::SeqCst) {
                return Ok(interrupted());
            }
            if Instant::now() >= deadline {
                return Ok(Verdict::fail(vec![format!(
                    "timeout: the run's {:?} passed while restarting or resuming nodes after the workloads",
                    r.timeout
                )]));
            }
            self.wait_notice(POLL);
        }
        self.drain_notices();
        self.find_roles("end");
        let mut reasons = Vec::new();
        if let Some(c) = &r.check {
            match self.run_check(r, c, deadline)? {
                Some(ExitStatus::Code(0)) => {}
                Some(st) => reasons.push(format!(
                    "check failed ({st}){}",
                    self.tail_of(ordeal_experiment::CHECK_NAME)
                )),
                None => return Ok(interrupted()),
            }
        }
        let workloads = self.workload_failures();
        for s in &self.started {
            match (s.role, s.exit) {
                ("workload", _) => {}
                ("node", Some(_)) if s.exit_explained => {}
                ("node", Some(st)) => {
                    reasons.push(format!("node {} exited unexpectedly: {st}", s.name))
                }
                _ => {}
            }
        }
        reasons.extend(workloads);
        reasons.extend(self.ckpt.reasons());
        Ok(if reasons.is_empty() {
            Verdict::pass()
        } else {
            Verdict::fail(reasons)
        })
    }

    /// How the workloads that did not succeed ended.
    fn workload_failures(&self) -> Vec<String> {
        self.started
            .iter()
            .filter(|s| s.role == "workload")
            .filter_map(|s| match s.exit {
                Some(ExitStatus::Code(0)) | None => None,
                Some(st) => Some(format!("workload {} ended: {st}", s.name)),
            })
            .collect()
    }

    /// The inherited environment, the experiment's additions, and ordeal's own variables.
    pub(crate) fn env_for(
        &self,
        name: &str,
        extra: &BTreeMap<String, String>,
    ) -> BTreeMap<String, String> {
        let mut env: BTreeMap<String, String> = std::env::vars().collect();
        env.extend(extra.clone());
        env.insert("ORDEAL_NODE".into(), name.to_string());
        env.insert("ORDEAL_RUN_DIR".into(), self.run_dir.display().to_string());
        // Recording clients put their times on the trace's clock (ordeal-history).
        env.insert(
            ordeal_history::workload::CLOCK_ORIGIN_ENV.into(),
            self.origin_ns.to_string(),
        );
        let socket = self.ckpt.socket().display().to_string();
        env.insert(ordeal_state::service::ENV.into(), socket);
        if self.net.is_some() {
            // The recording clients may then reach the run's own addresses (ordeal-history).
            let [a, b, c] = ordeal_netns::SUBNET;
            if let Ok(own) = std::fs::read_link("/proc/self/ns/net") {
                env.insert(
                    ordeal_history::workload::NETNS_SUBNET_ENV.into(),
                    format!("{a}.{b}.{c}.0/24 outside {}", own.display()),
                );
            }
        }
        env
    }

    fn start_workloads(&mut self, r: &Resolved, when: StartAfter) -> Result<(), Error> {
        for w in r.workloads.iter().filter(|w| w.after == when) {
            let env = self.env_for(&w.name, &w.env);
            self.start(
                &w.name, "workload", &w.program, &w.argv, env, &w.cwd, w.trace, None,
            )?;
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn start(
        &mut self,
        name: &str,
        role: &'static str,
        program: &Path,
        argv: &[String],
        env: BTreeMap<String, String>,
        cwd: &Path,
        traced: bool,
        marker: Option<FaultMark>,
    ) -> Result<(), Error> {
        let log = |ext: &str| -> Result<std::os::fd::OwnedFd, Error> {
            let p = self.run_dir.join("logs").join(format!("{name}.{ext}"));
            // Appending: a node restarted after a crash continues its logs.
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&p)
                .map(Into::into)
                .map_err(crate::io_err(format!("creating {}", p.display())))
        };
        let spec = SpawnSpec {
            label: name.to_string(),
            program: program.to_owned(),
            argv: argv.to_vec(),
            env: env.into_iter().collect(),
            cwd: cwd.to_owned(),
            stdout: log("stdout")?,
            stderr: log("stderr")?,
            traced,
            marker,
            netns: self.net.and_then(|n| match role {
                // The check talks to every node: it runs in the hub, which reaches them all.
                "check" => Some(n.hub_netns()),
                _ => n.netns(name),
            }),
        };
        let pid = self.engine.spawn(spec)?;
        self.progress.say(format!(
            "started {role} {name} (pid {pid}): {}",
            argv.join(" ")
        ));
        self.started.push(Started {
            name: name.to_string(),
            role,
            pid,
            exit: None,
            exited_at: None,
            restarted: false,
            exit_explained: false,
        });
        Ok(())
    }

    fn record_notice(&mut self, n: Notice) {
        let Notice::Exited {
            pid, status, root, ..
        } = n;
        if !root {
            return;
        }
        if let Some(s) = self.started.iter_mut().find(|s| s.pid == pid) {
            s.exit = Some(status);
            s.exited_at = Some(Instant::now());
            s.exit_explained =
                s.role == "node" && faults::explains_exit(self.shared, &s.name, status);
            self.progress
                .say(format!("{} {} ended: {status}", s.role, s.name));
        }
    }

    pub(crate) fn drain_notices(&mut self) {
        while let Ok(n) = self.engine.notices().try_recv() {
            self.record_notice(n);
        }
    }

    pub(crate) fn wait_notice(&mut self, d: Duration) {
        if let Ok(n) = self.engine.notices().recv_timeout(d) {
            self.record_notice(n);
        }
    }

    /// Runs the experiment's `[check]` (untraced) with the run's ports and data dirs in its
    /// environment; returns how it ended (None: cancelled).
    pub(crate) fn run_check(
        &mut self,
        r: &Resolved,
        c: &ordeal_experiment::WorkloadSpec,
        deadline: Instant,
    ) -> Result<Option<ExitStatus>, Error> {
        let mut env = self.env_for(&c.name, &c.env);
        for (name, port) in &r.ports {
            env.insert(format!("ORDEAL_PORT_{}", env_key(name)), port.to_string());
        }
        for (name, host) in &r.hosts {
            env.insert(format!("ORDEAL_HOST_{}", env_key(name)), host.clone());
        }
        for n in &r.nodes {
            if let Some(d) = &n.data_dir {
                env.insert(
                    format!("ORDEAL_DATA_DIR_{}", env_key(&n.name)),
                    d.path.display().to_string(),
                );
            }
        }
        self.start(
            &c.name, "check", &c.program, &c.argv, env, &c.cwd, false, None,
        )?;
        loop {
            self.drain_notices();
            if let Some(st) = self.exit_of(&c.name) {
                return Ok(Some(st));
            }
            if self.cancel.load(Ordering::SeqCst) {
                return Ok(None);
            }
            if Instant::now() >= deadline {
                return Err(Error::CheckTimeout { timeout: r.timeout });
            }
            self.wait_notice(POLL);
        }
    }

    /// Finds every role's holders among the running nodes (see [`roles`]), for the triggers
    /// naming a role and the record.
    fn find_roles(&mut self, why: &str) {
        let Some(prober) = self.prober else { return };
        let found = roles::find_all(prober, &self.probed_nodes(), why);
        for (role, nodes) in found {
            let list = if nodes.is_empty() {
                "no node".to_string()
            } else {
                nodes.join(", ")
            };
            self.progress.say(format!("role {role} ({why}): {list}"));
            if nodes.is_empty() {
                // Looked for again by the watch, if a trigger counts its calls.
                if let Ok(mut p) = self.shared.lock() {
                    p.roles_moved = true;
                }
            }
            roles::publish(self.shared, &role, nodes);
        }
    }

    /// The nodes a role probe asks: running, neither crashed by a fault (its end may not be
    /// known yet) nor stopped by a pause.
    fn probed_nodes(&self) -> Vec<String> {
        let mut nodes: Vec<String> = Vec::new();
        for s in self.started.iter().filter(|s| s.role == "node") {
            let n = &s.name;
            let out = faults::kept_down(self.shared, n) || faults::stopped(self.shared, n);
            if self.exit_of(n).is_none() && !out && !nodes.contains(n) {
                nodes.push(n.clone());
            }
        }
        nodes
    }

    /// Applies the faults aimed at a role that fired at calls.
    fn fire_deferred(&mut self) -> Result<(), Error> {
        for d in faults::take_deferred(self.shared) {
            self.fire_fault(&d.fault, Some(&d.fired_in))?;
        }
        Ok(())
    }

    /// Applies a node-level fault that fired here (a time trigger) or at a call in a node
    /// (`fired_in`) and is aimed at a role: the role's holder is found first (a probe, with
    /// the role's `timeout` for a holder to show), then the fault acts on it like one naming
    /// it. None found: not fired.
    pub(crate) fn fire_fault(
        &mut self,
        f: &ordeal_faults::Fault,
        fired_in: Option<&str>,
    ) -> Result<(), Error> {
        let Some(role) = f.target_role() else {
            return self.fire_node_fault(f);
        };
        let Some(prober) = self.prober else {
            // Refused before the run starts (roles::check_roles); kept safe anyway.
            return Ok(());
        };
        let candidates = || self.probed_nodes();
        let why = format!("fault {}", f.name);
        let holders = prober.find(role, &candidates, &why, prober.patience(role), self.cancel);
        roles::publish(self.shared, role, holders.clone());
        match roles::chosen(&holders, fired_in) {
            Some(node) => self.fire_node_fault_as(&f.aimed_at(&node), Some(role)),
            None => {
                self.progress.say(format!(
                    "fault {}: not fired, no running node holds role {role}",
                    f.name
                ));
                Ok(())
            }
        }
    }

    /// Applies a node-level fault decided here (a time trigger) rather than at a call: what
    /// [`faults::node_fault`] asks, a signal and a mark on the node's root process.
    pub(crate) fn fire_node_fault(&mut self, f: &ordeal_faults::Fault) -> Result<(), Error> {
        self.fire_node_fault_as(f, None)
    }

    /// [`Supervisor::fire_node_fault`]; `role`: the role it was aimed at, said in its mark
    /// (`crash e2 (role leader)`).
    fn fire_node_fault_as(
        &mut self,
        f: &ordeal_faults::Fault,
        role: Option<&str>,
    ) -> Result<(), Error> {
        let running = |node: &str| {
            self.started
                .iter()
                .any(|s| s.name == node && s.exit.is_none())
        };
        if faults::signalled_node(f).is_some_and(|n| !running(n)) {
            // Aimed at a node that is not running: recorded as not fired (no marker).
            self.progress.say(format!(
                "fault {}: not fired, its node is not running",
                f.name
            ));
            return Ok(());
        }
        let Some(action) = faults::node_fault(f, self.shared) else {
            return Ok(());
        };
        let first_started = || self.started.first().map(|s| s.name.clone());
        let node = match action.on {
            MarkOn::Node(n) => Some(n),
            MarkOn::FirstRunning => self
                .started
                .iter()
                .find(|s| s.role == "node" && s.exit.is_none())
                .map(|s| s.name.clone())
                .or_else(first_started),
            MarkOn::FirstStarted => first_started(),
        };
        let Some(node) = node else {
            return Ok(());
        };
        // Partition, heal, snapshot, toxic: only the marker (signal 0); the rest happens here
        // or in the tracer hook, woken by this request.
        let what = match role {
            Some(role) => format!("{} (role {role})", action.what),
            None => action.what,
        };
        // Said when its marker is written (`fired`), with its seq.
        let marker = FaultMark::fired(&f.name, what);
        Ok(self
            .engine
            .signal_node(&node, action.signal, Some(marker))?)
    }

    /// Whether this incarnation was killed by a crash fault: a fault keeps its node down
    /// (not yet restarted), or a later incarnation was started as its restart.
    pub(crate) fn was_crashed(&self, s: &Started) -> bool {
        let pending = faults::kept_down(self.shared, &s.name);
        let restarted_later = self
            .started
            .iter()
            .skip_while(|x| x.pid != s.pid)
            .skip(1)
            .any(|x| x.name == s.name && x.restarted);
        pending || restarted_later
    }

    /// How the latest incarnation of `name` ended, if it did.
    pub(crate) fn exit_of(&self, name: &str) -> Option<ExitStatus> {
        self.started
            .iter()
            .rev()
            .find(|s| s.name == name)
            .and_then(|s| s.exit)
    }

    /// Nodes with a `stop_signal` get it first and their `stop_timeout` to exit, all at once;
    /// one still running after its own timeout is killed (SIGKILL). The engine's shutdown
    /// then kills whatever is left. Skipped when the run is cancelled.
    pub(crate) fn stop_gracefully(&mut self, r: &Resolved) {
        if self.cancel.load(Ordering::SeqCst) {
            return;
        }
        self.drain_notices();
        // (node, deadline)
        let mut waiting: Vec<(String, Instant)> = Vec::new();
        for n in &r.nodes {
            let Some((sig, num)) = n
                .stop_signal
                .as_deref()
                .and_then(|s| Some((s, signal_number(s)?)))
            else {
                continue;
            };
            let running =
                self.started.iter().any(|s| s.name == n.name) && self.exit_of(&n.name).is_none();
            if !running {
                continue;
            }
            self.progress
                .say(format!("stopping node {} with {sig}", n.name));
            if self.engine.signal_node(&n.name, num, None).is_ok() {
                waiting.push((n.name.clone(), Instant::now() + n.stop_timeout));
            }
        }
        while !waiting.is_empty() {
            self.drain_notices();
            let now = Instant::now();
            let mut left = Vec::new();
            for (name, deadline) in std::mem::take(&mut waiting) {
                if self.exit_of(&name).is_some() {
                    continue;
                }
                if now >= deadline {
                    self.progress.say(format!(
                        "node {name} did not exit within its stop_timeout: killed"
                    ));
                    let _ = self.engine.signal_node(&name, libc::SIGKILL, None);
                    continue;
                }
                left.push((name, deadline));
            }
            waiting = left;
            if !waiting.is_empty() {
                self.wait_notice(POLL);
            }
        }
    }

    /// `; last lines of RUN_DIR/logs/NAME.stderr:` and its last 5 lines, or nothing.
    pub(crate) fn tail_of(&self, name: &str) -> String {
        let p = self.run_dir.join("logs").join(format!("{name}.stderr"));
        let text = std::fs::read_to_string(&p).unwrap_or_default();
        let lines: Vec<&str> = text.lines().rev().take(5).collect();
        if lines.is_empty() {
            return String::new();
        }
        let body: Vec<&str> = lines.into_iter().rev().collect();
        format!("; last lines of {}:\n  {}", p.display(), body.join("\n  "))
    }
}

use roles::env_key;

pub(crate) fn interrupted() -> Verdict {
    Verdict::error(vec!["interrupted (SIGINT/SIGTERM)".into()])
}

/// The number of a `stop_signal` name (the experiment file accepts only these).
fn signal_number(name: &str) -> Option<i32> {
    Some(match name {
        "SIGTERM" => libc::SIGTERM,
        "SIGINT" => libc::SIGINT,
        "SIGQUIT" => libc::SIGQUIT,
        "SIGHUP" => libc::SIGHUP,
        "SIGUSR1" => libc::SIGUSR1,
        "SIGUSR2" => libc::SIGUSR2,
        _ => return None,
    })
}
