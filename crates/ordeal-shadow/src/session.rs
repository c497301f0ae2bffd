//! A shadow session: production's traffic through one proxy, duplicated to debug targets
//! (running ones, a clone of production and a candidate version started from the same copy),
//! backends recorded for production and replayed to the copies, a report refreshed until
//! stopped.
//!
//! Set up in steps, in this order — [`SessionSetup::serve_api`], [`SessionSetup::add_backend`],
//! [`SessionSetup::start_proxy`], [`Session::add_target`], [`Session::clone_production`] —
//! then [`Session::run`]. What happens is told as [`Event`]s (their `Display` is the line to
//! show).

use crate::api::{ApiServer, Registry};
use crate::clone::{split_command, CloneProcess};
use crate::cloner::{millis_now, Cloned, Cloner, StartedCopy};
use crate::recipe::Recipe;
use crate::replay::{start_recorder, start_replayer, Endpoint, Recording, ReplayReport};
use crate::shadow::lock;
use crate::TargetReport;
use crate::{Error, Framing, OverflowPolicy, Proxy, ProxyConfig, ShadowTarget, TargetConfig};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::fmt;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How a session's targets are fed and reported.
#[derive(Debug, Clone)]
pub struct SessionOptions {
    /// Per-connection debug window (bytes).
    pub window: usize,
    pub on_overflow: OverflowPolicy,
    pub framing: Framing,
    /// How often [`Event::Status`] lines come and the report is rewritten (zero: never).
    pub status_every: Duration,
    /// Where the report (JSON) is written, at once, at every status tick and at the end.
    pub report: Option<PathBuf>,
    /// Limit on recorded backend traffic (bytes).
    pub record_limit: u64,
}

/// Something a session did.
#[derive(Debug)]
pub enum Event<'a> {
    /// The JSON API serves at this address.
    ApiListening(SocketAddr),
    /// A backend's recorder (for production) and replay endpoint (for the copies) started.
    Backend {
        name: &'a str,
        recorder: SocketAddr,
        backend: &'a str,
        replay: SocketAddr,
    },
    /// The proxy listens.
    ProxyListening {
        listen: SocketAddr,
        upstream: &'a str,
    },
    /// Production was copied (`label`: `clone`, or `re-clone` after an overflow).
    Cloned { label: &'a str, clone: &'a Cloned },
    /// The candidate version started on its copy.
    CandidateStarted(&'a StartedCopy),
    /// One target's state, at each status tick.
    Status(&'a TargetReport),
}

impl fmt::Display for Event<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::ApiListening(a) => write!(f, "API on http://{a}"),
            Event::Backend {
                name,
                recorder,
                backend,
                replay,
            } => write!(
                f,
                "backend {name}: production → {recorder} (recorded) → {backend}; copies → {replay} (replayed)"
            ),
            Event::ProxyListening { listen, upstream } => write!(f, "proxy {listen} → {upstream}"),
            Event::Cloned { label, clone } => write!(f, "{label}: {clone}"),
            Event::CandidateStarted(c) => write!(
                f,
                "candidate: pid {} on {} (ready in {:.3} s)",
                c.process.pid(),
                c.addr,
                c.ready_seconds
            ),
            Event::Status(r) => f.write_str(&r.status_line()),
        }
    }
}

/// Hears a session's events; called from the session's threads too (re-clones).
pub type EventSink = Arc<dyn Fn(&Event<'_>) + Send + Sync>;

/// A session before its proxy starts.
pub struct SessionSetup {
    opts: SessionOptions,
    events: EventSink,
    registry: Arc<Registry>,
    api: Option<ApiServer>,
    recording: Arc<Recording>,
    /// (name, recorder, replay endpoint) of each backend.
    endpoints: Vec<(String, Endpoint, Endpoint)>,
}

impl SessionSetup {
    pub fn new(opts: SessionOptions, events: EventSink) -> SessionSetup {
        SessionSetup {
            recording: Recording::new(opts.record_limit),
            opts,
            events,
            registry: Registry::new(),
            api: None,
            endpoints: Vec::new(),
        }
    }

    /// Serves the toxics/shadow JSON API at `addr` (loopback) for the session's proxy.
    pub fn serve_api(&mut self, addr: &str) -> Result<(), Error> {
        let s = ApiServer::start(addr, Arc::clone(&self.registry))?;
        (self.events)(&Event::ApiListening(s.addr()));
        self.api = Some(s);
        Ok(())
    }

    /// Backend `name`: production connects to `listen` instead of `backend` and is recorded;
    /// copies get `{backend.NAME}`, a replay endpoint answering from the recording.
    pub fn add_backend(&mut self, name: &str, listen: &str, backend: &str) -> Result<(), Error> {
        let recorder = start_recorder(listen, backend, Arc::clone(&self.recording))?;
        let replayer = start_replayer("127.0.0.1:0", Arc::clone(&self.recording))?;
        (self.events)(&Event::Backend {
            name,
            recorder: recorder.addr(),
            backend,
            replay: replayer.addr(),
        });
        self.endpoints.push((name.to_string(), recorder, replayer));
        Ok(())
    }

    /// Starts the proxy: clients connect to `listen`, production is at `upstream`.
    pub fn start_proxy(self, listen: &str, upstream: &str) -> Result<Session, Error> {
        let proxy = self.registry.create(ProxyConfig {
            name: "shadow".into(),
            listen: listen.to_string(),
            upstream: upstream.to_string(),
            enabled: true,
        })?;
        (self.events)(&Event::ProxyListening {
            listen: proxy.listen_addr(),
            upstream,
        });
        Ok(Session {
            setup: self,
            proxy,
            upstream: upstream.to_string(),
            clones: Arc::new(Mutex::new(Vec::new())),
            clone_reports: Vec::new(),
        })
    }
}

/// A running session.
pub struct Session {
    setup: SessionSetup,
    proxy: Proxy,
    upstream: String,
    /// Copies started (killed at the end); re-clones add theirs from another thread.
    clones: Arc<Mutex<Vec<CloneProcess>>>,
    clone_reports: Vec<Value>,
}

/// What a session saw, at its end.
#[derive(Debug, Clone)]
pub struct Summary {
    /// Client connections the proxy took.
    pub connections: u64,
    pub targets: Vec<TargetReport>,
    /// Backend record/replay, when there were backends.
    pub replay: Option<ReplayReport>,
}

/// Lines: the connection count, each target's status, the backend replay counts.
impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "shadow summary ({} connections)", self.connections)?;
        for r in &self.targets {
            writeln!(f, "  {}", r.status_line())?;
        }
        if let Some(rr) = &self.replay {
            writeln!(
                f,
                "  backend replay: {} recorded, {} replayed, requests matched {} / mismatched {}",
                rr.connections_recorded,
                rr.connections_replayed,
                rr.requests_matched,
                rr.requests_mismatched
            )?;
        }
        Ok(())
    }
}

impl Session {
    /// The port of production's address, if it has one.
    pub fn upstream_port(&self) -> Option<u16> {
        self.upstream
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
    }

    fn target_config(&self, name: &str, addr: Option<SocketAddr>) -> TargetConfig {
        let o = &self.setup.opts;
        let mut c = TargetConfig::new(name, addr);
        c.window = o.window;
        c.policy = o.on_overflow;
        c.framing = o.framing;
        c.compare_limit = o.window.max(1 << 20);
        c
    }

    /// A debug target that is already running at `addr`.
    pub fn add_target(&self, name: &str, addr: SocketAddr) -> Result<(), Error> {
        self.proxy
            .add_shadow(self.target_config(name, Some(addr)))
            .map(|_| ())
    }

    /// Waits until production accepts connections, adds the target `clone` (and `candidate`
    /// with a `candidate` command), copies production with `recipe` into `root` and starts
    /// the copies. Connections from the moment the targets are added are kept for them. With
    /// the `reclone` policy, an overflow copies production again.
    pub fn clone_production(
        &mut self,
        recipe: Recipe,
        root: &Path,
        ready_timeout: Duration,
        candidate: Option<&str>,
        stop: &AtomicBool,
    ) -> Result<(), Error> {
        // Production must be up before it is copied (inside an experiment it may still be
        // starting).
        let deadline = Instant::now() + ready_timeout;
        while TcpStream::connect(&self.upstream).is_err() {
            if Instant::now() >= deadline || stop.load(Ordering::SeqCst) {
                return Err(Error::Invalid(format!(
                    "production at {} never accepted a connection",
                    self.upstream
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let candidate_words = candidate.map(split_command).transpose()?;
        let mut main_cfg = self.target_config("clone", None);
        main_cfg.reference = candidate_words.is_some();
        let main_t = self.proxy.add_shadow(main_cfg)?;
        let cand_t = match &candidate_words {
            Some(_) => Some(
                self.proxy
                    .add_shadow(self.target_config("candidate", None))?,
            ),
            None => None,
        };
        // Both targets start in the `starting` state: connections from now on are buffered.
        let cand_dir = candidate_words
            .as_ref()
            .map(|_| root.join(format!("candidate-{}", millis_now())));
        let cloner = Cloner {
            recipe,
            root: root.to_path_buf(),
            backends: self
                .setup
                .endpoints
                .iter()
                .map(|(n, _, replay)| (n.clone(), replay.addr().to_string()))
                .collect::<BTreeMap<_, _>>(),
            ready_timeout,
        };
        let c = match cloner.clone_now("clone", || {}, cand_dir.as_deref()) {
            Ok(c) => c,
            Err(e) => {
                main_t.fail(e.chain_text());
                if let Some(t) = &cand_t {
                    t.fail("the clone failed");
                }
                self.proxy.shutdown();
                return Err(e);
            }
        };
        let events = &self.setup.events;
        events(&Event::Cloned {
            label: "clone",
            clone: &c,
        });
        main_t.set_live(c.copy.addr);
        self.clone_reports.push(c.to_json());
        lock(&self.clones).push(c.copy.process);
        if let (Some(words), Some(t), Some(dir)) = (&candidate_words, &cand_t, cand_dir) {
            let copy = cloner.start_copy(words, dir, "candidate")?;
            events(&Event::CandidateStarted(&copy));
            t.set_live(copy.addr);
            lock(&self.clones).push(copy.process);
        }
        if self.setup.opts.on_overflow == OverflowPolicy::Reclone {
            let (clones, events) = (Arc::clone(&self.clones), Arc::clone(events));
            main_t.set_recloner(Arc::new(move |t: &Arc<ShadowTarget>| {
                let c = cloner.clone_now("reclone", || t.begin_epoch(), None)?;
                events(&Event::Cloned {
                    label: "re-clone",
                    clone: &c,
                });
                t.set_live(c.copy.addr);
                lock(&clones).push(c.copy.process);
                Ok(())
            }));
        }
        Ok(())
    }

    /// The report: the proxy with its targets, the copies, the backends and their replay.
    fn report(&self, final_: bool, replay: Option<&ReplayReport>) -> Value {
        json!({
            "final": final_,
            "proxy": self.proxy.view(),
            "clones": self.clone_reports,
            "backends": self.setup.endpoints.iter().map(|(n, a, b)| json!({
                "name": n, "recorder": a.addr().to_string(), "replay": b.addr().to_string(),
            })).collect::<Vec<_>>(),
            "replay": replay,
        })
    }

    fn replay_report(&self) -> Option<ReplayReport> {
        (!self.setup.endpoints.is_empty()).then(|| self.setup.recording.report())
    }

    fn write_report(&self, v: &Value) -> Result<(), Error> {
        let Some(f) = &self.setup.opts.report else {
            return Ok(());
        };
        let tmp = f.with_extension("tmp");
        let io = |p: &Path| {
            let context = format!("writing {}", p.display());
            move |source| Error::Io { context, source }
        };
        let bytes = serde_json::to_vec_pretty(v).map_err(|e| io(&tmp)(e.into()))?;
        std::fs::write(&tmp, bytes).map_err(io(&tmp))?;
        std::fs::rename(&tmp, f).map_err(io(f))
    }

    /// Runs until `stop` is set or for `duration`: status events and the report at every
    /// tick. Then stops the proxy, writes the final report, kills the copies.
    pub fn run(self, stop: &AtomicBool, duration: Option<Duration>) -> Result<Summary, Error> {
        // At once, not only at the first tick: a shadow inside a run may be killed before it.
        self.write_report(&self.report(false, self.replay_report().as_ref()))?;
        let until = duration.map(|d| Instant::now() + d);
        run_until(stop, until, self.setup.opts.status_every, || {
            for r in self.proxy.shadow_reports() {
                (self.setup.events)(&Event::Status(&r));
            }
            let _ = self.write_report(&self.report(false, self.replay_report().as_ref()));
        });
        self.proxy.set_enabled(false)?;
        self.proxy.wait_idle(Duration::from_secs(2));
        // Before the final report: the copies' answers to the last requests still count.
        self.proxy.wait_shadows_done(Duration::from_secs(2));
        let replay = self.replay_report();
        let fin = self.report(true, replay.as_ref());
        self.proxy.shutdown();
        self.write_report(&fin)?;
        let summary = Summary {
            connections: self.proxy.stats().connections,
            targets: self.proxy.shadow_reports(),
            replay,
        };
        for mut c in lock(&self.clones).drain(..) {
            c.kill();
        }
        self.setup.registry.shutdown_all();
        Ok(summary)
    }
}

/// Sleeps in small steps until `stop` is set or `until`, calling `tick` every `every` (never
/// when zero).
pub fn run_until(
    stop: &AtomicBool,
    until: Option<Instant>,
    every: Duration,
    mut tick: impl FnMut(),
) {
    let mut next = Instant::now() + every;
    loop {
        if stop.load(Ordering::SeqCst) || until.is_some_and(|u| Instant::now() >= u) {
            return;
        }
        if !every.is_zero() && Instant::now() >= next {
            tick();
            next += every;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::CompareStats;
    use crate::TargetState;

    fn target(name: &str, comparison: Option<CompareStats>) -> TargetReport {
        TargetReport {
            name: name.into(),
            state: TargetState::Live,
            addr: Some("127.0.0.1:9".into()),
            policy: OverflowPolicy::Diverge,
            reference: false,
            window_bytes: 1024,
            connections_fed: 3,
            connections_active: 1,
            bytes_fed: 10,
            lag_bytes: 5,
            lag_seconds: 0.25,
            remaining_window: Some(1000),
            overflows: 1,
            reclones: 0,
            bytes_not_fed: 0,
            bytes_received: 7,
            connect_failures: 0,
            write_errors: 0,
            reason: None,
            comparison,
        }
    }

    #[test]
    fn the_summary_lists_targets_and_replay() {
        let cmp = CompareStats {
            connections_identical: 2,
            connections_different: 1,
            messages_identical: 5,
            messages_different: 4,
            real_differences: Some(3),
            ..CompareStats::default()
        };
        let mut idle = target("Cand", None);
        idle.state = TargetState::Diverged;
        idle.remaining_window = None;
        let s = Summary {
            connections: 4,
            targets: vec![target("Clone", Some(cmp)), idle],
            replay: Some(ReplayReport {
                connections_recorded: 6,
                connections_replayed: 5,
                requests_matched: 9,
                requests_mismatched: 1,
                ..ReplayReport::default()
            }),
        };
        assert_eq!(
            s.to_string(),
            "shadow summary (4 connections)\n\
             \x20 Clone: live, lag 5 b / 0.250 s, window left 1000 b, conns fed 3, overflows 1, conns same/diff 2/1, msgs same/diff 5/4 (3 real)\n\
             \x20 Cand: diverged, lag 5 b / 0.250 s, window left -, conns fed 3, overflows 1\n\
             \x20 backend replay: 6 recorded, 5 replayed, requests matched 9 / mismatched 1\n"
        );
    }

    #[test]
    fn run_until_ticks_until_stopped() {
        let stop = AtomicBool::new(false);
        let mut ticks = 0;
        run_until(&stop, None, Duration::from_millis(1), || {
            ticks += 1;
            if ticks == 3 {
                stop.store(true, Ordering::SeqCst);
            }
        });
        assert_eq!(ticks, 3);
        // A zero period never ticks; the deadline ends it.
        let mut ticked = false;
        run_until(&stop, Some(Instant::now()), Duration::ZERO, || {
            ticked = true
        });
        assert!(!ticked);
        let running = AtomicBool::new(false);
        run_until(&running, Some(Instant::now()), Duration::ZERO, || {
            ticked = true
        });
        assert!(!ticked);
    }
}
