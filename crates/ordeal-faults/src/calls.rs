//! What the tracer records, as the fault schedule sees it: call names, their classes and
//! directions, and which errnos a `fail` fault may make each of them return. Everything here
//! is derived from `ordeal_events::calls::CALLS`, the one table of traced calls.

use std::sync::LazyLock;

use ordeal_events::calls::{self, CallSpec, Step};
use ordeal_events::Class;

use crate::Direction;

pub use ordeal_events::Errno;

/// A recorded system call: its name and the classes its events can have (`write` is `data` on
/// a socket and `file` on a data-dir file).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallInfo {
    pub name: &'static str,
    pub classes: &'static [Class],
}

fn classes_of(c: &CallSpec) -> &'static [Class] {
    match (c.socket.map(|s| s.op.class()), c.file.is_some()) {
        (Some(Class::Net), false) => &[Class::Net],
        (Some(Class::Net), true) => &[Class::Net, Class::File],
        (Some(_), false) => &[Class::Data],
        (Some(_), true) => &[Class::Data, Class::File],
        (None, _) => &[Class::File],
    }
}

/// Every system call the tracer records (see `docs/trace-format.md`), in the table's order.
pub static TRACED_CALLS: LazyLock<Vec<CallInfo>> = LazyLock::new(|| {
    calls::recorded()
        .map(|c| CallInfo {
            name: c.name,
            classes: classes_of(c),
        })
        .collect()
});

/// Lifecycle steps recorded as events of class `proc` (not system calls: only node-level faults
/// can be triggered by them). Must list `ordeal_events::Step::ALL` (tested).
pub const LIFECYCLE_STEPS: &[&str] = &["spawn", "fork", "vfork", "clone", "exec", "exit"];

/// The calls a `short-io` fault can shorten: one buffer, its length in the third argument.
pub static SHORT_IO_CALLS: LazyLock<Vec<&'static str>> = LazyLock::new(|| {
    calls::recorded()
        .filter(|c| c.is_plain_transfer())
        .map(|c| c.name)
        .collect()
});

/// Calls whose socket has no peer node (nothing is connected yet).
pub(crate) const NO_PEER_CALLS: &[&str] = &["socket", "socketpair", "bind", "listen"];

/// The classes of a recorded call or lifecycle step; `None` for an unknown name.
pub fn call_classes(name: &str) -> Option<&'static [Class]> {
    const PROC: &[Class] = &[Class::Proc];
    if Step::from_name(name).is_some() {
        return Some(PROC);
    }
    calls::by_name(name)
        .filter(|c| c.bookkeeping.is_none())
        .map(classes_of)
}

/// The direction of a socket data call (`write`, `sendto`, ... send; `read`, `recvfrom`, ...
/// receive); `None` for other calls.
pub fn call_direction(name: &str) -> Option<Direction> {
    calls::by_name(name)?.direction()
}

/// The errnos a `fail` fault may make `call` return in an event of class `class`: the errors
/// the kernel really returns for that call in the situation the fault simulates. Empty for
/// calls that cannot be failed.
pub fn allowed_errnos(call: &str, class: Class) -> &'static [Errno] {
    calls::by_name(call).map_or(&[], |c| c.errnos(class))
}

/// `name` as a class keyword (`net`, `data`, `file`, `proc`).
pub(crate) fn class_name(class: Class) -> &'static str {
    match class {
        Class::Net => "net",
        Class::Data => "data",
        Class::File => "file",
        Class::Proc => "proc",
    }
}

pub(crate) fn parse_class(s: &str) -> Option<Class> {
    match s {
        "net" => Some(Class::Net),
        "data" => Some(Class::Data),
        "file" => Some(Class::File),
        "proc" => Some(Class::Proc),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_agree_with_the_call_table() {
        let steps: Vec<&str> = Step::ALL.iter().map(|s| s.name()).collect();
        assert_eq!(LIFECYCLE_STEPS, steps.as_slice());
        assert_eq!(*SHORT_IO_CALLS, ["read", "write", "sendto", "recvfrom"]);
        for c in NO_PEER_CALLS {
            let op = calls::by_name(c).and_then(|c| c.socket).map(|s| s.op);
            assert!(
                matches!(
                    op,
                    Some(
                        calls::SocketOp::Create
                            | calls::SocketOp::CreatePair
                            | calls::SocketOp::Bind
                            | calls::SocketOp::Listen
                    )
                ),
                "{c}"
            );
        }
        assert_eq!(call_classes("write"), Some(&[Class::Data, Class::File][..]));
        assert_eq!(call_classes("close"), Some(&[Class::Net, Class::File][..]));
        assert_eq!(
            call_classes("dup2"),
            None,
            "bookkeeping calls make no events"
        );
        assert_eq!(call_direction("sendmmsg"), Some(Direction::Send));
        assert_eq!(call_direction("pwrite64"), None);
        assert!(TRACED_CALLS.iter().any(|c| c.name == "pwritev2"));
    }

    #[test]
    fn errno_numbers_are_this_platforms() {
        for e in Errno::ALL {
            let code = match e {
                Errno::EACCES => libc::EACCES,
                Errno::EADDRINUSE => libc::EADDRINUSE,
                Errno::ECONNABORTED => libc::ECONNABORTED,
                Errno::ECONNREFUSED => libc::ECONNREFUSED,
                Errno::ECONNRESET => libc::ECONNRESET,
                Errno::EHOSTUNREACH => libc::EHOSTUNREACH,
                Errno::EIO => libc::EIO,
                Errno::EMFILE => libc::EMFILE,
                Errno::ENETUNREACH => libc::ENETUNREACH,
                Errno::ENFILE => libc::ENFILE,
                Errno::ENOSPC => libc::ENOSPC,
                Errno::EPIPE => libc::EPIPE,
                Errno::ETIMEDOUT => libc::ETIMEDOUT,
            };
            assert_eq!(e.code(), code, "{e}");
        }
    }
}
