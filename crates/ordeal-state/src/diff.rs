//! Differences between two captures, path by path.
//!
//! `A` is the reference and `B` the state compared with it: `missing` is in A and not in B,
//! `extra` in B and not in A. A missing or extra directory is one line that counts the entries
//! beneath it. For a path present in both with the same type, the fields are compared in this
//! order: size (not for directories, whose size depends on the file system's layout, nor for
//! symlinks, whose size is their target's length), content
//! (regular files of equal size: a size change already says the content changed), mode, link
//! count, uid, gid, symlink target. A type change is the only line for its path. Timestamps,
//! inode and block numbers are never compared.
//!
//! The order is the captures' path order (a directory, then what it holds), then field order,
//! so equal inputs always give byte-identical output.

use crate::capture::{is_within, path_cmp, Capture, Entry, EntryKind};
use serde::Serialize;
use std::cmp::Ordering;

/// What differs at a path. `a` is the reference's value, `b` the compared state's.
#[derive(Serialize, Clone, PartialEq, Eq, Debug)]
#[serde(tag = "change", rename_all = "lowercase")]
pub enum Change {
    /// In A, not in B; `beneath` counts the entries under a missing directory.
    Missing {
        kind: EntryKind,
        beneath: u64,
    },
    /// In B, not in A.
    Extra {
        kind: EntryKind,
        beneath: u64,
    },
    Type {
        a: EntryKind,
        b: EntryKind,
    },
    Size {
        a: u64,
        b: u64,
    },
    /// Same size, different BLAKE3 (hex).
    Content {
        a: String,
        b: String,
    },
    Mode {
        #[serde(with = "crate::capture::octal")]
        a: u32,
        #[serde(with = "crate::capture::octal")]
        b: u32,
    },
    Nlink {
        a: u64,
        b: u64,
    },
    Uid {
        a: u32,
        b: u32,
    },
    Gid {
        a: u32,
        b: u32,
    },
    Target {
        a: String,
        b: String,
    },
}

impl Change {
    /// The change's name, as in the text output's first column.
    pub fn name(&self) -> &'static str {
        match self {
            Change::Missing { .. } => "missing",
            Change::Extra { .. } => "extra",
            Change::Type { .. } => "type",
            Change::Size { .. } => "size",
            Change::Content { .. } => "content",
            Change::Mode { .. } => "mode",
            Change::Nlink { .. } => "nlink",
            Change::Uid { .. } => "uid",
            Change::Gid { .. } => "gid",
            Change::Target { .. } => "target",
        }
    }
}

/// One difference.
#[derive(Serialize, Clone, PartialEq, Eq, Debug)]
pub struct Difference {
    /// Relative path (`.` is the root).
    pub path: String,
    #[serde(flatten)]
    pub change: Change,
}

/// Quotes text that would be ambiguous in a line (empty, spaces, control characters, quotes).
fn shown(s: &str) -> String {
    if s.is_empty()
        || s.chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '"' || c == '\\')
    {
        format!("{s:?}")
    } else {
        s.to_string()
    }
}

impl std::fmt::Display for Difference {
    /// One line: `CHANGE  PATH  DETAIL`, e.g. `mode     data/kv.db  0644 → 0600`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let path = shown(&self.path);
        let detail = match &self.change {
            Change::Missing { kind, beneath } | Change::Extra { kind, beneath } => {
                if *beneath > 0 {
                    format!(
                        "({kind}, {beneath} {} beneath)",
                        if *beneath == 1 { "entry" } else { "entries" }
                    )
                } else {
                    format!("({kind})")
                }
            }
            Change::Type { a, b } => format!("{a} → {b}"),
            Change::Size { a, b } | Change::Nlink { a, b } => format!("{a} → {b}"),
            Change::Content { a, b } => format!("{} → {}", short(a), short(b)),
            Change::Mode { a, b } => format!("{a:04o} → {b:04o}"),
            Change::Uid { a, b } | Change::Gid { a, b } => format!("{a} → {b}"),
            Change::Target { a, b } => format!("{} → {}", shown(a), shown(b)),
        };
        write!(f, "{:<8} {path}  {detail}", self.change.name())
    }
}

fn short(hash: &str) -> String {
    match hash.get(..16) {
        Some(h) if hash.len() > 16 => format!("{h}…"),
        _ => hash.to_string(),
    }
}

/// The differences from capture `a` (reference) to capture `b`.
pub fn diff(a: &Capture, b: &Capture) -> Vec<Difference> {
    diff_entries(&a.entries, &b.entries)
}

/// The differences between two sorted entry lists (for instance two [`Capture::subtree`]s).
pub fn diff_entries(a: &[Entry], b: &[Entry]) -> Vec<Difference> {
    let mut out: Vec<Difference> = Vec::new();
    let (mut i, mut j) = (0, 0);
    // A missing (extra) directory: its key and the index of its line, to count what is beneath.
    let mut gone_a: Option<(Vec<u8>, usize)> = None;
    let mut gone_b: Option<(Vec<u8>, usize)> = None;
    loop {
        if let (Some((dir, line)), Some(x)) = (&gone_a, a.get(i)) {
            if is_within(&x.key(), dir) {
                bump(&mut out[*line]);
                i += 1;
                continue;
            }
        }
        if let (Some((dir, line)), Some(y)) = (&gone_b, b.get(j)) {
            if is_within(&y.key(), dir) {
                bump(&mut out[*line]);
                j += 1;
                continue;
            }
        }
        let order = match (a.get(i), b.get(j)) {
            (None, None) => break,
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some(x), Some(y)) => path_cmp(&x.key(), &y.key()),
        };
        match order {
            Ordering::Less => {
                let x = &a[i];
                out.push(Difference {
                    path: x.path.clone(),
                    change: Change::Missing {
                        kind: x.kind,
                        beneath: 0,
                    },
                });
                gone_a = (x.kind == EntryKind::Dir).then(|| (x.key().into_owned(), out.len() - 1));
                i += 1;
            }
            Ordering::Greater => {
                let y = &b[j];
                out.push(Difference {
                    path: y.path.clone(),
                    change: Change::Extra {
                        kind: y.kind,
                        beneath: 0,
                    },
                });
                gone_b = (y.kind == EntryKind::Dir).then(|| (y.key().into_owned(), out.len() - 1));
                j += 1;
            }
            Ordering::Equal => {
                compare(&a[i], &b[j], &mut out);
                i += 1;
                j += 1;
            }
        }
    }
    out
}

fn bump(d: &mut Difference) {
    if let Change::Missing { beneath, .. } | Change::Extra { beneath, .. } = &mut d.change {
        *beneath += 1;
    }
}

fn compare(x: &Entry, y: &Entry, out: &mut Vec<Difference>) {
    let mut push = |change| {
        out.push(Difference {
            path: x.path.clone(),
            change,
        })
    };
    if x.kind != y.kind {
        push(Change::Type {
            a: x.kind,
            b: y.kind,
        });
        return;
    }
    // A directory's size depends on the file system; a symlink's is its target's length.
    if x.kind != EntryKind::Dir && x.kind != EntryKind::Symlink && x.size != y.size {
        push(Change::Size {
            a: x.size,
            b: y.size,
        });
    } else if let (Some(ha), Some(hb)) = (&x.hash, &y.hash) {
        if ha != hb {
            push(Change::Content {
                a: ha.clone(),
                b: hb.clone(),
            });
        }
    }
    if x.mode != y.mode {
        push(Change::Mode {
            a: x.mode,
            b: y.mode,
        });
    }
    if x.nlink != y.nlink {
        push(Change::Nlink {
            a: x.nlink,
            b: y.nlink,
        });
    }
    if x.uid != y.uid {
        push(Change::Uid { a: x.uid, b: y.uid });
    }
    if x.gid != y.gid {
        push(Change::Gid { a: x.gid, b: y.gid });
    }
    if x.target_bytes() != y.target_bytes() {
        push(Change::Target {
            a: x.target.clone().unwrap_or_default(),
            b: y.target.clone().unwrap_or_default(),
        });
    }
}

/// The text output: one line per difference.
pub fn render(diffs: &[Difference]) -> String {
    let mut s = String::new();
    for d in diffs {
        s.push_str(&d.to_string());
        s.push('\n');
    }
    s
}

/// The JSON output: `{"a": NAME, "b": NAME, "same": bool, "differences": [...]}`.
pub fn to_json(a: &str, b: &str, diffs: &[Difference]) -> serde_json::Value {
    serde_json::json!({
        "a": a,
        "b": b,
        "same": diffs.is_empty(),
        "differences": diffs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::{capture, CaptureOptions};
    use std::os::unix::fs::{symlink, PermissionsExt};
    use std::path::Path;

    fn cap(p: &Path) -> Capture {
        capture(p, &CaptureOptions::default()).unwrap()
    }

    fn lines(a: &Capture, b: &Capture) -> Vec<String> {
        diff(a, b).iter().map(|d| d.to_string()).collect()
    }

    /// Builds the same tree twice, changes one copy, and checks every line of the diff.
    #[test]
    fn exact_lines_for_a_constructed_change_set() {
        let t = tempfile::tempdir().unwrap();
        let build = |r: &Path| {
            std::fs::create_dir_all(r.join("d/sub")).unwrap();
            std::fs::write(r.join("d/sub/x"), b"x").unwrap();
            std::fs::write(r.join("d/y"), b"y").unwrap();
            std::fs::write(r.join("same-size"), b"aaaa").unwrap();
            std::fs::write(r.join("grow"), b"1").unwrap();
            std::fs::write(r.join("perm"), b"p").unwrap();
            std::fs::set_permissions(r.join("perm"), std::fs::Permissions::from_mode(0o644))
                .unwrap();
            std::fs::write(r.join("linked"), b"l").unwrap();
            std::fs::write(r.join("to-dir"), b"f").unwrap();
            symlink("same-size", r.join("sym")).unwrap();
            std::fs::create_dir(r.join("lost+found")).unwrap();
            std::fs::write(r.join("untouched"), b"u").unwrap();
        };
        let (ra, rb) = (t.path().join("a"), t.path().join("b"));
        for r in [&ra, &rb] {
            std::fs::create_dir(r).unwrap();
            build(r);
        }
        let a = cap(&ra);
        assert!(diff(&a, &cap(&rb)).is_empty(), "two equal trees are equal");

        std::fs::remove_dir_all(rb.join("d")).unwrap();
        std::fs::write(rb.join("same-size"), b"aaab").unwrap();
        std::fs::write(rb.join("grow"), b"12").unwrap();
        std::fs::set_permissions(rb.join("perm"), std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::hard_link(rb.join("linked"), rb.join("new-link")).unwrap();
        std::fs::remove_file(rb.join("to-dir")).unwrap();
        std::fs::create_dir(rb.join("to-dir")).unwrap();
        std::fs::remove_file(rb.join("sym")).unwrap();
        symlink("grow", rb.join("sym")).unwrap();
        // Only in lost+found, which is never looked at.
        std::fs::write(rb.join("lost+found/#1234"), b"junk").unwrap();
        // Same bytes rewritten later: timestamps differ, the capture does not.
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(rb.join("untouched"), b"u").unwrap();
        let b = cap(&rb);

        let h = |s: &[u8]| blake3::hash(s).to_hex().to_string();
        let (ha, hb) = (h(b"aaaa"), h(b"aaab"));
        assert_eq!(
            lines(&a, &b),
            [
                "missing  d  (dir, 3 entries beneath)".to_string(),
                "size     grow  1 → 2".into(),
                "nlink    linked  1 → 2".into(),
                "extra    new-link  (file)".into(),
                "mode     perm  0644 → 0600".into(),
                format!("content  same-size  {}… → {}…", &ha[..16], &hb[..16]),
                "target   sym  same-size → grow".into(),
                "type     to-dir  file → dir".into(),
            ]
        );
        // The other way round: extra and missing swap, values swap.
        assert_eq!(
            lines(&b, &a)[..2],
            [
                "extra    d  (dir, 3 entries beneath)".to_string(),
                "size     grow  2 → 1".into(),
            ]
        );
        let json = to_json("a", "b", &diff(&a, &b));
        assert_eq!(json["same"], false);
        assert_eq!(
            json["differences"][0],
            serde_json::json!({"path": "d", "change": "missing", "kind": "dir", "beneath": 3})
        );
        assert_eq!(
            json["differences"][4],
            serde_json::json!({"path": "perm", "change": "mode", "a": "0644", "b": "0600"})
        );
    }

    #[test]
    fn root_mode_and_owner_and_quoting() {
        let e = |path: &str, mode, uid| Entry {
            path: path.into(),
            path_hex: None,
            kind: EntryKind::Dir,
            size: 4096,
            mode,
            nlink: 2,
            uid,
            gid: 0,
            target: None,
            target_hex: None,
            hash: None,
        };
        let a = Capture::new(
            "a".into(),
            vec![],
            vec![e(".", 0o755, 0), e("my dir", 0o755, 0)],
        );
        let mut b_entries = vec![e(".", 0o700, 0), e("my dir", 0o755, 1000)];
        b_entries[1].size = 8192; // directory sizes are not compared
        let b = Capture::new("b".into(), vec![], b_entries);
        assert_eq!(
            lines(&a, &b),
            ["mode     .  0755 → 0700", "uid      \"my dir\"  0 → 1000"]
        );
    }
}
