//! trace.json's flow arrows, found in `seq` order and written in edge order: sorted in runs of
//! bounded size, spilled to an unnamed temporary file, and merged back.
//!
//! Invariant: each run in the file is sorted by key; records are fixed-size, 72 bytes.

use super::EdgeKey;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Records sorted in memory before a run is spilled: 9 MiB.
const RUN: usize = 1 << 17;
/// Records read at a time from each run while merging: 72 KiB.
const READ: usize = 1 << 10;
const SIZE: usize = 72;

/// One end of a flow: a point inside its slice, its node (an id) and tid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct End {
    pub(crate) ts: u64,
    pub(crate) node: u32,
    pub(crate) tid: i32,
}

/// A flow arrow: a message (its bytes) or connect (`None`) edge between two slices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Flow {
    pub(crate) key: EdgeKey,
    pub(crate) bytes: Option<u64>,
    pub(crate) from: End,
    pub(crate) to: End,
    /// `seq` of the source event: what a decoded message said is found by it.
    pub(crate) from_seq: u64,
}

impl Flow {
    fn encode(&self, out: &mut [u8]) {
        let end = |e: End| ((e.node as u64) << 32) | e.tid as u32 as u64;
        let words = [
            ((self.key.group as u64) << 8) | self.key.sub as u64,
            self.key.a,
            self.key.b,
            self.bytes.unwrap_or(u64::MAX),
            self.from.ts,
            end(self.from),
            self.to.ts,
            end(self.to),
            self.from_seq,
        ];
        for (chunk, w) in out.chunks_exact_mut(8).zip(words) {
            chunk.copy_from_slice(&w.to_le_bytes());
        }
    }

    fn decode(b: &[u8]) -> Flow {
        let w = |k: usize| u64::from_le_bytes(b[8 * k..8 * k + 8].try_into().expect("8 bytes"));
        let end = |ts: u64, x: u64| End {
            ts,
            node: (x >> 32) as u32,
            tid: x as u32 as i32,
        };
        Flow {
            key: EdgeKey {
                group: (w(0) >> 8) as u8,
                a: w(1),
                sub: w(0) as u8,
                b: w(2),
            },
            bytes: Some(w(3)).filter(|&b| b != u64::MAX),
            from: end(w(4), w(5)),
            to: end(w(6), w(7)),
            from_seq: w(8),
        }
    }
}

/// Flows collected in any order, given back sorted by key.
pub(crate) struct Flows {
    dir: PathBuf,
    run: Vec<Flow>,
    spill: Option<(BufWriter<File>, u64)>,
    /// `(first record, records)` of each spilled run.
    runs: Vec<(u64, u64)>,
}

impl Flows {
    /// Spilled runs go to an unnamed file in `dir`.
    pub(crate) fn new(dir: &Path) -> Flows {
        Flows {
            dir: dir.to_owned(),
            run: Vec::new(),
            spill: None,
            runs: Vec::new(),
        }
    }

    pub(crate) fn push(&mut self, f: Flow) -> io::Result<()> {
        self.run.push(f);
        if self.run.len() >= RUN {
            self.spill_run()?;
        }
        Ok(())
    }

    fn spill_run(&mut self) -> io::Result<()> {
        self.run.sort_unstable_by_key(|f| f.key);
        if self.spill.is_none() {
            self.spill = Some((BufWriter::new(tempfile::tempfile_in(&self.dir)?), 0));
        }
        let Some((w, at)) = &mut self.spill else {
            unreachable!("created above");
        };
        let mut buf = [0u8; SIZE];
        for f in &self.run {
            f.encode(&mut buf);
            w.write_all(&buf)?;
        }
        self.runs.push((*at, self.run.len() as u64));
        *at += self.run.len() as u64;
        self.run.clear();
        Ok(())
    }

    /// Calls `f` with every flow in key order.
    pub(crate) fn sorted(mut self, mut f: impl FnMut(Flow) -> io::Result<()>) -> io::Result<()> {
        if self.spill.is_none() {
            self.run.sort_unstable_by_key(|f| f.key);
            return self.run.into_iter().try_for_each(f);
        }
        if !self.run.is_empty() {
            self.spill_run()?;
        }
        let Some((w, _)) = self.spill.take() else {
            unreachable!("checked above");
        };
        let file = w.into_inner().map_err(|e| e.into_error())?;
        let mut runs: Vec<Run> = self
            .runs
            .iter()
            .map(|&(at, len)| Run {
                next: at,
                end: at + len,
                buf: Vec::new(),
                pos: 0,
            })
            .collect();
        let mut heap = BinaryHeap::new();
        for (k, run) in runs.iter_mut().enumerate() {
            if let Some(x) = run.next(&file)? {
                heap.push(Reverse((x.key, k, Wrapped(x))));
            }
        }
        while let Some(Reverse((_, k, Wrapped(x)))) = heap.pop() {
            f(x)?;
            if let Some(y) = runs[k].next(&file)? {
                heap.push(Reverse((y.key, k, Wrapped(y))));
            }
        }
        Ok(())
    }
}

/// A flow in the merge heap, ordered by the key and run number beside it only.
struct Wrapped(Flow);

impl PartialEq for Wrapped {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}
impl Eq for Wrapped {}
impl PartialOrd for Wrapped {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Wrapped {
    fn cmp(&self, _: &Self) -> std::cmp::Ordering {
        std::cmp::Ordering::Equal
    }
}

/// A spilled run being read back.
struct Run {
    /// Next record to read from the file, and the end of the run (record numbers).
    next: u64,
    end: u64,
    buf: Vec<u8>,
    pos: usize,
}

impl Run {
    fn next(&mut self, file: &File) -> io::Result<Option<Flow>> {
        if self.pos >= self.buf.len() {
            let n = (self.end - self.next).min(READ as u64) as usize;
            if n == 0 {
                return Ok(None);
            }
            self.buf.resize(n * SIZE, 0);
            file.read_exact_at(&mut self.buf, self.next * SIZE as u64)?;
            self.next += n as u64;
            self.pos = 0;
        }
        let f = Flow::decode(&self.buf[self.pos..self.pos + SIZE]);
        self.pos += SIZE;
        Ok(Some(f))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flow(a: u64) -> Flow {
        Flow {
            key: EdgeKey {
                group: 1,
                a,
                sub: (a % 2) as u8,
                b: a * 3,
            },
            bytes: (!a.is_multiple_of(3)).then_some(a),
            from: End {
                ts: a,
                node: 2,
                tid: -5,
            },
            to: End {
                ts: a + 1,
                node: u32::MAX - 1,
                tid: 7,
            },
            from_seq: a ^ (1 << 63),
        }
    }

    #[test]
    fn a_record_round_trips() {
        let mut buf = [0u8; SIZE];
        for a in [0, 1, 2, 1 << 40] {
            flow(a).encode(&mut buf);
            assert_eq!(Flow::decode(&buf), flow(a));
        }
    }

    #[test]
    fn spilled_runs_merge_back_in_key_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut flows = Flows::new(dir.path());
        let n = 2 * RUN as u64 + 1000;
        // A permutation of 0..n, visited out of order.
        for k in 0..n {
            flows.push(flow((k * 7919) % n)).unwrap();
        }
        assert_eq!(flows.runs.len(), 2);
        let mut seen = Vec::new();
        flows
            .sorted(|f| {
                seen.push(f);
                Ok(())
            })
            .unwrap();
        assert_eq!(seen.len() as u64, n);
        assert!(seen.iter().enumerate().all(|(k, f)| *f == flow(k as u64)));
        // Nothing is left in the directory: the file had no name.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
