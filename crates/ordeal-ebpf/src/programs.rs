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
//! The system-call programs (`syscalls`) have two paths, chosen by the call's flags in the
//! allowed array (`callplan`): the short one writes a fixed-size record, as cheap as it can
//! be (a transfer without payload capture, every call not in the call table); the longer
//! one, for calls whose flags ask for copies, writes the same fixed part followed by
//! sections and blobs (`capture`) into a buffer of fixed capacity, then hands the used part
//! to the ring ([`Copies`]).
//!
//! Records (little-endian, 8-byte aligned), common part: `kind: u32 @0, tid: u32 @4,
//! tgid: u32 @8, ktime_ns: u64 @16` (bpf_ktime_get_ns: CLOCK_MONOTONIC), then by kind:
//! - enter: `nr: u64 @24`, then 64 bytes @32 copied from `struct pt_regs` at 56..120
//!   (x86_64: r10, r9, r8, ax, cx, dx, si, di; the arguments are di, si, dx, r10, r8, r9),
//!   then, for a call whose first argument is a descriptor (`FD_FIRST`), the inode behind
//!   it: `ino: u64 @96, i_mode: u16 @104` (zeros when the call has no descriptor or the walk
//!   from the task to the inode fails: a closed descriptor). [`ENTER_SIZE`] (112) bytes.
//!   With copies: `end: u32 @12` (the bytes used), a socket section @112 (for a socket
//!   lifecycle call on a socket; family 0: none), blobs from @176 ([`ENTER_FIXED`]) to `end`,
//!   in this order as the call has them: its paths (path, then path2), the socket address
//!   given, the iovec array, the msghdr then its iovec array and the address it names (a
//!   send), the first payload bytes (a send on a socket);
//! - exit: `nr: u64 @24, ret: u64 @32`, [`EXIT_SIZE`] (40) bytes. With copies: `end: u32
//!   @12`, the file the call returned or worked on, `ino: u64 @40, i_mode: u16 @48` (ino 0:
//!   none), its socket section @56, blobs from @120 ([`EXIT_FIXED`]) to `end`, in this order
//!   as the call has them: socketpair's two descriptors (8 bytes); the inputs again, as at
//!   entry, when one failed there; the length then the address a call wrote (accept,
//!   recvfrom); a receive's msghdr then the address it names; a receive's first iovec (16
//!   bytes: of an iovec array or of the msghdr) then its first payload bytes;
//! - fork: `child_tid: u32 @24, child_tgid: u32 @28`;
//! - process exit: `status: u32 @24` (the wait(2)-style status);
//! - exec: `old_tid: u32 @24` (the thread that called execve: after it, tid = tgid).
//!
//! A socket section (64 bytes, `walk::sock_section`): `family: u16 @0, sk_type: u16 @2,
//! dport: u16 @4` (network order), `num: u16 @6` (the local port, host order), `daddr:
//! [u8; 4] @8, rcv_saddr: [u8; 4] @12, v6_daddr: [u8; 16] @16, v6_rcv_saddr: [u8; 16] @32,
//! peer_ino: u64 @48`: the v4 addresses for AF_INET, the v6 ones for AF_INET6, the peer's
//! inode for AF_UNIX, zeros elsewhere.
//!
//! A blob is `addr: u64, len: u32, 0: u32`, then `len` bytes of the tracee's memory at
//! `addr`, padded to 8. A path is copied with its NUL when it fits 256 bytes, else as its
//! first 256 bytes (no NUL); a socket address up to 128 bytes (bounded by its length
//! argument); an iovec array up to 64 entries. Past `end`, a record written in place
//! ([`Copies::ReserveLargest`]) has unused bytes up to its reserved size.

use crate::asm::{Asm, AsmError, Cond, Helper, Insn, Reg, Size};
use crate::btf::TaskOffsets;
use crate::capture::{self, Frame, CURSOR, SLOTS, VALUE_PTR};
use crate::walk::{stack_ptr, SOCK_SECTION};
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

/// An enter record with copies: its socket section, where its blobs start.
pub const ENTER_SOCK_AT: usize = ENTER_SIZE;
pub const ENTER_FIXED: usize = ENTER_SOCK_AT + SOCK_SECTION as usize;
/// An exit record with copies: its file (`ino`, `i_mode`), socket section, blobs.
pub const EXIT_FILE_AT: usize = EXIT_SIZE;
pub const EXIT_SOCK_AT: usize = EXIT_FILE_AT + 16;
pub const EXIT_FIXED: usize = EXIT_SOCK_AT + SOCK_SECTION as usize;

/// The counters' indexes (`MapFds::lost`).
pub const LOST: u32 = 0;
pub const PENDING: u32 = 1;
pub const COUNTERS: u32 = 2;

/// Size of the allowed-calls array: call numbers at or above are never recorded.
pub const MAX_NR: u32 = 512;

/// x86_64 `struct pt_regs`: where the copied block starts, and `orig_ax` (the call number).
pub const REGS_BLOCK: i32 = 56;
pub const REGS_BLOCK_LEN: i32 = 64;
pub const ORIG_AX: i32 = 120;
/// The enter record: where the register block is.
pub const ENTER_REGS_AT: i16 = 32;

// Stack slots (offsets from the frame pointer R10); -48..-32 are the walk's (`walk`), -56
// the allowed-array value pointer (`capture::VALUE_PTR`), -80..-56 the system-call
// programs' (`syscalls`).
pub const LOST_KEY: i16 = -4;
pub const TGID_KEY: i16 = -8;
pub const SCRATCH: i16 = -16;
pub const SCRATCH2: i16 = -12;
pub const ONE: i16 = -20;
pub const NR_KEY: i16 = -24;
pub const CALL_FLAGS: i16 = -28;

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
    /// And, on enter, the 64-byte register copy and the descriptor's inode; the copies the
    /// call's flags ask for.
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

/// How a record with copies reaches the ring.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Copies {
    /// Written in a per-CPU scratch buffer, then its used part copied to the ring
    /// (`bpf_ringbuf_output`): a record takes the room it needs.
    #[default]
    Scratch,
    /// Written in place in a ring reservation of the largest size a record can have: no
    /// copy, but every such record takes that room.
    ReserveLargest,
}

pub const BPF_RB_NO_WAKEUP: i32 = 1;
pub const BPF_RB_FORCE_WAKEUP: i32 = 2;
const BPF_RB_AVAIL_DATA: i32 = 0;

/// What the programs do beyond their maps.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    pub stage: Stage,
    pub wakeup: Wakeup,
    pub copies: Copies,
    pub ring_bytes: usize,
    /// Payload bytes copied from transfers (0: none).
    pub payload_bytes: usize,
    /// Bytes of blobs an enter / exit record can carry, at most, over the recorded calls
    /// (`CallPlan::enter_copies`, `exit_copies`).
    pub enter_copies: usize,
    pub exit_copies: usize,
    /// Every flag some recorded call has: the code for the others is left out.
    pub flags: u32,
}

impl Plan {
    /// The buffer of an enter record with copies: the register block is in the record.
    pub fn enter_frame(&self) -> Frame {
        let blobs_end = (ENTER_FIXED + self.enter_copies) as i32;
        Frame {
            cap: blobs_end + SLOTS,
            blobs_end,
            regs_at: ENTER_REGS_AT.into(),
            slots_at: blobs_end,
        }
    }

    /// The buffer of an exit record with copies: the register block (read at exit, where
    /// x86_64's `pt_regs` still holds the arguments) past the blobs, then the slots.
    pub fn exit_frame(&self) -> Frame {
        let blobs_end = (EXIT_FIXED + self.exit_copies) as i32;
        Frame {
            cap: blobs_end + REGS_BLOCK_LEN + SLOTS,
            blobs_end,
            regs_at: blobs_end,
            slots_at: blobs_end + REGS_BLOCK_LEN,
        }
    }

    /// The call's flags as the copying code sees them.
    pub fn call_flags(&self) -> capture::Flags {
        capture::Flags {
            slot: CALL_FLAGS,
            any: self.flags,
        }
    }

    pub fn payload(&self) -> i32 {
        self.payload_bytes as i32
    }

    /// Size of the per-CPU scratch buffer ([`Copies::Scratch`]).
    pub fn scratch_bytes(&self) -> u32 {
        self.enter_frame().cap.max(self.exit_frame().cap) as u32
    }
}

/// The maps the programs use, by descriptor.
#[derive(Debug, Clone, Copy)]
pub struct MapFds {
    /// tgid (u32) → u32: the followed processes.
    pub followed: i32,
    /// call number (u32) → [`cp::VALUE_SIZE`] bytes: the call's flags (0: not recorded) and
    /// argument roles (`callplan`).
    pub allowed: i32,
    pub ring: i32,
    /// [`LOST`] → u64: records that did not fit, forks that could not be followed;
    /// [`PENDING`] → u64: threads marked in `retry` whose exit has not taken the mark back.
    pub lost: i32,
    /// Per-CPU [0] → [`Plan::scratch_bytes`] bytes ([`Copies::Scratch`]; else unused).
    pub scratch: i32,
    /// LRU tid (u32) → u32: threads whose call's input copies failed at entry
    /// (`callplan::ENTER_RETRY`; unused when no call has copies at entry).
    pub retry: i32,
}

/// Leaves (via `out`) unless the current task's tgid is followed. Keeps the current
/// `pid_tgid` in R8 and the tgid at `TGID_KEY`.
pub fn require_followed(a: &mut Asm, maps: &MapFds) {
    a.call(Helper::GetCurrentPidTgid)
        .mov(R8, R0)
        .rsh_imm(R0, 32)
        .store(Size::W, R10, TGID_KEY, R0)
        .load_map(R1, maps.followed);
    stack_ptr(a, R2, TGID_KEY);
    a.call(Helper::MapLookupElem)
        .jump_if(Cond::Eq, R0, 0, "out");
}

/// Leaves unless the call number in R7 is in the allowed array; keeps its flags at
/// `CALL_FLAGS` and its value's address at `VALUE_PTR`.
pub fn require_allowed(a: &mut Asm, maps: &MapFds) {
    a.jump_if(Cond::Gt, R7, MAX_NR as i32 - 1, "out")
        .store(Size::W, R10, NR_KEY, R7)
        .load_map(R1, maps.allowed);
    stack_ptr(a, R2, NR_KEY);
    a.call(Helper::MapLookupElem)
        .jump_if(Cond::Eq, R0, 0, "out")
        .load(Size::W, R1, R0, 0)
        .jump_if(Cond::Eq, R1, 0, "out")
        .store(Size::W, R10, CALL_FLAGS, R1)
        .store(Size::DW, R10, VALUE_PTR, R0);
}

/// Reserves `size` bytes of the ring into R9 (or counts a lost record and leaves), and
/// writes the common part.
pub fn reserve(a: &mut Asm, maps: &MapFds, plan: &Plan, kind: u32, size: usize) {
    a.load_map(R1, maps.ring)
        .mov_imm(R2, size as i32)
        .mov_imm(R3, 0)
        .call(Helper::RingbufReserve)
        .jump_if(Cond::Eq, R0, 0, "lost")
        .mov(R9, R0);
    header(a, plan, kind);
}

/// Writes the common part in R9: kind, tid and tgid from R8 (`pid_tgid`), the time.
pub fn header(a: &mut Asm, plan: &Plan, kind: u32) {
    a.store_imm(Size::W, R9, 0, kind as i32)
        .store(Size::W, R9, 4, R8)
        .rsh_imm(R8, 32)
        .store(Size::W, R9, 8, R8);
    if plan.stage == Stage::Ktime || plan.stage == Stage::Full || kind > KIND_EXIT {
        a.call(Helper::KtimeGetNs).store(Size::DW, R9, 16, R0);
    }
}

/// R9 = a buffer of `frame.cap` bytes for a record with copies, its common part written,
/// its cursor at `fixed`, its work slots zeroed.
pub fn acquire(a: &mut Asm, maps: &MapFds, plan: &Plan, kind: u32, frame: &Frame, fixed: usize) {
    match plan.copies {
        Copies::ReserveLargest => {
            a.load_map(R1, maps.ring)
                .mov_imm(R2, frame.cap)
                .mov_imm(R3, 0)
                .call(Helper::RingbufReserve)
                .jump_if(Cond::Eq, R0, 0, "lost");
        }
        Copies::Scratch => {
            a.store_imm(Size::W, R10, LOST_KEY, 0)
                .load_map(R1, maps.scratch);
            stack_ptr(a, R2, LOST_KEY);
            a.call(Helper::MapLookupElem)
                .jump_if(Cond::Eq, R0, 0, "out");
        }
    }
    a.mov(R9, R0);
    header(a, plan, kind);
    a.store_imm(Size::W, R9, CURSOR, fixed as i32);
    for i in (0..SLOTS).step_by(8) {
        a.store_imm(Size::DW, R9, (frame.slots_at + i) as i16, 0);
    }
}

/// `counters[LOST] += 1`, then on to `next`.
pub fn count_lost(a: &mut Asm, maps: &MapFds, next: &str) {
    a.store_imm(Size::W, R10, LOST_KEY, LOST as i32)
        .load_map(R1, maps.lost);
    stack_ptr(a, R2, LOST_KEY);
    a.call(Helper::MapLookupElem)
        .jump_if(Cond::Eq, R0, 0, next)
        .mov_imm(R1, 1)
        .atomic_add64(R0, 0, R1)
        .jump(next);
}

/// `reg =` the ring flags of a record, per the wakeup policy.
pub fn wakeup_flags(a: &mut Asm, maps: &MapFds, plan: &Plan, reg: Reg) {
    match plan.wakeup {
        Wakeup::WhenEmpty => {
            a.mov_imm(reg, 0);
        }
        Wakeup::Never => {
            a.mov_imm(reg, BPF_RB_NO_WAKEUP);
        }
        Wakeup::Always => {
            a.mov_imm(reg, BPF_RB_FORCE_WAKEUP);
        }
        Wakeup::PastQuarter => {
            let quiet = a.fresh("quiet");
            a.load_map(R1, maps.ring)
                .mov_imm(R2, BPF_RB_AVAIL_DATA)
                .call(Helper::RingbufQuery)
                .mov_imm(reg, BPF_RB_NO_WAKEUP)
                .jump_if(Cond::Le, R0, (plan.ring_bytes / 4) as i32, &quiet)
                .mov_imm(reg, BPF_RB_FORCE_WAKEUP)
                .label(&quiet);
        }
    }
}

/// Submits the record in R9 (label `submit`), returns 0; the `lost` path counts and
/// returns 0.
pub fn submit_and_return(a: &mut Asm, maps: &MapFds, plan: &Plan) {
    a.label("submit");
    wakeup_flags(a, maps, plan, R2);
    a.mov(R1, R9).call(Helper::RingbufSubmit);
    a.label("out").mov_imm(R0, 0).exit();
    a.label("lost");
    count_lost(a, maps, "out");
}

/// Hands the record with copies in R9 to the ring: submits it in place, or copies its used
/// part (`end` bytes) from the scratch buffer.
pub fn finish_copies(a: &mut Asm, maps: &MapFds, plan: &Plan, frame: &Frame) {
    match plan.copies {
        Copies::ReserveLargest => {
            a.jump("submit");
        }
        Copies::Scratch => {
            wakeup_flags(a, maps, plan, R4);
            a.load_map(R1, maps.ring)
                .mov(R2, R9)
                .load(Size::W, R3, R9, CURSOR)
                .jump_if(Cond::Gt, R3, frame.cap, "out")
                .call(Helper::RingbufOutput)
                .jump_if(Cond::SLt, R0, 0, "lost")
                .jump("out");
        }
    }
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
pub mod tests {
    use super::*;
    use crate::btf::SockOffsets;
    use crate::btf::{FileOffsets, KernelOffsets};
    use crate::syscalls::{sys_enter, sys_exit};

    pub fn maps() -> MapFds {
        MapFds {
            followed: 3,
            allowed: 4,
            ring: 5,
            lost: 6,
            scratch: 7,
            retry: 8,
        }
    }

    pub fn plan_with(stage: Stage, wakeup: Wakeup, copies: Copies) -> Plan {
        Plan {
            stage,
            wakeup,
            copies,
            ring_bytes: 1 << 20,
            payload_bytes: 64,
            enter_copies: 1400,
            exit_copies: 1800,
            flags: !0,
        }
    }

    pub fn plan() -> Plan {
        plan_with(Stage::Full, Wakeup::PastQuarter, Copies::Scratch)
    }

    pub fn kernel() -> KernelOffsets {
        KernelOffsets {
            task: TaskOffsets {
                pid: 100,
                tgid: 104,
                exit_code: 90,
            },
            file: FileOffsets {
                task_files: 1824,
                files_fdt: 32,
                fdt_max_fds: 0,
                fdt_fd: 8,
                file_inode: 32,
                inode_mode: 0,
                inode_ino: 64,
            },
            sock: SockOffsets {
                file_private: 24,
                socket_sk: 24,
                family: 16,
                sk_type: 534,
                daddr: 0,
                rcv_saddr: 4,
                dport: 12,
                num: 14,
                v6_daddr: 56,
                v6_rcv_saddr: 72,
                sk_socket: 288,
                unix_peer: 872,
                socket_to_ino: 192,
            },
        }
    }

    pub fn helper_calls(p: &[Insn]) -> Vec<i32> {
        p.iter().filter(|i| i.code == 0x85).map(|i| i.imm).collect()
    }

    /// The instructions up to the short path's return (the first `exit`).
    pub fn short_path(p: &[Insn]) -> &[Insn] {
        let end = p.iter().position(|i| i.code == 0x95).unwrap();
        &p[..=end]
    }

    #[test]
    fn all_programs_assemble_with_short_common_paths() {
        let k = kernel();
        for p in [
            sched_process_fork(&maps(), &plan(), &k.task),
            sched_process_exit(&maps(), &plan(), &k.task),
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
        for copies in [Copies::Scratch, Copies::ReserveLargest] {
            let plan = plan_with(Stage::Full, Wakeup::PastQuarter, copies);
            for p in [
                sys_enter(&maps(), &plan, &k).unwrap(),
                sys_exit(&maps(), &plan, &k).unwrap(),
            ] {
                assert!(short_path(&p).len() < 150, "{}", short_path(&p).len());
                assert!(p.len() < 1500, "{} instructions", p.len());
                assert_eq!(p.last().map(|i| i.code), Some(0x05));
            }
        }
    }

    #[test]
    fn frames_hold_the_fixed_part_the_largest_copies_and_the_work_area() {
        let plan = plan();
        assert_eq!(
            plan.enter_frame(),
            Frame {
                cap: 176 + 1400 + 16,
                blobs_end: 176 + 1400,
                regs_at: 32,
                slots_at: 176 + 1400,
            }
        );
        assert_eq!(
            plan.exit_frame(),
            Frame {
                cap: 120 + 1800 + 64 + 16,
                blobs_end: 120 + 1800,
                regs_at: 120 + 1800,
                slots_at: 120 + 1800 + 64,
            }
        );
        assert_eq!(plan.scratch_bytes(), 120 + 1800 + 64 + 16);
    }
}
