//! `pause`: SIGSTOP a node, and SIGCONT it `duration` later.

use super::{required, string, FaultKind, RawFault, Spec, NODE_HELP};
use crate::check::Checker;
use crate::parse::Converter;
use crate::write::Keys;

pub(super) const SPEC: Spec = Spec {
    name: "pause",
    keys: &[
        required("node", NODE_HELP),
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
        node: string(&f.node),
        duration: c.optional_duration(&f.duration)??,
    })
}

fn check(kind: &FaultKind, c: &mut Checker) {
    if let FaultKind::Pause { node, duration } = kind {
        c.node_target(SPEC.name, node);
        c.positive(Some(*duration), "duration");
    }
}

fn write(kind: &FaultKind, w: &mut Keys) {
    if let FaultKind::Pause { node, duration } = kind {
        w.string("node", node);
        w.duration("duration", *duration);
    }
}
