//! What the kernel knows about a tracee's fds and sockets, read from /proc (the readers live
//! in ordeal-sys, shared with the diagnostics).
//!
//! Sockets are identified by inode (`/proc/PID/fd/N -> socket:[INODE]`); their addresses come
//! from [`crate::sockinfo`].

pub use ordeal_sys::proc::{cmdline, cwd, fd_nonblocking, fd_pos, fd_target, tgid_ppid, FdTarget};

/// A shared file mapping, from a line of /proc/PID/maps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Mapping {
    pub start: u64,
    pub end: u64,
    /// File offset of `start`.
    pub offset: u64,
    pub path: std::path::PathBuf,
}

/// The shared (`s` in the permissions) file mapping holding `addr`, from /proc/PID/maps text.
pub(crate) fn shared_mapping(maps: &str, addr: u64) -> Option<Mapping> {
    maps.lines().find_map(|line| {
        let mut f = line.splitn(6, ' ');
        let (range, perms, offset) = (f.next()?, f.next()?, f.next()?);
        let (_dev, _ino) = (f.next()?, f.next()?);
        let path = f.next()?.trim_start();
        let (start, end) = range.split_once('-')?;
        let start = u64::from_str_radix(start, 16).ok()?;
        let end = u64::from_str_radix(end, 16).ok()?;
        if !(start..end).contains(&addr) || perms.as_bytes().get(3) != Some(&b's') {
            return None;
        }
        if !path.starts_with('/') || path.ends_with(" (deleted)") {
            return None;
        }
        Some(Mapping {
            start,
            end,
            offset: u64::from_str_radix(offset, 16).ok()?,
            path: path.into(),
        })
    })
}

/// `len` bytes of the file open as `fd` in process `pid`, from offset `pos` (fewer at its
/// end), through a descriptor of its own (`/proc/PID/fd/N` opened for reading: the
/// process's descriptor may be write-only, and its offset is left alone).
pub(crate) fn read_fd_at(pid: i32, fd: i32, pos: u64, len: usize) -> Option<Vec<u8>> {
    use std::os::unix::fs::FileExt;
    let f = std::fs::File::open(format!("/proc/{pid}/fd/{fd}")).ok()?;
    let mut buf = vec![0u8; len];
    let mut got = 0;
    while got < len {
        match f.read_at(&mut buf[got..], pos + got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
    buf.truncate(got);
    Some(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_shared_file_mapping_holding_an_address() {
        let maps = "\
55d0c0000000-55d0c0001000 r--p 00000000 08:01 123 /usr/bin/x
7f0000000000-7f0000002000 rw-s 00001000 08:01 456 /data/n0/m
7f0000002000-7f0000003000 rw-p 00000000 00:00 0 
7f0000004000-7f0000005000 rw-s 00000000 08:01 789 /data/n0/gone (deleted)
";
        assert_eq!(
            shared_mapping(maps, 0x7f0000001010),
            Some(Mapping {
                start: 0x7f0000000000,
                end: 0x7f0000002000,
                offset: 0x1000,
                path: "/data/n0/m".into()
            })
        );
        assert_eq!(shared_mapping(maps, 0x55d0c0000010), None);
        assert_eq!(shared_mapping(maps, 0x7f0000002010), None);
        assert_eq!(shared_mapping(maps, 0x7f0000004000), None);
    }

    #[test]
    fn a_descriptor_is_read_back_at_an_offset_without_moving_it() {
        use std::io::{Seek, Write};
        use std::os::fd::AsRawFd;
        let dir = tempfile::tempdir().unwrap();
        let mut f = std::fs::File::create(dir.path().join("f")).unwrap();
        f.write_all(b"0123456789").unwrap();
        let pid = std::process::id() as i32;
        let fd = f.as_raw_fd();
        assert_eq!(read_fd_at(pid, fd, 3, 4).unwrap(), b"3456");
        // Cut at the end of the file.
        assert_eq!(read_fd_at(pid, fd, 8, 4).unwrap(), b"89");
        // The write-only descriptor's offset is where it was.
        assert_eq!(f.stream_position().unwrap(), 10);
    }
}
