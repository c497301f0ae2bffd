//! The register models' pre-check: violations that need no search when a value has a single
//! writer.

use super::cas::{RegisterOp, ValueId, Values};
use super::Prepared;
use crate::checker::{Explanation, Placed, Unplaced};
use std::collections::HashMap;

/// A read (or a cas's comparison) of a value nobody writes, whose writer is invoked only after
/// the read completed, or that was overwritten by an operation that began after its writer
/// completed and completed before the read began (a stale read); a read of nil after a write
/// completed. These are decided in O(n log n) however many processes overlap; the
/// explanation's prefix is the operations that prove the violation.
pub(super) fn precheck(ops: &[Prepared<RegisterOp>], values: &Values) -> Option<Explanation> {
    let written = |o: &Prepared<RegisterOp>| o.op.written();
    let mut writers: HashMap<ValueId, Vec<usize>> = HashMap::new();
    for (i, o) in ops.iter().enumerate() {
        if let Some(v) = written(o) {
            writers.entry(v).or_default().push(i);
        }
    }
    // Writes and cas that certainly took effect, by invocation, with the earliest completion
    // among those invoked at or after each.
    let mut effective: Vec<usize> = (0..ops.len())
        .filter(|&i| !ops[i].info && written(&ops[i]).is_some())
        .collect();
    effective.sort_by_key(|&i| ops[i].call_pos);
    let mut sufmin: Vec<(usize, usize)> = vec![(usize::MAX, usize::MAX); effective.len() + 1];
    for k in (0..effective.len()).rev() {
        let i = effective[k];
        let r = ops[i].ret_pos.unwrap_or(usize::MAX);
        sufmin[k] = if r < sufmin[k + 1].0 {
            (r, i)
        } else {
            sufmin[k + 1]
        };
    }
    // The effective operation invoked after `after` that completed first, if before `before`.
    let between = |after: Option<usize>, before: usize| -> Option<usize> {
        let k = match after {
            None => 0,
            Some(a) => effective.partition_point(|&i| ops[i].call_pos <= a),
        };
        let (r, i) = sufmin[k];
        (r < before).then_some(i)
    };
    let nil = ValueId::NIL;
    let v = |id: ValueId| values.value(id).clone();
    for o in ops {
        if o.info {
            continue;
        }
        let (Some(u), Some(ret)) = (o.op.observed(), o.ret_pos) else {
            continue;
        };
        let ws = writers.get(&u).map_or(&[][..], |w| w.as_slice());
        let proof: Option<Vec<usize>> = match ws {
            // Nil is never written: after a write completed, a read cannot see it.
            [] if u == nil => between(None, o.call_pos).map(|w| vec![w]),
            // Someone writes nil: the initial state is a second writer.
            _ if u == nil => None,
            [] => Some(between(None, o.call_pos).into_iter().collect()),
            [w] if ops[*w].call_pos > ret => Some(between(None, o.call_pos).into_iter().collect()),
            [w] => ops[*w]
                .ret_pos
                .and_then(|wr| between(Some(wr), o.call_pos))
                .map(|w2| vec![*w, w2]),
            _ => None,
        };
        let Some(proof) = proof else { continue };
        let state = proof.last().and_then(|&i| written(&ops[i])).unwrap_or(nil);
        let reason = match o.op {
            RegisterOp::Cas { .. } => {
                format!("cas expects {}, but the value is {}", v(u), v(state))
            }
            _ => format!("reads {}, but the value is {}", v(u), v(state)),
        };
        return Some(Explanation {
            prefix: proof
                .iter()
                .map(|&i| Placed {
                    op: ops[i].id,
                    state: v(written(&ops[i]).unwrap_or(nil)),
                })
                .collect(),
            state: v(state),
            blocking: o.id,
            unplaceable: vec![Unplaced {
                op: o.id,
                rejected: true,
                reason,
            }],
            proof: true,
        });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{Operation, Outcome, Value, F};
    use crate::model::cas::CasRegister;
    use crate::model::Model;

    /// The history's operations, each `(f, value, call, ret)`, as a cas-register prepares them.
    fn prepare(m: &mut CasRegister, ops: &[(F, Value, usize, usize)]) -> Vec<Prepared<RegisterOp>> {
        ops.iter()
            .enumerate()
            .map(|(id, (f, value, call, ret))| {
                let op = Operation {
                    id,
                    process: id as u64,
                    f: *f,
                    key: None,
                    value: value.clone(),
                    outcome: Outcome::Ok,
                    call_time: *call as u64,
                    ret_time: Some(*ret as u64),
                    call_pos: *call,
                    ret_pos: Some(*ret),
                    error: None,
                    info_time: None,
                    extra: Vec::new(),
                    origin: String::new(),
                };
                Prepared {
                    id,
                    op: m.op(&op).unwrap(),
                    info: false,
                    call_pos: *call,
                    ret_pos: Some(*ret),
                }
            })
            .collect()
    }

    #[test]
    fn a_stale_read_is_proved_by_the_writer_and_the_overwriter() {
        let mut m = CasRegister::default();
        let (one, two) = (Value::Int(1), Value::Int(2));
        let ops = prepare(
            &mut m,
            &[
                (F::Write, one.clone(), 0, 1),
                (F::Write, two.clone(), 2, 3),
                (F::Read, one.clone(), 4, 5),
            ],
        );
        let e = precheck(&ops, &m.values).unwrap();
        let prefix: Vec<(usize, Value)> =
            e.prefix.iter().map(|p| (p.op, p.state.clone())).collect();
        assert_eq!(prefix, [(0, one.clone()), (1, two.clone())]);
        assert_eq!((&e.state, e.blocking, e.proof), (&two, 2, true));
        assert_eq!(e.unplaceable[0].reason, "reads 1, but the value is 2");
        // The read overlaps the overwrite: nothing is proved.
        let ops = prepare(
            &mut m,
            &[
                (F::Write, one.clone(), 0, 1),
                (F::Write, two, 2, 5),
                (F::Read, one, 3, 4),
            ],
        );
        assert_eq!(precheck(&ops, &m.values), None);
    }

    #[test]
    fn nil_after_a_completed_write_and_values_never_written() {
        let mut m = CasRegister::default();
        let ops = prepare(
            &mut m,
            &[(F::Write, Value::Int(1), 0, 1), (F::Read, Value::Nil, 2, 3)],
        );
        let e = precheck(&ops, &m.values).unwrap();
        assert_eq!(e.unplaceable[0].reason, "reads nil, but the value is 1");
        let cas = Value::List(vec![Value::Int(7), Value::Int(8)]);
        let ops = prepare(
            &mut m,
            &[(F::Write, Value::Int(1), 0, 1), (F::Cas, cas, 2, 3)],
        );
        let e = precheck(&ops, &m.values).unwrap();
        assert_eq!(e.unplaceable[0].reason, "cas expects 7, but the value is 1");
        assert_eq!(e.prefix.len(), 1);
    }
}
