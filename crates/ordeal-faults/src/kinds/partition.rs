//! `partition`: cut traffic between two sets of nodes (and workloads).

use super::{optional, required, strings, FaultKind, RawFault, Spec};
use crate::check::Checker;
use crate::parse::Converter;
use crate::write::Keys;

const SIDE_HELP: &str = " (a list of node names)";

pub(super) const SPEC: Spec = Spec {
    name: "partition",
    keys: &[
        required("from", SIDE_HELP),
        required("to", SIDE_HELP),
        optional("oneway"),
        optional("duration"),
    ],
    read,
    check,
    write,
    ..Spec::BASE
};

fn read(f: &RawFault, c: &mut Converter) -> Option<FaultKind> {
    Some(FaultKind::Partition {
        from: strings(&f.from),
        to: strings(&f.to),
        oneway: f.oneway.as_ref().is_some_and(|o| *o.get_ref()),
        duration: c.optional_duration(&f.duration)?,
    })
}

/// Both sides name known nodes, each once, and no node is on both.
fn check(kind: &FaultKind, c: &mut Checker) {
    let FaultKind::Partition {
        from, to, duration, ..
    } = kind
    else {
        return;
    };
    for (side, list) in [("from", from), ("to", to)] {
        let at = c.key(side);
        let items = c.items(side);
        if list.is_empty() {
            c.err(&[at], format!("`{side}` must name at least one node"));
        }
        for (i, n) in list.iter().enumerate() {
            let here = items.get(i).cloned();
            if list[..i].contains(n) {
                c.err(&[&here, at], format!("`{n}` is listed twice in `{side}`"));
            } else {
                c.participant(n, &here.or_else(|| at.clone()));
            }
        }
    }
    for (i, n) in to.iter().enumerate() {
        if from.contains(n) && !to[..i].contains(n) {
            let here = c.items("to").get(i).cloned();
            c.err(
                &[&here, c.key("to")],
                format!(
                    "`{n}` is on both sides of the partition: a node cannot be cut off from \
                     itself"
                ),
            );
        }
    }
    c.positive(*duration, "duration");
}

fn write(kind: &FaultKind, w: &mut Keys) {
    if let FaultKind::Partition {
        from,
        to,
        oneway,
        duration,
    } = kind
    {
        w.strings("from", from);
        w.strings("to", to);
        if *oneway {
            w.raw("oneway", "true");
        }
        if let Some(d) = duration {
            w.duration("duration", *d);
        }
    }
}
