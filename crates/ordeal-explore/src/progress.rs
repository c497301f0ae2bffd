//! Progress on stderr: a bar redrawn in place on a terminal, a plain line every few seconds
//! otherwise.

use std::io::Write;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressMode {
    /// A bar on a terminal, periodic lines otherwise.
    Auto,
    /// Periodic lines.
    Lines,
    Quiet,
}

pub struct Snapshot {
    pub runs: u64,
    pub in_flight: usize,
    pub unique: usize,
    pub failures: usize,
    pub failing_runs: u64,
    pub elapsed: Duration,
}

pub struct Progress {
    tty: bool,
    on: bool,
    runs: Option<u64>,
    time: Option<Duration>,
    last: Option<Instant>,
    every: Duration,
    drawn: bool,
}

fn stderr_is_tty() -> bool {
    // SAFETY: isatty only inspects the descriptor.
    unsafe { libc::isatty(2) == 1 }
}

fn clock(d: Duration) -> String {
    let s = d.as_secs();
    format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

impl Progress {
    pub fn new(mode: ProgressMode, runs: Option<u64>, time: Option<Duration>) -> Progress {
        let tty = mode == ProgressMode::Auto && stderr_is_tty();
        Progress {
            tty,
            on: mode != ProgressMode::Quiet,
            runs,
            time,
            last: None,
            every: if tty {
                Duration::from_millis(200)
            } else {
                Duration::from_secs(5)
            },
            drawn: false,
        }
    }

    fn eta(&self, s: &Snapshot) -> String {
        let by_runs = self.runs.and_then(|n| {
            (s.runs > 0).then(|| {
                let per = s.elapsed.as_secs_f64() / s.runs as f64;
                Duration::from_secs_f64(per * n.saturating_sub(s.runs) as f64)
            })
        });
        let by_time = self.time.map(|t| t.saturating_sub(s.elapsed));
        match (by_runs, by_time) {
            (Some(a), Some(b)) => clock(a.min(b)),
            (Some(a), None) | (None, Some(a)) => clock(a),
            (None, None) => "?".into(),
        }
    }

    pub fn update(&mut self, s: &Snapshot) {
        if !self.on {
            return;
        }
        let now = Instant::now();
        if self
            .last
            .is_some_and(|l| now.duration_since(l) < self.every)
        {
            return;
        }
        self.last = Some(now);
        let total = self
            .runs
            .map(|n| n.to_string())
            .unwrap_or_else(|| "?".into());
        let text = format!(
            "{}/{} runs ({} running), {} unique behaviours, {} distinct failures ({} failing runs), elapsed {}, ETA {}",
            s.runs,
            total,
            s.in_flight,
            s.unique,
            s.failures,
            s.failing_runs,
            clock(s.elapsed),
            self.eta(s)
        );
        let mut err = std::io::stderr().lock();
        if self.tty {
            let bar = match self.runs {
                Some(n) if n > 0 => {
                    let w = 24usize;
                    let k = ((s.runs.min(n) as f64 / n as f64) * w as f64) as usize;
                    format!("[{}{}] ", "#".repeat(k), "-".repeat(w - k))
                }
                _ => String::new(),
            };
            let _ = write!(err, "\r\x1b[2K{bar}{text}");
            self.drawn = true;
        } else {
            let _ = writeln!(err, "explore: {text}");
        }
        let _ = err.flush();
    }

    /// Ends the bar's line, if one is drawn.
    pub fn finish_line(&mut self) {
        if self.drawn {
            eprintln!();
            self.drawn = false;
        }
    }

    pub fn say(&mut self, msg: &str) {
        if self.on {
            self.finish_line();
            eprintln!("explore: {msg}");
        }
    }
}
