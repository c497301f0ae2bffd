//! Crash states: what a node's data directory may hold after a power loss, given the file
//! calls it made since a base copy. The persistence model is documented in docs/crash.md; in
//! short (ext4 `data=ordered`-like, on the conservative side):
//!
//! - Calls become **operations**: namespace operations (create, mkdir, rename, unlink, rmdir)
//!   and data operations (write, truncate) on inodes; barriers (fsync/fdatasync of a file or
//!   a directory, sync/syncfs) persist earlier operations; close, reads and
//!   `sync_file_range` guarantee nothing.
//! - A data operation on a file is durable once a later fsync/fdatasync of that file (or a
//!   sync) has returned. A namespace operation is durable once a later fsync of its parent
//!   directory (either parent for a rename) or a sync has returned. fsync of a file does not
//!   persist its name.
//! - Namespace operations persist in program order (the journal is a prefix): if one is
//!   durable, so is every earlier one. Data operations that are not durable may each be lost,
//!   independently of each other and of namespace operations (so a rename can reach the disk
//!   before the data of the file it names).
//! - A write that is not durable may also be torn: only a prefix persists, cut at a 4096-byte
//!   block boundary of the file or at a byte boundary, or its tail reads as zeros.
//!
//! [`Explorer`] enumerates crash states deterministically: for each crash point (before every
//! barrier and at the end of the calls), the state with everything issued persisted (the
//! prefix), then every single un-synced data operation lost, every cut of the un-synced
//! namespace operations, every tear of an un-synced write; then seeded random combinations.
//! Identical trees are recognised by hash, so each distinct state is checked once.

use crate::{Error, Result};
use ordeal_events::calls::{FileOp, SyncScope};
use ordeal_sys::rng::{SplitMix64, GOLDEN};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;
use std::sync::Arc;

/// Block size for tearing writes at block boundaries.
pub const BLOCK: u64 = 4096;

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
    fn is_namespace(&self) -> bool {
        matches!(
            self,
            OpKind::Create { .. }
                | OpKind::Mkdir { .. }
                | OpKind::Rename { .. }
                | OpKind::Unlink { .. }
                | OpKind::Rmdir { .. }
        )
    }
    fn is_data(&self) -> bool {
        matches!(self, OpKind::Write { .. } | OpKind::Truncate { .. })
    }
    fn is_barrier(&self) -> bool {
        matches!(
            self,
            OpKind::SyncFile { .. } | OpKind::SyncDir { .. } | OpKind::SyncAll
        )
    }
    fn ino(&self) -> Option<usize> {
        match self {
            OpKind::Write { ino, .. } | OpKind::Truncate { ino, .. } => Some(*ino),
            OpKind::Create { ino, .. } => Some(*ino),
            OpKind::Rename { ino, .. } => *ino,
            _ => None,
        }
    }
    /// Parent directories a namespace operation changes.
    fn parents(&self) -> Vec<&str> {
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

/// A node of a tree: a directory, a file (inode number), a symlink.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Node {
    Dir,
    File(usize),
    Symlink(Vec<u8>),
}

/// A directory tree in memory: names and file contents.
#[derive(Clone, Debug, Default)]
pub struct Tree {
    names: BTreeMap<String, Node>,
    files: Vec<Arc<Vec<u8>>>,
    /// Permission bits of base entries.
    modes: HashMap<String, u32>,
}

impl Tree {
    /// Reads a directory (the base) into memory, without following symlinks.
    pub fn load(root: &Path) -> Result<Tree> {
        let mut t = Tree::default();
        t.names.insert(String::new(), Node::Dir);
        load_into(root, "", &mut t)?;
        Ok(t)
    }

    /// Number of entries, the root included.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// Content of the file at `path`.
    pub fn file(&self, path: &str) -> Option<&[u8]> {
        match self.names.get(path)? {
            Node::File(ino) => Some(self.files[*ino].as_slice()),
            _ => None,
        }
    }

    /// Paths in the tree, in order (the root is `""`).
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.names.keys().map(String::as_str)
    }

    /// A content hash of the whole tree (names, types, contents), to recognise equal states.
    pub fn hash(&self) -> blake3::Hash {
        let mut h = blake3::Hasher::new();
        for (p, n) in &self.names {
            h.update(&(p.len() as u64).to_le_bytes());
            h.update(p.as_bytes());
            match n {
                Node::Dir => {
                    h.update(b"d");
                }
                Node::File(ino) => {
                    h.update(b"f");
                    h.update(&(self.files[*ino].len() as u64).to_le_bytes());
                    h.update(&self.files[*ino]);
                }
                Node::Symlink(t) => {
                    h.update(b"l");
                    h.update(&(t.len() as u64).to_le_bytes());
                    h.update(t);
                }
            }
        }
        h.finalize()
    }

    /// Writes the tree into `dir` (created; must not exist or be empty).
    pub fn materialize(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        for (p, n) in &self.names {
            if p.is_empty() {
                continue;
            }
            let to = dir.join(p);
            match n {
                Node::Dir => std::fs::create_dir_all(&to).map_err(|e| Error::io(&to, e))?,
                Node::File(ino) => {
                    std::fs::write(&to, self.files[*ino].as_slice())
                        .map_err(|e| Error::io(&to, e))?;
                }
                Node::Symlink(t) => {
                    use std::os::unix::ffi::OsStrExt;
                    symlink(std::ffi::OsStr::from_bytes(t), &to).map_err(|e| Error::io(&to, e))?
                }
            }
            if let Some(m) = self.modes.get(p) {
                if !matches!(n, Node::Symlink(_)) {
                    std::fs::set_permissions(&to, std::fs::Permissions::from_mode(*m))
                        .map_err(|e| Error::io(&to, e))?;
                }
            }
        }
        Ok(())
    }

    fn new_file(&mut self) -> usize {
        self.files.push(Arc::new(Vec::new()));
        self.files.len() - 1
    }

    /// Applies a namespace operation.
    fn apply_ns(&mut self, k: &OpKind) {
        match k {
            OpKind::Create { path, ino } => {
                self.names.insert(path.clone(), Node::File(*ino));
            }
            OpKind::Mkdir { path } => {
                self.names.insert(path.clone(), Node::Dir);
            }
            OpKind::Unlink { path } | OpKind::Rmdir { path } => {
                self.remove_tree(path);
            }
            OpKind::Rename { from, to, .. } => {
                if from == to || !self.names.contains_key(from) {
                    return;
                }
                self.remove_tree(to);
                let prefix = format!("{from}/");
                let moved: Vec<String> = self
                    .names
                    .range(from.clone()..)
                    .map(|(p, _)| p)
                    .take_while(|p| *p == from || p.starts_with(&prefix))
                    .cloned()
                    .collect();
                for p in moved {
                    if let Some(n) = self.names.remove(&p) {
                        let np = format!("{to}{}", &p[from.len()..]);
                        self.modes
                            .remove(&p)
                            .map(|m| self.modes.insert(np.clone(), m));
                        self.names.insert(np, n);
                    }
                }
            }
            _ => {}
        }
    }

    fn remove_tree(&mut self, path: &str) {
        let prefix = format!("{path}/");
        let gone: Vec<String> = self
            .names
            .range(path.to_string()..)
            .map(|(p, _)| p)
            .take_while(|p| *p == path || p.starts_with(&prefix))
            .cloned()
            .collect();
        for p in gone {
            self.names.remove(&p);
            self.modes.remove(&p);
        }
    }

    /// Applies a data operation (`torn`: only part of a write).
    fn apply_data(&mut self, k: &OpKind, torn: Option<Cut>) {
        match k {
            OpKind::Write { ino, off, data } => {
                let f = Arc::make_mut(&mut self.files[*ino]);
                let off = *off as usize;
                let (keep, full_len) = match torn {
                    None => (data.len(), data.len()),
                    Some(Cut::Prefix(n)) => (n as usize, n as usize),
                    Some(Cut::ZeroTail(n)) => (n as usize, data.len()),
                };
                if f.len() < off + full_len {
                    f.resize(off + full_len, 0);
                }
                f[off..off + keep].copy_from_slice(&data[..keep]);
                if keep < full_len {
                    f[off + keep..off + full_len].fill(0);
                }
            }
            OpKind::Truncate { ino, len } => {
                Arc::make_mut(&mut self.files[*ino]).resize(*len as usize, 0);
            }
            _ => {}
        }
    }
}

fn load_into(dir: &Path, rel: &str, t: &mut Tree) -> Result<()> {
    let rd = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    let mut entries: Vec<_> = rd.filter_map(|e| e.ok()).collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = e.file_name().to_string_lossy().into_owned();
        let p = if rel.is_empty() {
            name
        } else {
            format!("{rel}/{name}")
        };
        let path = e.path();
        let md = std::fs::symlink_metadata(&path).map_err(|e| Error::io(&path, e))?;
        let ft = md.file_type();
        t.modes.insert(p.clone(), md.permissions().mode() & 0o7777);
        if ft.is_dir() {
            t.names.insert(p.clone(), Node::Dir);
            load_into(&path, &p, t)?;
        } else if ft.is_file() {
            let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
            let ino = t.new_file();
            t.files[ino] = Arc::new(bytes);
            t.names.insert(p, Node::File(ino));
        } else if ft.is_symlink() {
            use std::os::unix::ffi::OsStrExt;
            let target = std::fs::read_link(&path).map_err(|e| Error::io(&path, e))?;
            t.names
                .insert(p, Node::Symlink(target.as_os_str().as_bytes().to_vec()));
        }
    }
    Ok(())
}

/// Copies a directory tree (files, directories, symlinks, permission bits) to `to`.
pub fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    Tree::load(from)?.materialize(to)
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

/// How a torn write persisted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cut {
    /// Only its first N bytes (the file ends there if the write extended it).
    Prefix(u64),
    /// Its first N bytes, the rest of its range reads as zeros.
    ZeroTail(u64),
}

impl std::fmt::Display for Cut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Cut::Prefix(n) => write!(f, "only its first {n} bytes persisted"),
            Cut::ZeroTail(n) => write!(f, "its first {n} bytes persisted, the rest reads as zeros"),
        }
    }
}

/// How a crash state was made.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Everything issued before the crash point persisted.
    Prefix,
    /// One un-synced data operation lost, everything else persisted.
    Lost,
    /// The un-synced namespace operations from one on lost (they persist in order).
    Cut,
    /// One un-synced write torn.
    Torn,
    /// A seeded random combination.
    Random,
}

/// A crash state: ops `0..crash_at` were issued; which of them did not (fully) persist.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CrashState {
    /// Operations issued before the crash: `0..crash_at`.
    pub crash_at: usize,
    pub kind: Kind,
    /// Data operations lost.
    pub lost: Vec<usize>,
    /// Namespace operations from this one on (before the crash) lost.
    pub ns_cut: Option<usize>,
    /// A write persisted only partly.
    pub torn: Option<(usize, Cut)>,
}

/// What was durable at a crash point.
struct Window {
    /// Data ops issued and not durable.
    data: Vec<usize>,
    /// Namespace ops issued and not durable (a suffix of the namespace ops).
    ns: Vec<usize>,
}

/// Generates crash states of a list of operations over a base tree.
pub struct Explorer<'a> {
    base: &'a Tree,
    ops: &'a [Op],
    points: Vec<usize>,
    ninos: usize,
}

impl<'a> Explorer<'a> {
    pub fn new(base: &'a Tree, ops: &'a [Op], ninos: usize) -> Explorer<'a> {
        // Crash points: before anything, right before every barrier, after everything.
        let mut points = vec![0];
        points.extend(
            ops.iter()
                .enumerate()
                .filter(|(_, o)| o.kind.is_barrier())
                .map(|(i, _)| i),
        );
        points.push(ops.len());
        points.dedup();
        Explorer {
            base,
            ops,
            points,
            ninos,
        }
    }

    /// The crash points (op indices: ops before it were issued).
    pub fn points(&self) -> &[usize] {
        &self.points
    }

    /// Which issued operations are not durable at crash point `k`.
    fn window(&self, k: usize) -> Window {
        let mut all = false;
        let mut inos: HashSet<usize> = HashSet::new();
        let mut dirs: HashSet<&str> = HashSet::new();
        let mut ns_forced: Option<usize> = None;
        let mut data = Vec::new();
        let mut ns = Vec::new();
        for i in (0..k).rev() {
            let op = &self.ops[i].kind;
            match op {
                OpKind::SyncAll => all = true,
                OpKind::SyncFile { ino } => {
                    inos.insert(*ino);
                }
                OpKind::SyncDir { path } => {
                    dirs.insert(path.as_str());
                }
                _ if op.is_data() => {
                    let forced = all || op.ino().is_some_and(|n| inos.contains(&n));
                    if !forced {
                        data.push(i);
                    }
                }
                _ if op.is_namespace() => {
                    if ns_forced.is_none() && (all || op.parents().iter().any(|p| dirs.contains(p)))
                    {
                        ns_forced = Some(i);
                    }
                    if ns_forced.is_none() {
                        ns.push(i);
                    }
                }
                _ => {}
            }
        }
        data.reverse();
        ns.reverse();
        Window { data, ns }
    }

    /// The tree of a crash state.
    pub fn tree(&self, s: &CrashState) -> Tree {
        let mut t = self.base.clone();
        while t.files.len() < self.ninos {
            t.new_file();
        }
        let lost: HashSet<usize> = s.lost.iter().copied().collect();
        for (i, op) in self.ops[..s.crash_at].iter().enumerate() {
            if op.kind.is_namespace() {
                if s.ns_cut.is_none_or(|c| i < c) {
                    t.apply_ns(&op.kind);
                }
            } else if op.kind.is_data() && !lost.contains(&i) {
                let torn = s.torn.filter(|(w, _)| *w == i).map(|(_, c)| c);
                t.apply_data(&op.kind, torn);
            }
        }
        t
    }

    /// The cuts tried for a write of `len` bytes at `off`.
    fn cuts(off: u64, len: u64) -> Vec<Cut> {
        let mut v = Vec::new();
        let first_boundary = (off / BLOCK + 1) * BLOCK - off;
        let boundaries: Vec<u64> = (0..)
            .map(|b| first_boundary + b * BLOCK)
            .take_while(|&x| x < len)
            .collect();
        let mut picks: Vec<u64> = Vec::new();
        if let Some(&f) = boundaries.first() {
            picks.push(f);
        }
        if boundaries.len() > 2 {
            picks.push(boundaries[boundaries.len() / 2]);
        }
        if let Some(&l) = boundaries.last() {
            picks.push(l);
        }
        picks.extend([1, len / 2, len.saturating_sub(1)]);
        let mut seen = HashSet::new();
        for p in picks {
            if p > 0 && p < len && seen.insert(p) {
                v.push(Cut::Prefix(p));
            }
        }
        let z = boundaries.first().copied().unwrap_or(len / 2);
        if z > 0 && z < len {
            v.push(Cut::ZeroTail(z));
        }
        v
    }

    /// The systematic crash states, in order: every prefix, then per crash point every lost
    /// data operation, every namespace cut, every torn write.
    pub fn systematic(&self) -> Vec<CrashState> {
        let mut out: Vec<CrashState> = self
            .points
            .iter()
            .map(|&k| CrashState {
                crash_at: k,
                kind: Kind::Prefix,
                lost: vec![],
                ns_cut: None,
                torn: None,
            })
            .collect();
        for &k in &self.points {
            let w = self.window(k);
            for &d in &w.data {
                out.push(CrashState {
                    crash_at: k,
                    kind: Kind::Lost,
                    lost: vec![d],
                    ns_cut: None,
                    torn: None,
                });
            }
            for &m in &w.ns {
                out.push(CrashState {
                    crash_at: k,
                    kind: Kind::Cut,
                    lost: vec![],
                    ns_cut: Some(m),
                    torn: None,
                });
            }
            for &d in &w.data {
                if let OpKind::Write { off, data, .. } = &self.ops[d].kind {
                    for c in Self::cuts(*off, data.len() as u64) {
                        out.push(CrashState {
                            crash_at: k,
                            kind: Kind::Torn,
                            lost: vec![],
                            ns_cut: None,
                            torn: Some((d, c)),
                        });
                    }
                }
            }
        }
        out
    }

    /// A seeded random crash state: a random crash point, each un-synced data operation lost
    /// with probability 1/2, half the time a random namespace cut, sometimes a torn write.
    pub fn random(&self, rng: &mut Rng) -> CrashState {
        let k = self.points[rng.below(self.points.len() as u64) as usize];
        let w = self.window(k);
        let lost: Vec<usize> = w.data.iter().copied().filter(|_| rng.coin()).collect();
        let ns_cut = if !w.ns.is_empty() && rng.coin() {
            Some(w.ns[rng.below(w.ns.len() as u64) as usize])
        } else {
            None
        };
        let kept: Vec<usize> = w
            .data
            .iter()
            .copied()
            .filter(|d| !lost.contains(d))
            .filter(|d| matches!(self.ops[*d].kind, OpKind::Write { .. }))
            .collect();
        let torn = if !kept.is_empty() && rng.below(4) == 0 {
            let d = kept[rng.below(kept.len() as u64) as usize];
            match &self.ops[d].kind {
                OpKind::Write { off, data, .. } => {
                    let cuts = Self::cuts(*off, data.len() as u64);
                    (!cuts.is_empty()).then(|| (d, cuts[rng.below(cuts.len() as u64) as usize]))
                }
                _ => None,
            }
        } else {
            None
        };
        CrashState {
            crash_at: k,
            kind: Kind::Random,
            lost,
            ns_cut,
            torn,
        }
    }

    /// The operations a failing crash state blames, by role: `lost`, `torn`, `persisted`
    /// (later operations that reached the disk ahead of what was lost or torn: writes to the
    /// same file, renames of it) or, for a prefix, `crash-after` (the last operation issued).
    pub fn blame(&self, s: &CrashState) -> Vec<(Role, usize)> {
        let mut out = Vec::new();
        let mut inos = HashSet::new();
        let mut first = None;
        if let Some(c) = s.ns_cut {
            out.push((Role::Lost, c));
            first = Some(c);
        }
        for &d in &s.lost {
            out.push((Role::Lost, d));
            inos.extend(self.ops[d].kind.ino());
            first = Some(first.map_or(d, |f: usize| f.min(d)));
        }
        if let Some((w, _)) = s.torn {
            out.push((Role::Torn, w));
            inos.extend(self.ops[w].kind.ino());
            first = Some(first.map_or(w, |f: usize| f.min(w)));
        }
        let Some(first) = first else {
            if s.crash_at > 0 {
                out.push((Role::CrashAfter, s.crash_at - 1));
            }
            return out;
        };
        if s.ns_cut.is_none() {
            let lost: HashSet<usize> = s.lost.iter().copied().collect();
            for i in first + 1..s.crash_at {
                let op = &self.ops[i].kind;
                let persisted = !lost.contains(&i) && s.torn.is_none_or(|(w, _)| w != i);
                let relevant = matches!(op, OpKind::Rename { .. } | OpKind::Write { .. })
                    && op.ino().is_some_and(|n| inos.contains(&n));
                if persisted && relevant {
                    out.push((Role::Persisted, i));
                }
            }
        }
        out
    }
}

/// The part an operation plays in a vulnerability.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// It did not persist (and later ones it depends on did).
    Lost,
    /// It persisted only partly.
    Torn,
    /// It persisted although an earlier operation it should follow did not.
    Persisted,
    /// Nothing was lost: the crash came right after it.
    CrashAfter,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Lost => "lost",
            Role::Torn => "torn",
            Role::Persisted => "persisted",
            Role::CrashAfter => "crash-after",
        }
    }
}

/// A small deterministic generator (SplitMix64, its state started at `seed ^ GOLDEN`): same
/// seed, same crash states.
pub struct Rng(SplitMix64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(SplitMix64::new(seed ^ GOLDEN))
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }
    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.0.below(n)
    }
    pub fn coin(&mut self) -> bool {
        self.next_u64() & 1 == 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(seq: u64, name: &str, path: &str) -> Call {
        Call {
            seq,
            pid: 1,
            call: name.into(),
            path: Some(path.into()),
            ret: 0,
            ..Default::default()
        }
    }

    /// temp + write + [fsync] + rename + [dir fsync], as the demo saves.
    fn save(durable: bool, content: &[u8]) -> Vec<Call> {
        let mut v = vec![
            Call {
                flags: Some("O_WRONLY|O_CREAT|O_TRUNC|O_CLOEXEC".into()),
                ret: 3,
                ..call(1, "openat", "state.tmp")
            },
            Call {
                fd: Some(3),
                pos: Some(0),
                data: Some(Arc::from(content)),
                ret: content.len() as i64,
                ..call(2, "write", "state.tmp")
            },
        ];
        if durable {
            v.push(Call {
                fd: Some(3),
                ..call(3, "fsync", "state.tmp")
            });
        }
        v.push(Call {
            fd: Some(3),
            ..call(4, "close", "state.tmp")
        });
        v.push(Call {
            path2: Some("state".into()),
            ..call(5, "rename", "state.tmp")
        });
        if durable {
            v.push(Call {
                flags: Some("O_RDONLY|O_CLOEXEC".into()),
                ret: 4,
                ..call(6, "openat", "")
            });
            v.push(Call {
                fd: Some(4),
                ..call(7, "fsync", "")
            });
        }
        v
    }

    fn states(durable: bool) -> (Tree, Vec<Op>, usize) {
        let mut base = Tree::default();
        base.names.insert(String::new(), Node::Dir);
        let ino = base.new_file();
        base.files[ino] = Arc::new(b"old\n".to_vec());
        base.names.insert("state".into(), Node::File(ino));
        let (ops, n) = build_ops(&base, &save(durable, b"new!\n")).unwrap();
        (base, ops, n)
    }

    #[test]
    fn calls_become_operations() {
        let (_, ops, n) = states(true);
        let d: Vec<String> = ops.iter().map(|o| o.describe()).collect();
        assert_eq!(
            d,
            [
                "create state.tmp",
                "write state.tmp [0, 5)",
                "fsync state.tmp",
                "rename state.tmp → state",
                "fsync dir ."
            ]
        );
        assert_eq!(n, 2);
    }

    #[test]
    fn without_fsync_a_rename_can_persist_before_the_data() {
        let (base, ops, n) = states(false);
        let ex = Explorer::new(&base, &ops, n);
        assert_eq!(ex.points(), &[0, 3]);
        let all = ex.systematic();
        let contents: Vec<(Kind, Option<Vec<u8>>)> = all
            .iter()
            .map(|s| (s.kind, ex.tree(s).file("state").map(|b| b.to_vec())))
            .collect();
        // The lost write with the rename persisted: an empty `state`.
        assert!(contents.contains(&(Kind::Lost, Some(vec![]))));
        let s = all.iter().find(|s| s.kind == Kind::Lost).unwrap();
        let blame: Vec<(Role, String)> = ex
            .blame(s)
            .into_iter()
            .map(|(r, i)| (r, ops[i].describe()))
            .collect();
        assert_eq!(
            blame,
            [
                (Role::Lost, "write state.tmp [0, 5)".to_string()),
                (Role::Persisted, "rename state.tmp → state".to_string())
            ]
        );
        // A torn write at a byte boundary.
        assert!(contents.contains(&(Kind::Torn, Some(b"ne".to_vec()))));
    }

    #[test]
    fn with_fsyncs_every_state_holds_old_or_new() {
        let (base, ops, n) = states(true);
        let ex = Explorer::new(&base, &ops, n);
        let mut rng = Rng::new(7);
        let mut all = ex.systematic();
        all.extend((0..50).map(|_| ex.random(&mut rng)));
        for s in &all {
            let t = ex.tree(s);
            let f = t.file("state").unwrap();
            assert!(f == b"old\n" || f == b"new!\n", "{s:?}: {f:?}");
        }
    }

    #[test]
    fn trees_materialize_and_hash_by_content() {
        let (base, ops, n) = states(true);
        let ex = Explorer::new(&base, &ops, n);
        let s = ex.systematic();
        let t = ex.tree(s.last().unwrap());
        let d = tempfile::tempdir().unwrap();
        t.materialize(&d.path().join("x")).unwrap();
        let back = Tree::load(&d.path().join("x")).unwrap();
        assert_eq!(back.hash(), t.hash());
        assert_ne!(base.hash(), t.hash());
        assert_eq!(Rng::new(3).next_u64(), Rng::new(3).next_u64());
    }

    #[test]
    fn crash_state_stream_is_unchanged() {
        // Computed with this module's own splitmix64 before it moved to ordeal-sys: a seed
        // given to `ordeal crash` must keep choosing the same crash states.
        let mut rng = Rng::new(7);
        assert_eq!(rng.next_u64(), 17039259473404265729);
        assert_eq!(rng.next_u64(), 18363971414914884509);
        assert_eq!(rng.below(10), 4);
        assert!(rng.coin());
        assert!(!rng.coin());
        assert_eq!(rng.below(0), 0);
    }
}
