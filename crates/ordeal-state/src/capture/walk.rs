//! The walk: every entry under a root with its metadata, without following symlinks, leaving
//! out `lost+found`, ignored paths and entries that vanish meanwhile; then the files' hashes.

use super::hash::hash_files;
use super::{path_cmp, text_of, Capture, CaptureOptions, Entry, EntryKind, Ignore};
use crate::{Error, Result};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Captures the tree at `root` (a directory).
pub fn capture(root: &Path, opts: &CaptureOptions) -> Result<Capture> {
    let ignore = Ignore::new(&opts.ignore)?;
    let meta = std::fs::symlink_metadata(root).map_err(|e| Error::io(root, e))?;
    if !meta.is_dir() {
        return Err(Error::Other(format!("{}: not a directory", root.display())));
    }
    let mut entries = vec![entry_of(b"", &meta, None)];
    let mut files: Vec<(usize, PathBuf)> = Vec::new();
    let mut stack: Vec<(PathBuf, Vec<u8>)> = vec![(root.to_path_buf(), Vec::new())];
    while let Some((dir, rel)) = stack.pop() {
        let rd = match std::fs::read_dir(&dir) {
            Ok(rd) => rd,
            // Removed since we saw it: a live system may delete directories under us.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !rel.is_empty() => continue,
            Err(e) => return Err(Error::io(&dir, e)),
        };
        for item in rd {
            let item = item.map_err(|e| Error::io(&dir, e))?;
            let name = item.file_name();
            let mut child_rel = rel.clone();
            if !child_rel.is_empty() {
                child_rel.push(b'/');
            }
            child_rel.extend_from_slice(name.as_bytes());
            let path = item.path();
            let meta = match std::fs::symlink_metadata(&path) {
                Ok(m) => m,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::io(&path, e)),
            };
            if meta.is_dir() && name.as_bytes() == b"lost+found" {
                continue;
            }
            if ignore.is_ignored(&child_rel) {
                continue;
            }
            let target = if meta.file_type().is_symlink() {
                match std::fs::read_link(&path) {
                    Ok(t) => Some(t),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(Error::io(&path, e)),
                }
            } else {
                None
            };
            let entry = entry_of(&child_rel, &meta, target.as_deref());
            if entry.kind == EntryKind::File {
                files.push((entries.len(), path.clone()));
            }
            if entry.kind == EntryKind::Dir {
                stack.push((path, child_rel));
            }
            entries.push(entry);
        }
    }
    let hashes = hash_files(&files, opts.threads)?;
    let mut vanished = Vec::new();
    for ((idx, _), h) in files.iter().zip(hashes) {
        match h {
            Some(h) => entries[*idx].hash = Some(h),
            None => vanished.push(*idx),
        }
    }
    if !vanished.is_empty() {
        let gone: std::collections::HashSet<usize> = vanished.into_iter().collect();
        entries = entries
            .into_iter()
            .enumerate()
            .filter(|(i, _)| !gone.contains(i))
            .map(|(_, e)| e)
            .collect();
    }
    entries.sort_by(|a, b| path_cmp(&a.key(), &b.key()));
    Ok(Capture::new(
        root.display().to_string(),
        ignore.globs().to_vec(),
        entries,
    ))
}

fn entry_of(rel: &[u8], meta: &std::fs::Metadata, target: Option<&Path>) -> Entry {
    let (path, path_hex) = text_of(rel);
    let (target, target_hex) = match target {
        Some(t) => {
            let (text, hex) = text_of(t.as_os_str().as_bytes());
            (Some(text), hex)
        }
        None => (None, None),
    };
    Entry {
        path: if rel.is_empty() { ".".into() } else { path },
        path_hex,
        kind: EntryKind::of(meta.file_type()),
        size: meta.size(),
        mode: meta.mode() & 0o7777,
        nlink: meta.nlink(),
        uid: meta.uid(),
        gid: meta.gid(),
        target,
        target_hex,
        hash: None,
    }
}
