//! Crash-state exploration: which issued operations are not yet durable at each crash point,
//! the systematic states (prefix, lost, cut, torn), seeded random ones, their trees, and the
//! operations a failing state blames.

use super::ops::{Op, OpKind};
use super::rng::Rng;
use super::tree::Tree;
use std::collections::HashSet;

/// Block size for tearing writes at block boundaries.
pub const BLOCK: u64 = 4096;

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

/// A persistence model a crash state can happen under (docs/crash.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub enum Model {
    /// What POSIX promises: nothing is durable without fsync, a write may persist in part at
    /// any byte or with its tail reading as zeros, a rename may persist before the data of
    /// the file it renames.
    #[serde(rename = "strict")]
    Strict,
    /// ext4 `data=ordered` with its default `auto_da_alloc`: whole 4096-byte blocks, a file's
    /// size only grows with the data behind it (no zero tails), and a rename that replaces a
    /// file persists the renamed file's earlier data with it.
    #[serde(rename = "ext4-ordered")]
    Ext4,
}

impl Model {
    pub fn as_str(self) -> &'static str {
        match self {
            Model::Strict => "strict",
            Model::Ext4 => "ext4-ordered",
        }
    }
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
        let mut written: HashSet<usize> = HashSet::new();
        let mut dirs: HashSet<&str> = HashSet::new();
        let mut ns_forced: Option<usize> = None;
        let mut data = Vec::new();
        let mut ns = Vec::new();
        for i in (0..k).rev() {
            let op = &self.ops[i].kind;
            match op {
                OpKind::SyncAll => all = true,
                OpKind::SyncFile { ino, .. } => {
                    inos.insert(*ino);
                }
                OpKind::SyncWrite { op, .. } => {
                    written.insert(*op);
                }
                OpKind::SyncDir { path, .. } => {
                    dirs.insert(path.as_str());
                }
                _ if op.is_data() => {
                    let forced =
                        all || written.contains(&i) || op.ino().is_some_and(|n| inos.contains(&n));
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
        self.random_at(k, rng)
    }

    /// A seeded random crash state with operations `0..k` issued (any `k`, not only a crash
    /// point: a cut of a cluster's run falls anywhere in a node's operations), drawn as in
    /// [`Explorer::random`].
    pub fn random_at(&self, k: usize, rng: &mut Rng) -> CrashState {
        let k = k.min(self.ops.len());
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

    /// The crash state with operations `0..k` issued in which nothing persisted that did not
    /// have to (a power loss with nothing of the page cache written back): every data
    /// operation not durable at `k` lost, every namespace operation not durable cut. Under
    /// [`Model::Ext4`], what ext4 `data=ordered` must have persisted is kept: the names issued
    /// before its last journal commit, and data written before a rename that replaces a file
    /// with it (`auto_da_alloc`).
    pub fn durable_only(&self, k: usize, model: Model) -> CrashState {
        let k = k.min(self.ops.len());
        let w = self.window(k);
        let mut s = CrashState {
            crash_at: k,
            kind: Kind::Random,
            lost: w.data,
            ns_cut: w.ns.first().copied(),
            torn: None,
        };
        if model == Model::Ext4 {
            let commit = (0..k).rev().find(|&i| {
                matches!(
                    self.ops[i].kind,
                    OpKind::SyncDir { commits: true, .. }
                        | OpKind::SyncFile { commits: true, .. }
                        | OpKind::SyncWrite { commits: true, .. }
                )
            });
            if let Some(c) = commit {
                s.ns_cut = w.ns.iter().copied().find(|&i| i > c);
            }
            let cut = s.ns_cut;
            s.lost.retain(|&d| {
                let ino = self.ops[d].kind.ino();
                !(d + 1..k).any(|i| match &self.ops[i].kind {
                    OpKind::Rename {
                        ino: Some(x),
                        replaces: true,
                        ..
                    } => Some(*x) == ino && cut.is_none_or(|c| i < c),
                    _ => false,
                })
            });
        }
        s
    }

    /// The models under which state `s` can happen: always strict (every state generated is
    /// one POSIX allows), and ext4 `data=ordered` unless the state needs what ext4 does not
    /// do — a tear inside a block or with a zero tail, or data lost or torn while a later
    /// rename replacing a file with it persisted (`auto_da_alloc` writes that data first).
    pub fn models(&self, s: &CrashState) -> Vec<Model> {
        let mut v = vec![Model::Strict];
        if self.ext4_possible(s) {
            v.push(Model::Ext4);
        }
        v
    }

    fn ext4_possible(&self, s: &CrashState) -> bool {
        // A journal commit after the cut would have persisted the lost namespace operations.
        if let Some(c) = s.ns_cut {
            let committed = self.ops[c + 1..s.crash_at].iter().any(|o| {
                matches!(
                    o.kind,
                    OpKind::SyncDir { commits: true, .. }
                        | OpKind::SyncFile { commits: true, .. }
                        | OpKind::SyncWrite { commits: true, .. }
                )
            });
            if committed {
                return false;
            }
        }
        if let Some((w, cut)) = s.torn {
            match (cut, &self.ops[w].kind) {
                (Cut::ZeroTail(_), _) => return false,
                (Cut::Prefix(n), OpKind::Write { off, .. }) if (off + n) % BLOCK != 0 => {
                    return false
                }
                _ => {}
            }
        }
        let damaged: Vec<usize> = s
            .lost
            .iter()
            .copied()
            .chain(s.torn.map(|(w, _)| w))
            .collect();
        (0..s.crash_at).all(|i| match &self.ops[i].kind {
            OpKind::Rename {
                ino: Some(x),
                replaces: true,
                ..
            } if s.ns_cut.is_none_or(|c| i < c) => !damaged
                .iter()
                .any(|&d| d < i && self.ops[d].kind.ino() == Some(*x)),
            _ => true,
        })
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
                let relevant = matches!(
                    op,
                    OpKind::Rename { .. } | OpKind::Link { .. } | OpKind::Write { .. }
                ) && op.ino().is_some_and(|n| inos.contains(&n));
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
