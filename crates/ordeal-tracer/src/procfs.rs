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
}
