//! `partition`: cut traffic between two sets of nodes (and workloads), or along one of the
//! standard shapes over the experiment's nodes (`shape`, see [`crate::Shape`]).

use super::{optional, strings, target, FaultKind, RawFault, Spec};
use crate::check::Checker;
use crate::parse::Converter;
use crate::write::Keys;
use crate::{Shape, SHAPES};

pub(super) const SPEC: Spec = Spec {
    name: "partition",
    keys: &[
        optional("from"),
        optional("to"),
        optional("shape"),
        optional("node"),
        optional("role"),
        optional("oneway"),
        optional("duration"),
    ],
    read,
    check,
    write,
    ..Spec::BASE
};

/// `"isolate"`, `"halves"`, `"bridge"` or `"ring"`.
fn quoted_shapes() -> String {
    let q: Vec<String> = SHAPES.iter().map(|s| format!("\"{s}\"")).collect();
    format!("{} or {}", q[..q.len() - 1].join(", "), q[q.len() - 1])
}

fn read(f: &RawFault, c: &mut Converter) -> Option<FaultKind> {
    let shape = match &f.shape {
        None => None,
        Some(s) => match Shape::parse(s.get_ref()) {
            Some(shape) => Some(shape),
            None => {
                c.err(
                    s.span(),
                    format!(
                        "unknown shape `{}`: expected {}",
                        ordeal_toml::truncated(s.get_ref()),
                        quoted_shapes()
                    ),
                );
                return None;
            }
        },
    };
    let aimed = f.node.is_some() || f.role.is_some();
    let shape = match (shape, aimed) {
        (Some(Shape::Isolate { .. }), true) => Some(Shape::Isolate {
            node: Some(target(f, c)?),
        }),
        (shape, true) => {
            let (key, n) = match (&f.node, &f.role) {
                (Some(n), _) => ("node", n),
                (None, Some(r)) => ("role", r),
                (None, None) => unreachable!("aimed"),
            };
            let what = match &shape {
                Some(s) => format!("shape = \"{}\"", s.name()),
                None => "`from` and `to`".to_string(),
            };
            c.err(
                n.span(),
                format!(
                    "`{key}` applies to shape = \"isolate\" only (the node cut off), not to \
                     {what}"
                ),
            );
            return None;
        }
        (shape, false) => shape,
    };
    Some(FaultKind::Partition {
        from: strings(&f.from),
        to: strings(&f.to),
        shape,
        oneway: f.oneway.as_ref().is_some_and(|o| *o.get_ref()),
        duration: c.optional_duration(&f.duration)?,
    })
}

/// Either a shape or two sides. A shape's node is a node of the experiment, and the
/// experiment has enough nodes for the shape; both sides name known nodes, each once, and no
/// node is on both.
fn check(kind: &FaultKind, c: &mut Checker) {
    let FaultKind::Partition {
        from,
        to,
        shape,
        oneway,
        duration,
    } = kind
    else {
        return;
    };
    c.positive(*duration, "duration");
    let sides_given = c.key("from").is_some() || c.key("to").is_some();
    if let Some(shape) = shape {
        if sides_given || !from.is_empty() || !to.is_empty() {
            c.err(
                &[c.key("shape")],
                "`shape` and `from`/`to` are two ways to say what the partition cuts: give a \
                 shape or the two sides, not both",
            );
        }
        if *oneway {
            c.err(
                &[c.key("oneway"), c.key("shape")],
                format!(
                    "`oneway` applies to `from` and `to` only: shape = \"{}\" says itself which \
                     ways it cuts",
                    shape.name()
                ),
            );
        }
        if let Shape::Isolate { node: Some(node) } = shape {
            c.target("partition", node);
        }
        if let Some(have) = c.node_count() {
            if have < shape.min_nodes() {
                c.err(
                    &[c.key("shape")],
                    format!(
                        "a `{}` partition needs at least {} nodes (the experiment has {have})",
                        shape.name(),
                        shape.min_nodes()
                    ),
                );
            }
        }
        return;
    }
    if !sides_given && from.is_empty() && to.is_empty() {
        c.err(
            &[],
            format!(
                "a `partition` fault needs `from` and `to` (lists of node names) or `shape` ({})",
                quoted_shapes()
            ),
        );
        return;
    }
    for (side, list) in [("from", from), ("to", to)] {
        let at = c.key(side);
        if at.is_none() && list.is_empty() {
            c.err(
                &[],
                format!("a `partition` fault needs `{side}` (a list of node names)"),
            );
            continue;
        }
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
}

fn write(kind: &FaultKind, w: &mut Keys) {
    if let FaultKind::Partition {
        from,
        to,
        shape,
        oneway,
        duration,
    } = kind
    {
        match shape {
            Some(shape) => {
                w.string("shape", shape.name());
                if let Shape::Isolate { node: Some(node) } = shape {
                    w.string(node.key(), node.name());
                }
            }
            None => {
                w.strings("from", from);
                w.strings("to", to);
            }
        }
        if *oneway {
            w.raw("oneway", "true");
        }
        if let Some(d) = duration {
            w.duration("duration", *d);
        }
    }
}
