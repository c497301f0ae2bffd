//! What the tracer records: system call names, their classes and directions, and which errnos
//! a `fail` fault may make each of them return.

use std::fmt;
use std::str::FromStr;

use ordeal_events::Class;

use crate::Direction;

/// A recorded system call: its name and the classes its events can have (`write` is `data` on
/// a socket and `file` on a data-dir file).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallInfo {
    pub name: &'static str,
    pub classes: &'static [Class],
}

const NET: &[Class] = &[Class::Net];
const DATA: &[Class] = &[Class::Data];
const FILE: &[Class] = &[Class::File];
const DATA_FILE: &[Class] = &[Class::Data, Class::File];
const NET_FILE: &[Class] = &[Class::Net, Class::File];

const fn c(name: &'static str, classes: &'static [Class]) -> CallInfo {
    CallInfo { name, classes }
}

/// Every system call the tracer records (see `docs/trace-format.md`), in a stable order.
pub const TRACED_CALLS: &[CallInfo] = &[
    c("socket", NET),
    c("socketpair", NET),
    c("bind", NET),
    c("listen", NET),
    c("connect", NET),
    c("accept", NET),
    c("accept4", NET),
    c("shutdown", NET),
    c("close", NET_FILE),
    c("read", DATA),
    c("write", DATA_FILE),
    c("readv", DATA),
    c("writev", DATA_FILE),
    c("sendto", DATA),
    c("recvfrom", DATA),
    c("sendmsg", DATA),
    c("recvmsg", DATA),
    c("sendmmsg", DATA),
    c("recvmmsg", DATA),
    c("open", FILE),
    c("openat", FILE),
    c("creat", FILE),
    c("pwrite64", FILE),
    c("pwritev", FILE),
    c("fsync", FILE),
    c("fdatasync", FILE),
    c("sync_file_range", FILE),
    c("syncfs", FILE),
    c("sync", FILE),
    c("ftruncate", FILE),
    c("truncate", FILE),
    c("rename", FILE),
    c("renameat", FILE),
    c("renameat2", FILE),
    c("unlink", FILE),
    c("unlinkat", FILE),
    c("mkdir", FILE),
    c("mkdirat", FILE),
    c("rmdir", FILE),
];

/// Lifecycle steps recorded as events of class `proc` (not system calls: only node-level faults
/// can be triggered by them).
pub const LIFECYCLE_STEPS: &[&str] = &["spawn", "fork", "vfork", "clone", "exec", "exit"];

/// The calls a `short-io` fault can shorten: one buffer, its length in the third argument.
pub const SHORT_IO_CALLS: &[&str] = &["read", "write", "recvfrom", "sendto"];

/// Calls whose socket has no peer node (nothing is connected yet).
pub(crate) const NO_PEER_CALLS: &[&str] = &["socket", "socketpair", "bind", "listen"];

/// The classes of a recorded call or lifecycle step; `None` for an unknown name.
pub fn call_classes(name: &str) -> Option<&'static [Class]> {
    const PROC: &[Class] = &[Class::Proc];
    if LIFECYCLE_STEPS.contains(&name) {
        return Some(PROC);
    }
    TRACED_CALLS
        .iter()
        .find(|c| c.name == name)
        .map(|c| c.classes)
}

/// The direction of a socket data call (`write`, `sendto`, ... send; `read`, `recvfrom`, ...
/// receive); `None` for other calls.
pub fn call_direction(name: &str) -> Option<Direction> {
    match name {
        "write" | "writev" | "sendto" | "sendmsg" | "sendmmsg" => Some(Direction::Send),
        "read" | "readv" | "recvfrom" | "recvmsg" | "recvmmsg" => Some(Direction::Recv),
        _ => None,
    }
}

/// An error number a `fail` fault can make a call return.
#[allow(clippy::upper_case_acronyms)] // errno names are spelled this way everywhere
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Errno {
    EACCES,
    EADDRINUSE,
    ECONNABORTED,
    ECONNREFUSED,
    ECONNRESET,
    EHOSTUNREACH,
    EIO,
    EMFILE,
    ENETUNREACH,
    ENFILE,
    ENOSPC,
    EPIPE,
    ETIMEDOUT,
}

impl Errno {
    /// Every supported errno, in alphabetical order.
    pub const ALL: &'static [Errno] = &[
        Errno::EACCES,
        Errno::EADDRINUSE,
        Errno::ECONNABORTED,
        Errno::ECONNREFUSED,
        Errno::ECONNRESET,
        Errno::EHOSTUNREACH,
        Errno::EIO,
        Errno::EMFILE,
        Errno::ENETUNREACH,
        Errno::ENFILE,
        Errno::ENOSPC,
        Errno::EPIPE,
        Errno::ETIMEDOUT,
    ];

    /// The symbolic name (`ECONNREFUSED`).
    pub fn name(self) -> &'static str {
        match self {
            Errno::EACCES => "EACCES",
            Errno::EADDRINUSE => "EADDRINUSE",
            Errno::ECONNABORTED => "ECONNABORTED",
            Errno::ECONNREFUSED => "ECONNREFUSED",
            Errno::ECONNRESET => "ECONNRESET",
            Errno::EHOSTUNREACH => "EHOSTUNREACH",
            Errno::EIO => "EIO",
            Errno::EMFILE => "EMFILE",
            Errno::ENETUNREACH => "ENETUNREACH",
            Errno::ENFILE => "ENFILE",
            Errno::ENOSPC => "ENOSPC",
            Errno::EPIPE => "EPIPE",
            Errno::ETIMEDOUT => "ETIMEDOUT",
        }
    }

    /// The positive error number of this platform (the call returns its negation).
    pub fn code(self) -> i32 {
        match self {
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
        }
    }

    /// Whether a `fail` fault may make `call`, in an event of class `class`, return this.
    pub fn applies_to(self, call: &str, class: Class) -> bool {
        allowed_errnos(call, class).contains(&self)
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Errno {
    type Err = crate::UnknownErrno;
    fn from_str(s: &str) -> Result<Errno, crate::UnknownErrno> {
        Errno::ALL
            .iter()
            .copied()
            .find(|e| e.name() == s)
            .ok_or_else(|| crate::UnknownErrno(s.to_string()))
    }
}

/// The errnos a `fail` fault may make `call` return in an event of class `class`: the errors
/// the kernel really returns for that call in the situation the fault simulates. Empty for
/// calls that cannot be failed.
pub fn allowed_errnos(call: &str, class: Class) -> &'static [Errno] {
    use Errno::*;
    match (class, call) {
        (Class::Net, "connect") => &[ECONNREFUSED, ETIMEDOUT, ENETUNREACH, EHOSTUNREACH],
        (Class::Net, "accept" | "accept4") => &[ECONNABORTED, EMFILE, ENFILE],
        (Class::Net, "socket" | "socketpair") => &[EMFILE, ENFILE],
        (Class::Net, "bind") => &[EADDRINUSE],
        (Class::Data, c) => match call_direction(c) {
            Some(Direction::Recv) => &[ECONNRESET, ETIMEDOUT],
            Some(Direction::Send) => &[ECONNRESET, EPIPE, ETIMEDOUT],
            None => &[],
        },
        (Class::File, "open" | "openat" | "creat") => &[EACCES, EMFILE, ENFILE, ENOSPC],
        (
            Class::File,
            "write" | "writev" | "pwrite64" | "pwritev" | "fsync" | "fdatasync" | "sync_file_range"
            | "syncfs" | "ftruncate" | "truncate",
        ) => &[EIO, ENOSPC],
        (Class::File, "rename" | "renameat" | "renameat2" | "mkdir" | "mkdirat") => {
            &[EACCES, EIO, ENOSPC]
        }
        (Class::File, "unlink" | "unlinkat" | "rmdir") => &[EACCES, EIO],
        _ => &[],
    }
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
