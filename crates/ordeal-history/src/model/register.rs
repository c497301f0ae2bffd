//! The register: one value (initially nil) with read and write. A cas-register without cas.

use super::cas::{CasRegister, RegisterOp, ValueId};
use super::{Model, ModelMismatch, Prepared};
use crate::checker::Explanation;
use crate::history::{Operation, Value, F};

/// The register model.
#[derive(Clone, Debug, Default)]
pub struct Register(CasRegister);

impl Model for Register {
    type State = ValueId;
    type Op = RegisterOp;

    fn name(&self) -> &'static str {
        "register"
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
        if op.f == F::Cas {
            return Err(ModelMismatch::new(
                op,
                "cas in a register history: use the cas-register model",
            ));
        }
        self.0.op(op)
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
    use crate::history::Outcome;

    fn operation(f: F, key: Option<Value>, value: Value) -> Operation {
        Operation {
            id: 0,
            process: 0,
            f,
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
            origin: "entry 1".into(),
        }
    }

    #[test]
    fn steps_and_operations() {
        let mut m = Register::default();
        let write1 = m.op(&operation(F::Write, None, Value::Int(1))).unwrap();
        let read1 = m.op(&operation(F::Read, None, Value::Int(1))).unwrap();
        let read_nil = m.op(&operation(F::Read, None, Value::Nil)).unwrap();
        let one = m.step(&m.init(), &write1).unwrap();
        assert_eq!(m.describe(&m.init()), Value::Nil);
        assert_eq!(m.describe(&one), Value::Int(1));
        assert_eq!(m.step(&one, &read1), Some(one));
        assert_eq!(m.step(&one, &read_nil), None);
        assert_eq!(m.step(&m.init(), &read_nil), Some(m.init()));
        assert_eq!(
            m.rejection(&one, &read_nil),
            "reads nil, but the value is 1"
        );
        let cas = Value::List(vec![Value::Nil, Value::Int(1)]);
        assert_eq!(
            m.op(&operation(F::Cas, None, cas)).unwrap_err().to_string(),
            "entry 1: cas in a register history: use the cas-register model"
        );
        assert_eq!(
            m.op(&operation(F::Read, Some(Value::Int(1)), Value::Nil))
                .unwrap_err()
                .msg,
            "operation with a key in a single-register history: use the kv model"
        );
        assert_eq!(m.partition(&operation(F::Read, None, Value::Nil)), None);
    }
}
