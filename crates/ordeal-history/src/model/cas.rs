//! The cas-register: one value (initially nil) with read, write and compare-and-set. The
//! register and kv models are this one with other operations allowed.

use super::{single_writer, Model, ModelMismatch, Prepared};
use crate::checker::Explanation;
use crate::history::{Operation, Outcome, Value, F};
use std::collections::{HashMap, HashSet};

/// A value of the history, interned: equal values have equal ids.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ValueId(u32);

impl ValueId {
    /// Nil, the initial value.
    pub const NIL: ValueId = ValueId(0);
}

/// The values of a history, interned so that the register's state is a small integer.
#[derive(Clone, Debug)]
pub struct Values {
    values: Vec<Value>,
    ids: HashMap<Value, ValueId>,
}

impl Default for Values {
    fn default() -> Values {
        Values {
            values: vec![Value::Nil],
            ids: HashMap::from([(Value::Nil, ValueId::NIL)]),
        }
    }
}

impl Values {
    /// The id of `v`, interning it if new.
    pub fn id(&mut self, v: &Value) -> ValueId {
        if let Some(&id) = self.ids.get(v) {
            return id;
        }
        let id = ValueId(self.values.len() as u32);
        self.values.push(v.clone());
        self.ids.insert(v.clone(), id);
        id
    }

    /// The value of `id`.
    pub fn value(&self, id: ValueId) -> &Value {
        &self.values[id.0 as usize]
    }
}

/// An operation on a register.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegisterOp {
    /// A read that returned the value.
    Read(ValueId),
    /// A write of the value.
    Write(ValueId),
    /// Sets `new` if the value is `old`. An `indeterminate` cas may have failed its
    /// comparison: in any other state it takes effect as nothing.
    Cas {
        /// The value compared with.
        old: ValueId,
        /// The value set.
        new: ValueId,
        /// The operation ended `info`.
        indeterminate: bool,
    },
}

impl RegisterOp {
    /// `op` as a register applies it, its values interned in `values`.
    pub fn of(op: &Operation, values: &mut Values) -> Result<RegisterOp, ModelMismatch> {
        Ok(match op.f {
            F::Read => RegisterOp::Read(values.id(&op.value)),
            F::Write => RegisterOp::Write(values.id(&op.value)),
            F::Cas => {
                let Some((old, new)) = op.value.as_cas() else {
                    return Err(ModelMismatch::new(
                        op,
                        format!("cas value must be [old new], got {}", op.value),
                    ));
                };
                RegisterOp::Cas {
                    old: values.id(old),
                    new: values.id(new),
                    indeterminate: op.outcome == Outcome::Info,
                }
            }
        })
    }

    /// The value a write or cas sets.
    pub fn written(self) -> Option<ValueId> {
        match self {
            RegisterOp::Read(_) => None,
            RegisterOp::Write(v) | RegisterOp::Cas { new: v, .. } => Some(v),
        }
    }

    /// The value a read returned or a cas compares with: what the operation observes.
    pub fn observed(self) -> Option<ValueId> {
        match self {
            RegisterOp::Read(v) | RegisterOp::Cas { old: v, .. } => Some(v),
            RegisterOp::Write(_) => None,
        }
    }
}

/// The cas-register model. It holds the history's values (the model interns them as it reads
/// the operations).
#[derive(Clone, Debug, Default)]
pub struct CasRegister {
    /// The values of the operations read so far.
    pub values: Values,
}

impl Model for CasRegister {
    type State = ValueId;
    type Op = RegisterOp;

    fn name(&self) -> &'static str {
        "cas-register"
    }

    fn init(&self) -> ValueId {
        ValueId::NIL
    }

    #[inline]
    fn step(&self, state: &ValueId, op: &RegisterOp) -> Option<ValueId> {
        let state = *state;
        match *op {
            RegisterOp::Read(v) => (state == v).then_some(state),
            RegisterOp::Write(v) => Some(v),
            RegisterOp::Cas {
                old,
                new,
                indeterminate: true,
            } => Some(if state == old { new } else { state }),
            RegisterOp::Cas { old, new, .. } => (state == old).then_some(new),
        }
    }

    fn describe(&self, state: &ValueId) -> Value {
        self.values.value(*state).clone()
    }

    fn op(&mut self, op: &Operation) -> Result<RegisterOp, ModelMismatch> {
        if op.key.is_some() {
            return Err(ModelMismatch::new(
                op,
                "operation with a key in a single-register history: use the kv model",
            ));
        }
        RegisterOp::of(op, &mut self.values)
    }

    #[inline]
    fn read_only(&self, op: &RegisterOp) -> bool {
        matches!(op, RegisterOp::Read(_))
    }

    fn rejection(&self, state: &ValueId, op: &RegisterOp) -> String {
        let v = |id: ValueId| self.values.value(id);
        match *op {
            RegisterOp::Read(x) => format!("reads {}, but the value is {}", v(x), v(*state)),
            RegisterOp::Cas { old, .. } => {
                format!("cas expects {}, but the value is {}", v(old), v(*state))
            }
            RegisterOp::Write(_) => "rejected".to_string(),
        }
    }

    /// Leaves out indeterminate writes (and cas) of a value that no read returns and no cas
    /// compares with: they may as well not have happened (docs/history.md has the proof).
    fn keep(&self, ops: &[Prepared<RegisterOp>]) -> Vec<bool> {
        let mut observed: HashSet<ValueId> = HashSet::from([ValueId::NIL]);
        observed.extend(ops.iter().filter_map(|o| o.op.observed()));
        ops.iter()
            .map(|o| !(o.info && o.op.written().is_some_and(|v| !observed.contains(&v))))
            .collect()
    }

    /// The single-writer pre-check: its explanation's prefix is the value's writer and the
    /// operation that overwrote it.
    fn precheck(&self, ops: &[Prepared<RegisterOp>]) -> Option<Explanation> {
        single_writer::precheck(ops, &self.values)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn operation(f: F, value: Value, outcome: Outcome) -> Operation {
        Operation {
            id: 0,
            process: 0,
            f,
            key: None,
            value,
            outcome,
            call_time: 0,
            ret_time: None,
            call_pos: 0,
            ret_pos: None,
            error: None,
            info_time: None,
            extra: Vec::new(),
            origin: "h.jsonl:7".into(),
        }
    }

    fn int(i: i64) -> Value {
        Value::Int(i)
    }

    fn cas(old: i64, new: i64) -> Value {
        Value::List(vec![int(old), int(new)])
    }

    #[test]
    fn steps() {
        let mut m = CasRegister::default();
        let mut op = |f, v, outcome| m.op(&operation(f, v, outcome)).unwrap();
        let read1 = op(F::Read, int(1), Outcome::Ok);
        let read_nil = op(F::Read, Value::Nil, Outcome::Ok);
        let write2 = op(F::Write, int(2), Outcome::Ok);
        let cas12 = op(F::Cas, cas(1, 2), Outcome::Ok);
        let cas12_info = op(F::Cas, cas(1, 2), Outcome::Info);
        let cas13_info = op(F::Cas, cas(1, 3), Outcome::Info);
        let (nil, one, two) = (ValueId::NIL, ValueId(1), ValueId(2));
        assert_eq!(m.describe(&one), int(1));
        assert_eq!(m.describe(&two), int(2));
        assert_eq!(m.init(), nil);
        assert_eq!(m.describe(&m.init()), Value::Nil);
        assert_eq!(m.step(&nil, &read_nil), Some(nil));
        assert_eq!(m.step(&nil, &read1), None);
        assert_eq!(m.step(&one, &read1), Some(one));
        assert_eq!(m.step(&one, &write2), Some(two));
        assert_eq!(m.step(&one, &cas12), Some(two));
        assert_eq!(m.step(&two, &cas12), None);
        // An indeterminate cas whose comparison fails changes nothing.
        assert_eq!(m.step(&one, &cas12_info), Some(two));
        assert_eq!(m.step(&two, &cas13_info), Some(two));
        assert_eq!(m.rejection(&two, &read1), "reads 1, but the value is 2");
        assert_eq!(
            m.rejection(&two, &cas12),
            "cas expects 1, but the value is 2"
        );
        assert!(m.read_only(&read1));
        assert!(!m.read_only(&cas12));
    }

    #[test]
    fn operations_as_the_model_applies_them() {
        let mut m = CasRegister::default();
        assert_eq!(
            m.op(&operation(F::Cas, cas(1, 2), Outcome::Info)),
            Ok(RegisterOp::Cas {
                old: ValueId(1),
                new: ValueId(2),
                indeterminate: true
            })
        );
        assert_eq!(
            m.op(&operation(F::Write, int(2), Outcome::Fail)),
            Ok(RegisterOp::Write(ValueId(2))),
            "equal values, equal ids"
        );
        assert_eq!(
            m.op(&operation(F::Cas, int(1), Outcome::Ok))
                .unwrap_err()
                .to_string(),
            "h.jsonl:7: cas value must be [old new], got 1"
        );
        let keyed = Operation {
            key: Some(int(0)),
            ..operation(F::Read, Value::Nil, Outcome::Ok)
        };
        assert_eq!(
            m.op(&keyed).unwrap_err().msg,
            "operation with a key in a single-register history: use the kv model"
        );
    }

    #[test]
    fn unobserved_indeterminate_writes_are_left_out() {
        let mut m = CasRegister::default();
        let mut p = |f, v, outcome| Prepared {
            id: 0,
            op: m.op(&operation(f, v, outcome)).unwrap(),
            info: outcome == Outcome::Info,
            call_pos: 0,
            ret_pos: None,
        };
        let ops = [
            p(F::Write, int(1), Outcome::Info),
            p(F::Write, int(2), Outcome::Info),
            p(F::Write, int(3), Outcome::Ok),
            p(F::Cas, cas(4, 5), Outcome::Info),
            p(F::Cas, cas(2, 6), Outcome::Info),
            p(F::Read, int(1), Outcome::Ok),
            p(F::Write, Value::Nil, Outcome::Info),
        ];
        // 1 is read, 2 and 4 compared with, nil is the initial value; 5 and 6 are not observed.
        assert_eq!(m.keep(&ops), [true, true, true, false, false, true, true]);
    }
}
