//! Program pieces that read kernel structs with `bpf_probe_read_kernel`, at the offsets BTF
//! gave (`btf`): from the current task to the file behind a descriptor and its inode, and
//! from a socket's file to its addresses. A read that fails (a closed descriptor, a socket
//! being torn down) ends the walk and leaves zeros.
//!
//! Conventions: R9 points at the record being written, R10 is the frame; R1-R5, R7 and R8
//! are clobbered.

use crate::asm::{Asm, Cond, Helper, Reg, Size};
use crate::btf::{FileOffsets, SockOffsets};
use Reg::*;

/// Stack slot a followed pointer is read into.
pub const POINTER: i16 = -40;
/// Right below `POINTER`: `max_fds` and the `fd` array pointer that follows it read at once.
const MAX_FDS: i16 = -48;

/// Where a walk finds its descriptor number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FdFrom {
    /// A u32 in the record at this offset (the low half of an argument register).
    Record(i16),
    /// A u64 stack slot (-1: none).
    Stack(i16),
}

/// Points `reg` at the stack slot `off`.
pub fn stack_ptr(a: &mut Asm, reg: Reg, off: i16) {
    a.mov(reg, R10).add_imm(reg, off.into());
}

/// `R3 = *(u64 *)(R3 + field)`, leaving for `done` when the read fails or finds null.
pub fn follow_pointer(a: &mut Asm, field: u32, done: &str) {
    if field != 0 {
        a.add_imm(R3, field as i32);
    }
    stack_ptr(a, R1, POINTER);
    a.mov_imm(R2, 8)
        .call(Helper::ProbeReadKernel)
        .jump_if(Cond::Ne, R0, 0, done)
        .load(Size::DW, R3, R10, POINTER)
        .jump_if(Cond::Eq, R3, 0, done);
}

/// Reads `len` bytes at `R7 + field` into the record at `at` (zeros if it fails).
pub fn read_into_record(a: &mut Asm, at: i32, len: i32, field: i32) {
    a.mov(R1, R9)
        .add_imm(R1, at)
        .mov_imm(R2, len)
        .mov(R3, R7)
        .add_imm(R3, field)
        .call(Helper::ProbeReadKernel);
}

/// The inode behind a descriptor of the current task into the record: `ino: u64` at
/// `ino_at`, `i_mode: u16` at `mode_at` (left as they are, zeros from the caller, when the
/// walk fails). Walks `current->files->fdt`, checks the descriptor against `max_fds`, then
/// `fd[fd]->f_inode`. With `keep_file`, the `struct file *` is left in that stack slot (0
/// when the walk did not get that far).
pub fn fd_inode(
    a: &mut Asm,
    file: &FileOffsets,
    fd: FdFrom,
    ino_at: i16,
    mode_at: i16,
    keep_file: Option<i16>,
) {
    let done = a.fresh("inode_done");
    if let Some(slot) = keep_file {
        a.store_imm(Size::DW, R10, slot, 0);
    }
    match fd {
        FdFrom::Record(at) => {
            a.load(Size::W, R8, R9, at);
        }
        FdFrom::Stack(slot) => {
            a.load(Size::DW, R8, R10, slot)
                .jump_if(Cond::Eq, R8, -1, &done);
        }
    }
    a.call(Helper::GetCurrentTask).mov(R3, R0);
    follow_pointer(a, file.task_files, &done);
    follow_pointer(a, file.files_fdt, &done);
    if file.fdt_fd == file.fdt_max_fds + 8 {
        // `max_fds` and `fd` side by side (the usual layout): one read for both.
        stack_ptr(a, R1, MAX_FDS);
        a.mov_imm(R2, 16)
            .add_imm(R3, file.fdt_max_fds as i32)
            .call(Helper::ProbeReadKernel)
            .jump_if(Cond::Ne, R0, 0, &done)
            .load(Size::W, R1, R10, MAX_FDS)
            .jump_if_reg(Cond::Le, R1, R8, &done)
            .load(Size::DW, R3, R10, POINTER)
            .jump_if(Cond::Eq, R3, 0, &done);
    } else {
        a.mov(R7, R3);
        stack_ptr(a, R1, MAX_FDS);
        a.mov_imm(R2, 4)
            .add_imm(R3, file.fdt_max_fds as i32)
            .call(Helper::ProbeReadKernel)
            .jump_if(Cond::Ne, R0, 0, &done)
            .load(Size::W, R1, R10, MAX_FDS)
            .jump_if_reg(Cond::Le, R1, R8, &done)
            .mov(R3, R7);
        follow_pointer(a, file.fdt_fd, &done);
    }
    a.lsh_imm(R8, 3).add(R3, R8);
    follow_pointer(a, 0, &done);
    if let Some(slot) = keep_file {
        a.store(Size::DW, R10, slot, R3);
    }
    follow_pointer(a, file.file_inode, &done);
    a.mov(R7, R3);
    read_into_record(a, mode_at.into(), 2, file.inode_mode as i32);
    read_into_record(a, ino_at.into(), 8, file.inode_ino as i32);
    a.label(&done);
}

/// Bytes of a socket section in a record.
pub const SOCK_SECTION: i16 = 64;

/// The socket behind the `struct file *` in stack slot `file_slot` into the socket section
/// at `at` (which the caller zeroed), when the inode's mode at `mode_at` says socket. The section:
/// `family: u16 @0, sk_type: u16 @2, dport: u16 @4 (network order), num: u16 @6 (host
/// order), daddr: [u8; 4] @8, rcv_saddr: [u8; 4] @12, v6_daddr: [u8; 16] @16,
/// v6_rcv_saddr: [u8; 16] @32, peer_ino: u64 @48` (AF_UNIX), 8 bytes unused; the v4 fields
/// for AF_INET, the v6 ones for AF_INET6, the peer for AF_UNIX only.
pub fn sock_section(a: &mut Asm, s: &SockOffsets, file_slot: i16, at: i16, mode_at: i16) {
    let done = a.fresh("sock_done");
    let (inet, unix) = (a.fresh("sock_inet"), a.fresh("sock_unix"));
    a.load(Size::H, R1, R9, mode_at)
        .and_imm(R1, libc::S_IFMT as i32)
        .jump_if(Cond::Ne, R1, libc::S_IFSOCK as i32, &done)
        .load(Size::DW, R3, R10, file_slot)
        .jump_if(Cond::Eq, R3, 0, &done);
    follow_pointer(a, s.file_private, &done);
    follow_pointer(a, s.socket_sk, &done);
    a.mov(R7, R3);
    let at = i32::from(at);
    read_into_record(a, at, 2, s.family as i32);
    read_into_record(a, at + 2, 2, s.sk_type as i32);
    // The ports and v4 addresses are pairs in the kernel (skc_portpair, skc_addrpair): one
    // read each when they are laid out as our section has them.
    let pair = |a: &mut Asm, to: i32, first: u32, second: u32, len: i32| {
        if second == first + len as u32 {
            read_into_record(a, to, 2 * len, first as i32);
        } else {
            read_into_record(a, to, len, first as i32);
            read_into_record(a, to + len, len, second as i32);
        }
    };
    a.load(Size::H, R1, R9, at as i16)
        .jump_if(Cond::Eq, R1, libc::AF_UNIX, &unix)
        .jump_if(Cond::Eq, R1, libc::AF_INET, &inet)
        .jump_if(Cond::Ne, R1, libc::AF_INET6, &done);
    pair(a, at + 4, s.dport, s.num, 2);
    pair(a, at + 16, s.v6_daddr, s.v6_rcv_saddr, 16);
    a.jump(&done).label(&inet);
    pair(a, at + 4, s.dport, s.num, 2);
    pair(a, at + 8, s.daddr, s.rcv_saddr, 4);
    a.jump(&done).label(&unix);
    // The peer's inode: unix_sock.peer → its sk_socket → the socket_alloc's inode.
    a.mov(R3, R7);
    follow_pointer(a, s.unix_peer, &done);
    follow_pointer(a, s.sk_socket, &done);
    a.mov(R7, R3);
    read_into_record(a, at + 48, 8, s.socket_to_ino);
    a.label(&done);
}

#[cfg(test)]
mod tests {
    use super::*;

    // The made-up offsets the programs' tests use too.
    pub fn file() -> FileOffsets {
        crate::programs::tests::kernel().file
    }

    pub fn sock() -> SockOffsets {
        crate::programs::tests::kernel().sock
    }

    fn reads(a: Asm) -> usize {
        a.finish()
            .unwrap()
            .iter()
            .filter(|i| i.code == 0x85 && i.imm == Helper::ProbeReadKernel as i32)
            .count()
    }

    #[test]
    fn max_fds_apart_from_the_fd_array_takes_a_read_of_its_own() {
        let count = |file: &FileOffsets| {
            let mut a = Asm::new();
            fd_inode(&mut a, file, FdFrom::Record(88), 96, 104, None);
            a.exit();
            reads(a)
        };
        let apart = FileOffsets {
            fdt_fd: 16,
            ..file()
        };
        // files, fdt, max_fds (+ fd), file, inode, i_mode, i_ino.
        assert_eq!((count(&file()), count(&apart)), (7, 8));
    }

    #[test]
    fn socket_pairs_are_read_at_once_when_adjacent() {
        let count = |s: &SockOffsets| {
            let mut a = Asm::new();
            sock_section(&mut a, s, -88, 56, 48);
            a.exit();
            reads(a)
        };
        // private_data, sk, family, type; v6: ports, addresses; v4: ports, addresses;
        // unix: peer, its socket, the inode number.
        assert_eq!(count(&sock()), 4 + 2 + 2 + 3);
        let apart = SockOffsets {
            rcv_saddr: 8,
            num: 20,
            ..sock()
        };
        assert_eq!(count(&apart), 4 + 3 + 4 + 3);
    }
}
