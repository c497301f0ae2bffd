//! Behaviour fingerprints: a canonical text of a run's communication structure and its hash.
//!
//! What is kept: per participant (node or workload, in header order), its lifecycle (how many
//! incarnations were spawned, how each ended) and, per peer, its connections in order of
//! appearance, each as the ordered list of its *exchanges*: `C` connect, `A` accept,
//! `S<bytes>` / `R<bytes>` a maximal run of sends / receives (so a message split over two reads
//! or two sends merged by the kernel give the same exchange), `EOF`, `E:<ERRNO>` a failed call.
//! Then the cross-node edges of the happens-before graph (messages and connects), each named by
//! its two ends as `node.peer#connection.exchange`, as a sorted set. Then the outcome.
//!
//! Only what happens from the first event of a workload on counts: start-up (elections, nodes
//! finding each other) varies with scheduling and is not what a campaign's faults change.
//!
//! What is abstracted away: pids, tids, thread structure, ports and addresses, socket inodes,
//! timestamps and durations, `EAGAIN` retries, the fault markers themselves (a fault is visible
//! through its effects). Two runs that exchanged the same bytes in the same per-connection order
//! with the same causal links get the same fingerprint.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;

use ordeal_events::{Class, Event, Header, SocketOp};
use ordeal_hb::{EdgeKind, HbGraph};

/// A run's behaviour: the canonical text and its 64-bit FNV-1a hash (16 hex digits).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint {
    pub hash: String,
    pub canonical: String,
}

/// FNV-1a, 64 bits: stable across Rust versions and platforms (unlike `DefaultHasher`).
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// One end's position in the canonical structure: (node, peer, connection ordinal, exchange).
type Pos = (String, String, usize, usize);

/// The fingerprint of a run from its trace (`events` in seq order, `graph` built from them)
/// and its outcome (a normalized verdict, see [`crate::signature::outcome`]).
pub fn fingerprint(header: &Header, graph: &HbGraph, outcome: &str) -> Fingerprint {
    let events = graph.events();
    // (node, peer) → connection ordinal by socket inode, in order of first appearance.
    let mut conn_ord: HashMap<(String, String, u64), usize> = HashMap::new();
    let mut conn_count: HashMap<(String, String), usize> = HashMap::new();
    // (node, peer, conn) → exchanges.
    let mut streams: BTreeMap<(String, String, usize), Vec<String>> = BTreeMap::new();
    // seq → position of its exchange.
    let mut pos_of: HashMap<u64, Pos> = HashMap::new();
    // node → lifecycle tokens.
    let mut life: BTreeMap<String, Vec<String>> = BTreeMap::new();

    // Start-up (until the first event of a workload) is left out: how nodes find each other
    // at boot varies with scheduling, and the faults of a campaign act after it.
    let workloads: Vec<&str> = header
        .nodes
        .iter()
        .filter(|n| n.role == "workload")
        .map(|n| n.name.as_str())
        .collect();
    let from = events
        .iter()
        .position(|e| workloads.contains(&e.node.as_str()))
        .unwrap_or(0);
    for ev in &events[from..] {
        match ev.class {
            Some(Class::Proc) => {
                if let Some(t) = lifecycle_token(ev) {
                    life.entry(ev.node.clone()).or_default().push(t);
                }
                continue;
            }
            Some(Class::Net) | Some(Class::Data) => {}
            _ => continue,
        }
        let Some(sock) = &ev.sock else { continue };
        if ev.errno.as_deref() == Some("EAGAIN") || ev.errno.as_deref() == Some("EINPROGRESS") {
            continue;
        }
        let token = match (ev.class, ev.call.as_str()) {
            (Some(Class::Net), _) if ev.socket_op() == Some(SocketOp::Connect) => connect_token(ev),
            (Some(Class::Net), _) if ev.socket_op() == Some(SocketOp::Accept) => {
                Some("A".to_string())
            }
            (Some(Class::Data), _) => data_token(ev),
            _ => None,
        };
        let Some(token) = token else { continue };
        let peer = sock
            .peer_node
            .clone()
            .unwrap_or_else(|| ordeal_hb::EXTERNAL.to_string());
        let key = (ev.node.clone(), peer.clone());
        let next = conn_count.entry(key.clone()).or_insert(0);
        let ord = *conn_ord
            .entry((ev.node.clone(), peer.clone(), sock.ino))
            .or_insert_with(|| {
                *next += 1;
                *next - 1
            });
        let stream = streams
            .entry((ev.node.clone(), peer.clone(), ord))
            .or_default();
        // Merge a run of sends (or receives) into one exchange.
        let merged = match (stream.last_mut(), token.as_bytes()[0]) {
            (Some(last), kind @ (b'S' | b'R')) if last.as_bytes()[0] == kind && last != "EOF" => {
                let prev: u64 = last[1..].parse().unwrap_or(0);
                let add: u64 = token[1..].parse().unwrap_or(0);
                *last = format!("{}{}", kind as char, prev + add);
                true
            }
            _ => false,
        };
        if !merged {
            stream.push(token);
        }
        pos_of.insert(ev.seq, (ev.node.clone(), peer, ord, stream.len() - 1));
    }

    let mut edges: BTreeSet<String> = BTreeSet::new();
    for e in graph.edges() {
        let tag = match e.kind {
            EdgeKind::Message { .. } => "m",
            EdgeKind::Connect => "c",
            _ => continue,
        };
        let (Some(a), Some(b)) = (pos_of.get(&e.from), pos_of.get(&e.to)) else {
            continue;
        };
        if a.0 == b.0 {
            continue;
        }
        edges.insert(format!(
            "{tag} {}.{}#{}.{} > {}.{}#{}.{}",
            a.0, a.1, a.2, a.3, b.0, b.1, b.2, b.3
        ));
    }

    let mut text = String::new();
    for n in &header.nodes {
        if n.role == "check" {
            continue;
        }
        let _ = writeln!(text, "{} {}", n.role, n.name);
        if let Some(l) = life.get(&n.name) {
            let _ = writeln!(text, "  life {}", l.join(" "));
        }
        for ((node, peer, ord), ex) in &streams {
            if *node == n.name {
                let _ = writeln!(text, "  {peer}#{ord} {}", ex.join(" "));
            }
        }
    }
    text.push_str("edges\n");
    for e in &edges {
        let _ = writeln!(text, "  {e}");
    }
    let _ = writeln!(text, "outcome {outcome}");
    Fingerprint {
        hash: format!("{:016x}", fnv1a(text.as_bytes())),
        canonical: text,
    }
}

fn lifecycle_token(ev: &Event) -> Option<String> {
    match ev.call.as_str() {
        "spawn" => Some("spawn".into()),
        // Only the end of a whole process matters, not of its threads: a process ends when its
        // thread-group leader does.
        "exit" if ev.pid == ev.tid => Some(match (&ev.signal, ev.code) {
            (Some(s), _) => format!("exit:{s}"),
            (None, Some(c)) => format!("exit:{c}"),
            _ => "exit".into(),
        }),
        _ => None,
    }
}

fn connect_token(ev: &Event) -> Option<String> {
    match &ev.errno {
        None => Some("C".into()),
        Some(e) => Some(format!("C!{e}")),
    }
}

fn data_token(ev: &Event) -> Option<String> {
    if let Some(e) = &ev.errno {
        return Some(format!("E:{e}"));
    }
    let moved = ev.moved();
    if ev.is_send() {
        (moved > 0).then(|| format!("S{moved}"))
    } else if ev.is_recv() {
        Some(if moved == 0 {
            "EOF".into()
        } else {
            format!("R{moved}")
        })
    } else {
        None
    }
}
