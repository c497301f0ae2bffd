//! Checking crash states on several threads (`-j`) with the report assembled in state order.
//!
//! The calling thread generates states in their fixed order and deduplicates them by tree
//! hash: which states are checked, and their numbers (`states/NNNNN`), never depend on a
//! recovery's outcome, only on the seed and the budget. New trees go to `jobs` worker threads,
//! each recovering one state at a time in its own scratch directory with fresh ports; their
//! outcomes are applied in the order the states were generated, so the failures, the
//! vulnerabilities, their numbering and example states are the same for any `jobs` (a
//! `--time` limit aside: where it cuts depends on speed).

use super::recover::Recovery;
use super::{Exploration, Step};
use crate::Error;
use ordeal_state::persist::{CrashState, Rng};
use std::collections::{HashMap, VecDeque};
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Mutex};
use std::time::{Duration, Instant};

/// Random states stop after this many in a row that bring no new tree.
const FRUITLESS: usize = 200;

/// What to generate.
pub(crate) struct Plan {
    /// The systematic states, in order; random ones follow.
    pub(crate) systematic: Vec<CrashState>,
    pub(crate) seed: u64,
    /// Most distinct states checked.
    pub(crate) budget: usize,
    /// Stop generating at this instant.
    pub(crate) deadline: Option<Instant>,
    /// Worker threads.
    pub(crate) jobs: usize,
}

/// The states in order: the systematic ones, then random ones until the budget, the deadline,
/// or [`FRUITLESS`] random states in a row bring no new tree.
struct Generator<'a> {
    plan: Plan,
    ex: &'a ordeal_state::persist::Explorer<'a>,
    cancel: &'a AtomicBool,
    rng: Rng,
    next: usize,
    fruitless: usize,
    /// Whether every systematic state was generated.
    complete: bool,
    done: bool,
}

impl Generator<'_> {
    /// The next state, `checked` distinct ones planned so far; None when generation is over.
    fn next(&mut self, checked: usize) -> Option<CrashState> {
        if self.done {
            return None;
        }
        let late = self.plan.deadline.is_some_and(|d| Instant::now() >= d);
        if checked >= self.plan.budget || late || self.cancel.load(Ordering::SeqCst) {
            self.complete = self.next >= self.plan.systematic.len();
            self.done = true;
            return None;
        }
        self.next += 1;
        if let Some(s) = self.plan.systematic.get(self.next - 1) {
            return Some(s.clone());
        }
        // Random states until the budget, or until they stop yielding new trees.
        if self.fruitless > FRUITLESS {
            self.done = true;
            return None;
        }
        Some(self.ex.random(&mut self.rng))
    }

    /// Whether the state just generated was a new tree (random states count toward
    /// [`FRUITLESS`]).
    fn was_new(&mut self, new: bool) {
        if self.next > self.plan.systematic.len() {
            self.fruitless = if new { 0 } else { self.fruitless + 1 };
        }
    }
}

/// A state for a worker: its number, tree and crash point.
type Job = (usize, ordeal_state::persist::Tree, usize);
/// A worker's answer: the state's number and its recovery's outcome.
type Outcome = (usize, Result<Option<String>, Error>);

/// Generates, checks (on `plan.jobs` workers) and applies every state of the search; returns
/// whether every systematic state was generated.
pub(super) fn explore(
    x: &mut Exploration,
    rec: &Recovery,
    plan: Plan,
    bar: &mut Bar,
) -> Result<bool, Error> {
    let jobs = plan.jobs.max(1);
    let mut gen = Generator {
        rng: Rng::new(plan.seed),
        plan,
        ex: x.ex,
        cancel: rec.cancel,
        next: 0,
        fruitless: 0,
        complete: true,
        done: false,
    };
    // Set on an error: workers take no new state.
    let stop = AtomicBool::new(false);
    let states_dir = x.states_dir.to_path_buf();
    let (job_tx, job_rx) = mpsc::channel::<Job>();
    let job_rx = Mutex::new(job_rx);
    let result = std::thread::scope(|scope| -> Result<(), Error> {
        let (out_tx, out_rx) = mpsc::channel::<Outcome>();
        // Directories of states that recovered are removed off the workers' path: deleting a
        // directory costs milliseconds on a journaled file system.
        let (rm_tx, rm_rx) = mpsc::channel::<PathBuf>();
        scope.spawn(move || {
            for d in rm_rx {
                let _ = std::fs::remove_dir_all(d);
            }
        });
        for _ in 0..jobs {
            let (job_rx, out_tx, rm_tx, stop) = (&job_rx, out_tx.clone(), rm_tx.clone(), &stop);
            let states_dir = &states_dir;
            scope.spawn(move || loop {
                let job = match job_rx.lock() {
                    Ok(rx) => rx.recv(),
                    Err(_) => return,
                };
                let Ok((n, tree, crash_at)) = job else { return };
                if stop.load(Ordering::SeqCst) {
                    return;
                }
                let dir = states_dir.join(format!("{n:05}"));
                // A panic must still answer, or the in-order assembly would wait for it forever.
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    rec.recover(&tree, &dir, crash_at)
                }))
                .unwrap_or_else(|_| {
                    Err(Error::Usage(format!(
                        "recovering crash state {n} panicked (see {})",
                        dir.display()
                    )))
                });
                if matches!(r, Ok(None)) {
                    let _ = rm_tx.send(dir);
                }
                if out_tx.send((n, r)).is_err() {
                    return;
                }
            });
        }
        drop((out_tx, rm_tx));
        let mut queue: VecDeque<Step> = VecDeque::new();
        let mut outcomes: HashMap<usize, Result<Option<String>, Error>> = HashMap::new();
        let mut in_flight = 0usize;
        let outcome = loop {
            // Keep every worker busy with a few states queued behind.
            while in_flight < 2 * jobs {
                let Some(s) = gen.next(x.checked) else { break };
                let before = x.checked;
                let (step, tree) = x.plan(s);
                gen.was_new(x.checked > before);
                if let (Step::New { n, state, .. }, Some(tree)) = (&step, tree) {
                    if job_tx.send((*n, tree, state.crash_at)).is_err() {
                        break;
                    }
                    in_flight += 1;
                }
                queue.push_back(step);
            }
            // Apply what is known, in order.
            let mut failed = None;
            while let Some(step) = queue.front() {
                let r = match step {
                    Step::New { n, .. } => match outcomes.remove(n) {
                        Some(Ok(r)) => r,
                        Some(Err(e)) => {
                            failed = Some(e);
                            break;
                        }
                        None => break,
                    },
                    Step::Seen { .. } => None,
                };
                if let Some(step) = queue.pop_front() {
                    x.apply(&step, r);
                }
            }
            if let Some(e) = failed {
                break Err(e);
            }
            bar.update(x, false);
            if queue.is_empty() && gen.done {
                break Ok(());
            }
            match out_rx.recv_timeout(Duration::from_millis(200)) {
                Ok((n, r)) => {
                    in_flight -= 1;
                    outcomes.insert(n, r);
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    break Err(Error::Usage("the crash state workers stopped".into()))
                }
            }
        };
        if outcome.is_err() {
            stop.store(true, Ordering::SeqCst);
        }
        drop(job_tx);
        outcome
    });
    result?;
    bar.update(x, true);
    Ok(gen.complete)
}

/// Progress on stderr while states are checked: a bar redrawn in place when stderr is a
/// terminal, a line a second otherwise, nothing with `-q`.
pub(crate) struct Bar {
    on: bool,
    tty: bool,
    budget: usize,
    /// When checking began (for states/s).
    t0: Instant,
    /// When the command began (the lines' time stamps, as every progress line's).
    stamp0: Instant,
    last: Option<Instant>,
    drawn: bool,
}

fn stderr_is_tty() -> bool {
    // SAFETY: isatty only inspects the descriptor.
    unsafe { libc::isatty(2) == 1 }
}

impl Bar {
    pub(crate) fn new(on: bool, budget: usize, t0: Instant, stamp0: Instant) -> Bar {
        Bar {
            on,
            tty: on && stderr_is_tty(),
            budget,
            t0,
            stamp0,
            last: None,
            drawn: false,
        }
    }

    /// Redraws (on a terminal, at most every 200 ms) or says a line (at most every second);
    /// `last`: the final figures, drawn on a terminal whatever the time.
    fn update(&mut self, x: &Exploration, last: bool) {
        if !self.on {
            return;
        }
        let now = Instant::now();
        let every = if self.tty {
            Duration::from_millis(200)
        } else {
            Duration::from_secs(1)
        };
        let due = self.last.is_none_or(|l| now.duration_since(l) >= every);
        if !(due || last && self.tty) {
            return;
        }
        if self.last.is_none() && !last {
            // The first report comes a period after the start, as the lines always did.
            if now.duration_since(self.t0) < every {
                return;
            }
        }
        self.last = Some(now);
        let secs = self.t0.elapsed().as_secs_f64().max(1e-9);
        let findings = x.vulns.len();
        let mut err = std::io::stderr().lock();
        if self.tty {
            let w = 24usize;
            let k = (x.checked.min(self.budget) * w)
                .checked_div(self.budget)
                .unwrap_or(w);
            let _ = write!(
                err,
                "\r\x1b[2K[{}{}] {}/{} states, {:.1}/s, {} generated, {} failed, {} finding{}",
                "#".repeat(k),
                "-".repeat(w - k),
                x.checked,
                self.budget,
                x.checked as f64 / secs,
                x.generated,
                x.failed,
                findings,
                if findings == 1 { "" } else { "s" }
            );
            self.drawn = true;
        } else if !last {
            let _ = writeln!(
                err,
                "[{:7.3}s] {} states generated, {} checked ({:.1}/s), {} failed, {} vulnerabilit{}",
                self.stamp0.elapsed().as_secs_f64(),
                x.generated,
                x.checked,
                x.checked as f64 / secs,
                x.failed,
                findings,
                if findings == 1 { "y" } else { "ies" }
            );
        }
        let _ = err.flush();
    }

    /// Ends the bar's line, if one is drawn.
    pub(crate) fn finish(&mut self) {
        if self.drawn {
            eprintln!();
            self.drawn = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ordeal_state::persist::{build, Call, Explorer, Kind, Tree};
    use std::sync::Arc;

    /// A save without any sync: `state.tmp` created and written, renamed to `state`.
    fn unsynced_save() -> (Tree, Vec<ordeal_state::persist::Op>, usize) {
        let d = tempfile::tempdir().unwrap();
        let base = Tree::load(d.path()).unwrap();
        let call = |seq, name: &str| Call {
            seq,
            pid: 1,
            call: name.into(),
            path: Some("state.tmp".into()),
            ..Default::default()
        };
        let calls = [
            Call {
                flags: Some("O_WRONLY|O_CREAT|O_TRUNC".into()),
                ret: 3,
                ..call(1, "openat")
            },
            Call {
                fd: Some(3),
                pos: Some(0),
                data: Some(Arc::from(&b"new\n"[..])),
                ret: 4,
                ..call(2, "write")
            },
            Call {
                path2: Some("state".into()),
                ..call(3, "rename")
            },
        ];
        let b = build(&base, &calls);
        assert!(b.unmodelled.is_empty());
        (base, b.ops, b.inodes)
    }

    fn generator<'a>(ex: &'a Explorer<'a>, budget: usize, cancel: &'a AtomicBool) -> Generator<'a> {
        Generator {
            plan: Plan {
                systematic: ex.systematic(),
                seed: 5,
                budget,
                deadline: None,
                jobs: 2,
            },
            ex,
            cancel,
            rng: Rng::new(5),
            next: 0,
            fruitless: 0,
            complete: true,
            done: false,
        }
    }

    #[test]
    fn states_come_systematic_first_then_random_until_the_budget() {
        let (base, ops, n) = unsynced_save();
        let ex = Explorer::new(&base, &ops, n);
        let systematic = ex.systematic();
        let cancel = AtomicBool::new(false);
        // A budget never reached: every systematic state in order, then random ones until
        // FRUITLESS of them in a row bring nothing new.
        let mut g = generator(&ex, usize::MAX, &cancel);
        let mut got = Vec::new();
        while let Some(s) = g.next(0) {
            got.push(s);
            g.was_new(false);
        }
        assert_eq!(got[..systematic.len()], systematic[..]);
        assert_eq!(got.len(), systematic.len() + FRUITLESS + 1);
        assert!(got[systematic.len()..]
            .iter()
            .all(|s| s.kind == Kind::Random));
        assert!(g.complete);
        // The budget counts distinct states checked: reached before every systematic state,
        // generation stops there and says so.
        let mut g = generator(&ex, 2, &cancel);
        assert_eq!(g.next(0).as_ref(), systematic.first());
        assert_eq!(g.next(1).as_ref(), systematic.get(1));
        assert_eq!(g.next(2), None);
        assert!(!g.complete);
        // Cancelled: nothing more.
        cancel.store(true, Ordering::SeqCst);
        let mut g = generator(&ex, usize::MAX, &cancel);
        assert_eq!(g.next(0), None);
    }
}
