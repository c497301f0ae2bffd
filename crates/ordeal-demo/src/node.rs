//! One replica of the store: the listener, the request handlers, the
//! election and the replication stream.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt::Display;
use std::io::{self, BufReader, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle, Scope};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::bugs::Bugs;
use crate::store::State;
use crate::wire::{self, send, LineReader, PeerRole, Request};

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

/// How long a starting node waits for lower-index peers to come up before it takes over.
const STARTUP_GRACE: Duration = Duration::from_secs(1);

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

/// Tells a running node to stop, as if it had crashed: its listener closes
/// and every connection it holds is shut down, without any goodbye message.
/// Clones share the same signal.
#[derive(Clone, Default)]
pub struct StopSignal {
    inner: Arc<StopInner>,
}

#[derive(Default)]
struct StopInner {
    stopped: Mutex<bool>,
    changed: Condvar,
    conns: Mutex<Registry>,
    wake_addr: Mutex<Option<SocketAddr>>,
}

/// The node's open connections, so that a stop can shut them down and
/// unblock the threads reading them.
#[derive(Default)]
struct Registry {
    next_id: u64,
    streams: HashMap<u64, TcpStream>,
}

impl StopSignal {
    /// A signal that has not fired.
    pub fn new() -> StopSignal {
        StopSignal::default()
    }

    /// Fires the signal. Returns at once; the node's threads wind down on
    /// their own (use [`NodeHandle::stop`] to wait for them).
    pub fn stop(&self) {
        *lock(&self.inner.stopped) = true;
        self.inner.changed.notify_all();
        for stream in lock(&self.inner.conns).streams.values() {
            let _ = stream.shutdown(Shutdown::Both);
        }
        // A blocking accept() cannot be interrupted portably: a throwaway
        // connection wakes it, and the accept loop then sees the flag.
        let wake_addr = *lock(&self.inner.wake_addr);
        if let Some(addr) = wake_addr {
            let _ = TcpStream::connect_timeout(&addr, Duration::from_secs(1));
        }
    }

    /// Whether the signal has fired.
    pub fn is_stopped(&self) -> bool {
        *lock(&self.inner.stopped)
    }

    /// Sleeps for `duration` or until the signal fires; true if it fired.
    fn sleep(&self, duration: Duration) -> bool {
        let stopped = lock(&self.inner.stopped);
        let (stopped, _) = self
            .inner
            .changed
            .wait_timeout_while(stopped, duration, |stopped| !*stopped)
            .unwrap_or_else(PoisonError::into_inner);
        *stopped
    }

    /// Blocks until the signal fires.
    fn wait(&self) {
        let stopped = lock(&self.inner.stopped);
        let _stopped = self
            .inner
            .changed
            .wait_while(stopped, |stopped| !*stopped)
            .unwrap_or_else(PoisonError::into_inner);
    }

    fn set_wake_addr(&self, mut addr: SocketAddr) {
        if addr.ip().is_unspecified() {
            addr.set_ip(match addr {
                SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
            });
        }
        *lock(&self.inner.wake_addr) = Some(addr);
    }

    /// Tracks `stream` until the returned guard is dropped.
    fn register(&self, stream: &TcpStream) -> io::Result<ConnGuard> {
        let clone = stream.try_clone()?;
        let mut registry = lock(&self.inner.conns);
        // stop() sets the flag before it walks the registry, so checking the
        // flag under the registry lock means no stream escapes the shutdown.
        if self.is_stopped() {
            let _ = clone.shutdown(Shutdown::Both);
        }
        let id = registry.next_id;
        registry.next_id += 1;
        registry.streams.insert(id, clone);
        Ok(ConnGuard {
            stop: self.clone(),
            id,
        })
    }
}

/// Removes a connection from the stop registry when dropped.
struct ConnGuard {
    stop: StopSignal,
    id: u64,
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        lock(&self.stop.inner.conns).streams.remove(&self.id);
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

/// A backup the primary replicates to.
struct Backup {
    id: usize,
    /// The sequence number of the snapshot it joined with: it already has
    /// every write up to there.
    joined_seq: u64,
    writer: TcpStream,
    reader: BufReader<TcpStream>,
    _guard: ConnGuard,
}

/// A backup's connection to its primary.
struct Upstream {
    primary: usize,
    writer: TcpStream,
    reader: BufReader<TcpStream>,
    _guard: ConnGuard,
}

enum Elected {
    Primary,
    Backup(Upstream),
    Stopped,
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

    fn accept_loop<'scope>(&'scope self, scope: &'scope Scope<'scope, '_>, listener: TcpListener) {
        if self.stop.is_stopped() {
            return;
        }
        for conn in listener.incoming() {
            if self.stop.is_stopped() {
                return;
            }
            match conn {
                Ok(stream) => {
                    scope.spawn(move || self.serve_connection(stream));
                }
                Err(e) => {
                    self.warn(format_args!("accept failed: {e}"));
                    // Errors such as running out of file descriptors repeat
                    // at once: pause instead of spinning.
                    if self.stop.sleep(Duration::from_millis(50)) {
                        return;
                    }
                }
            }
        }
    }

    fn serve_connection(&self, stream: TcpStream) {
        let Ok(guard) = self.stop.register(&stream) else {
            return;
        };
        let Ok(read_half) = stream.try_clone() else {
            return;
        };
        let mut reader = LineReader::new(read_half, self.cfg.bugs.no_short_read_handling);
        let mut out = stream;
        loop {
            let line = match reader.read_line() {
                Ok(Some(line)) => line,
                Ok(None) => return,
                Err(e) => {
                    if e.kind() == io::ErrorKind::InvalidData {
                        let _ = send(&mut out, &format!("ERR {e}"));
                    }
                    return;
                }
            };
            let sent = match wire::parse_request(&line) {
                Err(reason) => send(&mut out, &format!("ERR {reason}")),
                Ok(Request::Role) => send(&mut out, self.role().word()),
                Ok(Request::Get { key }) => send(&mut out, &self.get(&key)),
                Ok(Request::Set { key, value }) => self.set(key, value, &mut out),
                Ok(Request::Join { id }) => {
                    self.accept_backup(id, reader, out, guard);
                    return;
                }
            };
            if sent.is_err() {
                return;
            }
        }
    }

    fn lookup(&self, key: &str) -> String {
        match lock(&self.state).data.get(key) {
            Some(value) => format!("VALUE {value}"),
            None => "NOTFOUND".to_string(),
        }
    }

    fn get(&self, key: &str) -> String {
        if self.role() == Role::Primary {
            // Wait for an in-flight write, so a read never returns a value
            // the backups do not have yet (it could vanish on failover).
            let _write = lock(&self.write_lock);
            return self.lookup(key);
        }
        if self.cfg.bugs.stale_read {
            // BUG stale-read: answer from local state, which may be behind.
            return self.lookup(key);
        }
        "NOTPRIMARY".to_string()
    }

    fn set(&self, key: String, value: String, out: &mut TcpStream) -> io::Result<()> {
        let _write = lock(&self.write_lock);
        if self.role() != Role::Primary {
            return send(out, "NOTPRIMARY");
        }
        let mut next = lock(&self.state).clone();
        next.seq += 1;
        next.data.insert(key.clone(), value.clone());
        if let Err(e) = next.save(&self.cfg.data_dir, self.durable()) {
            return send(out, &format!("ERR cannot persist: {e}"));
        }
        let seq = next.seq;
        *lock(&self.state) = next;
        if self.cfg.bugs.ack_before_replicate {
            // BUG ack-before-replicate: the client hears OK while the write
            // exists on this node only: replication is queued only after the
            // reply went out, and the next request does not wait for it; a
            // crash until then loses it.
            let sent = send(out, "OK");
            lock(&self.pending).writes.push_back((seq, key, value));
            self.pending_changed.notify_all();
            return sent;
        }
        self.replicate(seq, &key, &value);
        send(out, "OK")
    }

    /// Bug ack-before-replicate only: replicates queued writes in order
    /// until the node stops.
    fn replicate_pending(&self) {
        loop {
            let (seq, key, value) = {
                let mut pending = lock(&self.pending);
                loop {
                    if pending.closed {
                        return;
                    }
                    if let Some(write) = pending.writes.pop_front() {
                        break write;
                    }
                    pending = self
                        .pending_changed
                        .wait(pending)
                        .unwrap_or_else(PoisonError::into_inner);
                }
            };
            self.replicate(seq, &key, &value);
        }
    }

    fn close_pending(&self) {
        lock(&self.pending).closed = true;
        self.pending_changed.notify_all();
    }

    /// Sends one write to every backup and waits for their ACKs. A backup
    /// that fails is dropped (and its connection closed, which makes it
    /// re-join and catch up through a snapshot).
    fn replicate(&self, seq: u64, key: &str, value: &str) {
        let mut backups = lock(&self.backups);
        if backups.is_empty() {
            return;
        }
        let message = format!("REPL {seq} {key} {value}");
        let expected = format!("ACK {seq}");
        // A backup whose snapshot already has this write must not get it
        // again (only possible when writes are replicated late): replaying
        // an old write would overwrite newer values.
        let needs = |b: &Backup| b.joined_seq < seq;
        // Send to all backups before waiting, so they persist in parallel.
        let mut failures: Vec<Option<String>> = backups
            .iter_mut()
            .map(|b| {
                if needs(b) {
                    send(&mut b.writer, &message).err().map(|e| e.to_string())
                } else {
                    None
                }
            })
            .collect();
        for (backup, failure) in backups.iter_mut().zip(failures.iter_mut()) {
            if failure.is_some() || !needs(backup) {
                continue;
            }
            *failure = match wire::read_line(&mut backup.reader) {
                Ok(Some(line)) if line == expected => None,
                Ok(Some(line)) => Some(format!("expected {expected:?}, got {line:?}")),
                Ok(None) => Some("connection closed".to_string()),
                Err(e) => Some(e.to_string()),
            };
        }
        let mut kept = Vec::with_capacity(backups.len());
        for (backup, failure) in backups.drain(..).zip(failures) {
            match failure {
                None => kept.push(backup),
                Some(reason) => {
                    self.warn(format_args!("dropping backup {}: {reason}", backup.id));
                    let _ = backup.writer.shutdown(Shutdown::Both);
                }
            }
        }
        *backups = kept;
    }

    /// Handles `JOIN id`: sends the whole state and, once the backup has
    /// acknowledged it, adds the connection to the replication set.
    fn accept_backup(&self, id: usize, reader: LineReader, mut out: TcpStream, guard: ConnGuard) {
        if id == self.cfg.id || id >= self.cfg.peers.len() {
            let _ = send(&mut out, &format!("ERR invalid node id {id}"));
            return;
        }
        // No write may slip between the snapshot and the backup joining.
        let _write = lock(&self.write_lock);
        if self.role() != Role::Primary {
            let _ = send(&mut out, "NOTPRIMARY");
            return;
        }
        let snapshot = lock(&self.state).clone();
        let mut reader = reader.into_buffered();
        match self.send_snapshot(&snapshot, &mut reader, &mut out) {
            Ok(()) => {
                let mut backups = lock(&self.backups);
                // A node that re-joins replaces its old, dead connection.
                backups.retain(|b| {
                    if b.id == id {
                        let _ = b.writer.shutdown(Shutdown::Both);
                    }
                    b.id != id
                });
                backups.push(Backup {
                    id,
                    joined_seq: snapshot.seq,
                    writer: out,
                    reader,
                    _guard: guard,
                });
            }
            Err(e) => {
                self.warn(format_args!("backup {id} failed to join: {e}"));
                let _ = out.shutdown(Shutdown::Both);
            }
        }
    }

    fn send_snapshot(
        &self,
        snapshot: &State,
        reader: &mut BufReader<TcpStream>,
        out: &mut TcpStream,
    ) -> io::Result<()> {
        out.set_read_timeout(Some(self.cfg.peer_timeout))?;
        out.set_write_timeout(Some(self.cfg.peer_timeout))?;
        let mut message = format!("SNAPSHOT {} {}\n", snapshot.seq, snapshot.data.len());
        for (key, value) in &snapshot.data {
            message.push_str(&format!("KV {key} {value}\n"));
        }
        out.write_all(message.as_bytes())?;
        let expected = format!("ACK {}", snapshot.seq);
        match wire::read_line(reader)? {
            Some(line) if line == expected => Ok(()),
            Some(line) => Err(io::Error::other(format!(
                "expected {expected:?}, got {line:?}"
            ))),
            None => Err(io::ErrorKind::UnexpectedEof.into()),
        }
    }

    /// Runs elections and follows primaries until the node is stopped. A
    /// primary stays primary until it stops.
    fn manage_role(&self) -> anyhow::Result<()> {
        // At start-up, lower-index peers that refuse connections may simply not be listening
        // yet: give them a moment before taking over, so that a cluster started all at once
        // always elects node 0 (deterministic runs). After losing a primary, no grace.
        let mut grace_until = Some(Instant::now() + STARTUP_GRACE);
        loop {
            match self.elect(grace_until.take())? {
                Elected::Stopped => return Ok(()),
                Elected::Primary => {
                    self.stop.wait();
                    return Ok(());
                }
                Elected::Backup(upstream) => {
                    let primary = upstream.primary;
                    let reason = self.follow(upstream);
                    if self.stop.is_stopped() {
                        return Ok(());
                    }
                    self.set_role(Role::Electing);
                    self.say(format_args!("lost primary {primary}"));
                    self.warn(format_args!("replication from {primary} ended: {reason}"));
                }
            }
        }
    }

    /// Finds the primary and joins it, or becomes primary.
    ///
    /// Join a peer that says PRIMARY. Otherwise, if every lower-index peer
    /// refuses connections (is down), become a candidate, ask everyone
    /// again, and become primary only if nobody is (or is becoming) primary.
    /// The second round settles races: of two nodes turning candidate, the
    /// later one always sees the earlier and backs off. Otherwise wait and
    /// retry, until `election_timeout`.
    fn elect(&self, grace_until: Option<Instant>) -> anyhow::Result<Elected> {
        let deadline = Instant::now() + self.cfg.election_timeout;
        let timeout = self.cfg.peer_timeout;
        for attempt in 0u32.. {
            if self.stop.is_stopped() {
                return Ok(Elected::Stopped);
            }
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            self.set_role(Role::Electing);
            let roles: Vec<(usize, PeerRole)> = self
                .other_peers()
                .map(|p| (p, wire::query_role(self.cfg.peers[p], timeout)))
                .collect();
            if let Some(&(primary, _)) = roles.iter().find(|(_, r)| *r == PeerRole::Primary) {
                match self.join(primary) {
                    Ok(upstream) => return Ok(Elected::Backup(upstream)),
                    Err(e) => self.warn(format_args!("cannot join primary {primary}: {e}")),
                }
            } else if roles
                .iter()
                .all(|(p, r)| *p > self.cfg.id || *r == PeerRole::Refused)
                && grace_until.is_none_or(|g| Instant::now() >= g || self.cfg.id == 0)
            {
                self.set_role(Role::Candidate);
                let clear = self.other_peers().all(|p| {
                    matches!(
                        wire::query_role(self.cfg.peers[p], timeout),
                        PeerRole::Refused | PeerRole::Electing | PeerRole::Backup
                    )
                });
                if clear {
                    self.set_role(Role::Primary);
                    self.say("is primary");
                    return Ok(Elected::Primary);
                }
                self.set_role(Role::Electing);
            }
            // Back off, a little longer for higher ids, so two nodes that
            // backed off together do not collide again.
            let pause = Duration::from_millis((10u64 << attempt.min(4)) + 7 * self.cfg.id as u64);
            let left = deadline.saturating_duration_since(Instant::now());
            if self.stop.sleep(pause.min(left)) {
                return Ok(Elected::Stopped);
            }
        }
        bail!(
            "node {}: no primary found and could not become primary within {} ms",
            self.cfg.id,
            self.cfg.election_timeout.as_millis()
        )
    }

    /// Joins `primary`: receives and persists its snapshot, acknowledges it.
    fn join(&self, primary: usize) -> io::Result<Upstream> {
        let timeout = self.cfg.peer_timeout;
        let stream = TcpStream::connect_timeout(&self.cfg.peers[primary], timeout)?;
        let guard = self.stop.register(&stream)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        let mut writer = stream;
        let mut reader = BufReader::new(writer.try_clone()?);
        send(&mut writer, &format!("JOIN {}", self.cfg.id))?;
        let header = wire::read_line(&mut reader)?.ok_or(io::ErrorKind::UnexpectedEof)?;
        let (seq, count) = wire::parse_snapshot_header(&header).map_err(invalid_data)?;
        let mut data = BTreeMap::new();
        for _ in 0..count {
            let line = wire::read_line(&mut reader)?.ok_or(io::ErrorKind::UnexpectedEof)?;
            let (key, value) = wire::parse_kv(&line).map_err(invalid_data)?;
            data.insert(key, value);
        }
        // The primary's state replaces ours whole: anything we have that it
        // lacks was never acknowledged to a client.
        let snapshot = State { seq, data };
        snapshot.save(&self.cfg.data_dir, self.durable())?;
        *lock(&self.state) = snapshot;
        send(&mut writer, &format!("ACK {seq}"))?;
        // The primary may be idle for a long time: only a closed connection
        // means it is gone.
        writer.set_read_timeout(None)?;
        self.set_role(Role::Backup(primary));
        self.say(format_args!("joined primary {primary}"));
        Ok(Upstream {
            primary,
            writer,
            reader,
            _guard: guard,
        })
    }

    /// Applies the primary's REPL stream until it ends; returns why it ended.
    fn follow(&self, mut upstream: Upstream) -> String {
        let reason = loop {
            let line = match wire::read_line(&mut upstream.reader) {
                Ok(Some(line)) => line,
                Ok(None) => break "connection closed".to_string(),
                Err(e) => break e.to_string(),
            };
            let (seq, key, value) = match wire::parse_repl(&line) {
                Ok(write) => write,
                Err(e) => break e.to_string(),
            };
            let mut next = lock(&self.state).clone();
            next.seq = seq;
            next.data.insert(key, value);
            if let Err(e) = next.save(&self.cfg.data_dir, self.durable()) {
                break format!("cannot persist: {e}");
            }
            *lock(&self.state) = next;
            if let Err(e) = send(&mut upstream.writer, &format!("ACK {seq}")) {
                break e.to_string();
            }
        };
        let _ = upstream.writer.shutdown(Shutdown::Both);
        reason
    }
}

fn invalid_data(reason: wire::ReplicationError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, reason)
}

/// Locks a mutex, ignoring poisoning: every critical section here leaves
/// the data consistent, so a panicked holder does not make it unusable.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
