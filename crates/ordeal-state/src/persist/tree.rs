//! A directory tree held in memory (names, file contents, permission bits): loaded from a base
//! directory, changed by operations, hashed to recognise equal crash states, and written out.

use super::explore::Cut;
use super::ops::OpKind;
use crate::{Error, Result};
use std::collections::{BTreeMap, HashMap};
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;
use std::sync::Arc;

/// A node of a tree: a directory, a file (inode number), a symlink.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Node {
    Dir,
    File(usize),
    Symlink(Vec<u8>),
}

/// A directory tree in memory: names and file contents.
#[derive(Clone, Debug, Default)]
pub struct Tree {
    pub(super) names: BTreeMap<String, Node>,
    pub(super) files: Vec<Arc<Vec<u8>>>,
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
        self.materialize_with(dir, None)
    }

    /// [`Tree::materialize`], cloning large files unchanged from `source`'s tree out of its
    /// directory instead of writing them, where the file system can (see [`CloneSource`]).
    pub fn materialize_with(&self, dir: &Path, source: Option<&CloneSource>) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        for (p, n) in &self.names {
            if p.is_empty() {
                continue;
            }
            let to = dir.join(p);
            match n {
                Node::Dir => std::fs::create_dir_all(&to).map_err(|e| Error::io(&to, e))?,
                Node::File(ino) => {
                    let data = &self.files[*ino];
                    if !source.is_some_and(|s| s.clone_into(data, &to)) {
                        std::fs::write(&to, data.as_slice()).map_err(|e| Error::io(&to, e))?;
                    }
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

    pub(super) fn new_file(&mut self) -> usize {
        self.files.push(Arc::new(Vec::new()));
        self.files.len() - 1
    }

    /// Applies a namespace operation.
    pub(super) fn apply_ns(&mut self, k: &OpKind) {
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
            OpKind::Link { to, ino, .. } => {
                self.names.insert(to.clone(), Node::File(*ino));
            }
            OpKind::Symlink { path, target } => {
                self.names
                    .insert(path.clone(), Node::Symlink(target.as_bytes().to_vec()));
            }
            OpKind::Exchange { a, b } => {
                if a == b || !self.names.contains_key(a) || !self.names.contains_key(b) {
                    return;
                }
                let tmp = format!("{a}\0exchange");
                self.move_tree(a, &tmp);
                self.move_tree(b, a);
                self.move_tree(&tmp, b);
            }
            OpKind::Rename { from, to, .. } => {
                if from == to || !self.names.contains_key(from) {
                    return;
                }
                self.remove_tree(to);
                self.move_tree(from, to);
            }
            _ => {}
        }
    }

    /// Moves `from` and everything under it to `to` (which holds nothing).
    fn move_tree(&mut self, from: &str, to: &str) {
        let prefix = format!("{from}/");
        let moved: Vec<String> = self
            .names
            .range(from.to_string()..)
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

    /// The first path (in path order) where `self` and `other` differ: a name only one has,
    /// another type, other contents, another symlink target, or other permission bits where
    /// both know them (times are never compared). `None` when they are equal.
    pub fn first_difference(&self, other: &Tree) -> Option<String> {
        let mut a = self.names.iter().peekable();
        let mut b = other.names.iter().peekable();
        loop {
            let show = |p: &str| {
                if p.is_empty() {
                    ".".to_string()
                } else {
                    p.to_string()
                }
            };
            match (a.peek(), b.peek()) {
                (None, None) => return None,
                (Some((p, _)), None) => return Some(format!("{}: only in the model", show(p))),
                (None, Some((p, _))) => {
                    return Some(format!("{}: only in the real directory", show(p)))
                }
                (Some((pa, _)), Some((pb, _))) if pa < pb => {
                    return Some(format!("{}: only in the model", show(pa)))
                }
                (Some((pa, _)), Some((pb, _))) if pa > pb => {
                    return Some(format!("{}: only in the real directory", show(pb)))
                }
                (Some((p, na)), Some((_, nb))) => {
                    let what = match (na, nb) {
                        (Node::Dir, Node::Dir) => None,
                        (Node::File(x), Node::File(y)) => {
                            let (x, y) = (&self.files[*x], &other.files[*y]);
                            (x != y).then(|| {
                                format!(
                                    "contents differ ({} bytes in the model, {} in the real directory)",
                                    x.len(),
                                    y.len()
                                )
                            })
                        }
                        (Node::Symlink(x), Node::Symlink(y)) => (x != y).then(|| {
                            format!(
                                "symlink targets differ ({} in the model, {} in the real directory)",
                                String::from_utf8_lossy(x),
                                String::from_utf8_lossy(y)
                            )
                        }),
                        _ => Some("types differ".to_string()),
                    };
                    let mode = match (self.modes.get(*p), other.modes.get(*p)) {
                        (Some(x), Some(y)) if x != y && !matches!(na, Node::Symlink(_)) => {
                            Some(format!(
                                "modes differ ({x:o} in the model, {y:o} in the real directory)"
                            ))
                        }
                        _ => None,
                    };
                    if let Some(w) = what.or(mode) {
                        return Some(format!("{}: {w}", show(p)));
                    }
                    a.next();
                    b.next();
                }
            }
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
    pub(super) fn apply_data(&mut self, k: &OpKind, torn: Option<Cut>) {
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
            OpKind::Allocate {
                ino,
                off,
                len,
                zero,
                keep_size,
            } => {
                let f = Arc::make_mut(&mut self.files[*ino]);
                let end = (off + len) as usize;
                if !keep_size && f.len() < end {
                    f.resize(end, 0);
                }
                if *zero {
                    let stop = end.min(f.len());
                    if (*off as usize) < stop {
                        f[*off as usize..stop].fill(0);
                    }
                }
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

/// Files a crash state may take from a directory holding a tree (the base) without writing
/// them: a file whose contents in the state are those of a base file (the same bytes in
/// memory, never modified) is cloned with `FICLONE`, a reflink sharing the base file's blocks
/// copy-on-write (btrfs, XFS): a recovery writing to it changes its own copy only. Hard links
/// are never used: the recovered program runs as the same user, may open any of its files for
/// writing or chmod them (root ignores modes, and a read-only file changes what a program
/// does), and would then change the shared inode, hence every later state. Files under
/// [`CloneSource::MIN`] bytes, and every file on a file system without reflinks (ext4), are
/// written from memory: for them a clone costs more than the write.
pub struct CloneSource {
    dir: std::path::PathBuf,
    /// Address of a base file's contents → its path in `dir`.
    by_contents: HashMap<usize, String>,
    /// Cleared at the first clone the file system refuses.
    works: std::sync::atomic::AtomicBool,
}

impl CloneSource {
    /// Files smaller than this are written, not cloned.
    pub const MIN: usize = 64 * 1024;

    /// The files of `tree`, as found in `dir` (the directory it was loaded from, unchanged).
    pub fn new(tree: &Tree, dir: &Path) -> CloneSource {
        let by_contents = tree
            .names
            .iter()
            .filter_map(|(p, n)| match n {
                Node::File(ino) if tree.files[*ino].len() >= Self::MIN => {
                    Some((Arc::as_ptr(&tree.files[*ino]) as usize, p.clone()))
                }
                _ => None,
            })
            .collect();
        CloneSource {
            dir: dir.to_path_buf(),
            by_contents,
            works: std::sync::atomic::AtomicBool::new(true),
        }
    }

    /// Clones the base file holding exactly `data` (the same allocation) to `to`; false when
    /// there is none or the file system cannot (then nothing is left at `to`).
    fn clone_into(&self, data: &Arc<Vec<u8>>, to: &Path) -> bool {
        use std::os::fd::AsRawFd;
        use std::sync::atomic::Ordering;
        if data.len() < Self::MIN || !self.works.load(Ordering::Relaxed) {
            return false;
        }
        let Some(rel) = self.by_contents.get(&(Arc::as_ptr(data) as usize)) else {
            return false;
        };
        let Ok(src) = std::fs::File::open(self.dir.join(rel)) else {
            return false;
        };
        let Ok(dst) = std::fs::File::create(to) else {
            return false;
        };
        // SAFETY: FICLONE takes the source descriptor as its argument; both are open files.
        let r = unsafe { libc::ioctl(dst.as_raw_fd(), libc::FICLONE, src.as_raw_fd()) };
        if r != 0 {
            self.works.store(false, Ordering::Relaxed);
            drop(dst);
            let _ = std::fs::remove_file(to);
            return false;
        }
        true
    }
}

/// Copies a directory tree (files, directories, symlinks, permission bits) to `to`.
pub fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    Tree::load(from)?.materialize(to)
}
