//! Function names, source files and lines of a Go binary from `.gopclntab` (present even in
//! stripped binaries): the Go 1.16/1.17 layout (magic 0xfffffffa) and the Go 1.18+ layouts
//! (0xfffffff0, 0xfffffff1). Names from the function table ([`symbols`]); file:line from
//! each function's `pcfile`/`pcln` pc-value tables and the compilation-unit and file tables
//! ([`Table`]), following the inline tree (funcdata found through the runtime's
//! `moduledata`) up to the function the frame names.

use crate::image::Image;
use object::{Object, ObjectSection};
use std::ops::Range;
use std::sync::Arc;

fn uint(b: &[u8], off: usize, size: usize) -> Option<u64> {
    let s = b.get(off..off.checked_add(size)?)?;
    Some(match size {
        4 => u32::from_le_bytes(s.try_into().ok()?) as u64,
        8 => u64::from_le_bytes(s.try_into().ok()?),
        _ => return None,
    })
}

fn cstr(b: &[u8], off: usize) -> Option<String> {
    let s = b.get(off..)?;
    let end = s.iter().position(|&c| c == 0)?;
    Some(String::from_utf8_lossy(&s[..end]).into_owned())
}

/// (entry address, name) of every function, or `None` without a readable `.gopclntab`.
pub fn symbols(file: &object::File<'_>, _data: &[u8]) -> Option<Vec<(u64, String)>> {
    let sec = file.section_by_name(".gopclntab")?;
    let tab = sec.data().ok()?;
    let text_addr = file.section_by_name(".text").map(|s| s.address());
    parse(tab, text_addr)
}

/// Parses a `.gopclntab` image (`text_addr`: the `.text` address, for binaries whose
/// header leaves `textStart` to a relocation).
pub fn parse(tab: &[u8], text_addr: Option<u64>) -> Option<Vec<(u64, String)>> {
    let magic = uint(tab, 0, 4)? as u32;
    let ptr = *tab.get(7)? as usize;
    if ptr != 8 && ptr != 4 {
        return None;
    }
    let word = |i: usize| uint(tab, 8 + i * ptr, ptr);
    let mut out = Vec::new();
    match magic {
        0xffff_fff0 | 0xffff_fff1 => {
            let nfunc = word(0)? as usize;
            let mut text_start = word(2)?;
            if text_start == 0 {
                text_start = text_addr?;
            }
            let funcname = word(3)? as usize;
            let pcln = word(7)? as usize;
            for i in 0..nfunc {
                let entry_off = uint(tab, pcln + i * 8, 4)?;
                let func_off = uint(tab, pcln + i * 8 + 4, 4)? as usize;
                let name_off = uint(tab, pcln + func_off + 4, 4)? as usize;
                let name = cstr(tab, funcname + name_off)?;
                out.push((text_start + entry_off, name));
            }
        }
        0xffff_fffa => {
            let nfunc = word(0)? as usize;
            let funcname = word(2)? as usize;
            let pcln = word(6)? as usize;
            for i in 0..nfunc {
                let entry = uint(tab, pcln + i * 2 * ptr, ptr)?;
                let func_off = uint(tab, pcln + i * 2 * ptr + ptr, ptr)? as usize;
                let name_off = uint(tab, pcln + func_off + ptr, 4)? as usize;
                let name = cstr(tab, funcname + name_off)?;
                out.push((entry, name));
            }
        }
        _ => return None,
    }
    out.sort_by_key(|(a, _)| *a);
    Some(out)
}

/// Go's `PCDATA_InlTreeIndex` and `FUNCDATA_InlTree` (the same from Go 1.12 to today).
const PCDATA_INL_TREE_INDEX: usize = 2;
const FUNCDATA_INL_TREE: usize = 3;
/// Bounds the walk up an inline tree (malformed data could make it loop).
const MAX_INLINE_DEPTH: usize = 64;

/// Which `.gopclntab` layout.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Version {
    /// Go 1.16 and 1.17 (magic 0xfffffffa): absolute entries and funcdata pointers.
    Go116,
    /// Go 1.18 and 1.19 (0xfffffff0): entries relative to `textStart`, funcdata relative to
    /// `go.func.*`.
    Go118,
    /// Go 1.20+ (0xfffffff1): as 1.18, with `startLine` in `_func`.
    Go120,
}

/// A Go binary's pc → file:line tables: the function table, each function's `pcfile` and
/// `pcln` pc-value tables, the compilation-unit and file tables, and the inline trees (to
/// give, for inlined code, the line in the function the frame names).
///
/// Every read is bounds-checked: malformed data gives `None`, never a panic.
pub(crate) struct Table {
    data: Arc<Image>,
    /// `.gopclntab` in `data`.
    tab: Range<usize>,
    /// Its linked address (funcdata pointers of Go 1.16 are absolute).
    tab_addr: u64,
    version: Version,
    ptr: usize,
    quantum: u64,
    nfunc: usize,
    text_start: u64,
    cutab: usize,
    filetab: usize,
    pctab: usize,
    pcln: usize,
    /// Linked address of `go.func.*` (Go 1.18+ funcdata base), from the runtime's
    /// `moduledata`; `None` when not found (then no inline resolution).
    gofunc: Option<u64>,
    /// (linked address, size, file offset) of the sections with file contents.
    sections: Vec<(u64, u64, usize)>,
}

fn uvarint(b: &[u8], off: &mut usize) -> Option<u32> {
    let mut v: u32 = 0;
    let mut shift = 0;
    loop {
        let c = *b.get(*off)?;
        *off += 1;
        v |= ((c & 0x7f) as u32).checked_shl(shift)?;
        if c & 0x80 == 0 {
            return Some(v);
        }
        shift += 7;
        if shift >= 35 {
            return None;
        }
    }
}

impl Table {
    /// The table of an ELF image, `None` without a readable `.gopclntab` of a known layout.
    pub(crate) fn load(data: &Arc<Image>) -> Option<Self> {
        let file = object::File::parse(&data[..]).ok()?;
        let sec = file.section_by_name(".gopclntab")?;
        let (off, size) = sec.file_range()?;
        let start = usize::try_from(off).ok()?;
        let end = start.checked_add(usize::try_from(size).ok()?)?;
        let tab = data.get(start..end)?;
        let version = match uint(tab, 0, 4)? as u32 {
            0xffff_fffa => Version::Go116,
            0xffff_fff0 => Version::Go118,
            0xffff_fff1 => Version::Go120,
            _ => return None,
        };
        let quantum = *tab.get(6)? as u64;
        let ptr = *tab.get(7)? as usize;
        if (ptr != 8 && ptr != 4) || quantum == 0 {
            return None;
        }
        let word = |i: usize| uint(tab, 8 + i * ptr, ptr);
        let us = |i: usize| word(i).and_then(|w| usize::try_from(w).ok());
        let sections = file
            .sections()
            .filter_map(|s| {
                let (o, n) = s.file_range()?;
                (s.address() != 0).then_some((s.address(), n, usize::try_from(o).ok()?))
            })
            .collect();
        let mut t = Self {
            data: Arc::clone(data),
            tab: start..end,
            tab_addr: sec.address(),
            version,
            ptr,
            quantum,
            nfunc: us(0)?,
            text_start: 0,
            cutab: 0,
            filetab: 0,
            pctab: 0,
            pcln: 0,
            gofunc: None,
            sections,
        };
        if version == Version::Go116 {
            (t.cutab, t.filetab, t.pctab, t.pcln) = (us(3)?, us(4)?, us(5)?, us(6)?);
        } else {
            t.text_start = match word(2)? {
                0 => file.section_by_name(".text")?.address(),
                a => a,
            };
            (t.cutab, t.filetab, t.pctab, t.pcln) = (us(4)?, us(5)?, us(6)?, us(7)?);
            t.gofunc = t.find_gofunc(&file, word(3)?);
        }
        Some(t)
    }

    fn tab(&self) -> &[u8] {
        // The range was checked against `data` in `load`.
        self.data.get(self.tab.clone()).unwrap_or(&[])
    }

    fn u32_at(&self, off: usize) -> Option<u32> {
        uint(self.tab(), off, 4).map(|v| v as u32)
    }

    /// `go.func.*` from the runtime's `moduledata` (in `.noptrdata`): the word holding the
    /// `.gopclntab` address followed by the address of its function-name table.
    fn find_gofunc(&self, file: &object::File<'_>, funcname_off: u64) -> Option<u64> {
        let p = self.ptr;
        // Word index of `gofunc`: Go 1.20 added `covctrs, ecovctrs` before it.
        let idx = if self.version == Version::Go120 {
            40
        } else {
            38
        };
        for name in [".noptrdata", ".data"] {
            let Some(b) = file.section_by_name(name).and_then(|s| s.data().ok()) else {
                continue;
            };
            let mut off = 0;
            while off + (idx + 1) * p <= b.len() {
                let w = |i: usize| uint(b, off + i * p, p);
                if w(0) == Some(self.tab_addr)
                    && w(1) == self.tab_addr.checked_add(funcname_off)
                    && w(22) == Some(self.text_start)
                {
                    return w(idx).filter(|&a| a != 0);
                }
                off += p;
            }
        }
        None
    }

    /// `len` bytes at linked address `addr`, from the section holding them.
    fn at_addr(&self, addr: u64, len: usize) -> Option<&[u8]> {
        let &(a, n, o) = self
            .sections
            .iter()
            .find(|(a, n, _)| *a <= addr && addr - a < *n)?;
        let rel = usize::try_from(addr - a).ok()?;
        if rel.checked_add(len)? as u64 > n {
            return None;
        }
        let s = o.checked_add(rel)?;
        self.data.get(s..s.checked_add(len)?)
    }

    /// (entry address, offset of `_func` in the table) of the function holding `pc`.
    fn func_of(&self, pc: u64) -> Option<(u64, usize)> {
        let tab = self.tab();
        // Entry i (0..=nfunc; the last one is the end of the last function).
        let entry = |i: usize| -> Option<(u64, usize)> {
            if self.version == Version::Go116 {
                let p = self.ptr;
                let o = self.pcln.checked_add(i.checked_mul(2 * p)?)?;
                let f = uint(tab, o.checked_add(p)?, p)?;
                Some((uint(tab, o, p)?, usize::try_from(f).ok()?))
            } else {
                let o = self.pcln.checked_add(i.checked_mul(8)?)?;
                let e = self.text_start.checked_add(uint(tab, o, 4)?)?;
                Some((e, uint(tab, o.checked_add(4)?, 4)? as usize))
            }
        };
        if self.nfunc == 0 || pc < entry(0)?.0 || pc >= entry(self.nfunc)?.0 {
            return None;
        }
        // The last entry <= pc.
        let (mut lo, mut hi) = (0, self.nfunc);
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if entry(mid)?.0 <= pc {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        let (e, f) = entry(lo)?;
        // Within the table, so that the offsets of its fields cannot overflow.
        let func = self.pcln.checked_add(f).filter(|&o| o < tab.len())?;
        Some((e, func))
    }

    /// Offset of the `_func` field that comes `rel` bytes after its entry field.
    fn field(&self, func: usize, rel: usize) -> usize {
        let entry = if self.version == Version::Go116 {
            self.ptr
        } else {
            4
        };
        func + entry - 4 + rel
    }

    /// Size of the fixed part of `_func` (the pcdata offsets follow it).
    fn func_size(&self) -> usize {
        match self.version {
            Version::Go116 => self.ptr + 36,
            Version::Go118 => 40,
            Version::Go120 => 44,
        }
    }

    /// The value at `target` of the pc-value table at `off` (relative to `pctab`) of the
    /// function at `entry`: zig-zag varint value deltas, each followed by a varint pc delta
    /// in units of the pc quantum; the value starts at -1.
    fn pcvalue(&self, off: u32, entry: u64, target: u64) -> Option<i32> {
        if off == 0 {
            return None;
        }
        let tab = self.tab();
        let mut p = self.pctab.checked_add(off as usize)?;
        let mut val: i32 = -1;
        let mut pc = entry;
        let mut first = true;
        loop {
            let uv = uvarint(tab, &mut p)?;
            if uv == 0 && !first {
                return None;
            }
            first = false;
            let delta = if uv & 1 != 0 { !(uv >> 1) } else { uv >> 1 };
            val = val.wrapping_add(delta as i32);
            let pcd = uvarint(tab, &mut p)? as u64;
            pc = pc.checked_add(pcd.checked_mul(self.quantum)?)?;
            if target < pc {
                return Some(val);
            }
        }
    }

    fn npcdata(&self, func: usize) -> Option<usize> {
        Some(self.u32_at(self.field(func, 28))? as usize)
    }

    fn pcdata(&self, func: usize, entry: u64, i: usize, pc: u64) -> Option<i32> {
        if i >= self.npcdata(func)? {
            return None;
        }
        let off = self.u32_at(self.func_size() + func + 4 * i)?;
        self.pcvalue(off, entry, pc)
    }

    /// The inline tree of a function: its linked address.
    fn inline_tree(&self, func: usize) -> Option<u64> {
        let nfuncdata = *self.tab().get(self.func_size() + func - 1)? as usize;
        if FUNCDATA_INL_TREE >= nfuncdata {
            return None;
        }
        let after_pcdata = self.func_size() + func + self.npcdata(func)?.checked_mul(4)?;
        if self.version == Version::Go116 {
            let p = self.ptr;
            let mut at = after_pcdata;
            // Pointers are aligned (by address) to the pointer size.
            if p == 8 && !self.tab_addr.wrapping_add(at as u64).is_multiple_of(8) {
                at += 4;
            }
            let a = uint(self.tab(), at.checked_add(FUNCDATA_INL_TREE * p)?, p)?;
            (a != 0).then_some(a)
        } else {
            let off = self.u32_at(after_pcdata + 4 * FUNCDATA_INL_TREE)?;
            (off != u32::MAX).then_some(self.gofunc?.checked_add(off as u64)?)
        }
    }

    /// Source file and line of `svma` (a linked address). For code inlined into the
    /// function holding `svma`, where that function called (inlined) it.
    pub(crate) fn find(&self, svma: u64) -> Option<(String, u32)> {
        let (entry, func) = self.func_of(svma)?;
        let mut pc = svma;
        if let Some(tree) = self.inline_tree(func) {
            let (size, parent_pc) = match self.version {
                Version::Go120 => (16, 8),
                _ => (20, 16),
            };
            for _ in 0..MAX_INLINE_DEPTH {
                let Some(ix) = self.pcdata(func, entry, PCDATA_INL_TREE_INDEX, pc) else {
                    break;
                };
                let Ok(ix) = u64::try_from(ix) else { break };
                let at = tree
                    .checked_add(ix.checked_mul(size)?)?
                    .checked_add(parent_pc)?;
                let b = self.at_addr(at, 4)?;
                pc = entry.checked_add(u32::from_le_bytes(b.try_into().ok()?) as u64)?;
            }
        }
        let fileno = self.pcvalue(self.u32_at(self.field(func, 20))?, entry, pc)?;
        let line = self.pcvalue(self.u32_at(self.field(func, 24))?, entry, pc)?;
        let cu = self.u32_at(self.field(func, 32))? as usize;
        let fileno = usize::try_from(fileno).ok()?;
        let line = u32::try_from(line).ok().filter(|&l| l != 0)?;
        let slot = self
            .cutab
            .checked_add(cu.checked_add(fileno)?.checked_mul(4)?)?;
        let file_off = self.u32_at(slot)?;
        if file_off == u32::MAX {
            return None;
        }
        let name = cstr(self.tab(), self.filetab.checked_add(file_off as usize)?)?;
        Some((name, line))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Corrupted tables (header, function table, pc-value tables) give `None` or some
    /// answer, never a panic. Uses Debian's etcd (a stripped Go 1.19 binary) when present.
    #[test]
    fn corrupted_tables_never_panic() {
        if !ordeal_test_support::installed(&["/usr/bin/etcd"], "etcd-server") {
            return;
        }
        let mut data = std::fs::read("/usr/bin/etcd").unwrap();
        let (tab, text) = {
            let file = object::File::parse(&data[..]).unwrap();
            let (off, size) = file
                .section_by_name(".gopclntab")
                .unwrap()
                .file_range()
                .unwrap();
            let t = file.section_by_name(".text").unwrap();
            (
                off as usize..(off + size) as usize,
                t.address()..t.address() + t.size(),
            )
        };
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            seed >> 33
        };
        for round in 0..60 {
            // Early rounds hit the header and function table, later ones anywhere.
            let span = if round < 30 { 4096 } else { tab.len() as u64 };
            let saved: Vec<(usize, u8)> = (0..16)
                .map(|_| {
                    let at = tab.start + (next() % span) as usize;
                    let old = data[at];
                    data[at] ^= (next() as u8) | 1;
                    (at, old)
                })
                .collect();
            let shared = Arc::new(Image::from(data));
            if let Some(t) = Table::load(&shared) {
                for _ in 0..200 {
                    let pc = text.start + next() % (text.end - text.start);
                    let _ = t.find(pc);
                }
            }
            data = shared.to_vec();
            for (at, old) in saved {
                data[at] = old;
            }
        }
    }
}
