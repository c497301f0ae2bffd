//! A model defined outside the crate — a counter — checked by the generic search: adding a
//! model needs no change to the search.

use ordeal_history::checker::{check, Budget, Report, Verdict};
use ordeal_history::model::{Model, ModelMismatch};
use ordeal_history::{operations, Entry, History, Kind, Operation, Value, F};

/// A counter starting at 0: `write n` adds n, `read` returns the total. Only what a model
/// must have; every hook keeps its default.
#[derive(Default)]
struct Counter;

#[derive(Debug)]
enum CounterOp {
    Add(i64),
    /// The total read (nil for an indeterminate read: it matches no total).
    Read(Value),
}

impl Model for Counter {
    type State = i64;
    type Op = CounterOp;

    fn name(&self) -> &'static str {
        "counter"
    }

    fn init(&self) -> i64 {
        0
    }

    fn step(&self, total: &i64, op: &CounterOp) -> Option<i64> {
        match op {
            CounterOp::Add(n) => Some(total + n),
            CounterOp::Read(v) => (*v == Value::Int(*total)).then_some(*total),
        }
    }

    fn describe(&self, total: &i64) -> Value {
        Value::Int(*total)
    }

    fn op(&mut self, op: &Operation) -> Result<CounterOp, ModelMismatch> {
        match (op.f, &op.value) {
            (F::Write, Value::Int(n)) => Ok(CounterOp::Add(*n)),
            (F::Read, v) => Ok(CounterOp::Read(v.clone())),
            _ => Err(ModelMismatch::new(
                op,
                "a counter only adds integers and reads",
            )),
        }
    }
}

/// One counter per key: the same model, split by key with the partition hook.
#[derive(Default)]
struct Counters(Counter);

impl Model for Counters {
    type State = i64;
    type Op = CounterOp;

    fn name(&self) -> &'static str {
        "counters"
    }

    fn init(&self) -> i64 {
        self.0.init()
    }

    fn step(&self, total: &i64, op: &CounterOp) -> Option<i64> {
        self.0.step(total, op)
    }

    fn describe(&self, total: &i64) -> Value {
        self.0.describe(total)
    }

    fn op(&mut self, op: &Operation) -> Result<CounterOp, ModelMismatch> {
        self.0.op(op)
    }

    fn partition(&self, op: &Operation) -> Option<Value> {
        op.key.clone()
    }
}

/// Entries from lines `PROCESS TYPE F [KEY=]VALUE` (`0 invoke write 2`, `1 ok read k=3`);
/// times 1, 2, 3...
fn entries(text: &str) -> Vec<Entry> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .enumerate()
        .map(|(i, line)| {
            let w: Vec<&str> = line.split_whitespace().collect();
            let (key, v) = match w.get(3).map(|v| v.split_once('=')) {
                Some(Some((k, v))) => (Some(Value::Str(k.to_string())), Some(v)),
                Some(None) => (None, w.get(3).copied()),
                None => (None, None),
            };
            let value = match v {
                Some("nil") | None => Value::Nil,
                Some(v) => Value::Int(v.parse().unwrap()),
            };
            Entry {
                key,
                ..Entry::new(
                    Kind::parse(w[1]).unwrap(),
                    w[0].parse().unwrap(),
                    F::parse(w[2]).unwrap(),
                    value,
                    i as u64 + 1,
                )
            }
        })
        .collect()
}

fn run<M: Model>(model: M, text: &str) -> Result<Report, ModelMismatch> {
    let ops = operations(&History::from_entries(entries(text))).unwrap();
    check(ops, model, &Budget::default())
}

fn verdict(text: &str) -> Verdict {
    run(Counter, text).unwrap().verdict
}

use Verdict::{Linearizable as LIN, NotLinearizable as NOT};

#[test]
fn sequential_adds_sum_up() {
    let text = "0 invoke write 1\n0 ok write 1\n0 invoke write 2\n0 ok write 2\n\
                0 invoke read\n0 ok read 3";
    assert_eq!(verdict(text), LIN);
    // The same history is not a register's: 3 was never written.
    assert_eq!(
        ordeal_history::check_entries(
            entries(text),
            ordeal_history::Model::Register,
            &Budget::default()
        )
        .unwrap()
        .verdict,
        NOT
    );
    assert_eq!(verdict("0 invoke read\n0 ok read 0"), LIN);
    assert_eq!(verdict("0 invoke read\n0 ok read 1"), NOT);
}

#[test]
fn a_read_concurrent_with_two_adds_sees_any_partial_sum() {
    for (total, expected) in [(0, LIN), (1, LIN), (2, LIN), (3, LIN), (4, NOT)] {
        let text = format!(
            "0 invoke write 1\n1 invoke write 2\n2 invoke read\n2 ok read {total}\n\
             0 ok write 1\n1 ok write 2"
        );
        assert_eq!(verdict(&text), expected, "read {total}");
    }
}

#[test]
fn outcomes_keep_their_meaning_for_any_model() {
    // A failed add did not happen.
    let failed = "0 invoke write 1\n0 fail write 1\n0 invoke read\n0 ok read";
    assert_eq!(verdict(&format!("{failed} 0")), LIN);
    assert_eq!(verdict(&format!("{failed} 1")), NOT);
    // An indeterminate add may take effect, late, or never...
    let info = "0 invoke write 5\n0 info write 5\n1 invoke read\n1 ok read";
    assert_eq!(verdict(&format!("{info} 0")), LIN);
    assert_eq!(verdict(&format!("{info} 5")), LIN);
    // ...but once seen it stays.
    assert_eq!(
        verdict(&format!("{info} 5\n1 invoke read\n1 ok read 0")),
        NOT
    );
    // An indeterminate read constrains nothing.
    assert_eq!(
        verdict("0 invoke read\n0 info read\n1 invoke read\n1 ok read 0"),
        LIN
    );
}

#[test]
fn a_violation_is_explained_with_the_model_states() {
    let r = run(
        Counter,
        "0 invoke write 1\n0 ok write 1\n0 invoke write 2\n0 ok write 2\n\
         1 invoke read\n1 ok read 4",
    )
    .unwrap();
    assert_eq!((r.model, &r.verdict), ("counter", &NOT));
    let e = r.keys[0].explanation.as_ref().unwrap();
    assert!(!e.proof, "no pre-check: found by the search");
    let prefix: Vec<(usize, Value)> = e.prefix.iter().map(|p| (p.op, p.state.clone())).collect();
    assert_eq!(prefix, [(0, Value::Int(1)), (1, Value::Int(3))]);
    assert_eq!((e.state.clone(), e.blocking), (Value::Int(3), 2));
    let unplaceable: Vec<(usize, bool, &str)> = e
        .unplaceable
        .iter()
        .map(|u| (u.op, u.rejected, u.reason.as_str()))
        .collect();
    assert_eq!(unplaceable, [(2, true, "rejected")]);
    let text = ordeal_history::text_report(&r);
    assert!(
        text.starts_with("not linearizable: 3 operations, 1 key, model counter"),
        "{text}"
    );
    assert!(
        text.contains("longest linearizable prefix: 2 operation(s), ending in state 3"),
        "{text}"
    );
}

#[test]
fn the_partition_hook_checks_each_key_alone() {
    let r = run(
        Counters::default(),
        "0 invoke write a=1\n0 ok write a=1\n1 invoke write b=2\n1 ok write b=2\n\
         0 invoke read a=1\n0 ok read a=1\n1 invoke read b=3\n1 ok read b=3",
    )
    .unwrap();
    let per_key: Vec<(Option<Value>, usize, Verdict)> = r
        .keys
        .iter()
        .map(|k| (k.key.clone(), k.ops, k.verdict.clone()))
        .collect();
    assert_eq!(
        per_key,
        [
            (Some(Value::Str("a".into())), 2, LIN),
            (Some(Value::Str("b".into())), 2, NOT)
        ]
    );
    assert_eq!(r.verdict, NOT);
}

#[test]
fn budgets_and_mismatches_apply_to_any_model() {
    let err = run(Counter, "0 invoke write nil\n0 ok write nil");
    assert_eq!(
        err.unwrap_err().to_string(),
        "entry 1: a counter only adds integers and reads"
    );
    // Many concurrent adds and an impossible read: the search runs out of steps.
    let mut text = String::new();
    for p in 0..12 {
        text.push_str(&format!("{p} invoke write {}\n", 1 << p));
    }
    text.push_str("99 invoke read\n99 ok read -1\n");
    for p in 0..12 {
        text.push_str(&format!("{p} ok write {}\n", 1 << p));
    }
    let ops = operations(&History::from_entries(entries(&text))).unwrap();
    let budget = Budget {
        max_steps: Some(100),
        ..Budget::default()
    };
    let r = check(ops, Counter, &budget).unwrap();
    assert_eq!(
        r.verdict,
        Verdict::Unknown("step budget of 100 search steps exhausted".into())
    );
}
