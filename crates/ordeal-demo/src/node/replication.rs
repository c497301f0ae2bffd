//! Replication, both ends: the primary sends a snapshot to a joining backup and each write to
//! every joined backup (`REPL`, waiting for `ACK`); a backup joins its primary, persists the
//! snapshot and applies the write stream.
//!
//! Invariant: a backup acknowledges a snapshot or a write only after persisting it, and the
//! primary drops (and disconnects) a backup that fails to, which makes it re-join through a
//! fresh snapshot.

use std::collections::BTreeMap;
use std::io::{self, BufReader, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::PoisonError;

use super::stop::ConnGuard;
use super::{lock, Node, Role};
use crate::store::State;
use crate::wire::{self, send, LineReader};

/// A backup the primary replicates to.
pub(super) struct Backup {
    id: usize,
    /// The sequence number of the snapshot it joined with: it already has
    /// every write up to there.
    joined_seq: u64,
    writer: TcpStream,
    reader: BufReader<TcpStream>,
    _guard: ConnGuard,
}

/// A backup's connection to its primary.
pub(super) struct Upstream {
    pub(super) primary: usize,
    writer: TcpStream,
    reader: BufReader<TcpStream>,
    _guard: ConnGuard,
}

impl<'a> Node<'a> {
    /// Bug ack-before-replicate only: replicates queued writes in order
    /// until the node stops.
    pub(super) fn replicate_pending(&self) {
        loop {
            let (seq, key, value) = {
                let mut pending = lock(&self.pending);
                loop {
                    if pending.closed {
                        return;
                    }
                    if let Some(write) = pending.writes.pop_front() {
                        break write;
                    }
                    pending = self
                        .pending_changed
                        .wait(pending)
                        .unwrap_or_else(PoisonError::into_inner);
                }
            };
            self.replicate(seq, &key, &value);
        }
    }

    pub(super) fn close_pending(&self) {
        lock(&self.pending).closed = true;
        self.pending_changed.notify_all();
    }

    /// Sends one write to every backup and waits for their ACKs. A backup
    /// that fails is dropped (and its connection closed, which makes it
    /// re-join and catch up through a snapshot).
    pub(super) fn replicate(&self, seq: u64, key: &str, value: &str) {
        let mut backups = lock(&self.backups);
        if backups.is_empty() {
            return;
        }
        let message = format!("REPL {seq} {key} {value}");
        let expected = format!("ACK {seq}");
        // A backup whose snapshot already has this write must not get it
        // again (only possible when writes are replicated late): replaying
        // an old write would overwrite newer values.
        let needs = |b: &Backup| b.joined_seq < seq;
        // Send to all backups before waiting, so they persist in parallel.
        let mut failures: Vec<Option<String>> = backups
            .iter_mut()
            .map(|b| {
                if needs(b) {
                    send(&mut b.writer, &message).err().map(|e| e.to_string())
                } else {
                    None
                }
            })
            .collect();
        for (backup, failure) in backups.iter_mut().zip(failures.iter_mut()) {
            if failure.is_some() || !needs(backup) {
                continue;
            }
            *failure = match wire::read_line(&mut backup.reader) {
                Ok(Some(line)) if line == expected => None,
                Ok(Some(line)) => Some(format!("expected {expected:?}, got {line:?}")),
                Ok(None) => Some("connection closed".to_string()),
                Err(e) => Some(e.to_string()),
            };
        }
        let mut kept = Vec::with_capacity(backups.len());
        for (backup, failure) in backups.drain(..).zip(failures) {
            match failure {
                None => kept.push(backup),
                Some(reason) => {
                    self.warn(format_args!("dropping backup {}: {reason}", backup.id));
                    let _ = backup.writer.shutdown(Shutdown::Both);
                }
            }
        }
        *backups = kept;
    }

    /// Handles `JOIN id`: sends the whole state and, once the backup has
    /// acknowledged it, adds the connection to the replication set.
    pub(super) fn accept_backup(
        &self,
        id: usize,
        reader: LineReader,
        mut out: TcpStream,
        guard: ConnGuard,
    ) {
        if id == self.cfg.id || id >= self.cfg.peers.len() {
            let _ = send(&mut out, &format!("ERR invalid node id {id}"));
            return;
        }
        // No write may slip between the snapshot and the backup joining.
        let _write = lock(&self.write_lock);
        if self.role() != Role::Primary {
            let _ = send(&mut out, "NOTPRIMARY");
            return;
        }
        let snapshot = lock(&self.state).clone();
        let mut reader = reader.into_buffered();
        match self.send_snapshot(&snapshot, &mut reader, &mut out) {
            Ok(()) => {
                let mut backups = lock(&self.backups);
                // A node that re-joins replaces its old, dead connection.
                backups.retain(|b| {
                    if b.id == id {
                        let _ = b.writer.shutdown(Shutdown::Both);
                    }
                    b.id != id
                });
                backups.push(Backup {
                    id,
                    joined_seq: snapshot.seq,
                    writer: out,
                    reader,
                    _guard: guard,
                });
            }
            Err(e) => {
                self.warn(format_args!("backup {id} failed to join: {e}"));
                let _ = out.shutdown(Shutdown::Both);
            }
        }
    }

    fn send_snapshot(
        &self,
        snapshot: &State,
        reader: &mut BufReader<TcpStream>,
        out: &mut TcpStream,
    ) -> io::Result<()> {
        out.set_read_timeout(Some(self.cfg.peer_timeout))?;
        out.set_write_timeout(Some(self.cfg.peer_timeout))?;
        let mut message = format!("SNAPSHOT {} {}\n", snapshot.seq, snapshot.data.len());
        for (key, value) in &snapshot.data {
            message.push_str(&format!("KV {key} {value}\n"));
        }
        out.write_all(message.as_bytes())?;
        let expected = format!("ACK {}", snapshot.seq);
        match wire::read_line(reader)? {
            Some(line) if line == expected => Ok(()),
            Some(line) => Err(io::Error::other(format!(
                "expected {expected:?}, got {line:?}"
            ))),
            None => Err(io::ErrorKind::UnexpectedEof.into()),
        }
    }

    /// Joins `primary`: receives and persists its snapshot, acknowledges it.
    pub(super) fn join(&self, primary: usize) -> io::Result<Upstream> {
        let timeout = self.cfg.peer_timeout;
        let stream = TcpStream::connect_timeout(&self.cfg.peers[primary], timeout)?;
        let guard = self.stop.register(&stream)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        let mut writer = stream;
        let mut reader = BufReader::new(writer.try_clone()?);
        send(&mut writer, &format!("JOIN {}", self.cfg.id))?;
        let header = wire::read_line(&mut reader)?.ok_or(io::ErrorKind::UnexpectedEof)?;
        let (seq, count) = wire::parse_snapshot_header(&header).map_err(invalid_data)?;
        let mut data = BTreeMap::new();
        for _ in 0..count {
            let line = wire::read_line(&mut reader)?.ok_or(io::ErrorKind::UnexpectedEof)?;
            let (key, value) = wire::parse_kv(&line).map_err(invalid_data)?;
            data.insert(key, value);
        }
        // The primary's state replaces ours whole: anything we have that it
        // lacks was never acknowledged to a client.
        let snapshot = State { seq, data };
        snapshot.save(&self.cfg.data_dir, self.durable())?;
        *lock(&self.state) = snapshot;
        send(&mut writer, &format!("ACK {seq}"))?;
        // The primary may be idle for a long time: only a closed connection
        // means it is gone.
        writer.set_read_timeout(None)?;
        self.set_role(Role::Backup(primary));
        self.say(format_args!("joined primary {primary}"));
        Ok(Upstream {
            primary,
            writer,
            reader,
            _guard: guard,
        })
    }

    /// Applies the primary's REPL stream until it ends; returns why it ended.
    pub(super) fn follow(&self, mut upstream: Upstream) -> String {
        let reason = loop {
            let line = match wire::read_line(&mut upstream.reader) {
                Ok(Some(line)) => line,
                Ok(None) => break "connection closed".to_string(),
                Err(e) => break e.to_string(),
            };
            let (seq, key, value) = match wire::parse_repl(&line) {
                Ok(write) => write,
                Err(e) => break e.to_string(),
            };
            let mut next = lock(&self.state).clone();
            next.seq = seq;
            next.data.insert(key, value);
            if let Err(e) = next.save(&self.cfg.data_dir, self.durable()) {
                break format!("cannot persist: {e}");
            }
            *lock(&self.state) = next;
            if let Err(e) = send(&mut upstream.writer, &format!("ACK {seq}")) {
                break e.to_string();
            }
        };
        let _ = upstream.writer.shutdown(Shutdown::Both);
        reason
    }
}

fn invalid_data(reason: wire::ReplicationError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, reason)
}
