//! # The ordeal demo: a small replicated key-value store
//!
//! A primary/backup key-value store to try ordeal on. Each node is one
//! process (`ordeal kv node`); a checking client (`ordeal kv client`) runs a
//! workload against them and reports any inconsistency it observes. With no
//! bugs switched on, the store survives the crash (SIGKILL) and restart of any
//! single node: no acknowledged write is lost, and reads return the latest
//! acknowledged value. Each of the optional bugs breaks that under the right
//! fault.
//!
//! ## Running it
//!
//! ```text
//! ordeal kv node --id 0 --peers 127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003 --data-dir /tmp/kv0
//! ordeal kv node --id 1 --peers 127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003 --data-dir /tmp/kv1
//! ordeal kv node --id 2 --peers 127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003 --data-dir /tmp/kv2
//! ordeal kv client --nodes 127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003 --ops 50 --seed 1
//! ```
//!
//! Node flags: `--id N` (index into `--peers`), `--peers ADDR,ADDR,...`
//! (every node's `ip:port` in index order, its own included; it listens on
//! its own), `--data-dir PATH`, `--bugs LIST` (default empty),
//! `--peer-timeout-ms` (default 1000) and `--election-timeout-ms` (default
//! 30000). Client flags: `--nodes ADDR,ADDR,...`, `--ops` (50), `--keys` (5),
//! `--seed` (1), `--timeout-ms` (2000, per operation including retries; keep
//! it above the nodes' `--peer-timeout-ms`, which is how long a write can
//! wait for a hung backup).
//!
//! A node prints one line on stdout at startup and at each role change:
//! `node 0 listening on 127.0.0.1:7001` (once the port is bound),
//! `node 0 is primary`, `node 2 joined primary 0`, `node 2 lost primary 0`.
//! Diagnostics go to stderr. Exit codes: 0 ok, 1 the client saw a
//! consistency violation, 2 error (bad state file, election or client timed
//! out, ...).
//!
//! ## Protocol
//!
//! Line-based text over TCP: one message per `\n`-terminated line, words
//! separated by spaces. Keys and values are single words.
//!
//! Client requests and their replies:
//!
//! | request     | replies                                              |
//! |-------------|------------------------------------------------------|
//! | `SET k v`   | `OK` (acknowledged), `NOTPRIMARY`, `ERR reason`      |
//! | `GET k`     | `VALUE v`, `NOTFOUND`, `NOTPRIMARY`, `ERR reason`    |
//! | `ROLE`      | `PRIMARY`, `BACKUP`, `ELECTING`, `CANDIDATE`         |
//! | `SEQ`       | `SEQ n`: the sequence number of its last write       |
//!
//! Any malformed line is answered `ERR reason` and the connection stays open.
//!
//! Replication uses the same port. A backup connects to the primary and
//! sends `JOIN id`; the primary answers `SNAPSHOT seq count` followed by
//! `count` lines `KV k v` (its whole state), and the backup persists it and
//! answers `ACK seq`. From then on the primary sends `REPL seq k v` for each
//! write and the backup answers `ACK seq` once the write is persisted.
//!
//! ## Roles
//!
//! Only the primary serves `SET` and `GET`; the other nodes answer
//! `NOTPRIMARY`. A node chooses its role at startup, and again whenever its
//! replication connection to the primary ends:
//!
//! * it asks every peer `ROLE`; if one is `PRIMARY` it joins it as a backup;
//! * otherwise, if no peer that answers `SEQ` holds a later write (a higher
//!   `seq`) and every lower-index peer refuses connections (is down) or holds
//!   an earlier one, it becomes `CANDIDATE`, asks every peer again, and
//!   becomes primary if none
//!   is primary or candidate (and none fails to answer); this second round
//!   keeps two nodes from becoming primary at once;
//! * otherwise it backs off and retries, for at most `--election-timeout-ms`
//!   (then it exits with code 2).
//!
//! So node 0 is primary after the first boot; when it dies node 1 takes
//! over and node 2 joins node 1 (unless node 2 holds a write node 1 missed:
//! then node 2 takes over), and a restarted node joins whoever is primary.
//! A primary stays primary until it dies.
//!
//! A write on the primary: persist it locally, send `REPL` to every joined
//! backup, wait for each one's `ACK` (a backup that fails or does not answer
//! within `--peer-timeout-ms` is dropped and its connection closed, which
//! makes it re-join and catch up through a snapshot), then reply `OK`.
//! Writes are applied one at a time; a `GET` on the primary waits for the
//! write in progress.
//!
//! Each node keeps its whole state in `<data-dir>/state`: a header line
//! `seq <last applied seq> keys <count>` then one `key value` line per key.
//! After every applied write it writes `state.tmp`, fsyncs it, renames it to
//! `state` and fsyncs the directory. At startup it loads `state` if present;
//! a corrupt file is an error (exit code 2).
//!
//! ## The client
//!
//! `ordeal kv client` performs `--ops` operations over `--keys` keys (`k0`,
//! `k1`, ...), chosen from `--seed`: about half `SET k v<op number>` (every
//! value is unique) and half `GET k`, one at a time. A SET goes to the node
//! that last acknowledged a write, a GET to a random node; on `NOTPRIMARY` or
//! a connection error it tries the next node, backing off between rounds,
//! for at most `--timeout-ms` per operation (then exit code 2). It checks
//! every GET: the answer must be the value of the last acknowledged SET of
//! that key, or of a SET whose outcome it could not learn (its connection
//! broke). Otherwise it prints `VIOLATION: ...` and exits with code 1. It
//! ends with `client: 50 ops, 26 sets ok, 24 gets ok, 0 violations`.
//!
//! ## Bugs
//!
//! `--bugs` takes a comma-separated list (empty = none) of:
//!
//! * `ack-before-replicate`: the primary replies `OK` as soon as the write is
//!   persisted locally; a background thread replicates it afterwards, and
//!   later requests do not wait for that. A crash of the primary in between
//!   loses an acknowledged write: the new primary never had it.
//! * `rename-without-fsync`: the state file is replaced by write + rename
//!   without fsyncing the temp file or the directory. After a power loss
//!   (or a simulated one that drops unsynced data) `state` can be empty or
//!   old, so the node refuses to start or forgets acknowledged writes.
//! * `stale-read`: nodes that are not primary answer `GET` from their own
//!   state without checking it is current — for example while a restarted
//!   node has loaded its old state but not yet joined the primary.
//! * `no-short-read-handling`: a node reads each request with one `read()`
//!   and takes what it got as exactly one line. A request split over two TCP
//!   segments, or two requests in one, get `ERR` (and a SET is not applied).
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

mod bugs;
mod client;
mod node;
mod store;
mod wire;

pub use bugs::{Bugs, UnknownBug, BUG_NAMES};
pub use client::{run_client, ClientReport};
pub use node::{run_node, run_node_on, spawn_node, NodeConfig, NodeHandle, StopSignal};
pub use store::{FormatError, State, StoreError, STATE_FILE, STATE_TMP_FILE};

/// `ordeal kv ...`: the demo store's processes.
#[derive(clap::Subcommand, Debug)]
pub enum KvCommand {
    /// Run one node of the replicated store.
    Node(NodeArgs),
    /// Run the checking client against the store.
    Client(ClientArgs),
}

/// Arguments of `ordeal kv node`.
#[derive(clap::Args, Debug, Clone)]
pub struct NodeArgs {
    /// This node's index into --peers (0-based).
    #[arg(long)]
    pub id: usize,
    /// Every node's ip:port in index order, this node's included; the node
    /// listens on its own entry.
    #[arg(long, value_delimiter = ',', required = true)]
    pub peers: Vec<SocketAddr>,
    /// Directory for the node's state file (created if missing).
    #[arg(long)]
    pub data_dir: PathBuf,
    /// Comma-separated bugs to switch on: ack-before-replicate,
    /// rename-without-fsync, stale-read, no-short-read-handling.
    #[arg(long, default_value = "", value_parser = parse_bugs)]
    pub bugs: Bugs,
    /// Timeout for each exchange with a peer (ROLE query, JOIN, waiting for
    /// a backup's ACK).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
    pub peer_timeout_ms: u64,
    /// Give up (exit code 2) if an election finds no primary for this long.
    #[arg(long, default_value_t = 30_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub election_timeout_ms: u64,
}

/// Arguments of `ordeal kv client`.
#[derive(clap::Args, Debug, Clone)]
pub struct ClientArgs {
    /// Every node's ip:port, in index order.
    #[arg(long, value_delimiter = ',', required = true)]
    pub nodes: Vec<SocketAddr>,
    /// Number of operations.
    #[arg(long, default_value_t = 50)]
    pub ops: u64,
    /// Number of distinct keys.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..))]
    pub keys: u64,
    /// Seed of the workload.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// How long one operation may take, retries included.
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout_ms: u64,
}

fn parse_bugs(list: &str) -> Result<Bugs, UnknownBug> {
    Bugs::parse(list)
}

impl From<&NodeArgs> for NodeConfig {
    fn from(args: &NodeArgs) -> NodeConfig {
        NodeConfig {
            id: args.id,
            peers: args.peers.clone(),
            data_dir: args.data_dir.clone(),
            bugs: args.bugs,
            peer_timeout: Duration::from_millis(args.peer_timeout_ms),
            election_timeout: Duration::from_millis(args.election_timeout_ms),
        }
    }
}

/// Runs the command until it is done (a node runs until killed) and returns
/// the process exit code: 0 ok, 1 the client saw a consistency violation,
/// 2 error. Errors are printed to stderr here, so the `Err` case is not
/// used in practice; the caller can treat it as exit code 2.
pub fn run(cmd: KvCommand) -> anyhow::Result<i32> {
    match cmd {
        KvCommand::Node(args) => match run_node(NodeConfig::from(&args), &StopSignal::new()) {
            Ok(()) => Ok(0),
            Err(e) => {
                eprintln!("ordeal kv node: error: {e:#}");
                Ok(2)
            }
        },
        KvCommand::Client(args) => Ok(run_client(&args).exit_code()),
    }
}
