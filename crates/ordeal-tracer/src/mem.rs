//! Reading tracee memory and registers.
//!
//! A call observed by the eBPF probe is decoded after the fact, when its memory may have
//! changed: the probe copies what the decoder needs as the call runs, and while such a call is
//! decoded ([`with_captured`]) reads are answered from those copies first. Only the tracer
//! thread decodes, so the copies live in a thread-local for the length of one decode.

use std::cell::RefCell;
use std::path::{Component, Path, PathBuf};

/// A copy of tracee memory at `addr`, taken as a call entered or returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Captured {
    pub(crate) addr: u64,
    pub(crate) bytes: Vec<u8>,
}

thread_local! {
    /// The copies of the record being decoded; None while no record is.
    static CAPTURED: RefCell<Option<Vec<Captured>>> = const { RefCell::new(None) };
}

/// Runs `f` with reads answered from `blobs` alone: what they do not cover reads as
/// unreadable (the live memory has moved on since the call; a missing field beats a wrong one).
/// Gives the blobs back, for a later decode of the same call.
pub(crate) fn with_captured<T>(blobs: Vec<Captured>, f: impl FnOnce() -> T) -> (T, Vec<Captured>) {
    CAPTURED.with(|c| *c.borrow_mut() = Some(blobs));
    let out = f();
    let blobs = CAPTURED.with(|c| c.borrow_mut().take()).unwrap_or_default();
    (out, blobs)
}

/// Whether a probe record is being decoded (memory comes from its copies, not the tracee).
pub(crate) fn decoding_record() -> bool {
    CAPTURED.with(|c| c.borrow().is_some())
}

/// While a record is decoded: `len` bytes at `addr` from a copy that starts at or before
/// `addr` and covers it (fewer if the copy ends first, as a read stopping at an unmapped
/// page would), or Some(None) when none does. None when no record is being decoded.
fn from_captured(addr: u64, len: usize) -> Option<Option<Vec<u8>>> {
    CAPTURED.with(|c| {
        let c = c.borrow();
        let blobs = c.as_ref()?;
        Some(blobs.iter().find_map(|b| {
            let start = usize::try_from(addr.checked_sub(b.addr)?).ok()?;
            let rest = b.bytes.get(start..).filter(|r| !r.is_empty())?;
            Some(rest[..rest.len().min(len)].to_vec())
        }))
    })
}

pub fn read_mem(pid: i32, addr: u64, len: usize) -> Option<Vec<u8>> {
    if addr == 0 || len == 0 {
        return None;
    }
    if let Some(copy) = from_captured(addr, len) {
        return copy;
    }
    let mut buf = vec![0u8; len];
    let local = libc::iovec {
        iov_base: buf.as_mut_ptr() as *mut libc::c_void,
        iov_len: len,
    };
    let remote = libc::iovec {
        iov_base: addr as *mut libc::c_void,
        iov_len: len,
    };
    // SAFETY: the local iovec points into `buf`, which is len bytes long.
    let n = unsafe { libc::process_vm_readv(pid, &local, 1, &remote, 1, 0) };
    if n <= 0 {
        return None;
    }
    buf.truncate(n as usize);
    Some(buf)
}

/// Reads a NUL-terminated string, page by page so an unmapped page after it does not fail the
/// whole read.
pub fn read_cstr(pid: i32, mut addr: u64, max: usize) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    while out.len() < max {
        let to_page_end = 4096 - (addr % 4096) as usize;
        let chunk = read_mem(pid, addr, to_page_end.min(max - out.len()))?;
        if let Some(end) = chunk.iter().position(|&b| b == 0) {
            out.extend_from_slice(&chunk[..end]);
            return Some(out);
        }
        addr += chunk.len() as u64;
        out.extend_from_slice(&chunk);
    }
    Some(out)
}

pub fn read_u32(pid: i32, addr: u64) -> Option<u32> {
    let b = read_mem(pid, addr, 4)?;
    Some(u32::from_ne_bytes(b.get(..4)?.try_into().ok()?))
}

pub fn read_u64(pid: i32, addr: u64) -> Option<u64> {
    let b = read_mem(pid, addr, 8)?;
    Some(u64::from_ne_bytes(b.get(..8)?.try_into().ok()?))
}

pub fn getregs(tid: i32) -> Option<libc::user_regs_struct> {
    // SAFETY: PTRACE_GETREGS writes one user_regs_struct into `regs`.
    unsafe {
        let mut regs: libc::user_regs_struct = std::mem::zeroed();
        let r = libc::ptrace(
            libc::PTRACE_GETREGS,
            tid,
            std::ptr::null_mut::<libc::c_void>(),
            &mut regs as *mut _ as *mut libc::c_void,
        );
        (r == 0).then_some(regs)
    }
}

pub fn setregs(tid: i32, regs: &libc::user_regs_struct) -> bool {
    // SAFETY: PTRACE_SETREGS reads one user_regs_struct from `regs`.
    unsafe {
        libc::ptrace(
            libc::PTRACE_SETREGS,
            tid,
            std::ptr::null_mut::<libc::c_void>(),
            regs as *const _ as *mut libc::c_void,
        ) == 0
    }
}

/// The return value register alone: one PEEKUSER instead of a full GETREGS at syscall exit.
pub fn syscall_ret(tid: i32) -> Option<i64> {
    const RAX_OFFSET: usize = 10 * 8; // offsetof(struct user_regs_struct, rax)
                                      // SAFETY: PEEKUSER reads one word of the tracee's USER area; errors come back via errno.
    unsafe {
        *libc::__errno_location() = 0;
        let v = libc::ptrace(
            libc::PTRACE_PEEKUSER,
            tid,
            RAX_OFFSET as *mut libc::c_void,
            std::ptr::null_mut::<libc::c_void>(),
        );
        if v == -1 && *libc::__errno_location() != 0 {
            return None;
        }
        Some(v)
    }
}

/// Lexically normalizes `p` (joined onto `base` when relative): removes `.` and resolves `..`.
/// Symlinks are not followed: the tracee may be about to create the path.
pub fn normalize(base: &Path, p: &Path) -> PathBuf {
    let joined = if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    };
    let mut out = PathBuf::from("/");
    for c in joined.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(s) => out.push(s),
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_relative_and_dotdot() {
        assert_eq!(
            normalize(Path::new("/run/data/a"), Path::new("../b/./x.tmp")),
            PathBuf::from("/run/data/b/x.tmp")
        );
        assert_eq!(
            normalize(Path::new("/x"), Path::new("/a/../../b")),
            PathBuf::from("/b")
        );
    }

    #[test]
    fn reads_own_memory() {
        let s = b"hello\0world";
        let me = std::process::id() as i32;
        assert_eq!(
            read_cstr(me, s.as_ptr() as u64, 100).as_deref(),
            Some(&b"hello"[..])
        );
        assert_eq!(read_mem(me, 0, 4), None);
    }
}
