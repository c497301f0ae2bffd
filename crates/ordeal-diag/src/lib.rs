//! Diagnostics of running processes, usable without the rest of ordeal:
//!
//! - [`procfs`]: what /proc says about a process and its threads (state, the system call a
//!   thread is blocked in, wchan, CPU time, fds and sockets, memory figures, mappings);
//! - [`unwind`]: stack unwinding (DWARF CFI through `framehop`, frame-pointer fallback) and
//!   symbolization (`.symtab`/`.dynsym`, `.gopclntab` for Go) from registers and a copy of
//!   the stack taken while the thread was stopped;
//! - [`snapshot`]: the snapshot model, its JSON and text forms;
//! - [`hang`]: the hang classifier (blocked vs busy) fed with samples over time;
//! - [`dump`]: ELF core and mini-core writers honouring `coredump_filter`, size estimates and
//!   the free-space check that runs before anything is written.
//!
//! Getting registers needs a ptrace stop, which only the process' tracer can arrange:
//! ordeal's tracer does it ([`snapshot::Captured`] is what it hands over).

pub mod dump;
mod gopclntab;
pub mod hang;
mod image;
mod lines;
pub mod procfs;
pub mod snapshot;
pub mod syscalls;
pub mod unwind;

pub use dump::{DumpKind, DumpRecord, Limits};
pub use hang::{Hang, HangDetector, HangKind, Sample, ThreadSample};
pub use snapshot::{Captured, Snapshot};
