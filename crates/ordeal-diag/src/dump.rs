//! Dumps of a process, as ELF core files gdb reads (`gdb PROGRAM CORE`):
//!
//! - **core**: every mapping `/proc/PID/coredump_filter` selects (as the kernel would:
//!   anonymous private/shared, file-backed private/shared, the ELF header page of mapped
//!   files), a PT_NOTE with NT_PRSTATUS per thread, NT_PRPSINFO, NT_AUXV and NT_FILE;
//! - **minidump** (a "mini core"): the same notes, but memory only for each thread's stack
//!   (from `sp` up, at most [`MINI_STACK_BYTES`]): threads, registers, stacks and the module
//!   list; its size scales with threads, not with the heap. It is not the Breakpad format.
//!
//! Nothing is written before [`check_space`] said yes: the estimated size must stay under the
//! cap and leave the reserve free on the target filesystem. Files are created exclusively
//! (never overwriting). The caller keeps the process stopped while [`write`] runs.

use crate::procfs::{self, Mapping};
use serde::{Deserialize, Serialize};
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Stack bytes per thread in a minidump.
pub const MINI_STACK_BYTES: u64 = 1 << 20;
const PAGE: u64 = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DumpKind {
    Minidump,
    Core,
}

impl std::fmt::Display for DumpKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DumpKind::Minidump => "minidump",
            DumpKind::Core => "core",
        })
    }
}

/// A dump kind name that is neither `minidump` (or `mini`) nor `core`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown dump kind `{0}`: expected minidump or core")]
pub struct UnknownDumpKind(pub String);

impl std::str::FromStr for DumpKind {
    type Err = UnknownDumpKind;
    fn from_str(s: &str) -> Result<Self, UnknownDumpKind> {
        match s {
            "minidump" | "mini" => Ok(DumpKind::Minidump),
            "core" => Ok(DumpKind::Core),
            _ => Err(UnknownDumpKind(s.to_string())),
        }
    }
}

/// Space limits of a dump directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Refuse when writing would leave less than this free.
    pub reserve: u64,
    /// Refuse a dump estimated bigger than this.
    pub cap: u64,
}

/// What happened to one dump (written or refused).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DumpRecord {
    pub node: String,
    pub pid: i32,
    pub kind: DumpKind,
    /// Where it was written (absent when refused or failed).
    pub path: Option<PathBuf>,
    pub estimated_bytes: u64,
    pub written_bytes: u64,
    /// How long the process was stopped for it (from the stop signal to SIGCONT).
    pub pause_ms: f64,
    /// `pause_ms` per GiB written (dumps of 16 MiB or more only).
    pub pause_ms_per_gib: Option<f64>,
    /// Why it was not written.
    pub refused: Option<String>,
}

impl std::fmt::Display for DumpRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.path, &self.refused) {
            (_, Some(r)) => write!(
                f,
                "{} of {}/{}: not written: {r}",
                self.kind, self.node, self.pid
            ),
            (Some(p), None) => write!(
                f,
                "{} of {}/{}: {} ({} bytes, paused {:.1} ms{})",
                self.kind,
                self.node,
                self.pid,
                p.display(),
                self.written_bytes,
                self.pause_ms,
                self.pause_ms_per_gib
                    .map(|x| format!(", {x:.0} ms/GiB"))
                    .unwrap_or_default()
            ),
            (None, None) => write!(
                f,
                "{} of {}/{}: not written",
                self.kind, self.node, self.pid
            ),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DumpError {
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> DumpError {
    let context = context.into();
    move |source| DumpError::Io { context, source }
}

/// One memory range to write.
#[derive(Debug, Clone)]
struct Region {
    start: u64,
    memsz: u64,
    filesz: u64,
    flags: u32,
}

fn is_anon(m: &Mapping) -> bool {
    m.inode == 0 || m.path.is_empty() || m.path.starts_with('[') || m.path.ends_with(" (deleted)")
}

/// Start addresses of the mappings that hold anonymous pages (`Anonymous:` > 0 in
/// /proc/PID/smaps): a file-backed private mapping written to (`.data`, relocated GOTs)
/// is dumped like anonymous memory, as the kernel does.
pub fn with_anon_pages(pid: i32) -> std::collections::HashSet<u64> {
    let mut out = std::collections::HashSet::new();
    let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/smaps")) else {
        return out;
    };
    let mut cur = None;
    for l in text.lines() {
        if let Some(v) = l.strip_prefix("Anonymous:") {
            let kb: u64 = v
                .split_whitespace()
                .next()
                .and_then(|x| x.parse().ok())
                .unwrap_or(0);
            if let (Some(start), true) = (cur, kb > 0) {
                out.insert(start);
            }
        } else if let Some((range, _)) = l.split_once(' ') {
            if let Some((a, _)) = range.split_once('-') {
                if let Ok(start) = u64::from_str_radix(a, 16) {
                    cur = Some(start);
                }
            }
        }
    }
    out
}

/// How many bytes of `m` the kernel would dump under `filter` (bits: 0 anon private,
/// 1 anon shared, 2 file private, 3 file shared, 4 ELF headers; hugetlb and DAX count as
/// their base kind here). `has_anon`: the mapping holds anonymous (written) pages.
pub fn dump_len(m: &Mapping, filter: u32, pid: i32, has_anon: bool) -> u64 {
    if !m.readable() || m.path == "[vsyscall]" || m.path == "[vvar]" {
        return 0;
    }
    if has_anon && !m.shared() && filter & 1 != 0 {
        return m.len();
    }
    let anon = is_anon(m);
    let bit = match (anon, m.shared()) {
        (true, false) => 0,
        (true, true) => 1,
        (false, false) => 2,
        (false, true) => 3,
    };
    if filter & (1 << bit) != 0 {
        return m.len();
    }
    if !anon && filter & (1 << 4) != 0 && m.offset == 0 {
        // The first page when it is an ELF header (build id, for debuggers).
        let mut hdr = [0u8; 4];
        if read_mem(pid, m.start, &mut hdr) == 4 && hdr == *b"\x7fELF" {
            return PAGE.min(m.len());
        }
    }
    0
}

fn flags_of(m: &Mapping) -> u32 {
    let p = m.perms.as_bytes();
    let mut f = 0;
    if p.first() == Some(&b'r') {
        f |= 4;
    }
    if p.get(1) == Some(&b'w') {
        f |= 2;
    }
    if p.get(2) == Some(&b'x') {
        f |= 1;
    }
    f
}

fn regions(pid: i32, kind: DumpKind, maps: &[Mapping], sps: &[u64]) -> Vec<Region> {
    match kind {
        DumpKind::Core => {
            let filter = procfs::coredump_filter(pid);
            let anon = with_anon_pages(pid);
            maps.iter()
                .filter(|m| m.path != "[vsyscall]")
                .map(|m| Region {
                    start: m.start,
                    memsz: m.len(),
                    filesz: dump_len(m, filter, pid, anon.contains(&m.start)),
                    flags: flags_of(m),
                })
                .collect()
        }
        DumpKind::Minidump => {
            let mut v: Vec<Region> = sps
                .iter()
                .filter_map(|&sp| {
                    let m = maps
                        .iter()
                        .find(|m| m.start <= sp && sp < m.end && m.readable())?;
                    // Include the red zone below sp.
                    let start = (sp.saturating_sub(128) & !(PAGE - 1)).max(m.start);
                    let end = (start + MINI_STACK_BYTES).min(m.end);
                    Some(Region {
                        start,
                        memsz: end - start,
                        filesz: end - start,
                        flags: flags_of(m),
                    })
                })
                .collect();
            v.sort_by_key(|r| r.start);
            v.dedup_by_key(|r| r.start);
            v
        }
    }
}

/// The size a dump would have (memory plus headers and notes, roughly).
pub fn estimate(pid: i32, kind: DumpKind, maps: &[Mapping], sps: &[u64]) -> u64 {
    let rs = regions(pid, kind, maps, sps);
    let mem: u64 = rs.iter().map(|r| r.filesz).sum();
    mem + PAGE + rs.len() as u64 * 56 + sps.len() as u64 * 400 + maps.len() as u64 * 300
}

/// Why a dump may not be written.
#[derive(Debug, thiserror::Error)]
pub enum SpaceError {
    /// The estimate is over the cap.
    #[error("estimated {} exceeds the dump size cap {}", human(*estimate), human(*cap))]
    OverCap { estimate: u64, cap: u64 },
    /// The free space of the target filesystem is unknown.
    #[error("cannot stat {}: {source}", dir.display())]
    Stat {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The dump does not fit in the free space at all (whatever the reserve, even 0).
    #[error(
        "{} free on {}: an estimated {} does not fit",
        human(*free),
        dir.display(),
        human(*estimate)
    )]
    NoRoom {
        free: u64,
        dir: PathBuf,
        estimate: u64,
    },
    /// Writing would eat into the reserve.
    #[error(
        "{} free on {}: writing an estimated {} would leave less than the reserve of {}",
        human(*free),
        dir.display(),
        human(*estimate),
        human(*reserve)
    )]
    Reserve {
        free: u64,
        dir: PathBuf,
        estimate: u64,
        reserve: u64,
    },
}

/// Decides whether a dump of `estimate` bytes may go to `dir`; returns the free bytes there.
pub fn check_space(dir: &Path, estimate: u64, limits: Limits) -> Result<u64, SpaceError> {
    if estimate > limits.cap {
        return Err(SpaceError::OverCap {
            estimate,
            cap: limits.cap,
        });
    }
    let free = procfs::free_bytes(dir).map_err(|source| SpaceError::Stat {
        dir: dir.to_path_buf(),
        source,
    })?;
    // A reserve of 0 still needs the dump to fit: `free - estimate` must not go below zero.
    let Some(left) = free.checked_sub(estimate) else {
        return Err(SpaceError::NoRoom {
            free,
            dir: dir.to_path_buf(),
            estimate,
        });
    };
    if left < limits.reserve {
        return Err(SpaceError::Reserve {
            free,
            dir: dir.to_path_buf(),
            estimate,
            reserve: limits.reserve,
        });
    }
    Ok(free)
}

pub fn human(b: u64) -> String {
    const U: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut i = 0;
    while v >= 1024.0 && i < U.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", U[i])
    }
}

fn read_mem(pid: i32, addr: u64, buf: &mut [u8]) -> usize {
    let local = libc::iovec {
        iov_base: buf.as_mut_ptr() as *mut libc::c_void,
        iov_len: buf.len(),
    };
    let remote = libc::iovec {
        iov_base: addr as *mut libc::c_void,
        iov_len: buf.len(),
    };
    // SAFETY: the local iovec covers `buf` exactly.
    let n = unsafe { libc::process_vm_readv(pid, &local, 1, &remote, 1, 0) };
    n.max(0) as usize
}

/// One thread for the notes: tid and `user_regs_struct` words.
pub struct DumpThread {
    pub tid: i32,
    pub regs: [u64; 27],
}

fn note(out: &mut Vec<u8>, ty: u32, desc: &[u8]) {
    let name = b"CORE\0";
    out.extend_from_slice(&(name.len() as u32).to_le_bytes());
    out.extend_from_slice(&(desc.len() as u32).to_le_bytes());
    out.extend_from_slice(&ty.to_le_bytes());
    out.extend_from_slice(name);
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
    out.extend_from_slice(desc);
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
}

fn notes(pid: i32, threads: &[DumpThread], maps: &[Mapping]) -> Vec<u8> {
    let mut out = Vec::new();
    // NT_PRPSINFO (elf_prpsinfo, 136 bytes).
    let mut ps = vec![0u8; 136];
    ps[0] = 3; // pr_state: stopped
    ps[1] = b'T';
    ps[24..28].copy_from_slice(&pid.to_le_bytes());
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    let comm = comm.trim().as_bytes();
    let n = comm.len().min(15);
    ps[40..40 + n].copy_from_slice(&comm[..n]);
    let args = procfs::cmdline(pid).join(" ");
    let a = args.as_bytes();
    let n = a.len().min(79);
    ps[56..56 + n].copy_from_slice(&a[..n]);
    note(&mut out, 3, &ps);
    // NT_PRSTATUS (elf_prstatus, 336 bytes) per thread; the first is the leader if present.
    let mut ordered: Vec<&DumpThread> = threads.iter().collect();
    ordered.sort_by_key(|t| (t.tid != pid, t.tid));
    for t in ordered {
        let mut st = vec![0u8; 336];
        st[0..4].copy_from_slice(&libc::SIGSTOP.to_le_bytes()); // si_signo
        st[12..14].copy_from_slice(&(libc::SIGSTOP as u16).to_le_bytes()); // pr_cursig
        st[32..36].copy_from_slice(&t.tid.to_le_bytes()); // pr_pid
        for (i, r) in t.regs.iter().enumerate() {
            st[112 + i * 8..120 + i * 8].copy_from_slice(&r.to_le_bytes());
        }
        note(&mut out, 1, &st);
    }
    if let Ok(auxv) = std::fs::read(format!("/proc/{pid}/auxv")) {
        note(&mut out, 6, &auxv);
    }
    // NT_FILE: the file-backed mappings.
    let files: Vec<&Mapping> = maps.iter().filter(|m| m.file_backed()).collect();
    let mut nf = Vec::new();
    nf.extend_from_slice(&(files.len() as u64).to_le_bytes());
    nf.extend_from_slice(&PAGE.to_le_bytes());
    for m in &files {
        nf.extend_from_slice(&m.start.to_le_bytes());
        nf.extend_from_slice(&m.end.to_le_bytes());
        nf.extend_from_slice(&(m.offset / PAGE).to_le_bytes());
    }
    for m in &files {
        nf.extend_from_slice(m.path.as_bytes());
        nf.push(0);
    }
    note(&mut out, 0x4649_4c45, &nf);
    out
}

/// Writes a dump of `pid` (stopped by the caller) to `path` (created, never overwritten);
/// returns the bytes written.
pub fn write(
    path: &Path,
    pid: i32,
    kind: DumpKind,
    threads: &[DumpThread],
) -> Result<u64, DumpError> {
    let maps = procfs::maps(pid);
    let sps: Vec<u64> = threads
        .iter()
        .map(|t| t.regs[crate::snapshot::REG_RSP])
        .collect();
    let rs = regions(pid, kind, &maps, &sps);
    let notes = notes(pid, threads, &maps);
    let phnum = rs.len() + 1;
    let notes_off = 64 + phnum as u64 * 56;
    let mut data_off = (notes_off + notes.len() as u64).div_ceil(PAGE) * PAGE;
    let ctx = || format!("writing {}", path.display());
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(io(format!("creating {}", path.display())))?;
    let mut w = BufWriter::with_capacity(1 << 20, file);
    // ELF header.
    let mut eh = Vec::with_capacity(64);
    eh.extend_from_slice(b"\x7fELF\x02\x01\x01\x00");
    eh.extend_from_slice(&[0u8; 8]);
    eh.extend_from_slice(&4u16.to_le_bytes()); // ET_CORE
    eh.extend_from_slice(&62u16.to_le_bytes()); // EM_X86_64
    eh.extend_from_slice(&1u32.to_le_bytes());
    eh.extend_from_slice(&0u64.to_le_bytes()); // entry
    eh.extend_from_slice(&64u64.to_le_bytes()); // phoff
    eh.extend_from_slice(&0u64.to_le_bytes()); // shoff
    eh.extend_from_slice(&0u32.to_le_bytes()); // flags
    eh.extend_from_slice(&64u16.to_le_bytes()); // ehsize
    eh.extend_from_slice(&56u16.to_le_bytes()); // phentsize
    eh.extend_from_slice(&(phnum.min(0xffff) as u16).to_le_bytes());
    eh.extend_from_slice(&64u16.to_le_bytes()); // shentsize
    eh.extend_from_slice(&0u16.to_le_bytes()); // shnum
    eh.extend_from_slice(&0u16.to_le_bytes()); // shstrndx
    w.write_all(&eh).map_err(io(ctx()))?;
    let ph = |ty: u32, flags: u32, off: u64, vaddr: u64, filesz: u64, memsz: u64, align: u64| {
        let mut p = Vec::with_capacity(56);
        p.extend_from_slice(&ty.to_le_bytes());
        p.extend_from_slice(&flags.to_le_bytes());
        p.extend_from_slice(&off.to_le_bytes());
        p.extend_from_slice(&vaddr.to_le_bytes());
        p.extend_from_slice(&0u64.to_le_bytes());
        p.extend_from_slice(&filesz.to_le_bytes());
        p.extend_from_slice(&memsz.to_le_bytes());
        p.extend_from_slice(&align.to_le_bytes());
        p
    };
    w.write_all(&ph(4, 0, notes_off, 0, notes.len() as u64, 0, 4))
        .map_err(io(ctx()))?;
    let mut offs = Vec::with_capacity(rs.len());
    for r in &rs {
        offs.push(data_off);
        w.write_all(&ph(1, r.flags, data_off, r.start, r.filesz, r.memsz, PAGE))
            .map_err(io(ctx()))?;
        data_off += r.filesz;
    }
    w.write_all(&notes).map_err(io(ctx()))?;
    let mut buf = vec![0u8; 1 << 20];
    for (r, off) in rs.iter().zip(offs) {
        if r.filesz == 0 {
            continue;
        }
        w.seek(SeekFrom::Start(off)).map_err(io(ctx()))?;
        let mut at = r.start;
        let end = r.start + r.filesz;
        while at < end {
            let n = ((end - at) as usize).min(buf.len());
            let chunk = &mut buf[..n];
            let got = read_mem(pid, at, chunk);
            if got < n {
                // Page by page past the first unreadable byte; holes become zeros.
                let mut p = got;
                while p < n {
                    let len = (PAGE as usize).min(n - p);
                    let g = read_mem(pid, at + p as u64, &mut chunk[p..p + len]);
                    chunk[p + g..p + len].fill(0);
                    p += len;
                }
            }
            w.write_all(chunk).map_err(io(ctx()))?;
            at += n as u64;
        }
    }
    let file = w.into_inner().map_err(|e| DumpError::Io {
        context: ctx(),
        source: e.into_error(),
    })?;
    let len = file.metadata().map_err(io(ctx()))?.len();
    Ok(len)
}

/// Stops a process (SIGSTOP) unless it is stopped already, and continues it on drop; waits
/// (bounded) until every thread is stopped.
pub struct Paused {
    pid: i32,
    ours: bool,
    pub started: std::time::Instant,
}

impl Paused {
    pub fn stop(pid: i32, within: std::time::Duration) -> Self {
        let started = std::time::Instant::now();
        let stopped = |pid| {
            procfs::tasks(pid).iter().all(|&t| {
                procfs::task_stat(pid, t).is_none_or(|s| matches!(s.state, 'T' | 't' | 'Z' | 'X'))
            })
        };
        let leader_stopped = procfs::task_stat(pid, pid).is_some_and(|s| s.state == 'T');
        let ours = !leader_stopped;
        if ours {
            // SAFETY: signalling a process of ours.
            unsafe { libc::kill(pid, libc::SIGSTOP) };
        }
        let deadline = started + within;
        while !stopped(pid) && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        Self { pid, ours, started }
    }
}

impl Drop for Paused {
    fn drop(&mut self) {
        if self.ours {
            // SAFETY: continuing the process we stopped.
            unsafe { libc::kill(self.pid, libc::SIGCONT) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(perms: &str, inode: u64, path: &str) -> Mapping {
        Mapping {
            start: 0x1000,
            end: 0x3000,
            perms: perms.into(),
            offset: 0,
            inode,
            path: path.into(),
        }
    }

    #[test]
    fn filter_bits() {
        let me = std::process::id() as i32;
        assert_eq!(dump_len(&m("rw-p", 0, ""), 0x33, me, false), 0x2000);
        assert_eq!(dump_len(&m("rw-p", 0, "[heap]"), 0x33, me, false), 0x2000);
        assert_eq!(
            dump_len(&m("rw-s", 0, "/SYSV0 (deleted)"), 0x33, me, false),
            0x2000
        );
        assert_eq!(dump_len(&m("r--p", 5, "/x"), 0x33, me, false), 0); // not mapped here: no ELF
        assert_eq!(dump_len(&m("r--p", 5, "/x"), 0x37, me, false), 0x2000);
        assert_eq!(dump_len(&m("---p", 0, ""), 0x33, me, false), 0);
        assert_eq!(dump_len(&m("rw-p", 0, ""), 0x32, me, false), 0);
        // A written private file mapping (.data) counts as anonymous memory.
        assert_eq!(dump_len(&m("rw-p", 5, "/x"), 0x33, me, true), 0x2000);
        assert_eq!(dump_len(&m("rw-p", 5, "/x"), 0x33, me, false), 0);
    }

    #[test]
    fn refuses_over_cap_and_reserve() {
        let d = tempfile::tempdir().unwrap();
        let r = check_space(
            d.path(),
            10 << 20,
            Limits {
                reserve: 0,
                cap: 1 << 20,
            },
        );
        assert!(r.unwrap_err().to_string().contains("cap"));
        let r = check_space(
            d.path(),
            1,
            Limits {
                reserve: u64::MAX / 2,
                cap: u64::MAX,
            },
        );
        assert!(r.unwrap_err().to_string().contains("reserve"));
        assert!(check_space(
            d.path(),
            1,
            Limits {
                reserve: 0,
                cap: u64::MAX
            }
        )
        .is_ok());
    }

    #[test]
    fn space_and_kind_errors_carry_the_figures() {
        let d = tempfile::tempdir().unwrap();
        let e = check_space(
            d.path(),
            3 << 30,
            Limits {
                reserve: 0,
                cap: 1 << 30,
            },
        )
        .unwrap_err();
        assert!(matches!(
            e,
            SpaceError::OverCap {
                estimate,
                cap
            } if estimate == 3 << 30 && cap == 1 << 30
        ));
        assert_eq!(
            e.to_string(),
            "estimated 3.0 GiB exceeds the dump size cap 1.0 GiB"
        );
        match check_space(
            d.path(),
            1 << 20,
            Limits {
                reserve: u64::MAX,
                cap: u64::MAX,
            },
        ) {
            Err(e @ SpaceError::Reserve { free, .. }) => assert_eq!(
                e.to_string(),
                format!(
                    "{} free on {}: writing an estimated 1.0 MiB would leave less than the \
                     reserve of 16777216.0 TiB",
                    human(free),
                    d.path().display()
                )
            ),
            other => panic!("{other:?}"),
        }
        // A reserve of 0 does not turn the check off: a dump larger than the free space is
        // refused (it used to pass and fail with ENOSPC half written).
        match check_space(
            d.path(),
            u64::MAX,
            Limits {
                reserve: 0,
                cap: u64::MAX,
            },
        ) {
            Err(e @ SpaceError::NoRoom { free, estimate, .. }) => {
                assert_eq!(estimate, u64::MAX);
                assert_eq!(
                    e.to_string(),
                    format!(
                        "{} free on {}: an estimated 16777216.0 TiB does not fit",
                        human(free),
                        d.path().display()
                    )
                );
            }
            other => panic!("{other:?}"),
        }
        let missing = d.path().join("missing");
        match check_space(&missing, 1, Limits { reserve: 0, cap: 1 }) {
            Err(SpaceError::Stat { dir, source }) => {
                assert_eq!(dir, missing);
                assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!("mini".parse::<DumpKind>().unwrap(), DumpKind::Minidump);
        let e = "full".parse::<DumpKind>().unwrap_err();
        assert_eq!(e, UnknownDumpKind("full".into()));
        assert_eq!(
            e.to_string(),
            "unknown dump kind `full`: expected minidump or core"
        );
    }
}
