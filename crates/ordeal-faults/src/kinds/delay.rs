//! `delay`: hold the matching call of the thread that made it.

use super::{required, FaultKind, RawFault, Spec};
use crate::check::Checker;
use crate::parse::Converter;
use crate::write::Keys;

pub(super) const SPEC: Spec = Spec {
    name: "delay",
    keys: &[required(
        "duration",
        " (how long the call is held, e.g. \"500ms\")",
    )],
    call_level: true,
    read,
    check,
    write,
    ..Spec::BASE
};

fn read(f: &RawFault, c: &mut Converter) -> Option<FaultKind> {
    Some(FaultKind::Delay {
        duration: c.optional_duration(&f.duration)??,
    })
}

fn check(kind: &FaultKind, c: &mut Checker) {
    if let FaultKind::Delay { duration } = kind {
        c.positive(Some(*duration), "duration");
    }
}

fn write(kind: &FaultKind, w: &mut Keys) {
    if let FaultKind::Delay { duration } = kind {
        w.duration("duration", *duration);
    }
}
