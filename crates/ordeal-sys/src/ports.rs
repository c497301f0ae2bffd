//! Free TCP port allocation that concurrent runs (threads or processes) never share: a run's
//! nodes, a shadow's debug copies.
//!
//! A port is *reserved* by holding an exclusive `flock` on `<lock_dir>/<port>.lock`, and is only
//! handed out when binding it succeeds (nobody listens on it). Ports are taken from a range
//! outside the kernel's ephemeral range (`/proc/sys/net/ipv4/ip_local_port_range`), so outgoing
//! connections never occupy them, starting at a random point so that concurrent runs rarely
//! contend. The locks are released when the [`PortReservation`] is dropped (or the process
//! dies); lock files are left in place, which is harmless.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener};
use std::ops::RangeInclusive;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The range ports are allocated from, before removing the ephemeral range.
pub const DEFAULT_PORT_RANGE: RangeInclusive<u16> = 20000..=32767;

/// The directory holding port lock files, shared by every ordeal process on the machine.
pub const DEFAULT_LOCK_DIR: &str = "/tmp/ordeal-ports";

/// Allocates and reserves free TCP ports: ports outside the ephemeral range that nothing
/// listens on, each reserved by an exclusive `flock` on `<lock_dir>/<port>.lock` so that
/// concurrent runs (threads or processes sharing the lock directory) never share one.
#[derive(Debug, Clone)]
pub struct PortAllocator {
    range: RangeInclusive<u16>,
    lock_dir: PathBuf,
}

impl Default for PortAllocator {
    fn default() -> Self {
        Self::new()
    }
}

impl PortAllocator {
    /// Range [`DEFAULT_PORT_RANGE`], locks in [`DEFAULT_LOCK_DIR`].
    pub fn new() -> Self {
        PortAllocator {
            range: DEFAULT_PORT_RANGE,
            lock_dir: PathBuf::from(DEFAULT_LOCK_DIR),
        }
    }

    /// Allocates from `range` instead (the ephemeral range is still avoided when possible).
    pub fn with_range(mut self, range: RangeInclusive<u16>) -> Self {
        self.range = range;
        self
    }

    /// Keeps lock files in `dir` instead. Only allocators sharing a lock directory coordinate.
    pub fn with_lock_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.lock_dir = dir.into();
        self
    }

    /// Reserves `count` distinct free ports (`AddrNotAvailable` when the range has too few).
    pub fn allocate(&self, count: usize) -> io::Result<PortReservation> {
        let mut reservation = PortReservation::default();
        if count == 0 {
            return Ok(reservation);
        }
        ensure_lock_dir(&self.lock_dir)?;
        let candidates = candidates(&self.range, ephemeral_range());
        if candidates.is_empty() {
            return Err(not_available(format!(
                "the port range {}-{} is empty",
                self.range.start(),
                self.range.end()
            )));
        }
        let start = (random_u64() % candidates.len() as u64) as usize;
        for k in 0..candidates.len() {
            let port = candidates[(start + k) % candidates.len()];
            let Some(lock) = try_lock(&self.lock_dir, port)? else {
                continue;
            };
            if !is_free(port) {
                continue; // dropping `lock` releases it
            }
            reservation.ports.push(port);
            reservation.locks.push(lock);
            if reservation.ports.len() == count {
                return Ok(reservation);
            }
        }
        Err(not_available(format!(
            "needed {count} free ports but found only {} in {}-{} (outside the ephemeral range)",
            reservation.ports.len(),
            self.range.start(),
            self.range.end()
        )))
    }
}

/// Ports reserved for one run. They stay reserved (no other ordeal allocator sharing the lock
/// directory will hand them out) until this is dropped.
#[derive(Debug, Default)]
pub struct PortReservation {
    ports: Vec<u16>,
    locks: Vec<File>,
}

impl PortReservation {
    /// The reserved ports, in allocation order.
    pub fn ports(&self) -> &[u16] {
        &self.ports
    }
}

fn candidates(range: &RangeInclusive<u16>, ephemeral: Option<(u16, u16)>) -> Vec<u16> {
    let all: Vec<u16> = range.clone().filter(|&p| p >= 1024).collect();
    let Some((lo, hi)) = ephemeral else {
        return all;
    };
    let outside: Vec<u16> = all.iter().copied().filter(|p| *p < lo || *p > hi).collect();
    if outside.is_empty() {
        all
    } else {
        outside
    }
}

fn ephemeral_range() -> Option<(u16, u16)> {
    let text = fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
    let mut it = text.split_whitespace().map(|s| s.parse::<u16>().ok());
    Some((it.next()??, it.next()??))
}

fn not_available(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::AddrNotAvailable, what)
}

/// `e`, saying what was being done.
fn context(what: String, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{what}: {e}"))
}

fn ensure_lock_dir(dir: &Path) -> io::Result<()> {
    match fs::create_dir(dir) {
        Ok(()) => {
            // Shared by every user, like /tmp itself.
            let _ = fs::set_permissions(dir, fs::Permissions::from_mode(0o1777));
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            fs::create_dir_all(dir).map_err(|e| context(format!("creating {}", dir.display()), e))
        }
        Err(e) => Err(context(format!("creating {}", dir.display()), e)),
    }
}

/// Takes the lock of `port` without waiting; `None` if someone else holds it.
fn try_lock(dir: &Path, port: u16) -> io::Result<Option<File>> {
    let path = dir.join(format!("{port}.lock"));
    let file = match OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o666)
        .open(&path)
    {
        Ok(f) => f,
        // Created by another user: a read-only descriptor is enough for flock.
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
            File::open(&path).map_err(|e| context(format!("opening {}", path.display()), e))?
        }
        Err(e) => return Err(context(format!("opening {}", path.display()), e)),
    };
    // SAFETY: flock on a descriptor we own.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc == 0 {
        return Ok(Some(file));
    }
    let err = io::Error::last_os_error();
    if err.kind() == io::ErrorKind::WouldBlock {
        Ok(None)
    } else {
        Err(context(format!("locking {}", path.display()), err))
    }
}

/// Whether nothing listens on `port`: binding the IPv4 wildcard must succeed, and so must the
/// IPv6 wildcard where IPv6 exists.
fn is_free(port: u16) -> bool {
    match TcpListener::bind(SocketAddr::from((Ipv4Addr::UNSPECIFIED, port))) {
        Ok(l) => drop(l),
        Err(_) => return false,
    }
    match TcpListener::bind(SocketAddr::from((Ipv6Addr::UNSPECIFIED, port))) {
        Ok(_) => true,
        Err(e) => e.kind() != io::ErrorKind::AddrInUse,
    }
}

/// A non-cryptographic random number, different across processes, threads and calls.
fn random_u64() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let local = 0u8;
    crate::rng::mix(
        nanos
            ^ (u64::from(std::process::id()) << 32)
            ^ COUNTER.fetch_add(crate::rng::GOLDEN, Ordering::Relaxed)
            ^ (&local as *const u8 as u64),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates_avoid_ephemeral_and_privileged() {
        let c = candidates(&(1000..=1100), Some((1050, 2000)));
        assert_eq!(c.first(), Some(&1024));
        assert_eq!(c.last(), Some(&1049));
        // Everything ephemeral: fall back to the whole range.
        let c = candidates(&(30000..=30010), Some((1024, 65535)));
        assert_eq!(c.len(), 11);
        assert_eq!(candidates(&(20000..=20009), None).len(), 10);
    }

    #[test]
    fn randomness_varies() {
        let a: Vec<u64> = (0..8).map(|_| random_u64()).collect();
        let mut b = a.clone();
        b.dedup();
        assert_eq!(a.len(), b.len());
    }
}
