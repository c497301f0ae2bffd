//! Each optional bug changes behaviour observably, and only when switched on.

mod common;

use std::io::{ErrorKind, Read};
use std::net::TcpListener;
use std::thread;
use std::time::Duration;

use common::{dead_addr, wait_for, Cluster, Conn};
use ordeal_demo::{spawn_node, Bugs, NodeConfig, State, STATE_FILE};

/// Writes `first`, pauses, then writes `second`, so that the node's read()
/// returns them separately. The pause is the only way to force a short read
/// from outside the node; TCP_NODELAY (set by `Conn::open`) makes `first`
/// leave at once.
fn write_in_two_segments(conn: &mut Conn, first: &str, second: &str) {
    conn.write(first);
    thread::sleep(Duration::from_millis(100));
    conn.write(second);
}

fn single_primary(bugs: Bugs) -> Cluster {
    let cluster = Cluster::start(1, bugs);
    cluster.wait_roles(&["PRIMARY"]);
    cluster
}

#[test]
fn request_split_over_two_segments_is_reassembled() {
    let cluster = single_primary(Bugs::default());
    let mut conn = Conn::open(cluster.addrs[0]);
    write_in_two_segments(&mut conn, "SE", "T a 1\n");
    assert_eq!(conn.read_line(), "OK");
    write_in_two_segments(&mut conn, "SET c 1", "2\n");
    assert_eq!(conn.read_line(), "OK");
    assert_eq!(conn.ask("GET c"), "VALUE 12");
    // Two requests in one segment get two replies.
    conn.write("SET b 2\nGET b\n");
    assert_eq!(conn.read_line(), "OK");
    assert_eq!(conn.read_line(), "VALUE 2");
    assert_eq!(conn.ask("GET a"), "VALUE 1");
}

#[test]
fn no_short_read_handling_misparses_split_and_batched_requests() {
    let bugs = Bugs {
        no_short_read_handling: true,
        ..Bugs::default()
    };
    let cluster = single_primary(bugs);
    let mut conn = Conn::open(cluster.addrs[0]);
    write_in_two_segments(&mut conn, "SE", "T a 1\n");
    assert_eq!(conn.read_line(), "ERR unknown command \"SE\"");
    assert_eq!(conn.read_line(), "ERR unknown command \"T\"");
    conn.write("SET b 2\nGET b\n");
    assert_eq!(conn.read_line(), "ERR usage: SET key value");
    // Neither write happened.
    assert_eq!(conn.ask("GET a"), "NOTFOUND");
    assert_eq!(conn.ask("GET b"), "NOTFOUND");
    // Worse, a split can parse as a different, valid request: the client
    // hears OK for `SET c 12` while the store now holds c = 1.
    write_in_two_segments(&mut conn, "SET c 1", "2\n");
    assert_eq!(conn.read_line(), "OK");
    assert_eq!(conn.read_line(), "ERR unknown command \"2\"");
    assert_eq!(conn.ask("GET c"), "VALUE 1");
}

/// Node 1 of two, whose node 0 is alive but never answers: node 1 can
/// neither find a primary nor become one, so it stays ELECTING with the
/// state it loaded from disk.
fn stuck_node(bugs: Bugs) -> (ordeal_demo::NodeHandle, TcpListener, tempfile::TempDir) {
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let peers = vec![silent.local_addr().unwrap(), listener.local_addr().unwrap()];
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(STATE_FILE), "seq 4 keys 1\na old\n").unwrap();
    let config = NodeConfig {
        bugs,
        peer_timeout: Duration::from_millis(200),
        election_timeout: Duration::from_secs(60),
        ..NodeConfig::new(1, peers, dir.path())
    };
    (spawn_node(config, listener).unwrap(), silent, dir)
}

#[test]
fn a_node_that_is_not_primary_refuses_reads() {
    let (node, _silent, _dir) = stuck_node(Bugs::default());
    let mut conn = Conn::open(node.addr());
    assert_eq!(conn.ask("ROLE"), "ELECTING");
    assert_eq!(conn.ask("GET a"), "NOTPRIMARY");
    assert_eq!(conn.ask("SET a new"), "NOTPRIMARY");
    node.stop().unwrap();
}

#[test]
fn stale_read_serves_reads_from_a_node_that_is_not_current() {
    let bugs = Bugs {
        stale_read: true,
        ..Bugs::default()
    };
    let (node, _silent, _dir) = stuck_node(bugs);
    let mut conn = Conn::open(node.addr());
    assert_eq!(conn.ask("ROLE"), "ELECTING");
    assert_eq!(conn.ask("GET a"), "VALUE old");
    assert_eq!(conn.ask("SET a new"), "NOTPRIMARY");
    node.stop().unwrap();

    // In a healthy cluster, backups now answer reads too.
    let cluster = Cluster::start(3, bugs);
    cluster.wait_roles(&["PRIMARY", "BACKUP", "BACKUP"]);
    assert_eq!(Conn::open(cluster.addrs[0]).ask("SET a 1"), "OK");
    assert_eq!(Conn::open(cluster.addrs[2]).ask("GET a"), "VALUE 1");
}

/// A primary (node 0 of two) whose only backup is played by the test, so the
/// test sees exactly when replication happens relative to the client's OK.
struct FakeBackup {
    node: ordeal_demo::NodeHandle,
    backup: Conn,
    _dir: tempfile::TempDir,
}

fn primary_with_fake_backup(bugs: Bugs) -> FakeBackup {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    // Node 1's address refuses connections, so node 0 becomes primary.
    let peers = vec![listener.local_addr().unwrap(), dead_addr()];
    let dir = tempfile::tempdir().unwrap();
    let config = NodeConfig {
        bugs,
        peer_timeout: Duration::from_secs(20),
        ..NodeConfig::new(0, peers, dir.path())
    };
    let node = spawn_node(config, listener).unwrap();
    wait_for("node 0 primary", || common::role(node.addr()) == "PRIMARY");
    let mut backup = Conn::open(node.addr());
    assert_eq!(backup.ask("JOIN 1"), "SNAPSHOT 0 0");
    // The primary holds its write lock until it has read this ACK, so any
    // SET sent from now on is replicated to us.
    backup.write("ACK 0\n");
    FakeBackup {
        node,
        backup,
        _dir: dir,
    }
}

#[test]
fn ok_is_sent_only_after_the_backup_acknowledged() {
    let mut fake = primary_with_fake_backup(Bugs::default());
    let mut client = Conn::open(fake.node.addr());
    client.write("SET a 1\n");
    assert_eq!(fake.backup.read_line(), "REPL 1 a 1");
    // The primary is waiting for our ACK, so no reply can be on its way.
    client.stream.set_nonblocking(true).unwrap();
    let mut byte = [0u8; 1];
    let early = client.stream.read(&mut byte);
    assert_eq!(
        early.map_err(|e| e.kind()),
        Err(ErrorKind::WouldBlock),
        "client got a reply before the backup acknowledged"
    );
    client.stream.set_nonblocking(false).unwrap();
    fake.backup.write("ACK 1\n");
    assert_eq!(client.read_line(), "OK");
    fake.node.stop().unwrap();
}

#[test]
fn ack_before_replicate_answers_ok_before_the_backup_has_the_write() {
    let bugs = Bugs {
        ack_before_replicate: true,
        ..Bugs::default()
    };
    let mut fake = primary_with_fake_backup(bugs);
    let mut client = Conn::open(fake.node.addr());
    // OK arrives while the backup has neither received nor acknowledged
    // the write: had the primary crashed now, the write would be lost.
    assert_eq!(client.ask("SET a 1"), "OK");
    assert_eq!(fake.backup.read_line(), "REPL 1 a 1");
    fake.backup.write("ACK 1\n");
    assert_eq!(client.ask("GET a"), "VALUE 1");
    fake.node.stop().unwrap();
}

#[test]
fn rename_without_fsync_still_writes_the_same_state() {
    // Skipping fsync only matters after a power loss, which a test cannot
    // cause; without one the files must be identical to the correct mode's.
    let bugs = Bugs {
        rename_without_fsync: true,
        ..Bugs::default()
    };
    let cluster = Cluster::start(3, bugs);
    cluster.wait_roles(&["PRIMARY", "BACKUP", "BACKUP"]);
    assert_eq!(Conn::open(cluster.addrs[0]).ask("SET a 1"), "OK");
    for id in 0..3 {
        assert_eq!(cluster.state_text(id), "seq 1 keys 1\na 1\n");
        assert_eq!(State::load(cluster.dirs[id].path()).unwrap().data["a"], "1");
    }
}
