//! Roles inferred from traffic (`[roles] NAME = { infer = "fans-out" }`): a bounded record of
//! the recent sends between nodes, fed on the tracer thread by [`TrafficSink`] (every event of
//! either engine passes through the trace's sink), and the rule that names a holder from it
//! ([`fans_out`]).
//!
//! The record keeps, per (sender, receiver) pair of nodes, the sends of the last
//! [`MAX_INFER_WINDOW`] in 100 ms buckets (bytes and count): its size depends on the number of
//! nodes, not on the traffic. A fault that changes who can talk to whom (a crash, a pause, a
//! partition, their ends, a restart, a signal) starts the windows afresh: the traffic before
//! it shows the system as it was. The sink never waits for the lock: when the supervisor holds
//! it (a few microseconds, to sum a window), the sends wait in the sink's backlog until its
//! next event.

use ordeal_events::Event;
use ordeal_experiment::MAX_INFER_WINDOW;
use ordeal_tracer::Sink;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, TryLockError};
use std::time::Duration;

/// The width of a bucket: windows are counted to this precision.
const BUCKET_NS: u64 = 100_000_000;

/// How far the engine's catching up moves before the record hears of it.
const CAUGHT_UP_STEP_NS: u64 = 1_000_000;

/// Most sends the sink holds back while the record is locked (then the oldest are dropped).
const MAX_BACKLOG: usize = 65_536;

/// Sends of one pair in one bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Bucket {
    /// `ts / BUCKET_NS`.
    index: u64,
    bytes: u64,
    sends: u64,
}

/// The recent sends between nodes.
#[derive(Debug)]
pub(crate) struct Traffic {
    /// The experiment's nodes, in file order.
    nodes: Vec<String>,
    /// Buckets kept per pair.
    keep: u64,
    /// Per pair (`from * n + to`), buckets in increasing index order.
    pairs: Vec<VecDeque<Bucket>>,
    /// When a fault last changed who can talk to whom (ns, the trace's clock): windows start
    /// no earlier.
    changed_at: u64,
    /// How far the record is complete, when the engine says ([`Sink::caught_up`]): the eBPF
    /// engine reads its ring behind the calls. None: every send is in as soon as it returns.
    complete_until: Option<u64>,
}

/// One send between two nodes (indices into [`Traffic`]'s nodes).
#[derive(Debug, Clone, Copy)]
struct Send {
    from: usize,
    to: usize,
    ts: u64,
    bytes: u64,
}

pub(crate) type SharedTraffic = Arc<Mutex<Traffic>>;

impl Traffic {
    /// A record for `nodes` keeping sends as far back as `longest` (at most
    /// [`MAX_INFER_WINDOW`]).
    pub(crate) fn new(nodes: Vec<String>, longest: Duration) -> Traffic {
        let longest = longest.min(MAX_INFER_WINDOW).as_nanos() as u64;
        // One more than the window spans: a window rarely starts on a bucket's edge.
        let keep = longest.div_ceil(BUCKET_NS) + 1;
        let pairs = vec![VecDeque::new(); nodes.len() * nodes.len()];
        Traffic {
            nodes,
            keep,
            pairs,
            changed_at: 0,
            complete_until: None,
        }
    }

    /// The record is complete up to `ts`.
    fn caught_up(&mut self, ts: u64) {
        self.complete_until = Some(self.complete_until.map_or(ts, |u| u.max(ts)));
    }

    /// Where a window judged at `now` ends: now, or where the record is complete when that is
    /// earlier. A tracer that lags must not make the latest traffic look like silence (a
    /// primary streaming writes would name no one): the holder is judged from what is known,
    /// as of when it is known.
    pub(crate) fn judged_at(&self, now: u64) -> u64 {
        self.complete_until.map_or(now, |u| u.min(now))
    }

    /// A fault changed who can talk to whom at `ts`: windows start there from now on.
    pub(crate) fn changed(&mut self, ts: u64) {
        self.changed_at = self.changed_at.max(ts);
    }

    #[cfg(test)]
    fn index(&self, node: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n == node)
    }

    /// Records `bytes` sent from node `from` to node `to` at `ts` (ns, the trace's clock).
    #[cfg(test)]
    pub(crate) fn add(&mut self, from: &str, to: &str, ts: u64, bytes: u64) {
        if let (Some(from), Some(to)) = (self.index(from), self.index(to)) {
            self.add_send(Send {
                from,
                to,
                ts,
                bytes,
            });
        }
    }

    fn add_send(&mut self, s: Send) {
        if s.from == s.to {
            return;
        }
        let keep = self.keep;
        let pair = &mut self.pairs[s.from * self.nodes.len() + s.to];
        let index = s.ts / BUCKET_NS;
        // Events come in completion order: a slow call's entry may be older than the newest
        // bucket, never by much.
        let at = pair.iter().rposition(|b| b.index <= index);
        match at {
            Some(i) if pair[i].index == index => {
                pair[i].bytes += s.bytes;
                pair[i].sends += 1;
            }
            _ => {
                let b = Bucket {
                    index,
                    bytes: s.bytes,
                    sends: 1,
                };
                pair.insert(at.map_or(0, |i| i + 1), b);
            }
        }
        let newest = pair.back().map_or(0, |b| b.index);
        while pair.front().is_some_and(|b| b.index + keep <= newest) {
            pair.pop_front();
        }
    }

    /// Whether half a `window` has passed since the last change at `now`. Until then the
    /// traffic shows the transition, not the new state: a restarted Raft member sends to every
    /// other while it rejoins and they answer it, the same shape as a leader's (seen on etcd,
    /// 100 ms after a restart).
    pub(crate) fn settled(&self, now: u64, window: Duration) -> bool {
        self.changed_at == 0 || now >= self.changed_at + window.as_nanos() as u64 / 2
    }

    /// The buckets (first, last) of the `window` that ends at `now`: none before the last
    /// change.
    fn span(&self, now: u64, window: Duration) -> (u64, u64) {
        // The bucket of a change holds sends from before it: the next one starts the window.
        let since = (now.saturating_sub(window.as_nanos() as u64) / BUCKET_NS)
            .max(self.changed_at.div_ceil(BUCKET_NS));
        (since, now / BUCKET_NS)
    }

    /// The sends of the `window` that ends at `now` (ns, the trace's clock).
    #[cfg(test)]
    pub(crate) fn window(&self, now: u64, window: Duration) -> Sends {
        let (since, until) = self.span(now, window);
        self.between(since, until)
    }

    /// The sends of the buckets `since..=until`.
    fn between(&self, since: u64, until: u64) -> Sends {
        let n = self.nodes.len();
        let mut bytes = vec![0; n * n];
        let mut count = vec![0; n * n];
        for (i, pair) in self.pairs.iter().enumerate() {
            for b in pair.iter().filter(|b| b.index >= since && b.index <= until) {
                bytes[i] += b.bytes;
                count[i] += b.sends;
            }
        }
        Sends {
            nodes: self.nodes.clone(),
            bytes,
            count,
        }
    }
}

/// What each node sent to each other within a window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Sends {
    nodes: Vec<String>,
    /// Per pair (`from * n + to`).
    bytes: Vec<u64>,
    count: Vec<u64>,
}

impl Sends {
    fn at(&self, v: &[u64], from: usize, to: usize) -> u64 {
        v[from * self.nodes.len() + to]
    }
}

/// The node holding a `fans-out` role among `candidates` (the nodes running, neither crashed
/// nor paused), from the sends of a window:
/// 1. it sent to every other candidate;
/// 2. every other candidate that sent anything to the candidates sent most of its bytes to it
///    (strictly more than to any other);
/// 3. several such nodes (two nodes that only talk to each other): the one that sent the most
///    bytes to the other candidates, if at least twice as many as each of the others; else
///    none (ambiguous).
///
/// Fewer than two candidates: none (no one to fan out to).
pub(crate) fn fans_out(sends: &Sends, candidates: &[String]) -> Option<String> {
    let c: Vec<usize> = sends
        .nodes
        .iter()
        .enumerate()
        .filter(|(_, n)| candidates.contains(n))
        .map(|(i, _)| i)
        .collect();
    if c.len() < 2 {
        return None;
    }
    let others = |n: usize| c.iter().copied().filter(move |&m| m != n);
    let reaches_all = |n: usize| others(n).all(|m| sends.at(&sends.count, n, m) > 0);
    // Whether `m`'s bytes went mainly to `n`.
    let mainly_to = |m: usize, n: usize| {
        let to_n = sends.at(&sends.bytes, m, n);
        let silent = others(m).all(|k| sends.at(&sends.bytes, m, k) == 0);
        silent
            || others(m)
                .filter(|&k| k != n)
                .all(|k| sends.at(&sends.bytes, m, k) < to_n)
    };
    let hubs: Vec<usize> = c
        .iter()
        .copied()
        .filter(|&n| reaches_all(n) && others(n).all(|m| mainly_to(m, n)))
        .collect();
    let sent = |n: usize| -> u64 { others(n).map(|m| sends.at(&sends.bytes, n, m)).sum() };
    let chosen = match hubs.as_slice() {
        [] => return None,
        [one] => *one,
        several => {
            let top = *several.iter().max_by_key(|&&n| sent(n))?;
            let clear = several
                .iter()
                .filter(|&&n| n != top)
                .all(|&n| sent(top) >= 2 * sent(n).max(1));
            if !clear {
                return None;
            }
            top
        }
    };
    Some(sends.nodes[chosen].clone())
}

/// The `fans-out` holder among `candidates` at `now` (or where the record is complete, when
/// the tracer lags: [`Traffic::judged_at`]) from the last `window` of `t`, when it is clear:
/// none for half a window after a change ([`Traffic::settled`]), and none unless the recent
/// half of what the window holds since the change names the same node. The system
/// moved the role itself within the window (a new leader elected, with no fault of ordeal's to
/// mark it): the older traffic still names the old holder, the recent half already the new
/// one. Or a burst after the change still outweighs what followed it (a restarted etcd
/// member's catch-up, a few KiB in 100 ms, against 60-byte heartbeats).
pub(crate) fn fans_out_holder(
    t: &Traffic,
    now: u64,
    window: Duration,
    candidates: &[String],
) -> Option<String> {
    let now = t.judged_at(now);
    if !t.settled(now, window) {
        return None;
    }
    // Halves of the span the window holds, not of the window: right after a change the span
    // is shorter, and the window's own recent half would be all of it.
    let (since, until) = t.span(now, window);
    let whole = fans_out(&t.between(since, until), candidates)?;
    let recent = since + until.saturating_sub(since).div_ceil(2);
    (fans_out(&t.between(recent, until), candidates)? == whole).then_some(whole)
}

/// Whether a fault mark's action changes who can talk to whom (see docs/faults.md for the
/// marks): a node gone or back, a partition made or healed.
fn changes_who_talks(action: &str) -> bool {
    [
        "crash ",
        "pause ",
        "resume ",
        "restart ",
        "signal ",
        "partition ",
        "heal",
        "final heal",
    ]
    .iter()
    .any(|p| action.starts_with(p))
}

/// The node a fault mark's action brings back ("restart e1 (restart_after)", "resume e2").
fn rejoins(action: &str) -> Option<&str> {
    let mut words = action.split_whitespace();
    match words.next()? {
        "restart" | "resume" => words.next(),
        _ => None,
    }
}

/// The trace's sink, recording on the way every completed send whose peer is another node
/// (unmarked by a fault: a send a partition cut reached no one), and the faults that change
/// who talks to whom.
pub(crate) struct TrafficSink {
    inner: Box<dyn Sink>,
    traffic: SharedTraffic,
    /// Sends not recorded yet: the record was locked when they came.
    backlog: VecDeque<Send>,
    /// A change not recorded yet (its time).
    change: Option<u64>,
    /// The record's nodes, to index sends without the lock.
    nodes: Vec<String>,
    /// Nodes restarted or resumed that have not sent to another node since: their first send
    /// is a change too (see [`TrafficSink::observe`]).
    rejoining: Vec<usize>,
    /// How far the engine has caught up, not recorded yet.
    caught_up: Option<u64>,
    /// The last such point recorded.
    recorded_until: u64,
}

impl TrafficSink {
    pub(crate) fn new(inner: Box<dyn Sink>, traffic: SharedTraffic) -> TrafficSink {
        let nodes = traffic.lock().map(|t| t.nodes.clone()).unwrap_or_default();
        TrafficSink {
            inner,
            traffic,
            backlog: VecDeque::new(),
            change: None,
            nodes,
            rejoining: Vec::new(),
            caught_up: None,
            recorded_until: 0,
        }
    }

    /// A node restarted or resumed rejoins when it first sends, not at its mark: a program
    /// takes its time to start (etcd: 25 ms on a quiet machine, much longer on a loaded one),
    /// and its burst of catch-up traffic must fall in the half window the inference waits.
    fn observe(&mut self, ev: &Event) {
        if let Some(send) = self.send_of(ev) {
            if let Some(i) = self.rejoining.iter().position(|&n| n == send.from) {
                self.rejoining.swap_remove(i);
                self.changed(send.ts);
            }
            if self.backlog.len() >= MAX_BACKLOG {
                self.backlog.pop_front();
            }
            self.backlog.push_back(send);
        } else if let Some(action) = ev
            .fault
            .as_ref()
            .map(|m| m.action.as_str())
            .filter(|a| changes_who_talks(a))
        {
            self.changed(ev.ts);
            if let Some(node) = rejoins(action) {
                if let Some(i) = self.nodes.iter().position(|n| n == node) {
                    if !self.rejoining.contains(&i) {
                        self.rejoining.push(i);
                    }
                }
            }
        }
        if !self.backlog.is_empty() || self.change.is_some() {
            self.record();
        }
    }

    /// The engine tells this every few milliseconds, in order: recorded once it moved by a
    /// millisecond or more, for the lock's sake.
    fn note_caught_up(&mut self, ts: u64) {
        self.caught_up = Some(ts);
        if ts >= self.recorded_until + CAUGHT_UP_STEP_NS {
            self.record();
        }
    }

    fn changed(&mut self, ts: u64) {
        self.change = Some(ts.max(self.change.unwrap_or(0)));
    }

    /// The send `ev` is, when it is a completed send to another node that no fault acted on
    /// (failed, cut, delayed: not the system's own traffic).
    fn send_of(&self, ev: &Event) -> Option<Send> {
        if ev.fault.is_some() || !ev.is_send() || ev.moved() == 0 {
            return None;
        }
        let peer = ev.sock.as_ref()?.peer_node.as_deref()?;
        let index = |n: &str| self.nodes.iter().position(|x| x == n);
        Some(Send {
            from: index(&ev.node)?,
            to: index(peer)?,
            ts: ev.ts,
            bytes: ev.moved(),
        })
    }

    /// Moves what waits into the record, unless the record is locked: never waits (the
    /// supervisor's sums are short, what waits goes in next time).
    fn record(&mut self) {
        match self.traffic.try_lock() {
            Ok(mut t) => {
                for s in self.backlog.drain(..) {
                    t.add_send(s);
                }
                if let Some(ts) = self.change.take() {
                    t.changed(ts);
                }
                if let Some(ts) = self.caught_up.take() {
                    t.caught_up(ts);
                    self.recorded_until = ts;
                }
            }
            Err(TryLockError::Poisoned(_)) => self.backlog.clear(),
            Err(TryLockError::WouldBlock) => {}
        }
    }
}

impl Sink for TrafficSink {
    fn event(&mut self, ev: &Event) -> std::io::Result<()> {
        self.observe(ev);
        self.inner.event(ev)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.record();
        self.inner.flush()
    }

    fn caught_up(&mut self, ts: u64) {
        self.note_caught_up(ts);
        self.inner.caught_up(ts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ordeal_events::{Class, Proto, Sock};

    const MS: u64 = 1_000_000;
    const SEC: Duration = Duration::from_secs(1);

    fn names(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| s.to_string()).collect()
    }

    /// A record of `nodes` with `sends` (from, to, ms, bytes).
    fn traffic(nodes: &[&str], sends: &[(&str, &str, u64, u64)]) -> Traffic {
        let mut t = Traffic::new(names(nodes), Duration::from_secs(2));
        for &(from, to, ms, bytes) in sends {
            t.add(from, to, ms * MS, bytes);
        }
        t
    }

    /// A Raft-like cluster for 1 s: `leader` heartbeats every other node every 100 ms, each
    /// answers it; the followers probe each other once.
    fn raft(nodes: &[&str], leader: &str, from_ms: u64) -> Vec<(String, String, u64, u64)> {
        let mut sends = Vec::new();
        for tick in 0..10 {
            let ms = from_ms + tick * 100;
            for f in nodes.iter().filter(|n| **n != leader) {
                sends.push((leader.to_string(), f.to_string(), ms, 60));
                sends.push((f.to_string(), leader.to_string(), ms + 1, 40));
            }
        }
        let followers: Vec<&&str> = nodes.iter().filter(|n| **n != leader).collect();
        for w in followers.windows(2) {
            sends.push((w[0].to_string(), w[1].to_string(), from_ms + 500, 150));
            sends.push((w[1].to_string(), w[0].to_string(), from_ms + 501, 300));
        }
        sends
    }

    fn record(nodes: &[&str], sends: &[(String, String, u64, u64)]) -> Traffic {
        let s: Vec<(&str, &str, u64, u64)> = sends
            .iter()
            .map(|(a, b, t, n)| (a.as_str(), b.as_str(), *t, *n))
            .collect();
        traffic(nodes, &s)
    }

    #[test]
    fn the_node_that_sends_to_all_others_while_they_answer_it_holds_the_role() {
        let nodes = ["e1", "e2", "e3"];
        let t = record(&nodes, &raft(&nodes, "e2", 0));
        let all = names(&nodes);
        let w = t.window(1_000 * MS, 2 * SEC);
        // The followers also reach all (their probes), but send mainly to e2.
        assert_eq!(fans_out(&w, &all), Some("e2".into()));
        // A crashed or paused node is no candidate: with e3 out, e1 and e2 only talk to each
        // other, heartbeats against answers, and e2 did not send twice as much: ambiguous.
        assert_eq!(fans_out(&w, &names(&["e1", "e2"])), None);
        // The leader out: the two others only probed each other, e3 sending twice as much.
        assert_eq!(fans_out(&w, &names(&["e1", "e3"])), Some("e3".into()));
        // One candidate has no one to fan out to.
        assert_eq!(fans_out(&w, &names(&["e2"])), None);
        // Nodes outside the experiment are not counted.
        assert_eq!(fans_out(&w, &names(&["e2", "client"])), None);
    }

    #[test]
    fn a_node_that_reached_only_some_of_the_others_holds_nothing() {
        let t = traffic(
            &["a", "b", "c"],
            &[("a", "b", 10, 100), ("b", "a", 11, 10), ("c", "a", 12, 10)],
        );
        let w = t.window(100 * MS, SEC);
        assert_eq!(fans_out(&w, &names(&["a", "b", "c"])), None);
        // Nothing sent at all: no holder.
        let quiet = traffic(&["a", "b", "c"], &[]).window(100 * MS, SEC);
        assert_eq!(fans_out(&quiet, &names(&["a", "b", "c"])), None);
    }

    #[test]
    fn two_nodes_that_talk_to_each_other_need_one_to_send_twice_as_much() {
        // A primary streaming writes to its replica, which acknowledges.
        let t = traffic(
            &["primary", "replica"],
            &[
                ("primary", "replica", 100, 4_000),
                ("replica", "primary", 150, 40),
                ("primary", "replica", 300, 4_000),
                ("replica", "primary", 350, 40),
            ],
        );
        let both = names(&["primary", "replica"]);
        assert_eq!(
            fans_out(&t.window(400 * MS, SEC), &both),
            Some("primary".into())
        );
        // Equal exchanges (heartbeats and their answers of about the same size): ambiguous.
        let even = traffic(
            &["a", "b"],
            &[
                ("a", "b", 100, 60),
                ("b", "a", 101, 40),
                ("a", "b", 200, 60),
                ("b", "a", 201, 40),
            ],
        );
        assert_eq!(
            fans_out(&even.window(300 * MS, SEC), &names(&["a", "b"])),
            None
        );
        // Exactly twice as much: clear.
        let twice = traffic(&["a", "b"], &[("a", "b", 100, 80), ("b", "a", 101, 40)]);
        assert_eq!(
            fans_out(&twice.window(300 * MS, SEC), &names(&["a", "b"])),
            Some("a".into())
        );
    }

    #[test]
    fn two_hubs_among_three_nodes_are_ambiguous_unless_one_sent_twice_as_much() {
        // a and b each send to everyone, c answers both equally: not mainly to either.
        let sends = [
            ("a", "b", 10, 100),
            ("a", "c", 11, 100),
            ("b", "a", 12, 100),
            ("b", "c", 13, 100),
            ("c", "a", 14, 50),
            ("c", "b", 15, 50),
        ];
        let t = traffic(&["a", "b", "c"], &sends);
        assert_eq!(
            fans_out(&t.window(100 * MS, SEC), &names(&["a", "b", "c"])),
            None
        );
        // c and b send more to a: a is the main peer of both, and holds.
        let mut more = sends.to_vec();
        more.extend([("c", "a", 16, 10), ("b", "a", 17, 50)]);
        let t = traffic(&["a", "b", "c"], &more);
        assert_eq!(
            fans_out(&t.window(100 * MS, SEC), &names(&["a", "b", "c"])),
            Some("a".into())
        );
    }

    #[test]
    fn a_leader_elected_within_the_window_is_no_holder_until_the_windows_agree() {
        // e1 led until 1 s, e3 since: nothing marked the change (the system moved it).
        let nodes = ["e1", "e2", "e3"];
        let all = names(&nodes);
        let mut t = traffic(&nodes, &[]);
        // Heartbeats and answers only (no probe between followers).
        let sends = raft(&nodes, "e1", 0)
            .into_iter()
            .chain(raft(&nodes, "e3", 1_000));
        for (from, to, ms, bytes) in sends.filter(|s| s.3 <= 60) {
            t.add(&from, &to, ms * MS, bytes);
        }
        // At 1.6 s the whole window still names e1, its recent half e3: no holder.
        assert_eq!(
            fans_out(&t.window(1_600 * MS, 2 * SEC), &all),
            Some("e1".into())
        );
        assert_eq!(
            fans_out(&t.window(1_600 * MS, SEC), &all),
            Some("e3".into())
        );
        assert_eq!(fans_out_holder(&t, 1_600 * MS, 2 * SEC, &all), None);
        // Before the change both agree on e1; once e1's heartbeats aged out, both name e3.
        assert_eq!(
            fans_out_holder(&t, 900 * MS, 2 * SEC, &all),
            Some("e1".into())
        );
        assert_eq!(
            fans_out_holder(&t, 2_000 * MS, SEC, &all),
            Some("e3".into())
        );
    }

    #[test]
    fn a_burst_right_after_a_change_is_no_holder_until_what_follows_outweighs_it() {
        // e2 leads; e1 restarts at 1 s and catches up in one burst (seen on etcd: 3 KiB to the
        // leader, 1 KiB to the other follower, both answering it), then heartbeats resume.
        let nodes = ["e1", "e2", "e3"];
        let all = names(&nodes);
        let mut t = traffic(&nodes, &[]);
        t.changed(1_000 * MS);
        for (from, to, bytes) in [
            ("e1", "e2", 3_000),
            ("e1", "e3", 900),
            ("e2", "e1", 1_800),
            ("e3", "e1", 900),
        ] {
            t.add(from, to, 1_050 * MS, bytes);
        }
        for (from, to, ms, bytes) in raft(&nodes, "e2", 1_100)
            .into_iter()
            .chain(raft(&nodes, "e2", 2_100))
        {
            t.add(&from, &to, ms * MS, bytes);
        }
        // Half the window after the change, all the window holds names e1, and so does the
        // window's own recent half (the same span): the burst outweighs a second of
        // heartbeats. The recent half of the span, heartbeats only, names e2: no holder.
        assert_eq!(
            fans_out(&t.window(2_050 * MS, 2 * SEC), &all),
            Some("e1".into())
        );
        assert_eq!(
            fans_out(&t.window(2_050 * MS, SEC), &all),
            Some("e1".into())
        );
        assert_eq!(fans_out_holder(&t, 2_050 * MS, 2 * SEC, &all), None);
        // Once the burst left the window, e2.
        assert_eq!(
            fans_out_holder(&t, 3_200 * MS, 2 * SEC, &all),
            Some("e2".into())
        );
    }

    #[test]
    fn sends_older_than_the_window_no_longer_count() {
        // e1 led for the first second, e3 since 3 s.
        let nodes = ["e1", "e2", "e3"];
        let all = names(&nodes);
        let mut t = record(&nodes, &raft(&nodes, "e1", 0));
        assert_eq!(
            fans_out(&t.window(1_000 * MS, SEC), &all),
            Some("e1".into())
        );
        for (from, to, ms, bytes) in raft(&nodes, "e3", 3_000) {
            t.add(&from, &to, ms * MS, bytes);
        }
        // Between the two: nothing within the last second.
        assert_eq!(fans_out(&t.window(2_500 * MS, SEC), &all), None);
        assert_eq!(
            fans_out(&t.window(4_000 * MS, SEC), &all),
            Some("e3".into())
        );
        // A fault that changed who talks to whom (e1 crashed at 2 s) starts the windows
        // afresh: before e3's first heartbeats, nothing counts.
        t.changed(2_000 * MS);
        assert_eq!(fans_out(&t.window(2_900 * MS, 2 * SEC), &all), None);
        assert!(!t.settled(2_900 * MS, 2 * SEC));
        assert!(t.settled(3_000 * MS, 2 * SEC));
        assert_eq!(
            fans_out(&t.window(4_000 * MS, 5 * SEC), &all),
            Some("e3".into())
        );
    }

    #[test]
    fn the_record_keeps_a_bounded_number_of_buckets_per_pair_in_order() {
        let mut t = Traffic::new(names(&["a", "b"]), Duration::from_millis(500));
        assert_eq!(t.keep, 6);
        for ms in (0..10_000).step_by(10) {
            t.add("a", "b", ms * MS, 1);
        }
        // A late event (its call entered before the newest bucket) goes into its bucket.
        t.add("a", "b", 9_950 * MS, 5);
        // Unknown nodes and sends to oneself are not recorded.
        t.add("a", "zz", 9_990 * MS, 5);
        t.add("a", "a", 9_990 * MS, 5);
        let pair = &t.pairs[1];
        assert_eq!(
            pair.iter().map(|b| b.index).collect::<Vec<_>>(),
            [94, 95, 96, 97, 98, 99]
        );
        assert_eq!(
            pair[5],
            Bucket {
                index: 99,
                bytes: 15,
                sends: 11
            }
        );
        assert!(t.pairs[0].is_empty() && t.pairs[2].is_empty() && t.pairs[3].is_empty());
        // The last 200 ms (buckets 98 and 99, to the bucket), from a to b.
        let w = t.window(9_999 * MS, Duration::from_millis(200));
        assert_eq!((w.bytes[1], w.count[1]), (35, 31));
        // The window never reaches past what is kept.
        let longest = Traffic::new(names(&["a"]), Duration::from_secs(3600));
        assert_eq!(longest.keep, 601);
    }

    fn send(node: &str, peer: Option<&str>, ts: u64, ret: i64) -> Event {
        Event {
            ts,
            node: node.into(),
            call: "write".into(),
            class: Some(Class::Data),
            ret: Some(ret),
            fd: Some(5),
            sock: Some(Sock {
                ino: 1,
                proto: Proto::Tcp,
                local: None,
                remote: None,
                peer_ino: None,
                peer_node: peer.map(str::to_string),
            }),
            ..Event::default()
        }
    }

    #[test]
    fn the_sink_records_completed_sends_to_other_nodes_and_passes_every_event_on() {
        let shared: SharedTraffic = Arc::new(Mutex::new(Traffic::new(names(&["a", "b"]), SEC)));
        let mut sink = TrafficSink::new(Box::new(Vec::<Event>::new()), shared.clone());
        let mut failed = send("a", Some("b"), 10 * MS, -11);
        failed.errno = Some("EAGAIN".into());
        let mut cut = send("a", Some("b"), 10 * MS, 7);
        cut.fault = Some(ordeal_events::FaultRef::effect_of("p").mark("cut"));
        let mut read = send("b", Some("a"), 10 * MS, 9);
        read.call = "read".into();
        for ev in [
            send("a", Some("b"), 10 * MS, 100),
            send("a", None, 10 * MS, 100),
            send("a", Some("client"), 10 * MS, 100),
            send("client", Some("a"), 10 * MS, 100),
            failed,
            cut,
            read,
        ] {
            sink.event(&ev).unwrap();
        }
        // Locked by the supervisor: the sink goes on, the send waits in its backlog.
        {
            let _held = shared.lock().unwrap();
            sink.event(&send("b", Some("a"), 20 * MS, 30)).unwrap();
            assert_eq!(sink.backlog.len(), 1);
        }
        // Any next event moves it in (here, a receive).
        let mut recv = send("b", Some("a"), 25 * MS, 3);
        recv.call = "read".into();
        sink.event(&recv).unwrap();
        assert!(sink.backlog.is_empty());
        sink.event(&send("b", Some("a"), 30 * MS, 20)).unwrap();
        let w = shared.lock().unwrap().window(100 * MS, SEC);
        assert_eq!((w.bytes, w.count), (vec![0, 100, 50, 0], vec![0, 1, 2, 0]));
        // A crash changes who talks to whom: what was sent before it no longer counts.
        let mut crash = send("a", None, 250 * MS, 0);
        crash.call = "fault".into();
        crash.fault = Some(ordeal_events::FaultMark::fired("c", "crash a"));
        sink.event(&crash).unwrap();
        sink.event(&send("b", Some("a"), 320 * MS, 8)).unwrap();
        let w = shared.lock().unwrap().window(400 * MS, SEC);
        assert_eq!((w.bytes, w.count), (vec![0, 0, 8, 0], vec![0, 0, 1, 0]));
        assert!(changes_who_talks("partition e1 | e2 e3") && changes_who_talks("heal p"));
        assert!(!changes_who_talks("fail EAGAIN") && !changes_who_talks("held"));
    }

    #[test]
    fn a_restarted_node_rejoins_at_its_first_send() {
        let shared: SharedTraffic = Arc::new(Mutex::new(Traffic::new(names(&["a", "b"]), SEC)));
        let mut sink = TrafficSink::new(Box::new(Vec::<Event>::new()), shared.clone());
        let mut restart = send("a", None, 100 * MS, 0);
        restart.call = "fault".into();
        restart.fault = Some(ordeal_events::FaultMark::fired(
            "c",
            "restart a (restart_after)",
        ));
        sink.event(&restart).unwrap();
        assert_eq!(shared.lock().unwrap().changed_at, 100 * MS);
        // Another node's send: a is still starting.
        sink.event(&send("b", Some("a"), 200 * MS, 8)).unwrap();
        assert_eq!(shared.lock().unwrap().changed_at, 100 * MS);
        // a speaks at 700 ms: the window starts afresh, half a window from there.
        sink.event(&send("a", Some("b"), 700 * MS, 8)).unwrap();
        sink.event(&send("a", Some("b"), 800 * MS, 8)).unwrap();
        let t = shared.lock().unwrap();
        assert_eq!(t.changed_at, 700 * MS);
        assert!(!t.settled(1_100 * MS, SEC) && t.settled(1_200 * MS, SEC));
        assert_eq!(rejoins("resume e2"), Some("e2"));
        assert_eq!(rejoins("crash e2"), None);
    }

    /// The eBPF engine reads its ring behind the calls (seconds on a loaded machine): a
    /// primary streaming writes must not look silent because its sends are not in yet.
    #[test]
    fn a_late_record_is_judged_where_it_is_complete_not_as_silence() {
        let all = names(&["p", "r"]);
        let shared: SharedTraffic = Arc::new(Mutex::new(Traffic::new(all.clone(), 2 * SEC)));
        let mut sink = TrafficSink::new(Box::new(Vec::<Event>::new()), shared.clone());
        for i in 0..6 {
            sink.event(&send("p", Some("r"), i * 100 * MS, 1_000))
                .unwrap();
        }
        sink.event(&send("r", Some("p"), 250 * MS, 40)).unwrap();
        // Nothing said yet: judged at now, the last 2 s hold nothing.
        assert_eq!(
            fans_out_holder(&shared.lock().unwrap(), 3_000 * MS, 2 * SEC, &all),
            None
        );
        sink.caught_up(600 * MS);
        {
            let t = shared.lock().unwrap();
            assert_eq!(t.judged_at(3_000 * MS), 600 * MS);
            assert_eq!(
                fans_out_holder(&t, 3_000 * MS, 2 * SEC, &all),
                Some("p".to_string())
            );
        }
        // Caught up past now: judged at now, never ahead of it.
        sink.caught_up(5_000 * MS);
        let t = shared.lock().unwrap();
        assert_eq!(t.judged_at(3_000 * MS), 3_000 * MS);
        assert_eq!(fans_out_holder(&t, 3_000 * MS, 2 * SEC, &all), None);
    }
}
