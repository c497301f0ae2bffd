//! Source file and line of an address from a module's DWARF (`.debug_info`, `.debug_line`,
//! ...), through `addr2line`, read in place from the module's file image.
//!
//! Loaded lazily, at most once per module ([`crate::unwind::ProcessModules`] caches it), and
//! parsed lazily per compilation unit by `addr2line`: only the units holding looked-up
//! addresses get their line programs and functions read. Malformed or missing DWARF just
//! means no file:line. Compressed debug sections (`SHF_COMPRESSED`, `.zdebug_*`) are not read.

use crate::image::Image;
use crate::unwind::Bytes;
use object::{Object, ObjectSection};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex};

type Reader = gimli::EndianReader<gimli::RunTimeEndian, Bytes>;

/// A module's line tables.
pub(crate) struct Lines {
    // `addr2line::Context` caches parsed units in cells (not `Sync`): the mutex keeps
    // `ProcessModules` shareable between threads.
    ctx: Mutex<addr2line::Context<Reader>>,
}

impl Lines {
    /// The DWARF of `data` (an ELF image), else of its separate debug file found by build id;
    /// `None` when neither has `.debug_info` and `.debug_line`, or they don't parse.
    pub(crate) fn load(data: &Arc<Image>) -> Option<Self> {
        catch_unwind(AssertUnwindSafe(|| {
            let file = object::File::parse(&data[..]).ok()?;
            if let Some(l) = Self::from_file(&file, data) {
                return Some(l);
            }
            let dbg = Arc::new(Image::open(crate::unwind::debug_file_path(&file)?).ok()?);
            let dbg_file = object::File::parse(&dbg[..]).ok()?;
            Self::from_file(&dbg_file, &dbg)
        }))
        .ok()
        .flatten()
    }

    fn from_file(file: &object::File<'_>, data: &Arc<Image>) -> Option<Self> {
        let has = |name: &str| {
            file.section_by_name(name)
                .is_some_and(|s| s.file_range().is_some_and(|(_, size)| size > 0))
        };
        if !has(".debug_info") || !has(".debug_line") {
            return None;
        }
        let endian = if file.is_little_endian() {
            gimli::RunTimeEndian::Little
        } else {
            gimli::RunTimeEndian::Big
        };
        let empty = Bytes::new(Arc::clone(data), 0..0)?;
        let dwarf = gimli::Dwarf::load(|id| -> Result<Reader, gimli::Error> {
            let bytes = file
                .section_by_name(id.name())
                // A compressed section's file bytes are not DWARF: leave it out.
                .filter(|s| {
                    s.compressed_file_range()
                        .is_ok_and(|c| c.format == object::CompressionFormat::None)
                })
                .and_then(|s| s.file_range())
                .and_then(|(off, size)| {
                    let start = usize::try_from(off).ok()?;
                    let end = start.checked_add(usize::try_from(size).ok()?)?;
                    Bytes::new(Arc::clone(data), start..end)
                })
                .unwrap_or_else(|| empty.clone());
            Ok(gimli::EndianReader::new(bytes, endian))
        })
        .ok()?;
        let ctx = addr2line::Context::from_dwarf(dwarf).ok()?;
        Some(Self {
            ctx: Mutex::new(ctx),
        })
    }

    /// File and line of `svma` (a linked address: the module's load bias removed). With
    /// inlining, that of the outermost function, the one named by the symbol table: where
    /// it called (or inlined) the innermost code.
    pub(crate) fn find(&self, svma: u64) -> Option<(String, u32)> {
        catch_unwind(AssertUnwindSafe(|| {
            let ctx = self.ctx.lock().ok()?;
            let mut frames = ctx.find_frames(svma).skip_all_loads().ok()?;
            let mut found = None;
            while let Ok(Some(f)) = frames.next() {
                if let Some(addr2line::Location {
                    file: Some(file),
                    line: Some(line),
                    ..
                }) = f.location
                {
                    if line != 0 {
                        found = Some((file.to_string(), line));
                    }
                }
            }
            found
        }))
        .ok()
        .flatten()
    }
}
