//! The supervisor over a fake engine: a run needs nothing but [`Engine`] and [`Launcher`],
//! and refuses, before anything exists, the faults its engine cannot apply.

use crate::supervisor::{Progress, Supervisor};
use crate::{checkpoints, diag, faults, run_on, Error, RunOptions};
use ordeal_events::FaultMark;
use ordeal_experiment::{Experiment, ResolveContext};
use ordeal_hb::Status;
use ordeal_tracer::{
    Capabilities, Capture, CaptureRequest, Config, Engine, ExitStatus, Interceptor, Launcher,
    MarkEvents, Notice, Sink, SpawnSpec, Stats,
};
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the fake engine was asked to do.
#[derive(Debug, Default)]
struct Log {
    /// Started with an interceptor.
    hooked: Option<bool>,
    /// (label, pid, argv)
    spawned: Vec<(String, i32, Vec<String>)>,
    /// (node, signal, mark)
    signals: Vec<(String, i32, Option<String>)>,
    shut_down: bool,
}

/// An engine that runs nothing: a spawned `client` exits at once with status 0, everything
/// else runs until the shutdown.
struct FakeEngine {
    log: Arc<Mutex<Log>>,
    tx: Sender<Notice>,
    rx: Receiver<Notice>,
    sink: Mutex<Box<dyn Sink>>,
}

struct NoMarks;

impl MarkEvents for NoMarks {
    fn mark(
        &self,
        _: &str,
        _: &str,
        _: Option<u64>,
        _: Option<String>,
    ) -> Result<u64, ordeal_tracer::Error> {
        Ok(0)
    }
}

impl Engine for FakeEngine {
    fn spawn(&self, spec: SpawnSpec) -> Result<i32, ordeal_tracer::Error> {
        let mut log = self.log.lock().unwrap();
        let pid = 100 + log.spawned.len() as i32;
        if spec.label == "client" {
            let _ = self.tx.send(Notice::Exited {
                label: spec.label.clone(),
                pid,
                status: ExitStatus::Code(0),
                root: true,
            });
        }
        log.spawned.push((spec.label, pid, spec.argv));
        Ok(pid)
    }
    fn signal_node(
        &self,
        node: &str,
        signal: i32,
        marker: Option<FaultMark>,
    ) -> Result<(), ordeal_tracer::Error> {
        let mark = marker.map(|m| m.to_string());
        self.log
            .lock()
            .unwrap()
            .signals
            .push((node.to_string(), signal, mark));
        Ok(())
    }
    fn wake(&self) -> Result<(), ordeal_tracer::Error> {
        Ok(())
    }
    fn marker(&self) -> Arc<dyn MarkEvents> {
        Arc::new(NoMarks)
    }
    fn capture(&self, _: CaptureRequest) -> Result<Capture, ordeal_tracer::Error> {
        Ok(Capture {
            threads: Vec::new(),
            untraced: Vec::new(),
            max_pause: Duration::ZERO,
        })
    }
    fn events_so_far(&self) -> u64 {
        0
    }
    fn notices(&self) -> &Receiver<Notice> {
        &self.rx
    }
    fn shutdown(self: Box<Self>) -> Result<Stats, ordeal_tracer::Error> {
        self.sink
            .lock()
            .unwrap()
            .flush()
            .map_err(ordeal_tracer::Error::Sink)?;
        self.log.lock().unwrap().shut_down = true;
        Ok(Stats::default())
    }
}

struct FakeLauncher {
    intercept: bool,
    log: Arc<Mutex<Log>>,
}

impl FakeLauncher {
    fn new(intercept: bool) -> Self {
        Self {
            intercept,
            log: Arc::default(),
        }
    }
}

impl Launcher for FakeLauncher {
    fn name(&self) -> &'static str {
        "fake"
    }
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            intercept: self.intercept,
        }
    }
    fn start(
        &self,
        _: Config,
        sink: Box<dyn Sink>,
        interceptor: Option<Box<dyn Interceptor>>,
    ) -> Result<Box<dyn Engine>, ordeal_tracer::Error> {
        self.log.lock().unwrap().hooked = Some(interceptor.is_some());
        let (tx, rx) = mpsc::channel();
        Ok(Box::new(FakeEngine {
            log: self.log.clone(),
            tx,
            rx,
            sink: Mutex::new(sink),
        }))
    }
}

const EXPERIMENT: &str = r#"name = "fake"
[[node]]
name = "n0"
argv = ["true", "node"]
[[workload]]
name = "client"
argv = ["true", "client"]
"#;

fn experiment() -> Experiment {
    Experiment::parse(EXPERIMENT, "fake.toml").unwrap()
}

fn schedule(text: &str) -> ordeal_faults::Schedule {
    let names =
        ordeal_faults::Participants::new(vec!["n0".to_string()], vec!["client".to_string()]);
    ordeal_faults::Schedule::parse_for(text, "s.toml", &names).unwrap()
}

fn options(out: &Path) -> RunOptions {
    let mut opts = RunOptions::new("/bin/true".into());
    opts.out = Some(out.to_path_buf());
    opts.progress = false;
    opts
}

#[test]
fn a_whole_run_goes_through_any_engine() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let mut opts = options(&out);
    // A time fault needs no interception: this engine gets no hook.
    opts.faults = Some(schedule(
        "[[fault]]\nname = \"snap\"\nkind = \"snapshot\"\ntrigger = { after = \"1h\" }\n",
    ));
    let launcher = FakeLauncher::new(false);
    let report = run_on(&launcher, &experiment(), &opts, &AtomicBool::new(false)).unwrap();
    assert_eq!(report.summary.verdict.status, Status::Pass);
    assert_eq!(report.run_dir, out);
    let log = launcher.log.lock().unwrap();
    assert_eq!(log.hooked, Some(false));
    let spawned: Vec<(&str, i32, &[String])> = log
        .spawned
        .iter()
        .map(|(l, p, a)| (l.as_str(), *p, a.as_slice()))
        .collect();
    assert_eq!(
        spawned,
        vec![
            ("n0", 100, &["true".to_string(), "node".into()][..]),
            ("client", 101, &["true".to_string(), "client".into()][..]),
        ]
    );
    assert!(log.signals.is_empty());
    assert!(log.shut_down);
    // The trace holds the header the run wrote; the outputs were built from it.
    let reader = ordeal_events::TraceReader::open(&out.join("trace.jsonl")).unwrap();
    assert_eq!(reader.header.experiment, "fake");
    assert!(out.join("summary.json").is_file());
    assert!(out.join(ordeal_faults::APPLIED_FILE).is_file());
}

#[test]
fn an_engine_that_cannot_intercept_refuses_call_level_faults_before_anything_starts() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let mut opts = options(&out);
    opts.faults = Some(schedule(
        r#"[[fault]]
name = "slow"
kind = "delay"
duration = "10ms"
trigger = { nth = 1, node = "n0", call = "write" }
[[fault]]
name = "early"
kind = "crash"
node = "n0"
trigger = { nth = 1, node = "n0", call = "rename" }
[[fault]]
name = "cut"
kind = "partition"
from = ["n0"]
to = ["client"]
trigger = { after = "1s" }
[[fault]]
name = "late"
kind = "crash"
node = "n0"
trigger = { after = "1s" }
"#,
    ));
    let launcher = FakeLauncher::new(false);
    let err = run_on(&launcher, &experiment(), &opts, &AtomicBool::new(false)).unwrap_err();
    assert!(
        matches!(err, Error::Schedule(ref p) if p.len() == 3),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "fault `slow`: a delay fault acts on the call at which it fires, and the fake engine does not intercept calls\n\
         fault `early`: it fires at a call (an `nth` or `p` trigger), and the fake engine does not intercept calls\n\
         fault `cut`: a partition on network = \"loopback\" acts on the calls that cross it, and the fake engine does not intercept calls"
    );
    assert!(!out.exists(), "nothing was created");
    assert_eq!(launcher.log.lock().unwrap().hooked, None, "never started");

    // The same schedule on an engine that intercepts: started with the hook.
    let launcher = FakeLauncher::new(true);
    let report = run_on(&launcher, &experiment(), &opts, &AtomicBool::new(false)).unwrap();
    assert_eq!(launcher.log.lock().unwrap().hooked, Some(true));
    assert_eq!(report.summary.verdict.status, Status::Pass);
}

#[test]
fn the_supervisor_pauses_and_resumes_through_the_engine() {
    let tmp = tempfile::tempdir().unwrap();
    let exp = experiment();
    let r = exp
        .resolve(&ResolveContext::new(tmp.path(), "/bin/true"))
        .unwrap();
    crate::rundir::create_run_dir(tmp.path()).unwrap();
    let launcher = FakeLauncher::new(true);
    let engine = launcher
        .start(
            Config::default(),
            Box::new(Vec::<ordeal_events::Event>::new()),
            None,
        )
        .unwrap();
    let mut ckpt = checkpoints::Checkpoints::start(&r, tmp.path(), engine.marker()).unwrap();
    let shared = faults::Shared::default();
    let progress = Progress::new(false);
    let cancel = AtomicBool::new(false);
    let s = schedule(
        "[[fault]]\nname = \"stop\"\nkind = \"pause\"\nnode = \"n0\"\nduration = \"1ms\"\ntrigger = { after = \"0s\" }\n",
    );
    let mut sup = Supervisor {
        engine: engine.as_ref(),
        origin_ns: 0,
        ckpt: &ckpt,
        shared: &shared,
        net: None,
        schedule: Some(&s),
        started: Vec::new(),
        run_dir: tmp.path(),
        progress: &progress,
        cancel: &cancel,
        diag: diag::Diag::disabled(tmp.path()),
        prober: None,
    };
    let n0 = &r.nodes[0];
    let env = sup.env_for("n0", &n0.env);
    sup.start(
        "n0",
        "node",
        &n0.program,
        &n0.argv,
        env,
        &n0.cwd,
        true,
        None,
    )
    .unwrap();
    sup.fire_node_fault(&s.faults[0]).unwrap();
    // Resumed once its millisecond is over.
    let deadline = Instant::now() + Duration::from_secs(10);
    while launcher.log.lock().unwrap().signals.len() < 2 && Instant::now() < deadline {
        sup.end_lasting(false, None).unwrap();
    }
    assert_eq!(
        launcher.log.lock().unwrap().signals,
        vec![
            ("n0".into(), libc::SIGSTOP, Some("stop: pause n0".into())),
            (
                "n0".into(),
                libc::SIGCONT,
                Some("by stop: resume n0".into())
            ),
        ]
    );
    assert!(!faults::recovery_pending(&shared));
    drop(sup);
    ckpt.stop();
    engine.shutdown().unwrap();
}

/// Three nodes; n1 is the leader, whatever it is asked.
const WITH_ROLES: &str = r#"name = "fake-roles"
[[node]]
name = "n0"
argv = ["true", "node"]
[[node]]
name = "n1"
argv = ["true", "node"]
[[node]]
name = "n2"
argv = ["true", "node"]
[[workload]]
name = "client"
argv = ["true", "client"]

[roles]
leader = { command = ["sh", "-c", 'test "$ORDEAL_NODE" = n1'] }
primary = { command = ["false"], timeout = "100ms" }
"#;

fn roles_schedule(text: &str) -> ordeal_faults::Schedule {
    let names = ordeal_faults::Participants::new(["n0", "n1", "n2"], ["client"])
        .with_roles(["leader", "primary"]);
    ordeal_faults::Schedule::parse_for(text, "s.toml", &names).unwrap()
}

/// A fault aimed at a role acts on the node the role's probe names when it fires, and says
/// so in its mark; a role no node holds fires nothing. Every finding is in roles.jsonl.
#[test]
fn a_fault_aimed_at_a_role_acts_on_the_node_holding_it_when_it_fires() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let mut opts = options(&out);
    opts.faults = Some(roles_schedule(
        r#"[[fault]]
name = "crash-leader"
kind = "crash"
role = "leader"
trigger = { after = "0s" }
[[fault]]
name = "pause-primary"
kind = "pause"
role = "primary"
duration = "1s"
trigger = { after = "0s" }
"#,
    ));
    let exp = Experiment::parse(WITH_ROLES, "fake.toml").unwrap();
    let launcher = FakeLauncher::new(false);
    let report = run_on(&launcher, &exp, &opts, &AtomicBool::new(false)).unwrap();
    assert_eq!(report.summary.verdict.status, Status::Pass);
    assert_eq!(
        launcher.log.lock().unwrap().signals,
        [(
            "n1".to_string(),
            libc::SIGKILL,
            Some("crash-leader: crash n1 (role leader)".to_string())
        )]
    );
    let seen = crate::roles::read_sightings(&out.join(crate::roles::ROLES_FILE)).unwrap();
    let brief: Vec<(&str, &str, Vec<&str>)> = seen
        .iter()
        .map(|s| {
            let nodes = s.nodes.iter().map(String::as_str).collect();
            (s.why.as_str(), s.role.as_str(), nodes)
        })
        .collect();
    // Probed at the start, when each fault fires (the primary again and again for its
    // 100 ms), and after the recovery phase, among the nodes still running: n1 crashed.
    assert_eq!(
        brief[..3],
        [
            ("start", "leader", vec!["n1"]),
            ("start", "primary", vec![]),
            ("fault crash-leader", "leader", vec!["n1"]),
        ]
    );
    let retries = &brief[3..brief.len() - 2];
    assert!(!retries.is_empty());
    assert!(retries
        .iter()
        .all(|s| *s == ("fault pause-primary", "primary", vec![])));
    assert_eq!(
        brief[brief.len() - 2..],
        [("end", "leader", vec![]), ("end", "primary", vec![])]
    );
}

#[test]
fn a_schedule_naming_a_role_the_experiment_lacks_is_refused_before_anything_starts() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let mut opts = options(&out);
    let names =
        ordeal_faults::Participants::new(["n0"], ["client"]).with_roles(["leader", "primary"]);
    opts.faults = Some(
        ordeal_faults::Schedule::parse_for(
            "[[fault]]\nname = \"c\"\nkind = \"crash\"\nrole = \"leader\"\n\
             trigger = { after = \"1s\" }\n",
            "s.toml",
            &names,
        )
        .unwrap(),
    );
    let launcher = FakeLauncher::new(true);
    let err = run_on(&launcher, &experiment(), &opts, &AtomicBool::new(false)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "fault `c`: no role `leader` in the experiment (the experiment declares no [roles])"
    );
    assert!(!out.exists(), "nothing was created");
}
