//! The copies a record carries (the longer path of the system-call programs, taken when the
//! call's flags ask for any): copies of the tracee's memory ("blobs") and the file and socket
//! behind a descriptor.
//!
//! A record with copies is written into a buffer of fixed capacity (`Frame`): the fixed part,
//! then the blobs, each `addr: u64, len: u32, 0: u32`, then `len` bytes padded to 8; the
//! record's `end` field (u32 at 12) is the cursor, the bytes used so far. Past the blobs'
//! room, a work area holds where the last blobs' bytes are (so a later copy can follow a
//! pointer inside an earlier one) and, at exit, the argument registers. The cursor and those
//! positions live in the buffer, not in registers or the stack, so the verifier sees them
//! as bounded unknowns and does not explore every combination of present and absent blobs.
//! A blob that cannot be read (bad pointer, page not present) is left out.
//!
//! Conventions: R6 holds the context, R9 the buffer; R7 is a blob's address, R8 its size;
//! R0-R5, R7, R8 are clobbered.

use crate::asm::{Asm, Cond, Helper, Reg, Size};
use crate::callplan::{self as cp, Role, ARG_REGS_HIGH, ARG_REGS_LOW};
use Reg::*;

/// The record's cursor: `end: u32` at 12.
pub const CURSOR: i16 = 12;
/// Work-area slots (offsets from `Frame::slots_at`): the data offset of the last blob
/// written (0: absent), of the iovec array, of the msghdr; whether a read failed.
pub const LAST: i32 = 0;
pub const IOV_LAST: i32 = 4;
pub const MSG_LAST: i32 = 8;
pub const FAILED: i32 = 12;
/// Bytes of the work-area slots.
pub const SLOTS: i32 = 16;
/// Stack slot of the allowed-array value pointer (the call's flags and argument roles).
pub const VALUE_PTR: i16 = -56;

/// A buffer with copies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame {
    /// Its capacity (what is reserved, or the scratch size).
    pub cap: i32,
    /// Where the blobs must end.
    pub blobs_end: i32,
    /// Where the 64 bytes of `pt_regs` 56..120 (r10, r9, r8, ax, cx, dx, si, di) are.
    pub regs_at: i32,
    /// Where the work-area slots are.
    pub slots_at: i32,
}

/// How a blob is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Read {
    /// R8 bytes (at most `max`).
    User,
    /// A NUL-terminated string: with its NUL when it fits in `max`, else its first `max`
    /// bytes (no NUL: cut).
    Str,
}

/// `reg = min(reg, max)`, unsigned.
pub fn clamp(a: &mut Asm, reg: Reg, max: i32) {
    let ok = a.fresh("clamped");
    a.jump_if(Cond::Le, reg, max, &ok)
        .mov_imm(reg, max)
        .label(&ok);
}

/// `dst =` the call's argument of `role` (0 when the call has none). Reads the role's
/// `pt_regs` offset from the allowed-array value, then the register from the copy at
/// `Frame::regs_at`.
pub fn load_arg(a: &mut Asm, f: &Frame, role: Role, dst: Reg) {
    let done = a.fresh("arg");
    a.load(Size::DW, R1, R10, VALUE_PTR)
        .load(Size::B, R2, R1, role as i16)
        .mov_imm(dst, 0)
        .jump_if(Cond::Lt, R2, ARG_REGS_LOW, &done)
        .jump_if(Cond::Gt, R2, ARG_REGS_HIGH, &done)
        .add(R2, R9)
        .load(Size::DW, dst, R2, (f.regs_at - ARG_REGS_LOW) as i16)
        .label(&done);
}

/// Copies `R8` bytes (at most `max`) of the tracee's memory at `R7` as the next blob, and
/// records where its bytes are in work slot `last` (0 when absent: a null address, a zero
/// size, a failed read; the last also sets work slot [`FAILED`]).
pub fn blob(a: &mut Asm, f: &Frame, read: Read, max: i32, last: i32) {
    let (skip, failed) = (a.fresh("blob_skip"), a.fresh("blob_failed"));
    let read_len = match read {
        Read::User => max,
        Read::Str => max + 1,
    };
    let limit = f.blobs_end - cp::slot(read_len) as i32;
    assert!(limit >= 0, "a blob of {read_len} bytes does not fit {f:?}");
    let slot = (f.slots_at + last) as i16;
    a.store_imm(Size::W, R9, slot, 0)
        .jump_if(Cond::Eq, R7, 0, &skip);
    if read == Read::User {
        a.jump_if(Cond::Eq, R8, 0, &skip);
        clamp(a, R8, max);
    }
    a.load(Size::W, R1, R9, CURSOR)
        .jump_if(Cond::Gt, R1, limit, &skip)
        .add(R1, R9)
        .add_imm(R1, cp::BLOB_HEADER as i32)
        .mov(R3, R7);
    match read {
        Read::User => {
            a.mov(R2, R8)
                .call(Helper::ProbeReadUser)
                .jump_if(Cond::Ne, R0, 0, &failed)
                .mov(R2, R8);
        }
        Read::Str => {
            a.mov_imm(R2, read_len)
                .call(Helper::ProbeReadUserStr)
                .jump_if(Cond::SLe, R0, 0, &failed)
                .mov(R2, R0);
            // All `max + 1` bytes: the string goes on; keep `max` of them, not the NUL
            // the helper put last.
            clamp(a, R2, max);
        }
    }
    a.load(Size::W, R1, R9, CURSOR)
        .jump_if(Cond::Gt, R1, limit, &skip)
        .mov(R3, R1)
        .add(R1, R9)
        .store(Size::DW, R1, 0, R7)
        .store(Size::W, R1, 8, R2)
        .store_imm(Size::W, R1, 12, 0)
        .add_imm(R3, cp::BLOB_HEADER as i32)
        .store(Size::W, R9, slot, R3)
        .add_imm(R2, 7)
        .and_imm(R2, -8)
        .add(R3, R2)
        .store(Size::W, R9, CURSOR, R3)
        .jump(&skip)
        .label(&failed)
        .store_imm(Size::W, R9, (f.slots_at + FAILED) as i16, 1)
        .label(&skip);
}

/// `dst =` the `size` field at `field` of the blob recorded in work slot `last`; to
/// `absent` when there is none.
pub fn load_from_blob(
    a: &mut Asm,
    f: &Frame,
    last: i32,
    field: i16,
    size: Size,
    dst: Reg,
    absent: &str,
) {
    let width = match size {
        Size::B => 1,
        Size::H => 2,
        Size::W => 4,
        Size::DW => 8,
    };
    a.load(Size::W, R1, R9, (f.slots_at + last) as i16)
        .jump_if(Cond::Eq, R1, 0, absent)
        .jump_if(Cond::Gt, R1, f.blobs_end - i32::from(field) - width, absent)
        .add(R1, R9)
        .load(size, dst, R1, field);
}

/// Leaves for `skip` unless the call's flags (at `flags_slot` on the stack) have `flag`.
pub fn unless_flag(a: &mut Asm, flags_slot: i16, flag: u32, skip: &str) {
    a.load(Size::W, R1, R10, flags_slot)
        .and_imm(R1, flag as i32)
        .jump_if(Cond::Eq, R1, 0, skip);
}

/// The call's flags, on the stack at `slot`; `any`: every flag some recorded call has (the
/// code for the others is left out).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flags {
    pub slot: i16,
    pub any: u32,
}

impl Flags {
    /// Emits `body` when some call has `flag`, behind a test of the call's flags; `body`
    /// may leave for the label it is given.
    fn section(&self, a: &mut Asm, flag: u32, body: impl FnOnce(&mut Asm, &str)) {
        if self.any & flag == 0 {
            return;
        }
        let next = a.fresh("section");
        unless_flag(a, self.slot, flag, &next);
        body(a, &next);
        a.label(&next);
    }
}

/// The iovec array at R7 with R8 entries (at most [`cp::IOV_MAX`]) into work slot
/// [`IOV_LAST`].
fn iovecs(a: &mut Asm, f: &Frame) {
    clamp(a, R8, cp::IOV_MAX);
    a.lsh_imm(R8, 4);
    blob(a, f, Read::User, 16 * cp::IOV_MAX, IOV_LAST);
}

/// The blobs of an enter record, per the call's flags: paths, the address given, the iovec
/// array, the msghdr (and its iovecs and, for a send, its address), then for a send on a
/// socket (the inode's mode at `mode_at`; at exit, copying again what failed at entry,
/// `None`: the entry checked) the first `payload` bytes.
pub fn enter_blobs(a: &mut Asm, f: &Frame, fl: Flags, mode_at: Option<i16>, payload: i32) {
    fl.section(a, cp::ENTER_PATHS, |a, _| {
        load_arg(a, f, Role::Path, R7);
        blob(a, f, Read::Str, cp::PATH_MAX, LAST);
        load_arg(a, f, Role::Path2, R7);
        blob(a, f, Read::Str, cp::PATH_MAX, LAST);
    });
    fl.section(a, cp::ENTER_ADDR, |a, _| {
        load_arg(a, f, Role::AddrLen, R8);
        a.mov32(R8, R8);
        load_arg(a, f, Role::Addr, R7);
        blob(a, f, Read::User, cp::SOCKADDR_MAX, LAST);
    });
    fl.section(a, cp::ENTER_IOV, |a, _| {
        load_arg(a, f, Role::IovCnt, R8);
        load_arg(a, f, Role::Iov, R7);
        iovecs(a, f);
    });
    fl.section(a, cp::ENTER_MSG, |a, next| {
        load_arg(a, f, Role::Msg, R7);
        a.mov_imm(R8, cp::MSGHDR_SIZE);
        blob(a, f, Read::User, cp::MSGHDR_SIZE, MSG_LAST);
        // struct user_msghdr: name @0, namelen @8 (int), iov @16, iovlen @24.
        load_from_blob(a, f, MSG_LAST, 24, Size::DW, R8, next);
        load_from_blob(a, f, MSG_LAST, 16, Size::DW, R7, next);
        iovecs(a, f);
    });
    fl.section(a, cp::ENTER_MSG_NAME, |a, next| {
        load_from_blob(a, f, MSG_LAST, 8, Size::W, R8, next);
        load_from_blob(a, f, MSG_LAST, 0, Size::DW, R7, next);
        blob(a, f, Read::User, cp::SOCKADDR_MAX, LAST);
    });
    fl.section(a, cp::ENTER_PAYLOAD, |a, next| {
        let iov = a.fresh("payload_iov");
        if let Some(mode_at) = mode_at {
            a.load(Size::H, R1, R9, mode_at)
                .and_imm(R1, libc::S_IFMT as i32)
                .jump_if(Cond::Ne, R1, libc::S_IFSOCK as i32, next);
        }
        load_arg(a, f, Role::Buf, R7);
        a.jump_if(Cond::Eq, R7, 0, &iov);
        load_arg(a, f, Role::Len, R8);
        blob(a, f, Read::User, payload, LAST);
        a.jump(next).label(&iov);
        // The first iovec's bytes.
        load_from_blob(a, f, IOV_LAST, 8, Size::DW, R8, next);
        load_from_blob(a, f, IOV_LAST, 0, Size::DW, R7, next);
        blob(a, f, Read::User, payload, LAST);
    });
}

/// Leaves for `skip` when the result (in the record at `ret_at`) is below `min`.
fn unless_ret_at_least(a: &mut Asm, ret_at: i16, min: i32, skip: &str) {
    a.load(Size::DW, R1, R9, ret_at)
        .jump_if(Cond::SLt, R1, min, skip);
}

/// The blobs of an exit record that come before the file is read: socketpair's two
/// descriptors, leaving the first in stack slot `fd_slot`.
pub fn exit_fd_pair(a: &mut Asm, f: &Frame, fl: Flags, ret_at: i16, fd_slot: i16) {
    fl.section(a, cp::EXIT_FD_PAIR, |a, next| {
        // Written only when the call succeeded (0).
        a.load(Size::DW, R1, R9, ret_at)
            .jump_if(Cond::Ne, R1, 0, next);
        load_arg(a, f, Role::FdPair, R7);
        a.mov_imm(R8, 8);
        blob(a, f, Read::User, 8, LAST);
        load_from_blob(a, f, LAST, 0, Size::W, R1, next);
        a.store(Size::DW, R10, fd_slot, R1);
    });
}

/// The blobs of an exit record after its file: the address a call wrote (accept,
/// recvfrom: its length, then as many bytes), the msghdr of a receive and the address in
/// it, then for a receive the first `payload` bytes it wrote (of the buffer, or of the
/// first iovec, copied too).
pub fn exit_blobs(a: &mut Asm, f: &Frame, fl: Flags, ret_at: i16, payload: i32) {
    fl.section(a, cp::EXIT_ADDR_OUT, |a, next| {
        unless_ret_at_least(a, ret_at, 0, next);
        load_arg(a, f, Role::AddrLenOut, R7);
        a.mov_imm(R8, 4);
        blob(a, f, Read::User, 4, LAST);
        load_from_blob(a, f, LAST, 0, Size::W, R8, next);
        load_arg(a, f, Role::AddrOut, R7);
        blob(a, f, Read::User, cp::SOCKADDR_MAX, LAST);
    });
    fl.section(a, cp::EXIT_MSG, |a, next| {
        unless_ret_at_least(a, ret_at, 0, next);
        load_arg(a, f, Role::Msg, R7);
        a.mov_imm(R8, cp::MSGHDR_SIZE);
        blob(a, f, Read::User, cp::MSGHDR_SIZE, MSG_LAST);
        load_from_blob(a, f, MSG_LAST, 8, Size::W, R8, next);
        load_from_blob(a, f, MSG_LAST, 0, Size::DW, R7, next);
        blob(a, f, Read::User, cp::SOCKADDR_MAX, LAST);
    });
    fl.section(a, cp::EXIT_PAYLOAD, |a, next| {
        let (iov, first, fits) = (
            a.fresh("payload_iov"),
            a.fresh("payload_first"),
            a.fresh("payload_fits"),
        );
        unless_ret_at_least(a, ret_at, 1, next);
        load_arg(a, f, Role::Buf, R7);
        a.jump_if(Cond::Eq, R7, 0, &iov)
            .load(Size::DW, R8, R9, ret_at);
        blob(a, f, Read::User, payload, LAST);
        a.jump(next).label(&iov);
        // The first iovec: of the iovec argument, or of the msghdr copied above.
        load_arg(a, f, Role::Iov, R7);
        a.jump_if(Cond::Ne, R7, 0, &first);
        load_from_blob(a, f, MSG_LAST, 16, Size::DW, R7, next);
        a.label(&first).mov_imm(R8, 16);
        blob(a, f, Read::User, 16, IOV_LAST);
        load_from_blob(a, f, IOV_LAST, 8, Size::DW, R8, next);
        // Not more than the call received.
        a.load(Size::DW, R1, R9, ret_at)
            .jump_if_reg(Cond::Le, R8, R1, &fits)
            .mov(R8, R1)
            .label(&fits);
        load_from_blob(a, f, IOV_LAST, 0, Size::DW, R7, next);
        blob(a, f, Read::User, payload, LAST);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame() -> Frame {
        Frame {
            cap: 1024,
            blobs_end: 1008,
            regs_at: 32,
            slots_at: 1008,
        }
    }

    #[test]
    fn a_blob_is_bounded_before_its_read_and_its_write() {
        let mut a = Asm::new();
        blob(&mut a, &frame(), Read::User, 128, LAST);
        a.exit();
        let p = a.finish().unwrap();
        let read = p
            .iter()
            .position(|i| i.code == 0x85 && i.imm == Helper::ProbeReadUser as i32)
            .unwrap();
        // The cursor checked against the room left for a 128-byte blob, before the read
        // and again before the header is written.
        let limit = 1008 - (16 + 128);
        let checks: Vec<usize> = p
            .iter()
            .enumerate()
            .filter(|(_, i)| i.code == 0x25 && i.imm == limit)
            .map(|(at, _)| at)
            .collect();
        assert_eq!(checks.len(), 2);
        assert!(checks[0] < read && read < checks[1]);
        // The size is clamped to 128 before the read.
        assert!(p[..read].iter().any(|i| i.code == 0xb7 && i.imm == 128));
    }

    #[test]
    fn a_string_reads_one_byte_more_to_tell_a_cut_one() {
        let mut a = Asm::new();
        blob(&mut a, &frame(), Read::Str, 256, LAST);
        a.exit();
        let p = a.finish().unwrap();
        let read = p
            .iter()
            .position(|i| i.code == 0x85 && i.imm == Helper::ProbeReadUserStr as i32)
            .unwrap();
        assert!(p[..read].iter().any(|i| i.code == 0xb7 && i.imm == 257));
        assert!(p[read..].iter().any(|i| i.code == 0xb7 && i.imm == 256));
    }

    #[test]
    #[should_panic(expected = "does not fit")]
    fn a_blob_larger_than_the_frame_is_a_bug() {
        let mut a = Asm::new();
        blob(&mut a, &frame(), Read::User, 4096, LAST);
    }
}
