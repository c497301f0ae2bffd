//! One replica of the store: the listener, the request handlers, the
//! election and the replication stream.
//!
//! The node's parts are submodules: `stop` (the crash-like stop and the connection registry),
//! `serve` (client requests), `replication` (snapshot and write stream, both ends) and
//! `election` (choosing a role, at startup and after losing the primary).
//!
//! Invariant: locks are taken in the order given on [`Node`]; every thread a node starts lives
//! in the scope of [`run_node_on`], so none outlives it.

use std::collections::VecDeque;
use std::fmt::Display;
use std::io::{self, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use anyhow::{bail, Context};

use crate::bugs::Bugs;
use crate::store::State;

mod election;
mod replication;
mod serve;
mod stop;

use replication::Backup;
pub use stop::StopSignal;

/// Everything a node needs to run.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// This node's index into `peers`.
    pub id: usize,
    /// Every node's address in index order, this one included.
    pub peers: Vec<SocketAddr>,
    /// Where the state file lives; created if missing.
    pub data_dir: PathBuf,
    /// Deliberate bugs to switch on.
    pub bugs: Bugs,
    /// Timeout for each exchange with a peer: `ROLE` queries, the `JOIN`
    /// handshake, and waiting for a backup's `ACK`. A backup that does not
    /// acknowledge in time is dropped from the replication set.
    pub peer_timeout: Duration,
    /// How long one election may take before the node gives up with an
    /// error.
    pub election_timeout: Duration,
}

impl NodeConfig {
    /// A configuration with the default timeouts (1 s per peer exchange,
    /// 30 s per election) and no bugs.
    pub fn new(id: usize, peers: Vec<SocketAddr>, data_dir: impl Into<PathBuf>) -> NodeConfig {
        NodeConfig {
            id,
            peers,
            data_dir: data_dir.into(),
            bugs: Bugs::default(),
            peer_timeout: Duration::from_millis(1000),
            election_timeout: Duration::from_millis(30_000),
        }
    }

    fn validate(&self) -> anyhow::Result<()> {
        if self.id >= self.peers.len() {
            bail!(
                "--id {} is out of range: --peers lists {} addresses",
                self.id,
                self.peers.len()
            );
        }
        if self.peer_timeout.is_zero() || self.election_timeout.is_zero() {
            bail!("timeouts must be greater than zero");
        }
        Ok(())
    }
}

/// A node running on its own thread, for running a cluster in-process.
pub struct NodeHandle {
    addr: SocketAddr,
    stop: StopSignal,
    thread: Option<JoinHandle<anyhow::Result<()>>>,
}

impl NodeHandle {
    /// The address the node listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Whether the node has stopped on its own (its election failed).
    pub fn is_finished(&self) -> bool {
        match &self.thread {
            Some(thread) => thread.is_finished(),
            None => true,
        }
    }

    /// Stops the node as if it crashed (see [`StopSignal`]) and waits until
    /// all its threads are gone and its port is closed. Returns the node's
    /// own result.
    pub fn stop(mut self) -> anyhow::Result<()> {
        self.stop.stop();
        match self.thread.take() {
            Some(thread) => thread
                .join()
                .unwrap_or_else(|_| Err(anyhow::anyhow!("node thread panicked"))),
            None => Ok(()),
        }
    }
}

impl Drop for NodeHandle {
    fn drop(&mut self) {
        if let Some(thread) = self.thread.take() {
            self.stop.stop();
            let _ = thread.join();
        }
    }
}

/// Starts a node on a thread, serving on `listener` (which should be bound
/// to `config.peers[config.id]`).
pub fn spawn_node(config: NodeConfig, listener: TcpListener) -> io::Result<NodeHandle> {
    let addr = listener.local_addr()?;
    let stop = StopSignal::new();
    let thread_stop = stop.clone();
    let thread = thread::Builder::new()
        .name(format!("kv-node-{}", config.id))
        .spawn(move || run_node_on(config, listener, &thread_stop))?;
    Ok(NodeHandle {
        addr,
        stop,
        thread: Some(thread),
    })
}

/// Binds `config.peers[config.id]` and runs the node until `stop` fires.
/// Returns an error if the state file is corrupt, the port cannot be bound,
/// or an election does not finish within `config.election_timeout`.
pub fn run_node(config: NodeConfig, stop: &StopSignal) -> anyhow::Result<()> {
    config.validate()?;
    let addr = config.peers[config.id];
    let listener = TcpListener::bind(addr).with_context(|| format!("cannot listen on {addr}"))?;
    run_node_on(config, listener, stop)
}

/// Like [`run_node`], on an already bound listener.
pub fn run_node_on(
    config: NodeConfig,
    listener: TcpListener,
    stop: &StopSignal,
) -> anyhow::Result<()> {
    config.validate()?;
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create {}", config.data_dir.display()))?;
    let state = State::load(&config.data_dir)?;
    let addr = listener.local_addr()?;
    stop.set_wake_addr(addr);
    let node = Node {
        cfg: config,
        stop,
        state: Mutex::new(state),
        role: Mutex::new(Role::Electing),
        write_lock: Mutex::new(()),
        backups: Mutex::new(Vec::new()),
        pending: Mutex::new(Pending::default()),
        pending_changed: Condvar::new(),
    };
    node.say(format_args!("listening on {addr}"));
    // A scope, so that when the node returns every thread it started is
    // gone: an in-process restart must not race the old instance's writes.
    thread::scope(|scope| {
        let node = &node;
        scope.spawn(move || node.accept_loop(scope, listener));
        if node.cfg.bugs.ack_before_replicate {
            scope.spawn(move || node.replicate_pending());
        }
        let result = node.manage_role();
        if result.is_err() {
            // Bring the listener and connections down with us.
            stop.stop();
        }
        node.close_pending();
        result
    })
}

/// What a node currently is, as answered to `ROLE`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    /// Looking for a primary (at startup and after losing one).
    Electing,
    /// About to become primary, checking nobody else is.
    Candidate,
    Primary,
    /// Following the primary with this index.
    Backup(usize),
}

impl Role {
    fn word(self) -> &'static str {
        match self {
            Role::Electing => "ELECTING",
            Role::Candidate => "CANDIDATE",
            Role::Primary => "PRIMARY",
            Role::Backup(_) => "BACKUP",
        }
    }
}

/// Lock order: `write_lock`, then `backups`, then `role` / `state` /
/// `pending`.
struct Node<'a> {
    cfg: NodeConfig,
    stop: &'a StopSignal,
    /// The in-memory copy of the persisted state.
    state: Mutex<State>,
    role: Mutex<Role>,
    /// Held for a whole write (and by reads and joins on the primary), so
    /// writes happen one at a time and nobody sees a half-replicated one.
    write_lock: Mutex<()>,
    /// The primary's joined backups.
    backups: Mutex<Vec<Backup>>,
    /// Bug ack-before-replicate only: acknowledged writes waiting to be
    /// replicated.
    pending: Mutex<Pending>,
    pending_changed: Condvar,
}

#[derive(Default)]
struct Pending {
    writes: VecDeque<(u64, String, String)>,
    closed: bool,
}

impl<'a> Node<'a> {
    fn say(&self, message: impl Display) {
        let mut out = io::stdout().lock();
        let _ = writeln!(out, "node {} {message}", self.cfg.id);
        let _ = out.flush();
    }

    fn warn(&self, message: impl Display) {
        eprintln!("node {}: {message}", self.cfg.id);
    }

    fn role(&self) -> Role {
        *lock(&self.role)
    }

    fn set_role(&self, role: Role) {
        *lock(&self.role) = role;
    }

    /// Whether saves fsync; see [`State::save`].
    fn durable(&self) -> bool {
        !self.cfg.bugs.rename_without_fsync
    }

    fn other_peers(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.cfg.peers.len()).filter(move |&p| p != self.cfg.id)
    }
}

/// Locks a mutex, ignoring poisoning: every critical section here leaves
/// the data consistent, so a panicked holder does not make it unusable.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
