//! Reads member offsets of kernel structs from the kernel's BTF (/sys/kernel/btf/vmlinux), so
//! the programs read `task_struct` fields, and walk from the task to a descriptor's inode,
//! where this kernel has them, without headers.
//!
//! Format (Documentation/bpf/btf.rst): a header, a type section of records (`name_off`,
//! `info` with kind and member count, `size_or_type`, then kind-specific data), a string
//! section. Type ids are record positions, from 1.

use crate::Error;

const MAGIC: u16 = 0xeb9f;
const KIND_STRUCT: u32 = 4;
const KIND_UNION: u32 = 5;

/// Where the probe reads a task's fields, in bytes from the start of `struct task_struct`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskOffsets {
    pub pid: u32,
    pub tgid: u32,
    /// The wait(2)-style status `do_exit` stores before `sched_process_exit` fires.
    pub exit_code: u32,
}

/// Where the system-call entry program finds the inode behind descriptor `fd` of the current
/// task: `task->files->fdt` (an RCU pointer: read once, as an observer may), bounds-checked
/// against `fdt->max_fds`, then `fdt->fd[fd]->f_inode`, its `i_ino` and `i_mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileOffsets {
    /// `task_struct.files` (`struct files_struct *`).
    pub task_files: u32,
    /// `files_struct.fdt` (`struct fdtable *`).
    pub files_fdt: u32,
    /// `fdtable.max_fds` (`unsigned int`).
    pub fdt_max_fds: u32,
    /// `fdtable.fd` (`struct file **`).
    pub fdt_fd: u32,
    /// `file.f_inode` (`struct inode *`).
    pub file_inode: u32,
    /// `inode.i_mode` (`umode_t`, 2 bytes).
    pub inode_mode: u32,
    /// `inode.i_ino` (`unsigned long`).
    pub inode_ino: u32,
}

/// Everything the programs read from kernel structs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KernelOffsets {
    pub task: TaskOffsets,
    pub file: FileOffsets,
}

impl KernelOffsets {
    /// From the running kernel's BTF.
    pub fn of_running_kernel() -> Result<KernelOffsets, Error> {
        const PATH: &str = "/sys/kernel/btf/vmlinux";
        let blob = std::fs::read(PATH).map_err(|e| Error::Btf(format!("reading {PATH}: {e}")))?;
        KernelOffsets::from_btf(&blob)
    }

    pub fn from_btf(blob: &[u8]) -> Result<KernelOffsets, Error> {
        let task = struct_members(blob, "task_struct")?;
        let files = struct_members(blob, "files_struct")?;
        let fdt = struct_members(blob, "fdtable")?;
        let file = struct_members(blob, "file")?;
        let inode = struct_members(blob, "inode")?;
        Ok(KernelOffsets {
            task: TaskOffsets {
                pid: offset_of(&task, "task_struct", "pid")?,
                tgid: offset_of(&task, "task_struct", "tgid")?,
                exit_code: offset_of(&task, "task_struct", "exit_code")?,
            },
            file: FileOffsets {
                task_files: offset_of(&task, "task_struct", "files")?,
                files_fdt: offset_of(&files, "files_struct", "fdt")?,
                fdt_max_fds: offset_of(&fdt, "fdtable", "max_fds")?,
                fdt_fd: offset_of(&fdt, "fdtable", "fd")?,
                file_inode: offset_of(&file, "file", "f_inode")?,
                inode_mode: offset_of(&inode, "inode", "i_mode")?,
                inode_ino: offset_of(&inode, "inode", "i_ino")?,
            },
        })
    }
}

fn offset_of(members: &[(String, u32)], strukt: &str, name: &str) -> Result<u32, Error> {
    members
        .iter()
        .find(|(n, _)| n == name)
        .map(|&(_, off)| off)
        .ok_or_else(|| Error::Btf(format!("{strukt} has no member `{name}`")))
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn string_at(strings: &[u8], off: u32) -> Option<&str> {
    let tail = strings.get(off as usize..)?;
    let end = tail.iter().position(|&b| b == 0)?;
    std::str::from_utf8(&tail[..end]).ok()
}

/// Bytes of kind-specific data after a type record's 12-byte common part.
fn extra_bytes(kind: u32, vlen: usize) -> Option<usize> {
    Some(match kind {
        1 | 14 | 17 => 4,             // int, var, decl_tag
        3 => 12,                      // array
        4 | 5 | 15 | 19 => 12 * vlen, // struct, union, datasec, enum64
        6 | 13 => 8 * vlen,           // enum, func_proto
        2 | 7..=12 | 16 | 18 => 0,    // ptr, fwd, typedef, qualifiers, func, float, type_tag
        _ => return None,
    })
}

/// The named (non-anonymous) members of the first struct called `name`, with byte offsets.
fn struct_members(blob: &[u8], name: &str) -> Result<Vec<(String, u32)>, Error> {
    let bad = |what: &str| Error::Btf(format!("malformed BTF: {what}"));
    if u16_at(blob, 0) != Some(MAGIC) {
        return Err(bad("bad magic (not little-endian BTF?)"));
    }
    let hdr_len = u32_at(blob, 4).ok_or_else(|| bad("header"))? as usize;
    let field = |at| {
        u32_at(blob, at)
            .map(|v| v as usize)
            .ok_or_else(|| bad("header"))
    };
    let (type_off, type_len, str_off, str_len) = (field(8)?, field(12)?, field(16)?, field(20)?);
    let types = blob
        .get(hdr_len + type_off..hdr_len + type_off + type_len)
        .ok_or_else(|| bad("type section out of bounds"))?;
    let strings = blob
        .get(hdr_len + str_off..hdr_len + str_off + str_len)
        .ok_or_else(|| bad("string section out of bounds"))?;
    let mut at = 0;
    while at < types.len() {
        let (name_off, info) = match (u32_at(types, at), u32_at(types, at + 4)) {
            (Some(n), Some(i)) => (n, i),
            _ => return Err(bad("truncated type")),
        };
        let kind = (info >> 24) & 0x1f;
        let vlen = (info & 0xffff) as usize;
        let bitfields = info >> 31 == 1;
        let extra = extra_bytes(kind, vlen).ok_or_else(|| bad("unknown type kind"))?;
        let body = at + 12;
        if (kind == KIND_STRUCT || kind == KIND_UNION) && string_at(strings, name_off) == Some(name)
        {
            let mut members = Vec::with_capacity(vlen);
            for m in 0..vlen {
                let rec = body + 12 * m;
                let (Some(mname), Some(offset)) = (u32_at(types, rec), u32_at(types, rec + 8))
                else {
                    return Err(bad("truncated member"));
                };
                // With bitfields the high 8 bits are the field's width, the rest its bit offset.
                let bits = if bitfields {
                    offset & 0x00ff_ffff
                } else {
                    offset
                };
                let mname = string_at(strings, mname).unwrap_or("");
                if !mname.is_empty() && bits % 8 == 0 {
                    members.push((mname.to_string(), bits / 8));
                }
            }
            return Ok(members);
        }
        at = body + extra;
    }
    Err(Error::Btf(format!("no struct `{name}` in BTF")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The structs the programs read, as (name, [(member, bit offset)]).
    type Structs<'a> = &'a [(&'a str, &'a [(&'a str, u32)])];

    /// A BTF blob: an int, a typedef, and each struct of `structs` (members typed as the
    /// typedef), with the bitfield flag set (so bit offsets are 24 bits, widths above).
    fn blob_of(structs: Structs) -> Vec<u8> {
        let mut strings = b"\0int\0pid_t\0".to_vec();
        let mut types = Vec::new();
        let mut put = |v: u32| types.extend_from_slice(&v.to_le_bytes());
        let mut name = |n: &str| {
            let at = strings.len() as u32;
            strings.extend_from_slice(n.as_bytes());
            strings.push(0);
            at
        };
        // [1] int: 4 bytes, encoding word.
        put(1);
        put(1 << 24);
        put(4);
        put(32);
        // [2] typedef pid_t -> 1
        put(5);
        put(8 << 24);
        put(1);
        for (strukt, members) in structs {
            put(name(strukt));
            put(1 << 31 | 4 << 24 | members.len() as u32);
            put(64);
            for (member, bits) in *members {
                put(name(member));
                put(2);
                put(*bits);
            }
        }
        let mut b = Vec::new();
        b.extend_from_slice(&MAGIC.to_le_bytes());
        b.extend_from_slice(&[1, 0]); // version, flags
        for v in [
            24u32,
            0,
            types.len() as u32,
            types.len() as u32,
            strings.len() as u32,
        ] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        b.extend_from_slice(&types);
        b.extend_from_slice(&strings);
        b
    }

    fn blob() -> Vec<u8> {
        blob_of(&[
            (
                "task_struct",
                &[
                    ("a", 3 << 24),
                    ("pid", 32),
                    ("tgid", 64),
                    ("exit_code", 96),
                    ("files", 128),
                ],
            ),
            ("files_struct", &[("count", 0), ("fdt", 64)]),
            ("fdtable", &[("max_fds", 0), ("fd", 64)]),
            ("file", &[("f_mode", 0), ("f_inode", 256)]),
            ("inode", &[("i_mode", 0), ("i_opflags", 16), ("i_ino", 512)]),
        ])
    }

    #[test]
    fn finds_task_and_file_offsets_in_bytes() {
        assert_eq!(
            KernelOffsets::from_btf(&blob()).unwrap(),
            KernelOffsets {
                task: TaskOffsets {
                    pid: 4,
                    tgid: 8,
                    exit_code: 12
                },
                file: FileOffsets {
                    task_files: 16,
                    files_fdt: 8,
                    fdt_max_fds: 0,
                    fdt_fd: 8,
                    file_inode: 32,
                    inode_mode: 0,
                    inode_ino: 64,
                },
            }
        );
    }

    #[test]
    fn names_the_missing_member() {
        let b = blob_of(&[
            (
                "task_struct",
                &[("pid", 32), ("tgid", 64), ("exit_code", 96)],
            ),
            ("files_struct", &[("fdt", 64)]),
            ("fdtable", &[("max_fds", 0), ("fd", 64)]),
            ("file", &[("f_inode", 256)]),
            ("inode", &[("i_mode", 0), ("i_ino", 512)]),
        ]);
        match KernelOffsets::from_btf(&b) {
            Err(Error::Btf(m)) => assert_eq!(m, "task_struct has no member `files`"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn refuses_what_is_not_btf() {
        assert!(matches!(
            KernelOffsets::from_btf(b"hello"),
            Err(Error::Btf(_))
        ));
        let mut b = blob();
        b.truncate(40);
        assert!(matches!(KernelOffsets::from_btf(&b), Err(Error::Btf(_))));
    }
}
