//! Recorded file calls become operations: fds and names are followed from the base tree,
//! failed calls are skipped, and each call that changes or persists something becomes one
//! [`Op`] (namespace, data or barrier).

use super::tree::{Node, Tree};
use crate::{Error, Result};
use ordeal_events::calls::{FileOp, SyncScope};
use std::collections::HashMap;
use std::sync::Arc;

/// One recorded file call, as the input of [`build_ops`]. Paths are relative to the data
/// directory, `/`-separated, `""` for the directory itself; `None` when outside it.
#[derive(Clone, Debug, Default)]
pub struct Call {
    /// Sequence number of the call's event in trace.jsonl.
    pub seq: u64,
    /// Process (thread group) that made it: fds are per process.
    pub pid: i32,
    pub call: String,
    pub path: Option<String>,
    pub path2: Option<String>,
    pub flags: Option<String>,
    pub fd: Option<i32>,
    pub ret: i64,
    /// File offset of a write, or length of a truncate.
    pub pos: Option<u64>,
    /// The bytes a write wrote.
    pub data: Option<Arc<[u8]>>,
}

/// What an operation does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OpKind {
    /// A new empty file `ino` linked at `path`.
    Create {
        path: String,
        ino: usize,
    },
    Mkdir {
        path: String,
    },
    /// `ino`: the file moved, when it is one.
    Rename {
        from: String,
        to: String,
        ino: Option<usize>,
    },
    Unlink {
        path: String,
    },
    Rmdir {
        path: String,
    },
    Write {
        ino: usize,
        off: u64,
        data: Arc<[u8]>,
    },
    Truncate {
        ino: usize,
        len: u64,
    },
    /// fsync/fdatasync of a file.
    SyncFile {
        ino: usize,
    },
    /// fsync of a directory.
    SyncDir {
        path: String,
    },
    /// sync/syncfs.
    SyncAll,
}

impl OpKind {
    pub(super) fn is_namespace(&self) -> bool {
        matches!(
            self,
            OpKind::Create { .. }
                | OpKind::Mkdir { .. }
                | OpKind::Rename { .. }
                | OpKind::Unlink { .. }
                | OpKind::Rmdir { .. }
        )
    }
    pub(super) fn is_data(&self) -> bool {
        matches!(self, OpKind::Write { .. } | OpKind::Truncate { .. })
    }
    pub(super) fn is_barrier(&self) -> bool {
        matches!(
            self,
            OpKind::SyncFile { .. } | OpKind::SyncDir { .. } | OpKind::SyncAll
        )
    }
    pub(super) fn ino(&self) -> Option<usize> {
        match self {
            OpKind::Write { ino, .. } | OpKind::Truncate { ino, .. } => Some(*ino),
            OpKind::Create { ino, .. } => Some(*ino),
            OpKind::Rename { ino, .. } => *ino,
            _ => None,
        }
    }
    /// Parent directories a namespace operation changes.
    pub(super) fn parents(&self) -> Vec<&str> {
        match self {
            OpKind::Create { path, .. }
            | OpKind::Mkdir { path }
            | OpKind::Unlink { path }
            | OpKind::Rmdir { path } => vec![parent(path)],
            OpKind::Rename { from, to, .. } => vec![parent(from), parent(to)],
            _ => vec![],
        }
    }
}

/// An operation with the call it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Op {
    /// The source call's `seq` in trace.jsonl.
    pub seq: u64,
    /// The source call (`openat`, `write`, `renameat2`, ...).
    pub call: String,
    /// The file a data operation or fsync went to, as the call named it.
    pub path: Option<String>,
    pub kind: OpKind,
}

impl Op {
    /// `write state.tmp [0, 120)`, `rename state.tmp → state`, `fsync state.tmp`.
    pub fn describe(&self) -> String {
        let name = |p: &str| {
            if p.is_empty() {
                ".".to_string()
            } else {
                p.to_string()
            }
        };
        let file = name(self.path.as_deref().unwrap_or("?"));
        match &self.kind {
            OpKind::Create { path, .. } => format!("create {}", name(path)),
            OpKind::Mkdir { path } => format!("mkdir {}", name(path)),
            OpKind::Rename { from, to, .. } => format!("rename {} → {}", name(from), name(to)),
            OpKind::Unlink { path } => format!("unlink {}", name(path)),
            OpKind::Rmdir { path } => format!("rmdir {}", name(path)),
            OpKind::Write { off, data, .. } => {
                format!("write {file} [{off}, {})", off + data.len() as u64)
            }
            OpKind::Truncate { len, .. } => format!("truncate {file} to {len}"),
            OpKind::SyncFile { .. } => format!("{} {file}", self.call),
            OpKind::SyncDir { path } => format!("fsync dir {}", name(path)),
            OpKind::SyncAll => "sync".to_string(),
        }
    }
}

fn parent(p: &str) -> &str {
    p.rsplit_once('/').map(|(d, _)| d).unwrap_or("")
}

/// Turns recorded calls into operations, following fds and names from the base tree. Failed
/// calls are skipped. Returns the operations and the number of inodes (base files first).
pub fn build_ops(base: &Tree, calls: &[Call]) -> Result<(Vec<Op>, usize)> {
    #[derive(Clone)]
    enum Target {
        File(usize),
        Dir(String),
    }
    let mut t = base.clone();
    let mut fds: HashMap<(i32, i32), Target> = HashMap::new();
    let mut ops = Vec::new();
    let lookup = |t: &Tree, p: &str| -> Option<Target> {
        match t.names.get(p)? {
            Node::File(i) => Some(Target::File(*i)),
            Node::Dir => Some(Target::Dir(p.to_string())),
            Node::Symlink(_) => None,
        }
    };
    for c in calls.iter().filter(|c| c.ret >= 0) {
        let flags = c.flags.as_deref().unwrap_or("");
        let by_fd = |fds: &HashMap<(i32, i32), Target>, t: &Tree| {
            c.fd.and_then(|fd| fds.get(&(c.pid, fd)).cloned())
                .or_else(|| c.path.as_deref().and_then(|p| lookup(t, p)))
        };
        let mut push = |kind: OpKind, t: &mut Tree| {
            if kind.is_namespace() {
                t.apply_ns(&kind);
            } else if kind.is_data() {
                t.apply_data(&kind, None);
            }
            ops.push(Op {
                seq: c.seq,
                call: c.call.clone(),
                path: c.path.clone(),
                kind,
            });
        };
        let Some(op) = ordeal_events::calls::by_name(&c.call).and_then(|s| s.file) else {
            continue;
        };
        match op.op {
            FileOp::Open => {
                let Some(p) = c.path.clone() else { continue };
                let fd = c.ret as i32;
                let creat = c.call == "creat" || flags.contains("O_CREAT");
                let trunc = c.call == "creat" || flags.contains("O_TRUNC");
                let target = match lookup(&t, &p) {
                    Some(Target::File(ino)) => {
                        let writable = flags.contains("O_WRONLY") || flags.contains("O_RDWR");
                        if trunc && (writable || c.call == "creat") && !t.files[ino].is_empty() {
                            push(OpKind::Truncate { ino, len: 0 }, &mut t);
                        }
                        Some(Target::File(ino))
                    }
                    Some(d) => Some(d),
                    None if creat && !flags.contains("O_DIRECTORY") => {
                        let ino = t.new_file();
                        push(OpKind::Create { path: p, ino }, &mut t);
                        Some(Target::File(ino))
                    }
                    None => None,
                };
                if let Some(target) = target {
                    fds.insert((c.pid, fd), target);
                }
            }
            FileOp::Close => {
                if let Some(fd) = c.fd {
                    fds.remove(&(c.pid, fd));
                }
            }
            FileOp::Write => {
                if c.ret == 0 {
                    continue;
                }
                let Some(Target::File(ino)) = by_fd(&fds, &t) else {
                    continue;
                };
                let (Some(off), Some(data)) = (c.pos, c.data.clone()) else {
                    return Err(Error::Other(format!(
                        "the {} at seq {} has no recorded data (record with file data on, as `ordeal crash` does)",
                        c.call, c.seq
                    )));
                };
                push(OpKind::Write { ino, off, data }, &mut t);
            }
            FileOp::Truncate => {
                if let (Some(Target::File(ino)), Some(len)) = (by_fd(&fds, &t), c.pos) {
                    push(OpKind::Truncate { ino, len }, &mut t);
                }
            }
            FileOp::Sync(SyncScope::File | SyncScope::Data) => match by_fd(&fds, &t) {
                Some(Target::File(ino)) => push(OpKind::SyncFile { ino }, &mut t),
                Some(Target::Dir(path)) => push(OpKind::SyncDir { path }, &mut t),
                None => {}
            },
            FileOp::Sync(SyncScope::FileSystem | SyncScope::All) => push(OpKind::SyncAll, &mut t),
            // Starts writeback, makes nothing durable.
            FileOp::Sync(SyncScope::Range) => {}
            FileOp::Rename => {
                let (Some(from), Some(to)) = (c.path.clone(), c.path2.clone()) else {
                    continue;
                };
                let ino = match t.names.get(&from) {
                    Some(Node::File(i)) => Some(*i),
                    _ => None,
                };
                push(OpKind::Rename { from, to, ino }, &mut t);
            }
            FileOp::Unlink | FileOp::Rmdir => {
                let Some(path) = c.path.clone() else { continue };
                if op.op == FileOp::Rmdir || flags.contains("AT_REMOVEDIR") {
                    push(OpKind::Rmdir { path }, &mut t);
                } else {
                    push(OpKind::Unlink { path }, &mut t);
                }
            }
            FileOp::Mkdir => {
                if let Some(path) = c.path.clone() {
                    push(OpKind::Mkdir { path }, &mut t);
                }
            }
        }
    }
    Ok((ops, t.files.len()))
}
