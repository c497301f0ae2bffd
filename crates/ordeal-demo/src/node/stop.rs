//! Stopping a node as if it crashed: the [`StopSignal`], and the registry of open connections it
//! shuts down.
//!
//! Invariant: once the signal has fired, every registered connection is shut down, including
//! one registered concurrently with the stop (the flag is checked under the registry lock).

use std::collections::HashMap;
use std::io;
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::Duration;

use super::lock;

/// Tells a running node to stop, as if it had crashed: its listener closes
/// and every connection it holds is shut down, without any goodbye message.
/// Clones share the same signal.
#[derive(Clone, Default)]
pub struct StopSignal {
    inner: Arc<StopInner>,
}

#[derive(Default)]
struct StopInner {
    stopped: Mutex<bool>,
    changed: Condvar,
    conns: Mutex<Registry>,
    wake_addr: Mutex<Option<SocketAddr>>,
}

/// The node's open connections, so that a stop can shut them down and
/// unblock the threads reading them.
#[derive(Default)]
struct Registry {
    next_id: u64,
    streams: HashMap<u64, TcpStream>,
}

impl StopSignal {
    /// A signal that has not fired.
    pub fn new() -> StopSignal {
        StopSignal::default()
    }

    /// Fires the signal. Returns at once; the node's threads wind down on
    /// their own (use [`NodeHandle::stop`](super::NodeHandle::stop) to wait for them).
    pub fn stop(&self) {
        *lock(&self.inner.stopped) = true;
        self.inner.changed.notify_all();
        for stream in lock(&self.inner.conns).streams.values() {
            let _ = stream.shutdown(Shutdown::Both);
        }
        // A blocking accept() cannot be interrupted portably: a throwaway
        // connection wakes it, and the accept loop then sees the flag.
        let wake_addr = *lock(&self.inner.wake_addr);
        if let Some(addr) = wake_addr {
            let _ = TcpStream::connect_timeout(&addr, Duration::from_secs(1));
        }
    }

    /// Whether the signal has fired.
    pub fn is_stopped(&self) -> bool {
        *lock(&self.inner.stopped)
    }

    /// Sleeps for `duration` or until the signal fires; true if it fired.
    pub(super) fn sleep(&self, duration: Duration) -> bool {
        let stopped = lock(&self.inner.stopped);
        let (stopped, _) = self
            .inner
            .changed
            .wait_timeout_while(stopped, duration, |stopped| !*stopped)
            .unwrap_or_else(PoisonError::into_inner);
        *stopped
    }

    /// Blocks until the signal fires.
    pub(super) fn wait(&self) {
        let stopped = lock(&self.inner.stopped);
        let _stopped = self
            .inner
            .changed
            .wait_while(stopped, |stopped| !*stopped)
            .unwrap_or_else(PoisonError::into_inner);
    }

    pub(super) fn set_wake_addr(&self, mut addr: SocketAddr) {
        if addr.ip().is_unspecified() {
            addr.set_ip(match addr {
                SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
            });
        }
        *lock(&self.inner.wake_addr) = Some(addr);
    }

    /// Tracks `stream` until the returned guard is dropped.
    pub(super) fn register(&self, stream: &TcpStream) -> io::Result<ConnGuard> {
        let clone = stream.try_clone()?;
        let mut registry = lock(&self.inner.conns);
        // stop() sets the flag before it walks the registry, so checking the
        // flag under the registry lock means no stream escapes the shutdown.
        if self.is_stopped() {
            let _ = clone.shutdown(Shutdown::Both);
        }
        let id = registry.next_id;
        registry.next_id += 1;
        registry.streams.insert(id, clone);
        Ok(ConnGuard {
            stop: self.clone(),
            id,
        })
    }
}

/// Removes a connection from the stop registry when dropped.
pub(super) struct ConnGuard {
    stop: StopSignal,
    id: u64,
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        lock(&self.stop.inner.conns).streams.remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::net::TcpListener;

    fn pair() -> (TcpStream, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let a = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (b, _) = l.accept().unwrap();
        (a, b)
    }

    fn registered(stop: &StopSignal) -> usize {
        lock(&stop.inner.conns).streams.len()
    }

    #[test]
    fn a_fired_signal_ends_sleeps_at_once() {
        let stop = StopSignal::new();
        assert!(!stop.sleep(Duration::ZERO));
        stop.stop();
        assert!(stop.is_stopped());
        // Would block for an hour if the flag were not seen.
        assert!(stop.sleep(Duration::from_secs(3600)));
        stop.wait();
    }

    #[test]
    fn a_guard_unregisters_its_connection_when_dropped() {
        let stop = StopSignal::new();
        let (a, _b) = pair();
        let guard = stop.register(&a).unwrap();
        assert_eq!(registered(&stop), 1);
        drop(guard);
        assert_eq!(registered(&stop), 0);
    }

    #[test]
    fn stop_shuts_down_registered_and_later_connections() {
        let stop = StopSignal::new();
        let (a, mut a_peer) = pair();
        let _a_guard = stop.register(&a).unwrap();
        stop.stop();
        let mut buf = [0u8; 1];
        assert_eq!(a_peer.read(&mut buf).unwrap(), 0);
        // Registered after the stop: shut down at once.
        let (b, mut b_peer) = pair();
        let _b_guard = stop.register(&b).unwrap();
        assert_eq!(b_peer.read(&mut buf).unwrap(), 0);
    }
}
