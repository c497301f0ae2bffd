//! Stack unwinding and symbolization of a (stopped, then resumed) thread from its registers
//! and a copy of its stack.
//!
//! Unwinding uses `framehop` with each module's `.eh_frame`/`.eh_frame_hdr`/`.debug_frame`
//! (DWARF CFI), falling back to frame pointers where there is none; when CFI unwinding ends
//! after fewer frames than a plain frame-pointer walk, the frame-pointer walk is kept.
//! Symbols come from `.symtab`; for Go binaries (stripped ones too) from `.gopclntab` (Go 1.16
//! and 1.18+ layouts); else from a debug file found by build id under
//! `/usr/lib/debug/.build-id/` (Debian's `-dbg`/`-dbgsym` packages); else from `.dynsym`
//! (exported functions only). Source file and line come from DWARF (`.debug_info`,
//! `.debug_line`) of the module or of its debug file, read lazily once per module
//! ([`crate::lines`]); without usable DWARF, for Go binaries, from `.gopclntab`'s pc-value
//! tables ([`crate::gopclntab::Table`]).

use crate::image::Image;
use crate::lines::Lines;
use crate::procfs::Mapping;
use framehop::x86_64::{CacheX86_64, UnwindRegsX86_64, UnwinderX86_64};
use framehop::{ExplicitModuleSectionInfo, FrameAddress, Module, Unwinder};
use object::{Object, ObjectSection, ObjectSegment, ObjectSymbol};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::ops::{Deref, Range};
use std::sync::{Arc, OnceLock};

/// At most this many frames per thread.
pub const MAX_FRAMES: usize = 256;

/// A slice of a shared file image (framehop wants owned section data).
#[derive(Clone)]
pub struct Bytes(Arc<Image>, Range<usize>);

impl Bytes {
    /// `range` of `data`, if it lies within it.
    pub(crate) fn new(data: Arc<Image>, range: Range<usize>) -> Option<Self> {
        (range.start <= range.end && range.end <= data.len()).then_some(Self(data, range))
    }
}

impl std::fmt::Debug for Bytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Bytes({:?} of {})", self.1, self.0.len())
    }
}

// SAFETY: the bytes live in the `Image` (a mapping or a heap buffer), owned by the `Arc` and
// never mutated, moved or reallocated (an `Image` has no mutable access), so they stay at the
// same address however a `Bytes` moves, while any clone of the `Arc` lives.
unsafe impl gimli::StableDeref for Bytes {}
// SAFETY: a clone shares the same `Arc` and range, so it derefs to the very same bytes.
unsafe impl gimli::CloneStableDeref for Bytes {}

impl Deref for Bytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0[self.1.clone()]
    }
}

/// One frame of a stack trace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Frame {
    /// The instruction pointer (first frame) or a return address.
    pub addr: u64,
    /// File name of the module (`libc.so.6`), if the address is in one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub module: Option<String>,
    /// Function name, if known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub function: Option<String>,
    /// Offset of `addr` from the start of `function`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
    /// Source file, as DWARF records it (absolute when the compilation directory is), when
    /// the module has line info; for Go without DWARF, as `.gopclntab` records it. With inlining, that of the outermost function (the one
    /// `function` names): where it called or inlined the code at `addr`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// Line in `file`; for a return address, the line of the call.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u32>,
}

impl std::fmt::Display for Frame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:#014x}", self.addr)?;
        match (&self.function, self.offset) {
            (Some(n), Some(o)) => write!(f, " {n}+{o:#x}")?,
            (Some(n), None) => write!(f, " {n}")?,
            _ => write!(f, " ??")?,
        }
        if let Some(file) = &self.file {
            write!(f, " at {file}")?;
            if let Some(l) = self.line {
                write!(f, ":{l}")?;
            }
        }
        if let Some(m) = &self.module {
            write!(f, " ({m})")?;
        }
        Ok(())
    }
}

/// Where symbols of a module come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SymbolSource {
    Symtab,
    /// `.symtab` of a separate debug file found by build id under /usr/lib/debug.
    DebugFile,
    Dynsym,
    Gopclntab,
    None,
}

struct Sym {
    addr: u64,
    size: u64,
    name: String,
}

struct LoadedModule {
    name: String,
    avma: Range<u64>,
    bias: u64,
    /// Sorted by address.
    symbols: Vec<Sym>,
    source: SymbolSource,
    /// The file image, for reading DWARF when first needed.
    data: Arc<Image>,
    /// Line tables, loaded at the first look-up in this module (`None`: no usable DWARF).
    lines: OnceLock<Option<Lines>>,
    /// Go's pc → file:line tables, loaded at the first look-up DWARF does not answer.
    go_lines: OnceLock<Option<crate::gopclntab::Table>>,
}

impl LoadedModule {
    fn lookup(&self, avma: u64) -> Option<(&str, u64)> {
        let svma = avma.wrapping_sub(self.bias);
        let i = self.symbols.partition_point(|s| s.addr <= svma);
        let s = self.symbols.get(i.checked_sub(1)?)?;
        let off = svma - s.addr;
        // A zero size (Go, some asm) means "up to the next symbol".
        if s.size != 0 && off >= s.size.max(1) {
            return None;
        }
        Some((&s.name, off))
    }

    fn line_of(&self, avma: u64) -> Option<(String, u32)> {
        let svma = avma.wrapping_sub(self.bias);
        let dwarf = self.lines.get_or_init(|| Lines::load(&self.data));
        if let Some(found) = dwarf.as_ref().and_then(|l| l.find(svma)) {
            return Some(found);
        }
        // Go: stripped, or with compressed DWARF (the Go linker's default).
        self.go_lines
            .get_or_init(|| crate::gopclntab::Table::load(&self.data))
            .as_ref()?
            .find(svma)
    }
}

/// The modules of one process, loaded once for all its threads.
pub struct ProcessModules {
    unwinder: UnwinderX86_64<Bytes>,
    modules: Vec<LoadedModule>,
}

/// What symbolization covers for one module.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModuleInfo {
    pub path: String,
    pub start: u64,
    pub end: u64,
    pub symbols: usize,
    pub source: SymbolSource,
}

impl ProcessModules {
    /// Loads every file-backed executable mapping of `maps` (read through
    /// `/proc/PID/root`, so a process in another mount namespace works too).
    pub fn load(pid: i32, maps: &[Mapping]) -> Self {
        let mut by_path: BTreeMap<&str, Vec<&Mapping>> = BTreeMap::new();
        for m in maps.iter().filter(|m| m.file_backed()) {
            by_path.entry(m.path.as_str()).or_default().push(m);
        }
        let mut unwinder = UnwinderX86_64::new();
        let mut modules = Vec::new();
        for (path, ms) in by_path {
            let Some(exec) = ms.iter().find(|m| m.executable()) else {
                continue;
            };
            let data =
                Image::open(format!("/proc/{pid}/root{path}")).or_else(|_| Image::open(path));
            let Ok(data) = data else {
                continue;
            };
            if let Some((module, loaded)) = load_module(path, Arc::new(data), exec, &ms) {
                unwinder.add_module(module);
                modules.push(loaded);
            }
        }
        modules.sort_by_key(|m| m.avma.start);
        Self { unwinder, modules }
    }

    pub fn modules(&self) -> Vec<ModuleInfo> {
        self.modules
            .iter()
            .map(|m| ModuleInfo {
                path: m.name.clone(),
                start: m.avma.start,
                end: m.avma.end,
                symbols: m.symbols.len(),
                source: m.source,
            })
            .collect()
    }

    fn module_of(&self, addr: u64) -> Option<&LoadedModule> {
        let i = self.modules.partition_point(|m| m.avma.start <= addr);
        let m = self.modules.get(i.checked_sub(1)?)?;
        m.avma.contains(&addr).then_some(m)
    }

    /// Names an address (`lookup` = the address to look up: a return address minus one,
    /// so that a return address gets the call's line, not the next statement's).
    pub fn symbolize(&self, addr: u64, lookup: u64) -> Frame {
        let m = self.module_of(lookup);
        let sym = m.and_then(|m| m.lookup(lookup));
        let (file, line) = m.and_then(|m| m.line_of(lookup)).unzip();
        Frame {
            addr,
            module: m.map(|m| {
                m.name
                    .rsplit('/')
                    .next()
                    .unwrap_or(m.name.as_str())
                    .to_string()
            }),
            // Rust symbols read as paths (`{:#}`: without the hash); others stay as they are.
            function: sym.map(|(n, _)| format!("{:#}", rustc_demangle::demangle(n))),
            offset: sym.map(|(_, o)| o + (addr - lookup)),
            file,
            line,
        }
    }

    /// Unwinds a thread from `ip`/`sp`/`bp` over its copied stack (`stack` starts at
    /// `stack_base`), and names every frame.
    pub fn unwind(&self, ip: u64, sp: u64, bp: u64, stack_base: u64, stack: &[u8]) -> Vec<Frame> {
        let read = |addr: u64| -> Result<u64, ()> {
            let off = addr.checked_sub(stack_base).ok_or(())? as usize;
            let b = stack.get(off..off + 8).ok_or(())?;
            Ok(u64::from_le_bytes(b.try_into().map_err(|_| ())?))
        };
        let mut cfi = Vec::new();
        let mut cache = CacheX86_64::<_>::new();
        let mut read_stack = read;
        let mut iter = self.unwinder.iter_frames(
            ip,
            UnwindRegsX86_64::new(ip, sp, bp),
            &mut cache,
            &mut read_stack,
        );
        while let Ok(Some(f)) = iter.next() {
            cfi.push(f);
            if cfi.len() >= MAX_FRAMES {
                break;
            }
        }
        let fp = frame_pointer_walk(ip, bp, &read);
        let frames = if fp.len() > cfi.len() { fp } else { cfi };
        frames
            .into_iter()
            .map(|f| self.symbolize(f.address(), f.address_for_lookup()))
            .collect()
    }
}

/// The classic `[rbp] = caller's rbp, [rbp+8] = return address` chain.
fn frame_pointer_walk(
    ip: u64,
    bp: u64,
    read: &dyn Fn(u64) -> Result<u64, ()>,
) -> Vec<FrameAddress> {
    let mut out = vec![FrameAddress::InstructionPointer(ip)];
    let mut bp = bp;
    while out.len() < MAX_FRAMES && bp != 0 && bp.is_multiple_of(8) {
        let (Ok(next), Ok(ret)) = (read(bp), read(bp + 8)) else {
            break;
        };
        match FrameAddress::from_return_address(ret) {
            Some(a) if ret > 0x1000 => out.push(a),
            _ => break,
        }
        if next <= bp {
            break;
        }
        bp = next;
    }
    out
}

fn section_of(
    file: &object::File<'_>,
    data: &Arc<Image>,
    name: &str,
) -> Option<(Range<u64>, Bytes)> {
    let s = file.section_by_name(name)?;
    let (off, size) = s.file_range()?;
    let r = off as usize..(off + size) as usize;
    if r.end > data.len() {
        return None;
    }
    Some((
        s.address()..s.address() + s.size(),
        Bytes(Arc::clone(data), r),
    ))
}

fn load_module(
    path: &str,
    data: Arc<Image>,
    exec: &Mapping,
    all: &[&Mapping],
) -> Option<(Module<Bytes>, LoadedModule)> {
    let file = object::File::parse(&data[..]).ok()?;
    // Load bias: the executable mapping maps file offset `exec.offset` at `exec.start`; the
    // PT_LOAD segment holding that offset says which vaddr it was linked at.
    // The mapping starts at a page boundary, which can lie before the segment's own file
    // offset and inside the previous segment's last page (lld lays out a read-only segment
    // then the text segment on one page): the latest segment starting on or after that page
    // is the one mapped. Taking the first match put the bias one page off for Rust binaries.
    const PAGE: u64 = 0x1000;
    let seg = file
        .segments()
        .filter(|s| {
            let (off, size) = s.file_range();
            (off & !(PAGE - 1)) <= exec.offset && exec.offset < off + size.max(1)
        })
        .max_by_key(|s| s.file_range().0)?;
    let (seg_off, _) = seg.file_range();
    let linked = seg
        .address()
        .wrapping_sub(seg_off)
        .wrapping_add(exec.offset);
    let bias = exec.start.wrapping_sub(linked);
    let start = all
        .iter()
        .filter(|m| m.executable())
        .map(|m| m.start)
        .min()?;
    let end = all.iter().filter(|m| m.executable()).map(|m| m.end).max()?;
    let text = section_of(&file, &data, ".text");
    let eh = section_of(&file, &data, ".eh_frame");
    let eh_hdr = section_of(&file, &data, ".eh_frame_hdr");
    let got = file
        .section_by_name(".got")
        .map(|s| s.address()..s.address() + s.size());
    let info = ExplicitModuleSectionInfo {
        base_svma: 0,
        text_svma: text.as_ref().map(|t| t.0.clone()),
        text: text.map(|t| t.1),
        stubs_svma: None,
        stub_helper_svma: None,
        got_svma: got,
        unwind_info: None,
        eh_frame_svma: eh.as_ref().map(|t| t.0.clone()),
        eh_frame: eh.map(|t| t.1),
        eh_frame_hdr_svma: eh_hdr.as_ref().map(|t| t.0.clone()),
        eh_frame_hdr: eh_hdr.map(|t| t.1),
        debug_frame: section_of(&file, &data, ".debug_frame").map(|t| t.1),
        text_segment_svma: None,
        text_segment: None,
    };
    let module = Module::new(path.to_string(), start..end, bias, info);
    let (symbols, source) = symbols_of(&file, &data);
    Some((
        module,
        LoadedModule {
            name: path.to_string(),
            avma: start..end,
            bias,
            symbols,
            source,
            data: Arc::clone(&data),
            lines: OnceLock::new(),
            go_lines: OnceLock::new(),
        },
    ))
}

/// `/usr/lib/debug/.build-id/xx/yyyy.debug` for the build id of `file`.
pub(crate) fn debug_file_path(file: &object::File<'_>) -> Option<String> {
    let id = file.build_id().ok()??;
    let hex: String = id.iter().map(|b| format!("{b:02x}")).collect();
    Some(format!(
        "/usr/lib/debug/.build-id/{}/{}.debug",
        hex.get(..2)?,
        hex.get(2..)?
    ))
}

/// `.symtab` of `/usr/lib/debug/.build-id/xx/yyyy.debug`, when installed.
fn debug_file_symbols(
    file: &object::File<'_>,
    collect: &dyn Fn(object::SymbolIterator<'_, '_>) -> Vec<Sym>,
) -> Option<Vec<Sym>> {
    let data = Image::open(debug_file_path(file)?).ok()?;
    let dbg = object::File::parse(&data[..]).ok()?;
    let v = collect(dbg.symbols());
    (!v.is_empty()).then_some(v)
}

fn symbols_of(file: &object::File<'_>, data: &[u8]) -> (Vec<Sym>, SymbolSource) {
    let collect = |it: object::SymbolIterator<'_, '_>| -> Vec<Sym> {
        let mut v: Vec<Sym> = it
            .filter(|s| s.kind() == object::SymbolKind::Text && s.address() != 0)
            .filter_map(|s| {
                Some(Sym {
                    addr: s.address(),
                    size: s.size(),
                    name: s.name().ok()?.to_string(),
                })
            })
            .collect();
        v.sort_by_key(|s| (s.addr, std::cmp::Reverse(s.size)));
        v.dedup_by_key(|s| s.addr);
        v
    };
    let v = collect(file.symbols());
    if !v.is_empty() {
        return (v, SymbolSource::Symtab);
    }
    if let Some(v) = crate::gopclntab::symbols(file, data) {
        if !v.is_empty() {
            let v = v
                .into_iter()
                .map(|(addr, name)| Sym {
                    addr,
                    size: 0,
                    name,
                })
                .collect();
            return (v, SymbolSource::Gopclntab);
        }
    }
    // A separate debug file (Debian's *-dbg / *-dbgsym packages) by build id.
    if let Some(v) = debug_file_symbols(file, &collect) {
        return (v, SymbolSource::DebugFile);
    }
    let v = collect(file.dynamic_symbols());
    if !v.is_empty() {
        return (v, SymbolSource::Dynsym);
    }
    (Vec::new(), SymbolSource::None)
}
