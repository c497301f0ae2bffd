//! What the kernel knows about a tracee's fds and sockets, read from /proc (the readers live
//! in ordeal-sys, shared with the diagnostics).
//!
//! Sockets are identified by inode (`/proc/PID/fd/N -> socket:[INODE]`); their addresses come
//! from [`crate::sockinfo`].

pub use ordeal_sys::proc::{cmdline, cwd, fd_nonblocking, fd_pos, fd_target, tgid_ppid, FdTarget};
