//! Client requests: the accept loop, and per connection the `ROLE`, `GET` and `SET` requests
//! (a `JOIN` hands the connection over to replication).
//!
//! Invariant: only the primary applies a `SET` and answers a `GET` from its state (unless the
//! stale-read bug is on), and it does both under `write_lock`, so a read never sees a write that
//! is not yet replicated (unless the ack-before-replicate bug is on).

use std::io;
use std::net::{TcpListener, TcpStream};
use std::thread::Scope;
use std::time::Duration;

use super::{lock, Node, Role};
use crate::wire::{self, send, LineReader, Request};

impl<'a> Node<'a> {
    pub(super) fn accept_loop<'scope>(
        &'scope self,
        scope: &'scope Scope<'scope, '_>,
        listener: TcpListener,
    ) {
        if self.stop.is_stopped() {
            return;
        }
        for conn in listener.incoming() {
            if self.stop.is_stopped() {
                return;
            }
            match conn {
                Ok(stream) => {
                    scope.spawn(move || self.serve_connection(stream));
                }
                Err(e) => {
                    self.warn(format_args!("accept failed: {e}"));
                    // Errors such as running out of file descriptors repeat
                    // at once: pause instead of spinning.
                    if self.stop.sleep(Duration::from_millis(50)) {
                        return;
                    }
                }
            }
        }
    }

    fn serve_connection(&self, stream: TcpStream) {
        let Ok(guard) = self.stop.register(&stream) else {
            return;
        };
        let Ok(read_half) = stream.try_clone() else {
            return;
        };
        let mut reader = LineReader::new(read_half, self.cfg.bugs.no_short_read_handling);
        let mut out = stream;
        loop {
            let line = match reader.read_line() {
                Ok(Some(line)) => line,
                Ok(None) => return,
                Err(e) => {
                    if e.kind() == io::ErrorKind::InvalidData {
                        let _ = send(&mut out, &format!("ERR {e}"));
                    }
                    return;
                }
            };
            let sent = match wire::parse_request(&line) {
                Err(reason) => send(&mut out, &format!("ERR {reason}")),
                Ok(Request::Role) => send(&mut out, self.role().word()),
                Ok(Request::Seq) => send(&mut out, &format!("SEQ {}", lock(&self.state).seq)),
                Ok(Request::Get { key }) => send(&mut out, &self.get(&key)),
                Ok(Request::Set { key, value }) => self.set(key, value, &mut out),
                Ok(Request::Join { id }) => {
                    self.accept_backup(id, reader, out, guard);
                    return;
                }
            };
            if sent.is_err() {
                return;
            }
        }
    }

    fn lookup(&self, key: &str) -> String {
        match lock(&self.state).data.get(key) {
            Some(value) => format!("VALUE {value}"),
            None => "NOTFOUND".to_string(),
        }
    }

    fn get(&self, key: &str) -> String {
        if self.role() == Role::Primary {
            // Wait for an in-flight write, so a read never returns a value
            // the backups do not have yet (it could vanish on failover).
            let _write = lock(&self.write_lock);
            return self.lookup(key);
        }
        if self.cfg.bugs.stale_read {
            // BUG stale-read: answer from local state, which may be behind.
            return self.lookup(key);
        }
        "NOTPRIMARY".to_string()
    }

    fn set(&self, key: String, value: String, out: &mut TcpStream) -> io::Result<()> {
        let _write = lock(&self.write_lock);
        if self.role() != Role::Primary {
            return send(out, "NOTPRIMARY");
        }
        let mut next = lock(&self.state).clone();
        next.seq += 1;
        next.data.insert(key.clone(), value.clone());
        if let Err(e) = next.save(&self.cfg.data_dir, self.durable()) {
            return send(out, &format!("ERR cannot persist: {e}"));
        }
        let seq = next.seq;
        *lock(&self.state) = next;
        if self.cfg.bugs.ack_before_replicate {
            // BUG ack-before-replicate: the client hears OK while the write
            // exists on this node only: replication is queued only after the
            // reply went out, and the next request does not wait for it; a
            // crash until then loses it.
            let sent = send(out, "OK");
            lock(&self.pending).writes.push_back((seq, key, value));
            self.pending_changed.notify_all();
            return sent;
        }
        self.replicate(seq, &key, &value);
        send(out, "OK")
    }
}
