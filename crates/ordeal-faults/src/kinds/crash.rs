//! `crash`: SIGKILL a node, and start it again `restart_after` later if given.

use super::{node_or_role, optional, target, FaultKind, RawFault, Spec};
use crate::check::Checker;
use crate::parse::Converter;
use crate::write::Keys;

pub(super) const SPEC: Spec = Spec {
    name: "crash",
    keys: &[node_or_role(), optional("role"), optional("restart_after")],
    read,
    check,
    write,
    ..Spec::BASE
};

fn read(f: &RawFault, c: &mut Converter) -> Option<FaultKind> {
    Some(FaultKind::Crash {
        node: target(f, c)?,
        restart_after: c.optional_duration(&f.restart_after)?,
    })
}

fn check(kind: &FaultKind, c: &mut Checker) {
    if let FaultKind::Crash {
        node,
        restart_after,
    } = kind
    {
        c.target(SPEC.name, node);
        c.positive(*restart_after, "restart_after");
    }
}

fn write(kind: &FaultKind, w: &mut Keys) {
    if let FaultKind::Crash {
        node,
        restart_after,
    } = kind
    {
        w.string(node.key(), node.name());
        if let Some(d) = restart_after {
            w.duration("restart_after", *d);
        }
    }
}
