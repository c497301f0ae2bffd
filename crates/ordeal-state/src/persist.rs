//! Crash states: what a data directory may hold after a power loss, given the file calls made
//! in it since a base copy. The persistence model is documented in docs/crash.md; in
//! short:
//!
//! - Calls become **operations** ([`build`]): namespace operations (create, mkdir, rename,
//!   exchange, link, symlink, unlink, rmdir) and data operations (write, truncate, fallocate)
//!   on inodes; barriers (fsync/fdatasync of a file or a directory, sync/syncfs, and the return
//!   of a write through an `O_SYNC`/`O_DSYNC` descriptor) persist earlier operations; close,
//!   reads and `sync_file_range` guarantee nothing; an `msync` writes back what the mapped
//!   range held (with `MS_SYNC`, durably). Calls the model cannot follow are listed
//!   ([`Unmodelled`]), never guessed.
//! - A data operation on a file is durable once a later fsync/fdatasync of that file (or a
//!   sync) has returned. A namespace operation is durable once a later fsync of its parent
//!   directory (either parent for a rename) or a sync has returned. fsync of a file does not
//!   persist its name under strict POSIX.
//! - Namespace operations persist in program order (the journal is a prefix): if one is
//!   durable, so is every earlier one. Data operations that are not durable may each be lost,
//!   independently of each other and of namespace operations (so a rename can reach the disk
//!   before the data of the file it names).
//! - A write that is not durable may also be torn: only a prefix persists, cut at a 4096-byte
//!   block boundary of the file or at a byte boundary, or its tail reads as zeros.
//! - States are generated under strict POSIX; each is tagged with the [`Model`]s it can happen
//!   under ([`Explorer::models`]): ext4 `data=ordered` rules out byte tears and zero tails,
//!   data lost behind a rename replacing a file (`auto_da_alloc`), and names lost behind an
//!   fsync that commits the journal.
//!
//! [`Explorer`] enumerates crash states deterministically: for each crash point (before every
//! barrier and at the end of the calls), the state with everything issued persisted (the
//! prefix), then every single un-synced data operation lost, every cut of the un-synced
//! namespace operations, every tear of an un-synced write; then seeded random combinations.
//! Identical trees are recognised by hash, so each distinct state is checked once;
//! [`Tree::first_difference`] compares a state with a real directory (the self-check).

mod explore;
#[cfg(test)]
mod model_tests;
mod ops;
mod rng;
mod tree;

pub use explore::{CrashState, Cut, Explorer, Kind, Model, Role, BLOCK};
pub use ops::{build, build_ops, Built, Call, Op, OpKind, Unmodelled};
pub use rng::Rng;
pub use tree::{copy_tree, CloneSource, Tree};

#[cfg(test)]
mod tests {
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
    fn durable_only_keeps_what_was_synced_and_nothing_else() {
        // Without fsyncs nothing is durable: the power loss leaves the base.
        let (base, ops, n) = states(false);
        let ex = Explorer::new(&base, &ops, n);
        for model in [Model::Strict, Model::Ext4] {
            let s = ex.durable_only(ops.len(), model);
            assert_eq!((s.lost.clone(), s.ns_cut), (vec![1], Some(0)));
            assert_eq!(ex.tree(&s).hash(), base.hash(), "{model:?}");
        }
        // Before the rename, the fsynced temp file's data is durable, its name not.
        let (base, ops, n) = states(true);
        let ex = Explorer::new(&base, &ops, n);
        let s = ex.durable_only(3, Model::Strict);
        assert_eq!((s.lost.clone(), s.ns_cut), (vec![], Some(0)));
        // On ext4 the fsync of the new file commits the journal: its name persisted with it.
        let s = ex.durable_only(3, Model::Ext4);
        assert_eq!((s.lost.clone(), s.ns_cut), (vec![], None));
        assert_eq!(ex.tree(&s).file("state.tmp"), Some(&b"new!\n"[..]));
        // After the directory fsync everything is durable.
        let s = ex.durable_only(ops.len(), Model::Strict);
        assert_eq!(ex.tree(&s).file("state"), Some(&b"new!\n"[..]));
        // random_at draws as random() does, at the instant given.
        let (mut a, mut b) = (Rng::new(5), Rng::new(5));
        let k = ex.points()[a.below(ex.points().len() as u64) as usize];
        assert_eq!(ex.random_at(k, &mut a), ex.random(&mut b));
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
    fn every_state_materializes_as_in_memory_and_never_touches_the_base() {
        // A base on disk with a file large enough to be cloned (reflinked where the file
        // system can, written otherwise: either way the same bytes, and a copy of its own).
        let d = tempfile::tempdir().unwrap();
        let base_dir = d.path().join("base");
        std::fs::create_dir(&base_dir).unwrap();
        let big: Vec<u8> = (0..CloneSource::MIN * 2).map(|i| (i % 251) as u8).collect();
        std::fs::write(base_dir.join("big"), &big).unwrap();
        std::fs::write(base_dir.join("state"), b"old\n").unwrap();
        let base = Tree::load(&base_dir).unwrap();
        let (ops, n) = build_ops(&base, &save(false, b"new!\n")).unwrap();
        let ex = Explorer::new(&base, &ops, n);
        let source = CloneSource::new(&base, &base_dir);
        let all = ex.systematic();
        assert!(all.len() > 5, "{all:?}");
        for (i, s) in all.iter().enumerate() {
            let t = ex.tree(s);
            let at = d.path().join(format!("s{i}"));
            t.materialize_with(&at, Some(&source)).unwrap();
            let back = Tree::load(&at).unwrap();
            assert_eq!(t.first_difference(&back), None, "{s:?}");
            assert_eq!(back.hash(), t.hash(), "{s:?}");
            // A recovery writing into its state changes its own copy only.
            std::fs::write(at.join("big"), b"overwritten").unwrap();
        }
        assert_eq!(std::fs::read(base_dir.join("big")).unwrap(), big);
        assert_eq!(std::fs::read(base_dir.join("state")).unwrap(), b"old\n");
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
