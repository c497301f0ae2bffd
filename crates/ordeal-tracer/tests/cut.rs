//! `Action::Cut`: calls across a partition behave as over a network that drops packets until
//! the interceptor's gate opens. Checked on client.c and server.c (`hello`, `world`, `pong`).
mod common;
use common::{compile, poll_file, spec};

use ordeal_events::{Event, FaultRef};
use ordeal_tracer::{Action, Config, ExitStatus, Interceptor, Notice, Tracer};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Cuts the client's calls named `calls` while the test keeps the gate `g` closed.
struct CutClient {
    calls: &'static [&'static str],
    crossed: Arc<AtomicUsize>,
    open: Arc<AtomicBool>,
}

impl Interceptor for CutClient {
    fn at_entry(&mut self, ev: &Event) -> Action {
        if ev.node == "client" && self.calls.contains(&ev.call.as_str()) && !self.open.load(SeqCst)
        {
            self.crossed.fetch_add(1, SeqCst);
            return Action::Cut {
                by: FaultRef::effect_of("g"),
                gate: "g".into(),
            };
        }
        Action::Proceed
    }
    fn at_exit(&mut self, _: &Event) -> Action {
        Action::Proceed
    }
    fn gate_open(&mut self, gate: &str) -> bool {
        assert_eq!(gate, "g");
        self.open.load(SeqCst)
    }
}

fn mark(e: &Event) -> String {
    e.fault.as_ref().map(|f| f.to_string()).unwrap_or_default()
}

/// Runs server.c and client.c with the client's `calls` cut until `n` of them crossed, then
/// opens the gate; returns when it opened and the events.
fn cut_until(calls: &'static [&'static str], n: usize) -> (u64, Vec<Event>) {
    let (server, client) = (compile("server"), compile("client"));
    cut_pair(calls, n, (&server, &[]), (&client, &[]))
}

/// As [`cut_until`] with any server and client program (and arguments before the port).
fn cut_pair(
    calls: &'static [&'static str],
    n: usize,
    server: (&std::path::Path, &[&str]),
    client: (&std::path::Path, &[&str]),
) -> (u64, Vec<Event>) {
    let dir = tempfile::tempdir().unwrap();
    let (crossed, open) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicBool::new(false)),
    );
    let hook = CutClient {
        calls,
        crossed: crossed.clone(),
        open: open.clone(),
    };
    let cfg = Config {
        origin_ns: ordeal_tracer::monotonic_ns(),
        payload_bytes: 16,
        ..Default::default()
    };
    let origin = cfg.origin_ns;
    let t = Tracer::start_with(cfg, Vec::new(), Some(Box::new(hook))).unwrap();
    t.spawn(spec("server", server.0, server.1, dir.path()))
        .unwrap();
    let line = poll_file(&dir.path().join("server.stdout"), "listening");
    let port = line.split_whitespace().nth(1).unwrap().to_string();
    let args: Vec<&str> = client.1.iter().copied().chain([port.as_str()]).collect();
    t.spawn(spec("client", client.0, &args, dir.path()))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while crossed.load(SeqCst) < n {
        assert!(Instant::now() < deadline, "not {n} calls crossed the cut");
        std::thread::park_timeout(Duration::from_millis(2));
    }
    let opened_at = ordeal_tracer::monotonic_ns() - origin;
    open.store(true, SeqCst);
    t.wake().unwrap();
    let mut exits = Vec::new();
    while exits.len() < 2 {
        let left = deadline.saturating_duration_since(Instant::now());
        match t.notices().recv_timeout(left) {
            Ok(Notice::Exited {
                label,
                status,
                root: true,
                ..
            }) => exits.push((label, status)),
            Ok(_) => {}
            Err(e) => panic!("not both exited: {e}"),
        }
    }
    exits.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        exits,
        [
            ("client".to_string(), ExitStatus::Code(7)),
            ("server".to_string(), ExitStatus::Code(0))
        ]
    );
    let (_, events) = t.shutdown().unwrap();
    (opened_at, events)
}

#[test]
fn sends_across_a_cut_succeed_at_once_and_arrive_in_order_when_the_gate_opens() {
    // Both writes are queued, then the client waits for `pong`.
    let (opened_at, events) = cut_until(&["write"], 2);
    let writes: Vec<&Event> = events
        .iter()
        .filter(|e| e.node == "client" && e.call == "write")
        .collect();
    assert_eq!(
        writes
            .iter()
            .map(|e| (e.ret, mark(e), e.data.as_deref()))
            .collect::<Vec<_>>(),
        [
            (Some(5), "by g: queued 5 bytes".into(), Some("hello")),
            (Some(5), "by g: queued 5 bytes".into(), Some("world")),
        ]
    );
    assert!(writes.iter().all(|w| w.ts + w.dur < opened_at));
    // One mark on the client at the gate's opening, then the server reads all ten bytes.
    let delivered: Vec<&Event> = events.iter().filter(|e| e.call == "fault").collect();
    assert_eq!(delivered.len(), 1);
    assert_eq!(
        (delivered[0].node.as_str(), mark(delivered[0])),
        ("client", "by g: delivered 10 bytes at the heal".into())
    );
    assert!(delivered[0].ts >= opened_at);
    let reads: Vec<&Event> = events
        .iter()
        .filter(|e| e.node == "server" && e.call == "read" && e.moved() > 0)
        .collect();
    assert!(
        reads.iter().all(|r| r.ts + r.dur >= delivered[0].ts),
        "{reads:?}"
    );
    assert_eq!(reads.iter().map(|r| r.moved()).sum::<u64>(), 10);
    assert_eq!(reads[0].data.as_deref().map(|d| &d[..5]), Some("hello"));
}

#[test]
fn a_connect_across_a_cut_hangs_until_the_gate_opens_and_a_syn_is_sent_again() {
    // The client's blocking connect waits in the kernel until the gate opens and a SYN
    // goes again (its handshake's answers were dropped).
    let (opened_at, events) = cut_until(&["connect"], 1);
    let c = events
        .iter()
        .find(|e| e.node == "client" && e.call == "connect")
        .unwrap();
    assert_eq!(
        (c.ret, mark(c).as_str()),
        (Some(0), "by g: handshake dropped")
    );
    assert!(
        c.ts + c.dur > opened_at,
        "connected after the gate opened: {c:?}"
    );
    let accept = events
        .iter()
        .find(|e| e.node == "server" && e.call.starts_with("accept"))
        .unwrap();
    assert!(accept.ts + accept.dur > opened_at, "{accept:?}");
}

/// A shutdown for writing of a socket whose bytes are queued does not overtake them: the
/// server reads everything, then the end of the stream.
#[test]
fn a_shutdown_behind_queued_bytes_sends_its_fin_after_them() {
    let prog = compile("halfclose");
    let (opened_at, events) = cut_pair(&["write"], 2, (&prog, &[]), (&prog, &[]));
    let sd = events
        .iter()
        .find(|e| e.node == "client" && e.call == "shutdown")
        .unwrap();
    assert_eq!(
        (sd.ret, mark(sd).as_str()),
        (Some(0), "by g: shutdown after the queued bytes")
    );
    assert!(sd.ts + sd.dur < opened_at);
    let reads: Vec<(i64, u64)> = events
        .iter()
        .filter(|e| e.node == "server" && e.call == "read")
        .map(|e| (e.ret.unwrap(), e.ts + e.dur))
        .collect();
    assert_eq!(reads.iter().map(|r| r.0).sum::<i64>(), 10, "{reads:?}");
    assert_eq!(
        reads.last().map(|r| r.0),
        Some(0),
        "then the end: {reads:?}"
    );
    assert!(reads.iter().all(|r| r.1 >= opened_at), "{reads:?}");
}

/// Records what the interceptor saw of the server's `accept`, and marks it when asked.
struct Accepts {
    mark: bool,
    entered: Arc<AtomicUsize>,
    withdrawn: Arc<std::sync::Mutex<Vec<Event>>>,
}

impl Interceptor for Accepts {
    fn at_entry(&mut self, ev: &Event) -> Action {
        if ev.call != "accept" && ev.call != "accept4" {
            return Action::Proceed;
        }
        self.entered.fetch_add(1, SeqCst);
        if self.mark {
            return Action::Mark {
                by: FaultRef::fired("m"),
                what: "seen".into(),
            };
        }
        Action::Proceed
    }
    fn at_exit(&mut self, _: &Event) -> Action {
        Action::Proceed
    }
    fn withdrawn(&mut self, ev: &Event) {
        self.withdrawn.lock().unwrap().push(ev.clone());
    }
}

/// server.c blocked in `accept` (no client comes) is killed: the call never returns.
fn kill_in_accept(mark: bool) -> (Vec<Event>, Vec<Event>) {
    let server = compile("server");
    let dir = tempfile::tempdir().unwrap();
    let entered = Arc::new(AtomicUsize::new(0));
    let withdrawn = Arc::new(std::sync::Mutex::new(Vec::new()));
    let hook = Accepts {
        mark,
        entered: entered.clone(),
        withdrawn: withdrawn.clone(),
    };
    let t = Tracer::start_with(Config::default(), Vec::new(), Some(Box::new(hook))).unwrap();
    t.spawn(spec("server", &server, &[], dir.path())).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while entered.load(SeqCst) == 0 {
        assert!(Instant::now() < deadline, "accept never entered");
        std::thread::park_timeout(Duration::from_millis(2));
    }
    t.signal_node("server", libc::SIGKILL, None).unwrap();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match t.notices().recv_timeout(left) {
            Ok(Notice::Exited { root: true, .. }) => break,
            Ok(_) => {}
            Err(e) => panic!("the server did not exit: {e}"),
        }
    }
    let (_, events) = t.shutdown().unwrap();
    let w = withdrawn.lock().unwrap().clone();
    (events, w)
}

#[test]
fn a_call_its_process_died_in_is_withdrawn_from_what_counted_it() {
    let (events, withdrawn) = kill_in_accept(false);
    let accepts = |evs: &[Event]| -> Vec<(String, String)> {
        evs.iter()
            .filter(|e| e.call.starts_with("accept"))
            .map(|e| (e.node.clone(), format!("{:?}", e.ret)))
            .collect()
    };
    // Not in the trace, and taken back from the interceptor, which had seen it at entry.
    assert_eq!(accepts(&events), []);
    assert_eq!(
        accepts(&withdrawn),
        [("server".to_string(), "None".to_string())]
    );
}

#[test]
fn a_call_a_fault_marked_is_recorded_without_a_result_when_its_process_dies_in_it() {
    let (events, withdrawn) = kill_in_accept(true);
    let accepts: Vec<&Event> = events
        .iter()
        .filter(|e| e.call.starts_with("accept"))
        .collect();
    assert_eq!(accepts.len(), 1, "{accepts:?}");
    assert_eq!(accepts[0].ret, None);
    assert_eq!(mark(accepts[0]), "m: seen");
    assert!(withdrawn.is_empty(), "{withdrawn:?}");
}
