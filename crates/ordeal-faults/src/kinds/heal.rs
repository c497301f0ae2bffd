//! `heal`: end every partition in effect.

use super::{FaultKind, Spec};

pub(super) const SPEC: Spec = Spec {
    name: "heal",
    read: |_, _| Some(FaultKind::Heal),
    ..Spec::BASE
};
