//! A file's bytes for symbolization, mapped rather than read: a snapshot of a process whose
//! binary is 100 MB (a Rust program with line tables, a Go server) would otherwise copy all of
//! it onto ordeal's heap for the few sections it looks at. Mapped pages are page cache, read
//! on demand and given back by the kernel under pressure.

use std::ops::Deref;
use std::path::Path;

/// Read-only bytes of a whole file (or, in tests, of a buffer).
pub struct Image(Inner);

enum Inner {
    Mapped { ptr: *const u8, len: usize },
    Owned(Vec<u8>),
}

// SAFETY: the mapping is read-only and private, owned by the `Image` and unmapped only on
// drop; nothing in this process writes through it, so sharing it between threads is sharing
// immutable bytes.
unsafe impl Send for Image {}
// SAFETY: as above.
unsafe impl Sync for Image {}

impl Image {
    /// Maps `path` read-only. An empty file is an empty image.
    pub fn open(path: impl AsRef<Path>) -> std::io::Result<Image> {
        use std::os::fd::AsRawFd;
        let file = std::fs::File::open(path)?;
        let len = usize::try_from(file.metadata()?.len())
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::FileTooLarge))?;
        if len == 0 {
            return Ok(Image(Inner::Owned(Vec::new())));
        }
        // SAFETY: a fresh private read-only mapping of a file we opened; the pointer is
        // checked before use. Another process truncating the file while it is mapped would
        // make reads of the lost pages fault (SIGBUS): binaries being executed cannot be
        // written (ETXTBSY), and the libraries and debug files read here are replaced by
        // package managers with a rename, which leaves the mapped inode intact.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_PRIVATE,
                file.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Image(Inner::Mapped {
            ptr: ptr as *const u8,
            len,
        }))
    }
}

impl std::fmt::Debug for Image {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Image({} bytes)", self.len())
    }
}

impl From<Vec<u8>> for Image {
    fn from(v: Vec<u8>) -> Image {
        Image(Inner::Owned(v))
    }
}

impl Deref for Image {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match &self.0 {
            // SAFETY: `ptr` maps `len` readable bytes until drop (see `open`).
            Inner::Mapped { ptr, len } => unsafe { std::slice::from_raw_parts(*ptr, *len) },
            Inner::Owned(v) => v,
        }
    }
}

impl Drop for Image {
    fn drop(&mut self) {
        if let Inner::Mapped { ptr, len } = self.0 {
            // SAFETY: the mapping made in `open`, unmapped once.
            unsafe { libc::munmap(ptr as *mut libc::c_void, len) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mapped_file_reads_as_its_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        let bytes: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&p, &bytes).unwrap();
        assert_eq!(&Image::open(&p).unwrap()[..], &bytes[..]);
        std::fs::write(&p, b"").unwrap();
        assert!(Image::open(&p).unwrap().is_empty());
        assert!(Image::open(dir.path().join("missing")).is_err());
    }
}
