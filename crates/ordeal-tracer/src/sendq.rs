//! The bytes a stream socket sent across a partition: accepted as a send buffer accepts them
//! (the call succeeds, the bytes are "on the wire") and kept in order until the heal, when
//! they are written into the socket for the peer to receive at once.
//!
//! Pure bookkeeping, no system calls: the tracer decides with [`SendQueue::offer`] what a send
//! gets, and [`SendQueue::drain`] writes through whatever it is given.

use std::collections::VecDeque;

/// The send buffer assumed when the socket's own (`SO_SNDBUF`) cannot be read: Linux's
/// default `net.core.wmem_default`.
pub(crate) const DEFAULT_SEND_BUFFER: usize = 212_992;

/// What a send on a socket with a queue gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Offer {
    /// Queue this many bytes of it (all of it, or for a non-blocking send what still fits:
    /// a short write, as a nearly full buffer gives) and report them sent.
    Queue(usize),
    /// A blocking send that does not fit: its thread waits until the queue is delivered,
    /// then the call runs.
    Hold,
    /// A non-blocking send with no room left: `EAGAIN`, as a full send buffer.
    Refuse,
}

/// The queue of one socket.
#[derive(Debug)]
pub(crate) struct SendQueue {
    bytes: VecDeque<u8>,
    cap: usize,
    /// A blocking send is held: later sends wait behind it (order kept), whatever the room.
    holding: bool,
    /// A non-blocking send was refused: its caller may wait for the socket to become
    /// writable, which the tracer's own writes do not announce (see `cut.rs`).
    refused: bool,
}

/// What one [`SendQueue::drain`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Drain {
    /// Bytes written into the socket.
    pub(crate) delivered: usize,
    /// Bytes given up: the socket failed with `errno` (the peer is gone: `EPIPE`,
    /// `ECONNRESET`). The queue is empty then.
    pub(crate) lost: usize,
    pub(crate) errno: Option<i32>,
}

impl SendQueue {
    /// An empty queue holding at most `cap` bytes (the socket's send buffer).
    pub(crate) fn new(cap: usize) -> Self {
        Self {
            bytes: VecDeque::new(),
            cap: cap.max(1),
            holding: false,
            refused: false,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.bytes.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    pub(crate) fn refused(&self) -> bool {
        self.refused
    }

    /// What a send of `len` bytes gets; `blocking` unless the socket is `O_NONBLOCK` or the
    /// call says `MSG_DONTWAIT`. A blocking send never gets a short write: the kernel would
    /// block it until all of it fits, so it waits for the delivery whole.
    pub(crate) fn offer(&mut self, len: usize, blocking: bool) -> Offer {
        let room = self.cap.saturating_sub(self.bytes.len());
        let offer = match (self.holding, blocking) {
            (false, _) if len <= room => Offer::Queue(len),
            (false, false) if room > 0 => Offer::Queue(room),
            (_, true) => Offer::Hold,
            (_, false) => Offer::Refuse,
        };
        match offer {
            Offer::Hold => self.holding = true,
            Offer::Refuse => self.refused = true,
            Offer::Queue(_) => {}
        }
        offer
    }

    /// Appends the bytes of a send [`offer`](Self::offer) said to queue.
    pub(crate) fn push(&mut self, bytes: &[u8]) {
        self.bytes.extend(bytes);
    }

    /// Writes the queue, oldest bytes first, through `write` (which returns how many bytes
    /// it took, or an errno) until it is empty, `write` takes nothing or says `EAGAIN` (the
    /// socket is full: the rest waits for a later drain), or it fails otherwise (the rest is
    /// lost).
    pub(crate) fn drain(&mut self, mut write: impl FnMut(&[u8]) -> Result<usize, i32>) -> Drain {
        let mut out = Drain::default();
        while !self.bytes.is_empty() {
            let (head, _) = self.bytes.as_slices();
            match write(head) {
                Ok(0) => break,
                Ok(n) => {
                    let n = n.min(head.len());
                    self.bytes.drain(..n);
                    out.delivered += n;
                }
                Err(e) if e == libc::EAGAIN || e == libc::EINTR => break,
                Err(e) => {
                    out.lost = self.bytes.len();
                    out.errno = Some(e);
                    self.bytes.clear();
                }
            }
        }
        if self.bytes.is_empty() {
            self.holding = false;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sends_are_queued_in_order_and_delivered_whole() {
        let mut q = SendQueue::new(100);
        for part in [&b"GET /a"[..], b" HTTP/1.1\r\n", b"\r\n"] {
            assert_eq!(q.offer(part.len(), false), Offer::Queue(part.len()));
            q.push(part);
        }
        assert_eq!(q.len(), 19);
        let mut got = Vec::new();
        let d = q.drain(|b| {
            got.extend_from_slice(b);
            Ok(b.len())
        });
        assert_eq!(got, b"GET /a HTTP/1.1\r\n\r\n");
        assert_eq!(
            d,
            Drain {
                delivered: 19,
                lost: 0,
                errno: None
            }
        );
        assert!(q.is_empty());
    }

    #[test]
    fn past_the_buffer_a_blocking_send_is_held_and_a_non_blocking_one_refused_or_shortened() {
        let mut q = SendQueue::new(10);
        assert_eq!(q.offer(6, false), Offer::Queue(6));
        q.push(b"abcdef");
        // 4 bytes of room: a non-blocking send of 7 is cut to 4 (a short write)...
        assert_eq!(q.offer(7, false), Offer::Queue(4));
        q.push(b"ghij");
        // ...and, full, the next gets EAGAIN; a zero-length send still fits.
        assert_eq!(q.offer(1, false), Offer::Refuse);
        assert!(q.refused());
        assert_eq!(q.offer(0, false), Offer::Queue(0));
        // A blocking send waits whole for the delivery, never cut short.
        let mut q = SendQueue::new(10);
        assert_eq!(q.offer(8, true), Offer::Queue(8));
        q.push(b"12345678");
        assert_eq!(q.offer(3, true), Offer::Hold);
        assert!(!q.refused());
    }

    #[test]
    fn behind_a_held_send_nothing_overtakes_it_until_the_queue_is_delivered() {
        let mut q = SendQueue::new(10);
        q.push(b"12345678");
        assert_eq!(q.offer(5, true), Offer::Hold);
        // Room for 2 more, but the held send's bytes come first.
        assert_eq!(q.offer(1, true), Offer::Hold);
        assert_eq!(q.offer(1, false), Offer::Refuse);
        q.drain(|b| Ok(b.len()));
        assert_eq!(q.offer(1, false), Offer::Queue(1));
    }

    #[test]
    fn a_full_socket_leaves_the_rest_for_later_and_a_gone_peer_loses_it() {
        let mut q = SendQueue::new(100);
        q.push(b"0123456789");
        // The socket takes 4 bytes, then is full.
        let mut took = 0;
        let d = q.drain(|b| {
            if took == 0 {
                took = 4;
                Ok(4.min(b.len()))
            } else {
                Err(libc::EAGAIN)
            }
        });
        assert_eq!(
            d,
            Drain {
                delivered: 4,
                lost: 0,
                errno: None
            }
        );
        assert_eq!(q.len(), 6);
        // Later bytes queue behind the rest.
        assert_eq!(q.offer(2, false), Offer::Queue(2));
        q.push(b"ab");
        let mut got = Vec::new();
        let d = q.drain(|b| {
            let n = b.len().min(3);
            got.extend_from_slice(&b[..n]);
            if got.len() >= 6 {
                return Err(libc::EPIPE);
            }
            Ok(n)
        });
        assert_eq!(got, b"456789");
        assert_eq!(
            d,
            Drain {
                delivered: 3,
                lost: 5,
                errno: Some(libc::EPIPE)
            }
        );
        assert!(q.is_empty());
    }
}
