//! The checker on hand-written histories with known answers, and property tests: random
//! linearizable histories (by construction), mutated ones (non-linearizable by construction),
//! and small random histories compared with a brute-force search.

use ordeal_history::generate::{self, Config, Rng};
use ordeal_history::{
    check_entries, operations, Budget, Entry, History, Kind, Model, Outcome, Report, Value,
    Verdict, F,
};

/// Entries from lines `PROCESS TYPE F [VALUE...]` (`3 invoke cas 1 2`, `0 ok read nil`,
/// `1 invoke write k1=5` for a key); times 1, 2, 3...
fn h(text: &str) -> Vec<Entry> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .enumerate()
        .map(|(i, line)| {
            let w: Vec<&str> = line.split_whitespace().collect();
            let kind = Kind::parse(w[1]).unwrap();
            let f = F::parse(w[2]).unwrap();
            let mut key = None;
            let mut vals: Vec<Value> = w[3..]
                .iter()
                .map(|v| {
                    let v = match v.split_once('=') {
                        Some((k, v)) => {
                            key = Some(Value::Str(k.to_string()));
                            v
                        }
                        None => v,
                    };
                    if v == "nil" {
                        Value::Nil
                    } else {
                        Value::Int(v.parse().unwrap())
                    }
                })
                .collect();
            let value = match vals.len() {
                0 => Value::Nil,
                1 => vals.remove(0),
                _ => Value::List(vals),
            };
            Entry {
                key,
                ..Entry::new(kind, w[0].parse().unwrap(), f, value, i as u64 + 1)
            }
        })
        .collect()
}

fn run(text: &str, model: Model) -> Report {
    check_entries(h(text), model, &Budget::default()).unwrap()
}

fn verdict(text: &str, model: Model) -> Verdict {
    run(text, model).verdict
}

use Model::{CasRegister, Kv, Register};
use Verdict::{Linearizable as LIN, NotLinearizable as NOT};

#[test]
fn empty_and_sequential_histories() {
    assert_eq!(verdict("", Register), LIN);
    assert_eq!(
        verdict("0 invoke read\n0 ok read nil", Register),
        LIN,
        "a register starts nil"
    );
    assert_eq!(
        verdict(
            "0 invoke write 1\n0 ok write 1\n0 invoke read\n0 ok read 1",
            Register
        ),
        LIN
    );
    assert_eq!(
        verdict(
            "0 invoke write 1\n0 ok write 1\n0 invoke read\n0 ok read 2",
            Register
        ),
        NOT
    );
    assert_eq!(verdict("0 invoke read\n0 ok read 1", Register), NOT);
}

#[test]
fn concurrent_operations_may_be_ordered_either_way() {
    // The read overlaps the write: it may see the old or the new value.
    for read in ["nil", "1"] {
        let text = format!("0 invoke write 1\n1 invoke read\n1 ok read {read}\n0 ok write 1");
        assert_eq!(verdict(&text, Register), LIN, "read {read}");
    }
    // New-then-old inversion: two sequential reads, both concurrent with the write.
    assert_eq!(
        verdict(
            "0 invoke write 1\n1 invoke read\n1 ok read 1\n2 invoke read\n2 ok read nil\n0 ok write 1",
            Register
        ),
        NOT
    );
}

#[test]
fn a_stale_read_is_explained() {
    let r = run(
        "0 invoke write 1\n0 ok write 1\n0 invoke write 2\n0 ok write 2\n1 invoke read\n1 ok read 1",
        Register,
    );
    assert_eq!(r.verdict, NOT);
    assert_eq!(r.keys.len(), 1);
    let e = r.keys[0].explanation.as_ref().unwrap();
    let prefix: Vec<(usize, Value)> = e.prefix.iter().map(|p| (p.op, p.state.clone())).collect();
    assert_eq!(prefix, vec![(0, Value::Int(1)), (1, Value::Int(2))]);
    assert_eq!(e.state, Value::Int(2));
    assert_eq!(e.blocking, 2);
    assert_eq!(e.unplaceable.len(), 1);
    assert_eq!(e.unplaceable[0].op, 2);
    assert!(e.unplaceable[0].rejected);
    assert_eq!(e.unplaceable[0].reason, "reads 1, but the value is 2");
    assert!(e.proof, "a single writer per value: decided without search");
    let text = ordeal_history::text_report(&r);
    assert!(
        text.starts_with("not linearizable: 3 operations, 1 key, model register"),
        "{text}"
    );
    assert!(
        text.contains("found without search: 2 operation(s) prove it, leaving state 2"),
        "{text}"
    );
    assert!(text.contains("reads 1, but the value is 2"), "{text}");
}

#[test]
fn a_search_explains_with_the_longest_prefix() {
    // Values written twice: the pre-check cannot decide, the search does.
    let r = run(
        "0 invoke write 1\n0 ok write 1\n0 invoke write 2\n0 ok write 2\n\
         0 invoke write 1\n0 ok write 1\n0 invoke write 2\n0 ok write 2\n\
         0 invoke write 3\n0 ok write 3\n1 invoke read\n1 ok read 2",
        Register,
    );
    assert_eq!(r.verdict, NOT);
    assert!(r.keys[0].configurations > 0);
    let e = r.keys[0].explanation.as_ref().unwrap();
    assert!(!e.proof);
    let prefix: Vec<(usize, Value)> = e.prefix.iter().map(|p| (p.op, p.state.clone())).collect();
    assert_eq!(
        prefix,
        vec![
            (0, Value::Int(1)),
            (1, Value::Int(2)),
            (2, Value::Int(1)),
            (3, Value::Int(2)),
            (4, Value::Int(3))
        ]
    );
    assert_eq!(e.state, Value::Int(3));
    assert_eq!(e.blocking, 5);
    assert_eq!(e.unplaceable.len(), 1);
    assert_eq!(e.unplaceable[0].reason, "reads 2, but the value is 3");
    let text = ordeal_history::text_report(&r);
    assert!(
        text.contains("longest linearizable prefix: 5 operation(s), ending in state 3"),
        "{text}"
    );
}

#[test]
fn indeterminate_writes_may_take_effect_late_or_never() {
    // Never completes: the read may or may not see it.
    for read in ["nil", "1"] {
        let text = format!("0 invoke write 1\n0 info write 1\n1 invoke read\n1 ok read {read}");
        assert_eq!(verdict(&text, Register), LIN, "read {read}");
    }
    // ...but once seen it stays (no other write): 1 then nil is impossible.
    assert_eq!(
        verdict(
            "0 invoke write 1\n0 info write 1\n1 invoke read\n1 ok read 1\n1 invoke read\n1 ok read nil",
            Register
        ),
        NOT
    );
    // It may take effect after a later acknowledged write.
    assert_eq!(
        verdict(
            "0 invoke write 1\n0 info write 1\n1 invoke write 2\n1 ok write 2\n1 invoke read\n1 ok read 1",
            Register
        ),
        LIN
    );
    // But not before its invocation.
    assert_eq!(
        verdict(
            "1 invoke read\n1 ok read 1\n0 invoke write 1\n0 info write 1",
            Register
        ),
        NOT
    );
    // An invocation with no completion at all is indeterminate too.
    assert_eq!(
        verdict("0 invoke write 1\n1 invoke read\n1 ok read 1", Register),
        LIN
    );
    // An indeterminate read constrains nothing.
    assert_eq!(
        verdict(
            "0 invoke read\n0 info read\n1 invoke read\n1 ok read nil",
            Register
        ),
        LIN
    );
}

#[test]
fn compare_and_set() {
    let m = CasRegister;
    assert_eq!(
        verdict("0 invoke write 1\n0 ok write 1\n0 invoke cas 1 2\n0 ok cas 1 2\n0 invoke read\n0 ok read 2", m),
        LIN
    );
    // A successful cas from a value the register does not hold.
    assert_eq!(
        verdict(
            "0 invoke write 1\n0 ok write 1\n0 invoke cas 3 2\n0 ok cas 3 2",
            m
        ),
        NOT
    );
    // A failed cas did not happen.
    assert_eq!(
        verdict("0 invoke write 1\n0 ok write 1\n0 invoke cas 1 2\n0 fail cas 1 2\n0 invoke read\n0 ok read 1", m),
        LIN
    );
    // An indeterminate cas may or may not have happened...
    for read in ["1", "2"] {
        let text = format!(
            "0 invoke write 1\n0 ok write 1\n1 invoke cas 1 2\n1 info cas 1 2\n0 invoke read\n0 ok read {read}"
        );
        assert_eq!(verdict(&text, m), LIN, "read {read}");
    }
    // ...but only if its comparison could hold.
    assert_eq!(
        verdict("0 invoke write 1\n0 ok write 1\n1 invoke cas 3 2\n1 info cas 3 2\n0 invoke read\n0 ok read 2", m),
        NOT
    );
    // Two concurrent cas from the same value cannot both succeed.
    assert_eq!(
        verdict("9 invoke write 0\n9 ok write 0\n0 invoke cas 0 1\n1 invoke cas 0 2\n0 ok cas 0 1\n1 ok cas 0 2", m),
        NOT
    );
    // A chain of cas in either order.
    assert_eq!(
        verdict("9 invoke write 0\n9 ok write 0\n0 invoke cas 1 2\n1 invoke cas 0 1\n0 ok cas 1 2\n1 ok cas 0 1\n9 invoke read\n9 ok read 2", m),
        LIN
    );
    let r = run(
        "0 invoke write 1\n0 ok write 1\n0 invoke cas 3 2\n0 ok cas 3 2",
        m,
    );
    let e = r.keys[0].explanation.as_ref().unwrap();
    assert_eq!(e.unplaceable[0].reason, "cas expects 3, but the value is 1");
}

#[test]
fn models_reject_histories_that_do_not_fit() {
    let err = check_entries(
        h("0 invoke cas 1 2\n0 ok cas 1 2"),
        Register,
        &Budget::default(),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "entry 1: cas in a register history: use the cas-register model"
    );
    let err = check_entries(
        h("0 invoke write k=1\n0 ok write k=1"),
        Register,
        &Budget::default(),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "entry 1: operation with a key in a single-register history: use the kv model"
    );
    let err = check_entries(h("0 invoke write 1"), Kv, &Budget::default()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "entry 1: operation without a key in a kv history"
    );
}

#[test]
fn key_value_histories_are_checked_per_key() {
    let r = run(
        "0 invoke write a=1\n0 ok write a=1\n1 invoke write b=2\n1 ok write b=2\n\
         0 invoke read a=nil\n0 ok read a=1\n1 invoke read b=nil\n1 ok read b=1\n\
         2 invoke cas c=0 1\n2 ok cas c=0 1",
        Kv,
    );
    assert_eq!(r.verdict, NOT);
    let per_key: Vec<(String, Verdict)> = r
        .keys
        .iter()
        .map(|k| (k.key.as_ref().unwrap().to_string(), k.verdict.clone()))
        .collect();
    assert_eq!(
        per_key,
        vec![
            ("\"a\"".to_string(), LIN),
            ("\"b\"".to_string(), NOT),
            ("\"c\"".to_string(), NOT)
        ]
    );
    assert_eq!(r.keys[1].ops, 2);
}

#[test]
fn budgets_give_unknown_with_the_reason() {
    let entries = generate::linearizable(&Config {
        processes: 10,
        ops: 3000,
        values: Some(3),
        ..Config::default()
    });
    let budget = Budget {
        max_steps: Some(1000),
        ..Budget::default()
    };
    let r = check_entries(entries.clone(), CasRegister, &budget).unwrap();
    assert_eq!(
        r.verdict,
        Verdict::Unknown("step budget of 1000 search steps exhausted".into())
    );
    let budget = Budget {
        memory: Some(1000),
        ..Budget::default()
    };
    let r = check_entries(entries.clone(), CasRegister, &budget).unwrap();
    assert_eq!(
        r.verdict,
        Verdict::Unknown("memory budget of 1000 B exhausted".into())
    );
    let budget = Budget {
        time: Some(std::time::Duration::ZERO),
        ..Budget::default()
    };
    let r = check_entries(entries, CasRegister, &budget).unwrap();
    assert_eq!(
        r.verdict,
        Verdict::Unknown("time budget of 0ns exhausted".into())
    );
}

fn config(seed: u64) -> Config {
    let mut rng = Rng::new(seed);
    Config {
        processes: 1 + rng.below(8) as usize,
        ops: 1 + rng.below(300) as usize,
        keys: 0,
        cas: rng.chance(0.5),
        values: if rng.chance(0.5) {
            None
        } else {
            Some(2 + rng.below(4))
        },
        info: [0.0, 0.02, 0.2][rng.below(3) as usize],
        seed,
    }
}

#[test]
fn generated_linearizable_histories_are_linearizable() {
    for seed in 0..300 {
        let cfg = config(seed);
        let entries = generate::linearizable(&cfg);
        let r = check_entries(entries, CasRegister, &Budget::default()).unwrap();
        assert_eq!(r.verdict, LIN, "seed {seed}: {cfg:?}");
    }
}

#[test]
fn generated_key_value_histories_are_linearizable_per_key() {
    for seed in 0..30 {
        let cfg = Config {
            keys: 1 + seed as usize % 7,
            ops: 500,
            processes: 6,
            ..config(seed)
        };
        let r = check_entries(generate::linearizable(&cfg), Kv, &Budget::default()).unwrap();
        assert_eq!(r.verdict, LIN, "seed {seed}: {cfg:?}");
        assert_eq!(r.keys.len(), cfg.keys.min(r.keys.len()));
    }
}

#[test]
fn mutated_histories_are_not_linearizable() {
    let mut mutated = 0;
    for seed in 0..300 {
        let cfg = Config {
            values: None,
            keys: seed as usize % 3,
            ..config(seed)
        };
        let model = if cfg.keys > 0 { Kv } else { CasRegister };
        let entries = generate::linearizable(&cfg);
        let mut rng = Rng::new(seed);
        for m in [generate::stale_read, generate::future_read] {
            let Some(bad) = m(&entries, &mut rng) else {
                continue;
            };
            mutated += 1;
            let r = check_entries(bad, model, &Budget::default()).unwrap();
            assert_eq!(r.verdict, NOT, "seed {seed}: {cfg:?}");
            let k = r.keys.iter().find(|k| k.verdict == NOT).unwrap();
            let e = k.explanation.as_ref().expect("an explanation");
            assert!(
                !e.unplaceable.is_empty(),
                "seed {seed}: some operation cannot be placed"
            );
        }
    }
    assert!(mutated > 300, "only {mutated} mutations applied");
}

/// A linearization search without memoization or cleverness: tries every order.
fn brute_force(entries: &[Entry]) -> bool {
    let ops = operations(&History::from_entries(entries.to_vec())).unwrap();
    let ops: Vec<_> = ops
        .into_iter()
        .filter(|o| o.outcome != Outcome::Fail && !(o.outcome == Outcome::Info && o.f == F::Read))
        .collect();
    fn go(ops: &[ordeal_history::Operation], placed: &mut Vec<bool>, state: &Value) -> bool {
        let unplaced_finite: Vec<usize> = (0..ops.len())
            .filter(|&i| !placed[i] && ops[i].ret_pos.is_some())
            .collect();
        if unplaced_finite.is_empty() {
            return true;
        }
        for i in 0..ops.len() {
            if placed[i] {
                continue;
            }
            // Real time: nothing unplaced may have completed before this began.
            if unplaced_finite
                .iter()
                .any(|&x| ops[x].ret_pos.is_some_and(|r| r < ops[i].call_pos))
            {
                continue;
            }
            let info = ops[i].outcome == Outcome::Info;
            let next = match ops[i].f {
                F::Read => (ops[i].value == *state).then(|| state.clone()),
                F::Write => Some(ops[i].value.clone()),
                F::Cas => {
                    let (o, n) = ops[i].value.as_cas().unwrap();
                    if o == state {
                        Some(n.clone())
                    } else if info {
                        Some(state.clone())
                    } else {
                        None
                    }
                }
            };
            if let Some(next) = next {
                placed[i] = true;
                if go(ops, placed, &next) {
                    return true;
                }
                placed[i] = false;
            }
        }
        false
    }
    go(&ops, &mut vec![false; ops.len()], &Value::Nil)
}

#[test]
fn small_random_histories_agree_with_brute_force() {
    let (mut lin, mut not) = (0, 0);
    for seed in 0..2000 {
        let mut rng = Rng::new(seed);
        let cfg = Config {
            processes: 1 + rng.below(4) as usize,
            ops: 1 + rng.below(8) as usize,
            // Unique values half the time: the single-writer pre-check decides those.
            values: if seed % 2 == 0 { Some(3) } else { None },
            info: 0.2,
            ..config(seed)
        };
        let mut entries = generate::linearizable(&cfg);
        // Change some completions' values at random.
        for e in entries.iter_mut() {
            if e.kind == Kind::Ok && e.f == F::Read && rng.chance(0.3) {
                e.value = Value::Int(rng.below(3) as i64);
            }
        }
        let expected = brute_force(&entries);
        let r = check_entries(entries.clone(), CasRegister, &Budget::default()).unwrap();
        let got = r.verdict == LIN;
        assert_eq!(got, expected, "seed {seed}: {entries:#?}");
        if expected {
            lin += 1
        } else {
            not += 1
        }
    }
    assert!(lin > 300 && not > 300, "{lin} linearizable, {not} not");
}
