//! Recorded file calls become operations: fds and names are followed from the base tree,
//! failed calls are skipped, and each call that changes or persists something becomes one
//! [`Op`] (namespace, data or barrier).

use super::tree::{Node, Tree};
use crate::{Error, Result};
use ordeal_events::calls::{FileOp, SyncScope};
use std::cell::RefCell;
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
    /// File offset of a write or fallocate, or length of a truncate.
    pub pos: Option<u64>,
    /// Length of a fallocate, or of an msync'd range.
    pub len: Option<u64>,
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
    /// `ino`: the file moved, when it is one; `replaces`: `to` named a file before (the
    /// replace-via-rename pattern ext4's `auto_da_alloc` recognises).
    Rename {
        from: String,
        to: String,
        ino: Option<usize>,
        replaces: bool,
    },
    /// `renameat2(RENAME_EXCHANGE)`: the two names swap what they name.
    Exchange {
        a: String,
        b: String,
    },
    /// A hard link: `to` names the file `from` names (`ino`).
    Link {
        from: String,
        to: String,
        ino: usize,
    },
    /// A symbolic link at `path` holding `target`.
    Symlink {
        path: String,
        target: String,
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
    /// `fallocate`: `[off, off + len)` reads as zeros when `zero` (a punched hole, a zeroed
    /// range), and the file grows to `off + len` unless `keep_size`.
    Allocate {
        ino: usize,
        off: u64,
        len: u64,
        zero: bool,
        keep_size: bool,
    },
    /// fsync/fdatasync of a file. `commits`: on ext4 it commits the journal (the file had
    /// changes the journal must hold: any, for fsync; its creation, a new name or a new size,
    /// for fdatasync), which makes every earlier namespace operation durable.
    SyncFile {
        ino: usize,
        commits: bool,
    },
    /// A write through an `O_SYNC`/`O_DSYNC` descriptor returned: that write (the op at
    /// index `op`) is durable. `commits`: as for an fdatasync of the file.
    SyncWrite {
        op: usize,
        commits: bool,
    },
    /// fsync of a directory. `commits`: on ext4 it commits the journal (the directory's
    /// entries changed since the last commit).
    SyncDir {
        path: String,
        commits: bool,
    },
    /// sync/syncfs.
    SyncAll,
}

impl OpKind {
    /// A change of names (create, mkdir, rename, link, unlink, ...), not of data.
    pub fn is_namespace(&self) -> bool {
        matches!(
            self,
            OpKind::Create { .. }
                | OpKind::Mkdir { .. }
                | OpKind::Rename { .. }
                | OpKind::Exchange { .. }
                | OpKind::Link { .. }
                | OpKind::Symlink { .. }
                | OpKind::Unlink { .. }
                | OpKind::Rmdir { .. }
        )
    }
    /// A write, truncate or fallocate: it changes a file's data, not a name.
    pub fn is_data(&self) -> bool {
        matches!(
            self,
            OpKind::Write { .. } | OpKind::Truncate { .. } | OpKind::Allocate { .. }
        )
    }
    pub fn is_barrier(&self) -> bool {
        matches!(
            self,
            OpKind::SyncFile { .. }
                | OpKind::SyncWrite { .. }
                | OpKind::SyncDir { .. }
                | OpKind::SyncAll
        )
    }
    /// The file an operation writes, creates, renames or links, when it is one.
    pub fn ino(&self) -> Option<usize> {
        match self {
            OpKind::Write { ino, .. }
            | OpKind::Truncate { ino, .. }
            | OpKind::Allocate { ino, .. } => Some(*ino),
            OpKind::Create { ino, .. } | OpKind::Link { ino, .. } => Some(*ino),
            OpKind::Rename { ino, .. } => *ino,
            _ => None,
        }
    }
    /// Parent directories a namespace operation changes.
    pub(super) fn parents(&self) -> Vec<&str> {
        match self {
            OpKind::Create { path, .. }
            | OpKind::Mkdir { path }
            | OpKind::Symlink { path, .. }
            | OpKind::Unlink { path }
            | OpKind::Rmdir { path } => vec![parent(path)],
            OpKind::Link { to, .. } => vec![parent(to)],
            OpKind::Rename { from, to, .. } => vec![parent(from), parent(to)],
            OpKind::Exchange { a, b } => vec![parent(a), parent(b)],
            _ => vec![],
        }
    }
}

/// A call the model does not follow: crash states built without it could be wrong, so
/// `ordeal crash` gives no verdict on the program (docs/crash.md, unknown verdicts).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unmodelled {
    /// The call's seq in trace.jsonl.
    pub seq: u64,
    pub call: String,
    /// What it did that the model cannot follow.
    pub why: String,
}

impl std::fmt::Display for Unmodelled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (seq {}): {}", self.call, self.seq, self.why)
    }
}

/// What [`build`] made of the calls.
#[derive(Clone, Debug, Default)]
pub struct Built {
    pub ops: Vec<Op>,
    /// Number of inodes (base files first).
    pub inodes: usize,
    /// Calls the model does not follow, in call order.
    pub unmodelled: Vec<Unmodelled>,
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
            OpKind::Exchange { a, b } => format!("exchange {} ↔ {}", name(a), name(b)),
            OpKind::Link { from, to, .. } => format!("link {} → {}", name(from), name(to)),
            OpKind::Symlink { path, target } => format!("symlink {} → {target}", name(path)),
            OpKind::Unlink { path } => format!("unlink {}", name(path)),
            OpKind::Rmdir { path } => format!("rmdir {}", name(path)),
            OpKind::Write { off, data, .. } => {
                let what = if self.call == "msync" {
                    "msync"
                } else {
                    "write"
                };
                format!("{what} {file} [{off}, {})", off + data.len() as u64)
            }
            OpKind::Truncate { len, .. } => format!("truncate {file} to {len}"),
            OpKind::Allocate {
                off,
                len,
                zero,
                keep_size,
                ..
            } => format!(
                "fallocate {file} [{off}, {}){}{}",
                off + len,
                if *zero { " zeroed" } else { "" },
                if *keep_size { " keep size" } else { "" }
            ),
            OpKind::SyncFile { .. } => format!("{} {file}", self.call),
            OpKind::SyncWrite { .. } if self.call == "msync" => {
                format!("msync {file} returned (MS_SYNC)")
            }
            OpKind::SyncWrite { .. } => format!("{} {file} returned (synchronous fd)", self.call),
            OpKind::SyncDir { path, .. } => format!("fsync dir {}", name(path)),
            OpKind::SyncAll => "sync".to_string(),
        }
    }
}

fn parent(p: &str) -> &str {
    p.rsplit_once('/').map(|(d, _)| d).unwrap_or("")
}

/// Turns recorded calls into operations, following fds and names from the base tree. Failed
/// calls are skipped. Returns the operations and the number of inodes (base files first).
/// Calls the model cannot follow are an error here; [`build`] lists them instead.
pub fn build_ops(base: &Tree, calls: &[Call]) -> Result<(Vec<Op>, usize)> {
    let b = build(base, calls);
    if let Some(u) = b.unmodelled.first() {
        return Err(Error::Other(format!("unmodelled call: {u}")));
    }
    Ok((b.ops, b.inodes))
}

/// Whether an open's flags make every write through the descriptor durable on return.
fn synchronous(flags: &str) -> bool {
    flags.split('|').any(|f| f == "O_SYNC" || f == "O_DSYNC")
}

/// What ext4's journal holds that its last commit did not: which files changed (at all, and
/// in what `fdatasync` must persist: a new name or size), which directories' entries changed.
/// An fsync that finds its file or directory here commits the journal, and with it every
/// earlier namespace operation (docs/crash.md, two models).
#[derive(Default)]
struct Journal {
    files: HashMap<usize, (bool, bool)>,
    dirs: std::collections::HashSet<String>,
}

impl Journal {
    fn renamed(&mut self, kind: &OpKind) {
        if let Some(ino) = kind.ino() {
            self.files.insert(ino, (true, true));
        }
        self.dirs
            .extend(kind.parents().into_iter().map(str::to_string));
    }
    fn written(&mut self, ino: usize, resized: bool) {
        let f = self.files.entry(ino).or_default();
        f.0 = true;
        f.1 |= resized;
    }
    fn file_commits(&self, ino: usize, data_only: bool) -> bool {
        self.files
            .get(&ino)
            .is_some_and(|&(any, meta)| if data_only { meta } else { any })
    }
}

/// [`build_ops`], keeping going past calls the model cannot follow (listed in
/// [`Built::unmodelled`]).
pub fn build(base: &Tree, calls: &[Call]) -> Built {
    #[derive(Clone)]
    enum Target {
        /// A file, and whether its descriptor was opened `O_SYNC`/`O_DSYNC`.
        File(usize, bool),
        Dir(String),
    }
    let mut t = base.clone();
    let mut fds: HashMap<(i32, i32), Target> = HashMap::new();
    let mut ops = Vec::new();
    let mut unmodelled = Vec::new();
    // Per inode since its last sync: (changed at all, changed in what fdatasync persists).
    let journal: RefCell<Journal> = RefCell::default();
    let lookup = |t: &Tree, p: &str| -> Option<Target> {
        match t.names.get(p)? {
            Node::File(i) => Some(Target::File(*i, false)),
            Node::Dir => Some(Target::Dir(p.to_string())),
            Node::Symlink(_) => None,
        }
    };
    for c in calls.iter().filter(|c| c.ret >= 0) {
        let flags = c.flags.as_deref().unwrap_or("");
        let has_flag = |f: &str| flags.split('|').any(|x| x == f);
        let by_fd = |fds: &HashMap<(i32, i32), Target>, t: &Tree| {
            c.fd.and_then(|fd| fds.get(&(c.pid, fd)).cloned())
                .or_else(|| c.path.as_deref().and_then(|p| lookup(t, p)))
        };
        let mut push = |kind: OpKind, t: &mut Tree| {
            if kind.is_namespace() {
                journal.borrow_mut().renamed(&kind);
                t.apply_ns(&kind);
            } else if let Some(ino) = kind.ino().filter(|_| kind.is_data()) {
                let before = t.files[ino].len();
                t.apply_data(&kind, None);
                journal
                    .borrow_mut()
                    .written(ino, t.files[ino].len() != before);
            }
            match &kind {
                OpKind::SyncFile { commits: true, .. }
                | OpKind::SyncWrite { commits: true, .. }
                | OpKind::SyncDir { commits: true, .. }
                | OpKind::SyncAll => *journal.borrow_mut() = Journal::default(),
                _ => {}
            }
            ops.push(Op {
                seq: c.seq,
                call: c.call.clone(),
                path: c.path.clone(),
                kind,
            });
            ops.len() - 1
        };
        let mut unfollowed = |why: String| {
            unmodelled.push(Unmodelled {
                seq: c.seq,
                call: c.call.clone(),
                why,
            })
        };
        let Some(op) = ordeal_events::calls::by_name(&c.call).and_then(|s| s.file) else {
            continue;
        };
        match op.op {
            FileOp::Open => {
                let Some(p) = c.path.clone() else { continue };
                let fd = c.ret as i32;
                if has_flag("O_TMPFILE") {
                    unfollowed("an unnamed O_TMPFILE file".into());
                    continue;
                }
                let creat = c.call == "creat" || has_flag("O_CREAT");
                let trunc = c.call == "creat" || has_flag("O_TRUNC");
                let sync = synchronous(flags);
                let target = match lookup(&t, &p) {
                    Some(Target::File(ino, _)) => {
                        let writable = has_flag("O_WRONLY") || has_flag("O_RDWR");
                        if trunc && (writable || c.call == "creat") && !t.files[ino].is_empty() {
                            push(OpKind::Truncate { ino, len: 0 }, &mut t);
                        }
                        Some(Target::File(ino, sync))
                    }
                    Some(d) => Some(d),
                    None if creat && !has_flag("O_DIRECTORY") => {
                        let ino = t.new_file();
                        push(OpKind::Create { path: p, ino }, &mut t);
                        Some(Target::File(ino, sync))
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
                let Some(Target::File(ino, sync)) = by_fd(&fds, &t) else {
                    continue;
                };
                let (Some(off), Some(data)) = (c.pos, c.data.clone()) else {
                    unfollowed(
                        "its bytes were not recorded (record with file data on, as `ordeal crash` does)"
                            .into(),
                    );
                    continue;
                };
                let w = push(OpKind::Write { ino, off, data }, &mut t);
                if sync {
                    let commits = journal.borrow().file_commits(ino, true);
                    push(OpKind::SyncWrite { op: w, commits }, &mut t);
                }
            }
            FileOp::MapSync => {
                let Some(Target::File(ino, _)) = c.path.as_deref().and_then(|p| lookup(&t, p))
                else {
                    continue;
                };
                if c.len == Some(0) {
                    continue;
                }
                let (Some(off), Some(data)) = (c.pos, c.data.clone()) else {
                    unfollowed("the bytes of the mapped range were not recorded".into());
                    continue;
                };
                // What the mapping held then is written back; with MS_SYNC durably.
                let w = push(OpKind::Write { ino, off, data }, &mut t);
                if has_flag("MS_SYNC") {
                    let commits = journal.borrow().file_commits(ino, true);
                    push(OpKind::SyncWrite { op: w, commits }, &mut t);
                }
            }
            FileOp::Truncate => {
                if let (Some(Target::File(ino, _)), Some(len)) = (by_fd(&fds, &t), c.pos) {
                    push(OpKind::Truncate { ino, len }, &mut t);
                }
            }
            FileOp::Allocate => {
                let Some(Target::File(ino, _)) = by_fd(&fds, &t) else {
                    continue;
                };
                let (Some(off), Some(len)) = (c.pos, c.len) else {
                    unfollowed("its range was not recorded".into());
                    continue;
                };
                if has_flag("FALLOC_FL_COLLAPSE_RANGE") || has_flag("FALLOC_FL_INSERT_RANGE") {
                    unfollowed(format!("it moves the file's contents ({flags})"));
                    continue;
                }
                let zero = has_flag("FALLOC_FL_PUNCH_HOLE") || has_flag("FALLOC_FL_ZERO_RANGE");
                let keep_size = has_flag("FALLOC_FL_KEEP_SIZE");
                if zero || !keep_size {
                    push(
                        OpKind::Allocate {
                            ino,
                            off,
                            len,
                            zero,
                            keep_size,
                        },
                        &mut t,
                    );
                }
            }
            // fdatasync persists the data and the size (what is needed to read it back):
            // all the model tracks of a file, so it is fsync here.
            FileOp::Sync(SyncScope::File | SyncScope::Data) => match by_fd(&fds, &t) {
                Some(Target::File(ino, _)) => {
                    let commits = journal
                        .borrow()
                        .file_commits(ino, op.op == FileOp::Sync(SyncScope::Data));
                    push(OpKind::SyncFile { ino, commits }, &mut t);
                }
                Some(Target::Dir(path)) => {
                    let commits = journal.borrow().dirs.contains(&path);
                    push(OpKind::SyncDir { path, commits }, &mut t);
                }
                None => {}
            },
            FileOp::Sync(SyncScope::FileSystem | SyncScope::All) => {
                push(OpKind::SyncAll, &mut t);
            }
            // Starts writeback, makes nothing durable.
            FileOp::Sync(SyncScope::Range) => {}
            FileOp::Rename => {
                let (Some(from), Some(to)) = (c.path.clone(), c.path2.clone()) else {
                    unfollowed("a name outside the data dir".into());
                    continue;
                };
                if has_flag("RENAME_WHITEOUT") {
                    unfollowed("RENAME_WHITEOUT".into());
                    continue;
                }
                if has_flag("RENAME_EXCHANGE") {
                    push(OpKind::Exchange { a: from, b: to }, &mut t);
                    continue;
                }
                let ino = match t.names.get(&from) {
                    Some(Node::File(i)) => Some(*i),
                    _ => None,
                };
                let replaces = matches!(t.names.get(&to), Some(Node::File(_)));
                push(
                    OpKind::Rename {
                        from,
                        to,
                        ino,
                        replaces,
                    },
                    &mut t,
                );
            }
            FileOp::Link => {
                let (Some(from), Some(to)) = (c.path.clone(), c.path2.clone()) else {
                    unfollowed("a name outside the data dir".into());
                    continue;
                };
                match t.names.get(&from) {
                    Some(Node::File(ino)) => {
                        let ino = *ino;
                        push(OpKind::Link { from, to, ino }, &mut t);
                    }
                    _ => unfollowed(format!("{from} is not a file the model knows")),
                }
            }
            FileOp::Symlink => {
                let Some(path) = c.path.clone() else { continue };
                let Some(target) = c.path2.as_deref() else {
                    unfollowed("its target was not recorded".into());
                    continue;
                };
                let target = target.to_string();
                push(OpKind::Symlink { path, target }, &mut t);
            }
            FileOp::Unlink | FileOp::Rmdir => {
                let Some(path) = c.path.clone() else { continue };
                if op.op == FileOp::Rmdir || has_flag("AT_REMOVEDIR") {
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
    Built {
        inodes: t.files.len(),
        ops,
        unmodelled,
    }
}
