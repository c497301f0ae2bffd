//! Random histories with known answers, for tests and benchmarks.
//!
//! [`linearizable`] simulates processes running operations against a sequential model: each
//! operation takes effect at a random instant between its invocation and its completion, so
//! the history is linearizable by construction. Some operations end indeterminate (`info`):
//! they take effect before the `info`, later, or never. [`stale_read`] and [`future_read`]
//! then change one read so that no linearization exists.

use crate::history::{Entry, Kind, Value, F};
use ordeal_sys::rng::SplitMix64;
use std::collections::HashMap;

/// A small deterministic random number generator (ordeal-sys's splitmix64, on a stream of its
/// own).
#[derive(Clone, Debug)]
pub struct Rng(SplitMix64);

impl Rng {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(SplitMix64::new(seed ^ 0x5DEE_CE66_D1CE_4E5B))
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// Uniform in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.0.below(n)
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.0.next_f64() < p
    }
}

/// What to generate.
#[derive(Clone, Debug)]
pub struct Config {
    /// Concurrent logical processes.
    pub processes: usize,
    /// Operations invoked.
    pub ops: usize,
    /// 0: a single register (no keys); otherwise keys `0..keys`.
    pub keys: usize,
    /// Include cas operations.
    pub cas: bool,
    /// `None`: every written value is unique; `Some(d)`: values drawn from `0..d`.
    pub values: Option<u64>,
    /// Probability that an operation ends indeterminate.
    pub info: f64,
    /// The seed.
    pub seed: u64,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            processes: 5,
            ops: 100,
            keys: 0,
            cas: true,
            values: None,
            info: 0.02,
            seed: 1,
        }
    }
}

struct Pending {
    process: u64,
    f: F,
    key: Option<Value>,
    arg: Value,
    /// Set once the operation took effect: (result value, ok?).
    done: Option<(Value, bool)>,
    info: bool,
}

/// A linearizable history (entries in time order; times are 1000 ns apart).
pub fn linearizable(cfg: &Config) -> Vec<Entry> {
    let mut rng = Rng::new(cfg.seed);
    let p = cfg.processes.max(1);
    let mut slots: Vec<Option<Pending>> = (0..p).map(|_| None).collect();
    let mut process_of: Vec<u64> = (0..p as u64).collect();
    let mut state: HashMap<Option<Value>, Value> = HashMap::new();
    // Indeterminate operations that may still take effect.
    let mut zombies: Vec<Pending> = Vec::new();
    let mut out = Vec::new();
    let mut time = 0u64;
    let mut invoked = 0;
    let mut counter = 0i64;
    let apply = |state: &mut HashMap<Option<Value>, Value>, op: &Pending| -> (Value, bool) {
        let cur = state.get(&op.key).cloned().unwrap_or(Value::Nil);
        match op.f {
            F::Read => (cur, true),
            F::Write => {
                state.insert(op.key.clone(), op.arg.clone());
                (op.arg.clone(), true)
            }
            F::Cas => match op.arg.as_cas() {
                Some((o, n)) if *o == cur => {
                    state.insert(op.key.clone(), n.clone());
                    (op.arg.clone(), true)
                }
                _ => (op.arg.clone(), false),
            },
        }
    };
    loop {
        if invoked >= cfg.ops && slots.iter().all(Option::is_none) {
            break;
        }
        time += 1000;
        if !zombies.is_empty() && rng.chance(0.05) {
            let z = zombies.swap_remove(rng.below(zombies.len() as u64) as usize);
            apply(&mut state, &z);
            continue;
        }
        let s = rng.below(p as u64) as usize;
        match slots[s].take() {
            None if invoked < cfg.ops => {
                invoked += 1;
                let key = (cfg.keys > 0).then(|| Value::Int(rng.below(cfg.keys as u64) as i64));
                let fresh = |rng: &mut Rng, counter: &mut i64| match cfg.values {
                    None => {
                        *counter += 1;
                        Value::Int(*counter)
                    }
                    Some(d) => Value::Int(rng.below(d) as i64),
                };
                let roll = rng.below(if cfg.cas { 3 } else { 2 });
                let (f, arg) = match roll {
                    0 => (F::Read, Value::Nil),
                    1 => (F::Write, fresh(&mut rng, &mut counter)),
                    _ => {
                        let cur = state.get(&key).cloned().unwrap_or(Value::Nil);
                        let old = if rng.chance(0.5) && cur != Value::Nil {
                            cur
                        } else {
                            match cfg.values {
                                None => Value::Int(1 + rng.below(counter.max(1) as u64) as i64),
                                Some(d) => Value::Int(rng.below(d) as i64),
                            }
                        };
                        (
                            F::Cas,
                            Value::List(vec![old, fresh(&mut rng, &mut counter)]),
                        )
                    }
                };
                let op = Pending {
                    process: process_of[s],
                    f,
                    key,
                    arg,
                    done: None,
                    info: rng.chance(cfg.info),
                };
                out.push(Entry {
                    key: op.key.clone(),
                    ..Entry::new(Kind::Invoke, op.process, op.f, op.arg.clone(), time)
                });
                slots[s] = Some(op);
            }
            None => {}
            Some(mut op) if op.done.is_none() => {
                if op.info && rng.chance(0.5) {
                    // Indeterminate before taking effect: it may take effect later, or never.
                    out.push(info_entry(&op, time));
                    process_of[s] += p as u64;
                    if op.f != F::Read {
                        zombies.push(op);
                    }
                } else {
                    op.done = Some(apply(&mut state, &op));
                    slots[s] = Some(op);
                }
            }
            Some(op) => {
                let Some((value, ok)) = op.done.clone() else {
                    continue;
                };
                if op.info {
                    out.push(info_entry(&op, time));
                    process_of[s] += p as u64;
                } else {
                    let kind = if ok { Kind::Ok } else { Kind::Fail };
                    out.push(Entry {
                        key: op.key.clone(),
                        ..Entry::new(kind, op.process, op.f, value, time)
                    });
                }
            }
        }
    }
    out
}

fn info_entry(op: &Pending, time: u64) -> Entry {
    Entry {
        key: op.key.clone(),
        error: Some("timeout".into()),
        ..Entry::new(Kind::Info, op.process, op.f, op.arg.clone(), time)
    }
}

/// (invoke index, completion index) of every completed operation, in invocation order.
fn pairs(h: &[Entry]) -> Vec<(usize, usize)> {
    let mut open = HashMap::new();
    let mut out = Vec::new();
    for (i, e) in h.iter().enumerate() {
        if e.kind == Kind::Invoke {
            open.insert(e.process, i);
        } else if let Some(inv) = open.remove(&e.process) {
            out.push((inv, i));
        }
    }
    out.sort_unstable();
    out
}

/// Makes an ok read return a value that was certainly overwritten before the read began: a
/// write w1 completed, then a write w2 of the same key began and completed, all before the
/// read began; the read now returns w1's value. With unique values (`Config::values = None`)
/// the result is not linearizable. `None` if the history has no such triple.
pub fn stale_read(h: &[Entry], rng: &mut Rng) -> Option<Vec<Entry>> {
    let ps = pairs(h);
    let writes: Vec<&(usize, usize)> = ps
        .iter()
        .filter(|&&(_, c)| h[c].kind == Kind::Ok && h[c].f == F::Write)
        .collect();
    let mut candidates = Vec::new();
    for &&(ri, rc) in ps
        .iter()
        .filter(|&&(_, c)| h[c].kind == Kind::Ok && h[c].f == F::Read)
        .collect::<Vec<_>>()
        .iter()
    {
        let key = &h[ri].key;
        // w2: the last ok write of the key completed before the read began.
        let Some(&&(w2i, _)) = writes
            .iter()
            .filter(|&&&(wi, wc)| &h[wi].key == key && wc < ri)
            .max_by_key(|&&&(wi, _)| wi)
        else {
            continue;
        };
        if let Some(&&(w1i, _)) = writes
            .iter()
            .rfind(|&&&(wi, wc)| &h[wi].key == key && wc < w2i && h[wi].value != h[rc].value)
        {
            candidates.push((rc, h[w1i].value.clone()));
        }
    }
    if candidates.is_empty() {
        return None;
    }
    let (rc, v) = candidates.swap_remove(rng.below(candidates.len() as u64) as usize);
    let mut out = h.to_vec();
    out[rc].value = v;
    Some(out)
}

/// Makes an ok read return the value of a write invoked only after the read completed. With
/// unique values the result is not linearizable. `None` if there is no such pair.
pub fn future_read(h: &[Entry], rng: &mut Rng) -> Option<Vec<Entry>> {
    let ps = pairs(h);
    let mut candidates = Vec::new();
    for &(ri, rc) in ps
        .iter()
        .filter(|&&(_, c)| h[c].kind == Kind::Ok && h[c].f == F::Read)
    {
        if let Some(&(wi, _)) = ps.iter().find(|&&(wi, wc)| {
            wi > rc && h[wi].key == h[ri].key && h[wc].kind == Kind::Ok && h[wc].f == F::Write
        }) {
            candidates.push((rc, h[wi].value.clone()));
        }
    }
    if candidates.is_empty() {
        return None;
    }
    let (rc, v) = candidates.swap_remove(rng.below(candidates.len() as u64) as usize);
    let mut out = h.to_vec();
    out[rc].value = v;
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Generated histories are reproduced from their seed: the stream must never change.
    /// Values from the generator's own implementation before it moved to ordeal-sys.
    #[test]
    fn the_generator_stream_is_unchanged() {
        let mut r = Rng::new(42);
        let firsts: Vec<u64> = (0..3).map(|_| r.next_u64()).collect();
        assert_eq!(
            firsts,
            [151597071426654995, 6923057654035761052, 1365566442647465929]
        );
    }
}
