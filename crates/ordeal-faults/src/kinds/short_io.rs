//! `short-io`: let the matching socket transfer move at most `max_bytes` bytes.

use ordeal_events::Class;

use super::{required, FaultKind, RawFault, Spec};
use crate::calls::SHORT_IO_CALLS;
use crate::check::{describe, msg, narrow_hint, Checker, Variant};
use crate::parse::Converter;
use crate::write::Keys;
use crate::Pattern;

pub(super) const SPEC: Spec = Spec {
    name: "short-io",
    keys: &[required(
        "max_bytes",
        " (the most bytes the call may move, e.g. 1)",
    )],
    call_level: true,
    before_only: Some("it shortens the transfer before it happens"),
    read,
    check,
    check_calls,
    write,
};

fn read(f: &RawFault, c: &mut Converter) -> Option<FaultKind> {
    let m = f.max_bytes.as_ref()?;
    let max_bytes = if *m.get_ref() < 0 {
        c.err(m.span(), msg::MAX_BYTES);
        1 // reported; keeps the rest of the fault checked
    } else {
        *m.get_ref() as u64
    };
    Some(FaultKind::ShortIo { max_bytes })
}

fn check(kind: &FaultKind, c: &mut Checker) {
    if let FaultKind::ShortIo { max_bytes: 0 } = kind {
        c.err(&[c.key("max_bytes")], msg::MAX_BYTES);
    }
}

/// Only plain transfers on sockets can be shortened.
fn check_calls(_: &FaultKind, calls: &[Variant], pattern: &Pattern, c: &mut Checker) {
    let (good, bad): (Vec<Variant>, Vec<Variant>) = calls
        .iter()
        .partition(|(n, c)| *c == Class::Data && SHORT_IO_CALLS.contains(n));
    if bad.is_empty() {
        return;
    }
    let what = "a `short-io` fault shortens a read, write, recvfrom or sendto on a socket \
                (class `data`)";
    let message = if good.is_empty() {
        format!("{what}, not {}", describe(&bad, "or"))
    } else {
        let mut hint = narrow_hint(pattern, &good, &bad);
        if hint.starts_with("`call`") {
            hint = "`call`".into();
        }
        format!(
            "{what}, but this trigger can also match {}: narrow it with {hint}",
            describe(&bad, "and"),
        )
    };
    let t = c.trigger_spans();
    c.err(&[&t.call, &t.class, &t.table], message);
}

fn write(kind: &FaultKind, w: &mut Keys) {
    if let FaultKind::ShortIo { max_bytes } = kind {
        w.raw("max_bytes", max_bytes);
    }
}
