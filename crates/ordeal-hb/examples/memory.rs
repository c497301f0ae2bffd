//! Peak memory of building the outputs from a large trace, the way `ordeal run` does.
//!
//! `cargo run --release -p ordeal-hb --example memory -- [EVENTS] [discard] [in-memory]`
//! (default 2,000,000 events): synthesizes a Redis-like trace (a server node with an
//! append-only file, a benchmark node with 50 client threads, one TCP connection each,
//! request/response traffic), writes it to a temporary trace.jsonl, then builds summary and
//! every output from that file as `ordeal run` does (`write_trace_outputs`, streamed) and
//! prints the event count, peak RSS (VmHWM), bytes per event and the output phase's time.
//!
//! `discard` sends the two largest outputs, hb.jsonl and trace.json (about 1 KB and 280 bytes
//! an event here), to /dev/null: they are still built and written, but a 16M-event run needs
//! no 20 GB of disk. `in-memory` builds them the way the streamed path falls back to
//! (`HbGraph::from_trace` + `write_outputs`), for comparison.

use ordeal_events::{Class, Event, Header, NodeInfo, Proto, Sock, TraceWriter, SCHEMA_VERSION};
use ordeal_hb::Verdict;
use std::io::{BufWriter, Write};
use std::time::Instant;

fn vm_hwm_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

const CLIENTS: u64 = 50;
const SERVER_PID: i32 = 1000;
const BENCH_PID: i32 = 2000;

struct Gen<W: Write> {
    w: TraceWriter<W>,
    seq: u64,
}

impl<W: Write> Gen<W> {
    fn emit(&mut self, mut e: Event) {
        e.seq = self.seq;
        e.ts = 1_000 * (self.seq + 1);
        e.dur = if e.class == Some(Class::Proc) { 0 } else { 700 };
        self.seq += 1;
        self.w.write(&e).expect("writing the trace");
    }
}

fn ev(node: &str, pid: i32, tid: i32, call: &str, class: Class) -> Event {
    Event {
        node: node.into(),
        pid,
        tid,
        call: call.into(),
        class: Some(class),
        ..Default::default()
    }
}

fn sock(ino: u64, local: &str, remote: &str) -> Sock {
    Sock {
        ino,
        proto: Proto::Tcp,
        local: Some(local.into()),
        remote: (!remote.is_empty()).then(|| remote.into()),
        peer_ino: None,
        peer_node: None,
    }
}

fn synthesize<W: Write>(out: W, events: u64) -> u64 {
    let header = Header {
        schema: "ordeal-trace".into(),
        version: SCHEMA_VERSION,
        experiment: "memory".into(),
        started_at: "2026-01-01T00:00:00Z".into(),
        nodes: vec![
            NodeInfo {
                name: "redis".into(),
                role: "node".into(),
                ports: vec![6379],
                protocol: None,
            },
            NodeInfo {
                name: "bench".into(),
                role: "workload".into(),
                ports: vec![],
                protocol: None,
            },
        ],
    };
    let mut g = Gen {
        w: TraceWriter::new(out, &header).expect("writing the header"),
        seq: 0,
    };
    let server = "127.0.0.1:6379";
    let mut e = ev("redis", SERVER_PID, SERVER_PID, "spawn", Class::Proc);
    e.child = Some(SERVER_PID);
    e.argv = Some(vec!["redis-server".into(), "--port".into(), "6379".into()]);
    g.emit(e);
    let mut e = ev("redis", SERVER_PID, SERVER_PID, "listen", Class::Net);
    e.ret = Some(0);
    e.fd = Some(6);
    e.sock = Some(sock(1, server, ""));
    g.emit(e);
    let mut e = ev("bench", BENCH_PID, BENCH_PID, "spawn", Class::Proc);
    e.child = Some(BENCH_PID);
    e.argv = Some(vec!["redis-benchmark".into(), "-c".into(), "50".into()]);
    g.emit(e);
    let client = |k: u64| format!("127.0.0.1:{}", 40000 + k);
    for k in 0..CLIENTS {
        let tid = BENCH_PID + 1 + k as i32;
        let mut e = ev("bench", BENCH_PID, BENCH_PID, "clone", Class::Proc);
        e.ret = Some(tid as i64);
        e.child = Some(tid);
        g.emit(e);
        let mut e = ev("bench", BENCH_PID, tid, "connect", Class::Net);
        e.ret = Some(0);
        e.fd = Some(10);
        e.addr = Some(server.into());
        e.sock = Some(sock(100 + 2 * k, &client(k), server));
        g.emit(e);
        let mut e = ev("redis", SERVER_PID, SERVER_PID, "accept4", Class::Net);
        e.ret = Some(7 + k as i64);
        e.fd = Some(6);
        e.sock = Some(sock(101 + 2 * k, server, &client(k)));
        g.emit(e);
    }
    // Request/response rounds: the client writes a SET, the server reads it, appends it to the
    // AOF, answers; the client reads the answer. Every 50th round the server fsyncs.
    let (req, resp) = (33u64, 5u64);
    let mut off = vec![(0u64, 0u64); CLIENTS as usize];
    let mut aof = 0u64;
    let mut round = 0u64;
    while g.seq < events {
        let k = round % CLIENTS;
        let tid = BENCH_PID + 1 + k as i32;
        let (c, s) = (
            sock(100 + 2 * k, &client(k), server),
            sock(101 + 2 * k, server, &client(k)),
        );
        let (o_req, o_resp) = off[k as usize];
        let data = |node: &str, pid, tid, call: &str, s: &Sock, off, n: u64, fd| {
            let mut e = ev(node, pid, tid, call, Class::Data);
            e.ret = Some(n as i64);
            e.fd = Some(fd);
            e.len = Some(if call == "read" { 16384 } else { n });
            e.off = Some(off);
            e.sock = Some(s.clone());
            e
        };
        g.emit(data("bench", BENCH_PID, tid, "write", &c, o_req, req, 10));
        g.emit(data(
            "redis",
            SERVER_PID,
            SERVER_PID,
            "read",
            &s,
            o_req,
            req,
            7 + k as i32,
        ));
        let mut e = ev("redis", SERVER_PID, SERVER_PID, "write", Class::File);
        e.ret = Some(req as i64);
        e.fd = Some(5);
        e.len = Some(req);
        e.path = Some("/tmp/ordeal-run/redis/appendonly.aof".into());
        e.pos = Some(aof);
        aof += req;
        g.emit(e);
        if round % 50 == 49 {
            let mut e = ev("redis", SERVER_PID, SERVER_PID, "fsync", Class::File);
            e.ret = Some(0);
            e.fd = Some(5);
            e.path = Some("/tmp/ordeal-run/redis/appendonly.aof".into());
            g.emit(e);
        }
        g.emit(data(
            "redis",
            SERVER_PID,
            SERVER_PID,
            "write",
            &s,
            o_resp,
            resp,
            7 + k as i32,
        ));
        g.emit(data("bench", BENCH_PID, tid, "read", &c, o_resp, resp, 10));
        off[k as usize] = (o_req + req, o_resp + resp);
        round += 1;
    }
    g.w.flush().expect("flushing the trace");
    g.seq
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let events: u64 = args
        .first()
        .and_then(|a| a.replace('_', "").parse().ok())
        .unwrap_or(2_000_000);
    let discard = args.iter().any(|a| a == "discard");
    let in_memory = args.iter().any(|a| a == "in-memory");
    let dir = tempfile::tempdir().expect("temporary directory");
    let trace = dir.path().join("trace.jsonl");
    let file = std::fs::File::create(&trace).expect("creating trace.jsonl");
    let n = synthesize(BufWriter::new(file), events);
    let size = std::fs::metadata(&trace).map(|m| m.len()).unwrap_or(0);
    if discard {
        for name in ["hb.jsonl", "trace.json"] {
            std::os::unix::fs::symlink("/dev/null", dir.path().join(name)).expect("symlink");
        }
    }
    let before = vm_hwm_kb();
    let t0 = Instant::now();
    let summary = if in_memory {
        let graph = ordeal_hb::HbGraph::from_trace(&trace).expect("reading");
        let summary = ordeal_hb::Summary::build(&graph, Verdict::pass());
        ordeal_hb::write_outputs(dir.path(), &graph, &summary, ordeal_hb::DEFAULT_DOT_LIMIT)
            .expect("writing the outputs");
        summary
    } else {
        let out = ordeal_hb::write_trace_outputs(
            &trace,
            dir.path(),
            ordeal_hb::RunFacts::verdict(Verdict::pass()),
            ordeal_hb::DEFAULT_DOT_LIMIT,
        )
        .expect("writing the outputs");
        assert_eq!(out.in_memory, None);
        out.summary
    };
    let secs = t0.elapsed().as_secs_f64();
    let peak = vm_hwm_kb();
    let sizes: Vec<String> = ["hb.jsonl", "trace.json"]
        .iter()
        .map(|f| match std::fs::metadata(dir.path().join(f)) {
            Ok(m) if m.is_file() => format!("{f} {:.0} MiB", m.len() as f64 / 1048576.0),
            _ => format!("{f} discarded"),
        })
        .collect();
    println!(
        "events {n}  trace.jsonl {:.0} MiB  {}  output phase {secs:.1} s  peak RSS {:.0} MiB \
         (before the output phase {:.0} MiB)  {:.1} B/event  connections {}  messages {}",
        size as f64 / 1048576.0,
        sizes.join("  "),
        peak as f64 / 1024.0,
        before as f64 / 1024.0,
        (peak.saturating_sub(before) * 1024) as f64 / n as f64,
        summary.connections.len(),
        summary.edges.message,
    );
}
