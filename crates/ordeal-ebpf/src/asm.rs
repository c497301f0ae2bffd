//! A small eBPF instruction builder: one method per instruction form the programs use, jumps
//! to named labels resolved by [`Asm::finish`].
//!
//! Encoding (`struct bpf_insn`): opcode byte, destination register in the low nibble and
//! source register in the high nibble of the second byte, a signed 16-bit offset, a signed
//! 32-bit immediate.

use std::collections::HashMap;

/// One encoded instruction, laid out as the kernel's `struct bpf_insn`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    pub code: u8,
    /// `dst | src << 4`.
    pub regs: u8,
    pub off: i16,
    pub imm: i32,
}

/// eBPF registers: R0 return value, R1-R5 call arguments (clobbered by calls), R6-R9 kept
/// across calls, R10 the read-only frame pointer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(dead_code)] // the full register file, named for readability
pub enum Reg {
    R0 = 0,
    R1,
    R2,
    R3,
    R4,
    R5,
    R6,
    R7,
    R8,
    R9,
    R10,
}

/// Width of a memory access.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Size {
    B = 0x10,
    H = 0x08,
    W = 0x00,
    DW = 0x18,
}

/// Conditional jumps: unsigned comparisons, and signed ones (`S`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cond {
    Eq = 0x10,
    Gt = 0x20,
    Ne = 0x50,
    Lt = 0xa0,
    Le = 0xb0,
    SLt = 0xc0,
    SLe = 0xd0,
}

/// Kernel helper functions called by number (`enum bpf_func_id`, include/uapi/linux/bpf.h).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Helper {
    MapLookupElem = 1,
    MapUpdateElem = 2,
    MapDeleteElem = 3,
    KtimeGetNs = 5,
    GetCurrentPidTgid = 14,
    GetCurrentTask = 35,
    ProbeReadUser = 112,
    ProbeReadKernel = 113,
    ProbeReadUserStr = 114,
    RingbufOutput = 130,
    RingbufReserve = 131,
    RingbufSubmit = 132,
    RingbufDiscard = 133,
    RingbufQuery = 134,
}

const CLASS_LD: u8 = 0x00;
const CLASS_LDX: u8 = 0x01;
const CLASS_ST: u8 = 0x02;
const CLASS_STX: u8 = 0x03;
const CLASS_JMP: u8 = 0x05;
const CLASS_ALU: u8 = 0x04;
const CLASS_ALU64: u8 = 0x07;
const MODE_IMM: u8 = 0x00;
const MODE_MEM: u8 = 0x60;
const MODE_ATOMIC: u8 = 0xc0;
const SRC_K: u8 = 0x00;
const SRC_X: u8 = 0x08;
const ALU_ADD: u8 = 0x00;
const ALU_AND: u8 = 0x50;
const ALU_LSH: u8 = 0x60;
const ALU_RSH: u8 = 0x70;
const ALU_MOV: u8 = 0xb0;
const JMP_JA: u8 = 0x00;
const JMP_CALL: u8 = 0x80;
const JMP_EXIT: u8 = 0x90;
/// `src_reg` of a 64-bit immediate load that names a map by file descriptor.
const PSEUDO_MAP_FD: u8 = 1;

/// A jump to a label that [`Asm::finish`] could not place.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AsmError {
    #[error("jump to undefined label `{0}`")]
    UndefinedLabel(String),
    #[error("label `{0}` defined twice")]
    DuplicateLabel(String),
    #[error("jump to `{0}` does not fit 16 bits")]
    TooFar(String),
}

/// Builds one program.
#[derive(Debug, Default)]
pub struct Asm {
    insns: Vec<Insn>,
    labels: HashMap<String, usize>,
    duplicate: Option<String>,
    /// (index of the jump, its target label).
    jumps: Vec<(usize, String)>,
    /// Labels made by [`Asm::fresh`] so far.
    fresh: usize,
}

fn regs(dst: Reg, src: Reg) -> u8 {
    dst as u8 | (src as u8) << 4
}

impl Asm {
    pub fn new() -> Asm {
        Asm::default()
    }

    fn push(&mut self, code: u8, dst: Reg, src: Reg, off: i16, imm: i32) -> &mut Self {
        self.insns.push(Insn {
            code,
            regs: regs(dst, src),
            off,
            imm,
        });
        self
    }

    /// `dst = src`
    pub fn mov(&mut self, dst: Reg, src: Reg) -> &mut Self {
        self.push(CLASS_ALU64 | ALU_MOV | SRC_X, dst, src, 0, 0)
    }
    /// `dst = (u32) src` (the upper half cleared)
    pub fn mov32(&mut self, dst: Reg, src: Reg) -> &mut Self {
        self.push(CLASS_ALU | ALU_MOV | SRC_X, dst, src, 0, 0)
    }
    /// `dst = imm` (sign-extended)
    pub fn mov_imm(&mut self, dst: Reg, imm: i32) -> &mut Self {
        self.push(CLASS_ALU64 | ALU_MOV | SRC_K, dst, Reg::R0, 0, imm)
    }
    /// `dst += imm`
    pub fn add_imm(&mut self, dst: Reg, imm: i32) -> &mut Self {
        self.push(CLASS_ALU64 | ALU_ADD | SRC_K, dst, Reg::R0, 0, imm)
    }
    /// `dst += src`
    pub fn add(&mut self, dst: Reg, src: Reg) -> &mut Self {
        self.push(CLASS_ALU64 | ALU_ADD | SRC_X, dst, src, 0, 0)
    }
    /// `dst &= imm` (sign-extended)
    pub fn and_imm(&mut self, dst: Reg, imm: i32) -> &mut Self {
        self.push(CLASS_ALU64 | ALU_AND | SRC_K, dst, Reg::R0, 0, imm)
    }
    /// `dst <<= imm`
    pub fn lsh_imm(&mut self, dst: Reg, imm: i32) -> &mut Self {
        self.push(CLASS_ALU64 | ALU_LSH | SRC_K, dst, Reg::R0, 0, imm)
    }
    /// `dst >>= imm` (logical)
    pub fn rsh_imm(&mut self, dst: Reg, imm: i32) -> &mut Self {
        self.push(CLASS_ALU64 | ALU_RSH | SRC_K, dst, Reg::R0, 0, imm)
    }
    /// `dst = *(size *)(src + off)`
    pub fn load(&mut self, size: Size, dst: Reg, src: Reg, off: i16) -> &mut Self {
        self.push(CLASS_LDX | MODE_MEM | size as u8, dst, src, off, 0)
    }
    /// `*(size *)(dst + off) = src`
    pub fn store(&mut self, size: Size, dst: Reg, off: i16, src: Reg) -> &mut Self {
        self.push(CLASS_STX | MODE_MEM | size as u8, dst, src, off, 0)
    }
    /// `*(size *)(dst + off) = imm`
    pub fn store_imm(&mut self, size: Size, dst: Reg, off: i16, imm: i32) -> &mut Self {
        self.push(CLASS_ST | MODE_MEM | size as u8, dst, Reg::R0, off, imm)
    }
    /// `lock *(u64 *)(dst + off) += src`
    pub fn atomic_add64(&mut self, dst: Reg, off: i16, src: Reg) -> &mut Self {
        self.push(CLASS_STX | MODE_ATOMIC | Size::DW as u8, dst, src, off, 0)
    }
    /// `dst = map` (a 64-bit immediate load the kernel rewrites into the map's address;
    /// two instruction slots).
    pub fn load_map(&mut self, dst: Reg, map_fd: i32) -> &mut Self {
        let code = CLASS_LD | MODE_IMM | Size::DW as u8;
        self.insns.push(Insn {
            code,
            regs: dst as u8 | PSEUDO_MAP_FD << 4,
            off: 0,
            imm: map_fd,
        });
        self.insns.push(Insn {
            code: 0,
            regs: 0,
            off: 0,
            imm: 0,
        });
        self
    }
    /// `r0 = helper(r1, ..., r5)`
    pub fn call(&mut self, helper: Helper) -> &mut Self {
        self.push(CLASS_JMP | JMP_CALL, Reg::R0, Reg::R0, 0, helper as i32)
    }
    /// `if reg <cond> imm goto label`
    pub fn jump_if(&mut self, cond: Cond, reg: Reg, imm: i32, label: &str) -> &mut Self {
        self.jumps.push((self.insns.len(), label.to_string()));
        self.push(CLASS_JMP | cond as u8 | SRC_K, reg, Reg::R0, 0, imm)
    }
    /// `if a <cond> b goto label`
    pub fn jump_if_reg(&mut self, cond: Cond, a: Reg, b: Reg, label: &str) -> &mut Self {
        self.jumps.push((self.insns.len(), label.to_string()));
        self.push(CLASS_JMP | cond as u8 | SRC_X, a, b, 0, 0)
    }
    /// `goto label`
    pub fn jump(&mut self, label: &str) -> &mut Self {
        self.jumps.push((self.insns.len(), label.to_string()));
        self.push(CLASS_JMP | JMP_JA, Reg::R0, Reg::R0, 0, 0)
    }
    /// `return r0`
    pub fn exit(&mut self) -> &mut Self {
        self.push(CLASS_JMP | JMP_EXIT, Reg::R0, Reg::R0, 0, 0)
    }
    /// Names the next instruction.
    pub fn label(&mut self, name: &str) -> &mut Self {
        if self
            .labels
            .insert(name.to_string(), self.insns.len())
            .is_some()
        {
            self.duplicate.get_or_insert_with(|| name.to_string());
        }
        self
    }

    /// A label name not used before, for code emitted more than once (`what.N`).
    pub fn fresh(&mut self, what: &str) -> String {
        self.fresh += 1;
        format!("{what}.{}", self.fresh)
    }

    /// The program, every jump's offset filled in (relative to the instruction after it).
    pub fn finish(mut self) -> Result<Vec<Insn>, AsmError> {
        if let Some(name) = self.duplicate {
            return Err(AsmError::DuplicateLabel(name));
        }
        for (at, label) in &self.jumps {
            let target = *self
                .labels
                .get(label)
                .ok_or_else(|| AsmError::UndefinedLabel(label.clone()))?;
            let off = target as i64 - (*at as i64 + 1);
            self.insns[*at].off =
                i16::try_from(off).map_err(|_| AsmError::TooFar(label.clone()))?;
        }
        Ok(self.insns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(i: Insn) -> [u8; 8] {
        let mut b = [0u8; 8];
        b[0] = i.code;
        b[1] = i.regs;
        b[2..4].copy_from_slice(&i.off.to_le_bytes());
        b[4..8].copy_from_slice(&i.imm.to_le_bytes());
        b
    }

    #[test]
    fn encodes_like_the_kernel_disassembly() {
        // Reference encodings (as `llvm-objdump -d` prints them for clang-built programs).
        let mut a = Asm::new();
        a.mov(Reg::R6, Reg::R1)
            .load(Size::DW, Reg::R7, Reg::R6, 8)
            .store(Size::W, Reg::R10, -4, Reg::R7)
            .store_imm(Size::W, Reg::R9, 0, 1)
            .rsh_imm(Reg::R1, 32)
            .add_imm(Reg::R2, -4)
            .atomic_add64(Reg::R0, 0, Reg::R1)
            .call(Helper::RingbufReserve)
            .load_map(Reg::R1, 5)
            .exit()
            .lsh_imm(Reg::R8, 3)
            .add(Reg::R3, Reg::R8)
            .load(Size::B, Reg::R2, Reg::R1, 5)
            .load(Size::H, Reg::R2, Reg::R9, 104)
            .and_imm(Reg::R2, -8)
            .mov32(Reg::R8, Reg::R8)
            .jump_if(Cond::SLt, Reg::R1, 0, "end")
            .label("end");
        let p: Vec<[u8; 8]> = a.finish().unwrap().into_iter().map(bytes).collect();
        assert_eq!(p[0], [0xbf, 0x16, 0, 0, 0, 0, 0, 0]);
        assert_eq!(p[1], [0x79, 0x67, 8, 0, 0, 0, 0, 0]);
        assert_eq!(p[2], [0x63, 0x7a, 0xfc, 0xff, 0, 0, 0, 0]);
        assert_eq!(p[3], [0x62, 0x09, 0, 0, 1, 0, 0, 0]);
        assert_eq!(p[4], [0x77, 0x01, 0, 0, 32, 0, 0, 0]);
        assert_eq!(p[5], [0x07, 0x02, 0, 0, 0xfc, 0xff, 0xff, 0xff]);
        assert_eq!(p[6], [0xdb, 0x10, 0, 0, 0, 0, 0, 0]);
        assert_eq!(p[7], [0x85, 0, 0, 0, 131, 0, 0, 0]);
        assert_eq!(p[8], [0x18, 0x11, 0, 0, 5, 0, 0, 0]);
        assert_eq!(p[9], [0; 8]);
        assert_eq!(p[10], [0x95, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(p[11], [0x67, 0x08, 0, 0, 3, 0, 0, 0]);
        assert_eq!(p[12], [0x0f, 0x83, 0, 0, 0, 0, 0, 0]);
        assert_eq!(p[13], [0x71, 0x12, 5, 0, 0, 0, 0, 0]);
        assert_eq!(p[14], [0x69, 0x92, 104, 0, 0, 0, 0, 0]);
        assert_eq!(p[15], [0x57, 0x02, 0, 0, 0xf8, 0xff, 0xff, 0xff]);
        assert_eq!(p[16], [0xbc, 0x88, 0, 0, 0, 0, 0, 0]);
        assert_eq!(p[17], [0xc5, 0x01, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn jumps_count_from_the_next_instruction_and_over_wide_loads() {
        let mut a = Asm::new();
        a.jump_if(Cond::Eq, Reg::R0, 0, "out") // 0
            .load_map(Reg::R1, 3) // 1, 2
            .jump("out") // 3
            .mov_imm(Reg::R0, 1) // 4
            .label("out")
            .exit(); // 5
        let p = a.finish().unwrap();
        assert_eq!((p[0].code, p[0].off), (0x15, 4));
        assert_eq!((p[3].code, p[3].off), (0x05, 1));
    }

    #[test]
    fn refuses_unknown_and_duplicate_labels() {
        let mut a = Asm::new();
        a.jump("nowhere").exit();
        assert_eq!(a.finish(), Err(AsmError::UndefinedLabel("nowhere".into())));
        let mut a = Asm::new();
        a.label("x").label("x").exit();
        assert_eq!(a.finish(), Err(AsmError::DuplicateLabel("x".into())));
        let mut a = Asm::new();
        let (x, y) = (a.fresh("x"), a.fresh("x"));
        assert_ne!(x, y);
    }
}
