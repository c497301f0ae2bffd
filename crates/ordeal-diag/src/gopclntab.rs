//! Function names of a Go binary from `.gopclntab` (present even in stripped binaries):
//! the Go 1.16/1.17 layout (magic 0xfffffffa) and the Go 1.18+ layouts (0xfffffff0,
//! 0xfffffff1). Only entry addresses and names; no pc → line tables.

use object::{Object, ObjectSection};

fn uint(b: &[u8], off: usize, size: usize) -> Option<u64> {
    let s = b.get(off..off + size)?;
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
