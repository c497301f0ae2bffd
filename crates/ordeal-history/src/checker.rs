//! The linearizability checker.
//!
//! Wing & Gong's search as improved by Lowe ("just-in-time linearization"): the invocations
//! and completions of one partition form a doubly linked list in real-time order; the search
//! walks it from the head, linearizes an invocation when the model accepts it (removing the
//! operation from the list, pushing it on a stack), and backtracks when it reaches a
//! completion whose operation is not linearized yet. Every configuration reached — the set of
//! linearized operations and the model state — is remembered, and a configuration seen before
//! is not explored again (Lowe's memoization). The history is split into the parts the model
//! says are independent ([`Model::partition`]: a key-value history by key), checked
//! independently and in parallel (P-compositionality, Horn & Kroening).
//!
//! The search is generic over [`Model`] and names no model. Model states are interned: the
//! search, its stack and its memo keys use their indexes.
//!
//! The set of linearized operations is stored exactly but compactly: `w`, the first finite
//! operation not linearized, the linearized operations after `w` (all invoked before `w`
//! completed, so few), and the indeterminate operations before `w` that are not linearized.
//!
//! Indeterminate operations (`info`) have no completion: they may be linearized at any point
//! after their invocation or never; the search succeeds once every completed operation is
//! linearized. Failed operations (`fail`) did not happen and are left out, and so are
//! indeterminate operations the model says are read-only (they change nothing).

use crate::history::{Operation, Outcome, Value};
use crate::model::{Model, ModelMismatch, Prepared};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Limits of a check; exceeding one gives [`Verdict::Unknown`] with the reason.
#[derive(Clone, Debug, Default)]
pub struct Budget {
    /// Wall-clock time for the whole check.
    pub time: Option<Duration>,
    /// Memory of the memoization caches, all keys together, in bytes (an estimate of the
    /// allocations, accurate to about 10%).
    pub memory: Option<u64>,
    /// Search steps (an operation tried or undone) per key.
    pub max_steps: Option<u64>,
    /// Worker threads for histories of several parts (keys); 0 = the number of CPUs.
    pub threads: usize,
}

/// The answer for a history or a key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// A linearization exists.
    Linearizable,
    /// No linearization exists.
    NotLinearizable,
    /// The search was stopped before it could decide; the reason says which budget ran out.
    Unknown(String),
}

impl Verdict {
    /// `linearizable`, `not linearizable`, `unknown`.
    pub fn name(&self) -> &'static str {
        match self {
            Verdict::Linearizable => "linearizable",
            Verdict::NotLinearizable => "not linearizable",
            Verdict::Unknown(_) => "unknown",
        }
    }
}

/// An operation of the longest linearizable prefix, and the model state after it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placed {
    /// The operation's id ([`Operation::id`]).
    pub op: usize,
    /// The model state after it.
    pub state: Value,
}

/// An operation that could not be placed after the longest prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unplaced {
    /// The operation's id.
    pub op: usize,
    /// True when the model rejects it in the state after the prefix; false when it is
    /// accepted there but every continuation from it was explored and fails.
    pub rejected: bool,
    /// Why, in words.
    pub reason: String,
}

/// Why a key is not linearizable: where the search got furthest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Explanation {
    /// The longest linearizable prefix the search found, in linearization order.
    pub prefix: Vec<Placed>,
    /// The model state after the prefix.
    pub state: Value,
    /// The operation that completed without any way to linearize it before its completion.
    pub blocking: usize,
    /// The operations that could be linearized next (invoked before `blocking` completed)
    /// and why none of them leads anywhere.
    pub unplaceable: Vec<Unplaced>,
    /// True when the model's pre-check ([`Model::precheck`]) found the violation without a
    /// search: `prefix` is then the operations that prove it, not a search's longest prefix.
    pub proof: bool,
}

/// The result for one part of the history: a key, or the whole history.
#[derive(Clone, Debug)]
pub struct KeyResult {
    /// The part's key ([`Model::partition`]; `None` for a history of one part).
    pub key: Option<Value>,
    /// Operations checked (failed operations, indeterminate reads and whatever [`Model::keep`]
    /// leaves out are not).
    pub ops: usize,
    /// The verdict.
    pub verdict: Verdict,
    /// Search steps taken.
    pub steps: u64,
    /// Configurations memoized.
    pub configurations: usize,
    /// For a non-linearizable key: where and why.
    pub explanation: Option<Explanation>,
    /// Set when the explanation could not be computed (its search ran out of budget).
    pub explanation_missing: Option<String>,
}

/// The result of a check.
#[derive(Clone, Debug)]
pub struct Report {
    /// The name of the model checked against ([`Model::name`]).
    pub model: &'static str,
    /// Not linearizable if a key is; else unknown if a key is; else linearizable.
    pub verdict: Verdict,
    /// Per key, in key order.
    pub keys: Vec<KeyResult>,
    /// The history's operations ([`Operation::id`] indexes this).
    pub operations: Vec<Operation>,
    /// Wall-clock time of the check.
    pub elapsed: Duration,
    /// Peak estimated memory of the memoization caches, in bytes.
    pub peak_memory: u64,
}

/// Checks `ops` (from [`crate::history::operations`]) against `model`: any [`Model`], built
/// in or not.
pub fn check<M: Model>(
    ops: Vec<Operation>,
    mut model: M,
    budget: &Budget,
) -> Result<Report, ModelMismatch> {
    let start = Instant::now();
    let mut by_key: BTreeMap<Option<Value>, Vec<Prepared<M::Op>>> = BTreeMap::new();
    for op in &ops {
        let applied = model.op(op)?;
        let part = by_key.entry(model.partition(op)).or_default();
        let info = op.outcome == Outcome::Info;
        // A failed operation did not happen; an indeterminate one that changes nothing
        // constrains nothing.
        if op.outcome == Outcome::Fail || (info && model.read_only(&applied)) {
            continue;
        }
        part.push(Prepared {
            id: op.id,
            op: applied,
            info,
            call_pos: op.call_pos,
            ret_pos: if info { None } else { op.ret_pos },
        });
    }
    let parts: Vec<(Option<Value>, Partition<M::Op>)> = by_key
        .into_iter()
        .map(|(k, ops)| (k, Partition::new(&model, ops)))
        .collect();
    let shared = Shared {
        deadline: budget.time.map(|t| start + t),
        time_limit: budget.time,
        memory_limit: budget.memory,
        max_steps: budget.max_steps,
        memory: AtomicU64::new(0),
        peak: AtomicU64::new(0),
        stop: AtomicBool::new(false),
    };
    // Largest keys first, so one big key does not start last.
    let mut order: Vec<usize> = (0..parts.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(parts[i].1.ops.len()));
    let threads = match budget.threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    }
    .min(parts.len())
    .max(1);
    let results: Vec<Mutex<Option<KeyResult>>> = parts.iter().map(|_| Mutex::new(None)).collect();
    let next = AtomicUsize::new(0);
    let work = || loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        let Some(&p) = order.get(i) else { break };
        let (key, part) = &parts[p];
        let r = check_partition(&model, key.clone(), part, &shared);
        if let Ok(mut slot) = results[p].lock() {
            *slot = Some(r);
        }
    };
    if threads == 1 {
        work();
    } else {
        std::thread::scope(|s| {
            for _ in 0..threads {
                s.spawn(work);
            }
        });
    }
    let keys: Vec<KeyResult> = results
        .into_iter()
        .zip(&parts)
        .map(|(m, (key, part))| {
            m.into_inner().ok().flatten().unwrap_or_else(|| KeyResult {
                key: key.clone(),
                ops: part.ops.len(),
                verdict: Verdict::Unknown("not checked (a worker thread failed)".into()),
                steps: 0,
                configurations: 0,
                explanation: None,
                explanation_missing: None,
            })
        })
        .collect();
    let verdict = if keys.iter().any(|k| k.verdict == Verdict::NotLinearizable) {
        Verdict::NotLinearizable
    } else if let Some(k) = keys
        .iter()
        .find(|k| matches!(k.verdict, Verdict::Unknown(_)))
    {
        k.verdict.clone()
    } else {
        Verdict::Linearizable
    };
    Ok(Report {
        model: model.name(),
        verdict,
        keys,
        operations: ops,
        elapsed: start.elapsed(),
        peak_memory: shared.peak.load(Ordering::Relaxed),
    })
}

struct Shared {
    deadline: Option<Instant>,
    time_limit: Option<Duration>,
    memory_limit: Option<u64>,
    max_steps: Option<u64>,
    memory: AtomicU64,
    peak: AtomicU64,
    /// Set when the shared memory budget is exhausted: every search stops.
    stop: AtomicBool,
}

/// One part's operations, ready to search.
struct Partition<O> {
    /// In invocation order.
    ops: Vec<Prepared<O>>,
    /// For each operation, [`Model::read_only`].
    read_only: Vec<bool>,
}

impl<O> Partition<O> {
    fn new<M: Model<Op = O>>(model: &M, ops: Vec<Prepared<O>>) -> Partition<O> {
        let keep = model.keep(&ops);
        let mut ops: Vec<Prepared<O>> = ops
            .into_iter()
            .enumerate()
            .filter_map(|(i, o)| keep.get(i).copied().unwrap_or(true).then_some(o))
            .collect();
        ops.sort_by_key(|o| o.call_pos);
        let read_only = ops.iter().map(|o| model.read_only(&o.op)).collect();
        Partition { ops, read_only }
    }
}

/// FxHash with a final avalanche: fast for keys of small integers.
#[derive(Default)]
struct Fx(u64);

impl Hasher for Fx {
    fn finish(&self) -> u64 {
        // Avalanche (murmur3's fmix64): the table indexes buckets by the low bits.
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(b));
        }
    }
    fn write_u32(&mut self, i: u32) {
        self.write_u64(i as u64);
    }
    fn write_u64(&mut self, i: u64) {
        self.0 = (self.0.rotate_left(5) ^ i).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    fn write_usize(&mut self, i: usize) {
        self.write_u64(i as u64);
    }
}

type Cache = HashSet<Box<[u32]>, BuildHasherDefault<Fx>>;

/// Estimated bytes of one cache entry beyond its key's elements: the box, the allocator's
/// header, and the hash table's slot at its load factor.
const ENTRY_OVERHEAD: u64 = 48;

const HEAD: usize = 0;

/// The search's position: model state, first finite operation not linearized, finite
/// operations left.
struct Cur {
    state: u32,
    w: usize,
    remaining: usize,
}

enum Tried {
    /// Every finite operation is linearized.
    Done,
    Pushed,
    /// The configuration was explored before.
    Seen,
    OutOfMemory,
}

enum Outcome2 {
    Linearizable,
    NotLinearizable { best_depth: usize },
    Stopped(String),
    Captured(Explanation),
}

struct Search<'a, M: Model> {
    model: &'a M,
    part: &'a Partition<M::Op>,
    shared: &'a Shared,
    n: usize,
    /// The model states reached, interned: the search and its memo keys use their indexes
    /// (0 is the initial state).
    states: Vec<M::State>,
    state_ids: HashMap<M::State, u32, BuildHasherDefault<Fx>>,
    // The event list: node 0 is the head, node 1 + 2i the call of op i, 2 + 2i its completion,
    // node 1 + 2n the tail.
    next: Vec<usize>,
    prev: Vec<usize>,
    lin: Vec<u64>,
    reach: Vec<usize>,
    info_ids: Vec<usize>,
    steps: u64,
    bytes: u64,
    cache: Cache,
}

impl<'a, M: Model> Search<'a, M> {
    fn new(model: &'a M, part: &'a Partition<M::Op>, shared: &'a Shared) -> Search<'a, M> {
        let n = part.ops.len();
        let mut events: Vec<(usize, usize)> = Vec::with_capacity(2 * n);
        for (i, op) in part.ops.iter().enumerate() {
            events.push((op.call_pos, 1 + 2 * i));
            if let Some(r) = op.ret_pos {
                events.push((r, 2 + 2 * i));
            }
        }
        events.sort_unstable();
        let tail = 1 + 2 * n;
        let mut next = vec![tail; tail + 1];
        let mut prev = vec![HEAD; tail + 1];
        let mut last = HEAD;
        for &(_, node) in &events {
            next[last] = node;
            prev[node] = last;
            last = node;
        }
        next[last] = tail;
        prev[tail] = last;
        // reach[i]: the last op invoked before op i completes.
        let calls: Vec<usize> = part.ops.iter().map(|o| o.call_pos).collect();
        let reach = part
            .ops
            .iter()
            .map(|o| match o.ret_pos {
                Some(r) => calls.partition_point(|&c| c < r).saturating_sub(1),
                None => n.saturating_sub(1),
            })
            .collect();
        let info_ids = (0..n).filter(|&i| part.ops[i].info).collect();
        let init = model.init();
        Search {
            model,
            part,
            shared,
            n,
            states: vec![init.clone()],
            state_ids: HashMap::from_iter([(init, 0)]),
            next,
            prev,
            lin: vec![0; n.div_ceil(64)],
            reach,
            info_ids,
            steps: 0,
            bytes: 0,
            cache: Cache::default(),
        }
    }

    /// The index of `state`, interning it if new.
    fn intern(&mut self, state: M::State) -> u32 {
        if let Some(&id) = self.state_ids.get(&state) {
            return id;
        }
        let id = self.states.len() as u32;
        self.states.push(state.clone());
        self.state_ids.insert(state, id);
        id
    }

    fn is_lin(&self, i: usize) -> bool {
        self.lin[i / 64] >> (i % 64) & 1 == 1
    }

    fn flip(&mut self, i: usize) {
        self.lin[i / 64] ^= 1 << (i % 64);
    }

    fn lift(&mut self, i: usize) {
        for node in [1 + 2 * i, 2 + 2 * i] {
            if node == 2 + 2 * i && self.part.ops[i].ret_pos.is_none() {
                continue;
            }
            let (p, n) = (self.prev[node], self.next[node]);
            self.next[p] = n;
            self.prev[n] = p;
        }
    }

    fn unlift(&mut self, i: usize) {
        for node in [2 + 2 * i, 1 + 2 * i] {
            if node == 2 + 2 * i && self.part.ops[i].ret_pos.is_none() {
                continue;
            }
            let (p, n) = (self.prev[node], self.next[node]);
            self.next[p] = node;
            self.prev[n] = node;
        }
    }

    /// The memo key of the current linearized set with `state`, into `buf`.
    fn key(&self, state: u32, w: usize, buf: &mut Vec<u32>) {
        buf.clear();
        buf.push(state);
        buf.push(w as u32);
        // The linearized operations after w, as a bitmap of w+1..=reach[w] (its length
        // follows from w, so the key stays canonical).
        let hi = self.reach[w];
        let mut j = w + 1;
        while j <= hi {
            let width = (hi + 1 - j).min(32);
            let (word, off) = (j / 64, j % 64);
            let mut v = self.lin[word] >> off;
            if off + width > 64 {
                v |= self.lin[word + 1] << (64 - off);
            }
            buf.push((v & ((1u64 << width) - 1)) as u32);
            j += width;
        }
        buf.push(u32::MAX);
        for &i in &self.info_ids {
            if i >= w {
                break;
            }
            if !self.is_lin(i) {
                buf.push(i as u32);
            }
        }
    }

    fn budget_exceeded(&self) -> Option<String> {
        if self.shared.stop.load(Ordering::Relaxed) {
            return Some(match self.shared.memory_limit {
                Some(m) => format!("memory budget of {} exhausted", human_bytes(m)),
                None => "stopped".to_string(),
            });
        }
        if let (Some(d), Some(t)) = (self.shared.deadline, self.shared.time_limit) {
            if Instant::now() >= d {
                return Some(format!("time budget of {t:?} exhausted"));
            }
        }
        if let Some(m) = self.shared.max_steps {
            if self.steps > m {
                return Some(format!("step budget of {m} search steps exhausted"));
            }
        }
        None
    }

    fn add_bytes(&mut self, b: u64) -> bool {
        self.bytes += b;
        let total = self.shared.memory.fetch_add(b, Ordering::Relaxed) + b;
        self.shared.peak.fetch_max(total, Ordering::Relaxed);
        if self.shared.memory_limit.is_some_and(|m| total > m) {
            self.shared.stop.store(true, Ordering::Relaxed);
            return false;
        }
        true
    }

    /// Linearizes op `i` (the model gives `ns`) unless the configuration it leads to was seen.
    #[allow(clippy::too_many_arguments)]
    fn linearize(
        &mut self,
        i: usize,
        ns: u32,
        cur: &mut Cur,
        stack: &mut Vec<(usize, u32, bool)>,
        forced: bool,
        buf: &mut Vec<u32>,
    ) -> Tried {
        let ops = &self.part.ops;
        self.flip(i);
        let finite = !ops[i].info;
        if finite && cur.remaining == 1 {
            return Tried::Done;
        }
        let mut nw = cur.w;
        if i == cur.w {
            nw += 1;
            while nw < self.n && (ops[nw].info || self.is_lin(nw)) {
                nw += 1;
            }
        }
        self.key(ns, nw, buf);
        if self.cache.contains(buf.as_slice()) {
            self.flip(i);
            return Tried::Seen;
        }
        let size = buf.len() as u64 * 4 + ENTRY_OVERHEAD;
        self.cache.insert(buf.clone().into_boxed_slice());
        if !self.add_bytes(size) {
            return Tried::OutOfMemory;
        }
        stack.push((i, cur.state, forced));
        cur.state = ns;
        cur.w = nw;
        if finite {
            cur.remaining -= 1;
        }
        self.lift(i);
        Tried::Pushed
    }

    /// Runs the search. With `capture_at`, stops at the first dead end with that many
    /// operations linearized and explains it.
    fn run(&mut self, capture_at: Option<usize>) -> Outcome2 {
        let part = self.part;
        let ops = &part.ops;
        let remaining = ops.iter().filter(|o| !o.info).count();
        if remaining == 0 {
            return Outcome2::Linearizable;
        }
        let mut cur = Cur {
            state: 0,
            w: (0..self.n).find(|&i| !ops[i].info).unwrap_or(0),
            remaining,
        };
        let oom = || {
            Outcome2::Stopped(format!(
                "memory budget of {} exhausted",
                human_bytes(self.shared.memory_limit.unwrap_or(0))
            ))
        };
        let mut stack: Vec<(usize, u32, bool)> = Vec::new();
        let mut best_depth = 0;
        let mut buf = Vec::new();
        let tail = 1 + 2 * self.n;
        // The candidates of a configuration — operations invoked before the first pending
        // completion — are tried in order of completion (earliest deadline first; the
        // indeterminate last). `last`: the last candidate tried here, `None` for a new
        // configuration.
        let order = |i: usize| (ops[i].ret_pos.unwrap_or(usize::MAX), i);
        let mut last: Option<(usize, usize)> = None;
        loop {
            self.steps += 1;
            if self.steps.is_multiple_of(1024)
                || self.shared.max_steps.is_some_and(|m| self.steps > m)
            {
                if let Some(reason) = self.budget_exceeded() {
                    return Outcome2::Stopped(reason);
                }
            }
            let mut dead = false;
            let model = self.model;
            if last.is_none() {
                // A read ([`Model::read_only`]) the model accepts now may be linearized first
                // without loss of generality (it changes nothing, and nothing pending must
                // precede it): take it, and do not try alternatives to it.
                let state = &self.states[cur.state as usize];
                let mut node = self.next[HEAD];
                let mut forced = None;
                while node != tail && node % 2 == 1 {
                    let i = (node - 1) / 2;
                    if part.read_only[i] && model.step(state, &ops[i].op).is_some() {
                        forced = Some(i);
                        break;
                    }
                    node = self.next[node];
                }
                if let Some(i) = forced {
                    match self.linearize(i, cur.state, &mut cur, &mut stack, true, &mut buf) {
                        Tried::Done => return Outcome2::Linearizable,
                        Tried::OutOfMemory => return oom(),
                        Tried::Pushed => continue,
                        Tried::Seen => dead = true,
                    }
                }
            }
            if !dead {
                let state = &self.states[cur.state as usize];
                let mut best: Option<((usize, usize), M::State)> = None;
                let mut node = self.next[HEAD];
                while node != tail && node % 2 == 1 {
                    let i = (node - 1) / 2;
                    let k = order(i);
                    if last.is_none_or(|l| k > l) && best.as_ref().is_none_or(|(b, _)| k < *b) {
                        if let Some(ns) = model.step(state, &ops[i].op) {
                            best = Some((k, ns));
                        }
                    }
                    node = self.next[node];
                }
                // `None`: the state does not change (no need to intern it).
                let best = best.map(|(k, ns)| (k, (ns != *state).then_some(ns)));
                if let Some((k, ns)) = best {
                    last = Some(k);
                    let ns = match ns {
                        None => cur.state,
                        Some(ns) => self.intern(ns),
                    };
                    match self.linearize(k.1, ns, &mut cur, &mut stack, false, &mut buf) {
                        Tried::Done => return Outcome2::Linearizable,
                        Tried::OutOfMemory => return oom(),
                        Tried::Pushed => last = None,
                        Tried::Seen => {}
                    }
                    continue;
                }
                // Every candidate was tried: `node` is the first pending completion.
                if stack.len() > best_depth {
                    best_depth = stack.len();
                }
                if capture_at == Some(stack.len()) {
                    return Outcome2::Captured(self.explain(&stack, cur.state, node));
                }
            }
            // Backtrack: undo until an operation that has alternatives after it.
            loop {
                let Some((i, s, forced)) = stack.pop() else {
                    return Outcome2::NotLinearizable { best_depth };
                };
                cur.state = s;
                self.flip(i);
                if !ops[i].info {
                    cur.remaining += 1;
                    cur.w = cur.w.min(i);
                }
                self.unlift(i);
                if !forced {
                    last = Some(order(i));
                    break;
                }
            }
        }
    }

    fn explain(&self, stack: &[(usize, u32, bool)], state: u32, entry: usize) -> Explanation {
        let ops = &self.part.ops;
        let v = |x: u32| self.model.describe(&self.states[x as usize]);
        let mut prefix = Vec::with_capacity(stack.len());
        for (k, &(i, _, _)) in stack.iter().enumerate() {
            let after = stack.get(k + 1).map_or(state, |&(_, s, _)| s);
            prefix.push(Placed {
                op: ops[i].id,
                state: v(after),
            });
        }
        let blocking = if entry.is_multiple_of(2) && entry > 0 {
            ops[(entry - 2) / 2].id
        } else {
            usize::MAX
        };
        let mut unplaceable = Vec::new();
        let mut node = self.next[HEAD];
        while node != entry && node % 2 == 1 {
            let i = (node - 1) / 2;
            let now = &self.states[state as usize];
            let (rejected, reason) = match self.model.step(now, &ops[i].op) {
                None => (true, self.model.rejection(now, &ops[i].op)),
                Some(_) => (
                    false,
                    "possible here, but every continuation fails".to_string(),
                ),
            };
            unplaceable.push(Unplaced {
                op: ops[i].id,
                rejected,
                reason,
            });
            node = self.next[node];
        }
        Explanation {
            prefix,
            state: v(state),
            blocking,
            unplaceable,
            proof: false,
        }
    }
}

impl<M: Model> Drop for Search<'_, M> {
    fn drop(&mut self) {
        self.shared.memory.fetch_sub(self.bytes, Ordering::Relaxed);
    }
}

fn check_partition<M: Model>(
    model: &M,
    key: Option<Value>,
    part: &Partition<M::Op>,
    shared: &Shared,
) -> KeyResult {
    if let Some(e) = model.precheck(&part.ops) {
        return KeyResult {
            key,
            ops: part.ops.len(),
            verdict: Verdict::NotLinearizable,
            steps: 0,
            configurations: 0,
            explanation: Some(e),
            explanation_missing: None,
        };
    }
    let mut search = Search::new(model, part, shared);
    let outcome = search.run(None);
    let (steps, configurations) = (search.steps, search.cache.len());
    drop(search);
    let mut result = KeyResult {
        key,
        ops: part.ops.len(),
        verdict: Verdict::Linearizable,
        steps,
        configurations,
        explanation: None,
        explanation_missing: None,
    };
    match outcome {
        Outcome2::Linearizable | Outcome2::Captured(_) => {}
        Outcome2::Stopped(reason) => result.verdict = Verdict::Unknown(reason),
        Outcome2::NotLinearizable { best_depth } => {
            result.verdict = Verdict::NotLinearizable;
            // Run the same (deterministic) search again up to its deepest dead end.
            let mut again = Search::new(model, part, shared);
            match again.run(Some(best_depth)) {
                Outcome2::Captured(e) => result.explanation = Some(e),
                Outcome2::Stopped(reason) => result.explanation_missing = Some(reason),
                _ => result.explanation_missing = Some("search did not repeat".to_string()),
            }
        }
    }
    result
}

/// `1.5 MiB`-style sizes.
pub fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}
