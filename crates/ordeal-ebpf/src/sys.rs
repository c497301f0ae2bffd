//! The bpf(2) commands the probe uses, each with its own `union bpf_attr` member laid out as
//! include/uapi/linux/bpf.h has it. The kernel accepts a shorter attribute than its own as
//! long as what it knows beyond is zero; ours are zero-initialized and passed with their size.

use crate::asm::Insn;
use crate::Error;
use std::ffi::CStr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

const BPF_MAP_CREATE: libc::c_long = 0;
const BPF_MAP_LOOKUP_ELEM: libc::c_long = 1;
const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
const BPF_MAP_DELETE_ELEM: libc::c_long = 3;
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_RAW_TRACEPOINT_OPEN: libc::c_long = 17;

pub const MAP_HASH: u32 = 1;
pub const MAP_ARRAY: u32 = 2;
pub const MAP_PERCPU_ARRAY: u32 = 6;
pub const MAP_LRU_HASH: u32 = 9;
pub const MAP_RINGBUF: u32 = 27;
const PROG_RAW_TRACEPOINT: u32 = 17;
/// Room for the verifier's explanation when a program is refused.
const VERIFIER_LOG_BYTES: usize = 1 << 16;

#[repr(C)]
#[derive(Default)]
struct MapCreateAttr {
    map_type: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    map_flags: u32,
    inner_map_fd: u32,
    numa_node: u32,
    map_name: [u8; 16],
}

#[repr(C)]
#[derive(Default)]
struct MapElemAttr {
    map_fd: u32,
    _pad: u32,
    key: u64,
    value: u64,
    flags: u64,
}

#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
}

#[repr(C)]
#[derive(Default)]
struct RawTracepointAttr {
    name: u64,
    prog_fd: u32,
    _pad: u32,
}

/// Calls bpf(2) with `attr`; a non-negative result is returned as is.
fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> std::io::Result<libc::c_long> {
    // SAFETY: `attr` is a live, exclusively borrowed `#[repr(C)]` struct of the layout the
    // kernel expects for `cmd`, and its size is passed with it; pointers inside it (keys,
    // values, instructions, names, log buffer) are kept alive by the callers for the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut T as *mut libc::c_void,
            std::mem::size_of::<T>() as libc::c_uint,
        )
    };
    if r < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// Takes ownership of a descriptor bpf(2) returned.
fn owned(fd: libc::c_long) -> OwnedFd {
    // SAFETY: bpf(2) just returned `fd` as a new descriptor that nothing else owns.
    unsafe { OwnedFd::from_raw_fd(fd as i32) }
}

fn name16(name: &str) -> [u8; 16] {
    let mut out = [0u8; 16];
    // At most 15 bytes: the kernel wants the name NUL-terminated.
    for (o, b) in out.iter_mut().zip(name.bytes().take(15)) {
        *o = b;
    }
    out
}

/// Creates a map.
pub fn map_create(
    name: &str,
    map_type: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
) -> Result<OwnedFd, Error> {
    let mut attr = MapCreateAttr {
        map_type,
        key_size,
        value_size,
        max_entries,
        map_name: name16(name),
        ..Default::default()
    };
    bpf(BPF_MAP_CREATE, &mut attr)
        .map(owned)
        .map_err(|source| Error::Bpf {
            what: format!("creating map {name}"),
            source,
        })
}

fn elem_attr(map: &OwnedFd, key: *const u8, value: u64, flags: u64) -> MapElemAttr {
    MapElemAttr {
        map_fd: map.as_raw_fd() as u32,
        key: key as u64,
        value,
        flags,
        ..Default::default()
    }
}

/// Sets `map[key] = value` (creating or replacing).
pub fn map_update(map: &OwnedFd, key: &[u8], value: &[u8]) -> std::io::Result<()> {
    let mut attr = elem_attr(map, key.as_ptr(), value.as_ptr() as u64, 0);
    bpf(BPF_MAP_UPDATE_ELEM, &mut attr).map(drop)
}

/// Reads `map[key]` into `value` (its size is the map's value size).
pub fn map_lookup(map: &OwnedFd, key: &[u8], value: &mut [u8]) -> std::io::Result<()> {
    let mut attr = elem_attr(map, key.as_ptr(), value.as_mut_ptr() as u64, 0);
    bpf(BPF_MAP_LOOKUP_ELEM, &mut attr).map(drop)
}

/// Removes `map[key]`.
pub fn map_delete(map: &OwnedFd, key: &[u8]) -> std::io::Result<()> {
    let mut attr = elem_attr(map, key.as_ptr(), 0, 0);
    bpf(BPF_MAP_DELETE_ELEM, &mut attr).map(drop)
}

/// Loads a raw-tracepoint program. When the verifier refuses it, loads it again asking for
/// the verifier's log, which the error carries.
pub fn prog_load(name: &str, insns: &[Insn]) -> Result<OwnedFd, Error> {
    // Dual-licensed programs may call GPL-only helpers (bpf_probe_read_kernel).
    const LICENSE: &CStr = c"Dual MIT/GPL";
    let attr = |log: &mut Vec<u8>| ProgLoadAttr {
        prog_type: PROG_RAW_TRACEPOINT,
        insn_cnt: insns.len() as u32,
        insns: insns.as_ptr() as u64,
        license: LICENSE.as_ptr() as u64,
        log_level: u32::from(!log.is_empty()),
        log_size: log.len() as u32,
        log_buf: if log.is_empty() {
            0
        } else {
            log.as_mut_ptr() as u64
        },
        prog_name: name16(name),
        ..Default::default()
    };
    let mut no_log = Vec::new();
    match bpf(BPF_PROG_LOAD, &mut attr(&mut no_log)) {
        Ok(fd) => Ok(owned(fd)),
        Err(source)
            if source.raw_os_error() == Some(libc::EACCES)
                || source.raw_os_error() == Some(libc::EINVAL) =>
        {
            let mut log = vec![0u8; VERIFIER_LOG_BYTES];
            let again = bpf(BPF_PROG_LOAD, &mut attr(&mut log));
            let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
            match again {
                Ok(fd) => Ok(owned(fd)),
                Err(_) => Err(Error::Verifier {
                    program: name.to_string(),
                    source,
                    log: String::from_utf8_lossy(&log[..end]).into_owned(),
                }),
            }
        }
        Err(source) => Err(Error::Bpf {
            what: format!("loading program {name}"),
            source,
        }),
    }
}

/// Attaches `prog` to the raw tracepoint `name`; closing the returned descriptor detaches it.
pub fn raw_tracepoint_open(name: &CStr, prog: &OwnedFd) -> Result<OwnedFd, Error> {
    let mut attr = RawTracepointAttr {
        name: name.as_ptr() as u64,
        prog_fd: prog.as_raw_fd() as u32,
        ..Default::default()
    };
    bpf(BPF_RAW_TRACEPOINT_OPEN, &mut attr)
        .map(owned)
        .map_err(|source| Error::Bpf {
            what: format!("attaching to raw tracepoint {}", name.to_string_lossy()),
            source,
        })
}
