//! The five raw-tracepoint programs and the records they write.
//!
//! Every program first decides, as cheaply as it can, whether the event is one to record: the
//! system-call programs check the call number against the allowed array (a bounds check and
//! an inlined array read) before the hash lookup of the caller's tgid among the followed
//! processes; the scheduler programs (rare events) check the tgid only. A record that does
//! not fit in the ring buffer increments the lost counter instead. A submitted record wakes
//! the consumer only once a quarter of the ring is unread ([`Wakeup::PastQuarter`]); below
//! that, the consumer finds records by looking on a short timer.
//!
//! Records (little-endian, 8-byte aligned), common part: `kind: u32 @0, tid: u32 @4,
//! tgid: u32 @8, ktime_ns: u64 @16` (bpf_ktime_get_ns: CLOCK_MONOTONIC), then by kind:
//! - enter: `nr: u64 @24`, then 64 bytes @32 copied from `struct pt_regs` at 56..120
//!   (x86_64: r10, r9, r8, ax, cx, dx, si, di; the arguments are di, si, dx, r10, r8, r9),
//!   then, for a call whose first argument is a descriptor ([`FD_FIRST`] in the allowed
//!   array), the inode behind it: `ino: u64 @96, i_mode: u16 @104` (zeros when the call has
//!   no descriptor or the walk from the task to the inode fails: a closed descriptor);
//! - exit: `nr: u64 @24, ret: u64 @32`;
//! - fork: `child_tid: u32 @24, child_tgid: u32 @28`;
//! - process exit: `status: u32 @24` (the wait(2)-style status);
//! - exec: `old_tid: u32 @24` (the thread that called execve: after it, tid = tgid).

use crate::asm::{Asm, AsmError, Cond, Helper, Insn, Reg, Size};
use crate::btf::{FileOffsets, TaskOffsets};
use Reg::*;

pub const KIND_ENTER: u32 = 1;
pub const KIND_EXIT: u32 = 2;
pub const KIND_FORK: u32 = 3;
pub const KIND_PROCESS_EXIT: u32 = 4;
pub const KIND_EXEC: u32 = 5;

pub const ENTER_SIZE: usize = 112;
pub const EXIT_SIZE: usize = 40;
pub const FORK_SIZE: usize = 32;
pub const PROCESS_EXIT_SIZE: usize = 32;
pub const EXEC_SIZE: usize = 32;

/// Allowed-array value of a recorded call.
pub const RECORDED: u32 = 1;
/// Allowed-array value of a recorded call whose first argument is a descriptor: its entry
/// record carries the descriptor's inode, read while the descriptor is still open.
pub const FD_FIRST: u32 = 2;

/// Size of the allowed-calls array: call numbers at or above are never recorded.
pub const MAX_NR: u32 = 512;

/// x86_64 `struct pt_regs`: where the copied block starts, and `orig_ax` (the call number).
const REGS_BLOCK: i32 = 56;
const REGS_BLOCK_LEN: i32 = 64;
const ORIG_AX: i32 = 120;

// Stack slots (offsets from the frame pointer R10).
const LOST_KEY: i16 = -4;
const TGID_KEY: i16 = -8;
const SCRATCH: i16 = -16;
const SCRATCH2: i16 = -12;
const ONE: i16 = -20;
const NR_KEY: i16 = -24;
const CALL_FLAGS: i16 = -28;
const POINTER: i16 = -40;
/// Right below `POINTER`: `max_fds` and the `fd` array pointer that follows it read at once.
const MAX_FDS: i16 = -48;

/// How far the system-call programs go: each stage does everything the previous one does.
/// Only [`Stage::Full`] records what [`crate::Record`] promises; the others exist to measure
/// what each step costs a followed call (examples/overhead.rs).
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Stage {
    /// Return at once (the cost of the tracepoint itself).
    ReturnAtOnce,
    /// Check the call number and the followed map, then return.
    Filter,
    /// Reserve, fill the ids and the call number (enter) or result (exit), submit.
    Reserve,
    /// And the time.
    Ktime,
    /// And, on enter, the 64-byte register copy.
    #[default]
    Full,
}

/// When a submitted record wakes a consumer blocked in poll(2).
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Wakeup {
    /// The kernel's default: when the ring was empty before this record (flags 0).
    WhenEmpty,
    /// Never (BPF_RB_NO_WAKEUP): the consumer must poll on a timer.
    Never,
    /// Always (BPF_RB_FORCE_WAKEUP).
    Always,
    /// Only once the unread data passes a quarter of the ring; the consumer polls on a short
    /// timer for the rest. A wakeup costs the traced task an irq_work (a self-interrupt) and
    /// the consumer a context switch, per record when the consumer keeps up.
    #[default]
    PastQuarter,
}

const BPF_RB_NO_WAKEUP: i32 = 1;
const BPF_RB_FORCE_WAKEUP: i32 = 2;
const BPF_RB_AVAIL_DATA: i32 = 0;

/// What the programs do beyond their maps.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    pub stage: Stage,
    pub wakeup: Wakeup,
    pub ring_bytes: usize,
}

/// The maps the programs use, by descriptor.
#[derive(Debug, Clone, Copy)]
pub struct MapFds {
    /// tgid (u32) → u32: the followed processes.
    pub followed: i32,
    /// call number (u32) → u32: [`RECORDED`], [`FD_FIRST`], or 0 when not recorded.
    pub allowed: i32,
    pub ring: i32,
    /// [0] → u64: records that did not fit, forks that could not be followed.
    pub lost: i32,
}

/// Points `reg` at the stack slot `off`.
fn stack_ptr(a: &mut Asm, reg: Reg, off: i16) {
    a.mov(reg, R10).add_imm(reg, off.into());
}

/// Leaves (via `out`) unless the current task's tgid is followed. Keeps the current
/// `pid_tgid` in R8 and the tgid at `TGID_KEY`.
fn require_followed(a: &mut Asm, maps: &MapFds) {
    a.call(Helper::GetCurrentPidTgid)
        .mov(R8, R0)
        .rsh_imm(R0, 32)
        .store(Size::W, R10, TGID_KEY, R0)
        .load_map(R1, maps.followed);
    stack_ptr(a, R2, TGID_KEY);
    a.call(Helper::MapLookupElem)
        .jump_if(Cond::Eq, R0, 0, "out");
}

/// Leaves unless the call number in R7 is in the allowed array; keeps its value at
/// `CALL_FLAGS`.
fn require_allowed(a: &mut Asm, maps: &MapFds) {
    a.jump_if(Cond::Gt, R7, MAX_NR as i32 - 1, "out")
        .store(Size::W, R10, NR_KEY, R7)
        .load_map(R1, maps.allowed);
    stack_ptr(a, R2, NR_KEY);
    a.call(Helper::MapLookupElem)
        .jump_if(Cond::Eq, R0, 0, "out")
        .load(Size::W, R1, R0, 0)
        .jump_if(Cond::Eq, R1, 0, "out")
        .store(Size::W, R10, CALL_FLAGS, R1);
}

/// `R3 = *(u64 *)(R3 + field)`, leaving for `done` when the read fails or finds null.
fn follow_pointer(a: &mut Asm, field: u32, done: &'static str) {
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

/// Reads `len` bytes at `R7 + field` into the record in R9 at `at` (zeros if it fails).
fn read_into_record(a: &mut Asm, at: i32, len: i32, field: u32) {
    a.mov(R1, R9)
        .add_imm(R1, at)
        .mov_imm(R2, len)
        .mov(R3, R7)
        .add_imm(R3, field as i32)
        .call(Helper::ProbeReadKernel);
}

/// For a [`FD_FIRST`] call, the inode behind descriptor `args[0]` (the low half of `di`,
/// already in the record at 88) into the enter record in R9; zeros otherwise. Walks
/// `current->files->fdt`, checks the descriptor against `max_fds`, then
/// `fd[fd]->f_inode`. Uses R7 and R8 (the call number and ids are written by now).
fn read_fd_inode(a: &mut Asm, file: &FileOffsets) {
    const DONE: &str = "inode_done";
    a.store_imm(Size::DW, R9, 96, 0)
        .store_imm(Size::DW, R9, 104, 0)
        .load(Size::W, R1, R10, CALL_FLAGS)
        .jump_if(Cond::Ne, R1, FD_FIRST as i32, DONE)
        .load(Size::W, R8, R9, 32 + 56)
        .call(Helper::GetCurrentTask)
        .mov(R3, R0);
    follow_pointer(a, file.task_files, DONE);
    follow_pointer(a, file.files_fdt, DONE);
    if file.fdt_fd == file.fdt_max_fds + 8 {
        // `max_fds` and `fd` side by side (the usual layout): one read for both.
        stack_ptr(a, R1, MAX_FDS);
        a.mov_imm(R2, 16)
            .add_imm(R3, file.fdt_max_fds as i32)
            .call(Helper::ProbeReadKernel)
            .jump_if(Cond::Ne, R0, 0, DONE)
            .load(Size::W, R1, R10, MAX_FDS)
            .jump_if_reg(Cond::Le, R1, R8, DONE)
            .load(Size::DW, R3, R10, POINTER)
            .jump_if(Cond::Eq, R3, 0, DONE);
    } else {
        a.mov(R7, R3);
        stack_ptr(a, R1, MAX_FDS);
        a.mov_imm(R2, 4)
            .add_imm(R3, file.fdt_max_fds as i32)
            .call(Helper::ProbeReadKernel)
            .jump_if(Cond::Ne, R0, 0, DONE)
            .load(Size::W, R1, R10, MAX_FDS)
            .jump_if_reg(Cond::Le, R1, R8, DONE)
            .mov(R3, R7);
        follow_pointer(a, file.fdt_fd, DONE);
    }
    a.lsh_imm(R8, 3).add(R3, R8);
    follow_pointer(a, 0, DONE);
    follow_pointer(a, file.file_inode, DONE);
    a.mov(R7, R3);
    read_into_record(a, 104, 2, file.inode_mode);
    read_into_record(a, 96, 8, file.inode_ino);
    a.label(DONE);
}

/// Reserves `size` bytes of the ring into R9 (or counts a lost record and leaves), and
/// writes the common part: kind, tid and tgid from R8 (`pid_tgid`), the time.
fn reserve(a: &mut Asm, maps: &MapFds, plan: &Plan, kind: u32, size: usize) {
    a.load_map(R1, maps.ring)
        .mov_imm(R2, size as i32)
        .mov_imm(R3, 0)
        .call(Helper::RingbufReserve)
        .jump_if(Cond::Eq, R0, 0, "lost")
        .mov(R9, R0)
        .store_imm(Size::W, R9, 0, kind as i32)
        .store(Size::W, R9, 4, R8)
        .rsh_imm(R8, 32)
        .store(Size::W, R9, 8, R8);
    if plan.stage == Stage::Ktime || plan.stage == Stage::Full || kind > KIND_EXIT {
        a.call(Helper::KtimeGetNs).store(Size::DW, R9, 16, R0);
    }
}

/// `lost[0] += 1`, then on to `next`.
fn count_lost(a: &mut Asm, maps: &MapFds, next: &'static str) {
    a.store_imm(Size::W, R10, LOST_KEY, 0)
        .load_map(R1, maps.lost);
    stack_ptr(a, R2, LOST_KEY);
    a.call(Helper::MapLookupElem)
        .jump_if(Cond::Eq, R0, 0, next)
        .mov_imm(R1, 1)
        .atomic_add64(R0, 0, R1)
        .jump(next);
}

/// Submits the record in R9, returns 0; the `lost` path counts and returns 0.
fn submit_and_return(a: &mut Asm, maps: &MapFds, plan: &Plan) {
    match plan.wakeup {
        Wakeup::WhenEmpty => {
            a.mov_imm(R2, 0);
        }
        Wakeup::Never => {
            a.mov_imm(R2, BPF_RB_NO_WAKEUP);
        }
        Wakeup::Always => {
            a.mov_imm(R2, BPF_RB_FORCE_WAKEUP);
        }
        Wakeup::PastQuarter => {
            a.load_map(R1, maps.ring)
                .mov_imm(R2, BPF_RB_AVAIL_DATA)
                .call(Helper::RingbufQuery)
                .mov_imm(R2, BPF_RB_NO_WAKEUP)
                .jump_if(Cond::Le, R0, (plan.ring_bytes / 4) as i32, "submit")
                .mov_imm(R2, BPF_RB_FORCE_WAKEUP)
                .label("submit");
        }
    }
    a.mov(R1, R9).call(Helper::RingbufSubmit);
    a.label("out").mov_imm(R0, 0).exit();
    a.label("lost");
    count_lost(a, maps, "out");
}

/// `raw_syscalls:sys_enter(regs, id)`.
pub fn sys_enter(maps: &MapFds, plan: &Plan, file: &FileOffsets) -> Result<Vec<Insn>, AsmError> {
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
    reserve(&mut a, maps, plan, KIND_ENTER, ENTER_SIZE);
    a.store(Size::DW, R9, 24, R7);
    if plan.stage == Stage::Full {
        a.mov(R1, R9)
            .add_imm(R1, 32)
            .mov_imm(R2, REGS_BLOCK_LEN)
            .load(Size::DW, R3, R6, 0)
            .add_imm(R3, REGS_BLOCK)
            .call(Helper::ProbeReadKernel);
        read_fd_inode(&mut a, file);
    }
    submit_and_return(&mut a, maps, plan);
    a.finish()
}

/// `raw_syscalls:sys_exit(regs, ret)`.
pub fn sys_exit(maps: &MapFds, plan: &Plan) -> Result<Vec<Insn>, AsmError> {
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
    reserve(&mut a, maps, plan, KIND_EXIT, EXIT_SIZE);
    a.store(Size::DW, R9, 24, R7)
        .load(Size::DW, R1, R6, 8)
        .store(Size::DW, R9, 32, R1);
    submit_and_return(&mut a, maps, plan);
    a.finish()
}

/// Reads the 4-byte field at `field` of the task in R7 into the stack slot `slot`.
fn read_task_u32(a: &mut Asm, field: u32, slot: i16) {
    stack_ptr(a, R1, slot);
    a.mov_imm(R2, 4)
        .mov(R3, R7)
        .add_imm(R3, field as i32)
        .call(Helper::ProbeReadKernel)
        .jump_if(Cond::Ne, R0, 0, "out");
}

/// `sched:sched_process_fork(parent, child)`, fired in the parent: a new process of a
/// followed one is followed too (threads already are: the key is the tgid).
pub fn sched_process_fork(
    maps: &MapFds,
    plan: &Plan,
    task: &TaskOffsets,
) -> Result<Vec<Insn>, AsmError> {
    let mut a = Asm::new();
    a.mov(R6, R1);
    require_followed(&mut a, maps);
    a.load(Size::DW, R7, R6, 8);
    read_task_u32(&mut a, task.pid, SCRATCH);
    read_task_u32(&mut a, task.tgid, SCRATCH2);
    a.load(Size::W, R1, R10, SCRATCH)
        .load(Size::W, R2, R10, SCRATCH2)
        .jump_if_reg(Cond::Ne, R1, R2, "record")
        .store_imm(Size::W, R10, ONE, 1)
        .load_map(R1, maps.followed);
    stack_ptr(&mut a, R2, SCRATCH2);
    stack_ptr(&mut a, R3, ONE);
    a.mov_imm(R4, 0)
        .call(Helper::MapUpdateElem)
        .jump_if(Cond::Eq, R0, 0, "record");
    // The map is full: this process will not be followed, which is lost records.
    count_lost(&mut a, maps, "record");
    a.label("record");
    reserve(&mut a, maps, plan, KIND_FORK, FORK_SIZE);
    a.load(Size::W, R1, R10, SCRATCH)
        .store(Size::W, R9, 24, R1)
        .load(Size::W, R1, R10, SCRATCH2)
        .store(Size::W, R9, 28, R1);
    submit_and_return(&mut a, maps, plan);
    a.finish()
}

/// `sched:sched_process_exit(task, group_dead)`, fired in the exiting thread: the last thread
/// of a followed process records the process's status and unfollows it.
pub fn sched_process_exit(
    maps: &MapFds,
    plan: &Plan,
    task: &TaskOffsets,
) -> Result<Vec<Insn>, AsmError> {
    let mut a = Asm::new();
    a.mov(R6, R1);
    require_followed(&mut a, maps);
    a.load(Size::DW, R1, R6, 8)
        .jump_if(Cond::Eq, R1, 0, "out")
        .load_map(R1, maps.followed);
    stack_ptr(&mut a, R2, TGID_KEY);
    a.call(Helper::MapDeleteElem).load(Size::DW, R7, R6, 0);
    read_task_u32(&mut a, task.exit_code, SCRATCH);
    reserve(&mut a, maps, plan, KIND_PROCESS_EXIT, PROCESS_EXIT_SIZE);
    a.load(Size::W, R1, R10, SCRATCH).store(Size::W, R9, 24, R1);
    submit_and_return(&mut a, maps, plan);
    a.finish()
}

/// `sched:sched_process_exec(task, old_pid, bprm)`, fired in the task that called execve once
/// the new program has replaced the old (a successful exec only).
pub fn sched_process_exec(maps: &MapFds, plan: &Plan) -> Result<Vec<Insn>, AsmError> {
    let mut a = Asm::new();
    a.mov(R6, R1);
    require_followed(&mut a, maps);
    reserve(&mut a, maps, plan, KIND_EXEC, EXEC_SIZE);
    a.load(Size::DW, R1, R6, 8).store(Size::W, R9, 24, R1);
    submit_and_return(&mut a, maps, plan);
    a.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn maps() -> MapFds {
        MapFds {
            followed: 3,
            allowed: 4,
            ring: 5,
            lost: 6,
        }
    }

    fn plan() -> Plan {
        Plan {
            stage: Stage::Full,
            wakeup: Wakeup::PastQuarter,
            ring_bytes: 1 << 20,
        }
    }

    fn file() -> FileOffsets {
        FileOffsets {
            task_files: 1824,
            files_fdt: 32,
            fdt_max_fds: 0,
            fdt_fd: 8,
            file_inode: 32,
            inode_mode: 0,
            inode_ino: 64,
        }
    }

    #[test]
    fn all_programs_assemble_into_short_programs() {
        let task = TaskOffsets {
            pid: 100,
            tgid: 104,
            exit_code: 90,
        };
        for p in [
            sys_enter(&maps(), &plan(), &file()),
            sys_exit(&maps(), &plan()),
            sched_process_fork(&maps(), &plan(), &task),
            sched_process_exit(&maps(), &plan(), &task),
            sched_process_exec(&maps(), &plan()),
        ] {
            let p = p.unwrap();
            assert!(p.len() < 150, "{} instructions", p.len());
            assert_eq!(
                p.last().map(|i| i.code),
                Some(0x05),
                "ends with the lost path's jump"
            );
        }
    }

    #[test]
    fn sys_enter_filters_by_call_number_before_anything_else() {
        let p = sys_enter(&maps(), &plan(), &file()).unwrap();
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
    fn max_fds_apart_from_the_fd_array_takes_a_read_of_its_own() {
        let reads = |file: &FileOffsets| {
            sys_enter(&maps(), &plan(), file)
                .unwrap()
                .iter()
                .filter(|i| i.code == 0x85 && i.imm == Helper::ProbeReadKernel as i32)
                .count()
        };
        let apart = FileOffsets {
            fdt_fd: 16,
            ..file()
        };
        assert_eq!((reads(&file()), reads(&apart)), (8, 9));
    }

    #[test]
    fn records_wake_the_consumer_only_past_a_quarter_of_the_ring() {
        let p = sys_exit(&maps(), &plan()).unwrap();
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
            let plan = Plan {
                stage,
                wakeup,
                ring_bytes: 1 << 20,
            };
            sys_enter(&maps(), &plan, &file())
                .unwrap()
                .iter()
                .filter(|i| i.code == 0x85)
                .map(|i| i.imm)
                .collect::<Vec<_>>()
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
        // The lost path's lookup comes last.
        assert_eq!(
            calls(Stage::Reserve, Wakeup::Never),
            vec![lookup, pid, lookup, reserve, submit, lookup]
        );
        let task = Helper::GetCurrentTask as i32;
        // The register copy, then the walk: files, fdt, max_fds with the fd array (side by
        // side), file, inode, then i_mode and i_ino.
        let mut full = vec![lookup, pid, lookup, reserve, ktime, read, task];
        full.extend([read; 7]);
        full.extend([submit, lookup]);
        assert_eq!(calls(Stage::Full, Wakeup::WhenEmpty), full);
    }
}
