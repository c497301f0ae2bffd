//! `restart`: start a crashed node again.

use super::{required, string, FaultKind, RawFault, Spec, NODE_HELP};
use crate::check::Checker;
use crate::parse::Converter;
use crate::write::Keys;

pub(super) const SPEC: Spec = Spec {
    name: "restart",
    keys: &[required("node", NODE_HELP)],
    read,
    check,
    write,
    ..Spec::BASE
};

fn read(f: &RawFault, _: &mut Converter) -> Option<FaultKind> {
    Some(FaultKind::Restart {
        node: string(&f.node),
    })
}

fn check(kind: &FaultKind, c: &mut Checker) {
    if let FaultKind::Restart { node } = kind {
        c.node_target(SPEC.name, node);
    }
}

fn write(kind: &FaultKind, w: &mut Keys) {
    if let FaultKind::Restart { node } = kind {
        w.string("node", node);
    }
}
