//! Roles while a run goes on (`[roles]`): which node holds each role, found by running the
//! role's probe on every node (untraced, in parallel, each bounded by the role's `timeout`)
//! or, for a role inferred from traffic (`infer`), from the recent sends between nodes the
//! trace's sink keeps ([`traffic`]), and the record of every finding in `RUN_DIR/roles.jsonl`.
//! Both kinds are found at the same moments, with the same patience, and recorded alike.
//!
//! When roles are found:
//! - once every node is ready, before the workloads that wait for it start (`start`): every
//!   role, the holders a trigger's `role` counts the calls of from then on;
//! - when a fault aimed at a role fires (`fault NAME`): that role, afresh, by the supervisor
//!   (never on the tracer thread: a probe talks to traced nodes);
//! - after every node-level fault, when a trigger counts a role's calls (`moved`): a
//!   watch thread finds the roles again (a crash moves leadership), until each has a holder
//!   or [`SETTLE`] passes;
//! - after the recovery phase (`end`): every role, for the record (explore names its mined
//!   points by the roles their nodes held).

mod traffic;

use crate::faults::Shared;
use crate::network::enter_netns;
use ordeal_experiment::{Inference, InferredRole, Resolved, RoleProbe};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::{BufRead, Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use traffic::{SharedTraffic, Traffic, TrafficSink};

/// The record of role findings in a run directory.
pub const ROLES_FILE: &str = "roles.jsonl";

/// How long the watch thread keeps looking for a role's new holder after a node-level fault
/// (an election takes a few of etcd's 1 s election timeouts at worst).
pub const SETTLE: Duration = Duration::from_secs(10);

/// Between two rounds of probes that found no holder.
const RETRY: Duration = Duration::from_millis(100);

/// Most bytes of a probe's output looked at.
const MAX_OUTPUT: u64 = 64 * 1024;

/// One line of `roles.jsonl`: who held a role when it was probed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sighting {
    /// When the probes ended, ns since the run started (the clock of events' `ts`).
    pub time_ns: u64,
    /// Why it was probed: `start`, `fault NAME`, `moved`, `end`.
    pub why: String,
    pub role: String,
    /// The nodes where the probe said yes, in file order (empty: none).
    pub nodes: Vec<String>,
    /// An inferred role: where the traffic judged ends, ns on the same clock (behind
    /// `time_ns` by as long as the tracer lagged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic_until_ns: Option<u64>,
}

/// Reads `roles.jsonl` (none when the run had no `[roles]`).
pub fn read_sightings(path: &Path) -> std::io::Result<Vec<Sighting>> {
    let f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for line in std::io::BufReader::new(f).lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        out.push(serde_json::from_str(&line).map_err(std::io::Error::other)?);
    }
    Ok(out)
}

/// One node as its probes see it: its name and what its probe's environment adds.
#[derive(Clone)]
struct ProbeNode {
    name: String,
    env: Vec<(String, String)>,
}

/// Runs the experiment's role probes and infers its roles from traffic. Cheap to clone: the
/// [`Watch`] thread has its own (sharing the traffic record).
#[derive(Clone)]
pub(crate) struct Prober {
    roles: Vec<RoleProbe>,
    inferred: Vec<InferredRole>,
    /// The recent sends between nodes, when a role is inferred from them.
    traffic: Option<SharedTraffic>,
    nodes: Vec<ProbeNode>,
    /// With `network = "netns"`: probes run from the hub, which reaches every node.
    hub: Option<Arc<OwnedFd>>,
    run_dir: PathBuf,
    origin_ns: u64,
}

impl Prober {
    /// The probes of `r`'s roles (none: the experiment has no `[roles]`).
    pub(crate) fn new(
        r: &Resolved,
        net: Option<&ordeal_netns::Network>,
        origin_ns: u64,
    ) -> Option<Prober> {
        if r.roles.is_empty() && r.inferred_roles.is_empty() {
            return None;
        }
        let mut common: Vec<(String, String)> = vec![(
            "ORDEAL_RUN_DIR".to_string(),
            r.run_dir.display().to_string(),
        )];
        for (name, port) in &r.ports {
            common.push((format!("ORDEAL_PORT_{}", env_key(name)), port.to_string()));
        }
        for (name, host) in &r.hosts {
            common.push((format!("ORDEAL_HOST_{}", env_key(name)), host.clone()));
        }
        let nodes = r
            .nodes
            .iter()
            .map(|n| {
                let mut env = common.clone();
                env.push(("ORDEAL_NODE".into(), n.name.clone()));
                if let Some(h) = r.hosts.get(&n.name) {
                    env.push(("ORDEAL_HOST".into(), h.clone()));
                }
                // The port named after the node, else its first by name.
                let port = n.ports.get(&n.name).or_else(|| n.ports.values().next());
                if let Some(p) = port {
                    env.push(("ORDEAL_PORT".into(), p.to_string()));
                }
                if let Some(d) = &n.data_dir {
                    env.push(("ORDEAL_DATA_DIR".into(), d.path.display().to_string()));
                }
                ProbeNode {
                    name: n.name.clone(),
                    env,
                }
            })
            .collect();
        let traffic = r
            .inferred_roles
            .iter()
            .map(|i| i.window)
            .max()
            .map(|longest| {
                let names = r.nodes.iter().map(|n| n.name.clone()).collect();
                Arc::new(Mutex::new(Traffic::new(names, longest)))
            });
        Some(Prober {
            roles: r.roles.clone(),
            inferred: r.inferred_roles.clone(),
            traffic,
            nodes,
            hub: net.map(|n| n.hub_netns()),
            run_dir: r.run_dir.clone(),
            origin_ns,
        })
    }

    /// The roles' names (probed and inferred), in name order.
    pub(crate) fn role_names(&self) -> impl Iterator<Item = &str> {
        let mut names: Vec<&str> = self
            .roles
            .iter()
            .map(|r| r.name.as_str())
            .chain(self.inferred.iter().map(|r| r.name.as_str()))
            .collect();
        names.sort_unstable();
        names.into_iter()
    }

    /// The trace's sink, keeping the traffic on the way when a role is inferred from it.
    pub(crate) fn sink(&self, inner: Box<dyn ordeal_tracer::Sink>) -> Box<dyn ordeal_tracer::Sink> {
        match &self.traffic {
            Some(t) => Box::new(TrafficSink::new(inner, t.clone())),
            None => inner,
        }
    }

    /// The nodes among `candidates` that hold `role`, in file order: one round, every node
    /// probed at once, or the traffic of the role's window looked at. Recorded in
    /// `roles.jsonl` with `why`.
    pub(crate) fn holders(&self, role: &str, candidates: &[String], why: &str) -> Vec<String> {
        if let Some(spec) = self.inferred.iter().find(|r| r.name == role) {
            let now = self.now();
            let (nodes, until) = self.inferred_holders(spec, candidates, now);
            self.record(&Sighting {
                time_ns: now,
                why: why.to_string(),
                role: role.to_string(),
                nodes: nodes.clone(),
                traffic_until_ns: until,
            });
            return nodes;
        }
        let Some(spec) = self.roles.iter().find(|r| r.name == role) else {
            return Vec::new();
        };
        let probed: Vec<&ProbeNode> = self
            .nodes
            .iter()
            .filter(|n| candidates.contains(&n.name))
            .collect();
        let said: Vec<bool> = std::thread::scope(|s| {
            let runs: Vec<_> = probed
                .iter()
                .map(|n| s.spawn(|| self.probe(spec, n)))
                .collect();
            runs.into_iter()
                .map(|h| h.join().unwrap_or(false))
                .collect()
        });
        let nodes: Vec<String> = probed
            .iter()
            .zip(said)
            .filter(|(_, yes)| *yes)
            .map(|(n, _)| n.name.clone())
            .collect();
        self.record(&Sighting {
            time_ns: self.now(),
            why: why.to_string(),
            role: role.to_string(),
            nodes: nodes.clone(),
            traffic_until_ns: None,
        });
        nodes
    }

    /// Now, on the clock of events' `ts`.
    fn now(&self) -> u64 {
        ordeal_tracer::monotonic_ns().saturating_sub(self.origin_ns)
    }

    /// The holder of an inferred role among `candidates` at `now`, from the last window of
    /// traffic, and where that window ends.
    fn inferred_holders(
        &self,
        spec: &InferredRole,
        candidates: &[String],
        now: u64,
    ) -> (Vec<String>, Option<u64>) {
        let Some(traffic) = &self.traffic else {
            return (Vec::new(), None);
        };
        // Judged under the lock: a few sums per pair of nodes, the sink never waits long.
        let Ok(t) = traffic.lock() else {
            return (Vec::new(), None);
        };
        let holder = match spec.rule {
            Inference::FansOut => traffic::fans_out_holder(&t, now, spec.window, candidates),
        };
        (holder.into_iter().collect(), Some(t.judged_at(now)))
    }

    /// [`Prober::holders`], round after round until some node holds `role` or `patience`
    /// passed (at least one round), or `stop` is set.
    pub(crate) fn find(
        &self,
        role: &str,
        candidates: &dyn Fn() -> Vec<String>,
        why: &str,
        patience: Duration,
        stop: &AtomicBool,
    ) -> Vec<String> {
        let until = Instant::now() + patience;
        loop {
            let found = self.holders(role, &candidates(), why);
            if !found.is_empty() || Instant::now() >= until || stop.load(Ordering::SeqCst) {
                return found;
            }
            std::thread::sleep(RETRY);
        }
    }

    /// How long a fault aimed at `role` waits for a holder: the role's own `timeout`.
    pub(crate) fn patience(&self, role: &str) -> Duration {
        self.roles
            .iter()
            .find(|r| r.name == role)
            .map(|r| r.timeout)
            .or_else(|| {
                self.inferred
                    .iter()
                    .find(|r| r.name == role)
                    .map(|r| r.timeout)
            })
            .unwrap_or(ordeal_experiment::DEFAULT_ROLE_TIMEOUT)
    }

    /// Runs `spec`'s probe on `node`: yes when it exits 0 within its timeout and, with
    /// `matches`, a line of its output matches.
    fn probe(&self, spec: &RoleProbe, node: &ProbeNode) -> bool {
        let mut cmd = Command::new(&spec.program);
        if let Some(argv0) = spec.argv.first() {
            cmd.arg0(argv0);
        }
        cmd.args(spec.argv.iter().skip(1))
            .current_dir(&spec.cwd)
            .envs(node.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            // Its own group: a probe that overstays is killed with whatever it started.
            .process_group(0);
        if let Some(hub) = &self.hub {
            enter_netns(&mut cmd, hub.clone());
        }
        let Ok(mut child) = cmd.spawn() else {
            return false;
        };
        // Taken down by the keeper if ordeal dies while the probe runs.
        let _kept = ordeal_sys::keeper::contain_group(child.id() as i32);
        let until = Instant::now() + spec.timeout;
        let (tx, rx) = mpsc::channel();
        if let Some(out) = child.stdout.take() {
            std::thread::spawn(move || {
                let mut text = String::new();
                let mut limited = out.take(MAX_OUTPUT);
                let _ = limited.read_to_string(&mut text);
                // Whatever is past the limit is not looked at, but read: the probe must not
                // block on a full pipe.
                let _ = std::io::copy(&mut limited.into_inner(), &mut std::io::sink());
                let _ = tx.send(text);
            });
        }
        let status = loop {
            match child.try_wait() {
                Ok(Some(st)) => break Some(st),
                Ok(None) if Instant::now() < until => {
                    std::thread::sleep(Duration::from_millis(5));
                }
                _ => break None,
            }
        };
        let Some(status) = status else {
            kill_group(child.id());
            let _ = child.wait();
            return false;
        };
        let left = until.saturating_duration_since(Instant::now());
        let Ok(text) = rx.recv_timeout(left.max(Duration::from_millis(50))) else {
            // Exited, but something it started holds its output open past the timeout.
            kill_group(child.id());
            return false;
        };
        status.success()
            && spec
                .matches
                .as_ref()
                .is_none_or(|re| text.lines().any(|l| re.is_match(l)))
    }

    fn record(&self, s: &Sighting) {
        let path = self.run_dir.join(ROLES_FILE);
        let Ok(mut line) = serde_json::to_string(s) else {
            return;
        };
        line.push('\n');
        // One write per line, appended: the supervisor and the watch thread both record.
        let _ = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut f| f.write_all(line.as_bytes()));
    }
}

/// SIGKILLs the process group a probe leads.
fn kill_group(pgid: u32) {
    let Ok(pgid) = i32::try_from(pgid) else {
        return;
    };
    // SAFETY: killpg only sends a signal; the group is the probe's own (process_group(0)),
    // its leader not reaped yet or its members still holding its output.
    unsafe {
        libc::killpg(pgid, libc::SIGKILL);
    }
}

/// Checks that every role the schedule names is one of the experiment's `[roles]`.
pub(crate) fn check_roles(
    s: &ordeal_faults::Schedule,
    roles: &[String],
) -> Result<(), crate::Error> {
    let problems: Vec<String> = s
        .faults
        .iter()
        .flat_map(|f| f.roles().into_iter().map(move |r| (f, r)))
        .filter(|(_, r)| !roles.iter().any(|x| x == r))
        .map(|(f, r)| {
            let has = if roles.is_empty() {
                "the experiment declares no [roles]".to_string()
            } else {
                format!("its roles are {}", roles.join(", "))
            };
            format!(
                "fault `{}`: no role `{r}` in the experiment ({has})",
                f.name
            )
        })
        .collect();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(crate::Error::Schedule(problems))
    }
}

/// The node a fault aimed at a role acts on, among the role's `holders` (file order): the
/// node whose call fired it when that node holds the role, else the first holder.
pub(crate) fn chosen(holders: &[String], fired_in: Option<&str>) -> Option<String> {
    fired_in
        .filter(|n| holders.iter().any(|h| h == n))
        .map(str::to_string)
        .or_else(|| holders.first().cloned())
}

/// Publishes `role`'s holders to the tracer hook (its triggers count their calls from now on).
pub(crate) fn publish(shared: &Shared, role: &str, nodes: Vec<String>) {
    if let Ok(mut p) = shared.lock() {
        p.holders.insert(role.to_string(), nodes);
        p.holders_version += 1;
    }
}

/// A thread that finds the roles triggers count again after each node-level fault (which
/// sets [`crate::faults::Pending::roles_moved`]), until each has a holder or [`SETTLE`]
/// passes. Stopped and joined by [`Watch::stop`].
pub(crate) struct Watch {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Watch {
    /// Watches `roles` (the ones a trigger counts the calls of) with its own prober.
    pub(crate) fn start(prober: Prober, roles: Vec<String>, shared: Shared) -> Watch {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("ordeal-roles".into())
            .spawn(move || watch(&prober, &roles, &shared, &flag))
            .ok();
        Watch { stop, thread }
    }

    /// Stops looking (a round in progress ends first) and waits for the thread.
    pub(crate) fn stop(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn watch(prober: &Prober, roles: &[String], shared: &Shared, stop: &AtomicBool) {
    while !stop.load(Ordering::SeqCst) {
        let moved = shared
            .lock()
            .map(|mut p| std::mem::take(&mut p.roles_moved))
            .unwrap_or(false);
        if !moved {
            std::thread::sleep(Duration::from_millis(20));
            continue;
        }
        // Nodes a fault keeps down or stopped hold nothing: not probed.
        let candidates = || {
            prober
                .nodes
                .iter()
                .map(|n| n.name.clone())
                .filter(|n| {
                    !crate::faults::kept_down(shared, n) && !crate::faults::stopped(shared, n)
                })
                .collect::<Vec<String>>()
        };
        for role in roles {
            let nodes = prober.find(role, &candidates, "moved", SETTLE, stop);
            publish(shared, role, nodes);
        }
    }
}

/// `n1-peer` → `N1_PEER`, for environment variable names.
pub(crate) fn env_key(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}

/// Every role's holders among `candidates`, in name order, each recorded with `why`.
pub(crate) fn find_all(
    prober: &Prober,
    candidates: &[String],
    why: &str,
) -> BTreeMap<String, Vec<String>> {
    let names: Vec<String> = prober.role_names().map(str::to_string).collect();
    names
        .into_iter()
        .map(|r| {
            let nodes = prober.holders(&r, candidates, why);
            (r, nodes)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ordeal_experiment::{Experiment, ResolveContext};

    /// Three nodes, and roles whose probes say yes by the node's name, its port or its
    /// output; one that overstays its timeout.
    const EXPERIMENT: &str = r#"name = "roles"
[[node]]
name = "n0"
argv = ["true", "{port.n0}"]
[[node]]
name = "n1"
argv = ["true", "{port.n1-extra}", "{port.n1}"]
ports = ["n1", "n1-extra"]
[[node]]
name = "n2"
argv = ["true", "{port.n2}"]
[[workload]]
name = "client"
argv = ["true"]

[roles]
leader = { command = ["sh", "-c", 'test "$ORDEAL_NODE" = n1'] }
follower = { command = ["sh", "-c", 'test "$ORDEAL_NODE" != n1'] }
writer = { command = ["sh", "-c", 'echo "$ORDEAL_NODE $ORDEAL_HOST $ORDEAL_PORT $ORDEAL_PORT_N1_EXTRA $PWD" | tee "$ORDEAL_RUN_DIR/env-$ORDEAL_NODE"'], matches = '^n2 ' }
slow = { command = ["sh", "-c", 'sleep 30 & echo $! > "$ORDEAL_RUN_DIR/slow-$ORDEAL_NODE"; wait'], timeout = "200ms" }
"#;

    fn prober(dir: &Path) -> (Prober, Resolved) {
        prober_with(dir, "", 0)
    }

    /// [`prober`] with `role` (a line of `[roles]`) added, its clock starting at `origin`.
    fn prober_with(dir: &Path, role: &str, origin: u64) -> (Prober, Resolved) {
        let text = EXPERIMENT.replace("[roles]\n", &format!("[roles]\n{role}\n"));
        let exp = Experiment::parse(&text, "roles.toml").unwrap();
        let r = exp.resolve(&ResolveContext::new(dir, "/bin/true")).unwrap();
        (Prober::new(&r, None, origin).unwrap(), r)
    }

    fn all() -> Vec<String> {
        ["n0", "n1", "n2"].map(String::from).to_vec()
    }

    #[test]
    fn the_nodes_whose_probe_says_yes_hold_the_role_and_each_finding_is_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let (p, r) = prober(dir.path());
        assert_eq!(
            p.role_names().collect::<Vec<_>>(),
            ["follower", "leader", "slow", "writer"]
        );
        assert_eq!(p.holders("leader", &all(), "start"), ["n1"]);
        assert_eq!(p.holders("follower", &all(), "start"), ["n0", "n2"]);
        // Only the candidates are asked.
        assert!(p
            .holders("leader", &["n0".into(), "n2".into()], "x")
            .is_empty());
        // A line of the output must match too.
        assert_eq!(p.holders("writer", &all(), "start"), ["n2"]);
        // ORDEAL_PORT is the node's port named after it; every port is there by name too;
        // the probe runs in the experiment file's directory.
        let env = std::fs::read_to_string(dir.path().join("env-n1")).unwrap();
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(
            env,
            format!(
                "n1 127.0.0.1 {} {} {}\n",
                r.ports["n1"],
                r.ports["n1-extra"],
                cwd.display()
            )
        );
        // An unknown role has no holder.
        assert!(p.holders("nobody", &all(), "start").is_empty());
        let seen = read_sightings(&dir.path().join(ROLES_FILE)).unwrap();
        let brief: Vec<(&str, &str, Vec<&str>)> = seen
            .iter()
            .map(|s| {
                let nodes = s.nodes.iter().map(String::as_str).collect();
                (s.why.as_str(), s.role.as_str(), nodes)
            })
            .collect();
        assert_eq!(
            brief,
            [
                ("start", "leader", vec!["n1"]),
                ("start", "follower", vec!["n0", "n2"]),
                ("x", "leader", vec![]),
                ("start", "writer", vec!["n2"]),
            ]
        );
        assert!(seen.windows(2).all(|w| w[0].time_ns <= w[1].time_ns));
        // No [roles] written: none read.
        assert!(read_sightings(&dir.path().join("none.jsonl"))
            .unwrap()
            .is_empty());
    }

    #[test]
    fn a_probe_that_overstays_its_timeout_says_no_and_is_killed_with_what_it_started() {
        let dir = tempfile::tempdir().unwrap();
        let (p, _) = prober(dir.path());
        let t0 = Instant::now();
        assert!(p.holders("slow", &all(), "start").is_empty());
        // The three probes ran at once, each killed at its 200 ms.
        let took = t0.elapsed();
        assert!(took < Duration::from_secs(5), "{took:?}");
        assert_eq!(p.patience("slow"), Duration::from_millis(200));
        // What the probe started went with it (gone, or a zombie until its new parent
        // reaps it).
        let pid = std::fs::read_to_string(dir.path().join("slow-n1")).unwrap();
        let stat = format!("/proc/{}/stat", pid.trim());
        let deadline = Instant::now() + Duration::from_secs(10);
        let alive = || {
            std::fs::read_to_string(&stat)
                .is_ok_and(|s| s.rsplit(") ").next().is_some_and(|r| !r.starts_with('Z')))
        };
        while alive() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(!alive(), "the probe's sleep {} survived", pid.trim());
        assert_eq!(p.patience("leader"), Duration::from_secs(2));
    }

    #[test]
    fn finding_a_role_retries_until_a_holder_shows_or_patience_runs_out() {
        let dir = tempfile::tempdir().unwrap();
        let (p, _) = prober(dir.path());
        let stop = AtomicBool::new(false);
        // The holder is not a candidate at first, then is.
        let calls = std::cell::Cell::new(0);
        let candidates = || {
            calls.set(calls.get() + 1);
            if calls.get() < 3 {
                vec!["n0".to_string()]
            } else {
                all()
            }
        };
        let found = p.find(
            "leader",
            &candidates,
            "moved",
            Duration::from_secs(30),
            &stop,
        );
        assert_eq!((found, calls.get()), (vec!["n1".to_string()], 3));
        let none = || vec!["n0".to_string()];
        let t0 = Instant::now();
        assert!(p
            .find("leader", &none, "moved", Duration::from_millis(300), &stop)
            .is_empty());
        assert!(t0.elapsed() >= Duration::from_millis(300));
    }

    /// A write of `bytes` from `node` to `peer`, `ts` ns into the run.
    fn send(node: &str, peer: &str, ts: u64, bytes: i64) -> ordeal_events::Event {
        ordeal_events::Event {
            ts,
            node: node.into(),
            call: "write".into(),
            class: Some(ordeal_events::Class::Data),
            ret: Some(bytes),
            fd: Some(5),
            sock: Some(ordeal_events::Sock {
                ino: 1,
                proto: ordeal_events::Proto::Tcp,
                local: None,
                remote: None,
                peer_ino: None,
                peer_node: Some(peer.into()),
            }),
            ..Default::default()
        }
    }

    #[test]
    fn an_inferred_role_is_found_from_the_traffic_the_sink_kept_and_recorded_alike() {
        let dir = tempfile::tempdir().unwrap();
        let origin = ordeal_tracer::monotonic_ns();
        let (p, _) = prober_with(
            dir.path(),
            "primary = { infer = \"fans-out\", window = \"1s\", timeout = \"300ms\" }",
            origin,
        );
        assert_eq!(
            p.role_names().collect::<Vec<_>>(),
            ["follower", "leader", "primary", "slow", "writer"]
        );
        assert_eq!(p.patience("primary"), Duration::from_millis(300));
        // Nothing sent yet: no holder, after the role's patience.
        let stop = AtomicBool::new(false);
        let t0 = Instant::now();
        assert!(p
            .find("primary", &all, "fault f", p.patience("primary"), &stop)
            .is_empty());
        assert!(t0.elapsed() >= Duration::from_millis(300));
        // n1 streams to n0 and n2, which acknowledge; what the sink saw is kept.
        let mut sink = p.sink(Box::new(Vec::<ordeal_events::Event>::new()));
        let now = ordeal_tracer::monotonic_ns() - origin;
        for (from, to, bytes) in [
            ("n1", "n0", 500),
            ("n1", "n2", 500),
            ("n0", "n1", 20),
            ("n2", "n1", 20),
        ] {
            sink.event(&send(from, to, now, bytes)).unwrap();
        }
        assert_eq!(p.holders("primary", &all(), "start"), ["n1"]);
        // A paused or crashed node is no candidate; without n1, n0 and n2 sent each other
        // nothing.
        let without = ["n0".to_string(), "n2".to_string()];
        assert!(p.holders("primary", &without, "moved").is_empty());
        let seen = read_sightings(&dir.path().join(ROLES_FILE)).unwrap();
        let brief: Vec<(&str, Vec<&str>)> = seen
            .iter()
            .map(|s| (s.why.as_str(), s.nodes.iter().map(String::as_str).collect()))
            .collect();
        // One line per look while the fault waited (every 100 ms for 300 ms): 3 at least.
        let waits = brief.iter().take_while(|(w, _)| *w == "fault f").count();
        assert!(waits >= 3, "{brief:?}");
        assert!(brief[..waits].iter().all(|(_, n)| n.is_empty()));
        assert_eq!(brief[waits..], [("start", vec!["n1"]), ("moved", vec![])]);
        assert!(seen.iter().all(|s| s.role == "primary"));
    }

    #[test]
    fn right_after_a_restart_its_rejoining_burst_is_not_taken_for_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        // The run started 10 s ago.
        let origin = ordeal_tracer::monotonic_ns() - 10_000_000_000;
        let (p, _) = prober_with(
            dir.path(),
            "primary = { infer = \"fans-out\", window = \"1s\" }",
            origin,
        );
        let mut sink = p.sink(Box::new(Vec::<ordeal_events::Event>::new()));
        // n0 restarted 300 ms ago, then sent to both others, which answered it: a leader's
        // shape.
        let now = ordeal_tracer::monotonic_ns() - origin - 300_000_000;
        let mut restart = send("n0", "n0", now, 0);
        restart.call = "fault".into();
        restart.sock = None;
        restart.fault = Some(ordeal_events::FaultMark::fired("back", "restart n0"));
        sink.event(&restart).unwrap();
        for (from, to, bytes) in [
            ("n0", "n1", 300),
            ("n0", "n2", 300),
            ("n1", "n0", 200),
            ("n2", "n0", 200),
        ] {
            // n0 rejoins at its first send, 100 ms after its restart; the window starts in
            // the next 100 ms slice (a change's slice holds what came before it).
            sink.event(&send(from, to, now + 100_000_000, 1)).unwrap();
            sink.event(&send(from, to, now + 200_000_000, bytes))
                .unwrap();
        }
        let t = p.traffic.as_ref().unwrap();
        let window = t.lock().unwrap().window(p.now(), Duration::from_secs(1));
        assert_eq!(traffic::fans_out(&window, &all()), Some("n0".into()));
        // Less than half the window since the restart: no holder yet.
        assert!(p.holders("primary", &all(), "moved").is_empty());
        // Half a window after n0 first spoke (100 ms after its restart), the traffic since
        // then decides.
        let t = t.lock().unwrap();
        assert!(!t.settled(now + 550_000_000, Duration::from_secs(1)));
        assert!(t.settled(now + 600_000_000, Duration::from_secs(1)));
    }

    #[test]
    fn a_fault_acts_on_the_holder_whose_call_fired_it_else_on_the_first() {
        let h = ["e2".to_string(), "e3".to_string()];
        assert_eq!(chosen(&h, Some("e3")), Some("e3".into()));
        assert_eq!(chosen(&h, Some("e1")), Some("e2".into()));
        assert_eq!(chosen(&h, None), Some("e2".into()));
        assert_eq!(chosen(&[], Some("e1")), None);
    }
}
