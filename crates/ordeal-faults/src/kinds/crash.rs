//! `crash`: SIGKILL a node, and start it again `restart_after` later if given.

use super::{optional, required, string, FaultKind, RawFault, Spec, NODE_HELP};
use crate::check::Checker;
use crate::parse::Converter;
use crate::write::Keys;

pub(super) const SPEC: Spec = Spec {
    name: "crash",
    keys: &[required("node", NODE_HELP), optional("restart_after")],
    read,
    check,
    write,
    ..Spec::BASE
};

fn read(f: &RawFault, c: &mut Converter) -> Option<FaultKind> {
    Some(FaultKind::Crash {
        node: string(&f.node),
        restart_after: c.optional_duration(&f.restart_after)?,
    })
}

fn check(kind: &FaultKind, c: &mut Checker) {
    if let FaultKind::Crash {
        node,
        restart_after,
    } = kind
    {
        c.node_target(SPEC.name, node);
        c.positive(*restart_after, "restart_after");
    }
}

fn write(kind: &FaultKind, w: &mut Keys) {
    if let FaultKind::Crash {
        node,
        restart_after,
    } = kind
    {
        w.string("node", node);
        if let Some(d) = restart_after {
            w.duration("restart_after", *d);
        }
    }
}
