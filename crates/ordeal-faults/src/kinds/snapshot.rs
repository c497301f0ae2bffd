//! `snapshot`: snapshot every node; the system runs on.

use super::{FaultKind, Spec};

pub(super) const SPEC: Spec = Spec {
    name: "snapshot",
    read: |_, _| Some(FaultKind::Snapshot),
    ..Spec::BASE
};
