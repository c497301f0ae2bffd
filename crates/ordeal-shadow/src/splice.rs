//! Zero-copy forwarding: splice(2) through a pipe.
//!
//! A socket's bytes are spliced into a pipe (the kernel moves references to the socket buffer's
//! pages, no copy), then spliced out of the pipe into the other socket.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// A pipe, both ends, and what it holds at most (bytes, as the kernel reports it).
pub(crate) struct Pipe {
    r: File,
    w: File,
    cap: usize,
}

impl Pipe {
    /// A close-on-exec pipe, enlarged to `size` bytes if the kernel allows it (an unprivileged
    /// process is refused past `/proc/sys/fs/pipe-max-size` or its user's pipe quota); if not,
    /// it keeps its default size.
    pub(crate) fn new(size: usize) -> io::Result<Pipe> {
        let mut fds = [0 as libc::c_int; 2];
        // SAFETY: `fds` is a valid array of two ints for pipe2 to fill.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: pipe2 succeeded, so both fds are open and owned by nobody else.
        let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        let size = libc::c_int::try_from(size).unwrap_or(libc::c_int::MAX);
        // SAFETY: F_SETPIPE_SZ and F_GETPIPE_SZ on an open pipe fd take and return an int.
        let cap = unsafe {
            libc::fcntl(w.as_raw_fd(), libc::F_SETPIPE_SZ, size);
            libc::fcntl(w.as_raw_fd(), libc::F_GETPIPE_SZ)
        };
        // A pipe always holds at least one page; 4096 if the kernel does not say.
        let cap = usize::try_from(cap).ok().filter(|&c| c > 0).unwrap_or(4096);
        Ok(Pipe {
            r: File::from(r),
            w: File::from(w),
            cap,
        })
    }

    pub(crate) fn capacity(&self) -> usize {
        self.cap
    }

    /// Reads what the pipe holds into `buf` (a copy, for user space).
    pub(crate) fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        (&self.r).read(buf)
    }
}

fn check(n: libc::ssize_t) -> io::Result<usize> {
    usize::try_from(n).map_err(|_| io::Error::last_os_error())
}

/// Moves up to `len` bytes from the socket `src` into the pipe `p`: 0 at end of stream;
/// EAGAIN when the socket's receive timeout expires first.
pub(crate) fn splice_in(src: &impl AsRawFd, p: &Pipe, len: usize) -> io::Result<usize> {
    // SAFETY: both fds are open for the call's duration; null offsets (neither is seekable).
    let n = unsafe {
        libc::splice(
            src.as_raw_fd(),
            std::ptr::null_mut(),
            p.w.as_raw_fd(),
            std::ptr::null_mut(),
            len,
            libc::SPLICE_F_MOVE,
        )
    };
    check(n)
}

/// Moves up to `len` bytes of the pipe into the socket `dst` (blocking while its send buffer
/// is full).
pub(crate) fn splice_out(p: &Pipe, dst: &impl AsRawFd, len: usize) -> io::Result<usize> {
    // SAFETY: both fds are open for the call's duration; null offsets (neither is seekable).
    let n = unsafe {
        libc::splice(
            p.r.as_raw_fd(),
            std::ptr::null_mut(),
            dst.as_raw_fd(),
            std::ptr::null_mut(),
            len,
            libc::SPLICE_F_MOVE,
        )
    };
    check(n)
}

/// Blocks SIGPIPE in the calling thread. A splice into a socket the peer has closed raises
/// SIGPIPE (unlike `send`, there is no `MSG_NOSIGNAL`); Rust programs ignore it, but a host
/// program that does not would be killed. Blocked, it stays pending on this thread (and is
/// discarded when the thread ends) and the splice fails with EPIPE.
pub(crate) fn block_sigpipe() {
    // SAFETY: an all-zero sigset_t is valid storage for sigemptyset to initialise.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is valid and initialised by sigemptyset before use; pthread_sigmask only
    // changes the calling thread's mask, and a null old mask is allowed.
    unsafe {
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGPIPE);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
}

/// splice cannot handle these descriptors (or the kernel lacks them): copy instead.
pub(crate) fn unsupported(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EINVAL | libc::ENOSYS | libc::EOPNOTSUPP)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pipe_round_trip_and_unsupported_sources() {
        let p = Pipe::new(1 << 20).unwrap();
        assert!(p.capacity() >= 4096);
        // An eventfd cannot be spliced from: the caller falls back to copying.
        // SAFETY: eventfd takes no pointers; a valid fd or -1 comes back.
        let fd = unsafe { libc::eventfd(1, libc::EFD_CLOEXEC) };
        assert!(fd >= 0);
        // SAFETY: `fd` was just opened and is owned by nobody else.
        let efd = unsafe { OwnedFd::from_raw_fd(fd) };
        let e = splice_in(&efd, &p, 8).unwrap_err();
        assert!(unsupported(&e), "{e}");
        // A socket's bytes go through the pipe, and can be read from it instead.
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut a = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (b, _) = l.accept().unwrap();
        std::io::Write::write_all(&mut a, b"hello, world").unwrap();
        assert_eq!(splice_in(&b, &p, p.capacity()).unwrap(), 12);
        assert_eq!(splice_out(&p, &a, 7).unwrap(), 7);
        let mut x = [0u8; 5];
        assert_eq!(p.read(&mut x).unwrap(), 5);
        assert_eq!(&x, b"world");
        let mut y = [0u8; 7];
        std::io::Read::read_exact(&mut &b, &mut y).unwrap();
        assert_eq!(&y, b"hello, ");
    }
}
