//! One finding per root cause (docs/crash.md#vulnerabilities): a failing crash state is
//! filed under the missing ordering or sync that explains it ("data written to X not
//! persisted before the rename that publishes it as Y", "the directory entry of X not synced
//! after creating it"), with variable parts of file names (digits, random temp suffixes,
//! hashes) replaced by `*`, so a save repeated over many temp files is one finding.

use super::{OpRef, Vulnerability};
use ordeal_state::persist::{CrashState, Kind, Model, Op, OpKind, Role};
use std::path::Path;

/// The root causes a failing state shows: one per lost or torn data operation (a random
/// state may lose several), then the first namespace operation lost; when nothing was lost,
/// the update that was cut short.
pub(super) fn causes(ops: &[Op], s: &CrashState) -> Vec<String> {
    let mut out = Vec::new();
    let mut lost = s.lost.clone();
    lost.sort_unstable();
    let blamed = lost
        .iter()
        .map(|&i| (Role::Lost, i))
        .chain(s.torn.map(|(i, _)| (Role::Torn, i)))
        .chain(s.ns_cut.map(|i| (Role::Lost, i)));
    for (role, i) in blamed {
        let cause = lost_or_torn(ops, s, role, i);
        if !out.contains(&cause) {
            out.push(cause);
        }
    }
    if out.is_empty() {
        out.push(match s.crash_at.checked_sub(1) {
            Some(i) => format!(
                "the program's own update is not atomic: a crash right after `{}` leaves a state it does not recover from",
                pattern_of(&ops[i])
            ),
            None => "the data directory as it was before anything ran does not recover".into(),
        });
    }
    out
}

/// Whether operation `j` (issued before the crash) persisted in state `s`.
fn persisted(ops: &[Op], s: &CrashState, j: usize) -> bool {
    if ops[j].kind.is_data() {
        !s.lost.contains(&j) && s.torn.is_none_or(|(t, _)| t != j)
    } else {
        s.ns_cut.is_none_or(|c| j < c)
    }
}

/// Files a failing (distinct) state under the vulnerability of its root cause; returns the
/// vulnerability's index.
pub(super) fn file(
    vulns: &mut Vec<Vulnerability>,
    ops: &[Op],
    s: &CrashState,
    blame: &[(Role, usize)],
    models: Vec<Model>,
    error: &str,
    dir: &Path,
) -> usize {
    // A random state losing several operations shows several causes: it counts under
    // the first one already known, else it is a new vulnerability of its first.
    let causes = causes(ops, s);
    // A cut loses every name change from one on: the fewer it loses, the more precise.
    let size =
        s.lost.len() + usize::from(s.torn.is_some()) + s.ns_cut.map_or(0, |k| s.crash_at - k);
    let cut_at = (s.kind == Kind::Cut).then_some(s.crash_at);
    let lost = lost_ops(ops, s);
    // A random state losing everything a known example lost is counted under it. Cuts at
    // one crash point that fail all lose the latest failing one's name change: one cause,
    // the latest cut's (the smallest example); the others count under it.
    let known = vulns
        .iter()
        .position(|v| {
            s.kind == Kind::Random
                && !v.example_lost.is_empty()
                && v.example_lost.iter().all(|i| lost.contains(i))
        })
        .or_else(|| {
            vulns.iter().position(|v| {
                causes.contains(&v.cause) || (cut_at.is_some() && v.example_cut_at == cut_at)
            })
        });
    let refs: Vec<OpRef> = blame
        .iter()
        .map(|&(role, i)| OpRef {
            role,
            seq: ops[i].seq,
            call: ops[i].call.clone(),
            op: ops[i].describe(),
        })
        .collect();
    let crash_after_seq = s.crash_at.checked_sub(1).map(|i| ops[i].seq);
    if let Some(i) = known {
        let v = &mut vulns[i];
        v.states += 1;
        add_models(v, &models);
        if size < v.example_size {
            // A smaller state showing the same cause is the better example.
            let _ = std::fs::remove_dir_all(&v.example);
            v.ops = refs;
            v.kind = s.kind;
            v.cut = s.torn.map(|(_, c)| c.to_string());
            v.crash_after_seq = crash_after_seq;
            v.error = error.to_string();
            v.example = dir.to_path_buf();
            v.example_size = size;
            v.example_cut_at = cut_at;
            v.example_lost = lost;
            if cut_at.is_some() {
                v.cause = causes.into_iter().next().unwrap_or_default();
            }
        } else {
            let _ = std::fs::remove_dir_all(dir);
        }
        return i;
    }
    vulns.push(Vulnerability {
        id: vulns.len() + 1,
        cause: causes.into_iter().next().unwrap_or_default(),
        ops: refs,
        kind: s.kind,
        cut: s.torn.map(|(_, c)| c.to_string()),
        crash_after_seq,
        error: error.to_string(),
        states: 1,
        models,
        example: dir.to_path_buf(),
        example_size: size,
        example_cut_at: cut_at,
        example_lost: lost,
    });
    vulns.len() - 1
}

/// The operations state `s` loses or tears: its lost data, its torn write, the names its
/// cut loses.
fn lost_ops(ops: &[Op], s: &CrashState) -> Vec<usize> {
    let cut = s.ns_cut.map_or(0..0, |k| k..s.crash_at);
    let mut lost: Vec<usize> = s
        .lost
        .iter()
        .copied()
        .chain(s.torn.map(|(w, _)| w))
        .chain(cut.filter(|&i| ops[i].kind.is_namespace()))
        .collect();
    lost.sort_unstable();
    lost
}

/// Merges vulnerabilities that came to the same cause (a cut's cause is settled only once its
/// latest failing cut is known): states summed, models joined, the smaller example kept.
pub(super) fn merge_same_causes(vulns: &mut Vec<Vulnerability>) {
    let mut merged: Vec<Vulnerability> = Vec::new();
    for v in vulns.drain(..) {
        match merged.iter_mut().find(|m| m.cause == v.cause) {
            Some(m) => {
                let states = m.states + v.states;
                let models: Vec<Model> = m.models.iter().chain(&v.models).copied().collect();
                let dropped = if v.example_size < m.example_size {
                    std::mem::replace(m, v).example
                } else {
                    v.example
                };
                m.states = states;
                add_models(m, &models);
                let _ = std::fs::remove_dir_all(dropped);
            }
            None => merged.push(v),
        }
    }
    for (i, v) in merged.iter_mut().enumerate() {
        v.id = i + 1;
    }
    *vulns = merged;
}

/// Adds the models a state of `v` happens under (kept in order: strict, ext4-ordered).
pub(super) fn add_models(v: &mut Vulnerability, models: &[Model]) {
    for m in models {
        if !v.models.contains(m) {
            v.models.push(*m);
        }
    }
    v.models.sort();
}

/// The cause of losing (or tearing) operation `i`: what it needed and did not get.
fn lost_or_torn(ops: &[Op], s: &CrashState, role: Role, i: usize) -> String {
    let op = &ops[i];
    let file = normalize(op.path.as_deref().unwrap_or("?"));
    let data = match &op.kind {
        OpKind::Write { .. } => Some(format!("data written to {file}")),
        OpKind::Truncate { .. } => Some(format!("the truncation of {file}")),
        OpKind::Allocate { .. } => Some(format!("the fallocate of {file}")),
        _ => None,
    };
    let Some(data) = data else {
        return unsynced_name(&op.kind);
    };
    let how = if role == Role::Torn {
        "persisted only in part"
    } else {
        "not persisted"
    };
    // The later operations on the same file that did persist: the ordering that was missing.
    let ino = op.kind.ino();
    let later: Vec<&OpKind> = (i + 1..s.crash_at.min(ops.len()))
        .filter(|&j| ops[j].kind.ino() == ino && persisted(ops, s, j))
        .map(|j| &ops[j].kind)
        .collect();
    let publish = later.iter().find_map(|k| match k {
        OpKind::Rename { to, .. } => Some(("rename", to)),
        OpKind::Link { to, .. } => Some(("link", to)),
        _ => None,
    });
    if let Some((verb, to)) = publish {
        format!(
            "{data} {how} before the {verb} that publishes it as {} (no fsync of the file before the {verb})",
            normalize(to)
        )
    } else if later.iter().any(|k| k.is_data()) {
        format!("{data} {how} while a later change to it persisted (no fsync between them)")
    } else if role == Role::Torn {
        format!("{data} {how}: the write is not atomic and was not synced")
    } else {
        format!("{data} {how}: not synced before the crash")
    }
}

/// The cause of a lost namespace operation: its directory was not synced after it.
fn unsynced_name(k: &OpKind) -> String {
    let (what, dir) = match k {
        OpKind::Create { path, .. } => (
            format!("the directory entry of {} created", normalize(path)),
            parent(path),
        ),
        OpKind::Mkdir { path } => (
            format!("the directory entry of {} made by mkdir", normalize(path)),
            parent(path),
        ),
        OpKind::Symlink { path, .. } => (
            format!("the symlink {} created", normalize(path)),
            parent(path),
        ),
        OpKind::Rename { from, to, .. } => (
            format!("the rename {} → {}", normalize(from), normalize(to)),
            parent(to),
        ),
        OpKind::Link { from, to, .. } => (
            format!("the link {} → {}", normalize(from), normalize(to)),
            parent(to),
        ),
        OpKind::Exchange { a, b } => (
            format!("the exchange {} ↔ {}", normalize(a), normalize(b)),
            parent(a),
        ),
        OpKind::Unlink { path } => (format!("the removal of {}", normalize(path)), parent(path)),
        OpKind::Rmdir { path } => (
            format!("the removal of directory {}", normalize(path)),
            parent(path),
        ),
        // Data and barriers are not namespace operations; a cut never blames them.
        _ => return "an operation not persisted".into(),
    };
    format!(
        "{what} not persisted: no fsync of its directory {} after it",
        normalize(dir)
    )
}

fn parent(p: &str) -> &str {
    match p.rsplit_once('/') {
        Some((d, _)) => d,
        None => ".",
    }
}

/// An operation without offsets, lengths or variable name parts: `write state.tmp [0, 5)` →
/// `write state.tmp`, `rename tmp_obj_a8Kx2Q → 3f/9a…` → `rename tmp_obj_* → */*`.
pub(super) fn pattern_of(op: &Op) -> String {
    let d = op.describe();
    let d = match d.find(" [") {
        Some(i) => &d[..i],
        None => &d[..],
    };
    let mut words = d.split(' ');
    let verb = words.next().unwrap_or_default();
    std::iter::once(verb.to_string())
        .chain(words.map(normalize))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A path with the variable parts of each name replaced by `*`: numbers (`rec-17` →
/// `rec-*`, `file3` → `file*`), hex strings such as hashes (`3f`, `9a8b…`) and two-hex-digit
/// fan-out directories (`objects/ce/`), `mkstemp` suffixes (six letters and digits mixing
/// case or holding a digit: `x.a8Kx2Q` → `x.*`; in a name holding `tmp` or `temp`, its last
/// run of six or more letters and digits, whatever they are: `tmp_obj_abcdef` → `tmp_obj_*`).
pub fn normalize(path: &str) -> String {
    let names: Vec<&str> = path.split('/').collect();
    let last = names.len().saturating_sub(1);
    names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            // Fan-out directories of a content-addressed store (git's `objects/ce/`).
            let fan_out = i < last && n.len() == 2 && n.bytes().all(|b| b.is_ascii_hexdigit());
            if fan_out {
                "*".to_string()
            } else {
                normalize_name(n)
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

fn normalize_name(name: &str) -> String {
    // A temporary file's name ends in its random part, whatever letters it drew
    // (`tmp_obj_abcdef`).
    let temp = name.contains("tmp") || name.contains("temp");
    let mut out = String::new();
    let mut token = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            token.push(c);
        } else {
            push_token(&mut out, &token, false);
            token.clear();
            out.push(c);
        }
    }
    push_token(&mut out, &token, temp);
    out
}

/// Appends one run of letters and digits, as a pattern.
fn push_token(out: &mut String, t: &str, temp_suffix: bool) {
    if t.is_empty() {
        return;
    }
    if temp_suffix && t.len() >= 6 && !t.contains("tmp") && !t.contains("temp") {
        out.push('*');
        return;
    }
    let digit = t.bytes().any(|b| b.is_ascii_digit());
    let hex = t.bytes().all(|b| b.is_ascii_hexdigit());
    let upper = t.bytes().any(|b| b.is_ascii_uppercase());
    let lower = t.bytes().any(|b| b.is_ascii_lowercase());
    let random = (hex && digit && t.len() >= 2)
        || (t.len() >= 6 && digit && (upper || lower))
        || (t.len() == 6 && upper && lower);
    if random {
        out.push('*');
        return;
    }
    // Otherwise each run of digits: `file3` → `file*`.
    let mut in_digits = false;
    for c in t.chars() {
        if c.is_ascii_digit() {
            if !in_digits {
                out.push('*');
            }
            in_digits = true;
        } else {
            out.push(c);
            in_digits = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ordeal_state::persist::Cut;
    use std::sync::Arc;

    #[test]
    fn variable_parts_of_names_become_a_star() {
        assert_eq!(normalize("state.tmp"), "state.tmp");
        assert_eq!(normalize("db-journal"), "db-journal");
        assert_eq!(normalize("rec-17"), "rec-*");
        assert_eq!(normalize("rec.tmp.4242"), "rec.tmp.*");
        assert_eq!(normalize("file3.log"), "file*.log");
        // mkstemp: six letters and digits, with a digit or mixed case.
        assert_eq!(normalize("tmp.a8kx2q"), "tmp.*");
        assert_eq!(normalize("tmp_obj_aKxQbZ"), "tmp_obj_*");
        assert_eq!(normalize("tmp_obj_abcdef"), "tmp_obj_*");
        assert_eq!(normalize("state.tmp"), "state.tmp");
        assert_eq!(
            normalize(".git/objects/ce/tmp_obj_qwerty"),
            ".git/objects/*/tmp_obj_*"
        );
        // A two-hex-digit name is a fan-out directory only as a directory.
        assert_eq!(normalize("db"), "db");
        // git objects: a hex directory and a hex name.
        assert_eq!(
            normalize(".git/objects/3f/9a8b7c6d5e4f30201"),
            ".git/objects/*/*"
        );
        assert_eq!(
            normalize("550e8400-e29b-41d4-a716-446655440000.wal"),
            "*-*-*-*-*.wal"
        );
        // Ordinary words stay, whatever their case.
        assert_eq!(normalize("Makefile"), "Makefile");
        assert_eq!(normalize("data.mdb"), "data.mdb");
        assert_eq!(normalize("HEAD"), "HEAD");
        assert_eq!(normalize("index.lock"), "index.lock");
    }

    fn op(seq: u64, path: Option<&str>, kind: OpKind) -> Op {
        Op {
            seq,
            call: match &kind {
                OpKind::Write { .. } => "write",
                OpKind::Rename { .. } => "rename",
                OpKind::Create { .. } => "openat",
                OpKind::Unlink { .. } => "unlink",
                _ => "other",
            }
            .into(),
            path: path.map(str::to_string),
            kind,
        }
    }

    fn write(seq: u64, path: &str, ino: usize) -> Op {
        op(
            seq,
            Some(path),
            OpKind::Write {
                ino,
                off: 0,
                data: Arc::from(&b"hello"[..]),
            },
        )
    }

    fn rename(seq: u64, from: &str, to: &str, ino: usize) -> Op {
        op(
            seq,
            None,
            OpKind::Rename {
                from: from.into(),
                to: to.into(),
                ino: Some(ino),
                replaces: false,
            },
        )
    }

    fn state(
        crash_at: usize,
        lost: &[usize],
        torn: Option<usize>,
        ns_cut: Option<usize>,
    ) -> CrashState {
        CrashState {
            crash_at,
            kind: Kind::Random,
            lost: lost.to_vec(),
            ns_cut,
            torn: torn.map(|t| (t, Cut::Prefix(1))),
        }
    }

    #[test]
    fn saves_through_different_temp_files_have_one_cause() {
        let ops = vec![
            write(1, "rec.a8kx2q", 0),
            rename(2, "rec.a8kx2q", "rec-1", 0),
            write(3, "rec.Zz9k1p", 1),
            rename(4, "rec.Zz9k1p", "rec-2", 1),
        ];
        let first = causes(&ops, &state(4, &[0], None, None));
        let second = causes(&ops, &state(4, &[2], None, None));
        assert_eq!(
            first,
            ["data written to rec.* not persisted before the rename that publishes it as rec-* (no fsync of the file before the rename)"]
        );
        assert_eq!(first, second);
        // Torn is its own cause: the write was not atomic.
        assert_eq!(
            causes(&ops, &state(4, &[], Some(2), None)),
            ["data written to rec.* persisted only in part before the rename that publishes it as rec-* (no fsync of the file before the rename)"]
        );
        // A random state losing both writes shows the same cause once.
        assert_eq!(causes(&ops, &state(4, &[2, 0], None, None)), first);
        // Crashed before the second rename: its write was only not synced.
        assert_eq!(
            causes(&ops, &state(3, &[2], None, None)),
            ["data written to rec.* not persisted: not synced before the crash"]
        );
        // A lost write whose rename persisted, later names cut: the write's cause first.
        assert_eq!(
            causes(&ops, &state(4, &[0], None, Some(3))),
            [
                first[0].as_str(),
                "the rename rec.* → rec-* not persisted: no fsync of its directory . after it"
            ]
        );
    }

    #[test]
    fn lost_names_blame_their_directory_and_prefixes_the_update() {
        let ops = vec![
            op(
                1,
                None,
                OpKind::Create {
                    path: "env/data.mdb".into(),
                    ino: 0,
                },
            ),
            op(
                2,
                None,
                OpKind::Unlink {
                    path: "db-journal".into(),
                },
            ),
            write(3, "state.tmp", 0),
        ];
        assert_eq!(
            causes(&ops, &state(1, &[], None, Some(0))),
            ["the directory entry of env/data.mdb created not persisted: no fsync of its directory env after it"]
        );
        assert_eq!(
            causes(&ops, &state(2, &[], None, Some(1))),
            ["the removal of db-journal not persisted: no fsync of its directory . after it"]
        );
        assert_eq!(
            causes(&ops, &state(3, &[], None, None)),
            ["the program's own update is not atomic: a crash right after `write state.tmp` leaves a state it does not recover from"]
        );
        assert_eq!(
            causes(&ops, &state(0, &[], None, None)),
            ["the data directory as it was before anything ran does not recover"]
        );
    }

    /// write rec.a, rename rec.a → rec-1, write rec.b, rename rec.b → rec-2.
    fn two_saves() -> Vec<Op> {
        vec![
            write(1, "rec.a8kx2q", 0),
            rename(2, "rec.a8kx2q", "rec-1", 0),
            write(3, "rec.Zz9k1p", 1),
            rename(4, "rec.Zz9k1p", "rec-2", 1),
        ]
    }

    /// Files state `s` as failing, its example in a fresh directory under `root`.
    fn file_state(
        vulns: &mut Vec<Vulnerability>,
        ops: &[Op],
        s: &CrashState,
        root: &Path,
        n: usize,
    ) -> usize {
        let dir = root.join(format!("{n:05}"));
        std::fs::create_dir_all(&dir).unwrap();
        file(vulns, ops, s, &[], vec![Model::Strict], "failed", &dir)
    }

    #[test]
    fn failing_states_of_one_cause_are_one_vulnerability_with_the_smallest_example() {
        let root = tempfile::tempdir().unwrap();
        let ops = two_saves();
        let mut vulns = Vec::new();
        let mut lost = |l: &[usize], n| {
            let mut s = state(4, l, None, None);
            s.kind = if l.len() == 1 {
                Kind::Lost
            } else {
                Kind::Random
            };
            file_state(&mut vulns, &ops, &s, root.path(), n)
        };
        assert_eq!(lost(&[0], 1), 0);
        assert_eq!(lost(&[2], 2), 0);
        // Random: it loses what the first example lost.
        assert_eq!(lost(&[0, 2], 3), 0);
        assert_eq!(vulns.len(), 1);
        assert_eq!(vulns[0].states, 3);
        assert_eq!(vulns[0].example, root.path().join("00001"));
        // The other failing states' directories are gone, the example's kept.
        assert!(root.path().join("00001").is_dir());
        assert!(!root.path().join("00002").exists());
        assert!(!root.path().join("00003").exists());
    }

    #[test]
    fn cuts_at_one_crash_point_are_blamed_on_the_latest_failing_one() {
        let root = tempfile::tempdir().unwrap();
        let ops = two_saves();
        let mut vulns = Vec::new();
        let mut cut = |k, n| {
            let mut s = state(4, &[], None, Some(k));
            s.kind = Kind::Cut;
            file_state(&mut vulns, &ops, &s, root.path(), n)
        };
        // Losing both renames, then only the second: the second is the cause.
        cut(1, 1);
        cut(3, 2);
        assert_eq!(vulns.len(), 1);
        assert_eq!(vulns[0].states, 2);
        assert_eq!(
            vulns[0].cause,
            "the rename rec.* → rec-* not persisted: no fsync of its directory . after it"
        );
        assert_eq!(vulns[0].example, root.path().join("00002"));
        assert!(!root.path().join("00001").exists());
    }

    #[test]
    fn vulnerabilities_that_came_to_one_cause_are_merged() {
        let root = tempfile::tempdir().unwrap();
        let ops = two_saves();
        let mut vulns = Vec::new();
        // A random state losing both writes (no known cause yet), a cut, a lost write.
        let mut s = state(4, &[0, 2], None, None);
        s.kind = Kind::Random;
        file_state(&mut vulns, &ops, &s, root.path(), 1);
        let mut s = state(4, &[], None, Some(3));
        s.kind = Kind::Cut;
        file_state(&mut vulns, &ops, &s, root.path(), 2);
        let mut s = state(1, &[0], None, None);
        s.kind = Kind::Lost;
        file_state(&mut vulns, &ops, &s, root.path(), 3);
        assert_eq!(vulns.len(), 3);
        // The last one's cause settled on the first's (as a cut's can), under ext4 too.
        vulns[2].cause = vulns[0].cause.clone();
        vulns[2].models = vec![Model::Ext4];
        merge_same_causes(&mut vulns);
        assert_eq!(
            vulns.iter().map(|v| (v.id, v.states)).collect::<Vec<_>>(),
            [(1, 2), (2, 1)]
        );
        assert_eq!(vulns[0].models, [Model::Strict, Model::Ext4]);
        // The smaller example (one write lost, not two) is kept.
        assert_eq!(vulns[0].example, root.path().join("00003"));
        assert_eq!(vulns[0].kind, Kind::Lost);
        assert!(!root.path().join("00001").exists());
        assert!(root.path().join("00002").is_dir());
    }
}
