//! Content hashes: BLAKE3 of regular files, files in parallel and large chunks on several
//! threads, read in chunks rather than mapped.

use crate::{Error, Result};
use rayon::prelude::*;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Hashes files in parallel; `None` for a file that vanished before it could be opened.
pub(super) fn hash_files(
    files: &[(usize, PathBuf)],
    threads: usize,
) -> Result<Vec<Option<String>>> {
    let work = || {
        files
            .par_iter()
            .map(|(_, p)| match hash_file(p) {
                Ok(h) => Ok(Some(h.to_hex().to_string())),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(Error::io(p, e)),
            })
            .collect::<Result<Vec<_>>>()
    };
    if threads == 0 {
        work()
    } else {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .map_err(|e| Error::Other(format!("starting hashing threads: {e}")))?
            .install(work)
    }
}

/// Read size; also the size from which a chunk is hashed with several threads.
pub(super) const CHUNK: usize = 1 << 20;
const PARALLEL_FROM: usize = 256 << 10;

thread_local! {
    static BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// BLAKE3 of a file's content, read in chunks. Refuses to follow a symlink or block on a
/// FIFO that replaced the file since it was listed.
pub fn hash_file(path: &Path) -> std::io::Result<blake3::Hash> {
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)?;
    if !f.metadata()?.is_file() {
        return Err(std::io::Error::other("no longer a regular file"));
    }
    BUF.with(|buf| {
        let mut buf = buf.borrow_mut();
        if buf.len() < CHUNK {
            buf.resize(CHUNK, 0);
        }
        let mut hasher = blake3::Hasher::new();
        loop {
            let mut filled = 0;
            while filled < CHUNK {
                match f.read(&mut buf[filled..]) {
                    Ok(0) => break,
                    Ok(n) => filled += n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
            if filled >= PARALLEL_FROM {
                hasher.update_rayon(&buf[..filled]);
            } else {
                hasher.update(&buf[..filled]);
            }
            if filled < CHUNK {
                return Ok(hasher.finalize());
            }
        }
    })
}
