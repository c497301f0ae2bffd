//! Capturing a directory tree: entries, metadata and content hashes, and the capture file.
//!
//! The walk never follows symlinks, skips every directory named `lost+found` and whatever the
//! ignore globs match (a directory matched is skipped with everything beneath it). Entries
//! that vanish while the walk runs (a live system may delete files) are left out rather than
//! failing the capture. Regular files are hashed with BLAKE3 in parallel (rayon): each file is
//! read in 1 MiB chunks (no mmap, so a file truncated under us cannot raise SIGBUS), a chunk
//! large enough is hashed with several threads too.
//!
//! Recorded per entry: path (relative, `/`-separated; the root itself is `.`), type, size,
//! permission bits (`mode & 0o7777`), link count, uid, gid, symlink target, content hash.
//! Never timestamps, inode numbers or block counts: they differ between two equal states.

use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::cmp::Ordering;
use std::os::unix::fs::FileTypeExt;

mod file;
mod hash;
mod ignore;
mod walk;

pub use hash::hash_file;
pub use ignore::Ignore;
pub use walk::capture;

/// The `format` field of every capture file.
pub const FORMAT: &str = "ordeal-state";
/// The capture file version this crate writes (and the newest it reads).
pub const VERSION: u32 = 1;
/// The content hash algorithm.
pub const HASH: &str = "blake3";

/// The type of an entry.
#[derive(Serialize, Deserialize, Clone, Copy, PartialEq, Eq, Debug, Hash, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum EntryKind {
    File,
    Dir,
    Symlink,
    Fifo,
    Socket,
    Char,
    Block,
}

impl EntryKind {
    /// The name used in capture files and diff output.
    pub fn as_str(self) -> &'static str {
        match self {
            EntryKind::File => "file",
            EntryKind::Dir => "dir",
            EntryKind::Symlink => "symlink",
            EntryKind::Fifo => "fifo",
            EntryKind::Socket => "socket",
            EntryKind::Char => "char",
            EntryKind::Block => "block",
        }
    }

    fn of(ft: std::fs::FileType) -> EntryKind {
        if ft.is_dir() {
            EntryKind::Dir
        } else if ft.is_symlink() {
            EntryKind::Symlink
        } else if ft.is_fifo() {
            EntryKind::Fifo
        } else if ft.is_socket() {
            EntryKind::Socket
        } else if ft.is_char_device() {
            EntryKind::Char
        } else if ft.is_block_device() {
            EntryKind::Block
        } else {
            EntryKind::File
        }
    }
}

impl std::fmt::Display for EntryKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One entry of a captured tree.
#[derive(Serialize, Deserialize, Clone, PartialEq, Eq, Debug)]
pub struct Entry {
    /// Path relative to the captured root, `/`-separated; `.` is the root itself. Names that
    /// are not UTF-8 appear here lossily and exactly in `path_hex`.
    pub path: String,
    /// The path's bytes in hex, present only when the path is not UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_hex: Option<String>,
    #[serde(rename = "type")]
    pub kind: EntryKind,
    /// `st_size`. Not compared for directories (it depends on the file system's layout).
    pub size: u64,
    /// Permission bits, `st_mode & 0o7777`, written in octal ("0644").
    #[serde(with = "octal")]
    pub mode: u32,
    pub nlink: u64,
    pub uid: u32,
    pub gid: u32,
    /// Symlink target (lossy when not UTF-8; exact in `target_hex`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_hex: Option<String>,
    /// BLAKE3 of a regular file's content, hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash: Option<String>,
}

impl Entry {
    /// The path's exact bytes: the key entries are sorted and compared by.
    pub fn key(&self) -> Cow<'_, [u8]> {
        exact(&self.path, &self.path_hex)
    }

    /// The symlink target's exact bytes.
    pub fn target_bytes(&self) -> Option<Cow<'_, [u8]>> {
        self.target.as_ref().map(|t| exact(t, &self.target_hex))
    }
}

fn exact<'a>(text: &'a str, hex: &Option<String>) -> Cow<'a, [u8]> {
    if let Some(bytes) = hex.as_deref().and_then(from_hex) {
        return Cow::Owned(bytes);
    }
    if text == "." {
        Cow::Borrowed(b"")
    } else {
        Cow::Borrowed(text.as_bytes())
    }
}

/// Orders paths component by component, so a directory is directly followed by what it
/// holds (`a`, `a/b`, `a-b`); the root (empty key) comes first.
pub fn path_cmp(a: &[u8], b: &[u8]) -> Ordering {
    a.split(|&c| c == b'/').cmp(b.split(|&c| c == b'/'))
}

/// Whether `path` is `dir` itself or lies beneath it (exact bytes; `dir` empty is the root).
pub fn is_within(path: &[u8], dir: &[u8]) -> bool {
    dir.is_empty()
        || path == dir
        || (path.len() > dir.len() && path.starts_with(dir) && path[dir.len()] == b'/')
}

/// Where and when a capture was taken, when it is a checkpoint of a run.
#[derive(Serialize, Deserialize, Clone, PartialEq, Eq, Debug, Default)]
pub struct Stamp {
    /// Checkpoint id, counting from 1 within a run.
    pub id: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Sequence number of the last event in trace.jsonl written before the capture started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    /// CLOCK_MONOTONIC (ns) when the capture started, on the clock of trace.jsonl.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monotonic_ns: Option<u64>,
    /// The node whose data this is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
}

/// Totals of a capture.
#[derive(Serialize, Deserialize, Clone, PartialEq, Eq, Debug, Default)]
pub struct Stats {
    pub entries: u64,
    pub files: u64,
    /// Sum of regular files' sizes.
    pub bytes: u64,
}

/// A captured tree: header and entries sorted by [`path_cmp`].
#[derive(Serialize, Deserialize, Clone, PartialEq, Eq, Debug)]
pub struct Capture {
    pub format: String,
    pub version: u32,
    pub hash: String,
    /// The directory captured, as given.
    pub root: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stamp: Option<Stamp>,
    /// The ignore globs the capture was taken with.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignore: Vec<String>,
    pub stats: Stats,
    pub entries: Vec<Entry>,
}

/// How to capture.
#[derive(Clone, Debug, Default)]
pub struct CaptureOptions {
    /// Globs of paths to leave out. A glob without `/` matches an entry's name at any depth
    /// (`*.tmp`, `LOCK`); one with `/` matches the whole relative path (`logs/**`,
    /// `wal/*.old`). `*` never crosses `/`, `**` does.
    pub ignore: Vec<String>,
    /// Hashing threads; 0 uses rayon's global pool (one per CPU).
    pub threads: usize,
}

impl Capture {
    /// A capture of `root` from entries (sorted here), with totals computed.
    pub fn new(root: String, ignore: Vec<String>, mut entries: Vec<Entry>) -> Capture {
        entries.sort_by(|a, b| path_cmp(&a.key(), &b.key()));
        let mut c = Capture {
            format: FORMAT.into(),
            version: VERSION,
            hash: HASH.into(),
            root,
            stamp: None,
            ignore,
            stats: Stats::default(),
            entries,
        };
        c.recount();
        c
    }

    fn recount(&mut self) {
        let files = self.entries.iter().filter(|e| e.kind == EntryKind::File);
        self.stats = Stats {
            entries: self.entries.len() as u64,
            files: files.clone().count() as u64,
            bytes: files.map(|e| e.size).sum(),
        };
    }

    /// The entry at a relative path (exact bytes; empty or `.` is the root).
    pub fn get(&self, rel: &[u8]) -> Option<&Entry> {
        let rel = if rel == b"." { &b""[..] } else { rel };
        self.entries
            .binary_search_by(|e| path_cmp(&e.key(), rel))
            .ok()
            .map(|i| &self.entries[i])
    }

    /// The entries at and beneath a relative path (contiguous in the sorted order).
    pub fn subtree(&self, rel: &[u8]) -> &[Entry] {
        let rel = if rel == b"." { &b""[..] } else { rel };
        let start = self
            .entries
            .partition_point(|e| path_cmp(&e.key(), rel) == Ordering::Less);
        let len = self.entries[start..]
            .iter()
            .take_while(|e| is_within(&e.key(), rel))
            .count();
        &self.entries[start..start + len]
    }

    /// Leaves out the entries an ignore set matches (and everything beneath an ignored
    /// directory), as if the capture had been taken with it.
    pub fn filter(&mut self, ignore: &Ignore) {
        if ignore.globs().is_empty() {
            return;
        }
        let mut dropped: Option<Vec<u8>> = None;
        self.entries.retain(|e| {
            let key = e.key();
            if let Some(d) = &dropped {
                if is_within(&key, d) {
                    return false;
                }
            }
            if ignore.is_ignored(&key) {
                dropped = Some(key.into_owned());
                return false;
            }
            true
        });
        for g in ignore.globs() {
            if !self.ignore.contains(g) {
                self.ignore.push(g.clone());
            }
        }
        self.recount();
    }
}

/// Text for bytes, and their hex when the text is not exact.
fn text_of(bytes: &[u8]) -> (String, Option<String>) {
    match std::str::from_utf8(bytes) {
        Ok(s) if s != "." => (s.to_string(), None),
        _ => (
            String::from_utf8_lossy(bytes).into_owned(),
            Some(to_hex(bytes)),
        ),
    }
}

pub(crate) fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

fn from_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    s.as_bytes()
        .chunks(2)
        .map(|p| Some(digit(p[0])? << 4 | digit(p[1])?))
        .collect()
}

/// Serde for permission bits as an octal string ("0644"); numbers are accepted too.
pub(crate) mod octal {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(mode: &u32, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{mode:04o}"))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Mode {
            Text(String),
            Number(u32),
        }
        match Mode::deserialize(d)? {
            Mode::Number(n) => Ok(n),
            Mode::Text(t) => u32::from_str_radix(&t, 8)
                .map_err(|_| serde::de::Error::custom(format!("mode {t:?} is not octal"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::hash::CHUNK;
    use super::*;
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::{symlink, PermissionsExt};
    use std::path::Path;

    fn keys(c: &Capture) -> Vec<String> {
        c.entries.iter().map(|e| e.path.clone()).collect()
    }

    #[test]
    fn records_exact_metadata_and_sorts_by_component() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        std::fs::create_dir(r.join("a")).unwrap();
        std::fs::write(r.join("a/b"), b"hello").unwrap();
        std::fs::write(r.join("a-b"), b"").unwrap();
        std::fs::set_permissions(r.join("a-b"), std::fs::Permissions::from_mode(0o640)).unwrap();
        symlink("a/b", r.join("l")).unwrap();
        std::fs::hard_link(r.join("a/b"), r.join("h")).unwrap();
        let c = capture(r, &CaptureOptions::default()).unwrap();
        assert_eq!(keys(&c), [".", "a", "a/b", "a-b", "h", "l"]);
        let b = c.get(b"a/b").unwrap();
        assert_eq!(b.kind, EntryKind::File);
        assert_eq!(b.size, 5);
        assert_eq!(b.nlink, 2);
        assert_eq!(
            b.hash.as_deref(),
            Some(blake3::hash(b"hello").to_hex().as_str())
        );
        assert_eq!(c.get(b"a-b").unwrap().mode, 0o640);
        let l = c.get(b"l").unwrap();
        assert_eq!(l.kind, EntryKind::Symlink);
        assert_eq!(l.target.as_deref(), Some("a/b"));
        assert_eq!(l.hash, None);
        assert_eq!(c.stats.files, 3);
        assert_eq!(c.stats.bytes, 10);
        assert_eq!(c.subtree(b"a").len(), 2);
        assert_eq!(c.subtree(b"").len(), 6);
        assert_eq!(c.subtree(b"a/b").len(), 1);
        assert_eq!(c.subtree(b"zz").len(), 0);
    }

    #[test]
    fn skips_lost_found_and_ignored_paths() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        std::fs::create_dir_all(r.join("lost+found/x")).unwrap();
        std::fs::create_dir_all(r.join("logs/old")).unwrap();
        std::fs::write(r.join("logs/old/1.log"), b"x").unwrap();
        std::fs::write(r.join("db.tmp"), b"x").unwrap();
        std::fs::create_dir(r.join("sub")).unwrap();
        std::fs::write(r.join("sub/x.tmp"), b"x").unwrap();
        std::fs::write(r.join("sub/keep"), b"x").unwrap();
        let opts = CaptureOptions {
            ignore: vec!["*.tmp".into(), "logs/**".into()],
            ..Default::default()
        };
        let c = capture(r, &opts).unwrap();
        assert_eq!(keys(&c), [".", "logs", "sub", "sub/keep"]);
        assert_eq!(c.ignore, ["*.tmp", "logs/**"]);
    }

    #[test]
    fn bad_glob_is_an_error_not_a_panic() {
        let t = tempfile::tempdir().unwrap();
        let opts = CaptureOptions {
            ignore: vec!["a[".into()],
            ..Default::default()
        };
        let e = capture(t.path(), &opts).unwrap_err().to_string();
        assert!(e.starts_with("bad ignore glob \"a[\""), "{e}");
        assert!(capture(&t.path().join("missing"), &CaptureOptions::default()).is_err());
    }

    #[test]
    fn file_round_trip_and_non_utf8_names() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path().join("root");
        std::fs::create_dir(&r).unwrap();
        let odd = OsStr::from_bytes(b"n\xffame");
        std::fs::write(r.join(odd), b"1").unwrap();
        symlink(OsStr::from_bytes(b"t\xfe"), r.join("l")).unwrap();
        let mut c = capture(&r, &CaptureOptions::default()).unwrap();
        c.stamp = Some(Stamp {
            id: 3,
            label: Some("after put".into()),
            seq: Some(1200),
            monotonic_ns: Some(5),
            node: Some("n0".into()),
        });
        let file = t.path().join("c.json");
        c.save(&file).unwrap();
        let back = Capture::load(&file).unwrap();
        assert_eq!(back, c);
        let e = back.get(b"n\xffame").unwrap();
        assert_eq!(e.path_hex.as_deref(), Some("6eff616d65"));
        let l = back.get(b"l").unwrap();
        assert_eq!(l.target_bytes().unwrap().as_ref(), b"t\xfe");
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(text.contains("\"mode\":\"0644\"") || text.contains("\"mode\":\"06"));
        assert_eq!(text.lines().count(), 2 + c.entries.len());
    }

    #[test]
    fn rejects_bad_files() {
        let p = Path::new("x.json");
        for (text, want) in [
            ("{", "not a capture file"),
            (
                r#"{"format":"other","version":1,"hash":"blake3","root":"/","stats":{"entries":0,"files":0,"bytes":0},"entries":[]}"#,
                "format is \"other\"",
            ),
            (
                r#"{"format":"ordeal-state","version":9,"hash":"blake3","root":"/","stats":{"entries":0,"files":0,"bytes":0},"entries":[]}"#,
                "version 9",
            ),
            (
                r#"{"format":"ordeal-state","version":1,"hash":"blake3","root":"/","stats":{"entries":0,"files":0,"bytes":0},"entries":[{"path":"a","type":"dir","size":0,"mode":"0755","nlink":1,"uid":0,"gid":0},{"path":"a","type":"dir","size":0,"mode":"0755","nlink":1,"uid":0,"gid":0}]}"#,
                "appears twice",
            ),
            (
                r#"{"format":"ordeal-state","version":1,"hash":"blake3","root":"/","stats":{"entries":0,"files":0,"bytes":0},"entries":[{"path":"a","type":"dir","size":0,"mode":"9","nlink":1,"uid":0,"gid":0}]}"#,
                "not octal",
            ),
        ] {
            let e = Capture::from_json(text.as_bytes(), p)
                .unwrap_err()
                .to_string();
            assert!(e.contains(want), "{e} should contain {want}");
        }
    }

    #[test]
    fn large_file_hash_matches_one_shot() {
        let t = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..(3 * CHUNK + 12345)).map(|i| (i % 251) as u8).collect();
        std::fs::write(t.path().join("big"), &data).unwrap();
        assert_eq!(
            hash_file(&t.path().join("big")).unwrap(),
            blake3::hash(&data)
        );
    }

    #[test]
    fn is_within_and_order() {
        assert!(is_within(b"a/b", b"a"));
        assert!(!is_within(b"ab", b"a"));
        assert!(is_within(b"a", b""));
        assert_eq!(path_cmp(b"a/b", b"a-b"), Ordering::Less);
        assert_eq!(path_cmp(b"", b"-"), Ordering::Less);
    }
}
