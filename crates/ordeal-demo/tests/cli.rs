//! Command-line parsing, exit codes and the client's checking.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::thread;

use clap::Parser;
use common::dead_addr;
use ordeal_demo::{run, run_client, run_node, Bugs, ClientArgs, KvCommand, NodeConfig, StopSignal};

#[derive(Parser, Debug)]
struct Cli {
    #[command(subcommand)]
    kv: KvCommand,
}

fn parse(args: &[&str]) -> Result<KvCommand, clap::Error> {
    Cli::try_parse_from(std::iter::once("kv").chain(args.iter().copied())).map(|cli| cli.kv)
}

#[test]
fn node_flags_parse() {
    let cmd = parse(&[
        "node",
        "--id",
        "1",
        "--peers",
        "127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003",
        "--data-dir",
        "/tmp/kv1",
        "--bugs",
        "stale-read,ack-before-replicate",
    ])
    .unwrap();
    let KvCommand::Node(args) = cmd else {
        panic!("expected node, got {cmd:?}")
    };
    assert_eq!(args.id, 1);
    assert_eq!(args.peers.len(), 3);
    assert_eq!(args.peers[2].to_string(), "127.0.0.1:7003");
    assert_eq!(args.data_dir.to_str(), Some("/tmp/kv1"));
    assert_eq!(
        args.bugs,
        Bugs {
            stale_read: true,
            ack_before_replicate: true,
            ..Bugs::default()
        }
    );
    assert_eq!(args.peer_timeout_ms, 1000);
    assert_eq!(args.election_timeout_ms, 30_000);

    let with_empty_bugs = [
        "node",
        "--id",
        "0",
        "--peers",
        "127.0.0.1:1",
        "--data-dir",
        "d",
        "--bugs",
        "",
    ];
    let KvCommand::Node(args) = parse(&with_empty_bugs).unwrap() else {
        panic!("expected node")
    };
    assert_eq!(args.bugs, Bugs::default());
}

#[test]
fn unknown_bug_name_is_rejected() {
    let err = parse(&[
        "node",
        "--id",
        "0",
        "--peers",
        "127.0.0.1:1",
        "--data-dir",
        "d",
        "--bugs",
        "stale-read,oops",
    ])
    .unwrap_err();
    assert!(err.to_string().contains("unknown bug `oops`"), "{err}");
}

#[test]
fn client_flags_have_defaults() {
    let KvCommand::Client(args) = parse(&["client", "--nodes", "127.0.0.1:1,127.0.0.1:2"]).unwrap()
    else {
        panic!("expected client")
    };
    assert_eq!(args.nodes.len(), 2);
    assert_eq!(
        (args.ops, args.keys, args.seed, args.timeout_ms),
        (50, 5, 1, 2000)
    );
    assert!(parse(&["client", "--nodes", "127.0.0.1:1", "--keys", "0"]).is_err());
    assert!(parse(&["client"]).is_err());
}

#[test]
fn corrupt_state_file_is_an_error_with_exit_code_2() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("state"), "seq 3 keys 2\na 1\n").unwrap();
    let addr = dead_addr();
    let err = run_node(
        NodeConfig::new(0, vec![addr], dir.path()),
        &StopSignal::new(),
    )
    .unwrap_err();
    let message = format!("{err:#}");
    assert!(message.contains("corrupt state file"), "{message}");
    assert!(
        message.contains("header announces 2 keys but the file has 1"),
        "{message}"
    );

    let args = [
        "node",
        "--id",
        "0",
        "--peers",
        &addr.to_string(),
        "--data-dir",
        dir.path().to_str().unwrap(),
    ];
    assert_eq!(run(parse(&args).unwrap()).unwrap(), 2);
}

#[test]
fn out_of_range_id_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let err = run_node(
        NodeConfig::new(3, vec![dead_addr()], dir.path()),
        &StopSignal::new(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("--id 3 is out of range"), "{err}");
}

#[test]
fn client_without_a_primary_gives_up_with_exit_code_2() {
    let args = ClientArgs {
        nodes: vec![dead_addr(), dead_addr()],
        ops: 5,
        keys: 2,
        seed: 1,
        timeout_ms: 200,
    };
    let report = run_client(&args);
    assert_eq!(report.ops, 0);
    assert_eq!(report.exit_code(), 2);
    let error = report.error.unwrap();
    assert!(
        error.contains("no node served the request within 200 ms"),
        "{error}"
    );
}

/// A "store" that acknowledges every SET and forgets it: the client must
/// catch the lost write.
#[test]
fn client_reports_a_lost_write_as_a_violation() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let args = ClientArgs {
        nodes: vec![listener.local_addr().unwrap()],
        ops: 20,
        keys: 1,
        seed: 1,
        timeout_ms: 5000,
    };
    let forgetful = thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut out = stream.try_clone().unwrap();
        for line in BufReader::new(stream).lines() {
            let reply = if line.unwrap().starts_with("SET") {
                "OK"
            } else {
                "NOTFOUND"
            };
            writeln!(out, "{reply}").unwrap();
        }
    });
    let report = run_client(&args);
    forgetful.join().unwrap();
    assert_eq!(report.exit_code(), 1, "{report:?}");
    assert_eq!(report.ops, 20);
    assert!(report.sets_ok > 0 && report.gets_ok > 0);
    let first = &report.violations[0];
    assert!(first.contains("returned NOTFOUND, but SET k0 v"), "{first}");
    assert!(first.contains("was acknowledged"), "{first}");
}
