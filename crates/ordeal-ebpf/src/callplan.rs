//! What the programs do for each recorded call, derived from its row of the call table
//! (`ordeal_events::calls::CALLS`): the flags and argument positions stored as the call's
//! value in the allowed array, and how many bytes of copies its records can carry at most.
//!
//! Nothing here names a call: a row's typed arguments ([`Arg::Path`], [`Arg::Addr`],
//! [`Arg::Iov`], ...) and socket or file operation decide. A call outside the table is
//! recorded bare (its number and arguments).

use ordeal_events::calls::{self, Arg, CallSpec, Direction, FileOp, SocketOp};

/// Size of an allowed-array value: the flags word, then one byte per [`Role`].
pub const VALUE_SIZE: u32 = 16;

/// Recorded at all.
pub const RECORDED: u32 = 1;
/// The first argument is a descriptor: the enter record carries its inode.
pub const FD_FIRST: u32 = 1 << 1;
/// The enter record carries copies (takes the longer path): any `ENTER_*` below.
pub const ENTER_CAPTURE: u32 = 1 << 2;
/// A socket lifecycle call on a descriptor (bind, connect, close...): the socket's
/// addresses as the call starts, when the descriptor is a socket.
pub const ENTER_SOCK: u32 = 1 << 3;
/// The path arguments ([`Role::Path`], [`Role::Path2`]).
pub const ENTER_PATHS: u32 = 1 << 4;
/// The socket address given ([`Role::Addr`], bounded by [`Role::AddrLen`]).
pub const ENTER_ADDR: u32 = 1 << 5;
/// The iovec array ([`Role::Iov`], [`Role::IovCnt`] entries, at most [`IOV_MAX`]).
pub const ENTER_IOV: u32 = 1 << 6;
/// The `struct msghdr` ([`Role::Msg`]) and its iovec array.
pub const ENTER_MSG: u32 = 1 << 7;
/// And the address a send names in it.
pub const ENTER_MSG_NAME: u32 = 1 << 8;
/// A send on a socket: the first payload bytes (of the buffer, or of the first iovec).
pub const ENTER_PAYLOAD: u32 = 1 << 9;
/// The enter record carries copies only when the address argument ([`Role::Addr`]) is not
/// null (sendto: a send on a connected socket stays on the short path).
pub const ENTER_IF_ADDR: u32 = 1 << 10;
/// Some copy at entry is of the tracee's memory. The programs cannot fault a page in: a page
/// not mapped in yet (a string literal never touched before) fails the copy. When one did,
/// the enter program marks the thread and the exit program, where the kernel has mapped it
/// while reading it, copies the call's inputs again (into the exit record).
pub const ENTER_RETRY: u32 = 1 << 11;
/// The exit record carries copies: any `EXIT_*` below.
pub const EXIT_CAPTURE: u32 = 1 << 16;
/// The file behind the descriptor the call returned (when it returned one).
pub const EXIT_FILE_RET: u32 = 1 << 17;
/// The file behind the first argument.
pub const EXIT_FILE_ARG0: u32 = 1 << 18;
/// The two descriptors written at [`Role::FdPair`], and the file behind the first.
pub const EXIT_FD_PAIR: u32 = 1 << 19;
/// The address written at [`Role::AddrOut`] and its length at [`Role::AddrLenOut`].
pub const EXIT_ADDR_OUT: u32 = 1 << 20;
/// The `struct msghdr` ([`Role::Msg`]) and the address a receive wrote in it.
pub const EXIT_MSG: u32 = 1 << 21;
/// A receive: the first payload bytes it wrote (of the buffer, or of the first iovec).
pub const EXIT_PAYLOAD: u32 = 1 << 22;
/// The exit record carries copies only when the address argument ([`Role::AddrOut`]) is not
/// null (recvfrom: a receive that does not ask for the source stays on the short path).
pub const EXIT_IF_ADDR: u32 = 1 << 23;

const ENTER_COPIES: u32 =
    ENTER_SOCK | ENTER_PATHS | ENTER_ADDR | ENTER_IOV | ENTER_MSG | ENTER_MSG_NAME | ENTER_PAYLOAD;
const EXIT_COPIES: u32 =
    EXIT_FILE_RET | EXIT_FILE_ARG0 | EXIT_FD_PAIR | EXIT_ADDR_OUT | EXIT_MSG | EXIT_PAYLOAD;

/// Path arguments copied, at most (with their NUL).
pub const PATH_MAX: i32 = 256;
/// Socket addresses copied, at most (`struct sockaddr_storage`).
pub const SOCKADDR_MAX: i32 = 128;
/// iovec entries copied, at most (16 bytes each).
pub const IOV_MAX: i32 = 64;
/// `struct user_msghdr` on x86_64.
pub const MSGHDR_SIZE: i32 = 56;
/// Largest `ProbeConfig::payload_bytes`.
pub const PAYLOAD_MAX: usize = 4096;
/// A copy's header: `addr: u64, len: u32, 0u32`.
pub const BLOB_HEADER: usize = 16;

/// An argument's meaning for the programs: its byte in the allowed-array value holds the
/// argument's offset in `struct pt_regs` (0 when the call has no such argument).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Path = 4,
    Path2,
    Addr,
    AddrLen,
    Buf,
    Len,
    Iov,
    IovCnt,
    Msg,
    AddrOut,
    AddrLenOut,
    FdPair,
}

impl Role {
    fn arg(self) -> Arg {
        match self {
            Role::Path => Arg::Path,
            Role::Path2 => Arg::Path2,
            Role::Addr => Arg::Addr,
            Role::AddrLen => Arg::AddrLen,
            Role::Buf => Arg::Buf,
            Role::Len => Arg::Len,
            Role::Iov => Arg::Iov,
            Role::IovCnt => Arg::IovCnt,
            Role::Msg => Arg::Msg,
            Role::AddrOut => Arg::AddrOut,
            Role::AddrLenOut => Arg::AddrLenOut,
            Role::FdPair => Arg::FdPairOut,
        }
    }

    const ALL: [Role; 12] = [
        Role::Path,
        Role::Path2,
        Role::Addr,
        Role::AddrLen,
        Role::Buf,
        Role::Len,
        Role::Iov,
        Role::IovCnt,
        Role::Msg,
        Role::AddrOut,
        Role::AddrLenOut,
        Role::FdPair,
    ];
}

/// x86_64 `struct pt_regs` offsets of the argument registers di, si, dx, r10, r8, r9.
pub const ARG_REGS: [u8; 6] = [112, 104, 96, 56, 72, 64];
/// The lowest and highest of [`ARG_REGS`].
pub const ARG_REGS_LOW: i32 = 56;
pub const ARG_REGS_HIGH: i32 = 112;

/// Bytes a copy of up to `max` bytes takes in a record (header, 8-byte padding).
pub fn slot(max: i32) -> usize {
    BLOB_HEADER + (max as usize).next_multiple_of(8)
}

/// One call's flags and argument positions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallPlan {
    pub flags: u32,
    /// By [`Role`] (index `role - 4`): the argument's `pt_regs` offset, or 0.
    roles: [u8; 12],
    payload_bytes: usize,
}

impl CallPlan {
    /// The plan of call `nr` when the first `payload_bytes` of transfers are copied.
    pub fn of(nr: i64, payload_bytes: usize) -> CallPlan {
        let mut plan = CallPlan {
            flags: RECORDED,
            roles: [0; 12],
            payload_bytes,
        };
        if let Some(spec) = calls::by_nr(nr) {
            plan.derive(spec);
        }
        plan
    }

    fn derive(&mut self, spec: &CallSpec) {
        for role in Role::ALL {
            if let Some(i) = spec.arg(role.arg()) {
                self.roles[role as usize - 4] = ARG_REGS[i];
            }
        }
        let op = spec.socket.map(|s| s.op);
        let fd_first = spec.arg(Arg::Fd) == Some(0);
        let mut f = RECORDED;
        if fd_first {
            f |= FD_FIRST;
        }
        if fd_first && op.is_some_and(|op| op.class() == ordeal_events::Class::Net) {
            f |= ENTER_SOCK;
        }
        if spec.has(Arg::Path) {
            f |= ENTER_PATHS;
        }
        if spec.has(Arg::Addr) && spec.has(Arg::AddrLen) {
            f |= ENTER_ADDR;
        }
        if spec.has(Arg::Iov) && spec.has(Arg::IovCnt) {
            f |= ENTER_IOV;
        }
        let direction = spec.direction();
        if spec.has(Arg::Msg) {
            match direction {
                Some(Direction::Send) => f |= ENTER_MSG | ENTER_MSG_NAME,
                Some(Direction::Recv) => f |= ENTER_MSG | EXIT_MSG,
                None => f |= ENTER_MSG,
            }
        }
        let one_buffer =
            spec.has(Arg::Buf) || f & (ENTER_IOV | ENTER_MSG) != 0 && !spec.has(Arg::MsgVec);
        if self.payload_bytes > 0 && one_buffer {
            match direction {
                Some(Direction::Send) => f |= ENTER_PAYLOAD,
                Some(Direction::Recv) => f |= EXIT_PAYLOAD,
                None => {}
            }
        }
        let returns_fd = matches!(op, Some(SocketOp::Create | SocketOp::Accept))
            || spec.file.is_some_and(|file| file.op == FileOp::Open);
        if returns_fd {
            f |= EXIT_FILE_RET;
        }
        if fd_first
            && matches!(
                op,
                Some(SocketOp::Bind | SocketOp::Listen | SocketOp::Connect | SocketOp::Shutdown)
            )
        {
            f |= EXIT_FILE_ARG0;
        }
        if spec.has(Arg::FdPairOut) {
            f |= EXIT_FD_PAIR;
        }
        if spec.has(Arg::AddrOut) && spec.has(Arg::AddrLenOut) {
            f |= EXIT_ADDR_OUT;
        }
        if f & (ENTER_PATHS | ENTER_ADDR | ENTER_IOV | ENTER_MSG | ENTER_PAYLOAD) != 0 {
            f |= ENTER_RETRY;
        }
        // An address alone is worth the longer path only when there is one.
        match f & ENTER_COPIES {
            0 => {}
            ENTER_ADDR => f |= ENTER_IF_ADDR,
            _ => f |= ENTER_CAPTURE,
        }
        match f & EXIT_COPIES {
            0 => {}
            EXIT_ADDR_OUT => f |= EXIT_IF_ADDR,
            _ => f |= EXIT_CAPTURE,
        }
        self.flags = f;
    }

    /// `pt_regs` offset of the argument of `role` (0: none).
    pub fn role(&self, role: Role) -> u8 {
        self.roles[role as usize - 4]
    }

    /// The allowed-array value.
    pub fn value(&self) -> [u8; VALUE_SIZE as usize] {
        let mut v = [0u8; VALUE_SIZE as usize];
        v[..4].copy_from_slice(&self.flags.to_ne_bytes());
        v[4..].copy_from_slice(&self.roles);
        v
    }

    fn has(&self, flag: u32) -> bool {
        self.flags & flag != 0
    }

    fn payload_slot(&self) -> usize {
        slot(self.payload_bytes as i32)
    }

    /// Bytes of copies its enter record can carry, at most.
    pub fn enter_copies(&self) -> usize {
        let mut n = 0;
        if self.has(ENTER_PATHS) {
            n += slot(PATH_MAX + 1) * if self.role(Role::Path2) != 0 { 2 } else { 1 };
        }
        if self.has(ENTER_ADDR) {
            n += slot(SOCKADDR_MAX);
        }
        if self.has(ENTER_IOV) || self.has(ENTER_MSG) {
            n += slot(16 * IOV_MAX);
        }
        if self.has(ENTER_MSG) {
            n += slot(MSGHDR_SIZE);
        }
        if self.has(ENTER_MSG_NAME) {
            n += slot(SOCKADDR_MAX);
        }
        if self.has(ENTER_PAYLOAD) {
            n += self.payload_slot();
        }
        n
    }

    /// Bytes of copies its exit record can carry, at most (with the inputs copied again).
    pub fn exit_copies(&self) -> usize {
        let mut n = 0;
        if self.has(ENTER_RETRY) {
            n += self.enter_copies();
        }
        if self.has(EXIT_FD_PAIR) {
            n += slot(8);
        }
        if self.has(EXIT_ADDR_OUT) {
            n += slot(4) + slot(SOCKADDR_MAX);
        }
        if self.has(EXIT_MSG) {
            n += slot(MSGHDR_SIZE) + slot(SOCKADDR_MAX);
        }
        if self.has(EXIT_PAYLOAD) {
            // The first iovec (of an iovec array or a msghdr's), then the bytes.
            n += slot(16) + self.payload_slot();
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(name: &str, payload: usize) -> CallPlan {
        CallPlan::of(calls::by_name(name).unwrap().nr, payload)
    }

    fn flags(name: &str, payload: usize) -> u32 {
        plan(name, payload).flags
    }

    #[test]
    fn transfers_without_payload_stay_on_the_short_path() {
        assert_eq!(flags("read", 0), RECORDED | FD_FIRST);
        assert_eq!(flags("write", 0), RECORDED | FD_FIRST);
        // sendto's destination and recvfrom's source are copied when there is one (not
        // for send and recv, which are sendto and recvfrom without).
        assert_eq!(
            flags("sendto", 0),
            RECORDED | FD_FIRST | ENTER_IF_ADDR | ENTER_ADDR | ENTER_RETRY
        );
        assert_eq!(
            flags("recvfrom", 0),
            RECORDED | FD_FIRST | EXIT_IF_ADDR | EXIT_ADDR_OUT
        );
        // accept's peer address comes with its file: always the longer path.
        assert_eq!(
            flags("accept", 0) & (EXIT_IF_ADDR | EXIT_CAPTURE),
            EXIT_CAPTURE
        );
        // A call outside the table: recorded bare.
        assert_eq!(CallPlan::of(110, 64).flags, RECORDED);
    }

    #[test]
    fn payload_bytes_copy_sends_at_entry_and_receives_at_exit() {
        assert_eq!(
            flags("write", 8),
            RECORDED | FD_FIRST | ENTER_CAPTURE | ENTER_PAYLOAD | ENTER_RETRY
        );
        assert_eq!(
            flags("read", 8),
            RECORDED | FD_FIRST | EXIT_CAPTURE | EXIT_PAYLOAD
        );
        assert!(flags("writev", 8) & (ENTER_IOV | ENTER_PAYLOAD) == ENTER_IOV | ENTER_PAYLOAD);
        assert_eq!(
            flags("sendto", 8) & (ENTER_CAPTURE | ENTER_IF_ADDR),
            ENTER_CAPTURE
        );
        assert!(flags("sendmsg", 8) & ENTER_PAYLOAD != 0);
        assert!(flags("recvmsg", 8) & EXIT_PAYLOAD != 0);
        // Several messages have no single buffer; a file-only write is no transfer.
        assert_eq!(flags("sendmmsg", 8) & ENTER_PAYLOAD, 0);
        assert_eq!(flags("pwrite64", 8) & ENTER_PAYLOAD, 0);
    }

    #[test]
    fn socket_lifecycle_calls_carry_addresses_and_files() {
        let bind = plan("bind", 0);
        assert_eq!(
            bind.flags,
            RECORDED
                | FD_FIRST
                | ENTER_CAPTURE
                | ENTER_SOCK
                | ENTER_ADDR
                | ENTER_RETRY
                | EXIT_CAPTURE
                | EXIT_FILE_ARG0
        );
        // Arguments 1 and 2: si, dx.
        assert_eq!((bind.role(Role::Addr), bind.role(Role::AddrLen)), (104, 96));
        let sendto = plan("sendto", 0);
        // Arguments 4 and 5: r8, r9.
        assert_eq!(
            (sendto.role(Role::Addr), sendto.role(Role::AddrLen)),
            (72, 64)
        );
        assert!(flags("accept4", 0) & (EXIT_FILE_RET | EXIT_ADDR_OUT | ENTER_SOCK) != 0);
        assert_eq!(flags("socket", 0), RECORDED | EXIT_CAPTURE | EXIT_FILE_RET);
        let pair = plan("socketpair", 0);
        assert_eq!(pair.flags, RECORDED | EXIT_CAPTURE | EXIT_FD_PAIR);
        assert_eq!(pair.role(Role::FdPair), 56); // r10
                                                 // Nothing of the tracee's memory: nothing to copy again at exit.
        assert_eq!(
            flags("close", 0),
            RECORDED | FD_FIRST | ENTER_CAPTURE | ENTER_SOCK
        );
        assert_eq!(flags("shutdown", 0) & EXIT_FILE_ARG0, EXIT_FILE_ARG0);
    }

    #[test]
    fn file_calls_carry_their_paths() {
        let rename = plan("renameat2", 0);
        assert_eq!(
            rename.flags,
            RECORDED | ENTER_CAPTURE | ENTER_PATHS | ENTER_RETRY
        );
        assert_eq!(
            (rename.role(Role::Path), rename.role(Role::Path2)),
            (104, 56)
        );
        assert_eq!(
            flags("openat", 0),
            RECORDED | ENTER_CAPTURE | ENTER_PATHS | ENTER_RETRY | EXIT_CAPTURE | EXIT_FILE_RET
        );
        assert_eq!(plan("unlink", 0).role(Role::Path2), 0);
        assert_eq!(flags("fsync", 0), RECORDED | FD_FIRST);
    }

    #[test]
    fn values_hold_flags_then_role_offsets() {
        let v = plan("connect", 0).value();
        assert_eq!(
            u32::from_ne_bytes(v[..4].try_into().unwrap()),
            flags("connect", 0)
        );
        assert_eq!(
            (v[Role::Addr as usize], v[Role::AddrLen as usize]),
            (104, 96)
        );
        assert_eq!(v[Role::Path as usize], 0);
    }

    #[test]
    fn copy_bounds_add_up_the_slots_of_each_call() {
        assert_eq!(plan("write", 0).enter_copies(), 0);
        assert_eq!(plan("write", 5).enter_copies(), 16 + 8);
        assert_eq!(plan("rename", 0).enter_copies(), 2 * (16 + 264));
        assert_eq!(
            plan("sendmsg", 64).enter_copies(),
            (16 + 1024) + (16 + 56) + (16 + 128) + (16 + 64)
        );
        assert_eq!(plan("accept", 0).exit_copies(), (16 + 8) + (16 + 128));
        // A rename's exit may copy its paths again.
        assert_eq!(plan("rename", 0).exit_copies(), 2 * (16 + 264));
        assert_eq!(
            plan("recvfrom", 64).exit_copies(),
            (16 + 8) + (16 + 128) + (16 + 16) + (16 + 64)
        );
    }
}
