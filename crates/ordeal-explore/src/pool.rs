//! The worker pool: J threads, each pinned to a CPU when there are enough, running one run at
//! a time and sending back its analysis.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::candidates::Fault;
use crate::execute::{execute, Shared};
use crate::model::Analysis;
use crate::RunError;

pub(crate) struct Job {
    pub(crate) id: u64,
    pub(crate) meta: Meta,
    /// A recorded result that replaces the run's own (the pinning test hook).
    pub(crate) pinned: Option<Result<Analysis, RunError>>,
}

/// What a finished run's journal line needs besides its result.
#[derive(Clone)]
pub(crate) struct Meta {
    pub(crate) key: String,
    pub(crate) phase: &'static str,
    pub(crate) explore_id: u64,
    pub(crate) dir: PathBuf,
    pub(crate) faults: Vec<Fault>,
}

pub(crate) struct Done {
    pub(crate) id: u64,
    pub(crate) meta: Meta,
    pub(crate) result: Result<Analysis, RunError>,
    /// Taken from the journal: the run was not run again.
    pub(crate) recorded: bool,
}

/// The worker threads. They live as long as the campaign (with `network = "netns"` the
/// namespaces of a run are held by processes forked from the thread that runs it).
pub(crate) struct Pool {
    tx: Option<mpsc::Sender<Job>>,
    rx: mpsc::Receiver<Done>,
    handles: Vec<std::thread::JoinHandle<()>>,
}

impl Pool {
    pub(crate) fn start(n: usize, shared: Arc<Shared>) -> Pool {
        let (tx, job_rx) = mpsc::channel::<Job>();
        let job_rx = Arc::new(Mutex::new(job_rx));
        let (done_tx, rx) = mpsc::channel::<Done>();
        // One CPU per worker when there are enough: a run's tracer and its traced processes
        // then share that CPU, where a ptrace stop costs a context switch instead of a
        // cross-CPU wake-up (several times more; docs/bench.md), and two runs never compete.
        // ORDEAL_EXPLORE_NO_PIN=1 turns it off (bench/explore.sh's baseline).
        let cpus = allowed_cpus();
        let off = std::env::var_os("ORDEAL_EXPLORE_NO_PIN").is_some_and(|v| v == "1");
        let pin = (n <= cpus.len() && !off).then_some(cpus);
        let handles = (0..n)
            .map(|i| {
                let cpu = pin.as_ref().map(|c| c[i]);
                let job_rx = Arc::clone(&job_rx);
                let done_tx = done_tx.clone();
                let shared = Arc::clone(&shared);
                std::thread::Builder::new()
                    .name(format!("explore-{i}"))
                    .spawn(move || loop {
                        let job = match job_rx.lock() {
                            Ok(rx) => rx.recv(),
                            Err(_) => return,
                        };
                        let Ok(job) = job else { return };
                        let mut result = execute(&shared, &job.meta.dir, &job.meta.faults, cpu)
                            .map_err(RunError::from);
                        if let Some(p) = job.pinned {
                            if !shared.cancel.load(Ordering::SeqCst) {
                                result = p;
                            }
                        }
                        let done = Done {
                            id: job.id,
                            meta: job.meta,
                            result,
                            recorded: false,
                        };
                        if done_tx.send(done).is_err() {
                            return;
                        }
                    })
                    .expect("spawning a worker thread")
            })
            .collect();
        Pool {
            tx: Some(tx),
            rx,
            handles,
        }
    }

    pub(crate) fn send(&self, job: Job) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(job);
        }
    }

    /// The next finished run, if one finishes within `timeout`.
    pub(crate) fn recv_timeout(&self, timeout: Duration) -> Result<Done, mpsc::RecvTimeoutError> {
        self.rx.recv_timeout(timeout)
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.tx = None;
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
    }
}

/// The CPUs this process may run on, in order.
fn allowed_cpus() -> Vec<usize> {
    // SAFETY: sched_getaffinity fills a local, zeroed cpu set of the size given.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return Vec::new();
        }
        (0..libc::CPU_SETSIZE as usize)
            .filter(|&c| libc::CPU_ISSET(c, &set))
            .collect()
    }
}
