//! `pause`: SIGSTOP a node, and SIGCONT it `duration` later.

use super::{node_or_role, optional, required, target, FaultKind, RawFault, Spec};
use crate::check::Checker;
use crate::parse::Converter;
use crate::write::Keys;

pub(super) const SPEC: Spec = Spec {
    name: "pause",
    keys: &[
        node_or_role(),
        optional("role"),
        required(
            "duration",
            " (how long the node stays stopped, e.g. \"2s\")",
        ),
    ],
    read,
    check,
    write,
    ..Spec::BASE
};

fn read(f: &RawFault, c: &mut Converter) -> Option<FaultKind> {
    Some(FaultKind::Pause {
        node: target(f, c)?,
        duration: c.optional_duration(&f.duration)??,
    })
}

fn check(kind: &FaultKind, c: &mut Checker) {
    if let FaultKind::Pause { node, duration } = kind {
        c.target(SPEC.name, node);
        c.positive(Some(*duration), "duration");
    }
}

fn write(kind: &FaultKind, w: &mut Keys) {
    if let FaultKind::Pause { node, duration } = kind {
        w.string(node.key(), node.name());
        w.duration("duration", *duration);
    }
}
