//! The system-call programs (`raw_syscalls:sys_enter`, `sys_exit`), their short path and
//! their path with copies (the record layouts are in `programs`).
//!
//! Both first check the call number and the caller (`programs::require_allowed`,
//! `require_followed`), then one test of the call's flags sends every call that cannot have
//! copies (every transfer without payload capture, every call outside the call table) down the
//! short path: a fixed-size record reserved in the ring. The others go on to the path with
//! copies when their flags ask (`callplan`): an address argument that is not null, a mark
//! left by the entry when an input copy failed, or copies always.

use crate::asm::{Asm, AsmError, Cond, Helper, Insn, Reg, Size};
use crate::btf::{FileOffsets, KernelOffsets};
use crate::callplan::{self as cp, Role};
use crate::capture::{self, Frame, VALUE_PTR};
use crate::programs::*;
use crate::walk::{self, stack_ptr, FdFrom, SOCK_SECTION};
use Reg::*;

/// The enter record: where the first argument's low half and the descriptor's inode are.
const ENTER_FD_AT: i16 = ENTER_REGS_AT + 56;
const ENTER_INO_AT: i16 = 96;
const ENTER_MODE_AT: i16 = 104;
const EXIT_RET_AT: i16 = 32;

/// The descriptor an exit record's file is read for (-1: none).
const FD: i16 = -64;
/// The `struct file *` behind it.
const FILE: i16 = -72;
/// Whether the exit copies the call's inputs again (u32).
const RETRY: i16 = -76;
/// The thread id, as the retry map's key (u32).
const TID_KEY: i16 = -80;

/// Copies the 64-byte register block of the `pt_regs` at ctx[0] (in R6) to R9 + `at`.
fn copy_regs(a: &mut Asm, at: i32) {
    a.mov(R1, R9)
        .add_imm(R1, at)
        .mov_imm(R2, REGS_BLOCK_LEN)
        .load(Size::DW, R3, R6, 0)
        .add_imm(R3, REGS_BLOCK)
        .call(Helper::ProbeReadKernel);
}

/// Leaves for `copies` when the call's flags have `flag`.
fn when_flag(a: &mut Asm, flag: u32, copies: &str) {
    a.load(Size::W, R1, R10, CALL_FLAGS)
        .and_imm(R1, flag as i32)
        .jump_if(Cond::Ne, R1, 0, copies);
}

/// Leaves for `copies` when the call's flags have `flag` and its argument of `role` is not
/// null (read from the `pt_regs` at ctx[0], in R6).
fn when_flag_and_arg(a: &mut Asm, flag: u32, role: Role, copies: &str) {
    let short = a.fresh("short");
    capture::unless_flag(a, CALL_FLAGS, flag, &short);
    a.load(Size::DW, R1, R10, VALUE_PTR)
        .load(Size::B, R3, R1, role as i16)
        .load(Size::DW, R1, R6, 0)
        .add(R3, R1);
    stack_ptr(a, R1, SCRATCH);
    a.mov_imm(R2, 8)
        .call(Helper::ProbeReadKernel)
        .jump_if(Cond::Ne, R0, 0, &short)
        .load(Size::DW, R1, R10, SCRATCH)
        .jump_if(Cond::Ne, R1, 0, copies)
        .label(&short);
}

/// Zeroes `bytes` of the record in R9 from `at`.
fn zero(a: &mut Asm, at: usize, bytes: usize) {
    for i in (0..bytes).step_by(8) {
        a.store_imm(Size::DW, R9, (at + i) as i16, 0);
    }
}

/// `raw_syscalls:sys_enter(regs, id)`.
pub fn sys_enter(maps: &MapFds, plan: &Plan, k: &KernelOffsets) -> Result<Vec<Insn>, AsmError> {
    let mut a = Asm::new();
    if plan.stage == Stage::ReturnAtOnce {
        a.mov_imm(R0, 0).exit();
        return a.finish();
    }
    a.mov(R6, R1).load(Size::DW, R7, R6, 8);
    require_allowed(&mut a, maps);
    require_followed(&mut a, maps);
    if plan.stage == Stage::Filter {
        a.label("out").mov_imm(R0, 0).exit();
        return a.finish();
    }
    let full = plan.stage == Stage::Full;
    let copies = full && plan.flags & (cp::ENTER_CAPTURE | cp::ENTER_IF_ADDR) != 0;
    if copies {
        // One test on the short path; the others only for calls that may have copies.
        capture::unless_flag(
            &mut a,
            CALL_FLAGS,
            cp::ENTER_CAPTURE | cp::ENTER_IF_ADDR,
            "short",
        );
        when_flag(&mut a, cp::ENTER_CAPTURE, "copies");
        a.label("short");
    }
    reserve(&mut a, maps, plan, KIND_ENTER, ENTER_SIZE);
    a.store(Size::DW, R9, 24, R7);
    if full {
        copy_regs(&mut a, ENTER_REGS_AT.into());
        if copies && plan.flags & cp::ENTER_IF_ADDR != 0 {
            // The address is in the registers just copied: without one (send), this is
            // the record; with one, the longer path (the reservation given back).
            let bare = a.fresh("bare");
            capture::unless_flag(&mut a, CALL_FLAGS, cp::ENTER_IF_ADDR, &bare);
            capture::load_arg(&mut a, &plan.enter_frame(), Role::Addr, R3);
            a.jump_if(Cond::Eq, R3, 0, &bare)
                .mov(R1, R9)
                .mov_imm(R2, BPF_RB_NO_WAKEUP)
                .call(Helper::RingbufDiscard)
                .jump("copies")
                .label(&bare);
        }
        enter_inode(&mut a, &k.file, None);
    }
    submit_and_return(&mut a, maps, plan);
    if copies {
        let frame = plan.enter_frame();
        a.label("copies");
        acquire(&mut a, maps, plan, KIND_ENTER, &frame, ENTER_FIXED);
        a.store(Size::DW, R9, 24, R7);
        copy_regs(&mut a, ENTER_REGS_AT.into());
        zero(&mut a, ENTER_SOCK_AT, SOCK_SECTION as usize);
        enter_inode(&mut a, &k.file, Some(FILE));
        if plan.flags & cp::ENTER_SOCK != 0 {
            let no_sock = a.fresh("no_sock");
            capture::unless_flag(&mut a, CALL_FLAGS, cp::ENTER_SOCK, &no_sock);
            walk::sock_section(&mut a, &k.sock, FILE, ENTER_SOCK_AT as i16, ENTER_MODE_AT);
            a.label(&no_sock);
        }
        let flags = plan.call_flags();
        capture::enter_blobs(&mut a, &frame, flags, Some(ENTER_MODE_AT), plan.payload());
        if plan.flags & cp::ENTER_RETRY != 0 {
            mark_retry(&mut a, maps, &frame);
        }
        finish_copies(&mut a, maps, plan, &frame);
    }
    a.finish()
}

/// When a copy failed (work slot `FAILED`), marks the thread (tid at 4 in the record) in
/// the retry map, for its exit to copy the inputs again, and counts the mark.
fn mark_retry(a: &mut Asm, maps: &MapFds, frame: &Frame) {
    let done = a.fresh("no_retry");
    a.load(Size::W, R1, R9, (frame.slots_at + capture::FAILED) as i16)
        .jump_if(Cond::Eq, R1, 0, &done)
        .load(Size::W, R1, R9, 4)
        .store(Size::W, R10, TID_KEY, R1)
        .store_imm(Size::W, R10, ONE, 1)
        .load_map(R1, maps.retry);
    stack_ptr(a, R2, TID_KEY);
    stack_ptr(a, R3, ONE);
    // BPF_NOEXIST: a thread marked already (its exit never seen) is not counted twice.
    a.mov_imm(R4, 1)
        .call(Helper::MapUpdateElem)
        .jump_if(Cond::Ne, R0, 0, &done);
    add_to_pending(a, maps, 1, &done);
    a.label(&done);
}

/// `counters[PENDING] += delta`, then on to `next`.
fn add_to_pending(a: &mut Asm, maps: &MapFds, delta: i32, next: &str) {
    a.store_imm(Size::W, R10, LOST_KEY, PENDING as i32)
        .load_map(R1, maps.lost);
    stack_ptr(a, R2, LOST_KEY);
    a.call(Helper::MapLookupElem)
        .jump_if(Cond::Eq, R0, 0, next)
        .mov_imm(R1, delta)
        .atomic_add64(R0, 0, R1);
}

/// Sets `RETRY` and leaves for `copies` when the entry of this call (one with inputs to
/// copy, `ENTER_RETRY`) marked the thread (tid in the low half of R8). The retry map is
/// looked up only while some mark is pending (an array read otherwise). Clears `RETRY`
/// otherwise.
fn when_retry(a: &mut Asm, maps: &MapFds, copies: &str) {
    let none = a.fresh("no_retry");
    a.store_imm(Size::W, R10, RETRY, 0)
        .store(Size::W, R10, TID_KEY, R8);
    capture::unless_flag(a, CALL_FLAGS, cp::ENTER_RETRY, &none);
    a.store_imm(Size::W, R10, LOST_KEY, PENDING as i32)
        .load_map(R1, maps.lost);
    stack_ptr(a, R2, LOST_KEY);
    a.call(Helper::MapLookupElem)
        .jump_if(Cond::Eq, R0, 0, &none)
        .load(Size::DW, R1, R0, 0)
        .jump_if(Cond::Eq, R1, 0, &none)
        .load_map(R1, maps.retry);
    stack_ptr(a, R2, TID_KEY);
    a.call(Helper::MapLookupElem)
        .jump_if(Cond::Eq, R0, 0, &none)
        .store_imm(Size::W, R10, RETRY, 1)
        .jump(copies)
        .label(&none);
}

/// Copies the call's inputs again when `RETRY` says the entry's failed, and takes the mark
/// back.
fn retry_inputs(a: &mut Asm, maps: &MapFds, plan: &Plan, frame: &Frame) {
    let (done, copy) = (a.fresh("retried"), a.fresh("retry_copy"));
    a.load(Size::W, R1, R10, RETRY)
        .jump_if(Cond::Eq, R1, 0, &done)
        .load_map(R1, maps.retry);
    stack_ptr(a, R2, TID_KEY);
    a.call(Helper::MapDeleteElem)
        .jump_if(Cond::Ne, R0, 0, &copy);
    add_to_pending(a, maps, -1, &copy);
    a.label(&copy);
    capture::enter_blobs(a, frame, plan.call_flags(), None, plan.payload());
    a.label(&done);
}

/// For a call whose first argument is a descriptor, the inode behind it (zeros otherwise).
fn enter_inode(a: &mut Asm, file: &FileOffsets, keep_file: Option<i16>) {
    let done = a.fresh("no_fd");
    a.store_imm(Size::DW, R9, ENTER_INO_AT, 0)
        .store_imm(Size::DW, R9, ENTER_MODE_AT, 0);
    if let Some(slot) = keep_file {
        a.store_imm(Size::DW, R10, slot, 0);
    }
    capture::unless_flag(a, CALL_FLAGS, cp::FD_FIRST, &done);
    walk::fd_inode(
        a,
        file,
        FdFrom::Record(ENTER_FD_AT),
        ENTER_INO_AT,
        ENTER_MODE_AT,
        keep_file,
    );
    a.label(&done);
}

/// `raw_syscalls:sys_exit(regs, ret)`.
pub fn sys_exit(maps: &MapFds, plan: &Plan, k: &KernelOffsets) -> Result<Vec<Insn>, AsmError> {
    let mut a = Asm::new();
    if plan.stage == Stage::ReturnAtOnce {
        a.mov_imm(R0, 0).exit();
        return a.finish();
    }
    a.mov(R6, R1);
    stack_ptr(&mut a, R1, SCRATCH);
    a.mov_imm(R2, 8)
        .load(Size::DW, R3, R6, 0)
        .add_imm(R3, ORIG_AX)
        .call(Helper::ProbeReadKernel)
        .jump_if(Cond::Ne, R0, 0, "out")
        .load(Size::DW, R7, R10, SCRATCH);
    require_allowed(&mut a, maps);
    require_followed(&mut a, maps);
    if plan.stage == Stage::Filter {
        a.label("out").mov_imm(R0, 0).exit();
        return a.finish();
    }
    let full = plan.stage == Stage::Full;
    let retry = full && plan.flags & cp::ENTER_RETRY != 0;
    let copies = retry || full && plan.flags & (cp::EXIT_CAPTURE | cp::EXIT_IF_ADDR) != 0;
    if copies {
        let maybe = cp::ENTER_RETRY | cp::EXIT_CAPTURE | cp::EXIT_IF_ADDR;
        capture::unless_flag(&mut a, CALL_FLAGS, maybe, "short");
        if retry {
            when_retry(&mut a, maps, "copies");
        }
        when_flag(&mut a, cp::EXIT_CAPTURE, "copies");
        if plan.flags & cp::EXIT_IF_ADDR != 0 {
            // A receive that failed (EAGAIN) wrote no address.
            a.load(Size::DW, R1, R6, 8)
                .jump_if(Cond::SLt, R1, 0, "short");
            when_flag_and_arg(&mut a, cp::EXIT_IF_ADDR, Role::AddrOut, "copies");
        }
        a.label("short");
    }
    reserve(&mut a, maps, plan, KIND_EXIT, EXIT_SIZE);
    a.store(Size::DW, R9, 24, R7)
        .load(Size::DW, R1, R6, 8)
        .store(Size::DW, R9, EXIT_RET_AT, R1);
    submit_and_return(&mut a, maps, plan);
    if copies {
        let frame = plan.exit_frame();
        a.label("copies");
        acquire(&mut a, maps, plan, KIND_EXIT, &frame, EXIT_FIXED);
        a.store(Size::DW, R9, 24, R7)
            .load(Size::DW, R1, R6, 8)
            .store(Size::DW, R9, EXIT_RET_AT, R1);
        zero(&mut a, EXIT_FILE_AT, EXIT_FIXED - EXIT_FILE_AT);
        copy_regs(&mut a, frame.regs_at);
        exit_file(&mut a, plan, &frame, k);
        if retry {
            retry_inputs(&mut a, maps, plan, &frame);
        }
        capture::exit_blobs(
            &mut a,
            &frame,
            plan.call_flags(),
            EXIT_RET_AT,
            plan.payload(),
        );
        finish_copies(&mut a, maps, plan, &frame);
    }
    a.finish()
}

/// The file an exit record describes: behind the first of socketpair's descriptors, the
/// descriptor returned (a non-negative result), or the first argument, per the call's flags.
fn exit_file(a: &mut Asm, plan: &Plan, frame: &Frame, k: &KernelOffsets) {
    let files = cp::EXIT_FILE_RET | cp::EXIT_FILE_ARG0 | cp::EXIT_FD_PAIR;
    if plan.flags & files == 0 {
        return;
    }
    let (skip_ret, skip_arg0, done) = (a.fresh("ret_fd"), a.fresh("arg0_fd"), a.fresh("file"));
    a.store_imm(Size::DW, R10, FD, -1);
    capture::exit_fd_pair(a, frame, plan.call_flags(), EXIT_RET_AT, FD);
    capture::unless_flag(a, CALL_FLAGS, cp::EXIT_FILE_RET, &skip_ret);
    a.load(Size::DW, R1, R9, EXIT_RET_AT)
        .jump_if(Cond::SLt, R1, 0, &skip_ret)
        .store(Size::DW, R10, FD, R1)
        .label(&skip_ret);
    capture::unless_flag(a, CALL_FLAGS, cp::EXIT_FILE_ARG0, &skip_arg0);
    // di, the first argument: its low half (an int).
    a.load(Size::W, R1, R9, (frame.regs_at + 56) as i16)
        .store(Size::DW, R10, FD, R1)
        .label(&skip_arg0);
    capture::unless_flag(a, CALL_FLAGS, files, &done);
    let (ino_at, mode_at) = (EXIT_FILE_AT as i16, EXIT_FILE_AT as i16 + 8);
    walk::fd_inode(a, &k.file, FdFrom::Stack(FD), ino_at, mode_at, Some(FILE));
    walk::sock_section(a, &k.sock, FILE, EXIT_SOCK_AT as i16, mode_at);
    a.label(&done);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::programs::tests::*;

    #[test]
    fn sys_enter_filters_by_call_number_before_anything_else() {
        let p = sys_enter(&maps(), &plan(), &kernel()).unwrap();
        // mov r6, r1; r7 = ctx[1] (id); if r7 > 511 goto out
        assert_eq!((p[1].code, p[1].off), (0x79, 8));
        assert_eq!((p[2].code, p[2].imm), (0x25, MAX_NR as i32 - 1));
        let first_call = p.iter().position(|i| i.code == 0x85).unwrap();
        assert_eq!(p[first_call].imm, Helper::MapLookupElem as i32);
        // That lookup is in the allowed array (fd 4), loaded just before.
        assert!(p[..first_call].iter().any(|i| i.code == 0x18 && i.imm == 4));
        assert!(!p[..first_call].iter().any(|i| i.code == 0x18 && i.imm == 3));
    }

    #[test]
    fn records_wake_the_consumer_only_past_a_quarter_of_the_ring() {
        let p = sys_exit(&maps(), &plan(), &kernel()).unwrap();
        let submit = p
            .iter()
            .position(|i| i.code == 0x85 && i.imm == Helper::RingbufSubmit as i32)
            .unwrap();
        // r0 = ringbuf_query(ring, AVAIL_DATA); r2 = NO_WAKEUP; if r0 <= 256 KiB skip;
        // r2 = FORCE_WAKEUP; r1 = r9; submit
        let q = &p[submit - 5..submit];
        assert_eq!((q[0].code, q[0].imm), (0x85, Helper::RingbufQuery as i32));
        assert_eq!((q[1].code, q[1].imm), (0xb7, BPF_RB_NO_WAKEUP));
        assert_eq!((q[2].code, q[2].imm, q[2].off), (0xb5, 1 << 18, 1));
        assert_eq!((q[3].code, q[3].imm), (0xb7, BPF_RB_FORCE_WAKEUP));
        assert_eq!(q[4].code, 0xbf);
    }

    #[test]
    fn measuring_stages_leave_out_their_steps() {
        let calls = |stage, wakeup| {
            let plan = plan_with(stage, wakeup, Copies::Scratch);
            helper_calls(&sys_enter(&maps(), &plan, &kernel()).unwrap())
        };
        let (lookup, pid) = (
            Helper::MapLookupElem as i32,
            Helper::GetCurrentPidTgid as i32,
        );
        let (reserve, submit) = (Helper::RingbufReserve as i32, Helper::RingbufSubmit as i32);
        let (ktime, read) = (Helper::KtimeGetNs as i32, Helper::ProbeReadKernel as i32);
        assert_eq!(calls(Stage::ReturnAtOnce, Wakeup::Never), Vec::<i32>::new());
        assert_eq!(
            calls(Stage::Filter, Wakeup::Never),
            vec![lookup, pid, lookup]
        );
        // The lost path's lookup comes last; no copies below the full stage.
        assert_eq!(
            calls(Stage::Reserve, Wakeup::Never),
            vec![lookup, pid, lookup, reserve, submit, lookup]
        );
        let task = Helper::GetCurrentTask as i32;
        // The short path as before copies existed: the register copy (then, for a call
        // with an address in it, sendto, the reservation given back), then the walk:
        // files, fdt, max_fds with the fd array (side by side), file, inode, then i_mode
        // and i_ino; submit; the lost path's lookup. Then the path with copies.
        let discard = Helper::RingbufDiscard as i32;
        let mut short = vec![lookup, pid, lookup, reserve, ktime, read, discard, task];
        short.extend([read; 7]);
        short.extend([submit, lookup]);
        let full = calls(Stage::Full, Wakeup::WhenEmpty);
        assert_eq!(full[..short.len()], short[..]);
        assert_eq!(
            full[short.len()..short.len() + 4],
            [lookup, ktime, read, task],
            "the scratch buffer, the time, the registers, the walk"
        );
    }

    #[test]
    fn the_short_path_leaves_for_copies_only_when_the_flags_ask() {
        let p = sys_enter(&maps(), &plan(), &kernel()).unwrap();
        // After the two lookups: load the flags, keep those that may ask for copies, on to
        // the reservation when none; else test ENTER_CAPTURE, jump if set.
        let followed = p
            .iter()
            .enumerate()
            .filter(|(_, i)| i.code == 0x85)
            .nth(2)
            .unwrap()
            .0;
        let test = &p[followed + 2..followed + 8];
        let maybe = (cp::ENTER_CAPTURE | cp::ENTER_IF_ADDR) as i32;
        assert_eq!((test[0].code, test[0].off), (0x61, CALL_FLAGS));
        assert_eq!((test[1].code, test[1].imm), (0x57, maybe));
        assert_eq!(test[2].code, 0x15);
        let reserve = p
            .iter()
            .position(|i| i.code == 0x85 && i.imm == Helper::RingbufReserve as i32)
            .unwrap();
        let short = followed + 5 + test[2].off as usize;
        assert!(short < reserve && reserve - short < 8, "{short} {reserve}");
        assert_eq!(
            (test[4].code, test[4].imm),
            (0x57, cp::ENTER_CAPTURE as i32)
        );
        assert_eq!(test[5].code, 0x55);
        let target = followed + 8 + test[5].off as usize;
        assert!(target > short_path(&p).len(), "into the longer path");
    }

    #[test]
    fn records_with_copies_take_a_scratch_buffer_or_the_largest_reservation() {
        let calls = |copies| {
            let plan = plan_with(Stage::Full, Wakeup::Never, copies);
            let p = sys_exit(&maps(), &plan, &kernel()).unwrap();
            let short = short_path(&p).len();
            (helper_calls(&p[short..]), p)
        };
        let (scratch, _) = calls(Copies::Scratch);
        assert_eq!(scratch.first(), Some(&(Helper::MapLookupElem as i32)));
        assert_eq!(scratch.last(), Some(&(Helper::RingbufOutput as i32)));
        let (reserved, p) = calls(Copies::ReserveLargest);
        // ... after the lost path's lookup: the reservation, of the exit frame's capacity.
        let reserve = p
            .iter()
            .rposition(|i| i.code == 0x85 && i.imm == Helper::RingbufReserve as i32)
            .unwrap();
        assert_eq!(p[reserve - 2].imm, plan().exit_frame().cap);
        assert!(!reserved.contains(&(Helper::RingbufOutput as i32)));
    }

    #[test]
    fn the_exit_looks_for_a_retry_mark_only_while_one_is_pending() {
        let p = sys_exit(&maps(), &plan(), &kernel()).unwrap();
        // The retry map (fd 8) is looked up once, right after the counters (fd 6) said
        // some mark is pending: counters[PENDING] != 0.
        let loads: Vec<usize> = p
            .iter()
            .enumerate()
            .filter(|(_, i)| i.code == 0x18 && i.imm == 8)
            .map(|(at, _)| at)
            .collect();
        let lookup = loads[0];
        assert_eq!(p[lookup + 2 + 2].imm, Helper::MapLookupElem as i32);
        let before = &p[lookup - 9..lookup];
        assert_eq!((before[0].code, before[0].imm), (0x62, PENDING as i32));
        assert_eq!((before[1].code, before[1].imm), (0x18, 6));
        assert_eq!(
            (before[5].code, before[5].imm),
            (0x85, Helper::MapLookupElem as i32)
        );
        assert_eq!((before[8].code, before[8].imm), (0x15, 0));
        // The other uses: the delete when taking a mark back.
        assert!(loads[1..]
            .iter()
            .all(|&at| p[at + 2 + 2].imm == Helper::MapDeleteElem as i32));
    }
}
