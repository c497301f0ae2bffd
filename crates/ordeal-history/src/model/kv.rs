//! The key-value map: independent cas-registers, one per key, each initially nil. Every
//! operation has a key; each key is a part of its own (checked alone, in parallel).

use super::cas::{CasRegister, RegisterOp, ValueId};
use super::{Model, ModelMismatch, Prepared};
use crate::checker::Explanation;
use crate::history::{Operation, Value};

/// The key-value model.
#[derive(Clone, Debug, Default)]
pub struct Kv(CasRegister);

impl Model for Kv {
    type State = ValueId;
    type Op = RegisterOp;

    fn name(&self) -> &'static str {
        "kv"
    }

    fn init(&self) -> ValueId {
        self.0.init()
    }

    #[inline]
    fn step(&self, state: &ValueId, op: &RegisterOp) -> Option<ValueId> {
        self.0.step(state, op)
    }

    fn describe(&self, state: &ValueId) -> Value {
        self.0.describe(state)
    }

    fn op(&mut self, op: &Operation) -> Result<RegisterOp, ModelMismatch> {
        if op.key.is_none() {
            return Err(ModelMismatch::new(
                op,
                "operation without a key in a kv history",
            ));
        }
        RegisterOp::of(op, &mut self.0.values)
    }

    fn partition(&self, op: &Operation) -> Option<Value> {
        op.key.clone()
    }

    #[inline]
    fn read_only(&self, op: &RegisterOp) -> bool {
        self.0.read_only(op)
    }

    fn rejection(&self, state: &ValueId, op: &RegisterOp) -> String {
        self.0.rejection(state, op)
    }

    fn keep(&self, ops: &[Prepared<RegisterOp>]) -> Vec<bool> {
        self.0.keep(ops)
    }

    fn precheck(&self, ops: &[Prepared<RegisterOp>]) -> Option<Explanation> {
        self.0.precheck(ops)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{Outcome, F};

    fn operation(key: Option<Value>, value: Value) -> Operation {
        Operation {
            id: 0,
            process: 0,
            f: F::Cas,
            key,
            value,
            outcome: Outcome::Ok,
            call_time: 0,
            ret_time: None,
            call_pos: 0,
            ret_pos: None,
            error: None,
            info_time: None,
            extra: Vec::new(),
            origin: "entry 3".into(),
        }
    }

    #[test]
    fn each_key_is_a_cas_register() {
        let mut m = Kv::default();
        let k = Value::Str("k".into());
        let cas = Value::List(vec![Value::Nil, Value::Int(1)]);
        let keyed = operation(Some(k.clone()), cas.clone());
        assert_eq!(m.partition(&keyed), Some(k));
        let op = m.op(&keyed).unwrap();
        assert_eq!(m.init(), ValueId::NIL);
        let one = m.step(&m.init(), &op).unwrap();
        assert_eq!(m.describe(&one), Value::Int(1));
        assert_eq!(m.step(&one, &op), None);
        assert_eq!(
            m.rejection(&one, &op),
            "cas expects nil, but the value is 1"
        );
        assert_eq!(
            m.op(&operation(None, cas)).unwrap_err().to_string(),
            "entry 3: operation without a key in a kv history"
        );
    }
}
