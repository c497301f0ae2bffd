//! Connections: the listener's accept loop, and per accepted client the upstream connection,
//! the debug-target links and the two pumps ([`pump`]) that carry it.
//!
//! Invariant: a connection is in `Inner::conns` from the moment both ends are open until both
//! pumps have returned; closing or resetting it sets `aborting` first, so the pumps stop without
//! a graceful close of their own.

use super::pump::pump;
use super::{resolve, Inner, TICK};
use crate::shadow::{lock, Link};
use crate::toxic::Stream;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub(super) struct Conn {
    pub(super) id: u64,
    client: TcpStream,
    upstream: TcpStream,
    pub(super) start: Instant,
    /// Set when a toxic ends the connection: pumps stop without a graceful close.
    pub(super) aborting: AtomicBool,
}

impl Conn {
    pub(super) fn close(&self) {
        self.aborting.store(true, Relaxed);
        let _ = self.client.shutdown(Shutdown::Both);
        let _ = self.upstream.shutdown(Shutdown::Both);
    }

    /// RST to the client: linger 0, no FIN; the close happens when the last handle drops.
    pub(super) fn reset(&self) {
        self.aborting.store(true, Relaxed);
        let l = libc::linger {
            l_onoff: 1,
            l_linger: 0,
        };
        // SAFETY: a valid fd and a correctly sized option value.
        unsafe {
            libc::setsockopt(
                self.client.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_LINGER,
                &l as *const libc::linger as *const libc::c_void,
                std::mem::size_of::<libc::linger>() as libc::socklen_t,
            );
        }
        let _ = self.client.shutdown(Shutdown::Read);
        let _ = self.upstream.shutdown(Shutdown::Both);
    }
}

pub(super) fn accept_loop(inner: Arc<Inner>, l: TcpListener, stop: Arc<AtomicBool>) {
    let mut pfd = libc::pollfd {
        fd: l.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    while !stop.load(Relaxed) {
        // SAFETY: one valid pollfd.
        let r = unsafe { libc::poll(&mut pfd, 1, TICK.as_millis() as i32) };
        if r <= 0 {
            continue;
        }
        loop {
            match l.accept() {
                Ok((s, _)) => {
                    let inner = Arc::clone(&inner);
                    let _ = std::thread::Builder::new()
                        .name("proxy-conn".into())
                        .spawn(move || handle(inner, s));
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(_) => {
                    // EMFILE and the like: back off rather than spin.
                    std::thread::sleep(Duration::from_millis(10));
                    break;
                }
            }
        }
    }
}

fn handle(inner: Arc<Inner>, client: TcpStream) {
    let _ = client.set_nonblocking(false);
    let upstream = lock(&inner.upstream).clone();
    let up = resolve(&upstream)
        .ok()
        .and_then(|a| TcpStream::connect_timeout(&a, Duration::from_secs(5)).ok());
    let Some(up) = up else {
        inner.upstream_failures.fetch_add(1, Relaxed);
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = up.set_nodelay(true);
    let id = inner.next_conn.fetch_add(1, Relaxed);
    inner.connections.fetch_add(1, Relaxed);
    let (Ok(c2), Ok(u2)) = (client.try_clone(), up.try_clone()) else {
        return;
    };
    let conn = Arc::new(Conn {
        id,
        client: c2,
        upstream: u2,
        start: Instant::now(),
        aborting: AtomicBool::new(false),
    });
    lock(&inner.conns).insert(id, Arc::clone(&conn));
    if !inner.enabled.load(Relaxed) {
        conn.close();
    }
    let links: Vec<Arc<Link>> = inner
        .targets
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .filter_map(|t| Link::open(t, id, Arc::clone(&inner.closed)))
        .collect();
    let links = Arc::new(links);
    let seed = inner.seed.fetch_add(0x9E37_79B9, Relaxed) ^ id;
    let (i2, c3, l2) = (Arc::clone(&inner), Arc::clone(&conn), Arc::clone(&links));
    let up_thread = std::thread::Builder::new()
        .name(format!("proxy-up-{id}"))
        .spawn(move || {
            pump(&i2, &c3, Stream::Upstream, &client, &up, &l2, seed);
        });
    match up_thread {
        Ok(h) => {
            pump(
                &inner,
                &conn,
                Stream::Downstream,
                &conn.upstream,
                &conn.client,
                &links,
                seed.rotate_left(17),
            );
            let _ = h.join();
        }
        Err(_) => conn.close(),
    }
    lock(&inner.conns).remove(&id);
}
