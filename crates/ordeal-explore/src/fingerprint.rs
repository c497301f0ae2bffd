//! Behaviour fingerprints: what a run did, abstracted from timing, as a canonical text and
//! its hash.
//!
//! A run's behaviour is what its participants asked of each other and what they were
//! answered, not how the bytes were batched or when: per pair of participants (caller →
//! callee), the **set** of decoded operations (ordeal-calls: `SET → +OK`, `GET → nil`,
//! `REPL → ACK`, `SET → (unanswered)`), so that a hundred SETs and one SET, pipelined or not,
//! in whatever interleaving, are the same behaviour, and an error, a timeout or a new kind of
//! request is a new one; where the bytes were not decoded, the **shape** of the traffic per
//! pair (`sends`, `receives`, failed calls by errno); per participant, the lifecycle of the
//! processes ordeal started, repeats collapsed (`spawn exit:SIGKILL spawn`); and the outcome.
//!
//! A participant's traffic with itself is left out (its own housekeeping), and so are a
//! response whose request was not seen and a request whose response may be in bytes not
//! captured (what the capture missed, not what the system did), and an operation a pair
//! already exchanged before the workload (its steady state: heartbeats, health checks, whose
//! periods fall inside the workload or not by timing). Only the workload
//! phase counts (from the first event of a workload to the last workload's exit): start-up (elections, nodes finding each other) and teardown vary with scheduling,
//! and a campaign's faults act in between. Operation names are abstracted (digits → `#`), ends
//! ordeal does not run are `external`, and nothing of pids, ports, inodes, counts, sizes or
//! times is kept.
//!
//! [`diff`] says what distinguishes two behaviours: the lines of one canonical text that the
//! other lacks.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use ordeal_calls::{Call, CallStatus};
use ordeal_events::{Class, Event, Header, SocketOp};

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

/// The fingerprint of a run from its trace (`events` in seq order) and its outcome (a
/// normalized verdict, see [`crate::signature::outcome`]).
pub fn fingerprint(header: &Header, events: &[Event], outcome: &str) -> Fingerprint {
    fingerprint_with_roles(header, events, outcome, &BTreeMap::new())
}

/// [`fingerprint`] where some nodes are known by a role (the experiment's `[roles]`, as
/// probed when the workloads started): such a node is named by its role (`leader`; several
/// holders of one role are interchangeable among themselves: `follower#1`, `follower#2`).
pub fn fingerprint_with_roles(
    header: &Header,
    events: &[Event],
    outcome: &str,
    roles: &BTreeMap<String, String>,
) -> Fingerprint {
    let names: BTreeSet<&str> = header
        .nodes
        .iter()
        .filter(|n| n.role != "check")
        .map(|n| n.name.as_str())
        .collect();
    let workloads: BTreeSet<&str> = header
        .nodes
        .iter()
        .filter(|n| n.role == "workload")
        .map(|n| n.name.as_str())
        .collect();
    let from = events
        .iter()
        .position(|e| workloads.contains(e.node.as_str()))
        .unwrap_or(0);
    let until = events
        .iter()
        .rposition(|e| workloads.contains(e.node.as_str()) && e.call == "exit" && e.pid == e.tid)
        .unwrap_or(events.len().saturating_sub(1));
    let (first_seq, last_seq) = (
        events.get(from).map_or(0, |e| e.seq),
        events.get(until).map_or(u64::MAX, |e| e.seq),
    );
    let who = |name: &str| -> String {
        if names.contains(name) {
            name.to_string()
        } else {
            "external".to_string()
        }
    };

    // Operations per (caller, callee), decoded from every event (a connection's state needs
    // its start), kept when asked during the workload phase and not before it.
    let mut ops: PairSets = BTreeMap::new();
    let mut before: PairSets = BTreeMap::new();
    let mut decoder = ordeal_calls::Decoder::new(header);
    let mut keep = |c: Call| {
        // A participant's calls to itself are its own housekeeping, timed by its scheduler.
        // A response whose request was not seen, or a request whose response may be in
        // bytes not captured, says what the capture missed, not what the system did.
        if c.caller == c.callee
            || matches!(c.status, CallStatus::ResponseOnly | CallStatus::NotCaptured)
        {
            return;
        }
        let sets = match c.request_seq {
            Some(s) if s < first_seq => &mut before,
            Some(s) if s <= last_seq => &mut ops,
            _ => return,
        };
        sets.entry((who(&c.caller), who(&c.callee)))
            .or_default()
            .insert(operation(&c));
    };
    for e in events {
        decoder.event(e, &mut keep);
    }
    decoder.finish(&mut keep);
    // What the nodes already did to each other before the workload is their steady state
    // (heartbeats, health checks, a Sentinel's INFO polling): whether a periodic one falls
    // inside the workload is timing. What a fault changes in it (an unanswered PING, an
    // error) is a new line, and stays.
    for (pair, seen) in &before {
        if let Some(set) = ops.get_mut(pair) {
            set.retain(|op| !seen.contains(op));
        }
    }
    ops.retain(|_, set| !set.is_empty());

    // Shapes of the traffic and lifecycles, in the workload phase.
    let mut shapes: PairSets = BTreeMap::new();
    let mut life: BTreeMap<String, Vec<String>> = BTreeMap::new();
    // The processes ordeal started: a forked child's end (a background save, a client a
    // script ran) comes when the scheduler says; a node's or a workload's own end does not.
    let roots: BTreeSet<i32> = events
        .iter()
        .filter(|e| e.call == "spawn")
        .filter_map(|e| e.child.or(Some(e.pid)))
        .collect();
    for ev in events.iter().take(until + 1).skip(from) {
        if ev.class == Some(Class::Proc) {
            if ev.call == "exit" && !roots.contains(&ev.pid) {
                continue;
            }
            if let Some(t) = lifecycle_token(ev) {
                let l = life.entry(ev.node.clone()).or_default();
                push_collapsed(l, t);
            }
            continue;
        }
        let Some(sock) = &ev.sock else { continue };
        if !matches!(ev.class, Some(Class::Net | Class::Data)) {
            continue;
        }
        let Some(token) = shape_token(ev) else {
            continue;
        };
        let peer = sock.peer_node.as_deref().map_or("external".into(), who);
        if peer == ev.node {
            continue;
        }
        shapes
            .entry((ev.node.clone(), peer))
            .or_default()
            .insert(token);
    }

    // Nodes running the same program are interchangeable: which of them was elected, or
    // which one a client reached first, is scheduling. Their names become labels (`e#1`),
    // given in the order that makes the smallest text, so runs that differ only by who played
    // which part read the same.
    let participants: Vec<(&str, &str)> = header
        .nodes
        .iter()
        .filter(|n| n.role != "check")
        .map(|n| (n.role.as_str(), n.name.as_str()))
        .collect();
    let groups = interchangeable(header, events, roles);
    let mut best: Option<String> = None;
    for_each_labelling(&groups, &mut |label: &BTreeMap<&str, String>| {
        let name = |n: &str| label.get(n).cloned().unwrap_or_else(|| n.to_string());
        let text = render(&participants, &name, &ops, &shapes, &life, outcome);
        if best.as_ref().is_none_or(|b| text < *b) {
            best = Some(text);
        }
    });
    let text = best.unwrap_or_default();
    Fingerprint {
        hash: format!("{:016x}", fnv1a(text.as_bytes())),
        canonical: text,
    }
}

type PairSets = BTreeMap<(String, String), BTreeSet<String>>;

/// The canonical text with participants named by `name`.
fn render(
    participants: &[(&str, &str)],
    name: &dyn Fn(&str) -> String,
    ops: &PairSets,
    shapes: &PairSets,
    life: &BTreeMap<String, Vec<String>>,
    outcome: &str,
) -> String {
    let relabel = |m: &PairSets| -> PairSets {
        m.iter()
            .map(|((a, b), v)| ((name(a), name(b)), v.clone()))
            .collect()
    };
    let (ops, shapes) = (relabel(ops), relabel(shapes));
    let mut order: Vec<(&str, String, &str)> = participants
        .iter()
        .map(|(role, n)| (*role, name(n), *n))
        .collect();
    order.sort();
    let mut text = String::new();
    for (role, label, original) in &order {
        let _ = writeln!(text, "{role} {label}");
        if let Some(l) = life.get(*original) {
            let _ = writeln!(text, "  life {}", l.join(" "));
        }
        for ((caller, callee), set) in &ops {
            if caller == label {
                for op in set {
                    let _ = writeln!(text, "  → {callee} {op}");
                }
            }
        }
        for ((node, peer), set) in &shapes {
            // A pair whose traffic was decoded is described by its operations.
            let decoded = ops.contains_key(&(node.clone(), peer.clone()))
                || ops.contains_key(&(peer.clone(), node.clone()));
            if node == label && !decoded {
                let list: Vec<&str> = set.iter().map(String::as_str).collect();
                let _ = writeln!(text, "  ~ {peer} {}", list.join(" "));
            }
        }
    }
    // Requests from ends ordeal does not run.
    for ((caller, callee), set) in &ops {
        if caller == "external" {
            for op in set {
                let _ = writeln!(text, "external → {callee} {op}");
            }
        }
    }
    let _ = writeln!(text, "outcome {outcome}");
    text
}

/// Most labellings tried: beyond, names are kept (7 nodes of one program would be 5040).
const MAX_LABELLINGS: usize = 720;

/// Groups of interchangeable nodes, each with its label stem: the holders of one role (stem:
/// the role), else the nodes whose first spawn ran the same program (stem: the names' common
/// prefix, else the program's name). A group of one is kept only for a role.
fn interchangeable(
    header: &Header,
    events: &[Event],
    roles: &BTreeMap<String, String>,
) -> Vec<(String, Vec<String>)> {
    let mut by_role: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut by_program: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for n in header.nodes.iter().filter(|n| n.role == "node") {
        if let Some(role) = roles.get(&n.name) {
            by_role
                .entry(role.clone())
                .or_default()
                .push(n.name.clone());
            continue;
        }
        let program = events
            .iter()
            .find(|e| e.call == "spawn" && e.node == n.name)
            .and_then(|e| e.argv.as_ref()?.first().cloned())
            .map(|p| p.rsplit('/').next().unwrap_or(&p).to_string())
            .unwrap_or_default();
        by_program.entry(program).or_default().push(n.name.clone());
    }
    by_program
        .into_iter()
        .filter(|(_, names)| names.len() > 1)
        .map(|(program, names)| {
            let first = names[0].as_str();
            let common = names.iter().fold(first.len(), |len, n| {
                first
                    .bytes()
                    .zip(n.bytes())
                    .take(len)
                    .take_while(|(a, b)| a == b)
                    .count()
            });
            let stem = first[..common].trim_end_matches(|c: char| c.is_ascii_digit());
            let stem = if stem.is_empty() {
                program
            } else {
                stem.to_string()
            };
            (stem, names)
        })
        .chain(by_role)
        .collect()
}

/// Calls `each` with every assignment of labels (`stem#1`, `stem#2`, ...) to the nodes of
/// every group, or only the identity when there would be more than [`MAX_LABELLINGS`].
fn for_each_labelling(
    groups: &[(String, Vec<String>)],
    each: &mut dyn FnMut(&BTreeMap<&str, String>),
) {
    let total = groups.iter().try_fold(1usize, |acc, (_, names)| {
        (1..=names.len()).try_fold(acc, |a, k| a.checked_mul(k))
    });
    if total.is_none_or(|t| t > MAX_LABELLINGS) {
        each(&BTreeMap::new());
        return;
    }
    let mut perms: Vec<Vec<usize>> = groups.iter().map(|(_, n)| (0..n.len()).collect()).collect();
    let mut label = BTreeMap::new();
    loop {
        label.clear();
        for ((stem, names), perm) in groups.iter().zip(&perms) {
            for (name, &k) in names.iter().zip(perm) {
                label.insert(
                    name.as_str(),
                    if names.len() == 1 {
                        stem.clone()
                    } else {
                        format!("{stem}#{}", k + 1)
                    },
                );
            }
        }
        each(&label);
        // The next combination: advance the first group that has a next permutation.
        let mut advanced = false;
        for p in perms.iter_mut() {
            if next_permutation(p) {
                advanced = true;
                break;
            }
            p.sort_unstable();
        }
        if !advanced {
            return;
        }
    }
}

/// Rearranges `v` into its next lexicographic permutation; false (and unchanged) at the last.
fn next_permutation(v: &mut [usize]) -> bool {
    let Some(i) = (1..v.len()).rev().find(|&i| v[i - 1] < v[i]) else {
        return false;
    };
    let j = (i..v.len()).rev().find(|&j| v[j] > v[i - 1]).unwrap_or(i);
    v.swap(i - 1, j);
    v[i..].reverse();
    true
}

/// One behaviour among some runs: its fingerprint and the runs that had it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Behaviour {
    pub fingerprint: Fingerprint,
    pub runs: Vec<std::path::PathBuf>,
}

/// The behaviours of run directories (each with its trace.jsonl and summary.json), most
/// frequent first (ties: first seen).
pub fn behaviours(dirs: &[std::path::PathBuf]) -> Result<Vec<Behaviour>, crate::Error> {
    let mut out: Vec<Behaviour> = Vec::new();
    for dir in dirs {
        let reader = ordeal_events::TraceReader::open(&dir.join("trace.jsonl"))?;
        let header = reader.header.clone();
        let events = reader.read_all()?;
        let path = dir.join("summary.json");
        let bytes = std::fs::read(&path).map_err(|source| crate::Error::Io {
            path: path.clone(),
            source,
        })?;
        let summary: ordeal_hb::Summary =
            serde_json::from_slice(&bytes).map_err(|e| crate::Error::Io {
                path: path.clone(),
                source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
            })?;
        let outcome =
            crate::signature::outcome(summary.verdict.status, &summary.verdict.reasons, dir);
        let fp = fingerprint(&header, &events, &outcome);
        match out.iter_mut().find(|b| b.fingerprint.hash == fp.hash) {
            Some(b) => b.runs.push(dir.clone()),
            None => out.push(Behaviour {
                fingerprint: fp,
                runs: vec![dir.clone()],
            }),
        }
    }
    out.sort_by_key(|b| std::cmp::Reverse(b.runs.len()));
    Ok(out)
}

/// What distinguishes behaviour `a` from `b`: the lines only `a` has (`+ `) and only `b` has
/// (`- `), each under the participant it belongs to.
pub fn diff(a: &str, b: &str) -> Vec<String> {
    let lines = |t: &str| -> BTreeSet<String> {
        let mut owner = String::new();
        let mut out = BTreeSet::new();
        for l in t.lines() {
            if l.starts_with("  ") {
                out.insert(format!("{owner}: {}", l.trim()));
            } else {
                owner = l.to_string();
                out.insert(l.to_string());
            }
        }
        out
    };
    let (la, lb) = (lines(a), lines(b));
    let mut out: Vec<String> = la.difference(&lb).map(|l| format!("+ {l}")).collect();
    out.extend(lb.difference(&la).map(|l| format!("- {l}")));
    out
}

/// `SET → +OK`, `GET /v# → 200`, `REPL → (unanswered)`.
fn operation(c: &Call) -> String {
    let op = abstract_digits(&c.op);
    let result = match c.status {
        CallStatus::Answered => c
            .result
            .as_deref()
            .map(result_kind)
            .unwrap_or_else(|| "?".into()),
        CallStatus::Unread => "(unread)".into(),
        CallStatus::Unanswered => "(unanswered)".into(),
        CallStatus::OneWay => "(one-way)".into(),
        CallStatus::ResponseOnly => "(response only)".into(),
        CallStatus::NotCaptured => "(not captured)".into(),
    };
    format!("{}: {op} → {result}", c.protocol)
}

/// What kind of answer a result is, without its values: its first word with digits
/// abstracted (`+OK`, `VALUE`, `:#`, `-READONLY`) but an HTTP status kept (`200`), `"…"` for a
/// quoted value, `[…]` for a list, `…=…` for a key and its value, `nil`.
fn result_kind(text: &str) -> String {
    let first = text.split_whitespace().next().unwrap_or("");
    if first.starts_with('"') {
        return "\"…\"".into();
    }
    if first.starts_with('[') {
        return "[…]".into();
    }
    if first.contains('=') {
        return "…=…".into();
    }
    // An HTTP status stays what it is.
    if first.len() == 3 && first.bytes().all(|b| b.is_ascii_digit()) {
        return first.into();
    }
    abstract_digits(first)
}

fn abstract_digits(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut in_digits = false;
    for c in s.chars() {
        if c.is_ascii_digit() {
            if !in_digits {
                out.push('#');
            }
            in_digits = true;
        } else {
            in_digits = false;
            out.push(c);
        }
    }
    out
}

/// Appends `t`, or marks the last token as repeated (`exit:0+`).
fn push_collapsed(l: &mut Vec<String>, t: String) {
    match l.last_mut() {
        Some(last) if *last == t || last.strip_suffix('+') == Some(t.as_str()) => {
            if !last.ends_with('+') {
                last.push('+');
            }
        }
        _ => l.push(t),
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

/// The shape of one socket event: `sends`, `receives`, `connect!ERRNO`, `ERRNO` (a failed
/// transfer); retries of a non-blocking call that found nothing to do are none, and so is an
/// end of stream (whether a peer's close is read before the workload ends is timing).
fn shape_token(ev: &Event) -> Option<String> {
    if matches!(ev.errno.as_deref(), Some("EAGAIN" | "EINPROGRESS")) {
        return None;
    }
    if ev.socket_op() == Some(SocketOp::Connect) {
        return ev.errno.as_ref().map(|e| format!("connect!{e}"));
    }
    if ev.class != Some(Class::Data) {
        return None;
    }
    if let Some(e) = &ev.errno {
        return Some(e.clone());
    }
    if ev.is_send() {
        (ev.moved() > 0).then(|| "sends".into())
    } else if ev.is_recv() {
        (ev.moved() > 0).then(|| "receives".into())
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_and_ops_lose_their_values() {
        assert_eq!(result_kind("\"v7\""), "\"…\"");
        assert_eq!(result_kind("VALUE 12"), "VALUE");
        assert_eq!(result_kind("200 OK rev 5"), "200");
        assert_eq!(result_kind(":12"), ":#");
        assert_eq!(result_kind("k3=v7"), "…=…");
        assert_eq!(abstract_digits("GET /v3/kv/range"), "GET /v#/kv/range");
        assert_eq!(result_kind("-READONLY You can't write"), "-READONLY");
    }

    #[test]
    fn permutations_are_all_visited_once() {
        let mut v = vec![0, 1, 2];
        let mut seen = vec![v.clone()];
        while next_permutation(&mut v) {
            seen.push(v.clone());
        }
        assert_eq!(seen.len(), 6);
        assert_eq!(seen.last(), Some(&vec![2, 1, 0]));
        let groups = vec![
            ("e".to_string(), vec!["e1".to_string(), "e2".to_string()]),
            (
                "n".to_string(),
                vec!["a".to_string(), "b".to_string(), "c".to_string()],
            ),
        ];
        let mut n = 0;
        let mut distinct = BTreeSet::new();
        for_each_labelling(&groups, &mut |l| {
            n += 1;
            distinct.insert(format!("{l:?}"));
        });
        assert_eq!((n, distinct.len()), (12, 12));
    }

    #[test]
    fn repeated_lifecycle_steps_collapse() {
        let mut l = Vec::new();
        for t in [
            "spawn",
            "exit:0",
            "exit:0",
            "exit:0",
            "spawn",
            "exit:SIGKILL",
        ] {
            push_collapsed(&mut l, t.to_string());
        }
        assert_eq!(l, ["spawn", "exit:0+", "spawn", "exit:SIGKILL"]);
    }

    #[test]
    fn a_diff_names_the_lines_each_side_lacks() {
        let a = "node n0\n  → n1 demo-kv: REPL → ACK\nworkload c\n  → n0 demo-kv: SET → OK\noutcome pass\n";
        let b = "node n0\n  → n1 demo-kv: REPL → ACK\nworkload c\n  → n0 demo-kv: SET → NOTPRIMARY\noutcome fail: x\n";
        assert_eq!(
            diff(a, b),
            [
                "+ outcome pass",
                "+ workload c: → n0 demo-kv: SET → OK",
                "- outcome fail: x",
                "- workload c: → n0 demo-kv: SET → NOTPRIMARY",
            ]
        );
    }
}
