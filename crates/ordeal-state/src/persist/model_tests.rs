//! Tests of the persistence paths beyond the plain write/fsync/rename save: synchronous
//! descriptors, links, exchanges, fallocate, the two models, the self-check's comparison.

use super::tree::Node;
use super::*;
use std::sync::Arc;

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

fn open(seq: u64, path: &str, flags: &str, fd: i64) -> Call {
    Call {
        flags: Some(flags.into()),
        ret: fd,
        ..call(seq, "openat", path)
    }
}

fn write(seq: u64, path: &str, fd: i32, off: u64, data: &[u8]) -> Call {
    Call {
        fd: Some(fd),
        pos: Some(off),
        data: Some(Arc::from(data)),
        ret: data.len() as i64,
        ..call(seq, "write", path)
    }
}

fn base_with(files: &[(&str, &[u8])]) -> Tree {
    let mut base = Tree::default();
    base.names.insert(String::new(), Node::Dir);
    for (p, c) in files {
        let ino = base.new_file();
        base.files[ino] = Arc::new(c.to_vec());
        base.names.insert(p.to_string(), Node::File(ino));
    }
    base
}

/// Every systematic state's content of `path` (None: no such file).
fn contents(base: &Tree, calls: &[Call], path: &str) -> Vec<Option<Vec<u8>>> {
    let b = build(base, calls);
    assert!(b.unmodelled.is_empty(), "{:?}", b.unmodelled);
    let ex = Explorer::new(base, &b.ops, b.inodes);
    let mut rng = Rng::new(1);
    let mut all = ex.systematic();
    all.extend((0..100).map(|_| ex.random(&mut rng)));
    let mut v: Vec<Option<Vec<u8>>> = all
        .iter()
        .map(|s| ex.tree(s).file(path).map(|b| b.to_vec()))
        .collect();
    v.sort();
    v.dedup();
    v
}

#[test]
fn a_write_through_an_o_dsync_descriptor_is_durable_once_it_returned() {
    let base = base_with(&[("log", b"")]);
    let calls = [
        open(1, "log", "O_WRONLY|O_APPEND|O_DSYNC", 3),
        write(2, "log", 3, 0, b"one\n"),
        write(3, "log", 3, 4, b"two\n"),
    ];
    let b = build(&base, &calls);
    let d: Vec<String> = b.ops.iter().map(|o| o.describe()).collect();
    assert_eq!(
        d,
        [
            "write log [0, 4)",
            "write log returned (synchronous fd)",
            "write log [4, 8)",
            "write log returned (synchronous fd)"
        ]
    );
    let ex = Explorer::new(&base, &b.ops, b.inodes);
    // At the end nothing can be lost; before the second write returned, only it can.
    let end = ex
        .systematic()
        .into_iter()
        .filter(|s| s.crash_at == 4 && s.kind != Kind::Prefix)
        .count();
    assert_eq!(end, 0);
    let mut got = contents(&base, &calls, "log");
    got.retain(|c| c.as_deref().is_some_and(|c| c.starts_with(b"one\n")));
    assert!(got.contains(&Some(b"one\ntwo\n".to_vec())));
    assert!(got.contains(&Some(b"one\n".to_vec())));
    // Without O_DSYNC the first write can be lost too.
    let plain = [
        open(1, "log", "O_WRONLY|O_APPEND", 3),
        write(2, "log", 3, 0, b"one\n"),
        write(3, "log", 3, 4, b"two\n"),
    ];
    assert!(contents(&base, &plain, "log").contains(&Some(b"\0\0\0\0two\n".to_vec())));
    // With it, once the second write started the first is whole.
    let dsync = contents(&base, &calls, "log");
    assert!(!dsync.iter().any(|c| c
        .as_deref()
        .is_some_and(|c| c.len() > 4 && &c[..4] != b"one\n")));
}

/// tmp written, [fsync], link(tmp, final), unlink(tmp), dir fsync.
fn publish_by_link(fsync: bool) -> Vec<Call> {
    let mut v = vec![
        open(1, "msg.tmp", "O_WRONLY|O_CREAT|O_EXCL", 3),
        write(2, "msg.tmp", 3, 0, b"hello\n"),
    ];
    if fsync {
        v.push(Call {
            fd: Some(3),
            ..call(3, "fsync", "msg.tmp")
        });
    }
    v.push(Call {
        fd: Some(3),
        ..call(4, "close", "msg.tmp")
    });
    v.push(Call {
        path2: Some("msg".into()),
        ..call(5, "link", "msg.tmp")
    });
    v.push(call(6, "unlink", "msg.tmp"));
    v.push(open(7, "", "O_RDONLY|O_DIRECTORY", 4));
    v.push(Call {
        fd: Some(4),
        ..call(8, "fsync", "")
    });
    v
}

#[test]
fn a_hard_link_publishes_the_file_and_its_data_only_after_fsync() {
    let base = base_with(&[]);
    let b = build(&base, &publish_by_link(true));
    let d: Vec<String> = b.ops.iter().map(|o| o.describe()).collect();
    assert_eq!(
        d,
        [
            "create msg.tmp",
            "write msg.tmp [0, 6)",
            "fsync msg.tmp",
            "link msg.tmp → msg",
            "unlink msg.tmp",
            "fsync dir ."
        ]
    );
    // The final tree: msg alone, with the data.
    let ex = Explorer::new(&base, &b.ops, b.inodes);
    let last = ex.tree(&ex.systematic()[ex.points().len() - 1]);
    assert_eq!(last.paths().collect::<Vec<_>>(), ["", "msg"]);
    assert_eq!(last.file("msg"), Some(&b"hello\n"[..]));
    assert_eq!(
        contents(&base, &publish_by_link(true), "msg"),
        [None, Some(b"hello\n".to_vec())]
    );
    // Without the fsync, msg can exist empty.
    assert!(contents(&base, &publish_by_link(false), "msg").contains(&Some(vec![])));
}

#[test]
fn exchange_symlink_and_fallocate_change_the_tree_as_linux_does() {
    let base = base_with(&[("a", b"A"), ("b", b"B")]);
    let calls = [
        Call {
            path2: Some("b".into()),
            flags: Some("RENAME_EXCHANGE".into()),
            ..call(1, "renameat2", "a")
        },
        Call {
            path2: Some("target".into()),
            ..call(2, "symlink", "dir/link")
        },
        Call {
            path2: Some("/etc/hosts".into()),
            ..call(3, "symlink", "abs")
        },
        open(4, "a", "O_RDWR", 3),
        Call {
            fd: Some(3),
            pos: Some(0),
            len: Some(4),
            ..call(5, "fallocate", "a")
        },
        Call {
            fd: Some(3),
            pos: Some(1),
            len: Some(2),
            flags: Some("FALLOC_FL_KEEP_SIZE|FALLOC_FL_PUNCH_HOLE".into()),
            ..call(6, "fallocate", "a")
        },
        Call {
            fd: Some(3),
            pos: Some(0),
            len: Some(100),
            flags: Some("FALLOC_FL_KEEP_SIZE".into()),
            ..call(7, "fallocate", "a")
        },
    ];
    let b = build(&base, &calls);
    let d: Vec<String> = b.ops.iter().map(|o| o.describe()).collect();
    assert_eq!(
        d,
        [
            "exchange a ↔ b",
            "symlink dir/link → target",
            "symlink abs → /etc/hosts",
            "fallocate a [0, 4)",
            "fallocate a [1, 3) zeroed keep size"
        ]
    );
    let ex = Explorer::new(&base, &b.ops, b.inodes);
    let t = ex.tree(&ex.systematic()[ex.points().len() - 1]);
    assert_eq!(t.file("a"), Some(&b"B\0\0\0"[..]));
    assert_eq!(t.file("b"), Some(&b"A"[..]));
    assert_eq!(
        t.names.get("dir/link"),
        Some(&Node::Symlink(b"target".to_vec()))
    );
    // A collapse moves contents: not followed, and build_ops refuses it.
    let collapse = [
        open(1, "a", "O_RDWR", 3),
        Call {
            fd: Some(3),
            pos: Some(0),
            len: Some(1),
            flags: Some("FALLOC_FL_COLLAPSE_RANGE".into()),
            ..call(9, "fallocate", "a")
        },
    ];
    let b = build(&base, &collapse);
    assert_eq!(
        b.unmodelled,
        [Unmodelled {
            seq: 9,
            call: "fallocate".into(),
            why: "it moves the file's contents (FALLOC_FL_COLLAPSE_RANGE)".into()
        }]
    );
    assert_eq!(
        build_ops(&base, &collapse).unwrap_err().to_string(),
        "unmodelled call: fallocate (seq 9): it moves the file's contents (FALLOC_FL_COLLAPSE_RANGE)"
    );
}

#[test]
fn ext4_keeps_a_replacing_renames_data_and_whole_blocks_strict_does_not() {
    // write state.tmp (no fsync), rename over an existing state: lost under strict only.
    let base = base_with(&[("state", b"old")]);
    let calls = [
        open(1, "state.tmp", "O_WRONLY|O_CREAT|O_TRUNC", 3),
        write(2, "state.tmp", 3, 0, &[7u8; 5000]),
        Call {
            path2: Some("state".into()),
            ..call(3, "rename", "state.tmp")
        },
    ];
    let b = build(&base, &calls);
    let ex = Explorer::new(&base, &b.ops, b.inodes);
    let all = ex.systematic();
    let lost = all
        .iter()
        .find(|s| s.kind == Kind::Lost && s.crash_at == 3)
        .unwrap();
    assert_eq!(ex.models(lost), [Model::Strict]);
    let torn: Vec<(Cut, Vec<Model>)> = all
        .iter()
        .filter(|s| s.kind == Kind::Torn)
        .map(|s| (s.torn.unwrap().1, ex.models(s)))
        .collect();
    assert!(torn.iter().all(|(_, m)| m == &[Model::Strict]), "{torn:?}");
    // The namespace cut (rename lost, old state kept) holds under both.
    let cut = all.iter().find(|s| s.kind == Kind::Cut).unwrap();
    assert_eq!(ex.models(cut), [Model::Strict, Model::Ext4]);
    // Renaming to a new name is not rescued by ext4: the lost data holds under both.
    let fresh = base_with(&[]);
    let b = build(&fresh, &calls);
    let ex = Explorer::new(&fresh, &b.ops, b.inodes);
    let all = ex.systematic();
    let lost = all.iter().find(|s| s.kind == Kind::Lost).unwrap();
    assert_eq!(ex.models(lost), [Model::Strict, Model::Ext4]);
    let blocks: Vec<Cut> = all
        .iter()
        .filter(|s| s.kind == Kind::Torn && ex.models(s).contains(&Model::Ext4))
        .map(|s| s.torn.unwrap().1)
        .collect();
    assert_eq!(blocks, [Cut::Prefix(4096)]);
}

#[test]
fn the_first_difference_names_the_path_and_what_differs() {
    let a = base_with(&[("x", b"1"), ("y", b"2")]);
    assert_eq!(a.first_difference(&a.clone()), None);
    let b = base_with(&[("x", b"1"), ("y", b"22")]);
    assert_eq!(
        a.first_difference(&b).as_deref(),
        Some("y: contents differ (1 bytes in the model, 2 in the real directory)")
    );
    let c = base_with(&[("x", b"1"), ("w", b"2"), ("y", b"2")]);
    assert_eq!(
        a.first_difference(&c).as_deref(),
        Some("w: only in the real directory")
    );
    assert_eq!(
        c.first_difference(&a).as_deref(),
        Some("w: only in the model")
    );
}

#[test]
fn on_ext4_an_fsync_that_commits_the_journal_persists_earlier_names() {
    // create + write + fsync, no directory fsync: strict may lose the name, ext4 cannot
    // (the fsync commits the journal holding the create).
    let base = base_with(&[("data", b"0123")]);
    let calls = [
        open(1, "new", "O_WRONLY|O_CREAT", 3),
        write(2, "new", 3, 0, b"x"),
        Call {
            fd: Some(3),
            ..call(3, "fsync", "new")
        },
    ];
    let b = build(&base, &calls);
    let ex = Explorer::new(&base, &b.ops, b.inodes);
    let cut = ex
        .systematic()
        .into_iter()
        .find(|s| s.kind == Kind::Cut && s.crash_at == 3)
        .unwrap();
    assert_eq!(ex.tree(&cut).file("new"), None);
    assert_eq!(ex.models(&cut), [Model::Strict]);
    // fdatasync of an overwrite in place has nothing for the journal: the name stays at risk.
    let calls = [
        open(1, "new", "O_WRONLY|O_CREAT", 3),
        open(2, "data", "O_WRONLY", 4),
        write(3, "data", 4, 0, b"a"),
        Call {
            fd: Some(4),
            ..call(4, "fdatasync", "data")
        },
    ];
    let b = build(&base, &calls);
    assert_eq!(
        b.ops[2].kind,
        OpKind::SyncFile {
            ino: 0,
            commits: false
        }
    );
    let ex = Explorer::new(&base, &b.ops, b.inodes);
    let cut = ex
        .systematic()
        .into_iter()
        .find(|s| s.kind == Kind::Cut && s.crash_at == 3)
        .unwrap();
    assert_eq!(ex.models(&cut), [Model::Strict, Model::Ext4]);
    // An fsync of a directory whose entries did not change commits nothing either; one of
    // the directory just changed does.
    let calls = [
        open(1, "", "O_RDONLY|O_DIRECTORY", 5),
        Call {
            fd: Some(5),
            ..call(2, "fsync", "")
        },
        open(3, "new", "O_WRONLY|O_CREAT", 3),
        Call {
            fd: Some(5),
            ..call(4, "fsync", "")
        },
    ];
    let b = build(&base, &calls);
    let commits: Vec<bool> = b
        .ops
        .iter()
        .filter_map(|o| match o.kind {
            OpKind::SyncDir { commits, .. } => Some(commits),
            _ => None,
        })
        .collect();
    assert_eq!(commits, [false, true]);
}

#[test]
fn a_copy_file_range_is_a_write_of_the_copied_bytes_durable_only_after_fsync() {
    // The source is read, not changed; the destination gets the bytes at `pos`.
    let base = base_with(&[("src", b"abcdef"), ("dst", b"")]);
    let copy = |seq| Call {
        fd: Some(4),
        pos: Some(2),
        data: Some(Arc::from(&b"cde"[..])),
        ret: 3,
        ..call(seq, "copy_file_range", "dst")
    };
    let calls = [open(1, "dst", "O_WRONLY", 4), copy(2)];
    let b = build(&base, &calls);
    let d: Vec<String> = b.ops.iter().map(|o| o.describe()).collect();
    assert_eq!(d, ["write dst [2, 5)"]);
    // Not synced: lost, or torn (a byte, half, all but one, zeros after its first half).
    let got = contents(&base, &calls, "dst");
    assert!(got.contains(&Some(b"\0\0cde".to_vec())), "{got:?}");
    assert!(got.contains(&Some(Vec::new())), "{got:?}");
    // Synced: whole in every state that crashes after the fsync.
    let synced = [
        open(1, "dst", "O_WRONLY", 4),
        copy(2),
        Call {
            fd: Some(4),
            ..call(3, "fsync", "dst")
        },
    ];
    let b = build(&base, &synced);
    let ex = Explorer::new(&base, &b.ops, b.inodes);
    for s in ex.systematic().iter().filter(|s| s.crash_at == b.ops.len()) {
        assert_eq!(ex.tree(s).file("dst"), Some(&b"\0\0cde"[..]), "{s:?}");
    }
    assert_eq!(
        ex.tree(&ex.systematic()[0]).file("src"),
        Some(&b"abcdef"[..])
    );
}
