//! The hang classifier: fed with samples over time (the tracer's event count and, per
//! thread, state, CPU ticks and the call it is in), it says when the run is hung and whether
//! it is blocked (threads asleep, no CPU) or busy (threads spinning without any traced call).
//!
//! Progress is a new traced event. A run with no new event for `timeout` is hung; the CPU
//! time its threads used over that window decides the kind: at least [`BUSY_CPU_SHARE`] of
//! one CPU → busy (a spinning thread on a loaded machine still gets well over that; idle
//! servers with timers use about 0.01), else blocked.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// CPU share (in CPUs) over the idle window from which a hang counts as busy.
pub const BUSY_CPU_SHARE: f64 = 0.2;

/// One thread at one sample.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThreadSample {
    pub node: String,
    pub pid: i32,
    pub tid: i32,
    pub comm: String,
    /// /proc state letter (`R`, `S`, `D`, `t`, ...).
    pub state: char,
    pub cpu_ticks: u64,
    /// System call it is blocked in, as text (`futex(0x55d0, FUTEX_WAIT_PRIVATE)`).
    pub syscall: Option<String>,
    pub wchan: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct Sample {
    pub events: u64,
    pub threads: Vec<ThreadSample>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HangKind {
    /// Every thread asleep (deadlock, lost wake-up, waiting on a peer that never answers).
    Blocked,
    /// Threads burning CPU without making any traced call (a spin, a livelock).
    Busy,
}

impl std::fmt::Display for HangKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            HangKind::Blocked => "blocked",
            HangKind::Busy => "busy",
        })
    }
}

/// A detected hang with its evidence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hang {
    pub kind: HangKind,
    /// How long no traced event happened.
    pub idle_ms: u64,
    /// CPUs used on average over that window by all traced threads.
    pub cpu_share: f64,
    /// One line per relevant thread: what it waits on, or how much CPU it burns.
    pub evidence: Vec<String>,
}

impl Hang {
    /// One sentence for a verdict.
    pub fn reason(&self) -> String {
        let head = format!(
            "hung ({}): no traced event for {:.1}s, {:.2} CPU used",
            self.kind,
            self.idle_ms as f64 / 1000.0,
            self.cpu_share
        );
        let shown: Vec<&str> = self.evidence.iter().take(6).map(|s| s.as_str()).collect();
        if shown.is_empty() {
            head
        } else {
            let more = self.evidence.len().saturating_sub(shown.len());
            let tail = if more > 0 {
                format!("; … {more} more")
            } else {
                String::new()
            };
            format!("{head}; {}{tail}", shown.join("; "))
        }
    }
}

/// Watches samples; see the module doc.
pub struct HangDetector {
    timeout: Duration,
    ticks_per_sec: u64,
    last_events: Option<u64>,
    since: Option<(Instant, HashMap<i32, u64>)>,
}

impl HangDetector {
    pub fn new(timeout: Duration) -> Self {
        Self {
            timeout,
            ticks_per_sec: crate::procfs::ticks_per_sec(),
            last_events: None,
            since: None,
        }
    }

    /// Starts the window again (a quiet stretch that is expected, e.g. a fault pausing a
    /// node, is no hang).
    pub fn reset(&mut self) {
        self.last_events = None;
        self.since = None;
    }

    /// How often to sample for this timeout.
    pub fn sample_every(&self) -> Duration {
        (self.timeout / 4).clamp(Duration::from_millis(50), Duration::from_secs(1))
    }

    /// Feeds one sample taken at `now`; returns the hang once no event happened for the
    /// timeout.
    pub fn observe(&mut self, now: Instant, s: &Sample) -> Option<Hang> {
        let cpu: HashMap<i32, u64> = s.threads.iter().map(|t| (t.tid, t.cpu_ticks)).collect();
        if self.last_events != Some(s.events) || self.since.is_none() {
            self.last_events = Some(s.events);
            self.since = Some((now, cpu));
            return None;
        }
        let (t0, base) = self.since.as_ref()?;
        let idle = now.duration_since(*t0);
        if idle < self.timeout {
            return None;
        }
        Some(classify(idle, base, s, self.ticks_per_sec))
    }
}

/// Classifies a window of `idle` with no event, from per-thread CPU ticks at its start
/// (`base`) and the sample at its end.
pub fn classify(idle: Duration, base: &HashMap<i32, u64>, s: &Sample, tps: u64) -> Hang {
    let secs = idle.as_secs_f64().max(1e-3);
    let delta = |t: &ThreadSample| {
        t.cpu_ticks
            .saturating_sub(base.get(&t.tid).copied().unwrap_or(t.cpu_ticks))
    };
    let total: u64 = s.threads.iter().map(delta).sum();
    let cpu_share = total as f64 / tps.max(1) as f64 / secs;
    let kind = if cpu_share >= BUSY_CPU_SHARE {
        HangKind::Busy
    } else {
        HangKind::Blocked
    };
    let mut evidence = Vec::new();
    match kind {
        HangKind::Busy => {
            let mut spinning: Vec<(&ThreadSample, u64)> = s
                .threads
                .iter()
                .map(|t| (t, delta(t)))
                .filter(|(_, d)| *d > 0)
                .collect();
            spinning.sort_by_key(|(t, d)| (std::cmp::Reverse(*d), t.tid));
            for (t, d) in spinning {
                evidence.push(format!(
                    "{}/{} ({}) spinning: {:.2} CPU, state {}",
                    t.node,
                    t.tid,
                    t.comm,
                    d as f64 / tps.max(1) as f64 / secs,
                    t.state
                ));
            }
        }
        HangKind::Blocked => {
            for t in &s.threads {
                let what = match (&t.syscall, &t.wchan) {
                    (Some(c), Some(w)) => format!("in {c} (wchan {w})"),
                    (Some(c), None) => format!("in {c}"),
                    (None, Some(w)) => format!("wchan {w}"),
                    (None, None) => "not in a system call".to_string(),
                };
                evidence.push(format!(
                    "{}/{} ({}) {} {what}",
                    t.node,
                    t.tid,
                    t.comm,
                    state_name(t.state)
                ));
            }
        }
    }
    Hang {
        kind,
        idle_ms: idle.as_millis() as u64,
        cpu_share: (cpu_share * 100.0).round() / 100.0,
        evidence,
    }
}

/// `S` → `sleeping`, ...
pub fn state_name(c: char) -> &'static str {
    match c {
        'R' => "running",
        'S' => "sleeping",
        'D' => "in uninterruptible sleep",
        'T' => "stopped",
        't' => "in a ptrace stop",
        'Z' => "zombie",
        'X' => "dead",
        'I' => "idle",
        _ => "in an unknown state",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn th(tid: i32, state: char, cpu: u64, call: Option<&str>) -> ThreadSample {
        ThreadSample {
            node: "n".into(),
            pid: 1,
            tid,
            comm: "x".into(),
            state,
            cpu_ticks: cpu,
            syscall: call.map(|s| s.to_string()),
            wchan: None,
        }
    }

    #[test]
    fn progress_resets_and_kinds() {
        let mut d = HangDetector::new(Duration::from_secs(2));
        d.ticks_per_sec = 100;
        let t0 = Instant::now();
        let s = |ev, cpu| Sample {
            events: ev,
            threads: vec![
                th(1, 'S', cpu, Some("futex(0x10, FUTEX_WAIT)")),
                th(2, 'S', 0, None),
            ],
        };
        assert!(d.observe(t0, &s(1, 0)).is_none());
        assert!(d.observe(t0 + Duration::from_secs(1), &s(2, 0)).is_none());
        // No event since t0+1s; at t0+3s the window is 2s.
        let h = d.observe(t0 + Duration::from_secs(3), &s(2, 1)).unwrap();
        assert_eq!(h.kind, HangKind::Blocked);
        assert!(h.evidence[0].contains("futex"), "{h:?}");
        // Spinning: 190 ticks in 2 s at 100 ticks/s = 0.95 CPU.
        let mut d = HangDetector::new(Duration::from_secs(2));
        d.ticks_per_sec = 100;
        d.observe(t0, &s(5, 0));
        let h = d.observe(t0 + Duration::from_secs(2), &s(5, 190)).unwrap();
        assert_eq!(h.kind, HangKind::Busy);
        assert!(h.evidence[0].contains("spinning"));
        assert!(h.reason().starts_with("hung (busy)"));
    }
}
