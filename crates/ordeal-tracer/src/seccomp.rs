//! The seccomp-bpf filter installed in every traced program before exec.
//!
//! Only the system calls listed by [`traced`] return `SECCOMP_RET_TRACE` (a ptrace stop);
//! everything else runs at full speed. This is the mechanism of `strace --seccomp-bpf`.

/// System calls that stop the tracee (x86_64 numbers): every row of the call table
/// (`ordeal_events::calls::CALLS`).
pub fn traced() -> Vec<i64> {
    ordeal_events::calls::CALLS.iter().map(|c| c.nr).collect()
}

const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
const SECCOMP_RET_ALLOW: u32 = 0x7fff_0000;
const SECCOMP_RET_TRACE: u32 = 0x7ff0_0000;

const BPF_LD_W_ABS: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
const BPF_JEQ_K: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
const BPF_RET_K: u16 = 0x06; // BPF_RET | BPF_K

fn stmt(code: u16, k: u32) -> libc::sock_filter {
    libc::sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter { code, jt, jf, k }
}

/// Builds the classic-BPF program. Layout:
/// `arch check; load nr; (jeq nr → TRACE)*; ALLOW; TRACE`.
pub fn program(traced: &[i64]) -> Vec<libc::sock_filter> {
    let n = traced.len();
    assert!(n < 250, "jump offsets are u8");
    let mut p = Vec::with_capacity(n + 6);
    p.push(stmt(BPF_LD_W_ABS, 4)); // seccomp_data.arch
                                   // Foreign ABIs (i386 via int 0x80) are allowed untraced: numbers would mean other calls.
    p.push(jump(BPF_JEQ_K, AUDIT_ARCH_X86_64, 1, 0));
    p.push(stmt(BPF_RET_K, SECCOMP_RET_ALLOW));
    p.push(stmt(BPF_LD_W_ABS, 0)); // seccomp_data.nr
    for (i, &nr) in traced.iter().enumerate() {
        // On match jump over the remaining compares and the ALLOW to the TRACE return.
        let to_trace = (n - i) as u8;
        p.push(jump(BPF_JEQ_K, nr as u32, to_trace, 0));
    }
    p.push(stmt(BPF_RET_K, SECCOMP_RET_ALLOW));
    p.push(stmt(BPF_RET_K, SECCOMP_RET_TRACE));
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny interpreter for the subset of BPF we emit, to check jump arithmetic.
    fn run(p: &[libc::sock_filter], arch: u32, nr: u32) -> u32 {
        let (mut pc, mut acc) = (0usize, 0u32);
        loop {
            let i = &p[pc];
            match i.code {
                BPF_LD_W_ABS => acc = if i.k == 4 { arch } else { nr },
                BPF_JEQ_K => {
                    pc += if acc == i.k { i.jt } else { i.jf } as usize;
                }
                BPF_RET_K => return i.k,
                c => panic!("unexpected opcode {c}"),
            }
            pc += 1;
        }
    }

    #[test]
    fn traces_exactly_the_listed_calls() {
        let traced = traced();
        assert!(traced.contains(&libc::SYS_pwritev2) && traced.contains(&libc::SYS_dup3));
        let p = program(&traced);
        for nr in 0..460u32 {
            let want = if traced.contains(&(nr as i64)) {
                SECCOMP_RET_TRACE
            } else {
                SECCOMP_RET_ALLOW
            };
            assert_eq!(run(&p, AUDIT_ARCH_X86_64, nr), want, "nr {nr}");
        }
        assert_eq!(
            run(&p, 0x4000_0003, libc::SYS_write as u32),
            SECCOMP_RET_ALLOW
        );
    }
}
