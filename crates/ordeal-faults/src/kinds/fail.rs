//! `fail`: skip the matching call, which returns `-errno`.

use ordeal_events::Class;

use super::{required, FaultKind, RawFault, Spec};
use crate::calls::{allowed_errnos, class_name};
use crate::check::{describe, narrow_hint, Checker, Variant};
use crate::parse::Converter;
use crate::write::Keys;
use crate::{Errno, Pattern, TRACED_CALLS};

pub(super) const SPEC: Spec = Spec {
    name: "fail",
    keys: &[required(
        "errno",
        " (the error the call returns, e.g. \"ECONNREFUSED\")",
    )],
    call_level: true,
    before_only: Some("it returns an error instead of running the call"),
    read,
    check_calls,
    write,
    ..Spec::BASE
};

fn read(f: &RawFault, c: &mut Converter) -> Option<FaultKind> {
    let e = f.errno.as_ref()?;
    match e.get_ref().parse::<Errno>() {
        Ok(errno) => Some(FaultKind::Fail { errno }),
        Err(m) => {
            c.err(e.span(), m.to_string());
            None
        }
    }
}

/// The error must be one every call the trigger can match may return.
fn check_calls(kind: &FaultKind, calls: &[Variant], pattern: &Pattern, c: &mut Checker) {
    let FaultKind::Fail { errno } = kind else {
        return;
    };
    let errno = *errno;
    let (good, bad): (Vec<Variant>, Vec<Variant>) = calls
        .iter()
        .partition(|(n, c)| allowed_errnos(n, *c).contains(&errno));
    if bad.is_empty() {
        return;
    }
    let applies = format!("`{errno}` applies to {}", errno_calls(errno));
    let message = if !good.is_empty() {
        format!(
            "`{errno}` does not apply to {}, which this trigger can also match: narrow it \
             with {} ({applies})",
            describe(&bad, "and"),
            narrow_hint(pattern, &good, &bad)
        )
    } else if pattern.call.is_some() {
        format!(
            "`{errno}` does not apply to {}: {applies}",
            describe(&bad, "or")
        )
    } else {
        format!("`{errno}` does not apply to any call this trigger can match: {applies}")
    };
    let t = c.trigger_spans();
    c.err(&[c.key("errno"), &t.call, &t.class, &t.table], message);
}

fn write(kind: &FaultKind, w: &mut Keys) {
    if let FaultKind::Fail { errno } = kind {
        w.string("errno", errno.name());
    }
}

/// The calls an errno applies to, grouped by class: `connect (net); read, ... (data)`.
fn errno_calls(errno: Errno) -> String {
    let mut groups = Vec::new();
    for class in [Class::Net, Class::Data, Class::File] {
        let names: Vec<&str> = TRACED_CALLS
            .iter()
            .filter(|c| {
                c.classes.contains(&class) && allowed_errnos(c.name, class).contains(&errno)
            })
            .map(|c| c.name)
            .collect();
        if !names.is_empty() {
            groups.push(format!("{} ({})", names.join(", "), class_name(class)));
        }
    }
    groups.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_groups() {
        assert_eq!(errno_calls(Errno::ECONNREFUSED), "connect (net)");
        assert_eq!(
            errno_calls(Errno::ETIMEDOUT),
            "connect (net); read, write, readv, writev, sendto, recvfrom, sendmsg, recvmsg, \
             sendmmsg, recvmmsg (data)"
        );
    }
}
