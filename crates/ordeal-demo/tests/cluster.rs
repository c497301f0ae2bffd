//! The correct store (no bugs): replication, failover, rejoin, and the
//! checking client against it.

mod common;

use std::collections::BTreeMap;
use std::thread;

use common::{wait_for, Cluster, Conn};
use ordeal_demo::{run_client, Bugs, ClientArgs};

fn client_args(cluster: &Cluster, ops: u64, seed: u64) -> ClientArgs {
    ClientArgs {
        nodes: cluster.addrs.clone(),
        ops,
        keys: 5,
        seed,
        timeout_ms: 10_000,
    }
}

#[test]
fn node_0_becomes_primary_and_the_others_join_it() {
    let cluster = Cluster::start(3, Bugs::default());
    cluster.wait_roles(&["PRIMARY", "BACKUP", "BACKUP"]);
}

#[test]
fn every_acknowledged_write_is_in_every_state_file() {
    let cluster = Cluster::start(3, Bugs::default());
    cluster.wait_roles(&["PRIMARY", "BACKUP", "BACKUP"]);
    let mut primary = Conn::open(cluster.addrs[0]);
    assert_eq!(primary.ask("SET a 1"), "OK");
    assert_eq!(primary.ask("SET b 2"), "OK");
    assert_eq!(primary.ask("SET a 3"), "OK");
    assert_eq!(primary.ask("GET a"), "VALUE 3");
    assert_eq!(primary.ask("GET zz"), "NOTFOUND");
    // OK means every backup has persisted the write: no waiting needed.
    for id in 0..3 {
        assert_eq!(
            cluster.state_text(id),
            "seq 3 keys 2\na 3\nb 2\n",
            "node {id}"
        );
    }
}

#[test]
fn backups_refuse_reads_and_writes_and_bad_lines_get_err() {
    let cluster = Cluster::start(3, Bugs::default());
    cluster.wait_roles(&["PRIMARY", "BACKUP", "BACKUP"]);
    assert_eq!(Conn::open(cluster.addrs[0]).ask("SET a 1"), "OK");
    let mut backup = Conn::open(cluster.addrs[2]);
    assert_eq!(backup.ask("GET a"), "NOTPRIMARY");
    assert_eq!(backup.ask("SET a 2"), "NOTPRIMARY");
    // A malformed line gets ERR and the connection stays usable.
    let mut primary = Conn::open(cluster.addrs[0]);
    let cases = [
        ("FROB a", "ERR unknown command \"FROB\""),
        ("SET a", "ERR usage: SET key value"),
        ("GET", "ERR usage: GET key"),
        ("", "ERR empty request"),
        ("JOIN x", "ERR invalid node id \"x\""),
    ];
    for (request, reply) in cases {
        assert_eq!(primary.ask(request), reply, "{request:?}");
    }
    // Bytes that are not UTF-8 are just part of an unknown key.
    primary.write_bytes(b"GET \xff\xfe\nGET a\n");
    assert_eq!(primary.read_line(), "NOTFOUND");
    assert_eq!(primary.read_line(), "VALUE 1");
    // A JOIN with an impossible id is refused (and ends the connection).
    for (request, reply) in [
        ("JOIN 0", "ERR invalid node id 0"),
        ("JOIN 7", "ERR invalid node id 7"),
    ] {
        assert_eq!(common::ask(cluster.addrs[0], request), reply);
    }
    assert_eq!(
        cluster.state(1).data.get("a").map(String::as_str),
        Some("1")
    );
}

#[test]
fn node_1_takes_over_when_node_0_stops_and_node_0_rejoins() {
    let mut cluster = Cluster::start(3, Bugs::default());
    cluster.wait_roles(&["PRIMARY", "BACKUP", "BACKUP"]);
    assert_eq!(Conn::open(cluster.addrs[0]).ask("SET a 1"), "OK");
    assert_eq!(Conn::open(cluster.addrs[0]).ask("SET b 1"), "OK");

    cluster.stop(0);
    cluster.wait_roles(&["DOWN", "PRIMARY", "BACKUP"]);
    let mut primary = Conn::open(cluster.addrs[1]);
    assert_eq!(primary.ask("GET a"), "VALUE 1");
    assert_eq!(primary.ask("SET a 2"), "OK");
    assert_eq!(primary.ask("SET c 2"), "OK");
    assert_eq!(cluster.state_text(2), "seq 4 keys 3\na 2\nb 1\nc 2\n");
    // Node 0 still has the state it had when it stopped.
    assert_eq!(cluster.state_text(0), "seq 2 keys 2\na 1\nb 1\n");

    cluster.restart(0);
    cluster.wait_roles(&["BACKUP", "PRIMARY", "BACKUP"]);
    // The snapshot brought node 0 up to date.
    assert_eq!(cluster.state_text(0), "seq 4 keys 3\na 2\nb 1\nc 2\n");
    assert_eq!(primary.ask("SET d 3"), "OK");
    for id in 0..3 {
        assert_eq!(
            cluster.state_text(id),
            "seq 5 keys 4\na 2\nb 1\nc 2\nd 3\n",
            "node {id}"
        );
    }
}

#[test]
fn a_restarted_backup_catches_up_through_the_snapshot() {
    let mut cluster = Cluster::start(3, Bugs::default());
    cluster.wait_roles(&["PRIMARY", "BACKUP", "BACKUP"]);
    assert_eq!(Conn::open(cluster.addrs[0]).ask("SET a 1"), "OK");
    cluster.stop(2);
    // The primary notices the dead backup at the next write and drops it.
    assert_eq!(Conn::open(cluster.addrs[0]).ask("SET a 2"), "OK");
    assert_eq!(Conn::open(cluster.addrs[0]).ask("SET b 2"), "OK");
    assert_eq!(cluster.state_text(2), "seq 1 keys 1\na 1\n");
    cluster.restart(2);
    cluster.wait_roles(&["PRIMARY", "BACKUP", "BACKUP"]);
    assert_eq!(cluster.state_text(2), "seq 3 keys 2\na 2\nb 2\n");
}

#[test]
fn client_workload_leaves_exactly_its_acknowledged_writes_everywhere() {
    let cluster = Cluster::start(3, Bugs::default());
    cluster.wait_roles(&["PRIMARY", "BACKUP", "BACKUP"]);
    let report = run_client(&client_args(&cluster, 60, 7));
    assert_eq!(report.exit_code(), 0, "{report:?}");
    assert_eq!(report.ops, 60);
    assert_eq!(report.sets_ok + report.gets_ok, 60);
    assert!(report.sets_ok > 10 && report.gets_ok > 10, "{report:?}");
    assert!(report.violations.is_empty());
    // Every SET was acknowledged, so the stores hold exactly the model.
    for id in 0..3 {
        let state = cluster.state(id);
        assert_eq!(state.seq, report.sets_ok, "node {id}");
        assert_eq!(state.data, report.acknowledged, "node {id}");
    }
    // Same seed, same workload: a second run is a deterministic replay.
    let again = run_client(&client_args(&cluster, 60, 7));
    assert_eq!(again.sets_ok, report.sets_ok);
    assert_eq!(
        again.acknowledged.keys().collect::<Vec<_>>(),
        report.acknowledged.keys().collect::<Vec<_>>()
    );
}

#[test]
fn client_sees_no_violation_when_the_primary_stops_mid_run() {
    let mut cluster = Cluster::start(3, Bugs::default());
    cluster.wait_roles(&["PRIMARY", "BACKUP", "BACKUP"]);
    let args = client_args(&cluster, 300, 3);
    let client = thread::spawn(move || run_client(&args));
    let dir1 = cluster.dirs[1].path().to_path_buf();
    wait_for("20 writes replicated to node 1", || {
        ordeal_demo::State::load(&dir1).is_ok_and(|s| s.seq >= 20)
    });
    cluster.stop(0);
    let report = client.join().unwrap();
    assert_eq!(report.exit_code(), 0, "{report:?}");
    assert_eq!(report.ops, 300);
    assert!(report.violations.is_empty());
    cluster.wait_roles(&["DOWN", "PRIMARY", "BACKUP"]);
    // Nothing is in flight any more, so both survivors hold the same state,
    // and it contains every acknowledged write (unless a later SET of the
    // same key, acknowledged or not, replaced it).
    let (one, two) = (cluster.state(1), cluster.state(2));
    assert_eq!(one, two);
    let missing: BTreeMap<_, _> = report
        .acknowledged
        .iter()
        .filter(|(k, _)| !one.data.contains_key(*k))
        .collect();
    assert!(missing.is_empty(), "keys lost: {missing:?}");
}

/// The most up-to-date node wins an election: a node that missed acknowledged writes (a
/// backup dropped for a late acknowledgement, back before it re-joined) must not become
/// primary over one that has them, or the others adopt its older snapshot and lose them.
/// Node 0 is down; node 1 holds nothing, node 2 an acknowledged write: node 1 alone would
/// win by its lower index.
#[test]
fn the_node_with_the_latest_write_wins_the_election_over_a_lower_index() {
    use std::collections::BTreeMap;
    use std::net::TcpListener;
    let listeners: Vec<TcpListener> = (0..2)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    let mut addrs = vec![common::dead_addr()];
    addrs.extend(listeners.iter().map(|l| l.local_addr().unwrap()));
    let mut cluster = Cluster {
        addrs,
        dirs: (0..3).map(|_| tempfile::tempdir().unwrap()).collect(),
        nodes: vec![None],
        bugs: Bugs::default(),
    };
    let ahead = ordeal_demo::State {
        seq: 1,
        data: BTreeMap::from([("k".to_string(), "v".to_string())]),
    };
    ahead.save(cluster.dirs[2].path(), true).unwrap();
    for (i, listener) in listeners.into_iter().enumerate() {
        let node = ordeal_demo::spawn_node(cluster.config(i + 1), listener).unwrap();
        cluster.nodes.push(Some(node));
    }
    cluster.wait_roles(&["DOWN", "BACKUP", "PRIMARY"]);
    assert_eq!(Conn::open(cluster.addrs[2]).ask("GET k"), "VALUE v");
    assert_eq!(cluster.state_text(1), "seq 1 keys 1\nk v\n");
}
