//! The consumer side of a BPF ring buffer, read through two mappings of its descriptor
//! (kernel/bpf/ringbuf.c): the consumer page (ours to write), then the producer page followed
//! by the data area mapped twice in a row, so a record that wraps is contiguous.
//!
//! Each record has an 8-byte header: `len: u32` (bit 31: still being written, bit 30:
//! discarded) and the kernel's page offset; records start 8-byte aligned.

use crate::Error;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

const BUSY: u32 = 1 << 31;
const DISCARDED: u32 = 1 << 30;
const HEADER: u64 = 8;

/// The two mappings of one ring buffer.
pub struct Ring {
    consumer: *mut libc::c_void,
    producer: *mut libc::c_void,
    page: usize,
    bytes: usize,
}

// SAFETY: the mappings belong to this value alone (nothing else holds their addresses), and
// the kernel side is synchronized through the atomic positions; moving the owner to another
// thread changes nothing.
unsafe impl Send for Ring {}

fn map(fd: BorrowedFd, len: usize, prot: i32, offset: usize) -> Result<*mut libc::c_void, Error> {
    // SAFETY: a fresh shared mapping of a ring-buffer map descriptor at an address the kernel
    // chooses; it aliases no Rust object.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            prot,
            libc::MAP_SHARED,
            fd.as_raw_fd(),
            offset as libc::off_t,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(Error::Io {
            what: "mapping the ring buffer".into(),
            source: std::io::Error::last_os_error(),
        });
    }
    Ok(p)
}

impl Ring {
    /// Maps the ring buffer `fd` of `bytes` data bytes (a power of two, whole pages).
    pub fn new(fd: BorrowedFd, bytes: usize, page: usize) -> Result<Ring, Error> {
        let consumer = map(fd, page, libc::PROT_READ | libc::PROT_WRITE, 0)?;
        let producer = match map(fd, page + 2 * bytes, libc::PROT_READ, page) {
            Ok(p) => p,
            Err(e) => {
                // SAFETY: `consumer` was mapped just above with this length and is unused.
                unsafe { libc::munmap(consumer, page) };
                return Err(e);
            }
        };
        Ok(Ring {
            consumer,
            producer,
            page,
            bytes,
        })
    }

    fn consumer_pos(&self) -> &AtomicU64 {
        // SAFETY: the consumer page starts with the u64 consumer position, 8-byte aligned
        // (page aligned), mapped for as long as `self` lives; the kernel reads it atomically.
        unsafe { &*(self.consumer as *const AtomicU64) }
    }

    fn producer_pos(&self) -> &AtomicU64 {
        // SAFETY: as above, for the producer position at the start of the producer page.
        unsafe { &*(self.producer as *const AtomicU64) }
    }

    /// Hands every complete record to `each`, in ring order, and gives their room back to the
    /// kernel. Stops at a record still being written.
    pub fn drain(&self, mut each: impl FnMut(&[u8])) {
        let data = self.producer as usize + self.page;
        let mask = self.bytes as u64 - 1;
        let mut pos = self.consumer_pos().load(Ordering::Relaxed);
        let end = self.producer_pos().load(Ordering::Acquire);
        while pos < end {
            let at = data + (pos & mask) as usize;
            // SAFETY: `at` is inside the data area (masked offset), 8-byte aligned (records
            // are), and the header is written by the kernel with release semantics.
            let len = unsafe { &*(at as *const AtomicU32) }.load(Ordering::Acquire);
            if len & BUSY != 0 {
                break;
            }
            let size = len & !(BUSY | DISCARDED);
            if len & DISCARDED == 0 {
                // SAFETY: a committed record of `size` bytes follows its header; the double
                // mapping makes it contiguous even when it wraps, and the kernel does not
                // touch it until the consumer position moves past it.
                let record = unsafe {
                    std::slice::from_raw_parts((at + HEADER as usize) as *const u8, size as usize)
                };
                each(record);
            }
            pos += (u64::from(size) + HEADER + 7) & !7;
            self.consumer_pos().store(pos, Ordering::Release);
        }
    }

    /// Waits until the kernel signals data (or `timeout` passes).
    pub fn wait(fd: BorrowedFd, timeout: Duration) -> Result<(), Error> {
        let mut pfd = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
        // SAFETY: one valid pollfd, for the duration of the call.
        let r = unsafe { libc::poll(&mut pfd, 1, ms) };
        if r < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(Error::Io {
                    what: "waiting for the ring buffer".into(),
                    source: e,
                });
            }
        }
        Ok(())
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        // SAFETY: both regions were mapped in `new` with these lengths, and no reference into
        // them outlives `self` (`drain` hands out records only for the closure's duration).
        unsafe {
            libc::munmap(self.consumer, self.page);
            libc::munmap(self.producer, self.page + 2 * self.bytes);
        }
    }
}
