//! The one table of traced system calls: what each is, how its arguments are laid out, what it
//! does on a socket and on a data-dir file, which errors a `fail` fault may make it return.
//!
//! Every consumer derives from [`CALLS`]: the tracer's seccomp filter and argument decoding,
//! the fault schedule's call names and errno rules, the happens-before graph's send/receive
//! matching, explore's fault points and the crash persistence model. Adding a traced call is
//! one row here (plus, for a call with new semantics, the consumer that gives them meaning);
//! each consumer has a test that fails when it disagrees with this table.

use std::collections::HashMap;
use std::sync::LazyLock;

use crate::Class;

/// Which way bytes move on a socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Bytes leave the calling process.
    Send,
    /// Bytes arrive in the calling process.
    Recv,
}

impl Direction {
    /// As fault schedules write it: `send`, `recv`.
    pub fn name(self) -> &'static str {
        match self {
            Direction::Send => "send",
            Direction::Recv => "recv",
        }
    }
}

/// The meaning of one argument register, by position (`args[i]` is register `i`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arg {
    /// The descriptor the call acts on (a socket or a data-dir file).
    Fd,
    /// Directory descriptor that the following [`Arg::Path`] is relative to.
    DirFd,
    /// Directory descriptor for [`Arg::Path2`].
    DirFd2,
    /// A path, recorded as the event's `path`.
    Path,
    /// A second path (a rename's target), recorded as `path2`.
    Path2,
    /// One buffer, the bytes moved (payload capture, file data).
    Buf,
    /// The byte count of [`Arg::Buf`] (recorded as `len`).
    Len,
    /// An iovec array; its total length is recorded as `len`.
    Iov,
    /// The number of entries of [`Arg::Iov`].
    IovCnt,
    /// A `struct msghdr` (its iovecs' total is `len`; its name the peer address).
    Msg,
    /// A `struct mmsghdr` vector (several messages: no single length or offset).
    MsgVec,
    /// A socket address given to the kernel (recorded as `addr` when not null).
    Addr,
    /// The length of [`Arg::Addr`].
    AddrLen,
    /// A socket address the kernel fills in (read at exit when not null).
    AddrOut,
    /// Pointer to the length of [`Arg::AddrOut`].
    AddrLenOut,
    /// A file offset or length (recorded as `pos`); for `pwritev2`, -1 means "at the fd's
    /// offset".
    Pos,
    /// A pointer to a file offset that the call reads and advances by the bytes it moved
    /// (`copy_file_range`'s `off_out`); null: the descriptor's offset is used instead.
    PosPtr,
    /// `MSG_*` flags (`MSG_DONTWAIT` makes a call non-blocking).
    MsgFlags,
    /// Flags decoded into the event's `flags`.
    Flags(Flags),
    /// Two descriptors the kernel fills in (socketpair).
    FdPairOut,
    /// Not recorded.
    Other,
}

/// How a flags argument is decoded into text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flags {
    /// `open(2)` flags: `O_WRONLY|O_CREAT|O_TRUNC`.
    Open,
    /// `creat(2)`: always `O_WRONLY|O_CREAT|O_TRUNC`, whatever the register holds.
    Creat,
    /// A socket's type with its domain (argument 0): `SOCK_STREAM|SOCK_CLOEXEC`.
    SocketType,
    /// `accept4(2)` flags, when not 0.
    Accept,
    /// `shutdown(2)`'s how: `SHUT_WR`.
    Shutdown,
    /// `unlinkat(2)` flags: `AT_REMOVEDIR` when set, nothing otherwise.
    UnlinkAt,
    /// `renameat2(2)` flags: `RENAME_NOREPLACE|RENAME_EXCHANGE|RENAME_WHITEOUT`, when not 0.
    RenameAt2,
    /// `fallocate(2)` mode: `FALLOC_FL_KEEP_SIZE|FALLOC_FL_PUNCH_HOLE|...`, when not 0.
    Fallocate,
    /// `msync(2)` flags: `MS_SYNC`, `MS_ASYNC`, `MS_INVALIDATE`.
    Msync,
}

/// What a call does to a socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SocketOp {
    Create,
    CreatePair,
    Bind,
    Listen,
    Connect,
    Accept,
    Shutdown,
    Close,
    /// Moves bytes out (class `data`).
    Send,
    /// Moves bytes in (class `data`).
    Recv,
}

impl SocketOp {
    /// `data` for transfers, `net` for the socket's lifecycle.
    pub fn class(self) -> Class {
        match self {
            SocketOp::Send | SocketOp::Recv => Class::Data,
            _ => Class::Net,
        }
    }
    pub fn direction(self) -> Option<Direction> {
        match self {
            SocketOp::Send => Some(Direction::Send),
            SocketOp::Recv => Some(Direction::Recv),
            _ => None,
        }
    }
}

/// Which durability a sync call gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SyncScope {
    /// The file's data and metadata (`fsync`); on a directory, its entries.
    File,
    /// The file's data and what is needed to read it (`fdatasync`).
    Data,
    /// Starts writeback of a range, guarantees nothing (`sync_file_range`).
    Range,
    /// Every file of one file system (`syncfs`).
    FileSystem,
    /// Everything (`sync`).
    All,
}

/// What a call does to a file under a node's data dir.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileOp {
    /// Opens (and with `O_CREAT` / `O_TRUNC` creates or empties) a file or directory.
    Open,
    Close,
    /// Writes bytes at [`Arg::Pos`] when the call has one, else at the fd's offset.
    Write,
    Sync(SyncScope),
    /// Sets the length to [`Arg::Pos`].
    Truncate,
    Rename,
    /// A new name ([`Arg::Path2`]) for the file at [`Arg::Path`] (a hard link).
    Link,
    /// A symbolic link at [`Arg::Path`] holding [`Arg::Path2`] (the target, recorded as
    /// written, not resolved).
    Symlink,
    /// Allocates, zeroes or punches a range (`fallocate`: offset [`Arg::Pos`], length
    /// [`Arg::Len`], mode in the flags).
    Allocate,
    /// Writes back a shared mapping of a file (`msync`): the event names the mapped file
    /// (`path`), the file offset of the range (`pos`) and its length (`len`, cut at the
    /// file's end), and with file data recorded the range's bytes at the call.
    MapSync,
    /// Removes a name (a directory with `AT_REMOVEDIR`).
    Unlink,
    Rmdir,
    Mkdir,
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

    /// The positive error number on Linux (x86_64 and the generic ABI agree on these).
    pub fn code(self) -> i32 {
        match self {
            Errno::EACCES => 13,
            Errno::EADDRINUSE => 98,
            Errno::ECONNABORTED => 103,
            Errno::ECONNREFUSED => 111,
            Errno::ECONNRESET => 104,
            Errno::EHOSTUNREACH => 113,
            Errno::EIO => 5,
            Errno::EMFILE => 24,
            Errno::ENETUNREACH => 101,
            Errno::ENFILE => 23,
            Errno::ENOSPC => 28,
            Errno::EPIPE => 32,
            Errno::ETIMEDOUT => 110,
        }
    }
}

impl std::fmt::Display for Errno {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A name that is not a supported errno (a long one is cut at 64 characters in the message).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown errno `{}`: a `fail` fault can inject {}", shown(.0), errno_names())]
pub struct UnknownErrno(pub String);

fn shown(value: &str) -> String {
    match value.char_indices().nth(64) {
        Some((cut, _)) => format!("{}…", &value[..cut]),
        None => value.to_string(),
    }
}

fn errno_names() -> String {
    let names: Vec<&str> = Errno::ALL.iter().map(|e| e.name()).collect();
    names.join(", ")
}

impl std::str::FromStr for Errno {
    type Err = UnknownErrno;
    fn from_str(s: &str) -> Result<Errno, UnknownErrno> {
        Errno::ALL
            .iter()
            .copied()
            .find(|e| e.name() == s)
            .ok_or_else(|| UnknownErrno(s.to_string()))
    }
}

/// How a call appears when it acts on a socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OnSocket {
    pub op: SocketOp,
    /// What a `fail` fault may make it return there.
    pub errnos: &'static [Errno],
}

/// How a call appears when it acts on a data-dir file (class `file`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OnFile {
    pub op: FileOp,
    /// What a `fail` fault may make it return there.
    pub errnos: &'static [Errno],
}

/// Calls the tracer stops at only to keep its descriptor table right; they make no event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bookkeeping {
    /// `close_range(first, last, flags)`: forgets the range (unless `CLOSE_RANGE_CLOEXEC`).
    CloseRange,
    /// `dup2`/`dup3(old, new)`: `new` now names something else.
    Dup,
}

/// One traced system call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallSpec {
    pub name: &'static str,
    /// x86_64 system call number.
    pub nr: i64,
    /// Argument registers in order (missing trailing ones are [`Arg::Other`]).
    pub args: &'static [Arg],
    /// What it does on a socket (None: never recorded on one).
    pub socket: Option<OnSocket>,
    /// What it does on a data-dir file (None: never recorded as a file event).
    pub file: Option<OnFile>,
    /// Traced for the descriptor table only.
    pub bookkeeping: Option<Bookkeeping>,
}

impl CallSpec {
    /// Position of the first argument of this meaning.
    pub fn arg(&self, what: Arg) -> Option<usize> {
        self.args.iter().position(|a| *a == what)
    }
    pub fn has(&self, what: Arg) -> bool {
        self.arg(what).is_some()
    }
    /// The classes this call's events can have (`write`: data on a socket, file on a file).
    pub fn classes(&self) -> Vec<Class> {
        let mut v = Vec::new();
        if let Some(s) = self.socket {
            v.push(s.op.class());
        }
        if self.file.is_some() {
            v.push(Class::File);
        }
        v
    }
    /// The direction of a socket transfer (`None` for everything else).
    pub fn direction(&self) -> Option<Direction> {
        self.socket.and_then(|s| s.op.direction())
    }
    /// One buffer whose length is the third argument: a `short-io` fault can shorten it, a
    /// lost datagram can be faked by skipping it.
    pub fn is_plain_transfer(&self) -> bool {
        self.direction().is_some() && self.args.get(1..3) == Some(&[Arg::Buf, Arg::Len][..])
    }
    /// Moves bytes over a socket.
    pub fn moves_data(&self) -> bool {
        self.direction().is_some()
    }
    /// Changes what a crash leaves on disk, or what is durable (every file op but open and
    /// close).
    pub fn persists(&self) -> bool {
        self.file
            .is_some_and(|f| !matches!(f.op, FileOp::Open | FileOp::Close))
    }
    /// The errnos a `fail` fault may make it return in an event of class `class`.
    pub fn errnos(&self, class: Class) -> &'static [Errno] {
        match class {
            Class::File => self.file.map_or(&[], |f| f.errnos),
            Class::Net | Class::Data => self
                .socket
                .filter(|s| s.op.class() == class)
                .map_or(&[], |s| s.errnos),
            Class::Proc => &[],
        }
    }
}

/// A process lifecycle step (class `proc`), recorded by the tracer without a seccomp stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Step {
    /// A program ordeal started.
    Spawn,
    Fork,
    Vfork,
    Clone,
    Exec,
    Exit,
}

impl Step {
    pub const ALL: &'static [Step] = &[
        Step::Spawn,
        Step::Fork,
        Step::Vfork,
        Step::Clone,
        Step::Exec,
        Step::Exit,
    ];
    pub fn name(self) -> &'static str {
        match self {
            Step::Spawn => "spawn",
            Step::Fork => "fork",
            Step::Vfork => "vfork",
            Step::Clone => "clone",
            Step::Exec => "exec",
            Step::Exit => "exit",
        }
    }
    pub fn from_name(name: &str) -> Option<Step> {
        Step::ALL.iter().copied().find(|s| s.name() == name)
    }
    /// Makes a new process or thread (its event's `child`).
    pub fn creates_task(self) -> bool {
        matches!(self, Step::Fork | Step::Vfork | Step::Clone)
    }
}

use Arg::*;
use Errno::*;

const CREATE_ERRS: &[Errno] = &[EMFILE, ENFILE];
const CONNECT_ERRS: &[Errno] = &[ECONNREFUSED, ETIMEDOUT, ENETUNREACH, EHOSTUNREACH];
const ACCEPT_ERRS: &[Errno] = &[ECONNABORTED, EMFILE, ENFILE];
const SEND_ERRS: &[Errno] = &[ECONNRESET, EPIPE, ETIMEDOUT];
const RECV_ERRS: &[Errno] = &[ECONNRESET, ETIMEDOUT];
const OPEN_ERRS: &[Errno] = &[EACCES, EMFILE, ENFILE, ENOSPC];
const IO_ERRS: &[Errno] = &[EIO, ENOSPC];
const NAME_ERRS: &[Errno] = &[EACCES, EIO, ENOSPC];
const REMOVE_ERRS: &[Errno] = &[EACCES, EIO];

const fn sock(op: SocketOp, errnos: &'static [Errno]) -> Option<OnSocket> {
    Some(OnSocket { op, errnos })
}
const fn file(op: FileOp, errnos: &'static [Errno]) -> Option<OnFile> {
    Some(OnFile { op, errnos })
}
const fn call(
    name: &'static str,
    nr: i64,
    args: &'static [Arg],
    socket: Option<OnSocket>,
    file: Option<OnFile>,
) -> CallSpec {
    CallSpec {
        name,
        nr,
        args,
        socket,
        file,
        bookkeeping: None,
    }
}
const fn keep(name: &'static str, nr: i64, what: Bookkeeping) -> CallSpec {
    CallSpec {
        name,
        nr,
        args: &[],
        socket: None,
        file: None,
        bookkeeping: Some(what),
    }
}

const SEND: Option<OnSocket> = sock(SocketOp::Send, SEND_ERRS);
const RECV: Option<OnSocket> = sock(SocketOp::Recv, RECV_ERRS);
const WRITE: Option<OnFile> = file(FileOp::Write, IO_ERRS);

/// Every system call the tracer stops at (docs/trace-format.md), in a stable order.
pub const CALLS: &[CallSpec] = &[
    // socket lifecycle
    call(
        "socket",
        41,
        &[Other, Flags(Flags::SocketType), Other],
        sock(SocketOp::Create, CREATE_ERRS),
        None,
    ),
    call(
        "socketpair",
        53,
        &[Other, Flags(Flags::SocketType), Other, FdPairOut],
        sock(SocketOp::CreatePair, CREATE_ERRS),
        None,
    ),
    call(
        "bind",
        49,
        &[Fd, Addr, AddrLen],
        sock(SocketOp::Bind, &[EADDRINUSE]),
        None,
    ),
    call(
        "listen",
        50,
        &[Fd, Other],
        sock(SocketOp::Listen, &[]),
        None,
    ),
    call(
        "connect",
        42,
        &[Fd, Addr, AddrLen],
        sock(SocketOp::Connect, CONNECT_ERRS),
        None,
    ),
    call(
        "accept",
        43,
        &[Fd, AddrOut, AddrLenOut],
        sock(SocketOp::Accept, ACCEPT_ERRS),
        None,
    ),
    call(
        "accept4",
        288,
        &[Fd, AddrOut, AddrLenOut, Flags(Flags::Accept)],
        sock(SocketOp::Accept, ACCEPT_ERRS),
        None,
    ),
    call(
        "shutdown",
        48,
        &[Fd, Flags(Flags::Shutdown)],
        sock(SocketOp::Shutdown, &[]),
        None,
    ),
    call(
        "close",
        3,
        &[Fd],
        sock(SocketOp::Close, &[]),
        file(FileOp::Close, &[]),
    ),
    // descriptor numbers reused behind the tracer's back
    keep("close_range", 436, Bookkeeping::CloseRange),
    keep("dup2", 33, Bookkeeping::Dup),
    keep("dup3", 292, Bookkeeping::Dup),
    // data transfer
    call("read", 0, &[Fd, Buf, Len], RECV, None),
    call("write", 1, &[Fd, Buf, Len], SEND, WRITE),
    call("readv", 19, &[Fd, Iov, IovCnt], RECV, None),
    call("writev", 20, &[Fd, Iov, IovCnt], SEND, WRITE),
    call(
        "sendto",
        44,
        &[Fd, Buf, Len, MsgFlags, Addr, AddrLen],
        SEND,
        None,
    ),
    call(
        "recvfrom",
        45,
        &[Fd, Buf, Len, MsgFlags, AddrOut, AddrLenOut],
        RECV,
        None,
    ),
    call("sendmsg", 46, &[Fd, Msg, MsgFlags], SEND, None),
    call("recvmsg", 47, &[Fd, Msg, MsgFlags], RECV, None),
    call("sendmmsg", 307, &[Fd, MsgVec, Other, MsgFlags], SEND, None),
    call(
        "recvmmsg",
        299,
        &[Fd, MsgVec, Other, MsgFlags, Other],
        RECV,
        None,
    ),
    // file persistence
    call(
        "open",
        2,
        &[Path, Flags(Flags::Open), Other],
        None,
        file(FileOp::Open, OPEN_ERRS),
    ),
    call(
        "openat",
        257,
        &[DirFd, Path, Flags(Flags::Open), Other],
        None,
        file(FileOp::Open, OPEN_ERRS),
    ),
    call(
        "creat",
        85,
        &[Path, Flags(Flags::Creat)],
        None,
        file(FileOp::Open, OPEN_ERRS),
    ),
    call("pwrite64", 18, &[Fd, Buf, Len, Pos], None, WRITE),
    call("pwritev", 296, &[Fd, Iov, IovCnt, Pos, Other], None, WRITE),
    call(
        "pwritev2",
        328,
        &[Fd, Iov, IovCnt, Pos, Other, Other],
        None,
        WRITE,
    ),
    // Copies into the descriptor (argument 2) from another (argument 0): a write whose bytes
    // are read back from the destination when the call returns.
    call(
        "copy_file_range",
        326,
        &[Other, Other, Fd, PosPtr, Len, Other],
        None,
        WRITE,
    ),
    // Copies into the descriptor (argument 0) at its offset; the offset pointer is the
    // source's. On a socket it is not recorded (no socket operation), as before.
    call("sendfile", 40, &[Fd, Other, Other, Len], None, WRITE),
    call(
        "fsync",
        74,
        &[Fd],
        None,
        file(FileOp::Sync(SyncScope::File), IO_ERRS),
    ),
    call(
        "fdatasync",
        75,
        &[Fd],
        None,
        file(FileOp::Sync(SyncScope::Data), IO_ERRS),
    ),
    call(
        "sync_file_range",
        277,
        &[Fd, Pos, Len, Other],
        None,
        file(FileOp::Sync(SyncScope::Range), IO_ERRS),
    ),
    call(
        "syncfs",
        306,
        &[Fd],
        None,
        file(FileOp::Sync(SyncScope::FileSystem), IO_ERRS),
    ),
    call(
        "sync",
        162,
        &[],
        None,
        file(FileOp::Sync(SyncScope::All), &[]),
    ),
    call(
        "ftruncate",
        77,
        &[Fd, Pos],
        None,
        file(FileOp::Truncate, IO_ERRS),
    ),
    call(
        "truncate",
        76,
        &[Path, Pos],
        None,
        file(FileOp::Truncate, IO_ERRS),
    ),
    call(
        "rename",
        82,
        &[Path, Path2],
        None,
        file(FileOp::Rename, NAME_ERRS),
    ),
    call(
        "renameat",
        264,
        &[DirFd, Path, DirFd2, Path2],
        None,
        file(FileOp::Rename, NAME_ERRS),
    ),
    call(
        "renameat2",
        316,
        &[DirFd, Path, DirFd2, Path2, Flags(Flags::RenameAt2)],
        None,
        file(FileOp::Rename, NAME_ERRS),
    ),
    call(
        "unlink",
        87,
        &[Path],
        None,
        file(FileOp::Unlink, REMOVE_ERRS),
    ),
    call(
        "unlinkat",
        263,
        &[DirFd, Path, Flags(Flags::UnlinkAt)],
        None,
        file(FileOp::Unlink, REMOVE_ERRS),
    ),
    call(
        "mkdir",
        83,
        &[Path, Other],
        None,
        file(FileOp::Mkdir, NAME_ERRS),
    ),
    call(
        "mkdirat",
        258,
        &[DirFd, Path, Other],
        None,
        file(FileOp::Mkdir, NAME_ERRS),
    ),
    call("rmdir", 84, &[Path], None, file(FileOp::Rmdir, REMOVE_ERRS)),
    call(
        "link",
        86,
        &[Path, Path2],
        None,
        file(FileOp::Link, NAME_ERRS),
    ),
    call(
        "linkat",
        265,
        &[DirFd, Path, DirFd2, Path2, Other],
        None,
        file(FileOp::Link, NAME_ERRS),
    ),
    // The target comes first: it is recorded as `path2`, the link's own name as `path`.
    call(
        "symlink",
        88,
        &[Path2, Path],
        None,
        file(FileOp::Symlink, NAME_ERRS),
    ),
    call(
        "symlinkat",
        266,
        &[Path2, DirFd, Path],
        None,
        file(FileOp::Symlink, NAME_ERRS),
    ),
    // The range's address is a buffer: the mapping behind it names the file.
    call(
        "msync",
        26,
        &[Buf, Len, Flags(Flags::Msync)],
        None,
        file(FileOp::MapSync, IO_ERRS),
    ),
    call(
        "fallocate",
        285,
        &[Fd, Flags(Flags::Fallocate), Pos, Len],
        None,
        file(FileOp::Allocate, IO_ERRS),
    ),
];

// Looked up at every traced stop and for every event of a graph: indexed once, not scanned.
static BY_NAME: LazyLock<HashMap<&'static str, &'static CallSpec>> =
    LazyLock::new(|| CALLS.iter().map(|c| (c.name, c)).collect());
static BY_NR: LazyLock<Vec<Option<&'static CallSpec>>> = LazyLock::new(|| {
    let len = CALLS.iter().map(|c| c.nr as usize + 1).max().unwrap_or(0);
    let mut v = vec![None; len];
    for c in CALLS {
        v[c.nr as usize] = Some(c);
    }
    v
});

/// The traced call called `name`.
pub fn by_name(name: &str) -> Option<&'static CallSpec> {
    BY_NAME.get(name).copied()
}

/// The traced call with x86_64 number `nr`.
pub fn by_nr(nr: i64) -> Option<&'static CallSpec> {
    usize::try_from(nr)
        .ok()
        .and_then(|i| BY_NR.get(i).copied().flatten())
}

/// The calls that make events (everything but bookkeeping), in table order.
pub fn recorded() -> impl Iterator<Item = &'static CallSpec> {
    CALLS.iter().filter(|c| c.bookkeeping.is_none())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers_are_unique() {
        for (i, a) in CALLS.iter().enumerate() {
            for b in &CALLS[i + 1..] {
                assert_ne!(a.name, b.name);
                assert_ne!(a.nr, b.nr, "{} and {}", a.name, b.name);
            }
        }
    }

    #[test]
    fn every_recorded_call_acts_on_something_and_bookkeeping_on_nothing() {
        for c in CALLS {
            let acts = c.socket.is_some() || c.file.is_some();
            assert_eq!(acts, c.bookkeeping.is_none(), "{}", c.name);
            assert!(c.args.len() <= 6, "{}", c.name);
            // A socket call or fd-based file call says which argument is the descriptor.
            if c.socket
                .is_some_and(|s| !matches!(s.op, SocketOp::Create | SocketOp::CreatePair))
            {
                assert_eq!(c.arg(Arg::Fd), Some(0), "{}", c.name);
            }
            if c.file.is_some_and(|f| f.op == FileOp::MapSync) {
                // The mapping holding the address names the file.
                assert!(c.has(Arg::Buf) && c.has(Arg::Len), "{}", c.name);
            } else if c.file.is_some() && !c.has(Arg::Fd) && c.name != "sync" {
                assert!(c.has(Arg::Path), "{} has neither fd nor path", c.name);
            }
            if c.has(Arg::Path2) {
                assert!(c.has(Arg::Path));
            }
        }
    }

    #[test]
    fn derived_properties() {
        let w = by_name("write").unwrap();
        assert_eq!(w.classes(), vec![Class::Data, Class::File]);
        assert_eq!(w.direction(), Some(Direction::Send));
        assert!(w.is_plain_transfer() && w.moves_data() && w.persists());
        assert_eq!(w.errnos(Class::Data), SEND_ERRS);
        assert_eq!(w.errnos(Class::File), IO_ERRS);
        assert_eq!(w.errnos(Class::Net), &[] as &[Errno]);
        let plain: Vec<_> = CALLS
            .iter()
            .filter(|c| c.is_plain_transfer())
            .map(|c| c.name)
            .collect();
        assert_eq!(plain, ["read", "write", "sendto", "recvfrom"]);
        assert!(!by_name("pwrite64").unwrap().is_plain_transfer());
        assert!(!by_name("open").unwrap().persists());
        assert!(by_name("rename").unwrap().persists());
        assert_eq!(by_nr(74).map(|c| c.name), Some("fsync"));
        assert_eq!("EIO".parse::<Errno>(), Ok(Errno::EIO));
        assert_eq!(
            "EBOGUS".parse::<Errno>().unwrap_err().to_string(),
            "unknown errno `EBOGUS`: a `fail` fault can inject EACCES, EADDRINUSE, ECONNABORTED, \
             ECONNREFUSED, ECONNRESET, EHOSTUNREACH, EIO, EMFILE, ENETUNREACH, ENFILE, ENOSPC, \
             EPIPE, ETIMEDOUT"
        );
        assert_eq!(Step::from_name("vfork"), Some(Step::Vfork));
        assert!(Step::Clone.creates_task() && !Step::Exec.creates_task());
    }
}
