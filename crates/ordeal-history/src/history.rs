//! The history model: entries as recorded (invoke, then ok / fail / info) and operations
//! (an invocation paired with its completion).

use std::fmt;

/// A value read, written, or a key. `cas` values are `List([old, new])`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Value {
    /// No value: a read of a key that does not exist, an invocation's unknown result.
    Nil,
    /// An integer.
    Int(i64),
    /// A string.
    Str(String),
    /// A list of values (`[old, new]` for `cas`).
    List(Vec<Value>),
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Nil => f.write_str("nil"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Str(s) => write!(f, "{s:?}"),
            Value::List(items) => {
                f.write_str("[")?;
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(" ")?;
                    }
                    write!(f, "{v}")?;
                }
                f.write_str("]")
            }
        }
    }
}

impl Value {
    /// The value as JSON (`null`, number, string, array).
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Value::Nil => serde_json::Value::Null,
            Value::Int(i) => serde_json::Value::from(*i),
            Value::Str(s) => serde_json::Value::from(s.as_str()),
            Value::List(items) => {
                serde_json::Value::Array(items.iter().map(Value::to_json).collect())
            }
        }
    }

    /// The value of a JSON value; `Err` names what is not representable (floats, objects,
    /// booleans).
    pub fn from_json(v: &serde_json::Value) -> Result<Value, ValueError> {
        match v {
            serde_json::Value::Null => Ok(Value::Nil),
            serde_json::Value::Number(n) => n
                .as_i64()
                .map(Value::Int)
                .ok_or_else(|| ValueError::NotAnInteger(n.clone())),
            serde_json::Value::String(s) => Ok(Value::Str(s.clone())),
            serde_json::Value::Array(items) => items
                .iter()
                .map(Value::from_json)
                .collect::<Result<_, _>>()
                .map(Value::List),
            other => Err(ValueError::Unsupported(other.clone())),
        }
    }

    /// `(old, new)` of a `cas` value `[old, new]`.
    pub fn as_cas(&self) -> Option<(&Value, &Value)> {
        match self {
            Value::List(items) if items.len() == 2 => Some((&items[0], &items[1])),
            _ => None,
        }
    }
}

/// A JSON value that is not a [`Value`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    /// A float, or an integer beyond 64 bits.
    #[error("number {0} is not a 64-bit integer")]
    NotAnInteger(serde_json::Number),
    /// A boolean or an object.
    #[error("unsupported value {0}")]
    Unsupported(serde_json::Value),
}

/// What an entry records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// The operation was started.
    Invoke,
    /// It completed and took effect (a read's value is the value read).
    Ok,
    /// It completed and certainly did not take effect.
    Fail,
    /// Indeterminate (timeout, connection lost): it may or may not take effect, at any time
    /// after its invocation.
    Info,
}

impl Kind {
    /// The name used in history.jsonl and EDN.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Invoke => "invoke",
            Kind::Ok => "ok",
            Kind::Fail => "fail",
            Kind::Info => "info",
        }
    }

    /// The kind named `s`.
    pub fn parse(s: &str) -> Option<Kind> {
        Some(match s {
            "invoke" => Kind::Invoke,
            "ok" => Kind::Ok,
            "fail" => Kind::Fail,
            "info" => Kind::Info,
            _ => return None,
        })
    }
}

/// The operation's function.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum F {
    /// Read the register (or the key); the completion's value is what was read.
    Read,
    /// Write the value.
    Write,
    /// Compare-and-set: value `[old, new]`; sets `new` if the current value is `old`.
    Cas,
}

impl F {
    /// The name used in history.jsonl and EDN.
    pub fn name(self) -> &'static str {
        match self {
            F::Read => "read",
            F::Write => "write",
            F::Cas => "cas",
        }
    }

    /// The function named `s`.
    pub fn parse(s: &str) -> Option<F> {
        Some(match s {
            "read" => F::Read,
            "write" => F::Write,
            "cas" => F::Cas,
            _ => return None,
        })
    }
}

/// One line of a history: an invocation or a completion.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// invoke, ok, fail or info.
    pub kind: Kind,
    /// The logical process (one operation at a time per process).
    pub process: u64,
    /// read, write or cas.
    pub f: F,
    /// The key, for key-value histories; `None` for a single register.
    pub key: Option<Value>,
    /// Invocation: the argument (nil for a read). Completion: the result (the value read).
    pub value: Value,
    /// Monotonic time in nanoseconds (any origin).
    pub time: u64,
    /// Why it failed or is indeterminate, if known.
    pub error: Option<String>,
    /// Fields of the line the format does not define (the node that served it, a latency),
    /// in file order: kept, shown on hover in the HTML report, checked by nothing.
    pub extra: Vec<(String, serde_json::Value)>,
}

impl Entry {
    /// An entry with no key and no error.
    pub fn new(kind: Kind, process: u64, f: F, value: Value, time: u64) -> Entry {
        Entry {
            kind,
            process,
            f,
            key: None,
            value,
            time,
            error: None,
            extra: Vec::new(),
        }
    }
}

/// A history: entries in the order they happened, and where each came from (for messages).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct History {
    /// The entries.
    pub entries: Vec<Entry>,
    /// For each entry, the line of the file it was read from (1-based), 0 if none.
    pub lines: Vec<usize>,
    /// The file the history was read from, for messages.
    pub source: String,
}

impl History {
    /// A history of `entries` with no source file.
    pub fn from_entries(entries: Vec<Entry>) -> History {
        let lines = vec![0; entries.len()];
        History {
            entries,
            lines,
            source: String::new(),
        }
    }

    fn at(&self, i: usize) -> String {
        let line = self.lines.get(i).copied().unwrap_or(0);
        match (self.source.is_empty(), line) {
            (true, 0) => format!("entry {}", i + 1),
            (true, l) => format!("line {l}"),
            (false, 0) => format!("{}: entry {}", self.source, i + 1),
            (false, l) => format!("{}:{l}", self.source),
        }
    }
}

/// How an operation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Completed, took effect.
    Ok,
    /// Completed, did not take effect.
    Fail,
    /// Indeterminate (info, or no completion before the history ended).
    Info,
}

/// An invocation paired with its completion.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Operation {
    /// Index in invocation order (0-based), unique in the history.
    pub id: usize,
    /// The process that ran it.
    pub process: u64,
    /// read, write or cas.
    pub f: F,
    /// The key, if any.
    pub key: Option<Value>,
    /// read: the value read (nil if unknown); write: the value; cas: `[old, new]`.
    pub value: Value,
    /// How it ended.
    pub outcome: Outcome,
    /// Invocation time (ns).
    pub call_time: u64,
    /// Completion time (ns); `None` for indeterminate operations, which may take effect at any
    /// time after their invocation.
    pub ret_time: Option<u64>,
    /// Position of the invocation in the history's real-time order.
    pub call_pos: usize,
    /// Position of the completion in that order (`None` for indeterminate operations).
    pub ret_pos: Option<usize>,
    /// The completion's error text, if any.
    pub error: Option<String>,
    /// Where the invocation came from (file:line), for messages.
    pub origin: String,
    /// When an indeterminate operation's client gave up (its `info` entry's time), for
    /// pictures only: the checker treats it as never completing.
    pub info_time: Option<u64>,
    /// The extra fields of its invocation and completion ([`Entry::extra`]; the completion's
    /// value wins for a name both have).
    pub extra: Vec<(String, serde_json::Value)>,
}

/// A history problem that makes it meaningless (not a linearizability violation).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{at}: {msg}")]
pub struct Malformed {
    /// file:line or entry number.
    pub at: String,
    /// What is wrong.
    pub msg: String,
}

/// Pairs every invocation with its process's next completion. Real-time order is the order
/// of `time`, entries with equal times keep their order in the history. An invocation with no
/// completion is indeterminate; a completion must match its invocation's `f` and `key`; an
/// `ok` cas or write with a nil value takes the invocation's value; an `ok` read takes its
/// completion's value.
pub fn operations(h: &History) -> Result<Vec<Operation>, Malformed> {
    let mut order: Vec<usize> = (0..h.entries.len()).collect();
    order.sort_by_key(|&i| h.entries[i].time);
    let mut pos_of = vec![0; h.entries.len()];
    for (p, &i) in order.iter().enumerate() {
        pos_of[i] = p;
    }
    let bad = |i: usize, msg: String| Malformed { at: h.at(i), msg };
    let mut open: std::collections::HashMap<u64, usize> = std::collections::HashMap::new();
    let mut ops: Vec<Operation> = Vec::new();
    for &i in &order {
        let e = &h.entries[i];
        match e.kind {
            Kind::Invoke => {
                if let Some(&prev) = open.get(&e.process) {
                    return Err(bad(
                        i,
                        format!(
                            "process {} invokes again while its operation of {} has not completed",
                            e.process,
                            h.at(ops[prev].call_pos_entry(&order))
                        ),
                    ));
                }
                if e.f == F::Cas && e.value.as_cas().is_none() {
                    return Err(bad(
                        i,
                        format!("cas value must be [old new], got {}", e.value),
                    ));
                }
                open.insert(e.process, ops.len());
                ops.push(Operation {
                    id: ops.len(),
                    process: e.process,
                    f: e.f,
                    key: e.key.clone(),
                    value: if e.f == F::Read {
                        Value::Nil
                    } else {
                        e.value.clone()
                    },
                    outcome: Outcome::Info,
                    call_time: e.time,
                    ret_time: None,
                    call_pos: pos_of[i],
                    ret_pos: None,
                    error: None,
                    origin: h.at(i),
                    info_time: None,
                    extra: e.extra.clone(),
                });
            }
            kind => {
                let Some(o) = open.remove(&e.process) else {
                    return Err(bad(
                        i,
                        format!(
                            "{} of process {} without a pending invocation",
                            kind.name(),
                            e.process
                        ),
                    ));
                };
                let op = &mut ops[o];
                if op.f != e.f {
                    return Err(bad(
                        i,
                        format!(
                            "completion is {} but process {} invoked {}",
                            e.f.name(),
                            e.process,
                            op.f.name()
                        ),
                    ));
                }
                if op.key != e.key {
                    return Err(bad(
                        i,
                        format!(
                            "completion key {} differs from the invocation's {}",
                            e.key.as_ref().map_or("none".to_string(), |k| k.to_string()),
                            op.key
                                .as_ref()
                                .map_or("none".to_string(), |k| k.to_string())
                        ),
                    ));
                }
                op.error = e.error.clone();
                for (name, value) in &e.extra {
                    match op.extra.iter_mut().find(|(n, _)| n == name) {
                        Some(slot) => slot.1 = value.clone(),
                        None => op.extra.push((name.clone(), value.clone())),
                    }
                }
                match kind {
                    Kind::Ok => {
                        op.outcome = Outcome::Ok;
                        op.ret_time = Some(e.time);
                        op.ret_pos = Some(pos_of[i]);
                        match e.f {
                            F::Read => op.value = e.value.clone(),
                            F::Write | F::Cas if e.value != Value::Nil && e.value != op.value => {
                                return Err(bad(
                                    i,
                                    format!(
                                        "ok {} value {} differs from the invocation's {}",
                                        e.f.name(),
                                        e.value,
                                        op.value
                                    ),
                                ));
                            }
                            _ => {}
                        }
                    }
                    Kind::Fail => {
                        op.outcome = Outcome::Fail;
                        op.ret_time = Some(e.time);
                        op.ret_pos = Some(pos_of[i]);
                    }
                    _ => {
                        // Info: the operation may take effect at any time from its invocation.
                        op.outcome = Outcome::Info;
                        op.info_time = Some(e.time);
                    }
                }
            }
        }
    }
    Ok(ops)
}

impl Operation {
    fn call_pos_entry(&self, order: &[usize]) -> usize {
        order[self.call_pos]
    }

    /// A short description: `read k 3`, `write 4`, `cas [1 2]`.
    pub fn describe(&self) -> String {
        let key = self
            .key
            .as_ref()
            .map(|k| format!(" {k}"))
            .unwrap_or_default();
        let v = match (self.f, self.outcome) {
            (F::Read, Outcome::Ok) => format!(" → {}", self.value),
            (F::Read, _) => " → ?".to_string(),
            _ => format!(" {}", self.value),
        };
        let outcome = match self.outcome {
            Outcome::Ok => "",
            Outcome::Fail => " (fail)",
            Outcome::Info => " (info)",
        };
        format!("{}{key}{v}{outcome}", self.f.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(kind: Kind, p: u64, f: F, v: Value, t: u64) -> Entry {
        Entry::new(kind, p, f, v, t)
    }

    #[test]
    fn pairs_invocations_with_completions_in_time_order() {
        let h = History::from_entries(vec![
            e(Kind::Invoke, 0, F::Write, Value::Int(1), 10),
            e(Kind::Invoke, 1, F::Read, Value::Nil, 5),
            e(Kind::Ok, 1, F::Read, Value::Int(1), 30),
            e(Kind::Ok, 0, F::Write, Value::Int(1), 20),
            e(Kind::Invoke, 2, F::Write, Value::Int(2), 40),
            e(Kind::Info, 2, F::Write, Value::Int(2), 50),
            e(Kind::Invoke, 3, F::Read, Value::Nil, 60),
        ]);
        let ops = operations(&h).unwrap();
        assert_eq!(ops.len(), 4);
        // Invocation order is time order: the read (t=5) first.
        assert_eq!((ops[0].process, ops[0].f), (1, F::Read));
        assert_eq!(ops[0].value, Value::Int(1));
        assert_eq!((ops[0].call_pos, ops[0].ret_pos), (0, Some(3)));
        assert_eq!((ops[1].call_pos, ops[1].ret_pos), (1, Some(2)));
        assert_eq!(ops[2].outcome, Outcome::Info);
        assert_eq!(ops[2].ret_pos, None);
        assert_eq!(
            ops[3].outcome,
            Outcome::Info,
            "no completion = indeterminate"
        );
        assert_eq!(ops[1].describe(), "write 1");
        assert_eq!(ops[0].describe(), "read → 1");
    }

    #[test]
    fn malformed_histories_are_reported_with_their_entry() {
        let h = History::from_entries(vec![
            e(Kind::Invoke, 0, F::Write, Value::Int(1), 1),
            e(Kind::Invoke, 0, F::Write, Value::Int(2), 2),
        ]);
        assert_eq!(
            operations(&h).unwrap_err().to_string(),
            "entry 2: process 0 invokes again while its operation of entry 1 has not completed"
        );
        let h = History::from_entries(vec![e(Kind::Ok, 0, F::Read, Value::Int(1), 1)]);
        assert_eq!(
            operations(&h).unwrap_err().to_string(),
            "entry 1: ok of process 0 without a pending invocation"
        );
        let h = History::from_entries(vec![
            e(Kind::Invoke, 0, F::Write, Value::Int(1), 1),
            e(Kind::Ok, 0, F::Read, Value::Int(1), 2),
        ]);
        assert_eq!(
            operations(&h).unwrap_err().to_string(),
            "entry 2: completion is read but process 0 invoked write"
        );
        let h = History::from_entries(vec![e(Kind::Invoke, 0, F::Cas, Value::Int(1), 1)]);
        assert_eq!(
            operations(&h).unwrap_err().to_string(),
            "entry 1: cas value must be [old new], got 1"
        );
    }
}
