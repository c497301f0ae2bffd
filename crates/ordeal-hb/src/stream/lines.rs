//! `hb.jsonl`'s lines in `seq` order while events finish out of order: an event waiting for an
//! edge recorded after it holds back the lines of every event after it, related or not. Those
//! lines wait in memory up to a budget; beyond it, the lines of events finished as they were
//! taken in go, in order, to an unnamed temporary file, and only the lines of events that were
//! still open when the next one began stay in memory.
//!
//! Invariant: lines `next..spill_from` are in `mem` (`None` until written); from `spill_from`
//! on, an event is in `holes` if it was open when the next one began, its line in the file
//! otherwise, and the file holds those lines in order from `read`.

use std::collections::{BTreeMap, VecDeque};
use std::fs::File;
use std::io::{self, BufWriter, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

/// Lines held in memory before the next ones go to disk.
pub(crate) const BUDGET: usize = 16 << 20;

struct Spill {
    w: BufWriter<File>,
    file: File,
    /// Where the next line is read, and bytes read ahead from there.
    read: u64,
    ahead: Vec<u8>,
}

pub(crate) struct Ordered<W: Write> {
    out: W,
    /// Next line to write, and the number of events begun.
    next: u32,
    begun: u32,
    mem: VecDeque<Option<Vec<u8>>>,
    mem_bytes: usize,
    budget: usize,
    spill_from: u32,
    holes: BTreeMap<u32, Option<Vec<u8>>>,
    spill: Option<Spill>,
    dir: PathBuf,
}

impl<W: Write> Ordered<W> {
    /// Spilled lines go to an unnamed file in `dir`.
    pub(crate) fn new(out: W, dir: PathBuf, budget: usize) -> Ordered<W> {
        Ordered {
            out,
            next: 0,
            begun: 0,
            mem: VecDeque::new(),
            mem_bytes: 0,
            budget,
            spill_from: u32::MAX,
            holes: BTreeMap::new(),
            spill: None,
            dir,
        }
    }

    /// The next event begins.
    pub(crate) fn begin(&mut self) {
        let idx = self.begun;
        self.begun += 1;
        if self.spill_from == u32::MAX && self.mem_bytes > self.budget {
            self.spill_from = idx;
        }
        if idx < self.spill_from {
            self.mem.push_back(None);
        } else {
            self.holes.insert(idx, None);
        }
    }

    /// Event `idx`'s line.
    pub(crate) fn done(&mut self, idx: u32, line: &[u8]) -> io::Result<()> {
        if idx == self.next {
            self.out.write_all(line)?;
            if idx < self.spill_from {
                self.mem.pop_front();
            } else {
                self.holes.remove(&idx);
            }
            self.next += 1;
            return self.flush();
        }
        if idx < self.spill_from {
            self.mem_bytes += line.len();
            self.mem[(idx - self.next) as usize] = Some(line.to_vec());
        } else if idx + 1 == self.begun {
            // Finished as it was taken in: every earlier event is in the file or a hole.
            self.holes.remove(&idx);
            if self.spill.is_none() {
                let file = tempfile::tempfile_in(&self.dir)?;
                self.spill = Some(Spill {
                    file: file.try_clone()?,
                    w: BufWriter::new(file),
                    read: 0,
                    ahead: Vec::new(),
                });
            }
            if let Some(s) = &mut self.spill {
                s.w.write_all(line)?;
            }
        } else {
            self.holes.insert(idx, Some(line.to_vec()));
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        while self.next < self.begun {
            if self.next < self.spill_from {
                match self.mem.front() {
                    Some(Some(_)) => {
                        if let Some(Some(line)) = self.mem.pop_front() {
                            self.mem_bytes -= line.len();
                            self.out.write_all(&line)?;
                        }
                    }
                    _ => break,
                }
            } else {
                match self.holes.get(&self.next) {
                    Some(None) => break,
                    Some(Some(_)) => {
                        if let Some(Some(line)) = self.holes.remove(&self.next) {
                            self.out.write_all(&line)?;
                        }
                    }
                    None => self.copy_spilled_line()?,
                }
            }
            self.next += 1;
        }
        if self.spill_from != u32::MAX && self.next == self.begun {
            // All caught up: start afresh in memory.
            self.spill_from = u32::MAX;
            if let Some(s) = &mut self.spill {
                s.w.flush()?;
                s.w.get_mut().set_len(0)?;
                s.w.get_mut().seek(SeekFrom::Start(0))?;
                s.read = 0;
                s.ahead.clear();
            }
        }
        Ok(())
    }

    /// Copies the next line of the file to the output.
    fn copy_spilled_line(&mut self) -> io::Result<()> {
        let Some(s) = &mut self.spill else {
            return Err(io::Error::other("hb.jsonl: a spilled line is missing"));
        };
        s.w.flush()?;
        loop {
            if let Some(end) = s.ahead.iter().position(|&b| b == b'\n') {
                self.out.write_all(&s.ahead[..=end])?;
                s.ahead.drain(..=end);
                return Ok(());
            }
            let have = s.ahead.len();
            s.ahead.resize(have + (64 << 10), 0);
            let n = s.file.read_at(&mut s.ahead[have..], s.read)?;
            s.ahead.truncate(have + n);
            s.read += n as u64;
            if n == 0 {
                return Err(io::Error::other("hb.jsonl: a spilled line is cut short"));
            }
        }
    }

    /// Lines held in memory, waiting.
    #[cfg(test)]
    fn held(&self) -> usize {
        self.mem.len() + self.holes.len()
    }

    pub(crate) fn into_inner(self) -> W {
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(k: u32) -> Vec<u8> {
        format!("{k}\n").into_bytes()
    }

    /// Event 0 stays open while 999 more are taken in, every 7th of them open until the next
    /// has begun: beyond a 100-byte budget their lines go to the file, and everything comes out
    /// in order.
    #[test]
    fn lines_come_out_in_order_and_beyond_the_budget_wait_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let mut o = Ordered::new(Vec::new(), dir.path().to_owned(), 100);
        let mut most = 0;
        o.begin();
        for k in 1..1000u32 {
            o.begin();
            if k % 7 == 1 && k > 7 {
                o.done(k - 1, &line(k - 1)).unwrap();
            }
            if k % 7 != 0 {
                o.done(k, &line(k)).unwrap();
            }
            most = most.max(o.held());
        }
        o.done(0, &line(0)).unwrap();
        assert_eq!(o.held(), 0);
        // Everything written: the file was emptied.
        let spilled = o.spill.as_ref().map(|s| s.file.metadata().unwrap().len());
        assert_eq!(spilled, Some(0));
        let text = String::from_utf8(o.into_inner()).unwrap();
        let got: Vec<u32> = text.lines().map(|l| l.parse().unwrap()).collect();
        assert_eq!(got, (0..1000).collect::<Vec<_>>());
        // Held in memory at most: the budget's worth (about 25 lines), and the lines of the
        // 142 events that finished after the next one began; not the 830 others.
        assert!(most < 25 + 142 + 10, "{most}");
    }
}
