//! Models: the sequential specifications a history is checked against.
//!
//! A model says what the object's state is, where it starts, and what each operation does to
//! it ([`Model::step`]); the search in [`crate::checker`] is generic over it and knows no
//! model. The optional hooks make the search faster (reads, pruning, a pre-check) or its
//! explanations clearer; their defaults are always correct.
//!
//! ## Adding a model
//!
//! 1. A file `src/model/NAME.rs` with a type implementing [`Model`] (see [`cas`] for a full
//!    one, or the counter in `tests/custom_model.rs` for the least a model needs: `name`,
//!    `init`, `step`, `describe`, `op`).
//! 2. `pub mod NAME;` and one line in the `builtin!` list at the end of this file, which
//!    makes it a [`Builtin`]: [`Builtin::parse`] (and so an experiment's `[check] history`)
//!    knows it. (The CLI's `--model` values are the `ModelArg` enum of the `ordeal` crate.)
//!
//! Nothing in the search changes. A model used only from code needs neither step 2 nor this
//! crate: [`crate::checker::check`] takes any [`Model`].

use crate::checker::{Budget, Explanation, Report};
use crate::history::{Operation, Value};
use std::fmt::Debug;
use std::hash::Hash;

pub mod cas;
pub mod kv;
pub mod register;
mod single_writer;

/// A sequential specification, Knossos / Porcupine style.
///
/// The search applies these rules to every model: a failed operation (`fail`) did not happen
/// and is left out; an indeterminate one (`info`) may be linearized at any point after its
/// invocation, or never; a history is linearizable when every completed (`ok`) operation is
/// linearized. Parts are checked in parallel threads, hence `Sync`.
pub trait Model: Sync {
    /// The object's state. The search interns states (one copy of each distinct state per
    /// part) and works with their indexes; it hashes a state each time an operation changes
    /// it, so a small one is fast.
    type State: Clone + Eq + Hash + Debug;
    /// An operation as the model applies it: its function, arguments and result (and, if the
    /// model needs it, whether it is indeterminate).
    type Op: Debug + Sync;

    /// The model's name in reports (`register`).
    fn name(&self) -> &'static str;

    /// The state before any operation.
    fn init(&self) -> Self::State;

    /// The state after `op` is applied in `state`, or `None` when `op` cannot happen there
    /// (its result contradicts the state: a read of another value, a successful cas whose
    /// comparison does not hold).
    fn step(&self, state: &Self::State, op: &Self::Op) -> Option<Self::State>;

    /// The state as a value, for explanations and reports.
    fn describe(&self, state: &Self::State) -> Value;

    /// `op` as the model applies it, or why it does not fit the model (a cas in a register
    /// history). Called for every operation, failed ones included, in invocation order, before
    /// any search; the first error ends the check. The model may keep what it needs from the
    /// operations here (the register models intern values, so their state is an integer).
    fn op(&mut self, op: &Operation) -> Result<Self::Op, ModelMismatch>;

    /// The part of the history `op` belongs to. Operations of different parts act on
    /// independent objects (the keys of a map), so the history is linearizable iff each part
    /// is (P-compositionality, Horn & Kroening); parts are checked alone, in parallel.
    /// Default: one part, `None`.
    fn partition(&self, _op: &Operation) -> Option<Value> {
        None
    }

    /// True when `op` never changes the state (a read: [`Model::step`] gives the same state or
    /// `None`, whatever the state). The search then leaves it out when it is indeterminate
    /// (it constrains nothing), and linearizes it as soon as the model accepts it without
    /// trying alternatives (it can be moved to the front of any linearization from there).
    /// Default: false, always correct, only slower.
    fn read_only(&self, _op: &Self::Op) -> bool {
        false
    }

    /// Why `op` cannot happen in `state` ([`Model::step`] gave `None`), in words:
    /// `reads 1, but the value is 2`.
    fn rejection(&self, _state: &Self::State, _op: &Self::Op) -> String {
        "rejected".to_string()
    }

    /// Which operations of one part to keep: `false` leaves one out. Only for operations whose
    /// removal cannot change the verdict (an indeterminate write of a value nobody observes).
    /// `ops` are in invocation order, without failed operations and indeterminate read-only
    /// ones. Default: keep all.
    fn keep(&self, ops: &[Prepared<Self::Op>]) -> Vec<bool> {
        vec![true; ops.len()]
    }

    /// A violation found without a search, if the model has a cheap way to find some (the
    /// register's single-writer check). `ops` are those [`Model::keep`] kept. Default: none.
    fn precheck(&self, _ops: &[Prepared<Self::Op>]) -> Option<Explanation> {
        None
    }
}

/// An operation of one part, as the search sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Prepared<O> {
    /// The operation's id ([`Operation::id`]).
    pub id: usize,
    /// As the model applies it.
    pub op: O,
    /// Indeterminate: it may take effect at any time after its invocation, or never.
    pub info: bool,
    /// Position of the invocation in the history's real-time order.
    pub call_pos: usize,
    /// Position of the completion; `None` for an indeterminate operation.
    pub ret_pos: Option<usize>,
}

/// A history that does not fit the model.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{at}: {msg}")]
pub struct ModelMismatch {
    /// Where the operation came from.
    pub at: String,
    /// What does not fit.
    pub msg: String,
}

impl ModelMismatch {
    /// `op` does not fit: `msg` says why.
    pub fn new(op: &Operation, msg: impl Into<String>) -> ModelMismatch {
        ModelMismatch {
            at: op.origin.clone(),
            msg: msg.into(),
        }
    }
}

/// Declares [`Builtin`] from one line per model: `Variant => model type, aliases...`; the
/// type implements [`Model`] and `Default` (a fresh model for each check).
macro_rules! builtin {
    ($($(#[$doc:meta])* $variant:ident => $model:ty $(, $alias:literal)*;)+) => {
        /// A built-in model, by name (the CLI's `--model`). Re-exported at the crate root as
        /// `Model`.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Builtin {
            $($(#[$doc])* $variant,)+
        }

        impl Builtin {
            /// Every built-in model.
            pub const ALL: &'static [Builtin] = &[$(Builtin::$variant),+];

            /// The model named `s` (its name or an alias).
            pub fn parse(s: &str) -> Option<Builtin> {
                $(if s == <$model>::default().name() $(|| s == $alias)* {
                    return Some(Builtin::$variant);
                })+
                None
            }

            /// The model's name.
            pub fn name(self) -> &'static str {
                match self {
                    $(Builtin::$variant => <$model>::default().name(),)+
                }
            }

            /// Checks `ops` (from [`crate::history::operations`]) against this model.
            pub fn check(self, ops: Vec<Operation>, budget: &Budget) -> Result<Report, ModelMismatch> {
                match self {
                    $(Builtin::$variant => crate::checker::check(ops, <$model>::default(), budget),)+
                }
            }
        }
    };
}

builtin! {
    /// One register: read, write. Initial value nil.
    Register => register::Register;
    /// One register with compare-and-set: read, write, cas `[old new]`. Initial value nil.
    CasRegister => cas::CasRegister;
    /// A map of independent cas-registers, one per key (every operation has a key); checked
    /// per key.
    Kv => kv::Kv, "key-value", "map";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_are_found_by_name_and_alias() {
        let names: Vec<&str> = Builtin::ALL.iter().map(|m| m.name()).collect();
        assert_eq!(names, ["register", "cas-register", "kv"]);
        for m in Builtin::ALL {
            assert_eq!(Builtin::parse(m.name()), Some(*m));
        }
        assert_eq!(Builtin::parse("key-value"), Some(Builtin::Kv));
        assert_eq!(Builtin::parse("map"), Some(Builtin::Kv));
        assert_eq!(Builtin::parse("queue"), None);
    }
}
